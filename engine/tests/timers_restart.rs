//! Restart: timers that fall due while the server is down fire once each, in due order, when it
//! starts again — through the same background services `yimen serve` runs.

mod support;

use std::sync::Arc;
use support::*;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::scheduler::{ServiceOptions, Services};

#[tokio::test]
async fn timers_due_during_downtime_fire_once_in_order_after_restart() {
    let db = Db::sqlite("restart");

    // First life: three instances start, each with three pending waits; then the server stops.
    let World {
        engine, services, ..
    } = World::open(&db, "2026-10-12T09:00:00+08:00", ServiceOptions::default()).await;
    let ids = deploy_and_start(&engine, "three_waits.flow", THREE_WAITS, 3).await;
    for id in &ids {
        let view = engine.instance(id).await.expect("instance");
        assert_eq!(view.timers.len(), 3);
    }
    services.stop().await;
    drop(services);
    drop(engine);

    // Down for an hour. Second life: the services fire the backlog on start.
    let later = ManualClock::new(t("2026-10-12T10:00:00+08:00"));
    let engine = db
        .open(Arc::new(later.clone()), Arc::new(calendars()))
        .await;
    assert_eq!(
        engine.next_timer_due().await.expect("next"),
        Some(t("2026-10-12T09:10:00+08:00"))
    );
    let services = Services::start(
        engine.clone(),
        Some(later.clone()),
        None,
        ServiceOptions::default(),
    )
    .expect("services");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut done = 0;
        for id in &ids {
            let view = engine.instance(id).await.expect("instance");
            if view.result.as_deref() == Some("done") {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog did not fire within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for id in &ids {
        let fired = ledger_lines(&engine, id).await;
        assert_eq!(fired, ["fired 10", "fired 20", "fired 30"], "instance {id}");
    }
    assert_eq!(engine.next_timer_due().await.expect("next"), None);
    services.stop().await;

    // A third start fires nothing again.
    let engine = db
        .open(Arc::new(later.clone()), Arc::new(calendars()))
        .await;
    assert_eq!(
        yimen_engine::scheduler::TimerSource::fire_due(&engine, later.now())
            .await
            .expect("fires"),
        0
    );
    db.finish().await;
}

/// Minutes that last a tenth of a second, so a real-clock test does not wait half an hour.
#[derive(Debug)]
struct FastMinutes;

impl yimen_engine::DueDates for FastMinutes {
    fn add(
        &self,
        _: Option<&str>,
        from: chrono::DateTime<chrono::Utc>,
        amount: i64,
        _: yimen_dsl::model::DurationUnit,
    ) -> yimen_engine::Due {
        yimen_engine::Due {
            at: from + chrono::Duration::milliseconds(amount * 100),
            provisional: false,
            explanation: "test: a minute is 100 ms".into(),
        }
    }
}

#[tokio::test]
async fn a_real_clock_timer_fires_within_a_second_of_its_due_time() {
    let (engine, services) = on_real_clock(Arc::new(FastMinutes)).await;
    let id = deploy_and_start(&engine, "three_waits.flow", THREE_WAITS, 1).await[0].clone();
    let view = engine.instance(&id).await.expect("instance");
    let mut due: Vec<_> = view.timers.iter().map(|t| t.due_at).collect();
    due.sort();
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let fired: Vec<_> = engine
        .history(&view.id)
        .await
        .expect("history")
        .into_iter()
        .filter(|h| h.kind == "ledger" && h.text.starts_with("fired"))
        .map(|h| h.at.to_utc())
        .collect();
    assert_eq!(fired.len(), 3, "all three waits fired");
    for (at, due) in fired.iter().zip(&due) {
        let late = *at - *due;
        assert!(
            late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
            "fired {late} after due"
        );
    }
    services.stop().await;
}
