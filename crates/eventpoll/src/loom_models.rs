//! loom models of the wait/wake protocol: every interleaving (up to a preemption bound) of
//! two or three threads running the *real* engine code — the engine's mutexes, atomics and
//! thread parking come from the platform seam (`crate::platform`), which is loom's under `--cfg loom`.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/target-loom cargo test -p eventpoll --lib --release loom_models`
//! (or `scripts/loom.sh`). The preemption bound is `LOOM_MAX_PREEMPTIONS` (default 3 here).
//!
//! # The models
//!
//! | model | property |
//! |---|---|
//! | `wait_vs_wake_{lt,et}`, `add_vs_wake`, `add_of_inner_instance_vs_wake` | a blocked waiter gets the event (no lost wakeup) |
//! | `lt_event_reaches_both{,_blocked}_waiters` | an LT event reaches every waiter |
//! | `et_event_wakes_one_of_two_waiters` | an ET event is reported once, to one waiter |
//! | `wakeup_during_harvest_{et,lt}`, `wakeup_of_unprocessed_item_during_harvest` | the overflow list loses nothing, doubles nothing, keeps the list intact |
//! | `del_vs_wake{,_with_blocked_waiter}`, `slot_reuse_vs_wake` | nothing polled or reported after DEL returns; no late callback on a reused slot |
//! | `release_vs_wake_and_harvest`, `file_release_vs_instance_release` | the same for a file's release; concurrent releases of a file and its instance |
//! | `mod_rearm_oneshot_vs_wake`, `mod_et_vs_wake` | MOD racing the event loses nothing; one report per one-shot arm |
//! | `queued_over_vs_wake`, `queued_over_vs_mod` | a waiter queued over ready items (a harvest put off) is called by their wakeup or a MOD, with another thread's harvest racing |
//! | `nested_*` (4 LT/ET mixes) | an inner event wakes a thread blocked on the outer instance |
//! | `exclusive_*` (3 models) | EPOLLEXCLUSIVE wakes exactly one blocked instance, at least one, and skips instances without waiters |
//! | `timeout_vs_wake_{lt,et}`, `interrupt_vs_wake_et`, `zero_timeout_vs_wake_et`, `lt_zero_timeout_waits_never_miss_a_ready_item` | timeouts and interrupts never swallow an event or a wake-one |
//! | `eventfd_*`, `pipe_*`, `fdtable_poll_vs_write` | the objects' blocking paths and `poll(2)` against the write that unblocks them |
//! | `timerfd_expiry_vs_{poll,epoll_wait}`, `timerfd_tick_seen_then_zero_timeout_wait` | a timer's expiry (tick and wakeup in one step under its lock) reaches a thread blocked in `poll` on it or in `epoll_wait` on an instance watching it; a thread that has seen the tick finds the item reported |
//!
//! `scripts/loom_mutants.py` re-introduces classic races into a scratch copy of the engine
//! and checks that some model fails for each.
//!
//! # How the properties are checked
//!
//! - *No lost wakeup*: a thread blocked in `wait(None)` that is owed an event and never gets
//!   it parks forever; loom reports that as a deadlock, so the model fails.
//! - *Exactly-once counts*: ET and one-shot reports are summed over every harvest of the
//!   model, including a final non-blocking one after all threads are joined.
//! - *Nothing after removal*: the test object counts the polls it receives after the model
//!   marked it removed (DEL or release returned); a harvest polls only items on the ready
//!   list, so a stale item shows up as such a poll. The ready list is walked after each
//!   model and checked for integrity (links, no duplicates, scan closed).
//! - The object's readiness is a loom atomic (release store, acquire load: the weakest
//!   ordering the pollable contract allows), so loom also checks that the engine's locks
//!   order the object's state change before the harvest's poll. Bookkeeping counters are
//!   `std` atomics: invisible to loom (no extra states), and exact, because loom runs one
//!   interleaving at a time on one OS thread.
//!
//! # Time
//!
//! loom has no clock: under `--cfg loom` a timed park parks until unparked. Timeouts are
//! modelled two ways. (1) A wait with a 1 ns timeout: its deadline has passed by the time the
//! thread first checks it, so the timer "fires" exactly when the sleeping thread tries to
//! claim the timeout (the `PARKED → WOKEN` compare-exchange in `Parker::sleep`), and loom
//! places that claim at every point relative to the waker's `notify` — the race a timed
//! wait must get right (a timed-out waiter must not swallow a wake-one). (2) The timeout as
//! an explicit event: an [`Interrupt`] raised by another thread, which drives the same
//! "stop sleeping without a wakeup" path as a timeout.

use crate::epoll::EpollShared;
use crate::sync::{Arc, AtomicU32, Mutex, Ordering};
use crate::test_prelude::*;
use crate::{Epoll, Errno, EventBuffer, Events, File, Interest, Interrupt, Pollable, User};
use crate::{Result, WaitQueue};
use loom::thread;
use std::sync::atomic::{
    AtomicBool as StdBool, AtomicU32 as StdU32, AtomicUsize as StdUsize, Ordering::SeqCst,
};
use std::time::{Duration, Instant};

