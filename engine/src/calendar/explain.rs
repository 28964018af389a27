//! Why a due date is what it is: shown in an instance's timeline and by
//! `yimen calendar add --explain`.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use yimen_dsl::model::DurationUnit;

/// The rule a due date was computed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Close of office hours of the N-th working day after the event's day.
    WorkingDays {
        amount: i64,
    },
    /// N hours of office time.
    WorkingHours {
        amount: i64,
    },
    /// N minutes of office time (a resumed clock's remaining time).
    OfficeMinutes {
        amount: i64,
    },
    /// Day X+N (or the next working day), at the close of office hours.
    CalendarDays {
        amount: i64,
    },
    ElapsedHours {
        amount: i64,
    },
    ElapsedMinutes {
        amount: i64,
    },
    /// N units before a due date (a reminder rung); `from` is the due date.
    Before {
        amount: i64,
        unit: DurationUnit,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::WorkingDays { amount } => write!(
                f,
                "{amount} 个工作日 ({amount} working day(s): due at the close of office hours of \
                 working day {amount} after the day of the event)"
            ),
            Rule::WorkingHours { amount } => {
                write!(f, "{amount} 工作小时 ({amount} hours of office time)")
            }
            Rule::OfficeMinutes { amount } => {
                write!(f, "{amount} 分钟办公时间 ({amount} minutes of office time)")
            }
            Rule::CalendarDays { amount } => write!(
                f,
                "{amount} 日 ({amount} calendar days; a last day that is a rest day moves to the \
                 next working day, due at the close of office hours)"
            ),
            Rule::ElapsedHours { amount } => write!(f, "{amount} 小时 ({amount} hours elapsed)"),
            Rule::ElapsedMinutes { amount } => {
                write!(f, "{amount} 分钟 ({amount} minutes elapsed)")
            }
            Rule::Before { amount, unit } => {
                let (zh, en) = match unit {
                    DurationUnit::WorkDays => ("个工作日", "working day(s)"),
                    DurationUnit::WorkHours => ("工作小时", "office hour(s)"),
                    DurationUnit::Days => ("日", "calendar day(s)"),
                    DurationUnit::Hours => ("小时", "hour(s)"),
                    DurationUnit::Minutes => ("分钟", "minute(s)"),
                };
                write!(
                    f,
                    "到期前 {amount} {zh} ({amount} {en} before the due date)"
                )
            }
        }
    }
}

/// A date with the name the calendar gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedDay {
    pub date: NaiveDate,
    pub name: String,
}

/// How a due date was computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub calendar: String,
    /// The calendar data's version (see [`super::Calendar::version`]).
    pub version: String,
    pub time_zone: String,
    #[serde(flatten)]
    pub rule: Rule,
    pub from: DateTime<Utc>,
    pub due: DateTime<Utc>,
    /// Days off passed over (holidays and local days off; ordinary weekends are not listed).
    pub holidays_skipped: Vec<NamedDay>,
    /// Weekend days made working days (调休上班) that were counted.
    pub make_up_days_counted: Vec<NamedDay>,
    /// The notices that arranged those days, in the order met.
    #[serde(default)]
    pub notices: Vec<String>,
    /// Years without data, counted with weekends only.
    pub missing_years: Vec<i32>,
}

/// Groups consecutive dates with one name: `2026-10-01..2026-10-07 国庆节`.
fn runs(days: &[NamedDay]) -> Vec<String> {
    let mut out: Vec<(NaiveDate, NaiveDate, &str)> = Vec::new();
    for day in days {
        match out.last_mut() {
            Some((_, end, name)) if *name == day.name && end.succ_opt() == Some(day.date) => {
                *end = day.date;
            }
            _ => out.push((day.date, day.date, &day.name)),
        }
    }
    out.into_iter()
        .map(|(start, end, name)| {
            let name = if name.is_empty() { "" } else { name };
            if start == end {
                format!("{start} {name}").trim_end().to_string()
            } else {
                format!("{start}..{end} {name}").trim_end().to_string()
            }
        })
        .collect()
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tz: Tz = self.time_zone.parse().unwrap_or(Tz::Asia__Shanghai);
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
        writeln!(
            f,
            "日历 calendar: {} (数据版本 data version {})",
            self.calendar, self.version
        )?;
        writeln!(f, "规则 rule: {}", self.rule)?;
        writeln!(f, "起算 from: {} ({})", local(self.from), self.time_zone)?;
        writeln!(f, "到期 due: {} ({})", local(self.due), self.time_zone)?;
        let skipped = runs(&self.holidays_skipped);
        if skipped.is_empty() {
            writeln!(f, "跳过节假日 holidays skipped: 无 none")?;
        } else {
            writeln!(f, "跳过节假日 holidays skipped: {}", skipped.join(", "))?;
        }
        let counted = runs(&self.make_up_days_counted);
        if counted.is_empty() {
            write!(f, "计入调休上班日 make-up days counted: 无 none")?;
        } else {
            write!(
                f,
                "计入调休上班日 make-up days counted: {}",
                counted.join(", ")
            )?;
        }
        if !self.notices.is_empty() {
            write!(f, "\n依据 notices: {}", self.notices.join(", "))?;
        }
        if !self.missing_years.is_empty() {
            let years: Vec<String> = self.missing_years.iter().map(i32::to_string).collect();
            write!(
                f,
                "\n暂定 provisional: no data for {} (weekends only used there); recomputed when \
                 the year's arrangement is added",
                years.join(", ")
            )?;
        }
        Ok(())
    }
}
