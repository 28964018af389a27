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
                metrics: crate::metrics::Metrics::new(),
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

    /// The server's metrics (`GET /metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// Whether the server can do its work (`GET /api/v1/ready`): the database answers, it has
    /// every migration this build knows, and the working-day calendars have data for the
    /// current year (read on the engine's clock, in the default calendar's zone).
    pub async fn readiness(&self) -> Vec<ReadyCheck> {
        let mut checks = Vec::with_capacity(3);
        match self.inner.store.migrations_missing().await {
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the database does not answer");
                checks.push(ReadyCheck::failed(
                    "database",
                    "the database does not answer (the error is in the server log)",
                    "check that the database server runs and that `--database` names it",
                ));
                checks.push(ReadyCheck::failed(
                    "migrations",
                    "not checked: the database does not answer",
                    "make the database answer first",
                ));
            }
            Ok(missing) => {
                checks.push(ReadyCheck::ok(
                    "database",
                    format!("{} answers", self.inner.store.kind()),
                ));
                checks.push(if missing.is_empty() {
                    ReadyCheck::ok("migrations", "every migration this build knows is applied")
                } else {
                    let versions: Vec<String> = missing.iter().map(i64::to_string).collect();
                    ReadyCheck::failed(
                        "migrations",
                        format!("migrations {} are not applied", versions.join(", ")),
                        "restart `yimen serve`: it applies them when it opens the database",
                    )
                });
            }
        }
        let year = chrono::Datelike::year(&self.now().with_timezone(&self.time_zone()));
        checks.push(match self.inner.due.uncovered(year) {
            None => ReadyCheck::ok(
                "calendars",
                "no working-day calendars: deadlines count weekends only",
            ),
            Some(missing) if missing.is_empty() => ReadyCheck::ok(
                "calendars",
                format!("every working-day calendar has data for {year}"),
            ),
            Some(missing) => ReadyCheck::failed(
                "calendars",
                format!(
                    "calendar(s) {} have no working-day data for {year}: deadlines of {year} \
                     are provisional (weekends only)",
                    missing.join(", ")
                ),
                format!(
                    "add {year}'s holidays and working weekends to the calendars folder \
                     (`yimen calendar validate`), or update yimen for its built-in calendars; \
                     the folder is read again every `--calendars-check` seconds"
                ),
            ),
        });
        checks
    }

    /// A scrape of [`Engine::metrics`]: the counters, with the store's counts read now.
    pub async fn render_metrics(&self) -> Result<String> {
        let gauges = self.inner.store.gauges().await?;
        let pool = self.inner.store.pool_gauges();
        Ok(self.inner.metrics.render(&gauges, pool))
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

/// One check of [`Engine::readiness`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReadyCheck {
    /// `database`, `migrations` or `calendars`.
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl ReadyCheck {
    fn ok(name: &str, detail: impl Into<String>) -> ReadyCheck {
        ReadyCheck {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn failed(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> ReadyCheck {
        ReadyCheck {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}
