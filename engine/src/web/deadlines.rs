//! The case page's deadlines: each clock of the case with its limit, due date and why that
//! day ([`crate::deadlines`]'s steps said in Chinese, dates in the calendar's zone), and the
//! lights of deadlines: yellow from the warning period the clock declares.

use crate::deadlines::{ClockReport, ClockStatus, Light, Step};
use crate::engine::ProcessLabels;
use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use yimen_dsl::model::DurationUnit;

/// A light's class and words, for a deadline due at `due` whose warning starts at `warn`.
pub(super) fn light(
    due: Option<DateTime<Utc>>,
    warn: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (&'static str, &'static str) {
    match due.map(|due| crate::deadlines::light(due, warn, now)) {
        None => ("", ""),
        Some(Light::Red) => ("red", "已超期"),
        Some(Light::Yellow) => ("yellow", "临近期限"),
        Some(Light::Green) => ("green", "正常"),
    }
}

/// `10 个工作日`.
pub(super) fn limit_text(amount: i64, unit: DurationUnit) -> String {
    let unit = match unit {
        DurationUnit::WorkDays => "个工作日",
        DurationUnit::WorkHours => "个工作小时",
        DurationUnit::Days => "日",
        DurationUnit::Hours => "小时",
        DurationUnit::Minutes => "分钟",
    };
    format!("{amount} {unit}")
}

fn weekday(d: NaiveDate) -> &'static str {
    match d.weekday() {
        Weekday::Mon => "星期一",
        Weekday::Tue => "星期二",
        Weekday::Wed => "星期三",
        Weekday::Thu => "星期四",
        Weekday::Fri => "星期五",
        Weekday::Sat => "星期六",
        Weekday::Sun => "星期日",
    }
}

/// `2026年10月8日`.
fn day(d: NaiveDate) -> String {
    d.format("%Y年%-m月%-d日").to_string()
}

/// `2026年10月1日至10月7日` (the year once when both days share it).
fn days(from: NaiveDate, to: NaiveDate) -> String {
    if from == to {
        day(from)
    } else if from.year() == to.year() {
        format!("{}至{}", day(from), to.format("%-m月%-d日"))
    } else {
        format!("{}至{}", day(from), day(to))
    }
}

/// `2026年10月8日（星期四）17:30`, in the calendar's zone.
fn at(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let local = t.with_timezone(&tz);
    format!(
        "{}（{}）{}",
        day(local.date_naive()),
        weekday(local.date_naive()),
        local.format("%H:%M")
    )
}

/// `3 小时 30 分钟` of office time.
fn office_time(minutes: i64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} 分钟"),
        (h, 0) => format!("{h} 小时"),
        (h, m) => format!("{h} 小时 {m} 分钟"),
    }
}

