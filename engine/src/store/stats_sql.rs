// The SQL of the statistics, written once; included by `stats.rs` per driver (`DB`,
// `VARS_JSON`, `VAR`, `FENCE`, `IN_NODES`, `PLANNER`, `var_key`).

use super::{StatCaseRow, StatTaskRow};
use sqlx::Row;

type Pool = sqlx::Pool<DB>;
type R<T> = Result<T, sqlx::Error>;

/// The cases of `process` registered in `[from, to)`, with the values of `vars` as JSON text
/// (`v0`, `v1`, …; NULL when unset). The variables are read from each row's JSON once.
pub async fn cases(
    pool: &Pool,
    process: &str,
    from: i64,
    to: i64,
    vars: &[String],
) -> R<Vec<StatCaseRow>> {
    let columns: String = (0..vars.len())
        .map(|k| format!(", {}${}{} AS v{k}", VAR[0], k + 4, VAR[1]))
        .collect();
    let sql = format!(
        "SELECT i.id, i.business_key, i.status, i.result, i.created_at, i.ended_at{columns} \
         FROM (SELECT id, business_key, status, result, created_at, ended_at, {VARS_JSON} AS j \
         FROM instances WHERE process_key = $1 AND created_at >= $2 AND created_at < $3{FENCE}) i"
    );
    let mut tx = pool.begin().await?;
    if !PLANNER.is_empty() {
        sqlx::raw_sql(PLANNER).execute(&mut *tx).await?;
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(process)
        .bind(from)
        .bind(to);
    for v in vars {
        query = query.bind(var_key(v));
    }
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(StatCaseRow {
                id: r.try_get("id")?,
                business_key: r.try_get("business_key")?,
                status: r.try_get("status")?,
                result: r.try_get("result")?,
                created_at: r.try_get("created_at")?,
                ended_at: r.try_get("ended_at")?,
                vars: (0..vars.len())
                    .map(|k| r.try_get::<Option<String>, _>(format!("v{k}").as_str()))
                    .collect::<R<Vec<_>>>()?,
            })
        })
        .collect()
}

/// The tasks of those cases at one of `nodes` or in a queue starting with `queue_prefix`.
pub async fn tasks(
    pool: &Pool,
    process: &str,
    from: i64,
    to: i64,
    nodes: &[String],
    queue_prefix: Option<&str>,
) -> R<Vec<StatTaskRow>> {
    // A prefix no queue has when there is none: `:` starts no role.
    let prefix = format!(
        "{}%",
        crate::store::cases::like_literal(queue_prefix.unwrap_or(":"))
    );
    let sql = format!(
        "SELECT t.instance_id, t.node, t.queue, t.outcome, t.completed_at \
         FROM instances i JOIN tasks t ON t.instance_id = i.id \
         WHERE i.process_key = $1 AND i.created_at >= $2 AND i.created_at < $3 \
         AND (t.node {IN_NODES} OR t.queue LIKE $5 ESCAPE '\\')"
    );
    let mut tx = pool.begin().await?;
    if !PLANNER.is_empty() {
        sqlx::raw_sql(PLANNER).execute(&mut *tx).await?;
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(process)
        .bind(from)
        .bind(to)
        .bind(crate::store::json_list(nodes))
        .bind(prefix)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(StatTaskRow {
                instance_id: r.try_get("instance_id")?,
                node: r.try_get("node")?,
                queue: r.try_get("queue")?,
                outcome: r.try_get("outcome")?,
                completed_at: r.try_get("completed_at")?,
            })
        })
        .collect()
}
