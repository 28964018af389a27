//! Working-day calendars: which days are working days, and when a deadline falls due.
//!
//! Calendars are YAML files in `calendars/` (see `docs/time.md`): weekends off, holidays off,
//! make-up working days (调休上班) on. A calendar may `extends:` another and add local days off.
//! Everything here is pure: no database, no clock. The counting rules:
//!
//! - [`DurationUnit::WorkDays`] N: the close of office hours of the N-th working day after the
//!   day of the event (the event's day never counts, whatever the hour).
//! - [`DurationUnit::WorkHours`]: only office time counts; an event outside office hours starts
//!   counting at the next opening.
//! - [`DurationUnit::Days`] N: the close of office hours of day X+N, or of the next working day
//!   when X+N is a rest day.
//! - [`DurationUnit::Hours`], [`DurationUnit::Minutes`]: plain elapsed time.
//!
//! A deadline reaching into a year the data does not cover is still computed, with weekends
//! only for that year, and marked provisional with the missing years.

mod explain;
mod file;

pub use explain::{Explanation, NamedDay, Rule};
pub use file::CheckIssue;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use yimen_dsl::model::DurationUnit;

/// The calendar used when a process names none.
pub const DEFAULT_CALENDAR: &str = "cn_mainland";

/// Longest span a computation walks (about 100 years): larger amounts are clamped, so a
/// nonsensical amount cannot make a deadline computation run for ever.
pub const MAX_SPAN_DAYS: i64 = 36_600;

/// What kind of day a date is in a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// An ordinary Monday to Friday.
    Weekday,
    /// An ordinary Saturday or Sunday.
    Weekend,
    /// A day of a statutory holiday (including the weekend days inside its range).
    Holiday,
    /// A weekend day made a working day (调休上班).
    MakeUpWorkday,
    /// An extra day off added by a local layer (`extends:`).
    LocalDayOff,
}

/// One date of a calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayInfo {
    pub date: NaiveDate,
    pub workday: bool,
    /// Name of the holiday or make-up day, if any.
    pub name: Option<String>,
    pub kind: DayKind,
    /// The notice that arranged the day (国办发明电…), when the calendar file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// A date in a year the calendar has no data for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "calendar `{calendar}` has no data for {year}: add the year's arrangement to {file} and run \
     `yimen calendar check`"
)]
pub struct MissingYear {
    pub calendar: String,
    pub year: i32,
    /// The file to add the year to.
    pub file: String,
}

/// Loading calendars failed.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has {} problem(s):\n{}", issues.len(), render_issues(issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<CheckIssue>,
    },
    #[error("no calendar files (*.yaml) in {0}: point --calendars at the calendars folder")]
    Empty(PathBuf),
    #[error("calendar `{name}` is defined twice: in {first} and {second}; rename one")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "calendar `{name}` extends `{base}`, which is not in the folder: add {base}.yaml or fix `extends`"
    )]
    UnknownBase { name: String, base: String },
    #[error("calendars extend each other in a cycle: {0}; one of them must stand alone")]
    Cycle(String),
}

fn render_issues(issues: &[CheckIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A due date with the reasoning behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub at: DateTime<Utc>,
    /// Some day counted falls in a year the data does not cover (weekends only were used
    /// there): flag it and recompute once the year's data is added.
    pub provisional: bool,
    pub missing_years: Vec<i32>,
    pub explanation: Explanation,
}

/// All calendars of a folder, by name.
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    by_name: BTreeMap<String, Calendar>,
}

/// One working-day calendar (layers already applied).
#[derive(Debug, Clone)]
pub struct Calendar {
    name: String,
    title: Option<String>,
    example: bool,
    version: String,
    file: PathBuf,
    /// The file holding the yearly data (the base's, for a layer).
    data_file: PathBuf,
    tz: Tz,
    office: Vec<(NaiveTime, NaiveTime)>,
    all_years: bool,
    years: BTreeSet<i32>,
    special: HashMap<NaiveDate, Special>,
}

#[derive(Debug, Clone)]
struct Special {
    kind: DayKind,
    name: String,
    /// The notice that arranged the day, when the file names one.
    notice: Option<String>,
}

