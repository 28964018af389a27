//! The language front end as data: every example folder compiles cleanly, the formatter is
//! idempotent and keeps the model, syntax errors point at the right place and say what was
//! expected, expressions group as documented.

use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use yimen_dsl::diagnostic::{self, Diagnostic};
use yimen_dsl::model::{Expr, ExprKind, NodeKind, Process};
use yimen_dsl::{compile, fmt, lower, parse};

fn dsl_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn flow_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "flow"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every `.flow` file under `dir`, recursively (the checker's corpora included).
fn flow_files_deep(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            flow_files_deep(&p, out);
        } else if p.extension().is_some_and(|x| x == "flow") {
            out.push(p);
        }
    }
}

/// The folders whose files must compile without a single diagnostic.
fn clean_folders() -> Vec<PathBuf> {
    vec![
        dsl_dir().join("tests/lang/ok"),
        dsl_dir().join("../processes"),
    ]
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn compile_file(path: &Path) -> (String, yimen_dsl::Compiled) {
    let source = read(path);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let load = move |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let c = compile(&path.display().to_string(), &source, &load);
    (source, c)
}

fn render(diags: &[Diagnostic], source: &str) -> String {
    diags
        .iter()
        .map(|d| diagnostic::render(d, source))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn examples_and_real_processes_compile_without_any_diagnostic() {
    let mut seen = 0;
    for dir in clean_folders() {
        for path in flow_files(&dir) {
            let (source, c) = compile_file(&path);
            assert!(
                c.diagnostics.is_empty(),
                "{}:\n{}",
                path.display(),
                render(&c.diagnostics, &source)
            );
            assert!(c.process.is_some(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} files found");
}

#[test]
fn the_social_assistance_process_has_its_parts() {
    let path = dsl_dir().join("../processes/social_assistance.flow");
    let (_, c) = compile_file(&path);
    let p = c.process.expect("compiles");
    assert_eq!(
        c.imports.len(),
        1,
        "the linked temporary-aid process is loaded"
    );
    assert_eq!(c.templates.len(), 4, "four document templates");
    let config = c.config.expect("configuration loaded");
    assert_eq!(
        config.get(&["decision_limit", "minimum_living"]),
        Some(&Value::from("30 workdays"))
    );
    let review = p
        .nodes
        .iter()
        .find(|n| n.id.name == "review")
        .expect("review");
    let NodeKind::Task(task) = &review.kind else {
        panic!("review is a task")
    };
    let outcomes: Vec<&str> = task.outcomes.iter().map(|o| o.key.name.as_str()).collect();
    assert_eq!(outcomes, ["complete", "incomplete", "not_assistance"]);
    let linked = p
        .nodes
        .iter()
        .find_map(|n| match &n.kind {
            NodeKind::StartProcess { process, wait, .. } => Some((process.name.clone(), *wait)),
            _ => None,
        })
        .expect("a linked case");
    assert_eq!(linked, ("temporary_assistance".to_string(), false));
    let for_each = p
        .nodes
        .iter()
        .filter(|n| matches!(&n.kind, NodeKind::Task(t) if t.for_each.is_some()))
        .count();
    assert_eq!(for_each, 2, "convened departments and co-handlers");
    assert_eq!(p.clocks.len(), 3);
}

#[test]
fn processes_and_examples_are_formatted() {
    for dir in clean_folders() {
        for path in flow_files(&dir) {
            let source = read(&path);
            let formatted = fmt::format_source("x.flow", &source).expect("parses");
            assert_eq!(formatted, source, "run `yimen fmt {}`", path.display());
        }
    }
}

/// The model without spans, as JSON: what must not change when only the layout changes.
fn shape(p: &Process) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("span");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(p).expect("model serialises");
    strip(&mut v);
    v
}

fn model_of(source: &str) -> Option<Process> {
    let ast = parse("x.flow", source).ok()?;
    Some(lower("x.flow", &ast).0)
}

fn check_fmt_round_trip(name: &str, source: &str) {
    let Ok(ast) = parse(name, source) else {
        return;
    };
    let once = fmt::format(&ast, source);
    let twice = fmt::format_source(name, &once)
        .unwrap_or_else(|d| panic!("{name}: formatted text does not parse: {}", d.message));
    assert_eq!(once, twice, "{name}: formatting is not idempotent");
    let again = parse(name, &once).expect("parses");
    assert_eq!(
        shape(&lower(name, &ast).0),
        shape(&lower(name, &again).0),
        "{name}: formatting changed the model"
    );
    assert_eq!(
        ast.comments
            .iter()
            .map(|c| c.text.trim())
            .collect::<Vec<_>>(),
        again
            .comments
            .iter()
            .map(|c| c.text.trim())
            .collect::<Vec<_>>(),
        "{name}: formatting lost or reordered comments"
    );
}

#[test]
fn formatting_every_flow_file_is_idempotent_and_keeps_model_and_comments() {
    let mut files = Vec::new();
    flow_files_deep(&dsl_dir().join("tests"), &mut files);
    flow_files_deep(&dsl_dir().join("../processes"), &mut files);
    assert!(files.len() >= 6);
    for path in files {
        check_fmt_round_trip(&path.display().to_string(), &read(&path));
    }
}

#[test]
fn formatter_fixtures() {
    insta::glob!("lang/fmt/*.flow", |path| {
        let source = read(path);
        let out = fmt::format_source("x.flow", &source).expect("fixture parses");
        insta::assert_snapshot!(out);
    });
}

/// Relayouts a source: every run of blanks outside strings and comments becomes another run
/// of blanks (a line break stays a line break, so comments still end where they did).
fn relayout(source: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    let mut in_comment = false;
    let mut k = 0;
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
            } else {
                out.push(c);
                continue;
            }
        }
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_whitespace() {
            let mut newline = c == '\n';
            while let Some(&n) = chars.peek() {
                if !n.is_whitespace() {
                    break;
                }
                newline |= n == '\n';
                chars.next();
            }
            let pick = choices.get(k % choices.len().max(1)).copied().unwrap_or(0);
            k += 1;
            let runs: [&str; 3] = if newline {
                ["\n", "\n\n", "  \n\t "]
            } else {
                [" ", "   ", "\t"]
            };
            out.push_str(runs[pick as usize % 3]);
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_comment = true;
        }
        out.push(c);
    }
    out
}

proptest! {
    // More cases for a longer hunt: PROPTEST_CASES=5000 cargo test -p yimen-dsl --test lang
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
    ))]

    /// parse(fmt(x)) lowers to the same model as x, whatever the layout of x.
    #[test]
    fn any_layout_formats_to_the_same_model(choices in proptest::collection::vec(0u8..3, 1..64)) {
        for path in flow_files(&dsl_dir().join("../processes")).into_iter()
            .chain(flow_files(&dsl_dir().join("tests/lang/ok")))
        {
            let source = read(&path);
            let moved = relayout(&source, &choices);
            let original = model_of(&source).expect("original parses");
            let relaid = model_of(&moved).expect("relayout parses");
            prop_assert_eq!(shape(&original), shape(&relaid));
            let formatted = fmt::format_source("x.flow", &moved).expect("parses");
            prop_assert_eq!(shape(&original), shape(&model_of(&formatted).expect("parses")));
            prop_assert_eq!(&formatted, &fmt::format_source("x.flow", &formatted).expect("parses"));
        }
    }

    /// Mutated real files: the parser never panics, and whatever still parses formats
    /// idempotently to the same model.
    #[test]
    fn mutated_files_parse_or_fail_cleanly_and_format_faithfully(
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..4, "[ -~\n]"), 1..4),
        which in any::<proptest::sample::Index>(),
    ) {
        let files: Vec<PathBuf> = flow_files(&dsl_dir().join("../processes"))
            .into_iter()
            .chain(flow_files(&dsl_dir().join("tests/lang/ok")))
            .chain(flow_files(&dsl_dir().join("tests/lang/fmt")))
            .collect();
        let file: &PathBuf = which.get(&files);
        let mut src = read(file);
        for (at, kind, text) in edits {
            let mut i = at.index(src.len().max(1)).min(src.len());
            while !src.is_char_boundary(i) {
                i -= 1;
            }
            let end = src[i..].chars().next().map_or(i, |c| i + c.len_utf8());
            match kind {
                0 => src.replace_range(i..end, ""),
                1 => src.insert_str(i, &text),
                2 => src.replace_range(i..end, &text),
                _ => src.truncate(i),
            }
        }
        match parse("m.flow", &src) {
            Err(d) => prop_assert!(d.span.start <= src.len()),
            Ok(_) => check_fmt_round_trip("m.flow", &src),
        }
    }

    /// Any expression tree, printed by the formatter, parses back to the same tree.
    #[test]
    fn printed_expressions_parse_back_to_the_same_tree(e in arb_expr()) {
        let printed = fmt::expr(&e);
        prop_assert_eq!(expr(&printed), sexpr(&e), "printed as `{}`", printed);
    }

    /// The parser returns a tree or an error inside the text for any input, never panics.
    #[test]
    fn parser_never_panics(src in "\\PC{0,200}") {
        if let Err(d) = parse("x.flow", &src) {
            prop_assert!(d.span.start <= src.len() && d.span.end <= src.len());
            prop_assert_eq!(d.code, "YM0001");
        }
    }
}

