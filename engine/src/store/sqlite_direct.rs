//! Statements on a rusqlite connection: the SQLite writer's (`sqlite_tx.rs`) and the kept
//! readers' (`sqlite_readers.rs`), run on the caller's own thread.
//!
//! A batch of the committer (`commit::commit_batch`) is two calls here: one for every read,
//! with `BEGIN IMMEDIATE` in front: the claims ([`claims`], the statements of
//! `sqlite::claim_statement`), the claimed tasks' instances, the tasks to complete with their
//! siblings, instances and pending timers (`Staged::prefetch_tasks_direct`), the business keys
//! of the starts; and one for the flush ([`write`]) and `COMMIT`. The flush runs one
//! single-row statement per table, once per row: same SQL as `common.rs` (the column lists are
//! shared, `store::INSTANCES_INTO` and the others). The reads run the same SQL text as sqlx does
//! (`store::sqlite::LOCK_INSTANCES` and the others), their rows decoded by the same field lists
//! (`instance_fields!` and the others, by column name). Every statement is prepared once per
//! connection and kept in rusqlite's statement cache (`Connection::prepare_cached`).

use crate::error::EngineError;
// `instance_fields!` and the others expand to it.
use crate::store::sqlite::by_name;
use crate::store::{
    ActionRow, Arg, CaseClockRow, ClaimQuery, DocumentRow, HistoryRow, InstanceRow, OutboxRow,
    SearchRow, SignalRow, TaskRow, TimerRow,
};
use rusqlite::types::{FromSql, ToSql, ToSqlOutput, ValueRef};

type R<T> = Result<T, EngineError>;

/// Statements prepared and kept per connection: every statement text of a batch (the
/// multi-row ones come in a few sizes, the claims in four shapes) with room to spare.
pub(crate) const STATEMENT_CACHE: usize = 512;

/// A connection, borrowed for some statements.
pub(crate) struct Db<'a> {
    conn: &'a rusqlite::Connection,
}

impl<'a> Db<'a> {
    pub(crate) fn new(conn: &'a rusqlite::Connection) -> Db<'a> {
        Db { conn }
    }

    /// Binds `values` to the parameters of `sql` (see [`bind`]) and decodes every row.
    fn rows<T>(
        &mut self,
        sql: &str,
        values: &[&dyn ToSql],
        mut decode: impl FnMut(&Row<'_>) -> R<T>,
    ) -> R<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql)?;
        let names: Vec<String> = st.column_names().into_iter().map(String::from).collect();
        bind(&mut st, values)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(&Row { row, names: &names })?);
        }
        Ok(out)
    }

    /// Binds `values` to the parameters of `sql` and runs it; the rows it changed.
    fn run(&mut self, sql: &str, values: &[&dyn ToSql]) -> R<usize> {
        let mut st = self.conn.prepare_cached(sql)?;
        bind(&mut st, values)?;
        Ok(st.raw_execute()?)
    }
}

/// Binds `values` to the parameters of `st`: `$k` or `?k` takes the k-th value wherever it
/// stands (as sqlx binds it: SQLite numbers named parameters in the order they first appear),
/// a bare `?` the next one.
fn bind(st: &mut rusqlite::Statement<'_>, values: &[&dyn ToSql]) -> R<()> {
    for n in 1..=st.parameter_count() {
        let index = match st.parameter_name(n) {
            None => Some(n),
            Some(name) => name.get(1..).and_then(|k| k.parse::<usize>().ok()),
        };
        let Some(value) = index
            .and_then(|k| k.checked_sub(1))
            .and_then(|i| values.get(i))
        else {
            return Err(EngineError::Internal(format!(
                "parameter {n} of a statement has no value ({} given)",
                values.len()
            )));
        };
        st.raw_bind_parameter(n, value)?;
    }
    Ok(())
}

/// The current row of a statement, its columns found by name.
pub(crate) struct Row<'s> {
    row: &'s rusqlite::Row<'s>,
    names: &'s [String],
}

