//! Waiting on an engine instance that watches host descriptors: [`HostEpoll`] and its
//! doorbell, [`Bell`].
//!
//! A wait pumps the driver (host activity becomes wakeups, items reach the ready list),
//! harvests without blocking, and only if nothing was found blocks *in the host* — in the
//! driver's `ppoll(2)` on the host's notification descriptor and the thread's own eventfd
//! (a [`ThreadWaker`](crate::ThreadWaker), queued in the engine instance as a blocked
//! thread: see `waiter`) — with the caller's signal mask applied atomically, so a signal
//! interrupts it with `EINTR` exactly as it interrupts `epoll_pwait`. The doorbell is an
//! eventfd rung by a callback on the instance's own poll queue (something reached its ready
//! list: an in-process object, a nested instance, another thread's `EPOLL_CTL_MOD`, another
//! thread's pump), but only while a `poll`/`select` on the instance sleeps
//! ([`Bell::sleeper`]; and for a wait that could get no eventfd of its own), so a busy loop
//! pays no doorbell system calls.
//!
//! Locks: a waker's callback runs under the engine's locks and, during a pump, under the
//! driver's (the io_uring ring's mutex); it only sets a flag and writes an eventfd. A
//! waiter queues and dequeues itself under the embedder's `enter` guard, never while it
//! holds a driver lock.

use crate::relay::InstanceRelay;
use crate::sys;
use crate::waiter::Role;
use crate::{Host, ThreadWaker};
use eventpoll::{Epoll, EpollEvent, Errno, EventSink, Events, Exclusivity, WakeCallback};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An eventfd that says "this instance may have events": rung (counter 1) from the
/// instance's poll queue while a waiter sleeps (or always, when `always` is set), cleared
/// by [`Bell::settle`]. See the module documentation.
pub struct Bell {
    fd: i32,
    rung: AtomicBool,
    sleepers: AtomicUsize,
    /// Callbacks seen (to catch one that races with `settle`).
    seq: AtomicU64,
    always: AtomicBool,
    owned: bool,
}

impl std::fmt::Debug for Bell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bell")
            .field("fd", &self.fd)
            .field("rung", &self.rung.load(Ordering::Relaxed))
            .finish()
    }
}

impl Bell {
    /// A bell on a new non-blocking, close-on-exec eventfd (closed when the bell is
    /// dropped).
    pub fn new() -> Result<Bell, Errno> {
        let fd = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        Ok(Bell::on_fd(fd, true))
    }

    /// A bell on an existing non-blocking eventfd whose counter is 0; `owned`: close it on
    /// drop.
    pub fn on_fd(fd: i32, owned: bool) -> Bell {
        Bell {
            fd,
            rung: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            seq: AtomicU64::new(0),
            always: AtomicBool::new(false),
            owned,
        }
    }

    /// The eventfd.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Ring on every callback, not only while a waiter sleeps (when something outside
    /// the waits must see the instance become ready).
    pub fn set_always(&self, always: bool) {
        self.always.store(always, Ordering::SeqCst)
    }

    /// Whether the bell is rung.
    pub fn is_rung(&self) -> bool {
        self.rung.load(Ordering::SeqCst)
    }

    /// Ring (counter to 1, once).
    pub fn ring(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            let _ = sys::write(self.fd, &1u64.to_ne_bytes());
        }
    }

    /// Silence (counter to 0).
    pub fn clear(&self) {
        if self.rung.swap(false, Ordering::SeqCst) {
            let mut b = [0u8; 8];
            let _ = sys::read(self.fd, &mut b);
        }
    }

    /// Count a sleeper that is not in [`HostEpoll::wait`] (a `poll`/`select` on the
    /// instance's descriptor) while the returned guard lives: callbacks ring the bell for
    /// it too, so whichever thread pumps the host, the instance's readiness reaches it.
    pub fn sleeper(&self) -> Sleeper<'_> {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        Sleeper(self)
    }

    /// Forget the ring state and the sleepers (the eventfd was replaced by a fresh one, in
    /// a child after `fork`).
    pub fn forget_ring(&self) {
        self.rung.store(false, Ordering::SeqCst);
        self.sleepers.store(0, Ordering::SeqCst);
    }

    /// Make the bell say exactly whether `ready()` holds, without losing a ring from a
    /// callback that runs meanwhile (such a callback makes it re-check, and after a few
    /// rounds of interference the bell is left rung: a spurious ring costs one wasted
    /// harvest, a lost one a hang).
    pub fn settle(&self, ready: impl Fn() -> bool) {
        for _ in 0..3 {
            let seen = self.seq.load(Ordering::SeqCst);
            if ready() {
                self.ring();
                return;
            }
            self.clear();
            if self.seq.load(Ordering::SeqCst) == seen {
                return;
            }
        }
        self.ring();
    }
}

/// A sleeper counted on a [`Bell`] (see [`Bell::sleeper`]).
#[derive(Debug)]
pub struct Sleeper<'a>(&'a Bell);

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.0.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        if self.owned {
            let _ = sys::close(self.fd);
        }
    }
}

impl WakeCallback for Bell {
    fn wake(&self, _key: Events) -> bool {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 || self.always.load(Ordering::SeqCst) {
            self.ring();
        }
        true
    }
}

