//! 监察看板: every running clock of every case the person may oversee, most overdue first,
//! with its light as of now (green, yellow within the warning period the clock declares, red
//! when due) and the highest escalation level signalled on it; filters by unit, department
//! (the queue now holding the case), clock and light; and the signals recorded this month,
//! counted from the record (`signals`), not recomputed. For the roles a process declares
//! `oversees`, and admins; a person of some units sees their units' cases.

use super::work_list::{Choice, bad, filled, number, query_text};
use super::{Person, chinese_time, page_error, person, render};
use crate::api::ApiState;
use crate::deadlines::Light;
use crate::engine::{BoardClock, BoardFilter, ProcessLabels};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// The filters as the form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BoardQuery {
    unit: Option<String>,
    queue: Option<String>,
    clock: Option<String>,
    light: Option<String>,
    page: Option<String>,
}

/// A row of the board as shown.
#[derive(Debug, Serialize)]
struct Row {
    case: String,
    case_key: Option<String>,
    process: String,
    clock: String,
    unit: String,
    queue: String,
    light: &'static str,
    light_text: &'static str,
    due: String,
    /// `超期 3 天 2 小时`, `剩余 5 天`.
    lateness: String,
    level: String,
}

/// The counts of the signals recorded, as shown.
#[derive(Debug, Serialize)]
struct Count {
    label: String,
    light: &'static str,
    count: i64,
}

pub(super) async fn board(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<BoardQuery>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(response) => return response,
    };
    if !me.principal.is_overseer() {
        let html = "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\">\
                    <title>无权查看</title><p>监察看板供监察、督办部门和管理员使用。\
                    如需查看，请联系管理员为您的账号添加相应角色。</p>\
                    <p><a href=\"/work\">返回我的待办</a></p></html>";
        return (StatusCode::FORBIDDEN, Html(html)).into_response();
    }
    match page(&state, &me, q).await {
        Ok(response) | Err(response) => response,
    }
}

async fn page(state: &ApiState, me: &Person, q: BoardQuery) -> Result<Response, Response> {
    let p = &me.principal;
    let engine = &state.engine;
    let now = engine.clock().now();
    let tz = engine.time_zone();

    // The labels of every deployed process: the choices of clocks and departments.
    let mut labels: HashMap<(String, i64), ProcessLabels> = HashMap::new();
    let mut clock_choices: Vec<Choice> = Vec::new();
    let mut queue_choices: Vec<Choice> = Vec::new();
    for d in engine
        .definitions()
        .await
        .map_err(|e| page_error(&e.into()))?
    {
        let l = engine
            .labels(&d.key, d.latest_version)
            .await
            .map_err(|e| page_error(&e.into()))?;
        for (name, label) in l.clock_names() {
            if !clock_choices.iter().any(|c| c.value == name) {
                clock_choices.push(Choice { value: name, label });
            }
        }
        for queue in l.queue_names() {
            if !queue_choices.iter().any(|c| c.value == queue) {
                queue_choices.push(Choice {
                    label: l.queue(&queue),
                    value: queue,
                });
            }
        }
        labels.insert((d.key.clone(), d.latest_version), l);
    }

    let unit = filled(&q.unit);
    if let Some(u) = &unit
        && !p.org_units.is_empty()
        && !p.org_units.contains(u)
    {
        return Err(bad(&format!("“{u}”不是您所在的单位，请从列表中选择。")));
    }
    let queue = filled(&q.queue);
    if let Some(v) = &queue
        && !queue_choices.iter().any(|c| &c.value == v)
    {
        return Err(bad(&format!("没有名为“{v}”的部门队列，请从列表中选择。")));
    }
    let clock = filled(&q.clock);
    if let Some(v) = &clock
        && !clock_choices.iter().any(|c| &c.value == v)
    {
        return Err(bad(&format!("没有名为“{v}”的时限，请从列表中选择。")));
    }
    let light = filled(&q.light);
    if let Some(v) = &light
        && !matches!(v.as_str(), "red" | "yellow" | "green" | "paused")
    {
        return Err(bad("期限灯只能选“红灯”“黄灯”“绿灯”或“暂停计时”。"));
    }
    let page = number(&q.page, "页码", u32::MAX)
        .map_err(|m| bad(&m))?
        .unwrap_or(1);

    let org_units = match &unit {
        Some(u) => Some(vec![u.clone()]),
        None => (!p.org_units.is_empty()).then(|| p.org_units.clone()),
    };
    let filter = BoardFilter {
        org_units: org_units.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        light: light.clone(),
        page,
        page_size: PAGE_SIZE.min(MAX_PAGE_SIZE),
    };
    let (clocks, total) = engine
        .board(&filter)
        .await
        .map_err(|e| page_error(&e.into()))?;
    let mut rows = Vec::with_capacity(clocks.len());
    for c in &clocks {
        let key = (c.process.clone(), c.version);
        if !labels.contains_key(&key) {
            let l = engine
                .labels(&c.process, c.version)
                .await
                .map_err(|e| page_error(&e.into()))?;
            labels.insert(key.clone(), l);
        }
        rows.push(row(c, &labels[&key], now, tz));
    }

    // This month's signals, from the record.
    let local = now.with_timezone(&tz);
    let month_start = tz
        .with_ymd_and_hms(local.year(), local.month(), 1, 0, 0, 0)
        .single()
        .map_or(now, |t| t.with_timezone(&Utc));
    let counted = engine
        .signal_counts(
            org_units.as_deref(),
            month_start,
            now + chrono::Duration::seconds(1),
        )
        .await
        .map_err(|e| page_error(&e.into()))?;
    let mut counts = vec![
        Count {
            label: "黄灯预警".into(),
            light: "yellow",
            count: 0,
        },
        Count {
            label: "红灯超期".into(),
            light: "red",
            count: 0,
        },
    ];
    let mut levels: Vec<Count> = Vec::new();
    for c in counted {
        match c.light.as_str() {
            "yellow" => counts[0].count += c.count,
            "red" => {
                counts[1].count += c.count;
                if c.level > 0 {
                    levels.push(Count {
                        label: format!("第 {} 级督办", c.level),
                        light: "red",
                        count: c.count,
                    });
                }
            }
            _ => {}
        }
    }
    counts.extend(levels);

    let mut pages_link = String::from("/board?");
    for (key, value) in [
        ("unit", &unit),
        ("queue", &queue),
        ("clock", &clock),
        ("light", &light),
    ] {
        if let Some(v) = value {
            pages_link.push_str(&format!("{key}={}&", query_text(v)));
        }
    }
    let narrowed = pages_link.len() > "/board?".len();
    pages_link.push_str("page=");
    let pages = u32::try_from((total.max(0) as u64).div_ceil(u64::from(PAGE_SIZE)))
        .unwrap_or(u32::MAX)
        .max(1);
    Ok(render(
        "board.html",
        minijinja::context! {
            title => "监察看板",
            page => "board",
            me => super::signed_in(p),
            csrf => me.csrf.clone(),
            now => chinese_time(now, tz),
            month => format!("{}年{}月", local.year(), local.month()),
            units => p.org_units.join("、"),
            unit_choices => p.org_units.clone(),
            queue_choices => queue_choices,
            clock_choices => clock_choices,
            rows => rows,
            total => total,
            counts => counts,
            chosen => minijinja::context! {
                unit => unit.unwrap_or_default(),
                queue => queue.unwrap_or_default(),
                clock => clock.unwrap_or_default(),
                light => light.unwrap_or_default(),
                page => page,
                pages => pages,
                pages_link => pages_link,
            },
            narrowed => narrowed,
        },
    ))
}

