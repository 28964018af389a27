//! Events sent to one instance from outside: a message it waits for, a cancellation, an
//! incident resolved.

use super::{Engine, InstanceView, ms};
use crate::actor::Actor;
use crate::error::{EngineError, Result};
use crate::runtime::Event;
use crate::runtime::state::{RunState, Status, Wait};
use crate::store::port::*;
use crate::store::staged::Staged;
use serde_json::{Map, Value as Json, json};

impl Engine {
    /// Delivers a message the instance waits for; its payload sets the listed variables.
    pub async fn message(
        &self,
        id: &str,
        name: &str,
        payload: Map<String, Json>,
        actor: impl Into<Actor>,
    ) -> Result<InstanceView> {
        let actor: Actor = actor.into();
        transaction!(self, |tx, fx| {
            let mut st = Staged::new(self.chain_key());
            self.run_event(
                &mut tx,
                &mut st,
                &mut fx,
                id,
                Event::Message {
                    name: name.to_string(),
                    payload: payload.clone(),
                    actor: actor.clone(),
                },
            )
            .await?;
            st.flush(&mut tx).await?;
        })?;
        self.instance(id).await
    }

    /// Cancels a running instance: its tasks and timers are cancelled with it.
    pub async fn cancel(
        &self,
        id: &str,
        reason: &str,
        actor: impl Into<Actor>,
    ) -> Result<InstanceView> {
        let actor: Actor = actor.into();
        transaction!(self, |tx, fx| {
            let mut st = Staged::new(self.chain_key());
            self.run_event(
                &mut tx,
                &mut st,
                &mut fx,
                id,
                Event::Cancel {
                    reason: reason.to_string(),
                    actor: actor.clone(),
                },
            )
            .await?;
            st.flush(&mut tx).await?;
        })?;
        self.instance(id).await
    }

    /// Retries nodes parked as incidents and reopens failed tasks.
    pub async fn resolve_incident(
        &self,
        id: &str,
        actor: impl Into<Actor>,
    ) -> Result<InstanceView> {
        let actor: Actor = actor.into();
        transaction!(self, |tx, fx| {
            let row = tx
                .lock_instance(id)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("instance {id}")))?;
            let now = ms(self.now());
            let reopened = tx.reopen_failed_tasks(id, now).await?;
            let state: RunState = serde_json::from_str(&row.state)?;
            let parked = state
                .tokens
                .iter()
                .any(|t| matches!(t.wait, Wait::Incident { .. }));
            if parked {
                let mut st = Staged::new(self.chain_key());
                self.run_event(
                    &mut tx,
                    &mut st,
                    &mut fx,
                    id,
                    Event::Resolve {
                        actor: actor.clone(),
                    },
                )
                .await?;
                st.flush(&mut tx).await?;
            } else if reopened > 0 {
                let resolved = self.entry_now(
                    &actor,
                    "",
                    "incident_resolved",
                    format!("{reopened} failed task(s) reopened"),
                    json!({}),
                );
                let mut row = self.note(&mut tx, id, vec![resolved]).await?;
                row.status = Status::Running;
                row.incident = None;
                row.updated_at = now;
                tx.update_instance(&row).await?;
            } else {
                return Err(EngineError::conflict(
                    "the instance has no incident to resolve",
                ));
            }
        })?;
        self.instance(id).await
    }
}
