//! A write transaction on SQLite's writer connection, begun and ended by the engine itself.
//!
//! sqlx's own transaction is two hand-offs to the connection's worker thread, BEGIN and COMMIT,
//! each a thread wake-up there and one back. Here the transaction begins with its first
//! statement: a borrow of the handle (`lock_handle`, one hand-off) runs `BEGIN IMMEDIATE` in
//! front of whatever it reads; a statement sqlx runs (`on_tx!`) begins it the same way through
//! sqlx. A batch's flush ends it in the same borrow that writes its rows
//! ([`Borrowed::commit`]), so that a batch of events costs two borrows (load, flush+commit)
//! instead of a chain of statements each handed to sqlx's thread.
//!
//! Dropped while open (a caller gave up, or a bug panicked), the transaction is rolled back
//! before the connection is used again: by a task spawned on the current runtime, which keeps
//! the connection meanwhile; failing that, by the next `BEGIN`, which finds the transaction still
//! open and rolls it back first.

use crate::error::EngineError;
use crate::store::sqlite_direct;
use libsqlite3_sys as ffi;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};
use sqlx::{Sqlite, SqlitePool};
use std::ptr::NonNull;

/// An open write transaction on SQLite (`store::Tx::Sqlite`).
pub struct SqliteTx {
    /// `None` only once dropped.
    conn: Option<PoolConnection<Sqlite>>,
    /// `BEGIN` ran and neither `COMMIT` nor `ROLLBACK` since.
    open: bool,
}

/// The handle, borrowed inside the transaction (sqlx's worker waits until it is dropped).
pub(crate) struct Borrowed<'c> {
    guard: LockedSqliteHandle<'c>,
    open: &'c mut bool,
}

impl SqliteTx {
    /// Takes the writer connection (one writer at a time: the engine's write gate); the
    /// transaction begins with the first statement.
    pub(crate) async fn begin(pool: &SqlitePool) -> Result<SqliteTx, sqlx::Error> {
        Ok(SqliteTx {
            conn: Some(pool.acquire().await?),
            open: false,
        })
    }

    /// The connection for a statement sqlx runs, inside the transaction.
    pub(crate) async fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        let open = self.open;
        let conn = self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        if !open {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut **conn)
                .await?;
            self.open = true;
        }
        Ok(self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)?)
    }

    /// The handle, borrowed, inside the transaction.
    pub(crate) async fn handle(&mut self) -> Result<Borrowed<'_>, EngineError> {
        let SqliteTx { conn, open } = self;
        let conn = conn.as_mut().ok_or(sqlx::Error::PoolClosed)?;
        let mut guard = conn.lock_handle().await?;
        if !*open {
            let db = guard.as_raw_handle();
            // Left open by a transaction dropped where nothing could roll it back.
            if sqlite_direct::in_transaction(db) {
                tracing::warn!("a write transaction was left open; rolled back");
                sqlite_direct::exec(db, "ROLLBACK")?;
            }
            sqlite_direct::exec(db, "BEGIN IMMEDIATE")?;
            *open = true;
        }
        Ok(Borrowed { guard, open })
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
}

impl Borrowed<'_> {
    pub(crate) fn db(&mut self) -> NonNull<ffi::sqlite3> {
        self.guard.as_raw_handle()
    }

    /// Commits the transaction; should that fail, rolls it back.
    pub(crate) fn commit(mut self) -> Result<(), EngineError> {
        let db = self.db();
        let committed = sqlite_direct::exec(db, "COMMIT");
        if committed.is_err() && sqlite_direct::in_transaction(db) {
            let _ = sqlite_direct::exec(db, "ROLLBACK");
        }
        *self.open = sqlite_direct::in_transaction(db);
        committed
    }

    fn rollback(mut self) -> Result<(), EngineError> {
        let db = self.db();
        let rolled_back = sqlite_direct::exec(db, "ROLLBACK");
        *self.open = sqlite_direct::in_transaction(db);
        rolled_back
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let Some(mut conn) = self.conn.take() else {
            return;
        };
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
        sqlite_direct::exec(handle.db(), &format!("INSERT INTO t VALUES ({on_handle})")).unwrap();
    }

    /// A transaction of its own that inserts both and commits.
    async fn insert_committed(pool: &SqlitePool, through_sqlx: i64, on_handle: i64) {
        let mut tx = SqliteTx::begin(pool).await.unwrap();
        insert(&mut tx, through_sqlx, on_handle).await;
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn statements_through_sqlx_and_on_the_handle_share_one_transaction() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool).await.unwrap();
        insert(&mut tx, 1, 2).await;
        tx.rollback().await.unwrap();
        assert_eq!(xs(&pool).await, Vec::<i64>::new(), "both rolled back");

        insert_committed(&pool, 3, 4).await;
        assert_eq!(xs(&pool).await, vec![3, 4]);
    }

    #[tokio::test]
    async fn a_commit_in_the_flush_borrow_ends_the_transaction() {
        let pool = pool().await;
        let mut tx = SqliteTx::begin(&pool).await.unwrap();
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
        let mut tx = SqliteTx::begin(&pool).await.unwrap();
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
        let mut tx = SqliteTx::begin(&pool).await.unwrap();
        let mut handle = tx.handle().await.unwrap();
        sqlite_direct::exec(handle.db(), "INSERT INTO t VALUES (2)").unwrap();
        handle.commit().unwrap();
        drop(tx);
        assert_eq!(xs(&pool).await, vec![2]);
    }
}
