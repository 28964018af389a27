//! The SQLite store: one file, WAL, `synchronous=NORMAL`, created and migrated on first open.
//! Writers serialise on `BEGIN IMMEDIATE`; row locks are not needed.

use crate::error::EngineError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

type DB = sqlx::Sqlite;
type DbRow = sqlx::sqlite::SqliteRow;

macro_rules! for_update {
    () => {
        ""
    };
}
macro_rules! skip_locked {
    () => {
        ""
    };
}

/// `column`, then `is_in!(…)`: the column is one of a JSON array's strings, or one of a
/// subquery's values (see the PostgreSQL one for why it is not written `IN` there).
macro_rules! is_in {
    (json $n:literal) => {
        concat!("IN (SELECT value FROM json_each(", $n, "))")
    };
    (query $($q:tt)+) => {
        concat!("IN (", $($q)+, ")")
    };
}

/// Multi-row statements use `?` (SQLite) or `$n` (PostgreSQL) placeholders.
const POSITIONAL_PARAMS: bool = true;

/// `process_key IN (…) AND business_key IN (…)`: SQLite's planner walks the unique
/// (process_key, business_key) index for both lists.
macro_rules! by_business_keys {
    () => {
        concat!(
            "SELECT * FROM instances WHERE process_key ",
            is_in!(json "$1"),
            " AND business_key ",
            is_in!(json "$2")
        )
    };
}

/// The given tasks and their instances' live tasks, through `tasks_instance`.
macro_rules! lock_tasks_with_siblings {
    () => {
        concat!(
            "SELECT * FROM tasks WHERE instance_id ",
            is_in!(query "SELECT instance_id FROM tasks WHERE id ", is_in!(json "$1")),
            " AND (state IN ('open', 'claimed', 'failed') OR id ",
            is_in!(json "$1"),
            ") ORDER BY id",
            for_update!()
        )
    };
}

include!("common.rs");

// Also for `sqlite_direct`, which reads these rows itself.
pub(crate) use {by_name, instance_fields, task_fields, timer_fields};

// The multi-row writers of the unit of work (`staged.rs`) outside the committer, whose writes
// go through `sqlite_direct`: `VALUES` lists of a few sizes (see `chunks`). PostgreSQL's take
// one array per column instead (`postgres.rs`).

/// Splits rows into chunks of 64, 32, .., 1 rows: few distinct statement texts, so that each
/// stays prepared in the connection's statement cache (parsing a multi-row statement costs more
/// than running it), and well under the bound-parameter limit.
fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = if rows.len() >= 64 {
            64
        } else {
            1 << (usize::BITS - 1 - rows.len().leading_zeros())
        };
        let (head, tail) = rows.split_at(size);
        rows = tail;
        Some(head)
    })
}

/// Inserts new timers (`created_at` per row).
pub async fn insert_timers(tx: &mut Tx, rows: &[(&TimerRow, i64)]) -> R<()> {
    for chunk in chunks(rows) {
        let sql = values_sql(crate::store::TIMERS_INTO, 9, chunk.len(), "");
        // The text holds only placeholders; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (t, created_at) in chunk {
            q = q
                .bind(&t.id)
                .bind(&t.instance_id)
                .bind(&t.kind)
                .bind(&t.node)
                .bind(&t.task_id)
                .bind(t.due_at)
                .bind(&t.payload)
                .bind(&t.state)
                .bind(*created_at);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Inserts several entries with one statement (one round trip per event, not per entry), in
/// packs (`store::history`).
pub async fn insert_history_many(tx: &mut Tx, rows: &[HistoryRow]) -> R<()> {
    let packs = crate::store::history::pack(rows);
    for chunk in chunks(&packs) {
        let sql = values_sql(crate::store::HISTORY_INTO, 4, chunk.len(), "");
        // The text holds only placeholders; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            q = q
                .bind(p.instance_id)
                .bind(p.seq)
                .bind(p.first_at)
                .bind(&p.entries);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Process-wide SQLite settings, made once before its first connection (too late when SQLite
/// was initialised already; then its defaults stay, which is correct, only slower):
/// - no memory statistics: with them, every allocation inside SQLite takes one global mutex
///   (about 6% of the CPU of `yimen bench`, perf);
/// - SQLite allocates with mimalloc instead of the C library's malloc (another 10%: the
///   statements of a batch allocate and free many small buffers).
fn configure_sqlite_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use libsqlite3_sys as ffi;
        // SAFETY: sqlite3_config may be called before sqlite3_initialize (afterwards it returns
        // SQLITE_MISUSE without effect). MEMSTATUS takes one int; MALLOC takes a pointer to a
        // sqlite3_mem_methods, which SQLite copies; the functions it names are thread-safe.
        let methods = memory::methods();
        let codes = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int),
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_MALLOC,
                    &methods as *const ffi::sqlite3_mem_methods,
                ),
            ]
        };
        if codes.iter().any(|&c| c != ffi::SQLITE_OK) {
            tracing::debug!(?codes, "SQLite was initialised already; its defaults stay");
        }
    });
}

/// SQLite's allocator on top of mimalloc (see [`configure_sqlite_library`]).
mod memory {
    use libmimalloc_sys as mi;
    use libsqlite3_sys::sqlite3_mem_methods;
    use std::ffi::{c_int, c_void};

