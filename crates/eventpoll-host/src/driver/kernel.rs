//! The Linux driver: private kernel epolls (one per direction), every host descriptor
//! registered edge-triggered, used purely as an interrupt source.
//!
//! An edge-triggered kernel item is put on the kernel's ready list by every wakeup of its
//! file whose key intersects the item's bits (here: all of them) and reported once per
//! harvest — so a [`pump`](Driver::pump) turns each batch of host wakeups into one
//! [`eventpoll::WaitQueue::wake`] per descriptor, with the bits the kernel reports (the
//! file's mask at the time of the pump; the kernel does not report the wakeup's own key).
//! Nothing else is asked of the kernel: whether an engine item is level- or
//! edge-triggered, one-shot, exclusive or nested is decided by the engine, which re-polls
//! host descriptors with `poll(2)` when it harvests.
//!
//! A blocked waiter sleeps in `ppoll(2)` on the private epoll (readable when a registered
//! descriptor has had activity) and its own doorbell, with its signal mask applied
//! atomically, so it is woken by the host itself: no helper thread, no polling loop.
//!
//! Pumps in flight. A pump takes a batch from the private epoll, then delivers it; a wakeup
//! taken but not yet delivered is in no kernel list and on no ready list. So that a racing
//! zero-timeout wait — its own pump finds the private epoll empty — does not miss it (one
//! made right after a `write` returned must report that write, as Linux's does), every
//! pump is announced in flight from before its `epoll_wait` to after its last delivery,
//! and [`Driver::pump`] waits, after its own batch, until the pumps in flight then have
//! finished: a few microseconds of spinning (a pump delivers in microseconds), then
//! yielding, 10 ms at most (`KernelDriver::wait_inflight`: a pump that does not finish has
//! its thread stopped, or in a signal handler). Linux's `epoll_wait` likewise waits for a
//! harvest of the same instance in progress (`ep->mtx`). Only a wait that returns what
//! it finds needs this: a wait that would sleep when its pump finds nothing pumps with
//! [`Driver::pump_before_sleep`], which does not wait — the delivery in flight wakes it
//! (without that, memcached's four workers, each pumping at every request, spent 0.7
//! `sched_yield(2)` per request waiting for each other). The first thread to pump owns
//! the driver's fast path: it announces its pumps with plain stores to a sequence count
//! only it writes (`KernelDriver::owner_seq`), so a single-threaded program pays no
//! read-modify-write for this, only two stores and two loads per pump (an empty pump:
//! 252 ns before, 255 ns after, the best of 25 interleaved runs on a loaded 2-core
//! machine); the other threads (and a pump inside a pump) count theirs in
//! `KernelDriver::inflight`, two atomic additions. `tests/host.rs` checks it: a zero-timeout wait after its own `write` while
//! another thread, blocked on another instance, pumps at every wakeup, with either thread
//! the owner (without the wait it missed 1 to 262 of 14,000 to 37,000 rounds, every run;
//! the registration race test's "late" rounds, 1 to 4 in 20,000, were these too).

