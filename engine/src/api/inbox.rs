//! `GET /inbox?role=`, `POST /inbox/{id}/ack`: escalations and notices for a role.

use super::dto::InboxList;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::inbox::{self, InboxItem, InboxState};
use axum::Extension;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The inbox routes (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(ack))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InboxQuery {
    /// Recipient: a queue (`clerk`, `office:east`), `subject` (the notices to the person a
    /// case concerns) or `worker:<id>`.
    role: Option<String>,
    /// `open`, `acked` or `closed`; all when absent.
    state: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u32>,
}

/// May `principal` read and acknowledge the inbox of `recipient`? See
/// [`Principal::reads_inbox`]: the processes declare which roles oversee and which inform the
/// person a case concerns.
fn may_read(principal: &Principal, recipient: &str) -> bool {
    principal.reads_inbox(recipient)
}

/// Whether the case of an inbox item is one `principal` may see (its organisation units).
async fn sees_case(
    state: &ApiState,
    principal: &Principal,
    instance: &str,
) -> Result<bool, ApiError> {
    if principal.org_units.is_empty() {
        return Ok(true);
    }
    Ok(super::instances::check_sees(state, principal, instance)
        .await
        .is_ok())
}

/// Items of a role's inbox, oldest first. Escalations whose late task is finished (or whose
/// clock stopped) are `closed`.
#[utoipa::path(get, path = "/inbox", tag = "inbox", operation_id = "list_inbox",
    params(InboxQuery),
    responses((status = 200, body = InboxList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<InboxQuery>,
) -> Result<ApiJson<InboxList>, ApiError> {
    let Some(role) = query.role.as_deref().filter(|r| !r.is_empty()) else {
        return Err(ApiError::bad_request(
            "give the inbox to list: ?role=clerk (a queue name, `subject` or `worker:<id>`)",
        ));
    };
    let wanted = match query.state.as_deref() {
        None => None,
        Some(s) => Some(InboxState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown state `{s}`: use open, acked or closed"))
        })?),
    };
    if !may_read(&principal, role) {
        return Err(ApiError::forbidden(format!(
            "this token may not read the inbox of `{role}`"
        )));
    }
    let items: Vec<InboxItem> =
        inbox::list(&state.engine, role, wanted, query.limit.unwrap_or(100)).await?;
    // A token limited to some organisation units sees only the items of cases it may see: one
    // unit's queue must not read the escalations of another unit's cases.
    let mut visible = Vec::with_capacity(items.len());
    for item in items {
        if sees_case(&state, &principal, &item.instance_id).await? {
            visible.push(item);
        }
    }
    Ok(ApiJson(InboxList { items: visible }))
}

/// Acknowledges an item (the caller has seen it and acts). Acknowledging again answers the
/// item unchanged; a closed item answers 409.
#[utoipa::path(post, path = "/inbox/{id}/ack", tag = "inbox", operation_id = "ack_inbox_item",
    params(("id" = String, Path, description = "inbox item id")),
    responses((status = 200, description = "the item", body = InboxItem), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn ack(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<InboxItem>, ApiError> {
    let item = crate::inbox::get(&state.engine, &id).await?;
    if !may_read(&principal, &item.recipient)
        || !sees_case(&state, &principal, &item.instance_id).await?
    {
        return Err(ApiError::forbidden(format!(
            "this token may not acknowledge items of `{}` for case {}",
            item.recipient, item.instance_id
        )));
    }
    Ok(ApiJson(
        inbox::ack(&state.engine, &id, crate::actor::Actor::from(&principal)).await?,
    ))
}
