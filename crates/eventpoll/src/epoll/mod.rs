//! Epoll instances: the interest list, the ready list, the callback that links them, the
//! harvest, blocking waits, nesting checks and the watch budget.
//!
//! # The model
//!
//! An instance keeps an *interest list* of items keyed by (open file description, descriptor
//! number). Adding an item hooks an entry on the target's [`WaitQueue`]; when the target
//! wakes its queue, the epoll callback (`EpollShared::item_callback`) puts the item on the *ready list* (once:
//! events between two harvests merge) and wakes one thread blocked in `wait`, and whoever
//! polls the instance itself (outer instances, `poll(2)` callers). A *harvest*
//! (`EpollShared::send_events`) takes the ready list, re-polls each item's file, reports
//! `poll & interest`, and then re-appends level-triggered items at the tail, leaves
//! edge-triggered ones off, disables one-shot ones, and puts items it did not reach back at
//! the head. The ready list holds *maybe-ready* items; only the harvest decides.
//!
//! # Lock order (outermost first)
//!
//! 0. A descriptor table's lock (`FdTable`), held across a whole `epoll_ctl` of that table
//!    (it lends the two descriptions; see `FdTable::ctl_descriptors`). Nothing below takes
//!    it.
//! 1. `NEST_CHECK`, a global mutex, held across an ADD that needs the loop and wakeup-path
//!    checks (the target is an epoll instance, or the instance is itself watched) — Linux's
//!    `epnested_mutex`.
//! 2. `EpollShared::mtx` ("ep->mtx"): the interest list. Held by ctl, by a harvest, by a poll
//!    of the instance and by the release of a watched file. Nested instances are locked
//!    outer before inner (a harvest of the outer polls the inner; an ADD of the inner hooks
//!    its item on the inner under the inner's `mtx`, so that "is this instance watched?",
//!    which decides whether an ADD into it needs the full check, is read and changed under
//!    one lock); cycles are impossible because ADD refuses them.
//! 3. A target's `WaitQueue` lock: held while the queue runs its entries, so the epoll
//!    callback runs under it.
//! 4. `EpollShared::ready` ("ep->lock"): the ready list and each item's event mask and
//!    data. Held only for short, non-blocking steps; never while polling a file.
//! 5. `EpollShared::wq`'s lock (threads blocked in `wait`), taken under `ready` by the
//!    callback (to wake one) and by a waiter (to queue itself after finding the list empty).
//!    An embedder's thread that sleeps in the host is queued here too, as a callback
//!    ([`Epoll::queue_waiter`]); that callback runs under every lock above and therefore
//!    only signals its thread (eventpoll-host writes the thread's own eventfd) — it takes
//!    no lock and never calls back into the engine.
//! 6. A [`User`]'s `reserves` lock (the watch budget, [`budget`]), taken under `mtx` when an
//!    ADD takes a batch of watches or counts them near the limit, and when a removal
//!    returns a batch; nothing is taken under it.
//!
//! The callback wakes the instance's own `poll_wait` queue after
//! dropping `ready` (still under the target's queue lock), which runs outer instances'
//! callbacks: queue locks therefore nest inner → outer, and `ready` locks are never held
//! across them.
//!
//! # Item lifecycle
//!
//! An item is a *slot* index, valid in two parallel tables: `InterestList::watches` (under
//! `mtx`: the target's object, its key, the descriptor number) and `Ready::slots` (under
//! `ready`: interest mask, data, ready-list links).
//!
//! 1. ADD (under `mtx`): charge the watch budget; fill both slot halves; index it; hook the
//!    wait-queue entry (which is also how the target's release and the nesting checks find
//!    the item: a file's items are the item entries on its queue); poll the target once and
//!    link the item if it is ready. From the moment the entry is hooked, callbacks may run.
//! 2. Callbacks (under the target's queue lock, then `ready`) only touch `Ready::slots`.
//! 3. A harvest (under `mtx`) moves the ready list to a private transfer list (items stay
//!    "linked"), polls without `ready` held, then, under `ready`, puts items back. While it
//!    runs, callbacks chain items on the *overflow list* instead of the ready list; those are
//!    linked when it ends. No wakeup is lost, none is doubled.
//! 4. Removal (DEL, release of the target's last descriptor, release of the instance; all
//!    under `mtx`, so never during a harvest): unhook the wait-queue entry first — once that
//!    returns no callback for the slot is running or can start — then unlink the item from
//!    the ready list, free the slot, refund the budget. A slot is
//!    reused only after all of this.

