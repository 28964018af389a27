//! How history entries are stored: one row per run of an instance's entries written together
//! (a "pack"), not one row per entry.
//!
//! An event writes several entries at once (a completion: the claim, the completion, the
//! variables it set, the next step's task). As separate rows they were the most numerous
//! writes of a case, each with its own heap tuple and two index entries (docs/performance.md). A pack is one row: `seq` is its first entry's number,
//! `entries` a JSON array of the entries in order (entry `k` of the array is number `seq + k`),
//! `first_at` the earliest of their times. Every entry keeps its own time and hashes, so the
//! chain and [`crate::ledger::verify`] are unchanged: the engine and the API see
//! [`HistoryRow`]s.
//!
//! The times of one pack's entries differ (a claim's entry keeps the time of the claim and is
//! written when the claim ends) by at most [`SPAN`]; so the entries of a time range `[from,
//! to)` are in the packs with `first_at` in `[from - SPAN, to)`, one index range.

use super::HistoryRow;
use serde::{Deserialize, Serialize};

/// The most by which the times of one pack's entries differ: a claim held longer than this
/// before it ended is a pack of its own.
pub(crate) const SPAN: i64 = 24 * 3600 * 1000;

/// One stored row of the `history` table.
#[derive(Debug)]
pub(crate) struct HistoryPack<'a> {
    pub(crate) instance_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) first_at: i64,
    /// The latest of the entries' times (not stored; for [`SPAN`]).
    pub(crate) last_at: i64,
    /// JSON array of [`Entry`].
    pub(crate) entries: String,
}

/// An entry inside a pack: the fields of [`HistoryRow`] that are not the pack's.
#[derive(Serialize)]
struct EntryRef<'a> {
    at: i64,
    actor: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    actor_kind: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    actor_id: &'a str,
    node: Option<&'a str>,
    kind: &'a str,
    text: &'a str,
    data: &'a str,
    prev_hash: &'a str,
    hash: &'a str,
}

#[derive(Deserialize)]
struct Entry {
    at: i64,
    actor: String,
    /// Absent in entries written before the history recorded the actor's kind and id.
    #[serde(default)]
    actor_kind: String,
    #[serde(default)]
    actor_id: String,
    node: Option<String>,
    kind: String,
    text: String,
    data: String,
    prev_hash: String,
    hash: String,
}

/// Packs `rows` (in the order the chain made them): each run of one instance's consecutive
/// entries becomes one pack, as long as their times differ by at most [`SPAN`].
pub(crate) fn pack(rows: &[HistoryRow]) -> Vec<HistoryPack<'_>> {
    let mut packs: Vec<HistoryPack<'_>> = Vec::new();
    let mut last_seq = 0;
    for h in rows {
        let entry = EntryRef {
            at: h.at,
            actor: &h.actor,
            actor_kind: &h.actor_kind,
            actor_id: &h.actor_id,
            node: h.node.as_deref(),
            kind: &h.kind,
            text: &h.text,
            data: &h.data,
            prev_hash: &h.prev_hash,
            hash: &h.hash,
        };
        // Serialising borrowed strings into a `Vec` cannot fail.
        let json = serde_json::to_string(&entry).unwrap_or_default();
        match packs.last_mut() {
            Some(p)
                if p.instance_id == h.instance_id
                    && last_seq + 1 == h.seq
                    && p.last_at.max(h.at) - p.first_at.min(h.at) <= SPAN =>
            {
                p.first_at = p.first_at.min(h.at);
                p.last_at = p.last_at.max(h.at);
                p.entries.pop(); // the closing `]`
                p.entries.push(',');
                p.entries.push_str(&json);
                p.entries.push(']');
            }
            _ => packs.push(HistoryPack {
                instance_id: &h.instance_id,
                seq: h.seq,
                first_at: h.at,
                last_at: h.at,
                entries: format!("[{json}]"),
            }),
        }
        last_seq = h.seq;
    }
    packs
}

