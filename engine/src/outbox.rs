//! Delivery of outgoing notifications written to the outbox by the runtime.
//!
//! The runtime writes one outbox row per `notify` action in the same transaction as the event
//! that caused it, so a notification is never lost, even if the server stops right after. This
//! module takes rows from there and delivers them:
//! - `webhook:<channel>` whose configuration entry is a URL: an HTTP POST of a JSON document to
//!   it, signed with HMAC-SHA256 over the exact body (header [`SIGNATURE_HEADER`],
//!   `sha256=<hex>`), carrying the row's de-duplication id (header [`DELIVERY_HEADER`] and
//!   field `id`). Delivery is at least once: a receiver that sees an id twice ignores the second.
//! - `webhook:<channel>` whose entry is a mapping with a `kind`: a WeCom or DingTalk robot's
//!   message or an SMS gateway's request ([`channels`], `docs/channels.md`), in the same lane,
//!   with the same retries.
//! - `role:<queue>`, `subject` (the person a case concerns), `holder`: written to the inbox (see
//!   [`crate::inbox`]), keyed by
//!   the outbox id, so a repeated delivery does not make a second item.
//!
//! Webhooks and inbox notices are delivered in two lanes, each with its own loop: a receiver
//! that hangs until the attempt times out holds up the webhooks behind it, never a notice.
//!
//! A failed attempt is retried with exponential back-off ([`Backoff`]); after the last attempt
//! the row is marked dead, which the delivery state shows (never silently dropped). A row that
//! keeps failing is logged at WARN once ([`WARN_AFTER`] failed attempts, or when it is given up
//! sooner), with its channel and URL but never its payload; `GET /api/v1/outbox/failed`
//! (`yimen outbox failed`) lists every failing row.

pub mod channels;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

/// Header carrying `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Yimen-Signature";
/// Header carrying the de-duplication id (same as the body's `id`).
pub const DELIVERY_HEADER: &str = "X-Yimen-Delivery";

/// Signs `body` with `secret`: `sha256=<lower-case hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC-SHA256 takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header value against `body` in constant time (for receivers and tests).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Failed attempts after which a row counts as failing: it is logged at WARN then, once.
pub const WARN_AFTER: u32 = 3;

/// Retry schedule: `first * 2^(attempt-1)`, capped at `max_delay`; dead after `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 30 s, 1 min, 2 min, ... capped at 6 h; given up after 20 attempts (about four days).
    fn default() -> Self {
        Backoff {
            first: Duration::seconds(30),
            max_delay: Duration::hours(6),
            max_attempts: 20,
        }
    }
}

impl Backoff {
    /// When to try again after failed attempt number `attempt` (1-based) at `now`; `None`: give up.
    pub fn retry_at(&self, attempt: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let shift = attempt.saturating_sub(1).min(30);
        let delay = self
            .first
            .checked_mul(1i32 << shift)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        Some(now + delay)
    }
}

/// Why a notification was not delivered: the text recorded on its row (never its body).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The row's channel is none of the known forms; the row is marked dead.
    #[error(
        "unknown notification channel `{0}` (expected webhook:NAME, role:QUEUE, {subject} or holder)",
        subject = crate::auth::SUBJECT_INBOX
    )]
    UnknownChannel(String),
    #[error(
        "channel `{channel}`: URL `{url}` is not http(s); fix the channel's key in the process configuration"
    )]
    NotHttp { channel: String, url: String },
    #[error("channel `{channel}` has no URL; set the channel's key in the process configuration")]
    NoUrl { channel: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot encode: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("timed out")]
    TimedOut,
    #[error("cannot connect")]
    CannotConnect,
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    /// The receiver answered with a status other than 2xx.
    #[error("receiver answered HTTP {0}")]
    Status(u16),
    /// A robot answered 200 with a non-zero `errcode` (or not with its JSON); retried.
    #[error("{robot} refused: {}{errmsg}", .errcode.map(|c| format!("errcode {c}: ")).unwrap_or_default())]
    Refused {
        robot: &'static str,
        errcode: Option<i64>,
        errmsg: String,
    },
    /// A variable `secret_env` or `url_env` names is not set; retried, so a server restarted
    /// with it set sends the notice.
    #[error("channel `{channel}`: the server's environment has no ${var}; set it and restart")]
    MissingEnv { channel: String, var: String },
    /// The channel's entry cannot be sent to (a row written before the entry was checked, or
    /// an empty phone number); not retried.
    #[error("channel configuration: {0}")]
    Config(String),
    /// An SMS template does not render with the notice's values; not retried.
    #[error("SMS template {0}")]
    Template(String),
}

