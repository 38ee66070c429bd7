//! timerfd, modelled on Linux `fs/timerfd.c` (hrtimer-based clocks), running on a
//! [`Clock`] — the host's monotonic clock, or a [`ManualClock`](crate::platform::ManualClock)
//! for deterministic tests.
//!
//! - The state is an expiration count (`ticks`), an "expired" flag, the interval, and the
//!   timer's expiry on the clock's timeline.
//! - Poll: `IN` while `ticks > 0` (no `RDNORM`, as on Linux).
//! - Expiry (the clock's callback) sets the flag, adds one tick and wakes the queue with key
//!   `IN`. An interval timer is **not** restarted by its expiry: it is restarted lazily, by
//!   the next `read` (or `timerfd_gettime`), which also counts the periods that passed
//!   meanwhile (`hrtimer_forward_now`). So an unread interval timer wakes its queue once —
//!   measured: a 20 ms interval timer left unread for 250 ms reports an edge-triggered item
//!   once, and the read returns 12.
//! - `read` (8 bytes; fewer is `EINVAL`) returns the count and clears it; at 0 it fails
//!   with `EAGAIN` or blocks (non-exclusively) until an expiry.
//! - `timerfd_settime` validates flags and both timespecs first (`EINVAL`, even for a bad
//!   descriptor), returns the previous setting (remaining time, never negative), clears the
//!   count without waking, and arms: relative values count from now, absolute ones
//!   (`TFD_TIMER_ABSTIME`) from the clock's epoch. An expiry already in the past fires at
//!   once, inside the call (the kernel fires it from the next timer interrupt, microseconds
//!   later; the caller cannot tell the difference). A zero value disarms.
//! - Lock order: the state lock is held while an expiry (or a restart that fires at once)
//!   wakes the queue, as Linux's `timerfd_tmrproc` holds `ctx->wqh.lock` across its tick and
//!   `wake_up_locked_poll`, and `poll` takes it: a poll that sees a tick finds its wakeup
//!   delivered (an epoll item watching the timer is on its ready list by then). Nothing the
//!   wake runs takes the state lock (epoll callbacks touch only their instance's ready list
//!   and waiters; a blocked reader is only unparked), so the queue's lock nests inside it.
//! - Clocks: `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME` (and their `_ALARM` variants) run on the
//!   table's clock; `CLOCK_REALTIME` too, with absolute times shifted by
//!   [`Clock::realtime_offset`]. `TFD_TIMER_CANCEL_ON_SET` is accepted; the engine's clocks
//!   are never set, so it never cancels.
//!
//! ```
//! use eventpoll::platform::ManualClock;
//! use eventpoll::{FdTable, ITimerSpec, Timespec, User, TableConfig};
//! use eventpoll::objects::timerfd::{CLOCK_MONOTONIC, TFD_NONBLOCK};
//! use std::{sync::Arc, time::Duration};
//!
//! let clock = Arc::new(ManualClock::new());
//! let t = FdTable::with_clock(TableConfig::default(), User::new(1 << 20), clock.clone());
//! let fd = t.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK).unwrap();
//! let every_second = Timespec { tv_sec: 1, tv_nsec: 0 };
//! t.timerfd_settime(fd, 0, &ITimerSpec { interval: every_second, value: every_second }).unwrap();
//! clock.advance(Duration::from_millis(3500));
//! let mut buf = [0u8; 8];
//! assert_eq!(t.read(fd, &mut buf), Ok(8));
//! assert_eq!(u64::from_ne_bytes(buf), 3);
//! ```

use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::platform::{Clock, TimerId};
use crate::prelude::*;
use crate::sync::{lock, Arc, Mutex};
use crate::table::{FdTable, ITimerSpec, Timespec};
use crate::wait_queue::{Exclusivity, WaitQueue};
use core::time::Duration;

