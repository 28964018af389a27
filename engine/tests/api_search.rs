//! Finding a case (`GET /api/v1/instances`) and the trail of personal data read unmasked
//! (`GET /api/v1/instances/{id}?unmasked=true`, `GET /api/v1/personal-data-reads`), by tokens
//! and by people signed in. Which
//! variables a case is found by comes from the process: here `applicant` is declared
//! `personal(name)` and `id_number` `personal(id_number)`. On SQLite and on PostgreSQL
//! (`*::postgres`, skipped without `YIMEN_TEST_POSTGRES`).

mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use support::*;
use tower::ServiceExt;
use yimen_engine::store::StorePool;

on_both_databases!(
    cases_are_found_by_key_name_and_whole_id_number,
    a_token_finds_only_the_cases_it_may_see,
    results_come_a_page_at_a_time,
    the_search_table_holds_no_id_number_in_clear,
    unmasked_reads_are_allowed_to_who_works_the_case_and_recorded,
    a_person_signed_in_finds_and_reads_as_a_token_of_the_same_roles,
);

const AID: &str = r#"process aid "救助" version 1
var street: text required "街道"
var applicant: text personal(name) required "申请人"
var id_number: text personal(id_number) required "身份证号"
var phone: text personal(phone) "联系电话"
role window "窗口" per street
role board "委员会" oversees
role archive "档案" per street
start submit "提交" -> review
task review "审查" {
  queue window
  fields {
    optional applicant
  }
  outcome ok "通过" -> decide
}
task decide "决定" {
  queue board
  outcome yes "批准" -> file
}
task file "归档" {
  queue archive
  outcome ok "归档" -> granted
}
end granted "批准" result granted
"#;

/// Valid ID numbers (GB 11643 check characters).
const ID_A1: &str = "150302198001011237";
const ID_A2: &str = "11010519491231002X";
const ID_B1: &str = "440305198511204563";

