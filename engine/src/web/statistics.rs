//! 统计: the statistics of a process for a period (A2 §5), a table and a chart per dimension,
//! downloads as XLSX and CSV, the register (电子台账) as XLSX, and the files of the scheduled
//! statistics reports.
//!
//! Who may read it: admins and the roles a process declares `oversees` (of their organisation
//! units, when limited to some); a person limited to organisation units (a street's window)
//! reads the cases of those units only; anyone else is refused. The register is masked for
//! everyone; admins and overseers may download it unmasked, and each case in it is then
//! recorded in the trail of unmasked reads.
//!
//! The charts are drawn by ECharts (vendored: 6.1.0, Apache-2.0, `assets/echarts-LICENSE.txt`)
//! from the JSON the page embeds, by `assets/statistics.js`; the tables beside them hold the
//! same figures for readers without the charts and for print.

use super::{Person, chinese_time, page_error, person, render};
use crate::api::{ApiError, ApiState};
use crate::auth::Principal;
use crate::engine::{RegisterReader, StatisticsQuery};
use crate::scheduler::Services;
use crate::statistics::Tables;
use axum::Extension;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

const ECHARTS: &str = include_str!("assets/echarts-6.1.0.common.min.js");
const SCRIPT: &str = include_str!("assets/statistics.js");

/// The statistics' routes, merged into [`super::routes`].
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/statistics", get(page))
        .route("/statistics/tables.xlsx", get(tables_xlsx))
        .route("/statistics/tables.csv", get(tables_csv))
        .route("/statistics/register.xlsx", get(register_xlsx))
        .route(
            "/statistics/reports/{job}/{scheduled}/{file}",
            get(report_file),
        )
        .route("/assets/echarts-6.1.0.common.min.js", get(echarts))
        .route("/assets/statistics.js", get(script))
}

async fn echarts() -> Response {
    super::asset(ECHARTS, "text/javascript; charset=utf-8")
}

async fn script() -> Response {
    super::asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// The choices of the page, as the form sends them (text: bad input is answered in Chinese).
#[derive(Debug, Default, Deserialize)]
pub(super) struct StatsQuery {
    process: Option<String>,
    from: Option<String>,
    to: Option<String>,
    table: Option<String>,
    unmasked: Option<String>,
}

/// A refusal or a choice that cannot be read: its status and what to do, as a page.
fn refuse(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>统计</title>\
         <p>{}</p><p><a href=\"/statistics\">返回统计</a> · <a href=\"/work\">返回我的待办</a></p></html>",
        minijinja::HtmlEscape(message)
    );
    (status, Html(html)).into_response()
}

/// May `p` read statistics: an overseer or admin, or a person limited to organisation units.
fn may_read(p: &Principal) -> bool {
    p.is_overseer() || !p.org_units.is_empty()
}

/// The organisation units whose cases `p` counts (`None`: all).
fn units_of(p: &Principal) -> Option<Vec<String>> {
    (!p.org_units.is_empty()).then(|| p.org_units.clone())
}

/// The first and last day of the quarter of `day`.
fn quarter_of(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first_month = (day.month0() / 3) * 3 + 1;
    let from = NaiveDate::from_ymd_opt(day.year(), first_month, 1).unwrap_or(day);
    let next = if first_month == 10 {
        NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(day.year(), first_month + 3, 1)
    };
    (from, next.and_then(|d| d.pred_opt()).unwrap_or(day))
}

/// A day as the form sends it; what to fix otherwise.
fn day(text: &Option<String>, what: &str) -> Result<Option<NaiveDate>, String> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("{what}应为日期（如 2026-07-01），而不是“{t}”。")),
    }
}

/// The longest period one read counts: ten years.
const MAX_DAYS: i64 = 3660;

/// Who asks and what: the person, the query, the processes to choose from.
struct Asked {
    me: Person,
    query: StatisticsQuery,
    processes: Vec<crate::engine::StatisticsProcess>,
}

