//! The YAML form of a calendar file and its validation (`yimen calendar check`).
//!
//! Validation reports every problem at once, each with the YAML line and what to fix, so an
//! administrator adding next year's arrangement gets one complete list.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// A calendar file as written (`calendars/*.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalendarFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// Free text (where the data comes from, what it is for).
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    /// `true` for illustrative data that must not be used for real deadlines.
    #[serde(default)]
    pub example: bool,
    /// Name of the calendar this one adds to (a local layer with extra days off).
    #[serde(default)]
    pub extends: Option<Spanned<String>>,
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    #[serde(default)]
    pub office_hours: Option<Spanned<Vec<Spanned<String>>>>,
    /// `true` when the calendar needs no yearly data (a plain Monday-Friday calendar).
    #[serde(default)]
    pub all_years: bool,
    #[serde(default)]
    pub years: BTreeMap<i32, Spanned<YearFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct YearFile {
    /// The notice that arranged this year (e.g. 国办发明电〔2025〕7号).
    #[serde(default)]
    pub notice: Option<String>,
    #[serde(default)]
    pub holidays: Vec<Spanned<HolidayFile>>,
    #[serde(default)]
    pub make_up_days: Vec<Spanned<MakeUpFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HolidayFile {
    #[serde(default)]
    pub name: Option<String>,
    pub from: Spanned<Day>,
    /// Last day off, inclusive; a one-day holiday may leave it out.
    #[serde(default)]
    pub to: Option<Spanned<Day>>,
    #[serde(default)]
    pub notice: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MakeUpFile {
    pub date: Spanned<Day>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

/// A date written `YYYY-MM-DD`, with an error that says so.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map(Day)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a date: write an existing date as YYYY-MM-DD"
                ))
            })
    }
}

/// One problem found in a calendar file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIssue {
    /// 1-based line in the YAML file, when known.
    pub line: Option<u64>,
    pub message: String,
    /// What to change to fix it.
    pub help: String,
}

impl fmt::Display for CheckIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message)?,
            None => write!(f, "{}", self.message)?,
        }
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

/// Default office hours: 08:30-12:00 and 14:30-17:30.
pub(crate) fn default_office_hours() -> Vec<(NaiveTime, NaiveTime)> {
    let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
    vec![(t(8, 30), t(12, 0)), (t(14, 30), t(17, 30))]
}

pub(crate) const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

fn line_of<T>(spanned: &Spanned<T>) -> Option<u64> {
    let line = spanned.referenced.line();
    (line > 0).then_some(line)
}

fn issue(line: Option<u64>, message: impl Into<String>, help: impl Into<String>) -> CheckIssue {
    CheckIssue {
        line,
        message: message.into(),
        help: help.into(),
    }
}

/// Parses `HH:MM-HH:MM`.
pub(crate) fn parse_period(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (start, end) = text.split_once('-')?;
    let start = NaiveTime::parse_from_str(start.trim(), "%H:%M").ok()?;
    let end = NaiveTime::parse_from_str(end.trim(), "%H:%M").ok()?;
    Some((start, end))
}

/// Parses a calendar file. A syntax or shape error is returned as the one issue.
pub(crate) fn parse(text: &str) -> Result<CalendarFile, CheckIssue> {
    if text.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(issue(
            None,
            "the calendar file is empty",
            "start it with `name: <file name>`; see docs/time.md for the keys",
        ));
    }
    serde_saphyr::from_str::<CalendarFile>(text).map_err(|err| {
        let line = err.location().map(|l| l.line()).filter(|l| *l > 0);
        let rendered = err.to_string();
        let mut first = rendered.lines().next().unwrap_or("invalid YAML").trim();
        first = first.strip_prefix("error: ").unwrap_or(first);
        // The line is shown already; keep only the column of "line L column C: message".
        if let Some(rest) = first.strip_prefix("line ")
            && let Some((place, message)) = rest.split_once(": ")
        {
            let column = place.split_once("column ").map_or("", |(_, c)| c);
            first = message;
            if !column.is_empty() {
                return parse_issue(line, format!("column {column}: {first}"));
            }
        }
        parse_issue(line, first.to_string())
    })
}

