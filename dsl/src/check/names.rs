//! Declarations and references: duplicate ids, unknown roles, clocks, documents, channels,
//! calendars, variables, processes; task fields and outcomes; role keys and scopes.

use super::codes::*;
use super::{Cx, DiagExt, actions, help_or};
use crate::model::{
    Action, Assignee, Ident, Node, NodeKind, NotifyTarget, PersonalKind, Process, QueueRef, Task,
    Type,
};
use std::collections::{HashMap, HashSet};

pub(super) fn check(cx: &mut Cx) {
    duplicates(cx);
    starts_and_ends(cx);
    types_exist(cx);
    calendars(cx);
    roles(cx);
    nodes(cx);
    action_refs(cx);
    ambiguous_names(cx);
    unused_declarations(cx);
    paused_clocks(cx);
}

/// A clock paused (waiting for the applicant) that no step resumes would stay paused for
/// good, and its limit would never fall due.
fn paused_clocks(cx: &mut Cx) {
    let p = cx.process;
    let mut paused: Vec<&Ident> = Vec::new();
    let mut resumed: HashSet<&str> = HashSet::new();
    for (_, action) in actions(p) {
        if let Action::Clock { op, clock, .. } = action {
            match op {
                crate::model::ClockOp::Pause => paused.push(clock),
                crate::model::ClockOp::Resume => {
                    resumed.insert(&clock.name);
                }
                _ => {}
            }
        }
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for clock in paused {
        if !resumed.contains(clock.name.as_str())
            && seen.insert(&clock.name)
            && cx.clocks.contains_key(clock.name.as_str())
        {
            cx.warning(
                NEVER_RESUMED,
                clock.span,
                format!("clock `{}` is paused but never resumed", clock.name),
            )
            .label("stays paused for good")
            .help(format!(
                "add `resume clock {}` where the wait ends (e.g. when the materials arrive)",
                clock.name
            ));
        }
    }
}

/// Clocks, documents and channels that no action or deadline uses: usually a forgotten
/// step (a notice never issued, a limit never started).
fn unused_declarations(cx: &mut Cx) {
    let p = cx.process;
    let mut used: HashSet<(&str, &str)> = HashSet::new();
    for (_, action) in actions(p) {
        match action {
            Action::Clock { clock, .. } => {
                used.insert(("clock", &clock.name));
            }
            Action::Issue { document, .. } => {
                used.insert(("document", &document.name));
            }
            Action::Notify {
                target: NotifyTarget::Channel(c),
                ..
            } => {
                used.insert(("channel", &c.name));
            }
            _ => {}
        }
    }
    for (_, deadline) in super::deadlines(p) {
        if let Some(clock) = &deadline.clock {
            used.insert(("clock", &clock.name));
        }
    }
    let declared = p
        .clocks
        .iter()
        .map(|c| ("clock", &c.name))
        .chain(p.documents.iter().map(|d| ("document", &d.name)))
        .chain(p.channels.iter().map(|c| ("channel", &c.name)));
    let mut unused = Vec::new();
    for (what, id) in declared {
        if !used.contains(&(what, id.name.as_str())) {
            unused.push((what, id));
        }
    }
    for (what, id) in unused {
        let help = match what {
            "clock" => format!(
                "start it (`start clock {}`) where its time begins, or remove it",
                id.name
            ),
            "document" => format!(
                "issue it (`issue {}`) in the step that produces it, or remove it",
                id.name
            ),
            _ => format!(
                "send to it (`notify channel {} \"...\"`), or remove it",
                id.name
            ),
        };
        cx.warning(
            UNUSED_DECL,
            id.span,
            format!("{what} `{}` is never used", id.name),
        )
        .label("declared but not used")
        .help(help);
    }
}

/// Names an expression could read two ways: the variable wins, which is rarely what the
/// author meant in `kind == medical`.
fn ambiguous_names(cx: &mut Cx) {
    let p = cx.process;
    for var in &p.vars {
        let mut owners: Vec<&str> = cx
            .enums
            .iter()
            .filter(|(_, values)| {
                values
                    .as_ref()
                    .is_some_and(|vs| vs.contains(&var.name.name))
            })
            .map(|(name, _)| *name)
            .collect();
        owners.sort_unstable();
        if let Some(owner) = owners.first() {
            cx.warning(
                AMBIGUOUS_NAME,
                var.name.span,
                format!(
                    "variable `{}` has the name of a value of enum `{owner}`",
                    var.name.name
                ),
            )
            .label("in expressions this name means the variable")
            .help("rename the variable (e.g. add a prefix such as `is_` or `chosen_`)");
        }
    }
    for node in &p.nodes {
        if let NodeKind::Task(task) = &node.kind
            && let Some(each) = &task.for_each
            && cx.vars.contains_key(each.item.name.as_str())
        {
            cx.warning(
                AMBIGUOUS_NAME,
                each.item.span,
                format!(
                    "the item `{}` hides the variable of the same name",
                    each.item.name
                ),
            )
            .label("inside this task the name means the item")
            .help("give the item a name that no variable has");
        }
    }
}

/// Reports every id declared a second time within one namespace.
fn report_duplicates<'a>(cx: &mut Cx, what: &str, ids: impl IntoIterator<Item = &'a Ident>) {
    let mut seen: HashSet<&str> = HashSet::new();
    for id in ids {
        if !seen.insert(&id.name) {
            cx.error(
                DUPLICATE,
                id.span,
                format!("{what} `{}` is declared twice", id.name),
            )
            .label("second declaration")
            .help(format!(
                "every {what} needs its own id: rename or remove one of them"
            ));
        }
    }
}

