//! The engine's side of the ledger (`crate::ledger`, `crate::ledger_keys`): its keys, the
//! export of history entries with their case columns, verification of every chain and signed
//! checkpoints.

use super::{Engine, ms};
use crate::error::{EngineError, Result};
use crate::ledger::{self, HistoryEntry, LedgerReport};
use crate::store::InstanceRow;
use crate::store::port::*;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// The zone of the default calendar: the one ledger ranges given as days are read in
    /// ([`ledger::range`]).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.inner.due.time_zone(None)
    }

    /// History entries written in `[from, to)`, in time order, each with its case columns
    /// and its time in the zone of its process's calendar.
    pub async fn ledger_export(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HistoryEntry>> {
        if to < from {
            return Err(EngineError::invalid("to", "is before `from`"));
        }
        let rows = self.inner.store.history_range(ms(from), ms(to)).await?;
        let mut cases: HashMap<String, (chrono_tz::Tz, ledger::CaseColumns)> = HashMap::new();
        let mut entries = Vec::with_capacity(rows.len());
        for h in rows {
            if !cases.contains_key(&h.instance_id) {
                let case = match self.inner.store.instance(&h.instance_id).await? {
                    Some(row) => self.ledger_case(&row).await?,
                    None => (
                        self.inner.due.time_zone(None),
                        ledger::CaseColumns::default(),
                    ),
                };
                cases.insert(h.instance_id.clone(), case);
            }
            let (tz, case) = &cases[&h.instance_id];
            entries.push(HistoryEntry::new(h, *tz, case.clone()));
        }
        Ok(entries)
    }

    /// Verifies every instance's hash chain (with the engine's ledger keys, if it has them).
    pub async fn ledger_verify(&self) -> Result<LedgerReport> {
        let keys = self.ledger_keys();
        self.ledger_verify_with(keys.as_deref(), None).await
    }

    /// Verifies every instance's hash chain: with `keys`, every keyed entry's HMAC; with
    /// `checkpoints` (and the public keys that signed them), that no case they recorded was
    /// deleted, shortened or rewritten.
    pub async fn ledger_verify_with(
        &self,
        keys: Option<&crate::ledger_keys::LedgerKeys>,
        checkpoints: Option<crate::ledger_keys::Against<'_>>,
    ) -> Result<LedgerReport> {
        let instances = self.inner.store.instances_all().await?;
        let history = self.inner.store.history_all().await?;
        let mut report = ledger::verify_with(&instances, &history, keys);
        if let Some((checkpoints, public)) = checkpoints {
            report.checkpoints = checkpoints.len();
            report
                .problems
                .extend(crate::ledger_keys::check_checkpoints(
                    checkpoints,
                    public,
                    &instances,
                    &history,
                ));
        }
        Ok(report)
    }

    /// Sets the keys the ledger is chained and its checkpoints signed with (once, before the
    /// engine writes; see `ledger_keys`). Entries written before stay as they were.
    pub fn set_ledger_keys(&self, keys: crate::ledger_keys::LedgerKeys) -> Result<()> {
        self.inner
            .ledger_keys
            .set(Arc::new(keys))
            .map_err(|_| EngineError::invalid("ledger_key", "the ledger key is already set"))
    }

    /// The engine's ledger keys, if it has them.
    pub fn ledger_keys(&self) -> Option<Arc<crate::ledger_keys::LedgerKeys>> {
        self.inner.ledger_keys.get().cloned()
    }

    /// The key new entries are chained with.
    pub(crate) fn chain_key(&self) -> Option<crate::ledger_keys::ChainKey> {
        self.inner.ledger_keys.get().map(|k| k.chain_key().clone())
    }

    /// The zone an instance's times are shown in (its process's calendar) and its ledger case
    /// columns: the business key and the variables named by `ledger_columns` in the process's
    /// configuration, personal ones masked.
    pub(super) async fn ledger_case(
        &self,
        row: &InstanceRow,
    ) -> Result<(chrono_tz::Tz, ledger::CaseColumns)> {
        let loaded = self.loaded_by_key(&row.process_key, row.version).await?;
        let calendar = loaded.model.calendar.as_ref().map(|c| c.name.as_str());
        let tz = self.inner.due.time_zone(calendar);
        let vars: Map<String, Json> = (*row.vars).clone();
        let mut case = vec![(
            "business_key".to_string(),
            row.business_key.clone().map_or(Json::Null, Json::String),
        )];
        for name in ledger::case_columns(&loaded.data.config) {
            let value = vars.get(&name).cloned().unwrap_or(Json::Null);
            let personal = loaded
                .model
                .vars
                .iter()
                .find(|v| v.name.name == name)
                .and_then(|v| v.personal);
            let shown =
                personal.map_or_else(|| value.clone(), |p| crate::documents::mask_json(p, &value));
            case.push((name, shown));
        }
        Ok((tz, ledger::CaseColumns(case)))
    }

    /// A checkpoint of every case's head, signed with the engine's ledger key.
    pub async fn ledger_checkpoint(&self) -> Result<crate::ledger_keys::Checkpoint> {
        let keys = self.ledger_keys().ok_or_else(|| {
            EngineError::invalid(
                "ledger_key",
                "no ledger key: a checkpoint is signed with it (`yimen ledger keygen`)",
            )
        })?;
        let heads = self.inner.store.case_heads().await?;
        Ok(keys.checkpoint(Utc::now(), heads))
    }
}
