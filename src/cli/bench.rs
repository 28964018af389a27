use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Pending-timer backlog: start time and firing rate (see `bench_timers.rs`).
    Timers(super::bench_timers::Args),
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Timers(args) => super::bench_timers::run(args),
    }
}
