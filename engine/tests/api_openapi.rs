//! `GET /openapi.json` is generated from the routes: every route of the router is in the
//! document, and every operation of the document reaches a handler.

mod support;

use axum::http::StatusCode;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
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
    // Other modules (timers: inbox, clock, reports) add routes of their own; these are the
    // task-queue issue's.
    let spec = serde_json::to_value(yimen_engine::api::openapi()).unwrap();
    let listed: Vec<String> = operations(&spec)
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let expected = [
        "GET /api/v1/clock",
        "GET /api/v1/definitions",
        "GET /api/v1/definitions/{key}",
        "GET /api/v1/health",
        "GET /api/v1/ready",
        "GET /api/v1/inbox",
        "GET /api/v1/instances/{id}",
        "GET /api/v1/instances/{id}/documents",
        "GET /api/v1/instances/{id}/documents/{name}.pdf",
        "GET /api/v1/instances/{id}/history",
        "GET /api/v1/ledger",
        "GET /api/v1/openapi.json",
        "GET /api/v1/outbox/failed",
        "GET /api/v1/refusals",
        "GET /api/v1/reports",
        "GET /api/v1/reports/{job}/runs",
        "GET /api/v1/reports/{job}/runs/{scheduled}/csv",
        "GET /api/v1/tasks",
        "GET /api/v1/tokens",
        "GET /api/v1/me",
        "GET /api/v1/users",
        "GET /api/v1/sign-ins",
        "POST /api/v1/session",
        "DELETE /api/v1/session",
        "POST /api/v1/session/password",
        "POST /api/v1/users",
        "POST /api/v1/users/{login}/disable",
        "POST /api/v1/users/{login}/enable",
        "POST /api/v1/users/{login}/reset-password",
        "PUT /api/v1/users/{login}/roles",
        "POST /api/v1/clock/advance",
        "POST /api/v1/definitions",
        "POST /api/v1/inbox/{id}/ack",
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
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|op| !listed.iter().any(|l| l == *op))
        .collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    assert!(spec["components"]["schemas"]["ClaimBody"].is_object());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    assert!(spec["components"]["securitySchemes"]["session"].is_object());
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let api = TestApi::open(&Db::memory()).await;
    let spec = api.call("GET", "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    let versioned = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(versioned.body, spec.body);
    for (method, path) in operations(&spec.body) {
        let concrete = path
            .replace("{key}", "case")
            .replace("{id}", "x")
            .replace("{name}", "m")
            .replace("{name_or_id}", "nobody")
            .replace("{login}", "nobody");
        let body = (method == "POST" || method == "PUT").then(|| serde_json::json!({}));
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
        let listed = &spec.body["paths"][&path][method.to_lowercase()]["responses"];
        assert!(
            listed.get(answer.status.as_str()).is_some(),
            "{method} {path} answered {} which its document does not list: {answer:?}",
            answer.status
        );
    }
}

/// Writes the document to the file named by `YIMEN_OPENAPI_OUT` (for `.ci/run`, which checks it
/// with `openapi-spec-validator`); does nothing without it.
#[test]
fn dump_the_document_for_the_validator() {
    let Some(out) = std::env::var_os("YIMEN_OPENAPI_OUT") else {
        return;
    };
    let text = serde_json::to_string_pretty(&yimen_engine::api::openapi()).unwrap();
    std::fs::write(&out, text).expect("write the document");
}

