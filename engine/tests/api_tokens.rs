//! Machine tokens that expire and are rotated, on SQLite and on PostgreSQL (`*::postgres`,
//! skipped without `YIMEN_TEST_POSTGRES`): an expired token is refused though cached, with its
//! date and how to rotate it, and the refusal is recorded under its name; a rotation gives a new
//! secret, the old one working until the end of its overlap, on every server.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use yimen_engine::clock::ManualClock;
use yimen_engine::{Engine, WeekdaysOnly};

on_both_databases!(
    an_expired_token_is_refused_though_cached,
    a_rotation_keeps_the_old_secret_until_its_overlap_ends,
    an_expired_token_is_rotated_to_a_working_one,
    a_rotation_counts_at_once_on_every_server,
    lifetimes_that_do_not_read_are_refused,
);

/// An API (a server) over `db` on the simulated clock `clock`, the `case` model deployed; the
/// first one on a database has a fresh admin token.
async fn server(db: &Db, clock: &ManualClock) -> TestApi {
    let engine = Engine::open_with(
        db.options(),
        Arc::new(clock.clone()),
        Arc::new(WeekdaysOnly),
    )
    .await
    .expect("engine opens");
    deploy_model(&engine, case_model(), Default::default()).await;
    api_on(engine).await
}

/// Makes a token with `body`'s fields beside its name and `window` role: the answer.
async fn create(api: &TestApi, name: &str, more: Value) -> Answer {
    let mut body = json!({"name": name, "roles": ["window"]});
    for (k, v) in more.as_object().expect("object") {
        body[k] = v.clone();
    }
    api.post("/api/v1/tokens", &api.admin, body).await
}

/// The token of this id as `GET /tokens` lists it.
async fn listed(api: &TestApi, id: &Value) -> Value {
    let list = api.get("/api/v1/tokens", &api.admin).await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    list.body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| &t["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} listed: {list:?}"))
}

fn secret(answer: &Answer) -> String {
    answer.body["token"].as_str().expect("token").to_string()
}

async fn works(api: &TestApi, token: &str) -> Answer {
    api.get("/api/v1/tasks?queue=window", token).await
}