struct Parsed {
    path: PathBuf,
    hash: String,
    file: file::CalendarFile,
}

/// Validates one calendar file's text: every problem at once, with YAML lines.
/// `stem` (file name without `.yaml`) lets the check compare it with the `name`.
pub fn check_text(text: &str, stem: Option<&str>) -> Vec<CheckIssue> {
    match file::parse(text) {
        Ok(parsed) => file::check(&parsed, stem),
        Err(issue) => vec![issue],
    }
}

impl Calendars {
    /// Loads every `*.yaml` file of `dir` (not subfolders), validates it and applies layers.
    pub fn load_dir(dir: &Path) -> Result<Calendars, CalendarError> {
        let io = |source| CalendarError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(CalendarError::Empty(dir.to_path_buf()));
        }
        Self::load_files(&paths)
    }

    /// The calendars of `dir` and, for every built-in file (`(file name, text)`, e.g. the
    /// calendars a binary carries) whose name the folder has no file of, that file as if it
    /// were in `dir`: a file in the folder replaces the built-in one of its name. Without the
    /// folder, the built-in calendars alone; without either, the folder's error.
    pub fn load_dir_or_builtin(
        dir: &Path,
        builtin: &[(&str, &str)],
    ) -> Result<Calendars, CalendarError> {
        let mut files = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
                    {
                        let text =
                            std::fs::read_to_string(&path).map_err(|source| CalendarError::Io {
                                path: path.clone(),
                                source,
                            })?;
                        files.push((path, text));
                    }
                }
            }
            Err(source) if builtin.is_empty() => {
                return Err(CalendarError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
            Err(_) => {}
        }
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        for (name, text) in builtin {
            let path = dir.join(name);
            if !files.iter().any(|(p, _)| stem(p) == stem(&path)) {
                files.push((path, text.to_string()));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.is_empty() {
            return Err(CalendarError::Empty(dir.to_path_buf()));
        }
        Self::load_texts(files)
    }

    /// Loads the given calendar files (e.g. a folder's files with one replaced by a draft, to
    /// check the draft against the calendars it extends or that extend it).
    pub fn load_files(paths: &[PathBuf]) -> Result<Calendars, CalendarError> {
        let mut files = Vec::new();
        for path in paths.iter().cloned() {
            let text = std::fs::read_to_string(&path).map_err(|source| CalendarError::Io {
                path: path.clone(),
                source,
            })?;
            files.push((path, text));
        }
        Self::load_texts(files)
    }

    /// Loads calendar files given with their text.
    fn load_texts(files: Vec<(PathBuf, String)>) -> Result<Calendars, CalendarError> {
        let mut parsed: BTreeMap<String, Parsed> = BTreeMap::new();
        for (path, text) in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string);
            let file = file::parse(&text).map_err(|issue| CalendarError::Invalid {
                path: path.clone(),
                issues: vec![issue],
            })?;
            let issues = file::check(&file, stem.as_deref());
            if !issues.is_empty() {
                return Err(CalendarError::Invalid { path, issues });
            }
            let hash = hex::encode(Sha256::digest(text.as_bytes()));
            let name = file.name.value.trim().to_string();
            if let Some(first) = parsed.get(&name) {
                return Err(CalendarError::Duplicate {
                    name,
                    first: first.path.clone(),
                    second: path,
                });
            }
            parsed.insert(name, Parsed { path, hash, file });
        }
        let mut by_name = BTreeMap::new();
        for name in parsed.keys() {
            let calendar = build(name, &parsed, &mut Vec::new())?;
            by_name.insert(name.clone(), calendar);
        }
        Ok(Calendars { by_name })
    }

    /// The calendar called `name` (its `name:` field, e.g. `cn_mainland`).
    pub fn get(&self, name: &str) -> Option<&Calendar> {
        self.by_name.get(name)
    }

    /// The calendar called `name`, or [`DEFAULT_CALENDAR`] for `None`.
    pub fn resolve(&self, name: Option<&str>) -> Option<&Calendar> {
        self.get(name.unwrap_or(DEFAULT_CALENDAR))
    }

    /// [`Calendar::add`] on the named calendar (`None`: [`DEFAULT_CALENDAR`]). An unknown name
    /// (the checker refuses those, so only a calendar file removed since deployment) is counted
    /// on weekends only and marked provisional, so a deadline is never lost.
    pub fn add(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        self.with(calendar, |c| c.add(from, amount, unit))
    }

    /// [`Calendar::before`] on the named calendar; unknown names as in [`Calendars::add`].
    pub fn before(
        &self,
        calendar: Option<&str>,
        due: DateTime<Utc>,
        amount: i64,
        unit: DurationUnit,
    ) -> Due {
        self.with(calendar, |c| c.before(due, amount, unit))
    }

    /// [`Calendar::office_minutes_between`] on the named calendar.
    pub fn office_minutes_between(
        &self,
        calendar: Option<&str>,
        a: DateTime<Utc>,
        b: DateTime<Utc>,
    ) -> i64 {
        self.with(calendar, |c| c.office_minutes_between(a, b))
    }

    /// [`Calendar::add_office_minutes`] on the named calendar.
    pub fn add_office_minutes(
        &self,
        calendar: Option<&str>,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> Due {
        self.with(calendar, |c| c.add_office_minutes(from, minutes))
    }

    fn with<T>(&self, calendar: Option<&str>, f: impl FnOnce(&Calendar) -> T) -> T {
        match self.resolve(calendar) {
            Some(c) => f(c),
            None => f(&Calendar::unknown(calendar.unwrap_or(DEFAULT_CALENDAR))),
        }
    }

    /// Data version of every calendar, by name: store it, compare it at start, and recompute
    /// pending working-day deadlines of the calendars whose version changed.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.by_name
            .iter()
            .map(|(name, c)| (name.clone(), c.version.clone()))
            .collect()
    }

    /// Names of all calendars, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