impl DeliveryError {
    /// Whether another attempt may succeed: the receiver's side failed, or the server's
    /// environment may be fixed; a mistake in the configuration stays one.
    pub fn retried(&self) -> bool {
        !matches!(
            self,
            DeliveryError::UnknownChannel(_)
                | DeliveryError::NotHttp { .. }
                | DeliveryError::NoUrl { .. }
                | DeliveryError::Config(_)
                | DeliveryError::Template(_)
                | DeliveryError::Encode(_)
        )
    }
}

/// Where an outbox row goes, from its `channel` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `webhook:<channel>`: POST to the URL the runtime put in the payload (`url`).
    Webhook { channel: String },
    /// `role:<queue>`, `subject`, `holder`: an inbox item for that recipient.
    Inbox { recipient: String },
}

/// Reads a channel name. Unknown forms are an error naming the channel (the row is marked dead).
pub fn route(channel: &str) -> Result<Route, DeliveryError> {
    if let Some(name) = channel.strip_prefix("webhook:") {
        return Ok(Route::Webhook {
            channel: name.to_string(),
        });
    }
    if let Some(queue) = channel.strip_prefix("role:")
        && !queue.is_empty()
    {
        return Ok(Route::Inbox {
            recipient: queue.to_string(),
        });
    }
    match channel {
        crate::auth::SUBJECT_INBOX | "holder" => Ok(Route::Inbox {
            recipient: channel.to_string(),
        }),
        _ => Err(DeliveryError::UnknownChannel(channel.to_string())),
    }
}

/// The JSON document POSTed to a webhook: the runtime's payload without its `url`, plus the
/// de-duplication `id`, the `channel` and the `attempt` number.
pub fn webhook_body(dedup_key: &str, channel: &str, attempt: u32, payload: &Json) -> Json {
    let mut doc = match payload {
        Json::Object(map) => map.clone(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("payload".into(), other.clone());
            m
        }
    };
    doc.remove("url");
    doc.insert("id".into(), json!(dedup_key));
    doc.insert("channel".into(), json!(channel));
    doc.insert("attempt".into(), json!(attempt));
    Json::Object(doc)
}

/// Sends webhooks, robot messages and SMS requests. One per server; cheap to clone.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    secret: Vec<u8>,
    /// Where `secret_env` and `url_env` of a channel are read.
    env: channels::EnvLookup,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

/// A reqwest error as the delivery state says it.
fn request_error(e: reqwest::Error) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::TimedOut
    } else if e.is_connect() {
        DeliveryError::CannotConnect
    } else {
        DeliveryError::Request(e)
    }
}