/// A token made to work a day works (and is cached), then, a day later, answers 401
/// `token_expired` at once though cached, saying when it expired and how to rotate it; the
/// refusal is recorded under its name. A token without an expiry keeps working.
async fn an_expired_token_is_refused_though_cached(db: Db) {
    let clock = ManualClock::new(t(MONDAY));
    let api = server(&db, &clock).await;
    let made = create(&api, "nightly-worker", json!({"expires_in": "1d"})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    // In the calendar's zone with its offset, as the history gives times.
    assert_eq!(
        made.body["expires_at"], "2026-09-29T09:00:00.000+08:00",
        "{made:?}"
    );
    assert_eq!(made.body["state"], "active");
    let worker = secret(&made);
    let forever = secret(&create(&api, "forever", json!({})).await);
    for _ in 0..2 {
        let answer = works(&api, &worker).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }

    clock.advance(Duration::hours(23)).expect("forward");
    assert_eq!(works(&api, &worker).await.status, StatusCode::OK);
    clock.advance(Duration::hours(1)).expect("forward");
    let refused = works(&api, &worker).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.code(), "token_expired", "{refused:?}");
    for words in [
        "`nightly-worker` expired at 2026-09-29T01:00:00Z",
        "yimen token rotate nightly-worker",
    ] {
        assert!(refused.message().contains(words), "{words}: {refused:?}");
    }
    assert_eq!(listed(&api, &made.body["id"]).await["state"], "expired");

    let refusals = api.get("/api/v1/refusals", &api.admin).await;
    let recorded = refusals.body["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .find(|r| r["status"] == 401)
        .cloned()
        .unwrap_or_else(|| panic!("the refusal is recorded: {refusals:?}"));
    assert_eq!(recorded["token"], "nightly-worker", "{recorded:?}");
    assert!(
        recorded["reason"]
            .as_str()
            .unwrap_or("")
            .contains("expired at"),
        "{recorded:?}"
    );

    clock.advance(Duration::days(3650)).expect("forward");
    assert_eq!(works(&api, &forever).await.status, StatusCode::OK);
}

/// A rotation with an overlap of an hour: the new secret works at once, with the old token's
/// name, roles, units and lifetime; the old one works for the hour, then answers 401 (revoked
/// at the overlap's end). A rotation without an overlap stops the old secret at once.
async fn a_rotation_keeps_the_old_secret_until_its_overlap_ends(db: Db) {
    let clock = ManualClock::new(t(MONDAY));
    let api = server(&db, &clock).await;
    let made = create(
        &api,
        "east-worker",
        json!({"expires_in": "90d", "org_units": ["东城街道"]}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let old = secret(&made);
    assert_eq!(works(&api, &old).await.status, StatusCode::OK);

    clock.advance(Duration::days(30)).expect("forward");
    let rotated = api
        .post(
            "/api/v1/tokens/east-worker/rotate",
            &api.admin,
            json!({"overlap": "1h"}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{rotated:?}");
    let new = secret(&rotated);
    assert_ne!(new, old);
    assert_eq!(rotated.body["name"], "east-worker");
    assert_eq!(rotated.body["roles"], json!(["window"]));
    assert_eq!(rotated.body["org_units"], json!(["东城街道"]));
    // 90 days from the rotation, as the old one was made to work.
    assert_eq!(rotated.body["expires_at"], "2027-01-26T09:00:00.000+08:00");
    assert_eq!(rotated.body["replaced"]["id"], made.body["id"]);
    assert_eq!(
        rotated.body["replaced"]["revoked_at"],
        "2026-10-28T10:00:00.000+08:00"
    );
    assert_eq!(rotated.body["replaced"]["state"], "active");

    for token in [&old, &new] {
        let answer = works(&api, token).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    clock.advance(Duration::minutes(59)).expect("forward");
    assert_eq!(works(&api, &old).await.status, StatusCode::OK);
    clock.advance(Duration::minutes(1)).expect("forward");
    let refused = works(&api, &old).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.code(), "unauthorized", "{refused:?}");
    assert!(
        refused
            .message()
            .contains("`east-worker` was revoked at 2026-10-28T02:00:00Z"),
        "{refused:?}"
    );
    assert_eq!(works(&api, &new).await.status, StatusCode::OK);
    assert_eq!(listed(&api, &made.body["id"]).await["state"], "revoked");
    assert_eq!(listed(&api, &rotated.body["id"]).await["state"], "active");

    // Without an overlap the secret it replaces stops at once.
    let again = api
        .post("/api/v1/tokens/east-worker/rotate", &api.admin, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    let refused = works(&api, &new).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(works(&api, &secret(&again)).await.status, StatusCode::OK);
}

/// An expired token is rotated: the new secret works for the given `expires_in`; the expired
/// one stays refused. Rotating needs an admin, and a name that is not revoked.
async fn an_expired_token_is_rotated_to_a_working_one(db: Db) {
    let clock = ManualClock::new(t(MONDAY));
    let api = server(&db, &clock).await;
    let made = create(&api, "hourly", json!({"expires_in": "1h"})).await;
    let old = secret(&made);
    clock.advance(Duration::hours(2)).expect("forward");
    assert_eq!(works(&api, &old).await.code(), "token_expired");

    let other = secret(&create(&api, "other", json!({})).await);
    let refused = api
        .post("/api/v1/tokens/hourly/rotate", &other, json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

    let rotated = api
        .post(
            "/api/v1/tokens/hourly/rotate",
            &api.admin,
            json!({"expires_in": "30d"}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{rotated:?}");
    assert_eq!(rotated.body["expires_at"], "2026-10-28T11:00:00.000+08:00");
    assert_eq!(works(&api, &secret(&rotated)).await.status, StatusCode::OK);
    assert_eq!(works(&api, &old).await.status, StatusCode::UNAUTHORIZED);

    let revoked = api
        .post("/api/v1/tokens/other/revoke", &api.admin, json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    for name in ["other", "never-made"] {
        let missing = api
            .post(
                &format!("/api/v1/tokens/{name}/rotate"),
                &api.admin,
                json!({}),
            )
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");
    }
}

/// Two servers on one database: B has the token cached; A rotates it without an overlap; B
/// refuses the old secret at its very next request and takes the new one.
async fn a_rotation_counts_at_once_on_every_server(db: Db) {
    let clock = ManualClock::new(t(MONDAY));
    let a = server(&db, &clock).await;
    let b = server(&db, &clock).await;
    let old = secret(&create(&a, "shared", json!({"expires_in": "90d"})).await);
    for _ in 0..2 {
        assert_eq!(works(&b, &old).await.status, StatusCode::OK);
    }
    let rotated = a
        .post("/api/v1/tokens/shared/rotate", &a.admin, json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{rotated:?}");
    let refused = works(&b, &old).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(works(&b, &secret(&rotated)).await.status, StatusCode::OK);
}

/// A lifetime or overlap that does not read, or is out of range, is a 422 naming its field;
/// nothing is made or rotated.
async fn lifetimes_that_do_not_read_are_refused(db: Db) {
    let clock = ManualClock::new(t(MONDAY));
    let api = server(&db, &clock).await;
    for (span, words) in [
        ("90", "does not read as a time span"),
        ("90 days", "does not read as a time span"),
        ("0d", "at least 1 minute"),
        ("3651d", "longer than ten years"),
    ] {
        let refused = create(&api, "bad", json!({"expires_in": span})).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        let problem = &refused.body["error"]["details"]["problems"][0];
        assert_eq!(problem["field"], "expires_in", "{refused:?}");
        assert!(
            problem["message"].as_str().unwrap_or("").contains(words),
            "{span}: {refused:?}"
        );
    }
    let made = create(&api, "bad", json!({})).await;
    assert_eq!(
        made.status,
        StatusCode::CREATED,
        "nothing was made before: {made:?}"
    );
    let token = secret(&made);
    for (body, field) in [
        (json!({"overlap": "8d"}), "overlap"),
        (json!({"overlap": "soon"}), "overlap"),
        (json!({"expires_in": "1s"}), "expires_in"),
    ] {
        let refused = api
            .post("/api/v1/tokens/bad/rotate", &api.admin, body)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        assert_eq!(
            refused.body["error"]["details"]["problems"][0]["field"], field,
            "{refused:?}"
        );
    }
    assert_eq!(works(&api, &token).await.status, StatusCode::OK);
}