impl Row<'_> {
    /// The value of the column `name`, as sqlx's `Row::try_get` would give it.
    pub(crate) fn try_get<T: FromSql>(&self, name: &str) -> R<T> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| EngineError::Storage(format!("no column {name}")))?;
        Ok(self.row.get(index)?)
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Int(i) => ValueRef::Integer(*i),
        }))
    }
}

/// What the batch writes (see `Staged::flush`).
#[derive(Default)]
pub(crate) struct Rows<'a> {
    pub instances: &'a [&'a InstanceRow],
    pub tasks: &'a [&'a TaskRow],
    pub timers: &'a [(&'a TimerRow, i64)],
    /// Ids of pending timers to cancel.
    pub cancelled: &'a [&'a String],
    pub history: &'a [HistoryRow],
    pub outbox: &'a [OutboxRow],
    pub documents: &'a [DocumentRow],
    /// Rows of the search table, each at most once per case and variable.
    pub search: &'a [&'a SearchRow],
    pub signals: &'a [SignalRow],
    /// Clocks as they stand, each at most once per case and clock.
    pub clocks: &'a [&'a CaseClockRow],
    pub actions: &'a [ActionRow],
}

impl Rows<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.tasks.is_empty()
            && self.timers.is_empty()
            && self.cancelled.is_empty()
            && self.history.is_empty()
            && self.outbox.is_empty()
            && self.documents.is_empty()
            && self.search.is_empty()
            && self.signals.is_empty()
            && self.clocks.is_empty()
            && self.actions.is_empty()
    }
}

/// Writes `rows` in the open transaction of `db`.
pub(crate) fn write(db: &mut Db<'_>, rows: &Rows<'_>) -> R<()> {
    use crate::store::{
        ACTIONS_INTO, CASE_CLOCKS_INTO, CASE_CLOCKS_UPSERT, DOCUMENTS_INTO, HISTORY_INTO,
        INSTANCES_INTO, INSTANCES_UPSERT, OUTBOX_INTO, SEARCH_INTO, SEARCH_UPSERT, SIGNALS_INTO,
        SIGNALS_TAIL, TASKS_INTO, TASKS_UPSERT, TIMERS_INTO,
    };
    insert_each(db, INSTANCES_INTO, INSTANCES_UPSERT, rows.instances, |i| {
        [
            &i.id,
            &i.process_key,
            &i.version,
            &i.business_key,
            &i.status,
            &i.result,
            &i.incident,
            &i.vars,
            &i.state,
            &i.provisional,
            &i.parent_id,
            &i.parent_node,
            &i.created_at,
            &i.updated_at,
            &i.ended_at,
            &i.history_count,
            &i.history_head,
        ]
    })?;
    insert_each(db, TASKS_INTO, TASKS_UPSERT, rows.tasks, |t| {
        [
            &t.id,
            &t.instance_id,
            &t.node,
            &t.label,
            &t.queue,
            &t.org_unit,
            &t.state,
            &t.lock_token,
            &t.locked_by,
            &t.lock_expires_at,
            &t.available_at,
            &t.assignee,
            &t.item,
            &t.outcome,
            &t.completed_by,
            &t.failures,
            &t.last_error,
            &t.due_at,
            &t.created_at,
            &t.completed_at,
            &t.claimed_at,
            &t.lapsed_by,
            &t.lapsed_at,
            &t.worker,
            &t.lapsed_worker,
            &t.assignee_key,
            &t.locked_by_key,
            &t.lapsed_by_key,
        ]
    })?;
    insert_each(db, TIMERS_INTO, "", rows.timers, |(t, created_at)| {
        [
            &t.id,
            &t.instance_id,
            &t.kind,
            &t.node,
            &t.task_id,
            &t.due_at,
            &t.payload,
            &t.state,
            created_at,
        ]
    })?;
    for id in rows.cancelled {
        db.run(crate::store::CANCEL_TIMER, &[*id])?;
    }
    let packs = crate::store::history::pack(rows.history);
    insert_each(db, HISTORY_INTO, "", &packs, |p| {
        [&p.instance_id, &p.seq, &p.first_at, &p.entries]
    })?;
    insert_each(db, OUTBOX_INTO, "", rows.outbox, |o| {
        [
            &o.id,
            &o.instance_id,
            &o.channel,
            &o.dedup_key,
            &o.payload,
            &o.state,
            &o.attempts,
            &o.next_attempt_at,
            &o.created_at,
        ]
    })?;
    insert_each(db, DOCUMENTS_INTO, "", rows.documents, |d| {
        [
            &d.id,
            &d.instance_id,
            &d.name,
            &d.label,
            &d.public,
            &d.content,
            &d.created_at,
        ]
    })?;
    insert_each(db, SEARCH_INTO, SEARCH_UPSERT, rows.search, |s| {
        [&s.instance_id, &s.var, &s.kind, &s.value, &s.value_hash]
    })?;
    insert_each(db, SIGNALS_INTO, SIGNALS_TAIL, rows.signals, |s| {
        [
            &s.id,
            &s.instance_id,
            &s.node,
            &s.task_id,
            &s.clock,
            &s.queue,
            &s.org_unit,
            &s.light,
            &s.level,
            &s.due_at,
            &s.at,
        ]
    })?;
    insert_each(db, ACTIONS_INTO, "", rows.actions, |a| {
        [
            &a.id,
            &a.instance_id,
            &a.kind,
            &a.queue,
            &a.org_unit,
            &a.text,
            &a.actor,
            &a.actor_key,
            &a.at,
        ]
    })?;
    insert_each(db, CASE_CLOCKS_INTO, CASE_CLOCKS_UPSERT, rows.clocks, |c| {
        [
            &c.instance_id,
            &c.clock,
            &c.process_key,
            &c.org_unit,
            &c.state,
            &c.started_at,
            &c.due_at,
            &c.warn_at,
            &c.stopped_at,
        ]
    })
}

