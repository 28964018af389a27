// The SQL of the store, written once. Included by `sqlite.rs` and `postgres.rs`, which define
// `DB`, `DbRow` and the macros `for_update!()`, `skip_locked!()` and `is_in!(json "$n")` /
// `is_in!(query …)`.

use crate::store::{
    Arg, ClaimQuery, DeploymentRow, DocumentRow, HistoryRow, InstanceRow, OpenWorkQuery,
    OutboxRow, TaskCase, TaskQuery, TaskRow, TimerRow,
};
use sqlx::Row;

/// A connection inside a write transaction.
type Tx = <DB as sqlx::Database>::Connection;
type Pool = sqlx::Pool<DB>;
type R<T> = Result<T, sqlx::Error>;

/// `Type { field, .. }` with each field read by its own name, `$r.try_get("field")?`: from
/// sqlx's rows here, and from the rows `sqlite_direct` reads itself.
macro_rules! by_name {
    ($r:expr, $ty:ident { $($field:ident),+ $(,)? }) => {
        $ty { $($field: $r.try_get(stringify!($field))?),+ }
    };
}

/// A `DeploymentRow`'s fields, also for `sqlite_write`.
macro_rules! deployment_fields {
    ($r:expr) => {
        by_name!(
            $r,
            DeploymentRow {
                key,
                version,
                hash,
                title,
                source,
                model,
                config,
                files,
                created_at
            }
        )
    };
}

fn deployment_row(r: &DbRow) -> R<DeploymentRow> {
    Ok(deployment_fields!(r))
}

/// An `InstanceRow`'s fields, also for `sqlite_direct`.
macro_rules! instance_fields {
    ($r:expr) => {
        by_name!(
            $r,
            InstanceRow {
                id,
                process_key,
                version,
                business_key,
                status,
                result,
                incident,
                vars,
                state,
                provisional,
                parent_id,
                parent_node,
                created_at,
                updated_at,
                ended_at,
                history_count,
                history_head
            }
        )
    };
}

fn instance_row(r: &DbRow) -> R<InstanceRow> {
    Ok(instance_fields!(r))
}

/// A `TaskRow`'s fields, also for `sqlite_direct`.
macro_rules! task_fields {
    ($r:expr) => {
        by_name!(
            $r,
            TaskRow {
                id,
                instance_id,
                node,
                label,
                queue,
                org_unit,
                state,
                lock_token,
                locked_by,
                lock_expires_at,
                available_at,
                assignee,
                item,
                outcome,
                completed_by,
                failures,
                last_error,
                due_at,
                created_at,
                completed_at,
                claimed_at,
                lapsed_by,
                lapsed_at,
                worker,
                lapsed_worker,
                assignee_key,
                locked_by_key,
                lapsed_by_key
            }
        )
    };
}

fn task_row(r: &DbRow) -> R<TaskRow> {
    Ok(task_fields!(r))
}

/// A `TimerRow`'s fields, also for `sqlite_direct`.
macro_rules! timer_fields {
    ($r:expr) => {
        by_name!(
            $r,
            TimerRow {
                id,
                instance_id,
                kind,
                node,
                task_id,
                due_at,
                payload,
                state
            }
        )
    };
}

fn timer_row(r: &DbRow) -> R<TimerRow> {
    Ok(timer_fields!(r))
}

/// The entries of stored history packs, in the rows' order (`store::history`).
fn history_rows(rows: &[DbRow]) -> R<Vec<HistoryRow>> {
    let mut out = Vec::with_capacity(rows.len() * 4);
    for r in rows {
        let entries: String = r.try_get("entries")?;
        out.extend(crate::store::history::unpack(
            r.try_get("instance_id")?,
            r.try_get("seq")?,
            r.try_get("first_at")?,
            &entries,
        ));
    }
    Ok(out)
}

/// An `OutboxRow`'s fields, also for `sqlite_write`.
macro_rules! outbox_fields {
    ($r:expr) => {
        by_name!(
            $r,
            OutboxRow {
                id,
                instance_id,
                channel,
                dedup_key,
                payload,
                state,
                attempts,
                next_attempt_at,
                last_error,
                created_at,
                delivered_at
            }
        )
    };
}

fn outbox_row(r: &DbRow) -> R<OutboxRow> {
    Ok(outbox_fields!(r))
}

fn document_row(r: &DbRow) -> R<DocumentRow> {
    Ok(by_name!(
        r,
        DocumentRow {
            id,
            instance_id,
            name,
            label,
            public,
            content,
            created_at
        }
    ))
}

// ---- deployments ----

/// The SQL of [`deployment_by_hash`] (also on SQLite's writer, `sqlite_write`).
pub(crate) const DEPLOYMENT_BY_HASH: &str =
    "SELECT * FROM deployments WHERE key = $1 AND hash = $2";

pub async fn deployment_by_hash(tx: &mut Tx, key: &str, hash: &str) -> R<Option<DeploymentRow>> {
    sqlx::query(DEPLOYMENT_BY_HASH)
        .bind(key)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| deployment_row(&r))
        .transpose()
}

/// The SQL of [`max_version`].
pub(crate) const MAX_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) AS v FROM deployments WHERE key = $1";

pub async fn max_version(tx: &mut Tx, key: &str) -> R<i64> {
    let r = sqlx::query(MAX_VERSION)
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    r.try_get("v")
}

