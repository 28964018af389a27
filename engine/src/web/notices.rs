//! 文书: an issued document as an official notice on an A4 sheet, to read and to print (the
//! browser's print leaves the workbench's chrome out), with its PDF
//! (`GET /api/v1/instances/{id}/documents/{name}.pdf`) a click away. Who may read it: as the
//! API's documents of the case (the case page's rule); the text is the one issued.

use super::{page_error, person, render};
use crate::api::{ApiError, ApiState};
use crate::error::EngineError;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

const CSS: &str = include_str!("assets/notice.css");

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/cases/{id}/documents/{name}", get(notice_page))
        .route("/assets/notice.css", get(css))
}

async fn css() -> Response {
    super::asset(CSS, "text/css; charset=utf-8")
}

/// What the page says when the notice cannot be shown, in Chinese with the next step.
fn missing(status: StatusCode, text: &str, id: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>文书</title>\
         <p>{}</p><p><a href=\"/cases/{}\">返回案件</a></p></html>",
        minijinja::HtmlEscape(text),
        minijinja::HtmlEscape(id)
    );
    (status, Html(html)).into_response()
}

async fn notice_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let me = match person(&state, Method::GET, &headers, None, false).await {
        Ok(me) => me,
        Err(to) => return to,
    };
    match crate::api::instances::ensure_visible(&state, &me.principal, &id).await {
        Ok(()) => {}
        Err(ApiError::NotFound { .. }) => {
            return missing(StatusCode::NOT_FOUND, "没有这个案件，或您无权查看。", &id);
        }
        Err(e) => return page_error(&e),
    }
    let notice = match state.engine.notice(&id, &name).await {
        Ok(notice) => notice,
        Err(EngineError::NotFound { .. }) => {
            return missing(
                StatusCode::NOT_FOUND,
                "该案件的流程没有这种文书。请从案件页的“文书”一栏打开。",
                &id,
            );
        }
        Err(EngineError::Conflict { .. }) => {
            return missing(
                StatusCode::CONFLICT,
                "该文书尚未出具：案件还没有办理到出具它的环节。",
                &id,
            );
        }
        Err(e) => return page_error(&e.into()),
    };
    let case_title = match state.engine.instance(&id).await {
        Ok(view) => view
            .business_key
            .map_or_else(|| "案件".to_string(), |key| format!("案件 {key}")),
        Err(e) => return page_error(&e.into()),
    };
    render(
        "notice.html",
        minijinja::context! {
            title => notice.title.clone(),
            me => super::signed_in(&me.principal),
            csrf => me.csrf.clone(),
            id => id,
            case_title => case_title,
            n => minijinja::Value::from_serialize(&notice),
        },
    )
}
