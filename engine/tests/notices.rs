//! 文书 as PDF (`GET /api/v1/instances/{id}/documents/{name}.pdf`) and as a print view
//! (`/cases/{id}/documents/{name}`), on SQLite and on PostgreSQL (`*::postgres`, skipped
//! without `YIMEN_TEST_POSTGRES`): cases of `processes/social_assistance.flow` walked through
//! the API to the step that issues a notice; the PDF read back with pdf-extract — its text, its
//! page size; a name written as typst markup printed as written; readers who may not see the
//! case refused.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

on_both_databases!(
    a_rejection_notice_is_an_a4_pdf_with_the_name_and_the_category,
    a_name_written_as_markup_prints_as_written,
    only_those_who_may_see_the_case_read_its_notice,
    the_print_view_is_a_sheet_with_the_notice_and_its_pdf,
);

/// The social assistance process on the simulated clock (Monday 28 September 2026, 09:00 in
/// Wuhai), with a token per actor.
struct Office {
    api: TestApi,
    _world: World,
    window: String,
    leader: String,
    civil: String,
}

impl Fixture for Office {
    async fn open(db: &Db) -> Office {
        let w = World::open(db, MONDAY, service_options()).await;
        deploy(&w.engine, "social_assistance", &|_, text| text).await;
        let api = w.api().await;
        Office {
            window: api.token("clerk1", &["window"], &["xinhua"]).await,
            leader: api.token("leader1", &["street_leader"], &["xinhua"]).await,
            civil: api
                .token("civil1", &["department:civil_affairs"], &[])
                .await,
            api,
            _world: w,
        }
    }
}

/// A response's status, headers and raw body.
struct Raw {
    status: StatusCode,
    content_type: String,
    bytes: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

impl Office {
    async fn start(&self, name: &str) -> String {
        let mut variables = registration(&["minimum_living"]);
        variables["applicant_name"] = json!(name);
        let answer = self
            .api
            .post(
                "/api/v1/instances",
                &self.window,
                json!({"process": "social_assistance", "business_key": "REG-7", "variables": variables}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body["id"].as_str().expect("id").to_string()
    }

    /// Claims task `node` of `case` from `queue` with `token` and completes it.
    async fn done(
        &self,
        token: &str,
        queue: &str,
        case: &str,
        node: &str,
        outcome: &str,
        v: Value,
    ) {
        let claimed = self
            .api
            .post(
                "/api/v1/tasks/claim",
                token,
                json!({"queues": [queue], "worker": "w", "max": 50, "lease_seconds": 600}),
            )
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
        let task = claimed.body["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["instance_id"] == case && t["node"] == node)
            .unwrap_or_else(|| panic!("task {node} of {case} in {queue}: {claimed:?}"))
            .clone();
        let id = task["id"].as_str().expect("id");
        let answer = self
            .api
            .post(
                &format!("/api/v1/tasks/{id}/complete"),
                token,
                json!({"lock_token": task["lock_token"], "outcome": outcome, "variables": v}),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{node}/{outcome}: {answer:?}"
        );
    }

    /// Reviewed (minimum living allowance), agreed, forwarded, refused by civil affairs and
    /// told: the rejection notice is issued.
    async fn reject(&self, case: &str) {
        let (w, l, c) = (&self.window, &self.leader, &self.civil);
        let v = json!({"main_category": "minimum_living"});
        self.done(w, "window", case, "review", "complete", v).await;
        self.done(
            l,
            "street_leader",
            case,
            "street_consent",
            "agree",
            json!({}),
        )
        .await;
        let v = json!({"department_clear": true});
        self.done(w, "window", case, "forward", "forwarded", v)
            .await;
        let v = json!({"decision": "rejected", "decision_reason": "家庭人均收入高于当地低保标准"});
        self.done(
            c,
            "department:civil_affairs",
            case,
            "department_handle",
            "decided",
            v,
        )
        .await;
        self.done(w, "window", case, "feedback", "informed", json!({}))
            .await;
    }

    /// Materials incomplete at review: the supplement notice is issued.
    async fn incomplete(&self, case: &str) {
        let v = json!({"main_category": "minimum_living", "missing_materials": "户口簿复印件"});
        self.done(&self.window, "window", case, "review", "incomplete", v)
            .await;
    }

    async fn raw(&self, path: &str, token: &str) -> Raw {
        let request = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let response = self
            .api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("body")
            .to_vec();
        Raw {
            status,
            content_type,
            bytes,
        }
    }

    async fn pdf(&self, case: &str, name: &str, token: &str) -> Raw {
        self.raw(
            &format!("/api/v1/instances/{case}/documents/{name}.pdf"),
            token,
        )
        .await
    }
}

/// Keeps `bytes` as `<name>.pdf` in the folder `YIMEN_NOTICE_PDF_OUT` names, to look at.
fn keep(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("YIMEN_NOTICE_PDF_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the folder");
        std::fs::write(dir.join(format!("{name}.pdf")), bytes).expect("written");
    }
}

/// The PDF's pages: (MediaBox width, height) and text, whitespace removed.
fn read_pdf(bytes: &[u8]) -> (Vec<(f32, f32)>, String) {
    let doc = pdf_extract::Document::load_mem(bytes).expect("a PDF lopdf reads");
    let pages = doc.get_pages();
    let mut sizes = Vec::new();
    for id in pages.values() {
        let page = doc.get_dictionary(*id).expect("page dictionary");
        let media = page
            .get(b"MediaBox")
            .and_then(|m| m.as_array())
            .expect("MediaBox");
        let n: Vec<f32> = media
            .iter()
            .map(|v| {
                v.as_float()
                    .or_else(|_| v.as_i64().map(|i| i as f32))
                    .expect("number")
            })
            .collect();
        sizes.push((n[2] - n[0], n[3] - n[1]));
    }
    let text = pdf_extract::extract_text_from_mem(bytes).expect("its text");
    (sizes, text.chars().filter(|c| !c.is_whitespace()).collect())
}

async fn a_rejection_notice_is_an_a4_pdf_with_the_name_and_the_category(o: Office) {
    let case = o.start("张三丰").await;
    let early = o.pdf(&case, "rejection_notice", &o.window).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "not issued yet");
    assert_eq!(early.json()["error"]["code"], "document_not_issued");
    assert!(
        early.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("不予批准通知书") && m.contains("not been issued")),
        "{}",
        early.json()
    );
    let unknown = o.pdf(&case, "no_such_notice", &o.window).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rejection_notice")),
        "names the documents the process declares: {}",
        unknown.json()
    );
    let no_suffix = o
        .raw(
            &format!("/api/v1/instances/{case}/documents/rejection_notice"),
            &o.window,
        )
        .await;
    assert_eq!(no_suffix.status, StatusCode::NOT_FOUND);
    assert!(no_suffix.json()["error"]["message"].is_string());

