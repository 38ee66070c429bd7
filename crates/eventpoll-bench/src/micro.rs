//! `eventpoll bench micro`: single operations of the eventpoll engine against the kernel's
//! epoll, measured in the same run and printed as ratios.
//!
//! Both sides run the same generic code through the [`Api`] trait: the kernel through real
//! eventfds and epoll system calls ([`KernelApi`]), the engine through the Linux-shaped
//! `FdTable` ([`EngineApi`]). Each timing is the best of a few trials (the least disturbed
//! by other work on the machine), reported with the spread of all trials (best–worst). The figures: `epoll_ctl` ADD+DEL and MOD; waits with 1 and
//! 100 ready items, level- and edge-triggered; the cost of a wait with 10 ready items as the
//! number watched grows from 100 to 1,000,000 (flatness; the kernel only up to its descriptor
//! limit); a cross-thread wake round trip; and the engine's heap bytes per watch (counted by
//! [`crate::alloc`]) against the kernel's slab objects per watch.

use crate::engine::table_for;
use crate::experiment::{fmt_count, fmt_ns};
use crate::sys::{self, Io};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use eventpoll::linux::{EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use eventpoll::objects::eventfd::EFD_NONBLOCK;
use eventpoll::{EpollEvent, Errno, FdTable};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const IN: u32 = 0x001;
const ET: u32 = 1 << 31;

/// The epoll-shaped calls the micro-benchmarks need, on descriptor numbers.
pub trait Api: Sync {
    /// The event record type.
    type Ev: Copy + Send;
    /// A zeroed event buffer of `n` entries.
    fn buffer(&self, n: usize) -> Vec<Self::Ev>;
    /// `eventfd(init, EFD_NONBLOCK)`.
    fn eventfd(&self, init: u32) -> Result<i32, String>;
    /// `epoll_create1(0)`.
    fn epoll(&self) -> Result<i32, String>;
    /// `epoll_ctl(ep, op, fd, {events, data})`.
    fn ctl(&self, ep: i32, op: i32, fd: i32, events: u32, data: u64) -> Result<(), String>;
    /// `epoll_wait(ep, buf, buf.len(), timeout_ms)`.
    fn wait(&self, ep: i32, buf: &mut [Self::Ev], timeout_ms: i32) -> Result<usize, String>;
    /// The data word of a reported event.
    fn data_of(&self, ev: &Self::Ev) -> u64;
    /// Write `v` to an eventfd.
    fn add(&self, fd: i32, v: u64) -> Result<(), String>;
    /// Read an eventfd's counter (`None`: it was zero, `EAGAIN`).
    fn take(&self, fd: i32) -> Result<Option<u64>, String>;
    /// `close(fd)`.
    fn close(&self, fd: i32);
}

/// The kernel: real eventfds and epoll instances (closed by [`Api::close`] or on drop).
#[derive(Debug, Default)]
pub struct KernelApi {
    owned: Mutex<HashMap<RawFd, OwnedFd>>,
}

impl KernelApi {
    fn keep(&self, fd: OwnedFd) -> i32 {
        let raw = fd.as_raw_fd();
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(raw, fd);
        raw
    }
}

impl Api for KernelApi {
    type Ev = libc::epoll_event;
    fn buffer(&self, n: usize) -> Vec<libc::epoll_event> {
        vec![libc::epoll_event { events: 0, u64: 0 }; n]
    }
    fn eventfd(&self, init: u32) -> Result<i32, String> {
        Ok(self.keep(sys::eventfd_nonblock(init).map_err(|e| format!("eventfd: {e}"))?))
    }
    fn epoll(&self) -> Result<i32, String> {
        Ok(self.keep(sys::epoll_create().map_err(|e| format!("epoll_create1: {e}"))?))
    }
    fn ctl(&self, ep: i32, op: i32, fd: i32, events: u32, data: u64) -> Result<(), String> {
        sys::epoll_ctl(ep, op, fd, events, data).map_err(|e| format!("epoll_ctl: {e}"))
    }
    fn wait(
        &self,
        ep: i32,
        buf: &mut [libc::epoll_event],
        timeout_ms: i32,
    ) -> Result<usize, String> {
        sys::epoll_wait(ep, buf, timeout_ms).map_err(|e| format!("epoll_wait: {e}"))
    }
    fn data_of(&self, ev: &libc::epoll_event) -> u64 {
        ev.u64 // a copy (the packed field is never referenced)
    }
    fn add(&self, fd: i32, v: u64) -> Result<(), String> {
        match sys::write(fd, &v.to_ne_bytes()).map_err(|e| format!("write: {e}"))? {
            Io::Done(8) => Ok(()),
            other => Err(format!("eventfd write gave {other:?}")),
        }
    }
    fn take(&self, fd: i32) -> Result<Option<u64>, String> {
        let mut b = [0u8; 8];
        match sys::read(fd, &mut b).map_err(|e| format!("read: {e}"))? {
            Io::Done(8) => Ok(Some(u64::from_ne_bytes(b))),
            Io::WouldBlock => Ok(None),
            other => Err(format!("eventfd read gave {other:?}")),
        }
    }
    fn close(&self, fd: i32) {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd);
    }
}

