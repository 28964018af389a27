//! Executes a checked model. [`advance`] is a pure step function: given the model, an
//! instance's stored state and one event, it returns the [`Changeset`] (new state, tasks, timers,
//! history, outbox, documents, children) that the store writes in one transaction.
//!
//! Semantics worth knowing:
//! - An `end` node terminates the whole instance (other tokens, tasks and timers are cancelled).
//! - A join goes on when a token has arrived from every predecessor node.
//! - A for-each task node goes on when every item's task completed; it takes the next node of
//!   the first outcome (in declaration order) any item chose; `outcomes(node)` lists them all.
//! - An expression that fails in an automatic step parks its token as an incident on the
//!   instance; `resolve_incident` retries the node.
//! - Automatic steps have a budget per event ([`STEP_BUDGET`]); a loop that exhausts it is an
//!   incident, not a hang.

mod actions;
mod clocks;
pub mod due;
mod error;
mod messages;
pub mod state;
mod tasks;
mod timers;
mod vars;

pub use error::RunError;
use vars::*;
pub use vars::{InputError, enum_values, start_vars};

use crate::actor::Actor;
use crate::error::{EngineError, Problem};
use crate::limits::Limits;
use chrono::{DateTime, Utc};
use due::DueDates;
use serde_json::{Map, Value as Json, json};
use state::*;
use std::collections::{BTreeMap, VecDeque};
use yimen_dsl::eval::{Scope, eval};
use yimen_dsl::model::{
    Action, Assignee, ClockOp, Deadline, EnumSource, EscalationWhen, Expr, NodeKind, NotifyTarget,
    PersonalKind, Process, QueueRef, Task, Type, VarDecl,
};
use yimen_dsl::value::Value;

/// Automatic steps one event may run before the instance is parked as an incident.
pub const STEP_BUDGET: usize = 1_000;

/// What an instance's deployment brings besides the model.
#[derive(Debug, Clone, Default)]
pub struct DeploymentData {
    /// Parsed configuration YAML (`config.x`).
    pub config: Json,
    /// Related files by path (templates).
    pub files: BTreeMap<String, String>,
}

/// The stored part of an instance that the runtime reads.
#[derive(Debug, Clone)]
pub struct InstanceData {
    pub id: String,
    /// When the case was started: its date is the date ages are counted at.
    pub created_at: DateTime<Utc>,
    pub status: Status,
    pub vars: Map<String, Json>,
    pub state: RunState,
    pub provisional: bool,
}

/// A task row the event refers to.
#[derive(Debug, Clone)]
pub struct TaskRef {
    pub id: String,
    pub node: String,
    pub item: Option<Json>,
    pub assignee: Option<String>,
    pub locked_by: Option<String>,
}

/// A timer row that fell due.
#[derive(Debug, Clone)]
pub struct TimerRef {
    pub id: String,
    /// The row's kind as stored; read as a [`TimerKind`] when the event is handled (a kind
    /// this engine does not know is recorded and ignored).
    pub kind: String,
    pub node: String,
    pub task: Option<TaskRef>,
    pub payload: Json,
}

/// One external event.
#[derive(Debug, Clone)]
pub enum Event {
    Start {
        actor: Actor,
    },
    TaskCompleted {
        task: TaskRef,
        outcome: Option<String>,
        vars: Map<String, Json>,
        actor: Actor,
    },
    Message {
        name: String,
        payload: Map<String, Json>,
        actor: Actor,
    },
    Timer(TimerRef),
    ChildEnded {
        child: String,
        result: Option<String>,
        status: Status,
    },
    Cancel {
        reason: String,
        actor: Actor,
    },
    /// Retry nodes parked as incidents.
    Resolve {
        actor: Actor,
    },
    /// An office that oversees acts on the case (urges the queue that holds it, a notice of
    /// criticism, a referral): recorded on the timeline; a queue named is told in its inbox.
    Oversee {
        action: NewAction,
        actor: Actor,
    },
}

