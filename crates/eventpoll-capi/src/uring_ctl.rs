//! `epoll_ctl` submitted through io_uring (`IORING_OP_EPOLL_CTL`) on an eventpoll instance.
//!
//! libuv ≥ 1.45 (Node.js, uvloop) adds and modifies its items with `IORING_OP_EPOLL_CTL`
//! SQEs on a private ring and submits them with `syscall(__NR_io_uring_enter, …)`. Sent to
//! the kernel as they are, those SQEs would act on the kernel epoll behind the instance's
//! number, which the engine never sees. So:
//!
//! - at `io_uring_setup` (interposed through [`crate::syscall`]), after the kernel made the
//!   ring, the library maps the ring's submission queue and SQE array into its own address
//!   space (`MAP_SHARED` at `IORING_OFF_SQ_RING` and `IORING_OFF_SQES`: the same pages the
//!   program writes), a *mirror* of the ring;
//! - at `io_uring_enter` with SQEs to submit, before the kernel consumes them, it reads the
//!   SQEs the call submits (from the ring's head, `to_submit` of them, through the index
//!   array unless the ring has none) and performs every `IORING_OP_EPOLL_CTL` whose `epfd`
//!   is an eventpoll instance with the library's own `epoll_ctl` — same checks, same errno
//!   — then rewrites that SQE in place as an `IORING_OP_NOP` with
//!   `IORING_NOP_INJECT_RESULT` and the result (0 or `-errno`): the kernel completes it with
//!   the program's `user_data`, flags and link semantics, and the exact result Linux would
//!   have posted. Every other SQE is left alone.
//!
//! `IORING_NOP_INJECT_RESULT` is probed once on a private ring; on a kernel without it a
//! successful operation becomes a plain `NOP` (result 0, exact) and a failed one an
//! `IORING_OP_EPOLL_CTL` with `epfd` -1 (result `-EBADF` instead of the real errno).
//!
//! Not seen, and so acting on the kernel epoll behind the number as before: rings set up
//! with `IORING_SETUP_SQPOLL` (a kernel thread consumes the SQEs with no `io_uring_enter`)
//! or `IORING_SETUP_NO_MMAP`, submissions through a registered ring descriptor
//! (`IORING_ENTER_REGISTERED_RING`), an `epfd` given as a registered file
//! (`IOSQE_FIXED_FILE`), and rings driven by system calls issued without glibc (liburing's
//! inline calls). The mirror holds a reference to the ring until the program closes the
//! ring's number through the library (`close`, `close_range`, `dup2` over it).

#![allow(unsafe_code)]

use crate::process::{self, Slot, INSTANCES};
use eventpoll_host::raw_syscall;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const IORING_SETUP_SQPOLL: u32 = 1 << 1;
const IORING_SETUP_SQE128: u32 = 1 << 10;
const IORING_SETUP_NO_MMAP: u32 = 1 << 14;
const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
const IORING_FEAT_SINGLE_MMAP: u32 = 1;
const IORING_ENTER_GETEVENTS: usize = 1;
const IORING_ENTER_REGISTERED_RING: usize = 1 << 4;
const IORING_OFF_SQ_RING: usize = 0;
const IORING_OFF_SQES: usize = 0x1000_0000;
const IORING_OP_NOP: u8 = 0;
const IORING_OP_EPOLL_CTL: u8 = 29;
const IOSQE_FIXED_FILE: u8 = 1;
const IORING_NOP_INJECT_RESULT: u32 = 1;

/// Byte offsets in `struct io_uring_sqe`.
mod sqe {
    pub const OPCODE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const IOPRIO: usize = 2;
    pub const FD: usize = 4;
    pub const OFF: usize = 8;
    pub const ADDR: usize = 16;
    pub const LEN: usize = 24;
    pub const OP_FLAGS: usize = 28;
    pub const BUF_INDEX: usize = 40;
    pub const SPLICE_FD_IN: usize = 44;
    pub const ADDR3: usize = 48;
    pub const PAD: usize = 56;
}

/// The parts of `struct io_uring_params` (120 bytes) a mirror needs.
#[derive(Clone, Copy)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    features: u32,
    /// `sq_off`: head, tail, ring_mask, ring_entries, flags, dropped, array.
    sq_off: [u32; 7],
    /// `cq_off`: head, tail, ring_mask, ring_entries, overflow, cqes.
    cq_off: [u32; 6],
}

