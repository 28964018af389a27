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

pub mod due;
pub mod state;

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
    pub kind: String,
    pub node: String,
    pub task: Option<TaskRef>,
    pub payload: Json,
}

/// One external event.
#[derive(Debug, Clone)]
pub enum Event {
    Start {
        actor: String,
    },
    TaskCompleted {
        task: TaskRef,
        outcome: Option<String>,
        vars: Map<String, Json>,
        actor: String,
    },
    Message {
        name: String,
        payload: Map<String, Json>,
        actor: String,
    },
    Timer(TimerRef),
    ChildEnded {
        child: String,
        result: Option<String>,
        status: Status,
    },
    Cancel {
        reason: String,
        actor: String,
    },
    /// Retry nodes parked as incidents.
    Resolve {
        actor: String,
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
        actor: String::new(),
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
        actor: "engine".into(),
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

/// Checks start variables against the declarations and fills defaults. Every problem at once.
pub fn start_vars(
    model: &Process,
    data: &DeploymentData,
    given: &Map<String, Json>,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Map<String, Json>, EngineError> {
    let mut problems = Vec::new();
    let mut vars = Map::new();
    for name in given.keys() {
        if !model.vars.iter().any(|v| &v.name.name == name) {
            problems.push(Problem::new(name, "is not a variable of this process"));
        }
    }
    for decl in &model.vars {
        let name = &decl.name.name;
        match given.get(name) {
            Some(v) if !v.is_null() => match input(model, data, limits, decl, v, now) {
                Ok(v) => {
                    vars.insert(name.clone(), v);
                }
                Err(e) => problems.push(Problem::new(name, e)),
            },
            _ if decl.required => problems.push(Problem::new(name, "is required")),
            _ => {
                if let Some(default) = &decl.default {
                    let scope = VarScope {
                        model,
                        data,
                        vars: &vars,
                        state: None,
                        item: None,
                        now,
                    };
                    match eval(default, &scope) {
                        Ok(v) => {
                            vars.insert(name.clone(), v.to_json());
                        }
                        Err(e) => problems.push(Problem::new(name, format!("default: {e}"))),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(EngineError::Invalid { problems })
    }
}

/// Checks a value given for variable `decl` from outside (start variables, completion fields,
/// message payloads) and returns its canonical JSON form: its type; an enum value may be given
/// by its label (`最低生活保障` for `minimum_living`) and is stored as its key; a personal
/// variable's value must be what its kind says (an ID number by GB 11643 with a birth date
/// before `now`, a mobile or a landline with its area code). The message names the rule.
fn input(
    model: &Process,
    data: &DeploymentData,
    limits: &Limits,
    decl: &VarDecl,
    json: &Json,
    now: DateTime<Utc>,
) -> Result<Json, String> {
    let keyed = enum_keys(model, data, &decl.ty, json);
    let value = typed(
        model,
        data,
        limits,
        &decl.ty,
        keyed.as_ref().unwrap_or(json),
    )?;
    if let (Some(kind), Json::String(text)) = (decl.personal, &value) {
        check_personal(kind, text, now)?;
    }
    Ok(value)
}

/// The rules of personal kinds that have them.
fn check_personal(kind: PersonalKind, text: &str, now: DateTime<Utc>) -> Result<(), String> {
    match kind {
        PersonalKind::IdNumber => {
            yimen_dsl::pii::check_id_number(text).map_err(|e| {
                format!("is not a valid resident ID number (GB 11643: 18 characters, region code, birth date, MOD 11-2 check character): {e}")
            })?;
            match yimen_dsl::pii::birth_date(text) {
                Some(born) if born > now.date_naive() => Err(format!(
                    "is not a valid resident ID number: its birth date {born} is in the future"
                )),
                _ => Ok(()),
            }
        }
        PersonalKind::Phone => yimen_dsl::pii::check_phone(text)
            .map_err(|e| format!("is not a valid phone number: {e}")),
        PersonalKind::Name | PersonalKind::Address | PersonalKind::Sensitive => Ok(()),
    }
}

/// `json` with every enum value given by its label replaced by the value's key (`None`: nothing
/// to replace). A text that is a key stays as it is, even should it be another value's label.
fn enum_keys(model: &Process, data: &DeploymentData, ty: &Type, json: &Json) -> Option<Json> {
    match (ty, json) {
        (Type::Enum(name), Json::String(text)) => {
            let labels = enum_labels(model, data, name)?;
            if labels.iter().any(|(key, _)| key == text) {
                return None;
            }
            labels
                .into_iter()
                .find(|(_, label)| label.as_deref() == Some(text.trim()))
                .map(|(key, _)| Json::String(key))
        }
        (Type::List(inner), Json::Array(items)) => {
            let keyed: Vec<Option<Json>> = items
                .iter()
                .map(|item| enum_keys(model, data, inner, item))
                .collect();
            keyed.iter().any(Option::is_some).then(|| {
                Json::Array(
                    keyed
                        .into_iter()
                        .zip(items)
                        .map(|(k, item)| k.unwrap_or_else(|| item.clone()))
                        .collect(),
                )
            })
        }
        (Type::Map(_, inner), Json::Object(entries)) => {
            let keyed: Map<String, Json> = entries
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), enum_keys(model, data, inner, v)?)))
                .collect();
            (!keyed.is_empty()).then(|| {
                let mut all = entries.clone();
                all.extend(keyed);
                Json::Object(all)
            })
        }
        _ => None,
    }
}

/// An enum's values with their labels (listed, or a configuration map's keys with their
/// values, or their values' `name`).
fn enum_labels(
    model: &Process,
    data: &DeploymentData,
    name: &str,
) -> Option<Vec<(String, Option<String>)>> {
    let decl = model.enums.iter().find(|e| e.name.name == name)?;
    match &decl.source {
        EnumSource::Listed(values) => Some(
            values
                .iter()
                .map(|v| (v.key.name.clone(), v.label.clone()))
                .collect(),
        ),
        EnumSource::Config(key) => data
            .config
            .get(&key.name)
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let label = v.as_str().or_else(|| v.get("name").and_then(Json::as_str));
                        let label = label.map(str::to_string);
                        (k.clone(), label)
                    })
                    .collect()
            }),
    }
}

/// Type-checks `json` against `ty` and the [`Limits`] (list sizes, the years of dates) and
/// returns its canonical JSON form.
fn typed(
    model: &Process,
    data: &DeploymentData,
    limits: &Limits,
    ty: &Type,
    json: &Json,
) -> Result<Json, String> {
    let enums = |name: &str| enum_values(model, data, name);
    let value = Value::from_json(json, ty, &enums)?;
    within_limits(&value, limits)?;
    Ok(value.to_json())
}

