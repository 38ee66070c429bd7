//! Per-instance relays (kernel-epoll driver; io_uring driver for a thread that armed its
//! instance's polls): a thread blocked on an instance is woken by host activity of that
//! instance's own host descriptors, not by every instance's.
//!
//! **Why.** The driver's private epoll `P` takes every host wakeup of the process. A thread
//! blocked in a wait that sleeps on `P` (the leader, or the follower whose relay stands in
//! for an absent leader: `waiter`, "Who watches the host") is woken by all of them: Node's
//! idle second event loop switched 13,600–29,900 times per 8,000 requests (none natively).
//!
//! **What.** An [`InstanceRelay`] `R` is a kernel epoll of its instance's host descriptors
//! (edge-triggered, every direction: a spurious report costs a pump, a missing one a lost
//! wakeup) and of a *poke* eventfd. A thread blocked on the instance sleeps on its own
//! eventfd and `R`; when `R` reports, it takes the reports and pumps `P` itself. `R`
//! mirrors the engine's item set: it is brought up to date before each sleep when the
//! instance's [`eventpoll::Epoll::items_seq`] moved, and an item added while threads sleep
//! on `R` pokes them (the engine's [`eventpoll::Epoll::on_insert`] hook writes the poke
//! eventfd; announcing a sleeper before reading the sequence number, and bumping it before
//! reading the sleepers, makes one of the two see the other). Nobody then needs to watch
//! `P` for this instance; a thread of it takes no lead (and gives up one it holds) and is no
//! follower.
//!
//! **The race, and the answer.** A wakeup of a file walks the file's wait queue under its
//! lock (`__wake_up_common_lock`; since Linux 6.7 without the "bookmark" breaks that let
//! it go every 64 entries: relays are used only from 6.7 on), calling each entry's
//! callback: `R`'s item and `P`'s item are both there, non-exclusive, and `add_wait_queue`
//! puts a new entry at the head, so `R`'s (added later) usually runs *first*. A thread
//! woken by `R` may pump `P` before `P`'s callback has run, find nothing, and sleep on `R`
//! again: that wakeup would be lost. So when the pump did not wake the thread, it
//! *synchronises* with every file `R` reported: an `EPOLL_CTL_ADD` (or `DEL`) of the file
//! in a scratch epoll takes the file's wait-queue lock (`add_wait_queue` /
//! `remove_wait_queue`), which waits out the walk in progress — `P`'s callback has run by
//! then — and it pumps again. Where that cannot be done (the file's number is gone), the
//! thread sleeps one round on `P` too: `P` is readable while it holds a report, so a report
//! still to come there wakes it. (The window is the few instructions between two callbacks
//! of one walk, with interrupts off: 47,000 rounds of `tests/host.rs`'s relay test without
//! the synchronisation lost nothing. It is closed for a preempted virtual CPU.)
//!
//! **io_uring.** There `P` is the completion ring, and a file wakeup becomes a completion
//! only in *task work* of the thread that armed the poll (`io_poll_wake` queues it with
//! `io_req_task_work_add`; shared mode: on that thread, flagged with `TWA_SIGNAL_NO_IPI`
//! by the ring's `COOP_TASKRUN`, run when the thread next returns to user space — at once
//! if it sleeps interruptibly, at its next system call if it runs user code). A wakeup
//! that `R` reports is then deliverable by a pump only once that thread has made a system
//! call since: if it is another thread, running user code, a relay would lose the wakeup.
//! So a thread sleeps on `R` only when, at that sleep, *it* armed every poll of every
//! member ([`crate::Driver::relay_delivers`]: the driver records the armer per direction,
//! before the submission). The task work is then its own: `R`'s report wakes it, and the
//! drain's `epoll_wait` runs the work as it returns, so the pump finds the completion. If
//! `R`'s callback ran before `io_poll_wake` (the race above), the work is queued by the
//! end of the walk, which the sync's `epoll_ctl` waits out: it runs as that call returns,
//! and the second pump finds it (the window is as narrow as above: without the sync,
//! 150,000 rounds of `tests/host.rs`'s relay test with io_uring lost nothing). Owned mode (`DEFER_TASKRUN`: the owner's queued work runs
//! only in its `io_uring_enter(GETEVENTS)`) is allowed for the owner only (every poll is
//! its own there): the work raises `IORING_SQ_TASKRUN`, and the pump, seeing it, enters
//! the ring and runs the work — after the sync, too. Every other case sleeps as before
//! (leader or follower); which thread arms a poll changes without the items changing (a
//! switch to shared mode arms everything from the switching thread; a pump re-arms an
//! ended poll from its own), so it is asked at every sleep: a change after the question,
//! with a wakeup the relay reported, costs one fruitless wakeup — the next sleep asks
//! again, finds another armer, and watches the ring (which the completion makes readable
//! when that armer runs its work). Node's idle threads (`DRIVERS=uring
//! scripts/capi-servers.sh node`, 2026-12-06, six runs a side) went from 14,900–21,500
//! switches per 8,000 requests to 255–325 (native 255–360; with keep-alive 4,700–5,300 to
//! 160–220), its CPU per request from 195–205 µs to 154–163 (1.67–1.71x native to
//! 1.20–1.30x, medians of three interleaved passes).
//!
//! **Taking polls over** (io_uring). A thread that alone sleeps on an instance, a few
//! sleeps in a row ([`ADOPT_STREAK`]), and finds members whose polls another thread armed
//! asks the driver to arm them again from itself ([`crate::Driver::adopt`]; the driver says
//! why nothing is lost or repeated): memcached's main thread registers each worker's
//! notification pipe on the worker's instance, which kept every worker off its relay, so
//! that each request's wakeup reached a worker through the leader (two wakeups, not one).
//! Measured (memcached `-t 4`, `scripts/capi-ab-memcached.sh NEW OLD`: native and the
//! library before and after, 8 interleaved rounds; two runs): voluntary switches per
//! request 1.19 → 0.95 and 1.15 → 0.96 (native 1.00, 0.99); system calls per request 6.74
//! to 6.19; CPU per request after ÷ before 0.96 (0.75–1.16) and 0.98 (0.87–1.16), within
//! this machine's noise. A file ready for what
//! its polls watch is not taken over then (tried again when the items change, or
//! [`ADOPT_RETRY`] sleeps later), nor one taken over [`crate::Driver::adopt`]'s cap of
//! times already (two threads that each wait on an instance of it).
//!
//! **Probed members.** A relayed sleep may also poll some of the instance's descriptors
//! itself: the level-triggered items left on the ready list by the last harvest, which the
//! sleep watches for every input bit instead of harvesting first (`reactor`'s `fold`: a
//! description is probed only while none of its items watches output). The probe's own
//! wait-queue entry wakes the sleep for any wakeup that matters to those items, and its
//! `revents` are the items' masks for the harvest that follows, whatever the driver has
//! posted by then — so the relay's item for such a member only doubled the wakeup (a
//! second callback under the file's lock, a report to drain: memcached's workers drained
//! one per request). While the thread is the relay's only sleeper, the members it probes
//! are made *quiet* for its sleep: their relay items are modified to watch nothing
//! (`ERR` and `HUP` stay, as `epoll_ctl` adds them: spurious reports at most). A second
//! sleeper's prepare (which finds the count of sleepers above one, under the state lock,
//! after the first's) makes every member loud again before it sleeps, and so does a sleep
//! that no longer probes them: the modification re-polls the file, so a descriptor ready
//! meanwhile is reported then. A thread that keeps probing the same descriptors pays
//! nothing after the first sleep; the relay's drain is skipped when the sleep found the
//! relay not readable (a later report keeps it readable for the next sleep). memcached
//! (`-t 4`, `scripts/syscalls-per-request.sh memcached`): 7.28 to 5.86 system calls per
//! request with the io_uring driver (the drain's `epoll_pwait`, 0.90, gone), 10.06 to 8.42
//! with the kernel-epoll driver (native 3.08); its CPU per request did not move beyond this
//! machine's noise (after ÷ before 0.97×, 0.79–1.09×, and 1.04×, 0.78–1.31×, round by round
//! in two runs of `scripts/capi-ab-memcached.sh`, 8 and 16 rounds).
//!
//! **Where it is not used** (the thread then sleeps as before, leader or follower): while
//! only one thread of the process has entered a wait that may block (it leads, and the
//! driver wakes it
//! for nothing but its own activity; a relay would cost system calls and wakeups for
//! nothing: nginx's single-threaded workers made 0.83 switches per request on relays, 0.57
//! as leaders); kernels before 6.7; an instance of more than [`MAX_ITEMS`] items (syncing
//! walks the items); the `poll(2)` driver; with io_uring, an instance with a poll armed by
//! another thread (above) that could not be taken over (below); instances that watch a nested instance (its host
//! activity must wake them) or a host object of another driver; an instance whose relay
//! could not be made or take a descriptor (`ELOOP`, `ENOMEM`...). In-process objects need
//! no relay: whoever changes one wakes the instance's waiters directly.
//!
//! **Costs.** Reports of activity the thread consumed while it ran (the relay is
//! edge-triggered and nobody drains it meanwhile) wake its next sleep once: it drains,
//! pumps, synchronises (one `epoll_ctl` per file reported) and sleeps again.
//!
//! Locks: the relay's mutex is taken under the embedder's guard only (a `fork` never finds
//! it held) and before the instance's interest-list lock (the sync reads the items); only
//! system calls on the relay's own descriptors and the embedder's own-descriptor hook run
//! under it. The insert hook runs under the interest-list lock and only writes an eventfd.
//! In a `fork` child the relay's descriptors, shared with the parent, are replaced by fresh
//! ones under the same numbers and the relay starts empty (or, if that fails, is never
//! used again).

