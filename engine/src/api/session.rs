//! Sessions of people signed in with a password: signing in (`POST /session`), out (`DELETE
//! /session`), changing one's password (`POST /session/password`), and what the access layer
//! asks of a request that carries the session cookie instead of a token.
//!
//! A session is a row (`sessions`) read on every request of every server, so signing out, a
//! disabled account or a password reset counts everywhere at once; a token's request reads
//! nothing of it. The cookie holds a random secret, the row its SHA-256. A state-changing
//! request of a session carries the session's CSRF token in `X-CSRF-Token`, and an `Origin`
//! that is the server's own (when it sends one): a page of another site cannot make a
//! signed-in browser act.

use super::access::{ClientAddress, Credential};
use super::dto::*;
use super::{ApiError, ApiJson, ApiState, ErrorBody};
use crate::accounts::{self, SignInResult};
use crate::auth::{Principal, PrincipalKind, Role};
use crate::store::accounts::{SessionLookup, UserRecord};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A session's last use is written at most this often (not on every request).
const TOUCH_EVERY_MILLIS: i64 = 60_000;

const SIGN_IN_PATH: &str = "/api/v1/session";
const PASSWORD_PATH: &str = "/api/v1/session/password";

/// `POST /api/v1/session`: needs no caller.
pub(super) fn is_sign_in(method: &Method, path: &str) -> bool {
    method == Method::POST && path == SIGN_IN_PATH
}

/// The session secret of the request's cookies, if it has one.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(accounts::session_cookie)
        .map(str::to_string)
}

/// The person whose session cookie holds `secret`, for a request of theirs: the session open
/// and within its idle timeout and lifetime, its CSRF token on a state-changing request, and,
/// while the password is a one-time one, only the calls that change it or sign out.
pub(crate) async fn principal(
    state: &ApiState,
    secret: &str,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(Principal, i64, Credential), ApiError> {
    let changes_password = (method == Method::POST && path == PASSWORD_PATH)
        || (method == Method::DELETE && path == SIGN_IN_PATH);
    let (principal, generation, credential, _) =
        principal_and_csrf(state, secret, method, headers, changes_password).await?;
    Ok((principal, generation, credential))
}

/// [`principal`], with the session's CSRF token (the workbench's pages carry it in their
/// forms and in htmx's headers). `changes_password`: the request changes the password or
/// signs out, which a one-time password allows.
pub(crate) async fn principal_and_csrf(
    state: &ApiState,
    secret: &str,
    method: &Method,
    headers: &HeaderMap,
    changes_password: bool,
) -> Result<(Principal, i64, Credential, String), ApiError> {
    let id = accounts::session_id(secret);
    let found = open_session(state, &id).await?;
    let now = state.engine.clock().now();
    if now.timestamp_millis() - found.last_seen_at >= TOUCH_EVERY_MILLIS {
        state.accounts.touch_session(&id, now).await?;
    }
    if state_changing(method) {
        same_origin(headers)?;
        let sent = headers
            .get(accounts::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !accounts::constant_time_eq(sent, &found.csrf_token) {
            return Err(ApiError::forbidden_as(
                "csrf_refused",
                format!(
                    "a {method} of a session must carry the session's CSRF token in the header \
                     `X-CSRF-Token` (`csrf_token` of the sign-in's answer); {}",
                    if sent.is_empty() {
                        "this one has none"
                    } else {
                        "this one is not it"
                    }
                ),
            ));
        }
    }
    if found.user.must_change_password && !changes_password {
        return Err(ApiError::forbidden_as(
            "password_change_required",
            "the password is a one-time one: set your own first \
             (POST /api/v1/session/password with {\"current\", \"new\"}); until then no other \
             call is allowed",
        ));
    }
    let generation = found.generation;
    let csrf = found.csrf_token;
    let principal = user_principal(found.user);
    let principal = super::access::role_duties(state, generation)
        .await?
        .apply(principal);
    Ok((principal, generation, Credential::Session(id), csrf))
}

/// Whether the session `id` still counts (a request that waited looks again): 401 if not.
pub(super) async fn still_open(state: &ApiState, id: &str) -> Result<(), ApiError> {
    open_session(state, id).await.map(|_| ())
}

/// The session `id`, open: 401 `session_ended` when it is unknown, ended, its account
/// disabled, or past its idle timeout or lifetime (then it is ended here).
async fn open_session(state: &ApiState, id: &str) -> Result<SessionLookup, ApiError> {
    let ended = |why: String| {
        ApiError::unauthorized_as(
            "session_ended",
            format!("{why}; sign in again (POST /api/v1/session)"),
        )
    };
    let Some(found) = state.accounts.session(id).await? else {
        return Err(ended("the session is unknown".into()));
    };
    let now = state.engine.clock().now();
    let at = now.timestamp_millis();
    if let Some(end) = found.ended_at {
        return Err(ended(format!(
            "the session ended at {}",
            readable(state, end)
        )));
    }
    if found.user.disabled_at.is_some() {
        return Err(ended("the account is disabled".into()));
    }
    let config = &state.config;
    let expired = if at - found.created_at >= millis(config.session_lifetime) {
        Some(format!(
            "the session ended {} after its sign-in (its longest life)",
            span(config.session_lifetime)
        ))
    } else if at - found.last_seen_at >= millis(config.session_idle) {
        Some(format!(
            "the session ended after {} without use",
            span(config.session_idle)
        ))
    } else {
        None
    };
    if let Some(why) = expired {
        state.accounts.end_session(id, now).await?;
        return Err(ended(why));
    }
    Ok(found)
}

/// The principal of a signed-in person: roles and units as a token's, duties applied later.
fn user_principal(user: UserRecord) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: user.id,
        name: user.name,
        // Roles were checked when they were set; an unreadable one grants nothing.
        roles: user
            .roles
            .iter()
            .filter_map(|r| Role::parse(r).ok())
            .collect(),
        org_units: user.org_units,
        oversees: false,
        informs_subject: false,
        only_oversees: false,
        reassigns: Vec::new(),
    }
}

