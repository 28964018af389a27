//! Drives cases through the engine for the crash test (`engine/tests/crash.rs`), which kills
//! this process with SIGKILL at random moments and starts it again. Idempotent: cases are
//! started by business key, tasks are claimed with a short lease, so a run after a kill picks
//! up where the killed one stopped. Prints `done` when every case has ended.
//!
//! Usage: `yimen-crash-driver DATABASE_URL CASES [POSTGRES_SCHEMA]`

use chrono::Duration;
use serde_json::json;
use std::sync::Arc;
use yimen_dsl::model::*;
use yimen_engine::clock::SystemClock;
use yimen_engine::{
    ClaimRequest, CompleteRequest, DeployRequest, Engine, StartRequest, WeekdaysOnly,
};

fn ident(s: &str) -> Ident {
    Ident {
        name: s.into(),
        span: Span::default(),
    }
}

fn node(id: &str, kind: NodeKind) -> Node {
    Node {
        id: ident(id),
        label: None,
        kind,
        span: Span::default(),
    }
}

fn task(queue: &str, outcomes: &[(&str, &str)], fields: &[&str]) -> NodeKind {
    NodeKind::Task(Task {
        queue: QueueRef {
            role: ident(queue),
            key: None,
            span: Span::default(),
        },
        assignee: None,
        for_each: None,
        outcomes: outcomes
            .iter()
            .map(|(k, n)| Outcome {
                key: ident(k),
                label: None,
                next: ident(n),
                requires: vec![],
                span: Span::default(),
            })
            .collect(),
        fields: fields
            .iter()
            .map(|f| FieldSpec {
                var: ident(f),
                required: true,
                span: Span::default(),
            })
            .collect(),
        deadline: None,
        on_enter: vec![],
    })
}

/// start → check (task) → choice → decide (task) → archive (task) → end.
fn model() -> Process {
    let var = |n: &str, ty: Type| VarDecl {
        name: ident(n),
        ty,
        label: None,
        personal: None,
        required: false,
        default: None,
        span: Span::default(),
    };
    let e = |kind: ExprKind| Expr {
        kind,
        span: Span::default(),
    };
    Process {
        key: ident("crash"),
        title: "crash test".into(),
        version: 1,
        imports: vec![],
        config: None,
        calendar: None,
        enums: vec![],
        vars: vec![var("amount", Type::Integer)],
        roles: ["a", "b", "c"]
            .iter()
            .map(|r| RoleDecl {
                name: ident(r),
                label: None,
                scope: None,
                keyed_by: None,
                span: Span::default(),
            })
            .collect(),
        channels: vec![],
        documents: vec![],
        clocks: vec![],
        nodes: vec![
            node(
                "start",
                NodeKind::Start {
                    next: ident("check"),
                },
            ),
            node("check", task("a", &[("ok", "route")], &["amount"])),
            node(
                "route",
                NodeKind::Choice {
                    branches: vec![Branch {
                        when: e(ExprKind::Binary(
                            BinaryOp::Ge,
                            Box::new(e(ExprKind::Name("amount".into()))),
                            Box::new(e(ExprKind::Integer(0))),
                        )),
                        next: ident("decide"),
                        span: Span::default(),
                    }],
                    default: None,
                },
            ),
            node("decide", task("b", &[("yes", "archive")], &[])),
            node("archive", task("c", &[("filed", "end")], &[])),
            node(
                "end",
                NodeKind::End {
                    result: ident("done"),
                    actions: vec![],
                },
            ),
        ],
        span: Span::default(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(cases)) = (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: yimen-crash-driver DATABASE_URL CASES [POSTGRES_SCHEMA]");
        std::process::exit(2);
    };
    let opts = yimen_engine::OpenOptions {
        url: url.clone(),
        pg_schema: args.get(3).cloned(),
    };
    let engine = Engine::open_with(opts, Arc::new(SystemClock), Arc::new(WeekdaysOnly)).await?;
    engine
        .deploy(DeployRequest {
            file: "crash.flow".into(),
            source: "crash".into(),
            files: Default::default(),
            model: Some(model()),
        })
        .await?;
    for i in 0..cases {
        engine
            .start(StartRequest {
                process: "crash".into(),
                business_key: Some(format!("case-{i}")),
                vars: Default::default(),
                actor: "driver".into(),
            })
            .await?;
    }
    loop {
        let claimed = engine
            .claim(ClaimRequest {
                queues: vec!["a".into(), "b".into(), "c".into()],
                org_units: None,
                actor: format!("driver-{}", std::process::id()),
                worker: None,
                max: 5,
                lease: Duration::seconds(1),
            })
            .await?;
        if claimed.is_empty() {
            let mut unfinished = 0;
            for state in [
                yimen_engine::TaskState::Open,
                yimen_engine::TaskState::Claimed,
            ] {
                let filter = yimen_engine::TaskFilter {
                    state: Some(state),
                    limit: Some(1),
                    ..Default::default()
                };
                unfinished += engine.tasks(filter).await?.len();
            }
            if unfinished == 0 {
                println!("done");
                return Ok(());
            }
            // Tasks claimed by a killed run: wait for their lease to run out.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        for t in claimed {
            let vars = if t.task.node == "check" {
                json!({"amount": 5})
            } else {
                json!({})
            };
            engine
                .complete(CompleteRequest {
                    task_id: t.task.id.clone(),
                    lock_token: t.lock_token,
                    outcome: None,
                    vars: vars.as_object().cloned().unwrap_or_default(),
                    actor: "driver".into(),
                    access: None,
                })
                .await?;
        }
    }
}
