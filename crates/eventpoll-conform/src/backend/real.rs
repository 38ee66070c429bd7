//! Backends over real descriptors: the kernel (the oracle) and the C ABI. Both create their
//! objects — pipes, eventfds, unix socket pairs, timerfds, memfds — with the kernel's own
//! calls and read, write and shut them down the same way; they differ only in the [`Calls`]
//! used for epoll, `close`, `dup`/`dup2`, the `F_DUPFD` that moves a new descriptor into the
//! range, `poll`, `fcntl(F_SETPIPE_SZ)` and `shutdown` (after which Linux wakes without a key): the kernel's for the oracle, the library's for `capi`.
//!
//! Descriptors live in a range private to the backend: scenario number `n` is descriptor
//! `calls.base + n`. Every new descriptor is moved to the lowest free number at or above the
//! base (`F_DUPFD`, then the original is closed), so numbering and reuse after `close` match
//! the engine's table, which counts from 0. Raw numbers `fd:N` map the same way for `N >= 0`
//! and pass unchanged when negative. The range belongs to the process, so a backend holds its
//! range lock from creation to drop, and closes every descriptor it opened when dropped.
//!
//! FIFOs (`mkfifo P`) live in a temporary directory of the backend's own (named by process,
//! backend and run, so that a forked child finds it), made at the first `mkfifo` and
//! removed with its FIFOs when the backend is dropped: a FIFO name is a file name there, so
//! making it twice is the kernel's `EEXIST`.

mod sockets;

use super::threads::{select_timeval, BlockingCall, OsThreads, Outcome, SelectSets, Worker};
use super::{wait_buffer_len, Address, Backend, Errno, Event, InetCall, InetDone, SysResult};
use crate::script::{Buffer, FifoMode, SockType, TimerSetting, WaitKind};
use std::collections::BTreeSet;
use std::ffi::c_int;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

type EpollEventC = libc::epoll_event;
pub(super) type CreateFn = unsafe extern "C" fn(c_int) -> c_int;
pub(super) type CtlFn = unsafe extern "C" fn(c_int, c_int, c_int, *mut EpollEventC) -> c_int;
pub(super) type WaitFn = unsafe extern "C" fn(c_int, *mut EpollEventC, c_int, c_int) -> c_int;
/// `epoll_pwait` in the system call's form, with a signal-set size.
pub(super) type PwaitSizedFn = unsafe extern "C" fn(
    c_int,
    *mut EpollEventC,
    c_int,
    c_int,
    *const libc::sigset_t,
    usize,
) -> c_int;
pub(super) type Pwait2Fn = unsafe extern "C" fn(
    c_int,
    *mut EpollEventC,
    c_int,
    *const libc::timespec,
    *const libc::sigset_t,
) -> c_int;
pub(super) type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
pub(super) type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
/// `fcntl` with one integer argument (non-variadic, so that a library's can stand in).
pub(super) type FcntlFn = unsafe extern "C" fn(c_int, c_int, libc::c_ulong) -> c_int;
pub(super) type ShutdownFn = unsafe extern "C" fn(c_int, c_int) -> c_int;
pub(super) type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
pub(super) type CloseRangeFn = unsafe extern "C" fn(libc::c_uint, libc::c_uint, c_int) -> c_int;
pub(super) type PollFn = unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int;
pub(super) type SelectFn = unsafe extern "C" fn(
    c_int,
    *mut libc::fd_set,
    *mut libc::fd_set,
    *mut libc::fd_set,
    *mut libc::timeval,
) -> c_int;

/// What distinguishes one real-descriptor backend from another.
pub(super) struct Calls {
    pub name: &'static str,
    /// Descriptor of scenario number 0.
    pub base: i32,
    /// Serialises this backend's scenarios: the range is per process.
    pub range: &'static Mutex<()>,
    pub epoll_create: CreateFn,
    pub epoll_create1: CreateFn,
    pub epoll_ctl: CtlFn,
    pub epoll_wait: WaitFn,
    pub epoll_pwait_sized: PwaitSizedFn,
    pub epoll_pwait2: Pwait2Fn,
    pub close: CloseFn,
    pub dup2: Dup2Fn,
    pub dup3: Dup3Fn,
    pub close_range: CloseRangeFn,
    pub fcntl: FcntlFn,
    pub poll: PollFn,
    pub select: SelectFn,
    pub shutdown: ShutdownFn,
}

