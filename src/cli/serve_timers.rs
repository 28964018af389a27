//! The timer side of `yimen serve`: the simulated clock (`--clock`), report jobs
//! (`--reports`), webhook signing, and starting the background services (timer loop, outbox
//! delivery, reports). Kept apart from `serve.rs` so the two change independently.

use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use yimen_engine::calendar::Calendars;
use yimen_engine::clock::{Clock, ManualClock, SystemClock};
use yimen_engine::reports::{Reports, Schedule};
use yimen_engine::scheduler::{ServiceOptions, Services};
use yimen_engine::{DueDates, Engine, ReloadingCalendars};

#[derive(clap::Args, Debug, Clone)]
pub struct TimerArgs {
    /// Run on a simulated clock starting at this instant (RFC 3339, e.g.
    /// 2026-09-28T09:00:00+08:00); time then moves only by `POST /api/v1/clock/advance`.
    #[arg(long, env = "YIMEN_CLOCK", value_name = "TIME")]
    pub clock: Option<String>,
    /// Report jobs (YAML with crontab lines in Asia/Shanghai time); none when absent.
    #[arg(long, env = "YIMEN_REPORTS", value_name = "FILE")]
    pub reports: Option<PathBuf>,
    /// Folder the report CSV files are written to.
    #[arg(
        long,
        env = "YIMEN_REPORTS_DIR",
        value_name = "DIR",
        default_value = "reports"
    )]
    pub reports_dir: PathBuf,
    /// Key for the HMAC-SHA256 signature of outgoing webhooks (header X-Yimen-Signature).
    #[arg(
        long,
        env = "YIMEN_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub webhook_secret: String,
    /// Seconds between checks of the calendars folder for changed files (a year added): on a
    /// change the new calendars are used and provisional deadlines recomputed. 0: never.
    #[arg(
        long,
        env = "YIMEN_CALENDARS_CHECK",
        value_name = "SECONDS",
        default_value_t = 30
    )]
    pub calendars_check: u64,
}

/// The engine's due dates, and the same calendars to reload.
pub type ServeDueDates = (Arc<dyn DueDates>, Option<Arc<ReloadingCalendars>>);

/// The due dates of `serve`: the calendars of `dir`, with the ones built into the binary for
/// the names the folder has no file of, behind a [`ReloadingCalendars`] (checked again while
/// serving). Prints one line naming them and where they come from.
pub fn due_dates(dir: &std::path::Path) -> anyhow::Result<ServeDueDates> {
    let calendars = ReloadingCalendars::load_with_builtin(dir, super::builtin::CALENDARS)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot load the calendars in {}", dir.display()))?;
    let names = DueDates::calendar_names(&calendars).unwrap_or_default();
    super::serve::say(format_args!(
        "{}",
        super::serve::calendars_line(dir, &names)
    ));
    let calendars = Arc::new(calendars);
    Ok((calendars.clone(), Some(calendars)))
}

/// The background check of the calendars folder; stop it with [`CalendarWatch::stop`].
pub struct CalendarWatch {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CalendarWatch {
    /// Starts checking `calendars` every `--calendars-check` seconds (none for 0 or without a
    /// calendars folder).
    pub fn start(
        engine: &Engine,
        args: &TimerArgs,
        calendars: Option<Arc<ReloadingCalendars>>,
    ) -> Option<CalendarWatch> {
        let calendars = calendars?;
        if args.calendars_check == 0 {
            return None;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(yimen_engine::recompute::watch_calendars(
            engine.clone(),
            calendars,
            std::time::Duration::from_secs(args.calendars_check),
            stopped,
        ));
        Some(CalendarWatch { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
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

/// Recomputes provisional deadlines with the calendars as loaded now (a year may have been
/// added while the server was down), then starts the timer loop, outbox delivery and (with
/// `--reports`) the report jobs.
pub async fn start(
    engine: &Engine,
    args: &TimerArgs,
    calendars_dir: &std::path::Path,
    manual: Option<ManualClock>,
    due: &dyn yimen_engine::DueDates,
) -> anyhow::Result<Services> {
    let recomputed = engine
        .recompute_provisional(due)
        .await
        .context("cannot recompute provisional deadlines")?;
    if recomputed.examined > 0 {
        super::serve::say(format_args!(
            "provisional deadlines: {} examined, {} moved, {} now on full calendar data, {} left as computed",
            recomputed.examined, recomputed.moved, recomputed.settled, recomputed.skipped
        ));
    }
    let reports = match &args.reports {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the report jobs {}", file.display()))?;
            let schedule = Schedule::parse(&text, &file.display().to_string())
                .map_err(|problems| anyhow::anyhow!("{}", problems.join("\n")))?;
            let calendars =
                Calendars::load_dir_or_builtin(calendars_dir, super::builtin::CALENDARS)
                    .with_context(|| {
                        format!(
                            "reports need the calendars; cannot load {}",
                            calendars_dir.display()
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
        super::serve::say(format_args!(
            "simulated clock at {}: move it with POST /api/v1/clock/advance",
            m.now().to_rfc3339()
        ));
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
