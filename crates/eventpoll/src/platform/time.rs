//! Time: the [`Clock`] contract every deadline of the engine is measured on (timerfds,
//! `epoll_wait` and `poll` timeouts, blocking reads), and [`Deadline`], a point on one.

use crate::prelude::*;
use core::time::Duration;

/// A callback scheduled on a [`Clock`].
pub type TimerCallback = Box<dyn FnOnce() + Send>;

/// Identifies a scheduled callback, for [`Clock::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    deadline: Duration,
    seq: u64,
}

impl TimerId {
    /// The id of the `seq`-th callback of a clock, due at `deadline`.
    pub fn new(deadline: Duration, seq: u64) -> TimerId {
        TimerId { deadline, seq }
    }

    /// The deadline the callback was scheduled for.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

/// A clock: what time it is, callbacks at a deadline, and a timed sleep. Timerfds run on
/// it, and every timeout of a table (or an instance) made with it is measured on it.
///
/// Implementations must be monotonic (`now` never goes backwards) and must run every
/// scheduled callback exactly once, at or after its deadline, unless it was cancelled first.
/// Callbacks must be run with no lock held that [`Clock::now`], [`Clock::schedule`] or
/// [`Clock::cancel`] take (a timerfd's callback wakes epoll instances, which may re-arm
/// timers).
pub trait Clock: Send + Sync + 'static {
    /// Time since the clock's epoch.
    fn now(&self) -> Duration;
    /// Run `callback` once the clock reaches `deadline` (a deadline already reached runs it
    /// as soon as the clock next gets to its callbacks).
    fn schedule(&self, deadline: Duration, callback: TimerCallback) -> TimerId;
    /// Cancel a scheduled callback; `false` when it has run, is running, or was cancelled.
    fn cancel(&self, id: TimerId) -> bool;
    /// `CLOCK_REALTIME` minus this clock: how absolute wall-clock times map onto it.
    fn realtime_offset(&self) -> Duration {
        Duration::ZERO
    }
    /// Park the calling task until it is unparked or, at the latest, until this clock
    /// reaches `deadline`; returning earlier (spuriously) is allowed — the engine re-reads
    /// [`Clock::now`] and its wake state after every return.
    ///
    /// The default schedules an unpark of the calling task at `deadline`, parks through
    /// the platform, and cancels the unpark: a timed sleep needs nothing but
    /// [`Clock::schedule`], and on a clock that moves only when told to (a
    /// [`ManualClock`](crate::platform::ManualClock)) it ends exactly when the clock
    /// is moved past `deadline`.
    fn park_until(&self, deadline: Duration) {
        super::park::park_until_by_timer(self, deadline)
    }
}

/// A point in time on a [`Clock`]: when a blocking call gives up.
///
/// ```
/// use eventpoll::platform::{Clock, ManualClock};
/// use eventpoll::platform::Deadline;
/// use std::time::Duration;
/// let clock = ManualClock::new();
/// let d = Deadline::after(&clock, Duration::from_millis(5)).unwrap();
/// assert!(!d.reached());
/// clock.advance(Duration::from_millis(5));
/// assert!(d.reached());
/// ```
#[derive(Clone, Copy)]
pub struct Deadline<'a> {
    clock: &'a dyn Clock,
    at: Duration,
}

impl<'a> Deadline<'a> {
    /// `timeout` from now on `clock`; `None` when that is beyond the clock's range (wait
    /// without limit).
    pub fn after(clock: &'a dyn Clock, timeout: Duration) -> Option<Deadline<'a>> {
        clock
            .now()
            .checked_add(timeout)
            .map(|at| Deadline { clock, at })
    }

    /// At `at` on `clock`.
    pub fn at(clock: &'a dyn Clock, at: Duration) -> Deadline<'a> {
        Deadline { clock, at }
    }

    /// Whether the clock has reached the deadline.
    pub fn reached(&self) -> bool {
        self.clock.now() >= self.at
    }

    pub(crate) fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    pub(crate) fn instant(&self) -> Duration {
        self.at
    }
}

impl core::fmt::Debug for Deadline<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deadline").field("at", &self.at).finish()
    }
}
