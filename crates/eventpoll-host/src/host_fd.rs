//! [`HostFd`]: a host descriptor as an engine object.
//!
//! Its [`FileOps::poll`] asks the host with `poll(2)` (timeout 0); a harvest re-polls every
//! host item of a window with one `poll(2)` ([`FileOps::poll_batch`]). Its [`WaitQueue`] is
//! woken by the [driver](crate::Host) with the host's event bits whenever the host reports
//! activity on the descriptor — that is the only way readiness enters the engine; every
//! epoll semantic (LT/ET/ONESHOT/EXCLUSIVE, merging, ordering, nesting) is the engine's.

use crate::driver::Driver;
use crate::sys;
use eventpoll::{Events, FileOps, WaitQueue};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// [`HostFd`]'s `epoll_kind`: not known yet.
const EPOLL_UNKNOWN: u8 = 0;
/// [`HostFd`]'s `epoll_kind`: a kernel epoll instance.
const EPOLL_YES: u8 = 1;
/// [`HostFd`]'s `epoll_kind`: anything else.
const EPOLL_NO: u8 = 2;

/// A host descriptor watched through a [driver](crate::Host). See the module documentation.
///
/// Create one with [`crate::Host::open`] or [`crate::Host::open_owned`].
pub struct HostFd {
    /// The descriptor number polled (an embedder that tracks `dup`s may move it to another
    /// number of the same open file description with [`HostFd::set_fd`]).
    fd: AtomicI32,
    /// The number the driver registered the descriptor under (kernel epoll key).
    pub(crate) reg_fd: AtomicI32,
    /// The driver's token for this object (slab index and generation).
    pub(crate) token: AtomicU64,
    /// The mask the harvest in progress may take without `poll(2)` (see [`fresh`]).
    pub(crate) fresh: fresh::Slot,
    /// The last mask anyone observed (the poll driver's edge detection).
    pub(crate) last: AtomicU32,
    /// Whether output readiness (`OUT`, `WRNORM`, `WRBAND`) is watched too (see
    /// [`HostFd::watch`]).
    pub(crate) out: AtomicBool,
    /// The input bits the driver asks the host for (see [`HostFd::set_interest`]).
    pub(crate) input: AtomicU32,
    /// State bits as the driver last saw them (they wake every item only when new), per
    /// direction, input in the low half, output in the high half: the kernel driver's
    /// `ERR`/`HUP` per private epoll, the io_uring driver's `ERR`/`HUP`/`RDHUP` per poll.
    pub(crate) errhup: AtomicU32,
    /// Device and inode numbers of the file, recorded at registration by drivers that
    /// check identity with them (the io_uring driver).
    pub(crate) identity: std::sync::OnceLock<(u64, u64)>,
    /// Whether the file is a socket, recorded at registration by drivers that need it
    /// (the io_uring driver: a socket's wakeup keys are known, see `driver::uring`; both
    /// Linux drivers: an input report of a socket that has hung up is key-less).
    pub(crate) socket: AtomicBool,
    /// Whether the file is a kernel epoll instance ([`EPOLL_UNKNOWN`], [`EPOLL_YES`],
    /// [`EPOLL_NO`]): the registration's `fstat` rules it out for every file but the
    /// kernel's anonymous-inode ones, for which the first ADD asks (see
    /// [`FileOps::foreign_epoll_depth`]).
    epoll_kind: AtomicU8,
    /// Registered but not armed (the io_uring driver, in a child after `fork`, arms only
    /// what is watched, and [`crate::Host::open_unwatched`] arms nothing; the rest is
    /// armed by [`HostFd::watch`] / [`HostFd::set_interest`],
    /// which an embedder calls before adding an item — one that adds items in a `fork`
    /// child without calling either gets no wakeups for such a descriptor).
    pub(crate) unarmed: AtomicBool,
    /// Per direction (input, output): the thread whose poll watches the file (the io_uring
    /// driver: the kernel delivers a poll's wakeups through the thread that submitted it,
    /// so when that thread exits its polls are moved to a live one; and a per-instance
    /// relay is used only by a thread that armed every poll of its instance, see `relay`).
    /// Recorded before the poll is submitted; 0: none, or unknown.
    pub(crate) armer: [AtomicI32; 2],
    /// How many times a thread took the descriptor's polls over from another one (the
    /// io_uring driver's `adopt`, for a relay): capped, so that two threads that each
    /// want them cannot pass them back and forth at every wait.
    pub(crate) adoptions: AtomicU8,
    /// Per direction (input, output): the file's mask when its polls were moved off an
    /// exiting thread, with bit 31 set (0: not moved). The io_uring driver counts the
    /// arming report of the new poll as a wakeup only for bits not in that mask.
    pub(crate) moved: [AtomicU32; 2],
    /// The file's activity level ([`crate::sys::activity_level`]) when its polls were
    /// moved, or when a wakeup of the old polls was delivered after that (`u64::MAX`:
    /// unknown). The io_uring driver also counts the new poll's arming report as a wakeup
    /// when the level moved since: a wakeup between the old polls' end and the new poll's
    /// arming, which changed no bit (a write to an eventfd or pipe that was readable).
    pub(crate) moved_level: AtomicU64,
    /// The mask the driver learnt while arming the descriptor, for the `epoll_ctl` in
    /// progress on one thread (`ctl epoch << 16 | mask`, 0: none; see [`answer`]).
    pub(crate) answer: AtomicU64,
    /// Wakeups the drivers delivered (see [`HostFd::wakeups`]).
    wakes: AtomicU64,
    /// The bits of the last wakeup the drivers delivered (see [`fresh`]).
    last_bits: AtomicU32,
    /// The wakeup count when the descriptor was last polled, and the mask found then (see
    /// [`HostFd::woken_since_poll`]).
    polled: AtomicU64,
    polled_mask: AtomicU32,
    queue: WaitQueue,
    pollable: bool,
    owned: bool,
    pub(crate) driver: Arc<dyn Driver>,
}