/// How an event is held to the [`Limits`].
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub limits: Limits,
    /// A limit exceeded refuses the event (422, nothing written): the caller's own request.
    /// Otherwise (a timer, a follow-on event) it is an incident like any failing step.
    pub refuse: bool,
}

/// Advances `instance` by `event`. `Err` means the event is refused and nothing changes
/// (bad completion variables, not waiting for that message, a limit exceeded while `refuse`);
/// an expression failing inside an automatic step is not an error but an incident in the
/// changeset.
pub fn advance(
    model: &Process,
    data: &DeploymentData,
    instance: &InstanceData,
    event: Event,
    now: DateTime<Utc>,
    due: &dyn DueDates,
    bounds: Bounds,
) -> Result<Changeset, EngineError> {
    let mut run = Run {
        model,
        data,
        due,
        now,
        bounds,
        refused: None,
        instance_id: &instance.id,
        created_at: instance.created_at,
        actor: Actor::default(),
        item: None,
        cs: Changeset {
            status: instance.status,
            result: None,
            incident: None,
            vars: instance.vars.clone(),
            state: instance.state.clone(),
            provisional: instance.provisional,
            new_tasks: Vec::new(),
            cancel_tasks: Vec::new(),
            new_timers: Vec::new(),
            cancel_timers: Vec::new(),
            task_due: Vec::new(),
            history: Vec::new(),
            outbox: Vec::new(),
            documents: Vec::new(),
            signals: Vec::new(),
            actions: Vec::new(),
            children: Vec::new(),
        },
        ready: VecDeque::new(),
        last_due: Json::Null,
    };
    if instance.status.is_terminal() && !matches!(event, Event::ChildEnded { .. }) {
        return Err(EngineError::conflict(format!(
            "instance {} is {}",
            instance.id,
            instance.status.as_str()
        )));
    }
    let parked = |state: &RunState| {
        state
            .tokens
            .iter()
            .any(|t| matches!(t.wait, Wait::Incident { .. }))
    };
    // An incident of a failed task (no parked token) stays until an operator resolves it.
    let had_parked = parked(&instance.state);
    run.event(event)?;
    run.drain();
    if let Some(refused) = run.refused {
        return Err(refused);
    }
    if run.cs.status == Status::Incident && had_parked && !parked(&run.cs.state) {
        run.cs.status = Status::Running;
        run.cs.incident = None;
    }
    Ok(run.cs)
}

/// Records that a linked process could not be started: a waiting token is parked as an
/// incident at the linking node (resolving retries the node); without waiting, the instance
/// shows the incident and goes on.
pub fn child_failed(cs: &mut Changeset, child: &ChildStart, message: String) {
    let mut parked = false;
    for t in &mut cs.state.tokens {
        if matches!(&t.wait, Wait::Child { instance } if *instance == child.id) {
            t.wait = Wait::Incident {
                from: None,
                message: message.clone(),
            };
            parked = true;
        }
    }
    cs.history.push(NewHistory {
        actor: Actor::engine("engine"),
        node: Some(child.node.clone()),
        kind: "incident".into(),
        text: format!("incident at {}: {message}", child.node),
        data: json!({ "message": message, "child": child.id }),
    });
    if parked && !cs.status.is_terminal() {
        cs.status = Status::Incident;
        cs.incident = Some(format!("{}: {message}", child.node));
    }
}

