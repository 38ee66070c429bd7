//! The exported C functions: the six epoll calls with Linux's signatures and errno, and the
//! descriptor calls the library interposes to keep its table true (`close`, `close_range`,
//! `closefrom`, `dup`, `dup2`, `dup3`, `fcntl`/`fcntl64` for `F_DUPFD`/`F_DUPFD_CLOEXEC`; `fork` through
//! `pthread_atfork`), and those after which Linux wakes a file without a key, which the
//! library passes on (`fcntl(F_SETPIPE_SZ)`, `shutdown`).
//!
//! Every function catches panics (a panic becomes `-1` with `errno` `EIO`) and makes its own
//! system calls by number, never through the libc symbols it interposes. Calls on numbers
//! the library does not own — an epoll instance created by a raw system call, any other
//! file — go to the kernel unchanged.
//!
//! Linux's check order (measured on 6.18): `epoll_ctl` — `EFAULT` for an unreadable event
//! (ADD/MOD, or any op other than DEL; DEL never reads it), `EBADF` epfd, `EBADF` fd,
//! `EPERM`, `EINVAL`, then the op's own errors; the waits — `epoll_pwait2`'s timespec
//! (`EFAULT`/`EINVAL`), the signal set (size `EINVAL`, only when the pointer is non-NULL;
//! then `EFAULT`), `EBADF`, `maxevents` `EINVAL`, a buffer that leaves user space
//! (`access_ok`) `EFAULT`, not an instance `EINVAL`; otherwise the buffer faults only when
//! an event is to be written there: the events before that slot are reported (`EFAULT` if
//! none), the one that does not fit stays ready. User memory is read and written through
//! [`crate::user`], which turns a bad pointer into `EFAULT` instead of a crash.
//!
//! The library's own descriptors (bells, the driver's, the log file) look closed to the
//! program: `close`, `dup*`, `fcntl`, `read`, `write`, `epoll_ctl` and the waits on them
//! say `EBADF` (with Linux's errno order, as for a closed number), and the interposed
//! `poll`/`select` report them as closed.

#![allow(unsafe_code)]

use crate::log::{trace, Ret};
use crate::process::{self, Slot};
use crate::user;
use eventpoll::linux::EP_MAX_EVENTS;
use eventpoll::EpollEvent;
use eventpoll::Errno;
use eventpoll_host::sys;
use libc::{c_int, c_long, c_uint, c_ulong, c_void, size_t};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Run `body`, map `Err(errno)` to `-1` + errno and a panic to `-1` + `EIO`. A call that
/// succeeds leaves `errno` as the caller had it, as a system call's wrapper does (the
/// library's own probes and sleeps on the way — an `rt_sigprocmask` that fails by design,
/// a timed-out `ppoll` — set it).
pub(crate) fn ffi(body: impl FnOnce() -> Result<c_int, Errno>) -> c_int {
    let keep = KeepErrnoAcross::new();
    let r = catch_unwind(AssertUnwindSafe(body));
    drop(keep); // the caller's errno back; a failure sets its own below
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e.raw_os_error());
            -1
        }
        Err(_) => {
            set_errno(libc::EIO);
            -1
        }
    }
}

/// A raw syscall's `-1`/errno as a result.
pub(crate) fn raw(r: c_long) -> Result<c_int, Errno> {
    if r < 0 {
        Err(eventpoll_host::sys::last_errno())
    } else {
        Ok(r as c_int)
    }
}

/// A caller's timespec as a duration: `EINVAL` for a negative one or nanoseconds out of
/// range, as the kernel checks it.
pub(crate) fn duration_of(ts: &libc::timespec) -> Result<Duration, Errno> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Whether the kernel can read a signal set at `p` (`rt_sigprocmask` with an invalid `how`
/// copies the set first: `EFAULT` if it cannot, else `EINVAL` and no change).
fn sigset_readable(p: *const libc::sigset_t) -> bool {
    // SAFETY: the kernel validates `p`; an invalid `how` changes nothing.
    let r = unsafe {
        eventpoll_host::raw_syscall!(libc::SYS_rt_sigprocmask, 0x7fff_0000, p, 0usize, 8usize)
    };
    !(r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT))
}

// ----- epoll_create -----

/// `epoll_create(2)`: `size <= 0` is `EINVAL`.
#[no_mangle]
pub extern "C" fn epoll_create(size: c_int) -> c_int {
    let r = ffi(|| {
        if size <= 0 {
            return Err(Errno::EINVAL);
        }
        create(0)
    });
    trace(|| format!("epoll_create({size})"), Ret(r));
    r
}

/// `epoll_create1(2)`: flags other than `EPOLL_CLOEXEC` are `EINVAL`.
#[no_mangle]
pub extern "C" fn epoll_create1(flags: c_int) -> c_int {
    let r = ffi(|| {
        if flags & !libc::EPOLL_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        create(flags)
    });
    trace(|| format!("epoll_create1({flags:#x})"), Ret(r));
    r
}

