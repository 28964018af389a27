//! Storage. The schema is the same on both databases (BIGINT unix millis, TEXT ids and JSON), so
//! the SQL is written once in `common.rs` and compiled twice, once per driver (`sqlite.rs`,
//! `postgres.rs`), with the few differences (row locks, `SKIP LOCKED`, JSON array membership)
//! supplied by per-driver macros. sqlx 0.9 has no `Any` driver for our types; this keeps one
//! text of the SQL instead of two that drift.
//!
//! Concurrency: every write is a transaction (`BEGIN IMMEDIATE` on SQLite; row locks with
//! `FOR UPDATE` / `SKIP LOCKED` on PostgreSQL). Lock order is task/timer → instance.

pub mod accounts;
pub(crate) mod batch;
pub mod cases;
pub(crate) mod checkpoint;
mod gauges;
mod handle;
pub(crate) mod history;
pub mod port;
pub mod postgres;
pub mod reassignments;
pub mod sqlite;
mod sqlite_alloc;
pub(crate) mod sqlite_direct;
pub(crate) mod sqlite_readers;
pub(crate) mod sqlite_tx;
pub(crate) mod sqlite_write;
pub(crate) mod staged;
pub mod stats;
pub mod timers;
pub mod tokens;
pub mod types;

pub use handle::Store;
pub use types::{OutboxState, TimerState, Vars};

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
    worker, lapsed_worker, assignee_key, locked_by_key, lapsed_by_key)";
pub(crate) const TASKS_UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
    lock_token = excluded.lock_token, locked_by = excluded.locked_by, \
    lock_expires_at = excluded.lock_expires_at, available_at = excluded.available_at, \
    outcome = excluded.outcome, completed_by = excluded.completed_by, \
    failures = excluded.failures, last_error = excluded.last_error, \
    completed_at = excluded.completed_at, due_at = excluded.due_at, \
    claimed_at = excluded.claimed_at, lapsed_by = excluded.lapsed_by, \
    lapsed_at = excluded.lapsed_at, worker = excluded.worker, \
    lapsed_worker = excluded.lapsed_worker, locked_by_key = excluded.locked_by_key, \
    lapsed_by_key = excluded.lapsed_by_key";
pub(crate) const TIMERS_INTO: &str =
    "timers (id, instance_id, kind, node, task_id, due_at, payload, state, created_at)";
pub(crate) const OUTBOX_INTO: &str = "outbox (id, instance_id, channel, dedup_key, payload, state, \
    attempts, next_attempt_at, created_at)";
pub(crate) const SIGNALS_INTO: &str = "signals (id, instance_id, node, task_id, clock, queue, \
     org_unit, light, level, due_at, at)";
/// A signal is recorded once: a timer fires once, and a repeated write changes nothing.
pub(crate) const SIGNALS_TAIL: &str = "ON CONFLICT (id) DO NOTHING";
pub(crate) const ACTIONS_INTO: &str = "oversight_actions (id, instance_id, kind, queue, \
     org_unit, text, actor, actor_key, at)";
pub(crate) const CASE_CLOCKS_INTO: &str = "case_clocks (instance_id, clock, process_key, \
     org_unit, state, started_at, due_at, warn_at, stopped_at)";
pub(crate) const CASE_CLOCKS_UPSERT: &str = "ON CONFLICT (instance_id, clock) DO UPDATE SET \
     org_unit = excluded.org_unit, state = excluded.state, due_at = excluded.due_at, \
     warn_at = excluded.warn_at, stopped_at = excluded.stopped_at";
pub(crate) const DOCUMENTS_INTO: &str =
    "documents (id, instance_id, name, label, public, content, created_at)";
/// Cancels one pending timer (`$1`: its id).
pub(crate) const CANCEL_TIMER: &str =
    "UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND id = $1";
/// The search table (`cases.rs`): one row per case and searchable variable, replaced when the
/// variable changes.
pub(crate) const SEARCH_INTO: &str = "case_search (instance_id, var, kind, value, value_hash)";
pub(crate) const SEARCH_UPSERT: &str = "ON CONFLICT (instance_id, var) DO UPDATE SET \
    kind = excluded.kind, value = excluded.value, value_hash = excluded.value_hash";
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
    pub status: crate::runtime::state::Status,
    pub result: Option<String>,
    pub incident: Option<String>,
    pub vars: Vars,
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
    pub state: crate::engine::TaskState,
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
    /// The worker label the current claim gave.
    pub worker: Option<String>,
    /// The worker label of the claim recorded by `lapsed_by`.
    pub lapsed_worker: Option<String>,
    /// Who `assignee`, `locked_by` and `lapsed_by` are: the principal's key
    /// ([`crate::actor::Actor::key`]), compared in place of the name; `None` in rows written
    /// before keys were recorded (compared by name) and for an assignee an expression names.
    pub assignee_key: Option<String>,
    pub locked_by_key: Option<String>,
    pub lapsed_by_key: Option<String>,
}

