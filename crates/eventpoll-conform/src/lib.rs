//! Conformance runner (placeholder: the conformance work fills this in).
#![allow(missing_docs)]
use std::process::ExitCode;

/// `eventpoll conform` arguments.
#[derive(clap::Args, Debug)]
pub struct ConformArgs {
    /// Scenario files or directories.
    pub paths: Vec<std::path::PathBuf>,
}

/// Run `eventpoll conform`.
pub fn run(_args: ConformArgs) -> ExitCode {
    eprintln!("eventpoll conform: not implemented yet");
    ExitCode::from(2)
}