/// Builds calendar `name`, applying its base first. `stack` detects cycles.
fn build(
    name: &str,
    parsed: &BTreeMap<String, Parsed>,
    stack: &mut Vec<String>,
) -> Result<Calendar, CalendarError> {
    if stack.iter().any(|n| n == name) {
        stack.push(name.to_string());
        return Err(CalendarError::Cycle(stack.join(" → ")));
    }
    let Some(this) = parsed.get(name) else {
        let child = stack.last().cloned().unwrap_or_default();
        return Err(CalendarError::UnknownBase {
            name: child,
            base: name.to_string(),
        });
    };
    let mut calendar = match &this.file.extends {
        Some(base) => {
            stack.push(name.to_string());
            let base = build(base.value.trim(), parsed, stack)?;
            stack.pop();
            base
        }
        None => Calendar {
            name: String::new(),
            title: None,
            example: false,
            version: String::new(),
            file: PathBuf::new(),
            data_file: PathBuf::new(),
            tz: Tz::Asia__Shanghai,
            office: file::default_office_hours(),
            all_years: false,
            years: BTreeSet::new(),
            special: HashMap::new(),
        },
    };
    apply_settings(&mut calendar, name, this);
    add_special_days(&mut calendar, &this.file);
    Ok(calendar)
}

/// Sets what calendar file `this` (named `name`) says of the whole calendar on `calendar`
/// (its base, or an empty calendar): name, version, title, time zone, office hours and, for
/// a calendar that is no layer, the years its data covers.
fn apply_settings(calendar: &mut Calendar, name: &str, this: &Parsed) {
    let f = &this.file;
    let layered = f.extends.is_some();
    calendar.version = if layered {
        format!("{}+{}", &calendar.version, &this.hash[..12])
    } else {
        this.hash[..12].to_string()
    };
    calendar.name = name.to_string();
    calendar.title = f.title.clone();
    calendar.example = calendar.example || f.example;
    calendar.file = this.path.clone();
    if let Some(tz) = &f.time_zone {
        calendar.tz = tz.value.parse().unwrap_or(Tz::Asia__Shanghai);
    } else if !layered {
        calendar.tz = file::DEFAULT_TIME_ZONE
            .parse()
            .unwrap_or(Tz::Asia__Shanghai);
    }
    if let Some(periods) = &f.office_hours {
        calendar.office = periods
            .value
            .iter()
            .filter_map(|p| file::parse_period(&p.value))
            .collect();
    }
    if !layered {
        calendar.data_file = this.path.clone();
        calendar.all_years = f.all_years;
        calendar.years = f.years.keys().copied().collect();
    }
}

