//! Interposed `poll`, `ppoll`, `select` and `pselect`: an instance's number is readable
//! exactly when the instance has a really ready item, also while the host activity that
//! makes it so has not been pumped yet.
//!
//! When the sets contain no instance these calls go to the kernel unchanged. Otherwise the
//! driver is pumped and each instance's bell settled before asking the kernel; if the
//! kernel would block, the driver's notification descriptor joins the set, and host
//! activity (which may make an instance ready) wakes the call, which pumps, settles and
//! asks again. `select`/`pselect` with an instance are answered through `ppoll` (their
//! sets translated as the kernel does: read = `IN|HUP|ERR|NVAL`, write = `OUT|ERR|NVAL`,
//! except = `PRI|NVAL` — `NVAL` for a number another thread closed during the call), so
//! descriptors at or above `FD_SETSIZE` are not needed.

#![allow(unsafe_code)]

use crate::abi::{duration_of, ffi, raw};
use crate::process::{self, Instance, INSTANCES};
use crate::user;
use eventpoll::Errno;
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
    let p = process::existing_unless_copied()?;
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
) -> Result<c_int, Errno> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mask = (!sigmask.is_null()).then_some(sigmask);
    // Counted as sleepers of each instance before the first check: whichever thread pumps
    // the host (another thread's wait may take the host's notification before this one
    // wakes), an instance that becomes ready rings its bell, which makes its descriptor
    // readable for this call (issue 12, finding 4).
    let _sleepers: Vec<_> = insts.iter().map(|i| i.hep.bell().sleeper()).collect();
    // What the call sleeps on: an instance's bell instead of its number (the kernel epoll
    // behind the number watches only the bell, so they are readable together). Linux's
    // poll holds each file it sleeps on: an instance whose number another thread closes
    // meanwhile still wakes it, and nothing else does. Host activity wakes this call too
    // (to pump), and a `ppoll` on the numbers would then find a closed one `POLLNVAL`;
    // the bell stays open while `insts` holds the instance. An instance handed over to the
    // kernel by a `fork` meanwhile (retired: its bell rung, its items now in the kernel
    // epoll) is slept on under its number again.
    let inst_of: Vec<Option<Arc<Instance>>> = fds
        .iter()
        .map(|f| p.instances_among(std::iter::once(f.fd)).pop())
        .collect();
    let user = fds.len();
    loop {
        refresh(p, insts);
        let remaining = match deadline {
            None if timeout.is_some() => Some(Duration::MAX),
            None => None,
            Some(d) => Some(d.saturating_duration_since(Instant::now())),
        };
        let sleeps = remaining != Some(Duration::ZERO);
        let mut all: Vec<pollfd> = if sleeps {
            fds.iter()
                .zip(&inst_of)
                .map(|(f, inst)| match inst {
                    Some(i) if !i.hep.is_retired() => pollfd {
                        fd: i.hep.bell().fd(),
                        events: f.events & (libc::POLLIN | libc::POLLRDNORM),
                        revents: 0,
                    },
                    _ => *f,
                })
                .collect()
        } else {
            fds.to_vec()
        };
        if sleeps {
            p.host.driver().notify_fds(&mut all);
        }
        let slept = sys::ppoll(&mut all, remaining.map(sys::timespec), mask);
        let interrupted = slept == Err(Errno::EINTR);
        // Whether to look at every number again — settled, without blocking — and report
        // what the numbers say (a number closed meanwhile is `POLLNVAL`): Linux's poll does
        // after every wakeup of its own, that is one of its files' (an instance's bell
        // stands for its file), a signal or the time-out; but not after host activity
        // alone, which would not have woken it. Also after a zero-timeout look at an
        // instance found readable: its bell may have been rung by a wakeup that another
        // thread pumped (its item then found not ready by a harvest or a settle that has
        // not reached the bell yet), and Linux's poll of an epoll file looks at the items
        // again when woken and sleeps on if none is ready.
        let look_again = match slept {
            Err(Errno::EINTR) => true,
            Err(e) => return Err(e),
            Ok(_) if !sleeps => all
                .iter()
                .zip(&inst_of)
                .any(|(f, inst)| inst.is_some() && f.revents != 0),
            Ok(0) => true,
            Ok(_) => all[..user].iter().any(|f| f.revents != 0),
        };
        if look_again {
            refresh(p, insts);
            all.clear();
            all.extend_from_slice(fds);
            for f in &mut all {
                f.revents = 0;
            }
            sys::ppoll(&mut all, Some(sys::timespec(Duration::ZERO)), None)?;
            confirm_instances(p, &mut all, &inst_of);
        } else if sleeps {
            // Only host activity: no number is looked at again.
            for f in &mut all[..user] {
                f.revents = 0;
            }
        }
        let mut count = 0;
        for (dst, src) in fds.iter_mut().zip(&all[..user]) {
            dst.revents = src.revents;
            if src.revents != 0 {
                count += 1;
            }
        }
        if count > 0 || !sleeps {
            return Ok(count);
        }
        if interrupted {
            return Err(Errno::EINTR);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(0);
        }
        // Only host activity: pump, settle, ask again.
    }
}

