//! The engine facade: everything the HTTP API, the CLI and the timer loop do goes through
//! [`Engine`]. All writes of one external event commit together (retried on contention); starts,
//! completions and claims share transactions with the events that arrive with them (group
//! commit, `commit.rs`). After a commit, subscribers learn of new tasks and timers.

use crate::clock::Clock;
use crate::error::{EngineError, Problem, Result};
use crate::runtime::due::DueDates;
use crate::runtime::state::{Changeset, RunState, Status, Wait};
use crate::runtime::{self, DeploymentData, Event, InstanceData, TaskRef};
use crate::store::json_list;
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{
    ClaimQuery, DeploymentRow, DocumentRow, HistoryRow, InstanceRow, OutboxRow, StorePool, TaskRow,
    TimerRow, Tx,
};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use yimen_dsl::model::{NodeKind, Process};

/// A deployment's model and data, as cached.
pub(crate) struct Loaded {
    pub(crate) model: Process,
    pub(crate) data: DeploymentData,
}

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
    /// Instances the committer took from its carry instead of reading them (tests).
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

mod fire;
mod ledger;
mod outbox;
mod types;
mod views;

pub use types::*;
use types::{deployment_view, outbox_view, task_view};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The deployed version a start runs on.
pub(crate) struct ProcessVersion {
    pub(crate) key: String,
    pub(crate) version: i64,
}

/// A history entry: actor, node, kind, text, data (JSON).
pub(crate) type Entry = (String, Option<String>, String, String, String);

/// Links entries into the instance's hash chain (keyed with `key`, see `ledger_keys`): updates
/// `row`'s count and head.
pub(crate) fn chain(
    key: Option<&crate::ledger_keys::ChainKey>,
    row: &mut InstanceRow,
    entries: Vec<Entry>,
    now: i64,
) -> Vec<HistoryRow> {
    let mut rows = Vec::with_capacity(entries.len());
    for (actor, node, kind, text, data) in entries {
        let mut h = HistoryRow {
            instance_id: row.id.clone(),
            seq: row.history_count + 1,
            at: now,
            actor,
            node,
            kind,
            text,
            data,
            prev_hash: row.history_head.clone(),
            hash: String::new(),
        };
        h.hash = crate::ledger::seal(key, &h);
        row.history_count = h.seq;
        row.history_head = h.hash.clone();
        rows.push(h);
    }
    rows
}

