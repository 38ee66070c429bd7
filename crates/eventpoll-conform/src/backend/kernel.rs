//! The oracle: the Linux kernel, through raw system calls (the `libc` crate), so invalid
//! arguments — NULL event pointers, raw op numbers, `maxevents <= 0`, invalid timespecs,
//! odd signal-set sizes — reach the kernel unchanged.
//!
//! Descriptors live in a range private to the runner: scenario number `n` is kernel
//! descriptor [`BASE`]` + n`. Every new descriptor is moved to the lowest free number at or
//! above `BASE` (`fcntl(F_DUPFD)`, then the original is closed), so numbering and reuse after
//! `close` match the engine's table, which counts from 0. Raw numbers `fd:N` map the same way
//! for `N >= 0` and pass unchanged when negative.
//!
//! The range belongs to the process, so kernel scenarios never run concurrently: a backend
//! holds a global lock from creation to drop, and closes every descriptor it opened when
//! dropped. `SIGPIPE` is ignored (a write without a reader returns `EPIPE`) and the soft
//! `RLIMIT_NOFILE` is raised to the hard limit so that the range fits.
//!
//! `settime T expired` arms the timer with `TFD_TIMER_ABSTIME` and an expiry of 1 ns after
//! the monotonic clock's epoch. Expiry is the hrtimer's business, which could in principle
//! happen after `timerfd_settime` returns, so the backend then waits in `poll()` (at most one
//! second) until the timer is readable: the expiry and its wakeups have happened before the
//! next command runs. On this machine (Linux 6.18) the wait is never needed — 200,000 tries of
//! `timerfd_settime` followed at once by `epoll_wait(.., 0)` (and by `poll(.., 0)`) never
//! missed the expiry — so it is a safety net that costs one `poll` call.

use super::{wait_buffer_len, Backend, Errno, Event, SysResult};
use crate::script::{SockType, TimerSetting, WaitKind};
use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, Once};

/// Kernel descriptor of scenario number 0.
pub const BASE: i32 = 1000;

/// Serialises kernel scenarios: the descriptor range is per process.
static RANGE_LOCK: Mutex<()> = Mutex::new(());

/// The kernel backend. See the module documentation.
pub struct Kernel {
    _range: MutexGuard<'static, ()>,
    /// Kernel descriptors this backend opened (closed on drop).
    open: BTreeSet<i32>,
    /// Successful `EPOLL_CTL_ADD`s: bounds how many events a wait can return.
    items: usize,
}

/// A fresh kernel backend (blocks while another kernel scenario runs in this process).
pub fn create() -> Box<dyn Backend> {
    Box::new(Kernel::new())
}

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A `-1`-on-error return value as a result.
fn cvt(r: libc::c_int) -> SysResult<libc::c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> SysResult<usize> {
    usize::try_from(r).map_err(|_| last_errno())
}

fn cvt_long(r: libc::c_long) -> SysResult<usize> {
    usize::try_from(r).map_err(|_| last_errno())
}

/// Scenario number → kernel descriptor.
fn kfd(n: i32) -> i32 {
    if n < 0 {
        n
    } else {
        n.saturating_add(BASE)
    }
}