/// An engine instance with a host driver and a doorbell: waits that pump the driver and
/// block in the host. Items may be host descriptors ([`Host::open`]) and any other engine
/// object (in-process pipes, nested instances).
///
/// ```
/// use eventpoll_host::{Host, HostEpoll, DriverKind};
/// use eventpoll::{EpollEvent, Interest};
/// use std::time::Duration;
///
/// let host = Host::new(DriverKind::KernelEpoll).unwrap();
/// let hep = HostEpoll::new(host.clone()).unwrap();
/// let mut fds = [0; 2];
/// assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
/// let reader = host.open(fds[0]).unwrap();
/// hep.epoll().add(&reader, Interest::READABLE, 7).unwrap();
/// let mut out = [EpollEvent::default(); 8];
/// assert_eq!(hep.wait(&mut out, 8, Some(Duration::ZERO), None), Ok(0));
/// assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
/// assert_eq!(hep.wait(&mut out, 8, Some(Duration::from_secs(5)), None), Ok(1));
/// assert_eq!(out[0].data(), 7);
/// drop(reader);
/// unsafe { libc::close(fds[0]); libc::close(fds[1]); }
/// ```
#[derive(Clone)]
pub struct HostEpoll {
    epoll: Epoll,
    host: Host,
    bell: Arc<Bell>,
    /// Set by [`HostEpoll::retire`]: waits return at their next step.
    retired: Arc<AtomicBool>,
    /// The instance's own relay (kernel-epoll and io_uring drivers; see `relay`).
    relay: Option<Arc<InstanceRelay>>,
    /// Sleeps in the host of threads blocked on this instance that ended (see
    /// [`HostEpoll::host_wakeups`]).
    host_wakeups: Arc<AtomicU64>,
    /// Waits whose first harvest was put off into their sleep (see
    /// [`HostEpoll::folded_waits`]).
    folds: Arc<AtomicU64>,
}

impl std::fmt::Debug for HostEpoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostEpoll")
            .field("epoll", &self.epoll)
            .field("bell", &self.bell)
            .finish()
    }
}

impl HostEpoll {
    /// A new engine instance with its own doorbell.
    pub fn new(host: Host) -> Result<HostEpoll, Errno> {
        Ok(HostEpoll::with_bell(
            Epoll::new(),
            host,
            Arc::new(Bell::new()?),
        ))
    }