impl WebhookSender {
    /// `timeout` bounds one attempt; the receiver must answer 2xx within it.
    pub fn new(
        secret: impl Into<Vec<u8>>,
        timeout: std::time::Duration,
    ) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(DeliveryError::Client)?;
        Ok(WebhookSender {
            client,
            secret: secret.into(),
            env: channels::process_env(),
        })
    }

    /// The same sender reading channels' `secret_env` and `url_env` through `env` instead of
    /// the server's environment (tests).
    pub fn with_env(mut self, env: channels::EnvLookup) -> Self {
        self.env = env;
        self
    }

    /// Sends the notice of outbox row `msg` to `channel`, whose configuration entry is `entry`
    /// (a URL or a mapping, [`yimen_dsl::channel`]); `now` gives DingTalk's timestamp.
    pub async fn send_channel(
        &self,
        channel: &str,
        entry: Option<&Json>,
        msg: &crate::engine::OutboxMessage,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<(), DeliveryError> {
        use yimen_dsl::channel::{Channel, Target};
        let parsed = match entry {
            Some(map @ Json::Object(_)) => {
                yimen_dsl::channel::parse(channel, map).map_err(|p| {
                    DeliveryError::Config(
                        p.into_iter()
                            .map(|p| p.message)
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                })?
            }
            // Text (or nothing): the generic webhook, as before channels had kinds.
            _ => {
                let url = webhook_url(channel, &msg.payload)?;
                let body = webhook_body(&msg.dedup_key, &msg.channel, attempt, &msg.payload);
                return self.send(&url, &msg.dedup_key, &body).await;
            }
        };
        let text = msg
            .payload
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let notice = channels::Notice {
            text,
            dedup_key: &msg.dedup_key,
            to: msg.payload.get("to"),
            env: &self.env,
        };
        match &parsed {
            Channel::Webhook { target } => {
                let url = match target {
                    Target::Url(url) => url.clone(),
                    Target::Env(var) => {
                        (self.env)(var).ok_or_else(|| DeliveryError::MissingEnv {
                            channel: channel.to_string(),
                            var: var.clone(),
                        })?
                    }
                };
                let body = webhook_body(&msg.dedup_key, &msg.channel, attempt, &msg.payload);
                self.send(&url, &msg.dedup_key, &body).await
            }
            Channel::Sms { .. } => {
                let req = channels::sms_request(channel, &parsed, &notice)?;
                let method = match req.method {
                    yimen_dsl::channel::SmsMethod::Get => reqwest::Method::GET,
                    yimen_dsl::channel::SmsMethod::Post => reqwest::Method::POST,
                    yimen_dsl::channel::SmsMethod::Put => reqwest::Method::PUT,
                };
                let mut builder = self.client.request(method, &req.url);
                for (name, value) in &req.headers {
                    let name =
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            DeliveryError::Config(format!("`{name}` is not a header name"))
                        })?;
                    let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                        DeliveryError::Template(format!("{name}: the value is not a header value"))
                    })?;
                    builder = builder.header(name, value);
                }
                if let Some(body) = req.body {
                    builder = builder.body(body);
                }
                let response = builder.send().await.map_err(request_error)?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError::Status(status.as_u16()))
                }
            }
            Channel::Wecom { .. } | Channel::Dingtalk { .. } => {
                let req =
                    channels::robot_request(channel, &parsed, &notice, now.timestamp_millis())?;
                let bytes = serde_json::to_vec(&req.body).map_err(DeliveryError::Encode)?;
                let response = self
                    .client
                    .post(&req.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes)
                    .send()
                    .await
                    .map_err(request_error)?;
                let status = response.status();
                if !status.is_success() {
                    return Err(DeliveryError::Status(status.as_u16()));
                }
                let answer = response.bytes().await.map_err(request_error)?;
                channels::robot_answer(req.robot, &answer)
            }
        }
    }

    /// POSTs `body` to `url`. `Err` carries a short reason for the delivery state (never the body).
    pub async fn send(&self, url: &str, dedup_key: &str, body: &Json) -> Result<(), DeliveryError> {
        let bytes = serde_json::to_vec(body).map_err(DeliveryError::Encode)?;
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&self.secret, &bytes))
            .header(DELIVERY_HEADER, dedup_key)
            .body(bytes)
            .send()
            .await
            .map_err(request_error)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status.as_u16()))
        }
    }
}

/// What a failure list shows of a row's destination: the channel's kind (`webhook`, `wecom`,
/// `dingtalk`, `sms`; `None` for inbox notices) and its URL as [`yimen_dsl::channel::Channel::shown_url`]
/// shows it (a robot's without the key in its query).
pub fn describe(channel: &str, payload: &Json) -> (Option<&'static str>, Option<String>) {
    if !channel.starts_with("webhook:") {
        return (None, None);
    }
    match payload.get("url") {
        Some(Json::String(url)) => (Some("webhook"), Some(url.clone())),
        Some(entry @ Json::Object(map)) => match yimen_dsl::channel::parse(channel, entry) {
            Ok(c) => (Some(c.kind()), Some(c.shown_url())),
            Err(_) => (
                None,
                map.get("url")
                    .and_then(Json::as_str)
                    .and_then(|u| u.split(['?', '{']).next())
                    .map(str::to_string),
            ),
        },
        _ => (Some("webhook"), None),
    }
}

