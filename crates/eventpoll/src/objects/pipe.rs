//! Pipes, modelled on Linux 6.x `fs/pipe.c`: a ring of page-sized buffers, two wait queues,
//! and the same merging, atomicity and wakeup rules, so that epoll (edge-triggered above all)
//! sees exactly what it sees on the kernel.
//!
//! # The model
//!
//! - The data lives in a ring of at most `max_usage` *slots* (16 by default), each holding up
//!   to one page ([`PAGE_SIZE`], 4096 bytes) with a read offset. Capacity is counted in slots,
//!   not bytes: 65,536 one-byte writes fill a pipe (they merge), but only 640 hundred-byte
//!   writes do (40 per page, since a write merges into the last slot only when it fits there
//!   *whole*).
//! - A write first puts its remainder (`len % 4096` bytes) into the last, partly filled slot,
//!   when the pipe is not empty and the remainder fits behind that slot's data (the slot's
//!   read offset counts: space freed at its front by reads is not reused); then it fills whole
//!   new slots. Writes of at most [`PIPE_BUF`] bytes are therefore atomic; a non-blocking
//!   write that can write nothing fails with `EAGAIN`, a larger one writes what fits.
//! - The read end and the write end are two objects ([`PipeReader`], [`PipeWriter`]) with
//!   their own wait queues (Linux's `rd_wait` and `wr_wait`), so an epoll item on one end is
//!   woken only by what concerns that end.
//! - Poll: read end `IN|RDNORM` when not empty, `HUP` when no writer is left; write end
//!   `OUT|WRNORM` when a slot is free, `ERR` when no reader is left.
//! - Wakeups (the keys decide edge-triggered epoll):
//!   - a write wakes `rd_wait` with `IN|RDNORM` when the pipe was empty, and — once either
//!     end has been polled (Linux's `poll_usage`) — after *every* write, even one that failed
//!     with `EAGAIN` or `EPIPE`; a 0-byte write returns at once and wakes nothing;
//!   - a read wakes `wr_wait` with `OUT|WRNORM` when it frees a slot of a full pipe (Linux
//!     6.14+: a read that leaves the pipe full, or reads from a pipe that was not full, wakes
//!     no writer — measured through the ready-list order of two level-triggered items);
//!   - a blocked writer that got space and a blocked reader that got data pass the wakeup on
//!     to the next blocked writer/reader when space/data remains (exclusive waits);
//!   - releasing the last reader or the last writer (while the other side is still open)
//!     wakes both queues, all entries, with key 0;
//!   - `F_SETPIPE_SZ` wakes one entry of `wr_wait` with key 0.
//!
//! Packet mode (`O_DIRECT`, Linux's "packetized" pipes) is supported for pipes created with
//! it: no merging, and a read consumes at most one buffer, discarding what it did not read.
//! Unlike Linux it is fixed at creation (no `F_SETFL` toggling).
//!
//! ```
//! use eventpoll::objects::pipe::pipe;
//! use eventpoll::{Errno, Events};
//! let (r, w) = pipe(eventpoll::linux::O_NONBLOCK);
//! assert_eq!(w.poll(), Events::OUT | Events::WRNORM);
//! assert_eq!(w.write(b"hello"), Ok(5));
//! assert_eq!(r.poll(), Events::IN | Events::RDNORM);
//! let mut buf = [0u8; 16];
//! assert_eq!(r.read(&mut buf), Ok(5));
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(r.read(&mut buf), Err(Errno::EAGAIN));
//! drop(w); // the last writer is gone
//! assert_eq!(r.poll(), Events::HUP);
//! assert_eq!(r.read(&mut buf), Ok(0));
//! ```

use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_DIRECT, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::prelude::*;
use crate::sync::{lock, Arc, AtomicBool, AtomicU8, Mutex, Ordering};
use crate::table::FdTable;
use crate::wait_queue::{Exclusivity, WaitQueue};
use alloc::collections::VecDeque;

/// The size of one pipe slot (a page).
pub const PAGE_SIZE: usize = 4096;
/// Writes of at most this many bytes are atomic.
pub const PIPE_BUF: usize = 4096;
/// The default number of slots (`PIPE_DEF_BUFFERS`): 64 KiB.
pub const PIPE_DEF_BUFFERS: usize = 16;
/// `/proc/sys/fs/pipe-max-size`: an unprivileged `F_SETPIPE_SZ` may not grow a pipe beyond it.
pub const PIPE_MAX_SIZE: usize = 1 << 20;

/// The bytes of a slot held inline, without an allocation: a small write (the common case:
/// a token, a short message) neither allocates nor frees, and its bytes share the cache line
/// of the slot's bookkeeping (two slots per line; 15 bytes keep the enum at 24 bytes, a
/// Vec's size).
const INLINE_BYTES: usize = 15;

/// A slot's bytes: inline up to [`INLINE_BYTES`], else on the heap (holding only what was
/// written: a page per slot would be a cold line and a cold TLB entry per token with many
/// pipes).
enum SlotData {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Heap(Vec<u8>),
}

impl SlotData {
    fn from_slice(src: &[u8]) -> SlotData {
        if src.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            copy_small(&mut bytes[..src.len()], src);
            SlotData::Inline {
                len: src.len() as u8,
                bytes,
            }
        } else {
            SlotData::Heap(src.to_vec())
        }
    }
    fn as_slice(&self) -> &[u8] {
        match self {
            SlotData::Inline { len, bytes } => &bytes[..*len as usize],
            SlotData::Heap(v) => v,
        }
    }
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// Append `src` (a merge), moving to the heap when it no longer fits inline.
    fn extend_from_slice(&mut self, src: &[u8]) {
        match self {
            SlotData::Inline { len, bytes } if *len as usize + src.len() <= INLINE_BYTES => {
                let at = *len as usize;
                copy_small(&mut bytes[at..at + src.len()], src);
                *len += src.len() as u8;
            }
            SlotData::Inline { len, bytes } => {
                let mut v = Vec::with_capacity(*len as usize + src.len());
                v.extend_from_slice(&bytes[..*len as usize]);
                v.extend_from_slice(src);
                *self = SlotData::Heap(v);
            }
            SlotData::Heap(v) => v.extend_from_slice(src),
        }
    }
}

