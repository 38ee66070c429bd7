//! [`Waker`]: wake a thread blocked in a wait on an instance from any other thread, without
//! an object of one's own — `polling`'s `Poller::notify`, and what mio's `Waker` is for.
//! How a wakeup is delivered is documented on [`Waker`].

use super::{Epoll, EpollShared};
use crate::event::Events;
use crate::sync::{lock, Arc, Ordering};

/// Wakes a blocked wait on one epoll instance from any thread, without an object of one's
/// own. Cheap to clone; `Send` and `Sync`.
///
/// # Delivery
///
/// A wakeup is a flag on the instance, not an item: nothing is added to the interest list,
/// no watch is charged, no event is reported, and an instance whose waker is never used is
/// exactly Linux's. [`Waker::wake`] sets the flag and wakes one blocked waiter (as one
/// item's wakeup does). The next return of a wait on the instance — whichever thread makes
/// it, and whatever it returns — takes the flag; if that wait has no event to report, it
/// returns `Ok(0)` at once instead of sleeping until its timeout. Wakeups made before that
/// return merge into one, as an eventfd's counter does for mio's waker.
///
/// So the one visible difference from Linux, and only once `wake` is called, is an
/// `epoll_wait` that returns 0 before its timeout. A caller that needs to know *why* it
/// woke keeps its own state (a channel, an atomic) and checks it after every wait — the
/// same loop mio and `polling` ask for. A caller that wants a wakeup to be an *event* with
/// its own data (mio's token) watches an eventfd instead
/// ([`objects::eventfd`](crate::objects::eventfd)).
///
/// Waits through [`Epoll::wait`], [`Epoll::wait_into`], [`Epoll::wait_into_sink`] and the
/// descriptor table's `epoll_wait` family see the flag. A thread queued with
/// [`Epoll::queue_waiter`] (an embedder that sleeps in its host) has its callback called,
/// and sees the flag on its next wait through the engine. Outer instances that watch this
/// one are not woken: the instance does not become readable.
///
/// Holding a `Waker` does not keep the instance's items alive: when the instance's last
/// handle and descriptor are gone its items are removed as usual, and `wake` does nothing
/// useful any more (it cannot fail).
///
/// ```
/// use eventpoll::{Epoll, EventBuffer};
/// use std::time::{Duration, Instant};
///
/// let epoll = Epoll::new();
/// let waker = epoll.waker();
/// let start = Instant::now();
/// let woken = std::thread::spawn(move || {
///     let mut events = EventBuffer::with_capacity(8);
///     // Would sleep ten seconds with nothing watched; the waker ends it early.
///     epoll.wait(&mut events, Some(Duration::from_secs(10))).unwrap()
/// });
/// std::thread::sleep(Duration::from_millis(20));
/// waker.wake();
/// assert_eq!(woken.join().unwrap(), 0); // woken, with no event
/// assert!(start.elapsed() < Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct Waker {
    ep: Arc<EpollShared>,
}

// Checked at compile time: a waker can be sent to, and shared with, any thread.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Waker>();
};

impl core::fmt::Debug for Waker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waker")
            .field("pending", &self.ep.notified.load(Ordering::Relaxed))
            .finish()
    }
}

impl Waker {
    /// Wake one thread blocked in a wait on the instance, or, if none is blocked, make the
    /// next wait return at once. Wakeups not yet taken by a wait merge into one.
    pub fn wake(&self) {
        let _unparks = crate::wait_queue::deferred::Unparks::begin();
        // Under `ready`, as an item's callback links an item: a waiter checks the flag and
        // queues itself under the same lock, so it either sees the flag or is woken here.
        let _r = lock(&self.ep.ready);
        self.ep.notified.store(true, Ordering::Relaxed);
        if !self.ep.wq.is_empty() {
            self.ep.wq.wake(Events::empty());
        }
    }

    /// Whether this waker's instance is `epoll`.
    pub fn wakes(&self, epoll: &Epoll) -> bool {
        Arc::ptr_eq(&self.ep, &epoll.ep)
    }
}

impl EpollShared {
    /// Take a [`Waker`]'s pending wakeup: `true` if there was one. A plain load first, so
    /// that a wait on an instance without a waker pays no read-modify-write.
    pub(super) fn take_notification(&self) -> bool {
        self.notified.load(Ordering::Relaxed) && self.notified.swap(false, Ordering::Relaxed)
    }
}

impl Waker {
    /// The waker of instance `ep` (for the descriptor table's `epoll_waker`).
    pub(crate) fn of(ep: Arc<EpollShared>) -> Waker {
        Waker { ep }
    }
}