fn row(c: &BoardClock, l: &ProcessLabels, now: DateTime<Utc>, tz: chrono_tz::Tz) -> Row {
    let (light, light_text) = match (c.state.as_str(), c.light) {
        ("paused", _) | (_, None) => ("paused", "暂停计时"),
        (_, Some(Light::Red)) => ("red", "红灯"),
        (_, Some(Light::Yellow)) => ("yellow", "黄灯"),
        (_, Some(Light::Green)) => ("green", "绿灯"),
    };
    Row {
        case: c.instance_id.clone(),
        case_key: c.business_key.clone(),
        process: l.title.clone(),
        clock: l.clock(&c.clock),
        unit: c.org_unit.clone().unwrap_or_default(),
        queue: c.queue.as_deref().map(|q| l.queue(q)).unwrap_or_default(),
        light,
        light_text,
        due: c
            .due_at
            .map(|d| chinese_time(d, tz))
            .unwrap_or_else(|| "（暂停中）".into()),
        lateness: c.due_at.map(|d| lateness(d, now)).unwrap_or_default(),
        level: match c.level {
            Some(0) => "已超期".into(),
            Some(n) => format!("第 {n} 级"),
            None => String::new(),
        },
    }
}

/// How late (or how much time is left), in days and hours.
fn lateness(due: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let (word, span) = if due <= now {
        ("超期", now - due)
    } else {
        ("剩余", due - now)
    };
    let days = span.num_days();
    let hours = span.num_hours() - days * 24;
    match (days, hours) {
        (0, 0) => format!("{word}不足 1 小时"),
        (0, h) => format!("{word} {h} 小时"),
        (d, 0) => format!("{word} {d} 天"),
        (d, h) => format!("{word} {d} 天 {h} 小时"),
    }
}

#[cfg(test)]
mod tests {
    use super::lateness;
    use chrono::{Duration, TimeZone, Utc};

    #[test]
    fn lateness_says_days_and_hours_late_or_left() {
        let due = Utc.with_ymd_and_hms(2026, 10, 8, 9, 0, 0).unwrap();
        assert_eq!(lateness(due, due + Duration::hours(50)), "超期 2 天 2 小时");
        assert_eq!(lateness(due, due - Duration::hours(24)), "剩余 1 天");
        assert_eq!(lateness(due, due + Duration::minutes(5)), "超期不足 1 小时");
        assert_eq!(lateness(due, due - Duration::hours(3)), "剩余 3 小时");
    }
}

/// The form of an oversight action on the case page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OverseeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    text: String,
}

/// Records an oversight action on a case (`Engine::oversee`) and shows the case again.
pub(super) async fn oversee(
    State(state): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Form(form): axum::extract::Form<OverseeForm>,
) -> Response {
    let me = match person(
        &state,
        Method::POST,
        &headers,
        Some(&form.csrf_token),
        false,
    )
    .await
    {
        Ok(me) => me,
        Err(response) => return response,
    };
    let p = &me.principal;
    if !p.is_overseer() {
        return page_error(&crate::api::ApiError::from(
            crate::error::EngineError::Forbidden {
                why: format!(
                    "{} does not oversee cases: only the roles a process declares `oversees` act on them",
                    p.who()
                ),
            },
        ));
    }
    if let Err(e) = crate::api::instances::ensure_visible(&state, p, &id).await {
        return page_error(&e);
    }
    let actor = crate::actor::Actor::from(p);
    match state
        .engine
        .oversee(&id, &form.kind, &form.text, actor)
        .await
    {
        Ok(_) => {
            axum::response::Redirect::to(&format!("/cases/{id}?said=done#oversee")).into_response()
        }
        Err(e) => page_error(&e.into()),
    }
}
