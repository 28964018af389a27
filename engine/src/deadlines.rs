//! A case's deadlines as people are owed them: for each named clock, its limit, its due date
//! and why that day (holidays passed over, make-up working days counted, pauses, extensions
//! with their reasons), in steps a page says in its own words; and when a deadline's light
//! turns yellow (the warning period its clock declares).
//!
//! Pure: the steps come from the clock's history entries (what the runtime wrote when it
//! started, paused, resumed, extended or stopped the clock), its stored state and the
//! calendar ([`DueDates::explain_add`]); no database, no clock.

use crate::calendar::Explanation;
use crate::runtime::due::DueDates;
use crate::runtime::state::ClockState;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;
use yimen_dsl::model::{Deadline, DurationUnit, EscalationWhen, ExprKind, NodeKind, Process};

/// One thing done to a clock, as its history entry recorded it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockEvent {
    /// Started with a limit (`None`: an entry written before the limit was recorded).
    Started {
        at: DateTime<Utc>,
        limit: Option<(i64, DurationUnit)>,
    },
    /// Paused with this much office time left.
    Paused {
        at: DateTime<Utc>,
        remaining_minutes: Option<i64>,
    },
    /// Resumed with the office time left at the pause.
    Resumed {
        at: DateTime<Utc>,
        minutes: Option<i64>,
    },
    Extended {
        at: DateTime<Utc>,
        by: Option<(i64, DurationUnit)>,
        reason: String,
    },
    Stopped {
        at: DateTime<Utc>,
    },
}

fn unit_of(data: &Json) -> Option<(i64, DurationUnit)> {
    let amount = data["amount"].as_i64()?;
    let unit = serde_json::from_value(data["unit"].clone()).ok()?;
    Some((amount, unit))
}

impl ClockEvent {
    /// The clock and the event of a history entry of kind `clock` (its `data` as the runtime
    /// writes it; an older entry's `text` when its data names no operation). `None`: not a
    /// clock entry this understands.
    pub fn from_history(at: DateTime<Utc>, text: &str, data: &Json) -> Option<(String, Self)> {
        let clock = data["clock"].as_str()?.to_string();
        let op = match data["op"].as_str() {
            Some(op) => op.to_string(),
            None => ["started", "paused", "resumed", "stopped", "extended"]
                .into_iter()
                .find(|w| text.contains(w))?
                .to_string(),
        };
        let event = match op.as_str() {
            "started" => ClockEvent::Started {
                at,
                limit: unit_of(data),
            },
            "paused" => ClockEvent::Paused {
                at,
                remaining_minutes: data["remaining_minutes"].as_i64(),
            },
            "resumed" => ClockEvent::Resumed {
                at,
                minutes: data["minutes"].as_i64(),
            },
            "extended" => ClockEvent::Extended {
                at,
                by: unit_of(data),
                reason: match data["reason"].as_str() {
                    Some(reason) => reason.to_string(),
                    // "clock X extended to …: reason"
                    None => text.split_once(": ").map_or("", |(_, r)| r).to_string(),
                },
            },
            "stopped" => ClockEvent::Stopped { at },
            _ => return None,
        };
        Some((clock, event))
    }
}

/// Where a clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStatus {
    Running,
    /// Running and past its due time.
    Overdue,
    Paused,
    Stopped,
}

/// One step of a deadline's explanation, in time order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Counting began: `limit` after `at` (the day of `at` itself does not count for working
    /// days).
    Started {
        at: DateTime<Utc>,
        limit: Option<(i64, DurationUnit)>,
    },
    /// Days off passed over while counting (a holiday, a local day off), `from..=to`.
    Skipped {
        from: NaiveDate,
        to: NaiveDate,
        name: String,
    },
    /// A weekend day made a working day (调休上班), counted as one.
    MakeUpDay {
        date: NaiveDate,
        name: String,
    },
    /// The clock stopped counting; `remaining_minutes` of office time were left.
    Paused {
        at: DateTime<Utc>,
        remaining_minutes: Option<i64>,
    },
    /// Counting went on with the office time left.
    Resumed {
        at: DateTime<Utc>,
        minutes: Option<i64>,
    },
    /// The limit was extended (`by`), for `reason`.
    Extended {
        at: DateTime<Utc>,
        by: Option<(i64, DurationUnit)>,
        reason: String,
    },
    Stopped {
        at: DateTime<Utc>,
    },
    /// The due time this counting gives.
    Due {
        at: DateTime<Utc>,
        /// Years the calendar has no data for (weekends only counted there): provisional.
        missing_years: Vec<i32>,
    },
}

/// One clock of a case with the steps that explain its due time.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockReport {
    pub name: String,
    pub status: ClockStatus,
    /// When it was (last) started.
    pub started_at: Option<DateTime<Utc>>,
    /// The limit it was (last) started with.
    pub limit: Option<(i64, DurationUnit)>,
    /// Its due time while running.
    pub due: Option<DateTime<Utc>>,
    /// Office minutes left while paused.
    pub remaining_minutes: Option<i64>,
    pub steps: Vec<Step>,
}

/// The holidays skipped and make-up days counted by one computation, as steps (runs of
/// consecutive days with one name as one step), then its due time.
fn counted(explanation: Option<Explanation>, steps: &mut Vec<Step>) -> Option<DateTime<Utc>> {
    let e = explanation?;
    for day in &e.holidays_skipped {
        match steps.last_mut() {
            Some(Step::Skipped { to, name, .. })
                if *name == day.name && to.succ_opt() == Some(day.date) =>
            {
                *to = day.date;
            }
            _ => steps.push(Step::Skipped {
                from: day.date,
                to: day.date,
                name: day.name.clone(),
            }),
        }
    }
    // Make-up days are met in date order among the skipped ones; listed after them.
    for day in &e.make_up_days_counted {
        steps.push(Step::MakeUpDay {
            date: day.date,
            name: day.name.clone(),
        });
    }
    steps.push(Step::Due {
        at: e.due,
        missing_years: e.missing_years.clone(),
    });
    Some(e.due)
}

