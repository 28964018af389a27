//! `yimen worker --queue Q --script CMD`: automates a queue without writing Rust. For every task
//! the command gets the task JSON on stdin and answers `{"outcome": ..., "variables": {...}}` on
//! stdout; a non-zero exit or another answer fails the task with the command's stderr (the
//! server retries with back-off, then raises an incident).

use super::client::Connection;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use yimen_workers::{ScriptHandler, WorkerConfig, run_worker};

#[derive(clap::Args)]
pub struct Args {
    /// Queue to work (repeat for several): `window`, `department:civil_affairs`.
    #[arg(long = "queue", required = true)]
    queues: Vec<String>,
    /// Shell command run for each task.
    #[arg(long)]
    script: String,
    /// Worker name recorded in the history (default: worker@<host>).
    #[arg(long)]
    name: Option<String>,
    /// Tasks handled at the same time.
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Lease per claim, in seconds; extended in the background while the command runs.
    #[arg(long, default_value_t = 60)]
    lease: u32,
    /// Stop after this many tasks.
    #[arg(long)]
    max_tasks: Option<u64>,
    /// On Ctrl-C, how long a running command may finish before its task is released.
    #[arg(long, default_value_t = 30)]
    grace: u64,
    #[command(flatten)]
    conn: Connection,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = args.conn.client()?;
        let name = args.name.unwrap_or_else(|| {
            format!(
                "worker@{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
            )
        });
        let mut config = WorkerConfig::new(args.queues.clone(), name.clone());
        config.concurrency = args.concurrency;
        config.lease_seconds = args.lease;
        config.max_tasks = args.max_tasks;
        config.shutdown_grace = Duration::from_secs(args.grace);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping: finishing the running task (Ctrl-C again to abort)");
                let _ = stop.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        eprintln!(
            "{name} working {} on {} with `{}`",
            args.queues.join(", "),
            client.server(),
            args.script
        );
        let stats = run_worker(
            client,
            config,
            Arc::new(ScriptHandler::new(args.script)),
            stopped,
        )
        .await?;
        eprintln!(
            "done: {} completed, {} failed, {} refused by the server, {} released",
            stats.completed, stats.failed, stats.refused, stats.released
        );
        Ok(ExitCode::SUCCESS)
    })
}