    o.reject(&case).await;
    let pdf = o.pdf(&case, "rejection_notice", &o.window).await;
    assert_eq!(
        pdf.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&pdf.bytes)
    );
    assert_eq!(pdf.content_type, "application/pdf");
    assert!(pdf.bytes.starts_with(b"%PDF-"));
    keep("rejection_notice", &pdf.bytes);
    let (sizes, text) = read_pdf(&pdf.bytes);
    assert!(!sizes.is_empty());
    for (w, h) in &sizes {
        assert!(
            (w - 595.28).abs() < 1.0 && (h - 841.89).abs() < 1.0,
            "A4: {w} × {h}"
        );
    }
    for expected in [
        "不予批准通知书",
        "张三丰：",
        "最低生活保障",
        "家庭人均收入高于当地低保标准",
        // 文号: the business key, the year, the document's place among the case's documents.
        "REG-7〔2026〕1号",
        // Issued on Monday 28 September 2026 (Wuhai), said as people write dates.
        "2026年9月28日",
        "xinhua社会救助受理窗口",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(
        !text.contains("日期："),
        "the template's date line becomes the signature's"
    );
}

async fn a_name_written_as_markup_prints_as_written(o: Office) {
    // Typst code, markup and escapes: none may run or vanish; the name prints as written.
    let hostile = "#sys.exit()] $x^2$ *粗* _斜_ \\u{41} <b>李</b> #\"x\"";
    let case = o.start(hostile).await;
    o.incomplete(&case).await;
    let pdf = o.pdf(&case, "supplement_notice", &o.window).await;
    assert_eq!(
        pdf.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&pdf.bytes)
    );
    keep("supplement_notice_hostile", &pdf.bytes);
    let (_, text) = read_pdf(&pdf.bytes);
    let written: String = hostile.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        text.contains(&format!("{written}：")),
        "{written} in {text}"
    );
    assert!(text.contains("户口簿复印件"), "{text}");
    assert!(text.contains("补证通知书"), "{text}");
}