#[test]
fn every_prefix_of_the_real_process_parses_or_errors_inside_the_text() {
    let source = read(&dsl_dir().join("../processes/social_assistance.flow"));
    let mut cut = 0;
    while cut < source.len() {
        if source.is_char_boundary(cut) {
            let prefix = &source[..cut];
            if let Err(d) = parse("x.flow", prefix) {
                assert!(d.span.start <= prefix.len(), "cut {cut}");
                assert!(!d.message.is_empty());
            }
        }
        cut += 41;
    }
}

#[test]
fn many_comparisons_are_not_nesting() {
    let conditions: String = (0..500).map(|i| format!("  when n < {i} -> e\n")).collect();
    let src = format!("{HEADER}var n: integer\nchoice c {{\n{conditions}  else -> e\n}}\nend e\n");
    parse("x.flow", &src).expect("500 comparisons parse");
    let deep_type = format!(
        "{HEADER}var x: {}text{}\n",
        "list<".repeat(300),
        ">".repeat(300)
    );
    let d = parse("x.flow", &deep_type).expect_err("too deep");
    assert!(d.message.contains("nested too deeply"), "{}", d.message);
}

#[test]
fn absurd_nesting_is_an_error_not_a_crash() {
    let src = format!(
        "process t \"t\" version 1\nvar x: boolean = {}true{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let d = parse("x.flow", &src).expect_err("too deep");
    assert!(d.message.contains("nested too deeply"), "{}", d.message);
}

const HEADER: &str = "process t \"t\" version 1\n";

fn arb_expr() -> impl Strategy<Value = Expr> {
    use yimen_dsl::model::{BinaryOp as B, DurationUnit as D, Span, UnaryOp as U};
    let e = |kind| Expr {
        kind,
        span: Span::default(),
    };
    let leaf = prop_oneof![
        (0i64..1000).prop_map(move |n| e(ExprKind::Integer(n))),
        "[a-z][a-z0-9_]{0,5}"
            .prop_filter("not a keyword", |n| {
                !["or", "and", "not", "in", "true", "false", "config", "date"].contains(&n.as_str())
            })
            .prop_map(move |n| e(ExprKind::Name(n))),
        "[a-z_]{1,6}".prop_map(move |k| e(ExprKind::Config(k))),
        any::<bool>().prop_map(move |b| e(ExprKind::Boolean(b))),
        "[ -~\u{4e00}-\u{4e10}]{0,6}".prop_map(move |t| e(ExprKind::Text(t))),
        (
            0i64..50,
            prop_oneof![
                Just(D::WorkDays),
                Just(D::WorkHours),
                Just(D::Days),
                Just(D::Hours),
                Just(D::Minutes)
            ]
        )
            .prop_map(move |(amount, unit)| e(ExprKind::Duration { amount, unit })),
        (0u32..100, 0u32..100).prop_map(move |(a, b)| e(ExprKind::Decimal(format!("{a}.{b}")))),
    ];
    leaf.prop_recursive(4, 24, 3, move |inner| {
        let ops = prop_oneof![
            Just(B::Or),
            Just(B::And),
            Just(B::Eq),
            Just(B::Ne),
            Just(B::Lt),
            Just(B::Le),
            Just(B::Gt),
            Just(B::Ge),
            Just(B::In),
            Just(B::Add),
            Just(B::Sub),
            Just(B::Mul),
            Just(B::Div),
        ];
        prop_oneof![
            (ops, inner.clone(), inner.clone()).prop_map(move |(op, l, r)| e(ExprKind::Binary(
                op,
                Box::new(l),
                Box::new(r)
            ))),
            (prop_oneof![Just(U::Not), Just(U::Neg)], inner.clone())
                .prop_map(move |(op, x)| e(ExprKind::Unary(op, Box::new(x)))),
            (inner.clone(), "[a-z]{1,4}")
                .prop_map(move |(b, f)| e(ExprKind::Field(Box::new(b), f))),
            (inner.clone(), inner.clone())
                .prop_map(move |(b, i)| e(ExprKind::Index(Box::new(b), Box::new(i)))),
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(move |xs| e(ExprKind::List(xs))),
            ("len|today|is_empty", proptest::collection::vec(inner, 0..3))
                .prop_map(move |(f, xs)| e(ExprKind::Call(f, xs))),
        ]
    })
}

/// An expression as a fully parenthesised s-expression, to pin grouping.
fn sexpr(e: &Expr) -> String {
    use yimen_dsl::model::{BinaryOp as B, UnaryOp as U};
    match &e.kind {
        ExprKind::Text(t) => format!("{t:?}"),
        ExprKind::Integer(n) => n.to_string(),
        ExprKind::Decimal(d) => d.clone(),
        ExprKind::Boolean(b) => b.to_string(),
        ExprKind::Date(d) => format!("date:{d}"),
        ExprKind::Duration { amount, unit } => format!("{amount}:{unit:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Config(k) => format!("config.{k}"),
        ExprKind::Field(b, f) => format!("(. {} {f})", sexpr(b)),
        ExprKind::Index(b, i) => format!("([] {} {})", sexpr(b), sexpr(i)),
        ExprKind::List(xs) => format!("[{}]", xs.iter().map(sexpr).collect::<Vec<_>>().join(" ")),
        ExprKind::Unary(U::Not, x) => format!("(not {})", sexpr(x)),
        ExprKind::Unary(U::Neg, x) => format!("(neg {})", sexpr(x)),
        ExprKind::Binary(op, l, r) => {
            let op = match op {
                B::Or => "or",
                B::And => "and",
                B::Eq => "==",
                B::Ne => "!=",
                B::Lt => "<",
                B::Le => "<=",
                B::Gt => ">",
                B::Ge => ">=",
                B::In => "in",
                B::Add => "+",
                B::Sub => "-",
                B::Mul => "*",
                B::Div => "/",
            };
            format!("({op} {} {})", sexpr(l), sexpr(r))
        }
        ExprKind::Call(f, args) => {
            format!(
                "({f}{})",
                args.iter()
                    .map(|a| format!(" {}", sexpr(a)))
                    .collect::<String>()
            )
        }
    }
}

fn expr(text: &str) -> String {
    let src = format!("{HEADER}var x: boolean = {text}\n");
    let ast = parse("x.flow", &src).unwrap_or_else(|d| panic!("`{text}`: {}", d.message));
    let (p, _) = lower("x.flow", &ast);
    let e = p.vars[0].default.as_ref().expect("default");
    // The expression's span covers exactly its text.
    assert_eq!(
        &src[e.span.start..e.span.end],
        text.trim(),
        "span of `{text}`"
    );
    sexpr(e)
}

#[test]
fn expressions_group_as_documented() {
    let cases = [
        ("a or b and c", "(or a (and b c))"),
        ("not a and b", "(and (not a) b)"),
        ("not a == b", "(not (== a b))"),
        ("a == b or c != d", "(or (== a b) (!= c d))"),
        ("x in [a, b] and y", "(and (in x [a b]) y)"),
        ("1 + 2 * 3 - 4 / 2", "(- (+ 1 (* 2 3)) (/ 4 2))"),
        ("(1 + 2) * 3", "(* (+ 1 2) 3)"),
        ("-a.b", "(neg (. a b))"),
        ("- -3", "(neg (neg 3))"),
        (
            "config.limit[main] > 3 workdays",
            "(> ([] config.limit main) 3:WorkDays)",
        ),
        ("forward.completed_by", "(. forward completed_by)"),
        ("len(categories) > 1", "(> (len categories) 1)"),
        (
            "today() + 7 days <= date \"2026-10-01\"",
            "(<= (+ (today) 7:Days) date:2026-10-01)",
        ),
        ("is_empty(outcomes(review))", "(is_empty (outcomes review))"),
        ("1200.50 >= 0.5", "(>= 1200.50 0.5)"),
        ("\"a \\\"q\\\" b\" == t", "(== \"a \\\"q\\\" b\" t)"),
        (
            "4 workhours + 2 hours + 15 minutes + 1 day",
            "(+ (+ (+ 4:WorkHours 2:Hours) 15:Minutes) 1:Days)",
        ),
        ("[]", "[]"),
        ("order or andy", "(or order andy)"),
        ("true and false", "(and true false)"),
    ];
    for (text, want) in cases {
        assert_eq!(expr(text), want, "`{text}`");
    }
}

#[test]
fn formatted_expressions_keep_their_grouping() {
    for text in [
        "(a or b) and c",
        "not (a and b)",
        "a - (b - c)",
        "(a + b).c",
        "-(a + b)",
        "(not a) == b",
        "a == (not b)",
        "x in ([a] + [b])",
    ] {
        let src = format!("{HEADER}var x: boolean = {text}\n");
        let out = fmt::format_source("x.flow", &src).expect("parses");
        let printed = out.lines().nth(2).expect("var line");
        let printed = printed.trim_start_matches("var x: boolean = ");
        assert_eq!(expr(printed), expr(text), "`{text}` printed as `{printed}`");
    }
}

/// Line and column (1-based, in characters) of a syntax error, and its message.
fn syntax_error(body: &str) -> (usize, usize, String) {
    let src = format!("{HEADER}{body}");
    let d = parse("x.flow", &src).expect_err("must not parse");
    assert_eq!(d.code, "YM0001");
    let (line, col) = diagnostic::line_col(&src, d.span.start);
    (line, col, d.message)
}

#[test]
fn syntax_errors_say_where_and_what_was_expected() {
    // (text after the header, line, column, words the message must contain)
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "task a \"b\" {\n  queu window\n}\n",
            3,
            3,
            "expected a task entry",
        ),
        (
            "start a -> \n",
            3,
            1,
            "expected a name, found the end of the file",
        ),
        (
            "foo\n",
            2,
            1,
            "expected the end of the file or a declaration or a node, found `foo`",
        ),
        (
            "choice c { when a > -> b }\n",
            2,
            21,
            "expected an expression, found `-`",
        ),
        ("var a: text personal(foo)\n", 2, 22, "personal-data kind"),
        (
            "step s { notify boss \"x\" } -> a\n",
            2,
            17,
            "`applicant`, `holder`, `role r` or `channel c`",
        ),
        (
            "task t { queue w deadline 3 weeks }\n",
            2,
            29,
            "duration unit",
        ),
        (
            "task t { queue w\n  outcome ok \"好\" review\n}\n",
            3,
            18,
            "`-> next_node`",
        ),
        ("var 名字: text\n", 2, 5, "expected a name, found `名字`"),
        (
            "var x: text = \"unclosed\n",
            2,
            15,
            "this text is not closed",
        ),
        (
            "enum e { a \"A\" b \"B\"\n",
            3,
            1,
            "found the end of the file",
        ),
        ("role r per\n", 3, 1, "expected a name"),
        (
            "wait w \"x\" -> next\n",
            2,
            12,
            "expected an expression or `message`",
        ),
        ("end e result\n", 3, 1, "expected a name"),
        (
            "start s -> a\nstart x \"t\" next\n",
            3,
            13,
            "`-> next_node`",
        ),
    ];
    for (body, line, col, words) in cases {
        let (l, c, message) = syntax_error(body);
        assert!(
            message.contains(words),
            "{body:?}: message `{message}` lacks `{words}`"
        );
        assert_eq!((l, c), (*line, *col), "{body:?}: {message}");
    }
}