/// An instance's number that the kernel found readable is readable only if the instance
/// has a ready item now, as Linux's poll of an epoll file asks its items.
///
/// The kernel's answer is its bell's state (the kernel epoll behind the number watches the
/// bell alone), and the bell may have been rung after the settle of [`refresh`] by a wakeup
/// whose item is not ready: another thread's pump that had taken the host's report before
/// this call's pump looked, and delivered it just after the settle (an eventfd written 0:
/// the item is queued, and ready for nothing). Linux's poll would have found that item not
/// ready and slept on; so the engine's poll of the instance, which polls the queued items
/// and drops those not ready, has the last word. A number closed, reused or handed over
/// meanwhile keeps the kernel's answer (`POLLNVAL`; the new file's readiness; a retired
/// instance's items are in the kernel).
fn confirm_instances(p: &process::Process, all: &mut [pollfd], inst_of: &[Option<Arc<Instance>>]) {
    let readable = libc::POLLIN | libc::POLLRDNORM;
    for (f, inst) in all.iter_mut().zip(inst_of) {
        let Some(i) = inst else { continue };
        if f.revents & readable == 0 || f.revents & libc::POLLNVAL != 0 || i.hep.is_retired() {
            continue;
        }
        // The number may name another file by now (the instance closed and the number
        // reused): Linux's poll looks a number up again at every pass, so the kernel's
        // answer for the new file stands.
        let still = p
            .instances_among(std::iter::once(f.fd))
            .pop()
            .is_some_and(|now| Arc::ptr_eq(&now, i));
        if !still {
            continue;
        }
        let ready = {
            let _g = p.gate.enter();
            !i.hep.epoll().file().poll().is_empty()
        };
        if !ready {
            f.revents &= !readable;
        }
    }
}

/// Whether the library's state exists (no hidden number, no instance before it does).
fn active() -> bool {
    process::HIDDEN_FLOOR.load(Ordering::Relaxed) != i32::MAX
}

