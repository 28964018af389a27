//! The case page's flowchart and deadlines, and the work list's lights and case columns, on
//! SQLite and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`): requested
//! as a browser would, on the repository's calendars and a simulated clock.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use support::*;
use tower::ServiceExt;
use yimen_engine::engine::{DeployRequest, StartRequest};

on_both_databases!(
    the_case_page_draws_the_flow_and_explains_each_deadline,
    work_list_lights_follow_the_clocks_warning_period,
    the_board_shows_each_clock_and_counts_the_signals_recorded,
);

async fn page(api: &TestApi, path: &str, cookie: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .uri(path)
        .header("host", "yimen.test")
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn form(api: &TestApi, path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> String {
    let body = encoded(fields);
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "yimen.test")
        .header("origin", "http://yimen.test")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = api
        .router
        .clone()
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("answers");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    cookie.split(';').next().unwrap_or("").to_string()
}

const OWN: &str = "a long password of mine";

/// Form fields as a browser sends them (`application/x-www-form-urlencoded`).
fn encoded(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts a form with a session: the status and the page.
async fn post_form(
    api: &TestApi,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let body = encoded(fields);
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "yimen.test")
        .header("origin", "http://yimen.test")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request");
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Signs in again (the simulated clock moved past the session's idle time): the new cookie.
async fn again(api: &TestApi, login: &str) -> String {
    form(api, "/login", None, &[("login", login), ("password", OWN)]).await
}

/// A window person of `unit`, signed in with their own password: the session cookie.
async fn window_person(api: &TestApi, login: &str, unit: &str) -> String {
    person(api, login, &["window"], &[unit]).await
}

/// A person of these roles and units, signed in with their own password: the session cookie.
async fn person(api: &TestApi, login: &str, roles: &[&str], units: &[&str]) -> String {
    let made = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": "王芳", "roles": roles, "org_units": units}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let once = made.body["password"]
        .as_str()
        .expect("password")
        .to_string();
    let cookie = form(
        api,
        "/login",
        None,
        &[("login", login), ("password", &once)],
    )
    .await;
    let (_, html) = page(api, "/password", &cookie).await;
    let mark = "name=\"csrf_token\" value=\"";
    let at = html.find(mark).expect("csrf") + mark.len();
    let csrf = html[at..at + html[at..].find('"').expect("quote")].to_string();
    let new = OWN;
    form(
        api,
        "/password",
        Some(&cookie),
        &[
            ("csrf_token", &csrf),
            ("current", &once),
            ("new", new),
            ("confirm", new),
        ],
    )
    .await;
    cookie
}

/// The social-assistance case sent back for materials: the flowchart marks the node it
/// waits at (and says it in words); each clock says its limit, due date and why: National
/// Day passed over, its make-up Saturday counted, the pause while the applicant supplements.
async fn the_case_page_draws_the_flow_and_explains_each_deadline(db: Db) {
    let w = World::open(&db, MONDAY, service_options()).await;
    let (case, _) = accepted_case(&w.engine, "SA-PAGE-1").await;
    let api = w.api().await;
    let cookie = window_person(&api, "wangfang", "xinhua").await;

    let (status, html) = page(&api, &format!("/cases/{case}"), &cookie).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // The flowchart: inline SVG with its text alternative, the street leader's step marked.
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("role=\"img\""));
    assert_eq!(
        html.matches("class=\"node task active\"").count(),
        1,
        "one active task box: {html}"
    );
    assert!(
        html.contains("<desc id=\"fc-desc\">当前所在环节：街道（镇）分管领导审核同意转办</desc>"),
        "{html}"
    );
    assert!(
        html.contains("受理窗口审查相关申请材料"),
        "every step is drawn"
    );
    // The deadlines: the statutory 30 working days from Monday 2026-09-28.
    assert!(html.contains("法定办理时限"), "{html}");
    assert!(html.contains("30 个工作日"), "{html}");
    assert!(
        html.contains("跳过 2026年10月1日至10月7日 国庆节，共 7 天，不计入"),
        "{html}"
    );
    assert!(
        html.contains("计入 2026年10月10日（星期六）国庆节补班"),
        "{html}"
    );
    assert!(html.contains("转办时限"));
    // 30 working days: 9-29, 9-30, 10-8, 10-9, 10-10 (counted), then five full weeks.
    assert!(
        html.contains("到期：2026年11月13日（星期五）17:30"),
        "{html}"
    );
}

/// A process of our own: a task whose deadline hangs on a clock of 5 working days that warns
/// 2 working days before.
const LIGHTS: &str = r#"
process lights "期限灯" version 1
calendar cn_mainland

var street: text required "街道"
role window "受理窗口" per street

clock limit "办理时限" {
  deadline 5 workdays {
    before 2 workdays: notify role window "即将到期"
  }
}

start apply "申请" -> begin

step begin "登记" {
  start clock limit
} -> handle

task handle "办理申请" {
  queue window
  deadline 5 workdays clock limit
  outcome done "办结" -> finish
}

end finish "结束" result done
"#;

/// The work list: the case's business key and the queue's label on each row; the light
/// green, yellow from 2 working days before the due time (the clock's `before` rung, counted
/// over National Day), red once due.
async fn work_list_lights_follow_the_clocks_warning_period(db: Db) {
    let w = World::open(&db, MONDAY, service_options()).await;
    w.engine
        .deploy(DeployRequest {
            file: "lights.flow".into(),
            source: LIGHTS.into(),
            files: BTreeMap::from([("lights.flow".to_string(), LIGHTS.to_string())]),
            model: None,
        })
        .await
        .expect("deploys");
    let started = w
        .engine
        .start(StartRequest {
            process: "lights".into(),
            business_key: Some("LD-2026-001".into()),
            vars: vars(json!({"street": "xinhua"})),
            actor: "window-1".into(),
        })
        .await
        .expect("starts");
    let api = w.api().await;
    let mut cookie = window_person(&api, "lina", "xinhua").await;

    let row = |html: &str| -> String {
        let at = html
            .find("<tbody>")
            .unwrap_or_else(|| panic!("a table: {html}"));
        html[at..html[at..].find("</tbody>").expect("its end") + at].to_string()
    };
    // Due Saturday 10-10 17:30 (a make-up working day); yellow from Thursday 10-8 17:30.
    let (status, html) = page(&api, "/work", &cookie).await;
    assert_eq!(status, StatusCode::OK, "{cookie} {html}");
    let first = row(&html);
    assert!(
        first.contains(&format!(
            "<a href=\"/cases/{}\">LD-2026-001</a>",
            started.id
        )),
        "{first}"
    );
    assert!(
        first.contains("<td>受理窗口</td>"),
        "the queue's label: {first}"
    );
    assert!(first.contains("light green"), "{first}");
    assert!(first.contains("2026年10月10日 17:30"), "{first}");

    w.clock
        .set(
            chrono::DateTime::parse_from_rfc3339("2026-10-08T17:00:00+08:00")
                .expect("time")
                .to_utc(),
        )
        .expect("forward");
    cookie = again(&api, "lina").await;
    let (_, html) = page(&api, "/work", &cookie).await;
    assert!(
        row(&html).contains("light green"),
        "not yet: {}",
        row(&html)
    );

    w.clock
        .set(
            chrono::DateTime::parse_from_rfc3339("2026-10-08T17:30:00+08:00")
                .expect("time")
                .to_utc(),
        )
        .expect("forward");
    cookie = again(&api, "lina").await;
    let (_, html) = page(&api, "/work", &cookie).await;
    assert!(row(&html).contains("light yellow"), "{}", row(&html));

    w.clock
        .set(
            chrono::DateTime::parse_from_rfc3339("2026-10-10T17:30:00+08:00")
                .expect("time")
                .to_utc(),
        )
        .expect("forward");
    cookie = again(&api, "lina").await;
    let (_, html) = page(&api, "/work", &cookie).await;
    assert!(row(&html).contains("light red"), "{}", row(&html));

    // The case page says the same of the clock, and why that Saturday.
    let (_, case) = page(&api, &format!("/cases/{}", started.id), &cookie).await;
    assert!(case.contains("办理时限"), "{case}");
    assert!(case.contains("已超期"), "{case}");
    assert!(
        case.contains("计入 2026年10月10日（星期六）国庆节补班"),
        "{case}"
    );
    assert!(case.contains("class=\"node task active\""), "{case}");
}

const BOARD: &str = r#"
process board "督办看板" version 1
calendar cn_mainland

var street: text required "街道"
role window "受理窗口" per street
role supervision "效能监察" oversees

clock limit "办理时限" {
  deadline 5 workdays {
    before 2 workdays: notify role window "即将到期"
    at due level 1: notify role supervision "已超期"
    after 2 workdays level 2: notify role supervision "严重超期"
  }
}

clock answer "答复时限" {
  deadline 10 workdays {
    before 1 workdays: notify role window "即将到期"
  }
}

start apply "申请" -> begin

step begin "登记" {
  start clock limit
  start clock answer
} -> handle

task handle "办理申请" {
  queue window
  outcome done "办结" -> finish
}

end finish "结束" result done
"#;

/// The supervision board: each running clock with its light now and the highest level
/// signalled, most overdue first; the signals counted from the record, each once (a clock
/// without an `at due` rung still records red when due); a case that ends leaves the board;
/// filters by unit and light; people who do not oversee are refused.
async fn the_board_shows_each_clock_and_counts_the_signals_recorded(db: Db) {
    let w = World::open(&db, MONDAY, service_options()).await;
    w.engine
        .deploy(DeployRequest {
            file: "board.flow".into(),
            source: BOARD.into(),
            files: BTreeMap::from([("board.flow".to_string(), BOARD.to_string())]),
            model: None,
        })
        .await
        .expect("deploys");
    let mut cases = Vec::new();
    for (key, street) in [("DB-1", "xinhua"), ("DB-2", "dongcheng")] {
        let started = w
            .engine
            .start(StartRequest {
                process: "board".into(),
                business_key: Some(key.into()),
                vars: vars(json!({"street": street})),
                actor: "window-1".into(),
            })
            .await
            .expect("starts");
        cases.push(started.id);
    }
    let api = w.api().await;
    let mut cookie = person(&api, "jiancha", &["supervision"], &[]).await;
    let window = window_person(&api, "lina", "xinhua").await;

    let rows = |html: &str| -> Vec<String> {
        let Some(at) = html.find("<tbody>") else {
            return Vec::new();
        };
        let body = &html[at..html[at..].find("</tbody>").expect("its end") + at];
        body.split("<tr>").skip(1).map(str::to_string).collect()
    };
    let count = |html: &str, label: &str| -> i64 {
        let at = html
            .find(&format!("{label}</span> <strong>"))
            .unwrap_or_else(|| panic!("{label}: {html}"));
        let rest = &html[at + label.len() + "</span> <strong>".len()..];
        rest[..rest.find('<').expect("end")]
            .parse()
            .expect("a count")
    };

    let (status, html) = page(&api, "/board", &cookie).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(rows(&html).len(), 4, "two clocks of two cases: {html}");
    assert!(
        rows(&html).iter().all(|r| r.contains("light green")),
        "{html}"
    );
    assert_eq!(count(&html, "黄灯预警"), 0);
    let (status, _) = page(&api, "/board", &window).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a window does not oversee");

    // Past the warning of `limit` (10-08 17:30), before its due time (10-10 17:30).
    yimen_engine::scheduler::advance(&w.engine, &w.clock, t("2026-10-09T09:00:00+08:00"))
        .await
        .expect("advances");
    cookie = again(&api, "jiancha").await;
    let (_, html) = page(&api, "/board?light=yellow", &cookie).await;
    let yellow = rows(&html);
    assert_eq!(yellow.len(), 2, "{html}");
    assert!(yellow.iter().all(|r| r.contains("办理时限")), "{html}");
    assert_eq!(count(&html, "黄灯预警"), 2);

    // Past both due times and the second level of `limit`.
    yimen_engine::scheduler::advance(&w.engine, &w.clock, t("2026-10-20T09:00:00+08:00"))
        .await
        .expect("advances");
    cookie = again(&api, "jiancha").await;
    let (_, html) = page(&api, "/board", &cookie).await;
    let all = rows(&html);
    assert_eq!(all.len(), 4, "{html}");
    assert!(all.iter().all(|r| r.contains("light red")), "{html}");
    // Most overdue first: both `limit` clocks (due 10-10) before both `answer` clocks.
    assert!(
        all[0].contains("办理时限") && all[1].contains("办理时限"),
        "{html}"
    );
    assert!(all[0].contains("第 2 级"), "{}", all[0]);
    assert!(
        all[2].contains("答复时限") && all[2].contains("已超期"),
        "{}",
        all[2]
    );
    assert!(all[0].contains("超期 9 天"), "{}", all[0]);
    assert_eq!(count(&html, "黄灯预警"), 4, "each warning once");
    assert_eq!(
        count(&html, "红灯超期"),
        6,
        "limit: due and level 2; answer: due"
    );
    assert_eq!(count(&html, "第 2 级督办"), 2);

    // Recorded once: nothing more fires later.
    yimen_engine::scheduler::advance(&w.engine, &w.clock, t("2026-10-28T09:00:00+08:00"))
        .await
        .expect("advances");
    cookie = again(&api, "jiancha").await;
    let (_, html) = page(&api, "/board?unit=xinhua", &cookie).await;
    assert_eq!(rows(&html).len(), 2, "one case of xinhua: {html}");
    assert!(rows(&html).iter().all(|r| r.contains("DB-1")), "{html}");
    let (_, html) = page(&api, "/board", &cookie).await;
    assert_eq!(count(&html, "红灯超期"), 6, "{html}");

    // The office urges the window holding DB-1: on the case's timeline, in the window's
    // reminders.
    let (_, case_page) = page(&api, &format!("/cases/{}", cases[0]), &cookie).await;
    assert!(case_page.contains("监察督办"), "{case_page}");
    let mark = "name=\"csrf_token\" value=\"";
    let at = case_page.find(mark).expect("csrf") + mark.len();
    let csrf = case_page[at..at + case_page[at..].find('"').expect("quote")].to_string();
    let (status, refused) = post_form(
        &api,
        &format!("/cases/{}/oversee", cases[0]),
        &cookie,
        &[("csrf_token", &csrf), ("kind", "urge"), ("text", "  ")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, _) = post_form(
        &api,
        &format!("/cases/{}/oversee", cases[0]),
        &cookie,
        &[
            ("csrf_token", &csrf),
            ("kind", "urge"),
            ("text", "请于3个工作日内办结并说明超期原因"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, case_page) = page(&api, &format!("/cases/{}?said=done", cases[0]), &cookie).await;
    assert!(
        case_page.contains("督办（致受理窗口）：请于3个工作日内办结并说明超期原因"),
        "{case_page}"
    );
    assert!(case_page.contains("已记录"), "{case_page}");
    // Delivered to the inbox by the outbox's loop.
    let window = again(&api, "lina").await;
    let mut work = String::new();
    for _ in 0..100 {
        work = page(&api, "/work", &window).await.1;
        if work.contains("请于3个工作日内办结并说明超期原因") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(work.contains("请于3个工作日内办结并说明超期原因"), "{work}");

    // A case that ends leaves the board.
    w.engine
        .cancel(&cases[0], "申请人撤回", "admin")
        .await
        .expect("cancels");
    let (_, html) = page(&api, "/board", &cookie).await;
    assert_eq!(rows(&html).len(), 2, "{html}");
    assert!(rows(&html).iter().all(|r| r.contains("DB-2")), "{html}");

    // A bad filter is said in words, not a 500.
    let (status, html) = page(&api, "/board?light=blue", &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("期限灯只能选"), "{html}");
}
