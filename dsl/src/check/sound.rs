//! Parallel soundness: splits and joins can neither deadlock nor let two tokens race into a
//! node that is not a join, and no end is reached while another branch still runs.
//!
//! Semantics checked (the engine's): a token sits on an edge until its target fires. A join
//! fires when every incoming edge holds a token; every other node fires for one token and
//! sends it on along one outgoing edge (a choice, a task's outcome, a timeout) or, for a
//! split, along all of them. A for-each task is one node. Reaching an end finishes the
//! instance, so an end reached while another token is live is an error: join the branches
//! first. The flow is sound when from every reachable marking the instance can finish with
//! exactly one token at an end, and no marking puts two tokens on one node.
//!
//! To stay fast on large processes the net is first reduced with rules that keep soundness
//! (sequences, alternative edges to the same node, a split whose branches all meet at the
//! same join, self-loops of exclusive nodes); a structured process collapses to a handful of
//! edges. What remains is explored state by state, up to [`MAX_STATES`] markings.

use super::codes::*;
use super::{Cx, DiagExt};
use crate::model::NodeKind;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::VecDeque;

/// Markings explored before giving up with "too complex to verify".
pub(crate) const MAX_STATES: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Start,
    End,
    /// Waits for a token on every incoming edge.
    Join,
    /// Sends a token along every outgoing edge.
    Split,
    /// Takes one token, sends it along one outgoing edge.
    Plain,
}

#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    /// First node the token meets on this (possibly contracted) edge: where races show.
    first: usize,
    /// Last node before `to` on this edge: the branch a waiting join misses.
    last: usize,
    alive: bool,
}

struct Net {
    class: Vec<Class>,
    alive: Vec<bool>,
    edges: Vec<Edge>,
    ins: Vec<Vec<usize>>,
    outs: Vec<Vec<usize>>,
}

impl Net {
    fn build(cx: &Cx) -> Option<Net> {
        let p = cx.process;
        let n = p.nodes.len();
        let mut net = Net {
            class: Vec::with_capacity(n),
            alive: vec![true; n],
            edges: Vec::new(),
            ins: vec![Vec::new(); n],
            outs: vec![Vec::new(); n],
        };
        for (i, node) in p.nodes.iter().enumerate() {
            net.class.push(match node.kind {
                NodeKind::Start { .. } => Class::Start,
                NodeKind::End { .. } => Class::End,
                NodeKind::Join { .. } => Class::Join,
                NodeKind::Split { .. } => Class::Split,
                _ => Class::Plain,
            });
            for target in super::flow::successors(node) {
                let j = *cx.nodes.get(target.name.as_str())?;
                let e = net.edges.len();
                net.edges.push(Edge {
                    from: i,
                    to: j,
                    first: j,
                    last: i,
                    alive: true,
                });
                net.outs[i].push(e);
                net.ins[j].push(e);
            }
        }
        Some(net)
    }

    fn live_outs(&self, n: usize) -> Vec<usize> {
        self.outs[n]
            .iter()
            .copied()
            .filter(|&e| self.edges[e].alive)
            .collect()
    }

    fn live_ins(&self, n: usize) -> Vec<usize> {
        self.ins[n]
            .iter()
            .copied()
            .filter(|&e| self.edges[e].alive)
            .collect()
    }

    fn kill(&mut self, e: usize) {
        self.edges[e].alive = false;
    }

