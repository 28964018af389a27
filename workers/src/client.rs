use crate::error::ClientError;
use crate::types::*;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A client for one yimen server (`http://127.0.0.1:8080`), authenticated with a bearer token.
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Time allowed for an ordinary request; a long-poll claim gets its wait on top.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// `server` is the server's root URL (without `/api/v1`).
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| ClientError::Transport {
                url: server.to_string(),
                source,
            })?;
        Ok(Client {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// The server's root URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Any JSON call under `/api/v1` (`path` starts with `/`): the CLI's general entry point.
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.send(method, path, body, REQUEST_TIMEOUT).await?;
        decode(&bytes)
    }

    /// A call whose answer is text (CSV export): returns the body as it came.
    pub async fn call_text(&self, path: &str) -> Result<String, ClientError> {
        let bytes = self
            .send::<()>(Method::GET, path, None, REQUEST_TIMEOUT)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Fetch-and-lock: up to `max` tasks, waiting up to `wait_seconds` for one to be ready.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedTask>, ClientError> {
        let timeout = REQUEST_TIMEOUT + Duration::from_secs(u64::from(request.wait_seconds));
        let bytes = self
            .send(Method::POST, "/tasks/claim", Some(request), timeout)
            .await?;
        Ok(decode::<ClaimResponse>(&bytes)?.tasks)
    }

    pub async fn complete(&self, task: &str, request: &CompleteRequest) -> Result<(), ClientError> {
        let path = format!("/tasks/{task}/complete");
        self.call::<_, serde_json::Value>(Method::POST, &path, Some(request))
            .await
            .map(drop)
    }

    /// Completes several tasks in one request; each is its own event with its own result (in
    /// the order given). At most 100 per call.
    pub async fn complete_many(
        &self,
        completions: &[Completion],
    ) -> Result<Vec<CompletionResult>, ClientError> {
        let body = CompleteManyRequest { completions };
        let answer: CompleteManyResponse = self
            .call(Method::POST, "/tasks/complete", Some(&body))
            .await?;
        Ok(answer.results)
    }

    pub async fn extend(
        &self,
        task: &str,
        request: &ExtendRequest,
    ) -> Result<ExtendResponse, ClientError> {
        let path = format!("/tasks/{task}/extend");
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn release(&self, task: &str, lock_token: &str) -> Result<(), ClientError> {
        let path = format!("/tasks/{task}/release");
        let body = ReleaseRequest {
            lock_token: lock_token.to_string(),
        };
        self.call::<_, serde_json::Value>(Method::POST, &path, Some(&body))
            .await
            .map(drop)
    }

    pub async fn fail(
        &self,
        task: &str,
        request: &FailRequest,
    ) -> Result<FailResponse, ClientError> {
        let path = format!("/tasks/{task}/fail");
        self.call(Method::POST, &path, Some(request)).await
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}/api/v1{}", self.base, path);
        let mut request = self.http.request(method, &url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| ClientError::Transport {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            Ok(bytes.to_vec())
        } else {
            Err(ClientError::from_body(status, &bytes))
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    let bytes = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
        status: 200,
        reason: e.to_string(),
    })
}
