//! Access across servers and over time, on SQLite and on PostgreSQL (`*::postgres`, skipped
//! without `YIMEN_TEST_POSTGRES`): a revocation counts at once on every server sharing the
//! database, old refused calls are pruned, and a process says which roles may start it.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::json;
use support::*;
use yimen_dsl::model::{ConfigDecl, Span};
use yimen_engine::Engine;
use yimen_engine::api::{self, ApiState};

on_both_databases!(
    revocation_counts_at_once_on_every_server,
    a_new_version_starts_at_once_on_every_server,
    old_refusals_are_pruned,
    start_needs_a_role_the_process_allows,
    unit_tokens_start_cases_of_their_units_only,
);

/// Two servers on one database; a token used on B, revoked through A, is refused by B at its
/// very next request (B had it cached), with a message saying it was revoked.
async fn revocation_counts_at_once_on_every_server(db: Db) {
    let (a, b) = two_servers(&db).await;
    let window = a.token("east-window", &["window"], &[]).await;
    for _ in 0..2 {
        let answer = b.get("/api/v1/definitions", &window).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }
    let revoked = a
        .post("/api/v1/tokens/east-window/revoke", &a.admin, json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");

    let refused = b.get("/api/v1/definitions", &window).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert!(
        refused.message().contains("`east-window` was revoked"),
        "{refused:?}"
    );
    let on_a = a.get("/api/v1/definitions", &window).await;
    assert_eq!(on_a.status, StatusCode::UNAUTHORIZED, "{on_a:?}");
    // Other tokens stay valid on both servers (their cache entries are read again).
    assert_eq!(
        b.get("/api/v1/definitions", &a.admin).await.status,
        StatusCode::OK
    );
    let unknown = b.get("/api/v1/definitions", "ym_never_issued").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.message().contains("unknown"), "{unknown:?}");
    assert!(!unknown.message().contains("revoked"), "{unknown:?}");
}

