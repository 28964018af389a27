//! Claims: fetch-and-lock of open tasks, the claim of one task by its id, what a claimed task
//! shows its worker, and the lock checks every later call on the task passes (extend,
//! release, complete, fail).

use super::{
    ClaimRequest, ClaimTaskRequest, ClaimedTask, Engine, FieldView, TaskView, claim_entry, ms,
    task_view, time,
};
use crate::TaskState;
use crate::actor::Actor;
use crate::error::{EngineError, Problem, Result};
use crate::store::json_list;
use crate::store::port::*;
use crate::store::{ClaimQuery, InstanceRow, TaskRow};
use chrono::Duration;
use serde_json::json;
use yimen_dsl::model::NodeKind;

impl Engine {
    /// Fetch-and-lock up to `max` tasks of the queues for `lease`.
    pub async fn claim(&self, req: ClaimRequest) -> Result<Vec<ClaimedTask>> {
        let mut problems = Vec::new();
        if req.queues.is_empty() {
            problems.push(Problem::new("queues", "name at least one queue"));
        }
        if req.actor.name.trim().is_empty() {
            problems.push(Problem::new("actor", "is required"));
        }
        if req.max == 0 || req.max > 1000 {
            problems.push(Problem::new("max", "must be between 1 and 1000"));
        }
        if req.lease <= Duration::zero() || req.lease > Duration::days(7) {
            problems.push(Problem::new("lease", "must be between 1 second and 7 days"));
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let now = self.now();
        let q = ClaimQuery {
            actor: req.actor.name.clone(),
            actor_key: req.actor.key().unwrap_or_default(),
            worker: req
                .worker
                .as_deref()
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string),
            queues: json_list(&req.queues),
            org_units: req.org_units.as_ref().map(json_list),
            now: ms(now),
            expires_at: ms(now + req.lease),
            max: i64::from(req.max),
            task: None,
        };
        self.committer().claim(self, q).await
    }

