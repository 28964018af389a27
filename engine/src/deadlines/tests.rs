use super::*;
use crate::calendar::Calendars;
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use std::path::Path;
use std::sync::OnceLock;

fn calendars() -> &'static Calendars {
    static CALENDARS: OnceLock<Calendars> = OnceLock::new();
    CALENDARS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../calendars");
        Calendars::load_dir(&dir).unwrap_or_else(|e| panic!("calendars/ must load: {e}"))
    })
}

/// A Beijing wall-clock time.
fn bj(s: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test time");
    Tz::Asia__Shanghai
        .from_local_datetime(&local)
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("test date")
}

fn running(due: DateTime<Utc>) -> ClockState {
    ClockState {
        due_at: Some(due.timestamp_millis()),
        remaining_minutes: None,
        running: true,
        provisional: false,
        timers: Vec::new(),
        basis: None,
        bound: Vec::new(),
    }
}

const WD: DurationUnit = DurationUnit::WorkDays;

#[test]
fn national_day_is_skipped_and_its_make_up_saturday_counted() {
    let start = bj("2026-09-28 14:00");
    let events = [ClockEvent::Started {
        at: start,
        limit: Some((10, WD)),
    }];
    let state = running(bj("2026-10-16 17:30"));
    let r = explain_clock("statutory", &events, Some(&state), None, calendars(), start);
    // 9-29, 9-30, (10-1..10-7 off), 10-8, 10-9, 10-10 (make-up Saturday), 10-12..10-16.
    assert_eq!(
        r.steps,
        vec![
            Step::Started {
                at: start,
                limit: Some((10, WD))
            },
            Step::Skipped {
                from: date("2026-10-01"),
                to: date("2026-10-07"),
                name: "国庆节".into()
            },
            Step::MakeUpDay {
                date: date("2026-10-10"),
                name: "国庆节补班".into()
            },
            Step::Due {
                at: bj("2026-10-16 17:30"),
                missing_years: vec![]
            },
        ]
    );
    assert_eq!(r.status, ClockStatus::Running);
    assert_eq!(r.due, Some(bj("2026-10-16 17:30")));
    assert_eq!(r.limit, Some((10, WD)));
}

#[test]
fn a_year_end_passes_new_year_and_counts_its_make_up_sunday() {
    let start = bj("2025-12-29 10:00");
    let events = [ClockEvent::Started {
        at: start,
        limit: Some((5, WD)),
    }];
    let r = explain_clock("c", &events, None, None, calendars(), start);
    // 12-30, 12-31, (1-1..1-3 元旦), 1-4 (Sunday made a working day), 1-5, 1-6.
    assert!(r.steps.contains(&Step::Skipped {
        from: date("2026-01-01"),
        to: date("2026-01-03"),
        name: "元旦".into()
    }));
    assert!(r.steps.contains(&Step::MakeUpDay {
        date: date("2026-01-04"),
        name: "元旦补班".into()
    }));
    assert_eq!(
        r.steps.last(),
        Some(&Step::Due {
            at: bj("2026-01-06 17:30"),
            missing_years: vec![]
        })
    );
    // No state: a clock that is not running (stopped).
    assert_eq!(r.status, ClockStatus::Stopped);
}

#[test]
fn a_pause_is_said_and_the_time_left_counted_after_the_holidays() {
    let start = bj("2026-09-21 08:30");
    // Two working days of office time (6.5 h each) left at the pause.
    let left = 2 * 390;
    let events = [
        ClockEvent::Started {
            at: start,
            limit: Some((5, WD)),
        },
        ClockEvent::Paused {
            at: bj("2026-09-24 08:30"),
            remaining_minutes: Some(left),
        },
        ClockEvent::Resumed {
            at: bj("2026-09-30 08:30"),
            minutes: Some(left),
        },
    ];
    let now = bj("2026-10-08 09:00");
    let state = running(bj("2026-10-08 17:30"));
    let r = explain_clock("promised", &events, Some(&state), None, calendars(), now);
    let paused = r
        .steps
        .iter()
        .position(|s| matches!(s, Step::Paused { .. }))
        .expect("the pause is a step");
    let resumed = r
        .steps
        .iter()
        .position(|s| matches!(s, Step::Resumed { .. }))
        .expect("the resumption is a step");
    assert!(paused < resumed);
    // After resuming: 9-30 counts, National Day is passed over, 10-8 ends it.
    let after = &r.steps[resumed..];
    assert!(after.contains(&Step::Skipped {
        from: date("2026-10-01"),
        to: date("2026-10-07"),
        name: "国庆节".into()
    }));
    assert_eq!(
        after.last(),
        Some(&Step::Due {
            at: bj("2026-10-08 17:30"),
            missing_years: vec![]
        })
    );
    assert_eq!(r.status, ClockStatus::Running);
}

