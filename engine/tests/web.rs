//! The workbench's pages (工作台), on SQLite and on PostgreSQL (`*::postgres`, skipped without
//! `YIMEN_TEST_POSTGRES`), requested as a browser would: signing in with the form, the
//! one-time password changed first, the work list of the person's queues and units, signing
//! out; forms of another site's pages and forms without the session's CSRF token refused; what
//! the pages say is Chinese.

mod support;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::json;
use std::sync::Arc;
use support::*;
use tower::ServiceExt;
use yimen_engine::WeekdaysOnly;
use yimen_engine::clock::ManualClock;

on_both_databases!(
    a_person_signs_in_sets_a_password_and_sees_their_work,
    forms_from_elsewhere_or_without_the_token_are_refused,
    a_case_page_shows_the_case_masked_with_its_timeline,
    a_task_is_claimed_and_completed_through_its_page,
    a_case_is_registered_through_its_form,
    reminders_of_a_persons_roles_are_listed_and_read,
    the_work_list_pages_and_narrows_by_queue_unit_light_and_search,
);

struct Pages {
    api: TestApi,
}

impl Fixture for Pages {
    async fn open(db: &Db) -> Pages {
        let clock = ManualClock::new(t(MONDAY));
        let engine = db.open(Arc::new(clock), Arc::new(WeekdaysOnly)).await;
        deploy_model(&engine, case_model(), Default::default()).await;
        Pages {
            api: api_on(engine).await,
        }
    }
}