fn create(flags: c_int) -> Result<c_int, Errno> {
    match process::get() {
        Some(p) => {
            let _g = p.gate.enter();
            p.create_instance(flags)
        }
        None => sys::epoll_create1(flags),
    }
}

// ----- epoll_ctl -----

/// `epoll_ctl(2)`.
///
/// # Safety
/// None beyond the C signature: an `event` that cannot be read is `EFAULT`, as on Linux.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut EpollEvent,
) -> c_int {
    let mut seen = None;
    // A descriptor registered by this call answers its poll with the arming's report.
    let r = ffi(|| eventpoll_host::ctl_scope(|| ctl(epfd, op, fd, event, &mut seen)));
    trace(
        || {
            // The event as the call read it (DEL and unreadable ones are not read).
            let ev = match seen {
                Some(e) => {
                    let (bits, data): (u32, u64) = (e.events, e.data);
                    format!(
                        "{{{}, {data:#x}}}",
                        eventpoll::Events::from_bits_retain(bits).names()
                    )
                }
                None if event.is_null() => "NULL".to_string(),
                None => format!("{event:p}"),
            };
            format!("epoll_ctl({epfd}, {}, {fd}, {ev})", op_name(op))
        },
        Ret(r),
    );
    r
}

fn op_name(op: c_int) -> String {
    match op {
        libc::EPOLL_CTL_ADD => "ADD".into(),
        libc::EPOLL_CTL_DEL => "DEL".into(),
        libc::EPOLL_CTL_MOD => "MOD".into(),
        other => other.to_string(),
    }
}

/// `epoll_ctl`; `seen` gets the event as read (for the trace).
fn ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    event: *mut EpollEvent,
    seen: &mut Option<EpollEvent>,
) -> Result<c_int, Errno> {
    let Some(p) = process::get_unless_copied() else {
        // SAFETY: the kernel validates everything.
        return raw(unsafe {
            eventpoll_host::raw_syscall!(libc::SYS_epoll_ctl, epfd, op, fd, event)
        });
    };
    // Linux copies the event in first (every op but DEL): EFAULT before any EBADF.
    let has_event = op != libc::EPOLL_CTL_DEL;
    let ev = if has_event {
        let e = user::read(event).ok_or(Errno::EFAULT)?;
        *seen = Some(e);
        e
    } else {
        EpollEvent::default()
    };
    let _g = p.gate.enter();
    // A hidden number is a closed one, as `epfd` or as `fd`: EBADF either way.
    if process::is_hidden(epfd) || process::is_hidden(fd) {
        return Err(Errno::EBADF);
    }
    let inst = match p.slot(epfd) {
        Some(Slot::Epoll(inst)) => inst,
        _ => {
            // Not ours: the kernel's, with the event as read (DEL passes the pointer on,
            // which the kernel does not read either).
            let evp = if has_event {
                &ev as *const EpollEvent
            } else {
                event as *const EpollEvent
            };
            // SAFETY: `evp` is our copy or the caller's pointer, which DEL never reads.
            return raw(unsafe {
                eventpoll_host::raw_syscall!(libc::SYS_epoll_ctl, epfd, op, fd, evp)
            });
        }
    };
    // A kernel epoll the table does not track (an instance handed over at a `fork`) is a
    // host file to the engine, which would accept it with `EXCLUSIVE`: Linux refuses an
    // epoll target with `EXCLUSIVE` (`EINVAL`) before it polls anything.
    if op == libc::EPOLL_CTL_ADD
        && ev.events & libc::EPOLLEXCLUSIVE as u32 != 0
        && !matches!(p.slot(fd), Some(Slot::Epoll(_)))
        && sys::is_epoll(fd) == Some(true)
    {
        return Err(Errno::EINVAL);
    }
    let is_add_or_mod = op == libc::EPOLL_CTL_ADD || op == libc::EPOLL_CTL_MOD;
    // A description seen for the first time is registered for the interest asked for.
    let (target, registered) = match p.target(fd, if is_add_or_mod { ev.events } else { 0 }) {
        Ok(t) => t,
        // Only a registration fails here, and only a number the table did not know (or
        // forgot, closed unseen) is registered: it holds no item of any of our instances,
        // and a DEL or a MOD of it is Linux's `ENOENT` once the file is known to be
        // pollable (`EINVAL` first for a MOD with `EXCLUSIVE`). A registration the host
        // refuses for another reason (the kernel-epoll driver's `ELOOP` for a kernel
        // instance at the bottom of a chain as deep as Linux allows — one handed over at a
        // `fork` — or a watch limit) must not show through.
        Err(e)
            if (op == libc::EPOLL_CTL_DEL || op == libc::EPOLL_CTL_MOD)
                && e != Errno::EBADF
                && e != Errno::EPERM =>
        {
            return Err(
                if op == libc::EPOLL_CTL_MOD && ev.events & libc::EPOLLEXCLUSIVE as u32 != 0 {
                    Errno::EINVAL
                } else {
                    Errno::ENOENT
                },
            );
        }
        Err(e) => return Err(e),
    };
    // A kernel instance (one a `fork` handed over) that watches this instance's own
    // kernel epoll (`epfd` is one), directly or through others, would close a loop the
    // engine cannot see: the kernel is asked, with an item that watches nothing added to
    // that epoll for the moment — Linux's `ELOOP`, which comes before `EEXIST`.
    if op == libc::EPOLL_CTL_ADD
        && eventpoll_host::Host::host_fd(&target).is_some_and(|h| h.is_kernel_epoll())
    {
        match sys::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, Some((0, 0))) {
            Err(Errno::ELOOP) => return Err(Errno::ELOOP),
            Ok(()) => {
                let _ = sys::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, None);
            }
            Err(_) => {}
        }
    }
    // Host wakeups that happened before this call reach the ready lists first, in their
    // order, before ADD or MOD links anything (Linux's callbacks ran at wakeup time) — done
    // already when the target was registered just now (the kernel-epoll driver's
    // `epoll_wait` of a first ADD made once, not twice).
    if !registered {
        p.host.pump();
    }
    // Ask the host for the wakeups the items will accept, the new interest included,
    // before the engine polls the target; after the call, for what the items now are.
    let key = Arc::as_ptr(&inst) as usize;
    let desc = p.host_desc(fd);
    if let Some(d) = &desc {
        if is_add_or_mod {
            d.ask_host(Some((key, fd, ev.events)))?;
        }
    }
    let r = inst.hep.epoll().ctl(op, &target, fd, ev);
    if let Some(d) = &desc {
        if r.is_ok() && is_add_or_mod {
            d.record(key, fd, Some(ev.events));
        } else if r.is_ok() && op == libc::EPOLL_CTL_DEL {
            d.record(key, fd, None);
        }
        d.ask_host(None)?;
    }
    r?;
    inst.sync();
    if crate::check::on() {
        crate::check::ctl_done(&inst, epfd, op, fd, target.description_id(), &ev);
    }
    Ok(0)
}

