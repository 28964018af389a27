//! Scheduled reports: jobs with standard crontab expressions (read with `croner`) in the
//! reports file's time zone (Asia/Shanghai unless set), written as CSV and kept with each run.
//!
//! Two reports exist, both generic (the file names the variables to group by):
//! - `overdue_digest`: every open task past its due time, oldest first, with the open
//!   escalation level — an oversight office's daily list.
//! - `monthly_statistics`: for the previous calendar month, per organisation unit (the value of
//!   an instance variable such as `district`) and per department (the key of a keyed role such as
//!   `department`), cases by category and result, median and 90th-percentile handling time in
//!   working days, share on time and open escalations.
//!
//! A run is identified by `(job, scheduled time)`: the server that inserts that row runs it,
//! so with several servers each run happens once. The due run of a job is the latest scheduled
//! time not after now; one missed while the server was down is therefore run once at start
//! (older missed runs are not replayed: a report describes the present).

use crate::calendar::Calendar;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// The reports file as written (`reports.yaml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportsFile {
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    jobs: Vec<JobSpec>,
}

/// One job of the reports file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique name: `[a-z0-9_]+`. Runs and files are named after it.
    pub name: String,
    /// Standard five-field crontab line (minute hour day month weekday), local time.
    pub cron: String,
    pub report: ReportKind,
    /// Process key whose instances are counted (all processes when absent).
    #[serde(default)]
    pub process: Option<String>,
    /// Instance variable naming the organisation unit (`district`).
    #[serde(default)]
    pub unit_var: Option<String>,
    /// Instance variable naming the case category (`category`).
    #[serde(default)]
    pub category_var: Option<String>,
    /// Keyed role whose queues are the departments (`department` for `department:civil_affairs`).
    #[serde(default)]
    pub department_role: Option<String>,
    /// Calendar for working days (`cn_mainland` when absent).
    #[serde(default)]
    pub calendar: Option<String>,
    /// Inbox role told when a run is ready (`audit_office`).
    #[serde(default)]
    pub notify: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    OverdueDigest,
    MonthlyStatistics,
    /// The statistics page's tables and register of the previous month (`crate::statistics`),
    /// as XLSX files beside the CSV of the tables.
    Statistics,
}

/// A job with its parsed schedule.
#[derive(Debug, Clone)]
pub struct Job {
    pub spec: JobSpec,
    cron: Cron,
}

/// Every job of a reports file, with the time zone their cron lines are read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    jobs: Vec<Job>,
}