/// The engine: a descriptor table of its own.
#[derive(Debug)]
pub struct EngineApi {
    /// The table every call goes through.
    pub table: FdTable,
}

impl EngineApi {
    /// A table with room for `fds` descriptors and watches.
    pub fn new(fds: usize) -> EngineApi {
        EngineApi {
            table: table_for(fds, fds),
        }
    }
}

fn errno(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |e| format!("{what}: {}", e)
}

impl Api for EngineApi {
    type Ev = EpollEvent;
    fn buffer(&self, n: usize) -> Vec<EpollEvent> {
        vec![EpollEvent::default(); n]
    }
    fn eventfd(&self, init: u32) -> Result<i32, String> {
        self.table
            .eventfd(init, EFD_NONBLOCK)
            .map_err(errno("eventfd"))
    }
    fn epoll(&self) -> Result<i32, String> {
        self.table.epoll_create1(0).map_err(errno("epoll_create1"))
    }
    fn ctl(&self, ep: i32, op: i32, fd: i32, events: u32, data: u64) -> Result<(), String> {
        let ev = EpollEvent { events, data };
        self.table
            .epoll_ctl(ep, op, fd, Some(&ev))
            .map_err(errno("epoll_ctl"))
    }
    fn wait(&self, ep: i32, buf: &mut [EpollEvent], timeout_ms: i32) -> Result<usize, String> {
        let max = buf.len().min(i32::MAX as usize) as i32;
        self.table
            .epoll_wait(ep, buf, max, timeout_ms)
            .map_err(errno("epoll_wait"))
    }
    fn data_of(&self, ev: &EpollEvent) -> u64 {
        ev.data()
    }
    fn add(&self, fd: i32, v: u64) -> Result<(), String> {
        match self.table.write(fd, &v.to_ne_bytes()) {
            Ok(8) => Ok(()),
            Ok(n) => Err(format!("eventfd write gave {n}")),
            Err(e) => Err(errno("write")(e)),
        }
    }
    fn take(&self, fd: i32) -> Result<Option<u64>, String> {
        let mut b = [0u8; 8];
        match self.table.read(fd, &mut b) {
            Ok(8) => Ok(Some(u64::from_ne_bytes(b))),
            Err(Errno::EAGAIN) => Ok(None),
            Ok(n) => Err(format!("eventfd read gave {n}")),
            Err(e) => Err(errno("read")(e)),
        }
    }
    fn close(&self, fd: i32) {
        let _ = self.table.close(fd);
    }
}

/// How long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Length of one trial.
    pub slice: Duration,
    /// Trials per figure and side; the best counts.
    pub trials: usize,
}

impl Timing {
    /// The default: 3 trials of 150 ms.
    pub fn full() -> Timing {
        Timing {
            slice: Duration::from_millis(150),
            trials: 3,
        }
    }
    /// `--quick`: 2 trials of 30 ms.
    pub fn quick() -> Timing {
        Timing {
            slice: Duration::from_millis(30),
            trials: 2,
        }
    }
}

/// The cost of one operation, in nanoseconds, over a figure's trials: the best trial's (the
/// least disturbed by other work, the figure reported) and the worst trial's (with the best,
/// the figure's spread).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// The lowest mean cost of a trial.
    pub best: f64,
    /// The highest mean cost of a trial.
    pub worst: f64,
}

impl Cost {
    fn new() -> Cost {
        Cost {
            best: f64::MAX,
            worst: 0.0,
        }
    }
    fn add(&mut self, ns: f64) {
        self.best = self.best.min(ns);
        self.worst = self.worst.max(ns);
    }
}