    /// Wrap an existing instance with a given bell (hooked on the instance's poll queue).
    pub fn with_bell(epoll: Epoll, host: Host, bell: Arc<Bell>) -> HostEpoll {
        if let Some(q) = epoll.file().ops().wait_queue() {
            q.add(bell.clone(), Exclusivity::NonExclusive);
        }
        let relay = InstanceRelay::new(&epoll, &host);
        HostEpoll {
            epoll,
            host,
            bell,
            retired: Arc::new(AtomicBool::new(false)),
            relay,
            host_wakeups: Arc::new(AtomicU64::new(0)),
            folds: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The embedder has handed the instance over to another implementation (the C ABI
    /// gives an instance that `fork` shares to the kernel's epoll): threads waiting on it
    /// are woken, and every wait returns 0 at its next step without harvesting, so the
    /// caller can check [`HostEpoll::is_retired`] and carry on elsewhere.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.bell.ring();
        self.epoll.wake_waiters();
    }

    /// Whether [`HostEpoll::retire`] was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// The engine instance (to add, modify and delete items).
    pub fn epoll(&self) -> &Epoll {
        &self.epoll
    }

    /// The driver.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The doorbell.
    pub fn bell(&self) -> &Arc<Bell> {
        &self.bell
    }

    /// How many times a thread blocked in a wait on this instance has woken in the host so
    /// far, whether for itself (its waker was called), to pump for others, or for nothing:
    /// a thread blocked on an idle instance should not be woken by other instances'
    /// activity (see `relay`).
    pub fn host_wakeups(&self) -> u64 {
        self.host_wakeups.load(Ordering::Relaxed)
    }

    /// Whether threads blocked on this instance watch its own host descriptors (a relay
    /// of the instance; see `relay`) rather than the whole host, as
    /// of the last sleep (`false` before any).
    pub fn relayed(&self) -> bool {
        self.relay
            .as_ref()
            .is_some_and(|r| r.likely_usable() && r.sleeps() > 0)
    }

    /// How many waits on this instance have put their first harvest off into their sleep
    /// so far: the ready list held only host descriptors watched for input (a server's
    /// level-triggered connection after its request was read), and the sleep watched them
    /// too, instead of asking `poll(2)` first (see `fold`).
    ///
    /// ```
    /// # use eventpoll::{EpollEvent, Events, Interest};
    /// # use eventpoll_host::{DriverKind, Host, HostEpoll};
    /// # use std::time::Duration;
    /// let host = Host::new(DriverKind::KernelEpoll).unwrap();
    /// let hep = HostEpoll::new(host.clone()).unwrap();
    /// let mut fds = [0; 2];
    /// // SAFETY: an array of two descriptors.
    /// assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
    /// // Opened for input only (a description watched for output is never folded).
    /// let f = host.open_for(fds[0], Events::IN).unwrap();
    /// hep.epoll().add(&f, Interest::READABLE, 7).unwrap();
    /// // SAFETY: one byte from a static buffer.
    /// assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
    /// let mut out = [EpollEvent::default(); 4];
    /// assert_eq!(hep.wait(&mut out, 4, Some(Duration::from_secs(1)), None), Ok(1));
    /// // Drained: the level-triggered item left on the ready list is watched by the sleep.
    /// let mut b = [0u8; 8];
    /// // SAFETY: a buffer of eight bytes.
    /// assert_eq!(unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 8) }, 1);
    /// assert_eq!(hep.wait(&mut out, 4, Some(Duration::from_millis(20)), None), Ok(0));
    /// assert_eq!(hep.folded_waits(), 1);
    /// # drop(f);
    /// # unsafe { libc::close(fds[0]); libc::close(fds[1]); }
    /// ```
    pub fn folded_waits(&self) -> u64 {
        self.folds.load(Ordering::Relaxed)
    }

    /// How many sleeps threads blocked on this instance have begun on its relay so far (0
    /// when it has none; see `relay`).
    pub fn relay_sleeps(&self) -> u64 {
        self.relay.as_ref().map_or(0, |r| r.sleeps())
    }

    /// How many sleeps on this instance's relay had members made quiet because the sleep
    /// probed them itself (see `relay`, "Probed members"): 0 without a relay.
    ///
    /// ```
    /// use eventpoll_host::{DriverKind, Host, HostEpoll};
    ///
    /// let host = Host::new(DriverKind::IoUring).or_else(|_| Host::new(DriverKind::Poll)).unwrap();
    /// let hep = HostEpoll::new(host).unwrap();
    /// assert_eq!(hep.relay_quiet_sleeps(), 0);
    /// ```
    pub fn relay_quiet_sleeps(&self) -> u64 {
        self.relay.as_ref().map_or(0, |r| r.quiet_sleeps())
    }

    /// How many sleeps on this instance's relay took over host polls another thread armed
    /// first (the io_uring driver; see `relay`): 0 until one thread alone has slept on the
    /// instance a few times in a row while another thread's polls kept it off its relay.
    ///
    /// ```
    /// use eventpoll_host::{DriverKind, Host, HostEpoll};
    ///
    /// let host = Host::new(DriverKind::IoUring).or_else(|_| Host::new(DriverKind::Poll)).unwrap();
    /// let hep = HostEpoll::new(host).unwrap();
    /// assert_eq!(hep.relay_adoptions(), 0);
    /// ```
    pub fn relay_adoptions(&self) -> u64 {
        self.relay.as_ref().map_or(0, |r| r.adoptions())
    }

    /// Take the lead of the host's blocked threads now, for a wait that may block and is
    /// about to start (see `waiter`, "Who watches the host"): an embedder that makes
    /// system calls of its own before [`HostEpoll::wait_guarded`] calls this first, so
    /// that host activity those calls deliver (io_uring task work runs at every system
    /// call) does not wake a follower. [`HostEpoll::wait_guarded`] gives the lead up when
    /// it returns ([`HostEpoll::wait_guarded_claimed`] leaves that to the caller); call
    /// [`HostEpoll::release_lead`] if no wait follows. Call under the embedder's guard.
    /// A thread that will sleep on its instance's relay takes no lead (as in the wait).
    pub fn claim_lead(&self) {
        if self.wants_lead() {
            self.host.watch().claim(&**self.host.driver());
        }
    }

    /// Whether a thread about to enter a wait that may block takes the lead: unless it
    /// will sleep on the instance's relay, which needs none (see `relay`) — one that finds
    /// the relay unusable after all takes it at its sleep.
    fn wants_lead(&self) -> bool {
        !self.host.watch().note_waiter()
            || self
                .relay
                .as_ref()
                .is_none_or(|r| r.wants_lead(&self.epoll))
    }

    /// Give up the lead taken by [`HostEpoll::claim_lead`] when no wait follows.
    pub fn release_lead(&self) {
        self.host.watch().release(&**self.host.driver());
    }

    /// Harvest once without blocking (after pumping the driver). When other threads sleep
    /// on this instance and it is still ready afterwards (level-triggered items went back
    /// on the ready list), ring for them: on Linux the harvester of a level-triggered item
    /// wakes the next waiter.
    pub fn poll_once<S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
    ) -> Result<usize, Errno> {
        self.harvest(out, maxevents, Pump::Settled)
    }

    /// [`HostEpoll::poll_once`] with the pump `pump`.
    fn harvest<S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        pump: Pump,
    ) -> Result<usize, Errno> {
        // One epoch: masks the pump reports are used by this harvest's re-poll (with
        // `Pump::Done`, the caller's epoch: the one of its pump).
        let _epoch = (!matches!(pump, Pump::Done)).then(crate::host_fd::fresh::Epoch::begin);
        match pump {
            Pump::Settled => self.host.pump(),
            Pump::BeforeSleep => self.host.pump_before_sleep(),
            Pump::Done => 0,
        };
        let n = self
            .epoll
            .wait_into_sink(out, maxevents, Some(Duration::ZERO))?;
        if n > 0 && self.bell.sleepers.load(Ordering::SeqCst) > 0 {
            self.bell.settle(|| !self.epoll.file().poll().is_empty());
        }
        Ok(n)
    }

