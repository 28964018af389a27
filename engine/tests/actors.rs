//! The acting principal in the record (issue 22), on SQLite and on PostgreSQL (`*::postgres`,
//! skipped without `YIMEN_TEST_POSTGRES`): every history entry names who acted as
//! authenticated (a person, a token, the engine), with kind and id; nothing a client sends
//! changes it; `assignee started_by` gives a task to whoever started the case; a history
//! written before the entries had kinds still verifies, and a changed kind or id does not.
//! Assignees and claim holders are compared by who the principal is (kind and id), not by
//! name: two people named 王芳 are two, and a token named 王芳 is neither.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

on_both_databases!(
    the_actor_is_recorded_for_a_user_a_token_and_the_engine,
    an_actor_sent_by_a_client_is_refused,
    a_history_of_old_entries_still_verifies_and_a_changed_actor_does_not,
    a_namesake_cannot_take_the_first_responders_task,
    completed_by_gives_the_task_to_who_completed_it_not_to_their_name,
);

/// A desk process: whoever registers the case (starts it) replies to the applicant.
const DESK: &str = r#"process desk "窗口办件" version 1
var street: text required "街道"
role window "窗口工作人员" per street
start receive "窗口接待申请人" -> check
task check "审查材料" {
  queue window
  outcome ok "材料齐全" -> reply
}
task reply "答复申请人" {
  queue window
  assignee started_by
  outcome done "已答复" -> cooling
}
wait cooling "冷静期" 1 days -> done
end done "办结" result done
"#;