/// Run `op` (which does `per_call` operations) in batches until `slice` has passed, `trials`
/// times; the best and worst mean cost of one operation in nanoseconds.
fn best_ns(
    timing: Timing,
    per_call: u64,
    mut op: impl FnMut() -> Result<(), String>,
) -> Result<Cost, String> {
    for _ in 0..16 {
        op()?; // warm-up
    }
    let mut cost = Cost::new();
    for _ in 0..timing.trials.max(1) {
        let start = Instant::now();
        let end = start + timing.slice;
        let mut calls = 0u64;
        loop {
            for _ in 0..32 {
                op()?;
            }
            calls += 32;
            if Instant::now() >= end {
                break;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / (calls * per_call) as f64;
        cost.add(ns);
    }
    Ok(cost)
}

/// Like [`best_ns`], but only the part of each call that `op` times itself counts (`op`
/// returns the nanoseconds of its timed part); the timer's own cost is subtracted.
fn best_timed_ns(
    timing: Timing,
    mut op: impl FnMut() -> Result<f64, String>,
) -> Result<Cost, String> {
    let overhead = timer_overhead_ns();
    for _ in 0..16 {
        op()?;
    }
    let mut cost = Cost::new();
    for _ in 0..timing.trials.max(1) {
        let end = Instant::now() + timing.slice;
        let (mut total, mut calls) = (0.0, 0u64);
        while Instant::now() < end {
            for _ in 0..32 {
                total += op()?;
            }
            calls += 32;
        }
        cost.add((total / calls as f64 - overhead).max(0.0));
    }
    Ok(cost)
}

/// The cost of reading the clock, as seen between two back-to-back reads (median).
pub fn timer_overhead_ns() -> f64 {
    let mut v: Vec<u128> = (0..2001)
        .map(|_| {
            let a = Instant::now();
            let b = Instant::now();
            (b - a).as_nanos()
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// ADD then DEL of one eventfd on an otherwise empty instance: ns per pair.
pub fn ctl_add_del<A: Api>(api: &A, timing: Timing) -> Result<Cost, String> {
    let ep = api.epoll()?;
    let fd = api.eventfd(0)?;
    let r = best_ns(timing, 1, || {
        api.ctl(ep, EPOLL_CTL_ADD, fd, IN, 1)?;
        api.ctl(ep, EPOLL_CTL_DEL, fd, 0, 0)
    });
    api.close(fd);
    api.close(ep);
    r
}

/// MOD of one watched (not ready) eventfd: ns per MOD.
pub fn ctl_mod<A: Api>(api: &A, timing: Timing) -> Result<Cost, String> {
    let ep = api.epoll()?;
    let fd = api.eventfd(0)?;
    api.ctl(ep, EPOLL_CTL_ADD, fd, IN, 0)?;
    let mut data = 0;
    let r = best_ns(timing, 1, || {
        data += 1;
        api.ctl(ep, EPOLL_CTL_MOD, fd, IN, data)
    });
    api.close(fd);
    api.close(ep);
    r
}

/// A wait that reports `ready` items, all of the instance's items being ready eventfds:
/// ns per wait. Level-triggered items stay ready; edge-triggered ones are re-triggered by a
/// write to each before every wait, and only the wait is timed.
pub fn wait_ready<A: Api>(
    api: &A,
    ready: usize,
    edge: bool,
    timing: Timing,
) -> Result<Cost, String> {
    let ep = api.epoll()?;
    let mut fds = Vec::with_capacity(ready);
    let mut buf = api.buffer(ready.max(1) * 2);
    let events = if edge { IN | ET } else { IN };
    let result = (|| {
        for i in 0..ready {
            let fd = api.eventfd(1)?;
            fds.push(fd);
            api.ctl(ep, EPOLL_CTL_ADD, fd, events, i as u64)?;
        }
        let check = |n: usize| {
            if n == ready {
                Ok(())
            } else {
                Err(format!("wait reported {n} events, expected {ready}"))
            }
        };
        if edge {
            best_timed_ns(timing, || {
                for &fd in &fds {
                    api.add(fd, 1)?;
                }
                let t0 = Instant::now();
                let n = api.wait(ep, &mut buf, 0)?;
                let ns = t0.elapsed().as_nanos() as f64;
                check(n)?;
                Ok(ns)
            })
        } else {
            best_ns(timing, 1, || check(api.wait(ep, &mut buf, 0)?))
        }
    })();
    for fd in fds {
        api.close(fd);
    }
    api.close(ep);
    result
}

/// An instance watching `watched` eventfds of which `ready` (spread evenly) are readable.
pub struct Watched<'a, A: Api> {
    api: &'a A,
    ep: i32,
    fds: Vec<i32>,
    ready: usize,
    /// Heap growth of the ADDs (engine only; see [`crate::alloc`]), bytes.
    pub add_heap_bytes: i64,
    /// Time taken by the ADDs.
    pub add_time: Duration,
}

impl<'a, A: Api> Watched<'a, A> {
    /// Create the eventfds, then ADD them all (level-triggered, `EPOLLIN`), measuring the
    /// heap growth and time of the ADDs alone.
    pub fn new(api: &'a A, watched: usize, ready: usize) -> Result<Watched<'a, A>, String> {
        let ep = api.epoll()?;
        let mut w = Watched {
            api,
            ep,
            fds: Vec::with_capacity(watched),
            ready,
            add_heap_bytes: 0,
            add_time: Duration::ZERO,
        };
        let step = (watched / ready.max(1)).max(1);
        for i in 0..watched {
            let hot = i % step == 0 && i / step < ready;
            w.fds.push(api.eventfd(u32::from(hot))?);
        }
        let t0 = Instant::now();
        let (r, grew) = crate::alloc::measure(|| {
            for (i, &fd) in w.fds.iter().enumerate() {
                api.ctl(ep, EPOLL_CTL_ADD, fd, IN, i as u64)?;
            }
            Ok::<(), String>(())
        });
        w.add_time = t0.elapsed();
        r?;
        w.add_heap_bytes = grew;
        Ok(w)
    }

    /// The best ns per wait (each must report the `ready` items).
    pub fn wait_ns(&self, timing: Timing) -> Result<Cost, String> {
        let mut buf = self.api.buffer(self.ready.max(1) * 2);
        best_ns(timing, 1, || {
            let n = self.api.wait(self.ep, &mut buf, 0)?;
            if n == self.ready {
                Ok(())
            } else {
                Err(format!("wait reported {n} events, expected {}", self.ready))
            }
        })
    }
}

impl<A: Api> Drop for Watched<'_, A> {
    fn drop(&mut self) {
        self.api.close(self.ep);
        for &fd in &self.fds {
            self.api.close(fd);
        }
    }
}

/// Cross-thread wake round trip: this thread writes eventfd X and blocks in `epoll_wait`
/// until the other thread, blocked in `epoll_wait` on X, has read X and written eventfd Y.
/// ns per round trip (best of the trials).
pub fn wake_round_trip<A: Api>(api: &A, timing: Timing) -> Result<Cost, String> {
    const STOP: u64 = 1 << 40;
    let (x, y) = (api.eventfd(0)?, api.eventfd(0)?);
    let (ep_a, ep_b) = (api.epoll()?, api.epoll()?);
    api.ctl(ep_a, EPOLL_CTL_ADD, y, IN, 0)?;
    api.ctl(ep_b, EPOLL_CTL_ADD, x, IN, 0)?;
    let result = std::thread::scope(|s| {
        let answerer = s.spawn(|| -> Result<(), String> {
            let mut buf = api.buffer(4);
            loop {
                api.wait(ep_b, &mut buf, 5_000)?;
                match api.take(x)? {
                    Some(v) if v >= STOP => return Ok(()),
                    Some(_) => api.add(y, 1)?,
                    None => {} // a spurious wakeup: wait again
                }
            }
        });
        let mut buf = api.buffer(4);
        let mut trip = || -> Result<(), String> {
            api.add(x, 1)?;
            loop {
                if api.wait(ep_a, &mut buf, 5_000)? == 0 {
                    return Err("no answer within 5 s".into());
                }
                if api.take(y)?.is_some() {
                    return Ok(());
                }
            }
        };
        let r = best_ns(timing, 1, &mut trip);
        let stop = api.add(x, STOP);
        let joined = answerer
            .join()
            .map_err(|_| "answering thread panicked".to_string())?;
        stop?;
        joined?;
        r
    });
    for fd in [x, y, ep_a, ep_b] {
        api.close(fd);
    }
    result
}

/// The kernel's memory per watch: its slab objects (`eventpoll_epi` and one `eventpoll_pwq`
/// for a target with one wait queue), with where the sizes came from; or the epoll(7)
/// estimate when the slab sizes cannot be read.
pub fn kernel_bytes_per_watch() -> (f64, String) {
    let slabinfo = std::fs::read_to_string("/proc/slabinfo").ok();
    let from_slabinfo = |name: &str| -> Option<u64> {
        slabinfo.as_deref()?.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == name).then(|| f.nth(2)?.parse().ok())?
        })
    };
    let from_sys = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/kernel/slab/{name}/slab_size"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let mut parts = Vec::new();
    let mut total = 0;
    for name in ["eventpoll_epi", "eventpoll_pwq"] {
        let (size, src) = match (from_slabinfo(name), from_sys(name)) {
            (Some(s), _) => (s, "/proc/slabinfo"),
            (None, Some(s)) => (s, "/sys/kernel/slab (merged cache)"),
            (None, None) => {
                return (
                    160.0,
                    "epoll(7) estimate (~160 bytes per watch on 64-bit; slab sizes unreadable)"
                        .into(),
                )
            }
        };
        total += size;
        parts.push(format!("{name} {size} B from {src}"));
    }
    (
        total as f64,
        format!("slab objects per watch: {}", parts.join(" + ")),
    )
}

/// One line of the micro report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable key for the JSON output.
    pub key: String,
    /// What was measured.
    pub label: String,
    /// Unit of the two values ("ns" or "bytes").
    pub unit: &'static str,
    /// The engine's value, or why there is none.
    pub engine: Result<f64, String>,
    /// The kernel's value, or why there is none.
    pub kernel: Result<f64, String>,
    /// The engine's spread over its trials, lowest and highest (None: a single count).
    pub engine_spread: Option<(f64, f64)>,
    /// The kernel's spread over its trials, lowest and highest (None: a single count).
    pub kernel_spread: Option<(f64, f64)>,
    /// The target, as text, and whether it was met (None: no target or not measurable).
    pub target: Option<(String, Option<bool>)>,
    /// The spreads allow values on both sides of the target: no verdict.
    pub target_uncertain: bool,
    /// A remark (e.g. where the kernel figure comes from).
    pub note: Option<String>,
}

