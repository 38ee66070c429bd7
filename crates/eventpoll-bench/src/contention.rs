//! `eventpoll bench contention`: many threads signalling eventfds watched by one epoll
//! instance while others harvest them, the scheme of the kernel community's `stress-epoll`
//! (producer threads write eventfds as fast as they can; a harvesting thread waits on the
//! instance and reads the counters; the figure is events per millisecond by thread count).
//!
//! One trial: `eventfds` eventfds are watched by one instance (level-triggered,
//! edge-triggered, or one-shot and re-armed with `EPOLL_CTL_MOD` after each read); P producer
//! threads each own a share of them and write 1 to each in turn until the trial's time is up;
//! H harvester threads wait on the instance and read every reported eventfd, adding the
//! counter to the harvested total. A trial ends when every signal written has been harvested
//! (or, if some never are, after a grace period: those are *lost* events, a failure). Events
//! per millisecond are the signals harvested divided by the time from the start to the last
//! harvest, so a backlog left to drain counts against the figure.
//!
//! The same generic code runs on the kernel (real eventfds and epoll system calls,
//! [`KernelApi`]) and on the engine (`FdTable` with its in-process eventfds, [`EngineApi`]);
//! the two sides alternate within each pass (their order flips from cell to cell) so that the
//! machine's changing load falls on both alike. Each cell reports its median pass and the
//! lowest and highest; the engine ÷ kernel ratio comes with the range the spreads allow.

use crate::experiment::{fmt_count, Progress};
use crate::machine::Machine;
use crate::micro::{Api, EngineApi, KernelApi};
use crate::report::{fmt_rate, Footnotes};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use eventpoll::linux::{EPOLL_CTL_ADD, EPOLL_CTL_MOD};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

const IN: u32 = 0x001;
const ONESHOT: u32 = 1 << 30;
const ET: u32 = 1 << 31;

/// How the eventfds are watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `EPOLLIN`: reported while the counter is non-zero.
    Level,
    /// `EPOLLIN | EPOLLET`: reported once per write that finds the item not yet reported.
    Edge,
    /// `EPOLLIN | EPOLLONESHOT`: reported once, re-armed by the harvester with
    /// `EPOLL_CTL_MOD` after it has read the counter.
    OneShot,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 3] = [Mode::Level, Mode::Edge, Mode::OneShot];

    /// The name on the command line and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Mode::Level => "lt",
            Mode::Edge => "et",
            Mode::OneShot => "oneshot",
        }
    }

    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Level => "LT",
            Mode::Edge => "ET",
            Mode::OneShot => "one-shot (MOD re-arm)",
        }
    }

    fn events(self) -> u32 {
        match self {
            Mode::Level => IN,
            Mode::Edge => IN | ET,
            Mode::OneShot => IN | ONESHOT,
        }
    }
}

/// Which epoll runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The kernel's epoll over real eventfds.
    Kernel,
    /// The in-process engine over its own eventfds, through `FdTable`.
    Engine,
}

impl Side {
    /// Both, kernel first.
    pub const ALL: [Side; 2] = [Side::Kernel, Side::Engine];

    /// The name in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Side::Kernel => "kernel",
            Side::Engine => "eventpoll",
        }
    }

    /// The name in the table and the plot.
    pub fn label(self) -> &'static str {
        match self {
            Side::Kernel => "kernel epoll",
            Side::Engine => "eventpoll",
        }
    }
}

/// The shape of one trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// How the eventfds are watched.
    pub mode: Mode,
    /// Producer threads (each writes its share of the eventfds in turn).
    pub producers: usize,
    /// Harvester threads (each waits on the one instance and reads what it reports).
    pub harvesters: usize,
    /// Eventfds watched by the instance.
    pub eventfds: usize,
    /// How long the producers write.
    pub duration: Duration,
    /// How long the harvesters go on waiting, after the producers have stopped, for signals
    /// not yet harvested before these count as lost.
    pub grace: Duration,
}

/// What one trial measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Trial {
    /// Signals written (eventfd writes of 1) by all producers.
    pub produced: u64,
    /// Signals harvested: the sum of the counters the harvesters read.
    pub harvested: u64,
    /// Waits that reported at least one event.
    pub waits: u64,
    /// Events reported by those waits.
    pub reported: u64,
    /// From the start to the last harvest (or to the end of the grace period when signals
    /// were lost).
    pub elapsed: Duration,
}

