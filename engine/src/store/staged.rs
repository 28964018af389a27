//! The unit of work of a write transaction: the rows of the instances an event touches (the
//! instance, its open tasks, its pending timers) are read once, changed in memory, and written
//! back with a few multi-row statements at the end ([`Staged::flush`]).
//!
//! Why: a statement costs a network round trip on PostgreSQL, and on SQLite a descent
//! through its indexes, each more than the work of an event in memory. Written row by row, an event costs about ten
//! statements; staged, a batch of events (group commit, `commit.rs`) costs about ten in all.
//!
//! Rules that keep it exact:
//! - An instance is "loaded" with ALL its open/claimed/failed tasks and pending timers, so that
//!   "cancel the instance's open tasks/timers" can be done in memory.
//! - Loads are cached reads and are never undone; changes are journaled, so that a refused
//!   event rolls back to its [`Mark`] and leaves nothing behind (group commit).
//! - Nothing else may write the same rows in the transaction before [`Staged::flush`]; the
//!   engine flushes before any direct SQL that follows and before commit.

use crate::TaskState;
use crate::error::Result;
use crate::runtime::state::Status;
use crate::store::TimerState;
use crate::store::{
    ActionRow, CaseClockRow, DocumentRow, HistoryRow, InstanceRow, OutboxRow, SearchRow, SignalRow,
    TaskRow, TimerRow, Tx, json_list, on_tx, postgres, sqlite, sqlite_direct,
};
// A batch's maps are keyed by ids and hashed on every lookup: foldhash, cheaper than SipHash
// and seeded per process too (docs/performance.md).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    Clean,
    New,
    Dirty,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    row: T,
    change: Change,
}

// A task row is the largest: boxing it would cost an allocation for every task a batch
// changes, to save a few words in a journal that lives one batch.
#[allow(clippy::large_enum_variant)]
enum Undo {
    Instance(String, Option<Slot<InstanceRow>>),
    Task(String, Option<Slot<TaskRow>>),
    Timer(String, Option<Slot<(TimerRow, i64)>>),
}

/// Where to roll back to (see [`Staged::rollback`]).
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    journal: usize,
    history: usize,
    outbox: usize,
    documents: usize,
    search: usize,
    signals: usize,
    clocks: usize,
    actions: usize,
}

#[derive(Default)]
pub(crate) struct Staged {
    instances: HashMap<String, Slot<InstanceRow>>,
    /// Instances whose live tasks and pending timers are all in `tasks` / `timers`.
    loaded: HashSet<String>,
    tasks: HashMap<String, Slot<TaskRow>>,
    /// Timers with their `created_at`.
    timers: HashMap<String, Slot<(TimerRow, i64)>>,
    history: Vec<HistoryRow>,
    outbox: Vec<OutboxRow>,
    documents: Vec<DocumentRow>,
    /// Deadline signals (written once each) and clocks as they stand (a later row of the same
    /// case and clock wins).
    signals: Vec<SignalRow>,
    clocks: Vec<CaseClockRow>,
    actions: Vec<ActionRow>,
    /// Rows of the search table, in the order staged (a later row of the same case and
    /// variable wins).
    search: Vec<SearchRow>,
    journal: Vec<Undo>,
    /// Business keys looked up in advance: (process, key) → instance id.
    business_keys: HashMap<(String, String), String>,
    /// Business keys known to be absent from the database (looked up in advance).
    keys_checked: HashSet<(String, String)>,
    /// What the committer's earlier batches left, loaded from instead of the database (SQLite's
    /// committer only; else empty).
    carry: Carry,
    /// The key the ledger's chain is written with (none: unkeyed; see `ledger_keys`).
    chain_key: Option<crate::ledger_keys::ChainKey>,
}

fn live(t: &TaskRow) -> bool {
    matches!(
        t.state,
        crate::TaskState::Open | crate::TaskState::Claimed | crate::TaskState::Failed
    )
}

impl Staged {
    pub(crate) fn new(chain_key: Option<crate::ledger_keys::ChainKey>) -> Staged {
        Staged {
            chain_key,
            ..Staged::default()
        }
    }

    /// A unit of work that loads from `carry` before reading (see [`Carry`]).
    pub(crate) fn with_carry(
        carry: Carry,
        chain_key: Option<crate::ledger_keys::ChainKey>,
    ) -> Staged {
        Staged {
            carry,
            chain_key,
            ..Staged::default()
        }
    }

    /// The key history entries are chained with.
    pub(crate) fn chain_key(&self) -> Option<&crate::ledger_keys::ChainKey> {
        self.chain_key.as_ref()
    }

    pub(crate) fn carry(&mut self) -> &mut Carry {
        &mut self.carry
    }

