//! The YAML configuration against what the process declares: keys present, values of the
//! declared type (durations parse, maps cover every enum value), enums taken from config.
//! Problems inside the YAML are reported at the YAML line; missing keys at the declaration.

use super::codes::*;
use super::{Cx, DiagExt};
use crate::config::ConfigFile;
use crate::diagnostic::Diagnostic;
use crate::model::{EnumSource, Span, Type};
use serde_json::Value;

pub(super) fn check(cx: &mut Cx) {
    let Some(config) = cx.config else {
        // A process that names a config file without it being loaded is reported by the
        // loader; a channel URL needs a configuration in any case.
        if cx.process.config.is_none() {
            channels_without_config(cx);
        }
        return;
    };
    declared_keys(cx, config);
    enums_from_config(cx, config);
    start_roles(cx, config);
    ledger_columns(cx, config);
    statistics(cx, config);
    channel_urls(cx, config);
}

fn channels_without_config(cx: &mut Cx) {
    for channel in &cx.process.channels {
        cx.error(
            NO_CONFIG,
            channel.url_config.span,
            format!(
                "channel `{}` takes its URL from the configuration, but the process declares none",
                channel.name.name
            ),
        )
        .label("no `config` block")
        .help(format!(
            "add `config \"<file>.yaml\" {{ {}: text }}` and put the URL in the YAML",
            channel.url_config.name
        ));
    }
}

/// Every key of the `config` block is in the YAML, with a value of its type.
fn declared_keys(cx: &mut Cx, config: &ConfigFile) {
    let Some(decl) = &cx.process.config else {
        return;
    };
    for key in &decl.keys {
        match config.values.get(&key.name.name) {
            None => {
                cx.error(
                    MISSING_CONFIG,
                    key.name.span,
                    format!("`{}` is missing from {}", key.name.name, config.file),
                )
                .label("declared here")
                .help(format!(
                    "add `{}: ...` to {} (a {})",
                    key.name.name,
                    config.file,
                    super::types::Ty::from(&key.ty)
                ));
            }
            Some(value) => {
                let path = vec![key.name.name.clone()];
                value_matches(cx, config, &key.ty, value, &path);
            }
        }
    }
}

/// An enum `from config` takes its values from the keys of a non-empty map.
fn enums_from_config(cx: &mut Cx, config: &ConfigFile) {
    for decl in &cx.process.enums {
        let EnumSource::Config(key) = &decl.source else {
            continue;
        };
        match config.values.get(&key.name) {
            Some(Value::Object(map)) if !map.is_empty() => {}
            Some(_) => {
                let span = yaml_span(config, std::slice::from_ref(&key.name));
                cx.push(
                    Diagnostic::error(CONFIG_ENUM, span, format!("`{}` must be a map whose keys are the values of enum `{}`", key.name, decl.name.name))
                        .with_label("not a non-empty map")
                        .with_help(format!("write `{}:` with one entry per value, e.g. `  civil_affairs: {{ name: \"民政局\" }}`", key.name))
                        .in_file(&config.file),
                );
            }
            None => {
                cx.error(
                    CONFIG_ENUM,
                    key.span,
                    format!("`{}` is missing from {}", key.name, config.file),
                )
                .label("enum values come from this key")
                .help(format!(
                    "add `{}:` to {} with one entry per value",
                    key.name, config.file
                ));
            }
        }
    }
}

