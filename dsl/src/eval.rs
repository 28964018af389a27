//! Evaluation of [`model::Expr`] over runtime [`Value`]s. Pure: names, configuration and the
//! current time come from a [`Scope`] the engine supplies.

use crate::model::{BinaryOp, DurationUnit, Expr, ExprKind, UnaryOp};
use crate::value::{Decimal, Value};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use std::collections::BTreeMap;

/// What an expression can see.
pub trait Scope {
    /// A variable, a for-each item or a node result (`forward` → map with `completed_by`, ...).
    /// Enum value names are resolved by [`Scope::enum_value`].
    fn lookup(&self, name: &str) -> Option<Value>;
    /// `true` when `name` is a value of some enum of the process.
    fn enum_value(&self, name: &str) -> bool;
    /// A configuration key (`config.decision_limit`).
    fn config(&self, key: &str) -> Option<Value>;
    fn now(&self) -> DateTime<Utc>;
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
    pub span: crate::model::Span,
}

fn err<T>(expr: &Expr, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        message: message.into(),
        span: expr.span,
    })
}

/// Local time of the mainland-China calendar (no daylight saving), for `today()`.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// Evaluates `expr` in `scope`.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    eval_at(expr, scope, 1)
}

/// [`eval`] of an expression `depth` levels down. The parser builds no expression deeper than
/// [`crate::parser::MAX_DEPTH`]; a model built otherwise stops here instead of overflowing
/// the stack.
fn eval_at(expr: &Expr, scope: &dyn Scope, depth: usize) -> Result<Value, EvalError> {
    if depth > crate::parser::MAX_DEPTH {
        return err(
            expr,
            format!(
                "the expression is nested more than {} levels deep",
                crate::parser::MAX_DEPTH
            ),
        );
    }
    let down = depth + 1;
    match &expr.kind {
        ExprKind::Text(s) => Ok(Value::Text(s.clone())),
        ExprKind::Integer(i) => Ok(Value::Integer(*i)),
        ExprKind::Decimal(s) => match Decimal::parse(s) {
            Some(d) => Ok(Value::Decimal(d)),
            None => err(expr, format!("\"{s}\" is not a decimal number")),
        },
        ExprKind::Boolean(b) => Ok(Value::Boolean(*b)),
        ExprKind::Date(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Ok(Value::Date(d)),
            Err(_) => err(expr, format!("\"{s}\" is not a date (YYYY-MM-DD)")),
        },
        ExprKind::Duration { amount, unit } => Ok(Value::Duration {
            amount: *amount,
            unit: *unit,
        }),
        ExprKind::Name(n) => {
            if let Some(v) = scope.lookup(n) {
                Ok(v)
            } else if scope.enum_value(n) {
                Ok(Value::Text(n.clone()))
            } else {
                err(expr, format!("`{n}` has no value yet"))
            }
        }
        ExprKind::Config(k) => match scope.config(k) {
            Some(v) => Ok(v),
            None => err(expr, format!("configuration key `{k}` is not set")),
        },
        ExprKind::Field(base, field) => {
            let v = eval_at(base, scope, down)?;
            match v {
                Value::Map(m) => Ok(m.get(field).cloned().unwrap_or(Value::Null)),
                Value::Null => Ok(Value::Null),
                other => err(expr, format!("a {} has no field `{field}`", other.kind())),
            }
        }
        ExprKind::Index(base, key) => {
            let b = eval_at(base, scope, down)?;
            let k = eval_at(key, scope, down)?;
            match (&b, &k) {
                (Value::Map(m), _) => match m.get(&k.display()) {
                    Some(v) => Ok(v.clone()),
                    None => err(expr, format!("no entry `{}` in the map", k.display())),
                },
                (Value::List(items), Value::Integer(i)) => {
                    match usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                        Some(v) => Ok(v.clone()),
                        None => err(expr, format!("index {i} is outside the list")),
                    }
                }
                _ => err(
                    expr,
                    format!("cannot index a {} with a {}", b.kind(), k.kind()),
                ),
            }
        }
        ExprKind::List(items) => items
            .iter()
            .map(|e| eval_at(e, scope, down))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        ExprKind::Unary(op, inner) => {
            let v = eval_at(inner, scope, down)?;
            match (op, v) {
                (UnaryOp::Not, Value::Boolean(b)) => Ok(Value::Boolean(!b)),
                (UnaryOp::Neg, Value::Integer(i)) => match i.checked_neg() {
                    Some(n) => Ok(Value::Integer(n)),
                    None => err(expr, format!("-({i}) is too large")),
                },
                (UnaryOp::Neg, Value::Decimal(d)) => Ok(Value::Decimal(
                    Decimal::from_integer(0).checked_sub(d).unwrap_or(d),
                )),
                (op, v) => err(expr, format!("cannot apply {op:?} to a {}", v.kind())),
            }
        }
        ExprKind::Binary(op, l, r) => binary(expr, *op, l, r, scope, down),
        ExprKind::Call(name, args) => call(expr, name, args, scope, down),
    }
}