struct Run<'a> {
    model: &'a Process,
    data: &'a DeploymentData,
    due: &'a dyn DueDates,
    now: DateTime<Utc>,
    bounds: Bounds,
    /// Set when a limit refused the event (with `bounds.refuse`).
    refused: Option<EngineError>,
    instance_id: &'a str,
    created_at: DateTime<Utc>,
    actor: Actor,
    /// The for-each item of the task whose event is being handled (for its actions).
    item: Option<(String, Json)>,
    cs: Changeset,
    /// Tokens to move: (node, predecessor).
    ready: VecDeque<(String, Option<String>)>,
    /// Inputs of the last due time computed (stored in timer payloads).
    last_due: Json,
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl<'a> Run<'a> {
    /// The first `personal(id_number)` variable (a text, or a list of texts) holding the ID
    /// number of someone under 18 on the case's date (the day it was started, China time),
    /// whatever else the case says: public documents are not issued for such a case.
    fn minor_in_case(&self) -> Option<String> {
        let china = chrono::FixedOffset::east_opt(8 * 3600)?;
        let on = self.created_at.with_timezone(&china).date_naive();
        let minor = |json: &Json| {
            json.as_str()
                .and_then(yimen_dsl::pii::birth_date)
                .is_some_and(|born| under_18(born, on))
        };
        self.model
            .vars
            .iter()
            .filter(|d| d.personal == Some(PersonalKind::IdNumber))
            .find(|d| match self.cs.vars.get(&d.name.name) {
                Some(Json::Array(items)) => items.iter().any(minor),
                Some(value) => minor(value),
                None => false,
            })
            .map(|d| d.name.name.clone())
    }

    fn node(&self, id: &str) -> Option<&'a yimen_dsl::model::Node> {
        self.model.nodes.iter().find(|n| n.id.name == id)
    }

    fn eval(&self, expr: &Expr) -> Result<Value, RunError> {
        let scope = VarScope {
            model: self.model,
            data: self.data,
            vars: &self.cs.vars,
            state: Some(&self.cs.state),
            item: self.item.as_ref().map(|(n, j)| (n.as_str(), j)),
            now: self.now,
        };
        Ok(eval(expr, &scope)?)
    }

    fn history(&mut self, node: Option<&str>, kind: &str, text: String, data: Json) {
        self.cs.history.push(NewHistory {
            actor: self.actor.clone(),
            node: node.map(str::to_string),
            kind: kind.to_string(),
            text,
            data,
        });
    }

    /// Masked display of a variable's value for history and notifications.
    fn shown(&self, var: &str, value: &Json) -> String {
        let decl = self.model.vars.iter().find(|v| v.name.name == var);
        match decl.and_then(|d| d.personal) {
            Some(kind) => match crate::documents::mask_json(kind, value) {
                Json::String(s) => s,
                other => other.to_string(),
            },
            None => display_json(value),
        }
    }

    fn set_var(&mut self, node: Option<&str>, var: &str, value: Json) {
        if self.cs.vars.get(var) == Some(&value) {
            return;
        }
        let text = format!("{var} = {}", self.shown(var, &value));
        self.cs.vars.insert(var.to_string(), value);
        self.history(node, "variable", text, json!({ "var": var }));
    }

    /// A limit exceeded at `field` (a node, a document): the event is refused when it is the
    /// caller's own (see [`Bounds`]); the error is returned for the incident otherwise.
    fn over_limit(&mut self, field: &str, error: RunError) -> RunError {
        if self.bounds.refuse && self.refused.is_none() {
            self.refused = Some(EngineError::invalid(field, error.to_string()));
        }
        error
    }

    fn incident(&mut self, node: &str, from: Option<String>, message: String) {
        self.history(
            Some(node),
            "incident",
            format!("incident at {node}: {message}"),
            json!({ "message": message }),
        );
        self.cs.state.tokens.push(Token {
            node: node.to_string(),
            wait: Wait::Incident {
                from,
                message: message.clone(),
            },
        });
        self.cs.status = Status::Incident;
        self.cs.incident = Some(format!("{node}: {message}"));
    }

    fn event(&mut self, event: Event) -> Result<(), EngineError> {
        match event {
            Event::Start { actor } => {
                self.cs.state.started_by = Some(actor.clone());
                self.actor = actor;
                self.start()?;
            }
            Event::TaskCompleted {
                task,
                outcome,
                vars,
                actor,
            } => {
                self.actor = actor;
                self.complete_task(task, outcome, vars)?;
            }
            Event::Message {
                name,
                payload,
                actor,
            } => {
                self.actor = actor;
                self.message(name, payload)?;
            }
            Event::Timer(timer) => {
                self.actor = Actor::engine("timer");
                self.timer(timer);
            }
            Event::ChildEnded {
                child,
                result,
                status,
            } => {
                self.actor = Actor::engine("engine");
                self.child_ended(child, result, status);
            }
            Event::Cancel { reason, actor } => {
                self.actor = actor;
                self.history(None, "cancelled", format!("cancelled: {reason}"), json!({}));
                self.terminate(Status::Cancelled, None);
            }
            Event::Resolve { actor } => {
                self.actor = actor;
                self.resolve()?;
            }
            Event::Oversee { action, actor } => {
                self.actor = actor;
                self.oversee(action);
            }
        }
        Ok(())
    }

    /// Starts the instance: a token at the start node.
    fn start(&mut self) -> Result<(), EngineError> {
        let Some(start) = self
            .model
            .nodes
            .iter()
            .find(|n| matches!(n.kind, NodeKind::Start { .. }))
        else {
            return Err(EngineError::Internal("the model has no start node".into()));
        };
        self.history(
            Some(&start.id.name),
            "started",
            format!("started {} v{}", self.model.key.name, self.model.version),
            json!({}),
        );
        self.ready.push_back((start.id.name.clone(), None));
        Ok(())
    }

    /// Linked case `child` ended: the node waiting for it (if any) records its result and
    /// goes on. Nothing happens once the instance itself has ended.
    fn child_ended(&mut self, child: String, result: Option<String>, status: Status) {
        if self.cs.status.is_terminal() {
            return;
        }
        let pos = self
            .cs
            .state
            .tokens
            .iter()
            .position(|t| matches!(&t.wait, Wait::Child { instance } if *instance == child));
        if let Some(pos) = pos {
            let token = self.cs.state.tokens.remove(pos);
            let mut r = Map::new();
            r.insert("result".into(), json!(result));
            r.insert("status".into(), json!(status.as_str()));
            r.insert("instance".into(), json!(child));
            self.cs.state.results.insert(token.node.clone(), r);
            self.history(
                Some(&token.node),
                "child_ended",
                format!(
                    "linked case {child} ended: {}",
                    result.as_deref().unwrap_or(status.as_str())
                ),
                json!({ "child": child, "result": result }),
            );
            self.go_next(&token.node);
        }
    }

    /// Retries every node parked as an incident.
    fn resolve(&mut self) -> Result<(), EngineError> {
        let (stuck, rest): (Vec<Token>, Vec<Token>) = std::mem::take(&mut self.cs.state.tokens)
            .into_iter()
            .partition(|t| matches!(t.wait, Wait::Incident { .. }));
        self.cs.state.tokens = rest;
        if stuck.is_empty() {
            return Err(EngineError::conflict(
                "the instance has no incident to resolve",
            ));
        }
        self.cs.status = Status::Running;
        self.cs.incident = None;
        for t in stuck {
            if let Wait::Incident { from, .. } = t.wait {
                self.history(
                    Some(&t.node),
                    "incident_resolved",
                    format!("retrying {}", t.node),
                    json!({}),
                );
                self.ready.push_back((t.node, from));
            }
        }
        Ok(())
    }

    fn go_next(&mut self, node: &str) {
        let next = match self.node(node).map(|n| &n.kind) {
            Some(
                NodeKind::Start { next }
                | NodeKind::Step { next, .. }
                | NodeKind::Join { next }
                | NodeKind::WaitMessage { next, .. }
                | NodeKind::WaitTimer { next, .. }
                | NodeKind::StartProcess { next, .. },
            ) => Some(next.name.clone()),
            _ => None,
        };
        if let Some(next) = next {
            self.ready.push_back((next, Some(node.to_string())));
        }
    }

    fn drain(&mut self) {
        let mut budget = STEP_BUDGET;
        while let Some((node_id, from)) = self.ready.pop_front() {
            if self.cs.status.is_terminal() {
                break;
            }
            if budget == 0 {
                self.incident(
                    &node_id,
                    from,
                    format!("more than {STEP_BUDGET} automatic steps in one event: a loop without a wait?"),
                );
                for (n, f) in std::mem::take(&mut self.ready) {
                    self.cs.state.tokens.push(Token {
                        node: n,
                        wait: Wait::Incident {
                            from: f,
                            message: "parked after the step budget ran out".into(),
                        },
                    });
                }
                break;
            }
            budget -= 1;
            let Some(node) = self.node(&node_id) else {
                self.incident(&node_id, from, "no such node in the model".into());
                continue;
            };
            if let Err(e) = self.enter(node, from.clone()) {
                self.incident(&node_id, from, e.to_string());
            }
        }
    }

    fn enter(
        &mut self,
        node: &'a yimen_dsl::model::Node,
        from: Option<String>,
    ) -> Result<(), RunError> {
        let id = node.id.name.as_str();
        match &node.kind {
            NodeKind::Start { .. } => self.go_next(id),
            NodeKind::End { result, actions } => {
                self.actions(id, actions, &json!({}))?;
                self.history(
                    Some(id),
                    "ended",
                    format!("ended: {}", result.name),
                    json!({ "result": result.name }),
                );
                self.terminate(Status::Completed, Some(result.name.clone()));
            }
            NodeKind::Step { actions, .. } => {
                self.history(Some(id), "step", step_text(node), json!({}));
                self.actions(id, actions, &json!({}))?;
                self.go_next(id);
            }
            NodeKind::Choice { branches, default } => {
                self.enter_choice(id, branches, default.as_ref())?
            }
            NodeKind::Split { branches } => {
                for b in branches {
                    self.ready.push_back((b.name.clone(), Some(id.to_string())));
                }
            }
            NodeKind::Join { .. } => self.enter_join(id, from),
            NodeKind::WaitMessage {
                message, timeout, ..
            } => self.enter_wait_message(id, &message.name, timeout.as_ref().map(|(d, _)| d))?,
            NodeKind::WaitTimer { duration, .. } => self.enter_wait_timer(id, duration)?,
            NodeKind::StartProcess {
                process,
                inputs,
                wait,
                ..
            } => self.enter_start_process(id, &process.name, inputs, *wait)?,
            NodeKind::Task(task) => self.create_tasks(node, task)?,
        }
        Ok(())
    }

    /// Starts a linked case of `process`; waits for it when `wait`.
    fn enter_start_process(
        &mut self,
        id: &str,
        process: &str,
        inputs: &[(yimen_dsl::model::Ident, Expr)],
        wait: bool,
    ) -> Result<(), RunError> {
        let mut vars = Map::new();
        for (name, expr) in inputs {
            vars.insert(name.name.clone(), self.eval(expr)?.to_json());
        }
        let child = new_id();
        self.cs.children.push(ChildStart {
            id: child.clone(),
            process: process.to_string(),
            vars,
            node: id.to_string(),
            wait,
        });
        self.history(
            Some(id),
            "child_started",
            format!("linked case {child} of {} started", process),
            json!({ "child": child, "process": process }),
        );
        let mut r = Map::new();
        r.insert("instance".into(), json!(child));
        self.cs.state.results.insert(id.to_string(), r);
        if wait {
            self.cs.state.tokens.push(Token {
                node: id.to_string(),
                wait: Wait::Child { instance: child },
            });
        } else {
            self.go_next(id);
        }
        Ok(())
    }

    /// Waits until `duration` from now.
    fn enter_wait_timer(&mut self, id: &str, duration: &Expr) -> Result<(), RunError> {
        let at = self.due_from_expr(duration, self.now)?;
        let tid = new_id();
        self.cs.new_timers.push(NewTimer {
            id: tid.clone(),
            kind: TimerKind::Wait,
            node: id.to_string(),
            task_id: None,
            due_at: millis(at),
            payload: json!({ "due": self.last_due }),
        });
        self.history(
            Some(id),
            "waiting",
            format!("waiting until {}", self.readable(at)),
            json!({ "until": at.to_rfc3339() }),
        );
        self.cs.state.tokens.push(Token {
            node: id.to_string(),
            wait: Wait::Timer { timer: tid },
        });
        Ok(())
    }

    /// Waits for message `message`, with a timeout timer if the node has one.
    fn enter_wait_message(
        &mut self,
        id: &str,
        message: &str,
        timeout: Option<&Expr>,
    ) -> Result<(), RunError> {
        let timer = match timeout {
            Some(dur) => {
                let at = self.due_from_expr(dur, self.now)?;
                let tid = new_id();
                self.cs.new_timers.push(NewTimer {
                    id: tid.clone(),
                    kind: TimerKind::MessageTimeout,
                    node: id.to_string(),
                    task_id: None,
                    due_at: millis(at),
                    payload: json!({ "due": self.last_due }),
                });
                Some(tid)
            }
            None => None,
        };
        self.cs.state.tokens.push(Token {
            node: id.to_string(),
            wait: Wait::Message {
                name: message.to_string(),
                timer,
            },
        });
        Ok(())
    }

    /// A join goes on when a token has arrived from every predecessor.
    fn enter_join(&mut self, id: &str, from: Option<String>) {
        let preds = self.predecessors(id);
        let arrived = self.cs.state.joins.entry(id.to_string()).or_default();
        arrived.insert(from.unwrap_or_default());
        if preds.iter().all(|p| arrived.contains(p)) {
            self.cs.state.joins.remove(id);
            self.history(
                Some(id),
                "joined",
                format!("{id}: all branches arrived"),
                json!({}),
            );
            self.go_next(id);
        }
    }

    /// A choice: the first branch whose condition holds, else the default.
    fn enter_choice(
        &mut self,
        id: &str,
        branches: &[yimen_dsl::model::Branch],
        default: Option<&yimen_dsl::model::Ident>,
    ) -> Result<(), RunError> {
        let mut target = None;
        for b in branches {
            match self.eval(&b.when)? {
                Value::Boolean(true) => {
                    target = Some(b.next.name.clone());
                    break;
                }
                Value::Boolean(false) => {}
                other => return Err(RunError::NotBoolean { kind: other.kind() }),
            }
        }
        let target = target
            .or_else(|| default.as_ref().map(|d| d.name.clone()))
            .ok_or(RunError::NoBranch)?;
        self.history(
            Some(id),
            "choice",
            format!("{id} → {target}"),
            json!({ "next": target }),
        );
        self.ready.push_back((target, Some(id.to_string())));
        Ok(())
    }

    fn predecessors(&self, id: &str) -> Vec<String> {
        let mut preds = Vec::new();
        for n in &self.model.nodes {
            let targets: Vec<&str> = match &n.kind {
                NodeKind::Start { next }
                | NodeKind::Step { next, .. }
                | NodeKind::Join { next }
                | NodeKind::WaitTimer { next, .. }
                | NodeKind::StartProcess { next, .. } => vec![&next.name],
                NodeKind::WaitMessage { next, timeout, .. } => {
                    let mut v = vec![next.name.as_str()];
                    if let Some((_, t)) = timeout {
                        v.push(&t.name);
                    }
                    v
                }
                NodeKind::End { .. } => vec![],
                NodeKind::Task(t) => t.outcomes.iter().map(|o| o.next.name.as_str()).collect(),
                NodeKind::Choice { branches, default } => branches
                    .iter()
                    .map(|b| b.next.name.as_str())
                    .chain(default.as_ref().map(|d| d.name.as_str()))
                    .collect(),
                NodeKind::Split { branches } => branches.iter().map(|b| b.name.as_str()).collect(),
            };
            if targets.contains(&id) && !preds.contains(&n.id.name) {
                preds.push(n.id.name.clone());
            }
        }
        preds
    }

    fn terminate(&mut self, status: Status, result: Option<String>) {
        self.cs.status = status;
        self.cs.result = result;
        self.cs.incident = None;
        self.cs.state.tokens.clear();
        self.cs.state.joins.clear();
        self.ready.clear();
    }
}

/// A value as text: a text as it is, anything else as JSON. Also the organisation unit a
/// scope variable's value names (a task's `org_unit`).
pub(crate) fn display_json(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn step_text(node: &yimen_dsl::model::Node) -> String {
    match &node.label {
        Some(l) => format!("{} ({l})", node.id.name),
        None => node.id.name.clone(),
    }
}
