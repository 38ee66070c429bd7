//! The per-wakeup Linux driver: one io_uring multishot poll per host descriptor.
//!
//! The kernel-epoll driver ([`super::kernel`]) learns of a wakeup only if the file is still
//! ready when it asks, and never learns the wakeup's key. An io_uring multishot poll
//! (`IORING_OP_POLL_ADD` with `IORING_POLL_ADD_MULTI`, edge-triggered, every bit asked
//! for) is woken by each wakeup of the file's wait queue and posts a completion with the
//! wakeup's *key* — the bits the waker named (an eventfd write of 0 posts `IN`; a pipe
//! write posts `IN|RDNORM` even if the data is read again before anyone looks). A key-less
//! wakeup posts the file's mask at that moment, or nothing if it is not ready. So a
//! [`pump`](Driver::pump) replays the host's wakeups one by one, in order, with Linux's
//! keys, and the engine's own key filtering and ready-list order are Linux's.
//!
//! Two modes. **Owned** (Linux 6.1+, the mode a driver starts in): the ring is created
//! `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` for the thread that creates
//! the driver. A wakeup then only queues work on the ring (no interruption of the thread's
//! next system call), and a pump runs all of it in one batch: pipetest over host pipes went
//! from 0.6× to 0.8–0.9× the kernel's epoll. The kernel lets no other thread submit or run
//! that work, and queued work wakes only a thread waiting in `io_uring_enter(2)` for
//! completions (not a `ppoll` on the ring's descriptor), so the owner sleeps there, with
//! one-shot polls of its doorbell and of the driver's wakeup eventfd on the ring (an
//! eventfd registered with the ring, `IORING_REGISTER_EVENTFD`, is not used: when the
//! wakeup comes from inside another eventfd's write — `mio::Waker`, `uv_async_send` — the
//! kernel signals it a grace period of RCU later, or never again). A `poll`/`select` that
//! must sleep in `ppoll` switches the driver to shared mode. The first call from another thread switches the driver to **shared** mode
//! for good (below): it delivers the completions already posted, replaces the ring by a
//! shared one under the same descriptor number, arms every registered descriptor on it
//! (when the old ring had work queued but not run, which only its owner may run, the
//! arming reports count as wakeups in its place, so a ready file is reported, while a
//! wakeup that left no readiness in that instant is not seen; when it had none, they are
//! dropped), and signals the eventfd so a sleeping owner wakes and goes on
//! with the new ring. The descriptors are then armed by the thread that switched; if it
//! exits, each is armed again by the next pump after its next wakeup, a few milliseconds
//! late (the kernel cancels an exited thread's polls lazily).
//!
//! When the completion is posted (shared mode). The kernel turns a poll wakeup into a
//! completion in *task work* of the thread that submitted the poll (the thread that
//! registered the descriptor). The ring runs cooperatively (`IORING_SETUP_COOP_TASKRUN`):
//! that thread is not interrupted while it runs user code; the work runs at its next entry
//! into the kernel — before the call returns, for a wakeup it caused itself (a `write`) —
//! or at once if it is asleep (a blocked waiter). `IORING_SETUP_TASKRUN_FLAG` marks
//! pending work in the ring, and a pump that sees the mark enters the kernel to run it;
//! otherwise a pump reads the completion ring without a system call. (Interrupting the
//! thread at every wakeup instead, the default of io_uring, cost redis under
//! `libeventpoll` 40% of its throughput.) A poll whose thread exits is cancelled by the
//! kernel; the next pump arms it again from the pumping thread, and delivers the re-arming
//! report (the descriptor's mask) as a wakeup, so nothing is lost.
//!
//! So a wakeup caused by another thread while the registering thread runs user code is
//! seen later than with a kernel epoll: a zero-timeout wait of any thread but the
//! registering one — the writer's own, right after its `write` returned, included — may
//! miss it (a blocking wait does not). A wakeup the waiting thread caused itself, of a
//! descriptor it registered, is never missed by its zero-timeout wait: the completion is
//! posted before the `write` returns, and a pump in flight that reaped it holds the ring's
//! mutex until its last delivery, which a racing pump waits for (`UringDriver::idle` sees
//! it in flight; `tests/host.rs`, the zero-timeout wait after its own write while another
//! thread pumps). One caused by another thread, of a descriptor the waiting thread
//! registered, is queued as the waiting thread's own work, which its pump runs when the
//! ring's flag (below) is up — but another thread running its own batch meanwhile lowers
//! the flag, and the pump, seeing none, makes no system call: missed too, until the
//! waiting thread's next entry into the kernel.
//!
//! Why a zero-timeout wait does not wait for another thread's task work: nothing says
//! whose work is queued, or that some is. `IORING_SQ_TASKRUN` is one flag for the whole
//! ring, raised when work is queued for any thread and lowered when any thread has run
//! its own batch of the ring's work (`ctx_flush_and_put`) — so it may be down while
//! another thread's work waits, and up for work of descriptors the wait does not watch.
//! Nor can a thread run another's work, and the other thread runs it at once only if it
//! sleeps interruptibly: running user code, at its next entry into the kernel or its next
//! tick, later if it is preempted or in an uninterruptible sleep — measured on Linux 6.18
//! (a 2-core VM): a pipe registered by a thread that then spins in user code, written by
//! another, reached that writer's zero-timeout waits 0.2 to 13 ms later (20 tries). Waiting
//! on the flag would make every zero-timeout wait of a busy multi-threaded server wait
//! that long whenever any other thread has work queued, and still miss. Exactness there
//! would need every poll armed by the waiting thread, or the armer interrupted at every
//! wakeup (which only narrows the window, at the cost above).
//!
//! What is not exact. A wakeup without a key (a state change) is reported with the file's
//! mask in the poll's direction, or not at all if the file is ready for nothing there, so
//! it wakes only the items interested in those bits (Linux wakes every item of the file;
//! `ERR`, `HUP` or `RDHUP` that are new are recognised as a state change and wake every
//! item (the rules are at `wake_key`); the key-less calls of this process are passed on by the
//! embedder, [`crate::Host::wake_keyless`]). Several wakeups folded into one task work are
//! reported once, with the mask (widened to the key for sockets).
//!
//! An armed poll holds a reference to the open file description, so
//! [`deregister`](Driver::deregister) cancels it before a close by the program can release
//! the file (`IORING_OP_ASYNC_CANCEL`, which the kernel honours even while a wakeup of the
//! poll is pending; `POLL_REMOVE` is refused then, and the file stayed open for good). The
//! kernel lets go of the file in task work of the thread that armed the poll: before
//! `deregister` returns when that is the calling thread (or in owned mode), else when that
//! thread next enters the kernel — at once if it sleeps, within a scheduler tick if it
//! runs user code. A descriptor closed by a path its embedder does not see
//! stays alive until the embedder notices (see [`Driver::still_registered`], which this
//! driver answers by comparing device and inode numbers).
//!
//! A wait costs two system calls where a kernel epoll makes one: the pump's
//! `io_uring_enter` (owned mode: one entry, see `Ring::drain_task_work`) and the harvest's
//! `ppoll` of the items it must poll ([`HostFd`]'s `poll_batch`). Folding those polls into
//! the pump as one-shot `POLL_ADD`s of every bit (a ready file answers during the submission
//! with its mask; answers told apart from later completions by a no-op submitted last) was
//! built and measured, and lost: the objects a pump wakes are known only after its task
//! work ran, so their polls need an entry of their own, and a one-shot poll costs more than
//! `ppoll`'s look at a descriptor (a request and a wait-queue entry, left armed on a file
//! that is not ready, whose next wakeup is one more item of task work) — pipetest's cost
//! per wait rose from 3.2–11.8 µs to 5.6–27.6 µs (N = 10 to 9,990, same run).
//!
//! Registering a descriptor (an embedder's first `EPOLL_CTL_ADD` of it) costs one
//! `io_uring_enter`: its polls, both directions when the item asks for output too, go in
//! one submission, which in owned mode also asks for the task work it queues to run
//! (`GETEVENTS`, `Ring::submit_run`) — the arming reports of a ready file, which used to
//! take an entry of their own; a cancellation (the close of a watched descriptor) likewise.
//! The arming reports are dropped as wakeups but answer the ctl's poll of the descriptor
//! (`crate::host_fd::answer`): no `ppoll` for it. Native `epoll_ctl` is one system call;
//! an `EPOLL_CTL_ADD` of a new socket through `libeventpoll` makes five (the process
//! check's `getpid`, the event's pointer probe, `F_GETFD`, `fstat` for the file's
//! identity, this entry), where it made seven (not ready) to ten (ready, `IN|OUT`, owned
//! mode), besides the instance bell's eventfd when the instance's readiness changes.
//!
//! Blocked waiters sleep in `ppoll(2)` on the ring's descriptor (shared mode; readable
//! while completions are pending) plus their doorbell, or (owned mode) in
//! `io_uring_enter(2)` as said above — only one of them at a time, the leader of
//! `crate::waiter`'s "Who watches the host"; the others sleep on their own eventfd — and
//! a thread that armed every poll of its instance (the driver records each poll's thread
//! before submitting it, `HostFd::armer`) on that instance's relay, since the completions
//! of its wakeups are its own task work (`crate::relay`, "io_uring"); a thread that alone
//! sleeps on an instance takes over the polls another thread armed for it
//! (`UringDriver::adopt`: the new poll under the token with `TOKEN_EPOCH` flipped, the
//! old one cancelled and its reports dropped). A pump
//! that finds the ring empty, no task work flagged and no other pump delivering returns
//! without taking the ring's mutex (`UringDriver::idle`).
//!
//! Mode changes happen under the ring's mutex (the thread-id check is made by every
//! caller that takes it), so no pump or submission sees a half-switched driver.
//!
//! Locking. One mutex guards the ring: submissions, and pumps from reaping to the last
//! wakeup they deliver, so that two threads pumping at once cannot deliver wakeups out of
//! the kernel's order. A pump wakes engine wait queues while holding it (lock order: ring
//! mutex, then the registry's lock briefly to resolve tokens, then whatever the engine's
//! wake callbacks take); nothing the engine does while waking calls back into the driver.
//! `fork`'s prepare handler in `libeventpoll` keeps every engine step (and so every
//! holder of this mutex) out while it forks.

#![allow(unsafe_code)] // the io_uring system calls and its shared-memory rings: FFI only

use super::{Driver, DriverKind, Registry, TOKEN_EPOCH};
use crate::host_fd::HostFd;
use crate::sys::{self, Errno, SysResult};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// `struct io_sqring_offsets` (uapi `linux/io_uring.h`).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

