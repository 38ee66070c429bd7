//! The portable driver: `poll(2)` over every registered descriptor.
//!
//! `poll(2)` reports levels, not wakeups. A [`pump`](Driver::pump) polls every registered
//! descriptor and wakes each one whose mask gained bits since the last pump, with the
//! gained bits as the key; a descriptor that a harvest polled (an item was on the ready
//! list) counts as having no *input* bits, because the program may have drained and
//! refilled it without the driver seeing the drop. Level-triggered items behave exactly as
//! with any driver (the engine re-polls them). Edge-triggered items see an edge per
//! *rising* bit, plus one per wait for input that is still there after a report: unlike
//! Linux, a second write to a pipe that is still readable and was not reported meanwhile
//! reports nothing new, a reported item whose input the program leaves unread is reported
//! again at the next wait (an input edge is never lost; some are repeated), and output
//! readiness that drops and returns between two observations is not a new edge. Cost:
//! O(registered descriptors) per pump.
//!
//! A blocked waiter sleeps in `ppoll(2)` on every registered descriptor, asking only for
//! the bits it does not have (so that a descriptor that stays readable does not wake it
//! again), plus its doorbell.

use super::{Driver, DriverKind, Registry};
use crate::host_fd::HostFd;
use crate::sys::{self, Errno, SysResult};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The `poll(2)` driver. See the module documentation.
#[derive(Default)]
pub struct PollDriver {
    registry: Registry,
}

impl PollDriver {
    /// A driver with nothing registered.
    pub fn new() -> PollDriver {
        PollDriver::default()
    }
}

/// Whether the host file supports poll: regular files and directories do not (the kernel's
/// epoll says `EPERM` for them; `poll(2)` cannot tell, so ask `fstat`).
fn pollable(st: &libc::stat) -> bool {
    let fmt = st.st_mode & libc::S_IFMT;
    fmt != libc::S_IFREG && fmt != libc::S_IFDIR
}

impl Driver for PollDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Poll
    }

    fn register(&self, host: &Arc<HostFd>) -> SysResult<()> {
        let st = sys::fstat(host.fd())?;
        if !pollable(&st) {
            return Err(Errno::EPERM);
        }
        host.note_mode(st.st_mode);
        host.last
            .store(sys::poll_mask(host.fd()), Ordering::Relaxed);
        // The file's identity, from the same `fstat`: what key-less wakeups look it up by.
        let token = self.registry.insert(host, sys::own_identity(&st));
        host.token.store(token, Ordering::Release);
        Ok(())
    }

    fn deregister(&self, host: &HostFd) {
        self.registry.remove(host.token.load(Ordering::Acquire));
    }

    fn pump(&self) -> usize {
        let hosts = self.registry.all();
        if hosts.is_empty() {
            return 0;
        }
        let mut fds: Vec<libc::pollfd> = hosts
            .iter()
            .map(|h| libc::pollfd {
                fd: h.fd(),
                events: sys::POLL_ALL,
                revents: 0,
            })
            .collect();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if sys::ppoll(&mut fds, Some(zero), None).is_err() {
            return 0;
        }
        let mut woken = 0;
        for (h, p) in hosts.iter().zip(&fds) {
            let now = p.revents as u16 as u32;
            let before = h.last.swap(now, Ordering::Relaxed);
            let rising = now & !before;
            if rising != 0 {
                h.notify(rising);
                woken += 1;
            }
        }
        woken
    }

    fn notify_fds(&self, out: &mut Vec<libc::pollfd>) {
        let quiet = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u16 as u32;
        out.extend(self.registry.all().iter().map(|h| {
            let last = h.last.load(Ordering::Relaxed);
            let want = sys::POLL_ALL & !(last as u16 as i16);
            // A descriptor with ERR/HUP/NVAL would make poll return at once, forever.
            let fd = if last & quiet != 0 || want == 0 {
                -1
            } else {
                h.fd()
            };
            libc::pollfd {
                fd,
                events: want,
                revents: 0,
            }
        }));
    }

    fn after_fork_child(&self) {}

    fn registered_file(&self, file: (u64, u64), out: &mut Vec<Arc<HostFd>>) {
        self.registry.by_file(file, out);
    }

    fn own_fds(&self, _out: &mut Vec<i32>) {}
}
