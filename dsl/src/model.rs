//! The checked model of a process: what the parser lowers a file into, what the checker
//! validates, what `graph` renders and what the engine executes (stored as JSON with each
//! deployment).
//!
//! Architecture invariant: this module is plain data. It knows nothing of pest, of the
//! database or of any particular process (social assistance lives in `processes/`).
//! Every item that came from source text carries its [`Span`] so that the checker and the
//! engine can point back at the file.

use serde::{Deserialize, Serialize};

/// Byte range in the source file (`start..end`). Line and column are computed when a
/// diagnostic is rendered (see `diagnostics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// An identifier as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ident {
    pub name: String,
    #[serde(default)]
    pub span: Span,
}

/// A whole process file, lowered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Machine key, e.g. `social_assistance`. Instances are started by key.
    pub key: Ident,
    /// Human title, UTF-8 (`"社会救助一门受理、协同办理"`).
    pub title: String,
    /// Version number written by the administrator in the header.
    pub version: u32,
    /// Other processes this one may start (`start process` steps name them).
    pub imports: Vec<Ident>,
    /// The YAML configuration this process reads, and the keys it expects there.
    pub config: Option<ConfigDecl>,
    /// Default calendar for working-day durations (`cn_mainland` if not set).
    pub calendar: Option<Ident>,
    pub enums: Vec<EnumDecl>,
    pub vars: Vec<VarDecl>,
    pub roles: Vec<RoleDecl>,
    pub channels: Vec<ChannelDecl>,
    pub documents: Vec<DocumentDecl>,
    pub clocks: Vec<ClockDecl>,
    /// Flow nodes in source order. Exactly one is a [`NodeKind::Start`].
    pub nodes: Vec<Node>,
    pub span: Span,
}

/// `config "file.yaml" { key: type ... }`: the configuration keys the process reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDecl {
    /// Path relative to the process file.
    pub file: String,
    pub keys: Vec<ConfigKey>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigKey {
    pub name: Ident,
    pub ty: Type,
    pub span: Span,
}

/// `enum category { minimum_living "最低生活保障", ... }` or `enum department from config departments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnumDecl {
    pub name: Ident,
    pub source: EnumSource,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EnumSource {
    /// Values written in the process file.
    Listed(Vec<EnumValue>),
    /// Values are the keys of a map in the configuration file (labels from its `name` field).
    Config(Ident),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnumValue {
    pub key: Ident,
    pub label: Option<String>,
}

/// Value types of variables, expressions and configuration keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Type {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    /// A point in time (task completion times, `now()`).
    DateTime,
    /// A length of time with its unit (`3 workdays`, `7 days`, `4 workhours`).
    Duration,
    /// Values of the named enum.
    Enum(String),
    List(Box<Type>),
    /// Only in configuration declarations: `map<category, duration>`.
    Map(Box<Type>, Box<Type>),
}

/// How a personal-data variable is masked in logs and public lists (PIPL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonalKind {
    /// Chinese ID number: `150302********1235`.
    IdNumber,
    /// Phone: `138****8000`.
    Phone,
    /// Person's name: `张**`.
    Name,
    /// Address: only the first few characters.
    Address,
    /// Anything else sensitive (reason, health, finances): fully masked.
    Sensitive,
}

/// `var id_number: text personal(id_number) "身份证号"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VarDecl {
    pub name: Ident,
    pub ty: Type,
    pub label: Option<String>,
    pub personal: Option<PersonalKind>,
    /// Must be given when an instance starts.
    pub required: bool,
    pub default: Option<Expr>,
    pub span: Span,
}

