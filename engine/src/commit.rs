//! Group commit for the hot events: instance starts and task completions.
//!
//! A caller of [`Engine::start`] or [`Engine::complete`] hands its event to a committer task and
//! waits for the answer. A committer takes every event waiting in the queue (up to
//! [`MAX_BATCH`]) and runs them in ONE transaction as one unit of work (`store/staged.rs`): the
//! rows they need are read in a few statements, the events run in memory, and their writes go
//! out in a few multi-row statements. A refused event (404, 409, 422) is rolled back to its mark
//! and changes nothing; the others commit together. Answers are built from the unit of work, so
//! no read-back follows the commit. On SQLite in a file the rows come first from what the
//! earlier batches left, as long as nothing else wrote since (`store::staged::Carry`). While a batch is being written the next one gathers, so batches grow with the load
//! and there is no added wait when the engine is idle (a lone event goes alone).
//!
//! Each event stays atomic (its writes commit together or not at all) and its answer is sent
//! only after the commit. A retryable failure (deadlock, serialization) retries the whole batch.
//!
//! SQLite has one committer (one writer anyway), on a thread of its own; PostgreSQL has
//! [`POSTGRES_COMMITTERS`], which take batches from the same queue and write them concurrently,
//! as tasks of the server's runtime.
//!
//! Why a thread of its own for SQLite: a batch is a chain, and nothing else runs meanwhile (one
//! writer). Its statements run on the writer connection on the committer's own thread
//! (rusqlite, `store/sqlite_tx.rs`): no hand-off to another thread, and no CPU queue shared
//! with HTTP (`docs/performance.md`).
//! PostgreSQL's committers wait on the network, four at a time, and were slower on such a
//! thread (docs/performance.md): they stay on the runtime. After each batch on SQLite in a file, the committer
//! rings the store's checkpointer (`store::checkpoint`).

use crate::engine::record_lapsed;
use crate::engine::{
    Claimed, ClaimedTask, CompleteRequest, Completed, Engine, Inner, InstanceView, ProcessVersion,
    StartRequest, transaction,
};
use crate::error::{EngineError, Result};
use crate::store::batch::BatchReads;
use crate::store::staged::Staged;
use crate::store::{ClaimQuery, InstanceRow, TaskRow, TimerRow};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{mpsc, oneshot};

/// Committers writing concurrently on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 4;

/// Most events in one transaction (the events of one request are never split, so a batch may
/// pass it by one request's).
pub(crate) const MAX_BATCH: usize = 256;

/// A start, with what was looked up before the transaction.
pub(crate) struct StartJob {
    pub(crate) req: StartRequest,
    pub(crate) dep: ProcessVersion,
    pub(crate) vars: Map<String, Json>,
    pub(crate) now: DateTime<Utc>,
}

/// An instance as a batch left it; the caller builds its answer from it (off the committer).
struct Parts {
    row: InstanceRow,
    tasks: Vec<TaskRow>,
    timers: Vec<TimerRow>,
    existing: bool,
}

enum Job {
    Claim(
        ClaimQuery,
        oneshot::Sender<Result<Vec<(TaskRow, InstanceRow)>>>,
    ),
    Start(Box<StartJob>, oneshot::Sender<Result<Parts>>),
    Complete(CompleteRequest, oneshot::Sender<Result<Parts>>),
}

/// What callers send: the events of one request, which go into one batch in their order.
type Jobs = Vec<Job>;

type Queue = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Jobs>>>;

/// Where the committers run (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// As tasks of the runtime of the first caller.
    Runtime,
    /// On one thread of their own, with a runtime of its own.
    OwnThread,
}

/// The queue to the committer tasks, which are spawned on first use.
pub(crate) struct Committer {
    sender: mpsc::UnboundedSender<Jobs>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Jobs>>>,
    count: usize,
    placement: Placement,
}

impl Committer {
    pub(crate) fn new(count: usize, placement: Placement) -> Committer {
        let (sender, receiver) = mpsc::unbounded_channel();
        Committer {
            sender,
            receiver: Mutex::new(Some(receiver)),
            count: count.max(1),
            placement,
        }
    }