/// The case a task of a work list belongs to, read with the task in one query: what the
/// list shows of it (its business key) and what its labels and deadlines are read from.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCase {
    pub business_key: Option<String>,
    pub process_key: String,
    pub version: i64,
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
    pub state: TimerState,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub instance_id: String,
    pub seq: i64,
    pub at: i64,
    /// The actor's name.
    pub actor: String,
    /// The actor's kind (`user`, `token`, `engine`) and id; empty in entries written before
    /// the history recorded them (their hash does not cover them, see `ledger`).
    pub actor_kind: String,
    pub actor_id: String,
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
    pub state: OutboxState,
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

/// A deadline signal as recorded (`signals`): yellow or red, with its escalation level.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalRow {
    /// The id of the timer that gave it.
    pub id: String,
    pub instance_id: String,
    pub node: String,
    pub task_id: Option<String>,
    pub clock: Option<String>,
    /// The late task's queue and organisation unit.
    pub queue: Option<String>,
    pub org_unit: Option<String>,
    /// `yellow` | `red`.
    pub light: String,
    pub level: i64,
    pub due_at: Option<i64>,
    pub at: i64,
}

/// An action of an office that oversees (`oversight_actions`).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: String,
    pub instance_id: String,
    /// `urge` | `criticism` | `referral`.
    pub kind: String,
    pub queue: Option<String>,
    pub org_unit: Option<String>,
    pub text: String,
    pub actor: String,
    pub actor_key: Option<String>,
    pub at: i64,
}

/// A case's clock as it stands (`case_clocks`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseClockRow {
    pub instance_id: String,
    pub clock: String,
    pub process_key: String,
    pub org_unit: Option<String>,
    /// `running` | `paused` | `stopped`.
    pub state: String,
    pub started_at: i64,
    pub due_at: Option<i64>,
    pub warn_at: Option<i64>,
    pub stopped_at: Option<i64>,
}

/// A row of the search table: a searchable variable of a case (`crate::search`), its name
/// as text or its ID number as a keyed hash, never in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRow {
    pub instance_id: String,
    pub var: String,
    /// `name` or `id_number`.
    pub kind: String,
    pub value: Option<String>,
    pub value_hash: Option<String>,
}

/// A page of a person's open work, most urgent first (JSON arrays of names and ids).
#[derive(Debug, Clone, Default)]
pub struct OpenWorkQuery {
    pub queues: String,
    /// `None`: every organisation unit (tasks without one always count).
    pub org_units: Option<String>,
    /// Only the tasks of these cases (a case search's hits).
    pub instances: Option<String>,
    /// Only tasks due at or after this instant (milliseconds).
    pub due_from: Option<i64>,
    /// Only tasks due before this instant (milliseconds).
    pub due_before: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of the oversight board: running and paused clocks, most overdue first.
#[derive(Debug, Clone, Default)]
pub struct BoardQuery {
    /// Organisation units (a JSON array); `None`: all.
    pub org_units: Option<String>,
    /// Only cases with a live task in this queue (a department).
    pub queue: Option<String>,
    pub clock: Option<String>,
    /// `red`, `yellow`, `green` or `paused`, as of `now`.
    pub light: Option<String>,
    pub now: i64,
    pub limit: i64,
    pub offset: i64,
}

/// A row of the board: a clock, its case, the highest level signalled on it, and the queue
/// of the case's live task (the department now holding it), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardRow {
    pub clock: CaseClockRow,
    pub business_key: Option<String>,
    pub version: i64,
    pub level: Option<i64>,
    pub queue: Option<String>,
}

