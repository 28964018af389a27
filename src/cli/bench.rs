//! `yimen bench`: drives N complete cases through the HTTP API on loopback with concurrent
//! worker clients, and prints cases/s, task completions/s, claim-to-complete latency and peak
//! memory. Server and clients run in this one process (peak memory counts both).

use super::serve::{database_url, due_dates};
use anyhow::Context;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::clock::{Clock, SystemClock};
use yimen_engine::{Engine, OpenOptions};
use yimen_workers::{ClaimRequest, ClaimedTask, Client, CompleteRequest, Completion, Method};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The minimal case: start → task → choice → task → task → end (processes/bench).
    ThreeTask(Args),
    /// The full social-assistance case (window, street leader, department; refusal path, so
    /// that no publicity period has to pass).
    Social(Args),
    /// Pending-timer backlog: start time and firing rate (see `bench_timers.rs`).
    Timers(super::bench_timers::Args),
    /// The workbench's pages with many stored cases (see `bench_pages.rs`).
    Pages(super::bench_pages::Args),
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
enum Completing {
    Batch,
    Each,
}

/// Which process a run drives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ThreeTask,
    Social,
}

impl Kind {
    /// The streets social-assistance cases are started in, alternately.
    pub(super) const SOCIAL_STREETS: [&'static str; 2] = ["东城街道", "西城街道"];

    pub(super) fn default_file(self) -> &'static str {
        match self {
            Kind::ThreeTask => "processes/bench/three_task.flow",
            Kind::Social => "processes/social_assistance.flow",
        }
    }

    fn queues(self) -> Vec<String> {
        let queues: &[&str] = match self {
            Kind::ThreeTask => &["clerk"],
            Kind::Social => &["window", "street_leader", "department:civil_affairs"],
        };
        queues.iter().map(|q| q.to_string()).collect()
    }

    fn start_variables(self, n: u64) -> Value {
        match self {
            Kind::ThreeTask => json!({"amount": (n % 100) as i64 * 10, "note": "bench"}),
            Kind::Social => json!({
                "applicant_name": "张三", "id_number": "150302198001011237",
                "phone": "13800138000", "address": "东城街道幸福社区3号楼",
                "street": Kind::SOCIAL_STREETS[(n % 2) as usize],
                "community": "幸福社区", "household_size": 3, "reason": "因病",
                "categories": ["minimum_living"]
            }),
        }
    }

    /// Outcome and variables of a task; `None`: the first outcome, required fields filled.
    fn decide(self, node: &str) -> Option<(&'static str, Value)> {
        if self != Kind::Social {
            return None;
        }
        Some(match node {
            "review" => ("complete", json!({"main_category": "minimum_living"})),
            "street_consent" => ("agree", json!({})),
            "forward" => ("forwarded", json!({"department_clear": true})),
            "department_handle" => ("decided", json!({"decision": "rejected"})),
            "feedback" => ("informed", json!({})),
            "archive" => ("filed", json!({})),
            _ => return None,
        })
    }
}

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Cases to run.
    #[arg(long, default_value_t = 2000)]
    cases: u64,
    /// `sqlite` (a fresh file under the temp folder) or a `postgres://` URL (a fresh schema).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Concurrent worker clients (each completes what it claimed concurrently).
    #[arg(long, default_value_t = 8)]
    workers: u32,
    /// Tasks one claim may return.
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Concurrent clients starting cases.
    #[arg(long, default_value_t = 32)]
    starters: u32,
    /// How a worker completes what it claimed: `batch`, all in one request
    /// (`POST /tasks/complete`); `each`, one request per task, sent concurrently.
    #[arg(long, value_enum, default_value_t = Completing::Batch)]
    complete: Completing,
    /// The process file to run (default: the one of the subcommand).
    #[arg(long)]
    process: Option<PathBuf>,
    /// Working-day calendars.
    #[arg(long, default_value = "calendars")]
    calendars: PathBuf,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let (kind, args) = match cmd {
        Command::ThreeTask(args) => (Kind::ThreeTask, args),
        Command::Social(args) => (Kind::Social, args),
        Command::Timers(args) => return super::bench_timers::run(args),
        Command::Pages(args) => return super::bench_pages::run(args),
    };
    // Quiet unless asked: `RUST_LOG=sqlx::query=debug` shows each statement with its time.
    if std::env::var_os("RUST_LOG").is_some() {
        super::serve::init_tracing();
    }
    // The server's runtime, as `yimen serve` makes it (the clients share it).
    let url = match args.database.as_str() {
        "sqlite" => "sqlite:",
        other => other,
    };
    let runtime = super::serve::server_runtime(url)?;
    runtime.block_on(bench(kind, args))
}

