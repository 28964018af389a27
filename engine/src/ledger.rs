//! The electronic ledger (台账): the history, hash-chained per instance.
//!
//! Each entry's hash covers the previous entry's hash and every field of the entry; the
//! instance row keeps the number of entries and the last hash. A per-instance chain lets
//! instances write concurrently (a global chain would serialise every write); verification
//! finds an entry changed (its hash), removed or reordered (the chain breaks or the count and
//! head on the instance row disagree), including the last entry.

use crate::store::{HistoryRow, InstanceRow};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The parts an entry's hash covers, each as its length (u64, little-endian) and bytes. The
/// actor's kind and id come last, and only in entries that have them: an entry written before
/// the history recorded them hashes as it did, and a newer entry's hash covers them (taking
/// them away changes the parts, so its hash no longer matches).
fn hash_parts(h: &HistoryRow, mut update: impl FnMut(&[u8])) {
    let actor = (!h.actor_kind.is_empty() || !h.actor_id.is_empty())
        .then_some([h.actor_kind.as_str(), h.actor_id.as_str()]);
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
    ]
    .into_iter()
    .chain(actor.into_iter().flatten())
    {
        update(&(part.len() as u64).to_le_bytes());
        update(part.as_bytes());
    }
}

fn hex64(digest: &[u8]) -> String {
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits; `hex::encode` went through an iterator of chars.
    match hex::encode_to_slice(digest, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => hex::encode(digest),
    }
}

/// Unkeyed hash of an entry chained to `prev_hash` (SHA-256; what every entry had before the
/// ledger key, and what entries written without a key still get): anyone who can write the
/// database can recompute it.
pub fn entry_hash(h: &HistoryRow) -> String {
    let mut d = Sha256::new();
    hash_parts(h, |b| d.update(b));
    hex64(&d.finalize())
}

/// Keyed hash of an entry: `<key id>:<HMAC-SHA256 of the same parts, 64 hex digits>` (see
/// [`crate::ledger_keys`]); without the key nobody can make one that verifies.
pub fn entry_mac(key: &crate::ledger_keys::ChainKey, h: &HistoryRow) -> String {
    use hmac::Mac;
    let mut mac = key.mac.clone();
    hash_parts(h, |b| mac.update(b));
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(key.id.len() + 65);
    out.push_str(&key.id);
    out.push(':');
    out.push_str(&hex64(&digest));
    out
}

/// The hash an entry gets: keyed when the engine has a ledger key.
pub fn seal(key: Option<&crate::ledger_keys::ChainKey>, h: &HistoryRow) -> String {
    match key {
        Some(key) => entry_mac(key, h),
        None => entry_hash(h),
    }
}

/// One history entry as the API and the CSV export show it: its time in the zone of the
/// process's calendar (`2026-09-28T09:00:00+08:00`), and the case it belongs to.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub instance_id: String,
    pub seq: i64,
    pub at: DateTime<FixedOffset>,
    /// The actor's name.
    pub actor: String,
    /// `user`, `token` or `engine`; absent in entries written before the history recorded it.
    pub actor_kind: Option<String>,
    /// The user's or token's id (the step's name for the engine); absent like `actor_kind`.
    pub actor_id: Option<String>,
    /// Who acted as people read it: `王芳 (user)`, `worker-1 (token)`.
    pub by: String,
    pub node: Option<String>,
    pub kind: String,
    pub text: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub hash: String,
    /// The case columns: `business_key`, then the variables the process's configuration names
    /// in `ledger_columns` (personal ones masked). See [`case_columns`].
    #[schema(value_type = Object)]
    pub case: CaseColumns,
}

/// Named values in their declared order (a JSON object in that order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseColumns(pub Vec<(String, Json)>);

