//! Interposed `poll`, `ppoll`, `select` and `pselect`: an instance's number is readable
//! exactly when the instance has a really ready item, also while the host activity that
//! makes it so has not been pumped yet.
//!
//! When the sets contain no instance these calls go to the kernel unchanged. Otherwise the
//! driver is pumped and each instance's bell settled before asking the kernel; if the
//! kernel would block, the driver's notification descriptor joins the set, and host
//! activity (which may make an instance ready) wakes the call, which pumps, settles and
//! asks again. `select`/`pselect` with an instance are answered through `ppoll` (their
//! sets translated as the kernel does: read = `IN|HUP|ERR`, write = `OUT|ERR`,
//! except = `PRI`), so descriptors at or above `FD_SETSIZE` are not needed.

#![allow(unsafe_code)]

use crate::abi::{duration_of, ffi, raw};
use crate::process::{self, Instance, INSTANCES};
use eventpoll_host::sys;
use libc::{c_int, nfds_t, pollfd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The instances among `fds`, or none when the library has no instance at all.
fn instances(
    fds: impl Iterator<Item = i32>,
) -> Option<(&'static process::Process, Vec<Arc<Instance>>)> {
    if INSTANCES.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let p = process::existing()?;
    let found = p.instances_among(fds);
    (!found.is_empty()).then_some((p, found))
}

fn refresh(p: &process::Process, insts: &[Arc<Instance>]) {
    let _g = p.gate.enter();
    p.host.pump();
    for i in insts {
        i.settle_exact();
    }
}

/// `ppoll` over `fds` with instances among them. See the module documentation.
fn poll_instances(
    p: &process::Process,
    insts: &[Arc<Instance>],
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<c_int, c_int> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mask = (!sigmask.is_null()).then_some(sigmask);
    // Counted as sleepers of each instance before the first check: whichever thread pumps
    // the host (another thread's wait may take the host's notification before this one
    // wakes), an instance that becomes ready rings its bell, which makes its descriptor
    // readable for this call (issue 12, finding 4).
    let _sleepers: Vec<_> = insts.iter().map(|i| i.hep.bell().sleeper()).collect();
    loop {
        refresh(p, insts);
        let remaining = match deadline {
            None if timeout.is_some() => Some(Duration::MAX),
            None => None,
            Some(d) => Some(d.saturating_duration_since(Instant::now())),
        };
        let mut all: Vec<pollfd> = fds.to_vec();
        let user = all.len();
        if remaining != Some(Duration::ZERO) {
            p.host.driver().notify_fds(&mut all);
        }
        sys::ppoll(&mut all, remaining.map(sys::timespec), mask)?;
        let mut count = 0;
        for (dst, src) in fds.iter_mut().zip(&all[..user]) {
            dst.revents = src.revents;
            if src.revents != 0 {
                count += 1;
            }
        }
        if count > 0 || remaining == Some(Duration::ZERO) {
            return Ok(count);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(0);
        }
        // Only host activity: pump, settle, ask again.
    }
}

fn ppoll_impl(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: Option<Duration>,
    tsp: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> Result<c_int, c_int> {
    let raw_call = || {
        // SAFETY: the kernel validates every pointer.
        raw(unsafe { libc::syscall(libc::SYS_ppoll, fds, nfds, tsp, sigmask, 8usize) })
    };
    if fds.is_null() || nfds == 0 || nfds > 1 << 20 {
        return raw_call();
    }
    // SAFETY: the caller's contract: `fds` holds `nfds` pollfd records.
    let slice = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    match instances(slice.iter().map(|p| p.fd)) {
        None => raw_call(),
        Some((p, insts)) => poll_instances(p, &insts, slice, timeout, sigmask),
    }
}

/// `poll(2)`.
///
/// # Safety
/// `fds` holds `nfds` readable and writable `struct pollfd` records.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    ffi(|| {
        let t = (timeout >= 0).then(|| Duration::from_millis(timeout as u64));
        let ts = t.map(sys::timespec);
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        ppoll_impl(fds, nfds, t, tsp, std::ptr::null())
    })
}

/// `ppoll(2)`.
///
/// # Safety
/// As [`poll`]; `tmo` is NULL or a readable timespec; `sigmask` NULL or a signal set.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    ffi(|| {
        let t = if (tmo as usize) < 4096 {
            None
        } else {
            // SAFETY: the caller's contract.
            let ts = unsafe { std::ptr::read(tmo) };
            Some(duration_of(&ts)?)
        };
        ppoll_impl(fds, nfds, t, tmo, sigmask)
    })
}

const FD_BITS: usize = 8 * std::mem::size_of::<libc::c_ulong>();

fn fd_isset(set: *const libc::fd_set, fd: usize) -> bool {
    if set.is_null() {
        return false;
    }
    // SAFETY: the caller's contract: the set covers `nfds` bits.
    let words = set as *const libc::c_ulong;
    unsafe { *words.add(fd / FD_BITS) & (1 << (fd % FD_BITS)) != 0 }
}

fn fd_zero_range(set: *mut libc::fd_set, nfds: usize) {
    if set.is_null() {
        return;
    }
    let words = set as *mut libc::c_ulong;
    for w in 0..nfds.div_ceil(FD_BITS) {
        // SAFETY: within the caller's set.
        unsafe { *words.add(w) = 0 };
    }
}