impl Schedule {
    /// Reads a reports file. Every problem at once, each naming the job and what to fix.
    pub fn parse(text: &str, file: &str) -> Result<Schedule, Vec<String>> {
        let parsed: ReportsFile =
            serde_saphyr::from_str(text).map_err(|e| vec![format!("{file}: {e}")])?;
        let mut problems = Vec::new();
        let tz_name = parsed.time_zone.as_deref().unwrap_or("Asia/Shanghai");
        let tz = Tz::from_str(tz_name).unwrap_or_else(|_| {
            problems.push(format!(
                "{file}: unknown time zone `{tz_name}`: use an IANA name such as Asia/Shanghai"
            ));
            chrono_tz::Asia::Shanghai
        });
        let mut jobs: Vec<Job> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for spec in parsed.jobs {
            let name = &spec.name;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problems.push(format!(
                    "{file}: job name `{name}` must be lower-case letters, digits and _"
                ));
            }
            if !names.insert(name.clone()) {
                problems.push(format!("{file}: job `{name}` is defined twice; rename one"));
            }
            if spec.cron.split_whitespace().count() != 5 {
                problems.push(format!(
                    "{file}: job `{name}`: cron `{}` must have five fields: minute hour day month weekday (e.g. \"0 8 * * *\")",
                    spec.cron
                ));
                continue;
            }
            let cron = match Cron::from_str(&spec.cron) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{file}: job `{name}`: cron `{}`: {e}", spec.cron));
                    continue;
                }
            };
            if spec.report == ReportKind::MonthlyStatistics
                && spec.unit_var.is_none()
                && spec.department_role.is_none()
            {
                problems.push(format!(
                    "{file}: job `{name}`: a monthly_statistics job needs unit_var (e.g. district) or department_role (e.g. department)"
                ));
            }
            if spec.report == ReportKind::Statistics && spec.process.is_none() {
                problems.push(format!(
                    "{file}: job `{name}`: a statistics job needs process (e.g. social_assistance), whose configuration declares `statistics`"
                ));
            }
            jobs.push(Job { spec, cron });
        }
        if problems.is_empty() {
            Ok(Schedule { tz, jobs })
        } else {
            Err(problems)
        }
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.spec.name == name)
    }

    /// The latest scheduled time of `job` not after `now` (the run that is due now).
    pub fn latest_due(&self, job: &Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        job.cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first scheduled time of `job` after `now`.
    pub fn next_after(&self, job: &Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        job.cron
            .find_next_occurrence(&now.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first scheduled time of any job after `now` (when the report loop wakes next).
    pub fn next_any(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.jobs
            .iter()
            .filter_map(|j| self.next_after(j, now))
            .min()
    }

    /// The calendar month before the local month of `at`: `[start, end)` as instants.
    pub fn previous_month(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let local = at.with_timezone(&self.tz).date_naive();
        let this_month = NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local);
        let prev = this_month
            .pred_opt()
            .and_then(|d| NaiveDate::from_ymd_opt(d.year(), d.month(), 1))
            .unwrap_or(this_month);
        (self.midnight(prev), self.midnight(this_month))
    }

    fn midnight(&self, d: NaiveDate) -> DateTime<Utc> {
        self.tz
            .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .earliest()
            .map_or_else(
                || d.and_time(chrono::NaiveTime::MIN).and_utc(),
                |t| t.with_timezone(&Utc),
            )
    }
}

/// An instance as the reports see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFacts {
    pub id: String,
    pub process: String,
    pub business_key: Option<String>,
    pub status: String,
    pub result: Option<String>,
    pub vars: Map<String, Json>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Running named clocks with their due time.
    pub clocks: Vec<(String, DateTime<Utc>)>,
}

/// A task as the reports see it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFacts {
    pub id: String,
    pub instance_id: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    pub org_unit: Option<String>,
    pub state: String,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
}

/// An open escalation (an unacknowledged, unclosed inbox item of level ≥ 1).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEscalation {
    pub instance_id: String,
    pub task_id: Option<String>,
    /// The clock of a clock escalation.
    pub clock: Option<String>,
    pub level: i64,
}

/// The data one report run reads.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub cases: Vec<CaseFacts>,
    pub tasks: Vec<TaskFacts>,
    pub escalations: Vec<OpenEscalation>,
}

/// A report's CSV text and its number of data rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Csv {
    pub text: String,
    pub rows: usize,
}

fn csv_line(fields: &[String]) -> String {
    crate::csv::line(fields)
}

fn text_of(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Working days between two instants' local dates on `calendar`; a year without data is
/// counted with weekends only (the figure is then approximate, never missing).
fn working_days(calendar: &Calendar, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    let tz = calendar.time_zone();
    let (da, db) = (
        a.with_timezone(&tz).date_naive(),
        b.with_timezone(&tz).date_naive(),
    );
    calendar.between(da, db).unwrap_or_else(|_| {
        da.iter_days()
            .skip(1)
            .take_while(|d| *d <= db)
            .filter(|d| d.weekday().number_from_monday() <= 5)
            .count() as i64
    })
}

/// Median (mean of the two middle values for an even count) of sorted values.
pub fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0
    })
}

/// 90th percentile by the nearest-rank method (the smallest value with ≥ 90 % at or below it).
pub fn p90(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (9 * n).div_ceil(10).max(1);
    Some(sorted[rank - 1])
}

fn fmt_opt_f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_default()
}

/// One digest row: due, instance, task (or `clock:<name>`), label, queue, org unit, level.
type LateRow = (
    DateTime<Utc>,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
);

