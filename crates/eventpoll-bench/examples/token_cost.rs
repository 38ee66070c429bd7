//! What one token of the in-process pipetest costs, for `scripts/cache-misses.sh`.
//!
//! Two modes, both on the engine's in-process pipes (no system call on the token path, so
//! valgrind's cachegrind can run it):
//!
//! - `rounds`: build the pipetest rig (N pipes, 16 tokens, seed 42), run `--warmup` rounds
//!   (default: N/2 and at least 2,000, so that every pipe has carried tokens — about 8 each
//!   — and holds its steady-state allocations), then `--rounds` measured rounds, and print one `key=value` line: the tokens passed by
//!   the measured rounds, their wall time per token, and the heap the rig holds. Run under
//!   cachegrind twice — with `--rounds R` and with `--rounds 0` — the difference of the two
//!   runs' counts divided by `tokens` is the cost per token of the measured rounds alone
//!   (setup and warm-up cancel: the runs are deterministic up to the measured rounds).
//! - `chase`: the latency of one *dependent* cache miss over a working set as large as the
//!   rig's heap at `--pipes N`: a random cyclic walk over that many bytes, one 64-byte line
//!   per step, each load's address taken from the previous load (so misses cannot overlap),
//!   and the same walk over 16 KiB (L1-resident) for the hit cost. Printed in ns per step.
//!   With `--bytes B` the walk covers B bytes instead (no rig is built): a B that fits the
//!   L3 but not the L2 gives the cost of a miss the L3 answers.
//!
//! ```text
//! cargo run --release -p eventpoll-bench --example token_cost -- rounds --pipes 10000 --rounds 20000
//! cargo run --release -p eventpoll-bench --example token_cost -- chase --pipes 100000
//! ```

use eventpoll_bench::engine::rig;
use eventpoll_bench::pipetest::{run_rounds, start, Rng};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Tokens in flight (the benchmark's default K) and the generator's seed.
const TOKENS: usize = 16;
const SEED: u64 = 42;
/// Bytes per step of the chase: one cache line.
const LINE: usize = 64;

struct Args {
    mode: String,
    pipes: usize,
    rounds: u64,
    warmup: Option<u64>,
    edge: bool,
    steps: u64,
    /// `chase` over this many bytes instead of the rig's heap.
    bytes: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or(
        "usage: token_cost rounds|chase --pipes N [--rounds R] [--warmup W] [--et] [--steps S] [--bytes B]",
    )?;
    let mut a = Args {
        mode,
        pipes: 1000,
        rounds: 20_000,
        warmup: None,
        edge: false,
        steps: 20_000_000,
        bytes: None,
    };
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next()
                .ok_or(format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}"))
        };
        match flag.as_str() {
            "--pipes" => a.pipes = value("--pipes")? as usize,
            "--rounds" => a.rounds = value("--rounds")?,
            "--warmup" => a.warmup = Some(value("--warmup")?),
            "--steps" => a.steps = value("--steps")?,
            "--bytes" => a.bytes = Some(value("--bytes")?),
            "--et" => a.edge = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.pipes == 0 {
        return Err("--pipes must be at least 1".into());
    }
    Ok(a)
}

/// Build the rig, warm it up, run the measured rounds; print tokens, ns/token and heap.
fn rounds(a: &Args) -> Result<(), String> {
    let (rig, heap) = eventpoll_bench::alloc::measure(|| rig(a.pipes, a.edge));
    let mut rig = rig?;
    let mut tokens = start(&mut rig, TOKENS, SEED)?;
    let far = Instant::now() + Duration::from_secs(3600);
    let warmup = a.warmup.unwrap_or((a.pipes as u64 / 2).max(2_000));
    run_rounds(&mut rig, &mut tokens, far, warmup)?;
    let stats = if a.rounds > 0 {
        run_rounds(&mut rig, &mut tokens, far, a.rounds)?
    } else {
        Default::default()
    };
    let ns = stats.elapsed.as_nanos() as f64 / stats.tokens.max(1) as f64;
    println!(
        "pipes={} edge={} rounds={} tokens={} ns_per_token={:.1} heap_bytes={}",
        a.pipes, a.edge, stats.waits, stats.tokens, ns, heap
    );
    Ok(())
}

/// Nanoseconds per step of a dependent random walk over `bytes` bytes (whole lines).
fn chase_ns(bytes: usize, steps: u64) -> f64 {
    let lines = (bytes / LINE).max(2);
    let words = LINE / core::mem::size_of::<usize>();
    // A single cycle through every line in random order (Sattolo's algorithm), stored as
    // "next line" in the first word of each line.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut rng = Rng::new(SEED);
    for i in (1..lines).rev() {
        let j = (rng.next_u64() % i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0usize; lines * words];
    for k in 0..lines {
        next[order[k] * words] = order[(k + 1) % lines];
    }
    let mut at = 0usize;
    // One lap to fault the pages in and fill the TLB/caches as far as they go.
    for _ in 0..lines {
        at = next[at * words];
    }
    let t0 = Instant::now();
    for _ in 0..steps {
        at = black_box(next[at * words]);
    }
    let elapsed = t0.elapsed();
    black_box(at);
    elapsed.as_nanos() as f64 / steps as f64
}

/// The rig's heap at `--pipes N`, then the chase over that many bytes and over 16 KiB.
fn chase(a: &Args) -> Result<(), String> {
    if let Some(bytes) = a.bytes {
        let miss = chase_ns(bytes as usize, a.steps);
        println!("bytes={bytes} chase_ns={miss:.1}");
        return Ok(());
    }
    let (rig, heap) = eventpoll_bench::alloc::measure(|| rig(a.pipes, a.edge));
    drop(rig?);
    if heap <= 0 {
        return Err("heap not measured (built without the count-alloc feature)".into());
    }
    let miss = chase_ns(heap as usize, a.steps);
    let hit = chase_ns(16 << 10, a.steps);
    println!(
        "pipes={} heap_bytes={} chase_ns={:.1} l1_hit_ns={:.1}",
        a.pipes, heap, miss, hit
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = parse().and_then(|a| match a.mode.as_str() {
        "rounds" => rounds(&a),
        "chase" => chase(&a),
        other => Err(format!("unknown mode {other} (rounds or chase)")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token_cost: {e}");
            ExitCode::FAILURE
        }
    }
}
