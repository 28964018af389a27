//! The engine contract: every test runs on SQLite (`<test>::sqlite`) and on PostgreSQL
//! (`<test>::postgres`, when `YIMEN_TEST_POSTGRES` is set).

mod support;

use chrono::Duration;
use serde_json::json;
use std::collections::HashSet;
use support::*;
use yimen_dsl::model::*;
use yimen_engine::runtime::state::Status;
use yimen_engine::{
    ClaimRequest, CompleteRequest, EngineError, FailRequest, StartRequest, TaskFilter, TaskState,
};

on_both_databases!(
    concurrent_events_share_commits_and_stay_exact,
    task_outcomes_and_typed_variables,
    steps_and_choice,
    split_and_join,
    for_each_with_join,
    message_wait_and_timeout,
    timer_wait,
    linked_process_with_and_without_wait,
    deployment_versions,
    business_key_is_idempotent,
    concurrent_claims_are_exclusive,
    lease_expiry_fences_old_tokens,
    ledger_verify_detects_tampering,
    keyed_ledger_and_checkpoints_detect_deliberate_rewrites,
    cancel_cancels_tasks_and_timers,
    escalation_fires_once_and_is_cancelled_by_completion,
    documents_mask_personal_data_in_public_ones,
    failure_retry_and_incident,
    step_budget_parks_a_loop_as_incident,
    newer_schema_is_refused,
    missing_linked_process_is_an_incident_until_resolved,
    batches_commit_together_and_refuse_one_by_one,
);

fn review_process() -> Process {
    let mut amount = var("amount", Type::Decimal);
    amount.label = Some("金额".into());
    let mut reason = var("reason", Type::Text);
    reason.personal = Some(PersonalKind::Sensitive);
    let mut size = var("size", Type::Integer);
    size.required = true;
    let mut p = process(
        "review",
        vec![size, amount, reason],
        &["window"],
        vec![
            start("check"),
            task(
                "check",
                "window",
                vec![outcome("approve", "ok"), outcome("reject", "no")],
                &[("amount", true)],
            ),
            end("ok", "approved"),
            end("no", "rejected"),
        ],
    );
    if let NodeKind::Task(t) = &mut p.nodes[1].kind {
        t.outcomes[1].requires.push(id("reason"));
    }
    p
}

async fn task_outcomes_and_typed_variables(h: Harness) {
    h.deploy(review_process()).await;
    let bad_start = h
        .engine
        .start(StartRequest {
            process: "review".into(),
            vars: vars(json!({"size": "three", "colour": 1})),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let EngineError::Invalid { problems } = bad_start else {
        panic!("expected 422, got {bad_start:?}")
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["colour", "size"]);

    let inst = h.start("review", json!({"size": 3})).await;
    assert_eq!(inst.status, Status::Running);
    assert_eq!(inst.tasks.len(), 1);
    let claimed = h.claim("window", 5).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].outcomes, ["approve", "reject"]);
    assert_eq!(claimed[0].vars["size"], json!(3));
    let before = h.engine.history(&inst.id).await.unwrap().len();

    // Every problem at once, nothing changed.
    let err = h
        .complete(
            &claimed[0],
            "maybe",
            json!({"amount": "lots", "colour": "red"}),
        )
        .await
        .unwrap_err();
    let EngineError::Invalid { problems } = err else {
        panic!("expected 422")
    };
    let mut fields: Vec<_> = problems.iter().map(|p| p.field.clone()).collect();
    fields.sort();
    assert_eq!(fields, ["amount", "colour", "outcome"]);
    let err = h
        .complete(&claimed[0], "reject", json!({"amount": "10"}))
        .await
        .unwrap_err();
    let EngineError::Invalid { problems } = err else {
        panic!("expected 422")
    };
    assert_eq!(problems[0].field, "reason");
    assert_eq!(problems[0].message, "is required for outcome `reject`");
    assert_eq!(h.engine.history(&inst.id).await.unwrap().len(), before);
    assert_eq!(
        h.engine.task(&claimed[0].task.id).await.unwrap().state,
        TaskState::Claimed
    );

    let done = h
        .complete(&claimed[0], "approve", json!({"amount": 1200.5}))
        .await
        .unwrap();
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.result.as_deref(), Some("approved"));
    assert_eq!(done.vars["amount"], json!("1200.5"));
    assert!(done.tasks.is_empty());
    let again = h
        .complete(&claimed[0], "approve", json!({"amount": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&again, EngineError::AlreadyCompleted { why } if why.contains("already completed with this lock token (outcome approve)")),
        "{again:?}"
    );
    // Another token (an older claim's) is told the task is done, not that it applied its own.
    let mut older = claimed[0].clone();
    older.lock_token -= 1;
    let other = h
        .complete(&older, "approve", json!({"amount": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&other, EngineError::Conflict { why } if why.contains("already completed")),
        "{other:?}"
    );
}

async fn steps_and_choice(h: Harness) {
    let p = process(
        "choice",
        vec![var("size", Type::Integer), var("double", Type::Integer)],
        &[],
        vec![
            start("calc"),
            step(
                "calc",
                vec![assign("double", bin(BinaryOp::Mul, name("size"), int(2)))],
                "pick",
            ),
            node(
                "pick",
                NodeKind::Choice {
                    branches: vec![Branch {
                        when: bin(BinaryOp::Gt, name("double"), int(4)),
                        next: id("big"),
                        span: Span::default(),
                    }],
                    default: Some(id("small")),
                },
            ),
            end("big", "big"),
            end("small", "small"),
        ],
    );
    h.deploy(p).await;
    let a = h.start("choice", json!({"size": 3})).await;
    assert_eq!(
        (a.status, a.result.as_deref()),
        (Status::Completed, Some("big"))
    );
    assert_eq!(a.vars["double"], json!(6));
    let b = h.start("choice", json!({"size": 1})).await;
    assert_eq!(b.result.as_deref(), Some("small"));
    let kinds: Vec<_> = h
        .engine
        .history(&a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["started", "step", "variable", "choice", "ended"]);
}

async fn split_and_join(h: Harness) {
    let p = process(
        "par",
        vec![],
        &["a", "b"],
        vec![
            start("fork"),
            node(
                "fork",
                NodeKind::Split {
                    branches: vec![id("ta"), id("tb")],
                },
            ),
            task("ta", "a", vec![outcome("done", "meet")], &[]),
            task("tb", "b", vec![outcome("done", "meet")], &[]),
            node("meet", NodeKind::Join { next: id("fin") }),
            end("fin", "done"),
        ],
    );
    h.deploy(p).await;
    let inst = h.start("par", json!({})).await;
    assert_eq!(inst.tasks.len(), 2);
    let after_a = h.work("a", "done", json!({})).await;
    assert_eq!(after_a.status, Status::Running);
    assert_eq!(after_a.active_nodes, ["tb"]);
    let after_b = h.work("b", "done", json!({})).await;
    assert_eq!(after_b.status, Status::Completed);
}

async fn for_each_with_join(h: Harness) {
    let mut p = process(
        "each",
        vec![
            var("depts", Type::List(Box::new(Type::Text))),
            var("all_ok", Type::Boolean),
        ],
        &["dept"],
        vec![
            start("handle"),
            task(
                "handle",
                "dept",
                vec![outcome("approve", "sum"), outcome("reject", "sum")],
                &[],
            ),
            step("sum", vec![], "fin"),
            end("fin", "done"),
        ],
    );
    // all_ok = not ("reject" in outcomes(handle))
    let outcomes = expr(ExprKind::Call("outcomes".into(), vec![name("handle")]));
    let has_reject = bin(BinaryOp::In, text("reject"), outcomes);
    p.nodes[2] = step(
        "sum",
        vec![assign(
            "all_ok",
            expr(ExprKind::Unary(UnaryOp::Not, Box::new(has_reject))),
        )],
        "fin",
    );
    if let NodeKind::Task(t) = &mut p.nodes[1].kind {
        t.queue.key = Some(name("d"));
        t.for_each = Some(ForEach {
            item: id("d"),
            list: name("depts"),
        });
    }
    h.deploy(p).await;
    let inst = h
        .start("each", json!({"depts": ["civil", "health", "housing"]}))
        .await;
    let mut queues: Vec<_> = inst.tasks.iter().map(|t| t.queue.clone()).collect();
    queues.sort();
    assert_eq!(queues, ["dept:civil", "dept:health", "dept:housing"]);
    assert_eq!(inst.tasks[0].item, Some(json!("civil")));
    h.work("dept:civil", "approve", json!({})).await;
    let mid = h.work("dept:health", "reject", json!({})).await;
    assert_eq!(mid.status, Status::Running);
    let done = h.work("dept:housing", "approve", json!({})).await;
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.vars["all_ok"], json!(false));
    let empty = h.start("each", json!({"depts": []})).await;
    assert_eq!(empty.status, Status::Completed);
    assert_eq!(empty.vars["all_ok"], json!(true));
}

