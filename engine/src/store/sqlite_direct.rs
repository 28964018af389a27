//! A batch's reads and flush on SQLite, run by the committer itself on the writer
//! connection's handle.
//!
//! sqlx runs each statement on the connection's own worker thread: every statement is a
//! hand-off there and back, and a flush through it is a dozen multi-row statements (rows in
//! chunks of 64, 32, .., 1), plus one statement per outbox message and per document (the
//! social-assistance case writes four of those per case). Here the committer borrows the
//! handle (`sqlite_tx.rs`, which hands off to sqlx's worker only when it must) twice per batch
//! (`commit::commit_batch`): once for every read, with `BEGIN IMMEDIATE` in front: the claims
//! ([`claims`], the statements of `sqlite::claim_statement`), the claimed tasks' instances, the
//! tasks to complete with their siblings, instances and pending timers
//! (`Staged::prefetch_tasks_direct`), the business keys of the starts; and once for the flush
//! and `COMMIT`. The flush runs one single-row statement per table, once per row: same SQL as
//! `common.rs` (the column lists are shared, `store::INSTANCES_INTO` and the others), no copy
//! of the values. The reads run the same SQL text as sqlx does (`store::sqlite::LOCK_INSTANCES`
//! and the others), their rows decoded by the same field lists (`instance_fields!` and the
//! others, by column name). The statements are prepared once per connection and kept
//! ([`Statements`], in `sqlite_tx::Held`) until sqlx is about to use the connection again.
//!
//! Next to the allocator set-up in `sqlite.rs` and the handle kept in `sqlite_tx.rs`, this is
//! the project's only `unsafe` code: calls into SQLite's C interface on a handle sqlx lends.

use crate::error::EngineError;
// `instance_fields!` and the others expand to it.
use crate::store::sqlite::by_name;
use crate::store::{
    Arg, ClaimQuery, DocumentRow, HistoryRow, InstanceRow, OutboxRow, TaskRow, TimerRow,
};
use libsqlite3_sys as ffi;
use std::collections::HashMap;
use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

type R<T> = Result<T, EngineError>;

/// Statements prepared on one connection and kept from one borrow of its handle to the next
/// (`sqlite_tx::Held`), so that a batch does not parse and plan its statements again. Dropped
/// (finalized) before sqlx uses the connection again, and so before it closes it
/// (`sqlite3_close` fails while a statement is unfinalized, and sqlx then panics).
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement, foldhash::fast::RandomState>);

impl Statements {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Finalizes every statement.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

/// A borrowed connection's handle, with the statements kept for it (if any).
pub(crate) struct Db<'a> {
    raw: NonNull<ffi::sqlite3>,
    kept: Option<&'a mut Statements>,
}

impl<'a> Db<'a> {
    /// `raw` must be a handle no other thread uses while this lives (a `LockedSqliteHandle`'s,
    /// or one `sqlite_tx` knows to be left alone).
    pub(crate) fn new(raw: NonNull<ffi::sqlite3>, kept: Option<&'a mut Statements>) -> Db<'a> {
        Db { raw, kept }
    }

    /// Runs `f` on the statement of `sql`: the kept one, else one prepared now (and kept, if
    /// statements are kept for this handle).
    fn with<T>(&mut self, sql: &str, f: impl FnOnce(&mut Statement) -> R<T>) -> R<T> {
        let Some(kept) = self.kept.as_deref_mut() else {
            return f(&mut Statement::new(self.raw, sql)?);
        };
        let statement = match kept.0.entry(sql.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Statement::new(self.raw, sql)?)
            }
        };
        f(statement)
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
    }
}

