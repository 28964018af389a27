//! Reads for people's pages: a work list's tasks with their cases (one query), when each
//! deadline turns yellow (the warning period its clock declares), and a case's clocks with
//! the steps that explain their due dates ([`crate::deadlines`]).

use super::{Engine, TaskView, task_view};
use crate::deadlines::{self, ClockEvent, ClockReport};
use crate::error::{EngineError, Result};
use crate::ledger::HistoryEntry;
use crate::runtime::state::RunState;
use crate::store::json_list;
use crate::store::port::*;
use crate::store::{OpenWorkQuery, TaskCase, TaskRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Which open tasks a my-work page shows: the page of them asked for, most urgent first.
#[derive(Debug, Clone, Default)]
pub struct OpenWork {
    /// The queues (roles) whose tasks are shown.
    pub queues: Vec<String>,
    /// Only tasks of these organisation units (and those without one); `None`: all.
    pub org_units: Option<Vec<String>>,
    /// Only the tasks of these cases; `None`: of every case.
    pub cases: Option<Vec<String>>,
    /// Only tasks due at or after this instant.
    pub due_from: Option<DateTime<Utc>>,
    /// Only tasks due before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// From 1.
    pub page: u32,
    pub page_size: u32,
}

/// A task of a work list, with its case.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkTask {
    pub task: TaskView,
    /// The case's business key.
    pub business_key: Option<String>,
    /// The case's process and version (what its labels are read from).
    pub process: String,
    pub version: i64,
    /// When the task's deadline light turns yellow (`None`: no deadline, or no warning
    /// period declared for it: green until red).
    pub warn_at: Option<DateTime<Utc>>,
}

impl Engine {
    /// A page of open work, most urgent first (by due time, tasks without one last, then by
    /// creation), with how many tasks all its pages hold. The database orders and pages: a
    /// street's window queue may hold thousands of open tasks.
    pub async fn open_work(&self, f: &OpenWork) -> Result<(Vec<WorkTask>, i64)> {
        let ms = |t: DateTime<Utc>| t.timestamp_millis();
        let page_size = i64::from(f.page_size.clamp(1, 1000));
        let q = OpenWorkQuery {
            queues: json_list(&f.queues),
            org_units: f.org_units.as_ref().map(json_list),
            instances: f.cases.as_ref().map(json_list),
            due_from: f.due_from.map(ms),
            due_before: f.due_before.map(ms),
            limit: page_size,
            offset: i64::from(f.page.max(1) - 1) * page_size,
        };
        let (rows, total) = self.inner.store.open_work(&q).await?;
        Ok((self.work(rows).await?, total))
    }

    /// [`Engine::claimed_tasks`] with each task's case, read in the same query.
    pub async fn claimed_work(
        &self,
        holder: &crate::actor::Actor,
        limit: u32,
    ) -> Result<Vec<WorkTask>> {
        let key = holder.key().unwrap_or_default();
        let rows = self
            .inner
            .store
            .claimed_tasks_with_cases(&holder.name, &key, i64::from(limit.min(1000)))
            .await?;
        self.work(rows).await
    }

    async fn work(&self, rows: Vec<(TaskRow, TaskCase)>) -> Result<Vec<WorkTask>> {
        let mut out = Vec::with_capacity(rows.len());
        for (row, case) in rows {
            let task = task_view(row);
            let warn_at = self.warn_at(&case.process_key, case.version, &task).await?;
            out.push(WorkTask {
                task,
                business_key: case.business_key,
                process: case.process_key,
                version: case.version,
                warn_at,
            });
        }
        Ok(out)
    }

    /// When `task`'s deadline light turns yellow: its due time less the earliest `before`
    /// rung of the clock that governs it (or of its own ladder), counted on the process's
    /// calendar. `None`: no deadline or no warning period.
    pub async fn warn_at(
        &self,
        process: &str,
        version: i64,
        task: &TaskView,
    ) -> Result<Option<DateTime<Utc>>> {
        let Some(due) = task.due_at else {
            return Ok(None);
        };
        let loaded = self.loaded_by_key(process, version).await?;
        let model = &loaded.model;
        let warnings = deadlines::task_warnings(model, &task.node);
        let calendar = model.calendar.as_ref().map(|c| c.name.as_str());
        Ok(deadlines::warning_from(
            due,
            &warnings,
            calendar,
            &*self.inner.due,
        ))
    }

    /// The clocks of case `id` that were ever started, in the order the process declares
    /// them, each with the steps that explain its due time, read from `history` (the case's
    /// timeline, as [`Engine::history`] gives it) and its stored state. With each report:
    /// when a running clock's light turns yellow (`None`: no warning period).
    pub async fn case_clocks(
        &self,
        id: &str,
        history: &[HistoryEntry],
    ) -> Result<Vec<(ClockReport, Option<DateTime<Utc>>)>> {
        let row = self
            .inner
            .store
            .instance(id)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
        let state: RunState = serde_json::from_str(&row.state)?;
        let loaded = self.loaded_by_key(&row.process_key, row.version).await?;
        let model = &loaded.model;
        let mut events: HashMap<String, Vec<ClockEvent>> = HashMap::new();
        for e in history.iter().filter(|e| e.kind == "clock") {
            if let Some((clock, event)) =
                ClockEvent::from_history(e.at.with_timezone(&Utc), &e.text, &e.data)
            {
                events.entry(clock).or_default().push(event);
            }
        }
        let now = self.now();
        let mut out = Vec::new();
        for decl in &model.clocks {
            let name = decl.name.name.as_str();
            let kept = state.clocks.get(name);
            let seen = events.remove(name).unwrap_or_default();
            if kept.is_none() && seen.is_empty() {
                continue;
            }
            let calendar = decl
                .calendar
                .as_ref()
                .or(model.calendar.as_ref())
                .map(|c| c.name.as_str());
            let report =
                deadlines::explain_clock(name, &seen, kept, calendar, &*self.inner.due, now);
            let warn = report.due.and_then(|due| {
                let warnings = deadlines::clock_warnings(model, name);
                deadlines::warning_from(due, &warnings, calendar, &*self.inner.due)
            });
            out.push((report, warn));
        }
        Ok(out)
    }
}