// ----- harness -----

/// Run `f` under loom (default preemption bound 3) and print how many executions it took.
fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    let runs = Arc::new(StdUsize::new(0));
    let counter = runs.clone();
    let start = Instant::now();
    b.check(move || {
        counter.fetch_add(1, SeqCst);
        f()
    });
    eprintln!(
        "loom model {name}: {} executions, {:.1?} (preemption bound {:?})",
        runs.load(SeqCst),
        start.elapsed(),
        b.preemption_bound
    );
}

/// A pollable whose readiness the model sets; see the module documentation.
#[derive(Default)]
struct Obj {
    mask: AtomicU32,
    queue: WaitQueue,
    /// Number of `set` calls begun.
    gen: StdU32,
    /// `gen` as seen by the latest poll.
    polled_gen: StdU32,
    /// The model removed the item (DEL or release returned).
    removed: StdBool,
    polls_after_removal: StdU32,
}

impl Pollable for Obj {
    fn poll(&self) -> Events {
        let m = self.mask.load(Ordering::Acquire);
        self.polled_gen.store(self.gen.load(SeqCst), SeqCst);
        if self.removed.load(SeqCst) {
            self.polls_after_removal.fetch_add(1, SeqCst);
        }
        Events::from_bits_retain(m)
    }
    fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}

impl Obj {
    /// Change the readiness, then wake the queue with `key` (the pollable contract).
    fn set(&self, mask: Events, key: Events) {
        self.gen.fetch_add(1, SeqCst);
        self.mask.store(mask.bits(), Ordering::Release);
        self.queue.wake(key);
    }
    /// Change the readiness without a wakeup (a consumer draining the object).
    fn quiet(&self, mask: Events) {
        self.mask.store(mask.bits(), Ordering::Release);
    }
}

fn obj() -> (Arc<Obj>, File) {
    let o = Arc::new(Obj::default());
    let f = File::new(o.clone());
    (o, f)
}

fn shared(ep: &Epoll) -> Arc<EpollShared> {
    ep.file().epoll_arc().expect("an epoll instance")
}

/// A wait; returns the data of the events.
fn wait(ep: &Epoll, timeout: Option<Duration>) -> Result<Vec<u64>> {
    let mut buf = EventBuffer::with_capacity(4);
    ep.wait(&mut buf, timeout)?;
    Ok(buf.iter().map(|e| e.data()).collect())
}

/// A non-blocking harvest of up to `max` events.
fn harvest(ep: &Epoll, max: usize) -> Vec<u64> {
    let mut buf = EventBuffer::with_capacity(max);
    ep.wait(&mut buf, Some(Duration::ZERO)).unwrap();
    buf.iter().map(|e| e.data()).collect()
}

/// Where a thread publishes its [`Interrupt`] for another thread to raise (a loom mutex: the
/// publication must order the handle's creation before its use).
type Slot = Arc<Mutex<Option<Interrupt>>>;

fn publish(slot: &Slot) {
    *crate::sync::lock(slot) = Some(Interrupt::current());
}

/// Yield until `cond` holds (loom schedules the other threads meanwhile).
fn spin_until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        thread::yield_now();
    }
}

fn raise_when_published(slot: &Slot) {
    spin_until(|| crate::sync::lock(slot).is_some());
    let intr = crate::sync::lock(slot).clone().expect("published");
    intr.raise();
}

fn lt() -> Interest {
    Interest::READABLE
}
fn et() -> Interest {
    Interest::READABLE.edge()
}

// ----- 1. wait vs wake -----

/// A thread blocked in `wait` returns the event a concurrent `set` produces (LT and ET):
/// the waiter checks the ready list and queues itself under the `ready` lock, the callback
/// links the item and wakes under the same lock.
#[test]
fn loom_models_wait_vs_wake() {
    for (name, interest) in [("wait_vs_wake_lt", lt()), ("wait_vs_wake_et", et())] {
        check(name, move || {
            let ep = Epoll::new();
            let (o, f) = obj();
            ep.add(&f, interest, 7).unwrap();
            let ep2 = ep.clone();
            let waiter = thread::spawn(move || wait(&ep2, None));
            o.set(Events::IN, Events::IN);
            assert_eq!(waiter.join().unwrap(), Ok(vec![7]));
            shared(&ep).ready_list();
        });
    }
}

