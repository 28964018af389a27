//! Type checking of every expression: conditions, assignments, defaults, durations, queue
//! keys, inputs of child processes, for-each lists.

use super::codes::*;
use super::{Cx, DiagExt, actions, deadlines, help_or};
use crate::model::{
    Action, Assignee, BinaryOp, ClockOp, EscalationWhen, Expr, ExprKind, NodeKind, NotifyTarget,
    QueueRef, Type, UnaryOp,
};
use crate::parser::{MAX_DEPTH, TOO_DEEP};
use std::fmt;

/// The type of an expression as far as the checker knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Duration,
    Enum(String),
    /// A bare enum value whose enum is decided by the other side (`category == medical`).
    EnumValue(String),
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// Already reported, or not knowable (configuration not loaded): accepted everywhere.
    Unknown,
}

impl From<&Type> for Ty {
    fn from(ty: &Type) -> Self {
        match ty {
            Type::Text => Ty::Text,
            Type::Integer => Ty::Integer,
            Type::Decimal => Ty::Decimal,
            Type::Boolean => Ty::Boolean,
            Type::Date => Ty::Date,
            Type::DateTime => Ty::DateTime,
            Type::Duration => Ty::Duration,
            Type::Enum(name) => Ty::Enum(name.clone()),
            Type::List(inner) => Ty::List(Box::new(Ty::from(inner.as_ref()))),
            Type::Map(k, v) => Ty::Map(
                Box::new(Ty::from(k.as_ref())),
                Box::new(Ty::from(v.as_ref())),
            ),
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Text => write!(f, "text"),
            Ty::Integer => write!(f, "integer"),
            Ty::Decimal => write!(f, "decimal"),
            Ty::Boolean => write!(f, "boolean"),
            Ty::Date => write!(f, "date"),
            Ty::DateTime => write!(f, "datetime"),
            Ty::Duration => write!(f, "duration"),
            Ty::Enum(name) => write!(f, "{name}"),
            Ty::EnumValue(value) => write!(f, "enum value `{value}`"),
            Ty::List(inner) => write!(f, "list<{inner}>"),
            Ty::Map(k, v) => write!(f, "map<{k}, {v}>"),
            Ty::Unknown => write!(f, "unknown"),
        }
    }
}

fn numeric(ty: &Ty) -> bool {
    matches!(ty, Ty::Integer | Ty::Decimal | Ty::Unknown)
}

/// The built-in functions: name, arity, what they take.
pub(crate) const BUILTINS: &[(&str, &str)] = &[
    ("len", "len(list or text) → integer"),
    ("is_empty", "is_empty(list or text) → boolean"),
    ("today", "today() → date"),
    ("now", "now() → datetime"),
    ("outcomes", "outcomes(task) → list<text>"),
];

/// Names in scope besides variables and enum values: the item of a for-each task.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    pub item: Option<(String, Ty)>,
}

pub(crate) struct Typer<'c, 'a> {
    pub cx: &'c mut Cx<'a>,
    /// Levels of the expression being typed, bounded by [`MAX_DEPTH`] (the parser builds no
    /// deeper one; a model built otherwise gets `YM0008` instead of overflowing the stack).
    depth: usize,
}

impl Typer<'_, '_> {
    /// Can a value of type `actual` be stored where `expected` is declared?
    pub fn assignable(&self, expected: &Ty, actual: &Ty) -> bool {
        match (expected, actual) {
            (Ty::Unknown, _) | (_, Ty::Unknown) => true,
            (Ty::Decimal, Ty::Integer) => true,
            (Ty::Enum(e), Ty::EnumValue(v)) => self.enum_has(e, v),
            (Ty::List(a), Ty::List(b)) => self.assignable(a, b),
            (Ty::Map(ka, va), Ty::Map(kb, vb)) => {
                self.assignable(ka, kb) && self.assignable(va, vb)
            }
            (a, b) => a == b,
        }
    }

    fn comparable(&self, a: &Ty, b: &Ty) -> bool {
        (numeric(a) && numeric(b))
            || self.assignable(a, b)
            || self.assignable(b, a)
            || matches!((a, b), (Ty::EnumValue(_), Ty::EnumValue(_)))
    }