/// The error statuses each handler answers itself (beyond what [`structural_errors`] adds for
/// every route of its shape). A route missing here fails the rules test: add what its
/// handler can answer.
const HANDLER_ERRORS: &[(&str, &[u16])] = &[
    ("GET /api/v1/clock", &[]),
    ("POST /api/v1/clock/advance", &[400, 403, 409, 422, 503]),
    ("GET /api/v1/definitions", &[]),
    ("POST /api/v1/definitions", &[403, 422]),
    ("GET /api/v1/definitions/{key}", &[404]),
    ("GET /api/v1/health", &[503]),
    ("GET /api/v1/ready", &[503]),
    ("GET /api/v1/inbox", &[400, 403]),
    ("POST /api/v1/inbox/{id}/ack", &[403, 404, 409]),
    ("GET /api/v1/instances", &[]),
    ("POST /api/v1/instances", &[403, 404, 422]),
    ("GET /api/v1/instances/{id}", &[403, 404]),
    ("POST /api/v1/instances/{id}/cancel", &[403, 404, 409]),
    ("GET /api/v1/instances/{id}/documents", &[403, 404]),
    (
        "GET /api/v1/instances/{id}/documents/{name}.pdf",
        &[403, 404, 409],
    ),
    ("GET /api/v1/instances/{id}/history", &[403, 404]),
    (
        "POST /api/v1/instances/{id}/incident/resolve",
        &[403, 404, 409],
    ),
    (
        "POST /api/v1/instances/{id}/messages/{name}",
        &[403, 404, 409, 422],
    ),
    ("GET /api/v1/ledger", &[400, 403]),
    ("GET /api/v1/openapi.json", &[]),
    ("GET /api/v1/outbox/failed", &[403]),
    ("GET /api/v1/personal-data-reads", &[403]),
    ("GET /api/v1/refusals", &[403]),
    ("GET /api/v1/reports", &[403, 404]),
    ("GET /api/v1/reports/{job}/runs", &[403, 404]),
    (
        "GET /api/v1/reports/{job}/runs/{scheduled}/csv",
        &[403, 404, 409],
    ),
    ("GET /api/v1/tasks", &[400, 403]),
    ("POST /api/v1/tasks/claim", &[403, 422]),
    ("POST /api/v1/tasks/{id}/claim", &[403, 404, 409, 422]),
    ("POST /api/v1/tasks/complete", &[422]),
    ("POST /api/v1/tasks/{id}/complete", &[403, 404, 409, 422]),
    ("POST /api/v1/tasks/{id}/extend", &[403, 404, 409, 422]),
    ("POST /api/v1/tasks/{id}/fail", &[403, 404, 409]),
    ("POST /api/v1/tasks/{id}/release", &[403, 404, 409]),
    ("POST /api/v1/session", &[401, 403, 429]),
    ("DELETE /api/v1/session", &[403]),
    ("POST /api/v1/session/password", &[403, 422, 429]),
    ("GET /api/v1/oidc/login", &[302, 404, 429]),
    ("GET /api/v1/oidc/callback", &[303, 401, 403, 404, 409, 429]),
    ("GET /api/v1/me", &[]),
    ("GET /api/v1/users", &[403]),
    ("POST /api/v1/users", &[403, 409, 422]),
    ("POST /api/v1/users/{login}/disable", &[403, 404]),
    ("POST /api/v1/users/{login}/enable", &[403, 404]),
    (
        "POST /api/v1/users/{login}/reset-password",
        &[403, 404, 409],
    ),
    ("PUT /api/v1/users/{login}/roles", &[403, 404, 409, 422]),
    ("GET /api/v1/sign-ins", &[403]),
    ("GET /api/v1/reassignments", &[403]),
    ("POST /api/v1/reassignments", &[403, 422]),
    ("POST /api/v1/reassignments/{id}/end", &[403, 404, 409]),
    ("GET /api/v1/tokens", &[403]),
    ("POST /api/v1/tokens", &[403, 409, 422]),
    ("POST /api/v1/tokens/{name_or_id}/revoke", &[403, 404]),
    ("POST /api/v1/tokens/{name_or_id}/rotate", &[403, 404, 422]),
];

