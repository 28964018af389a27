//! Due timers are fired in batches, several per transaction: a backlog larger than a batch
//! fires once per timer and in due order per instance, also with two engines firing at once,
//! and a timer an earlier timer of the same batch cancelled does not fire. On SQLite and, when
//! `YIMEN_TEST_POSTGRES` is set, on PostgreSQL.

mod timers_support;

use std::sync::Arc;
use timers_support::*;
use yimen_engine::clock::ManualClock;
use yimen_engine::{DeployRequest, Engine, OpenOptions, StartRequest};

/// Three waits of one instance, due 10, 20 and 30 minutes after its start.
const THREE: &str = r#"process three_waits "三个等待" version 1

start begin "开始" -> fork

parallel fork "并行" {
  -> c
  -> a
  -> b
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

/// Where a test runs: a fresh SQLite file, or a fresh schema on the test PostgreSQL server.
struct Db {
    url: String,
    schema: Option<String>,
    dir: Option<std::path::PathBuf>,
}

impl Db {
    fn sqlite(name: &str) -> Db {
        let dir = std::env::temp_dir().join(format!("yimen-{name}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Db {
            url: format!("sqlite:{}", dir.join("yimen.db").display()),
            schema: None,
            dir: Some(dir),
        }
    }

    fn postgres(name: &str) -> Option<Db> {
        let url = yimen_engine::testing::postgres_url(name)?;
        Some(Db {
            url,
            schema: Some(format!("{name}_{}", uuid::Uuid::now_v7().simple())),
            dir: None,
        })
    }

    async fn open(&self, clock: &ManualClock) -> Engine {
        Engine::open_with(
            OpenOptions {
                url: self.url.clone(),
                pg_schema: self.schema.clone(),
            },
            Arc::new(clock.clone()),
            Arc::new(calendars()),
        )
        .await
        .expect("engine opens")
    }

    async fn drop(self) {
        if let Some(schema) = &self.schema {
            yimen_engine::testing::drop_schema(&self.url, schema).await;
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn deploy_and_start(engine: &Engine, file: &str, source: &str, n: usize) -> Vec<String> {
    let process = file.trim_end_matches(".flow");
    engine
        .deploy(DeployRequest {
            file: file.into(),
            source: source.into(),
            ..DeployRequest::default()
        })
        .await
        .expect("deploys");
    let mut ids = Vec::new();
    for i in 0..n {
        let view = engine
            .start(StartRequest {
                process: process.into(),
                business_key: Some(format!("{process}-{i}")),
                actor: "test".into(),
                ..StartRequest::default()
            })
            .await
            .expect("starts");
        ids.push(view.id);
    }
    ids
}

async fn ledger_lines(engine: &Engine, id: &str) -> Vec<String> {
    engine
        .history(id)
        .await
        .expect("history")
        .into_iter()
        .filter(|h| h.kind == "ledger")
        .map(|h| h.text)
        .collect()
}

/// 400 instances with three due timers each: 1,200 timers, several batches, all due at once;
/// two engines fire them at the same time.
async fn backlog_fires_once_in_due_order(db: Db) {
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let first = db.open(&clock).await;
    let ids = deploy_and_start(&first, "three_waits.flow", THREE, 400).await;
    let second = db.open(&clock).await;
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
    db.drop().await;
}

#[tokio::test]
async fn a_backlog_of_due_timers_fires_once_in_due_order_sqlite() {
    backlog_fires_once_in_due_order(Db::sqlite("timers-batch")).await;
}

#[tokio::test]
async fn a_backlog_of_due_timers_fires_once_in_due_order_postgres() {
    if let Some(db) = Db::postgres("timers_batch") {
        backlog_fires_once_in_due_order(db).await;
    }
}

/// Both timers of each instance are due and in one batch; the first ends the instance, so the
/// clock's rung, cancelled by it, does not fire.
async fn cancelled_in_the_batch_does_not_fire(db: Db) {
    let clock = ManualClock::new(t("2026-10-12T09:00:00+08:00"));
    let engine = db.open(&clock).await;
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
    db.drop().await;
}

#[tokio::test]
async fn a_timer_cancelled_by_an_earlier_one_of_its_batch_does_not_fire_sqlite() {
    cancelled_in_the_batch_does_not_fire(Db::sqlite("timers-cancelled")).await;
}

#[tokio::test]
async fn a_timer_cancelled_by_an_earlier_one_of_its_batch_does_not_fire_postgres() {
    if let Some(db) = Db::postgres("timers_cancelled") {
        cancelled_in_the_batch_does_not_fire(db).await;
    }
}
