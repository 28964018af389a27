//! History entries: linking them into an instance's hash chain, the entries of claims (written
//! when a claim ends), and notes that touch nothing but the chain.

use super::{Engine, ms};
use crate::TaskState;
use crate::actor::Actor;
use crate::error::{EngineError, Result};
use crate::store::port::*;
use crate::store::staged::Staged;
use crate::store::{HistoryRow, InstanceRow, TaskRow, Tx};
use serde_json::{Value as Json, json};

impl Engine {
    /// Appends entries to the instance's hash chain; updates `row`'s count and head (the caller
    /// writes the row).
    pub(crate) async fn append_history(
        &self,
        tx: &mut Tx,
        row: &mut InstanceRow,
        entries: Vec<Entry>,
        now: i64,
    ) -> Result<()> {
        let rows = chain(self.chain_key().as_ref(), row, entries, now);
        if !rows.is_empty() {
            tx.insert_history_many(&rows).await?;
        }
        Ok(())
    }

    /// An entry by `actor` at `node`, dated now (for [`Engine::note`]).
    pub(crate) fn entry_now(
        &self,
        actor: &Actor,
        node: &str,
        kind: &str,
        text: String,
        data: Json,
    ) -> (Entry, i64) {
        let entry = (
            actor.clone(),
            Some(node.to_string()),
            kind.to_string(),
            text,
            data.to_string(),
        );
        (entry, ms(self.now()))
    }

    /// Appends dated entries for a change that does not otherwise touch the instance row:
    /// one read of the instance, one insert, one update of its chain head.
    pub(crate) async fn note(
        &self,
        tx: &mut Tx,
        instance: &str,
        entries: Vec<(Entry, i64)>,
    ) -> Result<InstanceRow> {
        let mut row = tx
            .lock_instance(instance)
            .await?
            .ok_or_else(|| EngineError::not_found(format!("instance {instance}")))?;
        let mut rows = Vec::with_capacity(entries.len());
        let key = self.chain_key();
        for (entry, at) in entries {
            rows.extend(chain(key.as_ref(), &mut row, vec![entry], at));
        }
        if !rows.is_empty() {
            tx.insert_history_many(&rows).await?;
        }
        tx.set_history_head(&row.id, row.history_count, &row.history_head)
            .await?;
        Ok(row)
    }
}

/// A history entry: actor, node, kind, text, data (JSON).
pub(crate) type Entry = (Actor, Option<String>, String, String, String);

/// Links entries into the instance's hash chain (keyed with `key`, see `ledger_keys`): updates
/// `row`'s count and head.
pub(crate) fn chain(
    key: Option<&crate::ledger_keys::ChainKey>,
    row: &mut InstanceRow,
    entries: Vec<Entry>,
    now: i64,
) -> Vec<HistoryRow> {
    let mut rows = Vec::with_capacity(entries.len());
    for (actor, node, kind, text, data) in entries {
        let mut h = HistoryRow {
            instance_id: row.id.clone(),
            seq: row.history_count + 1,
            at: now,
            actor_kind: actor.recorded_kind().to_string(),
            actor: actor.name,
            actor_id: actor.id,
            node,
            kind,
            text,
            data,
            prev_hash: row.history_head.clone(),
            hash: String::new(),
        };
        h.hash = crate::ledger::seal(key, &h);
        row.history_count = h.seq;
        row.history_head = h.hash.clone();
        rows.push(h);
    }
    rows
}

/// The history entry of a task's current claim, with the time it was made, while the task is
/// claimed. A claim is written to the history when it ends (completed, failed, released) and
/// not when it is made, so that a claim writes only its task row (Temporal records an
/// activity's start when the activity closes, for the same reason). `None` for a claim made
/// before migration 0400, which was recorded when it was made.
///
/// `holder`: the claim's holder as authenticated, when the caller ending the claim is it (a
/// completion, failure or release through the API); otherwise the entry names the holder as the
/// task row keeps it (its name and key; its name only for a claim made before keys).
pub(crate) fn claim_entry(task: &TaskRow, holder: Option<&Actor>) -> Option<(Entry, i64)> {
    if task.state != TaskState::Claimed {
        return None;
    }
    let by = task.locked_by.as_deref()?;
    let key = task.locked_by_key.as_deref();
    let actor = match holder {
        Some(a) if a.is(by, key) => a.clone(),
        _ => Actor::keyed(by, key),
    };
    Some(claimed_entry(
        task,
        actor,
        task.worker.as_deref(),
        task.lock_token,
        task.claimed_at?,
        false,
    ))
}

/// Records each lapsed claim in its instance's history (the instances are loaded).
pub(crate) fn record_lapsed(st: &mut Staged, claimed: &[Vec<TaskRow>]) {
    for t in claimed.iter().flatten() {
        let Some((entry, at)) = lapsed_entry(t) else {
            continue;
        };
        let Some(mut inst) = st.instance(&t.instance_id).cloned() else {
            continue;
        };
        st.insert_history_many(chain(st.chain_key(), &mut inst, vec![entry], at));
        st.update_instance(inst);
    }
}

/// The history entry of the claim a new claim took the task over from (its lease had run
/// out), with the time it was made.
fn lapsed_entry(task: &TaskRow) -> Option<(Entry, i64)> {
    Some(claimed_entry(
        task,
        Actor::keyed(task.lapsed_by.as_deref()?, task.lapsed_by_key.as_deref()),
        task.lapsed_worker.as_deref(),
        task.lock_token - 1,
        task.lapsed_at?,
        true,
    ))
}

/// A `task_claimed` entry: `by` (the caller, the entry's actor) claimed `task` at `at` under
/// `token`, through the worker labelled `worker` if it gave one.
fn claimed_entry(
    task: &TaskRow,
    actor: Actor,
    worker: Option<&str>,
    token: i64,
    at: i64,
    lapsed: bool,
) -> (Entry, i64) {
    let by = actor.name.as_str();
    let through = match worker {
        Some(worker) if worker != by => format!("worker {worker}, "),
        _ => String::new(),
    };
    let mut data = json!({ "task": task.id, "lock_token": token });
    if let Some(worker) = worker {
        data["worker"] = json!(worker);
    }
    let text = if lapsed {
        data["lapsed"] = json!(true);
        format!(
            "{} claimed by {by} ({through}token {token}); the lease ran out",
            task.node
        )
    } else {
        format!("{} claimed by {by} ({through}token {token})", task.node)
    };
    let entry = (
        actor,
        Some(task.node.clone()),
        "task_claimed".to_string(),
        text,
        data.to_string(),
    );
    (entry, at)
}
