//! Threads blocked in a wait on a [`crate::HostEpoll`], as first-class waiters of the engine
//! instance.
//!
//! A thread that blocks in a wait sleeps *in the host* (the driver's `ppoll(2)` or, for
//! the io_uring driver's owner, `io_uring_enter(2)`), because host activity must wake it
//! to be pumped. For the engine, though, it must be a thread blocked in `epoll_wait` like
//! any other: queued at the head of the instance's queue of blocked threads, so that a
//! wakeup reaches the newest sleeper only, and an `EXCLUSIVE` item's wakeup stops at the
//! first instance with a sleeper (`ep_poll_callback` counts a wakeup as taken only when it
//! woke a waiter of the instance). So each blocked thread takes a [`ThreadWaker`] — an
//! eventfd of its own plus a flag — queues it with [`eventpoll::Epoll::queue_waiter`], and
//! sleeps on the host *and* that eventfd. Only the waker's callback means "woken": a thread
//! that the host wakes (to pump) and whose waker was not called goes back to sleep,
//! keeping its place in the queue.
//!
//! The eventfds come from a pool shared by the host's instances (one per thread asleep at
//! once, created on demand at hidden numbers, never closed but in a `fork` child, where
//! each is replaced by a fresh one under the same number, as the parent's are not ours).

use crate::sys;
use eventpoll::{Errno, Events, WakeCallback};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A blocked thread's entry in an engine instance's queue of blocked threads: calling it
/// sets the flag and signals the eventfd the thread sleeps on. See the module
/// documentation.
#[derive(Debug)]
pub struct ThreadWaker {
    fd: i32,
    woken: AtomicBool,
}

impl ThreadWaker {
    /// The eventfd the thread sleeps on.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Whether the engine woke the thread since it was [armed](ThreadWaker::arm).
    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }

    /// Ready for another sleep: not woken, eventfd drained. Called only while the waker is
    /// on no queue (its callback cannot run meanwhile).
    pub fn arm(&self) {
        if self.woken.swap(false, Ordering::SeqCst) {
            let mut b = [0u8; 8];
            let _ = sys::read(self.fd, &mut b);
        }
    }
}

impl WakeCallback for ThreadWaker {
    /// Runs under the engine's locks: one flag and one eventfd write, nothing else.
    fn wake(&self, _key: Events) -> bool {
        if self.woken.swap(true, Ordering::SeqCst) {
            return false;
        }
        let _ = sys::write(self.fd, &1u64.to_ne_bytes());
        true
    }
}

/// The host's pool of [`ThreadWaker`]s.
pub(crate) struct WakerPool {
    free: Mutex<Vec<Arc<ThreadWaker>>>,
    all: Mutex<Vec<Arc<ThreadWaker>>>,
    hidden_base: i32,
    on_new: OnceLock<fn(i32)>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_eventfd(hidden_base: i32) -> Result<i32, Errno> {
    let fd = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
    Ok(if hidden_base > 0 {
        sys::move_high(fd, hidden_base)
    } else {
        fd
    })
}

impl WakerPool {
    pub(crate) fn new(hidden_base: i32) -> WakerPool {
        WakerPool {
            free: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            hidden_base,
            on_new: OnceLock::new(),
        }
    }

    /// See [`crate::Host::on_own_fd`].
    pub(crate) fn on_new(&self, hook: fn(i32)) {
        let _ = self.on_new.set(hook);
    }

    /// A waker for a thread about to block (armed); `Err` when no eventfd can be made.
    pub(crate) fn take(&self) -> Result<Arc<ThreadWaker>, Errno> {
        if let Some(w) = locked(&self.free).pop() {
            w.arm();
            return Ok(w);
        }
        let fd = new_eventfd(self.hidden_base)?;
        let w = Arc::new(ThreadWaker {
            fd,
            woken: AtomicBool::new(false),
        });
        locked(&self.all).push(w.clone());
        if let Some(hook) = self.on_new.get() {
            hook(fd);
        }
        Ok(w)
    }

    /// Give a waker back (it is on no queue).
    pub(crate) fn give_back(&self, w: Arc<ThreadWaker>) {
        locked(&self.free).push(w);
    }

    /// Every waker's eventfd.
    pub(crate) fn fds(&self, out: &mut Vec<i32>) {
        out.extend(locked(&self.all).iter().map(|w| w.fd));
    }

    /// In a `fork` child: the eventfds are shared with the parent, whose callbacks write
    /// them. Each gets a fresh eventfd under the same number, and every waker is free (the
    /// threads that held some do not exist here).
    pub(crate) fn after_fork_child(&self) {
        let all = locked(&self.all).clone();
        for w in &all {
            if let Ok(nd) = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
                let _ = sys::dup3(nd, w.fd, libc::O_CLOEXEC);
                let _ = sys::close(nd);
            }
            w.woken.store(false, Ordering::SeqCst);
        }
        *locked(&self.free) = all;
    }
}
