//! The schema baseline (`migrations/*/0950_baseline.sql`) against databases built by the
//! migrations it replaced (kept as fixtures in `tests/fixtures/migrations-before-baseline/`): a
//! database those built is adopted as it is and keeps its data, the baseline makes the very
//! schema they made, and one they left short of the baseline is refused, unchanged. On SQLite
//! and on PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use support::*;
use yimen_engine::auth::hash_token;
use yimen_engine::clock::SystemClock;
use yimen_engine::store::tokens::{TokenLookup, TokenStore};
use yimen_engine::{Engine, EngineError, WeekdaysOnly};

on_both_databases!(
    an_old_database_is_adopted_with_its_data,
    the_baseline_makes_the_schema_the_old_migrations_made,
    a_database_short_of_the_baseline_is_refused_unchanged,
);

/// The test's database reached with sqlx directly, as an older yimen would, beside the engines
/// opened on it with [`Raw::engine`].
struct Raw {
    db: Db,
    pool: Pool,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// `$body` with `$pool` bound to the pool of either database.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

impl Fixture for Raw {
    async fn open(db: &Db) -> Raw {
        Raw::on(db).await
    }
}

impl Raw {
    /// `db`, empty: the SQLite file made, the PostgreSQL schema created.
    async fn on(db: &Db) -> Raw {
        let options = db.options();
        let pool = match &options.pg_schema {
            None => {
                let connect = sqlx::sqlite::SqliteConnectOptions::from_str(&options.url)
                    .unwrap()
                    .create_if_missing(true);
                Pool::Sqlite(sqlx::SqlitePool::connect_with(connect).await.unwrap())
            }
            Some(schema) => {
                let admin = sqlx::PgPool::connect(&options.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let connect: sqlx::postgres::PgConnectOptions = options.url.parse().unwrap();
                let connect = connect.options([("search_path", schema.as_str())]);
                Pool::Postgres(sqlx::PgPool::connect_with(connect).await.unwrap())
            }
        };
        Raw {
            db: db.clone(),
            pool,
        }
    }

    /// Applies the migrations before the baseline, up to `version` (all: `i64::MAX`), as a
    /// yimen from before it did.
    async fn migrate_before_baseline(&self, version: i64) {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/migrations-before-baseline")
            .join(self.db.name());
        let old = sqlx::migrate::Migrator::new(folder.as_path())
            .await
            .unwrap();
        on_pool!(self, pool => old.run_to(version, pool).await.unwrap());
    }

    async fn exec(&self, sql: &str) {
        on_pool!(self, pool => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(pool)
                .await
                .unwrap();
        });
    }

