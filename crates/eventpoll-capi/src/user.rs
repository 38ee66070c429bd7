//! The program's memory, read and written without faulting: where Linux's `copy_from_user`
//! and `copy_to_user` return `EFAULT`, the library must too, never `SIGSEGV`.
//!
//! Before touching a range the library asks the kernel to fault its pages in for the access
//! it will make, `madvise(MADV_POPULATE_READ or MADV_POPULATE_WRITE)` (Linux 5.14): it fails
//! on an unmapped, `PROT_NONE`, read-only (for writes), guard or out-of-file page and on any
//! address outside user space, and changes no byte. Only then is the memory accessed
//! directly. One system call per page touched (about 80 ns above a bare call on the test
//! machine); an event buffer is probed lazily, page by page, as a harvest reaches it, so a
//! wait touches exactly the pages Linux would write. The check and the access are not one
//! step: another thread that unmaps or protects the range between them still crashes the
//! process (a use after free in the program; Linux gives `EFAULT`).
//!
//! Where `madvise` cannot populate (older kernels, a seccomp filter), one byte per page is
//! copied with `process_vm_readv` (and written back with `process_vm_writev` for a write
//! check), and where that is refused too the library trusts the pointer (as before this
//! module existed, with only the first page refused). `EVENTPOLL_CHECK_POINTERS=0` chooses
//! that last mode from the start (no check, no cost; a bad pointer crashes).

#![allow(unsafe_code)]

use eventpoll::Errno;
use eventpoll::{EpollEvent, EventSink};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const MADV_POPULATE_READ: libc::c_int = 22;
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// How pages are checked (decided at first use).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Populate = 1,
    CopyByte = 2,
    Trust = 3,
}

static CHECK: AtomicU8 = AtomicU8::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(0);

fn page() -> usize {
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no memory arguments.
    let p = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE.store(p, Ordering::Relaxed);
    p
}

fn errno() -> Errno {
    eventpoll_host::sys::last_errno()
}

/// `madvise(addr, len, advice)` on whole pages, retried when interrupted.
fn populate(addr: usize, len: usize, advice: libc::c_int) -> Result<(), Errno> {
    loop {
        // SAFETY: populating pages changes no byte of them; the kernel checks the range.
        let r = unsafe { eventpoll_host::raw_syscall!(libc::SYS_madvise, addr, len, advice) };
        if r == 0 {
            return Ok(());
        }
        let e = errno();
        if e != Errno::EINTR && e != Errno::EAGAIN {
            return Err(e);
        }
    }
}

/// Copy one byte of the program's memory at `addr` through the kernel (`process_vm_readv`
/// on this process), and with `write_back` write it back (`process_vm_writev`).
fn copy_byte(addr: usize, write_back: bool) -> Result<(), Errno> {
    let mut b = 0u8;
    let local = libc::iovec {
        iov_base: (&mut b as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 1,
    };
    let pid = eventpoll_host::sys::getpid();
    // SAFETY: one byte into `b`; the kernel checks the remote address.
    let r = unsafe {
        eventpoll_host::raw_syscall!(
            libc::SYS_process_vm_readv,
            pid,
            &raw const local,
            1,
            &raw const remote,
            1,
            0
        )
    };
    if r != 1 {
        return Err(errno());
    }
    if write_back {
        // SAFETY: as above, the byte just read goes back where it was.
        let r = unsafe {
            eventpoll_host::raw_syscall!(
                libc::SYS_process_vm_writev,
                pid,
                &raw const local,
                1,
                &raw const remote,
                1,
                0
            )
        };
        if r != 1 {
            return Err(errno());
        }
    }
    Ok(())
}

fn check_mode() -> Check {
    match CHECK.load(Ordering::Relaxed) {
        1 => return Check::Populate,
        2 => return Check::CopyByte,
        3 => return Check::Trust,
        _ => {}
    }
    // A page of this stack frame is certainly readable and writable.
    let probe = [0u8; 1];
    let at = probe.as_ptr() as usize & !(page() - 1);
    let mode = if std::env::var_os("EVENTPOLL_CHECK_POINTERS").is_some_and(|v| v == "0") {
        Check::Trust
    } else if populate(at, page(), MADV_POPULATE_WRITE).is_ok() {
        Check::Populate
    } else if copy_byte(probe.as_ptr() as usize, true).is_ok() {
        Check::CopyByte
    } else {
        Check::Trust
    };
    CHECK.store(mode as u8, Ordering::Relaxed);
    mode
}

/// Whether every byte of `[addr, end)` can be read (`write`: and written) now.
fn accessible(addr: usize, end: usize, write: bool) -> bool {
    if end <= addr {
        return true;
    }
    let pg = page();
    if addr < pg {
        return false; // the first page is never mapped for the program
    }
    let first = addr & !(pg - 1);
    let Some(last) = (end - 1).checked_add(pg).map(|e| e & !(pg - 1)) else {
        return false;
    };
    match check_mode() {
        Check::Populate => {
            let advice = if write {
                MADV_POPULATE_WRITE
            } else {
                MADV_POPULATE_READ
            };
            populate(first, last - first, advice).is_ok()
        }
        Check::CopyByte => (first..last)
            .step_by(pg)
            .all(|p| copy_byte(p.max(addr), write).is_ok()),
        Check::Trust => true,
    }
}

/// Where the writable part of `[addr, end)` ends, from `addr` (page granular: `end` when all
/// of it is writable).
pub fn writable_prefix(addr: usize, end: usize) -> usize {
    if accessible(addr, end, true) {
        return end;
    }
    let pg = page();
    let mut at = addr;
    while at < end {
        let next = ((at & !(pg - 1)) + pg).min(end);
        if !accessible(at, next, true) {
            return at;
        }
        at = next;
    }
    end
}

/// A copy of the `T` at `p`, or `None` where Linux's `copy_from_user` fails (`EFAULT`).
// Any address is accepted: the kernel checks the range before it is touched.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn read<T: Copy>(p: *const T) -> Option<T> {
    let addr = p as usize;
    let end = addr.checked_add(std::mem::size_of::<T>())?;
    if !accessible(addr, end, false) {
        return None;
    }
    // SAFETY: the range was just found readable (possibly unaligned).
    Some(unsafe { std::ptr::read_unaligned(p) })
}