// ----- the waits -----

/// The signal-set argument of a wait.
#[derive(Clone, Copy)]
enum Mask {
    /// `epoll_wait`: none.
    None,
    /// `epoll_pwait`/`epoll_pwait2`: pointer (maybe NULL) and size.
    Some(*const libc::sigset_t, size_t),
}

/// What to do when the descriptor is not an instance of ours: the raw call.
unsafe fn wait(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: Option<Duration>,
    mask: Mask,
    raw_wait: impl FnOnce() -> c_long,
) -> Result<c_int, Errno> {
    let Some(p) = process::get_unless_copied() else {
        return raw(raw_wait());
    };
    let inst = match p.slot(epfd) {
        Some(Slot::Epoll(inst)) => inst,
        Some(Slot::Hidden) => {
            // A closed number: the signal set's checks come first.
            if let Mask::Some(m, size) = mask {
                if !m.is_null() && size != 8 {
                    return Err(Errno::EINVAL);
                }
                if !m.is_null() && !sigset_readable(m) {
                    return Err(Errno::EFAULT);
                }
            }
            return Err(Errno::EBADF);
        }
        _ => return raw(raw_wait()),
    };
    // Before this wait's own system calls (see `claim_lead`). The wait gives the lead up
    // when it returns; this guard when the checks fail first (or anything unwinds).
    struct Release<'a>(&'static process::Process, &'a process::Instance);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            let _g = self.0.gate.enter();
            self.1.hep.release_lead();
        }
    }
    let _release = (timeout != Some(Duration::ZERO)).then(|| {
        let _g = p.gate.enter();
        inst.hep.claim_lead();
        Release(p, &inst)
    });
    wait_checked(p, &inst, epfd, events, maxevents, timeout, mask)
}

/// [`wait`] for an instance of ours, from the argument checks on; a wait that may block
/// runs with the lead claimed by [`wait`], which gives it up.
unsafe fn wait_checked(
    p: &'static process::Process,
    inst: &std::sync::Arc<process::Instance>,
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: Option<Duration>,
    mask: Mask,
) -> Result<c_int, Errno> {
    let sigmask = match mask {
        Mask::None => None,
        Mask::Some(m, _) if m.is_null() => None,
        Mask::Some(_, size) if size != 8 => return Err(Errno::EINVAL),
        Mask::Some(m, _) => {
            if !sigset_readable(m) {
                return Err(Errno::EFAULT);
            }
            Some(m)
        }
    };
    if maxevents <= 0 || maxevents > EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    // Linux's access_ok on the whole buffer; each slot is checked when an event goes there.
    let len = maxevents as usize * std::mem::size_of::<EpollEvent>();
    if !user::in_user_space(events as usize, len) {
        return Err(Errno::EFAULT);
    }
    let mut out = user::UserEvents::new(events);
    // Read only by a wait with a timeout that a `fork` hands over (below).
    let start = timeout.map(|_| Instant::now());
    let r = if crate::check::on() {
        let mark = crate::check::wait_starts(p, inst, epfd, timeout);
        // The harvest names the item of each event: the checker looks at those only.
        let mut sink = eventpoll::RecordingSink::new(&mut out);
        let r =
            inst.hep
                .wait_guarded_claimed(&mut sink, maxevents as usize, timeout, sigmask, || {
                    p.gate.enter()
                });
        crate::check::wait_ends(p, inst, epfd, &sink.items, &r, mark);
        r
    } else {
        inst.hep
            .wait_guarded_claimed(&mut out, maxevents as usize, timeout, sigmask, || {
                p.gate.enter()
            })
    };
    if r == Ok(0) && inst.hep.is_retired() {
        // A `fork` handed the instance over to the kernel meanwhile: wait there for the rest.
        let rest = timeout
            .zip(start)
            .map(|(t, s)| t.saturating_sub(s.elapsed()));
        // SAFETY: `events` holds `maxevents` records by the caller's contract (the kernel
        // checks the pointer); `sigmask` was checked readable above.
        let r = unsafe { sys::epoll_pwait2(epfd, events.cast(), maxevents, rest, sigmask) };
        return r.map(|n| n as c_int);
    }
    {
        let _g = p.gate.enter();
        inst.sync();
    }
    r.map(|n| n as c_int)
}