    pub(super) fn methods() -> sqlite3_mem_methods {
        sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        }
    }

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: mimalloc's malloc accepts any size (0 gives a unique pointer).
        unsafe { mi::mi_malloc(bytes(n)) }
    }

    unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc`/`realloc` above returned (or null).
        unsafe { mi::mi_free(p) }
    }

    unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as for `free`; mimalloc keeps the contents up to the smaller size.
        unsafe { mi::mi_realloc(p, bytes(n)) }
    }

    unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: `p` came from `malloc`/`realloc` above.
        let n = unsafe { mi::mi_usable_size(p) };
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }

    unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure function of the size.
        let good = unsafe { mi::mi_good_size(bytes(n)) };
        c_int::try_from(good).unwrap_or(n)
    }

    unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        libsqlite3_sys::SQLITE_OK
    }

    unsafe extern "C" fn shutdown(_: *mut c_void) {}
}

/// How long a file database's connections stay open idle, and at most.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// Opens (creating if missing) and migrates the database at `url` (`sqlite:path`).
pub async fn open(url: &str) -> Result<sqlx::SqlitePool, EngineError> {
    configure_sqlite_library();
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| EngineError::invalid("database", format!("{url}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(false)
        // Every multi-row statement comes in a few sizes (see `chunks`): keep them all prepared.
        .statement_cache_capacity(512);
    let in_memory = in_memory(url);
    let pool = SqlitePoolOptions::new()
        // An in-memory database exists once per connection: keep exactly one.
        .max_connections(if in_memory { 1 } else { 8 })
        .min_connections(if in_memory { 1 } else { 0 })
        .idle_timeout(if in_memory { None } else { Some(IDLE_TIMEOUT) })
        .max_lifetime(if in_memory { None } else { Some(MAX_LIFETIME) })
        .connect_with(opts)
        .await?;
    let migrator = sqlx::migrate!("../migrations/sqlite");
    crate::store::migrate(&migrator, migrator.run(&pool).await)?;
    Ok(pool)
}

/// The pool of the one connection write transactions run on (`Engine::begin_write`): the
/// pool itself for an in-memory database (which exists once per connection), else a second
/// pool of one connection with the same options, opened when first used.
pub fn writer(pool: &sqlx::SqlitePool, url: &str) -> sqlx::SqlitePool {
    if in_memory(url) {
        return pool.clone();
    }
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(Some(IDLE_TIMEOUT))
        .max_lifetime(Some(MAX_LIFETIME))
        // Writers queue on the engine's write gate, not here: one waits at a time.
        .acquire_timeout(Duration::from_secs(600))
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT.to_string()),
        )
}

/// An in-memory database: one per connection, and no WAL.
pub fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// WAL pages after which the writer checkpoints by itself, inside its `COMMIT`: a backstop.
/// The committer's writes are checkpointed from another connection, on another thread, long
/// before (see `commit::checkpointer`); SQLite's default would be 1,000 pages.
pub(crate) const WRITER_AUTOCHECKPOINT: u32 = 4000;

/// Copies what it can of the WAL into the database without waiting for anyone (`PASSIVE`):
/// the WAL's frames, and how many of them are now in the database.
pub(crate) async fn checkpoint(pool: &sqlx::SqlitePool) -> Result<(i64, i64), EngineError> {
    let (_busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok((log, done))
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[tokio::test]
    async fn the_writer_checkpoints_by_itself_only_past_its_backstop() {
        let path = std::env::temp_dir().join(format!("yimen-writer-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let pool = super::open(&url).await.unwrap();
        let writer = super::writer(&pool, &url);
        let (pages,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
            .fetch_one(&writer)
            .await
            .unwrap();
        assert_eq!(pages, i64::from(super::WRITER_AUTOCHECKPOINT));
        let (readers,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(readers, 1000, "SQLite's default elsewhere");
        writer.close().await;
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// `.cargo/config.toml` builds SQLite without it: with it, every connection's page cache
    /// sits behind one process-wide mutex, and the committer waits on the readers.
    #[tokio::test]
    async fn connections_do_not_share_one_page_cache() {
        let pool = super::open("sqlite::memory:").await.unwrap();
        let options: Vec<(String,)> = sqlx::query_as("PRAGMA compile_options")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(!options.is_empty());
        assert!(
            !options.iter().any(|(o,)| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
        // Nor a bulk allocation of pages up front for every cache (temporary B-trees too).
        assert!(
            options.iter().any(|(o,)| o == "DEFAULT_PCACHE_INITSZ=0"),
            "{options:?}"
        );
    }

    #[test]
    fn multi_row_chunks_come_in_few_sizes_and_keep_every_row() {
        for n in 0..300usize {
            let rows: Vec<usize> = (0..n).collect();
            let parts: Vec<&[usize]> = chunks(&rows).collect();
            assert_eq!(parts.concat(), rows, "every row once, in order ({n})");
            assert!(
                parts
                    .iter()
                    .all(|p| p.len().is_power_of_two() && p.len() <= 64),
                "{n}: {:?}",
                parts.iter().map(|p| p.len()).collect::<Vec<_>>()
            );
        }
    }
}