fn duplicates(cx: &mut Cx) {
    let p = cx.process;
    let mut node_ids: Vec<&Ident> = p.nodes.iter().map(|n| &n.id).collect();
    // Follow-up tasks created by escalations share the node namespace: they appear in the
    // same task lists and histories.
    for (_, action) in actions(p) {
        if let Action::FollowUp { id, .. } = action {
            node_ids.push(id);
        }
    }
    report_duplicates(cx, "node", node_ids);
    report_duplicates(cx, "variable", p.vars.iter().map(|v| &v.name));
    report_duplicates(cx, "role", p.roles.iter().map(|r| &r.name));
    report_duplicates(cx, "enum", p.enums.iter().map(|e| &e.name));
    for decl in &p.enums {
        if let crate::model::EnumSource::Listed(values) = &decl.source {
            report_duplicates(cx, "enum value", values.iter().map(|v| &v.key));
        }
    }
    report_duplicates(cx, "clock", p.clocks.iter().map(|c| &c.name));
    report_duplicates(cx, "document", p.documents.iter().map(|d| &d.name));
    report_duplicates(cx, "channel", p.channels.iter().map(|c| &c.name));
    report_duplicates(cx, "import", p.imports.iter());
    if let Some(config) = &p.config {
        report_duplicates(cx, "configuration key", config.keys.iter().map(|k| &k.name));
    }
}

fn starts_and_ends(cx: &mut Cx) {
    let p = cx.process;
    let starts: Vec<_> = p
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Start { .. }))
        .collect();
    match starts.as_slice() {
        [] => {
            cx.error(NO_START, p.key.span, "the process has no start event")
                .label("no `start` in this process")
                .help("add one `start <id> \"label\" -> <first node>`");
        }
        [_] => {}
        [_, rest @ ..] => {
            for node in rest {
                cx.error(
                    MANY_STARTS,
                    node.id.span,
                    "the process has more than one start event",
                )
                .label("second start")
                .help("a process has exactly one start; merge the flows with a choice after it");
            }
        }
    }
    if !p
        .nodes
        .iter()
        .any(|n| matches!(n.kind, NodeKind::End { .. }))
    {
        cx.error(NO_END, p.key.span, "the process has no end event")
            .label("no `end` in this process")
            .help("add `end <id> \"label\" result <result>` and lead every path to an end");
    }
}