    fn enum_has(&self, enum_name: &str, value: &str) -> bool {
        match self.cx.enums.get(enum_name) {
            Some(Some(values)) => values.iter().any(|v| v == value),
            // Values come from a configuration that is not loaded, or the enum is unknown
            // (reported elsewhere).
            _ => true,
        }
    }

    /// Enums that have `value` among their values.
    fn enums_with(&self, value: &str) -> Vec<&str> {
        let mut found: Vec<&str> = self
            .cx
            .enums
            .iter()
            .filter(|(_, values)| {
                values
                    .as_ref()
                    .is_some_and(|vs| vs.iter().any(|v| v == value))
            })
            .map(|(name, _)| *name)
            .collect();
        found.sort_unstable();
        found
    }

    pub fn expr(&mut self, expr: &Expr, scope: &Scope) -> Ty {
        if self.depth >= MAX_DEPTH {
            if std::mem::replace(&mut self.cx.too_deep, true) {
                return Ty::Unknown;
            }
            self.cx
                .error(
                    TOO_DEEP,
                    expr.span,
                    format!("this expression is nested more than {MAX_DEPTH} levels deep"),
                )
                .label(format!("level {} starts here", MAX_DEPTH + 1));
            return Ty::Unknown;
        }
        self.depth += 1;
        let ty = self.typed(expr, scope);
        self.depth -= 1;
        ty
    }

    fn typed(&mut self, expr: &Expr, scope: &Scope) -> Ty {
        match &expr.kind {
            ExprKind::Text(_) => Ty::Text,
            ExprKind::Integer(_) => Ty::Integer,
            ExprKind::Decimal(_) => Ty::Decimal,
            ExprKind::Boolean(_) => Ty::Boolean,
            ExprKind::Date(text) => self.date_literal(text, expr),
            ExprKind::Duration { amount, .. } => self.duration_literal(*amount, expr),
            ExprKind::Name(name) => self.name(name, expr, scope),
            ExprKind::Config(key) => self.config_key(key, expr),
            ExprKind::Field(base, field) => self.field(base, field, expr),
            ExprKind::Index(base, key) => self.index(base, key, scope),
            ExprKind::List(items) => self.list(items, scope),
            ExprKind::Unary(op, inner) => self.unary(*op, inner, scope),
            ExprKind::Binary(op, left, right) => self.binary(*op, left, right, expr, scope),
            ExprKind::Call(name, args) => self.call(name, args, expr, scope),
        }
    }

    fn date_literal(&mut self, text: &str, expr: &Expr) -> Ty {
        if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() {
            self.cx
                .error(BAD_LITERAL, expr.span, format!("`{text}` is not a date"))
                .label("not a calendar date")
                .help("write dates as `date \"YYYY-MM-DD\"`, e.g. `date \"2026-10-01\"`");
        }
        Ty::Date
    }

    fn duration_literal(&mut self, amount: i64, expr: &Expr) -> Ty {
        if amount < 0 {
            self.cx
                .error(BAD_LITERAL, expr.span, "a duration cannot be negative")
                .label("negative duration")
                .help("write a positive amount, e.g. `3 workdays`");
        }
        Ty::Duration
    }

    /// `config.key`: the declared type of the key.
    fn config_key(&mut self, key: &str, expr: &Expr) -> Ty {
        if let Some(decl) = self.cx.config_keys.get(key) {
            return Ty::from(&decl.ty);
        }
        if self.cx.process.config.is_none() {
            self.cx
                .error(
                    NO_CONFIG,
                    expr.span,
                    format!("`config.{key}` is used but the process declares no configuration"),
                )
                .label("no `config` block")
                .help(format!(
                    "add `config \"<file>.yaml\" {{ {key}: <type> }}` to the header"
                ));
        } else {
            let help = help_or(
                key,
                self.cx.config_keys.keys().copied(),
                format!("declare `{key}: <type>` in the `config` block"),
            );
            self.cx
                .error(
                    UNDECLARED_CONFIG,
                    expr.span,
                    format!("configuration key `{key}` is not declared"),
                )
                .label("not in the `config` block")
                .help(help);
        }
        Ty::Unknown
    }

