//! The HTTP API under `/api/v1` (axum). Every route is registered through utoipa-axum, so the
//! router and `GET /openapi.json` come from one list and cannot drift apart.
//!
//! Access: every call under `/api/v1` except `health`, `ready`, `openapi.json` and signing in carries a
//! bearer token or the cookie of a signed-in session ([`access`], [`session`]); refused calls
//! (401, 403) are recorded in `access_refusals`.

pub mod access;
mod admin;
mod clock;
mod definitions;
pub mod dto;
pub mod error;
mod inbox;
pub(crate) mod instances;
mod notices;
mod oidc;
pub mod ops;
mod outbox;
mod reassignments;
mod reports;
pub(crate) mod session;
pub(crate) mod tasks;
mod users;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
pub use ops::metrics_router;

use crate::Engine;
use crate::store::accounts::AccountStore;
use crate::store::tokens::TokenStore;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Tunables of the API layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Longest long-poll wait a claim may ask for.
    pub max_wait: Duration,
    /// While a claim waits, how often it looks at the database anyway, for tasks created by
    /// another server sharing it (this server's own tasks wake it at once).
    pub fallback_poll: Duration,
    /// Longest lease a claim or extension may ask for.
    pub max_lease_seconds: u32,
    /// Failures of one task before it becomes an incident on its instance.
    pub max_attempts: u32,
    /// First retry delay after a failure; doubled after every further failure.
    pub retry_backoff: Duration,
    /// Longest time a looked-up token is kept in memory before it is read again. Revocations
    /// do not wait for this: every request reads the access generation (bumped by each
    /// revocation), so a revocation on any server sharing the database counts at once.
    pub token_cache: Duration,
    /// Failed authentications (401) one client address may have in a minute; after them its
    /// calls answer 429 with `Retry-After` until the minute is over. 0: no limit.
    pub auth_failures_per_minute: u32,
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Longest path and query, in bytes (414 above it).
    pub max_uri_bytes: usize,
    /// Largest total of header names and values, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// A session unused this long ends (its last use is recorded at most once a minute, so it
    /// may end up to a minute sooner).
    pub session_idle: Duration,
    /// A session ends this long after its sign-in, however much it is used.
    pub session_lifetime: Duration,
    /// Mark the session cookie `Secure` (sent over HTTPS only): set it when the server is
    /// reached through HTTPS.
    pub secure_cookies: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_wait: Duration::from_secs(60),
            fallback_poll: Duration::from_secs(1),
            max_lease_seconds: 3600,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(10),
            token_cache: Duration::from_secs(300),
            auth_failures_per_minute: 20,
            max_body_bytes: 2 << 20,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 16 << 10,
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            secure_cookies: false,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Engine,
    pub tokens: TokenStore,
    /// People's accounts, sessions and sign-ins.
    pub accounts: AccountStore,
    pub config: Arc<ApiConfig>,
    pub(crate) cache: access::TokenCache,
    /// Roles that may start each deployed version (`start_roles`, or the default rule).
    pub(crate) start_roles: access::StartRolesCache,
    /// Failed authentications per client address (the limit's count).
    pub(crate) failures: access::AuthFailures,
    /// Set when the server begins to stop: long polls answer at once.
    pub(crate) shutdown: Arc<tokio::sync::watch::Sender<bool>>,
    /// Password hashes computed at once (each takes 19 MiB and tens of milliseconds of a
    /// core): one per core, the others wait their turn.
    pub(crate) hashing: Arc<tokio::sync::Semaphore>,
    /// The city's identity provider, when people may sign in through it
    /// ([`ApiState::with_oidc`]).
    pub(crate) oidc: Option<Arc<crate::oidc::Provider>>,
}

impl ApiState {
    pub fn new(engine: Engine, config: ApiConfig) -> ApiState {
        let tokens = TokenStore::of(engine.store());
        let accounts = AccountStore::new(engine.store().pool().clone());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ApiState {
            engine,
            tokens,
            accounts,
            config: Arc::new(config),
            cache: access::TokenCache::default(),
            start_roles: access::StartRolesCache::default(),
            failures: access::AuthFailures::default(),
            shutdown: Arc::new(tokio::sync::watch::channel(false).0),
            hashing: Arc::new(tokio::sync::Semaphore::new(cores)),
            oidc: None,
        }
    }

    /// People may also sign in through `provider` (`GET /oidc/login`).
    pub fn with_oidc(mut self, provider: crate::oidc::Provider) -> ApiState {
        self.oidc = Some(Arc::new(provider));
        self
    }

    /// Begins a graceful stop: waiting claims (long polls) answer now with what they have, so
    /// the server can finish the requests in flight and exit.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`ApiState::begin_shutdown`] was called (at once if it was already).
    pub async fn shutting_down(&self) {
        let mut stopped = self.shutdown.subscribe();
        // `wait_for` errs only when the sender is gone, which it is not while `self` lives.
        let _ = stopped.wait_for(|stopping| *stopping).await;
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "yimen API",
        description = "Deploy processes, start and follow instances, and work task queues. \
                       Every call except `health`, `ready`, `openapi.json` and signing in (`POST /session`) \
                       needs `Authorization: Bearer <token>` or the cookie `yimen_session` of a \
                       signed-in person (whose state-changing calls carry `X-CSRF-Token`). \
                       Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []), ("session" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::accounts::SESSION_COOKIE,
                "the session of a person signed in with `POST /session`; requests with \
                 POST, PUT, PATCH or DELETE also carry `X-CSRF-Token`",
            ))),
        );
    }
}