/// The SQL of [`insert_deployment`].
pub(crate) const INSERT_DEPLOYMENT: &str = "INSERT INTO deployments (key, version, hash, title, source, model, config, files, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub async fn insert_deployment(tx: &mut Tx, d: &DeploymentRow) -> R<()> {
    sqlx::query(INSERT_DEPLOYMENT)
        .bind(&d.key)
        .bind(d.version)
        .bind(&d.hash)
        .bind(&d.title)
        .bind(&d.source)
        .bind(&d.model)
        .bind(&d.config)
        .bind(&d.files)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The SQL of [`bump_access_generation`].
pub(crate) const BUMP_ACCESS_GENERATION: &str =
    "UPDATE access_generation SET generation = generation + 1 WHERE id = 1";

/// Bumps the access generation: servers drop what they cached about tokens
/// and start rules at their next request.
pub async fn bump_access_generation(tx: &mut Tx) -> R<()> {
    sqlx::query(BUMP_ACCESS_GENERATION)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The latest version of `key` (`None`: never deployed): one read of the primary key index.
pub async fn latest_version(pool: &Pool, key: &str) -> R<Option<i64>> {
    let r = sqlx::query("SELECT MAX(version) AS v FROM deployments WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await?;
    r.try_get("v")
}

/// The SQL of [`deployment`] and [`deployment_tx`]: a version, or the latest.
pub(crate) const DEPLOYMENT: &str = "SELECT * FROM deployments WHERE key = $1 \
    AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1";

pub async fn deployment(pool: &Pool, key: &str, version: Option<i64>) -> R<Option<DeploymentRow>> {
    sqlx::query(DEPLOYMENT)
        .bind(key)
        .bind(version)
        .fetch_optional(pool)
        .await?
        .map(|r| deployment_row(&r))
        .transpose()
}

pub async fn deployment_tx(
    tx: &mut Tx,
    key: &str,
    version: Option<i64>,
) -> R<Option<DeploymentRow>> {
    sqlx::query(DEPLOYMENT)
        .bind(key)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| deployment_row(&r))
        .transpose()
}

pub async fn deployments(pool: &Pool) -> R<Vec<DeploymentRow>> {
    sqlx::query("SELECT * FROM deployments ORDER BY key, version")
        .fetch_all(pool)
        .await?
        .iter()
        .map(deployment_row)
        .collect()
}

// ---- instances ----

/// The SQL of [`lock_instance`].
pub(crate) const LOCK_INSTANCE: &str =
    concat!("SELECT * FROM instances WHERE id = $1", for_update!());

/// Reads an instance and locks its row for the rest of the transaction.
pub async fn lock_instance(tx: &mut Tx, id: &str) -> R<Option<InstanceRow>> {
    sqlx::query(LOCK_INSTANCE)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| instance_row(&r))
        .transpose()
}

/// The SQL of [`instances_by_id`].
pub(crate) const INSTANCES_BY_ID: &str =
    concat!("SELECT * FROM instances WHERE id ", is_in!(json "$1"));

/// Instances by id (a JSON array), read without a lock (what a claim answers with).
pub async fn instances_by_id(tx: &mut Tx, ids: &str) -> R<Vec<InstanceRow>> {
    sqlx::query(INSTANCES_BY_ID)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(instance_row)
        .collect()
}

/// The SQL of [`lock_instances`].
pub(crate) const LOCK_INSTANCES: &str = concat!(
    "SELECT * FROM instances WHERE id ",
    is_in!(json "$1"),
    " ORDER BY id",
    for_update!()
);

/// Reads and locks several instances (ids as a JSON array), in id order.
pub async fn lock_instances(tx: &mut Tx, ids: &str) -> R<Vec<InstanceRow>> {
    sqlx::query(LOCK_INSTANCES)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(instance_row)
        .collect()
}

/// The SQL of [`update_instance`].
pub(crate) const UPDATE_INSTANCE: &str = "UPDATE instances SET status = $2, result = $3, \
    incident = $4, vars = $5, state = $6, provisional = $7, updated_at = $8, ended_at = $9, \
    history_count = $10, history_head = $11 WHERE id = $1";

pub async fn update_instance(tx: &mut Tx, i: &InstanceRow) -> R<()> {
    sqlx::query(UPDATE_INSTANCE)
        .bind(&i.id)
        .bind(i.status)
        .bind(&i.result)
        .bind(&i.incident)
        .bind(&i.vars)
        .bind(&i.state)
        .bind(i.provisional)
        .bind(i.updated_at)
        .bind(i.ended_at)
        .bind(i.history_count)
        .bind(&i.history_head)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn instance(pool: &Pool, id: &str) -> R<Option<InstanceRow>> {
    sqlx::query("SELECT * FROM instances WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| instance_row(&r))
        .transpose()
}

pub async fn instances_all(pool: &Pool) -> R<Vec<InstanceRow>> {
    sqlx::query("SELECT * FROM instances ORDER BY id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(instance_row)
        .collect()
}

/// The SQL of [`instances_after`].
pub(crate) const INSTANCES_AFTER: &str = concat!(
    "SELECT * FROM instances WHERE id > $1 ORDER BY id LIMIT $2",
    for_update!()
);

/// Up to `limit` instances whose ids follow `after`, in id order, locked (the search table's
/// backfill, `Engine::index_cases`).
pub async fn instances_after(tx: &mut Tx, after: &str, limit: i64) -> R<Vec<InstanceRow>> {
    sqlx::query(INSTANCES_AFTER)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(instance_row)
        .collect()
}

/// Every case's id, entry count and head, for a ledger checkpoint.
pub async fn case_heads(pool: &Pool) -> R<Vec<crate::ledger_keys::CaseHead>> {
    sqlx::query("SELECT id, history_count, history_head FROM instances ORDER BY id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(crate::ledger_keys::CaseHead {
                id: r.try_get("id")?,
                entries: r.try_get("history_count")?,
                head: r.try_get("history_head")?,
            })
        })
        .collect()
}

