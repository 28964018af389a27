//! Firing due timers: [`Engine::fire_due_timers`].
//!
//! Due timers are read in batches of [`BATCH`], in due order (`due_at`, then id), through the
//! `timers_pending` index, so reading a batch costs the rows it returns however many timers are
//! due. A batch is one transaction: the timers' tasks and instances are read (on PostgreSQL
//! locked, the timers with `SKIP LOCKED`, so several servers fire disjoint batches) in a few
//! statements, each timer then runs as its own event in due order on the unit of work
//! (`store::staged`), and one flush and one commit write them all. A batch, like a group-commit
//! batch, keeps each event atomic: an event the instance refuses (it ended or moved on) is
//! rolled back alone and its timer is spent all the same.
//!
//! Order per instance: a timer taken as fired is no longer pending for the events after it, and
//! a timer an earlier event of the batch cancelled does not fire. A timer whose instance has an
//! earlier pending timer the batch does not hold (made due by an event of the batch, or in
//! another server's batch on PostgreSQL) is left pending with the instance's later timers of
//! the batch: the next batch reads them again, after the earlier one.

use super::{Effects, Engine, ms};
use crate::error::{EngineError, Result};
use crate::runtime::{Event, TaskRef, TimerRef};
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{TimerRow, Tx, json_list};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use std::collections::HashSet;

/// Due timers read and fired per transaction: enough that the commit (a disk flush on
/// PostgreSQL) is a small share of a timer's cost; a batch holds SQLite's write gate while it
/// runs (docs/performance.md, "Timers").
const BATCH: i64 = 500;

impl Engine {
    /// Fires every timer due at `now`, in due order per instance (several per transaction,
    /// each its own event); returns how many fired. Safe with several servers: a timer fires
    /// once.
    pub async fn fire_due_timers(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut fired = 0;
        loop {
            let batch = super::transaction!(self, |tx, fx| {
                self.fire_batch(&mut tx, &mut fx, ms(now)).await?
            })?;
            match batch {
                Some(n) => {
                    self.metrics().timers_fired(n as u64);
                    fired += n;
                }
                None => return Ok(fired),
            }
        }
    }

    /// Fires the next due timers in the transaction `tx`; how many fired, `None` when none
    /// was due.
    async fn fire_batch(&self, tx: &mut Tx, fx: &mut Effects, now: i64) -> Result<Option<usize>> {
        let timers = tx.due_timers(now, BATCH).await?;
        if timers.is_empty() {
            return Ok(None);
        }
        let mut st = Staged::new(self.chain_key());
        // Lock order task → instance, as everywhere.
        let tasks: Vec<&str> = timers.iter().filter_map(|t| t.task_id.as_deref()).collect();
        if !tasks.is_empty() {
            st.prefetch_tasks(tx, &tasks).await?;
        }
        let mut instances: Vec<String> = timers.iter().map(|t| t.instance_id.clone()).collect();
        instances.sort();
        instances.dedup();
        st.prefetch_instances(tx, instances).await?;

        let mut fired: Vec<&String> = Vec::with_capacity(timers.len());
        // Instances whose timers wait for an earlier one this batch does not hold.
        let mut waiting: HashSet<&str> = HashSet::new();
        for timer in &timers {
            let instance = timer.instance_id.as_str();
            if waiting.contains(instance) || st.has_earlier_timer(instance, timer.due_at, &timer.id)
            {
                waiting.insert(instance);
                continue;
            }
            let before = st.mark();
            if !st.fire_timer(&timer.id) {
                continue;
            }
            let after = st.mark();
            match self.fire_one(tx, &mut st, fx, timer).await {
                Ok(()) => fired.push(&timer.id),
                Err(e) if e.is_retryable() => return Err(e),
                // The instance ended or moved on: the timer is spent all the same.
                Err(EngineError::Conflict { .. } | EngineError::NotFound { .. }) => {
                    st.rollback(after);
                    fired.push(&timer.id);
                }
                Err(e) if fired.is_empty() => return Err(e),
                // The timers before it are kept; the next batch starts with this one and
                // reports its error.
                Err(_) => {
                    st.rollback(before);
                    break;
                }
            }
        }
        st.flush(tx).await?;
        if !fired.is_empty() {
            tx.fire_timers(&json_list(fired.iter().copied()), ms(self.now()))
                .await?;
        }
        Ok(Some(fired.len()))
    }

    /// Runs one due timer's event on the unit of work.
    async fn fire_one(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        timer: &TimerRow,
    ) -> Result<()> {
        let task = match &timer.task_id {
            Some(id) => st.lock_task(tx, id).await?.map(|t| TaskRef {
                item: t.item.as_deref().and_then(|s| serde_json::from_str(s).ok()),
                id: t.id,
                node: t.node,
                assignee: t.assignee,
                locked_by: t.locked_by,
            }),
            None => None,
        };
        let event = Event::Timer(TimerRef {
            id: timer.id.clone(),
            kind: timer.kind.clone(),
            node: timer.node.clone(),
            task,
            payload: serde_json::from_str(&timer.payload).unwrap_or(Json::Null),
        });
        self.run_event(tx, st, fx, &timer.instance_id, event).await
    }
}
