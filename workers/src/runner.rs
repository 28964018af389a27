use crate::client::Client;
use crate::error::ClientError;
use crate::types::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why a handler could not do a task; reported with `fail` (the server retries, then raises an
/// incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(pub String);

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Does the work of one task.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        task: &ClaimedTask,
    ) -> impl Future<Output = Result<TaskResult, HandlerError>> + Send;
}

/// How a worker claims.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub queues: Vec<String>,
    /// Worker name recorded in the history of every task it claims.
    pub worker: String,
    /// Tasks handled at the same time.
    pub concurrency: u32,
    pub lease_seconds: u32,
    /// Long-poll wait of each claim.
    pub wait_seconds: u32,
    /// On shutdown, how long a running handler may go on before its task is released.
    pub shutdown_grace: Duration,
    /// Stop after this many tasks were handled (`None`: run until shutdown).
    pub max_tasks: Option<u64>,
}

impl WorkerConfig {
    pub fn new(queues: Vec<String>, worker: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            queues,
            worker: worker.into(),
            concurrency: 1,
            lease_seconds: 60,
            wait_seconds: 20,
            shutdown_grace: Duration::from_secs(30),
            max_tasks: None,
        }
    }
}

/// What a worker did, counted when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub completed: u64,
    /// Reported with `fail` after the handler failed.
    pub failed: u64,
    /// Released unfinished at shutdown.
    pub released: u64,
    /// The server refused the result (409: the lease was lost to another worker, or 422).
    pub refused: u64,
}

enum Done {
    Completed,
    Failed,
    Released,
    Refused,
}

/// Claims and handles tasks until `shutdown` turns `true` (or `max_tasks` is reached). While a
/// handler runs, its lease is extended in the background; at shutdown a running handler gets
/// `shutdown_grace` to finish, after which its task is released for another worker.
pub async fn run_worker<H: Handler>(
    client: Client,
    config: WorkerConfig,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<WorkerStats, ClientError> {
    let mut stats = WorkerStats::default();
    let mut backoff = Duration::from_millis(500);
    let config = Arc::new(config);
    loop {
        if *shutdown.borrow() || config.max_tasks.is_some_and(|m| handled(&stats) >= m) {
            return Ok(stats);
        }
        let request = ClaimRequest {
            queues: config.queues.clone(),
            worker: config.worker.clone(),
            max: config.concurrency.max(1),
            lease_seconds: config.lease_seconds,
            wait_seconds: config.wait_seconds,
        };
        let claimed = tokio::select! {
            claimed = client.claim(&request) => claimed,
            _ = shutdown.changed() => continue,
        };
        let tasks = match claimed {
            Ok(tasks) => {
                backoff = Duration::from_millis(500);
                tasks
            }
            Err(err) if err.is_transient() => {
                tracing::warn!("claim failed, retrying in {backoff:?}: {err}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(err) => return Err(err),
        };
        if tasks.is_empty() && config.wait_seconds == 0 {
            // Without a long poll the server answers at once; do not hammer it.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let mut running = JoinSet::new();
        for task in tasks {
            running.spawn(handle_one(
                client.clone(),
                Arc::clone(&config),
                Arc::clone(&handler),
                task,
                shutdown.clone(),
            ));
        }
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(Done::Completed)) => stats.completed += 1,
                Ok(Ok(Done::Failed)) => stats.failed += 1,
                Ok(Ok(Done::Released)) => stats.released += 1,
                Ok(Ok(Done::Refused)) => stats.refused += 1,
                Ok(Err(err)) => tracing::warn!("task call failed: {err}"),
                Err(join) => tracing::error!("task handler panicked: {join}"),
            }
        }
    }
}

fn handled(stats: &WorkerStats) -> u64 {
    stats.completed + stats.failed + stats.refused
}

async fn handle_one<H: Handler>(
    client: Client,
    config: Arc<WorkerConfig>,
    handler: Arc<H>,
    task: ClaimedTask,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Done, ClientError> {
    let keeper = tokio::spawn(keep_lease(
        client.clone(),
        task.id.clone(),
        task.lock_token.clone(),
        config.lease_seconds,
    ));
    let work = handler.handle(&task);
    tokio::pin!(work);
    let outcome = tokio::select! {
        outcome = &mut work => Some(outcome),
        _ = wait_for_shutdown(&mut shutdown) => {
            tokio::time::timeout(config.shutdown_grace, &mut work).await.ok()
        }
    };
    keeper.abort();
    let result = match outcome {
        None => {
            tracing::info!(task = %task.id, "shutting down: releasing the unfinished task");
            client.release(&task.id, &task.lock_token).await?;
            return Ok(Done::Released);
        }
        Some(Ok(result)) => {
            let request = CompleteRequest {
                lock_token: task.lock_token.clone(),
                outcome: result.outcome,
                variables: result.variables,
            };
            client
                .complete(&task.id, &request)
                .await
                .map(|()| Done::Completed)
        }
        Some(Err(error)) => {
            let request = FailRequest {
                lock_token: task.lock_token.clone(),
                error: error.0,
            };
            client.fail(&task.id, &request).await.map(|_| Done::Failed)
        }
    };
    match result {
        Err(ClientError::Api {
            status: 409 | 422,
            message,
            ..
        }) => {
            tracing::warn!(task = %task.id, "the server refused the result: {message}");
            Ok(Done::Refused)
        }
        other => other,
    }
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Extends the lease at a third of its length until aborted (the handler is done).
async fn keep_lease(client: Client, task: String, lock_token: String, lease_seconds: u32) {
    let every = Duration::from_secs(u64::from(lease_seconds.max(3) / 3));
    loop {
        tokio::time::sleep(every).await;
        let request = ExtendRequest {
            lock_token: lock_token.clone(),
            lease_seconds,
        };
        if let Err(err) = client.extend(&task, &request).await {
            tracing::warn!(task = %task, "could not extend the lease: {err}");
            if !err.is_transient() {
                return;
            }
        }
    }
}