/// Two waiters (blocked before the event, or arriving while it happens) and one LT event:
/// both return it (the harvest re-appends the LT item
/// and wakes the next waiter). Two blocked waiters and one ET event: exactly one returns it
/// (wake-one), the other is released by an interrupt with `EINTR`.
#[test]
fn loom_models_two_waiters() {
    for gated in [true, false] {
        let name = if gated {
            "lt_event_reaches_both_blocked_waiters"
        } else {
            "lt_event_reaches_both_waiters"
        };
        check(name, move || {
            let ep = Epoll::new();
            let (o, f) = obj();
            ep.add(&f, lt(), 1).unwrap();
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let ep = ep.clone();
                    thread::spawn(move || wait(&ep, None))
                })
                .collect();
            if gated {
                let sh = shared(&ep);
                spin_until(|| sh.blocked_waiters() == 2);
            }
            o.set(Events::IN, Events::IN);
            for w in waiters {
                assert_eq!(w.join().unwrap(), Ok(vec![1]));
            }
            drop(f);
        });
    }
    check("et_event_wakes_one_of_two_waiters", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let slots: Vec<Slot> = (0..2).map(|_| Slot::default()).collect();
        let waiters: Vec<_> = slots
            .iter()
            .map(|slot| {
                let (ep, slot) = (ep.clone(), slot.clone());
                thread::spawn(move || {
                    publish(&slot);
                    wait(&ep, None)
                })
            })
            .collect();
        let sh = shared(&ep);
        spin_until(|| sh.blocked_waiters() == 2);
        o.set(Events::IN, Events::IN);
        for s in &slots {
            raise_when_published(s);
        }
        let results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        let got = results.iter().filter(|r| *r == &Ok(vec![1])).count();
        let intr = results.iter().filter(|r| *r == &Err(Errno::EINTR)).count();
        assert_eq!((got, intr), (1, 1), "{results:?}");
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        drop(f);
    });
}

// ----- 2. wakeup during harvest -----

/// A wakeup while a harvest is scanning goes to the overflow list and is linked when the
/// scan ends: after everything, the last poll of the item saw the last state change (no
/// wakeup dropped) and ET reported at most once per wakeup; an LT item re-appended by the
/// harvest and woken during it is linked once. Last part: with
/// `maxevents = 1`, an item left unprocessed on the transfer list and woken during the
/// scan is put back exactly once (no duplicate, no loss, list intact).
#[test]
fn loom_models_wakeup_during_harvest() {
    check("wakeup_during_harvest_et", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        o.set(Events::IN, Events::IN); // gen 1: linked before the harvest starts
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN)); // gen 2
        let first = harvest(&ep, 4);
        waker.join().unwrap();
        let second = harvest(&ep, 4);
        assert_eq!(first, vec![1]);
        assert!(second.len() <= 1, "ET reported twice for one wakeup");
        assert_eq!(o.polled_gen.load(SeqCst), 2, "the second wakeup was lost");
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        shared(&ep).ready_list();
        drop(f);
    });
    check("wakeup_during_harvest_lt", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, lt(), 1).unwrap();
        o.set(Events::IN, Events::IN);
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        let first = harvest(&ep, 4);
        waker.join().unwrap();
        assert_eq!(first, vec![1]);
        // Re-appended by the harvest and possibly woken during it: linked once.
        assert_eq!(shared(&ep).ready_list().len(), 1);
        assert_eq!(harvest(&ep, 4), vec![1]);
        o.quiet(Events::empty());
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        assert_eq!(shared(&ep).ready_list(), Vec::<u32>::new());
        drop(f);
    });
    check("wakeup_of_unprocessed_item_during_harvest", || {
        let ep = Epoll::new();
        let (a, fa) = obj();
        let (b, fb) = obj();
        ep.add(&fa, et(), 1).unwrap();
        ep.add(&fb, et(), 2).unwrap();
        a.set(Events::IN, Events::IN);
        b.set(Events::IN, Events::IN);
        let b2 = b.clone();
        let waker = thread::spawn(move || b2.set(Events::IN, Events::IN));
        let first = harvest(&ep, 1);
        waker.join().unwrap();
        assert_eq!(first, vec![1]);
        assert_eq!(shared(&ep).ready_list().len(), 1);
        assert_eq!(harvest(&ep, 4), vec![2]);
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        drop((fa, fb));
    });
}

// ----- 3. DEL and release racing a wakeup -----

/// DEL racing a wakeup: once DEL returns, the item is never polled or reported, its entry
/// is off the object's queue and its slot off the ready list; the budget is refunded. With
/// a thread blocked in `wait` as well, that thread returns the event (harvested before DEL)
/// or `EINTR` (raised after everything) — and never polls the removed item.
#[test]
fn loom_models_del_vs_wake() {
    check("del_vs_wake", || {
        let user = User::new(8);
        let ep = Epoll::with_user(user.clone());
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        ep.delete(&f).unwrap();
        o.removed.store(true, SeqCst);
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        waker.join().unwrap();
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        assert_eq!(o.polls_after_removal.load(SeqCst), 0);
        assert!(o.queue.is_empty());
        assert_eq!(shared(&ep).ready_list(), Vec::<u32>::new());
        assert_eq!(user.watches(), 0);
    });
    check("del_vs_wake_with_blocked_waiter", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let slot = Slot::default();
        let (ep2, slot2) = (ep.clone(), slot.clone());
        let waiter = thread::spawn(move || {
            publish(&slot2);
            wait(&ep2, None)
        });
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        ep.delete(&f).unwrap();
        o.removed.store(true, SeqCst);
        waker.join().unwrap();
        raise_when_published(&slot);
        let r = waiter.join().unwrap();
        assert!(r == Ok(vec![1]) || r == Err(Errno::EINTR), "{r:?}");
        assert_eq!(o.polls_after_removal.load(SeqCst), 0);
        assert!(o.queue.is_empty());
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
    });
}

