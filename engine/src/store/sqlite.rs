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

// Also for `sqlite_direct` and `sqlite_write`, which read these rows themselves (rusqlite).
pub(crate) use {
    by_name, deployment_fields, instance_fields, outbox_fields, task_fields, timer_fields,
};

/// How long a file database's connections stay open idle, and at most.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// How long a pooled connection or the writer waits for a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The versions the migrations before the schema baseline applied here, the last one at the
/// baseline's version (`store::adopt_baseline`).
pub(crate) const BEFORE_BASELINE: &[i64] = &[
    1, 100, 110, 200, 300, 400, 500, 600, 800, 810, 820, 870, 885, 940, 950,
];

/// Opens (creating if missing) and migrates the database at `url` (`sqlite:path`).
pub async fn open(url: &str) -> Result<sqlx::SqlitePool, EngineError> {
    Ok(open_database(url).await?.0)
}

/// The database a URL names, for the connections yimen opens itself with rusqlite (the
/// writer, `sqlite_tx`; the kept readers, `sqlite_readers`) next to sqlx's pool.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    /// A file path, or the name of an in-memory database of SQLite's `memdb` VFS.
    path: std::path::PathBuf,
    in_memory: bool,
}

/// [`open`], and the database it opened.
///
/// An in-memory database (`sqlite::memory:`) is one of SQLite's `memdb` VFS under a name of
/// its own ("/yimen-<uuid>"): every connection of the process that opens that name shares it,
/// sqlx's and rusqlite's alike (a plain `:memory:` database exists once per connection). It
/// keeps no WAL (SQLite's rollback journal instead) and ends with its last connection.
pub(crate) async fn open_database(url: &str) -> Result<(sqlx::SqlitePool, Database), EngineError> {
    crate::store::sqlite_alloc::configure_sqlite_library();
    let in_memory = in_memory(url);
    let opts = if in_memory {
        let name = format!("/yimen-{}", uuid::Uuid::new_v4());
        SqliteConnectOptions::new().filename(name).vfs("memdb")
    } else {
        SqliteConnectOptions::from_str(url)
            .map_err(|e| EngineError::invalid("database", format!("{url}: {e}")))?
    };
    let opts = opts
        .create_if_missing(true)
        .journal_mode(if in_memory {
            SqliteJournalMode::Memory
        } else {
            SqliteJournalMode::Wal
        })
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(false)
        .statement_cache_capacity(crate::store::sqlite_direct::STATEMENT_CACHE);
    let database = Database {
        path: opts.get_filename().to_owned(),
        in_memory,
    };
    let pool = SqlitePoolOptions::new()
        // The in-memory database lives while a connection to it does: keep one.
        .min_connections(if in_memory { 1 } else { 0 })
        .max_connections(8)
        .idle_timeout(if in_memory { None } else { Some(IDLE_TIMEOUT) })
        .max_lifetime(if in_memory { None } else { Some(MAX_LIFETIME) })
        .connect_with(opts)
        .await?;
    let migrator = sqlx::migrate!("../migrations/sqlite");
    crate::store::adopt_baseline(&pool, &migrator, BEFORE_BASELINE).await?;
    crate::store::migrate(&migrator, migrator.run(&pool).await)?;
    Ok((pool, database))
}

impl Database {
    /// Whether the database is a file (with a WAL).
    pub(crate) fn is_file(&self) -> bool {
        !self.in_memory
    }

    /// A connection of yimen's own (rusqlite), with the settings of sqlx's (`open_database`)
    /// and a lock timeout of `busy`. The database exists and is migrated.
    pub(crate) fn connect(&self, busy: Duration) -> Result<rusqlite::Connection, EngineError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_PRIVATE_CACHE;
        let conn = if self.in_memory {
            rusqlite::Connection::open_with_flags_and_vfs(&self.path, flags, c"memdb")?
        } else {
            rusqlite::Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_URI)?
        };
        conn.busy_timeout(busy)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.set_prepared_statement_cache_capacity(crate::store::sqlite_direct::STATEMENT_CACHE);
        Ok(conn)
    }

    /// The connection write transactions run on (`sqlite_tx`): [`Database::connect`], and it
    /// checkpoints the WAL by itself only past [`WRITER_AUTOCHECKPOINT`].
    pub(crate) fn connect_writer(&self) -> Result<rusqlite::Connection, EngineError> {
        let conn = self.connect(BUSY_TIMEOUT)?;
        if !self.in_memory {
            conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        }
        Ok(conn)
    }
}

/// An in-memory database (see [`open_database`]).
pub fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// WAL pages after which the writer checkpoints by itself, inside its `COMMIT`: a backstop.
/// The committer's writes are checkpointed from another connection, on another thread, long
/// before (see `store::checkpoint`); SQLite's default would be 1,000 pages.
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
    #[tokio::test]
    async fn the_writer_checkpoints_by_itself_only_past_its_backstop() {
        let path = std::env::temp_dir().join(format!("yimen-writer-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", path.display());
        let (pool, database) = super::open_database(&url).await.unwrap();
        let writer = database.connect_writer().unwrap();
        let pages: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, i64::from(super::WRITER_AUTOCHECKPOINT));
        let mode: String = writer
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let (readers,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(readers, 1000, "SQLite's default elsewhere");
        drop(writer);
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn an_in_memory_database_is_one_for_sqlx_and_rusqlite_and_one_per_open() {
        let (pool, database) = super::open_database("sqlite::memory:").await.unwrap();
        let writer = database.connect_writer().unwrap();
        writer
            .execute(
                "UPDATE access_generation SET generation = 5 WHERE id = 1",
                [],
            )
            .unwrap();
        let (seen,): (i64,) = sqlx::query_as("SELECT generation FROM access_generation")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(seen, 5, "sqlx reads what rusqlite wrote");
        let other = super::open("sqlite::memory:").await.unwrap();
        let (fresh,): (i64,) = sqlx::query_as("SELECT generation FROM access_generation")
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!(fresh, 0, "another open, another database");
    }

    /// `.cargo/config.toml` builds SQLite without it: with it, every connection's page cache
    /// sits behind one process-wide mutex, and the committer waits on the readers. sqlx and
    /// rusqlite link the one bundled library.
    #[tokio::test]
    async fn connections_do_not_share_one_page_cache() {
        let (pool, database) = super::open_database("sqlite::memory:").await.unwrap();
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
        let writer = database.connect_writer().unwrap();
        let mut st = writer.prepare("PRAGMA compile_options").unwrap();
        let direct: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let sqlx_options: Vec<String> = options.into_iter().map(|(o,)| o).collect();
        assert_eq!(direct, sqlx_options, "one SQLite library");
        let (version,): (String,) = sqlx::query_as("SELECT sqlite_version()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(version, rusqlite::version());
    }
}
