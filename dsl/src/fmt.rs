//! The one canonical layout of a process file (`yimen fmt`): two-space indentation, one
//! declaration, entry or action per line, a blank line around every node and between groups
//! of declarations, minimal parentheses. Comments are kept: a comment on its own line stays
//! before the element that follows it, a comment at the end of a line stays at the end of
//! that line. Formatting is idempotent: `format(format(x)) == format(x)`.

// The contract returns one `Diagnostic` by value; it happens once per file, not in a loop.
#![allow(clippy::result_large_err)]

use crate::ast::{self, CallInput, Comment, Item, NodeKind, TaskEntry, WaitEntry};
use crate::diagnostic::Diagnostic;
use crate::model::{
    Action, Assignee, BinaryOp, ChannelDecl, ClockDecl, ClockOp, Deadline, DocumentDecl, EnumDecl,
    EnumSource, EnumValue, Escalation, EscalationWhen, Expr, ExprKind, FieldSpec, ForEach, Ident,
    NotifyTarget, PersonalKind, QueueRef, RoleDecl, Span, Type, UnaryOp, VarDecl,
};

/// Parses `source` and returns it in the canonical layout, or its syntax error.
pub fn format_source(file: &str, source: &str) -> Result<String, Diagnostic> {
    let ast = crate::parse(file, source)?;
    Ok(format(&ast, source))
}

/// Prints a parsed file in the canonical layout. `source` is the text `ast` was parsed from
/// (comments and blank lines are placed by their position in it).
pub fn format(ast: &ast::File, source: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        src: source,
        comments: &ast.comments,
        next: 0,
        depth: 0,
    };
    p.file(ast);
    p.out
}

struct Printer<'a> {
    out: String,
    src: &'a str,
    comments: &'a [Comment],
    next: usize,
    depth: usize,
}

/// The end of the last token inside `span` (pest spans may include trailing whitespace and
/// comments when a rule ends with an optional part).
fn real_end(src: &str, span: Span) -> usize {
    let text = src.get(span.start..span.end).unwrap_or("");
    let bytes = text.as_bytes();
    let mut last = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
            last = i + 1;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if b == b'"' {
            in_string = true;
            last = i + 1;
        } else if !b.is_ascii_whitespace() {
            last = i + 1;
        }
        i += 1;
    }
    span.start + last.min(text.len())
}