    /// Spawns the committers the first time (they stop when the engine is dropped).
    fn ensure_running(&self, engine: &Engine) {
        let mut slot = self.receiver.lock().unwrap_or_else(|e| e.into_inner());
        let Some(receiver) = slot.take() else {
            return;
        };
        engine.store().start_background();
        let queue: Queue = Arc::new(tokio::sync::Mutex::new(receiver));
        if self.placement == Placement::OwnThread {
            match spawn_thread(engine, &queue, self.count) {
                Ok(()) => return,
                Err(e) => tracing::error!(
                    error = %e,
                    "the committer could not have a thread of its own; it runs on the server's runtime"
                ),
            }
        }
        for _ in 0..self.count {
            tokio::spawn(run(engine.downgrade(), queue.clone()));
        }
    }

    /// Sends the events of one request together: they go into one batch, in their order.
    /// Should the committers be gone, the jobs are dropped and every answer says so.
    fn send(&self, engine: &Engine, jobs: Jobs) {
        self.ensure_running(engine);
        let _ = self.sender.send(jobs);
    }

    /// Fetch-and-lock in the next batch.
    pub(crate) async fn claim(&self, engine: &Engine, q: ClaimQuery) -> Result<Vec<ClaimedTask>> {
        let (reply, answer) = oneshot::channel();
        self.send(engine, vec![Job::Claim(q, reply)]);
        let claimed = answer.await.map_err(|_| stopped())??;
        let mut tasks = Vec::with_capacity(claimed.len());
        for (task, instance) in claimed {
            tasks.push(engine.claimed_with(task, &instance).await?);
        }
        Ok(tasks)
    }

    /// Starts an instance in the next batch (`existing`: its business key was known).
    pub(crate) async fn start(&self, engine: &Engine, job: StartJob) -> Result<InstanceView> {
        let (job, answer) = paired(|reply| Job::Start(Box::new(job), reply));
        self.send(engine, vec![job]);
        view(engine, answer.await.map_err(|_| stopped())??).await
    }

    /// Completes a task in the next batch: its instance afterwards.
    pub(crate) async fn complete(
        &self,
        engine: &Engine,
        req: CompleteRequest,
    ) -> Result<InstanceView> {
        let (job, answer) = paired(|reply| Job::Complete(req, reply));
        self.send(engine, vec![job]);
        view(engine, answer.await.map_err(|_| stopped())??).await
    }

    /// Starts each instance as its own event, all in one batch: per start, the instance id and
    /// whether its business key was known, or why not.
    pub(crate) async fn start_each(
        &self,
        engine: &Engine,
        starts: Vec<StartJob>,
    ) -> Vec<Result<(String, bool)>> {
        let (jobs, answers) = starts
            .into_iter()
            .map(|job| paired(|reply| Job::Start(Box::new(job), reply)))
            .unzip();
        self.send(engine, jobs);
        answered(answers, |parts| Ok((parts.row.id, parts.existing))).await
    }

    /// Completes each task as its own event, all in one batch, in their order (so that of the
    /// same task given twice the first completes it and the second gets 409).
    pub(crate) async fn complete_each(
        &self,
        engine: &Engine,
        reqs: Vec<CompleteRequest>,
    ) -> Vec<Result<Completed>> {
        let (jobs, answers) = reqs
            .into_iter()
            .map(|req| paired(|reply| Job::Complete(req, reply)))
            .unzip();
        self.send(engine, jobs);
        answered(answers, |parts| Completed::of(&parts.row)).await
    }
}

/// A start or completion job with the receiver of its answer.
fn paired(job: impl FnOnce(oneshot::Sender<Result<Parts>>) -> Job) -> (Job, Answer) {
    let (reply, answer) = oneshot::channel();
    (job(reply), answer)
}

type Answer = oneshot::Receiver<Result<Parts>>;

/// Waits for every answer, in order.
async fn answered<T>(answers: Vec<Answer>, each: impl Fn(Parts) -> Result<T>) -> Vec<Result<T>> {
    let mut out = Vec::with_capacity(answers.len());
    for answer in answers {
        out.push(match answer.await {
            Err(_) => Err(stopped()),
            Ok(done) => done.and_then(&each),
        });
    }
    out
}

async fn view(engine: &Engine, parts: Parts) -> Result<InstanceView> {
    let mut view = engine.view(&parts.row, parts.tasks, parts.timers).await?;
    view.existing = parts.existing;
    Ok(view)
}