/// `dst.copy_from_slice(src)`, without a call to `memcpy` for the few bytes of a token (at
/// most 16: two overlapping loads and stores of the widest size that fits), which costs more
/// than the copy itself at those sizes.
#[inline]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 16 || dst.len() != n {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// One slot: up to a page of data, `data[offset..]` not yet read.
struct Buffer {
    data: SlotData,
    /// Bytes already read from the front (at most a page).
    offset: u32,
    /// Packet-mode buffer: never merged into, consumed whole by a read.
    packet: bool,
}

impl Buffer {
    fn remaining(&self) -> usize {
        self.data.len() - self.offset as usize
    }
}

/// A ring's slots in order. The front slot lives inline in the ring: a pipe that holds one
/// message at a time — most pipes under epoll, where a reader drains what it is told is
/// ready — never reaches a second allocation; the deque behind it holds the rest (made at
/// the first second slot and kept). Boxed, so that the ring's hot line holds only its
/// pointer.
#[derive(Default)]
#[repr(C)] // the front slot first: on the line a token touches
struct Slots {
    /// The oldest slot; `None` only when the ring is empty (then `rest` is empty too).
    front: Option<Buffer>,
    // Boxed on purpose: 8 bytes on the ring's hot line instead of a deque's 32, for an
    // allocation made only by a pipe that ever holds two slots.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Buffer>>>,
}

impl Slots {
    fn is_empty(&self) -> bool {
        self.front.is_none()
    }
    fn front_mut(&mut self) -> Option<&mut Buffer> {
        self.front.as_mut()
    }
    fn iter(&self) -> impl Iterator<Item = &Buffer> {
        self.front
            .iter()
            .chain(self.rest.iter().flat_map(|d| d.iter()))
    }
}

/// The pipe's state, under its mutex (Linux's `pipe->mutex`).
#[repr(C)] // hot first (see `Pipe`): the slots, then the counts a token's path reads
pub(super) struct Ring {
    bufs: Slots,
    /// Capacity in slots (Linux's `max_usage`; at most `2^31 / PAGE_SIZE`).
    max_usage: u32,
    /// Slots in use (`bufs`'s length, kept here: reading it does not reach the deque behind
    /// its box, another line, on every token; same 8 bytes as a `usize` capacity would be).
    nr_slots: u32,
    pub(super) readers: usize,
    pub(super) writers: usize,
    /// Opens for reading so far (Linux's `r_counter`; FIFOs wait on it and compare it).
    pub(super) r_counter: u64,
    /// Opens for writing so far (Linux's `w_counter`).
    pub(super) w_counter: u64,
}

impl Ring {
    pub(super) fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
    pub(super) fn is_full(&self) -> bool {
        self.nr_slots >= self.max_usage
    }
    /// The newest slot (the one a write merges into).
    fn back_mut(&mut self) -> Option<&mut Buffer> {
        if self.nr_slots > 1 {
            self.bufs.rest.as_mut().and_then(|d| d.back_mut())
        } else {
            self.bufs.front.as_mut()
        }
    }
    #[inline]
    fn push_back(&mut self, buf: Buffer) {
        if self.nr_slots == 0 {
            self.bufs.front = Some(buf);
        } else {
            self.push_behind(buf);
        }
        self.nr_slots += 1;
    }
    /// A second or later slot: into the deque (made at the first).
    #[inline(never)]
    fn push_behind(&mut self, buf: Buffer) {
        self.bufs
            .rest
            .get_or_insert_with(Default::default)
            .push_back(buf);
    }
    /// Drop the oldest slot (the ring holds one).
    fn pop_front(&mut self) {
        self.nr_slots -= 1;
        self.bufs.front = if self.nr_slots == 0 {
            None
        } else {
            self.bufs.rest.as_mut().and_then(|d| d.pop_front())
        };
    }
    fn readable(&self) -> bool {
        !self.is_empty() || self.writers == 0
    }
    fn writable(&self) -> bool {
        !self.is_full() || self.readers == 0
    }
}

/// The shared pipe (Linux's `pipe_inode_info`).
///
/// The fields are in declaration order (`repr(C)`), hot first: what a token's write, the
/// harvest's poll of the read end and the read touch — the flags, `rd_wait`, the ring's
/// lock, front slot, the deque's pointer and the counts — is the first 128 bytes
/// (`hot_fields_are_two_lines_long`), instead of 152 bytes spread over up to four lines in
/// the compiler's order. The open counters and `wr_wait`, woken only when a full pipe
/// drains, come after. (Aligning the pipe to a line, so that those 128 bytes are exactly two
/// lines, cut cachegrind's misses further but was slower on this machine: 64-byte aligned
/// allocations spread the heap over more pages, and TLB misses are not in cachegrind's
/// model.)
#[repr(C)]
pub(super) struct Pipe {
    /// Set by the first poll of either end; from then on every write wakes the readers.
    pub(super) poll_usage: AtomicBool,
    packet: bool,
    /// What the ends' polls report, published from the ring under its lock whenever the
    /// lock is released (`RingGuard`), so that a poll reads one atomic instead of taking
    /// the lock (Linux's `pipe_poll` reads the ring's head, tail and counts without
    /// `pipe->mutex` too). A poll after a wakeup sees the state the wakeup followed: the
    /// state was published before the lock was released, and the lock released before
    /// the wakeup.
    levels: AtomicU8,
    pub(super) rd_wait: WaitQueue,
    pub(super) ring: Mutex<Ring>,
    pub(super) wr_wait: WaitQueue,
}

/// The read end of a pipe: the shared pipe itself, seen from its read side. Both ends are
/// the same allocation (see `end`): a descriptor's object pointer leads straight to the
/// pipe's state, with no end object to pass through on every token.
#[repr(transparent)]
pub struct PipeReader {
    pipe: Pipe,
}

/// The write end of a pipe: the shared pipe, seen from its write side (as [`PipeReader`]).
#[repr(transparent)]
pub struct PipeWriter {
    pipe: Pipe,
}

/// One side of a pipe: a `repr(transparent)` view of [`Pipe`] whose [`FileOps`] are those of
/// that side.
trait PipeEnd: FileOps {}
impl PipeEnd for PipeReader {}
impl PipeEnd for PipeWriter {}