/// The history entry of a task's current claim, with the time it was made, while the task is
/// claimed. A claim is written to the history when it ends (completed, failed, released) and
/// not when it is made, so that a claim writes only its task row (Temporal records an
/// activity's start when the activity closes, for the same reason). `None` for a claim made
/// before migration 0400, which was recorded when it was made.
pub(crate) fn claim_entry(task: &TaskRow) -> Option<(Entry, i64)> {
    if task.state != "claimed" {
        return None;
    }
    Some(claimed_entry(
        task,
        task.locked_by.as_deref()?,
        task.worker.as_deref(),
        task.lock_token,
        task.claimed_at?,
        false,
    ))
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

/// Records each lapsed claim in its instance's history (the instances are loaded).
pub(crate) fn record_lapsed(st: &mut Staged, claimed: &[Vec<TaskRow>]) {
    for t in claimed.iter().flatten() {
        let Some((entry, at)) = lapsed_entry(t) else {
            continue;
        };
        let Some(mut inst) = st.instance(&t.instance_id).cloned() else {
            continue;
        };
        st.insert_history_many(chain(st.chain_key(), &mut inst, vec![entry], at));
        st.update_instance(inst);
    }
}

pub(crate) use crate::store::batch::Claimed;

/// The history entry of the claim a new claim took the task over from (its lease had run
/// out), with the time it was made.
fn lapsed_entry(task: &TaskRow) -> Option<(Entry, i64)> {
    Some(claimed_entry(
        task,
        task.lapsed_by.as_deref()?,
        task.lapsed_worker.as_deref(),
        task.lock_token - 1,
        task.lapsed_at?,
        true,
    ))
}

/// A `task_claimed` entry: `by` (the caller, the entry's actor) claimed `task` at `at` under
/// `token`, through the worker labelled `worker` if it gave one.
fn claimed_entry(
    task: &TaskRow,
    by: &str,
    worker: Option<&str>,
    token: i64,
    at: i64,
    lapsed: bool,
) -> (Entry, i64) {
    let through = match worker {
        Some(worker) if worker != by => format!("worker {worker}, "),
        _ => String::new(),
    };
    let mut data = json!({ "task": task.id, "lock_token": token });
    if let Some(worker) = worker {
        data["worker"] = json!(worker);
    }
    let text = if lapsed {
        data["lapsed"] = json!(true);
        format!(
            "{} claimed by {by} ({through}token {token}); the lease ran out",
            task.node
        )
    } else {
        format!("{} claimed by {by} ({through}token {token})", task.node)
    };
    let entry = (
        by.to_string(),
        Some(task.node.clone()),
        "task_claimed".to_string(),
        text,
        data.to_string(),
    );
    (entry, at)
}

impl Engine {
    /// Opens the database at `url`; see [`Engine::open_with`].
    pub async fn open(url: &str, clock: Arc<dyn Clock>, due: Arc<dyn DueDates>) -> Result<Engine> {
        Engine::open_with(
            OpenOptions {
                url: url.to_string(),
                pg_schema: None,
            },
            clock,
            due,
        )
        .await
    }

    /// Opens (SQLite: creates) and migrates the database. A database migrated by a newer yimen
    /// is refused with [`EngineError::SchemaTooNew`].
    pub async fn open_with(
        opts: OpenOptions,
        clock: Arc<dyn Clock>,
        due: Arc<dyn DueDates>,
    ) -> Result<Engine> {
        let store = crate::store::Store::open(&opts.url, opts.pg_schema.as_deref()).await?;
        let (tasks_tx, _) = broadcast::channel(1024);
        let (timers_tx, _) = broadcast::channel(1024);
        let committer = store.committer();
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                clock,
                due,
                cache: Mutex::new(HashMap::new()),
                latest: Mutex::new(HashMap::new()),
                tasks_tx,
                timers_tx,
                limits: Default::default(),
                ledger_keys: Default::default(),
                committer,
            }),
        })
    }

    /// The limits events are held to (list sizes, fan-out, template fuel and output).
    pub fn limits(&self) -> crate::limits::Limits {
        *self
            .inner
            .limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the limits for the events from now on (`yimen serve` from its flags).
    pub fn set_limits(&self, limits: crate::limits::Limits) {
        *self
            .inner
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// Held for the length of a write transaction (SQLite; `None` on PostgreSQL).
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.inner.store.write_gate().await
    }

    /// Begins a write transaction (see `store::Store::begin_write`); hold
    /// [`Engine::write_gate`] first.
    pub(crate) async fn begin_write(&self, held: &mut crate::store::Held) -> Result<Tx> {
        self.inner.store.begin_write(held).await
    }

    pub(crate) fn committer(&self) -> &crate::commit::Committer {
        &self.inner.committer
    }

    /// Instances the committer took from what its earlier batches left, instead of reading
    /// them, for tests.
    #[doc(hidden)]
    pub fn carried(&self) -> u64 {
        self.inner.store.carried()
    }

    /// WAL checkpoints the engine ran so far, for tests: runs, and frames copied by the last.
    #[doc(hidden)]
    pub fn checkpoints_run(&self) -> Option<(u64, i64)> {
        self.inner.store.checkpoints().map(|c| c.runs())
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Engine> {
        weak.upgrade().map(|inner| Engine { inner })
    }

    /// The pool, for tables other helpers add (API tokens, access log).
    pub fn pool(&self) -> &StorePool {
        self.inner.store.pool()
    }

    /// The database, and what only one of the two needs.
    pub fn store(&self) -> &crate::store::Store {
        &self.inner.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Receives the queue name of every task created, after its transaction committed.
    pub fn subscribe_tasks(&self) -> broadcast::Receiver<String> {
        self.inner.tasks_tx.subscribe()
    }

    /// Receives the due time (unix millis) of every timer created, after commit.
    pub fn subscribe_timers(&self) -> broadcast::Receiver<i64> {
        self.inner.timers_tx.subscribe()
    }

    /// PostgreSQL: the LISTEN/NOTIFY channel on which new timers are announced to every
    /// server sharing the schema (`None` on SQLite).
    pub fn timer_channel(&self) -> Option<&str> {
        self.inner.store.timer_channel()
    }

    pub(crate) fn publish(&self, fx: Effects) {
        for q in fx.queues {
            let _ = self.inner.tasks_tx.send(q);
        }
        for t in fx.timers {
            let _ = self.inner.timers_tx.send(t);
        }
    }

    // ---- deployments ----

    /// Deploys a process. Identical source and files again return the existing version.
    pub async fn deploy(&self, req: DeployRequest) -> Result<Deployment> {
        let model = match req.model {
            Some(m) => m,
            None => compile(
                &req.file,
                &req.source,
                &req.files,
                self.inner.due.calendar_names(),
                self.inner.due.calendar_source(),
            )?,
        };
        // Imported processes given with it are deployed first (identical ones are no-ops), so
        // that `start process` finds them.
        for import in &model.imports {
            let path = format!("{}.flow", import.name);
            if path == req.file {
                continue;
            }
            if let Some(source) = req.files.get(&path) {
                let sub = DeployRequest {
                    file: path,
                    source: source.clone(),
                    files: req.files.clone(),
                    model: None,
                };
                Box::pin(self.deploy(sub)).await?;
            }
        }
        // Only the files the process names are kept (and hashed): deploying a folder with
        // unrelated changes gives the same version.
        let mut used = BTreeMap::new();
        let named = model
            .config
            .iter()
            .map(|c| c.file.clone())
            .chain(model.documents.iter().map(|d| d.template.clone()))
            .chain(model.imports.iter().map(|i| format!("{}.flow", i.name)));
        for path in named {
            if let Some(text) = req.files.get(&path) {
                if text.len() > crate::limits::MAX_DEPLOYED_FILE_BYTES {
                    return Err(EngineError::invalid(
                        format!("files.{path}"),
                        format!(
                            "has {} bytes; a file deployed with a process may have at most {}",
                            text.len(),
                            crate::limits::MAX_DEPLOYED_FILE_BYTES
                        ),
                    ));
                }
                used.insert(path, text.clone());
            }
        }
        let req = DeployRequest {
            file: req.file,
            source: req.source,
            files: used,
            model: None,
        };
        let config = load_config(&model, &req.files)?;
        let mut h = Sha256::new();
        h.update(req.source.as_bytes());
        for (path, content) in &req.files {
            h.update(b"\0file\0");
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(content.as_bytes());
        }
        let model_json = serde_json::to_string(&model)?;
        // What is stored must load: the same bound as `read_model`.
        let depth = json_depth(&model_json);
        if depth > MAX_MODEL_DEPTH {
            return Err(EngineError::invalid(
                "source",
                format!(
                    "the model nests {depth} levels deep, more than the {MAX_MODEL_DEPTH} the engine reads back; split deep expressions or types"
                ),
            ));
        }
        h.update(b"\0model\0");
        h.update(model_json.as_bytes());
        let hash = hex::encode(h.finalize());
        let key = model.key.name.clone();
        let now = ms(self.now());
        let files = serde_json::to_string(&req.files)?;
        let config = serde_json::to_string(&config)?;
        let (row, created) = transaction!(self, |tx, _fx| {
            if let Some(existing) = tx.deployment_by_hash(&key, &hash).await? {
                (existing, false)
            } else {
                let version = tx.max_version(&key).await? + 1;
                let row = DeploymentRow {
                    key: key.clone(),
                    version,
                    hash: hash.clone(),
                    title: model.title.clone(),
                    source: req.source.clone(),
                    model: model_json.clone(),
                    config: config.clone(),
                    files: files.clone(),
                    created_at: now,
                };
                tx.insert_deployment(&row).await?;
                // Who may start it may have changed: every server reads its rule again.
                tx.bump_access_generation().await?;
                (row, true)
            }
        })?;
        Ok(deployment_view(&row, created))
    }

    /// Every deployed version, by key and version.
    pub async fn definitions(&self) -> Result<Vec<Deployment>> {
        let rows = self.inner.store.deployments().await?;
        Ok(rows.iter().map(|r| deployment_view(r, false)).collect())
    }

    /// What the latest version of every deployed process lets roles do beyond working their
    /// queues (`oversees`, informing the person a case concerns): see [`crate::auth::RoleDuties`].
    pub async fn role_duties(&self) -> Result<crate::auth::RoleDuties> {
        let rows = self.inner.store.deployments().await?;
        let mut latest: HashMap<&str, &DeploymentRow> = HashMap::new();
        for row in &rows {
            let newer = latest
                .get(row.key.as_str())
                .is_none_or(|known| known.version < row.version);
            if newer {
                latest.insert(&row.key, row);
            }
        }
        let loaded = latest
            .values()
            .map(|row| self.loaded(row))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::auth::RoleDuties::of(loaded.iter().map(|l| &l.model)))
    }

    /// One version (`None`: the latest) with its source and model.
    pub async fn definition(&self, key: &str, version: Option<i64>) -> Result<DeploymentDetail> {
        let row = self
            .inner
            .store
            .deployment(key, version)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("process {key}")))?;
        let loaded = self.loaded(&row)?;
        Ok(DeploymentDetail {
            deployment: deployment_view(&row, false),
            source: row.source.clone(),
            model: loaded.model.clone(),
        })
    }

    fn loaded(&self, row: &DeploymentRow) -> Result<Arc<Loaded>> {
        let k = (row.key.clone(), row.version);
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = cache.get(&k) {
            return Ok(l.clone());
        }
        let l = Arc::new(Loaded {
            model: read_model(&row.model)?,
            data: DeploymentData {
                config: serde_json::from_str(&row.config)?,
                files: serde_json::from_str(&row.files)?,
            },
        });
        cache.insert(k, l.clone());
        Ok(l)
    }

    /// The latest version of `key` with its model and configuration (`None`: not deployed).
    /// One small read, none under an access generation it was read under already (see
    /// [`Engine::start_under`]); the deployment itself comes from the cache.
    pub(crate) async fn latest_deployment(
        &self,
        key: &str,
        generation: Option<i64>,
    ) -> Result<Option<(i64, Arc<Loaded>)>> {
        let known = generation.and_then(|g| {
            let latest = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
            latest
                .get(key)
                .filter(|(read_under, _)| *read_under == g)
                .map(|(_, version)| *version)
        });
        let version = match known {
            Some(version) => version,
            None => {
                let Some(version) = self.inner.store.latest_version(key).await? else {
                    return Ok(None);
                };
                if let Some(g) = generation {
                    let mut latest = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
                    if latest.len() > 1_000 {
                        latest.clear();
                    }
                    latest.insert(key.to_string(), (g, version));
                }
                version
            }
        };
        Ok(Some((version, self.loaded_by_key(key, version).await?)))
    }

    /// The cached deployment, read from the pool on a miss.
    async fn loaded_by_key(&self, key: &str, version: i64) -> Result<Arc<Loaded>> {
        {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = cache.get(&(key.to_string(), version)) {
                return Ok(l.clone());
            }
        }
        let row = self
            .inner
            .store
            .deployment(key, Some(version))
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("deployment {key} v{version} is missing"))
            })?;
        self.loaded(&row)
    }

    pub(crate) async fn loaded_version(
        &self,
        tx: &mut Tx,
        key: &str,
        version: i64,
    ) -> Result<Arc<Loaded>> {
        {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = cache.get(&(key.to_string(), version)) {
                return Ok(l.clone());
            }
        }
        let row = tx.deployment_tx(key, Some(version)).await?.ok_or_else(|| {
            EngineError::Internal(format!("deployment {key} v{version} is missing"))
        })?;
        self.loaded(&row)
    }

    // ---- instances ----

    /// Starts an instance of the latest version of `process`. A repeated business key returns
    /// the existing instance (`existing: true`).
    pub async fn start(&self, req: StartRequest) -> Result<InstanceView> {
        self.start_at(req, None).await
    }

    /// [`Engine::start`] for a request that read the access generation after it arrived
    /// (the API does, for every request): the latest version of the process is then taken from
    /// what an earlier start read under the same generation, instead of read again. Every
    /// deployment bumps the generation in the transaction that stores it, so no version
    /// deployed before the request arrived can be newer than that one.
    pub async fn start_under(&self, req: StartRequest, generation: i64) -> Result<InstanceView> {
        self.start_at(req, Some(generation)).await
    }

    async fn start_at(&self, req: StartRequest, generation: Option<i64>) -> Result<InstanceView> {
        let now = self.now();
        let (dep, vars) = self.prepare_start(&req, now, generation).await?;
        let job = crate::commit::StartJob {
            req,
            dep,
            vars,
            now,
        };
        self.committer().start(self, job).await
    }

    /// Finds the latest deployment and checks the start variables (no transaction needed).
    async fn prepare_start(
        &self,
        req: &StartRequest,
        now: DateTime<Utc>,
        generation: Option<i64>,
    ) -> Result<(ProcessVersion, Map<String, Json>)> {
        let (version, loaded) = self
            .latest_deployment(&req.process, generation)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("process {}", req.process)))?;
        let dep = ProcessVersion {
            key: req.process.clone(),
            version,
        };
        if let Some(bk) = &req.business_key
            && bk.trim().is_empty()
        {
            return Err(EngineError::invalid(
                "business_key",
                "is empty; leave it out or give a value",
            ));
        }
        if let Some(bk) = &req.business_key
            && let Some(why) = text_problem(bk, MAX_BUSINESS_KEY_CHARS)
        {
            return Err(EngineError::invalid("business_key", why));
        }
        let vars =
            runtime::start_vars(&loaded.model, &loaded.data, &req.vars, now, &self.limits())?;
        Ok((dep, vars))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start_in(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        req: &StartRequest,
        dep: &ProcessVersion,
        vars: &Map<String, Json>,
        now: DateTime<Utc>,
    ) -> Result<(String, bool)> {
        if let Some(bk) = &req.business_key
            && let Some(found) = st.instance_by_business_key(tx, &dep.key, bk).await?
        {
            return Ok((found.id, true));
        }
        let id = new_id();
        let row = new_instance_row(
            &id,
            &dep.key,
            dep.version,
            req.business_key.clone(),
            vars,
            None,
            now,
        )?;
        st.insert_instance(&row);
        self.run_event(
            tx,
            st,
            fx,
            &id,
            Event::Start {
                actor: req.actor.clone(),
            },
        )
        .await?;
        Ok((id, false))
    }

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

    /// Appends entries to the instance's hash chain; updates `row`'s count and head (the caller
    /// writes the row).
    pub(crate) async fn append_history(
        &self,
        tx: &mut Tx,
        row: &mut InstanceRow,
        entries: Vec<Entry>,
        now: i64,
    ) -> Result<()> {
        let rows = chain(self.chain_key().as_ref(), row, entries, now);
        if !rows.is_empty() {
            tx.insert_history_many(&rows).await?;
        }
        Ok(())
    }

    /// An entry by `actor` at `node`, dated now (for [`Engine::note`]).
    pub(crate) fn entry_now(
        &self,
        actor: &str,
        node: &str,
        kind: &str,
        text: String,
        data: Json,
    ) -> (Entry, i64) {
        let entry = (
            actor.to_string(),
            Some(node.to_string()),
            kind.to_string(),
            text,
            data.to_string(),
        );
        (entry, ms(self.now()))
    }

    /// Appends dated entries for a change that does not otherwise touch the instance row:
    /// one read of the instance, one insert, one update of its chain head.
    pub(crate) async fn note(
        &self,
        tx: &mut Tx,
        instance: &str,
        entries: Vec<(Entry, i64)>,
    ) -> Result<InstanceRow> {
        let mut row = tx
            .lock_instance(instance)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {instance}")))?;
        let mut rows = Vec::with_capacity(entries.len());
        let key = self.chain_key();
        for (entry, at) in entries {
            rows.extend(chain(key.as_ref(), &mut row, vec![entry], at));
        }
        if !rows.is_empty() {
            tx.insert_history_many(&rows).await?;
        }
        tx.set_history_head(&row.id, row.history_count, &row.history_head)
            .await?;
        Ok(row)
    }

    /// Delivers a message the instance waits for; its payload sets the listed variables.
    pub async fn message(
        &self,
        id: &str,
        name: &str,
        payload: Map<String, Json>,
        actor: &str,
    ) -> Result<InstanceView> {
        transaction!(self, |tx, fx| {
            let mut st = Staged::new(self.chain_key());
            self.run_event(
                &mut tx,
                &mut st,
                &mut fx,
                id,
                Event::Message {
                    name: name.to_string(),
                    payload: payload.clone(),
                    actor: actor.to_string(),
                },
            )
            .await?;
            st.flush(&mut tx).await?;
        })?;
        self.instance(id).await
    }

    /// Cancels a running instance: its tasks and timers are cancelled with it.
    pub async fn cancel(&self, id: &str, reason: &str, actor: &str) -> Result<InstanceView> {
        transaction!(self, |tx, fx| {
            let mut st = Staged::new(self.chain_key());
            self.run_event(
                &mut tx,
                &mut st,
                &mut fx,
                id,
                Event::Cancel {
                    reason: reason.to_string(),
                    actor: actor.to_string(),
                },
            )
            .await?;
            st.flush(&mut tx).await?;
        })?;
        self.instance(id).await
    }

    /// Retries nodes parked as incidents and reopens failed tasks.
    pub async fn resolve_incident(&self, id: &str, actor: &str) -> Result<InstanceView> {
        transaction!(self, |tx, fx| {
            let row = tx
                .lock_instance(id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
            let now = ms(self.now());
            let reopened = tx.reopen_failed_tasks(id, now).await?;
            let state: RunState = serde_json::from_str(&row.state)?;
            let parked = state
                .tokens
                .iter()
                .any(|t| matches!(t.wait, Wait::Incident { .. }));
            if parked {
                let mut st = Staged::new(self.chain_key());
                self.run_event(
                    &mut tx,
                    &mut st,
                    &mut fx,
                    id,
                    Event::Resolve {
                        actor: actor.to_string(),
                    },
                )
                .await?;
                st.flush(&mut tx).await?;
            } else if reopened > 0 {
                let resolved = self.entry_now(
                    actor,
                    "",
                    "incident_resolved",
                    format!("{reopened} failed task(s) reopened"),
                    json!({}),
                );
                let mut row = self.note(&mut tx, id, vec![resolved]).await?;
                row.status = Status::Running.as_str().into();
                row.incident = None;
                row.updated_at = now;
                tx.update_instance(&row).await?;
            } else {
                return Err(EngineError::conflict(
                    "the instance has no incident to resolve",
                ));
            }
        })?;
        self.instance(id).await
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

    /// Starts many instances in ONE transaction, each refused one rolled back alone (see
    /// [`Engine::complete_many`]). Returns, per request, `(instance id, existing)` or why not.
    pub async fn start_many(&self, reqs: &[StartRequest]) -> Vec<Result<(String, bool)>> {
        let now = self.now();
        let mut refused = Vec::with_capacity(reqs.len());
        let mut jobs = Vec::with_capacity(reqs.len());
        for req in reqs {
            match self.prepare_start(req, now, None).await {
                Ok((dep, vars)) => {
                    jobs.push(crate::commit::StartJob {
                        req: req.clone(),
                        dep,
                        vars,
                        now,
                    });
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let mut started = self.committer().start_each(self, jobs).await.into_iter();
        refused
            .into_iter()
            .map(|refused| match refused {
                Some(e) => Err(e),
                None => started.next().unwrap_or_else(|| {
                    Err(EngineError::Internal(
                        "a start of the batch got no answer".into(),
                    ))
                }),
            })
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

fn new_instance_row(
    id: &str,
    key: &str,
    version: i64,
    business_key: Option<String>,
    vars: &Map<String, Json>,
    parent: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Result<InstanceRow> {
    Ok(InstanceRow {
        id: id.to_string(),
        process_key: key.to_string(),
        version,
        business_key,
        status: Status::Running.as_str().into(),
        result: None,
        incident: None,
        vars: serde_json::to_string(vars)?,
        state: serde_json::to_string(&RunState::default())?,
        provisional: 0,
        parent_id: parent.map(|p| p.0.to_string()),
        parent_node: parent.map(|p| p.1.to_string()),
        created_at: ms(now),
        updated_at: ms(now),
        ended_at: None,
        history_count: 0,
        history_head: String::new(),
    })
}

/// Parses the configuration YAML the model declares (if it was deployed with it).
fn load_config(model: &Process, files: &BTreeMap<String, String>) -> Result<Json> {
    let Some(decl) = &model.config else {
        return Ok(Json::Object(Map::new()));
    };
    let Some(text) = files.get(&decl.file) else {
        return Err(EngineError::invalid(
            "files",
            format!(
                "the configuration file {} the process declares was not deployed with it",
                decl.file
            ),
        ));
    };
    serde_saphyr::from_str::<Json>(text)
        .map_err(|e| EngineError::invalid(decl.file.clone(), format!("not valid YAML: {e}")))
}

/// Compiles and checks process source; `files` holds its configuration, templates and the
/// `<key>.flow` of each import. Any error: every diagnostic, as [`EngineError::Diagnostics`].
/// Deepest JSON nesting of a stored model the engine reads back (and so deploys). A checked
/// model nests about 3 JSON levels per expression level (`{"kind":{"Binary":[op, {…}, {…}]}}`),
/// so [`yimen_dsl::parser::MAX_DEPTH`] (64) needs some 210, beyond serde_json's default
/// limit of 128; types nest one level per `list<…>` ([`yimen_dsl::parser::MAX_NESTING`],
/// 200). Reading this deep recurses once per level: the bound keeps that within a tokio
/// worker's 2 MiB stack (tested in `tests/deep_models.rs`).
pub const MAX_MODEL_DEPTH: usize = 512;

/// Levels of `[`/`{` nesting of a JSON text (strings skipped), without recursion.
pub fn json_depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads a stored model: serde_json's recursion limit (128) lifted, ours
/// ([`MAX_MODEL_DEPTH`]) checked first, so a model that deployed reads back and none can
/// overflow the stack.
pub fn read_model(json: &str) -> Result<Process> {
    let depth = json_depth(json);
    if depth > MAX_MODEL_DEPTH {
        return Err(EngineError::Internal(format!(
            "the stored model nests {depth} levels deep, more than the {MAX_MODEL_DEPTH} the engine reads"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.disable_recursion_limit();
    let model = <Process as serde::Deserialize>::deserialize(&mut de)?;
    de.end()?;
    Ok(model)
}

fn compile(
    file: &str,
    source: &str,
    files: &BTreeMap<String, String>,
    calendars: Option<Vec<String>>,
    calendar_source: Option<String>,
) -> Result<Process> {
    let mut options = yimen_dsl::check::Options::default();
    if let Some(names) = calendars {
        options.calendars = names;
    }
    options.calendars_from = calendar_source;
    let compiled =
        yimen_dsl::compile_with(file, source, &|path| files.get(path).cloned(), &options);
    match compiled.process {
        Some(p) if !compiled.has_errors() => Ok(p),
        _ => Err(EngineError::Diagnostics(compiled.diagnostics)),
    }
}

/// Longest business key, in characters: it is a key of an index, which PostgreSQL limits to
/// about 2,700 bytes.
pub const MAX_BUSINESS_KEY_CHARS: usize = 256;

/// Why a short text (a key, a name) cannot be stored: longer than `max` characters, or with a
/// control character (NUL, which PostgreSQL does not store in text, and the others, which no
/// key or name needs).
pub fn text_problem(text: &str, max: usize) -> Option<String> {
    if text.chars().count() > max {
        return Some(format!("is longer than {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some("contains a control character (such as NUL); remove it".to_string());
    }
    None
}
