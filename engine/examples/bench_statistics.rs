//! Answer time of the statistics (`Engine::statistics`, what the 统计 page reads) with many
//! stored cases: one social-assistance case is driven to its department through the engine,
//! then copied in SQL (its instance row and its tasks) to CASES cases registered over the past
//! year in seven streets, and the statistics of a quarter, of a year and of one street's year
//! are read RUNS times each. Prints p50 and max of each.
//!
//! `cargo run --release -p yimen-engine --example bench_statistics -- [CASES] [RUNS]` (SQLite,
//! in a temporary file).

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::json;
use sqlx::Row;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use yimen_engine::calendar::Calendars;
use yimen_engine::clock::SystemClock;
use yimen_engine::engine::StatisticsQuery;
use yimen_engine::{ClaimRequest, CompleteRequest, DeployRequest, Engine, StartRequest};

type Error = Box<dyn std::error::Error>;

fn process_files(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                files.insert(rel, text);
            }
        }
    }
    Ok(files)
}

async fn work(
    engine: &Engine,
    queue: &str,
    outcome: &str,
    vars: serde_json::Value,
) -> Result<(), Error> {
    let claimed = engine
        .claim(ClaimRequest {
            queues: vec![queue.into()],
            org_units: None,
            actor: "window-1".into(),
            worker: None,
            max: 1,
            lease: Duration::minutes(5),
        })
        .await?;
    let task = claimed.into_iter().next().ok_or("no task to claim")?;
    engine
        .complete(CompleteRequest {
            task_id: task.task.id,
            lock_token: task.lock_token,
            outcome: Some(outcome.into()),
            vars: vars.as_object().cloned().unwrap_or_default(),
            actor: "window-1".into(),
            access: None,
        })
        .await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let cases: i64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = std::env::temp_dir().join(format!("yimen-bench-stats-{}.db", std::process::id()));
    let url = format!("sqlite:{}", path.display());
    let calendars = Calendars::load_dir(&root.join("calendars"))?;
    let engine = Engine::open(&url, Arc::new(SystemClock), Arc::new(calendars)).await?;
    let files = process_files(&root.join("processes"))?;
    engine
        .deploy(DeployRequest {
            file: "social_assistance.flow".into(),
            source: files["social_assistance.flow"].clone(),
            files,
            model: None,
        })
        .await?;
    let started = engine
        .start(StartRequest {
            process: "social_assistance".into(),
            business_key: Some("TEMPLATE".into()),
            vars: json!({
                "applicant_name": "张三丰", "id_number": "150302199001011231",
                "phone": "13800138000", "address": "新华街1号", "street": "street0",
                "community": "c0", "household_size": 3, "reason": "因病致贫",
                "categories": ["minimum_living"],
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            actor: "window-1".into(),
        })
        .await?;
    work(
        &engine,
        "window",
        "complete",
        json!({"main_category": "minimum_living"}),
    )
    .await?;
    work(&engine, "street_leader", "agree", json!({})).await?;
    work(
        &engine,
        "window",
        "forwarded",
        json!({"department_clear": true}),
    )
    .await?;

    // Copies in SQL: the instance with its street, community and registration time varied,
    // and its tasks.
    let seeding = Instant::now();
    let pool = sqlx::SqlitePool::connect(&url).await?;
    let columns = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info({table})")))
                .fetch_all(&pool)
                .await?;
            rows.iter()
                .map(|r| r.try_get::<String, _>("name"))
                .collect::<Result<Vec<_>, _>>()
        }
    };
    let day_ms = 86_400_000i64;
    let copy = |table: &str, cols: &[String], overrides: &[(&str, String)]| {
        let select: Vec<String> = cols
            .iter()
            .map(|c| {
                overrides
                    .iter()
                    .find(|(name, _)| name == c)
                    .map_or_else(|| format!("t.{c}"), |(_, e)| e.clone())
            })
            .collect();
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {cases}) \
             INSERT INTO {table} ({}) SELECT {} FROM n, {table} t WHERE {}",
            cols.join(", "),
            select.join(", "),
            if table == "instances" {
                format!("t.id = '{}'", started.id)
            } else {
                format!("t.instance_id = '{}'", started.id)
            }
        )
    };
    let instance_cols = columns("instances").await?;
    let sql = copy(
        "instances",
        &instance_cols,
        &[
            ("id", "t.id || '-' || n.i".into()),
            ("business_key", "'SA-' || n.i".into()),
            (
                "vars",
                "json_set(t.vars, '$.street', 'street' || (n.i % 7), '$.community', 'c' || (n.i % 60))"
                    .into(),
            ),
            ("created_at", format!("t.created_at - (n.i % 365) * {day_ms}")),
            ("status", "CASE WHEN n.i % 3 = 0 THEN 'completed' ELSE t.status END".into()),
            ("result", "CASE WHEN n.i % 3 = 0 THEN 'approved' ELSE t.result END".into()),
        ],
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    let task_cols = columns("tasks").await?;
    let sql = copy(
        "tasks",
        &task_cols,
        &[
            ("id", "t.id || '-' || n.i".into()),
            ("instance_id", "t.instance_id || '-' || n.i".into()),
        ],
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let tasks: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tasks")
        .fetch_one(&pool)
        .await?
        .try_get("n")?;
    println!(
        "seeded {cases} cases, {tasks} tasks in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let today = chrono::Utc::now()
        .with_timezone(&engine.time_zone())
        .date_naive();
    let quarter_from =
        NaiveDate::from_ymd_opt(today.year(), (today.month0() / 3) * 3 + 1, 1).unwrap_or(today);
    let year_ago = today - chrono::Days::new(365);
    for (what, from, to, units) in [
        ("a quarter, all streets", quarter_from, today, None),
        ("a year, all streets", year_ago, today, None),
        (
            "a year, one street",
            year_ago,
            today,
            Some(vec!["street3".to_string()]),
        ),
    ] {
        let q = StatisticsQuery {
            process: "social_assistance".into(),
            from,
            to,
            units,
        };
        let mut times = Vec::new();
        let mut registered = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let tables = engine.statistics(&q).await?;
            times.push(t.elapsed());
            registered = tables.tables[0].rows[0].counts[0];
        }
        times.sort();
        println!(
            "{what:24} {registered:>7} cases  p50 {:>7.1} ms  max {:>7.1} ms",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
    }
    pool.close().await;
    if std::env::var_os("YIMEN_BENCH_KEEP").is_some() {
        println!("kept: {}", path.display());
    } else {
        let _ = std::fs::remove_file(&path);
    }
    Ok(())
}