use crate::errno::{Errno, Result};
use crate::event::{EpollEvent, EventSink, Events, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use crate::file::{File, FileOps};
use crate::platform::{Clock, Deadline};
use crate::prelude::*;
use crate::sync::{fence, lock, Arc, AtomicBool, AtomicUsize, Mutex, Ordering, SpinLock};
use crate::wait_queue::{Parker, WaitQueue, Waiter, WakeReason};
use core::time::Duration;
use hashbrown::HashTable;
use smallvec::SmallVec;

mod budget;
mod nest;
mod rust_api;
mod waker;

pub use budget::User;
pub use rust_api::{Epoll, EventBuffer, Interest};
pub use waker::Waker;

/// Linux's `EP_MAX_NESTS`: the deepest chain of nested instances.
pub const EP_MAX_NESTS: usize = 4;

/// The default `max_user_watches` of a new [`User`] (Linux: 4% of low memory divided by the
/// cost of a watch; here a fixed, generous figure).
pub const DEFAULT_MAX_USER_WATCHES: usize = 1 << 24;

// ----- the two halves of an item -----

/// The `mtx` half of an item.
struct Watch {
    /// The watched object, borrowed: an item holds no reference to it (as Linux's epitem
    /// holds none to its file). It points at the object, not at the description: a
    /// description being freed has its `Drop` running (which holds it exclusively) while
    /// other instances may still read their items of it, so nothing of the description is
    /// read through an item. The object is alive whenever `mtx` is held and the watch is in
    /// `InterestList::watches` or being removed: `insert` lists it while its caller holds
    /// the description (which holds the object), and hooks it on the object's main queue
    /// before `mtx` is released; `remove` unhooks the main queue last and reads nothing of
    /// the object after; and a description being freed first removes every item hooked
    /// there (`OpenFile::drop` → `WaitQueue::release_items` → `release_file_item`, which
    /// waits for `mtx`) before it drops its own reference to the object.
    object: core::ptr::NonNull<dyn FileOps>,
    /// The target description's key (`OpenFile::key`: its address). An identity only,
    /// never dereferenced.
    key: usize,
    fd: i32,
    /// Registration order (global, wrapping): a target wakes its items newest first.
    seq: u32,
}

// SAFETY: `object` points to a `dyn FileOps`, which is `Send + Sync`; it is dereferenced
// only under the instance's `mtx`, where it is alive (see `Watch::object`), so moving a
// `Watch` between threads is as sending `&dyn FileOps`.
#[allow(unsafe_code)]
unsafe impl Send for Watch {}

impl Watch {
    /// The target description's key (`OpenFile::key`): its address.
    fn key(&self) -> usize {
        self.key
    }
    /// The watched object. Call only under `mtx` with the watch in `InterestList::watches`
    /// (see `Watch::object`).
    fn ops(&self) -> &dyn FileOps {
        // SAFETY: under `mtx` with the watch listed, the object is alive (see
        // `Watch::object`), and only shared references to it are ever made.
        #[allow(unsafe_code)]
        unsafe {
            self.object.as_ref()
        }
    }
    /// The watched object, counted (for the nesting checks, which use it after `mtx` is
    /// released). Call only under `mtx` with the watch listed (see `Watch::object`).
    fn ops_arc(&self) -> Arc<dyn FileOps> {
        let ptr = self.object.as_ptr() as *const dyn FileOps;
        // SAFETY: `object` is the pointer `Arc::as_ptr` gave for the object's
        // `Arc<dyn FileOps>` (`insert`), whose strong count is at least one while the watch
        // is listed under `mtx` (the description holds it until its items are removed: see
        // `Watch::object`); taking one more count and an `Arc` of it is `Arc::clone`.
        #[allow(unsafe_code)]
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }
}

/// What an item's wait-queue entry holds of its instance (`Waiter::Item`): a borrowed
/// pointer, not a reference count (Linux's wait entry reaches its epitem and eventpoll by
/// `container_of`, counting nothing). Valid while the entry is hooked: entries are hooked
/// only by `insert`, whose caller holds the instance's file, and all of them are unhooked
/// (`release_all`, from the file's release) while that file's own `Arc` of the instance is
/// still alive — so a hooked entry's instance has a strong count of at least one.
///
/// The pointer is the one its `Arc` gave (`Weak::as_ptr` while the instance is built:
/// `EpollShared::new_file`), never one made from a `&EpollShared`: a reference's pointer
/// may reach only the instance itself, while `to_arc` reaches the `Arc`'s counts before it
/// (Miri's Stacked Borrows check refuses the latter: `scripts/miri.sh`).
#[derive(Clone)]
pub(crate) struct ItemOwner(core::ptr::NonNull<EpollShared>);

// SAFETY: an `ItemOwner` is a shared borrow of an `EpollShared`, which is `Send + Sync`;
// it is used only while its entry is hooked, where the instance is alive (see above).
#[allow(unsafe_code)]
unsafe impl Send for ItemOwner {}
// SAFETY: as for `Send`: sharing an `ItemOwner` shares only a `&EpollShared`.
#[allow(unsafe_code)]
unsafe impl Sync for ItemOwner {}

impl ItemOwner {
    /// The owner of `ep`'s item entries: the pointer its `Arc` gave when it was built.
    fn of(ep: &EpollShared) -> ItemOwner {
        ep.me.clone()
    }

    /// The instance, counted (for the nesting checks and the release of a watched file,
    /// which use it after the queue's lock is released). Call only while the entry is
    /// hooked, under its queue's lock.
    pub(crate) fn to_arc(&self) -> Arc<EpollShared> {
        let ptr = self.0.as_ptr() as *const EpollShared;
        // SAFETY: the instance lives in an `Arc<EpollShared>` allocation (`of`), whose
        // strong count is at least one while the entry is hooked (see `ItemOwner`); taking
        // one more count and an `Arc` of it is `Arc::clone` of that `Arc`.
        #[allow(unsafe_code)]
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }
}

impl core::ops::Deref for ItemOwner {
    type Target = EpollShared;
    fn deref(&self) -> &EpollShared {
        // SAFETY: used only while the entry is hooked, where the instance is alive (see
        // `ItemOwner`).
        #[allow(unsafe_code)]
        unsafe {
            self.0.as_ref()
        }
    }
}

/// The next item's registration number (see `Watch::seq`; not a synchronisation point, so
/// a plain atomic outside the loom shim).
static NEXT_SEQ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// List-link sentinels of `ReadySlot::next`.
const NIL: u32 = u32::MAX;
const UNLINKED: u32 = u32::MAX - 1;
/// On the transfer list of a harvest in progress (counts as linked).
const ON_TX: u32 = u32::MAX - 2;
/// `ReadySlot::ovf_next` when the item is not on the overflow list.
const OVF_NONE: u32 = u32::MAX - 1;

/// The `ready` half of an item.
#[derive(Clone, Copy)]
struct ReadySlot {
    events: u32,
    next: u32,
    prev: u32,
    ovf_next: u32,
    data: u64,
}

impl ReadySlot {
    const FREE: ReadySlot = ReadySlot {
        events: 0,
        next: UNLINKED,
        prev: NIL,
        ovf_next: OVF_NONE,
        data: 0,
    };
}

/// Ready list and callback-side state (under `ready`).
struct Ready {
    slots: Vec<ReadySlot>,
    head: u32,
    tail: u32,
    /// A harvest is in progress: callbacks chain on the overflow list.
    scanning: bool,
    /// Overflow list (LIFO through `ovf_next`), valid while `scanning`.
    ovf_head: u32,
    /// Items a waiter was queued over ([`EpollShared::queue_waiter_over`]): on the list,
    /// but as if its first scan, put off, had taken them off. A wakeup or an ADD/MOD that
    /// would link one links it afresh (at the tail, waking as a link wakes); the next scan
    /// (any harvest, or a poll of the instance) ends the mark. Few (a folded wait's items),
    /// so a vector.
    provisional: Vec<u32>,
    /// Scans begun (harvests and polls of the instance): a waiter queued over items tells
    /// by it whether its put-off scan is still the next one.
    scans: u64,
}

impl Ready {
    /// Take `slot`'s provisional mark: whether it had one.
    fn take_provisional(&mut self, slot: u32) -> bool {
        if self.provisional.is_empty() {
            return false;
        }
        match self.provisional.iter().position(|&s| s == slot) {
            Some(i) => {
                self.provisional.swap_remove(i);
                true
            }
            None => false,
        }
    }
    fn is_empty(&self) -> bool {
        self.head == NIL
    }
    /// Linux's `ep_events_available`: something is on the ready list, or a harvest is in
    /// progress (its items may come back).
    fn events_available(&self) -> bool {
        !self.is_empty() || self.scanning
    }
    fn is_linked(&self, slot: u32) -> bool {
        self.slots[slot as usize].next != UNLINKED
    }
    fn push_back(&mut self, slot: u32) {
        let tail = self.tail;
        let s = &mut self.slots[slot as usize];
        s.prev = tail;
        s.next = NIL;
        if tail == NIL {
            self.head = slot;
        } else {
            self.slots[tail as usize].next = slot;
        }
        self.tail = slot;
    }
    fn push_front(&mut self, slot: u32) {
        let head = self.head;
        let s = &mut self.slots[slot as usize];
        s.next = head;
        s.prev = NIL;
        if head == NIL {
            self.tail = slot;
        } else {
            self.slots[head as usize].prev = slot;
        }
        self.head = slot;
    }
    /// Unlink a slot that is on the ready list proper (not the transfer list).
    fn unlink(&mut self, slot: u32) {
        let ReadySlot { next, prev, .. } = self.slots[slot as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[slot as usize];
        s.next = UNLINKED;
        s.prev = NIL;
    }
}

/// One entry of a harvest's transfer list: the item and a snapshot of its interest and data
/// (stable: they change only under `mtx`, which the harvest holds).
#[derive(Clone, Copy)]
struct TxEntry {
    slot: u32,
    events: u32,
    data: u64,
    /// Set by the harvest: reported (with these bits) or dropped (0).
    revents: u32,
}

/// The interest list (under `mtx`).
struct InterestList {
    watches: Vec<Option<Watch>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    /// The harvest's transfer list, kept to reuse its allocation.
    scratch: Vec<TxEntry>,
    /// The harvest's poll masks, one per transfer entry (same reuse).
    masks: Vec<Events>,
}

fn key_hash(key: usize, fd: i32) -> u64 {
    let mut h = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= (fd as u32 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^ (h >> 31)
}

impl InterestList {
    fn find(&self, key: usize, fd: i32) -> Option<u32> {
        self.index
            .find(key_hash(key, fd), |&s| self.matches(s, key, fd))
            .copied()
    }
    fn matches(&self, slot: u32, key: usize, fd: i32) -> bool {
        self.watches[slot as usize]
            .as_ref()
            .is_some_and(|w| w.key() == key && w.fd == fd)
    }
    fn watch(&self, slot: u32) -> &Watch {
        self.watches[slot as usize]
            .as_ref()
            .expect("interest slot in use")
    }
}

/// One item of an interest list, as [`FdTable::epoll_items`](crate::FdTable::epoll_items) reports it (the `tfd:`
/// lines of Linux's fdinfo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemInfo {
    /// The descriptor number the item was added with.
    pub fd: i32,
    /// The stored interest mask.
    pub events: Events,
    /// The user data.
    pub data: u64,
}

/// One item of an interest list with what a run-time checker needs besides
/// [`ItemInfo`]: the watched description and whether the item is queued (see
/// [`Epoll::item_states`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemState {
    /// The descriptor number the item was added with.
    pub fd: i32,
    /// The stored interest mask (a one-shot item that fired has only the flag bits left).
    pub events: Events,
    /// The user data.
    pub data: u64,
    /// The watched description's [`File::description_id`].
    pub target: usize,
    /// Whether the item is on the ready list (maybe ready: the next harvest re-polls it).
    pub queued: bool,
}

/// An item removed by [`Epoll::take_items`]: what another implementation needs to carry it
/// on (an embedder handing an instance over, as the C ABI does to the kernel's epoll when a
/// `fork` shares an instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TakenItem {
    /// The descriptor number the item was added with.
    pub fd: i32,
    /// The stored interest mask: a one-shot item that fired has only the flag bits left.
    pub events: Events,
    /// The user data.
    pub data: u64,
    /// Whether the item was on the ready list (maybe ready: a harvest re-polls it).
    pub ready: bool,
    /// Registration order among all items of the process (wrapping): a target wakes the
    /// items hooked on it newest first (exclusive ones after, oldest first), so a successor
    /// that registers one target's items in ascending `seq` keeps their wake order.
    pub seq: u32,
    target: usize,
}

