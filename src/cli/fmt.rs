//! `yimen fmt FILE... [--check]`: rewrite process files in the canonical layout, or with
//! `--check` only name the files that are not (exit 1), for CI.

use std::path::PathBuf;
use std::process::ExitCode;
use yimen_dsl::diagnostic;

#[derive(clap::Args)]
pub struct Args {
    /// Process files (`*.flow`) to format in place.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Change nothing; list the files that are not formatted and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut unformatted = Vec::new();
    for path in &args.files {
        let file = path.display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read `{file}`: {e}");
                failed = true;
                continue;
            }
        };
        let formatted = match yimen_dsl::fmt::format_source(&file, &source) {
            Ok(f) => f,
            Err(d) => {
                eprint!("{}", diagnostic::render(&d, &source));
                eprintln!("`{file}` was not formatted: fix the syntax error first");
                failed = true;
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if args.check {
            println!("not formatted: {file}");
            unformatted.push(file);
        } else {
            std::fs::write(path, formatted)
                .map_err(|e| anyhow::anyhow!("cannot write `{file}`: {e}"))?;
            println!("formatted: {file}");
        }
    }
    if !unformatted.is_empty() {
        eprintln!(
            "{} file(s) not formatted; run `yimen fmt {}`",
            unformatted.len(),
            unformatted.join(" ")
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
