//! Named clocks and what hangs on them: a clock's ladder is recomputed when calendar data for
//! the year it reaches into is added; a task deadline bound to a clock (`deadline ... clock X`)
//! is suspended while the clock is paused and follows it when it resumes. Both on SQLite and,
//! with `YIMEN_TEST_POSTGRES`, on PostgreSQL.

mod support;

use serde_json::{Value as Json, json};
use std::sync::Arc;
use support::*;
use yimen_engine::Engine;
use yimen_engine::clock::ManualClock;
use yimen_engine::scheduler::advance;

on_both_databases!(
    a_statutory_clock_in_an_uncovered_year_is_recomputed,
    a_deadline_bound_to_a_paused_clock_waits_for_it,
);

fn ms(s: &str) -> Json {
    json!(t(s).timestamp_millis())
}

/// A named clock of an instance, as stored in its run state.
async fn clock_state(engine: &Engine, case: &str, name: &str) -> Json {
    let (_, state) = yimen_engine::store::timers::instance_state(engine.pool(), case)
        .await
        .expect("reads")
        .expect("the instance");
    let state: Json = serde_json::from_str(&state).expect("state JSON");
    state["clocks"][name].clone()
}

/// How many escalations of `level` the case's history holds.
async fn escalations(engine: &Engine, case: &str, level: u64) -> usize {
    engine
        .history(case)
        .await
        .expect("history")
        .iter()
        .filter(|h| h.kind == "escalation" && h.data["level"] == json!(level))
        .count()
}

// ---- 1. a clock's ladder in a year the calendar did not cover ----