impl TakenItem {
    /// Whether the item watched `file` (the same open file description).
    pub fn targets(&self, file: &File) -> bool {
        file.inner.key() == self.target
    }

    /// The watched description's [`File::description_id`].
    pub fn target_id(&self) -> usize {
        self.target
    }
}

/// An epoll instance: the object behind an epoll file description (Linux's `struct
/// eventpoll`). Not public: [`Epoll`] and the descriptor table are its two faces.
pub(crate) struct EpollShared {
    /// This instance as its item entries name it: the pointer of its own `Arc` (see
    /// [`ItemOwner`]).
    me: ItemOwner,
    mtx: Mutex<InterestList>,
    ready: SpinLock<Ready>,
    /// Threads blocked in `wait` (exclusive entries: a wakeup wakes one).
    wq: WaitQueue,
    /// Whoever polls this instance: outer instances' items, `poll(2)` callers.
    poll_wait: WaitQueue,
    user: Arc<User>,
    /// This instance's share of `user`'s budget (see [`budget`]); used under `mtx`.
    reserve: Arc<budget::Reserve>,
    /// A [`Waker`]'s pending wakeup: set under `ready`, taken by the next return of a wait.
    /// Never set unless a `Waker` is used, so an instance without one is exactly Linux's.
    notified: AtomicBool,
    /// What `wait`'s timeouts are measured on: the creating table's clock (its timerfds'),
    /// or the platform's default.
    clock: Arc<dyn Clock>,
    /// Bumped by every item added or removed (see [`Epoll::items_seq`]); written only
    /// under `mtx`, so a plain store (no read-modify-write on the ctl path).
    items_seq: AtomicUsize,
    /// Whether `insert_hooks` holds any: an instance without hooks (every one but the host
    /// driver's relayed instances) pays one load per `ADD` for them, no lock.
    has_insert_hooks: AtomicBool,
    /// Called after every item added (see [`Epoll::on_insert`]); taken under `mtx` (a leaf).
    insert_hooks: Mutex<Vec<Arc<dyn crate::WakeCallback>>>,
}

/// The instance's reservation goes back to its user with it.
impl Drop for EpollShared {
    fn drop(&mut self) {
        self.user.unregister(&self.reserve);
    }
}

impl core::fmt::Debug for EpollShared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EpollShared")
            .field("watches", &self.len())
            .finish()
    }
}

impl EpollShared {
    /// A new instance and its open file description.
    pub(crate) fn new_file(user: Arc<User>, clock: Arc<dyn Clock>) -> File {
        let ep = Arc::new_cyclic(|me: &alloc::sync::Weak<EpollShared>| EpollShared {
            me: ItemOwner(
                core::ptr::NonNull::new(me.as_ptr().cast_mut())
                    .expect("an Arc's data pointer is not null"),
            ),
            mtx: Mutex::new(InterestList {
                watches: Vec::new(),
                free: Vec::new(),
                index: HashTable::new(),
                scratch: Vec::new(),
                masks: Vec::new(),
            }),
            ready: SpinLock::new(Ready {
                slots: Vec::new(),
                head: NIL,
                tail: NIL,
                scanning: false,
                ovf_head: NIL,
                provisional: Vec::new(),
                scans: 0,
            }),
            wq: WaitQueue::new(),
            poll_wait: WaitQueue::new(),
            reserve: user.register(),
            user,
            notified: AtomicBool::new(false),
            clock,
            items_seq: AtomicUsize::new(0),
            has_insert_hooks: AtomicBool::new(false),
            insert_hooks: Mutex::new(Vec::new()),
        });
        File::from_ops(ep, 0)
    }

