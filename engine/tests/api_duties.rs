//! What a role may do beyond working its queue is declared by the processes, not by the
//! engine: a role a deployed process declares `oversees` reads every case, every inbox, the
//! ledger and the refused calls; one declared `informs applicant` reads the notices to the
//! person a case concerns. Other roles, whatever their names, do neither. On SQLite and on
//! PostgreSQL (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::*;
use yimen_engine::outbox::{Backoff, Delivery, WebhookSender};

on_both_databases!(
    a_declared_overseer_reads_what_supervision_read,
    oversight_follows_the_latest_deployment,
);

/// A grant process: the desk receives applications and tells applicants; the board decides
/// and oversees; the auditors only oversee. `{auditor}` is the auditors' clause.
fn grant(auditor: &str) -> String {
    format!(
        r#"process grant "补助" version 1
var district: text required "区域"
var amount: integer required "金额"
role desk "受理台" per district informs applicant
role board "委员会" oversees
role auditor "审计"{auditor}
role supervision "监察"
start submit "提交" -> received
step received "受理" {{
  notify applicant "您的申请已受理"
  notify role board "新的补助申请"
  notify role supervision "新的补助申请"
  notify role auditor "新的补助申请"
}} -> check
task check "审查" {{
  queue desk
  outcome ok "通过" -> decide
}}
task decide "委员会决定" {{
  queue board
  outcome yes "批准" -> granted
}}
end granted "批准" result granted
"#
    )
}

/// Starts a grant case in `district` and delivers its notices to the inboxes.
async fn start_grant(api: &TestApi, district: &str) -> String {
    let started = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "grant", "variables": {"district": district, "amount": 5}}),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let sender =
        WebhookSender::new(b"test".to_vec(), std::time::Duration::from_secs(1)).expect("sender");
    Delivery::new(api.engine.clone(), sender, Backoff::default())
        .deliver_due()
        .await
        .expect("notices delivered");
    started.body["id"].as_str().expect("id").to_string()
}

/// Every read an overseer has, by `token`: (path, status).
async fn reads(api: &TestApi, token: &str, case: &str) -> Vec<(String, StatusCode)> {
    let paths = [
        format!("/api/v1/instances/{case}"),
        format!("/api/v1/instances/{case}/history"),
        "/api/v1/inbox?role=board".to_string(),
        "/api/v1/inbox?role=desk".to_string(),
        "/api/v1/inbox?role=subject".to_string(),
        "/api/v1/ledger".to_string(),
        "/api/v1/refusals".to_string(),
    ];
    let mut out = Vec::new();
    for path in paths {
        let answer = api.get(&path, token).await;
        out.push((path, answer.status));
    }
    out
}

async fn a_declared_overseer_reads_what_supervision_read(api: TestApi) {
    deploy_source(&api.engine, "grant.flow", &grant(" oversees")).await;
    let case = start_grant(&api, "东城").await;
    let auditor = api.token("auditor", &["auditor"], &[]).await;
    for (path, status) in reads(&api, &auditor, &case).await {
        assert_eq!(status, StatusCode::OK, "an overseer reads {path}");
    }
    let subject = api.get("/api/v1/inbox?role=subject", &auditor).await;
    let items = subject.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{subject:?}");
    assert_eq!(items[0]["message"], "您的申请已受理");

    // `supervision` is a role of the process too, but not declared `oversees`: its name gives
    // it nothing beyond its own inbox.
    let supervision = api.token("supervision", &["supervision"], &[]).await;
    for (path, status) in reads(&api, &supervision, &case).await {
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "a role not declared `oversees` may not read {path}: {status}"
        );
    }
    let own = api
        .get("/api/v1/inbox?role=supervision", &supervision)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");

    // The board oversees as well as working its queue.
    let board = api.token("board", &["board"], &[]).await;
    assert_eq!(
        api.get("/api/v1/ledger", &board).await.status,
        StatusCode::OK
    );

    // The desk informs the applicant: it reads the `subject` inbox for the cases of its
    // organisation units, and nothing an overseer reads.
    let east = api.token("east-desk", &["desk"], &["东城"]).await;
    let west = api.token("west-desk", &["desk"], &["西城"]).await;
    let told = api.get("/api/v1/inbox?role=subject", &east).await;
    assert_eq!(told.status, StatusCode::OK, "{told:?}");
    assert_eq!(told.body["items"].as_array().map(Vec::len), Some(1));
    let other = api.get("/api/v1/inbox?role=subject", &west).await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");
    assert_eq!(other.body["items"].as_array().map(Vec::len), Some(0));
    for path in [
        "/api/v1/ledger",
        "/api/v1/inbox?role=board",
        "/api/v1/refusals",
    ] {
        assert_eq!(
            api.get(path, &east).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let refused = api.get("/api/v1/inbox?role=subject", &supervision).await;
    assert!(refused.message().contains("`subject`"), "{refused:?}");

    // An overseer limited to organisation units reads the cases of its units only.
    let west_auditor = api.token("west-auditor", &["auditor"], &["西城"]).await;
    let hidden = api
        .get(&format!("/api/v1/instances/{case}"), &west_auditor)
        .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{hidden:?}");
}

/// A new version without the clause takes the oversight away at once (the deployment bumps
/// the access generation), and a newer one with it gives it back.
async fn oversight_follows_the_latest_deployment(api: TestApi) {
    deploy_source(&api.engine, "grant.flow", &grant(" oversees")).await;
    let case = start_grant(&api, "东城").await;
    let auditor = api.token("auditor", &["auditor"], &[]).await;
    assert_eq!(
        api.get("/api/v1/ledger", &auditor).await.status,
        StatusCode::OK
    );
    deploy_source(&api.engine, "grant.flow", &grant("")).await;
    assert_eq!(
        api.get("/api/v1/ledger", &auditor).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get(&format!("/api/v1/instances/{case}"), &auditor)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // The auditors' own inbox stays theirs.
    let own = api.get("/api/v1/inbox?role=auditor", &auditor).await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
    assert_eq!(own.body["items"].as_array().map(Vec::len), Some(1));
    // Deploying the first text again changes nothing: its version exists, and the latest runs.
    deploy_source(&api.engine, "grant.flow", &grant(" oversees")).await;
    assert_eq!(
        api.get("/api/v1/ledger", &auditor).await.status,
        StatusCode::FORBIDDEN
    );
    // A new version with the clause gives the oversight back.
    deploy_source(
        &api.engine,
        "grant.flow",
        &format!("{}// v3\n", grant(" oversees")),
    )
    .await;
    assert_eq!(
        api.get("/api/v1/ledger", &auditor).await.status,
        StatusCode::OK
    );
}