/// Every channel's entry is in the YAML and is one the engine can send to: a URL (the signed
/// generic webhook) or a mapping with a `kind` (`crate::channel`); an SMS channel's phone
/// variable is a variable of the process holding text or a list of text.
fn channel_urls(cx: &mut Cx, config: &ConfigFile) {
    for channel in &cx.process.channels {
        let key = &channel.url_config.name;
        let Some(value) = config.values.get(key) else {
            cx.error(
                MISSING_CONFIG,
                channel.url_config.span,
                format!("`{key}` is missing from {}", config.file),
            )
            .label("the channel's URL comes from here")
            .help(format!(
                "add `{key}: \"https://...\"` to {} (or a mapping with a `kind`, docs/channels.md)",
                config.file
            ));
            continue;
        };
        let problems = match crate::channel::parse(key, value) {
            Ok(crate::channel::Channel::Sms {
                phones: crate::channel::Phones::Var(var),
                ..
            }) => phone_var(cx, key, &var),
            Ok(_) => None,
            Err(problems) => Some(problems),
        };
        for p in problems.into_iter().flatten() {
            let mut path = vec![key.clone()];
            path.extend(p.path);
            let span = yaml_span(config, &path);
            cx.push(
                Diagnostic::error(p.code, span, p.message)
                    .with_label(p.label)
                    .with_help(p.help)
                    .in_file(&config.file),
            );
        }
    }
}

/// `phones_from: var`: a variable of the process whose value is a number or a list of them.
fn phone_var(cx: &Cx, key: &str, var: &str) -> Option<Vec<crate::channel::Problem>> {
    let vars = &cx.process.vars;
    let problem = match vars.iter().find(|v| v.name.name == var) {
        Some(v) if matches!(&v.ty, Type::Text) => return None,
        Some(v) if matches!(&v.ty, Type::List(item) if **item == Type::Text) => return None,
        Some(v) => (
            format!(
                "`{key}.phones_from`: variable `{var}` is a {}, not text",
                super::types::Ty::from(&v.ty)
            ),
            "name a variable of type `text` or `list<text>` holding mobile numbers".to_string(),
        ),
        None => (
            format!("`{key}.phones_from`: `{var}` is not a variable of this process"),
            super::help_or(
                var,
                vars.iter().map(|v| v.name.name.as_str()),
                "name the variable that holds the mobile number, e.g. `phones_from: phone`",
            ),
        ),
    };
    Some(vec![crate::channel::Problem {
        code: CHANNEL_CONFIG,
        path: vec!["phones_from".into()],
        message: problem.0,
        label: "no phone numbers here".into(),
        help: problem.1,
    }])
}

/// The configuration key the engine reads to decide who may start the process.
pub const START_ROLES_KEY: &str = "start_roles";

/// Roles every deployment knows besides the ones a process declares.
const BUILT_IN_ROLES: &[&str] = &["admin"];

/// `start_roles:` (read by the engine, not by the process): the roles that may start the
/// process. A list of `admin`, roles the process declares (`window`), or keys of a keyed role
/// (`department:civil_affairs`).
fn start_roles(cx: &mut Cx, config: &ConfigFile) {
    let Some(value) = config.values.get(START_ROLES_KEY) else {
        return;
    };
    let span = yaml_span(config, &[START_ROLES_KEY.to_string()]);
    let Value::Array(items) = value else {
        cx.push(
            Diagnostic::error(
                START_ROLES,
                span,
                "`start_roles` must be a list of role names",
            )
            .with_label("not a list")
            .with_help("write `start_roles: [window]`; admins may always start the process")
            .in_file(&config.file),
        );
        return;
    };
    let process = cx.process;
    let roles = &process.roles;
    let mut known: Vec<String> = BUILT_IN_ROLES.iter().map(|r| r.to_string()).collect();
    known.extend(roles.iter().map(|r| r.name.name.clone()));
    for item in items {
        let problem = match item {
            Value::String(text) => {
                let (base, key) = match text.split_once(':') {
                    Some((base, key)) => (base, Some(key)),
                    None => (text.as_str(), None),
                };
                match roles.iter().find(|r| r.name.name == base) {
                    _ if key.is_none() && BUILT_IN_ROLES.contains(&base) => None,
                    Some(role) => match key {
                        None => None,
                        Some(k) if role.keyed_by.is_some() && is_key(k) => None,
                        Some(_) if role.keyed_by.is_none() => Some((
                            format!("role `{base}` has no keys, so `{text}` names nothing"),
                            Some(format!("write `{base}`")),
                        )),
                        Some(_) => Some((
                            format!("`{text}` is not a key of role `{base}`"),
                            Some(format!(
                                "write `{base}` or `{base}:<key>` with letters, digits, `_` or `-`"
                            )),
                        )),
                    },
                    None => Some((format!("`{text}` is not a role of this process"), None)),
                }
            }
            _ => Some((format!("`{item}` is not a role name (text)"), None)),
        };
        if let Some((message, help)) = problem {
            let shown = match item {
                Value::String(text) => text.split(':').next().unwrap_or_default().to_string(),
                _ => String::new(),
            };
            let help = help.unwrap_or_else(|| {
                super::help_or(
                    &shown,
                    known.iter().map(String::as_str),
                    format!("roles here: {}", known.join(", ")),
                )
            });
            cx.push(
                Diagnostic::error(START_ROLES, span, message)
                    .with_label("in this list")
                    .with_help(help)
                    .in_file(&config.file),
            );
        }
    }
}

