//! A deadline that reaches into a year the calendar does not cover is provisional; when that
//! year's data is added it is computed again, the change recorded in history.

mod support;

use serde_json::json;
use std::sync::Arc;
use support::*;
use yimen_engine::Engine;
use yimen_engine::clock::ManualClock;

/// A case accepted, forwarded and approved by the department on Thursday 31 December 2026: its
/// feedback is due within 2 working days, in 2027.
async fn approved_on_new_years_eve(engine: &Engine, clock: &ManualClock, key: &str) -> String {
    let (case, _) = accepted_case(engine, key).await;
    agree_and_forward(engine, &case).await;
    clock.set(t("2026-12-31T10:00:00+08:00")).expect("moves");
    let v = json!({"decision": "approved"});
    complete(
        engine,
        &case,
        "department:civil_affairs",
        "dept-1",
        "decided",
        v,
    )
    .await;
    case
}

#[tokio::test]
async fn provisional_deadlines_move_when_next_year_is_added() {
    let db = Db::sqlite("recompute");
    let clock = ManualClock::new(t("2026-12-30T10:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    let case = approved_on_new_years_eve(&engine, &clock, "SA-2026-1230").await;

    // Feedback within 2 working days of 31 December: 2027 has no data, so weekends only
    // (Friday 1 January counted as a working day): due Monday 4 January, provisional.
    let view = engine.instance(&case).await.expect("instance");
    assert!(view.provisional_due);
    let feedback = task_at(&view, "feedback");
    assert_eq!(feedback.due_at, Some(t("2027-01-04T17:30:00+08:00")));
    // The ledger says so too: the entry of that due time is marked provisional.
    let history = engine.history(&case).await.expect("history");
    assert!(
        history.iter().any(|h| h.kind == "due_computed"
            && h.text.starts_with("due 2027-01-04 17:30")
            && h.text.contains("provisional")
            && h.data["provisional"] == json!(true)),
        "{history:#?}"
    );

    // The administrator adds 2027 (1 January a holiday) and the server starts again.
    let (engine, with_2027) = restart_with_2027(&db, &clock).await;
    let done = engine
        .recompute_provisional(&with_2027)
        .await
        .expect("recomputes");
    assert!(done.moved >= 1, "{done:?}");
    let view = engine.instance(&case).await.expect("instance");
    let feedback = task_at(&view, "feedback");
    assert_eq!(feedback.due_at, Some(t("2027-01-05T17:30:00+08:00")));
    assert!(
        view.timers
            .iter()
            .any(|tm| tm.task_id.as_deref() == Some(feedback.id.as_str())
                && tm.due_at == t("2027-01-05T17:30:00+08:00")),
        "{:#?}",
        view.timers
    );
    let history = engine.history(&case).await.expect("history");
    let notes: Vec<_> = history
        .iter()
        .filter(|h| h.kind == "deadline_recomputed")
        .collect();
    assert!(!notes.is_empty());
    assert!(
        notes
            .iter()
            .any(|h| h.text.contains("2027-01-04 17:30:00 +08:00 recomputed with new calendar data: 2027-01-05 17:30:00 +08:00")),
        "{notes:#?}"
    );
    // Again: nothing moves.
    let again = engine
        .recompute_provisional(&with_2027)
        .await
        .expect("recomputes");
    assert_eq!(again.moved, 0, "{again:?}");
    db.finish().await;
}

/// `yimen serve` checks the calendar folder while running: a 2027 block written to the file
/// moves the provisional deadline without a restart; a broken file changes nothing.
#[tokio::test]
async fn a_calendar_file_changed_while_serving_is_reloaded() {
    let db = Db::sqlite("reload");
    let cal_dir = db.dir().join("calendars");
    std::fs::create_dir_all(&cal_dir).expect("dir");
    for entry in std::fs::read_dir(root().join("calendars")).expect("calendars") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, cal_dir.join(path.file_name().expect("name"))).expect("copies");
        }
    }
    let reloading = Arc::new(yimen_engine::ReloadingCalendars::load(&cal_dir).expect("loads"));
    let clock = ManualClock::new(t("2026-12-30T10:00:00+08:00"));
    let engine = db.open(Arc::new(clock.clone()), reloading.clone()).await;
    let case = approved_on_new_years_eve(&engine, &clock, "SA-2026-1231").await;
    let view = engine.instance(&case).await.expect("instance");
    assert!(view.provisional_due);
    assert_eq!(
        task_at(&view, "feedback").due_at,
        Some(t("2027-01-04T17:30:00+08:00"))
    );

    // Nothing changed on disk: nothing happens.
    assert!(
        engine
            .reload_calendars(&reloading)
            .await
            .expect("checks")
            .is_none()
    );

    // A broken file: a warning, the loaded calendars stay.
    let before = reloading.current().versions();
    std::fs::write(cal_dir.join("broken.yaml"), "name: [unclosed\n").expect("writes");
    let err = engine
        .reload_calendars(&reloading)
        .await
        .expect_err("a broken folder is refused");
    assert!(err.to_string().contains("broken.yaml"), "{err}");
    assert_eq!(reloading.current().versions(), before);
    std::fs::remove_file(cal_dir.join("broken.yaml")).expect("removes");

    // The administrator adds 2027 (1–3 January holidays) while the server runs.
    let mut text = std::fs::read_to_string(cal_dir.join("cn_mainland.yaml")).expect("reads");
    text.push_str(
        "  2027:\n    notice: test\n    holidays:\n      - name: 元旦\n        from: 2027-01-01\n        to: 2027-01-03\n    make_up_days: []\n",
    );
    std::fs::write(cal_dir.join("cn_mainland.yaml"), text).expect("writes");
    let done = engine
        .reload_calendars(&reloading)
        .await
        .expect("reloads")
        .expect("a change");
    assert!(done.moved >= 1, "{done:?}");
    assert_ne!(reloading.current().versions(), before);
    let view = engine.instance(&case).await.expect("instance");
    assert_eq!(
        task_at(&view, "feedback").due_at,
        Some(t("2027-01-05T17:30:00+08:00"))
    );
    let history = engine.history(&case).await.expect("history");
    assert!(
        history.iter().any(|h| h.kind == "deadline_recomputed"),
        "{history:#?}"
    );
    // Checked again: unchanged.
    assert!(
        engine
            .reload_calendars(&reloading)
            .await
            .expect("checks")
            .is_none()
    );
    db.finish().await;
}
