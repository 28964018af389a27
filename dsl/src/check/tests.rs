//! Checks on processes built in Rust (flow shapes that are tedious to write as files); the
//! file corpus lives in `dsl/tests/err` and `dsl/tests/ok`.

use super::*;
use crate::model::*;

/// Builds a process node by node; every identifier gets its own span so that diagnostics
/// come out in a stable order.
pub(crate) struct B {
    pub p: Process,
    at: usize,
}

impl B {
    pub fn new() -> B {
        let key = Ident {
            name: "t".into(),
            span: Span::new(0, 1),
        };
        B {
            p: Process {
                key,
                title: "test".into(),
                version: 1,
                imports: vec![],
                config: None,
                calendar: None,
                enums: vec![],
                vars: vec![],
                roles: vec![],
                channels: vec![],
                documents: vec![],
                clocks: vec![],
                nodes: vec![],
                span: Span::new(0, 1),
            },
            at: 10,
        }
    }

    pub fn id(&mut self, name: &str) -> Ident {
        self.at += 10;
        Ident {
            name: name.into(),
            span: Span::new(self.at, self.at + name.len()),
        }
    }

    fn node(&mut self, id: &str, kind: NodeKind) -> &mut Self {
        let id = self.id(id);
        let span = id.span;
        self.p.nodes.push(Node {
            id,
            label: None,
            kind,
            span,
        });
        self
    }

    pub fn start(&mut self, id: &str, next: &str) -> &mut Self {
        let next = self.id(next);
        self.node(id, NodeKind::Start { next })
    }

    pub fn end(&mut self, id: &str) -> &mut Self {
        let result = self.id("done");
        self.node(
            id,
            NodeKind::End {
                result,
                actions: vec![],
            },
        )
    }

    pub fn step(&mut self, id: &str, next: &str) -> &mut Self {
        let next = self.id(next);
        self.node(
            id,
            NodeKind::Step {
                actions: vec![],
                next,
            },
        )
    }

    pub fn task(&mut self, id: &str, outcomes: &[(&str, &str)]) -> &mut Self {
        let outcomes = outcomes
            .iter()
            .map(|(key, next)| Outcome {
                key: self.id(key),
                label: None,
                next: self.id(next),
                requires: vec![],
                span: Span::default(),
            })
            .collect();
        if self.p.roles.is_empty() {
            let name = Ident {
                name: "clerk".into(),
                span: Span::new(1, 2),
            };
            self.p.roles.push(RoleDecl {
                name,
                label: None,
                scope: None,
                keyed_by: None,
                oversees: false,
                informs_subject: false,
                reassigns: Vec::new(),
                span: Span::new(1, 2),
            });
        }
        let queue = QueueRef {
            role: self.id("clerk"),
            key: None,
            span: Span::default(),
        };
        self.node(
            id,
            NodeKind::Task(Task {
                queue,
                assignee: None,
                for_each: None,
                outcomes,
                fields: vec![],
                deadline: None,
                on_enter: vec![],
            }),
        )
    }

    pub fn choice(
        &mut self,
        id: &str,
        branches: Vec<(Expr, &str)>,
        default: Option<&str>,
    ) -> &mut Self {
        let branches = branches
            .into_iter()
            .map(|(when, next)| Branch {
                when,
                next: self.id(next),
                span: Span::default(),
            })
            .collect();
        let default = default.map(|d| self.id(d));
        self.node(id, NodeKind::Choice { branches, default })
    }

    pub fn split(&mut self, id: &str, branches: &[&str]) -> &mut Self {
        let branches = branches.iter().map(|b| self.id(b)).collect();
        self.node(id, NodeKind::Split { branches })
    }

    pub fn join(&mut self, id: &str, next: &str) -> &mut Self {
        let next = self.id(next);
        self.node(id, NodeKind::Join { next })
    }

    pub fn var(&mut self, name: &str, ty: Type) -> &mut Self {
        let name = self.id(name);
        let span = name.span;
        self.p.vars.push(VarDecl {
            name,
            ty,
            label: None,
            personal: None,
            required: true,
            default: None,
            span,
        });
        self
    }

    pub fn enumeration(&mut self, name: &str, values: &[&str]) -> &mut Self {
        let name = self.id(name);
        let values = values
            .iter()
            .map(|v| EnumValue {
                key: self.id(v),
                label: None,
            })
            .collect();
        let span = name.span;
        self.p.enums.push(EnumDecl {
            name,
            source: EnumSource::Listed(values),
            span,
        });
        self
    }

    pub fn codes(&self) -> Vec<&'static str> {
        check(&self.p, None, &[]).iter().map(|d| d.code).collect()
    }
}

pub(crate) fn expr(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::new(5, 6),
    }
}

