//! The engine's side of the outbox: claiming due deliveries and recording how they went.
//! Delivering them is `crate::outbox` (webhooks) and `crate::inbox` (notices to people).

use super::{Engine, OutboxMessage, ms, outbox_view};
use crate::error::Result;
use crate::store::port::*;
use chrono::{DateTime, Duration, Utc};

impl Engine {
    /// Claims up to `max` due deliveries; they are hidden from other claimers for `lease`.
    pub async fn outbox_claim(
        &self,
        now: DateTime<Utc>,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxMessage>> {
        self.outbox_claim_lane(now, max, lease, None).await
    }

    /// [`Engine::outbox_claim`] of one delivery lane: `Some(true)` webhooks only,
    /// `Some(false)` the inbox notices only.
    pub async fn outbox_claim_lane(
        &self,
        now: DateTime<Utc>,
        max: u32,
        lease: Duration,
        webhooks: Option<bool>,
    ) -> Result<Vec<OutboxMessage>> {
        let rows = transaction!(self, |tx, _fx| {
            tx.claim_outbox(ms(now), ms(now + lease), i64::from(max), webhooks)
                .await?
        })?;
        Ok(rows.into_iter().map(outbox_view).collect())
    }

    /// Marks a delivery done. `false`: it was not pending (already delivered or dead).
    pub async fn outbox_delivered(&self, id: &str) -> Result<bool> {
        Ok(self
            .inner
            .store
            .outbox_delivered(id, ms(self.now()))
            .await?
            > 0)
    }

    /// Records a failed attempt: retried at `retry_at`, or given up (`None`: state `dead`).
    pub async fn outbox_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        Ok(self
            .inner
            .store
            .outbox_failed(id, error, retry_at.map(ms))
            .await?
            > 0)
    }

    /// Deliveries that failed and are not delivered: still retried (`pending`) or given up
    /// (`dead`), newest first, at most `limit`.
    pub async fn outbox_failures(&self, limit: u32) -> Result<Vec<OutboxMessage>> {
        Ok(self
            .inner
            .store
            .outbox_failures(i64::from(limit))
            .await?
            .into_iter()
            .map(outbox_view)
            .collect())
    }

    /// Deliveries of an instance, with their state.
    pub async fn outbox_of(&self, instance: &str) -> Result<Vec<OutboxMessage>> {
        Ok(self
            .inner
            .store
            .outbox_of(instance)
            .await?
            .into_iter()
            .map(outbox_view)
            .collect())
    }
}