    /// `epoll_pwait2`'s loop: up to `maxevents` events into `out` (an event that does not
    /// fit is `EFAULT` if nothing was reported, and stays ready); `timeout` `None` waits
    /// without limit; `sigmask` (a kernel signal set) is applied while blocked; a signal
    /// handler that runs while blocked gives `EINTR`.
    pub fn wait(
        &self,
        out: &mut [EpollEvent],
        maxevents: usize,
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
    ) -> Result<usize, Errno> {
        self.wait_guarded(out, maxevents, timeout, sigmask, || ())
    }

    /// [`HostEpoll::wait`], calling `enter` before each non-blocking step and dropping what
    /// it returns before blocking (an embedder's guard against `fork` in mid-step).
    ///
    /// A thread that must block is queued as a blocked thread of the engine instance (a
    /// [`ThreadWaker`](crate::ThreadWaker), at the head, as `ep_poll` queues it) and sleeps
    /// in the host on the driver and its own eventfd. Host activity wakes it to pump; only
    /// its waker's call (the engine chose it) makes it harvest — otherwise it sleeps again,
    /// still in its place in the queue. So of several threads blocked on one instance a
    /// wakeup reaches the newest only, and an `EXCLUSIVE` wakeup stops at the first
    /// instance with a blocked thread, as on Linux.
    ///
    /// Of the threads in waits that may block, one at a time watches the driver (see
    /// `waiter`, "Who watches the host"): the others sleep on their eventfd only, so host
    /// activity wakes them only when it is for them.
    pub fn wait_guarded<G, S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
        enter: impl Fn() -> G,
    ) -> Result<usize, Errno> {
        if timeout == Some(Duration::ZERO) {
            return self.wait_steps(out, maxevents, timeout, sigmask, &enter);
        }
        {
            let _g = enter();
            self.claim_lead();
        }
        // Given up however the wait ends (also by unwinding: a lead kept by a thread that
        // never waits again would leave the followers unwatched).
        struct Release<'a, G, F: Fn() -> G>(&'a Host, &'a F);
        impl<G, F: Fn() -> G> Drop for Release<'_, G, F> {
            fn drop(&mut self) {
                let _g = (self.1)();
                self.0.watch().release(&**self.0.driver());
            }
        }
        let _release = Release(&self.host, &enter);
        self.wait_guarded_claimed(out, maxevents, timeout, sigmask, &enter)
    }

    /// [`HostEpoll::wait_guarded`] for a caller that has called
    /// [`HostEpoll::claim_lead`] itself (before checks of its own, as the C ABI does
    /// before its system calls) and calls [`HostEpoll::release_lead`] after it, however it
    /// ends: the wait neither claims nor gives up the lead again (each would be a second
    /// look at the host's leader a wait).
    ///
    /// ```
    /// use eventpoll::{EpollEvent, Events};
    /// use eventpoll_host::{DriverKind, Host, HostEpoll};
    /// use std::time::Duration;
    ///
    /// let host = Host::new(DriverKind::IoUring).or_else(|_| Host::new(DriverKind::Poll)).unwrap();
    /// let hep = HostEpoll::new(host).unwrap();
    /// hep.claim_lead();
    /// let mut out = [EpollEvent::new(Events::empty(), 0); 4];
    /// let n = hep.wait_guarded_claimed(&mut out[..], 4, Some(Duration::from_millis(1)), None, || ());
    /// hep.release_lead();
    /// assert_eq!(n, Ok(0));
    /// ```
    pub fn wait_guarded_claimed<G, S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
        enter: impl Fn() -> G,
    ) -> Result<usize, Errno> {
        self.wait_steps(out, maxevents, timeout, sigmask, &enter)
    }

    fn wait_steps<G, S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
        enter: &impl Fn() -> G,
    ) -> Result<usize, Errno> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if timeout == Some(Duration::ZERO) {
            // A wait that returns what this finds must see the deliveries in flight in
            // other threads.
            let _g = enter();
            if self.is_retired() {
                return Ok(0);
            }
            return self.harvest(out, maxevents, Pump::Settled);
        }
        // One that would sleep is woken by them. It takes its waker first: the look at the
        // ready list that decides whether its first harvest is put off into its sleep (see
        // `fold`) queues it at once.
        let waker = match self.host.take_waker() {
            Ok(w) => w,
            // No eventfd to be had (descriptor limit): wait on the bell, as every sleeper
            // of the instance does then (each wakeup wakes them all); its first poll is
            // the first harvest.
            Err(_) => return self.wait_on_bell(out, maxevents, deadline, sigmask, enter),
        };
        let r = self.wait_with_waker(&waker, out, maxevents, (deadline, sigmask), enter);
        self.host.give_back_waker(waker);
        r
    }

    /// [`HostEpoll::wait_steps`] for a blocking wait with its waker: the first harvest (or
    /// the queueing over the ready items that puts it off), then the sleeps.
    fn wait_with_waker<G, S: EventSink + ?Sized>(
        &self,
        waker: &crate::waiter::PooledWaker,
        out: &mut S,
        maxevents: usize,
        (deadline, sigmask): (Option<Instant>, Option<*const libc::sigset_t>),
        enter: &impl Fn() -> G,
    ) -> Result<usize, Errno> {
        let entry = &waker.entry;
        // The ready items a folded first harvest watches while asleep (see `fold`).
        let mut over = fold::Over::take();
        // The count of scans when the first step queued the thread, if it did.
        let queued = {
            let _g = enter();
            if self.is_retired() {
                return Ok(0);
            }
            let _epoch = crate::host_fd::fresh::Epoch::begin();
            self.host.pump_before_sleep();
            // Off every queue here: ready for the sleep (see `ThreadWaker::arm`).
            waker.arm();
            let queued = if self.host.driver().sleep_probes() {
                self.epoll
                    .queue_waiter_over(Some(entry), fold::MAX, &mut fold::accept, &mut over)
            } else {
                None
            };
            if queued.is_none() {
                let n = self.harvest(out, maxevents, Pump::Done)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            queued
        };
        if let Some(r) = &self.relay {
            // Made once (without them the thread sleeps as a leader or follower), under
            // the guard: a `fork` never finds the relay's lock held.
            let _g = enter();
            r.ensure_fds(&self.host);
        }
        // Signals stay blocked but while asleep in the host (the caller's mask, or the
        // thread's, applied atomically there), as `ep_poll` checks for a signal before each
        // sleep: one that comes while this thread pumps between two sleeps ends the next.
        let old_mask = sys::block_signals();
        let sleep_mask = sigmask.or(old_mask
            .as_ref()
            .map(|m| (m as *const u64).cast::<libc::sigset_t>()));
        let r = self.wait_as_waiter(
            waker,
            entry,
            out,
            maxevents,
            (deadline, sleep_mask),
            enter,
            (queued, over),
        );
        if let Some(m) = old_mask {
            sys::set_signal_mask(m);
        }
        r
    }

    /// The blocking part of [`HostEpoll::wait_guarded`] for a thread with a waker (Linux's
    /// `ep_poll` loop): queue unless events are available, sleep until the waker is called
    /// (or the deadline, a signal, a retire), leave the queue, harvest; again if nothing.
    /// `first`: the count of scans if the first step queued the thread already, over the
    /// ready items in the list given (none: queued on an empty list).
    #[allow(clippy::too_many_arguments)]
    fn wait_as_waiter<G, S: EventSink + ?Sized>(
        &self,
        waker: &ThreadWaker,
        entry: &Arc<eventpoll::WaiterHandle>,
        out: &mut S,
        maxevents: usize,
        (deadline, sigmask): (Option<Instant>, Option<*const libc::sigset_t>),
        enter: &impl Fn() -> G,
        (mut first, mut over): (Option<u64>, fold::Over),
    ) -> Result<usize, Errno> {
        loop {
            // The count of scans when queued over items (see `fold`).
            let mut scans = 0;
            let queued = match first.take() {
                Some(s) => {
                    scans = s;
                    true
                }
                None => {
                    waker.arm();
                    let _g = enter();
                    if self.is_retired() {
                        return Ok(0);
                    }
                    self.epoll.queue_waiter(entry)
                }
            };
            let mut folded = fold::Folded::new(&over, scans);
            if folded.pending() {
                self.folds.fetch_add(1, Ordering::Relaxed);
            }
            // The epoch of the pump after the last sleep, if there was one (see `Pump::Done`).
            let mut pumped = None;
            if queued {
                let slept =
                    self.sleep_as_waiter(waker, deadline, sigmask, enter, &mut pumped, &mut folded);
                // Once off the queue its callback is not running: the waker can be reused.
                let still_queued = {
                    let _g = enter();
                    self.epoll.dequeue_waiter(entry)
                };
                match slept {
                    Err(e) => return Err(e),
                    Ok(Slept::Retired) => return Ok(0),
                    // Still queued means nobody woke us: nothing to take — unless the
                    // first harvest was put off into this sleep and no other scan stood
                    // for it (`fold`): it is made now.
                    Ok(Slept::TimedOut)
                        if still_queued
                            && (!folded.pending() || self.epoll.scans() != folded.scans) =>
                    {
                        return Ok(0)
                    }
                    Ok(_) => {}
                }
            }
            let n = {
                let _g = enter();
                if self.is_retired() {
                    return Ok(0);
                }
                let pump = if pumped.is_some() {
                    Pump::Done
                } else {
                    Pump::BeforeSleep
                };
                self.harvest(out, maxevents, pump)?
            };
            drop(pumped);
            // Queued over these no more (their harvest is over).
            over.clear();
            if n > 0 {
                return Ok(n);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // The wait ends with what it finds now: deliveries in flight included.
                let _g = enter();
                if self.is_retired() {
                    return Ok(0);
                }
                return self.poll_once(out, maxevents);
            }
        }
    }

    /// Sleep in the host until `waker` is called: host activity in between is pumped (it
    /// may call this waker, another thread's, or none) and the sleep goes on. Only the
    /// leader of the host's blocked threads sleeps on the driver and pumps; the others
    /// sleep on their eventfd and the relay (see `waiter`, "Who watches the host").
    fn sleep_as_waiter<G>(
        &self,
        waker: &ThreadWaker,
        deadline: Option<Instant>,
        sigmask: Option<*const libc::sigset_t>,
        enter: &impl Fn() -> G,
        pumped: &mut Option<crate::host_fd::fresh::Epoch>,
        folded: &mut fold::Folded<'_>,
    ) -> Result<Slept, Errno> {
        // The last relay sleep could not wait out a wakeup in progress: watch the driver
        // for one sleep (see `relay`).
        let mut watch_driver = false;
        loop {
            waker.settle();
            // Marked asleep from here to the end of the sleep (see `ThreadWaker::asleep`).
            let (woken, asleep) = waker.asleep();
            if woken {
                return Ok(Slept::Woken);
            }
            if self.is_retired() {
                return Ok(Slept::Retired);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(Slept::TimedOut);
                    }
                    Some(d - now)
                }
            };
            let role = {
                let _g = enter();
                let watch = self.host.watch();
                // A thread alone needs no relay (see `Watch::note_waiter`).
                let relay = match &self.relay {
                    Some(r) if watch.several_waiters() => {
                        r.prepare(&self.epoll, folded.probed_hosts(&mut [0; fold::MAX]))
                    }
                    _ => None,
                };
                if relay.is_some() {
                    // It led while it was alone (or before its relay was usable): the
                    // lead goes, as at the end of a wait (a follower's relay stands in).
                    watch.release(&**self.host.driver());
                }
                match relay {
                    Some(fd) => Sleep::Relay(fd),
                    None => Sleep::Watch(watch.settle(waker, &**self.host.driver())),
                }
            };
            folded.mark();
            let probes = folded.probes();
            // Whether the `ppoll` found its last descriptor (the relay) readable: yes, unless
            // it tells.
            let mut relay_ready = true;
            let r = match role {
                Sleep::Watch(Role::Leader) => {
                    self.host
                        .driver()
                        .block(&[waker.fd()], probes, remaining, sigmask)
                }
                Sleep::Watch(Role::Follower(relay)) => poll_fds(
                    &[waker.fd(), relay],
                    probes,
                    remaining,
                    sigmask,
                    &mut relay_ready,
                ),
                Sleep::Relay(relay) if watch_driver => {
                    let mut fds = Vec::with_capacity(3);
                    self.host.driver().notify_fds(&mut fds);
                    let mut all: Vec<i32> = fds.iter().map(|p| p.fd).collect();
                    all.extend([waker.fd(), relay]);
                    poll_fds(&all, probes, remaining, sigmask, &mut relay_ready)
                }
                Sleep::Relay(relay) => poll_fds(
                    &[waker.fd(), relay],
                    probes,
                    remaining,
                    sigmask,
                    &mut relay_ready,
                ),
            };
            // The probes' state at the end of the sleep, if the sleep told it.
            let probed = matches!(r, Ok(true)) && folded.pending();
            drop(asleep);
            self.host_wakeups.fetch_add(1, Ordering::Relaxed);
            {
                let _g = enter();
                // The pump below stands for the harvest's if it wakes this thread (a
                // follower that probed pumps too): a new epoch for its masks and the
                // probes' (the last sleep's ends first).
                *pumped = None;
                let pumps = probed || matches!(role, Sleep::Relay(_) | Sleep::Watch(Role::Leader));
                if pumps {
                    *pumped = Some(crate::host_fd::fresh::Epoch::begin());
                    if probed {
                        folded.record();
                    }
                }
                match role {
                    Sleep::Relay(_) => {
                        let relay = self.relay.as_ref().expect("a relay sleep has a relay");
                        watch_driver =
                            relay.after_sleep(&self.host, &|| waker.is_woken(), relay_ready);
                    }
                    Sleep::Watch(role) => {
                        if pumps {
                            self.host.pump_before_sleep();
                        }
                        self.host
                            .watch()
                            .woke(role, waker.is_woken(), &**self.host.driver());
                    }
                }
            }
            // A probe found ready, or the sleep did not tell: the harvest put off is due
            // (the items are on the list; a wakeup is not coming for one still ready) —
            // unless another scan began meanwhile, which stood for it: the thread is then
            // one queued after its scan, woken only by its waker, and stops watching.
            if fold::due(&r, folded.probes()) {
                if self.epoll.scans() == folded.scans {
                    return Ok(Slept::Woken);
                }
                folded.give_up();
            }
            if let Err(e) = r {
                // Woken and interrupted at once: the events first, as `ep_poll` does.
                if waker.is_woken() {
                    return Ok(Slept::Woken);
                }
                return Err(e);
            }
        }
    }

    /// The blocking part of [`HostEpoll::wait_guarded`] without a waker: counted as a
    /// sleeper of the bell, which every callback on the instance's poll queue rings.
    fn wait_on_bell<G, S: EventSink + ?Sized>(
        &self,
        out: &mut S,
        maxevents: usize,
        deadline: Option<Instant>,
        sigmask: Option<*const libc::sigset_t>,
        enter: impl Fn() -> G,
    ) -> Result<usize, Errno> {
        loop {
            let remaining = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(0);
                    }
                    Some(d - now)
                }
            };
            // Announce the sleeper before the last check: a callback after this point rings.
            self.bell.sleepers.fetch_add(1, Ordering::SeqCst);
            let n = {
                let _g = enter();
                if self.is_retired() {
                    self.bell.sleepers.fetch_sub(1, Ordering::SeqCst);
                    return Ok(0);
                }
                self.poll_once(out, maxevents)
            };
            if n != Ok(0) {
                self.bell.sleepers.fetch_sub(1, Ordering::SeqCst);
                return n;
            }
            let r = self
                .host
                .driver()
                .block(&[self.bell.fd], &mut [], remaining, sigmask)
                .map(drop);
            self.bell.sleepers.fetch_sub(1, Ordering::SeqCst);
            let _g = enter();
            if self.is_retired() {
                // The bell stays rung for the other sleepers; a signal still interrupts.
                return r.map(|_| 0);
            }
            self.bell.clear();
            r?;
            let n = self.poll_once(out, maxevents)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

