//! The synchronisation primitives the engine uses, in one place, so that loom models
//! (`RUSTFLAGS="--cfg loom"`) run the real engine code on loom's instrumented versions.
//!
//! Only this module names `std::sync` or `loom::sync`; everything else imports from here.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
/// Under loom, `Arc` stays `std`'s: loom's `Arc` cannot hold the engine's trait objects
/// (`Arc<dyn FileOps>`, `Arc<dyn WakeCallback>`: no unsized coercion) nor be a method
/// receiver (`self: &Arc<Self>`). Reference counting is not part of the protocol under test
/// (a freed object cannot be reached through an `Arc` in safe code); the mutexes, atomics and
/// thread parking that the wait/wake protocol is made of are loom's.
#[cfg(loom)]
pub(crate) use std::sync::Arc;

/// Lock a mutex, ignoring poisoning: the engine's invariants are re-established before any
/// code that could panic runs, and a panic in a user callback must not wedge every later
/// caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
}

/// Thread parking, routed through loom in models.
pub(crate) mod thread {
    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, Thread};
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, park_timeout, Thread};

    /// loom has no timed park; a model treats a timeout as an explicit event instead.
    #[cfg(loom)]
    pub(crate) fn park_timeout(_d: std::time::Duration) {
        park()
    }
}

/// A mutex usable in a `static` (loom's is not const-constructible); used only for the
/// global nesting-check lock, which loom models do not exercise.
pub(crate) type GlobalMutex<T> = std::sync::Mutex<T>;
