//! 工作台: the workbench people use in a browser, served by `yimen serve` at `/` beside the API
//! (`/api/v1`). Pages are rendered here from templates (minijinja, `web/templates/`, built into
//! the binary) with htmx (`web/assets/`, vendored: 2.0.11, BSD-0-Clause) for the parts that
//! change in place; no build step and no script of our own.
//!
//! Invariants: a page reads and changes what the API would let the same person read and change
//! (the same session, the same [`Principal`], the same engine calls); a state-changing form
//! carries the session's CSRF token (a hidden field, or htmx's `X-CSRF-Token` header) and
//! comes from this server's own pages, checked by the API's session code; what a page says is
//! Chinese, what the code says is English. The pages know no process: labels come from the
//! process files.

use crate::api::access::ClientAddress;
mod board;
mod deadlines;
mod flowchart;
mod form;
mod notices;
mod reminders;
mod statistics;
mod work_list;

use crate::api::session::{self, SignedIn};
use crate::api::{ApiError, ApiState};
use crate::auth::Principal;
use crate::engine::{TaskState, TaskView};
use axum::Extension;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

const HTMX: &str = include_str!("assets/htmx-2.0.11.min.js");
const CSS: &str = include_str!("assets/workbench.css");

static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("password.html", include_str!("templates/password.html")),
        ("work.html", include_str!("templates/work.html")),
        ("board.html", include_str!("templates/board.html")),
        (
            "tasks_table.html",
            include_str!("templates/tasks_table.html"),
        ),
        ("case.html", include_str!("templates/case.html")),
        ("task.html", include_str!("templates/task.html")),
        ("fields.html", include_str!("templates/fields.html")),
        ("register.html", include_str!("templates/register.html")),
        ("notice.html", include_str!("templates/notice.html")),
        ("statistics.html", include_str!("templates/statistics.html")),
    ] {
        // The templates are part of the binary and tested: one that does not parse is a bug
        // of this build, caught by `every_template_parses`.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!("workbench template {name} does not parse: {e}");
        }
    }
    env
});

/// The workbench's routes; [`crate::api::router`] serves them beside the API.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", axum::routing::post(logout))
        .route("/password", get(password_page).post(password_submit))
        .route("/work", get(work_list::work))
        .route("/board", get(board::board))
        .route("/cases/{id}/oversee", axum::routing::post(board::oversee))
        .route("/cases/{id}", get(case))
        .route("/register", get(register_page).post(register))
        .route("/tasks/{id}", get(task_page))
        .route("/tasks/{id}/claim", axum::routing::post(claim))
        .route("/tasks/{id}/release", axum::routing::post(release))
        .route("/tasks/{id}/complete", axum::routing::post(complete))
        .route("/inbox/{id}/ack", axum::routing::post(reminders::ack))
        .route("/assets/htmx-2.0.11.min.js", get(htmx))
        .route("/assets/workbench.css", get(css))
        .merge(notices::routes())
        .merge(statistics::routes())
}

