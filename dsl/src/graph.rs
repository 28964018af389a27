//! The flowchart of a process as Graphviz DOT or Mermaid: human labels, outcomes and
//! conditions on edges, deadlines on tasks, one lane (DOT cluster) or colour (Mermaid class)
//! per role. Text is escaped for each format, so Chinese labels and quotes are safe.

use crate::model::{
    Action, BinaryOp, ClockOp, Deadline, DurationUnit, Expr, ExprKind, Node, NodeKind, Process,
    UnaryOp,
};
use std::fmt::Write as _;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
}

/// Renders `process` in `format`.
pub fn render(process: &Process, format: Format) -> String {
    match format {
        Format::Dot => dot(process),
        Format::Mermaid => mermaid(process),
    }
}

/// Lane colours (fill, border), one per role in declaration order, repeating.
const PALETTE: &[(&str, &str)] = &[
    ("#e8f1fb", "#4a78b5"),
    ("#eaf6ec", "#3f8f52"),
    ("#fdf3e4", "#c7862e"),
    ("#f5eafa", "#8a4fb0"),
    ("#fbe9e9", "#b84a4a"),
    ("#e7f6f6", "#2f8c8c"),
    ("#f3f3e6", "#8a8a3a"),
];

/// The role whose queue a node belongs to (tasks only).
fn role_of(node: &Node) -> Option<&str> {
    match &node.kind {
        NodeKind::Task(task) => Some(task.queue.role.name.as_str()),
        _ => None,
    }
}

fn unit_text(unit: DurationUnit, amount: i64) -> &'static str {
    let one = amount == 1;
    match unit {
        DurationUnit::WorkDays if one => "workday",
        DurationUnit::WorkDays => "workdays",
        DurationUnit::WorkHours if one => "workhour",
        DurationUnit::WorkHours => "workhours",
        DurationUnit::Days if one => "day",
        DurationUnit::Days => "days",
        DurationUnit::Hours if one => "hour",
        DurationUnit::Hours => "hours",
        DurationUnit::Minutes if one => "minute",
        DurationUnit::Minutes => "minutes",
    }
}

fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In => 3,
        BinaryOp::Add | BinaryOp::Sub => 4,
        BinaryOp::Mul | BinaryOp::Div => 5,
    }
}

fn op_text(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Or => "or",
        BinaryOp::And => "and",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        BinaryOp::In => "in",
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
    }
}

/// An expression as it would be written in a process file.
pub fn expr_text(expr: &Expr) -> String {
    fn go(expr: &Expr, out: &mut String) {
        match &expr.kind {
            ExprKind::Text(t) => {
                let _ = write!(out, "\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""));
            }
            ExprKind::Integer(i) => {
                let _ = write!(out, "{i}");
            }
            ExprKind::Decimal(d) => out.push_str(d),
            ExprKind::Boolean(b) => {
                let _ = write!(out, "{b}");
            }
            ExprKind::Date(d) => {
                let _ = write!(out, "date \"{d}\"");
            }
            ExprKind::Duration { amount, unit } => {
                let _ = write!(out, "{amount} {}", unit_text(*unit, *amount));
            }
            ExprKind::Name(n) => out.push_str(n),
            ExprKind::Config(k) => {
                let _ = write!(out, "config.{k}");
            }
            ExprKind::Field(base, field) => {
                go(base, out);
                out.push('.');
                out.push_str(field);
            }
            ExprKind::Index(base, key) => {
                go(base, out);
                out.push('[');
                go(key, out);
                out.push(']');
            }
            ExprKind::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(item, out);
                }
                out.push(']');
            }
            ExprKind::Unary(op, inner) => {
                out.push_str(match op {
                    UnaryOp::Not => "not ",
                    UnaryOp::Neg => "-",
                });
                let wrap = matches!(inner.kind, ExprKind::Binary(..));
                if wrap {
                    out.push('(');
                }
                go(inner, out);
                if wrap {
                    out.push(')');
                }
            }
            ExprKind::Binary(op, l, r) => {
                let p = precedence(*op);
                let side = |e: &Expr, right: bool, out: &mut String| {
                    let wrap = match &e.kind {
                        ExprKind::Binary(inner, ..) => {
                            let q = precedence(*inner);
                            q < p || (right && q == p)
                        }
                        _ => false,
                    };
                    if wrap {
                        out.push('(');
                    }
                    go(e, out);
                    if wrap {
                        out.push(')');
                    }
                };
                side(l, false, out);
                let _ = write!(out, " {} ", op_text(*op));
                side(r, true, out);
            }
            ExprKind::Call(name, args) => {
                out.push_str(name);
                out.push('(');
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    go(arg, out);
                }
                out.push(')');
            }
        }
    }
    let mut out = String::new();
    go(expr, &mut out);
    out
}

