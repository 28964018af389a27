//! Finding cases (`case_search`, `instances`, `tasks`), the settings every server shares, and
//! the trail of personal data read unmasked (`personal_data_reads`). The SQL is written once
//! in `cases_sql.rs` and compiled per driver, like `common.rs`; the few differences (a JSON
//! list's members, the role part of a keyed queue, a text's prefix, the planner's settings)
//! are the driver's constants.
//!
//! The search's statement is put together from the filters given (each a fixed text with its
//! own placeholders), so that each shape has a plan of its own: no `$n IS NULL OR …` that
//! keeps a planner from an index.

use crate::search::CaseScope;
use crate::store::{InstanceRow, StorePool};

/// A search of cases as the store sees it.
#[derive(Debug, Clone)]
pub struct CaseQuery {
    pub process: Option<String>,
    pub status: Option<String>,
    /// Registered (started) at or after, unix millis.
    pub from: Option<i64>,
    /// Registered before, unix millis.
    pub to: Option<i64>,
    /// The text searched, if any.
    pub text: Option<CaseText>,
    /// Cases with a task in this organisation unit.
    pub unit: Option<String>,
    pub scope: CaseScope,
    pub limit: i64,
    pub offset: i64,
}

/// One text searched three ways: a business key it begins, a name it is part of, an ID
/// number it is (by hash).
#[derive(Debug, Clone)]
pub struct CaseText {
    /// A business key's beginning, as typed.
    pub key: String,
    /// A name's part, as names are stored (`search::name_text`).
    pub name: String,
    /// The keyed hash of the text as an ID number.
    pub id_hash: String,
}

/// A recorded read of a case's personal data, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalDataReadRow {
    pub id: String,
    pub at: i64,
    pub instance_id: String,
    /// `token` or `user`.
    pub principal_kind: String,
    /// The token's id, or the user's.
    pub principal_id: String,
    /// The token's name, or the user's.
    pub principal: String,
    pub address: Option<String>,
}

/// The name of the settings row holding the search key made by the first server.
pub(crate) const SEARCH_KEY: &str = "search_key";
/// The name of the settings row holding the id of the key the search table was filled with.
pub(crate) const SEARCH_INDEXED: &str = "search_indexed";

/// `LIKE` pattern matching `text` literally (`\` escapes).
pub(crate) fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub mod sqlite {
    type DB = sqlx::Sqlite;
    /// `<column> IN_JSON[0] <param> IN_JSON[1]`: the column is one of a JSON array's strings.
    const IN_JSON: [&str; 2] = ["IN (SELECT value FROM json_each(", "))"];
    /// The role a task's queue belongs to: `office` for `office:east`.
    const QUEUE_ROLE: &str = "CASE WHEN instr(t.queue, ':') > 0 \
        THEN substr(t.queue, 1, instr(t.queue, ':') - 1) ELSE t.queue END";
    /// SQLite compares texts byte by byte (code point order in UTF-8): a range of the
    /// `instances_business_key` index is exactly the keys with a prefix.
    const PREFIX_CHECK: bool = false;
    /// Nothing to set: SQLite plans each statement with what it knows.
    const PLANNER: &str = "";
    include!("cases_sql.rs");
}

pub mod postgres {
    type DB = sqlx::Postgres;
    /// `= ANY(ARRAY(…))`: see `store::postgres`'s `is_in!`.
    const IN_JSON: [&str; 2] = [
        "= ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(",
        " AS jsonb))))",
    ];
    const QUEUE_ROLE: &str = "split_part(t.queue, ':', 1)";
    /// The range follows the database's collation, which need not be code point order:
    /// `starts_with` keeps only the keys with the prefix.
    const PREFIX_CHECK: bool = true;
    /// The engine's connections plan with `enable_seqscan = off` (`store::postgres::open`), as
    /// its statements are keyed look-ups. A search is not: part of a name is looked for in
    /// every row of the search table, and PostgreSQL indexes only live tasks by instance, so
    /// the tasks a token's scope needs are read in one pass. Planned as if sequential scans
    /// cost a thousand million, such a query took 1.6 s instead of 0.2 s on 100,000 cases,
    /// 0.6 s of it compiling the query (JIT, which that cost sets off).
    const PLANNER: &str = "SET LOCAL enable_seqscan = on; SET LOCAL jit = off";
    include!("cases_sql.rs");
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

pub async fn search_cases(pool: &StorePool, q: &CaseQuery) -> R<(Vec<InstanceRow>, i64)> {
    on!(pool, search_cases(q))
}
pub async fn setting_or_insert(pool: &StorePool, name: &str, value: &str) -> R<String> {
    on!(pool, setting_or_insert(name, value))
}
pub async fn setting(pool: &StorePool, name: &str) -> R<Option<String>> {
    on!(pool, setting(name))
}
pub async fn set_setting(pool: &StorePool, name: &str, value: &str) -> R<()> {
    on!(pool, set_setting(name, value))
}
pub async fn record_personal_data_read(pool: &StorePool, r: &PersonalDataReadRow) -> R<()> {
    on!(pool, record_personal_data_read(r))
}
pub async fn personal_data_reads(
    pool: &StorePool,
    instance: Option<&str>,
    limit: i64,
    offset: i64,
) -> R<(Vec<PersonalDataReadRow>, i64)> {
    on!(pool, personal_data_reads(instance, limit, offset))
}
pub async fn search_rows(pool: &StorePool, instance: &str) -> R<Vec<crate::store::SearchRow>> {
    on!(pool, search_rows(instance))
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(super::like_literal("50%_a\\b"), "50\\%\\_a\\\\b");
        assert_eq!(super::like_literal("张三"), "张三");
    }
}
