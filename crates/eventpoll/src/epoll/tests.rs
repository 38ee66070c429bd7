//! Engine unit tests over a test object whose mask the test sets directly, so that every
//! harvest rule is checked independently of the real objects.

use super::*;
use crate::event::{EPOLL_CTL_ADD as ADD, EPOLL_CTL_DEL as DEL, EPOLL_CTL_MOD as MOD};
use crate::table::FdTable;
use crate::test_prelude::*;
use crate::OpenFlags;
use crate::{Interest, Pollable};
use std::sync::atomic::AtomicU32 as StdAtomicU32;

/// A pollable whose mask the test sets; `set` wakes with the given key.
#[derive(Default)]
struct Level {
    mask: StdAtomicU32,
    queue: WaitQueue,
}

impl Pollable for Level {
    fn poll(&self) -> Events {
        Events::from_bits_retain(self.mask.load(Ordering::SeqCst))
    }
    fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}

impl Level {
    fn set(&self, mask: Events, key: Events) {
        self.mask.store(mask.bits(), Ordering::SeqCst);
        self.queue.wake(key);
    }
}

fn level() -> (Arc<Level>, File) {
    let l = Arc::new(Level::default());
    let f = File::new(l.clone());
    (l, f)
}

fn ev(events: Events, data: u64) -> EpollEvent {
    EpollEvent::new(events, data)
}

/// Harvest with timeout 0 and return (data, bits) pairs.
fn harvest(ep: &Epoll, max: usize) -> Vec<(u64, Events)> {
    let mut buf = EventBuffer::with_capacity(max);
    ep.wait(&mut buf, Some(Duration::ZERO)).unwrap();
    buf.iter().map(|e| (e.data(), e.events())).collect()
}

/// How long a blocked thread is given for a wakeup to reach it: `ms`, or twenty times that
/// under Miri, which interprets every thread (on a loaded machine a wakeup chain through
/// four threads took longer than 300 ms there).
fn reach(ms: u64) -> Duration {
    Duration::from_millis(if cfg!(miri) { ms * 20 } else { ms })
}

fn datas(v: &[(u64, Events)]) -> Vec<u64> {
    v.iter().map(|x| x.0).collect()
}

#[test]
fn add_polls_at_once_and_lt_reports_until_not_ready() {
    let ep = Epoll::new();
    let (l, f) = level();
    l.set(Events::IN, Events::empty());
    ep.add(&f, Interest::READABLE, 7).unwrap();
    assert_eq!(harvest(&ep, 8), vec![(7, Events::IN)]);
    assert_eq!(harvest(&ep, 8), vec![(7, Events::IN)]);
    l.mask.store(0, Ordering::SeqCst); // no wakeup: the harvest re-polls and drops it
    assert_eq!(harvest(&ep, 8), vec![]);
    l.mask.store(Events::IN.bits(), Ordering::SeqCst); // ready but no wakeup: not reported
    assert_eq!(harvest(&ep, 8), vec![]);
    l.set(Events::IN, Events::IN);
    assert_eq!(harvest(&ep, 8), vec![(7, Events::IN)]);
}

#[test]
fn reported_bits_are_interest_plus_err_hup_never_flags() {
    let ep = Epoll::new();
    let (l, f) = level();
    l.set(
        Events::IN | Events::OUT | Events::HUP | Events::ERR,
        Events::empty(),
    );
    ep.add(&f, Interest::WRITABLE.edge().oneshot(), 1).unwrap();
    assert_eq!(
        harvest(&ep, 8),
        vec![(1, Events::OUT | Events::HUP | Events::ERR)]
    );
}

#[test]
fn et_reports_once_per_wakeup_even_without_state_change() {
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE.edge(), 3).unwrap();
    l.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&ep, 8)), vec![3]);
    assert_eq!(harvest(&ep, 8), vec![]);
    l.set(Events::IN, Events::IN); // already readable: another wakeup reports again
    assert_eq!(datas(&harvest(&ep, 8)), vec![3]);
}

#[test]
fn wakeups_between_harvests_merge() {
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE.edge(), 3).unwrap();
    for _ in 0..5 {
        l.set(Events::IN, Events::IN);
    }
    assert_eq!(datas(&harvest(&ep, 8)), vec![3]);
    assert_eq!(harvest(&ep, 8), vec![]);
}

#[test]
fn key_outside_interest_is_ignored_and_empty_key_is_not() {
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE.edge(), 3).unwrap();
    l.set(Events::IN | Events::OUT, Events::OUT);
    assert_eq!(harvest(&ep, 8), vec![]);
    l.set(Events::IN, Events::empty());
    assert_eq!(datas(&harvest(&ep, 8)), vec![3]);
}

#[test]
fn oneshot_disables_until_mod() {
    let ep = Epoll::new();
    let (l, f) = level();
    l.set(Events::IN, Events::empty());
    ep.add(&f, Interest::READABLE.oneshot(), 1).unwrap();
    assert_eq!(datas(&harvest(&ep, 8)), vec![1]);
    l.set(Events::IN, Events::IN);
    assert_eq!(harvest(&ep, 8), vec![]);
    ep.modify(&f, Interest::READABLE.oneshot(), 2).unwrap();
    assert_eq!(datas(&harvest(&ep, 8)), vec![2]);
    assert_eq!(harvest(&ep, 8), vec![]);
}

#[test]
fn small_maxevents_round_robins() {
    let ep = Epoll::new();
    let mut keep = Vec::new();
    for d in 0..5 {
        let (l, f) = level();
        l.set(Events::IN, Events::empty());
        ep.add(&f, Interest::READABLE, d).unwrap();
        keep.push((l, f));
    }
    // Unreached items go back to the head, ahead of re-appended LT items.
    assert_eq!(datas(&harvest(&ep, 2)), vec![0, 1]);
    assert_eq!(datas(&harvest(&ep, 2)), vec![2, 3]);
    assert_eq!(datas(&harvest(&ep, 2)), vec![4, 0]);
    assert_eq!(datas(&harvest(&ep, 8)), vec![1, 2, 3, 4, 0]);
}

