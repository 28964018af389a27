//! The worker side of yimen: a small client for the HTTP API ([`Client`]), a claim loop that
//! keeps leases alive while a handler runs and stops gracefully ([`run_worker`]), and the script
//! runner behind `yimen worker --script CMD` ([`ScriptHandler`]).

mod client;
mod error;
mod runner;
mod script;
pub mod types;

pub use client::Client;
pub use error::ClientError;
pub use runner::{Handler, HandlerError, WorkerConfig, WorkerStats, run_worker};
pub use script::ScriptHandler;
pub use types::*;

/// HTTP methods for [`Client::call`], so callers need no direct reqwest dependency.
pub use reqwest::Method;
