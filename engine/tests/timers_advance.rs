//! `POST /clock/advance` answers only after the notices its timers caused are delivered
//! (docs/timers.md), even though the background delivery loop, woken by the same commits,
//! races it for the outbox rows.

mod support;

use serde_json::json;
use support::*;
use yimen_engine::StartRequest;
use yimen_engine::scheduler::ServiceOptions;

on_both_databases!(every_advance_answers_after_its_notices_are_in_the_inbox);

/// One timer per case; when it fires, one notice to a queue's inbox, and a task, whose creation
/// wakes the delivery loop at once (as escalation rungs that schedule the next rung do).
const PING: &str = r#"process ping "到时提醒" version 1

role clerk "办事员"

start begin "开始" -> pause

wait pause "等待" 1 hours -> tell

step tell "提醒" {
  notify role clerk "到时了"
} -> work

task work "办理" {
  queue clerk
  outcome ok "办结" -> done
}

end done "完成"
"#;

/// Starts a case whose timer is due in an hour, advances two hours, and asserts that the notice
/// is in the inbox when the advance answers; a hundred times.
async fn every_advance_answers_after_its_notices_are_in_the_inbox(db: Db) {
    // The delivery loop looks at the outbox every millisecond besides being woken by every
    // commit that made a task or timer: it takes the rows before the advance does as often as
    // it can.
    let options = ServiceOptions {
        outbox_poll: std::time::Duration::from_millis(1),
        ..service_options()
    };
    let World {
        engine, services, ..
    } = World::open(&db, MONDAY, options).await;
    deploy_source(&engine, "ping.flow", PING).await;
    // Before the fix an advance answered while the delivery loop still held the rows it had
    // taken (on a server, about one advance in fifteen).
    for round in 0..100 {
        let case = engine
            .start(StartRequest {
                process: "ping".into(),
                business_key: Some(format!("PING-{round}")),
                vars: vars(json!({})),
                actor: "admin".into(),
            })
            .await
            .expect("starts")
            .id;
        let report = services
            .advance_by(chrono::Duration::hours(2))
            .await
            .expect("advances");
        let inbox = yimen_engine::inbox::of_instance(&engine, &case)
            .await
            .expect("inbox");
        assert_eq!(
            inbox.len(),
            1,
            "round {round}: the advance answered before its notice reached the inbox ({report:?})"
        );
    }
    services.stop().await;
}
