//! eventfd, modelled on Linux `fs/eventfd.c`: a 64-bit counter that writes add to and reads
//! take (all of it, or 1 in semaphore mode).
//!
//! - Poll: `IN` when the counter is non-zero; `OUT` while another write of 1 could succeed
//!   (`c < 2^64 − 2`); `ERR` when the counter is `2^64 − 1` (reachable only through
//!   [`EventFd::new`], not through writes). No `RDNORM`/`WRNORM`, as on Linux.
//! - A write takes exactly 8 bytes, a native-endian `u64` (kernel 6.18: any other length,
//!   shorter *or longer*, is `EINVAL`); `u64::MAX` is `EINVAL`; a write that would bring the
//!   counter to `u64::MAX` or beyond blocks, or fails with `EAGAIN` when non-blocking.
//!   Every successful write wakes the queue with key `IN`, even a write of 0 — so an
//!   edge-triggered item fires on every write.
//! - A read needs a buffer of at least 8 bytes (`EINVAL` otherwise) and returns 8; at 0 it
//!   blocks or fails with `EAGAIN`. A successful read wakes with key `OUT`.
//! - Blocked readers and writers wait non-exclusively (Linux's
//!   `wait_event_interruptible_locked_irq`).
//!
//! ```
//! use eventpoll::objects::eventfd::{EventFd, EventFdMode};
//! use eventpoll::{Errno, Events, File, linux::O_NONBLOCK};
//! let efd = File::with_flags(EventFd::new(0, EventFdMode::Counter), O_NONBLOCK);
//! assert_eq!(efd.poll(), Events::OUT);
//! efd.write(&3u64.to_ne_bytes()).unwrap();
//! efd.write(&4u64.to_ne_bytes()).unwrap();
//! assert_eq!(efd.poll(), Events::IN | Events::OUT);
//! let mut buf = [0u8; 8];
//! assert_eq!(efd.read(&mut buf), Ok(8));
//! assert_eq!(u64::from_ne_bytes(buf), 7);
//! assert_eq!(efd.read(&mut buf), Err(Errno::EAGAIN));
//! ```

use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::table::FdTable;
use crate::wait_queue::{Exclusivity, WaitQueue};

/// `EFD_SEMAPHORE`: reads take 1 instead of the whole counter.
pub const EFD_SEMAPHORE: i32 = 1;
/// `EFD_NONBLOCK` (= `O_NONBLOCK`).
pub const EFD_NONBLOCK: i32 = O_NONBLOCK;
/// `EFD_CLOEXEC` (= `O_CLOEXEC`).
pub const EFD_CLOEXEC: i32 = O_CLOEXEC;

/// What a read of an eventfd takes: the whole counter, or 1 (`EFD_SEMAPHORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventFdMode {
    /// A read returns the counter and resets it to 0.
    #[default]
    Counter,
    /// A read returns 1 and decrements the counter (`EFD_SEMAPHORE`).
    Semaphore,
}

/// An eventfd counter. See the [module documentation](self).
#[derive(Debug, Default)]
pub struct EventFd {
    /// The counter. Every update is one atomic read-modify-write, so `poll` reads it
    /// without a lock (as Linux's `eventfd_poll` does).
    count: AtomicU64,
    semaphore: bool,
    queue: WaitQueue,
}

impl EventFd {
    /// `eventfd(init, mode)` (`EFD_SEMAPHORE` is [`EventFdMode::Semaphore`]).
    ///
    /// ```
    /// use eventpoll::{objects::eventfd::{EventFd, EventFdMode}, Events, FileOps};
    /// let e = EventFd::new(u64::MAX, EventFdMode::Counter);
    /// assert_eq!(e.poll(), Events::IN | Events::ERR);
    /// ```
    pub fn new(init: u64, mode: EventFdMode) -> Arc<EventFd> {
        Arc::new(EventFd {
            count: AtomicU64::new(init),
            semaphore: mode == EventFdMode::Semaphore,
            queue: WaitQueue::new(),
        })
    }

    /// The counter's current value.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Whether reads take 1 at a time.
    pub fn is_semaphore(&self) -> bool {
        self.semaphore
    }