fn deadline_text(deadline: &Deadline) -> String {
    let mut text = format!("⏱ {}", expr_text(&deadline.duration));
    if let Some(clock) = &deadline.clock {
        let _ = write!(text, " ({})", clock.name);
    }
    if !deadline.ladder.is_empty() {
        let top = deadline.ladder.iter().map(|e| e.level).max().unwrap_or(0);
        if top > 0 {
            let _ = write!(text, ", escalates to level {top}");
        }
    }
    text
}

/// Display columns after which a label wraps (a CJK character takes two).
const WRAP_WIDTH: usize = 28;

/// Breaks `text` into lines of at most [`WRAP_WIDTH`] columns, at spaces when there are any
/// (English) and anywhere between wide characters (Chinese has no spaces).
fn wrap(text: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut width = 0;
    for word in text.split_inclusive(' ') {
        let w = unicode_width::UnicodeWidthStr::width(word);
        if width + w <= WRAP_WIDTH {
            lines.last_mut().expect("one line").push_str(word);
            width += w;
            continue;
        }
        for ch in word.chars() {
            let cw = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
            if width + cw > WRAP_WIDTH && width > 0 {
                lines.push(String::new());
                width = 0;
            }
            lines.last_mut().expect("one line").push(ch);
            width += cw;
        }
    }
    lines
        .into_iter()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What an action does to the case's time limits and documents, for the node's box (clock
/// changes and issued documents matter to whoever reads the chart; the rest is detail).
fn action_line(action: &Action) -> Option<String> {
    match action {
        Action::Clock { op, clock, .. } => Some(match op {
            ClockOp::Start { duration: Some(d) } => {
                format!("▶ start clock {} ({})", clock.name, expr_text(d))
            }
            ClockOp::Start { duration: None } => format!("▶ start clock {}", clock.name),
            ClockOp::Pause => format!("⏸ pause clock {}", clock.name),
            ClockOp::Resume => format!("▶ resume clock {}", clock.name),
            ClockOp::Stop => format!("■ stop clock {}", clock.name),
            ClockOp::Extend { by, .. } => {
                format!("+ extend clock {} by {}", clock.name, expr_text(by))
            }
        }),
        Action::Issue { document, .. } => Some(format!("issue {}", document.name)),
        _ => None,
    }
}

/// A clock's legend: its name, limit and ladder (clocks are not nodes, but their limits are
/// the deadlines people are held to).
fn clock_lines(clock: &crate::model::ClockDecl) -> Vec<String> {
    let mut lines = vec![format!(
        "clock {}{}",
        clock.name.name,
        clock
            .label
            .as_ref()
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    )];
    if let Some(deadline) = &clock.deadline {
        let mut text = deadline_text(deadline);
        if let Some(on) = &deadline.clock
            && *on == clock.name
        {
            // The clock's own deadline: naming it again says nothing.
            text = text.replace(&format!(" ({})", on.name), "");
        }
        lines.push(text);
    }
    lines
}

/// The lines of a node's box: its label (or id), then what it waits for or does.
fn node_lines(node: &Node) -> Vec<String> {
    let mut lines = wrap(node.label.as_deref().unwrap_or(&node.id.name));
    // A label of blanks wraps to no line: the id stands in.
    if lines.is_empty() {
        lines.push(node.id.name.clone());
    }
    match &node.kind {
        NodeKind::End { result, actions } => {
            lines.push(format!("result: {}", result.name));
            lines.extend(actions.iter().filter_map(action_line));
        }
        NodeKind::Step { actions, .. } => lines.extend(actions.iter().filter_map(action_line)),
        NodeKind::Task(task) => {
            lines.extend(task.on_enter.iter().filter_map(action_line));
            if let Some(each) = &task.for_each {
                lines.push(format!(
                    "for each {} in {}",
                    each.item.name,
                    expr_text(&each.list)
                ));
            }
            if let Some(deadline) = &task.deadline {
                lines.push(deadline_text(deadline));
            }
        }
        NodeKind::WaitMessage {
            message, timeout, ..
        } => {
            lines.push(format!("✉ wait for {}", message.name));
            if let Some((duration, _)) = timeout {
                lines.push(format!("⏱ timeout {}", expr_text(duration)));
            }
        }
        NodeKind::WaitTimer { duration, .. } => {
            lines.push(format!("⌛ wait {}", expr_text(duration)))
        }
        NodeKind::StartProcess { process, wait, .. } => {
            lines.push(format!(
                "start process {}{}",
                process.name,
                if *wait { " and wait" } else { "" }
            ));
        }
        _ => {}
    }
    lines
}

/// Edges of a node with their labels, in source order.
fn edges(node: &Node) -> Vec<(&str, Option<String>)> {
    match &node.kind {
        NodeKind::Start { next }
        | NodeKind::Step { next, .. }
        | NodeKind::Join { next }
        | NodeKind::WaitTimer { next, .. }
        | NodeKind::StartProcess { next, .. } => vec![(next.name.as_str(), None)],
        NodeKind::End { .. } => vec![],
        NodeKind::Task(task) => task
            .outcomes
            .iter()
            .map(|o| {
                (
                    o.next.name.as_str(),
                    Some(o.label.clone().unwrap_or_else(|| o.key.name.clone())),
                )
            })
            .collect(),
        NodeKind::Choice { branches, default } => branches
            .iter()
            .map(|b| (b.next.name.as_str(), Some(expr_text(&b.when))))
            .chain(
                default
                    .iter()
                    .map(|d| (d.name.as_str(), Some("else".to_string()))),
            )
            .collect(),
        NodeKind::Split { branches } => branches.iter().map(|b| (b.name.as_str(), None)).collect(),
        NodeKind::WaitMessage { next, timeout, .. } => std::iter::once((next.name.as_str(), None))
            .chain(
                timeout
                    .iter()
                    .map(|(d, t)| (t.name.as_str(), Some(format!("timeout {}", expr_text(d))))),
            )
            .collect(),
    }
}

fn dot_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn dot_node(node: &Node, indent: &str, out: &mut String) {
    let (shape, style) = match &node.kind {
        NodeKind::Start { .. } => ("oval", "filled"),
        NodeKind::End { .. } => ("oval", "filled"),
        NodeKind::Task(_) => ("box", "rounded,filled"),
        NodeKind::Step { .. } => ("box", "filled"),
        NodeKind::Choice { .. } => ("diamond", "filled"),
        NodeKind::Split { .. } | NodeKind::Join { .. } => ("diamond", "filled,bold"),
        NodeKind::WaitMessage { .. } | NodeKind::WaitTimer { .. } => ("box", "dashed,filled"),
        NodeKind::StartProcess { .. } => ("box3d", "filled"),
    };
    let mut lines = node_lines(node);
    if matches!(node.kind, NodeKind::Split { .. } | NodeKind::Join { .. }) {
        lines.insert(0, "+".to_string());
    }
    // An end has a double border, like BPMN's thick end event.
    let peripheries = if matches!(node.kind, NodeKind::End { .. }) {
        ", peripheries=2"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{indent}{} [shape={shape}, style={}, fillcolor=\"#ffffff\"{peripheries}, label={}];",
        dot_quote(&node.id.name),
        dot_quote(style),
        dot_quote(&lines.join("\n"))
    );
}

/// Graphviz DOT: one cluster per role (its lane), other nodes outside.
pub fn dot(process: &Process) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&process.key.name));
    let title = format!("{} (v{})", process.title, process.version);
    // Long flows read better with lanes side by side; `newrank` keeps clusters from
    // stretching the ranks.
    let _ = writeln!(
        out,
        "  graph [label={}, labelloc=t, fontname=\"sans-serif\", rankdir=TB, newrank=true];",
        dot_quote(&title)
    );
    let _ = writeln!(out, "  node [fontname=\"sans-serif\", fontsize=11];");
    let _ = writeln!(out, "  edge [fontname=\"sans-serif\", fontsize=10];");
    for (i, role) in process.roles.iter().enumerate() {
        let members: Vec<&Node> = process
            .nodes
            .iter()
            .filter(|n| role_of(n) == Some(role.name.name.as_str()))
            .collect();
        if members.is_empty() {
            continue;
        }
        let (fill, border) = PALETTE[i % PALETTE.len()];
        let label = role.label.clone().unwrap_or_else(|| role.name.name.clone());
        let _ = writeln!(
            out,
            "  subgraph {} {{",
            dot_quote(&format!("cluster_role_{}", role.name.name))
        );
        let _ = writeln!(out, "    label={};", dot_quote(&label));
        let _ = writeln!(
            out,
            "    style=\"rounded,filled\"; fillcolor=\"{fill}\"; color=\"{border}\";"
        );
        for node in members {
            dot_node(node, "    ", &mut out);
        }
        let _ = writeln!(out, "  }}");
    }
    for node in &process.nodes {
        let in_lane = role_of(node).is_some_and(|r| process.roles.iter().any(|d| d.name.name == r));
        if !in_lane {
            dot_node(node, "  ", &mut out);
        }
    }
    for clock in &process.clocks {
        let _ = writeln!(
            out,
            "  {} [shape=note, style=filled, fillcolor=\"#fffbe6\", label={}];",
            dot_quote(&format!("clock:{}", clock.name.name)),
            dot_quote(&clock_lines(clock).join("\n"))
        );
    }
    for node in &process.nodes {
        for (target, label) in edges(node) {
            let _ = write!(
                out,
                "  {} -> {}",
                dot_quote(&node.id.name),
                dot_quote(target)
            );
            if let Some(label) = label {
                let _ = write!(out, " [label={}]", dot_quote(&label));
            }
            out.push_str(";\n");
        }
    }
    out.push_str("}\n");
    out
}