/// Process setup, once: ignore `SIGPIPE`, raise the soft descriptor limit to the hard one.
fn setup() {
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        // SAFETY: plain system calls with valid arguments; ignoring SIGPIPE and raising
        // the soft descriptor limit to the hard one affect only this process.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}

/// How many scenario numbers the kernel range has: the soft `RLIMIT_NOFILE` (after
/// [`Kernel::new`] raised it) minus [`BASE`]. Numbers at or above it are `EBADF`/`EMFILE`
/// on the kernel, so other backends use it as their table size.
pub fn scenario_fd_limit() -> usize {
    setup();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    usize::try_from(cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(BASE as usize)
        .max(1)
}

impl Kernel {
    /// Take the range (waiting for any other kernel scenario of this process to finish).
    pub fn new() -> Kernel {
        setup();
        // A scenario that panicked while holding the lock released no descriptors of its own
        // (drop still ran), so a poisoned lock is safe to take.
        let guard = RANGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Kernel {
            _range: guard,
            open: BTreeSet::new(),
            items: 0,
        }
    }

    /// Move a freshly created descriptor into the range (lowest free number ≥ BASE).
    fn adopt(&mut self, low: libc::c_int) -> SysResult<i32> {
        // SAFETY: fcntl and close on a descriptor this backend just created and owns.
        let moved = unsafe { libc::fcntl(low, libc::F_DUPFD, BASE) };
        let err = last_errno();
        // SAFETY: as above; `low` is not used again.
        unsafe { libc::close(low) };
        if moved < 0 {
            return Err(err);
        }
        self.open.insert(moved);
        Ok(moved - BASE)
    }

    fn adopt_pair(&mut self, fds: [libc::c_int; 2]) -> SysResult<(i32, i32)> {
        let a = match self.adopt(fds[0]) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: the second descriptor was created for us and is not used again.
                unsafe { libc::close(fds[1]) };
                return Err(e);
            }
        };
        match self.adopt(fds[1]) {
            Ok(b) => Ok((a, b)),
            Err(e) => {
                let _ = self.close(a);
                Err(e)
            }
        }
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel::new()
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        for &fd in &self.open {
            // SAFETY: descriptors in our private range that this backend opened; nothing else
            // in the process uses the range while we hold the lock.
            unsafe { libc::close(fd) };
        }
    }
}

