//! What callers hand the engine and what it answers: the requests (deploy, start, claim,
//! complete, fail, list tasks) and the views of deployments, instances, tasks, documents and
//! deliveries, with the conversions from the stored rows.

use super::time;
use crate::auth::Principal;
use crate::error::Result;
use crate::runtime::state::Status;
use crate::store::{DeploymentRow, InstanceRow, OutboxRow, TaskRow};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use yimen_dsl::model::Process;

/// How to open the database.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `sqlite:path`, `sqlite::memory:`, `postgres://…`.
    pub url: String,
    /// PostgreSQL only: schema to work in (created if missing). Tests isolate themselves so.
    pub pg_schema: Option<String>,
}

/// A process to deploy: its source, path, and related files (configuration YAML, templates).
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    pub file: String,
    pub source: String,
    pub files: BTreeMap<String, String>,
    /// An already compiled and checked model (tests, tools). `None`: compile `source`.
    pub model: Option<Process>,
}

/// A stored deployment version.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Deployment {
    pub key: String,
    pub version: i64,
    pub hash: String,
    pub title: String,
    /// `false` when identical source was already deployed (this is that version).
    pub created: bool,
    pub created_at: DateTime<Utc>,
    /// The highest deployed version of this process: the one new cases start on. Deploying a
    /// file identical to an older version answers that older version with the newer one here.
    pub latest_version: i64,
}

/// A deployment with its source and model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeploymentDetail {
    pub deployment: Deployment,
    pub source: String,
    /// The checked model (`yimen_dsl::model::Process`).
    #[schema(value_type = Object)]
    pub model: Process,
}

#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub process: String,
    pub business_key: Option<String>,
    pub vars: Map<String, Json>,
    /// Who starts: the authenticated caller (the API's principal), recorded in the history
    /// and on the instance (`assignee started_by`).
    pub actor: crate::actor::Actor,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Queue names: a role, or `role:key` for keyed roles.
    pub queues: Vec<String>,
    /// Only tasks of these organisation units (plus tasks without one); `None`: all.
    pub org_units: Option<Vec<String>>,
    /// Who claims: the authenticated caller (a token or a person; a name given by the
    /// engine's own callers). It holds the claim, is recorded in the history, and is who a
    /// task's assignee (`assignee started_by`, `assignee completed_by(..)`) is compared with:
    /// by its key ([`crate::actor::Actor::key`]), so two people of one name are two.
    pub actor: crate::actor::Actor,
    /// The label of the automated worker that claims, recorded beside the claim; it decides
    /// nothing.
    pub worker: Option<String>,
    pub max: u32,
    pub lease: Duration,
}

