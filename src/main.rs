//! `yimen`: check, format and draw process files; run the engine; talk to a running server.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// Rust's allocations go to mimalloc, as SQLite's do (`store::sqlite`): the committer allocates
/// and frees many small buffers per event, and the C library's malloc took a sixth of its CPU
/// (`docs/performance.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "yimen",
    version,
    about = "一门 yimen: a workflow engine for processes written in the yimen process language"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check process files: syntax, references, types, flow soundness.
    Check(cli::check::Args),
    /// Format process files in the one canonical layout.
    Fmt(cli::fmt::Args),
    /// Draw a process as a flowchart (Graphviz DOT or Mermaid).
    Graph(cli::graph::Args),
    /// Working-day calendar: list days, compute due dates, validate calendar files.
    #[command(subcommand)]
    Calendar(cli::calendar::Command),
    /// Run the engine, its timers and the HTTP API.
    Serve(Box<cli::serve::Args>),
    /// Talk to a running server (deploy, start, tasks, instance, token ...).
    #[command(flatten)]
    Client(cli::client::Command),
    /// People's accounts: add, list, disable, enable, reset-password, roles (admin only).
    #[command(subcommand)]
    User(cli::user::Command),
    /// A first responder away: hand their cases to a stand-in, list and end such handovers.
    #[command(flatten)]
    Reassign(cli::reassign::Command),
    /// The electronic ledger (台账): verify its hash chain, export it.
    #[command(subcommand)]
    Ledger(cli::ledger::Command),
    /// Run one complete case on a throw-away database and print its timeline.
    Demo(cli::demo::Args),
    /// Run a command for every task of a queue (task JSON on stdin, result JSON on stdout).
    Worker(cli::worker::Args),
    /// Measure throughput and latency; prints figures.
    #[command(subcommand)]
    Bench(cli::bench::Command),
    /// Print a shell completion script: `yimen completions bash > /etc/bash_completion.d/yimen`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `yimen man | man -l -`, or `yimen man serve`.
    Man {
        /// A command's own page (`serve`, `check` …); yimen's without one.
        command: Option<String>,
    },
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `serve`'s defaults from its config file (`yimen.toml`), before clap reads the rest.
    let command = match cli::config::apply(Cli::command(), &args) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&command.get_matches_from(&args)) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let result = match cli.command {
        Command::Check(args) => cli::check::run(args),
        Command::Fmt(args) => cli::fmt::run(args),
        Command::Graph(args) => cli::graph::run(args),
        Command::Calendar(cmd) => cli::calendar::run(cmd),
        Command::Serve(args) => cli::serve::run(*args),
        Command::Client(cmd) => cli::client::run(cmd),
        Command::User(cmd) => cli::user::run(cmd),
        Command::Reassign(cmd) => cli::reassign::run(cmd),
        Command::Ledger(cmd) => cli::ledger::run(cmd),
        Command::Demo(args) => cli::demo::run(args),
        Command::Worker(args) => cli::worker::run(args),
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "yimen", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { command } => man(command.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The manual page of yimen, or of one of its commands, in roff on stdout.
fn man(command: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut yimen = Cli::command();
    yimen.build();
    let page = match command {
        None => yimen,
        Some(name) => {
            let Some(sub) = yimen.find_subcommand(name) else {
                let names: Vec<&str> = yimen.get_subcommands().map(|c| c.get_name()).collect();
                anyhow::bail!("no command `{name}`: give one of {}", names.join(", "));
            };
            // Built under yimen, it is named `yimen-serve`, as pages of subcommands are.
            sub.clone().version(env!("CARGO_PKG_VERSION"))
        }
    };
    match clap_mangen::Man::new(page).render(&mut std::io::stdout()) {
        // `yimen man | head`: the reader stopped reading.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
    }
}
