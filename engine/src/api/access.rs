//! Authentication (bearer tokens, and sessions through `session`) and the record of refused
//! calls.

use super::{ApiError, ApiState};
use crate::auth::{self, Lapsed, Principal, RoleDuties, StartRoles, TokenValidity};
use crate::store::tokens::TokenLookup;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Principals by token hash, each with until when its token works (compared with the clock on
/// every request: an expired token is refused though cached) and the moment it was looked up,
/// valid while the access generation (bumped by every revocation, rotation and new deployment,
/// on any server) is the one they were read under.
#[derive(Clone, Default)]
pub(crate) struct TokenCache {
    tokens: Arc<Mutex<CachedTokens>>,
    /// Reads of the generation, shared between requests.
    reads: Arc<GenerationReads>,
}

#[derive(Default)]
pub(crate) struct CachedTokens {
    generation: i64,
    principals: HashMap<String, (Principal, TokenValidity, Instant)>,
    /// What the deployed processes let roles do, read under `generation` (a new deployment
    /// bumps it).
    duties: Option<Arc<RoleDuties>>,
}

/// Reads of the access generation, one at a time, each shared by every request that arrived
/// before it began. A request must see the generation as it was at its arrival or later (a
/// revocation committed before it arrived must count), so a read already under way when it
/// arrived does not do: it waits for the next one, which also serves every other request
/// that arrived meanwhile. Under load, one read serves a wave of requests instead of each
/// reading the row itself (every request did, 1,259 reads for 1,000 cases of `yimen bench`:
/// on PostgreSQL as many statements as half the committers'). SQLite in a file skips this:
/// there a request reads the row itself, on its own thread (`store::sqlite_readers`).
#[derive(Default)]
pub(crate) struct GenerationReads {
    /// Held by the request reading; the others queue here.
    reading: tokio::sync::Mutex<()>,
    /// Reads begun so far.
    begun: std::sync::atomic::AtomicU64,
    /// The last finished read: its number (from 1) and value.
    last: Mutex<(u64, i64)>,
}

impl GenerationReads {
    /// The generation as it was when this was called, or later.
    pub(crate) async fn get<F, Fut>(&self, read: F) -> Result<i64, crate::error::EngineError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<i64, crate::error::EngineError>>,
    {
        use std::sync::atomic::Ordering::SeqCst;
        // Reads numbered above this began after this call.
        let arrived = self.begun.load(SeqCst);
        let _turn = self.reading.lock().await;
        let (number, value) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if number > arrived {
            return Ok(value);
        }
        let number = self.begun.fetch_add(1, SeqCst) + 1;
        let value = read().await?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (number, value);
        Ok(value)
    }
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedTokens> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn clear(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .principals
            .clear();
    }
}

/// Who may start each process (its latest version), with the access generation it was read
/// under: a new deployment anywhere bumps the generation, so the rule is read again then.
#[derive(Clone, Default)]
pub(crate) struct StartRolesCache(Arc<Mutex<StartRulesByProcess>>);

/// Process key → (access generation read under, rule).
type StartRulesByProcess = HashMap<String, (i64, Arc<StartRoles>)>;

/// The access generation a request was authenticated under: read after it arrived (see
/// [`GenerationReads`]), so nothing revoked or deployed before its arrival is newer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessGeneration(pub(crate) i64);

/// Failed authentications (401) per client address in the current minute of each: once an
/// address has [`ApiConfig::auth_failures_per_minute`](super::ApiConfig) of them, its calls
/// answer 429 with `Retry-After` until its minute is over, without looking at their token.
#[derive(Clone, Default)]
pub(crate) struct AuthFailures(Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>);

const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl AuthFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds until `address` may try again, when it is over `limit`.
    pub(crate) fn blocked(&self, address: IpAddr, limit: u32) -> Option<u64> {
        let failures = self.lock();
        let (since, count) = failures.get(&address)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= limit).then(|| left.as_secs() + 1)
    }

    pub(super) fn failed(&self, address: IpAddr) {
        let mut failures = self.lock();
        if failures.len() > 100_000 {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(address).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// What a request was authenticated with, for a handler that waits (a long-polling claim) to
/// look at it again before it acts, or that acts on the session itself (signing out).
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// A bearer token, by its hash, with until when it works.
    Token {
        hash: String,
        validity: TokenValidity,
    },
    /// A session cookie, by the session's id (the hash of its secret).
    Session(String),
}

/// The client's address (the TCP peer), when the server knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub(crate) Option<IpAddr>);

/// Whether what a request that has been waiting was authenticated with still counts: for a
/// token, it has not expired, and the access generation (bumped by every revocation) is still
/// `generation`, or the token, looked up again, still works (the generation is then moved on);
/// a session is looked up again. 401 when it was revoked, expired or ended meanwhile.
pub(crate) async fn still_valid(
    state: &ApiState,
    principal: &Principal,
    credential: &Credential,
    generation: &mut i64,
) -> Result<(), ApiError> {
    let (hash, validity) = match credential {
        Credential::Token { hash, validity } => (hash, validity),
        Credential::Session(id) => return super::session::still_open(state, id).await,
    };
    let now = state.engine.clock().now().timestamp_millis();
    if let Some(lapsed) = validity.lapsed(now) {
        return Err(lapsed_error(&principal.name, lapsed));
    }
    let current = state
        .tokens
        .generation()
        .await
        .map_err(ApiError::internal)?;
    if current == *generation {
        return Ok(());
    }
    match state.tokens.find(hash).await.map_err(ApiError::internal)? {
        Some(found) => match found.validity.lapsed(now) {
            None => {
                *generation = current;
                Ok(())
            }
            Some(lapsed) => Err(lapsed_error(&found.principal.name, lapsed)),
        },
        None => Err(ApiError::unauthorized(
            "the token was removed while this call waited; ask an administrator for a new one \
             (`yimen token create`)",
        )),
    }
}

/// The 401 of a token that no longer works: when it was revoked, or when it expired and how to
/// give it a new secret (`token_expired`).
pub(crate) fn lapsed_error(name: &str, lapsed: Lapsed) -> ApiError {
    let when = |at: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| at.to_string())
    };
    match lapsed {
        Lapsed::Revoked { at } => ApiError::unauthorized(format!(
            "the token `{name}` was revoked at {}; ask an administrator for a new one (`yimen token create`)",
            when(at)
        )),
        Lapsed::Expired { at } => ApiError::unauthorized_as(
            "token_expired",
            format!(
                "the token `{name}` expired at {}; an administrator gives it a new secret with \
                 `yimen token rotate {name}` (`POST /api/v1/tokens/{name}/rotate`), which the \
                 caller then uses",
                when(at)
            ),
        ),
    }
}

