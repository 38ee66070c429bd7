//! The kernel's readiness mechanisms as pipetest [`Rig`]s: `select(2)`, `poll(2)` and
//! `epoll(7)` in level- and edge-triggered mode, all over real nonblocking pipes. Every
//! descriptor is owned by the rig and closed when it is dropped, so each (method, N) cell
//! starts from a clean descriptor table.

use crate::pipetest::Rig;
use crate::sys::{self, FdSet, Io, KernelEpoll, FD_SETSIZE};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// N real pipes, both ends nonblocking.
#[derive(Debug)]
pub struct KernelPipes {
    read_fds: Vec<RawFd>,
    write_fds: Vec<RawFd>,
    _owned: Vec<OwnedFd>,
}

impl KernelPipes {
    /// The read ends, by pipe index.
    pub fn read_fds(&self) -> &[RawFd] {
        &self.read_fds
    }
}

impl KernelPipes {
    /// Create `n` pipes. With `low_read_ends` every write end is moved to a number at or above
    /// `FD_SETSIZE`, so the read ends take the low numbers that `select` can watch.
    pub fn new(n: usize, low_read_ends: bool) -> Result<KernelPipes, String> {
        let mut p = KernelPipes {
            read_fds: Vec::with_capacity(n),
            write_fds: Vec::with_capacity(n),
            _owned: Vec::with_capacity(2 * n),
        };
        for i in 0..n {
            let (r, w) = sys::pipe_nonblock().map_err(|e| format!("pipe2 #{i}: {e}"))?;
            // If the move fails (a soft limit at or below FD_SETSIZE), keep the write end
            // where it is: select then works only while both ends fit below FD_SETSIZE.
            let w = if low_read_ends {
                sys::dup_at_least(&w, FD_SETSIZE as RawFd).unwrap_or(w)
            } else {
                w
            };
            p.read_fds.push(r.as_raw_fd());
            p.write_fds.push(w.as_raw_fd());
            p._owned.push(r);
            p._owned.push(w);
        }
        Ok(p)
    }

    pub(crate) fn read(&self, pipe: u32, buf: &mut [u8]) -> Result<Io, String> {
        let fd = *self.read_fds.get(pipe as usize).ok_or("no such pipe")?;
        sys::read(fd, buf).map_err(|e| format!("read: {e}"))
    }

    pub(crate) fn write(&self, pipe: u32, buf: &[u8]) -> Result<Io, String> {
        let fd = *self.write_fds.get(pipe as usize).ok_or("no such pipe")?;
        sys::write(fd, buf).map_err(|e| format!("write: {e}"))
    }
}

/// `select(2)` over the read ends (all must be below `FD_SETSIZE`).
#[derive(Debug)]
pub struct SelectRig {
    pipes: KernelPipes,
    template: FdSet,
    nfds: RawFd,
    /// Pipe index by descriptor number.
    pipe_of_fd: Vec<u32>,
}

impl SelectRig {
    /// `n` pipes watched by `select`; fails if a read end cannot get a number below 1024.
    pub fn new(n: usize) -> Result<SelectRig, String> {
        let pipes = KernelPipes::new(n, true)?;
        let mut template = FdSet::default();
        let mut pipe_of_fd = vec![u32::MAX; FD_SETSIZE];
        let mut nfds = 0;
        for (i, &fd) in pipes.read_fds.iter().enumerate() {
            if !template.insert(fd) {
                return Err(format!(
                    "read end {fd} is not below FD_SETSIZE ({FD_SETSIZE})"
                ));
            }
            pipe_of_fd[fd as usize] = i as u32;
            nfds = nfds.max(fd + 1);
        }
        Ok(SelectRig {
            pipes,
            template,
            nfds,
            pipe_of_fd,
        })
    }
}

impl Rig for SelectRig {
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String> {
        let mut set = self.template;
        let n = loop {
            match sys::select_read(self.nfds, &mut set, timeout_ms) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => set = self.template,
                Err(e) => return Err(format!("select: {e}")),
            }
        };
        if n > 0 {
            set.for_each(|fd| ready.push(self.pipe_of_fd[fd as usize]));
        }
        Ok(())
    }
    fn read(&mut self, pipe: u32, buf: &mut [u8]) -> Result<Io, String> {
        self.pipes.read(pipe, buf)
    }
    fn write(&mut self, pipe: u32, buf: &[u8]) -> Result<Io, String> {
        self.pipes.write(pipe, buf)
    }
    fn edge_triggered(&self) -> bool {
        false
    }
    fn pipes(&self) -> usize {
        self.pipes.read_fds.len()
    }
}

/// `poll(2)` over the read ends.
#[derive(Debug)]
pub struct PollRig {
    pipes: KernelPipes,
    fds: Vec<libc::pollfd>,
}

impl PollRig {
    /// `n` pipes watched by `poll`.
    pub fn new(n: usize) -> Result<PollRig, String> {
        let pipes = KernelPipes::new(n, false)?;
        let fds = pipes
            .read_fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(PollRig { pipes, fds })
    }
}

