//! The program's memory, read and written without faulting: where Linux's `copy_from_user`
//! and `copy_to_user` return `EFAULT`, the library must too, never `SIGSEGV`.
//!
//! Before touching a range the library asks the kernel to fault its pages in for the access
//! it will make, `madvise(MADV_POPULATE_READ or MADV_POPULATE_WRITE)` (Linux 5.14): it fails
//! on an unmapped, `PROT_NONE`, read-only (for writes), guard or out-of-file page and on any
//! address outside user space, and changes no byte. Only then is the memory accessed
//! directly. One system call per page touched (about 80 ns above a bare call on the test
//! machine); an event buffer is probed lazily, page by page, as a harvest reaches it, so a
//! wait touches exactly the pages Linux would write. An event's slot, which the harvest
//! overwrites at once, is probed more cheaply still: four of its bytes on each page are
//! stored through the kernel's `put_user` by the `getcpu(2)` system call ([`store_probe`]:
//! the same faults, no lock of the address space, no page walk), the event then written
//! over them — memcached's wait buffer, on the heap, costs one trivial call a wait instead of
//! an `madvise` (CPU per request 0.92× of the `madvise` probe's, 0.78–1.24× round by round
//! over 8 interleaved rounds of `scripts/capi-ab-memcached.sh`). The check and the access are not one
//! step: another thread that unmaps or protects the range between them still crashes the
//! process (a use after free in the program; Linux gives `EFAULT`).
//!
//! **The calling thread's own stack needs no probe.** A range that lies wholly in the live
//! part of the calling thread's stack — between its stack pointer and the top of the stack
//! mapping the stack pointer is in — is accessed at once ([`on_own_stack`]): libuv (Node.js)
//! keeps a wait's `struct epoll_event events[1024]` there, and an `epoll_ctl` event or a
//! `poll` array is usually a local too. Under Node's HTTP server this removes every `madvise`
//! of the library (two per request before: the wait's buffer and `epoll_ctl`'s event).
//! Why it is sound:
//!
//! - The bounds are found once per thread, without a symbol the library interposes and
//!   without a system call per call: for the process's initial thread (thread id = process
//!   id) from glibc's `__libc_stack_end` (inside the stack mapping the kernel made; `top` is
//!   it rounded up to a page, which the mapping's page-aligned end is at or above) and
//!   `RLIMIT_STACK` (the mapping never grows further down; at most 1 GiB is used), without
//!   reading `/proc/self/maps` as `pthread_getattr_np` does for that thread; for every other
//!   thread from `pthread_getattr_np` + `pthread_attr_getstack` (glibc reads the thread's
//!   descriptor: the block it allocated at `pthread_create`, without the guard, or the one
//!   the program gave; glibc's only PLT calls are the allocator's and ld.so's, so nothing of
//!   the library runs inside it).
//! - The fast path is taken only when the stack pointer itself (here: the address of a local
//!   of the library, at or above it) is inside those bounds — so never on a coroutine's
//!   stack, a `sigaltstack` or any stack the library did not find — and
//!   `sp <= addr`, `addr + len <= top`. Everything from the stack pointer to the top is the
//!   live frames of this very call and its callers: memory the thread is running on, which
//!   nothing but the program's own `munmap`/`mprotect` of its live stack can take away (a
//!   heap buffer can go away with a `free` inside glibc that no interposer sees; this
//!   cannot). A buffer below the stack pointer (a dead frame) keeps the probe.
//! - It is also seen writable once: the first time a range below the part found writable
//!   so far is asked for, the pages from the range up to that part are probed (one
//!   `madvise` per new lowest page a thread's calls reach, not one per call). This rules out,
//!   for the initial thread, a mapping the program itself placed (`MAP_FIXED`, an address
//!   hint) between the `RLIMIT_STACK` bound and the stack mapping, with the stack pointer
//!   on it: the probe spans the hole between the two
//!   and fails, and a failed probe ends the fast path for the thread. (It may fault in stack
//!   pages the program reserved but never touched, between the range and the part known:
//!   memory, not behaviour.)
//!
//! What remains: a program that unmaps or protects part of its *own live stack* and then
//! passes that part to the library crashes where Linux gives `EFAULT` — as the race above
//! with another thread. `eventpoll_user_probes()` (exported) gives the calling thread's
//! probe count: `tests/c/stack_buffers.c` checks with it which calls take the fast path.
//!
//! Where `madvise` cannot populate (older kernels, a seccomp filter), one byte per page is
//! copied with `process_vm_readv` (and written back with `process_vm_writev` for a write
//! check), and where that is refused too the library trusts the pointer (as before this
//! module existed, with only the first page refused). `EVENTPOLL_CHECK_POINTERS=0` chooses
//! that last mode from the start (no check, no cost; a bad pointer crashes).