impl CaseColumns {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Json> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl Serialize for CaseColumns {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl HistoryEntry {
    /// The entry of `h`, its time shown in `tz`, with the case columns `case`.
    pub fn new(h: HistoryRow, tz: Tz, case: CaseColumns) -> Self {
        let at = DateTime::from_timestamp_millis(h.at).unwrap_or_default();
        HistoryEntry {
            at: at.with_timezone(&tz).fixed_offset(),
            data: serde_json::from_str(&h.data).unwrap_or(serde_json::Value::Null),
            instance_id: h.instance_id,
            seq: h.seq,
            by: crate::actor::shown(&h.actor, &h.actor_kind),
            actor: h.actor,
            actor_kind: (!h.actor_kind.is_empty()).then_some(h.actor_kind),
            actor_id: (!h.actor_id.is_empty()).then_some(h.actor_id),
            node: h.node,
            kind: h.kind,
            text: h.text,
            hash: h.hash,
            case,
        }
    }
}

/// The configuration key naming the case columns of a process's ledger rows.
pub const LEDGER_COLUMNS_KEY: &str = "ledger_columns";

/// The variables a process's configuration names as the case columns of its ledger rows
/// (`ledger_columns: [district, main_category]`): the engine knows no variable by name, so the
/// process says which ones identify a case in the ledger (`yimen check` refuses a name that is
/// not a variable: YM0407).
pub fn case_columns(config: &Json) -> Vec<String> {
    config
        .get(LEDGER_COLUMNS_KEY)
        .and_then(Json::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Why a ledger range does not read. `name` is the end it is about (`from`, `to`), `text`
/// what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`from` is after `to`: give the first day, then the last")]
    Reversed,
    #[error(
        "`{name}`: `{text}` is neither a day (2026-09-01, {tz}) nor an RFC 3339 time (2026-09-01T09:00:00+08:00)"
    )]
    NotADay {
        name: &'static str,
        text: String,
        tz: Tz,
    },
    /// The day begins in a gap of the zone (no local midnight).
    #[error("`{name}`: `{text}` has no midnight in {tz}")]
    NoMidnight {
        name: &'static str,
        text: String,
        tz: Tz,
    },
    #[error("`{name}`: `{text}` is out of range")]
    OutOfRange { name: &'static str, text: String },
}

/// A ledger range `[from, to]` as the CLI and the API take it, as the half-open interval of
/// instants `[start, end)` the store reads. A day (`2026-09-01`) is the whole day in `tz`
/// (the calendar's zone), an RFC 3339 time is that instant; both ends are inclusive, so
/// `from = to = 2026-09-01` is that one day. A missing end is open.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    tz: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RangeError> {
    let start = match from {
        Some(text) => bound(text, tz, "from")?.0,
        None => DateTime::<Utc>::MIN_UTC,
    };
    let end = match to {
        Some(text) => bound(text, tz, "to")?.1,
        None => DateTime::<Utc>::MAX_UTC,
    };
    if end <= start {
        return Err(RangeError::Reversed);
    }
    Ok((start, end))
}

/// The first instant of `text` and the first one after it.
fn bound(
    text: &str,
    tz: Tz,
    name: &'static str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), RangeError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        let at = at.with_timezone(&Utc);
        return Ok((at, at + chrono::Duration::milliseconds(1)));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| RangeError::NotADay {
        name,
        text: text.to_string(),
        tz,
    })?;
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| RangeError::NoMidnight {
                name,
                text: text.to_string(),
                tz,
            })
    };
    let next = day.succ_opt().ok_or_else(|| RangeError::OutOfRange {
        name,
        text: text.to_string(),
    })?;
    Ok((midnight(day)?, midnight(next)?))
}

/// Result of [`verify`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LedgerReport {
    pub instances: usize,
    pub entries: usize,
    /// Entries chained with a key ([`entry_mac`]).
    pub keyed: usize,
    /// Keyed entries whose key was not given: their links were checked, not their HMAC.
    pub keyed_unchecked: usize,
    /// Entries chained without a key ([`entry_hash`]): written before a key was set, or by a
    /// server without one.
    pub unkeyed: usize,
    /// Checkpoints compared with the database.
    pub checkpoints: usize,
    /// Empty when the ledger is intact.
    pub problems: Vec<String>,
}

impl LedgerReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every instance's chain against its rows, without a key: keyed entries are checked
/// for their links only.
pub fn verify(instances: &[InstanceRow], history: &[HistoryRow]) -> LedgerReport {
    verify_with(instances, history, None)
}

