//! Clocks for timerfd: the real monotonic clock and a manual clock for deterministic tests.
//! (stub: implemented by the objects work)
use std::time::Duration;

/// A monotonic clock that timerfds run on.
pub trait Clock: Send + Sync + 'static {
    /// Time since the clock's epoch.
    fn now(&self) -> Duration;
}

/// The host's monotonic clock.
#[derive(Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        todo!("objects work")
    }
}