/// Poll a copy of the program's records: hidden numbers are closed ones (`POLLNVAL`, which
/// counts and ends the wait at once), instances as in [`poll_instances`].
fn poll_copy(
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<c_int, Errno> {
    let hidden: Vec<usize> = (0..fds.len())
        .filter(|&i| process::is_hidden(fds[i].fd))
        .collect();
    let mut originals = Vec::with_capacity(hidden.len());
    for &i in &hidden {
        originals.push(fds[i].fd);
        fds[i].fd = -1; // ignored by the kernel
    }
    let timeout = if hidden.is_empty() {
        timeout
    } else {
        Some(Duration::ZERO)
    };
    let r = match instances(fds.iter().map(|f| f.fd)) {
        Some((p, insts)) => poll_instances(p, &insts, fds, timeout, sigmask),
        None => {
            let mask = (!sigmask.is_null()).then_some(sigmask);
            sys::ppoll(fds, timeout.map(sys::timespec), mask).map(|n| n as c_int)
        }
    };
    let n = match r {
        Err(Errno::EINTR) if !hidden.is_empty() => 0,
        other => other?,
    };
    for (&i, &fd) in hidden.iter().zip(&originals) {
        fds[i].fd = fd;
        fds[i].revents = libc::POLLNVAL;
    }
    Ok(n + hidden.len() as c_int)
}

fn ppoll_impl(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: Option<Duration>,
    tsp: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> Result<c_int, Errno> {
    let raw_call = || {
        // SAFETY: the kernel validates every pointer.
        raw(unsafe {
            eventpoll_host::raw_syscall!(libc::SYS_ppoll, fds, nfds, tsp, sigmask, 8usize)
        })
    };
    if !active() || fds.is_null() || nfds == 0 || nfds > 1 << 20 {
        return raw_call();
    }
    // Unreadable records: the kernel's answer (EFAULT, after its own earlier checks).
    let Some(mut copy) = user::read_slice(fds, nfds as usize) else {
        return raw_call();
    };
    let special = copy.iter().any(|f| process::is_hidden(f.fd))
        || instances(copy.iter().map(|f| f.fd)).is_some();
    if !special {
        return raw_call();
    }
    let n = poll_copy(&mut copy, timeout, sigmask)?;
    // Linux copies each record's revents back in order: EFAULT at the first it cannot.
    let size = std::mem::size_of::<pollfd>();
    let end = fds as usize + copy.len() * size;
    let ok = user::writable_prefix(fds as usize, end);
    for (i, f) in copy.iter().enumerate() {
        // SAFETY: only the address of the field is formed; it is written below only when
        // found writable.
        let at = unsafe { std::ptr::addr_of_mut!((*fds.add(i)).revents) };
        if at as usize + std::mem::size_of::<i16>() > ok {
            return Err(Errno::EFAULT);
        }
        // SAFETY: within the writable prefix (pollfd fields are aligned as the C struct).
        unsafe { std::ptr::write_unaligned(at, f.revents) };
    }
    Ok(n)
}

/// `poll(2)`.
///
/// # Safety
/// None beyond the C signature: unreadable or unwritable records are `EFAULT`.
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
/// None beyond the C signature: an unreadable timeout or signal set is `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    tmo: *const libc::timespec,
    sigmask: *const libc::sigset_t,
) -> c_int {
    ffi(|| {
        let t = if tmo.is_null() {
            None
        } else {
            match user::read(tmo) {
                Some(ts) => Some(duration_of(&ts)?),
                // SAFETY: the kernel validates every pointer (and says EFAULT).
                None => {
                    return raw(unsafe {
                        eventpoll_host::raw_syscall!(
                            libc::SYS_ppoll,
                            fds,
                            nfds,
                            tmo,
                            sigmask,
                            8usize
                        )
                    })
                }
            }
        };
        ppoll_impl(fds, nfds, t, tmo, sigmask)
    })
}

const FD_BITS: usize = 8 * std::mem::size_of::<libc::c_ulong>();

/// A copy of one of select's sets (`None`: the caller passed NULL).
type Set = Option<Vec<libc::c_ulong>>;

fn isset(set: &Set, fd: usize) -> bool {
    set.as_ref()
        .is_some_and(|w| w[fd / FD_BITS] & (1 << (fd % FD_BITS)) != 0)
}

/// Read select's three sets (`nfds` bits each); `None` if one cannot be read.
fn read_sets(nfds: usize, sets: [*mut libc::fd_set; 3]) -> Option<[Set; 3]> {
    let words = nfds.div_ceil(FD_BITS);
    let mut out: [Set; 3] = [None, None, None];
    for (o, &s) in out.iter_mut().zip(&sets) {
        if !s.is_null() {
            *o = Some(user::read_slice(s as *const libc::c_ulong, words)?);
        }
    }
    Some(out)
}

/// Write the result sets back; `EFAULT` if one cannot be written.
fn write_sets(sets: [*mut libc::fd_set; 3], copies: &[Set; 3]) -> Result<(), Errno> {
    for (&s, c) in sets.iter().zip(copies) {
        if let Some(words) = c {
            let len = std::mem::size_of_val(words.as_slice());
            if user::writable_prefix(s as usize, s as usize + len) < s as usize + len {
                return Err(Errno::EFAULT);
            }
            // SAFETY: the whole range was just found writable.
            unsafe {
                std::ptr::copy_nonoverlapping(words.as_ptr(), s as *mut libc::c_ulong, words.len())
            };
        }
    }
    Ok(())
}

/// select/pselect on copies of the sets: `EBADF` for a hidden number (a closed one); with
/// instances, through ppoll (`Ok(None)`: neither, the kernel's call will do).
fn select_copies(
    nfds: usize,
    sets: &mut [Set; 3],
    timeout: Option<Duration>,
    sigmask: *const libc::sigset_t,
) -> Result<Option<c_int>, Errno> {
    const RD: i16 = libc::POLLIN
        | libc::POLLRDNORM
        | libc::POLLRDBAND
        | libc::POLLHUP
        | libc::POLLERR
        | libc::POLLNVAL;
    const WR: i16 =
        libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND | libc::POLLERR | libc::POLLNVAL;
    const EX: i16 = libc::POLLPRI | libc::POLLNVAL;
    let mut fds = Vec::new();
    for fd in 0..nfds {
        let mut ev = 0;
        if isset(&sets[0], fd) {
            ev |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDBAND;
        }
        if isset(&sets[1], fd) {
            ev |= libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND;
        }
        if isset(&sets[2], fd) {
            ev |= libc::POLLPRI;
        }
        if ev != 0 {
            if process::is_hidden(fd as c_int) {
                return Err(Errno::EBADF);
            }
            fds.push(pollfd {
                fd: fd as c_int,
                events: ev,
                revents: 0,
            });
        }
    }
    let Some((p, insts)) = instances(fds.iter().map(|f| f.fd)) else {
        return Ok(None);
    };
    // A number not open at the call is EBADF (Linux's max_select_fd); one closed by
    // another thread while this call sleeps is POLLNVAL from the kernel's poll, reported
    // below in every set it was asked in (Linux 6.x: EPOLLNVAL is in POLLIN_SET,
    // POLLOUT_SET and POLLEX_SET).
    if fds.iter().any(|f| !sys::is_open(f.fd)) {
        return Err(Errno::EBADF);
    }
    poll_instances(p, &insts, &mut fds, timeout, sigmask)?;
    for words in sets.iter_mut().flatten() {
        words.iter_mut().for_each(|w| *w = 0);
    }
    let mut count = 0;
    for f in &fds {
        let fd = f.fd as usize;
        for (set, (bits, asked)) in
            sets.iter_mut()
                .zip([(RD, libc::POLLIN), (WR, libc::POLLOUT), (EX, libc::POLLPRI)])
        {
            if let Some(words) = set {
                if f.events & asked != 0 && f.revents & bits != 0 {
                    words[fd / FD_BITS] |= 1 << (fd % FD_BITS);
                    count += 1;
                }
            }
        }
    }
    Ok(Some(count))
}

/// `select(2)`: like Linux, the timeout is updated with the time not slept (a timeout that
/// cannot be written back is ignored, as there).
///
/// # Safety
/// None beyond the C signature: unreadable sets or timeout are `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    ffi(|| {
        let raw_call = || {
            // SAFETY: the kernel validates everything.
            raw(unsafe { eventpoll_host::raw_syscall!(libc::SYS_select, nfds, r, w, e, timeout) })
        };
        if !active() || nfds <= 0 || nfds > 1 << 20 {
            return raw_call();
        }
        let tv = if timeout.is_null() {
            None
        } else {
            match user::read(timeout) {
                Some(tv) => Some(tv),
                None => return raw_call(),
            }
        };
        let n = nfds as usize;
        let Some(mut sets) = read_sets(n, [r, w, e]) else {
            return raw_call();
        };
        let t = match tv {
            None => None,
            Some(tv) if tv.tv_sec < 0 || tv.tv_usec < 0 => return Err(Errno::EINVAL),
            Some(tv) => Some(
                Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64),
            ),
        };
        let start = Instant::now();
        let Some(count) = select_copies(n, &mut sets, t, std::ptr::null())? else {
            return raw_call();
        };
        write_sets([r, w, e], &sets)?;
        if let Some(t) = t {
            let left = t.saturating_sub(start.elapsed());
            let _ = user::write(
                timeout,
                libc::timeval {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_usec: left.subsec_micros() as libc::suseconds_t,
                },
            );
        }
        Ok(count)
    })
}