fn ms(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

fn trace_wait(
    name: &str,
    epfd: c_int,
    maxevents: c_int,
    t: impl FnOnce() -> String,
    r: c_int,
    events: *const EpollEvent,
) {
    // Everything is formatted only when tracing (a wait is a server's every request).
    trace(
        || {
            let mut s = format!("{name}({epfd}, {maxevents}, {})", t());
            if r > 0 {
                s.push_str(" [");
                for i in 0..r as usize {
                    // SAFETY: the call just wrote `r` records there (found writable).
                    let e = unsafe { std::ptr::read_unaligned(events.add(i)) };
                    let (bits, data) = (e.events, e.data);
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(&format!(
                        "{data:#x} {}",
                        eventpoll::Events::from_bits_retain(bits).names()
                    ));
                }
                s.push(']');
            }
            s
        },
        Ret(r),
    );
}

/// `epoll_wait(2)`.
///
/// # Safety
/// None beyond the C signature: a buffer that cannot take an event that is to be reported
/// is `EFAULT` (or the count stored before it), as on Linux.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    let r = ffi(|| {
        // SAFETY: the caller's contract; the raw call is the kernel's own.
        unsafe {
            wait(epfd, events, maxevents, ms(timeout), Mask::None, || {
                eventpoll_host::raw_syscall!(
                    libc::SYS_epoll_pwait,
                    epfd,
                    events,
                    maxevents,
                    timeout,
                    0usize,
                    8usize,
                )
            })
        }
    });
    trace_wait(
        "epoll_wait",
        epfd,
        maxevents,
        || timeout.to_string(),
        r,
        events,
    );
    r
}

/// `epoll_pwait(2)`: `sigmask` (if not NULL) is the signal mask while blocked.
///
/// # Safety
/// As [`epoll_wait`]; an unreadable `sigmask` is `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the caller's guarantees, passed on; glibc passes the kernel's signal-set size.
    unsafe { eventpoll_epoll_pwait_sized(epfd, events, maxevents, timeout, sigmask, 8) }
}

/// `epoll_pwait` in the system call's own form, with the signal-set size (glibc's
/// `epoll_pwait` always passes 8; this entry point is for callers of the raw call and for
/// tests of the size check: a non-NULL mask with a size other than 8 is `EINVAL`, before
/// every other check).
///
/// # Safety
/// As [`epoll_pwait`].
#[no_mangle]
pub unsafe extern "C" fn eventpoll_epoll_pwait_sized(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const libc::sigset_t,
    sigsetsize: size_t,
) -> c_int {
    let r = ffi(|| {
        // SAFETY: as above.
        unsafe {
            wait(
                epfd,
                events,
                maxevents,
                ms(timeout),
                Mask::Some(sigmask, sigsetsize),
                || {
                    eventpoll_host::raw_syscall!(
                        libc::SYS_epoll_pwait,
                        epfd,
                        events,
                        maxevents,
                        timeout,
                        sigmask,
                        sigsetsize,
                    )
                },
            )
        }
    });
    trace_wait(
        "epoll_pwait",
        epfd,
        maxevents,
        || timeout.to_string(),
        r,
        events,
    );
    r
}

/// `epoll_pwait2(2)`: `timeout` NULL waits without limit; an invalid timespec is `EINVAL`
/// (checked first, even for a bad `epfd`).
///
/// # Safety
/// As [`epoll_pwait`]; an unreadable `timeout` is `EFAULT`, before everything else.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the caller's guarantees, passed on; glibc passes the kernel's signal-set size.
    unsafe { epoll_pwait2_sized(epfd, events, maxevents, timeout, sigmask, 8) }
}