fn parse_issue(line: Option<u64>, message: String) -> CheckIssue {
    let help = if message.contains("unknown field") {
        "remove or rename the key; calendar keys: name, title, description, example, extends, \
         time_zone, office_hours, all_years, years; a year: notice, holidays, make_up_days; a \
         holiday: name, from, to, notice; a make-up day: date, name, notice"
    } else if message.contains("duplicate mapping key") {
        "a key (or a year) appears twice: merge the two entries into one"
    } else if message.contains("is not a date") {
        "fix the date"
    } else if message.contains("missing field") {
        "add the missing key: a holiday needs `from`, a make-up day needs `date`"
    } else {
        "fix the YAML at this place (indentation, brackets, quotes)"
    };
    let message = message
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .trim()
        .to_string();
    issue(line, format!("cannot read the calendar: {message}"), help)
}

/// Checks a parsed calendar file. `stem` is the file name without `.yaml`, when known.
pub(crate) fn check(file: &CalendarFile, stem: Option<&str>) -> Vec<CheckIssue> {
    let mut issues = Vec::new();
    let name = file.name.value.trim();
    if name.is_empty() {
        issues.push(issue(
            line_of(&file.name),
            "the calendar has an empty `name`",
            "give it the file's name, e.g. `name: cn_mainland`",
        ));
    } else if let Some(stem) = stem
        && stem != name
    {
        issues.push(issue(
            line_of(&file.name),
            format!("the calendar is named `{name}` but its file is `{stem}.yaml`"),
            format!("rename the file to `{name}.yaml` or set `name: {stem}`"),
        ));
    }
    if let Some(base) = &file.extends
        && base.value.trim() == name
    {
        issues.push(issue(
            line_of(base),
            format!("calendar `{name}` extends itself"),
            "name the calendar it adds to, e.g. `extends: cn_mainland`",
        ));
    }
    if let Some(base) = &file.extends
        && file.all_years
    {
        issues.push(issue(
            line_of(base),
            "`all_years` has no effect in a layer: it covers the years of the calendar it extends",
            "remove `all_years`, or remove `extends` to make a calendar of its own",
        ));
    }
    if let Some(tz) = &file.time_zone
        && tz.value.parse::<chrono_tz::Tz>().is_err()
    {
        issues.push(issue(
            line_of(tz),
            format!("unknown time zone `{}`", tz.value),
            "use an IANA name such as `Asia/Shanghai`",
        ));
    }
    if let Some(periods) = &file.office_hours {
        check_office_hours(periods, &mut issues);
    }
    check_years(file, &mut issues);
    issues.sort_by_key(|i| i.line.unwrap_or(0));
    issues
}

fn weekday_name(date: NaiveDate) -> &'static str {
    match date.weekday() {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn check_office_hours(periods: &Spanned<Vec<Spanned<String>>>, issues: &mut Vec<CheckIssue>) {
    if periods.value.is_empty() {
        issues.push(issue(
            line_of(periods),
            "`office_hours` is empty",
            "list at least one period, e.g. `- \"08:30-12:00\"`, or remove the key for the default",
        ));
    }
    let mut previous: Option<NaiveTime> = None;
    for period in &periods.value {
        match parse_period(&period.value) {
            None => issues.push(issue(
                line_of(period),
                format!("office hours `{}` are not `HH:MM-HH:MM`", period.value),
                "write a period like `\"08:30-12:00\"` (quoted)",
            )),
            Some((start, end)) if start >= end => issues.push(issue(
                line_of(period),
                format!("office hours `{}` end before they start", period.value),
                "put the opening time first",
            )),
            Some((start, end)) => {
                if previous.is_some_and(|p| start < p) {
                    issues.push(issue(
                        line_of(period),
                        format!(
                            "office hours `{}` overlap or precede the period before",
                            period.value
                        ),
                        "list the periods of a day in order, without overlap",
                    ));
                }
                previous = Some(end);
            }
        }
    }
}

fn check_years(file: &CalendarFile, issues: &mut Vec<CheckIssue>) {
    let mut ranges: Vec<(NaiveDate, NaiveDate, String, Option<u64>)> = Vec::new();
    let mut make_up: BTreeMap<NaiveDate, Option<u64>> = BTreeMap::new();
    for (&year, data) in &file.years {
        let year_line = line_of(data);
        if !(1900..=2999).contains(&year) {
            issues.push(issue(
                year_line,
                format!("year {year} is out of range"),
                "years are written as four digits, e.g. `2027:`",
            ));
            continue;
        }
        for holiday in &data.value.holidays {
            ranges.extend(check_holiday(year, holiday, issues));
        }
        for day in &data.value.make_up_days {
            check_make_up(year, day, &mut make_up, issues);
        }
    }
    ranges.sort_by_key(|r| (r.0, r.1));
    for pair in ranges.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.0 <= a.1 {
            issues.push(issue(
                b.3,
                format!(
                    "holiday {} ({}..{}) overlaps holiday {} ({}..{})",
                    b.2, b.0, b.1, a.2, a.0, a.1
                ),
                "each day off belongs to one holiday: shorten one of the ranges",
            ));
        }
    }
    for (date, line) in &make_up {
        if let Some(h) = ranges.iter().find(|r| r.0 <= *date && *date <= r.1) {
            issues.push(issue(
                *line,
                format!(
                    "{date} is both a make-up working day and a day of holiday {}",
                    h.2
                ),
                "a day is either off or a working day: fix the holiday range or the make-up day",
            ));
        }
    }
}