/// How a harvest pumps the driver first.
#[derive(Clone, Copy)]
enum Pump {
    /// [`crate::Host::pump`]: what it returns includes the deliveries in flight in other
    /// threads (a wait that returns what it finds, even nothing).
    Settled,
    /// [`crate::Host::pump_before_sleep`]: for a wait that sleeps if it finds nothing.
    BeforeSleep,
    /// None: a woken waiter's pump after its sleep (under the current epoch) stands for
    /// the harvest's. The kernel's harvest takes the ready list as it is when the woken
    /// thread runs; that pump ran after the wakeup, inside the call, as the harvest does.
    Done,
}

/// What a blocked thread sleeps on.
#[derive(Clone, Copy)]
enum Sleep {
    /// As the leader or a follower of the host's blocked threads (see `waiter`).
    Watch(Role),
    /// On its eventfd and its instance's relay (see `relay`).
    Relay(i32),
}

/// `ppoll(2)` for input on `fds` and for their own bits on `probes`, whose `revents` it
/// fills (`Ok(true)`, as [`crate::driver::Driver::block`]); `last_ready` says whether the
/// last of `fds` was found readable (left as it is on an error).
fn poll_fds(
    fds: &[i32],
    probes: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
    last_ready: &mut bool,
) -> Result<bool, Errno> {
    // A sleep's descriptors (at most a few) and probes (at most `fold::MAX`): on the stack.
    const ON_STACK: usize = 8 + fold::MAX;
    let idle = libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    };
    let n = fds.len() + probes.len();
    let mut stack = [idle; ON_STACK];
    let mut heap = Vec::new();
    let p = if n <= ON_STACK {
        &mut stack[..n]
    } else {
        heap.resize(n, idle);
        &mut heap[..]
    };
    for (p, &fd) in p.iter_mut().zip(fds) {
        *p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
    }
    p[fds.len()..].copy_from_slice(probes);
    sys::ppoll(p, timeout.map(sys::timespec), sigmask)?;
    probes.copy_from_slice(&p[fds.len()..]);
    if let Some(last) = fds.len().checked_sub(1) {
        *last_ready = p[last].revents != 0;
    }
    Ok(true)
}