/// Figures of one run.
struct Figures {
    cases: u64,
    tasks: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU this process used while it drove the cases (user, system), where it can tell.
    cpu: Option<(Duration, Duration)>,
}

async fn bench(kind: Kind, args: Args) -> anyhow::Result<ExitCode> {
    if args.cases == 0 || args.workers == 0 || args.batch == 0 || args.starters == 0 {
        anyhow::bail!("--cases, --workers, --batch and --starters must be at least 1");
    }
    let (options, cleanup) = database(&args.database).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::open_with(options, clock, due_dates(&args.calendars)?)
        .await
        .context("cannot open the bench database")?;
    let file = args
        .process
        .clone()
        .unwrap_or_else(|| PathBuf::from(kind.default_file()));
    let deployment = super::serve::deploy_file(&engine, &file).await?;
    let state = ApiState::new(engine.clone(), ApiConfig::default());
    let token = api::access::bootstrap_admin(&state)
        .await?
        .context("the bench database already has tokens")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, api::router(state)).await });

    eprintln!(
        "bench: {} cases of {} on {}, {} workers (claims of {}, completed {}), {} starters",
        args.cases,
        deployment.key,
        args.database,
        args.workers,
        args.batch,
        match args.complete {
            Completing::Batch => "in one request",
            Completing::Each => "one request each",
        },
        args.starters
    );
    let figures = drive(kind, &url, &token, &deployment.key, &args).await?;
    server.abort();
    print_figures(&args, &figures);
    if let Some(cleanup) = cleanup {
        cleanup();
    }
    let schema = format!("bench_{}", std::process::id());
    if let Err(err) = engine.store().drop_schema(&schema).await {
        eprintln!("note: could not drop the bench schema {schema}: {err}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens a fresh database for the run; the closure removes a SQLite file afterwards.
pub(super) async fn database(
    database: &str,
) -> anyhow::Result<(OpenOptions, Option<Box<dyn FnOnce()>>)> {
    if database == "sqlite" {
        let path = std::env::temp_dir().join(format!("yimen-bench-{}.db", std::process::id()));
        let cleanup_path = path.clone();
        let cleanup = Box::new(move || {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", cleanup_path.display()));
            }
        });
        let options = OpenOptions {
            url: database_url(&path.display().to_string()),
            pg_schema: None,
        };
        return Ok((options, Some(cleanup)));
    }
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let schema = format!("bench_{}", std::process::id());
        let pool = sqlx::PgPool::connect(database)
            .await
            .context("cannot reach PostgreSQL")?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await?;
        pool.close().await;
        let options = OpenOptions {
            url: database.to_string(),
            pg_schema: Some(schema),
        };
        return Ok((options, None));
    }
    anyhow::bail!("--database must be `sqlite` or a postgres:// URL, not `{database}`")
}

async fn drive(
    kind: Kind,
    url: &str,
    token: &str,
    process: &str,
    args: &Args,
) -> anyhow::Result<Figures> {
    let client = Client::new(url, Some(token.to_string()))?;
    let cpu_before = cpu_time();
    let progress = Arc::new(Progress::new());
    let tasks = Arc::new(AtomicU64::new(0));
    let next_case = Arc::new(AtomicU64::new(0));

    let mut starters = tokio::task::JoinSet::new();
    for _ in 0..args.starters {
        let starter = Starter {
            client: client.clone(),
            kind,
            process: process.to_string(),
            cases: args.cases,
            next_case: next_case.clone(),
        };
        starters.spawn(starter.run());
    }

    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        let worker = Worker {
            client: client.clone(),
            kind,
            name: format!("bench-{w}"),
            progress: progress.clone(),
            tasks: tasks.clone(),
        };
        workers.spawn(worker.run(args.cases, args.batch, args.complete));
    }
    while let Some(done) = starters.join_next().await {
        done??;
    }
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    let cpu = match (cpu_before, cpu_time()) {
        (Some((u0, s0)), Some((u1, s1))) => Some((u1.saturating_sub(u0), s1.saturating_sub(s0))),
        _ => None,
    };
    Ok(Figures {
        cases: progress.ended(),
        tasks: tasks.load(Ordering::Relaxed),
        elapsed: progress.elapsed(),
        latencies,
        cpu,
    })
}

