//! Thin, safe wrappers over the host kernel's calls that the benchmarks measure: `pipe2`,
//! `eventfd`, `read`/`write`, `select`, `poll` and `epoll_create1`/`epoll_ctl`/`epoll_wait`,
//! plus the descriptor limit (`getrlimit`/`setrlimit`).
//!
//! Every descriptor is an [`OwnedFd`], so it is closed when dropped, and every `unsafe` block
//! here is one FFI call with its `// SAFETY:` argument. Errors are [`io::Error`]s carrying the
//! errno; `EINTR` is retried where a signal could interrupt a wait.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `FD_SETSIZE`: `select(2)` can only watch descriptor numbers below this.
pub const FD_SETSIZE: usize = 1024;

/// The result of a nonblocking `read` or `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// This many bytes were transferred (0 from `read` means end of file).
    Done(usize),
    /// `EAGAIN`: nothing could be transferred now.
    WouldBlock,
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cvt_size(rc: libc::ssize_t) -> io::Result<Io> {
    if rc >= 0 {
        return Ok(Io::Done(rc as usize));
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(Io::WouldBlock)
    } else {
        Err(err)
    }
}

/// Take ownership of a descriptor that a successful call just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful system call that created it; nothing
    // else owns it, so the OwnedFd is its only owner and closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `pipe2(O_NONBLOCK | O_CLOEXEC)`: (read end, write end).
pub fn pipe_nonblock() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a copy of `fd` numbered at least `min`.
pub fn dup_at_least(fd: &OwnedFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an int argument and only reads the descriptor table.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) })?;
    Ok(owned(new))
}

/// `eventfd(init, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub fn eventfd_nonblock(init: u32) -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(init, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `eventfd(0, EFD_CLOEXEC)`: a blocking eventfd (reads sleep until the counter is non-zero).
pub fn eventfd_blocking() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes two integers and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `read(fd, buf)`; `EAGAIN` gives [`Io::WouldBlock`], `EINTR` is retried.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<Io> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        let rc = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// `write(fd, buf)`; `EAGAIN` gives [`Io::WouldBlock`], `EINTR` is retried.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<Io> {
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
        let rc = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match cvt_size(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A `select(2)` read set: the same layout as the C `fd_set` (1024 bits).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FdSet {
    words: [libc::c_ulong; FD_SETSIZE / (8 * std::mem::size_of::<libc::c_ulong>())],
}

impl Default for FdSet {
    fn default() -> Self {
        FdSet {
            words: [0; FD_SETSIZE / (8 * std::mem::size_of::<libc::c_ulong>())],
        }
    }
}

const WORD_BITS: usize = 8 * std::mem::size_of::<libc::c_ulong>();

impl FdSet {
    /// `FD_SET`; `false` (and no change) for a number outside `0..FD_SETSIZE`.
    pub fn insert(&mut self, fd: RawFd) -> bool {
        match usize::try_from(fd) {
            Ok(i) if i < FD_SETSIZE => {
                self.words[i / WORD_BITS] |= 1 << (i % WORD_BITS);
                true
            }
            _ => false,
        }
    }

    /// `FD_ISSET`.
    pub fn contains(&self, fd: RawFd) -> bool {
        match usize::try_from(fd) {
            Ok(i) if i < FD_SETSIZE => self.words[i / WORD_BITS] & (1 << (i % WORD_BITS)) != 0,
            _ => false,
        }
    }

    /// Call `f` with every member, in increasing order (scans a word at a time).
    pub fn for_each(&self, mut f: impl FnMut(RawFd)) {
        for (w, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                f((w * WORD_BITS + b) as RawFd);
                bits &= bits - 1;
            }
        }
    }
}

/// `select(nfds, readfds, NULL, NULL, timeout)`: the number of ready descriptors; `readfds` is
/// replaced by the ready subset.
pub fn select_read(nfds: RawFd, readfds: &mut FdSet, timeout_ms: i32) -> io::Result<usize> {
    let mut tv = libc::timeval {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_usec: ((timeout_ms % 1000) * 1000) as libc::suseconds_t,
    };
    let nfds = nfds.min(FD_SETSIZE as RawFd);
    // SAFETY: FdSet is #[repr(C)] with the size and layout of the kernel's fd_set and nfds is
    // at most FD_SETSIZE, so the kernel reads and writes only inside `readfds`; `tv` is a
    // valid timeval; the other sets are NULL, which select allows.
    let rc = unsafe {
        libc::select(
            nfds,
            (readfds as *mut FdSet).cast::<libc::fd_set>(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut tv,
        )
    };
    cvt(rc).map(|n| n as usize)
}

/// `poll(fds, timeout)`: the number of entries with non-zero `revents`.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd structures.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    cvt(rc).map(|n| n as usize)
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes one integer flag and returns a new descriptor or -1.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    Ok(owned(fd))
}

