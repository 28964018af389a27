//! Rendering of documents (`issue` actions) and message texts (`notify`, `ledger`) with
//! minijinja over case data.
//!
//! Personal variables: in public documents (publicity lists) and in every message text,
//! personal values are masked before the template sees them, so a template that forgets to mask
//! still leaks nothing; the template decides which fields a public list shows. A document that
//! is not public is addressed to the person it concerns (a notice to them) and sees
//! the values as entered; its `mask` filter (`{{ id_number | mask }}`) masks one where the
//! notice should not show it whole.
//!
//! What people read: the `label` filter shows an enum value by its label
//! (`{{ main_category | label }}` → 最低生活保障; a list joined with 、), and durations
//! (configuration keys and variables of type `duration`) reach the template as Chinese text
//! (`7 days` → 7日, `30 workdays` → 30个工作日, `4 workhours` → 4个工作小时).

use crate::runtime::DeploymentData;
use crate::runtime::state::RunState;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use yimen_dsl::model::{DocumentDecl, DurationUnit, EnumSource, PersonalKind, Process, Type};

/// Masks a JSON value of a personal variable: text by its kind, anything else fully.
pub fn mask_json(kind: PersonalKind, value: &Json) -> Json {
    match value {
        Json::Null => Json::Null,
        Json::String(s) => Json::String(yimen_dsl::pii::mask(kind, s)),
        _ => Json::String("***".into()),
    }
}

/// A duration as people read it in Chinese: `30个工作日`, `7日`, `4个工作小时`.
pub fn duration_text(amount: i64, unit: DurationUnit) -> String {
    let unit = match unit {
        DurationUnit::WorkDays => "个工作日",
        DurationUnit::WorkHours => "个工作小时",
        DurationUnit::Days => "日",
        DurationUnit::Hours => "小时",
        DurationUnit::Minutes => "分钟",
    };
    format!("{amount}{unit}")
}

/// A value of type `ty` as a template shows it: durations (also inside lists and maps) in
/// Chinese; anything else unchanged.
fn readable_value(ty: &Type, value: &Json) -> Json {
    match (ty, value) {
        (Type::Duration, Json::String(text)) => yimen_dsl::duration::parse(text).map_or_else(
            |_| value.clone(),
            |d| Json::String(duration_text(d.amount, d.unit)),
        ),
        (Type::List(item), Json::Array(items)) => {
            Json::Array(items.iter().map(|v| readable_value(item, v)).collect())
        }
        (Type::Map(_, item), Json::Object(map)) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), readable_value(item, v)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The label of value `key` of enum `name`: written in the process, or from the configuration
/// map the enum comes from (a text value, or the `name` of an object).
fn enum_label(model: &Process, config: &Json, name: &str, key: &str) -> Option<String> {
    let decl = model.enums.iter().find(|e| e.name.name == name)?;
    match &decl.source {
        EnumSource::Listed(values) => values
            .iter()
            .find(|v| v.key.name == key)
            .and_then(|v| v.label.clone()),
        EnumSource::Config(map) => match config.get(&map.name)?.get(key)? {
            Json::String(label) => Some(label.clone()),
            other => other.get("name")?.as_str().map(str::to_string),
        },
    }
}

/// Labels of the enum values a template may print: first those of the case's enum variables
/// (their own enum decides), then every other value of every enum.
fn enum_labels(ctx: &Context<'_>) -> HashMap<String, String> {
    let config = &ctx.data.config;
    let mut labels = HashMap::new();
    for var in &ctx.model.vars {
        let name = match &var.ty {
            Type::Enum(e) => e,
            Type::List(item) => match item.as_ref() {
                Type::Enum(e) => e,
                _ => continue,
            },
            _ => continue,
        };
        let keys: Vec<&str> = match ctx.vars.get(&var.name.name) {
            Some(Json::String(k)) => vec![k.as_str()],
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).collect(),
            _ => continue,
        };
        for key in keys {
            if let Some(label) = enum_label(ctx.model, config, name, key) {
                labels.entry(key.to_string()).or_insert(label);
            }
        }
    }
    for decl in &ctx.model.enums {
        let keys: Vec<String> = match &decl.source {
            EnumSource::Listed(values) => values.iter().map(|v| v.key.name.clone()).collect(),
            EnumSource::Config(map) => config
                .get(&map.name)
                .and_then(Json::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        };
        for key in keys {
            if !labels.contains_key(&key)
                && let Some(label) = enum_label(ctx.model, config, &decl.name.name, &key)
            {
                labels.insert(key, label);
            }
        }
    }
    labels
}

/// Case data a template sees.
pub struct Context<'a> {
    pub model: &'a Process,
    pub data: &'a DeploymentData,
    pub vars: &'a Map<String, Json>,
    pub state: &'a RunState,
    pub item: Option<(&'a str, &'a Json)>,
    pub now: DateTime<Utc>,
    /// Fuel and output size of a render.
    pub limits: crate::limits::Limits,
}

/// Why a template did not render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub message: String,
    /// The render ran out of fuel or exceeded the output size: the template is too costly for
    /// this data, not wrong.
    pub over_limit: bool,
}