/// A wait's first harvest put off into its sleep ([`Epoll::queue_waiter_over`]).
///
/// A level-triggered item stays on the ready list after it is reported, and the next wait
/// re-polls it: with a host descriptor, a `poll(2)` — and for a server that drained the
/// descriptor, the usual case, one that finds nothing before the wait sleeps (two system
/// calls where Linux makes one). When everything on the ready list is a host descriptor
/// watched for input only, the wait instead queues its thread over those items, without
/// harvesting, and sleeps watching their descriptors too: one still ready ends the sleep at
/// once, the state the sleep ends with is their mask for the harvest that follows (in the
/// epoch of the pump after the sleep, as [`crate::host_fd::fresh`] masks are).
///
/// Against Linux. While the thread sleeps the items stay on the list, each marked as if
/// the scan had taken it off (the engine's `Ready::provisional`): a wakeup, `ADD` or `MOD`
/// that would link one links it afresh at the tail and wakes a blocked thread, as after
/// Linux's scan; a `MOD` to what the sleep does not watch (output) wakes it so. An item
/// still ready when the sleep begins ends it at once: the harvest is then Linux's scan,
/// made microseconds late. The masks the harvest takes are the state at the end of the
/// sleep, valid only while the description had no wakeup with new bits since
/// ([`crate::host_fd::fresh`], which describes the window: no wider). Another
/// thread's harvest (or a poll of the instance) meanwhile scans the marked items where
/// Linux's would find them gone: one that became ready before the host's report of it
/// was pumped is reported in its old place rather than after the items linked since. That
/// scan stands for the sleeper's: from then on it is a thread queued after its scan,
/// harvesting only when its waker is called (a probe that finds a descriptor ready then
/// does not make it harvest, or a wakeup that went to the thread at the head of the queue
/// could be taken from it), and it watches the descriptors no more. A wait whose sleep
/// times out makes its harvest all the same, unless such a scan stood for it (Linux
/// harvests before it looks at the timeout).
mod fold {
    use crate::host_fd::{fresh, HostFd};
    use eventpoll::{Events, FileOps};
    use std::cell::Cell;
    use std::sync::Arc;