/// Fills a database for `yimen bench pages`: `ended` cases of `kind` driven to their end as
/// [`drive`] does, then `open` more started and left at their first task (for social
/// assistance: the window's review), their business keys continuing the numbering.
pub(super) async fn seed(
    kind: Kind,
    url: &str,
    token: &str,
    process: &str,
    ended: u64,
    open: u64,
) -> anyhow::Result<()> {
    if ended > 0 {
        let args = Args {
            cases: ended,
            database: String::new(),
            workers: 8,
            batch: 32,
            starters: 32,
            complete: Completing::Batch,
            process: None,
            calendars: PathBuf::new(),
        };
        let figures = drive(kind, url, token, process, &args).await?;
        anyhow::ensure!(
            figures.cases == ended,
            "the seed ended {} cases of {ended}",
            figures.cases
        );
    }
    let client = Client::new(url, Some(token.to_string()))?;
    let next_case = Arc::new(AtomicU64::new(ended));
    let mut starters = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let starter = Starter {
            client: client.clone(),
            kind,
            process: process.to_string(),
            cases: ended + open,
            next_case: next_case.clone(),
        };
        starters.spawn(starter.run());
    }
    while let Some(done) = starters.join_next().await {
        done??;
    }
    Ok(())
}

/// A client starting cases until the run has started all of them.
struct Starter {
    client: Client,
    kind: Kind,
    process: String,
    cases: u64,
    next_case: Arc<AtomicU64>,
}

impl Starter {
    async fn run(self) -> anyhow::Result<()> {
        loop {
            let n = self.next_case.fetch_add(1, Ordering::Relaxed);
            if n >= self.cases {
                return Ok(());
            }
            let body = StartBody {
                process: &self.process,
                business_key: format!("bench-{n}"),
                variables: self.kind.start_variables(n),
            };
            // As a typed client reads it: only what it needs, the rest skipped unread.
            let started = self
                .client
                .call::<_, Started>(Method::POST, "/instances", Some(&body))
                .await
                .context("starting a case")?;
            anyhow::ensure!(!started.id.is_empty(), "a start was answered without an id");
        }
    }
}

/// A worker client: claims from the run's queues and completes what it claimed, until every
/// case has ended; the claim-to-complete latency of each task.
struct Worker {
    client: Client,
    kind: Kind,
    name: String,
    progress: Arc<Progress>,
    tasks: Arc<AtomicU64>,
}

