//! Ledger export, health, the OpenAPI document, tokens and the record of refused calls.

use super::dto::*;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::{self, Principal, Role};
use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The electronic ledger (台账): every history entry in a time range, as JSON or CSV.
/// Admins and overseers (holders of a role a process declares `oversees`) only.
#[utoipa::path(get, path = "/ledger", tag = "ledger", operation_id = "export_ledger",
    params(LedgerQuery),
    responses((status = 200, description = "the entries: JSON, or CSV with `format=csv`",
            content((LedgerEntries = "application/json"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn ledger(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> Result<Response, ApiError> {
    if !principal.is_overseer() {
        return Err(ApiError::forbidden(
            "the ledger is for admin tokens and the roles a process declares `oversees`",
        ));
    }
    let (from, to) = crate::ledger::range(
        query.from.as_deref(),
        query.to.as_deref(),
        state.engine.time_zone(),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let entries = state.engine.ledger_export(from, to).await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(ApiJson(LedgerEntries { entries }).into_response()),
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::ledger::to_csv(&entries),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "unknown format `{other}`: use json or csv"
        ))),
    }
}

/// Is the server up and its database reachable? Needs no token.
#[utoipa::path(get, path = "/health", tag = "meta", operation_id = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(super) async fn health(State(state): State<ApiState>) -> (StatusCode, ApiJson<Health>) {
    let database = state.engine.store().kind();
    let ok = state.tokens.count().await.is_ok();
    let health = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: database.into(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, ApiJson(health))
}

/// This document. Needs no token.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = OpenApiDocument)))]
pub(super) async fn openapi_json() -> Response {
    ApiJson(super::openapi()).into_response()
}

/// Create a token (admin only). The secret is in this answer only; it is stored hashed.
#[utoipa::path(post, path = "/tokens", tag = "tokens", operation_id = "create_token",
    request_body = TokenBody,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, ApiJson<TokenCreated>), ApiError> {
    require_admin(&principal, "create tokens")?;
    let mut problems = Vec::new();
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        problems.push(
            serde_json::json!({"field": "name", "message": "give a name of 1 to 100 characters"}),
        );
    } else if let Some(why) = crate::engine::text_problem(name, 100) {
        problems.push(serde_json::json!({"field": "name", "message": why}));
    }
    for (i, unit) in body.org_units.iter().enumerate() {
        if let Some(why) = crate::engine::text_problem(unit, 128) {
            problems.push(serde_json::json!({"field": format!("org_units/{i}"), "message": why}));
        }
    }
    let roles = match Role::parse_list(&body.roles.join(",")) {
        Ok(roles) => roles,
        Err(message) => {
            problems.push(serde_json::json!({"field": "roles", "message": message.to_string()}));
            Vec::new()
        }
    };
    let org_units: Vec<String> = body
        .org_units
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "the token request has problems; see details.problems",
            serde_json::json!({ "problems": problems }),
        ));
    }
    if state.tokens.find_by_name(name).await?.is_some() {
        return Err(ApiError::conflict(
            "conflict",
            format!(
                "an active token is already named `{name}`; revoke it first or pick another name"
            ),
        ));
    }
    let token = auth::generate_token();
    let now = state.engine.clock().now();
    let info = state
        .tokens
        .create(name, &roles, &org_units, &token.hash, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(TokenCreated {
            info: info.into(),
            token: token.plain,
        }),
    ))
}

/// Every token, active and revoked (admin only). Secrets are never shown.
#[utoipa::path(get, path = "/tokens", tag = "tokens", operation_id = "list_tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_tokens(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<ApiJson<TokenList>, ApiError> {
    require_admin(&principal, "list tokens")?;
    Ok(ApiJson(TokenList {
        tokens: state
            .tokens
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Revoke a token by name or id (admin only); it stops working at once on this server.
#[utoipa::path(post, path = "/tokens/{name_or_id}/revoke", tag = "tokens", operation_id = "revoke_token",
    params(("name_or_id" = String, Path, description = "the token's name or id")),
    responses((status = 200, body = TokenInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(name_or_id): ApiPath<String>,
) -> Result<ApiJson<TokenInfo>, ApiError> {
    require_admin(&principal, "revoke tokens")?;
    let now = state.engine.clock().now();
    let revoked = state.tokens.revoke(&name_or_id, now).await?;
    state.cache.clear();
    match revoked {
        Some(info) => Ok(ApiJson(info.into())),
        None => Err(ApiError::not_found(format!(
            "no active token named or numbered `{name_or_id}`; `yimen token list` shows them"
        ))),
    }
}

/// Refused calls (401, 403), newest first (admins and overseers).
#[utoipa::path(get, path = "/refusals", tag = "tokens", operation_id = "list_refusals",
    responses((status = 200, body = RefusalList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn refusals(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<ApiJson<RefusalList>, ApiError> {
    if !principal.is_overseer() {
        return Err(ApiError::forbidden(
            "refused calls are for admin tokens and the roles a process declares `oversees`",
        ));
    }
    Ok(ApiJson(RefusalList {
        refusals: state
            .tokens
            .refusals(500)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Reads of cases' personal data unmasked (`GET /instances/{id}?unmasked=true`): who (the
/// principal and its token), when, which case, from which address; newest first, a page at a
/// time (admin only).
#[utoipa::path(get, path = "/personal-data-reads", tag = "tokens", operation_id = "list_personal_data_reads",
    params(PersonalDataReadsQuery),
    responses((status = 200, body = PersonalDataReadList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn personal_data_reads(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<PersonalDataReadsQuery>,
) -> Result<ApiJson<PersonalDataReadList>, ApiError> {
    require_admin(&principal, "read the trail of personal data read unmasked")?;
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request("`page` counts from 1"));
    }
    let page_size = query.page_size.unwrap_or(20);
    if page_size == 0 || page_size > crate::engine::MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "`page_size` is 1 to {}; ask for the next `page` for more",
            crate::engine::MAX_PAGE_SIZE
        )));
    }
    let instance = query
        .instance
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty());
    let (reads, total) = state
        .engine
        .personal_data_reads(instance, page, page_size)
        .await?;
    Ok(ApiJson(PersonalDataReadList {
        reads,
        total,
        page,
        page_size,
    }))
}

fn require_admin(principal: &Principal, what: &str) -> Result<(), ApiError> {
    if principal.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only an admin token may {what}"
        )))
    }
}

pub(super) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; GET /openapi.json lists every route",
        uri.path()
    ))
}

pub(super) async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    ApiError::MethodNotAllowed {
        message: format!(
            "{} does not accept {method}; GET /openapi.json lists every route",
            uri.path()
        ),
    }
    .into_response()
}
