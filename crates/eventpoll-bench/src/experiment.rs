//! The pipetest experiment as a whole: which (method, N) cells to run, the descriptor-limit
//! and `FD_SETSIZE` rules that cap or skip kernel cells, the adaptive time budget, and the
//! loop that runs every cell (with a progress bar) and collects a [`Report`].
//!
//! The budget is shared out as the run goes: each cell gets the time left divided by the
//! cells left, its set-up and tear-down included, so slow set-ups are paid for by shorter
//! measurements rather than by overrunning the total.

use crate::kernel::{EpollRig, PollRig, SelectRig};
use crate::machine::Machine;
use crate::pipetest::{drain, run_rounds, start, Rig, Stats};
use crate::sys::FD_SETSIZE;
use eventpoll_host::DriverKind;
use std::time::{Duration, Instant};

/// A readiness mechanism under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `select(2)` over real pipes.
    Select,
    /// `poll(2)` over real pipes.
    Poll,
    /// The kernel's epoll, level-triggered, over real pipes.
    EpollLt,
    /// The kernel's epoll, edge-triggered, over real pipes.
    EpollEt,
    /// The eventpoll engine, level-triggered, over its in-process pipes.
    EngineLt,
    /// The eventpoll engine, edge-triggered, over its in-process pipes.
    EngineEt,
    /// The eventpoll engine over real (host) pipes, level-triggered, with eventpoll-host's
    /// kernel-epoll driver.
    EngineHost,
    /// The same with eventpoll-host's io_uring driver (libeventpoll's default until 2026-12-08).
    EngineHostUring,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 8] = [
        Method::Select,
        Method::Poll,
        Method::EpollLt,
        Method::EpollEt,
        Method::EngineLt,
        Method::EngineEt,
        Method::EngineHost,
        Method::EngineHostUring,
    ];

    /// A stable machine-readable name (used in the JSON output).
    pub fn key(self) -> &'static str {
        match self {
            Method::Select => "select",
            Method::Poll => "poll",
            Method::EpollLt => "epoll-lt",
            Method::EpollEt => "epoll-et",
            Method::EngineLt => "eventpoll-lt",
            Method::EngineEt => "eventpoll-et",
            Method::EngineHost => "eventpoll-host-pipes",
            Method::EngineHostUring => "eventpoll-host-pipes-uring",
        }
    }

    /// The name shown in the table and the plot.
    pub fn label(self) -> &'static str {
        match self {
            Method::Select => "select",
            Method::Poll => "poll",
            Method::EpollLt => "kernel epoll LT",
            Method::EpollEt => "kernel epoll ET",
            Method::EngineLt => "eventpoll LT (in-process pipes)",
            Method::EngineEt => "eventpoll ET (in-process pipes)",
            Method::EngineHost => "eventpoll LT (host pipes, kernel-epoll driver)",
            Method::EngineHostUring => "eventpoll LT (host pipes, io_uring driver)",
        }
    }

    /// Memory one pipe of this method takes while its cell runs, in bytes (an estimate for
    /// [`memory_estimate`]): in-process pipes were measured at about 472 MB per million
    /// (engine objects, watches, buffers); a host pipe is the kernel's pipe, two open files
    /// and the method's own bookkeeping, about 2 KB.
    pub fn bytes_per_pipe(self) -> u64 {
        match self {
            Method::EngineLt | Method::EngineEt => 472,
            _ => 2_048,
        }
    }

    /// Whether the method uses host descriptors (and so is bound by the descriptor limit).
    pub fn uses_host_fds(self) -> bool {
        matches!(
            self,
            Method::Select
                | Method::Poll
                | Method::EpollLt
                | Method::EpollEt
                | Method::EngineHost
                | Method::EngineHostUring
        )
    }
}

/// The settings of one pipetest run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pipe counts (N) to run, ascending.
    pub sizes: Vec<usize>,
    /// Tokens in flight (K).
    pub tokens: usize,
    /// Seed of the pseudo-random token paths.
    pub seed: u64,
    /// Time for all cells together (set-up, measurement and tear-down).
    pub budget: Duration,
    /// Methods to run (others are left out of the report).
    pub methods: Vec<Method>,
    /// Passes over all cells: each cell is measured once per pass, with a fresh rig, and
    /// reports its median pass. Interleaving the methods this way spreads slow changes of
    /// the machine's background load over all of them, so that ratios between methods
    /// measured in the same run compare like with like.
    pub passes: usize,
}

