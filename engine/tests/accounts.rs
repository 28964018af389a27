//! People's accounts and sessions, on SQLite and on PostgreSQL (`*::postgres`, skipped without
//! `YIMEN_TEST_POSTGRES`): signing in sets a session cookie; a wrong password is refused, five
//! in a row lock the login for 15 minutes whether an account has it or not; sessions end when
//! idle, at the end of their lifetime and when signed out (on every server at once); a
//! session's state-changing calls need its CSRF token; a one-time password allows only changing
//! it; a disabled account is refused; admins read the sign-ins; `GET /me` names the caller and
//! their work. Time is the engine's simulated clock.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use tower::ServiceExt;
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::clock::ManualClock;
use yimen_engine::{Engine, WeekdaysOnly};

on_both_databases!(
    signing_in_sets_an_http_only_session_cookie,
    five_failed_sign_ins_lock_a_login_for_15_minutes,
    sessions_end_when_idle_and_after_their_lifetime,
    signing_out_counts_at_once_on_every_server,
    a_session_needs_its_csrf_token_to_change_anything,
    a_one_time_password_allows_only_changing_it,
    a_disabled_account_is_refused,
    admins_read_the_sign_ins_and_others_may_not,
    me_names_the_caller_their_tasks_and_their_queues,
    admins_manage_accounts_with_roles_checked,
    failed_sign_ins_count_toward_the_limit_of_an_address,
);

/// The API over an engine on a simulated clock at [`MONDAY`], the `case` model deployed.
struct People {
    api: TestApi,
    clock: ManualClock,
    db: Db,
}

impl Fixture for People {
    async fn open(db: &Db) -> People {
        let clock = ManualClock::new(t(MONDAY));
        let engine = db
            .open(Arc::new(clock.clone()), Arc::new(WeekdaysOnly))
            .await;
        deploy_model(&engine, case_model(), Default::default()).await;
        People {
            api: api_on(engine).await,
            clock,
            db: db.clone(),
        }
    }
}

