//! The storage port: what the engine asks of its database, one trait per table or aggregate,
//! in the manner of restate's `storage-api`. `Read*` traits read outside a transaction (on
//! [`Store`]); the others act inside one (on [`Tx`]), and [`Transaction`] is all of them.
//!
//! The engine and the committer call only these; which database answers, and how (SQLite's
//! one writer connection and kept readers, PostgreSQL's kept connections and per-column
//! arrays), is decided here and below, never above. Both stores pass the same contract suite
//! (`engine/tests/contract.rs`).
//!
//! The futures are `Send` because the implementors are concrete; no caller is generic over
//! these traits, so `async fn` is used as written.
#![allow(async_fn_in_trait)]

use super::cases::{self, CaseQuery, PersonalDataReadRow};
use super::{
    BoardQuery, BoardRow, ClaimQuery, DeploymentRow, DocumentRow, HistoryRow, InstanceRow,
    OpenWorkQuery, OutboxRow, SearchRow, SignalCount, SignalRow, Store, TaskCase, TaskQuery,
    TaskRow, TimerRow, Tx, on_pool, on_tx, sqlite, sqlite_direct, sqlite_readers,
};
use crate::error::{EngineError, Result};
use crate::ledger_keys::CaseHead;

/// Deployed process versions, inside a write transaction.
pub trait Deployments {
    /// The version of `key` whose files hash to `hash`, if deployed.
    async fn deployment_by_hash(&mut self, key: &str, hash: &str) -> Result<Option<DeploymentRow>>;
    /// The highest version of `key`, 0 when none.
    async fn max_version(&mut self, key: &str) -> Result<i64>;
    async fn insert_deployment(&mut self, row: &DeploymentRow) -> Result<()>;
    /// Version `version` of `key`, or its latest (`None`).
    async fn deployment_tx(
        &mut self,
        key: &str,
        version: Option<i64>,
    ) -> Result<Option<DeploymentRow>>;
}

/// Deployed process versions, read.
pub trait ReadDeployments {
    async fn latest_version(&self, key: &str) -> Result<Option<i64>>;
    async fn deployment(&self, key: &str, version: Option<i64>) -> Result<Option<DeploymentRow>>;
    async fn deployments(&self) -> Result<Vec<DeploymentRow>>;
}

/// Process instances (cases), inside a write transaction.
pub trait Instances {
    /// The instance, locked for the rest of the transaction (PostgreSQL `FOR UPDATE`).
    async fn lock_instance(&mut self, id: &str) -> Result<Option<InstanceRow>>;
    /// The instances of a JSON array of ids, unlocked.
    async fn instances_by_id(&mut self, ids: &str) -> Result<Vec<InstanceRow>>;
    async fn update_instance(&mut self, row: &InstanceRow) -> Result<()>;
}

/// Process instances, read.
pub trait ReadInstances {
    async fn instance(&self, id: &str) -> Result<Option<InstanceRow>>;
    async fn instances_all(&self) -> Result<Vec<InstanceRow>>;
    /// Every instance's history count and head hash, for the ledger's checkpoints.
    async fn case_heads(&self) -> Result<Vec<CaseHead>>;
}

/// Human and service tasks, inside a write transaction.
pub trait Tasks {
    /// The task, locked for the rest of the transaction.
    async fn lock_task(&mut self, id: &str) -> Result<Option<TaskRow>>;
    async fn update_task(&mut self, row: &TaskRow) -> Result<()>;
    /// Opens again the failed tasks of an instance (an incident resolved); how many.
    async fn reopen_failed_tasks(&mut self, instance: &str, now: i64) -> Result<u64>;
    /// Claims up to `q.max` open tasks of the queues (rows locked by others are skipped).
    async fn claim_tasks(&mut self, q: &ClaimQuery) -> Result<Vec<TaskRow>>;
}