pub(crate) fn name(n: &str) -> Expr {
    expr(ExprKind::Name(n.into()))
}

pub(crate) fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    expr(ExprKind::Binary(op, Box::new(l), Box::new(r)))
}

#[test]
fn a_block_structured_split_and_join_is_sound() {
    let mut b = B::new();
    b.start("s", "fork")
        .split("fork", &["a", "c"])
        .task("a", &[("ok", "a2"), ("again", "a")])
        .step("a2", "both")
        .choice(
            "c",
            vec![(
                bin(BinaryOp::Eq, name("flag"), expr(ExprKind::Boolean(true))),
                "c1",
            )],
            Some("c2"),
        )
        .step("c1", "cm")
        .step("c2", "cm")
        .step("cm", "both")
        .join("both", "e")
        .end("e")
        .var("flag", Type::Boolean);
    assert_eq!(b.codes(), Vec::<&str>::new());
}

#[test]
fn a_split_inside_a_loop_is_sound() {
    let mut b = B::new();
    b.start("s", "fork")
        .split("fork", &["a", "c"])
        .task("a", &[("ok", "both")])
        .task("c", &[("ok", "both")])
        .join("both", "again")
        .task("again", &[("repeat", "fork"), ("stop", "e")])
        .end("e");
    assert_eq!(b.codes(), Vec::<&str>::new());
}

#[test]
fn overlapping_splits_and_joins_that_are_sound_pass() {
    // Not block-structured: j1 joins a branch of each split. Explored state by state.
    let mut b = B::new();
    b.start("s", "s1")
        .split("s1", &["a", "b"])
        .split("a", &["c", "d"])
        .task("c", &[("ok", "j1")])
        .task("b", &[("ok", "j1")])
        .task("d", &[("ok", "j2")])
        .join("j1", "j2")
        .join("j2", "e")
        .end("e");
    assert_eq!(b.codes(), Vec::<&str>::new());
}

#[test]
fn a_choice_feeding_a_join_deadlocks() {
    let mut b = B::new();
    b.start("s", "pick")
        .task("pick", &[("left", "l"), ("right", "r")])
        .step("l", "both")
        .step("r", "both")
        .join("both", "e")
        .end("e");
    let diags = check(&b.p, None, &[]);
    assert_eq!(
        diags.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec![JOIN_DEADLOCK]
    );
    assert!(diags[0].message.contains("`both`"), "{}", diags[0].message);
}

#[test]
fn a_branch_that_ends_early_cuts_the_others_off() {
    let mut b = B::new();
    b.start("s", "fork")
        .split("fork", &["a", "c"])
        .task("a", &[("ok", "both"), ("give_up", "stop")])
        .step("c", "both")
        .join("both", "e")
        .end("e")
        .end("stop");
    // The join then waits in vain too, but the end is the mistake to fix.
    assert_eq!(b.codes(), vec![END_WHILE_RUNNING]);
}

#[test]
fn two_branches_into_a_task_race() {
    let mut b = B::new();
    b.start("s", "fork")
        .split("fork", &["a", "c"])
        .step("a", "after")
        .step("c", "after")
        .task("after", &[("ok", "e")])
        .end("e");
    let diags = check(&b.p, None, &[]);
    assert!(
        diags
            .iter()
            .any(|d| d.code == RACE && d.message.contains("`after`")),
        "{diags:#?}"
    );
}

#[test]
fn a_split_listing_one_target_twice_races() {
    let mut b = B::new();
    b.start("s", "fork")
        .split("fork", &["a", "a"])
        .step("a", "e")
        .end("e");
    assert!(b.codes().contains(&RACE));
}

#[test]
fn an_unbounded_interleaving_is_reported_as_too_complex() {
    let mut b = B::new();
    let branches: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
    b.start("s", "fork").split("fork", &refs);
    for i in 0..12 {
        let (t, u) = (format!("t{i}"), format!("u{i}"));
        b.task(&t, &[("ok", &u)]);
        b.task(&u, &[("ok", "all"), ("back", &t)]);
    }
    b.join("all", "e").end("e");
    assert_eq!(b.codes(), vec![TOO_COMPLEX]);
}

#[test]
fn reachability_and_a_way_out() {
    let mut b = B::new();
    b.start("s", "a")
        .task("a", &[("ok", "e"), ("loop", "l1")])
        .step("l1", "l2")
        .step("l2", "l1")
        .step("island", "e")
        .end("e");
    let codes = b.codes();
    assert_eq!(codes, vec![NO_WAY_OUT, NO_WAY_OUT, UNREACHABLE]);
}

