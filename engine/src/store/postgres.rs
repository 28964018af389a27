//! The PostgreSQL store: row locks (`FOR UPDATE`) serialise events of one instance;
//! `SKIP LOCKED` lets several servers claim tasks, timers and deliveries without a coordinator.

use crate::error::EngineError;
use crate::store::SearchRow;
use crate::store::history::HistoryPack;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

type DB = sqlx::Postgres;
type DbRow = sqlx::postgres::PgRow;

macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}
macro_rules! skip_locked {
    () => {
        " FOR UPDATE SKIP LOCKED"
    };
}

/// `column`, then `is_in!(…)`: the column is one of a JSON array's strings, or one of a
/// subquery's values. `= ANY(ARRAY(…))`, not `IN (…)`: the list is computed once and the
/// column's index is walked for it, whereas `IN` with a set-returning function (estimated at
/// 100 rows) let the planner hash-join a sequential scan of the whole table, a cost that grew
/// with the table.
macro_rules! is_in {
    (json $n:literal) => {
        concat!(
            "= ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(",
            $n,
            " AS jsonb))))"
        )
    };
    (query $($q:tt)+) => {
        concat!("= ANY(ARRAY(", $($q)+, "))")
    };
}

/// Multi-row statements use `?` (SQLite) or `$n` (PostgreSQL) placeholders.
const POSITIONAL_PARAMS: bool = false;

/// One index look-up per (process, key) pair. `process_key = ANY(…) AND business_key = ANY(…)`
/// was planned, on a table not yet analysed, as an index walk on `process_key` alone with the
/// keys as a filter; kept as the connection's generic plan, every start then read every
/// instance of its process (a 1,700-start run read 780,000 pages where it needs 16,000). The
/// `LIMIT 1` (a key is unique in its process) keeps the planner from flattening the lateral
/// subquery into a join it could hash.
macro_rules! by_business_keys {
    () => {
        concat!(
            "SELECT i.* FROM ROWS FROM (jsonb_array_elements_text(CAST($1 AS jsonb)), ",
            "jsonb_array_elements_text(CAST($2 AS jsonb))) AS k (p, b) ",
            "CROSS JOIN LATERAL (SELECT * FROM instances ",
            "WHERE process_key = k.p AND business_key = k.b LIMIT 1) i"
        )
    };
}

/// The given tasks and their instances' live tasks: the ids first, the live ones through
/// `tasks_instance`, which holds only live tasks (a partial index on PostgreSQL; a condition
/// with `OR id = …` would not let the planner use it), then every row by its key, locked in id
/// order.
macro_rules! lock_tasks_with_siblings {
    () => {
        concat!(
            "SELECT * FROM tasks WHERE id ",
            is_in!(query
                "SELECT id FROM tasks WHERE instance_id ",
                is_in!(query "SELECT instance_id FROM tasks WHERE id ", is_in!(json "$1")),
                " AND state IN ('open', 'claimed', 'failed') ",
                "UNION SELECT jsonb_array_elements_text(CAST($1 AS jsonb))"),
            " ORDER BY id",
            for_update!()
        )
    };
}

include!("common.rs");

// ---- the multi-row writers of the unit of work (`staged.rs`) ----
//
// One statement per table whatever the number of rows: each column's values go as one array
// and `UNNEST` turns them back into rows. A `VALUES` list of 64 rows has 1,000 and more
// placeholders: it came in seven sizes, each parsed, planned and bound value by value (its cost:
// docs/performance.md). This text never changes, so it is planned once per connection and
// bound as a few arrays.

/// `INSERT INTO <into> SELECT * FROM UNNEST($1::<type>[], ..) <tail>`.
fn unnest_sql(into: &str, types: &[&str], tail: &str) -> String {
    unnest_sql_from(1, into, types, tail)
}

/// [`unnest_sql`] with placeholders numbered from `$first`.
fn unnest_sql_from(first: usize, into: &str, types: &[&str], tail: &str) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", first + i))
        .collect();
    format!(
        "INSERT INTO {into} SELECT * FROM UNNEST({}) {tail}",
        arrays.join(", ")
    )
}