/// `pipe` seen as end `E`, sharing its allocation and reference count: the open file
/// description's `Arc<dyn FileOps>` then points at the pipe itself.
#[allow(unsafe_code)]
fn end<E: PipeEnd>(pipe: Arc<Pipe>) -> Arc<E> {
    const {
        assert!(core::mem::size_of::<E>() == core::mem::size_of::<Pipe>());
        assert!(core::mem::align_of::<E>() == core::mem::align_of::<Pipe>());
    }
    // SAFETY: `E` is `PipeReader` or `PipeWriter` (the sealed, private `PipeEnd`), each a
    // `repr(transparent)` struct whose only field is a `Pipe`: same size and alignment (the
    // const block checks it) and the same bit validity, so the pointer from
    // `Arc::<Pipe>::into_raw` may be passed to `Arc::<E>::from_raw`, which requires exactly
    // that of a `U` that is not `T`. The `Arc`s of either type share one reference count;
    // whichever drops last runs `E`'s drop glue, which is `Pipe`'s (neither end has a `Drop`
    // of its own), and frees the allocation with the same layout it was made with. Ends
    // only ever give out `&Pipe`, never a `&mut`, so no aliasing rule is at stake.
    unsafe { Arc::from_raw(Arc::into_raw(pipe).cast::<E>()) }
}

impl core::fmt::Debug for PipeReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PipeReader")
            .field("len", &self.pipe.len())
            .finish()
    }
}

impl core::fmt::Debug for PipeWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PipeWriter")
            .field("len", &self.pipe.len())
            .finish()
    }
}

pub(super) const READ_KEY: Events = Events::IN.union(Events::RDNORM);
pub(super) const WRITE_KEY: Events = Events::OUT.union(Events::WRNORM);

/// A new pipe: `(read end, write end)`. `flags` ([`OpenFlags`](crate::OpenFlags), or a raw
/// `i32`) may hold `NONBLOCK` (both descriptions) and `DIRECT` (packet mode); other bits are ignored here (see [`FdTable::pipe2`] for
/// the checked call).
///
/// ```
/// use eventpoll::objects::pipe::pipe;
/// let (r, w) = pipe(0);
/// w.write(b"x").unwrap();
/// let mut b = [0u8; 1];
/// assert_eq!(r.read(&mut b), Ok(1)); // blocking read, data is there
/// ```
///
/// Linux: [pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html).
#[doc(alias = "pipe2")]
pub fn pipe(flags: impl Into<crate::OpenFlags>) -> (File, File) {
    let flags = flags.into().bits();
    // Linux's get_pipe_inode: one reader, one writer, both counters at 1.
    let pipe = Arc::new(Pipe::new(1, flags & O_DIRECT != 0));
    let status = flags & (O_NONBLOCK | O_DIRECT);
    let r = File::with_flags(end::<PipeReader>(pipe.clone()), status);
    let w = File::with_flags(end::<PipeWriter>(pipe), status);
    (r, w)
}

/// The bits of `Pipe::levels`: the ring's state as the ends' polls read it.
struct Levels;

impl Levels {
    const HAS_DATA: u8 = 1;
    const FULL: u8 = 2;
    const NO_WRITERS: u8 = 4;
    const NO_READERS: u8 = 8;

    fn of(ring: &Ring) -> u8 {
        let mut l = 0;
        if !ring.is_empty() {
            l |= Levels::HAS_DATA;
        }
        if ring.is_full() {
            l |= Levels::FULL;
        }
        if ring.writers == 0 {
            l |= Levels::NO_WRITERS;
        }
        if ring.readers == 0 {
            l |= Levels::NO_READERS;
        }
        l
    }
}

/// The pipe's ring, locked: dereferences to the [`Ring`]; when it is released it first
/// publishes the ring's levels for the lockless polls (`Pipe::levels`), still under the
/// lock, so every change made under it is published before anyone can be woken for it.
pub(super) struct RingGuard<'a> {
    ring: crate::sync::MutexGuard<'a, Ring>,
    levels: &'a AtomicU8,
}

impl core::ops::Deref for RingGuard<'_> {
    type Target = Ring;
    fn deref(&self) -> &Ring {
        &self.ring
    }
}

impl core::ops::DerefMut for RingGuard<'_> {
    fn deref_mut(&mut self) -> &mut Ring {
        &mut self.ring
    }
}

impl Drop for RingGuard<'_> {
    fn drop(&mut self) {
        self.levels.store(Levels::of(&self.ring), Ordering::Release);
    }
}

