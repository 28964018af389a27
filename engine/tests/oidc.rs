//! Sign-in through the city's identity provider (OpenID Connect), on SQLite and on PostgreSQL
//! (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`). The test serves the provider itself
//! on 127.0.0.1: its discovery document, its keys (`fixtures/oidc/provider.jwks.json`, of
//! `provider.pem`), and a token endpoint that checks the client secret, the code and its PKCE
//! verifier and answers an ID token signed with jsonwebtoken. The browser is the test: it
//! follows the engine's redirect by reading the state, the nonce and the PKCE challenge off
//! the authorization URL, as the provider would, and comes back with a code.
//!
//! The keys in `fixtures/oidc/` are test keys made for this test only.

mod support;

use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;
use tower::ServiceExt;
use yimen_engine::api::{self, ApiState};
use yimen_engine::clock::ManualClock;
use yimen_engine::oidc::{OidcConfig, Provider};
use yimen_engine::{Engine, WeekdaysOnly};

on_both_databases!(
    signing_in_through_the_provider_starts_a_session,
    states_and_tokens_that_will_not_do_are_refused,
    a_wrong_client_secret_is_refused_by_the_provider,
);

const CLIENT_ID: &str = "yimen-test";
const CLIENT_SECRET: &str = "s3cret with spaces & signs";
const REDIRECT: &str = "https://yimen.example/api/v1/oidc/callback";
const PROVIDER_PEM: &[u8] = include_bytes!("fixtures/oidc/provider.pem");
const OTHER_PEM: &[u8] = include_bytes!("fixtures/oidc/other.pem");
const PROVIDER_EC_PEM: &[u8] = include_bytes!("fixtures/oidc/provider-ec.pem");
const JWKS: &str = include_str!("fixtures/oidc/provider.jwks.json");

/// Which key signs an ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The provider's RSA key (RS256, published as `test-key`).
    Rsa,
    /// The provider's P-256 key (ES256, published as `test-ec-key`).
    Ec,
    /// `other.pem`, which the provider does not publish (RS256, named `test-key`).
    Unpublished,
}

/// How the provider will sign the ID token of a code.
#[derive(Debug, Clone)]
struct Mint {
    claims: Value,
    signer: Signer,
    nonce: String,
    challenge: String,
}

#[derive(Default)]
struct ProviderState {
    issuer: String,
    codes: HashMap<String, Mint>,
}

type Shared = Arc<Mutex<ProviderState>>;

/// The identity provider, served on 127.0.0.1; answers its issuer URL.
async fn serve_provider(shared: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let issuer = format!("http://{}", listener.local_addr().expect("address"));
    shared.lock().unwrap().issuer = issuer.clone();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(
            "/jwks",
            get(|| async { ([("content-type", "application/json")], JWKS) }),
        )
        .route("/token", post(token))
        .with_state(shared);
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

async fn discovery(State(shared): State<Shared>) -> axum::Json<Value> {
    let issuer = shared.lock().unwrap().issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

/// The token endpoint: the client's secret (basic), a known code (once), its PKCE verifier.
async fn token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error})));
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{CLIENT_ID}:{}",
            CLIENT_SECRET.replace(' ', "+").replace('&', "%26")
        ))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || form.get("redirect_uri").map(String::as_str) != Some(REDIRECT)
    {
        return refuse("invalid_request");
    }
    let (issuer, mint) = {
        let mut s = shared.lock().unwrap();
        let code = form.get("code").cloned().unwrap_or_default();
        (s.issuer.clone(), s.codes.remove(&code))
    };
    let Some(mint) = mint else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != mint.challenge {
        return refuse("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": "p-1001",
        "iat": now,
        "exp": now + 300,
        "nonce": mint.nonce,
    });
    for (k, v) in mint.claims.as_object().unwrap() {
        claims[k] = v.clone();
    }
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (mut header, key) = match mint.signer {
        Signer::Rsa => (
            Header::new(Algorithm::RS256),
            EncodingKey::from_rsa_pem(PROVIDER_PEM),
        ),
        Signer::Unpublished => (
            Header::new(Algorithm::RS256),
            EncodingKey::from_rsa_pem(OTHER_PEM),
        ),
        Signer::Ec => (
            Header::new(Algorithm::ES256),
            EncodingKey::from_ec_pem(PROVIDER_EC_PEM),
        ),
    };
    let key = key.expect("test key");
    header.kid = Some(
        if mint.signer == Signer::Ec {
            "test-ec-key"
        } else {
            "test-key"
        }
        .into(),
    );
    let id_token = jsonwebtoken::encode(&header, &claims, &key).expect("signs");
    (
        StatusCode::OK,
        axum::Json(json!({"access_token": "a", "token_type": "Bearer", "id_token": id_token})),
    )
}

