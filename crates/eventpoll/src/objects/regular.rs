//! A regular file: not pollable. Linux's regular files have no `poll` method, so
//! `epoll_ctl(ADD)` refuses them with `EPERM` and `poll(2)` reports the default mask
//! `IN|OUT|RDNORM|WRNORM` at once. This one stands for a file whose offset is at its end:
//! reads return 0 (end of file) and writes always succeed in full (and are discarded).
//!
//! `/dev/null` behaves the same way on Linux (its `null_fops` have no `poll` either; reads
//! return 0, writes the whole count), so [`FdTable::open_null`] opens one of these too.
//!
//! ```
//! use eventpoll::FdTable;
//! let t = FdTable::new();
//! let f = t.open_regular().unwrap();
//! assert_eq!(t.write(f, b"data"), Ok(4));
//! assert_eq!(t.read(f, &mut [0u8; 4]), Ok(0));
//! ```

use crate::errno::Result;
use crate::event::Events;
use crate::file::{File, FileOps, IoMode};
use crate::open_flags::OpenFlags;
use crate::sync::Arc;
use crate::table::FdTable;
use crate::wait_queue::WaitQueue;

/// A regular file (not pollable). See the [module documentation](self).
#[derive(Debug, Default)]
pub struct RegularFile;

impl RegularFile {
    /// A new regular file object.
    pub fn new() -> Arc<RegularFile> {
        Arc::new(RegularFile)
    }
}

impl FileOps for RegularFile {
    /// Linux's `DEFAULT_POLLMASK`, what `poll(2)` reports for a file without `poll`.
    fn poll(&self) -> Events {
        Events::IN | Events::OUT | Events::RDNORM | Events::WRNORM
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        None
    }
    fn read(&self, _buf: &mut [u8], _mode: IoMode) -> Result<usize> {
        Ok(0)
    }
    fn write(&self, buf: &[u8], _mode: IoMode) -> Result<usize> {
        Ok(buf.len())
    }
}

impl FdTable {
    /// Open a regular file (`open("file", O_RDWR)`) at the lowest free number.
    pub fn open_regular(&self) -> Result<i32> {
        self.install(File::new(RegularFile::new()), OpenFlags::empty())
    }

    /// `open("/dev/null", O_RDWR | flags)` at the lowest free number: not pollable (epoll
    /// `EPERM`, `poll(2)` the default mask), reads return 0, writes the count. `flags` may
    /// hold `O_NONBLOCK` (which changes nothing here) and `O_CLOEXEC`.
    ///
    /// ```
    /// use eventpoll::{Errno, EpollEvent, Events, FdTable};
    /// let t = FdTable::new();
    /// let null = t.open_null(0).unwrap();
    /// let ep = t.epoll_create1(0).unwrap();
    /// let ev = EpollEvent::new(Events::IN, 1);
    /// assert_eq!(t.epoll_ctl(ep, 1, null, Some(&ev)), Err(Errno::EPERM));
    /// assert_eq!(t.write(null, &[0u8; 100_000]), Ok(100_000));
    /// assert_eq!(t.read(null, &mut [0u8; 8]), Ok(0));
    /// ```
    pub fn open_null(&self, flags: i32) -> Result<i32> {
        let status = flags & crate::event::O_NONBLOCK;
        self.install(
            File::with_flags(RegularFile::new(), status),
            flags & crate::event::O_CLOEXEC,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PollFd;

    // Kernel: poll(2) on a regular file returns POLLIN|POLLOUT|POLLRDNORM|POLLWRNORM (0x145).
    #[test]
    fn default_mask_and_io() {
        let t = FdTable::new();
        let fd = t.open_regular().unwrap();
        let f = t.get(fd).unwrap();
        assert!(f.ops().wait_queue().is_none());
        assert_eq!(f.poll().bits(), 0x145);
        let mut fds = [PollFd {
            fd,
            events: 0x145,
            revents: 0,
        }];
        assert_eq!(t.poll(&mut fds, 0), Ok(1));
        assert_eq!(fds[0].revents, 0x145);
        assert_eq!(t.write(fd, &[1; 100]), Ok(100));
        assert_eq!(t.read(fd, &mut [0; 10]), Ok(0));
    }
}