impl Params {
    /// Read from the caller's (kernel-filled) `io_uring_params`.
    ///
    /// # Safety
    /// `p` points to 120 readable bytes.
    unsafe fn read(p: *const u8) -> Params {
        // SAFETY: the caller's contract; unaligned reads of plain integers.
        let at = |off: usize| unsafe { std::ptr::read_unaligned(p.add(off).cast::<u32>()) };
        Params {
            sq_entries: at(0),
            cq_entries: at(4),
            flags: at(8),
            features: at(20),
            sq_off: std::array::from_fn(|i| at(40 + 4 * i)),
            cq_off: std::array::from_fn(|i| at(80 + 4 * i)),
        }
    }
}

/// A shared mapping of part of a ring.
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(fd: i32, len: usize, offset: usize) -> Option<Map> {
        // SAFETY: a fresh shared mapping of an io_uring descriptor at an offset the kernel
        // documents; the kernel checks the length against the region.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Map {
            ptr: ptr.cast(),
            len,
        })
    }

    fn u32_at(&self, off: u32) -> &AtomicU32 {
        assert!(off as usize + 4 <= self.len);
        // SAFETY: in bounds (checked), 4-byte aligned (the kernel's ring offsets are), and
        // alive as long as `self`; shared with the kernel and the program, so atomic.
        unsafe { &*self.ptr.add(off as usize).cast::<AtomicU32>() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, no longer referenced.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The library's view of a program's ring: its submission queue and SQE array.
struct Mirror {
    sq: Map,
    sqes: Map,
    p: Params,
    sqe_size: usize,
}

// SAFETY: the mappings are plain shared memory; the program serialises its submissions to
// one ring (as io_uring requires), and the mirror is read in the submitting thread.
unsafe impl Send for Mirror {}
// SAFETY: as above.
unsafe impl Sync for Mirror {}

impl Mirror {
    /// Map ring `fd`'s submission side (and, `with_cq`, the completion ring sharing its
    /// mapping).
    fn new(fd: i32, p: Params, with_cq: bool) -> Option<Mirror> {
        let entries = p.sq_entries as usize;
        let mut sq_len = if p.flags & IORING_SETUP_NO_SQARRAY != 0 {
            p.sq_off[..6].iter().max().copied().unwrap_or(0) as usize + 4
        } else {
            p.sq_off[6] as usize + 4 * entries
        };
        if with_cq {
            if p.features & IORING_FEAT_SINGLE_MMAP == 0 {
                return None;
            }
            sq_len = sq_len.max(p.cq_off[5] as usize + 16 * p.cq_entries as usize);
        }
        let sqe_size = if p.flags & IORING_SETUP_SQE128 != 0 {
            128
        } else {
            64
        };
        let sq = Map::new(fd, sq_len, IORING_OFF_SQ_RING)?;
        let sqes = Map::new(fd, entries * sqe_size, IORING_OFF_SQES)?;
        Some(Mirror {
            sq,
            sqes,
            p,
            sqe_size,
        })
    }

    /// The SQE at ring position `pos` (the index array's entry, or the position itself).
    fn sqe_at(&self, pos: u32) -> Option<*mut u8> {
        let mask = self.sq.u32_at(self.p.sq_off[2]).load(Ordering::Relaxed);
        let idx = if self.p.flags & IORING_SETUP_NO_SQARRAY != 0 {
            pos & mask
        } else {
            self.sq
                .u32_at(self.p.sq_off[6] + 4 * (pos & mask))
                .load(Ordering::Relaxed)
        };
        // The kernel drops an out-of-range index; so do we (nothing to rewrite).
        ((idx as usize) < self.p.sq_entries as usize)
            // SAFETY: in bounds of the SQE array mapping.
            .then(|| unsafe { self.sqes.ptr.add(idx as usize * self.sqe_size) })
    }
}

/// Rings with a mirror, by the program's number for them.
static MIRRORS: Mutex<Vec<(i32, Arc<Mirror>)>> = Mutex::new(Vec::new());
/// How many rings have a mirror (nothing to do at `close`/`enter` while none).
static MIRRORED: AtomicUsize = AtomicUsize::new(0);

/// `io_uring_setup(entries, params)`: the kernel's, then a mirror of the new ring.
///
/// # Safety
/// `params` is a valid `struct io_uring_params` for the kernel to read and fill in.
pub unsafe fn setup(entries: u32, params: usize) -> libc::c_long {
    // SAFETY: the caller's contract.
    let fd = unsafe { raw_syscall!(libc::SYS_io_uring_setup, entries, params) };
    if fd < 0 {
        return fd;
    }
    // SAFETY: the kernel just filled in `params` (120 bytes).
    let p = unsafe { Params::read(params as *const u8) };
    if p.flags & (IORING_SETUP_SQPOLL | IORING_SETUP_NO_MMAP) == 0 {
        if let Some(m) = Mirror::new(fd as i32, p, false) {
            let mut t = MIRRORS.lock().unwrap_or_else(|e| e.into_inner());
            let old = t
                .iter()
                .position(|(n, _)| *n == fd as i32)
                .map(|i| t.remove(i));
            t.push((fd as i32, Arc::new(m)));
            MIRRORED.store(t.len(), Ordering::SeqCst);
            drop(t);
            drop(old);
        }
    }
    fd
}

/// The program is about to close (or replace) numbers `lo..=hi`: their mirrors go.
pub fn closing(lo: i32, hi: i32) {
    if MIRRORED.load(Ordering::SeqCst) == 0 {
        return;
    }
    let mut t = MIRRORS.lock().unwrap_or_else(|e| e.into_inner());
    let mut gone = Vec::new();
    t.retain(|(n, m)| {
        let keep = *n < lo || *n > hi;
        if !keep {
            gone.push(m.clone());
        }
        keep
    });
    MIRRORED.store(t.len(), Ordering::SeqCst);
    drop(t);
    drop(gone);
}

/// `io_uring_enter(fd, to_submit, …)` (`args`: the six arguments): the `EPOLL_CTL` SQEs on
/// eventpoll instances among those submitted are performed here and turned into `NOP`s with
/// their results; then the kernel's call.
///
/// # Safety
/// As the kernel's `io_uring_enter` with these arguments.
pub unsafe fn enter(fd: i32, to_submit: u32, args: [usize; 6]) -> libc::c_long {
    if to_submit > 0
        && args[3] & IORING_ENTER_REGISTERED_RING == 0
        && MIRRORED.load(Ordering::SeqCst) != 0
        && INSTANCES.load(Ordering::SeqCst) != 0
    {
        let mirror = MIRRORS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(n, _)| *n == fd)
            .map(|(_, m)| m.clone());
        if let Some(m) = mirror {
            redirect(&m, to_submit);
        }
    }
    // SAFETY: the caller's contract.
    unsafe { eventpoll_host::raw_syscall::libc_style(libc::SYS_io_uring_enter, args) }
}

/// Perform the instance `EPOLL_CTL` SQEs among the next `to_submit` of `m`.
fn redirect(m: &Mirror, to_submit: u32) {
    let Some(p) = process::existing() else {
        return;
    };
    let head = m.sq.u32_at(m.p.sq_off[0]).load(Ordering::Acquire);
    let tail = m.sq.u32_at(m.p.sq_off[1]).load(Ordering::Acquire);
    let n = tail.wrapping_sub(head).min(to_submit).min(m.p.sq_entries);
    for i in 0..n {
        let Some(s) = m.sqe_at(head.wrapping_add(i)) else {
            continue;
        };
        // SAFETY: `s` is a 64-byte SQE in the mirror's mapping; the program wrote it
        // before this `io_uring_enter` and does not touch it until the kernel consumed it.
        unsafe {
            let get32 = |off: usize| std::ptr::read_unaligned(s.add(off).cast::<u32>());
            let get64 = |off: usize| std::ptr::read_unaligned(s.add(off).cast::<u64>());
            if *s.add(sqe::OPCODE) != IORING_OP_EPOLL_CTL
                || *s.add(sqe::FLAGS) & IOSQE_FIXED_FILE != 0
            {
                continue;
            }
            let epfd = get32(sqe::FD) as i32;
            if !matches!(p.slot(epfd), Some(Slot::Epoll(_))) {
                continue;
            }
            let (op, target, event) = (
                get32(sqe::LEN) as i32,
                get64(sqe::OFF) as i32,
                get64(sqe::ADDR),
            );
            let res = ctl_result(
                epfd,
                op,
                target,
                event as usize as *mut eventpoll::EpollEvent,
            );
            complete_with(s, res);
        }
    }
}

/// The library's `epoll_ctl`, as an io_uring result (0 or `-errno`); the caller's `errno`
/// is left as it was.
fn ctl_result(epfd: i32, op: i32, fd: i32, event: *mut eventpoll::EpollEvent) -> i32 {
    // SAFETY: errno slot of the calling thread.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the program's SQE names `event` as its epoll_event (the kernel would read it).
    let r = unsafe { crate::abi::epoll_ctl(epfd, op, fd, event) };
    // SAFETY: as above.
    let res = if r == 0 {
        0
    } else {
        -unsafe { *libc::__errno_location() }
    };
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
    res
}

/// Rewrite SQE `s` as an operation the kernel completes with result `res`.
///
/// # Safety
/// `s` points to a writable SQE not yet consumed by the kernel.
unsafe fn complete_with(s: *mut u8, res: i32) {
    // SAFETY: the caller's contract; plain stores into the 64-byte SQE.
    unsafe {
        let put32 = |off: usize, v: u32| std::ptr::write_unaligned(s.add(off).cast::<u32>(), v);
        let put64 = |off: usize, v: u64| std::ptr::write_unaligned(s.add(off).cast::<u64>(), v);
        std::ptr::write_unaligned(s.add(sqe::IOPRIO).cast::<u16>(), 0);
        std::ptr::write_unaligned(s.add(sqe::BUF_INDEX).cast::<u16>(), 0);
        put64(sqe::OFF, 0);
        put64(sqe::ADDR, 0);
        put32(sqe::SPLICE_FD_IN, 0);
        put64(sqe::ADDR3, 0);
        put64(sqe::PAD, 0);
        if inject_supported() {
            *s.add(sqe::OPCODE) = IORING_OP_NOP;
            put32(sqe::LEN, res as u32);
            put32(sqe::OP_FLAGS, IORING_NOP_INJECT_RESULT);
        } else if res == 0 {
            *s.add(sqe::OPCODE) = IORING_OP_NOP;
            put32(sqe::LEN, 0);
            put32(sqe::OP_FLAGS, 0);
        } else {
            // No injected results: an EPOLL_CTL the kernel refuses (EBADF).
            put32(sqe::FD, u32::MAX);
            put32(sqe::LEN, libc::EPOLL_CTL_DEL as u32);
            put32(sqe::OP_FLAGS, 0);
        }
    }
}

/// Whether this kernel's `IORING_OP_NOP` posts an injected result (probed once).
fn inject_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(probe_inject)
}

