//! Variables: the start's inputs checked against their declared types, enums, personal-data
//! kinds and limits, and the scope expressions read them in.

use super::*;
use crate::limits::LimitError;
use chrono::NaiveDate;
use yimen_dsl::pii::{IdNumberError, PhoneError};

/// Why a value given for a variable is refused. The text follows the variable's name (a
/// problem of a 422 answer, `set VAR: …` in an incident).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not of the declared type (the language's reason).
    #[error("{0}")]
    Type(String),
    #[error(
        "is not a valid resident ID number (GB 11643: 18 characters, region code, birth date, MOD 11-2 check character): {0}"
    )]
    IdNumber(#[source] IdNumberError),
    #[error("is not a valid resident ID number: its birth date {0} is in the future")]
    BornInFuture(NaiveDate),
    #[error("is not a valid phone number: {0}")]
    Phone(#[source] PhoneError),
    /// A list or map with more entries than the server's `--max-list-items`.
    #[error("has {count} entries; at most {max} are allowed (the server's --max-list-items)")]
    TooManyEntries { count: usize, max: usize },
    #[error("item {index}: {source}")]
    Item {
        index: usize,
        source: Box<InputError>,
    },
    #[error("key {key}: {source}")]
    Key {
        key: String,
        source: Box<InputError>,
    },
    #[error("{date} {source}")]
    Date { date: NaiveDate, source: LimitError },
    #[error("{} {source}", at.to_rfc3339())]
    Instant {
        at: DateTime<Utc>,
        source: LimitError,
    },
}

/// Checks start variables against the declarations and fills defaults. Every problem at once.
pub fn start_vars(
    model: &Process,
    data: &DeploymentData,
    given: &Map<String, Json>,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Map<String, Json>, EngineError> {
    let mut problems = Vec::new();
    let mut vars = Map::new();
    for name in given.keys() {
        if !model.vars.iter().any(|v| &v.name.name == name) {
            problems.push(Problem::new(name, "is not a variable of this process"));
        }
    }
    for decl in &model.vars {
        let name = &decl.name.name;
        match given.get(name) {
            Some(v) if !v.is_null() => match input(model, data, limits, decl, v, now) {
                Ok(v) => {
                    vars.insert(name.clone(), v);
                }
                Err(e) => problems.push(Problem::new(name, e.to_string())),
            },
            _ if decl.required => problems.push(Problem::new(name, "is required")),
            _ => {
                if let Some(default) = &decl.default {
                    let scope = VarScope {
                        model,
                        data,
                        vars: &vars,
                        state: None,
                        item: None,
                        now,
                    };
                    match eval(default, &scope) {
                        Ok(v) => {
                            vars.insert(name.clone(), v.to_json());
                        }
                        Err(e) => problems.push(Problem::new(name, format!("default: {e}"))),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(vars)
    } else {
        Err(EngineError::Invalid { problems })
    }
}

/// Checks a value given for variable `decl` from outside (start variables, completion fields,
/// message payloads) and returns its canonical JSON form: its type; an enum value may be given
/// by its label (`最低生活保障` for `minimum_living`) and is stored as its key; a personal
/// variable's value must be what its kind says (an ID number by GB 11643 with a birth date
/// before `now`, a mobile or a landline with its area code). The message names the rule.
pub(super) fn input(
    model: &Process,
    data: &DeploymentData,
    limits: &Limits,
    decl: &VarDecl,
    json: &Json,
    now: DateTime<Utc>,
) -> Result<Json, InputError> {
    let keyed = enum_keys(model, data, &decl.ty, json);
    let value = typed(
        model,
        data,
        limits,
        &decl.ty,
        keyed.as_ref().unwrap_or(json),
    )?;
    if let (Some(kind), Json::String(text)) = (decl.personal, &value) {
        check_personal(kind, text, now)?;
    }
    Ok(value)
}

/// The rules of personal kinds that have them.
pub(super) fn check_personal(
    kind: PersonalKind,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(), InputError> {
    match kind {
        PersonalKind::IdNumber => {
            yimen_dsl::pii::check_id_number(text).map_err(InputError::IdNumber)?;
            match yimen_dsl::pii::birth_date(text) {
                Some(born) if born > now.date_naive() => Err(InputError::BornInFuture(born)),
                _ => Ok(()),
            }
        }
        PersonalKind::Phone => yimen_dsl::pii::check_phone(text).map_err(InputError::Phone),
        PersonalKind::Name | PersonalKind::Address | PersonalKind::Sensitive => Ok(()),
    }
}

/// `json` with every enum value given by its label replaced by the value's key (`None`: nothing
/// to replace). A text that is a key stays as it is, even should it be another value's label.
pub(super) fn enum_keys(
    model: &Process,
    data: &DeploymentData,
    ty: &Type,
    json: &Json,
) -> Option<Json> {
    match (ty, json) {
        (Type::Enum(name), Json::String(text)) => {
            let labels = enum_labels(model, data, name)?;
            if labels.iter().any(|(key, _)| key == text) {
                return None;
            }
            labels
                .into_iter()
                .find(|(_, label)| label.as_deref() == Some(text.trim()))
                .map(|(key, _)| Json::String(key))
        }
        (Type::List(inner), Json::Array(items)) => {
            let keyed: Vec<Option<Json>> = items
                .iter()
                .map(|item| enum_keys(model, data, inner, item))
                .collect();
            keyed.iter().any(Option::is_some).then(|| {
                Json::Array(
                    keyed
                        .into_iter()
                        .zip(items)
                        .map(|(k, item)| k.unwrap_or_else(|| item.clone()))
                        .collect(),
                )
            })
        }
        (Type::Map(_, inner), Json::Object(entries)) => {
            let keyed: Map<String, Json> = entries
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), enum_keys(model, data, inner, v)?)))
                .collect();
            (!keyed.is_empty()).then(|| {
                let mut all = entries.clone();
                all.extend(keyed);
                Json::Object(all)
            })
        }
        _ => None,
    }
}

/// An enum's values with their labels (listed, or a configuration map's keys with their
/// values, or their values' `name`).
pub(super) fn enum_labels(
    model: &Process,
    data: &DeploymentData,
    name: &str,
) -> Option<Vec<(String, Option<String>)>> {
    let decl = model.enums.iter().find(|e| e.name.name == name)?;
    match &decl.source {
        EnumSource::Listed(values) => Some(
            values
                .iter()
                .map(|v| (v.key.name.clone(), v.label.clone()))
                .collect(),
        ),
        EnumSource::Config(key) => data
            .config
            .get(&key.name)
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let label = v.as_str().or_else(|| v.get("name").and_then(Json::as_str));
                        let label = label.map(str::to_string);
                        (k.clone(), label)
                    })
                    .collect()
            }),
    }
}

