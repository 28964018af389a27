//! Source text → [`ast::File`]. The pest grammar (`grammar.pest`) recognises the text; this
//! module turns pest pairs into the AST right away (pairs never leave this module) and turns
//! a pest failure into one [`Diagnostic`] (`YM0001`) that names what was expected in the
//! words of the language.

// The contract returns one `Diagnostic` by value; it happens once per file, not in a loop.
#![allow(clippy::result_large_err)]

use crate::ast::{self, CallInput, Comment, Item, NodeKind, TaskEntry, WaitEntry};
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{
    Action, Assignee, BinaryOp, Branch, ChannelDecl, ClockDecl, ClockOp, ConfigKey, Deadline,
    DocumentDecl, DurationUnit, EnumDecl, EnumSource, EnumValue, Escalation, EscalationWhen, Expr,
    ExprKind, FieldSpec, ForEach, Ident, NotifyTarget, Outcome, PersonalKind, QueueRef, RoleDecl,
    Span, Type, UnaryOp, VarDecl,
};
use pest::Parser as _;
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// Code of every syntax error.
pub const SYNTAX: &str = "YM0001";

/// Code of an expression nested deeper than [`MAX_DEPTH`].
pub const TOO_DEEP: &str = "YM0008";

/// Deepest nesting of brackets (`(`, `[`, `{`, `list<`) accepted; deeper input is refused
/// before pest recurses (pest's recursion per bracket is deep: 200 nested calls overflowed a
/// 2 MiB stack in an unoptimised build).
pub const MAX_NESTING: usize = 64;

/// Deepest expression accepted: levels of operators, field accesses, indexes, calls and lists
/// nested in one another (`a or b or c` is 3 deep, `x.a.b` 3). Every later walk of an
/// expression (checker, evaluation, formatter, flowchart, the stored model's JSON) recurses
/// once per level, so this bounds their stack. The stored model nests about 3 JSON levels per
/// expression level: the engine reads it with serde_json's own limit lifted (see
/// `yimen_engine`'s `MAX_MODEL_DEPTH`).
pub const MAX_DEPTH: usize = 64;

type Result<T> = std::result::Result<T, Diagnostic>;

/// Parses a process file. Returns the AST or the first syntax error (`YM0001`). Never panics.
pub fn parse(file: &str, source: &str) -> Result<ast::File> {
    check_nesting(file, source)?;
    let mut pairs =
        Grammar::parse(Rule::file, source).map_err(|e| syntax_error(file, source, e))?;
    let Some(root) = pairs.next() else {
        return Err(error(
            file,
            Span::new(0, 0),
            "the file is empty",
            "empty file",
            None,
        ));
    };
    let b = Builder { file };
    b.file(root, source)
}

fn error(file: &str, span: Span, message: &str, label: &str, help: Option<&str>) -> Diagnostic {
    Diagnostic {
        code: SYNTAX,
        severity: Severity::Error,
        message: message.to_string(),
        file: file.to_string(),
        span,
        label: label.to_string(),
        help: help.map(str::to_string),
    }
}

/// Refuses absurdly deep nesting (fuzzed input) with a diagnostic instead of a stack overflow.
fn check_nesting(file: &str, source: &str) -> Result<()> {
    let mut depth = 0usize;
    let mut type_depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    let mut prev = '\0';
    for (i, c) in source.char_indices() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
            }
        } else if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' || c == '\n' {
                in_string = false;
            }
        } else {
            match c {
                '"' => in_string = true,
                '/' if prev == '/' => in_comment = true,
                // `<` opens a type (`list<`, `map<`); elsewhere it is a comparison.
                '<' if !(source[..i].trim_end().ends_with("list")
                    || source[..i].trim_end().ends_with("map")) => {}
                '>' if type_depth == 0 => {}
                '(' | '[' | '{' | '<' => {
                    if c == '<' {
                        type_depth += 1;
                    }
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(error(
                            file,
                            Span::new(i, i + 1),
                            &format!(
                                "brackets are nested too deeply (more than {MAX_NESTING} levels)"
                            ),
                            "too deep",
                            Some("split the expression or block into smaller parts"),
                        ));
                    }
                }
                ')' | ']' | '}' | '>' => {
                    if c == '>' {
                        type_depth -= 1;
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        prev = if in_comment { '\0' } else { c };
    }
    Ok(())
}

fn syntax_error(file: &str, source: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let pos = pos.min(source.len());
    if let Some(d) = unclosed_text(file, source, pos) {
        return d;
    }
    let (found, width) = describe_found(source, pos);
    let span = Span::new(pos, pos + width);
    match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<String> = Vec::new();
            for r in collapse(positives) {
                let name = rule_name(r);
                if !expected.contains(&name) {
                    expected.push(name);
                }
            }
            let expected = join_or(&expected);
            let message = if expected.is_empty() {
                format!("unexpected {found}")
            } else {
                format!("expected {expected}, found {found}")
            };
            let help = help_for(positives, &found);
            Diagnostic {
                code: SYNTAX,
                severity: Severity::Error,
                message,
                file: file.to_string(),
                span,
                label: if expected.is_empty() {
                    "unexpected here".to_string()
                } else {
                    format!("expected {expected}")
                },
                help,
            }
        }
        pest::error::ErrorVariant::CustomError { message } => {
            error(file, span, message, "here", None)
        }
    }
}