use super::{Driver, DriverKind, Registry, SOCKET_IN_KEY};
use crate::host_fd::HostFd;
use crate::sys::{self, Errno, SysResult};
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::atomic::{fence, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two classes of bits a descriptor is registered for, one private kernel epoll each
/// (plus `EPOLLET`; `ERR` and `HUP` are implied in both). Wakeups carry a key (the bits
/// that changed: an eventfd write wakes with `IN`, a read with `OUT`) and the kernel
/// filters items by it, but reports only the mask; with one epoll per direction, each
/// report says which *direction* woke, and the engine's own key filtering stays right —
/// an item that waits for `OUT` is not woken by data arriving.
const CLASSES: [u32; 2] = [
    HostFd::IN_BITS.bits() | libc::EPOLLET as u32,
    HostFd::OUT_BITS.bits() | libc::EPOLLET as u32,
];

/// Events taken from the kernel per `epoll_wait` of a pump.
const BATCH: usize = 256;

/// The token of the output epoll's item in the input epoll.
const OUT_MARK: u64 = u64::MAX;

/// The kernel-epoll driver. See the module documentation.
pub struct KernelDriver {
    /// `[input, output]`: the output epoll is an item of the input one, so a waiter blocks
    /// on the input epoll alone and a pump reads the output epoll only when it has news.
    epfds: [AtomicI32; 2],
    registry: Registry,
    /// Descriptors below this are the program's; the private epolls are moved at or above.
    hidden_base: i32,
    /// Pumps in flight (the low 32 bits) and pumps finished (the high 32 bits, wrapping)
    /// of the threads but the owner: see the module documentation, "Pumps in flight", and
    /// [`KernelDriver::pump_counted`].
    inflight: AtomicU64,
    /// The thread whose pumps are announced in `owner_seq` (its [`thread_key`]; 0: none
    /// yet): the first to pump.
    owner: AtomicUsize,
    /// The owner's pumps: odd while one is in flight. Only the owner writes it.
    owner_seq: AtomicU64,
    /// Waits for pumps in flight made (unit tests: whether a pump waited, told without
    /// timing it).
    #[cfg(test)]
    inflight_waits: AtomicUsize,
    /// Of those, the waits ended by [`INFLIGHT_LIMIT`] (unit tests).
    #[cfg(test)]
    inflight_limits: AtomicUsize,
}

/// What a pump saw of the others when it had finished (see [`KernelDriver::pump_counted`]).
#[derive(Clone, Copy)]
struct Seen {
    /// [`KernelDriver::inflight`].
    word: u64,
    /// [`KernelDriver::owner_seq`] (even when this pump was the owner's).
    owner_seq: u64,
}

impl Seen {
    /// Whether another pump was in flight.
    fn busy(self) -> bool {
        self.word as u32 != 0 || self.owner_seq & 1 != 0
    }
}

/// A number for the calling thread, unique among the live threads of the process: the
/// address of its [`DEPTH`].
fn thread_key() -> usize {
    DEPTH.with(|d| d as *const Cell<u32> as usize)
}

/// One pump in flight more (added to [`KernelDriver::inflight`]).
const PUMP_IN: u64 = 1;
/// One pump in flight less and one more finished (added to [`KernelDriver::inflight`]:
/// the count is at least 1 then, so the borrow from the high half is paid back by the
/// carry).
const PUMP_OUT: u64 = (1 << 32) - 1;
/// Spins before a pump waiting for others in flight yields the processor.
const SPINS: u32 = 200;
/// After this long waiting for the count of pumps in flight to fall to 0, a wait also
/// ends once as many pumps have finished as were in flight when it began (see
/// [`KernelDriver::wait_inflight`]).
const INFLIGHT_PATIENCE: Duration = Duration::from_millis(1);
/// The longest a pump waits for others in flight (see [`KernelDriver::wait_inflight`]).
const INFLIGHT_LIMIT: Duration = Duration::from_millis(10);

thread_local! {
    /// Pumps of kernel-epoll drivers in flight on this thread: more than the current one
    /// when a signal handler (or anything a pump calls) pumps inside a pump.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn new_epoll(hidden_base: i32) -> SysResult<i32> {
    let fd = sys::epoll_create1(libc::EPOLL_CLOEXEC)?;
    Ok(if hidden_base > 0 {
        sys::move_high(fd, hidden_base)
    } else {
        fd
    })
}

/// A new (input, output) pair of kernel epolls, the output one nested in the input one.
fn new_pair(hidden_base: i32) -> SysResult<(i32, i32)> {
    let a = new_epoll(hidden_base)?;
    let b = match new_epoll(hidden_base) {
        Ok(b) => b,
        Err(e) => {
            let _ = sys::close(a);
            return Err(e);
        }
    };
    if let Err(e) = sys::epoll_ctl(
        a,
        libc::EPOLL_CTL_ADD,
        b,
        Some((libc::EPOLLIN as u32, OUT_MARK)),
    ) {
        let _ = sys::close(a);
        let _ = sys::close(b);
        return Err(e);
    }
    Ok((a, b))
}

impl KernelDriver {
    /// Register `host` under number `fd` in the private epoll of direction `class` with
    /// `bits` — or, when an item of the same file under the same number is there already
    /// (`EEXIST`), take that item over (`EPOLL_CTL_MOD` with this registration's bits and
    /// token). The kernel keys items by (file, number), and an item whose number was
    /// closed, or taken by another file, while the file stayed open elsewhere cannot be
    /// deleted by that number: it stays until the file is released, reporting with a token
    /// that resolves to nothing, or with no bits at all
    /// (`scenarios/regressions/ghost-after-dup2-over-registered-number.ep`: a `dup2` over
    /// the registration number, made before the library moved the registration). Taken
    /// over only when no other live object is registered under that number for that file
    /// (an embedder that opened one number twice): its item stays its own, and the `EEXIST`
    /// is the answer, as before.
    fn add_or_adopt(&self, host: &HostFd, class: usize, fd: i32, bits: u32) -> SysResult<()> {
        let epfd = self.epfd(class);
        let token = host.token.load(Ordering::Acquire);
        match sys::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, Some((bits, token))) {
            Err(Errno::EEXIST) => {
                let owned = self.registry.all().iter().any(|h| {
                    !std::ptr::eq(&**h, host)
                        && h.reg_fd.load(Ordering::Acquire) == fd
                        && sys::same_file(h.fd(), fd) == Some(true)
                });
                if owned {
                    return Err(Errno::EEXIST);
                }
                sys::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, Some((bits, token)))
            }
            r => r,
        }
    }

    /// A driver with its own kernel epolls (close-on-exec), moved to numbers at or above
    /// `hidden_base` when one is given (0: wherever the kernel puts them).
    pub fn new(hidden_base: i32) -> SysResult<KernelDriver> {
        let (a, b) = new_pair(hidden_base)?;
        Ok(KernelDriver {
            epfds: [AtomicI32::new(a), AtomicI32::new(b)],
            registry: Registry::default(),
            hidden_base,
            inflight: AtomicU64::new(0),
            owner: AtomicUsize::new(0),
            owner_seq: AtomicU64::new(0),
            #[cfg(test)]
            inflight_waits: AtomicUsize::new(0),
            #[cfg(test)]
            inflight_limits: AtomicUsize::new(0),
        })
    }

    fn epfd(&self, class: usize) -> i32 {
        self.epfds[class].load(Ordering::Acquire)
    }

    /// Harvest one of the epolls, passing on every report except those for `skip` (dropped)
    /// and `absorb` (taken as wakeups already delivered: their state bits are recorded);
    /// returns (objects woken, whether the output epoll has news).
    fn drain(
        &self,
        class: usize,
        skip: u64,
        absorb: &[u64],
        buf: &mut [MaybeUninit<libc::epoll_event>],
        hosts: &mut Hosts,
    ) -> (usize, bool) {
        let mut woken = 0;
        let mut out_news = false;
        let len = buf.len();
        while let Ok(got) = sys::epoll_wait_uninit(self.epfd(class), buf, 0) {
            hosts.clear();
            out_news |= got.iter().any(|e| e.u64 == OUT_MARK);
            self.registry.resolve(
                got.iter()
                    .map(|e| e.u64)
                    .enumerate()
                    .filter(|(_, t)| *t != OUT_MARK && *t != skip),
                hosts,
            );
            for (pos, h) in hosts.iter() {
                let bits = got[*pos].events;
                if class == 0 {
                    h.set_fresh(bits);
                }
                if let Some(key) = wake_key(h, class, bits) {
                    if !absorb.contains(&{ got[*pos].u64 }) {
                        h.notify(key);
                    }
                }
            }
            woken += hosts.len();
            if got.len() < len {
                break;
            }
        }
        hosts.clear();
        (woken, out_news)
    }
}

