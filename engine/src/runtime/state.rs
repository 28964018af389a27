//! The durable state of one instance (stored as JSON on its row) and the changes one event makes.

use super::due::{Due, DueDates};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use yimen_dsl::model::DurationUnit;

/// Where an instance's tokens are and what they wait for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub tokens: Vec<Token>,
    /// Join node → predecessor nodes whose token has arrived.
    #[serde(default)]
    pub joins: BTreeMap<String, BTreeSet<String>>,
    /// Node results visible to expressions as `<node>.<field>` (`completed_by`, `outcome`,
    /// `outcomes`, `result`, `instance`).
    #[serde(default)]
    pub results: BTreeMap<String, Map<String, Json>>,
    #[serde(default)]
    pub clocks: BTreeMap<String, ClockState>,
    /// Who started the instance, as authenticated (`assignee started_by`); absent in
    /// instances started before the engine recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<crate::actor::Actor>,
}

/// A token waiting at a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub node: String,
    pub wait: Wait,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// Open tasks of a task node (several for a for-each); `done` collects finished ones.
    Tasks {
        pending: Vec<String>,
        #[serde(default)]
        done: Vec<Done>,
    },
    Message {
        name: String,
        timer: Option<String>,
    },
    Timer {
        timer: String,
    },
    Child {
        instance: String,
    },
    /// The node failed (an expression could not be evaluated); `resolve_incident` retries it.
    Incident {
        from: Option<String>,
        message: String,
    },
}

/// One finished task of a (for-each) task node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub task: String,
    pub outcome: String,
    pub completed_by: String,
    /// Who completed it ([`crate::actor::Actor::key`]); absent in states written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by_key: Option<String>,
}

/// A named clock of the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// Due time (unix millis) while running.
    pub due_at: Option<i64>,
    /// Remaining office minutes while paused.
    pub remaining_minutes: Option<i64>,
    pub running: bool,
    pub provisional: bool,
    /// Pending timers of its ladder.
    #[serde(default)]
    pub timers: Vec<String>,
    /// What `due_at` was computed from, so that it can be computed again when calendar data is
    /// added. `None` in states written before it was kept (those clocks are not recomputed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<ClockBasis>,
    /// Task deadlines that hang on this clock (`deadline ... clock NAME`), with their pending
    /// timers: suspended while the clock is paused, rescheduled when it resumes or is extended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bound: Vec<BoundDeadline>,
}

/// The inputs of a clock's due time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClockBasis {
    /// `amount` `unit` after `from` (the clock was started).
    Add {
        from: i64,
        amount: i64,
        unit: DurationUnit,
        calendar: Option<String>,
    },
    /// `minutes` of office time after `from` (resumed with the time left when it was paused;
    /// the minutes themselves are kept as counted at the pause).
    OfficeMinutes {
        from: i64,
        minutes: i64,
        calendar: Option<String>,
    },
    /// `amount` `unit` after the due time of `base` (extended while running).
    Extended {
        base: Box<ClockBasis>,
        amount: i64,
        unit: DurationUnit,
        calendar: Option<String>,
    },
}

impl ClockBasis {
    /// The due time these inputs give with `due` (the calendars as loaded now).
    pub fn compute(&self, due: &dyn DueDates) -> Due {
        let time = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
        match self {
            ClockBasis::Add {
                from,
                amount,
                unit,
                calendar,
            } => due.add(calendar.as_deref(), time(*from), *amount, *unit),
            ClockBasis::OfficeMinutes {
                from,
                minutes,
                calendar,
            } => due.add_office_minutes(calendar.as_deref(), time(*from), *minutes),
            ClockBasis::Extended {
                base,
                amount,
                unit,
                calendar,
            } => {
                let first = base.compute(due);
                let then = due.add(calendar.as_deref(), first.at, *amount, *unit);
                Due {
                    at: then.at,
                    provisional: first.provisional || then.provisional,
                    explanation: format!("{}; extended: {}", first.explanation, then.explanation),
                }
            }
        }
    }
}

/// A task deadline bound to a named clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundDeadline {
    pub task: String,
    pub node: String,
    /// The for-each item of the task, for the ladder's expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Json>,
    /// Pending timers of its ladder (empty while suspended).
    #[serde(default)]
    pub timers: Vec<String>,
}

/// Instance status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Completed,
    Cancelled,
    /// Running, but a node failed; an operator must resolve it.
    Incident,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::Incident => "incident",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "running" => Status::Running,
            "completed" => Status::Completed,
            "cancelled" => Status::Cancelled,
            "incident" => Status::Incident,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled)
    }
}

/// A task to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: String,
    pub node: String,
    pub label: Option<String>,
    pub queue: String,
    pub org_unit: Option<String>,
    pub assignee: Option<String>,
    /// Who the assignee is ([`crate::actor::Actor::key`]); `None` when an expression names it
    /// or the actor it comes from was recorded without one.
    pub assignee_key: Option<String>,
    pub item: Option<Json>,
    pub due_at: Option<i64>,
}

