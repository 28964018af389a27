//! The yimen runtime: durable execution of checked processes, storage (SQLite, PostgreSQL),
//! timers, working-day calendars and the HTTP API. Nothing here knows about any particular
//! process: social assistance lives in `processes/`.

pub mod accounts;
pub mod actor;
pub mod api;
pub mod auth;
pub mod calendar;
pub mod clock;
mod commit;
pub mod csv;
pub mod deadlines;
pub mod documents;
pub mod engine;
pub mod error;
pub mod inbox;
pub mod ledger;
pub mod ledger_keys;
pub mod limits;
pub mod metrics;
pub mod notice;
pub mod oidc;
pub mod outbox;
pub mod recompute;
pub mod reports;
pub mod runtime;
pub mod scheduler;
pub mod search;
pub mod statistics;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod web;

pub use engine::*;
pub use error::{EngineError, Problem};
pub use runtime::due::{Due, DueDates, ReloadingCalendars, WeekdaysOnly};