async fn message_wait_and_timeout(h: Harness) {
    let p = process(
        "msg",
        vec![var("docs", Type::Text)],
        &[],
        vec![
            start("wait"),
            node(
                "wait",
                NodeKind::WaitMessage {
                    message: id("supplement"),
                    sets: vec![FieldSpec {
                        var: id("docs"),
                        required: true,
                        span: Span::default(),
                    }],
                    next: id("got"),
                    timeout: Some((days(3), id("late"))),
                },
            ),
            end("got", "received"),
            end("late", "timed_out"),
        ],
    );
    h.deploy(p).await;
    let a = h.start("msg", json!({})).await;
    assert_eq!(a.timers.len(), 1);
    let wrong = h
        .engine
        .message(&a.id, "other", vars(json!({})), "api")
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, EngineError::Conflict { why } if why.contains("not waiting for message `other`"))
    );
    let missing = h
        .engine
        .message(&a.id, "supplement", vars(json!({})), "api")
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::Invalid { .. }));
    // The same message sent to two servers at once is consumed once.
    let second = h.reopen().await.unwrap();
    let payload = vars(json!({"docs": "户口本"}));
    let (x, y) = tokio::join!(
        h.engine
            .message(&a.id, "supplement", payload.clone(), "api"),
        second.message(&a.id, "supplement", payload.clone(), "api"),
    );
    assert!(
        x.is_ok() != y.is_ok(),
        "exactly one delivery wins: {x:?} / {y:?}"
    );
    let got = x.or(y).unwrap();
    assert_eq!(got.result.as_deref(), Some("received"));
    assert!(
        got.timers.is_empty(),
        "timeout timer cancelled with the message"
    );
    let again = h
        .engine
        .message(&a.id, "supplement", vars(json!({"docs": "x"})), "api")
        .await
        .unwrap_err();
    assert!(
        matches!(again, EngineError::Conflict { .. }),
        "a message is consumed once"
    );

    let b = h.start("msg", json!({})).await;
    h.clock.advance(Duration::days(2)).unwrap();
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        0
    );
    h.clock.advance(Duration::days(5)).unwrap();
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        1
    );
    let b = h.engine.instance(&b.id).await.unwrap();
    assert_eq!(b.result.as_deref(), Some("timed_out"));
}

trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}
impl NowUtc for yimen_engine::clock::ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        use yimen_engine::clock::Clock;
        self.now()
    }
}

