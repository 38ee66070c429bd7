//! Raw system calls, by number ([`crate::raw_syscall!`]: the instruction itself), never
//! through the libc symbols (`syscall` included).
//!
//! This crate runs inside `libeventpoll.so`, which interposes `close`, `dup`, `fcntl`, the
//! epoll calls and (optionally) `poll`: calling those symbols from here would re-enter the
//! interposer. Everything that touches the kernel goes through this module, which also
//! turns `-1`/`errno` into the engine's [`Errno`] (`Err(Errno)`): the host's number, kept
//! as it is.

#![allow(unsafe_code)]

use libc::{c_int, c_long};

pub use eventpoll::Errno;

/// The errno of a raw call: the engine's [`Errno`], which holds any host number unchanged.
pub type RawErrno = Errno;

/// The result of a raw call: the non-negative return value, or the errno.
pub type SysResult<T> = Result<T, RawErrno>;

/// The calling thread's errno, as the engine's [`Errno`].
pub fn last_errno() -> RawErrno {
    // `last_os_error` always carries a number; EIO is never taken.
    std::io::Error::last_os_error()
        .raw_os_error()
        .map_or(Errno::EIO, Errno::from_raw_os_error)
}

fn cvt(r: c_long) -> SysResult<c_long> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// Every bit `poll(2)` can be asked for (`ERR`, `HUP` and `NVAL` are always reported).
pub const POLL_ALL: i16 = libc::POLLIN
    | libc::POLLPRI
    | libc::POLLOUT
    | libc::POLLRDNORM
    | libc::POLLRDBAND
    | libc::POLLWRNORM
    | libc::POLLWRBAND
    | 0x400 // POLLMSG
    | libc::POLLRDHUP;

/// `close(2)`.
pub fn close(fd: c_int) -> SysResult<()> {
    // SAFETY: no pointers; closing a number is memory-safe.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_close, fd) }).map(drop)
}

/// `fcntl(2)` with an integer argument.
pub fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> SysResult<c_int> {
    // SAFETY: only integer-argument commands are passed here.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_fcntl, fd, cmd, arg) }).map(|r| r as c_int)
}

/// Whether `fd` is an open descriptor (`fcntl(F_GETFD)`).
pub fn is_open(fd: c_int) -> bool {
    fd >= 0 && fcntl(fd, libc::F_GETFD, 0).is_ok()
}

/// `dup3(2)`.
pub fn dup3(old: c_int, new: c_int, flags: c_int) -> SysResult<c_int> {
    // SAFETY: no pointers.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_dup3, old, new, flags) }).map(|r| r as c_int)
}

/// `eventfd2(2)`.
pub fn eventfd(init: u32, flags: c_int) -> SysResult<c_int> {
    // SAFETY: no pointers.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_eventfd2, init, flags) }).map(|r| r as c_int)
}

/// `read(2)` into `buf`.
pub fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid and writable for its length.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) })
        .map(|r| r as usize)
}

/// `write(2)` from `buf`.
pub fn write(fd: c_int, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: `buf` is valid for its length.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) })
        .map(|r| r as usize)
}

/// The running kernel's (major, minor) version, from `uname(2)`'s release string (`None`
/// if it cannot be read).
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: `utsname` is plain data; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable `utsname`.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_uname, &mut u as *mut libc::utsname) }).ok()?;
    let release: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let release = std::str::from_utf8(&release).ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `epoll_create1(2)`.
pub fn epoll_create1(flags: c_int) -> SysResult<c_int> {
    // SAFETY: no pointers.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_epoll_create1, flags) }).map(|r| r as c_int)
}

/// `epoll_ctl(2)`; `event` may be `None` for `EPOLL_CTL_DEL`.
pub fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: Option<(u32, u64)>) -> SysResult<()> {
    let mut ev = event.map(|(events, data)| libc::epoll_event { events, u64: data });
    let ptr = ev
        .as_mut()
        .map_or(std::ptr::null_mut(), |e| e as *mut libc::epoll_event);
    // SAFETY: `ptr` is NULL (DEL) or points to an epoll_event living across the call.
    cvt(unsafe { crate::raw_syscall!(libc::SYS_epoll_ctl, epfd, op, fd, ptr) }).map(drop)
}