/// A backend over real descriptors. See the module documentation.
pub(super) struct Real {
    calls: &'static Calls,
    _range: MutexGuard<'static, ()>,
    /// Descriptors this backend opened (closed on drop).
    open: BTreeSet<i32>,
    /// Successful `EPOLL_CTL_ADD`s: bounds how many events a wait can return.
    items: usize,
    /// The directory of this run's FIFOs: named at creation (so that a forked child, a
    /// copy, knows it), made at the first `mkfifo`, removed on drop.
    fifo_dir: PathBuf,
    /// Whether `fifo_dir` was made.
    fifo_dir_made: bool,
    /// Addresses of listeners and UDP sockets ([`Address`] indexes them).
    addresses: Vec<sockets::Bound>,
    /// The OS threads of named background calls (dropped after the descriptors close:
    /// their calls have returned by then).
    threads: OsThreads,
}

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A `-1`-on-error return value as a result.
fn cvt(r: c_int) -> SysResult<c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> SysResult<usize> {
    usize::try_from(r).map_err(|_| last_errno())
}

impl Real {
    /// Take the range (waiting for any other scenario of this backend to finish).
    pub(super) fn new(calls: &'static Calls) -> Real {
        super::kernel::setup();
        // A scenario that panicked while holding the lock released its descriptors (drop
        // still ran), so a poisoned lock is safe to take.
        let guard = calls.range.lock().unwrap_or_else(|e| e.into_inner());
        Real {
            calls,
            _range: guard,
            open: BTreeSet::new(),
            items: 0,
            fifo_dir: fifo_dir_name(calls.name),
            fifo_dir_made: false,
            addresses: Vec::new(),
            threads: OsThreads::default(),
        }
    }

    /// The path of FIFO `name`; with `make`, the run's directory is made first if need be.
    fn fifo_path(&mut self, name: &str, make: bool) -> SysResult<std::ffi::CString> {
        if make && !self.fifo_dir_made {
            // A directory of the name left by a process of the same pid is stale.
            let _ = std::fs::remove_dir_all(&self.fifo_dir);
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.fifo_dir)
                .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
            self.fifo_dir_made = true;
        }
        let path = self
            .fifo_dir
            .join(name)
            .into_os_string()
            .into_encoded_bytes();
        std::ffi::CString::new(path).map_err(|_| Errno(libc::EINVAL))
    }

    /// Scenario number → descriptor.
    fn kfd(&self, n: i32) -> i32 {
        if n < 0 {
            n
        } else {
            n.saturating_add(self.calls.base)
        }
    }

    /// Move a freshly created descriptor into the range (lowest free number ≥ base).
    fn adopt(&mut self, low: c_int) -> SysResult<i32> {
        let base = self.calls.base;
        // SAFETY: fcntl and close on a descriptor this backend just created and owns.
        let moved = unsafe { (self.calls.fcntl)(low, libc::F_DUPFD, base as libc::c_ulong) };
        let err = last_errno();
        // SAFETY: as above; `low` is not used again.
        unsafe { (self.calls.close)(low) };
        if moved < 0 {
            return Err(err);
        }
        self.open.insert(moved);
        Ok(moved - base)
    }

    fn adopt_pair(&mut self, fds: [c_int; 2]) -> SysResult<(i32, i32)> {
        let a = match self.adopt(fds[0]) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: the second descriptor was created for us and is not used again.
                unsafe { (self.calls.close)(fds[1]) };
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

    /// Record a descriptor a `dup` placed in the range.
    fn placed(&mut self, k: c_int) -> i32 {
        self.open.insert(k);
        k - self.calls.base
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        for &fd in &self.open {
            // SAFETY: descriptors of our private range that this backend opened; nothing
            // else in the process uses the range while we hold its lock.
            unsafe { (self.calls.close)(fd) };
        }
        if self.fifo_dir_made {
            let _ = std::fs::remove_dir_all(&self.fifo_dir);
        }
    }
}