/// A call with a session cookie and its CSRF token.
async fn as_user(
    api: &TestApi,
    session: &(String, String),
    method: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("cookie", &session.0)
        .header("x-csrf-token", &session.1)
        .body(Body::from(body.to_string()))
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

/// An account (window, street `east`) signed in with its own password: (cookie, CSRF token),
/// and the user's id.
async fn user(api: &TestApi, login: &str, name: &str) -> ((String, String), String) {
    let answer = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": name, "roles": ["window"], "org_units": ["east"]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let id = answer.body["user"]["id"].as_str().unwrap().to_string();
    let once = answer.body["password"].as_str().unwrap().to_string();
    let sign_in = |password: String| {
        let router = api.router.clone();
        async move {
            let body = json!({"login": login, "password": password});
            let request = Request::builder()
                .method("POST")
                .uri("/api/v1/session")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let cookie = response.headers()["set-cookie"].to_str().unwrap();
            let cookie = cookie.split(';').next().unwrap().to_string();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            (cookie, body["csrf_token"].as_str().unwrap().to_string())
        }
    };
    let first = sign_in(once.clone()).await;
    let (status, body) = as_user(
        api,
        &first,
        "POST",
        "/api/v1/session/password",
        json!({"current": once, "new": "一个足够长的新密码2026"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (first, id)
}

/// The id of the token named `name` (as admin).
async fn token_id(api: &TestApi, name: &str) -> String {
    let answer = api.get("/api/v1/tokens", &api.admin).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let list = answer
        .body
        .as_array()
        .or(answer.body["tokens"].as_array())
        .cloned()
        .unwrap();
    list.iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["id"].as_str())
        .expect("the token is listed")
        .to_string()
}

async fn deploy_desk(api: &TestApi) {
    let answer = api.deploy("desk.flow", DESK, json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
}

/// The task of `node` in the instance, as the API shows it.
async fn task_of(api: &TestApi, instance: &str, node: &str) -> Value {
    let answer = api
        .get(&format!("/api/v1/instances/{instance}"), &api.admin)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == node && t["state"] != "completed")
        .cloned()
        .unwrap_or_else(|| panic!("no open task {node}: {}", answer.body))
}

async fn the_actor_is_recorded_for_a_user_a_token_and_the_engine(api: TestApi) {
    deploy_desk(&api).await;
    let (wang, wang_id) = user(&api, "wangfang", "王芳").await;
    let worker = api.token("worker-1", &["window"], &["east"]).await;
    let worker_id = token_id(&api, "worker-1").await;

    // 王芳 registers the case: she starts it.
    let (status, started) = as_user(
        &api,
        &wang,
        "POST",
        "/api/v1/instances",
        json!({"process": "desk", "variables": {"street": "east"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap().to_string();

    // worker-1 checks the materials.
    let claimed = api.claim(&worker, "window", 1, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let done = api
        .post(
            &format!(
                "/api/v1/tasks/{}/complete",
                claimed[0]["id"].as_str().unwrap()
            ),
            &worker,
            json!({"lock_token": claimed[0]["lock_token"], "outcome": "ok"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");

    // The reply is the first responder's: hers, not the worker's who checked.
    let reply = task_of(&api, &id, "reply").await;
    assert_eq!(reply["assignee"], json!("王芳"), "{reply}");
    assert!(api.claim(&worker, "window", 1, 0).await.is_empty());
    let (status, mine) = as_user(
        &api,
        &wang,
        "POST",
        "/api/v1/tasks/claim",
        json!({"queues": ["window"], "worker": "desk", "max": 1, "lease_seconds": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let mine = &mine["tasks"][0];
    assert_eq!(mine["node"], json!("reply"), "{mine}");
    let (status, body) = as_user(
        &api,
        &wang,
        "POST",
        &format!("/api/v1/tasks/{}/complete", mine["id"].as_str().unwrap()),
        json!({"lock_token": mine["lock_token"], "outcome": "done"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The cooling period ends: the engine's own step.
    let later = chrono::Utc::now() + chrono::Duration::days(30);
    assert!(api.engine.fire_due_timers(later).await.unwrap() >= 1);

    let history = api.history(&id).await;
    let by = |kind: &str| -> Vec<(String, String, String)> {
        history
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                (
                    e["actor_kind"].as_str().unwrap_or("").to_string(),
                    e["actor_id"].as_str().unwrap_or("").to_string(),
                    e["by"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let wang_entry = (
        "user".to_string(),
        wang_id.clone(),
        "王芳 (user)".to_string(),
    );
    let worker_entry = (
        "token".to_string(),
        worker_id.clone(),
        "worker-1 (token)".to_string(),
    );
    assert_eq!(
        by("started"),
        std::slice::from_ref(&wang_entry),
        "{history:#?}"
    );
    let claims = by("task_claimed");
    assert_eq!(
        claims,
        [worker_entry.clone(), wang_entry.clone()],
        "{history:#?}"
    );
    let completions = by("task_completed");
    assert_eq!(completions, [worker_entry, wang_entry], "{history:#?}");
    let engine_entries: Vec<_> = history
        .iter()
        .filter(|e| e["actor_kind"] == "engine")
        .collect();
    assert!(!engine_entries.is_empty(), "{history:#?}");
    assert!(
        engine_entries.iter().all(|e| e["by"] == "timer (engine)"),
        "{history:#?}"
    );
    // Every entry names its actor with a kind and an id.
    for e in &history {
        assert!(
            e["actor_kind"].is_string() && e["actor_id"].is_string(),
            "{e}"
        );
    }
    let report = api.engine.ledger_verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

async fn an_actor_sent_by_a_client_is_refused(api: TestApi) {
    let worker = api.token("worker-2", &["window"], &["east"]).await;
    let started = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "case", "variables": {"name": "张三丰", "street": "east", "amount": 1}, "actor": "someone else"}),
        )
        .await;
    assert_eq!(
        started.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{started:?}"
    );
    let id = api.start_case("east", 1).await;
    let claimed = api.claim(&worker, "window", 1, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let task = claimed[0]["id"].as_str().unwrap();
    let refused = api
        .post(
            &format!("/api/v1/tasks/{task}/complete"),
            &worker,
            json!({"lock_token": claimed[0]["lock_token"], "outcome": "reject", "actor": "王芳"}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused:?}"
    );
    assert!(refused.message().contains("actor"), "{refused:?}");
    // Nothing was recorded under the name sent.
    let history = api.history(&id).await;
    assert!(history.iter().all(|e| e["actor"] != "王芳"), "{history:#?}");
}

async fn a_history_of_old_entries_still_verifies_and_a_changed_actor_does_not(api: TestApi) {
    let old = api.start_case("east", 1).await;
    let new = api.start_case("east", 2).await;
    let pool = api.engine.pool().clone();
    let packs = |instance: String| {
        let pool = pool.clone();
        async move {
            let sql = "SELECT seq, entries FROM history WHERE instance_id = $1 ORDER BY seq";
            let rows: Vec<(i64, String)> = match &pool {
                yimen_engine::store::StorePool::Sqlite(p) => sqlx::query_as(sql)
                    .bind(&instance)
                    .fetch_all(p)
                    .await
                    .unwrap(),
                yimen_engine::store::StorePool::Postgres(p) => sqlx::query_as(sql)
                    .bind(&instance)
                    .fetch_all(p)
                    .await
                    .unwrap(),
            };
            rows
        }
    };
    let write = |instance: String, seq: i64, entries: String, head: Option<String>| {
        let pool = pool.clone();
        async move {
            let set = "UPDATE history SET entries = $1 WHERE instance_id = $2 AND seq = $3";
            let set_head = "UPDATE instances SET history_head = $1 WHERE id = $2";
            match &pool {
                yimen_engine::store::StorePool::Sqlite(p) => {
                    sqlx::query(set)
                        .bind(&entries)
                        .bind(&instance)
                        .bind(seq)
                        .execute(p)
                        .await
                        .unwrap();
                    if let Some(head) = head {
                        sqlx::query(set_head)
                            .bind(head)
                            .bind(&instance)
                            .execute(p)
                            .await
                            .unwrap();
                    }
                }
                yimen_engine::store::StorePool::Postgres(p) => {
                    sqlx::query(set)
                        .bind(&entries)
                        .bind(&instance)
                        .bind(seq)
                        .execute(p)
                        .await
                        .unwrap();
                    if let Some(head) = head {
                        sqlx::query(set_head)
                            .bind(head)
                            .bind(&instance)
                            .execute(p)
                            .await
                            .unwrap();
                    }
                }
            }
        }
    };
    // The first case as an earlier version wrote it: no kind, no id, hashed without them.
    let mut prev = String::new();
    for (seq, text) in packs(old.clone()).await {
        let mut entries: Vec<Value> = serde_json::from_str(&text).unwrap();
        for (k, e) in entries.iter_mut().enumerate() {
            let map = e.as_object_mut().unwrap();
            assert!(map.remove("actor_kind").is_some(), "{text}");
            map.remove("actor_id");
            let row = yimen_engine::store::HistoryRow {
                instance_id: old.clone(),
                seq: seq + k as i64,
                at: e["at"].as_i64().unwrap(),
                actor: e["actor"].as_str().unwrap().into(),
                actor_kind: String::new(),
                actor_id: String::new(),
                node: e["node"].as_str().map(str::to_string),
                kind: e["kind"].as_str().unwrap().into(),
                text: e["text"].as_str().unwrap().into(),
                data: e["data"].as_str().unwrap().into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            let hash = yimen_engine::ledger::entry_hash(&row);
            e["prev_hash"] = json!(prev);
            e["hash"] = json!(hash);
            prev = hash;
        }
        write(
            old.clone(),
            seq,
            serde_json::to_string(&entries).unwrap(),
            Some(prev.clone()),
        )
        .await;
    }
    let report = api.engine.ledger_verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let history = api.history(&old).await;
    assert!(
        history
            .iter()
            .all(|e| e["actor_kind"].is_null() && e["by"] == e["actor"]),
        "{history:#?}"
    );

    // The second case's first entry claims another actor id: its hash no longer matches.
    let (seq, text) = packs(new.clone()).await.remove(0);
    let mut entries: Vec<Value> = serde_json::from_str(&text).unwrap();
    entries[0]["actor_id"] = json!("someone-else");
    write(
        new.clone(),
        seq,
        serde_json::to_string(&entries).unwrap(),
        None,
    )
    .await;
    let report = api.engine.ledger_verify().await.unwrap();
    assert!(!report.ok(), "a changed actor id verifies");
    assert!(
        format!("{:?}", report.problems).contains(&new),
        "{:?}",
        report.problems
    );
}

/// Two people named 王芳 in one street, and a token named 王芳: the reply of the case the
/// first registered is hers alone, by who she is, not by her name.
async fn a_namesake_cannot_take_the_first_responders_task(api: TestApi) {
    deploy_desk(&api).await;
    let (first, first_id) = user(&api, "wangfang1", "王芳").await;
    let (second, second_id) = user(&api, "wangfang2", "王芳").await;
    assert_ne!(first_id, second_id);
    let namesake_token = api.token("王芳", &["window"], &["east"]).await;
    let worker = api.token("worker-1", &["window"], &["east"]).await;

    let (status, started) = as_user(
        &api,
        &first,
        "POST",
        "/api/v1/instances",
        json!({"process": "desk", "variables": {"street": "east"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let claimed = api.claim(&worker, "window", 1, 0).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let done = api
        .post(
            &format!(
                "/api/v1/tasks/{}/complete",
                claimed[0]["id"].as_str().unwrap()
            ),
            &worker,
            json!({"lock_token": claimed[0]["lock_token"], "outcome": "ok"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");

    // The reply is assigned to the first 王芳: by name for people, by key for machines.
    let reply = task_of(&api, &id, "reply").await;
    let reply_id = reply["id"].as_str().unwrap().to_string();
    assert_eq!(reply["assignee"], json!("王芳"), "{reply}");
    assert_eq!(
        reply["assignee_key"],
        json!(format!("user:{first_id}")),
        "{reply}"
    );

    // The other 王芳 finds nothing to claim, and may not claim it by its id.
    let fetch = json!({"queues": ["window"], "worker": "desk", "max": 5, "lease_seconds": 60});
    let (status, found) =
        as_user(&api, &second, "POST", "/api/v1/tasks/claim", fetch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["tasks"], json!([]), "{found}");
    let by_id = format!("/api/v1/tasks/{reply_id}/claim");
    let (status, refused) = as_user(&api, &second, "POST", &by_id, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let why = refused["error"]["message"].as_str().unwrap_or("");
    assert!(why.contains("another `王芳`"), "{refused}");
    // Nor does the token named 王芳.
    assert!(api.claim(&namesake_token, "window", 5, 0).await.is_empty());
    let refused = api.post(&by_id, &namesake_token, json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");

    // The first 王芳 claims it; her namesakes cannot finish her claim, lock token or not.
    let (status, mine) = as_user(&api, &first, "POST", &by_id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let lock_token = mine["lock_token"].clone();
    let reply = task_of(&api, &id, "reply").await;
    assert_eq!(
        reply["locked_by_key"],
        json!(format!("user:{first_id}")),
        "{reply}"
    );
    let complete = format!("/api/v1/tasks/{reply_id}/complete");
    let body = json!({"lock_token": lock_token, "outcome": "done"});
    let (status, refused) = as_user(&api, &second, "POST", &complete, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let refused = api.post(&complete, &namesake_token, body.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    let release = format!("/api/v1/tasks/{reply_id}/release");
    let (status, refused) = as_user(
        &api,
        &second,
        "POST",
        &release,
        json!({"lock_token": lock_token}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    // Her own list of claims holds it; her namesake's does not.
    let (_, me) = as_user(&api, &second, "GET", "/api/v1/me", Value::Null).await;
    assert_eq!(me["tasks"], json!([]), "{me}");
    let (_, me) = as_user(&api, &first, "GET", "/api/v1/me", Value::Null).await;
    assert_eq!(me["tasks"][0]["id"], json!(reply_id), "{me}");

    let (status, body) = as_user(&api, &first, "POST", &complete, body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let history = api.history(&id).await;
    let completed: Vec<_> = history
        .iter()
        .filter(|e| e["kind"] == "task_completed")
        .map(|e| e["actor_id"].clone())
        .collect();
    assert_eq!(completed.last(), Some(&json!(first_id)), "{history:#?}");
}

/// `assignee completed_by(intake)`: the reply is whoever completed the intake, by key (the
/// node's result carries `completed_by_key`), so a namesake of theirs does not get it.
async fn completed_by_gives_the_task_to_who_completed_it_not_to_their_name(h: Harness) {
    use yimen_engine::actor::{Actor, ActorKind};
    let source = r#"process two "两步" version 1
role window "窗口"
start begin "开始" -> intake
task intake "受理" {
  queue window
  outcome ok "好" -> reply
}
task reply "答复" {
  queue window
  assignee completed_by(intake)
  outcome done "好" -> done
}
end done "结束" result done
"#;
    deploy_source(&h.engine, "two.flow", source).await;
    h.start("two", json!({})).await;
    let person = |id: &str| Actor {
        kind: ActorKind::User,
        id: id.into(),
        name: "王芳".into(),
    };
    let claim = |actor: Actor| {
        let engine = h.engine.clone();
        async move {
            engine
                .claim(yimen_engine::ClaimRequest {
                    queues: vec!["window".into()],
                    org_units: None,
                    actor,
                    worker: None,
                    max: 5,
                    lease: chrono::Duration::minutes(5),
                })
                .await
                .unwrap()
        }
    };
    let intake = claim(person("u1")).await;
    assert_eq!(intake.len(), 1);
    let view = h
        .engine
        .complete(yimen_engine::CompleteRequest {
            task_id: intake[0].task.id.clone(),
            lock_token: intake[0].lock_token,
            outcome: Some("ok".into()),
            actor: person("u1"),
            ..Default::default()
        })
        .await
        .unwrap();
    let reply = task_at(&view, "reply");
    assert_eq!(reply.assignee.as_deref(), Some("王芳"));
    assert_eq!(reply.assignee_key.as_deref(), Some("user:u1"));
    assert!(claim(person("u2")).await.is_empty(), "not the other 王芳's");
    let mine = claim(person("u1")).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].task.node, "reply");
}