async fn timer_wait(h: Harness) {
    let p = process(
        "pub",
        vec![],
        &[],
        vec![
            start("publicity"),
            node(
                "publicity",
                NodeKind::WaitTimer {
                    duration: days(7),
                    next: id("fin"),
                },
            ),
            end("fin", "published"),
        ],
    );
    h.deploy(p).await;
    let inst = h.start("pub", json!({})).await;
    assert_eq!(inst.timers.len(), 1);
    assert!(
        inst.provisional_due,
        "weekdays-only calendar flags day counts provisional"
    );
    let due = h.engine.next_timer_due().await.unwrap().unwrap();
    assert_eq!(due, inst.timers[0].due_at);
    assert!(due > t(MONDAY) + Duration::days(7) - Duration::hours(1));
    h.clock.set(due - Duration::seconds(1)).unwrap();
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        0
    );
    h.clock.set(due).unwrap();
    let other = h.reopen().await.unwrap();
    let (a, b) = tokio::join!(h.engine.fire_due_timers(due), other.fire_due_timers(due));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "two servers fire a timer once");
    let inst = h.engine.instance(&inst.id).await.unwrap();
    assert_eq!(inst.result.as_deref(), Some("published"));
}

async fn linked_process_with_and_without_wait(h: Harness) {
    let child = process(
        "temp_aid",
        vec![var("who", Type::Text)],
        &["window"],
        vec![
            start("help"),
            task("help", "window", vec![outcome("granted", "fin")], &[]),
            end("fin", "granted"),
        ],
    );
    h.deploy(child).await;
    let parent = |wait: bool, key: &str| {
        process(
            key,
            vec![var("name", Type::Text), var("child_result", Type::Text)],
            &[],
            vec![
                start("link"),
                node(
                    "link",
                    NodeKind::StartProcess {
                        process: id("temp_aid"),
                        inputs: vec![(id("who"), name("name"))],
                        wait,
                        next: id("after"),
                    },
                ),
                step(
                    "after",
                    vec![assign("child_result", field(name("link"), "result"))],
                    "fin",
                ),
                end("fin", "done"),
            ],
        )
    };
    h.deploy(parent(true, "waiting_parent")).await;
    h.deploy(parent(false, "fire_and_forget")).await;

    let p = h.start("waiting_parent", json!({"name": "x"})).await;
    assert_eq!(p.status, Status::Running);
    assert_eq!(p.active_nodes, ["link"]);
    let tasks = h.claim("window", 1).await;
    assert_eq!(tasks[0].process, "temp_aid");
    assert_eq!(tasks[0].vars["who"], json!("x"));
    let child_view = h.complete(&tasks[0], "granted", json!({})).await.unwrap();
    assert_eq!(child_view.parent_id.as_deref(), Some(p.id.as_str()));
    let p = h.engine.instance(&p.id).await.unwrap();
    assert_eq!(p.status, Status::Completed);
    assert_eq!(p.vars["child_result"], json!("granted"));

    let q = h.start("fire_and_forget", json!({"name": "y"})).await;
    assert_eq!(q.status, Status::Completed);
    assert_eq!(
        q.vars["child_result"],
        json!(null),
        "no result without waiting"
    );
    let open = h
        .engine
        .tasks(TaskFilter {
            queues: Some(vec!["window".into()]),
            state: Some(TaskState::Open),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "the child runs on after its parent ended");
}

async fn deployment_versions(h: Harness) {
    let v1 = h.deploy(review_process()).await;
    assert_eq!((v1.version, v1.created), (1, true));
    let same = h.deploy(review_process()).await;
    assert_eq!(
        (same.version, same.created, same.hash.clone()),
        (1, false, v1.hash.clone())
    );
    let old = h.start("review", json!({"size": 1})).await;
    let mut changed = review_process();
    changed.title = "改过的".into();
    let v2 = h.deploy(changed).await;
    assert_eq!((v2.version, v2.created), (2, true));
    let new = h.start("review", json!({"size": 1})).await;
    assert_eq!((old.version, new.version), (1, 2));
    let done = h.work("window", "approve", json!({"amount": 1})).await;
    assert_eq!(
        done.version, 1,
        "a running instance finishes on its version"
    );
    assert_eq!(h.engine.definitions().await.unwrap().len(), 2);
    assert_eq!(
        h.engine
            .definition("review", None)
            .await
            .unwrap()
            .model
            .title,
        "改过的"
    );
    assert!(matches!(
        h.engine.definition("nope", None).await,
        Err(EngineError::NotFound { .. })
    ));
}

async fn business_key_is_idempotent(h: Harness) {
    h.deploy(review_process()).await;
    let req = StartRequest {
        process: "review".into(),
        business_key: Some("2026-0001".into()),
        vars: vars(json!({"size": 2})),
        actor: "window".into(),
    };
    let (a, b) = tokio::join!(h.engine.start(req.clone()), h.engine.start(req.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    assert!(a.existing != b.existing, "one created, one found");
    let c = h.engine.start(req).await.unwrap();
    assert!(c.existing);
    assert_eq!(c.id, a.id);
    let all = h.engine.tasks(TaskFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
}

async fn concurrent_claims_are_exclusive(h: Harness) {
    h.deploy(review_process()).await;
    for _ in 0..24 {
        h.start("review", json!({"size": 1})).await;
    }
    // Two engines on one database: two servers.
    let second = h.reopen().await.unwrap();
    let mut handles = Vec::new();
    for w in 0..8 {
        let engine = if w % 2 == 0 {
            h.engine.clone()
        } else {
            second.clone()
        };
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = engine
                    .claim(ClaimRequest {
                        queues: vec!["window".into()],
                        org_units: None,
                        actor: format!("w{w}").into(),
                        worker: None,
                        max: 2,
                        lease: Duration::minutes(5),
                    })
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                for t in got {
                    engine
                        .complete(CompleteRequest {
                            task_id: t.task.id.clone(),
                            lock_token: t.lock_token,
                            outcome: Some("approve".into()),
                            vars: vars(json!({"amount": 5})),
                            actor: format!("w{w}").into(),
                            access: None,
                        })
                        .await
                        .unwrap();
                    mine.push(t.task.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (24, 24),
        "every task claimed and completed exactly once"
    );
    let report = h.engine.ledger_verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

async fn lease_expiry_fences_old_tokens(h: Harness) {
    h.deploy(review_process()).await;
    h.start("review", json!({"size": 1})).await;
    let first = h
        .engine
        .claim(ClaimRequest {
            queues: vec!["window".into()],
            org_units: None,
            actor: "slow".into(),
            worker: None,
            max: 1,
            lease: Duration::seconds(30),
        })
        .await
        .unwrap();
    assert!(
        h.claim("window", 1).await.is_empty(),
        "claimed tasks are invisible"
    );
    let extended = h
        .engine
        .extend(
            &first[0].task.id,
            first[0].lock_token,
            Duration::seconds(60),
            "slow",
        )
        .await
        .unwrap();
    assert!(extended.lock_expires_at > first[0].lock_expires_at);
    h.clock.advance(Duration::seconds(61)).unwrap();
    let second = h.claim("window", 1).await;
    assert_eq!(second.len(), 1);
    assert!(second[0].lock_token > first[0].lock_token);
    let stale = h
        .complete(&first[0], "approve", json!({"amount": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, EngineError::Conflict { why } if why.contains("stale")),
        "{stale:?}"
    );
    let stale_release = h
        .engine
        .release(&first[0].task.id, first[0].lock_token, "slow")
        .await
        .unwrap_err();
    assert!(matches!(stale_release, EngineError::Conflict { .. }));
    let released = h
        .engine
        .release(&second[0].task.id, second[0].lock_token, "w1")
        .await
        .unwrap();
    assert_eq!(released.state, TaskState::Open);
    let third = h.claim("window", 1).await;
    h.complete(&third[0], "approve", json!({"amount": 1}))
        .await
        .unwrap();
    let missing = h
        .engine
        .extend("no-such-task", 1, Duration::seconds(5), "w1")
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::NotFound { .. }));
}

async fn ledger_verify_detects_tampering(h: Harness) {
    h.deploy(review_process()).await;
    let inst = h.start("review", json!({"size": 1})).await;
    h.work("window", "approve", json!({"amount": 1})).await;
    let history = h.engine.history(&inst.id).await.unwrap();
    assert!(history.len() >= 4);
    assert!(h.engine.ledger_verify().await.unwrap().ok());
    let export = h
        .engine
        .ledger_export(t(MONDAY) - Duration::days(1), t(MONDAY) + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(export.len(), history.len());
    let csv = yimen_engine::ledger::to_csv(&export);
    assert!(csv.starts_with(
        "\u{feff}at,instance,business_key,seq,actor,actor_kind,actor_id,node,kind,text,hash\n"
    ));
    assert_eq!(csv.lines().count(), history.len() + 1);

    // History is stored in packs: a JSON array of entries per row (`store::history`). The SQL
    // below edits the stored text as someone with access to the database could.
    let stored_text = |text: &str| {
        format!("\"text\":{}", serde_json::to_string(text).unwrap()).replace('\'', "''")
    };
    let set_text = |from: &str, to: &str| {
        format!(
            "UPDATE history SET entries = replace(entries, '{}', '{}') WHERE instance_id = '{}'",
            stored_text(from),
            stored_text(to),
            inst.id
        )
    };
    h.exec(&set_text(&history[1].text, "approved by nobody"))
        .await;
    let report = h.engine.ledger_verify().await.unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0].contains("entry 2 was changed"),
        "{:?}",
        report.problems
    );

    // Restore the text, then swap the first two stored packs (seq 1 and the next one, by way
    // of negative numbers, since (instance_id, seq) is unique): the chain breaks.
    h.exec(&set_text("approved by nobody", &history[1].text))
        .await;
    assert!(h.engine.ledger_verify().await.unwrap().ok());
    let swap_first_two = || async {
        let id = &inst.id;
        let next = format!("SELECT MIN(seq) FROM history WHERE instance_id = '{id}'");
        for sql in [
            format!("UPDATE history SET seq = -1 WHERE instance_id = '{id}' AND seq = 1"),
            format!(
                "UPDATE history SET seq = -({next} AND seq > 1) \
                 WHERE instance_id = '{id}' AND seq = -1"
            ),
            format!("UPDATE history SET seq = 1 WHERE instance_id = '{id}' AND seq = -({next})"),
            format!("UPDATE history SET seq = -seq WHERE instance_id = '{id}' AND seq < 0"),
        ] {
            assert_eq!(h.exec(&sql).await, 1, "{sql}");
        }
    };
    swap_first_two().await;
    let report = h.engine.ledger_verify().await.unwrap();
    assert!(
        report.problems[0].contains("does not follow"),
        "{:?}",
        report.problems
    );
    swap_first_two().await;
    assert!(h.engine.ledger_verify().await.unwrap().ok());

    // Remove the last entries: the count on the instance row tells.
    h.exec(&format!(
        "DELETE FROM history WHERE instance_id = '{0}' AND seq = \
         (SELECT MAX(seq) FROM history WHERE instance_id = '{0}')",
        inst.id
    ))
    .await;
    let report = h.engine.ledger_verify().await.unwrap();
    assert!(
        report.problems[0].contains("entries recorded"),
        "{:?}",
        report.problems
    );
}

/// The stored packs of `instance`: (first entry's number, JSON array of entries).
async fn stored_packs(h: &Harness, instance: &str) -> Vec<(i64, String)> {
    let sql = "SELECT seq, entries FROM history WHERE instance_id = $1 ORDER BY seq";
    match h.engine.pool() {
        yimen_engine::store::StorePool::Sqlite(p) => sqlx::query_as(sql)
            .bind(instance)
            .fetch_all(p)
            .await
            .unwrap(),
        yimen_engine::store::StorePool::Postgres(p) => sqlx::query_as(sql)
            .bind(instance)
            .fetch_all(p)
            .await
            .unwrap(),
    }
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Issue 20: someone who can write the database changes an amount and recomputes the chain
/// with SHA-256 as the unkeyed chain is made, deletes a case's last pack and rewinds the head
/// on its instance row, and deletes a whole case. The chain alone (what `ledger verify` checked
/// before) finds none of them; the chain key and a signed checkpoint find each one.
async fn keyed_ledger_and_checkpoints_detect_deliberate_rewrites(h: Harness) {
    use yimen_engine::ledger_keys::{LedgerKeys, read_checkpoints, read_public_keys};
    h.deploy(review_process()).await;
    // Written before the key was set: verifies as unkeyed, and keyed entries may follow it.
    let old = h.start("review", json!({"size": 0})).await;
    let keys = LedgerKeys::generate(t(MONDAY) + Duration::seconds(1));
    let dir = std::env::temp_dir().join(format!("yimen-seal-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = keys.write(&dir.join("ledger.key")).unwrap();
    h.engine.set_ledger_keys(keys).unwrap();
    h.clock.advance(Duration::minutes(1)).unwrap();

    h.work("window", "approve", json!({"amount": 4})).await; // the case written before the key
    let rewritten = h.start("review", json!({"size": 1})).await;
    h.work("window", "approve", json!({"amount": 1})).await;
    let shortened = h.start("review", json!({"size": 2})).await;
    h.work("window", "approve", json!({"amount": 2})).await;
    let deleted = h.start("review", json!({"size": 3})).await;
    h.work("window", "approve", json!({"amount": 3})).await;

    let keys = h.engine.ledger_keys().unwrap();
    let checkpoints_dir = dir.join("checkpoints");
    h.engine
        .ledger_checkpoint()
        .await
        .unwrap()
        .write(&checkpoints_dir)
        .unwrap();
    let checkpoints = read_checkpoints(&checkpoints_dir).unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].1.count, 4);
    let public = read_public_keys(&public).unwrap();
    let verify = || async {
        h.engine
            .ledger_verify_with(Some(&keys), Some((&checkpoints, &public)))
            .await
            .unwrap()
    };
    let report = verify().await;
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.checkpoints, 1);
    let unkeyed = h.engine.history(&old.id).await.unwrap();
    assert!(unkeyed[0].hash.len() == 64 && !unkeyed[0].hash.contains(':'));
    assert!(
        report.unkeyed >= 1 && report.unkeyed < unkeyed.len(),
        "{report:?}"
    );
    assert_eq!(report.keyed + report.unkeyed, report.entries);

    // 1. An amount changed, every hash of the case recomputed as the unkeyed chain is.
    let mut prev = String::new();
    let mut changed = false;
    for (seq, text) in stored_packs(&h, &rewritten.id).await {
        let mut entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for (k, e) in entries.iter_mut().enumerate() {
            // The variable's entry: `amount = 1`.
            if e["text"] == "amount = 1" {
                e["text"] = json!("amount = 1000");
                changed = true;
            }
            let row = yimen_engine::store::HistoryRow {
                instance_id: rewritten.id.clone(),
                seq: seq + k as i64,
                at: e["at"].as_i64().unwrap(),
                actor: e["actor"].as_str().unwrap().into(),
                actor_kind: e["actor_kind"].as_str().unwrap_or("").into(),
                actor_id: e["actor_id"].as_str().unwrap_or("").into(),
                node: e["node"].as_str().map(str::to_string),
                kind: e["kind"].as_str().unwrap().into(),
                text: e["text"].as_str().unwrap().into(),
                data: e["data"].as_str().unwrap().into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            let hash = yimen_engine::ledger::entry_hash(&row);
            e["prev_hash"] = json!(prev);
            e["hash"] = json!(hash);
            prev = hash;
        }
        let text = serde_json::to_string(&entries).unwrap();
        h.exec(&format!(
            "UPDATE history SET entries = {} WHERE instance_id = {} AND seq = {seq}",
            quoted(&text),
            quoted(&rewritten.id)
        ))
        .await;
    }
    assert!(changed, "no entry of the case holds the amount");
    h.exec(&format!(
        "UPDATE instances SET history_head = {} WHERE id = {}",
        quoted(&prev),
        quoted(&rewritten.id)
    ))
    .await;

    // 2. The last pack deleted, the head on the instance row rewound to the entry before it.
    let packs = stored_packs(&h, &shortened.id).await;
    assert!(packs.len() >= 2);
    let (last_seq, last) = packs.last().unwrap();
    let first: Vec<serde_json::Value> = serde_json::from_str(last).unwrap();
    let head = first[0]["prev_hash"].as_str().unwrap();
    h.exec(&format!(
        "DELETE FROM history WHERE instance_id = {} AND seq = {last_seq}",
        quoted(&shortened.id)
    ))
    .await;
    h.exec(&format!(
        "UPDATE instances SET history_count = {}, history_head = {} WHERE id = {}",
        last_seq - 1,
        quoted(head),
        quoted(&shortened.id)
    ))
    .await;

    // 3. A whole case deleted.
    for table in ["history", "tasks", "timers", "documents"] {
        h.exec(&format!(
            "DELETE FROM {table} WHERE instance_id = {}",
            quoted(&deleted.id)
        ))
        .await;
    }
    h.exec(&format!(
        "DELETE FROM instances WHERE id = {}",
        quoted(&deleted.id)
    ))
    .await;

    // The unkeyed chain alone finds nothing: what a rewrite by someone with the database gets
    // past.
    let plain = h.engine.ledger_verify_with(None, None).await.unwrap();
    assert!(plain.ok(), "{:?}", plain.problems);

    let report = verify().await;
    let about = |id: &str, what: &str| {
        report
            .problems
            .iter()
            .any(|p| p.contains(id) && p.contains(what))
    };
    assert!(
        about(&rewritten.id, "recomputed without the key"),
        "{:?}",
        report.problems
    );
    assert!(about(&rewritten.id, "(rewritten)"), "{:?}", report.problems);
    assert!(
        about(&shortened.id, "entries removed from its end"),
        "{:?}",
        report.problems
    );
    assert!(
        about(&deleted.id, "missing from the database (deleted)"),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("recorded 4 cases, the database has 3")),
        "{:?}",
        report.problems
    );
    assert!(!about(&old.id, ""), "{:?}", report.problems);

    // The checkpoint itself changed (a case taken out of it) no longer verifies.
    let mut forged = checkpoints.clone();
    forged[0].1.cases.retain(|c| c.id != deleted.id);
    forged[0].1.count -= 1;
    let report = h
        .engine
        .ledger_verify_with(Some(&keys), Some((&forged, &public)))
        .await
        .unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("signature does not verify")),
        "{:?}",
        report.problems
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn cancel_cancels_tasks_and_timers(h: Harness) {
    let mut p = review_process();
    if let NodeKind::Task(t) = &mut p.nodes[1].kind {
        t.deadline = Some(Deadline {
            duration: hours(4),
            clock: None,
            ladder: vec![Escalation {
                when: EscalationWhen::AtDue,
                level: 1,
                actions: vec![],
                span: Span::default(),
            }],
            span: Span::default(),
        });
    }
    h.deploy(p).await;
    let inst = h.start("review", json!({"size": 1})).await;
    assert_eq!(inst.timers.len(), 1);
    assert!(inst.tasks[0].due_at.is_some());
    let cancelled = h
        .engine
        .cancel(&inst.id, "applicant withdrew", "admin")
        .await
        .unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert!(cancelled.tasks.is_empty() && cancelled.timers.is_empty());
    assert!(h.claim("window", 1).await.is_empty());
    let again = h
        .engine
        .cancel(&inst.id, "twice", "admin")
        .await
        .unwrap_err();
    assert!(matches!(again, EngineError::Conflict { .. }));
    let missing = h.engine.cancel("nope", "x", "admin").await.unwrap_err();
    assert!(matches!(missing, EngineError::NotFound { .. }));
}

async fn escalation_fires_once_and_is_cancelled_by_completion(h: Harness) {
    let mut p = review_process();
    p.roles.push(role("supervision"));
    if let NodeKind::Task(t) = &mut p.nodes[1].kind {
        t.deadline = Some(Deadline {
            duration: hours(4),
            clock: None,
            ladder: vec![
                Escalation {
                    when: EscalationWhen::AtDue,
                    level: 1,
                    actions: vec![
                        Action::Notify {
                            target: NotifyTarget::Role(QueueRef {
                                role: id("supervision"),
                                key: None,
                                span: Span::default(),
                            }),
                            message: "case overdue, size {{ size }}".into(),
                            span: Span::default(),
                        },
                        Action::FollowUp {
                            id: id("chase"),
                            label: Some("查明延误原因".into()),
                            queue: QueueRef {
                                role: id("window"),
                                key: None,
                                span: Span::default(),
                            },
                            span: Span::default(),
                        },
                    ],
                    span: Span::default(),
                },
                Escalation {
                    when: EscalationWhen::After(hours(2)),
                    level: 2,
                    actions: vec![],
                    span: Span::default(),
                },
            ],
            span: Span::default(),
        });
    }
    h.deploy(p).await;
    let late = h.start("review", json!({"size": 1})).await;
    let on_time = h.start("review", json!({"size": 2})).await;
    assert_eq!(late.timers.len(), 2);
    // on_time's task is completed a minute before its deadline: no escalation for it.
    let tasks = h.claim("window", 2).await;
    let t = tasks
        .iter()
        .find(|t| t.task.instance_id == on_time.id)
        .unwrap();
    h.clock
        .advance(Duration::hours(4) - Duration::minutes(1))
        .unwrap();
    h.complete(t, "approve", json!({"amount": 1}))
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(1)).unwrap();
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        1
    );
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        0
    );
    let outbox = h.engine.outbox_of(&late.id).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].channel, "role:supervision");
    assert_eq!(outbox[0].payload["message"], json!("case overdue, size 1"));
    assert!(h.engine.outbox_of(&on_time.id).await.unwrap().is_empty());
    let view = h.engine.instance(&late.id).await.unwrap();
    assert!(
        view.tasks.iter().any(|t| t.node == "chase"),
        "follow-up task created"
    );

    let claimed = h
        .engine
        .outbox_claim(h.clock.now_utc(), 10, Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        h.engine
            .outbox_claim(h.clock.now_utc(), 10, Duration::seconds(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(h.engine.outbox_delivered(&claimed[0].id).await.unwrap());
    assert!(!h.engine.outbox_delivered(&claimed[0].id).await.unwrap());

    let main_task = tasks
        .iter()
        .find(|t| t.task.instance_id == late.id)
        .unwrap();
    h.complete(main_task, "approve", json!({"amount": 1}))
        .await
        .unwrap();
    h.clock.advance(Duration::hours(3)).unwrap();
    assert_eq!(
        h.engine.fire_due_timers(h.clock.now_utc()).await.unwrap(),
        0,
        "level 2 cancelled by completion"
    );
    let kinds: Vec<_> = h
        .engine
        .history(&late.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "escalation").count(), 1);
}

async fn documents_mask_personal_data_in_public_ones(h: Harness) {
    let mut applicant = var("applicant", Type::Text);
    applicant.personal = Some(PersonalKind::Name);
    let mut idn = var("id_number", Type::Text);
    idn.personal = Some(PersonalKind::IdNumber);
    let mut p = process(
        "docs",
        vec![applicant, idn, var("amount", Type::Decimal)],
        &[],
        vec![
            start("publish"),
            step(
                "publish",
                vec![
                    Action::Issue {
                        document: id("notice"),
                        span: Span::default(),
                    },
                    Action::Issue {
                        document: id("publicity"),
                        span: Span::default(),
                    },
                ],
                "fin",
            ),
            end("fin", "done"),
        ],
    );
    p.documents = vec![
        DocumentDecl {
            name: id("notice"),
            label: Some("补证通知书".into()),
            template: "notice.md.j2".into(),
            public: false,
            span: Span::default(),
        },
        DocumentDecl {
            name: id("publicity"),
            label: Some("公示".into()),
            template: "publicity.md.j2".into(),
            public: true,
            span: Span::default(),
        },
    ];
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "notice.md.j2".to_string(),
        "{{ applicant }} ({{ id_number }}), {{ today }}".to_string(),
    );
    files.insert(
        "publicity.md.j2".to_string(),
        "{{ applicant }}: {{ amount }} 元".to_string(),
    );
    h.engine
        .deploy(yimen_engine::DeployRequest {
            file: "docs.flow".into(),
            source: "docs".into(),
            files,
            model: Some(p),
        })
        .await
        .unwrap();
    let inst = h
        .start(
            "docs",
            json!({"applicant": "张三丰", "id_number": "150302199001011231", "amount": "1200.50"}),
        )
        .await;
    assert_eq!(
        inst.vars["id_number"],
        json!("150302********1231"),
        "views mask personal data"
    );
    let docs = h.engine.documents(&inst.id).await.unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].content, "张三丰 (150302199001011231), 2026-09-28");
    assert!(!docs[0].public);
    assert_eq!(docs[1].content, "张**: 1200.5 元");
    assert!(docs[1].public);
}