/// `epoll_pwait2` in the system call's own form, with the signal-set size (for the
/// interposed `syscall(SYS_epoll_pwait2, …)`): a non-NULL mask with a size other than 8 is
/// `EINVAL`, after the timespec's checks.
///
/// # Safety
/// As [`epoll_pwait2`]; `sigmask` is NULL or `sigsetsize` readable bytes.
pub(crate) unsafe fn epoll_pwait2_sized(
    epfd: c_int,
    events: *mut EpollEvent,
    maxevents: c_int,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
    sigsetsize: size_t,
) -> c_int {
    let mut shown = None;
    let r = ffi(|| {
        let t = if timeout.is_null() {
            None
        } else {
            let ts = user::read(timeout).ok_or(Errno::EFAULT)?;
            shown = Some((ts.tv_sec, ts.tv_nsec));
            Some(duration_of(&ts)?)
        };
        // SAFETY: as above.
        unsafe {
            wait(
                epfd,
                events,
                maxevents,
                t,
                Mask::Some(sigmask, sigsetsize),
                || {
                    eventpoll_host::raw_syscall!(
                        libc::SYS_epoll_pwait2,
                        epfd,
                        events,
                        maxevents,
                        timeout,
                        sigmask,
                        sigsetsize,
                    )
                },
            )
        }
    });
    let shown = || match shown {
        Some((sec, nsec)) => format!("{{{sec}, {nsec}}}"),
        None => "NULL".to_string(),
    };
    trace_wait("epoll_pwait2", epfd, maxevents, shown, r, events);
    r
}

// ----- descriptors -----

/// `close(2)`: a number of an instance or of a watched host file is forgotten first (the
/// last number of a description releases it: its items go, as on Linux).
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    crate::uring_ctl::closing(fd, fd);
    let mut known = false;
    let r = ffi(|| {
        let raw_close = || raw(unsafe_raw_close(fd));
        // The pid is checked only for a number the library knows: a number it does not
        // know is closed alike by the process and by a `vfork` child (which shares this
        // memory), and a `vfork` child's table is its own.
        let Some(p) = process::existing_unless_copied() else {
            return raw_close();
        };
        let _g = p.gate.enter();
        match p.slot(fd) {
            None => return raw_close(),
            Some(_) if !process::is_own(p) => return raw_close(),
            Some(Slot::Hidden) => return Err(Errno::EBADF),
            Some(_) => known = true,
        }
        if crate::check::on() {
            crate::check::closing(p, fd, "close");
        }
        drop(p.forget(fd));
        raw_close()
    });
    if known {
        trace(|| format!("close({fd})"), Ret(r));
    }
    r
}

/// `close_range(2)` (glibc 2.34+): every known number in the range is forgotten first, as
/// by `close`, and the library's own descriptors in it are left open (the kernel is asked
/// to close the sub-ranges between them). `CLOSE_RANGE_CLOEXEC` only marks descriptors
/// close-on-exec, which changes nothing the library tracks.
#[no_mangle]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if flags == 0 {
        crate::uring_ctl::closing(first as c_int, last.min(c_int::MAX as c_uint) as c_int);
    }
    let r = ffi(|| close_range_impl(first, last, flags));
    trace(
        || format!("close_range({first}, {last}, {flags:#x})"),
        Ret(r),
    );
    r
}

/// `closefrom(3)` (glibc 2.34+): `close_range(low, ~0, 0)`, keeping the library's own
/// descriptors.
#[no_mangle]
pub extern "C" fn closefrom(low: c_int) {
    let Ok(first) = c_uint::try_from(low) else {
        return;
    };
    crate::uring_ctl::closing(low, c_int::MAX);
    let _ = ffi(|| close_range_impl(first, c_uint::MAX, 0));
}

fn close_range_impl(first: c_uint, last: c_uint, flags: c_int) -> Result<c_int, Errno> {
    let raw_range = |a: c_uint, b: c_uint| {
        // SAFETY: no pointers; closing numbers is memory-safe.
        raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_close_range, a, b, flags) })
    };
    const CLOSE_RANGE_UNSHARE: c_int = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: c_int = 1 << 2;
    let Some(p) = process::existing() else {
        return raw_range(first, last);
    };
    // Nothing is closed when the kernel refuses the call (an unknown flag, first > last:
    // EINVAL) or only marks close-on-exec: forget nothing then.
    if first > last
        || flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0
        || flags & CLOSE_RANGE_CLOEXEC != 0
    {
        return raw_range(first, last);
    }
    let _g = p.gate.enter();
    // Linux releases a close_range's files newest first (the deferred releases run in
    // reverse), each when the highest of its numbers in the range is closed; a release
    // wakes its peers (a pipe's other end gets HUP) before the next one. So the range is
    // closed from the top down: the numbers the library does not know in one call per gap
    // (the kernel keeps their order within it), each known number alone, after the host's
    // wakeups so far are delivered (`forget` pumps them), together with its description's
    // lower numbers in the range; the library's own descriptors are skipped.
    let known = p.known_in(first, last);
    let mut closed_early: Vec<c_int> = Vec::new();
    let mut hi = i64::from(last);
    let close_gap = |lo: i64, hi: i64| -> Result<(), Errno> {
        if lo <= hi {
            raw_range(lo as c_uint, hi as c_uint)?;
        }
        Ok(())
    };
    for &(fd, hidden) in known.iter().rev() {
        if closed_early.contains(&fd) {
            continue;
        }
        close_gap(i64::from(fd) + 1, hi)?;
        hi = i64::from(fd) - 1;
        if hidden {
            continue;
        }
        let same = p.duplicates_below(fd, first);
        for n in std::iter::once(fd).chain(same.iter().copied()) {
            if crate::check::on() {
                crate::check::closing(p, n, "close_range");
            }
            drop(p.forget(n));
            raw_range(n as c_uint, n as c_uint)?;
        }
        closed_early.extend(same);
    }
    close_gap(i64::from(first), hi)?;
    Ok(0)
}

