//! The HTTP API through the router (tower `oneshot`), per endpoint and per error case, on
//! SQLite and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

on_both_databases!(
    access_is_checked_and_refusals_recorded,
    tokens_are_created_listed_and_revoked,
    definitions_deploy_and_read,
    a_deployment_names_the_version_new_cases_run,
    instances_start_once_per_business_key,
    bad_input_gets_400_or_422_never_500,
    claim_complete_with_fencing_tokens,
    completion_problems_are_listed_and_change_nothing,
    completions_in_one_request_stand_alone,
    street_scoped_window_sees_only_its_street,
    long_poll_wakes_when_a_task_appears,
    lease_extend_release_and_expiry,
    failures_retry_then_become_an_incident,
    instance_view_history_messages_and_cancel,
    ledger_is_for_overseers_in_json_and_csv,
    the_token_acts_not_the_worker_name_it_sends,
    registration_data_is_checked_wherever_it_is_given,
    public_documents_never_name_a_minor,
);

async fn access_is_checked_and_refusals_recorded(api: TestApi) {
    let health = api.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    let none = api.call("GET", "/api/v1/definitions", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "unauthorized");
    assert!(none.message().contains("Bearer"), "{none:?}");

    let wrong = api.get("/api/v1/definitions", "ym_not_a_token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.message().contains("unknown"), "{wrong:?}");

    let window = api.token("east-window", &["window"], &[]).await;
    let deploy = api
        .post(
            "/api/v1/definitions",
            &window,
            json!({"source": "process x"}),
        )
        .await;
    assert_eq!(deploy.status, StatusCode::FORBIDDEN);
    assert_eq!(deploy.code(), "forbidden");

    let refusals = api.get("/api/v1/refusals", &api.admin).await;
    assert_eq!(refusals.status, StatusCode::OK);
    let list = refusals.body["refusals"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list[0]["status"], 403);
    assert_eq!(list[0]["token"], "east-window");
    assert_eq!(list[0]["path"], "/api/v1/definitions");
    assert!(list[0]["reason"].as_str().unwrap().contains("admin"));
    assert_eq!(list[2]["status"], 401);
    assert_eq!(list[2]["token"], Value::Null);

    let as_window = api.get("/api/v1/refusals", &window).await;
    assert_eq!(as_window.status, StatusCode::FORBIDDEN);

    let unknown = api.get("/api/v1/nowhere", &api.admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "not_found");
}

async fn tokens_are_created_listed_and_revoked(api: TestApi) {
    let secret = api.token("reviewer", &["review"], &[]).await;
    assert!(secret.starts_with("ym_"));
    assert_eq!(
        api.get("/api/v1/tasks", &secret).await.status,
        StatusCode::OK
    );

    let again = api
        .post(
            "/api/v1/tokens",
            &api.admin,
            json!({"name": "reviewer", "roles": ["review"]}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let bad = api
        .post(
            "/api/v1/tokens",
            &api.admin,
            json!({"name": " ", "roles": ["a b"]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let problems = bad.body["error"]["details"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{bad:?}");

    let list = api.get("/api/v1/tokens", &api.admin).await;
    let names: Vec<&str> = list.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "reviewer"]);
    assert!(
        !list.body.to_string().contains(&secret),
        "secrets are never listed"
    );

    let revoked = api
        .post("/api/v1/tokens/reviewer/revoke", &api.admin, json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    let after = api.get("/api/v1/tasks", &secret).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    let twice = api
        .post("/api/v1/tokens/reviewer/revoke", &api.admin, json!({}))
        .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);

    let by_window = api
        .post(
            "/api/v1/tokens",
            &secret,
            json!({"name": "x", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(by_window.status, StatusCode::UNAUTHORIZED);
}

async fn definitions_deploy_and_read(api: TestApi) {
    let list = api.get("/api/v1/definitions", &api.admin).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["definitions"][0]["key"], "case");

    let one = api.get("/api/v1/definitions/case", &api.admin).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["deployment"]["version"], 1);
    assert_eq!(one.body["model"]["key"]["name"], "case");

    let missing = api.get("/api/v1/definitions/nope", &api.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let old = api
        .get("/api/v1/definitions/case?version=7", &api.admin)
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    let bad_version = api
        .get("/api/v1/definitions/case?version=x", &api.admin)
        .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);

    let broken = api
        .post(
            "/api/v1/definitions",
            &api.admin,
            json!({"file": "broken.flow", "source": "process broken ((("}),
        )
        .await;
    assert_eq!(
        broken.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{broken:?}"
    );
    assert!(broken.body["error"]["details"].is_object());
}

/// Deploying a text identical to an older version answers that version and, beside it, the
/// latest one, which new cases run: the answer never hides that a newer version runs.
async fn a_deployment_names_the_version_new_cases_run(api: TestApi) {
    let source = |label: &str| {
        format!(
            "process ticket \"工单\" version 1\nrole clerk \"办事员\"\nstart begin -> work\n\
             task work \"{label}\" {{\n  queue clerk\n  outcome ok -> done\n}}\nend done\n"
        )
    };
    let deploy = |label: &str| {
        api.post(
            "/api/v1/definitions",
            &api.admin,
            json!({"file": "ticket.flow", "source": source(label)}),
        )
    };
    let first = deploy("办理").await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    assert_eq!(
        (&first.body["version"], &first.body["latest_version"]),
        (&json!(1), &json!(1))
    );
    let second = deploy("办理（新）").await;
    assert_eq!(second.status, StatusCode::CREATED, "{second:?}");
    assert_eq!(second.body["latest_version"], 2);
    let again = deploy("办理").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["created"], false);
    assert_eq!(
        (&again.body["version"], &again.body["latest_version"]),
        (&json!(1), &json!(2))
    );
    let old = api
        .get("/api/v1/definitions/ticket?version=1", &api.admin)
        .await;
    assert_eq!(old.body["deployment"]["latest_version"], 2, "{old:?}");
    let list = api.get("/api/v1/definitions", &api.admin).await;
    let tickets: Vec<&Value> = list.body["definitions"]
        .as_array()
        .expect("definitions")
        .iter()
        .filter(|d| d["key"] == "ticket")
        .collect();
    assert_eq!(tickets.len(), 2);
    assert!(
        tickets.iter().all(|d| d["latest_version"] == 2),
        "{tickets:?}"
    );
}

async fn instances_start_once_per_business_key(api: TestApi) {
    let body = json!({"process": "case", "business_key": "2026-0001",
        "variables": {"name": "李四", "street": "east", "amount": 10}});
    let first = api
        .post("/api/v1/instances", &api.admin, body.clone())
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let second = api.post("/api/v1/instances", &api.admin, body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["existing"], true);

    let unknown = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "nope", "variables": {}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let missing = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "case", "variables": {"amount": "ten"}}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = missing.body["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    for field in ["name", "street", "amount"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }

    let overseer = api.token("sup", &["supervision"], &[]).await;
    let refused = api
        .post(
            "/api/v1/instances",
            &overseer,
            json!({"process": "case", "variables": {}}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

async fn bad_input_gets_400_or_422_never_500(api: TestApi) {
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/instances")
        .header("authorization", format!("Bearer {}", api.admin))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let malformed = api.send(request).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "bad_request");

    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/instances")
        .header("authorization", format!("Bearer {}", api.admin))
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let no_type = api.send(request).await;
    assert_eq!(no_type.status, StatusCode::BAD_REQUEST);
    assert!(no_type.message().contains("Content-Type"));

    let wrong_shape = api
        .post("/api/v1/instances", &api.admin, json!({"process": 5}))
        .await;
    assert_eq!(wrong_shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_shape.code(), "invalid_body");

    let bad_claim = api
        .post(
            "/api/v1/tasks/claim",
            &api.admin,
            json!({"queues": [], "worker": "", "max": 0, "lease_seconds": 0, "wait_seconds": 100000}),
        )
        .await;
    assert_eq!(bad_claim.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_claim.body["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let bad_state = api.get("/api/v1/tasks?state=sleeping", &api.admin).await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    let bad_limit = api.get("/api/v1/tasks?limit=-1", &api.admin).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);

    let wrong_method = api
        .call("DELETE", "/api/v1/instances", Some(&api.admin), None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), "method_not_allowed");

    let unknown_task = api
        .post(
            "/api/v1/tasks/nope/complete",
            &api.admin,
            json!({"lock_token": "1", "outcome": "ok"}),
        )
        .await;
    assert_eq!(unknown_task.status, StatusCode::NOT_FOUND);
}

async fn claim_complete_with_fencing_tokens(api: TestApi) {
    let instance = api.start_case("east", 10).await;
    let window = api.token("window", &["window"], &[]).await;
    let tasks = api.claim(&window, "window", 10, 0).await;
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    assert_eq!(task["instance_id"], instance.as_str());
    assert_eq!(task["node"], "intake");
    assert_eq!(task["queue"], "window");
    assert_eq!(task["org_unit"], "east");
    assert_eq!(task["outcomes"], json!(["ok", "reject"]));
    assert_eq!(task["fields"][0]["name"], "checked");
    assert_eq!(task["fields"][0]["required"], true);
    let id = task["id"].as_str().unwrap();
    let lock = task["lock_token"].as_str().unwrap();

    assert!(
        api.claim(&window, "window", 10, 0).await.is_empty(),
        "a claimed task is not claimed twice"
    );

    let reviewer = api.token("reviewer", &["review"], &[]).await;
    let other_queue = api
        .post(
            "/api/v1/tasks/claim",
            &reviewer,
            json!({"queues": ["window"], "worker": "r"}),
        )
        .await;
    assert_eq!(other_queue.status, StatusCode::FORBIDDEN);
    let not_theirs = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &reviewer,
            json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(not_theirs.status, StatusCode::FORBIDDEN);
    // A lock token that does not read: still 403 (or 404) before 409.
    for (who, task, status) in [
        (&reviewer, id, StatusCode::FORBIDDEN),
        (&window, "nope", StatusCode::NOT_FOUND),
        (&window, id, StatusCode::CONFLICT),
    ] {
        let answer = api
            .post(
                &format!("/api/v1/tasks/{task}/complete"),
                who,
                json!({"lock_token": "abc", "outcome": "ok", "variables": {"checked": true}}),
            )
            .await;
        assert_eq!(answer.status, status, "{answer:?}");
    }

    let stale = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &window,
            json!({"lock_token": "999999", "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{stale:?}");
    assert!(!stale.message().is_empty());

    let done = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &window,
            json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["active_nodes"], json!(["docs"]));
    let completed = api
        .history(&instance)
        .await
        .into_iter()
        .find(|e| e["kind"] == "task_completed")
        .unwrap();
    assert_eq!(
        completed["actor"], "window",
        "the token acts, not the worker label of the claim"
    );

    let repeated = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &window,
            json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
        )
        .await;
    // The same completion again (its answer lost): applied once, and said so.
    assert_eq!(repeated.status, StatusCode::CONFLICT);
    assert_eq!(repeated.code(), "already_completed_by_this_lock");
}

async fn completion_problems_are_listed_and_change_nothing(api: TestApi) {
    api.start_case("east", 10).await;
    let tasks = api.claim(&api.admin, "window", 1, 0).await;
    let id = tasks[0]["id"].as_str().unwrap();
    let lock = tasks[0]["lock_token"].as_str().unwrap();
    let bad = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &api.admin,
            json!({"lock_token": lock, "outcome": "maybe", "variables": {"note": 5}}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    let problems = bad.body["error"]["details"]["problems"].as_array().unwrap();
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"outcome"), "{fields:?}");
    assert!(fields.contains(&"checked"), "{fields:?}");
    assert!(fields.contains(&"note"), "{fields:?}");

    let task = api
        .get("/api/v1/tasks?queue=window&state=claimed", &api.admin)
        .await;
    assert_eq!(
        task.body["tasks"].as_array().unwrap().len(),
        1,
        "still claimed, unchanged"
    );
    let good = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &api.admin,
            json!({"lock_token": lock, "outcome": "reject", "variables": {"checked": false}}),
        )
        .await;
    assert_eq!(
        good.status,
        StatusCode::OK,
        "the same lock token still works: {good:?}"
    );
    assert_eq!(good.body["result"], "rejected");
}

async fn completions_in_one_request_stand_alone(api: TestApi) {
    let good = api.start_case("east", 10).await;
    let invalid = api.start_case("east", 10).await;
    let stale = api.start_case("east", 10).await;
    let west = api.start_case("west", 10).await;
    let rejected = api.start_case("east", 10).await;
    // Only the claimer finishes a claim: east claims its street's tasks, the admin the west one.
    let east = api.token("east-window", &["window"], &["east"]).await;
    let mut tasks = api.claim(&east, "window", 10, 0).await;
    assert_eq!(tasks.len(), 4);
    tasks.extend(api.claim(&api.admin, "window", 10, 0).await);
    assert_eq!(tasks.len(), 5);
    let task_of = |instance: &str| {
        let task = tasks
            .iter()
            .find(|t| t["instance_id"] == instance)
            .expect("claimed");
        (
            task["id"].as_str().unwrap().to_string(),
            task["lock_token"].as_str().unwrap().to_string(),
        )
    };
    let (good_id, good_lock) = task_of(&good);
    let (invalid_id, invalid_lock) = task_of(&invalid);
    let (stale_id, _) = task_of(&stale);
    let (west_id, west_lock) = task_of(&west);
    let (rejected_id, rejected_lock) = task_of(&rejected);
    let ok = json!({"checked": true});
    let answer = api
        .post(
            "/api/v1/tasks/complete",
            &east,
            json!({"completions": [
                {"task_id": good_id, "lock_token": good_lock, "outcome": "ok", "variables": ok},
                {"task_id": invalid_id, "lock_token": invalid_lock, "outcome": "maybe"},
                {"task_id": stale_id, "lock_token": "999999", "outcome": "ok", "variables": ok},
                {"task_id": west_id, "lock_token": west_lock, "outcome": "ok", "variables": ok},
                {"task_id": "nope", "lock_token": "1", "outcome": "ok"},
                {"task_id": good_id, "lock_token": good_lock, "outcome": "ok", "variables": ok},
                {"task_id": rejected_id, "lock_token": rejected_lock, "outcome": "reject",
                 "variables": {"checked": false}},
                // A lock token that does not read: still 403 or 404 before 409.
                {"task_id": west_id, "lock_token": "abc", "outcome": "ok", "variables": ok},
                {"task_id": "nope", "lock_token": "abc", "outcome": "ok"},
                {"task_id": stale_id, "lock_token": "abc", "outcome": "ok", "variables": ok},
            ]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let results = answer.body["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        // Another street's task answers as an unknown one (404); the repeated completion of
        // `good` is told it was applied (409 `already_completed_by_this_lock`).
        [200, 422, 409, 404, 404, 409, 200, 404, 404, 409],
        "{results:?}"
    );
    assert_eq!(results[0]["task_id"], good_id.as_str());
    assert_eq!(results[0]["instance"]["id"], good.as_str());
    assert_eq!(results[0]["instance"]["status"], "running");
    let problems = results[1]["error"]["details"]["problems"]
        .as_array()
        .unwrap();
    assert!(
        problems.iter().any(|p| p["field"] == "outcome"),
        "{problems:?}"
    );
    assert_eq!(results[2]["error"]["code"], "conflict");
    assert_eq!(results[3]["error"]["code"], "not_found", "{results:?}");
    assert_eq!(results[4]["error"]["code"], "not_found");
    assert_eq!(
        results[5]["error"]["code"],
        "already_completed_by_this_lock"
    );
    assert_eq!(results[6]["instance"]["status"], "completed");
    assert_eq!(results[6]["instance"]["result"], "rejected");

    // The refused ones changed nothing: still claimed, and their tokens still work.
    let claimed = api
        .get("/api/v1/tasks?queue=window&state=claimed", &api.admin)
        .await;
    let mut still: Vec<&str> = claimed.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    still.sort();
    let mut expected = vec![invalid_id.as_str(), stale_id.as_str(), west_id.as_str()];
    expected.sort();
    assert_eq!(still, expected);
    // For the claimer: even the admin may not finish east's claim.
    let body = json!({"completions": [{"task_id": invalid_id, "lock_token": invalid_lock,
        "outcome": "ok", "variables": ok}]});
    let admin = api
        .post("/api/v1/tasks/complete", &api.admin, body.clone())
        .await;
    assert_eq!(admin.body["results"][0]["status"], 403, "{admin:?}");
    let again = api.post("/api/v1/tasks/complete", &east, body).await;
    assert_eq!(again.body["results"][0]["status"], 200, "{again:?}");
    let completions = api
        .history(&good)
        .await
        .iter()
        .filter(|e| e["kind"] == "task_completed")
        .count();
    assert_eq!(completions, 1, "the repeated completion did nothing");

    // The 403 is recorded like any refused call.
    let refusals = api.get("/api/v1/refusals", &api.admin).await;
    let list = refusals.body["refusals"].as_array().unwrap();
    assert!(
        list.iter().any(|r| r["status"] == 403
            && r["token"] == "admin"
            && r["path"] == "/api/v1/tasks/complete"
            && r["reason"].as_str().unwrap().contains(invalid_id.as_str())),
        "{list:?}"
    );

    // The request as a whole: at least one completion, at most 100.
    let empty = api
        .post("/api/v1/tasks/complete", &east, json!({"completions": []}))
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY, "{empty:?}");
    let item = json!({"task_id": "x", "lock_token": "1", "outcome": "ok"});
    let too_many = api
        .post(
            "/api/v1/tasks/complete",
            &east,
            json!({"completions": vec![item; 101]}),
        )
        .await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_many.message().contains("100"), "{too_many:?}");
    let shapeless = api
        .post("/api/v1/tasks/complete", &east, json!({"tasks": []}))
        .await;
    assert_eq!(shapeless.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn street_scoped_window_sees_only_its_street(api: TestApi) {
    let east_case = api.start_case("east", 10).await;
    let west_case = api.start_case("west", 10).await;
    let east = api.token("east", &["window"], &["east"]).await;
    let tasks = api.claim(&east, "window", 10, 0).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["instance_id"], east_case.as_str());

    let listed = api.get("/api/v1/tasks?queue=window", &east).await;
    let listed = listed.body["tasks"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["org_unit"], "east");

    assert_eq!(
        api.get(&format!("/api/v1/instances/{east_case}"), &east)
            .await
            .status,
        StatusCode::OK
    );
    let west = api
        .get(&format!("/api/v1/instances/{west_case}"), &east)
        .await;
    // Another street's case answers as an unknown one: its id is not confirmed.
    assert_eq!(west.status, StatusCode::NOT_FOUND);
    let history = api
        .get(&format!("/api/v1/instances/{west_case}/history"), &east)
        .await;
    assert_eq!(history.status, StatusCode::NOT_FOUND);
    let missing = api.get("/api/v1/instances/nope", &east).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), west.code());
}

async fn long_poll_wakes_when_a_task_appears(api: TestApi) {
    let empty_started = Instant::now();
    assert!(api.claim(&api.admin, "window", 1, 1).await.is_empty());
    let waited = empty_started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "waited the full second: {waited:?}"
    );

    let api = std::sync::Arc::new(api);
    let claimer = {
        let api = api.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let tasks = api.claim(&api.admin, "window", 1, 20).await;
            (tasks, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.start_case("east", 10).await;
    let (tasks, elapsed) = claimer.await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(
        elapsed < Duration::from_secs(3),
        "woken at once, not after 20 s: {elapsed:?}"
    );
}

async fn lease_extend_release_and_expiry(api: TestApi) {
    let instance = api.start_case("east", 10).await;
    let before = api.history(&instance).await;
    let short = api
        .post(
            "/api/v1/tasks/claim",
            &api.admin,
            json!({"queues": ["window"], "worker": "w1", "max": 1, "lease_seconds": 1}),
        )
        .await;
    let task = &short.body["tasks"][0];
    let id = task["id"].as_str().unwrap().to_string();
    let first_lock = task["lock_token"].as_str().unwrap().to_string();
    let after_claim = api.history(&instance).await;
    assert_eq!(
        after_claim, before,
        "a claim writes only its task row; its entry comes when the claim ends"
    );

    let extended = api
        .post(
            &format!("/api/v1/tasks/{id}/extend"),
            &api.admin,
            json!({"lock_token": first_lock, "lease_seconds": 1}),
        )
        .await;
    assert_eq!(extended.status, StatusCode::OK, "{extended:?}");
    assert!(extended.body["lease_expires_at"].is_string());

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reclaimed = api.claim(&api.admin, "window", 1, 0).await;
    assert_eq!(reclaimed.len(), 1, "an expired lease is claimable again");
    let second_lock = reclaimed[0]["lock_token"].as_str().unwrap().to_string();
    assert_ne!(first_lock, second_lock);

    let old = api
        .post(
            &format!("/api/v1/tasks/{id}/extend"),
            &api.admin,
            json!({"lock_token": first_lock, "lease_seconds": 30}),
        )
        .await;
    assert_eq!(
        old.status,
        StatusCode::CONFLICT,
        "the older token is useless now"
    );
    let old_complete = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &api.admin,
            json!({"lock_token": first_lock, "outcome": "reject", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(old_complete.status, StatusCode::CONFLICT);

    let released = api
        .post(
            &format!("/api/v1/tasks/{id}/release"),
            &api.admin,
            json!({"lock_token": second_lock}),
        )
        .await;
    assert_eq!(released.status, StatusCode::OK, "{released:?}");
    let again = api.claim(&api.admin, "window", 1, 0).await;
    assert_eq!(again.len(), 1, "a released task is claimable at once");
    let too_long = api
        .post(
            &format!("/api/v1/tasks/{id}/extend"),
            &api.admin,
            json!({"lock_token": again[0]["lock_token"], "lease_seconds": 999999}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);

    let third_lock = again[0]["lock_token"].as_str().unwrap().to_string();
    let done = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &api.admin,
            json!({"lock_token": third_lock, "outcome": "reject", "variables": {"checked": true}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    // Every claim is in the history once, in order: w1's (its lease ran out; recorded by the
    // claim that took the task over), the second (ended by the release), the third (ended by
    // the completion), each at the time it was made.
    let history = api.history(&instance).await;
    let kinds: Vec<(&str, &str)> = history[before.len()..]
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds[..5],
        [
            ("task_claimed", "admin"),
            ("task_claimed", "admin"),
            ("task_released", "admin"),
            ("task_claimed", "admin"),
            ("task_completed", "admin"),
        ],
        "the token acts, whatever worker name its claims give: {history:#?}"
    );
    let claims: Vec<&Value> = history
        .iter()
        .filter(|e| e["kind"] == "task_claimed")
        .collect();
    for (claim, worker) in claims.iter().zip(["w1", "tester", "tester"]) {
        assert_eq!(
            claim["data"]["worker"], worker,
            "the label is kept: {claim}"
        );
    }
    assert!(
        claims[0]["text"]
            .as_str()
            .unwrap()
            .contains("lease ran out")
    );
    // The claim whose lease ran out names its holder with kind and id, as the others do.
    assert!(
        claims.iter().all(|c| c["actor_kind"] == "token"
            && c["actor_id"].as_str().is_some_and(|id| !id.is_empty())
            && c["actor_id"] == claims[2]["actor_id"]),
        "{claims:#?}"
    );
    let tokens: Vec<String> = claims
        .iter()
        .map(|e| e["data"]["lock_token"].to_string())
        .collect();
    let expected: Vec<String> = [&first_lock, &second_lock, &third_lock]
        .iter()
        .map(|t| t.parse::<i64>().unwrap().to_string())
        .collect();
    assert_eq!(tokens, expected);
    let at = |e: &Value| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
    assert!(
        at(claims[0]) < at(claims[1]) && at(claims[2]) <= at(&history[history.len() - 1]),
        "each claim is dated when it was made: {history:#?}"
    );
}

async fn failures_retry_then_become_an_incident(api: TestApi) {
    let instance = api.start_case("east", 10).await;
    let mut states = Vec::new();
    for _ in 0..3 {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            tasks = api.claim(&api.admin, "window", 1, 0).await;
            if !tasks.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tasks.len(), 1, "the task comes back after its back-off");
        let id = tasks[0]["id"].as_str().unwrap();
        let failed = api
            .post(
                &format!("/api/v1/tasks/{id}/fail"),
                &api.admin,
                json!({"lock_token": tasks[0]["lock_token"], "error": "registry offline"}),
            )
            .await;
        assert_eq!(failed.status, StatusCode::OK, "{failed:?}");
        states.push((
            failed.body["state"].clone(),
            failed.body["attempts"].clone(),
        ));
    }
    assert_eq!(
        states,
        vec![
            (json!("retry"), json!(1)),
            (json!("retry"), json!(2)),
            (json!("incident"), json!(3))
        ]
    );
    // Each failure ends its claim: the claim is recorded just before it.
    let history = api.history(&instance).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| k.starts_with("task_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "task_created",
            "task_claimed",
            "task_failed",
            "task_claimed",
            "task_failed",
            "task_claimed",
            "task_failed"
        ]
    );
    let view = api
        .get(&format!("/api/v1/instances/{instance}"), &api.admin)
        .await;
    assert!(
        view.body["incident"]
            .as_str()
            .unwrap_or("")
            .contains("registry offline"),
        "{view:?}"
    );

    let window = api.token("w", &["window"], &[]).await;
    let not_admin = api
        .post(
            &format!("/api/v1/instances/{instance}/incident/resolve"),
            &window,
            json!({}),
        )
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let resolved = api
        .post(
            &format!("/api/v1/instances/{instance}/incident/resolve"),
            &api.admin,
            json!({}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{resolved:?}");
    assert_eq!(
        api.claim(&api.admin, "window", 1, 0).await.len(),
        1,
        "the task is back after resolution"
    );
}

async fn instance_view_history_messages_and_cancel(api: TestApi) {
    let instance = api.start_case("east", 5000).await;
    let view = api
        .get(&format!("/api/v1/instances/{instance}"), &api.admin)
        .await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.body["status"], "running");
    assert_eq!(view.body["vars"]["street"], "east");
    let name = view.body["vars"]["name"].as_str().unwrap();
    assert!(!name.contains("三丰"), "personal data masked: {name}");
    assert_eq!(view.body["tasks"][0]["node"], "intake");

    let early = api
        .post(
            &format!("/api/v1/instances/{instance}/messages/docs"),
            &api.admin,
            json!({"variables": {"note": "x"}}),
        )
        .await;
    assert_eq!(
        early.status,
        StatusCode::CONFLICT,
        "not waiting for docs yet: {early:?}"
    );

    let tasks = api.claim(&api.admin, "window", 1, 0).await;
    let id = tasks[0]["id"].as_str().unwrap();
    api.post(&format!("/api/v1/tasks/{id}/complete"), &api.admin,
        json!({"lock_token": tasks[0]["lock_token"], "outcome": "ok", "variables": {"checked": true}}))
        .await;
    let review = api.claim(&api.admin, "review", 1, 0).await;
    assert_eq!(review.len(), 1, "amount > 1000 goes to review");
    let id = review[0]["id"].as_str().unwrap();
    let reviewed = api
        .post(
            &format!("/api/v1/tasks/{id}/complete"),
            &api.admin,
            json!({"lock_token": review[0]["lock_token"], "variables": {}, "outcome": "approve"}),
        )
        .await;
    assert_eq!(reviewed.status, StatusCode::OK, "{reviewed:?}");

    let bad_message = api
        .post(
            &format!("/api/v1/instances/{instance}/messages/docs"),
            &api.admin,
            json!({"variables": {}}),
        )
        .await;
    assert_eq!(
        bad_message.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{bad_message:?}"
    );
    let delivered = api
        .post(
            &format!("/api/v1/instances/{instance}/messages/docs"),
            &api.admin,
            json!({"variables": {"note": "材料齐全"}}),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{delivered:?}");
    assert_eq!(delivered.body["status"], "completed");
    assert_eq!(delivered.body["result"], "approved");

    let history = api
        .get(&format!("/api/v1/instances/{instance}/history"), &api.admin)
        .await;
    let entries = history.body["entries"].as_array().unwrap();
    assert!(entries.len() >= 5, "{entries:?}");
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(
        !history.body.to_string().contains("张三丰"),
        "no personal data in the history"
    );

    let docs = api
        .get(
            &format!("/api/v1/instances/{instance}/documents"),
            &api.admin,
        )
        .await;
    assert_eq!(docs.status, StatusCode::OK);

    let other = api.start_case("east", 1).await;
    let window = api.token("w", &["window"], &[]).await;
    let refused = api
        .post(
            &format!("/api/v1/instances/{other}/cancel"),
            &window,
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Its task is claimed when the case is cancelled: the claim ends with the case and is
    // recorded then, once, before the cancellation.
    let held = api.claim(&api.admin, "window", 1, 0).await;
    assert_eq!(held.len(), 1);
    let cancelled = api
        .post(
            &format!("/api/v1/instances/{other}/cancel"),
            &api.admin,
            json!({"reason": "duplicate"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert!(
        api.claim(&api.admin, "window", 1, 0).await.is_empty(),
        "its task went with it"
    );
    let history = api.history(&other).await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let claimed: Vec<usize> = (0..kinds.len())
        .filter(|&i| kinds[i] == "task_claimed")
        .collect();
    assert_eq!(claimed.len(), 1, "{kinds:?}");
    assert_eq!(
        kinds[claimed[0] - 1],
        "task_created",
        "recorded after what came before the claim: {kinds:?}"
    );
    assert_eq!(
        kinds[claimed[0] + 1],
        "cancelled",
        "and just before the cancellation: {kinds:?}"
    );
    let missing = api
        .post("/api/v1/instances/nope/cancel", &api.admin, json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// `audit` oversees (the test process declares it so): it reads the ledger. A role no process
/// declares `oversees` does not, whatever its name.
async fn ledger_is_for_overseers_in_json_and_csv(api: TestApi) {
    api.start_case("east", 10).await;
    let leader = api.token("lead", &["audit"], &[]).await;
    for undeclared in ["supervision", "leadership", "review"] {
        let token = api
            .token(&format!("not-{undeclared}"), &[undeclared], &[])
            .await;
        let refused = api.get("/api/v1/ledger", &token).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{undeclared}");
        assert!(refused.message().contains("`oversees`"), "{refused:?}");
    }
    let json = api
        .get("/api/v1/ledger?from=2000-01-01&to=2999-12-31", &leader)
        .await;
    assert_eq!(json.status, StatusCode::OK, "{json:?}");
    assert!(!json.body["entries"].as_array().unwrap().is_empty());

    let csv = api.get("/api/v1/ledger?format=csv", &leader).await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = csv.body.as_str().unwrap();
    assert!(text.lines().count() >= 2, "{text}");

    let window = api.token("w", &["window"], &[]).await;
    assert_eq!(
        api.get("/api/v1/ledger", &window).await.status,
        StatusCode::FORBIDDEN
    );
    let bad = api.get("/api/v1/ledger?from=yesterday", &leader).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let reversed = api
        .get("/api/v1/ledger?from=2026-02-01&to=2026-01-01", &leader)
        .await;
    assert_eq!(reversed.status, StatusCode::BAD_REQUEST);
    let format = api.get("/api/v1/ledger?format=xml", &leader).await;
    assert_eq!(format.status, StatusCode::BAD_REQUEST);
}

/// The first-responder rule (首问责任人, seed A3 §1-2: the window that first took a case sees it
/// through) holds against a second token of the same queue: the claimer and the actor are the
/// authenticated token, whatever worker name a request sends.
async fn the_token_acts_not_the_worker_name_it_sends(api: TestApi) {
    deploy_model(&api.engine, first_responder_model(), Default::default()).await;
    let a = api.token("window-a", &["window"], &[]).await;
    let b = api.token("window-b", &["window"], &[]).await;
    let started = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "first", "variables": {}}),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let instance = started.body["id"].as_str().unwrap().to_string();
    // Token a takes the case through a worker labelled `bot-1`.
    let intake = claim_as(&api, &a, "bot-1").await;
    assert_eq!(intake.len(), 1);
    let done = api
        .post(
            &format!(
                "/api/v1/tasks/{}/complete",
                intake[0]["id"].as_str().unwrap()
            ),
            &a,
            json!({"lock_token": intake[0]["lock_token"], "outcome": "done"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");

    // The follow-up is a's: b (and the admin) sending a's name as worker get nothing.
    for (token, worker) in [(&b, "window-a"), (&b, "bot-1"), (&api.admin, "window-a")] {
        assert!(
            claim_as(&api, token, worker).await.is_empty(),
            "the first responder's task is not claimed by another token (worker {worker})"
        );
    }
    let follow = claim_as(&api, &a, "bot-2").await;
    assert_eq!(follow.len(), 1, "the first responder claims it");
    assert_eq!(follow[0]["node"], "follow");
    let id = follow[0]["id"].as_str().unwrap();
    let lock = follow[0]["lock_token"].as_str().unwrap();
    let listed = api
        .get("/api/v1/tasks?queue=window&state=claimed", &a)
        .await;
    assert_eq!(
        listed.body["tasks"][0]["locked_by"], "window-a",
        "{listed:?}"
    );
    assert_eq!(listed.body["tasks"][0]["worker"], "bot-2", "{listed:?}");

    // b knows (or guesses) the lock token: still not b's claim to finish, by any route.
    for (path, body) in [
        ("complete", json!({"lock_token": lock, "outcome": "done"})),
        ("extend", json!({"lock_token": lock, "lease_seconds": 60})),
        ("release", json!({"lock_token": lock})),
        ("fail", json!({"lock_token": lock, "error": "x"})),
    ] {
        let refused = api
            .post(&format!("/api/v1/tasks/{id}/{path}"), &b, body)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {refused:?}");
        assert!(refused.message().contains("window-a"), "{refused:?}");
    }
    let batch = api
        .post(
            "/api/v1/tasks/complete",
            &b,
            json!({"completions": [{"task_id": id, "lock_token": lock, "outcome": "done"}]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{batch:?}");
    assert_eq!(batch.body["results"][0]["status"], 403, "{batch:?}");

    // a finishes it through the batch route.
    let batch = api
        .post(
            "/api/v1/tasks/complete",
            &a,
            json!({"completions": [{"task_id": id, "lock_token": lock, "outcome": "done"}]}),
        )
        .await;
    assert_eq!(batch.body["results"][0]["status"], 200, "{batch:?}");

    let history = api.history(&instance).await;
    let of_kind =
        |kind: &str| -> Vec<&Value> { history.iter().filter(|e| e["kind"] == kind).collect() };
    let completed = of_kind("task_completed");
    assert_eq!(completed.len(), 2, "{history:?}");
    for entry in &completed {
        assert_eq!(entry["actor"], "window-a", "{entry}");
    }
    let claims = of_kind("task_claimed");
    assert_eq!(claims.len(), 2, "{history:?}");
    for (entry, worker) in claims.iter().zip(["bot-1", "bot-2"]) {
        assert_eq!(entry["actor"], "window-a", "{entry}");
        assert!(
            entry["text"].as_str().unwrap().contains(worker),
            "the worker label stays in the record: {entry}"
        );
    }
    assert!(
        history.iter().all(|e| e["actor"] != "window-b"),
        "b changed nothing: {history:?}"
    );
}

/// Claims from `window` with `token`, sending `worker` as the worker's name.
async fn claim_as(api: &TestApi, token: &str, worker: &str) -> Vec<Value> {
    let answer = api
        .post(
            "/api/v1/tasks/claim",
            token,
            json!({"queues": ["window"], "worker": worker, "lease_seconds": 60}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["tasks"].as_array().cloned().unwrap_or_default()
}

/// `first`: intake (queue `window`) → follow (queue `window`, `assignee completed_by(intake)`).
fn first_responder_model() -> yimen_dsl::model::Process {
    use yimen_dsl::model::*;
    let mut follow = task("follow", "window", vec![outcome("done", "done")], &[]);
    if let NodeKind::Task(spec) = &mut follow.kind {
        spec.assignee = Some(Assignee::CompletedBy(id("intake")));
    }
    let nodes = vec![
        node("begin", NodeKind::Start { next: id("intake") }),
        task("intake", "window", vec![outcome("done", "follow")], &[]),
        follow,
        end("done", "done"),
    ];
    Process {
        title: "Test case".into(),
        ..process("first", vec![], &["window"], nodes)
    }
}

/// `reg`: personal variables with rules (an ID number, a phone), an enum with Chinese labels,
/// a public document issued at the start; then a window task that may correct the data, and a
/// message that may give a phone.
fn registration_model() -> yimen_dsl::model::Process {
    use yimen_dsl::model::*;
    let category = Type::Enum("category".into());
    let personal = |name: &str, kind: PersonalKind, required: bool| VarDecl {
        personal: Some(kind),
        required,
        ..var(name, Type::Text)
    };
    let vars = vec![
        personal("name", PersonalKind::Name, true),
        personal("id_number", PersonalKind::IdNumber, true),
        personal("phone", PersonalKind::Phone, false),
        var("category", category.clone()),
        var("categories", Type::List(Box::new(category))),
    ];
    let fields = [
        ("id_number", false),
        ("phone", false),
        ("category", false),
        ("categories", false),
    ];
    let issue = Action::Issue {
        document: id("list"),
        span: Span::default(),
    };
    let nodes = labelled(vec![
        node(
            "begin",
            NodeKind::Start {
                next: id("publish"),
            },
        ),
        step("publish", vec![issue], "check"),
        task("check", "window", vec![outcome("done", "docs")], &fields),
        node(
            "docs",
            NodeKind::WaitMessage {
                message: id("docs"),
                sets: vec![FieldSpec {
                    var: id("phone"),
                    required: true,
                    span: Span::default(),
                }],
                next: id("done"),
                timeout: None,
            },
        ),
        end("done", "done"),
    ]);
    let listed = |key: &str, label: &str| EnumValue {
        key: id(key),
        label: Some(label.into()),
    };
    Process {
        title: "Test case".into(),
        enums: vec![EnumDecl {
            name: id("category"),
            source: EnumSource::Listed(vec![
                listed("minimum_living", "最低生活保障"),
                listed("destitute", "特困人员供养"),
            ]),
            span: Span::default(),
        }],
        documents: vec![DocumentDecl {
            name: id("list"),
            label: Some("公示名单".into()),
            template: "list.md.j2".into(),
            public: true,
            span: Span::default(),
        }],
        ..process("reg", vars, &["window"], nodes)
    }
}

async fn deploy_registration(api: &TestApi) {
    let files = [("list.md.j2".to_string(), "公示：{{ name }}".to_string())].into();
    deploy_model(&api.engine, registration_model(), files).await;
}

/// An ID number with its GB 11643 check character: region 150302 (乌海市海勃湾区), born on
/// `born`, sequence `seq`.
fn id_number(born: chrono::NaiveDate, seq: u32) -> String {
    let body = format!("150302{}{seq:03}", born.format("%Y%m%d"));
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

/// The problems of a 422, as (field, message).
fn problems(answer: &Answer) -> Vec<(String, String)> {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{answer:?}"
    );
    answer.body["error"]["details"]["problems"]
        .as_array()
        .expect("problems listed")
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// 申请登记 (seed, registration at the window): ID numbers and phones follow their rules at the
/// start, in completion fields and in message payloads (a 422 naming the variable and the
/// rule); enum values may be given by their Chinese label and are stored by key.
async fn registration_data_is_checked_wherever_it_is_given(api: TestApi) {
    deploy_registration(&api).await;
    let adult = id_number(chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(), 123);
    assert_eq!(adult, "150302199001011231");
    let start = |vars: Value| {
        api.post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "reg", "variables": vars}),
        )
    };
    for (id_number, rule) in [
        ("12345", "18 characters"),
        ("150302199001011235", "check"),
        ("990302199001011231", "region code"),
        ("150302199002301231", "birth date"),
    ] {
        let refused = problems(&start(json!({"name": "张三", "id_number": id_number})).await);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].0, "id_number");
        assert!(
            refused[0].1.contains("GB 11643") && refused[0].1.contains(rule),
            "{id_number}: {refused:?}"
        );
        assert!(!refused[0].1.contains(id_number), "the value is not echoed");
    }
    let refused = problems(
        &start(json!({"name": "张三", "id_number": adult, "phone": "12345",
            "category": "最低", "categories": ["特困人员供养", "other"]}))
        .await,
    );
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["phone", "category", "categories"], "{refused:?}");
    assert!(refused[0].1.contains("area code"), "{refused:?}");

    let started = start(
        json!({"name": "张三", "id_number": adult, "phone": "0473-3123456",
        "category": "最低生活保障", "categories": ["特困人员供养", "minimum_living"]}),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let instance = started.body["id"].as_str().unwrap().to_string();
    let view = api
        .get(&format!("/api/v1/instances/{instance}"), &api.admin)
        .await;
    assert_eq!(view.body["vars"]["category"], "minimum_living", "{view:?}");
    assert_eq!(
        view.body["vars"]["categories"],
        json!(["destitute", "minimum_living"])
    );

    // Completion fields: the same rules, the same labels.
    let tasks = api.claim(&api.admin, "window", 1, 0).await;
    let task = tasks[0]["id"].as_str().unwrap();
    let lock = tasks[0]["lock_token"].as_str().unwrap();
    let complete_path = format!("/api/v1/tasks/{task}/complete");
    let complete = |vars: Value| {
        api.post(
            &complete_path,
            &api.admin,
            json!({"lock_token": lock, "outcome": "done", "variables": vars}),
        )
    };
    let refused =
        problems(&complete(json!({"id_number": "150302199001011232", "phone": "138"})).await);
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["id_number", "phone"], "{refused:?}");
    let batch = api
        .post(
            "/api/v1/tasks/complete",
            &api.admin,
            json!({"completions": [{"task_id": task, "lock_token": lock, "outcome": "done",
                "variables": {"id_number": "12345"}}]}),
        )
        .await;
    assert_eq!(batch.body["results"][0]["status"], 422, "{batch:?}");
    let done = complete(json!({"category": "特困人员供养", "phone": "138 0013 8000"})).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(done.body["vars"]["category"], "destitute", "{done:?}");

    // Message payloads.
    let message_path = format!("/api/v1/instances/{instance}/messages/docs");
    let message = |phone: &str| {
        api.post(
            &message_path,
            &api.admin,
            json!({"variables": {"phone": phone}}),
        )
    };
    let refused = problems(&message("0473-0000000").await);
    assert_eq!(refused[0].0, "phone", "{refused:?}");
    let sent = message("010-62345678").await;
    assert_eq!(sent.status, StatusCode::OK, "{sent:?}");
    assert_eq!(sent.body["status"], "completed", "{sent:?}");
}

/// 公示 (seed §二(二)六: approved aid is published, minors are not): a document declared
/// `public` is not issued for a case whose ID number shows a person under 18 on the day the
/// case was started, whatever the process's own flags say; the history says why.
async fn public_documents_never_name_a_minor(api: TestApi) {
    deploy_registration(&api).await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    // 18 today: born on this day 18 years ago (29 February: the 28th).
    let eighteen_today = today
        .checked_sub_months(chrono::Months::new(12 * 18))
        .unwrap();
    for (born, minor) in [
        (chrono::NaiveDate::from_ymd_opt(2012, 5, 1).unwrap(), true),
        (eighteen_today + chrono::Duration::days(1), true),
        (eighteen_today, false),
        (chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(), false),
    ] {
        let number = id_number(born, 42);
        let started = api
            .post(
                "/api/v1/instances",
                &api.admin,
                json!({"process": "reg", "variables": {"name": "王小明", "id_number": number}}),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
        let instance = started.body["id"].as_str().unwrap();
        let documents = api
            .get(
                &format!("/api/v1/instances/{instance}/documents"),
                &api.admin,
            )
            .await;
        let issued = documents.body["documents"].as_array().unwrap().len();
        let withheld: Vec<Value> = api
            .history(instance)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "document_withheld")
            .collect();
        if minor {
            assert_eq!(issued, 0, "born {born}: {documents:?}");
            assert_eq!(withheld.len(), 1, "born {born}");
            assert!(
                withheld[0]["text"].as_str().unwrap().contains("under 18"),
                "{withheld:?}"
            );
            assert!(!withheld[0].to_string().contains(&number), "{withheld:?}");
        } else {
            assert_eq!(issued, 1, "born {born}: {documents:?}");
            assert!(withheld.is_empty(), "born {born}: {withheld:?}");
        }
    }
}