impl RenderError {
    fn plain(message: String) -> RenderError {
        RenderError {
            message,
            over_limit: false,
        }
    }
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Collects a render's output up to `limit` bytes, and fails the render beyond.
struct Capped {
    out: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `source` (named `name` in errors). `mask_all`: personal values are masked before
/// the template sees them.
pub fn render_text(
    ctx: &Context<'_>,
    name: &str,
    source: &str,
    mask_all: bool,
) -> Result<String, RenderError> {
    let (case, personal) = case_values(ctx, mask_all);
    let values = template_values(ctx, case)?;
    let env = environment(ctx, personal);
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| RenderError::plain(format!("template {name}: {e}")))?;
    let mut out = Capped {
        out: Vec::new(),
        limit: ctx.limits.document_bytes,
        over: false,
    };
    match tmpl.render_captured_to(minijinja::Value::from_serialize(&values), &mut out) {
        Ok(_) => String::from_utf8(out.out)
            .map_err(|_| RenderError::plain(format!("template {name}: output is not UTF-8"))),
        Err(_) if out.over => Err(RenderError {
            message: format!(
                "template {name} writes more than {} bytes (the server's --max-document-bytes)",
                ctx.limits.document_bytes
            ),
            over_limit: true,
        }),
        Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(RenderError {
            message: format!(
                "template {name} needs more than {} steps to render (the server's --template-fuel); simplify its loops",
                ctx.limits.template_fuel
            ),
            over_limit: true,
        }),
        Err(e) => Err(RenderError::plain(format!("template {name}: {e}"))),
    }
}

/// The case's variables as a template shows them (readable, personal ones masked when
/// `mask_all`), and the kind of every personal value (for the `mask` filter).
fn case_values(
    ctx: &Context<'_>,
    mask_all: bool,
) -> (Map<String, Json>, HashMap<String, PersonalKind>) {
    let mut personal: HashMap<String, PersonalKind> = HashMap::new();
    let mut case = Map::new();
    for (var, value) in ctx.vars {
        let decl = ctx.model.vars.iter().find(|v| &v.name.name == var);
        let kind = decl.and_then(|v| v.personal);
        let value = &decl.map_or_else(|| value.clone(), |d| readable_value(&d.ty, value));
        let shown = match kind {
            Some(kind) => {
                if let Json::String(s) = value {
                    personal.insert(s.clone(), kind);
                }
                if mask_all {
                    mask_json(kind, value)
                } else {
                    value.clone()
                }
            }
            None => value.clone(),
        };
        case.insert(var.clone(), shown);
    }
    (case, personal)
}

/// Everything a template sees: the variables `case` (also as `vars`), node results, the
/// for-each item, `today`, `now` (China time), `config` and `process`.
fn template_values(
    ctx: &Context<'_>,
    case: Map<String, Json>,
) -> Result<Map<String, Json>, RenderError> {
    let mut values = case.clone();
    for (node, result) in &ctx.state.results {
        values
            .entry(node.clone())
            .or_insert_with(|| Json::Object(result.clone()));
    }
    if let Some((item, v)) = ctx.item {
        values.insert(item.to_string(), v.clone());
    }
    let china =
        FixedOffset::east_opt(8 * 3600).ok_or_else(|| RenderError::plain("bad offset".into()))?;
    let local = ctx.now.with_timezone(&china);
    values.insert("vars".into(), Json::Object(case));
    values.insert(
        "today".into(),
        Json::String(local.format("%Y-%m-%d").to_string()),
    );
    values.insert("now".into(), Json::String(local.to_rfc3339()));
    let mut config = ctx.data.config.clone();
    if let (Some(decl), Json::Object(map)) = (&ctx.model.config, &mut config) {
        for key in &decl.keys {
            if let Some(v) = map.get_mut(&key.name.name) {
                *v = readable_value(&key.ty, v);
            }
        }
    }
    values.insert("config".into(), config);
    values.insert("process".into(), Json::String(ctx.model.title.clone()));
    Ok(values)
}

/// The template environment: the render's fuel, lenient undefined values, and the filters
/// `mask` (by the kinds in `personal`) and `label` (an enum value's label).
fn environment<'s>(
    ctx: &Context<'_>,
    personal: HashMap<String, PersonalKind>,
) -> minijinja::Environment<'s> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(ctx.limits.template_fuel));
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    // The filter sees only the value: it finds the kind through the personal values of the case.
    env.add_filter("mask", move |value: minijinja::Value| -> String {
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        match personal.get(&text) {
            Some(kind) => yimen_dsl::pii::mask(*kind, &text),
            None => text,
        }
    });
    let labels = enum_labels(ctx);
    env.add_filter("label", move |value: minijinja::Value| -> String {
        let one = |v: &minijinja::Value| {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            labels.get(&text).cloned().unwrap_or(text)
        };
        if value.kind() == minijinja::value::ValueKind::Seq {
            value
                .try_iter()
                .map(|items| items.map(|v| one(&v)).collect::<Vec<_>>().join("、"))
                .unwrap_or_default()
        } else if value.is_undefined() || value.is_none() {
            String::new()
        } else {
            one(&value)
        }
    });
    env
}

/// Renders document `decl` from the deployment's files.
pub fn render(ctx: &Context<'_>, decl: &DocumentDecl) -> Result<String, RenderError> {
    let source = ctx.data.files.get(&decl.template).ok_or_else(|| {
        RenderError::plain(format!(
            "template {} of document `{}` was not deployed with the process",
            decl.template, decl.name.name
        ))
    })?;
    render_text(ctx, &decl.template, source, decl.public)
}
