//! Wait queues: the one wakeup mechanism of the engine. See [`WaitQueue`] for what a queue is and how it wakes.

// The declared back edge (see `Waiter`): the owner of an epoll item's entry.
use crate::epoll::{EpollShared, ItemOwner};
use crate::event::Events;
use crate::platform::Deadline;
use crate::prelude::*;
use crate::sync::{lock, Arc, AtomicU64, AtomicUsize, Ordering, SpinLock};
use smallvec::SmallVec;

/// A callback hung on a [`WaitQueue`].
///
/// ```
/// use eventpoll::{Events, Exclusivity, WaitQueue, WakeCallback};
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
///
/// struct Counter(AtomicU32);
/// impl WakeCallback for Counter {
///     fn wake(&self, _key: Events) -> bool {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         true
///     }
/// }
/// let q = WaitQueue::new();
/// let c = Arc::new(Counter(AtomicU32::new(0)));
/// q.add(c.clone(), Exclusivity::NonExclusive);
/// q.wake(Events::IN);
/// assert!(q.remove(&(c.clone() as Arc<dyn WakeCallback>)));
/// q.wake(Events::IN);
/// assert_eq!(c.0.load(Ordering::Relaxed), 1);
/// ```
pub trait WakeCallback: Send + Sync {
    /// Called with the queue's lock held. Returns whether this entry *accepted* the wakeup;
    /// for an exclusive entry, acceptance ends a [`WaitQueue::wake`].
    fn wake(&self, key: Events) -> bool;
}

/// Whether a queue entry is exclusive (Linux's `WQ_FLAG_EXCLUSIVE`): a
/// [`WaitQueue::wake`] calls every non-exclusive entry and stops after the first exclusive
/// one that accepts it. Blocked readers and writers of an object that one byte can satisfy
/// wait exclusively (a wakeup wakes one of them); callbacks that must all run do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusivity {
    /// Called by every wakeup; added at the head.
    NonExclusive,
    /// Ends a wake-one when it accepts; added at the tail.
    Exclusive,
}

impl Exclusivity {
    fn is_exclusive(self) -> bool {
        self == Exclusivity::Exclusive
    }
}

/// One entry of a queue: what it does when woken, and whether it is exclusive. Kept to 16
/// bytes (one per watch), so every variant holds a thin pointer.
///
/// The one declared back edge of the module graph (`tests/layering.rs`): an epoll item's
/// entry names its instance, an [`ItemOwner`] (a borrowed `EpollShared`, no reference
/// count) — as the kernel's `container_of` reaches the epitem from its wait entry. A `dyn` owner would be a fat pointer and make every
/// entry 24 bytes, with an indirect call per wakeup, on the engine's hottest path (one
/// entry per watch, one callback per wakeup). Everything else of the wait queue is below
/// `epoll`, and files reach their items only through [`WaitQueue::release_items`].
pub(crate) enum Waiter {
    /// An epoll item: run the epoll callback for `slot` of `ep`.
    Item {
        ep: ItemOwner,
        slot: u32,
        exclusive: bool,
    },
    /// A blocked thread; removed from the queue when woken.
    Thread {
        parker: Arc<Parker>,
        exclusive: bool,
    },
    /// A user callback; `once`: removed when called (a waiter, see
    /// [`WaitQueue::add_waiter_head`]).
    Callback {
        cb: Arc<WaiterHandle>,
        exclusive: bool,
        once: bool,
    },
}

/// A [`WakeCallback`] behind one thin pointer, as a wait queue holds it: made once, it can
/// be queued as a waiter any number of times ([`WaitQueue::add_waiter_handle_head`],
/// [`crate::Epoll::queue_waiter`]), each time for a reference count where a callback
/// given by itself costs an allocation (an entry is 16 bytes: a callback's own pointer,
/// with its type's, would not fit).
///
/// ```
/// use eventpoll::{Events, WaitQueue, WaiterHandle, WakeCallback};
/// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
/// struct Count(AtomicU32);
/// impl WakeCallback for Count {
///     fn wake(&self, _key: Events) -> bool { self.0.fetch_add(1, Ordering::SeqCst); true }
/// }
/// let count = Arc::new(Count(AtomicU32::new(0)));
/// let handle = WaiterHandle::new(count.clone());
/// let q = WaitQueue::new();
/// for _ in 0..3 {
///     q.add_waiter_handle_head(&handle); // queued; called once, then off the queue
///     q.wake(Events::IN);
/// }
/// assert_eq!(count.0.load(Ordering::SeqCst), 3);
/// assert!(q.is_empty());
/// ```
pub struct WaiterHandle(Arc<dyn WakeCallback>);

