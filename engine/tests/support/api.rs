//! The API under test: the router over an engine with the `case` model deployed, requests to
//! it, and their answers.

use crate::support::{Db, Fixture, case_model, deploy_model};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tower::ServiceExt;
use yimen_engine::api::{self, ApiConfig, ApiState};
use yimen_engine::clock::SystemClock;
use yimen_engine::store::StorePool;
use yimen_engine::{Engine, WeekdaysOnly};

/// One API under test.
pub struct TestApi {
    pub engine: Engine,
    pub router: Router,
    pub admin: String,
}

impl TestApi {
    /// An API over a fresh engine on a real clock, the `case` model deployed: SQLite in memory
    /// (whatever file `db` names), or `db`'s PostgreSQL schema.
    pub async fn open(db: &Db) -> TestApi {
        let memory = Db::memory();
        let db = if db.is_postgres() { db } else { &memory };
        api_on(open_with_case(db).await).await
    }

    pub fn on_postgres(&self) -> bool {
        matches!(self.engine.pool(), StorePool::Postgres(_))
    }
}

impl Fixture for TestApi {
    async fn open(db: &Db) -> TestApi {
        TestApi::open(db).await
    }
}

/// Two servers on one database (`db`'s SQLite file or schema), the `case` model deployed: the
/// first with a fresh admin token, the second without one (the database has it already).
pub async fn two_servers(db: &Db) -> (TestApi, TestApi) {
    let first = open_with_case(db).await;
    let second = Engine::open_with(db.options(), Arc::new(SystemClock), Arc::new(WeekdaysOnly))
        .await
        .expect("second engine opens");
    (api_on(first).await, api_on(second).await)
}

async fn open_with_case(db: &Db) -> Engine {
    let engine = db.open(Arc::new(SystemClock), Arc::new(WeekdaysOnly)).await;
    deploy_model(&engine, case_model(), Default::default()).await;
    engine
}

/// The scenario of a test run by `on_both_databases!(on_small_stacks; ...)`.
pub type Scenario = fn(TestApi) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs `scenario` on an API over `db` inside a task of a runtime whose workers have 2 MiB
/// stacks (tokio's default, made explicit), as a server's requests run.
pub fn on_small_stacks(db: Db, scenario: Scenario) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(2 << 20)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let task = tokio::spawn(async move {
            scenario(TestApi::open(&db).await).await;
            db.finish().await;
        });
        task.await.expect("the scenario ends without a panic");
    });
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

    /// Deploys `source` (with `files`, a JSON object) through `POST /api/v1/definitions`.
    pub async fn deploy(&self, file: &str, source: &str, files: Value) -> Answer {
        self.post(
            "/api/v1/definitions",
            &self.admin,
            json!({"file": file, "source": source, "files": files}),
        )
        .await
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
