//! Clocks for timerfd: what time it is, and a timer service that calls back at a deadline.
//!
//! - [`Clock`] is the contract: [`Clock::now`] (time since the clock's epoch),
//!   [`Clock::schedule`] (run a callback once the clock reaches a deadline) and
//!   [`Clock::cancel`].
//! - `MonotonicClock` (with `std`) is the host's `CLOCK_MONOTONIC` — the same epoch as the kernel's, so
//!   an absolute expiry of "1 ns after the epoch" is in the past, as it is for a kernel
//!   timerfd. Its callbacks run on one process-wide background thread, started the first time
//!   something is scheduled.
//! - [`ManualClock`] only moves when told to: [`ManualClock::advance`] runs the callbacks
//!   that fall due, in deadline order, on the calling thread — deterministic tests of timers
//!   without sleeping.
//! - [`TimerQueue`] is the deadline-ordered set of callbacks both use; a custom clock can use
//!   it too.
//!
//! ```
//! use eventpoll::platform::{Clock, ManualClock};
//! use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let fired = Arc::new(AtomicBool::new(false));
//! let f = fired.clone();
//! clock.schedule(clock.now() + Duration::from_secs(5), Box::new(move || f.store(true, Ordering::SeqCst)));
//! clock.advance(Duration::from_secs(4));
//! assert!(!fired.load(Ordering::SeqCst));
//! clock.advance(Duration::from_secs(1));
//! assert!(fired.load(Ordering::SeqCst));
//! ```

use crate::sync::{lock, SpinLock};
use alloc::collections::BTreeMap;
use core::time::Duration;
#[cfg(all(any(feature = "std", test), any(test, not(unix))))]
use std::time::Instant;

use super::{Clock, TimerCallback, TimerId};

/// Callbacks ordered by deadline (then by scheduling order).
///
/// ```
/// use eventpoll::platform::TimerQueue;
/// use std::time::Duration;
/// let q = TimerQueue::new();
/// let late = q.insert(Duration::from_secs(2), Box::new(|| {}));
/// q.insert(Duration::from_secs(1), Box::new(|| {}));
/// assert_eq!(q.next_deadline(), Some(Duration::from_secs(1)));
/// assert!(q.pop_due(Duration::from_secs(1)).is_some());
/// assert!(q.cancel(late));
/// assert!(q.is_empty());
/// ```
#[derive(Default)]
pub struct TimerQueue {
    inner: SpinLock<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    timers: BTreeMap<TimerId, TimerCallback>,
    next_seq: u64,
}

impl core::fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimerQueue")
            .field("pending", &lock(&self.inner).timers.len())
            .finish()
    }
}

impl TimerQueue {
    /// An empty queue.
    pub fn new() -> TimerQueue {
        TimerQueue::default()
    }

    /// Add a callback.
    pub fn insert(&self, deadline: Duration, callback: TimerCallback) -> TimerId {
        let mut q = lock(&self.inner);
        let id = TimerId::new(deadline, q.next_seq);
        q.next_seq += 1;
        q.timers.insert(id, callback);
        id
    }

