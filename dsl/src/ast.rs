//! The syntax tree of a process file, as written: items and node bodies in source order, every
//! element with its span, and the comments (kept aside for the formatter). Declarations reuse
//! the plain-data types of [`crate::model`] where the written form and the model coincide.

use crate::model::{
    Action, Assignee, Branch, ChannelDecl, ClockDecl, ConfigKey, Deadline, DocumentDecl, EnumDecl,
    Expr, FieldSpec, ForEach, Ident, Outcome, QueueRef, RoleDecl, Span, VarDecl,
};

/// A parsed process file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub header: Header,
    pub items: Vec<Item>,
    /// Every `//` comment of the file, in source order.
    pub comments: Vec<Comment>,
    pub span: Span,
}

/// `process key "title" version N`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: Ident,
    pub title: String,
    pub version: u32,
    pub span: Span,
}

/// A `//` comment; `text` excludes the slashes and the line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub text: String,
    pub span: Span,
}

/// A top-level declaration or flow node.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Import(Ident, Span),
    Calendar(Ident, Span),
    Config(ConfigBlock),
    Enum(EnumDecl),
    Var(VarDecl),
    Role(RoleDecl),
    Channel(ChannelDecl),
    Document(DocumentDecl),
    Clock(ClockDecl),
    Node(Node),
}

impl Item {
    /// Where the item is written.
    pub fn span(&self) -> Span {
        match self {
            Item::Import(_, s) | Item::Calendar(_, s) => *s,
            Item::Config(c) => c.span,
            Item::Enum(e) => e.span,
            Item::Var(v) => v.span,
            Item::Role(r) => r.span,
            Item::Channel(c) => c.span,
            Item::Document(d) => d.span,
            Item::Clock(c) => c.span,
            Item::Node(n) => n.span,
        }
    }
}

/// `config "file.yaml" { key: type ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigBlock {
    pub file: String,
    pub keys: Vec<ConfigKey>,
    pub span: Span,
}

/// A flow node as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: Ident,
    pub label: Option<String>,
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `start id "label" -> next`
    Start { next: Ident },
    /// `end id "label" [result key] [{ actions }]`; without `result` the id is the result.
    End {
        result: Option<Ident>,
        actions: Option<Vec<Action>>,
    },
    /// `step id "label" { actions } -> next`
    Step { actions: Vec<Action>, next: Ident },
    /// `task id "label" [for each x in list] { entries }`
    Task {
        for_each: Option<ForEach>,
        entries: Vec<TaskEntry>,
    },
    /// `choice id "label" { when cond -> a ... else -> b }`
    Choice {
        branches: Vec<Branch>,
        default: Option<Ident>,
        /// Span of the `else -> b` line.
        default_span: Option<Span>,
    },
    /// `parallel id "label" { -> a -> b }`
    Parallel { branches: Vec<Ident> },
    /// `join id "label" -> next`
    Join { next: Ident },
    /// `wait id "label" message m { required x  timeout 30 days -> t } -> next`
    WaitMessage {
        message: Ident,
        /// `None` when written without a `{ }` block.
        entries: Option<Vec<WaitEntry>>,
        next: Ident,
    },
    /// `wait id "label" 7 days -> next`
    WaitTimer { duration: Expr, next: Ident },
    /// `call id "label" process key [with { a = expr }] [nowait] -> next`
    Call {
        process: Ident,
        inputs: Option<Vec<CallInput>>,
        wait: bool,
        next: Ident,
    },
}

/// One line (or block) of a task body, in source order.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEntry {
    Queue(QueueRef, Span),
    Assignee(Assignee, Span),
    Fields(Vec<FieldSpec>, Span),
    Deadline(Deadline),
    OnEnter(Vec<Action>, Span),
    Outcome(Outcome),
}

impl TaskEntry {
    /// Where the entry is written.
    pub fn span(&self) -> Span {
        match self {
            TaskEntry::Queue(_, s)
            | TaskEntry::Assignee(_, s)
            | TaskEntry::Fields(_, s)
            | TaskEntry::OnEnter(_, s) => *s,
            TaskEntry::Deadline(d) => d.span,
            TaskEntry::Outcome(o) => o.span,
        }
    }
}

/// One line of a `wait ... message` block.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitEntry {
    Field(FieldSpec),
    Timeout {
        after: Expr,
        next: Ident,
        span: Span,
    },
}

impl WaitEntry {
    /// Where the entry is written.
    pub fn span(&self) -> Span {
        match self {
            WaitEntry::Field(f) => f.span,
            WaitEntry::Timeout { span, .. } => *span,
        }
    }
}

/// `name = expr` in a `call ... with { }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInput {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}