impl Backend for Real {
    fn name(&self) -> &'static str {
        self.calls.name
    }

    fn epoll_create(&mut self, size: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { (self.calls.epoll_create)(size) })?;
        self.adopt(fd)
    }

    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { (self.calls.epoll_create1)(flags) })?;
        self.adopt(fd)
    }

    fn pipe(&mut self) -> SysResult<(i32, i32)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) })?;
        self.adopt_pair(fds)
    }

    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32> {
        // SAFETY: integer arguments only.
        cvt(unsafe { (self.calls.fcntl)(self.kfd(fd), libc::F_SETPIPE_SZ, size as libc::c_ulong) })
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
        let one_ns = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1,
        };
        // (flags, first expiry, period)
        let (flags, value, interval) = match setting {
            TimerSetting::Expired => (libc::TFD_TIMER_ABSTIME, one_ns, zero),
            TimerSetting::Disarm => (0, zero, zero),
            TimerSetting::Every {
                interval_ms,
                at_once,
            } => {
                let period = ms_timespec(interval_ms);
                (0, if at_once { one_ns } else { period }, period)
            }
        };
        let spec = libc::itimerspec {
            it_interval: interval,
            it_value: value,
        };
        let k = self.kfd(fd);
        // SAFETY: `spec` is a valid itimerspec; the old-value pointer may be NULL.
        cvt(unsafe { libc::timerfd_settime(k, flags, &spec, std::ptr::null_mut()) })?;
        if matches!(
            setting,
            TimerSetting::Expired | TimerSetting::Every { at_once: true, .. }
        ) {
            // The expiry is delivered by the timer interrupt: wait (bounded) until it has
            // (see the kernel backend's documentation).
            let mut p = libc::pollfd {
                fd: k,
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

    fn dev_null(&mut self) -> SysResult<i32> {
        // SAFETY: the path is a valid NUL-terminated string.
        let fd =
            cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) })?;
        self.adopt(fd)
    }

    fn mkfifo(&mut self, name: &str) -> SysResult<()> {
        let path = self.fifo_path(name, true)?;
        // SAFETY: `path` is a valid NUL-terminated string.
        cvt(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }).map(drop)
    }

    fn open_fifo(&mut self, name: &str, mode: FifoMode) -> SysResult<i32> {
        let path = self.fifo_path(name, false)?;
        let access = match mode {
            FifoMode::Read => libc::O_RDONLY,
            FifoMode::Write => libc::O_WRONLY,
            FifoMode::ReadWrite => libc::O_RDWR,
        };
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = cvt(unsafe { libc::open(path.as_ptr(), access | libc::O_NONBLOCK) })?;
        self.adopt(fd)
    }

    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()> {
        let mut ev = event.map(|(events, data)| libc::epoll_event { events, u64: data });
        let ptr = ev
            .as_mut()
            .map_or(std::ptr::null_mut(), |e| e as *mut libc::epoll_event);
        // SAFETY: `ptr` is NULL (deliberately: the callee checks it) or points to a valid
        // epoll_event that lives across the call.
        cvt(unsafe { (self.calls.epoll_ctl)(self.kfd(epfd), op, self.kfd(fd), ptr) })?;
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
        buffer: Buffer,
    ) -> SysResult<Vec<Event>> {
        wait_call(
            self.calls,
            self.kfd(epfd),
            maxevents,
            kind,
            buffer,
            self.items,
        )
    }

    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16> {
        let mut p = libc::pollfd {
            fd: self.kfd(fd),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        cvt(unsafe { (self.calls.poll)(&mut p, 1, 0) })?;
        Ok(p.revents)
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        let k = self.kfd(fd);
        // SAFETY: `data` is valid for `data.len()` bytes.
        let n = cvt_size(unsafe { libc::write(k, data.as_ptr().cast(), data.len()) })?;
        self.settle_write(k);
        Ok(n)
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        // SAFETY: `buf` is valid and writable for `buf.len()` bytes.
        cvt_size(unsafe { libc::read(self.kfd(fd), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        let k = self.kfd(fd);
        let peers = if how == libc::SHUT_RD {
            Vec::new()
        } else {
            self.tcp_peers(k, false)
        };
        // SAFETY: no pointers.
        cvt(unsafe { (self.calls.shutdown)(k, how) })?;
        self.settle_peers(&peers);
        Ok(())
    }

    fn close(&mut self, fd: i32) -> SysResult<()> {
        let k = self.kfd(fd);
        let peers = self.tcp_peers(k, true);
        // SAFETY: closes a number of our private range (or an invalid negative one).
        cvt(unsafe { (self.calls.close)(k) })?;
        self.open.remove(&k);
        self.settle_peers(&peers);
        Ok(())
    }

    fn dup(&mut self, fd: i32) -> SysResult<i32> {
        let base = self.calls.base as libc::c_ulong;
        // SAFETY: integer arguments only.
        let k = cvt(unsafe { (self.calls.fcntl)(self.kfd(fd), libc::F_DUPFD, base) })?;
        Ok(self.placed(k))
    }

    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32> {
        // SAFETY: no pointers; the target is in our range (or invalid).
        let k = cvt(unsafe { (self.calls.dup2)(self.kfd(fd), self.kfd(target)) })?;
        Ok(self.placed(k))
    }

    fn dup3(&mut self, fd: i32, target: i32, flags: i32) -> SysResult<i32> {
        // SAFETY: no pointers; the target is in our range (or invalid).
        let k = cvt(unsafe { (self.calls.dup3)(self.kfd(fd), self.kfd(target), flags) })?;
        Ok(self.placed(k))
    }

    fn dupfd(&mut self, fd: i32, min: i32) -> SysResult<i32> {
        // F_DUPFD's argument is unsigned: a negative minimum stays out of range (EINVAL).
        let min = if min < 0 {
            libc::c_ulong::MAX
        } else {
            (self.calls.base + min) as libc::c_ulong
        };
        // SAFETY: integer arguments only.
        let k = cvt(unsafe { (self.calls.fcntl)(self.kfd(fd), libc::F_DUPFD, min) })?;
        Ok(self.placed(k))
    }

    fn close_range(&mut self, first: u32, last: u32, flags: u32) -> SysResult<()> {
        let base = self.calls.base as u32;
        // SAFETY: no pointers; the range is inside ours (`last` <= 999 scenario numbers).
        cvt(unsafe { (self.calls.close_range)(base + first, base + last, flags as c_int) })?;
        if flags & 4 == 0 {
            let (lo, hi) = ((base + first) as i32, (base + last) as i32);
            self.open.retain(|&fd| fd < lo || fd > hi);
        }
        Ok(())
    }

    fn fork(&mut self) -> super::Forked {
        // No C ABI scenario may run while any backend forks: the library's `pthread_atfork`
        // handler hands every instance it has over to the kernel (see the capi README), which
        // would change a capi scenario running on another thread. The capi backend's own
        // fork holds that lock already (its range lock).
        let _quiet = (self.calls.name != "capi").then(super::capi::range_lock);
        // SAFETY: the child runs only the runner's loop of this thread (system calls and
        // glibc's allocator, which `fork` leaves usable) and leaves with `_exit`.
        match unsafe { libc::fork() } {
            0 => super::Forked::Child,
            pid if pid > 0 => super::Forked::Parent(pid),
            _ => super::Forked::Failed(last_errno()),
        }
    }

    fn unix_listen(&mut self, ty: SockType, backlog: i32) -> SysResult<(i32, Address)> {
        self.unix_listen_socket(ty, backlog)
    }

    fn unix_connect(&mut self, addr: Address) -> SysResult<i32> {
        self.unix_connect_socket(addr)
    }

    fn accept(&mut self, fd: i32) -> SysResult<i32> {
        self.accept_socket(fd)
    }

    fn inet(&mut self, call: InetCall) -> SysResult<InetDone> {
        self.inet_call(call)
    }

    fn spawn(&mut self, call: BlockingCall) -> Worker {
        self.spawn_on(None, call)
    }

    fn spawn_named(&mut self, thread: &str, call: BlockingCall) -> Worker {
        self.spawn_on(Some(thread), call)
    }

    fn abandon(self: Box<Self>) {
        // Nothing here can be left inconsistent: close the descriptors, release the range.
        drop(self);
    }
}

impl Real {
    /// A background call on a new OS thread, or (`thread`) on the pooled thread of that
    /// name ([`OsThreads`]).
    fn spawn_on(&mut self, thread: Option<&str>, call: BlockingCall) -> Worker {
        let calls = self.calls;
        // The kernel's own calls sleep in known system calls (glibc's poll is `poll` or
        // `ppoll`, its select `select` or `pselect6`); a library's may sleep elsewhere.
        let known = |nrs: &'static [i64]| (calls.name == "kernel").then_some(nrs);
        match call {
            BlockingCall::Wait {
                epfd,
                maxevents,
                kind,
                buffer,
            } => {
                let (epfd, items) = (self.kfd(epfd), self.items);
                let nrs: &'static [i64] = match kind {
                    WaitKind::Wait { .. } => &[libc::SYS_epoll_wait],
                    WaitKind::Pwait { .. } => &[libc::SYS_epoll_pwait],
                    WaitKind::Pwait2 { .. } => &[libc::SYS_epoll_pwait2],
                };
                self.run(thread, known(nrs), move || {
                    Outcome::Events(wait_call(calls, epfd, maxevents, kind, buffer, items))
                })
            }
            BlockingCall::Poll { fd, timeout_ms } => {
                let fd = self.kfd(fd);
                self.run(
                    thread,
                    known(&[libc::SYS_poll, libc::SYS_ppoll]),
                    move || {
                        let mut p = libc::pollfd {
                            fd,
                            events: crate::exec::POLL_ALL,
                            revents: 0,
                        };
                        // SAFETY: one valid pollfd.
                        let r = cvt(unsafe { (calls.poll)(&mut p, 1, timeout_ms) });
                        Outcome::Poll(r.map(|_| p.revents))
                    },
                )
            }
            BlockingCall::Select { fd, timeout_ms } => {
                let fd = self.kfd(fd);
                self.run(
                    thread,
                    known(&[libc::SYS_select, libc::SYS_pselect6]),
                    move || Outcome::Select(select_call(calls, fd, timeout_ms)),
                )
            }
        }
    }

    fn run(
        &mut self,
        thread: Option<&str>,
        syscalls: Option<&'static [i64]>,
        call: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Worker {
        match thread {
            Some(name) => Worker::spawn_os_named(&mut self.threads, name, syscalls, call),
            None => Worker::spawn_os(syscalls, call),
        }
    }
}

/// A directory name for one backend run's FIFOs: the process, the backend and a count.
fn fifo_dir_name(backend: &str) -> PathBuf {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "eventpoll-conform-fifo-{}-{backend}-{run}",
        std::process::id()
    ))
}

/// `ms` milliseconds as a timespec.
fn ms_timespec(ms: u32) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::from(ms / 1000),
        tv_nsec: libc::c_long::from(ms % 1000) * 1_000_000,
    }
}