async fn a_statutory_clock_in_an_uncovered_year_is_recomputed(db: Db) {
    let clock = ManualClock::new(t("2026-12-01T09:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    let (case, _) = accepted_case(&engine, "SA-2026-1201").await;
    agree_and_forward(&engine, &case).await;
    // Accepted 1 December: 30 working days are 22 in December and 8 in January 2027, which
    // has no data yet: counted on weekends only (1 January a working day), provisional.
    let statutory = clock_state(&engine, &case, "statutory").await;
    assert_eq!(
        statutory["due_at"],
        ms("2027-01-12T17:30:00+08:00"),
        "{statutory}"
    );
    assert_eq!(statutory["provisional"], json!(true));
    assert!(engine.instance(&case).await.expect("view").provisional_due);
    let rungs_at = |view: &yimen_engine::InstanceView, at: &str| {
        view.timers
            .iter()
            .filter(|tm| tm.kind == "clock_escalation" && tm.due_at == t(at))
            .count()
    };
    let view = engine.instance(&case).await.expect("view");
    assert_eq!(
        rungs_at(&view, "2027-01-12T17:30:00+08:00"),
        1,
        "{:#?}",
        view.timers
    );

    // The administrator adds 2027 (1 January off) and the server starts again.
    let (engine, with_2027) = restart_with_2027(&db, &clock).await;
    let done = engine
        .recompute_provisional(&with_2027)
        .await
        .expect("recomputes");
    assert!(done.moved >= 1, "{done:?}");
    let statutory = clock_state(&engine, &case, "statutory").await;
    assert_eq!(
        statutory["due_at"],
        ms("2027-01-13T17:30:00+08:00"),
        "{statutory}"
    );
    assert_eq!(statutory["provisional"], json!(false));
    let view = engine.instance(&case).await.expect("view");
    assert_eq!(
        rungs_at(&view, "2027-01-12T17:30:00+08:00"),
        0,
        "{:#?}",
        view.timers
    );
    assert_eq!(
        rungs_at(&view, "2027-01-13T17:30:00+08:00"),
        1,
        "{:#?}",
        view.timers
    );
    // Level 2 follows: 5 working days after the new due time.
    assert_eq!(
        rungs_at(&view, "2027-01-20T17:30:00+08:00"),
        1,
        "{:#?}",
        view.timers
    );
    // Every clock of the case (statutory, promised) is on full data now: the flag is cleared.
    assert!(!view.provisional_due, "{view:#?}");
    let history = engine.history(&case).await.expect("history");
    assert!(
        history.iter().any(|h| h.kind == "deadline_recomputed"
            && h.text
                .starts_with("clock statutory due 2027-01-12 17:30:00 +08:00")
            && h.text.contains("data: 2027-01-13 17:30:00 +08:00")
            && h.data["provisional"] == json!(false)),
        "{history:#?}"
    );
    // Again: nothing moves.
    let again = engine
        .recompute_provisional(&with_2027)
        .await
        .expect("recomputes");
    assert_eq!(again.moved, 0, "{again:?}");

    // On the simulated clock the rung fires at the new time, not the old one.
    advance(&engine, &clock, t("2027-01-12T17:31:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 0);
    advance(&engine, &clock, t("2027-01-13T17:30:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 1);
}

// ---- 2. a task deadline bound to a clock that pauses ----

const BOUND: &str = r#"process bound_clock "挂在时钟上的期限" version 1

role clerk "经办人"
role supervision "督办"

clock limit "办理时限" {
  deadline 3 workdays
}

start begin "开始" -> open_clock

step open_clock "开始计时" {
  start clock limit
} -> fork

parallel fork "并行" {
  -> work
  -> hold
}

task work "办理" {
  queue clerk
  deadline 3 workdays clock limit {
    at due level 1: notify role supervision "办理超时"
  }
  outcome done "办结" -> all
}

wait hold "等待补正" message materials_requested -> pausing

step pausing "暂停计时" {
  pause clock limit
} -> wait_materials

wait wait_materials "等待材料" message materials_supplied -> resuming

step resuming "恢复计时" {
  resume clock limit
} -> all

join all "汇合" -> finish

end finish "结束" result done
"#;

async fn a_deadline_bound_to_a_paused_clock_waits_for_it(db: Db) {
    // Monday 2 November 2026 (no holidays that month).
    let clock = ManualClock::new(t("2026-11-02T09:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    let case = deploy_and_start(&engine, "bound_clock.flow", BOUND, 1).await[0].clone();
    // 3 working days after Monday: Thursday 5 November, close of office hours.
    let view = engine.instance(&case).await.expect("view");
    assert_eq!(
        task_at(&view, "work").due_at,
        Some(t("2026-11-05T17:30:00+08:00"))
    );

    // Tuesday 09:00 the clock pauses: 360 + 390 + 390 office minutes are left.
    advance(&engine, &clock, t("2026-11-03T09:00:00+08:00"))
        .await
        .expect("advances");
    engine
        .message(&case, "materials_requested", vars(json!({})), "window-1")
        .await
        .expect("pauses");
    let view = engine.instance(&case).await.expect("view");
    assert_eq!(task_at(&view, "work").due_at, None, "suspended: {view:#?}");
    assert!(
        !view.timers.iter().any(|tm| tm.node == "work"),
        "no timer of the task while paused: {:#?}",
        view.timers
    );
    // Well past the old due time: nothing fires while the clock is paused.
    advance(&engine, &clock, t("2026-11-10T09:00:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 0);

    // Resumed Tuesday 10 November 09:00: 1140 office minutes later is Thursday 12 November
    // 17:30.
    engine
        .message(&case, "materials_supplied", vars(json!({})), "window-1")
        .await
        .expect("resumes");
    let view = engine.instance(&case).await.expect("view");
    assert_eq!(
        task_at(&view, "work").due_at,
        Some(t("2026-11-12T17:30:00+08:00"))
    );
    let history = engine.history(&case).await.expect("history");
    assert!(
        history
            .iter()
            .any(|h| h.kind == "deadline_suspended" && h.text.contains("clock limit paused")),
        "{history:#?}"
    );
    assert!(
        history
            .iter()
            .any(|h| h.kind == "deadline_rescheduled" && h.text.contains("2026-11-12 17:30")),
        "{history:#?}"
    );
    advance(&engine, &clock, t("2026-11-12T17:29:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 0);
    advance(&engine, &clock, t("2026-11-12T17:30:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 1);
    // Exactly once.
    advance(&engine, &clock, t("2026-11-30T17:30:00+08:00"))
        .await
        .expect("advances");
    assert_eq!(escalations(&engine, &case, 1).await, 1);
}
