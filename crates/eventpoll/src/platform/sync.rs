//! The two lock kinds and the atomics the engine uses, one implementation per build:
//! with `std`, a futex lock on Linux (`futex_lock`: the `sleep_lock::SleepLock`
//! on the futex, std's algorithm without the poison flag, which costs two reads of the
//! panic count per lock on the token path) and
//! std's `Mutex` elsewhere; loom's (`--cfg loom`: the models run the real engine on loom's
//! instrumented types); or the engine's own (no `std`: [`super::bare_lock`]).
//!
//! - [`Mutex`] is the *sleeping* kind (Linux's `ep->mtx`, `pipe->mutex`): it may be held
//!   across a file's poll, and a contended one parks its task.
//! - [`SpinLock`] is the *short* kind (`ep->lock`, the wait-queue locks, the interrupt's
//!   sleeper slot): held for a few steps that never block, and a wakeup may take it from
//!   any context. A short lock is never held while taking a sleeping one.
//!
//! With `std` (and under loom) both kinds are the same type, so the distinction costs
//! nothing there; without `std` they are two different locks.
//!
//! [`lock`] takes either kind and ignores poisoning: the engine's invariants are
//! re-established before any code that could panic runs, and a panic in a user callback
//! must not wedge every later caller.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// `Arc` is `alloc`'s in every build. Under loom too: loom's `Arc` cannot hold the
/// engine's trait objects (`Arc<dyn FileOps>`, `Arc<dyn WakeCallback>`: no unsized
/// coercion) nor be a method receiver (`self: &Arc<Self>`). Reference counting is not part
/// of the protocol under test (a freed object cannot be reached through an `Arc` in safe
/// code); the locks, atomics and parking the wait/wake protocol is made of are loom's.
pub(crate) use alloc::sync::Arc;

/// A lock of either kind, for [`lock`].
pub(crate) trait Lock {
    type Target: ?Sized;
    type Guard<'a>: core::ops::DerefMut<Target = Self::Target>
    where
        Self: 'a;
    fn acquire(&self) -> Self::Guard<'_>;
}

/// Take a lock of either kind (see the module documentation).
#[inline]
pub(crate) fn lock<L: Lock + ?Sized>(l: &L) -> L::Guard<'_> {
    l.acquire()
}

/// `lock(&arc)` as `lock(&*arc)` (a generic `lock` gets no deref coercion).
impl<L: Lock + ?Sized> Lock for Arc<L> {
    type Target = L::Target;
    type Guard<'a>
        = L::Guard<'a>
    where
        Self: 'a;
    #[inline]
    fn acquire(&self) -> Self::Guard<'_> {
        (**self).acquire()
    }
}

#[cfg(any(feature = "std", loom))]
impl<T: ?Sized> Lock for std::sync::Mutex<T> {
    type Target = T;
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        Self: 'a;
    #[inline]
    fn acquire(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(all(feature = "std", not(loom), target_os = "linux"))]
mod kinds {
    pub(crate) use crate::platform::futex_lock::{FutexGuard as MutexGuard, FutexLock as Mutex};
    /// The short kind: the same futex lock (it spins briefly before sleeping).
    pub(crate) type SpinLock<T> = crate::platform::futex_lock::FutexLock<T>;
    /// A sleeping lock usable in a `static`.
    pub(crate) type GlobalMutex<T> = std::sync::Mutex<T>;
}

#[cfg(all(feature = "std", not(loom), not(target_os = "linux")))]
mod kinds {
    pub(crate) use std::sync::{Mutex, MutexGuard};
    /// The short kind: std's mutex too (a futex lock that spins briefly before sleeping).
    pub(crate) type SpinLock<T> = std::sync::Mutex<T>;
    /// A sleeping lock usable in a `static`.
    pub(crate) type GlobalMutex<T> = std::sync::Mutex<T>;
}

#[cfg(loom)]
mod kinds {
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    pub(crate) type SpinLock<T> = loom::sync::Mutex<T>;
    /// loom's mutex is not const-constructible; the global nesting-check lock, which the
    /// models do not exercise, stays std's.
    pub(crate) type GlobalMutex<T> = std::sync::Mutex<T>;

    impl<T: ?Sized> super::Lock for loom::sync::Mutex<T> {
        type Target = T;
        type Guard<'a>
            = loom::sync::MutexGuard<'a, T>
        where
            Self: 'a;
        fn acquire(&self) -> Self::Guard<'_> {
            self.lock().unwrap()
        }
    }
}

#[cfg(all(not(feature = "std"), not(loom)))]
mod kinds {
    pub(crate) use crate::platform::bare_lock::{
        ParkGuard as MutexGuard, ParkLock as Mutex, SpinLock,
    };
    pub(crate) type GlobalMutex<T> = crate::platform::bare_lock::ParkLock<T>;
}

pub(crate) use kinds::*;
