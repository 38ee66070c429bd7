//! # eventpoll-host — host descriptors as eventpoll engine objects
//!
//! The eventpoll engine implements epoll over anything that meets its pollable contract.
//! This crate makes the host's own descriptors — pipes, sockets, eventfds, timerfds,
//! terminals, even the kernel's own epoll instances — into such objects ([`HostFd`]), so
//! one engine instance can watch host descriptors and in-process objects together, with
//! every epoll semantic (level- and edge-triggered, one-shot, exclusive, ordering, merging,
//! nesting, errors) decided by the engine.
//!
//! Readiness comes from the host's notification facility used as an *interrupt source*
//! (the design gVisor uses for host descriptors): a [driver] watches every
//! registered descriptor and wakes its object's wait queue when the host reports activity.
//! On Linux that is a private kernel epoll in edge-triggered mode ([`driver::kernel`]), or
//! io_uring multishot polls ([`driver::uring`]), which report every wakeup with its key —
//! also the wakeups that leave no readiness behind, which a kernel epoll cannot show, but
//! hold a reference to every file they watch until they are cancelled: when a process dies
//! with polls armed, its files are released by the kernel's ring teardown a few
//! milliseconds after the process is gone (a listening port stays bound). [`Host::best`]
//! picks the kernel epoll, which holds no reference, so that files end with their process
//! as on Linux; the portable fallback is `poll(2)` ([`driver::poll`]). A harvest re-polls
//! the host items it takes with one `poll(2)` for all of them (the engine's batched-poll
//! hook).
//!
//! Waiting: [`HostEpoll::wait`] pumps the driver, harvests, and blocks in the host
//! (`ppoll(2)` on the driver's descriptor and the thread's own eventfd, with the caller's
//! signal mask; a wait whose ready list holds only host descriptors watched for input puts
//! its harvest off into that sleep, which watches them too — `reactor`'s `fold`, see
//! [`HostEpoll::folded_waits`]), so a blocked thread is woken by the host itself — no
//! helper thread, no polling loop — and a signal interrupts it with `EINTR` as on Linux. For the engine it
//! is a thread blocked in `epoll_wait` like any other ([`ThreadWaker`]): one wakeup
//! reaches the newest sleeper, and `EXCLUSIVE` wakeups stop at its instance.
//!
//! ```
//! use eventpoll_host::{DriverKind, Host, HostEpoll};
//! use eventpoll::{EpollEvent, Events, Interest};
//! use std::time::Duration;
//!
//! for kind in [DriverKind::KernelEpoll, DriverKind::IoUring, DriverKind::Poll] {
//!     let host = Host::new(kind).unwrap();
//!     let hep = HostEpoll::new(host.clone()).unwrap();
//!     let mut fds = [0; 2];
//!     assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
//!     let reader = host.open(fds[0]).unwrap();
//!     hep.epoll().add(&reader, Interest::READABLE.edge(), 1).unwrap();
//!     assert_eq!(unsafe { libc::write(fds[1], b"hi".as_ptr().cast(), 2) }, 2);
//!     let mut out = [EpollEvent::default(); 4];
//!     assert_eq!(hep.wait(&mut out, 4, Some(Duration::from_secs(5)), None), Ok(1));
//!     assert_eq!(out[0].events(), Events::IN); // poll mask & interest
//!     // Edge-triggered: nothing more until the next write (the poll driver, which sees
//!     // levels only, reports a still-ready item again: see `driver::poll`).
//!     let again = hep.wait(&mut out, 4, Some(Duration::ZERO), None);
//!     assert_eq!(again, Ok(if kind == DriverKind::Poll { 1 } else { 0 }));
//!     drop(reader);
//!     unsafe { libc::close(fds[0]); libc::close(fds[1]); }
//! }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
mod host_fd;
pub mod raw_syscall;
mod reactor;
mod relay;
pub mod sys;
mod waiter;

pub use driver::{Driver, DriverKind};
pub use host_fd::HostFd;
pub use reactor::{Bell, HostEpoll};
pub use waiter::ThreadWaker;

use eventpoll::{Errno, File};
use std::os::fd::{IntoRawFd, OwnedFd};

/// Run one `epoll_ctl` of an embedder (opening the target with [`Host::open_for`] or
/// [`Host::open`], then the engine's ctl) in a scope where a host descriptor that the
/// driver arms inside it answers the ctl's poll with the mask the arming reported, instead
/// of a `poll(2)` of its own: one system call fewer for the first `EPOLL_CTL_ADD` of every
/// descriptor (an accepted connection's). The answer is the calling thread's, for this
/// scope only, and is dropped whenever it could be stale (the rules are at `HostFd`'s
/// `answer` module); outside a scope every poll asks the host.
pub fn ctl_scope<T>(f: impl FnOnce() -> T) -> T {
    host_fd::answer::scope(f)
}
use std::sync::Arc;
use std::time::Duration;

