//! `yimen ledger verify|export` on a database the engine wrote, before and after tampering.

use std::process::{Command, Output};
use std::sync::Arc;
use yimen_dsl::model::*;
use yimen_engine::clock::SystemClock;
use yimen_engine::{DeployRequest, Engine, StartRequest, WeekdaysOnly};

fn ident(s: &str) -> Ident {
    Ident {
        name: s.into(),
        span: Span::default(),
    }
}

fn yimen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yimen"))
        .arg("ledger")
        .args(args)
        .output()
        .expect("run yimen")
}

#[tokio::test]
async fn verify_passes_then_fails_after_a_row_is_edited_and_export_prints_csv() {
    let dir = std::env::temp_dir().join("yimen-cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("ledger-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite:{}", path.display());
    let engine = Engine::open(&url, Arc::new(SystemClock), Arc::new(WeekdaysOnly))
        .await
        .unwrap();
    let model = Process {
        key: ident("tiny"),
        title: "tiny".into(),
        version: 1,
        imports: vec![],
        config: None,
        calendar: None,
        enums: vec![],
        vars: vec![],
        roles: vec![],
        channels: vec![],
        documents: vec![],
        clocks: vec![],
        nodes: vec![
            Node {
                id: ident("s"),
                label: None,
                kind: NodeKind::Start { next: ident("e") },
                span: Span::default(),
            },
            Node {
                id: ident("e"),
                label: None,
                kind: NodeKind::End {
                    result: ident("done"),
                    actions: vec![],
                },
                span: Span::default(),
            },
        ],
        span: Span::default(),
    };
    engine
        .deploy(DeployRequest {
            file: "tiny.flow".into(),
            source: "tiny".into(),
            files: Default::default(),
            model: Some(model),
        })
        .await
        .unwrap();
    for _ in 0..3 {
        engine
            .start(StartRequest {
                process: "tiny".into(),
                actor: "cli-test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let ok = yimen(&["verify", "--database", &url]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "ledger intact: 3 cases, 6 entries\n"
    );

    let csv = yimen(&["export", "2000-01-01", "2100-01-01", "--database", &url]);
    let text = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert_eq!(
        text.lines().next(),
        Some("\u{feff}at,instance,business_key,seq,actor,actor_kind,actor_id,node,kind,text,hash")
    );
    assert_eq!(text.lines().count(), 7);

    // Issue 19: FROM and TO are both included, as in `GET /api/v1/ledger?from=&to=`: one day
    // (in Asia/Shanghai, where the entries were just written) is `export DAY DAY`.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    let day = yimen(&["export", &today, &today, "--database", &url]);
    assert_eq!(
        day.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&day.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&day.stdout).lines().count(), 7);

    if let yimen_engine::store::StorePool::Sqlite(pool) = engine.pool() {
        // History is stored in packs of entries (a JSON array per row); change entry 1's actor.
        sqlx::query("UPDATE history SET entries = json_set(entries, '$[0].actor', 'someone else') WHERE seq = 1 AND instance_id = (SELECT MIN(instance_id) FROM history)")
            .execute(pool)
            .await
            .unwrap();
    }
    let bad = yimen(&["verify", "--database", &url]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("entry 1 was changed after it was written")
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ledger TAMPERED: 1 problem(s)"));

    let missing = yimen(&["verify", "--database", "sqlite:/nonexistent/yimen.db"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no database at /nonexistent/yimen.db")
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A process of one task: a case's entries are in two packs (the start's, the completion's).
const ONE_TASK: &str = include_str!("../dsl/tests/ok/minimal.flow");

async fn exec(engine: &Engine, sql: String) {
    match engine.pool() {
        yimen_engine::store::StorePool::Sqlite(p) => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .unwrap();
        }
        yimen_engine::store::StorePool::Postgres(p) => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .unwrap();
        }
    }
}

async fn packs(engine: &Engine, instance: &str) -> Vec<(i64, String)> {
    let sql = "SELECT seq, entries FROM history WHERE instance_id = $1 ORDER BY seq";
    match engine.pool() {
        yimen_engine::store::StorePool::Sqlite(p) => sqlx::query_as(sql)
            .bind(instance)
            .fetch_all(p)
            .await
            .unwrap(),
        yimen_engine::store::StorePool::Postgres(p) => sqlx::query_as(sql)
            .bind(instance)
            .fetch_all(p)
            .await
            .unwrap(),
    }
}

fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Issue 20: the three rewrites of someone who can write the database, done with SQL, each
/// found by `yimen ledger verify` with the ledger key and the checkpoints; without them (what
/// `verify` did before) the ledger reads as intact. `url` is what the CLI opens; `engine` the
/// same database.
async fn deliberate_rewrites_are_found(engine: Engine, url: &str, dir: &std::path::Path) {
    let key = dir.join("ledger.key");
    let made = yimen(&["keygen", key.to_str().unwrap()]);
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    assert!(dir.join("ledger.key.pub").exists());
    let again = yimen(&["keygen", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--rotate"));
    engine
        .set_ledger_keys(yimen_engine::ledger_keys::LedgerKeys::read(&key).unwrap())
        .unwrap();

    engine
        .deploy(DeployRequest {
            file: "expense.flow".into(),
            source: ONE_TASK.into(),
            files: Default::default(),
            model: None,
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let case = engine
            .start(StartRequest {
                process: "expense".into(),
                actor: "cli-test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let task = engine
            .claim(yimen_engine::ClaimRequest {
                queues: vec!["finance".into()],
                org_units: None,
                actor: "w".into(),
                worker: None,
                max: 1,
                lease: chrono::Duration::minutes(5),
            })
            .await
            .unwrap()
            .remove(0);
        engine
            .complete(yimen_engine::CompleteRequest {
                task_id: task.task.id,
                lock_token: task.lock_token,
                outcome: Some("paid".into()),
                vars: Default::default(),
                actor: "w".into(),
                access: None,
            })
            .await
            .unwrap();
        ids.push(case.id);
    }
    let checkpoints = dir.join("checkpoints");
    let (database, key, checkpoints) = (url, key.to_str().unwrap(), checkpoints.to_str().unwrap());
    let cp = yimen(&[
        "checkpoint",
        "--database",
        database,
        "--ledger-key",
        key,
        "--checkpoints",
        checkpoints,
    ]);
    assert_eq!(cp.status.code(), Some(0), "{cp:?}");
    assert!(String::from_utf8_lossy(&cp.stdout).contains("checkpoint of 3 cases"));
    let full = [
        "verify",
        "--database",
        database,
        "--ledger-key",
        key,
        "--checkpoints",
        checkpoints,
    ];
    let ok = yimen(&full);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stderr).contains("1 checkpoint(s) compared"));

    // 1. An entry's text changed, the chain recomputed with SHA-256 as the unkeyed chain is.
    let mut prev = String::new();
    for (seq, text) in packs(&engine, &ids[0]).await {
        let mut entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        for (k, e) in entries.iter_mut().enumerate() {
            if seq + k as i64 == 2 {
                e["text"] = serde_json::json!("rewritten");
            }
            let row = yimen_engine::store::HistoryRow {
                instance_id: ids[0].clone(),
                seq: seq + k as i64,
                at: e["at"].as_i64().unwrap(),
                actor: e["actor"].as_str().unwrap().into(),
                actor_kind: e["actor_kind"].as_str().unwrap_or("").into(),
                actor_id: e["actor_id"].as_str().unwrap_or("").into(),
                node: e["node"].as_str().map(str::to_string),
                kind: e["kind"].as_str().unwrap().into(),
                text: e["text"].as_str().unwrap().into(),
                data: e["data"].as_str().unwrap().into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            prev = yimen_engine::ledger::entry_hash(&row);
            e["prev_hash"] = serde_json::json!(row.prev_hash);
            e["hash"] = serde_json::json!(prev);
        }
        let text = serde_json::to_string(&entries).unwrap();
        exec(
            &engine,
            format!(
                "UPDATE history SET entries = {} WHERE instance_id = {} AND seq = {seq}",
                q(&text),
                q(&ids[0])
            ),
        )
        .await;
    }
    exec(
        &engine,
        format!(
            "UPDATE instances SET history_head = {} WHERE id = {}",
            q(&prev),
            q(&ids[0])
        ),
    )
    .await;
    // 2. The last pack deleted, the head rewound.
    let stored = packs(&engine, &ids[1]).await;
    assert!(stored.len() >= 2, "{stored:?}");
    let (last_seq, last) = stored.last().unwrap();
    let last: Vec<serde_json::Value> = serde_json::from_str(last).unwrap();
    exec(
        &engine,
        format!(
            "DELETE FROM history WHERE instance_id = {} AND seq = {last_seq}",
            q(&ids[1])
        ),
    )
    .await;
    exec(
        &engine,
        format!(
            "UPDATE instances SET history_count = {}, history_head = {} WHERE id = {}",
            last_seq - 1,
            q(last[0]["prev_hash"].as_str().unwrap()),
            q(&ids[1])
        ),
    )
    .await;
    // 3. A whole case deleted.
    for table in ["history", "tasks", "timers", "documents"] {
        exec(
            &engine,
            format!("DELETE FROM {table} WHERE instance_id = {}", q(&ids[2])),
        )
        .await;
    }
    exec(
        &engine,
        format!("DELETE FROM instances WHERE id = {}", q(&ids[2])),
    )
    .await;

    let plain = yimen(&["verify", "--database", database]);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("no checkpoints compared"));

    let bad = yimen(&full);
    assert_eq!(bad.status.code(), Some(3), "{bad:?}");
    let out = String::from_utf8_lossy(&bad.stdout);
    let line = |id: &str, what: &str| out.lines().any(|l| l.contains(id) && l.contains(what));
    assert!(line(&ids[0], "recomputed without the key"), "{out}");
    assert!(line(&ids[0], "(rewritten)"), "{out}");
    assert!(line(&ids[1], "entries removed from its end"), "{out}");
    assert!(
        line(&ids[2], "missing from the database (deleted)"),
        "{out}"
    );

    // The public key alone verifies the checkpoints (no secret needed for that part).
    let public = format!("{key}.pub");
    let public_only = yimen(&[
        "verify",
        "--database",
        database,
        "--checkpoints",
        checkpoints,
        "--public-key",
        &public,
    ]);
    assert_eq!(public_only.status.code(), Some(3), "{public_only:?}");
    let out = String::from_utf8_lossy(&public_only.stdout);
    assert!(out.contains("missing from the database (deleted)"), "{out}");
}

#[tokio::test]
async fn deliberate_rewrites_are_found_on_sqlite() {
    let dir = unique_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("yimen.db").display());
    let engine = Engine::open(&url, Arc::new(SystemClock), Arc::new(WeekdaysOnly))
        .await
        .unwrap();
    deliberate_rewrites_are_found(engine, &url, &dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn deliberate_rewrites_are_found_on_postgres() {
    let Some(url) = yimen_engine::testing::postgres_url("ledger rewrites") else {
        return;
    };
    let schema = format!("t_seal_{}_{}", std::process::id(), nanos());
    let engine = Engine::open_with(
        yimen_engine::OpenOptions {
            url: url.clone(),
            pg_schema: Some(schema.clone()),
        },
        Arc::new(SystemClock),
        Arc::new(WeekdaysOnly),
    )
    .await
    .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let cli_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let dir = unique_dir();
    std::fs::create_dir_all(&dir).unwrap();
    deliberate_rewrites_are_found(engine, &cli_url, &dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
    yimen_engine::testing::drop_schema(&url, &schema).await;
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

fn unique_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yimen-seal-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
