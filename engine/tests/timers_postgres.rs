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
    let Ok(url) = std::env::var("YIMEN_TEST_POSTGRES") else {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("skipped: set YIMEN_TEST_POSTGRES\n"),
        );
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
}