/// Why a call was refused; put on the response by [`ApiError`] so the middleware can record it.
#[derive(Debug, Clone)]
pub(crate) struct RefusalReason(pub String);

/// Routes anyone may call.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/api/v1/health" | "/api/v1/ready" | "/api/v1/openapi.json" | "/openapi.json"
    ) || !path.starts_with("/api/v1/")
}

/// Resolves the bearer token, or without one the session cookie, to a [`Principal`] (put into
/// the request's extensions) and records every 401 and 403. Signing in needs neither, but is
/// held to the limit of failed authentications of its address like the calls that do.
pub(crate) async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    request.extensions_mut().insert(ClientAddress(address));
    let signing_in =
        super::session::is_sign_in(request.method(), &path) || super::oidc::is_oidc(&path);
    if is_public(&path) && !signing_in {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let limit = state.config.auth_failures_per_minute;
    if let Some(address) = address
        && limit > 0
        && let Some(retry_after) = state.failures.blocked(address, limit)
    {
        tracing::debug!(%address, "refused: too many failed authentications");
        return ApiError::TooManyRequests {
            code: "too_many_requests",
            message: format!(
                "too many failed authentications from this address (at most {limit} a minute); \
                 try again in {retry_after} s with a valid token"
            ),
            retry_after,
        }
        .into_response();
    }
    if signing_in {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|h| h.to_str().unwrap_or("").to_string());
    let session = match &header {
        Some(_) => None,
        None => super::session::cookie_of(request.headers()),
    };
    let found = match session {
        Some(secret) => {
            let (method, headers) = (request.method(), request.headers());
            super::session::principal(&state, &secret, method, &path, headers)
                .await
                .map_err(Refused::from)
        }
        None => principal(&state, header.as_deref()).await,
    };
    let (principal, generation, credential) = match found {
        Ok(found) => found,
        Err(Refused { error, holder }) => {
            // A guess counts; a token that was issued and has lapsed does not (it is no guess,
            // and its holder is told why it lapsed rather than held up).
            if let (Some(address), ApiError::Unauthorized { .. }, None) = (address, &error, &holder)
            {
                state.failures.failed(address);
            }
            let response = error.into_response();
            let refusal = refusal(&response);
            record(&state, holder.as_deref(), address, &method, &path, refusal).await;
            return response;
        }
    };
    request.extensions_mut().insert(principal.clone());
    request.extensions_mut().insert(credential);
    request
        .extensions_mut()
        .insert(AccessGeneration(generation));
    let response = next.run(request).await;
    let refusal = refusal(&response);
    record(&state, Some(&principal), address, &method, &path, refusal).await;
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

/// A failed authentication: the 401, and the token's holder when the token was found (revoked
/// or expired), so that the refusal is recorded under its name.
struct Refused {
    error: ApiError,
    holder: Option<Box<Principal>>,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Refused {
        Refused {
            error,
            holder: None,
        }
    }
}

/// Refuses a token that no longer works at `now`.
fn check_validity(principal: &Principal, validity: TokenValidity, now: i64) -> Result<(), Refused> {
    match validity.lapsed(now) {
        None => Ok(()),
        Some(lapsed) => Err(Refused {
            error: lapsed_error(&principal.name, lapsed),
            holder: Some(Box::new(principal.clone())),
        }),
    }
}

async fn principal(
    state: &ApiState,
    header: Option<&str>,
) -> Result<(Principal, i64, Credential), Refused> {
    let token = auth::bearer(header).map_err(ApiError::unauthorized)?;
    let hash = auth::hash_token(token);
    let now = state.engine.clock().now().timestamp_millis();
    // Read before the lookup: a revocation committed after this read bumps the generation, so
    // what is cached below under this generation is looked up again at the next request.
    let generation = if state.tokens.reads_directly() {
        // A read of its own, begun after the request arrived, in microseconds.
        state.tokens.generation().await
    } else {
        state.cache.reads.get(|| state.tokens.generation()).await
    }
    .map_err(ApiError::internal)?;
    {
        let mut cache = state.cache.lock();
        if cache.generation != generation {
            cache.principals.clear();
            cache.duties = None;
            cache.generation = generation;
        } else if let Some((principal, validity, at)) = cache.principals.get(&hash)
            && at.elapsed() < state.config.token_cache
        {
            // Cached or not, a token stops at its expiry: compared here, with no read.
            check_validity(principal, *validity, now)?;
            let credential = Credential::Token {
                hash,
                validity: *validity,
            };
            return Ok((principal.clone(), generation, credential));
        }
    }
    let Some(TokenLookup {
        principal,
        validity,
    }) = state.tokens.find(&hash).await.map_err(ApiError::internal)?
    else {
        return Err(ApiError::unauthorized(
            "the token is unknown; check that it was copied whole, or ask an administrator for a new one (`yimen token create`)",
        ).into());
    };
    check_validity(&principal, validity, now)?;
    let principal = role_duties(state, generation).await?.apply(principal);
    let mut cache = state.cache.lock();
    if cache.generation == generation {
        if cache.principals.len() > 10_000 {
            cache.principals.clear();
        }
        cache
            .principals
            .insert(hash.clone(), (principal.clone(), validity, Instant::now()));
    }
    Ok((principal, generation, Credential::Token { hash, validity }))
}

/// What the deployed processes let roles do, as of `generation`: cached with the principals,
/// read again (every process's latest version, from the engine's cache of deployments) when
/// the generation moved.
pub(super) async fn role_duties(
    state: &ApiState,
    generation: i64,
) -> Result<Arc<RoleDuties>, ApiError> {
    {
        let mut cache = state.cache.lock();
        // A session reads the generation itself: what was cached under an older one goes.
        if cache.generation < generation {
            cache.principals.clear();
            cache.duties = None;
            cache.generation = generation;
        }
        if cache.generation == generation
            && let Some(duties) = &cache.duties
        {
            return Ok(duties.clone());
        }
    }
    let duties = Arc::new(state.engine.role_duties().await?);
    let mut cache = state.cache.lock();
    if cache.generation == generation {
        cache.duties = Some(duties.clone());
    }
    Ok(duties)
}

/// Checks that `principal` may start instances of `process` with `vars` (see [`StartRoles`]:
/// its role, and for a token limited to organisation units the case's scope variables). An unknown
/// process passes here: starting it then answers 404. `generation`: the one the request was
/// authenticated under; a rule cached under it is still the rule of the latest deployment.
pub(crate) async fn check_start(
    state: &ApiState,
    principal: &Principal,
    process: &str,
    vars: &serde_json::Map<String, serde_json::Value>,
    generation: AccessGeneration,
) -> Result<(), ApiError> {
    if principal.is_admin() {
        return Ok(());
    }
    let AccessGeneration(generation) = generation;
    let cached = state
        .start_roles
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(process)
        .filter(|(read_under, _)| *read_under == generation)
        .map(|(_, roles)| roles.clone());
    let roles = match cached {
        Some(roles) => roles,
        None => {
            let Some((_, loaded)) = state
                .engine
                .latest_deployment(process, Some(generation))
                .await?
            else {
                return Ok(());
            };
            let roles = Arc::new(StartRoles::of(&loaded.model, &loaded.data.config));
            let mut cache = state
                .start_roles
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if cache.len() > 1_000 {
                cache.clear();
            }
            cache.insert(process.to_string(), (generation, roles.clone()));
            roles
        }
    };
    if roles.allow(principal) {
        return match roles.refuses_unit(principal, vars) {
            None => Ok(()),
            Some(why) => Err(ApiError::forbidden(format!("{why} of `{process}`"))),
        };
    }
    let source = if roles.configured {
        "`start_roles` in its YAML configuration".to_string()
    } else {
        "the default: admin and the roles of its first tasks; set `start_roles` in its YAML \
         configuration to change it"
            .to_string()
    };
    Err(ApiError::forbidden(format!(
        "{} may not start `{process}`: only {} may ({source})",
        principal.who(),
        roles.names().join(", ")
    )))
}

/// Deletes refused calls older than `keep_days` days (by the engine's clock); returns how many.
pub async fn prune_refusals(state: &ApiState, keep_days: u32) -> Result<u64, crate::EngineError> {
    let before = state.engine.clock().now() - chrono::Duration::days(i64::from(keep_days));
    state.tokens.prune_refusals(before).await
}

/// Deletes the sign-in attempts recorded more than `keep_days` days ago, and the sessions
/// begun before then that are past their lifetime; returns how many rows.
pub async fn prune_sign_ins(state: &ApiState, keep_days: u32) -> Result<u64, crate::EngineError> {
    let now = state.engine.clock().now();
    let before = now - chrono::Duration::days(i64::from(keep_days));
    let lifetime =
        chrono::Duration::from_std(state.config.session_lifetime).unwrap_or(chrono::Duration::MAX);
    let sessions_before = before.min(now.checked_sub_signed(lifetime).unwrap_or(before));
    state.accounts.prune(before, sessions_before).await
}

/// Records a refusal decided inside a handler that still answers 200 (a completion of a
/// batch refused with 403).
pub(crate) async fn record_refusal(
    state: &ApiState,
    principal: &Principal,
    method: &str,
    path: &str,
    refused: &ApiError,
) {
    let refusal = Some((refused.status().as_u16(), refused.to_string()));
    record(state, Some(principal), None, method, path, refusal).await;
}

async fn record(
    state: &ApiState,
    principal: Option<&Principal>,
    address: Option<IpAddr>,
    method: &str,
    path: &str,
    refusal: Option<(u16, String)>,
) {
    let Some((status, reason)) = refusal else {
        return;
    };
    let now = state.engine.clock().now();
    let from = address.map(|a| a.to_string());
    if let Err(err) = state
        .tokens
        .record_refusal_from(
            principal,
            from.as_deref(),
            method,
            path,
            status,
            &reason,
            now,
        )
        .await
    {
        tracing::error!("could not record a refused call: {err}");
    }
    let path = path.get(..path.floor_char_boundary(256)).unwrap_or(path);
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
        .create("admin", &[auth::Role::Admin], &[], &token.hash, now, None)
        .await?;
    Ok(Some(token.plain))
}

#[cfg(test)]
mod tests {
    use super::GenerationReads;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A source whose every read returns the next number.
    fn counter() -> Arc<AtomicI64> {
        Arc::new(AtomicI64::new(0))
    }

    async fn next(reads: &AtomicI64) -> Result<i64, crate::error::EngineError> {
        Ok(reads.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn a_request_after_a_read_reads_again() {
        let shared = GenerationReads::default();
        let reads = counter();
        assert_eq!(shared.get(|| next(&reads)).await.unwrap(), 1);
        // A revocation may have committed since: the earlier value will not do.
        assert_eq!(shared.get(|| next(&reads)).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_arriving_during_a_read_share_the_next_one() {
        let shared = Arc::new(GenerationReads::default());
        let reads = counter();
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        // The first read is under way, and stays so until released.
        let first = {
            let (shared, reads) = (shared.clone(), reads.clone());
            tokio::spawn(async move {
                shared
                    .get(|| async move {
                        let _ = held.await;
                        next(&reads).await
                    })
                    .await
            })
        };
        while reads.load(Ordering::SeqCst) == 0 && shared.begun.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let (shared, reads) = (shared.clone(), reads.clone());
                tokio::spawn(async move { shared.get(|| next(&reads)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = release.send(());
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for w in waiting {
            // Not the read that was under way when they arrived: the next one, shared.
            assert_eq!(w.await.unwrap().unwrap(), 2);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "two reads for eleven requests"
        );
    }
}
