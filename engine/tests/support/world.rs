//! The repository's process files and calendars, an engine with its background services on a
//! simulated clock ([`World`]), the social assistance case walked through its first steps, and
//! webhook receivers.

use crate::support::{Db, TestApi, api_on, t, vars};
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yimen_engine::calendar::Calendars;
use yimen_engine::clock::{ManualClock, SystemClock};
use yimen_engine::scheduler::{ServiceOptions, Services};
use yimen_engine::{
    ClaimRequest, CompleteRequest, DeployRequest, Deployment, DueDates, Engine, StartRequest,
};

/// The secret webhooks are signed with.
pub const SECRET: &[u8] = b"test-secret";

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn calendars() -> Calendars {
    Calendars::load_dir(&root().join("calendars")).expect("the calendars in the repository load")
}

/// Wednesday 30 September 2026, 15:00 in Wuhai: the afternoon before the National Day holiday.
pub const NATIONAL_DAY_EVE: &str = "2026-09-30T15:00:00+08:00";

/// The administrator adds 2027 to the calendar (New Year's Day off) and the server on `db`
/// starts again: the engine and the calendars it now has.
pub async fn restart_with_2027(db: &Db, clock: &ManualClock) -> (Engine, Calendars) {
    let with_2027 = calendars_with_2027(&db.dir().join("calendars"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(with_2027.clone()))
        .await;
    (engine, with_2027)
}

/// The repository's calendars, written to `dir` with a 2027 arrangement added (New Year's Day
/// off, for the test), and loaded from there.
pub fn calendars_with_2027(dir: &Path) -> Calendars {
    std::fs::create_dir_all(dir).expect("dir");
    let mut text =
        std::fs::read_to_string(root().join("calendars/cn_mainland.yaml")).expect("reads");
    text.push_str(
        "  2027:\n    notice: test\n    holidays:\n      - name: 元旦\n        from: 2027-01-01\n        to: 2027-01-01\n    make_up_days: []\n",
    );
    std::fs::write(dir.join("cn_mainland.yaml"), text).expect("writes");
    Calendars::load_dir(dir).expect("the calendar with 2027 loads")
}

/// Three waits of one instance, due 10, 20 and 30 minutes after its start and declared out of
/// that order; each writes `fired <minutes>` to the ledger.
pub const THREE_WAITS: &str = r#"process three_waits "三个等待" version 1

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

/// A running engine on a simulated clock with its services.
pub struct World {
    pub engine: Engine,
    pub clock: ManualClock,
    pub services: Services,
}

impl World {
    /// An engine on `db` with the repository's calendars, its clock at `start`, and its
    /// background services.
    pub async fn open(db: &Db, start: &str, options: ServiceOptions) -> World {
        let clock = ManualClock::new(t(start));
        let engine = db
            .open(Arc::new(clock.clone()), Arc::new(calendars()))
            .await;
        let services = Services::start(engine.clone(), Some(clock.clone()), None, options)
            .expect("services start");
        World {
            engine,
            clock,
            services,
        }
    }

    /// The API over the engine, with its services.
    pub async fn api(&self) -> TestApi {
        api_with_services(self.engine.clone(), &self.services).await
    }
}

/// The API over `engine` with its `services` (the clock routes need them), a fresh admin
/// token.
pub async fn api_with_services(engine: Engine, services: &Services) -> TestApi {
    let mut api = api_on(engine).await;
    api.router = api.router.layer(axum::Extension(services.clone()));
    api
}

/// The services' options of the tests: webhooks signed with [`SECRET`], given up after 2 s.
pub fn service_options() -> ServiceOptions {
    ServiceOptions {
        webhook_secret: SECRET.to_vec(),
        webhook_timeout: std::time::Duration::from_secs(2),
        ..ServiceOptions::default()
    }
}

/// An engine in memory on the real clock, with its services (default options).
pub async fn on_real_clock(due: Arc<dyn DueDates>) -> (Engine, Services) {
    let engine = Db::memory().open(Arc::new(SystemClock), due).await;
    let services = Services::start(engine.clone(), None, None, ServiceOptions::default())
        .expect("services start");
    (engine, services)
}

/// Every file under `processes/`, by path relative to it, passed through `edit(path, text)`.
pub fn process_files(edit: &dyn Fn(&str, String) -> String) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).expect("the process folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).expect("below the folder");
                out.push((rel.to_string_lossy().replace('\\', "/"), path));
            }
        }
    }
    let dir = root().join("processes");
    let mut paths = Vec::new();
    walk(&dir, &dir, &mut paths);
    paths
        .into_iter()
        .filter_map(|(rel, path)| {
            let text = std::fs::read_to_string(path).ok()?;
            Some((rel.clone(), edit(&rel, text)))
        })
        .collect()
}

