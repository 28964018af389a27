//! Runtime values of process variables and expressions, and their JSON form.
//!
//! Variables are stored as JSON (the instance row, the API); [`Value::from_json`] checks a JSON
//! value against the declared [`Type`] and [`Value::to_json`] gives it back. Decimals are exact
//! fixed-point numbers (four places) so that money is never rounded by floating point.

use crate::model::{DurationUnit, Type};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt;

/// Scale of [`Decimal`]: four decimal places.
const DECIMAL_SCALE: i128 = 10_000;

/// An exact decimal number with four places (`1200.50`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(i128);

impl Decimal {
    /// Parses `"1200.50"`, `"-3"`, `"0.1234"`. More than four places is refused.
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if frac.len() > 4 || whole.len() > 24 {
            return None;
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut frac_val: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..4 {
            frac_val *= 10;
        }
        let v = whole * DECIMAL_SCALE + frac_val;
        Some(Decimal(if neg { -v } else { v }))
    }

    pub fn from_integer(i: i64) -> Decimal {
        Decimal(i as i128 * DECIMAL_SCALE)
    }

    /// From a JSON float, rounded to four places.
    pub fn from_f64(f: f64) -> Option<Decimal> {
        if !f.is_finite() || f.abs() > 1e20 {
            return None;
        }
        Some(Decimal((f * DECIMAL_SCALE as f64).round() as i128))
    }

    pub fn checked_add(self, o: Decimal) -> Option<Decimal> {
        self.0.checked_add(o.0).map(Decimal)
    }
    pub fn checked_sub(self, o: Decimal) -> Option<Decimal> {
        self.0.checked_sub(o.0).map(Decimal)
    }
    pub fn checked_mul(self, o: Decimal) -> Option<Decimal> {
        self.0.checked_mul(o.0).map(|v| Decimal(v / DECIMAL_SCALE))
    }
    pub fn checked_div(self, o: Decimal) -> Option<Decimal> {
        if o.0 == 0 {
            return None;
        }
        self.0.checked_mul(DECIMAL_SCALE).map(|v| Decimal(v / o.0))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / DECIMAL_SCALE as u128;
        let frac = abs % DECIMAL_SCALE as u128;
        if frac == 0 {
            return write!(f, "{sign}{whole}");
        }
        let frac = format!("{frac:04}");
        write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unset optional variable.
    Null,
    Text(String),
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Duration {
        amount: i64,
        unit: DurationUnit,
    },
    List(Vec<Value>),
    /// Configuration maps and node results (`forward.completed_by`).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Text(_) => "text",
            Value::Integer(_) => "integer",
            Value::Decimal(_) => "decimal",
            Value::Boolean(_) => "boolean",
            Value::Date(_) => "date",
            Value::DateTime(_) => "datetime",
            Value::Duration { .. } => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Checks `json` against `ty` and converts it. The error says what was expected.
    /// `enum_values` gives the allowed keys of an enum type (`None`: not checked here).
    pub fn from_json(
        json: &Json,
        ty: &Type,
        enum_values: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<Value, String> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        let bad = || format!("expected {}, got {}", type_name(ty), json_kind(json));
        match ty {
            Type::Text => json
                .as_str()
                .map(|s| Value::Text(s.to_string()))
                .ok_or_else(bad),
            Type::Integer => match json {
                Json::Number(n) => n.as_i64().map(Value::Integer).ok_or_else(bad),
                _ => Err(bad()),
            },
            Type::Decimal => match json {
                Json::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        Ok(Value::Decimal(Decimal::from_integer(i)))
                    } else {
                        n.as_f64()
                            .and_then(Decimal::from_f64)
                            .map(Value::Decimal)
                            .ok_or_else(bad)
                    }
                }
                Json::String(s) => Decimal::parse(s).map(Value::Decimal).ok_or_else(|| {
                    format!("expected a decimal number such as \"1200.50\", got \"{s}\"")
                }),
                _ => Err(bad()),
            },
            Type::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(bad),
            Type::Date => {
                let s = json.as_str().ok_or_else(bad)?;
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(Value::Date)
                    .map_err(|_| format!("expected a date as YYYY-MM-DD, got \"{s}\""))
            }
            Type::DateTime => {
                let s = json.as_str().ok_or_else(bad)?;
                DateTime::parse_from_rfc3339(s)
                    .map(|d| Value::DateTime(d.with_timezone(&Utc)))
                    .map_err(|_| {
                        format!("expected a time such as 2026-09-28T09:00:00+08:00, got \"{s}\"")
                    })
            }
            Type::Duration => {
                let s = json.as_str().ok_or_else(bad)?;
                crate::duration::parse(s).map(|d| Value::Duration {
                    amount: d.amount,
                    unit: d.unit,
                })
            }
            Type::Enum(name) => {
                let s = json.as_str().ok_or_else(bad)?;
                if let Some(allowed) = enum_values(name)
                    && !allowed.iter().any(|a| a == s)
                {
                    return Err(format!(
                        "\"{s}\" is not a value of {name}; expected one of: {}",
                        allowed.join(", ")
                    ));
                }
                Ok(Value::Text(s.to_string()))
            }
            Type::List(inner) => {
                let items = json.as_array().ok_or_else(bad)?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        Value::from_json(item, inner, enum_values)
                            .map_err(|e| format!("item {i}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::List)
            }
            Type::Map(_, v) => {
                let obj = json.as_object().ok_or_else(bad)?;
                obj.iter()
                    .map(|(k, item)| {
                        Value::from_json(item, v, enum_values)
                            .map(|val| (k.clone(), val))
                            .map_err(|e| format!("key {k}: {e}"))
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
                    .map(Value::Map)
            }
        }
    }

    /// Converts JSON without a declared type (configuration values, message payloads):
    /// whole numbers become integers, other numbers decimals, strings stay text.
    pub fn from_json_untyped(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Integer(i),
                None => n
                    .as_f64()
                    .and_then(Decimal::from_f64)
                    .map(Value::Decimal)
                    .unwrap_or(Value::Null),
            },
            Json::String(s) => Value::Text(s.clone()),
            Json::Array(a) => Value::List(a.iter().map(Value::from_json_untyped).collect()),
            Json::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json_untyped(v)))
                    .collect(),
            ),
        }
    }

    /// The JSON form stored and shown: decimals as exact strings, dates `YYYY-MM-DD`, times
    /// RFC 3339, durations `"3 workdays"`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Integer(i) => Json::from(*i),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::Boolean(b) => Json::Bool(*b),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(t) => Json::String(t.to_rfc3339()),
            Value::Duration { amount, unit } => {
                Json::String(format!("{amount} {}", unit_name(*unit)))
            }
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// The value as a duration: a duration value or text such as `"15 workdays"` (config).
    pub fn as_duration(&self) -> Option<(i64, DurationUnit)> {
        match self {
            Value::Duration { amount, unit } => Some((*amount, *unit)),
            Value::Text(s) => parse_duration(s),
            _ => None,
        }
    }

    /// The value as a duration, or why not: a text is read by [`crate::duration::parse`] (whose
    /// message says what to write), and a negative duration (from arithmetic) is refused.
    pub fn to_duration(&self) -> Result<(i64, DurationUnit), String> {
        let (amount, unit) = match self {
            Value::Duration { amount, unit } => (*amount, *unit),
            Value::Text(s) => {
                let d = crate::duration::parse(s)?;
                (d.amount, d.unit)
            }
            other => return Err(format!("expected a duration, got a {}", other.kind())),
        };
        if amount < 0 {
            return Err(format!(
                "a duration cannot be negative: got {amount} {}",
                unit_name(unit)
            ));
        }
        Ok((amount, unit))
    }

    /// Truthiness for conditions: only booleans are conditions.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Plain text of a value for messages, queue keys and templates.
    pub fn display(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Null => String::new(),
            other => match other.to_json() {
                Json::String(s) => s,
                j => j.to_string(),
            },
        }
    }
}

