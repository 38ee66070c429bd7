//! eventfd (stub: implemented by the objects work).
use crate::{Events, Pollable, WaitQueue};
use std::sync::Arc;

/// An eventfd counter.
#[derive(Debug, Default)]
pub struct EventFd {
    queue: WaitQueue,
}

impl EventFd {
    /// `eventfd(init, semaphore ? EFD_SEMAPHORE : 0)`.
    pub fn new(_init: u64, _semaphore: bool) -> Arc<EventFd> {
        Arc::new(EventFd::default())
    }
}

impl Pollable for EventFd {
    fn poll(&self) -> Events {
        todo!("objects work")
    }
    fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}