#[test]
fn an_extension_counts_on_from_the_due_date_with_its_reason() {
    let start = bj("2026-09-28 14:00");
    let events = [
        ClockEvent::Started {
            at: start,
            limit: Some((10, WD)),
        },
        ClockEvent::Extended {
            at: bj("2026-10-12 10:00"),
            by: Some((2, WD)),
            reason: "特殊情况延长办理时限".into(),
        },
    ];
    let now = bj("2026-10-21 09:00");
    let state = running(bj("2026-10-20 17:30"));
    let r = explain_clock("statutory", &events, Some(&state), None, calendars(), now);
    assert!(r.steps.contains(&Step::Extended {
        at: bj("2026-10-12 10:00"),
        by: Some((2, WD)),
        reason: "特殊情况延长办理时限".into()
    }));
    assert_eq!(
        r.steps.last(),
        Some(&Step::Due {
            at: bj("2026-10-20 17:30"),
            missing_years: vec![]
        })
    );
    assert_eq!(r.status, ClockStatus::Overdue);
}

#[test]
fn history_entries_read_back_as_events() {
    let at = bj("2026-10-12 10:00");
    let data = serde_json::json!({
        "clock": "statutory", "op": "extended", "amount": 15, "unit": "WorkDays",
        "reason": "特殊情况", "due_at": 0,
    });
    assert_eq!(
        ClockEvent::from_history(at, "clock statutory extended to …: 特殊情况", &data),
        Some((
            "statutory".to_string(),
            ClockEvent::Extended {
                at,
                by: Some((15, WD)),
                reason: "特殊情况".into()
            }
        ))
    );
    // An entry written before the data named the operation: from its text.
    let old = serde_json::json!({ "clock": "promised" });
    assert_eq!(
        ClockEvent::from_history(at, "clock promised paused, 780 office minutes left", &old),
        Some((
            "promised".to_string(),
            ClockEvent::Paused {
                at,
                remaining_minutes: None
            }
        ))
    );
    assert_eq!(
        ClockEvent::from_history(at, "x", &serde_json::json!({})),
        None
    );
}

const FLOW: &str = r#"
process p "测试" version 1
role desk "窗口"
clock limit "办理时限" {
  deadline 10 workdays {
    before 2 workdays: notify role desk "快到期"
    before 3 workdays: notify role desk "提前提醒"
    at due level 1: notify role desk "已超期"
  }
}
clock quiet "无预警" {
  deadline 10 workdays {
    at due level 1: notify role desk "已超期"
  }
}
start s -> begin
step begin "开始" {
  start clock limit
  start clock quiet
} -> a
task a "按时限办理" {
  queue desk
  deadline 10 workdays clock limit
  outcome ok "好" -> b
}
task b "自己的期限" {
  queue desk
  deadline 2 workdays {
    before 4 workhours: notify role desk "快到期"
  }
  outcome ok "好" -> c
}
task c "无期限" {
  queue desk
  outcome ok "好" -> done
}
end done "结束" result done
"#;

fn model() -> Process {
    let compiled = yimen_dsl::compile("p.flow", FLOW, &|_| None);
    compiled
        .process
        .unwrap_or_else(|| panic!("test process checks: {:?}", compiled.diagnostics))
}

#[test]
fn warning_periods_come_from_the_governing_clock_or_the_tasks_own_ladder() {
    let m = model();
    assert_eq!(clock_warnings(&m, "limit"), vec![(2, WD), (3, WD)]);
    assert_eq!(clock_warnings(&m, "quiet"), vec![]);
    assert_eq!(task_warnings(&m, "a"), vec![(2, WD), (3, WD)]);
    assert_eq!(task_warnings(&m, "b"), vec![(4, DurationUnit::WorkHours)]);
    assert_eq!(task_warnings(&m, "c"), vec![]);
}

#[test]
fn lights_turn_yellow_at_the_earliest_rung_counted_in_working_days() {
    let m = model();
    let due = bj("2026-10-09 17:30");
    let warn = warning_from(due, &task_warnings(&m, "a"), None, calendars());
    // Three working days before Friday 10-9 17:30, National Day passed over: 9-29 17:30.
    assert_eq!(warn, Some(bj("2026-09-29 17:30")));
    assert_eq!(light(due, warn, bj("2026-09-29 17:00")), Light::Green);
    assert_eq!(light(due, warn, bj("2026-09-29 17:30")), Light::Yellow);
    assert_eq!(light(due, warn, bj("2026-10-09 17:29")), Light::Yellow);
    assert_eq!(light(due, warn, due), Light::Red);
    // No rung: green until red.
    let none = warning_from(due, &clock_warnings(&m, "quiet"), None, calendars());
    assert_eq!(none, None);
    assert_eq!(light(due, none, bj("2026-10-09 17:00")), Light::Green);
}