#[test]
fn the_header_is_required_and_checked() {
    let d = parse("x.flow", "process t \"t\"\n").expect_err("no version");
    assert!(d.message.contains("expected `version`"), "{}", d.message);
    let d = parse("x.flow", "task a {}\n").expect_err("no header");
    assert!(d.message.contains("`process`"), "{}", d.message);
    let d = parse("x.flow", "process t \"t\" version 99999999999\n").expect_err("too large");
    assert!(d.message.contains("too large"), "{}", d.message);
}

#[test]
fn lowering_reports_what_the_model_cannot_hold() {
    let src = format!(
        "{HEADER}role r\nstart s -> t\ntask t {{\n  queue r\n  queue r\n  deadline 1 day\n  deadline 2 days\n  outcome ok -> e\n}}\ntask u {{ outcome ok -> e }}\nend e\n"
    );
    let ast = parse("x.flow", &src).expect("parses");
    let (p, diags) = lower("x.flow", &ast);
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "task `t` names two queues",
            "task `t` has two deadlines",
            "task `u` names no queue"
        ]
    );
    assert!(diags.iter().all(|d| d.code == "YM0002"));
    // An end without `result` records its id as the result.
    let end = p.nodes.iter().find(|n| n.id.name == "e").expect("end");
    assert!(matches!(&end.kind, NodeKind::End { result, .. } if result.name == "e"));
}

