//! The engine's own locks, for builds without `std`: a spin lock (the short kind) and a
//! spin-then-park lock (the sleeping kind) that parks through the registered
//! [`Platform`](super::Platform) when the lock stays contended. Built from `core` atomics
//! only. Compiled for tests too, where they park through std's threads.

#![allow(dead_code)] // with `std` only the tests use them

use super::park::{current_unparker, park, Unparker};
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

const FREE: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and some task may be parked waiting for it.
const CONTENDED: u32 = 2;
/// Tries before a contended lock parks.
const SPINS: u32 = 100;

/// The sleeping lock kind: spins briefly, then parks its task until the holder unlocks.
///
/// The parked tasks wait in `waiters` (a short lock). A task queues itself and marks the
/// lock contended in one step under `waiters`, and an unlock that finds the lock contended
/// takes a task off `waiters` after releasing the lock: either the unlock comes first and
/// the task sees the lock free, or the task is queued before the unlock looks. A task that
/// returns from `park` spuriously may queue itself twice; the extra entry only costs a
/// spurious unpark later.
pub(crate) struct SleepLock<T: ?Sized> {
    state: AtomicU32,
    waiters: SpinLock<Vec<Unparker>>,
    value: UnsafeCell<T>,
}

// SAFETY: as for `SpinLock`: one holder at a time (acquire/release on `state`).
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Sync for SleepLock<T> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Send for SleepLock<T> {}

impl<T> SleepLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SleepLock {
            state: AtomicU32::new(FREE),
            waiters: SpinLock::new(Vec::new()),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: Default> Default for SleepLock<T> {
    fn default() -> Self {
        SleepLock::new(T::default())
    }
}

impl<T: ?Sized> SleepLock<T> {
    #[inline]
    fn try_take(&self) -> bool {
        self.state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    pub(crate) fn lock(&self) -> SleepGuard<'_, T> {
        if !self.try_take() {
            self.lock_contended();
        }
        SleepGuard { lock: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == FREE && self.try_take() {
                return;
            }
        }
        loop {
            {
                let mut waiters = self.waiters.lock();
                // Taking it as CONTENDED is conservative: the unlock then looks for waiters.
                if self.state.swap(CONTENDED, Ordering::Acquire) == FREE {
                    return;
                }
                waiters.push(current_unparker());
            }
            park();
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(FREE, Ordering::Release) == CONTENDED {
            self.wake_one();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_one(&self) {
        {
            let next = {
                let mut waiters = self.waiters.lock();
                (!waiters.is_empty()).then(|| waiters.remove(0))
            };
            if let Some(task) = next {
                task.unpark();
            }
        }
    }
}

impl<T: ?Sized> core::fmt::Debug for SleepLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SleepLock").finish_non_exhaustive()
    }
}

/// Holding a [`SleepLock`].
pub(crate) struct SleepGuard<'a, T: ?Sized> {
    lock: &'a SleepLock<T>,
}

impl<T: ?Sized> Deref for SleepGuard<'_, T> {
    type Target = T;
    #[allow(unsafe_code)]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for SleepGuard<'_, T> {
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for SleepGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized> Lock for SleepLock<T> {
    type Target = T;
    type Guard<'a>
        = SleepGuard<'a, T>
    where
        Self: 'a;
    #[inline]
    fn acquire(&self) -> SleepGuard<'_, T> {
        self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Several threads increment a counter under each lock kind, with the critical section
    /// long enough that the sleeping lock's waiters really park: no increment is lost and
    /// every thread finishes (no lost unpark).
    #[test]
    fn both_kinds_exclude_and_a_parked_waiter_is_always_woken() {
        let spin = Arc::new(SpinLock::new(0u64));
        let sleep = Arc::new(SleepLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (spin, sleep) = (spin.clone(), sleep.clone());
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        *spin.lock() += 1;
                        let mut g = sleep.lock();
                        let v = *g;
                        if i % 256 == 0 {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                        }
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            crate::objects::testutil::join_within(t);
        }
        assert_eq!(*spin.lock(), 8_000);
        assert_eq!(*sleep.lock(), 8_000);
        assert_eq!(sleep.state.load(Ordering::Relaxed), FREE);
    }
}
