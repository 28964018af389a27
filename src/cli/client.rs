//! Commands that talk to a running server: `deploy`, `start`, `tasks`, `instance`, `cases`,
//! `token`, `outbox`.

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use yimen_workers::Client;
use yimen_workers::Method;

/// Where the server is and who we are.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// Server root URL.
    #[arg(long, env = "YIMEN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Access token (`yimen token create`; the first start of a server prints an admin token).
    #[arg(long, env = "YIMEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.server, self.token.clone())?)
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Deploy a process file (with the YAML configuration and templates next to it).
    Deploy {
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Start an instance of a deployed process.
    Start {
        /// Process key.
        process: String,
        /// A variable, `name=value`; the value is read as JSON when it parses (`3`, `true`,
        /// `["a"]`), else as text.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Business key: starting again with the same key returns the existing instance.
        #[arg(long)]
        business_key: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the tasks of a queue.
    Tasks {
        queue: String,
        /// `open`, `claimed`, `completed`, ...
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show an instance: state, variables (personal data masked), open tasks and its timeline.
    Instance {
        id: String,
        /// Print the raw JSON instead of the readable view.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Find cases by business key (or its beginning), part of a name, or a whole ID number;
    /// by state, organisation unit and registration dates. Personal data is shown masked.
    Cases {
        /// A business key or its beginning, part of the name of the person a case concerns, or
        /// a whole ID number (part of one finds nothing).
        #[arg(long)]
        q: Option<String>,
        /// Process key.
        #[arg(long)]
        process: Option<String>,
        /// `running`, `completed`, `cancelled` or `incident`.
        #[arg(long)]
        status: Option<String>,
        /// Organisation unit.
        #[arg(long)]
        unit: Option<String>,
        /// Registered on or after this day (`2026-09-01`, in the server's calendar zone).
        #[arg(long)]
        from: Option<String>,
        /// Registered on or before this day.
        #[arg(long)]
        to: Option<String>,
        /// Page, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Cases per page (at most 100).
        #[arg(long, default_value_t = 20)]
        page_size: u32,
        /// Print the raw JSON instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Access tokens: create, rotate, list, revoke (admin only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Outgoing notifications (webhooks, WeCom and DingTalk robots, SMS, inbox items) whose delivery fails (admin only).
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// List deliveries that failed and are not delivered: still retried, or given up.
    Failed {
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only hashed.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: `admin`, or roles the processes declare (`window`; a keyed role
        /// with its key, `department:civil_affairs`).
        #[arg(long)]
        roles: String,
        /// Comma-separated organisation units the token is limited to (values of the variables
        /// that scope the processes' roles, such as a case's street).
        #[arg(long)]
        org_units: Option<String>,
        /// How long it works: `90d`, `12h`, `30m` (at most `3650d`). Without it the token
        /// never expires; give the token of an automated worker one, and rotate it before it
        /// runs out (`yimen token rotate`).
        #[arg(long, value_name = "SPAN", value_parser = span)]
        expires: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Give a token a new secret (printed once): the same name, roles and organisation units.
    /// The old secret stops at once, or after `--overlap` so that a worker can switch.
    Rotate {
        name_or_id: String,
        /// How long the new secret works (`90d`, `12h`); without it, as long as the old one
        /// was made to work.
        #[arg(long, value_name = "SPAN", value_parser = span)]
        expires: Option<String>,
        /// How long the old secret keeps working beside the new one (`1h`, `30m`; at most `7d`).
        #[arg(long, value_name = "SPAN", value_parser = span)]
        overlap: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Revoke a token by name or id; it stops working at once. During a rotation's overlap,
    /// the old secret's id revokes only it.
    Revoke {
        name_or_id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// List tokens (never their secret).
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cmd))
}

async fn run_async(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Deploy { file, conn } => deploy(&file, &conn).await?,
        Command::Start {
            process,
            vars,
            business_key,
            conn,
        } => start(&process, &vars, business_key, &conn).await?,
        Command::Tasks { queue, state, conn } => tasks(&queue, state, &conn).await?,
        Command::Instance { id, json, conn } => instance(&id, json, &conn).await?,
        Command::Cases {
            q,
            process,
            status,
            unit,
            from,
            to,
            page,
            page_size,
            json,
            conn,
        } => {
            let filters = [
                ("q", q),
                ("process", process),
                ("status", status),
                ("unit", unit),
                ("from", from),
                ("to", to),
                ("page", Some(page.to_string())),
                ("page_size", Some(page_size.to_string())),
            ];
            cases(&filters, json, &conn).await?
        }
        Command::Token(cmd) => token(cmd).await?,
        Command::Outbox(OutboxCommand::Failed { limit, conn }) => {
            outbox_failed(limit, &conn).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `yimen deploy`: the process file with the files beside it.
async fn deploy(file: &Path, conn: &Connection) -> anyhow::Result<()> {
    let body = deploy_body(file)?;
    let answer: Value = conn
        .client()?
        .call(Method::POST, "/definitions", Some(&body))
        .await
        .map_err(|e| diagnostics_error(e, file))?;
    println!("{}", deploy_line(&answer));
    Ok(())
}

/// One line on a deployment (`POST /definitions`): the version the file is and the version new
/// cases run, the latest deployed. A file identical to an older version deploys nothing, and
/// the newer version keeps running; the line says so rather than naming the older one alone.
pub fn deploy_line(answer: &Value) -> String {
    let key = text(&answer["key"]);
    let version = answer["version"].as_i64().unwrap_or_default();
    let hash: String = text(&answer["hash"]).chars().take(12).collect();
    let latest = answer["latest_version"].as_i64().unwrap_or(version);
    if answer["created"].as_bool().unwrap_or(true) {
        format!("deployed {key} version {version} ({hash}); new cases run version {latest}")
    } else if latest == version {
        format!(
            "unchanged: {key} is version {version} as before ({hash}); new cases run version \
             {latest}, the latest"
        )
    } else {
        format!(
            "unchanged: {key} is version {version} as before ({hash}); new cases run version \
             {latest} (the latest), not this file's version {version}; to run this text again, \
             change it and deploy it as a new version"
        )
    }
}

/// `yimen start`: the variables given as `name=value`, text where the process declares text.
async fn start(
    process: &str,
    vars: &[String],
    business_key: Option<String>,
    conn: &Connection,
) -> anyhow::Result<()> {
    let client = conn.client()?;
    let mut variables = parse_vars(vars)?;
    // Text variables stay text even when they look like numbers (ID numbers, phones).
    let path = format!("/definitions/{}", encode(process));
    if let Ok(detail) = client.call::<(), Value>(Method::GET, &path, None).await {
        let text_vars = text_variables(&detail["model"]);
        for (name, value) in variables.iter_mut() {
            if text_vars.contains(name) && !value.is_string() {
                *value = Value::String(raw_value(vars, name));
            }
        }
    }
    let body = json!({"process": process, "business_key": business_key, "variables": variables});
    let answer: Value = client.call(Method::POST, "/instances", Some(&body)).await?;
    let existing = answer["existing"].as_bool().unwrap_or(false);
    println!(
        "{} instance {} of {} ({})",
        if existing { "existing" } else { "started" },
        text(&answer["id"]),
        text(&answer["process"]),
        text(&answer["status"])
    );
    Ok(())
}

/// `yimen tasks`: the tasks of a queue, in a given state.
async fn tasks(queue: &str, state: Option<String>, conn: &Connection) -> anyhow::Result<()> {
    let mut path = format!("/tasks?queue={}", encode(queue));
    if let Some(state) = state {
        path.push_str(&format!("&state={}", encode(&state)));
    }
    let answer: Value = conn
        .client()?
        .call::<(), _>(Method::GET, &path, None)
        .await?;
    print_tasks(&answer);
    Ok(())
}

/// `yimen instance`: the instance and its history, as a timeline or as JSON.
async fn instance(id: &str, json: bool, conn: &Connection) -> anyhow::Result<()> {
    let client = conn.client()?;
    let id_path = encode(id);
    let instance: Value = client
        .call::<(), _>(Method::GET, &format!("/instances/{id_path}"), None)
        .await?;
    let history: Value = client
        .call::<(), _>(Method::GET, &format!("/instances/{id_path}/history"), None)
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"instance": instance, "history": history}))?
        );
    } else {
        print!("{}", timeline(&instance, &history));
    }
    Ok(())
}

/// `yimen cases`: `GET /instances` with the filters given, as a table.
async fn cases(
    filters: &[(&str, Option<String>)],
    json: bool,
    conn: &Connection,
) -> anyhow::Result<()> {
    let query: Vec<String> = filters
        .iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", encode(value.as_deref()?))))
        .collect();
    let answer: Value = conn
        .client()?
        .call::<(), _>(
            Method::GET,
            &format!("/instances?{}", query.join("&")),
            None,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", case_table(&answer));
    }
    Ok(())
}

/// The found cases of `GET /instances` as a table, the page and the total under it.
fn case_table(answer: &Value) -> String {
    let cases = answer["cases"].as_array().cloned().unwrap_or_default();
    let total = answer["total"].as_i64().unwrap_or(0);
    if cases.is_empty() {
        return if total > 0 {
            format!("no cases on this page ({total} found in all)\n")
        } else {
            "no cases found\n".to_string()
        };
    }
    let mut rows = vec![
        [
            "registered",
            "business key",
            "person",
            "status",
            "unit",
            "process",
            "id",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for case in &cases {
        let registered = shown_time(&case["registered_at"]);
        let person: Vec<String> = case["personal"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| text(&p["value"]))
            .collect();
        rows.push(vec![
            registered,
            text(&case["business_key"]),
            if person.is_empty() {
                "-".into()
            } else {
                person.join(" ")
            },
            text(&case["status"]),
            join(&case["org_units"]),
            text(&case["process"]),
            text(&case["id"]),
        ]);
    }
    let page = answer["page"].as_i64().unwrap_or(1);
    let size = answer["page_size"].as_i64().unwrap_or(20).max(1);
    let pages = (total + size - 1) / size;
    let mut out = table(&rows);
    out.push_str(&format!(
        "page {page} of {pages} ({total} case{} found)\n",
        if total == 1 { "" } else { "s" }
    ));
    out
}

/// `yimen token create | revoke | list`.
async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            name,
            roles,
            org_units,
            expires,
            conn,
        } => {
            let roles: Vec<&str> = split_list(&roles);
            let org_units: Vec<&str> = org_units.as_deref().map(split_list).unwrap_or_default();
            let body = json!({"name": name, "roles": roles, "org_units": org_units,
                "expires_in": expires});
            let answer: Value = conn
                .client()?
                .call(Method::POST, "/tokens", Some(&body))
                .await?;
            println!("{}", text(&answer["token"]));
            eprintln!(
                "token `{}` created (id {}), {}; it is shown only this once: store it now",
                text(&answer["name"]),
                text(&answer["id"]),
                expiry(&answer["expires_at"])
            );
        }
        TokenCommand::Rotate {
            name_or_id,
            expires,
            overlap,
            conn,
        } => {
            let path = format!("/tokens/{}/rotate", encode(&name_or_id));
            let body = json!({"expires_in": expires, "overlap": overlap});
            let answer: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&body))
                .await?;
            println!("{}", text(&answer["token"]));
            let old = &answer["replaced"];
            eprintln!(
                "token `{}` has a new secret (id {}), {}; it is shown only this once: store it \
                 now. The old secret (id {}) {} {}",
                text(&answer["name"]),
                text(&answer["id"]),
                expiry(&answer["expires_at"]),
                text(&old["id"]),
                if old["state"] == "active" {
                    "works until"
                } else {
                    "stopped at"
                },
                shown_time(&old["revoked_at"])
            );
        }
        TokenCommand::Revoke { name_or_id, conn } => {
            let path = format!("/tokens/{}/revoke", encode(&name_or_id));
            let answer: Value = conn
                .client()?
                .call(Method::POST, &path, Some(&json!({})))
                .await?;
            println!("revoked token `{}`", text(&answer["name"]));
        }
        TokenCommand::List { conn } => {
            let answer: Value = conn
                .client()?
                .call::<(), _>(Method::GET, "/tokens", None)
                .await?;
            print!("{}", table(&token_rows(&answer)));
        }
    }
    Ok(())
}

