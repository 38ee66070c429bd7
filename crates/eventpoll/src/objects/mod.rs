//! Linux-faithful in-process objects: pipe, FIFO, eventfd, unix socket pairs and listeners,
//! timerfd (with a pluggable clock) and non-pollable files (a regular file, `/dev/null`). Each
//! reproduces the poll mask and the
//! wakeups (which operations wake, with which key) of its Linux counterpart, because those
//! decide what epoll reports, edge-triggered mode above all.
//!
//! Every object follows the same rules: the poll mask is computed from the object's state
//! under the object's own lock; a wait queue is woken only after that lock is released (the
//! queue runs epoll callbacks, which poll the object again); and the key passed to the wake
//! is the one Linux passes, because that key decides whether an edge-triggered item fires.
//! The kernel observations each model rests on are written next to the code and its tests.

pub mod eventfd;
pub mod fifo;
pub mod listener;
pub mod pipe;
pub mod regular;
pub mod socket;
pub mod timerfd;

/// Helpers shared by the objects' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::sync::{lock, Arc, Mutex};
    use crate::test_prelude::*;
    use crate::{Events, Exclusivity, WaitQueue, WakeCallback};
    use std::time::Duration;

    /// The longest any blocking test may take before it is declared hung.
    pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

    /// A wait-queue entry that records the key of every wakeup.
    #[derive(Default)]
    pub(crate) struct Recorder {
        keys: Mutex<Vec<Events>>,
    }

    impl WakeCallback for Recorder {
        fn wake(&self, key: Events) -> bool {
            lock(&self.keys).push(key);
            true
        }
    }

    impl Recorder {
        /// A recorder hung (non-exclusively) on `q`.
        pub(crate) fn attach(q: &WaitQueue) -> Arc<Recorder> {
            let r = Arc::new(Recorder::default());
            q.add(r.clone(), Exclusivity::NonExclusive);
            r
        }
        pub(crate) fn keys(&self) -> Vec<Events> {
            lock(&self.keys).clone()
        }
        pub(crate) fn count(&self) -> usize {
            lock(&self.keys).len()
        }
        pub(crate) fn last(&self) -> Option<Events> {
            lock(&self.keys).last().copied()
        }
    }

    /// Join `t`, failing the test if it does not finish within [`TIMEOUT`].
    pub(crate) fn join_within<T: Send + 'static>(t: std::thread::JoinHandle<T>) -> T {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !t.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "thread did not finish"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        t.join().unwrap()
    }
}