/// `epoll_pwait(2)` with no signal mask: harvest the kernel instance `epfd` into `buf`.
pub fn epoll_wait(
    epfd: c_int,
    buf: &mut [libc::epoll_event],
    timeout_ms: c_int,
) -> SysResult<usize> {
    // SAFETY: `buf` holds `buf.len()` writable entries.
    unsafe { epoll_wait_raw(epfd, buf.as_mut_ptr(), buf.len(), timeout_ms) }
}

/// [`epoll_wait`] into a buffer not initialised beforehand (a pump's batch: clearing it
/// would cost a store per byte on every pump): returns the events the kernel wrote.
pub fn epoll_wait_uninit(
    epfd: c_int,
    buf: &mut [std::mem::MaybeUninit<libc::epoll_event>],
    timeout_ms: c_int,
) -> SysResult<&[libc::epoll_event]> {
    // SAFETY: `buf` holds `buf.len()` writable entries (`MaybeUninit<T>` has `T`'s layout).
    let n = unsafe { epoll_wait_raw(epfd, buf.as_mut_ptr().cast(), buf.len(), timeout_ms) }?;
    let n = n.min(buf.len());
    // SAFETY: the kernel wrote the first `n` entries (its return value, at most the length
    // passed), and `epoll_event` is plain data: every bit pattern is a valid value.
    Ok(unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<libc::epoll_event>(), n) })
}

/// `epoll_pwait(2)` with no signal mask into `len` entries at `buf`.
///
/// # Safety
/// `buf` must be valid for `len` writes of `epoll_event`.
unsafe fn epoll_wait_raw(
    epfd: c_int,
    buf: *mut libc::epoll_event,
    len: usize,
    timeout_ms: c_int,
) -> SysResult<usize> {
    let max = len.min(c_int::MAX as usize) as c_int;
    // SAFETY: the caller gives `max` writable entries; a NULL mask with size 8 is allowed.
    cvt(unsafe {
        crate::raw_syscall!(
            libc::SYS_epoll_pwait,
            epfd,
            buf,
            max,
            timeout_ms,
            std::ptr::null::<libc::sigset_t>(),
            8usize,
        )
    })
    .map(|r| r as usize)
}

/// `epoll_pwait2(2)` on the kernel instance `epfd` (`epoll_pwait` with the timeout rounded
/// up to milliseconds where the kernel lacks it): `timeout` `None` waits without limit;
/// `sigmask` (a kernel signal set, 8 bytes) is applied while blocked.
///
/// # Safety
/// `events` must be valid for `maxevents` writes (or invalid in a way the kernel reports:
/// `EFAULT`); `sigmask`, when given, readable.
pub unsafe fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: Option<std::time::Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> SysResult<usize> {
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask = sigmask.unwrap_or(std::ptr::null());
    // Without a timeout `epoll_pwait` is the same call (and one valgrind knows); a kernel
    // (or valgrind, or a seccomp filter) that answered `ENOSYS` once is not asked again.
    static NO_PWAIT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if timeout.is_some() && !NO_PWAIT2.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: the caller's contract for `events` and `mask`; `tsp` points to `ts`,
        // alive across the call.
        let r = cvt(unsafe {
            crate::raw_syscall!(
                libc::SYS_epoll_pwait2,
                epfd,
                events,
                maxevents,
                tsp,
                mask,
                8usize,
            )
        });
        if r != Err(Errno::ENOSYS) {
            return r.map(|n| n as usize);
        }
        NO_PWAIT2.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let ms = timeout.map_or(-1, |t| {
        t.as_nanos().div_ceil(1_000_000).min(c_int::MAX as u128) as c_int
    });
    // SAFETY: as above.
    cvt(unsafe {
        crate::raw_syscall!(
            libc::SYS_epoll_pwait,
            epfd,
            events,
            maxevents,
            ms,
            mask,
            8usize,
        )
    })
    .map(|n| n as usize)
}