    /// The queue the counter wakes (the same one [`FileOps::wait_queue`] returns).
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// Add `value` to the counter (`eventfd_write` without the byte handling).
    pub fn add(&self, value: u64, mode: IoMode) -> Result<()> {
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let try_add = || {
            self.count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    (u64::MAX - c > value).then(|| c + value)
                })
                .ok()
                .map(|_| ())
        };
        if try_add().is_none() {
            if mode.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            self.queue
                .block_until(Exclusivity::NonExclusive, None, try_add)?;
        }
        self.queue.wake(Events::IN);
        Ok(())
    }

    /// Take the counter (or 1 in semaphore mode) (`eventfd_read` without the byte handling).
    pub fn take(&self, mode: IoMode) -> Result<u64> {
        let try_take = || {
            let semaphore = self.semaphore;
            self.count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| match c {
                    0 => None,
                    c if semaphore => Some(c - 1),
                    _ => Some(0),
                })
                .ok()
                .map(|c| if semaphore { 1 } else { c })
        };
        let value = match try_take() {
            Some(v) => v,
            None if mode.is_nonblocking() => return Err(Errno::EAGAIN),
            None => self
                .queue
                .block_until(Exclusivity::NonExclusive, None, try_take)?,
        };
        self.queue.wake(Events::OUT);
        Ok(value)
    }
}

