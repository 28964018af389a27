//! `/definitions`: deploy process files and read them back.

use super::dto::{DefinitionList, DeployBody, VersionQuery};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::engine::{DeployRequest, Deployment, DeploymentDetail};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

/// Deploy a process. Identical source deploys nothing and answers the existing version (200);
/// a new version answers 201. A process that does not check answers 422 with the checker's
/// diagnostics in `details.diagnostics`.
#[utoipa::path(post, path = "/definitions", tag = "definitions", operation_id = "deploy",
    request_body = DeployBody,
    responses(
        (status = 201, description = "deployed a new version", body = Deployment),
        (status = 200, description = "identical source: the existing version", body = Deployment),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "checker diagnostics, or a body without the fields", body = ErrorBody),
    ))]
pub(super) async fn deploy(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<DeployBody>,
) -> Result<(StatusCode, ApiJson<Deployment>), ApiError> {
    if !principal.is_admin() {
        return Err(ApiError::forbidden(
            "only an admin token may deploy processes",
        ));
    }
    let file = body.file.unwrap_or_else(|| "process.flow".to_string());
    let deployment = state
        .engine
        .deploy(DeployRequest {
            file,
            source: body.source,
            files: body.files,
            model: None,
        })
        .await?;
    let status = if deployment.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(deployment)))
}

/// Every deployed process version.
#[utoipa::path(get, path = "/definitions", tag = "definitions", operation_id = "list_definitions",
    responses((status = 200, body = DefinitionList), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
) -> Result<ApiJson<DefinitionList>, ApiError> {
    let definitions = state.engine.definitions().await?;
    Ok(ApiJson(DefinitionList { definitions }))
}

/// One process: its source and compiled model (latest version unless `version` is given).
#[utoipa::path(get, path = "/definitions/{key}", tag = "definitions", operation_id = "get_definition",
    params(("key" = String, Path, description = "process key"), VersionQuery),
    responses((status = 200, body = DeploymentDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<ApiState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(query): ApiQuery<VersionQuery>,
) -> Result<ApiJson<DeploymentDetail>, ApiError> {
    let detail = state.engine.definition(&key, query.version).await?;
    Ok(ApiJson(detail))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}
