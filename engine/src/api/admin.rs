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

/// Create a token (admin only). The secret is in this answer only; it is stored hashed. With
/// `expires_in` it stops working after that long (answering 401 `token_expired`); a token of
/// an automated worker should have one and be rotated (`POST /tokens/{name}/rotate`).
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
    let lifetime = span(
        "expires_in",
        body.expires_in.as_deref(),
        MIN_LIFETIME,
        &mut problems,
    );
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
                "a token named `{name}` exists (expired or not); give it a new secret with \
                 `yimen token rotate {name}`, revoke it first, or pick another name"
            ),
        ));
    }
    let token = auth::generate_token();
    let now = state.engine.clock().now();
    let info = state
        .tokens
        .create(
            name,
            &roles,
            &org_units,
            &token.hash,
            now,
            lifetime.map(|span| now + span),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(TokenCreated {
            info: TokenInfo::of(info, now.timestamp_millis(), state.engine.time_zone()),
            token: token.plain,
        }),
    ))
}

/// The shortest lifetime a token may be given.
const MIN_LIFETIME: chrono::Duration = chrono::Duration::minutes(1);
/// The longest overlap of a rotation: a worker switches to the new secret in minutes.
const MAX_OVERLAP: chrono::Duration = chrono::Duration::days(7);

/// Reads the time span of `field` (`90d`, `12h`, `30m`), at least `min`; a problem otherwise.
fn span(
    field: &str,
    text: Option<&str>,
    min: chrono::Duration,
    problems: &mut Vec<serde_json::Value>,
) -> Option<chrono::Duration> {
    let mut problem = |message: String| {
        problems.push(serde_json::json!({"field": field, "message": message}));
        None
    };
    match auth::parse_span(text?) {
        Ok(span) if span < min => {
            problem(format!("must be at least {} minute(s)", min.num_minutes()))
        }
        Ok(span) => Some(span),
        Err(e) => problem(e.to_string()),
    }
}

/// Give a token a new secret (admin only): a new token of the same name, roles and
/// organisation units replaces it, its secret in this answer only. The old secret stops
/// working at once, or after `overlap` (both work meanwhile, so that a worker can switch). An
/// expired token may be rotated; the new one works as long as `expires_in` says, or as long as
/// the old one was made to.
#[utoipa::path(post, path = "/tokens/{name_or_id}/rotate", tag = "tokens", operation_id = "rotate_token",
    params(("name_or_id" = String, Path, description = "the token's name or id")),
    request_body = RotateBody,
    responses((status = 201, body = TokenRotated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn rotate_token(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(name_or_id): ApiPath<String>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<(StatusCode, ApiJson<TokenRotated>), ApiError> {
    require_admin(&principal, "rotate tokens")?;
    let mut problems = Vec::new();
    let lifetime = span(
        "expires_in",
        body.expires_in.as_deref(),
        MIN_LIFETIME,
        &mut problems,
    );
    let overlap = span(
        "overlap",
        body.overlap.as_deref(),
        chrono::Duration::zero(),
        &mut problems,
    );
    if overlap.is_some_and(|o| o > MAX_OVERLAP) {
        problems.push(serde_json::json!({"field": "overlap",
            "message": "must be at most 7d: the old secret is for the switch to the new one"}));
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "the rotation request has problems; see details.problems",
            serde_json::json!({ "problems": problems }),
        ));
    }
    let token = auth::generate_token();
    let now = state.engine.clock().now();
    let old_until = now + overlap.unwrap_or_else(chrono::Duration::zero);
    let rotated = state
        .tokens
        .rotate(&name_or_id, &token.hash, now, old_until, |old| {
            match lifetime {
                Some(span) => Some(now + span),
                // As long as the old one was made to work.
                None => old
                    .expires_at
                    .map(|at| now + chrono::Duration::milliseconds(at - old.created_at)),
            }
        })
        .await?;
    state.cache.clear();
    let Some(rotated) = rotated else {
        return Err(ApiError::not_found(format!(
            "no token named or numbered `{name_or_id}` that is not revoked; `yimen token list` \
             shows them, `yimen token create` makes a new one"
        )));
    };
    let (at, tz) = (now.timestamp_millis(), state.engine.time_zone());
    Ok((
        StatusCode::CREATED,
        ApiJson(TokenRotated {
            info: TokenInfo::of(rotated.new, at, tz),
            token: token.plain,
            replaced: TokenInfo::of(rotated.old, at, tz),
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
    let now = state.engine.clock().now().timestamp_millis();
    let tz = state.engine.time_zone();
    Ok(ApiJson(TokenList {
        tokens: state
            .tokens
            .list()
            .await?
            .into_iter()
            .map(|r| TokenInfo::of(r, now, tz))
            .collect(),
    }))
}

/// Revoke a token by name or id (admin only); it stops working at once on every server. By
/// name during a rotation's overlap, the new secret and the old one both stop; by the old
/// one's id, only the old one (the overlap ends now).
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
        Some(info) => Ok(ApiJson(TokenInfo::of(
            info,
            now.timestamp_millis(),
            state.engine.time_zone(),
        ))),
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
    let tz = state.engine.time_zone();
    Ok(ApiJson(RefusalList {
        refusals: state
            .tokens
            .refusals(500)
            .await?
            .into_iter()
            .map(|r| Refusal::of(r, tz))
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
    let (page, page_size) = paging(query.page, query.page_size)?;
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
