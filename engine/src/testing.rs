//! What the tests of this workspace share, unit and integration alike. Not part of the API.

/// The PostgreSQL URL the tests run against (`YIMEN_TEST_POSTGRES`); without one, `None`, after
/// a line saying that `what` was skipped. The line is written past the test harness's capture,
/// so that a run without PostgreSQL shows what it left out.
pub fn postgres_url(what: &str) -> Option<String> {
    match std::env::var("YIMEN_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("skipped: set YIMEN_TEST_POSTGRES to run {what} on PostgreSQL\n"),
            );
            None
        }
    }
}

/// Drops a test's schema on the shared PostgreSQL server, if it is there.
pub async fn drop_schema(url: &str, schema: &str) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("postgres reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&pool)
    .await
    .expect("schema dropped");
    pool.close().await;
}
