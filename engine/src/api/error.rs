//! The one error type of the API and its one mapping to HTTP statuses. Every error leaves as
//! `{"error": {"code", "message", "details"}}`; database and internal details never leave.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Everything a handler may answer instead of its result.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, bad query or path parameter).
    BadRequest { message: String },
    /// 401: no token, an unknown token or a revoked one.
    Unauthorized { message: String },
    /// 403: the token is valid but may not do this.
    Forbidden { message: String },
    /// 404: no such definition, instance, task, route.
    NotFound { message: String },
    /// 405: the route exists but not with this method.
    MethodNotAllowed { message: String },
    /// 409: the call conflicts with the current state (stale or repeated lock token, instance
    /// already ended). `code` says which conflict.
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 422: well-formed but wrong (checker diagnostics, missing or mistyped variables, unknown
    /// outcome); `details` carries the list of problems.
    Unprocessable {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 503: the server cannot serve now (database unreachable); try again.
    Unavailable { message: String },
    /// 500: a bug or an unexpected storage failure; the cause goes to the log, not the client.
    Internal { cause: String },
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `lock_stale`, `invalid_variables`, `invalid_process`, ...
    pub code: String,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Structured details (problem list, diagnostics); `null` when there are none.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized {
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }
    pub fn unprocessable(
        code: &'static str,
        message: impl Into<String>,
        details: Value,
    ) -> ApiError {
        ApiError::Unprocessable {
            code,
            message: message.into(),
            details,
        }
    }
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal {
            cause: cause.to_string(),
        }
    }

    /// The HTTP status: the single place where errors meet statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The envelope sent to the client.
    pub fn body(&self) -> ErrorBody {
        let (code, message, details) = match self {
            ApiError::BadRequest { message } => ("bad_request", message.clone(), Value::Null),
            ApiError::Unauthorized { message } => ("unauthorized", message.clone(), Value::Null),
            ApiError::Forbidden { message } => ("forbidden", message.clone(), Value::Null),
            ApiError::NotFound { message } => ("not_found", message.clone(), Value::Null),
            ApiError::MethodNotAllowed { message } => {
                ("method_not_allowed", message.clone(), Value::Null)
            }
            ApiError::Conflict {
                code,
                message,
                details,
            }
            | ApiError::Unprocessable {
                code,
                message,
                details,
            } => (*code, message.clone(), details.clone()),
            ApiError::Unavailable { message } => ("unavailable", message.clone(), Value::Null),
            ApiError::Internal { .. } => (
                "internal",
                "the server failed on this request; it is logged, please report it".to_string(),
                Value::Null,
            ),
        };
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
                details,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal { cause } => write!(f, "internal error: {cause}"),
            other => f.write_str(&other.body().error.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { cause } = &self {
            tracing::error!("request failed: {cause}");
        }
        let refusal = match &self {
            ApiError::Unauthorized { message } | ApiError::Forbidden { message } => {
                Some(super::access::RefusalReason(message.clone()))
            }
            _ => None,
        };
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(refusal) = refusal {
            response.extensions_mut().insert(refusal);
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => ApiError::unprocessable(
                "invalid_body",
                format!("the request body does not have the expected fields: {text}"),
                Value::Null,
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "send the body as JSON with the header `Content-Type: application/json`",
            ),
            _ => ApiError::bad_request(format!("the request body is not valid JSON: {text}")),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("bad query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(format!("bad path parameter: {}", rejection.body_text()))
    }
}

/// `axum::Json` whose rejections are our envelope (400 malformed, 422 wrong fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with our envelope on rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// `axum::extract::Path` with our envelope on rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

impl From<crate::EngineError> for ApiError {
    fn from(error: crate::EngineError) -> ApiError {
        use crate::EngineError as E;
        match error {
            E::NotFound { what } => ApiError::not_found(format!("{what} not found")),
            E::Conflict { why } => ApiError::conflict("conflict", why),
            E::Forbidden { why } => ApiError::forbidden(why),
            E::Invalid { problems } => {
                let message = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ApiError::unprocessable(
                    "invalid_request",
                    message,
                    serde_json::json!({ "problems": problems }),
                )
            }
            E::Diagnostics(diagnostics) => ApiError::unprocessable(
                "invalid_process",
                format!(
                    "the process does not check: {} problem(s); fix them and deploy again",
                    diagnostics.len()
                ),
                serde_json::json!({ "diagnostics": diagnostics }),
            ),
            too_new @ E::SchemaTooNew { .. } => ApiError::Unavailable {
                message: too_new.to_string(),
            },
            other => ApiError::internal(other),
        }
    }
}
