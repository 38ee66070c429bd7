//! FIFOs (named pipes), modelled on Linux 6.x `fs/pipe.c` (`fifo_open`, `pipe_poll`,
//! `pipe_release`): a [`Fifo`] stands for the FIFO's inode, and every `open` of it makes a
//! description ([`FifoFile`]) of the pipe the opens share, with the pipe's data, capacity
//! and wakeup rules (see [`super::pipe`]).
//!
//! # The model
//!
//! - The pipe exists while a description of it is open: the first open makes a fresh one
//!   (empty, default size, counters at 0), the last close frees it, data and all.
//! - An open counts a reader (`O_RDONLY`), a writer (`O_WRONLY`) or both (`O_RDWR`), and
//!   counts the opens of each side (Linux's `r_counter` and `w_counter`). An open that gives
//!   a side its first end wakes the reader queue (key 0, every entry: Linux's
//!   `wake_up_partner`), which an edge-triggered item on a reader sees.
//! - `O_WRONLY | O_NONBLOCK` with no reader fails with `ENXIO` (and counts nothing);
//!   `O_RDONLY | O_NONBLOCK` with no writer succeeds. Without `O_NONBLOCK` the open waits
//!   for the other side's next open (interruptibly); `O_RDWR` never waits.
//! - Poll is the pipe's, per side the description is open for: `IN|RDNORM` (data) and `HUP`
//!   for reading, `OUT|WRNORM` (room) and `ERR` (no reader) for writing — except that a
//!   reader reports `HUP` only when no writer is left *and* a writer was opened since it
//!   was opened (Linux saves `w_counter` in the file at a non-blocking open without writers,
//!   and `pipe_poll` compares): a reader waiting for its first writer does not hang up.
//! - A description open for reading and writing (`O_RDWR`) hangs its epoll items on both of
//!   the pipe's queues (Linux's `pipe_poll` calls `poll_wait` for each), so reads, writes and
//!   closes on either side wake them.
//! - Reading a description not open for reading (or writing one not open for writing) is
//!   `EBADF`; reads and writes are the pipe's (`EPIPE` without readers, end of file without
//!   writers).
//!
//! ```
//! use eventpoll::objects::fifo::Fifo;
//! use eventpoll::{Errno, Events, FdTable, linux::O_NONBLOCK};
//! const O_RDONLY: i32 = 0;
//! const O_WRONLY: i32 = 1;
//! let t = FdTable::new();
//! let fifo = Fifo::new();
//! // No reader yet: a non-blocking writer cannot open.
//! assert_eq!(t.open_fifo(&fifo, O_WRONLY | O_NONBLOCK), Err(Errno::ENXIO));
//! let r = t.open_fifo(&fifo, O_RDONLY | O_NONBLOCK).unwrap();
//! assert_eq!(t.get(r).unwrap().poll(), Events::empty()); // no writer yet, but no HUP
//! let w = t.open_fifo(&fifo, O_WRONLY | O_NONBLOCK).unwrap();
//! assert_eq!(t.write(w, b"hi"), Ok(2));
//! t.close(w).unwrap();
//! // A writer came and went: now the reader hangs up (after the data).
//! assert_eq!(t.get(r).unwrap().poll(), Events::IN | Events::RDNORM | Events::HUP);
//! assert_eq!(t.read(r, &mut [0u8; 8]), Ok(2));
//! assert_eq!(t.read(r, &mut [0u8; 8]), Ok(0));
//! ```

use super::pipe::{Pipe, READ_KEY, WRITE_KEY};
use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::sync::{lock, Arc, Mutex, Ordering};
use crate::table::FdTable;
use crate::wait_queue::{Exclusivity, WaitQueue};

/// `O_ACCMODE`: the access-mode bits of open flags.
pub const O_ACCMODE: i32 = 3;
/// `O_RDONLY`.
pub const O_RDONLY: i32 = 0;
/// `O_WRONLY`.
pub const O_WRONLY: i32 = 1;
/// `O_RDWR`.
pub const O_RDWR: i32 = 2;

/// The inode's side: the pipe while any description is open, and how many are.
#[derive(Default)]
struct Node {
    pipe: Option<Arc<Pipe>>,
    /// Descriptions of the pipe (Linux's `pipe->files`).
    files: usize,
}

/// A FIFO: what a path made by `mkfifo` names. Open it with [`FdTable::open_fifo`] (or
/// [`Fifo::open`]). See the [module documentation](self).
#[derive(Default)]
pub struct Fifo {
    node: Mutex<Node>,
}