    /// `base[key]` on a map or a list.
    fn index(&mut self, base: &Expr, key: &Expr, scope: &Scope) -> Ty {
        let base_ty = self.expr(base, scope);
        let key_ty = self.expr(key, scope);
        match base_ty {
            Ty::Map(k, v) => {
                if !self.assignable(&k, &key_ty) {
                    self.cx
                        .error(
                            BAD_INDEX,
                            key.span,
                            format!("this map is keyed by {k}, not {key_ty}"),
                        )
                        .label(format!("expected {k}"))
                        .help(format!("index the map with a value of type {k}"));
                }
                *v
            }
            Ty::List(item) => {
                if !self.assignable(&Ty::Integer, &key_ty) {
                    self.cx
                        .error(
                            BAD_INDEX,
                            key.span,
                            format!("a list is indexed by an integer, not {key_ty}"),
                        )
                        .label("expected integer")
                        .help("use `x in list` to test membership");
                }
                *item
            }
            Ty::Unknown => Ty::Unknown,
            other => {
                self.cx
                    .error(BAD_INDEX, base.span, format!("{other} cannot be indexed"))
                    .label("not a map or list")
                    .help("only maps (from configuration) and lists take `[...]`");
                Ty::Unknown
            }
        }
    }

    /// `[a, b, ...]`: a list of the first item's type.
    fn list(&mut self, items: &[Expr], scope: &Scope) -> Ty {
        let mut item_ty = Ty::Unknown;
        for item in items {
            let ty = self.expr(item, scope);
            if item_ty == Ty::Unknown {
                item_ty = ty;
            } else if let (Ty::EnumValue(_), Ty::EnumValue(_)) = (&item_ty, &ty) {
                // Values of one enum; which one is decided by the other operand.
            } else if !self.comparable(&item_ty, &ty) {
                self.cx
                    .error(
                        TYPE_MISMATCH,
                        item.span,
                        format!(
                            "list items must have one type: this is {ty}, the first is {item_ty}"
                        ),
                    )
                    .label(format!("expected {item_ty}"))
                    .help("make every item of the list the same type");
            }
        }
        Ty::List(Box::new(item_ty))
    }

    fn unary(&mut self, op: UnaryOp, inner: &Expr, scope: &Scope) -> Ty {
        let ty = self.expr(inner, scope);
        match op {
            UnaryOp::Not => {
                self.expect_boolean(inner, &ty, "`not`");
                Ty::Boolean
            }
            UnaryOp::Neg => {
                if !(numeric(&ty) || ty == Ty::Duration) {
                    self.cx
                        .error(BAD_ARITHMETIC, inner.span, format!("cannot negate {ty}"))
                        .label("not a number")
                        .help("`-` applies to numbers and durations");
                    return Ty::Unknown;
                }
                ty
            }
        }
    }

    fn name(&mut self, name: &str, expr: &Expr, scope: &Scope) -> Ty {
        if let Some((item, ty)) = &scope.item
            && item == name
        {
            return ty.clone();
        }
        if let Some(var) = self.cx.vars.get(name) {
            return Ty::from(&var.ty);
        }
        let enums = self.enums_with(name);
        match enums.as_slice() {
            [one] => return Ty::Enum(one.to_string()),
            [_, _, ..] => return Ty::EnumValue(name.to_string()),
            [] => {}
        }
        if self.cx.enums.values().any(Option::is_none) {
            // Could be a value of an enum from a configuration that is not loaded.
            return Ty::EnumValue(name.to_string());
        }
        let mut candidates: Vec<String> = self.cx.vars.keys().map(|s| s.to_string()).collect();
        for values in self.cx.enums.values().flatten() {
            candidates.extend(values.iter().cloned());
        }
        if let Some((item, _)) = &scope.item {
            candidates.push(item.clone());
        }
        let is_node = self.cx.nodes.contains_key(name);
        let help = if is_node {
            format!(
                "`{name}` is a node: use `{name}.completed_by`, `{name}.outcome` or `{name}.result`"
            )
        } else {
            help_or(
                name,
                candidates.iter().map(String::as_str),
                format!("declare `var {name}: <type>` or add `{name}` to an enum"),
            )
        };
        self.cx
            .error(UNKNOWN_NAME, expr.span, format!("unknown name `{name}`"))
            .label("not a variable or enum value")
            .help(help);
        Ty::Unknown
    }