/// One wait call on real descriptors (foreground or background): the buffer holds
/// [`wait_buffer_len`] entries for `items` interest items so far.
fn wait_call(
    calls: &Calls,
    epfd: i32,
    maxevents: i32,
    kind: WaitKind,
    buffer: Buffer,
    items: usize,
) -> SysResult<Vec<Event>> {
    let mut buf = vec![libc::epoll_event { events: 0, u64: 0 }; wait_buffer_len(maxevents, items)];
    let guarded = match buffer {
        Buffer::Slots(n) => Some(GuardedSlots::new(n)?),
        _ => None,
    };
    let ptr = match (&guarded, buffer) {
        (Some(g), _) => g.ptr,
        (None, Buffer::Null) => std::ptr::null_mut(),
        _ => buf.as_mut_ptr(),
    };
    // An empty mask (nothing blocked), larger than any size the callee reads.
    let mask = [0u64; 16];
    // SAFETY (all three calls): `ptr` is NULL (deliberately), or points to `buf`, which
    // holds at least min(maxevents, items + 1) entries — more than can be written, since
    // at most one event per interest item and at most `maxevents` are reported — or to
    // `guarded`'s N writable entries before a PROT_NONE page, where the callee must stop
    // (deliberately: the kernel answers EFAULT or the count so far).
    let n = match kind {
        WaitKind::Wait { timeout_ms } => {
            cvt(unsafe { (calls.epoll_wait)(epfd, ptr, maxevents, timeout_ms) })?
        }
        WaitKind::Pwait {
            timeout_ms,
            sigsetsize,
        } => cvt(unsafe {
            (calls.epoll_pwait_sized)(
                epfd,
                ptr,
                maxevents,
                timeout_ms,
                mask.as_ptr().cast(),
                sigsetsize,
            )
        })?,
        WaitKind::Pwait2 { timeout } => {
            let ts = timeout.map(|(s, ns)| libc::timespec {
                tv_sec: s,
                tv_nsec: ns,
            });
            let tsp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            cvt(unsafe { (calls.epoll_pwait2)(epfd, ptr, maxevents, tsp, std::ptr::null()) })?
        }
    } as usize;
    if let Some(g) = &guarded {
        return Ok(g.read(n));
    }
    Ok(buf
        .iter()
        .take(if buffer == Buffer::Null { 0 } else { n })
        .map(|e| (e.events, e.u64))
        .collect())
}

