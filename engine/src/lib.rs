//! The yimen runtime: durable execution of checked processes, storage (SQLite, PostgreSQL),
//! timers, working-day calendars and the HTTP API. Nothing here knows about any particular
//! process: social assistance lives in `processes/`.

pub mod calendar;
pub mod clock;
pub mod outbox;
pub mod reports;
pub mod scheduler;
