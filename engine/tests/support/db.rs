//! Where a test runs ([`Db`]), how a scenario is handed what it runs on ([`Fixture`]), the
//! engine harness of the contract tests ([`Harness`]), and deployments made in code.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use yimen_dsl::model::Process;
use yimen_engine::clock::{Clock, ManualClock};
use yimen_engine::store::StorePool;
use yimen_engine::{
    ClaimRequest, ClaimedTask, CompleteRequest, DeployRequest, Deployment, DueDates, Engine,
    EngineError, InstanceView, OpenOptions, StartRequest, TaskView, WeekdaysOnly,
};

/// Monday 28 September 2026, 09:00 in Wuhai: the afternoon before the National Day holiday
/// (1 to 7 October) is two days later.
pub const MONDAY: &str = "2026-09-28T09:00:00+08:00";

/// An instant written in RFC 3339.
pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

/// The variables of a JSON object (none for anything else).
pub fn vars(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

/// The database of one test: SQLite in memory, SQLite in a file, or a schema of its own on the
/// PostgreSQL server `YIMEN_TEST_POSTGRES` names. Each has a folder of its own for files the
/// test writes; [`Db::finish`] removes the folder and drops the schema.
#[derive(Debug, Clone)]
pub struct Db {
    url: String,
    schema: Option<String>,
    dir: PathBuf,
}

impl Db {
    /// SQLite in memory (gone with the last connection of the engine).
    pub fn memory() -> Db {
        Db {
            url: "sqlite::memory:".into(),
            schema: None,
            dir: folder("memory"),
        }
    }

    /// SQLite in a file of the test's folder.
    pub fn sqlite(test: &str) -> Db {
        let dir = folder(test);
        std::fs::create_dir_all(&dir).expect("the test's folder");
        Db {
            url: format!("sqlite:{}", dir.join("yimen.db").display()),
            schema: None,
            dir,
        }
    }

    /// A fresh schema named after the test; `None` (and a visible "skipped" line) without
    /// `YIMEN_TEST_POSTGRES`.
    pub fn postgres(test: &str) -> Option<Db> {
        let url = yimen_engine::testing::postgres_url(test)?;
        let short: String = test.chars().take(40).collect();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        Some(Db {
            url,
            schema: Some(format!("{short}_{}", &unique[..12])),
            dir: folder(test),
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.schema.is_some()
    }

    /// `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The test's own folder (created when first asked for).
    pub fn dir(&self) -> PathBuf {
        std::fs::create_dir_all(&self.dir).expect("the test's folder");
        self.dir.clone()
    }

    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            url: self.url.clone(),
            pg_schema: self.schema.clone(),
        }
    }

    /// Opens an engine (a server) on the database; every call opens another one.
    pub async fn open(&self, clock: Arc<dyn Clock>, due: Arc<dyn DueDates>) -> Engine {
        Engine::open_with(self.options(), clock, due)
            .await
            .expect("engine opens")
    }

    /// Drops the schema and removes the folder (the shared server keeps nothing of the test).
    pub async fn finish(self) {
        if let Some(schema) = &self.schema {
            yimen_engine::testing::drop_schema(&self.url, schema).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn folder(test: &str) -> PathBuf {
    std::env::temp_dir()
        .join("yimen-tests")
        .join(format!("{test}-{}", uuid::Uuid::new_v4().simple()))
}

/// What a scenario of [`on_both_databases!`](crate::support::on_both_databases) takes, opened
/// on the test's database: the type of the scenario's one parameter says which.
#[allow(async_fn_in_trait)] // Used by the tests of this crate only, on their own runtime.
pub trait Fixture: Sized {
    async fn open(db: &Db) -> Self;
}

/// Runs `scenario` on the [`Fixture`] it takes, opened on `db`.
pub async fn run<F: Fixture, R: Future<Output = ()>>(db: &Db, scenario: impl FnOnce(F) -> R) {
    scenario(F::open(db).await).await;
}

/// The database itself, for scenarios that open their engines themselves.
impl Fixture for Db {
    async fn open(db: &Db) -> Db {
        db.clone()
    }
}

impl Fixture for Harness {
    async fn open(db: &Db) -> Harness {
        Harness::open(db).await
    }
}

/// Runs each scenario once per database: `<scenario>::sqlite` and `<scenario>::postgres`
/// (skipped without `YIMEN_TEST_POSTGRES`), each on a database of its own, handed to the
/// scenario as the [`Fixture`] its parameter names, and cleaned up after it.
/// `on_both_databases!(on_small_stacks; ...)` runs each inside a task of a runtime whose
/// workers have 2 MiB stacks, as a server's requests run ([`on_small_stacks`]).
#[allow(unused_macros)] // Not every test file runs scenarios.
macro_rules! on_both_databases {
    (on_small_stacks; $($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn sqlite() {
                    let db = $crate::support::Db::sqlite(stringify!($scenario));
                    $crate::support::on_small_stacks(db, |api| Box::pin(super::$scenario(api)));
                }
                #[test]
                fn postgres() {
                    if let Some(db) = $crate::support::Db::postgres(stringify!($scenario)) {
                        $crate::support::on_small_stacks(db, |api| Box::pin(super::$scenario(api)));
                    }
                }
            }
        )*
    };
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::support::Db::sqlite(stringify!($scenario));
                    $crate::support::run(&db, super::$scenario).await;
                    db.finish().await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::support::Db::postgres(stringify!($scenario)) {
                        $crate::support::run(&db, super::$scenario).await;
                        db.finish().await;
                    }
                }
            }
        )*
    };
}
pub(crate) use on_both_databases;