async fn asked(state: &ApiState, headers: &HeaderMap, q: &StatsQuery) -> Result<Asked, Response> {
    let me = person(state, Method::GET, headers, None, false).await?;
    if !may_read(&me.principal) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "统计仅对监察、督办角色和管理员开放；受理窗口等限于单位的人员可查看本单位的统计。如需查看，请联系管理员。",
        ));
    }
    let units = units_of(&me.principal);
    let engine = &state.engine;
    let processes = engine
        .statistics_processes()
        .await
        .map_err(|e| page_error(&ApiError::from(e)))?;
    let process = match q
        .process
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(p) if processes.iter().any(|x| x.key == p) => p.to_string(),
        Some(p) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                &format!("流程“{p}”没有统计配置，请从列表中选择。"),
            ));
        }
        None => match processes.first() {
            Some(p) => p.key.clone(),
            None => {
                return Err(refuse(
                    StatusCode::NOT_FOUND,
                    "已部署的流程都没有统计配置（流程 YAML 中的 statistics 一节）。",
                ));
            }
        },
    };
    let today = engine
        .clock()
        .now()
        .with_timezone(&engine.time_zone())
        .date_naive();
    let (q_from, q_to) = quarter_of(today);
    let bad = |m: String| refuse(StatusCode::BAD_REQUEST, &m);
    let from = day(&q.from, "起始日期").map_err(bad)?.unwrap_or(q_from);
    let to = day(&q.to, "截止日期").map_err(bad)?.unwrap_or(q_to);
    if from > to {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "起始日期晚于截止日期，请先填起始日期，再填截止日期。",
        ));
    }
    if (to - from).num_days() > MAX_DAYS {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "统计期间最长十年，请缩短期间。",
        ));
    }
    Ok(Asked {
        me,
        query: StatisticsQuery {
            process,
            from,
            to,
            units,
        },
        processes,
    })
}

/// The query string of a choice (process and period).
fn choice_query(q: &StatisticsQuery) -> String {
    format!(
        "process={}&from={}&to={}",
        super::work_list::query_text(&q.process),
        q.from,
        q.to
    )
}

/// A table as the page shows it.
#[derive(Debug, Serialize)]
struct TableView {
    name: String,
    title: String,
    dimension: String,
    rows: Vec<crate::statistics::Row>,
    overlapping: bool,
    /// The chart's accessible description.
    chart_label: String,
}

/// A quick choice of period.
#[derive(Debug, Serialize)]
struct Preset {
    label: String,
    link: String,
    current: bool,
}

/// A file of a scheduled run, with its link.
#[derive(Debug, Serialize)]
struct ReportFile {
    label: &'static str,
    link: String,
}

#[derive(Debug, Serialize)]
struct ReportRunView {
    job: String,
    at: String,
    state: String,
    files: Vec<ReportFile>,
    error: Option<String>,
}

