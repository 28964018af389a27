//! Opening the engine, and what it holds: the store, the clock, the limits, the committer,
//! and the channels on which subscribers learn of new tasks and timers after each commit.

use super::{Effects, Engine, Inner, OpenOptions};
use crate::clock::Clock;
use crate::error::Result;
use crate::runtime::due::DueDates;
use crate::store::{StorePool, Tx};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

impl Engine {
    /// Opens the database at `url`; see [`Engine::open_with`].
    pub async fn open(url: &str, clock: Arc<dyn Clock>, due: Arc<dyn DueDates>) -> Result<Engine> {
        Engine::open_with(
            OpenOptions {
                url: url.to_string(),
                pg_schema: None,
            },
            clock,
            due,
        )
        .await
    }

    /// Opens (SQLite: creates) and migrates the database. A database migrated by a newer yimen
    /// is refused with [`EngineError::SchemaTooNew`].
    pub async fn open_with(
        opts: OpenOptions,
        clock: Arc<dyn Clock>,
        due: Arc<dyn DueDates>,
    ) -> Result<Engine> {
        let store = crate::store::Store::open(&opts.url, opts.pg_schema.as_deref()).await?;
        let search_key = super::search::database_key(&store).await?;
        let (tasks_tx, _) = broadcast::channel(1024);
        let (timers_tx, _) = broadcast::channel(1024);
        let committer = store.committer();
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                clock,
                due,
                cache: Mutex::new(HashMap::new()),
                latest: Mutex::new(HashMap::new()),
                tasks_tx,
                timers_tx,
                limits: Default::default(),
                ledger_keys: Default::default(),
                search_key: std::sync::RwLock::new(Arc::new(search_key)),
                committer,
            }),
        })
    }

    /// The limits events are held to (list sizes, fan-out, template fuel and output).
    pub fn limits(&self) -> crate::limits::Limits {
        *self
            .inner
            .limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the limits for the events from now on (`yimen serve` from its flags).
    pub fn set_limits(&self, limits: crate::limits::Limits) {
        *self
            .inner
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// Held for the length of a write transaction (SQLite; `None` on PostgreSQL).
    pub(crate) async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.inner.store.write_gate().await
    }

    /// Begins a write transaction (see `store::Store::begin_write`); hold
    /// [`Engine::write_gate`] first.
    pub(crate) async fn begin_write(&self, held: &mut crate::store::Held) -> Result<Tx> {
        self.inner.store.begin_write(held).await
    }

    pub(crate) fn committer(&self) -> &crate::commit::Committer {
        &self.inner.committer
    }

    /// Instances the committer took from what its earlier batches left, instead of reading
    /// them, for tests.
    #[doc(hidden)]
    pub fn carried(&self) -> u64 {
        self.inner.store.carried()
    }

    /// WAL checkpoints the engine ran so far, for tests: runs, and frames copied by the last.
    #[doc(hidden)]
    pub fn checkpoints_run(&self) -> Option<(u64, i64)> {
        self.inner.store.checkpoints().map(|c| c.runs())
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Engine> {
        weak.upgrade().map(|inner| Engine { inner })
    }

    /// The pool, for tables other helpers add (API tokens, access log).
    pub fn pool(&self) -> &StorePool {
        self.inner.store.pool()
    }

    /// The database, and what only one of the two needs.
    pub fn store(&self) -> &crate::store::Store {
        &self.inner.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Receives the queue name of every task created, after its transaction committed.
    pub fn subscribe_tasks(&self) -> broadcast::Receiver<String> {
        self.inner.tasks_tx.subscribe()
    }

    /// Receives the due time (unix millis) of every timer created, after commit.
    pub fn subscribe_timers(&self) -> broadcast::Receiver<i64> {
        self.inner.timers_tx.subscribe()
    }

    /// PostgreSQL: the LISTEN/NOTIFY channel on which new timers are announced to every
    /// server sharing the schema (`None` on SQLite).
    pub fn timer_channel(&self) -> Option<&str> {
        self.inner.store.timer_channel()
    }

    pub(crate) fn publish(&self, fx: Effects) {
        for q in fx.queues {
            let _ = self.inner.tasks_tx.send(q);
        }
        for t in fx.timers {
            let _ = self.inner.timers_tx.send(t);
        }
    }
}
