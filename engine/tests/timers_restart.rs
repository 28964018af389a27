//! Restart: timers that fall due while the server is down fire once each, in due order, when it
//! starts again — through the same background services `yimen serve` runs.

mod timers_support;

use std::sync::Arc;
use timers_support::*;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::scheduler::{ServiceOptions, Services};
use yimen_engine::{DeployRequest, Engine, StartRequest};

const PROBE: &str = r#"process restart_probe "重启探针" version 1

start begin "开始" -> fork

parallel fork "并行" {
  -> late
  -> early
  -> middle
}

wait late "三十分钟" 30 minutes -> late_done
wait early "十分钟" 10 minutes -> early_done
wait middle "二十分钟" 20 minutes -> middle_done

step late_done "晚" {
  ledger "fired 30"
} -> all

step early_done "早" {
  ledger "fired 10"
} -> all

step middle_done "中" {
  ledger "fired 20"
} -> all

join all "汇合" -> done

end done "结束" result done
"#;

async fn open(url: &str, clock: &ManualClock) -> Engine {
    Engine::open(url, Arc::new(clock.clone()), Arc::new(calendars()))
        .await
        .expect("engine opens")
}

#[tokio::test]
async fn timers_due_during_downtime_fire_once_in_order_after_restart() {
    let dir = std::env::temp_dir().join(format!("yimen-restart-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("yimen.db").display());

    // First life: three instances start, each with three pending waits; then the server stops.
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let engine = open(&url, &clock).await;
    let services = Services::start(
        engine.clone(),
        Some(clock.clone()),
        None,
        ServiceOptions::default(),
    )
    .expect("services");
    engine
        .deploy(DeployRequest {
            file: "restart_probe.flow".into(),
            source: PROBE.into(),
            ..DeployRequest::default()
        })
        .await
        .expect("deploys");
    let mut ids = Vec::new();
    for i in 0..3 {
        let view = engine
            .start(StartRequest {
                process: "restart_probe".into(),
                business_key: Some(format!("probe-{i}")),
                actor: "test".into(),
                ..StartRequest::default()
            })
            .await
            .expect("starts");
        assert_eq!(view.timers.len(), 3);
        ids.push(view.id);
    }
    services.stop().await;
    drop(services);
    drop(engine);

    // Down for an hour. Second life: the services fire the backlog on start.
    let later = ManualClock::new(t("2026-10-12T10:00:00+08:00"));
    let engine = open(&url, &later).await;
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
        let fired: Vec<String> = engine
            .history(id)
            .await
            .expect("history")
            .into_iter()
            .filter(|h| h.kind == "ledger" && h.text.starts_with("fired"))
            .map(|h| h.text)
            .collect();
        assert_eq!(fired, ["fired 10", "fired 20", "fired 30"], "instance {id}");
    }
    assert_eq!(engine.next_timer_due().await.expect("next"), None);
    services.stop().await;

    // A third start fires nothing again.
    let engine = open(&url, &later).await;
    assert_eq!(
        yimen_engine::scheduler::TimerSource::fire_due(&engine, later.now())
            .await
            .expect("fires"),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
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
    let engine = Engine::open(
        "sqlite::memory:",
        Arc::new(yimen_engine::clock::SystemClock),
        Arc::new(FastMinutes),
    )
    .await
    .expect("engine opens");
    let services =
        Services::start(engine.clone(), None, None, ServiceOptions::default()).expect("services");
    engine
        .deploy(DeployRequest {
            file: "restart_probe.flow".into(),
            source: PROBE.into(),
            ..DeployRequest::default()
        })
        .await
        .expect("deploys");
    let view = engine
        .start(StartRequest {
            process: "restart_probe".into(),
            actor: "test".into(),
            ..StartRequest::default()
        })
        .await
        .expect("starts");
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