    /// After the batch committed: the carry, with what this unit of work left in it.
    pub(crate) fn into_carry(mut self) -> Carry {
        let mut carry = std::mem::take(&mut self.carry);
        carry.absorb(self);
        carry
    }

    /// Loads a carried instance as if read: row, live tasks, pending timers (rows cached
    /// already stay).
    fn adopt(&mut self, c: Carried) {
        for t in c.tasks {
            self.tasks.entry(t.id.clone()).or_insert(Slot {
                row: t,
                change: Change::Clean,
            });
        }
        self.cache_loaded(vec![c.row], c.timers);
    }

    /// Loads from the carry those of `ids` it holds; the others, to be read.
    fn adopt_carried(&mut self, ids: Vec<String>) -> Vec<String> {
        if self.carry.instances.is_empty() {
            return ids;
        }
        let mut rest = Vec::with_capacity(ids.len());
        for id in ids {
            match self.carry.take(&id) {
                Some(c) => self.adopt(c),
                None => rest.push(id),
            }
        }
        rest
    }

    // ---- loading ----

    /// Reads (and on PostgreSQL locks) the tasks and their instances, with every live task
    /// and pending timer of those instances: three statements for any number of tasks.
    pub(crate) async fn prefetch_tasks(
        &mut self,
        tx: &mut Tx,
        ids: &[impl AsRef<str>],
    ) -> Result<()> {
        if let Tx::Sqlite(t) = &mut *tx {
            return self.prefetch_tasks_direct(&mut t.db()?, ids);
        }
        let Some(list) = self.tasks_wanted(ids) else {
            return Ok(());
        };
        let tasks = on_tx!(&mut *tx, lock_tasks_with_siblings(&list))?;
        let instances = self.cache_tasks(tasks);
        self.load_instances(tx, instances, false).await
    }

    /// [`Self::prefetch_tasks`] on SQLite's writer connection.
    pub(crate) fn prefetch_tasks_direct(
        &mut self,
        db: &mut sqlite_direct::Db<'_>,
        ids: &[impl AsRef<str>],
    ) -> Result<()> {
        if !self.carry.instances.is_empty() {
            let owners: Vec<String> = ids
                .iter()
                .filter(|id| !self.tasks.contains_key(id.as_ref()))
                .filter_map(|id| self.carry.owner.get(id.as_ref()).cloned())
                .collect();
            self.adopt_carried(owners);
        }
        let Some(list) = self.tasks_wanted(ids) else {
            return Ok(());
        };
        let tasks = sqlite_direct::tasks(db, sqlite::LOCK_TASKS_WITH_SIBLINGS, &list)?;
        let instances = self.cache_tasks(tasks);
        let ids = self.not_loaded(instances);
        self.load_instances_direct(db, ids, false)
    }