impl Worker {
    async fn run(self, cases: u64, batch: u32, mode: Completing) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::new();
        while self.progress.ended() < cases {
            let claim = ClaimRequest {
                queues: self.kind.queues(),
                worker: self.name.clone(),
                max: batch,
                lease_seconds: 60,
                wait_seconds: 1,
            };
            let claimed = self.client.claim(&claim).await.context("claiming")?;
            let received = Instant::now();
            match mode {
                Completing::Batch => {
                    if claimed.is_empty() {
                        continue;
                    }
                    self.complete_batch(&claimed, received, &mut latencies)
                        .await?;
                }
                Completing::Each => {
                    self.complete_each(claimed, received, &mut latencies)
                        .await?
                }
            }
        }
        Ok(latencies)
    }

    /// All the claimed tasks in one request (`POST /tasks/complete`).
    async fn complete_batch(
        &self,
        claimed: &[ClaimedTask],
        received: Instant,
        latencies: &mut Vec<Duration>,
    ) -> anyhow::Result<()> {
        let completions: Vec<Completion> = claimed
            .iter()
            .map(|task| Completion {
                task_id: task.id.clone(),
                completion: completion(self.kind, task),
            })
            .collect();
        let results = self
            .client
            .complete_many(&completions)
            .await
            .context("completing a batch")?;
        let latency = received.elapsed();
        for result in results {
            if result.status != 200 {
                anyhow::bail!(
                    "completing {} was refused ({}): {}",
                    result.task_id,
                    result.status,
                    result.error.unwrap_or_default()
                );
            }
            latencies.push(latency);
            self.tasks.fetch_add(1, Ordering::Relaxed);
            if let Some(instance) = result.instance
                && instance.status != "running"
            {
                self.progress.case_ended(instance.id);
            }
        }
        Ok(())
    }

    /// The claimed tasks completed concurrently, one request each, as a department with
    /// several clerks would; the server shares commits between them (group commit).
    async fn complete_each(
        &self,
        claimed: Vec<ClaimedTask>,
        received: Instant,
        latencies: &mut Vec<Duration>,
    ) -> anyhow::Result<()> {
        let mut completions = tokio::task::JoinSet::new();
        for task in claimed {
            let client = self.client.clone();
            let kind = self.kind;
            completions.spawn(async move {
                let request = completion(kind, &task);
                let view: Value = client
                    .call(
                        Method::POST,
                        &format!("/tasks/{}/complete", task.id),
                        Some(&request),
                    )
                    .await
                    .with_context(|| format!("completing {} ({})", task.node, task.id))?;
                Ok::<_, anyhow::Error>((view, received.elapsed()))
            });
        }
        while let Some(done) = completions.join_next().await {
            let (view, latency) = done??;
            latencies.push(latency);
            self.tasks.fetch_add(1, Ordering::Relaxed);
            if view["status"] != "running" {
                self.progress
                    .case_ended(view["id"].as_str().unwrap_or_default().to_string());
            }
        }
        Ok(())
    }
}

/// `POST /instances` as a starter sends it.
#[derive(serde::Serialize)]
struct StartBody<'a> {
    process: &'a str,
    business_key: String,
    variables: Value,
}

/// What a starter reads of the answer: that the case exists.
#[derive(serde::Deserialize)]
struct Started {
    id: String,
}

