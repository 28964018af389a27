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

/// `column`, then `is_in!(…)`: the column is one of a JSON array's strings, or one of a
/// subquery's values. `= ANY(ARRAY(…))`, not `IN (…)`: the list is computed once and the
/// column's index is walked for it, whereas `IN` with a set-returning function (estimated at
/// 100 rows) let the planner hash-join a sequential scan of the whole table, a cost that grew
/// with the table (19 ms per batch at 18,000 tasks).
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

/// Tells every server listening on `channel` that a timer due at `due_at` (unix millis) was
/// created; delivered when the transaction commits (not at all if it rolls back).
pub async fn notify_timers(
    tx: &mut sqlx::Transaction<'static, DB>,
    channel: &str,
    due_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(due_at.to_string())
        .execute(&mut **tx)
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
