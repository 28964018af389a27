//! Semantic checks of a lowered process: names, types, configuration, graph soundness.
//! Reports every problem at once, each a [`Diagnostic`] with a stable code (`docs/errors/`).
//!
//! Diagnostics about the process file leave `Diagnostic::file` empty (`compile` fills in the
//! process file name); diagnostics about the YAML configuration carry its file name.

mod codes;
mod config;
mod flow;
mod names;
mod sound;
mod types;

pub use codes::*;

use crate::config::ConfigFile;
use crate::diagnostic::Diagnostic;
use crate::model::{
    Action, ChannelDecl, ClockDecl, ConfigKey, Deadline, DocumentDecl, EnumSource, Node, NodeKind,
    Process, RoleDecl, Span, VarDecl,
};
use std::collections::{HashMap, HashSet};

/// Calendars every installation ships (`calendars/<name>.yaml`).
pub const DEFAULT_CALENDARS: &[&str] = &["cn_mainland", "weekdays"];

/// What the checker needs to know about the world outside the process file.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names of the calendars that exist (`calendars/<name>.yaml`).
    pub calendars: Vec<String>,
    /// Where those calendars were looked for (a folder), named by the error on an unknown one.
    pub calendars_from: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            calendars: DEFAULT_CALENDARS.iter().map(|s| s.to_string()).collect(),
            calendars_from: None,
        }
    }
}

/// Checks `process`. `config` is the parsed YAML configuration the process declares (if any
/// loaded); `imports` are the processes it imports. Returns every error and warning found,
/// in source order. Known calendars: [`DEFAULT_CALENDARS`]; see [`check_with`].
pub fn check(
    process: &Process,
    config: Option<&ConfigFile>,
    imports: &[Process],
) -> Vec<Diagnostic> {
    check_with(process, config, imports, &Options::default())
}

/// [`check`] with explicit [`Options`] (e.g. the calendars found in `calendars/`).
pub fn check_with(
    process: &Process,
    config: Option<&ConfigFile>,
    imports: &[Process],
    options: &Options,
) -> Vec<Diagnostic> {
    let mut cx = Cx::new(process, config, imports, options);
    names::check(&mut cx);
    config::check(&mut cx);
    types::check(&mut cx);
    // The flow checks read conditions recursively too.
    let graph_ok = !cx.too_deep && flow::check(&mut cx);
    if graph_ok {
        sound::check(&mut cx);
    }
    let mut diags = cx.diags;
    // Process-file diagnostics first, then the configuration's; each in source order.
    diags.sort_by_key(|d| (!d.file.is_empty(), d.file.clone(), d.span.start, d.span.end));
    diags.dedup();
    diags
}

