//! Reassignments (`/reassignments`): a person holding a role that some process declares
//! `reassigns r` (the street leader's `reassigns window`) hands the tasks assigned to one
//! holder of `r` (a first responder away) to another holder of it in their organisation unit,
//! until a day or for good, and may end that early. The engine writes the reassignment and the
//! history entries (`engine::reassign`); this module checks who may, and whom.

use super::dto::*;
use super::{ApiError, ApiJson, ApiPath, ApiState, ErrorBody};
use crate::accounts;
use crate::actor::Actor;
use crate::auth::Principal;
use crate::engine::{Person, ReassignRequest};
use crate::store::accounts::UserRecord;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Longest reason kept.
const MAX_REASON_CHARS: usize = 500;

/// Most reassignments one list shows.
const LIST_LIMIT: i64 = 500;

/// Hand the tasks of `from` (away) to `to`, of the same role and organisation unit, until a
/// day (inclusive) or for good. The caller holds a role that reassigns that role, in that unit.
/// Every running case concerned gets a `reassigned` history entry.
#[utoipa::path(post, path = "/reassignments", tag = "reassignments", operation_id = "reassign",
    request_body = ReassignBody,
    responses((status = 201, body = ReassignmentInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn reassign(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> Result<(StatusCode, ApiJson<ReassignmentInfo>), ApiError> {
    require_duty(&principal)?;
    let mut problems = Vec::new();
    let reason = body.reason.trim();
    if reason.is_empty() {
        problems.push(problem("reason", "say why (leave, illness, a move)"));
    } else if let Some(why) = crate::engine::text_problem(reason, MAX_REASON_CHARS) {
        problems.push(problem("reason", &why));
    }
    let until = match body.until.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => Some(day),
            Err(_) => {
                problems.push(problem(
                    "until",
                    &format!("`{text}` is not a day: give one like 2026-12-20, or none for good"),
                ));
                None
            }
        },
    };
    let from = account(&state, "from", &body.from, &mut problems).await?;
    let to = account(&state, "to", &body.to, &mut problems).await?;
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(invalid(problems));
    };
    if from.id == to.id {
        return Err(invalid(vec![problem(
            "to",
            "is the person away: name another who stands in",
        )]));
    }
    if to.disabled_at.is_some() {
        return Err(invalid(vec![problem(
            "to",
            &format!(
                "`{}`'s account is disabled: name someone who works",
                to.login
            ),
        )]));
    }
    // The role: one the caller reassigns that `from` holds.
    let Some(role) = principal
        .reassigns
        .iter()
        .find(|r| from.roles.iter().any(|held| held == *r))
        .cloned()
    else {
        return Err(invalid(vec![problem(
            "from",
            &format!(
                "`{}` holds no role whose tasks you may reassign ({})",
                from.login,
                principal.reassigns.join(", ")
            ),
        )]));
    };
    let unit = unit_of(&principal, &from, body.org_unit.as_deref())?;
    if !to.roles.contains(&role) {
        return Err(invalid(vec![problem(
            "to",
            &format!(
                "`{}` does not hold the role `{role}`: only a holder of it can stand in",
                to.login
            ),
        )]));
    }
    if !in_unit(&to, &unit) {
        return Err(invalid(vec![problem(
            "to",
            &format!(
                "`{}` is not of `{unit}` ({}): name someone of the same unit",
                to.login,
                to.org_units.join(", ")
            ),
        )]));
    }
    let row = state
        .engine
        .reassign(ReassignRequest {
            role,
            org_unit: unit,
            from: person(&from),
            to: person(&to),
            reason: reason.to_string(),
            until,
            by: Actor::from(&principal),
        })
        .await?;
    let now = state.engine.clock().now().timestamp_millis();
    Ok((StatusCode::CREATED, ApiJson(ReassignmentInfo::of(row, now))))
}

