//! What operations read from the database: the counts `GET /metrics` shows and the checks of
//! `GET /api/v1/ready`. The SQL is the same on both databases.

use super::{Store, StorePool};
use crate::error::EngineError;
use crate::metrics::{PoolGauges, StoreGauges};
use sqlx::Row;

macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            StorePool::Sqlite($p) => $body,
            StorePool::Postgres($p) => $body,
        }
    };
}

const OPEN_TASKS: &str =
    "SELECT queue, COUNT(*) AS n FROM tasks WHERE state = 'open' GROUP BY queue ORDER BY queue";
const COUNTS: &str = "SELECT \
     (SELECT COUNT(*) FROM timers WHERE state = 'pending') AS timers, \
     (SELECT COUNT(*) FROM outbox WHERE state = 'pending') AS pending, \
     (SELECT COUNT(*) FROM outbox WHERE state = 'dead') AS dead";
const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";

impl Store {
    /// Open tasks per queue, pending timers and the outbox's pending and failed messages.
    pub async fn gauges(&self) -> Result<StoreGauges, EngineError> {
        on_pool!(self.pool(), |p| {
            let open_tasks = sqlx::query(OPEN_TASKS)
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("queue")?, r.try_get("n")?)))
                .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
            let row = sqlx::query(COUNTS).fetch_one(p).await?;
            Ok(StoreGauges {
                open_tasks,
                timers_pending: row.try_get("timers")?,
                outbox_pending: row.try_get("pending")?,
                outbox_failed: row.try_get("dead")?,
            })
        })
    }

    /// The sqlx pool's connections (SQLite's kept writer and readers are outside it).
    pub fn pool_gauges(&self) -> PoolGauges {
        on_pool!(self.pool(), |p| PoolGauges {
            size: p.size(),
            idle: p.num_idle(),
            max: p.options().get_max_connections(),
        })
    }

    /// The migrations this build knows that the database has not applied (successfully), by
    /// version; empty when its schema is current.
    pub async fn migrations_missing(&self) -> Result<Vec<i64>, EngineError> {
        let (known, applied): (Vec<i64>, Vec<i64>) = match self.pool() {
            StorePool::Sqlite(p) => (
                sqlx::migrate!("../migrations/sqlite")
                    .iter()
                    .map(|m| m.version)
                    .collect(),
                sqlx::query_scalar(APPLIED).fetch_all(p).await?,
            ),
            StorePool::Postgres(p) => (
                sqlx::migrate!("../migrations/postgres")
                    .iter()
                    .map(|m| m.version)
                    .collect(),
                sqlx::query_scalar(APPLIED).fetch_all(p).await?,
            ),
        };
        Ok(known.into_iter().filter(|v| !applied.contains(v)).collect())
    }
}