/// Writes `rows` in the open transaction of the connection `db`.
///
/// `db` must be the handle of a `LockedSqliteHandle` that stays locked for the whole call, so
/// that no other thread uses the connection meanwhile.
pub(crate) fn write(db: &mut Db<'_>, rows: &Rows<'_>) -> R<()> {
    use crate::store::{
        DOCUMENTS_INTO, HISTORY_INTO, INSTANCES_INTO, INSTANCES_UPSERT, OUTBOX_INTO, TASKS_INTO,
        TASKS_UPSERT, TIMERS_INTO,
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
    if !rows.cancelled.is_empty() {
        db.with(crate::store::CANCEL_TIMER, |st| {
            for id in rows.cancelled {
                st.run(&[*id])?;
            }
            Ok(())
        })?;
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
    values: impl Fn(&'r T) -> [&'r dyn Bind; N],
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    db.with(&insert_sql(into, N, tail), |st| {
        for row in rows {
            st.run(&values(row))?;
        }
        Ok(())
    })
}

/// `INSERT INTO <into> VALUES (?, .. cols) <tail>`.
fn insert_sql(into: &str, cols: usize, tail: &str) -> String {
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
pub(crate) fn tasks(db: &mut Db<'_>, sql: &str, json: &String) -> R<Vec<TaskRow>> {
    db.with(sql, |st| {
        st.rows(&[json], |r| Ok(crate::store::sqlite::task_fields!(r)))
    })
}

/// Instances by `sql` with JSON-array parameters (ids; or processes and business keys).
pub(crate) fn instances(db: &mut Db<'_>, sql: &str, json: &[&String]) -> R<Vec<InstanceRow>> {
    let values: Vec<&dyn Bind> = json.iter().map(|v| *v as &dyn Bind).collect();
    db.with(sql, |st| {
        st.rows(&values, |r| Ok(crate::store::sqlite::instance_fields!(r)))
    })
}

/// Fetch-and-lock (`sqlite::claim_tasks`), the same statements on the handle: the tasks of each
/// query, in order. Queries of the same shape share one prepared statement (a batch holds a
/// claim per polling worker, and the statement takes longer to prepare than to run), also
/// without kept statements.
pub(crate) fn claims(db: &mut Db<'_>, queries: &[&ClaimQuery]) -> R<Vec<Vec<TaskRow>>> {
    let mut batch = Statements::default();
    let mut db = match db.kept.as_deref_mut() {
        Some(kept) => Db::new(db.raw, Some(kept)),
        None => Db::new(db.raw, Some(&mut batch)),
    };
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let (sql, args) = crate::store::sqlite::claim_statement(q);
        let values: Vec<&dyn Bind> = args.iter().map(|a| a as &dyn Bind).collect();
        let mut tasks = db.with(sql, |st| {
            st.rows(&values, |r| Ok(crate::store::sqlite::task_fields!(r)))
        })?;
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
    let values = db.with(sql, |st| st.rows(&[], |r| Ok(r.try_get::<i64>(column)?)))?;
    values
        .first()
        .copied()
        .ok_or_else(|| EngineError::Internal(format!("no row from {sql}")))
}

/// The access generation (`store::tokens::TokenStore::generation`, the same SQL).
pub(crate) fn access_generation(db: &mut Db<'_>) -> R<i64> {
    query_i64(db, crate::store::tokens::GENERATION_SQL, "generation").map_err(|_| {
        EngineError::Internal(
            "the row of access_generation is missing; migration 0110 inserts it".into(),
        )
    })
}

pub(crate) fn timers(db: &mut Db<'_>, sql: &str, json: &String) -> R<Vec<TimerRow>> {
    db.with(sql, |st| {
        st.rows(&[json], |r| Ok(crate::store::sqlite::timer_fields!(r)))
    })
}

/// Runs one statement that returns no rows (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`).
pub(crate) fn exec(db: NonNull<ffi::sqlite3>, sql: &str) -> R<()> {
    Statement::new(db, sql)?.run(&[])
}

/// Runs `sql` (no parameters, no rows) as a kept statement, for tests.
#[cfg(test)]
pub(crate) fn run_kept(db: &mut Db<'_>, sql: &str) -> R<()> {
    db.with(sql, |st| st.run(&[]))
}

/// Whether the connection is inside a transaction.
pub(crate) fn in_transaction(db: NonNull<ffi::sqlite3>) -> bool {
    // SAFETY: `db` is an open connection no other thread uses meanwhile.
    unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) == 0 }
}

/// The current row of a statement being stepped.
struct Row<'s> {
    stmt: *mut ffi::sqlite3_stmt,
    names: &'s [String],
}