/// Block every signal the thread can block but glibc's own two (32 and 33: thread
/// cancellation and `setxid`) and return the previous mask, as a kernel signal set (8
/// bytes); `None` if the kernel refused. With it a waiter that loops between host sleeps
/// keeps a signal pending until its next sleep, which then ends with `EINTR` (applying the
/// old mask atomically), instead of running the handler between two sleeps and missing it.
pub fn block_signals() -> Option<u64> {
    let all: u64 = !((1u64 << 31) | (1u64 << 32));
    let mut old: u64 = 0;
    // SAFETY: both sets are 8 bytes, the kernel's sigset size, and live across the call.
    let r = cvt(unsafe {
        crate::raw_syscall!(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &all as *const u64,
            &mut old as *mut u64,
            8usize,
        )
    });
    r.ok().map(|_| old)
}

/// Set the thread's signal mask to `mask` (a kernel signal set from [`block_signals`]).
pub fn set_signal_mask(mask: u64) {
    // SAFETY: an 8-byte set alive across the call; no old set asked for.
    let _ = unsafe {
        crate::raw_syscall!(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// `ppoll(2)`: `timeout` `None` waits without limit; `sigmask` (a kernel signal set, 8
/// bytes) is applied atomically while blocked, as `epoll_pwait` does.
pub fn ppoll(
    fds: &mut [libc::pollfd],
    timeout: Option<libc::timespec>,
    sigmask: Option<*const libc::sigset_t>,
) -> SysResult<usize> {
    let ts = timeout;
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask = sigmask.unwrap_or(std::ptr::null());
    // SAFETY: `fds` is a valid array of its length; `tsp` is NULL or points to `ts`; `mask`
    // is NULL or the caller's signal set (validated by the caller, or the kernel answers
    // EFAULT).
    cvt(unsafe {
        crate::raw_syscall!(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::c_ulong,
            tsp,
            mask,
            8usize,
        )
    })
    .map(|r| r as usize)
}

/// `poll(2)` with timeout 0 on one descriptor, asking for every bit: its current mask
/// (`POLLNVAL` when closed).
pub fn poll_mask(fd: c_int) -> u32 {
    let mut p = [libc::pollfd {
        fd,
        events: POLL_ALL,
        revents: 0,
    }];
    match ppoll(
        &mut p,
        Some(libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
        None,
    ) {
        Ok(_) => p[0].revents as u16 as u32,
        Err(_) => 0,
    }
}

/// `getpid(2)` (glibc caches nothing since 2.25, but we do not rely on it).
pub fn getpid() -> c_int {
    // SAFETY: no arguments.
    unsafe { crate::raw_syscall!(libc::SYS_getpid) as c_int }
}

/// The process id for `kcmp(2)`'s arguments: [`getpid`] once, then remembered (a call per
/// `epoll_ctl` of a known descriptor, before), until [`forget_own_pid`] — which
/// [`crate::Host::after_fork_child`] calls, so that a child asks again.
pub fn own_pid() -> c_int {
    let p = OWN_PID.load(std::sync::atomic::Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let p = getpid();
    OWN_PID.store(p, std::sync::atomic::Ordering::Relaxed);
    p
}

/// Make [`own_pid`] ask the kernel again (in a child after `fork`).
pub fn forget_own_pid() {
    OWN_PID.store(0, std::sync::atomic::Ordering::Relaxed);
}

static OWN_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// `gettid(2)`: the calling thread's id.
pub fn gettid() -> c_int {
    // SAFETY: no arguments.
    unsafe { crate::raw_syscall!(libc::SYS_gettid) as c_int }
}

/// `kcmp(2)` with `KCMP_FILE`: whether two descriptors of this process refer to the same
/// open file description (`None` when kcmp is unavailable).
pub fn same_file(a: c_int, b: c_int) -> Option<bool> {
    let pid = own_pid();
    // SAFETY: no pointers for KCMP_FILE.
    let r = unsafe {
        crate::raw_syscall!(libc::SYS_kcmp, pid, pid, 0 /* KCMP_FILE */, a, b)
    };
    (r >= 0).then_some(r == 0)
}

/// `kcmp(2)` with `KCMP_EPOLL_TFD`: whether descriptor `fd` refers to the file that the
/// kernel epoll `epfd` watches under target number `tfd` (`None` when kcmp is unavailable).
/// Several items can have the same target number (a number closed and reused while the old
/// file lives on: its item stays, keyed by the old file): every one of them is compared.
pub fn epoll_watches(fd: c_int, epfd: c_int, tfd: c_int) -> Option<bool> {
    #[repr(C)]
    struct KcmpEpollSlot {
        efd: u32,
        tfd: u32,
        toff: u32,
    }
    let pid = own_pid();
    let mut compared = false;
    for toff in 0..64 {
        let slot = KcmpEpollSlot {
            efd: epfd as u32,
            tfd: tfd as u32,
            toff,
        };
        // SAFETY: `slot` is a valid kcmp_epoll_slot living across the call.
        let r = unsafe {
            crate::raw_syscall!(
                libc::SYS_kcmp,
                pid,
                pid,
                7, /* KCMP_EPOLL_TFD */
                fd,
                &slot as *const KcmpEpollSlot,
            )
        };
        if r == 0 {
            return Some(true);
        }
        if r < 0 {
            return match last_errno() {
                // No (more) items with this target number, or `fd` is not open: not ours.
                Errno::ENOENT | Errno::EBADF => Some(false),
                // kcmp unavailable: cannot tell.
                _ if !compared => None,
                _ => Some(false),
            };
        }
        compared = true;
    }
    Some(false)
}

/// `kcmp(KCMP_EPOLL_TFD)` of this process: whether the kernel epoll at number `efd` holds
/// an item for the file at number `tfd` under that number — 0 when it does, positive when
/// it holds another file there, else the errno (`EBADF`: `efd` closed; `EINVAL`: not an
/// epoll; `ENOENT`: no such item).
fn kcmp_epoll_tfd(efd: c_int, tfd: c_int) -> SysResult<c_long> {
    #[repr(C)]
    struct KcmpEpollSlot {
        efd: u32,
        tfd: u32,
        toff: u32,
    }
    let pid = own_pid();
    let slot = KcmpEpollSlot {
        efd: efd as u32,
        tfd: tfd as u32,
        toff: 0,
    };
    // SAFETY: `slot` is a valid kcmp_epoll_slot living across the call.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_kcmp,
            pid,
            pid,
            7,   /* KCMP_EPOLL_TFD */
            tfd, // idx1: the target file, in this process
            &slot as *const KcmpEpollSlot
        )
    };
    cvt(r)
}

/// Whether number `fd` is (still) a kernel epoll holding an item for the file at number
/// `tfd` under that number (`kcmp(KCMP_EPOLL_TFD)`); `None` when kcmp cannot tell.
pub fn epoll_holds(fd: c_int, tfd: c_int) -> Option<bool> {
    match kcmp_epoll_tfd(fd, tfd) {
        Ok(r) => Some(r == 0),
        // `fd` closed, not an epoll, or without such an item.
        Err(Errno::EBADF | Errno::EINVAL | Errno::ENOENT) => Some(false),
        Err(_) => None,
    }
}

/// Whether `fd` is a kernel epoll, asked without polling it (`kcmp(KCMP_EPOLL_TFD)` for an
/// item of `fd` itself, which an epoll cannot hold: `ENOENT` from an epoll, `EINVAL` from
/// any other file). A poll of an epoll file drops the items of its ready list found not
/// ready before the first ready one, which changes what its next wait reports. `None` when
/// kcmp cannot tell.
pub fn is_epoll(fd: c_int) -> Option<bool> {
    match kcmp_epoll_tfd(fd, fd) {
        Ok(_) | Err(Errno::ENOENT) => Some(true),
        Err(Errno::EINVAL | Errno::EBADF) => Some(false),
        Err(_) => None,
    }
}

/// How many levels of epoll instances lie below kernel epoll instance `fd` as Linux's
/// nesting check counts them (0: it watches none; 4: four or more, too deep for any ADD),
/// asked of the kernel: `fd` is added to the innermost of a chain of fresh instances with
/// `h` levels above it, which Linux refuses with `ELOOP` exactly when that depth + 1 + `h`
/// exceeds 4; tried with `h` = 3, 2, 1, 0 until one is accepted (and deleted again). `None`
/// when the instances cannot be made or the kernel refuses for another reason. While a try
/// lasts, the instance has a few more levels above it than it will: another process's ADD
/// into it at that moment (one sharing it since a `fork`) could be refused `ELOOP`.
pub fn epoll_depth_below(fd: c_int) -> Option<usize> {
    const MAX_NESTS: usize = 4;
    let mut chain: Vec<c_int> = Vec::with_capacity(MAX_NESTS);
    let depth = (|| {
        for _ in 0..MAX_NESTS {
            let ep = epoll_create1(libc::EPOLL_CLOEXEC).ok()?;
            if let Some(&outer) = chain.last() {
                let linked = epoll_ctl(outer, libc::EPOLL_CTL_ADD, ep, Some((0, 0)));
                chain.push(ep);
                linked.ok()?;
            } else {
                chain.push(ep);
            }
        }
        // chain[h] has h levels above it.
        for h in (0..MAX_NESTS).rev() {
            match epoll_ctl(chain[h], libc::EPOLL_CTL_ADD, fd, Some((0, 0))) {
                Ok(()) => {
                    let _ = epoll_ctl(chain[h], libc::EPOLL_CTL_DEL, fd, None);
                    return Some(MAX_NESTS - 1 - h);
                }
                Err(Errno::ELOOP) => {}
                Err(_) => return None,
            }
        }
        Some(MAX_NESTS)
    })();
    for ep in chain.into_iter().rev() {
        let _ = close(ep);
    }
    depth
}

/// Move `fd` to the lowest free number at or above `min` with close-on-exec (the original
/// is closed); on failure `fd` is kept where it is.
pub fn move_high(fd: c_int, min: c_int) -> c_int {
    match fcntl(fd, libc::F_DUPFD_CLOEXEC, min as c_long) {
        Ok(high) => {
            let _ = close(fd);
            high
        }
        Err(_) => fd,
    }
}

/// A `Duration` as a kernel timespec (saturating).
pub fn timespec(d: std::time::Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// `fstat(2)` (not interposed).
pub fn fstat(fd: c_int) -> SysResult<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(last_errno());
    }
    Ok(st)
}

/// The file type bits (`st_mode & S_IFMT`) of `fd`.
pub fn file_type(fd: c_int) -> SysResult<libc::mode_t> {
    fstat(fd).map(|st| st.st_mode & libc::S_IFMT)
}

/// A count that moves with a file's activity and can be read without consuming anything,
/// or `None` for a file that has none: the bytes queued in a pipe (`FIONREAD`), in a
/// socket's receive and send queues (`FIONREAD` plus `SIOCOUTQ`), an eventfd's counter or a
/// timerfd's expirations (`/proc/self/fdinfo`). Two equal readings around a moment when
/// nothing watched the file say (nearly always) that nobody wrote to it or read from it
/// meanwhile: the io_uring driver uses it for the moment a poll is moved off an exiting
/// thread (`driver::uring`).
pub fn activity_level(fd: c_int) -> Option<u64> {
    fn queued(fd: c_int, request: libc::c_ulong) -> Option<u64> {
        let mut n: c_int = 0;
        // SAFETY: `n` is a valid, writable int for the two ioctls used here.
        let r = unsafe { crate::raw_syscall!(libc::SYS_ioctl, fd, request, &mut n as *mut c_int) };
        (r >= 0).then_some(n as u64)
    }
    match file_type(fd).ok()? {
        libc::S_IFIFO => queued(fd, libc::FIONREAD),
        libc::S_IFSOCK => {
            let inq = queued(fd, libc::FIONREAD);
            let outq = queued(fd, libc::TIOCOUTQ); // SIOCOUTQ
            if inq.is_none() && outq.is_none() {
                return None;
            }
            Some((inq.unwrap_or(0) << 32) ^ outq.unwrap_or(0))
        }
        _ => fdinfo_counter(fd),
    }
}

/// The `eventfd-count:` (hexadecimal) or `ticks:` (decimal) line of `/proc/self/fdinfo/N`.
fn fdinfo_counter(fd: c_int) -> Option<u64> {
    let path = format!("/proc/self/fdinfo/{fd}\0");
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC
        )
    };
    let info = cvt(r).ok()? as c_int;
    let mut buf = [0u8; 512];
    let n = read(info, &mut buf);
    let _ = close(info);
    let text = std::str::from_utf8(&buf[..n.ok()?]).ok()?;
    text.lines().find_map(|line| {
        if let Some(v) = line.strip_prefix("eventfd-count:") {
            u64::from_str_radix(v.trim(), 16).ok()
        } else {
            line.strip_prefix("ticks:")
                .and_then(|v| v.trim().parse().ok())
        }
    })
}