impl Figure {
    /// Kernel ÷ engine (above 1: the engine is faster or smaller).
    pub fn ratio(&self) -> Option<f64> {
        match (&self.engine, &self.kernel) {
            (Ok(e), Ok(k)) if *e > 0.0 => Some(k / e),
            _ => None,
        }
    }

    /// The range of kernel ÷ engine the spreads allow: (kernel lowest ÷ engine highest,
    /// kernel highest ÷ engine lowest); a side without a spread counts as its value.
    pub fn ratio_range(&self) -> Option<(f64, f64)> {
        let span = |v: &Result<f64, String>, s: Option<(f64, f64)>| {
            v.as_ref().ok().map(|&x| s.unwrap_or((x, x)))
        };
        let (e0, e1) = span(&self.engine, self.engine_spread)?;
        let (k0, k1) = span(&self.kernel, self.kernel_spread)?;
        (e0 > 0.0 && e1 > 0.0).then(|| (k0 / e1, k1 / e0))
    }

    /// The target's verdict as printed: met, NOT met, uncertain or not measured.
    pub fn verdict(&self) -> Option<&'static str> {
        let (_, met) = self.target.as_ref()?;
        Some(match met {
            _ if self.target_uncertain => "uncertain (spread crosses it)",
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        })
    }
}

