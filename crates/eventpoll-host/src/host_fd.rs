//! [`HostFd`]: a host descriptor as an engine object.
//!
//! Its [`FileOps::poll`] asks the host with `poll(2)` (timeout 0); a harvest re-polls every
//! host item of a window with one `poll(2)` ([`FileOps::poll_batch`]). Its [`WaitQueue`] is
//! woken by the [driver](crate::Host) with the host's event bits whenever the host reports
//! activity on the descriptor — that is the only way readiness enters the engine; every
//! epoll semantic (LT/ET/ONESHOT/EXCLUSIVE, merging, ordering, nesting) is the engine's.

use crate::driver::Driver;
use crate::sys;
use eventpoll::{Events, FileOps, WaitQueue};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// A host descriptor watched through a [driver](crate::Host). See the module documentation.
///
/// Create one with [`crate::Host::open`] or [`crate::Host::open_owned`].
pub struct HostFd {
    /// The descriptor number polled (an embedder that tracks `dup`s may move it to another
    /// number of the same open file description with [`HostFd::set_fd`]).
    fd: AtomicI32,
    /// The number the driver registered the descriptor under (kernel epoll key).
    pub(crate) reg_fd: AtomicI32,
    /// The driver's token for this object (slab index and generation).
    pub(crate) token: AtomicU64,
    /// The last mask anyone observed (the poll driver's edge detection).
    pub(crate) last: AtomicU32,
    queue: WaitQueue,
    pollable: bool,
    owned: bool,
    pub(crate) driver: Arc<dyn Driver>,
}

impl std::fmt::Debug for HostFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFd")
            .field("fd", &self.fd())
            .field("pollable", &self.pollable)
            .finish()
    }
}

impl HostFd {
    pub(crate) fn new(fd: i32, owned: bool, pollable: bool, driver: Arc<dyn Driver>) -> HostFd {
        HostFd {
            fd: AtomicI32::new(fd),
            reg_fd: AtomicI32::new(fd),
            token: AtomicU64::new(u64::MAX),
            last: AtomicU32::new(0),
            queue: WaitQueue::new(),
            pollable,
            owned,
            driver,
        }
    }

    /// The descriptor number this object polls.
    pub fn fd(&self) -> i32 {
        self.fd.load(Ordering::Acquire)
    }

    /// Poll through another descriptor number of the same open file description (the
    /// embedder closed the one this object used and keeps another).
    pub fn set_fd(&self, fd: i32) {
        self.fd.store(fd, Ordering::Release)
    }

    /// Whether the host file supports poll (a regular file or a directory does not; epoll
    /// refuses it with `EPERM`).
    pub fn is_pollable(&self) -> bool {
        self.pollable
    }

    /// Wake the queue with the host's bits (called by the drivers).
    pub(crate) fn notify(&self, bits: u32) {
        self.queue.wake(Events::from_bits_retain(bits));
    }

    /// A harvest (or ctl) polled the descriptor. For the poll driver, which sees levels
    /// only, forget the level: the program may consume or produce behind our back after a
    /// report, so the next pump treats whatever is set then as new (an edge-triggered item
    /// that is still ready at the next wait is reported again rather than never).
    fn observe(&self, revents: u32) -> Events {
        if self.driver.kind() == crate::DriverKind::Poll {
            self.last.store(0, Ordering::Relaxed);
        }
        Events::from_bits_retain(revents)
    }
}

impl FileOps for HostFd {
    fn poll(&self) -> Events {
        self.observe(sys::poll_mask(self.fd()))
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        self.pollable.then_some(&self.queue)
    }

    fn release(&self) {
        if self.pollable {
            self.driver.deregister(self);
        }
        if self.owned {
            let _ = sys::close(self.fd());
        }
    }

    fn batch_class(&self) -> usize {
        // Every descriptor of one driver can share a poll(2).
        Arc::as_ptr(&self.driver) as *const () as usize
    }

    fn poll_batch(&self, batch: &[&dyn FileOps], out: &mut [Events]) {
        let mut fds: Vec<libc::pollfd> = batch
            .iter()
            .map(|f| {
                let any: &dyn std::any::Any = *f;
                libc::pollfd {
                    fd: any.downcast_ref::<HostFd>().map_or(-1, HostFd::fd),
                    events: sys::POLL_ALL,
                    revents: 0,
                }
            })
            .collect();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if sys::ppoll(&mut fds, Some(zero), None).is_err() {
            for (f, o) in batch.iter().zip(out.iter_mut()) {
                *o = f.poll();
            }
            return;
        }
        for ((f, p), o) in batch.iter().zip(&fds).zip(out.iter_mut()) {
            let any: &dyn std::any::Any = *f;
            *o = match any.downcast_ref::<HostFd>() {
                Some(h) => h.observe(p.revents as u16 as u32),
                None => f.poll(),
            };
        }
    }
}