use crate::host_fd::HostFd;
use crate::sys;
use eventpoll::{Epoll, Events, WakeCallback};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// A relay's descriptors.
#[derive(Clone, Copy, Debug)]
struct Fds {
    epfd: i32,
    poke: i32,
    scratch: i32,
}

/// The token of the poke eventfd in a relay.
const POKE: u64 = u64::MAX;

/// Instances with more items than this are not relayed: bringing a relay up to date walks
/// the instance's items (after any change of them, before a sleep), and a large instance
/// is a busy one, which the leader/follower scheme serves as well.
pub(crate) const MAX_ITEMS: usize = 256;

/// Reports taken from a relay per `epoll_wait`.
const BATCH: usize = 64;

/// Every direction, edge-triggered (`ERR` and `HUP` are implied).
const RELAY_BITS: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDHUP
    | libc::EPOLLRDNORM
    | libc::EPOLLRDBAND
    | libc::EPOLLWRNORM
    | libc::EPOLLWRBAND
    | libc::EPOLLMSG
    | libc::EPOLLET) as u32;

/// A relay's host descriptor: the object, and the number its relay item is keyed by.
struct Member {
    host: Weak<HostFd>,
    /// The number the relay item was added under.
    fd: i32,
    token: u64,
}

#[derive(Default)]
struct RelayState {
    /// The instance's `items_seq` the members mirror (`None`: not yet, or start again).
    synced: Option<usize>,
    /// Whether the members are every host descriptor the instance watches.
    usable: bool,
    /// By object address.
    members: HashMap<usize, Member>,
    /// Token to object address.
    by_token: HashMap<u64, usize>,
    next_token: u64,
    /// The (object address, number) pairs present in the scratch epoll.
    scratch_in: HashMap<usize, i32>,
    /// The members whose relay items watch nothing (but `ERR`/`HUP`), by object address:
    /// the one sleeper's own `ppoll` probes their descriptors (see "Probed members" in the
    /// module documentation). At most `fold::MAX` of the reactor's.
    quiet: Vec<usize>,
    /// The thread of the last sleep prepared ([`thread_mark`]), and how many sleeps in a
    /// row it prepared: a thread that alone sleeps on the instance, [`ADOPT_STREAK`] times
    /// in a row, takes over the members' polls another thread armed (the io_uring driver:
    /// memcached's main thread registers each worker's notification pipe on the worker's
    /// instance, which kept the workers off their relays).
    last_sleeper: usize,
    streak: u32,
    /// The instance's `items_seq` at the last takeover tried that left members another
    /// thread's (a file ready, or taken over too often), and the sleeps since: tried again
    /// when the items change, or after [`ADOPT_RETRY`] sleeps (each try costs a pump and a
    /// `ppoll` per member left).
    adopt_seq: Option<usize>,
    adopt_skips: u32,
}

