//! Short reads on SQLite in a file, run on the caller's own thread.
//!
//! A statement through sqlx is a hand-off to the connection's worker thread and back, plus a
//! check-out from the pool and a check-in. For the read every API request makes (the access
//! generation, `api::access`) and for one task (`Engine::task`), that machinery costs far
//! more than the read.
//!
//! [`Readers`] keeps a few read connections of its own (rusqlite), each with its prepared
//! statements. A read takes an idle one, runs its statements on the calling thread (nothing is
//! awaited meanwhile, so it is as short as the statements), and puts it back. Each statement
//! runs in autocommit mode and is reset after its last row, so each read sees what was
//! committed when it began, as a read through sqlx does. When every kept connection is in use
//! (more threads reading at one instant than [`KEPT`]), the read goes through sqlx instead
//! (the caller gives that path too).
//!
//! A read on the caller's thread must not wait there: a kept connection waits at most
//! [`BUSY_MS`] for a lock (SQLite's readers hardly ever wait in WAL mode: a process
//! recovering the WAL after a crash holds one), and a read that fails on it runs again through
//! sqlx, whose connections wait on their own worker threads.

use crate::error::EngineError;
use crate::store::sqlite::Database;
use crate::store::sqlite_direct::{self, Db};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Read connections kept: one per thread reading at one instant. The server's runtime has a
/// worker thread per core, and the API's reads are its callers.
pub(crate) const KEPT: usize = 4;

/// How long a kept connection waits for a lock before its read goes through the pool.
const BUSY_MS: u64 = 20;

/// The kept read connections of one engine.
pub(crate) struct Readers {
    database: Database,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Connections kept so far.
    kept: AtomicUsize,
}

