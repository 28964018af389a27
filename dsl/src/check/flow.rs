//! The flow graph (petgraph): edges to known nodes, reachability from the start, a way to an
//! end from every node, exhaustive exclusive choices, gateways with a single branch.

use super::codes::*;
use super::{Cx, DiagExt, help_or};
use crate::model::{BinaryOp, Expr, ExprKind, Node, NodeKind, Target, Type, UnaryOp};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};
use std::collections::HashSet;

/// Outgoing edges of a node in source order, each with its target as written.
pub(crate) fn successors(node: &Node) -> Vec<&Target> {
    match &node.kind {
        NodeKind::Start { next }
        | NodeKind::Step { next, .. }
        | NodeKind::Join { next }
        | NodeKind::WaitTimer { next, .. }
        | NodeKind::StartProcess { next, .. } => vec![next],
        NodeKind::End { .. } => Vec::new(),
        NodeKind::Task(task) => task.outcomes.iter().map(|o| &o.next).collect(),
        NodeKind::Choice { branches, default } => branches
            .iter()
            .map(|b| &b.next)
            .chain(default.iter())
            .collect(),
        NodeKind::Split { branches } => branches.iter().collect(),
        NodeKind::WaitMessage { next, timeout, .. } => std::iter::once(next)
            .chain(timeout.iter().map(|(_, t)| t))
            .collect(),
    }
}

/// Checks the graph. Returns whether it is well-formed enough for the soundness check
/// (exactly one start, no edge to an unknown node or into the start).
pub(super) fn check(cx: &mut Cx) -> bool {
    let p = cx.process;
    let (graph, index, incoming, mut ok) = edges(cx);
    let starts: Vec<usize> = (0..p.nodes.len())
        .filter(|&i| matches!(p.nodes[i].kind, NodeKind::Start { .. }))
        .collect();
    if starts.len() != 1 {
        ok = false;
    }
    // With an edge to nowhere or two nodes of one id, unreachable nodes and dead ends are
    // only echoes of that mistake: report it alone.
    let duplicate_ids = cx.nodes.len() != p.nodes.len();
    let task_without_outcome = p
        .nodes
        .iter()
        .any(|n| matches!(&n.kind, NodeKind::Task(t) if t.outcomes.is_empty()));
    if let Some(&start) = starts
        .first()
        .filter(|_| ok && !duplicate_ids && !task_without_outcome)
    {
        reachability(cx, &graph, &index, start, &starts);
    }
    gateways(cx, &incoming);
    ok
}

/// The flow as a graph (node indices in `index`, incoming edges per node), each edge checked:
/// to a node that exists, not into the start. The flag is false when one is not.
fn edges(cx: &mut Cx) -> (DiGraph<usize, ()>, Vec<NodeIndex>, Vec<usize>, bool) {
    let p = cx.process;
    let mut ok = true;
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(p.nodes.len(), p.nodes.len());
    let index: Vec<NodeIndex> = (0..p.nodes.len()).map(|i| graph.add_node(i)).collect();
    let mut incoming = vec![0usize; p.nodes.len()];
    for (i, node) in p.nodes.iter().enumerate() {
        for target in successors(node) {
            match cx.nodes.get(target.name.as_str()).copied() {
                Some(j) => {
                    graph.add_edge(index[i], index[j], ());
                    incoming[j] += 1;
                    if matches!(p.nodes[j].kind, NodeKind::Start { .. }) {
                        ok = false;
                        cx.error(
                            EDGE_TO_START,
                            target.span,
                            format!(
                                "`{}` is the start event; no edge may lead back to it",
                                target.name
                            ),
                        )
                        .label("edge into the start")
                        .help("lead the edge to the first node after the start instead");
                    }
                }
                None => {
                    ok = false;
                    let help = help_or(
                        &target.name,
                        cx.nodes.keys().copied(),
                        "every `->` must name the id of a node of this process",
                    );
                    cx.error(
                        UNKNOWN_NODE,
                        target.span,
                        format!("no node `{}`", target.name),
                    )
                    .label("edge to an unknown node")
                    .help(help);
                }
            }
        }
    }
    (graph, index, incoming, ok)
}

