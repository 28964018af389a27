//! `GET /outbox/failed`: notifications that keep failing or were given up.

use super::{ApiError, ApiJson, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::engine::OutboxMessage;
use axum::Extension;
use axum::extract::State;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The outbox routes (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(failed))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FailedQuery {
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// A notification whose delivery failed and that is not delivered. Its payload (case data)
/// is not shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedDelivery {
    pub id: String,
    pub instance_id: String,
    /// `webhook:<channel>`, `role:<queue>`, `subject` or `holder`.
    pub channel: String,
    /// What kind of channel a `webhook:` row goes to: `webhook` (the signed generic
    /// webhook), `wecom`, `dingtalk` or `sms` (docs/channels.md); none for inbox notices.
    pub kind: Option<String>,
    /// The URL a webhook is sent to (a robot's without its query, which holds its key; a URL
    /// from the environment as `$NAME`).
    pub url: Option<String>,
    /// `pending`: still retried, next at `next_attempt_at`; `dead`: given up.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When a pending one is tried next, in the calendar's zone with its offset (as the
    /// history gives times).
    pub next_attempt_at: Option<DateTime<FixedOffset>>,
    pub created_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedDeliveries {
    pub deliveries: Vec<FailedDelivery>,
}

impl FailedDelivery {
    /// `m` with its times in `tz`.
    fn of(m: OutboxMessage, tz: chrono_tz::Tz) -> FailedDelivery {
        let zoned = |at: DateTime<chrono::Utc>| at.with_timezone(&tz).fixed_offset();
        let pending = m.state == crate::store::OutboxState::Pending;
        let (kind, url) = crate::outbox::describe(&m.channel, &m.payload);
        FailedDelivery {
            kind: kind.map(str::to_string),
            url,
            next_attempt_at: pending.then(|| zoned(m.next_attempt_at)),
            id: m.id,
            instance_id: m.instance_id,
            channel: m.channel,
            state: m.state.as_str().to_string(),
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: zoned(m.created_at),
        }
    }
}

/// Notifications that failed and are not delivered: still retried with back-off (`pending`) or
/// given up after the last attempt (`dead`). Admin only.
#[utoipa::path(get, path = "/outbox/failed", tag = "outbox", operation_id = "list_failed_deliveries",
    params(FailedQuery),
    responses((status = 200, body = FailedDeliveries),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn failed(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<FailedQuery>,
) -> Result<ApiJson<FailedDeliveries>, ApiError> {
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "failed deliveries are for admin tokens",
        ));
    }
    let limit = query.limit.unwrap_or(100).min(1000);
    let deliveries = state.engine.outbox_failures(limit).await?;
    let tz = state.engine.time_zone();
    Ok(ApiJson(FailedDeliveries {
        deliveries: deliveries
            .into_iter()
            .map(|m| FailedDelivery::of(m, tz))
            .collect(),
    }))
}
