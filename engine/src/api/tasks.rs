//! `/tasks`: fetch-and-lock with fencing lock tokens and long polling, completion, lease
//! extension, release, failure with retries, listing.

use super::definitions::to_json;
use super::dto::*;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState, ErrorBody};
use crate::auth::Principal;
use crate::engine::{self, TaskFilter};
use axum::Extension;
use axum::extract::State;
use chrono::SecondsFormat;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// Most tasks one claim may return.
const MAX_CLAIM: u32 = 100;
/// Longest worker or queue name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 128;

/// Claim up to `max` tasks from the given queues, each locked for `lease_seconds` with a fresh
/// lock token. With `wait_seconds`, waits until a task is ready (answering as soon as one is)
/// or the time is up (then `tasks` is empty).
#[utoipa::path(post, path = "/tasks/claim", tag = "tasks", operation_id = "claim_tasks",
    request_body = ClaimBody,
    responses((status = 200, body = ClaimResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn claim(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Extension(credential): Extension<super::access::Credential>,
    Extension(super::access::AccessGeneration(mut generation)): Extension<
        super::access::AccessGeneration,
    >,
    ApiJson(body): ApiJson<ClaimBody>,
) -> Result<ApiJson<ClaimResponse>, ApiError> {
    let mut problems = Vec::new();
    if body.queues.is_empty() {
        problems.push(problem("queues", "name at least one queue"));
    }
    if body.worker.trim().is_empty() {
        problems.push(problem(
            "worker",
            "give the worker a name (it is recorded in the history)",
        ));
    }
    if let Some(why) = engine::text_problem(&body.worker, MAX_NAME_CHARS) {
        problems.push(problem("worker", &why));
    }
    for (i, queue) in body.queues.iter().enumerate() {
        if let Some(why) = engine::text_problem(queue, MAX_NAME_CHARS) {
            problems.push(problem(&format!("queues/{i}"), &why));
        }
    }
    if body.max == 0 || body.max > MAX_CLAIM {
        problems.push(problem(
            "max",
            &format!("must be between 1 and {MAX_CLAIM}"),
        ));
    }
    check_lease(&state, body.lease_seconds, &mut problems);
    let max_wait = state.config.max_wait.as_secs();
    if u64::from(body.wait_seconds) > max_wait {
        problems.push(problem(
            "wait_seconds",
            &format!("must be at most {max_wait}"),
        ));
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    if let Some(queue) = body.queues.iter().find(|q| !principal.holds_queue(q)) {
        return Err(ApiError::forbidden(format!(
            "{} may not claim from queue `{queue}`",
            principal.who()
        )));
    }
    let request = engine::ClaimRequest {
        queues: body.queues.clone(),
        org_units: (!principal.org_units.is_empty()).then(|| principal.org_units.clone()),
        // The principal claims (compared by who it is, not its name); the worker name is only
        // a label of the claim.
        actor: crate::actor::Actor::from(&principal),
        worker: Some(body.worker.clone()),
        max: body.max,
        lease: chrono::Duration::seconds(i64::from(body.lease_seconds)),
    };
    // Subscribe before the first look, so that a task created in between still wakes us.
    let mut created = state.engine.subscribe_tasks();
    let deadline = Instant::now() + Duration::from_secs(u64::from(body.wait_seconds));
    let mut waited = false;
    loop {
        // After a wait the token may have been revoked (or the session ended): it takes no task.
        if waited {
            super::access::still_valid(&state, &principal, &credential, &mut generation).await?;
        }
        waited = true;
        let claimed = state.engine.claim(request.clone()).await?;
        // A server that is stopping answers at once instead of holding the stop up.
        let stopping = *state.shutdown.borrow();
        if !claimed.is_empty() || Instant::now() >= deadline || stopping {
            let tasks = claimed
                .into_iter()
                .map(claimed_dto)
                .collect::<Result<_, _>>()?;
            return Ok(ApiJson(ClaimResponse { tasks }));
        }
        let next_look = deadline.min(Instant::now() + state.config.fallback_poll);
        loop {
            tokio::select! {
                received = created.recv() => match received {
                    Ok(queue) if body.queues.contains(&queue) => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        tokio::time::sleep_until(next_look).await;
                        break;
                    }
                },
                _ = tokio::time::sleep_until(next_look) => break,
                _ = state.shutting_down() => break,
            }
        }
    }
}

/// Claim one task by its id: a person taking the case in front of them, with the lease, lock
/// token and fencing of fetch-and-lock (`POST /tasks/claim`, which stays for automated
/// workers). The token must work the task's queue and organisation unit (403; a task of
/// another unit answers 404, as an unknown one). 409 when the task is claimed by someone
/// (its lease running) or not open, the message saying which.
#[utoipa::path(post, path = "/tasks/{id}/claim", tag = "tasks", operation_id = "claim_task",
    params(("id" = String, Path)),
    request_body = ClaimTaskBody,
    responses((status = 200, body = ClaimedTask), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn claim_one(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ClaimTaskBody>,
) -> Result<ApiJson<ClaimedTask>, ApiError> {
    let mut problems = Vec::new();
    check_lease(&state, body.lease_seconds, &mut problems);
    if let Some(why) = body
        .worker
        .as_deref()
        .and_then(|w| engine::text_problem(w, MAX_NAME_CHARS))
    {
        problems.push(problem("worker", &why));
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    check_task(&state, &principal, &id).await?;
    let claimed = state
        .engine
        .claim_task(engine::ClaimTaskRequest {
            task_id: id,
            // The principal claims; the worker label decides nothing.
            actor: crate::actor::Actor::from(&principal),
            worker: body.worker,
            lease: chrono::Duration::seconds(i64::from(body.lease_seconds)),
        })
        .await?;
    Ok(ApiJson(claimed_dto(claimed)?))
}

/// Complete a claimed task with an outcome and variables. 409 when the lock token is not the
/// current one (lease lost, or completed already); 422 with every problem when an outcome is
/// unknown or a variable is missing or mistyped (nothing changes then).
#[utoipa::path(post, path = "/tasks/{id}/complete", tag = "tasks", operation_id = "complete_task",
    params(("id" = String, Path)),
    request_body = CompleteBody,
    responses((status = 200, description = "the instance after the completion", body = engine::InstanceView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn complete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<ApiJson<engine::InstanceView>, ApiError> {
    let lock_token = match lock_token(&body.lock_token) {
        Ok(token) => token,
        // 404 or 403 before 409, as when the token reads.
        Err(refused) => {
            check_task(&state, &principal, &id).await?;
            return Err(refused);
        }
    };
    // Access is checked on the task as the completion locks it.
    let view = state
        .engine
        .complete(engine::CompleteRequest {
            task_id: id,
            lock_token,
            outcome: body.outcome,
            vars: body.variables,
            actor: crate::actor::Actor::from(&principal),
            access: Some(std::sync::Arc::new(principal)),
        })
        .await?;
    Ok(ApiJson(view))
}

/// Complete several claimed tasks in one request (a worker finishing what it claimed). Each
/// completion is its own event with its own result: the status `POST /tasks/{id}/complete`
/// would have answered (200, 403, 404, 409, 422) and, on 200, the task's instance briefly. A
/// refused completion changes nothing and does not hold up the others. The request as a
/// whole is refused (422) only when it holds no completion or more than 100.
#[utoipa::path(post, path = "/tasks/complete", tag = "tasks", operation_id = "complete_tasks",
    request_body = CompleteManyBody,
    responses((status = 200, body = CompleteManyResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn complete_many(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CompleteManyBody>,
) -> Result<ApiJson<CompleteManyResponse>, ApiError> {
    let count = body.completions.len();
    if count == 0 || count > MAX_CLAIM as usize {
        return Err(invalid(vec![problem(
            "completions",
            &format!("give between 1 and {MAX_CLAIM} completions (got {count})"),
        )]));
    }
    let ids: Vec<String> = body.completions.iter().map(|c| c.task_id.clone()).collect();
    // Access is checked on each task as its completion locks it (no read here); only a
    // completion whose lock token does not read is checked here, so that it answers 404 or
    // 403 before 409 as it would otherwise.
    let access = std::sync::Arc::new(principal.clone());
    // Per completion: `None` when it went to the engine, else why not.
    let mut results: Vec<Option<Result<engine::Completed, ApiError>>> = Vec::with_capacity(count);
    let mut requests = Vec::new();
    for item in body.completions {
        let task_id = item.task_id.clone();
        let body = item.completion();
        let checked = match lock_token(&body.lock_token) {
            Ok(token) => Ok(engine::CompleteRequest {
                task_id: task_id.clone(),
                lock_token: token,
                outcome: body.outcome,
                vars: body.variables,
                actor: crate::actor::Actor::from(&principal),
                access: Some(access.clone()),
            }),
            Err(conflict) => check_task(&state, &principal, &task_id)
                .await
                .and(Err(conflict)),
        };
        match checked {
            Ok(request) => {
                requests.push(request);
                results.push(None);
            }
            Err(refused) => results.push(Some(Err(refused))),
        }
    }
    let mut done = state.engine.complete_each(requests).await.into_iter();
    let mut answers = Vec::with_capacity(count);
    for (checked, task_id) in results.into_iter().zip(ids) {
        let answer = match checked.unwrap_or_else(|| match done.next() {
            Some(done) => done.map_err(ApiError::from),
            None => Err(ApiError::internal(
                "a completion of the batch got no answer",
            )),
        }) {
            Ok(completed) => CompletionResult {
                task_id,
                status: 200,
                instance: Some(CompletedInstance {
                    id: completed.instance_id,
                    status: completed.status.as_str().to_string(),
                    result: completed.result,
                }),
                error: None,
            },
            Err(refused) => refusal(&state, &principal, task_id, refused).await,
        };
        answers.push(answer);
    }
    Ok(ApiJson(CompleteManyResponse { results: answers }))
}

/// A completion's result when it was refused (or failed); a 403 is recorded as a refused call
/// (the request as a whole answers 200).
async fn refusal(
    state: &ApiState,
    principal: &Principal,
    task_id: String,
    error: ApiError,
) -> CompletionResult {
    if let ApiError::Internal { cause } = &error {
        tracing::error!("a completion of {task_id} failed: {cause}");
    }
    if error.status() == axum::http::StatusCode::FORBIDDEN {
        super::access::record_refusal(state, principal, "POST", "/api/v1/tasks/complete", &error)
            .await;
    }
    CompletionResult {
        task_id,
        status: error.status().as_u16(),
        instance: None,
        error: Some(error.body().error),
    }
}

/// Extend the lease of a claimed task.
#[utoipa::path(post, path = "/tasks/{id}/extend", tag = "tasks", operation_id = "extend_task",
    params(("id" = String, Path)),
    request_body = ExtendBody,
    responses((status = 200, body = ExtendResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn extend(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<ApiJson<ExtendResponse>, ApiError> {
    let mut problems = Vec::new();
    check_lease(&state, body.lease_seconds, &mut problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    check_task(&state, &principal, &id).await?;
    let lock_token = lock_token(&body.lock_token)?;
    let claimed = state
        .engine
        .extend(
            &id,
            lock_token,
            chrono::Duration::seconds(i64::from(body.lease_seconds)),
            crate::actor::Actor::from(&principal),
        )
        .await?;
    Ok(ApiJson(ExtendResponse {
        lock_token: claimed.lock_token.to_string(),
        lease_expires_at: claimed
            .lock_expires_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    }))
}

/// Give a claimed task back unfinished: it is claimable again at once.
#[utoipa::path(post, path = "/tasks/{id}/release", tag = "tasks", operation_id = "release_task",
    params(("id" = String, Path)),
    request_body = ReleaseBody,
    responses((status = 200, body = Released), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn release(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<ApiJson<Released>, ApiError> {
    check_task(&state, &principal, &id).await?;
    let lock_token = lock_token(&body.lock_token)?;
    state
        .engine
        .release(&id, lock_token, crate::actor::Actor::from(&principal))
        .await?;
    Ok(ApiJson(Released { released: id }))
}

/// An automated worker could not do the task: it is retried with back-off, and after the last
/// attempt it becomes an incident on its instance (resolved by an operator).
#[utoipa::path(post, path = "/tasks/{id}/fail", tag = "tasks", operation_id = "fail_task",
    params(("id" = String, Path)),
    request_body = FailBody,
    responses((status = 200, body = FailResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn fail(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FailBody>,
) -> Result<ApiJson<FailResponse>, ApiError> {
    let task = check_task(&state, &principal, &id).await?;
    let lock_token = lock_token(&body.lock_token)?;
    let attempts = u32::try_from(task.failures).unwrap_or(0).saturating_add(1);
    let retry_after = (attempts < state.config.max_attempts).then(|| {
        let factor = 2u32.saturating_pow(attempts - 1);
        state.config.retry_backoff.saturating_mul(factor)
    });
    let now = state.engine.clock().now();
    state
        .engine
        .fail(engine::FailRequest {
            task_id: id,
            lock_token,
            error: body.error,
            retry_after: retry_after.and_then(|d| chrono::Duration::from_std(d).ok()),
            actor: crate::actor::Actor::from(&principal),
        })
        .await?;
    Ok(ApiJson(match retry_after {
        Some(after) => FailResponse {
            state: "retry".into(),
            retry_at: chrono::Duration::from_std(after)
                .ok()
                .map(|d| (now + d).to_rfc3339_opts(SecondsFormat::Millis, true)),
            attempts,
        },
        None => FailResponse {
            state: "incident".into(),
            retry_at: None,
            attempts,
        },
    }))
}

/// Tasks of a queue, newest first. Without `queue`: every queue of the token.
#[utoipa::path(get, path = "/tasks", tag = "tasks", operation_id = "list_tasks",
    params(TaskListQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<TaskListQuery>,
) -> Result<ApiJson<TaskList>, ApiError> {
    let queues = match &query.queue {
        Some(queue) if !principal.holds_queue(queue) && !principal.is_overseer() => {
            return Err(ApiError::forbidden(format!(
                "{} may not see queue `{queue}`",
                principal.who()
            )));
        }
        Some(queue) => Some(vec![queue.clone()]),
        None if principal.is_overseer() => None,
        None => Some(principal.named_roles().map(str::to_string).collect()),
    };
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(text) => Some(engine::TaskState::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown task state `{text}`: use open, claimed, completed, failed or cancelled"
            ))
        })?),
    };
    let tasks = state
        .engine
        .tasks(TaskFilter {
            queues,
            org_units: (!principal.org_units.is_empty()).then(|| principal.org_units.clone()),
            state: state_filter,
            instance: None,
            limit: Some(query.limit.unwrap_or(100).min(1000)),
        })
        .await?;
    let tasks = tasks.iter().map(to_json).collect::<Result<_, _>>()?;
    Ok(ApiJson(TaskList { tasks }))
}

/// The task, if this caller may work it (404 for a task of another unit, 403 for one of its
/// units it may not work): the API's routes and the workbench's task pages.
pub(crate) async fn check_task(
    state: &ApiState,
    principal: &Principal,
    id: &str,
) -> Result<engine::TaskView, ApiError> {
    let task = state.engine.task(id).await?;
    if principal.works_queue(&task.queue, task.org_unit.as_deref()) {
        Ok(task)
    } else {
        Err(forbidden_task(principal, &task))
    }
}

/// 403 for a task of the token's units that it may not work; a task of another unit is
/// answered as unknown (404), so that its id is not confirmed.
fn forbidden_task(principal: &Principal, task: &engine::TaskView) -> ApiError {
    if !principal.sees_unit(task.org_unit.as_deref()) {
        return ApiError::not_found(format!("task {} not found", task.id));
    }
    ApiError::forbidden(principal.may_not_work(&task.id, &task.queue))
}

fn check_lease(state: &ApiState, lease_seconds: u32, problems: &mut Vec<serde_json::Value>) {
    let max = state.config.max_lease_seconds;
    if lease_seconds == 0 || lease_seconds > max {
        problems.push(problem(
            "lease_seconds",
            &format!("must be between 1 and {max}"),
        ));
    }
}

fn lock_token(text: &str) -> Result<i64, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::conflict(
            "conflict",
            format!("lock token `{text}` is not one this server issued; claim the task again"),
        )
    })
}

fn problem(field: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "field": field, "message": message })
}

fn invalid(problems: Vec<serde_json::Value>) -> ApiError {
    let message = problems
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["field"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::unprocessable(
        "invalid_request",
        message,
        serde_json::json!({ "problems": problems }),
    )
}

fn claimed_dto(claimed: engine::ClaimedTask) -> Result<ClaimedTask, ApiError> {
    let task = claimed.task;
    Ok(ClaimedTask {
        id: task.id,
        instance_id: task.instance_id,
        process: claimed.process,
        node: task.node,
        label: task.label,
        queue: task.queue,
        org_unit: task.org_unit,
        lock_token: claimed.lock_token.to_string(),
        lease_expires_at: claimed
            .lock_expires_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        outcomes: claimed.outcomes,
        fields: claimed
            .fields
            .into_iter()
            .map(|f| TaskField {
                name: f.name,
                ty: f.ty,
                required: f.required,
                label: f.label,
            })
            .collect(),
        variables: claimed.vars,
        item: task.item,
        attempts: u32::try_from(task.failures).unwrap_or(0),
    })
}
