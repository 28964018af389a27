//! The yimen process language: grammar → AST (with spans) → lowered [`model`] → checker.
//! The engine executes only models this crate has checked.
//!
//! Entry points: [`parse`] (text → [`ast::File`], first syntax error), [`lower`]
//! (AST → [`model::Process`]), [`fmt::format`] (canonical layout), [`config::load`] (YAML) and
//! [`compile`], which runs every stage and returns the checked model or every diagnostic.

pub mod ast;
pub mod channel;
pub mod check;
pub mod config;
pub mod diagnostic;
pub mod duration;
pub mod eval;
pub mod fmt;
pub mod graph;
pub mod lower;
pub mod model;
pub mod parser;
pub mod pii;
pub mod value;

use diagnostic::{Diagnostic, Severity};
use model::{Process, Span};
use std::collections::BTreeMap;

pub use lower::lower;
pub use parser::parse;

/// Code of a file the process names (configuration, import, template) that cannot be read.
pub const MISSING_FILE: &str = "YM0004";
/// Code of an imported process that does not parse or lower.
pub const BAD_IMPORT: &str = "YM0005";
/// Code of a document template that is not valid minijinja.
pub const BAD_TEMPLATE: &str = "YM0006";
/// Code of a template that uses a name the process does not declare (warning).
pub const TEMPLATE_NAME: &str = "YM0007";
/// Names a template may use besides the process variables and node ids (whose results the
/// engine provides): today's date, the current time, the configuration, the process title and
/// all variables as one map.
pub const TEMPLATE_GLOBALS: &[&str] = &["today", "now", "config", "process", "vars"];

/// The result of [`compile`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The checked model; `Some` only when no diagnostic is an error.
    pub process: Option<Process>,
    /// The configuration the process declares, when it was found and is valid YAML.
    pub config: Option<config::ConfigFile>,
    /// Every problem found, errors and warnings, in the order the stages found them.
    pub diagnostics: Vec<Diagnostic>,
    /// The imported processes that parsed and lowered (for the engine to deploy with it).
    pub imports: Vec<Process>,
    /// Document templates by the path the process names, as loaded.
    pub templates: BTreeMap<String, String>,
}