/// One row per token of `GET /tokens`: when it expires, and whether it still works (a token
/// replaced by a rotation works until the end of its overlap).
fn token_rows(answer: &Value) -> Vec<Vec<String>> {
    answer["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|token| {
            let state = text(&token["state"]);
            vec![
                text(&token["name"]),
                text(&token["id"]),
                format!("roles={}", join(&token["roles"])),
                format!("org_units={}", join(&token["org_units"])),
                format!(
                    "expires={}",
                    if token["expires_at"].is_string() {
                        shown_time(&token["expires_at"])
                    } else {
                        "never".into()
                    }
                ),
                match (state.as_str(), token["revoked_at"].is_string()) {
                    ("active", true) => {
                        format!(
                            "(works until {}: rotated)",
                            shown_time(&token["revoked_at"])
                        )
                    }
                    ("active", false) => String::new(),
                    (other, _) => format!("({other})"),
                },
            ]
        })
        .collect()
}

/// `expires …` or `does not expire`, from a token's `expires_at`.
fn expiry(expires_at: &Value) -> String {
    if expires_at.is_string() {
        format!("expires {}", shown_time(expires_at))
    } else {
        "does not expire".into()
    }
}

/// A time of an answer as people read it: the server gives it in the calendar's zone, shown
/// with its offset (`2026-10-08 09:30:00 +08:00`), like the timeline; anything else as given.
fn shown_time(at: &Value) -> String {
    let at = text(at);
    chrono::DateTime::parse_from_rfc3339(&at).map_or(at, |t| yimen_engine::clock::readable(&t))
}

