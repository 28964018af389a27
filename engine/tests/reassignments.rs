//! Reassigning a first responder's cases (A2 第六条: a window person away, the street leader
//! arranges a stand-in), on SQLite and on PostgreSQL (`*::postgres`, skipped without
//! `YIMEN_TEST_POSTGRES`): the leader hands 王芳's cases to 李娜 until a day; 李娜 claims and
//! completes 王芳's tasks, of cases registered before and during the period; after the day she
//! no longer can; the history and the ledger record it with the leader as actor; a window
//! person may not reassign (403); a stand-in of another street is refused (422); ending early
//! works. Time is the engine's simulated clock.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use tower::ServiceExt;
use yimen_engine::WeekdaysOnly;
use yimen_engine::clock::ManualClock;

on_both_databases!(
    a_leader_hands_a_first_responders_cases_to_a_stand_in_until_a_day,
    only_a_role_that_reassigns_may_and_only_within_its_unit,
    a_reassignment_ended_early_hands_nothing_more,
);

/// A desk: whoever registers the case forwards it and replies (`assignee started_by`); the
/// street leader may hand a window person's cases to another (`reassigns window`).
const DESK: &str = r#"process desk "窗口办件" version 1
var street: text required "街道"
role window "窗口工作人员" per street
role leader "街道分管领导" per street reassigns window
start receive "窗口接待申请人" -> check
task check "审查材料" {
  queue window
  outcome ok "材料齐全" -> forward
}
task forward "转办" {
  queue window
  assignee started_by
  outcome done "已转办" -> reply
}
task reply "答复申请人" {
  queue window
  assignee started_by
  outcome done "已答复" -> done
}
end done "办结" result done
"#;

const PASSWORD: &str = "一个足够长的新密码2026";

/// The API over an engine on a simulated clock at [`MONDAY`] (2026-09-28, 09:00 in Beijing),
/// the desk deployed, and the people of two streets.
struct Street {
    api: TestApi,
    clock: ManualClock,
    /// A token that checks materials in `east`.
    worker: String,
}