/// The engine's API with the provider beside it, on a simulated clock.
struct World {
    api: TestApi,
    provider: Shared,
    clock: ManualClock,
}

impl Fixture for World {
    async fn open(db: &Db) -> World {
        let shared = Shared::default();
        let issuer = serve_provider(shared.clone()).await;
        let clock = ManualClock::new(t(MONDAY));
        let engine = db
            .open(Arc::new(clock.clone()), Arc::new(WeekdaysOnly))
            .await;
        deploy_model(&engine, case_model(), Default::default()).await;
        let provider = Provider::discover(OidcConfig {
            issuer,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: REDIRECT.into(),
            roles_claim: "roles".into(),
            units_claim: "org_units".into(),
            login_claim: "preferred_username".into(),
            name_claim: "name".into(),
        })
        .await
        .expect("the provider is discovered");
        World {
            api: api_with(engine, provider).await,
            provider: shared,
            clock,
        }
    }
}

async fn api_with(engine: Engine, provider: Provider) -> TestApi {
    let state = ApiState::new(engine.clone(), test_config()).with_oidc(provider);
    let admin = api::access::bootstrap_admin(&state)
        .await
        .expect("bootstrap")
        .unwrap_or_default();
    TestApi {
        engine,
        router: api::router(state),
        admin,
    }
}

