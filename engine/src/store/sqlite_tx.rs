//! A write transaction on SQLite's writer connection, begun and ended by the engine itself.
//!
//! sqlx's own transaction is two hand-offs to the connection's worker thread, BEGIN and COMMIT,
//! each a thread wake-up there and one back. Here the transaction begins with its first
//! statement: a borrow of the handle runs `BEGIN IMMEDIATE` in front of whatever it reads; a
//! statement sqlx runs (`on_tx!`) begins it the same way through sqlx. A batch's flush ends it
//! in the same borrow that writes its rows ([`Borrowed::commit`]), so that a batch of events is
//! two borrows (load, flush+commit) instead of a chain of statements each handed to sqlx's
//! thread.
//!
//! A borrow hands off to sqlx's worker thread (`lock_handle`) only when it has to: the first
//! time, and after a statement sqlx ran. Otherwise the worker has finished everything it was
//! sent and waits for the next command, so it does not touch the handle, and the borrow uses
//! the handle it got before. A file database's writer connection also stays checked out from
//! one committed transaction to the next, in the engine's [`Slot`], so that sqlx does not send
//! it a ping on its way back to the pool and out again: the committer's batches then reach
//! sqlx's worker thread not at all. (Each hand-off was a wait for that thread to be woken;
//! together they were 8% of `yimen bench three-task`.)
//!
//! Dropped while open (a caller gave up, or a bug panicked), the transaction is rolled back
//! before the connection is used again: by a task spawned on the current runtime, which keeps
//! the connection meanwhile; failing that, by the next `BEGIN`, which finds the transaction still
//! open and rolls it back first. A connection goes back to the slot only after a `COMMIT` (or
//! unused); after anything else it goes back to the pool, which tests it before it is used again.

use crate::error::EngineError;
use crate::store::sqlite_direct;
use libsqlite3_sys as ffi;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};
use sqlx::{Sqlite, SqlitePool};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// The writer connection of a file database between transactions (one writer at a time: the
/// engine's write gate is held while it is taken out and put back).
#[derive(Default)]
pub struct Slot(Mutex<Option<Held>>);

impl Slot {
    fn take(&self) -> Option<Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, held: Held) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Closed rather than given back: the pool goes with the engine, and giving it back
        // needs a runtime, which a drop may not have. Its kept statements are finalized first
        // (`Held`'s field order).
        if let Some(Held {
            statements, conn, ..
        }) = self.take()
        {
            drop(statements);
            drop(conn.detach());
        }
    }
}

/// The writer connection, and what is known of sqlx's worker thread.
///
/// Statements are kept only while `synced`: they are finalized before a statement is handed to
/// sqlx (`SqliteTx::conn`). So whenever a `Held` is dropped, or its connection handed on, with
/// statements kept, the worker leaves the connection alone and finalizing them is safe; and
/// sqlx never closes the connection with one of them unfinalized. (Fields drop in order: the
/// statements before the connection.)
struct Held {
    statements: sqlite_direct::Statements,
    /// Tells this `Held` from every other the process made (see [`SqliteTx::connection`]).
    id: u64,
    conn: PoolConnection<Sqlite>,
    /// The handle, since the first borrow (the same for the connection's life).
    raw: Option<Raw>,
    /// Every command sent to sqlx's worker thread has finished (a `lock_handle` came after
    /// it), and none was sent since.
    synced: bool,
    /// Hand-offs to sqlx's worker thread for a borrow, for tests.
    hand_offs: u32,
}

/// A connection's handle, kept between borrows: here only ever used by whoever holds the
/// [`Held`] it belongs to, while `synced` (see [`SqliteTx::handle`]); in `sqlite_readers` by
/// whoever took its kept connection.
#[derive(Clone, Copy)]
pub(crate) struct Raw(pub(crate) NonNull<ffi::sqlite3>);

// SAFETY: a SQLite connection may be used from any thread, one at a time; its owner (a `Held`,
// a kept reader) is used by one transaction or read at a time, and the handle only while
// sqlx's worker leaves it alone.
unsafe impl Send for Raw {}
// SAFETY: as above; `&Raw` only gives a copy of the pointer.
unsafe impl Sync for Raw {}

static NEXT_HELD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An open write transaction on SQLite (`store::Tx::Sqlite`).
pub struct SqliteTx {
    /// `None` only once dropped.
    held: Option<Held>,
    /// `BEGIN` ran and neither `COMMIT` nor `ROLLBACK` since.
    open: bool,
    /// The last transaction end was a `COMMIT` (or there was none).
    committed: bool,
    /// Where the connection waits for the next transaction (file databases).
    slot: Option<Arc<Slot>>,
}