/// The entries of one stored pack. A pack that is not the JSON this module writes (changed by
/// hand) reads as one entry that says so, whose hash matches nothing: `yimen verify` reports
/// it as changed, and reading the history does not fail.
pub(crate) fn unpack(
    instance_id: String,
    seq: i64,
    first_at: i64,
    entries: &str,
) -> Vec<HistoryRow> {
    match serde_json::from_str::<Vec<Entry>>(entries) {
        Ok(list) => list
            .into_iter()
            .enumerate()
            .map(|(k, e)| HistoryRow {
                instance_id: instance_id.clone(),
                seq: seq + k as i64,
                at: e.at,
                actor: e.actor,
                actor_kind: e.actor_kind,
                actor_id: e.actor_id,
                node: e.node,
                kind: e.kind,
                text: e.text,
                data: e.data,
                prev_hash: e.prev_hash,
                hash: e.hash,
            })
            .collect(),
        Err(e) => vec![HistoryRow {
            instance_id,
            seq,
            at: first_at,
            actor: String::new(),
            actor_kind: String::new(),
            actor_id: String::new(),
            node: None,
            kind: "unreadable".into(),
            text: format!("stored history entries starting at {seq} are not readable: {e}"),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(instance: &str, seq: i64, at: i64, text: &str) -> HistoryRow {
        HistoryRow {
            instance_id: instance.into(),
            seq,
            at,
            actor: "window \"1\"".into(),
            actor_kind: if seq % 3 == 0 {
                String::new()
            } else {
                "token".into()
            },
            actor_id: if seq % 3 == 0 {
                String::new()
            } else {
                format!("t{seq}")
            },
            node: (seq % 2 == 0).then(|| "review".into()),
            kind: "step".into(),
            text: text.into(),
            data: r#"{"var":"名字"}"#.into(),
            prev_hash: format!("h{}", seq - 1),
            hash: format!("h{seq}"),
        }
    }

    #[test]
    fn packs_runs_of_one_instance_within_a_span_and_unpacks_them_unchanged() {
        let rows = vec![
            row("a", 1, 10, "started"),
            row("a", 2, 10, "task, \"quoted\""),
            row("b", 7, 10, "other instance"),
            row("a", 3, 10, "after b: a new pack"),
            row("a", 4, 8, "an earlier time (a claim's): the same pack"),
            row("a", 5, 12, "a later time: the same pack"),
            row("a", 7, 11, "a gap in numbers: a new pack"),
            row("a", 8, 11 + SPAN, "the most apart: the same pack"),
            row("a", 9, 10, "too far apart: a new pack"),
        ];
        let packs = pack(&rows);
        let shape: Vec<(&str, i64, i64, i64)> = packs
            .iter()
            .map(|p| (p.instance_id, p.seq, p.first_at, p.last_at))
            .collect();
        assert_eq!(
            shape,
            [
                ("a", 1, 10, 10),
                ("b", 7, 10, 10),
                ("a", 3, 8, 12),
                ("a", 7, 11, 11 + SPAN),
                ("a", 9, 10, 10),
            ]
        );
        let back: Vec<HistoryRow> = packs
            .iter()
            .flat_map(|p| unpack(p.instance_id.into(), p.seq, p.first_at, &p.entries))
            .collect();
        assert_eq!(format!("{back:?}"), format!("{rows:?}"));
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn a_pack_changed_by_hand_reads_as_one_entry_that_matches_no_hash() {
        let back = unpack("a".into(), 3, 10, "[{\"actor\": 1}");
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].seq, back[0].kind.as_str()), (3, "unreadable"));
        assert!(back[0].text.contains("starting at 3"), "{}", back[0].text);
        assert_ne!(crate::ledger::entry_hash(&back[0]), back[0].hash);
    }

    /// A time range reads its entries from packs that start before it, and leaves out the
    /// entries of those packs that are not in it.
    #[tokio::test]
    async fn a_time_range_reads_its_entries_also_from_packs_that_start_before_it() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::migrate!("../migrations/sqlite")
            .run(&pool)
            .await
            .unwrap();
        let hour = 3600 * 1000;
        // A claimed at 0, completed at 10 h; b's entries at 5 h; c's a day and more earlier.
        let rows = vec![
            row("a", 1, 0, "claimed"),
            row("a", 2, 10 * hour, "completed"),
            row("a", 3, 10 * hour, "next task"),
            row("b", 1, 5 * hour, "started"),
            row("c", 1, -SPAN - 2 * hour, "long ago"),
            row("c", 2, -hour, "a claim held over a day: a pack of its own"),
        ];
        let packs = pack(&rows);
        assert_eq!(packs.len(), 4);
        for p in &packs {
            sqlx::query(
                "INSERT INTO history (instance_id, seq, first_at, entries) VALUES ($1, $2, $3, $4)",
            )
            .bind(p.instance_id)
            .bind(p.seq)
            .bind(p.first_at)
            .bind(&p.entries)
            .execute(&pool)
            .await
            .unwrap();
        }
        let range = |from: i64, to: i64| {
            let pool = pool.clone();
            async move {
                let read = crate::store::sqlite::history_range(&pool, from, to)
                    .await
                    .unwrap();
                read.iter()
                    .map(|h| format!("{}{}", h.instance_id, h.seq))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(range(hour, 11 * hour).await, ["b1", "a2", "a3"]);
        assert_eq!(range(0, 10 * hour).await, ["a1", "b1"]);
        assert_eq!(range(10 * hour, 10 * hour + 1).await, ["a2", "a3"]);
        assert_eq!(range(-2 * SPAN, 0).await, ["c1", "c2"]);
        assert!(range(11 * hour, 12 * hour).await.is_empty());
    }
}