/// Signals recorded in a period: how many of each light and level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalCount {
    pub light: String,
    pub level: i64,
    pub count: i64,
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
    /// Who claims (the authenticated caller): the claim's holder, by name (what people read)
    /// and key (who it is, compared with `assignee_key`; a task without one compares names).
    pub actor: String,
    pub actor_key: String,
    /// The claiming worker's label, `None` when it gave none.
    pub worker: Option<String>,
    /// JSON array of queue names.
    pub queues: String,
    /// JSON array of org units, or `None` for all.
    pub org_units: Option<String>,
    pub now: i64,
    pub expires_at: i64,
    pub max: i64,
    /// A claim of this one task by its id (`POST /tasks/{id}/claim`), whose access the engine
    /// checked before: `queues`, `org_units` and `max` are then not read.
    pub task: Option<String>,
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

/// The version of the schema baseline (`migrations/*/0950_baseline.sql`): the whole schema in
/// one migration, in place of the migrations that built it before.
const BASELINE: i64 = 950;

/// The checksum sqlx stored for version 950 before the baseline: SHA-384 of that migration's
/// file (`0950_timers_pending_index.sql`, the same text on both databases), in hex.
const BEFORE_BASELINE_950: &str = "c95a1289c63dd7a7c4b41ba67625e420edadb7ed1d6c68130f3cd92e3b70507a87750dab98a865d1c01948db18acc2e7";

/// What [`adopt_baseline`] does with a database, from its applied migrations.
#[derive(Debug, PartialEq, Eq)]
enum Adoption {
    /// Built by the migrations before the baseline, all of them: it becomes one at the baseline.
    Adopt,
    /// Stopped before the baseline: those migrations are needed first, and yimen no longer has
    /// them.
    TooOld { found: i64 },
    /// New, at the baseline or past it, or not ours: the migrator decides.
    AsIs,
}

/// `applied`: the rows of `_sqlx_migrations` (successful or not), `dirty`: the first that
/// failed, `chain`: the versions the migrations before the baseline applied on this database.
fn adoption(
    applied: &[sqlx::migrate::AppliedMigration],
    dirty: Option<i64>,
    chain: &[i64],
) -> Adoption {
    let Some(newest) = applied.iter().map(|m| m.version).max() else {
        return Adoption::AsIs;
    };
    if newest < BASELINE {
        return Adoption::TooOld { found: newest };
    }
    let whole_chain =
        dirty.is_none() && applied.iter().map(|m| m.version).eq(chain.iter().copied());
    let before_baseline = applied
        .iter()
        .any(|m| m.version == BASELINE && hex::encode(&m.checksum) == BEFORE_BASELINE_950);
    if whole_chain && before_baseline {
        Adoption::Adopt
    } else {
        Adoption::AsIs
    }
}

