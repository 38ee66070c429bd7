//! The `eventpoll` command: `bench` runs the scalability benchmark (the project's main job;
//! `bench micro` and `bench contention` the single-operation and multi-producer ones),
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
    /// The benchmarks: the pipetest (select, poll, the kernel's epoll and eventpoll); `bench
    /// micro`, single operations; `bench contention`, many threads signalling eventfds watched
    /// by one instance while others harvest them (e.g. `eventpoll bench contention --threads
    /// 1,2,4,8`).
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
