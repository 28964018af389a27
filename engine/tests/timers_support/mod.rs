//! Shared set-up of the timers tests: the real calendars, the real process files, an engine on
//! a simulated clock with its background services, and a webhook receiver.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use yimen_engine::calendar::Calendars;
use yimen_engine::clock::ManualClock;
use yimen_engine::scheduler::{ServiceOptions, Services};
use yimen_engine::{ClaimRequest, CompleteRequest, DeployRequest, Engine, StartRequest};

pub const SECRET: &[u8] = b"test-secret";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn calendars() -> Calendars {
    Calendars::load_dir(&root().join("calendars")).expect("the calendars in the repository load")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

/// A running engine on a simulated clock with its services.
pub struct World {
    pub engine: Engine,
    pub clock: ManualClock,
    pub services: Services,
}

pub async fn world(url: &str, start: &str) -> World {
    let clock = ManualClock::new(t(start));
    let engine = Engine::open(url, Arc::new(clock.clone()), Arc::new(calendars()))
        .await
        .expect("engine opens");
    let services = Services::start(
        engine.clone(),
        Some(clock.clone()),
        None,
        ServiceOptions {
            webhook_secret: SECRET.to_vec(),
            webhook_timeout: std::time::Duration::from_secs(2),
            ..ServiceOptions::default()
        },
    )
    .expect("services start");
    World {
        engine,
        clock,
        services,
    }
}

/// Deploys a process of `processes/` (and the processes it imports), with `config` edits.
pub async fn deploy(engine: &Engine, key: &str, edit: &dyn Fn(&str, String) -> String) {
    let dir = root().join("processes");
    let load = |p: &str| {
        std::fs::read_to_string(dir.join(p))
            .ok()
            .map(|s| edit(p, s))
    };
    let file = format!("{key}.flow");
    let source = load(&file).expect("process file");
    let compiled = yimen_dsl::compile(&file, &source, &load);
    let process = compiled
        .process
        .clone()
        .unwrap_or_else(|| panic!("{file} compiles: {:#?}", compiled.diagnostics));
    for import in &process.imports {
        Box::pin(deploy(engine, &import.name, edit)).await;
    }
    let mut files = BTreeMap::new();
    if let Some(c) = &process.config {
        files.insert(c.file.clone(), load(&c.file).expect("config file"));
    }
    files.extend(compiled.templates.clone());
    engine
        .deploy(DeployRequest {
            file,
            source,
            files,
            model: Some(process),
        })
        .await
        .expect("deploys");
}

pub fn vars(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

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