/// A driver and the host descriptors registered with it. Cloning shares the driver.
#[derive(Clone)]
pub struct Host {
    driver: Arc<dyn Driver>,
    /// The eventfds that threads blocked in a wait sleep on (see `waiter`).
    wakers: Arc<waiter::WakerPool>,
    /// Which blocked thread watches the driver (see `waiter`).
    watch: Arc<waiter::Watch>,
    /// The instances' relays (see `relay`), for `fork` and [`Host::own_fds`].
    relays: Arc<std::sync::Mutex<Vec<std::sync::Weak<relay::InstanceRelay>>>>,
    hidden_base: i32,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("driver", &self.driver.kind())
            .finish()
    }
}

impl Host {
    /// A host with a new driver of `kind`.
    pub fn new(kind: DriverKind) -> Result<Host, Errno> {
        Host::with_hidden_base(kind, 0)
    }

    /// A host whose own descriptors (the kernel driver's epolls, the io_uring driver's ring
    /// and its eventfd) are moved to numbers at or
    /// above `hidden_base`, out of the way of a program that expects lowest-free numbering.
    pub fn with_hidden_base(kind: DriverKind, hidden_base: i32) -> Result<Host, Errno> {
        let driver: Arc<dyn Driver> = match kind {
            DriverKind::KernelEpoll => Arc::new(driver::kernel::KernelDriver::new(hidden_base)?),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            DriverKind::IoUring => Arc::new(driver::uring::UringDriver::new(hidden_base)?),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            DriverKind::IoUring => return Err(Errno::ENOSYS),
            DriverKind::Poll => Arc::new(driver::poll::PollDriver::new()),
        };
        Ok(Host {
            driver,
            wakers: Arc::new(waiter::WakerPool::new(hidden_base)),
            watch: Arc::new(waiter::Watch::new()),
            relays: Arc::default(),
            hidden_base,
        })
    }

