//! Process models built in code, without the parser: one builder per part of a model, and
//! `case`, the process of the API tests.

use yimen_dsl::model::*;

pub fn id(s: &str) -> Ident {
    Ident {
        name: s.into(),
        span: Span::default(),
    }
}

pub fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}
pub fn name(n: &str) -> Expr {
    expr(ExprKind::Name(n.into()))
}
pub fn int(i: i64) -> Expr {
    expr(ExprKind::Integer(i))
}
pub fn text(s: &str) -> Expr {
    expr(ExprKind::Text(s.into()))
}
pub fn days(n: i64) -> Expr {
    expr(ExprKind::Duration {
        amount: n,
        unit: DurationUnit::Days,
    })
}
pub fn hours(n: i64) -> Expr {
    expr(ExprKind::Duration {
        amount: n,
        unit: DurationUnit::Hours,
    })
}
pub fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    expr(ExprKind::Binary(op, Box::new(l), Box::new(r)))
}
pub fn field(base: Expr, f: &str) -> Expr {
    expr(ExprKind::Field(Box::new(base), f.into()))
}

pub fn var(n: &str, ty: Type) -> VarDecl {
    VarDecl {
        name: id(n),
        ty,
        label: None,
        personal: None,
        required: false,
        default: None,
        span: Span::default(),
    }
}

/// A node without a label (its history lines name it by its id alone).
pub fn node(n: &str, kind: NodeKind) -> Node {
    Node {
        id: id(n),
        label: None,
        kind,
        span: Span::default(),
    }
}

pub fn start(next: &str) -> Node {
    node("start", NodeKind::Start { next: id(next) })
}
pub fn end(n: &str, result: &str) -> Node {
    node(
        n,
        NodeKind::End {
            result: id(result),
            actions: vec![],
        },
    )
}
pub fn step(n: &str, actions: Vec<Action>, next: &str) -> Node {
    node(
        n,
        NodeKind::Step {
            actions,
            next: id(next),
        },
    )
}
pub fn assign(v: &str, value: Expr) -> Action {
    Action::Assign {
        var: id(v),
        value,
        span: Span::default(),
    }
}

pub fn outcome(key: &str, next: &str) -> Outcome {
    Outcome {
        key: id(key),
        label: None,
        next: id(next),
        requires: vec![],
        span: Span::default(),
    }
}

pub fn task_spec(queue: &str, outcomes: Vec<Outcome>, fields: &[(&str, bool)]) -> Task {
    Task {
        queue: QueueRef {
            role: id(queue),
            key: None,
            span: Span::default(),
        },
        assignee: None,
        for_each: None,
        outcomes,
        fields: fields
            .iter()
            .map(|(v, r)| FieldSpec {
                var: id(v),
                required: *r,
                span: Span::default(),
            })
            .collect(),
        deadline: None,
        on_enter: vec![],
    }
}

pub fn task(n: &str, queue: &str, outcomes: Vec<Outcome>, fields: &[(&str, bool)]) -> Node {
    node(n, NodeKind::Task(task_spec(queue, outcomes, fields)))
}

pub fn role(n: &str) -> RoleDecl {
    RoleDecl {
        name: id(n),
        label: None,
        scope: None,
        keyed_by: None,
        oversees: false,
        informs_subject: false,
        reassigns: Vec::new(),
        span: Span::default(),
    }
}

pub fn process(key: &str, vars: Vec<VarDecl>, roles: &[&str], nodes: Vec<Node>) -> Process {
    Process {
        key: id(key),
        title: format!("{key} 测试"),
        version: 1,
        imports: vec![],
        config: None,
        calendar: None,
        enums: vec![],
        vars,
        roles: roles.iter().map(|r| role(r)).collect(),
        channels: vec![],
        documents: vec![],
        clocks: vec![],
        nodes,
        span: Span::default(),
    }
}

/// A process of one task for the window, started with no variables.
pub fn one_task(key: &str) -> Process {
    process(
        key,
        vec![],
        &["window"],
        vec![
            start("check"),
            task("check", "window", vec![outcome("done", "end")], &[]),
            end("end", "done"),
        ],
    )
}

/// Gives every node the label `<id> label`.
pub fn labelled(nodes: Vec<Node>) -> Vec<Node> {
    nodes
        .into_iter()
        .map(|node| Node {
            label: Some(format!("{} label", node.id.name)),
            ..node
        })
        .collect()
}

/// `case`: start → intake (queue `window`, per street) → choice on amount → [review (queue
/// `review`)] → wait for message `docs` → end `approved`; intake may also reject → end `rejected`.
pub fn case_model() -> Process {
    let scoped = |name: &str, scope: Option<&str>, oversees: bool| RoleDecl {
        scope: scope.map(id),
        oversees,
        ..role(name)
    };
    Process {
        title: "Test case".into(),
        vars: vec![
            VarDecl {
                personal: Some(PersonalKind::Name),
                required: true,
                ..var("name", Type::Text)
            },
            VarDecl {
                required: true,
                ..var("street", Type::Text)
            },
            VarDecl {
                required: true,
                ..var("amount", Type::Integer)
            },
            var("checked", Type::Boolean),
            var("note", Type::Text),
        ],
        roles: vec![
            scoped("window", Some("street"), false),
            scoped("review", None, false),
            // Reads every case and the ledger; no task is queued on it.
            scoped("audit", None, true),
        ],
        nodes: labelled(vec![
            node("begin", NodeKind::Start { next: id("intake") }),
            task(
                "intake",
                "window",
                vec![outcome("ok", "route"), outcome("reject", "rejected")],
                &[("checked", true), ("note", false)],
            ),
            node(
                "route",
                NodeKind::Choice {
                    branches: vec![Branch {
                        when: bin(BinaryOp::Gt, name("amount"), int(1000)),
                        next: id("review"),
                        span: Span::default(),
                    }],
                    default: Some(id("docs")),
                },
            ),
            task("review", "review", vec![outcome("approve", "docs")], &[]),
            node(
                "docs",
                NodeKind::WaitMessage {
                    message: id("docs"),
                    sets: vec![FieldSpec {
                        var: id("note"),
                        required: true,
                        span: Span::default(),
                    }],
                    next: id("done"),
                    timeout: None,
                },
            ),
            end("done", "approved"),
            end("rejected", "rejected"),
        ]),
        ..process("case", vec![], &[], vec![])
    }
}