impl std::fmt::Debug for HostFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostFd")
            .field("fd", &self.fd())
            .field("pollable", &self.pollable)
            .finish()
    }
}

impl HostFd {
    pub(crate) fn new(fd: i32, owned: bool, pollable: bool, driver: Arc<dyn Driver>) -> HostFd {
        HostFd {
            fd: AtomicI32::new(fd),
            reg_fd: AtomicI32::new(fd),
            token: AtomicU64::new(u64::MAX),
            fresh: fresh::Slot::default(),
            last: AtomicU32::new(0),
            out: AtomicBool::new(true),
            input: AtomicU32::new(Self::IN_BITS.bits()),
            errhup: AtomicU32::new(0),
            identity: std::sync::OnceLock::new(),
            socket: AtomicBool::new(false),
            epoll_kind: AtomicU8::new(EPOLL_UNKNOWN),
            unarmed: AtomicBool::new(false),
            armer: [AtomicI32::new(0), AtomicI32::new(0)],
            adoptions: AtomicU8::new(0),
            moved: [AtomicU32::new(0), AtomicU32::new(0)],
            moved_level: AtomicU64::new(u64::MAX),
            answer: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            polled: AtomicU64::new(0),
            polled_mask: AtomicU32::new(0),
            last_bits: AtomicU32::new(0),
            queue: WaitQueue::new(),
            pollable,
            owned,
            driver,
        }
    }

    /// The descriptor number this object polls.
    pub fn fd(&self) -> i32 {
        self.fd.load(Ordering::Acquire)
    }

    /// Poll through another descriptor number of the same open file description: call it
    /// *before* closing the number this object used (the driver moves its registration to
    /// the new number while the old one still names the file).
    pub fn set_fd(&self, fd: i32) {
        let old = self.fd.swap(fd, Ordering::AcqRel);
        if self.pollable && old != fd {
            self.driver.rebind(self, old, fd);
        }
    }

