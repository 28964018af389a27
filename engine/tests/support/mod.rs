//! Shared set-up of the API tests: a test process built as a model (no parser needed), an
//! engine on SQLite or on its own PostgreSQL schema, the router, and request helpers.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;
use yimen_dsl::model::*;
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::clock::{Clock, SystemClock};
use yimen_engine::{DeployRequest, Engine, OpenOptions, WeekdaysOnly};

/// Runs each scenario once per database: `<scenario>::sqlite` and `<scenario>::postgres`, each
/// on an API over a fresh database ([`setup`]; PostgreSQL skips without `YIMEN_TEST_POSTGRES`).
/// Use with `#[macro_use] mod support;`.
#[allow(unused_macros)] // Not every test file that uses support runs scenarios.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(api) = super::setup("sqlite", stringify!($scenario)).await {
                        super::$scenario(api).await;
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(api) = super::setup("postgres", stringify!($scenario)).await {
                        super::$scenario(api).await;
                    }
                }
            }
        )*
    };
}

pub fn id(name: &str) -> Ident {
    Ident {
        name: name.into(),
        span: Span::default(),
    }
}

pub fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

pub fn var(name: &str, ty: Type, personal: Option<PersonalKind>, required: bool) -> VarDecl {
    VarDecl {
        name: id(name),
        ty,
        label: None,
        personal,
        required,
        default: None,
        span: Span::default(),
    }
}

pub fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        id: id(name),
        label: Some(format!("{name} label")),
        kind,
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

pub fn task(queue: &str, fields: &[(&str, bool)], outcomes: Vec<Outcome>) -> NodeKind {
    NodeKind::Task(Task {
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
            .map(|(name, required)| FieldSpec {
                var: id(name),
                required: *required,
                span: Span::default(),
            })
            .collect(),
        deadline: None,
        on_enter: vec![],
    })
}

/// `case`: start → intake (queue `window`, per street) → choice on amount → [review (queue
/// `review`)] → wait for message `docs` → end `approved`; intake may also reject → end `rejected`.
pub fn case_model() -> Process {
    Process {
        key: id("case"),
        title: "Test case".into(),
        version: 1,
        imports: vec![],
        config: None,
        calendar: None,
        enums: vec![],
        vars: vec![
            var("name", Type::Text, Some(PersonalKind::Name), true),
            var("street", Type::Text, None, true),
            var("amount", Type::Integer, None, true),
            var("checked", Type::Boolean, None, false),
            var("note", Type::Text, None, false),
        ],
        roles: vec![
            RoleDecl {
                name: id("window"),
                label: None,
                scope: Some(id("street")),
                keyed_by: None,
                oversees: false,
                informs_subject: false,
                span: Span::default(),
            },
            RoleDecl {
                name: id("review"),
                label: None,
                scope: None,
                keyed_by: None,
                oversees: false,
                informs_subject: false,
                span: Span::default(),
            },
            // Reads every case and the ledger; no task is queued on it.
            RoleDecl {
                name: id("audit"),
                label: None,
                scope: None,
                keyed_by: None,
                oversees: true,
                informs_subject: false,
                span: Span::default(),
            },
        ],
        channels: vec![],
        documents: vec![],
        clocks: vec![],
        nodes: vec![
            node("begin", NodeKind::Start { next: id("intake") }),
            node(
                "intake",
                task(
                    "window",
                    &[("checked", true), ("note", false)],
                    vec![outcome("ok", "route"), outcome("reject", "rejected")],
                ),
            ),
            node(
                "route",
                NodeKind::Choice {
                    branches: vec![Branch {
                        when: expr(ExprKind::Binary(
                            BinaryOp::Gt,
                            Box::new(expr(ExprKind::Name("amount".into()))),
                            Box::new(expr(ExprKind::Integer(1000))),
                        )),
                        next: id("review"),
                        span: Span::default(),
                    }],
                    default: Some(id("docs")),
                },
            ),
            node(
                "review",
                task("review", &[], vec![outcome("approve", "docs")]),
            ),
            node(
                "docs",
                NodeKind::WaitMessage {
                    message: id("docs"),
                    sets: vec![FieldSpec {
                        var: id("note"),
                        required: true,
                        span: Span::default(),
                    }],
                    next: id("done"),
                    timeout: None,
                },
            ),
            node(
                "done",
                NodeKind::End {
                    result: id("approved"),
                    actions: vec![],
                },
            ),
            node(
                "rejected",
                NodeKind::End {
                    result: id("rejected"),
                    actions: vec![],
                },
            ),
        ],
        span: Span::default(),
    }
}