/// `struct io_uring_sqe`, with the fields a poll uses.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    /// `poll32_events` for `POLL_ADD`.
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    splice_fd_in: i32,
    addr3: u64,
    pad: u64,
}

/// `struct io_uring_cqe` (without the big-CQE tail).
#[repr(C)]
#[derive(Clone, Copy)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<Params>() == 120);
const _: () = assert!(std::mem::size_of::<Sqe>() == 64);
const _: () = assert!(std::mem::size_of::<Cqe>() == 16);

const IORING_OP_POLL_ADD: u8 = 6;
const IORING_OP_POLL_REMOVE: u8 = 7;
const IORING_OP_ASYNC_CANCEL: u8 = 14;
const IORING_POLL_ADD_MULTI: u32 = 1;
const IORING_CQE_F_MORE: u32 = 1 << 1;
const IORING_SETUP_CQSIZE: u32 = 1 << 3;
const IORING_SETUP_CLAMP: u32 = 1 << 4;
const IORING_FEAT_SINGLE_MMAP: u32 = 1;
const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;
const IORING_SQ_TASKRUN: u32 = 1 << 2;
const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x800_0000;
const IORING_OFF_SQES: i64 = 0x1000_0000;

/// Submission-queue entries: one operation is submitted at a time.
const SQ_ENTRIES: u32 = 64;
/// Most `io_uring_enter` calls one [`Ring::drain_task_work`] makes (20 items each).
const MAX_TASK_WORK_ROUNDS: usize = 100_000;
/// Completion-queue entries: wakeups pending between two pumps. A multishot poll that
/// finds the queue full ends (a completion without `F_MORE`); the pump then arms it again.
const CQ_ENTRIES: u32 = 8192;

/// The `user_data` of removals (`ASYNC_CANCEL`, `POLL_REMOVE`; their own completions are
/// ignored).
const REMOVE_MARK: u64 = u64::MAX;
/// A token no object has.
const NO_SKIP: u64 = u64::MAX - 1;
/// Skip every object's completions (the arming reports of a switch that owes no wakeup).
const SKIP_ALL: u64 = u64::MAX - 3;
/// The `user_data` of the owner's sleep polls (one-shot polls of the descriptors a
/// sleeping owner waits for, see `UringDriver::block_owned`): `SLEEP_BASE + i`. Every
/// `user_data` from here up is the driver's own, never a registered object's.
const SLEEP_BASE: u64 = u64::MAX - 4096;

/// How many descriptors can keep a sleep poll armed between the owner's sleeps (`Ring::
/// sleep_polls`: `SLEEP_BASE + i`); one-shot sleep polls are `SLEEP_BASE + ONE_SHOT_SLEEP + j`
/// (past the leftover-flag probe's marks at `SLEEP_BASE + 1024`).
const KEPT_SLEEP_POLLS: usize = 1024;
/// See [`KEPT_SLEEP_POLLS`].
const ONE_SHOT_SLEEP: u64 = 2048;

/// Whether `user_data` is one of the driver's own marks rather than a registered object's.
fn is_mark(user_data: u64) -> bool {
    user_data >= SLEEP_BASE
}

/// `struct io_uring_getevents_arg` (`IORING_ENTER_EXT_ARG`).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// The `user_data` bit of the output poll (registry tokens never have it).
const OUT_POLL: u64 = 1 << 63;

/// The bits of the two polls of a descriptor, input and output. A wakeup's key names one
/// direction; with one poll per direction, a poll that must ask the file for its mask
/// (the wakeup had no key, or several wakeups came before the completion was posted)
/// still reports the direction that woke, and the engine's key filtering stays right: an
/// item that waits for `OUT` is not woken by data arriving. `ERR`, `HUP`, `RDHUP` and
/// `NVAL` are implied by the kernel in both.
const CLASSES: [u32; 2] = [
    HostFd::IN_BITS.bits() | ERR_HUP,
    HostFd::OUT_BITS.bits() | ERR_HUP,
];