/// Text inside a Mermaid `"..."` string: quotes and angle brackets as entities, lines as
/// `<br/>`.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            '\n' => out.push_str("<br/>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Mermaid flowchart: nodes are `n0, n1, ...` (ids may be reserved words like `end`), one
/// class (colour) per role.
pub fn mermaid(process: &Process) -> String {
    let mut out = String::new();
    // The title sits in YAML front matter: YAML escapes, not Mermaid's entities.
    let title = format!("{} (v{})", process.title, process.version)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ");
    let _ = writeln!(out, "---\ntitle: \"{title}\"\n---");
    out.push_str("flowchart TD\n");
    let index = |id: &str| process.nodes.iter().position(|n| n.id.name == id);
    for (i, node) in process.nodes.iter().enumerate() {
        let mut lines = node_lines(node);
        if matches!(node.kind, NodeKind::Split { .. } | NodeKind::Join { .. }) {
            lines.insert(0, "+".to_string());
        }
        // Mermaid has no lanes: name the queue in the box (the colour is its role's class).
        if let NodeKind::Task(task) = &node.kind {
            let role = process
                .roles
                .iter()
                .find(|r| r.name.name == task.queue.role.name);
            let name = role
                .and_then(|r| r.label.as_deref())
                .unwrap_or(&task.queue.role.name);
            lines.insert(1, format!("[{name}]"));
        }
        let text = mermaid_text(&lines.join("\n"));
        let (open, close) = match &node.kind {
            NodeKind::Start { .. } => ("((", "))"),
            NodeKind::End { .. } => ("([", "])"),
            NodeKind::Task(_) => ("(", ")"),
            NodeKind::Step { .. } => ("[", "]"),
            NodeKind::Choice { .. } => ("{", "}"),
            NodeKind::Split { .. } | NodeKind::Join { .. } => ("{{", "}}"),
            NodeKind::WaitMessage { .. } | NodeKind::WaitTimer { .. } => ("[/", "/]"),
            NodeKind::StartProcess { .. } => ("[[", "]]"),
        };
        let _ = writeln!(out, "  n{i}{open}\"{text}\"{close}");
    }
    for (c, clock) in process.clocks.iter().enumerate() {
        let text = mermaid_text(&clock_lines(clock).join("\n"));
        let _ = writeln!(out, "  clock{c}>\"{text}\"]");
    }
    for (i, node) in process.nodes.iter().enumerate() {
        for (target, label) in edges(node) {
            // Edges to unknown nodes are the checker's business; the drawing skips them.
            let Some(j) = index(target) else { continue };
            match label {
                Some(label) => {
                    let _ = writeln!(out, "  n{i} -->|\"{}\"| n{j}", mermaid_text(&label));
                }
                None => {
                    let _ = writeln!(out, "  n{i} --> n{j}");
                }
            }
        }
    }
    for (r, role) in process.roles.iter().enumerate() {
        let members: Vec<String> = process
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| role_of(n) == Some(role.name.name.as_str()))
            .map(|(i, _)| format!("n{i}"))
            .collect();
        if members.is_empty() {
            continue;
        }
        let (fill, border) = PALETTE[r % PALETTE.len()];
        let label = role.label.as_deref().unwrap_or(&role.name.name);
        let _ = writeln!(
            out,
            "  %% role{r}: {} {}",
            role.name.name,
            label.replace(['\n', '\r'], " ")
        );
        let _ = writeln!(
            out,
            "  classDef role{r} fill:{fill},stroke:{border},color:#222"
        );
        let _ = writeln!(out, "  class {} role{r}", members.join(","));
    }
    out
}
