//! SQL of the inbox and of scheduled report runs. Written once in `timers_sql.rs` and
//! compiled per driver, like the engine's `common.rs`.

use crate::error::EngineError;
use crate::store::StorePool;

/// An inbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub id: String,
    pub recipient: String,
    pub instance_id: String,
    pub node: Option<String>,
    pub task_id: Option<String>,
    pub clock: Option<String>,
    pub level: Option<i64>,
    pub message: String,
    pub state: String,
    pub created_at: i64,
    pub acked_by: Option<String>,
    /// The acknowledging principal's id (absent before migration 0990).
    pub acked_by_id: Option<String>,
    pub acked_at: Option<i64>,
    pub closed_at: Option<i64>,
}

/// A report run row (`csv` only when asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub job: String,
    pub scheduled_at: i64,
    pub state: String,
    pub server: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub rows: Option<i64>,
    pub file: Option<String>,
    pub error: Option<String>,
}

/// An instance as the reports read it.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: String,
    pub process_key: String,
    pub business_key: Option<String>,
    pub status: String,
    pub result: Option<String>,
    pub vars: String,
    /// Run state JSON (running clocks).
    pub state: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
}

/// A task as the reports read it.
#[derive(Debug, Clone)]
pub struct ReportTaskRow {
    pub id: String,
    pub instance_id: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    pub org_unit: Option<String>,
    pub state: String,
    pub outcome: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub due_at: Option<i64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd<'a> {
    pub state: &'a str,
    pub rows: Option<i64>,
    pub file: Option<&'a str>,
    pub csv: Option<&'a str>,
    pub error: Option<&'a str>,
    pub now: i64,
}

pub mod sqlite {
    type DB = sqlx::Sqlite;
    type DbRow = sqlx::sqlite::SqliteRow;
    include!("timers_sql.rs");
}

pub mod postgres {
    type DB = sqlx::Postgres;
    type DbRow = sqlx::postgres::PgRow;
    include!("timers_sql.rs");
}

/// Calls the same-named function of the pool's driver module.
macro_rules! on {
    ($pool:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $pool {
            StorePool::Sqlite(p) => sqlite::$f(p, $($arg),*).await,
            StorePool::Postgres(p) => postgres::$f(p, $($arg),*).await,
        }
    };
}

type R<T> = Result<T, sqlx::Error>;