/// A holiday (a range of days off) of `year`: named, inside its year, ending after it
/// starts. Returns its range, label and line when the range is usable.
fn check_holiday(
    year: i32,
    holiday: &Spanned<HolidayFile>,
    issues: &mut Vec<CheckIssue>,
) -> Option<(NaiveDate, NaiveDate, String, Option<u64>)> {
    let h = &holiday.value;
    let line = line_of(holiday).or(line_of(&h.from));
    let from = h.from.value.0;
    let to = h.to.as_ref().map_or(from, |t| t.value.0);
    let label = h
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("(unnamed)");
    if label == "(unnamed)" {
        issues.push(issue(
            line,
            format!("the holiday from {from} has no name"),
            "add `name:` with the holiday's name as in the notice, e.g. `name: 春节`",
        ));
    }
    for (date, what) in [(from, "starts"), (to, "ends")] {
        if date.year() != year {
            issues.push(issue(
                line,
                format!("holiday {label} {what} on {date}, outside its year {year}"),
                format!(
                    "put each date under its own year: split a range that crosses the \
                     year end, the part in {} under `{}:`",
                    date.year(),
                    date.year()
                ),
            ));
        }
    }
    if to < from {
        issues.push(issue(
            line,
            format!("holiday {label} ends on {to}, before it starts on {from}"),
            "swap `from` and `to`",
        ));
        return None;
    }
    Some((from, to, label.to_string(), line))
}

/// A make-up working day (调休上班) of `year`: in its year, on a weekend, named, listed once.
fn check_make_up(
    year: i32,
    day: &Spanned<MakeUpFile>,
    make_up: &mut BTreeMap<NaiveDate, Option<u64>>,
    issues: &mut Vec<CheckIssue>,
) {
    let m = &day.value;
    let line = line_of(day).or(line_of(&m.date));
    let date = m.date.value.0;
    if date.year() != year {
        issues.push(issue(
            line,
            format!("make-up day {date} is listed under {year}"),
            format!("move it under `{}:`", date.year()),
        ));
    }
    if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        issues.push(issue(
            line,
            format!(
                "make-up day {date} is a {}, not a weekend day",
                weekday_name(date)
            ),
            "a make-up working day (调休上班) is a Saturday or Sunday made a working day; \
             fix the date or remove the entry",
        ));
    }
    if m.name.as_deref().map(str::trim).unwrap_or("").is_empty() {
        issues.push(issue(
            line,
            format!("make-up day {date} has no name"),
            "add `name:`, e.g. `name: 春节补班`",
        ));
    }
    if make_up.insert(date, line).is_some() {
        issues.push(issue(
            line,
            format!("make-up day {date} is listed twice"),
            "remove one of the entries",
        ));
    }
}