/// DEL then ADD of another file reuses the slot while the first file's wakeup races: a late
/// callback of the removed entry would act on the new item (a use-after-free of the slot).
/// The new file is never woken and not ready, so its slot must never be linked.
#[test]
fn loom_models_slot_reuse_vs_wake() {
    check("slot_reuse_vs_wake", || {
        let ep = Epoll::new();
        let (o1, f1) = obj();
        let (o2, f2) = obj();
        ep.add(&f1, et(), 1).unwrap();
        let o1b = o1.clone();
        let waker = thread::spawn(move || o1b.set(Events::IN, Events::IN));
        ep.delete(&f1).unwrap();
        o1.removed.store(true, SeqCst);
        ep.add(&f2, et(), 2).unwrap();
        waker.join().unwrap();
        assert_eq!(shared(&ep).ready_list(), Vec::<u32>::new());
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        assert_eq!(o1.polls_after_removal.load(SeqCst), 0);
        assert!(o1.queue.is_empty());
        assert_eq!(o2.queue.len(), 1);
        drop(f2);
    });
}

/// The release of a watched file (its last handle dropped) racing a wakeup of its object
/// (which another party, like a pipe's peer, still holds) and a harvest.
#[test]
fn loom_models_release_vs_wake() {
    check("release_vs_wake_and_harvest", || {
        let user = User::new(8);
        let ep = Epoll::with_user(user.clone());
        let (o, f) = obj();
        ep.add(&f, lt(), 1).unwrap();
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        let ep2 = ep.clone();
        let harvester = thread::spawn(move || harvest(&ep2, 4));
        drop(f);
        o.removed.store(true, SeqCst);
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        waker.join().unwrap();
        let h = harvester.join().unwrap();
        assert!(h.is_empty() || h == vec![1]);
        assert_eq!(o.polls_after_removal.load(SeqCst), 0);
        assert!(o.queue.is_empty());
        assert_eq!(user.watches(), 0);
        assert!(ep.is_empty());
        assert_eq!(shared(&ep).ready_list(), Vec::<u32>::new());
    });
}

/// The release of a watched file racing the release of the instance watching it (both last
/// handles dropped at once, e.g. two threads closing two descriptors): each side removes
/// the item at most once, nothing panics, the object's queue ends empty, the budget is
/// refunded.
#[test]
fn loom_models_release_vs_instance_release() {
    check("file_release_vs_instance_release", || {
        let user = User::new(8);
        let ep = Epoll::with_user(user.clone());
        let (o, f) = obj();
        let (o2, f2) = obj();
        ep.add(&f, lt(), 1).unwrap();
        ep.add(&f2, lt(), 2).unwrap();
        let t = thread::spawn(move || drop(f));
        drop(ep);
        t.join().unwrap();
        assert!(o.queue.is_empty());
        assert!(o2.queue.is_empty());
        assert_eq!(user.watches(), 0);
        drop(f2);
    });
}

// ----- 4. MOD racing harvest and wait -----

/// MOD re-arming a disabled one-shot item races the event that makes it ready, with a thread
/// blocked in `wait`: either the callback sees the armed item or MOD's poll sees the state,
/// so the waiter returns it — with the new data, once (after it, the item is disabled again).
/// Same for MOD of an ET item (new data) racing a write: the event is not lost.
#[test]
fn loom_models_mod_vs_wake() {
    check("mod_rearm_oneshot_vs_wake", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        o.quiet(Events::IN);
        ep.add(&f, lt().oneshot(), 1).unwrap();
        assert_eq!(harvest(&ep, 4), vec![1]); // reported: disabled
        o.quiet(Events::empty()); // consumed
        let ep2 = ep.clone();
        let waiter = thread::spawn(move || wait(&ep2, None));
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        ep.modify(&f, lt().oneshot(), 2).unwrap();
        waker.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(vec![2]));
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
        shared(&ep).ready_list();
    });
    check("mod_et_vs_wake", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let ep2 = ep.clone();
        let waiter = thread::spawn(move || wait(&ep2, None));
        let o2 = o.clone();
        let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
        ep.modify(&f, et(), 2).unwrap();
        waker.join().unwrap();
        let r = waiter.join().unwrap().unwrap();
        assert!(r == vec![1] || r == vec![2], "{r:?}");
        // At most one more report (MOD of a ready item reports it again, as Linux does).
        assert!(harvest(&ep, 4).len() <= 1);
        assert_eq!(harvest(&ep, 4), Vec::<u64>::new());
    });
}