impl Compiled {
    /// True when some diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Parses, lowers and checks a process file. `load` returns the text of a file named
/// relative to the process file (its YAML configuration, its templates and `<key>.flow` for
/// each `import key`), or `None` when there is no such file.
pub fn compile(file: &str, source: &str, load: &dyn Fn(&str) -> Option<String>) -> Compiled {
    compile_with(file, source, load, &check::Options::default())
}

/// [`compile`] with explicit checker [`check::Options`] (e.g. the calendars that exist).
pub fn compile_with(
    file: &str,
    source: &str,
    load: &dyn Fn(&str) -> Option<String>,
    options: &check::Options,
) -> Compiled {
    let mut out = Compiled {
        process: None,
        config: None,
        diagnostics: Vec::new(),
        imports: Vec::new(),
        templates: BTreeMap::new(),
    };
    let ast = match parse(file, source) {
        Ok(ast) => ast,
        Err(d) => {
            out.diagnostics.push(d);
            return out;
        }
    };
    let (process, diags) = lower(file, &ast);
    out.diagnostics.extend(diags);
    let missing = |span: Span, what: &str, path: &str| Diagnostic {
        code: MISSING_FILE,
        severity: Severity::Error,
        message: format!("{what} `{path}` cannot be read"),
        file: file.to_string(),
        span,
        label: "file not found".to_string(),
        help: Some(format!(
            "create `{path}` next to `{file}`, or correct the path (paths are relative to the process file)"
        )),
    };

    if let Some(decl) = &process.config {
        match load(&decl.file) {
            None => out
                .diagnostics
                .push(missing(decl.span, "the configuration file", &decl.file)),
            Some(text) => match config::load(&decl.file, &text) {
                Ok(c) => out.config = Some(c),
                Err(d) => out.diagnostics.push(d),
            },
        }
    }

    let broken_imports = load_imports(file, &process, load, &mut out);
    load_templates(file, &process, load, &mut out, &missing);

    // The checker leaves `file` empty for diagnostics about the process file itself.
    out.diagnostics.extend(
        check::check_with(&process, out.config.as_ref(), &out.imports, options)
            .into_iter()
            // "not found" would mislead for an import that exists but has errors.
            .filter(|d| {
                !(d.code == check::UNKNOWN_PROCESS
                    && broken_imports
                        .iter()
                        .any(|name| d.message.contains(name.as_str())))
            })
            .map(|mut d| {
                if d.file.is_empty() {
                    d.file = file.to_string();
                }
                d
            }),
    );
    if !out.has_errors() {
        out.process = Some(process);
    }
    out
}

/// Loads the processes `process` imports into `out.imports`; an import with errors is one
/// diagnostic here, and its name (as `` `name` ``) is returned. A missing import is reported by
/// the checker (it cannot find the process either).
fn load_imports(
    file: &str,
    process: &model::Process,
    load: &dyn Fn(&str) -> Option<String>,
    out: &mut Compiled,
) -> Vec<String> {
    let mut broken_imports = Vec::new();
    for import in &process.imports {
        let path = format!("{}.flow", import.name);
        let Some(text) = load(&path) else {
            continue;
        };
        let first_error = match parse(&path, &text) {
            Err(d) => Some(d),
            Ok(a) => {
                let (p, d) = lower(&path, &a);
                let first = d.into_iter().find(|d| d.severity == Severity::Error);
                if first.is_some() {
                    first
                } else if p.key.name != import.name {
                    Some(Diagnostic {
                        code: BAD_IMPORT,
                        severity: Severity::Error,
                        message: format!("its header names the process `{}`", p.key.name),
                        file: path.clone(),
                        span: p.key.span,
                        label: String::new(),
                        help: None,
                    })
                } else {
                    out.imports.push(p);
                    None
                }
            }
        };
        if let Some(d) = first_error {
            broken_imports.push(format!("`{}`", import.name));
            out.diagnostics.push(Diagnostic {
                code: BAD_IMPORT,
                severity: Severity::Error,
                message: format!("the imported process `{path}` has errors: {}", d.message),
                file: file.to_string(),
                span: import.span,
                label: "this import".to_string(),
                help: Some(format!("run `yimen check {path}` and fix it first")),
            });
        }
    }

    broken_imports
}

/// Loads and checks each document template once, into `out.templates`.
fn load_templates(
    file: &str,
    process: &model::Process,
    load: &dyn Fn(&str) -> Option<String>,
    out: &mut Compiled,
    missing: &dyn Fn(Span, &str, &str) -> Diagnostic,
) {
    for doc in &process.documents {
        if out.templates.contains_key(&doc.template) {
            continue;
        }
        match load(&doc.template) {
            Some(text) => {
                out.diagnostics
                    .extend(check_template(file, doc, &text, process));
                out.templates.insert(doc.template.clone(), text);
            }
            None => out
                .diagnostics
                .push(missing(doc.span, "the template", &doc.template)),
        }
    }
}

/// Compiles a document template with minijinja: a syntax error is an error at its line in the
/// template; a name that is neither a process variable, a node id nor a [`TEMPLATE_GLOBALS`]
/// entry is a warning at the `document` line (it would render empty).
fn check_template(
    file: &str,
    doc: &model::DocumentDecl,
    text: &str,
    process: &Process,
) -> Vec<Diagnostic> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    let template = match env.template_from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let span = e
                .range()
                .map_or(Span::new(0, 0), |r| Span::new(r.start, r.end));
            return vec![Diagnostic {
                code: BAD_TEMPLATE,
                severity: Severity::Error,
                message: format!(
                    "template `{}` is not valid: {}",
                    doc.template,
                    e.detail().unwrap_or("syntax error")
                ),
                file: doc.template.clone(),
                span,
                label: "template error here".to_string(),
                help: Some(
                    "templates use minijinja syntax: `{{ name }}`, `{% if x %}...{% endif %}`"
                        .to_string(),
                ),
            }];
        }
    };
    let mut unknown: Vec<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| {
            !TEMPLATE_GLOBALS.contains(&name.as_str())
                && !process.vars.iter().any(|v| &v.name.name == name)
                && !process.nodes.iter().any(|n| &n.id.name == name)
        })
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| Diagnostic {
            code: TEMPLATE_NAME,
            severity: Severity::Warning,
            message: format!(
                "template `{}` uses `{name}`, which is not a variable of the process",
                doc.template
            ),
            file: file.to_string(),
            span: doc.span,
            label: "this document".to_string(),
            help: Some(format!(
                "declare `var {name}: ...` or correct the name in `{}`",
                doc.template
            )),
        })
        .collect()
}
