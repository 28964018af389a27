//! 待阅提醒: the open items of the inboxes of the roles a person holds (escalations of late
//! cases, notices to a role), on their work list, each acknowledged with a button. The same
//! items and rules as `GET /api/v1/inbox?role=` and `POST /api/v1/inbox/{id}/ack`: a role
//! reads its own queue's inbox, and a person of some units sees the items of their units'
//! cases only. Which roles exist is the processes' data; nothing here names one.

use super::{Person, chinese_time, page_error, person};
use crate::api::{ApiError, ApiState};
use crate::auth::Principal;
use crate::inbox::{self, InboxState};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

/// At most this many items of each role are shown; the rest wait for the ones above.
const SHOWN: u32 = 50;

/// A reminder as the work list shows it.
#[derive(Debug, Serialize)]
pub(super) struct Reminder {
    id: String,
    /// The role's label (`区领导小组`), the inbox it came to.
    to: String,
    kind: String,
    message: String,
    at: String,
    case: String,
    business_key: Option<String>,
}

/// What an item is, in words: a reminder before a deadline, an escalation of its level, or a
/// notice.
fn kind(level: Option<i64>) -> String {
    match level {
        Some(0) => "到期提醒".into(),
        Some(level) => format!("超期督办（第 {level} 级）"),
        None => "通知".into(),
    }
}

/// May `p` see the case of an item? Everyone of no unit may (as `GET /inbox` decides); a
/// person of some units, the cases they may see.
async fn sees_case(state: &ApiState, p: &Principal, instance: &str) -> Result<bool, ApiError> {
    if p.org_units.is_empty() {
        return Ok(true);
    }
    match crate::api::instances::ensure_visible(state, p, instance).await {
        Ok(()) => Ok(true),
        Err(ApiError::NotFound { .. } | ApiError::Forbidden { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The open items addressed to the roles `p` holds, oldest first.
pub(super) async fn open_items(state: &ApiState, p: &Principal) -> Result<Vec<Reminder>, ApiError> {
    let engine = &state.engine;
    let tz = engine.time_zone();
    let mut shown = Vec::new();
    let mut roles: Vec<&str> = p.named_roles().filter(|r| p.reads_inbox(r)).collect();
    roles.dedup();
    for role in roles {
        for item in inbox::list(engine, role, Some(InboxState::Open), SHOWN).await? {
            if !sees_case(state, p, &item.instance_id).await? {
                continue;
            }
            let view = engine.instance(&item.instance_id).await?;
            let labels = engine.labels(&view.process, view.version).await?;
            shown.push(Reminder {
                id: item.id,
                to: labels.queue(&item.recipient),
                kind: kind(item.level),
                message: item.message,
                at: chinese_time(item.created_at, tz),
                case: item.instance_id,
                business_key: view.business_key,
            });
        }
    }
    Ok(shown)
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct AckForm {
    #[serde(default)]
    csrf_token: String,
}

/// 已阅: acknowledges an item of the person's roles, as `POST /api/v1/inbox/{id}/ack` does
/// (recorded with their name), then back to the work list. An item already closed (its late
/// task was finished) has nothing left to acknowledge: the list no longer shows it.
pub(super) async fn ack(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<AckForm>,
) -> Response {
    let me: Person = match person(
        &state,
        Method::POST,
        &headers,
        Some(&form.csrf_token),
        false,
    )
    .await
    {
        Ok(me) => me,
        Err(to) => return to,
    };
    let p = &me.principal;
    let item = match inbox::get(&state.engine, &id).await {
        Ok(item) => item,
        Err(e) => return page_error(&e.into()),
    };
    let may = p.named_roles().any(|r| r == item.recipient) && p.reads_inbox(&item.recipient);
    match sees_case(&state, p, &item.instance_id).await {
        Ok(true) if may => {}
        Ok(_) => {
            return page_error(&ApiError::not_found(format!("inbox item {id}")));
        }
        Err(e) => return page_error(&e),
    }
    match inbox::ack(&state.engine, &id, crate::actor::Actor::from(p)).await {
        Ok(_) => Redirect::to("/work#reminders").into_response(),
        Err(e) => match ApiError::from(e) {
            ApiError::Conflict { .. } => Redirect::to("/work#reminders").into_response(),
            other => page_error(&other),
        },
    }
}