/// Reads duration text (`"3 workdays"`, `"30个工作日"`, ...) with [`crate::duration::parse`],
/// the one reader of durations: `None` for anything it refuses.
pub fn parse_duration(text: &str) -> Option<(i64, DurationUnit)> {
    crate::duration::parse(text)
        .ok()
        .map(|d| (d.amount, d.unit))
}

/// The unit as written in process files (`workdays`).
pub fn unit_name(unit: DurationUnit) -> &'static str {
    match unit {
        DurationUnit::WorkDays => "workdays",
        DurationUnit::WorkHours => "workhours",
        DurationUnit::Days => "days",
        DurationUnit::Hours => "hours",
        DurationUnit::Minutes => "minutes",
    }
}

/// A type as written in process files, for messages.
pub fn type_name(ty: &Type) -> String {
    match ty {
        Type::Text => "text".into(),
        Type::Integer => "integer".into(),
        Type::Decimal => "decimal".into(),
        Type::Boolean => "boolean".into(),
        Type::Date => "date".into(),
        Type::DateTime => "datetime".into(),
        Type::Duration => "duration".into(),
        Type::Enum(n) => n.clone(),
        Type::List(t) => format!("list<{}>", type_name(t)),
        Type::Map(k, v) => format!("map<{}, {}>", type_name(k), type_name(v)),
    }
}

fn json_kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a decimal number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_enums(_: &str) -> Option<Vec<String>> {
        None
    }

    #[test]
    fn decimals_are_exact() {
        let a = Decimal::parse("1200.50").unwrap();
        let b = Decimal::parse("0.25").unwrap();
        assert_eq!(a.checked_add(b).unwrap().to_string(), "1200.75");
        assert_eq!(
            a.checked_mul(Decimal::from_integer(3)).unwrap().to_string(),
            "3601.5"
        );
        assert_eq!(Decimal::parse("-0.5").unwrap().to_string(), "-0.5");
        assert_eq!(Decimal::parse("1.23456"), None);
        assert_eq!(Decimal::parse("abc"), None);
        assert_eq!(a.checked_div(Decimal::from_integer(0)), None);
    }

    #[test]
    fn typed_json_round_trips_and_explains_mismatches() {
        let v = Value::from_json(&json!("2026-10-01"), &Type::Date, &no_enums).unwrap();
        assert_eq!(v.to_json(), json!("2026-10-01"));
        let err = Value::from_json(&json!("ten"), &Type::Integer, &no_enums).unwrap_err();
        assert_eq!(err, "expected integer, got text");
        let d = Value::from_json(&json!("15 workdays"), &Type::Duration, &no_enums).unwrap();
        assert_eq!(d.to_json(), json!("15 workdays"));
        let e = Value::from_json(&json!("x"), &Type::Enum("cat".into()), &|_| {
            Some(vec!["a".into(), "b".into()])
        })
        .unwrap_err();
        assert!(e.contains("expected one of: a, b"), "{e}");
        let l = Value::from_json(
            &json!([1, "x"]),
            &Type::List(Box::new(Type::Integer)),
            &no_enums,
        )
        .unwrap_err();
        assert_eq!(l, "item 1: expected integer, got text");
    }
}