/// A file's device and inode numbers: while a file with an inode of its own (a socket, a
/// pipe or FIFO, a device, a regular file) is alive no other file has the same pair. Files
/// on the kernel's one anonymous inode — every eventfd, timerfd, signalfd, epoll instance —
/// share theirs ([`own_identity`] tells them apart).
pub fn identity(st: &libc::stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// [`identity`] for a file with an inode of its own; `None` for a file on the anonymous
/// inode (no file type in its mode), whose pair names every such file at once.
///
/// ```
/// use eventpoll_host::sys;
/// let e = sys::eventfd(0, libc::EFD_CLOEXEC).unwrap();
/// assert_eq!(sys::own_identity(&sys::fstat(e).unwrap()), None);
/// let dir = std::fs::File::open(".").unwrap();
/// use std::os::fd::AsRawFd;
/// assert!(sys::own_identity(&sys::fstat(dir.as_raw_fd()).unwrap()).is_some());
/// sys::close(e).unwrap();
/// ```
pub fn own_identity(st: &libc::stat) -> Option<(u64, u64)> {
    (st.st_mode & libc::S_IFMT != 0).then(|| identity(st))
}

/// The address family of socket `fd` (`SO_DOMAIN`); `None` if it is not a socket.
pub fn socket_domain(fd: c_int) -> Option<c_int> {
    let mut domain: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are writable and `len` gives `domain`'s size.
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_getsockopt,
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            &mut domain as *mut c_int,
            &mut len as *mut libc::socklen_t,
        )
    };
    cvt(r).ok().map(|_| domain)
}