#[test]
fn del_drops_pending_event_and_mod_of_ready_item_reports_again() {
    let ep = Epoll::new();
    let (l, f) = level();
    let (l2, f2) = level();
    ep.add(&f, Interest::READABLE.edge(), 1).unwrap();
    ep.add(&f2, Interest::READABLE.edge(), 2).unwrap();
    l.set(Events::IN, Events::IN);
    l2.set(Events::IN, Events::IN);
    ep.delete(&f).unwrap();
    assert_eq!(datas(&harvest(&ep, 8)), vec![2]);
    assert_eq!(harvest(&ep, 8), vec![]);
    ep.modify(&f2, Interest::READABLE.edge(), 5).unwrap();
    assert_eq!(datas(&harvest(&ep, 8)), vec![5]);
    assert_eq!(ep.delete(&f), Err(Errno::ENOENT));
    assert_eq!(ep.modify(&f, Interest::READABLE, 0), Err(Errno::ENOENT));
    assert_eq!(ep.add(&f2, Interest::READABLE, 0), Err(Errno::EEXIST));
}

#[test]
fn efault_when_buffer_shorter_than_maxevents() {
    let t = FdTable::new();
    let (l, f) = level();
    l.set(Events::IN, Events::empty());
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    let ep = t.epoll_create1(0).unwrap();
    t.epoll_ctl(ep, ADD, fd, Some(&ev(Events::IN, 1))).unwrap();
    assert_eq!(t.epoll_wait(ep, &mut [], 4, 0), Err(Errno::EFAULT));
    // The item stayed on the ready list.
    let mut buf = [EpollEvent::default(); 4];
    assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1));
    // With nothing ready, an empty buffer is fine (Linux writes nothing).
    l.mask.store(0, Ordering::SeqCst);
    assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(0));
    assert_eq!(t.epoll_wait(ep, &mut [], 4, 0), Ok(0));
}

/// A sink that counts how often the harvest asks it for room (the C ABI's asking probes
/// the caller's memory, a system call).
struct CountingSink {
    slots: Vec<EpollEvent>,
    asked: usize,
}

impl crate::EventSink for CountingSink {
    fn room(&mut self, from: usize, want: usize) -> usize {
        self.asked += 1;
        self.slots.len().saturating_sub(from).min(want)
    }
    fn put(&mut self, i: usize, event: EpollEvent) -> bool {
        match self.slots.get_mut(i) {
            Some(s) => {
                *s = event;
                true
            }
            None => false,
        }
    }
}

#[test]
fn a_last_item_is_polled_without_asking_the_sink_for_room() {
    let epoll = Epoll::new();
    let (l, f) = level();
    l.set(Events::IN, Events::empty());
    epoll.add(&f, Interest::READABLE, 1).unwrap();
    let mut sink = CountingSink {
        slots: vec![EpollEvent::default(); 4],
        asked: 0,
    };
    // Reported (level-triggered: back on the ready list) without asking.
    assert_eq!(
        epoll.wait_into_sink(&mut sink, 4, Some(Duration::ZERO)),
        Ok(1)
    );
    assert_eq!(sink.slots[0].data(), 1);
    // Drained: the re-poll finds it not ready, still without asking.
    l.mask.store(0, Ordering::SeqCst);
    assert_eq!(
        epoll.wait_into_sink(&mut sink, 4, Some(Duration::ZERO)),
        Ok(0)
    );
    assert_eq!(sink.asked, 0);
    // Two ready items: the harvest asks before it polls ahead.
    let (l2, f2) = level();
    l2.set(Events::IN, Events::empty());
    l.set(Events::IN, Events::IN);
    epoll.add(&f2, Interest::READABLE, 2).unwrap();
    assert_eq!(
        epoll.wait_into_sink(&mut sink, 4, Some(Duration::ZERO)),
        Ok(2)
    );
    assert!(sink.asked > 0);
    // An unwritable first slot is still EFAULT, the item still ready.
    epoll.delete(&f2).unwrap();
    let mut none = CountingSink {
        slots: Vec::new(),
        asked: 0,
    };
    assert_eq!(
        epoll.wait_into_sink(&mut none, 4, Some(Duration::ZERO)),
        Err(Errno::EFAULT)
    );
    assert_eq!(harvest(&epoll, 4), vec![(1, Events::IN)]);
}