impl Trial {
    /// Signals produced but never harvested.
    pub fn lost(&self) -> u64 {
        self.produced.saturating_sub(self.harvested)
    }

    /// Signals harvested per millisecond.
    pub fn events_per_ms(&self) -> f64 {
        self.harvested as f64 / (self.elapsed.as_secs_f64() * 1e3).max(1e-9)
    }
}

/// The counters the threads of one trial share.
struct Shared {
    stop: AtomicBool,
    produced: AtomicU64,
    producers_left: AtomicUsize,
    harvested: AtomicU64,
    waits: AtomicU64,
    reported: AtomicU64,
    complete_at: OnceLock<Instant>,
}

impl Shared {
    /// Whether every producer has finished and everything it wrote has been harvested; the
    /// first caller that finds so records the time.
    fn complete(&self) -> bool {
        if self.producers_left.load(SeqCst) == 0
            && self.harvested.load(SeqCst) >= self.produced.load(SeqCst)
        {
            self.complete_at.get_or_init(Instant::now);
            true
        } else {
            false
        }
    }
}

/// The eventfds producer `p` of `producers` writes: every `producers`-th one from `p` (or,
/// with fewer eventfds than producers, the one at `p` modulo their number).
fn share(fds: &[i32], p: usize, producers: usize) -> Vec<i32> {
    if fds.len() >= producers {
        fds.iter().skip(p).step_by(producers).copied().collect()
    } else {
        vec![fds[p % fds.len()]]
    }
}

/// Signal `mine` in turn until the trial stops — one round at least, so that a producer
/// the scheduler starts only after a short trial's end still makes it a workload (under
/// load a 20 ms trial could end before its thread first ran: nothing produced, nothing to
/// measure).
fn produce<A: Api>(api: &A, mine: &[i32], shared: &Shared) -> Result<(), String> {
    let mut written = 0u64;
    let r = (|| loop {
        for &fd in mine {
            api.add(fd, 1)?;
            written += 1;
        }
        if shared.stop.load(SeqCst) {
            return Ok(());
        }
    })();
    shared.produced.fetch_add(written, SeqCst);
    shared.producers_left.fetch_sub(1, SeqCst);
    shared.complete();
    r
}

fn harvest<A: Api>(
    api: &A,
    ep: i32,
    fds: &[i32],
    w: &Workload,
    shared: &Shared,
) -> Result<(), String> {
    let mut buf = api.buffer(fds.len().clamp(1, 64));
    let mut give_up: Option<Instant> = None;
    loop {
        if shared.complete() {
            return Ok(());
        }
        if shared.producers_left.load(SeqCst) == 0 {
            let at = *give_up.get_or_insert_with(|| Instant::now() + w.grace);
            if Instant::now() >= at {
                return Ok(()); // the rest is lost: the trial reports it
            }
        }
        let n = api.wait(ep, &mut buf, 10)?;
        if n == 0 {
            continue;
        }
        shared.waits.fetch_add(1, SeqCst);
        shared.reported.fetch_add(n as u64, SeqCst);
        for ev in &buf[..n] {
            let i = api.data_of(ev) as usize;
            let fd = *fds.get(i).ok_or_else(|| format!("event with data {i}"))?;
            if let Some(v) = api.take(fd)? {
                shared.harvested.fetch_add(v, SeqCst);
            }
            if w.mode == Mode::OneShot {
                api.ctl(ep, EPOLL_CTL_MOD, fd, w.mode.events(), i as u64)?;
            }
        }
    }
}

