//! Migration 0940 keeps what was stored before it: a token limited to organisation units (the
//! column was named after one kind of unit) keeps working with its units, and notices to the
//! person a case concerns, stored under their old channel name, are routed and read as
//! `subject`. On SQLite and on PostgreSQL (`postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::http::StatusCode;
use std::path::Path;
use std::sync::Arc;
use support::*;
use yimen_engine::auth::{Role, hash_token};
use yimen_engine::clock::SystemClock;
use yimen_engine::store::tokens::{TokenLookup, TokenStore};
use yimen_engine::{Engine, OpenOptions, WeekdaysOnly};

/// The migrations of `folder` before 0940, as a migrator of their own.
async fn before_0940(folder: &str) -> sqlx::migrate::Migrator {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(folder);
    let to = std::env::temp_dir().join(format!("yimen-mig-0940-{folder}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for f in std::fs::read_dir(&from).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        if name.as_str() < "0940" {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(to.as_path()).await.unwrap();
    std::fs::remove_dir_all(&to).unwrap();
    migrator
}

/// Rows as a server before 0940 wrote them: a token of the `window` role limited to one unit,
/// a pending notice and a delivered one to the person a case concerns.
const OLD_ROWS: [&str; 3] = [
    "INSERT INTO api_tokens (id, name, hash, roles, streets, created_at) \
     VALUES ('t1', 'east', '{hash}', '[\"window\"]', '[\"东城街道\"]', 1)",
    "INSERT INTO outbox (id, instance_id, channel, dedup_key, payload, state, attempts, \
     next_attempt_at, created_at) \
     VALUES ('o1', 'i1', 'applicant', 'i1:o1', '{}', 'pending', 0, 0, 0)",
    "INSERT INTO inbox (id, recipient, instance_id, message, state, created_at) \
     VALUES ('n1', 'applicant', 'i1', '已受理', 'open', 0)",
];

/// The channel of the notice still pending when the server was upgraded.
const PENDING_CHANNEL: &str = "SELECT channel FROM outbox WHERE id = 'o1'";

const OLD_SECRET: &str = "ym_made_before_0940";

fn old_rows() -> Vec<String> {
    OLD_ROWS
        .iter()
        .map(|sql| sql.replace("{hash}", &hash_token(OLD_SECRET)))
        .collect()
}

/// After the migration (run by `Engine::open_with`): the token, its units, the notices.
async fn kept(engine: Engine) {
    let tokens = TokenStore::of(engine.store());
    match tokens.find(&hash_token(OLD_SECRET)).await.unwrap() {
        Some(TokenLookup::Active(principal)) => {
            assert_eq!(principal.roles, vec![Role::Named("window".into())]);
            assert_eq!(principal.org_units, vec!["东城街道".to_string()]);
        }
        other => panic!("the old token is active: {other:?}"),
    }
    let listed = tokens.list().await.unwrap();
    assert_eq!(listed[0].org_units, vec!["东城街道".to_string()]);
    let notices = yimen_engine::inbox::list(&engine, "subject", None, 10)
        .await
        .unwrap();
    assert_eq!(notices.len(), 1, "{notices:?}");
    // The old token authenticates through the API and keeps its limit.
    let api = api_on(engine).await;
    let tasks = api.get("/api/v1/tasks?queue=window", OLD_SECRET).await;
    assert_eq!(tasks.status, StatusCode::OK, "{tasks:?}");
    let refused = api.get("/api/v1/ledger", OLD_SECRET).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let path = std::env::temp_dir().join(format!("yimen-mig-0940-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite:{}", path.display());
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        before_0940("sqlite").await.run(&pool).await.unwrap();
        for sql in old_rows() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let engine = Engine::open_with(
        OpenOptions {
            url,
            pg_schema: None,
        },
        Arc::new(SystemClock),
        Arc::new(WeekdaysOnly),
    )
    .await
    .expect("the engine opens and migrates");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let channel: String = sqlx::query_scalar(PENDING_CHANNEL)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(channel, "subject");
    kept(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(url) = yimen_engine::testing::postgres_url("migration_0940") else {
        return;
    };
    let schema = "mig_0940".to_string();
    yimen_engine::testing::drop_schema(&url, &schema).await;
    {
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        let pool = sqlx::PgPool::connect_with(options.options([("search_path", &schema)]))
            .await
            .unwrap();
        before_0940("postgres").await.run(&pool).await.unwrap();
        for sql in old_rows() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let engine = Engine::open_with(
        OpenOptions {
            url: url.clone(),
            pg_schema: Some(schema.clone()),
        },
        Arc::new(SystemClock),
        Arc::new(WeekdaysOnly),
    )
    .await
    .expect("the engine opens and migrates");
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let pool = sqlx::PgPool::connect_with(options.options([("search_path", &schema)]))
        .await
        .unwrap();
    let channel: String = sqlx::query_scalar(PENDING_CHANNEL)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(channel, "subject");
    kept(engine).await;
}