// ---- tasks ----

/// The SQL of [`lock_task`].
pub(crate) const LOCK_TASK: &str = concat!("SELECT * FROM tasks WHERE id = $1", for_update!());

/// Reads a task and locks its row.
pub async fn lock_task(tx: &mut Tx, id: &str) -> R<Option<TaskRow>> {
    sqlx::query(LOCK_TASK)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| task_row(&r))
        .transpose()
}

/// A task by id (`task`; on SQLite also read on the handle, `sqlite_direct::tasks`).
pub(crate) const TASK_BY_ID: &str = "SELECT * FROM tasks WHERE id = $1";

/// The tasks of these ids, a JSON array (`tasks_by_id`; also read on the handle).
pub(crate) const TASKS_BY_ID: &str = concat!("SELECT * FROM tasks WHERE id ", is_in!(json "$1"));

pub async fn task(pool: &Pool, id: &str) -> R<Option<TaskRow>> {
    sqlx::query(TASK_BY_ID)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| task_row(&r))
        .transpose()
}

/// The tasks of these ids (a JSON array) that exist.
pub async fn tasks_by_id(pool: &Pool, ids: &str) -> R<Vec<TaskRow>> {
    sqlx::query(TASKS_BY_ID)
        .bind(ids)
        .fetch_all(pool)
        .await?
        .iter()
        .map(task_row)
        .collect()
}

/// The SQL of [`update_task`].
pub(crate) const UPDATE_TASK: &str = "UPDATE tasks SET state = $2, lock_token = $3, \
    locked_by = $4, lock_expires_at = $5, available_at = $6, outcome = $7, completed_by = $8, \
    failures = $9, last_error = $10, completed_at = $11, worker = $12, locked_by_key = $13 \
    WHERE id = $1";