    /// At most this many items are watched (each a `pollfd` of the sleep).
    pub(super) const MAX: usize = 16;

    /// The input bits a probe asks for: every bit an item of a description watched for
    /// input only can be interested in, so its mask serves any such item.
    const BITS: i16 = libc::POLLIN
        | libc::POLLPRI
        | libc::POLLRDNORM
        | libc::POLLRDBAND
        | libc::EPOLLMSG as i16
        | libc::POLLRDHUP;

    fn host(ops: &dyn FileOps) -> Option<&HostFd> {
        let any: &dyn std::any::Any = ops;
        any.downcast_ref::<HostFd>()
    }

    /// Whether a ready item can be watched by the sleep: a host descriptor whose items
    /// all want input only, and that had no wakeup since it was last polled. (One that
    /// had is most likely ready: the sleep would end at once, and a wait that sleeps costs
    /// two more system calls than one that harvests, for its signal mask.)
    pub(super) fn accept(ops: &dyn FileOps, interest: Events) -> bool {
        // The checks that refuse most often first: a busy list's first item was woken.
        !interest.intersects(HostFd::OUT_BITS)
            && host(ops)
                .is_some_and(|h| !h.woken_since_poll() && !h.watches_out() && h.is_pollable())
    }

    std::thread_local! {
        /// The calling thread's [`Over`] list between its waits: kept with its capacity.
        static OVER: Cell<Vec<Arc<dyn FileOps>>> = const { Cell::new(Vec::new()) };
    }

