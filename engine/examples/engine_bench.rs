//! Throughput of the engine facade alone (no HTTP): the minimal three-task case
//! (start → task → choice → task → task → end) driven with batched starts, claims and
//! completions (group commit). Prints cases/s and completions/s.
//!
//! `cargo run --release -p yimen-engine --example engine_bench -- [DATABASE_URL] [CASES] [BATCH]`

use chrono::Duration;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use yimen_engine::clock::SystemClock;
use yimen_engine::{
    ClaimRequest, CompleteRequest, DeployRequest, Engine, StartRequest, WeekdaysOnly,
};

/// The process it runs, as a process file.
const PROCESS: &str = include_str!("three.flow");

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = std::env::temp_dir().join(format!("yimen-bench-{}.db", std::process::id()));
    let url = args
        .get(1)
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("sqlite:{}", path.display()));
    let cases: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let batch: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    // On PostgreSQL the bench works in its own schema, dropped at the end.
    let schema = url
        .starts_with("postgres")
        .then(|| format!("bench_{}", std::process::id()));
    let opts = yimen_engine::OpenOptions {
        url: url.clone(),
        pg_schema: schema.clone(),
    };
    let engine = Engine::open_with(opts, Arc::new(SystemClock), Arc::new(WeekdaysOnly)).await?;
    engine
        .deploy(DeployRequest {
            file: "three.flow".into(),
            source: PROCESS.into(),
            files: Default::default(),
            model: None,
        })
        .await?;
    let began = Instant::now();
    let mut started = 0;
    while started < cases {
        let n = batch.min(cases - started);
        let reqs: Vec<StartRequest> = (0..n)
            .map(|_| StartRequest {
                process: "three".into(),
                vars: json!({"n": 1}).as_object().cloned().unwrap_or_default(),
                actor: "bench".into(),
                ..Default::default()
            })
            .collect();
        for r in engine.start_many(&reqs).await {
            r?;
        }
        started += n;
    }
    let mut completions = 0;
    loop {
        let claimed = engine
            .claim(ClaimRequest {
                queues: vec!["a".into(), "b".into(), "c".into()],
                org_units: None,
                actor: "bench".into(),
                worker: None,
                max: batch as u32,
                lease: Duration::minutes(5),
            })
            .await?;
        if claimed.is_empty() {
            break;
        }
        let reqs: Vec<CompleteRequest> = claimed
            .iter()
            .map(|t| CompleteRequest {
                task_id: t.task.id.clone(),
                lock_token: t.lock_token,
                outcome: Some("ok".into()),
                vars: Default::default(),
                actor: "bench".into(),
                access: None,
            })
            .collect();
        for r in engine.complete_many(&reqs).await {
            r?;
            completions += 1;
        }
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{cases} cases, {completions} completions in {secs:.2} s: {:.0} cases/s, {:.0} completions/s (batch {batch}, {url})",
        cases as f64 / secs,
        completions as f64 / secs
    );
    if let (Some(schema), yimen_engine::store::StorePool::Postgres(pool)) = (&schema, engine.pool())
    {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pool)
            .await?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
