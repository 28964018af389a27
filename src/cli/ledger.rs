//! `yimen ledger verify|export|keygen|checkpoint`: the electronic ledger (台账) straight from
//! the database, and the keys and checkpoints that make it tamper-evident (docs/security.md).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use yimen_engine::clock::SystemClock;
use yimen_engine::ledger_keys;
use yimen_engine::{Engine, WeekdaysOnly};

/// Exit status when the ledger was tampered with.
const TAMPERED: u8 = 3;

#[derive(clap::Args)]
pub struct Database {
    /// Database URL: `sqlite:yimen.db` or `postgres://user@host/db`.
    #[arg(long, env = "YIMEN_DATABASE", default_value = "sqlite:yimen.db")]
    database: String,
}

/// The ledger key file (secret; made by `yimen ledger keygen`).
#[derive(clap::Args)]
pub struct KeyArg {
    /// The ledger key file (`yimen ledger keygen`): the chain key and the checkpoint signing
    /// key, kept outside the database.
    #[arg(long = "ledger-key", env = "YIMEN_LEDGER_KEY", value_name = "FILE")]
    pub ledger_key: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check every case's hash chain: finds entries changed, removed or reordered; with the
    /// ledger key, entries rewritten with a recomputed chain; with checkpoints, cases deleted,
    /// entries removed from a case's end and heads rewritten since each checkpoint.
    Verify {
        #[command(flatten)]
        db: Database,
        #[command(flatten)]
        key: KeyArg,
        /// Folder of signed checkpoints (`yimen ledger checkpoint`, or `yimen serve
        /// --checkpoints`) to compare the database with.
        #[arg(long, env = "YIMEN_CHECKPOINTS", value_name = "DIR")]
        checkpoints: Option<PathBuf>,
        /// Public key file the checkpoints are verified with (`FILE.pub` of the key file; one
        /// key a line). Default: the `.pub` beside `--ledger-key`.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
    /// Make a ledger key file (FILE, readable by its owner only) and its public key
    /// (FILE.pub). Keep FILE outside the database and its backups; give it to `yimen serve
    /// --ledger-key`.
    Keygen {
        /// Where to write the key file.
        file: PathBuf,
        /// Add a new chain key and a new signing key to an existing key file (the old chain
        /// keys still verify what they wrote; the old public key stays in FILE.pub).
        #[arg(long)]
        rotate: bool,
    },
    /// Write a signed checkpoint of every case's entry count and head to a folder.
    Checkpoint {
        #[command(flatten)]
        db: Database,
        #[command(flatten)]
        key: KeyArg,
        /// Folder the checkpoint is written to (created if missing).
        #[arg(long, env = "YIMEN_CHECKPOINTS", value_name = "DIR")]
        checkpoints: PathBuf,
    },
    /// Print the ledger entries written from FROM to TO, both included, as CSV or JSON (the
    /// same range as `GET /api/v1/ledger?from=FROM&to=TO`).
    Export {
        /// First day (YYYY-MM-DD, in the calendar's zone: Asia/Shanghai) or an RFC 3339 time.
        from: String,
        /// Last day (YYYY-MM-DD: the whole day is included) or an RFC 3339 time.
        to: String,
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

async fn open(db: &Database) -> anyhow::Result<Engine> {
    if let Some(path) = db.database.strip_prefix("sqlite:")
        && !path.starts_with(':')
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        bail!(
            "no database at {path}; give the one `yimen serve` uses with --database or YIMEN_DATABASE"
        );
    }
    Engine::open(&db.database, Arc::new(SystemClock), Arc::new(WeekdaysOnly))
        .await
        .with_context(|| format!("cannot open {}", db.database))
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            Command::Verify {
                db,
                key,
                checkpoints,
                public_key,
            } => verify(&db, &key, checkpoints.as_deref(), public_key).await,
            Command::Keygen { file, rotate } => keygen(&file, rotate),
            Command::Checkpoint {
                db,
                key,
                checkpoints,
            } => checkpoint(&db, key, &checkpoints).await,
            Command::Export {
                from,
                to,
                format,
                db,
            } => export(&db, &from, &to, format).await,
        }
    })
}

