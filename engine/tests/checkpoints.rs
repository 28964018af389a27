//! SQLite in a file: what the committer writes is copied from the WAL into the database by the
//! engine's checkpointer, on a read connection, not inside the committer's `COMMIT`
//! (`commit::checkpointer`).

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use yimen_engine::StartRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committers_writes_are_checkpointed_beside_it() {
    let h = Harness::open(&Db::sqlite("checkpoints")).await;
    assert_eq!(
        h.engine.checkpoints_run(),
        Some((0, 0)),
        "nothing written yet"
    );
    h.deploy(one_task("one")).await;
    for n in 0..20 {
        h.engine
            .start(StartRequest {
                process: "one".into(),
                business_key: Some(format!("case-{n}")),
                vars: vars(json!({})),
                actor: "window".into(),
            })
            .await
            .unwrap();
    }
    // Far below the writer's own threshold (4,000 pages): only the checkpointer copies them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (runs, frames) = h.engine.checkpoints_run().unwrap();
        if runs > 0 && frames > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint 10 s after the starts ({runs} runs, {frames} frames)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.finish().await;
}

#[tokio::test]
async fn an_in_memory_database_has_no_checkpointer() {
    let engine = yimen_engine::Engine::open(
        "sqlite::memory:",
        std::sync::Arc::new(yimen_engine::clock::ManualClock::new(t(MONDAY))),
        std::sync::Arc::new(yimen_engine::WeekdaysOnly),
    )
    .await
    .unwrap();
    assert_eq!(engine.checkpoints_run(), None);
}