/// The configuration key the engine reads for the case columns of the process's ledger rows.
pub const LEDGER_COLUMNS_KEY: &str = "ledger_columns";

/// `ledger_columns:` (read by the engine, not by the process): the variables whose values
/// name a case in each of its ledger rows (`[street, main_category]`).
fn ledger_columns(cx: &mut Cx, config: &ConfigFile) {
    let Some(value) = config.values.get(LEDGER_COLUMNS_KEY) else {
        return;
    };
    let span = yaml_span(config, &[LEDGER_COLUMNS_KEY.to_string()]);
    let vars: Vec<String> = cx
        .process
        .vars
        .iter()
        .map(|v| v.name.name.clone())
        .collect();
    let Value::Array(items) = value else {
        cx.push(
            Diagnostic::error(
                LEDGER_COLUMNS,
                span,
                "`ledger_columns` must be a list of variable names",
            )
            .with_label("not a list")
            .with_help("write e.g. `ledger_columns: [street, main_category]`")
            .in_file(&config.file),
        );
        return;
    };
    for item in items {
        let (message, help) = match item {
            Value::String(name) if vars.contains(name) => continue,
            Value::String(name) => (
                format!("`{name}` is not a variable of this process"),
                super::help_or(
                    name,
                    vars.iter().map(String::as_str),
                    format!("variables here: {}", vars.join(", ")),
                ),
            ),
            other => (
                format!("`{other}` is not a variable name (text)"),
                "write variable names, e.g. `ledger_columns: [street]`".to_string(),
            ),
        };
        cx.push(
            Diagnostic::error(LEDGER_COLUMNS, span, message)
                .with_label("in this list")
                .with_help(help)
                .in_file(&config.file),
        );
    }
}

/// The configuration key of the statistics (read by the engine, `yimen_engine::statistics`).
pub const STATISTICS_KEY: &str = "statistics";