#[test]
fn keywords_need_a_word_boundary() {
    // `taskreview` is not `task review`; `ordered` is a name, not `or` + `dered`.
    let (_, _, message) = syntax_error("taskreview {}\n");
    assert!(message.contains("found `taskreview`"), "{message}");
    assert_eq!(expr("ordered"), "ordered");
    assert_eq!(expr("notable"), "notable");
}

#[test]
fn comments_and_labels_survive_in_the_tree() {
    let src =
        format!("{HEADER}// a \"quoted\" word\nrole r \"角色 // not a comment\" // trailing\n");
    let ast = parse("x.flow", &src).expect("parses");
    let texts: Vec<&str> = ast.comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, [" a \"quoted\" word", " trailing"]);
    let (p, _) = lower("x.flow", &ast);
    assert_eq!(p.roles[0].label.as_deref(), Some("角色 // not a comment"));
}

#[test]
fn a_broken_configuration_is_reported_at_its_line() {
    let flow = format!("{HEADER}config \"c.yaml\" {{ limit: duration }}\nstart s -> e\nend e\n");
    let yaml = "limit: 3 days\nbad: [1, 2\nother: x\n";
    let load = |name: &str| (name == "c.yaml").then(|| yaml.to_string());
    let c = compile("x.flow", &flow, &load);
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "YM0003")
        .expect("a YAML diagnostic");
    assert_eq!(d.file, "c.yaml");
    let (line, _) = diagnostic::line_col(yaml, d.span.start);
    assert!((2..=3).contains(&line), "line {line}: {}", d.message);
    assert!(c.process.is_none());
}

