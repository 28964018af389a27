//! The SQLite store: one file, WAL, `synchronous=NORMAL`, created and migrated on first open.
//! Writers serialise on `BEGIN IMMEDIATE`; row locks are not needed.

use crate::error::EngineError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

type DB = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;

macro_rules! for_update {
    () => {
        ""
    };
}
macro_rules! skip_locked {
    () => {
        ""
    };
}
macro_rules! json_in {
    ($n:literal) => {
        concat!("(SELECT value FROM json_each(", $n, "))")
    };
}

/// Multi-row statements use `?` (SQLite) or `$n` (PostgreSQL) placeholders.
const POSITIONAL_PARAMS: bool = true;

include!("common.rs");

/// Opens (creating if missing) and migrates the database at `url` (`sqlite:path`).
pub async fn open(url: &str) -> Result<sqlx::SqlitePool, EngineError> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database", format!("{url}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(false);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let pool = SqlitePoolOptions::new()
        // An in-memory database exists once per connection: keep exactly one.
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if in_memory {
            None
        } else {
            Some(Duration::from_secs(3600))
        })
        .connect_with(opts)
        .await?;
    let migrator = sqlx::migrate!("../migrations/sqlite");
    crate::store::migrate(&migrator, migrator.run(&pool).await)?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn multi_row_chunks_come_in_few_sizes_and_keep_every_row() {
        for n in 0..300usize {
            let rows: Vec<usize> = (0..n).collect();
            let parts: Vec<&[usize]> = chunks(&rows).collect();
            assert_eq!(parts.concat(), rows, "every row once, in order ({n})");
            assert!(
                parts
                    .iter()
                    .all(|p| p.len().is_power_of_two() && p.len() <= 64),
                "{n}: {:?}",
                parts.iter().map(|p| p.len()).collect::<Vec<_>>()
            );
        }
    }
}
