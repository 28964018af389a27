//! The statistics page (统计) and its downloads as a browser requests them, on SQLite and on
//! PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`): who may read it (an
//! overseer all of it, a window its street, others nothing), the charts' embedded figures,
//! the workbooks and CSV, the register unmasked only for overseers and recorded.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::sync::Arc;
use support::*;
use tower::ServiceExt;
use yimen_engine::clock::ManualClock;
use yimen_engine::engine::StartRequest;

on_both_databases!(the_statistics_page_and_its_downloads);

struct Answer {
    status: StatusCode,
    content_type: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

async fn send(api: &TestApi, request: Request<Body>) -> (Answer, String) {
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, cookie) = (header("content-type"), header("set-cookie"));
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body")
        .to_vec();
    let cookie = cookie.split(';').next().unwrap_or("").to_string();
    (
        Answer {
            status,
            content_type,
            bytes,
        },
        cookie,
    )
}

async fn get(api: &TestApi, path: &str, cookie: &str) -> Answer {
    let request = Request::builder()
        .uri(path)
        .header("host", "yimen.test")
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    send(api, request).await.0
}

/// A person with `roles` and `units`, signed in through the API's session (a password set
/// by an admin, then changed): the session cookie.
async fn signed_in(api: &TestApi, login: &str, roles: &[&str], units: &[&str]) -> String {
    let made = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": login, "roles": roles, "org_units": units}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let once = made.body["password"]
        .as_str()
        .expect("password")
        .to_string();
    let form = |fields: &[(&str, &str)]| {
        fields
            .iter()
            .map(|(k, v)| {
                let enc: String = v
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                format!("{k}={enc}")
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let post = |path: &str, cookie: Option<&str>, body: String| {
        let mut r = Request::builder()
            .method("POST")
            .uri(path)
            .header("host", "yimen.test")
            .header("origin", "http://yimen.test")
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.body(Body::from(body)).expect("request")
    };
    let (_, cookie) = send(
        api,
        post(
            "/login",
            None,
            form(&[("login", login), ("password", &once)]),
        ),
    )
    .await;
    let page = get(api, "/password", &cookie).await.text();
    let at = page
        .find("name=\"csrf_token\" value=\"")
        .expect("a CSRF token")
        + 25;
    let csrf = &page[at..at + page[at..].find('"').expect("quote")];
    let own = "a long password of mine";
    let fields = [
        ("csrf_token", csrf),
        ("current", once.as_str()),
        ("new", own),
        ("confirm", own),
    ];
    let (changed, _) = send(api, post("/password", Some(&cookie), form(&fields))).await;
    assert!(changed.status.is_redirection(), "{}", changed.text());
    cookie
}

async fn the_statistics_page_and_its_downloads(db: Db) {
    let clock = ManualClock::new(t("2026-10-09T09:00:00+08:00"));
    let engine = db
        .open(Arc::new(clock.clone()), Arc::new(calendars()))
        .await;
    deploy(&engine, "social_assistance", &|_, text| text).await;
    for (key, street) in [("S-1", "xinhua"), ("S-2", "xinhua"), ("S-3", "gongyuan")] {
        let mut form = registration(&["minimum_living"]);
        form["street"] = json!(street);
        engine
            .start(StartRequest {
                process: "social_assistance".into(),
                business_key: Some(key.into()),
                vars: vars(form),
                actor: "window-1".into(),
            })
            .await
            .expect("starts");
    }
    let api = api_on(engine).await;

    let officer = signed_in(&api, "qian", &["supervision"], &[]).await;
    let page = get(&api, "/statistics", &officer).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    // The quarter of 9 October by default.
    assert!(html.contains("登记日期 2026-10-01 至 2026-12-31"), "{html}");
    for text in [
        "按街道（镇）统计",
        "按办理部门统计",
        "按登记月份统计",
        "含个人信息",
    ] {
        assert!(html.contains(text), "the page shows {text}");
    }
    // The charts' figures, embedded as JSON: the street table's registrations.
    let start = html.find("id=\"statistics-data\">").expect("the figures") + 21;
    let end = start + html[start..].find("</script>").expect("their end");
    let figures: serde_json::Value = serde_json::from_str(&html[start..end]).expect("JSON");
    let street = figures["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "by_street")
        .expect("the street table");
    assert_eq!(street["labels"], json!(["xinhua", "gongyuan"]));
    assert_eq!(street["series"][0], json!([2, 1]));

    let book = get(&api, "/statistics/tables.xlsx", &officer).await;
    assert_eq!(book.status, StatusCode::OK);
    assert!(
        book.content_type.contains("spreadsheetml"),
        "{}",
        book.content_type
    );
    assert!(book.bytes.starts_with(b"PK"), "a zip file");
    let csv = get(
        &api,
        "/statistics/tables.csv?process=social_assistance&from=2026-10-01&to=2026-10-31&table=by_street",
        &officer,
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = csv.text();
    assert!(text.starts_with("\u{feff}统计表,分组,登记,受理,"), "{text}");
    assert!(text.contains("按街道（镇）统计,xinhua,2,"), "{text}");
    for (path, status, says) in [
        (
            "/statistics/tables.csv?table=nope",
            StatusCode::BAD_REQUEST,
            "没有名为“nope”的统计表",
        ),
        (
            "/statistics?from=2026-13-01",
            StatusCode::BAD_REQUEST,
            "起始日期应为日期",
        ),
        (
            "/statistics?from=2026-10-31&to=2026-10-01",
            StatusCode::BAD_REQUEST,
            "起始日期晚于截止日期",
        ),
        (
            "/statistics?process=leave",
            StatusCode::BAD_REQUEST,
            "没有统计配置",
        ),
    ] {
        let answer = get(&api, path, &officer).await;
        assert_eq!(answer.status, status, "{path}");
        assert!(answer.text().contains(says), "{path}: {}", answer.text());
    }
    let register = get(&api, "/statistics/register.xlsx?unmasked=1", &officer).await;
    assert_eq!(register.status, StatusCode::OK);
    assert!(register.bytes.starts_with(b"PK"));
    let reads = api.get("/api/v1/personal-data-reads", &api.admin).await;
    assert_eq!(reads.body["total"], 3, "{reads:?}");

    // A window of gongyuan: its street only, the register masked only.
    let window = signed_in(&api, "wang", &["window"], &["gongyuan"]).await;
    let html = get(&api, "/statistics", &window).await.text();
    assert!(html.contains("仅限本单位：gongyuan"), "{html}");
    assert!(!html.contains("xinhua"), "another street is not shown");
    assert!(!html.contains("含个人信息"));
    let refused = get(&api, "/statistics/register.xlsx?unmasked=1", &window).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let masked = get(&api, "/statistics/register.xlsx", &window).await;
    assert_eq!(masked.status, StatusCode::OK);

    // A department without units: no statistics.
    let civil = signed_in(&api, "li", &["department:civil_affairs"], &[]).await;
    let refused = get(&api, "/statistics", &civil).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text().contains("统计仅对"), "{}", refused.text());
}
