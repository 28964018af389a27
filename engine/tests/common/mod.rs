//! A tiny builder of `model::Process` values and a harness that opens an engine on SQLite (a
//! temp file) or PostgreSQL (own schema, when `YIMEN_TEST_POSTGRES` is set).
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use yimen_dsl::model::*;
use yimen_engine::clock::ManualClock;
use yimen_engine::{
    ClaimRequest, ClaimedTask, CompleteRequest, DeployRequest, Engine, OpenOptions, StartRequest,
    WeekdaysOnly,
};

pub fn id(s: &str) -> Ident {
    Ident {
        name: s.into(),
        span: Span::default(),
    }
}

pub fn e(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}
pub fn name(n: &str) -> Expr {
    e(ExprKind::Name(n.into()))
}
pub fn int(i: i64) -> Expr {
    e(ExprKind::Integer(i))
}
pub fn text(s: &str) -> Expr {
    e(ExprKind::Text(s.into()))
}
pub fn days(n: i64) -> Expr {
    e(ExprKind::Duration {
        amount: n,
        unit: DurationUnit::Days,
    })
}
pub fn hours(n: i64) -> Expr {
    e(ExprKind::Duration {
        amount: n,
        unit: DurationUnit::Hours,
    })
}
pub fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    e(ExprKind::Binary(op, Box::new(l), Box::new(r)))
}
pub fn field(base: Expr, f: &str) -> Expr {
    e(ExprKind::Field(Box::new(base), f.into()))
}

pub fn var(n: &str, ty: Type) -> VarDecl {
    VarDecl {
        name: id(n),
        ty,
        label: None,
        personal: None,
        required: false,
        default: None,
        span: Span::default(),
    }
}

pub fn node(n: &str, kind: NodeKind) -> Node {
    Node {
        id: id(n),
        label: None,
        kind,
        span: Span::default(),
    }
}

pub fn start(next: &str) -> Node {
    node("start", NodeKind::Start { next: id(next) })
}
pub fn end(n: &str, result: &str) -> Node {
    node(
        n,
        NodeKind::End {
            result: id(result),
            actions: vec![],
        },
    )
}
pub fn step(n: &str, actions: Vec<Action>, next: &str) -> Node {
    node(
        n,
        NodeKind::Step {
            actions,
            next: id(next),
        },
    )
}
pub fn assign(v: &str, value: Expr) -> Action {
    Action::Assign {
        var: id(v),
        value,
        span: Span::default(),
    }
}

pub fn outcome(key: &str, next: &str) -> Outcome {
    Outcome {
        key: id(key),
        label: None,
        next: id(next),
        requires: vec![],
        span: Span::default(),
    }
}

pub fn task_spec(queue: &str, outcomes: Vec<Outcome>, fields: &[(&str, bool)]) -> Task {
    Task {
        queue: QueueRef {
            role: id(queue),
            key: None,
            span: Span::default(),
        },
        assignee: None,
        for_each: None,
        outcomes,
        fields: fields
            .iter()
            .map(|(v, r)| FieldSpec {
                var: id(v),
                required: *r,
                span: Span::default(),
            })
            .collect(),
        deadline: None,
        on_enter: vec![],
    }
}

pub fn task(n: &str, queue: &str, outcomes: Vec<Outcome>, fields: &[(&str, bool)]) -> Node {
    node(n, NodeKind::Task(task_spec(queue, outcomes, fields)))
}

pub fn role(n: &str) -> RoleDecl {
    RoleDecl {
        name: id(n),
        label: None,
        scope: None,
        keyed_by: None,
        oversees: false,
        informs_subject: false,
        span: Span::default(),
    }
}

pub fn process(key: &str, vars: Vec<VarDecl>, roles: &[&str], nodes: Vec<Node>) -> Process {
    Process {
        key: id(key),
        title: format!("{key} 测试"),
        version: 1,
        imports: vec![],
        config: None,
        calendar: None,
        enums: vec![],
        vars,
        roles: roles.iter().map(|r| role(r)).collect(),
        channels: vec![],
        documents: vec![],
        clocks: vec![],
        nodes,
        span: Span::default(),
    }
}

/// A process of one task for the window, started with no variables.
pub fn one_task(key: &str) -> Process {
    process(
        key,
        vec![],
        &["window"],
        vec![
            start("check"),
            task("check", "window", vec![outcome("done", "end")], &[]),
            end("end", "done"),
        ],
    )
}

