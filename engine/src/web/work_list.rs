//! 我的待办: the tasks a person holds, and a page of the open tasks of the queues they work (in
//! their units), most urgent first, narrowed by queue, unit, deadline light and a case search.
//! The database orders and pages the open tasks ([`Engine::open_work`]): a street's window
//! queue may hold thousands of them.
//!
//! [`Engine::open_work`]: crate::engine::Engine::open_work

use super::{Person, chinese_time, page_error, person, render, task_row};
use crate::api::ApiState;
use crate::engine::{OpenWork, WorkTask};
use crate::search::CaseScope;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Open tasks a page shows unless asked otherwise.
const PAGE_SIZE: u32 = 50;
/// The most a page may show.
const MAX_PAGE_SIZE: u32 = 200;
/// How many cases a search narrows the lists to (the best hits of the case search).
const SEARCH_CASES: u32 = 100;
/// How many open tasks not yet due are read, in due order, to find those in their warning
/// period (the warning period is the process's, computed per task, not stored).
const SOON_WINDOW: u32 = 1000;

/// The filters of the page, as the form sends them (text, so that bad input is answered in
/// Chinese, not by the extractor).
#[derive(Debug, Default, Deserialize)]
pub(super) struct WorkQuery {
    queue: Option<String>,
    unit: Option<String>,
    light: Option<String>,
    q: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

/// What the form shows as chosen, and the links of the other pages.
#[derive(Debug, Default, Serialize)]
struct Chosen {
    queue: String,
    unit: String,
    light: String,
    q: String,
    page: u32,
    page_size: u32,
    pages: u32,
    /// The link of the pages without the page's number (`/work?unit=…&page=`).
    pages_link: String,
}

/// A choice of a select box.
#[derive(Debug, Serialize)]
pub(super) struct Choice {
    pub(super) value: String,
    pub(super) label: String,
}

/// A filter that cannot be applied: 400, saying which and what to choose instead.
pub(super) fn bad(message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>筛选条件有误</title>\
         <p>{}</p><p><a href=\"/work\">返回我的待办</a></p></html>",
        minijinja::HtmlEscape(message)
    );
    (StatusCode::BAD_REQUEST, Html(html)).into_response()
}

/// A whole number from 1 to `max` (`None`: absent or empty); what to fix otherwise.
pub(super) fn number(text: &Option<String>, what: &str, max: u32) -> Result<Option<u32>, String> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!("{what}应为 1 到 {max} 之间的整数，而不是“{t}”。")),
        },
    }
}