/// Adds the holidays and make-up working days of every year of calendar file `f` to
/// `calendar`; the holidays of a layer are local days off.
fn add_special_days(calendar: &mut Calendar, f: &file::CalendarFile) {
    let layered = f.extends.is_some();
    for data in f.years.values() {
        let year_notice = data.value.notice.as_deref();
        for h in &data.value.holidays {
            let notice = h
                .value
                .notice
                .as_deref()
                .or(year_notice)
                .map(str::to_string);
            let from = h.value.from.value.0;
            let to = h.value.to.as_ref().map_or(from, |t| t.value.0);
            let kind = if layered {
                DayKind::LocalDayOff
            } else {
                DayKind::Holiday
            };
            let name = h.value.name.clone().unwrap_or_default();
            for date in from.iter_days().take_while(|d| *d <= to) {
                calendar.special.insert(
                    date,
                    Special {
                        kind,
                        name: name.clone(),
                        notice: notice.clone(),
                    },
                );
            }
        }
        for m in &data.value.make_up_days {
            calendar.special.insert(
                m.value.date.value.0,
                Special {
                    kind: DayKind::MakeUpWorkday,
                    name: m.value.name.clone().unwrap_or_default(),
                    notice: m
                        .value
                        .notice
                        .as_deref()
                        .or(year_notice)
                        .map(str::to_string),
                },
            );
        }
    }
}

/// Records what a walk over days met, for the explanation.
#[derive(Default)]
struct Walk {
    skipped: Vec<NamedDay>,
    counted: Vec<NamedDay>,
    notices: Vec<String>,
    missing: BTreeSet<i32>,
}

impl Walk {
    fn note(&mut self, info: &DayInfo, counted: bool) {
        let named = || NamedDay {
            date: info.date,
            name: info.name.clone().unwrap_or_default(),
        };
        match info.kind {
            DayKind::Holiday | DayKind::LocalDayOff if !counted => self.skipped.push(named()),
            DayKind::MakeUpWorkday if counted => self.counted.push(named()),
            _ => return,
        }
        if let Some(notice) = &info.notice
            && !self.notices.contains(notice)
        {
            self.notices.push(notice.clone());
        }
    }
}

impl Calendar {
    /// Stand-in for a calendar that is not loaded: weekends only, no year covered, so every
    /// result is provisional.
    fn unknown(name: &str) -> Calendar {
        Calendar {
            name: name.to_string(),
            title: None,
            example: false,
            version: "missing".to_string(),
            file: PathBuf::from(format!("{name}.yaml")),
            data_file: PathBuf::from(format!("{name}.yaml")),
            tz: Tz::Asia__Shanghai,
            office: file::default_office_hours(),
            all_years: false,
            years: BTreeSet::new(),
            special: HashMap::new(),
        }
    }

    /// The calendar's name (`cn_mainland`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Human title, if the file gives one.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// `true` for illustrative data (`example: true`), not for real deadlines.
    pub fn is_example(&self) -> bool {
        self.example
    }

    /// Data version: the first 12 hex digits of the file's SHA-256 (`base+layer` for layers).
    /// It changes whenever the file changes, so stored due dates can be recomputed.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file this calendar was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The file that holds the yearly data: where a missing year is to be added.
    pub fn data_file(&self) -> &Path {
        &self.data_file
    }

    /// The time zone office hours are read in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Office hours of a working day, in order.
    pub fn office_hours(&self) -> &[(NaiveTime, NaiveTime)] {
        &self.office
    }

    /// `true` when the data covers `year`.
    pub fn covers(&self, year: i32) -> bool {
        self.all_years || self.years.contains(&year)
    }

    /// `true` for a calendar that needs no yearly data (`all_years: true`).
    pub fn covers_every_year(&self) -> bool {
        self.all_years
    }

