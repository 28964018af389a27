//! `yimen serve`: opens (creating and migrating) the database, deploys every process file of
//! the processes folder, and runs the HTTP API, the engine and its timers.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::{DeployRequest, Engine};

/// Every flag of `yimen serve` may also come from its environment variable (`YIMEN_…`, shown
/// in `--help`) or from the config file (`--config`, key = the flag's name); the command line
/// wins over the environment, the environment over the file, the file over the default
/// (`super::config`).
#[derive(clap::Args)]
pub struct Args {
    /// A TOML file of settings: each key a flag of `yimen serve` without its dashes
    /// (`max-body-bytes = 1048576`). Default: `./yimen.toml` when there is one.
    #[arg(long, env = "YIMEN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines as human text or as one JSON object per line (with the request id of the
    /// HTTP request they belong to).
    #[arg(long, env = "YIMEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve `GET /metrics` (Prometheus' text format, without authentication) on this
    /// address, apart from the API: bind it where only the monitoring network reaches
    /// (`127.0.0.1:9464`). Without it there is no metrics endpoint.
    #[arg(long, env = "YIMEN_METRICS_LISTEN", value_name = "ADDRESS")]
    pub metrics_listen: Option<String>,
    /// `sqlite:FILE`, a plain file path, or `postgres://user@host/db`.
    #[arg(long, env = "YIMEN_DATABASE", default_value = "yimen.db")]
    pub database: String,
    /// Address to listen on.
    #[arg(long, env = "YIMEN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Folder whose `*.flow` files are deployed at start (with their YAML and templates).
    #[arg(
        long,
        env = "YIMEN_PROCESSES",
        value_name = "DIR",
        default_value = "processes"
    )]
    pub processes: PathBuf,
    /// Working-day calendars (`*.yaml`) for due dates.
    #[arg(
        long,
        env = "YIMEN_CALENDARS",
        value_name = "DIR",
        default_value = "calendars"
    )]
    pub calendars: PathBuf,
    /// Days refused calls (`access_refusals`) and sign-in attempts (`sign_ins`) are kept
    /// (older ones are deleted hourly). 0 keeps them forever.
    #[arg(
        long,
        env = "YIMEN_KEEP_REFUSALS_DAYS",
        value_name = "DAYS",
        default_value_t = 90
    )]
    pub keep_refusals_days: u32,
    /// Failed authentications (401) one client address may have in a minute; after them its
    /// calls answer 429 with `Retry-After` until the minute is over. 0: no limit.
    #[arg(
        long,
        env = "YIMEN_AUTH_FAILURES_PER_MINUTE",
        value_name = "N",
        default_value_t = 20
    )]
    pub auth_failures_per_minute: u32,
    /// Largest request body, in bytes (413 above it).
    #[arg(long, env = "YIMEN_MAX_BODY_BYTES", value_name = "BYTES", default_value_t = 2 << 20)]
    pub max_body_bytes: usize,
    /// Longest request path and query, in bytes (414 above it).
    #[arg(long, env = "YIMEN_MAX_URI_BYTES", value_name = "BYTES", default_value_t = 8 << 10)]
    pub max_uri_bytes: usize,
    /// Largest total of request header names and values, in bytes (431 above it).
    #[arg(long, env = "YIMEN_MAX_HEADER_BYTES", value_name = "BYTES", default_value_t = 16 << 10)]
    pub max_header_bytes: usize,
    /// A signed-in session unused this long ends: `30m`, `2h`, `90s`.
    #[arg(long, env = "YIMEN_SESSION_IDLE", value_name = "DURATION", default_value = "30m", value_parser = parse_span)]
    pub session_idle: std::time::Duration,
    /// A signed-in session ends this long after its sign-in, however much it is used.
    #[arg(long, env = "YIMEN_SESSION_LIFETIME", value_name = "DURATION", default_value = "12h", value_parser = parse_span)]
    pub session_lifetime: std::time::Duration,
    /// Mark the session cookie `Secure` (sent over HTTPS only): set it when people reach the
    /// server through HTTPS (a proxy in front); with `--tls-cert` it is marked so anyway.
    #[arg(long, env = "YIMEN_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// File holding the key ID numbers are found by (64 hex digits: `openssl rand -hex 32 >
    /// FILE`), kept outside the database. Without it the key is generated once and kept in the
    /// database, where whoever reads the database reads it too (docs/security.md, "Personal
    /// data"). Every server on one database needs the same key.
    #[arg(
        long = "search-key",
        env = "YIMEN_SEARCH_KEY_FILE",
        value_name = "FILE"
    )]
    pub search_key: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate (the server's, then its chain); needs
    /// `--tls-key`. Without both, plain HTTP (behind a proxy that terminates TLS).
    #[arg(
        long,
        env = "YIMEN_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(
        long,
        env = "YIMEN_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub timers: super::serve_timers::TimerArgs,
    #[command(flatten)]
    pub ledger: super::serve_checkpoints::LedgerArgs,
    #[command(flatten)]
    pub oidc: super::serve_oidc::OidcArgs,
}

