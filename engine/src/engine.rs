//! The engine facade: everything the HTTP API, the CLI and the timer loop do goes through
//! [`Engine`]. All writes of one external event commit together (retried on contention); starts,
//! completions and claims share transactions with the events that arrive with them (group
//! commit, `commit.rs`). After a commit, subscribers learn of new tasks and timers.
//!
//! This file holds [`Engine`], what it holds (`Inner`) and the `transaction!` macro; each room
//! under `engine/` adds an `impl Engine` block of its own:
//!
//! - `types`: the requests callers hand the engine and the views it answers with.
//! - `open`: opening the database; the store, clock, limits, committer and subscriptions.
//! - `deploy`: deploying processes, reading deployments back, the cache of loaded models.
//! - `start`: starting instances, and the linked instances `call` nodes start.
//! - `apply`: running an event on an instance and writing its changeset.
//! - `events`: messages, cancellations and resolved incidents sent to one instance.
//! - `claim`: claiming tasks, extending and releasing claims, the lock checks.
//! - `complete`: completing tasks (alone or many together) and workers' failures.
//! - `fire`: firing due timers in batches.
//! - `history`: history entries and the hash chain they are linked into.
//! - `views`: instances, tasks, timelines and documents as callers read them.
//! - `outbox`: claiming deliveries and recording how they went.
//! - `ledger`: the ledger's keys, export, verification and checkpoints.
//! - `search`: finding cases, their search table and key, personal data read unmasked.

use crate::clock::Clock;
use crate::runtime::due::DueDates;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// What a committed transaction tells subscribers.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) queues: Vec<String>,
    pub(crate) timers: Vec<i64>,
}

pub(crate) struct Inner {
    /// The database, and what only one of the two needs (`store::Store`).
    store: crate::store::Store,
    clock: Arc<dyn Clock>,
    due: Arc<dyn DueDates>,
    cache: Mutex<HashMap<(String, i64), Arc<Loaded>>>,
    /// The latest version of each process, with the access generation it was read under
    /// (see [`Engine::start_under`]).
    latest: Mutex<HashMap<String, (i64, i64)>>,
    tasks_tx: broadcast::Sender<String>,
    timers_tx: broadcast::Sender<i64>,
    /// Hot events (starts, completions, claims) go to the committers, which share one
    /// transaction between the events that arrive together (group commit; see `commit.rs`).
    committer: crate::commit::Committer,
    /// What one request may make the engine do ([`Engine::set_limits`]).
    limits: std::sync::RwLock<crate::limits::Limits>,
    /// The ledger's keys, kept outside the database (`Engine::set_ledger_keys`).
    ledger_keys: std::sync::OnceLock<Arc<crate::ledger_keys::LedgerKeys>>,
    /// The key ID numbers are found by (`crate::search`): the database's, until
    /// `Engine::set_search_key` gives another.
    search_key: std::sync::RwLock<Arc<crate::search::SearchKey>>,
    /// What `GET /metrics` shows (`crate::metrics`).
    metrics: crate::metrics::Metrics,
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pool", &self.inner.store.pool())
            .finish()
    }
}

/// Runs `$body` in a write transaction, retried on contention; `$fx` collects effects that are
/// published after the commit.
macro_rules! transaction {
    ($self:ident, |$tx:ident, $fx:ident| $body:block) => {{
        let mut held = $crate::store::Held::default();
        $crate::engine::transaction!($self, &mut held, |$tx, $fx| $body)
    }};
    // On the connection `$held` keeps between transactions (a committer's; `store::Held`).
    ($self:ident, $held:expr, |$tx:ident, $fx:ident| $body:block) => {{
        let mut attempt = 0u32;
        loop {
            let mut $fx = $crate::engine::Effects::default();
            let r: Result<_> = async {
                let _gate = $self.write_gate().await;
                let mut $tx = $self.begin_write($held).await?;
                let v: Result<_> = async { Ok($body) }.await;
                match v {
                    Ok(v) => {
                        // Other servers' timer loops learn of new timers (PostgreSQL NOTIFY).
                        if let Some(due) = $fx.timers.iter().min() {
                            $tx.notify_timers($self.timer_channel(), *due).await?;
                        }
                        $tx.commit_held($held).await?;
                        Ok(v)
                    }
                    Err(e) => {
                        // Now, not when the connection is next used: a refused event must not
                        // keep its row locks (claims skip locked rows).
                        let _ = $tx.rollback_held($held).await;
                        Err(e)
                    }
                }
            }
            .await;
            match r {
                Err(e) if e.is_retryable() && attempt < 12 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2u64 << attempt.min(7)))
                        .await;
                }
                Ok(v) => {
                    $self.publish($fx);
                    break Ok(v);
                }
                Err(e) => break Err(e),
            }
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use transaction;

mod apply;
mod claim;
mod complete;
mod deploy;
mod events;
mod fire;
mod history;
mod labels;
mod ledger;
mod notice;
mod open;
mod outbox;
mod oversight;
mod reassign;
mod search;
mod start;
mod statistics;
mod types;
mod views;
mod work;

pub(crate) use crate::store::batch::Claimed;
pub use deploy::{MAX_MODEL_DEPTH, json_depth, read_model};
pub(crate) use history::{Entry, chain, claim_entry, record_lapsed};
pub use labels::ProcessLabels;
pub use open::ReadyCheck;
pub use oversight::{BoardClock, BoardFilter, OVERSIGHT_KINDS};
pub use reassign::{Person, ReassignRequest};
pub use search::{
    CaseHit, CasePage, CaseSearch, MAX_PAGE_SIZE, PersonalDataRead, PersonalValue, Reader,
};
pub(crate) use start::ProcessVersion;
pub use start::{MAX_BUSINESS_KEY_CHARS, text_problem};
pub use statistics::{RegisterReader, StatisticsProcess, StatisticsQuery};
pub use types::*;
pub use work::{OpenWork, WorkTask};

use deploy::Loaded;
use types::{deployment_view, outbox_view, task_view};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