/// Deploys `processes/<key>.flow` with the files of `processes/` (the engine compiles it and
/// deploys the processes it imports first), each passed through `edit(path, text)`.
pub async fn deploy(
    engine: &Engine,
    key: &str,
    edit: &dyn Fn(&str, String) -> String,
) -> Deployment {
    let files = process_files(edit);
    let file = format!("{key}.flow");
    engine
        .deploy(DeployRequest {
            source: files.get(&file).expect("the process file").clone(),
            file,
            files,
            model: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{key} deploys: {e:?}"))
}

/// A registration form (A5) of 张三丰, with a valid ID number (GB 11643) and mobile number.
pub fn registration(categories: &[&str]) -> Json {
    json!({
        "applicant_name": "张三丰",
        "id_number": "150302199001011231",
        "phone": "13800138000",
        "address": "内蒙古乌海市海勃湾区新华街1号",
        "street": "xinhua",
        "community": "幸福社区",
        "household_size": 3,
        "reason": "因病致贫",
        "categories": categories,
    })
}

/// Starts a social assistance case of 张三 (masked 张*) in `xinhua`; its id.
pub async fn start_case(engine: &Engine, key: &str) -> String {
    let view = engine
        .start(StartRequest {
            process: "social_assistance".into(),
            business_key: Some(key.into()),
            vars: vars(json!({
                "applicant_name": "张三",
                "id_number": "150302199001011231",
                "phone": "13800138000",
                "address": "新华街道1号",
                "street": "xinhua",
                "community": "c1",
                "household_size": 3,
                "reason": "因病致贫",
                "categories": ["minimum_living"],
            })),
            actor: "window-1".into(),
        })
        .await
        .expect("starts");
    view.id
}

/// Claims the instance's open task in `queue` and completes it.
pub async fn complete(
    engine: &Engine,
    instance: &str,
    queue: &str,
    worker: &str,
    outcome: &str,
    v: Json,
) {
    let claimed = engine
        .claim(ClaimRequest {
            queues: vec![queue.into()],
            org_units: None,
            actor: worker.into(),
            worker: None,
            max: 100,
            lease: chrono::Duration::minutes(30),
        })
        .await
        .expect("claims");
    let task = claimed
        .into_iter()
        .find(|c| c.task.instance_id == instance)
        .unwrap_or_else(|| panic!("a task in {queue} for {instance}"));
    engine
        .complete(CompleteRequest {
            task_id: task.task.id,
            lock_token: task.lock_token,
            outcome: Some(outcome.into()),
            vars: vars(v),
            actor: worker.into(),
            access: None,
        })
        .await
        .unwrap_or_else(|e| panic!("completes {queue}/{outcome}: {e}"));
}

/// Deploys `social_assistance` with its ledger webhook pointed at a new [`receiver`] and starts
/// a case under `key`, which the window accepts ([`accept`]); the case's id and what the
/// receiver got.
pub async fn accepted_case(engine: &Engine, key: &str) -> (String, Received) {
    let (url, received) = receiver(0).await;
    deploy(engine, "social_assistance", &with_webhook(url)).await;
    let case = start_case(engine, key).await;
    accept(engine, &case).await;
    (case, received)
}

/// The window accepts the case for the minimum living allowance.
pub async fn accept(engine: &Engine, case: &str) {
    let v = json!({"main_category": "minimum_living"});
    complete(engine, case, "window", "window-1", "complete", v).await;
}

/// After [`accept`]: the street leader agrees and the window forwards the case to the
/// department of its category.
pub async fn agree_and_forward(engine: &Engine, case: &str) {
    complete(
        engine,
        case,
        "street_leader",
        "leader-1",
        "agree",
        json!({}),
    )
    .await;
    let v = json!({"department_clear": true});
    complete(engine, case, "window", "window-1", "forwarded", v).await;
}

/// Requests a webhook receiver got: (delivery id header, body, signature valid).
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<(String, Json, bool)>>>);

/// Starts a webhook receiver on a free local port; `fail_first` requests answer 503.
pub async fn receiver(fail_first: usize) -> (String, Received) {
    let got = Received::default();
    let seen = Arc::new(Mutex::new(0usize));
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            let seen = seen.clone();
            async move {
                let n = {
                    let mut s = seen.lock().unwrap();
                    *s += 1;
                    *s
                };
                if n <= fail_first {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers
                    .get(yimen_engine::outbox::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let ok = yimen_engine::outbox::verify(SECRET, &body, sig);
                let id = headers
                    .get(yimen_engine::outbox::DELIVERY_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
                store.0.lock().unwrap().push((id, json, ok));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

/// The process files with the ledger webhook pointed at `url`.
pub fn with_webhook(url: String) -> impl Fn(&str, String) -> String {
    move |path: &str, text: String| {
        if path == "social_assistance.yaml" {
            text.replace(
                "https://ledger.example.invalid/yimen/social-assistance",
                &url,
            )
        } else {
            text
        }
    }
}
