//! The platform seam: everything the engine needs from its host, in one place.
//!
//! The engine is `no_std` + `alloc`. What it cannot get from `core` and `alloc` it gets
//! from here, and only from here:
//!
//! | need | Linux's name | with `std` (default) | without `std` |
//! |---|---|---|---|
//! | a *sleeping* lock, held across a file's poll | `ep->mtx`, `pipe->mutex` | a futex lock without poisoning (`futex_lock`; `std::sync::Mutex` off Linux) | a spin-then-park lock that parks through the [`Platform`] (both one `sleep_lock`, generic over how a waiter sleeps) |
//! | a *short* lock a wakeup may take from any context | `ep->lock`, wait-queue locks | the same futex lock (`std::sync::Mutex` off Linux) | a spin lock |
//! | the current task, park, unpark | `current`, `schedule()`, `wake_up_process` | `std::thread` | [`Platform::current_task`], [`Platform::park`], [`Unpark`] |
//! | per-task state: the interrupt, the cached parker, the deferred unparks | `current->pending`, `task_struct` | thread-locals | kept in the [`Task`] the platform returns |
//! | time, and a timed sleep | `ktime_get`, hrtimers | `MonotonicClock` (`platform`) | [`Platform::clock`] |
//!
//! Under `--cfg loom` the locks, atomics and parking are loom's, so the loom models run the
//! real engine on the same seam.
//!
//! # Time: one source
//!
//! Every deadline — `epoll_wait`'s timeout, `poll`'s, a blocking read's — is a point on a
//! [`Clock`], the same clock a table's timerfds run on. A timed sleep is "schedule an
//! unpark of this task at the deadline, then park" ([`Clock::park_until`]'s default), so a
//! port needs no timed park, and a wait on a [`ManualClock`]
//! table ends exactly when that clock is advanced past its deadline. `MonotonicClock`
//! overrides `park_until` with std's `park_timeout` (no timer round trip).
//!
//! # Why a trait object, not a link-time hook or a cfg switch
//!
//! A cfg switch can only choose among implementations this crate knows (std, loom); it
//! cannot name an embedder's task type. A link-time hook (`extern "Rust"` functions the
//! embedder defines, as `#[global_allocator]` does) can, but every binary must then define
//! it — including test binaries of crates that never block — a missing one is a link error
//! far from its cause, and two embedders in one program collide. A `&'static dyn Platform`
//! registered once at start-up ([`register`]) names any task type, is checked by the
//! compiler, costs one indirect call on the paths that block (never on the fast paths:
//! taking a lock uncontended, reporting events), and leaves `std` builds untouched — with
//! `std` the seam compiles to std's own types and calls.
//!
//! # Registering a platform
//!
//! A platform of one task, whose clock moves only when that task sleeps — time jumps to
//! the next timer, as in a simulator — so a five-second `epoll_wait` timeout returns at
//! once, with the clock five seconds on:
//!
//! ```
//! use eventpoll::platform::{self, Platform, Task, Unpark};
//! use eventpoll::platform::{Clock, ManualClock};
//! use eventpoll::{Epoll, EventBuffer};
//! use std::{sync::Arc, time::Duration};
//!
//! struct Wake; // one task: nothing else to make runnable
//! impl Unpark for Wake {
//!     fn unpark(&self) {}
//! }
//! struct Sim {
//!     task: Task, // a real port keeps one `Task` per task, in its task control block
//!     clock: Arc<ManualClock>,
//! }
//! impl Platform for Sim {
//!     fn current_task(&self) -> Task {
//!         self.task.clone()
//!     }
//!     fn park(&self) {
//!         // The only task sleeps: run time forward to the next timer (it unparks us).
//!         if let Some(next) = self.clock.next_deadline() {
//!             self.clock.advance(next.saturating_sub(self.clock.now()));
//!         }
//!     }
//!     fn clock(&self) -> Arc<dyn Clock> {
//!         self.clock.clone()
//!     }
//! }
//!
//! let sim: &'static Sim = Box::leak(Box::new(Sim {
//!     task: Task::new(Arc::new(Wake)),
//!     clock: Arc::new(ManualClock::new()), // starts at 1 s
//! }));
//! assert!(platform::register(sim).is_ok());
//! let epoll = Epoll::new(); // on the platform's clock
//! let mut events = EventBuffer::with_capacity(4);
//! assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(5))), Ok(0));
//! assert_eq!(sim.clock.now(), Duration::from_secs(6));
//! ```
//!
//! With `std`, registering is optional: when a platform is registered, parking, unparking
//! and the default clock go through it, and per-task state stays in thread-locals (so each
//! of its tasks must run on an OS thread of its own, as a baton-passing simulator's do —
//! `eventpoll::sim` with the `sim` feature). A thread's state is made at its first use of the
//! engine: a thread that starts after the registration is unparked through the platform's
//! [`Task`], one that used the engine before it stays a plain std thread.