/// `buf=N`: N `epoll_event` slots that end exactly where a `PROT_NONE` page begins, so that
/// writing slot N faults (the kernel: `EFAULT` or the count so far).
struct GuardedSlots {
    map: *mut libc::c_void,
    len: usize,
    ptr: *mut libc::epoll_event,
}

impl GuardedSlots {
    fn new(n: usize) -> SysResult<GuardedSlots> {
        let page = 4096;
        let size = std::mem::size_of::<libc::epoll_event>();
        let body = (n * size).div_ceil(page) * page;
        let len = body + page;
        // SAFETY: an anonymous private mapping of `len` bytes, checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_errno());
        }
        // SAFETY: the last page of our own mapping.
        let guard = unsafe { map.cast::<u8>().add(body) };
        // SAFETY: `guard` is page-aligned and inside the mapping.
        if unsafe { libc::mprotect(guard.cast(), page, libc::PROT_NONE) } != 0 {
            let e = last_errno();
            // SAFETY: unmapping what we mapped.
            unsafe { libc::munmap(map, len) };
            return Err(e);
        }
        // SAFETY: `n * size <= body`, so the slots start inside the mapping.
        let ptr = unsafe { guard.sub(n * size) }.cast::<libc::epoll_event>();
        Ok(GuardedSlots { map, len, ptr })
    }

    /// The first `n` events written (at most the N slots).
    fn read(&self, n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                // SAFETY: slot `i` is one of the N writable slots the callee filled
                // (`n` never exceeds N: the next slot faults); packed, so read unaligned.
                let e = unsafe { self.ptr.add(i).read_unaligned() };
                (e.events, e.u64)
            })
            .collect()
    }
}