/// Nodes the start cannot reach, and nodes from which no end can be reached.
fn reachability(
    cx: &mut Cx,
    graph: &DiGraph<usize, ()>,
    index: &[NodeIndex],
    start: usize,
    starts: &[usize],
) {
    let p = cx.process;
    let mut reached = vec![false; p.nodes.len()];
    let mut bfs = Bfs::new(graph, index[start]);
    while let Some(n) = bfs.next(graph) {
        reached[graph[n]] = true;
    }
    let ends: Vec<usize> = (0..p.nodes.len())
        .filter(|&i| matches!(p.nodes[i].kind, NodeKind::End { .. }))
        .collect();
    let mut finishes = vec![false; p.nodes.len()];
    if !ends.is_empty() {
        let reversed = Reversed(graph);
        let mut bfs = Bfs::new(reversed, index[ends[0]]);
        for &e in &ends[1..] {
            bfs.stack.push_back(index[e]);
            bfs.discovered.insert(index[e].index());
        }
        while let Some(n) = bfs.next(reversed) {
            finishes[graph[n]] = true;
        }
    }
    for (i, node) in p.nodes.iter().enumerate() {
        if starts.contains(&i) && i != start {
            continue;
        }
        if !reached[i] {
            cx.error(
                UNREACHABLE,
                node.id.span,
                format!("`{}` cannot be reached from the start", node.id.name),
            )
            .label("no path leads here")
            .help("lead an edge (`-> id`) to this node, or remove it");
        } else if !finishes[i] && !ends.is_empty() {
            cx.error(
                NO_WAY_OUT,
                node.id.span,
                format!("from `{}` no end can be reached", node.id.name),
            )
            .label("every path from here loops or stops")
            .help("give this part of the flow a way to an `end`");
        }
    }
}

/// Splits with fewer than two branches, joins with fewer than two incoming edges, and the
/// choices' conditions.
fn gateways(cx: &mut Cx, incoming: &[usize]) {
    let p = cx.process;
    for (i, node) in p.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Split { branches } if branches.len() < 2 => {
                cx.warning(
                    TRIVIAL_GATEWAY,
                    node.id.span,
                    format!(
                        "split `{}` has {} branch{}",
                        node.id.name,
                        branches.len(),
                        if branches.len() == 1 { "" } else { "es" }
                    ),
                )
                .label("nothing runs in parallel")
                .help("give the split two or more branches, or replace it by a plain edge");
            }
            NodeKind::Join { .. } if incoming[i] < 2 => {
                cx.warning(
                    TRIVIAL_GATEWAY,
                    node.id.span,
                    format!(
                        "join `{}` has {} incoming edge{}",
                        node.id.name,
                        incoming[i],
                        if incoming[i] == 1 { "" } else { "s" }
                    ),
                )
                .label("nothing to wait for")
                .help("lead every parallel branch into the join, or remove it");
            }
            NodeKind::Choice { branches, default } => choice(cx, node, branches, default.as_ref()),
            _ => {}
        }
    }
}

/// What a condition guarantees about one variable: it is true exactly when the variable
/// holds one of `values`.
struct Coverage {
    var: String,
    values: HashSet<String>,
}

enum Cond {
    Always,
    Covers(Coverage),
    Opaque,
}

fn choice(cx: &mut Cx, node: &Node, branches: &[crate::model::Branch], default: Option<&Target>) {
    let mut always = false;
    let mut covered: Vec<Coverage> = Vec::new();
    for branch in branches {
        match condition(cx, &branch.when) {
            Cond::Always => always = true,
            Cond::Covers(c) => match covered.iter_mut().find(|k| k.var == c.var) {
                Some(k) => k.values.extend(c.values),
                None => covered.push(c),
            },
            Cond::Opaque => {}
        }
    }
    let exhaustive = always
        || covered.iter().any(|c| match domain(cx, &c.var) {
            Some(all) => all.iter().all(|v| c.values.contains(v)),
            None => false,
        });
    match (default, exhaustive) {
        (None, false) => {
            cx.error(NOT_EXHAUSTIVE, node.id.span, format!("choice `{}` has no default and its conditions may all be false", node.id.name))
                .label("the case would stop here")
                .help("add `else -> <node>`, or cover every value (both `true`/`false`, or every enum value with `x == v`)");
        }
        (Some(target), true) => {
            cx.warning(
                DEAD_DEFAULT,
                target.span,
                format!(
                    "the default of choice `{}` can never be taken",
                    node.id.name
                ),
            )
            .label("the conditions above already cover every case")
            .help("remove the `else` branch, or narrow a condition");
        }
        _ => {}
    }
}

