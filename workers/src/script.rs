use crate::runner::{Handler, HandlerError};
use crate::types::{ClaimedTask, TaskResult};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs a shell command per task: the task JSON on its stdin, the result JSON
/// (`{"outcome": ..., "variables": {...}}`) expected on its stdout. A non-zero exit or an answer
/// that is not such JSON fails the task with the command's stderr.
#[derive(Debug, Clone)]
pub struct ScriptHandler {
    command: String,
}

/// Longest stderr excerpt sent to the server with a failure.
const MAX_ERROR_CHARS: usize = 2000;

impl ScriptHandler {
    /// `command` is run with `sh -c`.
    pub fn new(command: impl Into<String>) -> ScriptHandler {
        ScriptHandler {
            command: command.into(),
        }
    }

    async fn run(&self, task: &ClaimedTask) -> Result<TaskResult, HandlerError> {
        let input = serde_json::to_vec(task)
            .map_err(|e| HandlerError(format!("cannot encode the task as JSON: {e}")))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HandlerError(format!("cannot run `{}`: {e}", self.command)))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A script that does not read its input closes the pipe early; that is not an error.
            let _ = stdin.write_all(&input).await;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| HandlerError(format!("`{}` did not finish: {e}", self.command)))?;
        let stderr = truncate(String::from_utf8_lossy(&output.stderr).trim());
        if !output.status.success() {
            let status = output
                .status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
            return Err(HandlerError(if stderr.is_empty() {
                format!("the script exited with {status} and wrote nothing on stderr")
            } else {
                format!("the script exited with {status}: {stderr}")
            }));
        }
        serde_json::from_slice::<TaskResult>(&output.stdout).map_err(|e| {
            let stdout = truncate(String::from_utf8_lossy(&output.stdout).trim());
            HandlerError(format!(
                "the script must print {{\"outcome\": ..., \"variables\": {{...}}}} on stdout; \
                 it printed {stdout:?} ({e}){}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; stderr: {stderr}")
                }
            ))
        })
    }
}

impl Handler for ScriptHandler {
    async fn handle(&self, task: &ClaimedTask) -> Result<TaskResult, HandlerError> {
        self.run(task).await
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(MAX_ERROR_CHARS).collect();
        cut.push('…');
        cut
    }
}
