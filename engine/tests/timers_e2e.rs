//! End to end on the simulated clock, with the real `processes/social_assistance.flow`, the
//! real calendars and the background services (timer loop, outbox delivery, inbox).

mod support;

use serde_json::json;
use std::sync::Arc;
use support::*;
use yimen_dsl::model::DurationUnit;
use yimen_engine::inbox::{self, InboxItem, InboxState};
use yimen_engine::{TaskFilter, TaskState};

async fn inbox_of(w: &World, role: &str) -> Vec<InboxItem> {
    inbox::list(&w.engine, role, None, 100)
        .await
        .expect("inbox lists")
}

fn escalations(items: &[InboxItem], level: i64) -> usize {
    items.iter().filter(|i| i.level == Some(level)).count()
}

#[tokio::test]
async fn national_day_deadlines_and_the_escalation_ladder() {
    // Wednesday 30 September 2026, 15:00: the afternoon before the National Day holiday.
    let w = World::open(&Db::memory(), NATIONAL_DAY_EVE, service_options()).await;
    // Reviewed and accepted that afternoon: the forwarding clock (1 working day) and the
    // statutory clock (30 working days for minimum living) start.
    let (case, hooks) = accepted_case(&w.engine, "SA-2026-0001").await;
    let history = w.engine.history(&case).await.expect("history");
    let started: Vec<&str> = history
        .iter()
        .filter(|h| h.kind == "clock" && h.text.starts_with("clock forwarding started"))
        .map(|h| h.text.as_str())
        .collect();
    // 1-7 October are the holiday; the first working day after the 30th is Thursday 8 October,
    // due at the close of office hours, shown in the calendar's zone with its offset (issue 19:
    // it was UTC, `09:30:00+00:00`).
    assert_eq!(
        started,
        ["clock forwarding started, due 2026-10-08 17:30:00 +08:00"]
    );
    // The due time explains itself in the timeline: the holiday it skipped, the notice behind it.
    let explained = history
        .iter()
        .find(|h| h.kind == "due_computed" && h.text.starts_with("due 2026-10-08 17:30"))
        .unwrap_or_else(|| panic!("no due_computed entry for 8 October: {history:#?}"));
    let explanation = explained.data["explanation"].as_str().unwrap_or_default();
    assert!(explanation.contains("国庆节"), "{explanation}");
    assert_eq!(explained.data["provisional"], json!(false));
    let view = w.engine.instance(&case).await.expect("instance");
    assert!(
        view.timers
            .iter()
            .any(|tm| tm.due_at == t("2026-10-08T17:30:00+08:00")),
        "{:#?}",
        view.timers
    );

    // The leader agrees on 8 October; the window forwards at 17:29, a minute before the limit.
    w.services
        .advance_to(t("2026-10-08T09:00:00+08:00"))
        .await
        .expect("advances");
    complete(
        &w.engine,
        &case,
        "street_leader",
        "leader-1",
        "agree",
        json!({}),
    )
    .await;
    w.services
        .advance_to(t("2026-10-08T17:29:00+08:00"))
        .await
        .expect("advances");
    complete(
        &w.engine,
        &case,
        "window",
        "window-1",
        "forwarded",
        json!({"department_clear": true}),
    )
    .await;
    // A day later: no forwarding escalation reached anyone.
    w.services
        .advance_to(t("2026-10-09T12:00:00+08:00"))
        .await
        .expect("advances");
    assert!(inbox_of(&w, "supervision").await.is_empty());
    assert!(inbox_of(&w, "street_leader").await.is_empty());

    // The department does not decide within 30 working days of acceptance.
    let cal = calendars();
    let cn = cal.get("cn_mainland").expect("cn_mainland");
    let accepted = t(NATIONAL_DAY_EVE);
    let due = cn.add(accepted, 30, DurationUnit::WorkDays).at;
    let level2 = cn.add(due, 5, DurationUnit::WorkDays).at;
    let report = w
        .services
        .advance_to(due + chrono::Duration::minutes(1))
        .await
        .expect("advances");
    assert!(report.fired >= 2, "{report:?}");
    let supervision = inbox_of(&w, "supervision").await;
    assert_eq!(escalations(&supervision, 1), 1, "{supervision:#?}");
    assert_eq!(supervision.len(), 1, "{supervision:#?}");
    let applicant = inbox_of(&w, "subject").await;
    assert_eq!(applicant.len(), 1, "{applicant:#?}");
    assert!(applicant[0].message.contains("超过时限"));
    // The reminder reached the department three working days before.
    let dept = inbox_of(&w, "department:civil_affairs").await;
    assert_eq!(escalations(&dept, 0), 1, "{dept:#?}");
    // The window has a follow-up task to find out why.
    let chase = w
        .engine
        .tasks(TaskFilter {
            instance: Some(case.clone()),
            state: Some(TaskState::Open),
            ..TaskFilter::default()
        })
        .await
        .expect("tasks");
    assert_eq!(
        chase.iter().filter(|t| t.node == "chase").count(),
        1,
        "{chase:#?}"
    );
    assert!(inbox_of(&w, "leadership").await.is_empty());

    // Five working days later: the second level, once.
    w.services
        .advance_to(level2 + chrono::Duration::minutes(1))
        .await
        .expect("advances");
    let leadership = inbox_of(&w, "leadership").await;
    assert_eq!(escalations(&leadership, 2), 1, "{leadership:#?}");
    assert_eq!(inbox_of(&w, "supervision").await.len(), 1);
    // More time: each rung of the statutory ladder fired once; only the promised clock
    // (45 working days from registration) adds its own level-1 notice.
    w.services
        .advance_by(chrono::Duration::days(20))
        .await
        .expect("advances");
    let statutory = |items: Vec<InboxItem>| {
        items
            .into_iter()
            .filter(|i| i.clock.as_deref() == Some("statutory"))
            .count()
    };
    assert_eq!(statutory(inbox_of(&w, "leadership").await), 1);
    assert_eq!(statutory(inbox_of(&w, "supervision").await), 1);
    assert_eq!(statutory(inbox_of(&w, "subject").await), 1);
    let promised: Vec<_> = inbox_of(&w, "supervision")
        .await
        .into_iter()
        .filter(|i| i.clock.as_deref() == Some("promised"))
        .collect();
    assert_eq!(promised.len(), 1, "{promised:#?}");

    // Acknowledged by the office, then closed when the department finally decides.
    let item = &inbox_of(&w, "supervision").await[0];
    let acked = inbox::ack(&w.engine, &item.id, "office-1")
        .await
        .expect("acks");
    assert_eq!(acked.state, "acked");
    assert_eq!(acked.acked_by.as_deref(), Some("office-1"));
    complete(
        &w.engine,
        &case,
        "department:civil_affairs",
        "dept-1",
        "decided",
        json!({"decision": "approved", "amount": "600.00"}),
    )
    .await;
    // The statutory clock stops when the result goes to the window: its escalations close.
    let open = inbox::list(&w.engine, "leadership", Some(InboxState::Open), 100)
        .await
        .expect("lists");
    assert!(open.is_empty(), "{open:#?}");
    let closed = inbox::list(&w.engine, "supervision", Some(InboxState::Closed), 100)
        .await
        .expect("lists");
    assert_eq!(closed.len(), 1, "{closed:#?}");
    assert_eq!(closed[0].id, item.id);
    let again = inbox::ack(&w.engine, &item.id, "office-1")
        .await
        .unwrap_err();
    assert_eq!(again.status(), 409, "{again}");

    // The registration webhook was delivered, signed, with its de-duplication id.
    let got = hooks.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:#?}");
    let (id, body, signed) = &got[0];
    assert!(signed, "signature verifies");
    assert_eq!(body["id"], json!(id));
    // The applicant's name reaches the ledger masked (张三 → 张*).
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("新登记案件：张*，xinhua"),
        "{body}"
    );
    assert_eq!(body["channel"], json!("webhook:ledger_hook"));
    // Personal data never leaves unmasked.
    assert!(!body.to_string().contains("150302199001011231"));
    assert!(!body.to_string().contains("张三"));
    w.services.stop().await;
}