/// A signed-in session as a browser holds it.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
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
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    fn set_cookie(&self) -> &str {
        self.headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(router: &axum::Router, request: Request<Body>) -> Full {
    let response = router.clone().oneshot(request).await.expect("answers");
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

fn json_request(method: &str, path: &str, body: Option<Value>) -> axum::http::request::Builder {
    let builder = Request::builder().method(method).uri(path);
    match body {
        Some(_) => builder.header("content-type", "application/json"),
        None => builder,
    }
}

fn with_body(builder: axum::http::request::Builder, body: Option<Value>) -> Request<Body> {
    match body {
        Some(body) => builder.body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request builds")
}

async fn sign_in(router: &axum::Router, login: &str, password: &str) -> Full {
    let body = json!({"login": login, "password": password});
    send(
        router,
        with_body(
            json_request("POST", "/api/v1/session", Some(body.clone())),
            Some(body),
        ),
    )
    .await
}

/// Signs in; panics unless it worked.
async fn session(router: &axum::Router, login: &str, password: &str) -> Session {
    let answer = sign_in(router, login, password).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let cookie = answer
        .set_cookie()
        .split(';')
        .next()
        .expect("a cookie")
        .to_string();
    Session {
        cookie,
        csrf: answer.body["csrf_token"]
            .as_str()
            .expect("csrf token")
            .to_string(),
    }
}

/// A call of `session`, with its CSRF token when `csrf`.
async fn call(
    router: &axum::Router,
    session: &Session,
    method: &str,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> Full {
    let mut builder = json_request(method, path, body.clone()).header("cookie", &session.cookie);
    if csrf {
        builder = builder.header("x-csrf-token", &session.csrf);
    }
    send(router, with_body(builder, body)).await
}

/// Creates an account as admin; returns its one-time password.
async fn add_user(
    api: &TestApi,
    login: &str,
    name: &str,
    roles: &[&str],
    units: &[&str],
) -> String {
    let answer = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": name, "roles": roles, "org_units": units}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.body["user"]["must_change_password"], json!(true));
    answer.body["password"]
        .as_str()
        .expect("one-time password")
        .to_string()
}

const OWN: &str = "王芳的新密码2026";

/// An account `wangfang` (window, street `east`) that has set its own password; a session of it.
async fn wangfang(api: &TestApi) -> Session {
    let once = add_user(api, "wangfang", "王芳", &["window"], &["east"]).await;
    let first = session(&api.router, "wangfang", &once).await;
    let changed = call(
        &api.router,
        &first,
        "POST",
        "/api/v1/session/password",
        Some(json!({"current": once, "new": OWN})),
        true,
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.body["must_change_password"], json!(false));
    first
}

/// Signing in answers the user, the CSRF token and a cookie the page's scripts cannot read,
/// sent back only to this site's own navigations, `Secure` when the server says so.
async fn signing_in_sets_an_http_only_session_cookie(people: People) {
    let api = &people.api;
    let once = add_user(api, "WangFang", "王芳", &["window"], &["east"]).await;
    // Logins are kept in lower case; any case signs in.
    let answer = sign_in(&api.router, "wangfang", &once).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let cookie = answer.set_cookie().to_string();
    assert!(cookie.starts_with("yimen_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(answer.body["user"]["login"], "wangfang");
    assert_eq!(answer.body["user"]["name"], "王芳");
    assert_eq!(answer.body["must_change_password"], json!(true));
    assert_eq!(answer.body["idle_timeout_seconds"], json!(1800));
    assert_eq!(answer.body["expires_at"], "2026-09-28T13:00:00Z");
    let csrf = answer.body["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    // The secret is in the cookie only, never the stored id.
    let secret = &cookie["yimen_session=".len()..cookie.find(';').unwrap()];
    assert!(!answer.body.to_string().contains(secret));

    // A server behind HTTPS marks it Secure.
    let secure = ApiState::new(
        api.engine.clone(),
        ApiConfig {
            secure_cookies: true,
            ..test_config()
        },
    );
    let answer = sign_in(&api::router(secure), "WANGFANG", &once).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(answer.set_cookie().ends_with("; Secure"), "{answer:?}");
}

/// Four wrong passwords answer 401, the fifth locks the login (429 with when it unlocks and
/// `Retry-After`), and then even the right password is refused until 15 minutes have passed.
/// A login no account has answers exactly the same, so the answers do not tell whether it
/// exists.
async fn five_failed_sign_ins_lock_a_login_for_15_minutes(people: People) {
    let api = &people.api;
    let once = add_user(api, "wangfang", "王芳", &["window"], &[]).await;
    let mut seen: Vec<Vec<(StatusCode, String, String)>> = Vec::new();
    for login in ["wangfang", "nobody"] {
        let mut answers = Vec::new();
        for _ in 0..5 {
            let answer = sign_in(&api.router, login, "wrong password!").await;
            answers.push((
                answer.status,
                answer.code().to_string(),
                answer.message().to_string(),
            ));
        }
        let right = sign_in(&api.router, login, &once).await;
        assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "{right:?}");
        assert_eq!(right.headers["retry-after"], "900", "{right:?}");
        answers.push((
            right.status,
            right.code().to_string(),
            right.message().to_string(),
        ));
        seen.push(answers);
    }
    let (account, unknown) = (&seen[0], &seen[1]);
    for (status, code, message) in &account[..4] {
        assert_eq!(*status, StatusCode::UNAUTHORIZED);
        assert_eq!(code, "sign_in_failed");
        assert!(
            message.contains("login or the password is wrong"),
            "{message}"
        );
    }
    for (status, code, message) in &account[4..] {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(code, "sign_in_locked");
        assert!(
            message.contains("locked until 2026-09-28 09:15:00 +08:00"),
            "{message}"
        );
    }
    assert_eq!(account, unknown, "an unknown login answers as an account");

    // 14 minutes on: still locked. 15: the right password signs in, the wrong one counts anew.
    people.clock.advance(chrono::Duration::minutes(14)).unwrap();
    let still = sign_in(&api.router, "wangfang", &once).await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS, "{still:?}");
    assert_eq!(still.headers["retry-after"], "60");
    people.clock.advance(chrono::Duration::minutes(1)).unwrap();
    assert_eq!(
        sign_in(&api.router, "wangfang", &once).await.status,
        StatusCode::OK
    );
    let again = sign_in(&api.router, "wangfang", "wrong password!").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{again:?}");
    let unknown = sign_in(&api.router, "nobody", "wrong password!").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{unknown:?}");

    // An admin's reset lifts a lock at once.
    for _ in 0..5 {
        sign_in(&api.router, "wangfang", "wrong password!").await;
    }
    assert_eq!(
        sign_in(&api.router, "wangfang", &once).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let reset = api
        .post(
            "/api/v1/users/wangfang/reset-password",
            &api.admin,
            json!({}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{reset:?}");
    let new_once = reset.body["password"].as_str().unwrap();
    assert_eq!(
        sign_in(&api.router, "wangfang", new_once).await.status,
        StatusCode::OK
    );
}

/// A session unused for 30 minutes ends; one in use lasts, but not past 12 hours from its
/// sign-in. An ended session stays ended.
async fn sessions_end_when_idle_and_after_their_lifetime(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    let me =
        |s: Session| async move { call(&api.router, &s, "GET", "/api/v1/me", None, false).await };
    assert_eq!(me(s.clone()).await.status, StatusCode::OK);
    // Used every 29 minutes it lasts.
    for _ in 0..3 {
        people.clock.advance(chrono::Duration::minutes(29)).unwrap();
        let answer = me(s.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    people.clock.advance(chrono::Duration::minutes(30)).unwrap();
    let idle = me(s.clone()).await;
    assert_eq!(idle.status, StatusCode::UNAUTHORIZED, "{idle:?}");
    assert_eq!(idle.code(), "session_ended");
    assert!(
        idle.message().contains("after 30 minutes without use"),
        "{idle:?}"
    );
    let ended = me(s).await;
    assert!(
        ended.message().contains("the session ended at"),
        "{ended:?}"
    );

    // Used every 25 minutes, it ends 12 hours after its sign-in all the same.
    let s = session(&api.router, "wangfang", OWN).await;
    let mut used = chrono::Duration::zero();
    loop {
        people.clock.advance(chrono::Duration::minutes(25)).unwrap();
        used += chrono::Duration::minutes(25);
        let answer = me(s.clone()).await;
        if used < chrono::Duration::hours(12) {
            assert_eq!(answer.status, StatusCode::OK, "after {used}: {answer:?}");
        } else {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
            assert!(
                answer.message().contains("12 hours after its sign-in"),
                "{answer:?}"
            );
            break;
        }
    }
}

/// Two servers on one database: a session signed in on A works on B; signed out on A, it is
/// refused by B at its very next request, and the cookie is cleared.
async fn signing_out_counts_at_once_on_every_server(people: People) {
    let a = &people.api;
    let second = Engine::open_with(
        people.db.options(),
        Arc::new(people.clock.clone()),
        Arc::new(WeekdaysOnly),
    )
    .await
    .expect("a second server opens");
    let b = api_on(second).await;
    let s = wangfang(a).await;
    let on_b = call(&b.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(on_b.status, StatusCode::OK, "{on_b:?}");
    assert_eq!(on_b.body["login"], "wangfang");

    // Signing out is state-changing: without the CSRF token a page of another site could.
    let forged = call(&a.router, &s, "DELETE", "/api/v1/session", None, false).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    let out = call(&a.router, &s, "DELETE", "/api/v1/session", None, true).await;
    assert_eq!(out.status, StatusCode::OK, "{out:?}");
    assert!(out.set_cookie().starts_with("yimen_session=;"), "{out:?}");
    assert!(out.set_cookie().contains("Max-Age=0"), "{out:?}");

    let refused = call(&b.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.code(), "session_ended");
    let on_a = call(&a.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(on_a.status, StatusCode::UNAUTHORIZED, "{on_a:?}");
    // A token has no session to end.
    let token = a
        .call("DELETE", "/api/v1/session", Some(&a.admin), None)
        .await;
    assert_eq!(token.status, StatusCode::FORBIDDEN, "{token:?}");
}

/// A session's POST, PUT, PATCH and DELETE carry its CSRF token (compared in constant time)
/// and, when they name one, the server's own origin; reads and bearer tokens need neither.
async fn a_session_needs_its_csrf_token_to_change_anything(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    let start =
        json!({"process": "case", "variables": {"name": "张三", "street": "east", "amount": 10}});
    let path = "/api/v1/instances";

    let without = call(&api.router, &s, "POST", path, Some(start.clone()), false).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN, "{without:?}");
    assert_eq!(without.code(), "csrf_refused");
    assert!(without.message().contains("X-CSRF-Token"), "{without:?}");
    let other = Session {
        csrf: "0".repeat(64),
        ..s.clone()
    };
    let wrong = call(&api.router, &other, "POST", path, Some(start.clone()), true).await;
    assert_eq!(wrong.code(), "csrf_refused", "{wrong:?}");
    let foreign = send(
        &api.router,
        with_body(
            json_request("POST", path, Some(start.clone()))
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .header("host", "yimen.example:8080")
                .header("origin", "https://evil.example"),
            Some(start.clone()),
        ),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{foreign:?}");
    assert_eq!(foreign.code(), "csrf_refused");
    // None of them did anything.
    let tasks = api.get("/api/v1/tasks?queue=window", &api.admin).await;
    assert_eq!(tasks.body["tasks"], json!([]), "{tasks:?}");

    let own = send(
        &api.router,
        with_body(
            json_request("POST", path, Some(start.clone()))
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .header("host", "yimen.example:8080")
                .header("origin", "https://yimen.example:8080"),
            Some(start.clone()),
        ),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{own:?}");
    let with = call(&api.router, &s, "POST", path, Some(start.clone()), true).await;
    assert_eq!(with.status, StatusCode::CREATED, "{with:?}");
    let read = call(&api.router, &s, "GET", "/api/v1/tasks", None, false).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["tasks"].as_array().map(Vec::len), Some(2));

    // A bearer token needs no CSRF token, and one sent beside a cookie decides.
    let token = api.token("east-window", &["window"], &["east"]).await;
    let by_token = api.post(path, &token, start.clone()).await;
    assert_eq!(by_token.status, StatusCode::CREATED, "{by_token:?}");
    let both = send(
        &api.router,
        with_body(
            json_request("POST", path, Some(start.clone()))
                .header("cookie", &s.cookie)
                .header("authorization", format!("Bearer {token}")),
            Some(start),
        ),
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{both:?}");
}

/// With a one-time password a session may change it (or sign out) and nothing else; the new
/// one has at least 10 characters; once changed, the person's other sessions end.
async fn a_one_time_password_allows_only_changing_it(people: People) {
    let api = &people.api;
    let once = add_user(api, "lina", "李娜", &["window"], &["east"]).await;
    let s = session(&api.router, "lina", &once).await;
    let other = session(&api.router, "lina", &once).await;
    for (method, path) in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/definitions"),
    ] {
        let answer = call(&api.router, &s, method, path, None, true).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}: {answer:?}");
        assert_eq!(answer.code(), "password_change_required", "{answer:?}");
        assert!(
            answer.message().contains("/api/v1/session/password"),
            "{answer:?}"
        );
    }
    let change = |current: &str, new: &str| json!({"current": current, "new": new});
    let path = "/api/v1/session/password";
    let wrong = call(
        &api.router,
        &s,
        "POST",
        path,
        Some(change("not it at all", OWN)),
        true,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong:?}");
    assert_eq!(
        wrong.body["error"]["details"]["problems"][0]["field"],
        "current"
    );
    let short = call(
        &api.router,
        &s,
        "POST",
        path,
        Some(change(&once, "short")),
        true,
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY, "{short:?}");
    assert!(
        short.message().contains("at least 10 characters"),
        "the minimum is said: {short:?}"
    );
    let same = call(
        &api.router,
        &s,
        "POST",
        path,
        Some(change(&once, &once)),
        true,
    )
    .await;
    assert_eq!(same.status, StatusCode::UNPROCESSABLE_ENTITY, "{same:?}");
    let done = call(
        &api.router,
        &s,
        "POST",
        path,
        Some(change(&once, OWN)),
        true,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["must_change_password"], json!(false));

    let me = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    let gone = call(&api.router, &other, "GET", "/api/v1/me", None, false).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED, "{gone:?}");
    // The one-time password is spent; the new one signs in, with nothing to change.
    assert_eq!(
        sign_in(&api.router, "lina", &once).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = sign_in(&api.router, "lina", OWN).await;
    assert_eq!(
        again.body["must_change_password"],
        json!(false),
        "{again:?}"
    );
}

/// Disabling an account ends its sessions at once and refuses its sign-ins (403 after the
/// right password only; a wrong one answers as any wrong one); enabling it lets it sign in.
async fn a_disabled_account_is_refused(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    let disabled = api
        .post("/api/v1/users/wangfang/disable", &api.admin, json!({}))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{disabled:?}");
    assert!(disabled.body["disabled_at"].is_string(), "{disabled:?}");
    let refused = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.code(), "session_ended");
    let sign = sign_in(&api.router, "wangfang", OWN).await;
    assert_eq!(sign.status, StatusCode::FORBIDDEN, "{sign:?}");
    assert_eq!(sign.code(), "account_disabled");
    let wrong = sign_in(&api.router, "wangfang", "wrong password!").await;
    assert_eq!(wrong.code(), "sign_in_failed", "{wrong:?}");
    let missing = api
        .post("/api/v1/users/nobody/disable", &api.admin, json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");

    // Enabled again, the person signs in with their password; the old session stays ended.
    let enabled = api
        .post("/api/v1/users/wangfang/enable", &api.admin, json!({}))
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{enabled:?}");
    assert!(enabled.body["disabled_at"].is_null(), "{enabled:?}");
    let back = sign_in(&api.router, "wangfang", OWN).await;
    assert_eq!(back.status, StatusCode::OK, "{back:?}");
    let still = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(still.status, StatusCode::UNAUTHORIZED, "{still:?}");
}

/// Every attempt is recorded with its result; admins read them newest first, a page at a time;
/// other tokens and people may not.
async fn admins_read_the_sign_ins_and_others_may_not(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    sign_in(&api.router, "wangfang", "wrong password!").await;
    sign_in(&api.router, "nobody", "wrong password!").await;
    api.post("/api/v1/users/wangfang/disable", &api.admin, json!({}))
        .await;
    sign_in(&api.router, "wangfang", OWN).await;

    let all = api.get("/api/v1/sign-ins", &api.admin).await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let results: Vec<(String, String)> = all.body["sign_ins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["login"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("wangfang", "disabled"),
        ("nobody", "unknown_login"),
        ("wangfang", "bad_password"),
        ("wangfang", "ok"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(l, r)| (l.to_string(), r.to_string()))
        .collect();
    assert_eq!(results, expected, "newest first");
    assert_eq!(all.body["next_page"], Value::Null);
    assert!(all.body["sign_ins"][0]["at"].is_string());

    let first = api.get("/api/v1/sign-ins?page_size=3", &api.admin).await;
    assert_eq!(first.body["sign_ins"].as_array().unwrap().len(), 3);
    assert_eq!(first.body["next_page"], json!(2));
    let second = api
        .get("/api/v1/sign-ins?page_size=3&page=2", &api.admin)
        .await;
    assert_eq!(second.body["sign_ins"][0]["result"], "ok", "{second:?}");
    assert_eq!(second.body["next_page"], Value::Null);
    // The same paging rule as every list: at most 100 a page.
    let too_many = api.get("/api/v1/sign-ins?page_size=101", &api.admin).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST, "{too_many:?}");

    let window = api.token("east-window", &["window"], &["east"]).await;
    let refused = api.get("/api/v1/sign-ins", &window).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let once = add_user(api, "zhao", "赵敏", &["review"], &[]).await;
    let person = session(&api.router, "zhao", &once).await;
    call(
        &api.router,
        &person,
        "POST",
        "/api/v1/session/password",
        Some(json!({"current": once, "new": OWN})),
        true,
    )
    .await;
    let by_person = call(&api.router, &person, "GET", "/api/v1/sign-ins", None, false).await;
    assert_eq!(by_person.status, StatusCode::FORBIDDEN, "{by_person:?}");
    let users = call(&api.router, &person, "GET", "/api/v1/users", None, false).await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "{users:?}");
    drop(s);
}

/// `GET /me`: kind, id, name and login; roles and units; the tasks the person claimed; open
/// tasks per queue they work, of their units only. A role's duties apply to people as to
/// tokens.
async fn me_names_the_caller_their_tasks_and_their_queues(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    api.start_case("east", 10).await;
    api.start_case("east", 20).await;
    api.start_case("west", 30).await;

    let me = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["login"], "wangfang");
    assert_eq!(me.body["name"], "王芳");
    assert_eq!(me.body["roles"], json!(["window"]));
    assert_eq!(me.body["org_units"], json!(["east"]));
    assert_eq!(me.body["oversees"], json!(false));
    assert_eq!(me.body["tasks"], json!([]));
    assert_eq!(
        me.body["queues"],
        json!([{"queue": "window", "open": 2}]),
        "west's task is not counted"
    );
    let id = me.body["id"].as_str().unwrap().to_string();

    let claimed = call(
        &api.router,
        &s,
        "POST",
        "/api/v1/tasks/claim",
        Some(json!({"queues": ["window"], "worker": "desk-3", "max": 1, "lease_seconds": 600})),
        true,
    )
    .await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
    let task = claimed.body["tasks"][0]["id"].as_str().unwrap().to_string();
    let me = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["tasks"][0]["id"], task.as_str(), "{me:?}");
    assert_eq!(me.body["tasks"][0]["state"], "claimed", "{me:?}");
    assert_eq!(me.body["queues"], json!([{"queue": "window", "open": 1}]));

    // Duties from the role declarations: `audit` oversees.
    let once = add_user(api, "auditor", "审计员", &["audit"], &[]).await;
    let auditor = session(&api.router, "auditor", &once).await;
    call(
        &api.router,
        &auditor,
        "POST",
        "/api/v1/session/password",
        Some(json!({"current": once, "new": OWN})),
        true,
    )
    .await;
    let me = call(&api.router, &auditor, "GET", "/api/v1/me", None, false).await;
    assert_eq!(me.body["oversees"], json!(true), "{me:?}");
    let ledger = call(&api.router, &auditor, "GET", "/api/v1/ledger", None, false).await;
    assert_eq!(ledger.status, StatusCode::OK, "{ledger:?}");
    let window_ledger = call(&api.router, &s, "GET", "/api/v1/ledger", None, false).await;
    assert_eq!(window_ledger.status, StatusCode::FORBIDDEN);

    // A token is itself: no login.
    let me = api.get("/api/v1/me", &api.admin).await;
    assert_eq!(me.body["kind"], "token", "{me:?}");
    assert_eq!(me.body["login"], Value::Null);
    assert_eq!(me.body["name"], "admin");
    assert_eq!(
        me.body["queues"].as_array().map(Vec::len),
        Some(1),
        "{me:?}"
    );
}

/// Accounts are made, listed and given roles by admins only, with roles read as a token's and
/// a login taken once; a role change counts from the session's next call.
async fn admins_manage_accounts_with_roles_checked(people: People) {
    let api = &people.api;
    let s = wangfang(api).await;
    let bad = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": "bad login", "name": "", "roles": ["no such role!"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    let fields: Vec<&str> = bad.body["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["login", "name", "roles"]);
    let none = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": "x", "name": "X", "roles": []}),
        )
        .await;
    assert!(none.message().contains("roles"), "{none:?}");
    let taken = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": "WANGFANG", "name": "另一个王芳", "roles": ["window"]}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    let by_person = call(
        &api.router,
        &s,
        "POST",
        "/api/v1/users",
        Some(json!({"login": "x", "name": "X", "roles": ["admin"]})),
        true,
    )
    .await;
    assert_eq!(by_person.status, StatusCode::FORBIDDEN, "{by_person:?}");

    let roles = api
        .call(
            "PUT",
            "/api/v1/users/wangfang/roles",
            Some(&api.admin),
            Some(json!({"roles": ["window", "review"], "org_units": ["west"]})),
        )
        .await;
    assert_eq!(roles.status, StatusCode::OK, "{roles:?}");
    let me = call(&api.router, &s, "GET", "/api/v1/me", None, false).await;
    assert_eq!(me.body["roles"], json!(["window", "review"]), "{me:?}");
    assert_eq!(me.body["org_units"], json!(["west"]));
    let bad_roles = api
        .call(
            "PUT",
            "/api/v1/users/wangfang/roles",
            Some(&api.admin),
            Some(json!({"roles": ["a:b:c"]})),
        )
        .await;
    assert_eq!(bad_roles.status, StatusCode::UNPROCESSABLE_ENTITY);

    let list = api.get("/api/v1/users", &api.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    assert_eq!(list.body["users"][0]["login"], "wangfang");
    assert!(
        !list.body.to_string().contains("argon2"),
        "no password hash is listed"
    );
}

/// Failed sign-ins from one address count toward its limit of failed authentications: over
/// it, even the right password answers 429 until the minute is over; another address signs in.
async fn failed_sign_ins_count_toward_the_limit_of_an_address(people: People) {
    let api = &people.api;
    let once = add_user(api, "wangfang", "王芳", &["window"], &[]).await;
    let limited = api::router(ApiState::new(
        api.engine.clone(),
        ApiConfig {
            auth_failures_per_minute: 3,
            ..test_config()
        },
    ));
    let from = |address: &str, login: &str, password: &str| {
        let body = json!({"login": login, "password": password});
        let mut request = with_body(
            json_request("POST", "/api/v1/session", Some(body.clone())),
            Some(body),
        );
        let peer: std::net::SocketAddr = address.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    };
    for login in ["a", "b", "c"] {
        let answer = send(&limited, from("10.0.0.1:5000", login, "wrong password!")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    }
    let blocked = send(&limited, from("10.0.0.1:5001", "wangfang", &once)).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "{blocked:?}");
    assert_eq!(blocked.code(), "too_many_requests");
    let other = send(&limited, from("10.0.0.2:5000", "wangfang", &once)).await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");
    // The address is recorded with each attempt.
    let log = api.get("/api/v1/sign-ins", &api.admin).await;
    assert_eq!(log.body["sign_ins"][0]["address"], "10.0.0.2", "{log:?}");
}

/// Each error code of accounts and sessions is documented.
#[test]
fn the_codes_of_accounts_are_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors/api.md"),
    )
    .unwrap();
    for code in [
        "sign_in_failed",
        "sign_in_locked",
        "session_ended",
        "csrf_refused",
        "password_change_required",
        "account_disabled",
    ] {
        assert!(
            doc.contains(&format!("`{code}`")),
            "{code} in docs/errors/api.md"
        );
    }
}