#[test]
fn choices_over_booleans_and_enums_can_be_exhaustive() {
    let mut b = B::new();
    b.var("flag", Type::Boolean)
        .var("kind", Type::Enum("kind".into()))
        .enumeration("kind", &["x", "y"])
        .start("s", "c1")
        .choice(
            "c1",
            vec![
                (name("flag"), "c2"),
                (
                    expr(ExprKind::Unary(UnaryOp::Not, Box::new(name("flag")))),
                    "c2",
                ),
            ],
            None,
        )
        .choice(
            "c2",
            vec![
                (bin(BinaryOp::Eq, name("kind"), name("x")), "c3"),
                (bin(BinaryOp::Eq, name("y"), name("kind")), "c3"),
            ],
            Some("e"),
        )
        .choice(
            "c3",
            vec![(bin(BinaryOp::Eq, name("kind"), name("x")), "e")],
            None,
        )
        .end("e");
    assert_eq!(b.codes(), vec![DEAD_DEFAULT, NOT_EXHAUSTIVE]);
}

#[test]
fn expressions_are_type_checked() {
    let mut b = B::new();
    b.var("n", Type::Integer)
        .var("t", Type::Text)
        .var("d", Type::Date)
        .start("s", "c");
    let cases = vec![
        (bin(BinaryOp::Eq, name("n"), name("t")), BAD_COMPARISON),
        (
            bin(
                BinaryOp::Gt,
                bin(BinaryOp::Add, name("t"), name("t")),
                name("n"),
            ),
            BAD_ARITHMETIC,
        ),
        (bin(BinaryOp::In, name("n"), name("t")), BAD_IN),
        (name("n"), NOT_BOOLEAN),
        (
            bin(
                BinaryOp::Gt,
                bin(BinaryOp::Sub, name("d"), name("d")),
                name("n"),
            ),
            "ok",
        ),
        (
            bin(
                BinaryOp::Eq,
                bin(BinaryOp::Add, name("d"), name("n")),
                name("d"),
            ),
            "ok",
        ),
        (name("nope"), UNKNOWN_NAME),
        (expr(ExprKind::Call("size".into(), vec![])), BAD_CALL),
        (
            expr(ExprKind::Call("len".into(), vec![name("n")])),
            BAD_CALL,
        ),
    ];
    for (cond, code) in cases {
        let mut one = B::new();
        one.p.vars = b.p.vars.clone();
        one.start("s", "c")
            .choice("c", vec![(cond.clone(), "e")], Some("e"))
            .end("e");
        let codes = one.codes();
        if code == "ok" {
            assert!(codes.is_empty(), "{cond:?}: {codes:?}");
        } else {
            assert!(
                codes.contains(&code),
                "{cond:?}: expected {code}, got {codes:?}"
            );
        }
    }
}

#[test]
fn a_for_each_item_is_in_scope_in_the_queue_key_and_deadline() {
    let mut b = B::new();
    b.enumeration("dept", &["civil", "health"])
        .var("depts", Type::List(Box::new(Type::Enum("dept".into()))))
        .start("s", "each")
        .task("each", &[("ok", "e")])
        .end("e");
    b.p.roles[0].keyed_by = Some(Ident {
        name: "dept".into(),
        span: Span::new(1, 2),
    });
    let item = || expr(ExprKind::Name("d".into()));
    let NodeKind::Task(task) = &mut b.p.nodes[1].kind else {
        unreachable!("built as a task")
    };
    task.for_each = Some(ForEach {
        item: Ident {
            name: "d".into(),
            span: Span::new(3, 4),
        },
        list: name("depts"),
    });
    task.queue.key = Some(item());
    // `limits[d]` is not declared config, but `d` itself must resolve: only YM0405 appears.
    let limit = expr(ExprKind::Index(
        Box::new(expr(ExprKind::Config("limits".into()))),
        Box::new(item()),
    ));
    task.deadline = Some(Deadline {
        duration: limit,
        clock: None,
        ladder: vec![],
        span: Span::default(),
    });
    assert_eq!(b.codes(), vec![NO_CONFIG]);
}

#[test]
fn generated_ten_thousand_nodes_check_fast() {
    let p = crate::check::tests::generated(10_000);
    assert!(p.nodes.len() >= 10_000);
    let t = std::time::Instant::now();
    let diags = check(&p, None, &[]);
    assert_eq!(diags, vec![]);
    // Unoptimised test build on a shared machine: generous, the benchmark measures properly.
    assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
}

