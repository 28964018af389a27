//! `POST /api/v1/tasks/{id}/claim`, a person claiming the task of the case in front of them,
//! on SQLite and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`): the lease,
//! lock token and fencing of fetch-and-lock, the caller's queue and unit, one winner among
//! callers claiming at once.

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;

on_both_databases!(
    a_task_claimed_by_its_id_is_completed_with_its_lock_token,
    a_claimed_or_finished_task_is_not_claimed_again,
    a_task_outside_the_callers_queue_or_unit_is_refused,
    claims_of_one_task_at_once_have_one_winner,
    a_claim_whose_lease_ran_out_is_fenced_by_a_claim_by_id,
);

/// Starts a `case` of `street`: the id of its open `intake` task (queue `window`).
async fn open_task(api: &TestApi, street: &str) -> String {
    let instance = api.start_case(street, 100).await;
    let tasks = api
        .get(
            "/api/v1/tasks?queue=window&state=open&limit=1000",
            &api.admin,
        )
        .await;
    assert_eq!(tasks.status, StatusCode::OK, "{tasks:?}");
    tasks.body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["instance_id"] == instance.as_str())
        .and_then(|t| t["id"].as_str())
        .unwrap_or_else(|| panic!("the intake of {instance} is open: {tasks:?}"))
        .to_string()
}

async fn claim(api: &TestApi, token: &str, task: &str, body: Value) -> Answer {
    api.post(&format!("/api/v1/tasks/{task}/claim"), token, body)
        .await
}

async fn complete(api: &TestApi, token: &str, task: &str, lock: &Value) -> Answer {
    api.post(
        &format!("/api/v1/tasks/{task}/complete"),
        token,
        json!({"lock_token": lock, "outcome": "ok", "variables": {"checked": true}}),
    )
    .await
}

/// A window clerk of the case's street claims its task by id: the answer is fetch-and-lock's
/// claimed task (lock token, lease, outcomes, fields, variables); the completion with that lock
/// token goes through, and the history records the claim under the token with its label.
async fn a_task_claimed_by_its_id_is_completed_with_its_lock_token(api: TestApi) {
    let task = open_task(&api, "东城街道").await;
    let clerk = api.token("wang-fang", &["window"], &["东城街道"]).await;
    let claimed = claim(
        &api,
        &clerk,
        &task,
        json!({"lease_seconds": 600, "worker": "窗口 3"}),
    )
    .await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
    let body = &claimed.body;
    assert_eq!(body["id"], task.as_str(), "{claimed:?}");
    assert_eq!(body["queue"], "window");
    assert_eq!(body["org_unit"], "东城街道");
    assert_eq!(body["outcomes"], json!(["ok", "reject"]));
    assert_eq!(body["variables"]["street"], "东城街道");
    assert!(body["lock_token"].as_str().is_some(), "{claimed:?}");
    let lease = chrono::DateTime::parse_from_rfc3339(body["lease_expires_at"].as_str().unwrap())
        .expect("lease end");
    let left = lease.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(600),
        "a lease of 600 s: {left:?}"
    );
    let listed = api
        .get("/api/v1/tasks?queue=window&state=claimed", &api.admin)
        .await;
    let row = listed.body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["id"] == task.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{task} is claimed: {listed:?}"));
    assert_eq!(row["locked_by"], "wang-fang", "{row:?}");

    let done = complete(&api, &clerk, &task, &body["lock_token"]).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    let instance = body["instance_id"].as_str().expect("instance");
    let entries = api.history(instance).await;
    let entry = entries
        .iter()
        .find(|e| e["kind"] == "task_claimed")
        .unwrap_or_else(|| panic!("the claim is in the history: {entries:?}"));
    assert_eq!(entry["actor"], "wang-fang", "{entry:?}");
    assert_eq!(entry["data"]["worker"], "窗口 3", "{entry:?}");
    assert_eq!(
        entry["data"]["lock_token"].to_string(),
        body["lock_token"].as_str().expect("lock token"),
        "{entry:?}"
    );

    // With an empty body: fetch-and-lock's 60 s lease.
    let next = open_task(&api, "东城街道").await;
    let claimed = claim(&api, &clerk, &next, json!({})).await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
}