fn fig(
    key: &str,
    label: &str,
    engine: Result<Cost, String>,
    kernel: Result<Cost, String>,
) -> Figure {
    let spread = |c: &Result<Cost, String>| c.as_ref().ok().map(|c| (c.best, c.worst));
    Figure {
        key: key.into(),
        label: label.into(),
        unit: "ns",
        engine_spread: spread(&engine),
        kernel_spread: spread(&kernel),
        engine: engine.map(|c| c.best),
        kernel: kernel.map(|c| c.best),
        target: None,
        target_uncertain: false,
        note: None,
    }
}

/// Whether a ratio target (kernel ÷ engine ≥ `min`) was met; uncertain when the range the
/// spreads allow lies on both sides of it.
fn ratio_target(f: &mut Figure, min: f64) {
    let met = f.ratio().map(|r| r >= min);
    f.target = Some((format!("ratio >= {min}x"), met));
    f.target_uncertain = f
        .ratio_range()
        .is_some_and(|(lo, hi)| lo < min && hi >= min);
}

/// Settings of a micro run.
#[derive(Debug, Clone)]
pub struct MicroConfig {
    /// Timing of each figure.
    pub timing: Timing,
    /// Watched counts for the flatness figure (10 ready each).
    pub flat_sizes: Vec<usize>,
    /// Watch counts for the bytes-per-watch figure.
    pub bytes_sizes: Vec<usize>,
    /// Figure groups to run (see [`GROUPS`]).
    pub groups: Vec<String>,
}

/// The figure groups, for `--only`: ctl (ADD+DEL, MOD), wait (1 and 100 ready), flat (10
/// ready among many watched), wake (cross-thread round trip), bytes (bytes per watch).
pub const GROUPS: [&str; 5] = ["ctl", "wait", "flat", "wake", "bytes"];

impl MicroConfig {
    /// The default run.
    pub fn full() -> MicroConfig {
        MicroConfig {
            timing: Timing::full(),
            flat_sizes: vec![100, 10_000, 1_000_000],
            bytes_sizes: vec![100_000, 1_000_000],
            groups: GROUPS.iter().map(|g| g.to_string()).collect(),
        }
    }
    /// `--quick`: shorter trials, the same sizes.
    pub fn quick() -> MicroConfig {
        MicroConfig {
            timing: Timing::quick(),
            ..MicroConfig::full()
        }
    }
}