/// A process of about `n` nodes: a sequence of blocks, each a task, a choice over a boolean
/// and a parallel split of three branches (one with a nested choice) joined again.
pub(crate) fn generated(n: usize) -> Process {
    let mut b = B::new();
    b.var("flag", Type::Boolean);
    let blocks = n / 11 + 1;
    b.start("s", "b0_task");
    for i in 0..blocks {
        let next = if i + 1 == blocks {
            "e".to_string()
        } else {
            format!("b{}_task", i + 1)
        };
        let p = |s: &str| format!("b{i}_{s}");
        b.task(&p("task"), &[("ok", &p("choose")), ("again", &p("task"))])
            .choice(
                &p("choose"),
                vec![(name("flag"), &p("fork"))],
                Some(&p("skip")),
            )
            .step(&p("skip"), &p("fork"))
            .split(&p("fork"), &[&p("x"), &p("y"), &p("z")])
            .task(&p("x"), &[("ok", &p("join"))])
            .choice(&p("y"), vec![(name("flag"), &p("y1"))], Some(&p("y2")))
            .step(&p("y1"), &p("ym"))
            .task(&p("y2"), &[("ok", &p("ym")), ("other", &p("ym"))])
            .step(&p("ym"), &p("join"))
            .step(&p("z"), &p("join"))
            .join(&p("join"), &next);
    }
    b.end("e");
    b.p
}

mod random_graphs {
    use super::*;
    use proptest::prelude::*;

    /// Rewires a generated process at random: edges to other (or unknown) nodes, nodes turned
    /// into splits or joins, nodes removed. Whatever comes out, the checker must finish
    /// without panicking, within its state bound.
    fn rewire(p: &mut Process, edits: &[(usize, usize, u8)]) {
        let ids: Vec<String> = p.nodes.iter().map(|n| n.id.name.clone()).collect();
        for &(a, b, what) in edits {
            if p.nodes.is_empty() {
                return;
            }
            let a = a % p.nodes.len();
            let target = Ident {
                name: ids[b % ids.len()].clone(),
                span: Span::default(),
            };
            match what % 5 {
                0 => {
                    let next = target;
                    p.nodes[a].kind = NodeKind::Join { next };
                }
                1 => {
                    let other = Ident {
                        name: ids[(b / 7) % ids.len()].clone(),
                        span: Span::default(),
                    };
                    p.nodes[a].kind = NodeKind::Split {
                        branches: vec![target, other],
                    };
                }
                2 => {
                    p.nodes.remove(a);
                }
                3 => {
                    p.nodes[a].kind = NodeKind::Step {
                        actions: vec![],
                        next: target,
                    };
                }
                _ => {
                    let next = Ident {
                        name: "nowhere".into(),
                        span: Span::default(),
                    };
                    p.nodes[a].kind = NodeKind::Step {
                        actions: vec![],
                        next,
                    };
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn rewired_processes_are_checked_without_panic(edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..12)) {
            let mut p = generated(40);
            rewire(&mut p, &edits);
            let diags = check(&p, None, &[]);
            for d in &diags {
                prop_assert!(d.code.starts_with("YM"));
            }
            crate::graph::dot(&p);
            crate::graph::mermaid(&p);
        }
    }
}

mod reduction_is_faithful {
    use super::*;
    use proptest::prelude::*;

    /// A small random net: node 0 is the start, then tasks (one or two outcomes), splits,
    /// joins and ends, every edge to a random node after the start.
    fn net(kinds: &[(u8, usize, usize)]) -> Process {
        let n = kinds.len() + 1;
        let id = |i: usize| format!("n{}", 1 + i % (n - 1));
        let mut b = B::new();
        b.start("n0", &id(0));
        for (i, &(kind, x, y)) in kinds.iter().enumerate() {
            let me = format!("n{}", i + 1);
            match kind % 6 {
                0 => b.task(&me, &[("a", &id(x))]),
                1 => b.task(&me, &[("a", &id(x)), ("b", &id(y))]),
                2 => b.split(&me, &[&id(x), &id(y)]),
                3 => b.join(&me, &id(x)),
                _ => b.end(&me),
            };
        }
        b.p
    }

    const SOUNDNESS: &[&str] = &[RACE, JOIN_DEADLOCK, END_WHILE_RUNNING, STUCK];

    /// Whether the soundness check finds a problem (None: too complex or not checked).
    fn verdict(p: &Process, reduce: bool) -> Option<bool> {
        let options = Options::default();
        let mut cx = Cx::new(p, None, &[], &options);
        if !flow::check(&mut cx) {
            return None;
        }
        cx.diags.clear();
        sound::run(&mut cx, reduce);
        if cx.diags.iter().any(|d| d.code == TOO_COMPLEX) {
            return None;
        }
        Some(cx.diags.iter().any(|d| SOUNDNESS.contains(&d.code)))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        /// The reduction rules change how fast the answer comes, never the answer.
        #[test]
        fn reduced_and_unreduced_nets_agree(kinds in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 2..12)) {
            let p = net(&kinds);
            if let (Some(fast), Some(slow)) = (verdict(&p, true), verdict(&p, false)) {
                prop_assert_eq!(fast, slow);
            }
        }
    }
}