/// `statistics: { <process key>: ... }` (read by the engine, not by the process): what this
/// process's statistics name is the process's: `by`, `register` and the events' `var` are
/// variables, the events' and stages' `task` are tasks, `result` are ends' results,
/// `department_role` a keyed role. The shape itself (unknown keys, an event without a
/// condition) the engine reports when the page reads it.
fn statistics(cx: &mut Cx, config: &ConfigFile) {
    let key = cx.process.key.name.clone();
    let Some(section) = config.values.get(STATISTICS_KEY).and_then(|s| s.get(&key)) else {
        return;
    };
    let process = cx.process;
    let vars: Vec<String> = process.vars.iter().map(|v| v.name.name.clone()).collect();
    let tasks: Vec<String> = process
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, crate::model::NodeKind::Task(_)))
        .map(|n| n.id.name.clone())
        .collect();
    let mut results: Vec<String> = process
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            crate::model::NodeKind::End { result, .. } => Some(result.name.clone()),
            _ => None,
        })
        .collect();
    results.dedup();
    let keyed: Vec<String> = process
        .roles
        .iter()
        .filter(|r| r.keyed_by.is_some())
        .map(|r| r.name.name.clone())
        .collect();
    let texts = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    // (path below the section, name, what it must be, the names it may be)
    let mut named: Vec<(Vec<String>, String, &str, &Vec<String>)> = Vec::new();
    for field in ["by", "register"] {
        for name in texts(section.get(field)) {
            named.push((vec![field.into()], name, "variable", &vars));
        }
    }
    for role in texts(section.get("department_role")) {
        named.push((vec!["department_role".into()], role, "keyed role", &keyed));
    }
    for list in ["events", "stages"] {
        let items = section.get(list).and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            let path = vec![list.to_string(), i.to_string()];
            for name in texts(item.get("task")) {
                named.push((path.clone(), name, "task", &tasks));
            }
            for name in texts(item.get("var")) {
                named.push((path.clone(), name, "variable", &vars));
            }
            for name in texts(item.get("result")) {
                named.push((path.clone(), name, "result of an end", &results));
            }
        }
    }
    for (below, name, what, known) in named {
        if known.contains(&name) {
            continue;
        }
        let mut path = vec![STATISTICS_KEY.to_string(), key.clone()];
        path.extend(below);
        let span = yaml_span(config, &path);
        let help = super::help_or(
            &name,
            known.iter().map(String::as_str),
            format!("{what}s here: {}", known.join(", ")),
        );
        cx.push(
            Diagnostic::error(
                STATISTICS,
                span,
                format!("statistics of `{key}`: `{name}` is not a {what} of this process"),
            )
            .with_label("named here")
            .with_help(help)
            .in_file(&config.file),
        );
    }
}

/// A key of a keyed role: letters, digits, `_` and `-`.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn type_error(cx: &mut Cx, config: &ConfigFile, path: &[String], message: String, help: String) {
    let span = yaml_span(config, path);
    cx.push(
        Diagnostic::error(CONFIG_TYPE, span, message)
            .with_label("wrong type")
            .with_help(help)
            .in_file(&config.file),
    );
}

/// Checks `value` against `ty`, reporting at the YAML location of `path`.
fn value_matches(cx: &mut Cx, config: &ConfigFile, ty: &Type, value: &Value, path: &[String]) {
    let ok = match (ty, value) {
        (Type::Text, Value::String(_)) => true,
        (Type::Integer, Value::Number(n)) => n.is_i64(),
        (Type::Decimal, Value::Number(_)) => true,
        (Type::Decimal, Value::String(s)) => s.parse::<f64>().is_ok(),
        (Type::Boolean, Value::Bool(_)) => true,
        (Type::Date, Value::String(s)) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        (Type::DateTime, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        (Type::Duration, Value::String(s)) => return duration_value(cx, config, s, path),
        (Type::Enum(e), Value::String(s)) => return enum_value(cx, config, e, s, path),
        (Type::List(item), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = path.to_vec();
                p.push(i.to_string());
                value_matches(cx, config, item, v, &p);
            }
            return;
        }
        (Type::Map(k, v), Value::Object(map)) => return map_value(cx, config, k, v, map, path),
        _ => false,
    };
    if !ok {
        wrong_type(cx, config, ty, value, path);
    }
}

fn duration_value(cx: &mut Cx, config: &ConfigFile, s: &str, path: &[String]) {
    if let Err(why) = crate::duration::parse(s) {
        let name = path.join(".");
        type_error(
            cx,
            config,
            path,
            format!("`{name}`: \"{s}\" is not a duration"),
            why,
        );
    }
}

