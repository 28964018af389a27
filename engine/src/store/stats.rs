//! What the statistics read (`crate::statistics`): the cases of a process registered in a
//! period with the variables they group by, and the tasks their events and stages look at.
//! The SQL is written once in `stats_sql.rs` and compiled per driver; the differences are
//! how a variable is read from the stored JSON.
//!
//! Both reads start from the cases registered in the period (`instances_registered`,
//! migration 1050), so a quarter costs its own cases, not the whole table. What the tables
//! need of a case's tasks (a task reached, its departments) is asked for in the same
//! statement, a row per case, so that the answer is as many rows as cases.

use crate::store::StorePool;

/// What a read of the statistics asks for: the cases of `process` registered in `[from, to)`
/// (unix millis), the variables `vars`, whether each has a task of each (node, outcome) of
/// `conditions`, and the queues of its tasks that begin with `queue_prefix`.
#[derive(Debug, Clone, Copy)]
pub struct StatQuery<'a> {
    pub process: &'a str,
    pub from: i64,
    pub to: i64,
    pub vars: &'a [String],
    pub conditions: &'a [(String, Option<String>)],
    pub queue_prefix: Option<&'a str>,
}

/// A case of the period: its columns and the asked variables as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct StatCaseRow {
    pub id: String,
    pub business_key: Option<String>,
    pub status: String,
    pub result: Option<String>,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    /// In the order asked; `None` when unset.
    pub vars: Vec<Option<String>>,
    /// Whether it has a task of each condition, in the order asked.
    pub reached: Vec<bool>,
    /// The queues of its tasks with the prefix asked, comma-separated, each once.
    pub queues: Option<String>,
}

/// A task of a case of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct StatTaskRow {
    pub instance_id: String,
    pub node: String,
    pub outcome: Option<String>,
    pub completed_at: Option<i64>,
}

pub mod sqlite {
    type DB = sqlx::Sqlite;
    /// SQLite's JSON functions read the stored text as it is.
    const VARS_JSON: &str = "vars";
    /// `->` gives a member as JSON text (SQLite 3.38).
    const VAR: [&str; 2] = ["(i.j -> ", ")"];
    const FENCE: &str = "";
    /// The node is one of the JSON array `$4`'s strings.
    const IN_NODES: &str = "IN (SELECT value FROM json_each($4))";
    /// Each queue once, comma-separated (keys hold no comma: `dsl::check::config::is_key`).
    const QUEUES: &str = "group_concat(DISTINCT t.queue)";
    const PLANNER: &str = "";
    /// A variable's JSON path.
    fn var_key(name: &str) -> String {
        format!("$.\"{name}\"")
    }
    include!("stats_sql.rs");
}

pub mod postgres {
    type DB = sqlx::Postgres;
    /// Parsed once per row: the subquery is fenced (`OFFSET 0`), so the planner does not
    /// inline it and parse the text again for each variable.
    const VARS_JSON: &str = "CAST(vars AS jsonb)";
    const VAR: [&str; 2] = ["CAST(i.j -> ", " AS text)"];
    const FENCE: &str = " OFFSET 0";
    const IN_NODES: &str = "= ANY(ARRAY(SELECT jsonb_array_elements_text(CAST($4 AS jsonb))))";
    const QUEUES: &str = "string_agg(DISTINCT t.queue, ',')";
    /// See `store::cases`: a period's cases are a range of an index, their tasks a join; the
    /// planner may pick either way, and no JIT for a statement planned once.
    const PLANNER: &str = "SET LOCAL enable_seqscan = on; SET LOCAL jit = off";
    fn var_key(name: &str) -> String {
        name.to_string()
    }
    include!("stats_sql.rs");
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

pub async fn cases(pool: &StorePool, q: &StatQuery<'_>) -> R<Vec<StatCaseRow>> {
    on!(pool, cases(q))
}

pub async fn tasks(pool: &StorePool, q: &StatQuery<'_>, nodes: &[String]) -> R<Vec<StatTaskRow>> {
    on!(pool, tasks(q, nodes))
}