/// `Err` naming the limit when `value` (or a value inside it) exceeds one.
fn within_limits(value: &Value, limits: &Limits) -> Result<(), String> {
    let too_many = |n: usize| {
        format!(
            "has {n} entries; at most {} are allowed (the server's --max-list-items)",
            limits.list_items
        )
    };
    match value {
        Value::List(items) => {
            if items.len() > limits.list_items {
                return Err(too_many(items.len()));
            }
            for (i, item) in items.iter().enumerate() {
                within_limits(item, limits).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        Value::Map(map) => {
            if map.len() > limits.list_items {
                return Err(too_many(map.len()));
            }
            for (k, item) in map {
                within_limits(item, limits).map_err(|e| format!("key {k}: {e}"))?;
            }
            Ok(())
        }
        Value::Date(d) => crate::limits::check_date(*d).map_err(|e| format!("{d} {e}")),
        Value::DateTime(t) => {
            crate::limits::check_instant(*t).map_err(|e| format!("{} {e}", t.to_rfc3339()))
        }
        _ => Ok(()),
    }
}

/// The allowed keys of an enum (listed, or the keys of a configuration map).
pub fn enum_values(model: &Process, data: &DeploymentData, name: &str) -> Option<Vec<String>> {
    let decl = model.enums.iter().find(|e| e.name.name == name)?;
    match &decl.source {
        EnumSource::Listed(values) => Some(values.iter().map(|v| v.key.name.clone()).collect()),
        EnumSource::Config(key) => data
            .config
            .get(&key.name)
            .and_then(Json::as_object)
            .map(|m| m.keys().cloned().collect()),
    }
}

struct VarScope<'a> {
    model: &'a Process,
    data: &'a DeploymentData,
    vars: &'a Map<String, Json>,
    state: Option<&'a RunState>,
    item: Option<(&'a str, &'a Json)>,
    now: DateTime<Utc>,
}

impl Scope for VarScope<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some((item_name, item)) = self.item
            && item_name == name
        {
            return Some(Value::from_json_untyped(item));
        }
        if let Some(decl) = self.model.vars.iter().find(|v| v.name.name == name) {
            let json = self.vars.get(name)?;
            let enums = |n: &str| enum_values(self.model, self.data, n);
            return Value::from_json(json, &decl.ty, &enums)
                .ok()
                .or_else(|| Some(Value::from_json_untyped(json)));
        }
        // A name that is both an enum value and a node id (`approved`) is the enum value:
        // node results are only read through fields (`review.completed_by`).
        if let Some(state) = self.state.filter(|_| !self.enum_value(name)) {
            if let Some(result) = state.results.get(name) {
                return Some(Value::from_json_untyped(&Json::Object(result.clone())));
            }
            if self.model.nodes.iter().any(|n| n.id.name == name) {
                return Some(Value::Null);
            }
        }
        None
    }
    fn enum_value(&self, name: &str) -> bool {
        self.model.enums.iter().any(|e| {
            enum_values(self.model, self.data, &e.name.name)
                .is_some_and(|vals| vals.iter().any(|v| v == name))
        })
    }
    fn config(&self, key: &str) -> Option<Value> {
        self.data.config.get(key).map(Value::from_json_untyped)
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
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
    actor: String,
    /// The for-each item of the task whose event is being handled (for its actions).
    item: Option<(String, Json)>,
    cs: Changeset,
    /// Tokens to move: (node, predecessor).
    ready: VecDeque<(String, Option<String>)>,
    /// Inputs of the last due time computed (stored in timer payloads).
    last_due: Json,
}

/// Is someone born on `born` under 18 on `on`? (Born on 29 February: 18 on 1 March.)
fn under_18(born: chrono::NaiveDate, on: chrono::NaiveDate) -> bool {
    use chrono::Datelike;
    let year = born.year() + 18;
    let eighteen = chrono::NaiveDate::from_ymd_opt(year, born.month(), born.day())
        .or_else(|| chrono::NaiveDate::from_ymd_opt(year, 3, 1));
    eighteen.is_some_and(|day| on < day)
}

