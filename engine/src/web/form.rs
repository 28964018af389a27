//! A task's form, generated from its process: one control per field the task declares or an
//! outcome requires, by the variable's type (text, numbers, yes/no, dates, an enum as a
//! select, a list of an enum as checkboxes), labelled as the process labels it; and the posted
//! form read back into the variables a completion sends. The engine checks them again (the
//! same rules as the API's 422).

use crate::engine::ProcessLabels;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use yimen_dsl::model::{NodeKind, PersonalKind, Process, Type};

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
    /// Personal data of this kind: checked on the page as the engine checks it.
    #[serde(skip)]
    pub personal: Option<PersonalKind>,
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
        personal: None,
    }
}

/// The variables a registration gives: those of the process that no task, message or step
/// sets later (a task's fields, what its outcomes require, a message's, a `set`).
pub(super) fn start_fields(model: &Process, labels: &ProcessLabels) -> Vec<FormField> {
    use yimen_dsl::model::Action;
    let mut later: Vec<&str> = Vec::new();
    let mut actions: Vec<&Action> = Vec::new();
    for node in &model.nodes {
        match &node.kind {
            NodeKind::Task(task) => {
                later.extend(task.fields.iter().map(|f| f.var.name.as_str()));
                for o in &task.outcomes {
                    later.extend(o.requires.iter().map(|r| r.name.as_str()));
                }
                actions.extend(&task.on_enter);
            }
            NodeKind::WaitMessage { sets, .. } => {
                later.extend(sets.iter().map(|f| f.var.name.as_str()));
            }
            NodeKind::Step { actions: a, .. } | NodeKind::End { actions: a, .. } => {
                actions.extend(a)
            }
            _ => {}
        }
    }
    for action in actions {
        if let Action::Assign { var, .. } = action {
            later.push(var.name.as_str());
        }
    }
    model
        .vars
        .iter()
        .filter(|v| !later.contains(&v.name.name.as_str()))
        .map(|v| {
            let mut f = field(&v.name.name, &v.ty, v.required, Vec::new(), labels, None);
            f.personal = v.personal;
            f
        })
        .collect()
}

/// Checks an ID number or a phone as the engine will, said in Chinese for the form.
pub(super) fn personal_problem(kind: PersonalKind, value: &str) -> Option<String> {
    use yimen_dsl::pii::{IdNumberError, check_id_number, check_phone};
    match kind {
        PersonalKind::IdNumber => check_id_number(value).err().map(|e| match e {
            IdNumberError::Length(n) => format!("身份证号应为 18 位，这里是 {n} 位"),
            IdNumberError::NotDigits => "身份证号前 17 位应为数字，最后一位为数字或 X".into(),
            IdNumberError::Region(r) => format!("身份证号的地区码 {r} 不存在，请核对前 6 位"),
            IdNumberError::BirthDate(b) => format!("身份证号中的出生日期 {b} 不是有效日期"),
            IdNumberError::CheckDigit { expected } => {
                format!("身份证号校验位不对（按前 17 位应为 {expected}），请核对是否输错")
            }
        }),
        PersonalKind::Phone => check_phone(value)
            .err()
            .map(|_| "请填写 11 位手机号，或带区号的固定电话（如 010-12345678）".into()),
        _ => None,
    }
}

/// `f` showing `value` (what was posted) instead of its value.
pub(super) fn refill(mut f: FormField, value: Option<&Json>) -> FormField {
    let chosen: Vec<String> = match value {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        Some(Json::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    for o in &mut f.options {
        o.checked = chosen.contains(&o.key);
    }
    f.value = match value {
        Some(Json::String(s)) => s.clone(),
        _ => String::new(),
    };
    f
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
        if let Some(why) = f.personal.and_then(|kind| personal_problem(kind, one)) {
            problems.push((f.name.clone(), why));
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
            personal: None,
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
    fn id_numbers_and_phones_are_checked_in_chinese() {
        let id = Some(PersonalKind::IdNumber);
        let said = |kind, v| personal_problem(kind, v).unwrap_or_default();
        assert!(said(PersonalKind::IdNumber, "12345").contains("18 位"));
        assert!(said(PersonalKind::IdNumber, "110105194912310021").contains("应为 X"));
        assert!(said(PersonalKind::IdNumber, "110105194902310028").contains("出生日期"));
        assert_eq!(
            personal_problem(PersonalKind::IdNumber, "11010519491231002X"),
            None
        );
        assert!(said(PersonalKind::Phone, "12345").contains("11 位手机号"));
        assert_eq!(personal_problem(PersonalKind::Phone, "13800138000"), None);
        assert_eq!(personal_problem(PersonalKind::Name, "张三"), None);
        let mut field = f("id_number", "text");
        field.personal = id;
        let pairs = vec![("id_number".to_string(), "12345".to_string())];
        let posted = read_posted(&[field], &pairs);
        assert!(posted.vars.is_empty(), "not sent to the engine");
        assert_eq!(posted.problems[0].0, "id_number");
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
