//! SQLite in a file: the committer carries the running instances its batches committed into
//! the next batches instead of reading them again (`store::staged::Carry`), and throws them
//! away whenever anything else may have written.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn a_completion_after_a_claim_takes_its_instance_from_the_carry() {
    let h = Harness::open(&Db::sqlite("carry")).await;
    h.deploy(one_task("one")).await;
    let started = h.start("one", json!({})).await;
    let claimed = h.claim("window", 1).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        h.engine.carried(),
        0,
        "the claim's instance is read from memory, not taken"
    );
    let done = h.complete(&claimed[0], "done", json!({})).await.unwrap();
    assert_eq!(
        h.engine.carried(),
        1,
        "the completion's instance came from the carry"
    );
    assert_eq!(done.status.as_str(), "completed");
    // What the carry let the batch write is what a read of the database finds.
    let read = h.engine.instance(&started.id).await.unwrap();
    assert_eq!(read.status.as_str(), "completed");
    let history = h.engine.history(&started.id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "started",
            "task_created",
            "task_claimed",
            "task_completed",
            "ended"
        ]
    );
    h.finish().await;
}

#[tokio::test]
async fn a_write_outside_the_committer_throws_the_carry_away() {
    let h = Harness::open(&Db::sqlite("carry")).await;
    h.deploy(one_task("one")).await;
    let started = h.start("one", json!({})).await;
    let claimed = h.claim("window", 1).await;
    // A cancel is a write transaction of its own, not a batch of the committer.
    h.engine.cancel(&started.id, "test", "admin").await.unwrap();
    let refused = h.complete(&claimed[0], "done", json!({})).await;
    assert!(
        refused.is_err(),
        "a cancelled case's task completed: {refused:?}"
    );
    assert_eq!(h.engine.carried(), 0, "read again, not carried");
    let read = h.engine.instance(&started.id).await.unwrap();
    assert_eq!(read.status.as_str(), "cancelled");
    h.finish().await;
}

#[tokio::test]
async fn a_transaction_of_the_engine_on_the_writer_throws_the_carry_away() {
    let h = Harness::open(&Db::sqlite("carry")).await;
    h.deploy(one_task("one")).await;
    h.start("one", json!({})).await;
    let claimed = h.claim("window", 1).await;
    // A release runs on the same writer connection as the committer, so only the engine's
    // write epoch tells it happened. The task is open again: the old token is stale.
    h.engine
        .release(&claimed[0].task.id, claimed[0].lock_token, "w1")
        .await
        .unwrap();
    let refused = h.complete(&claimed[0], "done", json!({})).await;
    assert!(refused.is_err(), "a released task completed: {refused:?}");
    assert_eq!(h.engine.carried(), 0, "read again, not carried");
    h.finish().await;
}

#[tokio::test]
async fn a_commit_by_another_connection_throws_the_carry_away() {
    let h = Harness::open(&Db::sqlite("carry")).await;
    h.deploy(one_task("one")).await;
    h.start("one", json!({})).await;
    let claimed = h.claim("window", 1).await;
    // Another connection (the read pool here; another process alike) claims it over: the
    // token the worker holds is stale.
    let changed = h
        .exec(&format!(
            "UPDATE tasks SET lock_token = lock_token + 1 WHERE id = '{}'",
            claimed[0].task.id
        ))
        .await;
    assert_eq!(changed, 1);
    let refused = h.complete(&claimed[0], "done", json!({})).await;
    assert!(
        refused.is_err(),
        "a stale token completed the task: {refused:?}"
    );
    assert_eq!(h.engine.carried(), 0, "read again, not carried");
    h.finish().await;
}