impl Printer<'_> {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    /// Emits the pending comments that start before `pos`, each on its own line.
    fn leading(&mut self, pos: usize) {
        while let Some(c) = self.comments.get(self.next) {
            if c.span.start >= pos {
                break;
            }
            self.indent();
            self.out.push_str("//");
            self.out.push_str(&c.text);
            self.out.push('\n');
            self.next += 1;
        }
    }

    /// Starts a line for an element beginning at `start`.
    fn begin(&mut self, start: usize) {
        self.leading(start);
        self.indent();
    }

    /// Ends the line of an element written at `span`, keeping a comment that followed it on
    /// the same source line.
    fn finish(&mut self, span: Span) {
        let end = real_end(self.src, span);
        self.trailing_after(end);
        self.out.push('\n');
    }

    /// Ends a block header line (`task x {`), keeping a comment written on that line.
    fn finish_header(&mut self, start: usize) {
        self.trailing_after(start);
        self.out.push('\n');
    }

    fn trailing_after(&mut self, pos: usize) {
        if let Some(c) = self.comments.get(self.next)
            && c.span.start >= pos
            && !self
                .src
                .get(pos..c.span.start)
                .unwrap_or("\n")
                .contains('\n')
        {
            self.out.push_str("  //");
            self.out.push_str(&c.text);
            self.next += 1;
        }
    }

    /// Closes a block: comments left inside it, then `}` and `suffix` on one line.
    fn close(&mut self, span: Span, suffix: &str) {
        let end = real_end(self.src, span);
        self.depth += 1;
        self.leading(end);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        self.out.push_str(suffix);
        self.finish(span);
    }

    fn file(&mut self, f: &ast::File) {
        let h = &f.header;
        self.begin(h.span.start);
        self.out.push_str(&format!(
            "process {} {} version {}",
            h.key.name,
            quote(&h.title),
            h.version
        ));
        self.finish(h.span);
        let mut prev_end = real_end(self.src, h.span);
        let mut prev: Option<&Item> = None;
        for item in &f.items {
            let blank = match prev {
                None => true,
                Some(prev) => {
                    is_block(prev)
                        || is_block(item)
                        || group(prev) != group(item)
                        || self.blank_between(prev_end, item.span().start)
                }
            };
            if blank {
                self.out.push('\n');
            }
            self.item(item);
            prev_end = real_end(self.src, item.span());
            prev = Some(item);
        }
        self.leading(usize::MAX);
    }

    /// Whether the source has an empty line between `from` and `to`.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let gap = self.src.get(from..to).unwrap_or("");
        let mut lines = gap.split('\n');
        lines.next();
        let mut middle: Vec<&str> = lines.collect();
        middle.pop();
        middle.iter().any(|l| l.trim().is_empty())
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(id, span) => self.simple(*span, format!("import {}", id.name)),
            Item::Calendar(id, span) => self.simple(*span, format!("calendar {}", id.name)),
            Item::Config(c) => self.config(c),
            Item::Enum(e) => self.enum_decl(e),
            Item::Var(v) => self.simple(v.span, var_line(v)),
            Item::Role(r) => self.simple(r.span, role_line(r)),
            Item::Channel(c) => self.simple(c.span, channel_line(c)),
            Item::Document(d) => self.simple(d.span, document_line(d)),
            Item::Clock(c) => self.clock(c),
            Item::Node(n) => self.node(n),
        }
    }

    fn simple(&mut self, span: Span, line: String) {
        self.begin(span.start);
        self.out.push_str(&line);
        self.finish(span);
    }

    /// Opens a block at `start`: `head {` (and a comment written on that line), then one
    /// level deeper.
    fn open(&mut self, start: usize, head: &str) {
        self.begin(start);
        self.out.push_str(head);
        self.out.push_str(" {");
        self.finish_header(start);
        self.depth += 1;
    }

    /// Closes a block opened by [`Printer::open`]: back one level, then `}` and `suffix`.
    fn shut(&mut self, span: Span, suffix: &str) {
        self.depth -= 1;
        self.close(span, suffix);
    }

    fn config(&mut self, c: &ast::ConfigBlock) {
        self.open(c.span.start, &format!("config {}", quote(&c.file)));
        for k in &c.keys {
            self.simple(k.span, format!("{}: {}", k.name.name, ty(&k.ty)));
        }
        self.shut(c.span, "");
    }

    fn enum_decl(&mut self, e: &EnumDecl) {
        let values = match &e.source {
            EnumSource::Config(key) => {
                let line = format!("enum {} from config {}", e.name.name, key.name);
                return self.simple(e.span, line);
            }
            EnumSource::Listed(values) => values,
        };
        self.open(e.span.start, &format!("enum {}", e.name.name));
        for v in values {
            let mut line = v.key.name.clone();
            if let Some(l) = &v.label {
                line.push(' ');
                line.push_str(&quote(l));
            }
            let end = self.enum_value_end(v);
            self.simple(Span::new(v.key.span.start, end), line);
        }
        self.shut(e.span, "");
    }

    /// Where an enum value's line ends in the source: its span is its key, its label (if
    /// any) ends the line.
    fn enum_value_end(&self, v: &EnumValue) -> usize {
        v.label
            .as_ref()
            .and_then(|_| self.src.get(v.key.span.end..))
            .and_then(|rest| rest.find('"').map(|q| v.key.span.end + q))
            .and_then(|q| {
                self.src
                    .get(q + 1..)
                    .and_then(|r| closing_quote(r).map(|c| q + 1 + c + 1))
            })
            .unwrap_or(v.key.span.end)
    }

    fn clock(&mut self, c: &ClockDecl) {
        let mut head = format!("clock {}", c.name.name);
        push_label(&mut head, &c.label);
        if c.calendar.is_none() && c.deadline.is_none() {
            self.simple(c.span, head);
            return;
        }
        self.open(c.span.start, &head);
        if let Some(cal) = &c.calendar {
            self.simple(cal.span, format!("calendar {}", cal.name));
        }
        if let Some(d) = &c.deadline {
            self.deadline(d, Some(&c.name.name));
        }
        self.shut(c.span, "");
    }

    fn deadline(&mut self, d: &Deadline, own_clock: Option<&str>) {
        let mut line = format!("deadline {}", expr(&d.duration));
        if let Some(c) = &d.clock
            && Some(c.name.as_str()) != own_clock
        {
            line.push_str(&format!(" clock {}", c.name));
        }
        if d.ladder.is_empty() {
            self.simple(d.span, line);
            return;
        }
        self.open(d.span.start, &line);
        for e in &d.ladder {
            self.escalation(e);
        }
        self.shut(d.span, "");
    }

    fn escalation(&mut self, e: &Escalation) {
        let mut head = match &e.when {
            EscalationWhen::Before(x) => format!("before {}", expr(x)),
            EscalationWhen::AtDue => "at due".to_string(),
            EscalationWhen::After(x) => format!("after {}", expr(x)),
        };
        if e.level > 0 {
            head.push_str(&format!(" level {}", e.level));
        }
        if let [one] = e.actions.as_slice() {
            self.simple(e.span, format!("{head}: {}", action(one)));
            return;
        }
        self.block_of_actions(e.span.start, &head, &e.actions, e.span, "");
    }

    fn block_of_actions(
        &mut self,
        start: usize,
        head: &str,
        actions: &[Action],
        span: Span,
        suffix: &str,
    ) {
        self.open(start, head);
        for a in actions {
            self.simple(action_span(a), action(a));
        }
        self.shut(span, suffix);
    }

    fn node(&mut self, n: &ast::Node) {
        let head = node_head(n);
        match &n.kind {
            NodeKind::Start { next } | NodeKind::Join { next } => {
                self.simple(n.span, format!("{head} -> {}", next.name));
            }
            NodeKind::End { result, actions } => self.end_node(n, head, result, actions),
            NodeKind::Step { actions, next } => {
                self.block_of_actions(
                    n.span.start,
                    &head,
                    actions,
                    n.span,
                    &format!(" -> {}", next.name),
                );
            }
            NodeKind::Task { for_each, entries } => self.task_node(n, head, for_each, entries),
            NodeKind::Choice {
                branches,
                default,
                default_span,
            } => {
                self.open(n.span.start, &head);
                for b in branches {
                    self.simple(b.span, format!("when {} -> {}", expr(&b.when), b.next.name));
                }
                if let Some(d) = default {
                    let span = default_span.unwrap_or(d.span);
                    self.simple(span, format!("else -> {}", d.name));
                }
                self.shut(n.span, "");
            }
            NodeKind::Parallel { branches } => {
                self.open(n.span.start, &head);
                for b in branches {
                    // The span of a branch is its target; the arrow sits just before it.
                    self.simple(b.span, format!("-> {}", b.name));
                }
                self.shut(n.span, "");
            }
            NodeKind::WaitTimer { duration, next } => {
                self.simple(
                    n.span,
                    format!("{head} {} -> {}", expr(duration), next.name),
                );
            }
            NodeKind::WaitMessage {
                message,
                entries,
                next,
            } => self.wait_message(n, head, message, entries, next),
            NodeKind::Call {
                process,
                inputs,
                wait,
                next,
            } => self.call(n, head, process, inputs, *wait, next),
        }
    }

    fn end_node(
        &mut self,
        n: &ast::Node,
        mut head: String,
        result: &Option<Ident>,
        actions: &Option<Vec<Action>>,
    ) {
        if let Some(r) = result {
            head.push_str(&format!(" result {}", r.name));
        }
        match actions {
            Some(a) if !a.is_empty() => self.block_of_actions(n.span.start, &head, a, n.span, ""),
            _ => self.simple(n.span, head),
        }
    }

    fn task_node(
        &mut self,
        n: &ast::Node,
        mut head: String,
        for_each: &Option<ForEach>,
        entries: &[TaskEntry],
    ) {
        if let Some(f) = for_each {
            head.push_str(&format!(" for each {} in {}", f.item.name, expr(&f.list)));
        }
        self.open(n.span.start, &head);
        for e in entries {
            self.task_entry(e);
        }
        self.shut(n.span, "");
    }

    fn wait_message(
        &mut self,
        n: &ast::Node,
        mut head: String,
        message: &Ident,
        entries: &Option<Vec<WaitEntry>>,
        next: &Ident,
    ) {
        head.push_str(&format!(" message {}", message.name));
        let arrow = format!(" -> {}", next.name);
        let entries = match entries {
            Some(entries) if !entries.is_empty() => entries,
            _ => return self.simple(n.span, format!("{head}{arrow}")),
        };
        self.open(n.span.start, &head);
        for e in entries {
            match e {
                WaitEntry::Field(f) => self.simple(f.span, field(f)),
                WaitEntry::Timeout { after, next, span } => {
                    self.simple(*span, format!("timeout {} -> {}", expr(after), next.name))
                }
            }
        }
        self.shut(n.span, &arrow);
    }

    fn call(
        &mut self,
        n: &ast::Node,
        mut head: String,
        process: &Ident,
        inputs: &Option<Vec<CallInput>>,
        wait: bool,
        next: &Ident,
    ) {
        head.push_str(&format!(" process {}", process.name));
        let tail = format!("{} -> {}", if wait { "" } else { " nowait" }, next.name);
        let inputs = match inputs {
            Some(inputs) if !inputs.is_empty() => inputs,
            _ => return self.simple(n.span, format!("{head}{tail}")),
        };
        head.push_str(" with");
        self.open(n.span.start, &head);
        for CallInput { name, value, span } in inputs {
            self.simple(*span, format!("{} = {}", name.name, expr(value)));
        }
        self.shut(n.span, &tail);
    }

    fn task_entry(&mut self, e: &TaskEntry) {
        match e {
            TaskEntry::Queue(q, span) => self.simple(*span, format!("queue {}", queue(q))),
            TaskEntry::Assignee(a, span) => {
                let rule = match a {
                    Assignee::CompletedBy(id) => format!("completed_by({})", id.name),
                    Assignee::StartedBy => "started_by".to_string(),
                    Assignee::Expr(x) => expr(x),
                };
                self.simple(*span, format!("assignee {rule}"));
            }
            TaskEntry::Fields(fields, span) => {
                self.open(span.start, "fields");
                for f in fields {
                    self.simple(f.span, field(f));
                }
                self.shut(*span, "");
            }
            TaskEntry::Deadline(d) => self.deadline(d, None),
            TaskEntry::OnEnter(actions, span) => {
                self.block_of_actions(span.start, "on enter", actions, *span, "")
            }
            TaskEntry::Outcome(o) => {
                let mut line = format!("outcome {}", o.key.name);
                push_label(&mut line, &o.label);
                if !o.requires.is_empty() {
                    let names: Vec<&str> = o.requires.iter().map(|r| r.name.as_str()).collect();
                    line.push_str(&format!(" requires {}", names.join(", ")));
                }
                line.push_str(&format!(" -> {}", o.next.name));
                self.simple(o.span, line);
            }
        }
    }
}

