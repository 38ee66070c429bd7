//! The engine's sleeping lock, written once and generic over how a waiter sleeps: a
//! [`WaitWake`] primitive that puts the caller to sleep while a 32-bit word holds a value
//! and wakes one sleeper. Two instances: on `std` Linux the primitive is the futex
//! (`futex_lock::FutexLock`, std's algorithm without the poison flag), without
//! `std` it parks through the registered [`Platform`](super::Platform)
//! (`bare_lock::ParkLock`).
//!
//! The state machine is the classic three-state futex mutex, std's own: 0 free, 1 locked,
//! 2 locked with maybe a sleeper. A taker that finds it locked spins briefly, then marks it
//! 2 and sleeps while it stays 2; a release that finds 2 wakes one sleeper. The uncontended
//! take is one compare-exchange and the release one swap, both inlined; everything else is
//! out of line, so an instance costs the token path what a hand-written lock would.

use super::sync::Lock;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

pub(crate) const FREE: u32 = 0;
pub(crate) const LOCKED: u32 = 1;
/// Locked, and some thread may be asleep waiting for it.
pub(crate) const CONTENDED: u32 = 2;
/// Tries before a contended lock sleeps (as std's).
const SPINS: u32 = 100;

/// How a [`SleepLock`] waiter sleeps and is woken: the two futex operations.
///
/// `wait` and `wake_one` must together never lose a wakeup: if `wait(word, v)` decides to
/// sleep because `word` holds `v`, a `wake_one(word)` that follows any later store to
/// `word` must find it (the futex checks the word under its hash bucket's lock and the wake
/// takes that lock; a park queue checks it under the queue's lock).
pub(crate) trait WaitWake {
    /// Sleep while `word` holds `expected`: return at once if it does not, and otherwise
    /// when woken. May also return spuriously: the caller re-checks.
    fn wait(&self, word: &AtomicU32, expected: u32);
    /// Wake one thread sleeping in [`wait`](Self::wait) on `word`, if there is one.
    fn wake_one(&self, word: &AtomicU32);
}

/// A sleeping lock without poisoning, whose waiters sleep through `W`.
pub(crate) struct SleepLock<T: ?Sized, W> {
    state: AtomicU32,
    primitive: W,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one holder at a time (acquire/release
// on `state`), so sharing the lock shares `T` only as a `Mutex` would: `T: Send` suffices;
// the primitive is shared as itself (`W: Sync`).
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send, W: Sync> Sync for SleepLock<T, W> {}
// SAFETY: as above; moving the lock moves the value and the primitive.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send, W: Send> Send for SleepLock<T, W> {}

impl<T, W> SleepLock<T, W> {
    /// A free lock holding `value`, sleeping through `primitive`.
    pub(crate) const fn with_primitive(value: T, primitive: W) -> Self {
        SleepLock {
            state: AtomicU32::new(FREE),
            primitive,
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: Default, W: Default> Default for SleepLock<T, W> {
    fn default() -> Self {
        SleepLock::with_primitive(T::default(), W::default())
    }
}

impl<T: ?Sized, W: WaitWake> SleepLock<T, W> {
    /// Take the lock, sleeping while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> SleepGuard<'_, T, W> {
        // Written out rather than through `try_take`: one call level less for the MIR
        // inliner in the large functions that take these locks (measured: with the call,
        // the token path's code around it came out 6-11 instructions a token longer).
        if self
            .state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SleepGuard { lock: self }
    }

    #[inline]
    fn try_take(&self) -> bool {
        self.state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
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
        // Taking it as CONTENDED is conservative: the release then wakes a sleeper.
        while self.state.swap(CONTENDED, Ordering::Acquire) != FREE {
            self.primitive.wait(&self.state, CONTENDED);
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
        self.primitive.wake_one(&self.state);
    }
}

impl<T: ?Sized, W> core::fmt::Debug for SleepLock<T, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SleepLock").finish_non_exhaustive()
    }
}

/// Holding a [`SleepLock`].
pub(crate) struct SleepGuard<'a, T: ?Sized, W: WaitWake> {
    lock: &'a SleepLock<T, W>,
}

impl<T: ?Sized, W: WaitWake> Deref for SleepGuard<'_, T, W> {
    type Target = T;
    #[inline]
    #[allow(unsafe_code)]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized, W: WaitWake> DerefMut for SleepGuard<'_, T, W> {
    #[inline]
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized, W: WaitWake> Drop for SleepGuard<'_, T, W> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized, W: WaitWake> Lock for SleepLock<T, W> {
    type Target = T;
    type Guard<'a>
        = SleepGuard<'a, T, W>
    where
        Self: 'a;
    #[inline]
    fn acquire(&self) -> SleepGuard<'_, T, W> {
        self.lock()
    }
}

/// For the locks' tests: `f(i)` for `i` in `0..2_000` on each of four threads at once;
/// fails the test if a thread does not finish (a waiter never woken).
#[cfg(test)]
pub(crate) fn on_four_threads(f: impl Fn(u32) + Send + Sync + 'static) {
    use crate::prelude::*;
    let f = alloc::sync::Arc::new(f);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || (0..2_000).for_each(|i| f(i)))
        })
        .collect();
    for t in threads {
        crate::objects::testutil::join_within(t);
    }
}