    /// The items a blocking wait was queued over ([`eventpoll::Epoll::queue_waiter_over`]
    /// fills it), in a list the thread keeps between its waits, so that a wait allocates
    /// none. A wait nested in another on the thread (a signal handler's) takes an empty one;
    /// the list is emptied, its references dropped, before it goes back.
    pub(super) struct Over(Vec<Arc<dyn FileOps>>);

    impl Over {
        pub(super) fn take() -> Over {
            Over(OVER.try_with(Cell::take).unwrap_or_default())
        }
    }

    impl std::ops::Deref for Over {
        type Target = Vec<Arc<dyn FileOps>>;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }

    impl std::ops::DerefMut for Over {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.0
        }
    }

    impl Drop for Over {
        fn drop(&mut self) {
            self.0.clear();
            let list = std::mem::take(&mut self.0);
            // At the thread's exit the list may be gone: this one is then freed.
            let _ = OVER.try_with(|c| {
                let kept = c.take();
                c.set(if kept.capacity() >= list.capacity() {
                    kept
                } else {
                    list
                });
            });
        }
    }

    /// A sleep's watch of the items it was queued over: their objects, descriptors and
    /// wakeup counts in arrays of [`MAX`] (a sleep builds it and reads it a few times: no
    /// collection to grow, no look-up of the object's type after the first).
    pub(super) struct Folded<'a> {
        /// The items' objects, host descriptors all ([`accept`]); the first `len` are used.
        hosts: [Option<&'a HostFd>; MAX],
        /// Their descriptors, asked for input.
        probes: [libc::pollfd; MAX],
        /// Their wakeup counts, taken right before the last sleep.
        marks: [u64; MAX],
        /// How many are watched (0: nothing put off, or given up).
        len: usize,
        /// The count of scans when the thread was queued.
        pub(super) scans: u64,
    }

    impl<'a> Folded<'a> {
        /// The watch of `over` for a thread queued when the scan count was `scans`.
        pub(super) fn new(over: &'a [Arc<dyn FileOps>], scans: u64) -> Folded<'a> {
            let mut f = Folded {
                hosts: [None; MAX],
                probes: [libc::pollfd {
                    fd: -1,
                    events: 0,
                    revents: 0,
                }; MAX],
                marks: [0; MAX],
                len: 0,
                scans,
            };
            for h in over.iter().filter_map(|o| host(&**o)).take(MAX) {
                f.hosts[f.len] = Some(h);
                f.probes[f.len] = libc::pollfd {
                    fd: h.fd(),
                    events: BITS,
                    revents: 0,
                };
                f.len += 1;
            }
            f
        }

        /// The probes of the descriptors watched (the sleep fills their `revents`).
        pub(super) fn probes(&mut self) -> &mut [libc::pollfd] {
            &mut self.probes[..self.len]
        }

        /// The probed descriptors' objects, by address, into `buf` (none once given up):
        /// the sleep watches every bit their items can want (see [`accept`]), so a relay
        /// need not (`relay`, "Probed members").
        pub(super) fn probed_hosts<'b>(&self, buf: &'b mut [usize; MAX]) -> &'b [usize] {
            for (a, h) in buf.iter_mut().zip(&self.hosts[..self.len]) {
                *a = h.map_or(0, |h| h as *const HostFd as usize);
            }
            &buf[..self.len]
        }

        /// Whether the harvest put off is still to be made.
        pub(super) fn pending(&self) -> bool {
            self.len != 0
        }

        /// Another scan stood for the one put off: watch the items no more.
        pub(super) fn give_up(&mut self) {
            self.len = 0;
        }

        /// Take the wakeup counts right before a sleep.
        pub(super) fn mark(&mut self) {
            for (m, h) in self.marks.iter_mut().zip(&self.hosts[..self.len]) {
                *m = h.map_or(0, HostFd::wake_count);
            }
        }

        /// Give each probed description the mask its probe ended with, read after the
        /// count [`Folded::mark`] took, for the current epoch (see `host_fd::fresh`).
        pub(super) fn record(&self) {
            let n = self.len;
            for ((h, &count), p) in self.hosts[..n].iter().zip(&self.marks).zip(&self.probes) {
                if let Some(h) = h {
                    fresh::set(h, count, p.revents as u16 as u32);
                }
            }
        }
    }

    /// Whether the harvest put off is due after a sleep that gave `r`: a probe found its
    /// descriptor ready, or the sleep did not tell their state.
    pub(super) fn due(r: &Result<bool, eventpoll::Errno>, probes: &[libc::pollfd]) -> bool {
        match r {
            Ok(true) => probes.iter().any(|p| p.revents != 0),
            Ok(false) => !probes.is_empty(),
            Err(_) => false,
        }
    }
}

/// How a waiter's sleep ended.
enum Slept {
    Woken,
    TimedOut,
    Retired,
}
