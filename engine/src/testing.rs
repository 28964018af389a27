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

/// Drops a test's schema on the shared PostgreSQL server, if it is there. The engine's
/// background work (timers, outbox) may still hold locks in the schema when a test ends, and
/// a drop can then lose a deadlock (40P01): it is tried again, up to five times.
pub async fn drop_schema(url: &str, schema: &str) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("postgres reachable");
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    for attempt in 1..=5 {
        match sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&pool)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 5 => {
                eprintln!("dropping schema {schema} (attempt {attempt}): {e}; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => panic!("schema {schema} not dropped after {attempt} attempts: {e}"),
        }
    }
    pool.close().await;
}
