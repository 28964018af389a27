//! Running report jobs against the database: taking a run (once across servers), reading the
//! facts, writing the CSV file and recording the run.

use super::{
    CaseFacts, Csv, Facts, Job, OpenEscalation, ReportKind, Schedule, TaskFacts,
    monthly_statistics, overdue_digest,
};
use crate::calendar::{Calendar, Calendars};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::store::timers::{self as sql, InboxRow, RunEnd, RunRow};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A recorded run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportRun {
    pub job: String,
    pub scheduled_at: DateTime<Utc>,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub server: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub rows: Option<i64>,
    /// Path of the CSV file written by the server that ran it.
    pub file: Option<String>,
    pub error: Option<String>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl From<RunRow> for ReportRun {
    fn from(r: RunRow) -> Self {
        ReportRun {
            job: r.job,
            scheduled_at: time(r.scheduled_at),
            state: r.state,
            server: r.server,
            started_at: time(r.started_at),
            finished_at: r.finished_at.map(time),
            rows: r.rows,
            file: r.file,
            error: r.error,
        }
    }
}

/// Why a report run failed: the run's recorded error text.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The job's calendar is not loaded, or reading the facts failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot write the workbook: {0}")]
    Xlsx(String),
    #[error("cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the jobs of a [`Schedule`] for one server.
#[derive(Debug, Clone)]
pub struct Reports {
    engine: Engine,
    schedule: Arc<Schedule>,
    calendars: Arc<Calendars>,
    out_dir: PathBuf,
    server: String,
}

/// A run left `running` longer than this by a stopped server is taken over.
const STALE_RUN: i64 = 30;

impl Reports {
    /// `server` names this server in the run records (host name and process id will do).
    pub fn new(
        engine: Engine,
        schedule: Schedule,
        calendars: Arc<Calendars>,
        out_dir: PathBuf,
        server: String,
    ) -> Self {
        Reports {
            engine,
            schedule: Arc::new(schedule),
            calendars,
            out_dir,
            server,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn calendar(&self, job: &Job) -> Result<&Calendar, EngineError> {
        let name = job.spec.calendar.as_deref().unwrap_or("cn_mainland");
        self.calendars.get(name).ok_or_else(|| {
            EngineError::invalid(
                "calendar",
                format!(
                    "report job `{}` names calendar `{name}`, which is not loaded",
                    job.spec.name
                ),
            )
        })
    }

    /// Runs every job whose latest scheduled time (at or before `now`) has not been run by any
    /// server. The first time a job is seen, its schedule starts now (nothing is back-filled).
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<Vec<ReportRun>, EngineError> {
        let pool = self.engine.pool();
        let mut ran = Vec::new();
        for job in self.schedule.jobs() {
            let Some(due) = self.schedule.latest_due(job, now) else {
                continue;
            };
            let name = &job.spec.name;
            let at = due.timestamp_millis();
            let real_now = now.timestamp_millis();
            if !sql::has_runs(pool, name).await? {
                sql::claim_run(pool, name, at, "baseline", &self.server, real_now).await?;
                continue;
            }
            let mine = sql::claim_run(pool, name, at, "running", &self.server, real_now).await?
                || sql::take_over_run(
                    pool,
                    name,
                    at,
                    &self.server,
                    real_now,
                    (now - Duration::minutes(STALE_RUN)).timestamp_millis(),
                )
                .await?;
            if !mine {
                continue;
            }
            let end = self.execute(job, due, now).await;
            let error = end.as_ref().err().map(ReportError::to_string);
            let finished = self.engine.clock().now().timestamp_millis();
            let record = match &end {
                Ok((csv, file)) => RunEnd {
                    state: "done",
                    rows: Some(i64::try_from(csv.rows).unwrap_or(i64::MAX)),
                    file: Some(file.as_str()),
                    csv: Some(csv.text.as_str()),
                    error: None,
                    now: finished,
                },
                Err(_) => RunEnd {
                    state: "failed",
                    rows: None,
                    file: None,
                    csv: None,
                    error: error.as_deref(),
                    now: finished,
                },
            };
            sql::finish_run(pool, name, at, &record).await?;
            match &end {
                Ok((csv, _)) => {
                    if let Some(role) = &job.spec.notify {
                        self.tell(role, name, due, csv.rows).await?;
                    }
                }
                Err(e) => tracing::warn!(job = %name, "report failed: {e}"),
            }
            if let Some((row, _)) = sql::run(pool, name, at).await? {
                ran.push(row.into());
            }
        }
        Ok(ran)
    }

    /// Computes the report and writes its CSV file; `Err` is the run's error text.
    async fn execute(
        &self,
        job: &Job,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(Csv, String), ReportError> {
        let calendar = self.calendar(job)?;
        let (from, to) = self.schedule.previous_month(due);
        let local = due.with_timezone(&self.schedule.time_zone());
        let dir = self.out_dir.join(&job.spec.name);
        let file = dir.join(format!(
            "{}_{}.csv",
            job.spec.name,
            local.format("%Y%m%d_%H%M")
        ));
        let csv = match job.spec.report {
            ReportKind::OverdueDigest => overdue_digest(&self.facts(now).await?, now, calendar),
            ReportKind::MonthlyStatistics => {
                let facts = self.facts(from).await?;
                monthly_statistics(&facts, &job.spec, from, to, calendar)
            }
            ReportKind::Statistics => self.statistics(job, (from, to), &file).await?,
        };
        if let Err(source) = write_atomically(&dir, &file, csv.text.as_bytes()).await {
            return Err(ReportError::Write { file, source });
        }
        Ok((csv, file.display().to_string()))
    }

    /// The statistics of the month `[from, to)`: the workbooks of the tables and of the
    /// register (masked) beside `csv_file` ([`workbook_files`]), the CSV of the tables returned.
    async fn statistics(
        &self,
        job: &Job,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        csv_file: &Path,
    ) -> Result<Csv, ReportError> {
        let tz = self.engine.time_zone();
        let q = crate::engine::StatisticsQuery {
            process: job.spec.process.clone().unwrap_or_default(),
            from: from.with_timezone(&tz).date_naive(),
            to: (to - Duration::days(1)).with_timezone(&tz).date_naive(),
            units: None,
        };
        let tables = self.engine.statistics(&q).await?;
        let register = self
            .engine
            .register(&q, crate::engine::RegisterReader::Masked)
            .await?;
        let xlsx = |r: Result<Vec<u8>, rust_xlsxwriter::XlsxError>| {
            r.map_err(|e| ReportError::Xlsx(e.to_string()))
        };
        let (book, reg) = workbook_files(csv_file);
        let dir = csv_file.parent().unwrap_or(Path::new("."));
        for (file, bytes) in [
            (book, xlsx(crate::statistics::xlsx::tables(&tables))?),
            (reg, xlsx(crate::statistics::xlsx::register(&register))?),
        ] {
            if let Err(source) = write_atomically(dir, &file, &bytes).await {
                return Err(ReportError::Write { file, source });
            }
        }
        Ok(Csv {
            text: tables.csv(None),
            rows: tables.tables.iter().map(|t| t.rows.len()).sum(),
        })
    }

    /// The folder the report files are written to.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    async fn facts(&self, since: DateTime<Utc>) -> Result<Facts, EngineError> {
        let pool = self.engine.pool();
        let since = since.timestamp_millis();
        let cases = sql::report_cases(pool, since)
            .await?
            .into_iter()
            .map(|c| CaseFacts {
                clocks: running_clocks(&c.state),
                vars: serde_json::from_str(&c.vars).unwrap_or_default(),
                id: c.id,
                process: c.process_key,
                business_key: c.business_key,
                status: c.status,
                result: c.result,
                created_at: time(c.created_at),
                ended_at: c.ended_at.map(time),
            })
            .collect();
        let tasks = sql::report_tasks(pool, since)
            .await?
            .into_iter()
            .map(|t| TaskFacts {
                id: t.id,
                instance_id: t.instance_id,
                node: t.node,
                label: t.label,
                queue: t.queue,
                org_unit: t.org_unit,
                state: t.state,
                outcome: t.outcome,
                created_at: time(t.created_at),
                completed_at: t.completed_at.map(time),
                due_at: t.due_at.map(time),
            })
            .collect();
        let escalations = crate::inbox::open_escalations(&self.engine)
            .await?
            .into_iter()
            .map(|e| OpenEscalation {
                instance_id: e.instance_id,
                task_id: e.task_id,
                clock: e.clock,
                level: e.level.unwrap_or(0),
            })
            .collect();
        Ok(Facts {
            cases,
            tasks,
            escalations,
        })
    }

    /// Puts "report ready" in the inbox of `role` (one item per run).
    async fn tell(
        &self,
        role: &str,
        job: &str,
        due: DateTime<Utc>,
        rows: usize,
    ) -> Result<(), EngineError> {
        let at = due.timestamp_millis();
        let local = due.with_timezone(&self.schedule.time_zone());
        let row = InboxRow {
            id: format!("report:{job}:{at}"),
            recipient: role.to_string(),
            instance_id: String::new(),
            node: None,
            task_id: None,
            clock: None,
            level: None,
            message: format!(
                "report {job} of {} is ready ({rows} rows): GET /api/v1/reports/{job}/runs/{at}/csv",
                crate::clock::readable(&local)
            ),
            state: "open".into(),
            created_at: self.engine.clock().now().timestamp_millis(),
            acked_by: None,
            acked_by_id: None,
            acked_at: None,
            closed_at: None,
        };
        sql::insert_inbox(self.engine.pool(), &row).await?;
        Ok(())
    }

    /// Recorded runs, newest first.
    pub async fn runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<ReportRun>, EngineError> {
        if let Some(job) = job
            && self.schedule.job(job).is_none()
        {
            return Err(EngineError::not_found(format!("report job {job}")));
        }
        let rows = sql::list_runs(self.engine.pool(), job, i64::from(limit.clamp(1, 1000))).await?;
        Ok(rows.into_iter().map(ReportRun::from).collect())
    }

    /// The CSV of one run (`scheduled` in unix millis, as listed).
    pub async fn csv(&self, job: &str, scheduled: i64) -> Result<String, EngineError> {
        match sql::run(self.engine.pool(), job, scheduled).await? {
            Some((row, Some(csv))) if row.state == "done" => Ok(csv),
            Some((row, _)) => Err(EngineError::conflict(format!(
                "run {job} at {scheduled} is {}: no CSV",
                row.state
            ))),
            None => Err(EngineError::not_found(format!("run {job} at {scheduled}"))),
        }
    }

    /// Runs due jobs until `shutdown`, sleeping until the next scheduled time (capped at a
    /// minute, so a clock change or a simulated clock is noticed).
    pub async fn run_loop(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = self.engine.clock().now();
            if let Err(e) = self.run_due(now).await {
                tracing::warn!("reports: {e}");
            }
            let wait = self
                .schedule
                .next_any(now)
                .and_then(|next| (next - self.engine.clock().now()).to_std().ok())
                .unwrap_or(std::time::Duration::ZERO)
                .clamp(
                    std::time::Duration::from_millis(200),
                    std::time::Duration::from_secs(60),
                );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Running clocks of a stored run state, with their due time.
fn running_clocks(state: &str) -> Vec<(String, DateTime<Utc>)> {
    let Ok(state) = serde_json::from_str::<serde_json::Value>(state) else {
        return Vec::new();
    };
    let Some(clocks) = state.get("clocks").and_then(|c| c.as_object()) else {
        return Vec::new();
    };
    clocks
        .iter()
        .filter(|(_, c)| c.get("running").and_then(|r| r.as_bool()) == Some(true))
        .filter_map(|(name, c)| {
            let due = c.get("due_at")?.as_i64()?;
            Some((name.clone(), time(due)))
        })
        .collect()
}

/// The workbooks a statistics run writes beside its CSV file: the tables
/// (`<job>_<time>.xlsx`) and the register (`<job>_<time>_register.xlsx`).
pub fn workbook_files(csv_file: &Path) -> (PathBuf, PathBuf) {
    let stem = csv_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        csv_file.with_file_name(format!("{stem}.xlsx")),
        csv_file.with_file_name(format!("{stem}_register.xlsx")),
    )
}

async fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, file).await
}
