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
        Some("\u{feff}at,instance,business_key,seq,actor,node,kind,text,hash")
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