    /// A host with the best driver that works here: the kernel epoll, else io_uring, else
    /// `poll(2)`.
    ///
    /// The kernel epoll first (since 2026-12-08; io_uring before): io_uring sees every
    /// wakeup with its key, also those that leave no readiness behind, but an armed poll
    /// holds a reference to its file, and when a process ends — by a signal too — with polls
    /// armed the kernel drops them in the ring's teardown, on a work queue, after the
    /// process is gone: its sockets stay bound for some milliseconds after `waitpid`
    /// returns (`EADDRINUSE` for the next server on the port; libuv's own test suite, whose
    /// tests reuse one port right after killing the last test's server, fails 10 to 16 of
    /// its 507 tests that way, 14 with the machine idle). A kernel epoll holds no reference:
    /// the files end with the process, as on Linux.
    ///
    /// ```
    /// let host = eventpoll_host::Host::best(1000).unwrap();
    /// assert_eq!(host.kind(), eventpoll_host::DriverKind::KernelEpoll);
    /// ```
    pub fn best(hidden_base: i32) -> Result<Host, Errno> {
        let mut last = Errno::ENOSYS;
        for kind in [
            DriverKind::KernelEpoll,
            DriverKind::IoUring,
            DriverKind::Poll,
        ] {
            match Host::with_hidden_base(kind, hidden_base) {
                Ok(h) => return Ok(h),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The driver this host runs.
    pub fn kind(&self) -> DriverKind {
        self.driver.kind()
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Every descriptor the host owns: the driver's ([`Driver::own_fds`]) and the eventfds
    /// of threads blocked in a wait (one per thread asleep at once, made on demand at
    /// numbers at or above the hidden base), so that an embedder can keep them out of the
    /// program's way.
    pub fn own_fds(&self, out: &mut Vec<i32>) {
        self.driver.own_fds(out);
        self.wakers.fds(out);
        for r in self.live_relays() {
            r.fds(out);
        }
    }

    fn live_relays(&self) -> Vec<Arc<relay::InstanceRelay>> {
        let mut list = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(std::sync::Weak::upgrade).collect()
    }

    /// Keep `relay` in the host's list (see `relay`).
    pub(crate) fn note_relay(&self, relay: &Arc<relay::InstanceRelay>) {
        let mut list = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(relay));
    }

    /// Where the host's own descriptors go (0: anywhere).
    pub(crate) fn hidden_base(&self) -> i32 {
        self.hidden_base
    }

    /// Tell the embedder's hook of a descriptor the host made for itself.
    pub(crate) fn announce_own_fd(&self, fd: i32) {
        self.wakers.announce(fd);
    }

    /// `hook` is called with each descriptor the host makes for itself from now on (the
    /// eventfd of a thread that blocks in a wait, see [`Host::own_fds`]); set once.
    pub fn on_own_fd(&self, hook: fn(i32)) {
        self.wakers.on_new(hook);
    }

    /// In the child after `fork`: the driver stops sharing host state with the parent
    /// ([`Driver::after_fork_child`]), and each blocked-thread eventfd is replaced by a
    /// fresh one under the same number.
    pub fn after_fork_child(&self) {
        sys::forget_own_pid();
        self.driver.after_fork_child();
        self.wakers.after_fork_child();
        self.watch.after_fork_child();
        for r in self.live_relays() {
            r.after_fork_child();
        }
    }

    /// A waker for a thread about to block in a wait; give it back with
    /// [`Host::give_back_waker`] once it is on no queue.
    pub(crate) fn take_waker(&self) -> Result<waiter::PooledWaker, Errno> {
        // A new waker's eventfd is closed only with the host (its pool), or replaced in a
        // `fork` child, where a fresh one takes the same number (and the driver a fresh
        // ring, with no poll of the old one).
        self.wakers.take(|fd| self.driver.note_sleep_fd(fd))
    }

    pub(crate) fn give_back_waker(&self, w: waiter::PooledWaker) {
        self.wakers.give_back(w)
    }

    /// Leader/follower state of the threads blocked in waits (see `waiter`).
    pub(crate) fn watch(&self) -> &waiter::Watch {
        &self.watch
    }

    /// A new open file description for host descriptor `fd`, which stays the caller's: it
    /// must stay open while the description is alive (or be replaced with
    /// [`HostFd::set_fd`]), and the description must be dropped before `fd` is closed. A
    /// file that does not support poll gives a description that epoll refuses with
    /// `EPERM`, as Linux does; a closed descriptor is `EBADF`.
    pub fn open(&self, fd: i32) -> Result<File, Errno> {
        self.open_impl(fd, false, true, None, false)
    }

    /// Like [`Host::open`], but the description owns the descriptor and closes it when it
    /// is released.
    pub fn open_owned(&self, fd: OwnedFd) -> Result<File, Errno> {
        self.open_impl(fd.into_raw_fd(), true, true, None, false)
    }

    /// Like [`Host::open`], but the host is asked only for the wakeups an item with
    /// `interest` can accept: output readiness only if `interest` has output bits, input
    /// readiness only for its input bits (`ERR` and `HUP` always). A descriptor only ever
    /// read from then costs the host no output wakeups. Items with other interests must be
    /// preceded by [`HostFd::watch`] or [`HostFd::set_interest`].
    pub fn open_for(&self, fd: i32, interest: eventpoll::Events) -> Result<File, Errno> {
        self.open_impl(
            fd,
            false,
            interest.intersects(HostFd::OUT_BITS),
            Some(interest),
            false,
        )
    }

    /// A description for `fd` that no item watches yet (an embedder learns of it from a
    /// `dup`, to know the numbers that share it): registered — its identity known, and
    /// `EPERM` later for a file without poll support, as with [`Host::open_for`] — but
    /// unwatched until [`HostFd::watch`] or [`HostFd::set_interest`] (which an embedder
    /// calls before adding an item). The io_uring driver then holds no poll on the file: an
    /// armed poll holds a reference to it, which a process's exit releases only when its
    /// ring is torn down, some milliseconds after the parent's `waitpid` has returned (a
    /// FIFO's reader or a pipe's writer would outlive the process).
    pub fn open_unwatched(&self, fd: i32) -> Result<File, Errno> {
        self.open_impl(fd, false, false, Some(eventpoll::Events::empty()), true)
    }

    fn open_impl(
        &self,
        fd: i32,
        owned: bool,
        out: bool,
        input: Option<eventpoll::Events>,
        unwatched: bool,
    ) -> Result<File, Errno> {
        // A number that is not open: every driver's registration fails with `EBADF` (its
        // first system call on the number), before anything is kept.
        let host = Arc::new(HostFd::new(fd, owned, true, self.driver.clone()));
        host.out.store(out, std::sync::atomic::Ordering::Release);
        if let Some(interest) = input {
            host.input.store(
                (interest & HostFd::IN_BITS).bits(),
                std::sync::atomic::Ordering::Release,
            );
        }
        let registered = if unwatched {
            self.driver.register_unarmed(&host)
        } else {
            self.driver.register(&host)
        };
        match registered {
            Ok(()) => Ok(File::new(host)),
            Err(Errno::EPERM) => Ok(File::new(Arc::new(HostFd::new(
                fd,
                owned,
                false,
                self.driver.clone(),
            )))),
            Err(e) => {
                if owned {
                    let _ = sys::close(fd);
                }
                Err(e)
            }
        }
    }

    /// Deliver a wakeup *without a key* to every registered description of the file that
    /// descriptor `fd` refers to (only those opened for writing when `writers_only`);
    /// returns how many were woken.
    ///
    /// Linux wakes some wait queues without a key — a pipe resized with `F_SETPIPE_SZ`
    /// wakes its writers, `shutdown(2)` wakes the socket and its peer — and such a wakeup
    /// queues *every* item of the file, whatever its interest. No driver reports such a
    /// wakeup as key-less (the io_uring driver gets the file's mask for it, the others see
    /// readiness only), so one of a file that is ready for none of an item's bits never
    /// reaches the engine. An embedder that sees the call that causes one (`libeventpoll`
    /// interposes `fcntl` and `shutdown`) [pumps](Host::pump) the wakeups that came before
    /// it, makes the call, and then reports the key-less wakeup with this.
    ///
    /// The driver sees the same wakeup as readiness, and each item is woken once, as by
    /// Linux's one wakeup (a second wakeup of a queued item would wake a second thread
    /// blocked on its instance): the io_uring driver's completions of it reach the items
    /// that watch what the file is ready for, and this wakes the others; the kernel-epoll
    /// driver's reports of it are taken as this wakeup, unless another thread's pump
    /// delivered them first (see [`driver::Driver::wake_keyless`]).
    ///
    /// The registered objects of the file are found by its device and inode numbers, in
    /// the driver's index (no walk of every registered object); a file on the kernel's
    /// anonymous inode (an eventfd, a timerfd, an epoll instance), whose numbers every
    /// such file shares, is not looked up (the calls that wake without a key, `shutdown`
    /// and `F_SETPIPE_SZ`, are made on sockets and pipes).
    ///
    /// ```
    /// use eventpoll_host::{DriverKind, Host, HostEpoll};
    /// use eventpoll::{EpollEvent, Events, Interest};
    /// use std::time::Duration;
    ///
    /// let host = Host::new(DriverKind::IoUring).or_else(|_| Host::new(DriverKind::Poll)).unwrap();
    /// let hep = HostEpoll::new(host.clone()).unwrap();
    /// let mut fds = [0; 2];
    /// assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
    /// let writer = host.open(fds[1]).unwrap();
    /// // Watching the write end for PRI only: a resize queues the item anyway (the
    /// // harvest then finds nothing to report, as on Linux).
    /// hep.epoll().add(&writer, Interest::from_events(Events::PRI), 1).unwrap();
    /// host.pump();
    /// assert!(unsafe { libc::fcntl(fds[0], libc::F_SETPIPE_SZ, 8192) } > 0);
    /// assert_eq!(host.wake_keyless(fds[0], true), 1);
    /// let mut out = [EpollEvent::default(); 4];
    /// assert_eq!(hep.wait(&mut out, 4, Some(Duration::ZERO), None), Ok(0));
    /// drop(writer);
    /// unsafe { libc::close(fds[0]); libc::close(fds[1]); }
    /// ```
    pub fn wake_keyless(&self, fd: i32, writers_only: bool) -> usize {
        match sys::fstat(fd) {
            Ok(st) => self.wake_keyless_files(&[(sys::identity(&st), writers_only)]),
            Err(_) => 0,
        }
    }

    /// [`Host::wake_keyless`] for several files woken by one call, in the order Linux
    /// wakes them (`shutdown(2)` of a unix socket: the socket, then its peer, known by
    /// [`sys::unix_peer`]), each as (device and inode numbers, writers only):
    /// [`Host::keyless_targets`], then
    /// [`Host::wake_keyless_targets`]. An embedder that can find the files before the
    /// call makes those two steps itself, around it.
    pub fn wake_keyless_files(&self, files: &[((u64, u64), bool)]) -> usize {
        self.wake_keyless_targets(self.keyless_targets(files))
    }

    /// The registered objects of the files a call is about to wake without a key, in
    /// order, as for [`Host::wake_keyless_files`] — found *before* the call, with their
    /// wakeup counts then: the driver sees the call's wakeups as they are made, and a
    /// pump of another thread may deliver them before [`Host::wake_keyless_targets`]
    /// runs; the counts tell it so, and each item is woken once.
    ///
    /// ```
    /// use eventpoll_host::{sys, DriverKind, Host, HostEpoll};
    /// use eventpoll::{EpollEvent, Events, Interest};
    /// use std::time::Duration;
    ///
    /// let host = Host::new(DriverKind::IoUring).or_else(|_| Host::new(DriverKind::Poll)).unwrap();
    /// let hep = HostEpoll::new(host.clone()).unwrap();
    /// let mut sv = [0; 2];
    /// let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK;
    /// assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, sv.as_mut_ptr()) }, 0);
    /// let (a, b) = (host.open(sv[0]).unwrap(), host.open(sv[1]).unwrap());
    /// hep.epoll().add(&a, Interest::from_events(Events::IN | Events::ET), 1).unwrap();
    /// hep.epoll().add(&b, Interest::from_events(Events::IN | Events::ET), 2).unwrap();
    /// let mut out = [EpollEvent::default(); 4];
    /// assert_eq!(hep.wait(&mut out, 4, Some(Duration::ZERO), None), Ok(0));
    /// // shutdown(2) wakes the socket, then its peer, without a key.
    /// let ida = sys::identity(&sys::fstat(sv[0]).unwrap());
    /// let idb = sys::unix_peer(sv[0]).unwrap();
    /// host.pump();
    /// let targets = host.keyless_targets(&[(ida, false), (idb, false)]);
    /// assert_eq!(unsafe { libc::shutdown(sv[0], libc::SHUT_WR) }, 0);
    /// assert_eq!(host.wake_keyless_targets(targets), 2);
    /// // The peer can read no more (IN and RDHUP); the socket itself has nothing for IN.
    /// assert_eq!(hep.wait(&mut out, 4, Some(Duration::ZERO), None), Ok(1));
    /// assert_eq!(out[0].data(), 2);
    /// drop((a, b));
    /// unsafe { libc::close(sv[0]); libc::close(sv[1]); }
    /// ```
    pub fn keyless_targets(&self, files: &[((u64, u64), bool)]) -> KeylessTargets {
        let mut hosts = Vec::new();
        let mut same = Vec::new();
        for &(identity, writers_only) in files {
            self.driver.registered_file(identity, &mut same);
            hosts.extend(
                same.drain(..)
                    .filter(|h| !writers_only || sys::writable_access(h.fd()))
                    .map(|h| {
                        let count = h.wakeups();
                        (h, count)
                    }),
            );
        }
        KeylessTargets(hosts)
    }

    /// Pass on the key-less wakeup of `targets` ([`Host::keyless_targets`]) that a call
    /// has just made: the driver delivers the host's other wakeups it has by then first (a
    /// TCP `shutdown`'s FIN reaches a loopback peer during the call, before the socket's
    /// own wakeup), then wakes each object's items once (see
    /// [`driver::Driver::wake_keyless`]). Returns how many objects.
    pub fn wake_keyless_targets(&self, targets: KeylessTargets) -> usize {
        if !targets.0.is_empty() {
            self.driver.wake_keyless(&targets.0);
        }
        targets.0.len()
    }

    /// The host object behind `file`, if it is one.
    pub fn host_fd(file: &File) -> Option<&HostFd> {
        file.downcast::<HostFd>()
    }

    /// Deliver pending host activity as wakeups, without blocking.
    pub fn pump(&self) -> usize {
        waiter::deferring_signals(|| self.driver.pump())
    }

    /// [`Host::pump`] for a waiter that sleeps if it finds nothing (see
    /// [`driver::Driver::pump_before_sleep`]): deliveries in flight in other threads are not
    /// waited for, as they wake the sleeper.
    pub fn pump_before_sleep(&self) -> usize {
        waiter::deferring_signals(|| self.driver.pump_before_sleep())
    }

    /// Block until there may be host activity, one of `extra` is readable or `timeout`
    /// passes; then pump. `Err(EINTR)` when a signal handler ran.
    pub fn block(&self, extra: &[i32], timeout: Option<Duration>) -> Result<(), Errno> {
        let r = self.driver.block(extra, &mut [], timeout, None).map(drop);
        self.pump();
        r
    }
}

/// The objects a key-less wakeup is about to reach, with their wakeup counts when they were
/// found ([`Host::keyless_targets`]).
#[derive(Debug)]
pub struct KeylessTargets(Vec<(Arc<HostFd>, u64)>);