/// One column of `rows`.
fn column<'r, T, V>(rows: &'r [T], f: impl Fn(&'r T) -> V) -> Vec<V> {
    rows.iter().map(f).collect()
}

type Query<'q> = sqlx::query::Query<'q, DB, sqlx::postgres::PgArguments>;

/// A history pack's columns (`store::history`).
const HISTORY_TYPES: [&str; 4] = ["text", "bigint", "bigint", "text"];

static HISTORY_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| unnest_sql(crate::store::HISTORY_INTO, &HISTORY_TYPES, ""));

/// Inserts several entries with one statement, in packs.
pub async fn insert_history_many(tx: &mut Tx, rows: &[HistoryRow]) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let packs = crate::store::history::pack(rows);
    bind_history(sqlx::query(HISTORY_SQL.as_str()), &packs)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Binds [`HISTORY_TYPES`]' arrays.
fn bind_history<'q>(q: Query<'q>, packs: &'q [HistoryPack<'q>]) -> Query<'q> {
    q.bind(column(packs, |p| p.instance_id))
        .bind(column(packs, |p| p.seq))
        .bind(column(packs, |p| p.first_at))
        .bind(column(packs, |p| p.entries.as_str()))
}

static TIMERS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    unnest_sql(
        crate::store::TIMERS_INTO,
        &[
            "text", "text", "text", "text", "text", "bigint", "text", "text", "bigint",
        ],
        "",
    )
});

/// Inserts new timers (`created_at` per row) with one statement.
pub async fn insert_timers(tx: &mut Tx, rows: &[(&TimerRow, i64)]) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(TIMERS_SQL.as_str())
        .bind(column(rows, |(t, _)| t.id.as_str()))
        .bind(column(rows, |(t, _)| t.instance_id.as_str()))
        .bind(column(rows, |(t, _)| t.kind.as_str()))
        .bind(column(rows, |(t, _)| t.node.as_str()))
        .bind(column(rows, |(t, _)| t.task_id.as_deref()))
        .bind(column(rows, |(t, _)| t.due_at))
        .bind(column(rows, |(t, _)| t.payload.as_str()))
        .bind(column(rows, |(t, _)| t.state.as_str()))
        .bind(column(rows, |(_, created_at)| *created_at))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

static SEARCH_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    unnest_sql(
        crate::store::SEARCH_INTO,
        &["text", "text", "text", "text", "text"],
        crate::store::SEARCH_UPSERT,
    )
});

/// Writes rows of the search table (each at most once per case and variable) with one
/// statement.
pub async fn upsert_search(tx: &mut Tx, rows: &[SearchRow]) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(SEARCH_SQL.as_str())
        .bind(column(rows, |r| r.instance_id.as_str()))
        .bind(column(rows, |r| r.var.as_str()))
        .bind(column(rows, |r| r.kind.as_str()))
        .bind(column(rows, |r| r.value.as_deref()))
        .bind(column(rows, |r| r.value_hash.as_deref()))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

const INSTANCES_TYPES: [&str; 17] = [
    "text", "text", "bigint", "text", "text", "text", "text", "text", "text", "bigint", "text",
    "text", "bigint", "bigint", "bigint", "bigint", "text",
];