impl Pipe {
    /// Lock the ring (Linux's `pipe->mutex`); the levels are published when it is released.
    pub(super) fn ring(&self) -> RingGuard<'_> {
        RingGuard {
            ring: lock(&self.ring),
            levels: &self.levels,
        }
    }

    /// Mark the pipe as polled (Linux's `poll_usage`): written once, not on every poll, so
    /// that a harvest does not dirty the pipe's line.
    fn note_poll(&self) {
        if !self.poll_usage.load(Ordering::Relaxed) {
            self.poll_usage.store(true, Ordering::Relaxed);
        }
    }

    /// An empty pipe of the default size with `ends` readers and writers (and opens of
    /// each counted).
    pub(super) fn new(ends: usize, packet: bool) -> Pipe {
        Pipe {
            ring: Mutex::new(Ring {
                bufs: Slots::default(),
                max_usage: PIPE_DEF_BUFFERS as u32,
                nr_slots: 0,
                readers: ends,
                writers: ends,
                r_counter: ends as u64,
                w_counter: ends as u64,
            }),
            poll_usage: AtomicBool::new(false),
            packet,
            // Empty; no reader or writer when `ends` is 0 (a FIFO before its first open).
            levels: AtomicU8::new(if ends == 0 {
                Levels::NO_READERS | Levels::NO_WRITERS
            } else {
                0
            }),
            rd_wait: WaitQueue::new(),
            wr_wait: WaitQueue::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ring().bufs.iter().map(Buffer::remaining).sum()
    }

    /// Linux's `pipe_read`.
    pub(super) fn read(&self, dst: &mut [u8], nonblock: bool) -> Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        let mut ring = self.ring();
        // The common case first: one slot, read whole (a token). What the loop below does
        // for it, without the loop: the slot is copied and freed, the pipe is then empty
        // (no next reader to wake), and a writer is woken if the pipe was full.
        if ring.nr_slots == 1 && !self.packet {
            if let Some(buf) = ring.bufs.front.as_ref() {
                let chars = buf.remaining();
                if chars != 0 && chars <= dst.len() {
                    let at = buf.offset as usize;
                    copy_small(&mut dst[..chars], &buf.data.as_slice()[at..at + chars]);
                    let wake_writer = ring.is_full();
                    ring.pop_front();
                    drop(ring);
                    if wake_writer {
                        self.wr_wait.wake(WRITE_KEY);
                    }
                    return Ok(chars);
                }
            }
        }
        // Writers are woken only when this read frees a slot of a full pipe (Linux 6.14+;
        // measured on 6.18: a read that leaves the pipe full wakes no writer).
        let mut wake_writer = false;
        let mut wake_next_reader = false;
        let mut n = 0;
        let mut err = None;
        loop {
            while let Some(buf) = ring.bufs.front_mut() {
                let chars = buf.remaining().min(dst.len() - n);
                let at = buf.offset as usize;
                copy_small(&mut dst[n..n + chars], &buf.data.as_slice()[at..at + chars]);
                buf.offset += chars as u32;
                n += chars;
                if buf.packet || buf.remaining() == 0 {
                    wake_writer |= ring.is_full();
                    ring.pop_front();
                    if self.packet {
                        break;
                    }
                }
                if n == dst.len() {
                    break;
                }
            }
            if n == dst.len() || (self.packet && n > 0) {
                break;
            }
            if ring.writers == 0 || n > 0 {
                break;
            }
            if nonblock {
                err = Some(Errno::EAGAIN);
                break;
            }
            drop(ring);
            if wake_writer {
                self.wr_wait.wake(WRITE_KEY);
            }
            wake_writer = false;
            let waited = self.rd_wait.block_until(Exclusivity::Exclusive, None, || {
                self.ring().readable().then_some(())
            });
            // Interrupted: nothing was read and the wakeups are done, return at once
            // (Linux's -ERESTARTSYS).
            waited?;
            ring = self.ring();
            wake_next_reader = true;
        }
        if ring.is_empty() {
            wake_next_reader = false;
        }
        drop(ring);
        if wake_writer {
            self.wr_wait.wake(WRITE_KEY);
        }
        if wake_next_reader {
            self.rd_wait.wake(READ_KEY);
        }
        err.map_or(Ok(n), Err)
    }

    /// Linux's `pipe_write`.
    pub(super) fn write(&self, src: &[u8], nonblock: bool) -> Result<usize> {
        if src.is_empty() {
            return Ok(0);
        }
        let mut ring = self.ring();
        // The common case first: a write shorter than a page that merges into the last slot
        // or fits in a new one. What the general code below does for it, without its loop:
        // the bytes go in whole, no writer is next, the readers are woken as below.
        if ring.readers != 0 && src.len() < PAGE_SIZE {
            let was_empty = ring.is_empty();
            let merged = !was_empty
                && match ring.back_mut() {
                    Some(last) if !last.packet && last.data.len() + src.len() <= PAGE_SIZE => {
                        last.data.extend_from_slice(src);
                        true
                    }
                    _ => false,
                };
            if merged || !ring.is_full() {
                if !merged {
                    ring.push_back(Buffer {
                        data: SlotData::from_slice(src),
                        offset: 0,
                        packet: self.packet,
                    });
                }
                drop(ring);
                if was_empty || self.poll_usage.load(Ordering::Relaxed) {
                    self.wr_wake_readers();
                }
                return Ok(src.len());
            }
        }
        let mut was_empty = false;
        let mut wake_next_writer = false;
        let mut n = 0;
        let mut err = None;
        'out: {
            if ring.readers == 0 {
                err = Some(Errno::EPIPE);
                break 'out;
            }
            was_empty = ring.is_empty();
            // Merge the remainder into the last slot when it fits there whole.
            let chars = src.len() % PAGE_SIZE;
            if chars != 0 && !was_empty {
                if let Some(last) = ring.back_mut() {
                    if !last.packet && last.data.len() + chars <= PAGE_SIZE {
                        last.data.extend_from_slice(&src[..chars]);
                        n = chars;
                        if n == src.len() {
                            break 'out;
                        }
                    }
                }
            }
            loop {
                if ring.readers == 0 {
                    if n == 0 {
                        err = Some(Errno::EPIPE);
                    }
                    break;
                }
                if !ring.is_full() {
                    let chars = (src.len() - n).min(PAGE_SIZE);
                    // A slot counts as a page, but holds only what was written (see
                    // `SlotData`: small writes inline, no allocation).
                    let data = SlotData::from_slice(&src[n..n + chars]);
                    ring.push_back(Buffer {
                        data,
                        offset: 0,
                        packet: self.packet,
                    });
                    n += chars;
                    if n == src.len() {
                        break;
                    }
                    continue;
                }
                if nonblock {
                    if n == 0 {
                        err = Some(Errno::EAGAIN);
                    }
                    break;
                }
                drop(ring);
                if was_empty {
                    self.wr_wake_readers();
                }
                let waited = self.wr_wait.block_until(Exclusivity::Exclusive, None, || {
                    self.ring().writable().then_some(())
                });
                ring = self.ring();
                was_empty = ring.is_empty();
                wake_next_writer = true;
                if let Err(e) = waited {
                    // Interrupted: report what was written, or EINTR.
                    if n == 0 {
                        err = Some(e);
                    }
                    break;
                }
            }
        }
        if ring.is_full() {
            wake_next_writer = false;
        }
        drop(ring);
        // "Epoll nonsensically wants a wakeup whether the pipe was already empty or not."
        if was_empty || self.poll_usage.load(Ordering::Relaxed) {
            self.wr_wake_readers();
        }
        if wake_next_writer {
            self.wr_wait.wake(WRITE_KEY);
        }
        err.map_or(Ok(n), Err)
    }

    fn wr_wake_readers(&self) {
        self.rd_wait.wake(READ_KEY);
    }

    /// Linux's `pipe_set_size` for an unprivileged process.
    pub(super) fn set_size(&self, size: i32) -> Result<i32> {
        let arg = size as u32;
        // round_pipe_size: > 2^31 is invalid, below a page is one page, else a power of two.
        if arg > 1 << 31 {
            return Err(Errno::EINVAL);
        }
        let bytes = (arg as usize).max(PAGE_SIZE).next_power_of_two();
        let nr_slots = bytes / PAGE_SIZE;
        {
            let mut ring = self.ring();
            if nr_slots > ring.max_usage as usize && bytes > PIPE_MAX_SIZE {
                return Err(Errno::EPERM);
            }
            if nr_slots < ring.nr_slots as usize {
                return Err(Errno::EBUSY);
            }
            // At most 2^31 bytes (checked above): 2^19 slots.
            ring.max_usage = nr_slots as u32;
        }
        // "This might have made more room for writers."
        self.wr_wait.wake(Events::empty());
        Ok((nr_slots * PAGE_SIZE) as i32)
    }

    pub(super) fn size(&self) -> i32 {
        (self.ring().max_usage as usize * PAGE_SIZE) as i32
    }

    /// Linux's `pipe_release` of a description open for reading, writing or both: wake
    /// everyone when one side just lost its last end.
    pub(super) fn release(&self, read: bool, write: bool) {
        let (readers, writers) = {
            let mut ring = self.ring();
            if read {
                ring.readers -= 1;
            }
            if write {
                ring.writers -= 1;
            }
            (ring.readers, ring.writers)
        };
        if (readers == 0) != (writers == 0) {
            self.rd_wait.wake_all(Events::empty());
            self.wr_wait.wake_all(Events::empty());
        }
    }
}

