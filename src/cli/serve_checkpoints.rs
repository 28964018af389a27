//! The ledger key of `yimen serve` (`--ledger-key`) and its daily checkpoints
//! (`--checkpoints`): at start and then every 24 hours, a signed checkpoint of every case's
//! entry count and head is written to the folder (see docs/security.md, "The ledger").

use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use yimen_engine::Engine;
use yimen_engine::ledger_keys::LedgerKeys;

/// How often a checkpoint is written while serving.
const EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(clap::Args, Debug, Clone)]
pub struct LedgerArgs {
    /// Ledger key file (`yimen ledger keygen`), kept outside the database: history entries are
    /// chained with its HMAC key and checkpoints signed with its Ed25519 key. Without it the
    /// chain is unkeyed: someone who can write the database can rewrite it undetected.
    #[arg(long = "ledger-key", env = "YIMEN_LEDGER_KEY", value_name = "FILE")]
    pub ledger_key: Option<PathBuf>,
    /// Folder the signed ledger checkpoints are written to, at start and daily (needs
    /// --ledger-key). Keep it (or a copy) where the database's writers cannot change it.
    #[arg(long, env = "YIMEN_CHECKPOINTS", value_name = "DIR")]
    pub checkpoints: Option<PathBuf>,
}

/// Gives the engine the ledger key (a warning without one).
pub fn use_key(engine: &Engine, args: &LedgerArgs) -> anyhow::Result<()> {
    match &args.ledger_key {
        Some(path) => {
            let keys = LedgerKeys::read(path).map_err(anyhow::Error::msg)?;
            super::serve::say(format_args!(
                "ledger: entries chained with key {} from {}",
                keys.chain_key().id,
                path.display()
            ));
            engine.set_ledger_keys(keys)?;
        }
        None => {
            super::serve::say(format_args!(
                "warning: no ledger key (--ledger-key or YIMEN_LEDGER_KEY): history entries are chained without a key, so someone who can write the database can rewrite them undetected; make one with `yimen ledger keygen FILE`"
            ));
            if args.checkpoints.is_some() {
                anyhow::bail!(
                    "--checkpoints needs --ledger-key: checkpoints are signed with the ledger key"
                );
            }
        }
    }
    Ok(())
}

/// The background checkpoints; stop them with [`Checkpointer::stop`].
pub struct Checkpointer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Writes a checkpoint now (an error if it cannot: the folder is wrong), then every 24 hours.
pub async fn start(engine: &Engine, args: &LedgerArgs) -> anyhow::Result<Option<Checkpointer>> {
    let Some(dir) = args.checkpoints.clone() else {
        return Ok(None);
    };
    let first = write(engine, &dir)
        .await
        .with_context(|| format!("cannot write a ledger checkpoint to {}", dir.display()))?;
    super::serve::say(format_args!(
        "ledger checkpoint written to {}",
        first.display()
    ));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            match write(&engine, &dir).await {
                Ok(path) => tracing::info!("ledger checkpoint written to {}", path.display()),
                Err(e) => tracing::warn!(
                    "could not write the ledger checkpoint to {} (will retry tomorrow): {e:#}",
                    dir.display()
                ),
            }
        }
    });
    Ok(Some(Checkpointer { stop, task }))
}

async fn write(engine: &Engine, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let cp = engine.ledger_checkpoint().await?;
    Ok(cp.write(dir)?)
}

impl Checkpointer {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
