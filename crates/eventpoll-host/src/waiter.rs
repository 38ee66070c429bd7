//! Threads blocked in a wait on a [`crate::HostEpoll`], as first-class waiters of the engine
//! instance.
//!
//! A thread that blocks in a wait sleeps *in the host* (the driver's `ppoll(2)` or, for
//! the io_uring driver's owner, `io_uring_enter(2)`), because host activity must wake it
//! to be pumped. For the engine, though, it must be a thread blocked in `epoll_wait` like
//! any other: queued at the head of the instance's queue of blocked threads, so that a
//! wakeup reaches the newest sleeper only, and an `EXCLUSIVE` item's wakeup stops at the
//! first instance with a sleeper (`ep_poll_callback` counts a wakeup as taken only when it
//! woke a waiter of the instance). So each blocked thread takes a [`ThreadWaker`] — an
//! eventfd of its own plus a flag — queues it with [`eventpoll::Epoll::queue_waiter`], and
//! sleeps on the host *and* that eventfd. Only the waker's callback means "woken": a thread
//! that the host wakes (to pump) and whose waker was not called goes back to sleep,
//! keeping its place in the queue.
//!
//! The eventfds come from a pool shared by the host's instances (one per thread asleep at
//! once, created on demand at hidden numbers, never closed but in a `fork` child, where
//! each is replaced by a fresh one under the same number, as the parent's are not ours).
//!
//! **Who watches the host** ([`Watch`]). Host activity is one stream for the whole process
//! (the io_uring driver's completion ring, the kernel driver's private epoll): whoever
//! sleeps on it is woken by every completion, whichever instance it concerns. If every
//! blocked thread slept on it, every completion would wake every blocked thread (issue 16:
//! an idle thread made ~10,000 context switches a second). So at most one thread — the
//! *leader* — watches it: a thread takes the lead when it enters a blocking wait and the
//! lead is free ([`Watch::claim`]), holds it while it pumps, harvests and sleeps on the
//! driver's descriptor (plus its own eventfd), and gives it up when the wait returns
//! ([`Watch::release`]). The pump calls the wakers the engine picks, which writes the
//! eventfds of the threads concerned. The other blocked threads — *followers* — sleep on
//! their own eventfd and their *relay*: a private kernel epoll per waker that holds the
//! driver's descriptors, switched off (no events) but while it is the one that stands in
//! for an absent leader.
//!
//! No lost wakeup: when the leader returns to its program while followers sleep, it
//! switches on the relay of the follower that went to sleep last; the relay is
//! level-triggered, so host activity pending or to come wakes that follower, which then
//! pumps — it holds the lead from then on until its own wait returns. The next thread to
//! enter a blocking wait while the lead is free takes it and switches the relay off again
//! (a wakeup it sees meanwhile is a spurious one: the follower pumps and sleeps on). A
//! follower woken for its own instance while its relay is on takes the lead likewise. So
//! whenever a follower sleeps, either a thread is inside a wait holding the lead (it pumps
//! before it sleeps and sleeps on the driver, level-triggered: it misses nothing) or one
//! follower's relay watches the driver. The price: one `epoll_ctl(2)` when the lead is
//! given up with followers asleep and one when it is taken while a relay is on — none
//! while no other thread sleeps.
//!
//! Holding the lead for the whole wait, not only for the sleep, matters with io_uring:
//! the completions of a thread's own polls are posted by its own task work at its next
//! system call, which is the pump at the start of its next wait — the relay is already off.
//! Which thread leads matters for the idle ones: a leader that keeps being woken for other
//! threads' work ([`STEAL_AFTER`] times in a row) gives way to the next thread that enters
//! a blocking wait (the old leader, still asleep on the driver, notices at its next wakeup
//! and sleeps as a follower from then on). A thread blocked on an idle instance is woken a
//! few times at most, while threads with work pass the lead between them. Zero-timeout
//! waits neither take nor give up the lead (they never sleep).
//!
//! What the relay still costs (measured 2026-12-06). While no thread is inside a wait,
//! the stand-in is woken by every completion posted, whichever instance it concerns.
//! Node's HTTP server runs its main loop in JavaScript most of the time and has a second
//! libuv loop, with an instance of its own, asleep in another thread (the platform's
//! delayed-task scheduler): that thread switched 13,600–29,900 times per 8,000 requests
//! (none natively), with the io_uring driver in either mode and with the kernel-epoll
//! driver alike; ~40% of those switches are a second sleep, on the ring's mutex in the
//! pump (the completions that woke it were posted by the `io_uring_enter` of a submission
//! still holding it). Two changes were tried and dropped: keeping the stand-in a follower
//! when woken for nothing (so that the next thread to enter a wait takes the lead without
//! stealing it) left the thread at 22,000 switches (16,600–25,600 before, two runs each)
//! and the CPU per request within the noise; spinning up to 2,000 `try_lock`s before
//! sleeping on the ring's mutex took it to 15,000–15,900 (17,000–28,000 before, three
//! runs each) but not the CPU per request (216–222 µs against 188–216 without keep-alive;
//! 53–54 against 66–72 with it, two runs: inconclusive).
//!
//! **Per-instance relays.** With the kernel-epoll driver, a thread blocked on an instance
//! whose items are host descriptors of this host (and in-process objects) is neither
//! leader nor follower: it sleeps on its eventfd and its instance's own relay, a kernel
//! epoll of the instance's host descriptors, and pumps when that reports (`relay`, which
//! also says how a report that comes before the driver's own is made safe). Other
//! instances' activity does not wake it: Node's idle threads went from 16,600–22,100
//! switches per 8,000 requests to 260–370 (native 280–370; six runs each,
//! `scripts/capi-servers.sh node`, 2026-12-06), and its CPU per request from 206–261 µs
//! to 166–214 (1.37–1.83× native to 1.13–1.44×). With the io_uring driver the same holds
//! for a thread that armed every poll of its instance (it registered the descriptors, as
//! an event loop's own thread does): a wakeup there is posted by task work of the arming
//! thread, which is then the woken thread itself, run at its next system call (`relay`,
//! "io_uring"). An instance with a poll armed by another thread is not relayed: that
//! thread may run user code for as long as it likes before the completion is posted
//! (cooperative task running), and only a thread that watches the ring sees it then. The
//! leader/follower scheme above remains for those, for the `poll(2)` driver, for
//! instances that watch a nested instance, and for a process in which only one thread has
//! entered a wait that may block (it leads, and the driver wakes it for its own activity
//! only: a relay would cost it system calls).
//!
//! Locks: [`Watch`]'s mutex is a leaf (only `epoll_ctl` on relays is called under it); it
//! is taken under the embedder's `enter` guard only, so a `fork` never finds it held, and
//! the child starts with no leader and no follower ([`Watch::after_fork_child`]; the
//! wakers' relays are replaced by fresh ones, as their eventfds are). Drivers whose
//! notification descriptors cannot be watched through an epoll (`poll(2)`'s: the
//! registered descriptors themselves, by level) are not relayed: there every blocked thread
//! watches the host, as before. A wait gives the lead up however it ends, unwinding
//! included; a thread that leaves one by `longjmp` from a signal handler keeps it (as it
//! leaves its waker queued: such a program is already outside what the library follows).

