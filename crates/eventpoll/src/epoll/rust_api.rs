//! The Rust-idiomatic layer: [`Epoll`], [`Interest`] and [`EventBuffer`], in the spirit of
//! mio and polling, over the same instances as the Linux-shaped calls — but any number of
//! threads may wait on one [`Epoll`] at once.
//!
//! Items added through this layer are keyed by their [`File`] alone (there is no descriptor
//! number; the key uses -1).

use super::{EpollShared, User, DEFAULT_MAX_USER_WATCHES};
use crate::errno::Result;
use crate::event::{EpollEvent, Events, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use crate::file::File;
use crate::prelude::*;
use crate::sync::Arc;
use core::ops::BitOr;
use core::time::Duration;

/// The descriptor number used in interest keys by this layer.
const NO_FD: i32 = -1;

/// What to watch for, and how to report it.
///
/// ```
/// use eventpoll::{Events, Interest};
/// let i = (Interest::READABLE | Interest::WRITABLE).edge();
/// assert_eq!(i.events(), Events::IN | Events::OUT | Events::ET);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(Events);

impl Interest {
    /// `EPOLLIN`.
    pub const READABLE: Interest = Interest(Events::IN);
    /// `EPOLLOUT`.
    pub const WRITABLE: Interest = Interest(Events::OUT);
    /// `EPOLLPRI`.
    pub const PRIORITY: Interest = Interest(Events::PRI);
    /// `EPOLLRDHUP`.
    pub const READ_CLOSED: Interest = Interest(Events::RDHUP);

    /// Any raw set of bits.
    pub const fn from_events(events: Events) -> Interest {
        Interest(events)
    }
    /// The bits.
    pub const fn events(self) -> Events {
        self.0
    }
    /// Edge-triggered (`EPOLLET`): reported once per wakeup of the file.
    pub const fn edge(self) -> Interest {
        Interest(self.0.union(Events::ET))
    }
    /// One-shot (`EPOLLONESHOT`): disabled after one report until [`Epoll::modify`].
    pub const fn oneshot(self) -> Interest {
        Interest(self.0.union(Events::ONESHOT))
    }
    /// Exclusive (`EPOLLEXCLUSIVE`): among instances watching one file exclusively, a wakeup
    /// goes to one that has a waiter.
    pub const fn exclusive(self) -> Interest {
        Interest(self.0.union(Events::EXCLUSIVE))
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

/// A reusable buffer of returned events.
///
/// ```
/// use eventpoll::EventBuffer;
/// let events = EventBuffer::with_capacity(64);
/// assert_eq!((events.capacity(), events.len()), (64, 0));
/// ```
#[derive(Clone, Debug)]
pub struct EventBuffer {
    buf: Vec<EpollEvent>,
    len: usize,
}

impl EventBuffer {
    /// Room for `capacity` events per wait (at least one).
    pub fn with_capacity(capacity: usize) -> EventBuffer {
        EventBuffer {
            buf: vec![EpollEvent::default(); capacity.max(1)],
            len: 0,
        }
    }
    /// How many events one wait can return.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Events returned by the last wait.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the last wait returned nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The events returned by the last wait, in order.
    pub fn iter(&self) -> core::slice::Iter<'_, EpollEvent> {
        self.buf[..self.len].iter()
    }
    /// The events as a slice.
    pub fn as_slice(&self) -> &[EpollEvent] {
        &self.buf[..self.len]
    }
}

impl<'a> IntoIterator for &'a EventBuffer {
    type Item = &'a EpollEvent;
    type IntoIter = core::slice::Iter<'a, EpollEvent>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// An epoll instance ([epoll(7)]). Cloning shares the instance (like `dup`); the instance is released,
/// and its items removed, when the last clone and every descriptor of it are gone.
///
/// ```
/// use eventpoll::{Epoll, EventBuffer, Interest, objects::pipe::pipe};
/// use std::time::Duration;
/// let (r, w) = pipe(0);
/// let epoll = Epoll::new();
/// epoll.add(&r, Interest::READABLE.edge(), 1).unwrap();
/// w.write(b"hello").unwrap();
/// let mut events = EventBuffer::with_capacity(16);
/// assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
/// // Edge-triggered: nothing more until the next write.
/// assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
/// ```
///
/// [epoll(7)]: https://man7.org/linux/man-pages/man7/epoll.7.html
#[doc(alias = "epoll")]
#[derive(Clone)]
pub struct Epoll {
    file: File,
    pub(super) ep: Arc<EpollShared>,
}

impl core::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Epoll")
            .field("watches", &self.len())
            .finish()
    }
}

impl Default for Epoll {
    fn default() -> Self {
        Self::new()
    }
}

impl Epoll {
    /// A new instance with its own watch budget ([epoll_create1(2)]).
    ///
    /// [epoll_create1(2)]: https://man7.org/linux/man-pages/man2/epoll_create.2.html
    #[doc(alias = "epoll_create", alias = "epoll_create1")]
    pub fn new() -> Epoll {
        Epoll::with_user(User::new(DEFAULT_MAX_USER_WATCHES))
    }

    /// A new instance charging `user`'s watch budget.
    pub fn with_user(user: Arc<User>) -> Epoll {
        Epoll::with_clock(user, crate::platform::default_clock())
    }

    /// A new instance charging `user`'s watch budget whose `wait` timeouts are measured on
    /// `clock` (a [`ManualClock`](crate::platform::ManualClock): they end when it is
    /// advanced past them).
    ///
    /// ```
    /// use eventpoll::{Epoll, EventBuffer, User};
    /// use eventpoll::platform::ManualClock;
    /// use std::{sync::Arc, time::Duration};
    /// let clock = Arc::new(ManualClock::new());
    /// let epoll = Epoll::with_clock(User::new(16), clock.clone());
    /// let c = clock.clone();
    /// let advancer = std::thread::spawn(move || {
    ///     while c.pending() == 0 { std::thread::yield_now(); } // the waiter's timer
    ///     c.advance(Duration::from_secs(60));
    /// });
    /// let mut events = EventBuffer::with_capacity(4);
    /// assert_eq!(epoll.wait(&mut events, Some(Duration::from_secs(60))), Ok(0));
    /// advancer.join().unwrap();
    /// ```
    pub fn with_clock(user: Arc<User>, clock: Arc<dyn crate::platform::Clock>) -> Epoll {
        let file = EpollShared::new_file(user, clock);
        let ep = file
            .epoll_arc()
            .expect("a new epoll file is an epoll instance");
        Epoll { file, ep }
    }

    /// The instance as an open file description: add it to another instance, `poll` it,
    /// or install it in a descriptor table.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Number of items watched.
    pub fn len(&self) -> usize {
        self.ep.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ctl_interest(&self, op: i32, file: &File, interest: Interest, data: u64) -> Result<()> {
        self.ctl(op, file, NO_FD, EpollEvent::new(interest.0, data))
    }

    /// Watch `file` (`EPOLL_CTL_ADD`, [epoll_ctl(2)]); `data` comes back with its events.
    /// Errors as Linux: `EEXIST`, `EPERM` (not pollable), `ELOOP`, `EINVAL`, `ENOSPC`.
    ///
    /// **The item lives only as long as the `File`.** The instance does not keep `file`
    /// alive: when the last handle of the description is dropped (every clone, every
    /// descriptor-table entry), the description is released and its item removed, as
    /// closing the last descriptor of a file removes its items on Linux. Nothing is
    /// reported for it afterwards — not even a hang-up. Keep the `File` for as long as you
    /// want its events. The mistake:
    ///
    /// ```
    /// use eventpoll::{Epoll, Errno, EventBuffer, File, Interest, objects::pipe::pipe};
    /// use std::time::Duration;
    ///
    /// /// Make a pipe, watch its read end, hand out the write end. The mistake: nothing
    /// /// keeps `reader`, so it is dropped on return, and its item with it.
    /// fn watched_pipe(epoll: &Epoll) -> File {
    ///     let (reader, writer) = pipe(0);
    ///     epoll.add(&reader, Interest::READABLE, 1).unwrap();
    ///     writer
    /// }
    ///
    /// let epoll = Epoll::new();
    /// let writer = watched_pipe(&epoll);
    /// assert!(epoll.is_empty()); // the item is gone
    /// assert_eq!(writer.write(b"lost"), Err(Errno::EPIPE)); // and so is the reader
    /// let mut events = EventBuffer::with_capacity(4);
    /// assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
    /// // The fix: return (or store) `reader` too, for as long as its events matter.
    /// ```
    ///
    /// [epoll_ctl(2)]: https://man7.org/linux/man-pages/man2/epoll_ctl.2.html
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_ADD", alias = "register")]
    pub fn add(&self, file: &File, interest: Interest, data: u64) -> Result<()> {
        self.ctl_interest(EPOLL_CTL_ADD, file, interest, data)
    }

    /// Change an item's interest and data (`EPOLL_CTL_MOD`, [epoll_ctl(2)]); re-arms a
    /// one-shot item.
    ///
    /// [epoll_ctl(2)]: https://man7.org/linux/man-pages/man2/epoll_ctl.2.html
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_MOD", alias = "reregister")]
    pub fn modify(&self, file: &File, interest: Interest, data: u64) -> Result<()> {
        self.ctl_interest(EPOLL_CTL_MOD, file, interest, data)
    }

    /// Stop watching `file` (`EPOLL_CTL_DEL`, [epoll_ctl(2)]); a pending event is dropped.
    ///
    /// [epoll_ctl(2)]: https://man7.org/linux/man-pages/man2/epoll_ctl.2.html
    #[doc(alias = "epoll_ctl", alias = "EPOLL_CTL_DEL", alias = "deregister")]
    pub fn delete(&self, file: &File) -> Result<()> {
        self.ctl_interest(EPOLL_CTL_DEL, file, Interest(Events::empty()), 0)
    }

    /// The instance behind `file`, if `file` is an epoll instance's description (as
    /// [`Epoll::file`] returns it, or as an embedder keeps it in its own descriptor table).
    ///
    /// ```
    /// use eventpoll::{Epoll, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// assert!(Epoll::from_file(epoll.file()).is_some());
    /// assert!(Epoll::from_file(&pipe(0).0).is_none());
    /// ```
    pub fn from_file(file: &File) -> Option<Epoll> {
        let ep = file.epoll_arc()?;
        Some(Epoll {
            file: file.clone(),
            ep,
        })
    }

    /// [epoll_ctl(2)] for an embedder that keeps its own descriptor numbers (a C ABI, a
    /// user-space kernel): `op` is raw (`EPOLL_CTL_ADD`, ... or anything else for `EINVAL`),
    /// and the item is keyed by (`file`, `fd`) as on Linux, so two descriptors of one
    /// description make two items. The caller has already done Linux's first steps (the
    /// copy-in of `event`, `EFAULT`, and resolving both descriptors, `EBADF`); this does the
    /// rest in Linux's order (`EPERM`, `EINVAL`, `ELOOP`, `EEXIST`, `ENOENT`, `ENOSPC`).
    /// `event` is ignored for `EPOLL_CTL_DEL`.
    ///
    /// ```
    /// use eventpoll::{Epoll, EpollEvent, Errno, Events, linux::EPOLL_CTL_ADD, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, _w) = pipe(0);
    /// let ev = EpollEvent::new(Events::IN, 1);
    /// epoll.ctl(EPOLL_CTL_ADD, &r, 3, ev).unwrap();
    /// epoll.ctl(EPOLL_CTL_ADD, &r, 4, ev).unwrap(); // another descriptor: another item
    /// assert_eq!(epoll.ctl(EPOLL_CTL_ADD, &r, 3, ev), Err(Errno::EEXIST));
    /// assert_eq!(epoll.len(), 2);
    /// ```
    ///
    /// [epoll_ctl(2)]: https://man7.org/linux/man-pages/man2/epoll_ctl.2.html
    #[doc(alias = "epoll_ctl")]
    pub fn ctl(&self, op: i32, file: &File, fd: i32, event: EpollEvent) -> Result<()> {
        self.ep.ctl_files(&self.file, op, file, fd, event, false)
    }

    /// Remove every item and return them: the ready list's items first, in its order, then
    /// the others. For an embedder that hands the instance over to another implementation
    /// (the C ABI gives an instance that `fork` shares to the kernel's epoll); the instance
    /// stays usable, empty.
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// let (r2, w2) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 1).unwrap();
    /// epoll.add(&r2, Interest::READABLE, 2).unwrap();
    /// w2.write(b"x").unwrap();
    /// let items = epoll.take_items();
    /// assert_eq!((items[0].data, items[0].ready), (2, true));
    /// assert_eq!((items[1].data, items[1].ready), (1, false));
    /// assert!(items[0].targets(&r2) && items[1].targets(&r));
    /// assert!(epoll.is_empty() && !epoll.has_ready());
    /// # drop((w, w2));
    /// ```
    pub fn take_items(&self) -> Vec<super::TakenItem> {
        self.ep.take_items()
    }

    /// Every item as a run-time checker sees it: number, stored mask, data, watched
    /// description and whether it is queued. Read only: nothing is polled or moved.
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 7).unwrap();
    /// assert!(!epoll.item_states()[0].queued);
    /// w.write(b"x").unwrap();
    /// let s = epoll.item_states()[0];
    /// assert!(s.queued && s.data == 7 && s.target == r.description_id());
    /// ```
    pub fn item_states(&self) -> Vec<super::ItemState> {
        self.ep.item_states()
    }

    /// One item of [`Epoll::item_states`], found by its number and description without
    /// walking the list: `None` when the instance has no such item.
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, _w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 9).unwrap();
    /// let fd = epoll.item_states()[0].fd;
    /// let s = epoll.item_state(fd, r.description_id()).unwrap();
    /// assert!(!s.queued && s.data == 9);
    /// assert_eq!(epoll.item_state(fd + 1, r.description_id()), None);
    /// ```
    pub fn item_state(&self, fd: i32, target: usize) -> Option<super::ItemState> {
        self.ep.item_state(fd, target)
    }

    /// How many threads are blocked in a wait on this instance now (and waiters queued
    /// with [`Epoll::queue_waiter`]): a test that needs its threads asleep before it wakes
    /// them waits for this count.
    ///
    /// ```
    /// use eventpoll::{Epoll, EventBuffer};
    /// use std::{sync::Arc, time::Duration};
    /// let epoll = Arc::new(Epoll::new());
    /// assert_eq!(epoll.blocked_threads(), 0);
    /// let e = epoll.clone();
    /// let t = std::thread::spawn(move || {
    ///     e.wait(&mut EventBuffer::with_capacity(1), Some(Duration::from_millis(100)))
    /// });
    /// assert_eq!(t.join().unwrap(), Ok(0));
    /// assert_eq!(epoll.blocked_threads(), 0); // gone after its timeout
    /// ```
    pub fn blocked_threads(&self) -> usize {
        self.ep.blocked_threads()
    }

    /// Whether the ready list holds an item — one that *may* be ready: a harvest, or a poll
    /// of the instance, re-polls it (Linux's `ep_events_available`). Unlike polling the
    /// instance's [`Epoll::file`], this changes nothing (a poll drops items found not
    /// ready, which can change the order of later reports).
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 1).unwrap();
    /// assert!(!epoll.has_ready());
    /// w.write(b"x").unwrap();
    /// assert!(epoll.has_ready());
    /// ```
    pub fn has_ready(&self) -> bool {
        self.ep.events_available()
    }

    /// For an embedder whose threads sleep outside the engine (in the host) when they
    /// block in a wait on this instance: queue `waiter` as such a thread, at the head of the
    /// instance's queue of blocked threads, unless events are available (`false`: harvest
    /// instead) — the check and the queueing are one step under the ready list's lock, as
    /// in `ep_poll`. Until it is called or [dequeued](Epoll::dequeue_waiter) the instance
    /// has a blocked waiter: a wakeup of an item reaches the newest such waiter only, and an
    /// `EXCLUSIVE` item's wakeup stops at this instance. The callback runs with engine locks
    /// held (it must only signal its thread) and is removed when it runs; it returns
    /// whether it woke a thread that was still waiting. The callback comes in its
    /// [`WaiterHandle`](crate::WaiterHandle), made once: queueing it allocates nothing.
    ///
    /// ```
    /// use eventpoll::{Epoll, Events, Interest, WaiterHandle, WakeCallback, objects::pipe::pipe};
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// struct Flag(AtomicBool);
    /// impl WakeCallback for Flag {
    ///     fn wake(&self, _key: Events) -> bool { !self.0.swap(true, Ordering::SeqCst) }
    /// }
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE.edge(), 1).unwrap();
    /// let (old, new) = (Arc::new(Flag(AtomicBool::new(false))), Arc::new(Flag(AtomicBool::new(false))));
    /// let (old_cb, new_cb) = (WaiterHandle::new(old.clone()), WaiterHandle::new(new.clone()));
    /// assert!(epoll.queue_waiter(&old_cb) && epoll.queue_waiter(&new_cb));
    /// w.write(b"x").unwrap(); // one wakeup: the newest waiter only
    /// assert!(new.0.load(Ordering::SeqCst) && !old.0.load(Ordering::SeqCst));
    /// assert!(!epoll.dequeue_waiter(&new_cb)); // it left the queue when called
    /// assert!(epoll.dequeue_waiter(&old_cb));
    /// assert!(!epoll.queue_waiter(&old_cb)); // the item is ready: harvest first
    /// ```
    pub fn queue_waiter(&self, waiter: &Arc<crate::WaiterHandle>) -> bool {
        self.ep.queue_waiter(waiter)
    }

    /// [`Epoll::queue_waiter`] for a thread that can watch the ready items' objects while
    /// it sleeps: queue `waiter` also when the ready list holds items, if there are at most
    /// `max` and `accept` takes every one (called with its object and interest, under the
    /// instance's locks: it must only look); their objects are left in `over` (emptied
    /// first). `None`: not queued (an item was refused, or a harvest is in progress), `over`
    /// empty: harvest instead; `Some`: queued, with the count of scans begun so far
    /// ([`Epoll::scans`]). With no `waiter`, only tells whether it would queue (leaving `over`
    /// empty).
    ///
    /// This is a harvest put off, not skipped: the caller sleeps watching `over`'s objects
    /// as well as its waker, so that one still ready ends the sleep at once, and harvests
    /// when woken — also when its sleep timed out; but if another scan began meanwhile, that
    /// scan stood for its own, and it harvests only when called, as a thread queued after
    /// its scan does. Meanwhile the items stay on the list, each as if that scan had taken
    /// it off: a wakeup, `ADD` or `MOD` that would link it links it afresh (at the tail,
    /// waking a blocked thread as any link does), so that a change the caller does not
    /// watch — a `MOD` to output readiness — wakes it as on Linux; the next scan of the
    /// list (any thread's harvest, a poll of the instance) ends that. A host embedder folds
    /// the re-poll of the level-triggered items the last harvest left on the list into its
    /// sleep (one system call where it would make two).
    ///
    /// ```
    /// use eventpoll::{Epoll, Events, FileOps, Interest, WaiterHandle, WakeCallback, objects::pipe::pipe};
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// struct Flag(AtomicBool);
    /// impl WakeCallback for Flag {
    ///     fn wake(&self, _key: Events) -> bool { !self.0.swap(true, Ordering::SeqCst) }
    /// }
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 1).unwrap();
    /// w.write(b"x").unwrap();
    /// let waiter = WaiterHandle::new(Arc::new(Flag(AtomicBool::new(false))));
    /// let mut over = Vec::new();
    /// // Refused: harvest first.
    /// let never = &mut |_: &dyn FileOps, _: Events| false;
    /// assert_eq!(epoll.queue_waiter_over(Some(&waiter), 4, never, &mut over), None);
    /// assert!(over.is_empty());
    /// // Taken: queued over the ready item, which the caller watches while it sleeps.
    /// let readable = &mut |_: &dyn FileOps, i: Events| i.contains(Events::IN);
    /// assert!(epoll.queue_waiter_over(None, 4, readable, &mut over).is_some()); // would
    /// let scans = epoll.scans();
    /// assert_eq!(epoll.queue_waiter_over(Some(&waiter), 4, readable, &mut over), Some(scans));
    /// assert_eq!(over.len(), 1);
    /// assert!(over[0].poll().contains(Events::IN));
    /// assert!(epoll.dequeue_waiter(&waiter));
    /// ```
    pub fn queue_waiter_over(
        &self,
        waiter: Option<&Arc<crate::WaiterHandle>>,
        max: usize,
        accept: &mut dyn FnMut(&dyn crate::FileOps, Events) -> bool,
        over: &mut Vec<Arc<dyn crate::FileOps>>,
    ) -> Option<u64> {
        self.ep.queue_waiter_over(waiter, max, accept, over)
    }

    /// How many scans of the ready list (harvests, and polls of the instance, which drop
    /// items found not ready) have begun so far: a waiter queued over ready items
    /// ([`Epoll::queue_waiter_over`]) compares it with the count it was queued at.
    ///
    /// ```
    /// use eventpoll::Epoll;
    /// let epoll = Epoll::new();
    /// let before = epoll.scans();
    /// let _ = epoll.file().ops().poll(); // a poll of the instance scans its list
    /// assert_eq!(epoll.scans(), before + 1);
    /// ```
    pub fn scans(&self) -> u64 {
        self.ep.scans()
    }

    /// Take a waiter queued by [`Epoll::queue_waiter`] off the queue; `false` if it was not
    /// there any more (it was called). Once this returns, its callback is not running.
    pub fn dequeue_waiter(&self, waiter: &Arc<crate::WaiterHandle>) -> bool {
        self.ep.dequeue_waiter(waiter)
    }

    /// A number that changes whenever an item is added or removed (by `epoll_ctl`, or by
    /// the release of a watched description): an embedder that mirrors the set of watched
    /// objects (the host driver's per-instance relay) re-reads it with
    /// [`Epoll::for_each_target`] when this moved.
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let epoll = Epoll::new();
    /// let (r, _w) = pipe(0);
    /// let s0 = epoll.items_seq();
    /// epoll.add(&r, Interest::READABLE, 1).unwrap();
    /// let s1 = epoll.items_seq();
    /// assert_ne!(s0, s1);
    /// epoll.modify(&r, Interest::WRITABLE, 1).unwrap();
    /// assert_eq!(epoll.items_seq(), s1); // a modification is no change of the set
    /// epoll.delete(&r).unwrap();
    /// assert_ne!(epoll.items_seq(), s1);
    /// ```
    pub fn items_seq(&self) -> usize {
        self.ep.items_seq()
    }

    /// Call `hook` after every item added to this instance, once the item is hooked on its
    /// object and [`Epoll::items_seq`] has moved (with the engine's locks held: it must
    /// only signal, like a waker; its return value is ignored). Hooks stay for the
    /// instance's life.
    ///
    /// ```
    /// use eventpoll::{Epoll, Events, Interest, WakeCallback, objects::pipe::pipe};
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// struct Count(AtomicUsize);
    /// impl WakeCallback for Count {
    ///     fn wake(&self, _key: Events) -> bool { self.0.fetch_add(1, Ordering::SeqCst); true }
    /// }
    /// let epoll = Epoll::new();
    /// let count = Arc::new(Count(AtomicUsize::new(0)));
    /// epoll.on_insert(count.clone());
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 1).unwrap();
    /// epoll.add(&w, Interest::WRITABLE, 2).unwrap();
    /// assert_eq!(count.0.load(Ordering::SeqCst), 2);
    /// ```
    pub fn on_insert(&self, hook: Arc<dyn crate::WakeCallback>) {
        self.ep.on_insert(hook)
    }

    /// Visit every item's watched object with the number it was added with and whether the
    /// object is an epoll instance (a nested one), under the instance's interest-list lock
    /// (`f` must not call into this instance).
    ///
    /// ```
    /// use eventpoll::{Epoll, Interest, objects::pipe::pipe};
    /// let (outer, inner) = (Epoll::new(), Epoll::new());
    /// let (r, _w) = pipe(0);
    /// outer.add(&r, Interest::READABLE, 1).unwrap();
    /// outer.add(inner.file(), Interest::READABLE, 2).unwrap();
    /// let mut nested = 0;
    /// outer.for_each_target(|_, _, is_epoll| nested += usize::from(is_epoll));
    /// assert_eq!(nested, 1);
    /// ```
    pub fn for_each_target(&self, f: impl FnMut(&Arc<dyn crate::FileOps>, i32, bool)) {
        self.ep.for_each_target(f)
    }

    /// Call every waiter queued by [`Epoll::queue_waiter`] (and wake every thread blocked
    /// in [`Epoll::wait`]): the embedder is done with the instance.
    pub fn wake_waiters(&self) {
        self.ep.wake_waiters()
    }

    /// Harvest into a caller's buffer: like [`Epoll::wait`], reporting at most `maxevents`
    /// events into `out`. An event that is ready but does not fit in `out` (a C caller's
    /// NULL or short buffer) gives `EFAULT` when nothing was reported yet, and stays on the
    /// ready list, as on Linux.
    ///
    /// ```
    /// use eventpoll::{Epoll, EpollEvent, Errno, Interest, objects::pipe::pipe};
    /// use std::time::Duration;
    /// let epoll = Epoll::new();
    /// let (r, w) = pipe(0);
    /// epoll.add(&r, Interest::READABLE, 9).unwrap();
    /// w.write(b"x").unwrap();
    /// assert_eq!(epoll.wait_into(&mut [], 1, Some(Duration::ZERO)), Err(Errno::EFAULT));
    /// let mut out = [EpollEvent::default(); 4];
    /// assert_eq!(epoll.wait_into(&mut out, 4, Some(Duration::ZERO)), Ok(1));
    /// assert_eq!(out[0].data(), 9);
    /// ```
    ///
    /// Linux: [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html).
    #[doc(alias = "epoll_wait")]
    pub fn wait_into(
        &self,
        out: &mut [EpollEvent],
        maxevents: usize,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.ep.wait(out, maxevents, timeout)
    }

    /// [`Epoll::wait_into`] with any [`EventSink`](crate::EventSink): the sink decides, slot
    /// by slot, whether an event can be stored (a C caller's buffer that ends in an
    /// unwritable page). The first event that cannot be stored stays on the ready list.
    ///
    /// Linux: [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html).
    #[doc(alias = "epoll_wait")]
    pub fn wait_into_sink<S: crate::EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        self.ep.wait(out, maxevents, timeout)
    }

    /// Wait for events ([epoll_wait(2)]): `None` waits without limit, `Some(Duration::ZERO)`
    /// does not block. Returns how many events `events` now holds. `EINTR` when the calling
    /// thread's [`crate::Interrupt`] is raised; `Ok(0)` early when a [`Waker`](crate::Waker)
    /// of the instance was used.
    ///
    /// [epoll_wait(2)]: https://man7.org/linux/man-pages/man2/epoll_wait.2.html
    #[doc(
        alias = "epoll_wait",
        alias = "epoll_pwait",
        alias = "epoll_pwait2",
        alias = "poll"
    )]
    pub fn wait(&self, events: &mut EventBuffer, timeout: Option<Duration>) -> Result<usize> {
        events.len = 0;
        let cap = events.buf.len();
        let n = self.ep.wait(&mut events.buf[..], cap, timeout)?;
        events.len = n;
        Ok(n)
    }
}