    /// The ids among `ids` of tasks not cached yet, as a JSON list, if any.
    fn tasks_wanted(&self, ids: &[impl AsRef<str>]) -> Option<String> {
        let ids: Vec<&str> = ids
            .iter()
            .map(|id| id.as_ref())
            .filter(|id| !self.tasks.contains_key(*id))
            .collect();
        (!ids.is_empty()).then(|| serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
    }

    /// [`Self::prefetch_instances`] on SQLite's writer connection.
    pub(crate) fn prefetch_instances_direct(
        &mut self,
        db: &mut sqlite_direct::Db<'_>,
        ids: Vec<String>,
    ) -> Result<()> {
        let ids = self.not_loaded(ids);
        self.load_instances_direct(db, ids, true)
    }

    /// Caches tasks read from the database (rows already cached stay); their instances' ids.
    fn cache_tasks(&mut self, tasks: Vec<TaskRow>) -> Vec<String> {
        let instances: HashSet<String> = tasks.iter().map(|t| t.instance_id.clone()).collect();
        for t in tasks {
            self.tasks.entry(t.id.clone()).or_insert(Slot {
                row: t,
                change: Change::Clean,
            });
        }
        instances.into_iter().collect()
    }

    /// Loads instances (locked) with their live tasks and pending timers.
    pub(crate) async fn prefetch_instances(&mut self, tx: &mut Tx, ids: Vec<String>) -> Result<()> {
        self.load_instances(tx, ids, true).await
    }

    /// Business keys of the starts to come, looked up in one statement.
    pub(crate) async fn prefetch_business_keys(
        &mut self,
        tx: &mut Tx,
        keys: &[(String, String)],
    ) -> Result<()> {
        if let Tx::Sqlite(t) = &mut *tx {
            return self.prefetch_business_keys_direct(&mut t.db()?, keys);
        }
        let Some((processes, wanted)) = self.keys_wanted(keys) else {
            return Ok(());
        };
        let found = on_tx!(&mut *tx, instances_by_business_keys(&processes, &wanted))?;
        self.keys_found(keys, found);
        Ok(())
    }

    /// [`Self::prefetch_business_keys`] on SQLite's writer connection.
    pub(crate) fn prefetch_business_keys_direct(
        &mut self,
        db: &mut sqlite_direct::Db<'_>,
        keys: &[(String, String)],
    ) -> Result<()> {
        let Some((processes, wanted)) = self.keys_wanted(keys) else {
            return Ok(());
        };
        let found = sqlite_direct::instances(db, sqlite::BY_BUSINESS_KEYS, &[&processes, &wanted])?;
        self.keys_found(keys, found);
        Ok(())
    }

    /// The (process, key) pairs of `keys` not looked up yet, if any, as two JSON lists of the
    /// same length.
    fn keys_wanted(&self, keys: &[(String, String)]) -> Option<(String, String)> {
        let mut wanted: Vec<&(String, String)> = keys
            .iter()
            .filter(|pair| !self.keys_checked.contains(*pair))
            .collect();
        if wanted.is_empty() {
            return None;
        }
        wanted.sort();
        wanted.dedup();
        Some((
            json_list(wanted.iter().map(|(p, _)| p)),
            json_list(wanted.iter().map(|(_, k)| k)),
        ))
    }

    /// Remembers `keys` as looked up, and the instances found for them.
    fn keys_found(&mut self, keys: &[(String, String)], found: Vec<InstanceRow>) {
        for pair in keys {
            self.keys_checked.insert(pair.clone());
        }
        for row in found {
            if let Some(bk) = &row.business_key {
                self.business_keys
                    .insert((row.process_key.clone(), bk.clone()), row.id.clone());
            }
        }
    }

    /// Loads instances (locked) with their live tasks and pending timers; `tasks_too`: the
    /// live tasks are not yet cached.
    async fn load_instances(
        &mut self,
        tx: &mut Tx,
        ids: Vec<String>,
        tasks_too: bool,
    ) -> Result<()> {
        let ids = self.not_loaded(ids);
        if ids.is_empty() {
            return Ok(());
        }
        if let Tx::Sqlite(t) = &mut *tx {
            return self.load_instances_direct(&mut t.db()?, ids, tasks_too);
        }
        let list = json_list(&ids);
        // Lock order task → instance, as everywhere (PostgreSQL).
        if tasks_too {
            let tasks = on_tx!(&mut *tx, lock_live_tasks(&list))?;
            self.cache_tasks(tasks);
        }
        let rows = on_tx!(&mut *tx, lock_instances(&list))?;
        let timers = on_tx!(&mut *tx, pending_timers(&list))?;
        self.cache_loaded(rows, timers);
        Ok(())
    }

    /// [`Self::load_instances`] on SQLite's writer connection (`sqlite_direct`): the same
    /// statements. `ids` are not loaded yet ([`Self::not_loaded`]).
    fn load_instances_direct(
        &mut self,
        db: &mut sqlite_direct::Db<'_>,
        ids: Vec<String>,
        tasks_too: bool,
    ) -> Result<()> {
        let ids = self.adopt_carried(ids);
        if ids.is_empty() {
            return Ok(());
        }
        let list = json_list(&ids);
        if tasks_too {
            let tasks = sqlite_direct::tasks(db, sqlite::LOCK_LIVE_TASKS, &list)?;
            self.cache_tasks(tasks);
        }
        let rows = sqlite_direct::instances(db, sqlite::LOCK_INSTANCES, &[&list])?;
        let timers = sqlite_direct::timers(db, sqlite::PENDING_TIMERS, &list)?;
        self.cache_loaded(rows, timers);
        Ok(())
    }

    /// The ids among `ids` whose instances are not loaded yet.
    fn not_loaded(&self, ids: Vec<String>) -> Vec<String> {
        ids.into_iter()
            .filter(|id| !self.loaded.contains(id))
            .collect()
    }

    /// Caches loaded instances and their pending timers.
    fn cache_loaded(&mut self, rows: Vec<InstanceRow>, timers: Vec<TimerRow>) {
        for t in timers {
            self.timers.entry(t.id.clone()).or_insert(Slot {
                row: (t, 0),
                change: Change::Clean,
            });
        }
        for row in rows {
            self.loaded.insert(row.id.clone());
            self.instances.entry(row.id.clone()).or_insert(Slot {
                row,
                change: Change::Clean,
            });
        }
        // Ids not found stay unloaded: `lock_instance` answers `None` for them.
    }

    // ---- instances ----

    /// The instance, loaded with its live tasks and pending timers on first use.
    pub(crate) async fn lock_instance(
        &mut self,
        tx: &mut Tx,
        id: &str,
    ) -> Result<Option<InstanceRow>> {
        if !self.loaded.contains(id) {
            self.load_instances(tx, vec![id.to_string()], true).await?;
        }
        Ok(self.instances.get(id).map(|s| s.row.clone()))
    }

    pub(crate) async fn instance_by_business_key(
        &mut self,
        tx: &mut Tx,
        process: &str,
        key: &str,
    ) -> Result<Option<InstanceRow>> {
        let pair = (process.to_string(), key.to_string());
        if !self.keys_checked.contains(&pair) {
            self.prefetch_business_keys(tx, std::slice::from_ref(&pair))
                .await?;
        }
        let Some(id) = self.business_keys.get(&pair).cloned() else {
            return Ok(None);
        };
        self.lock_instance(tx, &id).await
    }

    pub(crate) fn insert_instance(&mut self, row: &InstanceRow) {
        if let Some(bk) = &row.business_key {
            self.business_keys
                .insert((row.process_key.clone(), bk.clone()), row.id.clone());
        }
        self.loaded.insert(row.id.clone());
        self.put_instance(row.clone(), Change::New);
    }

    pub(crate) fn update_instance(&mut self, row: InstanceRow) {
        let change = match self.instances.get(&row.id).map(|s| s.change) {
            Some(Change::New) => Change::New,
            _ => Change::Dirty,
        };
        self.put_instance(row, change);
    }

    fn put_instance(&mut self, row: InstanceRow, change: Change) {
        let id = row.id.clone();
        let old = self.instances.insert(id.clone(), Slot { row, change });
        self.journal.push(Undo::Instance(id, old));
    }

    /// The instance as it stands in this unit of work.
    pub(crate) fn instance(&self, id: &str) -> Option<&InstanceRow> {
        self.instances.get(id).map(|s| &s.row)
    }

    // ---- tasks ----

    pub(crate) async fn lock_task(&mut self, tx: &mut Tx, id: &str) -> Result<Option<TaskRow>> {
        if !self.tasks.contains_key(id) {
            self.prefetch_tasks(tx, &[id]).await?;
        }
        Ok(self.tasks.get(id).map(|s| s.row.clone()))
    }

    pub(crate) fn insert_task(&mut self, row: TaskRow) {
        self.put_task(row, Change::New);
    }

    pub(crate) fn update_task(&mut self, row: TaskRow) {
        let change = match self.tasks.get(&row.id).map(|s| s.change) {
            Some(Change::New) => Change::New,
            _ => Change::Dirty,
        };
        self.put_task(row, change);
    }

    fn put_task(&mut self, row: TaskRow, change: Change) {
        let id = row.id.clone();
        let old = self.tasks.insert(id.clone(), Slot { row, change });
        self.journal.push(Undo::Task(id, old));
    }

    /// Sets a live task's due time (a deadline bound to a clock that paused or moved). A task
    /// not live (not loaded) has no deadline left to move.
    pub(crate) fn set_task_due(&mut self, task: &str, due_at: Option<i64>) {
        if let Some(mut row) = self.tasks.get(task).map(|s| s.row.clone()) {
            row.due_at = due_at;
            self.update_task(row);
        }
    }

    /// The instance's claimed tasks (the instance is loaded), oldest first.
    pub(crate) fn claimed_tasks(&self, instance: &str) -> Vec<TaskRow> {
        let mut tasks: Vec<TaskRow> = self
            .tasks
            .values()
            .filter(|s| s.row.instance_id == instance && s.row.state == TaskState::Claimed)
            .map(|s| s.row.clone())
            .collect();
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        tasks
    }

    /// Cancels the instance's open, claimed and failed tasks (the instance is loaded).
    pub(crate) fn cancel_open_tasks(&mut self, instance: &str, now: i64) {
        let ids: Vec<String> = self
            .tasks
            .values()
            .filter(|s| s.row.instance_id == instance && live(&s.row))
            .map(|s| s.row.id.clone())
            .collect();
        for id in ids {
            if let Some(mut row) = self.tasks.get(&id).map(|s| s.row.clone()) {
                row.state = TaskState::Cancelled;
                row.completed_at = Some(now);
                self.update_task(row);
            }
        }
    }

    /// Live tasks and pending timers of every loaded instance, grouped once (answers to a
    /// batch), tasks oldest first, timers soonest first.
    pub(crate) fn live_by_instance(
        &self,
    ) -> (
        HashMap<String, Vec<TaskRow>>,
        HashMap<String, Vec<TimerRow>>,
    ) {
        let mut tasks: HashMap<String, Vec<TaskRow>> = HashMap::default();
        for s in self.tasks.values().filter(|s| live(&s.row)) {
            tasks
                .entry(s.row.instance_id.clone())
                .or_default()
                .push(s.row.clone());
        }
        for list in tasks.values_mut() {
            list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        }
        let mut timers: HashMap<String, Vec<TimerRow>> = HashMap::default();
        for s in self
            .timers
            .values()
            .filter(|s| s.row.0.state == TimerState::Pending)
        {
            timers
                .entry(s.row.0.instance_id.clone())
                .or_default()
                .push(s.row.0.clone());
        }
        for list in timers.values_mut() {
            list.sort_by(|a, b| (a.due_at, &a.id).cmp(&(b.due_at, &b.id)));
        }
        (tasks, timers)
    }

    // ---- timers ----

    pub(crate) fn insert_timer(&mut self, row: &TimerRow, now: i64) {
        self.put_timer((row.clone(), now), Change::New);
    }

    fn put_timer(&mut self, row: (TimerRow, i64), change: Change) {
        let id = row.0.id.clone();
        let old = self.timers.insert(id.clone(), Slot { row, change });
        self.journal.push(Undo::Timer(id, old));
    }

    fn cancel_timers_where(&mut self, pick: impl Fn(&TimerRow) -> bool) {
        let ids: Vec<String> = self
            .timers
            .values()
            .filter(|s| s.row.0.state == TimerState::Pending && pick(&s.row.0))
            .map(|s| s.row.0.id.clone())
            .collect();
        for id in ids {
            if let Some(slot) = self.timers.get(&id).cloned() {
                let mut row = slot.row;
                row.0.state = TimerState::Cancelled;
                let change = if slot.change == Change::New {
                    Change::New
                } else {
                    Change::Dirty
                };
                self.put_timer(row, change);
            }
        }
    }

    /// Cancels a pending timer of a loaded instance (a timer not pending is left alone).
    pub(crate) fn cancel_timer(&mut self, id: &str) {
        self.cancel_timers_where(|t| t.id == id);
    }

    pub(crate) fn cancel_task_timers(&mut self, task: &str) {
        self.cancel_timers_where(|t| t.task_id.as_deref() == Some(task));
    }

    pub(crate) fn cancel_instance_timers(&mut self, instance: &str) {
        self.cancel_timers_where(|t| t.instance_id == instance);
    }

    /// Takes a due timer read from the database as fired, before its event runs: the events
    /// that follow no longer see it pending, so none cancels it. Only in memory: the caller
    /// writes the state (`fire_timers`); a rollback to an earlier mark makes it pending again.
    /// `false`: an earlier event of this unit of work cancelled it, so it must not fire. A
    /// timer not here (its instance does not exist) is pending as read.
    pub(crate) fn fire_timer(&mut self, id: &str) -> bool {
        let Some(slot) = self.timers.get(id) else {
            return true;
        };
        if slot.row.0.state != TimerState::Pending {
            return false;
        }
        let mut row = slot.row.clone();
        row.0.state = TimerState::Fired;
        // Clean: the flush writes only new and cancelled timers; `fire_timers` writes this one.
        self.put_timer(row, Change::Clean);
        true
    }

    /// Whether the instance (loaded) has a pending timer due before the timer `(due_at, id)`.
    pub(crate) fn has_earlier_timer(&self, instance: &str, due_at: i64, id: &str) -> bool {
        self.timers.values().any(|s| {
            let t = &s.row.0;
            t.instance_id == instance
                && t.state == TimerState::Pending
                && (t.due_at, t.id.as_str()) < (due_at, id)
        })
    }

    // ---- appended rows ----

    pub(crate) fn insert_history_many(&mut self, rows: Vec<HistoryRow>) {
        self.history.extend(rows);
    }

    pub(crate) fn insert_outbox(&mut self, row: OutboxRow) {
        self.outbox.push(row);
    }

    pub(crate) fn insert_document(&mut self, row: DocumentRow) {
        self.documents.push(row);
    }

    pub(crate) fn insert_search(&mut self, rows: Vec<SearchRow>) {
        self.search.extend(rows);
    }

    pub(crate) fn insert_signal(&mut self, row: SignalRow) {
        self.signals.push(row);
    }

    pub(crate) fn insert_action(&mut self, row: ActionRow) {
        self.actions.push(row);
    }

    pub(crate) fn upsert_clock(&mut self, row: CaseClockRow) {
        self.clocks.push(row);
    }

    /// A task the unit of work holds (its queue and unit name a late task's department).
    pub(crate) fn task(&self, id: &str) -> Option<&TaskRow> {
        self.tasks.get(id).map(|s| &s.row)
    }

    // ---- savepoints ----

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            journal: self.journal.len(),
            history: self.history.len(),
            outbox: self.outbox.len(),
            documents: self.documents.len(),
            search: self.search.len(),
            signals: self.signals.len(),
            clocks: self.clocks.len(),
            actions: self.actions.len(),
        }
    }

    /// The outcome of one event of a batch: a refused event (404, 409, 422) is rolled back to
    /// `mark` and its error goes to its caller (`Ok(Err(..))`); a retryable failure fails the
    /// whole batch (`Err`), which is then retried.
    pub(crate) fn settle<T>(&mut self, mark: Mark, done: Result<T>) -> Result<Result<T>> {
        match done {
            Ok(v) => Ok(Ok(v)),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                self.rollback(mark);
                Ok(Err(e))
            }
        }
    }

    /// Undoes every change made since `mark`.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        while self.journal.len() > mark.journal {
            match self.journal.pop() {
                Some(Undo::Instance(id, old)) => {
                    restore(&mut self.instances, id, old);
                }
                Some(Undo::Task(id, old)) => restore(&mut self.tasks, id, old),
                Some(Undo::Timer(id, old)) => restore(&mut self.timers, id, old),
                None => break,
            }
        }
        // A rolled-back start leaves no business key or loaded mark behind.
        let instances = &self.instances;
        self.business_keys
            .retain(|_, id| instances.contains_key(id));
        self.loaded.retain(|id| instances.contains_key(id));
        self.history.truncate(mark.history);
        self.outbox.truncate(mark.outbox);
        self.documents.truncate(mark.documents);
        self.search.truncate(mark.search);
        self.signals.truncate(mark.signals);
        self.clocks.truncate(mark.clocks);
        self.actions.truncate(mark.actions);
    }

    // ---- writing ----

    /// Writes every change: a handful of statements whatever the number of events.
    pub(crate) async fn flush(&mut self, tx: &mut Tx) -> Result<()> {
        self.write(tx, false).await
    }

    /// [`Self::flush`] as the transaction's last statement: on SQLite it commits at once
    /// (committing after it is then a no-op).
    pub(crate) async fn flush_last(&mut self, tx: &mut Tx) -> Result<()> {
        self.write(tx, true).await
    }

    async fn write(&mut self, tx: &mut Tx, commit: bool) -> Result<()> {
        let instances: Vec<&InstanceRow> = self
            .instances
            .values()
            .filter(|s| s.change != Change::Clean)
            .map(|s| &s.row)
            .collect();
        let tasks: Vec<&TaskRow> = self
            .tasks
            .values()
            .filter(|s| s.change != Change::Clean)
            .map(|s| &s.row)
            .collect();
        let new_timers: Vec<(&TimerRow, i64)> = self
            .timers
            .values()
            .filter(|s| s.change == Change::New)
            .map(|s| (&s.row.0, s.row.1))
            .collect();
        let cancelled: Vec<&String> = self
            .timers
            .values()
            .filter(|s| s.change == Change::Dirty)
            .map(|s| &s.row.0.id)
            .collect();
        let search = last_per_variable(&self.search);
        let clocks = last_per_clock(&self.clocks);
        match &mut *tx {
            // The whole flush, and the commit, in one go (`store/sqlite_direct.rs`).
            Tx::Sqlite(t) => {
                let rows = sqlite_direct::Rows {
                    instances: &instances,
                    tasks: &tasks,
                    timers: &new_timers,
                    cancelled: &cancelled,
                    history: &self.history,
                    outbox: &self.outbox,
                    documents: &self.documents,
                    search: &search,
                    signals: &self.signals,
                    clocks: &clocks,
                    actions: &self.actions,
                };
                if !rows.is_empty() {
                    sqlite_direct::write(&mut t.db()?, &rows)?;
                }
                if commit {
                    t.commit_now()?;
                }
            }
            Tx::Postgres(t) => {
                postgres::write_rows(t, &instances, &tasks, &self.history).await?;
                if !new_timers.is_empty() {
                    on_tx!(&mut *tx, insert_timers(&new_timers))?;
                }
                if !cancelled.is_empty() {
                    on_tx!(&mut *tx, cancel_timers(&json_list(cancelled)))?;
                }
                for o in &self.outbox {
                    on_tx!(&mut *tx, insert_outbox(o))?;
                }
                for d in &self.documents {
                    on_tx!(&mut *tx, insert_document(d))?;
                }
                if !search.is_empty() {
                    let rows: Vec<SearchRow> = search.into_iter().cloned().collect();
                    on_tx!(&mut *tx, upsert_search(&rows))?;
                }
                for s in &self.signals {
                    on_tx!(&mut *tx, insert_signal(s))?;
                }
                for c in &clocks {
                    on_tx!(&mut *tx, upsert_clock(c))?;
                }
                for a in &self.actions {
                    on_tx!(&mut *tx, insert_action(a))?;
                }
            }
        }
        for s in self.instances.values_mut() {
            s.change = Change::Clean;
        }
        for s in self.tasks.values_mut() {
            s.change = Change::Clean;
        }
        for s in self.timers.values_mut() {
            s.change = Change::Clean;
        }
        self.history.clear();
        self.outbox.clear();
        self.documents.clear();
        self.search.clear();
        self.signals.clear();
        self.clocks.clear();
        self.actions.clear();
        self.journal.clear();
        Ok(())
    }
}

