//! The clock and inbox routes through the router (tower `oneshot`), on a simulated clock with
//! the real social assistance process, and the clock refused on a real clock.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use support::*;

#[tokio::test]
async fn advancing_over_http_fires_escalations_into_the_inbox() {
    let w = World::open(&Db::memory(), NATIONAL_DAY_EVE, service_options()).await;
    accepted_case(&w.engine, "SA-API-1").await;
    let api = w.api().await;

    let Answer { status, body: now } = api.get("/api/v1/clock", &api.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(now["simulated"], json!(true));

    // The leader does not agree in time: the forwarding clock reaches its due time on
    // Thursday 8 October 17:30 (after the National Day holiday).
    let Answer { status, body } = api
        .post(
            "/api/v1/clock/advance",
            &api.admin,
            json!({"to": "2026-10-08T17:29:00+08:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let inbox = api
        .get("/api/v1/inbox?role=supervision", &api.admin)
        .await
        .body;
    assert_eq!(inbox["items"], json!([]));
    let Answer { status, body } = api
        .post("/api/v1/clock/advance", &api.admin, json!({"by": "2m"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fired"], json!(1), "{body}");
    assert_eq!(body["to"], json!("2026-10-08T09:31:00Z"));
    let inbox = api
        .get("/api/v1/inbox?role=supervision&state=open", &api.admin)
        .await
        .body;
    let items = inbox["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{inbox}");
    assert_eq!(items[0]["message"], json!("案件转办超时"));
    assert_eq!(items[0]["level"], json!(1));
    let leader = api
        .get("/api/v1/inbox?role=street_leader", &api.admin)
        .await
        .body;
    assert_eq!(
        leader["items"].as_array().map(Vec::len),
        Some(1),
        "{leader}"
    );
    // Street-limited tokens: the case's street sees its escalation, another street does not.
    let own = api
        .token("leader-xinhua", &["street_leader"], &["xinhua"])
        .await;
    let other = api
        .token("leader-binhe", &["street_leader"], &["binhe"])
        .await;
    let Answer { status, body: mine } = api.get("/api/v1/inbox?role=street_leader", &own).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    let Answer {
        status,
        body: theirs,
    } = api.get("/api/v1/inbox?role=street_leader", &other).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["items"], json!([]), "{theirs}");
    let leader_item = mine["items"][0]["id"].as_str().expect("id").to_string();
    let Answer { status, body } = api
        .call(
            "POST",
            &format!("/api/v1/inbox/{leader_item}/ack"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let id = items[0]["id"].as_str().expect("id");
    let Answer {
        status,
        body: acked,
    } = api
        .call(
            "POST",
            &format!("/api/v1/inbox/{id}/ack"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["state"], json!("acked"));
    assert_eq!(acked["acked_by"], json!("admin"));
    let status = api
        .call(
            "POST",
            "/api/v1/inbox/no-such-item/ack",
            Some(&api.admin),
            None,
        )
        .await
        .status;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad requests say what to send.
    let Answer { status, body } = api.get("/api/v1/inbox", &api.admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("?role="), "{body}");
    let Answer { status, body } = api
        .get("/api/v1/inbox?role=window&state=done", &api.admin)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let Answer { status, body } = api
        .post(
            "/api/v1/clock/advance",
            &api.admin,
            json!({"to": "2026-10-01T00:00:00+08:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("cannot go back"), "{body}");
    let Answer { status, body } = api
        .post(
            "/api/v1/clock/advance",
            &api.admin,
            json!({"to": "2026-10-09T00:00:00+08:00", "by": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let Answer { status, body } = api
        .post(
            "/api/v1/clock/advance",
            &api.admin,
            json!({"by": "3 fortnights"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    w.services.stop().await;
}

#[tokio::test]
async fn the_clock_of_a_real_server_cannot_be_advanced() {
    let (engine, services) = on_real_clock(Arc::new(calendars())).await;
    let api = api_with_services(engine, &services).await;
    let Answer { status, body } = api
        .post("/api/v1/clock/advance", &api.admin, json!({"by": "1h"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("--clock"), "{body}");
    let Answer { status, body } = api.get("/api/v1/clock", &api.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["simulated"], json!(false));
    services.stop().await;
}

/// Log lines written while a test runs (tests here run on one thread, so the services' tasks
/// log through the test's default subscriber).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_listed_and_warned_once() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let w = World::open(&Db::memory(), NATIONAL_DAY_EVE, service_options()).await;
    // A receiver that always answers 503: the registration's ledger webhook never arrives.
    let (url, received) = receiver(usize::MAX).await;
    deploy(&w.engine, "social_assistance", &with_webhook(url.clone())).await;
    start_case(&w.engine, "SA-HOOK-1").await;
    let api = w.api().await;
    // Each advance delivers what is due then: retries after 30 s, 1 min, 2 min, ...
    for _ in 0..6 {
        let Answer { status, body } = api
            .post("/api/v1/clock/advance", &api.admin, json!({"by": "1h"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(received.0.lock().unwrap().is_empty());

    let Answer { status, body } = api.get("/api/v1/outbox/failed", &api.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = body["deliveries"].as_array().expect("deliveries");
    let hook = deliveries
        .iter()
        .find(|d| d["channel"] == "webhook:ledger_hook")
        .unwrap_or_else(|| panic!("the failing webhook is listed: {body}"));
    assert_eq!(hook["url"], json!(url));
    assert_eq!(hook["state"], "pending", "{hook}");
    assert!(hook["attempts"].as_i64().unwrap() >= 4, "{hook}");
    // The next attempt in the calendar's zone with its offset, as the history gives times.
    let next = hook["next_attempt_at"].as_str().expect("next attempt");
    assert!(next.ends_with("+08:00"), "{hook}");
    assert!(
        hook["created_at"]
            .as_str()
            .is_some_and(|at| at.ends_with("+08:00")),
        "{hook}"
    );
    assert!(
        hook["last_error"].as_str().unwrap().contains("503"),
        "{hook}"
    );
    assert!(hook.get("payload").is_none(), "no case data in the list");

    // Once per row, with its URL, without the case's personal data.
    let text = logs.text();
    let id = hook["id"].as_str().unwrap();
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(id))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(warned[0].contains("keeps failing"), "{text}");
    assert!(warned[0].contains(&url), "{text}");
    for personal in ["150302199001011231", "13800138000", "张三", "新华街道1号"] {
        assert!(!text.contains(personal), "{personal} logged: {text}");
    }

    // Admin only: a street's token may not see them.
    let leader = api.token("leader", &["street_leader"], &["xinhua"]).await;
    let Answer { status, body } = api.get("/api/v1/outbox/failed", &leader).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
