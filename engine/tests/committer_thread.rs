//! On SQLite the committer runs on a thread of its own (`commit.rs`): it is there once the
//! engine has written, and it ends with the engine. Alone in its own test binary, so that no
//! other test's engine has such a thread meanwhile. Linux only: it reads the thread names in
//! `/proc`.
#![cfg(target_os = "linux")]

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;
use yimen_engine::StartRequest;

/// Threads of this process named like the committer's.
fn committer_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "yimen-committer")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_committer_thread_ends_with_its_engine() {
    let h = Harness::open(&Db::sqlite("committer_thread")).await;
    assert_eq!(committer_threads(), 0, "no thread before the first write");
    h.deploy(one_task("one")).await;
    let started = h
        .engine
        .start(StartRequest {
            process: "one".into(),
            business_key: None,
            vars: vars(json!({})),
            actor: "window".into(),
        })
        .await
        .unwrap();
    assert_eq!(started.tasks.len(), 1, "the start was written");
    assert_eq!(committer_threads(), 1, "one committer thread per engine");

    h.finish().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while committer_threads() > 0 {
        assert!(
            Instant::now() < deadline,
            "the committer thread outlived its engine"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