impl Fixture for Street {
    async fn open(db: &Db) -> Street {
        let clock = ManualClock::new(t(MONDAY));
        let engine = db
            .open(Arc::new(clock.clone()), Arc::new(WeekdaysOnly))
            .await;
        let api = api_on(engine).await;
        let answer = api.deploy("desk.flow", DESK, json!({})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        for (login, name, role, unit) in [
            ("wangfang", "王芳", "window", "east"),
            ("lina", "李娜", "window", "east"),
            ("zhaoliu", "赵六", "window", "west"),
            ("liujun", "刘军", "leader", "east"),
            ("sunli", "孙丽", "leader", "west"),
        ] {
            add_user(&api, login, name, role, unit).await;
        }
        let worker = api.token("checker", &["window"], &["east"]).await;
        Street { api, clock, worker }
    }
}

/// A signed-in person: session cookie and CSRF token.
type Session = (String, String);

/// Adds an account and sets its password to [`PASSWORD`].
async fn add_user(api: &TestApi, login: &str, name: &str, role: &str, unit: &str) {
    let answer = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": name, "roles": [role], "org_units": [unit]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let once = answer.body["password"].as_str().unwrap().to_string();
    let first = sign_in(api, login, &once).await;
    let (status, body) = call(
        api,
        &first,
        "POST",
        "/api/v1/session/password",
        Some(json!({"current": once, "new": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn sign_in(api: &TestApi, login: &str, password: &str) -> Session {
    let body = json!({"login": login, "password": password});
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{login} signs in");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

/// Signs in with [`PASSWORD`].
async fn person(api: &TestApi, login: &str) -> Session {
    sign_in(api, login, PASSWORD).await
}

/// A call in a session.
async fn call(
    api: &TestApi,
    session: &Session,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", &session.0)
        .header("x-csrf-token", &session.1);
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => {
            request = request.header("accept", "application/json");
            request.body(Body::empty())
        }
    }
    .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// 王芳 registers a case of `east` and the checker passes its materials: its `forward` task
/// is hers. The case's id and that task's id.
async fn registered_by(street: &Street, session: &Session) -> (String, String) {
    let api = &street.api;
    let (status, started) = call(
        api,
        session,
        "POST",
        "/api/v1/instances",
        Some(json!({"process": "desk", "variables": {"street": "east"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let claimed = api.claim(&street.worker, "window", 1, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let done = api
        .post(
            &format!(
                "/api/v1/tasks/{}/complete",
                claimed[0]["id"].as_str().unwrap()
            ),
            &street.worker,
            json!({"lock_token": claimed[0]["lock_token"], "outcome": "ok"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let task = open_task(api, &id, "forward").await;
    (id, task)
}

/// The id of the open (or claimed) task of `node` in the case.
async fn open_task(api: &TestApi, instance: &str, node: &str) -> String {
    let answer = api
        .get(&format!("/api/v1/instances/{instance}"), &api.admin)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == node && (t["state"] == "open" || t["state"] == "claimed"))
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("no open task {node}: {}", answer.body))
        .to_string()
}

/// Claims task `task` by its id, then completes it with `done`: the two statuses.
async fn claim_and_complete(
    api: &TestApi,
    session: &Session,
    task: &str,
) -> (StatusCode, StatusCode) {
    let (status, claimed) = call(
        api,
        session,
        "POST",
        &format!("/api/v1/tasks/{task}/claim"),
        Some(json!({})),
    )
    .await;
    if status != StatusCode::OK {
        return (status, status);
    }
    let (done, body) = call(
        api,
        session,
        "POST",
        &format!("/api/v1/tasks/{task}/complete"),
        Some(json!({"lock_token": claimed["lock_token"], "outcome": "done"})),
    )
    .await;
    assert!(done == StatusCode::OK || done.is_client_error(), "{body}");
    (status, done)
}

async fn a_leader_hands_a_first_responders_cases_to_a_stand_in_until_a_day(street: Street) {
    let api = &street.api;
    let wang = person(api, "wangfang").await;
    let li = person(api, "lina").await;
    let leader = person(api, "liujun").await;
    let (first, forward) = registered_by(&street, &wang).await;

    // 王芳's task is hers: 李娜 may not take it.
    let by_id = format!("/api/v1/tasks/{forward}/claim");
    let (status, body) = call(api, &li, "POST", &by_id, Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // 王芳 is on leave until Wednesday: the leader hands her cases to 李娜.
    let (status, made) = call(
        api,
        &leader,
        "POST",
        "/api/v1/reassignments",
        Some(json!({"from": "wangfang", "to": "lina", "reason": "病假", "until": "2026-09-30"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["active"], json!(true), "{made}");
    assert_eq!(made["role"], json!("window"), "{made}");
    assert_eq!(made["org_unit"], json!("east"), "{made}");
    assert_eq!(made["from"]["name"], json!("王芳"), "{made}");
    assert_eq!(made["to"]["login"], json!("lina"), "{made}");
    assert_eq!(made["until"], json!("2026-09-30"), "{made}");
    // The end of the day in Beijing: Thursday 00:00 +08.
    assert_eq!(made["ends_at"], json!("2026-09-30T16:00:00.000Z"), "{made}");

    // 李娜 claims and completes the task 王芳 had.
    assert_eq!(
        claim_and_complete(api, &li, &forward).await,
        (StatusCode::OK, StatusCode::OK)
    );
    // A case registered by 王芳 after the reassignment was made is covered too: 李娜 finds its
    // task in the queue (beside the reply of the first case, 王芳's as well).
    let (second, _) = registered_by(&street, &wang).await;
    let (status, found) = call(
        api,
        &li,
        "POST",
        "/api/v1/tasks/claim",
        Some(json!({"queues": ["window"], "worker": "desk", "max": 5, "lease_seconds": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let found: Vec<&Value> = found["tasks"].as_array().unwrap().iter().collect();
    assert_eq!(
        found.len(),
        2,
        "the reply of the first, the forward of the second: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|t| t["instance_id"] == json!(second) && t["node"] == "forward"),
        "{found:?}"
    );
    for t in &found {
        let release = format!("/api/v1/tasks/{}/release", t["id"].as_str().unwrap());
        let (status, body) = call(
            api,
            &li,
            "POST",
            &release,
            Some(json!({"lock_token": t["lock_token"]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The history and the ledger of the case say so, the leader as the actor.
    let leader_id = api.get("/api/v1/users", &api.admin).await.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "liujun")
        .and_then(|u| u["id"].as_str())
        .unwrap()
        .to_string();
    let history = api.history(&first).await;
    let entry = history
        .iter()
        .find(|e| e["kind"] == "reassigned")
        .unwrap_or_else(|| panic!("no reassigned entry: {history:#?}"));
    assert_eq!(entry["actor_kind"], json!("user"), "{entry}");
    assert_eq!(entry["actor_id"], json!(leader_id), "{entry}");
    let text = entry["text"].as_str().unwrap();
    for word in ["王芳", "李娜", "2026-09-30", "病假", "刘军"] {
        assert!(text.contains(word), "{word} in {text}");
    }
    let ledger = api
        .get("/api/v1/ledger?from=2026-09-28&to=2026-09-28", &api.admin)
        .await;
    assert_eq!(ledger.status, StatusCode::OK, "{ledger:?}");
    let in_ledger = ledger.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reassigned" && e["instance_id"] == json!(first))
        .count();
    assert_eq!(in_ledger, 1, "{}", ledger.body);
    let report = api.engine.ledger_verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);

    // 王芳 keeps her cases meanwhile (back early, she may act on them herself).
    let reply = open_task(api, &first, "reply").await;
    let (status, body) = call(
        api,
        &wang,
        "POST",
        &format!("/api/v1/tasks/{reply}/claim"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        api,
        &wang,
        "POST",
        &format!("/api/v1/tasks/{reply}/release"),
        Some(json!({"lock_token": body["lock_token"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Thursday: the day is over, the tasks are again hers alone.
    street.clock.advance(Duration::days(3)).unwrap();
    let li = person(api, "lina").await;
    let (status, body) = call(
        api,
        &li,
        "POST",
        &format!("/api/v1/tasks/{reply}/claim"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, found) = call(
        api,
        &li,
        "POST",
        "/api/v1/tasks/claim",
        Some(json!({"queues": ["window"], "worker": "desk", "max": 5, "lease_seconds": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["tasks"], json!([]), "{found}");
    let leader = person(api, "liujun").await;
    let (status, list) = call(api, &leader, "GET", "/api/v1/reassignments", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["reassignments"][0]["active"], json!(false), "{list}");
    let wang = person(api, "wangfang").await;
    assert_eq!(
        claim_and_complete(api, &wang, &reply).await,
        (StatusCode::OK, StatusCode::OK)
    );
}

async fn only_a_role_that_reassigns_may_and_only_within_its_unit(street: Street) {
    let api = &street.api;
    let li = person(api, "lina").await;
    let leader = person(api, "liujun").await;
    let west_leader = person(api, "sunli").await;
    let asked = json!({"from": "wangfang", "to": "lina", "reason": "事假"});

    // A window person has no such duty; nor has a token of the window.
    let (status, body) = call(
        api,
        &li,
        "POST",
        "/api/v1/reassignments",
        Some(asked.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let refused = api
        .post("/api/v1/reassignments", &street.worker, asked.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let (status, body) = call(api, &li, "GET", "/api/v1/reassignments", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The leader of another street may not hand east's cases.
    let (status, body) = call(
        api,
        &west_leader,
        "POST",
        "/api/v1/reassignments",
        Some(asked.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A stand-in of another street, an unknown login, a missing reason, a past day: 422, the
    // field named.
    for (body, field) in [
        (
            json!({"from": "wangfang", "to": "zhaoliu", "reason": "事假"}),
            "to",
        ),
        (
            json!({"from": "wangfang", "to": "nobody", "reason": "事假"}),
            "to",
        ),
        (
            json!({"from": "wangfang", "to": "lina", "reason": " "}),
            "reason",
        ),
        (
            json!({"from": "wangfang", "to": "lina", "reason": "事假", "until": "2026-09-27"}),
            "until",
        ),
        (
            json!({"from": "wangfang", "to": "lina", "reason": "事假", "until": "next week"}),
            "until",
        ),
        (
            json!({"from": "wangfang", "to": "wangfang", "reason": "事假"}),
            "to",
        ),
        (
            json!({"from": "liujun", "to": "lina", "reason": "事假"}),
            "from",
        ),
    ] {
        let (status, answer) = call(
            api,
            &leader,
            "POST",
            "/api/v1/reassignments",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(
            answer["error"]["details"]["problems"][0]["field"],
            json!(field),
            "{body}: {answer}"
        );
    }
    // Nothing was made.
    let (status, list) = call(api, &leader, "GET", "/api/v1/reassignments", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["reassignments"], json!([]), "{list}");
}

async fn a_reassignment_ended_early_hands_nothing_more(street: Street) {
    let api = &street.api;
    let wang = person(api, "wangfang").await;
    let li = person(api, "lina").await;
    let leader = person(api, "liujun").await;
    let (case, forward) = registered_by(&street, &wang).await;

    // For good (王芳 moved), then ended: she is back.
    let (status, made) = call(
        api,
        &leader,
        "POST",
        "/api/v1/reassignments",
        Some(json!({"from": "wangfang", "to": "lina", "reason": "调岗"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["until"], Value::Null, "{made}");
    assert_eq!(made["ends_at"], Value::Null, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    street.clock.advance(Duration::minutes(5)).unwrap();

    let end = format!("/api/v1/reassignments/{id}/end");
    let (status, body) = call(api, &li, "POST", &end, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, ended) = call(api, &leader, "POST", &end, None).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["active"], json!(false), "{ended}");
    assert_eq!(ended["ended_by"], json!("刘军"), "{ended}");
    let (status, again) = call(api, &leader, "POST", &end, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, body) = call(
        api,
        &leader,
        "POST",
        "/api/v1/reassignments/no-such-id/end",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // 李娜 may no longer take 王芳's task; the case records both.
    let (status, body) = call(
        api,
        &li,
        "POST",
        &format!("/api/v1/tasks/{forward}/claim"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let kinds: Vec<String> = api
        .history(&case)
        .await
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .filter(|k| k.starts_with("reassign"))
        .collect();
    assert_eq!(kinds, ["reassigned", "reassignment_ended"]);
}