/// The objects of one batch of reports (most pumps report a few: no allocation for them).
type Hosts = smallvec::SmallVec<[(usize, Arc<HostFd>); 16]>;

/// The key to wake `host`'s queue with, from a report of the epoll of `class`. A report
/// holds the file's mask, not the wakeup's key; the direction is the epoll's, and `ERR`
/// and `HUP` — reported by both epolls whenever they are set — count only when they have
/// just appeared (a wakeup without a key then, `Some(0)`: a state change, which wakes
/// every item): an `IN` wakeup of a socket that hung up long ago does not wake an item
/// that waits for `HUP` alone, as on Linux. A state change reaches both epolls; the input
/// epoll's report, which every descriptor has, is the one passed on (the output epoll's,
/// `None`, would be a second wakeup of the same items, and wake a second thread blocked
/// on their instance: `scenarios/regressions/threads-peer-close-wakes-newest-once.ep`).
/// An input report of a socket that had `HUP` already is a wakeup without a key too
/// (`Some(0)`, which queues every item): no data can arrive any more and the input epoll
/// does not take output wakeups, so only a key-less one is left — the peer closed or shut
/// down after the hang-up (`sock_def_wakeup`). `None`: nothing to pass on.
fn wake_key(host: &HostFd, class: usize, bits: u32) -> Option<u32> {
    let errhup = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
    let now = bits & errhup;
    let socket = host.socket.load(Ordering::Relaxed);
    let before = host.swap_state(class, now);
    if class == 1 {
        if now & !before != 0 {
            return None;
        }
        return key_of(socket, bits & !errhup);
    }
    if before & libc::EPOLLHUP as u32 != 0 && socket {
        return Some(0);
    }
    if now & !before != 0 {
        // `ERR` or `HUP` just appeared: a state change, which Linux signals without a key
        // and to every waiter (a pipe's release, a socket's `sk_state_change`), as the
        // io_uring driver's `wake_key` says too.
        return Some(0);
    }
    let key = key_of(socket, bits & !errhup);
    if key.is_none() && now != 0 {
        // A report (the input epoll is edge-triggered: a wakeup came since the last one)
        // with `ERR` or `HUP` set as before and no input bit: the state bits went and came
        // back with no report between (nothing the watch asks for was set while they were
        // gone), or the file was woken without a key while they stayed — either way a
        // wakeup every item takes on Linux: a pipe's or FIFO's release that left a side
        // with no ends (a FIFO writer whose `ERR` went with a reader's open and came back
        // at its close: random seed 1800006 #2243), an `F_SETPIPE_SZ`, a socket's next
        // error after the program took the last (`sk_error_report`, keyed `ERR`: a
        // connected UDP socket's second `ECONNREFUSED`,
        // `scenarios/regressions/udp-error-returns-et.ep`). A pipe gets no keyed input
        // wakeup while it shows `ERR` or `HUP` (no data comes to a pipe without writers,
        // none is read by a writer without readers); a socket with an error pending that
        // gets data the program reads before this pump is the one case taken wider than
        // Linux's key (its items that do not watch input are queued, then polled).
        return Some(0);
    }
    key
}