    /// Claims the task `req.task_id` for `req.lease`, with the lease, lock token and fencing of
    /// fetch-and-lock ([`Engine::claim`]), in the committer's next batch. The caller's access
    /// to the task is checked before (its queue and organisation unit). 404 for an unknown
    /// task; 403 for one assigned to another caller; 409 when it is claimed by someone (its
    /// lease running) or not open, the message saying which.
    pub async fn claim_task(&self, req: ClaimTaskRequest) -> Result<ClaimedTask> {
        let mut problems = Vec::new();
        if req.actor.name.trim().is_empty() {
            problems.push(Problem::new("actor", "is required"));
        }
        if req.lease <= Duration::zero() || req.lease > Duration::days(7) {
            problems.push(Problem::new("lease", "must be between 1 second and 7 days"));
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        // A row another transaction holds (its case moving on, or another claim of it) is
        // skipped, as fetch-and-lock skips it; while the task then still reads claimable, the
        // claim is tried again, a little later each time.
        for attempt in 1..=CLAIM_ATTEMPTS {
            let now = self.now();
            let q = ClaimQuery {
                actor: req.actor.name.clone(),
                actor_key: req.actor.key().unwrap_or_default(),
                worker: req
                    .worker
                    .as_deref()
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .map(str::to_string),
                queues: "[]".into(),
                org_units: None,
                now: ms(now),
                expires_at: ms(now + req.lease),
                max: 1,
                task: Some(req.task_id.clone()),
            };
            if let Some(claimed) = self.committer().claim(self, q).await?.pop() {
                return Ok(claimed);
            }
            let task = self
                .inner
                .store
                .task(&req.task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {}", req.task_id)))?;
            if let Some(refused) = not_claimable(&task, &req.actor, ms(now)) {
                // Assigned to another, whose tasks a reassignment hands the caller: claimable
                // (the claim met a row held by another transaction).
                let forbidden = matches!(refused, EngineError::Forbidden { .. });
                if !forbidden || !self.handed_over(&task, &req.actor, ms(now)).await? {
                    return Err(refused);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
        }
        Err(EngineError::conflict(format!(
            "task {} is being changed by another request right now; claim it again in a moment",
            req.task_id
        )))
    }

    /// Does a reassignment hand `actor` the tasks of `task`'s assignee at `now` (the claim
    /// statements' condition, `store::reassignments`)?
    async fn handed_over(&self, task: &TaskRow, actor: &Actor, now: i64) -> Result<bool> {
        let (Some(from), Some(unit), Some(to)) = (&task.assignee_key, &task.org_unit, actor.key())
        else {
            return Ok(false);
        };
        self.reassignments()
            .holds(&to, from, unit, &task.queue, now)
            .await
    }

    async fn claimed(&self, t: TaskRow) -> Result<ClaimedTask> {
        let inst = self
            .inner
            .store
            .instance(&t.instance_id)
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!("instance {} is missing", t.instance_id))
            })?;
        self.claimed_with(t, &inst).await
    }

    pub(crate) async fn claimed_with(&self, t: TaskRow, inst: &InstanceRow) -> Result<ClaimedTask> {
        let loaded = self.loaded_by_key(&inst.process_key, inst.version).await?;
        let (outcomes, fields) = match loaded
            .model
            .nodes
            .iter()
            .find(|n| n.id.name == t.node)
            .map(|n| &n.kind)
        {
            Some(NodeKind::Task(spec)) => {
                let mut names: Vec<(String, bool)> = spec
                    .fields
                    .iter()
                    .map(|f| (f.var.name.clone(), f.required))
                    .collect();
                for o in &spec.outcomes {
                    for r in &o.requires {
                        if !names.iter().any(|(n, _)| n == &r.name) {
                            names.push((r.name.clone(), false));
                        }
                    }
                }
                let fields = names
                    .into_iter()
                    .map(|(name, required)| {
                        let decl = loaded.model.vars.iter().find(|v| v.name.name == name);
                        FieldView {
                            ty: decl
                                .map(|d| yimen_dsl::value::type_name(&d.ty))
                                .unwrap_or_default(),
                            label: decl.and_then(|d| d.label.clone()),
                            name,
                            required,
                        }
                    })
                    .collect();
                (
                    spec.outcomes.iter().map(|o| o.key.name.clone()).collect(),
                    fields,
                )
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(ClaimedTask {
            lock_token: t.lock_token,
            lock_expires_at: time(t.lock_expires_at.unwrap_or_default()),
            process: inst.process_key.clone(),
            vars: (*inst.vars).clone(),
            outcomes,
            fields,
            task: task_view(t),
        })
    }

    /// Checks that the claim of `task` is held by `caller` (by key; by name a claim recorded
    /// without one): only the caller that claimed a task (the holder `assignee` was checked
    /// against) may complete, extend, release or fail it, whoever knows its lock token. 403
    /// otherwise.
    pub(super) fn check_holder(task: &TaskRow, caller: &Actor) -> Result<()> {
        match not_holder(task, caller) {
            Some(why) => Err(EngineError::Forbidden { why }),
            None => Ok(()),
        }
    }

    /// Checks that `task` is claimed under `token`; says why not.
    pub(super) fn check_lock(task: &TaskRow, token: i64) -> Result<()> {
        match task.state {
            TaskState::Claimed if task.lock_token == token => Ok(()),
            TaskState::Claimed => Err(EngineError::conflict(format!(
                "lock token {token} is stale: task {} was claimed again (current token {}); claim it anew",
                task.id, task.lock_token
            ))),
            TaskState::Completed if task.lock_token == token => {
                Err(EngineError::AlreadyCompleted {
                    why: format!(
                        "task {} was already completed with this lock token{}{}: the completion was applied once, nothing was done again",
                        task.id,
                        task.outcome
                            .as_deref()
                            .map(|o| format!(" (outcome {o})"))
                            .unwrap_or_default(),
                        task.completed_by
                            .as_deref()
                            .map(|w| format!(" by {w}"))
                            .unwrap_or_default()
                    ),
                })
            }
            TaskState::Completed => Err(EngineError::conflict(format!(
                "task {} is already completed{}",
                task.id,
                task.completed_by
                    .as_deref()
                    .map(|w| format!(" by {w}"))
                    .unwrap_or_default()
            ))),
            TaskState::Cancelled => Err(EngineError::conflict(format!(
                "task {} was cancelled: its case moved on or ended",
                task.id
            ))),
            TaskState::Failed => Err(EngineError::conflict(format!(
                "task {} failed; an operator must resolve the incident first",
                task.id
            ))),
            TaskState::Open => Err(EngineError::conflict(format!(
                "task {} is not claimed (its lease may have run out and been released); claim it first",
                task.id
            ))),
        }
    }

    /// Extends the lease of a claimed task held by `caller`.
    pub async fn extend(
        &self,
        task_id: &str,
        lock_token: i64,
        lease: Duration,
        caller: impl Into<Actor>,
    ) -> Result<ClaimedTask> {
        let caller: Actor = caller.into();
        if lease <= Duration::zero() || lease > Duration::days(7) {
            return Err(EngineError::invalid(
                "lease",
                "must be between 1 second and 7 days",
            ));
        }
        let task = transaction!(self, |tx, _fx| {
            let mut task = tx
                .lock_task(task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {task_id}")))?;
            Engine::check_lock(&task, lock_token)?;
            Engine::check_holder(&task, &caller)?;
            task.lock_expires_at = Some(ms(self.now() + lease));
            tx.update_task(&task).await?;
            task
        })?;
        self.claimed(task).await
    }

    /// Gives a claimed task back to its queue (`actor`: the caller, who must hold the claim).
    pub async fn release(
        &self,
        task_id: &str,
        lock_token: i64,
        actor: impl Into<Actor>,
    ) -> Result<TaskView> {
        let actor: Actor = actor.into();
        let task = transaction!(self, |tx, fx| {
            let mut task = tx
                .lock_task(task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {task_id}")))?;
            Engine::check_lock(&task, lock_token)?;
            Engine::check_holder(&task, &actor)?;
            let claim = claim_entry(&task, Some(&actor));
            task.state = TaskState::Open;
            task.locked_by = None;
            task.locked_by_key = None;
            task.worker = None;
            task.lock_expires_at = None;
            task.available_at = ms(self.now());
            tx.update_task(&task).await?;
            let released = self.entry_now(
                &actor,
                &task.node,
                "task_released",
                format!("{} released by {}", task.node, actor.name),
                json!({ "task": task.id }),
            );
            let entries = claim.into_iter().chain([released]).collect();
            self.note(&mut tx, &task.instance_id, entries).await?;
            fx.queues.push(task.queue.clone());
            task
        })?;
        Ok(task_view(task))
    }
}

/// Tries of [`Engine::claim_task`] while the task reads claimable but another transaction
/// holds its row.
const CLAIM_ATTEMPTS: u64 = 5;

/// Why `actor` cannot claim `task` at `now` (unix millis); `None` when it reads claimable (its
/// row was held by another transaction).
fn not_claimable(task: &TaskRow, actor: &Actor, now: i64) -> Option<EngineError> {
    let id = &task.id;
    let until = |at: Option<i64>| {
        at.map(|at| time(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    Some(match task.state {
        TaskState::Claimed if task.lock_expires_at.is_some_and(|at| at <= now) => return None,
        TaskState::Claimed
            if task
                .locked_by
                .as_deref()
                .is_some_and(|by| actor.is(by, task.locked_by_key.as_deref())) =>
        {
            EngineError::conflict(format!(
                "task {id} is already claimed by you (`{}`) until {}: finish it with the \
                 lock token of that claim, or release it",
                actor.name,
                until(task.lock_expires_at)
            ))
        }
        TaskState::Claimed => EngineError::conflict(format!(
            "task {id} is already claimed by `{}` until {}; it can be claimed when they release \
             it or their lease runs out",
            task.locked_by.as_deref().unwrap_or("another caller"),
            until(task.lock_expires_at)
        )),
        TaskState::Open => match &task.assignee {
            Some(assignee) if !actor.is(assignee, task.assignee_key.as_deref()) => {
                EngineError::Forbidden {
                    why: assigned_elsewhere(task, assignee, actor),
                }
            }
            _ if task.available_at > now => EngineError::conflict(format!(
                "task {id} waits to be tried again until {}; claim it then",
                until(Some(task.available_at))
            )),
            _ => return None,
        },
        TaskState::Completed => EngineError::conflict(format!(
            "task {id} is already completed{}: only an open task can be claimed",
            task.completed_by
                .as_deref()
                .map(|w| format!(" by `{w}`"))
                .unwrap_or_default()
        )),
        TaskState::Cancelled => EngineError::conflict(format!(
            "task {id} was cancelled (its case moved on or ended): only an open task can be claimed"
        )),
        TaskState::Failed => EngineError::conflict(format!(
            "task {id} failed; an operator must resolve the incident before it can be claimed"
        )),
    })
}

/// Why `actor` may not claim `task`, assigned to `assignee`: the message names both, and says
/// when the one refused bears the assignee's name (another person of that name, or a token).
fn assigned_elsewhere(task: &TaskRow, assignee: &str, actor: &Actor) -> String {
    let id = &task.id;
    if assignee == actor.name {
        format!(
            "task {id} is assigned to another `{assignee}` ({}), not to you ({}): only they may \
             claim it",
            task.assignee_key.as_deref().unwrap_or("unknown"),
            actor.key().unwrap_or_default()
        )
    } else {
        format!("task {id} is assigned to `{assignee}`: only they may claim it")
    }
}

/// Why `caller` may not finish (complete, extend, release, fail) `task`: its claim is another
/// caller's (compared by key; by name a claim recorded without one). `None` when it may (or the
/// task is not claimed: the lock says why not).
pub(crate) fn not_holder(task: &TaskRow, caller: &Actor) -> Option<String> {
    let id = &task.id;
    match task.locked_by.as_deref() {
        Some(holder)
            if task.state == TaskState::Claimed
                && !caller.is(holder, task.locked_by_key.as_deref()) =>
        {
            let whose = if holder == caller.name {
                format!(
                    " (another `{holder}`: {})",
                    task.locked_by_key.as_deref().unwrap_or("unknown")
                )
            } else {
                String::new()
            };
            Some(format!(
                "task {id} is claimed by `{holder}`{whose}: only the caller that claimed it may \
                 finish it, not `{}`; claim a task yourself",
                caller.name
            ))
        }
        _ => None,
    }
}