impl Config {
    /// The default run: N = 10 … 100,000, K = 16, about 50 s of cells.
    pub fn full() -> Config {
        Config {
            sizes: vec![10, 100, 1_000, 10_000, 100_000],
            tokens: 16,
            seed: 0x5EED_2002,
            budget: Duration::from_secs(50),
            methods: Method::ALL.to_vec(),
            passes: 3,
        }
    }

    /// The `--quick` run: N = 10, 1,000, 10,000, about 7 s of cells.
    pub fn quick() -> Config {
        Config {
            sizes: vec![10, 1_000, 10_000],
            budget: Duration::from_secs(7),
            passes: 1,
            ..Config::full()
        }
    }
}

/// What became of one (method, N) cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran; the measured stretch.
    Ran(Stats),
    /// It cannot run on this machine (a limit), with the reason.
    Skipped(String),
    /// The backend is not available in this build, with the reason (kept for the JSON
    /// format: the engine cells were reported so before the engine landed).
    Unavailable(String),
    /// The backend is a later issue.
    NotImplemented(String),
    /// It started but failed, with the error.
    Failed(String),
}

impl Outcome {
    /// A machine-readable status word.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Ran(_) => "ok",
            Outcome::Skipped(_) => "skipped",
            Outcome::Unavailable(_) => "unavailable",
            Outcome::NotImplemented(_) => "not-implemented",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The measured stats, if it ran.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Outcome::Ran(s) => Some(s),
            _ => None,
        }
    }
}

/// One (method, N) cell of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The mechanism.
    pub method: Method,
    /// The N asked for.
    pub requested: usize,
    /// The N it ran at (smaller than `requested` when the descriptor limit capped it).
    pub n: usize,
    /// The result.
    pub outcome: Outcome,
    /// A remark (such as why N was capped).
    pub note: Option<String>,
    /// Time to create the pipes and register them.
    pub setup: Duration,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub config: Config,
    /// Every cell, in run order (N ascending, then method).
    pub cells: Vec<Cell>,
    /// Wall time of all cells.
    pub elapsed: Duration,
    /// The largest N the kernel methods could run at (descriptor limit).
    pub kernel_max_n: usize,
    /// The largest N select could run at (`FD_SETSIZE`).
    pub select_max_n: usize,
    /// Cell passes not started because the budget would have been overrun.
    pub runs_left_out: usize,
    /// The 1-minute load average when the run ended.
    pub load_end: f64,
}

impl Report {
    /// The cell for (method, requested N).
    pub fn cell(&self, method: Method, requested: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.method == method && c.requested == requested)
    }
}

/// The largest pipe counts the host allows: (all kernel methods, select), from the soft
/// descriptor limit and the descriptors open now, rounded down to a multiple of 10.
pub fn kernel_limits(soft_limit: u64, open_now: usize) -> (usize, usize) {
    let spare = 8; // the epoll instance and a few more, with room to spare
    let free = (soft_limit as usize).saturating_sub(open_now + spare);
    let kernel = free / 2 / 10 * 10;
    // select: the read ends must be numbered below FD_SETSIZE; write ends go above it.
    let select = FD_SETSIZE.saturating_sub(open_now + spare) / 10 * 10;
    (kernel, select.min(kernel))
}

/// The largest memory one cell of `config` would take (cells run one at a time), with a
/// margin: the estimate of [`Method::bytes_per_pipe`] plus a quarter, plus 64 MB for the
/// program itself. Host-descriptor cells count at most `kernel_max` pipes (beyond that they
/// are capped or skipped). Returns (bytes, the method and N of that cell).
pub fn memory_estimate(config: &Config, kernel_max: usize) -> (u64, Method, usize) {
    let mut worst = (0, Method::EngineLt, 0);
    for &n in &config.sizes {
        for &m in &config.methods {
            let pipes = if m.uses_host_fds() {
                n.min(kernel_max)
            } else {
                n
            };
            let bytes = (pipes as u64).saturating_mul(m.bytes_per_pipe());
            if bytes > worst.0 {
                worst = (bytes, m, n);
            }
        }
    }
    let margin = worst.0 / 4 + (64 << 20);
    (worst.0.saturating_add(margin), worst.1, worst.2)
}