use crate::driver::Driver;
use crate::sys;
use eventpoll::{Errno, Events, WaiterHandle, WakeCallback};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A blocked thread's entry in an engine instance's queue of blocked threads: calling it
/// sets the flag and signals the eventfd the thread sleeps on. See the module
/// documentation.
#[derive(Debug)]
pub struct ThreadWaker {
    fd: i32,
    woken: AtomicBool,
    /// The relay epoll (see "Who watches the host"); `-1` if none could be made.
    relay: i32,
    /// Whether the eventfd write of the last wakeup is still to be made ([`SIGNAL_DEFERRED`])
    /// or being made ([`SIGNAL_WRITING`]); see [`deferring_signals`].
    signal: AtomicU8,
    /// [`ThreadWaker::arm`] found the write of the last wakeup under way: the count it
    /// leaves is drained before the next sleep ([`ThreadWaker::settle`]).
    owed: AtomicBool,
    /// The thread is asleep on the eventfd, or about to be (see [`ThreadWaker::asleep`]):
    /// a deferred wakeup's write is made only then.
    asleep: AtomicBool,
    /// This waker, for a wakeup that defers its eventfd write to hold on to.
    me: std::sync::Weak<ThreadWaker>,
}

/// [`ThreadWaker::signal`]: no write pending (made, cancelled, or none asked for).
const SIGNAL_IDLE: u8 = 0;
/// [`ThreadWaker::signal`]: woken inside a pump; the eventfd write waits for its end.
const SIGNAL_DEFERRED: u8 = 1;
/// [`ThreadWaker::signal`]: the pump's end is writing the eventfd now.
const SIGNAL_WRITING: u8 = 2;