/// `CLOCK_REALTIME`.
pub const CLOCK_REALTIME: i32 = 0;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: i32 = 1;
/// `CLOCK_BOOTTIME`.
pub const CLOCK_BOOTTIME: i32 = 7;
/// `CLOCK_REALTIME_ALARM`.
pub const CLOCK_REALTIME_ALARM: i32 = 8;
/// `CLOCK_BOOTTIME_ALARM`.
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;
/// `TFD_NONBLOCK` (= `O_NONBLOCK`).
pub const TFD_NONBLOCK: i32 = O_NONBLOCK;
/// `TFD_CLOEXEC` (= `O_CLOEXEC`).
pub const TFD_CLOEXEC: i32 = O_CLOEXEC;
/// `TFD_TIMER_ABSTIME`: the value is an absolute time.
pub const TFD_TIMER_ABSTIME: i32 = 1;
/// `TFD_TIMER_CANCEL_ON_SET`.
pub const TFD_TIMER_CANCEL_ON_SET: i32 = 2;

const NSEC: i128 = 1_000_000_000;

fn ts_to_ns(ts: &Timespec) -> i128 {
    ts.tv_sec as i128 * NSEC + ts.tv_nsec as i128
}

fn ns_to_ts(ns: i128) -> Timespec {
    let ns = ns.max(0);
    Timespec {
        tv_sec: (ns / NSEC).min(i64::MAX as i128) as i64,
        tv_nsec: (ns % NSEC) as i64,
    }
}

fn dur_to_ns(d: Duration) -> i128 {
    d.as_nanos() as i128
}

fn ns_to_dur(ns: i128) -> Duration {
    let ns = ns.max(0);
    Duration::new((ns / NSEC).min(u64::MAX as i128) as u64, (ns % NSEC) as u32)
}

/// The timer's state, under its lock (Linux's `timerfd_ctx` under `wqh.lock`).
struct TimerState {
    /// Expirations not yet read.
    ticks: u64,
    /// The timer fired and (for an interval timer) has not been restarted yet.
    expired: bool,
    /// The period, in ns (0: one-shot).
    interval: i128,
    /// The expiry on the clock's timeline, in ns (may be negative for realtime times
    /// before the clock's epoch; 0 when disarmed).
    expires: i128,
    /// The scheduled callback, when the timer is running.
    pending: Option<TimerId>,
    /// Bumped whenever the timer is stopped or restarted: a callback that was already on
    /// its way when that happened finds a different generation and does nothing.
    generation: u64,
}

/// What the clock's callback needs: the state and the queue (not the clock, so that no
/// reference cycle runs through the clock's timer list).
struct Shared {
    state: Mutex<TimerState>,
    queue: WaitQueue,
}

impl Shared {
    /// `timerfd_triggered`: the tick and its wakeup under the state lock (see "Lock
    /// order" in the module documentation).
    fn fire(&self, generation: u64) {
        let mut st = lock(&self.state);
        if st.generation != generation {
            return;
        }
        st.pending = None;
        st.expired = true;
        st.ticks += 1;
        self.queue.wake(Events::IN);
    }
}

/// A timerfd. See the [module documentation](self).
pub struct TimerFd {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    clockid: i32,
}

impl core::fmt::Debug for TimerFd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let st = lock(&self.shared.state);
        f.debug_struct("TimerFd")
            .field("clockid", &self.clockid)
            .field("ticks", &st.ticks)
            .field("interval_ns", &st.interval)
            .field("expires_ns", &st.expires)
            .finish()
    }
}

impl TimerFd {
    /// A disarmed timer on `clock`; `clockid` must be one `timerfd_create` accepts
    /// (`EINVAL` otherwise).
    pub fn new(clock: Arc<dyn Clock>, clockid: i32) -> Result<Arc<TimerFd>> {
        if !matches!(
            clockid,
            CLOCK_REALTIME
                | CLOCK_MONOTONIC
                | CLOCK_BOOTTIME
                | CLOCK_REALTIME_ALARM
                | CLOCK_BOOTTIME_ALARM
        ) {
            return Err(Errno::EINVAL);
        }
        Ok(Arc::new(TimerFd {
            shared: Arc::new(Shared {
                state: Mutex::new(TimerState {
                    ticks: 0,
                    expired: false,
                    interval: 0,
                    expires: 0,
                    pending: None,
                    generation: 0,
                }),
                queue: WaitQueue::new(),
            }),
            clock,
            clockid,
        }))
    }