#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn location(&self) -> &str {
        self.header("location")
    }
    /// The cookie the page sets (`yimen_session=…`), without its attributes.
    fn cookie(&self) -> String {
        self.header("set-cookie")
            .split(';')
            .next()
            .unwrap_or("")
            .to_string()
    }
    /// The value of the hidden `csrf_token` field of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"csrf_token\" value=\"")
            .expect("a form with the CSRF token");
        let rest = &self.html[at + "name=\"csrf_token\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

async fn send(api: &TestApi, request: Request<Body>) -> Page {
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    Page {
        status,
        headers,
        html: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(api: &TestApi, path: &str, cookie: Option<&str>) -> Page {
    let mut request = Request::builder().uri(path).header("host", "yimen.test");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(api, request.body(Body::empty()).expect("request")).await
}

/// A form posted from a page of `origin`, as a browser sends it.
async fn post_form(
    api: &TestApi,
    path: &str,
    cookie: Option<&str>,
    origin: &str,
    fields: &[(&str, &str)],
) -> Page {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencoding(k), urlencoding(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "yimen.test")
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    send(api, request.body(Body::from(body)).expect("request")).await
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const HERE: &str = "http://yimen.test";
const OWN: &str = "a long password of mine";

/// An account made by an admin: its one-time password.
async fn add_person(api: &TestApi, login: &str, name: &str, units: &[&str]) -> String {
    let made = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": name, "roles": ["window"], "org_units": units}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    made.body["password"]
        .as_str()
        .expect("password")
        .to_string()
}

/// The sign-in form, the one-time password changed on the page it leads to, the work list:
/// open tasks of the person's queue in their unit only, in Chinese; signing out ends it.
async fn a_person_signs_in_sets_a_password_and_sees_their_work(pages: Pages) {
    let api = &pages.api;
    let once = add_person(api, "wangfang", "王芳", &["east"]).await;
    let east = api.start_case("east", 10).await;
    api.start_case("west", 20).await;

    // Not signed in: the sign-in page, in Chinese, every field labelled.
    let home = get(api, "/", None).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER, "{home:?}");
    assert_eq!(home.location(), "/login");
    let login = get(api, "/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.html.contains("<html lang=\"zh-CN\">"));
    for label in [
        "<label for=\"login\">登录名</label>",
        "<label for=\"password\">密码</label>",
    ] {
        assert!(login.html.contains(label), "{label}");
    }
    assert!(
        login
            .header("content-security-policy")
            .contains("default-src 'self'")
    );

    // A wrong password: said in Chinese, the login kept in the form.
    let wrong = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", "wangfang"), ("password", "nope")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    assert!(wrong.html.contains("登录名或密码不正确"), "{}", wrong.html);
    assert!(wrong.html.contains("value=\"wangfang\""));
    assert_eq!(wrong.cookie(), "");

    // The one-time password: signed in, sent to set a password first.
    let signed = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", "wangfang"), ("password", &once)],
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{signed:?}");
    assert_eq!(signed.location(), "/password");
    let cookie = signed.cookie();
    assert!(cookie.starts_with("yimen_session="), "{cookie}");
    assert!(signed.header("set-cookie").contains("HttpOnly"));
    let work = get(api, "/work", Some(&cookie)).await;
    assert_eq!(
        work.location(),
        "/password",
        "nothing else before the password"
    );
    let form = get(api, "/password", Some(&cookie)).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.html.contains("首次登录"), "{}", form.html);
    let csrf = form.csrf();

    let mismatch = post_form(
        api,
        "/password",
        Some(&cookie),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("current", &once),
            ("new", OWN),
            ("confirm", "something else"),
        ],
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mismatch.html.contains("两次输入的新密码不一致"));
    let changed = post_form(
        api,
        "/password",
        Some(&cookie),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("current", &once),
            ("new", OWN),
            ("confirm", OWN),
        ],
    )
    .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{changed:?}");
    assert_eq!(changed.location(), "/work");

    // The work list: the window queue's open task of the east case, not the west one.
    let work = get(api, "/work", Some(&cookie)).await;
    assert_eq!(work.status, StatusCode::OK, "{work:?}");
    assert!(work.html.contains("我的待办"));
    assert!(work.html.contains("王芳"));
    let rows = work.html.matches("<td>待认领</td>").count();
    assert_eq!(
        rows, 1,
        "one open task, of the east case only: {}",
        work.html
    );
    assert!(work.html.contains("<td>east</td>"));
    assert!(!work.html.contains("<td>west</td>"));
    assert!(
        work.html.contains("hx-headers"),
        "htmx carries the CSRF token"
    );
    assert!(
        work.html.contains(&format!("href=\"/cases/{east}\"")),
        "the task links its case"
    );

    // Signing out ends the session: the cookie no longer opens the work list.
    let csrf = work.csrf();
    let out = post_form(
        api,
        "/logout",
        Some(&cookie),
        HERE,
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.location().starts_with("/login"));
    let after = get(api, "/work", Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location().starts_with("/login"), "{after:?}");

    // The new password signs in straight to the work list.
    let again = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", "wangfang"), ("password", OWN)],
    )
    .await;
    assert_eq!(again.location(), "/work", "{again:?}");
}

/// A sign-in form posted from another site's page is refused; so is a signed-in person's form
/// without the session's CSRF token (the session stays).
async fn forms_from_elsewhere_or_without_the_token_are_refused(pages: Pages) {
    let api = &pages.api;
    let once = add_person(api, "lina", "李娜", &["east"]).await;
    let foreign = post_form(
        api,
        "/login",
        None,
        "https://evil.example",
        &[("login", "lina"), ("password", &once)],
    )
    .await;
    assert_eq!(foreign.cookie(), "", "{foreign:?}");
    assert!(
        foreign.html.contains("不是从本系统页面提交的"),
        "{}",
        foreign.html
    );

    let signed = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", "lina"), ("password", &once)],
    )
    .await;
    let cookie = signed.cookie();
    let no_token = post_form(
        api,
        "/password",
        Some(&cookie),
        HERE,
        &[("current", &once), ("new", OWN), ("confirm", OWN)],
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{no_token:?}");
    let forged = post_form(
        api,
        "/logout",
        Some(&cookie),
        HERE,
        &[("csrf_token", "0000")],
    )
    .await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
    // Not signed out: the page still opens.
    let still = get(api, "/password", Some(&cookie)).await;
    assert_eq!(still.status, StatusCode::OK, "{still:?}");
}

