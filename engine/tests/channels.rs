//! Channels people read (docs/channels.md): a WeCom group robot, a DingTalk custom robot
//! (signed) and an SMS gateway, each a server on loopback that checks what it gets as the real
//! service would: the documented body, DingTalk's timestamp and signature, the gateway's
//! request as the templates build it. A robot's refusal (HTTP 200 with an `errcode`) is
//! retried and listed with its kind and errmsg. On SQLite and on PostgreSQL (`*::postgres`,
//! skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use support::*;
use yimen_engine::clock::ManualClock;
use yimen_engine::outbox::channels::EnvLookup;
use yimen_engine::outbox::{Backoff, Delivery, WebhookSender};
use yimen_engine::{DeployRequest, Engine, StartRequest};

on_both_databases!(
    robots_and_sms_get_their_documented_requests,
    a_robot_that_answers_an_errcode_is_retried_and_listed,
);

/// DingTalk's 加签 secret of the test robot, from the "environment" the sender is given.
const DINGTALK_SECRET: &str = "SECtest0123456789";
/// The SMS gateway's key.
const SMS_KEY: &str = "sms-key-1";

/// One request a loopback service got.
#[derive(Debug, Clone)]
struct Got {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receivers {
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receivers {
    fn on(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

/// WeCom, DingTalk (checking the signature as DingTalk does) and an SMS gateway on a free
/// loopback port; `/wecom-refuses` answers like a robot whose key was removed. The base URL.
async fn receivers() -> (String, Receivers) {
    let services = Receivers::default();
    async fn record(
        State(s): State<Receivers>,
        method: Method,
        uri: axum::http::Uri,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        let path = uri.path().to_string();
        s.got.lock().unwrap().push(Got {
            method,
            path: path.clone(),
            query: query.clone(),
            headers,
            body,
        });
        let ok = r#"{"errcode":0,"errmsg":"ok"}"#.to_string();
        match path.as_str() {
            "/wecom-refuses" => (
                StatusCode::OK,
                r#"{"errcode":93000,"errmsg":"invalid webhook url, hint: [1700000000_1_x]"}"#
                    .into(),
            ),
            "/dingtalk" => {
                let signed = match (query.get("timestamp"), query.get("sign")) {
                    (Some(ts), Some(sign)) => *sign == dingtalk_sign(ts),
                    _ => false,
                };
                if signed {
                    (StatusCode::OK, ok)
                } else {
                    (
                        StatusCode::OK,
                        r#"{"errcode":310000,"errmsg":"sign not match"}"#.into(),
                    )
                }
            }
            "/sms" => (StatusCode::OK, r#"{"code":"OK"}"#.into()),
            _ => (StatusCode::OK, ok),
        }
    }
    let app = axum::Router::new()
        .fallback(record)
        .with_state(services.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), services)
}

/// DingTalk's signature, computed here independently: Base64(HMAC-SHA256(secret,
/// "<timestamp>\n<secret>")).
fn dingtalk_sign(timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(DINGTALK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{DINGTALK_SECRET}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A process whose first step notifies each channel; `yaml` is its configuration.
const NOTICES: &str = r#"process notices "通知" version 1
config "notices.yaml" {
  limit: duration
}
var applicant_name: text personal(name) required "姓名"
var mobile: text personal(phone) required "手机号"
role clerk "办事员"
channel office "科室企业微信群" url config.office
channel leaders "领导钉钉群" url config.leaders
channel applicant_sms "短信" url config.applicant_sms
start submit "提交" -> received
step received "受理" {
  notify channel office "新申请：{{ applicant_name | mask }}"
  notify channel leaders "新申请：{{ applicant_name | mask }}"
  notify channel applicant_sms "您的申请已受理"
} -> check
task check "审查" {
  queue clerk
  deadline config.limit
  outcome ok "通过" -> done
}
end done "结束" result done
"#;

fn notices_yaml(base: &str, wecom_path: &str) -> String {
    format!(
        r#"limit: 5 workdays
office:
  kind: wecom
  url: {base}{wecom_path}?key=robot-key
  mention_mobiles: ["13800000000"]
leaders:
  kind: dingtalk
  url: {base}/dingtalk?access_token=robot-token
  secret_env: TEST_DINGTALK_SECRET
applicant_sms:
  kind: sms
  url: {base}/sms
  headers:
    Content-Type: application/json
    Authorization: "Bearer {{{{ secret }}}}"
  body: '{{"mobile": {{{{ phone | tojson }}}}, "content": {{{{ text | tojson }}}}, "out_id": {{{{ id | tojson }}}}}}'
  phones_from: mobile
  secret_env: TEST_SMS_KEY
"#
    )
}

/// The test's environment: the two secrets.
fn env() -> EnvLookup {
    Arc::new(|name| match name {
        "TEST_DINGTALK_SECRET" => Some(DINGTALK_SECRET.to_string()),
        "TEST_SMS_KEY" => Some(SMS_KEY.to_string()),
        _ => None,
    })
}

/// An engine on a simulated clock with `notices` deployed, its robots at `base`; a case
/// started. The engine, its clock and the case.
async fn started(db: &Db, base: &str, wecom_path: &str) -> (Engine, ManualClock, String) {
    let clock = ManualClock::new(t(NATIONAL_DAY_EVE));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    engine
        .deploy(DeployRequest {
            file: "notices.flow".into(),
            source: NOTICES.into(),
            files: BTreeMap::from([("notices.yaml".into(), notices_yaml(base, wecom_path))]),
            model: None,
        })
        .await
        .expect("deploys");
    let case = engine
        .start(StartRequest {
            process: "notices".into(),
            business_key: Some("N-1".into()),
            vars: vars(json!({"applicant_name": "张三丰", "mobile": "13900139000"})),
            actor: "clerk-1".into(),
        })
        .await
        .expect("starts")
        .id;
    (engine, clock, case)
}

fn delivery(engine: &Engine, backoff: Backoff) -> Delivery {
    let sender = WebhookSender::new(SECRET.to_vec(), std::time::Duration::from_secs(2))
        .expect("sender")
        .with_env(env());
    Delivery::new(engine.clone(), sender, backoff)
}

async fn robots_and_sms_get_their_documented_requests(db: Db) {
    let (base, services) = receivers().await;
    let (engine, clock, case) = started(&db, &base, "/wecom").await;
    delivery(&engine, Backoff::default())
        .deliver_due()
        .await
        .expect("delivers");

    // WeCom: the text message with its mentions, exactly; the name masked.
    let wecom = services.on("/wecom");
    assert_eq!(wecom.len(), 1, "one message");
    assert_eq!(wecom[0].method, Method::POST);
    assert_eq!(
        wecom[0].query.get("key").map(String::as_str),
        Some("robot-key")
    );
    assert_eq!(
        wecom[0].headers["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Json = serde_json::from_slice(&wecom[0].body).expect("JSON");
    assert_eq!(
        body,
        json!({"msgtype": "text", "text": {"content": "新申请：张**",
            "mentioned_mobile_list": ["13800000000"]}})
    );

    // DingTalk: the text message, signed with the clock's time in milliseconds; the server
    // above answered errcode 0 only because the signature matched.
    let ding = services.on("/dingtalk");
    assert_eq!(ding.len(), 1);
    let q = &ding[0].query;
    assert_eq!(q["access_token"], "robot-token");
    assert_eq!(
        q["timestamp"],
        t(NATIONAL_DAY_EVE).timestamp_millis().to_string()
    );
    assert_eq!(q["sign"], dingtalk_sign(&q["timestamp"]));
    let body: Json = serde_json::from_slice(&ding[0].body).expect("JSON");
    assert_eq!(
        body,
        json!({"msgtype": "text", "text": {"content": "新申请：张**"},
            "at": {"atMobiles": [], "isAtAll": false}})
    );

    // SMS: the request the templates build, to the case's own number, with the key from the
    // environment and the notice's de-duplication id.
    let sms = services.on("/sms");
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].method, Method::POST);
    assert_eq!(
        sms[0].headers["authorization"].to_str().unwrap(),
        format!("Bearer {SMS_KEY}")
    );
    let body: Json = serde_json::from_slice(&sms[0].body).expect("the body template makes JSON");
    let rows = engine.outbox_of(&case).await.expect("outbox");
    let sms_row = rows
        .iter()
        .find(|r| r.channel == "webhook:applicant_sms")
        .expect("the SMS row");
    assert_eq!(
        body,
        json!({"mobile": "13900139000", "content": "您的申请已受理", "out_id": sms_row.dedup_key})
    );

    // All three delivered; nothing failing.
    for row in &rows {
        assert_eq!(row.state.as_str(), "delivered", "{row:?}");
    }
    clock.advance(chrono::Duration::hours(1)).expect("advances");
    delivery(&engine, Backoff::default())
        .deliver_due()
        .await
        .expect("delivers");
    assert_eq!(services.got.lock().unwrap().len(), 3, "nothing sent twice");
    assert!(engine.outbox_failures(100).await.unwrap().is_empty());
}

async fn a_robot_that_answers_an_errcode_is_retried_and_listed(db: Db) {
    let (base, services) = receivers().await;
    let (engine, clock, _case) = started(&db, &base, "/wecom-refuses").await;
    let backoff = Backoff {
        max_attempts: 3,
        ..Backoff::default()
    };
    let delivery = delivery(&engine, backoff);
    delivery.deliver_due().await.expect("delivers");
    assert_eq!(services.on("/wecom-refuses").len(), 1);

    // HTTP 200 with errcode 93000 is a failure: pending, retried after its back-off.
    let api = api_on(engine.clone()).await;
    let answer = api.get("/api/v1/outbox/failed", &api.admin).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let listed = answer.body["deliveries"].as_array().expect("list").clone();
    assert_eq!(listed.len(), 1, "{}", answer.body);
    let row = &listed[0];
    assert_eq!(row["channel"], "webhook:office");
    assert_eq!(row["kind"], "wecom");
    assert_eq!(row["state"], "pending");
    // The robot's key (in the query) is not shown; its errmsg is, and not the message.
    assert_eq!(row["url"], json!(format!("{base}/wecom-refuses")));
    let error = row["last_error"].as_str().expect("error");
    assert!(error.contains("errcode 93000"), "{error}");
    assert!(error.contains("invalid webhook url"), "{error}");
    let text = answer.body.to_string();
    for hidden in ["robot-key", "张", "新申请", "13900139000"] {
        assert!(
            !text.contains(hidden),
            "{hidden} in the failure list: {text}"
        );
    }

    for attempt in 2..=3 {
        clock.advance(chrono::Duration::hours(1)).expect("advances");
        delivery.deliver_due().await.expect("delivers");
        assert_eq!(services.on("/wecom-refuses").len(), attempt, "retried");
    }
    // Given up after the last attempt: dead, still listed.
    let answer = api.get("/api/v1/outbox/failed", &api.admin).await;
    let row = &answer.body["deliveries"][0];
    assert_eq!(row["state"], "dead", "{}", answer.body);
    assert_eq!(row["attempts"], 3);
    clock
        .advance(chrono::Duration::hours(10))
        .expect("advances");
    delivery.deliver_due().await.expect("delivers");
    assert_eq!(services.on("/wecom-refuses").len(), 3, "not tried again");
    // The other channels of the same notice went through.
    assert_eq!(services.on("/dingtalk").len(), 1);
    assert_eq!(services.on("/sms").len(), 1);
}

/// The social assistance process: its escalation rungs reach the supervision office's WeCom
/// group, the name masked, through the server's own delivery loop.
#[tokio::test]
async fn an_overdue_case_reaches_the_supervision_robot() {
    let (base, services) = receivers().await;
    let w = World::open(&Db::memory(), NATIONAL_DAY_EVE, service_options()).await;
    let robot = format!("{base}/supervision");
    deploy(
        &w.engine,
        "social_assistance",
        &move |path: &str, text: String| {
            if path == "social_assistance.yaml" {
                text.replace(
                    "https://qyapi.example.invalid/cgi-bin/webhook/send?key=TO-BE-SET",
                    &robot,
                )
            } else {
                text
            }
        },
    )
    .await;
    let case = start_case(&w.engine, "SA-CH-1").await;
    accept(&w.engine, &case).await;
    // Nobody forwards the case: after a working day the forwarding clock's rung fires.
    let api = w.api().await;
    for _ in 0..10 {
        let answer = api
            .post("/api/v1/clock/advance", &api.admin, json!({"by": "1d"}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let got = services.on("/supervision");
    assert!(!got.is_empty(), "the supervision robot got the escalation");
    let texts: Vec<String> = got
        .iter()
        .map(|g| {
            let body: Json = serde_json::from_slice(&g.body).expect("JSON");
            assert_eq!(body["msgtype"], "text", "{body}");
            body["text"]["content"]
                .as_str()
                .expect("content")
                .to_string()
        })
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("转办超时") && t.contains("张*")),
        "{texts:?}"
    );
    for text in &texts {
        assert!(!text.contains("张三"), "unmasked: {text}");
    }
}