/// A claimed task answers 409 to another clerk (naming the holder and the lease's end) and to
/// its holder; a completed one answers 409 too. Nothing changes: the holder completes it.
async fn a_claimed_or_finished_task_is_not_claimed_again(api: TestApi) {
    let task = open_task(&api, "东城街道").await;
    let first = api.token("east-1", &["window"], &["东城街道"]).await;
    let second = api.token("east-2", &["window"], &["东城街道"]).await;
    let claimed = claim(&api, &first, &task, json!({})).await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");

    let taken = claim(&api, &second, &task, json!({})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    assert_eq!(taken.code(), "conflict");
    assert!(
        taken
            .message()
            .contains("already claimed by `east-1` until"),
        "{taken:?}"
    );
    let again = claim(&api, &first, &task, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    assert!(
        again
            .message()
            .contains("already claimed by you (`east-1`)"),
        "{again:?}"
    );
    // The first claim's lock token is still the current one.
    let done = complete(&api, &first, &task, &claimed.body["lock_token"]).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");

    let finished = claim(&api, &second, &task, json!({})).await;
    assert_eq!(finished.status, StatusCode::CONFLICT, "{finished:?}");
    assert!(
        finished
            .message()
            .contains("already completed by `east-1`: only an open task can be claimed"),
        "{finished:?}"
    );
}

/// A clerk of another street gets 404 for the task, as for an unknown id (ids of another unit
/// are not confirmed); a token of another queue gets 403, recorded as a refused call; an
/// unknown id 404; a lease out of range 422. The task stays open for its own street.
async fn a_task_outside_the_callers_queue_or_unit_is_refused(api: TestApi) {
    let task = open_task(&api, "东城街道").await;
    let west = api.token("west-1", &["window"], &["西城街道"]).await;
    let review = api.token("review-1", &["review"], &[]).await;

    let other_unit = claim(&api, &west, &task, json!({})).await;
    assert_eq!(other_unit.status, StatusCode::NOT_FOUND, "{other_unit:?}");
    let unknown = claim(&api, &west, "no-such-task", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown:?}");
    assert_eq!(
        unknown.message(),
        other_unit.message().replace(&task, "no-such-task")
    );

    let other_queue = claim(&api, &review, &task, json!({})).await;
    assert_eq!(other_queue.status, StatusCode::FORBIDDEN, "{other_queue:?}");
    assert!(
        other_queue.message().contains(&format!(
            "`review-1` may not work task {task} of queue `window`"
        )),
        "{other_queue:?}"
    );
    let refusals = api.get("/api/v1/refusals", &api.admin).await;
    assert!(
        refusals.body["refusals"]
            .as_array()
            .expect("refusals")
            .iter()
            .any(|r| r["status"] == 403 && r["token"] == "review-1"),
        "{refusals:?}"
    );

    for body in [
        json!({"lease_seconds": 0}),
        json!({"worker": "a\u{7}b"}),
        json!({"lease": 5}),
    ] {
        let refused = claim(&api, &api.admin, &task, body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
    }

    let east = api.token("east-1", &["window"], &["东城街道"]).await;
    let claimed = claim(&api, &east, &task, json!({})).await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
}

/// Several clerks claim one task at the same moment, round after round: exactly one gets it,
/// the others 409 naming the winner; the winner's lock token completes it.
async fn claims_of_one_task_at_once_have_one_winner(api: TestApi) {
    let mut clerks = Vec::new();
    for n in 0..4 {
        clerks.push(
            api.token(&format!("east-{n}"), &["window"], &["东城街道"])
                .await,
        );
    }
    for round in 0..6 {
        let task = open_task(&api, "东城街道").await;
        let callers = if round % 2 == 0 { 2 } else { clerks.len() };
        let answers = futures_all(
            clerks[..callers]
                .iter()
                .map(|clerk| claim(&api, clerk, &task, json!({}))),
        )
        .await;
        let winners: Vec<(usize, &Answer)> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.status == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:#?}");
        let (winner, won) = winners[0];
        for (n, answer) in answers.iter().enumerate().filter(|(n, _)| *n != winner) {
            assert_eq!(answer.status, StatusCode::CONFLICT, "{n}: {answer:?}");
            assert!(
                answer
                    .message()
                    .contains(&format!("already claimed by `east-{winner}`")),
                "{answer:?}"
            );
        }
        let done = complete(&api, &clerks[winner], &task, &won.body["lock_token"]).await;
        assert_eq!(done.status, StatusCode::OK, "{done:?}");
    }
}

/// Runs the futures at once (polled together), their answers in order.
async fn futures_all<F: std::future::Future<Output = Answer>>(
    futures: impl Iterator<Item = F>,
) -> Vec<Answer> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<Answer>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(answer) => *slot = Some(answer),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|a| a.expect("answered")).collect()
}

/// A claim by id whose lease ran out may be taken over by another clerk's claim by id, with a
/// newer lock token: the first clerk's completion is refused (409, stale lock token), the
/// second's goes through.
async fn a_claim_whose_lease_ran_out_is_fenced_by_a_claim_by_id(api: TestApi) {
    let task = open_task(&api, "东城街道").await;
    let first = api.token("east-1", &["window"], &["东城街道"]).await;
    let second = api.token("east-2", &["window"], &["东城街道"]).await;
    let lapsed = claim(&api, &first, &task, json!({"lease_seconds": 1})).await;
    assert_eq!(lapsed.status, StatusCode::OK, "{lapsed:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let taken = claim(&api, &second, &task, json!({})).await;
    assert_eq!(taken.status, StatusCode::OK, "{taken:?}");
    let (old, new) = (&lapsed.body["lock_token"], &taken.body["lock_token"]);
    let number = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .expect("lock")
    };
    assert!(number(new) > number(old), "{old} then {new}");

    let stale = complete(&api, &first, &task, old).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{stale:?}");
    let done = complete(&api, &second, &task, new).await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
}