impl core::fmt::Debug for Fifo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fifo")
            .field("files", &lock(&self.node).files)
            .finish()
    }
}

/// One open description of a FIFO.
pub struct FifoFile {
    pipe: Arc<Pipe>,
    fifo: Arc<Fifo>,
    read: bool,
    write: bool,
    /// Linux's `file->f_pipe`: the writer-open count this reader saw at a non-blocking
    /// open without writers (0 otherwise); `HUP` needs a different count.
    seen_writers: u64,
}

impl core::fmt::Debug for FifoFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FifoFile")
            .field("read", &self.read)
            .field("write", &self.write)
            .field("len", &self.pipe.len())
            .finish()
    }
}

impl Fifo {
    /// A new FIFO, not open.
    pub fn new() -> Arc<Fifo> {
        Arc::new(Fifo::default())
    }

    /// The pipe the opens share (made by the first), counting one more description.
    fn get_pipe(&self) -> Arc<Pipe> {
        let mut node = lock(&self.node);
        node.files += 1;
        node.pipe
            .get_or_insert_with(|| Arc::new(Pipe::new(0, false)))
            .clone()
    }

    /// Linux's `put_pipe_info`: one description fewer; the last frees the pipe.
    fn put_pipe(&self) {
        let mut node = lock(&self.node);
        node.files -= 1;
        if node.files == 0 {
            node.pipe = None;
        }
    }