/// Sleeps between two takeovers tried for the same items (see `RelayState::adopt_seq`).
const ADOPT_RETRY: u32 = 64;

/// Sleeps in a row by one thread, alone on the instance, before it takes over the
/// members' polls (see `RelayState::streak`).
const ADOPT_STREAK: u32 = 3;

/// The calling thread, as an address unique among live threads (no system call).
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|m| m as *const u8 as usize)
}

/// One instance's relay. See the module documentation.
pub(crate) struct InstanceRelay {
    /// (relay epoll, poke eventfd, scratch epoll), made before the first sleep
    /// ([`InstanceRelay::ensure_fds`]): an instance nobody blocks on costs no descriptor.
    fds: OnceLock<Fds>,
    /// Threads between [`InstanceRelay::prepare`] and [`InstanceRelay::after_sleep`].
    sleepers: AtomicUsize,
    /// The last sync found the relay usable (a wait skips taking the lead then).
    usable: AtomicBool,
    /// Never used again (a `fork` child could not replace the descriptors it shares with
    /// the parent).
    disabled: AtomicBool,
    /// Sleeps on the relay begun (for tests and reports).
    sleeps: AtomicU64,
    /// Sleeps that had members' polls taken over (for tests and reports).
    adoptions: AtomicU64,
    /// Sleeps with members made quiet (for tests and reports; see "Probed members").
    quiet_sleeps: AtomicU64,
    /// Ask the driver about every member before each sleep (the io_uring driver: see
    /// "io_uring" in the module documentation).
    per_sleep_check: bool,
    state: Mutex<RelayState>,
    driver: Arc<dyn crate::Driver>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for InstanceRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceRelay")
            .field("fds", &self.fds.get())
            .finish()
    }
}