/// Shared state of one check run: the process, lookup tables, the diagnostics so far.
pub(crate) struct Cx<'a> {
    pub process: &'a Process,
    pub config: Option<&'a ConfigFile>,
    pub imports: &'a [Process],
    pub options: &'a Options,
    /// An expression is deeper than the parser allows (`YM0008`, reported once).
    pub too_deep: bool,
    /// Node id → index into `process.nodes` (first declaration wins, as in every table here).
    pub nodes: HashMap<&'a str, usize>,
    pub vars: HashMap<&'a str, &'a VarDecl>,
    pub roles: HashMap<&'a str, &'a RoleDecl>,
    pub clocks: HashMap<&'a str, &'a ClockDecl>,
    pub documents: HashMap<&'a str, &'a DocumentDecl>,
    pub channels: HashMap<&'a str, &'a ChannelDecl>,
    pub config_keys: HashMap<&'a str, &'a ConfigKey>,
    /// Variables a required task field, a required message field or a `set` assigns.
    pub set_somewhere: HashSet<&'a str>,
    /// Enum name → its values; `None` when they come from a configuration that is not loaded.
    pub enums: HashMap<&'a str, Option<Vec<String>>>,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Cx<'a> {
    fn new(
        process: &'a Process,
        config: Option<&'a ConfigFile>,
        imports: &'a [Process],
        options: &'a Options,
    ) -> Self {
        let mut nodes = HashMap::new();
        for (i, node) in process.nodes.iter().enumerate() {
            nodes.entry(node.id.name.as_str()).or_insert(i);
        }
        fn table<'a, T>(
            items: &'a [T],
            name: impl Fn(&'a T) -> &'a str,
        ) -> HashMap<&'a str, &'a T> {
            let mut map = HashMap::new();
            for item in items {
                map.entry(name(item)).or_insert(item);
            }
            map
        }
        let mut enums = HashMap::new();
        for decl in &process.enums {
            let values = match &decl.source {
                EnumSource::Listed(values) => {
                    Some(values.iter().map(|v| v.key.name.clone()).collect())
                }
                EnumSource::Config(key) => config
                    .and_then(|c| c.values.get(&key.name))
                    .and_then(|v| v.as_object())
                    .map(|map| map.keys().cloned().collect()),
            };
            enums.entry(decl.name.name.as_str()).or_insert(values);
        }
        let config_keys = match &process.config {
            Some(decl) => table(&decl.keys, |k| k.name.name.as_str()),
            None => HashMap::new(),
        };
        let mut set_somewhere: HashSet<&str> = HashSet::new();
        for node in &process.nodes {
            let fields = match &node.kind {
                NodeKind::Task(task) => task.fields.as_slice(),
                NodeKind::WaitMessage { sets, .. } => sets.as_slice(),
                _ => &[],
            };
            set_somewhere.extend(
                fields
                    .iter()
                    .filter(|f| f.required)
                    .map(|f| f.var.name.as_str()),
            );
        }
        for (_, action) in actions(process) {
            if let Action::Assign { var, .. } = action {
                set_somewhere.insert(&var.name);
            }
        }
        Cx {
            set_somewhere,
            process,
            config,
            imports,
            options,
            too_deep: false,
            nodes,
            vars: table(&process.vars, |v| v.name.name.as_str()),
            roles: table(&process.roles, |r| r.name.name.as_str()),
            clocks: table(&process.clocks, |c| c.name.name.as_str()),
            documents: table(&process.documents, |d| d.name.name.as_str()),
            channels: table(&process.channels, |c| c.name.name.as_str()),
            config_keys,
            enums,
            diags: Vec::new(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&'a Node> {
        self.nodes.get(name).map(|&i| &self.process.nodes[i])
    }

    pub fn push(&mut self, diag: Diagnostic) {
        self.diags.push(diag);
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::error(code, span, message));
        self.diags.last_mut().expect("just pushed")
    }

    pub fn warning(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::warning(code, span, message));
        self.diags.last_mut().expect("just pushed")
    }
}

/// Every action of the process with the node it belongs to (`None` for clock ladders), in
/// source order: end actions, step actions, task entry actions and every escalation ladder.
pub(crate) fn actions(process: &Process) -> Vec<(Option<&Node>, &Action)> {
    let mut out = Vec::new();
    fn ladder<'a>(
        node: Option<&'a Node>,
        deadline: &'a Deadline,
        out: &mut Vec<(Option<&'a Node>, &'a Action)>,
    ) {
        for step in &deadline.ladder {
            out.extend(step.actions.iter().map(|a| (node, a)));
        }
    }
    for clock in &process.clocks {
        if let Some(deadline) = &clock.deadline {
            ladder(None, deadline, &mut out);
        }
    }
    for node in &process.nodes {
        match &node.kind {
            NodeKind::End { actions, .. } | NodeKind::Step { actions, .. } => {
                out.extend(actions.iter().map(|a| (Some(node), a)));
            }
            NodeKind::Task(task) => {
                out.extend(task.on_enter.iter().map(|a| (Some(node), a)));
                if let Some(deadline) = &task.deadline {
                    ladder(Some(node), deadline, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

/// Every deadline with the node it belongs to (`None` for a clock's default deadline).
pub(crate) fn deadlines(process: &Process) -> Vec<(Option<&Node>, &Deadline)> {
    let mut out: Vec<(Option<&Node>, &Deadline)> = process
        .clocks
        .iter()
        .filter_map(|c| c.deadline.as_ref().map(|d| (None, d)))
        .collect();
    for node in &process.nodes {
        if let NodeKind::Task(task) = &node.kind
            && let Some(deadline) = &task.deadline
        {
            out.push((Some(node), deadline));
        }
    }
    out
}

/// Builder-style helpers on a pushed diagnostic.
pub(crate) trait DiagExt {
    fn label(&mut self, label: impl Into<String>) -> &mut Self;
    fn help(&mut self, help: impl Into<String>) -> &mut Self;
}

impl DiagExt for Diagnostic {
    fn label(&mut self, label: impl Into<String>) -> &mut Self {
        self.label = label.into();
        self
    }
    fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}

/// "did you mean `x`?" for the closest of `candidates` to `name` (edit distance ≤ 2, or a
/// third of the name), if any.
pub(crate) fn suggest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// `help` text: the suggestion if there is one, else `fallback`.
pub(crate) fn help_or<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    fallback: impl Into<String>,
) -> String {
    suggest(name, candidates).unwrap_or_else(|| fallback.into())
}

#[cfg(test)]
mod tests;