fn stopped() -> EngineError {
    EngineError::Internal(
        "the engine could not answer for this event (the error is in the server log); check \
         whether it took effect (a repeated start with its business key is safe), then try again"
            .into(),
    )
}

/// Runs `count` committers on a new thread with a runtime of its own. The thread ends when they
/// do, that is when the engine is dropped.
fn spawn_thread(engine: &Engine, queue: &Queue, count: usize) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let committers: Vec<_> = (0..count)
        .map(|_| run(engine.downgrade(), queue.clone()))
        .collect();
    std::thread::Builder::new()
        .name("yimen-committer".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut running = tokio::task::JoinSet::new();
                for committer in committers {
                    running.spawn(committer);
                }
                while running.join_next().await.is_some() {}
            })
        })?;
    Ok(())
}

/// One committer: takes what is queued, writes it, answers; until the engine is dropped.
async fn run(engine: Weak<Inner>, queue: Queue) {
    // PostgreSQL: this committer's connection, kept from batch to batch.
    let mut held = crate::store::Held::default();
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = queue.lock().await;
            match receiver.recv().await {
                Some(jobs) => batch.extend(jobs),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(jobs) => batch.extend(jobs),
                    Err(_) => break,
                }
            }
        }
        let Some(engine) = Engine::upgrade(&engine) else {
            return;
        };
        // A batch runs as its own task: should it panic (a bug), its callers get an error and
        // this committer goes on with the next batch.
        // Kept to ring the store after the batch, which the spawned task takes.
        let after = engine.clone();
        let written = tokio::spawn(async move {
            engine.commit_batch(batch, &mut held).await;
            held
        })
        .await;
        match written {
            Ok(kept) => held = kept,
            // The connection went with the batch (closed, if it was in a transaction).
            Err(e) => {
                held = crate::store::Held::default();
                tracing::error!(error = %e, "a batch of events failed unexpectedly; its callers were told");
            }
        }
        after.store().after_batch();
    }
}

/// What a batch wrote: the unit of work, the claims' tasks, per other event its instance id
/// and whether it existed already (or why it was refused).
type Written = (Staged, Claimed, Vec<Result<(String, bool)>>);

impl Engine {
    /// Writes a batch in one transaction and answers each event (see the module doc).
    async fn commit_batch(&self, batch: Vec<Job>, held: &mut crate::store::Held) {
        // SQLite in a file: what the last batches left (see `Carry`); taken for this batch, and
        // put back only if it commits. A retry starts without it.
        let (events, began) = (batch.len(), std::time::Instant::now());
        let store = self.store();
        let mut carry = store.take_carry();
        let written: Result<Written> = transaction!(self, held, |tx, fx| {
            let mut st = crate::store::Store::resume(&mut carry, self.chain_key());
            // Claims first: the other events see them.
            let (queries, tasks, keys) = batch_reads(&batch);
            // Every row the batch needs, read in a few statements.
            let reads = BatchReads {
                claims: &queries,
                tasks: &tasks,
                keys: &keys,
            };
            let claimed = store
                .load_batch(&mut tx, &mut st, reads, record_lapsed)
                .await?;
            let mut out = Vec::with_capacity(batch.len());
            for job in &batch {
                let mark = st.mark();
                let done = match job {
                    Job::Claim(..) => continue,
                    Job::Start(j, _) => {
                        self.start_in(&mut tx, &mut st, &mut fx, &j.req, &j.dep, &j.vars, j.now)
                            .await
                    }
                    Job::Complete(req, _) => self
                        .complete_in(&mut tx, &mut st, &mut fx, req)
                        .await
                        .map(|id| (id, false)),
                };
                out.push(st.settle(mark, done)?);
            }
            // On SQLite the flush commits too.
            st.flush_last(&mut tx).await?;
            (st, claimed, out)
        });
        match written {
            Ok((st, claimed, results)) => {
                // Observed before anyone is answered, as the counts are (`answer`).
                self.metrics().batch(events, began.elapsed());
                self.answer(batch, st, claimed, results)
            }
            // A statement of the batch failed for good (not contention): a value one event
            // brought that the database refuses (a key too long for its index, a character
            // it cannot store) must fail that event alone, so the batch is written again in
            // halves until the failing event is by itself. Only on this path: a batch that
            // commits pays nothing for it.
            Err(e) if batch.len() > 1 && matches!(e, EngineError::Storage(_)) => {
                tracing::warn!(error = %e, events = batch.len(), "a batch failed; writing it again in halves to find the event that fails");
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                Box::pin(self.commit_batch(first, held)).await;
                Box::pin(self.commit_batch(second, held)).await;
            }
            Err(e) => {
                self.metrics().batch(events, began.elapsed());
                // One event alone: a value the database refuses is the caller's to fix.
                let e = e.refused_value().unwrap_or(e);
                for job in batch {
                    let _ = match job {
                        Job::Start(_, reply) | Job::Complete(_, reply) => {
                            reply.send(Err(e.clone_for_batch())).map_err(|_| ())
                        }
                        Job::Claim(_, reply) => {
                            reply.send(Err(e.clone_for_batch())).map_err(|_| ())
                        }
                    };
                }
            }
        }
    }