    fn field(&mut self, base: &Expr, field: &str, expr: &Expr) -> Ty {
        let ExprKind::Name(node_id) = &base.kind else {
            self.cx
                .error(BAD_FIELD, expr.span, format!("no field `{field}` here"))
                .label("fields belong to nodes")
                .help("write `<node id>.<field>`, e.g. `intake.completed_by`");
            return Ty::Unknown;
        };
        let Some(node) = self.cx.node(node_id) else {
            let help = if self.cx.vars.contains_key(node_id.as_str()) {
                format!("`{node_id}` is a variable; variables have no fields")
            } else {
                help_or(
                    node_id,
                    self.cx.nodes.keys().copied(),
                    "write `<node id>.<field>` with the id of a task or call",
                )
            };
            self.cx
                .error(BAD_FIELD, base.span, format!("`{node_id}` is not a node"))
                .label("no node of this name")
                .help(help);
            return Ty::Unknown;
        };
        match (&node.kind, field) {
            (NodeKind::Task(_), "completed_by" | "outcome") => Ty::Text,
            (NodeKind::Task(_), "completed_at") => Ty::DateTime,
            (NodeKind::StartProcess { wait: true, .. }, "result") => Ty::Text,
            (NodeKind::StartProcess { wait: false, .. }, "result") => {
                self.cx
                    .error(
                        BAD_FIELD,
                        expr.span,
                        format!(
                            "`{node_id}` does not wait for the child process, so it has no result"
                        ),
                    )
                    .label("the result is unknown here")
                    .help("make the call wait for the child, or do not read its result");
                Ty::Unknown
            }
            (kind, _) => {
                let fields = match kind {
                    NodeKind::Task(_) => "`completed_by`, `completed_at`, `outcome`",
                    NodeKind::StartProcess { .. } => "`result`",
                    _ => "none",
                };
                self.cx
                    .error(
                        BAD_FIELD,
                        expr.span,
                        format!("node `{node_id}` has no field `{field}`"),
                    )
                    .label("no such field")
                    .help(format!("fields of `{node_id}`: {fields}"));
                Ty::Unknown
            }
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        expr: &Expr,
        scope: &Scope,
    ) -> Ty {
        let l = self.expr(left, scope);
        let r = self.expr(right, scope);
        let sym = op_symbol(op);
        match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_boolean(left, &l, &format!("`{sym}`"));
                self.expect_boolean(right, &r, &format!("`{sym}`"));
                Ty::Boolean
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if !self.comparable(&l, &r) {
                    self.cx
                        .error(
                            BAD_COMPARISON,
                            expr.span,
                            format!("cannot compare {l} with {r}"),
                        )
                        .label("unlike types")
                        .help("compare values of the same type");
                }
                Ty::Boolean
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                self.order(&l, &r, sym, expr)
            }
            BinaryOp::In => self.membership(&l, &r, right, expr),
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
                self.arithmetic(op, &l, &r, expr)
            }
        }
    }

    /// `<`, `<=`, `>`, `>=`: two numbers, two dates, two times or two durations.
    fn order(&mut self, l: &Ty, r: &Ty, sym: &str, expr: &Expr) -> Ty {
        let ordered = (numeric(l) && numeric(r))
            || (l == r && matches!(l, Ty::Date | Ty::DateTime | Ty::Duration))
            || *l == Ty::Unknown
            || *r == Ty::Unknown;
        if !ordered {
            self.cx
                .error(
                    BAD_COMPARISON,
                    expr.span,
                    format!("cannot order {l} and {r} with `{sym}`"),
                )
                .label("unlike or unordered types")
                .help("`<`, `<=`, `>`, `>=` compare two numbers, two dates or two durations");
        }
        Ty::Boolean
    }

    /// `x in list`.
    fn membership(&mut self, l: &Ty, r: &Ty, right: &Expr, expr: &Expr) -> Ty {
        match r {
            Ty::List(item) => {
                if !self.comparable(item, l) {
                    self.cx
                        .error(
                            BAD_IN,
                            expr.span,
                            format!("{l} cannot be in a list<{item}>"),
                        )
                        .label("element type differs")
                        .help(format!("the left side must be a {item}"));
                }
            }
            Ty::Unknown => {}
            other => {
                self.cx
                    .error(
                        BAD_IN,
                        right.span,
                        format!("`in` needs a list, not {other}"),
                    )
                    .label("not a list")
                    .help("write `x in [a, b]` or `x in <list variable>`");
            }
        }
        Ty::Boolean
    }

    /// `+`, `-`, `*`, `/` on numbers, dates, times and durations.
    fn arithmetic(&mut self, op: BinaryOp, l: &Ty, r: &Ty, expr: &Expr) -> Ty {
        use Ty::*;
        let result = match (op, l, r) {
            (_, Unknown, _) | (_, _, Unknown) => Some(Unknown),
            (_, Integer, Integer) => Some(Integer),
            (_, Integer | Decimal, Integer | Decimal) => Some(Decimal),
            (BinaryOp::Add, Date, Integer | Duration) => Some(Date),
            (BinaryOp::Add, Integer | Duration, Date) => Some(Date),
            (BinaryOp::Sub, Date, Integer | Duration) => Some(Date),
            (BinaryOp::Sub, Date, Date) => Some(Integer),
            (BinaryOp::Add | BinaryOp::Sub, DateTime, Duration) => Some(DateTime),
            (BinaryOp::Sub, DateTime, DateTime) => Some(Duration),
            (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Some(Duration),
            (BinaryOp::Mul, Duration, Integer) | (BinaryOp::Mul, Integer, Duration) => {
                Some(Duration)
            }
            _ => None,
        };
        result.unwrap_or_else(|| {
            let help = if *l == Text || *r == Text {
                "text takes no arithmetic; compare it or put it in a message".to_string()
            } else {
                "arithmetic works on numbers; dates take `date + integer`, `date - date` (days) and durations".to_string()
            };
            let sym = op_symbol(op);
            self.cx
                .error(BAD_ARITHMETIC, expr.span, format!("cannot compute {l} {sym} {r}"))
                .label("unsupported operands")
                .help(help);
            Unknown
        })
    }

    fn call(&mut self, name: &str, args: &[Expr], expr: &Expr, scope: &Scope) -> Ty {
        let Some((_, signature)) = BUILTINS.iter().find(|(n, _)| *n == name) else {
            let names = BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>();
            let help = help_or(
                name,
                names.iter().copied(),
                format!("built-ins: {}", names.join(", ")),
            );
            self.cx
                .error(BAD_CALL, expr.span, format!("unknown function `{name}`"))
                .label("not a built-in")
                .help(help);
            for arg in args {
                self.expr(arg, scope);
            }
            return Ty::Unknown;
        };
        let arity = if matches!(name, "today" | "now") {
            0
        } else {
            1
        };
        if args.len() != arity {
            self.cx
                .error(
                    BAD_CALL,
                    expr.span,
                    format!(
                        "`{name}` takes {arity} argument{}, not {}",
                        if arity == 1 { "" } else { "s" },
                        args.len()
                    ),
                )
                .label("wrong number of arguments")
                .help(format!("call it as {signature}"));
            return Ty::Unknown;
        }
        match name {
            "today" => Ty::Date,
            "now" => Ty::DateTime,
            "outcomes" => {
                let is_task = matches!(&args[0].kind, ExprKind::Name(n)
                    if matches!(self.cx.node(n).map(|n| &n.kind), Some(NodeKind::Task(_))));
                if !is_task {
                    self.cx
                        .error(BAD_CALL, args[0].span, "`outcomes` takes the id of a task")
                        .label("not a task id")
                        .help(format!("call it as {signature}"));
                }
                Ty::List(Box::new(Ty::Text))
            }
            _ => {
                let ty = self.expr(&args[0], scope);
                if !matches!(ty, Ty::List(_) | Ty::Text | Ty::Unknown) {
                    self.cx
                        .error(
                            BAD_CALL,
                            args[0].span,
                            format!("`{name}` takes a list or text, not {ty}"),
                        )
                        .label("not a list or text")
                        .help(format!("call it as {signature}"));
                }
                if name == "len" {
                    Ty::Integer
                } else {
                    Ty::Boolean
                }
            }
        }
    }

    fn expect_boolean(&mut self, expr: &Expr, ty: &Ty, context: &str) {
        if !matches!(ty, Ty::Boolean | Ty::Unknown) {
            self.cx
                .error(
                    NOT_BOOLEAN,
                    expr.span,
                    format!("{context} needs a boolean, this is {ty}"),
                )
                .label("not true/false")
                .help("compare it, e.g. `x == value`, or test a boolean variable");
        }
    }

    /// Checks that `expr` is a condition.
    pub fn condition(&mut self, expr: &Expr, scope: &Scope) {
        let ty = self.expr(expr, scope);
        if !matches!(ty, Ty::Boolean | Ty::Unknown) {
            self.cx
                .error(
                    NOT_BOOLEAN,
                    expr.span,
                    format!("a condition must be boolean, this is {ty}"),
                )
                .label("not true/false")
                .help("compare it, e.g. `x == value` or `len(xs) > 1`");
        }
    }

    /// Checks that `expr` is a duration (`3 workdays`, `config.limit[category]`).
    pub fn duration(&mut self, expr: &Expr, scope: &Scope, context: &str) {
        let ty = self.expr(expr, scope);
        if !matches!(ty, Ty::Duration | Ty::Unknown) {
            let help = if matches!(ty, Ty::Integer) {
                "add a unit: `3 workdays`, `4 workhours`, `7 days`, `2 hours`".to_string()
            } else {
                "write a duration such as `3 workdays`, or a duration from the configuration"
                    .to_string()
            };
            self.cx
                .error(
                    NOT_DURATION,
                    expr.span,
                    format!("{context} must be a duration, this is {ty}"),
                )
                .label("expected a duration")
                .help(help);
        }
    }

    /// Checks that `expr` can be stored as `expected`.
    pub fn value(&mut self, expected: &Ty, expr: &Expr, scope: &Scope, what: &str) {
        let ty = self.expr(expr, scope);
        if !self.assignable(expected, &ty) {
            self.cx
                .error(
                    TYPE_MISMATCH,
                    expr.span,
                    format!("{what} is {expected}, but this is {ty}"),
                )
                .label(format!("expected {expected}"))
                .help(format!("give a value of type {expected}"));
        }
    }

    fn queue(&mut self, queue: &QueueRef, scope: &Scope) {
        let (Some(key), Some(role)) = (
            &queue.key,
            self.cx.roles.get(queue.role.name.as_str()).copied(),
        ) else {
            return;
        };
        if let Some(enum_name) = &role.keyed_by {
            let expected = Ty::Enum(enum_name.name.clone());
            let ty = self.expr(key, scope);
            if !self.assignable(&expected, &ty) {
                self.cx
                    .error(
                        ROLE_KEY,
                        key.span,
                        format!(
                            "role `{}` is keyed by {}, but this is {ty}",
                            role.name.name, enum_name.name
                        ),
                    )
                    .label(format!("expected {}", enum_name.name))
                    .help(format!(
                        "use a value or variable of enum `{}`",
                        enum_name.name
                    ));
            }
        }
    }
}

