//! The real process files of `processes/`, compiled on deploy and run on SQLite with the real
//! working-day calendar. (Generic engine behaviour is in `contract.rs`, on both databases.)

mod support;

use chrono::Duration;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::*;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::runtime::state::Status;
use yimen_engine::{
    ClaimRequest, ClaimedTask, CompleteRequest, DeployRequest, Engine, EngineError, InstanceView,
    StartRequest,
};

/// An engine on SQLite in a file, on a simulated clock at [`MONDAY`], with the repository's
/// calendars.
async fn engine() -> (Engine, ManualClock, Db) {
    let db = Db::sqlite("processes");
    let clock = ManualClock::new(t(MONDAY));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    (engine, clock, db)
}

/// Starts a case of 张三丰 for the minimum living allowance.
async fn register(engine: &Engine, key: Option<&str>, actor: &str) -> InstanceView {
    engine
        .start(StartRequest {
            process: "social_assistance".into(),
            business_key: key.map(str::to_string),
            vars: vars(registration(&["minimum_living"])),
            actor: actor.into(),
        })
        .await
        .unwrap()
}

async fn claim(
    engine: &Engine,
    queue: &str,
    street: Option<&str>,
    worker: &str,
) -> Vec<ClaimedTask> {
    engine
        .claim(ClaimRequest {
            queues: vec![queue.into()],
            org_units: street.map(|s| vec![s.to_string()]),
            actor: worker.into(),
            worker: None,
            max: 10,
            lease: Duration::minutes(10),
        })
        .await
        .unwrap()
}

async fn complete(
    engine: &Engine,
    t: &ClaimedTask,
    outcome: &str,
    vars: serde_json::Value,
    worker: &str,
) -> InstanceView {
    engine
        .complete(CompleteRequest {
            task_id: t.task.id.clone(),
            lock_token: t.lock_token,
            outcome: Some(outcome.into()),
            vars: vars.as_object().cloned().unwrap(),
            actor: worker.into(),
            access: None,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn social_assistance_deploys_with_its_import_and_refuses_a_non_assistance_case() {
    let (engine, _clock, db) = engine().await;
    let dep = deploy(&engine, "social_assistance", &|_, text| text).await;
    assert_eq!(
        (dep.key.as_str(), dep.version, dep.created),
        ("social_assistance", 1, true)
    );
    let defs = engine.definitions().await.unwrap();
    assert!(
        defs.iter().any(|d| d.key == "temporary_assistance"),
        "the import was deployed first"
    );

    let broken = engine
        .deploy(DeployRequest {
            file: "broken.flow".into(),
            source: "process broken \"x\" version 1\nstart s -> nowhere\n".into(),
            files: BTreeMap::new(),
            model: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&broken, EngineError::Diagnostics(d) if !d.is_empty()),
        "{broken:?}"
    );

    let inst = register(&engine, Some("WH-2026-0001"), "window-clerk").await;
    assert_eq!(inst.status, Status::Running);
    assert_eq!(inst.vars["id_number"], json!("150302********1231"));
    let webhook = engine.outbox_of(&inst.id).await.unwrap();
    assert_eq!(webhook[0].channel, "webhook:ledger_hook");
    assert_eq!(
        webhook[0].payload["message"],
        json!("新登记案件：张**，xinhua")
    );
    assert_eq!(
        webhook[0].payload["url"],
        json!("https://ledger.example.invalid/yimen/social-assistance")
    );

    assert!(
        claim(&engine, "window", Some("other_street"), "w9")
            .await
            .is_empty(),
        "another street's window sees nothing"
    );
    let review = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    assert_eq!(review.len(), 1);
    assert_eq!(review[0].task.org_unit.as_deref(), Some("xinhua"));
    let done = complete(
        &engine,
        &review[0],
        "not_assistance",
        json!({"referral": "区残联"}),
        "clerk1",
    )
    .await;
    assert_eq!(
        (done.status, done.result.as_deref()),
        (Status::Completed, Some("not_accepted"))
    );
    let docs = engine.documents(&inst.id).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].name, "non_acceptance_notice");
    // Addressed to the applicant: the name in full (masking is for public lists and logs).
    assert!(
        docs[0].content.contains("\n张三丰：\n"),
        "{}",
        docs[0].content
    );
    assert!(docs[0].content.contains("区残联"));
    assert!(docs[0].content.contains("2026-09-28"));
    assert!(engine.ledger_verify().await.unwrap().ok());
    drop(engine);
    db.finish().await;
}

#[tokio::test]
async fn incomplete_materials_pause_the_promised_clock_until_supplied() {
    let (engine, clock, db) = engine().await;
    deploy(&engine, "social_assistance", &|_, text| text).await;
    let inst = register(&engine, None, "clerk1").await;
    let promised_timers = inst.timers.len();
    assert!(
        promised_timers >= 2,
        "the promised clock's ladder is scheduled"
    );
    let review = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    let waiting = complete(
        &engine,
        &review[0],
        "incomplete",
        json!({"main_category": "minimum_living", "missing_materials": "户口簿复印件"}),
        "clerk1",
    )
    .await;
    assert_eq!(waiting.active_nodes, ["wait_materials"]);
    assert!(
        waiting.timers.iter().all(|t| t.kind == "message_timeout"),
        "ladder cancelled while paused: {:?}",
        waiting.timers
    );
    let docs = engine.documents(&inst.id).await.unwrap();
    assert_eq!(docs[0].name, "supplement_notice");
    assert!(docs[0].content.contains("户口簿复印件"));
    assert!(
        docs[0].content.contains("\n张三丰：\n"),
        "{}",
        docs[0].content
    );

    clock.advance(Duration::days(3)).unwrap();
    let resumed = engine
        .message(
            &inst.id,
            "materials_supplied",
            serde_json::Map::new(),
            "clerk1",
        )
        .await
        .unwrap();
    assert_eq!(resumed.active_nodes, ["review"]);
    assert_eq!(
        resumed.timers.len(),
        promised_timers,
        "ladder rescheduled on resume"
    );
    let history = engine.history(&inst.id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.kind == "clock" && h.text.contains("paused"))
    );
    assert!(
        history
            .iter()
            .any(|h| h.kind == "clock" && h.text.contains("resumed"))
    );
    drop(engine);
    db.finish().await;
}

