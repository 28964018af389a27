//! The yimen process language: grammar → AST (with spans) → lowered [`model`] → checker.
//! The engine executes only models this crate has checked.
//!
//! Entry points: [`parse`] (text → [`ast::File`], first syntax error), [`lower`]
//! (AST → [`model::Process`]), [`fmt::format`] (canonical layout), [`config::load`] (YAML) and
//! [`compile`], which runs every stage and returns the checked model or every diagnostic.

pub mod check;
pub mod config;
pub mod graph;
pub mod diagnostic;
pub mod model;
pub mod pii;
pub mod ast;
pub mod duration;
pub mod fmt;
pub mod lower;
pub mod parser;

use diagnostic::{Diagnostic, Severity};
use model::{Process, Span};
use std::collections::BTreeMap;

pub use lower::lower;
pub use parser::parse;

/// Code of a file the process names (configuration, import, template) that cannot be read.
pub const MISSING_FILE: &str = "YM0004";
/// Code of an imported process that does not parse or lower.
pub const BAD_IMPORT: &str = "YM0005";

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

    for import in &process.imports {
        let path = format!("{}.flow", import.name);
        let Some(text) = load(&path) else {
            out.diagnostics
                .push(missing(import.span, "the imported process", &path));
            continue;
        };
        let first_error = match parse(&path, &text) {
            Err(d) => Some(d),
            Ok(a) => {
                let (p, d) = lower(&path, &a);
                let first = d.into_iter().find(|d| d.severity == Severity::Error);
                if first.is_none() {
                    out.imports.push(p);
                }
                first
            }
        };
        if let Some(d) = first_error {
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

    for doc in &process.documents {
        if out.templates.contains_key(&doc.template) {
            continue;
        }
        match load(&doc.template) {
            Some(text) => {
                out.templates.insert(doc.template.clone(), text);
            }
            None => out
                .diagnostics
                .push(missing(doc.span, "the template", &doc.template)),
        }
    }

    // The checker leaves `file` empty for diagnostics about the process file itself.
    out.diagnostics.extend(
        check::check(&process, out.config.as_ref(), &out.imports)
            .into_iter()
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
