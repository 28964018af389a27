//! Storage. The schema is the same on both databases (BIGINT unix millis, TEXT ids and JSON), so
//! the SQL is written once in `common.rs` and compiled twice, once per driver (`sqlite.rs`,
//! `postgres.rs`), with the few differences (row locks, `SKIP LOCKED`, JSON array membership)
//! supplied by per-driver macros. sqlx 0.9 has no `Any` driver for our types; this keeps one
//! text of the SQL instead of two that drift.
//!
//! Concurrency: every write is a transaction (`BEGIN IMMEDIATE` on SQLite; row locks with
//! `FOR UPDATE` / `SKIP LOCKED` on PostgreSQL). Lock order is task/timer → instance.

pub(crate) mod batch;
pub(crate) mod checkpoint;
mod handle;
pub(crate) mod history;
pub mod port;
pub mod postgres;
pub mod sqlite;
mod sqlite_alloc;
pub(crate) mod sqlite_direct;
pub(crate) mod sqlite_readers;
pub(crate) mod sqlite_tx;
pub(crate) mod sqlite_write;
pub(crate) mod staged;
pub mod timers;
pub mod tokens;

pub use handle::Store;

use crate::error::EngineError;
use serde::Serialize;

/// A JSON array of strings, as the `is_in!(json …)` list parameters take.
pub(crate) fn json_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// A value of a statement built at run time (`sqlite::claim_statement`), for sqlx or rusqlite.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Text(std::borrow::Cow<'a, str>),
    Int(i64),
}

impl<'a> Arg<'a> {
    pub(crate) fn text(s: &'a str) -> Arg<'a> {
        Arg::Text(std::borrow::Cow::Borrowed(s))
    }
}

/// The connection pool, shared with the HTTP layer (tokens, access log).
#[derive(Debug, Clone)]
pub enum StorePool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// An open write transaction.
pub enum Tx {
    /// On the engine's writer connection, a rusqlite one (`sqlite_tx.rs`).
    Sqlite(sqlite_tx::SqliteTx),
    Postgres(postgres::PgTx),
}

/// A PostgreSQL connection kept between uses, with the time it was last used: a committer's
/// between its batches, the token store's between reads of the access generation. It is not
/// handed back to the pool after each use and taken out again (sqlx pings it on its way
/// back). Empty on SQLite, before the first use, and after a commit or rollback that failed
/// (its connection is closed then).
#[derive(Default)]
pub(crate) struct Held(
    Option<(
        sqlx::pool::PoolConnection<sqlx::Postgres>,
        std::time::Instant,
    )>,
);

impl Held {
    /// Keeps `conn`, last used now.
    pub(crate) fn keep(&mut self, conn: sqlx::pool::PoolConnection<sqlx::Postgres>) {
        self.0 = Some((conn, std::time::Instant::now()));
    }