/// Runs before `migrator` on every open. A database built by the migrations before the
/// baseline (`chain`, all applied and successful, version 950 the one they shipped) has the
/// baseline's schema already: in one transaction their rows leave `_sqlx_migrations` but
/// version 950's, which takes the baseline's checksum and description, so the migrator counts
/// the database as at the baseline. No table or row of the engine changes. A database stopped
/// before the baseline is refused ([`EngineError::SchemaTooOld`]), unchanged. Done under the
/// migrator's lock (PostgreSQL: an advisory lock), so servers opening one database at once
/// adopt it once.
pub(crate) async fn adopt_baseline<DB>(
    pool: &sqlx::Pool<DB>,
    migrator: &sqlx::migrate::Migrator,
    chain: &[i64],
) -> Result<(), EngineError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    Vec<u8>: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
    String: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
{
    use sqlx::migrate::Migrate;
    let failed = |e: sqlx::migrate::MigrateError| {
        EngineError::Storage(format!("adopting the schema baseline failed: {e}"))
    };
    let baseline = migrator
        .iter()
        .find(|m| m.version == BASELINE)
        .ok_or_else(|| EngineError::Internal("the schema baseline is not embedded".into()))?;
    let mut conn = pool.acquire().await?;
    let conn: &mut DB::Connection = &mut conn;
    conn.lock().await.map_err(failed)?;
    let adopted = async {
        conn.ensure_migrations_table(MIGRATIONS)
            .await
            .map_err(failed)?;
        let dirty = conn.dirty_version(MIGRATIONS).await.map_err(failed)?;
        let applied = conn
            .list_applied_migrations(MIGRATIONS)
            .await
            .map_err(failed)?;
        match adoption(&applied, dirty, chain) {
            Adoption::TooOld { found } => Err(EngineError::SchemaTooOld { found }),
            Adoption::AsIs => Ok(()),
            Adoption::Adopt => {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let old_950 = hex::decode(BEFORE_BASELINE_950).unwrap_or_default();
                // Both only while version 950 is the old one: another server may have adopted
                // the database since it was read.
                sqlx::query(
                    "DELETE FROM _sqlx_migrations WHERE version < $1 AND EXISTS \
                     (SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND checksum = $2)",
                )
                .bind(BASELINE)
                .bind(old_950.clone())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE _sqlx_migrations SET description = $1, checksum = $2 \
                     WHERE version = $3 AND checksum = $4",
                )
                .bind(baseline.description.to_string())
                .bind(baseline.checksum.to_vec())
                .bind(BASELINE)
                .bind(old_950)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
    .await;
    let unlocked = conn.unlock().await.map_err(failed);
    adopted.and(unlocked)
}

/// The migrator's table (sqlx's default name).
const MIGRATIONS: &str = "_sqlx_migrations";

#[cfg(test)]
mod baseline_tests {
    use super::{Adoption, BASELINE, BEFORE_BASELINE_950, adoption};
    use sqlx::migrate::AppliedMigration;

    /// The migrations before the baseline, kept as test fixtures.
    async fn before_baseline(driver: &str) -> sqlx::migrate::Migrator {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/migrations-before-baseline")
            .join(driver);
        sqlx::migrate::Migrator::new(folder.as_path())
            .await
            .unwrap()
    }

    /// The versions and the checksum of 950 the adoption looks for are the ones the migrations
    /// before the baseline wrote into `_sqlx_migrations`.
    #[tokio::test]
    async fn the_adoption_knows_what_the_migrations_before_the_baseline_stored() {
        for (driver, chain) in [
            ("sqlite", super::sqlite::BEFORE_BASELINE),
            ("postgres", super::postgres::BEFORE_BASELINE),
        ] {
            let old = before_baseline(driver).await;
            let versions: Vec<i64> = old.iter().map(|m| m.version).collect();
            assert_eq!(versions, chain, "{driver}");
            let last = old.iter().find(|m| m.version == BASELINE).unwrap();
            assert_eq!(hex::encode(&last.checksum), BEFORE_BASELINE_950, "{driver}");
        }
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        before_baseline("sqlite").await.run(&pool).await.unwrap();
        let stored: Vec<u8> =
            sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 950")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(hex::encode(stored), BEFORE_BASELINE_950);
    }

    fn applied(versions: &[i64], checksum_950: &str) -> Vec<AppliedMigration> {
        versions
            .iter()
            .map(|&version| AppliedMigration {
                version,
                checksum: if version == BASELINE {
                    hex::decode(checksum_950).unwrap().into()
                } else {
                    vec![1, 2, 3].into()
                },
            })
            .collect()
    }

    #[test]
    fn only_a_database_the_whole_old_chain_built_is_adopted() {
        let chain = super::sqlite::BEFORE_BASELINE;
        let old = BEFORE_BASELINE_950;
        let other = "00";
        assert_eq!(adoption(&applied(chain, old), None, chain), Adoption::Adopt);
        // New, or already at the baseline.
        assert_eq!(adoption(&[], None, chain), Adoption::AsIs);
        assert_eq!(
            adoption(&applied(&[950], other), None, chain),
            Adoption::AsIs
        );
        // Stopped before the baseline, even with a failed migration.
        let short: Vec<i64> = chain.iter().copied().filter(|&v| v <= 885).collect();
        assert_eq!(
            adoption(&applied(&short, old), None, chain),
            Adoption::TooOld { found: 885 }
        );
        let with_failed: Vec<i64> = chain.iter().copied().filter(|&v| v <= 940).collect();
        assert_eq!(
            adoption(&applied(&with_failed, old), Some(940), chain),
            Adoption::TooOld { found: 940 }
        );
        // Anything else is the migrator's to judge: a failed migration, a missing one, a 950
        // that is neither, a version from a newer yimen.
        assert_eq!(
            adoption(&applied(chain, old), Some(940), chain),
            Adoption::AsIs
        );
        let missing: Vec<i64> = chain.iter().copied().filter(|&v| v != 800).collect();
        assert_eq!(
            adoption(&applied(&missing, old), None, chain),
            Adoption::AsIs
        );
        assert_eq!(
            adoption(&applied(chain, other), None, chain),
            Adoption::AsIs
        );
        let newer: Vec<i64> = chain.iter().copied().chain([9999]).collect();
        assert_eq!(adoption(&applied(&newer, old), None, chain), Adoption::AsIs);
    }
}
