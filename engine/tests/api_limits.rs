//! Limits on what one request may make the engine do (docs/security.md, "Limits"): a costly
//! template, a large list or fan-out, a clock moved out of range, refused with 422 and nothing
//! written, on SQLite and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::http::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

on_both_databases!(
    a_costly_template_fails_its_start_alone,
    large_lists_and_fan_outs_are_refused_before_anything_is_written,
    unknown_fields_are_refused_by_name,
    a_retried_completion_is_told_it_was_applied,
    ids_of_another_unit_are_answered_as_unknown,
    the_clock_moves_only_within_its_range,
    notices_do_not_wait_behind_a_hanging_webhook,
);

/// A process that issues document `heavy` at its start, then waits in a task of `clerk`.
const PAPER: &str = r#"process paper "文书" version 1
role clerk "经办人"
document heavy "通知书" template "heavy.md.j2"
start begin "开始" -> issue_it
step issue_it "出具" {
  issue heavy
} -> work
task work "办理" {
  queue clerk
  outcome done "完成" -> finished
}
end finished "完成" result done
"#;

/// One task of `clerk` per entry of `items` (a `for each`), started by a task of `clerk`.
const FAN: &str = r#"process fan "分发" version 1
var items: list<text> "条目"
var on: date "日期"
role clerk "经办人"
start begin "开始" -> collect
task collect "收集" {
  queue clerk
  fields { optional items }
  outcome done "完成" -> each
}
task each "逐项办理" for each d in items {
  queue clerk
  outcome done "完成" -> finished
}
end finished "完成" result done
"#;

async fn open_tasks(api: &TestApi, queue: &str) -> usize {
    let answer = api
        .get(&format!("/api/v1/tasks?queue={queue}"), &api.admin)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["tasks"].as_array().map_or(0, Vec::len)
}