/// The key of a report's direction bits `dir` (a socket's widened to its wakeup's whole
/// key, [`super::socket_key`]; the input epoll asks a socket for all of it: `input_bits`),
/// `None` when there are none.
fn key_of(socket: bool, dir: u32) -> Option<u32> {
    let key = if socket { super::socket_key(dir) } else { dir };
    (key != 0).then_some(key)
}

/// What the input epoll asks for `host`: its input bits, edge-triggered — for a socket
/// whose items want any bit of a data wakeup's key, every bit of it: the kernel epoll
/// reports a wakeup only when the file's mask has a bit asked for, and a data wakeup of a
/// socket queues an item that watches `PRI` alone though the mask has no `PRI` (Linux
/// checks the key, not the mask: `scenarios/regressions/socket-folded-wakeups.ep`).
fn input_bits(host: &HostFd) -> u32 {
    let input = host.input.load(Ordering::Acquire);
    let input = if input & SOCKET_IN_KEY != 0 && host.socket.load(Ordering::Relaxed) {
        input | SOCKET_IN_KEY
    } else {
        input
    };
    input | libc::EPOLLET as u32
}

/// A token no object has.
const NO_SKIP: u64 = u64::MAX - 1;

impl KernelDriver {
    /// Pump, dropping the reports for `skip`. A kernel epoll reports a descriptor that is
    /// ready when it is added ("armed"), which is not a wakeup: after adding one, the
    /// driver pumps everything else and drops that report. Nothing is lost — whoever adds
    /// an engine item polls the object itself afterwards.
    fn pump_skipping(&self, skip: u64) -> usize {
        self.pump_counted(skip, &[]).0
    }

