//! `yimen bench pages`: how fast the workbench's pages answer with many stored cases. Seeds a
//! database with social-assistance cases (most of them ended, the rest waiting at the window),
//! signs a window clerk in, and requests the my-work page and case pages one at a time, as
//! a person clicking would; prints the percentiles of each page's answer time.
//!
//! The answer time is measured by the client on loopback, in the same process as the server:
//! it is the server's time plus a few tens of microseconds of HTTP.

use super::bench::{self, Kind};
use super::serve::due_dates;
use anyhow::Context;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use yimen_engine::Engine;
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::clock::{Clock, SystemClock};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Cases stored before the pages are measured.
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// Of them, how many are still open (waiting for the window's review); the rest have ended.
    #[arg(long, default_value_t = 10_000)]
    open: u64,
    /// Requests of each page measured (after 10 not counted).
    #[arg(long, default_value_t = 200)]
    requests: u32,
    /// `sqlite` (a fresh file under the temp folder) or a `postgres://` URL (a fresh schema).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Working-day calendars.
    #[arg(long, default_value = "calendars")]
    calendars: PathBuf,
    /// Keep the seeded SQLite file (its path is printed) to study the pages' queries with the
    /// `sqlite3` shell afterwards.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if std::env::var_os("RUST_LOG").is_some() {
        super::serve::init_tracing();
    }
    let url = match args.database.as_str() {
        "sqlite" => "sqlite:",
        other => other,
    };
    let runtime = super::serve::server_runtime(url)?;
    runtime.block_on(pages(args))
}

/// What one page's requests took.
struct Timings {
    page: &'static str,
    times: Vec<Duration>,
}

