//! Epoll instances (STUB: signatures only; the implementation lands next).
#![allow(missing_docs, dead_code)]

use crate::errno::Result;
use crate::event::{EpollEvent, Events};
use crate::file::{File, FileLinks, FileOps};
use crate::sync::{Arc, AtomicUsize};
use crate::table::FdTable;
use crate::wait_queue::{Parker, WaitQueue, WakeReason};
use std::time::{Duration, Instant};

pub const DEFAULT_MAX_USER_WATCHES: usize = 1 << 22;

pub struct User {
    watches: AtomicUsize,
    max: AtomicUsize,
}
impl User {
    pub fn new(max: usize) -> Arc<User> {
        Arc::new(User {
            watches: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        })
    }
}
#[derive(Debug, Clone, Copy)]
pub struct Limits;
#[derive(Debug, Clone, Copy)]
pub struct Interest(pub Events);
impl Interest {
    pub const READABLE: Interest = Interest(Events::IN);
}
pub struct EventBuffer {
    buf: Vec<EpollEvent>,
    len: usize,
}
impl EventBuffer {
    pub fn with_capacity(n: usize) -> Self {
        EventBuffer {
            buf: vec![EpollEvent::default(); n],
            len: 0,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &EpollEvent> {
        self.buf[..self.len].iter()
    }
}
pub struct Epoll {
    file: File,
}
impl Epoll {
    pub fn new() -> Epoll {
        todo!()
    }
    pub fn add(&self, _f: &File, _i: Interest, _d: u64) -> Result<()> {
        todo!()
    }
    pub fn wait(&self, _e: &mut EventBuffer, _t: Option<Duration>) -> Result<usize> {
        todo!()
    }
}
pub struct EpollShared {
    poll_wait: WaitQueue,
}
impl EpollShared {
    pub(crate) fn new_file(_u: Arc<User>) -> File {
        todo!()
    }
    pub(crate) fn wait(
        &self,
        _e: &mut [EpollEvent],
        _m: usize,
        _t: Option<Duration>,
    ) -> Result<usize> {
        todo!()
    }
    pub(crate) fn item_callback(&self, _slot: u32, _key: Events) -> bool {
        todo!()
    }
    pub(crate) fn release_file_item(self: &Arc<Self>, _slot: u32, _links: &Arc<FileLinks>) {
        todo!()
    }
}
impl FileOps for EpollShared {
    fn poll(&self) -> Events {
        todo!()
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.poll_wait)
    }
}
pub(crate) fn ctl(
    _t: &FdTable,
    _epfd: i32,
    _op: i32,
    _fd: i32,
    _ev: Option<EpollEvent>,
) -> Result<()> {
    todo!()
}
pub(crate) struct ThreadWake {
    parker: Arc<Parker>,
}
impl ThreadWake {
    pub(crate) fn for_current_thread() -> Self {
        ThreadWake {
            parker: Parker::for_current_thread(),
        }
    }
    pub(crate) fn sleep(&self, _d: Option<Instant>) -> WakeReason {
        todo!()
    }
}
impl crate::WakeCallback for ThreadWake {
    fn wake(&self, _k: Events) -> bool {
        self.parker.wake()
    }
}