#[tokio::test]
async fn a_clear_case_runs_to_approval_with_publicity_and_archive() {
    let (engine, clock, db) = engine().await;
    deploy(&engine, "social_assistance", &|_, text| text).await;
    let inst = register(&engine, None, "clerk1").await;
    let t = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    complete(
        &engine,
        &t[0],
        "complete",
        json!({"main_category": "minimum_living"}),
        "clerk1",
    )
    .await;
    let t = claim(&engine, "street_leader", Some("xinhua"), "leader").await;
    complete(&engine, &t[0], "agree", json!({}), "leader").await;
    // The forwarding task is assigned to the first responder: nobody else may claim it.
    assert!(
        claim(&engine, "window", Some("xinhua"), "clerk2")
            .await
            .is_empty()
    );
    let t = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    complete(
        &engine,
        &t[0],
        "forwarded",
        json!({"department_clear": true}),
        "clerk1",
    )
    .await;
    let t = claim(&engine, "department:civil_affairs", None, "civil").await;
    assert_eq!(t.len(), 1);
    complete(
        &engine,
        &t[0],
        "decided",
        json!({"decision": "approved", "amount": "850.00"}),
        "civil",
    )
    .await;
    let t = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    let v = complete(&engine, &t[0], "informed", json!({}), "clerk1").await;
    assert_eq!(v.active_nodes, ["publicity_period"]);
    let docs = engine.documents(&inst.id).await.unwrap();
    let list = docs.iter().find(|d| d.name == "publicity_list").unwrap();
    assert!(list.public);
    // Public: the name masked; the category by its label and the period in Chinese units.
    assert!(
        list.content.contains("| 张** | 3 | 最低生活保障 |"),
        "{}",
        list.content
    );
    assert!(list.content.contains("公示期：7日\n"), "{}", list.content);
    assert!(!list.content.contains("张三丰"), "{}", list.content);
    assert!(
        !list.content.contains("150302"),
        "no ID number in a public list"
    );

    // 7 calendar days end on 5 October, inside the National Day holiday (1-7 October 2026):
    // the period runs to the close of 8 October, the next working day.
    let publicity = v
        .timers
        .iter()
        .find(|t| t.node == "publicity_period")
        .unwrap();
    assert_eq!(
        publicity
            .due_at
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        "2026-10-08 17:30"
    );
    clock.set(publicity.due_at).unwrap();
    let fired = engine.fire_due_timers(clock.now()).await.unwrap();
    assert!(fired >= 1);
    let t = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    let archive = t
        .iter()
        .find(|t| t.task.node == "archive")
        .expect("archive task");
    let done = complete(&engine, archive, "filed", json!({}), "clerk1").await;
    assert_eq!(
        (done.status, done.result.as_deref()),
        (Status::Completed, Some("approved"))
    );
    assert!(done.timers.is_empty() && done.tasks.is_empty());
    assert!(engine.ledger_verify().await.unwrap().ok());
    drop(engine);
    db.finish().await;
}

/// Issue 19: a ledger row names its case (business key and the columns the configuration
/// declares: street, category), times read in Asia/Shanghai with the offset, and the CSV opens
/// in Excel (UTF-8 with a byte-order mark) without running formulas typed into case data.
#[tokio::test]
async fn the_ledger_names_the_case_with_local_times_and_opens_safely_in_excel() {
    let (engine, clock, db) = engine().await;
    deploy(&engine, "social_assistance", &|_, text| text).await;
    let inst = register(&engine, Some("=1+2"), "clerk1").await;
    let t = claim(&engine, "window", Some("xinhua"), "clerk1").await;
    complete(
        &engine,
        &t[0],
        "complete",
        json!({"main_category": "minimum_living"}),
        "clerk1",
    )
    .await;

    let history = engine.history(&inst.id).await.unwrap();
    let first = serde_json::to_value(&history[0]).unwrap();
    assert_eq!(first["at"], "2026-09-28T09:00:00+08:00", "{first}");

    let now = clock.now();
    let entries = engine
        .ledger_export(now - Duration::days(1), now + Duration::days(1))
        .await
        .unwrap();
    let csv = yimen_engine::ledger::to_csv(&entries);
    assert!(csv.starts_with('\u{feff}'), "UTF-8 with a byte-order mark");
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    assert_eq!(
        lines.next(),
        Some(
            "at,instance,business_key,street,main_category,seq,actor,actor_kind,actor_id,node,kind,text,hash"
        )
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!(
            "2026-09-28 09:00:00 +08:00,{},'=1+2,xinhua,minimum_living,1,",
            inst.id
        )),
        "{row}"
    );
    drop(engine);
    db.finish().await;
}
