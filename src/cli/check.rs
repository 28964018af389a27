//! `yimen check FILE... [--deny-warnings]`: parse, lower and check process files with their
//! configuration, templates and imports; print every diagnostic with its source line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use yimen_dsl::diagnostic::{self, Diagnostic, Severity};

#[derive(clap::Args)]
pub struct Args {
    /// Process files (`*.flow`) to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Folder of working-day calendars (`<name>.yaml`); default: the nearest `calendars/`
    /// above the process file or the current folder, else the built-in names.
    #[arg(long)]
    pub calendars: Option<PathBuf>,
}

/// Calendar names (file stems of `*.yaml`) in `dir`, if it holds any.
fn calendar_names(dir: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    names.sort();
    (!names.is_empty()).then_some(names)
}

/// The checker options for a process file: calendars from `--calendars`, else from the
/// nearest `calendars/` folder above the file or the current folder, and the calendars built
/// into the binary.
pub fn options_for(path: &Path, calendars: Option<&Path>) -> yimen_dsl::check::Options {
    let found = match calendars {
        Some(dir) => calendar_names(dir),
        None => {
            let start = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            start
                .ancestors()
                .skip(1)
                .chain(std::env::current_dir().ok().as_deref())
                .find_map(|d| calendar_names(&d.join("calendars")))
        }
    };
    // As `yimen serve` loads them: the folder's calendars and the ones built into the binary.
    let mut calendars = found.unwrap_or_default();
    for name in super::builtin::calendar_names() {
        if !calendars.iter().any(|c| c == name) {
            calendars.push(name.to_string());
        }
    }
    calendars.sort();
    yimen_dsl::check::Options {
        calendars,
        calendars_from: None,
    }
}

/// Reads a file named by a process relative to the process file's folder.
pub fn loader(dir: &Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| std::fs::read_to_string(dir.join(name)).ok()
}

/// Compiles one process file from disk. Diagnostics about neighbouring files (its YAML
/// configuration) name them by their path, so that they can be opened and rendered.
pub fn compile_path(
    path: &Path,
    options: &yimen_dsl::check::Options,
) -> anyhow::Result<(String, yimen_dsl::Compiled)> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", path.display()))?;
    let file = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut compiled = yimen_dsl::compile_with(&file, &source, &loader(dir), options);
    for d in &mut compiled.diagnostics {
        if d.file != file && !d.file.is_empty() {
            d.file = dir.join(&d.file).display().to_string();
        }
    }
    Ok((source, compiled))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let mut failed_files = 0usize;
    for path in &args.files {
        let options = options_for(path, args.calendars.as_deref());
        let (source, compiled) = match compile_path(path, &options) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e:#}");
                errors += 1;
                failed_files += 1;
                continue;
            }
        };
        let file = path.display().to_string();
        let diags: &[Diagnostic] = &compiled.diagnostics;
        if !diags.is_empty() {
            let sources = |name: &str| {
                if name == file {
                    Some(source.clone())
                } else {
                    std::fs::read_to_string(name).ok()
                }
            };
            eprint!("{}", diagnostic::render_all(diags, &sources));
            eprintln!();
        }
        let e = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let w = diags.len() - e;
        errors += e;
        warnings += w;
        if e > 0 || (args.deny_warnings && w > 0) {
            failed_files += 1;
        } else {
            println!("ok: {file}");
        }
    }
    if errors > 0 || warnings > 0 {
        eprintln!(
            "{} file(s) checked: {errors} error(s), {warnings} warning(s){}",
            args.files.len(),
            if args.deny_warnings && warnings > 0 {
                " (warnings denied)"
            } else {
                ""
            }
        );
    }
    Ok(if failed_files > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