/// Deploys `aid` and starts an application; its id.
async fn apply(api: &TestApi, key: Option<&str>, street: &str, who: &str, id: &str) -> String {
    let answer = api
        .post(
            "/api/v1/instances",
            &api.admin,
            json!({"process": "aid", "business_key": key, "variables": {
                "street": street, "applicant": who, "id_number": id, "phone": "13800138000"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    answer.body["id"].as_str().expect("id").to_string()
}

/// Three cases: two of 东城 (A1, A2), one of 西城 (B1), started in that order.
async fn three_cases(api: &TestApi) -> (String, String, String) {
    deploy_source(&api.engine, "aid.flow", AID).await;
    let a1 = apply(api, Some("SA-2026-0001"), "东城", "张三丰", ID_A1).await;
    let a2 = apply(api, Some("SA-2026-0002"), "东城", "李四", ID_A2).await;
    let b1 = apply(api, Some("SB-2026-0001"), "西城", "张三", ID_B1).await;
    (a1, a2, b1)
}

/// The ids of the cases `GET /instances?<query>` finds for `token`, in order, and the total.
async fn found(api: &TestApi, token: &str, query: &str) -> (Vec<String>, i64) {
    let answer = api.get(&format!("/api/v1/instances?{query}"), token).await;
    assert_eq!(answer.status, StatusCode::OK, "{query}: {answer:?}");
    let ids = answer.body["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    (ids, answer.body["total"].as_i64().expect("total"))
}

fn q(text: &str) -> String {
    format!("q={}", encode(text))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Today in the zone the server reads days in, moved by `days`.
fn day(api: &TestApi, days: i64) -> String {
    let today = chrono::Utc::now()
        .with_timezone(&api.engine.time_zone())
        .date_naive();
    (today + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

async fn cases_are_found_by_key_name_and_whole_id_number(api: TestApi) {
    let (a1, a2, b1) = three_cases(&api).await;
    let admin = api.admin.clone();

    // The business key, whole or its beginning; newest first.
    assert_eq!(
        found(&api, &admin, &q("SA-2026-0001")).await,
        (vec![a1.clone()], 1)
    );
    assert_eq!(
        found(&api, &admin, &q("SA-2026")).await,
        (vec![a2.clone(), a1.clone()], 2)
    );
    assert_eq!(
        found(&api, &admin, &q("2026-0001")).await.1,
        0,
        "a key's middle is no key"
    );

    // The name: a part of it, in any case of Latin letters.
    assert_eq!(
        found(&api, &admin, &q("张三")).await,
        (vec![b1.clone(), a1.clone()], 2)
    );
    assert_eq!(found(&api, &admin, &q("三丰")).await, (vec![a1.clone()], 1));
    assert_eq!(found(&api, &admin, &q("王五")).await.1, 0);

    // The ID number: the whole number only (a lower-case check character is the same one).
    assert_eq!(found(&api, &admin, &q(ID_A2)).await, (vec![a2.clone()], 1));
    assert_eq!(
        found(&api, &admin, &q(&ID_A2.to_lowercase())).await,
        (vec![a2.clone()], 1)
    );
    for part in [&ID_A1[..6], &ID_A1[..14], &ID_A1[..17], &ID_A1[4..]] {
        assert_eq!(found(&api, &admin, &q(part)).await.1, 0, "part {part}");
    }

    // Personal data is masked in what is found.
    let answer = api
        .get(&format!("/api/v1/instances?{}", q(ID_A1)), &admin)
        .await;
    let text = answer.body.to_string();
    assert!(!text.contains(ID_A1) && !text.contains("张三丰"), "{text}");
    let hit = &answer.body["cases"][0];
    assert_eq!(hit["business_key"], "SA-2026-0001");
    assert_eq!(hit["status"], "running");
    assert_eq!(hit["org_units"], json!(["东城"]));
    assert_eq!(
        hit["personal"],
        json!([
            {"variable": "applicant", "label": "申请人", "kind": "name", "value": "张**"},
            {"variable": "id_number", "label": "身份证号", "kind": "id_number",
             "value": "150302********1237"}
        ])
    );

    // By state, process, organisation unit and registration day.
    let cancelled = api
        .post(
            &format!("/api/v1/instances/{a2}/cancel"),
            &admin,
            json!({"reason": "withdrawn"}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{cancelled:?}");
    assert_eq!(
        found(&api, &admin, &format!("{}&status=cancelled", q("SA-2026"))).await,
        (vec![a2.clone()], 1)
    );
    assert_eq!(
        found(&api, &admin, "status=running").await,
        (vec![b1.clone(), a1.clone()], 2)
    );
    assert_eq!(found(&api, &admin, "process=aid").await.1, 3);
    assert_eq!(found(&api, &admin, "process=other").await.1, 0);
    assert_eq!(
        found(&api, &admin, &format!("unit={}", encode("西城"))).await,
        (vec![b1.clone()], 1)
    );
    let (today, yesterday, tomorrow) = (day(&api, 0), day(&api, -1), day(&api, 1));
    assert_eq!(
        found(&api, &admin, &format!("from={today}&to={today}"))
            .await
            .1,
        3
    );
    assert_eq!(found(&api, &admin, &format!("to={yesterday}")).await.1, 0);
    assert_eq!(found(&api, &admin, &format!("from={tomorrow}")).await.1, 0);
    assert_eq!(
        found(&api, &admin, &format!("from={yesterday}&{}", q("张三")))
            .await
            .1,
        2
    );
    // Empty parameters count as absent.
    assert_eq!(
        found(&api, &admin, "process=&status=&unit=&q=&from=&to=")
            .await
            .1,
        3
    );

    // What cannot be read is refused with what to fix, never a 500.
    for (query, says) in [
        ("status=done", "unknown status"),
        ("page=0", "`page`"),
        ("page_size=101", "`page_size`"),
        ("page_size=x", ""),
        ("from=2026-13-01", "from"),
        ("from=2026-10-02&to=2026-10-01", ""),
    ] {
        let answer = api.get(&format!("/api/v1/instances?{query}"), &admin).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {answer:?}"
        );
        assert_eq!(answer.code(), "bad_request");
        assert!(answer.message().contains(says), "{query}: {answer:?}");
    }
    let long = "长".repeat(101);
    let answer = api
        .get(&format!("/api/v1/instances?{}", q(&long)), &admin)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert!(answer.message().contains("`q`"), "{answer:?}");
}

async fn a_token_finds_only_the_cases_it_may_see(api: TestApi) {
    let (a1, a2, b1) = three_cases(&api).await;
    let east = api.token("east-window", &["window"], &["东城"]).await;
    let west = api.token("west-window", &["window"], &["西城"]).await;
    let board = api.token("board", &["board"], &[]).await;
    let east_board = api.token("east-board", &["board"], &["东城"]).await;
    let east_archive = api.token("east-archive", &["archive"], &["东城"]).await;

    assert_eq!(found(&api, &east, &q("张三")).await, (vec![a1.clone()], 1));
    assert_eq!(found(&api, &west, &q("张三")).await, (vec![b1.clone()], 1));
    // Unit A's token finds nothing of unit B, by any key.
    for text in ["SA-2026-0001", "SA", "三丰", ID_A1] {
        assert_eq!(found(&api, &west, &q(text)).await.1, 0, "{text}");
    }
    assert_eq!(
        found(&api, &west, &format!("unit={}", encode("东城")))
            .await
            .1,
        0
    );
    assert_eq!(
        found(&api, &east, "").await,
        (vec![a2.clone(), a1.clone()], 2)
    );
    // Overseers of no unit find every case; of a unit, that unit's.
    assert_eq!(
        found(&api, &board, &q("张三")).await,
        (vec![b1.clone(), a1.clone()], 2)
    );
    assert_eq!(found(&api, &board, "").await.1, 3);
    assert_eq!(
        found(&api, &east_board, "").await,
        (vec![a2.clone(), a1.clone()], 2)
    );
    // A role whose queue none of the cases reached yet finds none, as it may read none.
    assert_eq!(found(&api, &east_archive, "").await.1, 0);
    assert_eq!(
        api.get(&format!("/api/v1/instances/{a1}"), &east_archive)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn results_come_a_page_at_a_time(api: TestApi) {
    deploy_source(&api.engine, "aid.flow", AID).await;
    let mut started = Vec::new();
    for n in 0..25 {
        started.push(
            apply(
                &api,
                Some(&format!("P-{n:02}")),
                "东城",
                &format!("王五{n}"),
                ID_A1,
            )
            .await,
        );
    }
    // Another person's case is not among them.
    apply(&api, None, "东城", "赵六", ID_B1).await;
    let mut seen = Vec::new();
    let mut registered = Vec::new();
    for page in 1..=3 {
        let answer = api
            .get(
                &format!("/api/v1/instances?{}&page={page}&page_size=10", q("王五")),
                &api.admin,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body["total"], 25);
        assert_eq!(answer.body["page"], page);
        assert_eq!(answer.body["page_size"], 10);
        let cases = answer.body["cases"].as_array().expect("cases");
        assert_eq!(cases.len(), if page < 3 { 10 } else { 5 }, "page {page}");
        for case in cases {
            seen.push(case["id"].as_str().unwrap().to_string());
            registered.push(
                chrono::DateTime::parse_from_rfc3339(case["registered_at"].as_str().unwrap())
                    .unwrap(),
            );
        }
    }
    assert!(registered.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 25, "no case on two pages");
    started.sort();
    assert_eq!(sorted, started);
    assert_eq!(seen[0], *started.iter().max().unwrap(), "the newest first");
    let (after, total) = found(
        &api,
        &api.admin,
        &format!("{}&page=4&page_size=10", q("王五")),
    )
    .await;
    assert!(after.is_empty());
    assert_eq!(total, 25);
    // The same ID number is one person's several applications.
    assert_eq!(
        found(&api, &api.admin, &format!("{}&page_size=100", q(ID_A1)))
            .await
            .1,
        25
    );
}

/// A row of the search table as read: instance, variable, kind, value, hash.
type SearchRowRead = (String, String, String, Option<String>, Option<String>);

/// Every row of the search table, each column as text.
async fn search_table(api: &TestApi) -> Vec<Vec<Option<String>>> {
    let sql = "SELECT instance_id, var, kind, value, value_hash FROM case_search ORDER BY instance_id, var";
    let rows: Vec<SearchRowRead> = match api.engine.pool() {
        StorePool::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        StorePool::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
    .expect("the search table reads");
    rows.into_iter()
        .map(|(a, b, c, d, e)| vec![Some(a), Some(b), Some(c), d, e])
        .collect()
}

async fn run_sql(api: &TestApi, sql: &'static str) {
    match api.engine.pool() {
        StorePool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        StorePool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect(sql);
}

async fn the_search_table_holds_no_id_number_in_clear(api: TestApi) {
    let (a1, _, _) = three_cases(&api).await;
    let rows = search_table(&api).await;
    assert_eq!(rows.len(), 6, "a name and an ID number per case: {rows:?}");
    let key_id = api.engine.search_key().id().to_string();
    for row in &rows {
        for cell in row.iter().flatten() {
            for id in [ID_A1, ID_A2, ID_B1] {
                // No ID number, nor any eight digits of one, in any column.
                for start in 0..=id.len() - 8 {
                    assert!(!cell.contains(&id[start..start + 8]), "{row:?}");
                }
            }
        }
        match row[2].as_deref() {
            Some("id_number") => {
                assert_eq!(row[3], None);
                let hash = row[4].as_deref().expect("a hash");
                assert!(hash.starts_with(&format!("{key_id}:")), "{hash}");
                assert_eq!(
                    hash.len(),
                    key_id.len() + 1 + 64,
                    "HMAC-SHA256 in hex: {hash}"
                );
            }
            Some("name") => assert!(row[3].is_some() && row[4].is_none(), "{row:?}"),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    // The phone (personal, but no name nor ID number) is not searchable.
    assert!(rows.iter().all(|r| r[1].as_deref() != Some("phone")));

    // A name changed by a task is found by its new value, not by its old one, at once.
    let east = api.token("east-window", &["window"], &["东城"]).await;
    let claimed = api
        .post(
            "/api/v1/tasks/claim",
            &east,
            json!({"queues": ["window"], "max": 1, "worker": "w"}),
        )
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{claimed:?}");
    let task = &claimed.body["tasks"][0];
    assert_eq!(
        task["instance_id"].as_str(),
        Some(a1.as_str()),
        "{claimed:?}"
    );
    let done = api
        .post(
            &format!("/api/v1/tasks/{}/complete", task["id"].as_str().unwrap()),
            &east,
            json!({"lock_token": task["lock_token"], "outcome": "ok",
                   "variables": {"applicant": "张三峰"}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{done:?}");
    assert_eq!(
        found(&api, &api.admin, &q("张三峰")).await,
        (vec![a1.clone()], 1)
    );
    assert_eq!(found(&api, &api.admin, &q("张三丰")).await.1, 0);

    // Emptied, the table is filled again from the cases (and only once).
    run_sql(&api, "DELETE FROM case_search").await;
    run_sql(&api, "DELETE FROM settings WHERE name = 'search_indexed'").await;
    assert_eq!(found(&api, &api.admin, &q(ID_A1)).await.1, 0);
    assert_eq!(api.engine.index_cases().await.expect("indexed"), 6);
    assert_eq!(
        api.engine.index_cases().await.expect("indexed"),
        0,
        "idempotent"
    );
    assert_eq!(
        found(&api, &api.admin, &q(ID_A1)).await,
        (vec![a1.clone()], 1)
    );
    assert_eq!(found(&api, &api.admin, &q("张三峰")).await.1, 1);

    // Another key: the hashes are made again with it; the old ones match nothing.
    let before = search_table(&api).await;
    let key = yimen_engine::search::SearchKey::from_hex(&"ab".repeat(32)).expect("key");
    let new_id = key.id().to_string();
    api.engine.set_search_key(key);
    assert_eq!(
        found(&api, &api.admin, &q(ID_A1)).await.1,
        0,
        "not yet re-indexed"
    );
    assert_eq!(api.engine.index_cases().await.expect("indexed"), 6);
    let after = search_table(&api).await;
    assert_ne!(before, after);
    assert!(
        after
            .iter()
            .filter_map(|r| r[4].as_deref())
            .all(|h| h.starts_with(&format!("{new_id}:")))
    );
    assert_eq!(found(&api, &api.admin, &q(ID_A1)).await, (vec![a1], 1));
}

/// `GET path` by `token` from `address`.
async fn get_from(api: &TestApi, path: &str, token: &str, address: [u8; 4]) -> Answer {
    let request = Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .extension(ConnectInfo(SocketAddr::from((address, 40000))))
        .body(Body::empty())
        .expect("request");
    api.send(request).await
}

async fn unmasked_reads_are_allowed_to_who_works_the_case_and_recorded(api: TestApi) {
    let (a1, _, _) = three_cases(&api).await;
    let east = api.token("east-window", &["window"], &["东城"]).await;
    let west = api.token("west-window", &["window"], &["西城"]).await;
    let board = api.token("board", &["board"], &[]).await;
    let east_archive = api.token("east-archive", &["archive"], &["东城"]).await;
    let path = format!("/api/v1/instances/{a1}?unmasked=true");

    // Masked by default, and not recorded.
    let masked = api.get(&format!("/api/v1/instances/{a1}"), &east).await;
    assert_eq!(masked.status, StatusCode::OK, "{masked:?}");
    assert_eq!(masked.body["vars"]["applicant"], "张**");
    let masked = api
        .get(&format!("/api/v1/instances/{a1}?unmasked=false"), &east)
        .await;
    assert_eq!(masked.body["vars"]["id_number"], "150302********1237");

    // Who works the case's queue in its unit, the overseer and the admin read it unmasked.
    let read = get_from(&api, &path, &east, [10, 0, 0, 7]).await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["vars"]["applicant"], "张三丰");
    assert_eq!(read.body["vars"]["id_number"], ID_A1);
    assert_eq!(read.body["vars"]["phone"], "13800138000");
    for token in [&board, &api.admin] {
        let read = api.get(&path, token).await;
        assert_eq!(read.status, StatusCode::OK, "{read:?}");
        assert_eq!(read.body["vars"]["id_number"], ID_A1);
    }
    // Others may not: a role of the unit that does not work the case (403), a token of
    // another unit (404: the case is not confirmed to it).
    let refused = api.get(&path, &east_archive).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    assert!(!refused.body.to_string().contains(ID_A1));
    let other = api.get(&path, &west).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{other:?}");
    assert_eq!(
        api.get("/api/v1/instances/nope?unmasked=true", &board)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("/api/v1/instances/{a1}?unmasked=yes"), &east)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Each unmasked read is recorded: who, with which token, when, which case, from where.
    let trail = api
        .get(
            &format!("/api/v1/personal-data-reads?instance={a1}"),
            &api.admin,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{trail:?}");
    assert_eq!(trail.body["total"], 3, "{trail:?}");
    let reads = trail.body["reads"].as_array().expect("reads");
    let who: Vec<&str> = reads
        .iter()
        .map(|r| r["principal"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["admin", "board", "east-window"], "newest first");
    let first = &reads[2];
    assert_eq!(first["instance_id"], a1.as_str());
    assert_eq!(first["address"], "10.0.0.7");
    assert!(first["at"].as_str().is_some_and(|at| !at.is_empty()));
    let tokens = api.get("/api/v1/tokens", &api.admin).await;
    let east_id = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "east-window")
        .map(|t| t["id"].clone())
        .unwrap();
    assert_eq!(first["principal_kind"], "token");
    assert_eq!(first["principal_id"], east_id);
    // A page at a time.
    let all = api
        .get("/api/v1/personal-data-reads?page_size=2", &api.admin)
        .await;
    assert_eq!(all.body["total"], 3);
    assert_eq!(all.body["reads"].as_array().map(Vec::len), Some(2));
    let next = api
        .get("/api/v1/personal-data-reads?page=2&page_size=2", &api.admin)
        .await;
    assert_eq!(next.body["reads"].as_array().map(Vec::len), Some(1));
    let none = api
        .get("/api/v1/personal-data-reads?instance=nope", &api.admin)
        .await;
    assert_eq!(none.body["total"], 0);

    // The trail is the admins' to read.
    for token in [&east, &board] {
        let answer = api.get("/api/v1/personal-data-reads", token).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(answer.code(), "forbidden");
    }
    let bad = api
        .get("/api/v1/personal-data-reads?page_size=500", &api.admin)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
}

/// Creates the account `login` (`roles`, `units`), sets its own password and signs it in: its
/// id and session cookie.
async fn person(api: &TestApi, login: &str, roles: &[&str], units: &[&str]) -> (String, String) {
    let made = api
        .post(
            "/api/v1/users",
            &api.admin,
            json!({"login": login, "name": "王芳", "roles": roles, "org_units": units}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["user"]["id"].as_str().expect("id").to_string();
    let once = made.body["password"]
        .as_str()
        .expect("password")
        .to_string();
    let sign_in = |password: String| {
        let body = json!({"login": login, "password": password}).to_string();
        Request::builder()
            .method("POST")
            .uri("/api/v1/session")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request")
    };
    let response = api
        .router
        .clone()
        .oneshot(sign_in(once.clone()))
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let signed: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let change = Request::builder()
        .method("POST")
        .uri("/api/v1/session/password")
        .header("content-type", "application/json")
        .header("cookie", &cookie)
        .header("x-csrf-token", signed["csrf_token"].as_str().expect("csrf"))
        .body(Body::from(
            json!({"current": once, "new": "王芳的新密码2026"}).to_string(),
        ))
        .expect("request");
    let changed = api.send(change).await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    (id, cookie)
}

/// `GET path` with a session cookie.
async fn get_as(api: &TestApi, path: &str, cookie: &str) -> Answer {
    let request = Request::builder()
        .uri(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    api.send(request).await
}

async fn a_person_signed_in_finds_and_reads_as_a_token_of_the_same_roles(api: TestApi) {
    let (a1, a2, _) = three_cases(&api).await;
    let (id, cookie) = person(&api, "wangfang", &["window"], &["东城"]).await;
    let found = get_as(&api, &format!("/api/v1/instances?{}", q("张三")), &cookie).await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    assert_eq!(found.body["total"], 1, "{found:?}");
    assert_eq!(found.body["cases"][0]["id"], a1.as_str());
    let all = get_as(&api, "/api/v1/instances", &cookie).await;
    assert_eq!(all.body["total"], 2, "{all:?}");
    assert_eq!(all.body["cases"][0]["id"], a2.as_str());

    let read = get_as(
        &api,
        &format!("/api/v1/instances/{a1}?unmasked=true"),
        &cookie,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    assert_eq!(read.body["vars"]["id_number"], ID_A1);
    let trail = api.get("/api/v1/personal-data-reads", &api.admin).await;
    assert_eq!(trail.body["total"], 1, "{trail:?}");
    let entry = &trail.body["reads"][0];
    assert_eq!(entry["principal_kind"], "user");
    assert_eq!(entry["principal_id"], id.as_str());
    assert_eq!(entry["principal"], "王芳");
    assert_eq!(entry["instance_id"], a1.as_str());
    // A person is refused the trail as a token is.
    let refused = get_as(&api, "/api/v1/personal-data-reads", &cookie).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
}