/// An answer with its headers.
#[derive(Debug)]
struct Full {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Full {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(api: &TestApi, request: Request<Body>) -> Full {
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Full {
        status,
        headers,
        body,
    }
}

async fn get_path(api: &TestApi, path: &str, cookie: Option<&str>) -> Full {
    let mut request = Request::builder().uri(path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(api, request.body(Body::empty()).expect("request")).await
}

/// What the engine's authorization URL asks of the provider.
struct Authorize {
    state: String,
    nonce: String,
    challenge: String,
}

/// `GET /oidc/login`, followed as far as the provider: the parameters it was sent.
async fn begin(world: &World) -> Authorize {
    let answer = get_path(&world.api, "/api/v1/oidc/login", None).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{answer:?}");
    let url = reqwest::Url::parse(answer.header("location")).expect("a URL");
    let issuer = world.provider.lock().unwrap().issuer.clone();
    assert!(
        url.as_str().starts_with(&format!("{issuer}/authorize?")),
        "{url}"
    );
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    Authorize {
        state: q["state"].clone(),
        nonce: q["nonce"].clone(),
        challenge: q["code_challenge"].clone(),
    }
}

/// The provider signs the person in: a code for an ID token with `claims` (over the usual
/// ones) and the nonce it was given.
fn grant(world: &World, asked: &Authorize, claims: Value, signer: Signer) -> String {
    let code = format!("code-{}", uuid::Uuid::new_v4());
    world.provider.lock().unwrap().codes.insert(
        code.clone(),
        Mint {
            claims,
            signer,
            nonce: asked.nonce.clone(),
            challenge: asked.challenge.clone(),
        },
    );
    code
}

async fn callback(world: &World, code: &str, state: &str) -> Full {
    get_path(
        &world.api,
        &format!("/api/v1/oidc/callback?code={code}&state={state}"),
        None,
    )
    .await
}

fn person() -> Value {
    json!({
        "preferred_username": "LiMing",
        "name": "李明",
        "roles": ["window", "department:civil_affairs", "not a role"],
        "org_units": ["east", "west"],
    })
}

/// A full sign-in through the provider; the session cookie (`yimen_session=…`).
async fn sign_in(world: &World, claims: Value) -> String {
    let asked = begin(world).await;
    let code = grant(world, &asked, claims, Signer::Rsa);
    let answer = callback(world, &code, &asked.state).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    assert_eq!(answer.header("location"), "/");
    let cookie = answer.header("set-cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    cookie.split(';').next().expect("a cookie").to_string()
}

async fn sign_in_results(world: &World) -> Vec<(String, String)> {
    let answer = world
        .api
        .get("/api/v1/sign-ins?page_size=100", &world.api.admin)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["sign_ins"]
        .as_array()
        .expect("sign-ins")
        .iter()
        .map(|s| {
            (
                s["login"].as_str().unwrap_or("").to_string(),
                s["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The provider's person signs in: an account it manages is made with the mapped login,
/// name, roles (what is not a role left out) and units, the session cookie is set; the next
/// sign-in takes the provider's roles anew; the account has no password; a local account
/// signs in with its password beside it.
async fn signing_in_through_the_provider_starts_a_session(world: World) {
    let cookie = sign_in(&world, person()).await;
    let me = get_path(&world.api, "/api/v1/me", Some(&cookie)).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["login"], "liming");
    assert_eq!(me.body["name"], "李明");
    assert_eq!(
        me.body["roles"],
        json!(["window", "department:civil_affairs"])
    );
    assert_eq!(me.body["org_units"], json!(["east", "west"]));

    // The provider says otherwise now: the next sign-in takes it, the same account.
    let mut changed = person();
    changed["roles"] = json!("window");
    changed["name"] = json!("李明明");
    let again = sign_in(&world, changed).await;
    assert_ne!(again, cookie);
    let me = get_path(&world.api, "/api/v1/me", Some(&again)).await;
    assert_eq!(me.body["roles"], json!(["window"]), "{me:?}");
    assert_eq!(me.body["name"], "李明明");
    let users = world.api.get("/api/v1/users", &world.api.admin).await;
    let logins: Vec<&str> = users.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["login"].as_str())
        .collect();
    assert_eq!(logins.iter().filter(|l| **l == "liming").count(), 1);

    // No password signs the provider's account in.
    let body = json!({"login": "liming", "password": ""});
    let refused = world
        .api
        .call("POST", "/api/v1/session", None, Some(body))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.code(), "sign_in_failed");

    // An administrator sees it is the provider's, and cannot give it a password or roles.
    let users = world.api.get("/api/v1/users", &world.api.admin).await;
    let liming = users.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["login"] == "liming")
        .cloned()
        .expect("liming is listed");
    assert_eq!(liming["external"], json!(true), "{liming}");
    let reset = world
        .api
        .post(
            "/api/v1/users/liming/reset-password",
            &world.api.admin,
            json!({}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::CONFLICT, "{reset:?}");
    assert_eq!(reset.code(), "account_external");
    let roles = world
        .api
        .call(
            "PUT",
            "/api/v1/users/liming/roles",
            Some(&world.api.admin),
            Some(json!({"roles": ["admin"], "org_units": []})),
        )
        .await;
    assert_eq!(roles.status, StatusCode::CONFLICT, "{roles:?}");
    assert_eq!(roles.code(), "account_external");

    // A token signed with the provider's ES256 key does as well as RS256.
    let mut zhao = person();
    zhao["sub"] = json!("p-3003");
    zhao["preferred_username"] = json!("zhaoyun");
    let asked = begin(&world).await;
    let code = grant(&world, &asked, zhao, Signer::Ec);
    let answer = callback(&world, &code, &asked.state).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");

    // A local account beside it.
    let created = world
        .api
        .post(
            "/api/v1/users",
            &world.api.admin,
            json!({"login": "wangfang", "name": "王芳", "roles": ["window"], "org_units": ["east"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let once = created.body["password"].as_str().expect("password");
    let body = json!({"login": "wangfang", "password": once});
    let local = world
        .api
        .call("POST", "/api/v1/session", None, Some(body))
        .await;
    assert_eq!(local.status, StatusCode::OK, "{local:?}");

    // A provider's login a local account has is refused, not merged into it.
    let mut taken = person();
    taken["sub"] = json!("p-2002");
    taken["preferred_username"] = json!("wangfang");
    let asked = begin(&world).await;
    let code = grant(&world, &asked, taken, Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{answer:?}");
    assert_eq!(answer.code(), "oidc_login_taken");

    let results = sign_in_results(&world).await;
    assert!(
        results.contains(&("liming".into(), "oidc".into())),
        "{results:?}"
    );
    assert!(
        results.contains(&("wangfang".into(), "oidc_failed".into())),
        "{results:?}"
    );
    assert!(
        results.contains(&("wangfang".into(), "ok".into())),
        "{results:?}"
    );
}

/// A state not begun here, used twice, or older than 10 minutes; a provider's error; an ID
/// token signed by another key, expired, for another client or with another nonce: each a
/// 4xx with its code, no cookie, recorded as `oidc_failed`.
async fn states_and_tokens_that_will_not_do_are_refused(world: World) {
    let refused = |answer: &Full, status: StatusCode, code: &str| {
        assert_eq!(answer.status, status, "{code}: {answer:?}");
        assert_eq!(answer.code(), code, "{answer:?}");
        assert_eq!(answer.header("set-cookie"), "", "{answer:?}");
    };
    let unauthorized = StatusCode::UNAUTHORIZED;

    // A state this server never sent.
    let asked = begin(&world).await;
    let code = grant(&world, &asked, person(), Signer::Rsa);
    let answer = callback(&world, &code, "forged-state").await;
    refused(&answer, unauthorized, "oidc_state_invalid");
    // Its own state works once, not twice.
    let answer = callback(&world, &code, &asked.state).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    let code = grant(&world, &asked, person(), Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_state_invalid");
    // No code, no state.
    let answer = get_path(&world.api, "/api/v1/oidc/callback", None).await;
    refused(&answer, unauthorized, "oidc_state_invalid");

    // Back after more than 10 minutes.
    let asked = begin(&world).await;
    let code = grant(&world, &asked, person(), Signer::Rsa);
    world
        .clock
        .advance(chrono::Duration::minutes(11))
        .expect("the clock goes forward");
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_state_expired");

    // The provider did not sign the person in.
    let asked = begin(&world).await;
    let answer = get_path(
        &world.api,
        &format!(
            "/api/v1/oidc/callback?error=access_denied&error_description=no&state={}",
            asked.state
        ),
        None,
    )
    .await;
    refused(&answer, unauthorized, "oidc_provider_error");

    // Signed by a key the provider does not publish.
    let asked = begin(&world).await;
    let code = grant(&world, &asked, person(), Signer::Unpublished);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_token_invalid");

    // Expired.
    let mut expired = person();
    let now = chrono::Utc::now().timestamp();
    expired["iat"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let asked = begin(&world).await;
    let code = grant(&world, &asked, expired, Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_token_invalid");

    // For another client.
    let mut other_client = person();
    other_client["aud"] = json!("someone-else");
    let asked = begin(&world).await;
    let code = grant(&world, &asked, other_client, Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_token_invalid");

    // With another sign-in's nonce.
    let mut replayed = person();
    replayed["nonce"] = json!("another-nonce");
    let asked = begin(&world).await;
    let code = grant(&world, &asked, replayed, Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_token_invalid");

    // A code the provider does not know (or a verifier it does not match).
    let asked = begin(&world).await;
    let answer = callback(&world, "made-up", &asked.state).await;
    refused(&answer, unauthorized, "oidc_exchange_failed");

    // No login in the token.
    let mut nameless = person();
    nameless["preferred_username"] = json!("");
    let asked = begin(&world).await;
    let code = grant(&world, &asked, nameless, Signer::Rsa);
    let answer = callback(&world, &code, &asked.state).await;
    refused(&answer, unauthorized, "oidc_claims_invalid");

    let results = sign_in_results(&world).await;
    let failed = results.iter().filter(|(_, r)| r == "oidc_failed").count();
    assert_eq!(failed, 11, "{results:?}");
}

/// A server configured with the wrong client secret: the provider refuses the code exchange
/// (`invalid_client`), the callback answers 401 `oidc_exchange_failed` and names it.
async fn a_wrong_client_secret_is_refused_by_the_provider(world: World) {
    let issuer = world.provider.lock().unwrap().issuer.clone();
    let wrong = Provider::discover(OidcConfig {
        issuer,
        client_id: CLIENT_ID.into(),
        client_secret: "not the secret".into(),
        redirect_url: REDIRECT.into(),
        roles_claim: "roles".into(),
        units_claim: "org_units".into(),
        login_claim: "preferred_username".into(),
        name_claim: "name".into(),
    })
    .await
    .expect("the provider is discovered");
    let misconfigured = World {
        api: api_with(world.api.engine.clone(), wrong).await,
        provider: world.provider.clone(),
        clock: world.clock.clone(),
    };
    let asked = begin(&misconfigured).await;
    let code = grant(&misconfigured, &asked, person(), Signer::Rsa);
    let answer = callback(&misconfigured, &code, &asked.state).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(answer.code(), "oidc_exchange_failed");
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(answer.header("set-cookie"), "");
}