    /// Applies the reduction rules until none applies.
    fn reduce(&mut self) {
        let mut work: VecDeque<usize> = (0..self.class.len()).collect();
        let mut queued: Vec<bool> = vec![true; self.class.len()];
        let push = |work: &mut VecDeque<usize>, queued: &mut Vec<bool>, n: usize| {
            if !queued[n] {
                queued[n] = true;
                work.push_back(n);
            }
        };
        while let Some(n) = work.pop_front() {
            queued[n] = false;
            if !self.alive[n] || matches!(self.class[n], Class::Start | Class::End) {
                continue;
            }
            let outs = self.live_outs(n);
            let ins = self.live_ins(n);
            // Self-loop of an exclusive node: taking it is just doing the node again.
            if self.class[n] == Class::Plain
                && outs.len() > 1
                && let Some(&e) = outs.iter().find(|&&e| self.edges[e].to == n)
            {
                self.kill(e);
                push(&mut work, &mut queued, n);
                continue;
            }
            // Alternative edges to the same non-join node: one token arrives either way.
            if self.class[n] == Class::Plain {
                let mut seen: HashMap<usize, usize> = HashMap::new();
                let mut changed = false;
                for &e in &outs {
                    let to = self.edges[e].to;
                    if self.class[to] == Class::Join {
                        continue;
                    }
                    if seen.insert(to, e).is_some() {
                        self.kill(e);
                        changed = true;
                        push(&mut work, &mut queued, to);
                    }
                }
                if changed {
                    push(&mut work, &mut queued, n);
                    continue;
                }
            }
            // A split whose every branch goes straight to one join that waits for nothing else.
            if self.class[n] == Class::Split && outs.len() > 1 {
                let to = self.edges[outs[0]].to;
                if to != n
                    && self.class[to] == Class::Join
                    && outs.iter().all(|&e| self.edges[e].to == to)
                    && self.live_ins(to).len() == outs.len()
                {
                    for &e in &outs[1..] {
                        self.kill(e);
                    }
                    push(&mut work, &mut queued, n);
                    push(&mut work, &mut queued, to);
                    continue;
                }
            }
            // A node in sequence: one way in, one way out.
            if ins.len() == 1 && outs.len() == 1 {
                let (e_in, e_out) = (ins[0], outs[0]);
                let (from, to) = (self.edges[e_in].from, self.edges[e_out].to);
                if from == n || to == n {
                    continue;
                }
                self.kill(e_out);
                self.edges[e_in].to = to;
                self.edges[e_in].last = self.edges[e_out].last;
                self.ins[to].push(e_in);
                self.alive[n] = false;
                push(&mut work, &mut queued, from);
                push(&mut work, &mut queued, to);
            }
        }
    }
}

/// A marking: the edges holding a token, sorted.
type Marking = Vec<u32>;

#[derive(Default)]
struct Findings {
    races: Vec<usize>,
    /// An end reached, and a node where another token still is.
    ends: Vec<(usize, usize)>,
    too_complex: bool,
}

pub(super) fn check(cx: &mut Cx) {
    run(cx, true);
}

/// The soundness check; `reduce: false` explores the net as written (tests compare both).
pub(super) fn run(cx: &mut Cx, reduce: bool) {
    if cx.nodes.len() != cx.process.nodes.len() {
        // Two nodes share an id: edges are ambiguous (reported as a duplicate).
        return;
    }
    let Some(mut net) = Net::build(cx) else {
        return;
    };
    let Some(start) = net.class.iter().position(|c| *c == Class::Start) else {
        return;
    };
    if reduce {
        net.reduce();
    }

    let (space, findings) = explore(&net, start);
    let too_complex = findings.too_complex;
    report_findings(cx, &net, findings, start);
    if !too_complex {
        report_stuck(cx, &net, &space, start);
    }
}

/// The reachable markings (up to [`MAX_STATES`]), their successors, and which are settled:
/// finished, or already reported.
struct Space {
    markings: Vec<Marking>,
    succ: Vec<Vec<u32>>,
    settled: Vec<bool>,
}

impl Space {
    /// Adds a marking not seen before: not settled, no successors yet.
    fn add(&mut self, marking: Marking) {
        self.markings.push(marking);
        self.succ.push(Vec::new());
        self.settled.push(false);
    }
}

/// Each node's live outgoing and incoming edges, computed once: the exploration asks for
/// them at every marking.
fn live_edges(net: &Net) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let as_u32 = |edges: Vec<usize>| edges.into_iter().map(|e| e as u32).collect::<Vec<u32>>();
    let outs = (0..net.class.len())
        .map(|n| as_u32(net.live_outs(n)))
        .collect();
    let ins = (0..net.class.len())
        .map(|n| as_u32(net.live_ins(n)))
        .collect();
    (outs, ins)
}

