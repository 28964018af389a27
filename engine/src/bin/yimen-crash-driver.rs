//! Drives cases through the engine for the crash test (`engine/tests/crash.rs`), which kills
//! this process with SIGKILL at random moments and starts it again. Idempotent: cases are
//! started by business key, tasks are claimed with a short lease, so a run after a kill picks
//! up where the killed one stopped. Prints `done` when every case has ended.
//!
//! Usage: `yimen-crash-driver DATABASE_URL CASES [POSTGRES_SCHEMA]`

use chrono::Duration;
use serde_json::json;
use std::sync::Arc;
use yimen_engine::clock::SystemClock;
use yimen_engine::{
    ClaimRequest, CompleteRequest, DeployRequest, Engine, StartRequest, WeekdaysOnly,
};

/// The process it runs, as a process file.
const PROCESS: &str = include_str!("crash.flow");

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(cases)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: yimen-crash-driver DATABASE_URL CASES [POSTGRES_SCHEMA]");
        std::process::exit(2);
    };
    let opts = yimen_engine::OpenOptions {
        url: url.clone(),
        pg_schema: args.get(3).cloned(),
    };
    let engine = Engine::open_with(opts, Arc::new(SystemClock), Arc::new(WeekdaysOnly)).await?;
    engine
        .deploy(DeployRequest {
            file: "crash.flow".into(),
            source: PROCESS.into(),
            files: Default::default(),
            model: None,
        })
        .await?;
    for i in 0..cases {
        engine
            .start(StartRequest {
                process: "crash".into(),
                business_key: Some(format!("case-{i}")),
                vars: Default::default(),
                actor: "driver".into(),
            })
            .await?;
    }
    loop {
        let claimed = engine
            .claim(ClaimRequest {
                queues: vec!["a".into(), "b".into(), "c".into()],
                org_units: None,
                actor: format!("driver-{}", std::process::id()).into(),
                worker: None,
                max: 5,
                lease: Duration::seconds(1),
            })
            .await?;
        if claimed.is_empty() {
            let mut unfinished = 0;
            for state in [
                yimen_engine::TaskState::Open,
                yimen_engine::TaskState::Claimed,
            ] {
                let filter = yimen_engine::TaskFilter {
                    state: Some(state),
                    limit: Some(1),
                    ..Default::default()
                };
                unfinished += engine.tasks(filter).await?.len();
            }
            if unfinished == 0 {
                println!("done");
                return Ok(());
            }
            // Tasks claimed by a killed run: wait for their lease to run out.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        for t in claimed {
            let vars = if t.task.node == "check" {
                json!({"amount": 5})
            } else {
                json!({})
            };
            engine
                .complete(CompleteRequest {
                    task_id: t.task.id.clone(),
                    lock_token: t.lock_token,
                    outcome: None,
                    vars: vars.as_object().cloned().unwrap_or_default(),
                    actor: "driver".into(),
                    access: None,
                })
                .await?;
        }
    }
}
