//! Two servers on one PostgreSQL database, eight workers claiming from the same queue over
//! HTTP: every task is completed exactly once, expired leases are claimed again, and the token
//! of a lost lease is refused.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::*;
use yimen_workers::{ClaimRequest, Client, ClientError, CompleteRequest};

const CASES: usize = 40;

async fn serve(api: &TestApi) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = api.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn claim(worker: &str, lease_seconds: u32) -> ClaimRequest {
    ClaimRequest {
        queues: vec!["window".into()],
        worker: worker.into(),
        max: 2,
        lease_seconds,
        wait_seconds: 1,
    }
}

fn done(lock_token: &str) -> CompleteRequest {
    let variables = serde_json::json!({"checked": true});
    CompleteRequest {
        lock_token: lock_token.into(),
        outcome: "ok".into(),
        variables: variables.as_object().cloned().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_eight_workers_postgres() {
    let Some(db) = Db::postgres("two_servers") else {
        return;
    };
    let (a, b) = two_servers(&db).await;
    let token = a.admin.clone();
    assert!(
        b.admin.is_empty(),
        "the second server finds the admin token made by the first"
    );
    let urls = [serve(&a).await, serve(&b).await];

    let mut instances = Vec::new();
    for i in 0..CASES {
        let street = if i % 2 == 0 { "east" } else { "west" };
        instances.push(a.start_case(street, 10).await);
    }

    // A worker that claims and then "crashes": its leases (1 s) expire and others take over.
    let crashed = Client::new(&urls[0], Some(token.clone())).unwrap();
    let abandoned = crashed.claim(&claim("crashed", 1)).await.unwrap();
    assert!(!abandoned.is_empty());

    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let client = Client::new(&urls[w % 2], Some(token.clone())).unwrap();
        workers.spawn(async move {
            let mut completed = Vec::new();
            let mut refused = 0;
            let mut idle = 0;
            while idle < 3 {
                let tasks = client.claim(&claim(&format!("w{w}"), 30)).await.unwrap();
                if tasks.is_empty() {
                    idle += 1;
                    continue;
                }
                idle = 0;
                for task in tasks {
                    match client.complete(&task.id, &done(&task.lock_token)).await {
                        Ok(()) => completed.push(task.id),
                        Err(ClientError::Api { status: 409, .. }) => refused += 1,
                        Err(other) => panic!("worker w{w}: {other}"),
                    }
                }
            }
            (completed, refused)
        });
    }
    let mut by_task: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(result) = workers.join_next().await {
        let (completed, refused) = result.unwrap();
        assert_eq!(refused, 0, "live leases are never taken away");
        for id in completed {
            *by_task.entry(id).or_default() += 1;
        }
    }
    assert_eq!(by_task.len(), CASES, "every task completed");
    assert!(
        by_task.values().all(|n| *n == 1),
        "each exactly once: {by_task:?}"
    );
    for task in &abandoned {
        assert!(
            by_task.contains_key(&task.id),
            "expired lease re-claimed: {}",
            task.id
        );
        let late = crashed.complete(&task.id, &done(&task.lock_token)).await;
        let err = late.expect_err("the crashed worker's token is stale");
        assert_eq!(err.status(), Some(409), "{err}");
    }

    let mut finished = BTreeSet::new();
    for id in &instances {
        let view = b.get(&format!("/api/v1/instances/{id}"), &token).await;
        assert_eq!(
            view.body["active_nodes"],
            serde_json::json!(["docs"]),
            "{view:?}"
        );
        let history = a
            .get(&format!("/api/v1/instances/{id}/history"), &token)
            .await;
        let completions = history.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "task_completed")
            .count();
        assert_eq!(completions, 1, "one completion in the history of {id}");
        finished.insert(id.clone());
    }
    assert_eq!(finished.len(), CASES);
    tokio::time::sleep(Duration::from_millis(10)).await;
    db.finish().await;
}