impl Epoll {
    /// A [`Waker`] for this instance: wakes a thread blocked in [`Epoll::wait`] from another
    /// thread. Every waker of an instance sets the same flag (see [`Waker`]).
    ///
    /// ```
    /// use eventpoll::{Epoll, EventBuffer};
    /// use std::time::Duration;
    /// let epoll = Epoll::new();
    /// epoll.waker().wake(); // nobody is waiting: the next wait returns at once
    /// let mut events = EventBuffer::with_capacity(4);
    /// assert_eq!(epoll.wait(&mut events, None).unwrap(), 0);
    /// assert!(epoll.is_empty()); // no item was added for it
    /// ```
    #[doc(alias = "notify")]
    pub fn waker(&self) -> Waker {
        Waker {
            ep: self.ep.clone(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::objects::pipe::pipe;
    use crate::test_prelude::*;
    use crate::{Errno, EventBuffer, FdTable, Interest};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Generous bound for "returned promptly" on a loaded 2-core machine.
    const PROMPT: Duration = Duration::from_secs(5);

    #[test]
    fn wakes_a_thread_blocked_without_limit() {
        let epoll = Epoll::new();
        let waker = epoll.waker();
        let (tx, rx) = mpsc::channel();
        let e = epoll.clone();
        let t = std::thread::spawn(move || {
            let mut events = EventBuffer::with_capacity(4);
            tx.send(e.wait(&mut events, None)).unwrap();
        });
        // Let it block: nothing arrives without the wake.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        let start = Instant::now();
        waker.wake();
        assert_eq!(rx.recv_timeout(PROMPT).expect("woken"), Ok(0));
        assert!(start.elapsed() < PROMPT);
        t.join().unwrap();
        // Taken: the next wait times out normally.
        let mut events = EventBuffer::with_capacity(4);
        let start = Instant::now();
        assert_eq!(
            epoll.wait(&mut events, Some(Duration::from_millis(30))),
            Ok(0)
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wakeups_merge_and_a_wait_with_events_takes_them() {
        let epoll = Epoll::new();
        let (r, w) = pipe(0);
        epoll.add(&r, Interest::READABLE, 5).unwrap();
        let waker = epoll.waker();
        waker.wake();
        waker.clone().wake();
        w.write(b"x").unwrap();
        let mut events = EventBuffer::with_capacity(4);
        // The wait reports the event and takes the (merged) wakeup with it.
        assert_eq!(epoll.wait(&mut events, None), Ok(1));
        assert_eq!(events.as_slice()[0].data(), 5);
        let mut buf = [0u8; 1];
        r.read(&mut buf).unwrap();
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)), Ok(0));
        assert!(!format!("{waker:?}").contains("true"));
    }

    #[test]
    fn invisible_to_the_interest_list_and_ready_list() {
        let epoll = Epoll::new();
        let waker = epoll.waker();
        assert!(waker.wakes(&epoll) && !waker.wakes(&Epoll::new()));
        waker.wake();
        assert!(epoll.is_empty());
        assert!(!epoll.has_ready());
        assert!(epoll.item_states().is_empty());
        // Polling the instance (as an outer instance or poll(2) would) sees nothing.
        assert!(epoll.file().poll().is_empty());
    }

    #[test]
    fn wakes_one_of_several_waiters() {
        let epoll = Epoll::new();
        let waker = epoll.waker();
        let (tx, rx) = mpsc::channel();
        let spawned = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (e, tx) = (epoll.clone(), tx.clone());
                std::thread::spawn(move || {
                    let mut events = EventBuffer::with_capacity(4);
                    tx.send(e.wait(&mut events, Some(Duration::from_millis(600))))
                        .unwrap();
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        waker.wake();
        assert_eq!(rx.recv_timeout(PROMPT).unwrap(), Ok(0));
        assert!(start.elapsed() < PROMPT);
        // The other one sleeps until its own timeout, 600 ms after it started waiting.
        assert_eq!(rx.recv_timeout(PROMPT).unwrap(), Ok(0));
        assert!(spawned.elapsed() >= Duration::from_millis(600));
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn table_level_wait() {
        let table = std::sync::Arc::new(FdTable::new());
        let epfd = table.epoll_create1(0).unwrap();
        let (r, w) = table.pipe2(0).unwrap();
        assert_eq!(table.epoll_waker(r).err(), Some(Errno::EINVAL));
        assert_eq!(table.epoll_waker(999).err(), Some(Errno::EBADF));
        let waker = table.epoll_waker(epfd).unwrap();
        let t2 = table.clone();
        let t = std::thread::spawn(move || {
            let mut events = [crate::EpollEvent::default(); 4];
            t2.epoll_wait(epfd, &mut events, 4, -1)
        });
        std::thread::sleep(Duration::from_millis(30));
        waker.wake();
        assert_eq!(t.join().unwrap(), Ok(0));
        // Unchanged interest list, and Linux's behaviour otherwise.
        assert!(table.epoll_items(epfd).unwrap().is_empty());
        let _ = w;
    }
}

/// loom model (run by `scripts/loom.sh waker`): a wake racing a thread that is about to
/// block is never lost — the waiter either sees the flag under the ready list's lock or
/// is queued before the wake takes that lock, and is woken. A lost wakeup parks forever,
/// which loom reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::EventBuffer;

    #[test]
    fn loom_models_waker_vs_wait() {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(|| {
            let epoll = Epoll::new();
            let waker = epoll.waker();
            let t = loom::thread::spawn(move || waker.wake());
            let mut events = EventBuffer::with_capacity(1);
            assert_eq!(epoll.wait(&mut events, None), Ok(0));
            t.join().unwrap();
            // The one wakeup was taken by the wait that it ended.
            assert!(!epoll.ep.notified.load(Ordering::Relaxed));
        });
    }
}
