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
    /// 401: no token, an unknown token or a revoked one, no session or an ended one, a
    /// sign-in refused. `code` says which (`unauthorized` unless said otherwise).
    Unauthorized { code: &'static str, message: String },
    /// 403: the caller is known but may not do this. `code` says why (`forbidden` unless
    /// said otherwise: `csrf_refused`, `password_change_required`, `account_disabled`).
    Forbidden { code: &'static str, message: String },
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
    /// 413: the request body is larger than the server takes.
    PayloadTooLarge { message: String },
    /// 414: the request's path and query are longer than the server takes.
    UriTooLong { message: String },
    /// 431: the request's headers are larger than the server takes.
    HeadersTooLarge { message: String },
    /// 429: too many failed authentications from this address (`too_many_requests`), or a
    /// login locked after failed sign-ins (`sign_in_locked`); try again after `retry_after`
    /// seconds (the `Retry-After` header).
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after: u64,
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
    /// Structured details: `{"problems": [...]}` (422 of a request), `{"diagnostics": [...]}`
    /// (422 of a process that does not check); `null` when there are none.
    #[schema(value_type = Option<ErrorDetails>)]
    pub details: Value,
}

/// The `details` of an error, as sent (for the document; the field is built as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetails {
    /// Each problem of the request, naming its field (a name or a JSON pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<crate::Problem>>,
    /// The checker's diagnostics (`code`, `message`, `span`, `help`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub diagnostics: Option<Vec<Value>>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized {
            code: "unauthorized",
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }
    /// 403 with a code of its own (documented in `docs/errors/api.md`).
    pub fn forbidden_as(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }
    /// 401 with a code of its own (documented in `docs/errors/api.md`).
    pub fn unauthorized_as(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized {
            code,
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
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The envelope sent to the client.
    pub fn body(&self) -> ErrorBody {
        let (code, message, details) = match self {
            ApiError::BadRequest { message } => ("bad_request", message.clone(), Value::Null),
            ApiError::Unauthorized { code, message } | ApiError::Forbidden { code, message } => {
                (*code, message.clone(), Value::Null)
            }
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
            ApiError::PayloadTooLarge { message } => {
                ("payload_too_large", message.clone(), Value::Null)
            }
            ApiError::UriTooLong { message } => ("uri_too_long", message.clone(), Value::Null),
            ApiError::HeadersTooLarge { message } => {
                ("headers_too_large", message.clone(), Value::Null)
            }
            ApiError::TooManyRequests { code, message, .. } => {
                (*code, message.clone(), Value::Null)
            }
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
            ApiError::Unauthorized { message, .. } | ApiError::Forbidden { message, .. } => {
                Some(super::access::RefusalReason(message.clone()))
            }
            _ => None,
        };
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        if let Some(refusal) = refusal {
            response.extensions_mut().insert(refusal);
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let text = rejection.body_text();
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return too_large();
        }
        match rejection {
            JsonRejection::JsonDataError(_) => ApiError::unprocessable(
                "invalid_body",
                format!("the request body does not have the expected fields: {text}"),
                unknown_field(&text).map_or(Value::Null, |field| {
                    serde_json::json!({ "problems": [{
                        "field": field,
                        "message": "is not a field of this request",
                    }] })
                }),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "send the body as JSON with the header `Content-Type: application/json`",
            ),
            _ => ApiError::bad_request(format!("the request body is not valid JSON: {text}")),
        }
    }
}

/// The field serde names in "unknown field `x`, expected …" (`deny_unknown_fields`).
fn unknown_field(text: &str) -> Option<String> {
    let rest = &text[text.find("unknown field `")? + "unknown field `".len()..];
    Some(rest[..rest.find('`')?].to_string())
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

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge {
        message:
            "the request body is larger than the server takes (`yimen serve --max-body-bytes`); \
                  send less, for example fewer items per request"
                .into(),
    }
}

/// `axum::Json` whose rejections are our envelope (400 malformed, 413 too large, 422 wrong
/// fields). A text with a NUL character anywhere in the body is refused with 422 naming where
/// it is: no database stores it in text (PostgreSQL refuses it, and the event with it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::bad_request(
                "send the body as JSON with the header `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request(format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        // Only a body with the escape is looked at further (a raw NUL is not valid JSON).
        if bytes.windows(6).any(|w| w == b"\\u0000")
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            && let Some(at) = nul_at(&value, String::new())
        {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!("{at}: contains a NUL character (\\u0000); remove it"),
                serde_json::json!({ "problems": [{ "field": at, "message": "contains a NUL character" }] }),
            ));
        }
        let Json(value) = Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// `application/json` or `application/…+json`, as axum's `Json` takes.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The JSON pointer of the first string (key or value) with a NUL character.
fn nul_at(value: &Value, at: String) -> Option<String> {
    let name = |at: &str| {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(name(&at)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{at}/{i}"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            if k.contains('\0') {
                Some(name(&here))
            } else {
                nul_at(v, here)
            }
        }),
        _ => None,
    }
}

/// A path or query value the database could not take: a NUL character, or longer than
/// [`MAX_PARAMETER_CHARS`].
fn bad_parameter(kind: &str, name: &str, value: &str) -> Option<ApiError> {
    if value.contains('\0') {
        return Some(ApiError::bad_request(format!(
            "{kind} parameter `{name}` contains a NUL character; remove it"
        )));
    }
    if value.chars().count() > MAX_PARAMETER_CHARS {
        return Some(ApiError::bad_request(format!(
            "{kind} parameter `{name}` is longer than {MAX_PARAMETER_CHARS} characters"
        )));
    }
    None
}

/// Longest path or query parameter value (no id, name or date is near it).
pub const MAX_PARAMETER_CHARS: usize = 512;

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
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        for (name, value) in &pairs {
            if let Some(e) =
                bad_parameter("query", name, name).or_else(|| bad_parameter("query", name, value))
            {
                return Err(e);
            }
        }
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
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            for (name, value) in &raw {
                if let Some(e) = bad_parameter("path", name, value) {
                    return Err(e);
                }
            }
        }
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
            E::AlreadyCompleted { why } => {
                ApiError::conflict("already_completed_by_this_lock", why)
            }
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
            too_new @ (E::SchemaTooNew { .. } | E::SchemaTooOld { .. }) => ApiError::Unavailable {
                message: too_new.to_string(),
            },
            other => ApiError::internal(other),
        }
    }
}
