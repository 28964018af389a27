//! A task's form, generated from its process: one control per field the task declares or an
//! outcome requires, by the variable's type (text, numbers, yes/no, dates, an enum as a
//! select, a list of an enum as checkboxes), labelled as the process labels it; and the posted
//! form read back into the variables a completion sends. The engine checks them again (the
//! same rules as the API's 422).

use crate::engine::ProcessLabels;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use yimen_dsl::model::{NodeKind, Process, Type};

/// One control of the form.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FormField {
    pub name: String,
    pub label: String,
    /// `text`, `integer`, `decimal`, `boolean`, `date`, `select` or `checkboxes`.
    pub kind: &'static str,
    /// Required whatever the outcome.
    pub required: bool,
    /// The outcomes (by label) that require it.
    pub required_for: Vec<String>,
    pub options: Vec<FormOption>,
    /// What the form shows: the value posted, or the case's.
    pub value: String,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct FormOption {
    pub key: String,
    pub label: String,
    pub checked: bool,
}

/// An outcome button.
#[derive(Debug, Clone, Serialize)]
pub(super) struct FormOutcome {
    pub key: String,
    pub label: String,
}

/// The form of task node `node` of `model`, filled with `values` (the case's, or what was
/// posted). `None` when the node is not a task of the model.
pub(super) fn task_form(
    model: &Process,
    node: &str,
    labels: &ProcessLabels,
    values: &Map<String, Json>,
) -> Option<(Vec<FormField>, Vec<FormOutcome>)> {
    let task = model.nodes.iter().find_map(|n| match &n.kind {
        NodeKind::Task(task) if n.id.name == node => Some(task),
        _ => None,
    })?;
    let mut names: Vec<(&str, bool)> = task
        .fields
        .iter()
        .map(|f| (f.var.name.as_str(), f.required))
        .collect();
    for outcome in &task.outcomes {
        for var in &outcome.requires {
            if !names.iter().any(|(n, _)| *n == var.name) {
                names.push((var.name.as_str(), false));
            }
        }
    }
    let fields = names
        .into_iter()
        .filter_map(|(name, required)| {
            let decl = model.vars.iter().find(|v| v.name.name == name)?;
            let required_for = task
                .outcomes
                .iter()
                .filter(|o| o.requires.iter().any(|r| r.name == name))
                .map(|o| o.label.clone().unwrap_or_else(|| o.key.name.clone()))
                .collect();
            Some(field(
                name,
                &decl.ty,
                required,
                required_for,
                labels,
                values.get(name),
            ))
        })
        .collect();
    let outcomes = task
        .outcomes
        .iter()
        .map(|o| FormOutcome {
            key: o.key.name.clone(),
            label: o.label.clone().unwrap_or_else(|| o.key.name.clone()),
        })
        .collect();
    Some((fields, outcomes))
}

