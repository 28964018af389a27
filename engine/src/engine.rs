//! The engine facade: everything the HTTP API, the CLI and the timer loop do goes through
//! [`Engine`]. All writes of one external event commit together (retried on contention); starts,
//! completions and claims share transactions with the events that arrive with them (group
//! commit, `commit.rs`). After a commit, subscribers learn of new tasks and timers.

use crate::clock::Clock;
use crate::error::{EngineError, Problem, Result};
use crate::runtime::due::DueDates;
use crate::runtime::state::{Changeset, Status};
use crate::runtime::{self, Event, InstanceData, TaskRef};
use crate::store::json_list;
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{ClaimQuery, DocumentRow, InstanceRow, OutboxRow, TaskRow, TimerRow, Tx};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value as Json, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use yimen_dsl::model::NodeKind;

/// What a committed transaction tells subscribers.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) queues: Vec<String>,
    pub(crate) timers: Vec<i64>,
}

pub(crate) struct Inner {
    /// The database, and what only one of the two needs (`store::Store`).
    store: crate::store::Store,
    clock: Arc<dyn Clock>,
    due: Arc<dyn DueDates>,
    cache: Mutex<HashMap<(String, i64), Arc<Loaded>>>,
    /// The latest version of each process, with the access generation it was read under
    /// (see [`Engine::start_under`]).
    latest: Mutex<HashMap<String, (i64, i64)>>,
    tasks_tx: broadcast::Sender<String>,
    timers_tx: broadcast::Sender<i64>,
    /// Hot events (starts, completions, claims) go to the committers, which share one
    /// transaction between the events that arrive together (group commit; see `commit.rs`).
    committer: crate::commit::Committer,
    /// What one request may make the engine do ([`Engine::set_limits`]).
    limits: std::sync::RwLock<crate::limits::Limits>,
    /// The ledger's keys, kept outside the database (`Engine::set_ledger_keys`).
    ledger_keys: std::sync::OnceLock<Arc<crate::ledger_keys::LedgerKeys>>,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pool", &self.inner.store.pool())
            .finish()
    }
}

