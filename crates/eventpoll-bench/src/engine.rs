//! The eventpoll engine as a pipetest [`Rig`]: the engine's epoll over its in-process pipes,
//! driven through the Linux-shaped `FdTable` layer so that the code path mirrors the kernel
//! rigs call for call.
//!
//! Not available yet: the engine's epoll bodies and the in-process pipes have not landed on
//! main. Until they do, the engine cells are reported as "unavailable" and nothing is run.

use crate::experiment::Outcome;
use crate::pipetest::Rig;
use crate::sys::Io;
use std::time::Duration;

/// Why the engine backend cannot run in this build, or `None` when it can.
pub fn unavailable() -> Option<String> {
    Some("the eventpoll engine has not landed on main yet (epoll bodies are stubs; in-process pipes come with the objects work)".into())
}

/// The engine rig (cannot be built before the engine lands).
#[derive(Debug)]
pub enum EngineRig {}

/// `n` in-process pipes watched by an engine epoll instance.
pub fn rig(_n: usize, _edge: bool) -> Result<EngineRig, String> {
    Err(unavailable().unwrap_or_default())
}

impl Rig for EngineRig {
    fn wait(&mut self, _ready: &mut Vec<u32>, _timeout_ms: i32) -> Result<(), String> {
        match *self {}
    }
    fn read(&mut self, _pipe: u32, _buf: &mut [u8]) -> Result<Io, String> {
        match *self {}
    }
    fn write(&mut self, _pipe: u32, _buf: &[u8]) -> Result<Io, String> {
        match *self {}
    }
    fn edge_triggered(&self) -> bool {
        match *self {}
    }
    fn pipes(&self) -> usize {
        match *self {}
    }
}

/// Run an engine cell, turning a panic inside the engine into a failed cell.
pub fn guarded(f: impl FnOnce() -> (Outcome, Duration)) -> (Outcome, Duration) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            (
                Outcome::Failed(format!("engine panicked: {msg}")),
                Duration::ZERO,
            )
        }
    }
}