/// The URL a webhook payload names, or a message saying what to configure.
pub fn webhook_url(channel: &str, payload: &Json) -> Result<String, DeliveryError> {
    match payload.get("url") {
        Some(Json::String(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(url.clone())
        }
        Some(Json::String(url)) => Err(DeliveryError::NotHttp {
            channel: channel.to_string(),
            url: url.clone(),
        }),
        _ => Err(DeliveryError::NoUrl {
            channel: channel.to_string(),
        }),
    }
}

/// Takes due rows from the outbox and delivers them. One per server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Delivery {
    engine: crate::engine::Engine,
    sender: WebhookSender,
    backoff: Backoff,
    /// How long a claimed row stays hidden from other claimers (longer than a webhook attempt).
    lease: Duration,
    batch: u32,
    /// Per lane (inbox notices, webhooks): held by each run of that lane of this server's
    /// clones for its whole run, so a run that finds no row to claim has waited for the rows
    /// another run (the background loop) claimed to be handled: when [`Delivery::deliver_due`]
    /// returns, every row due when it began is delivered, rescheduled or given up (unless
    /// another server holds it).
    running: std::sync::Arc<[tokio::sync::Mutex<()>; 2]>,
}

/// A delivery lane: inbox notices, or webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Inbox,
    Webhooks,
}

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::Inbox => 0,
            Lane::Webhooks => 1,
        }
    }
}

impl Delivery {
    pub fn new(engine: crate::engine::Engine, sender: WebhookSender, backoff: Backoff) -> Self {
        Delivery {
            engine,
            sender,
            backoff,
            lease: Duration::seconds(120),
            batch: 64,
            running: std::sync::Arc::new([
                tokio::sync::Mutex::new(()),
                tokio::sync::Mutex::new(()),
            ]),
        }
    }

    /// Delivers every row due now, the inbox notices and then the webhooks. Returns how many
    /// rows were handled (delivered, rescheduled or given up).
    pub async fn deliver_due(&self) -> Result<usize, crate::error::EngineError> {
        Ok(self.deliver_lane(Lane::Inbox).await? + self.deliver_lane(Lane::Webhooks).await?)
    }

    /// Delivers every row of `lane` due now; the rows of one batch are sent concurrently.
    /// Runs of one lane of one server go one at a time: a run waits for the one under way
    /// (which may hold rows it claimed) to end first.
    pub async fn deliver_lane(&self, lane: Lane) -> Result<usize, crate::error::EngineError> {
        let _one_at_a_time = self.running[lane.index()].lock().await;
        let mut handled = 0;
        loop {
            let now = self.engine.clock().now();
            let batch = self
                .engine
                .outbox_claim_lane(now, self.batch, self.lease, Some(lane == Lane::Webhooks))
                .await?;
            if batch.is_empty() {
                return Ok(handled);
            }
            handled += batch.len();
            let mut sends = tokio::task::JoinSet::new();
            for msg in batch {
                let this = self.clone();
                sends.spawn(async move { this.deliver_one(msg).await });
            }
            while let Some(done) = sends.join_next().await {
                match done {
                    Ok(Ok(())) => {}
                    // The row stays claimed until its lease ends, then is tried again.
                    Ok(Err(e)) => tracing::warn!("outbox delivery: {e}"),
                    Err(e) => tracing::warn!("outbox delivery task failed: {e}"),
                }
            }
        }
    }

    async fn deliver_one(
        &self,
        msg: crate::engine::OutboxMessage,
    ) -> Result<(), crate::error::EngineError> {
        let attempt = u32::try_from(msg.attempts.max(1)).unwrap_or(u32::MAX);
        let outcome = match route(&msg.channel) {
            Err(e) => Err((e, false)),
            Ok(Route::Inbox { recipient }) => {
                crate::inbox::deliver(&self.engine, &msg, &recipient).await?;
                Ok(())
            }
            Ok(Route::Webhook { channel }) => {
                let now = self.engine.clock().now();
                self.sender
                    .send_channel(&channel, msg.payload.get("url"), &msg, attempt, now)
                    .await
                    .map_err(|e| {
                        let retry = e.retried();
                        (e, retry)
                    })
            }
        };
        match outcome {
            Ok(()) => {
                self.engine.outbox_delivered(&msg.id).await?;
            }
            Err((error, retry)) => {
                let now = self.engine.clock().now();
                let at = if retry {
                    self.backoff.retry_at(attempt, now)
                } else {
                    None
                };
                // Once per row: at its WARN_AFTER-th failure, or when it is given up before.
                // The URL is configuration; the payload (case data) is never logged.
                let (kind, url) = describe(&msg.channel, &msg.payload);
                let url = url.as_deref().unwrap_or("-");
                let kind = kind.unwrap_or("inbox");
                match at {
                    Some(next) if attempt == WARN_AFTER => tracing::warn!(
                        id = %msg.id, channel = %msg.channel, kind, url,
                        "notification keeps failing ({attempt} attempts): {error}; \
                         next attempt at {next}; `yimen outbox failed` lists it"
                    ),
                    None if attempt <= WARN_AFTER => tracing::warn!(
                        id = %msg.id, channel = %msg.channel, kind, url,
                        "notification given up after {attempt} attempt(s): {error}"
                    ),
                    None => tracing::error!(
                        id = %msg.id, channel = %msg.channel, kind, url,
                        "notification given up after {attempt} attempts: {error}"
                    ),
                    Some(_) => {
                        tracing::debug!(id = %msg.id, attempt, "notification failed: {error}")
                    }
                }
                self.engine
                    .outbox_failed(&msg.id, &error.to_string(), at)
                    .await?;
            }
        }
        Ok(())
    }

