//! `eventpoll bench` (placeholder: the benchmark work fills this in).
#![allow(missing_docs)]
use std::process::ExitCode;

/// `eventpoll bench` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A short run for CI.
    #[arg(long)]
    pub quick: bool,
}

/// Run `eventpoll bench`.
pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("eventpoll bench: not implemented yet");
    ExitCode::from(2)
}