/// How a cell is to be run (decided before any runs).
#[derive(Debug, Clone)]
enum Plan {
    Run { n: usize, note: Option<String> },
    Fixed(Outcome),
}

fn plan(
    method: Method,
    requested: usize,
    kernel_max: usize,
    select_max: usize,
    fd_soft: u64,
) -> Plan {
    match method {
        Method::EngineLt | Method::EngineEt => Plan::Run {
            n: requested,
            note: None,
        },
        Method::Select if requested > select_max => Plan::Fixed(Outcome::Skipped(format!(
            "select watches only descriptor numbers below FD_SETSIZE ({FD_SETSIZE})"
        ))),
        _ if requested <= kernel_max => Plan::Run {
            n: requested,
            note: None,
        },
        // Capped: run at the largest N the limit allows when that is close to the request.
        _ if kernel_max * 10 >= requested * 9 => Plan::Run {
            n: kernel_max,
            note: Some(format!(
                "N={} (not {}): the descriptor limit {} allows 2 descriptors x {} pipes",
                fmt_count(kernel_max as f64),
                fmt_count(requested as f64),
                fmt_count(fd_soft as f64),
                fmt_count(kernel_max as f64)
            )),
        },
        _ => Plan::Fixed(Outcome::Skipped(format!(
            "needs {} descriptors (2 per pipe); the descriptor limit is {}",
            fmt_count(2.0 * requested as f64),
            fmt_count(fd_soft as f64)
        ))),
    }
}

/// Progress callbacks: `start(label, done, total)` before each cell that runs.
pub trait Progress {
    /// A cell is about to run.
    fn start(&mut self, label: &str, done: usize, total: usize);
    /// All cells are done.
    fn finish(&mut self);
}

/// No progress display.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _label: &str, _done: usize, _total: usize) {}
    fn finish(&mut self) {}
}