    /// Years with data (empty for an `all_years` calendar).
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.iter().copied()
    }

    fn missing(&self, year: i32) -> MissingYear {
        MissingYear {
            calendar: self.name.clone(),
            year,
            file: self.data_file.display().to_string(),
        }
    }

    /// What `date` is in this calendar; an error for a year without data.
    pub fn day(&self, date: NaiveDate) -> Result<DayInfo, MissingYear> {
        if !self.covers(date.year()) {
            return Err(self.missing(date.year()));
        }
        Ok(self.day_lenient(date))
    }

    /// Like [`Calendar::day`], with weekends only for a year without data.
    fn day_lenient(&self, date: NaiveDate) -> DayInfo {
        if let Some(s) = self.special.get(&date) {
            return DayInfo {
                date,
                workday: s.kind == DayKind::MakeUpWorkday,
                name: Some(s.name.clone()).filter(|n| !n.is_empty()),
                kind: s.kind,
                notice: s.notice.clone(),
            };
        }
        let weekend = date.weekday().number_from_monday() >= 6;
        DayInfo {
            date,
            workday: !weekend,
            name: None,
            kind: if weekend {
                DayKind::Weekend
            } else {
                DayKind::Weekday
            },
            notice: None,
        }
    }

    /// `day_lenient`, noting a missing year in `walk`.
    fn walk_day(&self, date: NaiveDate, walk: &mut Walk) -> DayInfo {
        if !self.covers(date.year()) {
            walk.missing.insert(date.year());
        }
        self.day_lenient(date)
    }

    /// Working days after `a` up to and including `b` (negative when `b` is before `a`).
    /// Every date from `a` to `b` must be in a covered year.
    pub fn between(&self, a: NaiveDate, b: NaiveDate) -> Result<i64, MissingYear> {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        for year in lo.year()..=hi.year() {
            if !self.covers(year) {
                return Err(self.missing(year));
            }
        }
        let count = lo
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= hi)
            .filter(|d| self.day_lenient(*d).workday)
            .count();
        Ok(sign * i64::try_from(count).unwrap_or(i64::MAX))
    }

    /// Like [`Calendar::between`], never failing: years without data are counted with weekends
    /// only and returned, so a report can show an approximate figure and say so.
    pub fn between_checked(&self, a: NaiveDate, b: NaiveDate) -> (i64, Vec<i32>) {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut walk = Walk::default();
        let mut count = 0i64;
        for date in lo.iter_days().skip(1).take_while(|d| *d <= hi) {
            if self.walk_day(date, &mut walk).workday {
                count += 1;
            }
        }
        (sign * count, walk.missing.into_iter().collect())
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// The instant of a local wall-clock time; a time skipped by a clock change moves on an hour.
    fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.with_timezone(&Utc)
            }
            chrono::LocalResult::None => self
                .tz
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
                .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc)),
        }
    }

    /// Close of office hours on `date` (end of the last period).
    pub fn close_of(&self, date: NaiveDate) -> DateTime<Utc> {
        let close = self.office.last().map_or(NaiveTime::MIN, |p| p.1);
        self.instant(date.and_time(close))
    }

    /// Office periods of `date` as instants (none on a rest day).
    fn periods(&self, info: &DayInfo) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if !info.workday {
            return Vec::new();
        }
        self.office
            .iter()
            .map(|(s, e)| {
                (
                    self.instant(info.date.and_time(*s)),
                    self.instant(info.date.and_time(*e)),
                )
            })
            .collect()
    }

    /// Due date of `amount` `unit`s after `from`, by the counting rules. Never fails: a year
    /// without data is counted with weekends only and the result marked provisional.
    /// Negative amounts count as zero; amounts beyond [`MAX_SPAN_DAYS`] are clamped.
    pub fn add(&self, from: DateTime<Utc>, amount: i64, unit: DurationUnit) -> Due {
        let amount = amount.max(0);
        match unit {
            DurationUnit::WorkDays => self.add_work_days(from, amount),
            DurationUnit::WorkHours => self.office_time(
                from,
                amount.min(MAX_SPAN_DAYS * 24).saturating_mul(60),
                Rule::WorkingHours { amount },
            ),
            DurationUnit::Days => self.add_days(from, amount),
            DurationUnit::Hours => {
                self.elapsed(from, amount.min(MAX_SPAN_DAYS * 24) * 60, amount, unit)
            }
            DurationUnit::Minutes => {
                self.elapsed(from, amount.min(MAX_SPAN_DAYS * 24 * 60), amount, unit)
            }
        }
    }

    fn finish(&self, from: DateTime<Utc>, at: DateTime<Utc>, rule: Rule, walk: Walk) -> Due {
        let missing_years: Vec<i32> = walk.missing.into_iter().collect();
        Due {
            at,
            provisional: !missing_years.is_empty(),
            missing_years: missing_years.clone(),
            explanation: Explanation {
                calendar: self.name.clone(),
                version: self.version.clone(),
                time_zone: self.tz.name().to_string(),
                rule,
                from,
                due: at,
                holidays_skipped: walk.skipped,
                make_up_days_counted: walk.counted,
                notices: walk.notices,
                missing_years,
            },
        }
    }

    fn add_work_days(&self, from: DateTime<Utc>, amount: i64) -> Due {
        let mut walk = Walk::default();
        let mut day = self.local_date(from);
        let limit = amount.min(MAX_SPAN_DAYS);
        if limit == 0 {
            self.settle_on_workday(&mut day, &mut walk);
        } else {
            let mut counted = 0;
            while counted < limit && next(&mut day) {
                let info = self.walk_day(day, &mut walk);
                walk.note(&info, info.workday);
                if info.workday {
                    counted += 1;
                }
            }
        }
        let at = self.close_of(day);
        self.finish(from, at, Rule::WorkingDays { amount }, walk)
    }

    /// Moves `day` forward to the first working day on or after it.
    fn settle_on_workday(&self, day: &mut NaiveDate, walk: &mut Walk) {
        loop {
            let info = self.walk_day(*day, walk);
            walk.note(&info, info.workday);
            if info.workday || !next(day) {
                break;
            }
        }
    }

    fn add_days(&self, from: DateTime<Utc>, amount: i64) -> Due {
        let mut walk = Walk::default();
        let mut day = self
            .local_date(from)
            .checked_add_signed(Duration::days(amount.min(MAX_SPAN_DAYS)))
            .unwrap_or(NaiveDate::MAX);
        self.settle_on_workday(&mut day, &mut walk);
        let at = self.close_of(day);
        self.finish(from, at, Rule::CalendarDays { amount }, walk)
    }

    fn elapsed(&self, from: DateTime<Utc>, minutes: i64, amount: i64, unit: DurationUnit) -> Due {
        let at = from
            .checked_add_signed(Duration::minutes(minutes))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let rule = match unit {
            DurationUnit::Hours => Rule::ElapsedHours { amount },
            _ => Rule::ElapsedMinutes { amount },
        };
        self.finish(from, at, rule, Walk::default())
    }

    /// The instant `amount` `unit`s before `due`, for reminders ("before 5 workdays"):
    /// - `WorkDays`: the same local time of day as `due`, on the N-th working day before the day
    ///   of `due` (so N full working days remain);
    /// - `WorkHours`: the latest instant with N hours of office time left until `due`;
    /// - `Days`, `Hours`, `Minutes`: plain calendar time before `due`.
    ///
    /// Negative amounts count as zero. Years without data make the result provisional.
    pub fn before(&self, due: DateTime<Utc>, amount: i64, unit: DurationUnit) -> Due {
        let amount = amount.max(0);
        let mut walk = Walk::default();
        let minutes = |m: i64| Duration::minutes(m.min(MAX_SPAN_DAYS * 24 * 60));
        let at = match unit {
            DurationUnit::WorkDays => {
                let local = due.with_timezone(&self.tz);
                let mut day = local.date_naive();
                let mut counted = 0;
                while counted < amount.min(MAX_SPAN_DAYS) && prev(&mut day) {
                    let info = self.walk_day(day, &mut walk);
                    walk.note(&info, info.workday);
                    if info.workday {
                        counted += 1;
                    }
                }
                self.instant(day.and_time(local.time()))
            }
            DurationUnit::WorkHours => {
                self.office_time_back(due, minutes(amount.saturating_mul(60)), &mut walk)
            }
            DurationUnit::Days => due - minutes(amount.saturating_mul(24 * 60)),
            DurationUnit::Hours => due - minutes(amount.saturating_mul(60)),
            DurationUnit::Minutes => due - minutes(amount),
        };
        self.finish(due, at, Rule::Before { amount, unit }, walk)
    }

    /// Walks office periods backwards from `due` until `remaining` office time is used.
    fn office_time_back(
        &self,
        due: DateTime<Utc>,
        mut remaining: Duration,
        walk: &mut Walk,
    ) -> DateTime<Utc> {
        if remaining <= Duration::zero() {
            return due;
        }
        let mut day = self.local_date(due);
        for _ in 0..=MAX_SPAN_DAYS {
            let info = self.walk_day(day, walk);
            let periods = self.periods(&info);
            walk.note(&info, periods.iter().any(|(s, _)| *s < due));
            for (s, e) in periods.into_iter().rev() {
                let e = e.min(due);
                if e <= s {
                    continue;
                }
                if remaining <= e - s {
                    return e - remaining;
                }
                remaining -= e - s;
            }
            if !prev(&mut day) {
                break;
            }
        }
        self.close_of(day)
    }

    /// Office time between `a` and `b`, in whole minutes (negative when `b` is before `a`).
    /// Years without data count with weekends only; see [`Calendar::office_minutes_checked`].
    pub fn office_minutes_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        self.office_minutes_checked(a, b).0
    }

    /// Office minutes between `a` and `b` and the years without data that were counted.
    pub fn office_minutes_checked(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> (i64, Vec<i32>) {
        let (lo, hi, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut walk = Walk::default();
        let mut seconds = 0i64;
        let last = self.local_date(hi);
        let mut day = self.local_date(lo);
        let mut steps = 0;
        loop {
            let info = self.walk_day(day, &mut walk);
            for (s, e) in self.periods(&info) {
                let s = s.max(lo);
                let e = e.min(hi);
                if e > s {
                    seconds += (e - s).num_seconds();
                }
            }
            steps += 1;
            if day >= last || steps > MAX_SPAN_DAYS || !next(&mut day) {
                break;
            }
        }
        (sign * (seconds / 60), walk.missing.into_iter().collect())
    }

    /// The instant when `minutes` of office time have passed after `from` (used to resume a
    /// paused clock with its remaining working time). Negative minutes count as zero.
    pub fn add_office_minutes(&self, from: DateTime<Utc>, minutes: i64) -> Due {
        let minutes = minutes.clamp(0, MAX_SPAN_DAYS * 24 * 60);
        self.office_time(from, minutes, Rule::OfficeMinutes { amount: minutes })
    }

    fn office_time(&self, from: DateTime<Utc>, minutes: i64, rule: Rule) -> Due {
        let mut walk = Walk::default();
        let mut remaining = Duration::minutes(minutes);
        let mut day = self.local_date(from);
        let mut at = from;
        let mut steps = 0;
        if remaining > Duration::zero() {
            'days: loop {
                let info = self.walk_day(day, &mut walk);
                let periods = self.periods(&info);
                let used = periods.iter().any(|(_, e)| *e > from);
                walk.note(&info, used);
                for (s, e) in periods {
                    let s = s.max(from);
                    if e <= s {
                        continue;
                    }
                    if remaining <= e - s {
                        at = s + remaining;
                        break 'days;
                    }
                    remaining -= e - s;
                }
                steps += 1;
                if steps > MAX_SPAN_DAYS || !next(&mut day) {
                    at = self.close_of(day);
                    break;
                }
            }
        }
        self.finish(from, at, rule, walk)
    }
}

/// Moves `day` to the previous date; `false` at the start of time.
fn prev(day: &mut NaiveDate) -> bool {
    match day.pred_opt() {
        Some(d) => {
            *day = d;
            true
        }
        None => false,
    }
}

/// Moves `day` to the next date; `false` at the end of time.
fn next(day: &mut NaiveDate) -> bool {
    match day.succ_opt() {
        Some(d) => {
            *day = d;
            true
        }
        None => false,
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DayKind::Weekday => "weekday",
            DayKind::Weekend => "weekend",
            DayKind::Holiday => "holiday",
            DayKind::MakeUpWorkday => "make-up workday",
            DayKind::LocalDayOff => "local day off",
        })
    }
}

#[cfg(test)]
mod tests;
