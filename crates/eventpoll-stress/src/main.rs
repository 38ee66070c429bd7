//! `eventpoll-stress`: run the engine stress test (see the library documentation) and exit
//! non-zero on any invariant violation.

use clap::Parser;
use eventpoll_stress::{run, Config};
use std::time::Duration;

/// Many threads doing random epoll_ctl/epoll_wait/read/write/close on shared eventpoll
/// instances, with the invariants of epoll checked throughout.
#[derive(Parser, Debug)]
#[command(name = "eventpoll-stress", version)]
struct Args {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Worker threads (producers, consumers and controllers, 3:3:2; at least 3).
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Seed of the random operation mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Channels (half eventfds, half pipes).
    #[arg(long, default_value_t = 32)]
    channels: usize,
    /// Milliseconds between checkpoints (all threads paused, lost and spurious events checked).
    #[arg(long, default_value_t = 50)]
    checkpoint_ms: u64,
    /// Producers and controllers sleep a random 0..=PACE_US microseconds after each
    /// operation (0: flat out; a lost wakeup is then usually hidden by the next write).
    #[arg(long, default_value_t = 200)]
    pace_us: u64,
}

fn main() {
    let args = Args::parse();
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        eprintln!("eventpoll-stress: --seconds must be a non-negative number");
        std::process::exit(2);
    }
    let report = run(Config {
        duration: Duration::from_secs_f64(args.seconds),
        threads: args.threads,
        seed: args.seed,
        channels: args.channels.clamp(2, 0xFFFE),
        checkpoint: Duration::from_millis(args.checkpoint_ms.max(1)),
        pace: Duration::from_micros(args.pace_us),
    });
    print!("{}", report.summary());
    if report.violations > 0 {
        std::process::exit(1);
    }
}