fn fd_set_bit(set: *mut libc::fd_set, fd: usize) {
    let words = set as *mut libc::c_ulong;
    // SAFETY: within the caller's set.
    unsafe { *words.add(fd / FD_BITS) |= 1 << (fd % FD_BITS) };
}

/// select/pselect with instances among the sets, through ppoll.
fn select_instances(
    p: &process::Process,
    insts: &[Arc<Instance>],
    nfds: usize,
    [r, w, e]: [*mut libc::fd_set; 3],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<c_int, c_int> {
    const RD: i16 =
        libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND | libc::POLLHUP | libc::POLLERR;
    const WR: i16 = libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND | libc::POLLERR;
    const EX: i16 = libc::POLLPRI;
    let mut fds = Vec::new();
    for fd in 0..nfds {
        let mut ev = 0;
        if fd_isset(r, fd) {
            ev |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND;
        }
        if fd_isset(w, fd) {
            ev |= libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND;
        }
        if fd_isset(e, fd) {
            ev |= libc::POLLPRI;
        }
        if ev != 0 {
            fds.push(pollfd {
                fd: fd as c_int,
                events: ev,
                revents: 0,
            });
        }
    }
    poll_instances(p, insts, &mut fds, timeout, sigmask)?;
    if fds.iter().any(|f| f.revents & libc::POLLNVAL != 0) {
        return Err(libc::EBADF);
    }
    fd_zero_range(r, nfds);
    fd_zero_range(w, nfds);
    fd_zero_range(e, nfds);
    let mut count = 0;
    for f in &fds {
        let fd = f.fd as usize;
        for (set, bits, asked) in [
            (r, RD, libc::POLLIN),
            (w, WR, libc::POLLOUT),
            (e, EX, libc::POLLPRI),
        ] {
            if !set.is_null() && f.events & asked != 0 && f.revents & bits != 0 {
                fd_set_bit(set, fd);
                count += 1;
            }
        }
    }
    Ok(count)
}

fn collect_set_fds(nfds: usize, sets: [*const libc::fd_set; 3]) -> Vec<i32> {
    (0..nfds)
        .filter(|&fd| sets.iter().any(|&s| fd_isset(s, fd)))
        .map(|fd| fd as i32)
        .collect()
}

/// `select(2)`: like Linux, the timeout is updated with the time not slept.
///
/// # Safety
/// The sets are NULL or cover `nfds` bits; `timeout` is NULL or a timeval.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    ffi(|| {
        let n = nfds.clamp(0, libc::FD_SETSIZE as c_int) as usize;
        let found = if nfds > 0 && nfds <= libc::FD_SETSIZE as c_int {
            instances(collect_set_fds(n, [r, w, e]).into_iter())
        } else {
            None
        };
        let Some((p, insts)) = found else {
            // SAFETY: the kernel validates everything.
            return raw(unsafe { libc::syscall(libc::SYS_select, nfds, r, w, e, timeout) });
        };
        let t = if timeout.is_null() {
            None
        } else {
            // SAFETY: the caller's contract.
            let tv = unsafe { std::ptr::read(timeout) };
            if tv.tv_sec < 0 || tv.tv_usec < 0 {
                return Err(libc::EINVAL);
            }
            Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
        };
        let start = Instant::now();
        let out = select_instances(p, &insts, n, [r, w, e], t, std::ptr::null());
        if let (Some(t), false) = (t, timeout.is_null()) {
            let left = t.saturating_sub(start.elapsed());
            // SAFETY: the caller's timeval.
            unsafe {
                (*timeout).tv_sec = left.as_secs() as libc::time_t;
                (*timeout).tv_usec = left.subsec_micros() as libc::suseconds_t;
            }
        }
        out
    })
}

/// `pselect(2)`.
///
/// # Safety
/// As [`select`]; `timeout` NULL or a timespec; `sigmask` NULL or a signal set.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    ffi(|| {
        let n = nfds.clamp(0, libc::FD_SETSIZE as c_int) as usize;
        let found = if nfds > 0 && nfds <= libc::FD_SETSIZE as c_int {
            instances(collect_set_fds(n, [r, w, e]).into_iter())
        } else {
            None
        };
        let t = if timeout.is_null() {
            None
        } else {
            // SAFETY: the caller's contract.
            let ts = unsafe { std::ptr::read(timeout) };
            Some(duration_of(&ts)?)
        };
        let Some((p, insts)) = found else {
            // pselect6 takes {sigmask, size} and may write the timespec: pass copies.
            let mut ts = t.map(sys::timespec);
            let tsp = ts
                .as_mut()
                .map_or(std::ptr::null_mut(), |t| t as *mut libc::timespec);
            let data: [usize; 2] = [sigmask as usize, 8];
            let datap = if sigmask.is_null() {
                std::ptr::null()
            } else {
                data.as_ptr()
            };
            // SAFETY: the kernel validates everything; `tsp` and `datap` are ours.
            return raw(unsafe { libc::syscall(libc::SYS_pselect6, nfds, r, w, e, tsp, datap) });
        };
        select_instances(p, &insts, n, [r, w, e], t, sigmask)
    })
}