    /// The queue the timer wakes on expiry.
    pub fn queue(&self) -> &WaitQueue {
        &self.shared.queue
    }

    /// Expirations not yet read.
    pub fn ticks(&self) -> u64 {
        lock(&self.shared.state).ticks
    }

    fn now_ns(&self) -> i128 {
        dur_to_ns(self.clock.now())
    }

    /// Stop the running timer (`hrtimer_try_to_cancel`).
    fn stop(&self, st: &mut TimerState) {
        st.generation += 1;
        if let Some(id) = st.pending.take() {
            self.clock.cancel(id);
        }
    }

    /// Start the timer at `st.expires` (`hrtimer_start`/`hrtimer_restart`); an expiry
    /// already due fires inline: the tick and the wakeup, under the state lock the caller
    /// holds (`st`), as an expiry from the clock does (see "Lock order").
    fn start(&self, st: &mut TimerState, now: i128) {
        self.stop(st);
        if st.expires <= now {
            st.expired = true;
            st.ticks += 1;
            self.shared.queue.wake(Events::IN);
            return;
        }
        let generation = st.generation;
        let shared = self.shared.clone();
        st.pending = Some(self.clock.schedule(
            ns_to_dur(st.expires),
            Box::new(move || shared.fire(generation)),
        ));
    }

    /// `hrtimer_forward_now`: move the expiry past `now` by whole periods; returns how many.
    fn forward(st: &mut TimerState, now: i128) -> u64 {
        let delta = now - st.expires;
        if delta < 0 {
            return 0;
        }
        let interval = st.interval.max(1);
        let mut overruns: i128 = 1;
        if delta >= interval {
            overruns = delta / interval;
            st.expires += interval * overruns;
            if st.expires > now {
                return overruns.min(u64::MAX as i128) as u64;
            }
            overruns += 1;
        }
        st.expires += interval;
        overruns.min(u64::MAX as i128) as u64
    }

    /// Fold an expired interval timer's missed periods into `ticks` and restart it.
    fn catch_up(&self, st: &mut TimerState, now: i128) {
        let missed = Self::forward(st, now);
        st.ticks = st.ticks.saturating_add(missed.saturating_sub(1));
        self.start(st, now);
    }

    fn remaining(st: &TimerState, now: i128) -> ITimerSpec {
        ITimerSpec {
            interval: ns_to_ts(st.interval),
            value: ns_to_ts(st.expires - now),
        }
    }

    /// `timerfd_settime(flags, new)`: returns the previous setting.
    ///
    /// Linux: [timerfd_settime(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
    #[doc(alias = "timerfd_settime")]
    pub fn settime(&self, flags: i32, new: &ITimerSpec) -> Result<ITimerSpec> {
        check_settime_args(flags, new)?;
        let old;
        {
            let mut st = lock(&self.shared.state);
            let now = self.now_ns();
            self.stop(&mut st);
            if st.expired && st.interval != 0 {
                Self::forward(&mut st, now);
            }
            old = Self::remaining(&st, now);
            // timerfd_setup
            st.expired = false;
            st.ticks = 0;
            st.interval = ts_to_ns(&new.interval);
            let texp = ts_to_ns(&new.value);
            if texp == 0 {
                st.expires = 0;
            } else {
                st.expires = if flags & TFD_TIMER_ABSTIME == 0 {
                    now + texp
                } else if matches!(self.clockid, CLOCK_REALTIME | CLOCK_REALTIME_ALARM) {
                    texp - dur_to_ns(self.clock.realtime_offset())
                } else {
                    texp
                };
                self.start(&mut st, now);
            }
        }
        Ok(old)
    }