/// The eventfd writes a pump running on a thread has put off (see [`deferring_signals`]).
struct Deferred {
    /// Whether a pump is running on the thread (its end flushes `woken`).
    active: bool,
    /// The wakers woken by that pump; kept with its capacity between pumps (no allocation
    /// per pump).
    woken: Vec<Arc<ThreadWaker>>,
}

thread_local! {
    static DEFERRED: std::cell::RefCell<Deferred> = const {
        std::cell::RefCell::new(Deferred { active: false, woken: Vec::new() })
    };
}

/// Run `pump` with the eventfd writes of the wakers it wakes deferred to its end.
///
/// A pump delivers wakeups while it holds the driver's mutex and, for each, the engine's
/// locks of the woken instance; a waker called there wrote its thread's eventfd at once,
/// so the woken thread ran (on the other core) into those same locks — taking its waker
/// off the instance's queue, then pumping — and slept on them again (`futex`: in memcached
/// under the preload ~0.2 waits per request on the instance's queue lock and on the ring's
/// mutex, each a voluntary switch and a wakeup more). Deferred, the woken threads are
/// signalled once the pump holds nothing. The engine's side is unchanged: the waker's flag
/// is set at the wakeup, so a thread that checks it before it sleeps does not sleep; only
/// a thread already asleep learns of it a few microseconds later. A waker re-armed before
/// the write is made (its thread woke for another reason and saw its flag) cancels the
/// write; one re-armed while the write is under way owes a drain, made before its next
/// sleep (never waiting for the writer, which may be preempted: a waiter that spun for it
/// took a third of memcached's CPU), so a stale count never keeps a sleep from sleeping.
pub(crate) fn deferring_signals<T>(pump: impl FnOnce() -> T) -> T {
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let woken = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                d.active = false;
                // Most pumps wake no thread that was asleep (see `ThreadWaker::wake`).
                (!d.woken.is_empty()).then(|| std::mem::take(&mut d.woken))
            });
            let Some(mut woken) = woken else {
                return;
            };
            for w in woken.drain(..) {
                // A thread that is awake — this pump's own, or one on its way to sleep —
                // checks the flag before it sleeps (see `ThreadWaker::asleep`).
                if w.asleep.load(Ordering::SeqCst) {
                    w.signal_now();
                }
            }
            // The emptied list goes back for the next pump, unless one ran meanwhile
            // (`signal_now` runs no pump; this keeps the capacity either way).
            DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                if d.woken.capacity() == 0 {
                    d.woken = woken;
                }
            });
        }
    }
    let outer = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        !std::mem::replace(&mut d.active, true)
    });
    if !outer {
        return pump(); // a pump inside a pump: the outer one flushes
    }
    let _flush = Flush;
    pump()
}

