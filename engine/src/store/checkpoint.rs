//! SQLite in a file: the WAL checkpointer. After each batch the committer rings it
//! ([`super::Store::after_batch`]); at most every [`CHECKPOINT_EVERY`] while batches commit it
//! copies the committer's writes from the WAL into the database, on a read connection, so on
//! another thread than the committer's.
//!
//! Left to SQLite, the writer would checkpoint inside the `COMMIT` that takes the WAL past
//! 1,000 pages, copying and syncing while every caller of the batch waits (its cost is in
//! docs/performance.md). A `PASSIVE` checkpoint runs beside the writer: it copies what no reader
//! still needs and never blocks it; once everything is copied, the writer's next transaction
//! starts the WAL file over. The writer keeps a checkpoint of its own past
//! [`WRITER_AUTOCHECKPOINT`](super::sqlite::WRITER_AUTOCHECKPOINT) pages as a backstop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// How long the checkpointer lets commits gather before it checkpoints them.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// The checkpointer's bell, and what it did.
#[derive(Default)]
pub(crate) struct Checkpoints {
    wanted: tokio::sync::Notify,
    stopped: AtomicBool,
    runs: AtomicU64,
    last_frames: AtomicI64,
}

impl Checkpoints {
    /// Asks for a checkpoint soon (asks made meanwhile count as one).
    pub(crate) fn wake(&self) {
        self.wanted.notify_one();
    }

    /// Ends the checkpointer (its store is dropped).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wanted.notify_one();
    }

    /// Checkpoints run, and the WAL frames the last one found in the database.
    pub(crate) fn runs(&self) -> (u64, i64) {
        (
            self.runs.load(Ordering::Relaxed),
            self.last_frames.load(Ordering::Relaxed),
        )
    }
}

/// Checkpoints when rung, until [`Checkpoints::stop`].
pub(crate) async fn checkpointer(pool: sqlx::SqlitePool, checkpoints: Arc<Checkpoints>) {
    loop {
        checkpoints.wanted.notified().await;
        if checkpoints.stopped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if checkpoints.stopped.load(Ordering::SeqCst) {
            return;
        }
        match super::sqlite::checkpoint(&pool).await {
            Ok((_, done)) => {
                checkpoints.runs.fetch_add(1, Ordering::Relaxed);
                checkpoints.last_frames.store(done, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "a WAL checkpoint failed; the writer checkpoints by itself meanwhile"
            ),
        }
    }
}
