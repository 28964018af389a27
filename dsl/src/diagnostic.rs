//! Diagnostics: what is wrong, where, and how to fix it. Produced by the parser (syntax, first
//! error only), the config loader and the checker (every error at once). Rendered for people
//! with `file:line:col`, the source line and a caret underline.

use crate::model::Span;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable code, `YM0001`..., explained in `docs/errors/<code>.md`.
    pub code: &'static str,
    pub severity: Severity,
    /// What is wrong, one sentence.
    pub message: String,
    /// File the span points into (process file or its YAML configuration).
    pub file: String,
    pub span: Span,
    /// Short text under the caret.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
}