/// Enum names used in variable and configuration types exist.
fn types_exist(cx: &mut Cx) {
    fn missing<'t>(
        ty: &'t Type,
        enums: &HashMap<&str, Option<Vec<String>>>,
        out: &mut Vec<&'t str>,
    ) {
        match ty {
            Type::Enum(name) if !enums.contains_key(name.as_str()) => out.push(name),
            Type::List(inner) => missing(inner, enums, out),
            Type::Map(k, v) => {
                missing(k, enums, out);
                missing(v, enums, out);
            }
            _ => {}
        }
    }
    let p = cx.process;
    let mut found = Vec::new();
    for var in &p.vars {
        let mut names = Vec::new();
        missing(&var.ty, &cx.enums, &mut names);
        found.extend(names.into_iter().map(|n| (var.name.span, n)));
    }
    if let Some(config) = &p.config {
        for key in &config.keys {
            let mut names = Vec::new();
            missing(&key.ty, &cx.enums, &mut names);
            found.extend(names.into_iter().map(|n| (key.span, n)));
        }
    }
    let enum_names: Vec<&str> = cx.enums.keys().copied().collect();
    for (span, name) in found {
        let help = help_or(
            name,
            enum_names.iter().copied(),
            format!(
                "declare `enum {name} {{ ... }}`, or use one of text, integer, decimal, boolean, date, duration"
            ),
        );
        cx.error(UNKNOWN_TYPE, span, format!("unknown type `{name}`"))
            .label("no enum of this name")
            .help(help);
    }
}

fn calendars(cx: &mut Cx) {
    let p = cx.process;
    let mut used: Vec<&Ident> = p.calendar.iter().collect();
    used.extend(p.clocks.iter().filter_map(|c| c.calendar.as_ref()));
    for cal in used {
        if !cx.options.calendars.contains(&cal.name) {
            let known = cx.options.calendars.join(", ");
            let help = help_or(
                &cal.name,
                cx.options.calendars.iter().map(String::as_str),
                format!("known calendars: {known}; a calendar is a file calendars/<name>.yaml"),
            );
            // Deploying on a server: name the folder searched, where the file is to be added.
            let searched = match &cx.options.calendars_from {
                Some(from) => format!(": not in {from}"),
                None => String::new(),
            };
            cx.error(
                UNKNOWN_CALENDAR,
                cal.span,
                format!("unknown calendar `{}`{searched}", cal.name),
            )
            .label("no such calendar")
            .help(help);
        }
    }
}

fn roles(cx: &mut Cx) {
    let p = cx.process;
    for role in &p.roles {
        if let Some(key) = &role.keyed_by {
            role_key(cx, key);
        }
        if let Some(scope) = &role.scope {
            role_scope(cx, scope);
        }
    }
    let mut used: HashSet<&str> = HashSet::new();
    for queue in queue_refs(p) {
        used.insert(&queue.role.name);
        queue_ref(cx, queue);
    }
    unused_roles(cx, &used);
    role_duties(cx);
    reassigned_roles(cx);
}

/// `reassigns r`: `r` is a role of this process (whose holders' tasks are handed over).
fn reassigned_roles(cx: &mut Cx) {
    let p = cx.process;
    for role in &p.roles {
        for named in &role.reassigns {
            if cx.roles.contains_key(named.name.as_str()) {
                continue;
            }
            let help = help_or(
                &named.name,
                cx.roles.keys().copied(),
                format!(
                    "name a role this process declares (the role whose holders' cases `{}` \
                     hands over), or declare `role {} \"label\"`",
                    role.name.name, named.name
                ),
            );
            cx.error(
                REASSIGNS_UNKNOWN_ROLE,
                named.span,
                format!(
                    "role `{}` reassigns the tasks of `{}`, which is not a role of this process",
                    role.name.name, named.name
                ),
            )
            .label("no role of this name")
            .help(help);
        }
    }
}