fn enum_value(cx: &mut Cx, config: &ConfigFile, e: &str, s: &str, path: &[String]) {
    if let Some(Some(values)) = cx.enums.get(e)
        && !values.iter().any(|v| v == s)
    {
        let name = path.join(".");
        let help = super::help_or(
            s,
            values.iter().map(String::as_str),
            format!("use one of: {}", values.join(", ")),
        );
        type_error(
            cx,
            config,
            path,
            format!("`{name}`: `{s}` is not a value of enum `{e}`"),
            help,
        );
    }
}

/// A map: keyed by an enum, its keys are the enum's values (all of them); every entry is
/// checked against the map's value type.
fn map_value(
    cx: &mut Cx,
    config: &ConfigFile,
    k: &Type,
    v: &Type,
    map: &serde_json::Map<String, Value>,
    path: &[String],
) {
    if let Type::Enum(e) = k
        && let Some(Some(values)) = cx.enums.get(e.as_str()).cloned()
    {
        enum_map_keys(cx, config, e, &values, map, path);
    }
    for (key, item) in map {
        let mut p = path.to_vec();
        p.push(key.clone());
        value_matches(cx, config, v, item, &p);
    }
}

/// The keys of a map keyed by enum `e`: every value present, no other key.
fn enum_map_keys(
    cx: &mut Cx,
    config: &ConfigFile,
    e: &str,
    values: &[String],
    map: &serde_json::Map<String, Value>,
    path: &[String],
) {
    let name = path.join(".");
    let missing: Vec<&String> = values.iter().filter(|v| !map.contains_key(*v)).collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let span = yaml_span(config, path);
        cx.push(
            Diagnostic::error(
                CONFIG_MAP_KEYS,
                span,
                format!("`{name}` has no entry for {list}"),
            )
            .with_label(format!("must cover every value of `{e}`"))
            .with_help(format!("add `{}: ...` under `{name}`", missing[0]))
            .in_file(&config.file),
        );
    }
    for key in map.keys() {
        if !values.contains(key) {
            let mut p = path.to_vec();
            p.push(key.clone());
            let span = yaml_span(config, &p);
            let help = super::help_or(
                key,
                values.iter().map(String::as_str),
                format!("values of `{e}`: {}", values.join(", ")),
            );
            cx.push(
                Diagnostic::error(
                    CONFIG_MAP_KEYS,
                    span,
                    format!("`{key}` in `{name}` is not a value of enum `{e}`"),
                )
                .with_label("unknown key")
                .with_help(help)
                .in_file(&config.file),
            );
        }
    }
}

/// `value` is not of type `ty` at all.
fn wrong_type(cx: &mut Cx, config: &ConfigFile, ty: &Type, value: &Value, path: &[String]) {
    let name = path.join(".");
    let shown = super::types::Ty::from(ty);
    let found = match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    type_error(
        cx,
        config,
        path,
        format!("`{name}` must be {shown}, but is {found}"),
        format!(
            "write a {shown} value (the process declares `{}: {shown}`)",
            path[0]
        ),
    );
}

/// Where `path` is written in the YAML text; falls back to the deepest ancestor found, or
/// the start of the file.
pub(crate) fn yaml_span(config: &ConfigFile, path: &[String]) -> Span {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    (1..=path.len())
        .rev()
        .find_map(|n| config.key_span(&path[..n]))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_span_falls_back_to_the_nearest_ancestor() {
        let source = "a:\n  x: 1\nlimits:\n  # comment\n  x: \"30 workdays\"\n  y: 2\n".to_string();
        let config = ConfigFile {
            file: "c.yaml".into(),
            source: source.clone(),
            values: serde_json::Value::Null,
        };
        let span = yaml_span(&config, &["limits".into(), "x".into()]);
        assert_eq!(crate::diagnostic::line_col(&source, span.start), (5, 3));
        let missing = yaml_span(&config, &["limits".into(), "z".into()]);
        assert_eq!(&source[missing.start..missing.end], "limits");
    }
}