// ---- what SQLite's committer carries from one batch to the next ----

/// An instance as a committed batch left it: its row, live tasks and pending timers (what
/// loading it reads).
pub(crate) struct Carried {
    row: InstanceRow,
    tasks: Vec<TaskRow>,
    timers: Vec<TimerRow>,
}

/// Most instances carried; past it the carry starts over (cases in flight are far fewer).
const CARRY_MAX: usize = 8192;

/// SQLite's committer keeps the running instances its batches loaded, as they committed them,
/// so that the next batches need not read them again: a claim's instance, then the instance
/// of the completion that follows. On SQLite the committer is the only writer while nothing
/// else commits, and that is checked before each batch ([`Carry::check`]); anything else
/// throws the carry away:
/// - another write transaction of this engine (timers, messages, cancels, extends, ..): the
///   engine's write epoch moved by more than the committer's own transaction;
/// - a commit by another connection, of this process or another: `PRAGMA data_version`;
/// - another writer connection than the last batch's;
/// - a batch that failed (what it left in memory may not be what the database holds).
#[derive(Default)]
pub(crate) struct Carry {
    instances: HashMap<String, Carried>,
    /// Live task → its carried instance.
    owner: HashMap<String, String>,
    /// What [`Carry::check`] must find for the carry to hold: the writer connection, its data
    /// version, and the write epoch after the next batch's own `begin`.
    expect: Option<(u64, i64, u64)>,
    hits: u64,
}

