//! Due timers are fired in batches, several per transaction: a backlog larger than a batch
//! fires once per timer and in due order per instance, also with two engines firing at once,
//! and a timer an earlier timer of the same batch cancelled does not fire. On SQLite and, when
//! `YIMEN_TEST_POSTGRES` is set, on PostgreSQL.

mod support;

use std::sync::Arc;
use support::*;
use yimen_engine::Engine;
use yimen_engine::clock::ManualClock;

on_both_databases!(
    a_backlog_of_due_timers_fires_once_in_due_order,
    a_timer_cancelled_by_an_earlier_one_of_its_batch_does_not_fire,
);

/// The 10-minute wait ends the instance, which cancels its clock's rung due at 30 minutes.
const RACE: &str = r#"process race "先到先结" version 1

clock limit "时限" {
  deadline 30 minutes {
    at due level 1 {
      ledger "escalated"
    }
  }
}

start begin "开始" -> register

step register "登记" {
  start clock limit
} -> pause

wait pause "十分钟" 10 minutes -> done

end done "结束" result done
"#;

/// An engine on `db` on `clock`, with the repository's calendars.
async fn open(db: &Db, clock: &ManualClock) -> Engine {
    db.open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await
}

/// 400 instances with three due timers each: 1,200 timers, several batches, all due at once;
/// two engines fire them at the same time.
async fn a_backlog_of_due_timers_fires_once_in_due_order(db: Db) {
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let first = open(&db, &clock).await;
    let ids = deploy_and_start(&first, "three_waits.flow", THREE_WAITS, 400).await;
    let second = open(&db, &clock).await;
    let now = t("2026-10-12T10:00:00+08:00");
    clock.set(now).expect("moves");
    let (a, b) = tokio::join!(first.fire_due_timers(now), second.fire_due_timers(now));
    assert_eq!(
        a.expect("first fires") + b.expect("second fires"),
        1_200,
        "each due timer fires once"
    );
    for id in &ids {
        assert_eq!(
            ledger_lines(&first, id).await,
            ["fired 10", "fired 20", "fired 30"],
            "instance {id}"
        );
        let view = first.instance(id).await.expect("instance");
        assert_eq!(view.result.as_deref(), Some("done"));
    }
    assert_eq!(first.next_timer_due().await.expect("next"), None);
    assert_eq!(first.fire_due_timers(now).await.expect("fires"), 0);
}

/// Both timers of each instance are due and in one batch; the first ends the instance, so the
/// clock's rung, cancelled by it, does not fire.
async fn a_timer_cancelled_by_an_earlier_one_of_its_batch_does_not_fire(db: Db) {
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let engine = open(&db, &clock).await;
    let ids = deploy_and_start(&engine, "race.flow", RACE, 3).await;
    let now = t("2026-10-12T10:00:00+08:00");
    for id in &ids {
        let view = engine.instance(id).await.expect("instance");
        assert_eq!(view.timers.len(), 2, "the wait and the rung");
        assert!(view.timers.iter().all(|t| t.due_at <= now), "both due");
    }
    clock.set(now).expect("moves");
    assert_eq!(engine.fire_due_timers(now).await.expect("fires"), 3);
    for id in &ids {
        let view = engine.instance(id).await.expect("instance");
        assert_eq!(view.result.as_deref(), Some("done"), "instance {id}");
        assert!(view.timers.is_empty(), "instance {id}: {:?}", view.timers);
        assert!(ledger_lines(&engine, id).await.is_empty(), "instance {id}");
    }
    assert_eq!(engine.next_timer_due().await.expect("next"), None);
}