    /// Delivers until `shutdown`: every `poll`, and at once when `wake` is notified; each lane
    /// in a loop of its own.
    pub async fn run_loop(
        self,
        wake: std::sync::Arc<tokio::sync::Notify>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        poll: std::time::Duration,
    ) {
        let lanes = [
            std::sync::Arc::new(tokio::sync::Notify::new()),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        ];
        let forward = {
            let lanes = lanes.clone();
            let mut shutdown = shutdown.clone();
            async move {
                while !*shutdown.borrow() {
                    tokio::select! {
                        _ = wake.notified() => lanes.iter().for_each(|l| l.notify_one()),
                        _ = shutdown.changed() => {}
                    }
                }
            }
        };
        let inbox = self
            .clone()
            .lane_loop(Lane::Inbox, lanes[0].clone(), shutdown.clone(), poll);
        let webhooks = self.lane_loop(Lane::Webhooks, lanes[1].clone(), shutdown.clone(), poll);
        tokio::join!(forward, inbox, webhooks);
    }

    async fn lane_loop(
        self,
        lane: Lane,
        wake: std::sync::Arc<tokio::sync::Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        poll: std::time::Duration,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = self.deliver_lane(lane).await {
                tracing::warn!("outbox delivery: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"other", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }

    #[test]
    fn backoff_doubles_then_caps_then_gives_up() {
        let b = Backoff {
            first: Duration::seconds(10),
            max_delay: Duration::seconds(60),
            max_attempts: 5,
        };
        let now: DateTime<Utc> = "2026-09-28T01:00:00Z".parse().unwrap();
        let delays: Vec<_> = (1..=5)
            .map(|a| b.retry_at(a, now).map(|t| (t - now).num_seconds()))
            .collect();
        assert_eq!(delays, vec![Some(10), Some(20), Some(40), Some(60), None]);
        // Huge attempt numbers do not overflow.
        let big = Backoff {
            max_attempts: u32::MAX,
            ..b
        };
        assert_eq!(big.retry_at(1000, now), Some(now + Duration::seconds(60)));
    }

    #[test]
    fn channels_route_to_webhooks_or_inboxes() {
        assert_eq!(
            route("webhook:ledger_hook").unwrap(),
            Route::Webhook {
                channel: "ledger_hook".into()
            }
        );
        assert_eq!(
            route("role:audit_office").unwrap(),
            Route::Inbox {
                recipient: "audit_office".into()
            }
        );
        assert_eq!(
            route("subject").unwrap(),
            Route::Inbox {
                recipient: "subject".into()
            }
        );
        let err = route("sms").unwrap_err().to_string();
        assert!(err.contains("`sms`"), "{err}");
        assert!(route("role:").is_err());
    }

    #[test]
    fn webhook_body_drops_the_url_and_adds_the_dedup_id() {
        let payload = json!({"instance": "i1", "message": "late", "url": "https://x/hook"});
        let body = webhook_body("i1:o1", "webhook:h", 3, &payload);
        assert_eq!(
            body,
            json!({"instance": "i1", "message": "late", "id": "i1:o1", "channel": "webhook:h", "attempt": 3})
        );
        assert_eq!(webhook_url("h", &payload).unwrap(), "https://x/hook");
        assert!(webhook_url("h", &json!({"url": "ftp://x"})).is_err());
        let missing = webhook_url("h", &json!({})).unwrap_err().to_string();
        assert!(missing.contains("no URL"), "{missing}");
    }
}
