//! Completing a claimed task (alone, or many sharing the committers' transactions), and
//! reporting a worker's failure.

use super::{
    CompleteRequest, Completed, Effects, Engine, FailRequest, InstanceView, TaskView, chain,
    claim_entry, ms, task_view,
};
use crate::TaskState;
use crate::actor::Actor;
use crate::error::{EngineError, Result};
use crate::runtime::state::Status;
use crate::runtime::{Event, TaskRef};
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{TaskRow, Tx};
use chrono::Duration;
use serde_json::json;
use yimen_dsl::model::NodeKind;

impl Engine {
    /// Completes a claimed task with an outcome and variables. 422 lists every problem and
    /// changes nothing; 409 says why the token is not good.
    pub async fn complete(&self, req: CompleteRequest) -> Result<InstanceView> {
        self.committer().complete(self, req).await
    }

    /// Completes several tasks, each its own event (atomic alone; one refused with 403, 404,
    /// 409 or 422 changes nothing and does not affect the others), sharing commits with every other
    /// event queued meanwhile (group commit). Answers per request, in order, with the task's
    /// instance briefly (a worker completing a batch needs no full view per task).
    pub async fn complete_each(&self, reqs: Vec<CompleteRequest>) -> Vec<Result<Completed>> {
        self.committer().complete_each(self, reqs).await
    }

    /// Completes many tasks in ONE transaction (one batch of the committers, with whatever
    /// else is queued): one refused completion (409, 422, 404) is rolled back to its mark,
    /// changes nothing of its own and does not affect the others. Returns, per request in
    /// order, the instance id or why not.
    pub async fn complete_many(&self, reqs: &[CompleteRequest]) -> Vec<Result<String>> {
        self.complete_each(reqs.to_vec())
            .await
            .into_iter()
            .map(|done| done.map(|c| c.instance_id))
            .collect()
    }

    pub(crate) async fn complete_in(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        req: &CompleteRequest,
    ) -> Result<String> {
        let mut task = st
            .lock_task(tx, &req.task_id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("task {}", req.task_id)))?;
        let actor: Actor = match &req.access {
            None => req.actor.clone(),
            Some(principal) => {
                // A task of a unit the token may not see is answered as unknown: its id is
                // not confirmed.
                if !principal.sees_unit(task.org_unit.as_deref()) {
                    return Err(EngineError::not_found(format!("task {}", task.id)));
                }
                if !principal.works_queue(&task.queue, task.org_unit.as_deref()) {
                    return Err(EngineError::Forbidden {
                        why: principal.may_not_work(&task.id, &task.queue),
                    });
                }
                Actor::from(&**principal)
            }
        };
        Engine::check_lock(&task, req.lock_token)?;
        // After the lock: a claimer whose lease ran out learns that (409), not who holds it now.
        if req.access.is_some() {
            Engine::check_holder(&task, &actor)?;
        }
        if let Some((entry, at)) = claim_entry(&task, Some(&actor)) {
            let mut inst = st
                .lock_instance(tx, &task.instance_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {}", task.instance_id)))?;
            st.insert_history_many(chain(st.chain_key(), &mut inst, vec![entry], at));
            st.update_instance(inst);
            // Recorded: should the event end the case, its claims are recorded without this
            // one (the row keeps `claimed_at`, set again below).
            st.update_task(TaskRow {
                claimed_at: None,
                ..task.clone()
            });
        }
        let tref = TaskRef {
            id: task.id.clone(),
            node: task.node.clone(),
            item: task
                .item
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            assignee: task.assignee.clone(),
            locked_by: task.locked_by.clone(),
        };
        self.run_event(
            tx,
            st,
            fx,
            &task.instance_id,
            Event::TaskCompleted {
                task: tref,
                outcome: req.outcome.clone(),
                vars: req.vars.clone(),
                actor: actor.clone(),
            },
        )
        .await?;
        let outcome = match &req.outcome {
            Some(o) => Some(o.clone()),
            None => self.only_outcome(tx, st, &task).await?,
        };
        task.state = TaskState::Completed;
        task.outcome = outcome;
        task.completed_by = Some(actor.name);
        task.completed_at = Some(ms(self.now()));
        task.lock_expires_at = None;
        // Only a task with a deadline has timers of its own.
        if task.due_at.is_some() {
            st.cancel_task_timers(&task.id);
        }
        let instance = task.instance_id.clone();
        st.update_task(task);
        Ok(instance)
    }

    async fn only_outcome(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        task: &TaskRow,
    ) -> Result<Option<String>> {
        let inst = st
            .lock_instance(tx, &task.instance_id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {}", task.instance_id)))?;
        let loaded = self
            .loaded_version(tx, &inst.process_key, inst.version)
            .await?;
        Ok(
            match loaded
                .model
                .nodes
                .iter()
                .find(|n| n.id.name == task.node)
                .map(|n| &n.kind)
            {
                Some(NodeKind::Task(spec)) => spec.outcomes.first().map(|o| o.key.name.clone()),
                _ => None,
            },
        )
    }

    /// Reports a worker's failure: retried later, or (no `retry_after`) an incident. `actor`, the
    /// caller, must hold the claim.
    pub async fn fail(&self, req: FailRequest) -> Result<TaskView> {
        let task = transaction!(self, |tx, fx| {
            let mut task = tx
                .lock_task(&req.task_id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("task {}", req.task_id)))?;
            Engine::check_lock(&task, req.lock_token)?;
            Engine::check_holder(&task, &req.actor)?;
            let claim = claim_entry(&task, Some(&req.actor));
            let now = self.now();
            task.failures += 1;
            task.last_error = Some(req.error.clone());
            task.locked_by = None;
            task.locked_by_key = None;
            task.worker = None;
            task.lock_expires_at = None;
            match req.retry_after {
                Some(after) => {
                    task.state = TaskState::Open;
                    task.available_at = ms(now + after.max(Duration::zero()));
                    fx.queues.push(task.queue.clone());
                }
                None => task.state = TaskState::Failed,
            }
            tx.update_task(&task).await?;
            let text = match req.retry_after {
                Some(after) => format!(
                    "{} failed ({}); retry in {}s",
                    task.node,
                    req.error,
                    after.num_seconds()
                ),
                None => format!("{} failed ({}); incident", task.node, req.error),
            };
            let failed = self.entry_now(
                &req.actor,
                &task.node,
                "task_failed",
                text,
                json!({ "task": task.id, "failures": task.failures }),
            );
            let entries = claim.into_iter().chain([failed]).collect();
            let mut row = self.note(&mut tx, &task.instance_id, entries).await?;
            if req.retry_after.is_none() && !row.status.is_terminal() {
                row.status = Status::Incident;
                row.incident = Some(format!("{}: {}", task.node, req.error));
                row.updated_at = ms(now);
                tx.update_instance(&row).await?;
            }
            task
        })?;
        Ok(task_view(task))
    }
}