    /// Each row of `sql` as one text (the query gives one text column).
    async fn lines(&self, sql: &str) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap())
    }

    /// Opens an engine on the database (which may refuse it).
    async fn engine(&self) -> Result<Engine, EngineError> {
        Engine::open_with(
            self.db.options(),
            Arc::new(SystemClock),
            Arc::new(WeekdaysOnly),
        )
        .await
    }

    /// The schema as the database describes it: every table's columns (name, type, null,
    /// default, key), every index (columns, unique, partial, its condition), the storage
    /// settings. The migrator's own table is left out.
    async fn schema(&self) -> Vec<String> {
        let queries: &[&str] = match self.pool {
            Pool::Sqlite(_) => &[
                "SELECT m.name || ' ' || p.cid || ' ' || p.name || ' ' || p.type || ' ' \
                 || p.\"notnull\" || ' ' || quote(p.dflt_value) || ' ' || p.pk \
                 FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name <> '_sqlx_migrations' ORDER BY m.name, p.cid",
                "SELECT m.name || ' ' || l.name || ' ' || l.\"unique\" || ' ' || l.origin || ' ' \
                 || l.partial FROM sqlite_master m, pragma_index_list(m.name) l \
                 WHERE m.type = 'table' AND m.name <> '_sqlx_migrations' ORDER BY m.name, l.name",
                "SELECT m.name || ' ' || x.seqno || ' ' || quote(x.name) || ' ' || x.\"desc\" \
                 || ' ' || x.\"key\" FROM sqlite_master m, pragma_index_xinfo(m.name) x \
                 WHERE m.type = 'index' AND m.tbl_name <> '_sqlx_migrations' \
                 ORDER BY m.name, x.seqno",
                "SELECT name || ' ' || tbl_name || ' ' || sql FROM sqlite_master \
                 WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
            ],
            Pool::Postgres(_) => &[
                "SELECT format('%s %s %s %s %s %s', table_name, ordinal_position, column_name, \
                 data_type, is_nullable, column_default) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
                 ORDER BY table_name, ordinal_position",
                "SELECT format('%s %s %s', table_name, constraint_name, constraint_type) \
                 FROM information_schema.table_constraints \
                 WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
                 AND constraint_type <> 'CHECK' ORDER BY table_name, constraint_name",
                "SELECT format('%s %s', indexname, replace(indexdef, current_schema() || '.', '')) \
                 FROM pg_indexes WHERE schemaname = current_schema() \
                 AND tablename <> '_sqlx_migrations' ORDER BY indexname",
                "SELECT format('%s %s', c.relname, c.reloptions) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') \
                 ORDER BY c.relname",
            ],
        };
        let mut schema = Vec::new();
        for sql in queries {
            // Whitespace as written does not count (SQLite keeps each index's text).
            let lines = self.lines(sql).await;
            schema.extend(
                lines
                    .iter()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
            );
        }
        assert!(schema.len() > 50, "{schema:?}");
        schema
    }

    /// Every row of the engine's tables, each as one text.
    async fn rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for table in TABLES {
            let columns = self
                .lines(&format!(
                    "SELECT name FROM ({}) c WHERE c.t = '{table}' ORDER BY c.n",
                    match self.pool {
                        Pool::Sqlite(_) =>
                            "SELECT m.name AS t, p.name, p.cid AS n \
                            FROM sqlite_master m, pragma_table_info(m.name) p \
                            WHERE m.type = 'table'",
                        Pool::Postgres(_) =>
                            "SELECT table_name::text AS t, \
                            column_name::text AS name, ordinal_position AS n \
                            FROM information_schema.columns \
                            WHERE table_schema = current_schema()",
                    }
                ))
                .await;
            assert!(!columns.is_empty(), "{table} has columns");
            let text: Vec<String> = columns
                .iter()
                .map(|c| format!("coalesce(CAST(\"{c}\" AS TEXT), 'NULL')"))
                .collect();
            let sql = format!(
                "SELECT '{table}: ' || {} FROM {table} ORDER BY 1",
                text.join(" || ' | ' || ")
            );
            rows.extend(self.lines(&sql).await);
        }
        rows
    }

    /// The migrator's rows: version, description, success, checksum (hex).
    async fn migrations(&self) -> Vec<String> {
        self.lines(match self.pool {
            Pool::Sqlite(_) => {
                "SELECT version || ' ' || description || ' ' || success || ' ' \
                || lower(hex(checksum)) FROM _sqlx_migrations ORDER BY version"
            }
            Pool::Postgres(_) => {
                "SELECT version || ' ' || description || ' ' || success || ' ' \
                || encode(checksum, 'hex') FROM _sqlx_migrations ORDER BY version"
            }
        })
        .await
    }

    /// The migrations this yimen embeds (the baseline and any after it).
    fn embedded(&self) -> sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Pool::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        }
    }
}

/// The engine's tables.
const TABLES: [&str; 12] = [
    "deployments",
    "instances",
    "tasks",
    "timers",
    "history",
    "outbox",
    "documents",
    "api_tokens",
    "access_refusals",
    "access_generation",
    "inbox",
    "report_runs",
];

const SECRET: &str = "ym_made_before_the_baseline";

