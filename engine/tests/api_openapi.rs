//! `GET /openapi.json` is generated from the routes: every route of the router is in the
//! document, and every operation of the document reaches a handler.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use support::*;

fn operations(spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_document_lists_every_endpoint_of_the_issue() {
    let spec = serde_json::to_value(yimen_engine::api::openapi()).unwrap();
    let listed: Vec<String> = operations(&spec)
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let expected = [
        "GET /api/v1/definitions",
        "GET /api/v1/definitions/{key}",
        "GET /api/v1/health",
        "GET /api/v1/instances/{id}",
        "GET /api/v1/instances/{id}/documents",
        "GET /api/v1/instances/{id}/history",
        "GET /api/v1/ledger",
        "GET /api/v1/openapi.json",
        "GET /api/v1/refusals",
        "GET /api/v1/tasks",
        "GET /api/v1/tokens",
        "POST /api/v1/definitions",
        "POST /api/v1/instances",
        "POST /api/v1/instances/{id}/cancel",
        "POST /api/v1/instances/{id}/incident/resolve",
        "POST /api/v1/instances/{id}/messages/{name}",
        "POST /api/v1/tasks/claim",
        "POST /api/v1/tasks/{id}/complete",
        "POST /api/v1/tasks/{id}/extend",
        "POST /api/v1/tasks/{id}/fail",
        "POST /api/v1/tasks/{id}/release",
        "POST /api/v1/tokens",
        "POST /api/v1/tokens/{name_or_id}/revoke",
    ];
    assert_eq!(listed, expected);
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    assert!(spec["components"]["schemas"]["ClaimBody"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let api = setup("sqlite", "openapi").await.expect("sqlite");
    let spec = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    let versioned = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(versioned.body, spec.body);
    for (method, path) in operations(&spec.body) {
        let concrete = path
            .replace("{key}", "case")
            .replace("{id}", "x")
            .replace("{name}", "m")
            .replace("{name_or_id}", "nobody");
        let body = (method == "POST").then(|| serde_json::json!({}));
        let answer = api.call(&method, &concrete, Some(&api.admin), body).await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            !answer.message().starts_with("no route"),
            "{method} {path} is documented but not routed: {answer:?}"
        );
        assert!(
            answer.status.is_success() || answer.body["error"]["code"].is_string(),
            "{method} {path} answers the envelope: {answer:?}"
        );
        assert_ne!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}: {answer:?}"
        );
    }
}
