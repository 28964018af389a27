//! The engine's one error type. The HTTP API maps it to a status with [`EngineError::status`];
//! bad input is never a 500.

use serde::Serialize;
use yimen_dsl::diagnostic::Diagnostic;

/// One thing wrong with a request (a variable, an outcome, a field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// What the problem is about: a variable name, `outcome`, `business_key`, ...
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404: no such definition, instance, task, ...
    #[error("{what} not found")]
    NotFound { what: String },
    /// 409: the request is valid but the state does not allow it (stale lock token, task
    /// already completed, instance not waiting for that message).
    #[error("conflict: {why}")]
    Conflict { why: String },
    /// 409 `already_completed_by_this_lock`: the task was completed under the very lock token
    /// the request carries, so this is a retry of a completion that was applied (its answer
    /// was lost). Nothing was done again.
    #[error("{why}")]
    AlreadyCompleted { why: String },
    /// 403: the caller's token may not do this (to this task); nothing was changed.
    #[error("forbidden: {why}")]
    Forbidden { why: String },
    /// 422: every problem with the request; nothing was changed.
    #[error("invalid request: {}", problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid { problems: Vec<Problem> },
    /// 422: the process source does not compile or check.
    #[error("the process has {} problem(s)", .0.len())]
    Diagnostics(Vec<Diagnostic>),
    /// The database was written by a newer yimen.
    #[error(
        "the database schema is version {found}, newer than this yimen knows (up to {known}); upgrade yimen or use another database"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The database was migrated by a yimen from before the schema baseline and stopped
    /// short of it: this yimen has no migrations that lead there.
    #[error(
        "the database was made by an older yimen (schema {found}); open it once with a yimen from before the schema baseline of December 2026 (it upgrades it to 950), then with this one"
    )]
    SchemaTooOld { found: i64 },
    /// 500: the database failed. The text is for logs, not for clients.
    #[error("storage error: {0}")]
    Storage(String),
    /// 500: a stored model or state could not be read back (corruption or a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::NotFound { .. } => 404,
            EngineError::Conflict { .. } | EngineError::AlreadyCompleted { .. } => 409,
            EngineError::Forbidden { .. } => 403,
            EngineError::Invalid { .. } | EngineError::Diagnostics(_) => 422,
            EngineError::SchemaTooNew { .. } | EngineError::SchemaTooOld { .. } => 503,
            EngineError::Storage(_) | EngineError::Internal(_) => 500,
        }
    }

    pub fn not_found(what: impl Into<String>) -> EngineError {
        EngineError::NotFound { what: what.into() }
    }

    pub fn conflict(why: impl Into<String>) -> EngineError {
        EngineError::Conflict { why: why.into() }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError::Invalid {
            problems: vec![Problem::new(field, message)],
        }
    }

    /// A copy for answering each request of a batch (storage errors keep their text).
    pub(crate) fn clone_for_batch(&self) -> EngineError {
        match self {
            EngineError::NotFound { what } => EngineError::NotFound { what: what.clone() },
            EngineError::Conflict { why } => EngineError::Conflict { why: why.clone() },
            EngineError::AlreadyCompleted { why } => {
                EngineError::AlreadyCompleted { why: why.clone() }
            }
            EngineError::Forbidden { why } => EngineError::Forbidden { why: why.clone() },
            EngineError::Invalid { problems } => EngineError::Invalid {
                problems: problems.clone(),
            },
            EngineError::Diagnostics(d) => EngineError::Diagnostics(d.clone()),
            EngineError::SchemaTooNew { found, known } => EngineError::SchemaTooNew {
                found: *found,
                known: *known,
            },
            EngineError::SchemaTooOld { found } => EngineError::SchemaTooOld { found: *found },
            EngineError::Storage(s) => EngineError::Storage(s.clone()),
            EngineError::Internal(s) => EngineError::Internal(s.clone()),
        }
    }

    /// A storage error caused by a value of the request (PostgreSQL's classes 22, data
    /// exception, such as NUL in text, and 54, program limit, such as a key too long for its
    /// index; SQLite's "too big") as the 422 it is; `None` for any other error.
    pub(crate) fn refused_value(&self) -> Option<EngineError> {
        let EngineError::Storage(s) = self else {
            return None;
        };
        let code = s.rsplit_once(" (").map(|(_, c)| c.trim_end_matches(')'))?;
        let by_value = (code.len() == 5 && (code.starts_with("22") || code.starts_with("54")))
            || s.contains("too big");
        by_value.then(|| {
            tracing::warn!(error = %s, "the database refused a value of a request");
            EngineError::invalid(
                "request",
                "the database cannot store a value of this request (a text too long for its \
                 index, or a character such as NUL it does not store); shorten or correct it",
            )
        })
    }

    /// Retry-able database contention (deadlock, serialization failure, SQLite busy, a lost
    /// race on a unique key).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            EngineError::Storage(s) => {
                s.contains("deadlock")
                    || s.contains("could not serialize")
                    || s.contains("database is locked")
                    || s.contains("40P01")
                    || s.contains("40001")
                    // A concurrent insert of the same business key or deployment: the retry
                    // finds the row the other transaction wrote.
                    || s.contains("23505")
                    || s.contains("UNIQUE constraint failed")
            }
            _ => false,
        }
    }
}

impl From<sqlx::Error> for EngineError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && let Some(code) = db.code()
        {
            return EngineError::Storage(format!("{} ({code})", db.message()));
        }
        EngineError::Storage(e.to_string())
    }
}

/// SQLite's errors through rusqlite (the writer and the kept readers), worded as sqlx words
/// them: the message and the extended code, which `is_retryable` and `refused_value` read.
impl From<rusqlite::Error> for EngineError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(failure, message) => EngineError::Storage(format!(
                "{} ({})",
                message.clone().unwrap_or_else(|| failure.to_string()),
                failure.extended_code
            )),
            _ => EngineError::Storage(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for EngineError {
    fn from(e: serde_json::Error) -> Self {
        EngineError::Internal(format!("stored JSON unreadable: {e}"))
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