/// Type-checks `json` against `ty` and the [`Limits`] (list sizes, the years of dates) and
/// returns its canonical JSON form.
pub(super) fn typed(
    model: &Process,
    data: &DeploymentData,
    limits: &Limits,
    ty: &Type,
    json: &Json,
) -> Result<Json, InputError> {
    let enums = |name: &str| enum_values(model, data, name);
    let value = Value::from_json(json, ty, &enums).map_err(InputError::Type)?;
    within_limits(&value, limits)?;
    Ok(value.to_json())
}

/// `Err` naming the limit when `value` (or a value inside it) exceeds one.
pub(super) fn within_limits(value: &Value, limits: &Limits) -> Result<(), InputError> {
    let too_many = |count: usize| InputError::TooManyEntries {
        count,
        max: limits.list_items,
    };
    match value {
        Value::List(items) => {
            if items.len() > limits.list_items {
                return Err(too_many(items.len()));
            }
            for (index, item) in items.iter().enumerate() {
                within_limits(item, limits).map_err(|e| InputError::Item {
                    index,
                    source: Box::new(e),
                })?;
            }
            Ok(())
        }
        Value::Map(map) => {
            if map.len() > limits.list_items {
                return Err(too_many(map.len()));
            }
            for (key, item) in map {
                within_limits(item, limits).map_err(|e| InputError::Key {
                    key: key.clone(),
                    source: Box::new(e),
                })?;
            }
            Ok(())
        }
        Value::Date(date) => crate::limits::check_date(*date).map_err(|source| InputError::Date {
            date: *date,
            source,
        }),
        Value::DateTime(at) => crate::limits::check_instant(*at)
            .map_err(|source| InputError::Instant { at: *at, source }),
        _ => Ok(()),
    }
}

/// The allowed keys of an enum (listed, or the keys of a configuration map).
pub fn enum_values(model: &Process, data: &DeploymentData, name: &str) -> Option<Vec<String>> {
    let decl = model.enums.iter().find(|e| e.name.name == name)?;
    match &decl.source {
        EnumSource::Listed(values) => Some(values.iter().map(|v| v.key.name.clone()).collect()),
        EnumSource::Config(key) => data
            .config
            .get(&key.name)
            .and_then(Json::as_object)
            .map(|m| m.keys().cloned().collect()),
    }
}

/// Is someone born on `born` under 18 on `on`? (Born on 29 February: 18 on 1 March.)
pub(super) fn under_18(born: chrono::NaiveDate, on: chrono::NaiveDate) -> bool {
    use chrono::Datelike;
    let year = born.year() + 18;
    let eighteen = chrono::NaiveDate::from_ymd_opt(year, born.month(), born.day())
        .or_else(|| chrono::NaiveDate::from_ymd_opt(year, 3, 1));
    eighteen.is_some_and(|day| on < day)
}

pub(super) struct VarScope<'a> {
    pub(super) model: &'a Process,
    pub(super) data: &'a DeploymentData,
    pub(super) vars: &'a Map<String, Json>,
    pub(super) state: Option<&'a RunState>,
    pub(super) item: Option<(&'a str, &'a Json)>,
    pub(super) now: DateTime<Utc>,
}

impl Scope for VarScope<'_> {
    fn lookup(&self, name: &str) -> Option<Value> {
        if let Some((item_name, item)) = self.item
            && item_name == name
        {
            return Some(Value::from_json_untyped(item));
        }
        if let Some(decl) = self.model.vars.iter().find(|v| v.name.name == name) {
            let json = self.vars.get(name)?;
            let enums = |n: &str| enum_values(self.model, self.data, n);
            return Value::from_json(json, &decl.ty, &enums)
                .ok()
                .or_else(|| Some(Value::from_json_untyped(json)));
        }
        // A name that is both an enum value and a node id (`approved`) is the enum value:
        // node results are only read through fields (`review.completed_by`).
        if let Some(state) = self.state.filter(|_| !self.enum_value(name)) {
            if let Some(result) = state.results.get(name) {
                return Some(Value::from_json_untyped(&Json::Object(result.clone())));
            }
            if self.model.nodes.iter().any(|n| n.id.name == name) {
                return Some(Value::Null);
            }
        }
        None
    }
    fn enum_value(&self, name: &str) -> bool {
        self.model.enums.iter().any(|e| {
            enum_values(self.model, self.data, &e.name.name)
                .is_some_and(|vals| vals.iter().any(|v| v == name))
        })
    }
    fn config(&self, key: &str) -> Option<Value> {
        self.data.config.get(key).map(Value::from_json_untyped)
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}