impl Carry {
    /// Before a batch, in its transaction (the write lock held): throws everything away unless
    /// nothing but the committer wrote since the last batch. Remembers what the next batch
    /// must find if this one commits.
    pub(crate) fn check(&mut self, connection: u64, data_version: i64, epoch: u64) {
        if self.expect != Some((connection, data_version, epoch)) {
            self.clear();
        }
        self.expect = Some((connection, data_version, epoch + 1));
    }

    pub(crate) fn clear(&mut self) {
        self.instances.clear();
        self.owner.clear();
        self.expect = None;
    }

    /// Instances taken from the carry instead of the database since the last call.
    pub(crate) fn take_hits(&mut self) -> u64 {
        std::mem::take(&mut self.hits)
    }

    fn remove(&mut self, instance: &str) -> Option<Carried> {
        let carried = self.instances.remove(instance)?;
        for t in &carried.tasks {
            self.owner.remove(&t.id);
        }
        Some(carried)
    }

    fn take(&mut self, instance: &str) -> Option<Carried> {
        let carried = self.remove(instance)?;
        self.hits += 1;
        Some(carried)
    }

    /// A claim changed these tasks in the database: so in the carry.
    pub(crate) fn claimed<'t>(&mut self, tasks: impl IntoIterator<Item = &'t TaskRow>) {
        for t in tasks {
            if let Some(carried) = self.instances.get_mut(&t.instance_id) {
                match carried.tasks.iter_mut().find(|c| c.id == t.id) {
                    Some(c) => *c = t.clone(),
                    None => {
                        carried.tasks.push(t.clone());
                        self.owner.insert(t.id.clone(), t.instance_id.clone());
                    }
                }
            }
        }
    }

    /// A carried instance's row (answers to claims).
    pub(crate) fn instance(&self, id: &str) -> Option<&InstanceRow> {
        self.instances.get(id).map(|c| &c.row)
    }

    /// After a batch committed: the instances it loaded, as it left them. Those no longer
    /// running are dropped.
    pub(crate) fn absorb(&mut self, st: Staged) {
        let Staged {
            instances,
            loaded,
            tasks,
            timers,
            ..
        } = st;
        let mut by_instance: HashMap<String, Carried> =
            HashMap::with_capacity_and_hasher(loaded.len(), Default::default());
        for (id, slot) in instances {
            if !loaded.contains(&id) {
                continue;
            }
            self.remove(&id);
            if slot.row.status == Status::Running {
                by_instance.insert(
                    id,
                    Carried {
                        row: slot.row,
                        tasks: Vec::new(),
                        timers: Vec::new(),
                    },
                );
            }
        }
        for (_, slot) in tasks {
            if live(&slot.row)
                && let Some(c) = by_instance.get_mut(&slot.row.instance_id)
            {
                c.tasks.push(slot.row);
            }
        }
        for (_, slot) in timers {
            if slot.row.0.state == TimerState::Pending
                && let Some(c) = by_instance.get_mut(&slot.row.0.instance_id)
            {
                c.timers.push(slot.row.0);
            }
        }
        if self.instances.len() + by_instance.len() > CARRY_MAX {
            let expect = self.expect;
            self.clear();
            self.expect = expect;
        }
        for (id, c) in by_instance {
            for t in &c.tasks {
                self.owner.insert(t.id.clone(), id.clone());
            }
            self.instances.insert(id, c);
        }
    }
}