impl Backend for Kernel {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn epoll_create(&mut self, size: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::epoll_create(size) })?;
        self.adopt(fd)
    }

    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::epoll_create1(flags) })?;
        self.adopt(fd)
    }

    fn pipe(&mut self) -> SysResult<(i32, i32)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) })?;
        self.adopt_pair(fds)
    }

    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        cvt(unsafe { libc::fcntl(kfd(fd), libc::F_SETPIPE_SZ, size) })
    }

    fn eventfd(&mut self, init: u32, semaphore: bool) -> SysResult<i32> {
        let flags = libc::EFD_NONBLOCK | if semaphore { libc::EFD_SEMAPHORE } else { 0 };
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::eventfd(init, flags) })?;
        self.adopt(fd)
    }

    fn socketpair(&mut self, ty: SockType) -> SysResult<(i32, i32)> {
        let ty = match ty {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Dgram => libc::SOCK_DGRAM,
            SockType::SeqPacket => libc::SOCK_SEQPACKET,
        };
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        cvt(unsafe {
            libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_NONBLOCK, 0, fds.as_mut_ptr())
        })?;
        self.adopt_pair(fds)
    }

    fn timerfd(&mut self) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK) })?;
        self.adopt(fd)
    }

    fn settime(&mut self, fd: i32, setting: TimerSetting) -> SysResult<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (flags, value) = match setting {
            TimerSetting::Expired => (
                libc::TFD_TIMER_ABSTIME,
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1,
                },
            ),
            TimerSetting::Disarm => (0, zero),
        };
        let spec = libc::itimerspec {
            it_interval: zero,
            it_value: value,
        };
        // SAFETY: `spec` is a valid itimerspec; the old-value pointer may be NULL.
        cvt(unsafe { libc::timerfd_settime(kfd(fd), flags, &spec, std::ptr::null_mut()) })?;
        if setting == TimerSetting::Expired {
            // The expiry is delivered by the timer interrupt: wait (bounded) until it has.
            let mut p = libc::pollfd {
                fd: kfd(fd),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 1000) };
        }
        Ok(())
    }

    fn regular_file(&mut self) -> SysResult<i32> {
        // A memfd is a regular (shmem) file: S_ISREG, no poll method.
        // SAFETY: the name is a valid NUL-terminated string.
        let fd = cvt(unsafe { libc::memfd_create(c"eventpoll-conform".as_ptr(), 0) })?;
        self.adopt(fd)
    }

    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()> {
        let mut ev = event.map(|(events, data)| libc::epoll_event { events, u64: data });
        let ptr = ev
            .as_mut()
            .map_or(std::ptr::null_mut(), |e| e as *mut libc::epoll_event);
        // SAFETY: `ptr` is NULL (deliberately: the kernel checks it) or points to a valid
        // epoll_event that lives across the call.
        cvt(unsafe { libc::epoll_ctl(kfd(epfd), op, kfd(fd), ptr) })?;
        if op == libc::EPOLL_CTL_ADD {
            self.items += 1;
        }
        Ok(())
    }

    fn epoll_wait(
        &mut self,
        epfd: i32,
        maxevents: i32,
        kind: WaitKind,
        null_buffer: bool,
    ) -> SysResult<Vec<Event>> {
        let mut buf =
            vec![libc::epoll_event { events: 0, u64: 0 }; wait_buffer_len(maxevents, self.items)];
        let ptr = if null_buffer {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        let epfd = kfd(epfd);
        // SAFETY (all three calls): `ptr` is NULL (deliberately) or points to `buf`, which
        // holds at least min(maxevents, items + 1) entries — more than the kernel can write,
        // since it reports at most one event per interest item and at most `maxevents`.
        let n = match kind {
            WaitKind::Wait { timeout_ms } => {
                cvt(unsafe { libc::epoll_wait(epfd, ptr, maxevents, timeout_ms) })? as usize
            }
            WaitKind::Pwait {
                timeout_ms,
                sigsetsize,
            } => {
                // An empty mask (nothing blocked), larger than any size the kernel reads.
                let mask = [0u64; 16];
                cvt_long(unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait,
                        epfd,
                        ptr,
                        maxevents,
                        timeout_ms,
                        mask.as_ptr(),
                        sigsetsize,
                    )
                })?
            }
            WaitKind::Pwait2 { timeout } => {
                let ts = timeout.map(|(s, ns)| libc::timespec {
                    tv_sec: s,
                    tv_nsec: ns,
                });
                let tsp = ts
                    .as_ref()
                    .map_or(std::ptr::null(), |t| t as *const libc::timespec);
                cvt_long(unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        epfd,
                        ptr,
                        maxevents,
                        tsp,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                })?
            }
        };
        Ok(buf
            .iter()
            .take(if null_buffer { 0 } else { n })
            .map(|e| (e.events, e.u64))
            .collect())
    }

    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16> {
        let mut p = libc::pollfd {
            fd: kfd(fd),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        cvt(unsafe { libc::poll(&mut p, 1, 0) })?;
        Ok(p.revents)
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        // SAFETY: `data` is valid for `data.len()` bytes.
        cvt_size(unsafe { libc::write(kfd(fd), data.as_ptr().cast(), data.len()) })
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        // SAFETY: `buf` is valid and writable for `buf.len()` bytes.
        cvt_size(unsafe { libc::read(kfd(fd), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        // SAFETY: no pointers.
        cvt(unsafe { libc::shutdown(kfd(fd), how) }).map(drop)
    }

    fn close(&mut self, fd: i32) -> SysResult<()> {
        let k = kfd(fd);
        // SAFETY: closes a number of our private range (or an invalid negative one).
        cvt(unsafe { libc::close(k) })?;
        self.open.remove(&k);
        Ok(())
    }

    fn dup(&mut self, fd: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let k = cvt(unsafe { libc::fcntl(kfd(fd), libc::F_DUPFD, BASE) })?;
        self.open.insert(k);
        Ok(k - BASE)
    }

    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32> {
        // SAFETY: no pointers; the target is in our range (or invalid).
        let k = cvt(unsafe { libc::dup2(kfd(fd), kfd(target)) })?;
        self.open.insert(k);
        Ok(k - BASE)
    }

    fn abandon(self: Box<Self>) {
        // Nothing here can be left inconsistent: close the descriptors, release the range.
        drop(self);
    }
}
