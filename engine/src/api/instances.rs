//! `/instances`: start cases, find them, read them (personal data masked, or unmasked for
//! those who work them, each such read recorded), send messages, cancel.

use super::dto::{
    CancelBody, CaseSearchQuery, DocumentList, HistoryList, InstanceQuery, MessageBody, StartBody,
    paging,
};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::engine::{
    CasePage, CaseSearch, InstanceView, Reader, StartRequest, TaskFilter, TaskView,
};
use crate::runtime::state::Status;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use std::net::SocketAddr;

/// Start an instance. A business key already used for this process returns the existing
/// instance (200, `existing: true`) instead of starting a second. Admins may start any
/// process; other tokens need a role listed under `start_roles` in the process's YAML
/// configuration, or, without that list, the role of one of its first tasks (403 names the
/// roles that may). A token limited to organisation units starts only cases whose scope
/// variables (`per <variable>` on a role) name one of its units, and gets 403 for a business
/// key of a case it may not see.
#[utoipa::path(post, path = "/instances", tag = "instances", operation_id = "start_instance",
    request_body = StartBody,
    responses(
        (status = 201, description = "started", body = InstanceView),
        (status = 200, description = "the instance with this business key", body = InstanceView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such process", body = ErrorBody),
        (status = 422, description = "missing or mistyped variables", body = ErrorBody),
    ))]
pub(super) async fn start(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Extension(generation): Extension<super::access::AccessGeneration>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<(StatusCode, ApiJson<InstanceView>), ApiError> {
    let view = start_checked(
        &state,
        &principal,
        generation,
        body.process,
        body.business_key,
        body.variables,
    )
    .await?;
    let status = if view.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, ApiJson(view)))
}

/// Starts a case of `process` as `principal` may (its role and units, checked under the
/// access `generation` it was authenticated with), as `POST /instances` and the workbench's
/// registration page do. A repeated business key answers the existing case (`existing`), to
/// who may see it only.
pub(crate) async fn start_checked(
    state: &ApiState,
    principal: &Principal,
    generation: super::access::AccessGeneration,
    process: String,
    business_key: Option<String>,
    vars: serde_json::Map<String, serde_json::Value>,
) -> Result<InstanceView, ApiError> {
    super::access::check_start(state, principal, &process, &vars, generation).await?;
    let request = StartRequest {
        process,
        business_key,
        vars,
        actor: crate::actor::Actor::from(principal),
    };
    let view = state.engine.start_under(request, generation.0).await?;
    if view.existing && !principal.org_units.is_empty() {
        // The business key may be another unit's case: its view only for who sees it (and
        // its id not named to who does not).
        check_sees(state, principal, &view.id)
            .await
            .map_err(|e| match e {
                ApiError::NotFound { .. } => ApiError::forbidden(
                    "the business key is taken by a case of an organisation unit this token may not see",
                ),
                other => other,
            })?;
    }
    Ok(view)
}

/// Find cases: by business key (whole or its beginning), by part of the name of a person a
/// case concerns, by a whole ID number (matched by its keyed hash; part of one finds nothing),
/// by process, state, organisation unit and registration dates. Newest first, a page at a time
/// with the total count; only the cases the token may see (those `GET /instances/{id}` shows
/// it); personal data masked.
#[utoipa::path(get, path = "/instances", tag = "instances", operation_id = "search_instances",
    params(CaseSearchQuery),
    responses((status = 200, body = CasePage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn search(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<CaseSearchQuery>,
) -> Result<ApiJson<CasePage>, ApiError> {
    let search = case_search(&state, query)?;
    let scope = crate::search::CaseScope::of(&principal);
    Ok(ApiJson(state.engine.search_cases(&search, scope).await?))
}

/// Longest text searched (`q`), in characters.
const MAX_QUERY_CHARS: usize = 100;

/// The search a query asks for, or a 400 naming the parameter to fix.
fn case_search(state: &ApiState, query: CaseSearchQuery) -> Result<CaseSearch, ApiError> {
    let given =
        |name: &str, value: Option<String>, max: usize| -> Result<Option<String>, ApiError> {
            let Some(value) = value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            else {
                return Ok(None);
            };
            match crate::engine::text_problem(&value, max) {
                Some(why) => Err(ApiError::bad_request(format!("`{name}` {why}"))),
                None => Ok(Some(value)),
            }
        };
    let q = given("q", query.q, MAX_QUERY_CHARS)?;
    let process = given("process", query.process, 256)?;
    let unit = given("unit", query.unit, 256)?;
    let status = match given("status", query.status, 32)? {
        None => None,
        Some(text) => Some(Status::parse(&text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown status `{text}`: use running, completed, cancelled or incident"
            ))
        })?),
    };
    let from = given("from", query.from, 64)?;
    let to = given("to", query.to, 64)?;
    let (from, to) = if from.is_none() && to.is_none() {
        (None, None)
    } else {
        let (start, end) =
            crate::ledger::range(from.as_deref(), to.as_deref(), state.engine.time_zone())
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        (from.map(|_| start), to.map(|_| end))
    };
    let (page, page_size) = paging(query.page, query.page_size)?;
    Ok(CaseSearch {
        q,
        process,
        status,
        unit,
        from,
        to,
        page,
        page_size,
    })
}