#[tokio::test]
async fn a_task_completed_a_minute_before_its_deadline_escalates_nothing() {
    let w = World::open(&Db::memory(), NATIONAL_DAY_EVE, service_options()).await;
    let (case, _) = accepted_case(&w.engine, "SA-2026-0002").await;
    agree_and_forward(&w.engine, &case).await;
    // The department decides a minute before the statutory limit.
    let cn = calendars();
    let due = cn
        .get("cn_mainland")
        .expect("cn_mainland")
        .add(t(NATIONAL_DAY_EVE), 30, DurationUnit::WorkDays)
        .at;
    w.services
        .advance_to(due - chrono::Duration::minutes(1))
        .await
        .expect("advances");
    complete(
        &w.engine,
        &case,
        "department:civil_affairs",
        "dept-1",
        "decided",
        json!({"decision": "rejected"}),
    )
    .await;
    // Feedback and filing on time: the case ends, every clock stops.
    complete(
        &w.engine,
        &case,
        "window",
        "window-1",
        "informed",
        json!({}),
    )
    .await;
    complete(&w.engine, &case, "window", "window-1", "filed", json!({})).await;
    let ended = w.engine.instance(&case).await.expect("instance");
    assert_eq!(ended.result.as_deref(), Some("rejected"));
    w.services
        .advance_by(chrono::Duration::days(90))
        .await
        .expect("advances");
    let sup = inbox_of(&w, "supervision").await;
    assert!(sup.is_empty(), "{sup:#?}");
    assert!(inbox_of(&w, "subject").await.is_empty());
    assert!(inbox_of(&w, "leadership").await.is_empty());
    let history = w.engine.history(&case).await.expect("history");
    assert!(
        !history
            .iter()
            .any(|h| h.kind == "escalation" && h.text.contains("level 1")),
        "{history:#?}"
    );
    w.services.stop().await;
}

#[tokio::test]
async fn advancing_a_real_clock_is_refused() {
    let (_engine, services) = on_real_clock(Arc::new(calendars())).await;
    let err = services
        .advance_by(chrono::Duration::hours(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("yimen serve --clock"), "{err}");
    services.stop().await;
}