    /// `open(path, flags)`: a new description (see the module documentation). `flags`
    /// ([`OpenFlags`](crate::OpenFlags), or a raw `i32`): the access mode ([`O_RDONLY`],
    /// [`O_WRONLY`], [`O_RDWR`], kept as raw bits), `NONBLOCK`; other bits are ignored here. `ENXIO`: a non-blocking writer without reader; `EINVAL`: access
    /// mode 3; `EINTR`: a blocking open interrupted.
    pub fn open(self: &Arc<Self>, flags: impl Into<crate::OpenFlags>) -> Result<File> {
        let flags = flags.into().bits();
        let nonblock = flags & O_NONBLOCK != 0;
        let (read, write) = match flags & O_ACCMODE {
            O_RDONLY => (true, false),
            O_WRONLY => (false, true),
            O_RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let pipe = self.get_pipe();
        match self.open_sides(&pipe, read, write, nonblock) {
            Ok(seen_writers) => {
                let file = FifoFile {
                    pipe,
                    fifo: self.clone(),
                    read,
                    write,
                    seen_writers,
                };
                Ok(File::with_flags(Arc::new(file), flags & O_NONBLOCK))
            }
            Err(e) => {
                self.put_pipe();
                Err(e)
            }
        }
    }

    /// The counting part of Linux's `fifo_open`: the reader's saved writer count, or the
    /// error.
    fn open_sides(&self, pipe: &Pipe, read: bool, write: bool, nonblock: bool) -> Result<u64> {
        let mut ring = pipe.ring();
        let mut seen_writers = 0;
        // The other side's open count to wait for a change of (blocking opens).
        let mut wait_for: Option<fn(&super::pipe::Ring) -> u64> = None;
        let wake_partner = match (read, write) {
            (true, false) => {
                ring.r_counter += 1;
                ring.readers += 1;
                if ring.writers == 0 {
                    if nonblock {
                        // Suppress HUP until a writer has been seen.
                        seen_writers = ring.w_counter;
                    } else {
                        wait_for = Some(|r| r.w_counter);
                    }
                }
                ring.readers == 1
            }
            (false, true) => {
                if nonblock && ring.readers == 0 {
                    return Err(Errno::ENXIO);
                }
                ring.w_counter += 1;
                ring.writers += 1;
                if ring.readers == 0 {
                    wait_for = Some(|r| r.r_counter);
                }
                ring.writers == 1
            }
            _ => {
                ring.readers += 1;
                ring.writers += 1;
                ring.r_counter += 1;
                ring.w_counter += 1;
                ring.readers == 1 || ring.writers == 1
            }
        };
        drop(ring);
        if wake_partner {
            pipe.rd_wait.wake_all(Events::empty());
        }
        let Some(counter) = wait_for else {
            return Ok(seen_writers);
        };
        // Linux's wait_for_partner: sleep on the reader queue until the other side's open
        // count moves.
        let start = counter(&pipe.ring());
        let waited = pipe
            .rd_wait
            .block_until(Exclusivity::NonExclusive, None, || {
                (counter(&pipe.ring()) != start).then_some(())
            });
        if let Err(e) = waited {
            // Undo this open's count; the last of its side wakes the other side.
            let mut ring = pipe.ring();
            if read {
                ring.readers -= 1;
                let last = ring.readers == 0;
                drop(ring);
                if last {
                    pipe.wr_wait.wake(Events::empty());
                }
            } else {
                ring.writers -= 1;
                let last = ring.writers == 0;
                drop(ring);
                if last {
                    pipe.rd_wait.wake_all(Events::empty());
                }
            }
            return Err(e);
        }
        Ok(seen_writers)
    }
}

impl FifoFile {
    /// The pipe behind the description.
    pub(super) fn pipe(&self) -> &Pipe {
        &self.pipe
    }
}

impl FileOps for FifoFile {
    /// Linux's `pipe_poll` for a FIFO description.
    fn poll(&self) -> Events {
        self.pipe.poll_usage.store(true, Ordering::Relaxed);
        let ring = self.pipe.ring();
        let mut mask = Events::empty();
        if self.read {
            if !ring.is_empty() {
                mask |= READ_KEY;
            }
            if ring.writers == 0 && self.seen_writers != ring.w_counter {
                mask |= Events::HUP;
            }
        }
        if self.write {
            if !ring.is_full() {
                mask |= WRITE_KEY;
            }
            if ring.readers == 0 {
                mask |= Events::ERR;
            }
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(if self.read {
            &self.pipe.rd_wait
        } else {
            &self.pipe.wr_wait
        })
    }
    fn extra_wait_queue(&self) -> Option<&WaitQueue> {
        (self.read && self.write).then_some(&self.pipe.wr_wait)
    }
    fn read(&self, buf: &mut [u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        if !self.read {
            return Err(Errno::EBADF);
        }
        self.pipe.read(buf, nonblock)
    }
    fn write(&self, buf: &[u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        if !self.write {
            return Err(Errno::EBADF);
        }
        self.pipe.write(buf, nonblock)
    }
    fn release(&self) {
        self.pipe.release(self.read, self.write);
        self.fifo.put_pipe();
    }
}

impl FdTable {
    /// `open(path, flags)` of the FIFO `fifo` at the lowest free number (see
    /// [`Fifo::open`]; `O_CLOEXEC` is honoured).
    ///
    /// ```
    /// use eventpoll::objects::fifo::{Fifo, O_RDWR};
    /// use eventpoll::{FdTable, Events, linux::O_NONBLOCK};
    /// let t = FdTable::new();
    /// let fifo = Fifo::new();
    /// let both = t.open_fifo(&fifo, O_RDWR | O_NONBLOCK).unwrap();
    /// assert_eq!(t.write(both, b"x"), Ok(1)); // it reads what it writes
    /// assert_eq!(t.get(both).unwrap().poll(),
    ///            Events::IN | Events::RDNORM | Events::OUT | Events::WRNORM);
    /// ```
    pub fn open_fifo(&self, fifo: &Arc<Fifo>, flags: i32) -> Result<i32> {
        let file = fifo.open(flags)?;
        self.install(file, flags & O_CLOEXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::{join_within, Recorder};
    use crate::{EpollEvent, Interrupt};
    use std::time::Duration;

    const NB: i32 = O_NONBLOCK;

    fn queue(f: &File) -> &WaitQueue {
        f.ops().wait_queue().unwrap()
    }

    // Kernel 6.18 (scenarios/fifo/): a reader opened before any writer reports nothing;
    // once a writer has come and gone it reports HUP; a reader opened after that does not,
    // until the next writer comes and goes.
    #[test]
    fn hup_needs_a_writer_since_the_reader_opened() {
        let fifo = Fifo::new();
        let r1 = fifo.open(O_RDONLY | NB).unwrap();
        assert_eq!(r1.poll(), Events::empty());
        let w = fifo.open(O_WRONLY | NB).unwrap();
        drop(w);
        assert_eq!(r1.poll(), Events::HUP);
        let r2 = fifo.open(O_RDONLY | NB).unwrap();
        assert_eq!(r2.poll(), Events::empty());
        assert_eq!(r1.poll(), Events::HUP);
        drop(fifo.open(O_WRONLY | NB).unwrap());
        assert_eq!(r2.poll(), Events::HUP);
    }

    #[test]
    fn writer_without_reader_is_enxio_and_counts_nothing() {
        let fifo = Fifo::new();
        assert_eq!(fifo.open(O_WRONLY | NB).err(), Some(Errno::ENXIO));
        assert_eq!(lock(&fifo.node).files, 0);
        assert_eq!(fifo.open(3 | NB).err(), Some(Errno::EINVAL));
        let r = fifo.open(O_RDONLY | NB).unwrap();
        let w = fifo.open(O_WRONLY | NB).unwrap();
        assert_eq!(r.read(&mut [0u8; 4]), Err(Errno::EAGAIN));
        assert_eq!(w.read(&mut [0u8; 4]), Err(Errno::EBADF));
        assert_eq!(r.write(b"x"), Err(Errno::EBADF));
        drop(r);
        assert_eq!(w.poll(), Events::OUT | Events::WRNORM | Events::ERR);
        assert_eq!(w.write(b"x"), Err(Errno::EPIPE));
    }

    #[test]
    fn last_close_frees_the_data() {
        let fifo = Fifo::new();
        let rw = fifo.open(O_RDWR | NB).unwrap();
        assert_eq!(rw.write(b"abc"), Ok(3));
        drop(rw);
        assert!(lock(&fifo.node).pipe.is_none());
        let r = fifo.open(O_RDONLY | NB).unwrap();
        // A fresh pipe: empty, and no writer was ever opened on it.
        assert_eq!(r.poll(), Events::empty());
        assert_eq!(r.read(&mut [0u8; 4]), Ok(0));
    }

    #[test]
    fn first_open_of_a_side_wakes_the_readers_with_key_zero() {
        let fifo = Fifo::new();
        let r = fifo.open(O_RDONLY | NB).unwrap();
        let rec = Recorder::attach(queue(&r));
        let w1 = fifo.open(O_WRONLY | NB).unwrap();
        assert_eq!(rec.keys(), [Events::empty()]);
        let _w2 = fifo.open(O_WRONLY | NB).unwrap();
        assert_eq!(rec.count(), 1, "only the first writer wakes");
        drop(w1);
        assert_eq!(rec.count(), 1, "a writer remains: no release wakeup");
    }

    #[test]
    fn rdwr_items_hang_on_both_queues() {
        let t = FdTable::new();
        let fifo = Fifo::new();
        let rw = t.open_fifo(&fifo, O_RDWR | NB).unwrap();
        let ep = t.epoll_create1(0).unwrap();
        let ev = EpollEvent::new(Events::OUT | Events::ET, 5);
        t.epoll_ctl(ep, 1, rw, Some(&ev)).unwrap();
        let file = t.get(rw).unwrap();
        assert!(queue(&file).has_items());
        assert!(file.ops().extra_wait_queue().unwrap().has_items());
        let mut out = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(ep, &mut out, 4, 0), Ok(1));
        assert_eq!(t.epoll_wait(ep, &mut out, 4, 0), Ok(0));
        // Filling it and reading a slot back wakes the writer queue: the ET item fires.
        assert_eq!(t.write(rw, &alloc::vec![0u8; 65536]), Ok(65536));
        assert_eq!(t.read(rw, &mut alloc::vec![0u8; 4096]), Ok(4096));
        assert_eq!(t.epoll_wait(ep, &mut out, 4, 0), Ok(1));
        t.epoll_ctl(ep, 2, rw, None).unwrap();
        assert!(!queue(&file).has_items());
        assert!(!file.ops().extra_wait_queue().unwrap().has_items());
    }

    #[test]
    fn blocking_open_waits_for_the_partner_and_can_be_interrupted() {
        let fifo = Fifo::new();
        let f2 = fifo.clone();
        let reader = std::thread::spawn(move || f2.open(O_RDONLY).map(|f| f.poll()));
        std::thread::sleep(Duration::from_millis(20));
        let w = fifo.open(O_WRONLY | NB).unwrap();
        assert_eq!(join_within(reader), Ok(Events::empty()));
        drop(w);
        // A blocking writer with no reader waits; an interrupt ends it with EINTR and the
        // open counts nothing.
        let f3 = fifo.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            f3.open(O_WRONLY).map(drop)
        });
        let interrupt = rx.recv().unwrap();
        while !interrupt.is_sleeping() {
            std::thread::sleep(Duration::from_millis(1));
        }
        interrupt.raise();
        assert_eq!(join_within(writer), Err(Errno::EINTR));
        assert_eq!(lock(&fifo.node).files, 0);
    }
}
