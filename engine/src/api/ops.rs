//! What operators and their tools read (docs/operations.md): readiness (`GET /api/v1/ready`),
//! the metrics scrape (`GET /metrics`, served on `--metrics-listen` only), and the layer that
//! gives every request an id, a span and its place in the metrics.

use super::{ApiJson, ApiState};
use crate::ReadyCheck;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The header a request's id travels in, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The readiness route (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(ready))
}

/// `GET /api/v1/ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `not ready` when a check failed.
    pub status: String,
    /// Every check, failed or not.
    pub checks: Vec<ReadyCheck>,
}

/// Can this server do its work? The database answers, every migration this build knows is
/// applied, and the working-day calendars have data for the current year. 503 names the
/// failed check and what to do. Needs no token (for load balancers and orchestrators);
/// `GET /health` answers whether the process is alive.
#[utoipa::path(get, path = "/ready", tag = "meta", operation_id = "ready", security(()),
    responses((status = 200, body = Readiness, description = "every check passed"),
        (status = 503, body = Readiness, description = "a check failed: its `detail` says what, its `fix` what to do")))]
pub(super) async fn ready(State(state): State<ApiState>) -> (StatusCode, ApiJson<Readiness>) {
    let checks = state.engine.readiness().await;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let readiness = Readiness {
        status: if ready { "ready" } else { "not ready" }.into(),
        checks,
    };
    (status, ApiJson(readiness))
}

/// The router of the metrics listener (`yimen serve --metrics-listen`): `GET /metrics` and
/// nothing else, without authentication, as Prometheus scrapes it. It is a listener of its
/// own so that it can be bound where only the monitoring network reaches.
pub fn metrics_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<ApiState>) -> Response {
    match state.engine.render_metrics().await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer; the error is in the server log\n",
            )
                .into_response()
        }
    }
}

/// Longest request id taken from a caller; a longer one, or one with other characters than
/// letters, digits and `-_.:`, is replaced.
const MAX_REQUEST_ID: usize = 128;

/// The id of a request: the caller's `X-Request-Id` when it is short and plain (a proxy in
/// front may have set it), else a new UUID.
fn request_id(request: &Request) -> HeaderValue {
    let given = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= MAX_REQUEST_ID
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        })
        .cloned();
    given.unwrap_or_else(|| {
        // A UUID's text is always a valid header value.
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .unwrap_or(HeaderValue::from_static("-"))
    })
}

/// A route template as a label: `/api/v1/tasks/{id}/complete` → `/api/v1/tasks/:id/complete`.
/// Braces in a label value are valid, but simple parsers of the text format (and regular
/// expressions in PromQL) stumble on them.
fn label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// Every request: an id (`X-Request-Id`, echoed in the answer), a span carrying it (so every
/// log line of the request names it), and its count and latency by matched route template
/// (never the raw path, which may hold personal data).
pub(super) async fn observe(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let began = std::time::Instant::now();
    let id = request_id(&request);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let method = request.method().as_str().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || crate::metrics::UNMATCHED.to_string(),
        |m| label(m.as_str()),
    );
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or("-"),
        method = %method,
        route = %route,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let took = began.elapsed();
    let status = response.status();
    state
        .engine
        .metrics()
        .request(&method, &route, status.as_u16(), took);
    span.in_scope(|| {
        let ms = took.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(target: "yimen::http", status = status.as_u16(), ms, "answered");
        } else {
            tracing::debug!(target: "yimen::http", status = status.as_u16(), ms, "answered");
        }
    });
    response.headers_mut().insert(REQUEST_ID, id);
    response
}
