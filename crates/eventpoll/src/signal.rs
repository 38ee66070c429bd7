//! Interrupting blocked calls: the engine's analogue of a signal.
//!
//! Every task (thread) has an [`Interrupt`], kept with its per-task state by the
//! [platform seam](crate::platform). Raising it makes the thread's blocked call (an
//! `epoll_wait`, a blocking pipe read, ...) return `EINTR`; raised while the thread is not
//! blocked, it stays pending and the next call that would block returns `EINTR` at once
//! instead of sleeping — as a pending, unblocked signal does on Linux. A call that finds
//! events to return does not check it (Linux checks for signals only before sleeping).

use crate::platform::park::{with_task, InterruptState, Parker, WakeReason};
use crate::platform::Deadline;
use crate::sync::{lock, Arc, Ordering};

/// A handle that interrupts one thread's blocked calls with `EINTR`.
///
/// ```
/// use eventpoll::{Errno, Exclusivity, Interrupt, WaitQueue};
/// let me = Interrupt::current();
/// me.raise(); // pending: the next blocking call returns EINTR instead of sleeping
/// let q = WaitQueue::new();
/// assert_eq!(q.block_until(Exclusivity::Exclusive, None, || None::<()>), Err(Errno::EINTR));
/// assert!(!me.is_pending());
/// ```
#[derive(Clone)]
pub struct Interrupt {
    state: Arc<InterruptState>,
}

impl core::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Interrupt")
            .field("pending", &self.is_pending())
            .finish()
    }
}

/// The calling thread's interrupt state.
pub(crate) fn current() -> Interrupt {
    Interrupt::current()
}

impl Interrupt {
    /// The calling thread's interrupt handle; clone it and give it to whoever may cancel
    /// this thread's waits.
    pub fn current() -> Interrupt {
        with_task(|t| Interrupt {
            state: t.interrupt.clone(),
        })
    }

    /// Interrupt the thread: its blocked call (or the next one that would block) returns
    /// `EINTR`.
    pub fn raise(&self) {
        self.state.pending.store(true, Ordering::SeqCst);
        if let Some(p) = lock(&self.state.sleeper).as_ref() {
            p.interrupt();
        }
    }

    /// Whether an interrupt is pending.
    pub fn is_pending(&self) -> bool {
        self.state.pending.load(Ordering::SeqCst)
    }

    /// Discard a pending interrupt.
    pub fn clear(&self) {
        self.state.pending.store(false, Ordering::SeqCst);
    }

    /// Whether the thread is asleep in a blocking call right now (an `epoll_wait`, a
    /// `poll`, a blocking read, ...): true from just before it parks until a wakeup,
    /// interrupt or timeout claims it (false at once then, even before it runs). Test
    /// harnesses use it to start a race only once a waiter is really blocked, as
    /// `/proc/PID/task/TID/stat` shows a kernel thread's `S` state.
    ///
    /// ```
    /// use eventpoll::{Errno, FdTable, Interrupt};
    /// let t = std::sync::Arc::new(FdTable::new());
    /// let ep = t.epoll_create1(0).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let t2 = t.clone();
    /// let waiter = std::thread::spawn(move || {
    ///     tx.send(Interrupt::current()).unwrap();
    ///     let mut out = [eventpoll::EpollEvent::default(); 1];
    ///     t2.epoll_wait(ep, &mut out, 1, -1)
    /// });
    /// let its = rx.recv().unwrap();
    /// while !its.is_sleeping() {
    ///     std::thread::yield_now();
    /// }
    /// its.raise();
    /// assert_eq!(waiter.join().unwrap(), Err(Errno::EINTR));
    /// ```
    pub fn is_sleeping(&self) -> bool {
        lock(&self.state.sleeper)
            .as_ref()
            .is_some_and(|p| p.is_parked())
    }

    /// Sleep on `parker` until woken, `deadline`, or an interrupt.
    pub(crate) fn sleep_interruptibly(
        &self,
        parker: &Arc<Parker>,
        deadline: Option<Deadline<'_>>,
    ) -> WakeReason {
        *lock(&self.state.sleeper) = Some(parker.clone());
        if self.is_pending() {
            parker.interrupt();
        }
        let reason = parker.sleep(deadline);
        *lock(&self.state.sleeper) = None;
        reason
    }
}