#[test]
fn missing_neighbour_files_are_named() {
    let flow = format!(
        "{HEADER}config \"c.yaml\" {{ }}\ndocument d \"D\" template \"t.md.j2\"\nstart s -> e\nend e {{ issue d }}\n"
    );
    let c = compile("x.flow", &flow, &|_: &str| None);
    let messages: Vec<&str> = c
        .diagnostics
        .iter()
        .filter(|d| d.code == "YM0004")
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "the configuration file `c.yaml` cannot be read",
            "the template `t.md.j2` cannot be read"
        ]
    );
}

#[test]
fn templates_are_checked_for_syntax_and_names() {
    let flow = format!(
        "{HEADER}var name: text personal(name) \"姓名\"\ndocument d \"D\" template \"t.md.j2\"\nstart s -> e\nend e {{ issue d }}\n"
    );
    let broken = compile("x.flow", &flow, &|_: &str| {
        Some("{% if name %}".to_string())
    });
    let d = &broken.diagnostics[0];
    assert_eq!((d.code, d.file.as_str()), ("YM0006", "t.md.j2"));
    let typo = compile("x.flow", &flow, &|_: &str| {
        Some("{{ nmae }} {{ name | mask }} {{ today }}".to_string())
    });
    let messages: Vec<&str> = typo
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        ["template `t.md.j2` uses `nmae`, which is not a variable of the process"]
    );
    assert!(
        typo.process.is_some(),
        "a warning does not stop compilation"
    );
}

