//! Authentication (bearer tokens) and the record of refused calls.

use super::{ApiError, ApiState};
use crate::auth::{self, Principal};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Principals by token hash, each with the moment it was looked up.
#[derive(Clone, Default)]
pub(crate) struct TokenCache(Arc<Mutex<HashMap<String, (Principal, Instant)>>>);

impl TokenCache {
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Why a call was refused; put on the response by [`ApiError`] so the middleware can record it.
#[derive(Debug, Clone)]
pub(crate) struct RefusalReason(pub String);

/// Routes anyone may call.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/health" | "/api/v1/openapi.json" | "/openapi.json"
    ) || !path.starts_with("/api/v1/")
}

/// Resolves the bearer token to a [`Principal`] (put into the request's extensions) and records
/// every 401 and 403.
pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or("").to_string());
    let principal = match principal(&state, header.as_deref()).await {
        Ok(principal) => principal,
        Err(error) => {
            let response = error.into_response();
            let refusal = refusal(&response);
            record(&state, None, &method, &path, refusal).await;
            return response;
        }
    };
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    let refusal = refusal(&response);
    record(&state, Some(&principal), &method, &path, refusal).await;
    response
}

/// Status and reason of a 401 or 403.
fn refusal(response: &Response) -> Option<(u16, String)> {
    let status = response.status().as_u16();
    if status != 401 && status != 403 {
        return None;
    }
    let reason = response
        .extensions()
        .get::<RefusalReason>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Some((status, reason))
}

async fn principal(state: &ApiState, header: Option<&str>) -> Result<Principal, ApiError> {
    let token = auth::bearer(header).map_err(ApiError::unauthorized)?;
    let hash = auth::hash_token(token);
    {
        let cache = state.cache.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((principal, at)) = cache.get(&hash)
            && at.elapsed() < state.config.token_cache
        {
            return Ok(principal.clone());
        }
    }
    let found = state
        .tokens
        .find_active(&hash)
        .await
        .map_err(ApiError::internal)?;
    let Some(principal) = found else {
        return Err(ApiError::unauthorized(
            "the token is unknown or revoked; ask an administrator for a new one (`yimen token create`)",
        ));
    };
    let mut cache = state.cache.0.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(hash, (principal.clone(), Instant::now()));
    Ok(principal)
}

async fn record(
    state: &ApiState,
    principal: Option<&Principal>,
    method: &str,
    path: &str,
    refusal: Option<(u16, String)>,
) {
    let Some((status, reason)) = refusal else {
        return;
    };
    let now = state.engine.clock().now();
    if let Err(err) = state
        .tokens
        .record_refusal(principal, method, path, status, &reason, now)
        .await
    {
        tracing::error!("could not record a refused call: {err}");
    }
    tracing::info!(
        status,
        method,
        path,
        token = principal.map(|p| p.name.as_str()).unwrap_or("-"),
        "refused: {reason}"
    );
}

/// On first start with no token at all: creates an admin token and returns it (to be printed
/// once). `None` when tokens exist already.
pub async fn bootstrap_admin(state: &ApiState) -> Result<Option<String>, crate::EngineError> {
    if state.tokens.count().await? > 0 {
        return Ok(None);
    }
    let token = auth::generate_token();
    let now = state.engine.clock().now();
    state
        .tokens
        .create("admin", &[auth::Role::Admin], &[], &token.hash, now)
        .await?;
    Ok(Some(token.plain))
}