pub async fn update_task(tx: &mut Tx, t: &TaskRow) -> R<()> {
    sqlx::query(UPDATE_TASK)
        .bind(&t.id)
        .bind(t.state)
        .bind(t.lock_token)
        .bind(&t.locked_by)
        .bind(t.lock_expires_at)
        .bind(t.available_at)
        .bind(&t.outcome)
        .bind(&t.completed_by)
        .bind(t.failures)
        .bind(&t.last_error)
        .bind(t.completed_at)
        .bind(&t.worker)
        .bind(&t.locked_by_key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The SQL of [`reopen_failed_tasks`].
pub(crate) const REOPEN_FAILED_TASKS: &str = "UPDATE tasks SET state = 'open', available_at = $2, \
    locked_by = NULL, locked_by_key = NULL, worker = NULL, lock_expires_at = NULL \
    WHERE instance_id = $1 AND state = 'failed'";

pub async fn reopen_failed_tasks(tx: &mut Tx, instance: &str, now: i64) -> R<u64> {
    Ok(sqlx::query(REOPEN_FAILED_TASKS)
        .bind(instance)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}

/// What a claim writes on the tasks of the CTE `c`, and returns: `$1` the claimer's name, `$2`
/// the lease's end, `now`, `worker` and `key` the placeholders of the time, the worker label and
/// the claimer's key. SET reads the row as it was: a claim whose lease ran out is kept for the
/// history (see `Engine::claims_in`).
macro_rules! claim_update {
    ($now:literal, $worker:literal, $key:literal) => {
        concat!(
            "UPDATE tasks SET ",
            "lapsed_by = CASE WHEN state = 'claimed' THEN locked_by END, \
             lapsed_by_key = CASE WHEN state = 'claimed' THEN locked_by_key END, \
             lapsed_at = CASE WHEN state = 'claimed' THEN claimed_at END, \
             lapsed_worker = CASE WHEN state = 'claimed' THEN worker END, \
             state = 'claimed', lock_token = lock_token + 1, locked_by = $1, locked_by_key = ",
            $key,
            ", lock_expires_at = $2, worker = NULLIF(",
            $worker,
            ", ''), claimed_at = ",
            $now,
            " WHERE id IN (SELECT id FROM c) RETURNING *"
        )
    };
}

/// A task the claimer (`$1` its name, `key` the placeholder of its key) may claim at `now`:
/// assigned to nobody, or to the claimer by key (by name for a task whose assignee has no key),
/// or to someone whose tasks of its queue and unit a reassignment hands the claimer now (one
/// lookup in `reassignments_to`, made only for a task assigned to someone else: the
/// `store::reassignments` module).
macro_rules! assigned_to_claimer {
    ($key:literal, $now:literal) => {
        concat!(
            " AND (assignee IS NULL OR assignee_key = ",
            $key,
            " OR (assignee_key IS NULL AND assignee = $1) \
             OR EXISTS (SELECT 1 FROM reassignments r WHERE r.to_key = ",
            $key,
            " AND r.from_key = tasks.assignee_key AND r.org_unit = tasks.org_unit \
             AND r.role = tasks.queue AND r.starts_at <= ",
            $now,
            " AND (r.ends_at IS NULL OR r.ends_at > ",
            $now,
            ")))"
        )
    };
}

/// A claim of one task by its id (`$3`), claimable as fetch-and-lock would find it (open and
/// available, or claimed with its lease run out, and assigned to nobody or to the claimer), at
/// `$4`. A row another transaction holds is skipped like fetch-and-lock's: the engine reads
/// the task to say why nothing was claimed, and tries again while it looks claimable.
const CLAIM_ONE: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT id FROM tasks WHERE id = $3 AND \
     ((state = 'open' AND available_at <= $4) OR (state = 'claimed' AND lock_expires_at <= $4))",
    assigned_to_claimer!("$6", "$4"),
    skip_locked!(),
    ") ",
    claim_update!("$4", "$5", "$6")
);

/// The SQL of [`claim_tasks`] for `q`, and its values ($1, $2, ..).
pub(crate) fn claim_statement(q: &ClaimQuery) -> (&'static str, Vec<Arg<'_>>) {
    // The candidates are picked (and, on PostgreSQL, locked) once, in a materialised CTE: an
    // `IN (subquery)` may be re-evaluated by the planner and claim more than asked. Open tasks
    // and claimed tasks whose lease ran out are looked up apart, each walking the
    // (queue, state, created_at, id) index in order and stopping at the limit (with one queue;
    // several queues are sorted), then merged. Four texts, with one queue or several, with
    // org units or without: a `$n IS NULL` branch would make SQLite prepare the statement
    // anew on every call (its plan depends on the bound value). For the same reason a limit is
    // `($n + 0)`: SQLite reads a bare `LIMIT $n` as a known integer, marks the statement to be
    // prepared again whenever that parameter is bound, and so parsed and planned this
    // statement on every claim.
    macro_rules! claim_sql {
        ($queue:expr, $org:expr, $now:literal, $max:literal, $worker:literal, $key:literal) => {
            concat!(
                "WITH c AS MATERIALIZED (SELECT id FROM (",
                "SELECT id, created_at FROM (SELECT id, created_at FROM tasks WHERE ",
                $queue,
                $org,
                " AND state = 'open' AND available_at <= ",
                $now,
                assigned_to_claimer!($key, $now),
                " ORDER BY created_at, id LIMIT (",
                $max,
                " + 0)",
                skip_locked!(),
                ") o UNION ALL ",
                "SELECT id, created_at FROM (SELECT id, created_at FROM tasks WHERE ",
                $queue,
                $org,
                " AND state = 'claimed' AND lock_expires_at <= ",
                $now,
                assigned_to_claimer!($key, $now),
                " ORDER BY created_at, id LIMIT (",
                $max,
                " + 0)",
                skip_locked!(),
                ") x ORDER BY created_at, id LIMIT (",
                $max,
                " + 0)",
                ") u) ",
                claim_update!($now, $worker, $key)
            )
        };
    }
    // `$1`, the claimer's name, is the holder written (and the assignee a task without keys
    // names); the worker label and the claimer's key go last (an empty label: none).
    let (actor, expires) = (Arg::text(&q.actor), Arg::Int(q.expires_at));
    let (now, max) = (Arg::Int(q.now), Arg::Int(q.max));
    let worker = Arg::text(q.worker.as_deref().unwrap_or(""));
    let key = Arg::text(&q.actor_key);
    if let Some(task) = &q.task {
        return (
            CLAIM_ONE,
            vec![actor, expires, Arg::text(task), now, worker, key],
        );
    }
    let queues: Vec<String> = serde_json::from_str(&q.queues).unwrap_or_default();
    match (queues.as_slice(), &q.org_units) {
        ([queue], Some(units)) => (
            claim_sql!(
                "queue = $3",
                concat!(
                    " AND (org_unit IS NULL OR org_unit ",
                    is_in!(json "$4"),
                    ")"
                ),
                "$5",
                "$6",
                "$7",
                "$8"
            ),
            vec![
                actor,
                expires,
                Arg::Text(queue.clone().into()),
                Arg::text(units),
                now,
                max,
                worker,
                key,
            ],
        ),
        (_, Some(units)) => (
            claim_sql!(
                concat!("queue ", is_in!(json "$3")),
                concat!(
                    " AND (org_unit IS NULL OR org_unit ",
                    is_in!(json "$4"),
                    ")"
                ),
                "$5",
                "$6",
                "$7",
                "$8"
            ),
            vec![
                actor,
                expires,
                Arg::text(&q.queues),
                Arg::text(units),
                now,
                max,
                worker,
                key,
            ],
        ),
        ([queue], None) => (
            claim_sql!("queue = $3", "", "$4", "$5", "$6", "$7"),
            vec![
                actor,
                expires,
                Arg::Text(queue.clone().into()),
                now,
                max,
                worker,
                key,
            ],
        ),
        (_, None) => (
            claim_sql!(
                concat!("queue ", is_in!(json "$3")),
                "",
                "$4",
                "$5",
                "$6",
                "$7"
            ),
            vec![actor, expires, Arg::text(&q.queues), now, max, worker, key],
        ),
    }
}

/// Fetch-and-lock: up to `max` claimable tasks get the worker, a new fencing token and a lease.
pub async fn claim_tasks(tx: &mut Tx, q: &ClaimQuery) -> R<Vec<TaskRow>> {
    let (sql, args) = claim_statement(q);
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.into_owned()),
            Arg::Int(i) => query.bind(i),
        };
    }
    let rows = query.fetch_all(&mut *tx).await?;
    let mut tasks: Vec<TaskRow> = rows.iter().map(task_row).collect::<R<_>>()?;
    tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(tasks)
}

