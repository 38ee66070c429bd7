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
//! - `sweep`: the same dependent walk over working sets from 256 KiB to 64 MiB, each in a
//!   buffer of 4 KiB pages and in one the kernel was asked to back with 2 MiB pages
//!   (`madvise(MADV_HUGEPAGE)`; the line says how much of it the kernel did back), in ns per
//!   step: where the latency steps up is the cache the machine really gives one core, and
//!   the gap between the two columns is what TLB misses add.
//!
//! ```text
//! cargo run --release -p eventpoll-bench --example token_cost -- rounds --pipes 10000 --rounds 20000
//! cargo run --release -p eventpoll-bench --example token_cost -- chase --pipes 100000
//! cargo run --release -p eventpoll-bench --example token_cost -- sweep --steps 5000000
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

/// Nanoseconds per step of a dependent random walk over `bytes` bytes (whole lines), in a
/// heap buffer (4 KiB pages).
fn chase_ns(bytes: usize, steps: u64) -> f64 {
    let lines = (bytes / LINE).max(2);
    let words = LINE / core::mem::size_of::<usize>();
    let mut next = vec![0usize; lines * words];
    walk(&mut next, steps)
}

/// The walk itself over `next` (whole lines of `usize`s, at least two): link every line into
/// one random cycle, lap it once, then time `steps` dependent loads.
fn walk(next: &mut [usize], steps: u64) -> f64 {
    let words = LINE / core::mem::size_of::<usize>();
    let lines = next.len() / words;
    // A single cycle through every line in random order (Sattolo's algorithm), stored as
    // "next line" in the first word of each line.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut rng = Rng::new(SEED);
    for i in (1..lines).rev() {
        let j = (rng.next_u64() % i as u64) as usize;
        order.swap(i, j);
    }
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

/// A buffer of `bytes` (a multiple of 2 MiB) the kernel was asked to back with 2 MiB pages.
struct HugeBuffer {
    base: *mut usize,
    bytes: usize,
    /// The mapping as made, for `munmap`.
    map: *mut libc::c_void,
    map_len: usize,
}

const HUGE: usize = 2 << 20;

impl HugeBuffer {
    fn new(bytes: usize) -> Result<Self, String> {
        let map_len = bytes + HUGE;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing; no
        // existing memory is touched.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let base = (map as usize).next_multiple_of(HUGE) as *mut libc::c_void;
        // SAFETY: [base, base + bytes) lies inside the mapping just made (it is HUGE longer
        // than `bytes` to leave room for the alignment). madvise only sets a policy.
        let rc = unsafe { libc::madvise(base, bytes, libc::MADV_HUGEPAGE) };
        let buffer = HugeBuffer {
            base: base.cast(),
            bytes,
            map,
            map_len,
        };
        if rc != 0 {
            return Err(format!(
                "madvise(MADV_HUGEPAGE): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(buffer)
    }

    fn words(&mut self) -> &mut [usize] {
        // SAFETY: `base` is aligned (to 2 MiB), inside our mapping for `bytes` bytes, zero-
        // filled by the kernel (a valid `usize` everywhere), and borrowed mutably from self.
        unsafe {
            std::slice::from_raw_parts_mut(self.base, self.bytes / core::mem::size_of::<usize>())
        }
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no slice of it outlives `self`.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// Bytes of this process's anonymous memory the kernel backs with huge pages
/// (`AnonHugePages` of /proc/self/smaps_rollup), or `None` where that is not readable.
fn anon_huge_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// ns per dependent step over working sets from 256 KiB to 64 MiB, with 4 KiB and 2 MiB pages.
fn sweep(a: &Args) -> Result<(), String> {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    println!("dependent load, ns per step (transparent huge pages: {thp})");
    println!(
        "{:>10} {:>12} {:>12} {:>10}",
        "span", "4K pages", "2M pages", "2M backed"
    );
    let mut span = 256usize << 10;
    while span <= 64 << 20 {
        let small = chase_ns(span, a.steps);
        let mut huge = HugeBuffer::new(span.next_multiple_of(HUGE))?;
        let before = anon_huge_bytes().unwrap_or(0);
        let words = huge.words();
        let used = &mut words[..span / core::mem::size_of::<usize>()];
        let big = walk(used, a.steps);
        let backed = anon_huge_bytes().map(|after| after.saturating_sub(before));
        let backed = match backed {
            Some(b) => format!(
                "{}%",
                (b * 100 / span.next_multiple_of(HUGE) as u64).min(100)
            ),
            None => "?".into(),
        };
        println!(
            "{:>10} {:>12.1} {:>12.1} {:>10}",
            format!("{} KiB", span >> 10),
            small,
            big,
            backed
        );
        drop(huge);
        span *= 2;
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = parse().and_then(|a| match a.mode.as_str() {
        "rounds" => rounds(&a),
        "chase" => chase(&a),
        "sweep" => sweep(&a),
        other => Err(format!("unknown mode {other} (rounds, chase or sweep)")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token_cost: {e}");
            ExitCode::FAILURE
        }
    }
}