/// Whether the kernel walks a wait queue under its lock from start to end (Linux 6.7 and
/// later): before, a walk let the lock go after every 64 entries ("bookmarks"), so taking
/// the lock did not prove that `P`'s callback had run (see the module documentation).
fn whole_walks() -> bool {
    static WHOLE: OnceLock<bool> = OnceLock::new();
    *WHOLE.get_or_init(|| sys::kernel_version().is_some_and(|v| v >= (6, 7)))
}

/// A relay's three descriptors: (relay epoll with the poke in it, poke eventfd, scratch).
fn new_fds(hidden_base: i32) -> Result<Fds, sys::Errno> {
    let hide = |fd: i32| {
        if hidden_base > 0 {
            sys::move_high(fd, hidden_base)
        } else {
            fd
        }
    };
    let ep = hide(sys::epoll_create1(libc::EPOLL_CLOEXEC)?);
    let poke = match sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
        Ok(p) => hide(p),
        Err(e) => {
            let _ = sys::close(ep);
            return Err(e);
        }
    };
    let scratch = match sys::epoll_create1(libc::EPOLL_CLOEXEC) {
        Ok(s) => hide(s),
        Err(e) => {
            let _ = sys::close(ep);
            let _ = sys::close(poke);
            return Err(e);
        }
    };
    let ev = Some(((libc::EPOLLIN | libc::EPOLLET) as u32, POKE));
    if let Err(e) = sys::epoll_ctl(ep, libc::EPOLL_CTL_ADD, poke, ev) {
        for fd in [ep, poke, scratch] {
            let _ = sys::close(fd);
        }
        return Err(e);
    }
    Ok(Fds {
        epfd: ep,
        poke,
        scratch,
    })
}