/// A waiter queued over items ([`Epoll::queue_waiter_over`], the host's folded first
/// harvest) whose callback sets a flag (it sleeps outside the engine). The items stay on the
/// list as if its put-off scan had taken them off: a wakeup of one (`queued_over_vs_wake`,
/// with a third thread's harvest racing both) or a MOD that makes one ready for what the
/// waiter does not watch (`queued_over_vs_mod`) calls the waiter, and the harvest it then
/// makes reports the item.
#[test]
fn loom_models_queued_over() {
    struct Flag(crate::sync::AtomicBool);
    impl crate::WakeCallback for Flag {
        fn wake(&self, _key: Events) -> bool {
            !self.0.swap(true, Ordering::SeqCst)
        }
    }
    /// An LT item reported and drained: on the list, not ready.
    fn leftover() -> (Epoll, Arc<Obj>, File) {
        let ep = Epoll::new();
        let (o, f) = obj();
        o.quiet(Events::IN);
        ep.add(&f, lt(), 1).unwrap();
        assert_eq!(harvest(&ep, 4), vec![1]);
        o.quiet(Events::empty());
        (ep, o, f)
    }
    /// The host's folded wait: queue over the list if every item wants input only (else
    /// harvest), then "sleep" until called or until an item's input readiness shows (the
    /// sleep's probes), leave the queue, harvest; nothing found: queue as usual and again.
    fn folded_wait(ep: &Epoll) -> Vec<u64> {
        let mut fold = true;
        loop {
            let flag = Arc::new(Flag(crate::sync::AtomicBool::new(false)));
            let waiter = crate::WaiterHandle::new(flag.clone());
            let mut over = Vec::new();
            let input_only = &mut |_: &dyn crate::FileOps, i: Events| !i.intersects(Events::OUT);
            let queued = if core::mem::take(&mut fold) {
                ep.queue_waiter_over(Some(&waiter), 4, input_only, &mut over)
                    .is_some()
            } else {
                ep.queue_waiter(&waiter)
            };
            if queued {
                spin_until(|| {
                    flag.0.load(Ordering::SeqCst)
                        || over.iter().any(|o| o.poll().intersects(Events::IN))
                });
                ep.dequeue_waiter(&waiter);
            }
            let got = harvest(ep, 4);
            if !got.is_empty() {
                return got;
            }
        }
    }
    check("queued_over_vs_wake", || {
        let (ep, o, _f) = leftover();
        let ep2 = ep.clone();
        let waiter = thread::spawn(move || folded_wait(&ep2));
        let ep3 = ep.clone();
        let harvester = thread::spawn(move || harvest(&ep3, 4));
        o.set(Events::IN, Events::IN);
        let h = harvester.join().unwrap();
        let w = waiter.join().unwrap();
        // LT: the waiter reports it, whatever the other harvest took.
        assert_eq!(w, vec![1], "harvester got {h:?}");
        shared(&ep).ready_list();
    });
    check("queued_over_vs_mod", || {
        let (ep, o, f) = leftover();
        let ep2 = ep.clone();
        let waiter = thread::spawn(move || folded_wait(&ep2));
        o.quiet(Events::OUT);
        ep.modify(&f, Interest::READABLE | Interest::WRITABLE, 2)
            .unwrap();
        assert_eq!(waiter.join().unwrap(), vec![2]);
        shared(&ep).ready_list();
    });
}

// ----- 5. nested instances -----

/// An event on a file watched by an inner instance wakes a thread blocked on the outer
/// instance (which watches the inner one), in every LT/ET mix, while a third thread polls
/// the inner instance (a scan of the inner ready list that may overlap the wakeup).
#[test]
fn loom_models_nested_wakes_parent() {
    for (name, inner_mode, outer_mode) in [
        ("nested_lt_lt", lt(), lt()),
        ("nested_et_et", et(), et()),
        ("nested_et_inner_lt_outer", et(), lt()),
        ("nested_lt_inner_et_outer", lt(), et()),
    ] {
        check(name, move || {
            let outer = Epoll::new();
            let inner = Epoll::new();
            let (o, f) = obj();
            inner.add(&f, inner_mode, 1).unwrap();
            outer.add(inner.file(), outer_mode, 2).unwrap();
            let outer2 = outer.clone();
            let waiter = thread::spawn(move || wait(&outer2, None));
            let inner2 = inner.clone();
            let poller = thread::spawn(move || inner2.file().poll());
            o.set(Events::IN, Events::IN);
            assert_eq!(waiter.join().unwrap(), Ok(vec![2]));
            let p = poller.join().unwrap();
            assert!(p.is_empty() || p == Events::IN | Events::RDNORM);
            // The inner instance still holds its event (polling it consumed nothing).
            assert_eq!(harvest(&inner, 4), vec![1]);
            shared(&outer).ready_list();
            shared(&inner).ready_list();
            drop(f);
        });
    }
}

