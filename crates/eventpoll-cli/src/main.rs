//! The `eventpoll` command: `bench` runs the scalability benchmark (the project's main job),
//! `conform` runs conformance scenarios against the kernel and the engine, `check` runs a
//! program under the epoll run-time checker.

mod check;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "eventpoll",
    version,
    about = "Linux's epoll, implemented in Rust: benchmark, conformance and a run-time checker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The pipetest scalability benchmark: select, poll, the kernel's epoll and eventpoll.
    Bench(eventpoll_bench::BenchArgs),
    /// Run .ep conformance scenarios against the kernel and the engine and compare.
    Conform(eventpoll_conform::ConformArgs),
    /// Run a program with libeventpoll.so preloaded and its epoll checker on: ghost items and
    /// events, undrained edges, unarmed one-shots, herds, edge-triggered blocking descriptors.
    Check(check::CheckArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Bench(args) => eventpoll_bench::run(args),
        Command::Conform(args) => eventpoll_conform::run(args),
        Command::Check(args) => check::run(args),
    }
}
