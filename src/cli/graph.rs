//! `yimen graph FILE --format dot|mermaid`: the flowchart of a checked process.

use anyhow::Context as _;
use std::path::PathBuf;
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
    /// Folder of working-day calendars; default: the nearest `calendars/` (as `yimen check`).
    #[arg(long)]
    pub calendars: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Same loading and calendars as `yimen check`, so what checks also draws.
    let options = super::check::options_for(&args.file, args.calendars.as_deref());
    let (source, compiled) = super::check::compile_path(&args.file, &options)?;
    let name = args.file.display().to_string();
    let Some(process) = compiled.process else {
        let text = render_all(&compiled.diagnostics, &|file| {
            if file == name {
                Some(source.clone())
            } else {
                std::fs::read_to_string(file).ok()
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