#![allow(unsafe_code)]

use eventpoll::Errno;
use eventpoll::{EpollEvent, EventSink};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

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

thread_local! {
    /// System calls this thread made to probe the program's memory (`madvise`, or the
    /// `process_vm_readv`/`writev` pair counted as one), for [`eventpoll_user_probes`].
    static PROBES: Cell<libc::c_ulong> = const { Cell::new(0) };
}

fn count_probe() {
    let _ = PROBES.try_with(|n| n.set(n.get().wrapping_add(1)));
}

/// How many system calls the calling thread has made so far to probe the program's memory
/// (one per `madvise`; one per page copied through `process_vm_readv`). A diagnostic for
/// tests and measurements (`tests/c/stack_buffers.c` counts with it which waits take the
/// own-stack fast path); not part of Linux's ABI.
#[no_mangle]
pub extern "C" fn eventpoll_user_probes() -> libc::c_ulong {
    PROBES.try_with(Cell::get).unwrap_or(0)
}

/// `madvise(addr, len, advice)` on whole pages, retried when interrupted.
fn populate(addr: usize, len: usize, advice: libc::c_int) -> Result<(), Errno> {
    loop {
        count_probe();
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

/// Whether the `getcpu(2)` system call stores into the program's memory here (0: not asked
/// yet, 1: yes, 2: no — a seccomp filter, a kernel without it): [`store_probe`].
static STORE: AtomicU8 = AtomicU8::new(0);

/// Store four bytes at `addr` through the kernel, as a probe of memory the caller is about
/// to overwrite: `getcpu(2)` (the system call, not the vDSO's) writes the CPU's number with
/// `put_user`, which fails with `EFAULT` exactly where a store by the program would fault
/// (unmapped, `PROT_NONE`, read-only, guard or out-of-file page, an address outside user
/// space) and faults a writable page in as the store would. A trivial system call, where
/// `madvise(MADV_POPULATE_WRITE)` takes the address space's lock and walks the pages:
/// under memcached, whose wait buffer is on the heap, one of them a wait. `Some(true)`:
/// stored; `Some(false)`: not writable; `None`: the call is not usable here (the caller
/// probes otherwise). Only for bytes the caller overwrites next: they change. Never for an
/// address in the first page (`getcpu` takes a null pointer as "not asked for").
fn store_probe(addr: usize) -> Option<bool> {
    let usable = match STORE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let mut local = 0u32;
            // SAFETY: four bytes into a local of this frame.
            let r = unsafe {
                eventpoll_host::raw_syscall!(
                    libc::SYS_getcpu,
                    &mut local as *mut u32,
                    0usize,
                    0usize
                )
            };
            STORE.store(if r == 0 { 1 } else { 2 }, Ordering::Relaxed);
            r == 0
        }
    };
    if !usable {
        return None;
    }
    loop {
        count_probe();
        // SAFETY: the kernel checks `addr` (`put_user`) and stores four bytes there or
        // fails with EFAULT; the caller overwrites them next.
        let r = unsafe { eventpoll_host::raw_syscall!(libc::SYS_getcpu, addr, 0usize, 0usize) };
        if r == 0 {
            return Some(true);
        }
        match errno() {
            Errno::EFAULT => return Some(false),
            Errno::EINTR => {}
            _ => return None,
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
    count_probe();
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

/// Whether every byte of `[addr, end)` can be read (`write`: and written) now: at once for a
/// range in the live part of the calling thread's own stack ([`on_own_stack`]: an
/// `epoll_ctl` event, a `poll` array or a wait's buffer that is a local of the caller),
/// else probed.
fn accessible(addr: usize, end: usize, write: bool) -> bool {
    on_own_stack(addr, end) || probe(addr, end, write)
}

/// Whether every byte of `[addr, end)` can be read (`write`: and written) now, asking the
/// kernel (the probe of the mode [`check_mode`] chose).
fn probe(addr: usize, end: usize, write: bool) -> bool {
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

extern "C" {
    /// glibc's (ld.so's) record of the initial thread's stack pointer at program start: the
    /// address of `argc`, inside the stack mapping the kernel made for the process.
    static __libc_stack_end: *mut libc::c_void;
}

/// The calling thread's own stack, as far as the library found it (once per thread).
struct ThreadStack {
    /// 0: not looked up yet; 1: unknown (never a fast path); 2: `low`/`top` found.
    state: AtomicU8,
    /// A stack pointer below `low` is not on this stack (or not where it may be trusted).
    low: AtomicUsize,
    /// The top of the stack (exclusive): `[sp, top)` is the stack's live part.
    top: AtomicUsize,
    /// `[verified, top)` was found mapped and writable by a probe; it only goes down.
    verified: AtomicUsize,
    /// Cleared when a probe extending `verified` fails: no more tries on this thread.
    extend: AtomicBool,
}

thread_local! {
    // Atomics, not cells: a raw `clone(CLONE_VM)` child without a TLS of its own shares
    // this with its parent thread (every value either stores is true of the same stack).
    static STACK: ThreadStack = const {
        ThreadStack {
            state: AtomicU8::new(0),
            low: AtomicUsize::new(0),
            top: AtomicUsize::new(0),
            verified: AtomicUsize::new(usize::MAX),
            extend: AtomicBool::new(true),
        }
    };
}

/// The bounds `(low, top)` of the calling thread's stack, or `None`.
///
/// - The process's initial thread (its thread id is the process id): `top` is glibc's
///   `__libc_stack_end` rounded up to a page (inside the stack mapping the kernel made,
///   whose end is page-aligned and above it), `low` is `top` less `RLIMIT_STACK` (at most
///   1 GiB; the kernel never grows that mapping further down). No `/proc/self/maps`, no
///   allocation: `pthread_getattr_np` would read the maps file for this thread.
/// - Any other thread: `pthread_getattr_np` + `pthread_attr_getstack` on `pthread_self()`,
///   which for a glibc thread read its descriptor (the stack block it was created with,
///   without the guard) and ask the kernel only its CPU affinity (once per thread; glibc
///   calls nothing the library interposes: its only PLT calls are the allocator's and
///   ld.so's). A thread glibc did not make (a raw `clone`) gets some thread's bounds: its
///   stack pointer is then outside them and no wait takes the fast path — unless it runs
///   on memory inside that thread's stack, which is then live stack memory all the same.
///
/// After a `fork` from another thread the child's only thread has the process id but runs
/// on a thread stack: its stack pointer is outside the initial stack's bounds (no fast
/// path), or it kept the bounds it found before the `fork` (its own, still true).
fn stack_bounds() -> Option<(usize, usize)> {
    let pg = page();
    if eventpoll_host::sys::gettid() == eventpoll_host::sys::getpid() {
        // SAFETY: a plain read of a word glibc sets once, before any code of the program.
        let end = unsafe { __libc_stack_end } as usize;
        if end == 0 {
            return None;
        }
        let top = end.checked_add(pg - 1)? & !(pg - 1);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit64 on this process writes the one `rlimit` passed.
        let r = unsafe {
            eventpoll_host::raw_syscall!(
                libc::SYS_prlimit64,
                0,
                libc::RLIMIT_STACK,
                0usize,
                &raw mut lim
            )
        };
        let window = if r == 0 {
            usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
        } else {
            8 << 20
        }
        .min(1 << 30);
        return Some((top.saturating_sub(window), top));
    }
    // SAFETY: a zeroed pthread_attr_t is what pthread_getattr_np initializes; it is
    // destroyed below exactly when the call succeeded.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut base: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut base, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 || base.is_null() || size == 0 {
            return None;
        }
        let low = base as usize;
        Some((low, low.checked_add(size)?))
    }
}

/// The calling thread's stack pointer, or just above it: the address of a local of this
/// frame. Everything from it up to the top of the stack is live stack of this thread (this
/// call's frames and its callers').
#[inline(never)]
fn stack_pointer() -> usize {
    let here = 0u8;
    std::hint::black_box(&here) as *const u8 as usize
}

/// Whether `[addr, end)` is known writable without a probe because it lies in the live part
/// of the calling thread's own stack: the stack pointer is inside the stack's bounds, and
/// `sp <= addr < end <= top`. That part of a stack is mapped and writable by construction
/// (for a glibc thread one read-write mapping made at `pthread_create`; for the initial
/// thread the kernel's grows-down stack mapping, which the stack pointer is inside), as
/// long as the thread runs there. Not taken on any other stack (a coroutine's, a
/// `sigaltstack`'s: the stack pointer is outside the bounds), for a buffer below the
/// stack pointer (a dead frame) or one reaching above the top. ("The stack pointer" is the
/// library's, a few frames below the caller's: a dead frame of the caller within those few
/// frames is memory the library's own frames occupy, mapped either way, which the probe
/// would pass too.)
///
/// It is also probed once: the first time a range below the part found writable so far is
/// asked for, `[range's page, verified)` is probed (one `madvise`), so a range the fast path
/// serves was seen writable — which also rules out, on the initial thread, a mapping of the
/// program's own between the stack's `low` bound and the stack mapping with the stack
/// pointer inside (`MAP_FIXED` or an address hint: the kernel's own placement leaves at
/// least `RLIMIT_STACK` below the stack free, as it was at `exec`): the probe would
/// span the hole between them and fail, and a failed probe ends the fast path for the
/// thread. So each thread makes one probe per new lowest page reached, not one per wait.
pub fn on_own_stack(addr: usize, end: usize) -> bool {
    if end <= addr || check_mode() == Check::Trust {
        return false;
    }
    let sp = stack_pointer();
    STACK
        .try_with(|s| {
            let mut state = s.state.load(Ordering::Acquire);
            if state == 0 {
                match stack_bounds() {
                    Some((low, top)) => {
                        s.low.store(low, Ordering::Relaxed);
                        s.top.store(top, Ordering::Relaxed);
                        s.verified.store(top, Ordering::Relaxed);
                        state = 2;
                    }
                    None => state = 1,
                }
                s.state.store(state, Ordering::Release);
            }
            if state != 2 {
                return false;
            }
            let (low, top) = (s.low.load(Ordering::Relaxed), s.top.load(Ordering::Relaxed));
            if !(low <= sp && sp <= addr && end <= top) {
                return false;
            }
            let verified = s.verified.load(Ordering::Relaxed);
            if addr >= verified {
                return true;
            }
            if !s.extend.load(Ordering::Relaxed) {
                return false;
            }
            let from = addr & !(page() - 1);
            if probe(from, verified, true) {
                s.verified.fetch_min(from, Ordering::Relaxed);
                true
            } else {
                s.extend.store(false, Ordering::Relaxed);
                false
            }
        })
        .unwrap_or(false)
}

/// As [`writable_prefix`] for `[from, end)`, the part not yet known writable of an event's
/// slot `[slot, end)`, which the caller stores the event into right after (12 bytes: at
/// most two pages). Each page is probed with [`store_probe`] — four bytes of the slot on
/// that page (from `from` if they fit before `end`, else the slot's last four, which start
/// at or after `slot`), which the event then overwrites — or, where that cannot be used,
/// as [`writable_prefix`] probes.
fn slot_writable_prefix(slot: usize, from: usize, end: usize) -> usize {
    debug_assert!(slot <= from && end - slot == std::mem::size_of::<EpollEvent>());
    if end <= from || on_own_stack(from, end) || check_mode() == Check::Trust {
        return end;
    }
    let pg = page();
    let mut at = from;
    while at < end {
        let page_end = ((at & !(pg - 1)) + pg).min(end);
        let four = if at + 4 <= end { at } else { end - 4 };
        if four < pg {
            // The first page is never the program's (and `getcpu` skips a null pointer).
            return at;
        }
        match store_probe(four) {
            Some(true) => at = page_end,
            Some(false) => return at,
            None => return writable_prefix(at, end),
        }
    }
    end
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
    /// The buffer at `base` (its length is the harvest's `maxevents`). Slots in the live
    /// part of the calling thread's own stack are known writable without a probe when the
    /// harvest asks for them (`accessible`, [`on_own_stack`]).
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
            let ok = slot_writable_prefix(start, start.max(self.writable_end), end);
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
