use serde::Deserialize;

/// What went wrong talking to a yimen server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its error envelope `{"error": {"code", "message", "details"}}`.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: serde_json::Value,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered something that is not what the API describes.
    #[error("unexpected answer from the server (HTTP {status}): {reason}")]
    Decode { status: u16, reason: String },
}

impl ClientError {
    /// HTTP status of an API error (`None` for transport and decoding errors).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stable error code of an API error (`lock_stale`, `not_found`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// `true` when retrying the same request later may succeed (server unreachable, 5xx, 503).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::Decode { status, .. } => *status >= 500,
        }
    }

    pub(crate) fn from_body(status: u16, body: &[u8]) -> ClientError {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
            #[serde(default)]
            details: serde_json::Value,
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(env) => ClientError::Api {
                status,
                code: env.error.code,
                message: env.error.message,
                details: env.error.details,
            },
            Err(_) => ClientError::Decode {
                status,
                reason: format!(
                    "no error envelope in the body: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            },
        }
    }
}