impl PipeReader {
    /// Bytes waiting in the pipe.
    pub fn len(&self) -> usize {
        self.pipe.len()
    }
    /// Whether the pipe holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The capacity in bytes (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> usize {
        self.pipe.size() as usize
    }
}

impl PipeWriter {
    /// Bytes waiting in the pipe.
    pub fn len(&self) -> usize {
        self.pipe.len()
    }
    /// Whether the pipe holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The capacity in bytes (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> usize {
        self.pipe.size() as usize
    }
}

impl FileOps for PipeReader {
    fn poll(&self) -> Events {
        self.pipe.note_poll();
        let levels = self.pipe.levels.load(Ordering::Acquire);
        let mut mask = Events::empty();
        if levels & Levels::HAS_DATA != 0 {
            mask |= READ_KEY;
        }
        if levels & Levels::NO_WRITERS != 0 {
            mask |= Events::HUP;
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.rd_wait)
    }
    fn read(&self, buf: &mut [u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        self.pipe.read(buf, nonblock)
    }
    fn write(&self, _buf: &[u8], _mode: IoMode) -> Result<usize> {
        Err(Errno::EBADF) // not open for writing
    }
    fn release(&self) {
        self.pipe.release(true, false)
    }
}

impl FileOps for PipeWriter {
    fn poll(&self) -> Events {
        self.pipe.note_poll();
        let levels = self.pipe.levels.load(Ordering::Acquire);
        let mut mask = Events::empty();
        if levels & Levels::FULL == 0 {
            mask |= WRITE_KEY;
        }
        if levels & Levels::NO_READERS != 0 {
            mask |= Events::ERR;
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pipe.wr_wait)
    }
    fn read(&self, _buf: &mut [u8], _mode: IoMode) -> Result<usize> {
        Err(Errno::EBADF) // not open for reading
    }
    fn write(&self, buf: &[u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        self.pipe.write(buf, nonblock)
    }
    fn release(&self) {
        self.pipe.release(false, true)
    }
}

fn pipe_of(file: &File) -> Result<&Pipe> {
    if let Some(r) = file.downcast::<PipeReader>() {
        return Ok(&r.pipe);
    }
    if let Some(w) = file.downcast::<PipeWriter>() {
        return Ok(&w.pipe);
    }
    if let Some(f) = file.downcast::<super::fifo::FifoFile>() {
        return Ok(f.pipe());
    }
    Err(Errno::EBADF)
}

impl FdTable {
    /// `pipe2(flags)`: a pipe installed at the two lowest free numbers, `(read end, write
    /// end)`. `flags`: `O_NONBLOCK`, `O_CLOEXEC`, [`O_DIRECT`] (packet mode); anything else is
    /// `EINVAL`.
    ///
    /// ```
    /// use eventpoll::{FdTable, linux::O_NONBLOCK};
    /// let t = FdTable::new();
    /// let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
    /// assert_eq!((r, w), (0, 1));
    /// assert_eq!(t.write(w, b"abc"), Ok(3));
    /// let mut buf = [0u8; 8];
    /// assert_eq!(t.read(r, &mut buf), Ok(3));
    /// ```
    ///
    /// Linux: [pipe(2)](https://man7.org/linux/man-pages/man2/pipe.2.html).
    #[doc(alias = "pipe")]
    pub fn pipe2(&self, flags: i32) -> Result<(i32, i32)> {
        if flags & !(O_NONBLOCK | O_CLOEXEC | O_DIRECT) != 0 {
            return Err(Errno::EINVAL);
        }
        let (r, w) = pipe(flags);
        self.install_pair(r, w, flags & O_CLOEXEC)
    }

    /// `fcntl(fd, F_SETPIPE_SZ, size)` on either end: the capacity becomes `size` rounded up
    /// to a power-of-two number of pages (at least one); returns the new capacity in bytes.
    /// `EBUSY` when the data occupies more slots than that, `EPERM` when growing beyond
    /// [`PIPE_MAX_SIZE`], `EINVAL` for sizes above 2^31 (negative ones), `EBADF` when `fd` is
    /// not a pipe.
    ///
    /// ```
    /// use eventpoll::FdTable;
    /// let t = FdTable::new();
    /// let (r, _w) = t.pipe2(0).unwrap();
    /// assert_eq!(t.set_pipe_size(r, 5000), Ok(8192));
    /// assert_eq!(t.pipe_size(r), Ok(8192));
    /// ```
    ///
    /// Linux: [fcntl(2) (`F_SETPIPE_SZ`)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "F_SETPIPE_SZ")]
    pub fn set_pipe_size(&self, fd: i32, size: i32) -> Result<i32> {
        let file = self.get(fd)?;
        pipe_of(&file)?.set_size(size)
    }

    /// `fcntl(fd, F_GETPIPE_SZ)`: the capacity in bytes.
    ///
    /// Linux: [fcntl(2) (`F_GETPIPE_SZ`)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "F_GETPIPE_SZ")]
    pub fn pipe_size(&self, fd: i32) -> Result<i32> {
        let file = self.get(fd)?;
        Ok(pipe_of(&file)?.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::{join_within, Recorder};
    use crate::Interrupt;
    use std::time::Duration;

    const NB: i32 = O_NONBLOCK;
    const IN_RD: Events = READ_KEY;
    const OUT_WR: Events = WRITE_KEY;

    fn queue(f: &File) -> &WaitQueue {
        f.ops().wait_queue().unwrap()
    }

    // The figure is the std build's: without std the ring's lock is the engine's own
    // sleeping lock, of another size (and loom's locks are models).
    #[test]
    #[cfg(all(feature = "std", not(loom)))]
    fn hot_fields_are_two_lines_long() {
        let p = Pipe::new(1, false);
        let base = &p as *const Pipe as usize;
        let at = |addr: usize| addr - base;
        assert_eq!(at(&p.poll_usage as *const _ as usize), 0);
        let ring = p.ring();
        let hot_end = at(&ring.writers as *const usize as usize) + std::mem::size_of::<usize>();
        assert!(at(&ring.bufs as *const _ as usize) > at(&p.rd_wait as *const _ as usize));
        assert_eq!(
            hot_end, 128,
            "flags, rd_wait, lock, front slot, deque pointer, counts"
        );
    }

    #[test]
    fn a_slot_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Buffer>(), 32);
    }

