// The SQL of the statistics, written once; included by `stats.rs` per driver (`DB`,
// `VARS_JSON`, `VAR`, `FENCE`, `IN_NODES`, `QUEUES`, `PLANNER`, `var_key`).

use super::{StatCaseRow, StatQuery, StatTaskRow};
use sqlx::Row;

type Pool = sqlx::Pool<DB>;
type R<T> = Result<T, sqlx::Error>;

/// A statement's text and its values, numbered as they are added.
#[derive(Default)]
struct Statement {
    sql: String,
    texts: Vec<String>,
}

impl Statement {
    /// The placeholder of `text`, a value after the first three (process, from, to).
    fn text(&mut self, text: String) -> String {
        self.texts.push(text);
        format!("${}", self.texts.len() + 3)
    }
}

/// The cases of the period, each with the values of the variables as JSON text (`v0`, …;
/// NULL when unset), whether it has a task of each condition (`c0`, …: 1 or 0) and the queues
/// of its tasks with the department prefix (`queues`, comma-separated). The variables are
/// read from each row's JSON once; the tasks through `tasks_instance`.
pub async fn cases(pool: &Pool, q: &StatQuery<'_>) -> R<Vec<StatCaseRow>> {
    let mut st = Statement::default();
    let mut columns = String::new();
    for (k, v) in q.vars.iter().enumerate() {
        let p = st.text(var_key(v));
        columns.push_str(&format!(", {}{p}{} AS v{k}", VAR[0], VAR[1]));
    }
    for (k, (node, outcome)) in q.conditions.iter().enumerate() {
        let node = st.text(node.clone());
        let outcome = match outcome {
            Some(o) => format!(" AND t.outcome = {}", st.text(o.clone())),
            None => String::new(),
        };
        columns.push_str(&format!(
            ", CAST(CASE WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.instance_id = i.id \
             AND t.node = {node}{outcome}) THEN 1 ELSE 0 END AS BIGINT) AS c{k}"
        ));
    }
    if let Some(prefix) = q.queue_prefix {
        let like = st.text(format!(
            "{}%",
            crate::store::cases::like_literal(prefix)
        ));
        columns.push_str(&format!(
            ", (SELECT {QUEUES} FROM tasks t WHERE t.instance_id = i.id \
             AND t.queue LIKE {like} ESCAPE '\\') AS queues"
        ));
    }
    st.sql = format!(
        "SELECT i.id, i.business_key, i.status, i.result, i.created_at, i.ended_at{columns} \
         FROM (SELECT id, business_key, status, result, created_at, ended_at, {VARS_JSON} AS j \
         FROM instances WHERE process_key = $1 AND created_at >= $2 AND created_at < $3{FENCE}) i"
    );
    let mut tx = pool.begin().await?;
    if !PLANNER.is_empty() {
        sqlx::raw_sql(PLANNER).execute(&mut *tx).await?;
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(st.sql.as_str()))
        .bind(q.process)
        .bind(q.from)
        .bind(q.to);
    for t in &st.texts {
        query = query.bind(t.as_str());
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
                vars: (0..q.vars.len())
                    .map(|k| r.try_get::<Option<String>, _>(format!("v{k}").as_str()))
                    .collect::<R<Vec<_>>>()?,
                reached: (0..q.conditions.len())
                    .map(|k| Ok(r.try_get::<i64, _>(format!("c{k}").as_str())? == 1))
                    .collect::<R<Vec<_>>>()?,
                queues: match q.queue_prefix {
                    Some(_) => r.try_get("queues")?,
                    None => None,
                },
            })
        })
        .collect()
}

/// The tasks of the period's cases at one of `nodes` (the register's stages).
pub async fn tasks(pool: &Pool, q: &StatQuery<'_>, nodes: &[String]) -> R<Vec<StatTaskRow>> {
    let sql = format!(
        "SELECT t.instance_id, t.node, t.outcome, t.completed_at \
         FROM instances i JOIN tasks t ON t.instance_id = i.id \
         WHERE i.process_key = $1 AND i.created_at >= $2 AND i.created_at < $3 \
         AND t.node {IN_NODES}"
    );
    let mut tx = pool.begin().await?;
    if !PLANNER.is_empty() {
        sqlx::raw_sql(PLANNER).execute(&mut *tx).await?;
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(q.process)
        .bind(q.from)
        .bind(q.to)
        .bind(crate::store::json_list(nodes))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    rows.iter()
        .map(|r| {
            Ok(StatTaskRow {
                instance_id: r.try_get("instance_id")?,
                node: r.try_get("node")?,
                outcome: r.try_get("outcome")?,
                completed_at: r.try_get("completed_at")?,
            })
        })
        .collect()
}