/// Run the experiment. The soft descriptor limit should already be raised.
pub fn run(config: &Config, progress: &mut dyn Progress) -> Report {
    let machine = Machine::describe();
    let (kernel_max, select_max) = kernel_limits(machine.fd_limit.0, crate::sys::open_fd_count());
    let mut planned = Vec::new();
    for &requested in &config.sizes {
        for &method in &Method::ALL {
            if config.methods.contains(&method) {
                let p = plan(
                    method,
                    requested,
                    kernel_max,
                    select_max,
                    machine.fd_limit.0,
                );
                planned.push((method, requested, p));
            }
        }
    }
    let runs_per_pass = planned
        .iter()
        .filter(|(_, _, p)| matches!(p, Plan::Run { .. }))
        .count();
    let passes = config.passes.max(1);
    let total = runs_per_pass * passes;
    let begin = Instant::now();
    let deadline = begin + config.budget;
    let mut done = 0;
    // Every pass runs every cell once, in the same order; a cell's passes are merged below.
    let mut runs: Vec<Vec<(Outcome, Duration)>> = vec![Vec::new(); planned.len()];
    // Set-up time per pipe seen so far, per method: a cell whose set-up and tear-down
    // (about twice the set-up) would not fit in the time left is not started, so that the
    // budget bounds the run.
    // Before a method's first cell, a pessimistic guess (in-process pipes ~1 µs each,
    // host pipes ~5 µs), used only to refuse cells more than twice the time left.
    let mut setup_per_pipe: Vec<f64> = Method::ALL
        .iter()
        .map(|m| if m.uses_host_fds() { 5e-6 } else { 1e-6 })
        .collect();
    let mut out_of_time = 0usize;
    for pass in 0..passes {
        for (i, (method, _, p)) in planned.iter().enumerate() {
            let Plan::Run { n, .. } = p else { continue };
            let mi = Method::ALL.iter().position(|m| m == method).unwrap_or(0);
            let left = deadline.saturating_duration_since(Instant::now());
            let predicted = Duration::from_secs_f64(setup_per_pipe[mi] * *n as f64 * 3.0);
            // A cell's first pass is skipped only when its set-up alone would far overrun
            // (a cheap cell still runs, with the shortest slice); later passes whenever
            // the time is up.
            let skip = if runs[i].is_empty() {
                predicted > left * 2 + Duration::from_millis(100)
            } else {
                left.is_zero() || predicted > left
            };
            if skip {
                done += 1;
                out_of_time += 1;
                continue;
            }
            let label = format!("{} N={}", method.label(), fmt_count(*n as f64));
            let label = if passes > 1 {
                format!("{label} (pass {} of {passes})", pass + 1)
            } else {
                label
            };
            progress.start(&label, done, total);
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = (left / (total - done) as u32).max(Duration::from_millis(30));
            done += 1;
            let ran = run_cell(*method, *n, config, slice);
            let per_pipe = ran.1.as_secs_f64() / (*n).max(1) as f64;
            // The latest is from the largest N so far (cells run N ascending): fixed costs
            // that dominate at small N do not inflate the guess for large N.
            setup_per_pipe[mi] = per_pipe;
            runs[i].push(ran);
        }
    }
    let mut cells = Vec::new();
    for ((method, requested, p), passes) in planned.into_iter().zip(runs) {
        cells.push(match p {
            Plan::Fixed(outcome) => Cell {
                method,
                requested,
                n: requested,
                outcome,
                note: None,
                setup: Duration::ZERO,
            },
            Plan::Run { n, note } if passes.is_empty() => Cell {
                method,
                requested,
                n,
                outcome: Outcome::Skipped(
                    "not run: its set-up would not fit in the time left of --budget".into(),
                ),
                note,
                setup: Duration::ZERO,
            },
            Plan::Run { n, note } => {
                let (outcome, setup) = merge_passes(passes);
                Cell {
                    method,
                    requested,
                    n,
                    outcome,
                    note,
                    setup,
                }
            }
        });
    }
    progress.finish();
    Report {
        machine,
        config: config.clone(),
        cells,
        elapsed: begin.elapsed(),
        kernel_max_n: kernel_max,
        select_max_n: select_max,
        runs_left_out: out_of_time,
        load_end: crate::machine::load_average(),
    }
}

/// One cell's passes as one outcome: the first failure if any pass failed; else the median
/// pass (by tokens/s), with the spread of every stretch of every pass, and the first set-up
/// time.
fn merge_passes(mut passes: Vec<(Outcome, Duration)>) -> (Outcome, Duration) {
    let setup = passes.first().map_or(Duration::ZERO, |p| p.1);
    if let Some(i) = passes.iter().position(|p| p.0.stats().is_none()) {
        return (passes.swap_remove(i).0, setup);
    }
    let mut stats: Vec<Stats> = passes.iter().filter_map(|p| p.0.stats().copied()).collect();
    if stats.is_empty() {
        return (Outcome::Failed("no pass ran".into()), setup);
    }
    let low = stats
        .iter()
        .map(|s| s.spread.0)
        .fold(f64::INFINITY, f64::min);
    let high = stats.iter().map(|s| s.spread.1).fold(0.0, f64::max);
    stats.sort_by(|a, b| a.tokens_per_sec().total_cmp(&b.tokens_per_sec()));
    let mut median = stats[stats.len() / 2];
    median.spread = (low, high);
    (Outcome::Ran(median), setup)
}

/// Run one cell within `slice` (set-up and tear-down included).
fn run_cell(method: Method, n: usize, config: &Config, slice: Duration) -> (Outcome, Duration) {
    let t0 = Instant::now();
    let (k, seed) = (config.tokens, config.seed);
    match method {
        Method::Select => measure(SelectRig::new(n), t0, slice, k, seed),
        Method::Poll => measure(PollRig::new(n), t0, slice, k, seed),
        Method::EpollLt => measure(EpollRig::new(n, false), t0, slice, k, seed),
        Method::EpollEt => measure(EpollRig::new(n, true), t0, slice, k, seed),
        Method::EngineLt => {
            crate::engine::guarded(|| measure(crate::engine::rig(n, false), t0, slice, k, seed))
        }
        Method::EngineEt => {
            crate::engine::guarded(|| measure(crate::engine::rig(n, true), t0, slice, k, seed))
        }
        Method::EngineHost => measure(
            crate::host::HostRig::new(n, DriverKind::KernelEpoll),
            t0,
            slice,
            k,
            seed,
        ),
        Method::EngineHostUring => measure(
            crate::host::HostRig::new(n, DriverKind::IoUring),
            t0,
            slice,
            k,
            seed,
        ),
    }
}