/// The daily overdue digest: open tasks and running clocks past due at `now`, oldest due first.
/// A clock's row names `clock:<name>` and the queues of the case's open tasks (who holds it).
/// Due times are shown in the calendar's zone ([`crate::clock::readable`]).
pub fn overdue_digest(facts: &Facts, now: DateTime<Utc>, calendar: &Calendar) -> Csv {
    let tz = calendar.time_zone();
    let cases: HashMap<&str, &CaseFacts> = facts.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut level_by_task: HashMap<&str, i64> = HashMap::new();
    let mut level_by_clock: HashMap<(&str, &str), i64> = HashMap::new();
    for e in &facts.escalations {
        let slot = match (&e.task_id, &e.clock) {
            (Some(t), _) => level_by_task.entry(t.as_str()).or_insert(0),
            (None, Some(c)) => level_by_clock
                .entry((e.instance_id.as_str(), c.as_str()))
                .or_insert(0),
            (None, None) => continue,
        };
        *slot = (*slot).max(e.level);
    }
    let open = |t: &&TaskFacts| matches!(t.state.as_str(), "open" | "claimed");
    let mut late: Vec<LateRow> = facts
        .tasks
        .iter()
        .filter(open)
        .filter_map(|t| {
            let due = t.due_at.filter(|d| *d < now)?;
            Some((
                due,
                t.instance_id.clone(),
                t.node.clone(),
                t.label.clone().unwrap_or_default(),
                t.queue.clone(),
                t.org_unit.clone().unwrap_or_default(),
                level_by_task.get(t.id.as_str()).copied(),
            ))
        })
        .collect();
    for case in &facts.cases {
        for (clock, due) in case.clocks.iter().filter(|(_, d)| *d < now) {
            let holders: Vec<&TaskFacts> = facts
                .tasks
                .iter()
                .filter(open)
                .filter(|t| t.instance_id == case.id)
                .collect();
            let join = |f: &dyn Fn(&TaskFacts) -> Option<String>| {
                let mut v: Vec<String> = holders.iter().filter_map(|t| f(t)).collect();
                v.sort();
                v.dedup();
                v.join(" ")
            };
            late.push((
                *due,
                case.id.clone(),
                format!("clock:{clock}"),
                clock.clone(),
                join(&|t| Some(t.queue.clone())),
                join(&|t| t.org_unit.clone()),
                level_by_clock
                    .get(&(case.id.as_str(), clock.as_str()))
                    .copied(),
            ));
        }
    }
    late.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    let mut text = crate::csv::header(
        &[
            "process",
            "business_key",
            "instance",
            "task",
            "label",
            "queue",
            "org_unit",
            "due",
            "working_days_overdue",
            "escalation_level",
        ]
        .map(String::from),
    );
    for (due, instance, task, label, queue, org_unit, level) in &late {
        let case = cases.get(instance.as_str());
        text.push_str(&csv_line(&[
            case.map(|c| c.process.clone()).unwrap_or_default(),
            case.and_then(|c| c.business_key.clone())
                .unwrap_or_default(),
            instance.clone(),
            task.clone(),
            label.clone(),
            queue.clone(),
            org_unit.clone(),
            crate::clock::readable(&due.with_timezone(&tz)),
            working_days(calendar, *due, now).to_string(),
            level.map(|l| l.to_string()).unwrap_or_default(),
        ]));
    }
    Csv {
        text,
        rows: late.len(),
    }
}

#[derive(Default)]
struct Bucket {
    days: Vec<i64>,
    on_time: usize,
    /// Scope `registered`: cases registered, counted without a handling time.
    registered: usize,
}

