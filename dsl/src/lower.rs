//! [`ast::File`] → [`model::Process`]. Collects declarations and turns node bodies (written
//! in any order) into the model's fields. Reports only what the model cannot hold (a task
//! with two `queue` lines, a second header-level `calendar`, ...); names, types and the
//! graph are the checker's job.

use crate::ast::{self, Item, NodeKind as A, TaskEntry, WaitEntry};
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{self, ConfigDecl, Ident, NodeKind, Process, QueueRef, Span, Task};

/// Code of structural errors found while lowering (duplicate or missing parts of a node).
pub const STRUCTURE: &str = "YM0002";

/// Lowers a parsed file into the model. The process is always returned (with placeholders
/// where a part is missing) so that the checker can still report everything else; the
/// diagnostics say what could not be lowered.
pub fn lower(file: &str, ast: &ast::File) -> (Process, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut err = |span: Span, message: String, label: &str, help: &str| {
        diags.push(Diagnostic {
            code: STRUCTURE,
            severity: Severity::Error,
            message,
            file: file.to_string(),
            span,
            label: label.to_string(),
            help: Some(help.to_string()),
        });
    };
    let mut p = Process {
        key: ast.header.key.clone(),
        title: ast.header.title.clone(),
        version: ast.header.version,
        imports: Vec::new(),
        config: None,
        calendar: None,
        enums: Vec::new(),
        vars: Vec::new(),
        roles: Vec::new(),
        channels: Vec::new(),
        documents: Vec::new(),
        clocks: Vec::new(),
        nodes: Vec::new(),
        span: ast.span,
    };
    for item in &ast.items {
        match item {
            Item::Import(id, _) => p.imports.push(id.clone()),
            Item::Calendar(id, span) => {
                if p.calendar.is_some() {
                    err(
                        *span,
                        "the process names its calendar twice".into(),
                        "second calendar",
                        "keep one `calendar` line; a clock may name its own calendar inside its block",
                    );
                } else {
                    p.calendar = Some(id.clone());
                }
            }
            Item::Config(c) => {
                if p.config.is_some() {
                    err(
                        c.span,
                        "the process declares its configuration twice".into(),
                        "second config block",
                        "merge the keys into one `config \"file.yaml\" { ... }` block",
                    );
                } else {
                    p.config = Some(ConfigDecl {
                        file: c.file.clone(),
                        keys: c.keys.clone(),
                        span: c.span,
                    });
                }
            }
            Item::Enum(e) => p.enums.push(e.clone()),
            Item::Var(v) => p.vars.push(v.clone()),
            Item::Role(r) => p.roles.push(r.clone()),
            Item::Channel(c) => p.channels.push(c.clone()),
            Item::Document(d) => p.documents.push(d.clone()),
            Item::Clock(c) => {
                let mut c = c.clone();
                if let Some(d) = c.deadline.as_mut()
                    && d.clock.is_none()
                {
                    d.clock = Some(c.name.clone());
                }
                p.clocks.push(c);
            }
            Item::Node(n) => {
                let kind = lower_node(n, &mut err);
                p.nodes.push(model::Node {
                    id: n.id.clone(),
                    label: n.label.clone(),
                    kind,
                    span: n.span,
                });
            }
        }
    }
    (p, diags)
}

fn lower_node(n: &ast::Node, err: &mut impl FnMut(Span, String, &str, &str)) -> NodeKind {
    match &n.kind {
        A::Start { next } => NodeKind::Start { next: next.clone() },
        A::End { result, actions } => NodeKind::End {
            result: result.clone().unwrap_or_else(|| n.id.clone()),
            actions: actions.clone().unwrap_or_default(),
        },
        A::Step { actions, next } => NodeKind::Step {
            actions: actions.clone(),
            next: next.clone(),
        },
        A::Task { for_each, entries } => NodeKind::Task(lower_task(n, for_each, entries, err)),
        A::Choice {
            branches, default, ..
        } => NodeKind::Choice {
            branches: branches.clone(),
            default: default.clone(),
        },
        A::Parallel { branches } => NodeKind::Split {
            branches: branches.clone(),
        },
        A::Join { next } => NodeKind::Join { next: next.clone() },
        A::WaitMessage {
            message,
            entries,
            next,
        } => {
            let mut sets = Vec::new();
            let mut timeout = None;
            for e in entries.iter().flatten() {
                match e {
                    WaitEntry::Field(f) => sets.push(f.clone()),
                    WaitEntry::Timeout { after, next, span } => {
                        if timeout.is_some() {
                            err(
                                *span,
                                format!("wait `{}` has two timeouts", n.id.name),
                                "second timeout",
                                "keep one `timeout <duration> -> node` line",
                            );
                        } else {
                            timeout = Some((after.clone(), next.clone()));
                        }
                    }
                }
            }
            NodeKind::WaitMessage {
                message: message.clone(),
                sets,
                next: next.clone(),
                timeout,
            }
        }
        A::WaitTimer { duration, next } => NodeKind::WaitTimer {
            duration: duration.clone(),
            next: next.clone(),
        },
        A::Call {
            process,
            inputs,
            wait,
            next,
        } => NodeKind::StartProcess {
            process: process.clone(),
            inputs: inputs
                .iter()
                .flatten()
                .map(|i| (i.name.clone(), i.value.clone()))
                .collect(),
            wait: *wait,
            next: next.clone(),
        },
    }
}

fn lower_task(
    n: &ast::Node,
    for_each: &Option<model::ForEach>,
    entries: &[TaskEntry],
    err: &mut impl FnMut(Span, String, &str, &str),
) -> Task {
    let mut queue: Option<QueueRef> = None;
    let mut task = Task {
        queue: QueueRef {
            role: Ident {
                name: String::new(),
                span: n.id.span,
            },
            key: None,
            span: n.id.span,
        },
        assignee: None,
        for_each: for_each.clone(),
        outcomes: Vec::new(),
        fields: Vec::new(),
        deadline: None,
        on_enter: Vec::new(),
    };
    let id = &n.id.name;
    for e in entries {
        match e {
            TaskEntry::Queue(q, span) => {
                if queue.is_some() {
                    err(
                        *span,
                        format!("task `{id}` names two queues"),
                        "second queue",
                        "a task is claimed from one queue: keep one `queue` line",
                    );
                } else {
                    queue = Some(q.clone());
                }
            }
            TaskEntry::Assignee(a, span) => {
                if task.assignee.is_some() {
                    err(
                        *span,
                        format!("task `{id}` has two assignee rules"),
                        "second assignee",
                        "keep one `assignee` line",
                    );
                } else {
                    task.assignee = Some(a.clone());
                }
            }
            TaskEntry::Fields(f, _) => task.fields.extend(f.iter().cloned()),
            TaskEntry::Deadline(d) => {
                if task.deadline.is_some() {
                    err(
                        d.span,
                        format!("task `{id}` has two deadlines"),
                        "second deadline",
                        "keep one `deadline`; put several reminders in its ladder, or use a named clock for a second limit",
                    );
                } else {
                    task.deadline = Some(d.clone());
                }
            }
            TaskEntry::OnEnter(a, _) => task.on_enter.extend(a.iter().cloned()),
            TaskEntry::Outcome(o) => task.outcomes.push(o.clone()),
        }
    }
    match queue {
        Some(q) => task.queue = q,
        None => err(
            n.id.span,
            format!("task `{id}` names no queue"),
            "no queue",
            "add `queue <role>` so that someone can claim the task",
        ),
    }
    task
}