impl WaiterHandle {
    /// The handle of `callback`.
    pub fn new(callback: Arc<dyn WakeCallback>) -> Arc<WaiterHandle> {
        Arc::new(WaiterHandle(callback))
    }

    /// The callback it stands for.
    ///
    /// ```
    /// use eventpoll::{Events, WaiterHandle, WakeCallback};
    /// use std::sync::Arc;
    /// struct Nothing;
    /// impl WakeCallback for Nothing {
    ///     fn wake(&self, _key: Events) -> bool { false }
    /// }
    /// let cb: Arc<dyn WakeCallback> = Arc::new(Nothing);
    /// assert!(Arc::ptr_eq(WaiterHandle::new(cb.clone()).callback(), &cb));
    /// ```
    pub fn callback(&self) -> &Arc<dyn WakeCallback> {
        &self.0
    }
}

impl core::fmt::Debug for WaiterHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaiterHandle").finish_non_exhaustive()
    }
}

impl Waiter {
    fn is_exclusive(&self) -> bool {
        match self {
            Waiter::Item { exclusive, .. }
            | Waiter::Thread { exclusive, .. }
            | Waiter::Callback { exclusive, .. } => *exclusive,
        }
    }
}

/// A queue's entries: the first inline in the queue (most watched objects have exactly one
/// watcher, whose entry then shares the queue's cache line instead of a heap allocation of
/// its own); a second entry moves them all to the heap, as a `Vec` would hold them.
type Entries = SmallVec<[Waiter; 1]>;

/// A wait queue (Linux's `wait_queue_head_t`): an ordered list of entries that a
/// pollable object wakes when its state may have changed, passing a *key* (the poll bits that
/// changed; empty means "unspecified"). Three kinds of entry hang on the same queue:
///
/// - an epoll *item* hook: the epoll callback, which moves the item to its instance's ready
///   list;
/// - a *blocked thread* (a blocking pipe read, a thread in `epoll_wait`), woken and removed;
/// - a user [`WakeCallback`]; one hung as a *waiter* ([`WaitQueue::add_waiter_head`]) is,
///   like a blocked thread, removed when it is called (Linux's `autoremove_wake_function`):
///   an embedder's thread that sleeps outside the engine (in the host) but must count as
///   blocked in `epoll_wait`.
///
/// Ordering and exclusivity follow the kernel: non-exclusive entries are added at the head,
/// exclusive ones at the tail; [`WaitQueue::wake`] calls every non-exclusive entry and stops
/// after the first exclusive entry that *accepts* the wakeup (returns `true`);
/// [`WaitQueue::wake_all`] calls everything.
///
/// Callbacks run with the queue's lock held (as in the kernel), which is what makes removal
/// safe: once [`WaitQueue::remove`] returns, the entry's callback is not running and will not
/// run again. A callback must therefore never wait on this same queue or take a lock that is
/// held while waking it (see the lock order in `epoll`).
///
/// ```
/// use eventpoll::{Events, WaitQueue};
/// let q = WaitQueue::new();
/// assert!(q.is_empty());
/// q.wake(Events::IN); // waking an empty queue is a no-op
/// ```
#[derive(Default)]
pub struct WaitQueue {
    entries: SpinLock<Entries>,
    /// `entries.len()`, readable without the lock (Linux's lockless `waitqueue_active`);
    /// written only under the lock. Release/acquire is enough: the epoll callback reads it
    /// under its instance's `ready` lock, and every insertion it must not miss (a waiter
    /// queueing itself in `wait`, an outer instance hooking itself before polling) is
    /// ordered before that lock by the same lock.
    len: AtomicUsize,
    /// How many times the queue was woken ([`WaitQueue::wakeups`]); written only under the
    /// lock, so a plain load and store count exactly.
    wakeups: AtomicU64,
}