    /// Remove a callback; `false` if it is not queued (any more).
    pub fn cancel(&self, id: TimerId) -> bool {
        lock(&self.inner).timers.remove(&id).is_some()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Duration> {
        lock(&self.inner)
            .timers
            .keys()
            .next()
            .map(|id| id.deadline())
    }

    /// Remove and return the earliest callback if it is due at `now`.
    pub fn pop_due(&self, now: Duration) -> Option<TimerCallback> {
        let mut q = lock(&self.inner);
        let first = *q.timers.keys().next()?;
        if first.deadline() > now {
            return None;
        }
        q.timers.remove(&first)
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        lock(&self.inner).timers.is_empty()
    }

    /// How many callbacks are scheduled.
    pub fn len(&self) -> usize {
        lock(&self.inner).timers.len()
    }
}

/// The host's monotonic clock (`CLOCK_MONOTONIC`), with a process-wide timer thread
/// (with `std` only).
///
/// ```
/// use eventpoll::platform::{Clock, MonotonicClock};
/// let c = MonotonicClock;
/// let a = c.now();
/// assert!(c.now() >= a);
/// ```
#[cfg(any(feature = "std", test))]
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

/// `clock_gettime(id)` as a duration since that clock's epoch.
#[cfg(all(any(feature = "std", test), unix))]
#[allow(unsafe_code)]
fn clock_gettime(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it. The
    // clocks used here always exist on Linux and the BSDs, so the call cannot fail.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(any(feature = "std", test))]
impl Clock for MonotonicClock {
    #[cfg(unix)]
    fn now(&self) -> Duration {
        clock_gettime(libc::CLOCK_MONOTONIC)
    }
    #[cfg(not(unix))]
    fn now(&self) -> Duration {
        // No CLOCK_MONOTONIC: count from the first use in this process.
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }

    fn schedule(&self, deadline: Duration, callback: TimerCallback) -> TimerId {
        let s = service();
        let id = s.queue.insert(deadline, callback);
        // The thread re-reads the earliest deadline; an unpark before it parks is not lost.
        if let Some(t) = &s.thread {
            t.unpark();
        }
        id
    }

    fn cancel(&self, id: TimerId) -> bool {
        service().queue.cancel(id)
    }

    /// std's timed park: no timer round trip for a timed wait (unless a platform is
    /// registered: its tasks park through it, and the timer thread unparks them).
    fn park_until(&self, deadline: Duration) {
        #[cfg(not(loom))]
        let registered = crate::platform::registered().is_some();
        #[cfg(loom)]
        let registered = false;
        if registered {
            crate::platform::park::park_until_by_timer(self, deadline);
        } else {
            #[cfg(any(feature = "std", loom))]
            {
                let now = self.now();
                if deadline > now {
                    crate::platform::park::park_timeout(deadline - now);
                }
            }
        }
    }

    fn realtime_offset(&self) -> Duration {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        wall.saturating_sub(self.now())
    }
}

/// The process-wide timer service of [`MonotonicClock`]. It lives in a `std` `OnceLock`
/// (outside the loom shim): the timer thread is not part of the modelled wait/wake protocol.
#[cfg(any(feature = "std", test))]
struct Service {
    queue: TimerQueue,
    /// The timer thread (`None` if it could not be started: timers then never fire).
    thread: Option<std::thread::Thread>,
}

#[cfg(any(feature = "std", test))]
fn service() -> &'static Service {
    static SERVICE: std::sync::OnceLock<Service> = std::sync::OnceLock::new();
    SERVICE.get_or_init(|| {
        let thread = std::thread::Builder::new()
            .name("eventpoll-timers".into())
            .spawn(|| timer_thread(service()))
            .ok()
            .map(|h| h.thread().clone());
        Service {
            queue: TimerQueue::new(),
            thread,
        }
    })
}

/// Run due callbacks; sleep until the earliest deadline or an unpark (a new timer).
#[cfg(any(feature = "std", test))]
fn timer_thread(s: &'static Service) {
    let clock = MonotonicClock;
    loop {
        while let Some(callback) = s.queue.pop_due(clock.now()) {
            callback();
        }
        match s.queue.next_deadline() {
            None => std::thread::park(),
            Some(d) => {
                let now = clock.now();
                if d > now {
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }
}

/// A clock that moves only when told to, running due callbacks synchronously. It starts one
/// second after its epoch (like a machine just booted), so that absolute expiries near the
/// epoch are in the past, as they are on the kernel's `CLOCK_MONOTONIC`.
///
/// ```
/// use eventpoll::platform::{Clock, ManualClock};
/// use std::time::Duration;
/// let c = ManualClock::new();
/// assert_eq!(c.now(), Duration::from_secs(1));
/// c.advance(Duration::from_millis(250));
/// assert_eq!(c.now(), Duration::from_millis(1250));
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: SpinLock<Duration>,
    queue: TimerQueue,
    realtime_offset: Duration,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::starting_at(Duration::from_secs(1))
    }
}

impl ManualClock {
    /// A clock at 1 s after its epoch.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// A clock at `now`.
    pub fn starting_at(now: Duration) -> ManualClock {
        ManualClock {
            now: SpinLock::new(now),
            queue: TimerQueue::new(),
            realtime_offset: Duration::ZERO,
        }
    }

    /// Set what [`Clock::realtime_offset`] reports (default 0: `CLOCK_REALTIME` runs on the
    /// same timeline).
    pub fn with_realtime_offset(mut self, offset: Duration) -> ManualClock {
        self.realtime_offset = offset;
        self
    }

    /// Move the clock forward by `d`, running every callback that falls due, in deadline
    /// order; each runs with the clock reading its deadline. Callbacks scheduled by
    /// callbacks run too if they fall due within the advance.
    pub fn advance(&self, d: Duration) {
        let target = *lock(&self.now) + d;
        while let Some(next) = self.queue.next_deadline().filter(|&n| n <= target) {
            {
                let mut now = lock(&self.now);
                *now = (*now).max(next);
            }
            if let Some(callback) = self.queue.pop_due(next) {
                callback();
            }
        }
        let mut now = lock(&self.now);
        *now = (*now).max(target);
    }

    /// How many callbacks are waiting.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The earliest deadline of a waiting callback: where a simulator whose tasks all
    /// sleep moves the clock next.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.queue.next_deadline()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *lock(&self.now)
    }
    fn schedule(&self, deadline: Duration, callback: TimerCallback) -> TimerId {
        self.queue.insert(deadline, callback)
    }
    fn cancel(&self, id: TimerId) -> bool {
        self.queue.cancel(id)
    }
    fn realtime_offset(&self) -> Duration {
        self.realtime_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Arc;
    use crate::sync::Mutex;
    use crate::test_prelude::*;
    use std::sync::mpsc;

    #[test]
    fn monotonic_clock_counts_from_boot_and_tracks_instant() {
        // CLOCK_MONOTONIC counts from boot and never exceeds the boot-time clock that
        // /proc/uptime reports (they differ only by time spent suspended).
        let now = MonotonicClock.now();
        assert!(now > Duration::ZERO);
        if let Ok(s) = std::fs::read_to_string("/proc/uptime") {
            let up: f64 = s.split_whitespace().next().unwrap().parse().unwrap();
            assert!(now.as_secs_f64() <= up + 1.0, "{now:?} vs uptime {up}");
        }
        // Each clock reading is bracketed by two Instant readings, so preemption cannot
        // make this flaky: the clock's interval lies within the brackets' (1 ms slack).
        let (i0a, c0, i0b) = (Instant::now(), MonotonicClock.now(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (i1a, c1, i1b) = (Instant::now(), MonotonicClock.now(), Instant::now());
        let dc = c1 - c0;
        let slack = Duration::from_millis(1);
        assert!(dc >= Duration::from_millis(20));
        assert!(dc + slack >= i1a - i0b && dc <= i1b - i0a + slack, "{dc:?}");
    }

    #[test]
    fn monotonic_clock_fires_in_deadline_order() {
        let clock = MonotonicClock;
        let (tx, rx) = mpsc::channel();
        let now = clock.now();
        for (i, ms) in [(1, 40u64), (0, 20), (2, 60)] {
            let tx = tx.clone();
            clock.schedule(
                now + Duration::from_millis(ms),
                Box::new(move || {
                    tx.send((i, MonotonicClock.now())).unwrap();
                }),
            );
        }
        let cancelled = clock.schedule(now + Duration::from_millis(30), Box::new(|| panic!()));
        assert!(clock.cancel(cancelled));
        assert!(!clock.cancel(cancelled));
        for expect in 0..3 {
            let (i, at) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(i, expect);
            assert!(at >= now + Duration::from_millis(20 * (expect as u64 + 1)));
        }
    }

    #[test]
    fn manual_clock_runs_callbacks_at_their_deadlines() {
        let clock = Arc::new(ManualClock::starting_at(Duration::ZERO));
        let log = Arc::new(Mutex::new(Vec::new()));
        for s in [3u64, 1, 2] {
            let (c, l) = (clock.clone(), log.clone());
            clock.schedule(
                Duration::from_secs(s),
                Box::new(move || lock(&l).push((s, c.now()))),
            );
        }
        clock.advance(Duration::from_millis(1500));
        assert_eq!(*lock(&log), vec![(1, Duration::from_secs(1))]);
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            *lock(&log),
            vec![
                (1, Duration::from_secs(1)),
                (2, Duration::from_secs(2)),
                (3, Duration::from_secs(3))
            ]
        );
        assert_eq!(clock.now(), Duration::from_millis(11_500));
        assert_eq!(clock.pending(), 0);
    }

    #[test]
    fn manual_clock_chained_callbacks() {
        // A callback that schedules another within the same advance: both run.
        let clock = Arc::new(ManualClock::starting_at(Duration::ZERO));
        let count = Arc::new(Mutex::new(0));
        let (c, n) = (clock.clone(), count.clone());
        clock.schedule(
            Duration::from_secs(1),
            Box::new(move || {
                *lock(&n) += 1;
                let n2 = n.clone();
                c.schedule(Duration::from_secs(2), Box::new(move || *lock(&n2) += 1));
            }),
        );
        clock.advance(Duration::from_secs(5));
        assert_eq!(*lock(&count), 2);
    }
}
