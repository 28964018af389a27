//! Wire types of the task-queue part of the API (`/api/v1/tasks/...`), as a worker sees them.
//! Identifiers and lock tokens are opaque strings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /api/v1/tasks/claim`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimRequest {
    pub queues: Vec<String>,
    pub worker: String,
    pub max: u32,
    pub lease_seconds: u32,
    /// Long poll: wait up to this long for a task to become ready (0 = answer at once).
    pub wait_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimResponse {
    pub tasks: Vec<ClaimedTask>,
}

/// A task the worker now holds, with the fencing token every later call must carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClaimedTask {
    pub id: String,
    pub instance_id: String,
    pub process: String,
    pub node: String,
    #[serde(default)]
    pub label: Option<String>,
    pub queue: String,
    /// Organisation unit (street) of the case, for scoped queues.
    #[serde(default)]
    pub org_unit: Option<String>,
    pub lock_token: String,
    pub lease_expires_at: String,
    /// Outcome keys the completion may choose from.
    #[serde(default)]
    pub outcomes: Vec<String>,
    /// Variables the completion must or may set.
    #[serde(default)]
    pub fields: Vec<TaskField>,
    /// The element of a for-each task.
    #[serde(default)]
    pub item: Option<Value>,
    /// Case data the worker needs.
    #[serde(default)]
    pub variables: Map<String, Value>,
    /// How many times this task failed before.
    #[serde(default)]
    pub attempts: u32,
}

/// A variable a completion sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskField {
    pub name: String,
    /// `text`, `integer`, `decimal`, `boolean`, `date`, `list<...>`, an enum name ...
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
    #[serde(default)]
    pub label: Option<String>,
}

/// `POST /api/v1/tasks/{id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompleteRequest {
    pub lock_token: String,
    pub outcome: String,
    #[serde(default)]
    pub variables: Map<String, Value>,
}

/// One completion of `POST /api/v1/tasks/complete` (several tasks in one request).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Completion {
    pub task_id: String,
    #[serde(flatten)]
    pub completion: CompleteRequest,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CompleteManyRequest<'a> {
    pub completions: &'a [Completion],
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CompleteManyResponse {
    pub results: Vec<CompletionResult>,
}

/// What became of one completion of a batch: `status` is what the single-task call would have
/// answered (200, else 403, 404, 409 or 422 with `error`, and nothing of it changed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompletionResult {
    pub task_id: String,
    pub status: u16,
    #[serde(default)]
    pub instance: Option<CompletedInstance>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// The instance of a completed task afterwards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompletedInstance {
    pub id: String,
    /// `running`, `completed`, `cancelled` or `incident`.
    pub status: String,
    #[serde(default)]
    pub result: Option<String>,
}

/// `POST /api/v1/tasks/{id}/extend`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtendRequest {
    pub lock_token: String,
    pub lease_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtendResponse {
    pub lease_expires_at: String,
}

/// `POST /api/v1/tasks/{id}/release`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseRequest {
    pub lock_token: String,
}

/// `POST /api/v1/tasks/{id}/fail`: an automated worker could not do the task. The server
/// retries it with back-off, then raises an incident on the instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailRequest {
    pub lock_token: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailResponse {
    /// `retry` (claimable again at `retry_at`) or `incident`.
    pub state: String,
    #[serde(default)]
    pub retry_at: Option<String>,
    pub attempts: u32,
}

/// What a handler decided: the outcome and the variables it sets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskResult {
    pub outcome: String,
    #[serde(default)]
    pub variables: Map<String, Value>,
}