    /// `timerfd_gettime`: the remaining time and the interval. Like Linux, this restarts an
    /// expired interval timer (counting the periods missed).
    ///
    /// Linux: [timerfd_gettime(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
    #[doc(alias = "timerfd_gettime")]
    pub fn gettime(&self) -> ITimerSpec {
        let mut st = lock(&self.shared.state);
        let now = self.now_ns();
        if st.expired && st.interval != 0 {
            st.expired = false;
            self.catch_up(&mut st, now);
        }
        Self::remaining(&st, now)
    }

    /// Take the expiration count if non-zero (the body of `timerfd_read`).
    fn try_take(&self) -> Option<u64> {
        let mut st = lock(&self.shared.state);
        if st.ticks == 0 {
            return None;
        }
        let mut ticks = st.ticks;
        if st.expired && st.interval != 0 {
            let now = self.now_ns();
            let missed = Self::forward(&mut st, now);
            ticks = ticks.saturating_add(missed.saturating_sub(1));
            // Never due at once: the expiry was moved past now.
            self.start(&mut st, now);
        }
        st.expired = false;
        st.ticks = 0;
        Some(ticks)
    }

    /// Read the expiration count (`timerfd_read`).
    pub fn take(&self, mode: IoMode) -> Result<u64> {
        match self.try_take() {
            Some(v) => Ok(v),
            None if mode.is_nonblocking() => Err(Errno::EAGAIN),
            None => self
                .shared
                .queue
                .block_until(Exclusivity::NonExclusive, None, || self.try_take()),
        }
    }

    #[cfg(test)]
    fn state(&self) -> crate::sync::MutexGuard<'_, TimerState> {
        lock(&self.shared.state)
    }
}

fn check_settime_args(flags: i32, new: &ITimerSpec) -> Result<()> {
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0
        || !new.value.is_valid()
        || !new.interval.is_valid()
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl FileOps for TimerFd {
    fn poll(&self) -> Events {
        if lock(&self.shared.state).ticks > 0 {
            Events::IN
        } else {
            Events::empty()
        }
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.shared.queue)
    }
    fn read(&self, buf: &mut [u8], mode: IoMode) -> Result<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let ticks = self.take(mode)?;
        buf[..8].copy_from_slice(&ticks.to_ne_bytes());
        Ok(8)
    }
    fn release(&self) {
        let mut st = lock(&self.shared.state);
        self.stop(&mut st);
    }
}

fn timerfd_of(file: &File) -> Result<&TimerFd> {
    file.downcast::<TimerFd>().ok_or(Errno::EINVAL)
}

