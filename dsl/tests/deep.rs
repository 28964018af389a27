//! Long chains of operators (`1+1+…`, `not not …`, `- - …`, `x.a.a…`, `n[0][0]…`) are
//! refused with `YM0008` at the expression depth limit instead of overflowing the stack, and
//! the deepest expression accepted goes through every later stage. Everything runs on a
//! thread with a 2 MiB stack, the size of a tokio worker's.

use chrono::{DateTime, Utc};
use yimen_dsl::diagnostic::{Severity, render};
use yimen_dsl::eval::{Scope, eval};
use yimen_dsl::graph::{Format, render as draw};
use yimen_dsl::model::{Action, Expr, ExprKind, NodeKind, Process, UnaryOp};
use yimen_dsl::parser::{MAX_DEPTH, MAX_NESTING, TOO_DEEP};
use yimen_dsl::value::Value;

/// Runs `f` on a thread with a 2 MiB stack; a stack overflow aborts the test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread starts")
        .join()
        .expect("no panic")
}

/// A process whose one step sets `target` to `expr`.
fn process_with(target: &str, expr: &str) -> String {
    format!(
        "process deep \"深表达式\" version 1\n\
         var n: integer\n\
         var flag: boolean\n\
         var m: list<integer>\n\
         start begin \"开始\" -> calc\n\
         step calc \"计算\" {{ set {target} = {expr} }} -> done\n\
         end done \"结束\" result ok\n"
    )
}

/// The five chains of the issue, `terms` long, each with the variable it is assigned to.
fn chains(terms: usize) -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("sum", "n", vec!["1"; terms].join(" + ")),
        ("not", "flag", format!("{}flag", "not ".repeat(terms))),
        ("neg", "n", format!("{}1", "- ".repeat(terms))),
        ("field", "n", format!("n{}", ".a".repeat(terms))),
        ("index", "n", format!("m{}", "[0]".repeat(terms))),
    ]
}

/// Depth of each chain of `terms` terms: a sum of k terms is k deep; `not`, `-`, `.a` and
/// `[0]` k times over a name are k + 1 deep.
fn depth_of(kind: &str, terms: usize) -> usize {
    if kind == "sum" { terms } else { terms + 1 }
}

fn terms_for_depth(kind: &str, depth: usize) -> usize {
    if kind == "sum" { depth } else { depth - 1 }
}

fn too_deep(source: &str) -> Vec<yimen_dsl::diagnostic::Diagnostic> {
    yimen_dsl::compile("deep.flow", source, &|_| None)
        .diagnostics
        .into_iter()
        .filter(|d| d.code == TOO_DEEP)
        .collect()
}

#[test]
fn chains_of_4000_terms_are_refused_by_name() {
    on_small_stack(|| {
        for (kind, target, expr) in chains(4000) {
            let source = process_with(target, &expr);
            let found = too_deep(&source);
            assert_eq!(found.len(), 1, "{kind}: {found:?}");
            let d = &found[0];
            assert_eq!(d.severity, Severity::Error);
            assert!(
                d.message.contains(&MAX_DEPTH.to_string()),
                "{kind}: the message names the limit: {}",
                d.message
            );
            assert!(d.help.as_deref().unwrap_or("").contains("split"), "{d:?}");
            let rendered = render(d, &source);
            assert!(rendered.contains("YM0008"), "{rendered}");
            // The formatter parses first: the same diagnostic, no tree.
            let formatted = yimen_dsl::fmt::format_source("deep.flow", &source);
            assert_eq!(formatted.map_err(|d| d.code), Err(TOO_DEEP), "{kind}");
        }
    });
}

#[test]
fn one_level_past_the_limit_is_refused_and_the_limit_is_not() {
    on_small_stack(|| {
        for depth in [MAX_DEPTH, MAX_DEPTH + 1] {
            for (kind, target, expr) in chains(terms_for_depth("sum", depth)) {
                let terms = terms_for_depth(kind, depth);
                let expr = chains(terms)
                    .into_iter()
                    .find(|c| c.0 == kind)
                    .map(|c| c.2)
                    .unwrap_or(expr);
                assert_eq!(depth_of(kind, terms), depth);
                let source = process_with(target, &expr);
                let refused = !too_deep(&source).is_empty();
                assert_eq!(refused, depth > MAX_DEPTH, "{kind} at depth {depth}");
            }
        }
    });
}

/// A scope where `n` is 1 and `flag` is true.
struct Vars;

impl Scope for Vars {
    fn lookup(&self, name: &str) -> Option<Value> {
        match name {
            "n" => Some(Value::Integer(1)),
            "flag" => Some(Value::Boolean(true)),
            _ => None,
        }
    }
    fn enum_value(&self, _: &str) -> bool {
        false
    }
    fn config(&self, _: &str) -> Option<Value> {
        None
    }
    fn now(&self) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }
}

/// The expression the step of `process` assigns.
fn assigned(process: &Process) -> Expr {
    process
        .nodes
        .iter()
        .find_map(|n| match &n.kind {
            NodeKind::Step { actions, .. } => actions.iter().find_map(|a| match a {
                Action::Assign { value, .. } => Some(value.clone()),
                _ => None,
            }),
            _ => None,
        })
        .expect("the step assigns")
}

