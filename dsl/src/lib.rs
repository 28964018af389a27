//! The yimen process language: grammar → AST (with spans) → lowered [`model`] → checker.
//! The engine executes only models this crate has checked.
//!
//! Entry points: [`parse`] (text → [`ast::File`], first syntax error), [`lower`]
//! (AST → [`model::Process`]), [`fmt::format`] (canonical layout), [`config::load`] (YAML) and
//! [`compile`], which runs every stage and returns the checked model or every diagnostic.

pub mod ast;
pub mod check;
pub mod config;
pub mod diagnostic;
pub mod duration;
pub mod eval;
pub mod fmt;
pub mod graph;
pub mod lower;
pub mod model;
pub mod parser;
pub mod pii;
pub mod value;
