//! Sign-in through the city's identity provider (`GET /oidc/login`, `GET /oidc/callback`),
//! beside the password sign-in of `api::session`: the provider's person gets an account of
//! this server it manages (no password) and the same server-side session.
//!
//! The state, nonce and PKCE verifier of a sign-in begun are rows (`oidc_logins`), so any
//! server sharing the database finishes it; a callback takes its row once. Every refusal is
//! a 4xx with a code of its own, recorded among the sign-ins as `oidc_failed`.

use super::access::ClientAddress;
use super::{ApiError, ApiQuery, ApiState, ErrorBody};
use crate::accounts::{self, SignInResult};
use crate::oidc::{self, OidcError, Provider};
use crate::store::accounts::{NewUser, OidcLogin};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

const LOGIN_PATH: &str = "/api/v1/oidc/login";
const CALLBACK_PATH: &str = "/api/v1/oidc/callback";

/// The provider's routes: they need no caller.
pub(super) fn is_oidc(path: &str) -> bool {
    path == LOGIN_PATH || path == CALLBACK_PATH
}

/// What the provider sends the browser back with.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state `GET /oidc/login` sent.
    pub state: Option<String>,
    /// The provider's error, when it did not sign the person in.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

fn provider(state: &ApiState) -> Result<Arc<Provider>, ApiError> {
    state.oidc.clone().ok_or_else(|| {
        ApiError::not_found(
            "this server signs in with passwords only (POST /api/v1/session): it was started \
             without `--oidc-issuer`",
        )
    })
}

/// Begin a sign-in at the city's identity provider: a redirect (302) to its authorization
/// endpoint, with a state, a nonce and a PKCE challenge kept for 10 minutes. 404 when the
/// server has no provider.
#[utoipa::path(get, path = "/oidc/login", tag = "session", operation_id = "oidc_login", security(()),
    responses((status = 302, description = "to the provider's authorization endpoint",
            headers(("location" = String, description = "the provider's authorization URL"))),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn login(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let provider = provider(&state)?;
    let now = state.engine.clock().now();
    let begun = OidcLogin {
        state: oidc::random_secret(),
        nonce: oidc::random_secret(),
        verifier: oidc::random_secret(),
        expires_at: (now + oidc::LOGIN_EXPIRY).timestamp_millis(),
    };
    state.accounts.begin_oidc_login(&begun, now).await?;
    let url = provider.authorize_url(&begun.state, &begun.nonce, &begun.verifier);
    let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Finish a sign-in at the provider: the code is exchanged for an ID token, which must be
/// signed by the provider (RS256 or ES256), issued for this server, unexpired and carry the
/// sign-in's nonce. The person's account (managed by the provider: no password) is made or
/// updated from its claims, the session cookie set as by `POST /session`, and the browser
/// sent to `/` (303). Refusals are recorded among the sign-ins as `oidc_failed`.
#[utoipa::path(get, path = "/oidc/callback", tag = "session", operation_id = "oidc_callback", security(()),
    params(CallbackQuery),
    responses((status = 303, description = "signed in: to `/`",
            headers(("set-cookie" = String, description = "`yimen_session=…; HttpOnly; SameSite=Lax; Path=/`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn callback(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> Result<Response, ApiError> {
    let provider = provider(&state)?;
    let now = state.engine.clock().now();
    let from = address.map(|a| a.to_string());
    let mut login = String::from("(oidc)");
    match finish(&state, &provider, query, &mut login).await {
        Ok(response) => {
            state
                .accounts
                .record_sign_in(&login, from.as_deref(), SignInResult::Oidc, now)
                .await?;
            Ok(response)
        }
        Err(refused) => {
            if !matches!(
                refused,
                ApiError::Internal { .. } | ApiError::Unavailable { .. }
            ) {
                state
                    .accounts
                    .record_sign_in(&login, from.as_deref(), SignInResult::OidcFailed, now)
                    .await?;
                if let Some(address) = address {
                    state.failures.failed(address);
                }
            }
            Err(refused)
        }
    }
}

async fn finish(
    state: &ApiState,
    provider: &Provider,
    query: CallbackQuery,
    login: &mut String,
) -> Result<Response, ApiError> {
    let refused = |code: &'static str, why: String| {
        ApiError::unauthorized_as(
            code,
            format!("{why}; sign in again (GET /api/v1/oidc/login)"),
        )
    };
    if let Some(error) = query.error {
        let said = query.error_description.unwrap_or_default();
        return Err(refused(
            "oidc_provider_error",
            format!("the identity provider did not sign you in: {error} {said}")
                .trim_end()
                .to_string(),
        ));
    }
    let (Some(code), Some(sent_state)) = (query.code, query.state) else {
        return Err(refused(
            "oidc_state_invalid",
            "the callback needs `code` and `state` from the identity provider".into(),
        ));
    };
    let Some(begun) = state.accounts.take_oidc_login(&sent_state).await? else {
        return Err(refused(
            "oidc_state_invalid",
            "the state names no sign-in begun here (or one already finished)".into(),
        ));
    };
    let now = state.engine.clock().now();
    if begun.expires_at <= now.timestamp_millis() {
        return Err(refused(
            "oidc_state_expired",
            format!(
                "the sign-in was begun more than {} minutes ago",
                oidc::LOGIN_EXPIRY.num_minutes()
            ),
        ));
    }
    let claims = async {
        let token = provider.exchange(&code, &begun.verifier).await?;
        let claims = provider.verify(&token, &begun.nonce).await?;
        provider.identity(&claims)
    };
    let identity = claims.await.map_err(|e| {
        let code = match &e {
            OidcError::Exchange(_) => "oidc_exchange_failed",
            OidcError::Claims(_) => "oidc_claims_invalid",
            OidcError::Token(_) | OidcError::Setup { .. } => "oidc_token_invalid",
        };
        refused(code, e.to_string())
    })?;
    login.clone_from(&identity.login);
    let new = NewUser {
        login: &identity.login,
        name: &identity.name,
        roles: &identity.roles,
        org_units: &identity.org_units,
        password_hash: "",
    };
    let user = state
        .accounts
        .upsert_external(&identity.subject, &new, now)
        .await
        .map_err(|e| match e {
            crate::error::EngineError::Conflict { why } => ApiError::conflict(
                "oidc_login_taken",
                format!("{why}; an administrator can rename or disable that account"),
            ),
            other => other.into(),
        })?;
    if user.disabled_at.is_some() {
        return Err(ApiError::forbidden_as(
            "account_disabled",
            "this account is disabled; ask an administrator",
        ));
    }
    let session = accounts::new_session();
    state.accounts.open_session(&user.id, &session, now).await?;
    let lifetime = state.config.session_lifetime;
    let cookie = accounts::set_cookie(
        &session.secret,
        i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        state.config.secure_cookies,
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
