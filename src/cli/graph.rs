//! `yimen graph FILE --format dot|mermaid`: the flowchart of a checked process.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use yimen_dsl::diagnostic::render_all;
use yimen_dsl::graph::{Format, render};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart (Markdown, GitLab, GitHub).
    Mermaid,
}

#[derive(clap::Args)]
pub struct Args {
    /// The process file (`*.flow`).
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let name = args.file.display().to_string();
    let load = |rel: &str| std::fs::read_to_string(dir.join(rel)).ok();
    let compiled = yimen_dsl::compile(&name, &source, &load);
    let Some(process) = compiled.process else {
        let text = render_all(&compiled.diagnostics, &|file| {
            if file == name {
                Some(source.clone())
            } else {
                load(file)
            }
        });
        eprint!("{text}");
        eprintln!("{name}: fix the errors above, then draw it again");
        return Ok(ExitCode::from(1));
    };
    let format = match args.format {
        GraphFormat::Dot => Format::Dot,
        GraphFormat::Mermaid => Format::Mermaid,
    };
    let text = render(&process, format);
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