/// Measured stretches per cell (the median is reported).
pub const CHUNKS: usize = 5;

/// Set up (already done by `made`), warm up, measure until the slice's end less the time
/// tear-down is expected to take, then check that no token was lost.
pub(crate) fn measure<R: Rig>(
    made: Result<R, String>,
    t0: Instant,
    slice: Duration,
    k: usize,
    seed: u64,
) -> (Outcome, Duration) {
    let mut rig = match made {
        Ok(r) => r,
        Err(e) => return (Outcome::Failed(format!("set-up: {e}")), t0.elapsed()),
    };
    let setup = t0.elapsed();
    let result = (|| {
        let mut tokens = start(&mut rig, k, seed)?;
        // Tear-down (closing N pipes) costs about what set-up did; keep it inside the slice.
        let measured = slice
            .saturating_sub(setup * 2)
            .max(Duration::from_millis(20));
        let warm = (measured / 10).min(Duration::from_millis(100));
        run_rounds(&mut rig, &mut tokens, Instant::now() + warm, u64::MAX)?;
        // Consecutive stretches; the median one is reported (robust against bursts of other
        // work on the machine), the others give the spread.
        let chunk = (measured - warm) / CHUNKS as u32;
        let mut chunks = Vec::with_capacity(CHUNKS);
        for _ in 0..CHUNKS {
            chunks.push(run_rounds(
                &mut rig,
                &mut tokens,
                Instant::now() + chunk,
                u64::MAX,
            )?);
        }
        chunks.sort_by(|a, b| a.tokens_per_sec().total_cmp(&b.tokens_per_sec()));
        let mut stats = chunks[CHUNKS / 2];
        stats.spread = (
            chunks[0].tokens_per_sec(),
            chunks[CHUNKS - 1].tokens_per_sec(),
        );
        let left = drain(&mut rig)?;
        if tokens.read != tokens.written || left != k as u64 {
            return Err(format!(
                "tokens not conserved: read {}, written on {}, left in pipes {} (K={k})",
                tokens.read, tokens.written, left
            ));
        }
        Ok(stats)
    })();
    drop(rig);
    match result {
        Ok(stats) => (Outcome::Ran(stats), setup),
        Err(e) => (Outcome::Failed(e), setup),
    }
}