#[cfg(any(all(not(feature = "std"), not(loom)), test))]
pub(crate) mod bare_lock;
mod clock;
#[cfg(all(feature = "std", not(loom), target_os = "linux"))]
pub(crate) mod futex_lock;
pub(crate) mod park;
#[cfg(any(
    all(not(feature = "std"), not(loom)),
    all(feature = "std", not(loom), target_os = "linux"),
    test
))]
pub(crate) mod sleep_lock;
pub(crate) mod sync;
pub(crate) mod time;

#[cfg(any(feature = "std", test))]
pub use clock::MonotonicClock;
pub use clock::{ManualClock, TimerQueue};
pub use time::{Clock, Deadline, TimerCallback, TimerId};

use crate::prelude::*;
use alloc::sync::Arc;

/// What an embedder provides when the engine runs without `std`: its tasks, parking, and
/// the default clock. Registered once with [`register`].
pub trait Platform: Sync {
    /// The calling task's [`Task`]: the *same* one (clones of it) every time a given task
    /// calls. The engine keeps its per-task state there (the task's interrupt, its cached
    /// parker, the unparks it deferred). Anything that wakes a queue calls it too — a
    /// timer callback, an interrupt handler: give such a context a `Task` of its own (one
    /// per CPU for interrupt context), never one that the interrupted task may be using.
    fn current_task(&self) -> Task;
    /// Block the calling task until its [`Unpark`] handle is called. An unpark that comes
    /// first is kept as a token and makes the next `park` return at once; returning
    /// spuriously is allowed (the engine re-checks its condition).
    fn park(&self);
    /// The clock of tables and instances made without one (`FdTable::new`, `Epoll::new`):
    /// what their timeouts and timerfds run on.
    fn clock(&self) -> Arc<dyn Clock>;
}

/// Makes one task runnable again (its pending [`Platform::park`] returns, or its next one
/// returns at once). Called from any task, possibly under the engine's short locks: it
/// must not block.
///
/// The handle should *identify* its task (an index, a weak reference) rather than own the
/// task's [`Task`]: a handle that owns it keeps it alive forever.
pub trait Unpark: Send + Sync {
    /// Wake the task.
    fn unpark(&self);
}

/// One task as the engine sees it: how to unpark it, and (without `std`) the engine's
/// per-task state. Cheap to clone; a platform keeps one per task and hands out clones.
#[derive(Clone)]
pub struct Task(Arc<TaskInner>);

struct TaskInner {
    unpark: Arc<dyn Unpark>,
    #[cfg(all(not(feature = "std"), not(loom)))]
    state: park::TaskState,
}

impl Task {
    /// A task woken through `unpark`.
    pub fn new(unpark: Arc<dyn Unpark>) -> Task {
        Task(Arc::new(TaskInner {
            #[cfg(all(not(feature = "std"), not(loom)))]
            state: park::TaskState::new(park::Unparker::from(unpark.clone())),
            unpark,
        }))
    }

