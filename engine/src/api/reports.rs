//! `GET /reports`, `GET /reports/{job}/runs`, `GET /reports/{job}/runs/{scheduled}/csv`.

use super::dto::{ReportJob, ReportJobs, ReportRunList};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::scheduler::Services;
use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The report routes (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(jobs))
        .routes(routes!(runs))
        .routes(routes!(csv))
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// At most this many, newest first (default 50, at most 1000).
    limit: Option<u32>,
}

fn reports(
    principal: &Principal,
    ext: Option<Extension<Services>>,
) -> Result<crate::reports::Reports, ApiError> {
    if !principal.is_overseer() {
        return Err(ApiError::forbidden(
            "reports are for admin tokens and the roles a process declares `oversees`",
        ));
    }
    ext.and_then(|Extension(s)| s.reports().cloned())
        .ok_or_else(|| {
            ApiError::not_found(
                "no report jobs on this server: start it with `yimen serve --reports reports.yaml`",
            )
        })
}

/// The report jobs with their schedule and latest runs.
#[utoipa::path(get, path = "/reports", tag = "reports", operation_id = "list_report_jobs",
    responses((status = 200, body = ReportJobs), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn jobs(
    Extension(principal): Extension<Principal>,
    ext: Option<Extension<Services>>,
) -> Result<ApiJson<ReportJobs>, ApiError> {
    let reports = reports(&principal, ext)?;
    let now = reports.engine().clock().now();
    let jobs: Vec<_> = reports
        .schedule()
        .jobs()
        .iter()
        .map(|j| ReportJob {
            name: j.spec.name.clone(),
            cron: j.spec.cron.clone(),
            report: j.spec.report,
            next: reports.schedule().next_after(j, now),
        })
        .collect();
    let runs = reports.runs(None, 50).await?;
    Ok(ApiJson(ReportJobs { jobs, runs }))
}

/// Recorded runs of a job, newest first. `scheduled_at` (unix millis) names a run.
#[utoipa::path(get, path = "/reports/{job}/runs", tag = "reports", operation_id = "list_report_runs",
    params(("job" = String, Path, description = "job name"), RunsQuery),
    responses((status = 200, body = ReportRunList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn runs(
    Extension(principal): Extension<Principal>,
    ext: Option<Extension<Services>>,
    ApiPath(job): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<ApiJson<ReportRunList>, ApiError> {
    let reports = reports(&principal, ext)?;
    let runs = reports.runs(Some(&job), query.limit.unwrap_or(50)).await?;
    Ok(ApiJson(ReportRunList { runs }))
}

/// The CSV a run wrote.
#[utoipa::path(get, path = "/reports/{job}/runs/{scheduled}/csv", tag = "reports", operation_id = "report_run_csv",
    params(("job" = String, Path, description = "job name"),
        ("scheduled" = i64, Path, description = "the run's scheduled time, unix millis")),
    responses((status = 200, description = "the CSV the run wrote", body = String, content_type = "text/csv"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn csv(
    Extension(principal): Extension<Principal>,
    ext: Option<Extension<Services>>,
    ApiPath((job, scheduled)): ApiPath<(String, i64)>,
) -> Result<Response, ApiError> {
    let reports = reports(&principal, ext)?;
    let text = reports.csv(&job, scheduled).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response())
}