/// A template with a loop of 10⁵ × 10⁵ deploys, but rendering it runs out of fuel: the start
/// answers 422 naming the document and the limit, writes nothing, and does not hold up the
/// other requests.
async fn a_costly_template_fails_its_start_alone(api: TestApi) {
    let heavy =
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}";
    let answer = api
        .deploy("paper.flow", PAPER, json!({"heavy.md.j2": heavy}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let began = Instant::now();
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "paper", "business_key": "P-1", "variables": {}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "answered in {:?}",
        began.elapsed()
    );
    let text = answer.body.to_string();
    assert!(text.contains("document heavy"), "{text}");
    assert!(text.contains("--template-fuel"), "{text}");
    assert_eq!(open_tasks(&api, "clerk").await, 0, "nothing written");
    // Another start goes through.
    let case = api.start_case("north", 100).await;
    assert!(!case.is_empty());

    // A template that writes too much: refused by the output limit.
    let wide = "{% for i in range(20000) %}{{ \"x\" * 100 }}{% endfor %}";
    let paper2 = PAPER.replace("version 1", "version 2");
    let answer = api
        .deploy("paper.flow", &paper2, json!({"heavy.md.j2": wide}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "paper", "variables": {}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        answer.body.to_string().contains("--max-document-bytes"),
        "{answer:?}"
    );
    assert_eq!(open_tasks(&api, "clerk").await, 0, "nothing written");

    // A template file larger than a deployment takes is refused when deployed.
    let paper3 = PAPER.replace("version 1", "version 3");
    let huge = "x".repeat(yimen_engine::limits::MAX_DEPLOYED_FILE_BYTES + 1);
    let answer = api
        .deploy("paper.flow", &paper3, json!({"heavy.md.j2": huge}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        answer.body.to_string().contains("heavy.md.j2"),
        "{answer:?}"
    );
}

/// A list variable over `--max-list-items` is refused at a start and at a completion; a
/// `for each` over `--max-fan-out` refuses the completion that would create its tasks, with
/// nothing written; dates outside 1970–2200 are refused.
async fn large_lists_and_fan_outs_are_refused_before_anything_is_written(api: TestApi) {
    let limits = yimen_engine::limits::Limits::default();
    let answer = api.deploy("fan.flow", FAN, json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let many: Vec<String> = (0..=limits.list_items).map(|i| format!("e{i}")).collect();
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "fan", "variables": {"items": many}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        answer.body.to_string().contains("--max-list-items"),
        "{answer:?}"
    );
    for bad in ["9999-12-31", "1900-01-01"] {
        let answer = api
            .post(
                "/api/v1/instances",
                &api.admin,
                json!({"process": "fan", "variables": {"on": bad}}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {answer:?}"
        );
        assert!(answer.body.to_string().contains("1970"), "{answer:?}");
    }
    assert_eq!(open_tasks(&api, "clerk").await, 0, "nothing written");

    // Within the list limit, beyond the fan-out: the completion is refused, the task stays.
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "fan", "variables": {}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let clerk = api.token("clerk-1", &["clerk"], &[]).await;
    let claimed = api.claim(&clerk, "clerk", 1, 0).await;
    assert_eq!(claimed.len(), 1);
    let task = claimed[0]["id"].as_str().expect("id").to_string();
    let lock = claimed[0]["lock_token"].clone();
    let items: Vec<String> = (0..=limits.fan_out).map(|i| format!("e{i}")).collect();
    let answer = api
        .post(
            &format!("/api/v1/tasks/{task}/complete"),
            &clerk,
            json!({"lock_token": lock, "outcome": "done", "variables": {"items": items}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(
        answer.body.to_string().contains("--max-fan-out"),
        "{answer:?}"
    );
    assert_eq!(open_tasks(&api, "clerk").await, 1, "only the claimed task");
    // The same completion within the limits goes through.
    let answer = api
        .post(
            &format!("/api/v1/tasks/{task}/complete"),
            &clerk,
            json!({"lock_token": lock, "outcome": "done", "variables": {"items": ["a", "b"]}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        open_tasks(&api, "clerk").await,
        3,
        "the completed one and two new"
    );
}

/// `POST /clock/advance` with a length or an instant beyond what the engine accepts answers
/// 422 naming the field (it panicked the handler on `by: 99999999999d`), and the clock stays.
async fn the_clock_moves_only_within_its_range(db: Db) {
    let world = World::open(&db, "2026-10-01T09:00:00+08:00", service_options()).await;
    let api = world.api().await;
    let before = api.get("/api/v1/clock", &api.admin).await.body["now"].clone();
    for (body, field) in [
        (json!({"by": "99999999999d"}), "by"),
        (json!({"by": "36501d"}), "by"),
        (json!({"by": "99999999999999w"}), "by"),
        (json!({"to": "9999-12-31T00:00:00Z"}), "to"),
        (json!({"to": "2201-01-02T00:00:00+08:00"}), "to"),
    ] {
        let answer = api
            .post("/api/v1/clock/advance", &api.admin, body.clone())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {answer:?}"
        );
        assert!(
            answer.body.to_string().contains(&format!("\"{field}\"")),
            "{body}: {answer:?}"
        );
    }
    let after = api.get("/api/v1/clock", &api.admin).await.body["now"].clone();
    assert_eq!(before, after);
    let answer = api
        .post("/api/v1/clock/advance", &api.admin, json!({"by": "1d"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    world.services.stop().await;
}

/// A body with a field the route does not take is refused (422) naming it, not read as if the
/// field were absent; variables stay an open map, checked against the process.
async fn unknown_fields_are_refused_by_name(api: TestApi) {
    let vars = json!({"name": "张三丰", "street": "north", "amount": 1});
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "case", "variables": vars, "businesskey": "K-1"}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert_eq!(
        answer.body["error"]["details"]["problems"][0]["field"],
        json!("businesskey"),
        "{answer:?}"
    );
    let answer = api
        .post(
            "/api/v1/tasks/claim",
            &api.admin,
            json!({"queues": ["window"], "worker": "w", "max_tasks": 5}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(answer.message().contains("max_tasks"), "{answer:?}");
    let answer = api
        .post(
            "/api/v1/tasks/complete",
            &api.admin,
            json!({"completions": [{"task_id": "t", "lock_token": "1", "outcom": "ok"}]}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(answer.message().contains("outcom"), "{answer:?}");
    // An unknown variable is refused by the process.
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "case", "variables": {"name": "张三丰", "street": "north", "amount": 1, "amout": 2}}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    assert!(answer.message().contains("amout"), "{answer:?}");
    assert_eq!(open_tasks(&api, "window").await, 0, "nothing started");
}

/// A completion sent again with the same lock token (its answer was lost) is told that it was
/// applied: 409 `already_completed_by_this_lock`, unlike a completion under another token.
async fn a_retried_completion_is_told_it_was_applied(api: TestApi) {
    api.start_case("north", 100).await;
    let claimed = api.claim(&api.admin, "window", 1, 0).await;
    let task = claimed[0]["id"].as_str().expect("id").to_string();
    let lock = claimed[0]["lock_token"].clone();
    let body = json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}});
    let path = format!("/api/v1/tasks/{task}/complete");
    let first = api.post(&path, &api.admin, body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let again = api.post(&path, &api.admin, body.clone()).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert_eq!(again.code(), "already_completed_by_this_lock", "{again:?}");
    assert!(again.message().contains("outcome ok"), "{again:?}");
    let batch = api
        .post(
            "/api/v1/tasks/complete",
            &api.admin,
            json!({"completions": [{"task_id": task, "lock_token": lock, "outcome": "ok", "variables": {"checked": true}}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{batch:?}");
    assert_eq!(batch.body["results"][0]["status"], json!(409), "{batch:?}");
    assert_eq!(
        batch.body["results"][0]["error"]["code"],
        json!("already_completed_by_this_lock"),
        "{batch:?}"
    );
    let other = lock.as_str().map_or(0, |t| t.parse::<i64>().unwrap_or(0)) + 1;
    let stale = api
        .post(
            &path,
            &api.admin,
            json!({"lock_token": other.to_string(), "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{stale:?}");
    assert_eq!(stale.code(), "conflict", "{stale:?}");
}

/// A token limited to one street gets for a case or task of another street the answer an
/// unknown id gets (404), so the id is not confirmed.
async fn ids_of_another_unit_are_answered_as_unknown(api: TestApi) {
    let south = api.start_case("south", 100).await;
    let claimed = api.claim(&api.admin, "window", 1, 0).await;
    let task = claimed[0]["id"].as_str().expect("id").to_string();
    let lock = claimed[0]["lock_token"].clone();
    let north = api.token("north-window", &["window"], &["north"]).await;
    let unknown = api.get("/api/v1/instances/no-such-case", &north).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    for path in [
        format!("/api/v1/instances/{south}"),
        format!("/api/v1/instances/{south}/history"),
        format!("/api/v1/instances/{south}/documents"),
    ] {
        let answer = api.get(&path, &north).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
        assert_eq!(answer.code(), unknown.code());
    }
    let answer = api
        .post(
            &format!("/api/v1/instances/{south}/messages/docs"),
            &north,
            json!({}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let answer = api
        .post(
            &format!("/api/v1/tasks/{task}/complete"),
            &north,
            json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let unknown_task = api
        .post(
            "/api/v1/tasks/no-such-task/complete",
            &north,
            json!({"lock_token": lock, "outcome": "ok"}),
        )
        .await;
    assert_eq!(
        unknown_task.status,
        StatusCode::NOT_FOUND,
        "{unknown_task:?}"
    );
    // The street's own cases still answer.
    let own = api.start_case("north", 1).await;
    let answer = api.get(&format!("/api/v1/instances/{own}"), &north).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

/// Notifies a webhook at the start, then the `clerk` role's inbox when the task is done.
const HOOKS: &str = r#"process hooks "通知" version 1
config "hooks.yaml" {
  hook_url: text
}
role clerk "经办人"
channel hook "台账" url config.hook_url
start begin "开始" -> tell
step tell "通知" {
  notify channel hook "新申请"
} -> work
task work "办理" {
  queue clerk
  outcome done "完成" -> told
}
step told "告知" {
  notify role clerk "已办结"
} -> finished
end finished "完成" result done
"#;

/// A webhook receiver that answers only after `stall`; counts the requests it got.
async fn stalling_receiver(
    stall: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(stall).await;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// An in-app notice is delivered while a webhook receiver hangs: the two go in separate lanes
/// (it waited for the webhook's attempt to time out).
async fn notices_do_not_wait_behind_a_hanging_webhook(db: Db) {
    let options = yimen_engine::scheduler::ServiceOptions {
        webhook_timeout: Duration::from_secs(10),
        outbox_poll: Duration::from_millis(100),
        ..service_options()
    };
    let world = World::open(&db, "2026-10-01T09:00:00+08:00", options).await;
    let api = world.api().await;
    let (url, got) = stalling_receiver(Duration::from_secs(8)).await;
    let answer = api
        .deploy(
            "hooks.flow",
            HOOKS,
            json!({"hooks.yaml": format!("hook_url: {url}\n")}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "hooks", "variables": {}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    // The webhook is under way (its receiver hangs).
    let began = Instant::now();
    while got.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "webhook never sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed = api.claim(&api.admin, "clerk", 1, 0).await;
    let task = claimed[0]["id"].as_str().expect("id").to_string();
    let answer = api
        .post(
            &format!("/api/v1/tasks/{task}/complete"),
            &api.admin,
            json!({"lock_token": claimed[0]["lock_token"], "outcome": "done"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let began = Instant::now();
    loop {
        let inbox = api.get("/api/v1/inbox?role=clerk", &api.admin).await;
        assert_eq!(inbox.status, StatusCode::OK, "{inbox:?}");
        if inbox.body.to_string().contains("已办结") {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the notice waited behind the webhook: {inbox:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.services.stop().await;
}
