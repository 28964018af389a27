//! What operators read: `GET /metrics` (parsed as Prometheus parses it), `GET /api/v1/ready`
//! and the request id every answer carries; on SQLite and on PostgreSQL (`*::postgres`,
//! skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::TimeZone;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use tower::ServiceExt;
use yimen_engine::api::{self, ApiState};
use yimen_engine::clock::ManualClock;

on_both_databases!(
    metrics_count_claims_and_completions_by_route_template,
    ready_fails_when_the_calendars_miss_the_current_year,
    every_answer_carries_a_request_id,
);

/// A scrape of `api`'s engine through the metrics listener's router.
async fn scrape(api: &TestApi) -> prometheus_parse::Scrape {
    let state = ApiState::new(api.engine.clone(), test_config());
    let response = api::metrics_router(state)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none).
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn metrics_count_claims_and_completions_by_route_template(api: TestApi) {
    let before = scrape(&api).await;
    assert_eq!(value(&before, "yimen_tasks_claimed_total", &[]), 0.0);
    assert!(
        before
            .samples
            .iter()
            .any(|s| s.metric == "yimen_db_pool_max_connections"),
        "the pool is shown"
    );
    let instance = api.start_case("east", 10).await;
    let started = scrape(&api).await;
    assert_eq!(value(&started, "yimen_instances_started_total", &[]), 1.0);
    assert_eq!(
        value(&started, "yimen_open_tasks", &[("queue", "window")]),
        1.0,
        "the new case's task is open in its queue"
    );

    let window = api.token("window", &["window"], &[]).await;
    let tasks = api.claim(&window, "window", 10, 0).await;
    assert_eq!(tasks.len(), 1);
    let id = tasks[0]["id"].as_str().unwrap().to_string();
    let lock = tasks[0]["lock_token"].as_str().unwrap();
    let claimed = scrape(&api).await;
    assert_eq!(value(&claimed, "yimen_tasks_claimed_total", &[]), 1.0);
    assert_eq!(value(&claimed, "yimen_tasks_completed_total", &[]), 0.0);
    assert_eq!(
        value(&claimed, "yimen_open_tasks", &[("queue", "window")]),
        0.0
    );

    let done = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &window,
            json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let completed = scrape(&api).await;
    assert_eq!(value(&completed, "yimen_tasks_completed_total", &[]), 1.0);
    assert_eq!(value(&completed, "yimen_tasks_claimed_total", &[]), 1.0);
    assert!(
        value(&completed, "yimen_commit_batch_events_count", &[]) >= 3.0,
        "the start, the claim and the completion each went through a batch"
    );

    let route = "/api/v1/tasks/:id/complete";
    assert_eq!(
        value(
            &completed,
            "yimen_http_requests_total",
            &[("route", route), ("method", "POST"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &completed,
            "yimen_http_request_duration_seconds_count",
            &[("route", route), ("method", "POST")]
        ),
        1.0
    );
    // Routes by template only: no path of a case or task in any label.
    for sample in &completed.samples {
        for (_, label) in sample.labels.iter() {
            assert!(
                !label.contains(&id) && !label.contains(&instance),
                "{} has a raw path: {label}",
                sample.metric
            );
        }
    }
    let unknown = api.get(&format!("/api/v1/nowhere/{id}"), &api.admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let after = scrape(&api).await;
    assert_eq!(
        value(
            &after,
            "yimen_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
}

async fn ready_fails_when_the_calendars_miss_the_current_year(db: Db) {
    let calendars = yimen_engine::calendar::Calendars::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../calendars"),
    )
    .expect("the repository's calendars");
    let covered = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap();
    let clock = ManualClock::new(covered);
    let engine = db.open(Arc::new(clock.clone()), Arc::new(calendars)).await;
    let api = api_on(engine).await;

    let ready = api.call("GET", "/api/v1/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    assert_eq!(ready.body["status"], "ready");
    let names: Vec<&str> = ready.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["database", "migrations", "calendars"]);
    assert!(
        ready.body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    // The clock in a year no calendar has data for.
    clock
        .set(chrono::Utc.with_ymd_and_hms(2099, 6, 1, 1, 0, 0).unwrap())
        .expect("forward");
    let not = api.call("GET", "/api/v1/ready", None, None).await;
    assert_eq!(not.status, StatusCode::SERVICE_UNAVAILABLE, "{not:?}");
    assert_eq!(not.body["status"], "not ready");
    let failed: Vec<&Value> = not.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{not:?}");
    assert_eq!(failed[0]["name"], "calendars");
    let detail = failed[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("cn_mainland") && detail.contains("2099"),
        "{detail}"
    );
    assert!(
        failed[0]["fix"].as_str().unwrap().contains("2099"),
        "{not:?}"
    );

    // Liveness is another question: the process is up.
    let health = api.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
}

async fn every_answer_carries_a_request_id(api: TestApi) {
    let send = |request: Request<Body>| {
        let router = api.router.clone();
        async move { router.oneshot(request).await.expect("answers") }
    };
    let fresh = send(Request::get("/api/v1/health").body(Body::empty()).unwrap()).await;
    let id = fresh.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let other = send(Request::get("/api/v1/health").body(Body::empty()).unwrap()).await;
    assert_ne!(
        other.headers()["x-request-id"],
        id.as_str(),
        "one id per request"
    );

    // A proxy's id is kept; one that is not plain text is replaced.
    let given = send(
        Request::get("/api/v1/definitions")
            .header("x-request-id", "edge-42.a")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(given.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        given.headers()["x-request-id"],
        "edge-42.a",
        "refused calls too"
    );
    let odd = send(
        Request::get("/api/v1/health")
            .header("x-request-id", "a b<script>")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let replaced = odd.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
}