/// Two servers on one database; B starts cases of version 1 (and keeps that it is the latest),
/// A deploys version 2, and B's very next start is of version 2: the latest version a server
/// keeps is trusted only under the access generation it was read under.
async fn a_new_version_starts_at_once_on_every_server(db: Db) {
    let (a, b) = two_servers(&db).await;
    let start = |n: u32| {
        json!({"process": "case", "business_key": format!("v-{n}"),
            "variables": {"name": "李四", "street": "east", "amount": 10}})
    };
    let version_of = |answer: &Answer| answer.body["version"].clone();
    for n in 0..2 {
        let started = b.post("/api/v1/instances", &a.admin, start(n)).await;
        assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
        assert_eq!(version_of(&started), 1, "{started:?}");
    }
    deploy_with_start_roles(&a.engine, "start_roles: [window]\n").await;
    let started = b.post("/api/v1/instances", &a.admin, start(2)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    assert_eq!(version_of(&started), 2, "{started:?}");
}

/// Refusals older than the limit are deleted, newer ones kept; 0 days is not special here
/// (serve never calls it with 0).
async fn old_refusals_are_pruned(api: TestApi) {
    let state = ApiState::new(api.engine, test_config());
    let now = Utc::now();
    for (path, age) in [
        ("/old", Duration::days(91)),
        ("/edge", Duration::days(89)),
        ("/new", Duration::minutes(1)),
    ] {
        state
            .tokens
            .record_refusal(None, "GET", path, 401, "no token", now - age)
            .await
            .expect("refusal recorded");
    }
    let deleted = api::access::prune_refusals(&state, 90)
        .await
        .expect("pruned");
    assert_eq!(deleted, 1);
    let kept: Vec<String> = state
        .tokens
        .refusals(10)
        .await
        .expect("listed")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(kept, vec!["/new", "/edge"]);
    assert_eq!(
        api::access::prune_refusals(&state, 90)
            .await
            .expect("pruned"),
        0
    );
    assert_eq!(
        api::access::prune_refusals(&state, 30)
            .await
            .expect("pruned"),
        1
    );
}

/// Without `start_roles` the roles of the first tasks (`window` for `case`) and admins may
/// start; with it, the listed roles. 403 names who may.
async fn start_needs_a_role_the_process_allows(api: TestApi) {
    let start = |token: String| {
        let api = &api;
        async move {
            api.post(
                "/api/v1/instances",
                &token,
                json!({"process": "case", "variables": {"name": "张三丰", "street": "东城街道", "amount": 5}}),
            )
            .await
        }
    };
    let window = api.token("window", &["window"], &[]).await;
    let review = api.token("review", &["review"], &[]).await;
    let supervision = api.token("supervision", &["supervision"], &[]).await;

    assert_eq!(start(window.clone()).await.status, StatusCode::CREATED);
    assert_eq!(start(api.admin.clone()).await.status, StatusCode::CREATED);
    for token in [&review, &supervision] {
        let refused = start(token.clone()).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
        assert!(
            refused.message().contains("only admin, window may"),
            "{refused:?}"
        );
        assert!(refused.message().contains("first tasks"), "{refused:?}");
    }

    deploy_with_start_roles(&api.engine, "start_roles: [review]\n").await;
    let refused = start(window.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(
        refused.message().contains("only admin, review may"),
        "{refused:?}"
    );
    assert!(refused.message().contains("`start_roles`"), "{refused:?}");
    assert_eq!(start(review).await.status, StatusCode::CREATED);
    assert_eq!(start(api.admin.clone()).await.status, StatusCode::CREATED);

    // Refused starts are recorded like every 403.
    let (refused, list) = refused_starts(&api).await;
    assert_eq!(refused, 3, "{list:?}");
}

/// A window token limited to a street starts cases of that street only (the process's
/// `window` role is scoped by `street`), and a business key of another street's case does
/// not show it that case. Refusals are recorded.
async fn unit_tokens_start_cases_of_their_units_only(api: TestApi) {
    let east = api.token("east", &["window"], &["东城街道"]).await;
    let start = |token: &str, street: Option<&str>, key: &str| {
        let mut variables = json!({"name": "张三丰", "amount": 5});
        if let Some(street) = street {
            variables["street"] = json!(street);
        }
        let body = json!({"process": "case", "business_key": key, "variables": variables});
        let token = token.to_string();
        let api = &api;
        async move { api.post("/api/v1/instances", &token, body).await }
    };

    let own = start(&east, Some("东城街道"), "k-east").await;
    assert_eq!(own.status, StatusCode::CREATED, "{own:?}");
    let again = start(&east, Some("东城街道"), "k-east").await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["id"], own.body["id"]);

    let other = start(&east, Some("西城街道"), "k-other").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{other:?}");
    assert!(
        other.message().contains(
            "limited to organisation units (东城街道): it may not start a case whose `street` is `西城街道`"
        ),
        "{other:?}"
    );
    let missing = start(&east, None, "k-missing").await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{missing:?}");
    assert!(missing.message().contains("give `street`"), "{missing:?}");

    // West's case, started by an admin; east repeats its business key.
    let west = start(&api.admin, Some("西城街道"), "k-west").await;
    assert_eq!(west.status, StatusCode::CREATED, "{west:?}");
    let repeated = start(&east, Some("东城街道"), "k-west").await;
    assert_eq!(repeated.status, StatusCode::FORBIDDEN, "{repeated:?}");
    assert!(
        !repeated.body.to_string().contains("西城街道"),
        "{repeated:?}"
    );

    let (refused, list) = refused_starts(&api).await;
    assert_eq!(refused, 3, "{list:?}");
    // Nothing was started by the refused calls: east's case and west's only.
    let all = api.get("/api/v1/tasks", &api.admin).await;
    let tasks = all.body["tasks"].as_array().cloned().unwrap_or_default();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
}

/// The recorded refusals of `POST /api/v1/instances` (403), and every recorded refusal.
async fn refused_starts(api: &TestApi) -> (usize, Vec<serde_json::Value>) {
    let refusals = api.get("/api/v1/refusals", &api.admin).await;
    let list = refusals.body["refusals"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let starts = list
        .iter()
        .filter(|r| r["path"] == "/api/v1/instances" && r["status"] == 403)
        .count();
    (starts, list)
}

/// Deploys `case` again (a new version) with a configuration file holding `yaml`.
async fn deploy_with_start_roles(engine: &Engine, yaml: &str) {
    let mut model = case_model();
    model.config = Some(ConfigDecl {
        file: "case.yaml".into(),
        keys: vec![],
        span: Span::default(),
    });
    let files = [("case.yaml".to_string(), yaml.to_string())].into();
    let deployment = deploy_model(engine, model, files).await;
    assert!(deployment.created);
    assert_eq!(deployment.version, 2);
}