/// Byte index of the closing quote of a string whose opening quote precedes `rest`.
fn closing_quote(rest: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i);
        }
    }
    None
}

/// `keyword id "label"`: how every node's first line begins.
fn node_head(n: &ast::Node) -> String {
    let keyword = match &n.kind {
        NodeKind::Start { .. } => "start",
        NodeKind::End { .. } => "end",
        NodeKind::Step { .. } => "step",
        NodeKind::Task { .. } => "task",
        NodeKind::Choice { .. } => "choice",
        NodeKind::Parallel { .. } => "parallel",
        NodeKind::Join { .. } => "join",
        NodeKind::WaitMessage { .. } | NodeKind::WaitTimer { .. } => "wait",
        NodeKind::Call { .. } => "call",
    };
    let mut head = String::new();
    head.push_str(keyword);
    head.push(' ');
    head.push_str(&n.id.name);
    push_label(&mut head, &n.label);
    head
}

fn var_line(v: &VarDecl) -> String {
    let mut line = format!("var {}: {}", v.name.name, ty(&v.ty));
    if let Some(k) = v.personal {
        line.push_str(&format!(" personal({})", personal(k)));
    }
    if v.required {
        line.push_str(" required");
    }
    if let Some(d) = &v.default {
        line.push_str(" = ");
        line.push_str(&expr(d));
    }
    if let Some(l) = &v.label {
        line.push(' ');
        line.push_str(&quote(l));
    }
    line
}