fn op_symbol(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Or => "or",
        BinaryOp::And => "and",
        BinaryOp::Eq => "==",
        BinaryOp::Ne => "!=",
        BinaryOp::Lt => "<",
        BinaryOp::Le => "<=",
        BinaryOp::Gt => ">",
        BinaryOp::Ge => ">=",
        BinaryOp::In => "in",
        BinaryOp::Add => "+",
        BinaryOp::Sub => "-",
        BinaryOp::Mul => "*",
        BinaryOp::Div => "/",
    }
}

/// The scope inside `node`: the item of a for-each task, typed silently (the list's own
/// errors are reported once, with the task).
fn item_scope(t: &mut Typer, node: Option<&crate::model::Node>) -> Scope {
    let mut scope = Scope::default();
    if let Some(node) = node
        && let NodeKind::Task(task) = &node.kind
        && let Some(for_each) = &task.for_each
    {
        let reported = t.cx.diags.len();
        let item = match t.expr(&for_each.list, &Scope::default()) {
            Ty::List(item) => *item,
            _ => Ty::Unknown,
        };
        t.cx.diags.truncate(reported);
        scope.item = Some((for_each.item.name.clone(), item));
    }
    scope
}

pub(super) fn check(cx: &mut Cx) {
    let p = cx.process;
    let mut t = Typer { cx, depth: 0 };
    let top = Scope::default();
    for var in &p.vars {
        if let Some(default) = &var.default {
            t.value(
                &Ty::from(&var.ty),
                default,
                &top,
                &format!("variable `{}`", var.name.name),
            );
        }
    }
    for (node, deadline) in deadlines(p) {
        let scope = item_scope(&mut t, node);
        t.duration(&deadline.duration, &scope, "a deadline");
        for step in &deadline.ladder {
            match &step.when {
                EscalationWhen::Before(d) => t.duration(d, &scope, "`before`"),
                EscalationWhen::After(d) => t.duration(d, &scope, "`after`"),
                EscalationWhen::AtDue => {}
            }
        }
    }
    for node in &p.nodes {
        match &node.kind {
            NodeKind::Choice { branches, .. } => {
                for branch in branches {
                    t.condition(&branch.when, &top);
                }
            }
            NodeKind::Task(task) => task_node(&mut t, task, &top),
            NodeKind::WaitMessage {
                timeout: Some((d, _)),
                ..
            } => t.duration(d, &top, "a timeout"),
            NodeKind::WaitTimer { duration, .. } => t.duration(duration, &top, "a wait"),
            NodeKind::StartProcess {
                process, inputs, ..
            } => child_inputs(&mut t, &process.name, inputs, &top),
            _ => {}
        }
    }
    for (node, action) in actions(p) {
        // Entry actions run per item; a ladder also sees the item of the late instance.
        let scope = item_scope(&mut t, node);
        action_types(&mut t, action, &scope);
    }
}