/// `role r[key]`: the key is an enum.
fn role_key(cx: &mut Cx, key: &Ident) {
    if cx.enums.contains_key(key.name.as_str()) {
        return;
    }
    let help = help_or(
        &key.name,
        cx.enums.keys().copied(),
        "a keyed role needs an enum: one queue per value",
    );
    cx.error(
        UNKNOWN_TYPE,
        key.span,
        format!("unknown enum `{}`", key.name),
    )
    .label("roles are keyed by an enum")
    .help(help);
}

/// `role r per scope`: the scope is a text or enum variable.
fn role_scope(cx: &mut Cx, scope: &Ident) {
    match cx.vars.get(scope.name.as_str()) {
        None => {
            let help = help_or(
                &scope.name,
                cx.vars.keys().copied(),
                "declare the variable that names the organisation unit, e.g. `var street: text required`",
            );
            cx.error(
                ROLE_SCOPE,
                scope.span,
                format!("scope variable `{}` is not declared", scope.name),
            )
            .label("no such variable")
            .help(help);
        }
        Some(var) if !matches!(var.ty, Type::Text | Type::Enum(_)) => {
            cx.error(
                ROLE_SCOPE,
                scope.span,
                format!("scope variable `{}` must be text or an enum", scope.name),
            )
            .label("a queue is scoped by an organisation unit's name")
            .help("scope the role by a text or enum variable such as the applicant's street");
        }
        Some(_) => {}
    }
}

/// Every queue reference: tasks' queues, then follow-ups and notices to a role.
fn queue_refs(p: &Process) -> Vec<&QueueRef> {
    let mut refs: Vec<&QueueRef> = Vec::new();
    for node in &p.nodes {
        if let NodeKind::Task(task) = &node.kind {
            refs.push(&task.queue);
        }
    }
    for (_, action) in actions(p) {
        match action {
            Action::FollowUp { queue, .. } => refs.push(queue),
            Action::Notify {
                target: NotifyTarget::Role(queue),
                ..
            } => refs.push(queue),
            _ => {}
        }
    }
    refs
}

/// A queue names a declared role, with a key exactly when the role is keyed.
fn queue_ref(cx: &mut Cx, queue: &QueueRef) {
    let Some(role) = cx.roles.get(queue.role.name.as_str()).copied() else {
        let help = help_or(
            &queue.role.name,
            cx.roles.keys().copied(),
            format!("declare `role {} \"label\"`", queue.role.name),
        );
        cx.error(
            UNKNOWN_ROLE,
            queue.role.span,
            format!("unknown role `{}`", queue.role.name),
        )
        .label("no role of this name")
        .help(help);
        return;
    };
    match (&role.keyed_by, &queue.key) {
        (Some(enum_name), None) => {
            cx.error(
                ROLE_KEY,
                queue.span,
                format!(
                    "role `{}` has one queue per `{}`: say which",
                    role.name.name, enum_name.name
                ),
            )
            .label("key missing")
            .help(format!(
                "write `{}[<{} value or variable>]`",
                role.name.name, enum_name.name
            ));
        }
        (None, Some(key)) => {
            cx.error(
                ROLE_KEY,
                key.span,
                format!("role `{}` is not keyed", role.name.name),
            )
            .label("remove this key")
            .help(format!(
                "declare `role {}[<enum>]` to have one queue per value, or drop the key",
                role.name.name
            ));
        }
        _ => {}
    }
}

/// A role nothing names and that reads nothing is a warning.
fn unused_roles(cx: &mut Cx, used: &HashSet<&str>) {
    for role in &cx.process.roles {
        let reads = role.oversees || role.informs_subject || !role.reassigns.is_empty();
        if !reads && !used.contains(role.name.name.as_str()) {
            cx.warning(
                UNUSED_ROLE,
                role.name.span,
                format!("role `{}` is never used", role.name.name),
            )
            .label("no task, follow-up or notification names it")
            .help("remove the role, or name it in a task's `queue`");
        }
    }
}

