//! What a committer's batch reads before its events run (`commit::commit_batch`): its claims,
//! then every row its completions and starts will need, in a few statements. On SQLite this
//! runs on the writer connection, which also begins the transaction, and takes what the last
//! batches left ([`Carry`]) instead of reading it; on PostgreSQL it is a few statements with
//! arrays. The committer sees one method, [`Store::load_batch`], and the carry's life around it
//! ([`Store::take_carry`], [`Store::resume`], [`Store::keep`]).

use super::port::{Instances as _, Tasks as _};
use super::staged::{Carry, Staged};
use super::{ClaimQuery, InstanceRow, Store, TaskRow, Tx, json_list, sqlite, sqlite_direct};
use crate::error::Result;
use std::collections::HashMap;

/// The tasks of each claim, and their instances as read.
pub(crate) type Claimed = (Vec<Vec<TaskRow>>, HashMap<String, InstanceRow>);

/// Records the history entries of claims that took a task over from a lapsed claim; the
/// engine's (it chains history), called with those instances loaded in the unit of work.
pub(crate) type RecordLapsed = fn(&mut Staged, &[Vec<TaskRow>]);

/// What a batch asks to have read: its claims, the tasks its completions finish, the
/// (process, business key) pairs its starts use.
pub(crate) struct BatchReads<'a> {
    pub(crate) claims: &'a [&'a ClaimQuery],
    pub(crate) tasks: &'a [&'a String],
    pub(crate) keys: &'a [(String, String)],
}

impl Store {
    /// The unit of work a batch attempt starts with: the first attempt takes what the last
    /// batches left (SQLite in a file; taken by [`Store::take_carry`] before the transaction,
    /// put back by [`Store::keep`] after a commit), a retry starts without it.
    pub(crate) fn resume(
        carry: &mut Option<Carry>,
        chain_key: Option<crate::ledger_keys::ChainKey>,
    ) -> Staged {
        match carry.take() {
            Some(carry) => Staged::with_carry(carry, chain_key),
            None => Staged::new(chain_key),
        }
    }

    /// After a batch committed: keeps what it left for the next one.
    pub(crate) fn keep(&self, st: Staged) {
        if self.carries() {
            self.put_carry(st.into_carry());
        }
    }

    /// Runs the batch's claims (before its other events, so that they see them) and reads
    /// every row the batch needs.
    pub(crate) async fn load_batch(
        &self,
        tx: &mut Tx,
        st: &mut Staged,
        reads: BatchReads<'_>,
        record_lapsed: RecordLapsed,
    ) -> Result<Claimed> {
        match tx {
            Tx::Sqlite(t) => {
                let connection = t.connection();
                let db = &mut t.db()?;
                if self.carries() {
                    // In the transaction, so with the write lock: nobody commits until this
                    // batch has.
                    let version = sqlite_direct::data_version(db)?;
                    st.carry().check(connection, version, self.write_epoch());
                }
                let claimed = claims_direct(db, st, reads.claims, record_lapsed)?;
                st.prefetch_tasks_direct(db, reads.tasks)?;
                st.prefetch_business_keys_direct(db, reads.keys)?;
                Ok(claimed)
            }
            Tx::Postgres(_) => {
                let claimed = claims_in(tx, st, reads.claims, record_lapsed).await?;
                st.prefetch_tasks(tx, reads.tasks).await?;
                st.prefetch_business_keys(tx, reads.keys).await?;
                Ok(claimed)
            }
        }
    }
}

/// The claims of a batch: one statement per claim, and one read of the claimed tasks'
/// instances (for the answers). A claim writes only its task row: its history entry is
/// written when the claim ends (`engine::claim_entry`), so a claim neither locks nor rewrites
/// its instance. A claim that took a task over from one whose lease ran out records that one
/// now.
async fn claims_in(
    tx: &mut Tx,
    st: &mut Staged,
    queries: &[&ClaimQuery],
    record_lapsed: RecordLapsed,
) -> Result<Claimed> {
    let mut claimed = Vec::with_capacity(queries.len());
    for q in queries {
        claimed.push(tx.claim_tasks(q).await?);
    }
    let lapsed = lapsed_instances(&claimed);
    if !lapsed.is_empty() {
        st.prefetch_instances(tx, lapsed).await?;
        record_lapsed(st, &claimed);
    }
    let instances = match claimed_instances(&claimed) {
        Some(ids) => tx.instances_by_id(&ids).await?,
        None => Vec::new(),
    };
    Ok((claimed, by_id(instances)))
}

/// [`claims_in`] on SQLite's writer connection.
fn claims_direct(
    db: &mut sqlite_direct::Db<'_>,
    st: &mut Staged,
    queries: &[&ClaimQuery],
    record_lapsed: RecordLapsed,
) -> Result<Claimed> {
    let claimed = sqlite_direct::claims(db, queries)?;
    // Before anything is loaded from the carry: the claims changed these rows.
    st.carry().claimed(claimed.iter().flatten());
    let lapsed = lapsed_instances(&claimed);
    if !lapsed.is_empty() {
        st.prefetch_instances_direct(db, lapsed)?;
        record_lapsed(st, &claimed);
    }
    // The claimed tasks' instances for the answers: as the batch or the carry has them, else
    // read.
    let mut known = HashMap::new();
    let mut unknown: Vec<&String> = Vec::new();
    for t in claimed.iter().flatten() {
        if st.instance(&t.instance_id).is_some() || known.contains_key(&t.instance_id) {
            continue;
        }
        match st.carry().instance(&t.instance_id) {
            Some(row) => {
                known.insert(t.instance_id.clone(), row.clone());
            }
            None => unknown.push(&t.instance_id),
        }
    }
    unknown.sort();
    unknown.dedup();
    if !unknown.is_empty() {
        let ids = json_list(unknown);
        known.extend(by_id(sqlite_direct::instances(
            db,
            sqlite::INSTANCES_BY_ID,
            &[&ids],
        )?));
    }
    Ok((claimed, known))
}

/// Instances of claimed tasks whose previous claim lapsed (its history entry is due now).
fn lapsed_instances(claimed: &[Vec<TaskRow>]) -> Vec<String> {
    let mut lapsed: Vec<String> = claimed
        .iter()
        .flatten()
        .filter(|t| t.lapsed_by.is_some())
        .map(|t| t.instance_id.clone())
        .collect();
    lapsed.sort();
    lapsed.dedup();
    lapsed
}

/// The claimed tasks' instances, as a JSON list; `None` when nothing was claimed.
fn claimed_instances(claimed: &[Vec<TaskRow>]) -> Option<String> {
    let mut ids: Vec<&String> = claimed.iter().flatten().map(|t| &t.instance_id).collect();
    ids.sort();
    ids.dedup();
    (!ids.is_empty()).then(|| json_list(ids))
}

fn by_id(instances: Vec<InstanceRow>) -> HashMap<String, InstanceRow> {
    instances
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect()
}