/// The reassignments of the caller's organisation units (all, for a caller of none), active and
/// past, newest first. For the roles that reassign, overseers and admins.
#[utoipa::path(get, path = "/reassignments", tag = "reassignments", operation_id = "list_reassignments",
    responses((status = 200, body = ReassignmentList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<ApiJson<ReassignmentList>, ApiError> {
    if principal.reassigns.is_empty() && !principal.is_overseer() {
        return Err(ApiError::forbidden(format!(
            "{} may not read reassignments: they are for the roles that reassign, overseers \
             and admins",
            principal.who()
        )));
    }
    let units = (!principal.org_units.is_empty()).then_some(principal.org_units.as_slice());
    let rows = state.engine.reassignments_of(units, LIST_LIMIT).await?;
    let now = state.engine.clock().now().timestamp_millis();
    Ok(ApiJson(ReassignmentList {
        reassignments: rows
            .into_iter()
            .map(|r| ReassignmentInfo::of(r, now))
            .collect(),
    }))
}

/// End a reassignment now: the tasks are again only their assignee's. By a holder of a role
/// that reassigns its role, in its unit. Every running case concerned gets a
/// `reassignment_ended` history entry.
#[utoipa::path(post, path = "/reassignments/{id}/end", tag = "reassignments", operation_id = "end_reassignment",
    params(("id" = String, Path, description = "the reassignment's id")),
    responses((status = 200, body = ReassignmentInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn end(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ReassignmentInfo>, ApiError> {
    require_duty(&principal)?;
    let row = state
        .engine
        .reassignment(&id)
        .await?
        .filter(|r| principal.sees_unit(Some(&r.org_unit)))
        .ok_or_else(|| ApiError::not_found(format!("reassignment {id}")))?;
    if !principal.reassigns.contains(&row.role) {
        return Err(ApiError::forbidden(format!(
            "{} may not end a reassignment of `{}`: none of its roles reassigns it",
            principal.who(),
            row.role
        )));
    }
    let row = state
        .engine
        .end_reassignment(&id, &Actor::from(&principal))
        .await?;
    let now = state.engine.clock().now().timestamp_millis();
    Ok(ApiJson(ReassignmentInfo::of(row, now)))
}

/// 403 unless one of the caller's roles reassigns another.
fn require_duty(principal: &Principal) -> Result<(), ApiError> {
    if principal.reassigns.is_empty() {
        return Err(ApiError::forbidden(format!(
            "{} may not reassign cases: none of its roles does (a process declares who may, \
             e.g. `role street_leader \"…\" per street reassigns window`)",
            principal.who()
        )));
    }
    Ok(())
}

/// The account of `login`, or a problem with `field`.
async fn account(
    state: &ApiState,
    field: &str,
    login: &str,
    problems: &mut Vec<Value>,
) -> Result<Option<UserRecord>, ApiError> {
    let login = accounts::normalize_login(login);
    if login.is_empty() {
        problems.push(problem(
            field,
            "give a login (`yimen user list` shows them)",
        ));
        return Ok(None);
    }
    let user = state.accounts.by_login(&login).await?;
    if user.is_none() {
        problems.push(problem(
            field,
            &format!("no account with the login `{login}`; `yimen user list` shows them"),
        ));
    }
    Ok(user)
}

/// The organisation unit of the reassignment: the one given, or `from`'s one the caller may
/// act for. 403 when the caller may not act for it; 422 when `from` is not of it or it is
/// ambiguous.
fn unit_of(
    principal: &Principal,
    from: &UserRecord,
    given: Option<&str>,
) -> Result<String, ApiError> {
    let given = given.map(str::trim).filter(|u| !u.is_empty());
    let unit = match given {
        Some(unit) => unit.to_string(),
        None => {
            let mine: Vec<&String> = from
                .org_units
                .iter()
                .filter(|u| principal.sees_unit(Some(u)))
                .collect();
            match (mine.as_slice(), from.org_units.as_slice()) {
                ([unit], _) => (*unit).clone(),
                ([], []) => {
                    return Err(invalid(vec![problem(
                        "org_unit",
                        "name the organisation unit whose cases are handed over",
                    )]));
                }
                ([], _) => return Err(outside(principal, &from.org_units.join(", "))),
                (_, _) => {
                    return Err(invalid(vec![problem(
                        "org_unit",
                        &format!(
                            "`{}` works for several units ({}): name one",
                            from.login,
                            from.org_units.join(", ")
                        ),
                    )]));
                }
            }
        }
    };
    if !principal.sees_unit(Some(&unit)) {
        return Err(outside(principal, &unit));
    }
    if !in_unit(from, &unit) {
        return Err(invalid(vec![problem(
            "from",
            &format!(
                "`{}` is not of `{unit}` ({})",
                from.login,
                from.org_units.join(", ")
            ),
        )]));
    }
    Ok(unit)
}

/// Is the account of `unit` (an account of no unit is of every one)?
fn in_unit(user: &UserRecord, unit: &str) -> bool {
    user.org_units.is_empty() || user.org_units.iter().any(|u| u == unit)
}

fn outside(principal: &Principal, unit: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{} may not reassign cases of `{unit}`: it acts for {} only",
        principal.who(),
        principal.org_units.join(", ")
    ))
}

fn person(user: &UserRecord) -> Person {
    Person {
        key: format!("user:{}", user.id),
        login: user.login.clone(),
        name: user.name.clone(),
    }
}

fn problem(field: &str, message: &str) -> Value {
    json!({"field": field, "message": message})
}

fn invalid(problems: Vec<Value>) -> ApiError {
    let each: Vec<String> = problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["field"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    ApiError::unprocessable(
        "invalid_request",
        format!("the reassignment has problems: {}", each.join("; ")),
        json!({ "problems": problems }),
    )
}
