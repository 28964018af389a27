//! The electronic ledger (台账): the history, hash-chained per instance.
//!
//! Each entry's hash covers the previous entry's hash and every field of the entry; the
//! instance row keeps the number of entries and the last hash. A per-instance chain lets
//! instances write concurrently (a global chain would serialise every write); verification
//! finds an entry changed (its hash), removed or reordered (the chain breaks or the count and
//! head on the instance row disagree), including the last entry.

use crate::store::{HistoryRow, InstanceRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hash of an entry chained to `prev_hash`.
pub fn entry_hash(h: &HistoryRow) -> String {
    let mut d = Sha256::new();
    for part in [
        h.prev_hash.as_str(),
        h.instance_id.as_str(),
        &h.seq.to_string(),
        &h.at.to_string(),
        h.actor.as_str(),
        h.node.as_deref().unwrap_or(""),
        h.kind.as_str(),
        h.text.as_str(),
        h.data.as_str(),
    ] {
        d.update((part.len() as u64).to_le_bytes());
        d.update(part.as_bytes());
    }
    let digest = d.finalize();
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits; `hex::encode` went through an iterator of chars.
    match hex::encode_to_slice(digest, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => hex::encode(digest),
    }
}

/// One history entry as the API and the CSV export show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub instance_id: String,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub node: Option<String>,
    pub kind: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub hash: String,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(h: HistoryRow) -> Self {
        HistoryEntry {
            at: DateTime::from_timestamp_millis(h.at).unwrap_or_default(),
            data: serde_json::from_str(&h.data).unwrap_or(serde_json::Value::Null),
            instance_id: h.instance_id,
            seq: h.seq,
            actor: h.actor,
            node: h.node,
            kind: h.kind,
            text: h.text,
            hash: h.hash,
        }
    }
}

/// Result of [`verify`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LedgerReport {
    pub instances: usize,
    pub entries: usize,
    /// Empty when the ledger is intact.
    pub problems: Vec<String>,
}

impl LedgerReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every instance's chain against its rows.
pub fn verify(instances: &[InstanceRow], history: &[HistoryRow]) -> LedgerReport {
    let mut by_instance: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
    for h in history {
        by_instance.entry(&h.instance_id).or_default().push(h);
    }
    let mut problems = Vec::new();
    for inst in instances {
        let mut entries = by_instance.remove(inst.id.as_str()).unwrap_or_default();
        entries.sort_by_key(|h| h.seq);
        let mut prev = String::new();
        for (i, h) in entries.iter().enumerate() {
            let expected_seq = i as i64 + 1;
            if h.seq != expected_seq {
                problems.push(format!(
                    "instance {}: entry {expected_seq} is missing (found {} next)",
                    inst.id, h.seq
                ));
                break;
            }
            if h.prev_hash != prev {
                problems.push(format!(
                    "instance {}: entry {} does not follow entry {} (removed or reordered)",
                    inst.id,
                    h.seq,
                    h.seq - 1
                ));
                break;
            }
            if entry_hash(h) != h.hash {
                problems.push(format!(
                    "instance {}: entry {} was changed after it was written",
                    inst.id, h.seq
                ));
                break;
            }
            prev = h.hash.clone();
        }
        if problems.last().is_none_or(|p| !p.contains(&inst.id)) {
            if entries.len() as i64 != inst.history_count {
                problems.push(format!(
                    "instance {}: {} entries recorded, {} found",
                    inst.id,
                    inst.history_count,
                    entries.len()
                ));
            } else if prev != inst.history_head {
                problems.push(format!(
                    "instance {}: last entry is not the one recorded",
                    inst.id
                ));
            }
        }
    }
    for id in by_instance.keys() {
        problems.push(format!("history of unknown instance {id}"));
    }
    LedgerReport {
        instances: instances.len(),
        entries: history.len(),
        problems,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV with a header line: `at,instance,seq,actor,node,kind,text,hash`.
pub fn to_csv(entries: &[HistoryEntry]) -> String {
    let mut out = String::from("at,instance,seq,actor,node,kind,text,hash\n");
    for e in entries {
        let fields = [
            e.at.to_rfc3339(),
            e.instance_id.clone(),
            e.seq.to_string(),
            e.actor.clone(),
            e.node.clone().unwrap_or_default(),
            e.kind.clone(),
            e.text.clone(),
            e.hash.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::entry_hash;
    use crate::store::HistoryRow;

    /// Chains written by earlier versions must still verify: the hash is SHA-256 over each
    /// part's length (u64, little-endian) and bytes, as 64 lowercase hex digits. The expected
    /// value was computed outside Rust (Python's hashlib) from the same parts.
    #[test]
    fn an_entry_hashes_as_it_always_has() {
        let row = HistoryRow {
            instance_id: "inst-1".into(),
            seq: 1,
            at: 1_700_000_000_000,
            actor: "window".into(),
            node: Some("receive".into()),
            kind: "step".into(),
            text: "受理: 开始".into(),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            entry_hash(&row),
            "170ee23c8212630b4d9064b6b36e3ac70ec45c8ebf5fd39cad775d1031e5fd96"
        );
    }
}