/// Open, claimed and failed tasks of an instance.
pub async fn active_tasks(pool: &Pool, instance: &str) -> R<Vec<TaskRow>> {
    sqlx::query(
        "SELECT * FROM tasks WHERE instance_id = $1 AND state IN ('open', 'claimed', 'failed') \
         ORDER BY created_at, id",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?
    .iter()
    .map(task_row)
    .collect()
}

pub async fn tasks(pool: &Pool, q: &TaskQuery) -> R<Vec<TaskRow>> {
    sqlx::query(concat!(
        "SELECT * FROM tasks WHERE ($1 IS NULL OR queue ",
        is_in!(json "$1"),
        ") AND ($2 IS NULL OR org_unit IS NULL OR org_unit ",
        is_in!(json "$2"),
        ") AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR instance_id = $4) \
         ORDER BY created_at, id LIMIT $5"
    ))
    .bind(&q.queues)
    .bind(&q.org_units)
    .bind(&q.state)
    .bind(&q.instance)
    .bind(q.limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(task_row)
    .collect()
}

/// The tasks the holder of `key` has claimed (its claims that hold; by `name`, a claim
/// recorded without a key), oldest first.
pub async fn claimed_tasks(pool: &Pool, name: &str, key: &str, limit: i64) -> R<Vec<TaskRow>> {
    sqlx::query(
        "SELECT * FROM tasks WHERE state = 'claimed' \
         AND (locked_by_key = $1 OR (locked_by_key IS NULL AND locked_by = $2)) \
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(key)
    .bind(name)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(task_row)
    .collect()
}

/// A task row with its case's columns (`case_key`, `case_process`, `case_version`).
fn task_with_case(r: &DbRow) -> R<(TaskRow, TaskCase)> {
    Ok((
        task_row(r)?,
        TaskCase {
            business_key: r.try_get("case_key")?,
            process_key: r.try_get("case_process")?,
            version: r.try_get("case_version")?,
        },
    ))
}

/// What a work list selects: the task and its case, joined on the instance's key.
macro_rules! work_select {
    () => {
        "SELECT t.*, i.business_key AS case_key, i.process_key AS case_process, \
         i.version AS case_version FROM tasks t JOIN instances i ON i.id = t.instance_id "
    };
}

/// The filter of [`open_work`]: `state = 'open'` written out, so that both databases use the
/// partial index `tasks_open_urgency` (migration 1020).
macro_rules! open_work_where {
    () => {
        concat!(
            "WHERE t.state = 'open' AND t.queue ",
            is_in!(json "$1"),
            " AND ($2 IS NULL OR t.org_unit IS NULL OR t.org_unit ",
            is_in!(json "$2"),
            ") AND ($3 IS NULL OR t.instance_id ",
            is_in!(json "$3"),
            ") AND ($4 IS NULL OR t.due_at >= $4) AND ($5 IS NULL OR t.due_at < $5) "
        )
    };
}

/// A page of open work, most urgent first: by due time (tasks without one last), then by
/// creation; with how many tasks all pages hold.
pub async fn open_work(pool: &Pool, q: &OpenWorkQuery) -> R<(Vec<(TaskRow, TaskCase)>, i64)> {
    let rows = sqlx::query(concat!(
        work_select!(),
        open_work_where!(),
        "ORDER BY COALESCE(t.due_at, 9223372036854775807), t.created_at, t.id \
         LIMIT $6 OFFSET $7"
    ))
    .bind(&q.queues)
    .bind(&q.org_units)
    .bind(&q.instances)
    .bind(q.due_from)
    .bind(q.due_before)
    .bind(q.limit)
    .bind(q.offset)
    .fetch_all(pool)
    .await?
    .iter()
    .map(task_with_case)
    .collect::<R<Vec<_>>>()?;
    let total: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM tasks t ",
        open_work_where!()
    ))
    .bind(&q.queues)
    .bind(&q.org_units)
    .bind(&q.instances)
    .bind(q.due_from)
    .bind(q.due_before)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// [`claimed_tasks`] with each task's case, in one query.
pub async fn claimed_tasks_with_cases(
    pool: &Pool,
    name: &str,
    key: &str,
    limit: i64,
) -> R<Vec<(TaskRow, TaskCase)>> {
    sqlx::query(concat!(
        work_select!(),
        "WHERE t.state = 'claimed' \
         AND (t.locked_by_key = $1 OR (t.locked_by_key IS NULL AND t.locked_by = $2)) \
         ORDER BY t.created_at, t.id LIMIT $3"
    ))
    .bind(key)
    .bind(name)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(task_with_case)
    .collect()
}

/// How many open tasks each queue has, of the organisation units of a JSON array (`None`:
/// all), as the task list reads them.
pub async fn open_task_counts(pool: &Pool, org_units: Option<&str>) -> R<Vec<(String, i64)>> {
    sqlx::query(concat!(
        "SELECT queue, COUNT(*) AS open FROM tasks WHERE state = 'open' \
         AND ($1 IS NULL OR org_unit IS NULL OR org_unit ",
        is_in!(json "$1"),
        ") GROUP BY queue ORDER BY queue"
    ))
    .bind(org_units)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("queue")?, r.try_get("open")?)))
    .collect()
}

// ---- timers ----

/// The SQL of [`due_timers`].
pub(crate) const DUE_TIMERS: &str = concat!(
    "SELECT * FROM timers WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, id LIMIT $2",
    skip_locked!()
);

/// Up to `limit` pending timers due at `now`, in due order, locked (skipping timers another
/// server is firing). Walks `timers_pending` (due_at, id), so the cost is the rows returned,
/// not the number due.
pub async fn due_timers(tx: &mut Tx, now: i64, limit: i64) -> R<Vec<TimerRow>> {
    sqlx::query(DUE_TIMERS)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(timer_row)
        .collect()
}