/// `queue_waiter_over`: queued over a ready list only if every item is accepted and there
/// are at most `max`, with the accepted items' objects handed back in list order; a
/// wakeup of an item that stays on the list while the waiter is queued still calls the
/// waiter (as `ep_poll_callback` wakes the queue whether or not it links the item); and
/// the harvest after it reports the list as it is then.
#[test]
fn a_waiter_queued_over_ready_items_is_woken_by_their_wakeups() {
    struct Flag(AtomicBool);
    impl crate::WakeCallback for Flag {
        fn wake(&self, _key: Events) -> bool {
            !self.0.swap(true, Ordering::SeqCst)
        }
    }
    let ep = Epoll::new();
    let (a, fa) = level();
    let (b, fb) = level();
    ep.add(&fa, Interest::READABLE, 1).unwrap();
    ep.add(&fb, Interest::READABLE, 2).unwrap();
    a.set(Events::IN, Events::IN);
    b.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&ep, 8)), vec![1, 2]);
    // Both level-triggered items are on the list again, both drained.
    a.set(Events::empty(), Events::empty());
    b.set(Events::empty(), Events::empty());
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waiter = crate::WaiterHandle::new(flag.clone());
    let mut over = Vec::new();
    let any = &mut |_: &dyn FileOps, _: Events| true;
    assert!(
        ep.queue_waiter_over(Some(&waiter), 1, any, &mut over)
            .is_none(),
        "two items, max one"
    );
    assert!(over.is_empty());
    let only_a = &mut |o: &dyn FileOps, _: Events| {
        core::ptr::addr_eq(o as *const dyn FileOps, Arc::as_ptr(&a))
    };
    assert!(
        ep.queue_waiter_over(Some(&waiter), 8, only_a, &mut over)
            .is_none(),
        "b refused"
    );
    assert!(
        ep.queue_waiter_over(None, 8, any, &mut over).is_some(),
        "would queue"
    );
    assert!(!ep.dequeue_waiter(&waiter), "a check only queues nothing");
    assert!(ep
        .queue_waiter_over(Some(&waiter), 8, any, &mut over)
        .is_some());
    let objects: Vec<*const ()> = over.iter().map(|o| Arc::as_ptr(o) as *const ()).collect();
    assert_eq!(
        objects,
        vec![Arc::as_ptr(&a) as *const (), Arc::as_ptr(&b) as *const ()]
    );
    // b becomes ready while the waiter is queued: b is linked already, the waiter is called.
    b.set(Events::IN, Events::IN);
    assert!(flag.0.load(Ordering::SeqCst));
    assert!(!ep.dequeue_waiter(&waiter), "called, so off the queue");
    // The harvest reports what is ready now, a found not ready is dropped.
    assert_eq!(harvest(&ep, 8), vec![(2, Events::IN)]);
    b.set(Events::empty(), Events::empty());
    assert_eq!(harvest(&ep, 8), vec![]);
    // An empty list queues as `queue_waiter` does, with nothing handed back.
    assert!(ep
        .queue_waiter_over(Some(&waiter), 8, any, &mut over)
        .is_some());
    assert!(over.is_empty());
    assert!(ep.dequeue_waiter(&waiter));
    // Queued over items as if its scan had taken them off: a MOD that makes one ready
    // (for output, which the caller does not watch) links it afresh and wakes the waiter,
    // as Linux's MOD of an item its scan dropped does.
    a.set(Events::IN, Events::IN);
    b.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&ep, 8)), vec![1, 2]);
    a.set(Events::OUT, Events::empty());
    b.set(Events::empty(), Events::empty());
    flag.0.store(false, Ordering::SeqCst);
    assert!(ep
        .queue_waiter_over(Some(&waiter), 8, any, &mut over)
        .is_some());
    assert_eq!(over.len(), 2);
    ep.modify(&fa, Interest::WRITABLE, 3).unwrap();
    assert!(flag.0.load(Ordering::SeqCst), "the MOD woke the waiter");
    assert!(!ep.dequeue_waiter(&waiter));
    assert_eq!(harvest(&ep, 8), vec![(3, Events::OUT)]);
    // A wakeup of an item queued over links it afresh, at the tail: a (earlier on the list)
    // woken after b was made ready behind the waiter's back comes after b.
    ep.modify(&fa, Interest::READABLE, 1).unwrap();
    a.set(Events::IN, Events::IN);
    b.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&ep, 8)), vec![1, 2]);
    a.set(Events::empty(), Events::empty());
    b.set(Events::empty(), Events::empty());
    flag.0.store(false, Ordering::SeqCst);
    assert!(ep
        .queue_waiter_over(Some(&waiter), 8, any, &mut over)
        .is_some());
    b.set(Events::IN, Events::IN);
    a.set(Events::IN, Events::IN);
    assert!(!ep.dequeue_waiter(&waiter));
    assert_eq!(datas(&harvest(&ep, 8)), vec![2, 1]);
}

#[test]
fn ctl_error_order() {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let (_l, f) = level();
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    let plain = t
        .install(File::new(Arc::new(Plain)), OpenFlags::empty())
        .unwrap();
    let e = ev(Events::IN, 1);
    assert_eq!(t.epoll_ctl(ep, ADD, fd, None), Err(Errno::EFAULT));
    assert_eq!(t.epoll_ctl(-1, ADD, fd, None), Err(Errno::EFAULT));
    assert_eq!(t.epoll_ctl(-1, DEL, fd, None), Err(Errno::EBADF));
    assert_eq!(t.epoll_ctl(ep, ADD, 999, Some(&e)), Err(Errno::EBADF));
    assert_eq!(t.epoll_ctl(ep, ADD, plain, Some(&e)), Err(Errno::EPERM));
    assert_eq!(t.epoll_ctl(plain, ADD, plain, Some(&e)), Err(Errno::EPERM));
    assert_eq!(t.epoll_ctl(ep, ADD, ep, Some(&e)), Err(Errno::EINVAL));
    assert_eq!(t.epoll_ctl(fd, ADD, ep, Some(&e)), Err(Errno::EINVAL));
    assert_eq!(t.epoll_ctl(ep, 7, fd, Some(&e)), Err(Errno::EINVAL));
    assert_eq!(t.epoll_ctl(ep, 7, fd, None), Err(Errno::EFAULT));
    let excl = ev(Events::IN | Events::EXCLUSIVE, 1);
    assert_eq!(t.epoll_ctl(ep, MOD, fd, Some(&excl)), Err(Errno::EINVAL));
    let bad = ev(Events::IN | Events::EXCLUSIVE | Events::RDHUP, 1);
    assert_eq!(t.epoll_ctl(ep, ADD, fd, Some(&bad)), Err(Errno::EINVAL));
    let ep2 = t.epoll_create1(0).unwrap();
    assert_eq!(t.epoll_ctl(ep, ADD, ep2, Some(&excl)), Err(Errno::EINVAL));
    t.epoll_ctl(ep, ADD, fd, Some(&excl)).unwrap();
    assert_eq!(t.epoll_ctl(ep, ADD, fd, Some(&e)), Err(Errno::EEXIST));
    assert_eq!(t.epoll_ctl(ep, MOD, fd, Some(&e)), Err(Errno::EINVAL));
    t.epoll_ctl(ep, DEL, fd, None).unwrap();
    assert_eq!(t.epoll_ctl(ep, DEL, fd, None), Err(Errno::ENOENT));
}