/// Shared by the instances' tests: four threads increment a counter under `lock`, with the
/// critical section long enough now and then that waiters really sleep: no increment is
/// lost, every thread finishes (no lost wakeup), and the lock ends free. Returns the lock,
/// for a look at its primitive.
#[cfg(test)]
pub(crate) fn check_excludes_and_wakes<W>(
    lock: SleepLock<u64, W>,
) -> alloc::sync::Arc<SleepLock<u64, W>>
where
    W: WaitWake + Send + Sync + 'static,
{
    let lock = alloc::sync::Arc::new(lock);
    let shared = lock.clone();
    on_four_threads(move |i| {
        let mut g = shared.lock();
        let v = *g;
        if i % 256 == 0 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        *g = v + 1;
    });
    assert_eq!(*lock.lock(), 8_000);
    assert_eq!(lock.state.load(Ordering::Relaxed), FREE);
    lock
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use std::sync::mpsc;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// A futex in miniature that counts: `wait` sleeps (under `inner`'s lock, after checking
    /// the word there) until a `wake_one` grants it a permit; a wake with no sleeper without
    /// a permit is a no-op, as the futex's is.
    #[derive(Default)]
    struct Mock {
        inner: Mutex<MockState>,
        cv: Condvar,
    }

    #[derive(Default, Debug, Clone, Copy, PartialEq)]
    struct MockState {
        /// Threads asleep in `wait` now.
        sleeping: u32,
        /// Wakes granted and not yet taken by a sleeper.
        permits: u32,
        /// `wait` calls that slept.
        slept: u32,
        /// `wake_one` calls.
        wakes: u32,
    }

    impl WaitWake for Mock {
        fn wait(&self, word: &AtomicU32, expected: u32) {
            let mut s = self.inner.lock().unwrap();
            if word.load(Ordering::Relaxed) != expected {
                return;
            }
            s.sleeping += 1;
            s.slept += 1;
            while s.permits == 0 {
                s = self.cv.wait(s).unwrap();
            }
            s.permits -= 1;
            s.sleeping -= 1;
        }

        fn wake_one(&self, _word: &AtomicU32) {
            let mut s = self.inner.lock().unwrap();
            s.wakes += 1;
            if s.sleeping > s.permits {
                s.permits += 1;
                self.cv.notify_all();
            }
        }
    }

    impl Mock {
        fn state(&self) -> MockState {
            *self.inner.lock().unwrap()
        }

        /// Wait (10 s at most) until `f` holds of the state.
        fn until(&self, what: &str, f: impl Fn(&MockState) -> bool) {
            let start = Instant::now();
            while !f(&self.state()) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "timed out waiting until {what}: {:?}",
                    self.state()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Two threads contend for a held lock and both go to sleep through the primitive; each
    /// release wakes exactly one of them, and the other sleeps on until the next release.
    #[test]
    fn contended_takers_sleep_and_each_release_wakes_one() {
        let lock = Arc::new(SleepLock::with_primitive(0u32, Mock::default()));
        let held = lock.lock();
        let (entered_tx, entered) = mpsc::channel::<usize>();
        let mut go = Vec::new();
        let threads: Vec<_> = (0..2)
            .map(|id| {
                let (lock, entered_tx) = (lock.clone(), entered_tx.clone());
                let (go_tx, go_rx) = mpsc::channel::<()>();
                go.push(go_tx);
                std::thread::spawn(move || {
                    let mut g = lock.lock();
                    *g += 1;
                    entered_tx.send(id).unwrap();
                    go_rx.recv().unwrap();
                    drop(g);
                })
            })
            .collect();
        lock.primitive
            .until("both takers sleep", |s| s.sleeping == 2);
        assert_eq!(lock.state.load(Ordering::Relaxed), CONTENDED);

        // The first release wakes one taker, which takes the lock; the other stays asleep.
        drop(held);
        let first = entered.recv_timeout(Duration::from_secs(10)).unwrap();
        let s = lock.primitive.state();
        assert_eq!((s.wakes, s.sleeping, s.permits), (1, 1, 0), "{s:?}");
        std::thread::sleep(Duration::from_millis(20));
        assert!(entered.try_recv().is_err(), "a second taker got in");
        assert_eq!(lock.primitive.state().sleeping, 1);

        // Its release (it took the lock as contended) wakes the other.
        go[first].send(()).unwrap();
        let second = entered.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_ne!(first, second);
        go[second].send(()).unwrap();
        for t in threads {
            crate::objects::testutil::join_within(t);
        }

        // Two sleeps, three wakes: the holder's release, then each taker's (both took the
        // lock as contended; the last finds no sleeper and is a no-op).
        let s = lock.primitive.state();
        assert_eq!(
            s,
            MockState {
                sleeping: 0,
                permits: 0,
                slept: 2,
                wakes: 3
            }
        );
        assert_eq!(*lock.lock(), 2);
        assert_eq!(lock.state.load(Ordering::Relaxed), FREE);
    }

    /// An uncontended take and release never call the primitive.
    #[test]
    fn uncontended_use_never_sleeps_or_wakes() {
        let lock = SleepLock::with_primitive(5u8, Mock::default());
        for _ in 0..3 {
            *lock.lock() += 1;
            assert_eq!(lock.state.load(Ordering::Relaxed), FREE);
        }
        assert_eq!(*lock.lock(), 8);
        assert_eq!(lock.primitive.state(), MockState::default());
    }

    /// The shared exclusion check really makes waiters sleep (so the instances' runs of it
    /// test their primitive's wakeups), and every sleeper was woken.
    #[test]
    fn excludes_and_a_sleeping_waiter_is_always_woken() {
        let lock = check_excludes_and_wakes(SleepLock::with_primitive(0, Mock::default()));
        let s = lock.primitive.state();
        assert!(s.slept > 0, "no waiter slept: {s:?}");
        assert!(s.wakes >= s.slept, "{s:?}");
        assert_eq!((s.sleeping, s.permits), (0, 0), "{s:?}");
    }
}