/// The monthly statistics for `[from, to)`: rows `scope,unit,category,result,cases,
/// median_working_days,p90_working_days,on_time_share,open_escalations`.
///
/// - scope `registered`: cases of the process registered (created) in the period, by the
///   instance variable `unit_var`, category and the result they had at the end of the period
///   (`open` for a case still running then); no handling time.
/// - scope `unit`: cases of the process that ended in the period, by the instance variable
///   `unit_var`, category and result; handling time from creation to end; on time when no task
///   of the case completed after its due time.
/// - scope `department`: tasks of the keyed role `department_role` completed in the period, by
///   department key, the case's category and the task's outcome; handling time from the task's
///   creation to its completion; on time when completed by its due time.
///
/// `open_escalations` counts the escalations open at `now` for the unit or department (the
/// same on every row of that unit, so it can be read from any row).
pub fn monthly_statistics(
    facts: &Facts,
    spec: &JobSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    calendar: &Calendar,
) -> Csv {
    let month = Month::new(facts, spec, from, to, calendar);
    let (esc_unit, esc_dept) = month.open_escalations();
    let mut rows = StatRows::new();
    month.ended_cases(&mut rows);
    month.registered_cases(&mut rows);
    month.department_tasks(&mut rows);
    // A unit or department with open escalations but nothing finished still shows.
    for (scope, esc) in [("unit", &esc_unit), ("department", &esc_dept)] {
        for unit in esc.keys() {
            if !rows.keys().any(|(s, u, _, _)| *s == scope && u == unit) {
                rows.insert(
                    (scope, unit.clone(), String::new(), String::new()),
                    Bucket::default(),
                );
            }
        }
    }
    statistics_csv(rows, &esc_unit, &esc_dept)
}

/// The rows of the monthly statistics: (scope, unit, category, result) → its cases.
type StatRows = BTreeMap<(&'static str, String, String, String), Bucket>;

/// The facts one job's monthly statistics count, indexed, and the period `[from, to)`.
struct Month<'a> {
    facts: &'a Facts,
    spec: &'a JobSpec,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    calendar: &'a Calendar,
    /// The cases of the job's process.
    cases: HashMap<&'a str, &'a CaseFacts>,
    tasks_by_case: HashMap<&'a str, Vec<&'a TaskFacts>>,
    tasks_by_id: HashMap<&'a str, &'a TaskFacts>,
    /// `ROLE:` of the keyed role whose keys are the departments.
    dept_prefix: Option<String>,
}