#[test]
fn the_deepest_expression_checks_formats_draws_and_evaluates() {
    on_small_stack(|| {
        for kind in ["sum", "not", "neg"] {
            let terms = terms_for_depth(kind, MAX_DEPTH);
            let (_, target, expr) = chains(terms).into_iter().find(|c| c.0 == kind).unwrap();
            let source = process_with(target, &expr);
            let compiled = yimen_dsl::compile("deep.flow", &source, &|_| None);
            assert!(!compiled.has_errors(), "{kind}: {:?}", compiled.diagnostics);
            let process = compiled.process.expect("a model");

            let formatted = yimen_dsl::fmt::format_source("deep.flow", &source).expect("formats");
            let again = yimen_dsl::compile("deep.flow", &formatted, &|_| None);
            let reformatted = again.process.expect("the layout compiles");
            assert_eq!(
                yimen_dsl::fmt::expr(&assigned(&reformatted)),
                yimen_dsl::fmt::expr(&assigned(&process)),
                "{kind}"
            );

            for format in [Format::Dot, Format::Mermaid] {
                assert!(draw(&process, format).contains("计算"));
            }
            // How a flowchart writes a condition.
            let text = yimen_dsl::graph::expr_text(&assigned(&process));
            assert!(text.ends_with('1') || text.ends_with("flag"), "{text}");

            let value = eval(&assigned(&process), &Vars).expect("evaluates");
            let expected = match kind {
                "sum" => Value::Integer(terms as i64),
                "not" => Value::Boolean(terms.is_multiple_of(2)),
                _ => Value::Integer(if terms.is_multiple_of(2) { 1 } else { -1 }),
            };
            assert_eq!(value, expected, "{kind}");
        }
    });
}

/// A model built without the parser (as the engine's tests do) with one level too many: the
/// checker reports `YM0008` and evaluation refuses it, neither recurses past the limit.
#[test]
fn a_model_built_deeper_than_the_limit_is_refused_by_the_checker_and_evaluation() {
    on_small_stack(|| {
        let source = process_with("flag", &format!("{}flag", "not ".repeat(MAX_DEPTH - 1)));
        let mut process = yimen_dsl::compile("deep.flow", &source, &|_| None)
            .process
            .expect("at the limit it compiles");
        let placeholder = || Expr {
            kind: ExprKind::Boolean(true),
            span: Default::default(),
        };
        let value = process
            .nodes
            .iter_mut()
            .find_map(|node| match &mut node.kind {
                NodeKind::Step { actions, .. } => match actions.first_mut() {
                    Some(Action::Assign { value, .. }) => Some(value),
                    _ => None,
                },
                _ => None,
            })
            .expect("the step assigns");
        // Thousands of levels: what a hand-built model could hold (built, and later taken
        // apart, level by level: the derived `Clone` and `Drop` recurse).
        for _ in 0..4000 {
            let inner = std::mem::replace(value, placeholder());
            *value = Expr {
                span: inner.span,
                kind: ExprKind::Unary(UnaryOp::Not, Box::new(inner)),
            };
        }
        let diags = yimen_dsl::check::check(&process, None, &[]);
        assert_eq!(
            diags.iter().filter(|d| d.code == TOO_DEEP).count(),
            1,
            "{diags:?}"
        );
        let mut deeper = placeholder();
        for node in &mut process.nodes {
            if let NodeKind::Step { actions, .. } = &mut node.kind
                && let Some(Action::Assign { value, .. }) = actions.first_mut()
            {
                deeper = std::mem::replace(value, placeholder());
            }
        }
        let error = eval(&deeper, &Vars).expect_err("too deep to evaluate");
        assert!(error.message.contains("nested"), "{error}");
        let mut e = deeper;
        while let ExprKind::Unary(_, inner) = e.kind {
            e = *inner;
        }
    });
}

/// Found by the fuzzer: 200 nested calls (`len(len(…))`, within the bracket limit then)
/// overflowed a 2 MiB stack in pest's recursion in an unoptimised build. At the bracket limit
/// every kind of bracket parses (or is refused) on a small stack; one more is a syntax error
/// that names the limit.
#[test]
fn brackets_at_the_nesting_limit_parse_on_a_small_stack() {
    on_small_stack(|| {
        let nested = |open: &str, close: &str, n: usize| {
            format!("{}flag{}", open.repeat(n), close.repeat(n))
        };
        for (open, close) in [("(", ")"), ("[", "]"), ("len(", ")"), ("not (", ")")] {
            // The step's `{` is one level already.
            let at_limit = process_with("flag", &nested(open, close, MAX_NESTING - 1));
            let compiled = yimen_dsl::compile("deep.flow", &at_limit, &|_| None);
            assert!(
                compiled.diagnostics.iter().all(|d| d.code != "YM0001"),
                "{open}: {:?}",
                compiled.diagnostics
            );
            let over = process_with("flag", &nested(open, close, MAX_NESTING));
            let d = yimen_dsl::parse("deep.flow", &over).expect_err("one bracket too many");
            assert!(
                d.message.contains(&MAX_NESTING.to_string()),
                "{}",
                d.message
            );
        }
    });
}