/// What one request may make the engine do (docs/security.md, "Limits").
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Entries one list (or map) variable may have; more is refused with 422.
    #[arg(long, env = "YIMEN_MAX_LIST_ITEMS", value_name = "N", default_value_t = yimen_engine::limits::Limits::default().list_items)]
    pub max_list_items: usize,
    /// Tasks one `for each` may create at once; more refuses the event with 422.
    #[arg(long, env = "YIMEN_MAX_FAN_OUT", value_name = "N", default_value_t = yimen_engine::limits::Limits::default().fan_out)]
    pub max_fan_out: usize,
    /// Steps (minijinja fuel) one document or message template may take to render.
    #[arg(long, env = "YIMEN_TEMPLATE_FUEL", value_name = "N", default_value_t = yimen_engine::limits::Limits::default().template_fuel)]
    pub template_fuel: u64,
    /// Bytes one rendered document may have.
    #[arg(long, env = "YIMEN_MAX_DOCUMENT_BYTES", value_name = "BYTES", default_value_t = yimen_engine::limits::Limits::default().document_bytes)]
    pub max_document_bytes: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> yimen_engine::limits::Limits {
        yimen_engine::limits::Limits {
            list_items: self.max_list_items,
            fan_out: self.max_fan_out,
            template_fuel: self.template_fuel,
            document_bytes: self.max_document_bytes,
        }
    }
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human text (coloured on a terminal).
    Text,
    /// One JSON object per line: time, level, target, fields, and the request's span.
    Json,
}

/// Set once `serve` logs JSON: its status lines then go through the log too ([`say`]).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A status line of the server (what it serves, what it deployed): on stderr as text, or as a
/// log line when the logs are JSON, so that every line a collector reads is JSON.
pub fn say(line: impl std::fmt::Display) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let line = line.to_string();
        match line.strip_prefix("warning: ") {
            Some(warning) => tracing::warn!(target: "yimen", "{warning}"),
            None => tracing::info!(target: "yimen", "{line}"),
        }
    } else {
        eprintln!("{line}");
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format);
    let runtime = server_runtime(&database_url(&args.database))?;
    runtime.block_on(serve(args))
}

/// The runtime of a server (and of `yimen bench`, which runs one) on `url`'s database.
///
/// On SQLite every write goes through one committer on a thread of its own (`commit.rs`): it
/// is the one serial stage, and when the runtime had a worker thread per core it waited for a
/// core behind the HTTP connections. The runtime leaves it one: a worker thread per core but
/// one (at least one), which was faster in every measured pair (`docs/performance.md`).
/// PostgreSQL's committers run on the runtime: a thread per core. `TOKIO_WORKER_THREADS`
/// sets the count instead.
pub fn server_runtime(url: &str) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(worker_threads(url, cores()));
    }
    builder.build()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// See [`server_runtime`].
fn worker_threads(url: &str, cores: usize) -> usize {
    if url.starts_with("sqlite:") {
        cores.saturating_sub(1).max(1)
    } else {
        cores.max(1)
    }
}

/// Logs go to stderr, coloured only when it is a terminal: a log file or journal gets plain
/// text, without escape codes.
pub fn init_tracing() {
    init_logs(LogFormat::Text);
}