struct Plain;
impl FileOps for Plain {
    fn poll(&self) -> Events {
        Events::IN | Events::OUT | Events::RDNORM | Events::WRNORM
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        None
    }
}

#[test]
fn wait_argument_errors() {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let (_l, f) = level();
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    let mut buf = [EpollEvent::default(); 1];
    assert_eq!(t.epoll_wait(ep, &mut buf, 0, 0), Err(Errno::EINVAL));
    assert_eq!(t.epoll_wait(ep, &mut buf, -1, 0), Err(Errno::EINVAL));
    assert_eq!(t.epoll_wait(ep, &mut buf, i32::MAX, 0), Err(Errno::EINVAL));
    assert_eq!(t.epoll_wait(99, &mut buf, 1, 0), Err(Errno::EBADF));
    assert_eq!(t.epoll_wait(fd, &mut buf, 1, 0), Err(Errno::EINVAL));
    let bad = Timespec {
        tv_sec: -1,
        tv_nsec: 0,
    };
    assert_eq!(
        t.epoll_pwait2(99, &mut buf, 1, Some(&bad)),
        Err(Errno::EINVAL)
    );
    let bad = Timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000_000,
    };
    assert_eq!(
        t.epoll_pwait2(ep, &mut buf, 1, Some(&bad)),
        Err(Errno::EINVAL)
    );
    let zero = Timespec::default();
    assert_eq!(t.epoll_pwait2(ep, &mut buf, 1, Some(&zero)), Ok(0));
    assert_eq!(
        t.epoll_pwait(ep, &mut buf, 1, 0, Some(&[0; 8]), 4),
        Err(Errno::EINVAL)
    );
    assert_eq!(t.epoll_pwait(ep, &mut buf, 1, 0, None, 4), Ok(0));
    assert_eq!(t.epoll_create(0), Err(Errno::EINVAL));
    assert_eq!(t.epoll_create1(1), Err(Errno::EINVAL));
    assert!(t.epoll_create1(crate::event::EPOLL_CLOEXEC).is_ok());
}

use crate::table::Timespec;

#[test]
fn ghost_events_after_closing_one_of_two_descriptors() {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let (l, f) = level();
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    let fd2 = t.dup(fd).unwrap();
    t.epoll_ctl(ep, ADD, fd, Some(&ev(Events::IN, 7))).unwrap();
    t.close(fd).unwrap();
    l.set(Events::IN, Events::IN);
    let mut buf = [EpollEvent::default(); 4];
    assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1));
    assert_eq!(buf[0].data(), 7);
    assert_eq!(t.epoll_ctl(ep, DEL, fd, None), Err(Errno::EBADF));
    // Closing the last descriptor releases the file and removes the item.
    t.close(fd2).unwrap();
    assert_eq!(t.user().watches(), 0);
    assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(0));
    assert!(l.queue.is_empty());
}

#[test]
fn two_descriptors_of_one_file_are_two_items() {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let (l, f) = level();
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    let fd2 = t.dup(fd).unwrap();
    t.epoll_ctl(ep, ADD, fd, Some(&ev(Events::IN, 1))).unwrap();
    t.epoll_ctl(ep, ADD, fd2, Some(&ev(Events::IN, 2))).unwrap();
    l.set(Events::IN, Events::IN);
    let mut buf = [EpollEvent::default(); 4];
    assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(2));
    // Non-exclusive entries are hooked at the head of the file's queue, so the item added
    // last is woken, and reported, first (observed on Linux 6.18 with two dups of a pipe).
    assert_eq!((buf[0].data(), buf[1].data()), (2, 1));
}

#[test]
fn releasing_the_instance_unhooks_every_item() {
    let (l, f) = level();
    let user = User::new(10);
    {
        let ep = Epoll::with_user(user.clone());
        ep.add(&f, Interest::READABLE, 1).unwrap();
        assert_eq!(user.watches(), 1);
        assert!(!l.queue.is_empty());
    }
    assert_eq!(user.watches(), 0);
    assert!(l.queue.is_empty());
}

#[test]
fn watch_budget_is_enospc() {
    let user = User::new(2);
    let ep = Epoll::with_user(user.clone());
    let files: Vec<_> = (0..3).map(|_| level().1).collect();
    ep.add(&files[0], Interest::READABLE, 0).unwrap();
    ep.add(&files[1], Interest::READABLE, 0).unwrap();
    assert_eq!(ep.add(&files[2], Interest::READABLE, 0), Err(Errno::ENOSPC));
    ep.delete(&files[0]).unwrap();
    ep.add(&files[2], Interest::READABLE, 0).unwrap();
}