/// Replaces the many ways an operand or an operator can start by one phrase each.
fn collapse(positives: &[Rule]) -> Vec<Rule> {
    const OPERAND: &[Rule] = &[
        Rule::op_not,
        Rule::op_neg,
        Rule::paren,
        Rule::decimal,
        Rule::integer,
        Rule::boolean,
        Rule::list,
        Rule::string,
        Rule::name,
        Rule::call,
        Rule::kw_config,
        Rule::kw_date,
        Rule::duration,
        Rule::config_ref,
        Rule::date_lit,
    ];
    const OPERATOR: &[Rule] = &[
        Rule::op_or,
        Rule::op_and,
        Rule::op_in,
        Rule::op_eq,
        Rule::op_ne,
        Rule::op_le,
        Rule::op_ge,
        Rule::op_lt,
        Rule::op_gt,
        Rule::op_add,
        Rule::op_sub,
        Rule::op_mul,
        Rule::op_div,
        Rule::field_access,
        Rule::index_access,
    ];
    let many = |set: &[Rule]| positives.iter().filter(|r| set.contains(r)).count() >= 3;
    let (operand, operator) = (many(OPERAND), many(OPERATOR));
    let mut out = Vec::new();
    for r in positives {
        let r = if operand && (OPERAND.contains(r) || *r == Rule::ident) {
            Rule::expr
        } else if operator && OPERATOR.contains(r) {
            Rule::infix_marker
        } else {
            *r
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// A short description of the text at `pos` and the byte width to underline.
fn describe_found(source: &str, pos: usize) -> (String, usize) {
    let rest = &source[pos..];
    let Some(first) = rest.chars().next() else {
        return ("the end of the file".to_string(), 0);
    };
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let width = word.len();
        return (format!("`{word}`"), width);
    }
    if first == '"' {
        return ("a text in quotes".to_string(), 1);
    }
    if first == '\n' || first == '\r' {
        return ("the end of the line".to_string(), 1);
    }
    (format!("`{first}`"), first.len_utf8())
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A text that starts at `pos` and is not closed on its line: say so, rather than what the
/// grammar expected instead of a text.
fn unclosed_text(file: &str, source: &str, pos: usize) -> Option<Diagnostic> {
    let rest = source.get(pos..)?.strip_prefix('"')?;
    let line = rest.split('\n').next().unwrap_or(rest);
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return None,
            _ => {}
        }
    }
    Some(error(
        file,
        Span::new(pos, pos + 1),
        "this text is not closed before the end of the line",
        "the text starts here",
        Some("add the closing `\"`; a text stays on one line (write `\\n` for a line break)"),
    ))
}

/// Words that start a declaration or node: found inside a block, the block was not closed.
const ITEM_WORDS: &[&str] = &[
    "`import`",
    "`calendar`",
    "`config`",
    "`enum`",
    "`var`",
    "`role`",
    "`channel`",
    "`document`",
    "`clock`",
    "`start`",
    "`end`",
    "`task`",
    "`step`",
    "`choice`",
    "`parallel`",
    "`join`",
    "`wait`",
    "`call`",
];

fn help_for(positives: &[Rule], found: &str) -> Option<String> {
    let h = |s: &str| Some(s.to_string());
    let in_block = [
        Rule::task_entry,
        Rule::action,
        Rule::escalation,
        Rule::wait_entry,
    ]
    .iter()
    .any(|r| positives.contains(r));
    if in_block && ITEM_WORDS.contains(&found) && !positives.contains(&Rule::item) {
        return h("the block above is not closed: add its `}` before this line");
    }
    if positives.contains(&Rule::item) {
        return h(
            "a process file is a `process` header followed by declarations (`var`, `role`, `enum`, ...) and nodes (`start`, `task`, `step`, `choice`, `end`, ...); see docs/language.md",
        );
    }
    if positives.contains(&Rule::task_entry) {
        return h(
            "a task body holds `queue`, `assignee`, `fields { }`, `deadline`, `on enter { }` and `outcome key \"label\" -> next` lines",
        );
    }
    if positives.contains(&Rule::action) {
        return h(
            "actions are `set`, `notify`, `ledger`, `issue`, `start/pause/resume/stop/extend clock` and `task ... queue ...`",
        );
    }
    if positives.contains(&Rule::goto) {
        return h("write the next node as `-> node_id`");
    }
    if positives.contains(&Rule::name) || positives.contains(&Rule::paren) {
        return h(
            "an expression is a name, a number, a text in quotes, a duration like `3 workdays`, `config.key`, a list `[a, b]` or a call like `len(x)`, combined with operators",
        );
    }
    if positives.contains(&Rule::ident) {
        return h("names start with a letter or `_` and use only ASCII letters, digits and `_`");
    }
    if positives.contains(&Rule::duration_unit) {
        return h("units are workdays, workhours, days, hours, minutes");
    }
    if positives.contains(&Rule::personal_kind) {
        return h("kinds are id_number, phone, name, address, sensitive");
    }
    None
}

/// The name of a grammar rule in the words of the language, for "expected ..." messages.
fn rule_name(rule: Rule) -> String {
    let s = |x: &str| x.to_string();
    let kw = |x: &str| format!("`{x}`");
    match rule {
        Rule::EOI => s("the end of the file"),
        Rule::header => s("the `process` header"),
        Rule::item => s("a declaration or a node"),
        Rule::task_entry => {
            s("a task entry (`queue`, `assignee`, `fields`, `deadline`, `on enter`, `outcome`)")
        }
        Rule::action => s("an action"),
        Rule::clock_entry => s("`calendar` or `deadline`"),
        Rule::escalation | Rule::esc_when => s("an escalation (`before`, `at due`, `after`)"),
        Rule::wait_entry => s("`required`, `optional` or `timeout`"),
        Rule::goto => s("`-> next_node`"),
        Rule::ident | Rule::name => s("a name"),
        Rule::string | Rule::string_inner => s("a text in quotes"),
        Rule::integer => s("a whole number"),
        Rule::decimal => s("a decimal number"),
        Rule::duration => s("a duration"),
        Rule::duration_unit => {
            s("a duration unit (`workdays`, `workhours`, `days`, `hours`, `minutes`)")
        }
        Rule::boolean => s("`true` or `false`"),
        Rule::expr => s("an expression"),
        Rule::infix_marker => s("an operator"),
        Rule::list => s("a list `[...]`"),
        Rule::ty | Rule::list_ty | Rule::map_ty => s("a type"),
        Rule::personal_kind => {
            s("a personal-data kind (`id_number`, `phone`, `name`, `address`, `sensitive`)")
        }
        Rule::queue_ref => s("a role"),
        Rule::notify_target => s("`applicant`, `holder`, `role r` or `channel c`"),
        Rule::role_informs => s("`informs applicant`"),
        Rule::role_reassigns => s("`reassigns <role>`"),
        Rule::field_spec => s("`required x` or `optional x`"),
        Rule::enum_value => s("an enum value"),
        Rule::config_key => s("a configuration key (`name: type`)"),
        Rule::call_input => s("an input (`name = expression`)"),
        Rule::var_default => kw("="),
        Rule::op_or => kw("or"),
        Rule::op_and => kw("and"),
        Rule::op_not => kw("not"),
        Rule::op_in => kw("in"),
        Rule::op_eq => kw("=="),
        Rule::op_ne => kw("!="),
        Rule::op_le => kw("<="),
        Rule::op_ge => kw(">="),
        Rule::op_lt => kw("<"),
        Rule::op_gt => kw(">"),
        Rule::op_add => kw("+"),
        Rule::op_sub | Rule::op_neg => kw("-"),
        Rule::op_mul => kw("*"),
        Rule::op_div => kw("/"),
        Rule::field_access => kw(".field"),
        Rule::index_access => kw("[index]"),
        Rule::action_block => kw("{"),
        other => {
            let raw = format!("{other:?}");
            match raw.strip_prefix("kw_") {
                Some(k) => kw(k),
                None => match raw
                    .strip_suffix("_node")
                    .or_else(|| raw.strip_suffix("_decl"))
                {
                    Some(k) => kw(k),
                    None => kw(&raw.replace('_', " ")),
                },
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Affix {
    Prefix,
    Infix,
    Postfix,
}

/// The operators and their binding power (higher binds tighter); every infix operator is left
/// associative. Loosest first: `or`, `and`, `not`, comparisons and `in`, `+ -`, `* /`, unary
/// `-`, then `a.b` and `m[k]` (as in `grammar.pest`).
fn affix(rule: Rule) -> Option<(Affix, u32)> {
    Some(match rule {
        Rule::op_or => (Affix::Infix, 10),
        Rule::op_and => (Affix::Infix, 20),
        Rule::op_not => (Affix::Prefix, 30),
        Rule::op_eq
        | Rule::op_ne
        | Rule::op_lt
        | Rule::op_le
        | Rule::op_gt
        | Rule::op_ge
        | Rule::op_in => (Affix::Infix, 40),
        Rule::op_add | Rule::op_sub => (Affix::Infix, 50),
        Rule::op_mul | Rule::op_div => (Affix::Infix, 60),
        Rule::op_neg => (Affix::Prefix, 70),
        Rule::field_access | Rule::index_access => (Affix::Postfix, 80),
        _ => return None,
    })
}

fn binary_op(rule: Rule) -> BinaryOp {
    match rule {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_in => BinaryOp::In,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        _ => BinaryOp::Div,
    }
}

/// `depth + 1`, or the `YM0008` diagnostic at `at` when that is deeper than [`MAX_DEPTH`].
fn deeper(file: &str, at: Span, depth: usize) -> Result<usize> {
    if depth >= MAX_DEPTH {
        return Err(too_deep(file, at));
    }
    Ok(depth + 1)
}

fn too_deep(file: &str, at: Span) -> Diagnostic {
    Diagnostic {
        code: TOO_DEEP,
        severity: Severity::Error,
        message: format!("this expression is nested more than {MAX_DEPTH} levels deep"),
        file: file.to_string(),
        span: at,
        label: format!("level {} starts here", MAX_DEPTH + 1),
        help: Some(format!(
            "the limit is {MAX_DEPTH} levels of operators, field accesses, indexes, calls and lists; split the expression: compute parts in a `step` with `set`, or test a list of values with `x in [a, b, c]` instead of a chain of `or`"
        )),
    }
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.end())
}

/// Collects the `//` comments of a source that parsed (strings are well formed).
fn comments(source: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let end = source[i..].find('\n').map_or(source.len(), |n| i + n);
            let text = source[i + 2..end].trim_end().to_string();
            out.push(Comment {
                text,
                span: Span::new(i, end),
            });
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

struct Builder<'f> {
    file: &'f str,
}

impl Builder<'_> {
    fn err(&self, span: Span, message: String, label: &str, help: Option<&str>) -> Diagnostic {
        error(self.file, span, &message, label, help)
    }

    fn file(&self, root: Pair<'_, Rule>, source: &str) -> Result<ast::File> {
        let span = span_of(&root);
        let mut header = None;
        let mut items = Vec::new();
        for p in root.into_inner() {
            match p.as_rule() {
                Rule::header => header = Some(self.header(p)?),
                Rule::item => {
                    if let Some(inner) = p.into_inner().next() {
                        items.push(self.item(inner)?);
                    }
                }
                _ => {}
            }
        }
        let Some(header) = header else {
            return Err(self.err(span, "the `process` header is missing".into(), "here", None));
        };
        Ok(ast::File {
            header,
            items,
            comments: comments(source),
            span,
        })
    }

    fn header(&self, p: Pair<'_, Rule>) -> Result<ast::Header> {
        let span = span_of(&p);
        let mut key = None;
        let mut title = String::new();
        let mut version = 0;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => key = Some(ident(&c)),
                Rule::string => title = string(&c),
                Rule::integer => {
                    version = c.as_str().parse::<u32>().map_err(|_| {
                        self.err(
                            span_of(&c),
                            format!("version `{}` is too large", c.as_str()),
                            "too large",
                            Some("use a whole number below 4294967296"),
                        )
                    })?
                }
                _ => {}
            }
        }
        Ok(ast::Header {
            key: key.unwrap_or_else(|| Ident {
                name: String::new(),
                span,
            }),
            title,
            version,
            span,
        })
    }

    fn item(&self, p: Pair<'_, Rule>) -> Result<Item> {
        let span = span_of(&p);
        Ok(match p.as_rule() {
            Rule::import_decl => Item::Import(first_ident(p, span), span),
            Rule::calendar_decl => Item::Calendar(first_ident(p, span), span),
            Rule::config_decl => Item::Config(self.config_decl(p)?),
            Rule::enum_decl => Item::Enum(self.enum_decl(p)?),
            Rule::var_decl => Item::Var(self.var_decl(p)?),
            Rule::role_decl => Item::Role(role_decl(p)),
            Rule::channel_decl => Item::Channel(channel_decl(p)),
            Rule::document_decl => Item::Document(document_decl(p)),
            Rule::clock_decl => Item::Clock(self.clock_decl(p)?),
            _ => Item::Node(self.node(p)?),
        })
    }

    fn config_decl(&self, p: Pair<'_, Rule>) -> Result<ast::ConfigBlock> {
        let span = span_of(&p);
        let mut file = String::new();
        let mut keys = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::string => file = string(&c),
                Rule::config_key => {
                    let kspan = span_of(&c);
                    let mut name = None;
                    let mut ty = Type::Text;
                    for k in c.into_inner() {
                        match k.as_rule() {
                            Rule::ident => name = Some(ident(&k)),
                            Rule::ty => ty = self.ty(k)?,
                            _ => {}
                        }
                    }
                    keys.push(ConfigKey {
                        name: name.unwrap_or_else(|| missing(kspan)),
                        ty,
                        span: kspan,
                    });
                }
                _ => {}
            }
        }
        Ok(ast::ConfigBlock { file, keys, span })
    }

    fn ty(&self, p: Pair<'_, Rule>) -> Result<Type> {
        let span = span_of(&p);
        let Some(inner) = p.into_inner().next() else {
            return Err(self.err(span, "a type is missing".into(), "here", None));
        };
        let tys = |q: Pair<'_, Rule>| -> Result<Vec<Type>> {
            q.into_inner()
                .filter(|x| x.as_rule() == Rule::ty)
                .map(|x| self.ty(x))
                .collect()
        };
        Ok(match inner.as_rule() {
            Rule::list_ty => {
                let mut t = tys(inner)?;
                Type::List(Box::new(t.pop().unwrap_or(Type::Text)))
            }
            Rule::map_ty => {
                let mut t = tys(inner)?.into_iter();
                let k = t.next().unwrap_or(Type::Text);
                let v = t.next().unwrap_or(Type::Text);
                Type::Map(Box::new(k), Box::new(v))
            }
            _ => match inner.as_str() {
                "text" => Type::Text,
                "integer" => Type::Integer,
                "decimal" => Type::Decimal,
                "boolean" => Type::Boolean,
                "date" => Type::Date,
                "datetime" => Type::DateTime,
                "duration" => Type::Duration,
                other => Type::Enum(other.to_string()),
            },
        })
    }

    fn enum_decl(&self, p: Pair<'_, Rule>) -> Result<EnumDecl> {
        let span = span_of(&p);
        let mut name = None;
        let mut source = EnumSource::Listed(Vec::new());
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => name = Some(ident(&c)),
                Rule::enum_from => source = EnumSource::Config(first_ident(c, span)),
                Rule::enum_body => {
                    let mut values = Vec::new();
                    for v in c.into_inner().filter(|v| v.as_rule() == Rule::enum_value) {
                        let vspan = span_of(&v);
                        let mut key = None;
                        let mut label = None;
                        for x in v.into_inner() {
                            match x.as_rule() {
                                Rule::ident => key = Some(ident(&x)),
                                Rule::string => label = Some(string(&x)),
                                _ => {}
                            }
                        }
                        values.push(EnumValue {
                            key: key.unwrap_or_else(|| missing(vspan)),
                            label,
                        });
                    }
                    source = EnumSource::Listed(values);
                }
                _ => {}
            }
        }
        Ok(EnumDecl {
            name: name.unwrap_or_else(|| missing(span)),
            source,
            span,
        })
    }

    fn var_decl(&self, p: Pair<'_, Rule>) -> Result<VarDecl> {
        let span = span_of(&p);
        let mut v = VarDecl {
            name: missing(span),
            ty: Type::Text,
            label: None,
            personal: None,
            required: false,
            default: None,
            span,
        };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => v.name = ident(&c),
                Rule::ty => v.ty = self.ty(c)?,
                Rule::personal => {
                    let kind = c
                        .into_inner()
                        .find(|k| k.as_rule() == Rule::personal_kind)
                        .map(|k| k.as_str().to_string())
                        .unwrap_or_default();
                    v.personal = Some(match kind.as_str() {
                        "id_number" => PersonalKind::IdNumber,
                        "phone" => PersonalKind::Phone,
                        "name" => PersonalKind::Name,
                        "address" => PersonalKind::Address,
                        _ => PersonalKind::Sensitive,
                    });
                }
                Rule::kw_required => v.required = true,
                Rule::var_default => {
                    if let Some(e) = c.into_inner().find(|e| e.as_rule() == Rule::expr) {
                        v.default = Some(self.expr(e)?);
                    }
                }
                Rule::string => v.label = Some(string(&c)),
                _ => {}
            }
        }
        Ok(v)
    }

    fn clock_decl(&self, p: Pair<'_, Rule>) -> Result<ClockDecl> {
        let span = span_of(&p);
        let mut d = ClockDecl {
            name: missing(span),
            label: None,
            calendar: None,
            deadline: None,
            span,
        };
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => d.name = ident(&c),
                Rule::string => d.label = Some(string(&c)),
                Rule::clock_entry => {
                    for e in c.into_inner() {
                        match e.as_rule() {
                            Rule::calendar_decl => {
                                let s = span_of(&e);
                                d.calendar = Some(first_ident(e, s));
                            }
                            Rule::deadline => d.deadline = Some(self.deadline(e)?),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }

    fn node(&self, p: Pair<'_, Rule>) -> Result<ast::Node> {
        let span = span_of(&p);
        let rule = p.as_rule();
        let mut id = None;
        let mut label = None;
        let mut next = None;
        let mut rest = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident if id.is_none() => id = Some(ident(&c)),
                Rule::string if label.is_none() => label = Some(string(&c)),
                Rule::goto if rule != Rule::parallel_node => next = Some(goto(c, span)),
                _ => rest.push(c),
            }
        }
        let id = id.unwrap_or_else(|| missing(span));
        let next = next.unwrap_or_else(|| missing(span));
        let kind = match rule {
            Rule::start_node => NodeKind::Start { next },
            Rule::end_node => self.end_node(rest, span)?,
            Rule::step_node => NodeKind::Step {
                actions: self.last_action_block(rest)?,
                next,
            },
            Rule::task_node => self.task_node(rest)?,
            Rule::choice_node => self.choice_node(rest)?,
            Rule::parallel_node => NodeKind::Parallel {
                branches: rest
                    .into_iter()
                    .filter(|c| c.as_rule() == Rule::goto)
                    .map(|g| goto(g, span))
                    .collect(),
            },
            Rule::join_node => NodeKind::Join { next },
            Rule::wait_node => self.wait_node(rest, next, span)?,
            Rule::call_node => self.call_node(rest, next, span)?,
            _ => {
                return Err(self.err(span, "this is not a node".into(), "here", None));
            }
        };
        Ok(ast::Node {
            id,
            label,
            kind,
            span,
        })
    }

    /// The actions of the last `{ ... }` block among `pairs` (every block is built, so the
    /// first bad action of any block is the error).
    fn last_action_block<'i>(
        &self,
        pairs: impl IntoIterator<Item = Pair<'i, Rule>>,
    ) -> Result<Vec<Action>> {
        let mut actions = Vec::new();
        for c in pairs {
            if c.as_rule() == Rule::action_block {
                actions = self.actions(c)?;
            }
        }
        Ok(actions)
    }

    /// `end`: an optional result and an optional action block.
    fn end_node(&self, rest: Vec<Pair<'_, Rule>>, span: Span) -> Result<NodeKind> {
        let mut result = None;
        let mut actions = None;
        for c in rest {
            match c.as_rule() {
                Rule::end_result => result = Some(first_ident(c, span)),
                Rule::action_block => actions = Some(self.actions(c)?),
                _ => {}
            }
        }
        Ok(NodeKind::End { result, actions })
    }

    /// `task`: an optional `for each` and its entries.
    fn task_node(&self, rest: Vec<Pair<'_, Rule>>) -> Result<NodeKind> {
        let mut for_each = None;
        let mut entries = Vec::new();
        for c in rest {
            match c.as_rule() {
                Rule::for_each => {
                    if let Some(f) = self.for_each(c)? {
                        for_each = Some(f);
                    }
                }
                Rule::task_entry => {
                    if let Some(e) = c.into_inner().next() {
                        entries.push(self.task_entry(e)?);
                    }
                }
                _ => {}
            }
        }
        Ok(NodeKind::Task { for_each, entries })
    }

    /// `for each item in list`; `None` when a part is missing.
    fn for_each(&self, c: Pair<'_, Rule>) -> Result<Option<ForEach>> {
        let mut item = None;
        let mut list = None;
        for x in c.into_inner() {
            match x.as_rule() {
                Rule::ident => item = Some(ident(&x)),
                Rule::expr => list = Some(self.expr(x)?),
                _ => {}
            }
        }
        Ok(match (item, list) {
            (Some(item), Some(list)) => Some(ForEach { item, list }),
            _ => None,
        })
    }

    /// `choice`: its `when` branches and its `else`.
    fn choice_node(&self, rest: Vec<Pair<'_, Rule>>) -> Result<NodeKind> {
        let mut branches = Vec::new();
        let mut default = None;
        let mut default_span = None;
        for c in rest {
            match c.as_rule() {
                Rule::branch => {
                    if let Some(b) = self.branch(c)? {
                        branches.push(b);
                    }
                }
                Rule::else_branch => {
                    let espan = span_of(&c);
                    default_span = Some(espan);
                    default = c
                        .into_inner()
                        .find(|x| x.as_rule() == Rule::goto)
                        .map(|g| goto(g, espan));
                }
                _ => {}
            }
        }
        Ok(NodeKind::Choice {
            branches,
            default,
            default_span,
        })
    }

    /// `when expr -> next`; `None` without a condition.
    fn branch(&self, c: Pair<'_, Rule>) -> Result<Option<Branch>> {
        let bspan = span_of(&c);
        let mut when = None;
        let mut to = None;
        for x in c.into_inner() {
            match x.as_rule() {
                Rule::expr => when = Some(self.expr(x)?),
                Rule::goto => to = Some(goto(x, bspan)),
                _ => {}
            }
        }
        Ok(when.map(|when| Branch {
            when,
            next: to.unwrap_or_else(|| missing(bspan)),
            span: bspan,
        }))
    }

    /// `wait`: a duration (a timer) or a `message`; the last one written counts.
    fn wait_node(&self, rest: Vec<Pair<'_, Rule>>, next: Ident, span: Span) -> Result<NodeKind> {
        let mut kind = None;
        for c in rest {
            match c.as_rule() {
                Rule::wait_message => kind = Some(self.wait_message(c, next.clone(), span)?),
                Rule::expr => {
                    kind = Some(NodeKind::WaitTimer {
                        duration: self.expr(c)?,
                        next: next.clone(),
                    });
                }
                _ => {}
            }
        }
        kind.ok_or_else(|| {
            self.err(
                span,
                "a `wait` needs a duration or a `message`".into(),
                "here",
                None,
            )
        })
    }

    /// `wait message m { entries }`.
    fn wait_message(&self, c: Pair<'_, Rule>, next: Ident, span: Span) -> Result<NodeKind> {
        let mut message = None;
        let mut entries = None;
        for x in c.into_inner() {
            match x.as_rule() {
                Rule::ident => message = Some(ident(&x)),
                Rule::wait_entry => {
                    let list: &mut Vec<WaitEntry> = entries.get_or_insert_with(Vec::new);
                    if let Some(e) = x.into_inner().next() {
                        list.push(self.wait_entry(e)?);
                    }
                }
                _ => {}
            }
        }
        Ok(NodeKind::WaitMessage {
            message: message.unwrap_or_else(|| missing(span)),
            entries: entries.or_else(|| Some(Vec::new())),
            next,
        })
    }

    /// `call process [nowait] [with ...]`.
    fn call_node(&self, rest: Vec<Pair<'_, Rule>>, next: Ident, span: Span) -> Result<NodeKind> {
        let mut process = None;
        let mut inputs = None;
        let mut wait = true;
        for c in rest {
            match c.as_rule() {
                Rule::ident => process = Some(ident(&c)),
                Rule::kw_nowait => wait = false,
                Rule::call_with => inputs = Some(self.call_inputs(c)?),
                _ => {}
            }
        }
        Ok(NodeKind::Call {
            process: process.unwrap_or_else(|| missing(span)),
            inputs,
            wait,
            next,
        })
    }

    /// The `name: value` inputs of a `with`; an input missing a part is left out.
    fn call_inputs(&self, c: Pair<'_, Rule>) -> Result<Vec<CallInput>> {
        let mut list = Vec::new();
        for x in c.into_inner().filter(|x| x.as_rule() == Rule::call_input) {
            let ispan = span_of(&x);
            let mut name = None;
            let mut value = None;
            for y in x.into_inner() {
                match y.as_rule() {
                    Rule::ident => name = Some(ident(&y)),
                    Rule::expr => value = Some(self.expr(y)?),
                    _ => {}
                }
            }
            if let (Some(name), Some(value)) = (name, value) {
                list.push(CallInput {
                    name,
                    value,
                    span: ispan,
                });
            }
        }
        Ok(list)
    }

    fn wait_entry(&self, p: Pair<'_, Rule>) -> Result<WaitEntry> {
        let span = span_of(&p);
        Ok(match p.as_rule() {
            Rule::field_spec => WaitEntry::Field(field_spec(p)),
            _ => {
                let mut after = None;
                let mut next = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::expr => after = Some(self.expr(c)?),
                        Rule::goto => next = Some(goto(c, span)),
                        _ => {}
                    }
                }
                match after {
                    Some(after) => WaitEntry::Timeout {
                        after,
                        next: next.unwrap_or_else(|| missing(span)),
                        span,
                    },
                    None => {
                        return Err(self.err(
                            span,
                            "`timeout` needs a duration".into(),
                            "here",
                            None,
                        ));
                    }
                }
            }
        })
    }

    fn task_entry(&self, p: Pair<'_, Rule>) -> Result<TaskEntry> {
        let span = span_of(&p);
        Ok(match p.as_rule() {
            Rule::queue => {
                let q = p.into_inner().find(|c| c.as_rule() == Rule::queue_ref);
                match q {
                    Some(q) => TaskEntry::Queue(self.queue_ref(q)?, span),
                    None => {
                        return Err(self.err(span, "`queue` needs a role".into(), "here", None));
                    }
                }
            }
            Rule::assignee => {
                let mut a = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::completed_by => {
                            let s = span_of(&c);
                            a = Some(Assignee::CompletedBy(first_ident(c, s)));
                        }
                        Rule::started_by => a = Some(Assignee::StartedBy),
                        Rule::expr => a = Some(Assignee::Expr(self.expr(c)?)),
                        _ => {}
                    }
                }
                match a {
                    Some(a) => TaskEntry::Assignee(a, span),
                    None => {
                        return Err(self.err(span, "`assignee` needs a rule".into(), "here", None));
                    }
                }
            }
            Rule::fields => TaskEntry::Fields(
                p.into_inner()
                    .filter(|c| c.as_rule() == Rule::field_spec)
                    .map(field_spec)
                    .collect(),
                span,
            ),
            Rule::deadline => TaskEntry::Deadline(self.deadline(p)?),
            Rule::on_enter => TaskEntry::OnEnter(self.last_action_block(p.into_inner())?, span),
            _ => {
                let mut key = None;
                let mut label = None;
                let mut requires = Vec::new();
                let mut next = None;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::ident => key = Some(ident(&c)),
                        Rule::string => label = Some(string(&c)),
                        Rule::requires => {
                            requires = c
                                .into_inner()
                                .filter(|x| x.as_rule() == Rule::ident)
                                .map(|x| ident(&x))
                                .collect()
                        }
                        Rule::goto => next = Some(goto(c, span)),
                        _ => {}
                    }
                }
                TaskEntry::Outcome(Outcome {
                    key: key.unwrap_or_else(|| missing(span)),
                    label,
                    next: next.unwrap_or_else(|| missing(span)),
                    requires,
                    span,
                })
            }
        })
    }

    fn deadline(&self, p: Pair<'_, Rule>) -> Result<Deadline> {
        let span = span_of(&p);
        let mut duration = None;
        let mut clock = None;
        let mut ladder = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::expr => duration = Some(self.expr(c)?),
                Rule::deadline_clock => clock = Some(first_ident(c, span)),
                Rule::escalation => ladder.push(self.escalation(c)?),
                _ => {}
            }
        }
        match duration {
            Some(duration) => Ok(Deadline {
                duration,
                clock,
                ladder,
                span,
            }),
            None => Err(self.err(span, "`deadline` needs a duration".into(), "here", None)),
        }
    }

    fn escalation(&self, p: Pair<'_, Rule>) -> Result<Escalation> {
        let span = span_of(&p);
        let mut when = EscalationWhen::AtDue;
        let mut level = 0;
        let mut actions = Vec::new();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::esc_when => {
                    if let Some(w) = c.into_inner().next() {
                        let rule = w.as_rule();
                        let expr = w.into_inner().find(|x| x.as_rule() == Rule::expr);
                        when = match (rule, expr) {
                            (Rule::esc_before, Some(e)) => EscalationWhen::Before(self.expr(e)?),
                            (Rule::esc_after, Some(e)) => EscalationWhen::After(self.expr(e)?),
                            _ => EscalationWhen::AtDue,
                        };
                    }
                }
                Rule::esc_level => {
                    if let Some(n) = c.into_inner().find(|x| x.as_rule() == Rule::integer) {
                        level = n.as_str().parse::<u32>().map_err(|_| {
                            self.err(
                                span_of(&n),
                                format!("level `{}` is too large", n.as_str()),
                                "too large",
                                Some("levels are small numbers: 1, 2, 3"),
                            )
                        })?;
                    }
                }
                Rule::action => actions.push(self.action(c)?),
                Rule::action_block => actions.extend(self.actions(c)?),
                _ => {}
            }
        }
        Ok(Escalation {
            when,
            level,
            actions,
            span,
        })
    }

    fn actions(&self, block: Pair<'_, Rule>) -> Result<Vec<Action>> {
        block
            .into_inner()
            .filter(|c| c.as_rule() == Rule::action)
            .map(|c| self.action(c))
            .collect()
    }

    fn action(&self, p: Pair<'_, Rule>) -> Result<Action> {
        let outer = span_of(&p);
        let Some(a) = p.into_inner().next() else {
            return Err(self.err(outer, "an action is missing".into(), "here", None));
        };
        let span = span_of(&a);
        let rule = a.as_rule();
        let kids: Vec<Pair<'_, Rule>> = a.into_inner().collect();
        Ok(match rule {
            Rule::set_action => Action::Assign {
                var: first_ident_among(&kids, span),
                value: self
                    .first_expr_among(&kids)?
                    .ok_or_else(|| self.err(span, "`set` needs a value".into(), "here", None))?,
                span,
            },
            Rule::notify_action => Action::Notify {
                target: self.notify_target(&kids, span)?,
                message: first_string_among(&kids),
                span,
            },
            Rule::ledger_action => Action::Ledger {
                entry: first_string_among(&kids),
                span,
            },
            Rule::issue_action => Action::Issue {
                document: first_ident_among(&kids, span),
                span,
            },
            Rule::clock_action => self.clock_action(&kids, span)?,
            _ => self.follow_up(kids, span)?,
        })
    }

    /// The first expression among `pairs`, built.
    fn first_expr_among(&self, pairs: &[Pair<'_, Rule>]) -> Result<Option<Expr>> {
        pairs
            .iter()
            .find(|x| x.as_rule() == Rule::expr)
            .map(|x| self.expr(x.clone()))
            .transpose()
    }

    /// Whom a `notify` addresses: the last target written, the subject by default.
    fn notify_target(&self, kids: &[Pair<'_, Rule>], span: Span) -> Result<NotifyTarget> {
        let mut target = NotifyTarget::Subject;
        for k in kids {
            if k.as_rule() == Rule::notify_target
                && let Some(t) = k.clone().into_inner().next()
            {
                target = match t.as_rule() {
                    Rule::kw_holder => NotifyTarget::Holder,
                    Rule::notify_channel => NotifyTarget::Channel(first_ident(t, span)),
                    Rule::notify_role => {
                        match t.into_inner().find(|x| x.as_rule() == Rule::queue_ref) {
                            Some(q) => NotifyTarget::Role(self.queue_ref(q)?),
                            None => NotifyTarget::Subject,
                        }
                    }
                    _ => NotifyTarget::Subject,
                };
            }
        }
        Ok(target)
    }

    /// `start`, `pause`, `resume`, `stop` or `extend` a clock.
    fn clock_action(&self, kids: &[Pair<'_, Rule>], span: Span) -> Result<Action> {
        let Some(op) = kids.first() else {
            return Err(self.err(span, "a clock action is missing".into(), "here", None));
        };
        let op_rule = op.as_rule();
        let parts: Vec<Pair<'_, Rule>> = op.clone().into_inner().collect();
        let clock = first_ident_among(&parts, span);
        let expr = self.first_expr_among(&parts)?;
        let op = match op_rule {
            Rule::clock_start => ClockOp::Start { duration: expr },
            Rule::clock_pause => ClockOp::Pause,
            Rule::clock_resume => ClockOp::Resume,
            Rule::clock_stop => ClockOp::Stop,
            _ => ClockOp::Extend {
                by: expr.ok_or_else(|| {
                    self.err(span, "`extend clock` needs a duration".into(), "here", None)
                })?,
                reason: first_string_among(&parts),
            },
        };
        Ok(Action::Clock { op, clock, span })
    }

    /// A follow-up task: an id, a label and the `queue` it goes to.
    fn follow_up(&self, kids: Vec<Pair<'_, Rule>>, span: Span) -> Result<Action> {
        let mut id = None;
        let mut label = None;
        let mut queue = None;
        for k in kids {
            match k.as_rule() {
                Rule::ident => id = Some(ident(&k)),
                Rule::string => label = Some(string(&k)),
                Rule::queue_ref => queue = Some(self.queue_ref(k)?),
                _ => {}
            }
        }
        let Some(queue) = queue else {
            return Err(self.err(
                span,
                "a follow-up task needs a `queue`".into(),
                "here",
                None,
            ));
        };
        Ok(Action::FollowUp {
            id: id.unwrap_or_else(|| missing(span)),
            label,
            queue,
            span,
        })
    }

    fn queue_ref(&self, p: Pair<'_, Rule>) -> Result<QueueRef> {
        let span = span_of(&p);
        let mut role = None;
        let mut key = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::ident => role = Some(ident(&c)),
                Rule::expr => key = Some(self.expr(c)?),
                _ => {}
            }
        }
        Ok(QueueRef {
            role: role.unwrap_or_else(|| missing(span)),
            key,
            span,
        })
    }

    /// Builds an expression. Literal errors (too large numbers) surface as diagnostics, and so
    /// does nesting deeper than [`MAX_DEPTH`] (`YM0008`).
    fn expr(&self, p: Pair<'_, Rule>) -> Result<Expr> {
        self.tree(p).map(|(e, _)| e)
    }

    /// An expression and its depth (a literal or a name is 1 deep; an operator, a field
    /// access, an index, a call or a list is one deeper than its deepest operand).
    ///
    /// Precedence climbing as pest's `PrattParser` does it (the table is [`affix`]), but with
    /// the pending operators on a heap stack instead of the call stack: a chain of thousands
    /// of `not`, `-`, `+`, `.a` or `[0]` would otherwise recurse once per term, here and in
    /// every later walk of the tree (checker, evaluation, formatter, serde). A node is
    /// refused as soon as it would be deeper than [`MAX_DEPTH`], so no deeper tree is ever
    /// built. Brackets recurse (`paren`, `call`, `list`, `index_access`); their nesting is
    /// bounded by [`MAX_NESTING`] before pest runs.
    fn tree(&self, p: Pair<'_, Rule>) -> Result<(Expr, usize)> {
        enum Pending<'i> {
            Prefix(Pair<'i, Rule>, u32),
            Infix((Expr, usize), Pair<'i, Rule>, u32),
        }
        let whole = span_of(&p);
        let mut pairs = p.into_inner().peekable();
        let mut stack: Vec<Pending<'_>> = Vec::new();
        let mut rbp = 0u32;
        'operand: loop {
            // An operand: prefix operators, then a primary.
            let Some(pair) = pairs.next() else {
                return Err(self.err(whole, "an operand is missing".into(), "here", None));
            };
            if let Some((Affix::Prefix, prec)) = affix(pair.as_rule()) {
                stack.push(Pending::Prefix(pair, rbp));
                rbp = prec - 1;
                continue 'operand;
            }
            let mut lhs = self.primary(pair)?;
            // What follows binds to it (a postfix, or an infix that opens the next operand),
            // or it completes the operand of the innermost pending operator.
            loop {
                match pairs.peek().and_then(|x| affix(x.as_rule())) {
                    Some((affix, prec)) if prec > rbp => {
                        let Some(op) = pairs.next() else {
                            continue;
                        };
                        if affix == Affix::Infix {
                            stack.push(Pending::Infix(lhs, op, rbp));
                            rbp = prec;
                            continue 'operand;
                        }
                        lhs = self.postfix(lhs, op)?;
                    }
                    _ => match stack.pop() {
                        None => return Ok(lhs),
                        Some(Pending::Prefix(op, outer)) => {
                            let at = span_of(&op);
                            let depth = deeper(self.file, at, lhs.1)?;
                            let unary = if op.as_rule() == Rule::op_not {
                                UnaryOp::Not
                            } else {
                                UnaryOp::Neg
                            };
                            let operand = lhs.0;
                            let span = Span::new(at.start, operand.span.end);
                            lhs = (
                                Expr {
                                    kind: ExprKind::Unary(unary, Box::new(operand)),
                                    span,
                                },
                                depth,
                            );
                            rbp = outer;
                        }
                        Some(Pending::Infix((left, left_depth), op, outer)) => {
                            let depth = deeper(self.file, span_of(&op), left_depth.max(lhs.1))?;
                            let right = lhs.0;
                            let span = Span::new(left.span.start, right.span.end);
                            lhs = (
                                Expr {
                                    kind: ExprKind::Binary(
                                        binary_op(op.as_rule()),
                                        Box::new(left),
                                        Box::new(right),
                                    ),
                                    span,
                                },
                                depth,
                            );
                            rbp = outer;
                        }
                    },
                }
            }
        }
    }

    /// `a.b` or `a[i]` applied to `lhs`.
    fn postfix(&self, lhs: (Expr, usize), op: Pair<'_, Rule>) -> Result<(Expr, usize)> {
        let (lhs, lhs_depth) = lhs;
        let at = span_of(&op);
        let span = Span::new(lhs.span.start, at.end);
        if op.as_rule() == Rule::field_access {
            let depth = deeper(self.file, at, lhs_depth)?;
            let name = op
                .into_inner()
                .find(|x| x.as_rule() == Rule::ident)
                .map(|x| x.as_str().to_string())
                .unwrap_or_default();
            let kind = ExprKind::Field(Box::new(lhs), name);
            return Ok((Expr { kind, span }, depth));
        }
        let Some(idx) = op.into_inner().find(|x| x.as_rule() == Rule::expr) else {
            return Err(self.err(span, "an index is missing".into(), "here", None));
        };
        let (idx, idx_depth) = self.tree(idx)?;
        let depth = deeper(self.file, at, lhs_depth.max(idx_depth))?;
        let kind = ExprKind::Index(Box::new(lhs), Box::new(idx));
        Ok((Expr { kind, span }, depth))
    }

    /// A primary and its depth (see [`Builder::tree`]).
    fn primary(&self, p: Pair<'_, Rule>) -> Result<(Expr, usize)> {
        let span = span_of(&p);
        let mut depth = 1;
        let kind = match p.as_rule() {
            Rule::expr => return self.tree(p),
            // The parentheses belong to the expression's span (so do enclosing operators).
            Rule::paren => {
                let inner = p.into_inner().find(|x| x.as_rule() == Rule::expr);
                let Some(inner) = inner else {
                    return Err(self.err(span, "an expression is missing".into(), "here", None));
                };
                let (mut e, depth) = self.tree(inner)?;
                e.span = span;
                return Ok((e, depth));
            }
            Rule::duration => {
                let mut amount = 0;
                let mut unit = DurationUnit::Days;
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::integer => amount = self.integer(&c)?,
                        Rule::duration_unit => {
                            unit = crate::duration::unit_from_word(c.as_str())
                                .unwrap_or(DurationUnit::Days)
                        }
                        _ => {}
                    }
                }
                ExprKind::Duration { amount, unit }
            }
            Rule::decimal => ExprKind::Decimal(p.as_str().to_string()),
            Rule::integer => ExprKind::Integer(self.integer(&p)?),
            Rule::string => ExprKind::Text(string(&p)),
            Rule::date_lit => ExprKind::Date(
                p.into_inner()
                    .find(|x| x.as_rule() == Rule::string)
                    .map(|x| string(&x))
                    .unwrap_or_default(),
            ),
            Rule::boolean => ExprKind::Boolean(p.as_str() == "true"),
            Rule::config_ref => ExprKind::Config(
                p.into_inner()
                    .find(|x| x.as_rule() == Rule::ident)
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
            ),
            Rule::call => {
                let mut name = String::new();
                let mut args = Vec::new();
                for c in p.into_inner() {
                    match c.as_rule() {
                        Rule::ident => name = c.as_str().to_string(),
                        Rule::expr => {
                            let (arg, d) = self.tree(c)?;
                            depth = depth.max(d + 1);
                            args.push(arg);
                        }
                        _ => {}
                    }
                }
                ExprKind::Call(name, args)
            }
            Rule::list => {
                let mut items = Vec::new();
                for x in p.into_inner().filter(|x| x.as_rule() == Rule::expr) {
                    let (item, d) = self.tree(x)?;
                    depth = depth.max(d + 1);
                    items.push(item);
                }
                ExprKind::List(items)
            }
            _ => ExprKind::Name(p.as_str().trim().to_string()),
        };
        if depth > MAX_DEPTH {
            return Err(too_deep(self.file, span));
        }
        Ok((Expr { kind, span }, depth))
    }

    fn integer(&self, p: &Pair<'_, Rule>) -> Result<i64> {
        p.as_str().parse::<i64>().map_err(|_| {
            self.err(
                span_of(p),
                format!("the number `{}` is too large", p.as_str()),
                "too large",
                Some("whole numbers must stay below 9223372036854775808"),
            )
        })
    }
}

