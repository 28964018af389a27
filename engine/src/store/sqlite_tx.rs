//! A write transaction on SQLite: on the engine's one writer connection, a rusqlite connection
//! used on the caller's own thread (the committer's thread for its batches).
//!
//! Every write transaction of the engine runs on that connection (one writer at a time: the
//! engine's write gate), so its page cache stays valid from one transaction to the next, and
//! its statements stay prepared (`sqlite_direct`). It waits in the [`Writer`] between
//! transactions; nothing of sqlx's takes part, so a statement costs no hand-off to another
//! thread. The transaction begins with its first statement (`BEGIN IMMEDIATE` in front of
//! it, [`SqliteTx::db`]); a batch's flush ends it in the same call that writes its rows
//! ([`SqliteTx::commit_now`]).
//!
//! Dropped while open (a caller gave up, or a bug panicked), the transaction is rolled back at
//! once, on the dropping thread. A connection whose transaction could not be ended is closed
//! (which rolls it back), and the next transaction opens another.

use crate::error::EngineError;
use crate::store::sqlite::Database;
use crate::store::sqlite_direct::{self, Db};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type R<T> = Result<T, EngineError>;

/// The writer connection of one engine, between transactions.
pub(crate) struct Writer {
    database: Database,
    idle: Mutex<Option<Kept>>,
}

/// The writer connection, and its number.
struct Kept {
    conn: rusqlite::Connection,
    /// Tells this connection from every other the process opened (see
    /// [`SqliteTx::connection`]).
    id: u64,
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

impl Writer {
    /// The writer of `database`, connected when first used.
    pub(crate) fn new(database: Database) -> Writer {
        Writer {
            database,
            idle: Mutex::new(None),
        }
    }

    fn take(&self) -> R<Kept> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        match idle {
            Some(kept) => Ok(kept),
            None => Ok(Kept {
                conn: self.database.connect_writer()?,
                id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            }),
        }
    }

    fn put(&self, kept: Kept) {
        *self.idle.lock().unwrap_or_else(|e| e.into_inner()) = Some(kept);
    }
}

/// An open write transaction on SQLite (`store::Tx::Sqlite`).
pub struct SqliteTx {
    /// `None` only once dropped.
    kept: Option<Kept>,
    /// `BEGIN` ran and neither `COMMIT` nor `ROLLBACK` since.
    open: bool,
    writer: std::sync::Arc<Writer>,
}

impl SqliteTx {
    /// Takes the writer connection (one writer at a time: the engine's write gate); the
    /// transaction begins with the first statement.
    pub(crate) fn begin(writer: &std::sync::Arc<Writer>) -> R<SqliteTx> {
        Ok(SqliteTx {
            kept: Some(writer.take()?),
            open: false,
            writer: writer.clone(),
        })
    }

    fn conn(&self) -> R<&rusqlite::Connection> {
        self.kept
            .as_ref()
            .map(|k| &k.conn)
            .ok_or_else(|| EngineError::Internal("a finished transaction was used".into()))
    }

