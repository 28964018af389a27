//! Keeps `access_refusals` and `sign_ins` bounded while serving: at start and then every
//! hour, refused calls and sign-in attempts older than `--keep-refusals-days` are deleted,
//! with the sessions of then (see `docs/api.md`).

use std::time::Duration;
use yimen_engine::api::{ApiState, access};

/// How often old refusals are deleted.
const EVERY: Duration = Duration::from_secs(3600);

/// The background pruning of refused calls; stop it with [`Pruner::stop`].
pub struct Pruner {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts pruning refusals older than `keep_days` (none for 0: kept forever).
pub fn start(state: &ApiState, keep_days: u32) -> Option<Pruner> {
    if keep_days == 0 {
        return None;
    }
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let state = state.clone();
    let task = tokio::spawn(async move {
        loop {
            match access::prune_refusals(&state, keep_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("deleted {n} refused call(s) older than {keep_days} days"),
                Err(e) => tracing::warn!("could not delete old refused calls (will retry): {e}"),
            }
            match access::prune_sign_ins(&state, keep_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "deleted {n} sign-in record(s) and session(s) older than {keep_days} days"
                ),
                Err(e) => tracing::warn!("could not delete old sign-ins (will retry): {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    });
    Some(Pruner { stop, task })
}

impl Pruner {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
