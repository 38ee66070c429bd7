//! timerfd (stub: implemented by the objects work).