    /// How many wakeups the driver has delivered to this descriptor's items so far: two
    /// threads that report it with the same count were woken by one wakeup (the C ABI's
    /// `herd` check).
    pub fn wakeups(&self) -> u64 {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Record the state bits `state` a driver's report of direction `class` (0 input, 1
    /// output) found (see `errhup`); returns those of the previous report of that
    /// direction. Pumps of several threads may report at once (the kernel-epoll driver):
    /// a compare-and-swap, made only when the bits changed — most reports find them as
    /// they were, and cost one load.
    pub(crate) fn swap_state(&self, class: usize, state: u32) -> u32 {
        let shift = 16 * class as u32;
        let mask = 0xffff_u32 << shift;
        let mut old = self.errhup.load(Ordering::Acquire);
        loop {
            let new = (old & !mask) | (state << shift);
            if new == old {
                break;
            }
            match self
                .errhup
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        (old & mask) >> shift
    }

    /// The key of the last wakeup the driver delivered (0: none, or one without a key).
    pub(crate) fn last_key(&self) -> u32 {
        self.last_bits.load(Ordering::Acquire)
    }

    /// The bits of output readiness.
    pub const OUT_BITS: Events = Events::OUT.union(Events::WRNORM).union(Events::WRBAND);

    /// Make sure the driver reports the wakeups an item with `interest` needs. A
    /// description opened with [`crate::Host::open_for`] watches input readiness (and
    /// `ERR`/`HUP`) only, unless output bits were asked for; an embedder calls this before
    /// adding or modifying an item (as `libeventpoll` does for every `EPOLL_CTL_ADD`/`MOD`),
    /// so that a description nobody watches for output costs no output wakeups.
    pub fn watch(&self, interest: Events) -> Result<(), eventpoll::Errno> {
        if self.pollable && self.unarmed.load(Ordering::Acquire) {
            self.driver.ensure_armed(self)?;
        }
        if self.pollable
            && interest.intersects(Self::OUT_BITS)
            && !self.out.swap(true, Ordering::AcqRel)
        {
            self.answer.store(0, Ordering::Relaxed);
            if let Err(e) = self.driver.watch_out(self) {
                self.out.store(false, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The bits of input readiness (everything that is not output readiness, `ERR`, `HUP`
    /// or a flag).
    pub const IN_BITS: Events = Events::IN
        .union(Events::PRI)
        .union(Events::RDNORM)
        .union(Events::RDBAND)
        .union(Events::MSG)
        .union(Events::RDHUP);

    /// Ask the host for exactly the wakeups an item with interest `union` — the union of the
    /// interests of every item watching this description — can accept. With the kernel
    /// driver the kernel then filters wakeups by their key as Linux filters them for the
    /// item (an item watching `PRI` is not woken by data; its place on the ready list is
    /// that of the wakeup that really woke it). Output readiness, once watched, stays
    /// watched. An embedder that knows every item calls this before adding or modifying
    /// one (with the new interest included) and after deleting one; `libeventpoll` does.
    pub fn set_interest(&self, union: Events) -> Result<(), eventpoll::Errno> {
        self.watch(union)?;
        let bits = (union & Self::IN_BITS).bits();
        if self.pollable && self.input.swap(bits, Ordering::AcqRel) != bits {
            self.answer.store(0, Ordering::Relaxed);
            self.driver.set_input(self, bits)?;
        }
        Ok(())
    }

    /// Whether output readiness is watched.
    pub fn watches_out(&self) -> bool {
        self.out.load(Ordering::Acquire)
    }

    /// Whether the host file supports poll (a regular file or a directory does not; epoll
    /// refuses it with `EPERM`).
    pub fn is_pollable(&self) -> bool {
        self.pollable
    }

    /// Whether the host file is a kernel epoll instance (asked of the kernel once, for an
    /// anonymous-inode file; known from the registration for every other).
    ///
    /// ```
    /// use eventpoll_host::{sys, DriverKind, Host};
    /// let host = Host::new(DriverKind::KernelEpoll).unwrap();
    /// let ep = sys::epoll_create1(libc::EPOLL_CLOEXEC).unwrap();
    /// let efd = sys::eventfd(0, libc::EFD_CLOEXEC).unwrap();
    /// let (a, b) = (host.open(ep).unwrap(), host.open(efd).unwrap());
    /// assert!(Host::host_fd(&a).unwrap().is_kernel_epoll());
    /// assert!(!Host::host_fd(&b).unwrap().is_kernel_epoll());
    /// drop((a, b));
    /// let _ = (sys::close(ep), sys::close(efd));
    /// ```
    pub fn is_kernel_epoll(&self) -> bool {
        if !self.pollable {
            return false;
        }
        match self.epoll_kind.load(Ordering::Relaxed) {
            EPOLL_UNKNOWN => {
                let yes = sys::is_epoll(self.fd()) == Some(true);
                let kind = if yes { EPOLL_YES } else { EPOLL_NO };
                self.epoll_kind.store(kind, Ordering::Relaxed);
                yes
            }
            k => k == EPOLL_YES,
        }
    }

    /// Wake the queue with the host's bits (called by the drivers). A wakeup without a key
    /// (a state change: the io_uring driver's `wake_key`, or [`crate::Host::wake_keyless`])
    /// wakes every entry, exclusive or not: Linux's state changes wake all — a pipe's
    /// release (`wake_up_interruptible_all`), a socket's `sk_state_change` — so that
    /// `EXCLUSIVE` items in several instances that have blocked waiters are all queued
    /// (`scenarios/threads/exclusive/keyless-wakeup-wakes-all.ep`).
    pub(crate) fn notify(&self, bits: u32) {
        self.notify_uncovered(bits, 0);
    }

    /// [`HostFd::notify`]; for a wakeup without a key (`bits` 0), the items interested in
    /// a bit of `covered` are left to the driver, which reports the same wakeup with those
    /// bits ([`eventpoll::WaitQueue::wake_uncovered`], [`crate::Host::wake_keyless`]).
    pub(crate) fn notify_uncovered(&self, bits: u32, covered: u32) {
        // The file may have changed since an arming answer: the ctl asks the host.
        self.drop_answer();
        // Before the queue's wakeup, which takes the engine's locks: a harvest that takes
        // them after the callback sees the count moved (see `fresh`).
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.last_bits.store(bits, Ordering::Release);
        if bits != 0 {
            self.queue.wake(Events::from_bits_retain(bits));
        } else if covered == 0 {
            self.queue.wake_all(Events::empty());
        } else {
            self.queue.wake_uncovered(Events::from_bits_retain(covered));
        }
    }

    /// A harvest (or ctl) polled the descriptor. For the poll driver, which sees levels
    /// only: the observed level is the new reference, except for input, which the program
    /// may drain and get refilled behind our back after a report — the next pump treats
    /// input that is set then as new (an edge-triggered item that still has input at the
    /// next wait is reported again rather than never).
    fn observe(&self, revents: u32) -> Events {
        self.polled
            .store(self.wakes.load(Ordering::Relaxed), Ordering::Relaxed);
        self.polled_mask.store(revents, Ordering::Relaxed);
        if self.driver.kind() == crate::DriverKind::Poll {
            self.last
                .store(revents & !Self::IN_BITS.bits(), Ordering::Relaxed);
        }
        Events::from_bits_retain(revents)
    }
}

/// Masks the harvest may take without asking `poll(2)`: those the kernel-epoll driver's
/// pump reported right before it, and those a sleep probed (`reactor`'s `fold`: a wait that
/// put its first harvest off into its sleep watched the ready items' descriptors there).
///
/// Each [`HostEpoll`](crate::HostEpoll) harvest runs under a new *epoch* (per thread, for
/// the duration of that pump and harvest only). The pump records, for a descriptor whose
/// report covers every bit its items can ask for (input readiness only: no output watch),
/// the reported mask; a sleep that probed records the mask each probe ended with. A record
/// is kept in the description, tagged with the thread's epoch (another thread's epoch
/// never matches: one record per description, the last thread's); it holds while the
/// description is not watched for output (a `MOD` to `OUT` since asks again) and has had
/// no wakeup since the count taken
/// before the mask was read but, at most, one whose bits the mask has (the report of the
/// very activity the mask shows: the pump's own, or the one that ended the sleep,
/// delivered by the pump after it). A wakeup's callback finds an item that is on the
/// ready list already and leaves it there, so a mask older than a wakeup with new bits
/// could drop an item that wakeup made ready — the harvest asks `poll(2)` then, as Linux's
/// scan polls after every callback that came before it. (A wakeup moves the count, then
/// records its bits, before its callback takes the engine's locks; the harvest's scan
/// takes them before it reads bits and count, so a callback that came before the scan is
/// seen whole, and one that is not seen comes during the scan, where the engine keeps its
/// item for the next harvest.) Any other poll — another thread, a later harvest, a ctl —
/// asks the host. A waiter woken after its own post-sleep pump harvests in that pump's
/// epoch without pumping again (`reactor`'s `Pump::Done`).
///
/// What this changes against Linux. A mask taken from the pump or a probe is the
/// descriptor's state a few microseconds before the harvest starts; Linux polls each item
/// during the harvest, in ready-list order. The pump and the sleep are inside the call, so
/// a harvest that used only such masks is one Linux could make with its scan starting
/// there. Mixed with items polled later (in-process objects, descriptors without a mask),
/// the order of the polls is not the list's: a third thread that, within those
/// microseconds, drains a descriptor whose mask was recorded and then makes ready an item
/// that sits *earlier* in the ready list without being ready (a level-triggered item left
/// there by the last harvest) could see both reported, which Linux cannot give. No
/// scenario or random run has placed a thread in that window; it is the price of one
/// `poll(2)` per harvested descriptor (a server's every request).
pub(crate) mod fresh {
    use super::HostFd;
    use std::cell::Cell;
    use std::sync::atomic::{fence, AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(1);

    thread_local! {
        static CURRENT: Cell<u64> = const { Cell::new(0) };
    }

    /// A description's record: `mask` and `count` written together, under `seq` (a
    /// sequence lock: odd while a writer stores; a reader that sees it odd or moved takes
    /// nothing, a writer that finds another writing records nothing — either only costs a
    /// `poll(2)`).
    #[derive(Debug, Default)]
    pub(crate) struct Slot {
        pub(super) seq: AtomicU64,
        /// `epoch << 16 | mask`.
        mask: AtomicU64,
        /// The wakeup count before the mask was read.
        count: AtomicU64,
    }

    /// The calling thread's harvest epoch (0: none).
    pub(crate) fn current() -> u64 {
        CURRENT.try_with(Cell::get).unwrap_or(0)
    }

    /// Record `mask` of `h`, read when its wakeup count was `count`, for the calling
    /// thread's current epoch (nothing outside one). One record per description: the last
    /// thread's (another thread's epoch never matches, so it only loses its record).
    pub(crate) fn set(h: &HostFd, count: u64, mask: u32) {
        let epoch = current();
        if epoch == 0 {
            return;
        }
        let slot = &h.fresh;
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        slot.count.store(count, Ordering::Relaxed);
        slot.mask
            .store((epoch << 16) | u64::from(mask & 0xffff), Ordering::Relaxed);
        slot.seq.store(s + 2, Ordering::Release);
    }

    /// The mask recorded for `h` in the calling thread's current epoch, if it still holds.
    pub(crate) fn mask(h: &HostFd) -> Option<u32> {
        let epoch = current();
        if epoch == 0 || h.out.load(Ordering::Acquire) {
            return None;
        }
        let slot = &h.fresh;
        let before = slot.seq.load(Ordering::Acquire);
        let m = slot.mask.load(Ordering::Relaxed);
        let count = slot.count.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if before & 1 == 1 || slot.seq.load(Ordering::Relaxed) != before || m >> 16 != epoch {
            return None;
        }
        let mask = (m & 0xffff) as u32;
        h.unchanged_since(count, mask).then_some(mask)
    }

    /// A new epoch of this thread until dropped (the one before is restored then): a pump
    /// and the harvest that uses its masks, in one frame or several. Dropped in the order
    /// they were begun.
    pub(crate) struct Epoch(u64);

    impl Epoch {
        /// Begin a new epoch.
        pub(crate) fn begin() -> Epoch {
            let epoch = NEXT.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
            Epoch(CURRENT.try_with(|c| c.replace(epoch)).unwrap_or(0))
        }
    }

    impl Drop for Epoch {
        fn drop(&mut self) {
            let _ = CURRENT.try_with(|c| c.set(self.0));
        }
    }
}

/// Arming answers: an `epoll_ctl` that registers a descriptor (its first `EPOLL_CTL_ADD`)
/// polls it right after the driver armed it, and the arming already told the mask.
///
/// The io_uring driver's multishot polls, armed on a ready file, post its mask (the bits of
/// their direction) in the submission's own `io_uring_enter` (task work the entry runs,
/// `Ring::submit_run`); a poll of a file that is not ready posts nothing then. The driver
/// holds the ring's mutex from the submission to the pump that takes those reports, so no
/// other thread's pump can take one first. It drops them as wakeups (they are not) and,
/// inside a [`scope`] (the embedder's `epoll_ctl`, on this thread), keeps their mask as
/// the object's answer, which the ctl's [`FileOps::poll`] takes instead of asking
/// `poll(2)`. (The kernel-epoll driver does not answer: see its `register`.)
///
/// Why that is the mask `poll(2)` would give the ctl, for every bit the item can be
/// interested in: the answer covers the directions the driver armed for the interest
/// the description was opened with (the embedder opens it with the ctl's own interest,
/// `Host::open_for`), and it is dropped — the ctl then asks `poll(2)` — whenever anything
/// could make it stale before the ctl polls: a wakeup of the file delivered after the
/// arming ([`HostFd::notify`]; a wakeup that comes after the ctl's poll reaches the item
/// through its wait queue, as on Linux), a change of the bits asked for, or the end of the
/// scope. Another thread, or a later ctl, never sees it (the epoch is per thread and per
/// scope).
pub(crate) mod answer {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static CURRENT: Cell<u64> = const { Cell::new(0) };
    }

    /// The calling thread's ctl epoch (0: none).
    pub(crate) fn current() -> u64 {
        CURRENT.try_with(Cell::get).unwrap_or(0)
    }

    /// Run `f` as a new ctl epoch.
    pub(crate) fn scope<T>(f: impl FnOnce() -> T) -> T {
        struct Reset(u64);
        impl Drop for Reset {
            fn drop(&mut self) {
                let _ = CURRENT.try_with(|c| c.set(self.0));
            }
        }
        let epoch = NEXT.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
        let _reset = Reset(CURRENT.try_with(|c| c.replace(epoch)).unwrap_or(0));
        f()
    }
}

impl HostFd {
    /// Record the arming answer `bits` (see [`answer`]); nothing outside a scope.
    pub(crate) fn set_answer(&self, bits: u32) {
        let epoch = answer::current();
        if epoch != 0 {
            self.answer
                .store((epoch << 16) | u64::from(bits & 0xffff), Ordering::Relaxed);
        }
    }

    /// Forget the arming answer (the driver delivered a report of the file since).
    pub(crate) fn drop_answer(&self) {
        if self.answer.load(Ordering::Relaxed) != 0 {
            self.answer.store(0, Ordering::Relaxed);
        }
    }

    /// Take the arming answer of the calling thread's scope, if there is one.
    fn take_answer(&self) -> Option<u32> {
        let epoch = answer::current();
        if epoch == 0 {
            return None;
        }
        let a = self.answer.load(Ordering::Relaxed);
        if a >> 16 != epoch {
            return None;
        }
        self.answer.store(0, Ordering::Relaxed);
        Some((a & 0xffff) as u32)
    }

    /// Whether an item (or a waiter) is hooked on the object.
    pub(crate) fn watched(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Record what the registration's `fstat` says of the file (`st_mode`): whether it may
    /// be an epoll instance (only the kernel's anonymous-inode files, whose mode has no
    /// file type, may).
    pub(crate) fn note_mode(&self, mode: libc::mode_t) {
        if mode & libc::S_IFMT != 0 {
            self.epoll_kind.store(EPOLL_NO, Ordering::Relaxed);
        }
    }

    /// Record the mask the driver's pump reported (see [`fresh`]); called before the
    /// report is delivered as a wakeup.
    pub(crate) fn set_fresh(&self, bits: u32) {
        if !self.out.load(Ordering::Relaxed) {
            fresh::set(self, self.wake_count(), bits);
        }
    }

    /// Whether the driver delivered news since the descriptor was last polled: a wakeup,
    /// other than one late report of what that poll found. A hint only, read without
    /// ordering: a level-triggered item reported at the last harvest and not woken since
    /// is most likely drained, as servers read until `EAGAIN`.
    pub(crate) fn woken_since_poll(&self) -> bool {
        let now = self.wakes.load(Ordering::Relaxed);
        let then = self.polled.load(Ordering::Relaxed);
        let bits = self.last_bits.load(Ordering::Relaxed);
        let seen = self.polled_mask.load(Ordering::Relaxed);
        now != then && !(now == then.wrapping_add(1) && bits != 0 && bits & !seen == 0)
    }

    /// Whether a mask taken when the wakeup count was `count` still holds for the harvest
    /// (see [`fresh`]): no wakeup since, or one, whose bits `mask` has.
    fn unchanged_since(&self, count: u64, mask: u32) -> bool {
        // A count read before bits whose store it does not include means a wakeup after
        // that store's: read again after the bits (acquired with them: a count at least
        // that of their wakeup), a wakeup in between shows.
        let now = self.wakes.load(Ordering::Acquire);
        let bits = self.last_bits.load(Ordering::Acquire);
        if self.wakes.load(Ordering::Acquire) != now {
            return false;
        }
        // The bits some item may want: those asked for, and `ERR`/`HUP` (always wanted).
        let wanted =
            self.input.load(Ordering::SeqCst) | (libc::POLLERR | libc::POLLHUP) as u16 as u32;
        now == count || (now == count.wrapping_add(1) && bits != 0 && bits & wanted & !mask == 0)
    }

    /// The wakeup count a mask of the descriptor is taken against (see [`fresh`]).
    pub(crate) fn wake_count(&self) -> u64 {
        self.wakes.load(Ordering::Acquire)
    }
}

impl FileOps for HostFd {
    fn poll(&self) -> Events {
        if let Some(m) = self.take_answer() {
            return self.observe(m);
        }
        if let Some(m) = fresh::mask(self) {
            return self.observe(m);
        }
        self.observe(sys::poll_mask(self.fd()))
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        self.pollable.then_some(&self.queue)
    }

    /// A kernel epoll instance (one a `fork` handed over, or one made without the
    /// embedder) counts the levels of instances below it, asked of the kernel
    /// ([`sys::epoll_depth_below`]); other files, known from their registration, cost
    /// nothing, and an anonymous-inode file is asked once whether it is an instance.
    fn foreign_epoll_depth(&self) -> Option<usize> {
        if !self.is_kernel_epoll() {
            return None;
        }
        sys::epoll_depth_below(self.fd())
    }

    fn release(&self) {
        if self.pollable {
            self.driver.deregister(self);
        }
        if self.owned {
            let _ = sys::close(self.fd());
        }
    }

    fn batch_class(&self) -> usize {
        // Every descriptor of one driver can share a poll(2).
        Arc::as_ptr(&self.driver) as *const () as usize
    }

    fn poll_batch(&self, batch: &[&dyn FileOps], out: &mut [Events]) {
        // Fresh masks first; the rest with one poll(2) (descriptor -1: skipped).
        let mut asked = 0;
        let mut fds: smallvec::SmallVec<[libc::pollfd; 16]> = batch
            .iter()
            .zip(out.iter_mut())
            .map(|(f, o)| {
                let any: &dyn std::any::Any = *f;
                let h = any.downcast_ref::<HostFd>();
                let fresh = h.and_then(fresh::mask);
                if let (Some(h), Some(m)) = (h, fresh) {
                    *o = h.observe(m);
                }
                let fd = match (h, fresh) {
                    (Some(h), None) => {
                        asked += 1;
                        h.fd()
                    }
                    _ => -1,
                };
                libc::pollfd {
                    fd,
                    events: sys::POLL_ALL,
                    revents: 0,
                }
            })
            .collect();
        if asked == 0 {
            return;
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if sys::ppoll(&mut fds, Some(zero), None).is_err() {
            for (f, o) in batch.iter().zip(out.iter_mut()) {
                *o = f.poll();
            }
            return;
        }
        for ((f, p), o) in batch.iter().zip(&fds).zip(out.iter_mut()) {
            let any: &dyn std::any::Any = *f;
            match any.downcast_ref::<HostFd>() {
                Some(h) if p.fd >= 0 => *o = h.observe(p.revents as u16 as u32),
                Some(_) => {} // fresh, set above
                None => *o = f.poll(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::poll::PollDriver;

    fn host() -> Arc<HostFd> {
        let h = HostFd::new(-1, false, true, Arc::new(PollDriver::new()));
        h.out.store(false, Ordering::SeqCst);
        Arc::new(h)
    }

    const IN: u32 = libc::POLLIN as u32;
    const HUP: u32 = libc::POLLHUP as u32;

    #[test]
    fn a_recorded_mask_holds_in_its_epoch_until_a_wakeup_with_new_bits_or_an_output_watch() {
        let h = host();
        // Outside an epoch nothing is recorded.
        h.set_fresh(IN);
        assert_eq!(fresh::mask(&h), None);
        let epoch = fresh::Epoch::begin();
        h.set_fresh(IN);
        assert_eq!(fresh::mask(&h), Some(IN));
        // The pump's own report of what the mask shows: still holds.
        h.notify(IN);
        assert_eq!(fresh::mask(&h), Some(IN));
        // A second wakeup: asked again.
        h.notify(IN);
        assert_eq!(fresh::mask(&h), None);
        // One wakeup with a bit the mask lacks: asked again.
        h.set_fresh(IN);
        h.notify(IN | HUP);
        assert_eq!(fresh::mask(&h), None);
        // Watched for output since it was recorded (a MOD by another thread): asked again.
        h.set_fresh(IN);
        h.out.store(true, Ordering::SeqCst);
        assert_eq!(fresh::mask(&h), None);
        h.out.store(false, Ordering::SeqCst);
        assert_eq!(fresh::mask(&h), Some(IN));
        // Another thread's epoch: its own record only.
        let other = h.clone();
        let seen = std::thread::spawn(move || {
            let _e = fresh::Epoch::begin();
            let before = fresh::mask(&other);
            other.set_fresh(0);
            (before, fresh::mask(&other))
        })
        .join()
        .unwrap();
        assert_eq!(seen, (None, Some(0)));
        // ... which took this thread's place: asked again.
        assert_eq!(fresh::mask(&h), None);
        h.set_fresh(IN);
        assert_eq!(fresh::mask(&h), Some(IN));
        // A nested epoch sees nothing of the outer one; the outer one, restored, does.
        let inner = fresh::Epoch::begin();
        assert_eq!(fresh::mask(&h), None);
        drop(inner);
        assert_eq!(fresh::mask(&h), Some(IN));
        drop(epoch);
        assert_eq!(fresh::mask(&h), None);
    }

    #[test]
    fn a_record_is_taken_only_whole() {
        let h = host();
        let _epoch = fresh::Epoch::begin();
        h.set_fresh(IN);
        // A writer in progress (odd sequence): no mask read, no record made.
        h.fresh.seq.fetch_add(1, Ordering::SeqCst);
        assert_eq!(fresh::mask(&h), None);
        h.set_fresh(0);
        h.fresh.seq.fetch_add(1, Ordering::SeqCst);
        assert_eq!(fresh::mask(&h), Some(IN));
    }
}