/// One API under test.
pub struct TestApi {
    pub engine: Engine,
    pub router: Router,
    pub admin: String,
}

/// `None` when the test must be skipped (PostgreSQL without `YIMEN_TEST_POSTGRES`).
pub async fn setup(db: &str, test: &str) -> Option<TestApi> {
    let engine = open(db, test).await?;
    Some(api_on(engine).await)
}

/// Opens an engine: `sqlite` (in memory) or `postgres` (own schema named after the test).
pub async fn open(db: &str, test: &str) -> Option<Engine> {
    let options = match db {
        "sqlite" => OpenOptions {
            url: "sqlite::memory:".into(),
            pg_schema: None,
        },
        _ => postgres_options(test).await?,
    };
    Some(open_and_deploy(options).await)
}

/// Two engines on one database, as two servers sharing it: `sqlite` (one file in the temp
/// folder) or `postgres` (one schema named after the test). The test model is deployed.
pub async fn open_pair(db: &str, test: &str) -> Option<(Engine, Engine)> {
    let options = match db {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("yimen-{test}-{}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            OpenOptions {
                url: format!("sqlite:{}", path.display()),
                pg_schema: None,
            }
        }
        _ => postgres_options(test).await?,
    };
    let first = open_and_deploy(options.clone()).await;
    let second = Engine::open_with(options, Arc::new(SystemClock), Arc::new(WeekdaysOnly))
        .await
        .expect("second engine opens");
    Some((first, second))
}

/// A fresh schema `api_<test>` on `YIMEN_TEST_POSTGRES`; `None` (and a visible line) without it.
async fn postgres_options(test: &str) -> Option<OpenOptions> {
    let url = yimen_engine::testing::postgres_url(test)?;
    let schema = format!("api_{test}");
    yimen_engine::testing::drop_schema(&url, &schema).await;
    Some(OpenOptions {
        url,
        pg_schema: Some(schema),
    })
}

async fn open_and_deploy(options: OpenOptions) -> Engine {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::open_with(options, clock, Arc::new(WeekdaysOnly))
        .await
        .expect("engine opens");
    engine
        .deploy(DeployRequest {
            file: "case.flow".into(),
            source: "process case (built as a model in the tests)".into(),
            files: Default::default(),
            model: Some(case_model()),
        })
        .await
        .expect("test model deploys");
    engine
}

/// The router over `engine`, with a fresh admin token (none when the database has tokens).
pub async fn api_on(engine: Engine) -> TestApi {
    let state = ApiState::new(engine.clone(), test_config());
    let admin = api::access::bootstrap_admin(&state)
        .await
        .expect("bootstrap")
        .unwrap_or_default();
    TestApi {
        engine,
        router: api::router(state),
        admin,
    }
}

/// The API configuration of the tests: quick fallback polls and retries.
pub fn test_config() -> ApiConfig {
    ApiConfig {
        fallback_poll: std::time::Duration::from_millis(200),
        retry_backoff: std::time::Duration::from_millis(1),
        ..ApiConfig::default()
    }
}

/// An answer: status and JSON body (`Value::String` for a non-JSON body).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestApi {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request builds");
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
            .await
            .expect("body readable");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, body }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// Creates a token and returns its secret.
    pub async fn token(&self, name: &str, roles: &[&str], org_units: &[&str]) -> String {
        let answer = self
            .post(
                "/api/v1/tokens",
                &self.admin,
                json!({"name": name, "roles": roles, "org_units": org_units}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["token"].as_str().expect("token").to_string()
    }

    /// Starts a `case` instance; returns its id.
    pub async fn start_case(&self, street: &str, amount: i64) -> String {
        let answer = self
            .post(
                "/api/v1/instances",
                &self.admin,
                json!({"process": "case", "variables": {"name": "张三丰", "street": street, "amount": amount}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["id"].as_str().expect("id").to_string()
    }

    /// Claims up to `max` tasks of `queue` with `token`.
    pub async fn claim(&self, token: &str, queue: &str, max: u32, wait: u32) -> Vec<Value> {
        let answer = self
            .post(
                "/api/v1/tasks/claim",
                token,
                json!({"queues": [queue], "worker": "tester", "max": max, "lease_seconds": 60, "wait_seconds": wait}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["tasks"].as_array().cloned().unwrap_or_default()
    }

    /// The instance's history entries, read as admin.
    pub async fn history(&self, instance: &str) -> Vec<Value> {
        let answer = self
            .get(
                &format!("/api/v1/instances/{instance}/history"),
                &self.admin,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