/// The budget is one count across instances, whatever each holds in reserve: with 40
/// watches (more than one batch) shared by two instances, the 41st ADD fails in either; a
/// DEL in one frees a watch for the other; a released instance gives its watches back; and
/// a limit lowered under the count refuses ADDs until enough are removed.
#[test]
fn watch_budget_is_exact_across_instances() {
    let user = User::new(40);
    let (a, b) = (
        Epoll::with_user(user.clone()),
        Epoll::with_user(user.clone()),
    );
    let files: Vec<_> = (0..42).map(|_| level().1).collect();
    for (i, f) in files[..40].iter().enumerate() {
        let ep = if i % 3 == 0 { &a } else { &b };
        ep.add(f, Interest::READABLE, i as u64).unwrap();
        assert_eq!(user.watches(), i + 1);
    }
    assert_eq!(a.add(&files[40], Interest::READABLE, 0), Err(Errno::ENOSPC));
    assert_eq!(b.add(&files[40], Interest::READABLE, 0), Err(Errno::ENOSPC));
    a.delete(&files[0]).unwrap();
    assert_eq!(user.watches(), 39);
    b.add(&files[40], Interest::READABLE, 0).unwrap();
    assert_eq!(a.add(&files[41], Interest::READABLE, 0), Err(Errno::ENOSPC));
    let a_items = a.len();
    drop(a);
    assert_eq!(user.watches(), 40 - a_items);
    user.set_max_watches(10);
    assert_eq!(b.add(&files[41], Interest::READABLE, 0), Err(Errno::ENOSPC));
    for f in &files[1..40] {
        let _ = b.delete(f);
    }
    assert_eq!(user.watches(), 1);
    b.add(&files[41], Interest::READABLE, 0).unwrap();
    assert_eq!(user.watches(), 2);
}

#[test]
fn nested_instance_is_readable_only_when_an_item_is_really_ready() {
    let outer = Epoll::new();
    let inner = Epoll::new();
    let (l, f) = level();
    inner.add(&f, Interest::READABLE, 1).unwrap();
    outer.add(inner.file(), Interest::READABLE, 2).unwrap();
    assert_eq!(inner.file().poll(), Events::empty());
    assert_eq!(harvest(&outer, 8), vec![]);
    l.set(Events::IN, Events::IN);
    assert_eq!(inner.file().poll(), Events::IN | Events::RDNORM);
    assert_eq!(harvest(&outer, 8), vec![(2, Events::IN)]);
    assert_eq!(harvest(&inner, 8), vec![(1, Events::IN)]);
    // Not ready any more: polling the inner instance drops the stale item.
    l.mask.store(0, Ordering::SeqCst);
    assert_eq!(inner.file().poll(), Events::empty());
    assert_eq!(harvest(&outer, 8), vec![]);
}

#[test]
fn loops_and_depth_are_eloop() {
    let eps: Vec<Epoll> = (0..7).map(|_| Epoll::new()).collect();
    // A chain of five instances is accepted, the sixth link is refused.
    for i in (0..4).rev() {
        eps[i]
            .add(eps[i + 1].file(), Interest::READABLE, 0)
            .unwrap();
    }
    assert_eq!(
        eps[5].add(eps[0].file(), Interest::READABLE, 0),
        Err(Errno::ELOOP)
    );
    // Top-down too.
    assert_eq!(
        eps[4].add(eps[5].file(), Interest::READABLE, 0),
        Err(Errno::ELOOP)
    );
    // Loops.
    assert_eq!(
        eps[1].add(eps[0].file(), Interest::READABLE, 0),
        Err(Errno::ELOOP)
    );
    let (a, b) = (Epoll::new(), Epoll::new());
    a.add(b.file(), Interest::READABLE, 0).unwrap();
    assert_eq!(b.add(a.file(), Interest::READABLE, 0), Err(Errno::ELOOP));
    let _ = &eps[6];
}

#[test]
fn wakeup_path_limits() {
    // A file watched by 501 instances that are each watched by one top-level instance
    // has 501 paths of length 2: the 501st is refused.
    let (_l, f) = level();
    let top = Epoll::new();
    let mut mids = Vec::new();
    let mut refused = None;
    for i in 0..501 {
        let mid = Epoll::new();
        top.add(mid.file(), Interest::READABLE, i).unwrap();
        if let Err(e) = mid.add(&f, Interest::READABLE, i) {
            refused = Some((i, e));
            break;
        }
        mids.push(mid);
    }
    assert_eq!(refused, Some((500, Errno::EINVAL)));
    // Direct watches are unlimited.
    let direct: Vec<Epoll> = (0..1100).map(|_| Epoll::new()).collect();
    let (_l2, g) = level();
    for d in &direct {
        d.add(&g, Interest::READABLE, 0).unwrap();
    }
}

#[test]
fn exclusive_wakes_only_instances_with_waiters_first() {
    // Single-threaded: no instance has a blocked waiter, so none accepts and all get it.
    let (l, f) = level();
    let (a, b) = (Epoll::new(), Epoll::new());
    a.add(&f, Interest::READABLE.exclusive(), 1).unwrap();
    b.add(&f, Interest::READABLE.exclusive(), 2).unwrap();
    l.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&a, 8)), vec![1]);
    assert_eq!(datas(&harvest(&b, 8)), vec![2]);
}

#[test]
fn exclusive_with_blocked_waiters_wakes_one_instance() {
    let (l, f) = level();
    let eps: Vec<Epoll> = (0..4).map(|_| Epoll::new()).collect();
    for (i, e) in eps.iter().enumerate() {
        e.add(&f, Interest::READABLE.exclusive().edge(), i as u64)
            .unwrap();
    }
    let woke = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = eps
        .iter()
        .map(|e| {
            let (e, woke) = (e.clone(), woke.clone());
            std::thread::spawn(move || {
                let mut buf = EventBuffer::with_capacity(4);
                let n = e.wait(&mut buf, Some(reach(400))).unwrap();
                woke.fetch_add(n, Ordering::SeqCst);
            })
        })
        .collect();
    // Wait until all four threads are blocked.
    while eps.iter().any(|e| e.ep.wq.is_empty()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    l.set(Events::IN, Events::IN);
    for t in threads {
        t.join().unwrap();
    }
    let n = woke.load(Ordering::SeqCst);
    assert!(
        (1..4).contains(&n),
        "exclusive wakeup reached {n} of 4 instances"
    );
}

#[test]
fn blocking_wait_is_woken_and_times_out() {
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE, 9).unwrap();
    let start = Instant::now();
    let mut buf = EventBuffer::with_capacity(4);
    assert_eq!(ep.wait(&mut buf, Some(Duration::from_millis(30))), Ok(0));
    assert!(start.elapsed() >= Duration::from_millis(30));
    let l2 = l.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        l2.set(Events::IN, Events::IN);
    });
    assert_eq!(ep.wait(&mut buf, None), Ok(1));
    t.join().unwrap();
}