/// The identity (device and inode numbers, as [`identity`]) of the peer of
/// connection-based unix socket `fd` (stream or seqpacket), asked of the kernel's socket diagnostics (`NETLINK_SOCK_DIAG`,
/// `UNIX_DIAG_PEER`). `None` when `fd` is not a connected unix socket or the kernel has no
/// unix diagnostics (or `fd` is a datagram socket, whose `shutdown` does not reach its
/// peer).
pub fn unix_peer(fd: c_int) -> Option<(u64, u64)> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_PEER: u32 = 0x4;
    const UNIX_DIAG_PEER: u16 = 2;
    // The socket's family first: one cheap call answers for every other socket (a TCP
    // server's `shutdown` of each connection), which the diagnostics below would look up
    // by inode among all the machine's unix sockets, through a netlink socket made for it
    // (four calls and a scan: 11% of a Node server's CPU per request).
    if socket_domain(fd)? != libc::AF_UNIX {
        return None;
    }
    let st = fstat(fd).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return None;
    }
    // netlink header (16 bytes) + unix_diag_req (24 bytes), native byte order.
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req[24..28].copy_from_slice(&(st.st_ino as u32).to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
                                             // SAFETY: no pointers.
    let nl = cvt(unsafe {
        crate::raw_syscall!(
            libc::SYS_socket,
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })
    .ok()? as c_int;
    let mut buf = [0u8; 512];
    // SAFETY: `req` is readable for its length; `buf` writable for its length; a null
    // address means the kernel (netlink) for sendto and "don't care" for recvfrom.
    let n = unsafe {
        let sent = crate::raw_syscall!(
            libc::SYS_sendto,
            nl,
            req.as_ptr(),
            req.len(),
            0,
            std::ptr::null::<libc::sockaddr>(),
            0,
        );
        if sent == req.len() as c_long {
            crate::raw_syscall!(
                libc::SYS_recvfrom,
                nl,
                buf.as_mut_ptr(),
                buf.len(),
                0,
                std::ptr::null_mut::<libc::sockaddr>(),
                std::ptr::null_mut::<libc::socklen_t>(),
            )
        } else {
            -1
        }
    };
    let _ = close(nl);
    let n = usize::try_from(n).ok()?.min(buf.len());
    // One message: header (type SOCK_DIAG_BY_FAMILY), unix_diag_msg (16 bytes), attributes.
    let u16_at = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
    let u32_at = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    // unix_diag_msg: family, type, state, pad, inode, cookie.
    let ty = c_int::from(buf.get(17).copied().unwrap_or(0));
    if n < 32
        || u16_at(4) != SOCK_DIAG_BY_FAMILY
        || (ty != libc::SOCK_STREAM && ty != libc::SOCK_SEQPACKET)
    {
        return None;
    }
    let end = (u32_at(0) as usize).min(n);
    let mut at = 32;
    while at + 4 <= end {
        let (len, ty) = (u16_at(at) as usize, u16_at(at + 2));
        if len < 4 || at + len > end {
            break;
        }
        if ty == UNIX_DIAG_PEER && len >= 8 {
            // Every socket lives on the one sockfs device.
            return Some((st.st_dev, u64::from(u32_at(at + 4))));
        }
        at += (len + 3) & !3;
    }
    None
}

/// Whether `fd` was opened with write access (`O_WRONLY` or `O_RDWR`).
pub fn writable_access(fd: c_int) -> bool {
    fcntl(fd, libc::F_GETFL, 0).is_ok_and(|fl| fl & libc::O_ACCMODE != libc::O_RDONLY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` kernel instances, each watching the next; the first is the top.
    fn chain(n: usize) -> Vec<c_int> {
        let eps: Vec<c_int> = (0..n)
            .map(|_| epoll_create1(libc::EPOLL_CLOEXEC).expect("an epoll"))
            .collect();
        for w in eps.windows(2) {
            epoll_ctl(
                w[0],
                libc::EPOLL_CTL_ADD,
                w[1],
                Some((libc::EPOLLIN as u32, 0)),
            )
            .expect("a link");
        }
        eps
    }

    #[test]
    fn the_kernel_tells_how_deep_a_chain_of_instances_goes() {
        for n in 1..=5 {
            let eps = chain(n);
            // The top has n - 1 levels below it; five or more instances say 4.
            assert_eq!(
                epoll_depth_below(eps[0]),
                Some((n - 1).min(4)),
                "{n} instances"
            );
            // Asked again, the same: the probe left nothing behind.
            assert_eq!(
                epoll_depth_below(eps[0]),
                Some((n - 1).min(4)),
                "{n} instances"
            );
            for fd in eps {
                let _ = close(fd);
            }
        }
        // A regular file, which epoll refuses (EPERM): no answer.
        let path = std::env::temp_dir().join(format!("eventpoll-depth-{}", std::process::id()));
        let f = std::fs::File::create(&path).expect("a file");
        use std::os::fd::AsRawFd;
        assert_eq!(epoll_depth_below(f.as_raw_fd()), None);
        drop(f);
        let _ = std::fs::remove_file(path);
    }
}
