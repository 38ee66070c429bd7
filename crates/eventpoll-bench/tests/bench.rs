//! The bench crate's integration tests: small runs of the benchmarks through the public API,
//! checking what they count, not how fast anything is.

use eventpoll_bench::contention::{self, trial, Mode, Side, Workload};
use eventpoll_bench::experiment::Silent;
use eventpoll_bench::micro::{Api, EngineApi, KernelApi};
use std::time::Duration;

fn tiny(mode: Mode, producers: usize, harvesters: usize) -> Workload {
    Workload {
        mode,
        producers,
        harvesters,
        eventfds: 8,
        duration: Duration::from_millis(30),
        grace: Duration::from_secs(5),
    }
}

/// Every signal the producers wrote is harvested, on the kernel and on the engine, in every
/// mode, with one and with several harvesters.
#[test]
fn contention_loses_no_event_on_kernel_or_engine() {
    let kernel = KernelApi::default();
    let engine = EngineApi::new(64);
    for mode in Mode::ALL {
        for (producers, harvesters) in [(1, 1), (3, 1), (2, 2)] {
            let w = tiny(mode, producers, harvesters);
            for (side, t) in [
                ("kernel", trial(&kernel, &w)),
                ("engine", trial(&engine, &w)),
            ] {
                let t =
                    t.unwrap_or_else(|e| panic!("{side} {mode:?} {producers}x{harvesters}: {e}"));
                assert!(t.produced > 0, "{side} {mode:?}: nothing produced: {t:?}");
                assert_eq!(
                    t.harvested, t.produced,
                    "{side} {mode:?} {producers} producers, {harvesters} harvesters: lost events"
                );
                assert!(t.waits > 0 && t.reported >= t.waits, "{side}: {t:?}");
                assert!(t.events_per_ms() > 0.0);
            }
        }
    }
    assert!(
        engine.table.open_fds().is_empty(),
        "the engine's trial closed everything"
    );
}

/// A tiny run reports a cell per (mode, producers, side) with one trial per pass, a ratio
/// for each (mode, producers), says how many cores there are, and serialises.
#[test]
fn a_tiny_contention_run_reports_every_cell() {
    let config = contention::Config {
        threads: vec![1, 2],
        harvesters: 1,
        eventfds: 4,
        duration: Duration::from_millis(20),
        passes: 2,
        modes: vec![Mode::Level, Mode::OneShot],
        grace: Duration::from_secs(5),
    };
    let r = contention::run(&config, &mut Silent);
    assert_eq!(r.cells.len(), 2 * 2 * 2);
    for c in &r.cells {
        assert_eq!(c.failure, None, "{c:?}");
        assert_eq!(c.trials.len(), 2, "{c:?}");
        for t in &c.trials {
            assert!(t.lost() == 0 && t.produced > 0, "{t:?} in {c:?}");
        }
        let (lo, mid, hi) = c.rate().unwrap();
        assert!(lo <= mid && mid <= hi && lo > 0.0);
    }
    let (lo, mid, hi) = r.ratio(Mode::Level, 2).unwrap();
    assert!(lo <= mid && mid <= hi, "{lo} {mid} {hi}");
    assert!(r.cell(Mode::OneShot, 1, Side::Engine).is_some());
    let text = contention::text(&r);
    for needle in ["Available parallelism:", "events/ms", "min–max", "lost 0"] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let v = contention::json(&r);
    assert_eq!(v["benchmark"], "contention");
    assert_eq!(v["cells"].as_array().unwrap().len(), 8);
    assert_eq!(v["ratios"].as_array().unwrap().len(), 4);
    assert_eq!(v["cells"][0]["passes"].as_array().unwrap().len(), 2);
    assert!(v["available_parallelism"].as_u64().unwrap() >= 1);
    let svg = std::env::temp_dir().join(format!("eventpoll-contention-{}.svg", std::process::id()));
    contention::svg(&r, &svg).unwrap();
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.contains("producer threads"));
    std::fs::remove_file(&svg).unwrap();
}

/// The kernel with the events of the eventfd at data 0 hidden from every wait: what an epoll
/// that loses wakeups would look like to the benchmark.
#[derive(Default)]
struct Lossy(KernelApi);

impl Api for Lossy {
    type Ev = libc::epoll_event;
    fn buffer(&self, n: usize) -> Vec<Self::Ev> {
        self.0.buffer(n)
    }
    fn eventfd(&self, init: u32) -> Result<i32, String> {
        self.0.eventfd(init)
    }
    fn epoll(&self) -> Result<i32, String> {
        self.0.epoll()
    }
    fn ctl(&self, ep: i32, op: i32, fd: i32, events: u32, data: u64) -> Result<(), String> {
        self.0.ctl(ep, op, fd, events, data)
    }
    fn wait(&self, ep: i32, buf: &mut [Self::Ev], timeout_ms: i32) -> Result<usize, String> {
        let n = self.0.wait(ep, buf, timeout_ms)?;
        let kept: Vec<Self::Ev> = buf[..n]
            .iter()
            .copied()
            .filter(|e| self.0.data_of(e) != 0)
            .collect();
        buf[..kept.len()].copy_from_slice(&kept);
        Ok(kept.len())
    }
    fn data_of(&self, ev: &Self::Ev) -> u64 {
        self.0.data_of(ev)
    }
    fn add(&self, fd: i32, v: u64) -> Result<(), String> {
        self.0.add(fd, v)
    }
    fn take(&self, fd: i32) -> Result<Option<u64>, String> {
        self.0.take(fd)
    }
    fn close(&self, fd: i32) {
        self.0.close(fd)
    }
}

/// Lost events are counted, not waited for forever: the trial ends after the grace period
/// and reports what was never harvested.
#[test]
fn contention_counts_lost_events() {
    let w = Workload {
        grace: Duration::from_millis(100),
        ..tiny(Mode::Level, 2, 1)
    };
    let t = trial(&Lossy::default(), &w).unwrap();
    assert!(t.produced > 0 && t.harvested > 0, "{t:?}");
    assert!(t.lost() > 0, "the hidden eventfd's signals are lost: {t:?}");
    assert_eq!(t.lost(), t.produced - t.harvested);
}