fn state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// A request that names its origin must come from this server's own pages: the `Origin`'s
/// host and port are the `Host` the request was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .map(|rest| rest.split('/').next().unwrap_or(""));
    match origin_host {
        Some(o) if !host.is_empty() && o.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(ApiError::forbidden_as(
            "csrf_refused",
            format!(
                "the request comes from a page of `{origin}`, not of this server (`{host}`); a \
                 session's calls are taken from the server's own pages only (behind a proxy, \
                 pass the original `Host` on)"
            ),
        )),
    }
}

/// Sign in with a login and a password. Sets the cookie `yimen_session` (HttpOnly,
/// SameSite=Lax) and answers the CSRF token the session's state-changing calls carry. After
/// 5 failed sign-ins in a row a login is locked for 15 minutes (429), whether an account has
/// it or not. Every attempt is recorded (`GET /sign-ins`).
#[utoipa::path(post, path = "/session", tag = "session", operation_id = "sign_in", security(()),
    request_body = SignInBody,
    responses((status = 200, body = SessionInfo,
            headers(("set-cookie" = String, description = "`yimen_session=…; HttpOnly; SameSite=Lax; Path=/`"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn sign_in(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let signed = password_sign_in(&state, &body.login, body.password, address).await?;
    let info = SessionInfo {
        must_change_password: signed.user.must_change_password,
        user: signed.user.into(),
        csrf_token: signed.csrf,
        expires_at: signed
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        idle_timeout_seconds: state.config.session_idle.as_secs(),
    };
    Ok(with_cookie(ApiJson(info).into_response(), &signed.cookie))
}

/// A person signed in with their password: the account, the new session's CSRF token, the
/// `Set-Cookie` value that carries it, and when it ends at the latest.
pub(crate) struct SignedIn {
    pub user: UserRecord,
    pub csrf: String,
    pub cookie: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks `login` and `password` as `POST /session` and the workbench's sign-in page do: the
/// lock after failed sign-ins (unknown logins alike, as slow), a disabled account, every
/// attempt recorded; on success a new session. The caller checks the request's origin.
pub(crate) async fn password_sign_in(
    state: &ApiState,
    login: &str,
    password: String,
    address: Option<std::net::IpAddr>,
) -> Result<SignedIn, ApiError> {
    let login = accounts::normalize_login(login);
    let now = state.engine.clock().now();
    let from = address.map(|a| a.to_string());
    let record = |result: SignInResult| {
        state
            .accounts
            .record_sign_in(&login, from.as_deref(), result, now)
    };
    let failed = || {
        if let Some(address) = address {
            state.failures.failed(address);
        }
    };
    let Some(found) = state.accounts.credentials(&login).await? else {
        // Answered as an account's would be: the same lock, the same time spent hashing.
        let countable = accounts::login_problem(&login).is_none();
        if countable && let Some(until) = state.accounts.unknown_login_locked(&login, now).await? {
            record(SignInResult::Locked).await?;
            return Err(locked(state, until, now));
        }
        hashing(state, move || accounts::verify_nothing(&password)).await?;
        record(SignInResult::UnknownLogin).await?;
        failed();
        let until = if countable {
            state
                .accounts
                .unknown_login_failed(
                    &login,
                    now,
                    accounts::MAX_FAILED_SIGN_INS,
                    accounts::LOCKOUT,
                )
                .await?
        } else {
            None
        };
        return Err(match until {
            Some(until) => locked(state, until, now),
            None => wrong(),
        });
    };
    let user = found.user;
    if let Some(until) = user.locked_until.filter(|&t| t > now.timestamp_millis()) {
        record(SignInResult::Locked).await?;
        return Err(locked(state, until, now));
    }
    let stored = found.password_hash;
    if !hashing(state, move || accounts::verify_password(&password, &stored)).await? {
        record(SignInResult::BadPassword).await?;
        failed();
        let until = state
            .accounts
            .sign_in_failed(
                &user.id,
                now,
                accounts::MAX_FAILED_SIGN_INS,
                accounts::LOCKOUT,
            )
            .await?;
        return Err(match until {
            Some(until) => locked(state, until, now),
            None => wrong(),
        });
    }
    if user.disabled_at.is_some() {
        record(SignInResult::Disabled).await?;
        return Err(ApiError::forbidden_as(
            "account_disabled",
            "this account is disabled; ask an administrator",
        ));
    }
    if user.failed_count > 0 || user.locked_until.is_some() {
        state.accounts.sign_in_succeeded(&user.id).await?;
    }
    let session = accounts::new_session();
    state.accounts.open_session(&user.id, &session, now).await?;
    record(SignInResult::Ok).await?;
    let lifetime = state.config.session_lifetime;
    let cookie = accounts::set_cookie(
        &session.secret,
        i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        state.config.secure_cookies,
    );
    Ok(SignedIn {
        user,
        csrf: session.csrf,
        cookie,
        expires_at: now + chrono::Duration::milliseconds(millis(lifetime)),
    })
}

/// Sign out: the session ends, on every server at once, and its cookie is cleared.
#[utoipa::path(delete, path = "/session", tag = "session", operation_id = "sign_out",
    responses((status = 200, body = SignedOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn sign_out(
    State(state): State<ApiState>,
    Extension(credential): Extension<Credential>,
) -> Result<Response, ApiError> {
    let Credential::Session(id) = credential else {
        return Err(not_a_session());
    };
    let now = state.engine.clock().now();
    state.accounts.end_session(&id, now).await?;
    let cookie = accounts::set_cookie("", 0, state.config.secure_cookies);
    let answer = ApiJson(SignedOut {
        ended_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    Ok(with_cookie(answer.into_response(), &cookie))
}

/// Change one's own password (the one-time one first of all). The new one has at least 10
/// characters; the person's other sessions end.
#[utoipa::path(post, path = "/session/password", tag = "session", operation_id = "change_password",
    request_body = PasswordBody,
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn change_password(
    State(state): State<ApiState>,
    Extension(credential): Extension<Credential>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<ApiJson<UserInfo>, ApiError> {
    let Credential::Session(session) = credential else {
        return Err(not_a_session());
    };
    let changed =
        change_own_password(&state, &principal, &session, &body.current, body.new).await?;
    Ok(ApiJson(changed.into()))
}

/// Changes the password of the person of `session` from `current` to `new` (at least 10
/// characters, not the login, not the current one), as `POST /session/password` and the
/// workbench's password page do; the person's other sessions end.
pub(crate) async fn change_own_password(
    state: &ApiState,
    principal: &Principal,
    session: &str,
    current: &str,
    new: String,
) -> Result<UserRecord, ApiError> {
    let now = state.engine.clock().now();
    let user = state
        .accounts
        .by_id(&principal.id)
        .await?
        .ok_or_else(|| ApiError::unauthorized_as("session_ended", "the account is gone"))?;
    let found = state
        .accounts
        .credentials(&user.login)
        .await?
        .ok_or_else(|| ApiError::unauthorized_as("session_ended", "the account is gone"))?;
    if let Some(until) = user.locked_until.filter(|&t| t > now.timestamp_millis()) {
        return Err(locked(state, until, now));
    }
    let (given, stored) = (current.to_string(), found.password_hash);
    if !hashing(state, move || accounts::verify_password(&given, &stored)).await? {
        let until = state
            .accounts
            .sign_in_failed(
                &user.id,
                now,
                accounts::MAX_FAILED_SIGN_INS,
                accounts::LOCKOUT,
            )
            .await?;
        if let Some(until) = until {
            return Err(locked(state, until, now));
        }
        return Err(invalid_password("current", "is not your password now"));
    }
    if let Some(why) = accounts::password_problem(&new, &user.login) {
        return Err(invalid_password("new", &why));
    }
    if new == current {
        return Err(invalid_password(
            "new",
            "is the password you have now; choose another",
        ));
    }
    let hash = hashing(state, move || accounts::hash_password(&new))
        .await?
        .map_err(ApiError::internal)?;
    state
        .accounts
        .set_password(&user.login, &hash, false, Some(session), now)
        .await?
        .ok_or_else(|| ApiError::unauthorized_as("session_ended", "the account is gone"))
}

/// Runs password hashing off the async threads, a few at a time ([`ApiState::hashing`]).
pub(super) async fn hashing<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _turn = state
        .hashing
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

/// The answer to a wrong login or password: the same whether an account has the login.
fn wrong() -> ApiError {
    ApiError::unauthorized_as(
        "sign_in_failed",
        format!(
            "the login or the password is wrong; after {} failed sign-ins in a row the login is \
             locked for {} minutes",
            accounts::MAX_FAILED_SIGN_INS,
            accounts::LOCKOUT.num_minutes()
        ),
    )
}

fn locked(state: &ApiState, until: i64, now: DateTime<Utc>) -> ApiError {
    let retry_after = u64::try_from((until - now.timestamp_millis() + 999) / 1000).unwrap_or(1);
    ApiError::TooManyRequests {
        code: "sign_in_locked",
        message: format!(
            "too many failed sign-ins in a row: this login is locked until {}; try again then, \
             or ask an administrator to reset the password (`yimen user reset-password LOGIN`)",
            readable(state, until)
        ),
        retry_after,
    }
}

fn not_a_session() -> ApiError {
    ApiError::forbidden(
        "this call is for a person signed in (POST /api/v1/session); a token has no session \
         or password (revoke a token with `yimen token revoke`)",
    )
}

fn invalid_password(field: &str, message: &str) -> ApiError {
    ApiError::unprocessable(
        "invalid_request",
        format!("{field}: {message}"),
        serde_json::json!({ "problems": [{ "field": field, "message": message }] }),
    )
}

pub(crate) fn with_cookie(mut response: Response, cookie: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Unix milliseconds as people read them, in the calendar's zone.
fn readable(state: &ApiState, millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|t| crate::clock::readable(&t.with_timezone(&state.engine.time_zone())))
        .unwrap_or_else(|| millis.to_string())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `30 minutes`, `12 hours`, `90 seconds`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) && s >= 3600 {
        format!("{} hours", s / 3600)
    } else if s.is_multiple_of(60) && s >= 60 {
        format!("{} minutes", s / 60)
    } else {
        format!("{s} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_origin_must_be_the_host() {
        assert!(same_origin(&headers(&[("host", "a.example:8080")])).is_ok());
        assert!(
            same_origin(&headers(&[
                ("host", "a.example:8080"),
                ("origin", "http://a.example:8080")
            ]))
            .is_ok()
        );
        for bad in ["https://evil.example", "null", "http://a.example"] {
            let refused = same_origin(&headers(&[("host", "a.example:8080"), ("origin", bad)]));
            assert_eq!(
                refused.map_err(|e| e.body().error.code),
                Err("csrf_refused".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(span(Duration::from_secs(12 * 3600)), "12 hours");
        assert_eq!(span(Duration::from_secs(90)), "90 seconds");
    }
}