fn role_line(r: &RoleDecl) -> String {
    let mut line = format!("role {}", r.name.name);
    if let Some(k) = &r.keyed_by {
        line.push_str(&format!("[{}]", k.name));
    }
    push_label(&mut line, &r.label);
    if let Some(s) = &r.scope {
        line.push_str(&format!(" per {}", s.name));
    }
    if r.oversees {
        line.push_str(" oversees");
    }
    if r.informs_subject {
        line.push_str(" informs applicant");
    }
    if !r.reassigns.is_empty() {
        let roles: Vec<&str> = r.reassigns.iter().map(|i| i.name.as_str()).collect();
        line.push_str(&format!(" reassigns {}", roles.join(", ")));
    }
    line
}

fn channel_line(c: &ChannelDecl) -> String {
    let mut line = format!("channel {}", c.name.name);
    push_label(&mut line, &c.label);
    line.push_str(&format!(" url config.{}", c.url_config.name));
    line
}

fn document_line(d: &DocumentDecl) -> String {
    let mut line = format!("document {}", d.name.name);
    push_label(&mut line, &d.label);
    line.push_str(&format!(" template {}", quote(&d.template)));
    if d.public {
        line.push_str(" public");
    }
    line
}

/// Declarations of one kind form a group; groups are separated by a blank line.
fn group(item: &Item) -> u8 {
    match item {
        Item::Import(..) | Item::Calendar(..) => 1,
        Item::Config(_) => 2,
        Item::Enum(_) => 3,
        Item::Var(_) => 4,
        Item::Role(_) => 5,
        Item::Channel(_) => 6,
        Item::Document(_) => 7,
        Item::Clock(_) => 8,
        Item::Node(_) => 9,
    }
}