/// Logs to stderr in `format`; `RUST_LOG` filters them (`info,sqlx=warn` without it).
pub fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .try_init();
        }
        LogFormat::Json => {
            // The request's span (with its id) on every line, not the list of spans above it.
            if builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .try_init()
                .is_ok()
            {
                JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// A duration as `--session-idle` takes it: `auth::parse_span`'s (`30m`, `12h`, `90s`, `1d`),
/// above zero.
pub fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let span = yimen_engine::auth::parse_span(text).map_err(|e| e.to_string())?;
    match span.to_std() {
        Ok(span) if !span.is_zero() => Ok(span),
        _ => Err(format!(
            "`{}`: give a span above zero, like 30m or 12h",
            text.trim()
        )),
    }
}

/// `yimen.db` → `sqlite:yimen.db`; URLs pass unchanged.
pub fn database_url(database: &str) -> String {
    if database.starts_with("sqlite:")
        || database.starts_with("postgres://")
        || database.starts_with("postgresql://")
    {
        database.to_string()
    } else {
        format!("sqlite:{database}")
    }
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    // Listen for SIGTERM before anything else: from here on it stops the server gracefully
    // instead of killing it.
    let stop = StopSignal::listen();
    // HTTPS when both files are given; checked before
    // anything else starts. `tls.is_some()`: the server speaks HTTPS (cookies may be Secure).
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(super::serve_tls::server_config(cert, key)?),
        (None, None) => None,
        // clap holds flags to it, but not a config file's keys.
        _ => anyhow::bail!(
            "give both tls-cert and tls-key (flags, variables or config file keys), or neither"
        ),
    };
    let url = database_url(&args.database);
    let (clock, manual) = super::serve_timers::clock(&args.timers)?;
    let (due, reloading) = super::serve_timers::due_dates(&args.calendars)?;
    let engine = Engine::open(&url, clock.clone(), due.clone())
        .await
        .with_context(|| format!("cannot open the database {}", args.database))?;
    super::serve_checkpoints::use_key(&engine, &args.ledger)?;
    index_cases(&engine, args.search_key.as_deref()).await?;
    engine.set_limits(args.limits.limits());
    let deployed = deploy_folder(&engine, &args.processes).await?;
    let config = ApiConfig {
        auth_failures_per_minute: args.auth_failures_per_minute,
        max_body_bytes: args.max_body_bytes,
        max_uri_bytes: args.max_uri_bytes,
        max_header_bytes: args.max_header_bytes,
        session_idle: args.session_idle,
        session_lifetime: args.session_lifetime,
        // Served over HTTPS: the session cookie goes over HTTPS only.
        secure_cookies: args.secure_cookies || tls.is_some(),
        ..ApiConfig::default()
    };
    let mut state = ApiState::new(engine.clone(), config);
    if let Some(provider) = super::serve_oidc::provider(&args.oidc).await? {
        say(format_args!(
            "people may also sign in through {} (GET /api/v1/oidc/login)",
            provider.config().issuer
        ));
        state = state.with_oidc(provider);
    }
    if let Some(token) = api::access::bootstrap_admin(&state).await? {
        println!("First start: created the admin token (shown only this once, store it now):");
        println!("  {token}");
        println!("  export YIMEN_TOKEN={token}");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server running there?",
                args.listen
            )
        })?;
    say(format_args!(
        "yimen serving {}://{} (database {}, {} process(es) deployed from {})",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        redact(&url),
        deployed,
        args.processes.display()
    ));
    let metrics = match &args.metrics_listen {
        Some(address) => Some(serve_metrics(address, &state).await?),
        None => None,
    };
    let services =
        super::serve_timers::start(&engine, &args.timers, &args.calendars, manual, due.as_ref())
            .await?;
    let watch = super::serve_timers::CalendarWatch::start(&engine, &args.timers, reloading);
    let pruner = super::serve_refusals::start(&state, args.keep_refusals_days);
    let checkpointer = super::serve_checkpoints::start(&engine, &args.ledger).await?;
    let app = api::router(state.clone()).layer(axum::Extension(services.clone()));
    // With each caller's address: failed authentications are limited per address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stopping = async move {
        let why = stop.wait().await;
        say(format_args!(
            "shutting down ({why}): finishing the requests in flight"
        ));
        state.begin_shutdown();
    };
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(stopping)
            .await
            .context("the HTTP server failed")?,
        Some(config) => {
            let handle = axum_server::Handle::<std::net::SocketAddr>::new();
            let stopper = {
                let handle = handle.clone();
                tokio::spawn(async move {
                    stopping.await;
                    handle.graceful_shutdown(None);
                })
            };
            axum_server::from_tcp_rustls(
                listener.into_std()?,
                axum_server::tls_rustls::RustlsConfig::from_config(config),
            )?
            .handle(handle)
            .serve(app)
            .await
            .context("the HTTPS server failed")?;
            stopper.abort();
        }
    }
    if let Some(m) = metrics {
        let _ = m.await;
    }
    if let Some(p) = pruner {
        p.stop().await;
    }
    if let Some(c) = checkpointer {
        c.stop().await;
    }
    if let Some(w) = watch {
        w.stop().await;
    }
    services.stop().await;
    say(format_args!("stopped"));
    Ok(ExitCode::SUCCESS)
}

