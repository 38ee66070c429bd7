//! The engine's lock with `std` on Linux: a futex lock (both kinds, as std's mutex is) that
//! keeps no poison flag. std's `Mutex` checks the thread's panic count when it is taken and
//! again when it is released, for a poisoning the engine ignores ([`super::sync::lock`]);
//! on the token path — six locks a token — that was a tenth of the instructions. The state
//! machine is the classic three-state futex mutex, std's own: 0 free, 1 locked, 2 locked
//! with maybe a sleeper; a taker that finds it locked spins briefly, then marks it 2 and
//! sleeps on the futex; a release that finds 2 wakes one sleeper.

use super::sync::Lock;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const FREE: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and some thread may be asleep on the futex.
const CONTENDED: u32 = 2;
/// Tries before a contended lock sleeps (as std's).
const SPINS: u32 = 100;

/// A futex lock without poisoning.
#[derive(Default)]
pub(crate) struct FutexLock<T: ?Sized> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one holder at a time (acquire/release
// on `state`), so sharing the lock shares `T` only as a `Mutex` would: `T: Send` suffices.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Sync for FutexLock<T> {}
// SAFETY: as above; moving the lock moves the value.
#[allow(unsafe_code)]
unsafe impl<T: ?Sized + Send> Send for FutexLock<T> {}

impl<T> FutexLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        FutexLock {
            state: AtomicU32::new(FREE),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: ?Sized> FutexLock<T> {
    /// Take the lock, sleeping while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> FutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        FutexGuard { lock: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == FREE
                && self
                    .state
                    .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // Taking it as CONTENDED is conservative: the release then wakes a sleeper.
        while self.state.swap(CONTENDED, Ordering::Acquire) != FREE {
            futex(&self.state, libc::FUTEX_WAIT, CONTENDED);
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
        futex(&self.state, libc::FUTEX_WAKE, 1);
    }
}

/// `futex(2)` on `word`: `FUTEX_WAIT` sleeps while it holds `val` (or returns at once,
/// also on a signal or spuriously: the caller re-checks), `FUTEX_WAKE` wakes up to `val`
/// sleepers. Through glibc's `syscall()`, the call std's own mutex makes: inside
/// eventpoll-capi, which interposes `syscall()`, the number is not one it handles and goes
/// to the kernel through its raw path, which takes no lock (as std's futex calls there do).
fn futex(word: &AtomicU32, op: i32, val: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; the process-private
    // futex operations read it (WAIT) or only use its address (WAKE), with no timeout
    // pointer (null: wait without limit) and no second word.
    #[allow(unsafe_code)]
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            core::ptr::null::<libc::timespec>(),
        );
    }
}

impl<T: ?Sized> core::fmt::Debug for FutexLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FutexLock").finish_non_exhaustive()
    }
}

/// Holding a [`FutexLock`].
pub(crate) struct FutexGuard<'a, T: ?Sized> {
    lock: &'a FutexLock<T>,
}

impl<T: ?Sized> Deref for FutexGuard<'_, T> {
    type Target = T;
    #[inline]
    #[allow(unsafe_code)]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for FutexGuard<'_, T> {
    #[inline]
    #[allow(unsafe_code)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for FutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized> Lock for FutexLock<T> {
    type Target = T;
    type Guard<'a>
        = FutexGuard<'a, T>
    where
        Self: 'a;
    #[inline]
    fn acquire(&self) -> FutexGuard<'_, T> {
        self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use std::sync::Arc;

    /// Several threads increment a counter under the lock, with the critical section long
    /// enough now and then that waiters really sleep on the futex: no increment is lost and
    /// every thread finishes (no lost wakeup).
    #[test]
    fn excludes_and_a_sleeping_waiter_is_always_woken() {
        let lock = Arc::new(FutexLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let mut g = lock.lock();
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
        assert_eq!(*lock.lock(), 8_000);
        assert_eq!(lock.state.load(Ordering::Relaxed), FREE);
    }
}
