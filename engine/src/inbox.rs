//! The inbox: notifications for roles (and the person a case concerns, and the holder of a late
//! task) that people list and acknowledge. Items are written by outbox delivery ([`crate::outbox`]), one per
//! outbox row; an escalation's item closes itself when the late task is finished.

use crate::engine::{Engine, OutboxMessage};
use crate::error::EngineError;
use crate::store::timers::{self as sql, InboxRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

/// An inbox item as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    pub id: String,
    /// Queue name (`audit_office`, `department:civil_affairs`), `subject` (the person the case
    /// concerns) or `worker:<id>`.
    pub recipient: String,
    pub instance_id: String,
    pub node: Option<String>,
    /// The late task of an escalation.
    pub task_id: Option<String>,
    /// The clock of a clock escalation.
    pub clock: Option<String>,
    /// Escalation level (0 = reminder before due); `None` for a plain notice.
    pub level: Option<i64>,
    pub message: String,
    /// `open`, `acked` or `closed` (the late task was finished).
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub acked_by: Option<String>,
    /// The id of the principal (user or token) who acknowledged it.
    pub acked_by_id: Option<String>,
    pub acked_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl From<InboxRow> for InboxItem {
    fn from(r: InboxRow) -> Self {
        InboxItem {
            id: r.id,
            recipient: r.recipient,
            instance_id: r.instance_id,
            node: r.node,
            task_id: r.task_id,
            clock: r.clock,
            level: r.level,
            message: r.message,
            state: r.state,
            created_at: time(r.created_at),
            acked_by: r.acked_by,
            acked_by_id: r.acked_by_id,
            acked_at: r.acked_at.map(time),
            closed_at: r.closed_at.map(time),
        }
    }
}

/// Which items to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxState {
    Open,
    Acked,
    Closed,
}

impl InboxState {
    pub fn parse(s: &str) -> Option<InboxState> {
        match s {
            "open" => Some(InboxState::Open),
            "acked" => Some(InboxState::Acked),
            "closed" => Some(InboxState::Closed),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            InboxState::Open => "open",
            InboxState::Acked => "acked",
            InboxState::Closed => "closed",
        }
    }
}

/// Closes escalation items whose late task is finished, or whose clock stopped (or whose
/// instance ended); returns how many.
pub async fn close_finished(engine: &Engine) -> Result<u64, EngineError> {
    let now = engine.clock().now().timestamp_millis();
    let pool = engine.pool();
    let mut closed = sql::close_finished(pool, now).await?;
    let items = sql::open_clock_items(pool).await?;
    let mut done = Vec::new();
    let mut states: std::collections::HashMap<String, Option<(String, Json)>> =
        std::collections::HashMap::new();
    for item in items {
        if !states.contains_key(&item.instance_id) {
            let state =
                sql::instance_state(pool, &item.instance_id)
                    .await?
                    .map(|(status, state)| {
                        (status, serde_json::from_str(&state).unwrap_or(Json::Null))
                    });
            states.insert(item.instance_id.clone(), state);
        }
        let running = match states.get(&item.instance_id).and_then(Option::as_ref) {
            Some((status, state)) if status == "running" || status == "incident" => item
                .clock
                .as_deref()
                .and_then(|c| state.pointer(&format!("/clocks/{c}/running")))
                .and_then(Json::as_bool)
                .unwrap_or(false),
            _ => false,
        };
        if !running {
            done.push(item.id);
        }
    }
    closed += sql::close_items(pool, &done, now).await?;
    Ok(closed)
}

/// Items of `recipient`, oldest first (closing finished escalations first).
pub async fn list(
    engine: &Engine,
    recipient: &str,
    state: Option<InboxState>,
    limit: u32,
) -> Result<Vec<InboxItem>, EngineError> {
    close_finished(engine).await?;
    let rows = sql::list_inbox(
        engine.pool(),
        recipient,
        state.map(InboxState::as_str),
        i64::from(limit.clamp(1, 1000)),
    )
    .await?;
    Ok(rows.into_iter().map(InboxItem::from).collect())
}

