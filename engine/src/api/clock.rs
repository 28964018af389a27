//! `GET /clock`, `POST /clock/advance`: the server's time, and moving a simulated clock.

use super::dto::ClockNow;
use super::{ApiError, ApiJson, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::error::EngineError;
use crate::scheduler::{AdvanceReport, ClockError, Services};
use axum::Extension;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The clock routes (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(now))
        .routes(routes!(advance))
}

/// `POST /clock/advance`: exactly one of `to` and `by`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AdvanceBody {
    /// RFC 3339 instant, e.g. `2026-10-08T17:30:00+08:00`, in the years 1970–2200.
    #[schema(max_length = 64)]
    to: Option<String>,
    /// A length of time: `90m`, `36h`, `10d`, `1w` (plain elapsed time), at most 36500 days.
    #[schema(max_length = 32)]
    by: Option<String>,
}

/// Why a length of time does not read; `text` is the length as given (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LengthError {
    #[error("`{0}` is not a length of time; write e.g. 90m, 36h, 10d or 1w")]
    NotANumber(String),
    #[error("unknown unit `{unit}` in `{text}`: use s, m, h, d or w")]
    UnknownUnit { unit: String, text: String },
    /// More than a duration holds: refused as too long (422), not as unreadable.
    #[error("`{0}` is too long")]
    TooLong(String),
}

/// Reads `90m`, `36h`, `10d`, `1w`, `30s`.
pub(crate) fn parse_length(text: &str) -> Result<chrono::Duration, LengthError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| LengthError::NotANumber(text.to_string()))?;
    let length = match unit.trim() {
        "s" => chrono::Duration::try_seconds(n),
        "m" | "min" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        other => {
            return Err(LengthError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            });
        }
    };
    length.ok_or_else(|| LengthError::TooLong(text.to_string()))
}

/// `Err` (422) when a clock move of `by` is longer than the engine accepts.
fn check_length(by: chrono::Duration) -> Result<(), ApiError> {
    if by > chrono::Duration::days(crate::limits::MAX_ADVANCE_DAYS) {
        return Err(EngineError::invalid(
            "by",
            format!(
                "is longer than {} days, the longest clock move",
                crate::limits::MAX_ADVANCE_DAYS
            ),
        )
        .into());
    }
    Ok(())
}

fn services(ext: Option<Extension<Services>>) -> Result<Services, ApiError> {
    ext.map(|Extension(s)| s)
        .ok_or_else(|| ApiError::Unavailable {
            message: "the timer services are not running on this server".into(),
        })
}

/// The server's current time and whether it is simulated.
#[utoipa::path(get, path = "/clock", tag = "clock", operation_id = "get_clock",
    responses((status = 200, body = ClockNow), (status = 401, body = ErrorBody)))]
pub(super) async fn now(State(state): State<ApiState>) -> ApiJson<ClockNow> {
    let clock = state.engine.clock();
    ApiJson(ClockNow {
        now: clock.now(),
        simulated: clock.is_manual(),
    })
}

/// Moves a simulated clock (`yimen serve --clock TIME`) forward: every timer due on the way
/// fires, in due order, and the notifications and report runs they cause are done, before the
/// answer. Admin only; refused (409) on a real clock.
#[utoipa::path(post, path = "/clock/advance", tag = "clock", operation_id = "advance_clock",
    request_body = AdvanceBody,
    responses((status = 200, body = AdvanceReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "a real clock, or a time before the clock's", body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "the timer services are not running on this server", body = ErrorBody)))]
pub(super) async fn advance(
    Extension(principal): Extension<Principal>,
    ext: Option<Extension<Services>>,
    ApiJson(body): ApiJson<AdvanceBody>,
) -> Result<ApiJson<AdvanceReport>, ApiError> {
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only an admin token may move the clock",
        ));
    }
    let services = services(ext)?;
    let result = match (&body.to, &body.by) {
        (Some(to), None) => {
            let to: DateTime<Utc> = DateTime::parse_from_rfc3339(to)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "`to`: `{to}` is not an RFC 3339 instant such as 2026-10-08T17:30:00+08:00"
                    ))
                })?
                .with_timezone(&Utc);
            services.advance_to(to).await
        }
        (None, Some(by)) => {
            let by = match parse_length(by) {
                Ok(by) => by,
                Err(e @ LengthError::TooLong(_)) => {
                    return Err(EngineError::invalid("by", e.to_string()).into());
                }
                Err(e) => return Err(ApiError::bad_request(format!("`by`: {e}"))),
            };
            check_length(by)?;
            if by < chrono::Duration::zero() {
                return Err(ApiError::bad_request("`by` must not be negative"));
            }
            services.advance_by(by).await
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `to` (an instant) and `by` (a length such as 36h)",
            ));
        }
    };
    match result {
        Ok(report) => Ok(ApiJson(report)),
        Err(e @ ClockError::RealClock) => Err(ApiError::conflict("real_clock", e.to_string())),
        Err(e @ (ClockError::OutOfRange { .. } | ClockError::Overflow { .. })) => {
            let field = if body.to.is_some() { "to" } else { "by" };
            Err(EngineError::invalid(field, e.to_string()).into())
        }
        Err(ClockError::Advance(e @ crate::scheduler::AdvanceError::Backwards { .. })) => {
            Err(ApiError::conflict("clock_backwards", e.to_string()))
        }
        Err(ClockError::Advance(e)) => Err(ApiError::internal(e)),
        Err(ClockError::Engine(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_length;

    #[test]
    fn lengths_read_with_their_unit() {
        assert_eq!(parse_length("90m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_length("36h"), Ok(chrono::Duration::hours(36)));
        assert_eq!(parse_length("10d"), Ok(chrono::Duration::days(10)));
        assert_eq!(parse_length("1w"), Ok(chrono::Duration::weeks(1)));
        assert!(
            parse_length("10")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(
            parse_length("ten days")
                .unwrap_err()
                .to_string()
                .contains("90m")
        );
        assert!(
            parse_length("99999999999999w")
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }
}