    /// How many threads are blocked in a wait on this instance (see
    /// [`Epoll::blocked_threads`]).
    pub(crate) fn blocked_threads(&self) -> usize {
        self.wq.len()
    }

    /// Number of items in the interest list.
    pub(crate) fn len(&self) -> usize {
        let il = lock(&self.mtx);
        il.watches.len() - il.free.len()
    }

    /// The interest list as Linux's `/proc/PID/fdinfo/EPFD` shows it: one entry per item,
    /// in no particular order, with the stored interest mask (including the flags, and
    /// `ERR|HUP`, and `WAKEUP` only when the caller had the capability) and data.
    pub(crate) fn items_info(&self) -> Vec<ItemInfo> {
        self.item_states()
            .into_iter()
            .map(|s| ItemInfo {
                fd: s.fd,
                events: s.events,
                data: s.data,
            })
            .collect()
    }

    /// See [`Epoll::items_seq`].
    pub(crate) fn items_seq(&self) -> usize {
        self.items_seq.load(Ordering::SeqCst)
    }

    /// See [`Epoll::on_insert`].
    pub(crate) fn on_insert(&self, hook: Arc<dyn crate::WakeCallback>) {
        lock(&self.insert_hooks).push(hook);
        self.has_insert_hooks.store(true, Ordering::SeqCst);
    }

    /// Count a change of the item set (under `mtx`, the only writer).
    fn bump_items_seq(&self) {
        let next = self.items_seq.load(Ordering::Relaxed).wrapping_add(1);
        self.items_seq.store(next, Ordering::Release);
    }

    /// See [`Epoll::for_each_target`].
    pub(crate) fn for_each_target(&self, mut f: impl FnMut(&Arc<dyn FileOps>, i32, bool)) {
        let il = lock(&self.mtx);
        for w in il.watches.iter().flatten() {
            let any: &dyn core::any::Any = w.ops();
            let nested = any.is::<EpollShared>();
            f(&w.ops_arc(), w.fd, nested);
        }
    }