    /// Whether the calling thread (`me`) owns the fast path, taking it if nobody has.
    fn is_owner(&self, me: usize) -> bool {
        let o = self.owner.load(Ordering::Relaxed);
        o == me
            || (o == 0
                && self
                    .owner
                    .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
    }

    /// [`KernelDriver::pump_skipping`], announced in flight (see the module documentation,
    /// "Pumps in flight"); also returns what it saw of the other pumps once it had left.
    ///
    /// Memory ordering. Say pump B took a wakeup and pump A's `epoll_wait`, later, found
    /// the ready list without it: A must see B in flight, or B's deliveries. B's
    /// announcement is ordered before the stores by which its `epoll_wait` takes the batch
    /// (made under the epoll's locks): by the read-modify-write itself (a full barrier) for
    /// a counted pump, by a release fence after the owner's plain store (nothing on x86,
    /// whose stores become visible in order; a barrier elsewhere). A's `epoll_wait` read the
    /// list as B left it, or later; A's reads of the announcements are ordered after it: by
    /// its exit read-modify-write (a full barrier) for a counted pump, by an acquire fence
    /// for the owner's (nothing on x86, whose loads are made in order). That is the
    /// message-passing pattern with a barrier on each side, so A sees B's announcement or a
    /// later value. A value that no longer shows B in flight was written after B's last
    /// delivery (the engine's wait-queue calls, under the engine's locks) with release
    /// semantics, and A reads it with acquire semantics: A's harvest sees what B delivered.
    fn pump_counted(&self, skip: u64, absorb: &[u64]) -> (usize, Seen) {
        let nested = DEPTH.with(Cell::get) != 0;
        // The owner's pump inside one of its own (a signal handler's wait) is counted: the
        // sequence count must not move under the outer pump.
        let owner_seq = (!nested && self.is_owner(thread_key()))
            .then(|| self.owner_seq.load(Ordering::Relaxed));
        // Left when the pump unwinds too: an announcement left standing would make every
        // wait wait its longest.
        struct Announced<'a> {
            driver: &'a KernelDriver,
            owner_seq: Option<u64>,
            left: bool,
        }
        impl Drop for Announced<'_> {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(d.get() - 1));
                if !self.left {
                    match self.owner_seq {
                        Some(s) => self.driver.owner_seq.store(s + 2, Ordering::Release),
                        None => {
                            self.driver.inflight.fetch_add(PUMP_OUT, Ordering::SeqCst);
                        }
                    }
                }
            }
        }
        DEPTH.with(|d| d.set(d.get() + 1));
        match owner_seq {
            Some(s) => {
                self.owner_seq.store(s + 1, Ordering::Relaxed);
                fence(Ordering::Release);
            }
            None => {
                self.inflight.fetch_add(PUMP_IN, Ordering::SeqCst);
            }
        }
        let mut announced = Announced {
            driver: self,
            owner_seq,
            left: false,
        };
        let mut buf = [MaybeUninit::<libc::epoll_event>::uninit(); BATCH];
        let mut hosts = Hosts::new();
        let (mut woken, out_news) = self.drain(0, skip, absorb, &mut buf, &mut hosts);
        if out_news {
            woken += self.drain(1, skip, absorb, &mut buf, &mut hosts).0;
        }
        let seen = match owner_seq {
            Some(s) => {
                fence(Ordering::Acquire);
                self.owner_seq.store(s + 2, Ordering::Release);
                Seen {
                    word: self.inflight.load(Ordering::SeqCst),
                    owner_seq: s + 2,
                }
            }
            None => {
                let word = self
                    .inflight
                    .fetch_add(PUMP_OUT, Ordering::SeqCst)
                    .wrapping_add(PUMP_OUT);
                Seen {
                    word,
                    owner_seq: self.owner_seq.load(Ordering::SeqCst),
                }
            }
        };
        announced.left = true;
        drop(announced);
        (woken, seen)
    }

    /// Wait until the pumps in flight when this thread's own pump had finished (`seen`)
    /// have delivered what they took, spinning a little, then yielding: until the owner's
    /// sequence count has moved on from an odd `seen.owner_seq` and the count of the other
    /// pumps in flight is 0 — exact, since it counts those pumps until they finish. Pumps
    /// that wait here are not in flight, so waiters do not wait for each other. Bounded:
    /// pumps that keep starting (the driver's own ones at registrations, re-armings) could
    /// keep the count above 0, so after [`INFLIGHT_PATIENCE`] the count's part also ends
    /// once as many pumps have finished since `seen` as were in flight then (the ones in
    /// flight then, unless one of them is stalled while newer ones finish); and a pump
    /// that does not finish at all — its thread stopped, or running a signal handler that
    /// blocks — is waited for [`INFLIGHT_LIMIT`] at most.
    fn wait_inflight(&self, seen: Seen) {
        #[cfg(test)]
        self.inflight_waits.fetch_add(1, Ordering::SeqCst);
        let in_flight = |w: u64| w as u32;
        let finished = |w: u64| (w >> 32) as u32;
        let (count, done) = (in_flight(seen.word), finished(seen.word));
        let mut since: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            let w = self.inflight.load(Ordering::SeqCst);
            let owner_done =
                seen.owner_seq & 1 == 0 || self.owner_seq.load(Ordering::SeqCst) != seen.owner_seq;
            if owner_done && in_flight(w) == 0 {
                return;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let waited = since.get_or_insert_with(Instant::now).elapsed();
            #[cfg(test)]
            if waited >= INFLIGHT_LIMIT {
                self.inflight_limits.fetch_add(1, Ordering::SeqCst);
            }
            if waited >= INFLIGHT_LIMIT
                || (owner_done
                    && waited >= INFLIGHT_PATIENCE
                    && finished(w).wrapping_sub(done) >= count)
            {
                return;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for KernelDriver {
    fn drop(&mut self) {
        for c in 0..2 {
            let _ = sys::close(self.epfd(c));
        }
    }
}

impl Driver for KernelDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::KernelEpoll
    }

    fn pumps_on_register(&self) -> bool {
        true // the pump that drops the registration's report delivers the rest
    }

    fn register(&self, host: &Arc<HostFd>) -> SysResult<()> {
        // Sockets have one more key rule (see `wake_key`); the identity, from the same
        // `fstat`, is what key-less wakeups look files up by (`Host::wake_keyless`).
        // A number that is not open: `EBADF` here (`Host::open_for` relies on it).
        let st = sys::fstat(host.fd())?;
        host.socket.store(
            st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
            Ordering::Relaxed,
        );
        host.note_mode(st.st_mode);
        let token = self.registry.insert(host, sys::own_identity(&st));
        host.token.store(token, Ordering::Release);
        let fd = host.fd();
        host.reg_fd.store(fd, Ordering::Release);
        if let Err(e) = self.add_or_adopt(host, 0, fd, input_bits(host)) {
            self.registry.remove(token);
            return Err(e);
        }
        if host.out.load(Ordering::Acquire) {
            if let Err(e) = self.add_or_adopt(host, 1, fd, CLASSES[1]) {
                let _ = sys::epoll_ctl(self.epfd(0), libc::EPOLL_CTL_DEL, fd, None);
                self.registry.remove(token);
                return Err(e);
            }
        }
        // The registration's report (the file's mask for the bits registered, if it is
        // ready) is dropped, not kept as the answer to the ctl's poll as the io_uring
        // driver keeps its arming report (`crate::host_fd::answer`): a pump of another
        // thread between the `EPOLL_CTL_ADD` and this one takes the report as a wakeup
        // of an object no item watches yet, and the answer "not ready" that remains
        // would lose it (Node's second event loop pumps at every host wakeup: its
        // server stalled within a few requests). The io_uring driver holds the ring's
        // mutex from the arming to the pump that takes the report; this one takes no
        // lock around its pumps.
        self.pump_skipping(token);
        Ok(())
    }

    fn rebind(&self, host: &HostFd, old: i32, new: i32) {
        // Deliver what is pending first: only the report of the re-arming below is dropped.
        self.pump();
        // The kernel's items are keyed by (file, number): add them under the new number,
        // then remove them under the old one, which still names the file.
        let token = host.token.load(Ordering::Acquire);
        let reg = host.reg_fd.load(Ordering::Acquire);
        let _ = self.add_or_adopt(host, 0, new, input_bits(host));
        if host.out.load(Ordering::Acquire) {
            let _ = self.add_or_adopt(host, 1, new, CLASSES[1]);
        }
        host.reg_fd.store(new, Ordering::Release);
        if reg == old {
            let _ = sys::epoll_ctl(self.epfd(0), libc::EPOLL_CTL_DEL, old, None);
            let _ = sys::epoll_ctl(self.epfd(1), libc::EPOLL_CTL_DEL, old, None);
        }
        self.pump_skipping(token);
    }

    fn set_input(&self, host: &HostFd, _bits: u32) -> SysResult<()> {
        // Deliver what is pending first: only the report of the re-arming below is dropped.
        self.pump();
        let token = host.token.load(Ordering::Acquire);
        let cur = host.fd();
        if host.reg_fd.load(Ordering::Acquire) != cur {
            // Registered under a number that is gone: register under the current one.
            host.reg_fd.store(cur, Ordering::Release);
            self.add_or_adopt(host, 0, cur, input_bits(host))?;
        }
        sys::epoll_ctl(
            self.epfd(0),
            libc::EPOLL_CTL_MOD,
            cur,
            Some((input_bits(host), token)),
        )?;
        // A modification re-arms: a report for a ready descriptor is not a wakeup.
        self.pump_skipping(token);
        Ok(())
    }

    /// The private epolls have the wakeup already (the kernel's callbacks ran during the
    /// call), each descriptor's in the epoll of each direction its file is ready for. A
    /// pump takes those reports as this wakeup (they record its state bits, and wake
    /// nothing), delivering the others, then the wakeup goes to each object in order —
    /// the order of Linux's wakeups, where the reports of two epolls would come a
    /// direction at a time. A pump of another thread may have taken the reports first:
    /// this one waits for the pumps in flight, and an object woken since the call began
    /// has had the items its key named woken; the others are woken here.
    fn wake_keyless(&self, hosts: &[(Arc<HostFd>, u64)]) {
        let tokens: smallvec::SmallVec<[u64; 4]> = hosts
            .iter()
            .map(|(h, _)| h.token.load(Ordering::Acquire))
            .collect();
        let (_, seen) = self.pump_counted(NO_SKIP, &tokens);
        if seen.busy() && DEPTH.with(Cell::get) == 0 {
            self.wait_inflight(seen);
        }
        for (h, count) in hosts {
            if h.wakeups() == *count {
                h.notify(0);
            } else if h.last_key() != 0 {
                h.notify_uncovered(0, h.last_key());
            }
        }
    }

    fn watch_out(&self, host: &HostFd) -> SysResult<()> {
        // Deliver what is pending first: only the report of the re-arming below is dropped.
        self.pump();
        let token = host.token.load(Ordering::Acquire);
        let reg = host.reg_fd.load(Ordering::Acquire);
        // Register under the current number when the registration number is gone.
        let fd = if reg == host.fd() { reg } else { host.fd() };
        self.add_or_adopt(host, 1, fd, CLASSES[1])?;
        self.pump_skipping(token);
        Ok(())
    }

    fn deregister(&self, host: &HostFd) {
        let token = host.token.load(Ordering::Acquire);
        self.registry.remove(token);
        // Only if the registration number still refers to this file: otherwise the kernel
        // removes the items itself when the file is released.
        let reg = host.reg_fd.load(Ordering::Acquire);
        if reg == host.fd() {
            let _ = sys::epoll_ctl(self.epfd(0), libc::EPOLL_CTL_DEL, reg, None);
            if host.out.load(Ordering::Acquire) {
                let _ = sys::epoll_ctl(self.epfd(1), libc::EPOLL_CTL_DEL, reg, None);
            }
        }
    }

    /// Pump, then wait for the pumps of other threads in flight (see the module
    /// documentation, "Pumps in flight"), unless this thread is inside a pump already. The
    /// pumps that drop an arming report
    /// (`pump_skipping`: registrations, re-armings) do not wait; the ones those make first,
    /// to deliver what is pending, do.
    fn pump(&self) -> usize {
        let (woken, seen) = self.pump_counted(NO_SKIP, &[]);
        // Not inside another pump of this thread (a signal handler's wait): that one is in
        // flight until this returns.
        if seen.busy() && DEPTH.with(Cell::get) == 0 {
            self.wait_inflight(seen);
        }
        woken
    }

    fn pump_before_sleep(&self) -> usize {
        // A wakeup another thread's pump holds wakes the sleeper when delivered: no wait.
        self.pump_counted(NO_SKIP, &[]).0
    }

    fn relayable(&self) -> bool {
        true
    }

    fn notify_fds(&self, out: &mut Vec<libc::pollfd>) {
        out.push(libc::pollfd {
            fd: self.epfd(0),
            events: libc::POLLIN,
            revents: 0,
        });
    }

    fn after_fork_child(&self) {
        // Pumps the parent's other threads had in flight do not go on here.
        self.inflight.store(0, Ordering::SeqCst);
        self.owner.store(0, Ordering::SeqCst);
        let seq = self.owner_seq.load(Ordering::SeqCst);
        self.owner_seq.store(seq + (seq & 1), Ordering::SeqCst);
        // The kernel epolls are shared with the parent: make our own and register again.
        let Ok((a, b)) = new_pair(self.hidden_base) else {
            return;
        };
        for (c, fd) in [a, b].into_iter().enumerate() {
            let old = self.epfds[c].swap(fd, Ordering::AcqRel);
            let _ = sys::close(old);
        }
        for h in self.registry.all() {
            let cur = h.fd();
            h.reg_fd.store(cur, Ordering::Release);
            let token = h.token.load(Ordering::Acquire);
            let _ = sys::epoll_ctl(a, libc::EPOLL_CTL_ADD, cur, Some((input_bits(&h), token)));
            if h.out.load(Ordering::Acquire) {
                let _ = sys::epoll_ctl(b, libc::EPOLL_CTL_ADD, cur, Some((CLASSES[1], token)));
            }
        }
        // Drop the reports of the re-registration: the ready lists copied from the parent
        // already say what was ready.
        let mut buf = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        for fd in [a, b] {
            while matches!(sys::epoll_wait(fd, &mut buf, 0), Ok(n) if n == BATCH) {}
        }
    }

    fn registered_file(&self, file: (u64, u64), out: &mut Vec<Arc<HostFd>>) {
        self.registry.by_file(file, out);
    }

    fn own_fds(&self, out: &mut Vec<i32>) {
        out.extend((0..2).map(|c| self.epfd(c)));
    }

    /// `kcmp(KCMP_EPOLL_TFD)`: does `fd` refer to the file the private epoll watches under
    /// the registration number?
    fn still_registered(&self, host: &HostFd, fd: i32) -> Option<bool> {
        sys::epoll_watches(fd, self.epfd(0), host.reg_fd.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pump while another thread, 2 ms later, ends the pump in flight with `finish`: the
    /// pump's wait ends then, not before — and not by its limit, unless the finish came
    /// after it (a loaded machine): a wait ended by the limit looked last before the
    /// finish's store, at or after the limit. Counted, not timed, so that a preempted
    /// thread cannot fail it.
    fn pump_ends_with(d: &Arc<KernelDriver>, finish: fn(&KernelDriver)) {
        let t = Instant::now();
        let other = {
            let d = d.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                let before = t.elapsed();
                finish(&d);
                (before, t.elapsed())
            })
        };
        let limits = d.inflight_limits.load(Ordering::SeqCst);
        d.pump();
        let waited = t.elapsed();
        let (finished, after) = other.join().unwrap();
        assert!(waited >= finished.min(INFLIGHT_LIMIT), "waited {waited:?}");
        assert!(
            d.inflight_limits.load(Ordering::SeqCst) == limits || after >= INFLIGHT_LIMIT,
            "waited {waited:?}, finished at {finished:?}-{after:?}"
        );
    }

    #[test]
    fn a_pump_waits_for_a_stalled_pump_in_flight_a_bounded_time() {
        let d = KernelDriver::new(0).unwrap();
        // A pump of another thread that took a batch and does not finish.
        d.inflight.fetch_add(PUMP_IN, Ordering::SeqCst);
        let t = Instant::now();
        assert_eq!(d.pump(), 0);
        let waited = t.elapsed();
        assert!(waited >= INFLIGHT_LIMIT, "waited {waited:?}");
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        // One that finishes meanwhile ends the wait (then, not before).
        let d = Arc::new(d);
        pump_ends_with(&d, |d| {
            d.inflight.fetch_add(PUMP_OUT, Ordering::SeqCst);
        });
        assert_eq!(d.inflight.load(Ordering::SeqCst) as u32, 0);
    }

    #[test]
    fn a_pump_waits_for_the_owners_pump_in_flight() {
        let d = Arc::new(KernelDriver::new(0).unwrap());
        // The owner (another thread) is in a pump.
        d.owner.store(1, Ordering::SeqCst);
        d.owner_seq.store(1, Ordering::SeqCst);
        let t = Instant::now();
        d.pump();
        let waited = t.elapsed();
        assert!(waited >= INFLIGHT_LIMIT, "waited {waited:?}");
        // Its pump ends: so does the wait (then, not before).
        pump_ends_with(&d, |d| d.owner_seq.store(2, Ordering::SeqCst));
        // Not the owner: counted.
        assert_eq!(d.inflight.load(Ordering::SeqCst) >> 32, 2);
    }

    #[test]
    fn a_pump_before_a_sleep_does_not_wait_for_pumps_in_flight() {
        let d = KernelDriver::new(0).unwrap();
        // Another thread's pump took a batch and has not delivered it: a waiter that
        // sleeps when it finds nothing is woken by that delivery, so it does not wait.
        d.inflight.fetch_add(PUMP_IN, Ordering::SeqCst);
        assert_eq!(d.pump_before_sleep(), 0);
        assert_eq!(d.inflight_waits.load(Ordering::SeqCst), 0, "it waited");
        // A wait that returns what it finds (a zero timeout) does.
        d.pump();
        assert_eq!(d.inflight_waits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_pump_inside_a_pump_of_its_thread_does_not_wait_for_it() {
        let d = KernelDriver::new(0).unwrap();
        // As in a signal handler's wait while this thread's pump is in flight.
        DEPTH.with(|c| c.set(1));
        d.inflight.fetch_add(PUMP_IN, Ordering::SeqCst);
        d.pump();
        DEPTH.with(|c| c.set(0));
        // Counted, not timed: a loaded machine can make a pump that does not wait take
        // longer than the wait's patience (1.2 ms once in a CI run).
        assert_eq!(
            d.inflight_waits.load(Ordering::SeqCst),
            0,
            "the nested pump waited"
        );
        // The same pump outside a pump of its thread does wait (bounded).
        d.pump();
        assert_eq!(d.inflight_waits.load(Ordering::SeqCst), 1);
    }
}
