//! `yimen ledger verify|export`: the electronic ledger (台账) straight from the database.

use anyhow::{Context, bail};
use std::process::ExitCode;
use std::sync::Arc;
use yimen_engine::clock::SystemClock;
use yimen_engine::{Engine, WeekdaysOnly};

/// Exit status when the ledger was tampered with.
const TAMPERED: u8 = 3;

#[derive(clap::Args)]
pub struct Database {
    /// Database URL: `sqlite:yimen.db` or `postgres://user@host/db`.
    #[arg(long, env = "YIMEN_DATABASE", default_value = "sqlite:yimen.db")]
    database: String,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check every case's hash chain: finds entries changed, removed or reordered.
    Verify {
        #[command(flatten)]
        db: Database,
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
            Command::Verify { db } => {
                let engine = open(&db).await?;
                let report = engine.ledger_verify().await?;
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
            Command::Export {
                from,
                to,
                format,
                db,
            } => {
                let engine = open(&db).await?;
                let (from, to) =
                    yimen_engine::ledger::range(Some(&from), Some(&to), engine.time_zone())
                        .map_err(anyhow::Error::msg)?;
                let entries = engine.ledger_export(from, to).await?;
                match format {
                    Format::Csv => print!("{}", yimen_engine::ledger::to_csv(&entries)),
                    Format::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