/// An instance: state, variables (personal data masked), active steps, open tasks, timers,
/// result. With `unmasked=true` the variables are shown unmasked, to the tokens that work one
/// of the case's tasks (in its organisation unit) and to overseers and admins only (403 for
/// others); every such read is recorded (`GET /personal-data-reads`).
#[utoipa::path(get, path = "/instances/{id}", tag = "instances", operation_id = "get_instance",
    params(("id" = String, Path), InstanceQuery),
    responses((status = 200, body = InstanceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    address: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<InstanceQuery>,
) -> Result<ApiJson<InstanceView>, ApiError> {
    if query.unmasked == Some(true) {
        check_reads_personal_data(&state, &principal, &id).await?;
        let reader = Reader {
            principal,
            address: address.map(|Extension(ConnectInfo(a))| a.ip().to_string()),
        };
        return Ok(ApiJson(state.engine.instance_unmasked(&id, reader).await?));
    }
    let view = state.engine.instance(&id).await?;
    check_sees(&state, &principal, &id).await?;
    Ok(ApiJson(view))
}

/// The instance's history (its part of the ledger), in order.
#[utoipa::path(get, path = "/instances/{id}/history", tag = "instances", operation_id = "instance_history",
    params(("id" = String, Path)),
    responses((status = 200, body = HistoryList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<HistoryList>, ApiError> {
    ensure_visible(&state, &principal, &id).await?;
    let entries = state.engine.history(&id).await?;
    Ok(ApiJson(HistoryList { entries }))
}

/// Documents issued for the instance (notices, publicity lists).
#[utoipa::path(get, path = "/instances/{id}/documents", tag = "instances", operation_id = "instance_documents",
    params(("id" = String, Path)),
    responses((status = 200, body = DocumentList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn documents(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<DocumentList>, ApiError> {
    ensure_visible(&state, &principal, &id).await?;
    let documents = state.engine.documents(&id).await?;
    Ok(ApiJson(DocumentList { documents }))
}

/// Deliver a named message to an instance waiting for it (409 when it is not waiting).
#[utoipa::path(post, path = "/instances/{id}/messages/{name}", tag = "instances", operation_id = "send_message",
    params(("id" = String, Path), ("name" = String, Path)),
    request_body = MessageBody,
    responses((status = 200, body = InstanceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn message(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MessageBody>,
) -> Result<ApiJson<InstanceView>, ApiError> {
    if !principal.may_start() {
        return Err(ApiError::forbidden(
            "this token only reads; sending messages needs an admin or a role that works cases",
        ));
    }
    ensure_visible(&state, &principal, &id).await?;
    let view = state
        .engine
        .message(
            &id,
            &name,
            body.variables,
            crate::actor::Actor::from(&principal),
        )
        .await?;
    Ok(ApiJson(view))
}

/// Cancel a running instance (admin only).
#[utoipa::path(post, path = "/instances/{id}/cancel", tag = "instances", operation_id = "cancel_instance",
    params(("id" = String, Path)),
    request_body = CancelBody,
    responses((status = 200, body = InstanceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn cancel(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<ApiJson<InstanceView>, ApiError> {
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only an admin token may cancel instances",
        ));
    }
    let reason = body
        .reason
        .unwrap_or_else(|| "cancelled by an operator".into());
    let view = state
        .engine
        .cancel(&id, &reason, crate::actor::Actor::from(&principal))
        .await?;
    Ok(ApiJson(view))
}

/// Retry the steps of an instance parked as an incident (admin only).
#[utoipa::path(post, path = "/instances/{id}/incident/resolve", tag = "instances", operation_id = "resolve_incident",
    params(("id" = String, Path)),
    responses((status = 200, body = InstanceView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn resolve_incident(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<InstanceView>, ApiError> {
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only an admin token may resolve incidents",
        ));
    }
    let view = state
        .engine
        .resolve_incident(&id, crate::actor::Actor::from(&principal))
        .await?;
    Ok(ApiJson(view))
}

/// 404 when the instance does not exist or is of a unit `principal` may not see, 403 when it
/// is of its units but not of its queues.
pub(crate) async fn ensure_visible(
    state: &ApiState,
    principal: &Principal,
    instance: &str,
) -> Result<(), ApiError> {
    state.engine.instance(instance).await?;
    check_sees(state, principal, instance).await
}

/// May `principal` read a case with these tasks: is it an admin or overseer of no
/// organisation unit, an overseer of the unit of one of its tasks, or does it work one of its
/// tasks' queues in that task's unit? (`search::CaseScope` is the same rule as a filter.)
fn works_or_oversees(principal: &Principal, tasks: &[TaskView]) -> bool {
    (principal.is_overseer() && principal.org_units.is_empty())
        || tasks.iter().any(|task| {
            let unit = task.org_unit.as_deref();
            if principal.is_overseer() {
                principal.sees_unit(unit)
            } else {
                principal.works_queue(&task.queue, unit)
            }
        })
}

/// Every task the instance has had.
async fn case_tasks(state: &ApiState, instance: &str) -> Result<Vec<TaskView>, ApiError> {
    Ok(state
        .engine
        .tasks(TaskFilter {
            instance: Some(instance.to_string()),
            limit: Some(10_000),
            ..TaskFilter::default()
        })
        .await?)
}

/// Reading a case's personal data unmasked: for the tokens that work one of its tasks (in its
/// organisation unit) and for overseers and admins (of its units), the personal-data
/// counterpart of [`check_sees`]; 404 for a case of a unit the token may not see, 403 for
/// others.
async fn check_reads_personal_data(
    state: &ApiState,
    principal: &Principal,
    instance: &str,
) -> Result<(), ApiError> {
    ensure_visible(state, principal, instance).await?;
    if works_or_oversees(principal, &case_tasks(state, instance).await?) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{} may not read the personal data of instance {instance} unmasked: only the roles \
             that work its tasks and the overseeing roles may",
            principal.who()
        )))
    }
}

/// Admins and unrestricted overseers see every case; others see the cases that have (or had) a
/// task in one of their queues and organisation units.
pub(super) async fn check_sees(
    state: &ApiState,
    principal: &Principal,
    instance: &str,
) -> Result<(), ApiError> {
    if principal.is_overseer() && principal.org_units.is_empty() {
        return Ok(());
    }
    let tasks = case_tasks(state, instance).await?;
    if works_or_oversees(principal, &tasks) {
        Ok(())
    } else if !tasks
        .iter()
        .any(|task| principal.sees_unit(task.org_unit.as_deref()))
    {
        // A case of another unit is answered as unknown: its id is not confirmed.
        Err(ApiError::not_found(format!(
            "instance {instance} not found"
        )))
    } else {
        Err(ApiError::forbidden(format!(
            "{} may not see instance {instance}: none of its tasks is in the caller's queues{}",
            principal.who(),
            if principal.org_units.is_empty() {
                String::new()
            } else {
                format!(
                    " and organisation units ({})",
                    principal.org_units.join(", ")
                )
            }
        )))
    }
}