/// `oversees` and `informs applicant`: not on a keyed role, and the notices to the applicant
/// need a role that reads them.
fn role_duties(cx: &mut Cx) {
    let p = cx.process;
    for role in &p.roles {
        let Some(key) = &role.keyed_by else {
            continue;
        };
        let duties: Vec<&str> = [
            (role.oversees, "oversees"),
            (role.informs_subject, "informs applicant"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
        if duties.is_empty() {
            continue;
        }
        let named = duties.join("` and `");
        let (it, clauses) = if duties.len() == 1 {
            ("it", duties[0].to_string())
        } else {
            ("them", duties.join(" "))
        };
        cx.error(
            KEYED_ROLE_DUTY,
            role.span,
            format!(
                "role `{}` is keyed by `{}`: `{named}` cannot be per key",
                role.name.name, key.name
            ),
        )
        .label("a duty of the whole role")
        .help(format!(
            "declare an unkeyed role for {it} (`role {}_office \"label\" {clauses}`) and give \
             its holders that role too, or drop {it}",
            role.name.name
        ));
    }
    if p.roles.iter().any(|r| r.informs_subject) {
        return;
    }
    let notices = actions(p)
        .into_iter()
        .filter_map(|(_, action)| match action {
            Action::Notify {
                target: NotifyTarget::Subject,
                span,
                ..
            } => Some(*span),
            _ => None,
        });
    if let Some(span) = notices.min_by_key(|s| s.start) {
        cx.warning(
            NO_INFORMER,
            span,
            "no role reads the notices to the applicant".to_string(),
        )
        .label("only admins and overseers would see this notice")
        .help("say which role tells the applicant: `role window \"label\" informs applicant`");
    }
}

fn unknown_var(cx: &mut Cx, var: &Ident, context: &str) {
    let help = help_or(
        &var.name,
        cx.vars.keys().copied(),
        format!("declare `var {}: <type>`", var.name),
    );
    cx.error(
        UNKNOWN_VAR,
        var.span,
        format!("unknown variable `{}` in {context}", var.name),
    )
    .label("not declared")
    .help(help);
}

fn nodes(cx: &mut Cx) {
    let p = cx.process;
    for node in &p.nodes {
        match &node.kind {
            NodeKind::Task(task) => task_refs(cx, node, task),
            NodeKind::WaitMessage { sets, .. } => {
                for field in sets {
                    if !cx.vars.contains_key(field.var.name.as_str()) {
                        unknown_var(cx, &field.var, "the message's fields");
                    }
                }
            }
            NodeKind::StartProcess {
                process, inputs, ..
            } => start_process(cx, process, inputs),
            _ => {}
        }
    }
    for clock in &p.clocks {
        if let Some(deadline) = &clock.deadline
            && let Some(on) = &deadline.clock
        {
            clock_exists(cx, on);
        }
    }
}

/// A task's fields, outcomes, assignee and deadline clock.
fn task_refs(cx: &mut Cx, node: &Node, task: &Task) {
    let mut fields: HashSet<&str> = HashSet::new();
    for field in &task.fields {
        if !cx.vars.contains_key(field.var.name.as_str()) {
            unknown_var(cx, &field.var, "the task's fields");
        } else if !fields.insert(&field.var.name) {
            cx.error(
                DUPLICATE,
                field.var.span,
                format!("field `{}` is listed twice", field.var.name),
            )
            .label("second mention")
            .help("list each variable once, as required or optional");
        }
    }
    if task.outcomes.is_empty() {
        cx.error(
            NO_OUTCOME,
            node.id.span,
            format!("task `{}` has no outcome", node.id.name),
        )
        .label("nothing follows this task")
        .help("add `outcome <key> \"label\" -> <next node>`");
    }
    let mut keys: HashSet<&str> = HashSet::new();
    for outcome in &task.outcomes {
        if !keys.insert(&outcome.key.name) {
            cx.error(
                DUPLICATE_OUTCOME,
                outcome.key.span,
                format!(
                    "outcome `{}` appears twice in task `{}`",
                    outcome.key.name, node.id.name
                ),
            )
            .label("second outcome with this key")
            .help("outcome keys are what a worker submits: make them unique");
        }
        for var in &outcome.requires {
            if !cx.vars.contains_key(var.name.as_str()) {
                unknown_var(cx, var, "`requires`");
            }
        }
    }
    if let Some(Assignee::CompletedBy(id)) = &task.assignee {
        completed_by(cx, id);
    }
    if let Some(deadline) = &task.deadline
        && let Some(clock) = &deadline.clock
    {
        clock_exists(cx, clock);
    }
}

/// `assignee completed_by(x)`: `x` is a task.
fn completed_by(cx: &mut Cx, id: &Ident) {
    match cx.node(&id.name) {
        Some(n) if matches!(n.kind, NodeKind::Task(_)) => {}
        Some(_) => {
            cx.error(
                ASSIGNEE_NOT_TASK,
                id.span,
                format!("`{}` is not a task", id.name),
            )
            .label("only a task is completed by a person")
            .help("name the human task whose worker should take this one");
        }
        None => {
            let tasks = cx
                .process
                .nodes
                .iter()
                .filter(|n| matches!(n.kind, NodeKind::Task(_)))
                .map(|n| n.id.name.as_str());
            let help = help_or(&id.name, tasks, "name a task of this process");
            cx.error(
                ASSIGNEE_NOT_TASK,
                id.span,
                format!("unknown task `{}`", id.name),
            )
            .label("no task of this name")
            .help(help);
        }
    }
}

fn start_process(cx: &mut Cx, process: &Ident, inputs: &[(Ident, crate::model::Expr)]) {
    let p = cx.process;
    if !p.imports.iter().any(|i| i.name == process.name) {
        let help = help_or(
            &process.name,
            p.imports.iter().map(|i| i.name.as_str()),
            format!("add `import {}` to the header", process.name),
        );
        cx.error(
            UNKNOWN_PROCESS,
            process.span,
            format!("process `{}` is not imported", process.name),
        )
        .label("not in the imports")
        .help(help);
        return;
    }
    // An import that could not be loaded is reported by `compile` (YM0004/YM0005).
    let Some(child) = cx.imports.iter().find(|c| c.key.name == process.name) else {
        return;
    };
    let mut given: HashSet<&str> = HashSet::new();
    for (name, _) in inputs {
        given.insert(&name.name);
        if !child.vars.iter().any(|v| v.name.name == name.name) {
            let help = help_or(
                &name.name,
                child.vars.iter().map(|v| v.name.name.as_str()),
                format!("`{}` declares no such variable", child.key.name),
            );
            cx.error(
                UNKNOWN_INPUT,
                name.span,
                format!(
                    "process `{}` has no variable `{}`",
                    child.key.name, name.name
                ),
            )
            .label("not a variable of the child")
            .help(help);
        }
    }
    let missing: Vec<&str> = child
        .vars
        .iter()
        .filter(|v| v.required && v.default.is_none() && !given.contains(v.name.name.as_str()))
        .map(|v| v.name.name.as_str())
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cx.error(
            MISSING_INPUT,
            process.span,
            format!("process `{}` requires {list}", child.key.name),
        )
        .label("required inputs missing")
        .help(format!("pass them in `with {{ {} = ... }}`", missing[0]));
    }
}

fn clock_exists(cx: &mut Cx, clock: &Ident) {
    if !cx.clocks.contains_key(clock.name.as_str()) {
        let help = help_or(
            &clock.name,
            cx.clocks.keys().copied(),
            format!("declare `clock {} \"label\"`", clock.name),
        );
        cx.error(
            UNKNOWN_CLOCK,
            clock.span,
            format!("unknown clock `{}`", clock.name),
        )
        .label("no clock of this name")
        .help(help);
    }
}

fn action_refs(cx: &mut Cx) {
    let p = cx.process;
    for (node, action) in actions(p) {
        match action {
            Action::Assign { var, .. } => {
                if !cx.vars.contains_key(var.name.as_str()) {
                    unknown_var(cx, var, "`set`");
                }
            }
            Action::Issue { document, .. } => {
                if !cx.documents.contains_key(document.name.as_str()) {
                    let help = help_or(
                        &document.name,
                        cx.documents.keys().copied(),
                        format!(
                            "declare `document {} \"label\" template \"...\"`",
                            document.name
                        ),
                    );
                    cx.error(
                        UNKNOWN_DOCUMENT,
                        document.span,
                        format!("unknown document `{}`", document.name),
                    )
                    .label("no document of this name")
                    .help(help);
                }
            }
            Action::Clock { clock, .. } => clock_exists(cx, clock),
            Action::Notify {
                target,
                message,
                span,
            } => {
                if let NotifyTarget::Channel(channel) = target
                    && !cx.channels.contains_key(channel.name.as_str())
                {
                    let help = help_or(
                        &channel.name,
                        cx.channels.keys().copied(),
                        format!(
                            "declare `channel {} \"label\" url config.<key>`",
                            channel.name
                        ),
                    );
                    cx.error(
                        UNKNOWN_CHANNEL,
                        channel.span,
                        format!("unknown channel `{}`", channel.name),
                    )
                    .label("no channel of this name")
                    .help(help);
                }
                personal_in_message(cx, message, *span);
                let item = node.and_then(|n| match &n.kind {
                    NodeKind::Task(task) => task.for_each.as_ref().map(|f| f.item.name.as_str()),
                    _ => None,
                });
                for name in placeholders(message) {
                    let known = cx.vars.contains_key(name.var)
                        || cx.nodes.contains_key(name.var)
                        || name.var == "config"
                        || Some(name.var) == item;
                    if !known {
                        let help = help_or(
                            name.var,
                            cx.vars.keys().copied(),
                            "placeholders name declared variables: `{{ var }}`",
                        );
                        cx.error(
                            UNKNOWN_VAR,
                            *span,
                            format!("unknown variable `{}` in the message", name.var),
                        )
                        .label("placeholder names no variable")
                        .help(help);
                    }
                }
            }
            Action::Ledger { .. } | Action::FollowUp { .. } => {}
        }
    }
}

/// One `{{ var }}` or `{{ var | filter }}` placeholder of a message.
struct Placeholder<'m> {
    var: &'m str,
    masked: bool,
}

