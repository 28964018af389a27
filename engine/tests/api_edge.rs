//! The edge where input enters: a bad value fails its own request with a 4xx, never a 500 and
//! never the other requests committed in the same batch; a waiting claim of a revoked token
//! takes nothing; failed authentications are limited per address and their record stays
//! small; request sizes are capped. On SQLite and on PostgreSQL (`*::postgres`, skipped
//! without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use support::*;

on_both_databases!(
    bad_starts_fail_alone_through_the_api,
    a_value_the_database_refuses_fails_only_its_event,
    a_waiting_claim_of_a_revoked_token_takes_nothing,
    failed_authentications_are_limited_and_recorded_small,
    oversized_requests_are_refused_with_the_error_json,
);

fn start_body(key: String, street: &str) -> Value {
    json!({"process": "case", "business_key": key,
           "variables": {"name": "张三丰", "street": street, "amount": 10}})
}

/// Good starts and bad ones sent at once: every good one is created, every bad one answers
/// 4xx naming what to fix.
async fn bad_starts_fail_alone_through_the_api(api: TestApi) {
    let api = Arc::new(api);
    let mut good = tokio::task::JoinSet::new();
    let mut bad = tokio::task::JoinSet::new();
    for round in 0..8 {
        for i in 0..5 {
            let api = api.clone();
            good.spawn(async move {
                let answer = api
                    .post(
                        "/api/v1/instances",
                        &api.admin,
                        start_body(format!("good-{round}-{i}"), "east"),
                    )
                    .await;
                (answer.status, answer.body)
            });
        }
        let bodies = [
            ("business_key", start_body("k".repeat(12 * 1024), "east")),
            (
                "business_key",
                start_body(format!("nul-{round}\0x"), "east"),
            ),
            (
                "/variables/street",
                start_body(format!("v-{round}"), "ea\0st"),
            ),
        ];
        for (field, body) in bodies {
            let api = api.clone();
            bad.spawn(async move {
                let answer = api.post("/api/v1/instances", &api.admin, body).await;
                (field, answer.status, answer.body)
            });
        }
    }
    while let Some(done) = good.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::CREATED, "a good start failed: {body}");
    }
    while let Some(done) = bad.join_next().await {
        let (field, status, body) = done.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "names {field}: {body}"
        );
    }

    // The other texts that reach the database: worker and queue names, token names, path and
    // query parameters.
    let claim = api
        .post(
            "/api/v1/tasks/claim",
            &api.admin,
            json!({"queues": ["window"], "worker": "w\0", "max": 1}),
        )
        .await;
    assert_eq!(claim.status, StatusCode::UNPROCESSABLE_ENTITY, "{claim:?}");
    let claim = api
        .post(
            "/api/v1/tasks/claim",
            &api.admin,
            json!({"queues": ["window"], "worker": "w".repeat(5000), "max": 1}),
        )
        .await;
    assert_eq!(claim.status, StatusCode::UNPROCESSABLE_ENTITY, "{claim:?}");
    assert!(claim.message().contains("worker"), "{claim:?}");
    let token = api
        .post(
            "/api/v1/tokens",
            &api.admin,
            json!({"name": "x\u{1}y", "roles": ["window"]}),
        )
        .await;
    assert_eq!(token.status, StatusCode::UNPROCESSABLE_ENTITY, "{token:?}");
    for path in [
        "/api/v1/instances/abc%00def".to_string(),
        format!("/api/v1/instances/{}", "i".repeat(4000)),
        "/api/v1/tasks?queue=win%00dow".to_string(),
    ] {
        let answer = api.get(&path, &api.admin).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}: {answer:?}");
    }
}