/// Cases ended so far, and when the last of them ended.
struct Progress {
    started_at: Instant,
    finished: std::sync::Mutex<std::collections::HashSet<String>>,
    ended: AtomicU64,
    /// Nanoseconds from `started_at` to the latest end.
    last_end: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            started_at: Instant::now(),
            finished: Default::default(),
            ended: AtomicU64::new(0),
            last_end: AtomicU64::new(0),
        }
    }

    fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    /// Counts the case once: an answer is read after the commit, and another worker may have
    /// ended the case meanwhile, so one end can be seen twice.
    fn case_ended(&self, id: String) {
        let new = self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        if new {
            let at = u64::try_from(self.started_at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.last_end.fetch_max(at, Ordering::Relaxed);
            self.ended.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Until the last case ended: the workers still waiting in a long poll then (up to its
    /// `wait_seconds`) do not count.
    fn elapsed(&self) -> Duration {
        match self.last_end.load(Ordering::Relaxed) {
            0 => self.started_at.elapsed(),
            nanos => Duration::from_nanos(nanos),
        }
    }
}

/// How a bench worker completes `task`: its outcome and variables, with its lock token.
fn completion(kind: Kind, task: &ClaimedTask) -> CompleteRequest {
    let (outcome, variables) = match kind.decide(&task.node) {
        Some((outcome, vars)) => (
            outcome.to_string(),
            vars.as_object().cloned().unwrap_or_default(),
        ),
        None => (
            task.outcomes.first().cloned().unwrap_or_default(),
            fill(&task.fields),
        ),
    };
    CompleteRequest {
        lock_token: task.lock_token.clone(),
        outcome,
        variables,
    }
}

/// A value for every required field, by its type, so that any task can be completed.
fn fill(fields: &[yimen_workers::TaskField]) -> Map<String, Value> {
    fields
        .iter()
        .filter(|f| f.required)
        .map(|f| {
            let value = match f.ty.as_str() {
                "boolean" => json!(true),
                "integer" => json!(1),
                "decimal" => json!("1.00"),
                "date" => json!("2026-01-05"),
                t if t.starts_with("list") => json!([]),
                _ => json!("bench"),
            };
            (f.name.clone(), value)
        })
        .collect()
}

fn print_figures(args: &Args, f: &Figures) {
    let secs = f.elapsed.as_secs_f64().max(1e-9);
    let mut latencies = f.latencies.clone();
    latencies.sort();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!("database:                {}", redact_db(&args.database));
    println!("cases completed:         {} of {}", f.cases, args.cases);
    println!("task completions:        {}", f.tasks);
    println!("elapsed:                 {secs:.2} s");
    println!("cases/s:                 {:.0}", f.cases as f64 / secs);
    println!("task completions/s:      {:.0}", f.tasks as f64 / secs);
    println!("claim-to-complete p50:   {:.1} ms", pct(0.50));
    println!("claim-to-complete p99:   {:.1} ms", pct(0.99));
    match f.cpu {
        // Does not depend on how this process and a database server share the cores (cases/s
        // does), but still moves with the machine's speed; PostgreSQL's own CPU is not in it.
        Some((user, system)) if f.cases > 0 => {
            let per_case = |d: Duration| d.as_secs_f64() * 1e6 / f.cases as f64;
            println!(
                "CPU per case:            {:.0} µs (user {:.0} + system {:.0}; this process)",
                per_case(user + system),
                per_case(user),
                per_case(system)
            );
        }
        _ => println!("CPU per case:            unknown (no /proc/self/stat)"),
    }
    match peak_memory_mb() {
        Some(mb) => println!("peak memory (VmHWM):     {mb:.0} MB (server and clients)"),
        None => println!("peak memory:             unknown (no /proc/self/status)"),
    }
}

/// CPU time this process has used (user, system), from `/proc/self/stat`.
fn cpu_time() -> Option<(Duration, Duration)> {
    cpu_from_stat(&std::fs::read_to_string(Path::new("/proc/self/stat")).ok()?)
}

/// `utime` and `stime` of a `/proc/<pid>/stat` line: fields 14 and 15, in clock ticks of
/// 1/100 s (Linux's `USER_HZ`, the unit of these files on every architecture it runs on).
fn cpu_from_stat(stat: &str) -> Option<(Duration, Duration)> {
    // The name (field 2) is in parentheses and may hold spaces and parentheses itself.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Option<Duration> {
        Some(Duration::from_millis(
            fields.get(i)?.parse::<u64>().ok()? * 10,
        ))
    };
    // `rest` starts at field 3.
    Some((ticks(14 - 3)?, ticks(15 - 3)?))
}

pub(super) fn redact_db(database: &str) -> String {
    match database.rfind('@') {
        Some(at) if database.contains("://") => format!("postgres://…{}", &database[at..]),
        _ => database.to_string(),
    }
}

/// Peak resident memory of this process, from `/proc/self/status`.
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string(Path::new("/proc/self/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::Progress;
    use std::time::Duration;

    #[test]
    fn cpu_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (yimen (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    731 96 0 0 20 0 9 0 123 456 789";
        assert_eq!(
            super::cpu_from_stat(stat),
            Some((Duration::from_millis(7310), Duration::from_millis(960)))
        );
        assert_eq!(super::cpu_from_stat("4242 (yimen) S 1"), None);
        assert_eq!(super::cpu_from_stat("no name here"), None);
        // This process's own line parses (a test binary has used too little CPU to count).
        assert!(super::cpu_time().is_some());
    }

    #[test]
    fn a_case_ends_once_and_the_clock_stops_at_the_last_end() {
        let progress = Progress::new();
        progress.case_ended("a".into());
        progress.case_ended("b".into());
        // Seen again in another worker's answer.
        progress.case_ended("a".into());
        assert_eq!(progress.ended(), 2);
        let at_last_end = progress.elapsed();
        // Workers still waiting in a long poll afterwards do not add to the time.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(progress.elapsed(), at_last_end);
        progress.case_ended("c".into());
        assert!(progress.elapsed() >= at_last_end + Duration::from_millis(20));
    }
}
