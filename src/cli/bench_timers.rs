//! `yimen bench timers`: a database with a large backlog of pending timers (one million by
//! default); prints the time to open it and find the next due timer, and the firing rate of due
//! timers (each a real instance moving on) with that backlog in place.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use yimen_engine::clock::ManualClock;
use yimen_engine::{DeployRequest, Engine, StartRequest};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Database to fill (`sqlite:FILE` or `postgres://…`); a new SQLite file in the temporary
    /// folder when absent. Use an empty database: the benchmark adds rows.
    #[arg(long)]
    pub database: Option<String>,
    /// Pending timers in the backlog (not due during the run).
    #[arg(long, default_value_t = 1_000_000)]
    pub pending: i64,
    /// Timers that are due, each a waiting instance.
    #[arg(long, default_value_t = 2_000)]
    pub due: u32,
}

const PROCESS: &str = r#"process bench_wait "计时基准" version 1

start begin "开始" -> pause

wait pause "等待" 10 minutes -> done

end done "结束" result done
"#;

/// Holds the backlog: an instance that never ends (ending would cancel its timers).
const HOLD: &str = r#"process bench_hold "计时基准积压" version 1

start begin "开始" -> hold

wait hold "保持" message release -> done

end done "结束" result done
"#;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn open(url: &str, clock: &ManualClock) -> anyhow::Result<Engine> {
    Engine::open(
        url,
        Arc::new(clock.clone()),
        Arc::new(yimen_engine::WeekdaysOnly),
    )
    .await
    .with_context(|| format!("cannot open {url}"))
}

async fn bench(args: Args) -> anyhow::Result<ExitCode> {
    if args.pending < 0 {
        anyhow::bail!("--pending must not be negative");
    }
    let url = match &args.database {
        Some(u) => u.clone(),
        None => {
            let file = std::env::temp_dir().join(format!("yimen-bench-{}.db", std::process::id()));
            format!("sqlite:{}", file.display())
        }
    };
    let start: DateTime<Utc> = "2026-10-12T01:00:00Z".parse()?;
    let clock = ManualClock::new(start);
    let engine = open(&url, &clock).await?;
    let anchor = deploy(&engine).await?;
    if args.due == 0 {
        anyhow::bail!("--due must be at least 1");
    }
    start_waiting(&engine, args.due).await?;
    insert_backlog(&engine, &anchor, args.pending, start).await?;
    drop(engine);
    restart_and_fire(&url, &clock, start).await?;
    Ok(ExitCode::SUCCESS)
}

/// Deploys the benchmark processes and starts the instance the backlog's timers hang on; its
/// id.
async fn deploy(engine: &Engine) -> anyhow::Result<String> {
    for (file, source) in [("bench_wait.flow", PROCESS), ("bench_hold.flow", HOLD)] {
        engine
            .deploy(DeployRequest {
                file: file.into(),
                source: source.into(),
                ..DeployRequest::default()
            })
            .await
            .context("cannot deploy the benchmark processes")?;
    }
    let anchor = engine
        .start(StartRequest {
            process: "bench_hold".into(),
            business_key: Some(format!("bench-hold-{}", std::process::id())),
            actor: "bench".into(),
            ..StartRequest::default()
        })
        .await?
        .id;
    Ok(anchor)
}

/// Starts `due` instances that each wait on a timer due within the hour.
async fn start_waiting(engine: &Engine, due: u32) -> anyhow::Result<()> {
    let t = Instant::now();
    for i in 0..due {
        engine
            .start(StartRequest {
                process: "bench_wait".into(),
                business_key: Some(format!("bench-{}-{i}", std::process::id())),
                actor: "bench".into(),
                ..StartRequest::default()
            })
            .await?;
    }
    eprintln!(
        "started {} waiting instances in {:.1} s",
        due,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Inserts `pending` timers due a year after `start`, in batches of 100,000.
async fn insert_backlog(
    engine: &Engine,
    anchor: &str,
    pending: i64,
    start: DateTime<Utc>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let far = start + Duration::days(365);
    let mut left = pending;
    let mut batch = 0;
    while left > 0 {
        let n = left.min(100_000);
        yimen_engine::store::timers::bench_timers(
            engine.pool(),
            &format!("{}-{batch}", std::process::id()),
            anchor,
            n,
            far.timestamp_millis(),
            1_000,
            start.timestamp_millis(),
        )
        .await?;
        left -= n;
        batch += 1;
    }
    println!(
        "backlog: {} pending timers inserted in {:.1} s",
        pending,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Opens the database again an hour later, with the backlog: how soon the next due timer is
/// found, and how fast the due ones fire.
async fn restart_and_fire(
    url: &str,
    clock: &ManualClock,
    start: DateTime<Utc>,
) -> anyhow::Result<()> {
    clock.set(start + Duration::hours(1)).ok();
    let t = Instant::now();
    let engine = open(url, clock).await?;
    let opened = t.elapsed();
    let next = engine.next_timer_due().await?;
    let to_next = t.elapsed();
    println!(
        "start with the backlog: open {:.1} ms, next due timer found after {:.1} ms ({})",
        opened.as_secs_f64() * 1e3,
        to_next.as_secs_f64() * 1e3,
        next.map(|n| n.to_rfc3339()).unwrap_or_default()
    );
    let t = Instant::now();
    let fired = engine.fire_due_timers(clock_now(clock)).await?;
    let secs = t.elapsed().as_secs_f64();
    let still = engine.next_timer_due().await?;
    println!(
        "fired {fired} due timers in {:.2} s: {:.0} timers/s (first due timer fired {:.1} ms after start)",
        secs,
        fired as f64 / secs.max(1e-9),
        (to_next.as_secs_f64() + secs / fired.max(1) as f64) * 1e3
    );
    println!(
        "backlog still pending after the run: next due {}",
        still
            .map(|n| n.to_rfc3339())
            .unwrap_or_else(|| "none (lost!)".into())
    );
    Ok(())
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use yimen_engine::clock::Clock;
    clock.now()
}
