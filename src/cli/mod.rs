//! One module per command family. Each exposes clap `Args`/`Command` types and
//! `run(..) -> anyhow::Result<ExitCode>`; only this outer layer prints or exits.

pub mod bench;
mod bench_pages;
pub mod bench_timers;
pub mod builtin;
pub mod calendar;
pub mod check;
pub mod client;
pub mod config;
pub mod demo;
pub mod fmt;
pub mod graph;
pub mod ledger;
pub mod reassign;
pub mod serve;
pub mod serve_checkpoints;
pub mod serve_oidc;
pub mod serve_refusals;
pub mod serve_timers;
pub mod serve_tls;
pub mod user;
pub mod worker;