/// ADD racing the wakeup that makes the new item ready, with a thread already blocked on
/// the instance: ADD hooks the entry, then polls; the callback links under `ready`; either
/// way the item is linked and the waiter woken. The same for ADD of an inner instance into
/// an outer one (the outer item is hooked on the inner instance's `poll_wait` queue, whose
/// emptiness the inner callback reads without that queue's lock).
#[test]
fn loom_models_add_vs_wake() {
    for nested in [false, true] {
        let name = if nested {
            "add_of_inner_instance_vs_wake"
        } else {
            "add_vs_wake"
        };
        check(name, move || {
            let ep = Epoll::new();
            let inner = Epoll::new();
            let (o, f) = obj();
            if nested {
                inner.add(&f, lt(), 1).unwrap();
            }
            let ep2 = ep.clone();
            let waiter = thread::spawn(move || wait(&ep2, None));
            let o2 = o.clone();
            let waker = thread::spawn(move || o2.set(Events::IN, Events::IN));
            if nested {
                ep.add(inner.file(), et(), 2).unwrap();
            } else {
                ep.add(&f, et(), 2).unwrap();
            }
            waker.join().unwrap();
            assert_eq!(waiter.join().unwrap(), Ok(vec![2]));
            shared(&ep).ready_list();
            drop(f);
        });
    }
}

// ----- 6. EPOLLEXCLUSIVE -----

/// Two instances watch one file with `EPOLLEXCLUSIVE`, each with a thread blocked in `wait`.
/// One wakeup reaches exactly one of them (the first exclusive entry whose instance has a
/// waiter accepts it and stops the wake); the other thread is released by an interrupt.
/// Without waiting for both to block first, at least one instance gets it (reported to its
/// waiter or left on its ready list) and no instance reports it twice.
#[test]
fn loom_models_exclusive() {
    for gated in [true, false] {
        let name = if gated {
            "exclusive_wakes_exactly_one_blocked_instance"
        } else {
            "exclusive_wakes_at_least_one_instance"
        };
        check(name, move || {
            let (o, f) = obj();
            let eps: Vec<Epoll> = (0..2).map(|_| Epoll::new()).collect();
            for (i, ep) in eps.iter().enumerate() {
                ep.add(&f, et().exclusive(), i as u64).unwrap();
            }
            let slots: Vec<Slot> = (0..2).map(|_| Slot::default()).collect();
            let waiters: Vec<_> = eps
                .iter()
                .zip(&slots)
                .map(|(ep, slot)| {
                    let (ep, slot) = (ep.clone(), slot.clone());
                    thread::spawn(move || {
                        publish(&slot);
                        wait(&ep, None)
                    })
                })
                .collect();
            if gated {
                let sh: Vec<_> = eps.iter().map(shared).collect();
                spin_until(|| sh.iter().all(|s| s.blocked_waiters() == 1));
            }
            o.set(Events::IN, Events::IN);
            for s in &slots {
                raise_when_published(s);
            }
            let results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            // What a waiter did not take stays on its instance's ready list (a waiter whose
            // interrupt lands before it re-checks the list returns EINTR, as on Linux).
            let later: Vec<_> = eps.iter().map(|e| harvest(e, 4)).collect();
            let mut got = 0;
            let mut total = 0;
            for (i, (r, l)) in results.iter().zip(&later).enumerate() {
                let n = match r {
                    Ok(d) => {
                        assert_eq!(d, &vec![i as u64]);
                        got += 1;
                        1
                    }
                    Err(e) => {
                        assert_eq!(*e, Errno::EINTR);
                        0
                    }
                };
                assert!(n + l.len() <= 1, "{results:?} {later:?}");
                total += n + l.len();
            }
            if gated {
                assert_eq!((got, total), (1, 1), "{results:?} {later:?}");
            } else {
                assert!(total >= 1, "{results:?} {later:?}");
            }
            drop(f);
        });
    }
}

/// Two instances watch one file with `EPOLLEXCLUSIVE`; only the second has a thread blocked
/// in `wait`. The first instance's callback must not accept the wakeup (it has no waiter),
/// so the wake goes on to the second, whose waiter returns the event; the first instance
/// still has the event on its ready list.
#[test]
fn loom_models_exclusive_skips_instances_without_waiters() {
    check("exclusive_skips_instances_without_waiters", || {
        let (o, f) = obj();
        let eps: Vec<Epoll> = (0..2).map(|_| Epoll::new()).collect();
        for (i, ep) in eps.iter().enumerate() {
            ep.add(&f, et().exclusive(), i as u64).unwrap();
        }
        let ep1 = eps[1].clone();
        let waiter = thread::spawn(move || wait(&ep1, None));
        o.set(Events::IN, Events::IN);
        assert_eq!(waiter.join().unwrap(), Ok(vec![1]));
        assert_eq!(harvest(&eps[0], 4), vec![0]);
        drop(f);
    });
}

// ----- 7. timeouts and interrupts vs wakeups -----