/// Items written over several lines get a blank line on both sides; every node does.
fn is_block(item: &Item) -> bool {
    match item {
        Item::Node(_) | Item::Config(_) => true,
        Item::Enum(e) => matches!(e.source, EnumSource::Listed(_)),
        Item::Clock(c) => c.calendar.is_some() || c.deadline.is_some(),
        _ => false,
    }
}

fn push_label(line: &mut String, label: &Option<String>) {
    if let Some(l) = label {
        line.push(' ');
        line.push_str(&quote(l));
    }
}

fn action_span(a: &Action) -> Span {
    match a {
        Action::Assign { span, .. }
        | Action::Notify { span, .. }
        | Action::Ledger { span, .. }
        | Action::Issue { span, .. }
        | Action::Clock { span, .. }
        | Action::FollowUp { span, .. } => *span,
    }
}

fn field(f: &FieldSpec) -> String {
    format!(
        "{} {}",
        if f.required { "required" } else { "optional" },
        f.var.name
    )
}

fn queue(q: &QueueRef) -> String {
    match &q.key {
        Some(k) => format!("{}[{}]", q.role.name, expr(k)),
        None => q.role.name.clone(),
    }
}

/// One action as written on its line.
pub fn action(a: &Action) -> String {
    match a {
        Action::Assign { var, value, .. } => format!("set {} = {}", var.name, expr(value)),
        Action::Notify {
            target, message, ..
        } => {
            let t = match target {
                NotifyTarget::Subject => "applicant".to_string(),
                NotifyTarget::Holder => "holder".to_string(),
                NotifyTarget::Role(q) => format!("role {}", queue(q)),
                NotifyTarget::Channel(c) => format!("channel {}", c.name),
            };
            format!("notify {t} {}", quote(message))
        }
        Action::Ledger { entry, .. } => format!("ledger {}", quote(entry)),
        Action::Issue { document, .. } => format!("issue {}", document.name),
        Action::Clock { op, clock, .. } => match op {
            ClockOp::Start { duration: None } => format!("start clock {}", clock.name),
            ClockOp::Start { duration: Some(d) } => {
                format!("start clock {} for {}", clock.name, expr(d))
            }
            ClockOp::Pause => format!("pause clock {}", clock.name),
            ClockOp::Resume => format!("resume clock {}", clock.name),
            ClockOp::Stop => format!("stop clock {}", clock.name),
            ClockOp::Extend { by, reason } => format!(
                "extend clock {} by {} {}",
                clock.name,
                expr(by),
                quote(reason)
            ),
        },
        Action::FollowUp {
            id,
            label,
            queue: q,
            ..
        } => {
            let mut line = format!("task {}", id.name);
            push_label(&mut line, label);
            line.push_str(&format!(" queue {}", queue(q)));
            line
        }
    }
}

