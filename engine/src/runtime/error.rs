//! Why an automatic step failed: [`RunError`], whose text is the message of the incident the
//! token is parked as.

use super::vars::InputError;
use crate::documents::RenderError;
use yimen_dsl::eval::EvalError;

/// Why an automatic step (entering a node, an action, a deadline) failed. Its text is the
/// incident's message on the instance and in its history.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An expression could not be evaluated.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A value is not a duration (the language's reason).
    #[error("{0}")]
    Duration(String),
    #[error("a condition gave a {kind}, not a boolean")]
    NotBoolean { kind: &'static str },
    #[error("no branch applies and there is no default")]
    NoBranch,
    #[error("for each needs a list, got a {kind}")]
    NotAList { kind: &'static str },
    /// A `for each` over more items than the server's `--max-fan-out`.
    #[error(
        "for each over {items} items: at most {max} tasks may be created at once (the server's --max-fan-out)"
    )]
    FanOut { items: usize, max: usize },
    /// The value of a `set` action does not fit its variable.
    #[error("set {var}: {source}")]
    Set { var: String, source: InputError },
    #[error("no document `{0}`")]
    NoDocument(String),
    /// A document's template did not render (or was over a limit).
    #[error("{0}")]
    Document(RenderError),
    #[error("no clock `{0}`")]
    NoClock(String),
    #[error("clock `{0}` has no duration")]
    ClockWithoutDuration(String),
    #[error("clock `{0}` was not started")]
    ClockNotStarted(String),
}