/// A node that is not a join with two tokens waiting at it in `marking`.
fn race_at(net: &Net, marking: &[u32]) -> Option<usize> {
    let mut at: Vec<usize> = Vec::with_capacity(marking.len());
    let mut race = None;
    for &e in marking {
        let edge = &net.edges[e as usize];
        if net.class[edge.to] != Class::Join {
            if at.contains(&edge.to) {
                race = Some(edge.to);
            }
            at.push(edge.to);
        }
    }
    race
}

/// Records a race at `node`, once.
fn note_race(reported: &mut HashSet<(&'static str, usize)>, findings: &mut Findings, node: usize) {
    if reported.insert((RACE, node)) {
        findings.races.push(node);
    }
}

/// Explores the markings reachable from the start, breadth first.
fn explore(net: &Net, start: usize) -> (Space, Findings) {
    let mut index: HashMap<Marking, u32> = HashMap::new();
    // A marking that finished, or that was already reported, is settled: nothing more to
    // say after it.
    let mut space = Space {
        markings: Vec::new(),
        succ: Vec::new(),
        settled: Vec::new(),
    };
    let mut findings = Findings::default();
    let mut reported: HashSet<(&'static str, usize)> = HashSet::new();
    let (outs, ins) = live_edges(net);

    let mut initial: Marking = outs[start].clone();
    initial.sort_unstable();
    index.insert(initial.clone(), 0);
    space.add(initial);
    let mut queue: VecDeque<u32> = VecDeque::from([0]);

    while let Some(m) = queue.pop_front() {
        let marking = space.markings[m as usize].clone();
        if let Some(node) = race_at(net, &marking) {
            note_race(&mut reported, &mut findings, node);
            space.settled[m as usize] = true;
            continue;
        }

        let next = fire(
            net,
            &ins,
            &outs,
            &marking,
            &mut reported,
            &mut findings,
            &mut space.settled[m as usize],
        );
        for n in next {
            // Two tokens on one edge: the second would race the first into its target.
            if let Some(w) = n.windows(2).find(|w| w[0] == w[1]) {
                note_race(&mut reported, &mut findings, net.edges[w[0] as usize].first);
                space.settled[m as usize] = true;
                continue;
            }
            let id = match index.get(&n) {
                Some(&id) => id,
                None => {
                    if space.markings.len() >= MAX_STATES {
                        findings.too_complex = true;
                        queue.clear();
                        break;
                    }
                    let id = space.markings.len() as u32;
                    index.insert(n.clone(), id);
                    space.add(n);
                    queue.push_back(id);
                    id
                }
            };
            space.succ[m as usize].push(id);
        }
        if findings.too_complex {
            break;
        }
    }

    (space, findings)
}

/// The markings that follow `marking`, each node with tokens firing once; sets `settled` when
/// the marking finishes or ends while another branch runs (reported once per end).
fn fire(
    net: &Net,
    ins: &[Vec<u32>],
    outs: &[Vec<u32>],
    marking: &[u32],
    reported: &mut HashSet<(&'static str, usize)>,
    findings: &mut Findings,
    settled: &mut bool,
) -> Vec<Marking> {
    let mut next: Vec<Marking> = Vec::new();
    let mut fired_joins: Vec<usize> = Vec::new();
    for &e in marking {
        let to = net.edges[e as usize].to;
        match net.class[to] {
            Class::Join => {
                if fired_joins.contains(&to) {
                    continue;
                }
                fired_joins.push(to);
                let ins = &ins[to];
                if ins.iter().all(|i| marking.contains(i)) {
                    next.push(successor(marking, ins, &outs[to]));
                }
            }
            Class::End => {
                if let Some(&other) = marking.iter().find(|&&x| x != e)
                    && reported.insert((END_WHILE_RUNNING, to))
                {
                    findings.ends.push((to, net.edges[other as usize].to));
                }
                *settled = true;
            }
            Class::Split => next.push(successor(marking, &[e], &outs[to])),
            Class::Plain | Class::Start => {
                for &o in &outs[to] {
                    next.push(successor(marking, &[e], &[o]));
                }
            }
        }
    }
    next
}

/// Reports races, ends reached while a branch runs, and a net too complex to verify.
fn report_findings(cx: &mut Cx, net: &Net, findings: Findings, start: usize) {
    let p = cx.process;
    for node in findings.races {
        let id = &p.nodes[node].id;
        let what = if net.class[node] == Class::Join {
            "one branch of join"
        } else {
            "node"
        };
        cx.error(RACE, id.span, format!("two tokens can reach {what} `{}` at the same time", id.name))
            .label("reached twice in parallel")
            .help("lead parallel branches into a `join` before they continue; only a join may receive several branches");
    }
    for (node, other) in findings.ends {
        let id = &p.nodes[node].id;
        let other = &p.nodes[other].id.name;
        cx.error(
            END_WHILE_RUNNING,
            id.span,
            format!(
                "end `{}` can be reached while another branch is still at `{other}`",
                id.name
            ),
        )
        .label("the other branches would be cut off")
        .help("join the parallel branches before this end (an end finishes the whole case)");
    }
    if findings.too_complex {
        let id = &p.nodes[start].id;
        cx.error(TOO_COMPLEX, id.span, format!("the parallel structure of this process is too complex to verify (over {MAX_STATES} states)"))
            .label("soundness not verified")
            .help("nest splits and joins as blocks (each split's branches meet at one join), or move parts into a called process");
    }
}

/// Reports joins that can wait forever, and a flow that can get stuck otherwise.
fn report_stuck(cx: &mut Cx, net: &Net, space: &Space, start: usize) {
    let Space {
        markings,
        succ,
        settled,
    } = space;
    let p = cx.process;
    // Markings from which the instance can still finish.
    let mut pred: Vec<Vec<u32>> = vec![Vec::new(); markings.len()];
    for (m, ss) in succ.iter().enumerate() {
        for &s in ss {
            pred[s as usize].push(m as u32);
        }
    }
    let mut can_finish = settled.clone();
    let mut queue: VecDeque<usize> = (0..markings.len()).filter(|&m| settled[m]).collect();
    while let Some(m) = queue.pop_front() {
        for &pm in &pred[m] {
            if !can_finish[pm as usize] {
                can_finish[pm as usize] = true;
                queue.push_back(pm as usize);
            }
        }
    }
    let already_stuck = cx
        .diags
        .iter()
        .any(|d| matches!(d.code, NO_WAY_OUT | NO_OUTCOME | NO_END));
    let mut waiting: Vec<(usize, usize)> = Vec::new();
    let mut stuck_any = false;
    for m in 0..markings.len() {
        if can_finish[m] {
            continue;
        }
        stuck_any = true;
        for &e in &markings[m] {
            let join = net.edges[e as usize].to;
            if net.class[join] != Class::Join {
                continue;
            }
            for missing in net.live_ins(join) {
                if !markings[m].contains(&(missing as u32))
                    && !waiting.iter().any(|(j, _)| *j == join)
                {
                    waiting.push((join, net.edges[missing].last));
                }
            }
        }
    }
    for (join, from) in &waiting {
        let id = &p.nodes[*join].id;
        let from = &p.nodes[*from].id.name;
        cx.error(JOIN_DEADLOCK, id.span, format!("join `{}` can wait forever: the branch from `{from}` may never arrive", id.name))
            .label("waits for every incoming edge")
            .help("an exclusive choice, an outcome or an end on the way can divert that branch; make every branch of the split reach this join exactly once");
    }
    if stuck_any && waiting.is_empty() && !already_stuck {
        let id = &p.nodes[start].id;
        cx.error(
            STUCK,
            id.span,
            "the flow can get stuck without reaching an end",
        )
        .label("some run of this process never finishes")
        .help("check loops inside parallel branches: each needs a way out to its join");
    }
}

/// The marking after the tokens on `taken` leave and tokens are put on `added`, sorted.
fn successor(marking: &[u32], taken: &[u32], added: &[u32]) -> Marking {
    let mut next = Vec::with_capacity(marking.len() + added.len());
    next.extend(marking.iter().copied().filter(|x| !taken.contains(x)));
    next.extend_from_slice(added);
    next.sort_unstable();
    next
}