    /// Every item with its description and whether it is queued, in slot order (read
    /// only; see [`Epoll::item_states`]).
    pub(crate) fn item_states(&self) -> Vec<ItemState> {
        let il = lock(&self.mtx);
        let r = lock(&self.ready);
        il.watches
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| {
                w.as_ref().map(|w| ItemState {
                    fd: w.fd,
                    events: Events::from_bits_retain(r.slots[slot].events),
                    data: r.slots[slot].data,
                    target: w.key(),
                    queued: r.is_linked(slot as u32),
                })
            })
            .collect()
    }

    /// The item of `fd` watching description `target`, if the list has it (see
    /// [`Epoll::item_state`]).
    pub(crate) fn item_state(&self, fd: i32, target: usize) -> Option<ItemState> {
        let il = lock(&self.mtx);
        let slot = il.find(target, fd)?;
        let w = il.watch(slot);
        let r = lock(&self.ready);
        Some(ItemState {
            fd: w.fd,
            events: Events::from_bits_retain(r.slots[slot as usize].events),
            data: r.slots[slot as usize].data,
            target: w.key(),
            queued: r.is_linked(slot),
        })
    }

    /// Remove every item and return them, ready-list items first in ready-list order, then
    /// the others in slot order (see [`Epoll::take_items`]). The instance stays usable.
    pub(crate) fn take_items(&self) -> Vec<TakenItem> {
        let mut il = lock(&self.mtx);
        let mut out = Vec::with_capacity(il.watches.len() - il.free.len());
        {
            let r = lock(&self.ready);
            let mut cur = r.head;
            while cur != NIL {
                let w = il.watch(cur);
                let s = r.slots[cur as usize];
                out.push(TakenItem {
                    fd: w.fd,
                    events: Events::from_bits_retain(s.events),
                    data: s.data,
                    ready: true,
                    seq: w.seq,
                    target: w.key(),
                });
                cur = s.next;
            }
            for (slot, w) in il.watches.iter().enumerate() {
                if let Some(w) = w {
                    if !r.is_linked(slot as u32) {
                        let s = r.slots[slot];
                        out.push(TakenItem {
                            fd: w.fd,
                            events: Events::from_bits_retain(s.events),
                            data: s.data,
                            ready: false,
                            seq: w.seq,
                            target: w.key(),
                        });
                    }
                }
            }
        }
        for slot in 0..il.watches.len() as u32 {
            self.remove(&mut il, slot);
        }
        out
    }

    /// Whether some item of some instance watches this one.
    fn is_watched(&self) -> bool {
        self.poll_wait.has_items()
    }

    // ----- the callback -----

    /// Whether the item in `slot` is left to a wakeup keyed with `bits` (see
    /// [`WaitQueue::wake_uncovered`]): it watches one of them, and is not `EXCLUSIVE` — a
    /// keyed wakeup stops at the first exclusive item with a blocked thread, a key-less one
    /// reaches them all.
    pub(crate) fn item_interested(&self, slot: u32, bits: Events) -> bool {
        let r = lock(&self.ready);
        let events = Events::from_bits_retain(r.slots[slot as usize].events);
        !events.contains(Events::EXCLUSIVE) && !((events - Events::PRIVATE) & bits).is_empty()
    }

    /// The epoll callback (Linux's `ep_poll_callback`), run by a target's wait queue with
    /// its lock held. Returns whether the wakeup is *accepted* (for exclusive entries).
    pub(crate) fn item_callback(&self, slot: u32, key: Events) -> bool {
        let mut ewake = false;
        let mut pwake = false;
        let events;
        {
            let mut r = lock(&self.ready);
            let s = r.slots[slot as usize];
            events = Events::from_bits_retain(s.events);
            let disabled = (events - Events::PRIVATE).is_empty();
            let uninterested = !key.is_empty() && (key & events).is_empty();
            if !disabled && !uninterested {
                if r.scanning {
                    if s.ovf_next == OVF_NONE {
                        let head = r.ovf_head;
                        r.slots[slot as usize].ovf_next = head;
                        r.ovf_head = slot;
                    }
                } else if !r.is_linked(slot) {
                    r.push_back(slot);
                } else if r.take_provisional(slot) {
                    // Linked afresh, as if the put-off scan had taken it off.
                    r.unlink(slot);
                    r.push_back(slot);
                }
                if !self.wq.is_empty() {
                    if events.contains(Events::EXCLUSIVE) {
                        let inout = key & (Events::IN | Events::OUT);
                        ewake = if inout == Events::IN {
                            events.contains(Events::IN)
                        } else if inout == Events::OUT {
                            events.contains(Events::OUT)
                        } else {
                            inout.is_empty()
                        };
                    }
                    self.wq.wake(Events::empty());
                }
                pwake = !self.poll_wait.is_empty();
            }
        }
        if pwake {
            self.poll_wait.wake(Events::IN);
        }
        if !events.contains(Events::EXCLUSIVE) {
            ewake = true;
        }
        ewake
    }

    // ----- harvest -----

    /// Whether the ready list holds an item (maybe ready: a harvest or a poll of the
    /// instance re-polls it) or a harvest is in progress. Reads only; changes nothing.
    pub(crate) fn events_available(&self) -> bool {
        lock(&self.ready).events_available()
    }

    /// Move the ready list to the transfer list (`ep_start_scan`).
    fn start_scan(&self, tx: &mut Vec<TxEntry>) {
        tx.clear();
        let mut r = lock(&self.ready);
        let mut cur = r.head;
        while cur != NIL {
            let s = &mut r.slots[cur as usize];
            tx.push(TxEntry {
                slot: cur,
                events: s.events,
                data: s.data,
                revents: 0,
            });
            let next = s.next;
            s.next = ON_TX;
            s.prev = NIL;
            cur = next;
        }
        r.head = NIL;
        r.tail = NIL;
        r.scanning = true;
        r.ovf_head = NIL;
        // The scan takes every item off and decides: the put-off scan is made.
        r.provisional.clear();
        r.scans = r.scans.wrapping_add(1);
    }

    /// End a scan (`ep_done_scan`): the first `processed` transfer entries were taken off
    /// (re-appended at the tail when level-triggered and reported, disabled when one-shot);
    /// the overflow list is linked; unprocessed entries go back to the head, in order.
    fn done_scan(&self, tx: &[TxEntry], processed: usize) {
        let _unparks = crate::wait_queue::deferred::Unparks::begin();
        let mut r = lock(&self.ready);
        for e in &tx[..processed] {
            let slot = e.slot;
            r.slots[slot as usize].next = UNLINKED;
            if e.revents != 0 {
                let interest = Events::from_bits_retain(e.events);
                if interest.contains(Events::ONESHOT) {
                    r.slots[slot as usize].events &= Events::PRIVATE.bits();
                } else if !interest.contains(Events::ET) {
                    r.push_back(slot);
                }
            }
        }
        let mut cur = r.ovf_head;
        while cur != NIL {
            let next = r.slots[cur as usize].ovf_next;
            r.slots[cur as usize].ovf_next = OVF_NONE;
            if !r.is_linked(cur) {
                r.push_front(cur);
            }
            cur = next;
        }
        r.ovf_head = NIL;
        r.scanning = false;
        for e in tx[processed..].iter().rev() {
            r.slots[e.slot as usize].next = UNLINKED;
            r.push_front(e.slot);
        }
        if !r.is_empty() {
            self.wq.wake(Events::empty());
        }
    }

    /// Harvest (Linux's `ep_send_events`): report up to `maxevents` ready items into `out`.
    /// An item that is ready but does not fit in `out` is `EFAULT` when nothing was
    /// reported yet (a too-short or unwritable user buffer).
    pub(crate) fn send_events<S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
    ) -> Result<usize> {
        let mut il = lock(&self.mtx);
        let mut tx = core::mem::take(&mut il.scratch);
        self.start_scan(&mut tx);
        let mut masks = core::mem::take(&mut il.masks);
        masks.clear();
        masks.resize(tx.len(), Events::empty());
        let mut polled = 0;
        let mut reported = 0;
        let mut processed = 0;
        let mut fault = false;
        while processed < tx.len() && reported < maxevents {
            let i = processed;
            if i == polled {
                // Poll ahead, but never past the point where Linux would stop: at most as
                // many items as could still be reported *and copied*. Linux polls one item
                // at a time and stops at the first copy that faults; a poll has side effects
                // (a nested instance's poll drops its not-ready items), so an item beyond a
                // failing copy must not be polled. With no room left, one item at a time.
                // One item left: polled whatever the room (Linux polls it before its copy),
                // so the sink is not asked (the C ABI's asking costs a system call, which an
                // item found not ready — a level-triggered item's usual re-poll — saves).
                // Items of one batch class poll without side effects (`FileOps::batch_class`):
                // a run of them is polled whole, without asking (host descriptors: the C
                // ABI's asking costs an `madvise` of a buffer on the heap).
                let left = tx.len() - i;
                let want = (maxevents - reported).min(left);
                let room = if left == 1 || one_batch_class(&il, &tx[i..i + want]) {
                    want.max(1)
                } else {
                    out.room(reported, want)
                };
                let end = (i + room.max(1)).min(tx.len());
                poll_window(&il, &tx[i..end], &mut masks[i..end]);
                polled = end;
            }
            let e = &mut tx[i];
            let interest = Events::from_bits_retain(e.events);
            let revents = masks[i] & interest;
            if !revents.is_empty() {
                let event = EpollEvent {
                    events: revents.bits(),
                    data: e.data,
                };
                if !out.put(reported, event) {
                    fault = reported == 0;
                    break;
                }
                if out.records() {
                    let w = il.watch(e.slot);
                    out.reported(crate::event::ReportedItem {
                        fd: w.fd,
                        target: w.key(),
                        events: interest,
                        revents,
                        data: e.data,
                    });
                }
                reported += 1;
            }
            e.revents = revents.bits();
            processed += 1;
        }
        il.masks = masks;
        self.done_scan(&tx, processed);
        il.scratch = tx;
        if fault {
            Err(Errno::EFAULT)
        } else {
            Ok(reported)
        }
    }

    /// The instance's own poll mask (Linux's `__ep_eventpoll_poll`): `IN|RDNORM` if an item
    /// on the ready list is really ready; items found not ready before it are dropped.
    fn poll_mask(&self) -> Events {
        let mut il = lock(&self.mtx);
        let mut tx = core::mem::take(&mut il.scratch);
        self.start_scan(&mut tx);
        let mut processed = tx.len();
        let mut mask = Events::empty();
        for (i, e) in tx.iter().enumerate() {
            let interest = Events::from_bits_retain(e.events);
            if !(il.watch(e.slot).ops().poll() & interest).is_empty() {
                mask = Events::IN | Events::RDNORM;
                processed = i;
                break;
            }
        }
        // Entries before `processed` have revents 0: dropped.
        self.done_scan(&tx, processed);
        il.scratch = tx;
        mask
    }

    // ----- waiting -----

    /// Block until events, the timeout or an interrupt (Linux's `ep_poll`). `timeout`:
    /// `None` waits without limit, zero does not block.
    pub(crate) fn wait<S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let mut timed_out = timeout.is_some_and(|t| t.is_zero());
        let deadline = timeout
            .filter(|t| !t.is_zero())
            .and_then(|t| Deadline::after(&*self.clock, t));
        let mut eavail = self.events_available();
        loop {
            if eavail {
                let n = self.send_events(out, maxevents)?;
                if n > 0 {
                    self.take_notification();
                    return Ok(n);
                }
            }
            if self.take_notification() || timed_out {
                return Ok(0);
            }
            let signal = crate::signal::current();
            if signal.is_pending() {
                signal.clear(); // delivered, as an EINTR return delivers a signal
                return Err(Errno::EINTR);
            }
            let parker = Parker::for_current_task();
            {
                let r = lock(&self.ready);
                // A `Waker`'s wakeup counts as available: taken at the top of the loop.
                eavail = r.events_available() || self.notified.load(Ordering::Relaxed);
                if !eavail {
                    // At the head, as `ep_poll` does: the newest sleeper is woken first.
                    self.wq.insert_exclusive_head(Waiter::Thread {
                        parker: parker.clone(),
                        exclusive: true,
                    });
                }
            }
            if !eavail && signal.sleep_interruptibly(&parker, deadline) == WakeReason::TimedOut {
                timed_out = true;
            }
            // Still queued means nobody woke us: after a timeout there is nothing to take.
            let still_queued = self.wq.remove_thread(&parker);
            eavail = !(timed_out && still_queued);
        }
    }

    /// [`Epoll::queue_waiter`]: `ep_poll`'s queueing step for a thread that sleeps outside
    /// the engine.
    pub(crate) fn queue_waiter(&self, waiter: &Arc<crate::WaiterHandle>) -> bool {
        let r = lock(&self.ready);
        if r.events_available() {
            return false;
        }
        self.wq.add_waiter_handle_head(waiter);
        true
    }

    /// [`Epoll::queue_waiter_over`].
    pub(crate) fn queue_waiter_over(
        &self,
        waiter: Option<&Arc<crate::WaiterHandle>>,
        max: usize,
        accept: &mut dyn FnMut(&dyn FileOps, Events) -> bool,
        over: &mut Vec<Arc<dyn FileOps>>,
    ) -> Option<u64> {
        over.clear();
        // `mtx` (the items' objects) before `ready`, as a harvest takes them.
        let il = lock(&self.mtx);
        let mut r = lock(&self.ready);
        if r.scanning {
            return None;
        }
        // The item linked last first: the one most likely refused (a fresh wakeup's).
        if r.tail != NIL
            && !accept(
                il.watch(r.tail).ops(),
                Events::from_bits_retain(r.slots[r.tail as usize].events),
            )
        {
            return None;
        }
        let mut cur = r.head;
        let mut n = 0;
        while cur != NIL {
            let watch = il.watch(cur);
            if n == max
                || !accept(
                    watch.ops(),
                    Events::from_bits_retain(r.slots[cur as usize].events),
                )
            {
                over.clear();
                return None;
            }
            // A check only takes no reference (a count each, for nothing).
            if waiter.is_some() {
                over.push(watch.ops_arc());
            }
            n += 1;
            cur = r.slots[cur as usize].next;
        }
        if let Some(w) = waiter {
            // As if the scan had taken the items off (see `Ready::provisional`).
            let mut cur = r.head;
            while cur != NIL {
                if !r.provisional.contains(&cur) {
                    r.provisional.push(cur);
                }
                cur = r.slots[cur as usize].next;
            }
            self.wq.add_waiter_handle_head(w);
        }
        Some(r.scans)
    }

    /// [`Epoll::scans`].
    pub(crate) fn scans(&self) -> u64 {
        lock(&self.ready).scans
    }

    /// [`Epoll::dequeue_waiter`].
    pub(crate) fn dequeue_waiter(&self, waiter: &Arc<crate::WaiterHandle>) -> bool {
        self.wq.remove(waiter.callback())
    }

    /// [`Epoll::wake_waiters`].
    pub(crate) fn wake_waiters(&self) {
        self.wq.wake_all(Events::empty());
    }

    // ----- ctl -----

    /// Steps 4–9 of `epoll_ctl` for resolved descriptions (Linux's `do_epoll_ctl` after the
    /// copy-in and `fdget`s). `ep_file` must be this instance's own file.
    pub(crate) fn ctl_files(
        &self,
        ep_file: &File,
        op: i32,
        target: &File,
        fd: i32,
        mut event: EpollEvent,
        cap_block_suspend: bool,
    ) -> Result<()> {
        let has_event = op != EPOLL_CTL_DEL;
        if target.ops().wait_queue().is_none() {
            return Err(Errno::EPERM);
        }
        if has_event && !cap_block_suspend {
            event.events &= !Events::WAKEUP.bits();
        }
        if ep_file.same_description(target) {
            return Err(Errno::EINVAL);
        }
        // Only an ADD asks whether the target is an instance.
        let target_ep = if op == EPOLL_CTL_ADD {
            target.as_epoll()
        } else {
            None
        };
        let target_is_epoll = target_ep.is_some();
        // An instance outside the engine (a host's): the levels below it, for the depth
        // check (see `FileOps::foreign_epoll_depth`).
        let foreign_depth = if op == EPOLL_CTL_ADD && !target_is_epoll {
            target.ops().foreign_epoll_depth()
        } else {
            None
        };
        let interest = Events::from_bits_retain(event.events);
        if has_event && interest.contains(Events::EXCLUSIVE) {
            if op == EPOLL_CTL_MOD {
                return Err(Errno::EINVAL);
            }
            if op == EPOLL_CTL_ADD
                && (target_is_epoll || !(interest - Events::EXCLUSIVE_OK).is_empty())
            {
                return Err(Errno::EINVAL);
            }
        }
        let key = target.inner.key();
        let mut il = lock(&self.mtx);
        // Whether this instance is watched is read under its `mtx`, and an outer instance
        // hooks its item on this one under this `mtx` too (see `insert`), so an ADD that
        // skips the full check cannot race with this instance becoming nested (Linux reads
        // `f_ep` under `ep->mtx` and attaches under the target's `mtx` for the same reason).
        if op == EPOLL_CTL_ADD && (target_is_epoll || foreign_depth.is_some() || self.is_watched())
        {
            drop(il);
            let me = ep_file
                .epoll_arc()
                .expect("ep_file is this instance's file");
            // Full check: loops, depth and wakeup paths, serialised globally.
            let _nest = lock(&nest::NEST_CHECK);
            let mut below = Vec::new();
            let check_files: Vec<nest::PathFile> = if let Some(tep) = target.epoll_arc() {
                nest::loop_check(&me, &tep, &mut below)?;
                below
                    .iter()
                    .map(|(k, ops)| nest::PathFile::of(*k, ops))
                    .collect()
            } else if let Some(down) = foreign_depth {
                // Linux counts an epoll target's depth, not paths from it; the files below
                // it are the host's, out of the engine's sight.
                nest::depth_check(&me, down)?;
                Vec::new()
            } else {
                vec![nest::PathFile::of(key, target.ops()).with_new_item(me.clone())]
            };
            let mut il = lock(&self.mtx);
            if il.find(key, fd).is_some() {
                return Err(Errno::EEXIST);
            }
            return self.insert(&mut il, target, target_ep, fd, event, Some(&check_files));
        }
        let slot = il.find(key, fd);
        match (op, slot) {
            (EPOLL_CTL_ADD, Some(_)) => Err(Errno::EEXIST),
            (EPOLL_CTL_ADD, None) => self.insert(&mut il, target, target_ep, fd, event, None),
            (EPOLL_CTL_DEL, Some(slot)) => {
                self.remove(&mut il, slot);
                Ok(())
            }
            (EPOLL_CTL_MOD, Some(slot)) => self.modify(&il, slot, event),
            (EPOLL_CTL_DEL | EPOLL_CTL_MOD, None) => Err(Errno::ENOENT),
            _ => Err(Errno::EINVAL),
        }
    }

    /// ADD (Linux's `ep_insert`). The caller holds this instance's file (see
    /// [`ItemOwner`]) and the target's; `target_ep` is the target's instance, if it is one.
    fn insert(
        &self,
        il: &mut InterestList,
        target: &File,
        target_ep: Option<&EpollShared>,
        fd: i32,
        mut event: EpollEvent,
        full_check: Option<&[nest::PathFile]>,
    ) -> Result<()> {
        event.events |= (Events::ERR | Events::HUP).bits();
        self.user.charge(&self.reserve)?;
        let ops = target.ops();
        let key = target.inner.key();
        let slot = match il.free.pop() {
            Some(s) => s,
            None => {
                il.watches.push(None);
                (il.watches.len() - 1) as u32
            }
        };
        il.watches[slot as usize] = Some(Watch {
            // The `Arc`'s own pointer, not one made from a `&dyn FileOps` (whose reach ends
            // with that borrow: Miri's Stacked Borrows check, `scripts/miri.sh`).
            object: core::ptr::NonNull::new(Arc::as_ptr(ops).cast_mut())
                .expect("an Arc's data pointer is not null"),
            key,
            fd,
            seq: NEXT_SEQ.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
        });
        {
            let mut r = lock(&self.ready);
            if r.slots.len() <= slot as usize {
                r.slots.resize(slot as usize + 1, ReadySlot::FREE);
            }
            r.slots[slot as usize] = ReadySlot {
                events: event.events,
                data: event.data,
                ..ReadySlot::FREE
            };
        }
        let watches = &il.watches;
        il.index.insert_unique(key_hash(key, fd), slot, |&s| {
            let w = watches[s as usize].as_ref().expect("indexed slot in use");
            key_hash(w.key(), w.fd)
        });
        let interest = Events::from_bits_retain(event.events);
        let queue = ops.wait_queue().expect("pollable target");
        {
            // Hooking on an instance makes it "watched": do it under that instance's `mtx`
            // (outer before inner, the nesting order), so that its own ADDs decide on the
            // full check consistently (see `ctl_files`). Released before the poll below,
            // which takes it again.
            let _inner = target_ep.map(|inner| lock(&inner.mtx));
            let exclusive = interest.contains(Events::EXCLUSIVE);
            // On both queues when the object has two, in Linux's order (the pipe's reader
            // queue first).
            queue.insert(Waiter::Item {
                ep: ItemOwner::of(self),
                slot,
                exclusive,
            });
            if let Some(extra) = ops.extra_wait_queue() {
                extra.insert(Waiter::Item {
                    ep: ItemOwner::of(self),
                    slot,
                    exclusive,
                });
            }
        }
        if let Some(files) = full_check {
            if !nest::reverse_path_check(files) {
                self.remove(il, slot);
                return Err(Errno::EINVAL);
            }
        }
        // Announced before the poll (still under `mtx`): an embedder's hook wakes whoever
        // must learn of the new item (see [`Epoll::on_insert`]). The hook reads its
        // sleepers after the new number, and a sleeper reads the number after announcing
        // itself (an `SeqCst` read-modify-write): the fence makes one of the two see the
        // other. Without hooks there is nobody to tell, and no fence.
        self.bump_items_seq();
        if self.has_insert_hooks.load(Ordering::Acquire) {
            fence(Ordering::SeqCst);
            for hook in lock(&self.insert_hooks).iter() {
                hook.wake(interest);
            }
        }
        let revents = ops.poll() & interest;
        if !revents.is_empty() {
            self.link_and_wake(slot);
        }
        Ok(())
    }

    /// Put a freshly polled, ready item on the ready list unless it is there, waking one
    /// waiter and the instance's pollers (end of `ep_insert` / `ep_modify`).
    fn link_and_wake(&self, slot: u32) {
        let _unparks = crate::wait_queue::deferred::Unparks::begin();
        let pwake;
        {
            let mut r = lock(&self.ready);
            if r.is_linked(slot) {
                if !r.take_provisional(slot) {
                    return;
                }
                // Linked afresh, as if the put-off scan had taken it off.
                r.unlink(slot);
            }
            r.push_back(slot);
            self.wq.wake(Events::empty());
            pwake = !self.poll_wait.is_empty();
        }
        if pwake {
            self.poll_wait.wake(Events::IN);
        }
    }

    /// MOD (Linux's `ep_modify`).
    fn modify(&self, il: &InterestList, slot: u32, mut event: EpollEvent) -> Result<()> {
        {
            let mut r = lock(&self.ready);
            let s = &mut r.slots[slot as usize];
            if Events::from_bits_retain(s.events).contains(Events::EXCLUSIVE) {
                return Err(Errno::EINVAL);
            }
            event.events |= (Events::ERR | Events::HUP).bits();
            s.events = event.events;
            s.data = event.data;
        }
        let revents = il.watch(slot).ops().poll() & Events::from_bits_retain(event.events);
        if !revents.is_empty() {
            self.link_and_wake(slot);
        }
        Ok(())
    }

    /// Remove an item (Linux's `ep_remove`). Caller holds `mtx`.
    fn remove(&self, il: &mut InterestList, slot: u32) {
        let Some(w) = il.watches[slot as usize].take() else {
            return;
        };
        // 1. Unhook: afterwards no callback for this slot runs or can start. The main
        // queue last: once the item is off it, the object may be freed (see
        // `Watch::object`), so nothing of it is read after.
        let me: *const EpollShared = self;
        let ops = w.ops();
        for q in [ops.extra_wait_queue(), ops.wait_queue()]
            .into_iter()
            .flatten()
        {
            q.remove_where(
                |x| matches!(x, Waiter::Item { ep, slot: s, .. } if core::ptr::eq(&**ep, me) && *s == slot),
            );
        }
        // 2. Index, ready list, slot.
        let hash = key_hash(w.key(), w.fd);
        if let Ok(entry) = il.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        {
            let mut r = lock(&self.ready);
            r.take_provisional(slot);
            if r.is_linked(slot) {
                r.unlink(slot);
            }
            r.slots[slot as usize] = ReadySlot::FREE;
        }
        il.free.push(slot);
        self.user.refund(&self.reserve);
        self.bump_items_seq();
    }

    /// The target file of `slot` is being released (its last descriptor closed): remove the
    /// item if the slot still belongs to that file (Linux's `eventpoll_release_file`). The
    /// instance may have been released meanwhile (`release_all` empties `watches`), so the
    /// slot may no longer exist.
    pub(crate) fn release_file_item(&self, slot: u32, key: usize) {
        let mut il = lock(&self.mtx);
        let owned = il
            .watches
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|w| w.key() == key);
        if owned {
            self.remove(&mut il, slot);
        }
    }

    /// This instance's file is being released: remove every item (Linux's `ep_free`).
    fn release_all(&self) {
        let mut il = lock(&self.mtx);
        for slot in 0..il.watches.len() as u32 {
            self.remove(&mut il, slot);
        }
        il.watches.clear();
        il.free.clear();
        self.user.give_back_all(&self.reserve);
    }

    /// The items' targets that are epoll instances, and the other targets (for the nesting
    /// checks).
    #[allow(clippy::type_complexity)]
    fn children(&self) -> (Vec<Arc<EpollShared>>, Vec<(usize, Arc<dyn FileOps>)>) {
        let il = lock(&self.mtx);
        let mut eps = Vec::new();
        let mut files = Vec::new();
        for w in il.watches.iter().flatten() {
            let ops = w.ops_arc();
            match epoll_of(&ops) {
                Some(ep) => eps.push(ep),
                None => files.push((w.key(), ops)),
            }
        }
        (eps, files)
    }

    /// The description key of the item in `slot`, if the slot is in use (for the wakeup-path
    /// check, which must tell a description's items from its object's other ones).
    fn item_key(&self, slot: u32) -> Option<usize> {
        lock(&self.mtx)
            .watches
            .get(slot as usize)
            .and_then(Option::as_ref)
            .map(|w| w.key())
    }

    /// The instances whose items watch this one.
    fn parents(&self) -> Vec<Arc<EpollShared>> {
        self.poll_wait
            .items()
            .into_iter()
            .map(|(ep, _)| ep)
            .collect()
    }
}