    /// Wake the task (its [`Unpark`] handle).
    pub fn unpark(&self) {
        self.0.unpark.unpark()
    }

    #[cfg(all(not(feature = "std"), not(loom)))]
    pub(crate) fn state(&self) -> &park::TaskState {
        &self.0.state
    }

    #[cfg(feature = "std")]
    pub(crate) fn unpark_handle(&self) -> Arc<dyn Unpark> {
        self.0.unpark.clone()
    }
}

impl core::fmt::Debug for Task {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

/// The registered platform: a thin pointer to a leaked `&'static dyn Platform`, set once.
static PLATFORM: core::sync::atomic::AtomicPtr<&'static dyn Platform> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Register the platform the engine runs on; once per program. A second call leaves the
/// first platform in place and returns `Err` with the one given.
///
/// Without `std` this must happen before the engine first blocks, parks a lock or needs a
/// default clock (it panics then, naming this function). With `std` it is optional.
pub fn register(platform: &'static dyn Platform) -> Result<(), &'static dyn Platform> {
    let slot: *mut &'static dyn Platform = Box::leak(Box::new(platform));
    match PLATFORM.compare_exchange(
        core::ptr::null_mut(),
        slot,
        core::sync::atomic::Ordering::AcqRel,
        core::sync::atomic::Ordering::Acquire,
    ) {
        Ok(_) => Ok(()),
        Err(_) => Err(platform), // the leaked box (one pointer) is not reclaimed
    }
}

/// The registered platform, if any.
#[allow(unsafe_code)]
pub fn registered() -> Option<&'static dyn Platform> {
    let p = PLATFORM.load(core::sync::atomic::Ordering::Acquire);
    // SAFETY: a non-null pointer in PLATFORM came from `Box::leak` in `register` (published
    // with Release, read with Acquire) and is never freed or written again.
    (!p.is_null()).then(|| unsafe { *p })
}

/// The registered platform; without `std` there is no other.
#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) fn platform() -> &'static dyn Platform {
    // The unit tests without `std` run on std threads through the seam (see `test_platform`).
    #[cfg(test)]
    if registered().is_none() {
        let _ = register(&test_platform::THREADS);
    }
    registered().expect(
        "eventpoll: no platform registered (call eventpoll::platform::register at start-up)",
    )
}

/// The platform the unit tests run on when built without `std`
/// (`cargo test -p eventpoll --lib --no-default-features`): every task an OS thread with its
/// [`Task`] in a thread-local, parking std's, `MonotonicClock` time — so the whole suite runs
/// through the `no_std` engine: its own locks, per-task state kept in `Task`s, timed sleeps by
/// timer.
#[cfg(all(test, not(feature = "std"), not(loom)))]
mod test_platform {
    use super::{Arc, Clock, Platform, Task, Unpark};

    struct ThreadUnpark(std::thread::Thread);

    impl Unpark for ThreadUnpark {
        fn unpark(&self) {
            self.0.unpark()
        }
    }

    std::thread_local! {
        static TASK: Task = Task::new(Arc::new(ThreadUnpark(std::thread::current())));
    }

    pub(super) struct Threads;

    impl Platform for Threads {
        fn current_task(&self) -> Task {
            TASK.with(|t| t.clone())
        }
        fn park(&self) {
            std::thread::park()
        }
        fn clock(&self) -> Arc<dyn Clock> {
            Arc::new(crate::platform::MonotonicClock)
        }
    }

    pub(super) static THREADS: Threads = Threads;
}

/// The clock of tables and instances made without one.
pub fn default_clock() -> Arc<dyn Clock> {
    #[cfg(feature = "std")]
    {
        match registered() {
            Some(p) => p.clock(),
            None => Arc::new(crate::platform::MonotonicClock),
        }
    }
    #[cfg(not(feature = "std"))]
    {
        platform().clock()
    }
}