const ERR_HUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// The bits of a completion that describe the file's state rather than a direction:
/// io_uring adds `ERR`, `HUP` and `RDHUP` to every poll, and no wakeup of a pipe, socket,
/// eventfd or timerfd names `RDHUP` or `HUP` in its key.
const STATE_BITS: u32 = (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32;

/// The key to wake a host object's queue with, from a completion's bits and the state
/// bits of the previous completion (or arming report) of the same poll. A completion
/// carries the wakeup's key, or — when the wakeup had none (a state change: a pipe's
/// other end closed or resized, a socket shut down) or several wakeups were folded into
/// one (io_uring keeps the key of the first wakeup only when it is the only one; else it
/// asks the file) — the file's mask. Rules that turn such a mask back into Linux's key:
///
/// - State bits (`ERR`, `HUP`, `RDHUP`) that were not there at the previous completion
///   are a state change: woken with no key, which puts every item of the file on its
///   ready list, as Linux does (`scenarios/regressions/keyless-wakeup-hangup.ep`); so are
///   state bits alone, without a direction. State bits that were already there come from
///   asking the file after folded wakeups (a 64 KiB write is several): the direction
///   bits are the key (`scenarios/regressions/socket-folded-hangup.ep`).
/// - A socket's input or output bits are widened to its wakeup's full key
///   ([`super::socket_key`]): without this, folded wakeups of a socket would not wake an
///   item watching `PRI` as Linux does (`scenarios/regressions/socket-folded-wakeups.ep`).
/// - An input completion of a socket that had `HUP` already (shut down both ways, or its
///   peer gone) is a state change too: no data can arrive any more, and the input poll
///   does not see output wakeups, so it can only be a key-less wakeup that adds no state
///   bit — the peer closed or shut down after that (`sock_def_wakeup`,
///   `scenarios/regressions/keyless-wakeup-peer-close-after-hangup.ep`).
///
/// What stays inexact: a key-less wakeup that changes no state bit of a file that has
/// some, other than that socket case, wakes only the items of its direction; the key-less
/// calls made in this process are passed on separately ([`crate::Host::wake_keyless`]).
fn wake_key(bits: u32, socket: bool, input: bool, prev_state: u32) -> u32 {
    let state = bits & STATE_BITS;
    let dir = bits & !STATE_BITS;
    if state & !prev_state != 0 || (state != 0 && dir == 0) {
        return 0;
    }
    if socket && input && prev_state & libc::EPOLLHUP as u32 != 0 {
        return 0;
    }
    if socket {
        super::socket_key(dir)
    } else {
        dir
    }
}

/// The bits the completions of `host`'s polls will carry, at least, for a wakeup without a
/// key after which the file's mask is `mask` (see `UringDriver::wake_keyless`).
fn keyless_coverage(host: &HostFd, mask: u32) -> u32 {
    if host.unarmed.load(Ordering::Acquire) {
        return 0;
    }
    let socket = host.socket.load(Ordering::Relaxed);
    let mut covered = 0;
    for (class, bits) in CLASSES.iter().enumerate() {
        if class == 1 && !host.out.load(Ordering::Acquire) {
            continue;
        }
        let dir = mask & bits & !STATE_BITS;
        covered |= if socket { super::socket_key(dir) } else { dir };
    }
    covered
}

/// The `user_data` of `host`'s poll of `class`.
fn user_data(token: u64, class: usize) -> u64 {
    if class == 1 {
        token | OUT_POLL
    } else {
        token
    }
}

/// One mapping of the ring's shared memory.
struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn new(fd: i32, len: usize, offset: i64) -> SysResult<Map> {
        // SAFETY: a fresh shared mapping of the ring descriptor at the offset io_uring
        // documents for this region; nothing aliases it in this process yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(sys::last_errno());
        }
        Ok(Map {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The `u32` at byte offset `off`, as an atomic shared with the kernel.
    fn atomic(&self, off: u32) -> &AtomicU32 {
        debug_assert!(off as usize + 4 <= self.len);
        // SAFETY: `off` is an offset the kernel gave for a 4-byte-aligned u32 inside this
        // mapping, which lives as long as `self`; the kernel and we access it atomically.
        unsafe { &*self.ptr.add(off as usize).cast::<AtomicU32>() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `new`, no longer referenced.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Where a ring's counters live in its mappings (the completion queue's head and tail, the
/// submission queue's flags), so that [`UringDriver::idle`] can read them without the
/// ring's mutex. Valid while the ring is mapped: `UringDriver::replace_ring` withdraws it
/// and waits for its readers before the old ring goes.
struct Counters {
    cq_head: *const AtomicU32,
    cq_tail: *const AtomicU32,
    sq_flags: *const AtomicU32,
}

/// An io_uring instance: its descriptor and its mapped rings.
struct Ring {
    fd: i32,
    sq: Map,
    cq: Option<Map>,
    sqes: Map,
    p: Params,
    /// Which ring this is (a number no other ring of the process has had).
    id: u64,
    /// A pump's buffers, kept between pumps (a pump runs before every wait); empty, and
    /// holding no reference to any object, between pumps.
    scratch: Scratch,
    /// The bits of the completions the last pump skipped (the arming reports of the
    /// object it was told to skip), for `HostFd::set_answer`.
    skipped_bits: u32,
    /// The objects (tokens) whose completions the pump in progress takes as a key-less
    /// wakeup passed on after it (`UringDriver::wake_keyless`): recorded, not delivered.
    /// Empty but then.
    absorb: smallvec::SmallVec<[u64; 4]>,
    /// Owned mode: the kernel raises `IORING_SQ_TASKRUN` again when an entry leaves
    /// deferred task work unrun (found by [`Ring::probe_leftover_flag`]), so the flag alone
    /// says whether another entry is needed.
    leftover_flag: bool,
    /// Owned mode: the descriptors whose sleep poll stays armed between the owner's sleeps
    /// (the driver's wakeup eventfd and the waiters' eventfds, which live as long as the
    /// driver: [`Driver::note_sleep_fd`]), each with whether its multishot poll is armed
    /// (a completion without `F_MORE` ends it; the next sleep arms it again). Index `i` is
    /// `user_data` `SLEEP_BASE + i`.
    sleep_polls: Vec<(i32, bool)>,
    /// Owned mode: a second number of the ring (a hidden one, made with it), which only the
    /// owner's sleeps enter (see [`UringDriver::block_owned`]); -1 for none (a sleep then
    /// makes a private number for itself). A ring that replaces this one takes the number
    /// over ([`UringDriver::replace_ring`]), so that it stays the driver's.
    sleep_fd: i32,
    /// Owned mode: the owner is between reading `sleep_fd` and the end of its sleep, so a
    /// ring that replaces this one must leave `sleep_fd` referring to this one until then
    /// (the owner, awake and finding another ring, points the number at it).
    owner_asleep: bool,
}

#[derive(Default)]
struct Scratch {
    /// Objects moved off an exiting thread and armed again, whose arming reports the
    /// current or next pump delivers (see `HostFd::moved`); cleared after that pump.
    moved: Vec<Arc<HostFd>>,
    cqes: Vec<Cqe>,
    hosts: Vec<(usize, Arc<HostFd>)>,
    rearm: Vec<Sqe>,
}

// SAFETY: the raw pointers refer to shared mappings owned by the ring; every access goes
// through the driver's mutex (or atomics shared with the kernel).
unsafe impl Send for Ring {}

impl Ring {
    /// A ring. `owned`: try single-issuer deferred task running first (see the module
    /// documentation); [`Ring::owned`] says whether it was granted.
    fn new(hidden_base: i32, owned: bool) -> SysResult<Ring> {
        // Cooperative task running (5.19+): a wakeup does not interrupt the thread that
        // armed the poll while it runs (no IPI); it is woken if asleep, and otherwise
        // posts the completion at its next entry into the kernel. TASKRUN_FLAG says
        // when such work is pending, so a pump can enter the kernel to run it.
        let setup = |flags: u32| {
            let mut p = Params {
                flags: IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | flags,
                cq_entries: CQ_ENTRIES,
                ..Params::default()
            };
            // SAFETY: `p` is a valid io_uring_params the kernel fills in.
            let fd = unsafe {
                crate::raw_syscall!(libc::SYS_io_uring_setup, SQ_ENTRIES, &mut p as *mut Params)
            };
            if fd < 0 {
                Err(sys::last_errno())
            } else {
                Ok((fd, p))
            }
        };
        let owned_flags =
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
        let (fd, p) = match owned.then(|| setup(owned_flags)) {
            Some(Ok(r)) => r,
            _ => match setup(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG) {
                Err(Errno::EINVAL) => setup(0)?,
                r => r?,
            },
        };
        let mut fd = fd as i32;
        if hidden_base > 0 {
            fd = sys::move_high(fd, hidden_base);
        }
        let fail = |e| {
            let _ = sys::close(fd);
            e
        };
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
        let single = p.features & IORING_FEAT_SINGLE_MMAP != 0;
        let sq = Map::new(
            fd,
            if single { sq_len.max(cq_len) } else { sq_len },
            IORING_OFF_SQ_RING,
        )
        .map_err(fail)?;
        let cq = if single {
            None
        } else {
            Some(Map::new(fd, cq_len, IORING_OFF_CQ_RING).map_err(fail)?)
        };
        let sqes = Map::new(
            fd,
            p.sq_entries as usize * std::mem::size_of::<Sqe>(),
            IORING_OFF_SQES,
        )
        .map_err(fail)?;
        static RINGS: AtomicU64 = AtomicU64::new(0);
        Ok(Ring {
            fd,
            sq,
            cq,
            sqes,
            p,
            id: RINGS.fetch_add(1, Ordering::Relaxed),
            scratch: Scratch::default(),
            skipped_bits: 0,
            absorb: smallvec::SmallVec::new(),
            leftover_flag: false,
            sleep_polls: Vec::new(),
            sleep_fd: -1,
            owner_asleep: false,
        })
    }

    /// Whether the ring runs deferred task work for one thread (single issuer).
    fn counters(&self) -> Counters {
        let cq = self.cq_map();
        Counters {
            cq_head: cq.atomic(self.p.cq_off.head),
            cq_tail: cq.atomic(self.p.cq_off.tail),
            sq_flags: self.sq.atomic(self.p.sq_off.flags),
        }
    }

    fn owned(&self) -> bool {
        self.p.flags & IORING_SETUP_DEFER_TASKRUN != 0
    }

    /// Run the task work queued for this ring, if the kernel flags some (wakeups become
    /// completions; in shared mode any system call of the arming thread would do it).
    fn run_task_work(&self) {
        if self.taskrun() {
            self.drain_task_work();
        }
    }

    /// Run all deferred task work queued for this ring. One `io_uring_enter` runs at most
    /// 20 items of it (Linux's `IO_LOCAL_TW_DEFAULT_MAX`) and keeps the rest for the next
    /// call, without raising `IORING_SQ_TASKRUN` again: so enter again while an entry
    /// posted completions (or the flag is up again). Found by bulk scenarios: with 60
    /// eventfds woken at once a wait saw 20 of them, and the cancel of a closed pipe's
    /// poll, queued behind them, left the pipe open after its last close.
    ///
    /// Shared mode: one entry. There `IORING_SQ_TASKRUN` is the whole ring's flag, up
    /// while *any* thread has task work queued, and an entry runs the calling thread's
    /// work only (all of it: the 20-item limit is the deferred list's); looping until the
    /// flag fell spun up to 100,000 entries while another thread ran user code with work
    /// queued (memcached's CPU per request went from ~10 to ~50 µs).
    ///
    /// Owned mode, on a kernel that raises the flag again when an entry leaves work
    /// ([`Ring::leftover_flag`]; 6.18 does): enter while the flag is up. The loop above
    /// made a second entry after every entry that posted completions, only to find nothing
    /// left: a host wait made three system calls (two entries and the harvest's `ppoll`);
    /// it makes two.
    fn drain_task_work(&self) {
        if !self.owned() {
            let _ = self.enter(0, IORING_ENTER_GETEVENTS);
            return;
        }
        if self.leftover_flag {
            // Bounded as below (each entry runs at least one item).
            for _ in 0..MAX_TASK_WORK_ROUNDS {
                if !self.taskrun() || self.enter(0, IORING_ENTER_GETEVENTS).is_err() {
                    break;
                }
            }
            return;
        }
        let tail = || {
            self.cq_map()
                .atomic(self.p.cq_off.tail)
                .load(Ordering::Acquire)
        };
        // Bounded (each round runs up to 20 items; 100,000 rounds outnumber any queue here).
        for _ in 0..MAX_TASK_WORK_ROUNDS {
            let before = tail();
            if self.enter(0, IORING_ENTER_GETEVENTS).is_err() {
                break;
            }
            if tail() == before && !self.taskrun() {
                break;
            }
        }
    }

    /// Find out whether the kernel raises `IORING_SQ_TASKRUN` again when an entry leaves
    /// deferred task work unrun (an entry runs at most 20 items since Linux 6.13, and some
    /// kernels kept the rest without raising the flag, see [`Ring::drain_task_work`]): arm
    /// 21 multishot polls of one eventfd, signal it once (21 items of task work), enter
    /// once, and see whether all 21 completions came or the flag is up. For an owned ring,
    /// before it is used; `false` when it cannot tell.
    fn probe_leftover_flag(&self) -> bool {
        const N: u64 = 21;
        // Driver marks (see `is_mark`), on a ring no object uses yet.
        let base = SLEEP_BASE + 1024;
        let Ok(efd) = sys::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) else {
            return false;
        };
        let polls: Vec<Sqe> = (0..N).map(|i| poll_add(efd, base + i, 0)).collect();
        let mut cqes = Vec::new();
        let mut ok = self.submit(&polls).is_ok()
            && sys::write(efd, &1u64.to_ne_bytes()).is_ok()
            && self.enter(0, IORING_ENTER_GETEVENTS).is_ok();
        if ok {
            self.reap(&mut cqes);
            let got = cqes
                .iter()
                .filter(|c| (base..base + N).contains(&c.user_data) && c.res > 0)
                .count();
            ok = got as u64 == N || self.taskrun();
        }
        let cancels: Vec<Sqe> = (0..N).map(|i| poll_cancel(base + i, 0)).collect();
        let _ = self.submit(&cancels);
        let _ = sys::close(efd);
        // Run what is left the way that does not depend on the flag, and drop it all.
        for _ in 0..MAX_TASK_WORK_ROUNDS {
            let before = self
                .cq_map()
                .atomic(self.p.cq_off.tail)
                .load(Ordering::Acquire);
            if self.enter(0, IORING_ENTER_GETEVENTS).is_err() {
                break;
            }
            cqes.clear();
            self.reap(&mut cqes);
            let after = self
                .cq_map()
                .atomic(self.p.cq_off.tail)
                .load(Ordering::Acquire);
            if after == before && !self.taskrun() {
                break;
            }
        }
        ok
    }

    /// Whether completions, queued task work or an overflow are pending.
    fn pending(&self) -> bool {
        let cq = self.cq_map();
        let head = cq.atomic(self.p.cq_off.head).load(Ordering::Relaxed);
        let tail = cq.atomic(self.p.cq_off.tail).load(Ordering::Acquire);
        head != tail || self.taskrun() || self.overflowed()
    }

    /// Make `num` this ring's sleep number (closing what `num` referred to, and the sleep
    /// number it had); on failure `num` is closed and the ring keeps its own (or none).
    fn take_sleep_number(&mut self, num: i32) {
        if sys::dup3(self.fd, num, libc::O_CLOEXEC).is_ok() {
            if self.sleep_fd >= 0 && self.sleep_fd != num {
                let _ = sys::close(self.sleep_fd);
            }
            self.sleep_fd = num;
        } else {
            let _ = sys::close(num);
            if self.sleep_fd == num {
                self.sleep_fd = -1;
            }
        }
    }

    /// Move this ring to descriptor number `num` (closing what `num` referred to).
    fn take_number(&mut self, num: i32) {
        if sys::dup3(self.fd, num, libc::O_CLOEXEC).is_ok() {
            let _ = sys::close(self.fd);
            self.fd = num;
        }
    }

    fn cq_map(&self) -> &Map {
        self.cq.as_ref().unwrap_or(&self.sq)
    }

    /// `io_uring_enter(2)` with no signal set.
    fn enter(&self, to_submit: u32, flags: u32) -> SysResult<()> {
        loop {
            // SAFETY: plain integer arguments; no signal set.
            let r = unsafe {
                crate::raw_syscall!(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    to_submit,
                    0u32,
                    flags,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = sys::last_errno();
            if e != Errno::EINTR {
                return Err(e);
            }
        }
    }

    /// Whether the calling thread may have task work pending that would post completions
    /// (only ever set with cooperative task running).
    fn taskrun(&self) -> bool {
        self.sq.atomic(self.p.sq_off.flags).load(Ordering::Acquire) & IORING_SQ_TASKRUN != 0
    }

    /// Whether completions wait in the kernel's overflow list (the ring was full): they
    /// reach the ring at the next `io_uring_enter` with `GETEVENTS`.
    fn overflowed(&self) -> bool {
        self.sq.atomic(self.p.sq_off.flags).load(Ordering::Acquire) & IORING_SQ_CQ_OVERFLOW != 0
    }

    /// Submit operations and wait until the kernel has taken them.
    fn submit(&self, sqes: &[Sqe]) -> SysResult<()> {
        self.submit_with(sqes, 0)
    }

    /// Submit operations and, in the same `io_uring_enter`, run the task work they queued
    /// (and any other the ring has): the arming reports of polls on ready files, the
    /// release of cancelled polls. Owned mode queues that work until an entry with
    /// `GETEVENTS` (with no completion asked for, the entry runs the work and returns);
    /// asking for it in the submission itself saves the entry [`Ring::drain_task_work`]
    /// made after every arming and every cancellation (an `EPOLL_CTL_ADD` of a ready
    /// descriptor, a close: two `io_uring_enter` each, now one). What the entry leaves
    /// (more than 20 items: a cancellation's release may be queued behind them) is run
    /// here by [`Ring::drain_task_work`], as before — at no cost when the kernel says
    /// nothing is left ([`Ring::leftover_flag`]). Shared mode: the work runs as the submission returns to user space anyway, so
    /// this is [`Ring::submit`].
    fn submit_run(&self, sqes: &[Sqe]) -> SysResult<()> {
        if !self.owned() {
            return self.submit(sqes);
        }
        self.submit_with(sqes, IORING_ENTER_GETEVENTS)?;
        if !self.leftover_flag || self.taskrun() {
            self.drain_task_work();
        }
        Ok(())
    }

    /// [`Ring::submit`] with `io_uring_enter` flags.
    fn submit_with(&self, sqes: &[Sqe], flags: u32) -> SysResult<()> {
        if sqes.is_empty() {
            return Ok(());
        }
        let tail_a = self.sq.atomic(self.p.sq_off.tail);
        let tail = tail_a.load(Ordering::Relaxed);
        let head = self.sq.atomic(self.p.sq_off.head).load(Ordering::Acquire);
        if tail.wrapping_sub(head) as usize + sqes.len() > self.p.sq_entries as usize {
            return Err(Errno::EBUSY);
        }
        let mask = self
            .sq
            .atomic(self.p.sq_off.ring_mask)
            .load(Ordering::Relaxed);
        for (i, sqe) in sqes.iter().enumerate() {
            let index = tail.wrapping_add(i as u32) & mask;
            // SAFETY: `index` is below sq_entries: the slot is inside the SQE array and the
            // kernel does not read it until the tail moves past it (below).
            unsafe {
                self.sqes.ptr.cast::<Sqe>().add(index as usize).write(*sqe);
                self.sq
                    .ptr
                    .add(self.p.sq_off.array as usize)
                    .cast::<u32>()
                    .add(index as usize)
                    .write(index);
            }
        }
        tail_a.store(tail.wrapping_add(sqes.len() as u32), Ordering::Release);
        self.enter(sqes.len() as u32, flags).inspect_err(|_| {
            // Not taken: give the slots back.
            tail_a.store(tail, Ordering::Release);
        })
    }

    /// Check that multishot polls work (Linux 5.13+; older kernels refuse the flag, and
    /// every descriptor would look unpollable): arm one on a ready eventfd, expect a
    /// report that says more will follow, remove it. `Err(ENOSYS)` otherwise.
    fn probe_multishot(&self) -> SysResult<()> {
        let efd = sys::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)?;
        let probe = NO_SKIP - 1;
        let armed = self.submit(&[poll_add(efd, probe, 0)]);
        // Deferred task work posts the arming completion only when asked to.
        let _ = self.enter(0, IORING_ENTER_GETEVENTS);
        let mut cqes = Vec::new();
        self.reap(&mut cqes);
        let ok = armed.is_ok()
            && cqes
                .iter()
                .any(|c| c.user_data == probe && c.res > 0 && c.flags & IORING_CQE_F_MORE != 0);
        let _ = self.submit(&[poll_cancel(probe, 0)]);
        let _ = sys::close(efd);
        cqes.clear();
        self.reap(&mut cqes);
        if ok {
            Ok(())
        } else {
            Err(Errno::ENOSYS)
        }
    }

    /// Take every pending completion into `out`, oldest first.
    fn reap(&self, out: &mut Vec<Cqe>) {
        let cq = self.cq_map();
        let head_a = cq.atomic(self.p.cq_off.head);
        let head = head_a.load(Ordering::Relaxed);
        let tail = cq.atomic(self.p.cq_off.tail).load(Ordering::Acquire);
        let mask = cq.atomic(self.p.cq_off.ring_mask).load(Ordering::Relaxed);
        let mut i = head;
        while i != tail {
            // SAFETY: entries between head and tail are written by the kernel (the Acquire
            // load of the tail orders them) and stay until the head moves past them.
            let cqe = unsafe {
                cq.ptr
                    .add(self.p.cq_off.cqes as usize)
                    .cast::<Cqe>()
                    .add((i & mask) as usize)
                    .read()
            };
            out.push(cqe);
            i = i.wrapping_add(1);
        }
        head_a.store(tail, Ordering::Release);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.fd >= 0 {
            let _ = sys::close(self.fd);
        }
        if self.sleep_fd >= 0 {
            let _ = sys::close(self.sleep_fd);
        }
    }
}

/// The io_uring driver. See the module documentation.
pub struct UringDriver {
    ring: Mutex<Ring>,
    /// The current ring's counters, for [`UringDriver::idle`] (null while a ring is being
    /// replaced; see [`Counters`]).
    counters: AtomicPtr<Counters>,
    /// Threads reading through `counters` now: a ring is unmapped only when none is.
    counter_readers: AtomicUsize,
    /// Pumps between their first reap and their last delivery (under the ring's mutex).
    pumping: AtomicUsize,
    /// Objects moved off an exiting thread wait for the next pump (`Scratch::moved`).
    moved_pending: AtomicBool,
    /// The ring's descriptor, readable by waiters without the mutex.
    ring_fd: AtomicI32,
    /// Owned mode: the thread that may use the ring (its tid); 0 in shared mode.
    owner: AtomicI32,
    /// Owned mode's wakeup eventfd (-1: never owned). Kept open for the driver's life, so
    /// a sleeper that read the number before a switch to shared mode never polls a
    /// reused number; the switch signals it.
    wake_fd: AtomicI32,
    /// The waiters' eventfds ([`Driver::note_sleep_fd`]): owned mode keeps their sleep
    /// polls armed between sleeps (`Ring::sleep_polls`).
    sleep_fds: Mutex<Vec<i32>>,
    registry: Registry,
    hidden_base: i32,
    /// Owned mode allowed (`EVENTPOLL_URING_SHARED` unset), read once: a `fork` child must
    /// not read the environment (another parent thread may have held its lock).
    owned_allowed: bool,
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        let c = std::mem::replace(self.counters.get_mut(), std::ptr::null_mut());
        if !c.is_null() {
            // SAFETY: made by `Box::into_raw`; no reader is left (`&mut self`).
            drop(unsafe { Box::from_raw(c) });
        }
        let efd = self.wake_fd.load(Ordering::Acquire);
        if efd >= 0 {
            let _ = sys::close(efd);
        }
    }
}

/// The calling thread's id (cached per thread; reset in a `fork` child).
fn current_tid() -> i32 {
    TID.with(|t| {
        if t.get() == 0 {
            t.set(sys::gettid());
        }
        t.get()
    })
}

thread_local! {
    static TID: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The flags of `HostFd::moved` (bits 31 and 30, `EPOLLET` and `EPOLLONESHOT`, are in no
/// poll mask): moved (its polls were cancelled as their thread exited), and armed again
/// (the next report is the arming report, filtered against the recorded mask).
const MOVED: u32 = 1 << 31;
const ARMING: u32 = 1 << 30;

/// Record the masks of `host`'s polls, and its activity level, before they are moved off an
/// exiting thread.
fn mark_moved(host: &HostFd) {
    let level = sys::activity_level(host.fd()).unwrap_or(u64::MAX);
    host.moved_level.store(level, Ordering::Release);
    let mask = sys::poll_mask(host.fd());
    for (class, m) in host.moved.iter().enumerate() {
        m.store(MOVED | (mask & CLASSES[class]), Ordering::Release);
    }
}

/// Whether `host`'s activity level is known and differs from the one recorded when its
/// polls were moved (see `HostFd::moved_level`).
fn level_moved(host: &HostFd) -> bool {
    let then = host.moved_level.load(Ordering::Acquire);
    then != u64::MAX && sys::activity_level(host.fd()).is_some_and(|now| now != then)
}

/// How many times a descriptor's polls are taken over by another thread at most (see
/// `UringDriver::adopt`).
const MAX_ADOPTIONS: u8 = 4;

/// `owner` of a driver whose owner thread exited: every thread is then "another thread",
/// and the next call switches to shared mode.
const ORPHANED: i32 = -1;

/// The drivers whose polls the calling thread armed, told when the thread exits (see
/// [`Driver::thread_exiting`]).
struct Armer {
    drivers: std::cell::RefCell<Vec<std::sync::Weak<dyn Driver>>>,
}

impl Drop for Armer {
    fn drop(&mut self) {
        let tid = sys::gettid();
        for w in self.drivers.get_mut().drain(..) {
            if let Some(d) = w.upgrade() {
                d.thread_exiting(tid);
            }
        }
    }
}

thread_local! {
    static ARMER: Armer = const {
        Armer {
            drivers: std::cell::RefCell::new(Vec::new()),
        }
    };
}

/// Record that the calling thread arms `host`'s polls — input, and output when watched,
/// as [`polls`] makes them — before it submits them (see [`note_armer_class`]).
fn note_armer(host: &HostFd) {
    note_armer_class(host, 0);
    if host.out.load(Ordering::Acquire) {
        note_armer_class(host, 1);
    }
}

/// Record that the calling thread arms `host`'s poll of `class` (so that its exit moves
/// it). Made *before* the submission: a thread that reads itself as the armer (a relay's
/// check, [`Driver::relay_delivers`]) then knows that no other thread's poll of that class
/// has replaced its own yet; one armed meanwhile is caught at its next check.
fn note_armer_class(host: &HostFd, class: usize) {
    let tid = current_tid();
    if host.armer[class].swap(tid, Ordering::AcqRel) == tid {
        return;
    }
    let _ = ARMER.try_with(|a| {
        let mut v = a.drivers.borrow_mut();
        let mine = Arc::as_ptr(&host.driver).cast::<()>();
        if !v.iter().any(|w| w.as_ptr().cast::<()>() == mine) {
            v.retain(|w| w.strong_count() > 0);
            v.push(Arc::downgrade(&host.driver));
        }
    });
}

/// Record that no live thread of this ring is known to have armed `host`'s polls.
fn forget_armer(host: &HostFd) {
    for a in &host.armer {
        a.store(0, Ordering::Release);
    }
}

/// Whether owned mode may be tried: `EVENTPOLL_URING_SHARED` unset (or `0`).
fn owned_mode_allowed() -> bool {
    std::env::var_os("EVENTPOLL_URING_SHARED").is_none_or(|v| v.is_empty() || v == "0")
}

/// A multishot poll of descriptor `fd` for the bits of `class`, under `token`.
fn poll_add(fd: i32, token: u64, class: usize) -> Sqe {
    Sqe {
        opcode: IORING_OP_POLL_ADD,
        fd,
        len: IORING_POLL_ADD_MULTI,
        op_flags: CLASSES[class],
        user_data: user_data(token, class),
        ..Sqe::default()
    }
}

/// The removal of `token`'s poll of `class`: `IORING_OP_ASYNC_CANCEL`, not
/// `IORING_OP_POLL_REMOVE`. The kernel refuses `POLL_REMOVE` (`EALREADY`) while a wakeup of
/// the poll waits to be run as task work of the thread that armed it — another thread,
/// running user code — and the poll then stays armed for good, holding its file open: a
/// socket closed by the program never hangs up its peer (tokio's TCP echo under the preload
/// hung in 1 to 3 runs of 5; `tests/c/threads.c`, `close-owed`). `ASYNC_CANCEL` marks the
/// poll cancelled whatever is pending, and the pending work ends it. Either way the poll
/// lets go of its file in task work of the arming thread: at once when that is the calling
/// thread, else when that thread next enters the kernel (at once if it sleeps).
fn poll_cancel(token: u64, class: usize) -> Sqe {
    Sqe {
        opcode: IORING_OP_ASYNC_CANCEL,
        fd: -1,
        addr: user_data(token, class),
        user_data: REMOVE_MARK,
        ..Sqe::default()
    }
}

/// The removals of the polls `host` has: input always, output once watched.
fn removals(host: &HostFd, token: u64) -> Vec<Sqe> {
    let mut v = vec![poll_cancel(token, 0)];
    if host.out.load(Ordering::Acquire) {
        v.push(poll_cancel(token, 1));
    }
    v
}

/// Whether the file behind `fd` supports poll, asked of a scratch kernel epoll: it refuses
/// (`EPERM`) exactly the files without poll support, those whose io_uring poll ends at once.
fn supports_poll(fd: i32) -> SysResult<bool> {
    let ep = sys::epoll_create1(libc::EPOLL_CLOEXEC)?;
    let added = sys::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, Some((0, 0)));
    let _ = sys::close(ep);
    match added {
        Ok(()) => Ok(true),
        Err(Errno::EPERM) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The polls `host` needs: input always, output once watched.
fn polls(host: &HostFd, token: u64) -> Vec<Sqe> {
    let fd = host.fd();
    let mut v = vec![poll_add(fd, token, 0)];
    if host.out.load(Ordering::Acquire) {
        v.push(poll_add(fd, token, 1));
    }
    v
}

impl UringDriver {
    /// A driver with its own io_uring (close-on-exec), its descriptor moved to a number at
    /// or above `hidden_base` when one is given. `Err` when io_uring is unavailable
    /// (kernel older than 5.13, or disabled by `kernel.io_uring_disabled` or seccomp).
    pub fn new(hidden_base: i32) -> SysResult<UringDriver> {
        let owned_allowed = owned_mode_allowed();
        let (ring, efd) = Self::make_ring(hidden_base, owned_allowed)?;
        Ok(UringDriver {
            owned_allowed,
            ring_fd: AtomicI32::new(ring.fd),
            owner: AtomicI32::new(if ring.owned() { current_tid() } else { 0 }),
            wake_fd: AtomicI32::new(efd),
            sleep_fds: Mutex::new(Vec::new()),
            counters: AtomicPtr::new(Box::into_raw(Box::new(ring.counters()))),
            counter_readers: AtomicUsize::new(0),
            pumping: AtomicUsize::new(0),
            moved_pending: AtomicBool::new(false),
            ring: Mutex::new(ring),
            registry: Registry::default(),
            hidden_base,
        })
    }

    /// Whether a pump now would find nothing to deliver, known without the ring's mutex:
    /// no completion in the ring, no task work or overflow flagged, no pump delivering
    /// what it reaped, no moved object waiting. Every wait pumps first, and with several
    /// threads waiting the mutex was contended on every call (memcached: ~2,700 futex
    /// calls for 4,000 requests). A pump that reaps sets `pumping` before it moves the
    /// head and clears it after its last delivery, and this reads the head (acquire)
    /// between two reads of `pumping`: if the head shows a reap, the first or the second
    /// read shows the pump. Owned mode by another thread: the slow path (it switches).
    fn idle(&self) -> bool {
        let owner = self.owner.load(Ordering::Acquire);
        if (owner != 0 && owner != current_tid())
            || self.pumping.load(Ordering::SeqCst) != 0
            || self.moved_pending.load(Ordering::SeqCst)
        {
            return false;
        }
        self.counter_readers.fetch_add(1, Ordering::SeqCst);
        let c = self.counters.load(Ordering::SeqCst);
        let idle = !c.is_null() && {
            // SAFETY: a non-null `counters` points to a live `Counters` whose ring stays
            // mapped while `counter_readers` counts this thread (see `replace_ring`).
            let c = unsafe { &*c };
            // SAFETY: as above: the counters are inside the ring's live mappings.
            let (flags, head, tail) = unsafe {
                (
                    (*c.sq_flags).load(Ordering::Acquire),
                    (*c.cq_head).load(Ordering::Acquire),
                    (*c.cq_tail).load(Ordering::Acquire),
                )
            };
            flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW) == 0
                && head == tail
                && self.pumping.load(Ordering::SeqCst) == 0
        };
        self.counter_readers.fetch_sub(1, Ordering::SeqCst);
        idle
    }

    /// A probed ring, owned by the calling thread if `owned` and the kernel allows it
    /// (6.1+), with its wakeup eventfd (-1 in shared mode).
    fn make_ring(hidden_base: i32, owned: bool) -> SysResult<(Ring, i32)> {
        let mut ring = Ring::new(hidden_base, owned)?;
        let mut efd = -1;
        if ring.owned() {
            let wake = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map(|fd| {
                if hidden_base > 0 {
                    sys::move_high(fd, hidden_base)
                } else {
                    fd
                }
            });
            match wake {
                Ok(fd) => efd = fd,
                Err(_) => {
                    drop(ring);
                    ring = Ring::new(hidden_base, false)?;
                }
            }
        }
        if let Err(e) = ring.probe_multishot() {
            if efd >= 0 {
                let _ = sys::close(efd);
            }
            return Err(e);
        }
        if ring.owned() {
            ring.leftover_flag = ring.probe_leftover_flag();
            // Without it each sleep makes (and closes) a private number of its own.
            ring.sleep_fd = sys::fcntl(
                ring.fd,
                libc::F_DUPFD_CLOEXEC,
                libc::c_long::from(hidden_base.max(0)),
            )
            .unwrap_or(-1);
        }
        Ok((ring, efd))
    }

    /// The ring, for the calling thread: in owned mode a thread other than the owner
    /// switches the driver to shared mode first (see the module documentation).
    fn lock(&self) -> MutexGuard<'_, Ring> {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let owner = self.owner.load(Ordering::Acquire);
        if owner != 0 && owner != current_tid() {
            self.share(&mut ring);
        }
        ring
    }

    /// Switch from owned to shared mode: deliver the completions already posted, replace
    /// the ring by a shared one under the same number, arm every registered descriptor on
    /// it, and wake the owner if it sleeps. Work the old ring had queued but not run is
    /// replaced by the arming reports, delivered as wakeups at the next pump (a file that
    /// is ready is reported; a wakeup that left no readiness is not seen); without such
    /// work they count only as the moved-poll rules say (`mark_moved`).
    fn share(&self, ring: &mut Ring) {
        // Completions already in the ring are readable by any thread (the kernel refuses
        // to run the owner's task work for us: that part of the pump fails harmlessly).
        self.pump_locked(ring, NO_SKIP);
        // Whether the old ring owes wakeups: work queued for the owner and not run (only
        // the owner can run it) makes the ring's descriptor readable. If it owes none, the
        // new polls' arming reports stand for nothing but what happened since the question:
        // an edge-triggered item already reported is not reported again because a second
        // thread came (an edge went to two threads before, `tests/c/threads.c`
        // `one-edge`). But the old ring's polls stay armed until it is torn down, and take
        // a wakeup after the question into work nobody runs: the files' masks and activity
        // levels are recorded first, and the arming reports count by the moved-poll rules
        // (new bits, or a level that moved), as for polls moved off an exiting thread.
        // (Dropping them all lost a wakeup in that window: a level-triggered connection
        // written by a client while its server thread's first wait switched the driver
        // stalled for good, `tests/host.rs`, the level-triggered ping-pong.) A ring whose
        // owner exited is left to those rules already (`thread_exiting`).
        let orphaned = self.owner.load(Ordering::Acquire) == ORPHANED;
        let hosts = if orphaned {
            Vec::new()
        } else {
            self.registry.all()
        };
        for h in hosts.iter().filter(|h| !h.unarmed.load(Ordering::Acquire)) {
            mark_moved(h);
        }
        let owes = orphaned || sys::poll_mask(ring.fd) & (libc::POLLIN as u32) != 0;
        if owes {
            // Every arming report is a wakeup: the marks would filter out the owed ones.
            for h in &hosts {
                for m in &h.moved {
                    m.store(0, Ordering::Release);
                }
                h.moved_level.store(u64::MAX, Ordering::Release);
            }
        }
        let Ok(new) = Ring::new(self.hidden_base, false) else {
            for h in &hosts {
                for m in &h.moved {
                    m.store(0, Ordering::Release);
                }
            }
            return; // stay owned: this thread's ring calls fail (EEXIST), nothing is lost
        };
        self.replace_ring(ring, new);
        self.owner.store(0, Ordering::Release);
        self.arm_all(&mut *ring);
        let efd = self.wake_fd.load(Ordering::Acquire);
        if efd >= 0 {
            let _ = sys::write(efd, &1u64.to_ne_bytes());
        }
    }

    /// Put `new` in place of `ring` under the old ring's descriptor number (the old ring's
    /// mappings go; taking its number over closes it), so the number the embedder keeps
    /// out of the program's way stays the driver's.
    fn replace_ring(&self, ring: &mut Ring, new: Ring) {
        // No reader of the old ring's counters may outlive its mappings (`idle`).
        let fresh = Box::into_raw(Box::new(new.counters()));
        let stale = self.counters.swap(std::ptr::null_mut(), Ordering::SeqCst);
        while self.counter_readers.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        if !stale.is_null() {
            // SAFETY: made by `Box::into_raw` and no longer reachable by any reader.
            drop(unsafe { Box::from_raw(stale) });
        }
        let mut old = std::mem::replace(ring, new);
        let num = old.fd;
        old.fd = -1;
        // The sleep number stays the driver's: it goes to the new ring, at once unless the
        // old ring's owner may be about to enter it (then that owner moves it when it
        // wakes, and the old ring lives until then).
        let sleep = std::mem::replace(&mut old.sleep_fd, -1);
        if sleep >= 0 {
            if old.owner_asleep {
                if ring.sleep_fd >= 0 {
                    let _ = sys::close(ring.sleep_fd);
                }
                ring.sleep_fd = sleep;
            } else {
                ring.take_sleep_number(sleep);
            }
        } else if ring.sleep_fd >= 0 {
            // A number the embedder was never shown (`own_fds`): the new ring's sleeps
            // make private numbers instead.
            let _ = sys::close(ring.sleep_fd);
            ring.sleep_fd = -1;
        }
        drop(old);
        ring.take_number(num);
        self.ring_fd.store(ring.fd, Ordering::Release);
        self.counters.store(fresh, Ordering::SeqCst);
    }

    /// Arm every registered descriptor that is not left unarmed on `ring` (a new one).
    fn arm_all(&self, ring: &mut Ring) {
        for h in self.registry.all() {
            if !h.unarmed.load(Ordering::Acquire) {
                note_armer(&h);
                let _ = ring.submit(&polls(&h, h.token.load(Ordering::Acquire)));
            }
            if h.moved[0].load(Ordering::Acquire) != 0 {
                for m in &h.moved {
                    m.fetch_or(ARMING, Ordering::AcqRel);
                }
                ring.scratch.moved.push(h);
                self.moved_pending.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Deliver every pending completion as a wakeup (in order, under the ring's mutex so
    /// that concurrent pumps cannot reorder them), except those of `skip`; returns
    /// (objects woken, whether a poll of `skip` ended without being armed: not pollable).
    fn pump_locked(&self, ring: &mut Ring, skip: u64) -> (usize, bool) {
        let Scratch {
            mut moved,
            mut cqes,
            mut hosts,
            mut rearm,
        } = std::mem::take(&mut ring.scratch);
        // Before the first reap moves the head (see `idle`).
        self.pumping.fetch_add(1, Ordering::SeqCst);
        // Moved objects armed before this pump (a switch to shared mode) or by it: their
        // arming reports are delivered now, after which the flag goes (below).
        let mut woken = 0;
        let mut skip_ended = false;
        ring.skipped_bits = 0;
        // Polls armed again in this pump report at once (their arming report is the
        // wakeup that replaces those missed): a second round delivers them.
        for _round in 0..2 {
            ring.run_task_work();
            loop {
                cqes.clear();
                ring.reap(&mut cqes);
                if cqes.is_empty() {
                    if ring.overflowed() && ring.enter(0, IORING_ENTER_GETEVENTS).is_ok() {
                        ring.reap(&mut cqes);
                    }
                    if cqes.is_empty() {
                        break;
                    }
                }
                // A kept sleep poll that ended is armed again at the next sleep.
                for c in &cqes {
                    if c.flags & IORING_CQE_F_MORE == 0 {
                        if let Some(i) = c.user_data.checked_sub(SLEEP_BASE) {
                            if let Some(p) = ring.sleep_polls.get_mut(i as usize) {
                                p.1 = false;
                            }
                        }
                    }
                }
                hosts.clear();
                self.registry.resolve(
                    cqes.iter()
                        .map(|c| c.user_data)
                        .enumerate()
                        .filter(|(_, t)| !is_mark(*t))
                        .map(|(pos, t)| (pos, t & !OUT_POLL)),
                    &mut hosts,
                );
                for (pos, h) in &hosts {
                    let c = cqes[*pos];
                    let token = c.user_data & !OUT_POLL;
                    let class = usize::from(c.user_data & OUT_POLL != 0);
                    let ended = c.flags & IORING_CQE_F_MORE == 0;
                    if token != h.token.load(Ordering::Acquire) {
                        // A poll replaced by another (`adopt`: the token's epoch bit moved
                        // on): what it reports now the new poll reports too, or stood for
                        // with its arming report; its end (the cancellation) re-arms nothing.
                        continue;
                    }
                    let prev_state = if c.res > 0 {
                        h.swap_state(class, c.res as u32 & STATE_BITS)
                    } else {
                        0
                    };
                    if token == skip || skip == SKIP_ALL {
                        skip_ended |= ended;
                        if c.res > 0 {
                            ring.skipped_bits |= c.res as u32;
                        }
                        continue;
                    }
                    // The file changed since any arming answer (see `HostFd::set_answer`).
                    h.drop_answer();
                    let mut bits = if c.res > 0 { c.res as u32 } else { 0 };
                    let was = h.moved[class].load(Ordering::Acquire);
                    if was & ARMING != 0 && bits & !was & !(MOVED | ARMING) == 0 && !level_moved(h)
                    {
                        // The arming report of a poll moved off an exiting thread: a wakeup
                        // for what the file gained meanwhile only, or if its activity level
                        // moved (a write that left the bits as they were).
                        bits = 0;
                    } else if was & (MOVED | ARMING) == MOVED && bits != 0 {
                        // A wakeup of the old poll, delivered: the level the new poll's
                        // arming report is compared with starts here.
                        let level = sys::activity_level(h.fd()).unwrap_or(u64::MAX);
                        h.moved_level.store(level, Ordering::Release);
                    }
                    if bits != 0 {
                        let socket = h.socket.load(Ordering::Relaxed);
                        let key = wake_key(bits, socket, class == 0, prev_state);
                        // A state change completes both polls: the input poll's completion
                        // (it watches every state bit) is the one delivered. One that
                        // `wake_keyless` passes on in its place is not delivered here.
                        let absorbed = !ring.absorb.is_empty() && ring.absorb.contains(&token);
                        if !absorbed
                            && (class == 0 || key != 0 || bits & STATE_BITS & !prev_state == 0)
                        {
                            h.notify(key);
                            woken += 1;
                        }
                    }
                    // Ended while registered: the completion queue was full (res > 0) or the
                    // thread that armed it exited (ECANCELED). Other errors (the number is
                    // gone) end the watch.
                    if ended && (c.res > 0 || c.res == -libc::ECANCELED) {
                        note_armer_class(h, class);
                        rearm.push(poll_add(h.fd(), token, class));
                        if was & MOVED != 0 {
                            h.moved[class].store(was | ARMING, Ordering::Release);
                            moved.push(h.clone());
                        }
                    }
                }
            }
            // The re-arming report (the mask, if ready) is a wakeup: wakeups missed meanwhile
            // are replaced by one, never lost.
            if rearm.is_empty() {
                break;
            }
            for chunk in rearm.chunks(SQ_ENTRIES as usize) {
                let _ = ring.submit(chunk);
            }
            rearm.clear();
        }
        for h in moved.drain(..) {
            for m in &h.moved {
                m.store(0, Ordering::Release);
            }
        }
        self.moved_pending.store(false, Ordering::SeqCst);
        // After the last delivery.
        self.pumping.fetch_sub(1, Ordering::SeqCst);
        cqes.clear();
        hosts.clear();
        rearm.clear();
        ring.scratch = Scratch {
            moved,
            cqes,
            hosts,
            rearm,
        };
        (woken, skip_ended)
    }
}

impl UringDriver {
    /// Owned mode's sleep (the owner only; `None`: not owned any more, or the ring cannot
    /// take the sleep polls — sleep in `ppoll` instead). Queued work of an owned ring wakes
    /// only a thread waiting in `io_uring_enter(2)` for completions: the owner waits there,
    /// with polls of `extra` (its doorbell) and of the driver's wakeup eventfd (a switch to
    /// shared mode writes it) on the ring, so that either wakes it too. The polls of the
    /// driver's own eventfds stay armed between sleeps (edge-triggered multishot,
    /// `Ring::sleep_polls`): a sleep is one `io_uring_enter`, where arming and taking off
    /// one-shot polls made it seven — nginx's workers, 0.3–0.5 sleeps per request, went
    /// from 21.3 to 17.0 system calls per request with the `close` fix of the same day
    /// (`scripts/syscalls-per-request.sh`) — and a private number made and closed for each
    /// sleep (`fcntl`, `close`) nine: it is the ring's sleep number now, made once
    /// (`Ring::sleep_fd`; 17.9 to 16.3 system calls per request, two alternated runs each,
    /// 2026-12-06). It never
    /// depends on an eventfd registered with the ring: such an eventfd is signalled late (a
    /// grace period of RCU later, 10-25 ms here) or never again, when the wakeup comes
    /// from inside another eventfd's write (issue 12, finding 1: `mio::Waker`,
    /// `uv_async_send`).
    fn block_owned(
        &self,
        extra: &[i32],
        probes: &[libc::pollfd],
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
    ) -> Option<SysResult<()>> {
        let (fd, private, id, one_shot) = {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if !ring.owned() || self.owner.load(Ordering::Acquire) != current_tid() {
                return None;
            }
            if ring.pending() {
                return Some(Ok(())); // the caller pumps
            }
            // The ring under a number of its own, the sleep number: a switch to shared mode
            // while this thread sleeps puts another ring under the driver's number, but
            // leaves the sleep number to this ring until this thread is awake again
            // (`owner_asleep`). Without one, a private number made for this sleep.
            let (fd, private) = if ring.sleep_fd >= 0 {
                (ring.sleep_fd, false)
            } else {
                let fd = sys::fcntl(
                    ring.fd,
                    libc::F_DUPFD_CLOEXEC,
                    libc::c_long::from(self.hidden_base.max(0)),
                )
                .ok()?;
                (fd, true)
            };
            // The driver's wakeup eventfd and the waiters' own keep a multishot poll armed
            // between sleeps (their files live as long as the driver; a write while the
            // owner is awake only posts a completion the next pump drops); any other
            // descriptor gets a one-shot poll, taken off after the sleep (it holds the file).
            let wake = self.wake_fd.load(Ordering::Acquire);
            let kept = self.sleep_fds.lock().unwrap_or_else(|e| e.into_inner());
            let mut sqes = Vec::new();
            let mut one_shot = 0u64;
            // The probes are one-shot polls for their own bits (their state after the
            // sleep is not reported: the caller asks `poll(2)`).
            let probes = probes.iter().map(|p| (p.fd, p.events as u16 as u32));
            for (f, bits) in std::iter::once(wake)
                .filter(|&w| w >= 0)
                .chain(extra.iter().copied())
                .map(|f| (f, libc::POLLIN as u32))
                .chain(probes)
            {
                let keep = bits == libc::POLLIN as u32 && (f == wake || kept.contains(&f));
                let slot = ring.sleep_polls.iter().position(|&(x, _)| x == f);
                let slot = match slot {
                    Some(i) => Some(i),
                    None if keep && ring.sleep_polls.len() < KEPT_SLEEP_POLLS => {
                        ring.sleep_polls.push((f, false));
                        Some(ring.sleep_polls.len() - 1)
                    }
                    None => None,
                };
                match slot {
                    Some(i) if keep => {
                        if !ring.sleep_polls[i].1 {
                            ring.sleep_polls[i].1 = true;
                            sqes.push(Sqe {
                                opcode: IORING_OP_POLL_ADD,
                                fd: f,
                                len: IORING_POLL_ADD_MULTI,
                                // Edge-triggered: one completion per write (level would
                                // post again and again while the count is not read).
                                op_flags: libc::POLLIN as u32 | libc::EPOLLET as u32,
                                user_data: SLEEP_BASE + i as u64,
                                ..Sqe::default()
                            });
                        }
                    }
                    _ => {
                        sqes.push(Sqe {
                            opcode: IORING_OP_POLL_ADD,
                            fd: f,
                            op_flags: bits,
                            user_data: SLEEP_BASE + ONE_SHOT_SLEEP + one_shot,
                            ..Sqe::default()
                        });
                        one_shot += 1;
                    }
                }
            }
            drop(kept);
            if !sqes.is_empty() && ring.submit(&sqes).is_err() {
                for p in &mut ring.sleep_polls {
                    p.1 = false; // not known to be armed: armed again next time
                }
                if private {
                    let _ = sys::close(fd);
                }
                return None;
            }
            ring.owner_asleep = !private;
            (fd, private, ring.id, one_shot)
        };
        let r = enter_wait(fd, timeout, sigmask);
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if ring.id == id {
                ring.owner_asleep = false;
            } else if !private {
                // Replaced while this thread slept (`owner_asleep`), so the sleep number was
                // left to the old ring: it leaves it (freeing it, with its polls) for the
                // ring now in place.
                let num = ring.sleep_fd;
                ring.take_sleep_number(num);
            }
            if one_shot > 0 && ring.id == id {
                // Take the one-shot sleep polls off (they hold their files); the removals
                // complete in this thread's task work, run now. Their completions are
                // ignored.
                let removals: Vec<Sqe> = (0..one_shot)
                    .map(|j| Sqe {
                        opcode: IORING_OP_POLL_REMOVE,
                        fd: -1,
                        addr: SLEEP_BASE + ONE_SHOT_SLEEP + j,
                        user_data: REMOVE_MARK,
                        ..Sqe::default()
                    })
                    .collect();
                if ring.submit(&removals).is_ok() {
                    ring.drain_task_work();
                }
            }
            // Otherwise the ring was replaced: the sleep number has left it above, or
            // closing the private number below frees it, with its polls.
        }
        if private {
            let _ = sys::close(fd);
        }
        Some(match r {
            Err(Errno::EINTR) => Err(Errno::EINTR),
            _ => Ok(()),
        })
    }
}

/// `io_uring_enter(2)` on ring `fd`: wait until a completion is posted, `timeout` passes
/// (`ETIME`) or a signal arrives (`EINTR`), with `sigmask` (a kernel signal set) applied
/// meanwhile. Queued task work of an owned ring is run while waiting.
fn enter_wait(
    fd: i32,
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> SysResult<()> {
    let ts = timeout.map(sys::timespec);
    let arg = GetEventsArg {
        sigmask: sigmask.map_or(0, |m| m as u64),
        sigmask_sz: 8, // the kernel's sigset_t (_NSIG / 8)
        min_wait_usec: 0,
        ts: ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64),
    };
    // SAFETY: `arg` and the timespec it points to live across the call; the signal set is
    // the caller's (a valid kernel sigset_t, or none).
    let r = unsafe {
        crate::raw_syscall!(
            libc::SYS_io_uring_enter,
            fd,
            0u32,
            1u32,
            IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
            &arg as *const GetEventsArg,
            std::mem::size_of::<GetEventsArg>(),
        )
    };
    if r < 0 {
        Err(sys::last_errno())
    } else {
        Ok(())
    }
}

impl Driver for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::IoUring
    }

    fn pumps_on_register(&self) -> bool {
        true // the pump that drops the registration's report delivers the rest
    }

    fn register(&self, host: &Arc<HostFd>) -> SysResult<()> {
        let fd = host.fd();
        // A file without poll support (most regular files, directories) is refused below,
        // when its poll ends at once, as Linux's epoll refuses it (EPERM); a regular file
        // that can be polled (`/proc/self/mounts`, cgroup and sysfs files) is accepted.
        let st = sys::fstat(fd)?;
        let _ = host.identity.set(sys::identity(&st));
        host.socket.store(
            st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
            Ordering::Relaxed,
        );
        host.note_mode(st.st_mode);
        // The ring first: a switch to shared mode arms what is registered before this.
        let mut ring = self.lock();
        let token = self.registry.insert(host, sys::own_identity(&st));
        host.token.store(token, Ordering::Release);
        // Deliver what is pending first: only the arming reports of these polls are dropped.
        self.pump_locked(&mut ring, NO_SKIP);
        note_armer(host);
        if let Err(e) = ring.submit_run(&polls(host, token)) {
            self.registry.remove(token);
            return Err(e);
        }
        // The arming report (the descriptor was ready) is not a wakeup: whoever adds an
        // engine item polls the object itself — and takes the report's mask as the answer
        // to that poll, in an embedder's ctl (`crate::host_fd::answer`): the submission's
        // own entry ran the task work that posts it (`Ring::submit_run`; shared mode: the
        // task work of a submission runs as it returns to user space), so no report means
        // the file was ready for none of the bits of the polls armed. A poll that ended
        // at once has no wait queue to sleep on (a file without poll support): EPERM, as
        // epoll says.
        let (_, ended) = self.pump_locked(&mut ring, token);
        if ended {
            self.registry.remove(token);
            let _ = ring.submit(&removals(host, token));
            return Err(Errno::EPERM);
        }
        host.set_answer(ring.skipped_bits);
        Ok(())
    }

    fn register_unarmed(&self, host: &Arc<HostFd>) -> SysResult<()> {
        let fd = host.fd();
        let st = sys::fstat(fd)?;
        let _ = host.identity.set(sys::identity(&st));
        host.socket.store(
            st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
            Ordering::Relaxed,
        );
        host.note_mode(st.st_mode);
        // The files whose poll would end at once are those epoll refuses: ask a scratch
        // kernel epoll, which keeps no reference to the file once closed.
        if !supports_poll(fd)? {
            return Err(Errno::EPERM);
        }
        // Unarmed before it is in the registry, so that a switch to shared mode
        // (`arm_all`) leaves it alone too.
        host.unarmed.store(true, Ordering::Release);
        let _ring = self.lock();
        let token = self.registry.insert(host, sys::own_identity(&st));
        host.token.store(token, Ordering::Release);
        Ok(())
    }

    fn ensure_armed(&self, host: &HostFd) -> SysResult<()> {
        let mut ring = self.lock();
        if !host.unarmed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let token = host.token.load(Ordering::Acquire);
        // As `register`: deliver what is pending, arm, drop the arming report.
        self.pump_locked(&mut ring, NO_SKIP);
        note_armer(host);
        if let Err(e) = ring.submit_run(&polls(host, token)) {
            host.unarmed.store(true, Ordering::Release);
            return Err(e);
        }
        self.pump_locked(&mut ring, token);
        Ok(())
    }

    /// A key-less wakeup completes each armed poll whose direction the file is ready for
    /// (the kernel runs a poll's wakeup whatever its key, then asks the file), with at
    /// least those direction bits as the key (`wake_key`: a socket's widened; no key at
    /// all when a state bit is new). The completions of polls the calling thread armed
    /// (or of an owned ring, whose work a pump runs) are posted by now: a pump takes them
    /// as this wakeup (their state recorded, nothing delivered) and delivers the host's
    /// other wakeups, then each object is woken without a key, in order — the order of
    /// Linux's wakeups (a peer's completion delivered first would put its items ahead of
    /// the socket's). The completions of polls another thread armed come when that thread
    /// runs its task work: the items they will reach are told from the file's mask now
    /// (one `ppoll`) and left to them, the others woken here. An object woken since the
    /// call began (by another thread's pump) has had the items its key named woken.
    fn wake_keyless(&self, hosts: &[(Arc<HostFd>, u64)]) {
        let posted: smallvec::SmallVec<[bool; 4]> =
            hosts.iter().map(|(h, _)| self.relay_delivers(h)).collect();
        {
            let mut ring = self.lock();
            ring.absorb.clear();
            for ((h, _), posted) in hosts.iter().zip(&posted) {
                if *posted {
                    ring.absorb.push(h.token.load(Ordering::Acquire));
                }
            }
            self.pump_locked(&mut ring, NO_SKIP);
            ring.absorb.clear();
        }
        for ((h, count), posted) in hosts.iter().zip(posted) {
            let covered = if h.wakeups() != *count {
                match h.last_key() {
                    0 => continue,
                    key => key,
                }
            } else if posted {
                0
            } else {
                keyless_coverage(h, sys::poll_mask(h.fd()))
            };
            h.notify_uncovered(0, covered);
        }
    }

    fn watch_out(&self, host: &HostFd) -> SysResult<()> {
        let mut ring = self.lock();
        // Under the ring's mutex, as every token read that becomes a submission: `adopt`
        // changes it under the same mutex.
        let token = host.token.load(Ordering::Acquire);
        // Deliver what is pending first: only the arming report of the new poll is dropped.
        self.pump_locked(&mut ring, NO_SKIP);
        note_armer_class(host, 1);
        ring.submit_run(&[poll_add(host.fd(), token, 1)])?;
        self.pump_locked(&mut ring, token);
        Ok(())
    }

    fn deregister(&self, host: &HostFd) {
        let ring = self.lock();
        let token = host.token.load(Ordering::Acquire);
        self.registry.remove(token);
        // Now: the polls hold a reference to the file, which a close by the program must
        // be able to release (see `poll_cancel` for when the kernel lets go of it). In
        // owned mode the cancelled polls are freed by deferred task work: run it, in the
        // submission's own entry ([`Ring::submit_run`]); completions it posts wait in the
        // ring.
        let _ = ring.submit_run(&removals(host, token));
    }

    fn pump(&self) -> usize {
        if self.idle() {
            return 0;
        }
        let mut ring = self.lock();
        self.pump_locked(&mut ring, NO_SKIP).0
    }

    fn relayable(&self) -> bool {
        true
    }

    /// Every poll of `host` armed by the calling thread, on a shared ring or on one it
    /// owns: see `relay`, "io_uring", for why its pump then delivers what its relay
    /// reported.
    fn relay_delivers(&self, host: &HostFd) -> bool {
        let me = current_tid();
        let owner = self.owner.load(Ordering::Acquire);
        (owner == 0 || owner == me)
            && !host.unarmed.load(Ordering::Acquire)
            && host.armer[0].load(Ordering::Acquire) == me
            && (!host.out.load(Ordering::Acquire) || host.armer[1].load(Ordering::Acquire) == me)
    }

    /// Take over, for the calling thread, the polls another thread armed of each of
    /// `hosts` whose file is ready for none of the bits they watch (shared mode only: an
    /// owned ring has only its owner's polls). A new poll is armed from this thread under
    /// the descriptor's token with its epoch bit flipped, then the old one cancelled, in
    /// one submission; from the flip on, under the ring's mutex, a pump drops whatever the
    /// old poll reports (see `pump_locked`). Why nothing is lost or invented:
    ///
    /// - what the old poll posted before the flip is delivered by the pump made first;
    /// - a wakeup whose completion it had not posted yet (queued as its armer's task work,
    ///   which the cancellation then ends without a report) came before the file was
    ///   found ready for nothing: whatever it made ready was taken back by then, so Linux's
    ///   callback would have put an item on a ready list whose harvest polls and reports
    ///   nothing — what this driver already gives for a wakeup whose task work is late;
    /// - one between that look and the new poll's arming left the file ready (or was taken
    ///   back, as above): the arming report, delivered as a wakeup, stands for it (the file
    ///   was ready for nothing before, so the report is new bits, never a repeat);
    /// - one after the arming is the new poll's, once (the old poll's report of it, until
    ///   the cancellation lands, is dropped).
    ///
    /// Each descriptor is taken over at most `MAX_ADOPTIONS` times, so that two threads
    /// that each wait on an instance of it cannot pass its polls back and forth.
    fn adopt(&self, hosts: &[Arc<HostFd>]) -> usize {
        let mut ring = self.lock();
        if self.owner.load(Ordering::Acquire) != 0 {
            return 0;
        }
        self.pump_locked(&mut ring, NO_SKIP);
        let mut taken = 0;
        for h in hosts {
            let out = h.out.load(Ordering::Acquire);
            // Unarmed, or already this thread's; an output poll watched but not armed yet
            // (`watch_out` is about to) is left to it.
            if h.unarmed.load(Ordering::Acquire)
                || self.relay_delivers(h)
                || (out && h.armer[1].load(Ordering::Acquire) == 0)
                || h.adoptions.load(Ordering::Relaxed) >= MAX_ADOPTIONS
            {
                continue;
            }
            let watched = CLASSES[0] | if out { CLASSES[1] } else { 0 };
            let mask = sys::poll_mask(h.fd());
            if mask & (watched | libc::POLLNVAL as u32) != 0 {
                continue;
            }
            h.adoptions.fetch_add(1, Ordering::Relaxed);
            let old = h.token.load(Ordering::Acquire);
            let new = old ^ TOKEN_EPOCH;
            let armers = [0, 1].map(|c| h.armer[c].load(Ordering::Acquire));
            h.token.store(new, Ordering::Release);
            note_armer(h);
            let mut sqes = polls(h, new);
            sqes.extend(removals(h, old));
            if ring.submit(&sqes).is_err() {
                // Not taken (nothing was submitted): the old polls stay, as they were.
                h.token.store(old, Ordering::Release);
                for (a, was) in h.armer.iter().zip(armers) {
                    a.store(was, Ordering::Release);
                }
                continue;
            }
            taken += 1;
        }
        taken
    }

    fn notify_fds(&self, out: &mut Vec<libc::pollfd>) {
        if self.owner.load(Ordering::Acquire) != 0 {
            // Owned mode: queued work makes nothing readable that `ppoll` could wait on
            // (see `block_owned`), so a caller that must sleep in `ppoll` (a `poll` or
            // `select` on an instance) switches the driver to shared mode.
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if self.owner.load(Ordering::Acquire) != 0 {
                self.share(&mut ring);
            }
        }
        out.push(libc::pollfd {
            fd: self.ring_fd.load(Ordering::Acquire),
            events: libc::POLLIN,
            revents: 0,
        });
    }

    fn note_sleep_fd(&self, fd: i32) {
        let mut v = self.sleep_fds.lock().unwrap_or_else(|e| e.into_inner());
        if !v.contains(&fd) {
            v.push(fd);
        }
    }

    fn block(
        &self,
        extra: &[i32],
        probes: &mut [libc::pollfd],
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
    ) -> SysResult<bool> {
        if self.owner.load(Ordering::Acquire) == current_tid() {
            if let Some(r) = self.block_owned(extra, probes, timeout, sigmask) {
                return r.map(|()| false);
            }
        }
        super::block_in_ppoll(self, extra, probes, timeout, sigmask)
    }

    fn after_fork_child(&self) {
        // The ring is shared with the parent (its polls are the parent's): make our own
        // (owned by this thread, the child's only one, when allowed) under the same
        // numbers, and arm every live descriptor on it.
        TID.with(|t| t.set(0));
        self.owner.store(0, Ordering::Release);
        let Ok((new, efd)) = Self::make_ring(self.hidden_base, self.owned_allowed) else {
            return;
        };
        let mut ring = self.lock();
        // No thread of the parent sleeps here: the sleep number goes to the new ring now.
        ring.owner_asleep = false;
        // Unmap the child's view of the parent's ring; its numbers are taken over.
        self.replace_ring(&mut ring, new);
        let old_efd = self.wake_fd.load(Ordering::Acquire);
        let efd = match (old_efd >= 0, efd >= 0) {
            // The same number, now for the child's own eventfd (registered by file).
            (true, true) if sys::dup3(efd, old_efd, libc::O_CLOEXEC).is_ok() => {
                let _ = sys::close(efd);
                old_efd
            }
            (true, true) => {
                let _ = sys::close(old_efd);
                efd
            }
            // Keep whichever exists (an inherited one unused in shared mode stays open).
            _ => efd.max(old_efd),
        };
        self.wake_fd.store(efd, Ordering::Release);
        if ring.owned() {
            self.owner.store(current_tid(), Ordering::Release);
        }
        // Only what an item watches is armed now: an armed poll holds its file, and a
        // child's ring is torn down some milliseconds after the child exits, so the files
        // of polls it did not need would outlive the child (a pipe's reader would see the
        // writer's hang-up late). The others are armed when an item asks (`ensure_armed`).
        for h in self.registry.all() {
            // The parent's threads armed the polls (and their numbers may come again here).
            forget_armer(&h);
            if !h.watched() {
                h.unarmed.store(true, Ordering::Release);
            }
        }
        self.arm_all(&mut ring);
        // Drop the reports of the re-arming (posted by task work in owned mode): the ready
        // lists copied from the parent already say what was ready.
        ring.run_task_work();
        let mut cqes = Vec::new();
        ring.reap(&mut cqes);
    }

    fn thread_exiting(&self, tid: i32) {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let owner = self.owner.load(Ordering::Acquire);
        if owner == tid {
            // Owned mode: run the work queued for the ring (wakeups become completions,
            // delivered at the next pump), then leave the ring to the next caller, which
            // switches to shared mode and arms every descriptor again, from a live thread.
            ring.drain_task_work();
            for h in self.registry.all() {
                mark_moved(&h);
                forget_armer(&h);
            }
            self.owner.store(ORPHANED, Ordering::Release);
            return;
        }
        if owner != 0 {
            return;
        }
        // Shared mode: the kernel would deliver the wakeups of this thread's polls through
        // it, and after its exit cancel them only some milliseconds after their next
        // wakeup (issue 12, finding 7). Cancel them now, and run the cancellations: the
        // next pump, in whichever thread, sees them end and arms them again; their
        // arming report stands for a wakeup in between.
        //
        // First run this thread's queued task work: a wakeup that came since its last
        // entry into the kernel (another thread's write while this one returned from a
        // wait that timed out) becomes a completion now, before the mask and activity
        // level are recorded; cancelled, it would be eaten by the cancellation. A wakeup
        // after the recording and before the new poll is armed is stood for by the new
        // poll's arming report when it moved the mask or the level (see `level_moved`).
        let _ = ring.enter(0, IORING_ENTER_GETEVENTS);
        let mine: Vec<Sqe> = self
            .registry
            .all()
            .iter()
            .filter(|h| h.armer.iter().any(|a| a.load(Ordering::Acquire) == tid))
            .flat_map(|h| {
                mark_moved(h);
                // The next pump arms them again (and records its thread).
                forget_armer(h);
                removals(h, h.token.load(Ordering::Acquire))
            })
            .collect();
        if mine.is_empty() {
            return;
        }
        for chunk in mine.chunks(SQ_ENTRIES as usize) {
            let _ = ring.submit(chunk);
        }
        ring.drain_task_work();
    }

    fn sleep_probes(&self) -> bool {
        // The owner sleeps in `io_uring_enter` (`block_owned`): a probe is a one-shot poll,
        // set up and taken off around the sleep, whose completion tells no mask.
        self.owner.load(Ordering::Acquire) != current_tid()
    }

    fn mode(&self) -> &'static str {
        if self.owner.load(Ordering::Acquire) != 0 {
            "owned"
        } else {
            "shared"
        }
    }

    fn registered_file(&self, file: (u64, u64), out: &mut Vec<Arc<HostFd>>) {
        self.registry.by_file(file, out);
    }

    fn own_fds(&self, out: &mut Vec<i32>) {
        out.push(self.ring_fd.load(Ordering::Acquire));
        let sleep = self.ring.lock().unwrap_or_else(|e| e.into_inner()).sleep_fd;
        if sleep >= 0 {
            out.push(sleep);
        }
        let efd = self.wake_fd.load(Ordering::Acquire);
        if efd >= 0 {
            out.push(efd);
        }
    }

    /// Device and inode: the armed poll keeps the registered file alive, so no other file
    /// can have its identity while it is registered.
    fn still_registered(&self, host: &HostFd, fd: i32) -> Option<bool> {
        let st = sys::fstat(fd).ok()?;
        Some(host.identity.get() == Some(&sys::identity(&st)))
    }
}