/// Introspection for the loom models (`crate::loom_models`): how many threads are blocked
/// in `wait`, and the ready list walked and checked for integrity (prev/next links agree, no
/// item twice, tail is the last item).
#[cfg(all(test, loom))]
impl EpollShared {
    pub(crate) fn blocked_waiters(&self) -> usize {
        self.wq.len()
    }

    pub(crate) fn ready_list(&self) -> Vec<u32> {
        let r = lock(&self.ready);
        let mut out = Vec::new();
        let (mut prev, mut cur) = (NIL, r.head);
        while cur != NIL {
            assert!(!out.contains(&cur), "ready list: slot {cur} linked twice");
            assert_eq!(
                r.slots[cur as usize].prev, prev,
                "ready list: bad prev link"
            );
            out.push(cur);
            prev = cur;
            cur = r.slots[cur as usize].next;
        }
        assert_eq!(r.tail, prev, "ready list: bad tail");
        assert!(
            !r.scanning && r.ovf_head == NIL,
            "ready list: scan left open"
        );
        out
    }
}

/// Whether every item of `window` (two or more) is of one non-zero batch class: polls that
/// change nothing ([`FileOps::batch_class`]).
fn one_batch_class(il: &InterestList, window: &[TxEntry]) -> bool {
    let Some(first) = window.first() else {
        return false;
    };
    let class = il.watch(first.slot).ops().batch_class();
    class != 0
        && window[1..]
            .iter()
            .all(|e| il.watch(e.slot).ops().batch_class() == class)
}