/// Binds [`INSTANCES_TYPES`]' arrays.
fn bind_instances<'q>(q: Query<'q>, rows: &[&'q InstanceRow]) -> Query<'q> {
    q.bind(column(rows, |i| i.id.as_str()))
        .bind(column(rows, |i| i.process_key.as_str()))
        .bind(column(rows, |i| i.version))
        .bind(column(rows, |i| i.business_key.as_deref()))
        .bind(column(rows, |i| i.status.as_str()))
        .bind(column(rows, |i| i.result.as_deref()))
        .bind(column(rows, |i| i.incident.as_deref()))
        .bind(column(rows, |i| i.vars.to_text()))
        .bind(column(rows, |i| i.state.as_str()))
        .bind(column(rows, |i| i.provisional))
        .bind(column(rows, |i| i.parent_id.as_deref()))
        .bind(column(rows, |i| i.parent_node.as_deref()))
        .bind(column(rows, |i| i.created_at))
        .bind(column(rows, |i| i.updated_at))
        .bind(column(rows, |i| i.ended_at))
        .bind(column(rows, |i| i.history_count))
        .bind(column(rows, |i| i.history_head.as_str()))
}

const TASKS_TYPES: [&str; 28] = [
    "text", "text", "text", "text", "text", "text", "text", "bigint", "text", "bigint", "bigint",
    "text", "text", "text", "text", "bigint", "text", "bigint", "bigint", "bigint", "bigint",
    "text", "bigint", "text", "text", "text", "text", "text",
];

/// Binds [`TASKS_TYPES`]' arrays.
fn bind_tasks<'q>(q: Query<'q>, rows: &[&'q TaskRow]) -> Query<'q> {
    q.bind(column(rows, |t| t.id.as_str()))
        .bind(column(rows, |t| t.instance_id.as_str()))
        .bind(column(rows, |t| t.node.as_str()))
        .bind(column(rows, |t| t.label.as_deref()))
        .bind(column(rows, |t| t.queue.as_str()))
        .bind(column(rows, |t| t.org_unit.as_deref()))
        .bind(column(rows, |t| t.state.as_str()))
        .bind(column(rows, |t| t.lock_token))
        .bind(column(rows, |t| t.locked_by.as_deref()))
        .bind(column(rows, |t| t.lock_expires_at))
        .bind(column(rows, |t| t.available_at))
        .bind(column(rows, |t| t.assignee.as_deref()))
        .bind(column(rows, |t| t.item.as_deref()))
        .bind(column(rows, |t| t.outcome.as_deref()))
        .bind(column(rows, |t| t.completed_by.as_deref()))
        .bind(column(rows, |t| t.failures))
        .bind(column(rows, |t| t.last_error.as_deref()))
        .bind(column(rows, |t| t.due_at))
        .bind(column(rows, |t| t.created_at))
        .bind(column(rows, |t| t.completed_at))
        .bind(column(rows, |t| t.claimed_at))
        .bind(column(rows, |t| t.lapsed_by.as_deref()))
        .bind(column(rows, |t| t.lapsed_at))
        .bind(column(rows, |t| t.worker.as_deref()))
        .bind(column(rows, |t| t.lapsed_worker.as_deref()))
        .bind(column(rows, |t| t.assignee_key.as_deref()))
        .bind(column(rows, |t| t.locked_by_key.as_deref()))
        .bind(column(rows, |t| t.lapsed_by_key.as_deref()))
}

/// Instances, tasks and history in one statement: the upserts as data-modifying `WITH`
/// queries, then the history insert. A unit of work writes all three for nearly every batch
/// (a start or a completion changes its instance and tasks and adds history), and each
/// statement was a round trip of its own.
static ROWS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let tasks_from = 1 + INSTANCES_TYPES.len();
    let history_from = tasks_from + TASKS_TYPES.len();
    format!(
        "WITH i AS ({}), t AS ({}) {}",
        unnest_sql_from(
            1,
            crate::store::INSTANCES_INTO,
            &INSTANCES_TYPES,
            crate::store::INSTANCES_UPSERT
        ),
        unnest_sql_from(
            tasks_from,
            crate::store::TASKS_INTO,
            &TASKS_TYPES,
            crate::store::TASKS_UPSERT
        ),
        unnest_sql_from(history_from, crate::store::HISTORY_INTO, &HISTORY_TYPES, ""),
    )
});