fn field(
    name: &str,
    ty: &Type,
    required: bool,
    required_for: Vec<String>,
    labels: &ProcessLabels,
    value: Option<&Json>,
) -> FormField {
    let text = |v: Option<&Json>| match v {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let chosen: Vec<String> = match value {
        Some(Json::Array(items)) => items.iter().map(|i| text(Some(i))).collect(),
        Some(v) => vec![text(Some(v))],
        None => Vec::new(),
    };
    let options = |e: &str| {
        labels
            .options(e)
            .iter()
            .map(|(key, label)| FormOption {
                key: key.clone(),
                label: label.clone(),
                checked: chosen.contains(key),
            })
            .collect()
    };
    let (kind, options) = match ty {
        Type::Integer => ("integer", Vec::new()),
        Type::Decimal => ("decimal", Vec::new()),
        Type::Boolean => ("boolean", Vec::new()),
        Type::Date => ("date", Vec::new()),
        Type::Enum(e) => ("select", options(e)),
        Type::List(item) => match item.as_ref() {
            Type::Enum(e) => ("checkboxes", options(e)),
            _ => ("text", Vec::new()),
        },
        _ => ("text", Vec::new()),
    };
    FormField {
        name: name.to_string(),
        label: labels.var(name),
        kind,
        required,
        required_for,
        options,
        value: text(value),
        problem: None,
    }
}

/// A posted form, read.
#[derive(Debug, Clone, Default)]
pub(super) struct Posted {
    /// The variables the completion sends.
    pub vars: Map<String, Json>,
    /// The values as posted, to show the form again.
    pub shown: Map<String, Json>,
    /// (field, why) of what does not read, in Chinese.
    pub problems: Vec<(String, String)>,
}

/// The posted `pairs` read as the variables of `fields`: a field left empty is not sent (the
/// engine says whether the outcome needs it); a number that does not read is a problem of its
/// field, said in Chinese.
pub(super) fn read_posted(fields: &[FormField], pairs: &[(String, String)]) -> Posted {
    let mut vars = Map::new();
    let mut shown = Map::new();
    let mut problems = Vec::new();
    for f in fields {
        let given: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| *k == f.name)
            .map(|(_, v)| v.trim())
            .collect();
        if f.kind == "checkboxes" {
            let items: Vec<Json> = given
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| Json::String((*v).to_string()))
                .collect();
            shown.insert(f.name.clone(), Json::Array(items.clone()));
            if !items.is_empty() {
                vars.insert(f.name.clone(), Json::Array(items));
            }
            continue;
        }
        let one = given.first().copied().unwrap_or("");
        shown.insert(f.name.clone(), Json::String(one.to_string()));
        if one.is_empty() {
            continue;
        }
        let value = match f.kind {
            "integer" => one.parse::<i64>().map(Json::from).map_err(|_| "请填写整数"),
            "decimal" => one
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or("请填写数字"),
            "boolean" => match one {
                "true" => Ok(Json::Bool(true)),
                "false" => Ok(Json::Bool(false)),
                _ => Err("请选择“是”或“否”"),
            },
            _ => Ok(Json::String(one.to_string())),
        };
        match value {
            Ok(v) => {
                vars.insert(f.name.clone(), v);
            }
            Err(why) => problems.push((f.name.clone(), why.to_string())),
        }
    }
    Posted {
        vars,
        shown,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, kind: &'static str) -> FormField {
        FormField {
            name: name.into(),
            label: name.into(),
            kind,
            required: false,
            required_for: Vec::new(),
            options: Vec::new(),
            value: String::new(),
            problem: None,
        }
    }

    #[test]
    fn posted_values_read_by_their_type() {
        let fields = [
            f("amount", "decimal"),
            f("size", "integer"),
            f("clear", "boolean"),
            f("kinds", "checkboxes"),
            f("note", "text"),
            f("empty", "text"),
        ];
        let pairs: Vec<(String, String)> = [
            ("amount", "520.5"),
            ("size", " 3 "),
            ("clear", "false"),
            ("kinds", "medical"),
            ("kinds", "housing"),
            ("note", "材料齐全"),
            ("empty", ""),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Posted { vars, problems, .. } = read_posted(&fields, &pairs);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(vars["amount"], serde_json::json!(520.5));
        assert_eq!(vars["size"], serde_json::json!(3));
        assert_eq!(vars["clear"], serde_json::json!(false));
        assert_eq!(vars["kinds"], serde_json::json!(["medical", "housing"]));
        assert_eq!(vars["note"], serde_json::json!("材料齐全"));
        assert!(!vars.contains_key("empty"), "an empty field is not sent");
    }

    #[test]
    fn numbers_that_do_not_read_are_problems_of_their_field() {
        let fields = [f("size", "integer"), f("amount", "decimal")];
        let pairs = vec![
            ("size".to_string(), "三".to_string()),
            ("amount".to_string(), "NaN".to_string()),
        ];
        let Posted {
            vars,
            shown,
            problems,
        } = read_posted(&fields, &pairs);
        assert!(vars.is_empty());
        assert_eq!(
            shown["size"],
            serde_json::json!("三"),
            "shown again as typed"
        );
        assert_eq!(
            problems,
            vec![
                ("size".to_string(), "请填写整数".to_string()),
                ("amount".to_string(), "请填写数字".to_string())
            ]
        );
    }
}
