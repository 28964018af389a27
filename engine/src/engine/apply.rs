//! Running an event: the pure step (`runtime::advance`) on the instance, linked instances
//! started and parents told of children that ended, and the changeset written to the unit of
//! work.

use super::{Effects, Engine, Entry, chain, claim_entry, ms, time};
use crate::TaskState;
use crate::error::{EngineError, Result};
use crate::runtime::state::{Changeset, NewDocument, NewOutbox, NewTask, NewTimer};
use crate::runtime::{self, Event, InstanceData};
use crate::store::OutboxState;
use crate::store::TimerState;
use crate::store::staged::Staged;
use crate::store::{DocumentRow, InstanceRow, OutboxRow, TaskRow, TimerRow, Tx};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use std::collections::VecDeque;

impl Engine {
    /// Applies `event` to `id` and follows on to linked instances (children started, parents
    /// waiting for a child that ended), all in `tx`.
    pub(crate) async fn run_event(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        fx: &mut Effects,
        id: &str,
        event: Event,
    ) -> Result<()> {
        let mut queue = VecDeque::from([(id.to_string(), event)]);
        let mut first = true;
        while let Some((id, event)) = queue.pop_front() {
            let row = st
                .lock_instance(tx, &id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
            let loaded = self
                .loaded_version(tx, &row.process_key, row.version)
                .await?;
            let data = instance_data(&row)?;
            let now = self.now();
            let started = matches!(event, Event::Start { .. });
            let cs = match runtime::advance(
                &loaded.model,
                &loaded.data,
                &data,
                event,
                now,
                &*self.inner.due,
                runtime::Bounds {
                    limits: self.limits(),
                    refuse: first,
                },
            ) {
                Ok(cs) => cs,
                Err(e) if first => return Err(e),
                // A follow-on event a linked instance no longer accepts is dropped.
                Err(_) => continue,
            };
            first = false;
            let was_terminal = data.status.is_terminal();
            let mut cs = cs;
            for child in std::mem::take(&mut cs.children) {
                let started = self.start_child(tx, st, &row, &child, now).await?;
                match started {
                    Ok(()) => queue.push_back((
                        child.id.clone(),
                        Event::Start {
                            actor: crate::actor::Actor::engine("engine"),
                        },
                    )),
                    // Not the caller's fault (a worker completing a task): the parent gets an
                    // incident at the linking node, which an operator resolves.
                    Err(message) => runtime::child_failed(&mut cs, &child, message),
                }
            }
            let status = cs.status;
            let result = cs.result.clone();
            let ended_child = match &row.parent_id {
                Some(parent) if status.is_terminal() && !was_terminal => {
                    Some((parent.clone(), row.id.clone()))
                }
                _ => None,
            };
            self.stage_oversight(st, &loaded, &row, &data.state, &cs, now);
            self.apply(st, fx, row, cs, now);
            if !loaded.searchable.is_empty() {
                // After `apply`: the instance's variables as the event left them.
                self.stage_search(st, &id, &loaded.searchable, started, &data.vars);
            }
            if let Some((parent, child)) = ended_child {
                queue.push_back((
                    parent,
                    Event::ChildEnded {
                        child,
                        result,
                        status,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Writes a changeset.
    pub(crate) fn apply(
        &self,
        st: &mut Staged,
        fx: &mut Effects,
        mut row: InstanceRow,
        cs: Changeset,
        now: DateTime<Utc>,
    ) {
        let now_ms = ms(now);
        for t in &cs.new_tasks {
            let task = task_row(t, &row.id, now_ms);
            fx.queues.push(t.queue.clone());
            st.insert_task(task);
        }
        for t in &cs.new_timers {
            let timer = timer_row(t, &row.id);
            st.insert_timer(&timer, now_ms);
            fx.timers.push(t.due_at);
        }
        for id in &cs.cancel_timers {
            st.cancel_timer(id);
        }
        // Deadlines bound to a clock that paused, resumed or was extended.
        for (task, due) in &cs.task_due {
            st.set_task_due(task, *due);
        }
        if cs.status.is_terminal() {
            // Claims that end with their case.
            for task in st.claimed_tasks(&row.id) {
                if let Some((entry, at)) = claim_entry(&task, None) {
                    st.insert_history_many(chain(st.chain_key(), &mut row, vec![entry], at));
                }
            }
            st.cancel_open_tasks(&row.id, now_ms);
            st.cancel_instance_timers(&row.id);
        }
        for o in &cs.outbox {
            st.insert_outbox(outbox_row(o, &row.id, now_ms));
        }
        for d in &cs.documents {
            st.insert_document(document_row(d, &row.id, now_ms));
        }
        let entries: Vec<Entry> = cs
            .history
            .into_iter()
            .map(|h| (h.actor, h.node, h.kind, h.text, h.data.to_string()))
            .collect();
        st.insert_history_many(chain(st.chain_key(), &mut row, entries, now_ms));
        row.status = cs.status;
        row.result = cs.result.or(row.result.take());
        row.incident = cs.incident;
        row.vars = crate::store::Vars::from(cs.vars);
        // Serialising maps of JSON values cannot fail.
        row.state = serde_json::to_string(&cs.state).unwrap_or_default();
        if cs.provisional && row.provisional == 0 {
            tracing::warn!(
                instance = %row.id,
                "a deadline of this case reaches into a year the calendar has no data for; it is \
                 provisional (weekends only there): add that year's arrangement to the calendar \
                 file and run `yimen calendar check`"
            );
        }
        row.provisional = i64::from(cs.provisional);
        row.updated_at = now_ms;
        if cs.status.is_terminal() && row.ended_at.is_none() {
            row.ended_at = Some(now_ms);
        }
        st.update_instance(row);
    }
}

fn instance_data(row: &InstanceRow) -> Result<InstanceData> {
    Ok(InstanceData {
        id: row.id.clone(),
        created_at: time(row.created_at),
        status: row.status,
        vars: (*row.vars).clone(),
        state: serde_json::from_str(&row.state)?,
        provisional: row.provisional != 0,
    })
}

/// The row of the open task a node created, in instance `instance`.
fn task_row(t: &NewTask, instance: &str, now_ms: i64) -> TaskRow {
    TaskRow {
        id: t.id.clone(),
        instance_id: instance.to_string(),
        node: t.node.clone(),
        label: t.label.clone(),
        queue: t.queue.clone(),
        org_unit: t.org_unit.clone(),
        state: TaskState::Open,
        lock_token: 0,
        locked_by: None,
        lock_expires_at: None,
        available_at: now_ms,
        assignee: t.assignee.clone(),
        item: t.item.as_ref().map(Json::to_string),
        outcome: None,
        completed_by: None,
        failures: 0,
        last_error: None,
        due_at: t.due_at,
        created_at: now_ms,
        completed_at: None,
        claimed_at: None,
        lapsed_by: None,
        lapsed_at: None,
        worker: None,
        lapsed_worker: None,
        assignee_key: t.assignee_key.clone(),
        locked_by_key: None,
        lapsed_by_key: None,
    }
}

/// The row of the pending timer of a node or task, in instance `instance`.
fn timer_row(t: &NewTimer, instance: &str) -> TimerRow {
    TimerRow {
        id: t.id.clone(),
        instance_id: instance.to_string(),
        kind: t.kind.to_string(),
        node: t.node.clone(),
        task_id: t.task_id.clone(),
        due_at: t.due_at,
        payload: t.payload.to_string(),
        state: TimerState::Pending,
    }
}

/// The row of a delivery, pending and due at once, in instance `instance`.
fn outbox_row(o: &NewOutbox, instance: &str, now_ms: i64) -> OutboxRow {
    OutboxRow {
        id: o.id.clone(),
        instance_id: instance.to_string(),
        channel: o.channel.clone(),
        dedup_key: o.dedup_key.clone(),
        payload: o.payload.to_string(),
        state: OutboxState::Pending,
        attempts: 0,
        next_attempt_at: now_ms,
        last_error: None,
        created_at: now_ms,
        delivered_at: None,
    }
}

/// The row of an issued document, in instance `instance`.
fn document_row(d: &NewDocument, instance: &str, now_ms: i64) -> DocumentRow {
    DocumentRow {
        id: d.id.clone(),
        instance_id: instance.to_string(),
        name: d.name.clone(),
        label: d.label.clone(),
        public: i64::from(d.public),
        content: d.content.clone(),
        created_at: now_ms,
    }
}
