//! Reads: an instance with its tasks, timers and linked cases (personal data masked), its
//! case data, timeline and documents; task lists; the next timer due.

use super::{
    ChildLink, Document, Engine, InstanceView, TaskFilter, TaskView, TimerView, task_view, time,
};
use crate::error::{EngineError, Result};
use crate::ledger::HistoryEntry;
use crate::runtime::state::RunState;
use crate::store::json_list;
use crate::store::port::*;
use crate::store::{InstanceRow, TaskQuery, TaskRow, TimerRow};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use yimen_dsl::model::NodeKind;

impl Engine {
    /// The instance with masked case data, its open tasks and pending timers.
    pub async fn instance(&self, id: &str) -> Result<InstanceView> {
        let store = &self.inner.store;
        let row = store
            .instance(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
        let tasks = store.active_tasks(id).await?;
        let timers = store.instance_timers(id).await?;
        self.view(&row, tasks, timers).await
    }

    pub(crate) async fn view(
        &self,
        row: &InstanceRow,
        tasks: Vec<TaskRow>,
        timers: Vec<TimerRow>,
    ) -> Result<InstanceView> {
        let loaded = self.loaded_by_key(&row.process_key, row.version).await?;
        let state: RunState = serde_json::from_str(&row.state)?;
        let vars: Map<String, Json> = (*row.vars).clone();
        let masked = vars
            .iter()
            .map(|(k, v)| {
                let personal = loaded
                    .model
                    .vars
                    .iter()
                    .find(|d| &d.name.name == k)
                    .and_then(|d| d.personal);
                (
                    k.clone(),
                    personal.map_or_else(|| v.clone(), |p| crate::documents::mask_json(p, v)),
                )
            })
            .collect();
        let tasks = tasks.into_iter().map(task_view).collect();
        let children = loaded
            .model
            .nodes
            .iter()
            .filter_map(|node| {
                let NodeKind::StartProcess { process, .. } = &node.kind else {
                    return None;
                };
                let child = state
                    .results
                    .get(&node.id.name)?
                    .get("instance")?
                    .as_str()?;
                Some(ChildLink {
                    node: node.id.name.clone(),
                    process: process.name.clone(),
                    instance_id: child.to_string(),
                })
            })
            .collect();
        let timers = timers
            .into_iter()
            .map(|t| TimerView {
                id: t.id,
                kind: t.kind,
                node: t.node,
                task_id: t.task_id,
                due_at: time(t.due_at),
            })
            .collect();
        Ok(InstanceView {
            id: row.id.clone(),
            process: row.process_key.clone(),
            version: row.version,
            business_key: row.business_key.clone(),
            status: row.status,
            result: row.result.clone(),
            incident: row.incident.clone(),
            vars: masked,
            active_nodes: state.tokens.iter().map(|t| t.node.clone()).collect(),
            tasks,
            timers,
            provisional_due: row.provisional != 0,
            parent_id: row.parent_id.clone(),
            parent_node: row.parent_node.clone(),
            children,
            created_at: time(row.created_at),
            updated_at: time(row.updated_at),
            ended_at: row.ended_at.map(time),
            existing: false,
        })
    }

    /// Unmasked case data, for callers entitled to it (the API decides).
    pub async fn instance_vars(&self, id: &str) -> Result<Map<String, Json>> {
        let row = self
            .inner
            .store
            .instance(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
        Ok((*row.vars).clone())
    }

    /// The instance's timeline.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let Some(row) = self.inner.store.instance(id).await? else {
            return Err(EngineError::not_found(format!("instance {id}")));
        };
        let (tz, case) = self.ledger_case(&row).await?;
        Ok(self
            .inner
            .store
            .history(id)
            .await?
            .into_iter()
            .map(|h| HistoryEntry::new(h, tz, case.clone()))
            .collect())
    }

    /// Documents issued for the instance.
    pub async fn documents(&self, id: &str) -> Result<Vec<Document>> {
        if self.inner.store.instance(id).await?.is_none() {
            return Err(EngineError::not_found(format!("instance {id}")));
        }
        Ok(self
            .inner
            .store
            .documents(id)
            .await?
            .into_iter()
            .map(|d| Document {
                id: d.id,
                name: d.name,
                label: d.label,
                public: d.public != 0,
                content: d.content,
                created_at: time(d.created_at),
            })
            .collect())
    }

    /// Lists tasks.
    pub async fn tasks(&self, f: TaskFilter) -> Result<Vec<TaskView>> {
        let q = TaskQuery {
            queues: f.queues.as_ref().map(json_list),
            org_units: f.org_units.as_ref().map(json_list),
            state: f.state.map(|s| s.as_str().to_string()),
            instance: f.instance,
            limit: i64::from(f.limit.unwrap_or(100).min(1000)),
        };
        Ok(self
            .inner
            .store
            .tasks(&q)
            .await?
            .into_iter()
            .map(task_view)
            .collect())
    }

    /// The tasks whose claim `holder` holds (by its key; by name a claim recorded without
    /// one), oldest first, at most `limit`.
    pub async fn claimed_tasks(
        &self,
        holder: &crate::actor::Actor,
        limit: u32,
    ) -> Result<Vec<TaskView>> {
        let key = holder.key().unwrap_or_default();
        let rows = self
            .inner
            .store
            .claimed_tasks(&holder.name, &key, i64::from(limit.min(1000)))
            .await?;
        Ok(rows.into_iter().map(task_view).collect())
    }

    /// The lock token and lease end of the claim `holder` holds on task `id` (by its key; by
    /// name a claim recorded without one), if they hold it: a person's page finishes a claim
    /// made on an earlier page. `None` when the task is not claimed by them.
    pub async fn held_claim(
        &self,
        id: &str,
        holder: &crate::actor::Actor,
    ) -> Result<Option<(i64, DateTime<Utc>)>> {
        let Some(row) = self.inner.store.task(id).await? else {
            return Ok(None);
        };
        if row.state != super::TaskState::Claimed {
            return Ok(None);
        }
        let theirs = match (&row.locked_by_key, holder.key()) {
            (Some(key), Some(mine)) => *key == mine,
            (None, _) => row.locked_by.as_deref() == Some(holder.name.as_str()),
            (Some(_), None) => false,
        };
        Ok(theirs
            .then_some(row.lock_expires_at)
            .flatten()
            .map(|until| (row.lock_token, time(until))))
    }

    /// How many open tasks each queue has, of `org_units` (`None`: all), by queue name.
    pub async fn open_task_counts(
        &self,
        org_units: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>> {
        let units = org_units.map(json_list);
        self.inner.store.open_task_counts(units.as_deref()).await
    }

    /// One task.
    pub async fn task(&self, id: &str) -> Result<TaskView> {
        self.inner
            .store
            .task(id)
            .await?
            .map(task_view)
            .ok_or_else(|| EngineError::not_found(format!("task {id}")))
    }

    /// Due time of the earliest pending timer.
    pub async fn next_timer_due(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.inner.store.next_timer_due().await?.map(time))
    }
}
