//! The Linux driver: a private kernel epoll, every host descriptor registered
//! edge-triggered for every bit, used purely as an interrupt source.
//!
//! An edge-triggered kernel item is put on the kernel's ready list by every wakeup of its
//! file whose key intersects the item's bits (here: all of them) and reported once per
//! harvest — so a [`pump`](Driver::pump) turns each batch of host wakeups into one
//! [`eventpoll::WaitQueue::wake`] per descriptor, with the bits the kernel reports (the
//! file's mask at the time of the pump; the kernel does not report the wakeup's own key).
//! Nothing else is asked of the kernel: whether an engine item is level- or
//! edge-triggered, one-shot, exclusive or nested is decided by the engine, which re-polls
//! host descriptors with `poll(2)` when it harvests.
//!
//! A blocked waiter sleeps in `ppoll(2)` on the private epoll (readable when a registered
//! descriptor has had activity) and its own doorbell, with its signal mask applied
//! atomically, so it is woken by the host itself: no helper thread, no polling loop.

use super::{Driver, DriverKind, Registry};
use crate::host_fd::HostFd;
use crate::sys::{self, SysResult};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bits every descriptor is registered for (plus `EPOLLET`; `ERR` and `HUP` are implied).
const WATCH: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLMSG
    | libc::EPOLLRDHUP
    | libc::EPOLLET) as u32;

/// Events taken from the kernel per `epoll_wait` of a pump.
const BATCH: usize = 256;

/// The kernel-epoll driver. See the module documentation.
pub struct KernelDriver {
    epfd: AtomicI32,
    registry: Registry,
    /// Descriptors below this are the program's; the private epoll is moved at or above it.
    hidden_base: i32,
}

impl KernelDriver {
    /// A driver with its own kernel epoll (close-on-exec), moved to a number at or above
    /// `hidden_base` when one is given (0: wherever the kernel puts it).
    pub fn new(hidden_base: i32) -> SysResult<KernelDriver> {
        let fd = sys::epoll_create1(libc::EPOLL_CLOEXEC)?;
        let fd = if hidden_base > 0 {
            sys::move_high(fd, hidden_base)
        } else {
            fd
        };
        Ok(KernelDriver {
            epfd: AtomicI32::new(fd),
            registry: Registry::default(),
            hidden_base,
        })
    }

    fn epfd(&self) -> i32 {
        self.epfd.load(Ordering::Acquire)
    }
}

impl Drop for KernelDriver {
    fn drop(&mut self) {
        let _ = sys::close(self.epfd());
    }
}

impl Driver for KernelDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::KernelEpoll
    }

    fn register(&self, host: &Arc<HostFd>) -> SysResult<()> {
        let token = self.registry.insert(host);
        host.token.store(token, Ordering::Release);
        let fd = host.fd();
        host.reg_fd.store(fd, Ordering::Release);
        if let Err(e) = sys::epoll_ctl(self.epfd(), libc::EPOLL_CTL_ADD, fd, Some((WATCH, token))) {
            self.registry.remove(token);
            return Err(e);
        }
        Ok(())
    }

    fn deregister(&self, host: &HostFd) {
        let token = host.token.load(Ordering::Acquire);
        self.registry.remove(token);
        // Only if the registration number still refers to this file: otherwise the kernel
        // removes the item itself when the file is released.
        let reg = host.reg_fd.load(Ordering::Acquire);
        if reg == host.fd() {
            let _ = sys::epoll_ctl(self.epfd(), libc::EPOLL_CTL_DEL, reg, None);
        }
    }

    fn pump(&self) -> usize {
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut woken = 0;
        let mut hosts = Vec::new();
        loop {
            let n = match sys::epoll_wait(self.epfd(), &mut buf, 0) {
                Ok(n) => n,
                Err(_) => return woken,
            };
            hosts.clear();
            self.registry
                .resolve(buf[..n].iter().map(|e| e.u64).enumerate(), &mut hosts);
            for (pos, h) in &hosts {
                h.notify(buf[*pos].events);
            }
            woken += hosts.len();
            if n < BATCH {
                return woken;
            }
        }
    }

    fn block(
        &self,
        extra: &[i32],
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
    ) -> SysResult<()> {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.epfd())
            .chain(extra.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        sys::ppoll(&mut fds, timeout.map(sys::timespec), sigmask).map(drop)
    }

    fn after_fork_child(&self) {
        // The kernel epoll is shared with the parent: make our own and register again.
        let Ok(fd) = sys::epoll_create1(libc::EPOLL_CLOEXEC) else {
            return;
        };
        let fd = if self.hidden_base > 0 {
            sys::move_high(fd, self.hidden_base)
        } else {
            fd
        };
        let old = self.epfd.swap(fd, Ordering::AcqRel);
        let _ = sys::close(old);
        for h in self.registry.all() {
            let cur = h.fd();
            h.reg_fd.store(cur, Ordering::Release);
            let token = h.token.load(Ordering::Acquire);
            let _ = sys::epoll_ctl(fd, libc::EPOLL_CTL_ADD, cur, Some((WATCH, token)));
        }
    }

    fn own_fd(&self) -> Option<i32> {
        Some(self.epfd())
    }

    /// `kcmp(KCMP_EPOLL_TFD)`: does `fd` refer to the file the private epoll watches under
    /// the registration number?
    fn still_registered(&self, host: &HostFd, fd: i32) -> Option<bool> {
        sys::epoll_watches(fd, self.epfd(), host.reg_fd.load(Ordering::Acquire))
    }
}