impl Row<'_> {
    /// The value of the column `name`, as sqlx's `Row::try_get` would give it.
    fn try_get<T: FromColumn>(&self, name: &str) -> Result<T, sqlx::Error> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(name.into()))?;
        let column =
            c_int::try_from(index).map_err(|_| sqlx::Error::ColumnNotFound(name.into()))?;
        // SAFETY: `stmt` has a current row (`Statement::rows` steps it) with this column.
        unsafe { T::read(self.stmt, column) }.map_err(|source| sqlx::Error::ColumnDecode {
            index: name.into(),
            source: source.into(),
        })
    }
}

/// A column value as a Rust value.
trait FromColumn: Sized {
    /// # Safety
    /// `stmt` has a current row with the column `i`.
    unsafe fn read(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<Self, String>;
}

/// Whether the column is NULL.
///
/// # Safety
/// As for [`FromColumn::read`].
unsafe fn is_null(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> bool {
    // SAFETY: as the caller promises.
    unsafe { ffi::sqlite3_column_type(stmt, i) == ffi::SQLITE_NULL }
}

impl FromColumn for i64 {
    unsafe fn read(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<i64, String> {
        // SAFETY: as the caller promises.
        unsafe {
            if is_null(stmt, i) {
                return Err("unexpected NULL".into());
            }
            Ok(ffi::sqlite3_column_int64(stmt, i))
        }
    }
}

impl FromColumn for String {
    unsafe fn read(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<String, String> {
        // SAFETY: as the caller promises. The text pointer stays valid until the next call on
        // this column or row (`column_bytes` after `column_text`, as SQLite asks), and is copied
        // before that.
        unsafe {
            if is_null(stmt, i) {
                return Err("unexpected NULL".into());
            }
            let text = ffi::sqlite3_column_text(stmt, i);
            let len = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
            if text.is_null() {
                return Ok(String::new());
            }
            let bytes = std::slice::from_raw_parts(text, len);
            String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
        }
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    unsafe fn read(stmt: *mut ffi::sqlite3_stmt, i: c_int) -> Result<Option<T>, String> {
        // SAFETY: as the caller promises.
        unsafe {
            if is_null(stmt, i) {
                return Ok(None);
            }
            T::read(stmt, i).map(Some)
        }
    }
}

/// A value as SQLite gets it.
enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

/// A column value of a row.
trait Bind {
    fn value(&self) -> Value<'_>;
}

impl Bind for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Bind for &str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Bind for i64 {
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl Bind for Arg<'_> {
    fn value(&self) -> Value<'_> {
        match self {
            Arg::Text(s) => Value::Text(s),
            Arg::Int(i) => Value::Int(*i),
        }
    }
}

impl<T: Bind> Bind for Option<T> {
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
}

/// One prepared statement, finalized when dropped.
pub(crate) struct Statement {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    fn new(db: NonNull<ffi::sqlite3>, sql: &str) -> R<Statement> {
        let len = c_int::try_from(sql.len())
            .map_err(|_| EngineError::Internal("a statement is too long".into()))?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: `db` is an open connection no other thread uses meanwhile (see `Db::new`); `sql`
        // is valid for `len` bytes; `raw` receives the statement or null.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db));
        }
        let raw = NonNull::new(raw)
            .ok_or_else(|| EngineError::Internal(format!("an empty statement: {sql}")))?;
        Ok(Statement { db, raw })
    }

    /// Binds `values` to the parameters 1, 2, .. and decodes every row the statement returns.
    fn rows<T>(&mut self, values: &[&dyn Bind], decode: impl Fn(&Row<'_>) -> R<T>) -> R<Vec<T>> {
        let stmt = self.raw.as_ptr();
        // SAFETY: `stmt` is a live statement of `db`; column names are NUL-terminated strings
        // owned by the statement, copied at once.
        let names: Vec<String> = unsafe {
            (0..ffi::sqlite3_column_count(stmt))
                .map(|i| {
                    let name = ffi::sqlite3_column_name(stmt, i);
                    if name.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(name).to_string_lossy().into_owned()
                    }
                })
                .collect()
        };
        let mut out = Vec::new();
        self.each_step(values, |stmt| {
            out.push(decode(&Row {
                stmt,
                names: &names,
            })?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Binds `values` to the parameters 1, 2, .. and runs the statement once.
    fn run(&mut self, values: &[&dyn Bind]) -> R<()> {
        self.each_step(values, |_| {
            Err(EngineError::Internal(
                "a write statement returned a row".into(),
            ))
        })
    }

    /// Binds `values`, steps the statement to its end calling `row` on each row, then resets it
    /// and clears its bindings (also on an error).
    fn each_step(
        &mut self,
        values: &[&dyn Bind],
        mut row: impl FnMut(*mut ffi::sqlite3_stmt) -> R<()>,
    ) -> R<()> {
        let stmt = self.raw.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        let mut missing = None;
        // SAFETY: `stmt` is a live statement of `db`.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        for n in 1..=count {
            // `$3` is the third value wherever it stands (as sqlx binds it): SQLite numbers
            // named parameters in the order they first appear.
            let Some(v) = value_index(stmt, n).and_then(|i| values.get(i)) else {
                missing = Some(EngineError::Internal(format!(
                    "parameter {n} of a statement has no value ({} given)",
                    values.len()
                )));
                break;
            };
            // SAFETY: `stmt` is a live statement of `db` and `n` one of its parameters. A text
            // is bound without a copy (SQLITE_STATIC): it is borrowed for this call only, and
            // the bindings are cleared before returning.
            rc = unsafe {
                match v.value() {
                    Value::Text(s) => match c_int::try_from(s.len()) {
                        Ok(len) => ffi::sqlite3_bind_text(
                            stmt,
                            n,
                            s.as_ptr().cast(),
                            len,
                            ffi::SQLITE_STATIC(),
                        ),
                        Err(_) => ffi::SQLITE_TOOBIG,
                    },
                    Value::Int(i) => ffi::sqlite3_bind_int64(stmt, n, i),
                    Value::Null => ffi::sqlite3_bind_null(stmt, n),
                }
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        let mut failed = missing.or_else(|| (rc != ffi::SQLITE_OK).then(|| error(self.db)));
        while failed.is_none() {
            // SAFETY: as above; every parameter is bound.
            rc = unsafe { ffi::sqlite3_step(stmt) };
            match rc {
                ffi::SQLITE_DONE => break,
                ffi::SQLITE_ROW => failed = row(stmt).err(),
                _ => failed = Some(error(self.db)),
            }
        }
        // SAFETY: as above. Reset returns the step's error again, which is already taken.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        failed.map_or(Ok(()), Err)
    }
}

// SAFETY: a statement is used, like its connection, by one thread at a time: inside a borrow
// of the handle, or dropped where `sqlite_tx` knows sqlx's worker leaves the connection alone.
unsafe impl Send for Statement {}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once, here: at the end of a borrow of the
        // handle, or when `sqlite_tx` drops the statements it kept, which it does only while
        // sqlx's worker leaves the connection alone and before sqlx closes it.
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

/// Which of the values (from 0) the parameter `n` of `stmt` takes: `$k` or `?k` the k-th, a
/// bare `?` the n-th.
fn value_index(stmt: *mut ffi::sqlite3_stmt, n: c_int) -> Option<usize> {
    // SAFETY: `stmt` is a live statement; the name, if any, is a NUL-terminated string it owns.
    let name = unsafe {
        let name = ffi::sqlite3_bind_parameter_name(stmt, n);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_bytes())
    };
    let k = match name {
        None => usize::try_from(n).ok()?,
        Some(name) => std::str::from_utf8(name.get(1..)?).ok()?.parse().ok()?,
    };
    k.checked_sub(1)
}

/// The connection's last error, as sqlx words SQLite's errors (message and extended code), so
/// that `EngineError::is_retryable` reads it the same.
fn error(db: NonNull<ffi::sqlite3>) -> EngineError {
    // SAFETY: `db` is live; the message is a NUL-terminated string owned by the connection,
    // copied at once.
    let (message, code) = unsafe {
        let message = CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr()))
            .to_string_lossy()
            .into_owned();
        (message, ffi::sqlite3_extended_errcode(db.as_ptr()))
    };
    EngineError::Storage(format!("{message} ({code})"))
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
            status: "running".into(),
            result: s("res"),
            incident: s("inc"),
            vars: r#"{"a":"名字 \"q\""}"#.into(),
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
            state: "claimed".into(),
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
        };
        let timer = TimerRow {
            id: "tm1".into(),
            instance_id: "i1".into(),
            kind: "k".into(),
            node: "tn".into(),
            task_id: s("t1"),
            due_at: 17,
            payload: "pl".into(),
            state: "pending".into(),
        };
        let history = HistoryRow {
            instance_id: "i1".into(),
            seq: 1,
            at: 18,
            actor: "ac".into(),
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
            state: "pending".into(),
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

    async fn write_in_tx(pool: &sqlx::SqlitePool, rows: &Rows<'_>) -> R<()> {
        let mut tx = pool.begin().await?;
        {
            let mut handle = tx.lock_handle().await?;
            write(&mut Db::new(handle.as_raw_handle(), None), rows)?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tokio::test]
    async fn every_column_lands_in_its_place_and_upserts_update() {
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
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
        write_in_tx(&pool, &rows).await.unwrap();
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
        instance.status = "completed".into();
        instance.history_count = 8;
        task.state = "completed".into();
        task.lapsed_by = None;
        let rows = Rows {
            instances: &[&instance],
            tasks: &[&task],
            cancelled: &[&timer.id],
            ..Rows::default()
        };
        write_in_tx(&pool, &rows).await.unwrap();
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        let (instance, mut task, timer, ..) = rows();
        task.state = "open".into();
        let mut done = task.clone();
        done.id = "t2".into();
        done.state = "completed".into();
        done.label = None;
        let rows = Rows {
            instances: &[&instance],
            tasks: &[&task, &done],
            timers: &[(&timer, 19)],
            ..Rows::default()
        };
        write_in_tx(&pool, &rows).await.unwrap();

        let mut tx = pool.begin().await.unwrap();
        let ids = r#"["i1"]"#.to_string();
        let (direct_tasks, direct_siblings, direct_instances, direct_timers) = {
            let mut handle = tx.lock_handle().await.unwrap();
            let db = &mut Db::new(handle.as_raw_handle(), None);
            (
                tasks(db, sqlite::LOCK_LIVE_TASKS, &ids).unwrap(),
                tasks(
                    db,
                    sqlite::LOCK_TASKS_WITH_SIBLINGS,
                    &r#"["t2"]"#.to_string(),
                )
                .unwrap(),
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
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
            t.state = state.into();
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
        write_in_tx(&pool, &rows).await.unwrap();
        // The four statements: one queue or several, with org units or without.
        for (queues, units, expected) in [
            (r#"["a"]"#, None, 2),
            (r#"["a","b"]"#, None, 3),
            (r#"["a"]"#, Some(r#"["s1"]"#), 1),
            (r#"["b","a"]"#, Some(r#"["s1"]"#), 3),
        ] {
            let q = ClaimQuery {
                actor: "w2".into(),
                worker: Some("bot".into()),
                queues: queues.into(),
                org_units: units.map(Into::into),
                now: 100,
                expires_at: 200,
                max: 3,
            };
            let mut tx = pool.begin().await.unwrap();
            let direct = {
                let mut handle = tx.lock_handle().await.unwrap();
                let mut claimed =
                    claims(&mut Db::new(handle.as_raw_handle(), None), &[&q]).unwrap();
                claimed.remove(0)
            };
            tx.rollback().await.unwrap();
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        let (_, template, ..) = rows();
        let tasks: Vec<TaskRow> = (0..5)
            .map(|n| {
                let mut t = template.clone();
                t.id = format!("t{n}");
                t.queue = if n % 2 == 0 { "a" } else { "b" }.into();
                t.state = "open".into();
                (t.org_unit, t.assignee, t.lock_expires_at) = (None, None, None);
                (t.available_at, t.created_at) = (0, n);
                t
            })
            .collect();
        let refs: Vec<&TaskRow> = tasks.iter().collect();
        write_in_tx(
            &pool,
            &Rows {
                tasks: &refs,
                ..Rows::default()
            },
        )
        .await
        .unwrap();
        let query = |worker: &str, queues: &str, max| ClaimQuery {
            actor: worker.into(),
            worker: None,
            queues: queues.into(),
            org_units: None,
            now: 100,
            expires_at: 200,
            max,
        };
        // The first, second and fourth share a statement; the third comes between them.
        let queries = [
            query("w1", r#"["a"]"#, 1),
            query("w2", r#"["a"]"#, 1),
            query("w3", r#"["a","b"]"#, 2),
            query("w4", r#"["a"]"#, 5),
        ];
        let refs: Vec<&ClaimQuery> = queries.iter().collect();
        let mut tx = pool.begin().await.unwrap();
        let direct = {
            let mut handle = tx.lock_handle().await.unwrap();
            claims(&mut Db::new(handle.as_raw_handle(), None), &refs).unwrap()
        };
        tx.rollback().await.unwrap();
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        for (queues, units) in [
            (r#"["a"]"#, None),
            (r#"["a","b"]"#, None),
            (r#"["a"]"#, Some(r#"["s1"]"#)),
            (r#"["a","b"]"#, Some(r#"["s1"]"#)),
        ] {
            let q = ClaimQuery {
                actor: "w".into(),
                worker: None,
                queues: queues.into(),
                org_units: units.map(Into::into),
                now: 100,
                expires_at: 200,
                max: 3,
            };
            let (sql, args) = sqlite::claim_statement(&q);
            let values: Vec<&dyn Bind> = args.iter().map(|a| a as &dyn Bind).collect();
            let mut conn = pool.acquire().await.unwrap();
            let mut handle = conn.lock_handle().await.unwrap();
            let plan = Statement::new(handle.as_raw_handle(), &format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .rows(&values, |r| Ok(r.try_get::<String>("detail")?))
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let mut handle = conn.lock_handle().await.unwrap();
        let db = handle.as_raw_handle();
        let one = |sql: &str, values: &[&dyn Bind]| -> R<Vec<String>> {
            Statement::new(db, sql)?.rows(values, |r| Ok(r.try_get::<String>("v")?))
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
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        let (_, _, _, history, ..) = rows();
        let once = Rows {
            history: std::slice::from_ref(&history),
            ..Rows::default()
        };
        write_in_tx(&pool, &once).await.unwrap();
        // The same (instance, seq) again: SQLite's error, worded as sqlx words it.
        let e = write_in_tx(&pool, &once).await.unwrap_err();
        assert!(e.to_string().contains("UNIQUE constraint failed"), "{e}");
        assert!(e.is_retryable(), "a lost race on a unique key is retried");
        // The statement was reset and finalized: the connection writes on.
        let mut next = history.clone();
        next.seq = 2;
        let rows = Rows {
            history: std::slice::from_ref(&next),
            ..Rows::default()
        };
        write_in_tx(&pool, &rows).await.unwrap();
        assert_eq!(sqlite::history(&pool, "i1").await.unwrap().len(), 2);
    }
}