    /// The kept connection (pinged first when it was idle a while, replaced when dead), or one
    /// from `pool`; [`Held::keep`] it again after use.
    pub(crate) async fn connection(
        &mut self,
        pool: &sqlx::PgPool,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        let kept = match self.0.take() {
            Some((mut conn, used)) if used.elapsed() >= postgres::PING_AFTER_IDLE => {
                use sqlx::Connection;
                conn.ping().await.ok().map(|()| conn)
            }
            kept => kept.map(|(conn, _)| conn),
        };
        match kept {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        }
    }
}

/// The rows a batch writes at its flush (`staged.rs`): table and columns in bind order, and what
/// an upsert changes of an existing row. Both drivers' multi-row statements (`common.rs`) and
/// SQLite's writes on rusqlite (`sqlite_direct.rs`) are built from these.
pub(crate) const INSTANCES_INTO: &str = "instances (id, process_key, version, business_key, status, \
    result, incident, vars, state, provisional, parent_id, parent_node, created_at, updated_at, \
    ended_at, history_count, history_head)";
pub(crate) const INSTANCES_UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
    result = excluded.result, incident = excluded.incident, vars = excluded.vars, \
    state = excluded.state, provisional = excluded.provisional, updated_at = excluded.updated_at, \
    ended_at = excluded.ended_at, history_count = excluded.history_count, \
    history_head = excluded.history_head";
pub(crate) const TASKS_INTO: &str = "tasks (id, instance_id, node, label, queue, org_unit, state, \
    lock_token, locked_by, lock_expires_at, available_at, assignee, item, outcome, completed_by, \
    failures, last_error, due_at, created_at, completed_at, claimed_at, lapsed_by, lapsed_at, \
    worker, lapsed_worker)";
pub(crate) const TASKS_UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
    lock_token = excluded.lock_token, locked_by = excluded.locked_by, \
    lock_expires_at = excluded.lock_expires_at, available_at = excluded.available_at, \
    outcome = excluded.outcome, completed_by = excluded.completed_by, \
    failures = excluded.failures, last_error = excluded.last_error, \
    completed_at = excluded.completed_at, due_at = excluded.due_at, \
    claimed_at = excluded.claimed_at, lapsed_by = excluded.lapsed_by, \
    lapsed_at = excluded.lapsed_at, worker = excluded.worker, \
    lapsed_worker = excluded.lapsed_worker";
pub(crate) const TIMERS_INTO: &str =
    "timers (id, instance_id, kind, node, task_id, due_at, payload, state, created_at)";
pub(crate) const OUTBOX_INTO: &str = "outbox (id, instance_id, channel, dedup_key, payload, state, \
    attempts, next_attempt_at, created_at)";
pub(crate) const DOCUMENTS_INTO: &str =
    "documents (id, instance_id, name, label, public, content, created_at)";
/// Cancels one pending timer (`$1`: its id).
pub(crate) const CANCEL_TIMER: &str =
    "UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND id = $1";
/// History is stored in packs of entries (`history.rs`).
pub(crate) const HISTORY_INTO: &str = "history (instance_id, seq, first_at, entries)";

/// Calls the same-named function of the transaction's driver module: `sqlite_write` (on
/// rusqlite) or `postgres` (on sqlx).
macro_rules! on_tx {
    ($tx:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => match t.db() {
                Ok(mut db) => $crate::store::sqlite_write::$f(&mut db, $($arg),*),
                Err(e) => Err(e),
            },
            $crate::store::Tx::Postgres(t) => $crate::store::postgres::$f(&mut **t, $($arg),*)
                .await
                .map_err($crate::error::EngineError::from),
        }
    };
}
pub(crate) use on_tx;

/// Calls the same-named read function of the pool's driver module.
macro_rules! on_pool {
    ($pool:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $pool {
            $crate::store::StorePool::Sqlite(p) => $crate::store::sqlite::$f(p, $($arg),*).await,
            $crate::store::StorePool::Postgres(p) => $crate::store::postgres::$f(p, $($arg),*).await,
        }
    };
}
pub(crate) use on_pool;

impl StorePool {
    /// Begins on the connection `held` keeps (PostgreSQL; pinged first when it was idle a
    /// while, replaced when dead), or on one from the pool. SQLite's write transactions begin
    /// on the engine's writer instead (`Engine::begin_write`).
    pub(crate) async fn begin_held(&self, held: &mut Held) -> Result<Tx, EngineError> {
        match self {
            StorePool::Sqlite(_) => Err(EngineError::Internal(
                "a SQLite write transaction begins on the engine's writer".into(),
            )),
            StorePool::Postgres(p) => Ok(Tx::Postgres(
                postgres::PgTx::begin(held.connection(p).await?).await?,
            )),
        }
    }
}