/// A task node: its `for each` list, its queue and its assignee.
fn task_node(t: &mut Typer, task: &crate::model::Task, top: &Scope) {
    let mut scope = Scope::default();
    if let Some(for_each) = &task.for_each {
        let item = match t.expr(&for_each.list, top) {
            Ty::List(item) => *item,
            Ty::Unknown => Ty::Unknown,
            other => {
                t.cx.error(
                    TYPE_MISMATCH,
                    for_each.list.span,
                    format!("`for each` needs a list, this is {other}"),
                )
                .label("not a list")
                .help("repeat the task over a list variable, e.g. `for each d in co_departments`");
                Ty::Unknown
            }
        };
        scope.item = Some((for_each.item.name.clone(), item));
    }
    t.queue(&task.queue, &scope);
    if let Some(Assignee::Expr(e)) = &task.assignee {
        t.value(&Ty::Text, e, &scope, "an assignee");
    }
}

/// The inputs of a linked case, against the variables of the process it starts (when that
/// process is imported).
fn child_inputs(t: &mut Typer, process: &str, inputs: &[(crate::model::Ident, Expr)], top: &Scope) {
    let child = t.cx.imports.iter().find(|c| c.key.name == process);
    for (name, value) in inputs {
        let expected = child
            .and_then(|c| c.vars.iter().find(|v| v.name.name == name.name))
            .map(|v| Ty::from(&v.ty));
        match expected {
            // The child's enums are its own; compare by name only.
            Some(expected) => {
                let ty = t.expr(value, top);
                let ok = t.assignable(&expected, &ty)
                    || matches!(
                        (&expected, &ty),
                        (Ty::Enum(_), Ty::Enum(_) | Ty::EnumValue(_))
                    );
                if !ok {
                    t.cx.error(
                        TYPE_MISMATCH,
                        value.span,
                        format!(
                            "input `{}` of `{}` is {expected}, but this is {ty}",
                            name.name, process
                        ),
                    )
                    .label(format!("expected {expected}"))
                    .help(format!("pass a value of type {expected}"));
                }
            }
            None => {
                t.expr(value, top);
            }
        }
    }
}

/// An action's expressions, in the scope of its node.
fn action_types(t: &mut Typer, action: &Action, scope: &Scope) {
    match action {
        Action::Assign { var, value, .. } => {
            if let Some(decl) = t.cx.vars.get(var.name.as_str()).copied() {
                t.value(
                    &Ty::from(&decl.ty),
                    value,
                    scope,
                    &format!("variable `{}`", var.name),
                );
            } else {
                t.expr(value, scope);
            }
        }
        Action::Clock {
            op: ClockOp::Start { duration: Some(d) },
            ..
        } => t.duration(d, scope, "a clock's limit"),
        Action::Clock {
            op: ClockOp::Extend { by, .. },
            ..
        } => t.duration(by, scope, "an extension"),
        Action::FollowUp { queue, .. } => t.queue(queue, scope),
        Action::Notify {
            target: NotifyTarget::Role(queue),
            ..
        } => t.queue(queue, scope),
        _ => {}
    }
}
