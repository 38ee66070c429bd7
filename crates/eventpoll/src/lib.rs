//! # eventpoll — Linux's epoll as an embeddable engine
//!
//! (crate documentation is completed with the epoll module; see README.)

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod epoll;
pub mod errno;
pub mod event;
pub mod file;
pub mod objects;
pub mod signal;
pub(crate) mod sync;
pub mod table;
pub mod wait_queue;

#[cfg(all(test, loom))]
mod loom_models;

pub use epoll::{Epoll, EventBuffer, Interest, User};
pub use errno::{Errno, Result};
pub use event::{EpollEvent, Events};
pub use file::{File, FileOps, Pollable};
pub use signal::Interrupt;
pub use table::{FdTable, ITimerSpec, PollFd, Timespec};
pub use wait_queue::{WaitQueue, WakeCallback};