    /// The connection inside the transaction (begun now if it was not yet).
    pub(crate) fn db(&mut self) -> R<Db<'_>> {
        if !self.open {
            let conn = self.conn()?;
            // Left open by a transaction whose rollback failed.
            if sqlite_direct::in_transaction(conn) {
                tracing::warn!("a write transaction was left open; rolled back");
                sqlite_direct::exec(conn, "ROLLBACK")?;
            }
            sqlite_direct::exec(conn, "BEGIN IMMEDIATE")?;
            self.open = true;
        }
        Ok(Db::new(self.conn()?))
    }

    /// Commits the transaction now (if one is open); should that fail, rolls it back.
    pub(crate) fn commit_now(&mut self) -> R<()> {
        if !self.open {
            return Ok(());
        }
        let conn = self.conn()?;
        let committed = sqlite_direct::exec(conn, "COMMIT");
        if committed.is_err() && sqlite_direct::in_transaction(conn) {
            let _ = sqlite_direct::exec(conn, "ROLLBACK");
        }
        self.open = sqlite_direct::in_transaction(conn);
        committed
    }

    pub(crate) fn commit(mut self) -> R<()> {
        self.commit_now()
    }

    pub(crate) fn rollback(mut self) -> R<()> {
        self.rollback_now()
    }

    fn rollback_now(&mut self) -> R<()> {
        if !self.open {
            return Ok(());
        }
        let conn = self.conn()?;
        let rolled_back = sqlite_direct::exec(conn, "ROLLBACK");
        self.open = sqlite_direct::in_transaction(conn);
        rolled_back
    }

    /// Names the writer connection: another number after it was closed and opened again.
    pub(crate) fn connection(&self) -> u64 {
        self.kept.as_ref().map_or(0, |k| k.id)
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.rollback_now()
        {
            tracing::warn!(error = %e, "rolling back a dropped write transaction failed");
        }
        let Some(kept) = self.kept.take() else {
            return;
        };
        if sqlite_direct::in_transaction(&kept.conn) {
            // Closed, which rolls back; the next transaction opens another connection.
            return;
        }
        self.writer.put(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite;
    use std::sync::Arc;

    /// A file database: its pool, its writer, and the file (removed by `remove`).
    async fn file() -> (sqlx::SqlitePool, Arc<Writer>, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("yimen-tx-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let (pool, database) = sqlite::open_database(&url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        (pool, Arc::new(Writer::new(database)), path)
    }

    fn remove(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    async fn xs(pool: &sqlx::SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    fn insert(tx: &mut SqliteTx, x: i64) {
        sqlite_direct::run_kept(
            &mut tx.db().unwrap(),
            &format!("INSERT INTO t VALUES ({x})"),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_committed_transaction_is_seen_and_its_connection_kept() {
        let (pool, writer, path) = file().await;
        let mut tx = SqliteTx::begin(&writer).unwrap();
        let connection = tx.connection();
        insert(&mut tx, 1);
        insert(&mut tx, 2);
        assert!(xs(&pool).await.is_empty(), "not yet committed");
        tx.commit().unwrap();
        assert_eq!(xs(&pool).await, vec![1, 2]);
        let tx = SqliteTx::begin(&writer).unwrap();
        assert_eq!(tx.connection(), connection, "the same connection");
        drop(tx);
        remove(&path);
    }

    #[tokio::test]
    async fn a_commit_in_the_flush_ends_the_transaction() {
        let (pool, writer, path) = file().await;
        let mut tx = SqliteTx::begin(&writer).unwrap();
        insert(&mut tx, 1);
        tx.commit_now().unwrap();
        assert!(!tx.open);
        // Committing again is a no-op; a statement after it begins another transaction.
        tx.commit_now().unwrap();
        insert(&mut tx, 2);
        tx.commit().unwrap();
        assert_eq!(xs(&pool).await, vec![1, 2]);
        remove(&path);
    }

    #[tokio::test]
    async fn a_rolled_back_or_dropped_transaction_leaves_nothing() {
        let (pool, writer, path) = file().await;
        let mut tx = SqliteTx::begin(&writer).unwrap();
        insert(&mut tx, 1);
        tx.rollback().unwrap();
        let mut tx = SqliteTx::begin(&writer).unwrap();
        insert(&mut tx, 2);
        drop(tx);
        // Rolled back on the spot: the next transaction takes the write lock at once.
        let mut tx = SqliteTx::begin(&writer).unwrap();
        insert(&mut tx, 3);
        tx.commit().unwrap();
        assert_eq!(xs(&pool).await, vec![3]);
        remove(&path);
    }

    #[tokio::test]
    async fn a_transaction_left_open_on_the_connection_is_rolled_back_at_the_next_begin() {
        let (pool, writer, path) = file().await;
        let mut tx = SqliteTx::begin(&writer).unwrap();
        // As if a rollback had failed: the connection is still in a transaction.
        sqlite_direct::exec(tx.conn().unwrap(), "BEGIN").unwrap();
        sqlite_direct::exec(tx.conn().unwrap(), "INSERT INTO t VALUES (1)").unwrap();
        insert(&mut tx, 2);
        tx.commit().unwrap();
        assert_eq!(xs(&pool).await, vec![2]);
        remove(&path);
    }

    #[tokio::test]
    async fn statements_stay_prepared_from_one_transaction_to_the_next() {
        let (pool, writer, path) = file().await;
        for x in 0..3 {
            let mut tx = SqliteTx::begin(&writer).unwrap();
            crate::store::sqlite_write::set_task_due(&mut tx.db().unwrap(), "none", Some(x))
                .unwrap();
            tx.commit().unwrap();
        }
        let tx = SqliteTx::begin(&writer).unwrap();
        let conn = tx.conn().unwrap();
        // The one statement prepared in the first transaction ran in all three.
        let st = conn
            .prepare_cached(crate::store::timers::sqlite::SET_TASK_DUE)
            .unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::Run), 3);
        drop(st);
        drop(tx);
        drop(pool);
        remove(&path);
    }
}