/// Run one trial of `w` on `api`.
pub fn trial<A: Api>(api: &A, w: &Workload) -> Result<Trial, String> {
    if w.producers == 0 || w.harvesters == 0 || w.eventfds == 0 {
        return Err("producers, harvesters and eventfds must be positive".into());
    }
    let ep = api.epoll()?;
    let mut fds = Vec::with_capacity(w.eventfds);
    let result = (|| {
        for i in 0..w.eventfds {
            let fd = api.eventfd(0)?;
            fds.push(fd);
            api.ctl(ep, EPOLL_CTL_ADD, fd, w.mode.events(), i as u64)?;
        }
        let shared = Shared {
            stop: AtomicBool::new(false),
            produced: AtomicU64::new(0),
            producers_left: AtomicUsize::new(w.producers),
            harvested: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            complete_at: OnceLock::new(),
        };
        let barrier = Barrier::new(w.producers + w.harvesters + 1);
        let fds = &fds;
        let (start, errors) = std::thread::scope(|s| {
            let mut threads = Vec::new();
            for p in 0..w.producers {
                let (shared, barrier) = (&shared, &barrier);
                let mine = share(fds, p, w.producers);
                threads.push(s.spawn(move || {
                    barrier.wait();
                    produce(api, &mine, shared)
                }));
            }
            for _ in 0..w.harvesters {
                let (shared, barrier) = (&shared, &barrier);
                threads.push(s.spawn(move || {
                    barrier.wait();
                    harvest(api, ep, fds, w, shared)
                }));
            }
            barrier.wait();
            let start = Instant::now();
            std::thread::sleep(w.duration);
            shared.stop.store(true, SeqCst);
            let errors: Vec<String> = threads
                .into_iter()
                .filter_map(|t| match t.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("a thread panicked".into()),
                })
                .collect();
            (start, errors)
        });
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        let end = shared
            .complete_at
            .get()
            .copied()
            .unwrap_or_else(Instant::now);
        Ok(Trial {
            produced: shared.produced.load(SeqCst),
            harvested: shared.harvested.load(SeqCst),
            waits: shared.waits.load(SeqCst),
            reported: shared.reported.load(SeqCst),
            elapsed: end.saturating_duration_since(start),
        })
    })();
    for fd in fds {
        api.close(fd);
    }
    api.close(ep);
    result
}

/// Settings of a contention run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Producer thread counts, one cell each.
    pub threads: Vec<usize>,
    /// Harvester threads in every cell.
    pub harvesters: usize,
    /// Eventfds watched.
    pub eventfds: usize,
    /// Length of each trial (the producers' writing time).
    pub duration: Duration,
    /// Passes over all cells, each cell measured once per pass.
    pub passes: usize,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Grace period for signals not yet harvested when the producers stop.
    pub grace: Duration,
}

impl Config {
    /// The default run: 1, 2, 4 and 8 producers, one harvester, 256 eventfds, every mode,
    /// 3 passes of 0.5 s trials (72 trials, about 40 s).
    pub fn full() -> Config {
        Config {
            threads: vec![1, 2, 4, 8],
            harvesters: 1,
            eventfds: 256,
            duration: Duration::from_millis(500),
            passes: 3,
            modes: Mode::ALL.to_vec(),
            grace: Duration::from_secs(2),
        }
    }

    /// `--quick`: 1 and 4 producers, level-triggered and one-shot, 2 passes of 0.2 s (about
    /// 3 s).
    pub fn quick() -> Config {
        Config {
            threads: vec![1, 4],
            duration: Duration::from_millis(200),
            passes: 2,
            modes: vec![Mode::Level, Mode::OneShot],
            ..Config::full()
        }
    }

    /// Trials in the whole run.
    pub fn trials(&self) -> usize {
        self.threads.len() * self.modes.len() * Side::ALL.len() * self.passes
    }

    /// A rough estimate of the run's wall time (trial lengths plus set-up).
    pub fn estimate(&self) -> Duration {
        (self.duration + Duration::from_millis(15)) * self.trials() as u32
    }

    fn workload(&self, mode: Mode, producers: usize) -> Workload {
        Workload {
            mode,
            producers,
            harvesters: self.harvesters,
            eventfds: self.eventfds,
            duration: self.duration,
            grace: self.grace,
        }
    }
}

/// One (mode, producers, side) cell: its trials, one per pass, or why it failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// How the eventfds were watched.
    pub mode: Mode,
    /// Producer threads.
    pub producers: usize,
    /// Kernel or engine.
    pub side: Side,
    /// The trials that ran, in pass order.
    pub trials: Vec<Trial>,
    /// The first failure (an error, or lost events), if any.
    pub failure: Option<String>,
}

/// Lowest, median and highest of some values (None when there are none).
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Some((v[0], mid, v[v.len() - 1]))
}

impl Cell {
    /// Events per millisecond: lowest, median and highest pass.
    pub fn rate(&self) -> Option<(f64, f64, f64)> {
        if self.failure.is_some() {
            return None;
        }
        let r: Vec<f64> = self.trials.iter().map(Trial::events_per_ms).collect();
        spread(&r)
    }
}