fn unsafe_raw_close(fd: c_int) -> c_long {
    // SAFETY: closing a number is memory-safe.
    unsafe { eventpoll_host::raw_syscall!(libc::SYS_close, fd) }
}

/// After a successful raw dup of `old` to `new`: the table follows.
fn dup_done(old: c_int, new: c_int) {
    if old != new {
        crate::uring_ctl::closing(new, new);
    }
    if let Some(p) = process::existing() {
        if old != new {
            if crate::check::on() {
                crate::check::closing(p, new, "dup2");
            }
            drop(p.forget(new));
            p.duplicated(old, new);
        }
    }
}

/// Whether `fd` is one of the library's own descriptors (EBADF for the program).
fn hidden(fd: c_int) -> bool {
    process::is_hidden(fd)
}

/// `dup(2)`.
#[no_mangle]
pub extern "C" fn dup(old: c_int) -> c_int {
    ffi(|| {
        let p = process::existing();
        let _g = p.map(|p| p.gate.enter());
        if hidden(old) {
            return Err(Errno::EBADF);
        }
        // SAFETY: no pointers. (x86-64 has SYS_dup; elsewhere F_DUPFD 0 is the same.)
        let new =
            raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_fcntl, old, libc::F_DUPFD, 0) })?;
        dup_done(old, new);
        Ok(new)
    })
}

/// `dup2(2)`.
#[no_mangle]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    ffi(|| {
        let p = process::existing();
        let _g = p.map(|p| p.gate.enter());
        if hidden(old) || hidden(new) {
            return Err(Errno::EBADF);
        }
        if old == new {
            // dup2 of a number onto itself only checks it.
            return if sys::is_open(old) {
                Ok(new)
            } else {
                Err(Errno::EBADF)
            };
        }
        if let Some(p) = p {
            p.replacing(new);
        }
        // SAFETY: no pointers.
        let r = raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_dup3, old, new, 0) })?;
        dup_done(old, r);
        Ok(r)
    })
}

/// `dup3(2)`.
#[no_mangle]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    ffi(|| {
        let p = process::existing();
        let _g = p.map(|p| p.gate.enter());
        if hidden(old) || hidden(new) {
            return Err(Errno::EBADF);
        }
        if let Some(p) = p.filter(|_| old != new) {
            p.replacing(new);
        }
        // SAFETY: no pointers.
        let r = raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_dup3, old, new, flags) })?;
        dup_done(old, r);
        Ok(r)
    })
}

/// `fcntl(2)`: `F_DUPFD` and `F_DUPFD_CLOEXEC` keep the table true; every other command
/// goes to the kernel unchanged. (Declared with one integer-sized third argument: on the
/// Linux ABIs the variadic argument arrives in the same register.)
#[no_mangle]
pub extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    ffi(|| fcntl_impl(fd, cmd, arg))
}

/// `fcntl64`: the same (glibc's name under `_FILE_OFFSET_BITS=64` on some targets).
#[no_mangle]
pub extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    ffi(|| fcntl_impl(fd, cmd, arg))
}

fn fcntl_impl(fd: c_int, cmd: c_int, arg: c_ulong) -> Result<c_int, Errno> {
    if hidden(fd) {
        return Err(Errno::EBADF);
    }
    if cmd == libc::F_SETPIPE_SZ {
        // Linux wakes the pipe's writers without a key (every item of theirs is queued);
        // the host driver sees readiness only, so the library tells the host itself.
        return keyless_after(
            fd,
            || {
                // SAFETY: integer argument.
                raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_fcntl, fd, cmd, arg) })
            },
            None,
            |host| match sys::fstat(fd) {
                Ok(st) => host.keyless_targets(&[(sys::identity(&st), true)]),
                Err(_) => host.keyless_targets(&[]),
            },
            |host, targets| {
                host.wake_keyless_targets(targets);
            },
        );
    }
    if cmd != libc::F_DUPFD && cmd != libc::F_DUPFD_CLOEXEC {
        // SAFETY: the kernel validates the argument for the command.
        return raw(unsafe {
            eventpoll_host::raw_syscall!(libc::SYS_fcntl, fd, cmd, arg as *mut c_void)
        });
    }
    let p = process::existing();
    let _g = p.map(|p| p.gate.enter());
    if hidden(fd) {
        return Err(Errno::EBADF);
    }
    // SAFETY: integer argument.
    let new = raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_fcntl, fd, cmd, arg) })?;
    dup_done(fd, new);
    Ok(new)
}