/// `role window "社会救助受理窗口" per street`: a queue of human work. With `per`, every value
/// of the scope variable is its own queue (each street's window sees only its cases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleDecl {
    pub name: Ident,
    pub label: Option<String>,
    /// Variable whose value names the organisation unit that scopes the queue.
    pub scope: Option<Ident>,
    /// Roles keyed by an enum (one queue per department): `role department[department]`.
    pub keyed_by: Option<Ident>,
    /// `oversees`: besides working the role's queue, its holders read every case (within
    /// the organisation units their token is limited to), every inbox, the ledger and reports.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oversees: bool,
    /// `informs applicant`: its holders read the notices to the person the case concerns
    /// (`notify applicant`) and pass them on.
    #[serde(default, skip_serializing_if = "is_false")]
    pub informs_subject: bool,
    /// `reassigns window`: its holders may hand the cases of one holder of a named role (the
    /// tasks assigned to them) to another holder of it in their organisation unit, for a time
    /// or for good (a first responder away: docs/api.md, "Reassigning a first responder's
    /// cases").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reassigns: Vec<Ident>,
    pub span: Span,
}

/// Role clauses left out are not written, so the model of a process without them stays as it
/// was (and hashes the same when deployed again).
fn is_false(b: &bool) -> bool {
    !*b
}

/// `channel ledger_hook webhook config ledger_webhook_url`: an outgoing webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelDecl {
    pub name: Ident,
    pub label: Option<String>,
    /// Where the URL comes from (a config key), so no URL is written in the process file.
    pub url_config: Ident,
    pub span: Span,
}

/// `document supplement_notice "补证通知书" template "templates/supplement_notice.md.j2"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentDecl {
    pub name: Ident,
    pub label: Option<String>,
    /// Template path relative to the process file (minijinja).
    pub template: String,
    /// `public`: personal data is masked / filtered even in the stored document.
    pub public: bool,
    pub span: Span,
}

/// `clock statutory "法定时限" { deadline ... }`: a named clock an instance may start, pause,
/// resume, extend and stop. Remaining working time is kept while paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockDecl {
    pub name: Ident,
    pub label: Option<String>,
    pub calendar: Option<Ident>,
    /// Default limit and ladder when the clock is started without its own duration.
    pub deadline: Option<Deadline>,
    pub span: Span,
}

/// A limit with its escalation ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadline {
    pub duration: Expr,
    /// Clock the deadline hangs on; `None` for a task deadline: the task's own clock.
    pub clock: Option<Ident>,
    pub ladder: Vec<Escalation>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub when: EscalationWhen,
    /// Level shown to people (1 = supervision office, 2 = leadership group, ...). 0 = reminder.
    pub level: u32,
    pub actions: Vec<Action>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EscalationWhen {
    /// Reminder this long before due (duration expression).
    Before(Expr),
    AtDue,
    /// This long after due.
    After(Expr),
}

/// A flow node. `id` is stable across edits: running instances are mapped by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: Ident,
    pub label: Option<String>,
    pub kind: NodeKind,
    pub span: Span,
}

/// Edge target: a node id as written.
pub type Target = Ident;

// Nodes are few and built once per deployment; boxing the task would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeKind {
    Start {
        next: Target,
    },
    End {
        /// Result key recorded on the instance (`approved`, `rejected`, `not_accepted`, ...).
        result: Ident,
        actions: Vec<Action>,
    },
    Task(Task),
    /// Runs its actions in order, then goes on to `next` without waiting.
    Step {
        actions: Vec<Action>,
        next: Target,
    },
    /// Exclusive choice: first true condition wins, else `default`.
    Choice {
        branches: Vec<Branch>,
        default: Option<Target>,
    },
    /// Parallel split: one token to every branch.
    Split {
        branches: Vec<Target>,
    },
    /// Parallel join: waits for a token on every incoming edge, then goes on.
    Join {
        next: Target,
    },
    /// Waits for a named message (`POST /instances/{id}/messages/{name}`); its payload sets
    /// the listed variables. Optional timeout with its own next step.
    WaitMessage {
        message: Ident,
        sets: Vec<FieldSpec>,
        next: Target,
        timeout: Option<(Expr, Target)>,
    },
    /// Waits for a duration (a publicity period: `wait 7 days`).
    WaitTimer {
        duration: Expr,
        next: Target,
    },
    /// Starts another process; with `wait` the node is a wait state until the child ends and
    /// the child's result is available as `<node id>.result`.
    StartProcess {
        process: Ident,
        inputs: Vec<(Ident, Expr)>,
        wait: bool,
        next: Target,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub when: Expr,
    pub next: Target,
    pub span: Span,
}

