//! The eventpoll engine over real (host) pipes as a pipetest [`Rig`]: the read ends are
//! `eventpoll_host` descriptors (readiness from a host driver: the kernel-epoll one
//! `libeventpoll` uses by default, or the io_uring one; every epoll semantic in the engine) watched by one engine instance, level-triggered; reads and writes
//! go straight to the kernel, as a program running on `libeventpoll.so` does. Bound by the
//! descriptor limit like the kernel methods (two descriptors per pipe, plus the driver's).

use crate::kernel::KernelPipes;
use crate::pipetest::Rig;
use crate::sys::Io;
use eventpoll::{EpollEvent, Events, File, Interest};
use eventpoll_host::{DriverKind, Host, HostEpoll};
use std::time::Duration;

/// N real pipes whose read ends an engine instance watches through the host driver.
pub struct HostRig {
    // Declared first so the engine's files drop before the pipes they wrap are closed.
    files: Vec<File>,
    hep: HostEpoll,
    pipes: KernelPipes,
    out: Vec<EpollEvent>,
}

impl std::fmt::Debug for HostRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRig")
            .field("pipes", &self.files.len())
            .finish()
    }
}

impl HostRig {
    /// `n` pipes, read ends watched level-triggered (`EPOLLIN`), data = pipe index.
    pub fn new(n: usize, driver: DriverKind) -> Result<HostRig, String> {
        let pipes = KernelPipes::new(n, false)?;
        let host = Host::new(driver).map_err(|e| format!("host driver: {e}"))?;
        let hep = HostEpoll::new(host.clone()).map_err(|e| format!("host epoll: {e}"))?;
        let mut files = Vec::with_capacity(n);
        for (i, &fd) in pipes.read_fds().iter().enumerate() {
            let f = host
                .open_for(fd, Events::IN)
                .map_err(|e| format!("host open #{i}: {e}"))?;
            hep.epoll()
                .add(&f, Interest::READABLE, i as u64)
                .map_err(|e| format!("epoll add #{i}: {e}"))?;
            files.push(f);
        }
        Ok(HostRig {
            files,
            hep,
            pipes,
            out: vec![EpollEvent::default(); n.clamp(1, 256)],
        })
    }
}

impl Rig for HostRig {
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String> {
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let max = self.out.len();
        let n = self
            .hep
            .wait(&mut self.out, max, timeout, None)
            .map_err(|e| format!("host epoll wait: {e}"))?;
        ready.extend(self.out[..n].iter().map(|e| e.data() as u32));
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
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipetest::{drain, run_rounds, start};
    use std::time::Instant;

    #[test]
    fn host_pipes_conserve_tokens() {
        let mut rig = HostRig::new(50, DriverKind::KernelEpoll).unwrap();
        let mut tokens = start(&mut rig, 16, 42).unwrap();
        let far = Instant::now() + std::time::Duration::from_secs(60);
        let stats = run_rounds(&mut rig, &mut tokens, far, 2000).unwrap();
        assert_eq!(stats.waits, 2000);
        assert_eq!(tokens.read, tokens.written);
        let left = drain(&mut rig).unwrap();
        assert_eq!(tokens.initial + tokens.written, tokens.read + left);
        assert_eq!(left, 16);
    }
}