/// Tasks, read.
pub trait ReadTasks {
    async fn task(&self, id: &str) -> Result<Option<TaskRow>>;
    async fn tasks(&self, q: &TaskQuery) -> Result<Vec<TaskRow>>;
    /// The open and claimed tasks of an instance.
    async fn active_tasks(&self, instance: &str) -> Result<Vec<TaskRow>>;
    /// Up to `limit` tasks whose claim the holder of `key` holds (`name`: a claim recorded
    /// without a key).
    async fn claimed_tasks(&self, name: &str, key: &str, limit: i64) -> Result<Vec<TaskRow>>;
    /// Open tasks per queue, of the organisation units of a JSON array (`None`: all).
    async fn open_task_counts(&self, org_units: Option<&str>) -> Result<Vec<(String, i64)>>;
    /// [`ReadTasks::claimed_tasks`] with each task's case, read in the same query.
    async fn claimed_tasks_with_cases(
        &self,
        name: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<(TaskRow, TaskCase)>>;
    /// A page of open work with each task's case, most urgent first, and how many tasks all
    /// pages hold.
    async fn open_work(&self, q: &OpenWorkQuery) -> Result<(Vec<(TaskRow, TaskCase)>, i64)>;
}

/// Timers, inside a write transaction.
pub trait Timers {
    /// Up to `limit` pending timers due at `now`, in due order, locked (PostgreSQL skips
    /// timers another server fires).
    async fn due_timers(&mut self, now: i64, limit: i64) -> Result<Vec<TimerRow>>;
    /// Marks the timers of a JSON array of ids fired; how many were pending.
    async fn fire_timers(&mut self, ids: &str, now: i64) -> Result<u64>;
}

/// Timers, read.
pub trait ReadTimers {
    async fn instance_timers(&self, instance: &str) -> Result<Vec<TimerRow>>;
    async fn next_timer_due(&self) -> Result<Option<i64>>;
}

/// The hash-chained history, inside a write transaction.
pub trait History {
    async fn insert_history_many(&mut self, rows: &[HistoryRow]) -> Result<()>;
    async fn set_history_head(&mut self, instance: &str, count: i64, head: &str) -> Result<()>;
}

/// The history, read.
pub trait ReadHistory {
    async fn history(&self, instance: &str) -> Result<Vec<HistoryRow>>;
    /// Entries with `from <= at < to`, of every instance.
    async fn history_range(&self, from: i64, to: i64) -> Result<Vec<HistoryRow>>;
    async fn history_all(&self) -> Result<Vec<HistoryRow>>;
}

/// Deliveries (webhooks, inbox notices), inside a write transaction.
pub trait Outbox {
    /// Claims due deliveries until `lease_until`; `webhooks` picks a lane (`None`: both).
    async fn claim_outbox(
        &mut self,
        now: i64,
        lease_until: i64,
        max: i64,
        webhooks: Option<bool>,
    ) -> Result<Vec<OutboxRow>>;
}

/// Deliveries, outside a transaction: each call is one statement.
pub trait ReadOutbox {
    /// Marks a delivery done; 0 when it was not pending.
    async fn outbox_delivered(&self, id: &str, now: i64) -> Result<u64>;
    /// Records a failed attempt, retried at `retry_at` or given up (`None`).
    async fn outbox_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<u64>;
    async fn outbox_failures(&self, limit: i64) -> Result<Vec<OutboxRow>>;
    async fn outbox_of(&self, instance: &str) -> Result<Vec<OutboxRow>>;
}

/// Generated documents, read.
pub trait ReadDocuments {
    async fn documents(&self, instance: &str) -> Result<Vec<DocumentRow>>;
}

/// Who may do what: the access generation, bumped when a deployment changes the roles.
pub trait Access {
    async fn bump_access_generation(&mut self) -> Result<()>;
}

/// The search table (`case_search`), inside a write transaction: the backfill's. Events write
/// it through [`super::staged::Staged`], with the variables they change.
pub trait CaseIndex {
    /// Up to `limit` instances whose ids follow `after`, in id order, locked.
    async fn instances_after(&mut self, after: &str, limit: i64) -> Result<Vec<InstanceRow>>;
    /// Writes rows of the search table, each at most once per case and variable.
    async fn upsert_search(&mut self, rows: &[SearchRow]) -> Result<()>;
}

/// Finding cases, the settings every server shares, and the trail of personal data read
/// unmasked; outside a transaction (each call is its own).
pub trait ReadCases {
    /// A page of the cases `q` finds, newest first, and how many it finds in all.
    async fn search_cases(&self, q: &CaseQuery) -> Result<(Vec<InstanceRow>, i64)>;
    /// The rows of the search table of one case.
    async fn search_rows(&self, instance: &str) -> Result<Vec<SearchRow>>;
    /// The setting `name`, stored as `value` first when there is none.
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String>;
    async fn setting(&self, name: &str) -> Result<Option<String>>;
    async fn set_setting(&self, name: &str, value: &str) -> Result<()>;
    async fn record_personal_data_read(&self, row: &PersonalDataReadRow) -> Result<()>;
    /// A page of the recorded reads (of one case, or all), newest first, and how many in all.
    async fn personal_data_reads(
        &self,
        instance: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<PersonalDataReadRow>, i64)>;
}

/// A write transaction: every table at once. Batched writes go through
/// [`super::staged::Staged`], which flushes into one of these.
pub trait Transaction:
    Deployments + Instances + Tasks + Timers + History + Outbox + Access + CaseIndex
{
}

impl<T: Deployments + Instances + Tasks + Timers + History + Outbox + Access + CaseIndex>
    Transaction for T
{
}

impl Deployments for Tx {
    async fn deployment_by_hash(&mut self, key: &str, hash: &str) -> Result<Option<DeploymentRow>> {
        on_tx!(self, deployment_by_hash(key, hash))
    }
    async fn max_version(&mut self, key: &str) -> Result<i64> {
        on_tx!(self, max_version(key))
    }
    async fn insert_deployment(&mut self, row: &DeploymentRow) -> Result<()> {
        on_tx!(self, insert_deployment(row))
    }
    async fn deployment_tx(
        &mut self,
        key: &str,
        version: Option<i64>,
    ) -> Result<Option<DeploymentRow>> {
        on_tx!(self, deployment_tx(key, version))
    }
}

impl Instances for Tx {
    async fn lock_instance(&mut self, id: &str) -> Result<Option<InstanceRow>> {
        on_tx!(self, lock_instance(id))
    }
    async fn instances_by_id(&mut self, ids: &str) -> Result<Vec<InstanceRow>> {
        on_tx!(self, instances_by_id(ids))
    }
    async fn update_instance(&mut self, row: &InstanceRow) -> Result<()> {
        on_tx!(self, update_instance(row))
    }
}

impl Tasks for Tx {
    async fn lock_task(&mut self, id: &str) -> Result<Option<TaskRow>> {
        on_tx!(self, lock_task(id))
    }
    async fn update_task(&mut self, row: &TaskRow) -> Result<()> {
        on_tx!(self, update_task(row))
    }
    async fn reopen_failed_tasks(&mut self, instance: &str, now: i64) -> Result<u64> {
        on_tx!(self, reopen_failed_tasks(instance, now))
    }
    async fn claim_tasks(&mut self, q: &ClaimQuery) -> Result<Vec<TaskRow>> {
        on_tx!(self, claim_tasks(q))
    }
}

impl Timers for Tx {
    async fn due_timers(&mut self, now: i64, limit: i64) -> Result<Vec<TimerRow>> {
        on_tx!(self, due_timers(now, limit))
    }
    async fn fire_timers(&mut self, ids: &str, now: i64) -> Result<u64> {
        on_tx!(self, fire_timers(ids, now))
    }
}

impl History for Tx {
    async fn insert_history_many(&mut self, rows: &[HistoryRow]) -> Result<()> {
        on_tx!(self, insert_history_many(rows))
    }
    async fn set_history_head(&mut self, instance: &str, count: i64, head: &str) -> Result<()> {
        on_tx!(self, set_history_head(instance, count, head))
    }
}

impl Outbox for Tx {
    async fn claim_outbox(
        &mut self,
        now: i64,
        lease_until: i64,
        max: i64,
        webhooks: Option<bool>,
    ) -> Result<Vec<OutboxRow>> {
        on_tx!(self, claim_outbox(now, lease_until, max, webhooks))
    }
}

impl Access for Tx {
    async fn bump_access_generation(&mut self) -> Result<()> {
        on_tx!(self, bump_access_generation())
    }
}

impl CaseIndex for Tx {
    async fn instances_after(&mut self, after: &str, limit: i64) -> Result<Vec<InstanceRow>> {
        on_tx!(self, instances_after(after, limit))
    }
    async fn upsert_search(&mut self, rows: &[SearchRow]) -> Result<()> {
        on_tx!(self, upsert_search(rows))
    }
}

/// `on_pool!` on the store's pool, as the engine's error.
macro_rules! read {
    ($store:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        on_pool!($store.pool(), $f($($arg),*)).map_err(EngineError::from)
    };
}

impl ReadDeployments for Store {
    async fn latest_version(&self, key: &str) -> Result<Option<i64>> {
        read!(self, latest_version(key))
    }
    async fn deployment(&self, key: &str, version: Option<i64>) -> Result<Option<DeploymentRow>> {
        read!(self, deployment(key, version))
    }
    async fn deployments(&self) -> Result<Vec<DeploymentRow>> {
        read!(self, deployments())
    }
}

impl ReadInstances for Store {
    async fn instance(&self, id: &str) -> Result<Option<InstanceRow>> {
        read!(self, instance(id))
    }
    async fn instances_all(&self) -> Result<Vec<InstanceRow>> {
        read!(self, instances_all())
    }
    async fn case_heads(&self) -> Result<Vec<CaseHead>> {
        read!(self, case_heads())
    }
}

impl ReadTasks for Store {
    /// SQLite in a file: on a kept read connection, on the caller's thread.
    async fn task(&self, id: &str) -> Result<Option<TaskRow>> {
        let owned = id.to_string();
        sqlite_readers::read_or(
            self.readers().map(|r| &**r),
            |db| Ok(sqlite_direct::tasks(db, sqlite::TASK_BY_ID, &owned)?.pop()),
            || async { read!(self, task(id)) },
        )
        .await
    }
    async fn tasks(&self, q: &TaskQuery) -> Result<Vec<TaskRow>> {
        read!(self, tasks(q))
    }
    async fn active_tasks(&self, instance: &str) -> Result<Vec<TaskRow>> {
        read!(self, active_tasks(instance))
    }
    async fn claimed_tasks(&self, name: &str, key: &str, limit: i64) -> Result<Vec<TaskRow>> {
        read!(self, claimed_tasks(name, key, limit))
    }
    async fn open_task_counts(&self, org_units: Option<&str>) -> Result<Vec<(String, i64)>> {
        read!(self, open_task_counts(org_units))
    }
    async fn claimed_tasks_with_cases(
        &self,
        name: &str,
        key: &str,
        limit: i64,
    ) -> Result<Vec<(TaskRow, TaskCase)>> {
        read!(self, claimed_tasks_with_cases(name, key, limit))
    }
    async fn open_work(&self, q: &OpenWorkQuery) -> Result<(Vec<(TaskRow, TaskCase)>, i64)> {
        read!(self, open_work(q))
    }
}

impl ReadTimers for Store {
    async fn instance_timers(&self, instance: &str) -> Result<Vec<TimerRow>> {
        read!(self, instance_timers(instance))
    }
    async fn next_timer_due(&self) -> Result<Option<i64>> {
        read!(self, next_timer_due())
    }
}

impl ReadHistory for Store {
    async fn history(&self, instance: &str) -> Result<Vec<HistoryRow>> {
        read!(self, history(instance))
    }
    async fn history_range(&self, from: i64, to: i64) -> Result<Vec<HistoryRow>> {
        read!(self, history_range(from, to))
    }
    async fn history_all(&self) -> Result<Vec<HistoryRow>> {
        read!(self, history_all())
    }
}

impl ReadOutbox for Store {
    async fn outbox_delivered(&self, id: &str, now: i64) -> Result<u64> {
        read!(self, outbox_delivered(id, now))
    }
    async fn outbox_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<u64> {
        read!(self, outbox_failed(id, error, retry_at))
    }
    async fn outbox_failures(&self, limit: i64) -> Result<Vec<OutboxRow>> {
        read!(self, outbox_failures(limit))
    }
    async fn outbox_of(&self, instance: &str) -> Result<Vec<OutboxRow>> {
        read!(self, outbox_of(instance))
    }
}

impl ReadDocuments for Store {
    async fn documents(&self, instance: &str) -> Result<Vec<DocumentRow>> {
        read!(self, documents(instance))
    }
}

impl ReadCases for Store {
    async fn search_cases(&self, q: &CaseQuery) -> Result<(Vec<InstanceRow>, i64)> {
        Ok(cases::search_cases(self.pool(), q).await?)
    }
    async fn search_rows(&self, instance: &str) -> Result<Vec<SearchRow>> {
        Ok(cases::search_rows(self.pool(), instance).await?)
    }
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        Ok(cases::setting_or_insert(self.pool(), name, value).await?)
    }
    async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(cases::setting(self.pool(), name).await?)
    }
    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        Ok(cases::set_setting(self.pool(), name, value).await?)
    }
    async fn record_personal_data_read(&self, row: &PersonalDataReadRow) -> Result<()> {
        Ok(cases::record_personal_data_read(self.pool(), row).await?)
    }
    async fn personal_data_reads(
        &self,
        instance: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<PersonalDataReadRow>, i64)> {
        Ok(cases::personal_data_reads(self.pool(), instance, limit, offset).await?)
    }
}

/// Oversight, read: the oversight board's clocks and the signals recorded.
pub trait ReadOversight {
    /// A page of running and paused clocks, most overdue first, and how many all pages hold.
    async fn board_clocks(&self, q: &BoardQuery) -> Result<(Vec<BoardRow>, i64)>;
    /// Signals recorded in `[from, to)` per light and level, of the units of a JSON array
    /// (`None`: all).
    async fn signal_counts(
        &self,
        org_units: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<SignalCount>>;
    /// The signals of one case.
    async fn case_signals(&self, instance: &str) -> Result<Vec<SignalRow>>;
}

impl ReadOversight for Store {
    async fn board_clocks(&self, q: &BoardQuery) -> Result<(Vec<BoardRow>, i64)> {
        read!(self, board_clocks(q))
    }
    async fn signal_counts(
        &self,
        org_units: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<SignalCount>> {
        read!(self, signal_counts(org_units, from, to))
    }
    async fn case_signals(&self, instance: &str) -> Result<Vec<SignalRow>> {
        read!(self, case_signals(instance))
    }
}