#[test]
fn interrupt_returns_eintr() {
    let ep = Epoll::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let ep2 = ep.clone();
    let t = std::thread::spawn(move || {
        tx.send(crate::Interrupt::current()).unwrap();
        let mut buf = EventBuffer::with_capacity(4);
        ep2.wait(&mut buf, None)
    });
    let intr = rx.recv().unwrap();
    while ep.ep.wq.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    intr.raise();
    assert_eq!(t.join().unwrap(), Err(Errno::EINTR));
}

#[test]
fn lt_event_reaches_every_waiter_and_et_event_one() {
    for (edge, expect_all) in [(false, true), (true, false)] {
        let ep = Epoll::new();
        let (l, f) = level();
        let interest = if edge {
            Interest::READABLE.edge()
        } else {
            Interest::READABLE
        };
        ep.add(&f, interest, 1).unwrap();
        let n = 4;
        let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (ep, got) = (ep.clone(), got.clone());
                std::thread::spawn(move || {
                    let mut buf = EventBuffer::with_capacity(4);
                    if ep.wait(&mut buf, Some(reach(300))).unwrap() > 0 {
                        got.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        while ep.ep.wq.len() != n {
            std::thread::sleep(Duration::from_millis(1));
        }
        l.set(Events::IN, Events::IN);
        for t in threads {
            t.join().unwrap();
        }
        let got = got.load(Ordering::SeqCst);
        if expect_all {
            assert_eq!(got, n, "LT: every waiter sees the event");
        } else {
            assert_eq!(got, 1, "ET: one waiter sees the event");
        }
    }
}

#[test]
fn et_event_wakes_the_newest_sleeper_first() {
    // Linux's ep_poll queues its thread with __add_wait_queue_exclusive (at the head), so of
    // the threads blocked on one instance, each wakeup reaches the last one that went to
    // sleep (scenarios/threads/order/newest-sleeper-first.ep shows it on the kernel).
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE.edge(), 1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for id in 0..3usize {
        let (ep2, tx) = (ep.clone(), tx.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = EventBuffer::with_capacity(4);
            let n = ep2.wait(&mut buf, Some(Duration::from_secs(5))).unwrap();
            tx.send((id, n)).unwrap();
        }));
        while ep.ep.wq.len() != id + 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for newest in [2, 1, 0] {
        l.set(Events::IN, Events::IN);
        let woken = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(woken, (newest, 1), "the newest sleeper gets the ET event");
        assert_eq!(ep.ep.wq.len(), newest, "the others are still asleep");
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn wakeup_during_harvest_is_not_lost() {
    // Many rounds of: one thread sets + wakes while another harvests; every ET wakeup that
    // happened after a harvest started must be reported by a later harvest.
    let ep = Epoll::new();
    let (l, f) = level();
    ep.add(&f, Interest::READABLE.edge(), 1).unwrap();
    for _ in 0..2000 {
        let l2 = l.clone();
        let t = std::thread::spawn(move || l2.set(Events::IN, Events::IN));
        let _ = harvest(&ep, 4);
        t.join().unwrap();
        // The wakeup happened-before now: either that harvest or this one reports it.
        let _ = harvest(&ep, 4);
        l.set(Events::IN, Events::IN);
        assert_eq!(datas(&harvest(&ep, 4)), vec![1]);
    }
}

/// A pollable that, when polled, makes another object ready and wakes it: a wakeup that
/// arrives while a harvest is in progress.
struct Trigger {
    other: Arc<Level>,
    queue: WaitQueue,
}
impl Pollable for Trigger {
    fn poll(&self) -> Events {
        self.other.set(Events::IN, Events::IN);
        Events::IN
    }
    fn wait_queue(&self) -> &WaitQueue {
        &self.queue
    }
}

#[test]
fn wakeups_during_a_harvest_go_ahead_of_re_appended_items() {
    let ep = Epoll::new();
    let (la, fa) = level();
    la.set(Events::IN, Events::empty());
    let (lc, fc) = level();
    let trigger = Arc::new(Trigger {
        other: lc.clone(),
        queue: WaitQueue::new(),
    });
    let fb = File::new(trigger);
    ep.add(&fa, Interest::READABLE, 1).unwrap();
    ep.add(&fb, Interest::READABLE, 2).unwrap();
    ep.add(&fc, Interest::READABLE.edge(), 3).unwrap();
    // Polling B wakes C mid-harvest: C is chained on the overflow list even though it is
    // on this harvest's transfer list and is then reported (edge-triggered, so taken off).
    // When the harvest ends the overflow list goes ahead of the re-appended A and B
    // (Linux's ep_done_scan), so C comes first next time, and again after that.
    assert_eq!(datas(&harvest(&ep, 8)), vec![1, 2, 3]);
    assert_eq!(datas(&harvest(&ep, 8)), vec![3, 1, 2]);
    assert_eq!(datas(&harvest(&ep, 8)), vec![3, 1, 2]);
}

/// A test object of a batch class: counts single polls and batched calls.
#[derive(Default)]
struct Batched {
    mask: StdAtomicU32,
    queue: WaitQueue,
    singles: StdAtomicU32,
    batches: Arc<StdAtomicU32>,
}

impl FileOps for Batched {
    fn poll(&self) -> Events {
        self.singles.fetch_add(1, Ordering::SeqCst);
        Events::from_bits_retain(self.mask.load(Ordering::SeqCst))
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }
    fn batch_class(&self) -> usize {
        0xba7c
    }
    fn poll_batch(&self, batch: &[&dyn FileOps], out: &mut [Events]) {
        self.batches.fetch_add(1, Ordering::SeqCst);
        for (f, o) in batch.iter().zip(out.iter_mut()) {
            let any: &dyn std::any::Any = *f;
            let b = any.downcast_ref::<Batched>().expect("same class");
            *o = Events::from_bits_retain(b.mask.load(Ordering::SeqCst));
        }
    }
}

/// An instance watching `n` ready objects of one batch class (data 0 to n - 1), their
/// descriptions, and the count of batched polls they share.
fn batched_instance(n: usize) -> (Epoll, Vec<Arc<Batched>>, Vec<File>, Arc<StdAtomicU32>) {
    let ep = Epoll::new();
    let batches = Arc::new(StdAtomicU32::new(0));
    let objs: Vec<Arc<Batched>> = (0..n)
        .map(|_| {
            Arc::new(Batched {
                mask: StdAtomicU32::new(Events::IN.bits()),
                batches: batches.clone(),
                ..Default::default()
            })
        })
        .collect();
    let files: Vec<File> = objs.iter().map(|o| File::new(o.clone())).collect();
    for (i, f) in files.iter().enumerate() {
        ep.add(f, Interest::READABLE, i as u64).unwrap();
    }
    (ep, objs, files, batches)
}

#[test]
fn a_harvest_polls_a_batch_class_with_one_call_per_window() {
    let (ep, objs, _files, batches) = batched_instance(5);
    let (l, lf) = level();
    l.set(Events::IN, Events::empty());
    ep.add(&lf, Interest::READABLE, 99).unwrap();
    let singles_after_add: Vec<u32> = objs
        .iter()
        .map(|o| o.singles.load(Ordering::SeqCst))
        .collect();
    // All six ready (LT): one batched call for the five, the plain object polled alone.
    assert_eq!(datas(&harvest(&ep, 8)), vec![0, 1, 2, 3, 4, 99]);
    assert_eq!(batches.load(Ordering::SeqCst), 1);
    for (o, before) in objs.iter().zip(singles_after_add) {
        assert_eq!(
            o.singles.load(Ordering::SeqCst),
            before,
            "no single poll in a batch"
        );
    }
    // A window never polls more items than could still be reported: maxevents 2 polls
    // two at a time and round-robins as before.
    objs[0].mask.store(0, Ordering::SeqCst);
    assert_eq!(datas(&harvest(&ep, 2)), vec![1, 2]);
    assert_eq!(datas(&harvest(&ep, 2)), vec![3, 4]);
    assert_eq!(datas(&harvest(&ep, 8)), vec![99, 1, 2, 3, 4]);
}

#[test]
fn a_run_of_one_batch_class_is_polled_without_asking_the_sink_for_room() {
    let (ep, _objs, _files, batches) = batched_instance(3);
    // Room for all: one batch, the sink never asked.
    let mut sink = CountingSink {
        slots: vec![EpollEvent::default(); 4],
        asked: 0,
    };
    assert_eq!(ep.wait_into_sink(&mut sink, 4, Some(Duration::ZERO)), Ok(3));
    assert_eq!(sink.asked, 0);
    assert_eq!(batches.load(Ordering::SeqCst), 1);
    // Two writable slots: the third item, polled with the others, stays on the ready list
    // unreported, first in line next time (as if never polled).
    let mut short = CountingSink {
        slots: vec![EpollEvent::default(); 2],
        asked: 0,
    };
    assert_eq!(
        ep.wait_into_sink(&mut short, 4, Some(Duration::ZERO)),
        Ok(2)
    );
    assert_eq!(short.asked, 0);
    let d: Vec<u64> = short.slots.iter().map(|e| e.data()).collect();
    assert_eq!(d, vec![0, 1]);
    assert_eq!(datas(&harvest(&ep, 8)), vec![2, 0, 1]);
    // No writable slot: EFAULT, everything still ready.
    let mut none = CountingSink {
        slots: Vec::new(),
        asked: 0,
    };
    assert_eq!(
        ep.wait_into_sink(&mut none, 4, Some(Duration::ZERO)),
        Err(Errno::EFAULT)
    );
    assert_eq!(harvest(&ep, 8).len(), 3);
    // A mixed window (a plain object among them) still asks.
    let (l, lf) = level();
    l.set(Events::IN, Events::empty());
    ep.add(&lf, Interest::READABLE, 9).unwrap();
    let mut mixed = CountingSink {
        slots: vec![EpollEvent::default(); 8],
        asked: 0,
    };
    assert_eq!(
        ep.wait_into_sink(&mut mixed, 8, Some(Duration::ZERO)),
        Ok(4)
    );
    assert!(mixed.asked > 0);
}

#[test]
fn wakeup_flag_needs_the_capability() {
    use crate::table::TableConfig;
    let ev_wakeup = ev(Events::IN | Events::WAKEUP, 1);
    for (cap, kept) in [(false, false), (true, true)] {
        let t = FdTable::with_config(
            TableConfig {
                cap_block_suspend: cap,
                ..TableConfig::default()
            },
            User::new(100),
        );
        let ep = t.epoll_create1(0).unwrap();
        let (_l, f) = level();
        let fd = t.install(f, OpenFlags::empty()).unwrap();
        t.epoll_ctl(ep, ADD, fd, Some(&ev_wakeup)).unwrap();
        let info = t.epoll_items(ep).unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].events.contains(Events::WAKEUP), kept);
        assert_eq!(
            info[0].events & !Events::WAKEUP,
            Events::IN | Events::ERR | Events::HUP
        );
        // MOD drops it the same way.
        t.epoll_ctl(ep, MOD, fd, Some(&ev_wakeup)).unwrap();
        assert_eq!(
            t.epoll_items(ep).unwrap()[0]
                .events
                .contains(Events::WAKEUP),
            kept
        );
    }
}

#[test]
fn fork_shares_descriptions_until_both_close() {
    let t = FdTable::new();
    let ep = t.epoll_create1(0).unwrap();
    let (l, f) = level();
    let fd = t.install(f, OpenFlags::empty()).unwrap();
    t.epoll_ctl(ep, ADD, fd, Some(&ev(Events::IN, 4))).unwrap();
    let child = t.fork();
    t.close(fd).unwrap();
    // The child's descriptor keeps the description, and so the item, alive.
    l.set(Events::IN, Events::IN);
    let mut buf = [EpollEvent::default(); 2];
    assert_eq!(child.epoll_wait(ep, &mut buf, 2, 0), Ok(1));
    assert_eq!(t.epoll_wait(ep, &mut buf, 2, 0), Ok(1)); // same shared instance
    child.close(fd).unwrap();
    assert_eq!(t.epoll_wait(ep, &mut buf, 2, 0), Ok(0));
    assert_eq!(t.epoll_items(ep).unwrap(), vec![]);
}

#[test]
fn descriptor_limit_is_emfile() {
    use crate::table::TableConfig;
    let t = FdTable::with_config(
        TableConfig {
            max_fds: 3,
            ..TableConfig::default()
        },
        User::new(100),
    );
    let a = t.epoll_create1(0).unwrap();
    let (b, c) = (t.epoll_create1(0).unwrap(), t.epoll_create1(0).unwrap());
    assert_eq!((a, b, c), (0, 1, 2));
    assert_eq!(t.epoll_create1(0), Err(Errno::EMFILE));
    assert_eq!(t.dup(a), Err(Errno::EMFILE));
    assert_eq!(t.pipe2(0), Err(Errno::EMFILE));
    t.close(b).unwrap();
    assert_eq!(t.dup(a), Ok(1)); // lowest free number
    assert_eq!(t.dup2(a, 3), Err(Errno::EBADF)); // beyond the limit
}

/// `take_items` hands over what a successor needs: the ready list in order first, a fired
/// one-shot item with only its flags, every item's number and data; the instance is left
/// empty, unhooked from its targets, and usable.
#[test]
fn take_items_keeps_order_and_state() {
    let ep = Epoll::new();
    let (a, fa) = level();
    let (b, fb) = level();
    let (c, fc) = level();
    ep.ctl(ADD, &fa, 3, ev(Events::IN, 1)).unwrap();
    ep.ctl(ADD, &fb, 4, ev(Events::IN | Events::ONESHOT, 2))
        .unwrap();
    ep.ctl(ADD, &fc, 5, ev(Events::IN | Events::ET, 3)).unwrap();
    b.set(Events::IN, Events::IN);
    assert_eq!(datas(&harvest(&ep, 8)), vec![2]); // the one-shot item fires
    c.set(Events::IN, Events::IN);
    a.set(Events::IN, Events::IN);
    let items = ep.take_items();
    let got: Vec<_> = items.iter().map(|i| (i.fd, i.data, i.ready)).collect();
    assert_eq!(got, vec![(5, 3, true), (3, 1, true), (4, 2, false)]);
    assert_eq!(items[2].events, Events::ONESHOT);
    assert_eq!(
        items[0].events,
        Events::IN | Events::ET | Events::ERR | Events::HUP
    );
    assert!(items[0].targets(&fc) && items[1].targets(&fa) && !items[1].targets(&fb));
    // Registration order: a (first), b, c.
    let seq = |f: &File| items.iter().find(|i| i.targets(f)).unwrap().seq;
    assert!(seq(&fa) < seq(&fb) && seq(&fb) < seq(&fc));
    assert_eq!(items[0].target_id(), fc.description_id());
    assert!(ep.is_empty() && !ep.has_ready());
    assert!(!a.queue.has_items() && !b.queue.has_items() && !c.queue.has_items());
    a.set(Events::IN, Events::IN);
    assert!(!ep.has_ready());
    ep.ctl(ADD, &fa, 3, ev(Events::IN, 9)).unwrap();
    assert_eq!(datas(&harvest(&ep, 8)), vec![9]);
}

/// An item's `mtx` half is the borrowed object (a trait-object pointer), the description's
/// key, the number and the registration number: 32 bytes, and its free-slot marker costs
/// nothing (`NonNull`'s niche).
#[cfg(target_pointer_width = "64")]
#[test]
fn watch_half_is_32_bytes() {
    assert_eq!(std::mem::size_of::<Watch>(), 32);
    assert_eq!(std::mem::size_of::<Option<Watch>>(), 32);
}

/// The last handle of a watched description is dropped while another thread harvests the
/// item (an always-ready level-triggered one, polled at every harvest): the description's
/// `Drop` removes the item while the harvest may be reading it, so an item reaches its
/// object, never the description being dropped (`Watch::object`; Miri checks the
/// references, `scripts/miri.sh`). The object is owned by the description alone, so it is
/// freed with it.
#[test]
fn dropping_a_watched_description_during_a_harvest_elsewhere() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let level = Arc::new(Level::default());
        level.set(Events::IN, Events::IN);
        let file = File::new(level);
        let ep = Arc::new(Epoll::new());
        ep.add(&file, Interest::READABLE, 7).unwrap();
        let harvester = {
            let ep = ep.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                while harvest(&ep, 4) == vec![(7, Events::IN)] {
                    seen += 1;
                }
                seen
            })
        };
        drop(file);
        harvester.join().unwrap();
        assert!(ep.is_empty(), "the item went with its description");
        assert_eq!(harvest(&ep, 4), vec![]);
    }
}