/// Runs `$body` in a write transaction, retried on contention; `$fx` collects effects that are
/// published after the commit.
macro_rules! transaction {
    ($self:ident, |$tx:ident, $fx:ident| $body:block) => {{
        let mut held = $crate::store::Held::default();
        $crate::engine::transaction!($self, &mut held, |$tx, $fx| $body)
    }};
    // On the connection `$held` keeps between transactions (a committer's; `store::Held`).
    ($self:ident, $held:expr, |$tx:ident, $fx:ident| $body:block) => {{
        let mut attempt = 0u32;
        loop {
            let mut $fx = $crate::engine::Effects::default();
            let r: Result<_> = async {
                let _gate = $self.write_gate().await;
                let mut $tx = $self.begin_write($held).await?;
                let v: Result<_> = async { Ok($body) }.await;
                match v {
                    Ok(v) => {
                        // Other servers' timer loops learn of new timers (PostgreSQL NOTIFY).
                        if let Some(due) = $fx.timers.iter().min() {
                            $tx.notify_timers($self.timer_channel(), *due).await?;
                        }
                        $tx.commit_held($held).await?;
                        Ok(v)
                    }
                    Err(e) => {
                        // Now, not when the connection is next used: a refused event must not
                        // keep its row locks (claims skip locked rows).
                        let _ = $tx.rollback_held($held).await;
                        Err(e)
                    }
                }
            }
            .await;
            match r {
                Err(e) if e.is_retryable() && attempt < 12 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2u64 << attempt.min(7)))
                        .await;
                }
                Ok(v) => {
                    $self.publish($fx);
                    break Ok(v);
                }
                Err(e) => break Err(e),
            }
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use transaction;

mod deploy;
mod events;
mod fire;
mod history;
mod ledger;
mod open;
mod outbox;
mod start;
mod types;
mod views;

pub(crate) use crate::store::batch::Claimed;
pub use deploy::{MAX_MODEL_DEPTH, json_depth, read_model};
pub(crate) use history::{Entry, chain, claim_entry, record_lapsed};
pub(crate) use start::ProcessVersion;
pub use start::{MAX_BUSINESS_KEY_CHARS, text_problem};
pub use types::*;

use deploy::Loaded;
use start::new_instance_row;
use types::{deployment_view, outbox_view, task_view};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Why `caller` may not finish (complete, extend, release, fail) task `id`: its claim is
/// another caller's. `None` when it may (or the task is not claimed: the lock says why not).
pub(crate) fn not_holder(
    id: &str,
    state: &str,
    holder: Option<&str>,
    caller: &str,
) -> Option<String> {
    match holder {
        Some(holder) if state == "claimed" && holder != caller => Some(format!(
            "task {id} is claimed by `{holder}`: only the caller that claimed it may finish it, \
             not `{caller}`; claim a task yourself"
        )),
        _ => None,
    }
}

impl Engine {
    /// Applies `event` to `id` and follows on to linked instances (children started, parents
    /// waiting for a child that ended), all in `tx`.
    pub(crate) async fn run_event(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        id: &str,
        event: Event,
    ) -> Result<()> {
        let mut queue = VecDeque::from([(id.to_string(), event)]);
        let mut first = true;
        while let Some((id, event)) = queue.pop_front() {
            let row = st
                .lock_instance(tx, &id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
            let loaded = self
                .loaded_version(tx, &row.process_key, row.version)
                .await?;
            let data = instance_data(&row)?;
            let now = self.now();
            let cs = match runtime::advance(
                &loaded.model,
                &loaded.data,
                &data,
                event,
                now,
                &*self.inner.due,
                runtime::Bounds {
                    limits: self.limits(),
                    refuse: first,
                },
            ) {
                Ok(cs) => cs,
                Err(e) if first => return Err(e),
                // A follow-on event a linked instance no longer accepts is dropped.
                Err(_) => continue,
            };
            first = false;
            let was_terminal = data.status.is_terminal();
            let mut cs = cs;
            for child in std::mem::take(&mut cs.children) {
                let started = match tx.deployment_tx(&child.process, None).await? {
                    None => Err(format!(
                        "linked process `{}` is not deployed; deploy it, then resolve the incident",
                        child.process
                    )),
                    Some(dep) => {
                        let cl = self.loaded(&dep)?;
                        match runtime::start_vars(
                            &cl.model,
                            &cl.data,
                            &child.vars,
                            now,
                            &self.limits(),
                        ) {
                            Err(e) => Err(format!(
                                "linked process `{}` cannot start: {e}",
                                child.process
                            )),
                            Ok(vars) => {
                                let crow = new_instance_row(
                                    &child.id,
                                    &dep.key,
                                    dep.version,
                                    None,
                                    &vars,
                                    Some((&row.id, &child.node)),
                                    now,
                                )?;
                                st.insert_instance(&crow);
                                Ok(())
                            }
                        }
                    }
                };
                match started {
                    Ok(()) => queue.push_back((
                        child.id.clone(),
                        Event::Start {
                            actor: "engine".into(),
                        },
                    )),
                    // Not the caller's fault (a worker completing a task): the parent gets an
                    // incident at the linking node, which an operator resolves.
                    Err(message) => runtime::child_failed(&mut cs, &child, message),
                }
            }
            let status = cs.status;
            let result = cs.result.clone();
            let ended_child = match &row.parent_id {
                Some(parent) if status.is_terminal() && !was_terminal => {
                    Some((parent.clone(), row.id.clone()))
                }
                _ => None,
            };
            self.apply(st, fx, row, cs, now);
            if let Some((parent, child)) = ended_child {
                queue.push_back((
                    parent,
                    Event::ChildEnded {
                        child,
                        result,
                        status,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Writes a changeset.
    pub(crate) fn apply(
        &self,
        st: &mut Staged,
        fx: &mut Effects,
        mut row: InstanceRow,
        cs: Changeset,
        now: DateTime<Utc>,
    ) {
        let now_ms = ms(now);
        for t in &cs.new_tasks {
            let task = TaskRow {
                id: t.id.clone(),
                instance_id: row.id.clone(),
                node: t.node.clone(),
                label: t.label.clone(),
                queue: t.queue.clone(),
                org_unit: t.org_unit.clone(),
                state: "open".into(),
                lock_token: 0,
                locked_by: None,
                lock_expires_at: None,
                available_at: now_ms,
                assignee: t.assignee.clone(),
                item: t.item.as_ref().map(Json::to_string),
                outcome: None,
                completed_by: None,
                failures: 0,
                last_error: None,
                due_at: t.due_at,
                created_at: now_ms,
                completed_at: None,
                claimed_at: None,
                lapsed_by: None,
                lapsed_at: None,
                worker: None,
                lapsed_worker: None,
            };
            fx.queues.push(t.queue.clone());
            st.insert_task(task);
        }
        for t in &cs.new_timers {
            let timer = TimerRow {
                id: t.id.clone(),
                instance_id: row.id.clone(),
                kind: t.kind.to_string(),
                node: t.node.clone(),
                task_id: t.task_id.clone(),
                due_at: t.due_at,
                payload: t.payload.to_string(),
                state: "pending".into(),
            };
            st.insert_timer(&timer, now_ms);
            fx.timers.push(t.due_at);
        }
        for id in &cs.cancel_timers {
            st.cancel_timer(id);
        }
        // Deadlines bound to a clock that paused, resumed or was extended.
        for (task, due) in &cs.task_due {
            st.set_task_due(task, *due);
        }
        if cs.status.is_terminal() {
            // Claims that end with their case.
            for task in st.claimed_tasks(&row.id) {
                if let Some((entry, at)) = claim_entry(&task) {
                    st.insert_history_many(chain(st.chain_key(), &mut row, vec![entry], at));
                }
            }
            st.cancel_open_tasks(&row.id, now_ms);
            st.cancel_instance_timers(&row.id);
        }
        for o in &cs.outbox {
            let out = OutboxRow {
                id: o.id.clone(),
                instance_id: row.id.clone(),
                channel: o.channel.clone(),
                dedup_key: o.dedup_key.clone(),
                payload: o.payload.to_string(),
                state: "pending".into(),
                attempts: 0,
                next_attempt_at: now_ms,
                last_error: None,
                created_at: now_ms,
                delivered_at: None,
            };
            st.insert_outbox(out);
        }
        for d in &cs.documents {
            let doc = DocumentRow {
                id: d.id.clone(),
                instance_id: row.id.clone(),
                name: d.name.clone(),
                label: d.label.clone(),
                public: i64::from(d.public),
                content: d.content.clone(),
                created_at: now_ms,
            };
            st.insert_document(doc);
        }
        let entries: Vec<Entry> = cs
            .history
            .into_iter()
            .map(|h| (h.actor, h.node, h.kind, h.text, h.data.to_string()))
            .collect();
        st.insert_history_many(chain(st.chain_key(), &mut row, entries, now_ms));
        row.status = cs.status.as_str().into();
        row.result = cs.result.or(row.result.take());
        row.incident = cs.incident;
        // Serialising maps of JSON values cannot fail.
        row.vars = serde_json::to_string(&cs.vars).unwrap_or_default();
        row.state = serde_json::to_string(&cs.state).unwrap_or_default();
        if cs.provisional && row.provisional == 0 {
            tracing::warn!(
                instance = %row.id,
                "a deadline of this case reaches into a year the calendar has no data for; it is \
                 provisional (weekends only there): add that year's arrangement to the calendar \
                 file and run `yimen calendar check`"
            );
        }
        row.provisional = i64::from(cs.provisional);
        row.updated_at = now_ms;
        if cs.status.is_terminal() && row.ended_at.is_none() {
            row.ended_at = Some(now_ms);
        }
        st.update_instance(row);
    }

    // ---- tasks ----

    /// Fetch-and-lock up to `max` tasks of the queues for `lease`.
    pub async fn claim(&self, req: ClaimRequest) -> Result<Vec<ClaimedTask>> {
        let mut problems = Vec::new();
        if req.queues.is_empty() {
            problems.push(Problem::new("queues", "name at least one queue"));
        }
        if req.actor.trim().is_empty() {
            problems.push(Problem::new("actor", "is required"));
        }
        if req.max == 0 || req.max > 1000 {
            problems.push(Problem::new("max", "must be between 1 and 1000"));
        }
        if req.lease <= Duration::zero() || req.lease > Duration::days(7) {
            problems.push(Problem::new("lease", "must be between 1 second and 7 days"));
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let now = self.now();
        let q = ClaimQuery {
            actor: req.actor.clone(),
            worker: req
                .worker
                .as_deref()
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string),
            queues: json_list(&req.queues),
            org_units: req.org_units.as_ref().map(json_list),
            now: ms(now),
            expires_at: ms(now + req.lease),
            max: i64::from(req.max),
        };
        self.committer().claim(self, q).await
    }

    async fn claimed(&self, t: TaskRow) -> Result<ClaimedTask> {
        let inst = self
            .inner
            .store
            .instance(&t.instance_id)
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("instance {} is missing", t.instance_id))
            })?;
        self.claimed_with(t, &inst).await
    }

    pub(crate) async fn claimed_with(&self, t: TaskRow, inst: &InstanceRow) -> Result<ClaimedTask> {
        let loaded = self.loaded_by_key(&inst.process_key, inst.version).await?;
        let (outcomes, fields) = match loaded
            .model
            .nodes
            .iter()
            .find(|n| n.id.name == t.node)
            .map(|n| &n.kind)
        {
            Some(NodeKind::Task(spec)) => {
                let mut names: Vec<(String, bool)> = spec
                    .fields
                    .iter()
                    .map(|f| (f.var.name.clone(), f.required))
                    .collect();
                for o in &spec.outcomes {
                    for r in &o.requires {
                        if !names.iter().any(|(n, _)| n == &r.name) {
                            names.push((r.name.clone(), false));
                        }
                    }
                }
                let fields = names
                    .into_iter()
                    .map(|(name, required)| {
                        let decl = loaded.model.vars.iter().find(|v| v.name.name == name);
                        FieldView {
                            ty: decl
                                .map(|d| yimen_dsl::value::type_name(&d.ty))
                                .unwrap_or_default(),
                            label: decl.and_then(|d| d.label.clone()),
                            name,
                            required,
                        }
                    })
                    .collect();
                (
                    spec.outcomes.iter().map(|o| o.key.name.clone()).collect(),
                    fields,
                )
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(ClaimedTask {
            lock_token: t.lock_token,
            lock_expires_at: time(t.lock_expires_at.unwrap_or_default()),
            process: inst.process_key.clone(),
            vars: serde_json::from_str(&inst.vars)?,
            outcomes,
            fields,
            task: task_view(t),
        })
    }

    /// Checks that the claim of `task` is held by `caller`: only the caller that claimed a task
    /// (the holder `assignee` was checked against) may complete, extend, release or fail it,
    /// whoever knows its lock token. 403 otherwise.
    fn check_holder(task: &TaskRow, caller: &str) -> Result<()> {
        match not_holder(&task.id, &task.state, task.locked_by.as_deref(), caller) {
            Some(why) => Err(EngineError::Forbidden { why }),
            None => Ok(()),
        }
    }

    /// Checks that `task` is claimed under `token`; says why not.
    fn check_lock(task: &TaskRow, token: i64) -> Result<()> {
        match task.state.as_str() {
            "claimed" if task.lock_token == token => Ok(()),
            "claimed" => Err(EngineError::conflict(format!(
                "lock token {token} is stale: task {} was claimed again (current token {}); claim it anew",
                task.id, task.lock_token
            ))),
            "completed" if task.lock_token == token => Err(EngineError::AlreadyCompleted {
                why: format!(
                    "task {} was already completed with this lock token{}{}: the completion was applied once, nothing was done again",
                    task.id,
                    task.outcome
                        .as_deref()
                        .map(|o| format!(" (outcome {o})"))
                        .unwrap_or_default(),
                    task.completed_by
                        .as_deref()
                        .map(|w| format!(" by {w}"))
                        .unwrap_or_default()
                ),
            }),
            "completed" => Err(EngineError::conflict(format!(
                "task {} is already completed{}",
                task.id,
                task.completed_by
                    .as_deref()
                    .map(|w| format!(" by {w}"))
                    .unwrap_or_default()
            ))),
            "cancelled" => Err(EngineError::conflict(format!(
                "task {} was cancelled: its case moved on or ended",
                task.id
            ))),
            "failed" => Err(EngineError::conflict(format!(
                "task {} failed; an operator must resolve the incident first",
                task.id
            ))),
            _ => Err(EngineError::conflict(format!(
                "task {} is not claimed (its lease may have run out and been released); claim it first",
                task.id
            ))),
        }
    }

    /// Completes a claimed task with an outcome and variables. 422 lists every problem and
    /// changes nothing; 409 says why the token is not good.
    pub async fn complete(&self, req: CompleteRequest) -> Result<InstanceView> {
        self.committer().complete(self, req).await
    }

    /// Completes several tasks, each its own event (atomic alone; one refused with 403, 404,
    /// 409 or 422 changes nothing and does not affect the others), sharing commits with every other
    /// event queued meanwhile (group commit). Answers per request, in order, with the task's
    /// instance briefly (a worker completing a batch needs no full view per task).
    pub async fn complete_each(&self, reqs: Vec<CompleteRequest>) -> Vec<Result<Completed>> {
        self.committer().complete_each(self, reqs).await
    }

    /// Completes many tasks in ONE transaction (one batch of the committers, with whatever
    /// else is queued): one refused completion (409, 422, 404) is rolled back to its mark,
    /// changes nothing of its own and does not affect the others. Returns, per request in
    /// order, the instance id or why not.
    pub async fn complete_many(&self, reqs: &[CompleteRequest]) -> Vec<Result<String>> {
        self.complete_each(reqs.to_vec())
            .await
            .into_iter()
            .map(|done| done.map(|c| c.instance_id))
            .collect()
    }

    pub(crate) async fn complete_in(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        req: &CompleteRequest,
    ) -> Result<String> {
        let mut task = st
            .lock_task(tx, &req.task_id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("task {}", req.task_id)))?;
        let actor = match &req.access {
            None => req.actor.clone(),
            Some(principal) => {
                // A task of a unit the token may not see is answered as unknown: its id is
                // not confirmed.
                if !principal.sees_unit(task.org_unit.as_deref()) {
                    return Err(EngineError::not_found(format!("task {}", task.id)));
                }
                if !principal.works_queue(&task.queue, task.org_unit.as_deref()) {
                    return Err(EngineError::Forbidden {
                        why: principal.may_not_work(&task.id, &task.queue),
                    });
                }
                principal.name.clone()
            }
        };
        Engine::check_lock(&task, req.lock_token)?;
        // After the lock: a claimer whose lease ran out learns that (409), not who holds it now.
        if let Some(principal) = &req.access {
            Engine::check_holder(&task, &principal.name)?;
        }
        if let Some((entry, at)) = claim_entry(&task) {
            let mut inst = st
                .lock_instance(tx, &task.instance_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {}", task.instance_id)))?;
            st.insert_history_many(chain(st.chain_key(), &mut inst, vec![entry], at));
            st.update_instance(inst);
            // Recorded: should the event end the case, its claims are recorded without this
            // one (the row keeps `claimed_at`, set again below).
            st.update_task(TaskRow {
                claimed_at: None,
                ..task.clone()
            });
        }
        let tref = TaskRef {
            id: task.id.clone(),
            node: task.node.clone(),
            item: task
                .item
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            assignee: task.assignee.clone(),
            locked_by: task.locked_by.clone(),
        };
        self.run_event(
            tx,
            st,
            fx,
            &task.instance_id,
            Event::TaskCompleted {
                task: tref,
                outcome: req.outcome.clone(),
                vars: req.vars.clone(),
                actor: actor.clone(),
            },
        )
        .await?;
        let outcome = match &req.outcome {
            Some(o) => Some(o.clone()),
            None => self.only_outcome(tx, st, &task).await?,
        };
        task.state = "completed".into();
        task.outcome = outcome;
        task.completed_by = Some(actor);
        task.completed_at = Some(ms(self.now()));
        task.lock_expires_at = None;
        // Only a task with a deadline has timers of its own.
        if task.due_at.is_some() {
            st.cancel_task_timers(&task.id);
        }
        let instance = task.instance_id.clone();
        st.update_task(task);
        Ok(instance)
    }

    async fn only_outcome(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        task: &TaskRow,
    ) -> Result<Option<String>> {
        let inst = st
            .lock_instance(tx, &task.instance_id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {}", task.instance_id)))?;
        let loaded = self
            .loaded_version(tx, &inst.process_key, inst.version)
            .await?;
        Ok(
            match loaded
                .model
                .nodes
                .iter()
                .find(|n| n.id.name == task.node)
                .map(|n| &n.kind)
            {
                Some(NodeKind::Task(spec)) => spec.outcomes.first().map(|o| o.key.name.clone()),
                _ => None,
            },
        )
    }

    /// Extends the lease of a claimed task held by `caller`.
    pub async fn extend(
        &self,
        task_id: &str,
        lock_token: i64,
        lease: Duration,
        caller: &str,
    ) -> Result<ClaimedTask> {
        if lease <= Duration::zero() || lease > Duration::days(7) {
            return Err(EngineError::invalid(
                "lease",
                "must be between 1 second and 7 days",
            ));
        }
        let task = transaction!(self, |tx, _fx| {
            let mut task = tx
                .lock_task(task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {task_id}")))?;
            Engine::check_lock(&task, lock_token)?;
            Engine::check_holder(&task, caller)?;
            task.lock_expires_at = Some(ms(self.now() + lease));
            tx.update_task(&task).await?;
            task
        })?;
        self.claimed(task).await
    }

    /// Gives a claimed task back to its queue (`actor`: the caller, who must hold the claim).
    pub async fn release(&self, task_id: &str, lock_token: i64, actor: &str) -> Result<TaskView> {
        let task = transaction!(self, |tx, fx| {
            let mut task = tx
                .lock_task(task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {task_id}")))?;
            Engine::check_lock(&task, lock_token)?;
            Engine::check_holder(&task, actor)?;
            let claim = claim_entry(&task);
            task.state = "open".into();
            task.locked_by = None;
            task.worker = None;
            task.lock_expires_at = None;
            task.available_at = ms(self.now());
            tx.update_task(&task).await?;
            let released = self.entry_now(
                actor,
                &task.node,
                "task_released",
                format!("{} released by {actor}", task.node),
                json!({ "task": task.id }),
            );
            let entries = claim.into_iter().chain([released]).collect();
            self.note(&mut tx, &task.instance_id, entries).await?;
            fx.queues.push(task.queue.clone());
            task
        })?;
        Ok(task_view(task))
    }

    /// Reports a worker's failure: retried later, or (no `retry_after`) an incident. `actor`, the
    /// caller, must hold the claim.
    pub async fn fail(&self, req: FailRequest) -> Result<TaskView> {
        let task = transaction!(self, |tx, fx| {
            let mut task = tx
                .lock_task(&req.task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {}", req.task_id)))?;
            Engine::check_lock(&task, req.lock_token)?;
            Engine::check_holder(&task, &req.actor)?;
            let claim = claim_entry(&task);
            let now = self.now();
            task.failures += 1;
            task.last_error = Some(req.error.clone());
            task.locked_by = None;
            task.worker = None;
            task.lock_expires_at = None;
            match req.retry_after {
                Some(after) => {
                    task.state = "open".into();
                    task.available_at = ms(now + after.max(Duration::zero()));
                    fx.queues.push(task.queue.clone());
                }
                None => task.state = "failed".into(),
            }
            tx.update_task(&task).await?;
            let text = match req.retry_after {
                Some(after) => format!(
                    "{} failed ({}); retry in {}s",
                    task.node,
                    req.error,
                    after.num_seconds()
                ),
                None => format!("{} failed ({}); incident", task.node, req.error),
            };
            let failed = self.entry_now(
                &req.actor,
                &task.node,
                "task_failed",
                text,
                json!({ "task": task.id, "failures": task.failures }),
            );
            let entries = claim.into_iter().chain([failed]).collect();
            let mut row = self.note(&mut tx, &task.instance_id, entries).await?;
            if req.retry_after.is_none()
                && !Status::parse(&row.status).is_some_and(Status::is_terminal)
            {
                row.status = Status::Incident.as_str().into();
                row.incident = Some(format!("{}: {}", task.node, req.error));
                row.updated_at = ms(now);
                tx.update_instance(&row).await?;
            }
            task
        })?;
        Ok(task_view(task))
    }
}

fn instance_data(row: &InstanceRow) -> Result<InstanceData> {
    Ok(InstanceData {
        id: row.id.clone(),
        created_at: time(row.created_at),
        status: Status::parse(&row.status)
            .ok_or_else(|| EngineError::Internal(format!("unknown status {}", row.status)))?,
        vars: serde_json::from_str(&row.vars)?,
        state: serde_json::from_str(&row.state)?,
        provisional: row.provisional != 0,
    })
}