    /// Answers each event of a batch that committed, from the unit of work it left (and keeps
    /// that for the next batch).
    fn answer(
        &self,
        batch: Vec<Job>,
        mut st: Staged,
        (claimed, read): Claimed,
        results: Vec<Result<(String, bool)>>,
    ) {
        let store = self.store();
        // Counted before anyone is answered, so that an answer implies the count.
        let hits = st.carry().take_hits();
        store.count_carried(hits);
        self.metrics().answered(counted(&batch, &claimed, &results));
        let (mut live, mut pending) = st.live_by_instance();
        let mut claimed = claimed.into_iter();
        let mut results = results.into_iter();
        for job in batch {
            if let Job::Claim(_, reply) = job {
                let rows = claimed.next().unwrap_or_default();
                let answer = rows
                    .into_iter()
                    // As the batch left it, else as the claim read it.
                    .map(|t| {
                        match st
                            .instance(&t.instance_id)
                            .or_else(|| read.get(&t.instance_id))
                        {
                            Some(inst) => Ok((t, inst.clone())),
                            None => Err(EngineError::Internal(format!(
                                "instance {} is missing",
                                t.instance_id
                            ))),
                        }
                    })
                    .collect();
                let _ = reply.send(answer);
                continue;
            }
            let Some(result) = results.next() else {
                break;
            };
            let answer = result.and_then(|(id, existing)| {
                let row = st
                    .instance(&id)
                    .cloned()
                    .ok_or_else(|| EngineError::Internal(format!("instance {id} is missing")))?;
                Ok(Parts {
                    // A case answered twice in one batch: the second gets copies.
                    tasks: live.get(&id).cloned().unwrap_or_default(),
                    timers: pending.get(&id).cloned().unwrap_or_default(),
                    row,
                    existing,
                })
            });
            let _ = match job {
                Job::Start(_, reply) | Job::Complete(_, reply) => reply.send(answer),
                Job::Claim(..) => Ok(()),
            };
        }
        live.clear();
        pending.clear();
        store.keep(st);
    }
}

/// The claimed tasks, completions and new cases of a batch that committed (`metrics`).
fn counted(
    batch: &[Job],
    claimed: &[Vec<TaskRow>],
    results: &[Result<(String, bool)>],
) -> crate::metrics::Answered {
    let mut counts = crate::metrics::Answered {
        claimed: claimed.iter().map(|rows| rows.len() as u64).sum(),
        ..Default::default()
    };
    let events = batch.iter().filter(|job| !matches!(job, Job::Claim(..)));
    for (job, result) in events.zip(results) {
        match (job, result) {
            (Job::Complete(..), Ok(_)) => counts.completed += 1,
            (Job::Start(..), Ok((_, false))) => counts.started += 1,
            _ => {}
        }
    }
    counts
}

/// What a batch asks to have read before its events run: its claims, the tasks its
/// completions finish, the (process, business key) pairs its starts use.
fn batch_reads(batch: &[Job]) -> (Vec<&ClaimQuery>, Vec<&String>, Vec<(String, String)>) {
    let mut queries = Vec::new();
    let mut tasks = Vec::new();
    let mut keys = Vec::new();
    for job in batch {
        match job {
            Job::Claim(q, _) => queries.push(q),
            Job::Complete(req, _) => tasks.push(&req.task_id),
            Job::Start(j, _) => {
                if let Some(bk) = &j.req.business_key {
                    keys.push((j.dep.key.clone(), bk.clone()));
                }
            }
        }
    }
    (queries, tasks, keys)
}