/// Errors every route of this shape can answer: 401 and 429 with a token required (the access
/// layer); 414 and 431 (path and headers too large) on every route, 413 with a body; 400 for
/// a body that is not JSON, a query string or a path parameter that does not read (`ApiJson`,
/// `ApiQuery`, `ApiPath`); 422 for a JSON body without the fields or with a NUL in a text.
fn structural_errors(op: &Value) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let open = op["security"].as_array().is_some_and(|s| {
        s.iter()
            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    if !open {
        out.insert(401);
    }
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let reads_query = params.iter().any(|p| p["in"] == "query");
    let number_in_path = params
        .iter()
        .any(|p| p["in"] == "path" && p["schema"]["type"] == "integer");
    let in_path = params.iter().any(|p| p["in"] == "path");
    let body = op.get("requestBody").is_some();
    if body || reads_query || number_in_path || in_path {
        out.insert(400);
    }
    if body {
        out.insert(422);
        out.insert(413);
    }
    // The size limits (`api::router`), and the limit of failed authentications.
    out.insert(414);
    out.insert(431);
    if !open {
        out.insert(429);
        // A session's call without its CSRF token, or before its one-time password changed.
        out.insert(403);
    }
    out
}

/// A success schema names its shape: a component, a type other than a bare object, or an
/// object with its properties.
fn typed(schema: &Value) -> bool {
    if schema.get("$ref").is_some() || schema.get("properties").is_some() {
        return true;
    }
    match schema["type"].as_str() {
        Some("object") | None => ["oneOf", "anyOf", "allOf"]
            .iter()
            .any(|k| schema[k].as_array().is_some_and(|v| v.iter().all(typed))),
        Some("array") => typed(&schema["items"]),
        Some(_) => true,
    }
}

/// The structural rules `openapi-spec-validator` checks (`.ci/run` runs it too), and ours:
/// query parameters are not declared in the path, operation ids are unique, every success
/// answer has a typed schema, and the error statuses listed are exactly those the route can
/// answer.
#[test]
fn the_document_follows_the_rules() {
    let spec = serde_json::to_value(yimen_engine::api::openapi()).unwrap();
    let table: HashMap<&str, &[u16]> = HANDLER_ERRORS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let documented: Vec<String> = operations(&spec)
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    for (op, _) in HANDLER_ERRORS {
        if !documented.iter().any(|d| d == op) {
            problems.push(format!("{op} is in HANDLER_ERRORS but not in the document"));
        }
    }
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                None => problems.push(format!("{name}: no operationId")),
                Some(id) => {
                    if let Some(other) = ids.insert(id.to_string(), name.clone()) {
                        problems.push(format!("{name}: operationId `{id}` is also {other}'s"));
                    }
                }
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut declared = BTreeSet::new();
            for p in &params {
                let pname = p["name"].as_str().unwrap_or_default();
                if p["in"] == "path" {
                    if !in_template.contains(pname) {
                        problems.push(format!(
                            "{name}: `{pname}` is declared in the path but the path has no {{{pname}}}"
                        ));
                    }
                    declared.insert(pname);
                }
            }
            for missing in in_template.difference(&declared) {
                problems.push(format!(
                    "{name}: path parameter `{missing}` is not declared"
                ));
            }
            let responses = op["responses"].as_object().expect("responses");
            let mut listed = BTreeSet::new();
            for (status, answer) in responses {
                let status: u16 = status.parse().expect("numeric status");
                if (200..300).contains(&status) {
                    let content = answer["content"].as_object();
                    match content {
                        None => problems.push(format!("{name}: {status} has no content")),
                        Some(content) => {
                            for (media, c) in content {
                                if !typed(&c["schema"]) {
                                    problems.push(format!(
                                        "{name}: {status} {media} is an untyped {}",
                                        c["schema"]
                                    ));
                                }
                            }
                        }
                    }
                } else {
                    listed.insert(status);
                }
            }
            match table.get(name.as_str()) {
                None => problems.push(format!(
                    "{name}: not in HANDLER_ERRORS; add the statuses its handler answers"
                )),
                Some(own) => {
                    let mut can = structural_errors(op);
                    can.extend(own.iter().copied());
                    if listed != can {
                        problems.push(format!(
                            "{name}: lists errors {listed:?}, the route can answer {can:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
