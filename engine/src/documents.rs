//! Documents an `issue` action renders from the deployment's minijinja templates. Public
//! documents (publicity lists) get personal variables masked; the template decides which fields
//! it shows (and leaves out minors).

use crate::runtime::state::RunState;
use crate::runtime::{DeploymentData, mask};
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};
use yimen_dsl::model::{DocumentDecl, Process};

/// Renders `decl` with the case data. The error says which template failed and why.
pub fn render(
    model: &Process,
    data: &DeploymentData,
    decl: &DocumentDecl,
    vars: &Map<String, Json>,
    state: &RunState,
    item: Option<(&str, &Json)>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let source = data.files.get(&decl.template).ok_or_else(|| {
        format!(
            "template {} of document `{}` was not deployed with the process",
            decl.template, decl.name.name
        )
    })?;
    let mut case = Map::new();
    for (name, value) in vars {
        let personal = model
            .vars
            .iter()
            .find(|v| &v.name.name == name)
            .and_then(|v| v.personal);
        let shown = match personal {
            Some(kind) if decl.public => mask::mask_json(kind, value),
            _ => value.clone(),
        };
        case.insert(name.clone(), shown);
    }
    let mut ctx = case.clone();
    for (node, result) in &state.results {
        ctx.entry(node.clone())
            .or_insert_with(|| Json::Object(result.clone()));
    }
    if let Some((name, v)) = item {
        ctx.insert(name.to_string(), v.clone());
    }
    let china = FixedOffset::east_opt(8 * 3600).ok_or("bad offset")?;
    let local = now.with_timezone(&china);
    ctx.insert("vars".into(), Json::Object(case));
    ctx.insert(
        "today".into(),
        Json::String(local.format("%Y-%m-%d").to_string()),
    );
    ctx.insert("now".into(), Json::String(local.to_rfc3339()));
    ctx.insert("config".into(), data.config.clone());
    ctx.insert("process".into(), Json::String(model.title.clone()));
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    let name = decl.template.as_str();
    env.add_template(name, source)
        .map_err(|e| format!("template {name}: {e}"))?;
    let tmpl = env
        .get_template(name)
        .map_err(|e| format!("template {name}: {e}"))?;
    tmpl.render(minijinja::Value::from_serialize(&ctx))
        .map_err(|e| format!("template {name}: {e}"))
}