/// Upserts instances and tasks and inserts history with one statement (an empty list writes
/// nothing; all three empty is no statement).
pub async fn write_rows(
    tx: &mut Tx,
    instances: &[&InstanceRow],
    tasks: &[&TaskRow],
    history: &[HistoryRow],
) -> R<()> {
    if instances.is_empty() && tasks.is_empty() && history.is_empty() {
        return Ok(());
    }
    let packs = crate::store::history::pack(history);
    let q = bind_instances(sqlx::query(ROWS_SQL.as_str()), instances);
    bind_history(bind_tasks(q, tasks), &packs)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A pooled connection idle this long is pinged before it is used again (a dead one is
/// replaced); one used more recently is not. A ping is a round trip, and pinging at every use
/// was a third of PostgreSQL's answers per case (docs/performance.md); HikariCP skips its
/// check likewise for a connection used moments ago.
pub(crate) const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The versions the migrations before the schema baseline applied here, the last one at the
/// baseline's version (`store::adopt_baseline`).
pub(crate) const BEFORE_BASELINE: &[i64] = &[
    1, 100, 110, 200, 300, 400, 500, 600, 700, 800, 810, 820, 830, 870, 885, 940, 950,
];

/// Connects to `url` and migrates. `schema` (tests) sets the connection's `search_path`.
///
/// The connections plan with `enable_seqscan = off`. Every statement of the engine is a keyed
/// lookup or an index walk, and each is prepared once per connection: after five runs
/// PostgreSQL keeps one generic plan for it. On a table not yet analysed (a new database, its
/// first minute, until autovacuum's first `ANALYZE`) the planner guesses ten pages, so that
/// generic plan was a sequential scan, and it stayed one as the table grew (what that cost:
/// docs/performance.md, "What limits PostgreSQL"). With the setting a statement scans a whole
/// table only where no index serves it (reports over everything), as before. A URL that sets
/// `enable_seqscan` in its `options` keeps its own value.
pub async fn open(url: &str, schema: Option<&str>) -> Result<sqlx::PgPool, EngineError> {
    let mut opts = PgConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database", format!("{url}: {e}")))?;
    if let Some(schema) = schema {
        opts = opts.options([("search_path", schema)]);
    }
    // Unless the URL sets it (`?options=-c%20enable_seqscan%3Don`).
    if !opts
        .get_options()
        .is_some_and(|o| o.contains("enable_seqscan"))
    {
        opts = opts.options([("enable_seqscan", "off")]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    use sqlx::Connection;
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(opts)
        .await?;
    let migrator = sqlx::migrate!("../migrations/postgres");
    crate::store::adopt_baseline(&pool, &migrator, BEFORE_BASELINE).await?;
    crate::store::migrate(&migrator, migrator.run(&pool).await)?;
    Ok(pool)
}

/// The LISTEN/NOTIFY channel on which servers sharing the current schema announce new timers:
/// `yimen_timers_<schema>`, or a digest of the schema name when that would not be a short
/// plain identifier (PostgreSQL channel names are at most 63 bytes).
pub async fn timer_channel(pool: &sqlx::PgPool) -> Result<String, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    Ok(channel_for(&schema))
}

fn channel_for(schema: &str) -> String {
    let plain = format!("yimen_timers_{schema}");
    if plain.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        plain
    } else {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(schema.as_bytes()));
        format!("yimen_timers_{}", &digest[..16])
    }
}

/// A write transaction on a pooled connection that it gives back when it ends, so that a
/// committer can keep one connection for all its batches (`store::Held`). A connection leaves
/// the pool and goes back through sqlx's own checks: a ping on return, another on the next
/// acquire; kept, it is pinged only when it was idle a while (as the pool does, `open`).
/// Dropped while open (a panic, a cancelled future), it closes its connection, which ends the
/// transaction on the server: an open transaction never goes back to the pool.
pub struct PgTx {
    conn: Option<sqlx::pool::PoolConnection<DB>>,
}

impl PgTx {
    pub(crate) async fn begin(
        mut conn: sqlx::pool::PoolConnection<DB>,
    ) -> Result<PgTx, sqlx::Error> {
        sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
        Ok(PgTx { conn: Some(conn) })
    }

    /// Commits and gives the connection back (closed, should the commit fail).
    pub(crate) async fn commit(self) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        self.end("COMMIT").await
    }

    pub(crate) async fn rollback(self) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(
        mut self,
        sql: &'static str,
    ) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        // Dropped with `self` (closed) should this fail.
        sqlx::raw_sql(sql).execute(&mut *self).await?;
        Ok(self
            .conn
            .take()
            .expect("a PgTx holds its connection until it ends"))
    }
}

impl std::ops::Deref for PgTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &sqlx::PgConnection {
        self.conn
            .as_ref()
            .expect("a PgTx holds its connection until it ends")
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut sqlx::PgConnection {
        self.conn
            .as_mut()
            .expect("a PgTx holds its connection until it ends")
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.conn {
            conn.close_on_drop();
        }
    }
}

