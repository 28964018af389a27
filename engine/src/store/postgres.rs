//! The PostgreSQL store: row locks (`FOR UPDATE`) serialise events of one instance;
//! `SKIP LOCKED` lets several servers claim tasks, timers and deliveries without a coordinator.

use crate::error::EngineError;
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
macro_rules! json_in {
    ($n:literal) => {
        concat!(
            "(SELECT jsonb_array_elements_text(CAST(",
            $n,
            " AS jsonb)))"
        )
    };
}

/// Multi-row statements use `?` (SQLite) or `$n` (PostgreSQL) placeholders.
const POSITIONAL_PARAMS: bool = false;

include!("common.rs");

/// Connects to `url` and migrates. `schema` (tests) sets the connection's `search_path`.
pub async fn open(url: &str, schema: Option<&str>) -> Result<sqlx::PgPool, EngineError> {
    let mut opts = PgConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database", format!("{url}: {e}")))?;
    if let Some(schema) = schema {
        opts = opts.options([("search_path", schema)]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(opts)
        .await?;
    let migrator = sqlx::migrate!("../migrations/postgres");
    crate::store::migrate(&migrator, migrator.run(&pool).await)?;
    Ok(pool)
}