/// A `--expires` or `--overlap` value, checked as the server reads it (`90d`, `12h`, `30m`).
fn span(text: &str) -> Result<String, yimen_engine::auth::SpanError> {
    yimen_engine::auth::parse_span(text).map(|_| text.trim().to_string())
}

/// `yimen outbox failed`: the deliveries that failed, as a table.
async fn outbox_failed(limit: u32, conn: &Connection) -> anyhow::Result<()> {
    let answer: Value = conn
        .client()?
        .call::<(), _>(Method::GET, &format!("/outbox/failed?limit={limit}"), None)
        .await?;
    print!("{}", failed_table(&answer));
    Ok(())
}

/// The failed deliveries of `GET /outbox/failed` as a table.
fn failed_table(answer: &Value) -> String {
    let deliveries = answer["deliveries"].as_array().cloned().unwrap_or_default();
    if deliveries.is_empty() {
        return "no failed deliveries\n".into();
    }
    let mut rows = vec![
        [
            "state",
            "attempts",
            "channel",
            "kind",
            "url",
            "next attempt",
            "instance",
            "last error",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in &deliveries {
        rows.push(vec![
            text(&d["state"]),
            text(&d["attempts"]),
            text(&d["channel"]),
            d["kind"].as_str().unwrap_or("inbox").to_string(),
            d["url"].as_str().unwrap_or("-").to_string(),
            if d["next_attempt_at"].is_string() {
                shown_time(&d["next_attempt_at"])
            } else {
                "-".into()
            },
            text(&d["instance_id"]),
            text(&d["last_error"]),
        ]);
    }
    table(&rows)
}

/// The body of `POST /definitions`: the process source and the files beside it that it may
/// read (YAML configuration, templates), keyed by their path relative to the process file.
pub fn deploy_body(file: &Path) -> anyhow::Result<Value> {
    let (source, files) = process_files(file)?;
    Ok(json!({
        "file": file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        "source": source,
        "files": files,
    }))
}

/// A process file's source and the files beside it (YAML configuration, templates), keyed by
/// their path relative to the process file's folder.
pub fn process_files(file: &Path) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read process file {}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut files = BTreeMap::new();
    collect_files(dir, dir, &mut files, 0)?;
    Ok((source, files))
}

fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, String>,
    depth: usize,
) -> anyhow::Result<()> {
    if depth > 3 {
        return Ok(());
    }
    let entries = match std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        Ok(entries) => entries,
        Err(_) => return Ok(()),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, files, depth + 1)?;
            continue;
        }
        let name = path.to_string_lossy();
        if [".yaml", ".yml", ".j2"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let content = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.insert(relative.to_string_lossy().replace('\\', "/"), content);
        }
    }
    Ok(())
}