impl Drop for GuardedSlots {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

/// `select` with `fd` in all three sets. The sets are bit arrays as long as `fd` needs
/// (descriptors of the C ABI's range are above `FD_SETSIZE`; the kernel reads `nfds` bits).
fn select_call(calls: &Calls, fd: i32, timeout_ms: i32) -> SysResult<SelectSets> {
    let mut tv = select_timeval(timeout_ms);
    let tvp = tv
        .as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut libc::timeval);
    let Ok(bit) = usize::try_from(fd) else {
        // No sets: `nfds` = fd + 1 is 0 (a plain sleep) or negative (EINVAL).
        let none = std::ptr::null_mut();
        // SAFETY: NULL sets are allowed; `tvp` is NULL or a valid timeval.
        let n = cvt(unsafe { (calls.select)(fd.saturating_add(1), none, none, none, tvp) })?;
        return Ok(SelectSets::from_mask(0)).map(|s| SelectSets { count: n, ..s });
    };
    let words = bit / 64 + 1;
    let mut sets = [vec![0u64; words], vec![0u64; words], vec![0u64; words]];
    for s in &mut sets {
        s[bit / 64] |= 1 << (bit % 64);
    }
    let [r, w, x] = &mut sets;
    // SAFETY: each set is a bit array of at least `fd + 1` bits, as `nfds = fd + 1` tells
    // the callee; `tvp` is NULL or points to a valid timeval.
    let n = cvt(unsafe {
        (calls.select)(
            fd + 1,
            r.as_mut_ptr().cast(),
            w.as_mut_ptr().cast(),
            x.as_mut_ptr().cast(),
            tvp,
        )
    })?;
    let on = |s: &Vec<u64>| s[bit / 64] & (1 << (bit % 64)) != 0;
    Ok(SelectSets {
        count: n,
        read: on(r),
        write: on(w),
        except: on(x),
    })
}