    #[test]
    fn both_ends_are_the_pipe_itself_and_free_it_once() {
        let (r, w) = pipe(NB);
        let (rp, wp) = (pipe_of(&r).unwrap(), pipe_of(&w).unwrap());
        assert!(core::ptr::eq(rp, wp), "one pipe behind both descriptions");
        // The descriptions' object pointers lead straight to it.
        assert!(core::ptr::eq(Arc::as_ptr(r.ops()).cast::<Pipe>(), rp));
        let weak = Arc::downgrade(r.ops());
        assert_eq!(weak.strong_count(), 2, "one count for the two ends");
        drop(w);
        assert_eq!(weak.strong_count(), 1);
        let mut b = [0u8; 1];
        assert_eq!(
            r.read(&mut b),
            Ok(0),
            "the writer's release ran: end of file"
        );
        drop(r);
        assert_eq!(weak.strong_count(), 0, "freed with its last end");
    }

    #[test]
    fn slots_keep_their_order_across_the_inline_front_and_the_deque() {
        let (r, w) = pipe(NB);
        let page = |tag: u8| vec![tag; PAGE_SIZE];
        let mut got = vec![0u8; PAGE_SIZE];
        for tag in 1..=3 {
            assert_eq!(w.write(&page(tag)), Ok(PAGE_SIZE));
        }
        assert_eq!(r.read(&mut got), Ok(PAGE_SIZE));
        assert!(got.iter().all(|&b| b == 1));
        // The deque's head moves to the front; a new slot goes behind the others.
        assert_eq!(w.write(&page(4)), Ok(PAGE_SIZE));
        for tag in 2..=4 {
            assert_eq!(r.read(&mut got), Ok(PAGE_SIZE));
            assert!(got.iter().all(|&b| b == tag), "slot {tag}");
        }
        assert_eq!(r.read(&mut got), Err(Errno::EAGAIN));
        // Empty again: the next slot is the inline front.
        assert_eq!(w.write(b"x"), Ok(1));
        assert_eq!(r.read(&mut got), Ok(1));
        assert_eq!(got[0], b'x');
    }

    #[test]
    fn merges_cross_from_inline_to_heap_bytes_intact() {
        let (r, w) = pipe(NB);
        let mut sent = Vec::new();
        // 1 + 14 fill the inline bytes exactly, the next 5 move the slot to the heap.
        for (i, len) in [1usize, 14, 5, 3000].into_iter().enumerate() {
            let chunk: Vec<u8> = (0..len).map(|k| (i * 50 + k) as u8).collect();
            assert_eq!(w.write(&chunk), Ok(len));
            sent.extend_from_slice(&chunk);
        }
        let mut got = vec![0u8; 4096];
        let mut n = 0;
        // Read in odd pieces so offsets fall inside both kinds of slot.
        while let Ok(k) = r.read(&mut got[n..(n + 7).min(4096)]) {
            n += k;
        }
        assert_eq!(&got[..n], &sent[..]);
    }

