//! The eventpoll engine as a pipetest [`Rig`]: the engine's epoll over its in-process pipes,
//! driven through the Linux-shaped [`FdTable`] layer (`pipe2`, `epoll_create1`, `epoll_ctl`,
//! `epoll_wait`, `read`, `write` on descriptor numbers), so the code path mirrors the kernel
//! rigs call for call. In-process pipes use no host descriptors, so every N runs.

use crate::experiment::Outcome;
use crate::pipetest::Rig;
use crate::sys::Io;
use eventpoll::linux::{EPOLL_CTL_ADD, O_NONBLOCK};
use eventpoll::TableConfig;
use eventpoll::{EpollEvent, Errno, Events, FdTable, User};
use std::time::Duration;

/// A descriptor table large enough for `fds` descriptors and `watches` watches.
pub fn table_for(fds: usize, watches: usize) -> FdTable {
    let config = TableConfig {
        max_fds: fds.max(TableConfig::default().max_fds),
        ..TableConfig::default()
    };
    let user = User::new(watches.max(eventpoll::linux::DEFAULT_MAX_USER_WATCHES));
    FdTable::with_config(config, user)
}

/// N in-process pipes watched by one engine epoll instance.
pub struct EngineRig {
    table: FdTable,
    epfd: i32,
    read_fds: Vec<i32>,
    write_fds: Vec<i32>,
    events: Vec<EpollEvent>,
    edge: bool,
}

impl std::fmt::Debug for EngineRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRig")
            .field("pipes", &self.read_fds.len())
            .field("edge", &self.edge)
            .finish()
    }
}

fn io(r: eventpoll::Result<usize>, what: &str) -> Result<Io, String> {
    match r {
        Ok(n) => Ok(Io::Done(n)),
        Err(Errno::EAGAIN) => Ok(Io::WouldBlock),
        Err(e) => Err(format!("{what}: {}", e)),
    }
}

/// `n` in-process pipes registered (`EPOLLIN`, plus `EPOLLET` if `edge`) with data = index.
pub fn rig(n: usize, edge: bool) -> Result<EngineRig, String> {
    let table = table_for(2 * n + 16, n + 16);
    let epfd = table
        .epoll_create1(0)
        .map_err(|e| format!("epoll_create1: {}", e))?;
    let mut read_fds = Vec::with_capacity(n);
    let mut write_fds = Vec::with_capacity(n);
    let mut bits = Events::IN;
    if edge {
        bits |= Events::ET;
    }
    for i in 0..n {
        let (r, w) = table
            .pipe2(O_NONBLOCK)
            .map_err(|e| format!("pipe2 #{i}: {}", e))?;
        table
            .epoll_ctl(
                epfd,
                EPOLL_CTL_ADD,
                r,
                Some(&EpollEvent::new(bits, i as u64)),
            )
            .map_err(|e| format!("epoll_ctl(ADD) #{i}: {}", e))?;
        read_fds.push(r);
        write_fds.push(w);
    }
    Ok(EngineRig {
        table,
        epfd,
        read_fds,
        write_fds,
        events: vec![EpollEvent::default(); n.clamp(1, 256)],
        edge,
    })
}

impl Rig for EngineRig {
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String> {
        let max = self.events.len() as i32;
        let n = self
            .table
            .epoll_wait(self.epfd, &mut self.events, max, timeout_ms)
            .map_err(|e| format!("epoll_wait: {}", e))?;
        ready.extend(self.events[..n].iter().map(|e| e.data() as u32));
        Ok(())
    }
    fn read(&mut self, pipe: u32, buf: &mut [u8]) -> Result<Io, String> {
        let fd = *self.read_fds.get(pipe as usize).ok_or("no such pipe")?;
        io(self.table.read(fd, buf), "read")
    }
    fn write(&mut self, pipe: u32, buf: &[u8]) -> Result<Io, String> {
        let fd = *self.write_fds.get(pipe as usize).ok_or("no such pipe")?;
        io(self.table.write(fd, buf), "write")
    }
    fn edge_triggered(&self) -> bool {
        self.edge
    }
    fn pipes(&self) -> usize {
        self.read_fds.len()
    }
}

/// Run `f` on the engine, turning a panic inside it into an error carrying the panic
/// message.
pub fn guarded_result<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|payload| Err(format!("engine panicked: {}", panic_message(&*payload))))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Run an engine cell, turning a panic inside the engine into a failed cell (with the panic
/// message) instead of ending the whole benchmark.
pub fn guarded(f: impl FnOnce() -> (Outcome, Duration)) -> (Outcome, Duration) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = panic_message(&*payload);
            (
                Outcome::Failed(format!("engine panicked: {msg}")),
                Duration::ZERO,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipetest::{drain, run_rounds, start};
    use std::time::Instant;

    fn conserves(mut rig: EngineRig, k: usize) {
        let mut tokens = start(&mut rig, k, 42).unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let stats = run_rounds(&mut rig, &mut tokens, far, 2000).unwrap();
        assert_eq!(stats.waits, 2000);
        assert!(stats.tokens >= 2000);
        assert_eq!(
            tokens.read, tokens.written,
            "every token read was written on"
        );
        let left = drain(&mut rig).unwrap();
        assert_eq!(left, k as u64, "tokens in the pipes at the end");
        assert_eq!(tokens.initial + tokens.written, tokens.read + left);
    }

    #[test]
    fn engine_lt_conserves_tokens() {
        conserves(rig(50, false).unwrap(), 16);
    }

    #[test]
    fn engine_et_conserves_tokens() {
        conserves(rig(50, true).unwrap(), 16);
    }

    #[test]
    fn engine_conserves_many_tokens_in_few_pipes() {
        conserves(rig(3, true).unwrap(), 300);
        conserves(rig(3, false).unwrap(), 300);
    }

    #[test]
    fn guarded_turns_a_panic_into_a_failed_cell() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let (o, _) = guarded(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(o, Outcome::Failed("engine panicked: boom".into()));
    }
}
