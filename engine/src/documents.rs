//! Rendering of documents (`issue` actions) and message texts (`notify`, `ledger`) with
//! minijinja over case data.
//!
//! Personal variables: the `mask` filter masks a value by its variable's kind
//! (`{{ applicant_name | mask }}`); in public documents (publicity lists) and in every message
//! text, personal values are masked before the template sees them, so a template that forgets
//! the filter still leaks nothing. The template decides which fields a public list shows.

use crate::runtime::DeploymentData;
use crate::runtime::state::RunState;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use yimen_dsl::model::{DocumentDecl, PersonalKind, Process};

/// Masks a JSON value of a personal variable: text by its kind, anything else fully.
pub fn mask_json(kind: PersonalKind, value: &Json) -> Json {
    match value {
        Json::Null => Json::Null,
        Json::String(s) => Json::String(yimen_dsl::pii::mask(kind, s)),
        _ => Json::String("***".into()),
    }
}

/// Case data a template sees.
pub struct Context<'a> {
    pub model: &'a Process,
    pub data: &'a DeploymentData,
    pub vars: &'a Map<String, Json>,
    pub state: &'a RunState,
    pub item: Option<(&'a str, &'a Json)>,
    pub now: DateTime<Utc>,
}

/// Renders `source` (named `name` in errors). `mask_all`: personal values are masked before
/// the template sees them.
pub fn render_text(
    ctx: &Context<'_>,
    name: &str,
    source: &str,
    mask_all: bool,
) -> Result<String, String> {
    let mut personal: HashMap<String, PersonalKind> = HashMap::new();
    let mut case = Map::new();
    for (var, value) in ctx.vars {
        let kind = ctx
            .model
            .vars
            .iter()
            .find(|v| &v.name.name == var)
            .and_then(|v| v.personal);
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
    let mut values = case.clone();
    for (node, result) in &ctx.state.results {
        values
            .entry(node.clone())
            .or_insert_with(|| Json::Object(result.clone()));
    }
    if let Some((item, v)) = ctx.item {
        values.insert(item.to_string(), v.clone());
    }
    let china = FixedOffset::east_opt(8 * 3600).ok_or("bad offset")?;
    let local = ctx.now.with_timezone(&china);
    values.insert("vars".into(), Json::Object(case));
    values.insert(
        "today".into(),
        Json::String(local.format("%Y-%m-%d").to_string()),
    );
    values.insert("now".into(), Json::String(local.to_rfc3339()));
    values.insert("config".into(), ctx.data.config.clone());
    values.insert("process".into(), Json::String(ctx.model.title.clone()));
    let mut env = minijinja::Environment::new();
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
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| format!("template {name}: {e}"))?;
    tmpl.render(minijinja::Value::from_serialize(&values))
        .map_err(|e| format!("template {name}: {e}"))
}

/// Renders document `decl` from the deployment's files.
pub fn render(ctx: &Context<'_>, decl: &DocumentDecl) -> Result<String, String> {
    let source = ctx.data.files.get(&decl.template).ok_or_else(|| {
        format!(
            "template {} of document `{}` was not deployed with the process",
            decl.template, decl.name.name
        )
    })?;
    render_text(ctx, &decl.template, source, decl.public)
}