/// The SQL of [`fire_timers`]. No condition on the state (the transaction holds the timers,
/// pending): on PostgreSQL the planner would combine all of `timers_pending` with the
/// primary key.
pub(crate) const FIRE_TIMERS: &str = concat!(
    "UPDATE timers SET state = 'fired', fired_at = $2 WHERE id ",
    is_in!(json "$1")
);

/// Marks timers (ids as a JSON array) fired: pending timers the transaction holds.
pub async fn fire_timers(tx: &mut Tx, ids: &str, now: i64) -> R<u64> {
    Ok(sqlx::query(FIRE_TIMERS)
        .bind(ids)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}

pub async fn next_timer_due(pool: &Pool) -> R<Option<i64>> {
    let r = sqlx::query("SELECT MIN(due_at) AS d FROM timers WHERE state = 'pending'")
        .fetch_one(pool)
        .await?;
    r.try_get("d")
}

/// Pending timers of an instance, soonest first. Sorted here: with `ORDER BY due_at` the
/// planner may walk the `timers_pending` index through every pending timer of every instance.
pub async fn instance_timers(pool: &Pool, instance: &str) -> R<Vec<TimerRow>> {
    let mut timers =
        sqlx::query("SELECT * FROM timers WHERE instance_id = $1 AND state = 'pending'")
            .bind(instance)
            .fetch_all(pool)
            .await?
            .iter()
            .map(timer_row)
            .collect::<R<Vec<_>>>()?;
    timers.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
    Ok(timers)
}

// ---- history ----

/// The SQL of [`set_history_head`].
pub(crate) const SET_HISTORY_HEAD: &str =
    "UPDATE instances SET history_count = $2, history_head = $3 WHERE id = $1";

pub async fn set_history_head(tx: &mut Tx, instance: &str, count: i64, head: &str) -> R<()> {
    sqlx::query(SET_HISTORY_HEAD)
        .bind(instance)
        .bind(count)
        .bind(head)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn history(pool: &Pool, instance: &str) -> R<Vec<HistoryRow>> {
    sqlx::query("SELECT * FROM history WHERE instance_id = $1 ORDER BY seq")
        .bind(instance)
        .fetch_all(pool)
        .await
        .and_then(|rows| history_rows(&rows))
}

/// Entries written in `[from, to)`, by time, instance and number, from the packs that may hold
/// some (`store::history::SPAN`).
pub async fn history_range(pool: &Pool, from: i64, to: i64) -> R<Vec<HistoryRow>> {
    let rows = sqlx::query("SELECT * FROM history WHERE first_at >= $1 AND first_at < $2")
        .bind(from.saturating_sub(crate::store::history::SPAN))
        .bind(to)
        .fetch_all(pool)
        .await?;
    let mut entries = history_rows(&rows)?;
    entries.retain(|h| h.at >= from && h.at < to);
    entries.sort_by(|a, b| (a.at, &a.instance_id, a.seq).cmp(&(b.at, &b.instance_id, b.seq)));
    Ok(entries)
}

pub async fn history_all(pool: &Pool) -> R<Vec<HistoryRow>> {
    sqlx::query("SELECT * FROM history ORDER BY instance_id, seq")
        .fetch_all(pool)
        .await
        .and_then(|rows| history_rows(&rows))
}

// ---- outbox ----

pub async fn insert_outbox(tx: &mut Tx, o: &OutboxRow) -> R<()> {
    let sql = values_sql(crate::store::OUTBOX_INTO, 9, 1, "");
    // The text holds only placeholders; every value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&o.id)
        .bind(&o.instance_id)
        .bind(&o.channel)
        .bind(&o.dedup_key)
        .bind(&o.payload)
        .bind(o.state)
        .bind(o.attempts)
        .bind(o.next_attempt_at)
        .bind(o.created_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The SQL of [`claim_outbox`].
pub(crate) const CLAIM_OUTBOX: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
     AND ($4 IS NULL OR (channel LIKE 'webhook:%') = $4) \
     ORDER BY next_attempt_at, id LIMIT $3",
    skip_locked!(),
    ") UPDATE outbox SET next_attempt_at = $2, attempts = attempts + 1 WHERE id IN (SELECT id FROM c) \
     RETURNING *"
);

/// Claims due deliveries: they become invisible to other claimers until `lease_until`.
/// `webhooks`: `Some(true)` claims only webhook rows, `Some(false)` only the others (inbox
/// notices), `None` both (the delivery lanes of `outbox::Delivery`).
pub async fn claim_outbox(
    tx: &mut Tx,
    now: i64,
    lease_until: i64,
    max: i64,
    webhooks: Option<bool>,
) -> R<Vec<OutboxRow>> {
    sqlx::query(CLAIM_OUTBOX)
        .bind(now)
        .bind(lease_until)
        .bind(max)
        .bind(webhooks)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(outbox_row)
        .collect()
}

pub async fn outbox_delivered(pool: &Pool, id: &str, now: i64) -> R<u64> {
    Ok(sqlx::query("UPDATE outbox SET state = 'delivered', delivered_at = $2 WHERE id = $1 AND state = 'pending'")
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected())
}

pub async fn outbox_failed(pool: &Pool, id: &str, error: &str, retry_at: Option<i64>) -> R<u64> {
    Ok(sqlx::query(
        "UPDATE outbox SET last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
         state = CASE WHEN $3 IS NULL THEN 'dead' ELSE 'pending' END WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn outbox_failures(pool: &Pool, limit: i64) -> R<Vec<OutboxRow>> {
    sqlx::query(
        "SELECT * FROM outbox WHERE state IN ('pending', 'dead') AND last_error IS NOT NULL \
         ORDER BY created_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(outbox_row)
    .collect()
}

pub async fn outbox_of(pool: &Pool, instance: &str) -> R<Vec<OutboxRow>> {
    sqlx::query("SELECT * FROM outbox WHERE instance_id = $1 ORDER BY created_at, id")
        .bind(instance)
        .fetch_all(pool)
        .await?
        .iter()
        .map(outbox_row)
        .collect()
}

// ---- documents ----

pub async fn insert_document(tx: &mut Tx, d: &DocumentRow) -> R<()> {
    let sql = values_sql(crate::store::DOCUMENTS_INTO, 7, 1, "");
    // The text holds only placeholders; every value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&d.id)
        .bind(&d.instance_id)
        .bind(&d.name)
        .bind(&d.label)
        .bind(d.public)
        .bind(&d.content)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

// ---- oversight: signals and clocks ----

pub async fn insert_signal(tx: &mut Tx, s: &crate::store::SignalRow) -> R<()> {
    let sql = values_sql(crate::store::SIGNALS_INTO, 11, 1, crate::store::SIGNALS_TAIL);
    // The text holds only placeholders; every value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&s.id)
        .bind(&s.instance_id)
        .bind(&s.node)
        .bind(&s.task_id)
        .bind(&s.clock)
        .bind(&s.queue)
        .bind(&s.org_unit)
        .bind(&s.light)
        .bind(s.level)
        .bind(s.due_at)
        .bind(s.at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn insert_action(tx: &mut Tx, a: &crate::store::ActionRow) -> R<()> {
    let sql = values_sql(crate::store::ACTIONS_INTO, 9, 1, "");
    // The text holds only placeholders; every value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&a.id)
        .bind(&a.instance_id)
        .bind(&a.kind)
        .bind(&a.queue)
        .bind(&a.org_unit)
        .bind(&a.text)
        .bind(&a.actor)
        .bind(&a.actor_key)
        .bind(a.at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn upsert_clock(tx: &mut Tx, c: &crate::store::CaseClockRow) -> R<()> {
    let sql = values_sql(
        crate::store::CASE_CLOCKS_INTO,
        9,
        1,
        crate::store::CASE_CLOCKS_UPSERT,
    );
    // The text holds only placeholders; every value is bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&c.instance_id)
        .bind(&c.clock)
        .bind(&c.process_key)
        .bind(&c.org_unit)
        .bind(&c.state)
        .bind(c.started_at)
        .bind(c.due_at)
        .bind(c.warn_at)
        .bind(c.stopped_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The board's condition on the light of clock `c` as of `$5` (`$4`: the light asked for).
macro_rules! board_where {
    () => {
        concat!(
            "WHERE c.state IN ('running', 'paused') AND ($1 IS NULL OR c.org_unit ",
            is_in!(json "$1"),
            ") AND ($2 IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id = c.instance_id \
             AND t.state IN ('open', 'claimed', 'failed') AND t.queue = $2)) \
             AND ($3 IS NULL OR c.clock = $3) \
             AND ($4 IS NULL \
              OR ($4 = 'red' AND c.due_at <= $5) \
              OR ($4 = 'yellow' AND c.due_at > $5 AND c.warn_at <= $5) \
              OR ($4 = 'green' AND c.due_at > $5 AND (c.warn_at IS NULL OR c.warn_at > $5)) \
              OR ($4 = 'paused' AND c.state = 'paused')) "
        )
    };
}

/// A page of running and paused clocks, most overdue first (paused ones last), with how many
/// all pages hold.
pub async fn board_clocks(pool: &Pool, q: &crate::store::BoardQuery) -> R<(Vec<crate::store::BoardRow>, i64)> {
    let rows = sqlx::query(concat!(
        "SELECT c.*, i.business_key AS case_key, i.version AS case_version, \
         (SELECT MAX(s.level) FROM signals s WHERE s.instance_id = c.instance_id \
          AND s.clock = c.clock AND s.light = 'red') AS level, \
         (SELECT MIN(t.queue) FROM tasks t WHERE t.instance_id = c.instance_id \
          AND t.state IN ('open', 'claimed', 'failed')) AS live_queue \
         FROM case_clocks c JOIN instances i ON i.id = c.instance_id ",
        board_where!(),
        "ORDER BY COALESCE(c.due_at, 9223372036854775807), c.instance_id, c.clock LIMIT $6 OFFSET $7"
    ))
    .bind(&q.org_units)
    .bind(&q.queue)
    .bind(&q.clock)
    .bind(&q.light)
    .bind(q.now)
    .bind(q.limit)
    .bind(q.offset)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(crate::store::BoardRow {
            clock: case_clock_row(r)?,
            business_key: r.try_get("case_key")?,
            version: r.try_get("case_version")?,
            level: r.try_get("level")?,
            queue: r.try_get("live_queue")?,
        })
    })
    .collect::<R<Vec<_>>>()?;
    let total: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM case_clocks c ",
        board_where!()
    ))
    .bind(&q.org_units)
    .bind(&q.queue)
    .bind(&q.clock)
    .bind(&q.light)
    .bind(q.now)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

fn case_clock_row(r: &DbRow) -> R<crate::store::CaseClockRow> {
    Ok(crate::store::CaseClockRow {
        instance_id: r.try_get("instance_id")?,
        clock: r.try_get("clock")?,
        process_key: r.try_get("process_key")?,
        org_unit: r.try_get("org_unit")?,
        state: r.try_get("state")?,
        started_at: r.try_get("started_at")?,
        due_at: r.try_get("due_at")?,
        warn_at: r.try_get("warn_at")?,
        stopped_at: r.try_get("stopped_at")?,
    })
}

/// Signals recorded in `[from, to)` (unix millis) of the organisation units of a JSON array
/// (`None`: all), counted per light and level.
pub async fn signal_counts(
    pool: &Pool,
    org_units: Option<&str>,
    from: i64,
    to: i64,
) -> R<Vec<crate::store::SignalCount>> {
    sqlx::query(concat!(
        "SELECT light, level, COUNT(*) AS n FROM signals WHERE at >= $2 AND at < $3 \
         AND ($1 IS NULL OR org_unit ",
        is_in!(json "$1"),
        ") GROUP BY light, level ORDER BY light, level"
    ))
    .bind(org_units)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(crate::store::SignalCount {
            light: r.try_get("light")?,
            level: r.try_get("level")?,
            count: r.try_get("n")?,
        })
    })
    .collect()
}

/// The signals of one case, in the order given.
pub async fn case_signals(pool: &Pool, instance: &str) -> R<Vec<crate::store::SignalRow>> {
    sqlx::query("SELECT * FROM signals WHERE instance_id = $1 ORDER BY at, id")
        .bind(instance)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| {
            Ok(crate::store::SignalRow {
                id: r.try_get("id")?,
                instance_id: r.try_get("instance_id")?,
                node: r.try_get("node")?,
                task_id: r.try_get("task_id")?,
                clock: r.try_get("clock")?,
                queue: r.try_get("queue")?,
                org_unit: r.try_get("org_unit")?,
                light: r.try_get("light")?,
                level: r.try_get("level")?,
                due_at: r.try_get("due_at")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

pub async fn documents(pool: &Pool, instance: &str) -> R<Vec<DocumentRow>> {
    sqlx::query("SELECT * FROM documents WHERE instance_id = $1 ORDER BY created_at, id")
        .bind(instance)
        .fetch_all(pool)
        .await?
        .iter()
        .map(document_row)
        .collect()
}

// ---- batch reads and writes (the unit of work of `staged.rs`) ----

/// `INSERT INTO <head> VALUES ($1, ..), (..) <tail>` for `rows` rows of `cols` columns. On
/// SQLite the placeholders are `?`: binding `$n` names costs a scan of all names per value
/// there (quadratic in the number of values).
fn values_sql(head: &str, cols: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            if POSITIONAL_PARAMS {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(r * cols + c + 1).to_string());
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// The SQL of [`lock_tasks_with_siblings`] (the driver's).
pub(crate) const LOCK_TASKS_WITH_SIBLINGS: &str = lock_tasks_with_siblings!();

/// The given tasks (ids as a JSON array) and every open, claimed or failed task of their
/// instances, locked in id order (one statement, so that concurrent batches lock in one order).
pub async fn lock_tasks_with_siblings(tx: &mut Tx, ids: &str) -> R<Vec<TaskRow>> {
    sqlx::query(LOCK_TASKS_WITH_SIBLINGS)
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(task_row)
        .collect()
}

/// The SQL of [`lock_live_tasks`].
pub(crate) const LOCK_LIVE_TASKS: &str = concat!(
    "SELECT * FROM tasks WHERE instance_id ",
    is_in!(json "$1"),
    " AND state IN ('open', 'claimed', 'failed') ORDER BY id",
    for_update!()
);

/// Open, claimed and failed tasks of the instances (ids as a JSON array), locked.
pub async fn lock_live_tasks(tx: &mut Tx, instances: &str) -> R<Vec<TaskRow>> {
    sqlx::query(LOCK_LIVE_TASKS)
        .bind(instances)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(task_row)
        .collect()
}

/// The SQL of [`pending_timers`].
pub(crate) const PENDING_TIMERS: &str = concat!(
    "SELECT * FROM timers WHERE instance_id ",
    is_in!(json "$1"),
    // `state || ''`: keeps the planner off the `timers_pending` index, which would walk
    // every pending timer of every instance.
    " AND state || '' = 'pending'"
);

/// Pending timers of the instances (ids as a JSON array), in no order (see `instance_timers`).
pub async fn pending_timers(tx: &mut Tx, instances: &str) -> R<Vec<TimerRow>> {
    sqlx::query(PENDING_TIMERS)
        .bind(instances)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(timer_row)
        .collect()
}

/// The SQL of [`instances_by_business_keys`] (the driver's).
pub(crate) const BY_BUSINESS_KEYS: &str = by_business_keys!();

/// The instances of (process, business key) pairs, given as two JSON arrays of the same
/// length (the i-th process with the i-th key). SQLite may also answer an instance of another
/// pair's process with this key; the caller matches the pairs.
pub async fn instances_by_business_keys(
    tx: &mut Tx,
    processes: &str,
    keys: &str,
) -> R<Vec<InstanceRow>> {
    sqlx::query(BY_BUSINESS_KEYS)
        .bind(processes)
        .bind(keys)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(instance_row)
        .collect()
}

/// The SQL of [`cancel_timers`].
pub(crate) const CANCEL_TIMERS: &str = concat!(
    // `state || ''`: keeps PostgreSQL's planner from combining all of `timers_pending` with
    // the primary key.
    "UPDATE timers SET state = 'cancelled' WHERE state || '' = 'pending' AND id ",
    is_in!(json "$1")
);

/// Cancels the pending timers among `ids` (a JSON array).
pub async fn cancel_timers(tx: &mut Tx, ids: &str) -> R<()> {
    sqlx::query(CANCEL_TIMERS)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