fn binary(
    expr: &Expr,
    op: BinaryOp,
    l: &Expr,
    r: &Expr,
    scope: &dyn Scope,
    down: usize,
) -> Result<Value, EvalError> {
    // `and` / `or` short-circuit so that a guard can protect an unset variable.
    if matches!(op, BinaryOp::And | BinaryOp::Or) {
        let lv = eval_at(l, scope, down)?;
        let Some(lb) = lv.as_bool() else {
            return err(l, format!("expected a boolean, got a {}", lv.kind()));
        };
        if (op == BinaryOp::And && !lb) || (op == BinaryOp::Or && lb) {
            return Ok(Value::Boolean(lb));
        }
        let rv = eval_at(r, scope, down)?;
        return match rv.as_bool() {
            Some(b) => Ok(Value::Boolean(b)),
            None => err(r, format!("expected a boolean, got a {}", rv.kind())),
        };
    }
    let lv = eval_at(l, scope, down)?;
    let rv = eval_at(r, scope, down)?;
    match op {
        BinaryOp::Eq => Ok(Value::Boolean(equal(&lv, &rv))),
        BinaryOp::Ne => Ok(Value::Boolean(!equal(&lv, &rv))),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let Some(ord) = compare(&lv, &rv) else {
                return err(
                    expr,
                    format!("cannot compare a {} with a {}", lv.kind(), rv.kind()),
                );
            };
            use std::cmp::Ordering::*;
            Ok(Value::Boolean(match op {
                BinaryOp::Lt => ord == Less,
                BinaryOp::Le => ord != Greater,
                BinaryOp::Gt => ord == Greater,
                _ => ord != Less,
            }))
        }
        BinaryOp::In => match &rv {
            Value::List(items) => Ok(Value::Boolean(items.iter().any(|i| equal(i, &lv)))),
            Value::Map(m) => Ok(Value::Boolean(m.contains_key(&lv.display()))),
            Value::Null => Ok(Value::Boolean(false)),
            other => err(expr, format!("`in` needs a list, got a {}", other.kind())),
        },
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
            arithmetic(expr, op, lv, rv)
        }
        BinaryOp::And | BinaryOp::Or => unreachable!("handled above"),
    }
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Integer(i) => Some(Decimal::from_integer(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (as_decimal(a), as_decimal(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (as_decimal(a), as_decimal(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn arithmetic(expr: &Expr, op: BinaryOp, lv: Value, rv: Value) -> Result<Value, EvalError> {
    let overflow = || EvalError {
        message: "the result is too large or divides by zero".into(),
        span: expr.span,
    };
    match (&lv, &rv) {
        (Value::Integer(a), Value::Integer(b)) if op != BinaryOp::Div => {
            let r = match op {
                BinaryOp::Add => a.checked_add(*b),
                BinaryOp::Sub => a.checked_sub(*b),
                _ => a.checked_mul(*b),
            };
            r.map(Value::Integer).ok_or_else(overflow)
        }
        (Value::Text(a), Value::Text(b)) if op == BinaryOp::Add => {
            Ok(Value::Text(format!("{a}{b}")))
        }
        (Value::List(a), Value::List(b)) if op == BinaryOp::Add => {
            Ok(Value::List(a.iter().chain(b).cloned().collect()))
        }
        (
            Value::Date(d),
            Value::Duration {
                amount,
                unit: DurationUnit::Days,
            },
        ) => {
            let days = chrono::Days::new(amount.unsigned_abs());
            let r = match (op, *amount >= 0) {
                (BinaryOp::Add, true) | (BinaryOp::Sub, false) => d.checked_add_days(days),
                (BinaryOp::Sub, true) | (BinaryOp::Add, false) => d.checked_sub_days(days),
                _ => None,
            };
            r.map(Value::Date).ok_or_else(overflow)
        }
        (Value::Date(a), Value::Date(b)) if op == BinaryOp::Sub => Ok(Value::Duration {
            amount: (*a - *b).num_days(),
            unit: DurationUnit::Days,
        }),
        _ => match (as_decimal(&lv), as_decimal(&rv)) {
            (Some(a), Some(b)) => {
                let r = match op {
                    BinaryOp::Add => a.checked_add(b),
                    BinaryOp::Sub => a.checked_sub(b),
                    BinaryOp::Mul => a.checked_mul(b),
                    _ => a.checked_div(b),
                };
                r.map(Value::Decimal).ok_or_else(overflow)
            }
            _ => err(
                expr,
                format!("cannot apply {op:?} to a {} and a {}", lv.kind(), rv.kind()),
            ),
        },
    }
}

fn call(
    expr: &Expr,
    name: &str,
    args: &[Expr],
    scope: &dyn Scope,
    down: usize,
) -> Result<Value, EvalError> {
    let values = args
        .iter()
        .map(|a| eval_at(a, scope, down))
        .collect::<Result<Vec<_>, _>>()?;
    match (name, values.as_slice()) {
        ("now", []) => Ok(Value::DateTime(scope.now())),
        ("today", []) => Ok(Value::Date(
            scope.now().with_timezone(&china()).date_naive(),
        )),
        ("len", [Value::List(items)]) => Ok(Value::Integer(items.len() as i64)),
        ("len", [Value::Text(s)]) => Ok(Value::Integer(s.chars().count() as i64)),
        ("len", [Value::Map(m)]) => Ok(Value::Integer(m.len() as i64)),
        ("len" | "is_empty", [Value::Null]) => Ok(if name == "len" {
            Value::Integer(0)
        } else {
            Value::Boolean(true)
        }),
        ("is_empty", [Value::List(items)]) => Ok(Value::Boolean(items.is_empty())),
        ("is_empty", [Value::Text(s)]) => Ok(Value::Boolean(s.is_empty())),
        ("is_empty", [Value::Map(m)]) => Ok(Value::Boolean(m.is_empty())),
        ("outcomes", [Value::Map(m)]) => Ok(m
            .get("outcomes")
            .cloned()
            .unwrap_or_else(|| Value::List(Vec::new()))),
        ("outcomes", [Value::Null]) => Ok(Value::List(Vec::new())),
        _ => err(
            expr,
            format!(
                "`{name}` cannot be called with ({})",
                values
                    .iter()
                    .map(Value::kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// A scope over plain maps, for tests and simple callers.
#[derive(Debug, Default, Clone)]
pub struct MapScope {
    pub values: BTreeMap<String, Value>,
    pub enum_values: Vec<String>,
    pub config: BTreeMap<String, Value>,
    pub now: DateTime<Utc>,
}

impl Scope for MapScope {
    fn lookup(&self, name: &str) -> Option<Value> {
        self.values.get(name).cloned()
    }
    fn enum_value(&self, name: &str) -> bool {
        self.enum_values.iter().any(|v| v == name)
    }
    fn config(&self, key: &str) -> Option<Value> {
        self.config.get(key).cloned()
    }
    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Span;

    fn e(kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: Span::default(),
        }
    }
    fn name(n: &str) -> Expr {
        e(ExprKind::Name(n.into()))
    }
    fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
        e(ExprKind::Binary(op, Box::new(l), Box::new(r)))
    }

    fn scope() -> MapScope {
        let mut s = MapScope {
            now: "2026-09-30T20:00:00Z".parse().unwrap(),
            ..Default::default()
        };
        s.values.insert("size".into(), Value::Integer(3));
        s.values.insert(
            "amount".into(),
            Value::Decimal(Decimal::parse("1200.50").unwrap()),
        );
        s.values.insert("urgent".into(), Value::Boolean(false));
        s.values.insert(
            "kinds".into(),
            Value::List(vec![
                Value::Text("medical".into()),
                Value::Text("housing".into()),
            ]),
        );
        s.enum_values = vec!["medical".into(), "education".into()];
        let mut limits = BTreeMap::new();
        limits.insert("medical".into(), Value::Text("15 workdays".into()));
        s.config.insert("limits".into(), Value::Map(limits));
        s
    }

    #[test]
    fn arithmetic_comparison_and_membership() {
        let s = scope();
        let v = eval(&bin(BinaryOp::Mul, name("amount"), name("size")), &s).unwrap();
        assert_eq!(v.display(), "3601.5");
        let c = eval(
            &bin(BinaryOp::Gt, name("size"), e(ExprKind::Integer(2))),
            &s,
        )
        .unwrap();
        assert_eq!(c, Value::Boolean(true));
        let m = eval(&bin(BinaryOp::In, name("medical"), name("kinds")), &s).unwrap();
        assert_eq!(m, Value::Boolean(true));
        let n = eval(&bin(BinaryOp::In, name("education"), name("kinds")), &s).unwrap();
        assert_eq!(n, Value::Boolean(false));
    }

    #[test]
    fn short_circuit_protects_unset_names() {
        let s = scope();
        let guarded = bin(BinaryOp::And, name("urgent"), name("missing"));
        assert_eq!(eval(&guarded, &s).unwrap(), Value::Boolean(false));
        let unguarded = bin(BinaryOp::Or, name("urgent"), name("missing"));
        assert_eq!(
            eval(&unguarded, &s).unwrap_err().message,
            "`missing` has no value yet"
        );
    }

    #[test]
    fn config_lookup_and_today_in_china() {
        let s = scope();
        let idx = e(ExprKind::Index(
            Box::new(e(ExprKind::Config("limits".into()))),
            Box::new(name("medical")),
        ));
        let v = eval(&idx, &s).unwrap();
        assert_eq!(v.as_duration(), Some((15, DurationUnit::WorkDays)));
        let today = eval(&e(ExprKind::Call("today".into(), vec![])), &s).unwrap();
        assert_eq!(today.display(), "2026-10-01");
        let bad = eval(&e(ExprKind::Call("len".into(), vec![name("size")])), &s).unwrap_err();
        assert_eq!(bad.message, "`len` cannot be called with (integer)");
    }
}