/// A value that passes the checks before the batch but that the database refuses (PostgreSQL
/// stores no NUL in text; here in the organisation unit a task keeps as a column) fails its own
/// event with 422; the events committed in the same batches all succeed. SQLite stores it.
async fn a_value_the_database_refuses_fails_only_its_event(api: TestApi) {
    let postgres = api.on_postgres();
    let engine = api.engine.clone();
    let mut all = tokio::task::JoinSet::new();
    for i in 0..60 {
        let engine = engine.clone();
        all.spawn(async move {
            let bad = i % 10 == 3;
            let street = if bad { "ea\0st" } else { "east" };
            let vars = json!({"name": "张三丰", "street": street, "amount": 10});
            let answer = engine
                .start(yimen_engine::StartRequest {
                    process: "case".into(),
                    business_key: Some(format!("key-{i}")),
                    vars: vars.as_object().cloned().unwrap(),
                    actor: "tester".into(),
                })
                .await;
            (bad, answer)
        });
    }
    let (mut good, mut refused) = (0, 0);
    while let Some(done) = all.join_next().await {
        match done.unwrap() {
            (false, answer) => {
                answer.expect("a good start in a batch with a bad one succeeds");
                good += 1;
            }
            (true, Ok(_)) => assert!(!postgres, "PostgreSQL stores no NUL in text"),
            (true, Err(e)) => {
                assert_eq!(e.status(), 422, "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(good, 54);
    if postgres {
        assert_eq!(refused, 6);
    }
    // Each start answered on its own: the batch they shared was written again without them.
    let listed = api.get("/api/v1/tasks?queue=window", &api.admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
}

/// A claim long-polling when its token is revoked answers 401 when the next task appears, and
/// leaves the task (and the case data it carries) to others.
async fn a_waiting_claim_of_a_revoked_token_takes_nothing(api: TestApi) {
    let api = Arc::new(api);
    let worker = api.token("night-worker", &["window"], &[]).await;
    let waiting = {
        let api = api.clone();
        tokio::spawn(async move {
            api.post(
                "/api/v1/tasks/claim",
                &worker,
                json!({"queues": ["window"], "worker": "w1", "max": 1, "wait_seconds": 20}),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let revoked = api
        .post("/api/v1/tokens/night-worker/revoke", &api.admin, json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let instance = api.start_case("east", 10).await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(15), waiting)
        .await
        .expect("the waiting claim answers")
        .unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(answer.message().contains("revoked"), "{answer:?}");
    // The task is still there for a valid token.
    let tasks = api.claim(&api.admin, "window", 1, 0).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["instance_id"], instance.as_str());
}

/// A GET from `address` with `token` (none: no header).
fn from(address: [u8; 4], path: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .uri(path)
        .extension(ConnectInfo(SocketAddr::from((address, 40000))));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

/// Guessing tokens from one address is cut off after 20 failures a minute (429 with
/// `Retry-After`, valid token or not), other addresses go on; the refusals are one row per
/// address, reason and minute with a count, their paths cut short.
async fn failed_authentications_are_limited_and_recorded_small(api: TestApi) {
    let long = format!("/api/v1/instances/{}", "x".repeat(5000));
    let mut statuses = Vec::new();
    for i in 0..30 {
        let answer = api
            .send(from([10, 0, 0, 7], &long, Some(&format!("guess-{i}"))))
            .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(&statuses[..20], &[401; 20], "{statuses:?}");
    assert_eq!(&statuses[20..], &[429; 10], "{statuses:?}");
    let request = from([10, 0, 0, 7], "/api/v1/definitions", Some(&api.admin));
    let response = tower::ServiceExt::oneshot(api.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another address is not held up.
    let other = api
        .send(from([10, 0, 0, 8], "/api/v1/definitions", Some(&api.admin)))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");

    let listed = api.get("/api/v1/refusals", &api.admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    let rows: Vec<&Value> = listed.body["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["address"] == "10.0.0.7")
        .collect();
    // One row a minute (two should the calls have straddled a minute).
    assert!((1..=2).contains(&rows.len()), "{rows:?}");
    let count: i64 = rows.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(count, 20, "{rows:?}");
    for row in rows {
        assert!(
            row["path"].as_str().unwrap().chars().count() <= 257,
            "{row}"
        );
    }
}

/// Path and query over 8 KB answer 414, headers over 16 KB 431, a body over 2 MB 413: each
/// with the error JSON.
async fn oversized_requests_are_refused_with_the_error_json(api: TestApi) {
    let uri = api
        .get(
            &format!("/api/v1/instances/{}", "x".repeat(9000)),
            &api.admin,
        )
        .await;
    assert_eq!(uri.status, StatusCode::URI_TOO_LONG, "{uri:?}");
    assert_eq!(uri.code(), "uri_too_long");
    let request = Request::builder()
        .uri("/api/v1/definitions")
        .header("authorization", format!("Bearer {}", api.admin))
        .header("x-padding", "p".repeat(20_000))
        .body(Body::empty())
        .unwrap();
    let headers = api.send(request).await;
    assert_eq!(headers.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(headers.code(), "headers_too_large");
    let big = json!({"process": "case", "variables": {"name": "x".repeat(3 << 20)}});
    let body = api.post("/api/v1/instances", &api.admin, big.clone()).await;
    assert_eq!(
        body.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        body.code()
    );
    assert_eq!(body.code(), "payload_too_large");
    // A declared length over the limit is refused before the body is read.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/instances")
        .header("authorization", format!("Bearer {}", api.admin))
        .header("content-type", "application/json")
        .header("content-length", (3u64 << 20).to_string())
        .body(Body::from("{}"))
        .unwrap();
    let body = api.send(request).await;
    assert_eq!(
        body.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        body.code()
    );
    assert_eq!(body.code(), "payload_too_large");
}