async fn pages(args: Args) -> anyhow::Result<ExitCode> {
    if args.cases == 0 || args.requests == 0 || args.open > args.cases {
        anyhow::bail!("--cases and --requests must be at least 1, and --open at most --cases");
    }
    let (options, cleanup) = bench::database(&args.database).await?;
    let options_url = options.url.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::open_with(options, clock, due_dates(&args.calendars)?)
        .await
        .context("cannot open the bench database")?;
    let deployment =
        super::serve::deploy_file(&engine, &PathBuf::from(Kind::Social.default_file())).await?;
    let state = ApiState::new(engine.clone(), ApiConfig::default());
    let token = api::access::bootstrap_admin(&state)
        .await?
        .context("the bench database already has tokens")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });

    let ended = args.cases - args.open;
    eprintln!(
        "bench pages: seeding {ended} ended and {} open social-assistance cases on {}",
        args.open, args.database
    );
    let seeding = Instant::now();
    bench::seed(
        Kind::Social,
        &base,
        &token,
        &deployment.key,
        ended,
        args.open,
    )
    .await?;
    eprintln!("seeded in {:.0} s", seeding.elapsed().as_secs_f64());

    let clerk = Clerk::sign_in(&base, &token).await?;
    let open_cases = clerk.open_cases(20).await?;
    let ended_cases = clerk.ended_cases(20).await?;
    anyhow::ensure!(
        !open_cases.is_empty(),
        "the clerk sees no open task: the seed did not reach the window's queue"
    );
    let mut cases = open_cases.clone();
    cases.extend(ended_cases);

    let mut results = Vec::new();
    results.push(
        clerk
            .measure("我的待办 /work", args.requests, |_| "/work".to_string())
            .await?,
    );
    results.push(
        clerk
            .measure("案件 /cases/{id}", args.requests, |i| {
                format!("/cases/{}", cases[i % cases.len()])
            })
            .await?,
    );
    // The statistics of the year (every stored case: they were registered today), for the
    // clerk's street (`web::statistics`: read for the period, kept by unit).
    results.push(
        clerk
            .measure("统计 /statistics (本年)", args.requests, |_| {
                let year = chrono::Utc::now().format("%Y");
                format!("/statistics?from={year}-01-01&to={year}-12-31")
            })
            .await?,
    );
    server.abort();
    println!("database:            {}", bench::redact_db(&args.database));
    println!(
        "stored cases:        {} ({} ended, {} open)",
        args.cases, ended, args.open
    );
    println!("requests per page:   {} (one at a time)", args.requests);
    for t in &mut results {
        t.times.sort();
        let pct = |p: f64| {
            let i = ((t.times.len() as f64 * p).ceil() as usize).clamp(1, t.times.len()) - 1;
            t.times[i].as_secs_f64() * 1000.0
        };
        println!(
            "{:<20} p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms · max {:.1} ms",
            t.page,
            pct(0.50),
            pct(0.95),
            pct(0.99),
            pct(1.0)
        );
    }
    let schema = format!("bench_{}", std::process::id());
    if args.keep {
        // SQLite: the file; PostgreSQL: the schema in the given database.
        eprintln!(
            "kept the seeded database: {} (schema {schema} on PostgreSQL)",
            bench::redact_db(&options_url)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(cleanup) = cleanup {
        cleanup();
    }
    if let Err(err) = engine.store().drop_schema(&schema).await {
        eprintln!("note: could not drop the bench schema {schema}: {err}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A window clerk of the street most open cases are in, signed in with a session.
struct Clerk {
    http: reqwest::Client,
    base: String,
}

impl Clerk {
    async fn sign_in(base: &str, admin: &str) -> anyhow::Result<Clerk> {
        let http = reqwest::Client::new();
        let created: Value = http
            .post(format!("{base}/api/v1/users"))
            .bearer_auth(admin)
            .json(&json!({
                "login": "bench-clerk", "name": "王芳",
                "roles": ["window"], "org_units": [Kind::SOCIAL_STREETS[0]]
            }))
            .send()
            .await?
            .error_for_status()
            .context("adding the clerk")?
            .json()
            .await?;
        let once = created["password"].as_str().unwrap_or_default().to_string();
        let signed = http
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"login": "bench-clerk", "password": once}))
            .send()
            .await?
            .error_for_status()
            .context("signing the clerk in")?;
        let cookie = signed
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("the sign-in set no cookie")?
            .to_string();
        let info: Value = signed.json().await?;
        let csrf = info["csrf_token"].as_str().unwrap_or_default().to_string();
        http.post(format!("{base}/api/v1/session/password"))
            .header(reqwest::header::COOKIE, &cookie)
            .header("X-CSRF-Token", &csrf)
            .header(reqwest::header::ORIGIN, base)
            .json(&json!({"current": once, "new": "the clerk's own password"}))
            .send()
            .await?
            .error_for_status()
            .context("setting the clerk's password")?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::COOKIE, cookie.parse()?);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("HTTP client")?;
        Ok(Clerk {
            http,
            base: base.to_string(),
        })
    }

    /// Cases with a task in the clerk's queue.
    async fn open_cases(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let tasks: Value = self
            .http
            .get(format!("{}/api/v1/tasks?state=open&limit={n}", self.base))
            .send()
            .await?
            .error_for_status()
            .context("listing the clerk's tasks")?
            .json()
            .await?;
        let ids = tasks
            .as_array()
            .or_else(|| tasks["tasks"].as_array())
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| t["instance_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ids)
    }

    /// Ended cases of the clerk's street, found by the clerk's search.
    async fn ended_cases(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let found: Value = self
            .http
            .get(format!(
                "{}/api/v1/instances?status=completed&unit={}&page_size={n}",
                self.base,
                Kind::SOCIAL_STREETS[0]
            ))
            .send()
            .await?
            .error_for_status()
            .context("finding ended cases")?
            .json()
            .await?;
        Ok(found["cases"]
            .as_array()
            .map(|cases| {
                cases
                    .iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn measure(
        &self,
        page: &'static str,
        requests: u32,
        path: impl Fn(usize) -> String,
    ) -> anyhow::Result<Timings> {
        let mut times = Vec::with_capacity(requests as usize);
        for i in 0..(requests as usize + 10) {
            let url = format!("{}{}", self.base, path(i));
            let began = Instant::now();
            let response = self.http.get(&url).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            let took = began.elapsed();
            anyhow::ensure!(
                status.is_success(),
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            if i >= 10 {
                times.push(took);
            }
        }
        Ok(Timings { page, times })
    }
}
