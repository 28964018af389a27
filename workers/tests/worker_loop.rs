//! The claim loop and the script runner against a fake server that records every call.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use yimen_workers::*;

#[derive(Default)]
struct Fake {
    pending: Vec<ClaimedTask>,
    calls: Vec<(String, String, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

fn task(id: &str) -> ClaimedTask {
    ClaimedTask {
        id: id.into(),
        instance_id: "i1".into(),
        process: "p".into(),
        node: "review".into(),
        label: None,
        queue: "window".into(),
        org_unit: None,
        fields: vec![],
        item: None,
        lock_token: format!("lock-{id}"),
        lease_expires_at: "2026-01-01T00:00:00Z".into(),
        outcomes: vec!["approve".into()],
        variables: json!({"amount": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        attempts: 0,
    }
}

async fn claim(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut fake = s.lock().unwrap();
    fake.calls.push(("claim".into(), String::new(), body));
    let tasks: Vec<ClaimedTask> = fake.pending.drain(..).collect();
    Json(json!({ "tasks": tasks }))
}

async fn act(
    State(s): State<Shared>,
    Path((id, action)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut fake = s.lock().unwrap();
    fake.calls.push((action.clone(), id.clone(), body));
    match action.as_str() {
        "extend" => (
            StatusCode::OK,
            Json(json!({"lease_expires_at": "2026-01-01T00:01:00Z"})),
        ),
        "fail" => (
            StatusCode::OK,
            Json(json!({"state": "retry", "attempts": 1})),
        ),
        "complete" if id == "stale" => (
            StatusCode::CONFLICT,
            Json(
                json!({"error": {"code": "lock_stale", "message": "the lease was lost", "details": null}}),
            ),
        ),
        _ => (StatusCode::OK, Json(json!({}))),
    }
}

async fn serve(fake: Shared) -> String {
    let app = Router::new()
        .route("/api/v1/tasks/claim", post(claim))
        .route("/api/v1/tasks/{id}/{action}", post(act))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config(max_tasks: u64) -> WorkerConfig {
    let mut config = WorkerConfig::new(vec!["window".into()], "w1");
    config.wait_seconds = 0;
    config.lease_seconds = 3;
    config.max_tasks = Some(max_tasks);
    config
}

fn calls(fake: &Shared, action: &str) -> Vec<(String, Value)> {
    fake.lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.0 == action)
        .map(|c| (c.1.clone(), c.2.clone()))
        .collect()
}

#[tokio::test]
async fn script_result_completes_the_task_with_its_lock_token() {
    let fake = Shared::default();
    fake.lock().unwrap().pending = vec![task("t1")];
    let url = serve(fake.clone()).await;
    let client = Client::new(&url, Some("secret".into())).unwrap();
    // The script sees the task on stdin and answers with the amount it read, doubled.
    let script = ScriptHandler::new(
        r#"read -r line; n=$(echo "$line" | sed 's/.*"amount":\([0-9]*\).*/\1/'); echo "{\"outcome\":\"approve\",\"variables\":{\"doubled\":$((n*2))}}""#,
    );
    let (_tx, rx) = watch::channel(false);
    let stats = run_worker(client, config(1), Arc::new(script), rx)
        .await
        .unwrap();
    assert_eq!(stats.completed, 1);
    let completes = calls(&fake, "complete");
    assert_eq!(completes.len(), 1);
    assert_eq!(completes[0].0, "t1");
    assert_eq!(
        completes[0].1,
        json!({"lock_token": "lock-t1", "outcome": "approve", "variables": {"doubled": 6}})
    );
    let claims = calls(&fake, "claim");
    assert_eq!(claims[0].1["queues"], json!(["window"]));
    assert_eq!(claims[0].1["worker"], json!("w1"));
}

#[tokio::test]
async fn failing_script_reports_its_stderr() {
    let fake = Shared::default();
    fake.lock().unwrap().pending = vec![task("t2")];
    let url = serve(fake.clone()).await;
    let client = Client::new(&url, None).unwrap();
    let script = ScriptHandler::new("echo 'registry offline' >&2; exit 3");
    let (_tx, rx) = watch::channel(false);
    let stats = run_worker(client, config(1), Arc::new(script), rx)
        .await
        .unwrap();
    assert_eq!(stats.failed, 1);
    let fails = calls(&fake, "fail");
    assert_eq!(fails.len(), 1);
    let error = fails[0].1["error"].as_str().unwrap();
    assert!(error.contains("status 3"), "{error}");
    assert!(error.contains("registry offline"), "{error}");
    assert!(calls(&fake, "complete").is_empty());
}

#[tokio::test]
async fn script_printing_no_json_fails_the_task() {
    let fake = Shared::default();
    fake.lock().unwrap().pending = vec![task("t3")];
    let url = serve(fake.clone()).await;
    let client = Client::new(&url, None).unwrap();
    let script = ScriptHandler::new("echo done");
    let (_tx, rx) = watch::channel(false);
    let stats = run_worker(client, config(1), Arc::new(script), rx)
        .await
        .unwrap();
    assert_eq!(stats.failed, 1);
    let error = calls(&fake, "fail")[0].1["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("\"outcome\""), "{error}");
    assert!(error.contains("done"), "{error}");
}

#[tokio::test]
async fn slow_handler_keeps_its_lease_and_refusal_is_counted() {
    let fake = Shared::default();
    fake.lock().unwrap().pending = vec![task("stale")];
    let url = serve(fake.clone()).await;
    let client = Client::new(&url, None).unwrap();
    let script = ScriptHandler::new(r#"sleep 2.5; echo '{"outcome":"approve"}'"#);
    let (_tx, rx) = watch::channel(false);
    let stats = run_worker(client, config(1), Arc::new(script), rx)
        .await
        .unwrap();
    assert_eq!(stats.refused, 1, "409 on complete is counted, not fatal");
    let extends = calls(&fake, "extend");
    assert!(!extends.is_empty(), "lease of 3 s extended every second");
    assert_eq!(
        extends[0].1,
        json!({"lock_token": "lock-stale", "lease_seconds": 3})
    );
}

#[tokio::test]
async fn shutdown_releases_a_task_whose_handler_does_not_finish() {
    let fake = Shared::default();
    fake.lock().unwrap().pending = vec![task("t4")];
    let url = serve(fake.clone()).await;
    let client = Client::new(&url, None).unwrap();
    let script = ScriptHandler::new("sleep 30");
    let (tx, rx) = watch::channel(false);
    let mut cfg = config(1);
    cfg.shutdown_grace = Duration::from_millis(200);
    let worker = tokio::spawn(run_worker(client, cfg, Arc::new(script), rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("worker stops within its grace time")
        .unwrap()
        .unwrap();
    assert_eq!(stats.released, 1);
    assert_eq!(
        calls(&fake, "release")[0].1,
        json!({"lock_token": "lock-t4"})
    );
    assert!(calls(&fake, "complete").is_empty());
}

#[tokio::test]
async fn error_envelope_becomes_a_typed_error() {
    let app = Router::new().route(
        "/api/v1/tasks/claim",
        post(|| async {
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": {"code": "forbidden", "message": "token may not claim from queue x", "details": {"queue": "x"}}})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(&format!("http://{addr}"), None).unwrap();
    let (_tx, rx) = watch::channel(false);
    let err = run_worker(client, config(1), Arc::new(ScriptHandler::new("true")), rx)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.code(), Some("forbidden"));
    assert!(!err.is_transient());
    assert!(err.to_string().contains("may not claim"));
}