fn routes() -> OpenApiRouter<ApiState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(definitions::deploy, definitions::list))
        .routes(routes!(definitions::get_one))
        .routes(routes!(instances::start, instances::search))
        .routes(routes!(instances::get_one))
        .routes(routes!(instances::history))
        .routes(routes!(instances::documents))
        .routes(routes!(instances::message))
        .routes(routes!(instances::cancel))
        .routes(routes!(instances::resolve_incident))
        .routes(routes!(tasks::claim))
        .routes(routes!(tasks::claim_one))
        .routes(routes!(tasks::complete))
        .routes(routes!(tasks::complete_many))
        .routes(routes!(tasks::extend))
        .routes(routes!(tasks::release))
        .routes(routes!(tasks::fail))
        .routes(routes!(tasks::list))
        .routes(routes!(admin::ledger))
        .routes(routes!(admin::health))
        .routes(routes!(admin::openapi_json))
        .routes(routes!(admin::create_token, admin::list_tokens))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::rotate_token))
        .routes(routes!(admin::refusals))
        .routes(routes!(session::sign_in, session::sign_out))
        .routes(routes!(session::change_password))
        .routes(routes!(oidc::login))
        .routes(routes!(oidc::callback))
        .routes(routes!(users::me))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::disable_user))
        .routes(routes!(users::enable_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(users::set_roles))
        .routes(routes!(users::sign_ins))
        .routes(routes!(admin::personal_data_reads))
        .routes(routes!(reassignments::reassign, reassignments::list))
        .routes(routes!(reassignments::end))
        .merge(notices::routes())
        .merge(inbox::routes())
        .merge(clock::routes())
        .merge(reports::routes())
        .merge(outbox::routes())
        .merge(ops::routes());
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    edge_errors(&mut doc);
    doc
}

/// The errors the layers around the handlers answer, added to every route they can reach: 414
/// and 431 (path and query, headers too large: any route), 413 (body too large: a route with
/// a body), 429 (too many failed authentications) and 403 (a session's call without its CSRF
/// token, or before its password was changed): a route that needs a caller, 400 (a path
/// parameter with NUL or over [`error::MAX_PARAMETER_CHARS`]: a route with one).
fn edge_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for op in operations.into_iter().flatten() {
            let mut add = vec![
                ("414", "the path and query are too long"),
                ("431", "the headers are too large"),
            ];
            if op.request_body.is_some() {
                add.push(("413", "the body is too large"));
            }
            let open = op.security.as_ref().is_some_and(|s| {
                serde_json::to_value(s).is_ok_and(|v| {
                    v.as_array().is_some_and(|all| {
                        all.iter()
                            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                    })
                })
            });
            if !open {
                add.push((
                    "429",
                    "too many failed authentications from this address; see `Retry-After`",
                ));
                add.push((
                    "403",
                    "a session's call refused: without its CSRF token (`csrf_refused`), or \
                     before the one-time password was changed (`password_change_required`)",
                ));
            }
            let path_parameter = op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Path);
            if path_parameter {
                add.push(("400", "a path parameter cannot be read"));
            }
            for (status, description) in add {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// The whole HTTP application.
pub fn router(state: ApiState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .route("/openapi.json", get(admin::openapi_json))
        .merge(crate::web::routes())
        .fallback(admin::no_route)
        .method_not_allowed_fallback(admin::no_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::authenticate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.max_body_bytes,
        ))
        // An oversized request is refused before anything reads its token.
        .layer(axum::middleware::from_fn_with_state(state.clone(), sizes))
        // Outermost: every request has its id, span and metrics, refused ones too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .with_state(state)
}

/// Refuses a request whose path and query (414) or headers (431) are larger than configured,
/// and one whose declared body length is (413; a body without a declared length is cut at the
/// limit where it is read).
async fn sizes(
    axum::extract::State(state): axum::extract::State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let config = &state.config;
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri > config.max_uri_bytes {
        return ApiError::UriTooLong {
            message: format!(
                "the path and query are {uri} bytes; the server takes at most {}",
                config.max_uri_bytes
            ),
        }
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > config.max_header_bytes {
        return ApiError::HeadersTooLarge {
            message: format!(
                "the headers are {headers} bytes; the server takes at most {}",
                config.max_header_bytes
            ),
        }
        .into_response();
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return ApiError::PayloadTooLarge {
            message: format!(
                "the request body is larger than the server takes ({} bytes, \
                 `yimen serve --max-body-bytes`); send less",
                config.max_body_bytes
            ),
        }
        .into_response();
    }
    next.run(request).await
}