/// What a timer is for. Stored (the timer row's `kind`) and serialized as its lowercase
/// name: `wait`, `message_timeout`, `escalation`, `clock_escalation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The duration of a `wait` node.
    Wait,
    /// The timeout of a message wait.
    MessageTimeout,
    /// A rung of the escalation ladder of a task's deadline.
    Escalation,
    /// A rung of the escalation ladder of a named clock.
    ClockEscalation,
}

/// A timer kind this engine does not know (a row written by another version, or changed by
/// hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timer kind `{0}`")]
pub struct UnknownTimerKind(pub String);

impl TimerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Wait => "wait",
            TimerKind::MessageTimeout => "message_timeout",
            TimerKind::Escalation => "escalation",
            TimerKind::ClockEscalation => "clock_escalation",
        }
    }

    pub fn parse(s: &str) -> Result<TimerKind, UnknownTimerKind> {
        Ok(match s {
            "wait" => TimerKind::Wait,
            "message_timeout" => TimerKind::MessageTimeout,
            "escalation" => TimerKind::Escalation,
            "clock_escalation" => TimerKind::ClockEscalation,
            other => return Err(UnknownTimerKind(other.to_string())),
        })
    }
}

impl std::str::FromStr for TimerKind {
    type Err = UnknownTimerKind;
    fn from_str(s: &str) -> Result<TimerKind, UnknownTimerKind> {
        TimerKind::parse(s)
    }
}

impl std::fmt::Display for TimerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timer to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimer {
    pub id: String,
    pub kind: TimerKind,
    pub node: String,
    pub task_id: Option<String>,
    pub due_at: i64,
    pub payload: Json,
}

/// A history entry to append (hash chained by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewHistory {
    pub actor: crate::actor::Actor,
    pub node: Option<String>,
    pub kind: String,
    pub text: String,
    pub data: Json,
}

/// An outgoing notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub id: String,
    /// `role:<queue>`, `subject`, `holder`, `webhook:<channel>`.
    pub channel: String,
    pub dedup_key: String,
    pub payload: Json,
}

/// A rendered document.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    pub id: String,
    pub name: String,
    pub label: Option<String>,
    pub public: bool,
    pub content: String,
}

/// A linked process to start in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    pub id: String,
    pub process: String,
    pub vars: Map<String, Json>,
    pub node: String,
    pub wait: bool,
}

/// Everything one event changes; the store writes it in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Changeset {
    pub status: Status,
    pub result: Option<String>,
    pub incident: Option<String>,
    pub vars: Map<String, Json>,
    pub state: RunState,
    pub provisional: bool,
    pub new_tasks: Vec<NewTask>,
    pub cancel_tasks: Vec<String>,
    pub new_timers: Vec<NewTimer>,
    pub cancel_timers: Vec<String>,
    /// Due times of existing tasks that changed (a deadline bound to a clock that paused,
    /// resumed or was extended); `None`: no due time while suspended.
    pub task_due: Vec<(String, Option<i64>)>,
    pub history: Vec<NewHistory>,
    pub outbox: Vec<NewOutbox>,
    pub documents: Vec<NewDocument>,
    pub children: Vec<ChildStart>,
    /// Deadline signals given by the timers this event fired.
    pub signals: Vec<NewSignal>,
    /// What an office that oversees did about the case.
    pub actions: Vec<NewAction>,
}

/// An action of an office that oversees a case.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub id: String,
    /// `urge` | `criticism` | `referral`.
    pub kind: String,
    pub text: String,
    /// The queue told in its inbox (`urge`: the queue that holds the case).
    pub queue: Option<String>,
    /// Its organisation unit (of the task that queue holds).
    pub org_unit: Option<String>,
    /// Who acted, as the record names them, and their principal key.
    pub actor: String,
    pub actor_key: Option<String>,
}

/// The light a deadline signal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Light {
    /// A warning rung before the due time.
    Yellow,
    /// The due time passed.
    Red,
}

impl Light {
    pub fn as_str(self) -> &'static str {
        match self {
            Light::Yellow => "yellow",
            Light::Red => "red",
        }
    }

    pub fn parse(s: &str) -> Option<Light> {
        match s {
            "yellow" => Some(Light::Yellow),
            "red" => Some(Light::Red),
            _ => None,
        }
    }
}

/// A deadline signal, recorded once: its id is the id of the timer that gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSignal {
    pub id: String,
    pub node: String,
    pub task_id: Option<String>,
    pub clock: Option<String>,
    pub light: Light,
    /// The escalation level of the rung (0: a warning, or the due time passing without one).
    pub level: i64,
    /// The due time the signal is about (unix millis).
    pub due_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::TimerKind;

    #[test]
    fn timer_kinds_read_back_from_their_stored_names() {
        for kind in [
            TimerKind::Wait,
            TimerKind::MessageTimeout,
            TimerKind::Escalation,
            TimerKind::ClockEscalation,
        ] {
            assert_eq!(kind.as_str().parse::<TimerKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
            assert_eq!(
                serde_json::from_value::<TimerKind>(serde_json::json!(kind.as_str())).unwrap(),
                kind
            );
        }
        let unknown = TimerKind::parse("reminder").unwrap_err();
        assert_eq!(unknown.to_string(), "unknown timer kind `reminder`");
    }
}