impl FdTable {
    /// `timerfd_create(clockid, flags)` on the table's clock: `EINVAL` for an unknown clock
    /// or flags other than `TFD_NONBLOCK`/`TFD_CLOEXEC`.
    ///
    /// Linux: [timerfd_create(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
    pub fn timerfd_create(&self, clockid: i32, flags: i32) -> Result<i32> {
        if flags & !(TFD_NONBLOCK | TFD_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let tfd = TimerFd::new(self.clock.clone(), clockid)?;
        self.install(
            File::with_flags(tfd, flags & O_NONBLOCK),
            flags & TFD_CLOEXEC,
        )
    }

    /// `timerfd_settime(fd, flags, new)`: returns the previous setting. Bad flags or an
    /// invalid timespec is `EINVAL` (checked first), a closed `fd` `EBADF`, a descriptor that
    /// is not a timerfd `EINVAL`.
    ///
    /// Linux: [timerfd_settime(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
    pub fn timerfd_settime(&self, fd: i32, flags: i32, new: &ITimerSpec) -> Result<ITimerSpec> {
        check_settime_args(flags, new)?;
        let file = self.get(fd)?;
        timerfd_of(&file)?.settime(flags, new)
    }

    /// `timerfd_gettime(fd)`.
    ///
    /// Linux: [timerfd_gettime(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
    pub fn timerfd_gettime(&self, fd: i32) -> Result<ITimerSpec> {
        let file = self.get(fd)?;
        Ok(timerfd_of(&file)?.gettime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::{join_within, Recorder};
    use crate::platform::{ManualClock, MonotonicClock};
    use crate::table::TableConfig;
    use crate::{Interrupt, User};

    fn ts(s: i64, ns: i64) -> Timespec {
        Timespec {
            tv_sec: s,
            tv_nsec: ns,
        }
    }
    fn spec(interval: Timespec, value: Timespec) -> ITimerSpec {
        ITimerSpec { interval, value }
    }
    const MS: Duration = Duration::from_millis(1);

    fn manual() -> (Arc<ManualClock>, Arc<TimerFd>, File) {
        let clock = Arc::new(ManualClock::new());
        let tfd = TimerFd::new(clock.clone(), CLOCK_MONOTONIC).unwrap();
        let file = File::with_flags(tfd.clone(), O_NONBLOCK);
        (clock, tfd, file)
    }
    fn read(f: &File) -> Result<u64> {
        let mut b = [0u8; 8];
        f.read(&mut b).map(|_| u64::from_ne_bytes(b))
    }

    #[test]
    fn one_shot() {
        let (clock, tfd, f) = manual();
        let rec = Recorder::attach(tfd.queue());
        assert_eq!(f.poll(), Events::empty());
        tfd.settime(0, &spec(ts(0, 0), ts(0, 5_000_000))).unwrap();
        clock.advance(4 * MS);
        assert_eq!(f.poll(), Events::empty());
        assert_eq!(rec.count(), 0);
        clock.advance(MS);
        assert_eq!(f.poll(), Events::IN);
        assert_eq!(rec.keys(), vec![Events::IN]);
        assert_eq!(tfd.gettime(), spec(ts(0, 0), ts(0, 0)));
        assert_eq!(read(&f), Ok(1));
        assert_eq!(f.poll(), Events::empty());
        assert_eq!(read(&f), Err(Errno::EAGAIN));
        clock.advance(Duration::from_secs(10));
        assert_eq!(rec.count(), 1, "a one-shot fires once");
        assert_eq!(clock.pending(), 0);
    }

    // Kernel: 20 ms interval, unread for 250 ms: the ET item is reported once; the read
    // returns 12; the timer restarts on read and fires again.
    #[test]
    fn interval_wakes_once_until_read() {
        let (clock, tfd, f) = manual();
        let rec = Recorder::attach(tfd.queue());
        tfd.settime(0, &spec(ts(0, 20_000_000), ts(0, 20_000_000)))
            .unwrap();
        clock.advance(150 * MS);
        assert_eq!(rec.count(), 1);
        clock.advance(100 * MS);
        assert_eq!(rec.count(), 1);
        assert_eq!(read(&f), Ok(12));
        // Restarted on the 20 ms grid: 260 ms is the next expiry (read at 250 ms).
        clock.advance(9 * MS);
        assert_eq!(rec.count(), 1, "next expiry is at 260 ms");
        clock.advance(MS);
        assert_eq!(rec.count(), 2);
        assert_eq!(read(&f), Ok(1));
    }

    // Kernel: timerfd_gettime on an expired interval timer restarts it (another wake
    // follows without a read) and the missed periods are counted.
    #[test]
    fn gettime_restarts_expired_interval_timer() {
        let (clock, tfd, f) = manual();
        let rec = Recorder::attach(tfd.queue());
        tfd.settime(0, &spec(ts(0, 20_000_000), ts(0, 20_000_000)))
            .unwrap();
        clock.advance(105 * MS); // fired at 20; 40, 60, 80, 100 missed
        assert_eq!(rec.count(), 1);
        let cur = tfd.gettime();
        assert_eq!(cur, spec(ts(0, 20_000_000), ts(0, 15_000_000)));
        clock.advance(15 * MS);
        assert_eq!(rec.count(), 2);
        assert_eq!(read(&f), Ok(6));
    }

    #[test]
    fn exact_multiple_of_interval() {
        let (clock, tfd, f) = manual();
        tfd.settime(0, &spec(ts(1, 0), ts(1, 0))).unwrap();
        clock.advance(Duration::from_secs(3)); // expiries at 1, 2, 3 (now == expiry)
        assert_eq!(read(&f), Ok(3));
        assert_eq!(tfd.gettime().value, ts(1, 0));
    }

    #[test]
    fn settime_returns_old_and_clears_count_without_waking() {
        let (clock, tfd, f) = manual();
        let rec = Recorder::attach(tfd.queue());
        // Kernel: arm 10 s with interval 1.0000005 s, old is zero; re-arm returns remaining.
        assert_eq!(
            tfd.settime(0, &spec(ts(1, 500), ts(10, 0))),
            Ok(spec(ts(0, 0), ts(0, 0)))
        );
        clock.advance(Duration::from_millis(2500));
        assert_eq!(
            tfd.settime(0, &spec(ts(0, 0), ts(0, 0))),
            Ok(spec(ts(1, 500), ts(7, 500_000_000)))
        );
        // Kernel: an expired timer's count is cleared by re-arming; no wake.
        tfd.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(0, 1)))
            .unwrap();
        assert_eq!(f.poll(), Events::IN);
        let n = rec.count();
        tfd.settime(0, &spec(ts(0, 0), ts(100, 0))).unwrap();
        assert_eq!(f.poll(), Events::empty());
        assert_eq!(rec.count(), n);
        // Kernel: the old value of a fired one-shot is 0; of a fired interval timer (10 ms
        // then 30 ms, 100 ms later) the interval and the time to the next period.
        tfd.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(0, 1)))
            .unwrap();
        assert_eq!(
            tfd.settime(0, &spec(ts(0, 0), ts(0, 0))),
            Ok(spec(ts(0, 0), ts(0, 0)))
        );
        tfd.settime(0, &spec(ts(0, 30_000_000), ts(0, 10_000_000)))
            .unwrap();
        clock.advance(100 * MS);
        assert_eq!(
            tfd.settime(0, &spec(ts(0, 0), ts(0, 0))),
            Ok(spec(ts(0, 30_000_000), ts(0, 30_000_000)))
        );
        assert_eq!(
            clock.pending(),
            0,
            "disarming cancels the scheduled callback"
        );
    }

    #[test]
    fn absolute_past_fires_at_once() {
        // Kernel: TFD_TIMER_ABSTIME with 1 ns fires (poll shows IN), read returns 1.
        let (_clock, tfd, f) = manual();
        let rec = Recorder::attach(tfd.queue());
        tfd.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(0, 1)))
            .unwrap();
        assert_eq!(rec.keys(), vec![Events::IN]);
        assert_eq!(read(&f), Ok(1));
        // With an interval, the periods since the expiry are counted on read: 1 s after the
        // epoch with the clock at 1 s: expiries at 1 ns, 1 ms, ..., 999.000001 ms, 1 s.
        tfd.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 1_000_000), ts(0, 1)))
            .unwrap();
        assert_eq!(read(&f), Ok(1000));
    }

    #[test]
    fn argument_checks() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let t = FdTable::with_clock(TableConfig::default(), User::new(1 << 20), clock);
        // Kernel: clocks 0, 1, 7, 8, 9 accepted; 2..=6, 11, -1 EINVAL; flags 1, 2, O_DIRECT
        // EINVAL; CLOEXEC, CLOEXEC|NONBLOCK fine.
        for c in [0, 1, 7, 8, 9] {
            assert!(t.timerfd_create(c, 0).is_ok(), "clock {c}");
        }
        for c in [2, 3, 4, 5, 6, 11, -1] {
            assert_eq!(t.timerfd_create(c, 0), Err(Errno::EINVAL), "clock {c}");
        }
        for f in [1, 2, 0o40000] {
            assert_eq!(t.timerfd_create(1, f), Err(Errno::EINVAL));
        }
        let fd = t.timerfd_create(1, TFD_CLOEXEC | TFD_NONBLOCK).unwrap();
        assert_eq!(t.cloexec(fd), Ok(true));
        // Kernel: settime flags 4 EINVAL; 2 and 3 fine; tv_nsec 1e9, tv_sec -1, interval
        // nsec -1 EINVAL; on an eventfd EINVAL; on a bad fd EBADF.
        let arm = spec(ts(0, 0), ts(1, 0));
        assert_eq!(t.timerfd_settime(fd, 4, &arm), Err(Errno::EINVAL));
        assert!(t.timerfd_settime(fd, 2, &spec(ts(0, 0), ts(0, 0))).is_ok());
        assert!(t.timerfd_settime(fd, 3, &spec(ts(0, 0), ts(0, 0))).is_ok());
        for bad in [
            spec(ts(0, 0), ts(0, 1_000_000_000)),
            spec(ts(0, 0), ts(-1, 0)),
            spec(ts(0, -1), ts(1, 0)),
        ] {
            assert_eq!(t.timerfd_settime(fd, 0, &bad), Err(Errno::EINVAL));
            assert_eq!(t.timerfd_settime(999, 0, &bad), Err(Errno::EINVAL));
        }
        let efd = t.eventfd(0, 0).unwrap();
        assert_eq!(t.timerfd_settime(efd, 0, &arm), Err(Errno::EINVAL));
        assert_eq!(t.timerfd_gettime(efd), Err(Errno::EINVAL));
        assert_eq!(t.timerfd_settime(999, 0, &arm), Err(Errno::EBADF));
        assert_eq!(t.timerfd_gettime(999), Err(Errno::EBADF));
        // Kernel: gettime of a disarmed timer is zero; read of 7 bytes EINVAL; read of a
        // disarmed non-blocking timer EAGAIN.
        assert_eq!(t.timerfd_gettime(fd), Ok(ITimerSpec::default()));
        assert_eq!(t.read(fd, &mut [0; 7]), Err(Errno::EINVAL));
        assert_eq!(t.read(fd, &mut [0; 8]), Err(Errno::EAGAIN));
        // Huge values do not overflow.
        let far = spec(ts(i64::MAX, 999_999_999), ts(i64::MAX, 999_999_999));
        assert!(t.timerfd_settime(fd, 0, &far).is_ok());
        assert!(t.timerfd_gettime(fd).unwrap().value.tv_sec > 1 << 62);
    }

    #[test]
    fn realtime_absolute_uses_the_offset() {
        let clock = Arc::new(ManualClock::new().with_realtime_offset(Duration::from_secs(1000)));
        let rt = TimerFd::new(clock.clone(), CLOCK_REALTIME).unwrap();
        // Realtime 1000.5 s = 0.5 s on the clock: already past (clock at 1 s).
        rt.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(1000, 500_000_000)))
            .unwrap();
        assert_eq!(rt.ticks(), 1);
        rt.settime(TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(1002, 0)))
            .unwrap();
        assert_eq!(rt.gettime().value, ts(1, 0));
        clock.advance(Duration::from_secs(1));
        assert_eq!(rt.ticks(), 1);
    }

    #[test]
    fn release_cancels_the_timer() {
        let (clock, tfd, f) = manual();
        tfd.settime(0, &spec(ts(1, 0), ts(1, 0))).unwrap();
        assert_eq!(clock.pending(), 1);
        drop(f);
        assert_eq!(clock.pending(), 0);
        assert!(tfd.state().pending.is_none());
    }

    #[test]
    fn blocking_read_on_the_real_clock() {
        let t = FdTable::new();
        let fd = t.timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
        let f = t.get(fd).unwrap();
        let start = MonotonicClock.now();
        t.timerfd_settime(fd, 0, &spec(ts(0, 0), ts(0, 30_000_000)))
            .unwrap();
        let th = std::thread::spawn(move || read(&f));
        assert_eq!(join_within(th), Ok(1));
        assert!(MonotonicClock.now() - start >= 30 * MS);
        // Absolute in the past on CLOCK_MONOTONIC's epoch: fires at once.
        t.timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec(ts(0, 0), ts(1, 0)))
            .unwrap();
        assert_eq!(t.get(fd).unwrap().poll(), Events::IN);
    }

    #[test]
    fn epoll_wait_is_woken_by_the_timer_thread() {
        use crate::event::EPOLL_CTL_ADD;
        use crate::EpollEvent;
        let t = FdTable::new();
        let ep = t.epoll_create1(0).unwrap();
        let fd = t.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK).unwrap();
        let ev = EpollEvent::new(Events::IN | Events::ET, 7);
        t.epoll_ctl(ep, EPOLL_CTL_ADD, fd, Some(&ev)).unwrap();
        let mut buf = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(0));
        let start = MonotonicClock.now();
        t.timerfd_settime(fd, 0, &spec(ts(0, 20_000_000), ts(0, 20_000_000)))
            .unwrap();
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10_000), Ok(1));
        assert!(MonotonicClock.now() - start >= 20 * MS);
        assert_eq!((buf[0].events(), buf[0].data()), (Events::IN, 7));
        // Unread, the interval timer is not restarted: no second edge (kernel: same).
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 60), Ok(0));
        assert!(t.read(fd, &mut [0; 8]).is_ok());
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10_000), Ok(1));
    }

    #[test]
    fn blocked_read_is_interrupted() {
        let (_clock, tfd, _f) = manual();
        let blocking = File::new(tfd);
        let (tx, rx) = std::sync::mpsc::channel();
        let th = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            read(&blocking)
        });
        let intr = rx.recv().unwrap();
        std::thread::sleep(20 * MS);
        intr.raise();
        assert_eq!(join_within(th), Err(Errno::EINTR));
    }

    /// A waiter on the queue that takes its time: it records whether a poll of the timer
    /// made while its wakeup runs (by the thread that advanced the clock) saw the tick.
    struct SlowWaiter {
        done: std::sync::atomic::AtomicBool,
    }
    impl crate::WakeCallback for SlowWaiter {
        fn wake(&self, _key: Events) -> bool {
            std::thread::sleep(50 * MS);
            self.done.store(true, std::sync::atomic::Ordering::SeqCst);
            true
        }
    }

    // Kernel: timerfd_tmrproc ticks and wakes under ctx->wqh.lock, which timerfd_poll
    // takes: a poll that sees the tick finds the wakeup delivered (an epoll item watching
    // the timer already on its ready list). The engine woke after dropping its lock: a
    // poll in between saw the tick first (timer/periodic-unread-fires-once.ep, once in CI).
    #[test]
    fn a_poll_that_sees_the_tick_finds_its_wakeup_delivered() {
        let (clock, tfd, f) = manual();
        let slow = Arc::new(SlowWaiter {
            done: std::sync::atomic::AtomicBool::new(false),
        });
        tfd.queue().add(slow.clone(), Exclusivity::NonExclusive);
        tfd.settime(0, &spec(ts(0, 0), ts(1, 0))).unwrap();
        let firing = std::thread::spawn(move || clock.advance(Duration::from_secs(1)));
        while f.poll().is_empty() {
            std::thread::yield_now();
        }
        assert!(
            slow.done.load(std::sync::atomic::Ordering::SeqCst),
            "the poll saw the tick before its wakeup was delivered"
        );
        join_within(firing);
    }

    #[test]
    fn blocked_read_wakes_on_manual_advance() {
        let (clock, tfd, _f) = manual();
        let blocking = File::new(tfd.clone());
        tfd.settime(0, &spec(ts(0, 0), ts(5, 0))).unwrap();
        let th = std::thread::spawn(move || read(&blocking));
        std::thread::sleep(20 * MS);
        assert!(!th.is_finished());
        clock.advance(Duration::from_secs(5));
        assert_eq!(join_within(th), Ok(1));
    }
}
