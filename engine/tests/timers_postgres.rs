//! Several servers on one PostgreSQL database: every due timer fires exactly once, in due order
//! per instance, whichever server claims it. Runs when `YIMEN_TEST_POSTGRES` is set.

mod timers_support;

use std::sync::Arc;
use timers_support::*;
use yimen_engine::clock::ManualClock;
use yimen_engine::scheduler::{ServiceOptions, Services};
use yimen_engine::{DeployRequest, Engine, OpenOptions, StartRequest};

const PROBE: &str = r#"process fire_once "触发一次" version 1

start begin "开始" -> fork

parallel fork "并行" {
  -> a
  -> b
  -> c
}

wait a "十分钟" 10 minutes -> a_done
wait b "二十分钟" 20 minutes -> b_done
wait c "三十分钟" 30 minutes -> c_done

step a_done "甲" {
  ledger "fired 10"
} -> all

step b_done "乙" {
  ledger "fired 20"
} -> all

step c_done "丙" {
  ledger "fired 30"
} -> all

join all "汇合" -> done

end done "结束" result done
"#;

#[tokio::test]
async fn timers_fire_once_with_several_servers_postgres() {
    let Some(url) = yimen_engine::testing::postgres_url("timers_fire_once_with_several_servers")
    else {
        return;
    };
    let schema = format!("timers_servers_{}", uuid::Uuid::now_v7().simple());
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let open = || {
        Engine::open_with(
            OpenOptions {
                url: url.clone(),
                pg_schema: Some(schema.clone()),
            },
            Arc::new(clock.clone()),
            Arc::new(calendars()),
        )
    };
    let first = open().await.expect("opens");
    first
        .deploy(DeployRequest {
            file: "fire_once.flow".into(),
            source: PROBE.into(),
            ..DeployRequest::default()
        })
        .await
        .expect("deploys");
    let mut ids = Vec::new();
    for i in 0..40 {
        let view = first
            .start(StartRequest {
                process: "fire_once".into(),
                business_key: Some(format!("p{i}")),
                actor: "test".into(),
                ..StartRequest::default()
            })
            .await
            .expect("starts");
        ids.push(view.id);
    }
    // Everything falls due; three servers start at once and race for the 120 timers.
    clock.set(t("2026-10-12T10:00:00+08:00")).expect("moves");
    let mut servers = Vec::new();
    for _ in 0..3 {
        let engine = open().await.expect("opens");
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
        let fired: Vec<String> = first
            .history(id)
            .await
            .expect("history")
            .into_iter()
            .filter(|h| h.kind == "ledger")
            .map(|h| h.text)
            .collect();
        assert_eq!(fired, ["fired 10", "fired 20", "fired 30"], "instance {id}");
        let view = first.instance(id).await.expect("instance");
        assert_eq!(view.result.as_deref(), Some("done"));
    }
    for s in &servers {
        s.stop().await;
    }
    yimen_engine::testing::drop_schema(&url, &schema).await;
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
    let Some(url) = yimen_engine::testing::postgres_url("a_timer_created_on_another_server") else {
        return;
    };
    let schema = format!("timers_notify_{}", uuid::Uuid::now_v7().simple());
    let open = |clock: Arc<dyn yimen_engine::clock::Clock>| {
        Engine::open_with(
            OpenOptions {
                url: url.clone(),
                pg_schema: Some(schema.clone()),
            },
            clock,
            Arc::new(calendars()),
        )
    };
    // A's clock is 58.5 s behind: its 1-minute wait falls due 1.5 s from now.
    let a = open(Arc::new(Behind(chrono::Duration::milliseconds(58_500))))
        .await
        .expect("A opens");
    let b = open(Arc::new(yimen_engine::clock::SystemClock))
        .await
        .expect("B opens");
    assert_eq!(a.timer_channel(), b.timer_channel());
    assert!(
        a.timer_channel()
            .is_some_and(|c| c.starts_with("yimen_timers_"))
    );
    a.deploy(DeployRequest {
        file: "soon.flow".into(),
        source: SOON.into(),
        ..DeployRequest::default()
    })
    .await
    .expect("deploys");
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
    yimen_engine::testing::drop_schema(&url, &schema).await;
}