/// The handle, borrowed inside the transaction.
pub(crate) struct Borrowed<'c> {
    /// Held while sqlx's worker thread had to hand the handle over (it waits until dropped).
    _guard: Option<LockedSqliteHandle<'c>>,
    raw: Raw,
    statements: &'c mut sqlite_direct::Statements,
    open: &'c mut bool,
    committed: &'c mut bool,
}

impl SqliteTx {
    /// Takes the writer connection (one writer at a time: the engine's write gate), from the
    /// slot when one waits there; the transaction begins with the first statement.
    pub(crate) async fn begin(
        pool: &SqlitePool,
        slot: Option<&Arc<Slot>>,
    ) -> Result<SqliteTx, sqlx::Error> {
        let held = match slot.and_then(|s| s.take()) {
            Some(held) => held,
            None => Held {
                statements: sqlite_direct::Statements::default(),
                id: NEXT_HELD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                conn: pool.acquire().await?,
                raw: None,
                synced: false,
                hand_offs: 0,
            },
        };
        Ok(SqliteTx {
            held: Some(held),
            open: false,
            committed: true,
            slot: slot.cloned(),
        })
    }

    /// The connection for a statement sqlx runs, inside the transaction.
    pub(crate) async fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        let held = self.held.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        // The worker thread is about to use the handle. Until a `COMMIT`, the connection goes
        // back to the pool (which tests it), not to the slot. The kept statements go first:
        // once the worker has the connection, nothing else may touch it.
        held.statements.clear();
        held.synced = false;
        self.committed = false;
        if !self.open {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut *held.conn)
                .await?;
            self.open = true;
        }
        Ok(&mut held.conn)
    }

    /// The handle, borrowed, inside the transaction.
    pub(crate) async fn handle(&mut self) -> Result<Borrowed<'_>, EngineError> {
        let SqliteTx {
            held,
            open,
            committed,
            ..
        } = self;
        let held = held.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        *committed = false;
        let (guard, raw) = match held.raw {
            // Nothing sent to the worker thread since it last handed the handle over: it waits
            // for its next command and does not touch the handle.
            Some(raw) if held.synced => (None, raw),
            _ => {
                // Queued behind whatever was sent before: when it is ours, that has finished.
                let mut guard = held.conn.lock_handle().await?;
                let raw = Raw(guard.as_raw_handle());
                held.raw = Some(raw);
                held.synced = true;
                held.hand_offs += 1;
                (Some(guard), raw)
            }
        };
        if !*open {
            let db = raw.0;
            // Left open by a transaction dropped where nothing could roll it back.
            if sqlite_direct::in_transaction(db) {
                tracing::warn!("a write transaction was left open; rolled back");
                sqlite_direct::exec(db, "ROLLBACK")?;
            }
            sqlite_direct::exec(db, "BEGIN IMMEDIATE")?;
            *open = true;
        }
        Ok(Borrowed {
            _guard: guard,
            raw,
            statements: &mut held.statements,
            open,
            committed,
        })
    }

    pub(crate) async fn commit(mut self) -> Result<(), EngineError> {
        if self.open {
            self.handle().await?.commit()?;
        }
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<(), EngineError> {
        if self.open {
            self.handle().await?.rollback()?;
        }
        Ok(())
    }

    /// Names the writer connection as long as it stays out of the pool (in transactions and
    /// the slot between them): a connection taken from the pool gets a new number, also when
    /// it is one used before.
    pub(crate) fn connection(&self) -> u64 {
        self.held.as_ref().map_or(0, |h| h.id)
    }

    /// Hand-offs to sqlx's worker thread for a borrow, on this connection so far.
    #[cfg(test)]
    fn hand_offs(&self) -> u32 {
        self.held.as_ref().map_or(0, |h| h.hand_offs)
    }
}