/// `pselect(2)`.
///
/// # Safety
/// None beyond the C signature: unreadable sets, timeout or signal set are `EFAULT`.
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
        // pselect6 takes {sigmask, size} and may write the timespec: pass copies.
        let raw_call = |ts: Option<libc::timespec>| {
            let mut ts = ts;
            let tsp = match ts.as_mut() {
                Some(t) => t as *mut libc::timespec,
                None if timeout.is_null() => std::ptr::null_mut(),
                None => timeout as *mut libc::timespec, // unreadable: the kernel says EFAULT
            };
            let data: [usize; 2] = [sigmask as usize, 8];
            let datap = if sigmask.is_null() {
                std::ptr::null()
            } else {
                data.as_ptr()
            };
            // SAFETY: the kernel validates everything; `tsp` and `datap` are ours or EFAULT.
            raw(unsafe {
                eventpoll_host::raw_syscall!(libc::SYS_pselect6, nfds, r, w, e, tsp, datap)
            })
        };
        let ts = if timeout.is_null() {
            None
        } else {
            match user::read(timeout) {
                Some(ts) => Some(ts),
                None => return raw_call(None),
            }
        };
        if !active() || nfds <= 0 || nfds > 1 << 20 {
            return raw_call(ts);
        }
        let t = match &ts {
            None => None,
            Some(ts) => Some(duration_of(ts)?),
        };
        let Some(mut sets) = read_sets(nfds as usize, [r, w, e]) else {
            return raw_call(ts);
        };
        let Some(count) = select_copies(nfds as usize, &mut sets, t, sigmask)? else {
            return raw_call(ts);
        };
        write_sets([r, w, e], &sets)?;
        Ok(count)
    })
}
