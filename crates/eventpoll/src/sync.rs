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
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, park_timeout, Thread};

    #[cfg(loom)]
    pub(crate) use loom_park::{current, park, park_timeout, Thread};

    /// std's park/unpark token, built from a loom mutex and condition variable. loom's own
    /// `Thread::unpark` wakes its target whatever the target is blocked on — a mutex, a
    /// join — not only `park` (loom issue #249), so an unpark that std would leave as a
    /// token for the next `park` aborts a model with "expected to be able to acquire lock"
    /// when it reaches a thread blocked on a mutex. The engine unparks after publishing the
    /// wakeup, and the woken thread may see it and go on into a mutex before the unpark
    /// lands, which is legal with std; this token keeps it legal in models.
    #[cfg(loom)]
    mod loom_park {
        use loom::sync::{Arc, Condvar, Mutex};

        struct Token {
            set: Mutex<bool>,
            cv: Condvar,
        }

        /// A thread's handle, for unparking it.
        #[derive(Clone)]
        pub(crate) struct Thread(Arc<Token>);

        loom::thread_local! {
            static CURRENT: Thread = Thread(Arc::new(Token {
                set: Mutex::new(false),
                cv: Condvar::new(),
            }));
        }

        /// The calling thread's handle.
        pub(crate) fn current() -> Thread {
            CURRENT.with(|t| t.clone())
        }

        impl Thread {
            /// Make the token available and wake the thread if it is parked.
            pub(crate) fn unpark(&self) {
                *self.0.set.lock().unwrap() = true;
                self.0.cv.notify_one();
            }
        }

        /// Block until the token is available, then consume it.
        pub(crate) fn park() {
            let me = current();
            let mut set = me.0.set.lock().unwrap();
            while !*set {
                set = me.0.cv.wait(set).unwrap();
            }
            *set = false;
        }

        /// loom has no timed park; a model treats a timeout as an explicit event instead.
        pub(crate) fn park_timeout(_d: std::time::Duration) {
            park()
        }
    }
}

/// A mutex usable in a `static` (loom's is not const-constructible); used only for the
/// global nesting-check lock, which loom models do not exercise.
pub(crate) type GlobalMutex<T> = std::sync::Mutex<T>;