pub async fn insert_inbox(pool: &StorePool, item: &InboxRow) -> R<bool> {
    on!(pool, insert_inbox(item))
}
pub async fn close_finished(pool: &StorePool, now: i64) -> R<u64> {
    on!(pool, close_finished(now))
}
pub async fn list_inbox(
    pool: &StorePool,
    recipient: &str,
    state: Option<&str>,
    limit: i64,
) -> R<Vec<InboxRow>> {
    on!(pool, list_inbox(recipient, state, limit))
}
pub async fn inbox_item(pool: &StorePool, id: &str) -> R<Option<InboxRow>> {
    on!(pool, inbox_item(id))
}
pub async fn ack_inbox(
    pool: &StorePool,
    id: &str,
    actor: &str,
    actor_id: &str,
    now: i64,
) -> R<u64> {
    on!(pool, ack_inbox(id, actor, actor_id, now))
}
pub async fn inbox_of(pool: &StorePool, instance: &str) -> R<Vec<InboxRow>> {
    on!(pool, inbox_of(instance))
}
pub async fn open_clock_items(pool: &StorePool) -> R<Vec<InboxRow>> {
    on!(pool, open_clock_items())
}
pub async fn close_items(pool: &StorePool, ids: &[String], now: i64) -> R<u64> {
    let mut n = 0;
    for id in ids {
        n += on!(pool, close_item(id, now))?;
    }
    Ok(n)
}
pub async fn timer_payload(pool: &StorePool, timer: &str) -> R<Option<String>> {
    on!(pool, timer_payload(timer))
}
pub async fn instance_state(pool: &StorePool, id: &str) -> R<Option<(String, String)>> {
    on!(pool, instance_state(id))
}
pub async fn open_escalations(pool: &StorePool) -> R<Vec<InboxRow>> {
    on!(pool, open_escalations())
}
pub async fn task_queue(pool: &StorePool, task: &str) -> R<Option<String>> {
    on!(pool, task_queue(task))
}
pub async fn claim_run(
    pool: &StorePool,
    job: &str,
    scheduled: i64,
    state: &str,
    server: &str,
    now: i64,
) -> R<bool> {
    on!(pool, claim_run(job, scheduled, state, server, now))
}
pub async fn take_over_run(
    pool: &StorePool,
    job: &str,
    scheduled: i64,
    server: &str,
    now: i64,
    stale_before: i64,
) -> R<bool> {
    on!(
        pool,
        take_over_run(job, scheduled, server, now, stale_before)
    )
}
pub async fn has_runs(pool: &StorePool, job: &str) -> R<bool> {
    on!(pool, has_runs(job))
}
pub async fn finish_run(pool: &StorePool, job: &str, scheduled: i64, end: &RunEnd<'_>) -> R<()> {
    on!(pool, finish_run(job, scheduled, end))
}
pub async fn list_runs(pool: &StorePool, job: Option<&str>, limit: i64) -> R<Vec<RunRow>> {
    on!(pool, list_runs(job, limit))
}
pub async fn run(
    pool: &StorePool,
    job: &str,
    scheduled: i64,
) -> R<Option<(RunRow, Option<String>)>> {
    on!(pool, run(job, scheduled))
}
pub async fn report_cases(pool: &StorePool, since: i64) -> R<Vec<CaseRow>> {
    on!(pool, report_cases(since))
}
pub async fn report_tasks(pool: &StorePool, since: i64) -> R<Vec<ReportTaskRow>> {
    on!(pool, report_tasks(since))
}

/// Benchmark set-up: `count` pending timers of `instance` that fire as no-ops.
pub async fn bench_timers(
    pool: &StorePool,
    prefix: &str,
    instance: &str,
    count: i64,
    due_from: i64,
    step: i64,
    now: i64,
) -> R<u64> {
    on!(
        pool,
        bench_timers(prefix, instance, count, due_from, step, now)
    )
}

/// A pending timer with a provisional due time: id, instance, kind, task, node, due, payload.
pub type ProvisionalTimer = (String, String, String, Option<String>, String, i64, String);

pub async fn provisional_timers(pool: &StorePool) -> R<Vec<ProvisionalTimer>> {
    on!(pool, provisional_timers())
}

// On SQLite, the statements of a write transaction run on its rusqlite writer (`sqlite_write`).

pub async fn move_timer(
    tx: &mut crate::store::Tx,
    id: &str,
    due_at: i64,
    payload: &str,
    task_due: Option<(&str, i64)>,
) -> Result<bool, EngineError> {
    match tx {
        crate::store::Tx::Sqlite(t) => {
            crate::store::sqlite_write::move_timer(&mut t.db()?, id, due_at, payload, task_due)
        }
        crate::store::Tx::Postgres(t) => {
            Ok(postgres::move_timer(t, id, due_at, payload, task_due).await?)
        }
    }
}

pub async fn settle_provisional(
    tx: &mut crate::store::Tx,
    instance: &str,
) -> Result<(), EngineError> {
    match tx {
        crate::store::Tx::Sqlite(t) => {
            crate::store::sqlite_write::settle_provisional(&mut t.db()?, instance)
        }
        crate::store::Tx::Postgres(t) => Ok(postgres::settle_provisional(t, instance).await?),
    }
}

pub async fn set_task_due(
    tx: &mut crate::store::Tx,
    task: &str,
    due_at: Option<i64>,
) -> Result<(), EngineError> {
    match tx {
        crate::store::Tx::Sqlite(t) => {
            crate::store::sqlite_write::set_task_due(&mut t.db()?, task, due_at)
        }
        crate::store::Tx::Postgres(t) => Ok(postgres::set_task_due(t, task, due_at).await?),
    }
}

pub async fn provisional_instances(pool: &StorePool) -> R<Vec<String>> {
    on!(pool, provisional_instances())
}