/// Rows as a yimen from before the baseline wrote them: the test process deployed, a token
/// limited to two organisation units, a case waiting in a task with a pending timer, its
/// history in one pack of two entries, a notice to the person the case concerns.
fn old_rows() -> Vec<String> {
    let model = serde_json::to_string(&case_model())
        .unwrap()
        .replace('\'', "''");
    vec![
        format!(
            "INSERT INTO deployments (key, version, hash, title, source, model, config, files, \
             created_at) VALUES ('case', 1, 'h', 'Test case', 'process case', '{model}', '{{}}', \
             '{{}}', 1000)"
        ),
        format!(
            "INSERT INTO api_tokens (id, name, hash, roles, org_units, created_at) \
             VALUES ('t1', 'east', '{}', '[\"window\"]', '[\"unit-1\",\"unit-2\"]', 1000)",
            hash_token(SECRET)
        ),
        "INSERT INTO instances (id, process_key, version, business_key, status, vars, state, \
         created_at, updated_at, history_count, history_head) VALUES ('i1', 'case', 1, 'B-1', \
         'running', '{\"name\":\"张三丰\",\"street\":\"unit-1\",\"amount\":5}', '{}', 1000, 2000, \
         2, 'hash-2')"
            .into(),
        "INSERT INTO tasks (id, instance_id, node, queue, org_unit, state, available_at, \
         created_at) VALUES ('k1', 'i1', 'intake', 'window', 'unit-1', 'open', 1000, 1000)"
            .into(),
        "INSERT INTO timers (id, instance_id, kind, node, task_id, due_at, payload, state, \
         created_at) VALUES ('m1', 'i1', 'escalation', 'intake', 'k1', 4102444800000, '{}', \
         'pending', 1000)"
            .into(),
        "INSERT INTO history (instance_id, seq, first_at, entries) VALUES ('i1', 1, 1000, \
         '[{\"at\":1000,\"actor\":\"system\",\"node\":null,\"kind\":\"started\",\
         \"text\":\"started\",\"data\":\"{}\",\"prev_hash\":\"\",\"hash\":\"hash-1\"},\
         {\"at\":2000,\"actor\":\"system\",\"node\":\"intake\",\"kind\":\"task\",\
         \"text\":\"task opened\",\"data\":\"{}\",\"prev_hash\":\"hash-1\",\
         \"hash\":\"hash-2\"}]')"
            .into(),
        "INSERT INTO inbox (id, recipient, instance_id, message, state, created_at) \
         VALUES ('n1', 'subject', 'i1', '已受理', 'open', 1000)"
            .into(),
    ]
}

/// A database built by the migrations before the baseline, with data, opens: it is adopted
/// (its migrator rows become the baseline's), every row stays as it was and the engine reads
/// the token, the history and the pending timer. It opens a second time too.
async fn an_old_database_is_adopted_with_its_data(db: Raw) {
    db.migrate_before_baseline(i64::MAX).await;
    for sql in old_rows() {
        db.exec(&sql).await;
    }
    let before = db.rows().await;
    assert_eq!(before.len(), old_rows().len() + 1, "{before:?}");
    assert!(db.migrations().await.len() > 10);

    let engine = db.engine().await.expect("an old database opens");
    // The baseline's row, then the migrations after it, as on a new database.
    let embedded = db.embedded();
    let expected: Vec<String> = embedded
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m.version,
                m.description,
                if db.db.is_postgres() { "true" } else { "1" },
                hex::encode(&m.checksum)
            )
        })
        .collect();
    assert!(expected[0].starts_with("950 "), "{expected:?}");
    assert_eq!(db.migrations().await, expected);
    // Unchanged, but for the columns migrations after the baseline add, empty: the token's
    // expiry (0970, none: it keeps working as it did), the inbox's `acked_by_id` (0990) and
    // the tasks' principal keys (1010: compared by name, as before).
    let gained_a_column = |r: &str| r.starts_with("inbox: ") || r.starts_with("api_tokens: ");
    let kept: Vec<String> = before
        .iter()
        .map(|r| match (gained_a_column(r), r.starts_with("tasks: ")) {
            (true, _) => format!("{r} | NULL"),
            (_, true) => format!("{r} | NULL | NULL | NULL"),
            _ => r.clone(),
        })
        .collect();
    assert_eq!(db.rows().await, kept);

    match TokenStore::of(engine.store())
        .find(&hash_token(SECRET))
        .await
        .unwrap()
    {
        Some(TokenLookup {
            principal,
            validity,
        }) => {
            assert_eq!(principal.org_units, ["unit-1", "unit-2"]);
            // Made before tokens expired: it does not.
            assert_eq!(validity.lapsed(i64::MAX), None, "{validity:?}");
        }
        other => panic!("the old token is active: {other:?}"),
    }
    let history = engine.history("i1").await.unwrap();
    let read: Vec<(i64, &str, &str)> = history
        .iter()
        .map(|h| (h.seq, h.text.as_str(), h.hash.as_str()))
        .collect();
    assert_eq!(
        read,
        [(1, "started", "hash-1"), (2, "task opened", "hash-2")]
    );
    let due = engine
        .next_timer_due()
        .await
        .unwrap()
        .expect("the timer is pending");
    assert_eq!(due.timestamp_millis(), 4102444800000);
    drop(engine);

    let again = db.engine().await.expect("an adopted database opens again");
    assert_eq!(db.rows().await, kept);
    assert_eq!(again.history("i1").await.unwrap().len(), 2);
}