fn placeholders(message: &str) -> Vec<Placeholder<'_>> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = after[..close].trim();
        let mut parts = inner.split('|').map(str::trim);
        let var = parts.next().unwrap_or("");
        let var = var.split('.').next().unwrap_or(var);
        let masked = parts.any(|f| f == "mask");
        if !var.is_empty() && var.chars().all(|c| c.is_alphanumeric() || c == '_') {
            out.push(Placeholder { var, masked });
        }
        rest = &after[close + 2..];
    }
    out
}

fn personal_in_message(cx: &mut Cx, message: &str, span: crate::model::Span) {
    for ph in placeholders(message) {
        if ph.masked {
            continue;
        }
        if let Some(var) = cx.vars.get(ph.var)
            && let Some(kind) = var.personal
        {
            let what = match kind {
                PersonalKind::IdNumber => "an ID number",
                PersonalKind::Phone => "a phone number",
                PersonalKind::Name => "a person's name",
                PersonalKind::Address => "an address",
                PersonalKind::Sensitive => "sensitive personal data",
            };
            cx.warning(
                PERSONAL_IN_MESSAGE,
                span,
                format!(
                    "`{}` is {what} and is written unmasked into a notification",
                    ph.var
                ),
            )
            .label("personal data in the message")
            .help(format!(
                "write `{{{{ {} | mask }}}}` or leave it out",
                ph.var
            ));
        }
    }
}