/// Signed in with their own password: the session cookie.
async fn signed_in(api: &TestApi, login: &str, name: &str, units: &[&str]) -> String {
    let once = add_person(api, login, name, units).await;
    let first = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", login), ("password", &once)],
    )
    .await;
    let cookie = first.cookie();
    let csrf = get(api, "/password", Some(&cookie)).await.csrf();
    let changed = post_form(
        api,
        "/password",
        Some(&cookie),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("current", &once),
            ("new", OWN),
            ("confirm", OWN),
        ],
    )
    .await;
    assert_eq!(changed.location(), "/work", "{changed:?}");
    cookie
}

/// A case of the person's unit: its state, its data with the personal name masked, its open
/// task with the queue, and what was done; a case of another unit is answered as unknown.
async fn a_case_page_shows_the_case_masked_with_its_timeline(pages: Pages) {
    let api = &pages.api;
    let cookie = signed_in(api, "wangfang", "王芳", &["east"]).await;
    let east = api.start_case("east", 10).await;
    let west = api.start_case("west", 20).await;

    let page = get(api, &format!("/cases/{east}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.html.contains("办理中"), "{}", page.html);
    assert!(
        page.html.contains("<dd>east</dd>"),
        "the case's data: {}",
        page.html
    );
    assert!(
        !page.html.contains("张三丰"),
        "the name is masked on the page"
    );
    assert!(page.html.contains("张**"), "{}", page.html);
    assert!(page.html.contains("办理经过"));
    assert!(
        page.html.matches("<li><time>").count() >= 2,
        "the timeline: {}",
        page.html
    );
    assert!(page.html.contains("待认领"), "the open task: {}", page.html);

    let other = get(api, &format!("/cases/{west}"), Some(&cookie)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{other:?}");
    assert!(!other.html.contains("west"));
    let none = get(api, "/cases/no-such-case", Some(&cookie)).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let anonymous = get(api, &format!("/cases/{east}"), None).await;
    assert_eq!(anonymous.location(), "/login");
}

/// The id of the case's open task, as the work list links it.
fn task_link(work: &Page) -> String {
    let at = work.html.find("href=\"/tasks/").expect("a task link");
    let rest = &work.html[at + "href=\"/tasks/".len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// A hidden field's value on the page.
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page
        .html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {}", page.html));
    let rest = &page.html[at + marker.len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// The window person claims the case's task on its page, sees its form generated from the
/// process (a required field, an optional one, one button per outcome), is told at the field
/// what is missing, and completes it; a colleague of the same unit sees who holds it; an
/// old lock token is explained, not applied.
async fn a_task_is_claimed_and_completed_through_its_page(pages: Pages) {
    let api = &pages.api;
    let wang = signed_in(api, "wangfang", "王芳", &["east"]).await;
    let li = signed_in(api, "lina", "李娜", &["east"]).await;
    let case = api.start_case("east", 10).await;
    let work = get(api, "/work", Some(&wang)).await;
    let task = task_link(&work);

    let open = get(api, &format!("/tasks/{task}"), Some(&wang)).await;
    assert_eq!(open.status, StatusCode::OK, "{open:?}");
    assert!(open.html.contains("认领此任务"), "{}", open.html);
    let csrf = open.csrf();
    let claimed = post_form(
        api,
        &format!("/tasks/{task}/claim"),
        Some(&wang),
        HERE,
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{claimed:?}");
    assert_eq!(claimed.location(), format!("/tasks/{task}"));

    let form = get(api, &format!("/tasks/{task}"), Some(&wang)).await;
    assert!(
        form.html.contains("id=\"f-checked\""),
        "the required field: {}",
        form.html
    );
    assert!(form.html.contains("id=\"f-note\""), "the optional field");
    for outcome in ["value=\"ok\"", "value=\"reject\""] {
        assert!(form.html.contains(outcome), "{outcome}");
    }
    let lock = hidden(&form, "lock_token");
    // The handler sees the case unmasked, and the read is recorded under them.
    assert!(form.html.contains("张三丰"), "{}", form.html);
    let reads = api.get("/api/v1/personal-data-reads", &api.admin).await;
    let read = &reads.body["reads"][0];
    assert_eq!(read["instance_id"], case, "{reads:?}");
    assert_eq!(read["principal"], "王芳", "{reads:?}");

    // The colleague sees who holds it, and cannot claim it.
    let theirs = get(api, &format!("/tasks/{task}"), Some(&li)).await;
    assert!(
        theirs
            .html
            .contains("此任务已由 <strong>王芳</strong> 认领"),
        "{}",
        theirs.html
    );
    assert!(
        !theirs.html.contains("张三丰"),
        "masked for who does not hold it"
    );
    let li_csrf = theirs.csrf();
    let refused = post_form(
        api,
        &format!("/tasks/{task}/claim"),
        Some(&li),
        HERE,
        &[("csrf_token", &li_csrf)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
    assert!(refused.html.contains("未能认领"), "{}", refused.html);

    // The required field left empty: said at the field, nothing done.
    let missing = post_form(
        api,
        &format!("/tasks/{task}/complete"),
        Some(&wang),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("lock_token", &lock),
            ("note", "材料齐全"),
            ("outcome", "ok"),
        ],
    )
    .await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{missing:?}"
    );
    assert!(
        missing.html.contains("id=\"checked-problem\""),
        "{}",
        missing.html
    );
    assert!(
        missing.html.contains("value=\"材料齐全\""),
        "what was typed is kept"
    );

    // An old lock token: explained, not applied.
    let stale = post_form(
        api,
        &format!("/tasks/{task}/complete"),
        Some(&wang),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("lock_token", "999"),
            ("checked", "true"),
            ("outcome", "ok"),
        ],
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{stale:?}");
    assert!(stale.html.contains("认领已失效"), "{}", stale.html);

    let done = post_form(
        api,
        &format!("/tasks/{task}/complete"),
        Some(&wang),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("lock_token", &lock),
            ("checked", "true"),
            ("outcome", "ok"),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{done:?}");
    assert_eq!(done.location(), format!("/cases/{case}"));
    let history = api
        .get(&format!("/api/v1/instances/{case}/history"), &api.admin)
        .await;
    let completed = history.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["kind"] == "task_completed")
        .cloned()
        .expect("the completion is recorded");
    assert_eq!(completed["actor"], "王芳", "{completed}");
    assert_eq!(completed["actor_kind"], "user");

    // The case's timeline says it in Chinese: claimed, done with its outcome, by whom.
    let case_page = get(api, &format!("/cases/{case}"), Some(&wang)).await;
    for said in [
        "登记立案",
        "生成待办",
        "认领：",
        "办结：",
        "结果：ok",
        "王芳",
    ] {
        assert!(case_page.html.contains(said), "{said}: {}", case_page.html);
    }
    assert!(!case_page.html.contains("(user)"));
}

/// The registration form is the process's registration variables (not what a later task
/// sets); a value that does not read and a missing one are said at their fields with what
/// was typed kept; a good one starts the case under the person; its business key again opens
/// that case, not a second; a street outside the person's units is refused.
async fn a_case_is_registered_through_its_form(pages: Pages) {
    let api = &pages.api;
    let wang = signed_in(api, "wangfang", "王芳", &["east"]).await;
    let form = get(api, "/register", Some(&wang)).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    for field in ["id=\"f-name\"", "id=\"f-street\"", "id=\"f-amount\""] {
        assert!(form.html.contains(field), "{field}: {}", form.html);
    }
    assert!(
        !form.html.contains("id=\"f-checked\""),
        "a task's field is not registered"
    );
    let csrf = form.csrf();

    let bad = post_form(
        api,
        "/register",
        Some(&wang),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("process", "case"),
            ("street", "east"),
            ("amount", "十"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    assert!(bad.html.contains("id=\"amount-problem\""), "{}", bad.html);
    assert!(bad.html.contains("请填写整数"));
    assert!(
        bad.html.contains("id=\"name-problem\""),
        "the missing name: {}",
        bad.html
    );
    assert!(bad.html.contains("value=\"十\""), "what was typed is kept");

    let fields = [
        ("csrf_token", csrf.as_str()),
        ("process", "case"),
        ("business_key", "REG-1"),
        ("name", "李四"),
        ("street", "east"),
        ("amount", "12"),
    ];
    let made = post_form(api, "/register", Some(&wang), HERE, &fields).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{made:?}");
    let case = made.location().trim_start_matches("/cases/").to_string();
    let history = api
        .get(&format!("/api/v1/instances/{case}/history"), &api.admin)
        .await;
    assert_eq!(history.body["entries"][0]["actor"], "王芳", "{history:?}");
    assert_eq!(history.body["entries"][0]["actor_kind"], "user");

    let again = post_form(api, "/register", Some(&wang), HERE, &fields).await;
    assert_eq!(
        again.location(),
        format!("/cases/{case}?existing=1"),
        "{again:?}"
    );
    let shown = get(api, again.location(), Some(&wang)).await;
    assert!(shown.html.contains("此业务编号已登记过"), "{}", shown.html);

    let elsewhere = post_form(
        api,
        "/register",
        Some(&wang),
        HERE,
        &[
            ("csrf_token", &csrf),
            ("process", "case"),
            ("name", "王五"),
            ("street", "west"),
            ("amount", "1"),
        ],
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN, "{elsewhere:?}");
}

/// A process whose start tells two roles: the board (no units) and the desk of the case's
/// district.
const NOTICE: &str = r#"process notice "告知" version 1
var district: text required "区域"
role desk "受理台" per district
role board "委员会"
start submit "提交" -> received
step received "受理" {
  notify role board "新的申请，请研阅"
  notify role desk "新的申请已受理"
} -> check
task check "审查" {
  queue desk
  outcome ok "通过" -> done
}
end done "完成" result done
"#;

/// A person with `roles` in `units`, signed in with their own password: the session cookie.
async fn signed_in_with(api: &TestApi, login: &str, roles: &[&str], units: &[&str]) -> String {
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
    let first = post_form(
        api,
        "/login",
        None,
        HERE,
        &[("login", login), ("password", &once)],
    )
    .await;
    let cookie = first.cookie();
    let csrf = get(api, "/password", Some(&cookie)).await.csrf();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("current", &once),
        ("new", OWN),
        ("confirm", OWN),
    ];
    let changed = post_form(api, "/password", Some(&cookie), HERE, &fields).await;
    assert_eq!(changed.location(), "/work", "{changed:?}");
    cookie
}

/// The ids of the reminders a work list shows, in its order.
fn reminder_ids(work: &Page) -> Vec<String> {
    work.html
        .split("action=\"/inbox/")
        .skip(1)
        .map(|rest| rest[..rest.find('/').expect("the id ends")].to_string())
        .collect()
}

/// 待阅提醒: the work list shows the open inbox items of the roles the person holds, of the
/// cases they may see (a desk of one district not another's); 已阅 acknowledges one as the
/// API does, in their name, and it leaves the list; an item of a role they do not hold is
/// not theirs to acknowledge; a form without the session's token changes nothing.
async fn reminders_of_a_persons_roles_are_listed_and_read(pages: Pages) {
    let api = &pages.api;
    deploy_source(&api.engine, "notice.flow", NOTICE).await;
    for district in ["east", "west"] {
        let started = api
            .post(
                "/api/v1/instances",
                &api.admin,
                json!({"process": "notice", "variables": {"district": district}}),
            )
            .await;
        assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    }
    let sender = yimen_engine::outbox::WebhookSender::new(
        b"test".to_vec(),
        std::time::Duration::from_secs(1),
    )
    .expect("sender");
    yimen_engine::outbox::Delivery::new(
        api.engine.clone(),
        sender,
        yimen_engine::outbox::Backoff::default(),
    )
    .deliver_due()
    .await
    .expect("notices delivered");

    let board = signed_in_with(api, "board1", &["board"], &[]).await;
    let desk = signed_in_with(api, "desk1", &["desk"], &["east"]).await;
    let work = get(api, "/work", Some(&board)).await;
    assert_eq!(work.status, StatusCode::OK, "{work:?}");
    assert!(work.html.contains("待阅提醒"), "{}", work.html);
    assert_eq!(
        work.html.matches("</span> 新的申请，请研阅").count(),
        2,
        "{}",
        work.html
    );
    assert!(
        work.html.contains("致委员会"),
        "the role's label: {}",
        work.html
    );
    assert!(!work.html.contains("新的申请已受理"), "not the desk's");
    let board_items = reminder_ids(&work);
    assert_eq!(board_items.len(), 2);

    let desk_work = get(api, "/work", Some(&desk)).await;
    assert_eq!(
        desk_work.html.matches("</span> 新的申请已受理").count(),
        1,
        "east only"
    );
    assert!(!desk_work.html.contains("新的申请，请研阅"));
    let desk_items = reminder_ids(&desk_work);
    assert_eq!(desk_items.len(), 1);

    // The desk may not mark the board's item read, nor anyone without the session's token.
    let csrf = desk_work.csrf();
    let path = format!("/inbox/{}/ack", board_items[0]);
    let refused = post_form(api, &path, Some(&desk), HERE, &[("csrf_token", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused:?}");
    assert!(
        refused.html.contains("找不到要查看的内容"),
        "{}",
        refused.html
    );
    let forged = post_form(api, &path, Some(&board), HERE, &[("csrf_token", "0000")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{forged:?}");
    assert_eq!(
        reminder_ids(&get(api, "/work", Some(&board)).await).len(),
        2
    );

    // 已阅: recorded in the person's name, as the API shows it; the list no longer shows it.
    let csrf = work.csrf();
    let read = post_form(api, &path, Some(&board), HERE, &[("csrf_token", &csrf)]).await;
    assert_eq!(read.status, StatusCode::SEE_OTHER, "{read:?}");
    assert_eq!(read.location(), "/work#reminders");
    let after = get(api, "/work", Some(&board)).await;
    assert_eq!(reminder_ids(&after), board_items[1..].to_vec());
    let acked = api
        .get("/api/v1/inbox?role=board&state=acked", &api.admin)
        .await;
    let items = acked.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{acked:?}");
    assert_eq!(items[0]["id"], board_items[0].as_str());
    assert_eq!(items[0]["acked_by"], "board1");
    // Twice is the same as once.
    let again = post_form(api, &path, Some(&board), HERE, &[("csrf_token", &csrf)]).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{again:?}");
}

/// 我的待办 with many open tasks: a page of them at a time, the database's order (here by
/// creation: the test model's tasks have no deadline); narrowed by unit, by light, and by a
/// case search (a name); every control labelled; a filter outside the person's queues or
/// units, or a page that is no number, refused in Chinese.
async fn the_work_list_pages_and_narrows_by_queue_unit_light_and_search(pages: Pages) {
    let api = &pages.api;
    let wang = signed_in(api, "wangfang", "王芳", &["east", "west"]).await;
    let mut cases = Vec::new();
    for (n, (street, name)) in [
        ("east", "张三丰"),
        ("east", "李四"),
        ("west", "王五"),
        ("east", "赵六"),
        ("west", "钱七"),
    ]
    .iter()
    .enumerate()
    {
        let answer = api
            .post(
                "/api/v1/instances",
                &api.admin,
                json!({"process": "case", "business_key": format!("K-{n}"),
                       "variables": {"name": name, "street": street, "amount": 10}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        cases.push(answer.body["id"].as_str().expect("id").to_string());
    }
    let open_rows = |page: &Page| page.html.matches("<td>待认领</td>").count();

    let all = get(api, "/work", Some(&wang)).await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    assert_eq!(open_rows(&all), 5, "{}", all.html);
    for label in [
        "<label for=\"f-q\">",
        "<label for=\"f-queue\">",
        "<label for=\"f-unit\">",
        "<label for=\"f-light\">",
    ] {
        assert!(all.html.contains(label), "{label}: {}", all.html);
    }

    // Two a page: three pages, the oldest first, the links keeping the page size.
    let first = get(api, "/work?page_size=2", Some(&wang)).await;
    assert_eq!(open_rows(&first), 2, "{}", first.html);
    assert!(first.html.contains("第 1 页，共 3 页"), "{}", first.html);
    assert!(first.html.contains(&format!("/cases/{}", cases[0])));
    assert!(!first.html.contains(&format!("/cases/{}", cases[2])));
    assert!(
        first.html.contains("href=\"/work?page_size=2&page=2\""),
        "{}",
        first.html
    );
    let last = get(api, "/work?page_size=2&page=3", Some(&wang)).await;
    assert_eq!(open_rows(&last), 1, "{}", last.html);
    assert!(last.html.contains(&format!("/cases/{}", cases[4])));
    assert!(last.html.contains("上一页") && !last.html.contains("下一页"));

    // By unit: the west cases only.
    let west = get(api, "/work?unit=west", Some(&wang)).await;
    assert_eq!(open_rows(&west), 2, "{}", west.html);
    assert!(west.html.contains(&format!("/cases/{}", cases[2])));
    assert!(!west.html.contains(&format!("/cases/{}", cases[0])));
    // By queue: the person's own.
    let window = get(api, "/work?queue=window", Some(&wang)).await;
    assert_eq!(open_rows(&window), 5, "{}", window.html);

    // A search by name: that case only; by a business key: that one.
    let li = get(
        api,
        &format!("/work?q={}", urlencoding("李四")),
        Some(&wang),
    )
    .await;
    assert_eq!(li.status, StatusCode::OK, "{li:?}");
    assert_eq!(open_rows(&li), 1, "{}", li.html);
    assert!(li.html.contains(&format!("/cases/{}", cases[1])));
    assert!(
        li.html.contains("value=\"李四\""),
        "the search is kept in its box"
    );
    let key = get(api, "/work?q=K-3", Some(&wang)).await;
    assert_eq!(open_rows(&key), 1, "{}", key.html);
    assert!(key.html.contains(&format!("/cases/{}", cases[3])));
    let nobody = get(
        api,
        &format!("/work?q={}", urlencoding("无此人")),
        Some(&wang),
    )
    .await;
    assert_eq!(open_rows(&nobody), 0);
    assert!(nobody.html.contains("没有符合筛选条件的待认领任务"));

    // Overdue: none (no task here has a deadline); the others are not shown as overdue.
    let overdue = get(api, "/work?light=overdue", Some(&wang)).await;
    assert_eq!(overdue.status, StatusCode::OK);
    assert_eq!(open_rows(&overdue), 0, "{}", overdue.html);
    let soon = get(api, "/work?light=soon", Some(&wang)).await;
    assert_eq!(open_rows(&soon), 0, "{}", soon.html);

    // Bad filters: refused, said in Chinese.
    for (path, said) in [
        ("/work?queue=review", "不是您所在的队列"),
        ("/work?unit=north", "不是您所在的单位"),
        ("/work?light=purple", "期限灯只能选"),
        ("/work?page=0", "页码应为"),
        ("/work?page=abc", "页码应为"),
        ("/work?page_size=100000", "每页条数应为"),
    ] {
        let refused = get(api, path, Some(&wang)).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{path}: {refused:?}"
        );
        assert!(refused.html.contains(said), "{path}: {}", refused.html);
    }
}