/// Turns a 422 with checker diagnostics into readable lines.
fn diagnostics_error(err: yimen_workers::ClientError, file: &Path) -> anyhow::Error {
    if let yimen_workers::ClientError::Api {
        status: 422,
        message,
        details,
        ..
    } = &err
    {
        let mut out = format!("{} does not check: {message}", file.display());
        for d in details["diagnostics"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\n  {} {}{}",
                text(&d["code"]),
                text(&d["message"]),
                d["help"]
                    .as_str()
                    .map(|h| format!(" (help: {h})"))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "\nrun `yimen check {}` to see where",
            file.display()
        ));
        return anyhow::anyhow!(out);
    }
    err.into()
}

/// `--var k=v` pairs into a JSON object; values that parse as JSON keep their type.
pub fn parse_vars(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut vars = Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`--var {pair}` needs the form NAME=VALUE, e.g. --var household_size=3");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("`--var {pair}` has no variable name before `=`");
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        vars.insert(name.to_string(), value);
    }
    Ok(vars)
}

/// Names of the model's variables of type text (and dates, written as text).
fn text_variables(model: &Value) -> Vec<String> {
    model["vars"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["ty"] == "Text" || v["ty"] == "Date")
        .filter_map(|v| v["name"]["name"].as_str().map(str::to_string))
        .collect()
}

