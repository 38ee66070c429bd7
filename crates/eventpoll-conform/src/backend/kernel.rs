//! The oracle: the Linux kernel, through raw system calls (the `libc` crate), so invalid
//! arguments — NULL event pointers, raw op numbers, `maxevents <= 0`, invalid timespecs,
//! odd signal-set sizes — reach the kernel unchanged.
//!
//! The backend itself is the real-descriptor backend (`backend/real.rs`) with the kernel's calls: descriptors live in a range
//! private to the runner (scenario number `n` is kernel descriptor [`BASE`]` + n`, allocated
//! lowest-free), and kernel scenarios never run concurrently. `SIGPIPE` is ignored (a write
//! without a reader returns `EPIPE`) and the soft `RLIMIT_NOFILE` is raised to the hard limit
//! so that the range fits.
//!
//! `settime T expired` arms the timer with `TFD_TIMER_ABSTIME` and an expiry of 1 ns after
//! the monotonic clock's epoch. Expiry is the hrtimer's business, which could in principle
//! happen after `timerfd_settime` returns, so the backend then waits in `poll()` (at most one
//! second) until the timer is readable: the expiry and its wakeups have happened before the
//! next command runs. On this machine (Linux 6.18) the wait is never needed — 200,000 tries of
//! `timerfd_settime` followed at once by `epoll_wait(.., 0)` (and by `poll(.., 0)`) never
//! missed the expiry — so it is a safety net that costs one `poll` call. `settime T expired
//! every MS` arms a relative 1 ns first expiry (an absolute one in the past would count
//! every period since boot at the first read) and waits the same way.

use super::real::{Calls, Real};
use super::Backend;
use std::ffi::c_int;
use std::sync::{Mutex, Once};

/// Kernel descriptor of scenario number 0.
pub const BASE: i32 = 1000;

/// Serialises kernel scenarios: the descriptor range is per process.
static RANGE_LOCK: Mutex<()> = Mutex::new(());

/// `fcntl` with one integer argument (libc's is variadic).
unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    // SAFETY: the caller passes a command that takes one integer argument.
    unsafe { libc::fcntl(fd, cmd, arg) }
}

/// The `epoll_pwait` system call itself (glibc's wrapper always passes a size of 8).
unsafe extern "C" fn epoll_pwait_sized(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: c_int,
    mask: *const libc::sigset_t,
    sigsetsize: usize,
) -> c_int {
    // SAFETY: the arguments are passed to the kernel, which validates them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            epfd,
            events,
            maxevents,
            timeout,
            mask,
            sigsetsize,
        )
    };
    r as c_int
}

/// The `epoll_pwait2` system call (not every libc has a wrapper).
unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    maxevents: c_int,
    timeout: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    // SAFETY: the arguments are passed to the kernel, which validates them; with a NULL
    // mask the size is not read.
    let r = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epfd,
            events,
            maxevents,
            timeout,
            mask,
            8usize,
        )
    };
    r as c_int
}

/// `close_range(2)` (through the system call: not every libc has a wrapper).
unsafe extern "C" fn close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int {
    // SAFETY: integer arguments only.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int }
}

static KERNEL: Calls = Calls {
    name: "kernel",
    base: BASE,
    range: &RANGE_LOCK,
    epoll_create: libc::epoll_create,
    epoll_create1: libc::epoll_create1,
    epoll_ctl: libc::epoll_ctl,
    epoll_wait: libc::epoll_wait,
    epoll_pwait_sized,
    epoll_pwait2,
    close: libc::close,
    dup2: libc::dup2,
    dup3: libc::dup3,
    close_range,
    fcntl,
    poll: libc::poll,
    select: libc::select,
    shutdown: libc::shutdown,
};

/// A fresh kernel backend (blocks while another kernel scenario runs in this process).
pub fn create() -> Box<dyn Backend> {
    Box::new(Real::new(&KERNEL))
}

/// Process setup, once: ignore `SIGPIPE`, raise the soft descriptor limit to the hard one.
pub(super) fn setup() {
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
/// `setup` raised it) minus [`BASE`]. Numbers at or above it are `EBADF`/`EMFILE`
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