/// `epoll_ctl(epfd, op, fd, {events, data})` (`event` ignored for `EPOLL_CTL_DEL`).
pub fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel only reads
    // it. Bad descriptor numbers are the kernel's to reject (EBADF).
    cvt(unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) }).map(drop)
}

/// `epoll_wait(epfd, buf, buf.len(), timeout)`: the number of events written to `buf`;
/// `EINTR` is retried.
pub fn epoll_wait(
    epfd: RawFd,
    buf: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    let max = buf.len().min(i32::MAX as usize) as libc::c_int;
    loop {
        // SAFETY: `buf` is a valid, writable array of at least `max` epoll_event entries.
        let rc = unsafe { libc::epoll_wait(epfd, buf.as_mut_ptr(), max, timeout_ms) };
        match cvt(rc) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// A kernel epoll instance.
#[derive(Debug)]
pub struct KernelEpoll {
    fd: OwnedFd,
}

impl KernelEpoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    pub fn new() -> io::Result<KernelEpoll> {
        Ok(KernelEpoll {
            fd: epoll_create()?,
        })
    }

    /// `epoll_ctl(op, fd, {events, data})` (`event` ignored for `EPOLL_CTL_DEL`).
    pub fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        epoll_ctl(self.fd.as_raw_fd(), op, fd, events, data)
    }

    /// `epoll_wait(buf, buf.len(), timeout)`: the number of events written to `buf`.
    pub fn wait(&self, buf: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        epoll_wait(self.fd.as_raw_fd(), buf, timeout_ms)
    }

    /// The instance's own descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The descriptor limit (`RLIMIT_NOFILE`): (soft, hard).
pub fn fd_limit() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit structure.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) })?;
    #[allow(clippy::useless_conversion)] // rlim_t is narrower than u64 on some targets
    Ok((u64::from(rl.rlim_cur), u64::from(rl.rlim_max)))
}

/// Raise the soft descriptor limit to the hard limit; returns the new (soft, hard).
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = fd_limit()?;
    if soft < hard {
        let rl = libc::rlimit {
            rlim_cur: hard as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: `rl` is a valid rlimit structure that the kernel only reads.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) })?;
    }
    fd_limit()
}

/// How many descriptors this process has open now (entries of /proc/self/fd).
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1)) // the directory handle itself
        .unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdset_insert_contains_iterate() {
        let mut s = FdSet::default();
        assert!(s.insert(3));
        assert!(s.insert(64));
        assert!(s.insert(1023));
        assert!(!s.insert(1024));
        assert!(!s.insert(-1));
        assert!(s.contains(64) && !s.contains(65));
        let mut seen = vec![];
        s.for_each(|fd| seen.push(fd));
        assert_eq!(seen, vec![3, 64, 1023]);
    }

    #[test]
    fn pipe_read_write_eagain() {
        let (r, w) = pipe_nonblock().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_raw_fd(), &mut buf).unwrap(), Io::WouldBlock);
        assert_eq!(write(w.as_raw_fd(), b"ab").unwrap(), Io::Done(2));
        assert_eq!(read(r.as_raw_fd(), &mut buf).unwrap(), Io::Done(2));
        assert_eq!(&buf[..2], b"ab");
    }

    #[test]
    fn epoll_reports_readable_pipe() {
        let (r, w) = pipe_nonblock().unwrap();
        let ep = KernelEpoll::new().unwrap();
        ep.ctl(libc::EPOLL_CTL_ADD, r.as_raw_fd(), libc::EPOLLIN as u32, 42)
            .unwrap();
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(ep.wait(&mut buf, 0).unwrap(), 0);
        write(w.as_raw_fd(), b"x").unwrap();
        assert_eq!(ep.wait(&mut buf, 0).unwrap(), 1);
        let data = buf[0].u64;
        assert_eq!(data, 42);
    }
}