/// Copies of `n` records of `T` from `p`, or `None` if any byte cannot be read.
// Any address is accepted: the kernel checks the range before it is touched.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn read_slice<T: Copy>(p: *const T, n: usize) -> Option<Vec<T>> {
    let addr = p as usize;
    let end = std::mem::size_of::<T>()
        .checked_mul(n)
        .and_then(|len| addr.checked_add(len))?;
    if !accessible(addr, end, false) {
        return None;
    }
    // SAFETY: the whole range was just found readable; each record is read unaligned.
    Some(
        (0..n)
            .map(|i| unsafe { std::ptr::read_unaligned(p.add(i)) })
            .collect(),
    )
}

/// Store `v` at `p`; `false` (nothing written) where Linux's `copy_to_user` fails.
// Any address is accepted: the kernel checks the range before it is touched.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn write<T: Copy>(p: *mut T, v: T) -> bool {
    let addr = p as usize;
    let Some(end) = addr.checked_add(std::mem::size_of::<T>()) else {
        return false;
    };
    if !accessible(addr, end, true) {
        return false;
    }
    // SAFETY: the range was just found writable (possibly unaligned).
    unsafe { std::ptr::write_unaligned(p, v) };
    true
}

/// The end of the user address space as the kernel's `access_ok` sees it: a range that
/// ends above it is `EFAULT` before anything is looked at (an epoll wait checks its whole
/// buffer so). Found once, by asking the kernel about candidate ends with an empty epoll.
pub fn user_space_end() -> usize {
    static END: AtomicUsize = AtomicUsize::new(0);
    let e = END.load(Ordering::Relaxed);
    if e != 0 {
        return e;
    }
    let pg = page();
    let mut found = usize::MAX;
    if let Ok(ep) = eventpoll_host::sys::epoll_create1(libc::EPOLL_CLOEXEC) {
        for bits in [56u32, 52, 48, 47, 39] {
            let end = (1usize << bits) - pg;
            let one = std::mem::size_of::<EpollEvent>();
            // SAFETY: an empty epoll writes nothing; the kernel only range-checks the buffer.
            let r = unsafe {
                eventpoll_host::raw_syscall!(
                    libc::SYS_epoll_pwait,
                    ep,
                    end - one,
                    1,
                    0,
                    0usize,
                    8usize
                )
            };
            if r == 0 {
                found = end;
                break;
            }
        }
        let _ = eventpoll_host::sys::close(ep);
    }
    END.store(found, Ordering::Relaxed);
    found
}

/// Whether `[addr, addr + len)` passes the kernel's `access_ok`.
pub fn in_user_space(addr: usize, len: usize) -> bool {
    addr.checked_add(len)
        .is_some_and(|end| end <= user_space_end())
}

/// A wait's `events` buffer in the program's memory: each event is stored once its slot's
/// pages are found writable (each page checked once per call). The first slot that is not
/// stops the harvest, as Linux's copy-out does — and, as there, the event's bits are still
/// stored when only they fit (Linux writes `events`, then `data`).
pub struct UserEvents {
    base: usize,
    /// Bytes from `base` up to here are known writable in this call.
    writable_end: usize,
}

impl UserEvents {
    /// The buffer at `base` (its length is the harvest's `maxevents`).
    pub fn new(base: *mut EpollEvent) -> Self {
        UserEvents {
            base: base as usize,
            writable_end: base as usize,
        }
    }
}

impl EventSink for UserEvents {
    fn room(&mut self, from: usize, want: usize) -> usize {
        let size = std::mem::size_of::<EpollEvent>();
        let slot = |i: usize| i.checked_mul(size).and_then(|o| self.base.checked_add(o));
        let (Some(start), Some(end)) = (slot(from), slot(from.saturating_add(want))) else {
            return 0;
        };
        if end > self.writable_end {
            let ok = writable_prefix(start.max(self.writable_end), end);
            self.writable_end = self.writable_end.max(ok);
        }
        (self.writable_end.saturating_sub(start) / size).min(want)
    }

    fn put(&mut self, i: usize, event: EpollEvent) -> bool {
        let size = std::mem::size_of::<EpollEvent>();
        let Some(start) = i
            .checked_mul(size)
            .and_then(|off| self.base.checked_add(off))
        else {
            return false;
        };
        let Some(end) = start.checked_add(size) else {
            return false;
        };
        if end > self.writable_end {
            let ok = writable_prefix(start.max(self.writable_end), end);
            if ok < end {
                let bits_end = start + std::mem::size_of::<u32>();
                if ok >= bits_end {
                    // SAFETY: the bits' four bytes were found writable.
                    unsafe { std::ptr::write_unaligned(start as *mut u32, event.events) };
                }
                return false;
            }
            let pg = page();
            self.writable_end = ((end - 1) & !(pg - 1)).saturating_add(pg);
        }
        // SAFETY: the slot's bytes were found writable (the record is packed: unaligned).
        unsafe { std::ptr::write_unaligned(start as *mut EpollEvent, event) };
        true
    }
}
