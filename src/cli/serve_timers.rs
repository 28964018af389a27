//! The timer side of `yimen serve`: the simulated clock (`--clock`), report jobs
//! (`--reports`), webhook signing, and starting the background services (timer loop, outbox
//! delivery, reports). Kept apart from `serve.rs` so the two change independently.

use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use yimen_engine::Engine;
use yimen_engine::calendar::Calendars;
use yimen_engine::clock::{Clock, ManualClock, SystemClock};
use yimen_engine::reports::{Reports, Schedule};
use yimen_engine::scheduler::{ServiceOptions, Services};

#[derive(clap::Args, Debug, Clone)]
pub struct TimerArgs {
    /// Run on a simulated clock starting at this instant (RFC 3339, e.g.
    /// 2026-09-28T09:00:00+08:00); time then moves only by `POST /api/v1/clock/advance`.
    #[arg(long, value_name = "TIME")]
    pub clock: Option<String>,
    /// Report jobs (YAML with crontab lines in Asia/Shanghai time); none when absent.
    #[arg(long, value_name = "FILE")]
    pub reports: Option<PathBuf>,
    /// Folder the report CSV files are written to.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub reports_dir: PathBuf,
    /// Folder of the working-day calendars (reports count working days with them).
    #[arg(long, value_name = "DIR", default_value = "calendars")]
    pub calendars: PathBuf,
    /// Key for the HMAC-SHA256 signature of outgoing webhooks (header X-Yimen-Signature).
    #[arg(
        long,
        env = "YIMEN_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub webhook_secret: String,
}

/// The clock the engine runs on: the wall clock, or a simulated one from `--clock`.
pub fn clock(args: &TimerArgs) -> anyhow::Result<(Arc<dyn Clock>, Option<ManualClock>)> {
    match &args.clock {
        None => Ok((Arc::new(SystemClock), None)),
        Some(text) => {
            let start: DateTime<Utc> = DateTime::parse_from_rfc3339(text)
                .with_context(|| {
                    format!(
                        "--clock {text}: give an RFC 3339 instant such as 2026-09-28T09:00:00+08:00"
                    )
                })?
                .with_timezone(&Utc);
            let manual = ManualClock::new(start);
            Ok((Arc::new(manual.clone()), Some(manual)))
        }
    }
}

/// Starts the timer loop, outbox delivery and (with `--reports`) the report jobs.
pub fn start(
    engine: &Engine,
    args: &TimerArgs,
    manual: Option<ManualClock>,
) -> anyhow::Result<Services> {
    let reports = match &args.reports {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the report jobs {}", file.display()))?;
            let schedule = Schedule::parse(&text, &file.display().to_string())
                .map_err(|problems| anyhow::anyhow!("{}", problems.join("\n")))?;
            let calendars = Calendars::load_dir(&args.calendars).with_context(|| {
                format!(
                    "reports need the calendars; cannot load {}",
                    args.calendars.display()
                )
            })?;
            let server = format!("pid-{}", std::process::id());
            Some(Reports::new(
                engine.clone(),
                schedule,
                Arc::new(calendars),
                args.reports_dir.clone(),
                server,
            ))
        }
    };
    if args.webhook_secret.is_empty() {
        tracing::warn!("webhooks are signed with an empty key: set YIMEN_WEBHOOK_SECRET");
    }
    if let Some(m) = &manual {
        eprintln!(
            "simulated clock at {}: move it with POST /api/v1/clock/advance",
            m.now().to_rfc3339()
        );
    }
    Services::start(
        engine.clone(),
        manual,
        reports,
        ServiceOptions {
            webhook_secret: args.webhook_secret.clone().into_bytes(),
            ..ServiceOptions::default()
        },
    )
    .map_err(|e| anyhow::anyhow!(e))
}