impl Borrowed<'_> {
    /// The handle, with the statements kept for the connection.
    pub(crate) fn db(&mut self) -> sqlite_direct::Db<'_> {
        sqlite_direct::Db::new(self.raw.0, Some(&mut *self.statements))
    }

    /// Commits the transaction; should that fail, rolls it back.
    pub(crate) fn commit(self) -> Result<(), EngineError> {
        let db = self.raw.0;
        let committed = sqlite_direct::exec(db, "COMMIT");
        if committed.is_err() && sqlite_direct::in_transaction(db) {
            let _ = sqlite_direct::exec(db, "ROLLBACK");
        }
        *self.open = sqlite_direct::in_transaction(db);
        *self.committed = committed.is_ok() && !*self.open;
        committed
    }

    fn rollback(self) -> Result<(), EngineError> {
        let db = self.raw.0;
        let rolled_back = sqlite_direct::exec(db, "ROLLBACK");
        *self.open = sqlite_direct::in_transaction(db);
        rolled_back
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        if !self.open {
            if self.committed
                && let Some(slot) = &self.slot
            {
                slot.put(held);
            }
            // Else back to the pool, which tests it before it is used again.
            return;
        }
        // Kept statements imply the worker leaves the connection alone (see `Held`).
        let Held {
            statements,
            mut conn,
            ..
        } = held;
        drop(statements);
        // The connection goes back to the pool only after the rollback.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                    tracing::warn!(error = %e, "rolling back a dropped write transaction failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite;

    async fn pool() -> SqlitePool {
        // One connection: what a reader sees is what the writer left on it.
        let pool = sqlite::open("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn xs(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    async fn insert(tx: &mut SqliteTx, through_sqlx: i64, on_handle: i64) {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(through_sqlx)
            .execute(tx.conn().await.unwrap())
            .await
            .unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(
            &mut handle.db(),
            &format!("INSERT INTO t VALUES ({on_handle})"),
        )
        .unwrap();
    }

    /// A transaction of its own that inserts both and commits.
    async fn insert_committed(pool: &SqlitePool, through_sqlx: i64, on_handle: i64) {
        let mut tx = SqliteTx::begin(pool, None).await.unwrap();
        insert(&mut tx, through_sqlx, on_handle).await;
        tx.commit().await.unwrap();
    }

    /// A file database: its pool, its writer pool, and the file (removed by `remove`).
    async fn file() -> (SqlitePool, SqlitePool, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("yimen-tx-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let pool = sqlite::open(&url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        let writer = sqlite::writer(&pool, &url);
        (pool, writer, path)
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn a_borrow_hands_off_to_sqlx_only_after_a_statement_sqlx_ran() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (1)").unwrap();
        drop(handle);
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (2)").unwrap();
        drop(handle);
        assert_eq!(
            tx.hand_offs(),
            1,
            "the second borrow used the handle it had"
        );
        // sqlx's worker thread ran a statement: the next borrow waits for it to finish.
        insert(&mut tx, 3, 4).await;
        assert_eq!(tx.hand_offs(), 2);
        tx.commit().await.unwrap();
        assert_eq!(xs(&pool).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_committed_writer_waits_in_the_slot_and_needs_no_hand_off() {
        let (pool, writer, path) = file().await;
        let slot = Arc::new(Slot::default());
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        insert(&mut tx, 1, 2).await;
        tx.commit().await.unwrap();
        assert_eq!(writer.num_idle(), 0, "still checked out, in the slot");
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        let hand_offs = tx.hand_offs();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (5)").unwrap();
        handle.commit().unwrap();
        drop(tx);
        let tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        assert_eq!(
            tx.hand_offs(),
            hand_offs,
            "the same connection, no hand-off"
        );
        drop(tx);
        assert_eq!(xs(&pool).await, vec![1, 2, 5]);
        drop(slot);
        remove(&path);
    }

    #[tokio::test]
    async fn after_a_rollback_the_writer_goes_back_to_the_pool() {
        let (pool, writer, path) = file().await;
        let slot = Arc::new(Slot::default());
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        insert(&mut tx, 1, 2).await;
        tx.rollback().await.unwrap();
        assert!(slot.take().is_none(), "not in the slot");
        // Dropped open: rolled back, and not in the slot either.
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        insert(&mut tx, 3, 4).await;
        drop(tx);
        assert!(slot.take().is_none());
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        insert(&mut tx, 5, 6).await;
        tx.commit().await.unwrap();
        assert_eq!(xs(&pool).await, vec![5, 6]);
        drop(slot);
        remove(&path);
    }

    #[test]
    fn a_slot_dropped_outside_any_runtime_closes_its_connection() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (pool, slot, path) = runtime.block_on(async {
            let (pool, writer, path) = file().await;
            let slot = Arc::new(Slot::default());
            insert_committed_in(&writer, &slot, 1, 2).await;
            (pool, slot, path)
        });
        drop(runtime);
        // Giving the connection back to its pool would need a runtime (sqlx would panic).
        drop(slot);
        drop(pool);
        remove(&path);
    }

    async fn insert_committed_in(writer: &SqlitePool, slot: &Arc<Slot>, a: i64, b: i64) {
        let mut tx = SqliteTx::begin(writer, Some(slot)).await.unwrap();
        insert(&mut tx, a, b).await;
        tx.commit().await.unwrap();
        assert!(slot.0.lock().unwrap().is_some());
    }

    fn kept(tx: &SqliteTx) -> usize {
        tx.held.as_ref().map_or(0, |h| h.statements.len())
    }

    /// Whether a thread panicked closing a connection with a statement unfinalized (sqlx does,
    /// on its worker thread, where a test would not see it otherwise).
    fn watch_for_unfinalized_close() -> Arc<std::sync::atomic::AtomicBool> {
        static SEEN: std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>> =
            std::sync::OnceLock::new();
        SEEN.get_or_init(|| {
            let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = seen.clone();
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.to_string().contains("unfinalized") {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                previous(info);
            }));
            seen
        })
        .clone()
    }

    #[tokio::test]
    async fn statements_are_kept_between_borrows_and_finalized_before_sqlx_runs_one() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        for _ in 0..2 {
            let mut handle = tx.handle().await.unwrap();
            sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (1)").unwrap();
        }
        assert_eq!(
            kept(&tx),
            1,
            "prepared once, kept from one borrow to the next"
        );
        // sqlx's worker is about to use the connection: nothing of ours stays on it.
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(tx.conn().await.unwrap())
            .await
            .unwrap();
        assert_eq!(kept(&tx), 0);
        tx.commit().await.unwrap();
        assert_eq!(xs(&pool).await, vec![1, 1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_with_kept_statements_closes_cleanly_from_pool_and_slot() {
        let unfinalized = watch_for_unfinalized_close();
        let (pool, writer, path) = file().await;
        let slot = Arc::new(Slot::default());
        // Rolled back: back to the pool, which closes it.
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (1)").unwrap();
        drop(handle);
        assert_eq!(kept(&tx), 1);
        tx.rollback().await.unwrap();
        writer.close().await;
        // Committed: waits in the slot, which closes it.
        let writer = sqlite::writer(&pool, &format!("sqlite:{}", path.display()));
        let mut tx = SqliteTx::begin(&writer, Some(&slot)).await.unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (2)").unwrap();
        handle.commit().unwrap();
        drop(tx);
        drop(slot);
        writer.close().await;
        pool.close().await;
        // Closing happens on sqlx's worker threads: give them a moment.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !unfinalized.load(std::sync::atomic::Ordering::SeqCst),
            "a connection was closed with a kept statement"
        );
        remove(&path);
    }

    #[tokio::test]
    async fn statements_through_sqlx_and_on_the_handle_share_one_transaction() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        insert(&mut tx, 1, 2).await;
        tx.rollback().await.unwrap();
        assert_eq!(xs(&pool).await, Vec::<i64>::new(), "both rolled back");

        insert_committed(&pool, 3, 4).await;
        assert_eq!(xs(&pool).await, vec![3, 4]);
    }

    #[tokio::test]
    async fn a_commit_in_the_flush_borrow_ends_the_transaction() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        insert(&mut tx, 1, 2).await;
        tx.handle().await.unwrap().commit().unwrap();
        assert!(!tx.open);
        // Committing again is a no-op, and the connection is free for the next transaction.
        tx.commit().await.unwrap();
        insert_committed(&pool, 3, 4).await;
        assert_eq!(xs(&pool).await, vec![1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_transaction_dropped_open_is_rolled_back_before_the_connection_is_reused() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        insert(&mut tx, 1, 2).await;
        drop(tx);
        // The same (only) connection: without the rollback it would still see 1 and 2.
        assert_eq!(xs(&pool).await, Vec::<i64>::new());
        insert_committed(&pool, 3, 4).await;
        assert_eq!(xs(&pool).await, vec![3, 4]);
    }

    #[tokio::test]
    async fn a_transaction_left_open_on_the_connection_is_rolled_back_at_the_next_begin() {
        let pool = pool().await;
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("BEGIN; INSERT INTO t VALUES (1)")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let mut tx = SqliteTx::begin(&pool, None).await.unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::run_kept(&mut handle.db(), "INSERT INTO t VALUES (2)").unwrap();
        handle.commit().unwrap();
        drop(tx);
        assert_eq!(xs(&pool).await, vec![2]);
    }
}