/// Run `call`, after which Linux wakes files without a key (see
/// [`eventpoll_host::Host::wake_keyless`]): the wakeups the host had before it are
/// delivered first, and after it succeeds — or fails with `woken_anyway`, an error Linux
/// returns after its wakeup — `wake` passes the key-less wakeups on, so the items are
/// queued in the place Linux gives them. The objects `wake` passes them on to are found
/// by `find` before the call: the driver sees the wakeups as they are made, maybe in
/// another thread (see [`eventpoll_host::Host::keyless_targets`]). A number the program
/// does not own is `EBADF`.
fn keyless_after(
    fd: c_int,
    call: impl FnOnce() -> Result<c_int, Errno>,
    woken_anyway: Option<Errno>,
    find: impl FnOnce(&eventpoll_host::Host) -> eventpoll_host::KeylessTargets,
    wake: impl FnOnce(&eventpoll_host::Host, eventpoll_host::KeylessTargets),
) -> Result<c_int, Errno> {
    let Some(p) = process::existing_unless_copied() else {
        return call();
    };
    let _g = p.gate.enter();
    if matches!(p.slot(fd), Some(Slot::Hidden)) {
        return Err(Errno::EBADF);
    }
    if process::INSTANCES.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        // No instance, no item to wake: the call alone.
        return call();
    }
    p.host.pump();
    let targets = find(&p.host);
    let r = call();
    if r.is_ok() || r.err() == woken_anyway {
        wake(&p.host, targets);
    }
    r
}

/// `shutdown(2)`: Linux wakes the socket, then a connected peer, without a key; the
/// library passes both wakeups on to the items watching them (a unix peer is found with
/// the kernel's socket diagnostics; other peers wake with the readiness they gain, as the
/// driver sees it — for TCP before the socket itself, since the FIN reaches a loopback peer
/// during the call). An inet socket that is not connected (UDP, a closed TCP socket) is
/// woken too, although the call fails with `ENOTCONN`: `inet_shutdown` sets the shutdown
/// bits and wakes whatever the state.
#[no_mangle]
pub extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    let r = ffi(|| {
        keyless_after(
            fd,
            || {
                // SAFETY: no pointers.
                raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_shutdown, fd, how) })
            },
            Some(Errno::ENOTCONN),
            // The socket, then a connected unix peer (found with the kernel's socket
            // diagnostics). Any other peer (TCP, say) is woken by what the call sends,
            // before Linux's key-less wakeup of the socket itself at the end of
            // `inet_shutdown`: the driver delivers that wakeup first.
            |host| match (sys::fstat(fd), sys::unix_peer(fd)) {
                (Ok(st), Some(peer)) => {
                    host.keyless_targets(&[(sys::identity(&st), false), (peer, false)])
                }
                (Ok(st), None) => host.keyless_targets(&[(sys::identity(&st), false)]),
                (Err(_), _) => host.keyless_targets(&[]),
            },
            |host, targets| {
                host.wake_keyless_targets(targets);
            },
        )
    });
    trace(|| format!("shutdown({fd}, {how})"), Ret(r));
    r
}

// ----- recvmsg: numbers received over a unix socket -----

/// glibc's `recvmsg`/`recvmmsg` (the next definitions after the library's; cancellation
/// points), found once; `0` until then.
static NEXT_RECVMSG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static NEXT_RECVMMSG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The next definition of `name` after this library's (`None`: none found).
fn next_definition(cache: &std::sync::atomic::AtomicUsize, name: &std::ffi::CStr) -> Option<usize> {
    use std::sync::atomic::Ordering;
    let mut f = cache.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT looks the symbol up in the
        // objects loaded after this one.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        cache.store(f, Ordering::Relaxed);
    }
    (f != 0).then_some(f)
}

