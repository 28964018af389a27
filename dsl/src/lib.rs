//! The yimen process language: grammar → AST (with spans) → lowered [`model`] → checker.
//! The engine executes only models this crate has checked.

pub mod check;
pub mod config;
pub mod diagnostic;
pub mod eval;
pub mod model;
pub mod pii;
pub mod value;