/// Serves `GET /metrics` on `address` (`--metrics-listen`) until the server stops.
async fn serve_metrics(
    address: &str,
    state: &ApiState,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for --metrics-listen"))?;
    say(format_args!(
        "metrics at http://{}/metrics",
        listener.local_addr()?
    ));
    let app = api::metrics_router(state.clone());
    let state = state.clone();
    Ok(tokio::spawn(async move {
        let stopped = async move { state.shutting_down().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    }))
}

/// Gives the engine the search key of `--search-key` (the database's without one) and fills
/// the search table for the cases it does not hold yet, or holds under another key.
async fn index_cases(engine: &Engine, key: Option<&Path>) -> anyhow::Result<()> {
    match key {
        Some(path) => {
            let key = yimen_engine::search::SearchKey::read(path).map_err(anyhow::Error::msg)?;
            say(format_args!(
                "search: ID numbers are found through key {} from {}",
                key.id(),
                path.display()
            ));
            engine.set_search_key(key);
        }
        None => say(format_args!(
            "search: ID numbers are found through the key kept in the database (give one outside it with --search-key or YIMEN_SEARCH_KEY_FILE)"
        )),
    }
    let written = engine
        .index_cases()
        .await
        .context("cannot fill the search table")?;
    if written > 0 {
        say(format_args!(
            "search: {written} row(s) of the search table written for the cases before it"
        ));
    }
    Ok(())
}

/// What stops the server: Ctrl-C (SIGINT), and on unix SIGTERM (what systemd, docker and
/// Kubernetes send).
struct StopSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    fn listen() -> StopSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = match signal(SignalKind::terminate()) {
                Ok(term) => Some(term),
                Err(e) => {
                    say(format_args!(
                        "warning: cannot listen for SIGTERM ({e}); stop the server with Ctrl-C"
                    ));
                    None
                }
            };
            StopSignal { term }
        }
        #[cfg(not(unix))]
        StopSignal {}
    }

    /// Waits for the first stop signal and names it.
    async fn wait(self) -> &'static str {
        #[cfg(unix)]
        if let Some(mut term) = self.term {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// The working-day calendars of `dir`, with the calendars built into the binary for the names
/// the folder has no file of (all of them without the folder). A process naming a calendar that
/// is in neither is refused when deployed; deadlines are never counted on some other calendar.
pub fn due_dates(dir: &Path) -> anyhow::Result<Arc<dyn yimen_engine::DueDates>> {
    let calendars =
        yimen_engine::calendar::Calendars::load_dir_or_builtin(dir, super::builtin::CALENDARS)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot load the calendars in {}", dir.display()))?;
    Ok(Arc::new(calendars))
}

/// One line saying which calendars were loaded from where.
pub fn calendars_line(dir: &Path, names: &[String]) -> String {
    let builtin: Vec<&str> = super::builtin::calendar_names()
        .filter(|n| names.iter().any(|m| m == n) && !dir.join(format!("{n}.yaml")).is_file())
        .collect();
    let from_dir: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !builtin.contains(n))
        .collect();
    match (from_dir.is_empty(), builtin.is_empty()) {
        (_, true) => format!("calendars from {}: {}", dir.display(), from_dir.join(", ")),
        (true, false) if !dir.is_dir() => format!(
            "calendars built into yimen: {} (no calendars folder {}; a file <name>.yaml there \
             replaces the built-in one)",
            builtin.join(", "),
            dir.display()
        ),
        _ => format!(
            "calendars from {}: {}; built into yimen: {}",
            dir.display(),
            from_dir.join(", "),
            builtin.join(", ")
        ),
    }
}