fn new_id() -> String {
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

    fn eval(&self, expr: &Expr) -> Result<Value, String> {
        let scope = VarScope {
            model: self.model,
            data: self.data,
            vars: &self.cs.vars,
            state: Some(&self.cs.state),
            item: self.item.as_ref().map(|(n, j)| (n.as_str(), j)),
            now: self.now,
        };
        eval(expr, &scope).map_err(|e| e.message)
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
    /// caller's own (see [`Bounds`]); the message is returned for the incident otherwise.
    fn over_limit(&mut self, field: &str, message: String) -> String {
        if self.bounds.refuse && self.refused.is_none() {
            self.refused = Some(EngineError::invalid(field, message.clone()));
        }
        message
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
                self.actor = actor;
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
                self.actor = "timer".into();
                self.timer(timer);
            }
            Event::ChildEnded {
                child,
                result,
                status,
            } => {
                self.actor = "engine".into();
                if self.cs.status.is_terminal() {
                    return Ok(());
                }
                let pos = self.cs.state.tokens.iter().position(
                    |t| matches!(&t.wait, Wait::Child { instance } if *instance == child),
                );
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
            Event::Cancel { reason, actor } => {
                self.actor = actor;
                self.history(None, "cancelled", format!("cancelled: {reason}"), json!({}));
                self.terminate(Status::Cancelled, None);
            }
            Event::Resolve { actor } => {
                self.actor = actor;
                let (stuck, rest): (Vec<Token>, Vec<Token>) =
                    std::mem::take(&mut self.cs.state.tokens)
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
            }
        }
        Ok(())
    }

    fn complete_task(
        &mut self,
        task: TaskRef,
        outcome: Option<String>,
        vars: Map<String, Json>,
    ) -> Result<(), EngineError> {
        let Some(node) = self
            .node(&task.node)
            .filter(|n| matches!(n.kind, NodeKind::Task(_)))
        else {
            // A follow-up task of an escalation (`task chase ...`): no flow waits for it.
            if let Some(name) = vars.keys().next() {
                return Err(EngineError::Invalid {
                    problems: vec![Problem::new(name, "a follow-up task sets no variables")],
                });
            }
            let outcome = outcome.unwrap_or_else(|| "done".into());
            self.history(
                Some(&task.node),
                "task_completed",
                format!("follow-up {} completed: {outcome}", task.node),
                json!({ "task": task.id, "outcome": outcome, "follow_up": true }),
            );
            return Ok(());
        };
        let NodeKind::Task(spec) = &node.kind else {
            return Err(EngineError::Internal(format!(
                "{} is not a task",
                task.node
            )));
        };
        let mut problems = Vec::new();
        let chosen = match (&outcome, spec.outcomes.as_slice()) {
            (Some(o), outs) => match outs.iter().find(|x| &x.key.name == o) {
                Some(x) => Some(x),
                None => {
                    problems.push(Problem::new(
                        "outcome",
                        format!(
                            "`{o}` is not an outcome of {}; expected one of: {}",
                            task.node,
                            outs.iter()
                                .map(|x| x.key.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    None
                }
            },
            (None, [only]) => Some(only),
            (None, outs) => {
                problems.push(Problem::new(
                    "outcome",
                    format!(
                        "is required; expected one of: {}",
                        outs.iter()
                            .map(|x| x.key.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                None
            }
        };
        let mut accepted = Map::new();
        for (name, value) in &vars {
            let field = spec.fields.iter().find(|f| &f.var.name == name);
            let in_requires = chosen.is_some_and(|c| c.requires.iter().any(|r| &r.name == name));
            if field.is_none() && !in_requires {
                problems.push(Problem::new(name, "is not a field of this task"));
                continue;
            }
            let Some(decl) = self.model.vars.iter().find(|v| &v.name.name == name) else {
                problems.push(Problem::new(name, "is not a variable of this process"));
                continue;
            };
            match input(
                self.model,
                self.data,
                &self.bounds.limits,
                decl,
                value,
                self.now,
            ) {
                Ok(v) => {
                    accepted.insert(name.clone(), v);
                }
                Err(e) => problems.push(Problem::new(name, e)),
            }
        }
        let given = |name: &str| vars.get(name).is_some_and(|v| !v.is_null());
        for f in &spec.fields {
            if f.required && !given(&f.var.name) {
                problems.push(Problem::new(&f.var.name, "is required"));
            }
        }
        if let Some(c) = chosen {
            for r in &c.requires {
                if !given(&r.name)
                    && !spec
                        .fields
                        .iter()
                        .any(|f| f.required && f.var.name == r.name)
                {
                    problems.push(Problem::new(
                        &r.name,
                        format!("is required for outcome `{}`", c.key.name),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let Some(chosen) = chosen else {
            return Err(EngineError::Internal("no outcome chosen".into()));
        };
        let pos = self.cs.state.tokens.iter().position(|t| {
            t.node == task.node
                && matches!(&t.wait, Wait::Tasks { pending, .. } if pending.contains(&task.id))
        });
        let Some(pos) = pos else {
            return Err(EngineError::conflict(format!(
                "task {} is no longer awaited by its case",
                task.id
            )));
        };
        self.history(
            Some(&task.node),
            "task_completed",
            format!("{} completed: {}", task.node, chosen.key.name),
            json!({ "task": task.id, "outcome": chosen.key.name }),
        );
        for (name, value) in accepted {
            self.set_var(Some(&task.node), &name, value);
        }
        let token = &mut self.cs.state.tokens[pos];
        let Wait::Tasks { pending, done } = &mut token.wait else {
            return Err(EngineError::Internal(
                "token is not waiting for tasks".into(),
            ));
        };
        pending.retain(|p| p != &task.id);
        done.push(Done {
            task: task.id.clone(),
            outcome: chosen.key.name.clone(),
            completed_by: self.actor.clone(),
        });
        if pending.is_empty() {
            let done = std::mem::take(done);
            self.cs.state.tokens.remove(pos);
            self.finish_task_node(&task.node, spec, &done);
        }
        Ok(())
    }

    fn finish_task_node(&mut self, node: &str, spec: &Task, done: &[Done]) {
        let mut r = Map::new();
        if let Some(last) = done.last() {
            r.insert("completed_by".into(), json!(last.completed_by));
            r.insert("outcome".into(), json!(last.outcome));
        }
        r.insert(
            "outcomes".into(),
            Json::Array(done.iter().map(|d| json!(d.outcome)).collect()),
        );
        r.insert("completed_at".into(), json!(self.now.to_rfc3339()));
        self.cs.state.results.insert(node.to_string(), r);
        let next = spec
            .outcomes
            .iter()
            .find(|o| done.iter().any(|d| d.outcome == o.key.name))
            .or_else(|| spec.outcomes.first())
            .map(|o| o.next.name.clone());
        match next {
            Some(next) => self.ready.push_back((next, Some(node.to_string()))),
            None => self.incident(node, None, "the task has no outcome to follow".into()),
        }
    }

    fn message(&mut self, name: String, payload: Map<String, Json>) -> Result<(), EngineError> {
        let pos = self
            .cs
            .state
            .tokens
            .iter()
            .position(|t| matches!(&t.wait, Wait::Message { name: n, .. } if *n == name));
        let Some(pos) = pos else {
            return Err(EngineError::conflict(format!(
                "the case is not waiting for message `{name}`"
            )));
        };
        let node_id = self.cs.state.tokens[pos].node.clone();
        let Some(NodeKind::WaitMessage { sets, .. }) = self.node(&node_id).map(|n| &n.kind) else {
            return Err(EngineError::Internal(format!(
                "{node_id} is not a message wait"
            )));
        };
        let mut problems = Vec::new();
        let mut accepted = Map::new();
        for (k, v) in &payload {
            let Some(decl) = sets
                .iter()
                .any(|s| &s.var.name == k)
                .then(|| self.model.vars.iter().find(|d| &d.name.name == k))
                .flatten()
            else {
                problems.push(Problem::new(k, format!("is not set by message `{name}`")));
                continue;
            };
            match input(
                self.model,
                self.data,
                &self.bounds.limits,
                decl,
                v,
                self.now,
            ) {
                Ok(v) => {
                    accepted.insert(k.clone(), v);
                }
                Err(e) => problems.push(Problem::new(k, e)),
            }
        }
        for s in sets {
            if s.required && payload.get(&s.var.name).is_none_or(Json::is_null) {
                problems.push(Problem::new(&s.var.name, "is required"));
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Invalid { problems });
        }
        let token = self.cs.state.tokens.remove(pos);
        if let Wait::Message {
            timer: Some(timer), ..
        } = &token.wait
        {
            self.cs.cancel_timers.push(timer.clone());
        }
        self.history(
            Some(&node_id),
            "message",
            format!("message {name} received"),
            json!({ "message": name }),
        );
        for (k, v) in accepted {
            self.set_var(Some(&node_id), &k, v);
        }
        self.go_next(&node_id);
        Ok(())
    }

    fn timer(&mut self, timer: TimerRef) {
        match timer.kind.as_str() {
            "wait" => {
                let pos =
                    self.cs.state.tokens.iter().position(
                        |t| matches!(&t.wait, Wait::Timer { timer: id } if *id == timer.id),
                    );
                if let Some(pos) = pos {
                    let token = self.cs.state.tokens.remove(pos);
                    self.history(
                        Some(&token.node),
                        "timer",
                        format!("wait at {} over", token.node),
                        json!({ "timer": timer.id }),
                    );
                    self.go_next(&token.node);
                }
            }
            "message_timeout" => {
                let pos = self.cs.state.tokens.iter().position(
                    |t| matches!(&t.wait, Wait::Message { timer: Some(id), .. } if *id == timer.id),
                );
                if let Some(pos) = pos {
                    let token = self.cs.state.tokens.remove(pos);
                    let target = match self.node(&token.node).map(|n| &n.kind) {
                        Some(NodeKind::WaitMessage {
                            timeout: Some((_, target)),
                            message,
                            ..
                        }) => {
                            self.history(
                                Some(&token.node),
                                "timeout",
                                format!("no message {} in time", message.name),
                                json!({ "timer": timer.id }),
                            );
                            Some(target.name.clone())
                        }
                        _ => None,
                    };
                    if let Some(t) = target {
                        self.ready.push_back((t, Some(token.node)));
                    }
                }
            }
            "escalation" | "clock_escalation" => self.escalate(timer),
            other => self.history(
                Some(&timer.node),
                "timer",
                format!("timer of unknown kind {other} ignored"),
                json!({ "timer": timer.id }),
            ),
        }
    }

    /// Runs one rung of an escalation ladder (the timer's payload names it).
    fn escalate(&mut self, timer: TimerRef) {
        let rung = timer
            .payload
            .get("rung")
            .and_then(Json::as_u64)
            .unwrap_or(0) as usize;
        let ladder = if timer.kind == "clock_escalation" {
            let clock = timer
                .payload
                .get("clock")
                .and_then(Json::as_str)
                .unwrap_or("");
            self.model
                .clocks
                .iter()
                .find(|c| c.name.name == clock)
                .and_then(|c| c.deadline.as_ref())
        } else {
            match self.node(&timer.node).map(|n| &n.kind) {
                Some(NodeKind::Task(t)) => t.deadline.as_ref(),
                _ => None,
            }
        };
        let Some(esc) = ladder.and_then(|d| d.ladder.get(rung)) else {
            return;
        };
        self.history(
            Some(&timer.node),
            "escalation",
            format!("escalation level {} at {}", esc.level, timer.node),
            json!({ "timer": timer.id, "level": esc.level, "rung": rung, "task": timer.task.as_ref().map(|t| &t.id) }),
        );
        let holder = timer
            .task
            .as_ref()
            .and_then(|t| t.locked_by.clone().or_else(|| t.assignee.clone()));
        if let Some(item) = timer.task.as_ref().and_then(|t| t.item.clone())
            && let Some(NodeKind::Task(Task {
                for_each: Some(fe), ..
            })) = self.node(&timer.node).map(|n| &n.kind)
        {
            self.item = Some((fe.item.name.clone(), item));
        }
        let actions = esc.actions.clone();
        let node = timer.node.clone();
        let ctx = json!({ "level": esc.level, "task": timer.task.as_ref().map(|t| &t.id), "holder": holder, "timer": timer.id });
        if let Err(e) = self.actions(&node, &actions, &ctx) {
            self.history(
                Some(&node),
                "incident",
                format!("escalation failed: {e}"),
                json!({}),
            );
        }
        self.item = None;
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
            if let Err(message) = self.enter(node, from.clone()) {
                self.incident(&node_id, from, message);
            }
        }
    }

    fn enter(
        &mut self,
        node: &'a yimen_dsl::model::Node,
        from: Option<String>,
    ) -> Result<(), String> {
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
                let mut target = None;
                for b in branches {
                    match self.eval(&b.when)? {
                        Value::Boolean(true) => {
                            target = Some(b.next.name.clone());
                            break;
                        }
                        Value::Boolean(false) => {}
                        other => {
                            return Err(format!(
                                "a condition gave a {}, not a boolean",
                                other.kind()
                            ));
                        }
                    }
                }
                let target = target
                    .or_else(|| default.as_ref().map(|d| d.name.clone()))
                    .ok_or("no branch applies and there is no default")?;
                self.history(
                    Some(id),
                    "choice",
                    format!("{id} → {target}"),
                    json!({ "next": target }),
                );
                self.ready.push_back((target, Some(id.to_string())));
            }
            NodeKind::Split { branches } => {
                for b in branches {
                    self.ready.push_back((b.name.clone(), Some(id.to_string())));
                }
            }
            NodeKind::Join { .. } => {
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
            NodeKind::WaitMessage {
                message, timeout, ..
            } => {
                let timer = match timeout {
                    Some((dur, _)) => {
                        let at = self.due_from_expr(dur, self.now)?;
                        let tid = new_id();
                        self.cs.new_timers.push(NewTimer {
                            id: tid.clone(),
                            kind: "message_timeout",
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
                        name: message.name.clone(),
                        timer,
                    },
                });
            }
            NodeKind::WaitTimer { duration, .. } => {
                let at = self.due_from_expr(duration, self.now)?;
                let tid = new_id();
                self.cs.new_timers.push(NewTimer {
                    id: tid.clone(),
                    kind: "wait",
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
            }
            NodeKind::StartProcess {
                process,
                inputs,
                wait,
                ..
            } => {
                let mut vars = Map::new();
                for (name, expr) in inputs {
                    vars.insert(name.name.clone(), self.eval(expr)?.to_json());
                }
                let child = new_id();
                self.cs.children.push(ChildStart {
                    id: child.clone(),
                    process: process.name.clone(),
                    vars,
                    node: id.to_string(),
                    wait: *wait,
                });
                self.history(
                    Some(id),
                    "child_started",
                    format!("linked case {child} of {} started", process.name),
                    json!({ "child": child, "process": process.name }),
                );
                let mut r = Map::new();
                r.insert("instance".into(), json!(child));
                self.cs.state.results.insert(id.to_string(), r);
                if *wait {
                    self.cs.state.tokens.push(Token {
                        node: id.to_string(),
                        wait: Wait::Child { instance: child },
                    });
                } else {
                    self.go_next(id);
                }
            }
            NodeKind::Task(task) => self.create_tasks(node, task)?,
        }
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

    /// Records a calendar-based due time in the timeline, with its explanation (which calendar
    /// and data version, holidays skipped, make-up days counted) and whether it is provisional.
    /// `at` as people read it: in the zone of the process's calendar, with the offset.
    fn readable(&self, at: DateTime<Utc>) -> String {
        let calendar = self.model.calendar.as_ref().map(|c| c.name.as_str());
        crate::clock::readable(&at.with_timezone(&self.due.time_zone(calendar)))
    }

    fn note_due(&mut self, due: &due::Due, unit: yimen_dsl::model::DurationUnit) {
        if matches!(
            unit,
            yimen_dsl::model::DurationUnit::WorkDays
                | yimen_dsl::model::DurationUnit::WorkHours
                | yimen_dsl::model::DurationUnit::Days
        ) {
            // Every calendar-based due time explains itself in the timeline (ledger).
            let mut text = format!("due {}", self.readable(due.at));
            if due.provisional {
                text.push_str(
                    " — provisional: the calendar lacks a year it reaches into; \
                     recomputed when that year's data is added",
                );
            }
            self.history(
                None,
                "due_computed",
                text,
                json!({
                    "due_at": due.at.to_rfc3339(),
                    "provisional": due.provisional,
                    "explanation": due.explanation,
                }),
            );
        }
    }

    fn due_from_expr(&mut self, expr: &Expr, from: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let v = self.eval(expr)?;
        let (amount, unit) = v.to_duration()?;
        let calendar = self.model.calendar.as_ref().map(|c| c.name.clone());
        let due = self.due.add(calendar.as_deref(), from, amount, unit);
        if due.provisional {
            self.cs.provisional = true;
        }
        self.note_due(&due, unit);
        // The inputs, so that a due time can be recomputed when the calendar data changes.
        self.last_due = json!({
            "from": millis(from),
            "amount": amount,
            "unit": unit,
            "calendar": calendar,
            "provisional": due.provisional,
            "explanation": due.explanation,
        });
        Ok(due.at)
    }

    fn queue(&self, q: &QueueRef) -> Result<(String, Option<String>), String> {
        let mut name = q.role.name.clone();
        if let Some(key) = &q.key {
            name = format!("{name}:{}", self.eval(key)?.display());
        }
        let org_unit = self
            .model
            .roles
            .iter()
            .find(|r| r.name.name == q.role.name)
            .and_then(|r| r.scope.as_ref())
            .and_then(|s| self.cs.vars.get(&s.name))
            .map(display_json);
        Ok((name, org_unit))
    }

    fn create_tasks(&mut self, node: &yimen_dsl::model::Node, task: &Task) -> Result<(), String> {
        let id = node.id.name.as_str();
        let items: Vec<Option<Json>> = match &task.for_each {
            None => vec![None],
            Some(fe) => match self.eval(&fe.list)? {
                Value::List(items) => items.into_iter().map(|v| Some(v.to_json())).collect(),
                Value::Null => Vec::new(),
                other => return Err(format!("for each needs a list, got a {}", other.kind())),
            },
        };
        if items.len() > self.bounds.limits.fan_out {
            return Err(self.over_limit(
                id,
                format!(
                    "for each over {} items: at most {} tasks may be created at once (the server's --max-fan-out)",
                    items.len(),
                    self.bounds.limits.fan_out
                ),
            ));
        }
        if items.is_empty() {
            self.history(Some(id), "skipped", format!("{id}: no items"), json!({}));
            self.finish_task_node(id, task, &[]);
            return Ok(());
        }
        let mut pending = Vec::new();
        for item in items {
            self.item = match (&task.for_each, &item) {
                (Some(fe), Some(v)) => Some((fe.item.name.clone(), v.clone())),
                _ => None,
            };
            let result = self.create_task(node, task, item);
            self.item = None;
            pending.push(result?);
        }
        self.cs.state.tokens.push(Token {
            node: id.to_string(),
            wait: Wait::Tasks {
                pending,
                done: Vec::new(),
            },
        });
        Ok(())
    }

    fn create_task(
        &mut self,
        node: &yimen_dsl::model::Node,
        task: &Task,
        item: Option<Json>,
    ) -> Result<String, String> {
        let id = node.id.name.as_str();
        let (queue, org_unit) = self.queue(&task.queue)?;
        let assignee = match &task.assignee {
            None => None,
            Some(Assignee::CompletedBy(n)) => self
                .cs
                .state
                .results
                .get(&n.name)
                .and_then(|r| r.get("completed_by"))
                .and_then(Json::as_str)
                .map(str::to_string),
            Some(Assignee::Expr(e)) => Some(self.eval(e)?.display()),
        };
        let task_id = new_id();
        let mut due_at = None;
        if let Some(deadline) = &task.deadline {
            due_at = self.ladder(id, Some(&task_id), deadline, None)?;
        }
        self.cs.new_tasks.push(NewTask {
            id: task_id.clone(),
            node: id.to_string(),
            label: node.label.clone(),
            queue: queue.clone(),
            org_unit,
            assignee,
            item: item.clone(),
            due_at,
        });
        let shown_item = item
            .as_ref()
            .map(|i| format!(" [{}]", display_json(i)))
            .unwrap_or_default();
        self.history(
            Some(id),
            "task_created",
            format!("task {id}{shown_item} for {queue}"),
            json!({ "task": task_id, "queue": queue, "due_at": due_at }),
        );
        self.actions(id, &task.on_enter, &json!({}))?;
        Ok(task_id)
    }

    /// Schedules a deadline's ladder; returns the due time (millis). `clock`: the ladder of
    /// that named clock, due at the given time. A task deadline bound to a started clock
    /// (`deadline ... clock NAME`) is due when the clock is and is recorded on the clock, so
    /// that pausing, resuming and extending the clock move it; while the clock is paused it is
    /// suspended (`None`: no due time, no timers).
    fn ladder(
        &mut self,
        node: &str,
        task: Option<&str>,
        deadline: &Deadline,
        clock: Option<(&str, DateTime<Utc>)>,
    ) -> Result<Option<i64>, String> {
        if let Some((name, due)) = clock {
            let base = self.clock_base(name);
            let ids = self.rungs(node, task, deadline, due, Some(name), base)?;
            if let Some(state) = self.cs.state.clocks.get_mut(name) {
                state.timers = ids;
            }
            return Ok(Some(millis(due)));
        }
        if let (Some(task), Some(c)) = (task, &deadline.clock)
            && let Some(state) = self.cs.state.clocks.get(&c.name)
            // Started and not stopped: running, or paused with time left.
            && (state.running || state.remaining_minutes.is_some())
        {
            let name = c.name.clone();
            let running_due = state.due_at.filter(|_| state.running);
            let mut bound = BoundDeadline {
                task: task.to_string(),
                node: node.to_string(),
                item: self.item.as_ref().map(|(_, v)| v.clone()),
                timers: Vec::new(),
            };
            let due = match running_due {
                Some(ms) => {
                    let at = DateTime::from_timestamp_millis(ms).unwrap_or(self.now);
                    let base = self.clock_base(&name);
                    bound.timers = self.rungs(node, Some(task), deadline, at, None, base)?;
                    Some(ms)
                }
                None => {
                    self.history(
                        Some(node),
                        "deadline_suspended",
                        format!(
                            "deadline of task {node} suspended: clock {name} is paused; it \
                             follows the clock when the clock resumes"
                        ),
                        json!({ "task": task, "clock": name }),
                    );
                    None
                }
            };
            if let Some(s) = self.cs.state.clocks.get_mut(&name) {
                s.bound.push(bound);
            }
            return Ok(due);
        }
        let due = self.due_from_expr(&deadline.duration, self.now)?;
        let base = self.last_due.clone();
        self.rungs(node, task, deadline, due, None, base)?;
        Ok(Some(millis(due)))
    }

    /// What a due time that hangs on clock `name` was computed from (timer payloads): the
    /// clock's inputs, and the process calendar the rungs are counted on.
    fn clock_base(&self, name: &str) -> Json {
        let state = self.cs.state.clocks.get(name);
        json!({
            "clock": name,
            "basis": state.and_then(|s| s.basis.clone()),
            "calendar": self.model.calendar.as_ref().map(|c| c.name.clone()),
            "provisional": state.is_some_and(|s| s.provisional),
        })
    }

    /// Schedules the rungs of `deadline` due at `due`; `clock`: they are that clock's own
    /// (`clock_escalation`). `base`: the inputs of `due`, kept in each payload.
    fn rungs(
        &mut self,
        node: &str,
        task: Option<&str>,
        deadline: &Deadline,
        due: DateTime<Utc>,
        clock: Option<&str>,
        base: Json,
    ) -> Result<Vec<String>, String> {
        let calendar = self.model.calendar.as_ref().map(|c| c.name.clone());
        let base_provisional = base.get("provisional").and_then(Json::as_bool) == Some(true);
        let mut ids = Vec::new();
        for (rung, esc) in deadline.ladder.iter().enumerate() {
            let (at, offset, provisional) = match &esc.when {
                EscalationWhen::AtDue => (due, json!({ "when": "at" }), false),
                EscalationWhen::Before(d) => {
                    let v = self.eval(d)?;
                    let (amount, unit) = v.to_duration()?;
                    let before = self.due.before(calendar.as_deref(), due, amount, unit);
                    if before.provisional {
                        self.cs.provisional = true;
                    }
                    (
                        before.at,
                        json!({ "when": "before", "amount": amount, "unit": unit }),
                        before.provisional,
                    )
                }
                EscalationWhen::After(d) => {
                    let at = self.due_from_expr(d, due)?;
                    let provisional =
                        self.last_due.get("provisional").and_then(Json::as_bool) == Some(true);
                    let v = self.eval(d)?;
                    let (amount, unit) = v.to_duration()?;
                    (
                        at,
                        json!({ "when": "after", "amount": amount, "unit": unit }),
                        provisional,
                    )
                }
            };
            let mut inputs = base.clone();
            if provisional
                && !base_provisional
                && let Some(obj) = inputs.as_object_mut()
            {
                obj.insert("provisional".into(), json!(true));
            }
            let tid = new_id();
            ids.push(tid.clone());
            self.cs.new_timers.push(NewTimer {
                id: tid,
                kind: if clock.is_some() {
                    "clock_escalation"
                } else {
                    "escalation"
                },
                node: node.to_string(),
                task_id: task.map(str::to_string),
                due_at: millis(at.max(self.now)),
                payload: json!({
                    "rung": rung,
                    "level": esc.level,
                    "clock": clock,
                    "due": inputs,
                    "offset": offset,
                    "due_at": millis(due),
                }),
            });
        }
        Ok(ids)
    }

    /// Moves the task deadlines bound to clock `name` to its new due time (`None`: the clock
    /// paused or stopped, they are suspended). Entries of tasks no longer open are dropped.
    fn follow_clock(
        &mut self,
        name: &str,
        due: Option<DateTime<Utc>>,
        why: &str,
    ) -> Result<(), String> {
        let Some(state) = self.cs.state.clocks.get_mut(name) else {
            return Ok(());
        };
        let bound = std::mem::take(&mut state.bound);
        if bound.is_empty() {
            return Ok(());
        }
        let open: std::collections::BTreeSet<String> = self
            .cs
            .state
            .tokens
            .iter()
            .flat_map(|t| match &t.wait {
                Wait::Tasks { pending, .. } => pending.clone(),
                _ => Vec::new(),
            })
            .chain(self.cs.new_tasks.iter().map(|t| t.id.clone()))
            .collect();
        let mut keep = Vec::new();
        for mut b in bound {
            let had = std::mem::take(&mut b.timers);
            let was_running = !had.is_empty();
            self.cs.cancel_timers.extend(had);
            if !open.contains(&b.task) {
                continue;
            }
            let spec = match self.node(&b.node).map(|n| &n.kind) {
                Some(NodeKind::Task(t)) => t.clone(),
                _ => continue,
            };
            let Some(deadline) = spec.deadline.as_ref() else {
                continue;
            };
            let due_ms = match due {
                None => {
                    self.history(
                        Some(&b.node),
                        "deadline_suspended",
                        format!("deadline of task {} suspended: clock {name} {why}", b.node),
                        json!({ "task": b.task, "clock": name, "timers_cancelled": was_running }),
                    );
                    None
                }
                Some(at) => {
                    self.item = match (&spec.for_each, &b.item) {
                        (Some(fe), Some(v)) => Some((fe.item.name.clone(), v.clone())),
                        _ => None,
                    };
                    let base = self.clock_base(name);
                    let ids = self.rungs(&b.node, Some(&b.task), deadline, at, None, base);
                    self.item = None;
                    b.timers = ids?;
                    let shown = self.readable(at);
                    self.history(
                        Some(&b.node),
                        "deadline_rescheduled",
                        format!(
                            "deadline of task {} follows clock {name} ({why}): due {shown}",
                            b.node
                        ),
                        json!({ "task": b.task, "clock": name, "due_at": millis(at) }),
                    );
                    Some(millis(at))
                }
            };
            match self.cs.new_tasks.iter_mut().find(|t| t.id == b.task) {
                Some(t) => t.due_at = due_ms,
                None => self.cs.task_due.push((b.task.clone(), due_ms)),
            }
            keep.push(b);
        }
        if let Some(state) = self.cs.state.clocks.get_mut(name) {
            state.bound = keep;
        }
        Ok(())
    }

    fn actions(&mut self, node: &str, actions: &[Action], ctx: &Json) -> Result<(), String> {
        for action in actions {
            match action {
                Action::Assign { var, value, .. } => {
                    let v = self.eval(value)?;
                    let json = match self.model.vars.iter().find(|d| d.name.name == var.name) {
                        Some(decl) => typed(
                            self.model,
                            self.data,
                            &self.bounds.limits,
                            &decl.ty,
                            &v.to_json(),
                        )
                        .map_err(|e| format!("set {}: {e}", var.name))?,
                        None => v.to_json(),
                    };
                    self.set_var(Some(node), &var.name, json);
                }
                Action::Notify {
                    target, message, ..
                } => {
                    let text = self.fill(message);
                    let (channel, url) = match target {
                        NotifyTarget::Role(q) => (format!("role:{}", self.queue(q)?.0), None),
                        NotifyTarget::Applicant => ("applicant".to_string(), None),
                        NotifyTarget::Holder => ("holder".to_string(), None),
                        NotifyTarget::Channel(c) => {
                            let url = self
                                .model
                                .channels
                                .iter()
                                .find(|ch| ch.name.name == c.name)
                                .and_then(|ch| self.data.config.get(&ch.url_config.name))
                                .cloned();
                            (format!("webhook:{}", c.name), url)
                        }
                    };
                    let id = new_id();
                    self.cs.outbox.push(NewOutbox {
                        id: id.clone(),
                        channel: channel.clone(),
                        dedup_key: format!("{}:{id}", self.instance_id),
                        payload: json!({
                            "instance": self.instance_id,
                            "node": node,
                            "message": text,
                            "url": url,
                            "context": ctx,
                            "at": self.now.to_rfc3339(),
                        }),
                    });
                    self.history(
                        Some(node),
                        "notification",
                        format!("notify {channel}: {text}"),
                        json!({ "outbox": id, "channel": channel }),
                    );
                }
                Action::Ledger { entry, .. } => {
                    let text = self.fill(entry);
                    self.history(Some(node), "ledger", text, json!({}));
                }
                Action::Issue { document, .. } => {
                    let decl = self
                        .model
                        .documents
                        .iter()
                        .find(|d| d.name.name == document.name)
                        .ok_or_else(|| format!("no document `{}`", document.name))?;
                    if decl.public
                        && let Some(var) = self.minor_in_case()
                    {
                        let label = decl.label.clone().unwrap_or_else(|| decl.name.name.clone());
                        self.history(
                            Some(node),
                            "document_withheld",
                            format!(
                                "{label} not issued: `{var}` is the ID number of a person under 18 \
                                 on the case's date, and a public document never names a minor"
                            ),
                            json!({ "name": decl.name.name, "var": var }),
                        );
                        continue;
                    }
                    let content = match crate::documents::render(&self.context(), decl) {
                        Ok(content) => content,
                        Err(e) if e.over_limit => {
                            let field = format!("document {}", decl.name.name);
                            return Err(self.over_limit(&field, e.message));
                        }
                        Err(e) => return Err(e.message),
                    };
                    let id = new_id();
                    self.cs.documents.push(NewDocument {
                        id: id.clone(),
                        name: decl.name.name.clone(),
                        label: decl.label.clone(),
                        public: decl.public,
                        content,
                    });
                    self.history(
                        Some(node),
                        "document",
                        format!(
                            "issued {}",
                            decl.label.clone().unwrap_or_else(|| decl.name.name.clone())
                        ),
                        json!({ "document": id, "name": decl.name.name }),
                    );
                }
                Action::Clock { op, clock, .. } => self.clock(node, op, &clock.name)?,
                Action::FollowUp {
                    id, label, queue, ..
                } => {
                    let (q, org_unit) = self.queue(queue)?;
                    let task_id = new_id();
                    self.cs.new_tasks.push(NewTask {
                        id: task_id.clone(),
                        node: id.name.clone(),
                        label: label.clone(),
                        queue: q.clone(),
                        org_unit,
                        assignee: None,
                        item: None,
                        due_at: None,
                    });
                    self.history(
                        Some(node),
                        "task_created",
                        format!("follow-up task {} for {q}", id.name),
                        json!({ "task": task_id, "queue": q, "follow_up": true }),
                    );
                }
            }
        }
        Ok(())
    }

    /// Fills `{{ var }}` placeholders with (masked) case data.
    fn context(&self) -> crate::documents::Context<'_> {
        crate::documents::Context {
            model: self.model,
            data: self.data,
            vars: &self.cs.vars,
            state: &self.cs.state,
            item: self.item.as_ref().map(|(n, j)| (n.as_str(), j)),
            now: self.now,
            limits: self.bounds.limits,
        }
    }

    /// Fills `{{ var }}` placeholders of a message with masked case data. A text that does
    /// not render is kept as written (with the reason), never dropped.
    fn fill(&self, text: &str) -> String {
        if !text.contains("{{") && !text.contains("{%") {
            return text.to_string();
        }
        crate::documents::render_text(&self.context(), "message", text, true)
            .unwrap_or_else(|e| format!("{text} [{}]", e.message))
    }

    fn clock(&mut self, node: &str, op: &ClockOp, name: &str) -> Result<(), String> {
        let decl = self
            .model
            .clocks
            .iter()
            .find(|c| c.name.name == name)
            .ok_or_else(|| format!("no clock `{name}`"))?;
        let cal = decl
            .calendar
            .as_ref()
            .or(self.model.calendar.as_ref())
            .map(|c| c.name.clone());
        // `e` after `from`, with the inputs (amount, unit) to keep.
        let add = |run: &mut Self,
                   from: DateTime<Utc>,
                   e: &Expr|
         -> Result<(due::Due, i64, yimen_dsl::model::DurationUnit), String> {
            let v = run.eval(e)?;
            let (amount, unit) = v.to_duration()?;
            let due = run.due.add(cal.as_deref(), from, amount, unit);
            if due.provisional {
                run.cs.provisional = true;
            }
            run.note_due(&due, unit);
            Ok((due, amount, unit))
        };
        let cancel_ladder = |run: &mut Self| {
            if let Some(s) = run.cs.state.clocks.get_mut(name) {
                let ids = std::mem::take(&mut s.timers);
                run.cs.cancel_timers.extend(ids);
            }
        };
        let text;
        match op {
            ClockOp::Start { duration } => {
                let expr = duration
                    .as_ref()
                    .or(decl.deadline.as_ref().map(|d| &d.duration))
                    .ok_or_else(|| format!("clock `{name}` has no duration"))?;
                let (due, amount, unit) = add(self, self.now, expr)?;
                cancel_ladder(self);
                // Task deadlines already bound to it (a restart) follow the new due time.
                let bound = self
                    .cs
                    .state
                    .clocks
                    .get_mut(name)
                    .map(|s| std::mem::take(&mut s.bound))
                    .unwrap_or_default();
                self.cs.state.clocks.insert(
                    name.to_string(),
                    ClockState {
                        due_at: Some(millis(due.at)),
                        remaining_minutes: None,
                        running: true,
                        provisional: due.provisional,
                        timers: Vec::new(),
                        basis: Some(ClockBasis::Add {
                            from: millis(self.now),
                            amount,
                            unit,
                            calendar: cal.clone(),
                        }),
                        bound,
                    },
                );
                self.schedule_clock(node, name, due.at)?;
                self.follow_clock(name, Some(due.at), "started")?;
                text = format!("clock {name} started, due {}", self.readable(due.at));
            }
            ClockOp::Pause => {
                cancel_ladder(self);
                let s = self
                    .cs
                    .state
                    .clocks
                    .get_mut(name)
                    .ok_or_else(|| format!("clock `{name}` was not started"))?;
                let mut paused = false;
                if s.running {
                    let due = s.due_at.and_then(DateTime::from_timestamp_millis);
                    // Remaining working time, so a clock paused over a holiday loses nothing.
                    s.remaining_minutes = due.map(|d| {
                        self.due
                            .office_minutes_between(cal.as_deref(), self.now, d)
                            .max(0)
                    });
                    s.due_at = None;
                    s.basis = None;
                    s.running = false;
                    paused = true;
                }
                let left = s.remaining_minutes.unwrap_or(0);
                if paused {
                    self.follow_clock(name, None, "paused")?;
                }
                text = format!("clock {name} paused, {left} office minutes left");
            }
            ClockOp::Resume => {
                let s = self
                    .cs
                    .state
                    .clocks
                    .get_mut(name)
                    .ok_or_else(|| format!("clock `{name}` was not started"))?;
                let mut due = None;
                if !s.running {
                    let left = s.remaining_minutes.take().unwrap_or(0);
                    let d = self.due.add_office_minutes(cal.as_deref(), self.now, left);
                    s.due_at = Some(millis(d.at));
                    s.running = true;
                    s.provisional = d.provisional;
                    s.basis = Some(ClockBasis::OfficeMinutes {
                        from: millis(self.now),
                        minutes: left,
                        calendar: cal.clone(),
                    });
                    self.cs.provisional |= d.provisional;
                    due = Some(d.at);
                }
                if let Some(due) = due {
                    self.schedule_clock(node, name, due)?;
                    self.follow_clock(name, Some(due), "resumed")?;
                }
                text = format!("clock {name} resumed");
            }
            ClockOp::Stop => {
                cancel_ladder(self);
                self.follow_clock(name, None, "stopped")?;
                if let Some(s) = self.cs.state.clocks.get_mut(name) {
                    s.running = false;
                    s.due_at = None;
                    s.remaining_minutes = None;
                    s.basis = None;
                    // A stopped clock no longer carries deadlines.
                    s.bound.clear();
                }
                text = format!("clock {name} stopped");
            }
            ClockOp::Extend { by, reason } => {
                let current = self
                    .cs
                    .state
                    .clocks
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("clock `{name}` was not started"))?;
                if let Some(due_ms) = current.due_at {
                    let from = DateTime::from_timestamp_millis(due_ms).unwrap_or(self.now);
                    let (due, amount, unit) = add(self, from, by)?;
                    cancel_ladder(self);
                    let basis = match current.basis {
                        Some(b) => ClockBasis::Extended {
                            base: Box::new(b),
                            amount,
                            unit,
                            calendar: cal.clone(),
                        },
                        // A state written before the inputs were kept: from the due time.
                        None => ClockBasis::Add {
                            from: due_ms,
                            amount,
                            unit,
                            calendar: cal.clone(),
                        },
                    };
                    if let Some(s) = self.cs.state.clocks.get_mut(name) {
                        s.due_at = Some(millis(due.at));
                        s.provisional = current.provisional || due.provisional;
                        s.basis = Some(basis);
                    }
                    self.schedule_clock(node, name, due.at)?;
                    self.follow_clock(name, Some(due.at), "extended")?;
                    text = format!(
                        "clock {name} extended to {}: {reason}",
                        self.readable(due.at)
                    );
                } else {
                    let from = self.now;
                    let (until, _, _) = add(self, from, by)?;
                    let extra = self
                        .due
                        .office_minutes_between(cal.as_deref(), from, until.at);
                    if let Some(s) = self.cs.state.clocks.get_mut(name) {
                        s.remaining_minutes = Some(s.remaining_minutes.unwrap_or(0) + extra);
                    }
                    text = format!("clock {name} extended (paused): {reason}");
                }
            }
        }
        self.history(Some(node), "clock", text, json!({ "clock": name }));
        Ok(())
    }

    fn schedule_clock(&mut self, node: &str, name: &str, due: DateTime<Utc>) -> Result<(), String> {
        let Some(deadline) = self
            .model
            .clocks
            .iter()
            .find(|c| c.name.name == name)
            .and_then(|c| c.deadline.as_ref())
        else {
            return Ok(());
        };
        self.ladder(node, None, deadline, Some((name, due)))?;
        Ok(())
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