/// A timed wait whose timer fires (1 ns timeout: see "Time" above) races a wakeup and a
/// second, untimed waiter. LT: the untimed waiter always gets the event (a timed-out waiter
/// never swallows the wake-one). ET: exactly one of the two reports it (the untimed one is
/// interrupted after the wakeup to end the model).
#[test]
fn loom_models_timeout_vs_wake() {
    check("timeout_vs_wake_lt", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, lt(), 1).unwrap();
        let ep2 = ep.clone();
        let timed = thread::spawn(move || wait(&ep2, Some(Duration::from_nanos(1))));
        let ep3 = ep.clone();
        let untimed = thread::spawn(move || wait(&ep3, None));
        o.set(Events::IN, Events::IN);
        let t = timed.join().unwrap().unwrap();
        assert!(t.is_empty() || t == vec![1]);
        assert_eq!(untimed.join().unwrap(), Ok(vec![1]));
        drop(f);
    });
    check("timeout_vs_wake_et", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let ep2 = ep.clone();
        let timed = thread::spawn(move || wait(&ep2, Some(Duration::from_nanos(1))));
        let slot = Slot::default();
        let (ep3, slot3) = (ep.clone(), slot.clone());
        let untimed = thread::spawn(move || {
            publish(&slot3);
            wait(&ep3, None)
        });
        o.set(Events::IN, Events::IN);
        raise_when_published(&slot);
        let t = timed.join().unwrap().unwrap();
        let u = untimed.join().unwrap();
        let total = t.len() + u.as_ref().map_or(0, |v| v.len());
        assert!(u.is_ok() || u == Err(Errno::EINTR));
        assert_eq!(total + harvest(&ep, 4).len(), 1, "{t:?} {u:?}");
        drop(f);
    });
}

/// An interrupt racing a wakeup of a blocked ET waiter: the waiter returns the event or
/// `EINTR`, and `EINTR` never swallows the event (a later harvest reports it): exactly one
/// report in all. A zero-timeout wait racing a wakeup: likewise exactly one report.
#[test]
fn loom_models_interrupt_and_zero_timeout_vs_wake() {
    check("interrupt_vs_wake_et", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let slot = Slot::default();
        let (ep2, slot2) = (ep.clone(), slot.clone());
        let waiter = thread::spawn(move || {
            publish(&slot2);
            wait(&ep2, None)
        });
        let raiser = thread::spawn(move || raise_when_published(&slot));
        o.set(Events::IN, Events::IN);
        raiser.join().unwrap();
        let r = waiter.join().unwrap();
        let later = harvest(&ep, 4);
        match r {
            Ok(d) => assert_eq!((d, later), (vec![1], vec![])),
            Err(e) => assert_eq!((e, later), (Errno::EINTR, vec![1])),
        }
        drop(f);
    });
    check("zero_timeout_vs_wake_et", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        ep.add(&f, et(), 1).unwrap();
        let ep2 = ep.clone();
        let poller = thread::spawn(move || harvest(&ep2, 4));
        o.set(Events::IN, Events::IN);
        let a = poller.join().unwrap();
        let b = harvest(&ep, 4);
        assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
        drop(f);
    });
    check("lt_zero_timeout_waits_never_miss_a_ready_item", || {
        let ep = Epoll::new();
        let (o, f) = obj();
        o.quiet(Events::IN);
        ep.add(&f, lt(), 1).unwrap();
        let ep2 = ep.clone();
        let other = thread::spawn(move || harvest(&ep2, 4));
        assert_eq!(harvest(&ep, 4), vec![1]);
        assert_eq!(other.join().unwrap(), vec![1]);
        drop(f);
    });
}

// ----- 8. the real objects -----

/// The objects' own blocking paths (`WaitQueue::block_until`: try, queue, try again, sleep)
/// and `poll(2)`'s sleep on several queues, against the write that unblocks them: a blocking
/// eventfd read, a blocking pipe read then end-of-file when the writer is closed, an ET item
/// on a pipe with a thread blocked in `wait`, and `FdTable::poll` on an eventfd.
#[test]
fn loom_models_objects() {
    use crate::objects::{
        eventfd::{EventFd, EventFdMode},
        pipe::pipe,
    };
    use crate::IoMode;
    check("eventfd_blocking_read_vs_write", || {
        let e = EventFd::new(0, EventFdMode::Counter);
        let e2 = e.clone();
        let reader = thread::spawn(move || e2.take(IoMode::Blocking));
        e.add(1, IoMode::Blocking).unwrap();
        assert_eq!(reader.join().unwrap(), Ok(1));
    });
    check("pipe_blocking_read_vs_write_then_close", || {
        let (r, w) = pipe(0);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4];
            let first = r.read(&mut buf);
            let second = r.read(&mut buf);
            (first, second)
        });
        assert_eq!(w.write(b"x"), Ok(1));
        drop(w);
        assert_eq!(reader.join().unwrap(), (Ok(1), Ok(0)));
    });
    check("pipe_et_item_vs_write", || {
        let (r, w) = pipe(0);
        let ep = Epoll::new();
        ep.add(&r, et(), 5).unwrap();
        let ep2 = ep.clone();
        let waiter = thread::spawn(move || wait(&ep2, None));
        assert_eq!(w.write(b"x"), Ok(1));
        assert_eq!(waiter.join().unwrap(), Ok(vec![5]));
        drop(r);
    });
    check("fdtable_poll_vs_write", || {
        let t = Arc::new(crate::FdTable::new());
        let efd = t.eventfd(0, 0).unwrap();
        let t2 = t.clone();
        let poller = thread::spawn(move || {
            let mut fds = [crate::PollFd {
                fd: efd,
                events: Events::IN.bits() as i16,
                revents: 0,
            }];
            let n = t2.poll(&mut fds, -1);
            (n, fds[0].revents)
        });
        assert_eq!(t.write(efd, &1u64.to_ne_bytes()), Ok(8));
        let (n, revents) = poller.join().unwrap();
        assert_eq!(n, Ok(1));
        assert_eq!(revents & Events::IN.bits() as i16, Events::IN.bits() as i16);
    });
}