/// The last row staged for each case and variable (one statement may write a row once).
fn last_per_variable(rows: &[SearchRow]) -> Vec<&SearchRow> {
    last_per(rows, |r| (r.instance_id.as_str(), r.var.as_str()))
}

fn last_per_clock(rows: &[CaseClockRow]) -> Vec<&CaseClockRow> {
    last_per(rows, |r| (r.instance_id.as_str(), r.clock.as_str()))
}

/// The last of `rows` of each key, in the order staged.
fn last_per<'r, T, K: std::hash::Hash + Eq>(rows: &'r [T], key: impl Fn(&'r T) -> K) -> Vec<&'r T> {
    if rows.len() < 2 {
        return rows.iter().collect();
    }
    let mut seen = HashSet::default();
    let mut out: Vec<&T> = rows.iter().rev().filter(|r| seen.insert(key(r))).collect();
    out.reverse();
    out
}

fn restore<T>(map: &mut HashMap<String, Slot<T>>, id: String, old: Option<Slot<T>>) {
    match old {
        Some(slot) => {
            map.insert(id, slot);
        }
        None => {
            map.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(id: &str, instance: &str, due_at: i64) -> TimerRow {
        TimerRow {
            id: id.into(),
            instance_id: instance.into(),
            kind: "wait".into(),
            node: "pause".into(),
            task_id: None,
            due_at,
            payload: "{}".into(),
            state: crate::store::TimerState::Pending,
        }
    }

    fn staged() -> Staged {
        let mut st = Staged::default();
        st.cache_loaded(
            Vec::new(),
            vec![
                timer("t1", "a", 10),
                timer("t2", "a", 20),
                timer("t3", "a", 20),
                timer("u1", "b", 5),
            ],
        );
        st
    }

    #[test]
    fn a_fired_timer_is_no_longer_pending_nor_earlier() {
        let mut st = staged();
        assert!(st.has_earlier_timer("a", 20, "t2"), "t1 is due before t2");
        assert!(!st.has_earlier_timer("a", 10, "t1"));
        assert!(
            st.has_earlier_timer("a", 20, "t3"),
            "same due time: the id decides"
        );
        assert!(st.fire_timer("t1"));
        assert!(!st.has_earlier_timer("a", 20, "t2"));
        assert!(!st.fire_timer("t1"), "a timer fires once");
        // An event of the instance cancels its timers: the fired one stays fired.
        st.cancel_instance_timers("a");
        assert_eq!(st.timers["t1"].row.0.state, crate::store::TimerState::Fired);
        assert_eq!(
            st.timers["t1"].change,
            Change::Clean,
            "not written by the flush"
        );
        assert_eq!(
            st.timers["t2"].row.0.state,
            crate::store::TimerState::Cancelled
        );
        assert!(!st.fire_timer("t2"), "a cancelled timer does not fire");
        assert!(
            st.fire_timer("gone"),
            "a timer of a missing instance is spent"
        );
    }

    #[test]
    fn a_rollback_before_the_fire_makes_the_timer_pending_again() {
        let mut st = staged();
        let before = st.mark();
        assert!(st.fire_timer("u1"));
        let after = st.mark();
        st.cancel_instance_timers("b");
        st.rollback(after);
        assert_eq!(
            st.timers["u1"].row.0.state,
            crate::store::TimerState::Fired,
            "a refused event keeps it spent"
        );
        st.rollback(before);
        assert_eq!(
            st.timers["u1"].row.0.state,
            crate::store::TimerState::Pending
        );
        assert!(st.fire_timer("u1"));
    }
}