/// A type as written.
pub fn ty(t: &Type) -> String {
    match t {
        Type::Text => "text".into(),
        Type::Integer => "integer".into(),
        Type::Decimal => "decimal".into(),
        Type::Boolean => "boolean".into(),
        Type::Date => "date".into(),
        Type::DateTime => "datetime".into(),
        Type::Duration => "duration".into(),
        Type::Enum(name) => name.clone(),
        Type::List(inner) => format!("list<{}>", ty(inner)),
        Type::Map(k, v) => format!("map<{}, {}>", ty(k), ty(v)),
    }
}

fn personal(k: PersonalKind) -> &'static str {
    match k {
        PersonalKind::IdNumber => "id_number",
        PersonalKind::Phone => "phone",
        PersonalKind::Name => "name",
        PersonalKind::Address => "address",
        PersonalKind::Sensitive => "sensitive",
    }
}

/// A text literal with its escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const NEG: u8 = 7;
const POSTFIX: u8 = 8;
const ATOM: u8 = 9;

fn binary(op: BinaryOp) -> (&'static str, u8) {
    match op {
        BinaryOp::Or => ("or", OR),
        BinaryOp::And => ("and", AND),
        BinaryOp::Eq => ("==", CMP),
        BinaryOp::Ne => ("!=", CMP),
        BinaryOp::Lt => ("<", CMP),
        BinaryOp::Le => ("<=", CMP),
        BinaryOp::Gt => (">", CMP),
        BinaryOp::Ge => (">=", CMP),
        BinaryOp::In => ("in", CMP),
        BinaryOp::Add => ("+", ADD),
        BinaryOp::Sub => ("-", ADD),
        BinaryOp::Mul => ("*", MUL),
        BinaryOp::Div => ("/", MUL),
    }
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => binary(*op).1,
        ExprKind::Unary(UnaryOp::Not, _) => NOT,
        ExprKind::Unary(UnaryOp::Neg, _) => NEG,
        ExprKind::Field(..) | ExprKind::Index(..) => POSTFIX,
        _ => ATOM,
    }
}

/// An expression with the fewest parentheses that keep its meaning.
pub fn expr(e: &Expr) -> String {
    at_least(e, 0)
}

fn at_least(e: &Expr, min: u8) -> String {
    let s = bare(e);
    if prec(e) < min { format!("({s})") } else { s }
}

fn bare(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Text(t) => quote(t),
        ExprKind::Integer(n) => n.to_string(),
        ExprKind::Decimal(d) => d.clone(),
        ExprKind::Boolean(b) => b.to_string(),
        ExprKind::Date(d) => format!("date {}", quote(d)),
        ExprKind::Duration { amount, unit } => {
            format!("{amount} {}", crate::duration::unit_word(*unit, *amount))
        }
        ExprKind::Name(n) => n.clone(),
        ExprKind::Config(k) => format!("config.{k}"),
        ExprKind::Field(base, f) => format!("{}.{f}", at_least(base, POSTFIX)),
        ExprKind::Index(base, i) => format!("{}[{}]", at_least(base, POSTFIX), expr(i)),
        ExprKind::List(items) => {
            let items: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", items.join(", "))
        }
        ExprKind::Unary(UnaryOp::Not, x) => format!("not {}", at_least(x, NOT)),
        ExprKind::Unary(UnaryOp::Neg, x) => format!("-{}", at_least(x, NEG)),
        ExprKind::Binary(op, l, r) => {
            let (sym, p) = binary(*op);
            format!("{} {sym} {}", at_least(l, p), at_least(r, p + 1))
        }
        ExprKind::Call(name, args) => {
            let args: Vec<String> = args.iter().map(expr).collect();
            format!("{name}({})", args.join(", "))
        }
    }
}