/// JSON for a `<script type="application/json">` block: no `<`, `>` or `&` that could end it.
fn embedded_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    services: Option<Extension<Services>>,
    Query(q): Query<StatsQuery>,
) -> Response {
    let a = match asked(&state, &headers, &q).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let engine = &state.engine;
    let started = std::time::Instant::now();
    let tables = match engine.statistics(&a.query).await {
        Ok(t) => t,
        Err(e) => return page_error(&ApiError::from(e)),
    };
    let took = started.elapsed();
    let p = &a.me.principal;
    let today = engine
        .clock()
        .now()
        .with_timezone(&engine.time_zone())
        .date_naive();
    let presets = presets(&a.query, today);
    let views: Vec<TableView> = tables
        .tables
        .iter()
        .map(|t| TableView {
            chart_label: format!("柱状图：{}，共 {} 组；数据见下表。", t.title, t.rows.len()),
            name: t.name.clone(),
            title: t.title.clone(),
            dimension: t.dimension.clone(),
            rows: t.rows.clone(),
            overlapping: t.overlapping,
        })
        .collect();
    let charts = serde_json::json!({
        "columns": tables.columns,
        "tables": tables.tables.iter().filter(|t| t.name != "total").map(|t| serde_json::json!({
            "name": t.name,
            "title": t.title,
            "kind": if t.name == "month" { "line" } else { "bar" },
            "labels": t.rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            "series": (0..tables.columns.len()).map(|c| t.rows.iter().map(|r| r.counts[c]).collect::<Vec<_>>()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let reports = report_runs(services.as_ref().map(|Extension(s)| s), p).await;
    let query = choice_query(&a.query);
    render(
        "statistics.html",
        minijinja::context! {
            title => "统计",
            page => "statistics",
            me => super::signed_in(p),
            csrf => a.me.csrf.clone(),
            units => p.org_units.join("、"),
            processes => a.processes.iter().map(|x| minijinja::context!{ key => x.key.clone(), title => x.title.clone() }).collect::<Vec<_>>(),
            chosen => minijinja::context! {
                process => a.query.process.clone(),
                from => a.query.from.to_string(),
                to => a.query.to.to_string(),
            },
            presets => presets,
            process_title => tables.title.clone(),
            columns => tables.columns.clone(),
            tables => views,
            charts => embedded_json(&charts),
            query => query,
            may_unmask => p.is_overseer() && p.org_units.is_empty(),
            reports => reports,
            now => chinese_time(engine.clock().now(), engine.time_zone()),
            took_ms => took.as_millis() as u64,
        },
    )
}

/// This month, this quarter, last quarter, this year.
fn presets(q: &StatisticsQuery, today: NaiveDate) -> Vec<Preset> {
    let month_from = today.with_day(1).unwrap_or(today);
    let (quarter_from, quarter_to) = quarter_of(today);
    let (last_from, last_to) = quarter_of(quarter_from.pred_opt().unwrap_or(quarter_from));
    let year_from = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
    let year_to = NaiveDate::from_ymd_opt(today.year(), 12, 31).unwrap_or(today);
    let month_to = quarter_of(today).1.min(
        NaiveDate::from_ymd_opt(
            if today.month() == 12 {
                today.year() + 1
            } else {
                today.year()
            },
            today.month() % 12 + 1,
            1,
        )
        .and_then(|d| d.pred_opt())
        .unwrap_or(today),
    );
    [
        ("本月", month_from, month_to),
        ("本季度", quarter_from, quarter_to),
        ("上季度", last_from, last_to),
        ("本年", year_from, year_to),
    ]
    .into_iter()
    .map(|(label, from, to)| Preset {
        label: label.to_string(),
        link: format!(
            "/statistics?{}",
            choice_query(&StatisticsQuery {
                from,
                to,
                ..q.clone()
            })
        ),
        current: q.from == from && q.to == to,
    })
    .collect()
}

/// The runs of the scheduled statistics reports, newest first, for those who read reports
/// (admins and overseers, as `GET /api/v1/reports`).
async fn report_runs(services: Option<&Services>, p: &Principal) -> Vec<ReportRunView> {
    if !p.is_overseer() {
        return Vec::new();
    }
    let Some(reports) = services.and_then(|s| s.reports()) else {
        return Vec::new();
    };
    let tz = reports.schedule().time_zone();
    let runs = match reports.runs(None, 100).await {
        Ok(runs) => runs,
        Err(e) => {
            tracing::warn!("statistics page: report runs: {e}");
            return Vec::new();
        }
    };
    runs.into_iter()
        .filter(|r| {
            reports
                .schedule()
                .job(&r.job)
                .is_some_and(|j| j.spec.report == crate::reports::ReportKind::Statistics)
        })
        .take(24)
        .map(|r| {
            let base = format!(
                "/statistics/reports/{}/{}",
                r.job,
                r.scheduled_at.timestamp_millis()
            );
            let files = if r.state == "done" {
                vec![
                    ReportFile {
                        label: "统计表 XLSX",
                        link: format!("{base}/tables.xlsx"),
                    },
                    ReportFile {
                        label: "统计表 CSV",
                        link: format!("{base}/tables.csv"),
                    },
                    ReportFile {
                        label: "电子台账 XLSX（已脱敏）",
                        link: format!("{base}/register.xlsx"),
                    },
                ]
            } else {
                Vec::new()
            };
            ReportRunView {
                job: r.job,
                at: chinese_time(r.scheduled_at, tz),
                state: match r.state.as_str() {
                    "done" => "已生成",
                    "running" => "生成中",
                    "failed" => "失败",
                    _ => "—",
                }
                .to_string(),
                files,
                error: r.error,
            }
        })
        .collect()
}

/// A download: its bytes, type and file name (UTF-8, RFC 6266's `filename*`).
fn download(bytes: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let encoded = super::work_list::query_text(name);
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"statistics\"; filename*=UTF-8''{encoded}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const CSV: &str = "text/csv; charset=utf-8";

fn file_name(tables_title: &str, q: &StatisticsQuery, what: &str, ext: &str) -> String {
    format!("{tables_title}_{what}_{}_{}.{ext}", q.from, q.to)
}

fn xlsx_failed(e: rust_xlsxwriter::XlsxError) -> Response {
    tracing::error!("statistics workbook: {e}");
    page_error(&ApiError::Internal {
        cause: "the workbook could not be written".into(),
    })
}

async fn statistics_of(state: &ApiState, a: &Asked) -> Result<Tables, Response> {
    state
        .engine
        .statistics(&a.query)
        .await
        .map_err(|e| page_error(&ApiError::from(e)))
}

async fn tables_xlsx(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StatsQuery>,
) -> Response {
    let result = async {
        let a = asked(&state, &headers, &q).await?;
        let tables = statistics_of(&state, &a).await?;
        let bytes = crate::statistics::xlsx::tables(&tables).map_err(xlsx_failed)?;
        Ok::<_, Response>(download(
            bytes,
            XLSX,
            &file_name(&tables.title, &a.query, "统计表", "xlsx"),
        ))
    };
    result.await.unwrap_or_else(|r| r)
}

async fn tables_csv(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StatsQuery>,
) -> Response {
    let result = async {
        let a = asked(&state, &headers, &q).await?;
        let tables = statistics_of(&state, &a).await?;
        let only = match q.table.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(name) => Some(tables.table(name).ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("没有名为“{name}”的统计表，请从页面上的下载链接下载。"),
                )
            })?),
        };
        let what = only.map_or("统计表".to_string(), |t| t.title.clone());
        Ok::<_, Response>(download(
            tables.csv(only).into_bytes(),
            CSV,
            &file_name(&tables.title, &a.query, &what, "csv"),
        ))
    };
    result.await.unwrap_or_else(|r| r)
}

async fn register_xlsx(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StatsQuery>,
) -> Response {
    let result = async {
        let a = asked(&state, &headers, &q).await?;
        let p = &a.me.principal;
        let unmasked = matches!(q.unmasked.as_deref(), Some("1" | "true"));
        let reader = if unmasked {
            if !(p.is_overseer() && p.org_units.is_empty()) {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "含个人信息的电子台账仅供管理员和监察、督办角色下载；请下载已脱敏的电子台账。",
                ));
            }
            RegisterReader::Unmasked(crate::engine::Reader {
                principal: p.clone(),
                address: a.me.address.map(|ip| ip.to_string()),
            })
        } else {
            RegisterReader::Masked
        };
        let register = state
            .engine
            .register(&a.query, reader)
            .await
            .map_err(|e| page_error(&ApiError::from(e)))?;
        let bytes = crate::statistics::xlsx::register(&register).map_err(xlsx_failed)?;
        let what = if unmasked {
            "电子台账（含个人信息）"
        } else {
            "电子台账"
        };
        Ok::<_, Response>(download(
            bytes,
            XLSX,
            &file_name(&register.title, &a.query, what, "xlsx"),
        ))
    };
    result.await.unwrap_or_else(|r| r)
}

/// A file of a scheduled statistics run: `tables.xlsx`, `tables.csv` or `register.xlsx`
/// (masked), read from the reports folder where the run wrote it.
async fn report_file(
    State(state): State<ApiState>,
    headers: HeaderMap,
    services: Option<Extension<Services>>,
    Path((job, scheduled, file)): Path<(String, i64, String)>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    if !me.principal.is_overseer() {
        return refuse(
            StatusCode::FORBIDDEN,
            "定期报表仅供管理员和监察、督办角色下载。",
        );
    }
    let Some(reports) = services.as_ref().and_then(|Extension(s)| s.reports()) else {
        return refuse(StatusCode::NOT_FOUND, "本服务器没有配置定期报表。");
    };
    let run = match reports.runs(Some(&job), 1000).await {
        Ok(runs) => runs
            .into_iter()
            .find(|r| r.scheduled_at.timestamp_millis() == scheduled && r.state == "done"),
        Err(e) => return page_error(&ApiError::from(e)),
    };
    let Some(csv_file) = run.and_then(|r| r.file).map(std::path::PathBuf::from) else {
        return refuse(StatusCode::NOT_FOUND, "找不到这次报表，或它尚未生成。");
    };
    let (book, register) = crate::reports::workbook_files(&csv_file);
    let (path, content_type) = match file.as_str() {
        "tables.xlsx" => (book, XLSX),
        "tables.csv" => (csv_file, CSV),
        "register.xlsx" => (register, XLSX),
        _ => return refuse(StatusCode::NOT_FOUND, "没有这种报表文件。"),
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            download(bytes, content_type, &name)
        }
        Err(e) => {
            tracing::warn!("statistics report file {}: {e}", path.display());
            refuse(
                StatusCode::NOT_FOUND,
                "报表文件已不在报表目录中（可能已被移走或删除）。",
            )
        }
    }
}