impl Tx {
    /// PostgreSQL: announces a new timer due at `due_at` on `channel` when this transaction
    /// commits (other servers' timer loops wake). SQLite (one process) needs nothing.
    pub(crate) async fn notify_timers(
        &mut self,
        channel: Option<&str>,
        due_at: i64,
    ) -> Result<(), sqlx::Error> {
        match (self, channel) {
            (Tx::Postgres(t), Some(channel)) => postgres::notify_timers(t, channel, due_at).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), EngineError> {
        self.commit_held(&mut Held::default()).await
    }

    /// Commits; `held` keeps the connection (PostgreSQL; not after a failed commit).
    pub(crate) async fn commit_held(self, held: &mut Held) -> Result<(), EngineError> {
        match self {
            Tx::Sqlite(t) => t.commit(),
            Tx::Postgres(t) => {
                held.keep(t.commit().await?);
                Ok(())
            }
        }
    }

    /// Rolls back; `held` keeps the connection (PostgreSQL; not after a failed rollback).
    pub(crate) async fn rollback_held(self, held: &mut Held) -> Result<(), EngineError> {
        match self {
            Tx::Sqlite(t) => t.rollback(),
            Tx::Postgres(t) => {
                held.keep(t.rollback().await?);
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub key: String,
    pub version: i64,
    pub hash: String,
    pub title: String,
    pub source: String,
    pub model: String,
    pub config: String,
    pub files: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub process_key: String,
    pub version: i64,
    pub business_key: Option<String>,
    pub status: String,
    pub result: Option<String>,
    pub incident: Option<String>,
    pub vars: String,
    pub state: String,
    pub provisional: i64,
    pub parent_id: Option<String>,
    pub parent_node: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
    pub history_count: i64,
    pub history_head: String,
}

#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: String,
    pub instance_id: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    pub org_unit: Option<String>,
    pub state: String,
    pub lock_token: i64,
    /// Who holds the claim: the caller that claimed (an API token's name), not the worker
    /// label the claim gave.
    pub locked_by: Option<String>,
    pub lock_expires_at: Option<i64>,
    pub available_at: i64,
    pub assignee: Option<String>,
    pub item: Option<String>,
    pub outcome: Option<String>,
    pub completed_by: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    /// When the current claim was made (its history entry is written when it ends).
    pub claimed_at: Option<i64>,
    /// Set by a claim that took the task over from a claim whose lease ran out: that claim's
    /// holder and time, for the history.
    pub lapsed_by: Option<String>,
    pub lapsed_at: Option<i64>,
    /// The worker label the current claim gave (migration 0870).
    pub worker: Option<String>,
    /// The worker label of the claim recorded by `lapsed_by`.
    pub lapsed_worker: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TimerRow {
    pub id: String,
    pub instance_id: String,
    pub kind: String,
    pub node: String,
    pub task_id: Option<String>,
    pub due_at: i64,
    pub payload: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub instance_id: String,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub node: Option<String>,
    pub kind: String,
    pub text: String,
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub instance_id: String,
    pub channel: String,
    pub dedup_key: String,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct DocumentRow {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub label: Option<String>,
    pub public: i64,
    pub content: String,
    pub created_at: i64,
}

/// Filter of [`crate::Engine::tasks`] as the store sees it (JSON arrays of names).
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub queues: Option<String>,
    pub org_units: Option<String>,
    pub state: Option<String>,
    pub instance: Option<String>,
    pub limit: i64,
}

/// A claim as the store sees it.
#[derive(Debug, Clone)]
pub struct ClaimQuery {
    /// Who claims (the authenticated caller): the claim's holder, compared with `assignee`.
    pub actor: String,
    /// The claiming worker's label, `None` when it gave none.
    pub worker: Option<String>,
    /// JSON array of queue names.
    pub queues: String,
    /// JSON array of org units, or `None` for all.
    pub org_units: Option<String>,
    pub now: i64,
    pub expires_at: i64,
    pub max: i64,
}

/// Maps a migration result; a database migrated by a newer yimen is refused by name.
pub(crate) fn migrate(
    migrator: &sqlx::migrate::Migrator,
    result: Result<(), sqlx::migrate::MigrateError>,
) -> Result<(), crate::error::EngineError> {
    match result {
        Ok(()) => Ok(()),
        Err(sqlx::migrate::MigrateError::VersionMissing(found)) => {
            Err(crate::error::EngineError::SchemaTooNew {
                found,
                known: migrator.iter().map(|m| m.version).max().unwrap_or(0),
            })
        }
        Err(e) => Err(crate::error::EngineError::Storage(format!(
            "migration failed: {e}"
        ))),
    }
}