/// Every item of an instance (for its timeline and tests).
pub async fn of_instance(engine: &Engine, instance: &str) -> Result<Vec<InboxItem>, EngineError> {
    close_finished(engine).await?;
    let rows = sql::inbox_of(engine.pool(), instance).await?;
    Ok(rows.into_iter().map(InboxItem::from).collect())
}

/// One item.
pub async fn get(engine: &Engine, id: &str) -> Result<InboxItem, EngineError> {
    close_finished(engine).await?;
    sql::inbox_item(engine.pool(), id)
        .await?
        .map(InboxItem::from)
        .ok_or_else(|| EngineError::not_found(format!("inbox item {id}")))
}

/// Acknowledges an item. Acknowledging twice answers the item as it is; a closed item cannot
/// be acknowledged (409: the late task was already finished).
/// `actor`: the principal as authenticated; its name and id are recorded.
pub async fn ack(
    engine: &Engine,
    id: &str,
    actor: impl Into<crate::actor::Actor>,
) -> Result<InboxItem, EngineError> {
    let actor = actor.into();
    close_finished(engine).await?;
    let now = engine.clock().now().timestamp_millis();
    let changed = sql::ack_inbox(engine.pool(), id, &actor.name, &actor.id, now).await?;
    let item = sql::inbox_item(engine.pool(), id)
        .await?
        .ok_or_else(|| EngineError::not_found(format!("inbox item {id}")))?;
    if changed == 0 && item.state == "closed" {
        return Err(EngineError::conflict(format!(
            "inbox item {id} is closed: its task was finished; nothing to acknowledge"
        )));
    }
    Ok(item.into())
}

/// Writes the inbox item for a delivered notification. `false`: it was already there.
pub(crate) async fn deliver(
    engine: &Engine,
    msg: &OutboxMessage,
    recipient: &str,
) -> Result<bool, EngineError> {
    let context = msg.payload.get("context");
    let field = |k: &str| context.and_then(|c| c.get(k));
    let task_id = field("task").and_then(Json::as_str).map(str::to_string);
    let level = field("level").and_then(Json::as_i64);
    // A clock escalation names no task; its timer names the clock.
    let clock = match (level, &task_id, field("timer").and_then(Json::as_str)) {
        (Some(_), None, Some(timer)) => sql::timer_payload(engine.pool(), timer)
            .await?
            .and_then(|p| serde_json::from_str::<Json>(&p).ok())
            .and_then(|p| p.get("clock").and_then(Json::as_str).map(str::to_string)),
        _ => None,
    };
    let recipient = if recipient == "holder" {
        match field("holder").and_then(Json::as_str) {
            Some(worker) => format!("worker:{worker}"),
            // Nobody holds the task yet: its queue is told instead.
            None => match &task_id {
                Some(t) => sql::task_queue(engine.pool(), t)
                    .await?
                    .unwrap_or_else(|| "holder".into()),
                None => "holder".into(),
            },
        }
    } else {
        recipient.to_string()
    };
    let row = InboxRow {
        id: msg.id.clone(),
        recipient,
        instance_id: msg.instance_id.clone(),
        node: msg
            .payload
            .get("node")
            .and_then(Json::as_str)
            .map(str::to_string),
        task_id,
        clock,
        level,
        message: msg
            .payload
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        state: "open".into(),
        created_at: msg.created_at.timestamp_millis(),
        acked_by: None,
        acked_by_id: None,
        acked_at: None,
        closed_at: None,
    };
    Ok(sql::insert_inbox(engine.pool(), &row).await?)
}

/// Escalations not yet closed (for reports).
pub async fn open_escalations(engine: &Engine) -> Result<Vec<InboxItem>, EngineError> {
    close_finished(engine).await?;
    let rows = sql::open_escalations(engine.pool()).await?;
    Ok(rows.into_iter().map(InboxItem::from).collect())
}