impl ThreadWaker {
    /// The eventfd the thread sleeps on.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Whether the engine woke the thread since it was [armed](ThreadWaker::arm).
    pub fn is_woken(&self) -> bool {
        self.woken.load(Ordering::SeqCst)
    }

    /// Ready for another sleep: not woken, eventfd drained. Called only while the waker is
    /// on no queue (its callback cannot run meanwhile).
    pub fn arm(&self) {
        if self.woken.swap(false, Ordering::SeqCst) {
            match self.signal.compare_exchange(
                SIGNAL_DEFERRED,
                SIGNAL_IDLE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                // The deferred write is cancelled: the eventfd holds nothing.
                Ok(_) => {}
                // Being written: drained before the next sleep.
                Err(SIGNAL_WRITING) => self.owed.store(true, Ordering::SeqCst),
                Err(_) => {
                    let mut b = [0u8; 8];
                    let _ = sys::read(self.fd, &mut b);
                }
            }
        }
    }

    /// Before a sleep: drain the count of a write [`ThreadWaker::arm`] found under way,
    /// once it has landed (until then the read finds nothing and the drain stays owed; the
    /// landing ends the sleep, and the next call drains it). Call it before checking
    /// [`ThreadWaker::is_woken`]: a later wakeup whose count this takes too has set the
    /// flag by then.
    pub(crate) fn settle(&self) {
        if self.owed.load(Ordering::SeqCst) {
            let mut b = [0u8; 8];
            if sys::read(self.fd, &mut b).is_ok() {
                self.owed.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Mark the thread asleep on the eventfd until the guard is dropped (right after its
    /// sleep), then check the flag: `true` means woken already — do not sleep. A pump's
    /// deferred wakeup writes the eventfd only for a thread marked asleep; one that is not
    /// sees the flag at this check (the mark and the flag are both sequentially
    /// consistent: the waking pump sets the flag, then reads the mark; the thread sets the
    /// mark, then reads the flag — one of them sees the other). The write left unmade stays
    /// pending, and [`ThreadWaker::arm`] cancels it: nothing to drain. A thread that learns
    /// of its wakeup by the flag saves the pump a write and itself a read (memcached's
    /// workers, woken by their relay while another worker's pump delivers their wakeup:
    /// 0.7 of each per request).
    pub(crate) fn asleep(&self) -> (bool, Asleep<'_>) {
        self.asleep.store(true, Ordering::SeqCst);
        (self.is_woken(), Asleep(self))
    }

    /// Make the eventfd write a wakeup deferred (unless [`ThreadWaker::arm`] cancelled it).
    fn signal_now(&self) {
        if self
            .signal
            .compare_exchange(
                SIGNAL_DEFERRED,
                SIGNAL_WRITING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        {
            let _ = sys::write(self.fd, &1u64.to_ne_bytes());
            // Unless a newer wakeup deferred its write meanwhile (it must stay pending).
            let _ = self.signal.compare_exchange(
                SIGNAL_WRITING,
                SIGNAL_IDLE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
}

/// A thread marked asleep on its waker's eventfd (see [`ThreadWaker::asleep`]).
pub(crate) struct Asleep<'a>(&'a ThreadWaker);

impl Drop for Asleep<'_> {
    fn drop(&mut self) {
        self.0.asleep.store(false, Ordering::SeqCst);
    }
}

/// A waker goes when its host's pool does (the pool keeps every waker it made until then,
/// and reuses them): its eventfd and relay go with it. Nothing refers to them any more —
/// a queued waker is held by its queue entry, a sleeping thread by its pool entry.
impl Drop for ThreadWaker {
    fn drop(&mut self) {
        let _ = sys::close(self.fd);
        if self.relay >= 0 {
            let _ = sys::close(self.relay);
        }
    }
}

impl WakeCallback for ThreadWaker {
    /// Runs under the engine's locks: one flag and one eventfd write (inside a pump, the
    /// write is deferred to the pump's end: see `deferring_signals`), nothing else.
    fn wake(&self, _key: Events) -> bool {
        if self.woken.swap(true, Ordering::SeqCst) {
            return false;
        }
        let deferred = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            if !d.active {
                return false;
            }
            // A thread not marked asleep now sees the flag before it sleeps (the flag was
            // set, then the mark read; see `ThreadWaker::asleep`): the write stays pending
            // and `arm` cancels it. Only one asleep is signalled at the pump's end — most
            // often the thread woken is the pump's own, awake.
            if self.asleep.load(Ordering::SeqCst) {
                let Some(me) = self.me.upgrade() else {
                    return false;
                };
                d.woken.push(me);
            }
            self.signal.store(SIGNAL_DEFERRED, Ordering::SeqCst);
            true
        });
        if !deferred {
            let _ = sys::write(self.fd, &1u64.to_ne_bytes());
        }
        true
    }
}

/// A waker out of the pool, with the handle that queues it ([`eventpoll::Epoll::queue_waiter`]):
/// made with it and kept with it, so that queueing a blocked thread allocates nothing.
pub(crate) struct PooledWaker {
    pub(crate) waker: Arc<ThreadWaker>,
    pub(crate) entry: Arc<WaiterHandle>,
}

impl PooledWaker {
    fn new(waker: Arc<ThreadWaker>) -> PooledWaker {
        let entry = WaiterHandle::new(waker.clone());
        PooledWaker { waker, entry }
    }
}

impl std::ops::Deref for PooledWaker {
    type Target = ThreadWaker;
    fn deref(&self) -> &ThreadWaker {
        &self.waker
    }
}

/// The host's pool of [`ThreadWaker`]s.
pub(crate) struct WakerPool {
    free: Mutex<Vec<PooledWaker>>,
    all: Mutex<Vec<Arc<ThreadWaker>>>,
    hidden_base: i32,
    on_new: OnceLock<fn(i32)>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_eventfd(hidden_base: i32) -> Result<i32, Errno> {
    let fd = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
    Ok(if hidden_base > 0 {
        sys::move_high(fd, hidden_base)
    } else {
        fd
    })
}

impl WakerPool {
    pub(crate) fn new(hidden_base: i32) -> WakerPool {
        WakerPool {
            free: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            hidden_base,
            on_new: OnceLock::new(),
        }
    }

    /// See [`crate::Host::on_own_fd`].
    pub(crate) fn on_new(&self, hook: fn(i32)) {
        let _ = self.on_new.set(hook);
    }

    /// Call the embedder's hook (see [`crate::Host::on_own_fd`]) for another descriptor
    /// the host made for itself.
    pub(crate) fn announce(&self, fd: i32) {
        if let Some(hook) = self.on_new.get() {
            hook(fd);
        }
    }

    /// A waker for a thread about to block (armed); `Err` when no eventfd can be made.
    /// `made` is called with the eventfd of a waker made for this call (not of one taken
    /// from the pool).
    pub(crate) fn take(&self, made: impl FnOnce(i32)) -> Result<PooledWaker, Errno> {
        if let Some(w) = locked(&self.free).pop() {
            w.arm();
            return Ok(w);
        }
        let fd = new_eventfd(self.hidden_base)?;
        let relay = match sys::epoll_create1(libc::EPOLL_CLOEXEC) {
            Ok(r) if self.hidden_base > 0 => sys::move_high(r, self.hidden_base),
            Ok(r) => r,
            Err(_) => -1,
        };
        let w = Arc::new_cyclic(|me| ThreadWaker {
            fd,
            woken: AtomicBool::new(false),
            relay,
            signal: AtomicU8::new(SIGNAL_IDLE),
            owed: AtomicBool::new(false),
            asleep: AtomicBool::new(false),
            me: me.clone(),
        });
        locked(&self.all).push(w.clone());
        made(fd);
        if let Some(hook) = self.on_new.get() {
            hook(fd);
            if relay >= 0 {
                hook(relay);
            }
        }
        Ok(PooledWaker::new(w))
    }

    /// Give a waker back (it is on no queue).
    pub(crate) fn give_back(&self, w: PooledWaker) {
        locked(&self.free).push(w);
    }

    /// Every waker's eventfd.
    pub(crate) fn fds(&self, out: &mut Vec<i32>) {
        for w in locked(&self.all).iter() {
            out.push(w.fd);
            if w.relay >= 0 {
                out.push(w.relay);
            }
        }
    }

    /// In a `fork` child: the eventfds are shared with the parent, whose callbacks write
    /// them. Each gets a fresh eventfd under the same number, and every waker is free (the
    /// threads that held some do not exist here).
    pub(crate) fn after_fork_child(&self) {
        let all = locked(&self.all).clone();
        for w in &all {
            if let Ok(nd) = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
                let _ = sys::dup3(nd, w.fd, libc::O_CLOEXEC);
                let _ = sys::close(nd);
            }
            // The relay too (the parent's may be switched on and off by its threads).
            if w.relay >= 0 {
                if let Ok(nd) = sys::epoll_create1(libc::EPOLL_CLOEXEC) {
                    let _ = sys::dup3(nd, w.relay, libc::O_CLOEXEC);
                    let _ = sys::close(nd);
                }
            }
            w.woken.store(false, Ordering::SeqCst);
            w.signal.store(SIGNAL_IDLE, Ordering::SeqCst);
            w.owed.store(false, Ordering::SeqCst);
        }
        *locked(&self.free) = all.into_iter().map(PooledWaker::new).collect();
    }
}

/// Consecutive wakeups for other threads' work after which a leader gives way to the next
/// thread that enters a blocking wait (see the module documentation).
pub(crate) const STEAL_AFTER: u32 = 2;

/// How a blocked thread sleeps: on the driver (the leader) or on its eventfd and its relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sleeps on the driver's descriptors and its own eventfd, and pumps when woken.
    Leader,
    /// Sleeps on its own eventfd and its relay (this descriptor).
    Follower(i32),
}

/// Leader/follower state of a host's blocked threads (see the module documentation).
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    /// The leader's thread id (0: none), written under the mutex, read without it by
    /// [`Watch::release`]: only a thread itself makes itself leader, so one that reads
    /// another id is not the leader and need not lock.
    leader_id: AtomicUsize,
    /// The leader's wakeups in a row that were not for itself: written under the mutex,
    /// read under it and, without it, by
    /// [`Watch::claim`] (with `leader_id`: whether the lead could be taken at all).
    idle_streak: AtomicU32,
    /// The first thread that entered a wait that may block (0: none yet), and whether
    /// another one has since (see [`Watch::note_waiter`]).
    first_sleeper: AtomicUsize,
    several: AtomicBool,
}

#[derive(Default)]
struct WatchState {
    /// The leading thread (see [`thread_id`]).
    leader: Option<usize>,
    /// Followers asleep (thread, relay), in the order they went to sleep.
    followers: Vec<(usize, i32)>,
    /// The follower whose relay watches the driver while the lead is free.
    relay_on: Option<(usize, i32)>,
}

thread_local! {
    static THREAD_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A number of the calling thread that no other thread of the process ever has (from a
/// counter: the address of a read-only thread-local is not one, an optimiser may fold it
/// into one constant — the release build did, and every thread took itself for the leader).
fn thread_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    THREAD_ID.with(|c| match c.get() {
        0 => {
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            c.set(id);
            id
        }
        id => id,
    })
}

fn relay_off(relay: i32, driver: &dyn Driver) {
    let mut fds = Vec::with_capacity(1);
    driver.notify_fds(&mut fds);
    for p in &fds {
        let _ = sys::epoll_ctl(relay, libc::EPOLL_CTL_MOD, p.fd, Some((0, 0)));
    }
}

fn relay_on(relay: i32, driver: &dyn Driver) {
    let mut fds = Vec::with_capacity(1);
    driver.notify_fds(&mut fds);
    for p in &fds {
        let ev = Some((libc::EPOLLIN as u32, p.fd as u64));
        // Not there yet, or the descriptor was replaced (the io_uring driver's switch to
        // shared mode puts a new ring under the same number; the old one left the relay).
        if sys::epoll_ctl(relay, libc::EPOLL_CTL_MOD, p.fd, ev).is_err() {
            let _ = sys::epoll_ctl(relay, libc::EPOLL_CTL_ADD, p.fd, ev);
        }
    }
}

impl Watch {
    pub(crate) fn new() -> Watch {
        Watch {
            state: Mutex::new(WatchState::default()),
            leader_id: AtomicUsize::new(0),
            idle_streak: AtomicU32::new(0),
            first_sleeper: AtomicUsize::new(0),
            several: AtomicBool::new(false),
        }
    }

    /// This thread leads from now on (the lead was free, or its leader idle too long).
    fn lead(&self, s: &mut WatchState, driver: &dyn Driver) {
        s.leader = Some(thread_id());
        self.leader_id.store(thread_id(), Ordering::SeqCst);
        self.idle_streak.store(0, Ordering::Relaxed);
        if let Some((_, relay)) = s.relay_on.take() {
            relay_off(relay, driver);
        }
    }

    /// The calling thread enters a wait that may block: it takes the lead if it is free
    /// (or its leader idle too long), before it pumps.
    pub(crate) fn claim(&self, driver: &dyn Driver) {
        if !driver.relayable() {
            return;
        }
        let me = thread_id();
        // Most waits find another thread leading, and leading well (or themselves): no
        // lock, which every thread's every wait would take. A stale look only skips a
        // claim: a thread's sleep settles its role under the lock (`Watch::settle`).
        let leader = self.leader_id.load(Ordering::SeqCst);
        if leader == me || (leader != 0 && self.idle_streak.load(Ordering::Relaxed) < STEAL_AFTER) {
            return;
        }
        let mut s = locked(&self.state);
        if s.leader.is_none()
            || (s.leader != Some(me) && self.idle_streak.load(Ordering::Relaxed) >= STEAL_AFTER)
        {
            self.lead(&mut s, driver);
        }
    }

    /// How `waker`'s thread sleeps next (before each sleep).
    pub(crate) fn settle(&self, waker: &ThreadWaker, driver: &dyn Driver) -> Role {
        if waker.relay < 0 || !driver.relayable() {
            return Role::Leader;
        }
        let mut s = locked(&self.state);
        let me = thread_id();
        match s.leader {
            Some(l) if l == me => Role::Leader,
            Some(_) if self.idle_streak.load(Ordering::Relaxed) < STEAL_AFTER => {
                s.followers.push((me, waker.relay));
                Role::Follower(waker.relay)
            }
            _ => {
                self.lead(&mut s, driver);
                Role::Leader
            }
        }
    }

    /// `waker`'s thread woke from a sleep as `role`; `own`: its waker was called.
    pub(crate) fn woke(&self, role: Role, own: bool, driver: &dyn Driver) {
        if !driver.relayable() {
            return;
        }
        let mut s = locked(&self.state);
        let me = thread_id();
        match role {
            Role::Follower(_) => {
                s.followers.retain(|&(t, _)| t != me);
                if s.relay_on.is_some_and(|(t, _)| t == me) {
                    // It stood in for the absent leader and is awake in its wait now: it
                    // leads until that wait returns.
                    self.lead(&mut s, driver);
                }
            }
            Role::Leader if s.leader == Some(me) => {
                let streak = self.idle_streak.load(Ordering::Relaxed);
                self.idle_streak
                    .store(if own { 0 } else { streak + 1 }, Ordering::Relaxed);
            }
            Role::Leader => {}
        }
    }

    /// The calling thread's wait returns to its program: if it leads, the lead is free,
    /// and the follower that went to sleep last watches the host through its relay.
    pub(crate) fn release(&self, driver: &dyn Driver) {
        if !driver.relayable() {
            return;
        }
        if self.leader_id.load(Ordering::SeqCst) != thread_id() {
            return;
        }
        let mut s = locked(&self.state);
        if s.leader != Some(thread_id()) {
            return;
        }
        s.leader = None;
        self.leader_id.store(0, Ordering::SeqCst);
        if s.relay_on.is_none() {
            if let Some(&(t, relay)) = s.followers.last() {
                relay_on(relay, driver);
                s.relay_on = Some((t, relay));
            }
        }
    }

    /// The calling thread enters a wait that may block: returns whether more than one
    /// thread has (since the process began, or since `fork` in a child). With one thread
    /// alone, per-instance relays (see `relay`) would only cost: it leads and sleeps on the
    /// driver, woken by nothing but its own activity.
    pub(crate) fn note_waiter(&self) -> bool {
        if self.several.load(Ordering::Relaxed) {
            return true;
        }
        let me = thread_id();
        match self
            .first_sleeper
            .compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => false,
            Err(first) if first == me => false,
            Err(_) => {
                self.several.store(true, Ordering::SeqCst);
                true
            }
        }
    }

    /// Whether more than one thread has entered a wait that may block (see
    /// [`Watch::note_waiter`]).
    pub(crate) fn several_waiters(&self) -> bool {
        self.several.load(Ordering::Relaxed)
    }

    /// In a `fork` child: the parent's other threads are not here.
    pub(crate) fn after_fork_child(&self) {
        *locked(&self.state) = WatchState::default();
        self.leader_id.store(0, Ordering::SeqCst);
        self.idle_streak.store(0, Ordering::Relaxed);
        self.first_sleeper.store(0, Ordering::SeqCst);
        self.several.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the waker's eventfd holds a count (drained if so).
    fn signalled(w: &ThreadWaker) -> bool {
        let mut b = [0u8; 8];
        sys::read(w.fd(), &mut b).is_ok()
    }

    #[test]
    fn a_pump_that_wakes_a_sleeping_thread_writes_its_eventfd() {
        let pool = WakerPool::new(0);
        let other = pool.take(|_| {}).expect("an eventfd");
        // The other thread is asleep on its eventfd.
        let (woken, asleep) = other.asleep();
        assert!(!woken);
        deferring_signals(|| assert!(other.wake(Events::IN)));
        assert!(other.is_woken());
        assert!(signalled(&other), "a sleeping thread's waker is signalled");
        // Again, for the next wakeup of the same sleep.
        other.arm();
        deferring_signals(|| assert!(other.wake(Events::IN)));
        assert!(signalled(&other));
        drop(asleep);
        pool.give_back(other);
    }

    #[test]
    fn a_pump_that_wakes_a_thread_not_yet_asleep_leaves_it_the_flag() {
        let pool = WakerPool::new(0);
        let w = pool.take(|_| {}).expect("an eventfd");
        // Queued, still awake: the pump is its own, or it is on its way to sleep.
        deferring_signals(|| assert!(w.wake(Events::IN)));
        assert!(!signalled(&w), "no write for a thread that is awake");
        // On its way to sleep it sees the flag, and does not sleep.
        let (woken, asleep) = w.asleep();
        assert!(woken);
        drop(asleep);
        // Re-armed: the write left unmade is cancelled, nothing to drain or owe.
        w.arm();
        assert!(!w.owed.load(Ordering::SeqCst));
        assert!(!signalled(&w));
        // A direct wakeup (outside a pump) still writes at once.
        assert!(w.wake(Events::IN));
        assert!(signalled(&w));
        pool.give_back(w);
    }
}