/// `read` on a kept connection of `readers` (see [`Readers::read`]); without them (PostgreSQL,
/// SQLite in memory), `through_sqlx`.
pub(crate) async fn read_or<T, F>(
    readers: Option<&Readers>,
    read: impl FnOnce(&mut Db<'_>) -> Result<T, EngineError>,
    through_sqlx: impl FnOnce() -> F,
) -> Result<T, EngineError>
where
    F: std::future::Future<Output = Result<T, EngineError>>,
{
    match readers {
        Some(readers) => readers.read(read, through_sqlx).await,
        None => through_sqlx().await,
    }
}

impl Readers {
    pub(crate) fn new(database: Database) -> Readers {
        Readers {
            database,
            idle: Mutex::new(Vec::new()),
            kept: AtomicUsize::new(0),
        }
    }

    /// Runs `read` on a kept connection (see the module doc); should it fail there, or should
    /// every kept connection be in use, runs `through_sqlx` instead: the same read through
    /// sqlx, which waits on its worker threads. `read` runs the statements of one read; it
    /// must not write.
    pub(crate) async fn read<T, F>(
        &self,
        read: impl FnOnce(&mut Db<'_>) -> Result<T, EngineError>,
        through_sqlx: impl FnOnce() -> F,
    ) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<T, EngineError>>,
    {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None if self.kept.fetch_add(1, Ordering::SeqCst) < KEPT => {
                match self.database.connect(Duration::from_millis(BUSY_MS)) {
                    Ok(conn) => conn,
                    Err(_) => {
                        self.kept.fetch_sub(1, Ordering::SeqCst);
                        return through_sqlx().await;
                    }
                }
            }
            None => {
                self.kept.fetch_sub(1, Ordering::SeqCst);
                return through_sqlx().await;
            }
        };
        let out = read(&mut Db::new(&conn));
        if sqlite_direct::in_transaction(&conn) {
            // A read must leave no transaction open (it would pin an old snapshot): close the
            // connection (which rolls it back) and keep another next time.
            tracing::warn!("a read left a transaction open; its connection was closed");
            drop(conn);
            self.kept.fetch_sub(1, Ordering::SeqCst);
        } else {
            self.lock().push(conn);
        }
        match out {
            Ok(value) => Ok(value),
            // Waited past `BUSY_MS`, or failed for good (then it fails again, with the error
            // sqlx's path gives).
            Err(_) => through_sqlx().await,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<rusqlite::Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kept connections, for tests.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.kept.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite;
    use sqlx::SqlitePool;
    use std::sync::atomic::AtomicBool;

    /// A database file, removed when dropped.
    struct File(std::path::PathBuf);

    impl Drop for File {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    async fn pool() -> (File, SqlitePool, Readers) {
        let path = std::env::temp_dir().join(format!("yimen-readers-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let (pool, database) = sqlite::open_database(&url).await.unwrap();
        (File(path), pool, Readers::new(database))
    }

    fn generation(db: &mut Db<'_>) -> Result<i64, EngineError> {
        sqlite_direct::access_generation(db)
    }

    /// The same read through sqlx, as callers give it; `used` says it ran.
    async fn through_sqlx(pool: &SqlitePool, used: &AtomicBool) -> Result<i64, EngineError> {
        used.store(true, Ordering::SeqCst);
        Ok(
            sqlx::query_scalar("SELECT generation FROM access_generation WHERE id = 1")
                .fetch_one(pool)
                .await?,
        )
    }

    #[tokio::test]
    async fn a_read_sees_what_was_committed_before_it_and_reuses_its_connection() {
        let (_file, pool, readers) = pool().await;
        let sqlx_used = AtomicBool::new(false);
        let read = || readers.read(generation, || through_sqlx(&pool, &sqlx_used));
        assert_eq!(read().await.unwrap(), 0);
        sqlx::query("UPDATE access_generation SET generation = 7 WHERE id = 1")
            .execute(&pool)
            .await
            .unwrap();
        // The same kept connection, with its statement prepared: no old snapshot.
        assert_eq!(read().await.unwrap(), 7);
        assert_eq!(readers.kept(), 1);
        assert!(
            !sqlx_used.load(Ordering::SeqCst),
            "read on the kept connection"
        );
    }

    #[tokio::test]
    async fn a_read_that_fails_on_a_kept_connection_runs_through_sqlx_and_the_connection_stays() {
        let (_file, pool, readers) = pool().await;
        let sqlx_used = AtomicBool::new(false);
        let value = readers
            .read(
                // As a kept connection that waited past `BUSY_MS` reports it.
                |_| Err(EngineError::Internal("database is locked".into())),
                || through_sqlx(&pool, &sqlx_used),
            )
            .await
            .unwrap();
        assert_eq!(value, 0);
        assert!(sqlx_used.load(Ordering::SeqCst));
        assert_eq!(readers.kept(), 1, "the kept connection stays kept");
        let wrong = readers
            .read(
                |db| sqlite_direct::query_i64(db, "SELECT nothing FROM nowhere", "v"),
                || async { Err(EngineError::Internal("no such table".into())) },
            )
            .await;
        assert!(wrong.is_err(), "a read that fails both ways fails");
        let unused = AtomicBool::new(false);
        let again = readers.read(generation, || through_sqlx(&pool, &unused));
        assert_eq!(again.await.unwrap(), 0);
        assert!(
            !unused.load(Ordering::SeqCst),
            "the kept connection still reads"
        );
    }

    #[tokio::test]
    async fn a_read_that_leaves_a_transaction_open_closes_its_connection() {
        let (_file, pool, readers) = pool().await;
        let sqlx_used = AtomicBool::new(false);
        readers
            .read(
                |db| sqlite_direct::run_kept(db, "BEGIN"),
                || async { Ok(()) },
            )
            .await
            .unwrap();
        assert_eq!(readers.kept(), 0, "not kept in a transaction");
        sqlx::query("UPDATE access_generation SET generation = 3 WHERE id = 1")
            .execute(&pool)
            .await
            .unwrap();
        let read = readers.read(generation, || through_sqlx(&pool, &sqlx_used));
        assert_eq!(read.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_kept_connection_waits_for_a_lock_briefly_the_pool_long() {
        let (_file, pool, readers) = pool().await;
        let busy = |db: &mut Db<'_>| sqlite_direct::query_i64(db, "PRAGMA busy_timeout", "timeout");
        let kept = readers.read(busy, || async { Ok(-1) }).await.unwrap();
        assert_eq!(kept, i64::try_from(BUSY_MS).unwrap());
        let pooled: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(pooled, 30_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reads_keep_at_most_the_limit_and_all_answer() {
        let (_file, pool, readers) = pool().await;
        let readers = std::sync::Arc::new(readers);
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (readers, pool) = (readers.clone(), pool.clone());
            reads.spawn(async move {
                let used = AtomicBool::new(false);
                readers
                    .read(
                        |db| {
                            // Long enough that reads overlap.
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            generation(db)
                        },
                        || through_sqlx(&pool, &used),
                    )
                    .await
            });
        }
        while let Some(done) = reads.join_next().await {
            assert_eq!(done.unwrap().unwrap(), 0);
        }
        assert!(readers.kept() <= KEPT, "kept {}", readers.kept());
        assert!(
            readers.kept() >= 2,
            "reads overlapped, yet one connection was kept"
        );
    }
}