/// One step said in Chinese.
pub(super) fn step_text(step: &Step, tz: chrono_tz::Tz) -> String {
    match step {
        Step::Started { at: t, limit } => match limit {
            Some((amount, DurationUnit::WorkDays)) => format!(
                "{} 开始计时，时限 {}：当日不计，从次一个工作日起算",
                at(*t, tz),
                limit_text(*amount, DurationUnit::WorkDays)
            ),
            Some((amount, DurationUnit::Days)) => format!(
                "{} 开始计时，时限 {}：末日为休息日的，顺延至下一个工作日",
                at(*t, tz),
                limit_text(*amount, DurationUnit::Days)
            ),
            Some((amount, unit)) => format!(
                "{} 开始计时，时限 {}",
                at(*t, tz),
                limit_text(*amount, *unit)
            ),
            None => format!("{} 开始计时", at(*t, tz)),
        },
        Step::Skipped { from, to, name } => {
            let count = (*to - *from).num_days() + 1;
            let name = if name.is_empty() { "休息日" } else { name };
            if count == 1 {
                format!("跳过 {}（{}）{name}，不计入", day(*from), weekday(*from))
            } else {
                format!("跳过 {} {name}，共 {count} 天，不计入", days(*from, *to))
            }
        }
        Step::MakeUpDay { date, name } => format!(
            "计入 {}（{}）{}：调休上班日，按工作日计算",
            day(*date),
            weekday(*date),
            if name.is_empty() { "调休" } else { name }
        ),
        Step::Paused {
            at: t,
            remaining_minutes,
        } => match remaining_minutes {
            Some(m) => format!(
                "{} 暂停计时，剩余办公时间 {}；暂停期间不计",
                at(*t, tz),
                office_time(*m)
            ),
            None => format!("{} 暂停计时；暂停期间不计", at(*t, tz)),
        },
        Step::Resumed { at: t, minutes } => match minutes {
            Some(m) => format!(
                "{} 恢复计时，以剩余办公时间 {} 继续计算",
                at(*t, tz),
                office_time(*m)
            ),
            None => format!("{} 恢复计时", at(*t, tz)),
        },
        Step::Extended { at: t, by, reason } => {
            let by = by
                .map(|(a, u)| format!(" {}", limit_text(a, u)))
                .unwrap_or_default();
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!("，理由：{reason}")
            };
            format!("{} 延长时限{by}{reason}", at(*t, tz))
        }
        Step::Stopped { at: t } => format!("{} 停止计时", at(*t, tz)),
        Step::Due {
            at: t,
            missing_years,
        } => {
            if missing_years.is_empty() {
                format!("到期：{}", at(*t, tz))
            } else {
                let years: Vec<String> = missing_years.iter().map(|y| format!("{y}年")).collect();
                format!(
                    "到期：{}（暂定：日历缺少{}的节假日安排，只按周末计算；补充后重新计算）",
                    at(*t, tz),
                    years.join("、")
                )
            }
        }
    }
}

/// The clocks of a case as the page shows them.
pub(super) fn clocks(
    reports: &[(ClockReport, Option<DateTime<Utc>>)],
    labels: &ProcessLabels,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Vec<minijinja::Value> {
    reports
        .iter()
        .map(|(r, warn)| {
            let (status, status_class) = match r.status {
                ClockStatus::Running => ("计时中", "running"),
                ClockStatus::Overdue => ("已超期", "overdue"),
                ClockStatus::Paused => ("已暂停", "paused"),
                ClockStatus::Stopped => ("已停止", "stopped"),
            };
            let (light, light_text) = match r.status {
                ClockStatus::Running | ClockStatus::Overdue => light(r.due, *warn, now),
                _ => ("", ""),
            };
            minijinja::context! {
                label => labels.clock(&r.name),
                status => status,
                status_class => status_class,
                light => light,
                light_text => light_text,
                started => r.started_at.map(|t| at(t, tz)),
                limit => r.limit.map(|(a, u)| limit_text(a, u)),
                due => r.due.map(|t| at(t, tz)),
                warn => warn.filter(|_| r.due.is_some()).map(|t| at(t, tz)),
                remaining => r.remaining_minutes.map(office_time),
                steps => r.steps.iter().map(|s| step_text(s, tz)).collect::<Vec<_>>(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_in_chinese_with_dates_as_people_write_them() {
        let tz = chrono_tz::Asia::Shanghai;
        let d = |s: &str| s.parse::<NaiveDate>().expect("date");
        let skipped = Step::Skipped {
            from: d("2026-10-01"),
            to: d("2026-10-07"),
            name: "国庆节".into(),
        };
        assert_eq!(
            step_text(&skipped, tz),
            "跳过 2026年10月1日至10月7日 国庆节，共 7 天，不计入"
        );
        let made_up = Step::MakeUpDay {
            date: d("2026-10-10"),
            name: "国庆节补班".into(),
        };
        assert_eq!(
            step_text(&made_up, tz),
            "计入 2026年10月10日（星期六）国庆节补班：调休上班日，按工作日计算"
        );
        let due = DateTime::parse_from_rfc3339("2026-10-16T09:30:00Z")
            .expect("time")
            .to_utc();
        assert_eq!(
            step_text(
                &Step::Due {
                    at: due,
                    missing_years: vec![]
                },
                tz
            ),
            "到期：2026年10月16日（星期五）17:30"
        );
        let paused = Step::Paused {
            at: due,
            remaining_minutes: Some(810),
        };
        assert_eq!(
            step_text(&paused, tz),
            "2026年10月16日（星期五）17:30 暂停计时，剩余办公时间 13 小时 30 分钟；暂停期间不计"
        );
    }
}