/// A claim of one task by its id: a person taking the case in front of them.
#[derive(Debug, Clone)]
pub struct ClaimTaskRequest {
    pub task_id: String,
    /// Who claims: the authenticated caller, as in [`ClaimRequest::actor`].
    pub actor: crate::actor::Actor,
    /// A label recorded beside the claim, as in [`ClaimRequest::worker`].
    pub worker: Option<String>,
    pub lease: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct CompleteRequest {
    pub task_id: String,
    pub lock_token: i64,
    pub outcome: Option<String>,
    pub vars: Map<String, Json>,
    /// Who completes (the engine's own callers); with `access`, the principal acts.
    pub actor: crate::actor::Actor,
    /// Whose completion this is, checked on the task row as the completion locks it (no read
    /// of its own): a task outside the token's queues or organisation units, or claimed by another
    /// caller, is refused (403) and nothing changes; the token acts. `None`: no check,
    /// `actor` acts (the engine's own callers).
    pub access: Option<Arc<Principal>>,
}

#[derive(Debug, Clone, Default)]
pub struct FailRequest {
    pub task_id: String,
    pub lock_token: i64,
    pub error: String,
    /// Claimable again after this long; `None`: no more retries, an incident on the instance.
    pub retry_after: Option<Duration>,
    /// Who fails the task: the claim's holder.
    pub actor: crate::actor::Actor,
}

/// Task states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Open,
    Claimed,
    Completed,
    Cancelled,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::Claimed => "claimed",
            TaskState::Completed => "completed",
            TaskState::Cancelled => "cancelled",
            TaskState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "open" => TaskState::Open,
            "claimed" => TaskState::Claimed,
            "completed" => TaskState::Completed,
            "cancelled" => TaskState::Cancelled,
            "failed" => TaskState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub queues: Option<Vec<String>>,
    pub org_units: Option<Vec<String>>,
    pub state: Option<TaskState>,
    pub instance: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TaskView {
    pub id: String,
    pub instance_id: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    pub org_unit: Option<String>,
    pub state: TaskState,
    /// Who holds the claim (the caller that claimed), by name: for people to read.
    pub locked_by: Option<String>,
    /// Who holds the claim, by identity: `user:<id>`, `token:<id>` (`engine:<name>` for the
    /// engine's own callers); absent for a claim made before identities were recorded. For
    /// machines: names are not unique.
    pub locked_by_key: Option<String>,
    /// The worker label the claim gave.
    pub worker: Option<String>,
    pub lock_expires_at: Option<DateTime<Utc>>,
    /// Who alone may claim the task (`assignee started_by`, …), by name.
    pub assignee: Option<String>,
    /// The assignee by identity, as `locked_by_key`; what a claim is compared with (absent:
    /// an assignee an expression names, or one recorded before identities, compared by name).
    pub assignee_key: Option<String>,
    /// The element of a for-each task.
    #[schema(value_type = Option<Object>)]
    pub item: Option<Json>,
    pub outcome: Option<String>,
    pub completed_by: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A field the completing worker sets.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldView {
    pub name: String,
    pub ty: String,
    pub required: bool,
    pub label: Option<String>,
}

/// A claimed task with what the worker needs to do it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClaimedTask {
    pub task: TaskView,
    pub lock_token: i64,
    pub lock_expires_at: DateTime<Utc>,
    pub process: String,
    /// Case data, unmasked: the worker handles the case.
    pub vars: Map<String, Json>,
    pub outcomes: Vec<String>,
    pub fields: Vec<FieldView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct TimerView {
    pub id: String,
    pub kind: String,
    pub node: String,
    pub task_id: Option<String>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub process: String,
    pub version: i64,
    pub business_key: Option<String>,
    pub status: Status,
    pub result: Option<String>,
    pub incident: Option<String>,
    /// Case data with personal data masked.
    #[schema(value_type = Object)]
    pub vars: Map<String, Json>,
    /// Nodes with a waiting token.
    pub active_nodes: Vec<String>,
    /// Open and claimed tasks.
    pub tasks: Vec<TaskView>,
    /// Pending timers.
    pub timers: Vec<TimerView>,
    /// Some due date was computed without holiday data; it will be recomputed.
    pub provisional_due: bool,
    /// The case that started this one with a `call` (a linked case), and its calling node.
    pub parent_id: Option<String>,
    pub parent_node: Option<String>,
    /// The linked cases this one started, one per `call` node that ran (its latest run).
    pub children: Vec<ChildLink>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `start` found an instance with the same business key and returned it.
    pub existing: bool,
}

/// A linked case an instance started with a `call` node.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ChildLink {
    /// The `call` node that started it.
    pub node: String,
    /// The process it is an instance of.
    pub process: String,
    pub instance_id: String,
}

/// A task completion's answer in a batch: its instance afterwards, briefly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Completed {
    pub instance_id: String,
    pub status: Status,
    pub result: Option<String>,
}

impl Completed {
    pub(crate) fn of(row: &InstanceRow) -> Result<Completed> {
        Ok(Completed {
            instance_id: row.id.clone(),
            status: row.status,
            result: row.result.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Document {
    pub id: String,
    pub name: String,
    pub label: Option<String>,
    pub public: bool,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxMessage {
    pub id: String,
    pub instance_id: String,
    /// `role:<queue>`, `subject`, `holder`, `webhook:<channel>`.
    pub channel: String,
    pub dedup_key: String,
    pub payload: Json,
    pub attempts: i64,
    pub state: crate::store::OutboxState,
    pub last_error: Option<String>,
    /// When a pending row is tried next (while claimed: when its claim runs out).
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub(super) fn deployment_view(r: &DeploymentRow, created: bool, latest_version: i64) -> Deployment {
    Deployment {
        latest_version,
        key: r.key.clone(),
        version: r.version,
        hash: r.hash.clone(),
        title: r.title.clone(),
        created,
        created_at: time(r.created_at),
    }
}

pub(super) fn task_view(t: TaskRow) -> TaskView {
    TaskView {
        state: t.state,
        item: t.item.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        lock_expires_at: t.lock_expires_at.map(time),
        due_at: t.due_at.map(time),
        created_at: time(t.created_at),
        completed_at: t.completed_at.map(time),
        id: t.id,
        instance_id: t.instance_id,
        node: t.node,
        label: t.label,
        queue: t.queue,
        org_unit: t.org_unit,
        locked_by: t.locked_by,
        locked_by_key: t.locked_by_key,
        worker: t.worker,
        assignee: t.assignee,
        assignee_key: t.assignee_key,
        outcome: t.outcome,
        completed_by: t.completed_by,
        failures: t.failures,
        last_error: t.last_error,
    }
}

pub(super) fn outbox_view(o: OutboxRow) -> OutboxMessage {
    OutboxMessage {
        payload: serde_json::from_str(&o.payload).unwrap_or(Json::Null),
        created_at: time(o.created_at),
        delivered_at: o.delivered_at.map(time),
        next_attempt_at: time(o.next_attempt_at),
        id: o.id,
        instance_id: o.instance_id,
        channel: o.channel,
        dedup_key: o.dedup_key,
        attempts: o.attempts,
        state: o.state,
        last_error: o.last_error,
    }
}