fn missing(span: Span) -> Ident {
    Ident {
        name: String::new(),
        span,
    }
}

fn ident(p: &Pair<'_, Rule>) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span_of(p),
    }
}

fn first_ident(p: Pair<'_, Rule>, fallback: Span) -> Ident {
    p.into_inner()
        .find(|c| c.as_rule() == Rule::ident)
        .map(|c| ident(&c))
        .unwrap_or_else(|| missing(fallback))
}

fn goto(p: Pair<'_, Rule>, fallback: Span) -> Ident {
    first_ident(p, fallback)
}

/// The first identifier among `pairs`, or an empty one at `fallback`.
fn first_ident_among(pairs: &[Pair<'_, Rule>], fallback: Span) -> Ident {
    pairs
        .iter()
        .find(|x| x.as_rule() == Rule::ident)
        .map(ident)
        .unwrap_or_else(|| missing(fallback))
}

/// The first string among `pairs`, or an empty one.
fn first_string_among(pairs: &[Pair<'_, Rule>]) -> String {
    pairs
        .iter()
        .find(|x| x.as_rule() == Rule::string)
        .map(string)
        .unwrap_or_default()
}

fn field_spec(p: Pair<'_, Rule>) -> FieldSpec {
    let span = span_of(&p);
    let mut required = false;
    let mut var = missing(span);
    for c in p.into_inner() {
        match c.as_rule() {
            Rule::kw_required => required = true,
            Rule::ident => var = ident(&c),
            _ => {}
        }
    }
    FieldSpec {
        var,
        required,
        span,
    }
}

fn role_decl(p: Pair<'_, Rule>) -> RoleDecl {
    let span = span_of(&p);
    let mut r = RoleDecl {
        name: missing(span),
        label: None,
        scope: None,
        keyed_by: None,
        oversees: false,
        informs_subject: false,
        reassigns: Vec::new(),
        span,
    };
    for c in p.into_inner() {
        match c.as_rule() {
            Rule::ident => r.name = ident(&c),
            Rule::role_key => r.keyed_by = Some(first_ident(c, span)),
            Rule::string => r.label = Some(string(&c)),
            Rule::role_scope => r.scope = Some(first_ident(c, span)),
            Rule::kw_oversees => r.oversees = true,
            Rule::role_informs => r.informs_subject = true,
            Rule::role_reassigns => {
                r.reassigns = c
                    .into_inner()
                    .filter(|i| i.as_rule() == Rule::ident)
                    .map(|i| ident(&i))
                    .collect();
            }
            _ => {}
        }
    }
    r
}

fn channel_decl(p: Pair<'_, Rule>) -> ChannelDecl {
    let span = span_of(&p);
    let mut idents = Vec::new();
    let mut label = None;
    for c in p.into_inner() {
        match c.as_rule() {
            Rule::ident => idents.push(ident(&c)),
            Rule::string => label = Some(string(&c)),
            _ => {}
        }
    }
    let mut idents = idents.into_iter();
    ChannelDecl {
        name: idents.next().unwrap_or_else(|| missing(span)),
        label,
        url_config: idents.next().unwrap_or_else(|| missing(span)),
        span,
    }
}

fn document_decl(p: Pair<'_, Rule>) -> DocumentDecl {
    let span = span_of(&p);
    let mut d = DocumentDecl {
        name: missing(span),
        label: None,
        template: String::new(),
        public: false,
        span,
    };
    let mut strings = Vec::new();
    for c in p.into_inner() {
        match c.as_rule() {
            Rule::ident => d.name = ident(&c),
            Rule::string => strings.push(string(&c)),
            Rule::kw_public => d.public = true,
            _ => {}
        }
    }
    // The template path is the last text; a label, if any, comes before it.
    d.template = strings.pop().unwrap_or_default();
    d.label = strings.pop();
    d
}

/// The value of a string literal, escapes resolved (`\"`, `\\`, `\n`, `\t`).
fn string(p: &Pair<'_, Rule>) -> String {
    let raw = p.as_str();
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    unescape(inner)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