/// The micro report.
#[derive(Debug, Clone)]
pub struct MicroReport {
    /// Where it ran.
    pub machine: crate::machine::Machine,
    /// Every figure, in order.
    pub figures: Vec<Figure>,
    /// The clock's own cost, subtracted from per-call timings.
    pub timer_overhead_ns: f64,
    /// Trials per figure and side.
    pub trials: usize,
    /// Length of one trial.
    pub slice: Duration,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Run every micro figure; `progress(label)` is called before each.
pub fn run(config: &MicroConfig, progress: &mut dyn FnMut(&str)) -> MicroReport {
    let begin = Instant::now();
    let machine = crate::machine::Machine::describe();
    let t = config.timing;
    let has = |g: &str| config.groups.iter().any(|x| x == g);
    let mut config = config.clone();
    if !has("flat") {
        config.flat_sizes.clear();
    }
    if !has("bytes") {
        config.bytes_sizes.clear();
    }
    let kernel = KernelApi::default();
    let big = config
        .flat_sizes
        .iter()
        .chain(&config.bytes_sizes)
        .copied()
        .max()
        .unwrap_or(0);
    let engine = EngineApi::new(big + 64);
    let mut figures = Vec::new();

    if has("ctl") {
        progress("ctl ADD+DEL");
        let mut f = fig(
            "ctl_add_del",
            "epoll_ctl ADD + DEL (one eventfd)",
            ctl_add_del(&engine, t),
            ctl_add_del(&kernel, t),
        );
        ratio_target(&mut f, 10.0);
        figures.push(f);
        progress("ctl MOD");
        figures.push(fig(
            "ctl_mod",
            "epoll_ctl MOD",
            ctl_mod(&engine, t),
            ctl_mod(&kernel, t),
        ));
    }

    let waits: &[(usize, bool)] = if has("wait") {
        &[(1, false), (1, true), (100, false), (100, true)]
    } else {
        &[]
    };
    for &(ready, edge) in waits {
        let mode = if edge { "ET" } else { "LT" };
        progress(&format!("wait, {ready} ready {mode}"));
        let mut f = fig(
            &format!("wait_{ready}_ready_{}", mode.to_lowercase()),
            &format!("epoll_wait, {ready} ready ({mode})"),
            wait_ready(&engine, ready, edge, t),
            wait_ready(&kernel, ready, edge, t),
        );
        if ready == 100 && !edge {
            ratio_target(&mut f, 5.0);
        }
        if edge {
            f.note = Some("items re-triggered before each wait; only the wait is timed".into());
        }
        figures.push(f);
    }

    // Flatness: 10 ready among more and more watched.
    let (soft, _) = sys::fd_limit().unwrap_or((0, 0));
    let kernel_max = (soft as usize).saturating_sub(sys::open_fd_count() + 16);
    let mut engine_flat = Vec::new();
    let mut kernel_flat = Vec::new();
    let mut engine_bytes: HashMap<usize, Result<f64, String>> = HashMap::new();
    let mut sizes: Vec<usize> = config
        .flat_sizes
        .iter()
        .chain(&config.bytes_sizes)
        .copied()
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for &n in &sizes {
        let flat = config.flat_sizes.contains(&n);
        progress(&format!("{} watched (engine)", fmt_count(n as f64)));
        let e = Watched::new(&engine, n, 10).and_then(|w| {
            if config.bytes_sizes.contains(&n) {
                engine_bytes.insert(n, bytes_per_watch(w.add_heap_bytes, n));
            }
            if flat {
                w.wait_ns(t)
            } else {
                Ok(Cost {
                    best: 0.0,
                    worst: 0.0,
                })
            }
        });
        if let Err(err) = &e {
            engine_bytes.entry(n).or_insert_with(|| Err(err.clone()));
        }
        if !flat {
            continue;
        }
        progress(&format!("{} watched (kernel)", fmt_count(n as f64)));
        let k = if n + 1 > kernel_max {
            Err(format!(
                "needs {} descriptors; the descriptor limit is {}",
                fmt_count(n as f64 + 1.0),
                fmt_count(soft as f64)
            ))
        } else {
            Watched::new(&kernel, n, 10).and_then(|w| w.wait_ns(t))
        };
        engine_flat.push((n, e.clone()));
        kernel_flat.push((n, k.clone()));
        figures.push(fig(
            &format!("wait_10_ready_of_{n}"),
            &format!(
                "epoll_wait, 10 ready of {} watched (LT)",
                fmt_count(n as f64)
            ),
            e,
            k,
        ));
    }
    if has("flat") {
        figures.push(flatness(&engine_flat, &kernel_flat));
    }

    if has("wake") {
        progress("wake round trip");
        let mut f = fig(
            "wake_round_trip",
            "cross-thread wake round trip (eventfd ping-pong)",
            wake_round_trip(&engine, t),
            wake_round_trip(&kernel, t),
        );
        ratio_target(&mut f, 1.0);
        f.target = f
            .target
            .map(|(_, met)| ("no slower than the kernel".into(), met));
        figures.push(f);
    }

    let (kb, ksrc) = kernel_bytes_per_watch();
    for &n in &config.bytes_sizes {
        let e = engine_bytes
            .remove(&n)
            .unwrap_or_else(|| Err("not measured".into()));
        let met = e.as_ref().ok().map(|&b| b <= 96.0);
        figures.push(Figure {
            key: format!("bytes_per_watch_{n}"),
            label: format!("bytes per watch, {} watches", fmt_count(n as f64)),
            unit: "bytes",
            engine: e,
            kernel: Ok(kb),
            engine_spread: None,
            kernel_spread: None,
            target: Some(("eventpoll <= 96 bytes".into(), met)),
            target_uncertain: false,
            note: Some(format!(
                "eventpoll: heap growth from adding the watches (requested bytes, counting allocator); kernel: {ksrc}"
            )),
        });
    }
    MicroReport {
        machine,
        figures,
        timer_overhead_ns: timer_overhead_ns(),
        trials: t.trials.max(1),
        slice: t.slice,
        elapsed: begin.elapsed(),
    }
}

fn bytes_per_watch(grew: i64, n: usize) -> Result<f64, String> {
    if !crate::alloc::installed() {
        return Err("the counting allocator is not installed (feature count-alloc off)".into());
    }
    Ok(grew as f64 / n as f64)
}

/// Best wait costs at the most ÷ at the fewest watched, with the spread the trials allow
/// (most's best ÷ fewest's worst, most's worst ÷ fewest's best), and the two counts.
type Flat = (f64, (f64, f64), usize, usize);

/// The flatness figure: wait cost at the largest watched count ÷ at the smallest, for each
/// side (the kernel's largest is what its descriptor limit allowed).
fn flatness(
    engine: &[(usize, Result<Cost, String>)],
    kernel: &[(usize, Result<Cost, String>)],
) -> Figure {
    let span = |v: &[(usize, Result<Cost, String>)]| -> Result<Flat, String> {
        let ok: Vec<(usize, Cost)> = v
            .iter()
            .filter_map(|(n, r)| r.as_ref().ok().map(|&x| (*n, x)))
            .collect();
        match (ok.first(), ok.last()) {
            (Some(&(n0, a)), Some(&(n1, b))) if n1 > n0 && a.best > 0.0 => Ok((
                b.best / a.best,
                (b.best / a.worst, b.worst / a.best),
                n0,
                n1,
            )),
            _ => Err("fewer than two sizes measured".into()),
        }
    };
    let e = span(engine);
    let k = span(kernel);
    let describe = |r: &Result<Flat, String>| match r {
        Ok((_, _, a, b)) => format!("{} / {}", fmt_count(*b as f64), fmt_count(*a as f64)),
        Err(e) => e.clone(),
    };
    let met = e.as_ref().ok().map(|(x, _, _, _)| *x <= 1.5);
    let target_uncertain = e
        .as_ref()
        .is_ok_and(|(_, (lo, hi), _, _)| *lo <= 1.5 && *hi > 1.5);
    Figure {
        key: "wait_flatness".into(),
        label: "flatness: wait cost at most ÷ at fewest watched".into(),
        unit: "x",
        note: Some(format!(
            "eventpoll: {}; kernel: {}",
            describe(&e),
            describe(&k)
        )),
        engine_spread: e.as_ref().ok().map(|x| x.1),
        kernel_spread: k.as_ref().ok().map(|x| x.1),
        engine: e.map(|x| x.0),
        kernel: k.map(|x| x.0),
        target: Some(("eventpoll <= 1.5".into(), met)),
        target_uncertain,
    }
}

fn number(x: f64, unit: &str) -> String {
    match unit {
        "ns" => fmt_ns(x),
        "x" => format!("{x:.2}"),
        _ => format!("{x:.1} {unit}"),
    }
}

/// A value with its spread: "288 ns (281–301)"; a single count alone.
fn value(v: &Result<f64, String>, spread: Option<(f64, f64)>, unit: &str) -> String {
    match (v, spread) {
        (Ok(x), Some((lo, hi))) if unit == "ns" => {
            format!("{} ({}–{})", fmt_ns(*x), fmt_ns(lo), fmt_ns(hi))
        }
        (Ok(x), Some((lo, hi))) if unit == "x" => format!("{x:.2} ({lo:.2}–{hi:.2})"),
        (Ok(x), _) => number(*x, unit),
        (Err(_), _) => "-".into(),
    }
}

/// The micro report as text: a table and numbered notes.
pub fn text(r: &MicroReport) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "figure",
        "eventpoll",
        "kernel",
        "kernel ÷ eventpoll",
        "target",
        "note",
    ]);
    let mut notes = crate::report::Footnotes::default();
    for f in &r.figures {
        let ratio = match (f.ratio(), f.ratio_range()) {
            (Some(x), Some((lo, hi))) if f.unit != "x" && lo != hi => {
                format!("{x:.2}x ({lo:.2}–{hi:.2}x)")
            }
            (Some(x), _) if f.unit != "x" => format!("{x:.2}x"),
            _ => "-".into(),
        };
        let target = match (&f.target, f.verdict()) {
            (Some((text, _)), Some(v)) => format!("{text}: {v}"),
            _ => String::new(),
        };
        let mut marks = Vec::new();
        if let Some(n) = &f.note {
            marks.push(notes.mark("", n).trim().to_string());
        }
        for (side, v) in [("eventpoll", &f.engine), ("kernel", &f.kernel)] {
            if let Err(why) = v {
                marks.push(notes.mark(&format!("no {side}"), why));
            }
        }
        t.add_row(vec![
            f.label.clone(),
            value(&f.engine, f.engine_spread, f.unit),
            value(&f.kernel, f.kernel_spread, f.unit),
            ratio,
            target,
            marks.join(", "),
        ]);
    }
    for i in 1..=3 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let cores = r.machine.cores.max(1) as f64;
    let warning = if r.machine.load_1min >= cores * 0.5 {
        format!(
            "warning: load average {:.2} at start on {} cores: other work competes with the \
             benchmark; spreads are wide and ratios can move by 2x between runs\n",
            r.machine.load_1min, r.machine.cores
        )
    } else {
        String::new()
    };
    format!(
        "eventpoll bench micro: eventpoll vs the kernel's epoll, same run\n{}\n\
         Each timed figure is the best of {} trials of {} ms per side (the least disturbed), \
         with (lowest–highest) over the trials; the ratio's range is\n\
         what those spreads allow, and a target the range crosses gets no verdict. Byte counts \
         are single counts.\n\n{t}\n{notes}\
         Timer cost {:.0} ns (subtracted where single calls are timed). {} figures in {:.1} s.\n{warning}",
        r.machine.summary(),
        r.trials,
        r.slice.as_millis(),
        r.timer_overhead_ns,
        r.figures.len(),
        r.elapsed.as_secs_f64()
    )
}