/// A contention run's results.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// What ran.
    pub config: Config,
    /// Every cell, by mode, then producers, then side.
    pub cells: Vec<Cell>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The 1-minute load average at the end.
    pub load_end: f64,
}

impl Report {
    /// The cell of (mode, producers, side).
    pub fn cell(&self, mode: Mode, producers: usize, side: Side) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.mode == mode && c.producers == producers && c.side == side)
    }

    /// Engine ÷ kernel events/ms at (mode, producers): the ratio of the medians and the
    /// range the spreads allow (engine lowest ÷ kernel highest, engine highest ÷ kernel
    /// lowest).
    pub fn ratio(&self, mode: Mode, producers: usize) -> Option<(f64, f64, f64)> {
        let (e0, e, e1) = self.cell(mode, producers, Side::Engine)?.rate()?;
        let (k0, k, k1) = self.cell(mode, producers, Side::Kernel)?.rate()?;
        if k0 <= 0.0 {
            return None;
        }
        Some((e0 / k1, e / k, e1 / k0))
    }
}

/// Run every cell, passes outermost; within a pass the kernel and the engine alternate, the
/// order flipping from cell to cell and from pass to pass.
pub fn run(config: &Config, progress: &mut dyn Progress) -> Report {
    let begin = Instant::now();
    let machine = Machine::describe();
    let kernel = KernelApi::default();
    let engine = EngineApi::new(config.eventfds + 64);
    let mut cells: Vec<Cell> = Vec::new();
    for &mode in &config.modes {
        for &producers in &config.threads {
            for side in Side::ALL {
                cells.push(Cell {
                    mode,
                    producers,
                    side,
                    trials: Vec::new(),
                    failure: None,
                });
            }
        }
    }
    let total = config.trials();
    let mut done = 0;
    for pass in 0..config.passes {
        for pair in 0..cells.len() / 2 {
            let order = if (pass + pair) % 2 == 0 {
                [2 * pair, 2 * pair + 1]
            } else {
                [2 * pair + 1, 2 * pair]
            };
            for i in order {
                let c = &mut cells[i];
                progress.start(
                    &format!(
                        "pass {}/{}: {} {}, {} producer(s)",
                        pass + 1,
                        config.passes,
                        c.side.label(),
                        c.mode.label(),
                        c.producers,
                    ),
                    done,
                    total,
                );
                done += 1;
                if c.failure.is_some() {
                    continue;
                }
                let w = config.workload(c.mode, c.producers);
                let r = match c.side {
                    Side::Kernel => trial(&kernel, &w),
                    Side::Engine => crate::engine::guarded_result(|| trial(&engine, &w)),
                };
                match r {
                    Ok(t) if t.lost() > 0 => {
                        c.failure = Some(format!(
                            "{} of {} signals never harvested (lost events)",
                            fmt_count(t.lost() as f64),
                            fmt_count(t.produced as f64)
                        ));
                        c.trials.push(t);
                    }
                    Ok(t) => c.trials.push(t),
                    Err(e) => c.failure = Some(e),
                }
            }
        }
    }
    progress.finish();
    Report {
        machine,
        config: config.clone(),
        cells,
        elapsed: begin.elapsed(),
        load_end: crate::machine::load_average(),
    }
}

fn fmt_rate_spread(r: Option<(f64, f64, f64)>) -> (String, String) {
    match r {
        Some((lo, mid, hi)) => (fmt_rate(mid), format!("{}–{}", fmt_rate(lo), fmt_rate(hi))),
        None => ("-".into(), "-".into()),
    }
}

/// The verdict on "ahead of the kernel" (ratio above 1) given the range the spreads allow.
pub fn verdict(range: (f64, f64)) -> &'static str {
    if range.0 > 1.0 {
        "ahead"
    } else if range.1 < 1.0 {
        "NOT ahead"
    } else {
        "uncertain (spread crosses 1)"
    }
}

