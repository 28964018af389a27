//! The engine's handle on its database: the pool, and what one database needs that the other
//! does not. SQLite has one writer (a gate its writers queue on, the one writer connection, the
//! instances the committer carries between batches), kept read connections and a WAL
//! checkpointer, in a file; PostgreSQL has the channel new timers are announced on. The engine
//! asks for these through [`Store`]; nothing outside `store` matches on the database kind.

use super::StorePool;
use super::checkpoint::Checkpoints;
use super::sqlite_readers::Readers;
use super::sqlite_tx::{SqliteTx, Writer};
use super::staged::Carry;
use super::{Held, Tx};
use crate::commit::{Committer, POSTGRES_COMMITTERS, Placement};
use crate::error::{EngineError, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The database an engine works on.
pub struct Store {
    pool: StorePool,
    /// SQLite: one writer at a time, and a writer that finds the lock taken sleeps in SQLite's
    /// busy handler (1 ms, then longer). This process's writers queue here instead.
    write_gate: Option<tokio::sync::Mutex<()>>,
    /// SQLite: the one connection write transactions run on (see [`Store::begin_write`]).
    writer: Option<Arc<Writer>>,
    /// SQLite in a file: read connections kept for short reads on the caller's thread.
    readers: Option<Arc<Readers>>,
    /// SQLite in a file: WAL checkpoints, asked for by the committer (`store::checkpoint`).
    checkpoints: Option<Arc<Checkpoints>>,
    /// Write transactions begun so far (see `store::staged::Carry`).
    write_epoch: AtomicU64,
    /// SQLite in a file: the instances the committer's last batches left (`Carry`), between
    /// its batches; taken by the batch that runs.
    carry: Mutex<Option<Carry>>,
    /// Instances batches took from the carry instead of reading them (for tests).
    carried: AtomicU64,
    /// PostgreSQL: the channel new timers are announced on (servers sharing the schema).
    timer_channel: Option<String>,
}

impl Store {
    /// Opens (SQLite: creates) and migrates the database at `url`; `pg_schema` (PostgreSQL
    /// only) is the schema to work in, created if missing.
    pub(crate) async fn open(url: &str, pg_schema: Option<&str>) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let (pool, database) = super::sqlite::open_database(url).await?;
            // In a file: short reads on kept connections, and its WAL is checkpointed beside
            // the committer.
            let file = database.is_file();
            Ok(Store {
                pool: StorePool::Sqlite(pool),
                write_gate: Some(tokio::sync::Mutex::new(())),
                writer: Some(Arc::new(Writer::new(database.clone()))),
                readers: file.then(|| Arc::new(Readers::new(database))),
                checkpoints: file.then(|| Arc::new(Checkpoints::default())),
                write_epoch: AtomicU64::new(0),
                carry: Mutex::new(None),
                carried: AtomicU64::new(0),
                timer_channel: None,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if let Some(schema) = pg_schema {
                if !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(EngineError::invalid(
                        "schema",
                        "use letters, digits and underscores only",
                    ));
                }
                let admin = sqlx::PgPool::connect(url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}"
                )))
                .execute(&admin)
                .await?;
                admin.close().await;
            }
            let pool = super::postgres::open(url, pg_schema).await?;
            let channel = super::postgres::timer_channel(&pool).await?;
            Ok(Store {
                pool: StorePool::Postgres(pool),
                write_gate: None,
                writer: None,
                readers: None,
                checkpoints: None,
                write_epoch: AtomicU64::new(0),
                carry: Mutex::new(None),
                carried: AtomicU64::new(0),
                timer_channel: Some(channel),
            })
        } else {
            Err(EngineError::invalid(
                "database",
                format!("`{url}` is not a database URL; use sqlite:path or postgres://…"),
            ))
        }
    }

    pub fn pool(&self) -> &StorePool {
        &self.pool
    }

    /// `sqlite` or `postgres`, for people (health, logs).
    pub fn kind(&self) -> &'static str {
        match self.pool {
            StorePool::Sqlite(_) => "sqlite",
            StorePool::Postgres(_) => "postgres",
        }
    }

    /// The committers this database wants: one on a thread of its own for SQLite (one writer
    /// anyway), several on the runtime for PostgreSQL (`commit.rs`).
    pub(crate) fn committer(&self) -> Committer {
        match self.pool {
            StorePool::Sqlite(_) => Committer::new(1, Placement::OwnThread),
            StorePool::Postgres(_) => Committer::new(POSTGRES_COMMITTERS, Placement::Runtime),
        }
    }

    /// Held for the length of a write transaction (SQLite; `None` on PostgreSQL).
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// Begins a write transaction. SQLite: on the one writer connection, whose page cache
    /// then stays valid from one transaction to the next. SQLite has one writer at a time
    /// anyway; hold [`Store::write_gate`] first.
    pub(crate) async fn begin_write(&self, held: &mut Held) -> Result<Tx> {
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        match &self.writer {
            Some(writer) => Ok(Tx::Sqlite(SqliteTx::begin(writer)?)),
            None => self.pool.begin_held(held).await,
        }
    }

    /// SQLite in a file: the kept read connections (`store::sqlite_readers`).
    pub(crate) fn readers(&self) -> Option<&Arc<Readers>> {
        self.readers.as_ref()
    }

    pub(crate) fn checkpoints(&self) -> Option<&Arc<Checkpoints>> {
        self.checkpoints.as_ref()
    }

    /// Starts what runs beside the committers: SQLite in a file, the WAL checkpointer. Called
    /// once, when the committers start.
    pub(crate) fn start_background(&self) {
        if let (Some(checkpoints), StorePool::Sqlite(pool)) = (&self.checkpoints, &self.pool) {
            tokio::spawn(super::checkpoint::checkpointer(
                pool.clone(),
                checkpoints.clone(),
            ));
        }
    }

    /// After each batch a committer wrote: SQLite in a file rings the checkpointer.
    pub(crate) fn after_batch(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.wake();
        }
    }

    /// Write transactions begun so far (see `store::staged::Carry`).
    pub(crate) fn write_epoch(&self) -> u64 {
        self.write_epoch.load(Ordering::SeqCst)
    }

    /// Whether the committer may carry instances from one batch to the next: SQLite in a file
    /// (one writer connection, kept between transactions).
    pub(crate) fn carries(&self) -> bool {
        self.checkpoints.is_some()
    }

    /// The committer's carry, taken for a batch (`None` while one runs, after a failure, and
    /// always on a store that does not carry: only [`Store::keep`] puts one back).
    pub(crate) fn take_carry(&self) -> Option<Carry> {
        self.carry.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn put_carry(&self, carry: Carry) {
        *self.carry.lock().unwrap_or_else(|e| e.into_inner()) = Some(carry);
    }

    pub(crate) fn count_carried(&self, n: u64) {
        self.carried.fetch_add(n, Ordering::Relaxed);
    }

    /// Instances batches took from the carry instead of reading them.
    pub(crate) fn carried(&self) -> u64 {
        self.carried.load(Ordering::Relaxed)
    }

    /// PostgreSQL: a task that listens for timers other servers create and calls `wake` for
    /// each (`None` on SQLite, where this process is the only writer).
    pub fn listen_timers(
        &self,
        wake: impl Fn() + Send + 'static,
        stopped: tokio::sync::watch::Receiver<bool>,
        retry: std::time::Duration,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        match (&self.pool, &self.timer_channel) {
            (StorePool::Postgres(pool), Some(channel)) => Some(super::postgres::listen_timers(
                pool.clone(),
                channel.clone(),
                wake,
                stopped,
                retry,
            )),
            _ => None,
        }
    }

    /// PostgreSQL: drops `schema` and everything in it (the bench's own); nothing on SQLite.
    pub async fn drop_schema(&self, schema: &str) -> Result<()> {
        if let StorePool::Postgres(pool) = &self.pool {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(EngineError::invalid(
                    "schema",
                    "use letters, digits and underscores only",
                ));
            }
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(pool).await?;
        }
        Ok(())
    }

    /// PostgreSQL: the LISTEN/NOTIFY channel on which new timers are announced to every
    /// server sharing the schema (`None` on SQLite).
    pub fn timer_channel(&self) -> Option<&str> {
        self.timer_channel.as_deref()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The checkpointer waits to be asked; it is told to end.
        if let Some(c) = &self.checkpoints {
            c.stop();
        }
    }
}