    /// Count how many `n`-byte non-blocking writes succeed in full.
    fn fill_count(w: &File, n: usize) -> (usize, Option<usize>) {
        let data = vec![7u8; n];
        let mut count = 0;
        loop {
            match w.write(&data) {
                Ok(k) if k == n => count += 1,
                Ok(k) => return (count, Some(k)),
                Err(Errno::EAGAIN) => return (count, None),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }

    // Kernel 6.18, measured with os.pipe2(O_NONBLOCK): writes of n bytes until EAGAIN.
    #[test]
    fn fill_counts_match_kernel() {
        for (n, full, partial) in [
            (1, 65_536, None),
            (100, 640, None),
            (1000, 64, None),
            (2048, 32, None),
            (2049, 16, None),
            (4000, 16, None),
            (4096, 16, None),
            // 4097: first write takes 2 slots, the next merges 1 byte and takes 1 slot, ...
            // the 11th writes 4096 bytes of 4097 (kernel: 10 full writes, then a partial 4096).
            (4097, 10, Some(4096)),
            (5000, 10, Some(4096)),
        ] {
            let (_r, w) = pipe(NB);
            assert_eq!(fill_count(&w, n), (full, partial), "{n}-byte writes");
        }
    }

    #[test]
    fn big_write_writes_what_fits() {
        // Kernel: write(100000) on an empty pipe returns 65536.
        let (r, w) = pipe(NB);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(w.write(&data), Ok(65_536));
        // Kernel: after reading 1 byte, a 1-byte write still fails (the slot is not free and
        // the last slot is full); after consuming the first page, a 5000-byte write writes 4096.
        let mut one = [0u8; 1];
        assert_eq!(r.read(&mut one), Ok(1));
        assert_eq!(w.write(b"z"), Err(Errno::EAGAIN));
        let mut rest = vec![0u8; 4095];
        assert_eq!(r.read(&mut rest), Ok(4095));
        assert_eq!(w.write(&vec![1u8; 5000]), Ok(4096));
        // Data order is preserved.
        let mut all = vec![0u8; 70_000];
        let got = r.read(&mut all).unwrap();
        assert_eq!(got, 61_440 + 4096);
        assert_eq!(&all[..61_440], &data[4096..65_536]);
        assert!(all[61_440..got].iter().all(|&b| b == 1));
    }

    // Kernel: 4000 bytes written, 3000 read (slot offset 3000, 1000 left): a 100-byte write
    // does not merge (3000 + 1000 + 100 > 4096), so 15 free slots take 600 writes; a 96-byte
    // write does merge (exactly 4096).
    #[test]
    fn read_offset_limits_merging() {
        let (r, w) = pipe(NB);
        w.write(&[1; 4000]).unwrap();
        r.read(&mut [0; 3000]).unwrap();
        assert_eq!(fill_count(&w, 100), (600, None));

        let (r, w) = pipe(NB);
        w.write(&[1; 4000]).unwrap();
        r.read(&mut [0; 3000]).unwrap();
        assert_eq!(w.write(&[2; 96]), Ok(96));
        assert_eq!(fill_count(&w, 100), (600, None));
    }

    #[test]
    fn data_integrity_across_many_writes_and_reads() {
        let (r, w) = pipe(NB);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut seed = 1u32;
        for round in 0..2000u32 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (seed >> 16) as usize % 6000 + 1;
            let chunk: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
            if let Ok(k) = w.write(&chunk) {
                expected.extend_from_slice(&chunk[..k]);
            }
            let mut buf = vec![0u8; (seed >> 8) as usize % 7000 + 1];
            if let Ok(k) = r.read(&mut buf) {
                got.extend_from_slice(&buf[..k]);
            }
        }
        let mut buf = vec![0u8; 1 << 17];
        while let Ok(k) = r.read(&mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn poll_masks() {
        let (r, w) = pipe(NB);
        assert_eq!(r.poll(), Events::empty());
        assert_eq!(w.poll(), OUT_WR);
        w.write(b"qq").unwrap();
        assert_eq!(r.poll(), IN_RD);
        fill_count(&w, 4096);
        assert_eq!(w.poll(), Events::empty(), "full: not writable");
        // Reading one byte does not free a slot.
        r.read(&mut [0; 1]).unwrap();
        assert_eq!(w.poll(), Events::empty());
        drop(r);
        // Kernel (poll with all bits): write end without reader 0x10c = OUT|WRNORM|ERR once a
        // slot is free; here the pipe is still full, so just ERR.
        assert_eq!(w.poll(), Events::ERR);

        let (r, w) = pipe(NB);
        w.write(b"q").unwrap();
        drop(r);
        assert_eq!(w.poll(), OUT_WR | Events::ERR); // kernel: 0x10c
        assert_eq!(w.write(b"x"), Err(Errno::EPIPE));

        let (r, w) = pipe(NB);
        w.write(b"q").unwrap();
        drop(w);
        assert_eq!(r.poll(), IN_RD | Events::HUP); // kernel: 0x51
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf), Ok(1));
        assert_eq!(r.poll(), Events::HUP); // kernel: 0x10
        assert_eq!(r.read(&mut buf), Ok(0));
    }

    #[test]
    fn wrong_direction_is_ebadf() {
        let (r, w) = pipe(NB);
        assert_eq!(r.write(b"x"), Err(Errno::EBADF));
        assert_eq!(w.read(&mut [0; 1]), Err(Errno::EBADF));
    }

    #[test]
    fn write_wakes_readers_every_time_once_polled() {
        let (r, w) = pipe(NB);
        let rec = Recorder::attach(queue(&r));
        w.write(b"a").unwrap(); // was empty: wakes
        w.write(b"a").unwrap(); // not empty, never polled: no wake
        assert_eq!(rec.keys(), vec![IN_RD]);
        r.poll(); // poll_usage
        w.write(b"a").unwrap(); // kernel: ET read item reported again ("w2 nonempty")
        assert_eq!(rec.keys(), vec![IN_RD, IN_RD]);
        // Kernel: a 0-byte write reports nothing.
        w.write(b"").unwrap();
        assert_eq!(rec.count(), 2);
        // Kernel: a write failing with EAGAIN on a full pipe reports the ET read item again.
        fill_count(&w, 4096);
        let before = rec.count();
        assert_eq!(w.write(b"x"), Err(Errno::EAGAIN));
        assert_eq!(rec.count(), before + 1);
        assert_eq!(rec.last(), Some(IN_RD));
    }

    #[test]
    fn read_wakes_writers_only_from_full() {
        let (r, w) = pipe(NB);
        let rec = Recorder::attach(queue(&w));
        w.write(&[0; 10]).unwrap();
        r.read(&mut [0; 5]).unwrap(); // kernel: ET write item not reported again
        assert_eq!(rec.count(), 0);
        fill_count(&w, 4096);
        // Kernel 6.18: reading 1 byte of a full pipe frees no slot and wakes no writer (an LT
        // write-end item is not queued again: measured by the ready-list order); reading
        // the rest of the slot frees it and wakes.
        r.read(&mut [0; 1]).unwrap();
        assert_eq!(rec.count(), 0);
        assert_eq!(w.poll(), Events::empty());
        r.read(&mut [0; 4095]).unwrap();
        assert_eq!(rec.keys(), vec![OUT_WR]);
        assert_eq!(w.poll(), OUT_WR);
        // A read from a non-full pipe, a 0-byte read and an EAGAIN read wake nothing.
        r.read(&mut [0; 4096]).unwrap();
        r.read(&mut []).unwrap();
        let (r2, w2) = pipe(NB);
        let rec2 = Recorder::attach(queue(&w2));
        assert_eq!(r2.read(&mut [0; 1]), Err(Errno::EAGAIN));
        assert_eq!(rec.count(), 1);
        assert_eq!(rec2.count(), 0);
        // A read that empties several slots of a full pipe wakes once.
        let (r3, w3) = pipe(NB);
        let rec3 = Recorder::attach(queue(&w3));
        fill_count(&w3, 4096);
        r3.read(&mut [0; 20_000]).unwrap();
        assert_eq!(rec3.count(), 1);
    }

    #[test]
    fn release_wakes_both_sides_with_key_zero() {
        let (r, w) = pipe(NB);
        let rr = Recorder::attach(queue(&r));
        let rw = Recorder::attach(queue(&w));
        let r2 = r.clone(); // dup: same description, not released
        drop(r);
        assert_eq!((rr.count(), rw.count()), (0, 0));
        drop(r2); // last reader gone, writer still open
        assert_eq!(rr.keys(), vec![Events::empty()]);
        assert_eq!(rw.keys(), vec![Events::empty()]);
        // Kernel: the EPIPE write does not report the write-end ET item.
        assert_eq!(w.write(b"x"), Err(Errno::EPIPE));
        assert_eq!(rw.count(), 1);
        drop(w); // both sides gone: no wake
        assert_eq!((rr.count(), rw.count()), (1, 1));
    }

    #[test]
    fn set_size_rounding_and_errors() {
        let t = FdTable::new();
        let (r, w) = t.pipe2(NB).unwrap();
        assert_eq!(t.pipe_size(w), Ok(65_536));
        // Kernel: 0, 1, 4096 -> 4096; 4097, 5000 -> 8192; 12288 -> 16384; 1 MiB ok; 2 MiB EPERM;
        // -1 EINVAL; INT_MIN and INT_MAX EPERM.
        for (req, got) in [
            (0, Ok(4096)),
            (1, Ok(4096)),
            (4096, Ok(4096)),
            (4097, Ok(8192)),
            (5000, Ok(8192)),
            (8192, Ok(8192)),
            (12_288, Ok(16_384)),
            (65_536, Ok(65_536)),
            (1 << 20, Ok(1 << 20)),
            (1 << 21, Err(Errno::EPERM)),
            (-1, Err(Errno::EINVAL)),
            (i32::MIN, Err(Errno::EPERM)),
            (i32::MAX, Err(Errno::EPERM)),
        ] {
            assert_eq!(t.set_pipe_size(w, req), got, "F_SETPIPE_SZ {req}");
        }
        assert_eq!(t.set_pipe_size(r, 4096), Ok(4096), "read end works too");
        let efd = t.eventfd(0, 0).unwrap();
        assert_eq!(t.set_pipe_size(efd, 4096), Err(Errno::EBADF));
        assert_eq!(t.set_pipe_size(99, 4096), Err(Errno::EBADF));

        // EBUSY counts slots: 10000 bytes = 3 slots.
        let (r, w) = t.pipe2(NB).unwrap();
        t.write(w, &[0; 10_000]).unwrap();
        assert_eq!(t.set_pipe_size(w, 4096), Err(Errno::EBUSY));
        assert_eq!(t.set_pipe_size(w, 8192), Err(Errno::EBUSY));
        assert_eq!(t.set_pipe_size(w, 12_288), Ok(16_384));
        // (10, 10, 4096) is two slots: the second 10 merged.
        let (_r2, w2) = t.pipe2(NB).unwrap();
        t.write(w2, &[0; 10]).unwrap();
        t.write(w2, &[0; 10]).unwrap();
        t.write(w2, &[0; 4096]).unwrap();
        assert_eq!(t.set_pipe_size(w2, 4096), Err(Errno::EBUSY));
        assert_eq!(t.set_pipe_size(w2, 8192), Ok(8192));
        let _ = r;
    }

    #[test]
    fn one_slot_pipe_like_kernel() {
        // Kernel: 5000 written (2 slots), shrink to 1 page EBUSY; after consuming the first
        // slot it works; then 10 bytes merge, 4000 EAGAIN, 3182 fits exactly.
        let t = FdTable::new();
        let (r, w) = t.pipe2(NB).unwrap();
        t.write(w, &[1; 5000]).unwrap();
        assert_eq!(t.set_pipe_size(w, 4096), Err(Errno::EBUSY));
        t.read(r, &mut [0; 4096]).unwrap();
        assert_eq!(t.set_pipe_size(w, 4096), Ok(4096));
        assert_eq!(t.write(w, &[2; 10]), Ok(10));
        assert_eq!(t.write(w, &[3; 4000]), Err(Errno::EAGAIN));
        assert_eq!(t.write(w, &[3; 3182]), Ok(3182));
        assert_eq!(t.get(w).unwrap().poll(), Events::empty());
    }

    #[test]
    fn set_size_wakes_writers_with_key_zero() {
        // Kernel: F_SETPIPE_SZ reports an ET write-end item again.
        let (_r, w) = pipe(NB);
        let rec = Recorder::attach(queue(&w));
        pipe_of(&w).unwrap().set_size(8192).unwrap();
        assert_eq!(rec.keys(), vec![Events::empty()]);
    }

    #[test]
    fn pipe2_flags() {
        let t = FdTable::new();
        assert_eq!(t.pipe2(0o1), Err(Errno::EINVAL));
        let (r, w) = t.pipe2(O_CLOEXEC).unwrap();
        assert_eq!(t.cloexec(r), Ok(true));
        assert!(!t.get(w).unwrap().is_nonblocking());
    }

    #[test]
    fn packet_mode() {
        let (r, w) = pipe(NB | O_DIRECT);
        w.write(b"hello").unwrap();
        w.write(b"world!").unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf), Ok(3));
        assert_eq!(&buf, b"hel"); // the rest of the packet is discarded
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf), Ok(6));
        assert_eq!(&buf[..6], b"world!");
        // No merging: 16 one-byte packets fill the pipe.
        assert_eq!(fill_count(&w, 1), (16, None));
    }

    #[test]
    fn blocking_read_waits_for_data() {
        let (r, w) = pipe(0);
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            let n = r.read(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(w.write(b"wake"), Ok(4));
        assert_eq!(join_within(t), b"wake".to_vec());
    }

    #[test]
    fn blocking_read_returns_eof_when_writer_closes() {
        let (r, w) = pipe(0);
        let t = std::thread::spawn(move || r.read(&mut [0u8; 8]));
        std::thread::sleep(Duration::from_millis(30));
        drop(w);
        assert_eq!(join_within(t), Ok(0));
    }

    #[test]
    fn blocking_write_waits_for_space_and_keeps_order() {
        let (r, w) = pipe(0);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let expected = data.clone();
        let t = std::thread::spawn(move || w.write(&data));
        let mut got = Vec::new();
        let mut buf = vec![0u8; 3000];
        while got.len() < expected.len() {
            let n = r.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(join_within(t), Ok(200_000));
        assert_eq!(got, expected);
    }

    #[test]
    fn blocking_write_gets_epipe_when_reader_closes() {
        let (r, w) = pipe(0);
        w.write(&[0; 65_536]).unwrap();
        let t = std::thread::spawn(move || w.write(b"more"));
        std::thread::sleep(Duration::from_millis(30));
        drop(r);
        assert_eq!(join_within(t), Err(Errno::EPIPE));
    }

    #[test]
    fn blocked_read_is_interrupted() {
        let (r, _w) = pipe(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            r.read(&mut [0u8; 8])
        });
        let intr = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        intr.raise();
        assert_eq!(join_within(t), Err(Errno::EINTR));
    }

    #[test]
    fn blocked_write_is_interrupted_after_partial_write() {
        let (r, w) = pipe(0);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            w.write(&[5u8; 100_000]) // 65536 fit, then it blocks
        });
        let intr = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        intr.raise();
        assert_eq!(join_within(t), Ok(65_536));
        assert_eq!(r.read(&mut vec![0; 100_000]), Ok(65_536));
    }
}