/// Poll the items of `window` into `masks` (same indices): items of a batch class (see
/// [`FileOps::batch_class`]) with one [`FileOps::poll_batch`] call per class present, the
/// others one by one.
fn poll_window(il: &InterestList, window: &[TxEntry], masks: &mut [Events]) {
    // Inline up to a typical window (no allocation per harvest).
    let mut class = 0;
    let mut batch: SmallVec<[&dyn FileOps; 16]> = SmallVec::new();
    let mut at: SmallVec<[usize; 16]> = SmallVec::new();
    for (k, e) in window.iter().enumerate() {
        let ops = il.watch(e.slot).ops();
        let c = ops.batch_class();
        if c == 0 || (class != 0 && c != class) {
            masks[k] = ops.poll();
        } else {
            class = c;
            batch.push(ops);
            at.push(k);
        }
    }
    match batch.len() {
        0 => {}
        1 => masks[at[0]] = batch[0].poll(),
        n => {
            let mut out: SmallVec<[Events; 16]> = smallvec::smallvec![Events::empty(); n];
            batch[0].poll_batch(&batch, &mut out);
            for (k, m) in at.into_iter().zip(out) {
                masks[k] = m;
            }
        }
    }
}

/// The epoll side of a [`File`] (here, not in `file`, which is below `epoll`).
impl File {
    /// The epoll instance behind this description, if it is one.
    pub(crate) fn as_epoll(&self) -> Option<&EpollShared> {
        self.downcast::<EpollShared>()
    }

    /// The epoll instance behind this description, shared, if it is one.
    pub(crate) fn epoll_arc(&self) -> Option<Arc<EpollShared>> {
        epoll_of(self.ops())
    }
}

/// The epoll instance behind an object, if it is one.
pub(crate) fn epoll_of(ops: &Arc<dyn FileOps>) -> Option<Arc<EpollShared>> {
    let any: Arc<dyn core::any::Any + Send + Sync> = ops.clone();
    any.downcast::<EpollShared>().ok()
}

/// An epoll instance is itself pollable: readable when an item is really ready.
impl FileOps for EpollShared {
    fn poll(&self) -> Events {
        self.poll_mask()
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.poll_wait)
    }
    fn release(&self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests;