impl<'a> Month<'a> {
    fn new(
        facts: &'a Facts,
        spec: &'a JobSpec,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        calendar: &'a Calendar,
    ) -> Month<'a> {
        let in_process = |c: &CaseFacts| spec.process.as_deref().is_none_or(|p| p == c.process);
        Month {
            facts,
            spec,
            from,
            to,
            calendar,
            cases: facts
                .cases
                .iter()
                .filter(|c| in_process(c))
                .map(|c| (c.id.as_str(), c))
                .collect(),
            tasks_by_case: facts.tasks.iter().fold(HashMap::new(), |mut m, t| {
                m.entry(t.instance_id.as_str()).or_default().push(t);
                m
            }),
            tasks_by_id: facts.tasks.iter().map(|t| (t.id.as_str(), t)).collect(),
            dept_prefix: spec.department_role.as_ref().map(|r| format!("{r}:")),
        }
    }

    fn category(&self, c: &CaseFacts) -> String {
        self.spec
            .category_var
            .as_deref()
            .map(|v| text_of(c.vars.get(v)))
            .unwrap_or_default()
    }

    fn department_of(&self, t: &TaskFacts) -> Option<String> {
        let p = self.dept_prefix.as_deref()?;
        t.queue.strip_prefix(p).map(str::to_string)
    }

    /// Open escalations per unit and per department.
    fn open_escalations(&self) -> (HashMap<String, usize>, HashMap<String, usize>) {
        let mut esc_unit: HashMap<String, usize> = HashMap::new();
        let mut esc_dept: HashMap<String, usize> = HashMap::new();
        for e in self.facts.escalations.iter().filter(|e| e.level >= 1) {
            let Some(case) = self.cases.get(e.instance_id.as_str()) else {
                continue;
            };
            if let Some(v) = &self.spec.unit_var {
                *esc_unit.entry(text_of(case.vars.get(v))).or_default() += 1;
            }
            if let Some(d) = e
                .task_id
                .as_deref()
                .and_then(|t| self.tasks_by_id.get(t))
                .and_then(|t| self.department_of(t))
            {
                *esc_dept.entry(d).or_default() += 1;
            }
        }
        (esc_unit, esc_dept)
    }

    /// Scope `unit`: cases that ended in the period, with their handling time.
    fn ended_cases(&self, rows: &mut StatRows) {
        let Some(unit_var) = &self.spec.unit_var else {
            return;
        };
        for c in self.cases.values() {
            let Some(end) = c.ended_at.filter(|e| *e >= self.from && *e < self.to) else {
                continue;
            };
            let on_time = self.tasks_by_case.get(c.id.as_str()).is_none_or(|ts| {
                ts.iter().all(|t| match (t.due_at, t.completed_at) {
                    (Some(due), Some(done)) => done <= due,
                    _ => true,
                })
            });
            let b = rows
                .entry((
                    "unit",
                    text_of(c.vars.get(unit_var)),
                    self.category(c),
                    c.result.clone().unwrap_or_else(|| c.status.clone()),
                ))
                .or_default();
            b.days.push(working_days(self.calendar, c.created_at, end));
            b.on_time += usize::from(on_time);
        }
    }

    /// Scope `registered` (A2 §5, 登记、统计): registrations per unit and category, the cases
    /// still open included; the result is the case's at the end of the period (`open` while
    /// it was still running).
    fn registered_cases(&self, rows: &mut StatRows) {
        let Some(unit_var) = &self.spec.unit_var else {
            return;
        };
        for c in self
            .cases
            .values()
            .filter(|c| c.created_at >= self.from && c.created_at < self.to)
        {
            let result = match c.ended_at {
                Some(end) if end < self.to => c.result.clone().unwrap_or_else(|| c.status.clone()),
                _ => "open".to_string(),
            };
            rows.entry((
                "registered",
                text_of(c.vars.get(unit_var)),
                self.category(c),
                result,
            ))
            .or_default()
            .registered += 1;
        }
    }

    /// Scope `department`: tasks of the departments completed in the period.
    fn department_tasks(&self, rows: &mut StatRows) {
        if self.dept_prefix.is_none() {
            return;
        }
        for t in &self.facts.tasks {
            let Some(done) = t.completed_at.filter(|d| *d >= self.from && *d < self.to) else {
                continue;
            };
            let (Some(dept), Some(case)) = (
                self.department_of(t),
                self.cases.get(t.instance_id.as_str()),
            ) else {
                continue;
            };
            let b = rows
                .entry((
                    "department",
                    dept,
                    self.category(case),
                    t.outcome.clone().unwrap_or_default(),
                ))
                .or_default();
            b.days.push(working_days(self.calendar, t.created_at, done));
            b.on_time += usize::from(t.due_at.is_none_or(|due| done <= due));
        }
    }
}

/// The CSV of the monthly statistics' rows, with the open escalations of each unit and
/// department.
fn statistics_csv(
    rows: StatRows,
    esc_unit: &HashMap<String, usize>,
    esc_dept: &HashMap<String, usize>,
) -> Csv {
    let mut text = crate::csv::header(
        &[
            "scope",
            "unit",
            "category",
            "result",
            "cases",
            "median_working_days",
            "p90_working_days",
            "on_time_share",
            "open_escalations",
        ]
        .map(String::from),
    );
    let count = rows.len();
    for ((scope, unit, cat, result), mut b) in rows {
        b.days.sort_unstable();
        let n = b.days.len() + b.registered;
        let open = if scope == "department" {
            esc_dept.get(&unit)
        } else {
            esc_unit.get(&unit)
        };
        text.push_str(&csv_line(&[
            scope.to_string(),
            unit,
            cat,
            result,
            n.to_string(),
            fmt_opt_f(median(&b.days)),
            p90(&b.days).map(|v| v.to_string()).unwrap_or_default(),
            if b.days.is_empty() {
                String::new()
            } else {
                format!("{:.3}", b.on_time as f64 / b.days.len() as f64)
            },
            open.copied().unwrap_or(0).to_string(),
        ]));
    }
    Csv { text, rows: count }
}

mod run;
pub use run::{ReportError, ReportRun, Reports, workbook_files};

#[cfg(test)]
mod tests;
