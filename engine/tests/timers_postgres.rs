//! Several servers on one PostgreSQL database: every due timer fires exactly once, in due order
//! per instance, whichever server claims it. Runs when `YIMEN_TEST_POSTGRES` is set.

mod support;

use std::sync::Arc;
use support::*;
use yimen_engine::StartRequest;
use yimen_engine::clock::ManualClock;
use yimen_engine::scheduler::{ServiceOptions, Services};

#[tokio::test]
async fn timers_fire_once_with_several_servers_postgres() {
    let Some(db) = Db::postgres("timers_fire_once_with_several_servers") else {
        return;
    };
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let open = || db.open(Arc::new(clock.clone()), Arc::new(calendars()));
    let first = open().await;
    let ids = deploy_and_start(&first, "three_waits.flow", THREE_WAITS, 40).await;
    // Everything falls due; three servers start at once and race for the 120 timers.
    clock.set(t("2026-10-12T10:00:00+08:00")).expect("moves");
    let mut servers = Vec::new();
    for _ in 0..3 {
        let engine = open().await;
        servers.push(
            Services::start(engine, Some(clock.clone()), None, ServiceOptions::default())
                .expect("services"),
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while first.next_timer_due().await.expect("next").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "timers left after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for id in &ids {
        let fired = ledger_lines(&first, id).await;
        assert_eq!(fired, ["fired 10", "fired 20", "fired 30"], "instance {id}");
        let view = first.instance(id).await.expect("instance");
        assert_eq!(view.result.as_deref(), Some("done"));
    }
    for s in &servers {
        s.stop().await;
    }
    db.finish().await;
}

/// A clock that runs `behind` the wall clock: a 1-minute wait created on it falls due a few
/// seconds from now in real time.
#[derive(Debug)]
struct Behind(chrono::Duration);

impl yimen_engine::clock::Clock for Behind {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() - self.0
    }
}

const SOON: &str = r#"process soon "很快" version 1

start begin "开始" -> pause

wait pause "一分钟" 1 minutes -> done

end done "结束" result done
"#;

/// A timer created through server A is fired by server B's timer loop within seconds, not
/// after B's idle cap (30 s): A's transaction announces it with NOTIFY, B listens.
#[tokio::test]
async fn a_timer_created_on_another_server_wakes_the_scheduler_postgres() {
    let Some(db) = Db::postgres("a_timer_created_on_another_server") else {
        return;
    };
    let open = |clock: Arc<dyn yimen_engine::clock::Clock>| db.open(clock, Arc::new(calendars()));
    // A's clock is 58.5 s behind: its 1-minute wait falls due 1.5 s from now.
    let a = open(Arc::new(Behind(chrono::Duration::milliseconds(58_500)))).await;
    let b = open(Arc::new(yimen_engine::clock::SystemClock)).await;
    assert_eq!(a.timer_channel(), b.timer_channel());
    assert!(
        a.timer_channel()
            .is_some_and(|c| c.starts_with("yimen_timers_"))
    );
    deploy_source(&a, "soon.flow", SOON).await;
    // Only B runs a timer loop; with nothing pending it sleeps for its idle cap (30 s).
    let options = ServiceOptions::default();
    assert_eq!(options.timer_loop.idle, std::time::Duration::from_secs(30));
    let services = Services::start(b.clone(), None, None, options).expect("B's services");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let created = std::time::Instant::now();
    let id = a
        .start(StartRequest {
            process: "soon".into(),
            business_key: Some("soon-1".into()),
            actor: "test".into(),
            ..StartRequest::default()
        })
        .await
        .expect("starts on A")
        .id;
    let mut done = false;
    while created.elapsed() < std::time::Duration::from_secs(10) {
        if b.instance(&id).await.expect("instance").result.as_deref() == Some("done") {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let took = created.elapsed();
    services.stop().await;
    assert!(done, "B did not fire A's timer within 10 s (idle cap 30 s)");
    // Due 1.5 s after creation; fired well before the 30 s cap.
    assert!(
        took >= std::time::Duration::from_millis(1_400) && took < std::time::Duration::from_secs(5),
        "fired {took:?} after creation"
    );
    db.finish().await;
}