/// An engine on `db` (SQLite in a file, or the PostgreSQL schema), on a simulated clock at
/// [`MONDAY`], counting weekdays only.
pub struct Harness {
    pub engine: Engine,
    pub clock: ManualClock,
    pub db: Db,
}

impl Harness {
    pub async fn open(db: &Db) -> Harness {
        let clock = ManualClock::new(t(MONDAY));
        let engine = db
            .open(Arc::new(clock.clone()), Arc::new(WeekdaysOnly))
            .await;
        Harness {
            engine,
            clock,
            db: db.clone(),
        }
    }

    /// Opens a second engine on the same database (another server).
    pub async fn reopen(&self) -> Result<Engine, EngineError> {
        Engine::open_with(
            self.db.options(),
            Arc::new(self.clock.clone()),
            Arc::new(WeekdaysOnly),
        )
        .await
    }

    /// Runs raw SQL on the test database (tampering tests).
    pub async fn exec(&self, sql: &str) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let done = match self.engine.pool() {
            StorePool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            StorePool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        };
        done.expect("the SQL runs")
    }

    pub async fn deploy(&self, model: Process) -> Deployment {
        deploy_model(&self.engine, model, Default::default()).await
    }

    pub async fn start(&self, process: &str, v: Json) -> InstanceView {
        self.engine
            .start(StartRequest {
                process: process.into(),
                business_key: None,
                vars: vars(v),
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
        v: Json,
    ) -> Result<InstanceView, EngineError> {
        self.engine
            .complete(CompleteRequest {
                task_id: t.task.id.clone(),
                lock_token: t.lock_token,
                outcome: Some(outcome.into()),
                vars: vars(v),
                actor: "w1".into(),
                access: None,
            })
            .await
    }

    /// Claims the one task of `queue` and completes it.
    pub async fn work(&self, queue: &str, outcome: &str, v: Json) -> InstanceView {
        let tasks = self.claim(queue, 1).await;
        assert_eq!(tasks.len(), 1, "expected one task in {queue}");
        self.complete(&tasks[0], outcome, v).await.unwrap()
    }

    /// Closes the engine, then drops the schema and removes the SQLite file.
    pub async fn finish(self) {
        let Harness { engine, db, .. } = self;
        drop(engine);
        db.finish().await;
    }
}

/// Deploys a model built in code, with `files` (configuration, templates) beside it.
pub async fn deploy_model(
    engine: &Engine,
    model: Process,
    files: BTreeMap<String, String>,
) -> Deployment {
    engine
        .deploy(DeployRequest {
            file: format!("{}.flow", model.key.name),
            source: format!("process {} (built as a model in the tests)", model.key.name),
            files,
            model: Some(model),
        })
        .await
        .expect("the model deploys")
}

/// Deploys the process in `source`, compiled by the engine.
pub async fn deploy_source(engine: &Engine, file: &str, source: &str) -> Deployment {
    engine
        .deploy(DeployRequest {
            file: file.into(),
            source: source.into(),
            ..DeployRequest::default()
        })
        .await
        .expect("deploys")
}

/// Deploys the process in `source` and starts `n` instances of it; their ids.
pub async fn deploy_and_start(engine: &Engine, file: &str, source: &str, n: usize) -> Vec<String> {
    deploy_source(engine, file, source).await;
    let process = file.trim_end_matches(".flow");
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

/// The texts of an instance's `ledger` entries, in order.
pub async fn ledger_lines(engine: &Engine, id: &str) -> Vec<String> {
    engine
        .history(id)
        .await
        .expect("history")
        .into_iter()
        .filter(|h| h.kind == "ledger")
        .map(|h| h.text)
        .collect()
}

/// The instance's open or claimed task at `node`.
pub fn task_at<'a>(view: &'a InstanceView, node: &str) -> &'a TaskView {
    view.tasks
        .iter()
        .find(|t| t.node == node)
        .unwrap_or_else(|| panic!("a task at {node}: {:#?}", view.tasks))
}