#[test]
fn an_import_must_name_the_process_in_its_file() {
    let flow = format!("{HEADER}import child\nstart s -> e\nend e\n");
    let child = "process other \"t\" version 1\nstart s -> e\nend e\n";
    let c = compile("x.flow", &flow, &|name: &str| {
        (name == "child.flow").then(|| child.to_string())
    });
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.code == "YM0005")
        .expect("YM0005");
    assert!(
        d.message.contains("names the process `other`"),
        "{}",
        d.message
    );
    let broken = compile("x.flow", &flow, &|_: &str| Some("process".to_string()));
    let codes: Vec<&str> = broken.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"YM0005"), "{codes:?}");
    assert!(
        !codes.contains(&"YM0112"),
        "a broken import is not also `not found`: {codes:?}"
    );
}

#[test]
fn compact_one_line_forms_parse_like_the_long_forms() {
    let compact = format!(
        "{HEADER}role w\nrole s\nvar n: list<text>\nvar clear: boolean\nstart a -> t\n\
         task t {{ queue w deadline 1 workdays {{ before 2 workhours: notify holder \"x\" \
         at due level 1: notify role s \"y\"; notify applicant \"z\"; task chase \"c\" queue w }} \
         fields {{ required clear; optional n }} outcome ok -> route }}\n\
         choice route {{ when len(n) > 1 -> fork  when clear -> e  else -> e }}\n\
         parallel fork {{ -> l  -> r }}\ntask l {{ queue w outcome ok -> both }}\n\
         task r {{ queue w outcome ok -> both }}\njoin both -> e\nend e\n"
    );
    let long = fmt::format_source("x.flow", &compact).expect("compact form parses");
    assert!(
        long.contains("  at due level 1 {\n      notify role s \"y\"\n"),
        "{long}"
    );
    assert_eq!(
        shape(&model_of(&compact).expect("parses")),
        shape(&model_of(&long).expect("parses"))
    );
}

#[test]
fn syntax_error_reports() {
    insta::glob!("lang/syntax/*.flow", |path| {
        let source = read(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let d = parse(&name, &source).expect_err("every file in syntax/ has a syntax error");
        assert_eq!(d.code, "YM0001");
        insta::assert_snapshot!(diagnostic::render(&d, &source));
    });
}

#[test]
fn yaml_error_reports() {
    insta::glob!("lang/yaml/*.yaml", |path| {
        let source = read(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let d = yimen_dsl::config::load(&name, &source).expect_err("every file in yaml/ is broken");
        assert_eq!(d.code, "YM0003");
        insta::assert_snapshot!(diagnostic::render(&d, &source));
    });
}