impl FileOps for EventFd {
    fn poll(&self) -> Events {
        let c = self.count.load(Ordering::Acquire);
        let mut mask = Events::empty();
        if c > 0 {
            mask |= Events::IN;
        }
        if c == u64::MAX {
            mask |= Events::ERR;
        }
        if u64::MAX - 1 > c {
            mask |= Events::OUT;
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
    fn read(&self, buf: &mut [u8], mode: IoMode) -> Result<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let v = self.take(mode)?;
        buf[..8].copy_from_slice(&v.to_ne_bytes());
        Ok(8)
    }
    fn write(&self, buf: &[u8], mode: IoMode) -> Result<usize> {
        // Kernel 6.18: 7 and 9 and 16 bytes are all EINVAL.
        let bytes: [u8; 8] = buf.try_into().map_err(|_| Errno::EINVAL)?;
        self.add(u64::from_ne_bytes(bytes), mode)?;
        Ok(8)
    }
}

impl FdTable {
    /// `eventfd(initval, flags)`: flags [`EFD_SEMAPHORE`], [`EFD_NONBLOCK`], [`EFD_CLOEXEC`];
    /// any other bit is `EINVAL`.
    ///
    /// ```
    /// use eventpoll::{FdTable, objects::eventfd::EFD_SEMAPHORE};
    /// let t = FdTable::new();
    /// let fd = t.eventfd(2, EFD_SEMAPHORE).unwrap();
    /// let mut buf = [0u8; 8];
    /// t.read(fd, &mut buf).unwrap();
    /// assert_eq!(u64::from_ne_bytes(buf), 1);
    /// ```
    ///
    /// Linux: [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html).
    #[doc(alias = "eventfd2")]
    pub fn eventfd(&self, initval: u32, flags: i32) -> Result<i32> {
        if flags & !(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let efd = EventFd::new(
            initval as u64,
            if flags & EFD_SEMAPHORE != 0 {
                EventFdMode::Semaphore
            } else {
                EventFdMode::Counter
            },
        );
        let file = File::with_flags(efd, flags & O_NONBLOCK);
        self.install(file, flags & EFD_CLOEXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::{join_within, Recorder};
    use crate::test_prelude::*;
    use crate::Interrupt;
    use std::time::Duration;

    fn nb(init: u64, sem: bool) -> (Arc<EventFd>, File) {
        let e = EventFd::new(
            init,
            if sem {
                EventFdMode::Semaphore
            } else {
                EventFdMode::Counter
            },
        );
        (e.clone(), File::with_flags(e, O_NONBLOCK))
    }
    fn w(f: &File, v: u64) -> Result<usize> {
        f.write(&v.to_ne_bytes())
    }
    fn r(f: &File) -> Result<u64> {
        let mut b = [0u8; 8];
        f.read(&mut b).map(|_| u64::from_ne_bytes(b))
    }

    // Kernel (poll with all bits): c=0 -> OUT; c=1 -> IN|OUT; c=2^64-3 -> IN|OUT;
    // c=2^64-2 -> IN only.
    #[test]
    fn masks_at_boundaries() {
        let mask = |c| FileOps::poll(&*EventFd::new(c, EventFdMode::Counter));
        assert_eq!(mask(0), Events::OUT);
        assert_eq!(mask(1), Events::IN | Events::OUT);
        assert_eq!(mask(u64::MAX - 2), Events::IN | Events::OUT);
        assert_eq!(mask(u64::MAX - 1), Events::IN);
        assert_eq!(mask(u64::MAX), Events::IN | Events::ERR);
    }

    #[test]
    fn write_limits_like_kernel() {
        let (e, f) = nb(0, false);
        assert_eq!(w(&f, 1), Ok(8));
        assert_eq!(w(&f, u64::MAX - 3), Ok(8)); // c = 2^64-3
        assert_eq!(f.poll(), Events::IN | Events::OUT);
        assert_eq!(w(&f, 1), Ok(8)); // c = 2^64-2: the largest reachable
        assert_eq!(f.poll(), Events::IN);
        assert_eq!(w(&f, 1), Err(Errno::EAGAIN));
        assert_eq!(w(&f, 0), Ok(8)); // kernel: a 0 write at 2^64-2 succeeds
        assert_eq!(w(&f, u64::MAX), Err(Errno::EINVAL));
        assert_eq!(e.count(), u64::MAX - 1);
        // Kernel 6.18: writes of 7, 9 and 16 bytes are EINVAL; reads of 7 EINVAL, 16 fine.
        assert_eq!(f.write(&[0; 7]), Err(Errno::EINVAL));
        assert_eq!(f.write(&[0; 9]), Err(Errno::EINVAL));
        assert_eq!(f.write(&[0; 16]), Err(Errno::EINVAL));
        assert_eq!(f.read(&mut [0; 7]), Err(Errno::EINVAL));
        let mut big = [0u8; 16];
        assert_eq!(f.read(&mut big), Ok(8));
        assert_eq!(
            u64::from_ne_bytes(big[..8].try_into().unwrap()),
            u64::MAX - 1
        );
        assert_eq!(r(&f), Err(Errno::EAGAIN));
    }

    #[test]
    fn semaphore_reads_one() {
        let (e, f) = nb(3, true);
        assert_eq!(r(&f), Ok(1));
        assert_eq!(r(&f), Ok(1));
        assert_eq!(e.count(), 1);
        assert_eq!(r(&f), Ok(1));
        assert_eq!(r(&f), Err(Errno::EAGAIN));
    }

    // Kernel: an ET IN|OUT item is reported after every write (even of 0) and every read.
    #[test]
    fn wake_keys() {
        let (e, f) = nb(0, false);
        let rec = Recorder::attach(e.queue());
        w(&f, 0).unwrap();
        w(&f, 5).unwrap();
        r(&f).unwrap();
        assert_eq!(rec.keys(), vec![Events::IN, Events::IN, Events::OUT]);
        // Failed calls wake nothing.
        assert_eq!(r(&f), Err(Errno::EAGAIN));
        assert_eq!(f.write(&[0; 4]), Err(Errno::EINVAL));
        assert_eq!(w(&f, u64::MAX), Err(Errno::EINVAL));
        w(&f, u64::MAX - 1).unwrap();
        assert_eq!(w(&f, 1), Err(Errno::EAGAIN));
        assert_eq!(rec.count(), 4);
    }

    #[test]
    fn flags() {
        let t = FdTable::new();
        // Kernel: flag 4 and O_RDWR (2) are EINVAL; NONBLOCK|SEMAPHORE and CLOEXEC are fine.
        assert_eq!(t.eventfd(0, 4), Err(Errno::EINVAL));
        assert_eq!(t.eventfd(0, 2), Err(Errno::EINVAL));
        let a = t.eventfd(7, EFD_NONBLOCK | EFD_SEMAPHORE).unwrap();
        let b = t.eventfd(0, EFD_CLOEXEC).unwrap();
        assert!(t.get(a).unwrap().is_nonblocking());
        assert!(!t.get(b).unwrap().is_nonblocking());
        assert_eq!(t.cloexec(b), Ok(true));
        assert!(t
            .get(a)
            .unwrap()
            .downcast::<EventFd>()
            .unwrap()
            .is_semaphore());
    }

    #[test]
    fn blocking_read_waits_for_write() {
        let e = EventFd::new(0, EventFdMode::Counter);
        let f = File::new(e.clone());
        let g = f.clone();
        let t = std::thread::spawn(move || r(&g));
        std::thread::sleep(Duration::from_millis(30));
        e.add(9, IoMode::NonBlocking).unwrap();
        assert_eq!(join_within(t), Ok(9));
        assert_eq!(e.count(), 0);
    }

    #[test]
    fn blocking_write_waits_for_read() {
        let e = EventFd::new(u64::MAX - 1, EventFdMode::Counter);
        let f = File::new(e.clone());
        let g = f.clone();
        let t = std::thread::spawn(move || w(&g, 5));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(e.take(IoMode::NonBlocking), Ok(u64::MAX - 1));
        assert_eq!(join_within(t), Ok(8));
        assert_eq!(e.count(), 5);
    }

    #[test]
    fn blocked_read_is_interrupted() {
        let f = File::new(EventFd::new(0, EventFdMode::Counter));
        let g = f.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            r(&g)
        });
        let intr = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        intr.raise();
        assert_eq!(join_within(t), Err(Errno::EINTR));
    }
}