/// Inserts each of `rows` with `INSERT INTO <into> VALUES (?, ..) <tail>`, one statement
/// prepared once; `values` gives a row's values in the order of `into`'s columns (as many
/// placeholders as values).
fn insert_each<'r, T, const N: usize>(
    db: &mut Db<'_>,
    into: &str,
    tail: &str,
    rows: &'r [T],
    values: impl Fn(&'r T) -> [&'r dyn ToSql; N],
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut st = db.conn.prepare_cached(&insert_sql(into, N, tail))?;
    for row in rows {
        for (n, value) in values(row).into_iter().enumerate() {
            st.raw_bind_parameter(n + 1, value)?;
        }
        st.raw_execute()?;
    }
    Ok(())
}

/// `INSERT INTO <into> VALUES (?, .. cols) <tail>`.
pub(crate) fn insert_sql(into: &str, cols: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {into} VALUES (");
    for c in 0..cols {
        sql.push_str(if c == 0 { "?" } else { ", ?" });
    }
    sql.push_str(") ");
    sql.push_str(tail);
    sql
}

/// Rows of `sql` (SQL of `store::sqlite`, one JSON-array parameter): tasks, instances or
/// timers, decoded by column name as `common.rs` decodes sqlx's rows.
pub(crate) fn tasks(db: &mut Db<'_>, sql: &str, json: &str) -> R<Vec<TaskRow>> {
    db.rows(sql, &[&json], |r| Ok(crate::store::sqlite::task_fields!(r)))
}

/// Tasks by `sql` with any values.
pub(crate) fn tasks_by(db: &mut Db<'_>, sql: &str, values: &[&dyn ToSql]) -> R<Vec<TaskRow>> {
    db.rows(sql, values, |r| Ok(crate::store::sqlite::task_fields!(r)))
}

/// Instances by `sql` with JSON-array parameters (ids; or processes and business keys).
pub(crate) fn instances(db: &mut Db<'_>, sql: &str, json: &[&String]) -> R<Vec<InstanceRow>> {
    let values: Vec<&dyn ToSql> = json.iter().map(|v| *v as &dyn ToSql).collect();
    instances_by(db, sql, &values)
}

/// Instances by `sql` with any values.
pub(crate) fn instances_by(
    db: &mut Db<'_>,
    sql: &str,
    values: &[&dyn ToSql],
) -> R<Vec<InstanceRow>> {
    db.rows(sql, values, |r| {
        Ok(crate::store::sqlite::instance_fields!(r))
    })
}

/// Timers by `sql` with any values.
pub(crate) fn timers_by(db: &mut Db<'_>, sql: &str, values: &[&dyn ToSql]) -> R<Vec<TimerRow>> {
    db.rows(sql, values, |r| Ok(crate::store::sqlite::timer_fields!(r)))
}

pub(crate) fn timers(db: &mut Db<'_>, sql: &str, json: &str) -> R<Vec<TimerRow>> {
    timers_by(db, sql, &[&json])
}

/// Rows of `sql` decoded by `decode` (for the rarer statements of `sqlite_write`).
pub(crate) fn rows<T>(
    db: &mut Db<'_>,
    sql: &str,
    values: &[&dyn ToSql],
    decode: impl FnMut(&Row<'_>) -> R<T>,
) -> R<Vec<T>> {
    db.rows(sql, values, decode)
}

/// Runs `sql` with `values`: the rows it changed.
pub(crate) fn run(db: &mut Db<'_>, sql: &str, values: &[&dyn ToSql]) -> R<usize> {
    db.run(sql, values)
}

/// Fetch-and-lock (`sqlite::claim_tasks`), the same statements: the tasks of each query, in
/// order. Queries of the same shape share one prepared statement (a batch holds a claim per
/// polling worker, and the statement takes longer to prepare than to run).
pub(crate) fn claims(db: &mut Db<'_>, queries: &[&ClaimQuery]) -> R<Vec<Vec<TaskRow>>> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let (sql, args) = crate::store::sqlite::claim_statement(q);
        let values: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
        let mut tasks = tasks_by(db, sql, &values)?;
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out.push(tasks);
    }
    Ok(out)
}

/// `PRAGMA data_version`: changes when another connection (of this process or another)
/// commits to the database, not when this one does.
pub(crate) fn data_version(db: &mut Db<'_>) -> R<i64> {
    query_i64(db, "PRAGMA data_version", "data_version")
}

/// The one integer column `column` of the first row of `sql` (no parameters).
pub(crate) fn query_i64(db: &mut Db<'_>, sql: &str, column: &str) -> R<i64> {
    let values = db.rows(sql, &[], |r| r.try_get::<i64>(column))?;
    values
        .first()
        .copied()
        .ok_or_else(|| EngineError::Internal(format!("no row from {sql}")))
}

/// The access generation (`store::tokens::TokenStore::generation`, the same SQL).
pub(crate) fn access_generation(db: &mut Db<'_>) -> R<i64> {
    query_i64(db, crate::store::tokens::GENERATION_SQL, "generation").map_err(|_| {
        EngineError::Internal(
            "the row of access_generation is missing; the schema (migrations/) inserts it".into(),
        )
    })
}

/// Runs one statement that returns no rows (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`).
pub(crate) fn exec(conn: &rusqlite::Connection, sql: &str) -> R<()> {
    Db::new(conn).run(sql, &[])?;
    Ok(())
}

/// Runs `sql` (no parameters, no rows), for tests.
#[cfg(test)]
pub(crate) fn run_kept(db: &mut Db<'_>, sql: &str) -> R<()> {
    db.run(sql, &[])?;
    Ok(())
}

/// Whether the connection is inside a transaction.
pub(crate) fn in_transaction(conn: &rusqlite::Connection) -> bool {
    !conn.is_autocommit()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::sqlite;

    /// Every column a distinct value, so that two swapped binds show.
    pub(crate) fn rows() -> (
        InstanceRow,
        TaskRow,
        TimerRow,
        HistoryRow,
        OutboxRow,
        DocumentRow,
    ) {
        let s = |v: &str| Some(v.to_string());
        let instance = InstanceRow {
            id: "i1".into(),
            process_key: "p".into(),
            version: 2,
            business_key: s("bk"),
            status: crate::runtime::state::Status::Running,
            result: s("res"),
            incident: s("inc"),
            vars: crate::store::Vars::from_text(r#"{"a":"名字 \"q\""}"#).unwrap(),
            state: "{}".into(),
            provisional: 3,
            parent_id: s("par"),
            parent_node: s("pn"),
            created_at: 4,
            updated_at: 5,
            ended_at: Some(6),
            history_count: 7,
            history_head: "head".into(),
        };
        let task = TaskRow {
            id: "t1".into(),
            instance_id: "i1".into(),
            node: "n".into(),
            label: s("审核"),
            queue: "q".into(),
            org_unit: s("ou"),
            state: crate::TaskState::Claimed,
            lock_token: 8,
            locked_by: s("w"),
            lock_expires_at: Some(9),
            available_at: 10,
            assignee: s("as"),
            item: s("it"),
            outcome: s("out"),
            completed_by: s("cb"),
            failures: 11,
            last_error: s("le"),
            due_at: Some(12),
            created_at: 13,
            completed_at: Some(14),
            claimed_at: Some(15),
            lapsed_by: s("lb"),
            lapsed_at: Some(16),
            worker: s("wk"),
            lapsed_worker: s("lw"),
            assignee_key: s("ak"),
            locked_by_key: s("lk"),
            lapsed_by_key: s("lbk"),
        };
        let timer = TimerRow {
            id: "tm1".into(),
            instance_id: "i1".into(),
            kind: "k".into(),
            node: "tn".into(),
            task_id: s("t1"),
            due_at: 17,
            payload: "pl".into(),
            state: crate::store::TimerState::Pending,
        };
        let history = HistoryRow {
            instance_id: "i1".into(),
            seq: 1,
            at: 18,
            actor: "ac".into(),
            actor_kind: String::new(),
            actor_id: String::new(),
            node: None,
            kind: "kd".into(),
            text: "tx".into(),
            data: "{}".into(),
            prev_hash: "ph".into(),
            hash: "h".into(),
        };
        let outbox = OutboxRow {
            id: "o1".into(),
            instance_id: "i1".into(),
            channel: "ch".into(),
            dedup_key: "dk".into(),
            payload: "pay".into(),
            state: crate::store::OutboxState::Pending,
            attempts: 20,
            next_attempt_at: 21,
            last_error: None,
            created_at: 22,
            delivered_at: None,
        };
        let document = DocumentRow {
            id: "d1".into(),
            instance_id: "i1".into(),
            name: "dn".into(),
            label: s("告知书"),
            public: 1,
            content: "正文".into(),
            created_at: 23,
        };
        (instance, task, timer, history, outbox, document)
    }

    /// An in-memory database: sqlx's pool, and a connection of rusqlite's to it.
    async fn open() -> (sqlx::SqlitePool, rusqlite::Connection) {
        let (pool, database) = sqlite::open_database("sqlite::memory:").await.unwrap();
        let conn = database.connect_writer().unwrap();
        (pool, conn)
    }

    fn write_in_tx(conn: &rusqlite::Connection, rows: &Rows<'_>) -> R<()> {
        exec(conn, "BEGIN IMMEDIATE")?;
        let written = write(&mut Db::new(conn), rows);
        exec(
            conn,
            if written.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            },
        )?;
        written
    }

    #[tokio::test]
    async fn every_column_lands_in_its_place_and_upserts_update() {
        let (pool, conn) = open().await;
        let (mut instance, mut task, timer, history, outbox, document) = rows();
        let rows = Rows {
            instances: &[&instance],
            tasks: &[&task],
            timers: &[(&timer, 19)],
            history: std::slice::from_ref(&history),
            outbox: std::slice::from_ref(&outbox),
            documents: std::slice::from_ref(&document),
            ..Rows::default()
        };
        write_in_tx(&conn, &rows).unwrap();
        let read = sqlite::instance(&pool, "i1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{instance:?}"));
        let read = sqlite::task(&pool, "t1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{task:?}"));
        let read = sqlite::instance_timers(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&timer]));
        let read = sqlite::history(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&history]));
        let read = sqlite::outbox_of(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&outbox]));
        let read = sqlite::documents(&pool, "i1").await.unwrap();
        assert_eq!(format!("{read:?}"), format!("{:?}", [&document]));

        // Written again: the upsert changes the row in place; the timer is cancelled.
        instance.status = crate::runtime::state::Status::Completed;
        instance.history_count = 8;
        task.state = crate::TaskState::Completed;
        task.lapsed_by = None;
        let rows = Rows {
            instances: &[&instance],
            tasks: &[&task],
            cancelled: &[&timer.id],
            ..Rows::default()
        };
        write_in_tx(&conn, &rows).unwrap();
        let read = sqlite::instance(&pool, "i1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{instance:?}"));
        let read = sqlite::task(&pool, "t1").await.unwrap().unwrap();
        assert_eq!(format!("{read:?}"), format!("{task:?}"));
        assert!(
            sqlite::instance_timers(&pool, "i1")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn rows_read_directly_are_the_rows_sqlx_reads() {
        let (pool, conn) = open().await;
        let (instance, mut task, timer, ..) = rows();
        task.state = crate::TaskState::Open;
        let mut done = task.clone();
        done.id = "t2".into();
        done.state = crate::TaskState::Completed;
        done.label = None;
        let rows = Rows {
            instances: &[&instance],
            tasks: &[&task, &done],
            timers: &[(&timer, 19)],
            ..Rows::default()
        };
        write_in_tx(&conn, &rows).unwrap();

        let mut tx = pool.begin().await.unwrap();
        let ids = r#"["i1"]"#.to_string();
        let (direct_tasks, direct_siblings, direct_instances, direct_timers) = {
            let db = &mut Db::new(&conn);
            (
                tasks(db, sqlite::LOCK_LIVE_TASKS, &ids).unwrap(),
                tasks(db, sqlite::LOCK_TASKS_WITH_SIBLINGS, r#"["t2"]"#).unwrap(),
                instances(db, sqlite::LOCK_INSTANCES, &[&ids]).unwrap(),
                timers(db, sqlite::PENDING_TIMERS, &ids).unwrap(),
            )
        };
        let live = sqlite::lock_live_tasks(&mut tx, &ids).await.unwrap();
        assert_eq!(format!("{direct_tasks:?}"), format!("{live:?}"));
        assert_eq!(
            format!("{direct_tasks:?}"),
            format!("{:?}", [&task]),
            "open only"
        );
        let siblings = sqlite::lock_tasks_with_siblings(&mut tx, r#"["t2"]"#)
            .await
            .unwrap();
        assert_eq!(format!("{direct_siblings:?}"), format!("{siblings:?}"));
        assert_eq!(
            direct_siblings.len(),
            2,
            "the task asked for and its open sibling"
        );
        let read = sqlite::lock_instances(&mut tx, &ids).await.unwrap();
        assert_eq!(format!("{direct_instances:?}"), format!("{read:?}"));
        assert_eq!(
            format!("{direct_instances:?}"),
            format!("{:?}", [&instance])
        );
        let read = sqlite::pending_timers(&mut tx, &ids).await.unwrap();
        assert_eq!(format!("{direct_timers:?}"), format!("{read:?}"));
        assert_eq!(direct_timers.len(), 1);
    }

    #[tokio::test]
    async fn a_claim_on_the_handle_claims_what_sqlx_claims() {
        let (pool, conn) = open().await;
        let (_, template, ..) = rows();
        let mut tasks = Vec::new();
        for (n, (queue, unit, state, expires)) in [
            ("a", Some("s1"), "open", None),
            ("a", Some("s2"), "open", None),
            ("b", None, "open", None),
            ("b", Some("s1"), "claimed", Some(50)), // lease ran out: claimable
            ("a", Some("s1"), "claimed", Some(500)), // held
            ("c", Some("s1"), "open", None),
        ]
        .into_iter()
        .enumerate()
        {
            let mut t = template.clone();
            t.id = format!("t{n}");
            t.queue = queue.into();
            t.org_unit = unit.map(Into::into);
            t.state = crate::TaskState::parse(state).unwrap();
            t.lock_expires_at = expires;
            t.assignee = None;
            t.available_at = 0;
            t.created_at = 10 - n as i64;
            t.lapsed_by = None;
            t.lapsed_at = None;
            tasks.push(t);
        }
        let refs: Vec<&TaskRow> = tasks.iter().collect();
        let rows = Rows {
            tasks: &refs,
            ..Rows::default()
        };
        write_in_tx(&conn, &rows).unwrap();
        // The four statements: one queue or several, with org units or without.
        for (queues, units, expected) in [
            (r#"["a"]"#, None, 2),
            (r#"["a","b"]"#, None, 3),
            (r#"["a"]"#, Some(r#"["s1"]"#), 1),
            (r#"["b","a"]"#, Some(r#"["s1"]"#), 3),
        ] {
            let q = ClaimQuery {
                actor: "w2".into(),
                actor_key: "engine:w2".into(),
                worker: Some("bot".into()),
                queues: queues.into(),
                org_units: units.map(Into::into),
                now: 100,
                expires_at: 200,
                max: 3,
                task: None,
            };
            exec(&conn, "BEGIN IMMEDIATE").unwrap();
            let direct = claims(&mut Db::new(&conn), &[&q]).unwrap().remove(0);
            exec(&conn, "ROLLBACK").unwrap();
            let mut tx = pool.begin().await.unwrap();
            let through_sqlx = sqlite::claim_tasks(&mut tx, &q).await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(
                format!("{direct:?}"),
                format!("{through_sqlx:?}"),
                "{queues} {units:?}"
            );
            assert_eq!(direct.len(), expected, "{queues} {units:?}: {direct:?}");
            for t in &direct {
                assert_eq!(
                    (
                        t.state.as_str(),
                        t.locked_by.as_deref(),
                        t.worker.as_deref(),
                        t.lock_expires_at
                    ),
                    ("claimed", Some("w2"), Some("bot"), Some(200))
                );
                assert!(queues.contains(&format!("\"{}\"", t.queue)), "{t:?}");
            }
        }
    }

    #[tokio::test]
    async fn claims_of_one_shape_share_a_statement_and_claim_as_if_one_after_the_other() {
        let (pool, conn) = open().await;
        let (_, template, ..) = rows();
        let tasks: Vec<TaskRow> = (0..5)
            .map(|n| {
                let mut t = template.clone();
                t.id = format!("t{n}");
                t.queue = if n % 2 == 0 { "a" } else { "b" }.into();
                t.state = crate::TaskState::Open;
                (t.org_unit, t.assignee, t.lock_expires_at) = (None, None, None);
                (t.available_at, t.created_at) = (0, n);
                t
            })
            .collect();
        let refs: Vec<&TaskRow> = tasks.iter().collect();
        write_in_tx(
            &conn,
            &Rows {
                tasks: &refs,
                ..Rows::default()
            },
        )
        .unwrap();
        let query = |worker: &str, queues: &str, max| ClaimQuery {
            actor: worker.into(),
            actor_key: format!("engine:{worker}"),
            worker: None,
            queues: queues.into(),
            org_units: None,
            now: 100,
            expires_at: 200,
            max,
            task: None,
        };
        // The first, second and fourth share a statement; the third comes between them.
        let queries = [
            query("w1", r#"["a"]"#, 1),
            query("w2", r#"["a"]"#, 1),
            query("w3", r#"["a","b"]"#, 2),
            query("w4", r#"["a"]"#, 5),
        ];
        let refs: Vec<&ClaimQuery> = queries.iter().collect();
        exec(&conn, "BEGIN IMMEDIATE").unwrap();
        let direct = claims(&mut Db::new(&conn), &refs).unwrap();
        exec(&conn, "ROLLBACK").unwrap();
        let mut tx = pool.begin().await.unwrap();
        let mut through_sqlx = Vec::new();
        for q in &queries {
            through_sqlx.push(sqlite::claim_tasks(&mut tx, q).await.unwrap());
        }
        tx.rollback().await.unwrap();
        assert_eq!(format!("{direct:?}"), format!("{through_sqlx:?}"));
        let ids: Vec<Vec<&str>> = direct
            .iter()
            .map(|ts| ts.iter().map(|t| t.id.as_str()).collect())
            .collect();
        assert_eq!(ids, [vec!["t0"], vec!["t2"], vec!["t1", "t3"], vec!["t4"]]);
    }

    #[tokio::test]
    async fn a_claim_reads_only_the_expired_leases_of_its_queue() {
        let (_pool, conn) = open().await;
        for (queues, units) in [
            (r#"["a"]"#, None),
            (r#"["a","b"]"#, None),
            (r#"["a"]"#, Some(r#"["s1"]"#)),
            (r#"["a","b"]"#, Some(r#"["s1"]"#)),
        ] {
            let q = ClaimQuery {
                actor: "w".into(),
                actor_key: "engine:w".into(),
                worker: None,
                queues: queues.into(),
                org_units: units.map(Into::into),
                now: 100,
                expires_at: 200,
                max: 3,
                task: None,
            };
            let (sql, args) = sqlite::claim_statement(&q);
            let values: Vec<&dyn ToSql> = args.iter().map(|a| a as &dyn ToSql).collect();
            let plan = Db::new(&conn)
                .rows(&format!("EXPLAIN QUERY PLAN {sql}"), &values, |r| {
                    r.try_get::<String>("detail")
                })
                .unwrap();
            // Not every claimed task of the queue, each looked up for its lease; and the open
            // tasks in order (both indexes hold only the rows of their state).
            for index in ["tasks_lease", "tasks_queue_order"] {
                assert!(
                    plan.iter()
                        .any(|step| step.contains(&format!("USING INDEX {index}"))),
                    "{queues} {units:?}: {index}: {plan:#?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn numbered_parameters_take_their_own_value_wherever_they_stand() {
        let (_pool, conn) = open().await;
        let one = |sql: &str, values: &[&dyn ToSql]| -> R<Vec<String>> {
            Db::new(&conn).rows(sql, values, |r| r.try_get::<String>("v"))
        };
        let (a, b) = ("a".to_string(), "b".to_string());
        assert_eq!(
            one("SELECT $2 || $1 || $2 AS v", &[&a, &b]).unwrap(),
            ["bab"]
        );
        assert_eq!(one("SELECT ? || ? AS v", &[&a, &b]).unwrap(), ["ab"]);
        let e = one("SELECT $3 AS v", &[&a, &b]).unwrap_err();
        assert!(e.to_string().contains("no value"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_row_is_an_error_and_the_connection_goes_on() {
        let (pool, conn) = open().await;
        let (_, _, _, history, ..) = rows();
        let once = Rows {
            history: std::slice::from_ref(&history),
            ..Rows::default()
        };
        write_in_tx(&conn, &once).unwrap();
        // The same (instance, seq) again: SQLite's error, worded as sqlx words it.
        let e = write_in_tx(&conn, &once).unwrap_err();
        assert!(e.to_string().contains("UNIQUE constraint failed"), "{e}");
        assert!(e.is_retryable(), "a lost race on a unique key is retried");
        // The statement was reset: the connection writes on.
        let mut next = history.clone();
        next.seq = 2;
        let rows = Rows {
            history: std::slice::from_ref(&next),
            ..Rows::default()
        };
        write_in_tx(&conn, &rows).unwrap();
        assert_eq!(sqlite::history(&pool, "i1").await.unwrap().len(), 2);
    }
}