/// The value of `--var name=value` exactly as typed.
fn raw_value(pairs: &[String], name: &str) -> String {
    pairs
        .iter()
        .rev()
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

pub(crate) fn split_list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

pub(crate) fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Rows as columns padded to their display width (a Chinese character takes two columns),
/// two spaces apart; trailing blanks trimmed.
pub fn table(rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr;
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.width();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.width() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` padded with spaces to `width` display columns (a Chinese character takes two).
fn pad(text: &str, width: usize) -> String {
    let shown = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(shown)))
}

pub(crate) fn join(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(text).collect::<Vec<_>>().join(","))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn print_tasks(answer: &Value) {
    let tasks = answer["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    for task in tasks {
        println!(
            "{}  {} {} {} instance {}{}",
            text(&task["id"]),
            pad(&text(&task["state"]), 10),
            pad(&text(&task["node"]), 24),
            pad(&text(&task["queue"]), 20),
            text(&task["instance_id"]),
            task["org_unit"]
                .as_str()
                .map(|u| format!("  [{u}]"))
                .unwrap_or_default()
        );
    }
}

/// The readable view of `yimen instance`: header, variables, open tasks, timeline.
pub fn timeline(instance: &Value, history: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "instance {}  {} v{}  status: {}",
        text(&instance["id"]),
        text(&instance["process"]),
        text(&instance["version"]),
        text(&instance["status"]),
    ));
    if let Some(result) = instance["result"].as_str() {
        out.push_str(&format!("  result: {result}"));
    }
    if let Some(key) = instance["business_key"].as_str() {
        out.push_str(&format!("  business key: {key}"));
    }
    out.push('\n');
    if let Some(vars) = instance["vars"]
        .as_object()
        .or(instance["variables"].as_object())
        .filter(|v| !v.is_empty())
    {
        out.push_str("variables:\n");
        for (name, value) in vars {
            out.push_str(&format!("  {name} = {}\n", text(value)));
        }
    }
    let tasks = instance["tasks"]
        .as_array()
        .or(instance["open_tasks"].as_array());
    if let Some(tasks) = tasks.filter(|t| !t.is_empty()) {
        out.push_str("open tasks:\n");
        for task in tasks {
            out.push_str(&format!(
                "  {} ({}) in queue {}\n",
                text(&task["node"]),
                text(&task["id"]),
                text(&task["queue"])
            ));
        }
    }
    let entries = history
        .as_array()
        .or(history["entries"].as_array())
        .cloned()
        .unwrap_or_default();
    out.push_str("timeline:\n");
    for entry in entries {
        // The server gives each time in its calendar's zone; shown as people read times.
        let at = text(&entry["at"]);
        let at = chrono::DateTime::parse_from_rfc3339(&at)
            .map_or(at, |t| yimen_engine::clock::readable(&t));
        out.push_str(&format!(
            "  {at}  {} {} {} {}\n",
            pad(&text(&entry["kind"]), 18),
            pad(&text(&entry["node"]), 20),
            pad(&who(&entry), 20),
            text(&entry["text"]),
        ));
    }
    out
}

/// Who acted in a history entry as people read it: `王芳 (user)`, `worker-1 (token)`; the bare
/// name for an entry written before the history recorded the actor's kind.
fn who(entry: &Value) -> String {
    match entry["by"].as_str() {
        Some(by) => by.to_string(),
        None => text(&entry["actor"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeline once showed the first 19 characters of the time: UTC without a marker.
    #[test]
    fn the_timeline_shows_times_with_their_offset() {
        let instance = json!({"id": "i1", "process": "p", "version": 1, "status": "running"});
        let history = json!({"entries": [{"at": "2026-10-08T09:30:00+08:00", "kind": "step",
            "node": "register", "actor": "clerk1", "text": "登记"}]});
        let view = timeline(&instance, &history);
        assert!(
            view.contains("  2026-10-08 09:30:00 +08:00  step"),
            "{view}"
        );
    }

    /// Token expiry, the end of a rotation's overlap, the next attempt of a failed delivery and
    /// a case's registration were shown in UTC (`Z`) or local time without an offset.
    #[test]
    fn token_and_delivery_times_are_shown_with_their_offset() {
        let tokens = json!({"tokens": [
            {"name": "w1", "id": "t1", "roles": ["window"], "org_units": [], "state": "active",
             "expires_at": "2026-12-28T09:00:00.000+08:00",
             "revoked_at": "2026-09-28T10:00:00.000+08:00"},
            {"name": "w2", "id": "t2", "roles": ["window"], "org_units": [], "state": "active",
             "expires_at": null, "revoked_at": null}]});
        let rows = token_rows(&tokens);
        assert_eq!(rows[0][4], "expires=2026-12-28 09:00:00 +08:00");
        assert_eq!(
            rows[0][5],
            "(works until 2026-09-28 10:00:00 +08:00: rotated)"
        );
        assert_eq!(
            (rows[1][4].as_str(), rows[1][5].as_str()),
            ("expires=never", "")
        );
        assert_eq!(
            expiry(&json!("2026-12-28T09:00:00.000+08:00")),
            "expires 2026-12-28 09:00:00 +08:00"
        );
        assert_eq!(expiry(&Value::Null), "does not expire");

        let failed = json!({"deliveries": [{"state": "pending", "attempts": 3,
            "channel": "webhook:ledger_hook", "url": "http://ledger.example/hook",
            "next_attempt_at": "2026-10-08T09:35:00+08:00", "instance_id": "i1",
            "last_error": "503"},
            {"state": "dead", "attempts": 20, "channel": "webhook:leaders", "kind": "dingtalk",
             "url": "https://oapi.dingtalk.com/robot/send", "next_attempt_at": null,
             "instance_id": "i2", "last_error": "DingTalk robot refused: errcode 310000: sign not match"}]});
        let view = failed_table(&failed);
        assert!(view.contains("2026-10-08 09:35:00 +08:00"), "{view}");
        let robot = view
            .lines()
            .find(|l| l.contains("webhook:leaders"))
            .expect("listed");
        assert!(
            robot.contains("dingtalk") && robot.contains("sign not match"),
            "{view}"
        );

        let cases = json!({"cases": [{"registered_at": "2026-09-28T09:00:00+08:00",
            "business_key": "k1", "personal": [], "status": "running", "org_units": ["xinhua"],
            "process": "social_assistance", "id": "i1"}], "total": 1, "page": 1,
            "page_size": 20});
        let view = case_table(&cases);
        assert!(view.contains("2026-09-28 09:00:00 +08:00"), "{view}");
    }

    #[test]
    fn the_timeline_says_who_acted_and_as_what() {
        let instance = json!({"id": "i1", "process": "p", "version": 1, "status": "running"});
        let history = json!({"entries": [
            {"at": "2026-10-08T09:30:00+08:00", "kind": "started", "node": "register",
             "actor": "王芳", "actor_kind": "user", "by": "王芳 (user)", "text": "登记"},
            {"at": "2026-10-08T09:31:00+08:00", "kind": "step", "node": "review",
             "actor": "old-worker", "text": "审查"}]});
        let view = timeline(&instance, &history);
        assert!(view.contains("王芳 (user)"), "{view}");
        assert!(view.contains("old-worker"), "{view}");
    }

    #[test]
    fn the_timeline_lines_up_names_in_chinese() {
        let instance = json!({"id": "i1", "process": "p", "version": 1, "status": "running"});
        let history = json!({"entries": [
            {"at": "2026-10-08T09:30:00+08:00", "kind": "step", "node": "register",
             "actor": "clerk1", "text": "登记"},
            {"at": "2026-10-08T09:31:00+08:00", "kind": "task_completed", "node": "review",
             "actor": "窗口受理员", "text": "审查"}]});
        let view = timeline(&instance, &history);
        let column = |needle: &str| {
            let line = view.lines().find(|l| l.contains(needle)).unwrap();
            unicode_width::UnicodeWidthStr::width(&line[..line.find(needle).unwrap()])
        };
        assert_eq!(column("登记"), column("审查"), "{view}");
    }

    #[test]
    fn found_cases_line_up_in_chinese() {
        let answer = json!({"total": 21, "page": 2, "page_size": 20, "cases": [
            {"id": "c1", "process": "grant", "business_key": "SA-1", "status": "running",
             "registered_at": "2026-09-28T09:00:00+08:00", "org_units": ["滨河街道"],
             "personal": [{"variable": "who", "kind": "name", "value": "阿拉坦·**"},
                          {"variable": "id", "kind": "id_number", "value": "150302********1235"}]},
            {"id": "c2", "process": "grant", "business_key": null, "status": "completed",
             "registered_at": "2026-09-29T10:30:00+08:00", "org_units": [],
             "personal": [{"variable": "who", "kind": "name", "value": "张*"}]}]});
        let out = case_table(&answer);
        let column = |needle: &str| {
            let line = out.lines().find(|l| l.contains(needle)).unwrap();
            unicode_width::UnicodeWidthStr::width(&line[..line.find(needle).unwrap()])
        };
        assert_eq!(column("running"), column("completed"), "{out}");
        assert!(out.contains("2026-09-28 09:00"), "{out}");
        assert!(out.ends_with("page 2 of 2 (21 cases found)\n"), "{out}");
        assert_eq!(
            case_table(&json!({"total": 0, "cases": []})),
            "no cases found\n"
        );
    }

    #[test]
    fn tables_pad_by_display_width() {
        let rows = vec![
            vec!["窗口受理员".to_string(), "a".into()],
            vec!["supervision".to_string(), "b".into()],
        ];
        let out = table(&rows);
        let starts: Vec<usize> = out
            .lines()
            .map(|l| unicode_width::UnicodeWidthStr::width(l.trim_end_matches(['a', 'b'])))
            .collect();
        assert_eq!(starts[0], starts[1], "{out}");
    }

    #[test]
    fn vars_keep_json_types_and_fall_back_to_text() {
        let vars = parse_vars(&[
            "household_size=3".into(),
            "name=张三".into(),
            "members=[\"a\",\"b\"]".into(),
            "urgent=true".into(),
            "note=a=b".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(vars),
            json!({"household_size": 3, "name": "张三", "members": ["a", "b"], "urgent": true, "note": "a=b"})
        );
    }

    #[test]
    fn text_variables_keep_digits_as_typed() {
        let model = json!({"vars": [
            {"name": {"name": "id_number"}, "ty": "Text"},
            {"name": {"name": "household_size"}, "ty": "Integer"},
            {"name": {"name": "categories"}, "ty": {"List": {"Enum": "category"}}}
        ]});
        assert_eq!(text_variables(&model), vec!["id_number".to_string()]);
        let pairs = vec!["id_number=0150302198001011235".to_string()];
        assert_eq!(raw_value(&pairs, "id_number"), "0150302198001011235");
    }

    #[test]
    fn bad_var_says_the_form() {
        let err = parse_vars(&["household_size".into()]).unwrap_err();
        assert!(err.to_string().contains("NAME=VALUE"));
        assert!(parse_vars(&["=3".into()]).is_err());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("东城"), "%E4%B8%9C%E5%9F%8E");
        assert_eq!(
            encode("department:civil_affairs"),
            "department:civil_affairs"
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