/// The table: one row per (mode, producers).
pub fn table(report: &Report, notes: &mut Footnotes) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "mode",
        "producers",
        "kernel epoll events/ms",
        "min–max",
        "eventpoll events/ms",
        "min–max",
        "eventpoll ÷ kernel",
        "range from spreads",
        "target: ahead of the kernel",
    ]);
    for &mode in &report.config.modes {
        for &p in &report.config.threads {
            let mut row = vec![mode.label().to_string(), p.to_string()];
            let mut failed = Vec::new();
            for side in Side::ALL {
                let c = report.cell(mode, p, side);
                let (mid, range) = fmt_rate_spread(c.and_then(Cell::rate));
                row.push(mid);
                row.push(range);
                if let Some(why) = c.and_then(|c| c.failure.as_deref()) {
                    failed.push(notes.mark(&format!("{} FAILED", side.label()), why));
                }
            }
            match report.ratio(mode, p) {
                Some((lo, mid, hi)) => {
                    row.push(format!("{mid:.2}x"));
                    row.push(format!("{lo:.2}–{hi:.2}x"));
                    row.push(verdict((lo, hi)).into());
                }
                None => {
                    row.push("-".into());
                    row.push("-".into());
                    row.push(if failed.is_empty() {
                        "not measured".into()
                    } else {
                        failed.join(", ")
                    });
                }
            }
            t.add_row(row);
        }
    }
    for i in 1..=7 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// What the machine's parallelism means for the figures, with `producers` the most producer
/// threads of a cell.
pub fn parallelism_note(cores: usize, producers: usize, harvesters: usize) -> String {
    let mut s = format!("Available parallelism: {cores} core(s).");
    if producers + harvesters > cores {
        s += &format!(
            " Up to {producers} producer(s) + {harvesters} harvester(s) time-share them: thread \
             counts beyond the cores measure contention under time-sharing, not parallel \
             scaling; the figures are still same-run ratios."
        );
    }
    s
}

/// The whole text report.
pub fn text(report: &Report) -> String {
    let c = &report.config;
    let mut notes = Footnotes::default();
    let t = table(report, &mut notes);
    let most = c.threads.iter().copied().max().unwrap_or(0);
    let mut s = format!(
        "eventpoll bench contention: producer threads signal {} eventfds watched by one epoll \
         instance while {} harvester thread(s) wait and drain them (the scheme of stress-epoll)\n\
         {}\n{}\n\
         A trial: each producer writes 1 to each of its share of the eventfds in turn for {:.2} s; \
         each harvester waits on the instance (at most 64 events per wait) and reads every \
         reported eventfd{}.\n\
         events/ms = signals (eventfd writes) harvested per millisecond, from the first write \
         to the last harvest (higher is better);\n\
         each cell: the median of {} pass(es) (kernel and eventpoll alternate within a pass), \
         min–max = its lowest and highest pass.\n\
         A verdict is given only when the whole range the spreads allow is on one side of 1.\n\
         \n{t}\n{notes}",
        fmt_count(c.eventfds as f64),
        c.harvesters,
        report.machine.summary(),
        parallelism_note(report.machine.cores, most, c.harvesters),
        c.duration.as_secs_f64(),
        if c.modes.contains(&Mode::OneShot) {
            " (one-shot: then re-arms it with EPOLL_CTL_MOD)"
        } else {
            ""
        },
        c.passes,
    );
    let lost: u64 = report
        .cells
        .iter()
        .flat_map(|c| &c.trials)
        .map(Trial::lost)
        .sum();
    let produced: u64 = report
        .cells
        .iter()
        .flat_map(|c| &c.trials)
        .map(|t| t.produced)
        .sum();
    s += &format!(
        "Signals produced {}, lost {}. {} trials in {:.1} s.\n",
        fmt_count(produced as f64),
        fmt_count(lost as f64),
        report.cells.iter().map(|c| c.trials.len()).sum::<usize>(),
        report.elapsed.as_secs_f64()
    );
    let cores = report.machine.cores.max(1) as f64;
    let load = report.machine.load_1min.max(report.load_end);
    if load >= cores * 0.5 {
        s += &format!(
            "warning: load average {:.2} (start) / {:.2} (end) on {} cores: other work competes \
             with the benchmark, and ratios can move by 2x between runs\n",
            report.machine.load_1min, report.load_end, report.machine.cores
        );
    }
    s
}