impl InstanceRelay {
    /// A relay for `epoll` (hooked on its inserts), or `None` when the driver is neither
    /// the kernel-epoll one nor the io_uring one.
    pub(crate) fn new(epoll: &Epoll, host: &crate::Host) -> Option<Arc<InstanceRelay>> {
        let kind = host.kind();
        if !matches!(
            kind,
            crate::DriverKind::KernelEpoll | crate::DriverKind::IoUring
        ) || !whole_walks()
        {
            return None;
        }
        let relay = Arc::new(InstanceRelay {
            fds: OnceLock::new(),
            sleepers: AtomicUsize::new(0),
            adoptions: AtomicU64::new(0),
            quiet_sleeps: AtomicU64::new(0),
            usable: AtomicBool::new(true),
            disabled: AtomicBool::new(false),
            sleeps: AtomicU64::new(0),
            per_sleep_check: kind == crate::DriverKind::IoUring,
            state: Mutex::new(RelayState::default()),
            driver: host.driver().clone(),
        });
        epoll.on_insert(relay.clone());
        Some(relay)
    }

    /// The relay's descriptors (the host's own), if made.
    pub(crate) fn fds(&self, out: &mut Vec<i32>) {
        if let Some(f) = self.fds.get() {
            out.extend([f.epfd, f.poke, f.scratch]);
        }
    }

    /// Make the descriptors if they are not made yet (before a first sleep, under the
    /// embedder's guard like every use of the relay's lock); `false` if they cannot be.
    pub(crate) fn ensure_fds(self: &Arc<Self>, host: &crate::Host) -> bool {
        if self.fds.get().is_some() {
            return true;
        }
        let _s = locked(&self.state);
        if self.fds.get().is_some() {
            return true;
        }
        let Ok(f) = new_fds(host.hidden_base()) else {
            return false;
        };
        let _ = self.fds.set(f);
        for fd in [f.epfd, f.poke, f.scratch] {
            host.announce_own_fd(fd);
        }
        // Listed for `fork` and the host's own descriptors.
        host.note_relay(self);
        true
    }

    /// Whether the last sync found the relay usable.
    pub(crate) fn likely_usable(&self) -> bool {
        self.usable.load(Ordering::SeqCst)
    }

    /// Whether a thread about to wait on `epoll` should take the lead of the host's
    /// blocked threads: only when the relay is known unusable for the current items.
    pub(crate) fn wants_lead(&self, epoll: &Epoll) -> bool {
        if self.disabled.load(Ordering::SeqCst) {
            return true;
        }
        if self.usable.load(Ordering::SeqCst) {
            return false;
        }
        locked(&self.state).synced == Some(epoll.items_seq())
    }

    /// Sleeps on the relay begun so far.
    pub(crate) fn sleeps(&self) -> u64 {
        self.sleeps.load(Ordering::Relaxed)
    }