pub fn map(v: Json) -> Map<String, Json> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn t0() -> DateTime<Utc> {
    "2026-09-28T01:00:00Z".parse().unwrap()
}

pub struct Harness {
    pub engine: Engine,
    pub clock: ManualClock,
    pub url: String,
    pub schema: Option<String>,
    path: Option<std::path::PathBuf>,
}

impl Harness {
    pub async fn sqlite() -> Harness {
        let dir = std::env::temp_dir().join("yimen-engine-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let clock = ManualClock::new(t0());
        let engine = Engine::open(&url, Arc::new(clock.clone()), Arc::new(WeekdaysOnly))
            .await
            .unwrap();
        Harness {
            engine,
            clock,
            url,
            schema: None,
            path: Some(path),
        }
    }

    /// `None` (and a visible line) when `YIMEN_TEST_POSTGRES` is not set.
    pub async fn postgres(test: &str) -> Option<Harness> {
        let url = yimen_engine::testing::postgres_url(test)?;
        let schema = format!(
            "t_{}_{}",
            test,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let clock = ManualClock::new(t0());
        let engine = Engine::open_with(
            OpenOptions {
                url: url.clone(),
                pg_schema: Some(schema.clone()),
            },
            Arc::new(clock.clone()),
            Arc::new(WeekdaysOnly),
        )
        .await
        .unwrap();
        Some(Harness {
            engine,
            clock,
            url,
            schema: Some(schema),
            path: None,
        })
    }

    /// Opens a second engine on the same database (another server).
    pub async fn reopen(&self) -> Result<Engine, yimen_engine::EngineError> {
        Engine::open_with(
            OpenOptions {
                url: self.url.clone(),
                pg_schema: self.schema.clone(),
            },
            Arc::new(self.clock.clone()),
            Arc::new(WeekdaysOnly),
        )
        .await
    }

    /// Runs raw SQL on the test database (tampering tests).
    pub async fn exec(&self, sql: &str) -> u64 {
        match self.engine.pool() {
            yimen_engine::store::StorePool::Sqlite(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(p)
                    .await
                    .unwrap()
                    .rows_affected()
            }
            yimen_engine::store::StorePool::Postgres(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(p)
                    .await
                    .unwrap()
                    .rows_affected()
            }
        }
    }

    pub async fn deploy(&self, model: Process) -> yimen_engine::Deployment {
        self.engine
            .deploy(DeployRequest {
                file: format!("{}.flow", model.key.name),
                source: serde_json::to_string(&model).unwrap(),
                files: Default::default(),
                model: Some(model),
            })
            .await
            .unwrap()
    }

    pub async fn start(&self, process: &str, vars: Json) -> yimen_engine::InstanceView {
        self.engine
            .start(StartRequest {
                process: process.into(),
                business_key: None,
                vars: map(vars),
                actor: "tester".into(),
            })
            .await
            .unwrap()
    }

    pub async fn claim(&self, queue: &str, max: u32) -> Vec<ClaimedTask> {
        self.engine
            .claim(ClaimRequest {
                queues: vec![queue.into()],
                org_units: None,
                actor: "w1".into(),
                worker: None,
                max,
                lease: Duration::minutes(5),
            })
            .await
            .unwrap()
    }

    pub async fn complete(
        &self,
        t: &ClaimedTask,
        outcome: &str,
        vars: Json,
    ) -> Result<yimen_engine::InstanceView, yimen_engine::EngineError> {
        self.engine
            .complete(CompleteRequest {
                task_id: t.task.id.clone(),
                lock_token: t.lock_token,
                outcome: Some(outcome.into()),
                vars: map(vars),
                actor: "w1".into(),
                access: None,
            })
            .await
    }

    /// Claims the one task of `queue` and completes it.
    pub async fn work(&self, queue: &str, outcome: &str, vars: Json) -> yimen_engine::InstanceView {
        let tasks = self.claim(queue, 1).await;
        assert_eq!(tasks.len(), 1, "expected one task in {queue}");
        self.complete(&tasks[0], outcome, vars).await.unwrap()
    }

    pub async fn finish(self) {
        if let Some(schema) = &self.schema
            && let yimen_engine::store::StorePool::Postgres(p) = self.engine.pool()
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(p)
                .await;
        }
        if let Some(path) = &self.path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}