/// The numbers an `SCM_RIGHTS` message of `msg` (filled by a successful receive) carries.
///
/// # Safety
/// `msg` is a `msghdr` the kernel has just filled: it and its control buffer, of the
/// length the kernel wrote back, are readable.
unsafe fn received_numbers(msg: *const libc::msghdr, out: &mut Vec<c_int>) {
    // SAFETY: as the caller promises; the CMSG_* walk stays within msg_controllen.
    unsafe {
        if (*msg).msg_control.is_null() || (*msg).msg_controllen == 0 {
            return;
        }
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let head = libc::CMSG_LEN(0) as usize;
                let n =
                    ((*c).cmsg_len as usize).saturating_sub(head) / std::mem::size_of::<c_int>();
                let data = libc::CMSG_DATA(c).cast::<c_int>();
                for i in 0..n {
                    out.push(std::ptr::read_unaligned(data.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
}

/// After a receive that delivered `numbers`: each becomes a number of the description
/// the table knows for it ([`process::Process::received`]).
fn numbers_received(numbers: &[c_int]) {
    if numbers.is_empty() || process::INSTANCES.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        return; // no instance, no item to keep
    }
    let Some(p) = process::existing() else { return };
    let _g = p.gate.enter();
    for &fd in numbers {
        p.received(fd);
    }
}

/// `recvmsg(2)`: glibc's; the numbers an `SCM_RIGHTS` message brings are recorded as
/// numbers of the descriptions the library knows (a description with items received
/// back keeps them when its first number is closed, as on Linux). `EBADF` on the
/// library's own descriptors.
///
/// # Safety
/// As `recvmsg(2)`: the kernel checks `msg`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    if process::is_hidden(fd) {
        set_errno(libc::EBADF);
        return -1;
    }
    let r = match next_definition(&NEXT_RECVMSG, c"recvmsg") {
        Some(f) => {
            // SAFETY: glibc's recvmsg, which has this signature; the caller's arguments.
            let f: unsafe extern "C" fn(c_int, *mut libc::msghdr, c_int) -> isize =
                unsafe { std::mem::transmute(f) };
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { f(fd, msg, flags) }
        }
        // SAFETY: the caller's arguments; the kernel checks `msg`. The instruction itself,
        // not glibc's `syscall()`, which this library interposes.
        None => unsafe { eventpoll_host::raw_syscall!(libc::SYS_recvmsg, fd, msg, flags) as isize },
    };
    if r >= 0 && !msg.is_null() {
        let keep = KeepErrnoAcross::new();
        let mut got = Vec::new();
        // SAFETY: the kernel has just filled `msg` (the receive succeeded).
        unsafe { received_numbers(msg, &mut got) };
        let _ = catch_unwind(AssertUnwindSafe(|| numbers_received(&got)));
        drop(keep);
    }
    r
}

/// `recvmmsg(2)`: glibc's, with the numbers of each message recorded as for `recvmsg`.
///
/// # Safety
/// As `recvmmsg(2)`: the kernel checks `msgvec` and `timeout`.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgvec: *mut libc::mmsghdr,
    vlen: c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    if process::is_hidden(fd) {
        set_errno(libc::EBADF);
        return -1;
    }
    type Recvmmsg = unsafe extern "C" fn(
        c_int,
        *mut libc::mmsghdr,
        c_uint,
        c_int,
        *mut libc::timespec,
    ) -> c_int;
    let r = match next_definition(&NEXT_RECVMMSG, c"recvmmsg") {
        Some(f) => {
            // SAFETY: glibc's recvmmsg, which has this signature.
            let f: Recvmmsg = unsafe { std::mem::transmute(f) };
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { f(fd, msgvec, vlen, flags, timeout) }
        }
        // SAFETY: the caller's arguments; the kernel checks the pointers. The instruction
        // itself, not glibc's `syscall()`, which this library interposes.
        None => unsafe {
            eventpoll_host::raw_syscall!(libc::SYS_recvmmsg, fd, msgvec, vlen, flags, timeout)
                as c_int
        },
    };
    if r > 0 && !msgvec.is_null() {
        let keep = KeepErrnoAcross::new();
        let mut got = Vec::new();
        for i in 0..r as usize {
            // SAFETY: the kernel has just filled the first `r` entries.
            unsafe { received_numbers(&(*msgvec.add(i)).msg_hdr, &mut got) };
        }
        let _ = catch_unwind(AssertUnwindSafe(|| numbers_received(&got)));
        drop(keep);
    }
    r
}

/// Keeps the calling thread's `errno` across the library's bookkeeping after a call.
struct KeepErrnoAcross(c_int);

impl KeepErrnoAcross {
    fn new() -> Self {
        // SAFETY: the calling thread's errno slot.
        KeepErrnoAcross(unsafe { *libc::__errno_location() })
    }
}

impl Drop for KeepErrnoAcross {
    fn drop(&mut self) {
        set_errno(self.0);
    }
}

// ----- read and write: the library's own descriptors are closed ones -----

extern "C" {
    /// glibc's `read` under its other exported name (the same cancellation point).
    fn __read(fd: c_int, buf: *mut c_void, count: size_t) -> isize;
    /// glibc's `write` under its other exported name.
    fn __write(fd: c_int, buf: *const c_void, count: size_t) -> isize;
}

/// `read(2)`: `EBADF` on the library's own descriptors (reading a bell would take an
/// instance's wakeup), else glibc's. One comparison for numbers below the hidden range.
///
/// # Safety
/// As `read(2)`: the kernel checks `buf`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> isize {
    if process::is_hidden(fd) {
        set_errno(libc::EBADF);
        return -1;
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { __read(fd, buf, count) }
}

/// `write(2)`: `EBADF` on the library's own descriptors (writing a bell would ring an
/// instance), else glibc's.
///
/// # Safety
/// As `write(2)`: the kernel checks `buf`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> isize {
    if process::is_hidden(fd) {
        set_errno(libc::EBADF);
        return -1;
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { __write(fd, buf, count) }
}