async fn failure_retry_and_incident(h: Harness) {
    h.deploy(review_process()).await;
    let inst = h.start("review", json!({"size": 1})).await;
    let t = h.claim("window", 1).await;
    let failed = h
        .engine
        .fail(FailRequest {
            task_id: t[0].task.id.clone(),
            lock_token: t[0].lock_token,
            error: "scanner down".into(),
            retry_after: Some(Duration::seconds(60)),
            actor: "w1".into(),
        })
        .await
        .unwrap();
    assert_eq!((failed.state, failed.failures), (TaskState::Open, 1));
    assert!(
        h.claim("window", 1).await.is_empty(),
        "not before the back-off"
    );
    h.clock.advance(Duration::seconds(60)).unwrap();
    let t = h.claim("window", 1).await;
    h.engine
        .fail(FailRequest {
            task_id: t[0].task.id.clone(),
            lock_token: t[0].lock_token,
            error: "still down".into(),
            retry_after: None,
            actor: "w1".into(),
        })
        .await
        .unwrap();
    let view = h.engine.instance(&inst.id).await.unwrap();
    assert_eq!(view.status, Status::Incident);
    assert!(view.incident.as_deref().unwrap().contains("still down"));
    assert!(h.claim("window", 1).await.is_empty());
    let resolved = h
        .engine
        .resolve_incident(&inst.id, "operator")
        .await
        .unwrap();
    assert_eq!(resolved.status, Status::Running);
    let done = h.work("window", "approve", json!({"amount": 1})).await;
    assert_eq!(done.status, Status::Completed);
    let none = h
        .engine
        .resolve_incident(&inst.id, "operator")
        .await
        .unwrap_err();
    assert!(matches!(none, EngineError::Conflict { .. }));
}

