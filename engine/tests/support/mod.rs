//! What the engine's integration tests share; each test file has `mod support;` and
//! `use support::*;`.
//!
//! - [`model`]: process models built in code, without the parser, and `case`, the process of
//!   the API tests;
//! - [`db`]: where a test runs (SQLite in memory or in a file, or a PostgreSQL schema of its
//!   own), `on_both_databases!`, the contract tests' [`Harness`], deployments made in code;
//! - [`api`]: the router over an engine, requests to it and their answers;
//! - [`world`]: the repository's process files and calendars, an engine with its background
//!   services on a simulated clock, and webhook receivers.
#![allow(dead_code, unused_imports)] // Each test file uses a part.

pub mod api;
pub mod db;
pub mod model;
pub mod world;

pub use api::*;
pub use db::*;
pub use model::*;
pub use world::*;
