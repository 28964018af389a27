// The inbox and report-run SQL, written once; included by `timers.rs` per driver (`DB`, `DbRow`).

use super::{CaseRow, InboxRow, ReportTaskRow, RunEnd, RunRow};
use sqlx::Row;

type Pool = sqlx::Pool<DB>;
type R<T> = Result<T, sqlx::Error>;

fn inbox_row(r: &DbRow) -> R<InboxRow> {
    Ok(InboxRow {
        id: r.try_get("id")?,
        recipient: r.try_get("recipient")?,
        instance_id: r.try_get("instance_id")?,
        node: r.try_get("node")?,
        task_id: r.try_get("task_id")?,
        clock: r.try_get("clock")?,
        level: r.try_get("level")?,
        message: r.try_get("message")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        acked_by: r.try_get("acked_by")?,
        acked_by_id: r.try_get("acked_by_id")?,
        acked_at: r.try_get("acked_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

fn run_row(r: &DbRow) -> R<RunRow> {
    Ok(RunRow {
        job: r.try_get("job")?,
        scheduled_at: r.try_get("scheduled_at")?,
        state: r.try_get("state")?,
        server: r.try_get("server")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        rows: r.try_get("rows")?,
        file: r.try_get("file")?,
        error: r.try_get("error")?,
    })
}


pub async fn insert_inbox(pool: &Pool, i: &InboxRow) -> R<bool> {
    let done = sqlx::query(
        "INSERT INTO inbox (id, recipient, instance_id, node, task_id, clock, level, message, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&i.id)
    .bind(&i.recipient)
    .bind(&i.instance_id)
    .bind(&i.node)
    .bind(&i.task_id)
    .bind(&i.clock)
    .bind(i.level)
    .bind(&i.message)
    .bind(&i.state)
    .bind(i.created_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Closes escalation items whose late task is finished.
pub async fn close_finished(pool: &Pool, now: i64) -> R<u64> {
    Ok(sqlx::query(
        "UPDATE inbox SET state = 'closed', closed_at = $1 \
         WHERE state IN ('open', 'acked') AND level IS NOT NULL AND task_id IN \
         (SELECT id FROM tasks WHERE state IN ('completed', 'cancelled'))",
    )
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn list_inbox(pool: &Pool, recipient: &str, state: Option<&str>, limit: i64) -> R<Vec<InboxRow>> {
    let rows = match state {
        Some(state) => {
            sqlx::query(
                "SELECT * FROM inbox WHERE recipient = $1 AND state = $2 ORDER BY created_at, id LIMIT $3",
            )
            .bind(recipient)
            .bind(state)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query("SELECT * FROM inbox WHERE recipient = $1 ORDER BY created_at, id LIMIT $2")
                .bind(recipient)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter().map(inbox_row).collect()
}

pub async fn inbox_item(pool: &Pool, id: &str) -> R<Option<InboxRow>> {
    sqlx::query("SELECT * FROM inbox WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(|r| inbox_row(&r))
        .transpose()
}

pub async fn ack_inbox(pool: &Pool, id: &str, actor: &str, actor_id: &str, now: i64) -> R<u64> {
    Ok(sqlx::query(
        "UPDATE inbox SET state = 'acked', acked_by = $2, acked_by_id = $3, acked_at = $4 \
         WHERE id = $1 AND state = 'open'",
    )
    .bind(id)
    .bind(actor)
    .bind(actor_id)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn inbox_of(pool: &Pool, instance: &str) -> R<Vec<InboxRow>> {
    sqlx::query("SELECT * FROM inbox WHERE instance_id = $1 ORDER BY created_at, id")
        .bind(instance)
        .fetch_all(pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
}

/// Open clock-escalation items (closed when their clock stops).
pub async fn open_clock_items(pool: &Pool) -> R<Vec<InboxRow>> {
    sqlx::query("SELECT * FROM inbox WHERE clock IS NOT NULL AND state IN ('open', 'acked')")
        .fetch_all(pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
}

pub async fn close_item(pool: &Pool, id: &str, now: i64) -> R<u64> {
    Ok(sqlx::query(
        "UPDATE inbox SET state = 'closed', closed_at = $2 WHERE id = $1 AND state IN ('open', 'acked')",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn timer_payload(pool: &Pool, timer: &str) -> R<Option<String>> {
    sqlx::query("SELECT payload FROM timers WHERE id = $1")
        .bind(timer)
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get("payload"))
        .transpose()
}

/// Status and run state (JSON) of an instance.
pub async fn instance_state(pool: &Pool, id: &str) -> R<Option<(String, String)>> {
    match sqlx::query("SELECT status, state FROM instances WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
    {
        Some(r) => Ok(Some((r.try_get("status")?, r.try_get("state")?))),
        None => Ok(None),
    }
}

/// Escalation items (level >= 0) not yet closed.
pub async fn open_escalations(pool: &Pool) -> R<Vec<InboxRow>> {
    sqlx::query("SELECT * FROM inbox WHERE level IS NOT NULL AND state IN ('open', 'acked') ORDER BY created_at, id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(inbox_row)
        .collect()
}

pub async fn task_queue(pool: &Pool, task: &str) -> R<Option<String>> {
    sqlx::query("SELECT queue FROM tasks WHERE id = $1")
        .bind(task)
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get("queue"))
        .transpose()
}

/// Inserts the run row; `true` when this call created it (this server runs the job).
pub async fn claim_run(pool: &Pool, job: &str, scheduled: i64, state: &str, server: &str, now: i64) -> R<bool> {
    let done = sqlx::query(
        "INSERT INTO report_runs (job, scheduled_at, state, server, started_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (job, scheduled_at) DO NOTHING",
    )
    .bind(job)
    .bind(scheduled)
    .bind(state)
    .bind(server)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Takes over a run left `running` by a server that stopped (started before `stale_before`).
pub async fn take_over_run(pool: &Pool, job: &str, scheduled: i64, server: &str, now: i64, stale_before: i64) -> R<bool> {
    let done = sqlx::query(
        "UPDATE report_runs SET server = $3, started_at = $4 \
         WHERE job = $1 AND scheduled_at = $2 AND state = 'running' AND started_at < $5",
    )
    .bind(job)
    .bind(scheduled)
    .bind(server)
    .bind(now)
    .bind(stale_before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn has_runs(pool: &Pool, job: &str) -> R<bool> {
    Ok(sqlx::query("SELECT 1 AS one FROM report_runs WHERE job = $1 LIMIT 1")
        .bind(job)
        .fetch_optional(pool)
        .await?
        .is_some())
}

pub async fn finish_run(pool: &Pool, job: &str, scheduled: i64, e: &RunEnd<'_>) -> R<()> {
    sqlx::query(
        "UPDATE report_runs SET state = $3, rows = $4, file = $5, csv = $6, error = $7, finished_at = $8 \
         WHERE job = $1 AND scheduled_at = $2",
    )
    .bind(job)
    .bind(scheduled)
    .bind(e.state)
    .bind(e.rows)
    .bind(e.file)
    .bind(e.csv)
    .bind(e.error)
    .bind(e.now)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn list_runs(pool: &Pool, job: Option<&str>, limit: i64) -> R<Vec<RunRow>> {
    let rows = match job {
        Some(job) => {
            sqlx::query(
                "SELECT job, scheduled_at, state, server, started_at, finished_at, rows, file, error \
                 FROM report_runs WHERE job = $1 AND state <> 'baseline' ORDER BY scheduled_at DESC LIMIT $2",
            )
            .bind(job)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT job, scheduled_at, state, server, started_at, finished_at, rows, file, error \
                 FROM report_runs WHERE state <> 'baseline' ORDER BY scheduled_at DESC, job LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(run_row).collect()
}

pub async fn run(pool: &Pool, job: &str, scheduled: i64) -> R<Option<(RunRow, Option<String>)>> {
    match sqlx::query("SELECT * FROM report_runs WHERE job = $1 AND scheduled_at = $2")
        .bind(job)
        .bind(scheduled)
        .fetch_optional(pool)
        .await?
    {
        Some(r) => Ok(Some((run_row(&r)?, r.try_get("csv")?))),
        None => Ok(None),
    }
}

/// Instances still running or ended at or after `since`.
pub async fn report_cases(pool: &Pool, since: i64) -> R<Vec<CaseRow>> {
    sqlx::query(
        "SELECT id, process_key, business_key, status, result, vars, state, created_at, ended_at FROM instances \
         WHERE ended_at IS NULL OR ended_at >= $1",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(CaseRow {
            id: r.try_get("id")?,
            process_key: r.try_get("process_key")?,
            business_key: r.try_get("business_key")?,
            status: r.try_get("status")?,
            result: r.try_get("result")?,
            vars: r.try_get("vars")?,
            state: r.try_get("state")?,
            created_at: r.try_get("created_at")?,
            ended_at: r.try_get("ended_at")?,
        })
    })
    .collect()
}

/// Tasks still open or completed at or after `since`.
pub async fn report_tasks(pool: &Pool, since: i64) -> R<Vec<ReportTaskRow>> {
    sqlx::query(
        "SELECT id, instance_id, node, label, queue, org_unit, state, outcome, created_at, completed_at, due_at \
         FROM tasks WHERE completed_at IS NULL OR completed_at >= $1",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(ReportTaskRow {
            id: r.try_get("id")?,
            instance_id: r.try_get("instance_id")?,
            node: r.try_get("node")?,
            label: r.try_get("label")?,
            queue: r.try_get("queue")?,
            org_unit: r.try_get("org_unit")?,
            state: r.try_get("state")?,
            outcome: r.try_get("outcome")?,
            created_at: r.try_get("created_at")?,
            completed_at: r.try_get("completed_at")?,
            due_at: r.try_get("due_at")?,
        })
    })
    .collect()
}

/// Benchmark set-up: `count` pending `wait` timers of `instance` that no token waits for, due
/// from `due_from` every `step` millis (ids `bench-<prefix>-<n>`).
pub async fn bench_timers(
    pool: &Pool,
    prefix: &str,
    instance: &str,
    count: i64,
    due_from: i64,
    step: i64,
    now: i64,
) -> R<u64> {
    Ok(sqlx::query(
        "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $1) \
         INSERT INTO timers (id, instance_id, kind, node, task_id, due_at, payload, state, created_at) \
         SELECT 'bench-' || $2 || '-' || n, $3, 'wait', 'bench', NULL, $4 + n * $5, '{}', 'pending', $6 FROM seq",
    )
    .bind(count)
    .bind(prefix)
    .bind(instance)
    .bind(due_from)
    .bind(step)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Pending timers whose due time was computed without calendar data for some year.
pub async fn provisional_timers(pool: &Pool) -> R<Vec<(String, String, String, Option<String>, String, i64, String)>> {
    sqlx::query(
        "SELECT id, instance_id, kind, task_id, node, due_at, payload FROM timers \
         WHERE state = 'pending' AND payload LIKE '%\"provisional\":true%' ORDER BY due_at, id",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get("id")?,
            r.try_get("instance_id")?,
            r.try_get("kind")?,
            r.try_get("task_id")?,
            r.try_get("node")?,
            r.try_get("due_at")?,
            r.try_get("payload")?,
        ))
    })
    .collect()
}

/// The SQL of [`move_timer`] (also on SQLite's writer, `sqlite_write`).
pub(crate) const MOVE_TIMER: &str =
    "UPDATE timers SET due_at = $2, payload = $3 WHERE id = $1 AND state = 'pending'";

/// Moves a pending timer (and, for a deadline at due, its task's due time).
pub async fn move_timer(
    tx: &mut <DB as sqlx::Database>::Connection,
    id: &str,
    due_at: i64,
    payload: &str,
    task_due: Option<(&str, i64)>,
) -> R<bool> {
    let moved = sqlx::query(MOVE_TIMER)
        .bind(id)
        .bind(due_at)
        .bind(payload)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if moved && let Some((task, due)) = task_due {
        sqlx::query(SET_TASK_DUE)
            .bind(task)
            .bind(due)
            .execute(&mut *tx)
            .await?;
    }
    Ok(moved)
}

/// The SQL of [`settle_provisional`].
pub(crate) const SETTLE_PROVISIONAL: &str = "UPDATE instances SET provisional = 0 WHERE id = $1 \
    AND NOT EXISTS (SELECT 1 FROM timers WHERE instance_id = $1 AND state = 'pending' \
    AND payload LIKE '%\"provisional\":true%')";

/// Clears an instance's provisional flag when none of its pending timers is provisional.
pub async fn settle_provisional(tx: &mut <DB as sqlx::Database>::Connection, instance: &str) -> R<()> {
    sqlx::query(SETTLE_PROVISIONAL)
    .bind(instance)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sets an open task's due time (`None`: none while its deadline is suspended).
/// The SQL of [`set_task_due`].
pub(crate) const SET_TASK_DUE: &str = "UPDATE tasks SET due_at = $2 WHERE id = $1";

pub async fn set_task_due(tx: &mut <DB as sqlx::Database>::Connection, task: &str, due_at: Option<i64>) -> R<()> {
    sqlx::query(SET_TASK_DUE)
        .bind(task)
        .bind(due_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Running instances flagged provisional.
pub async fn provisional_instances(pool: &Pool) -> R<Vec<String>> {
    sqlx::query("SELECT id FROM instances WHERE provisional = 1 AND status IN ('running', 'incident') ORDER BY id")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}