/// Tells every server listening on `channel` that a timer due at `due_at` (unix millis) was
/// created; delivered when the transaction commits (not at all if it rolls back).
pub async fn notify_timers(
    tx: &mut sqlx::PgConnection,
    channel: &str,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(due_at.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Listens on `channel` and calls `wake` for every notification, until `stop` turns true. A
/// lost connection is logged and opened again (after `retry`); `wake` is also called on every
/// (re)connection, since notifications sent meanwhile are lost. Between connections the timer
/// loop falls back to its idle cap.
pub async fn listen_timers(
    pool: sqlx::PgPool,
    channel: String,
    wake: impl Fn() + Send,
    mut stop: tokio::sync::watch::Receiver<bool>,
    retry: std::time::Duration,
) {
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.changed() => return,
            }
        }
        first = false;
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "timer notifications: cannot connect; retrying");
                continue;
            }
        };
        if let Err(e) = listener.listen(&channel).await {
            tracing::warn!(channel = %channel, error = %e, "timer notifications: LISTEN failed; retrying");
            continue;
        }
        tracing::debug!(channel = %channel, "listening for timers created by other servers");
        wake();
        loop {
            tokio::select! {
                r = listener.try_recv() => match r {
                    Ok(Some(_)) => wake(),
                    Ok(None) => {
                        tracing::warn!(channel = %channel, "timer notifications: connection lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(channel = %channel, error = %e, "timer notifications: {e}; reconnecting");
                        break;
                    }
                },
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod channel_tests {
    #[test]
    fn channel_names_are_short_identifiers() {
        assert_eq!(super::channel_for("public"), "yimen_timers_public");
        let long = super::channel_for(&"s".repeat(60));
        assert!(
            long.len() <= 63 && long.starts_with("yimen_timers_"),
            "{long}"
        );
        assert_ne!(super::channel_for("Mixed"), "yimen_timers_Mixed");
    }
}

#[cfg(test)]
mod tests {
    use crate::store::postgres;
    use crate::store::sqlite_direct::tests::rows;

    /// The array writers on a fresh schema: `None` (and a visible line) without PostgreSQL.
    async fn fresh(test: &str) -> Option<(sqlx::PgPool, String)> {
        let url = crate::testing::postgres_url(test)?;
        let schema = format!(
            "t_{test}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        // As the engine opens it: the schema is made and migrated.
        let engine = crate::Engine::open_with(
            crate::OpenOptions {
                url,
                pg_schema: Some(schema.clone()),
            },
            std::sync::Arc::new(crate::clock::ManualClock::new(chrono::Utc::now())),
            std::sync::Arc::new(crate::WeekdaysOnly),
        )
        .await
        .unwrap();
        match engine.pool() {
            crate::store::StorePool::Postgres(pool) => Some((pool.clone(), schema)),
            crate::store::StorePool::Sqlite(_) => unreachable!("a postgres:// URL"),
        }
    }

    async fn drop_schema(pool: sqlx::PgPool, schema: &str) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await;
        pool.close().await;
    }

    #[tokio::test]
    async fn rows_sent_as_arrays_land_in_their_columns_and_upserts_update() {
        let Some((pool, schema)) = fresh("unnest").await else {
            return;
        };
        let (mut instance, mut task, timer, history, ..) = rows();
        // A second row of each with every optional column empty (NULL in its array).
        let mut bare = instance.clone();
        bare.id = "i2".into();
        bare.business_key = None;
        bare.result = None;
        bare.incident = None;
        bare.parent_id = None;
        bare.parent_node = None;
        bare.ended_at = None;
        let mut open = task.clone();
        open.id = "t2".into();
        open.instance_id = "i2".into();
        open.label = None;
        open.org_unit = None;
        open.locked_by = None;
        open.lock_expires_at = None;
        open.assignee = None;
        open.item = None;
        open.outcome = None;
        open.completed_by = None;
        open.last_error = None;
        open.due_at = None;
        open.completed_at = None;
        open.claimed_at = None;
        open.lapsed_by = None;
        open.lapsed_at = None;
        open.worker = None;
        open.lapsed_worker = None;
        open.assignee_key = None;
        open.locked_by_key = None;
        open.lapsed_by_key = None;
        let mut bare_timer = timer.clone();
        bare_timer.id = "tm2".into();
        bare_timer.task_id = None;
        let mut second = history.clone();
        second.seq = 2;
        second.node = Some("节点".into());

        let mut tx = pool.begin().await.unwrap();
        postgres::write_rows(
            &mut tx,
            &[&instance, &bare],
            &[&task, &open],
            &[history.clone(), second.clone()],
        )
        .await
        .unwrap();
        postgres::insert_timers(&mut tx, &[(&timer, 19), (&bare_timer, 20)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let read = postgres::instance_timers(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&timer, &bare_timer]));
        let (created,): (i64,) = sqlx::query_as("SELECT created_at FROM timers WHERE id = 'tm2'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(created, 20);
        for row in [&instance, &bare] {
            let read = postgres::instance(&pool, &row.id).await.unwrap().unwrap();
            assert_eq!(format!("{read:?}"), format!("{row:?}"));
        }
        for row in [&task, &open] {
            let read = postgres::task(&pool, &row.id).await.unwrap().unwrap();
            assert_eq!(format!("{read:?}"), format!("{row:?}"));
        }
        let read = postgres::history(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&history, &second]));

        // Written again: the rows change in place; an empty list leaves its table alone.
        instance.status = crate::runtime::state::Status::Completed;
        instance.history_count = 8;
        task.state = crate::TaskState::Completed;
        task.lapsed_by = None;
        let mut third = second.clone();
        third.seq = 3;
        let mut tx = pool.begin().await.unwrap();
        postgres::write_rows(&mut tx, &[&instance], &[], &[])
            .await
            .unwrap();
        postgres::write_rows(&mut tx, &[], &[&task], &[third.clone()])
            .await
            .unwrap();
        // Nothing to write is no statement at all.
        postgres::write_rows(&mut tx, &[], &[], &[]).await.unwrap();
        tx.commit().await.unwrap();
        let read = postgres::instance(&pool, "i1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{instance:?}"));
        let read = postgres::instance(&pool, "i2").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{bare:?}"));
        let read = postgres::task(&pool, "t1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{task:?}"));
        let read = postgres::history(&pool, "i1").await.unwrap();
        assert_eq!(
            format!("{read:?}"),
            format!("{:?}", [&history, &second, &third])
        );
        drop_schema(pool, &schema).await;
    }

    /// The server process behind a transaction.
    async fn backend(tx: &mut crate::store::Tx) -> i32 {
        match tx {
            crate::store::Tx::Postgres(t) => sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **t)
                .await
                .unwrap(),
            crate::store::Tx::Sqlite(_) => unreachable!("a PostgreSQL pool"),
        }
    }

    /// Waits up to 5 s for `query` (one boolean) to hold.
    async fn eventually(pool: &sqlx::PgPool, query: &str, pid: i32) -> bool {
        for _ in 0..50 {
            let holds: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_string()))
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
            if holds {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// A committer's kept connection (`store::Held`): used again while fresh; after an idle
    /// second pinged first, and replaced when its server process is gone; a transaction dropped
    /// open closes its connection instead of going back to the pool with its locks.
    #[tokio::test]
    async fn a_kept_connection_is_reused_checked_after_idling_and_never_pooled_open() {
        let Some((pool, schema)) = fresh("held").await else {
            return;
        };
        let store = crate::store::StorePool::Postgres(pool.clone());
        let mut held = crate::store::Held::default();
        let mut tx = store.begin_held(&mut held).await.unwrap();
        let first = backend(&mut tx).await;
        tx.commit_held(&mut held).await.unwrap();
        let mut tx = store.begin_held(&mut held).await.unwrap();
        assert_eq!(backend(&mut tx).await, first, "the kept connection");
        tx.commit_held(&mut held).await.unwrap();

        // Its server process ends (a restart, an administrator); idle for a while, it is
        // found dead by the ping and replaced.
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first)
            .execute(&pool)
            .await
            .unwrap();
        let gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)";
        assert!(eventually(&pool, gone, first).await);
        let kept = held.0.as_mut().expect("kept after a commit");
        kept.1 -= super::PING_AFTER_IDLE;
        let mut tx = store.begin_held(&mut held).await.unwrap();
        let second = backend(&mut tx).await;
        assert_ne!(second, first);

        // Dropped open (a panic, a cancelled batch), holding a lock: its connection closes,
        // which ends the transaction and frees the lock.
        sqlx::query("SELECT pg_advisory_xact_lock(4242)")
            .execute(match &mut tx {
                crate::store::Tx::Postgres(t) => &mut **t,
                crate::store::Tx::Sqlite(_) => unreachable!(),
            })
            .await
            .unwrap();
        drop(tx);
        assert!(eventually(&pool, gone, second).await, "closed, not pooled");
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(4242)")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(free, "the dropped transaction's lock is gone");
        drop_schema(pool, &schema).await;
    }

    /// The plan PostgreSQL keeps for a prepared lookup once it stops planning per call (its
    /// "generic" plan), made on a new, never analysed table: it looks every value up in the
    /// index (see `open` and `by_business_keys!`).
    #[tokio::test]
    async fn lookups_keep_index_plans_made_on_a_new_table() {
        let Some((pool, schema)) = fresh("plans").await else {
            return;
        };
        let mut conn = pool.acquire().await.unwrap();
        for (name, sql) in [
            ("tasks_by_id", super::TASKS_BY_ID),
            ("by_business_keys", super::BY_BUSINESS_KEYS),
            ("lock_live_tasks", super::LOCK_LIVE_TASKS),
            ("lock_tasks_with_siblings", super::LOCK_TASKS_WITH_SIBLINGS),
        ] {
            let prepare = format!("PREPARE {name} AS {sql}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await
            .unwrap();
        for explain in [
            r#"EXPLAIN EXECUTE tasks_by_id('["t1"]')"#,
            r#"EXPLAIN EXECUTE by_business_keys('["p"]', '["k"]')"#,
        ] {
            let plan: Vec<(String,)> = sqlx::query_as(explain).fetch_all(&mut *conn).await.unwrap();
            let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "{explain}:\n{plan}");
            assert!(plan.contains("Index"), "{explain}:\n{plan}");
            // Every condition looks the index up; none filters what a walk of it read (as
            // the business keys were once, after an index walk on the process alone).
            assert!(!plan.contains("Filter"), "{explain}:\n{plan}");
        }
        // The live tasks of instances come through `tasks_instance`, which holds only them
        // (the schema's partial index).
        for explain in [
            r#"EXPLAIN EXECUTE lock_live_tasks('["i1"]')"#,
            r#"EXPLAIN EXECUTE lock_tasks_with_siblings('["t1"]')"#,
        ] {
            let plan: Vec<(String,)> = sqlx::query_as(explain).fetch_all(&mut *conn).await.unwrap();
            let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "{explain}:\n{plan}");
            assert!(plan.contains("using tasks_instance"), "{explain}:\n{plan}");
        }
        let (index,): (String,) = sqlx::query_as(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = 'tasks_instance'",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert!(index.contains("WHERE (state = ANY"), "{index}");
        drop(conn);
        drop_schema(pool, &schema).await;
    }

    /// `enable_seqscan` is off on the engine's connections unless the URL sets it.
    #[tokio::test]
    async fn a_url_may_turn_sequential_scans_back_on() {
        let Some(url) = crate::testing::postgres_url("seqscan_option") else {
            return;
        };
        let schema = format!(
            "t_seqscan_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        let joiner = if url.contains('?') { '&' } else { '?' };
        for (url, expected) in [
            (url.clone(), "off"),
            (
                format!("{url}{joiner}options=-c%20enable_seqscan%3Don"),
                "on",
            ),
        ] {
            let pool = postgres::open(&url, Some(&schema)).await.unwrap();
            let (value,): (String,) = sqlx::query_as("SHOW enable_seqscan")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(value, expected, "{url}");
            pool.close().await;
        }
        drop_schema(admin, &schema).await;
    }
}