/// Every value a variable can hold, if finite and known (booleans and listed enums) and the
/// variable always has a value: given at the start (`required`), defaulted, or set by a
/// task's required field or a `set`. A variable that may be unset matches no condition.
fn domain(cx: &Cx, var: &str) -> Option<Vec<String>> {
    let decl = cx.vars.get(var)?;
    let always_set = decl.required || decl.default.is_some() || cx.set_somewhere.contains(var);
    if !always_set {
        return None;
    }
    match &decl.ty {
        Type::Boolean => Some(vec!["true".into(), "false".into()]),
        Type::Enum(name) => cx.enums.get(name.as_str()).cloned().flatten(),
        _ => None,
    }
}

fn condition(cx: &Cx, expr: &Expr) -> Cond {
    let var_of = |e: &Expr| match &e.kind {
        ExprKind::Name(n) if cx.vars.contains_key(n.as_str()) => Some(n.clone()),
        _ => None,
    };
    let value_of = |e: &Expr| match &e.kind {
        ExprKind::Boolean(b) => Some(b.to_string()),
        ExprKind::Name(n) if !cx.vars.contains_key(n.as_str()) => Some(n.clone()),
        _ => None,
    };
    let single = |var: String, value: String, negate: bool| {
        let values: HashSet<String> = if negate {
            match domain(cx, &var) {
                Some(all) => all.into_iter().filter(|v| *v != value).collect(),
                None => return Cond::Opaque,
            }
        } else {
            HashSet::from([value])
        };
        Cond::Covers(Coverage { var, values })
    };
    match &expr.kind {
        ExprKind::Boolean(true) => Cond::Always,
        ExprKind::Name(_) => match var_of(expr) {
            Some(var) if domain(cx, &var).is_some_and(|d| d.len() == 2 && d[0] == "true") => {
                single(var, "true".into(), false)
            }
            _ => Cond::Opaque,
        },
        ExprKind::Unary(UnaryOp::Not, inner) => match condition(cx, inner) {
            Cond::Covers(c) => match domain(cx, &c.var) {
                Some(all) => Cond::Covers(Coverage {
                    values: all.into_iter().filter(|v| !c.values.contains(v)).collect(),
                    var: c.var,
                }),
                None => Cond::Opaque,
            },
            _ => Cond::Opaque,
        },
        ExprKind::Binary(op @ (BinaryOp::Eq | BinaryOp::Ne), l, r) => {
            let negate = *op == BinaryOp::Ne;
            match (var_of(l), value_of(r), var_of(r), value_of(l)) {
                (Some(var), Some(value), _, _) | (_, _, Some(var), Some(value)) => {
                    single(var, value, negate)
                }
                _ => Cond::Opaque,
            }
        }
        ExprKind::Binary(BinaryOp::In, l, r) => match (var_of(l), &r.kind) {
            (Some(var), ExprKind::List(items)) => {
                let values: Option<HashSet<String>> = items.iter().map(value_of).collect();
                values.map_or(Cond::Opaque, |values| {
                    Cond::Covers(Coverage { var, values })
                })
            }
            _ => Cond::Opaque,
        },
        ExprKind::Binary(BinaryOp::Or, l, r) => match (condition(cx, l), condition(cx, r)) {
            (Cond::Always, _) | (_, Cond::Always) => Cond::Always,
            (Cond::Covers(mut a), Cond::Covers(b)) if a.var == b.var => {
                a.values.extend(b.values);
                Cond::Covers(a)
            }
            _ => Cond::Opaque,
        },
        _ => Cond::Opaque,
    }
}