/// The JSON document: machine, settings, every cell with every pass, the ratios.
pub fn json(report: &Report) -> Value {
    let c = &report.config;
    let cells: Vec<Value> = report
        .cells
        .iter()
        .map(|cell| {
            let passes: Vec<Value> = cell
                .trials
                .iter()
                .map(|t| {
                    json!({
                        "produced": t.produced,
                        "harvested": t.harvested,
                        "lost": t.lost(),
                        "waits": t.waits,
                        "reported": t.reported,
                        "elapsed_s": t.elapsed.as_secs_f64(),
                        "events_per_ms": t.events_per_ms(),
                    })
                })
                .collect();
            let rate = cell.rate();
            json!({
                "mode": cell.mode.key(),
                "producers": cell.producers,
                "harvesters": c.harvesters,
                "side": cell.side.key(),
                "status": if cell.failure.is_some() { "failed" } else { "ok" },
                "failure": cell.failure,
                "events_per_ms": rate.map(|r| r.1),
                "events_per_ms_min": rate.map(|r| r.0),
                "events_per_ms_max": rate.map(|r| r.2),
                "passes": passes,
            })
        })
        .collect();
    let mut ratios = Vec::new();
    for &mode in &c.modes {
        for &p in &c.threads {
            if let Some((lo, mid, hi)) = report.ratio(mode, p) {
                ratios.push(json!({
                    "mode": mode.key(),
                    "producers": p,
                    "eventpoll_over_kernel": mid,
                    "range": [lo, hi],
                    "verdict": verdict((lo, hi)),
                }));
            }
        }
    }
    json!({
        "benchmark": "contention",
        "tool": format!("eventpoll bench {}", env!("CARGO_PKG_VERSION")),
        "machine": report.machine.to_json(),
        "available_parallelism": report.machine.cores,
        "load_1min_end": report.load_end,
        "config": {
            "threads": c.threads,
            "harvesters": c.harvesters,
            "eventfds": c.eventfds,
            "duration_s": c.duration.as_secs_f64(),
            "passes": c.passes,
            "modes": c.modes.iter().map(|m| m.key()).collect::<Vec<_>>(),
        },
        "elapsed_s": report.elapsed.as_secs_f64(),
        "cells": cells,
        "ratios": ratios,
    })
}

/// Draw events/ms against producer threads, one line per (side, mode), median passes, with
/// each cell's min–max as a vertical bar.
pub fn svg(report: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    const COLORS: [(u8, u8, u8); 6] = [
        (31, 119, 180),
        (214, 39, 40),
        (44, 160, 44),
        (255, 127, 14),
        (148, 103, 189),
        (23, 190, 207),
    ];
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut series = Vec::new();
    for &mode in &report.config.modes {
        for side in Side::ALL {
            let pts: Vec<(f64, (f64, f64, f64))> = report
                .config
                .threads
                .iter()
                .filter_map(|&p| Some((p as f64, report.cell(mode, p, side)?.rate()?)))
                .collect();
            if !pts.is_empty() {
                series.push((format!("{} {}", side.label(), mode.label()), pts));
            }
        }
    }
    let xmax = report.config.threads.iter().copied().max().unwrap_or(1) as f64;
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, r)| r.2))
        .fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "contention: {} eventfds, {} harvester(s), Linux {}, {} cores",
        report.config.eventfds,
        report.config.harvesters,
        report.machine.kernel,
        report.machine.cores
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(76)
        .build_cartesian_2d(0.5..xmax + 0.5, 0.0..ymax * 1.35)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("producer threads")
        .y_desc("events per ms (higher is better)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_rate(*y))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b);
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().map(|&(x, r)| (x, r.1)), style))
            .map_err(|e| err(&e))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, r)| PathElement::new(vec![(x, r.0), (x, r.2)], style)),
            )
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, r)| Circle::new((x, r.1), 4, color.filled())),
            )
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_eventfd_once() {
        let fds: Vec<i32> = (10..20).collect();
        let mut all: Vec<i32> = (0..3).flat_map(|p| share(&fds, p, 3)).collect();
        all.sort_unstable();
        assert_eq!(all, fds);
        assert_eq!(share(&fds[..2], 3, 4), vec![11]);
    }

    #[test]
    fn spread_gives_low_median_high() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(spread(&[]), None);
        assert_eq!(verdict((1.1, 1.5)), "ahead");
        assert_eq!(verdict((0.5, 0.9)), "NOT ahead");
        assert_eq!(verdict((0.9, 1.2)), "uncertain (spread crosses 1)");
    }
}