/// Deploys every `*.flow` file directly in `dir`. A file that does not check stops the start,
/// with its diagnostics. Prints one line per file: the version that runs and why.
///
/// The rule: the latest deployment runs. A file whose text (with its configuration and
/// templates) was never deployed becomes a new version, the latest; a file identical to a
/// deployed version deploys nothing, so when a newer version was deployed since (`yimen
/// deploy`), that newer version keeps running: a restart never goes back to an older version.
pub async fn deploy_folder(engine: &Engine, dir: &Path) -> anyhow::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        say(format_args!(
            "note: no processes folder {}; deploy with `yimen deploy FILE`",
            dir.display()
        ));
        return Ok(0);
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .collect();
    files.sort();
    for file in &files {
        let (source, sources) = super::client::process_files(file)?;
        let name = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let deployment = deploy_source(engine, file, name, source, sources).await?;
        let latest = engine
            .definition(&deployment.key, None)
            .await
            .with_context(|| format!("cannot read the deployments of {}", deployment.key))?
            .deployment;
        // When the latest was deployed, as people read it: in the calendar's zone.
        let deployed_at =
            yimen_engine::clock::readable(&latest.created_at.with_timezone(&engine.time_zone()));
        say(format_args!(
            "{}",
            runs_line(&deployment, &latest, &deployed_at, file)
        ));
    }
    Ok(files.len())
}

/// Which version of a process runs after its file was deployed at start, and why.
fn runs_line(
    file_version: &yimen_engine::Deployment,
    latest: &yimen_engine::Deployment,
    deployed_at: &str,
    file: &Path,
) -> String {
    let key = &latest.key;
    if file_version.created {
        format!(
            "{key}: version {} runs, deployed now from {}",
            latest.version,
            file.display()
        )
    } else if latest.version == file_version.version {
        format!(
            "{key}: version {} runs, the latest deployment ({} unchanged)",
            latest.version,
            file.display()
        )
    } else {
        format!(
            "{key}: version {} runs, the latest deployment ({}); {} is the older version {}, \
             which a restart does not bring back",
            latest.version,
            deployed_at,
            file.display(),
            file_version.version
        )
    }
}

/// Deploys one process file with the files next to it, and says so.
pub async fn deploy_file(engine: &Engine, file: &Path) -> anyhow::Result<yimen_engine::Deployment> {
    let (source, files) = super::client::process_files(file)?;
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let deployment = deploy_source(engine, file, name, source, files).await?;
    let answer = serde_json::to_value(&deployment).context("the deployment as JSON")?;
    say(format_args!("{}", super::client::deploy_line(&answer)));
    Ok(deployment)
}

/// Deploys a process file's `source` with its `files` (configuration, templates); `file` names
/// it in messages.
pub async fn deploy_source(
    engine: &Engine,
    file: &Path,
    name: String,
    source: String,
    files: std::collections::BTreeMap<String, String>,
) -> anyhow::Result<yimen_engine::Deployment> {
    match engine
        .deploy(DeployRequest {
            file: name,
            source: source.clone(),
            files,
            model: None,
        })
        .await
    {
        Ok(deployment) => Ok(deployment),
        Err(yimen_engine::EngineError::Diagnostics(diagnostics)) => {
            let mut text = format!("{} does not check:", file.display());
            for d in &diagnostics {
                text.push_str(&format!("\n  {} {}", d.code, d.message));
                if let Some(help) = &d.help {
                    text.push_str(&format!(" (help: {help})"));
                }
            }
            text.push_str(&format!(
                "\nrun `yimen check {}` for details, fix it or move it out of the folder",
                file.display()
            ));
            Err(anyhow::anyhow!(text))
        }
        Err(other) => Err(other).with_context(|| format!("cannot deploy {}", file.display())),
    }
}

/// Hides a password in a database URL before it is printed.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_leaves_its_committer_a_core_and_postgres_does_not() {
        use super::worker_threads;
        assert_eq!(worker_threads("sqlite:yimen.db", 2), 1);
        assert_eq!(worker_threads("sqlite:yimen.db", 8), 7);
        assert_eq!(worker_threads("sqlite:yimen.db", 1), 1, "never none");
        assert_eq!(worker_threads("postgres://u@h/db", 2), 2);
        assert_eq!(worker_threads("postgres://u@h/db", 1), 1);
    }

    #[test]
    fn session_spans_are_the_token_spans_above_zero() {
        use std::time::Duration;
        assert_eq!(parse_span("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_span("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_span("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_span("0m").unwrap_err().contains("above zero"));
        assert!(parse_span("30x").unwrap_err().contains("does not read"));
    }

    #[test]
    fn database_argument_becomes_a_url() {
        assert_eq!(database_url("yimen.db"), "sqlite:yimen.db");
        assert_eq!(database_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(database_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:yimen.db"), "sqlite:yimen.db");
    }
}