impl core::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitQueue")
            .field("entries", &lock(&self.entries).len())
            .finish()
    }
}

pub(crate) use crate::platform::park::{deferred, Parker, WakeReason};

/// A parked thread can hang on several queues at once through this (as `poll(2)` does).
impl WakeCallback for Parker {
    fn wake(&self, _key: Events) -> bool {
        self.notify()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is hung on the queue (Linux's `waitqueue_active` negated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of entries hung on the queue.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// How many times the queue has been woken ([`WaitQueue::wake`] or
    /// [`WaitQueue::wake_all`]): the identity of one wakeup, for a checker that asks
    /// whether two reports came from the same one (the `herd` of [`crate::check`]).
    ///
    /// ```
    /// use eventpoll::{Events, WaitQueue};
    /// let q = WaitQueue::new();
    /// q.wake(Events::IN);
    /// q.wake_all(Events::empty());
    /// assert_eq!(q.wakeups(), 2);
    /// ```
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Hang a callback on the queue; exclusive entries go to the tail and stop a
    /// [`WaitQueue::wake`] when they accept it, others go to the head.
    pub fn add(&self, callback: Arc<dyn WakeCallback>, exclusivity: Exclusivity) {
        self.insert(Waiter::Callback {
            cb: WaiterHandle::new(callback),
            exclusive: exclusivity.is_exclusive(),
            once: false,
        });
    }

    /// Hang `callback` as an exclusive *waiter* at the head of the queue (as
    /// `WaitQueue::insert_exclusive_head` queues a thread blocked in `epoll_wait`): it
    /// counts as a blocked thread — a wakeup reaches it before older waiters, and stops at
    /// it when it accepts — and it is removed when it is called, accepted or not (Linux's
    /// `ep_autoremove_wake_function`), so that the next wakeup goes to the next waiter.
    pub fn add_waiter_head(&self, callback: Arc<dyn WakeCallback>) {
        self.add_waiter_handle_head(&WaiterHandle::new(callback));
    }

    /// [`WaitQueue::add_waiter_head`] for a callback's [`WaiterHandle`]: no allocation.
    /// Taken off by [`WaitQueue::remove`] of its callback, or when called.
    ///
    /// ```
    /// use eventpoll::{Events, WaitQueue, WaiterHandle, WakeCallback};
    /// use std::sync::Arc;
    /// struct Yes;
    /// impl WakeCallback for Yes {
    ///     fn wake(&self, _key: Events) -> bool { true }
    /// }
    /// let cb: Arc<dyn WakeCallback> = Arc::new(Yes);
    /// let q = WaitQueue::new();
    /// q.add_waiter_handle_head(&WaiterHandle::new(cb.clone()));
    /// assert!(q.remove(&cb));
    /// ```
    pub fn add_waiter_handle_head(&self, handle: &Arc<WaiterHandle>) {
        self.insert_exclusive_head(Waiter::Callback {
            cb: handle.clone(),
            exclusive: true,
            once: true,
        });
    }

    /// Remove a callback added with [`WaitQueue::add`] (compared by pointer). Once this
    /// returns, the callback is not running and will not be called again from this queue.
    pub fn remove(&self, callback: &Arc<dyn WakeCallback>) -> bool {
        self.remove_where(
            |w| matches!(w, Waiter::Callback { cb, .. } if Arc::ptr_eq(&cb.0, callback)),
        )
    }

    /// Wake the queue: call every non-exclusive entry, and exclusive entries in order until
    /// one accepts (Linux's `wake_up_poll`). `key` is the set of bits that changed, or empty
    /// for "unspecified".
    pub fn wake(&self, key: Events) {
        self.wake_nr(key, 1, Events::empty())
    }

    /// Wake every entry, exclusive or not (Linux's `wake_up_all`).
    pub fn wake_all(&self, key: Events) {
        self.wake_nr(key, 0, Events::empty())
    }

    /// A wakeup without a key (as [`WaitQueue::wake_all`] with an empty key) of which
    /// another delivery brings the keyed part: epoll items interested in a bit of
    /// `covered` are left alone (but `EXCLUSIVE` ones, which a keyed wakeup may not
    /// reach), every other entry is woken. For an embedder whose host
    /// reports one wakeup twice — once as a key-less call it sees being made, once as
    /// readiness with the bits `covered` — so that each item of the file is woken once,
    /// as by the single wakeup Linux makes (a second wakeup of a queued item would wake a
    /// second blocked thread).
    ///
    /// ```
    /// use eventpoll::objects::eventfd::{EventFd, EventFdMode};
    /// use eventpoll::{Epoll, EventBuffer, Events, File, Interest};
    /// use std::time::Duration;
    ///
    /// let efd = File::new(EventFd::new(0, EventFdMode::Counter));
    /// let ep = Epoll::new();
    /// ep.add(&efd, Interest::from_events(Events::OUT | Events::ET), 1).unwrap();
    /// let mut got = EventBuffer::with_capacity(4);
    /// assert_eq!(ep.wait(&mut got, Some(Duration::ZERO)), Ok(1)); // the add's edge
    /// let q = efd.downcast::<EventFd>().unwrap().queue();
    /// q.wake_uncovered(Events::OUT); // the OUT item is left to the keyed delivery
    /// assert_eq!(ep.wait(&mut got, Some(Duration::ZERO)), Ok(0));
    /// q.wake_uncovered(Events::IN); // not covered: queued, as by `wake_all`
    /// assert_eq!(ep.wait(&mut got, Some(Duration::ZERO)), Ok(1));
    /// ```
    pub fn wake_uncovered(&self, covered: Events) {
        self.wake_nr(Events::empty(), 0, covered)
    }

    fn wake_nr(&self, key: Events, mut nr_exclusive: usize, covered: Events) {
        // Declared before the lock so that it drops after it: woken threads are unparked
        // once this queue's lock (and any lock the caller holds under an outer guard) is
        // released, instead of waking straight into a contended mutex.
        let _unparks = deferred::Unparks::begin();
        let mut entries = lock(&self.entries);
        let n = self.wakeups.load(Ordering::Relaxed);
        self.wakeups.store(n.wrapping_add(1), Ordering::Relaxed);
        let mut i = 0;
        let mut removed = false;
        // One look-up per entry (`get`: where the entries live, inline or on the heap, is
        // decided once per step).
        while let Some(entry) = entries.get(i) {
            let exclusive = entry.is_exclusive();
            let (accepted, remove) = match entry {
                Waiter::Item { ep, slot, .. }
                    if !covered.is_empty() && ep.item_interested(*slot, covered) =>
                {
                    (false, false)
                }
                Waiter::Item { ep, slot, .. } => (ep.item_callback(*slot, key), false),
                Waiter::Thread { parker, .. } => (parker.notify(), true),
                Waiter::Callback { cb, once, .. } => (cb.0.wake(key), *once),
            };
            if remove {
                entries.remove(i);
                removed = true;
            } else {
                i += 1;
            }
            if exclusive && accepted {
                nr_exclusive = nr_exclusive.wrapping_sub(1);
                if nr_exclusive == 0 {
                    break;
                }
            }
        }
        if removed {
            self.len.store(entries.len(), Ordering::Release);
        }
    }

    /// Hook an entry: exclusive ones at the tail, others at the head. The first entry of a
    /// queue is held inline (see `Entries`); past it, one more entry is reserved at a time.
    pub(crate) fn insert(&self, waiter: Waiter) {
        let mut entries = lock(&self.entries);
        entries.reserve_exact(1);
        if waiter.is_exclusive() {
            entries.push(waiter);
        } else {
            entries.insert(0, waiter);
        }
        self.len.store(entries.len(), Ordering::Release);
    }

    /// Linux's `__add_wait_queue_exclusive`: an exclusive waiter at the *head*, so that
    /// the thread that went to sleep last is woken first. `ep_poll` queues threads in
    /// `epoll_wait` this way (unlike `add_wait_queue_exclusive`, which appends): of several
    /// threads blocked on one instance, one wakeup reaches the newest sleeper —
    /// `scenarios/threads/` pins it on the kernel.
    pub(crate) fn insert_exclusive_head(&self, waiter: Waiter) {
        debug_assert!(waiter.is_exclusive());
        let mut entries = lock(&self.entries);
        entries.reserve_exact(1);
        entries.insert(0, waiter);
        self.len.store(entries.len(), Ordering::Release);
    }

    pub(crate) fn remove_where(&self, mut pred: impl FnMut(&Waiter) -> bool) -> bool {
        let mut entries = lock(&self.entries);
        let found = match entries.iter().position(&mut pred) {
            Some(i) => {
                entries.remove(i);
                true
            }
            None => false,
        };
        // The allocation is kept: an object re-watched after a DEL reuses it.
        self.len.store(entries.len(), Ordering::Release);
        found
    }

    /// The epoll items hooked on this queue, as (instance, slot) pairs.
    pub(crate) fn items(&self) -> Vec<(Arc<EpollShared>, u32)> {
        self.items_inner()
    }

    /// The open file description `description` (its identity, `File::description_id`)
    /// whose object owns this queue is being released: every epoll item watching it is
    /// removed (Linux's `eventpoll_release`, which `__fput` calls before the object's
    /// release). This is how a file reaches its items without naming epoll; each item's
    /// entries on the object's other queue (`FileOps::extra_wait_queue`) go with it.
    pub(crate) fn release_items(&self, description: usize) {
        if self.is_empty() {
            return;
        }
        for (ep, slot) in self.items_inner() {
            ep.release_file_item(slot, description);
        }
    }

    fn items_inner(&self) -> Vec<(Arc<EpollShared>, u32)> {
        lock(&self.entries)
            .iter()
            .filter_map(|e| match e {
                Waiter::Item { ep, slot, .. } => Some((ep.to_arc(), *slot)),
                _ => None,
            })
            .collect()
    }

    /// Whether an epoll item is hooked on this queue (Linux's non-empty `file->f_ep`).
    pub(crate) fn has_items(&self) -> bool {
        !self.is_empty()
            && lock(&self.entries)
                .iter()
                .any(|e| matches!(e, Waiter::Item { .. }))
    }

    pub(crate) fn remove_thread(&self, parker: &Arc<Parker>) -> bool {
        self.remove_where(
            |w| matches!(w, Waiter::Thread { parker: p, .. } if Arc::ptr_eq(p, parker)),
        )
    }

    /// Block the calling thread on this queue until `attempt` yields a value (Linux's
    /// `wait_event_interruptible_exclusive` shape, used by blocking reads and writes of the
    /// objects).
    ///
    /// `attempt` is tried first, then again after the thread is queued, so a wakeup between
    /// the two is never lost. Returns `Err(EAGAIN)` when `deadline` passes and `Err(EINTR)`
    /// when the thread's [`crate::Interrupt`] is raised.
    ///
    /// ```
    /// use eventpoll::{Errno, Exclusivity, WaitQueue};
    /// use eventpoll::platform::MonotonicClock;
    /// use eventpoll::platform::Deadline;
    /// use std::time::Duration;
    /// let q = WaitQueue::new();
    /// let deadline = Deadline::after(&MonotonicClock, Duration::from_millis(5));
    /// let r: Result<(), Errno> = q.block_until(Exclusivity::Exclusive, deadline, || None);
    /// assert_eq!(r, Err(Errno::EAGAIN));
    /// ```
    pub fn block_until<T>(
        &self,
        exclusivity: Exclusivity,
        deadline: Option<Deadline<'_>>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> crate::Result<T> {
        let exclusive = exclusivity.is_exclusive();
        loop {
            if let Some(v) = attempt() {
                return Ok(v);
            }
            let parker = Parker::for_current_task();
            self.insert(Waiter::Thread {
                parker: parker.clone(),
                exclusive,
            });
            if let Some(v) = attempt() {
                self.remove_thread(&parker);
                return Ok(v);
            }
            let signal = crate::signal::current();
            let reason = signal.sleep_interruptibly(&parker, deadline);
            self.remove_thread(&parker);
            match reason {
                WakeReason::Woken => {}
                WakeReason::TimedOut => return attempt().ok_or(crate::Errno::EAGAIN),
                WakeReason::Interrupted => {
                    signal.clear(); // delivered, as an EINTR return delivers a signal
                    return Err(crate::Errno::EINTR);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Probe {
        calls: AtomicUsize,
        accept: bool,
    }
    impl WakeCallback for Probe {
        fn wake(&self, _key: Events) -> bool {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.accept
        }
    }
    fn probe(accept: bool) -> Arc<Probe> {
        Arc::new(Probe {
            calls: AtomicUsize::new(0),
            accept,
        })
    }

    #[test]
    fn exclusive_wake_stops_after_first_accepting_exclusive() {
        let q = WaitQueue::new();
        let (a, b, c, d) = (probe(true), probe(false), probe(true), probe(true));
        q.add(b.clone(), Exclusivity::Exclusive); // exclusive, refuses
        q.add(c.clone(), Exclusivity::Exclusive); // exclusive, accepts: stops here
        q.add(d.clone(), Exclusivity::Exclusive); // never reached by wake()
        q.add(a.clone(), Exclusivity::NonExclusive); // non-exclusive, at the head
        q.wake(Events::IN);
        let n = |p: &Arc<Probe>| p.calls.load(Ordering::Relaxed);
        assert_eq!((n(&a), n(&b), n(&c), n(&d)), (1, 1, 1, 0));
        q.wake_all(Events::empty());
        assert_eq!((n(&a), n(&b), n(&c), n(&d)), (2, 2, 2, 1));
    }

    #[test]
    fn a_waiter_is_woken_newest_first_and_removed_when_called() {
        let q = WaitQueue::new();
        let (old, new, item) = (probe(true), probe(true), probe(false));
        q.add(item.clone(), Exclusivity::Exclusive); // an exclusive item-like entry that refuses
        q.add_waiter_head(old.clone());
        q.add_waiter_head(new.clone());
        assert_eq!(q.len(), 3);
        q.wake(Events::IN);
        let n = |p: &Arc<Probe>| p.calls.load(Ordering::Relaxed);
        // The newest waiter accepts and the wakeup stops there; it left the queue.
        assert_eq!((n(&new), n(&old), n(&item)), (1, 0, 0));
        assert_eq!(q.len(), 2);
        q.wake(Events::IN);
        assert_eq!((n(&new), n(&old), n(&item)), (1, 1, 0));
        assert_eq!(q.len(), 1);
        let old_dyn: Arc<dyn WakeCallback> = old.clone();
        assert!(!q.remove(&old_dyn));
    }

    #[test]
    fn an_entry_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Waiter>(), 16);
    }

    #[test]
    fn one_entry_inline_costs_no_more_than_a_vec() {
        assert_eq!(
            std::mem::size_of::<Entries>(),
            std::mem::size_of::<Vec<Waiter>>()
        );
        let q = WaitQueue::new();
        let (a, b) = (probe(true), probe(true));
        q.add(a.clone(), Exclusivity::NonExclusive);
        assert!(!lock(&q.entries).spilled(), "one entry stays inline");
        q.add(b.clone(), Exclusivity::Exclusive);
        assert!(lock(&q.entries).spilled());
        q.wake(Events::IN);
        let n = |p: &Arc<Probe>| p.calls.load(Ordering::Relaxed);
        assert_eq!((n(&a), n(&b)), (1, 1));
    }

    #[test]
    fn block_until_wakes_on_wake() {
        let q = Arc::new(WaitQueue::new());
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (q2, f2) = (q.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            q2.block_until(Exclusivity::Exclusive, None, || {
                f2.load(Ordering::Acquire).then_some(7)
            })
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        flag.store(true, Ordering::Release);
        q.wake(Events::IN);
        assert_eq!(t.join().unwrap(), Ok(7));
        assert!(q.is_empty());
    }
}
