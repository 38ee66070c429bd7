//! The engine's own locks, for builds without `std`: a spin lock (the short kind) and a
//! spin-then-park lock (the sleeping kind, [`ParkLock`]: the [`SleepLock`] whose waiters
//! park through the registered [`Platform`](super::Platform) when the lock stays contended).
//! Built from `core` atomics only. Compiled for tests too, where they park through std's
//! threads.

#![allow(dead_code)] // with `std` only the tests use them

use super::park::{current_unparker, park, Unparker};
use super::sleep_lock::{SleepGuard, SleepLock, WaitWake};
use super::sync::Lock;
use crate::prelude::*;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The short lock kind: a test-and-test-and-set spin lock.
pub(crate) struct SpinLock<T: ?Sized> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one holder at a time (acquire/release
// on `locked`), so sharing the lock shares `T` only as a `Mutex` would: `T: Send` suffices.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: as above; moving the lock moves the value.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: Default> Default for SpinLock<T> {
    fn default() -> Self {
        SpinLock::new(T::default())
    }
}

impl<T: ?Sized> SpinLock<T> {
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        loop {
            if !self.locked.swap(true, Ordering::Acquire) {
                return SpinGuard { lock: self };
            }
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }
}

impl<T: ?Sized> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinLock").finish_non_exhaustive()
    }
}

/// Holding a [`SpinLock`].
pub(crate) struct SpinGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
}

impl<T: ?Sized> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[allow(unsafe_code)]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinGuard<'_, T> {
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

impl<T: ?Sized> Lock for SpinLock<T> {
    type Target = T;
    type Guard<'a>
        = SpinGuard<'a, T>
    where
        Self: 'a;
    fn acquire(&self) -> SpinGuard<'_, T> {
        self.lock()
    }
}

/// The sleeping lock kind: the [`SleepLock`] whose waiters park their task through the
/// [`Platform`](super::Platform) (it spins briefly first).
pub(crate) type ParkLock<T> = SleepLock<T, ParkQueue>;
/// Holding a [`ParkLock`].
pub(crate) type ParkGuard<'a, T> = SleepGuard<'a, T, ParkQueue>;

impl<T> ParkLock<T> {
    /// A free lock holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        SleepLock::with_primitive(
            value,
            ParkQueue {
                waiters: SpinLock::new(Vec::new()),
            },
        )
    }
}

/// A futex made of parking: the tasks parked on one lock's word wait in `waiters` (a short
/// lock). A task checks the word and queues itself in one step under `waiters`, and a wake
/// takes a task off `waiters` after the word was changed: either the change comes first and
/// the task sees it and does not park, or the task is queued before the wake looks. A task
/// that returns from `park` spuriously may queue itself twice; the extra entry only costs a
/// spurious unpark later.
#[derive(Default)]
pub(crate) struct ParkQueue {
    waiters: SpinLock<Vec<Unparker>>,
}

impl WaitWake for ParkQueue {
    fn wait(&self, word: &AtomicU32, expected: u32) {
        {
            let mut waiters = self.waiters.lock();
            if word.load(Ordering::Relaxed) != expected {
                return;
            }
            waiters.push(current_unparker());
        }
        park();
    }

    fn wake_one(&self, _word: &AtomicU32) {
        let next = {
            let mut waiters = self.waiters.lock();
            (!waiters.is_empty()).then(|| waiters.remove(0))
        };
        if let Some(task) = next {
            task.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sleep_lock::{check_excludes_and_wakes, on_four_threads};
    use super::*;
    use alloc::sync::Arc;

    /// Several threads increment a counter under the spin lock: no increment is lost.
    #[test]
    fn the_spin_lock_excludes() {
        let spin = Arc::new(SpinLock::new(0u64));
        let shared = spin.clone();
        on_four_threads(move |_| {
            let mut g = shared.lock();
            let v = *g;
            core::hint::spin_loop();
            *g = v + 1;
        });
        assert_eq!(*spin.lock(), 8_000);
    }

    /// The park instance of the sleeping lock: waiters that really park are always
    /// unparked (no lost unpark), and the lock excludes.
    #[test]
    fn a_parked_waiter_is_always_woken() {
        let _ = check_excludes_and_wakes(ParkLock::new(0));
    }
}