/// A timer's expiry (the clock's callback: the tick and the wakeup of the timer's queue,
/// under the timer's state lock, as Linux's `timerfd_tmrproc`) against a thread blocked on
/// it: in `poll(2)` on the timerfd, and in `epoll_wait` on an instance watching it (LT). A
/// sleeper that polls the timer after the tick is owed its wakeup already; one that polled
/// before is queued and woken: either way it returns with `IN`, never parks for good.
#[test]
fn loom_models_timerfd() {
    use crate::objects::timerfd::CLOCK_MONOTONIC;
    use crate::platform::ManualClock;
    use crate::{EpollEvent, FdTable, ITimerSpec, TableConfig, Timespec, User};
    /// A table on `clock` with a one-shot timer due in a second, and (`watched`) an
    /// instance watching it for `IN` with data 7.
    fn timer(clock: &Arc<ManualClock>, watched: bool) -> (Arc<FdTable>, i32, i32) {
        let t = Arc::new(FdTable::with_clock(
            TableConfig::default(),
            User::new(1 << 20),
            clock.clone(),
        ));
        let fd = t.timerfd_create(CLOCK_MONOTONIC, 0).unwrap();
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let once = ITimerSpec {
            interval: zero,
            value: Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            },
        };
        t.timerfd_settime(fd, 0, &once).unwrap();
        let mut ep = -1;
        if watched {
            ep = t.epoll_create1(0).unwrap();
            let ev = EpollEvent {
                events: Events::IN.bits(),
                data: 7,
            };
            t.epoll_ctl(ep, crate::event::EPOLL_CTL_ADD, fd, Some(&ev))
                .unwrap();
        }
        (t, fd, ep)
    }
    /// `poll(2)` of the timer for `IN`: the count and the `revents`.
    fn poll_in(t: &FdTable, fd: i32, timeout_ms: i32) -> (Result<usize>, i16) {
        let mut fds = [crate::PollFd {
            fd,
            events: Events::IN.bits() as i16,
            revents: 0,
        }];
        let n = t.poll(&mut fds, timeout_ms);
        (n, fds[0].revents)
    }
    /// `epoll_wait` of instance `ep`: the count and the first event.
    fn wait_first(t: &FdTable, ep: i32, timeout_ms: i32) -> (Result<usize>, EpollEvent) {
        let mut out = [EpollEvent { events: 0, data: 0 }; 2];
        let n = t.epoll_wait(ep, &mut out, 2, timeout_ms);
        (n, out[0])
    }
    /// A thread running `sleeper` (given the table, the timer and the instance watching
    /// it, if `watched`) against the timer's expiry on this one: what `sleeper` returned.
    fn against_expiry<R: Send + 'static>(
        watched: bool,
        sleeper: impl FnOnce(&FdTable, i32, i32) -> R + Send + 'static,
    ) -> R {
        let clock = Arc::new(ManualClock::new());
        let (t, fd, ep) = timer(&clock, watched);
        let t2 = t.clone();
        let sleeping = thread::spawn(move || sleeper(&t2, fd, ep));
        clock.advance(Duration::from_secs(1));
        sleeping.join().unwrap()
    }
    check("timerfd_expiry_vs_poll", || {
        let (n, revents) = against_expiry(false, |t, fd, _| poll_in(t, fd, -1));
        assert_eq!(n, Ok(1));
        assert_eq!(revents & Events::IN.bits() as i16, Events::IN.bits() as i16);
    });
    check("timerfd_expiry_vs_epoll_wait", || {
        let (n, first) = against_expiry(true, |t, _, ep| wait_first(t, ep, -1));
        assert_eq!(n, Ok(1));
        assert_eq!((first.events, first.data), (Events::IN.bits(), 7));
    });
    // The corpus race of 2026-12-07 (`timer/periodic-unread-fires-once.ep`): a thread that
    // sees the tick (a zero-timeout `poll` of the timerfd) and then makes a zero-timeout
    // `epoll_wait` must find the item reported — with the wakeup made after the state
    // lock was let go, the item could still be off the ready list then.
    check("timerfd_tick_seen_then_zero_timeout_wait", || {
        let (seen, n) = against_expiry(true, |t, fd, ep| {
            let seen = poll_in(t, fd, 0).0 == Ok(1);
            (seen, wait_first(t, ep, 0).0)
        });
        if seen {
            assert_eq!(n, Ok(1), "the tick was seen, its item not reported");
        }
    });
}
