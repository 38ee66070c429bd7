//! # eventpoll — Linux's epoll as an embeddable engine
//!
//! eventpoll reproduces the Linux kernel's epoll — the same checks, errno values, ordering
//! and wakeup behaviour, verified against the kernel by the conformance runner — over any
//! object that meets a small *pollable* contract, with no dependency on the host's epoll.
//! It is for user-space kernels, simulators, user-space network stacks and in-process event
//! loops, and ships Linux-faithful in-process objects (pipe, eventfd, unix socket pairs,
//! timerfd) and a descriptor table so it is useful, and testable, on its own.
//!
//! ## The model in one page
//!
//! - **Files and descriptors.** An *open file description* ([`File`]) is an object with a
//!   poll mask and a [`WaitQueue`]. A *descriptor* is a number in a [`FdTable`] that refers
//!   to one; `dup`, `dup2` and `fork` make more descriptors for the same description.
//! - **The interest list.** An epoll instance keeps one *item* per (description,
//!   descriptor number) it watches, with an interest mask (`IN`, `OUT`, ... plus the flags
//!   `ET`, `ONESHOT`, `EXCLUSIVE`, `WAKEUP`) and 64 bits of user data. `ERR` and `HUP` are
//!   always in the interest.
//! - **Wait queues and the callback.** Adding an item hooks it on the target's wait queue.
//!   When the object's state changes it wakes its queue with a *key* (the bits that
//!   changed); the epoll callback then puts the item on the instance's **ready list** —
//!   once: wakeups between two harvests merge — and wakes one blocked waiter and whoever
//!   polls the instance (outer instances).
//! - **The harvest.** `epoll_wait` takes items off the ready list in order, polls each
//!   again and reports `poll & interest` (an item no longer ready is dropped silently). Then
//!   a **level-triggered** item goes back at the tail (it keeps being reported while ready:
//!   epoll as "a faster poll()"), an **edge-triggered** item stays off until the next
//!   wakeup of its file — Linux's "edge" is *any* wakeup, not a 0→1 transition — and a
//!   **one-shot** item is disabled until `EPOLL_CTL_MOD`. Items not reached because
//!   `maxevents` was full go back to the *head*, so a small `maxevents` round-robins.
//! - **Threads.** Any number of threads may wait on one instance; a wakeup wakes one of
//!   them. The harvester of a level-triggered item puts it back and wakes the next waiter,
//!   so every waiter eventually sees it; an edge-triggered event wakes one. Wakeups that
//!   arrive during a harvest are kept aside and applied after it: none is lost.
//! - **Ghost events.** An item belongs to the description, not the number: closing one of
//!   two descriptors of a file removes nothing — the item keeps reporting with its old data,
//!   and `ctl` on the closed number is `EBADF`. Only closing the *last* descriptor (releasing
//!   the description) removes the item.
//! - **Nesting.** An instance is itself pollable (readable when an item is really ready)
//!   and can be watched by another; cycles and chains deeper than five instances are
//!   `ELOOP`.
//!
//! ## Two layers
//!
//! The Linux-shaped layer, [`FdTable`], takes and returns raw numbers and errno values
//! exactly as the system calls do (it is what the conformance runner drives). The Rust
//! layer, [`Epoll`] with [`Interest`] and [`EventBuffer`], works on [`File`] handles:
//!
//! ```
//! use eventpoll::{Epoll, EventBuffer, Interest, objects::pipe::pipe};
//! use std::time::Duration;
//!
//! let (reader, writer) = pipe(0);
//! let epoll = Epoll::new();
//! epoll.add(&reader, Interest::READABLE, 1).unwrap();
//!
//! writer.write(b"ping").unwrap();
//! let mut events = EventBuffer::with_capacity(16);
//! epoll.wait(&mut events, Some(Duration::from_millis(100))).unwrap();
//! let ev = events.iter().next().unwrap();
//! assert_eq!(ev.data(), 1);
//! assert!(ev.events().contains(eventpoll::Events::IN));
//! ```
//!
//! Objects of your own need only [`Pollable`]: see the doorbell example there.
//!
//! ## `no_std`
//!
//! The crate is `#![no_std]` + `alloc`. The `std` feature (default) runs it on std's
//! mutexes, threads and thread-locals with the host's monotonic clock; without it, the
//! embedder registers a [`platform::Platform`] (tasks, park, unpark, a [`platform::Clock`])
//! at start-up. Everything the engine needs from its host goes through [`platform`].
//!
//! ## Deterministic simulation
//!
//! The `sim` feature adds `eventpoll::sim`, a deterministic platform: simulated tasks, one
//! running at a time, picked by a seeded scheduler, on a `ManualClock` that jumps to the
//! next timer when every task sleeps — the same seed gives the same run, byte for byte, and
//! timeouts cost no real time. The conformance corpus runs through it (`eventpoll conform`,
//! backend `sim`); `cargo run -p eventpoll --features sim --example deterministic` shows it.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", loom, test))]
extern crate std;

/// What the unit tests import besides their module: std's prelude (the crate is `no_std`).
#[cfg(test)]
#[allow(unused_imports)]
pub(crate) mod test_prelude {
    pub(crate) use std::borrow::ToOwned;
    pub(crate) use std::boxed::Box;
    pub(crate) use std::string::{String, ToString};
    pub(crate) use std::time::Instant;
    pub(crate) use std::vec::Vec;
    pub(crate) use std::{eprintln, format, println, vec};
}

/// What every module of the engine imports: `alloc`'s types that std's prelude would give.
#[allow(unused_imports)]
pub(crate) mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

// The modules, lowest layer first (tests/layering.rs checks that each names only those
// before it). Most are private: their public items are re-exported here, one path each.
pub mod platform;
/// The engine's import point for the two lock kinds and the atomics (see [`platform`]).
pub(crate) use platform::sync;
pub mod check;
mod epoll;
mod errno;
mod event;
mod file;
pub mod objects;
mod open_flags;
mod readiness;
mod signal;
// The deterministic platform, on top of everything (it runs the whole engine).
#[cfg(feature = "sim")]
pub mod sim;
mod table;
mod wait_queue;

#[cfg(all(test, loom))]
mod loom_models;

pub use epoll::{Epoll, EventBuffer, Interest, ItemInfo, ItemState, TakenItem, User, Waker};
pub use errno::{Errno, Result};
pub use event::{EpollEvent, EventSink, Events, RecordingSink, ReportedItem};
pub use file::{File, FileOps, IoMode, Pollable};
pub use open_flags::OpenFlags;
pub use signal::Interrupt;
pub use table::{FdTable, ITimerSpec, PollFd, TableConfig, Timespec};
pub use wait_queue::{Exclusivity, WaitQueue, WaiterHandle, WakeCallback};

/// The raw constants of the Linux-shaped layer ([`FdTable`]), with Linux's values: the
/// `epoll_ctl` operations, the flags of `epoll_create1` and of the calls that open files,
/// and the kernel's limits. The objects' own flags (`EFD_SEMAPHORE`, `TFD_TIMER_ABSTIME`,
/// `SHUT_WR`, ...) are in their modules under [`objects`].
pub mod linux {
    pub use crate::epoll::{DEFAULT_MAX_USER_WATCHES, EP_MAX_NESTS};
    pub use crate::event::{
        EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EP_MAX_EVENTS, O_CLOEXEC,
        O_DIRECT, O_NONBLOCK,
    };
}

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