/// `1234567.0` as "1,234,567" (rounded).
pub fn fmt_count(x: f64) -> String {
    let v = x.round().max(0.0) as u128;
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A duration in nanoseconds with three significant digits: "850 ns", "12.3 µs", "4.56 ms".
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if v < 10.0 && unit != "ns" {
        format!("{v:.2} {unit}")
    } else if v < 100.0 && unit != "ns" {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_descriptor_limit() {
        assert_eq!(kernel_limits(20_000, 4), (9_990, 1_010));
        assert_eq!(kernel_limits(1_000_000, 4), (499_990, 1_010));
        assert_eq!(kernel_limits(10, 4), (0, 0));
    }

    #[test]
    fn plans_cap_or_skip_kernel_cells() {
        let (k, s) = kernel_limits(20_000, 4);
        match plan(Method::EpollLt, 10_000, k, s, 20_000) {
            Plan::Run { n, note } => {
                assert_eq!(n, 9_990);
                assert!(note.unwrap().contains("9,990"));
            }
            p => panic!("{p:?}"),
        }
        assert!(matches!(
            plan(Method::Poll, 100_000, k, s, 20_000),
            Plan::Fixed(Outcome::Skipped(_))
        ));
        assert!(matches!(
            plan(Method::Select, 10_000, k, s, 20_000),
            Plan::Fixed(Outcome::Skipped(_))
        ));
        assert!(matches!(
            plan(Method::Select, 1_000, k, s, 20_000),
            Plan::Run { n: 1_000, .. }
        ));
        // Host pipes use real descriptors: capped like the kernel methods.
        assert!(matches!(
            plan(Method::EngineHost, 10, k, s, 20_000),
            Plan::Run { n: 10, .. }
        ));
        assert!(matches!(
            plan(Method::EngineHost, 100_000, k, s, 20_000),
            Plan::Fixed(Outcome::Skipped(_))
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_count(1_234_567.4), "1,234,567");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_ns(850.0), "850 ns");
        assert_eq!(fmt_ns(12_345.0), "12.3 µs");
        assert_eq!(fmt_ns(1_234.0), "1.23 µs");
        assert_eq!(fmt_ns(123_400.0), "123 µs");
        assert_eq!(fmt_ns(4_560_000.0), "4.56 ms");
    }

    #[test]
    fn a_tiny_run_reports_every_cell() {
        let config = Config {
            sizes: vec![10],
            tokens: 4,
            seed: 1,
            budget: Duration::from_millis(300),
            methods: Method::ALL.to_vec(),
            passes: 1,
        };
        let r = run(&config, &mut Silent);
        assert_eq!(r.cells.len(), Method::ALL.len());
        for m in [
            Method::Select,
            Method::Poll,
            Method::EpollLt,
            Method::EpollEt,
            Method::EngineLt,
            Method::EngineEt,
            Method::EngineHost,
            Method::EngineHostUring,
        ] {
            let c = r.cell(m, 10).unwrap();
            let s = c
                .outcome
                .stats()
                .unwrap_or_else(|| panic!("{m:?}: {:?}", c.outcome));
            assert!(s.waits > 0 && s.tokens > 0, "{m:?}");
            assert!(s.tokens_per_sec() > 0.0);
        }
    }

    #[test]
    fn passes_merge_to_the_median_pass_with_the_whole_spread() {
        let stats = |tokens: u64, lo: f64, hi: f64| Stats {
            waits: 10,
            tokens,
            ready: 10,
            wait_time: Duration::from_millis(1),
            elapsed: Duration::from_secs(1),
            spread: (lo, hi),
        };
        let ran = |s| (Outcome::Ran(s), Duration::from_millis(5));
        let (o, setup) = merge_passes(vec![
            ran(stats(300, 290.0, 310.0)),
            ran(stats(100, 90.0, 110.0)),
            ran(stats(200, 150.0, 260.0)),
        ]);
        let s = o.stats().unwrap();
        assert_eq!(s.tokens, 200);
        assert_eq!(s.spread, (90.0, 310.0));
        assert_eq!(setup, Duration::from_millis(5));
        let (o, _) = merge_passes(vec![
            ran(stats(300, 290.0, 310.0)),
            (Outcome::Failed("lost a token".into()), Duration::ZERO),
        ]);
        assert_eq!(o, Outcome::Failed("lost a token".into()));
    }

    #[test]
    fn the_budget_bounds_the_run() {
        // A million in-process pipes take seconds to set up: not started in 50 ms.
        let config = Config {
            sizes: vec![1_000_000],
            methods: vec![Method::EngineLt],
            budget: Duration::from_millis(50),
            ..Config::quick()
        };
        let r = run(&config, &mut Silent);
        assert!(r.elapsed < Duration::from_millis(500), "{:?}", r.elapsed);
        assert_eq!(r.runs_left_out, 1);
        match &r.cells[0].outcome {
            Outcome::Skipped(why) => assert!(why.contains("--budget"), "{why}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn kernel_cells_beyond_the_limit_are_skipped_not_run() {
        let config = Config {
            sizes: vec![100_000_000],
            methods: vec![Method::Poll, Method::Select],
            ..Config::quick()
        };
        let r = run(&config, &mut Silent);
        assert_eq!(r.cells.len(), 2);
        assert!(r.cells.iter().all(|c| c.outcome.status() == "skipped"));
        assert!(r.elapsed < Duration::from_secs(1));
    }
}