fn render(name: &str, context: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => {
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self'; script-src 'self'; \
                     img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        }
        Err(e) => {
            tracing::error!("workbench page {name}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<p>页面出错，已记录。请稍后再试，或联系管理员。</p>".to_string()),
            )
                .into_response()
        }
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn htmx() -> Response {
    asset(HTMX, "text/javascript; charset=utf-8")
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// The signed-in person as every page's header shows them: their name, and whether the
/// navigation offers the board (to those who oversee).
fn signed_in(p: &Principal) -> minijinja::Value {
    minijinja::context! { name => p.name.clone(), overseer => p.is_overseer() }
}

/// The person a page is for, with the session's CSRF token.
struct Person {
    principal: Principal,
    csrf: String,
    /// The access generation the session was read under (what a start is checked against).
    generation: i64,
    /// The client's address, where a page records it (a read of personal data unmasked).
    address: Option<std::net::IpAddr>,
}

/// Who is signed in, for a page: the session of the cookie, checked as the API checks it (for
/// a form, `csrf_token` stands for the header). Otherwise where to go: the sign-in page, or the
/// password page while the password is a one-time one.
async fn person(
    state: &ApiState,
    method: Method,
    headers: &HeaderMap,
    form_csrf: Option<&str>,
    changes_password: bool,
) -> Result<Person, Response> {
    let Some(secret) = session::cookie_of(headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    let mut headers = headers.clone();
    if let Some(token) = form_csrf
        && let Ok(value) = HeaderValue::from_str(token)
    {
        headers.insert(crate::accounts::CSRF_HEADER, value);
    }
    match session::principal_and_csrf(state, &secret, &method, &headers, changes_password).await {
        Ok((principal, generation, _, csrf)) => Ok(Person {
            principal,
            csrf,
            generation,
            address: None,
        }),
        Err(ApiError::Forbidden {
            code: "password_change_required",
            ..
        }) => Err(Redirect::to("/password").into_response()),
        Err(ApiError::Unauthorized { .. }) => Err(Redirect::to("/login?ended=1").into_response()),
        Err(e) => Err(page_error(&e)),
    }
}

/// What a page says of an error of the API's checks, in Chinese with the next step.
fn chinese(error: &ApiError) -> String {
    match error {
        ApiError::Unauthorized { code, .. } if *code == "sign_in_failed" => format!(
            "登录名或密码不正确。连续失败 {} 次，该登录名将被锁定 {} 分钟。",
            crate::accounts::MAX_FAILED_SIGN_INS,
            crate::accounts::LOCKOUT.num_minutes()
        ),
        ApiError::TooManyRequests { retry_after, .. } => format!(
            "失败次数过多，已暂时锁定，请约 {} 分钟后再试；或请管理员重置密码。",
            retry_after.div_ceil(60).max(1)
        ),
        ApiError::Forbidden { code, .. } if *code == "account_disabled" => {
            "该账号已停用，请联系管理员。".into()
        }
        ApiError::Forbidden { code, .. } if *code == "csrf_refused" => {
            "该请求不是从本系统页面提交的，已拒绝。请刷新页面后重试。".into()
        }
        ApiError::Unauthorized { .. } => "登录已失效，请重新登录。".into(),
        ApiError::NotFound { .. } => {
            "找不到要查看的内容：它不存在，或不在您可以查看的范围内。".into()
        }
        ApiError::Unprocessable { details, .. } => {
            let field = details["problems"][0]["field"].as_str().unwrap_or("");
            match field {
                "current" => "当前密码不正确。".into(),
                "new" => format!(
                    "新密码不符合要求：至少 {} 个字符，不能与登录名相同，也不能与当前密码相同。",
                    crate::accounts::MIN_PASSWORD_CHARS
                ),
                _ => "填写的内容有误，请检查后重试。".into(),
            }
        }
        _ => "服务器出错，已记录。请稍后再试，或联系管理员。".into(),
    }
}

fn page_error(error: &ApiError) -> Response {
    if matches!(
        error,
        ApiError::Internal { .. } | ApiError::Unavailable { .. }
    ) {
        tracing::error!("workbench: {error:?}");
    }
    let status = error.status();
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>出错了</title>\
         <p>{}</p><p><a href=\"/\">返回工作台</a></p></html>",
        minijinja::HtmlEscape(&chinese(error))
    );
    (status, Html(html)).into_response()
}

async fn home(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match person(&state, Method::GET, &headers, None, false).await {
        Ok(_) => Redirect::to("/work").into_response(),
        Err(to) => to,
    }
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    ended: Option<String>,
}

async fn login_page(State(state): State<ApiState>, Query(q): Query<LoginQuery>) -> Response {
    let notice = q
        .ended
        .is_some()
        .then_some("登录已失效或已退出，请重新登录。");
    login_form(&state, "", None, notice)
}

fn login_form(
    state: &ApiState,
    login: &str,
    error: Option<String>,
    notice: Option<&str>,
) -> Response {
    render(
        "login.html",
        minijinja::context! {
            title => "登录",
            login => login,
            error => error,
            notice => notice,
            oidc => state.oidc.is_some(),
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
}

/// The sign-in form: checked as `POST /api/v1/session` checks it (locks, records, the limit of
/// failed authentications per address); a form from another site's page is refused.
async fn login_submit(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(e) = session::same_origin(&headers) {
        return login_form(&state, &form.login, Some(chinese(&e)), None);
    }
    let limit = state.config.auth_failures_per_minute;
    if let Some(address) = address
        && limit > 0
        && state.failures.blocked(address, limit).is_some()
    {
        let error = "此地址登录失败次数过多，请一分钟后再试。".to_string();
        let mut response = login_form(&state, &form.login, Some(error), None);
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return response;
    }
    match session::password_sign_in(&state, &form.login, form.password, address).await {
        Ok(SignedIn { user, cookie, .. }) => {
            let to = if user.must_change_password {
                "/password"
            } else {
                "/work"
            };
            session::with_cookie(Redirect::to(to).into_response(), &cookie)
        }
        Err(e) => {
            let mut response = login_form(&state, &form.login, Some(chinese(&e)), None);
            *response.status_mut() = e.status();
            response
        }
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let person = person(&state, Method::POST, &headers, Some(&form.csrf_token), true).await;
    if person.is_ok()
        && let Some(secret) = session::cookie_of(&headers)
    {
        let id = crate::accounts::session_id(&secret);
        if let Err(e) = state
            .accounts
            .end_session(&id, state.engine.clock().now())
            .await
        {
            return page_error(&e.into());
        }
    }
    let cookie = crate::accounts::set_cookie("", 0, state.config.secure_cookies);
    session::with_cookie(Redirect::to("/login?ended=1").into_response(), &cookie)
}

async fn password_page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let me = match person(&state, Method::GET, &headers, None, true).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    password_form(&state, &me, None).await
}

async fn password_form(state: &ApiState, me: &Person, error: Option<String>) -> Response {
    let must = match state.accounts.by_id(&me.principal.id).await {
        Ok(user) => user.is_some_and(|u| u.must_change_password),
        Err(e) => return page_error(&e.into()),
    };
    render(
        "password.html",
        minijinja::context! {
            title => "设置新密码",
            me => signed_in(&me.principal),
            csrf => me.csrf.clone(),
            must => must,
            error => error,
            min_chars => crate::accounts::MIN_PASSWORD_CHARS,
        },
    )
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

/// Changes the password as `POST /api/v1/session/password` does; then the person signs in
/// again with it (the change ends their other sessions; this one too, for a clean start).
async fn password_submit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let me = match person(&state, Method::POST, &headers, Some(&form.csrf_token), true).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    if form.new != form.confirm {
        let error = "两次输入的新密码不一致。".to_string();
        let mut response = password_form(&state, &me, Some(error)).await;
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return response;
    }
    let Some(secret) = session::cookie_of(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let id = crate::accounts::session_id(&secret);
    match session::change_own_password(&state, &me.principal, &id, &form.current, form.new).await {
        Ok(_) => Redirect::to("/work").into_response(),
        Err(e) => {
            let mut response = password_form(&state, &me, Some(chinese(&e))).await;
            *response.status_mut() = e.status();
            response
        }
    }
}

/// A task as the work list shows it.
#[derive(Debug, Serialize)]
struct TaskRow {
    id: String,
    label: String,
    case: String,
    /// The case's business key.
    case_key: Option<String>,
    /// The queue by its role's label.
    queue: String,
    unit: String,
    state: &'static str,
    due: Option<String>,
    light: &'static str,
    light_text: &'static str,
}

/// `2026年10月8日 17:00`, in the calendar's zone.
fn chinese_time(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y年%-m月%-d日 %H:%M")
        .to_string()
}

/// A task's row: its light yellow from `warn` (the warning period of the clock that
/// governs it, [`crate::engine::Engine::warn_at`]).
fn task_row(
    t: &TaskView,
    warn: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> TaskRow {
    let (light, light_text) = deadlines::light(t.due_at, warn, now);
    TaskRow {
        id: t.id.clone(),
        label: t.label.clone().unwrap_or_else(|| t.node.clone()),
        case: t.instance_id.clone(),
        case_key: None,
        queue: t.queue.clone(),
        unit: t.org_unit.clone().unwrap_or_default(),
        state: match t.state {
            TaskState::Open => "待认领",
            TaskState::Claimed => "已认领",
            TaskState::Completed => "已办结",
            TaskState::Failed => "出错",
            TaskState::Cancelled => "已取消",
        },
        due: t.due_at.map(|d| chinese_time(d, tz)),
        light,
        light_text,
    }
}

/// A timeline entry as people read it: the engine's own steps said in Chinese with the
/// process's labels (a task by its label, an outcome by its label, a queue by its role's);
/// the texts a process writes itself (ledger lines, notices) as they are.
fn timeline_text(e: &crate::ledger::HistoryEntry, labels: &crate::engine::ProcessLabels) -> String {
    let node_id = e.node.as_deref().unwrap_or("");
    let node = labels.node(node_id);
    let data = &e.data;
    let text = |key: &str| data[key].as_str().unwrap_or("").to_string();
    match e.kind.as_str() {
        "started" => format!("登记立案：{}", labels.title),
        "task_created" => format!("生成待办：{node}（{}）", labels.queue(&text("queue"))),
        "task_claimed" => format!("认领：{node}"),
        "task_released" => format!("退回队列：{node}"),
        "task_failed" => format!("办理出错：{node}"),
        "task_completed" => match data["outcome"].as_str() {
            Some(outcome) => format!("办结：{node}，结果：{}", labels.outcome(node_id, outcome)),
            None => format!("办结：{node}"),
        },
        "step" => node,
        "document" => format!(
            "出具文书：{}",
            e.text.strip_prefix("issued ").unwrap_or(&e.text)
        ),
        "ended" => format!("结案：{node}"),
        "escalation" => match data["light"].as_str() {
            Some("yellow") => format!("黄灯预警：{node}"),
            _ => format!("红灯超期，第 {} 级督办：{node}", data["level"]),
        },
        "signal" => format!("红灯超期：{node}"),
        "oversight" => {
            let kind = oversight_label(data["kind"].as_str().unwrap_or(""));
            match data["queue"].as_str() {
                Some(queue) => format!("{kind}（致{}）：{}", labels.queue(queue), text("text")),
                None => format!("{kind}：{}", text("text")),
            }
        }
        "choice" => format!("{node} → {}", labels.node(&text("next"))),
        "variable" => {
            let var = text("var");
            let shown = e.text.split_once(" = ").map_or("", |(_, v)| v);
            // The value as the entry wrote it: JSON (`true`, `["a","b"]`, `3`), or plain text.
            let value = serde_json::from_str(shown)
                .unwrap_or_else(|_| serde_json::Value::String(shown.to_string()));
            let value = labels.value(&var, &value);
            format!("{}：{value}", labels.var(&var))
        }
        "due_computed" => {
            let at = data["due_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                // In the zone the entry's own time is read in (the calendar's).
                .map(|t| t.with_timezone(e.at.offset()))
                .map(|t| t.format("%Y年%-m月%-d日 %H:%M").to_string())
                .unwrap_or_default();
            if data["provisional"] == serde_json::Value::Bool(true) {
                format!("计算期限：{at}（暂定：日历缺少所跨年份的节假日数据，补充后重新计算）")
            } else {
                format!("计算期限：{at}")
            }
        }
        "clock" => {
            let clock = labels.clock(&text("clock"));
            let done = [
                ("started", "开始计时"),
                ("paused", "暂停计时"),
                ("resumed", "恢复计时"),
                ("stopped", "停止计时"),
                ("extended", "延长时限"),
            ]
            .iter()
            .find(|(word, _)| e.text.contains(word))
            .map_or("", |(_, said)| *said);
            format!("{clock}：{done}")
        }
        "notification" => {
            let channel = text("channel");
            let said = e.text.split_once(": ").map_or(e.text.as_str(), |(_, t)| t);
            let to = match channel.split_once(':') {
                Some(("webhook", name)) => format!("推送（{name}）"),
                Some(("role", queue)) => format!("通知{}", labels.queue(queue)),
                _ if channel == "subject" => "告知当事人".to_string(),
                _ => format!("通知（{channel}）"),
            };
            format!("{to}：{said}")
        }
        _ => e.text.clone(),
    }
}

/// An oversight action's kind as people say it.
fn oversight_label(kind: &str) -> &'static str {
    match kind {
        "urge" => "督办",
        "criticism" => "通报批评",
        "referral" => "移送问责",
        _ => "监察意见",
    }
}

fn status_text(status: crate::runtime::state::Status) -> (&'static str, &'static str) {
    use crate::runtime::state::Status;
    match status {
        Status::Running => ("办理中", "running"),
        Status::Completed => ("已办结", "completed"),
        Status::Cancelled => ("已撤销", "cancelled"),
        Status::Incident => ("出错，待处理", "incident"),
    }
}

/// 案件: a case the person may see (as `GET /api/v1/instances/{id}`: personal data masked),
/// its data by the process's labels, its open tasks with their deadlines, linked cases,
/// documents and what was done, by whom and when.
#[derive(Debug, Default, Deserialize)]
struct CaseQuery {
    existing: Option<String>,
    /// `done`: an oversight action was just recorded.
    said: Option<String>,
}

async fn case(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CaseQuery>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    let engine = &state.engine;
    if let Err(e) = crate::api::instances::ensure_visible(&state, &me.principal, &id).await {
        return page_error(&e);
    }
    let loaded = async {
        let view = engine.instance(&id).await?;
        let labels = engine.labels(&view.process, view.version).await?;
        let history = engine.history(&id).await?;
        let documents = engine.documents(&id).await?;
        let clocks = engine.case_clocks(&id, &history).await?;
        let mut warns = Vec::with_capacity(view.tasks.len());
        for t in &view.tasks {
            warns.push(engine.warn_at(&view.process, view.version, t).await?);
        }
        Ok::<_, crate::error::EngineError>((view, labels, history, documents, clocks, warns))
    };
    let (view, labels, history, documents, clocks, warns) = match loaded.await {
        Ok(found) => found,
        Err(e) => return page_error(&e.into()),
    };
    let now = engine.clock().now();
    let tz = engine.time_zone();
    let vars: Vec<minijinja::Value> = labels
        .var_order()
        .iter()
        .filter_map(|name| {
            let value = view.vars.get(name)?;
            let shown = labels.value(name, value);
            (!shown.is_empty()).then(|| {
                minijinja::context! { label => labels.var(name), value => shown }
            })
        })
        .collect();
    let tasks: Vec<minijinja::Value> = view
        .tasks
        .iter()
        .zip(warns)
        .map(|(t, warn)| {
            let row = task_row(t, warn, now, tz);
            minijinja::context! {
                label => t.label.clone().unwrap_or_else(|| labels.node(&t.node)),
                queue => labels.queue(&t.queue),
                unit => row.unit,
                state => row.state,
                due => row.due,
                light => row.light,
                light_text => row.light_text,
            }
        })
        .collect();
    let children: Vec<minijinja::Value> = view
        .children
        .iter()
        .map(|c| minijinja::context! { id => c.instance_id.clone(), label => labels.node(&c.node) })
        .collect();
    let history: Vec<minijinja::Value> = history
        .iter()
        .map(|e| {
            let by = match e.actor_kind.as_deref() {
                Some("token") => format!("{}（接口）", e.actor),
                Some("engine") => "系统".to_string(),
                _ => e.actor.clone(),
            };
            minijinja::context! {
                at => e.at.format("%Y年%-m月%-d日 %H:%M").to_string(),
                by => by,
                text => timeline_text(e, &labels),
            }
        })
        .collect();
    let documents: Vec<minijinja::Value> = documents
        .iter()
        .map(|d| {
            minijinja::context! {
                name => d.name.clone(),
                label => d.label.clone().unwrap_or_else(|| d.name.clone()),
                at => chinese_time(d.created_at, tz),
            }
        })
        .collect();
    // Where the case is: the steps its tokens wait at, by their labels (the chart's text
    // alternative, and the list beside it).
    let mut active: Vec<String> = Vec::new();
    for node in &view.active_nodes {
        if !active.contains(node) {
            active.push(node.clone());
        }
    }
    let active_labels: Vec<String> = active.iter().map(|n| labels.node(n)).collect();
    let desc = if active_labels.is_empty() {
        "案件当前不在任何环节（已结束或尚未开始）。".to_string()
    } else {
        format!("当前所在环节：{}", active_labels.join("、"))
    };
    let chart = match engine
        .with_model(&view.process, view.version, |model| {
            flowchart::svg(model, &active, &format!("{}流程图", labels.title), &desc)
        })
        .await
    {
        Ok(chart) => chart,
        Err(e) => return page_error(&e.into()),
    };
    let clocks = deadlines::clocks(&clocks, &labels, tz, now);
    let (status, status_class) = status_text(view.status);
    let title = match &view.business_key {
        Some(key) => format!("案件 {key}"),
        None => "案件".to_string(),
    };
    render(
        "case.html",
        minijinja::context! {
            title => title,
            id => id.clone(),
            me => signed_in(&me.principal),
            csrf => me.csrf.clone(),
            oversee => (me.principal.is_overseer() && !view.status.is_terminal()).then_some(true),
            oversee_said => q.said.as_deref().map(|s| match s {
                "done" => "已记录，并已通知正在办理的部门。",
                _ => "",
            }),
            process => labels.title.clone(),
            version => view.version,
            created => chinese_time(view.created_at, tz),
            ended => view.ended_at.map(|t| chinese_time(t, tz)),
            status => status,
            status_class => status_class,
            result => view.result.as_deref().map(|r| labels.result(r)),
            vars => vars,
            tasks => tasks,
            parent => view.parent_id.clone(),
            children => children,
            documents => documents,
            history => history,
            flowchart => chart.map(minijinja::Value::from_safe_string),
            active => active_labels,
            clocks => clocks,
            notice => q.existing.is_some().then_some(
                "此业务编号已登记过：这是原来的案件，没有重复登记。"
            ),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct RegisterQuery {
    process: Option<String>,
}

/// The deployed processes (latest versions) by title, and the one `wanted` (or the first).
async fn registrable(
    state: &ApiState,
    wanted: Option<&str>,
) -> Result<(Vec<crate::engine::Deployment>, crate::engine::Deployment), ApiError> {
    let mut all: Vec<crate::engine::Deployment> = state
        .engine
        .definitions()
        .await?
        .into_iter()
        .filter(|d| d.version == d.latest_version)
        .collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let chosen = match wanted {
        Some(key) => all.iter().find(|d| d.key == key),
        None => all.first(),
    }
    .cloned()
    .ok_or_else(|| {
        ApiError::not_found(match wanted {
            Some(key) => format!("process {key} is not deployed"),
            None => "no process is deployed".to_string(),
        })
    })?;
    Ok((all, chosen))
}

async fn render_register(
    state: &ApiState,
    me: &Person,
    wanted: Option<&str>,
    posted: Option<(&form::Posted, &str)>,
    error: Option<String>,
) -> Response {
    let found = async {
        let (all, chosen) = registrable(state, wanted).await?;
        let model = state
            .engine
            .definition(&chosen.key, Some(chosen.version))
            .await?
            .model;
        let labels = state.engine.labels(&chosen.key, chosen.version).await?;
        Ok::<_, ApiError>((all, chosen, model, labels))
    };
    let (all, chosen, model, labels) = match found.await {
        Ok(found) => found,
        Err(e) => return page_error(&e),
    };
    let mut fields = form::start_fields(&model, &labels);
    let mut business_key = "";
    if let Some((posted, key)) = posted {
        business_key = key;
        let values = &posted.shown;
        fields = fields
            .into_iter()
            .map(|f| {
                let value = values.get(&f.name).cloned();
                let mut again = form::refill(f, value.as_ref());
                again.problem = posted
                    .problems
                    .iter()
                    .find(|(n, _)| *n == again.name)
                    .map(|(_, why)| why.clone());
                again
            })
            .collect();
    }
    let processes: Vec<minijinja::Value> = all
        .iter()
        .map(|d| minijinja::context! { key => d.key.clone(), title => d.title.clone() })
        .collect();
    render(
        "register.html",
        minijinja::context! {
            title => "登记",
            page => "register",
            me => signed_in(&me.principal),
            csrf => me.csrf.clone(),
            process => chosen.key.clone(),
            process_title => chosen.title.clone(),
            processes => processes,
            business_key => business_key,
            fields => fields,
            error => error,
        },
    )
}

/// 登记: the registration form of a process, generated from the variables a registration
/// gives (those no later step sets).
async fn register_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    render_register(&state, &me, q.process.as_deref(), None, None).await
}

/// Registers the case as `POST /api/v1/instances` does: ID numbers and phones checked as the
/// engine checks them (said at their fields), the person's role and units; a business key
/// registered before opens that case instead of a second.
async fn register(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let me = match person(
        &state,
        Method::POST,
        &headers,
        Some(&field("csrf_token")),
        false,
    )
    .await
    {
        Ok(me) => me,
        Err(to) => return to,
    };
    let process = field("process");
    let found = async {
        let (_, chosen) = registrable(&state, Some(&process)).await?;
        let model = state
            .engine
            .definition(&chosen.key, Some(chosen.version))
            .await?
            .model;
        let labels = state.engine.labels(&chosen.key, chosen.version).await?;
        Ok::<_, ApiError>(form::start_fields(&model, &labels))
    };
    let fields = match found.await {
        Ok(fields) => fields,
        Err(e) => return page_error(&e),
    };
    let mut posted = form::read_posted(&fields, &pairs);
    for f in &fields {
        if f.required
            && !posted.vars.contains_key(&f.name)
            && !posted.problems.iter().any(|(n, _)| *n == f.name)
        {
            posted.problems.push((f.name.clone(), "此项必填".into()));
        }
    }
    let key = field("business_key");
    let refused = |posted: &form::Posted, error: String, status: StatusCode| {
        let (state, me, process, key) = (&state, &me, process.clone(), key.clone());
        let posted = posted.clone();
        async move {
            let mut response = render_register(
                state,
                me,
                Some(&process),
                Some((&posted, &key)),
                Some(error),
            )
            .await;
            *response.status_mut() = status;
            response
        }
    };
    if !posted.problems.is_empty() {
        return refused(
            &posted,
            "请改正标出的内容后再提交。".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let generation = crate::api::access::AccessGeneration(me.generation);
    let started = crate::api::instances::start_checked(
        &state,
        &me.principal,
        generation,
        process.clone(),
        (!key.is_empty()).then(|| key.clone()),
        posted.vars.clone(),
    )
    .await;
    match started {
        Ok(view) if view.existing => {
            Redirect::to(&format!("/cases/{}?existing=1", view.id)).into_response()
        }
        Ok(view) => Redirect::to(&format!("/cases/{}", view.id)).into_response(),
        Err(ApiError::Unprocessable { details, .. }) => {
            posted.problems = field_problems(&details, &fields);
            refused(
                &posted,
                "请改正标出的内容后再提交。".into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => {
            let status = e.status();
            refused(&posted, chinese(&e), status).await
        }
    }
}

/// How long a claim made on a page holds: a person's working session, renewed by claiming
/// again.
const PAGE_LEASE_HOURS: i64 = 8;

/// Where the task page stands for the person.
enum Standing {
    /// Open: they may claim it.
    Open,
    /// They hold its claim (its lock token, until when).
    Mine(i64, DateTime<Utc>),
    /// Someone else holds it (their name, until when).
    Other(String, Option<DateTime<Utc>>),
    /// Completed, cancelled or failed.
    Done,
}

/// What the task page shows, with `posted` (values and problems) when a completion was
/// refused, and an error on top.
struct TaskPage {
    posted: Option<form::Posted>,
    error: Option<String>,
}

async fn render_task(state: &ApiState, me: &Person, id: &str, page: TaskPage) -> Response {
    let engine = &state.engine;
    let p = &me.principal;
    let task = match crate::api::tasks::check_task(state, p, id).await {
        Ok(task) => task,
        Err(e) => return page_error(&e),
    };
    let loaded = async {
        let view = engine.instance(&task.instance_id).await?;
        let labels = engine.labels(&view.process, view.version).await?;
        let model = engine
            .definition(&view.process, Some(view.version))
            .await?
            .model;
        let held = engine.held_claim(id, &crate::actor::Actor::from(p)).await?;
        let warn = engine.warn_at(&view.process, view.version, &task).await?;
        Ok::<_, crate::error::EngineError>((view, labels, model, held, warn))
    };
    let (view, labels, model, held, warn) = match loaded.await {
        Ok(found) => found,
        Err(e) => return page_error(&e.into()),
    };
    let now = engine.clock().now();
    let tz = engine.time_zone();
    let standing = match (task.state, held) {
        (TaskState::Claimed, Some((token, until))) => Standing::Mine(token, until),
        (TaskState::Claimed, None) if task.lock_expires_at.is_some_and(|t| t <= now) => {
            Standing::Open
        }
        (TaskState::Claimed, None) => Standing::Other(
            task.locked_by.clone().unwrap_or_default(),
            task.lock_expires_at,
        ),
        (TaskState::Open, _) => Standing::Open,
        _ => Standing::Done,
    };
    // The person handling the task sees the case unmasked, and that read is recorded (GET
    // /personal-data-reads), as `GET /instances/{id}?unmasked=true` records it.
    let mut case_vars = view.vars.clone();
    let unmasked = matches!(standing, Standing::Mine(..));
    if unmasked {
        let reader = crate::engine::Reader {
            principal: p.clone(),
            address: me.address.map(|a| a.to_string()),
        };
        match engine.instance_unmasked(&task.instance_id, reader).await {
            Ok(full) => case_vars = full.vars,
            Err(e) => return page_error(&e.into()),
        }
    }
    let (values, problems) = match page.posted {
        Some(posted) => (posted.shown, posted.problems),
        // The form starts from the case's values as the handler sees them: unmasked, so that
        // a field of personal data is not sent back as its mask.
        None => (case_vars.clone(), Vec::new()),
    };
    let (mut fields, outcomes) =
        form::task_form(&model, &task.node, &labels, &values).unwrap_or_default();
    for field in &mut fields {
        field.problem = problems
            .iter()
            .find(|(name, _)| *name == field.name)
            .map(|(_, why)| why.clone());
    }
    let vars: Vec<minijinja::Value> = labels
        .var_order()
        .iter()
        .filter_map(|name| {
            let shown = labels.value(name, case_vars.get(name)?);
            (!shown.is_empty())
                .then(|| minijinja::context! { label => labels.var(name), value => shown })
        })
        .collect();
    let row = task_row(&task, warn, now, tz);
    let (state_name, lock_token, lease_until, holder) = match &standing {
        Standing::Open => ("open", 0, None, None),
        Standing::Mine(token, until) => ("mine", *token, Some(chinese_time(*until, tz)), None),
        Standing::Other(who, until) => (
            "other",
            0,
            until.map(|t| chinese_time(t, tz)),
            Some(who.clone()),
        ),
        Standing::Done => ("done", 0, None, None),
    };
    render(
        "task.html",
        minijinja::context! {
            title => task.label.clone().unwrap_or_else(|| labels.node(&task.node)),
            me => signed_in(p),
            csrf => me.csrf.clone(),
            task_id => task.id.clone(),
            task_label => task.label.clone().unwrap_or_else(|| labels.node(&task.node)),
            case_id => task.instance_id.clone(),
            business_key => view.business_key.clone(),
            process => labels.title.clone(),
            queue => labels.queue(&task.queue),
            unit => row.unit,
            due => row.due,
            light => row.light,
            light_text => row.light_text,
            state => state_name,
            state_text => row.state,
            lock_token => lock_token,
            lease_until => lease_until,
            holder => holder,
            vars => vars,
            fields => fields,
            outcomes => outcomes,
            error => page.error,
            unmasked => unmasked,
        },
    )
}

/// 办理: the task's case on the left; on the right, claim it, or (claimed) its form with one
/// button per outcome, or who holds it.
async fn task_page(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    let me = Person { address, ..me };
    let page = TaskPage {
        posted: None,
        error: None,
    };
    render_task(&state, &me, &id, page).await
}

/// The person posting a task page's form (its CSRF token checked) and the task, if they may
/// work it; else where to go or the error page.
async fn task_form_person(
    state: &ApiState,
    address: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    csrf: &str,
    id: &str,
) -> Result<(Person, TaskView), Response> {
    let me = person(state, Method::POST, headers, Some(csrf), false).await?;
    let me = Person { address, ..me };
    let task = crate::api::tasks::check_task(state, &me.principal, id)
        .await
        .map_err(|e| page_error(&e))?;
    Ok((me, task))
}

#[derive(Debug, Deserialize)]
struct ClaimForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    lock_token: String,
}

async fn claim(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ClaimForm>,
) -> Response {
    let (me, _) = match task_form_person(&state, address, &headers, &form.csrf_token, &id).await {
        Ok(found) => found,
        Err(to) => return to,
    };
    let claimed = state
        .engine
        .claim_task(crate::engine::ClaimTaskRequest {
            task_id: id.clone(),
            actor: crate::actor::Actor::from(&me.principal),
            worker: None,
            lease: chrono::Duration::hours(PAGE_LEASE_HOURS),
        })
        .await;
    match claimed {
        Ok(_) => Redirect::to(&format!("/tasks/{id}")).into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            let status = e.status();
            let error = match e {
                ApiError::Conflict { .. } => "未能认领：此任务刚被其他人认领，或已办结。".into(),
                other => chinese(&other),
            };
            let page = TaskPage {
                posted: None,
                error: Some(error),
            };
            let mut response = render_task(&state, &me, &id, page).await;
            *response.status_mut() = status;
            response
        }
    }
}

async fn release(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ClaimForm>,
) -> Response {
    let (me, _) = match task_form_person(&state, address, &headers, &form.csrf_token, &id).await {
        Ok(found) => found,
        Err(to) => return to,
    };
    let token = form.lock_token.trim().parse::<i64>().unwrap_or(-1);
    let actor = crate::actor::Actor::from(&me.principal);
    match state.engine.release(&id, token, actor).await {
        Ok(_) => Redirect::to("/work").into_response(),
        Err(e) => stale(&state, &me, &id, e.into()).await,
    }
}

/// A claim that is no longer the person's (the lease ran out and someone else claimed the
/// task, or it was finished): said plainly on the task page.
async fn stale(state: &ApiState, me: &Person, id: &str, error: ApiError) -> Response {
    let said = match &error {
        ApiError::Conflict { .. } => {
            "您的认领已失效：认领已到期，此任务可能已被其他人认领或已办结。请刷新后查看。".into()
        }
        other => chinese(other),
    };
    let status = error.status();
    let page = TaskPage {
        posted: None,
        error: Some(said),
    };
    let mut response = render_task(state, me, id, page).await;
    *response.status_mut() = status;
    response
}

async fn complete(
    State(state): State<ApiState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (me, task) =
        match task_form_person(&state, address, &headers, &field("csrf_token"), &id).await {
            Ok(found) => found,
            Err(to) => return to,
        };
    let engine = &state.engine;
    let form = async {
        let view = engine.instance(&task.instance_id).await?;
        let labels = engine.labels(&view.process, view.version).await?;
        engine
            .with_model(&view.process, view.version, |model| {
                form::task_form(model, &task.node, &labels, &view.vars).unwrap_or_default()
            })
            .await
    };
    let (fields, _) = match form.await {
        Ok(form) => form,
        Err(e) => return page_error(&e.into()),
    };
    let form::Posted {
        vars,
        shown,
        problems,
    } = form::read_posted(&fields, &pairs);
    let refused = |problems: Vec<(String, String)>, error: String| {
        let page = TaskPage {
            posted: Some(form::Posted {
                vars: Default::default(),
                shown: shown.clone(),
                problems,
            }),
            error: Some(error),
        };
        render_task(&state, &me, &id, page)
    };
    if !problems.is_empty() {
        let mut response = refused(problems, "请改正标出的内容后再提交。".into()).await;
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return response;
    }
    let outcome = Some(field("outcome")).filter(|o| !o.is_empty());
    let token = field("lock_token").trim().parse::<i64>().unwrap_or(-1);
    let done = engine
        .complete(crate::engine::CompleteRequest {
            task_id: id.clone(),
            lock_token: token,
            outcome,
            vars,
            actor: crate::actor::Actor::from(&me.principal),
            access: Some(std::sync::Arc::new(me.principal.clone())),
        })
        .await;
    match done.map_err(ApiError::from) {
        Ok(_) => Redirect::to(&format!("/cases/{}", task.instance_id)).into_response(),
        Err(ApiError::Unprocessable { details, .. }) => {
            let problems = field_problems(&details, &fields);
            let mut response = refused(problems, "请改正标出的内容后再提交。".into()).await;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
        Err(e) => stale(&state, &me, &id, e).await,
    }
}

/// The problems of a refused completion, each at its field, in Chinese: a missing value, or
/// one the engine does not take (its own words kept after the Chinese).
fn field_problems(
    details: &serde_json::Value,
    fields: &[form::FormField],
) -> Vec<(String, String)> {
    details["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let field = p["field"].as_str()?.trim_start_matches("variables.");
            let message = p["message"].as_str().unwrap_or("");
            let known = fields.iter().any(|f| f.name == field);
            let said = if message.contains("required") || message.contains("missing") {
                "此项必填".to_string()
            } else {
                format!("填写的内容不符合要求（{message}）")
            };
            Some((
                if known {
                    field.to_string()
                } else {
                    "outcome".to_string()
                },
                said,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for name in [
            "base.html",
            "login.html",
            "password.html",
            "work.html",
            "board.html",
            "tasks_table.html",
            "case.html",
            "task.html",
            "fields.html",
            "register.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn times_read_as_people_write_them() {
        let at = DateTime::parse_from_rfc3339("2026-10-08T09:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            chinese_time(at, chrono_tz::Asia::Shanghai),
            "2026年10月8日 17:00"
        );
    }

    #[test]
    fn deadlines_light_green_yellow_red() {
        let now = DateTime::parse_from_rfc3339("2026-10-08T09:00:00Z")
            .unwrap()
            .to_utc();
        let h = chrono::Duration::hours;
        let light = deadlines::light;
        assert_eq!(light(Some(now - h(1)), None, now).0, "red");
        assert_eq!(light(Some(now), Some(now - h(9)), now).0, "red");
        assert_eq!(light(Some(now + h(30)), Some(now), now).0, "yellow");
        assert_eq!(light(Some(now + h(30)), Some(now + h(1)), now).0, "green");
        // No warning period declared: green until red.
        assert_eq!(light(Some(now + h(1)), None, now).0, "green");
        assert_eq!(light(None, None, now).0, "");
    }
}
