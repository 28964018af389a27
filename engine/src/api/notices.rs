//! `GET /instances/{id}/documents/{name}.pdf`: an issued document as an official notice in
//! PDF (`crate::notice`), for whoever may read the case's documents.
//!
//! The router matches whole path segments only, so the route is `…/documents/{file}` and the
//! handler reads `{name}.pdf` from it; the document names the route as it is called.

use super::{ApiError, ApiPath, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::error::EngineError;
use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(paths(document_pdf))]
struct NoticeDoc;

/// The notice routes (mounted under `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(NoticeDoc::openapi())
        .route("/instances/{id}/documents/{file}", get(document_pdf))
}

/// A PDF file.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Named for the document only: the handler answers the bytes.
pub(super) struct PdfFile(Vec<u8>);

/// The latest issue of document `name` (as `GET /instances/{id}/documents` names it) as an
/// official notice on A4: title, number (文号), addressee, body, issuing office, date of issue
/// in the calendar's zone, room for the seal; Chinese in an embedded font. Readable by those
/// who may read the case's documents; the text is the one issued (a notice to a person shows
/// their data as issued to them, a public list masked). 404: no such case, or its process
/// declares no such document; 409 `document_not_issued`: declared but not issued yet.
#[utoipa::path(get, path = "/instances/{id}/documents/{name}.pdf", tag = "instances", operation_id = "instance_document_pdf",
    params(("id" = String, Path), ("name" = String, Path, description = "the document's name in the process, e.g. `supplement_notice`")),
    responses(
        (status = 200, description = "the notice as PDF", body = PdfFile, content_type = "application/pdf"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such case, or no such document in its process", body = ErrorBody),
        (status = 409, description = "`document_not_issued`: the case has not issued it yet", body = ErrorBody),
    ))]
pub(super) async fn document_pdf(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath((id, file)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let Some(name) = file.strip_suffix(".pdf") else {
        return Err(ApiError::not_found(format!(
            "documents/{file} of instance {id}: a document is read as `<name>.pdf` (GET \
             /api/v1/instances/{id}/documents lists the case's documents)"
        )));
    };
    super::instances::ensure_visible(&state, &principal, &id).await?;
    let notice = state.engine.notice(&id, name).await.map_err(|e| match e {
        EngineError::Conflict { why } => ApiError::conflict("document_not_issued", why),
        other => other.into(),
    })?;
    let file_name = format!("{}.pdf", notice.name);
    let bytes = tokio::task::spawn_blocking(move || crate::notice::pdf(&notice))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("typesetting document {name} of {id}: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}