/// A new database (the baseline) and one the migrations before it built have the same tables,
/// columns, indexes and storage settings: the baseline is what those made; opened, both run
/// the migrations after the baseline alike.
async fn the_baseline_makes_the_schema_the_old_migrations_made(db: Raw) {
    // The baseline alone first: what the old migrations must have made.
    on_pool!(db, pool => db.embedded().run_to(950, pool).await.unwrap());
    let baseline = db.schema().await;
    assert_eq!(
        db.migrations().await.len(),
        1,
        "the baseline is one migration"
    );

    let other = if db.db.is_postgres() {
        Db::postgres("baseline_same_schema_old").expect("the server the first one is on")
    } else {
        Db::sqlite("baseline_same_schema_old")
    };
    let old = Raw::on(&other).await;
    old.migrate_before_baseline(i64::MAX).await;
    same(
        &old.schema().await,
        &baseline,
        "as the old migrations left it",
    );
    // Opened, each runs the migrations after the baseline: the old one once adopted.
    db.engine().await.expect("a new database opens");
    let fresh = db.schema().await;
    old.engine().await.expect("the old database opens");
    same(&old.schema().await, &fresh, "adopted");
    assert_eq!(old.migrations().await, db.migrations().await);
    other.finish().await;
}

/// `found` is `expected`; if not, the lines that differ.
fn same(found: &[String], expected: &[String], what: &str) {
    let missing: Vec<&String> = expected.iter().filter(|l| !found.contains(l)).collect();
    let extra: Vec<&String> = found.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        found == expected,
        "{what}: missing {missing:#?}, not expected {extra:#?}"
    );
}

/// A database an older yimen left before the baseline (here at 0885) is refused with what to
/// do, and nothing in it changes.
async fn a_database_short_of_the_baseline_is_refused_unchanged(db: Raw) {
    db.migrate_before_baseline(885).await;
    db.exec(
        "INSERT INTO access_refusals (id, at, method, path, status, reason) \
         VALUES ('r1', 1000, 'GET', '/api/v1/tasks', 401, 'no token')",
    )
    .await;
    let (schema, rows, migrations) = (db.schema().await, db.rows().await, db.migrations().await);
    assert!(
        migrations.last().unwrap().starts_with("885 "),
        "{migrations:?}"
    );

    let Err(refused) = db.engine().await else {
        panic!("a database short of the baseline opens");
    };
    assert!(
        matches!(refused, EngineError::SchemaTooOld { found: 885 }),
        "{refused:?}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("schema 885") && text.contains("open it once with a yimen from before"),
        "{text}"
    );
    same(&db.schema().await, &schema, "after the refusal");
    assert_eq!(db.rows().await, rows);
    assert_eq!(db.migrations().await, migrations);
}