/// Checks every instance's chain against its rows; with `keys`, the HMAC of every keyed entry,
/// and that no entry written after the key was made is unkeyed (a chain recomputed without
/// the key).
pub fn verify_with(
    instances: &[InstanceRow],
    history: &[HistoryRow],
    keys: Option<&crate::ledger_keys::LedgerKeys>,
) -> LedgerReport {
    let mut by_instance: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
    for h in history {
        by_instance.entry(&h.instance_id).or_default().push(h);
    }
    let keyed_since = keys.map(|k| k.keyed_since.timestamp_millis());
    let mut counts = Counts::default();
    let mut problems = Vec::new();
    for inst in instances {
        let mut entries = by_instance.remove(inst.id.as_str()).unwrap_or_default();
        entries.sort_by_key(|h| h.seq);
        let mut prev = String::new();
        let mut seen_keyed = false;
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
            let problem =
                entry_problem(&inst.id, h, keys, keyed_since, &mut seen_keyed, &mut counts);
            if let Some(p) = problem {
                problems.push(p);
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
        keyed: counts.keyed,
        keyed_unchecked: counts.keyed_unchecked,
        unkeyed: counts.unkeyed,
        checkpoints: 0,
        problems,
    }
}

/// Entries counted by how they are chained.
#[derive(Default)]
struct Counts {
    keyed: usize,
    keyed_unchecked: usize,
    unkeyed: usize,
}

/// What is wrong with entry `h` of instance `inst` by its own hash or HMAC, if anything.
/// `seen_keyed`: whether an earlier entry of the chain was keyed (set here).
fn entry_problem(
    inst: &str,
    h: &HistoryRow,
    keys: Option<&crate::ledger_keys::LedgerKeys>,
    keyed_since: Option<i64>,
    seen_keyed: &mut bool,
    counts: &mut Counts,
) -> Option<String> {
    match h.hash.split_once(':') {
        Some((id, _)) => {
            counts.keyed += 1;
            *seen_keyed = true;
            match keys {
                None => {
                    counts.keyed_unchecked += 1;
                    None
                }
                Some(keys) => match keys.chain_key_of(id) {
                    None => Some(format!(
                        "instance {}: entry {} is keyed with key {id}, which the key file does not hold (give the key file that wrote it)",
                        inst, h.seq
                    )),
                    Some(key) if entry_mac(key, h) != h.hash => Some(format!(
                        "instance {}: entry {} was changed after it was written (its HMAC does not verify)",
                        inst, h.seq
                    )),
                    Some(_) => None,
                },
            }
        }
        None => {
            counts.unkeyed += 1;
            if entry_hash(h) != h.hash {
                Some(format!(
                    "instance {}: entry {} was changed after it was written",
                    inst, h.seq
                ))
            } else if *seen_keyed {
                Some(format!(
                    "instance {}: entry {} is unkeyed after keyed entries (its chain was recomputed without the key)",
                    inst, h.seq
                ))
            } else if keyed_since.is_some_and(|since| h.at >= since) {
                Some(format!(
                    "instance {}: entry {} is unkeyed but dated after the ledger key was made (its chain was recomputed without the key)",
                    inst, h.seq
                ))
            } else {
                None
            }
        }
    }
}

fn text_of(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| text_of(Some(i)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The ledger as CSV ([`crate::csv`]: a byte-order mark, formulas neutralised), a header line
/// `at,instance,<case columns>,seq,actor,actor_kind,actor_id,node,kind,text,hash` (the actor's
/// kind and id empty in entries written before the history kept them); the case columns are those of
/// the entries (`business_key`, then each process's `ledger_columns`, in order of first
/// appearance); `at` as people read it ([`crate::clock::readable`]).
pub fn to_csv(entries: &[HistoryEntry]) -> String {
    let mut columns: Vec<&str> = vec!["business_key"];
    for e in entries {
        for (name, _) in &e.case.0 {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let mut header = vec!["at", "instance"];
    header.extend(&columns);
    header.extend([
        "seq",
        "actor",
        "actor_kind",
        "actor_id",
        "node",
        "kind",
        "text",
        "hash",
    ]);
    let mut out = crate::csv::header(&header);
    for e in entries {
        let mut fields = vec![crate::clock::readable(&e.at), e.instance_id.clone()];
        fields.extend(columns.iter().map(|c| text_of(e.case.get(c))));
        fields.extend([
            e.seq.to_string(),
            e.actor.clone(),
            e.actor_kind.clone().unwrap_or_default(),
            e.actor_id.clone().unwrap_or_default(),
            e.node.clone().unwrap_or_default(),
            e.kind.clone(),
            e.text.clone(),
            e.hash.clone(),
        ]);
        out.push_str(&crate::csv::line(&fields));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{entry_hash, range};
    use crate::store::HistoryRow;
    use chrono::{DateTime, Utc};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_range_includes_its_last_day_in_the_calendar_zone() {
        let sh = chrono_tz::Asia::Shanghai;
        assert_eq!(
            range(Some("2026-09-01"), Some("2026-09-01"), sh),
            Ok((
                t("2026-09-01T00:00:00+08:00"),
                t("2026-09-02T00:00:00+08:00")
            ))
        );
        assert_eq!(
            range(
                Some("2026-09-01T09:00:00+08:00"),
                Some("2026-09-01T10:00:00+08:00"),
                sh
            ),
            Ok((
                t("2026-09-01T09:00:00+08:00"),
                t("2026-09-01T10:00:00.001+08:00")
            ))
        );
        assert!(range(Some("2026-09-02"), Some("2026-09-01"), sh).is_err());
        let bad = range(Some("yesterday"), None, sh).unwrap_err().to_string();
        assert!(
            bad.contains("`from`") && bad.contains("2026-09-01"),
            "{bad}"
        );
    }

    /// Each CSV row says who acted as the record has it: name, kind and id; an entry written
    /// before the kind and id were kept leaves them empty.
    #[test]
    fn csv_rows_name_the_actor_with_kind_and_id() {
        let row = |seq: i64, kind: &str, id: &str| HistoryRow {
            instance_id: "inst-1".into(),
            seq,
            at: 1_700_000_000_000,
            actor: "王芳".into(),
            actor_kind: kind.into(),
            actor_id: id.into(),
            node: Some("forward".into()),
            kind: "task_completed".into(),
            text: "转办".into(),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: "h".into(),
        };
        let tz = chrono_tz::Asia::Shanghai;
        let entries = [
            super::HistoryEntry::new(row(1, "user", "u-17"), tz, Default::default()),
            super::HistoryEntry::new(row(2, "", ""), tz, Default::default()),
        ];
        let csv = super::to_csv(&entries);
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "at,instance,business_key,seq,actor,actor_kind,actor_id,node,kind,text,hash"
        );
        assert!(
            lines[1].ends_with(",inst-1,,1,王芳,user,u-17,forward,task_completed,转办,h"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(",inst-1,,2,王芳,,,forward,task_completed,转办,h"),
            "{}",
            lines[2]
        );
    }

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
            actor_kind: String::new(),
            actor_id: String::new(),
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

    /// A keyed entry is `<key id>:<HMAC-SHA256 of the same parts>`, so a keyed chain can be
    /// checked outside Rust too. The expected value was computed with Python's hmac and
    /// hashlib (key: 32 bytes of 7; id: the first 4 bytes of SHA-256 of
    /// `yimen ledger chain key id\0` and the key).
    #[test]
    fn a_keyed_entry_hashes_as_documented() {
        let row = HistoryRow {
            instance_id: "inst-1".into(),
            seq: 1,
            at: 1_700_000_000_000,
            actor: "window".into(),
            actor_kind: String::new(),
            actor_id: String::new(),
            node: Some("receive".into()),
            kind: "step".into(),
            text: "受理: 开始".into(),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let key = crate::ledger_keys::ChainKey::from_secret(&[7; 32]).unwrap();
        assert_eq!(
            super::entry_mac(&key, &row),
            "766fafa9:5fc3bb30d5a0271631374a5bea1bc081bbf4b8796acd3d5732a4e0b848141afe"
        );
    }
}