pub(super) fn filled(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

pub(super) async fn work(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<WorkQuery>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    match page(&state, &me, q).await {
        Ok(response) | Err(response) => response,
    }
}

async fn page(state: &ApiState, me: &Person, q: WorkQuery) -> Result<Response, Response> {
    let p = &me.principal;
    let engine = &state.engine;
    let now = engine.clock().now();
    let tz = engine.time_zone();
    let roles: Vec<String> = p.named_roles().map(str::to_string).collect();

    let queue = filled(&q.queue);
    if let Some(queue) = &queue
        && !roles.contains(queue)
    {
        return Err(bad(&format!("“{queue}”不是您所在的队列，请从列表中选择。")));
    }
    let unit = filled(&q.unit);
    if let Some(unit) = &unit
        && !p.org_units.contains(unit)
    {
        return Err(bad(&format!("“{unit}”不是您所在的单位，请从列表中选择。")));
    }
    let light = filled(&q.light);
    if let Some(light) = &light
        && !matches!(light.as_str(), "overdue" | "soon")
    {
        return Err(bad("期限灯只能选“已超期”或“临近期限”。"));
    }
    let page = number(&q.page, "页码", u32::MAX)
        .map_err(|m| bad(&m))?
        .unwrap_or(1);
    let page_size = number(&q.page_size, "每页条数", MAX_PAGE_SIZE)
        .map_err(|m| bad(&m))?
        .unwrap_or(PAGE_SIZE);
    let text = filled(&q.q);

    // The search narrows both lists to the cases it finds, among those the person may find.
    let cases = match &text {
        None => None,
        Some(text) => {
            let search = crate::engine::CaseSearch {
                q: Some(text.clone()),
                process: None,
                status: None,
                unit: None,
                from: None,
                to: None,
                page: 1,
                page_size: SEARCH_CASES,
            };
            let found = engine
                .search_cases(&search, CaseScope::of(p))
                .await
                .map_err(|e| page_error(&e.into()))?;
            Some(found.cases.into_iter().map(|c| c.id).collect::<Vec<_>>())
        }
    };

    let claimed = engine
        .claimed_work(&crate::actor::Actor::from(p), 200)
        .await
        .map_err(|e| page_error(&e.into()))?;
    let mut filter = OpenWork {
        queues: queue.clone().map_or(roles.clone(), |q| vec![q]),
        org_units: match &unit {
            Some(u) => Some(vec![u.clone()]),
            None => (!p.org_units.is_empty()).then(|| p.org_units.clone()),
        },
        cases: cases.clone(),
        due_from: None,
        due_before: None,
        page,
        page_size,
    };
    let (open, total) = match light.as_deref() {
        Some("overdue") => {
            filter.due_before = Some(now);
            engine.open_work(&filter).await
        }
        Some("soon") => {
            // Not yet due, in due order; those whose warning period has begun.
            filter.due_from = Some(now);
            filter.page = 1;
            filter.page_size = SOON_WINDOW;
            engine.open_work(&filter).await.map(|(tasks, _)| {
                let soon: Vec<WorkTask> = tasks.into_iter().filter(|w| is_soon(w, now)).collect();
                let total = soon.len() as i64;
                let from = (page as usize - 1).saturating_mul(page_size as usize);
                let shown = soon.into_iter().skip(from).take(page_size as usize);
                (shown.collect(), total)
            })
        }
        _ => engine.open_work(&filter).await,
    }
    .map_err(|e| page_error(&e.into()))?;

    let reminders = super::reminders::open_items(state, p)
        .await
        .map_err(|e| page_error(&e))?;
    // Queue labels per process version, read once for the page.
    let mut labels = HashMap::new();
    for w in claimed.iter().chain(&open) {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            labels.entry((w.process.clone(), w.version))
        {
            let l = engine
                .labels(&w.process, w.version)
                .await
                .map_err(|e| page_error(&e.into()))?;
            slot.insert(l);
        }
    }
    // The claimed tasks are few (a person's own): the same filters, read here.
    let claimed: Vec<WorkTask> = claimed
        .into_iter()
        .filter(|w| queue.as_ref().is_none_or(|q| &w.task.queue == q))
        .filter(|w| {
            unit.as_ref()
                .is_none_or(|u| w.task.org_unit.as_ref().is_none_or(|o| o == u))
        })
        .filter(|w| {
            cases
                .as_ref()
                .is_none_or(|c| c.contains(&w.task.instance_id))
        })
        .filter(|w| match light.as_deref() {
            Some("overdue") => w.task.due_at.is_some_and(|d| d < now),
            Some("soon") => is_soon(w, now),
            _ => true,
        })
        .collect();
    let rows = |tasks: Vec<WorkTask>, sort: bool| {
        let mut tasks: Vec<WorkTask> = tasks
            .into_iter()
            .filter(|w| p.works_queue(&w.task.queue, w.task.org_unit.as_deref()))
            .collect();
        if sort {
            // Most urgent first; tasks without a deadline last (the open ones come sorted).
            tasks.sort_by_key(|w| (w.task.due_at.is_none(), w.task.due_at, w.task.created_at));
        }
        tasks
            .iter()
            .map(|w| {
                let mut row = task_row(&w.task, w.warn_at, now, tz);
                row.case_key = w.business_key.clone();
                if let Some(l) = labels.get(&(w.process.clone(), w.version)) {
                    row.queue = l.queue(&w.task.queue);
                }
                row
            })
            .collect::<Vec<_>>()
    };
    // A queue is named by its role's label where a process on the page declares one.
    let queue_label = |role: &str| {
        labels
            .values()
            .map(|l| l.queue(role))
            .find(|label| label != role)
            .unwrap_or_else(|| role.to_string())
    };
    let queues: Vec<Choice> = roles
        .iter()
        .map(|r| Choice {
            value: r.clone(),
            label: queue_label(r),
        })
        .collect();
    let mut pages_link = String::from("/work?");
    for (key, value) in [
        ("queue", &queue),
        ("unit", &unit),
        ("light", &light),
        ("q", &text),
    ] {
        if let Some(v) = value {
            pages_link.push_str(&format!("{key}={}&", query_text(v)));
        }
    }
    let narrowed = pages_link.len() > "/work?".len();
    if page_size != PAGE_SIZE {
        pages_link.push_str(&format!("page_size={page_size}&"));
    }
    pages_link.push_str("page=");
    let pages = u32::try_from((total.max(0) as u64).div_ceil(u64::from(page_size)))
        .unwrap_or(u32::MAX)
        .max(1);
    let chosen = Chosen {
        queue: queue.unwrap_or_default(),
        unit: unit.unwrap_or_default(),
        light: light.unwrap_or_default(),
        q: text.unwrap_or_default(),
        page,
        page_size,
        pages,
        pages_link,
    };
    Ok(render(
        "work.html",
        minijinja::context! {
            title => "我的待办",
            page => "work",
            me => super::signed_in(p),
            csrf => me.csrf.clone(),
            units => p.org_units.join("、"),
            unit_choices => p.org_units.clone(),
            queue_choices => queues,
            now => chinese_time(now, tz),
            claimed => rows(claimed, true),
            open => rows(open, false),
            open_total => total,
            chosen => chosen,
            narrowed => narrowed,
            reminders => reminders,
        },
    ))
}

/// Is `w` in its warning period (yellow), not yet due?
fn is_soon(w: &WorkTask, now: DateTime<Utc>) -> bool {
    matches!(
        (w.task.due_at, w.warn_at),
        (Some(due), Some(warn)) if warn <= now && now < due
    )
}

/// `text` as a value of a URL's query string (percent-encoded UTF-8; letters, digits and
/// `-_.~` as they are).
pub(super) fn query_text(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