/// The micro report as JSON.
pub fn json(r: &MicroReport) -> Value {
    let side = |v: &Result<f64, String>, spread: Option<(f64, f64)>| match v {
        Ok(x) => match spread {
            Some((lo, hi)) => json!({ "value": x, "min": lo, "max": hi }),
            None => json!({ "value": x }),
        },
        Err(e) => json!({ "value": null, "reason": e }),
    };
    let figures: Vec<Value> = r
        .figures
        .iter()
        .map(|f| {
            json!({
                "key": f.key,
                "label": f.label,
                "unit": f.unit,
                "eventpoll": side(&f.engine, f.engine_spread),
                "kernel": side(&f.kernel, f.kernel_spread),
                "kernel_over_eventpoll": f.ratio(),
                "kernel_over_eventpoll_range": f.ratio_range().map(|(lo, hi)| [lo, hi]),
                "target_verdict": f.verdict(),
                "target": f.target.as_ref().map(|(t, _)| t),
                "target_met": f.target.as_ref().and_then(|(_, m)| *m),
                "note": f.note,
            })
        })
        .collect();
    json!({
        "benchmark": "micro",
        "tool": format!("eventpoll bench {}", env!("CARGO_PKG_VERSION")),
        "machine": r.machine.to_json(),
        "timer_overhead_ns": r.timer_overhead_ns,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "figures": figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        slice: Duration::from_millis(5),
        trials: 1,
    };

    fn each_figure<A: Api>(api: &A) {
        assert!(ctl_add_del(api, T).unwrap().best > 0.0);
        assert!(ctl_mod(api, T).unwrap().best > 0.0);
        for (ready, edge) in [(1, false), (3, true), (5, false)] {
            let c = wait_ready(api, ready, edge, T).unwrap();
            assert!(c.best >= 0.0 && c.worst >= c.best);
        }
        let w = Watched::new(api, 50, 10).unwrap();
        assert!(w.wait_ns(T).unwrap().best > 0.0);
        drop(w);
        assert!(wake_round_trip(api, T).unwrap().best > 0.0);
    }

    #[test]
    fn kernel_figures_run() {
        each_figure(&KernelApi::default());
    }

    #[test]
    fn engine_figures_run() {
        each_figure(&EngineApi::new(1024));
    }

    #[test]
    fn engine_watches_are_counted_on_the_heap() {
        let api = EngineApi::new(4096);
        let w = Watched::new(&api, 1000, 10).unwrap();
        if crate::alloc::installed() {
            assert!(w.add_heap_bytes > 0, "{}", w.add_heap_bytes);
            assert!(w.add_heap_bytes < 10_000 * 1000, "{}", w.add_heap_bytes);
        }
        assert_eq!(api.table.open_fds().len(), 1001);
        drop(w);
        assert!(api.table.open_fds().is_empty(), "everything closed");
    }

    #[test]
    fn kernel_bytes_per_watch_has_a_source() {
        let (b, src) = kernel_bytes_per_watch();
        assert!(b >= 64.0, "{b}");
        assert!(src.contains("slab") || src.contains("epoll(7)"), "{src}");
    }

    #[test]
    fn a_tiny_micro_run_reports_and_serialises() {
        let config = MicroConfig {
            timing: Timing { trials: 2, ..T },
            flat_sizes: vec![100, 1_000],
            bytes_sizes: vec![1_000],
            groups: GROUPS.iter().map(|g| g.to_string()).collect(),
        };
        let r = run(&config, &mut |_| {});
        let ctl = r.figures.iter().find(|f| f.key == "ctl_add_del").unwrap();
        assert!(ctl.ratio().is_some_and(|x| x > 0.0));
        // Every timed figure carries its spread, the value inside it; the ratio its range.
        for f in r.figures.iter().filter(|f| f.unit != "bytes") {
            for (v, sp) in [(&f.engine, f.engine_spread), (&f.kernel, f.kernel_spread)] {
                let (lo, hi) = sp.unwrap_or_else(|| panic!("no spread: {f:?}"));
                let x = *v.as_ref().unwrap();
                assert!(lo <= x && x <= hi, "{f:?}");
            }
            if f.unit == "ns" {
                let (lo, hi) = f.ratio_range().unwrap();
                let x = f.ratio().unwrap();
                assert!(lo <= x && x <= hi, "{f:?}");
            }
        }
        let flat = r.figures.iter().find(|f| f.key == "wait_flatness").unwrap();
        assert!(flat.engine.is_ok() && flat.kernel.is_ok(), "{flat:?}");
        let text = text(&r);
        assert!(text.contains("epoll_ctl ADD + DEL"), "{text}");
        let v: Value = serde_json::from_str(&serde_json::to_string(&json(&r)).unwrap()).unwrap();
        assert_eq!(v["benchmark"], "micro");
        assert_eq!(v["figures"].as_array().unwrap().len(), r.figures.len());
        let ctl = &v["figures"][0];
        assert!(
            ctl["eventpoll"]["min"].as_f64().unwrap() <= ctl["eventpoll"]["max"].as_f64().unwrap()
        );
        assert!(ctl["kernel_over_eventpoll_range"].is_array(), "{ctl}");
        assert!(ctl["target_verdict"].is_string(), "{ctl}");
        assert!(v["machine"]["cpu_model"].is_string());
        let only_ctl = MicroConfig {
            groups: vec!["ctl".into()],
            ..config
        };
        let r = run(&only_ctl, &mut |_| {});
        let keys: Vec<&str> = r.figures.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["ctl_add_del", "ctl_mod"]);
    }
}