async fn step_budget_parks_a_loop_as_incident(h: Harness) {
    let p = process(
        "looping",
        vec![var("n", Type::Integer)],
        &[],
        vec![
            start("spin"),
            step(
                "spin",
                vec![assign("n", bin(BinaryOp::Add, name("n"), int(1)))],
                "spin",
            ),
        ],
    );
    h.deploy(p).await;
    let inst = h.start("looping", json!({"n": 0})).await;
    assert_eq!(inst.status, Status::Incident);
    assert!(
        inst.incident
            .as_deref()
            .unwrap()
            .contains("automatic steps"),
        "{:?}",
        inst.incident
    );
    assert!(h.engine.ledger_verify().await.unwrap().ok());
}

async fn newer_schema_is_refused(h: Harness) {
    let checksum = if h.db.is_postgres() {
        "decode('00', 'hex')"
    } else {
        "X'00'"
    };
    h.exec(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, {checksum}, 0)"
    ))
    .await;
    let err = h.reopen().await.unwrap_err();
    assert!(
        matches!(err, EngineError::SchemaTooNew { found: 9999, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade yimen"));
}

async fn missing_linked_process_is_an_incident_until_resolved(h: Harness) {
    let parent = process(
        "parent",
        vec![],
        &["window"],
        vec![
            start("first"),
            task("first", "window", vec![outcome("done", "link")], &[]),
            node(
                "link",
                NodeKind::StartProcess {
                    process: id("helper"),
                    inputs: vec![],
                    wait: true,
                    next: id("fin"),
                },
            ),
            end("fin", "done"),
        ],
    );
    h.deploy(parent).await;
    let inst = h.start("parent", json!({})).await;
    // The worker's completion succeeds; the missing process is the operator's problem.
    let view = h.work("window", "done", json!({})).await;
    assert_eq!(view.status, Status::Incident);
    assert!(
        view.incident
            .as_deref()
            .unwrap()
            .contains("`helper` is not deployed"),
        "{:?}",
        view.incident
    );
    let still = h
        .engine
        .resolve_incident(&inst.id, "operator")
        .await
        .unwrap();
    assert_eq!(still.status, Status::Incident, "still missing");
    h.deploy(process(
        "helper",
        vec![],
        &[],
        vec![start("fin"), end("fin", "helped")],
    ))
    .await;
    let resolved = h
        .engine
        .resolve_incident(&inst.id, "operator")
        .await
        .unwrap();
    assert_eq!(
        (resolved.status, resolved.result.as_deref()),
        (Status::Completed, Some("done"))
    );
    assert!(h.engine.ledger_verify().await.unwrap().ok());
}

async fn batches_commit_together_and_refuse_one_by_one(h: Harness) {
    h.deploy(review_process()).await;
    let req = |bk: &str, size: serde_json::Value| StartRequest {
        process: "review".into(),
        business_key: Some(bk.into()),
        vars: vars(json!({ "size": size })),
        actor: "batch".into(),
    };
    let started = h
        .engine
        .start_many(&[
            req("b1", json!(1)),
            req("b2", json!("two")),
            req("b3", json!(3)),
            req("b1", json!(1)),
        ])
        .await;
    assert!(matches!(started[1], Err(EngineError::Invalid { .. })));
    let (b1, b3, again) = (
        started[0].as_ref().unwrap(),
        started[2].as_ref().unwrap(),
        started[3].as_ref().unwrap(),
    );
    assert!(!b1.1 && !b3.1);
    assert_eq!(
        (again.0.as_str(), again.1),
        (b1.0.as_str(), true),
        "same business key in one batch"
    );

    let tasks = h.claim("window", 10).await;
    assert_eq!(tasks.len(), 2);
    let complete =
        |t: &yimen_engine::ClaimedTask, token: i64, amount: serde_json::Value| CompleteRequest {
            task_id: t.task.id.clone(),
            lock_token: token,
            outcome: Some("approve".into()),
            vars: vars(json!({ "amount": amount })),
            actor: "w1".into(),
            access: None,
        };
    let results = h
        .engine
        .complete_many(&[
            complete(&tasks[0], tasks[0].lock_token, json!("oops")),
            complete(&tasks[1], tasks[1].lock_token + 7, json!(1)),
            complete(&tasks[1], tasks[1].lock_token, json!(2)),
        ])
        .await;
    assert!(matches!(results[0], Err(EngineError::Invalid { .. })));
    assert!(matches!(results[1], Err(EngineError::Conflict { .. })));
    assert_eq!(results[2].as_ref().unwrap(), &tasks[1].task.instance_id);
    let refused = h.engine.instance(&tasks[0].task.instance_id).await.unwrap();
    assert_eq!(
        refused.status,
        Status::Running,
        "the refused completion changed nothing"
    );
    assert_eq!(
        h.engine.task(&tasks[0].task.id).await.unwrap().state,
        TaskState::Claimed
    );
    let done = h.engine.instance(&tasks[1].task.instance_id).await.unwrap();
    assert_eq!(done.status, Status::Completed);
    assert!(h.engine.ledger_verify().await.unwrap().ok());
}

/// Starts, claims and completions sent at once go through the committers together (group
/// commit): repeated business keys still find their instance, a completion sent twice is done
/// once and refused once, and every history chain stays intact.
async fn concurrent_events_share_commits_and_stay_exact(h: Harness) {
    h.deploy(review_process()).await;
    let mut starts = tokio::task::JoinSet::new();
    for n in 0..40 {
        let engine = h.engine.clone();
        starts.spawn(async move {
            engine
                .start(StartRequest {
                    process: "review".into(),
                    // Every key twice: 20 cases.
                    business_key: Some(format!("k{}", n % 20)),
                    vars: vars(json!({ "size": 1 })),
                    actor: "batch".into(),
                })
                .await
                .map(|v| (v.id, v.existing))
        });
    }
    let mut ids = HashSet::new();
    let mut existing = 0;
    while let Some(done) = starts.join_next().await {
        let (id, was) = done.unwrap().unwrap();
        ids.insert(id);
        existing += usize::from(was);
    }
    assert_eq!(ids.len(), 20, "one case per business key");
    assert_eq!(existing, 20, "the second start of each key found the first");

    let tasks = h.claim("window", 100).await;
    assert_eq!(tasks.len(), 20);
    let mut completions = tokio::task::JoinSet::new();
    for t in &tasks {
        for _ in 0..2 {
            let engine = h.engine.clone();
            let req = CompleteRequest {
                task_id: t.task.id.clone(),
                lock_token: t.lock_token,
                outcome: Some("approve".into()),
                vars: vars(json!({ "amount": 1 })),
                actor: "w1".into(),
                access: None,
            };
            completions.spawn(async move { engine.complete(req).await.map(|v| v.status) });
        }
    }
    let (mut done, mut refused) = (0, 0);
    while let Some(r) = completions.join_next().await {
        match r.unwrap() {
            Ok(status) => {
                assert_eq!(status, Status::Completed);
                done += 1;
            }
            // The same completion twice: the second is told the first was applied.
            Err(EngineError::AlreadyCompleted { .. }) => refused += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(
        (done, refused),
        (20, 20),
        "each completion sent twice: once done, once 409"
    );
    for id in &ids {
        let view = h.engine.instance(id).await.unwrap();
        assert_eq!(view.status, Status::Completed);
        assert!(view.tasks.is_empty());
        let completed = h
            .engine
            .history(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == "task_completed")
            .count();
        assert_eq!(completed, 1, "one completion in the timeline of {id}");
    }
    assert!(h.engine.ledger_verify().await.unwrap().ok());
}