async fn only_those_who_may_see_the_case_read_its_notice(o: Office) {
    let case = o.start("张三丰").await;
    o.incomplete(&case).await;
    let other_street = o.api.token("clerk9", &["window"], &["haibowan"]).await;
    let health = o.api.token("health1", &["department:health"], &[]).await;
    let refused = o.pdf(&case, "supplement_notice", &other_street).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "a case of another street is not confirmed"
    );
    let refused = o.pdf(&case, "supplement_notice", &health).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json());
    let nobody = o
        .raw(
            &format!("/api/v1/instances/{case}/documents/supplement_notice.pdf"),
            "not-a-token",
        )
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    let allowed = o.pdf(&case, "supplement_notice", &o.window).await;
    assert_eq!(allowed.status, StatusCode::OK);
    // The documents route and the PDF route answer the same readers.
    for token in [&other_street, &health] {
        let listed = o
            .api
            .get(&format!("/api/v1/instances/{case}/documents"), token)
            .await;
        let pdf = o.pdf(&case, "supplement_notice", token).await;
        assert_eq!(listed.status, pdf.status);
    }
}

async fn the_print_view_is_a_sheet_with_the_notice_and_its_pdf(o: Office) {
    let case = o.start("张三丰").await;
    o.incomplete(&case).await;
    let cookie = signed_in(&o.api, "clerk2").await;
    let page = |path: String| browse(&o.api, "GET", path, Some(cookie.clone()), None);
    let (status, _, html) = page(format!("/cases/{case}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains(&format!("/cases/{case}/documents/supplement_notice\""))
            && html.contains(&format!(
                "/api/v1/instances/{case}/documents/supplement_notice.pdf\""
            )),
        "the case page links the print view and the PDF: {html}"
    );
    let (status, _, html) = page(format!("/cases/{case}/documents/supplement_notice")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for expected in [
        "<link rel=\"stylesheet\" href=\"/assets/notice.css\">",
        "class=\"sheet\"",
        "补证通知书",
        "张三丰：",
        "户口簿复印件",
        "REG-7〔2026〕1号",
        "2026年9月28日",
        "下载 PDF",
    ] {
        assert!(html.contains(expected), "{expected} in {html}");
    }
    let (status, _, css) = page("/assets/notice.css".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("@page") && css.contains("size: A4") && css.contains("@media print"));
    if let Some(dir) = std::env::var_os("YIMEN_NOTICE_PDF_OUT") {
        // The page with its style sheets beside it, to open in a browser and look at.
        let dir = std::path::PathBuf::from(dir);
        let (_, _, workbench) = page("/assets/workbench.css".into()).await;
        std::fs::create_dir_all(&dir).expect("the folder");
        std::fs::write(dir.join("notice.css"), &css).expect("written");
        std::fs::write(dir.join("workbench.css"), workbench).expect("written");
        std::fs::write(
            dir.join("print_view.html"),
            html.replace("\"/assets/", "\"./"),
        )
        .expect("written");
    }
    let (status, _, html) = page(format!("/cases/{case}/documents/rejection_notice")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("尚未出具"), "{html}");
    let (status, _, html) = page(format!("/cases/{case}/documents/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("没有这种文书"), "{html}");

    // A person of another street is not shown the case's notice.
    let other = signed_in(&o.api, "clerk3").await;
    let (status, _, html) = browse(
        &o.api,
        "GET",
        format!("/cases/{case}/documents/supplement_notice"),
        Some(other),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!html.contains("张三丰"));
}

/// A request as a browser sends it: status, headers and the page.
async fn browse(
    api: &TestApi,
    method: &str,
    path: String,
    cookie: Option<String>,
    form: Option<String>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "yimen.test")
        .header("origin", "http://yimen.test");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = match form {
        Some(form) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form)),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let response = api.router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A window person of `xinhua` (`clerk2`) or of `haibowan` (any other login), signed in with
/// the one-time password changed; the session cookie.
async fn signed_in(api: &TestApi, login: &str) -> String {
    let unit = if login == "clerk2" {
        "xinhua"
    } else {
        "haibowan"
    };
    let made = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": "王芳", "roles": ["window"], "org_units": [unit]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let once = made.body["password"]
        .as_str()
        .expect("password")
        .to_string();
    let form = format!("login={login}&password={}", encode(&once));
    let (_, headers, _) = browse(api, "POST", "/login".into(), None, Some(form)).await;
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, _, html) = browse(api, "GET", "/password".into(), Some(cookie.clone()), None).await;
    let at = html
        .find("name=\"csrf_token\" value=\"")
        .expect("the CSRF field");
    let rest = &html[at + "name=\"csrf_token\" value=\"".len()..];
    let csrf = &rest[..rest.find('"').expect("closing quote")];
    let new = "a long password of mine";
    let form = format!(
        "csrf_token={}&current={}&new={}&confirm={}",
        encode(csrf),
        encode(&once),
        encode(new),
        encode(new)
    );
    let (_, headers, _) = browse(
        api,
        "POST",
        "/password".into(),
        Some(cookie.clone()),
        Some(form),
    )
    .await;
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/work")
    );
    cookie
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