/// `yimen ledger verify`: exit status 0 when intact, [`TAMPERED`] with the problems listed.
async fn verify(
    db: &Database,
    key: &KeyArg,
    checkpoints: Option<&Path>,
    public_key: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let keys = key.ledger_key.as_deref().map(read_keys).transpose()?;
    let checkpoints = match checkpoints {
        None => None,
        Some(dir) => {
            let public = public_key_file(key, public_key)?;
            let public = ledger_keys::read_public_keys(&public).map_err(anyhow::Error::msg)?;
            Some((signed_checkpoints(dir)?, public))
        }
    };
    let engine = open(db).await?;
    let report = engine
        .ledger_verify_with(
            keys.as_ref(),
            checkpoints
                .as_ref()
                .map(|(l, p)| (l.as_slice(), p.as_slice())),
        )
        .await?;
    notes(&report);
    if report.ok() {
        println!(
            "ledger intact: {} cases, {} entries",
            report.instances, report.entries
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &report.problems {
            println!("{p}");
        }
        eprintln!(
            "ledger TAMPERED: {} problem(s) in {} cases; restore the database from a backup and investigate",
            report.problems.len(),
            report.instances
        );
        Ok(ExitCode::from(TAMPERED))
    }
}

/// The public key file checkpoints are verified with: `--public-key`, else the `.pub` beside
/// `--ledger-key`.
fn public_key_file(key: &KeyArg, public_key: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    public_key
        .or_else(|| key.ledger_key.as_deref().map(ledger_keys::public_path))
        .context("--checkpoints needs the public key they were signed with: give --public-key FILE (the .pub of the key file)")
}

/// The checkpoints in `dir`; at least one.
fn signed_checkpoints(dir: &Path) -> anyhow::Result<Vec<(PathBuf, ledger_keys::Checkpoint)>> {
    let list = ledger_keys::read_checkpoints(dir).map_err(anyhow::Error::msg)?;
    if list.is_empty() {
        bail!("no checkpoint (*.json) in {}", dir.display());
    }
    Ok(list)
}

/// `yimen ledger keygen`: a new key file, or new keys added to one (`--rotate`).
fn keygen(file: &Path, rotate: bool) -> anyhow::Result<ExitCode> {
    let keys = if rotate {
        read_keys(file)?.rotated()
    } else {
        if file.exists() {
            bail!(
                "{} exists: give --rotate to add new keys to it (a new key file would leave the entries of the old one unverifiable)",
                file.display()
            );
        }
        ledger_keys::LedgerKeys::generate(chrono::Utc::now())
    };
    let public = keys
        .write(file)
        .with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "ledger key {} (chain key {}) written to {}; public key to {}",
        if rotate { "rotated" } else { "made" },
        keys.chain_key().id,
        file.display(),
        public.display()
    );
    println!(
        "keep {} outside the database and its backups; start the server with --ledger-key {} (or YIMEN_LEDGER_KEY)",
        file.display(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `yimen ledger checkpoint`: a signed checkpoint written to the folder.
async fn checkpoint(db: &Database, key: KeyArg, checkpoints: &Path) -> anyhow::Result<ExitCode> {
    let path = key.ledger_key.context(
        "a checkpoint is signed with the ledger key: give --ledger-key FILE (or YIMEN_LEDGER_KEY)",
    )?;
    let keys = read_keys(&path)?;
    let engine = open(db).await?;
    engine.set_ledger_keys(keys)?;
    let cp = engine.ledger_checkpoint().await?;
    let written = cp
        .write(checkpoints)
        .with_context(|| format!("cannot write to {}", checkpoints.display()))?;
    println!(
        "checkpoint of {} cases written to {}",
        cp.count,
        written.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `yimen ledger export`: the entries of the range, as CSV or JSON.
async fn export(db: &Database, from: &str, to: &str, format: Format) -> anyhow::Result<ExitCode> {
    let engine = open(db).await?;
    let (from, to) = yimen_engine::ledger::range(Some(from), Some(to), engine.time_zone())
        .map_err(anyhow::Error::msg)?;
    let entries = engine.ledger_export(from, to).await?;
    match format {
        Format::Csv => print!("{}", yimen_engine::ledger::to_csv(&entries)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_keys(path: &Path) -> anyhow::Result<ledger_keys::LedgerKeys> {
    ledger_keys::LedgerKeys::read(path).map_err(anyhow::Error::msg)
}

/// What the verification could not check, on stderr.
fn notes(report: &yimen_engine::ledger::LedgerReport) {
    if report.unkeyed > 0 {
        eprintln!(
            "note: {} entries are unkeyed (written before a ledger key was set, or by a server without one): a rewrite of them with a recomputed chain is found only by a checkpoint",
            report.unkeyed
        );
    }
    if report.keyed_unchecked > 0 {
        eprintln!(
            "note: {} keyed entries were checked for their links, not their HMAC: give --ledger-key FILE",
            report.keyed_unchecked
        );
    }
    if report.checkpoints == 0 {
        eprintln!(
            "note: no checkpoints compared: a deleted case or entries removed from a case's end are not found (--checkpoints DIR --public-key FILE)"
        );
    } else {
        eprintln!("{} checkpoint(s) compared", report.checkpoints);
    }
}