/// Submit a `NOP` injecting `-EEXIST` on a private two-entry ring and read its completion.
fn probe_inject() -> bool {
    let mut params = [0u8; 120];
    // SAFETY: `params` is a zeroed io_uring_params the kernel fills in.
    let fd = unsafe { raw_syscall!(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        return false;
    }
    let fd = fd as i32;
    // SAFETY: the kernel filled in the 120 bytes.
    let p = unsafe { Params::read(params.as_ptr()) };
    let ok = Mirror::new(fd, p, true).is_some_and(|m| {
        let tail = m.sq.u32_at(p.sq_off[1]).load(Ordering::Acquire);
        let idx = tail & m.sq.u32_at(p.sq_off[2]).load(Ordering::Relaxed);
        if p.flags & IORING_SETUP_NO_SQARRAY == 0 {
            m.sq.u32_at(p.sq_off[6] + 4 * idx)
                .store(idx, Ordering::Relaxed);
        }
        // SAFETY: entry `idx` of the SQE array (two entries, mapped), ours alone.
        unsafe {
            let s = m.sqes.ptr.add(idx as usize * m.sqe_size);
            std::ptr::write_bytes(s, 0, m.sqe_size);
            *s.add(sqe::OPCODE) = IORING_OP_NOP;
            std::ptr::write_unaligned(s.add(sqe::LEN).cast::<u32>(), (-libc::EEXIST) as u32);
            std::ptr::write_unaligned(s.add(sqe::OP_FLAGS).cast::<u32>(), IORING_NOP_INJECT_RESULT);
        }
        m.sq.u32_at(p.sq_off[1])
            .store(tail.wrapping_add(1), Ordering::Release);
        // SAFETY: no pointers beyond the ring itself.
        let r = unsafe {
            raw_syscall!(
                libc::SYS_io_uring_enter,
                fd,
                1u32,
                1u32,
                IORING_ENTER_GETEVENTS,
                0usize,
                0usize
            )
        };
        let head = m.sq.u32_at(p.cq_off[0]).load(Ordering::Acquire);
        let ctail = m.sq.u32_at(p.cq_off[1]).load(Ordering::Acquire);
        if r != 1 || head == ctail {
            return false;
        }
        let slot = head & m.sq.u32_at(p.cq_off[2]).load(Ordering::Relaxed);
        // `struct io_uring_cqe`: user_data (8), res (4), flags (4).
        let res =
            m.sq.u32_at(p.cq_off[5] + 16 * slot + 8)
                .load(Ordering::Relaxed) as i32;
        res == -libc::EEXIST
    });
    // SAFETY: closing the probe's own ring (its mappings are gone with the mirror).
    unsafe { raw_syscall!(libc::SYS_close, fd) };
    ok
}