/// A human task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub queue: QueueRef,
    pub assignee: Option<Assignee>,
    /// Repeated for every element of a runtime list, in parallel; the node completes when
    /// every instance has completed. Each instance sees the element as `item`.
    pub for_each: Option<ForEach>,
    pub outcomes: Vec<Outcome>,
    /// Variables the completing worker must or may set.
    pub fields: Vec<FieldSpec>,
    pub deadline: Option<Deadline>,
    /// Actions run when the task is created (clock pause/resume, notices).
    pub on_enter: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForEach {
    pub item: Ident,
    pub list: Expr,
}

/// `queue window`, or `queue department[item]` for a keyed role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRef {
    pub role: Ident,
    pub key: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Assignee {
    /// The worker who completed that task (the first responder, 首问责任人).
    CompletedBy(Ident),
    /// The principal who started the instance (who registered the case), as the engine
    /// recorded it at the start.
    StartedBy,
    /// A worker id computed from case data.
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub key: Ident,
    pub label: Option<String>,
    pub next: Target,
    /// Variables required for this outcome only (besides the task's fields).
    pub requires: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub var: Ident,
    pub required: bool,
    pub span: Span,
}

/// Something a node does without waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// `set x = expr`
    Assign { var: Ident, value: Expr, span: Span },
    /// `notify window "..."`, `notify applicant "..."`, `notify channel ledger_hook "..."`.
    Notify {
        target: NotifyTarget,
        /// Message text; `{{ var }}` placeholders are filled from case data (masked).
        message: String,
        span: Span,
    },
    /// `ledger "已受理"`: an explicit ledger (台账) entry with a label.
    Ledger { entry: String, span: Span },
    /// `issue supplement_notice`: renders a document template into the instance's documents.
    Issue { document: Ident, span: Span },
    /// `start clock statutory [for <duration>]`, `pause clock`, `resume clock`, `stop clock`,
    /// `extend clock statutory by 15 workdays "reason"`.
    Clock {
        op: ClockOp,
        clock: Ident,
        span: Span,
    },
    /// Follow-up task created by an escalation: `task window chase "查明延误原因"`.
    FollowUp {
        id: Ident,
        label: Option<String>,
        queue: QueueRef,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NotifyTarget {
    Role(QueueRef),
    /// `notify applicant`: the person the case concerns. Their notices go to the inbox the
    /// roles declared `informs applicant` read. (Stored as `Applicant`, as before the rename.)
    #[serde(rename = "Applicant")]
    Subject,
    /// Whoever holds (is assigned / has claimed) the late task.
    Holder,
    Channel(Ident),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClockOp {
    Start { duration: Option<Expr> },
    Pause,
    Resume,
    Stop,
    Extend { by: Expr, reason: String },
}

/// Units of a duration literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DurationUnit {
    /// 工作日: working days of the calendar; due at the close of office hours.
    WorkDays,
    /// Office hours only.
    WorkHours,
    /// Calendar days; a period whose last day is a rest day ends on the next working day.
    Days,
    Hours,
    Minutes,
}

/// Expressions of conditions, assignments and durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExprKind {
    Text(String),
    Integer(i64),
    /// Decimal literal kept as written (`1200.50`).
    Decimal(String),
    Boolean(bool),
    /// `date "2026-10-01"`
    Date(String),
    Duration {
        amount: i64,
        unit: DurationUnit,
    },
    /// A variable, an enum value or an item of a for-each (resolved by the checker).
    Name(String),
    /// `config.decision_limit`
    Config(String),
    /// `a.b`: field of a node result (`forward.completed_by`, `temp.result`).
    Field(Box<Expr>, String),
    /// `m[k]`: map or list lookup.
    Index(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// Built-in function: `len(xs)`, `today()`, `now()`, `outcomes(node)`, `is_empty(xs)`.
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `x in xs`
    In,
    Add,
    Sub,
    Mul,
    Div,
}