/// Explains clock `name` from its `events` (in order), its stored `state` and the calendar
/// it counts on (`calendar`, `None`: the default), as of `now`.
pub fn explain_clock(
    name: &str,
    events: &[ClockEvent],
    state: Option<&ClockState>,
    calendar: Option<&str>,
    due: &dyn DueDates,
    now: DateTime<Utc>,
) -> ClockReport {
    let mut steps = Vec::new();
    let mut started_at = None;
    let mut limit = None;
    let mut running_due: Option<DateTime<Utc>> = None;
    for event in events {
        match event.clone() {
            ClockEvent::Started { at, limit: l } => {
                started_at = Some(at);
                limit = l;
                steps.push(Step::Started { at, limit: l });
                running_due = l.and_then(|(amount, unit)| {
                    counted(due.explain_add(calendar, at, amount, unit), &mut steps)
                });
            }
            ClockEvent::Paused {
                at,
                remaining_minutes,
            } => {
                steps.push(Step::Paused {
                    at,
                    remaining_minutes,
                });
                running_due = None;
            }
            ClockEvent::Resumed { at, minutes } => {
                steps.push(Step::Resumed { at, minutes });
                running_due = minutes
                    .and_then(|m| counted(due.explain_office_minutes(calendar, at, m), &mut steps));
            }
            ClockEvent::Extended { at, by, reason } => {
                steps.push(Step::Extended { at, by, reason });
                // Running: the extension counts on from the due time; paused: it adds to the
                // time left, said by the pause's own step.
                if let (Some(from), Some((amount, unit))) = (running_due, by) {
                    running_due =
                        counted(due.explain_add(calendar, from, amount, unit), &mut steps);
                }
            }
            ClockEvent::Stopped { at } => {
                steps.push(Step::Stopped { at });
                running_due = None;
            }
        }
    }
    // The stored state is what the timers follow (a recomputation may have moved it since
    // the history was written): its due time is the one shown.
    let (status, due_at, remaining) = match state {
        Some(s) if s.running => {
            let at = s
                .due_at
                .and_then(DateTime::from_timestamp_millis)
                .or(running_due);
            let overdue = at.is_some_and(|at| at <= now);
            let status = if overdue {
                ClockStatus::Overdue
            } else {
                ClockStatus::Running
            };
            (status, at, None)
        }
        Some(s) if s.remaining_minutes.is_some() => {
            (ClockStatus::Paused, None, s.remaining_minutes)
        }
        _ => (ClockStatus::Stopped, None, None),
    };
    ClockReport {
        name: name.to_string(),
        status,
        started_at,
        limit,
        due: due_at,
        remaining_minutes: remaining,
        steps,
    }
}

/// The deadline that governs task node `node` of `model`, and the clock it hangs on (`None`:
/// the task's own).
fn task_deadline<'m>(model: &'m Process, node: &str) -> Option<&'m Deadline> {
    let node = model.nodes.iter().find(|n| n.id.name == node)?;
    match &node.kind {
        NodeKind::Task(task) => task.deadline.as_ref(),
        _ => None,
    }
}

/// The `before` rungs of a ladder, as written (literal durations; a rung whose lead is an
/// expression of the case's data is not a fixed warning period and is left out).
fn before_rungs(deadline: &Deadline) -> Vec<(i64, DurationUnit)> {
    deadline
        .ladder
        .iter()
        .filter_map(|e| match &e.when {
            EscalationWhen::Before(expr) => match expr.kind {
                ExprKind::Duration { amount, unit } => Some((amount, unit)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The warning periods of clock `name`: the leads of its `before` rungs.
pub fn clock_warnings(model: &Process, name: &str) -> Vec<(i64, DurationUnit)> {
    model
        .clocks
        .iter()
        .find(|c| c.name.name == name)
        .and_then(|c| c.deadline.as_ref())
        .map(before_rungs)
        .unwrap_or_default()
}

/// The warning periods of a task's deadline: those of the clock that governs it (`deadline …
/// clock NAME`), else of its own ladder. Empty: no warning period, green until red.
pub fn task_warnings(model: &Process, node: &str) -> Vec<(i64, DurationUnit)> {
    let Some(deadline) = task_deadline(model, node) else {
        return Vec::new();
    };
    let of_clock = deadline
        .clock
        .as_ref()
        .map(|c| clock_warnings(model, &c.name))
        .unwrap_or_default();
    if of_clock.is_empty() {
        before_rungs(deadline)
    } else {
        of_clock
    }
}

/// When a deadline due at `due` starts its warning: the earliest instant of its `before`
/// rungs (`warnings`) counted back on `calendar`. `None`: no warning period.
pub fn warning_from(
    due: DateTime<Utc>,
    warnings: &[(i64, DurationUnit)],
    calendar: Option<&str>,
    dates: &dyn DueDates,
) -> Option<DateTime<Utc>> {
    warnings
        .iter()
        .map(|(amount, unit)| dates.before(calendar, due, *amount, *unit).at)
        .min()
}

/// The light of a deadline: red when due, yellow from its warning on, green before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    Green,
    Yellow,
    Red,
}

/// The light of a deadline due at `due` whose warning starts at `warn` (`None`: none).
pub fn light(due: DateTime<Utc>, warn: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Light {
    if due <= now {
        Light::Red
    } else if warn.is_some_and(|w| w <= now) {
        Light::Yellow
    } else {
        Light::Green
    }
}

#[cfg(test)]
mod tests;