impl Rig for PollRig {
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String> {
        let n = loop {
            match sys::poll(&mut self.fds, timeout_ms) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
        };
        if n > 0 {
            for (i, p) in self.fds.iter().enumerate() {
                if p.revents != 0 {
                    ready.push(i as u32);
                }
            }
        }
        Ok(())
    }
    fn read(&mut self, pipe: u32, buf: &mut [u8]) -> Result<Io, String> {
        self.pipes.read(pipe, buf)
    }
    fn write(&mut self, pipe: u32, buf: &[u8]) -> Result<Io, String> {
        self.pipes.write(pipe, buf)
    }
    fn edge_triggered(&self) -> bool {
        false
    }
    fn pipes(&self) -> usize {
        self.pipes.read_fds.len()
    }
}

/// The kernel's epoll over the read ends, level- or edge-triggered.
#[derive(Debug)]
pub struct EpollRig {
    pipes: KernelPipes,
    epoll: KernelEpoll,
    events: Vec<libc::epoll_event>,
    edge: bool,
}

impl EpollRig {
    /// `n` pipes registered (`EPOLLIN`, plus `EPOLLET` if `edge`) with data = pipe index.
    pub fn new(n: usize, edge: bool) -> Result<EpollRig, String> {
        let pipes = KernelPipes::new(n, false)?;
        let epoll = KernelEpoll::new().map_err(|e| format!("epoll_create1: {e}"))?;
        let mut bits = libc::EPOLLIN as u32;
        if edge {
            bits |= libc::EPOLLET as u32;
        }
        for (i, &fd) in pipes.read_fds.iter().enumerate() {
            epoll
                .ctl(libc::EPOLL_CTL_ADD, fd, bits, i as u64)
                .map_err(|e| format!("epoll_ctl(ADD) #{i}: {e}"))?;
        }
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; n.clamp(1, 256)];
        Ok(EpollRig {
            pipes,
            epoll,
            events,
            edge,
        })
    }
}

impl Rig for EpollRig {
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String> {
        let n = self
            .epoll
            .wait(&mut self.events, timeout_ms)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        ready.extend(self.events[..n].iter().map(|e| e.u64 as u32));
        Ok(())
    }
    fn read(&mut self, pipe: u32, buf: &mut [u8]) -> Result<Io, String> {
        self.pipes.read(pipe, buf)
    }
    fn write(&mut self, pipe: u32, buf: &[u8]) -> Result<Io, String> {
        self.pipes.write(pipe, buf)
    }
    fn edge_triggered(&self) -> bool {
        self.edge
    }
    fn pipes(&self) -> usize {
        self.pipes.read_fds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipetest::{drain, run_rounds, start};
    use std::time::Instant;

    /// A tiny pipetest run: every token read is passed on and exactly K remain at the end.
    fn conserves<R: Rig>(mut rig: R, k: usize) {
        let mut tokens = start(&mut rig, k, 42).unwrap();
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let stats = run_rounds(&mut rig, &mut tokens, far, 2000).unwrap();
        assert_eq!(stats.waits, 2000);
        assert!(stats.tokens >= 2000, "each wait reports at least one token");
        assert_eq!(
            tokens.read, tokens.written,
            "every token read was written on"
        );
        let left = drain(&mut rig).unwrap();
        assert_eq!(left, k as u64, "tokens in the pipes at the end");
        assert_eq!(tokens.initial + tokens.written, tokens.read + left);
    }

    #[test]
    fn select_conserves_tokens() {
        conserves(SelectRig::new(50).unwrap(), 16);
    }

    #[test]
    fn poll_conserves_tokens() {
        conserves(PollRig::new(50).unwrap(), 16);
    }

    #[test]
    fn epoll_lt_conserves_tokens() {
        conserves(EpollRig::new(50, false).unwrap(), 16);
    }

    #[test]
    fn epoll_et_conserves_tokens() {
        conserves(EpollRig::new(50, true).unwrap(), 16);
    }

    #[test]
    fn epoll_et_conserves_many_tokens_in_few_pipes() {
        // More tokens than READ_CHUNK per pipe: ET must drain with several reads.
        conserves(EpollRig::new(3, true).unwrap(), 300);
        conserves(EpollRig::new(3, false).unwrap(), 300);
    }

    #[test]
    fn select_read_ends_are_low() {
        sys::raise_fd_limit().unwrap();
        let rig = SelectRig::new(200).unwrap();
        assert!(rig
            .pipes
            .read_fds
            .iter()
            .all(|&fd| (fd as usize) < FD_SETSIZE));
        if sys::fd_limit().unwrap().0 > 2 * FD_SETSIZE as u64 {
            assert!(rig
                .pipes
                .write_fds
                .iter()
                .all(|&fd| (fd as usize) >= FD_SETSIZE));
        }
    }
}