    /// Before a sleep: count the caller as a sleeper, bring the relay up to date with
    /// `epoll`'s items, and give the descriptor to sleep on — or `None` (not counted) when
    /// the instance cannot be relayed now. Every `Some` is followed by
    /// [`InstanceRelay::after_sleep`]. `probed` are the host descriptors (by object
    /// address) the sleep itself polls for every bit their items watch: while the caller
    /// is the relay's only sleeper, their relay items are made quiet (see "Probed members"
    /// in the module documentation).
    pub(crate) fn prepare(&self, epoll: &Epoll, probed: &[usize]) -> Option<i32> {
        if self.disabled.load(Ordering::SeqCst) {
            return None;
        }
        let fds = *self.fds.get()?;
        // Announced before the sequence number is read (see the module documentation).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut s = locked(&self.state);
        // An item removed while the members are synced can make an `EPOLL_CTL_ADD` fail
        // (its number closed): the next round then finds it gone.
        for _ in 0..3 {
            let seq = epoll.items_seq();
            if s.synced == Some(seq) {
                break;
            }
            if epoll.len() > MAX_ITEMS {
                // Members left as they are: their reports are spurious wakeups at most.
                s.usable = false;
                s.synced = Some(seq);
                break;
            }
            self.sync_members(&mut s, epoll, fds);
            // Items added meanwhile poke the relay (this thread is a sleeper already); the
            // next prepare syncs again.
            s.synced = Some(seq);
        }
        // The io_uring driver: every member's polls armed by this thread, now (the armer
        // changes without the items changing) — or taken over by it, when it alone has
        // slept on the instance of late (see `RelayState::streak`).
        let me = thread_mark();
        let streak = if s.last_sleeper == me {
            s.streak.saturating_add(1)
        } else {
            1
        };
        (s.last_sleeper, s.streak) = (me, streak);
        let mut usable = s.usable && (!self.per_sleep_check || self.members_deliver(&s));
        let seq = s.synced;
        let retry = s.adopt_seq != seq || s.adopt_skips >= ADOPT_RETRY;
        if !retry {
            s.adopt_skips = s.adopt_skips.saturating_add(1);
        }
        if s.usable
            && !usable
            && retry
            && streak >= ADOPT_STREAK
            && self.sleepers.load(Ordering::SeqCst) == 1
        {
            let others: Vec<Arc<HostFd>> = s
                .members
                .values()
                .filter_map(|m| m.host.upgrade())
                .filter(|h| !self.driver.relay_delivers(h))
                .collect();
            // Not under the relay's lock: the driver takes its ring's mutex.
            drop(s);
            if self.driver.adopt(&others) > 0 {
                self.adoptions.fetch_add(1, Ordering::Relaxed);
            }
            s = locked(&self.state);
            usable = s.usable && s.synced == Some(epoll.items_seq()) && self.members_deliver(&s);
            if !usable {
                (s.adopt_seq, s.adopt_skips) = (seq, 0);
            }
        }
        if usable {
            // Read under the lock after the count was raised: a second sleeper's prepare
            // comes after this one's (or finds the count at two here) and makes every
            // member loud again before it sleeps.
            let alone = self.sleepers.load(Ordering::SeqCst) == 1;
            if !Self::quiet_probed(&mut s, fds, if alone { probed } else { &[] }) {
                // A member could not be made loud again: its reports would be missed.
                s.synced = None;
                usable = false;
            } else if !s.quiet.is_empty() {
                self.quiet_sleeps.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(s);
        self.usable.store(usable, Ordering::SeqCst);
        if usable {
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            Some(fds.epfd)
        } else {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            None
        }
    }

    /// Make the members in `probed` quiet and every other member loud (under the state
    /// lock); `false` if a member could not be made loud again. Costs an `epoll_ctl(2)` per
    /// member that changes: none while a thread keeps probing the same descriptors.
    fn quiet_probed(s: &mut RelayState, f: Fds, probed: &[usize]) -> bool {
        if s.quiet.is_empty() && probed.is_empty() {
            return true;
        }
        let mut loud = true;
        let mut i = 0;
        while i < s.quiet.len() {
            let k = s.quiet[i];
            if probed.contains(&k) {
                i += 1;
                continue;
            }
            let Some(m) = s.members.get(&k) else {
                s.quiet.swap_remove(i);
                continue;
            };
            // Re-armed, the item is polled: a descriptor ready now is reported.
            let ev = Some((RELAY_BITS, m.token));
            if sys::epoll_ctl(f.epfd, libc::EPOLL_CTL_MOD, m.fd, ev).is_ok() {
                s.quiet.swap_remove(i);
            } else {
                // Still quiet: tried again at the next prepare.
                loud = false;
                i += 1;
            }
        }
        for k in probed {
            if s.quiet.contains(k) {
                continue;
            }
            let Some(m) = s.members.get(k) else {
                continue; // not a member (another driver's, or not synced yet)
            };
            // Only `ERR` and `HUP` are left (`epoll_ctl` adds them): key-less wakeups and
            // errors still report, as spurious wakeups at most.
            let ev = Some((libc::EPOLLET as u32, m.token));
            if sys::epoll_ctl(f.epfd, libc::EPOLL_CTL_MOD, m.fd, ev).is_ok() {
                s.quiet.push(*k);
            }
        }
        loud
    }

    /// Whether the driver delivers what the relay reports of every member (under the state
    /// lock; see [`crate::Driver::relay_delivers`]).
    fn members_deliver(&self, s: &RelayState) -> bool {
        s.members.values().all(|m| {
            m.host
                .upgrade()
                .is_none_or(|h| self.driver.relay_delivers(&h))
        })
    }

    /// Sleeps begun with members made quiet (see "Probed members").
    pub(crate) fn quiet_sleeps(&self) -> u64 {
        self.quiet_sleeps.load(Ordering::Relaxed)
    }

    /// Times a sleep had members' polls taken over ([`crate::Driver::adopt`]; for tests
    /// and reports).
    pub(crate) fn adoptions(&self) -> u64 {
        self.adoptions.load(Ordering::Relaxed)
    }

    /// Make the members the instance's host descriptors (under the state lock).
    fn sync_members(&self, s: &mut RelayState, epoll: &Epoll, f: Fds) {
        let mut usable = true;
        let mut now: Vec<(usize, Arc<HostFd>)> = Vec::new();
        epoll.for_each_target(|ops, _fd, nested| {
            if nested {
                usable = false;
                return;
            }
            let any: Arc<dyn std::any::Any + Send + Sync> = ops.clone();
            if let Ok(h) = any.downcast::<HostFd>() {
                if !h.is_pollable() {
                    return;
                }
                if !Arc::ptr_eq(&h.driver, &self.driver) {
                    usable = false;
                    return;
                }
                now.push((Arc::as_ptr(&h) as usize, h));
            }
            // Any other object is in-process: its changes wake waiters directly.
        });
        // Gone members (or re-numbered ones): out of the relay, unless their number is
        // one a member keeps (the item under it may be that member's).
        let live: HashMap<usize, i32> = now.iter().map(|(k, h)| (*k, h.fd())).collect();
        let gone: Vec<usize> = s
            .members
            .iter()
            .filter(|(k, m)| live.get(k) != Some(&m.fd))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            let m = s.members.remove(&k).expect("listed");
            s.by_token.remove(&m.token);
            s.quiet.retain(|&q| q != k);
            let kept =
                live.values().any(|&fd| fd == m.fd) || s.members.values().any(|o| o.fd == m.fd);
            if !kept {
                let _ = sys::epoll_ctl(f.epfd, libc::EPOLL_CTL_DEL, m.fd, None);
            }
            if let Some(sfd) = s.scratch_in.remove(&k) {
                if !kept {
                    let _ = sys::epoll_ctl(f.scratch, libc::EPOLL_CTL_DEL, sfd, None);
                }
            }
        }
        for (k, h) in now {
            if s.members.contains_key(&k) {
                continue;
            }
            let fd = h.fd();
            let token = s.next_token;
            s.next_token += 1;
            let ev = Some((RELAY_BITS, token));
            let added = match sys::epoll_ctl(f.epfd, libc::EPOLL_CTL_ADD, fd, ev) {
                // An item of this file under this number is left from a member that went
                // (kept above): it takes this member's token.
                Err(sys::Errno::EEXIST) => sys::epoll_ctl(f.epfd, libc::EPOLL_CTL_MOD, fd, ev),
                r => r,
            };
            if added.is_err() {
                usable = false;
                continue;
            }
            s.by_token.insert(token, k);
            s.members.insert(
                k,
                Member {
                    host: Arc::downgrade(&h),
                    fd,
                    token,
                },
            );
        }
        s.usable = usable;
    }

    /// After a sleep on the relay: take its reports, pump; if the pump did not wake
    /// `woken`'s thread, wait out the wakeups in progress of the files reported and pump
    /// again. Returns whether the next sleep must watch the driver too (a file could not
    /// be synchronised with). `reported`: whether the sleep found the relay readable (or
    /// cannot tell); a relay that was not holds no report to take: a report that comes
    /// after the sleep keeps it readable for the next one.
    pub(crate) fn after_sleep(
        &self,
        host: &crate::Host,
        woken: &dyn Fn() -> bool,
        reported: bool,
    ) -> bool {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        let f = *self.fds.get().expect("a relay sleep has descriptors");
        // On the stack: a drain's reports (one batch, mostly) allocate nothing.
        let mut tokens: smallvec::SmallVec<[u64; BATCH]> = smallvec::SmallVec::new();
        if reported {
            // Filled only when there is a report to take (most sleeps end without one).
            let mut buf = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
            while let Ok(n) = sys::epoll_wait(f.epfd, &mut buf, 0) {
                tokens.extend(buf[..n].iter().map(|e| e.u64).filter(|&t| t != POKE));
                if n < buf.len() {
                    break;
                }
            }
        }
        host.pump_before_sleep();
        if woken() || tokens.is_empty() {
            return false;
        }
        let mut watch_driver = false;
        {
            let mut s = locked(&self.state);
            for t in tokens {
                let Some(&k) = s.by_token.get(&t) else {
                    // A member that went: its items went with it.
                    continue;
                };
                let Some(h) = s.members.get(&k).and_then(|m| m.host.upgrade()) else {
                    continue; // released: nothing of it to deliver
                };
                // Any number of the file will do: the lock is the file's.
                let fd = h.fd();
                let r = match s.scratch_in.get(&k) {
                    Some(&old) if old == fd => {
                        sys::epoll_ctl(f.scratch, libc::EPOLL_CTL_DEL, fd, None)
                    }
                    _ => sys::epoll_ctl(f.scratch, libc::EPOLL_CTL_ADD, fd, Some((0, 0))),
                };
                match r {
                    Ok(()) if s.scratch_in.get(&k) == Some(&fd) => {
                        s.scratch_in.remove(&k);
                    }
                    Ok(()) => {
                        if let Some(old) = s.scratch_in.insert(k, fd) {
                            let _ = sys::epoll_ctl(f.scratch, libc::EPOLL_CTL_DEL, old, None);
                        }
                    }
                    Err(_) => {
                        s.scratch_in.remove(&k);
                        watch_driver = true;
                    }
                }
            }
        }
        host.pump_before_sleep();
        watch_driver
    }

    /// In a `fork` child: the descriptors are shared with the parent; each is replaced by
    /// a fresh one under the same number, and the relay starts empty.
    pub(crate) fn after_fork_child(&self) {
        let Some(old) = self.fds.get() else {
            return;
        };
        let Ok(new) = new_fds(0) else {
            // The parent's threads change the shared relay (a `DEL` there would remove
            // this process's item of the same file and number): never use it here.
            self.disabled.store(true, Ordering::SeqCst);
            self.usable.store(false, Ordering::SeqCst);
            return;
        };
        // The new relay holds the new poke under its temporary number: out first.
        let _ = sys::epoll_ctl(new.epfd, libc::EPOLL_CTL_DEL, new.poke, None);
        let mut replaced = true;
        for (n, o) in [
            (new.epfd, old.epfd),
            (new.poke, old.poke),
            (new.scratch, old.scratch),
        ] {
            replaced &= sys::dup3(n, o, libc::O_CLOEXEC).is_ok();
            let _ = sys::close(n);
        }
        let ev = Some(((libc::EPOLLIN | libc::EPOLLET) as u32, POKE));
        replaced &= sys::epoll_ctl(old.epfd, libc::EPOLL_CTL_ADD, old.poke, ev).is_ok();
        if !replaced {
            self.disabled.store(true, Ordering::SeqCst);
            self.usable.store(false, Ordering::SeqCst);
        }
        *locked(&self.state) = RelayState::default();
        self.sleepers.store(0, Ordering::SeqCst);
    }
}

impl WakeCallback for InstanceRelay {
    /// An item was added to the instance: threads asleep on the relay sync it.
    fn wake(&self, _key: Events) -> bool {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            if let Some(f) = self.fds.get() {
                let _ = sys::write(f.poke, &1u64.to_ne_bytes());
            }
        }
        true
    }
}

impl Drop for InstanceRelay {
    fn drop(&mut self) {
        if let Some(f) = self.fds.get() {
            for fd in [f.epfd, f.poke, f.scratch] {
                let _ = sys::close(fd);
            }
        }
    }
}
