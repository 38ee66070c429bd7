//! Drivers: how host activity becomes wait-queue wakeups.
//!
//! A driver is the *interrupt source* of the host objects: it watches every registered
//! descriptor with the host's own notification facility, and when the host reports
//! activity it wakes that object's [`eventpoll::WaitQueue`] with the host's bits. The engine
//! does the rest. Three drivers:
//!
//! - [`uring`] (Linux 5.13+): io_uring multishot polls, one per direction of each
//!   descriptor. Each wakeup of the file posts a completion with the wakeup's key, so the
//!   driver replays the host's wakeups one by one, in order — also those that leave no
//!   readiness behind (data read again before anyone looked, an eventfd write of 0).
//! - [`kernel`] (Linux): a private kernel epoll with every descriptor registered
//!   edge-triggered. An edge-triggered kernel item reports once per *wakeup* of its file —
//!   the same notion of edge as the engine's — so each report is passed on as one wakeup,
//!   provided the file is still ready when the driver asks.
//! - [`poll`] (portable): `poll(2)` over every registered descriptor, a wakeup for each bit
//!   that became set since the last observation. `poll(2)` sees levels, not wakeups, so an
//!   edge is a rising bit (see the module for what that changes for edge-triggered items).
//!
//! Drivers deliver activity when [pumped](Driver::pump) (non-blocking; every wait pumps
//! first) and [block](Driver::block) a waiter until there may be activity, together with
//! extra descriptors (the waiter's doorbell), with a signal mask applied atomically.

pub mod kernel;
pub mod poll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod uring;

use crate::host_fd::HostFd;
use crate::sys::SysResult;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The key of every input wakeup of a socket (`sock_def_readable`).
pub(crate) const SOCKET_IN_KEY: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDNORM | libc::EPOLLRDBAND) as u32;

/// The key of every output wakeup of a socket (`sock_def_write_space`,
/// `sk_stream_write_space`).
pub(crate) const SOCKET_OUT_KEY: u32 =
    (libc::EPOLLOUT | libc::EPOLLWRNORM | libc::EPOLLWRBAND) as u32;

/// A socket's wakeup key from the direction bits of a report of its mask: a socket keys
/// every input wakeup [`SOCKET_IN_KEY`] and every output one [`SOCKET_OUT_KEY`] while its
/// mask has only `IN|RDNORM` (`OUT|WRNORM`, and `WRBAND` for unix sockets only), so a
/// report with `IN` (`OUT`) is widened to the whole key — else an item watching `PRI` (or
/// `WRBAND`) alone would not be queued as Linux queues it
/// (`scenarios/regressions/socket-folded-wakeups.ep`). Both Linux drivers use it.
pub(crate) fn socket_key(dir: u32) -> u32 {
    let mut key = dir;
    if dir & libc::EPOLLIN as u32 != 0 {
        key |= SOCKET_IN_KEY;
    }
    if dir & libc::EPOLLOUT as u32 != 0 {
        key |= SOCKET_OUT_KEY;
    }
    key
}

/// Which driver a [`crate::Host`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// A private edge-triggered kernel epoll (Linux).
    KernelEpoll,
    /// One io_uring multishot poll per descriptor (Linux 5.13+): every wakeup with its key.
    IoUring,
    /// `poll(2)` over every registered descriptor (portable fallback).
    Poll,
}

impl DriverKind {
    /// The driver's name (`epoll`, `poll`), as `EVENTPOLL_DRIVER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::KernelEpoll => "epoll",
            DriverKind::IoUring => "uring",
            DriverKind::Poll => "poll",
        }
    }
    /// The driver named `name`.
    pub fn from_name(name: &str) -> Option<DriverKind> {
        match name {
            "epoll" | "kernel" => Some(DriverKind::KernelEpoll),
            "uring" | "io_uring" => Some(DriverKind::IoUring),
            "poll" => Some(DriverKind::Poll),
            _ => None,
        }
    }
}

/// The operations every driver implements.
pub trait Driver: Send + Sync {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;
    /// Start watching `host`; `Err(EPERM)` when the host file does not support poll.
    fn register(&self, host: &Arc<HostFd>) -> SysResult<()>;
    /// Whether a successful [`Driver::register`] delivers all the activity pending before
    /// it, as a [`Driver::pump`] would (the arming report of `host` aside), so that an
    /// embedder that registers a descriptor need not pump again right after.
    fn pumps_on_register(&self) -> bool {
        false
    }
    /// Like [`Driver::register`], but leave `host` unarmed (see `HostFd::unarmed`) until
    /// [`Driver::ensure_armed`]: the io_uring driver holds no poll, and so no reference,
    /// on a file nobody watches. The others register as usual (their registrations hold
    /// no reference to the file).
    fn register_unarmed(&self, host: &Arc<HostFd>) -> SysResult<()> {
        self.register(host)
    }
    /// Pass on a wakeup without a key of each of `hosts`, in this order, that a call the
    /// embedder saw has just made ([`crate::Host::wake_keyless_targets`]); each comes with
    /// its wakeup count from before the call. The driver sees the same wakeup as
    /// readiness (or not at all, the `poll` driver), so that each item is woken once, as
    /// by the one wakeup Linux makes: a second wakeup of a queued item would wake a
    /// second thread blocked on its instance. The wakeups the driver has by then of other
    /// objects are delivered first (a TCP `shutdown`'s FIN reaches a loopback peer during
    /// the call, before the socket's own wakeup). By default: a pump, then each object
    /// woken without a key.
    fn wake_keyless(&self, hosts: &[(Arc<HostFd>, u64)]) {
        self.pump();
        for (h, _) in hosts {
            h.notify(0);
        }
    }
    /// Start reporting output wakeups for `host` too (see [`HostFd::watch`]).
    fn watch_out(&self, _host: &HostFd) -> SysResult<()> {
        Ok(())
    }
    /// Arm `host` if it is registered but was left unarmed (see `HostFd::unarmed`).
    fn ensure_armed(&self, _host: &HostFd) -> SysResult<()> {
        Ok(())
    }
    /// `host` is now polled through descriptor `new` instead of `old` (still open).
    fn rebind(&self, _host: &HostFd, _old: i32, _new: i32) {}
    /// Ask the host for these input bits of `host` only (see [`HostFd::set_interest`]).
    fn set_input(&self, _host: &HostFd, _bits: u32) -> SysResult<()> {
        Ok(())
    }
    /// Stop watching `host` (its description is being released).
    fn deregister(&self, host: &HostFd);
    /// Deliver pending activity as wakeups without blocking; returns how many objects were
    /// woken.
    fn pump(&self) -> usize;
    /// [`Driver::pump`] for a waiter that sleeps if this delivers nothing it waits for:
    /// a wakeup another thread's pump has taken but not yet delivered need not be waited
    /// for here (the kernel-epoll driver's pumps in flight), since its delivery wakes the
    /// sleeper. What [`Driver::pump`] waits for beyond its own delivery, this may skip.
    fn pump_before_sleep(&self) -> usize {
        self.pump()
    }
    /// The descriptors (with the bits to ask for) that become ready when the host may have
    /// activity for a registered descriptor: what a waiter adds to its own `poll(2)` set.
    fn notify_fds(&self, out: &mut Vec<libc::pollfd>);
    /// Block until the host may have activity for a registered descriptor, one of `extra`
    /// is readable, `timeout` passes (`None`: no limit) or a signal handler runs
    /// (`Err(EINTR)`); `sigmask` is applied while blocked. The caller pumps afterwards.
    ///
    /// `probes` are watched too, each for its own `events`: one ready ends the block. On
    /// `Ok(true)` their `revents` are the descriptors' state when the block ended, as
    /// `poll(2)` gives it; on `Ok(false)` they are unknown (the caller asks `poll(2)`).
    fn block(
        &self,
        extra: &[i32],
        probes: &mut [libc::pollfd],
        timeout: Option<Duration>,
        sigmask: Option<*const libc::sigset_t>,
    ) -> SysResult<bool> {
        block_in_ppoll(self, extra, probes, timeout, sigmask)
    }
    /// Whether a sleep of the calling thread in [`Driver::block`] would tell the state of
    /// the descriptors it probes (`Ok(true)`), so that a wait may put its first harvest off
    /// into its sleep (`reactor`'s `fold`). Where it would not, a folded sleep saves no
    /// `poll(2)` and costs the sleep's whole setup when a probed descriptor is ready.
    fn sleep_probes(&self) -> bool {
        true
    }
    /// Descriptor `fd` is the host's own and lives as long as the driver (a waiter's
    /// eventfd, passed to [`Driver::block`] as an extra descriptor): a driver may keep a
    /// poll of it armed between sleeps (the io_uring driver's owned mode does).
    fn note_sleep_fd(&self, _fd: i32) {}
    /// Whether the [notification descriptors](Driver::notify_fds) are few, stable and
    /// pollable through a kernel epoll, so that threads blocked in waits can leave watching
    /// them to one of them (`waiter::Watch`); otherwise every blocked thread watches them.
    fn relayable(&self) -> bool {
        false
    }
    /// Whether a wakeup of `host`'s file that the calling thread's per-instance relay
    /// reports (see `relay`) is, once the thread has made one more system call, something
    /// its [`Driver::pump`] delivers. The kernel-epoll driver: always (the wakeup's
    /// callback in its private epoll ran by the end of the wakeup). The io_uring driver:
    /// only when the calling thread armed `host`'s polls (the completion is posted by the
    /// arming thread's task work). Asked before every relay sleep.
    fn relay_delivers(&self, _host: &HostFd) -> bool {
        true
    }
    /// Make the calling thread the one whose [`Driver::relay_delivers`] holds for each of
    /// `hosts` where that can be done without losing or inventing a wakeup (the io_uring
    /// driver: polls another thread armed are armed again by this one, for files ready for
    /// nothing they watch); asked by a relay whose instance only this thread has slept on
    /// of late. Returns how many were taken over. Others: nothing to do.
    fn adopt(&self, _hosts: &[Arc<HostFd>]) -> usize {
        0
    }
    /// In the child after `fork`: stop sharing host state with the parent (the kernel
    /// driver makes a new kernel epoll and registers every live descriptor again).
    fn after_fork_child(&self);
    /// The descriptors the driver owns (the kernel driver's epolls), so that an embedder
    /// can keep them out of the program's way.
    fn own_fds(&self, out: &mut Vec<i32>);
    /// Whether descriptor `fd` still refers to the file `host` was registered for (an
    /// embedder's check that a number was not closed and reused behind its back). `None`
    /// when the driver cannot tell.
    fn still_registered(&self, _host: &HostFd, _fd: i32) -> Option<bool> {
        None
    }
    /// The registered objects of one file (device and inode numbers) that are still
    /// alive, appended to `out` in registration-slot order.
    fn registered_file(&self, file: (u64, u64), out: &mut Vec<Arc<HostFd>>);
    /// Thread `tid`, which may have used the driver, is exiting (called from its
    /// thread-local destructors, where it is still alive): the io_uring driver moves the
    /// work the kernel would deliver through it to the threads that remain.
    fn thread_exiting(&self, _tid: i32) {}
    /// The driver's current mode, for logs and reports (the io_uring driver: `owned` or
    /// `shared`; see [`uring`]); empty for drivers with one mode.
    fn mode(&self) -> &'static str {
        ""
    }
}

/// [`Driver::block`]'s usual way: `ppoll(2)` on the driver's
/// [notification descriptors](Driver::notify_fds), `extra` and `probes` (whose `revents` it
/// fills: `Ok(true)`).
pub(crate) fn block_in_ppoll<D: Driver + ?Sized>(
    driver: &D,
    extra: &[i32],
    probes: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> SysResult<bool> {
    let mut fds = Vec::with_capacity(1 + extra.len() + probes.len());
    driver.notify_fds(&mut fds);
    fds.extend(extra.iter().map(|&fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }));
    let at = fds.len();
    fds.extend_from_slice(probes);
    crate::sys::ppoll(&mut fds, timeout.map(crate::sys::timespec), sigmask)?;
    probes.copy_from_slice(&fds[at..]);
    Ok(true)
}

/// The bit of a token a driver may flip to tell a descriptor's current polls from those
/// it replaced (the io_uring driver's [`Driver::adopt`]): [`Registry`] ignores it.
pub(crate) const TOKEN_EPOCH: u64 = 1 << 62;

/// The generation of a token (30 bits: bits 62 and 63 are the drivers').
fn token_gen(token: u64) -> u32 {
    ((token >> 32) as u32) & 0x3fff_ffff
}

/// The registered objects by token: a slab of weak references with generations, so a
/// stale token (an event for a descriptor deregistered meanwhile) finds nothing; and an
/// index by file (device and inode numbers), so that a key-less wakeup finds its file's
/// objects without upgrading every registered one ([`Registry::by_file`]).
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Slab>,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// The slab indexes of the live entries of each file, in index order (the order a
    /// walk of the slab would find them in).
    files: HashMap<(u64, u64), SmallVec<[u32; 2]>>,
}

/// One slab slot: its generation, and the object with its file while the slot is in use.
#[derive(Default)]
struct Entry {
    gen: u32,
    host: Option<Weak<HostFd>>,
    file: Option<(u64, u64)>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Slab> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add `host`, an object of `file` (its device and inode numbers: the drivers'
    /// `fstat` of the registration, [`crate::sys::own_identity`]; `None` for a file on the
    /// anonymous inode, which [`Registry::by_file`] then does not find); returns its token.
    pub(crate) fn insert(&self, host: &Arc<HostFd>, file: Option<(u64, u64)>) -> u64 {
        let mut s = self.lock();
        let index = match s.free.pop() {
            Some(i) => i,
            None => {
                s.entries.push(Entry::default());
                (s.entries.len() - 1) as u32
            }
        };
        let e = &mut s.entries[index as usize];
        e.host = Some(Arc::downgrade(host));
        e.file = file;
        let token = (u64::from(e.gen) << 32) | u64::from(index);
        if let Some(file) = file {
            let same = s.files.entry(file).or_default();
            let at = same.partition_point(|&i| i < index);
            same.insert(at, index);
        }
        token
    }

    /// Remove the entry of `token` (if it is still that entry).
    pub(crate) fn remove(&self, token: u64) {
        let mut s = self.lock();
        let (gen, index) = (token_gen(token), token as u32);
        let Some(e) = s.entries.get_mut(index as usize) else {
            return;
        };
        if e.gen != gen || e.host.is_none() {
            return;
        }
        e.host = None;
        // 30-bit generations: a token never has bits 62 and 63 set (drivers may use them).
        e.gen = e.gen.wrapping_add(1) & 0x3fff_ffff;
        let file = e.file.take();
        s.free.push(index);
        if let Some(file) = file {
            if let Some(same) = s.files.get_mut(&file) {
                same.retain(|i| *i != index);
                if same.is_empty() {
                    s.files.remove(&file);
                }
            }
        }
    }

    /// The live objects of `tokens`, in order, with their positions.
    pub(crate) fn resolve(
        &self,
        tokens: impl Iterator<Item = (usize, u64)>,
        out: &mut impl Extend<(usize, Arc<HostFd>)>,
    ) {
        let s = self.lock();
        // One `extend` for the batch (not one per object: each would reserve anew).
        out.extend(tokens.filter_map(|(pos, token)| {
            let (gen, index) = (token_gen(token), token as u32);
            match s.entries.get(index as usize) {
                Some(Entry {
                    gen: g,
                    host: Some(w),
                    ..
                }) if *g == gen => Some((pos, w.upgrade()?)),
                _ => None,
            }
        }));
    }

    /// The live objects registered for `file` (device and inode numbers), in slab order:
    /// a look-up in the index, and one upgrade per match — not a walk of every object.
    pub(crate) fn by_file(&self, file: (u64, u64), out: &mut Vec<Arc<HostFd>>) {
        let s = self.lock();
        let Some(same) = s.files.get(&file) else {
            return;
        };
        out.extend(
            same.iter()
                .filter_map(|&i| s.entries[i as usize].host.as_ref().and_then(Weak::upgrade)),
        );
    }

    /// Every live object.
    pub(crate) fn all(&self) -> Vec<Arc<HostFd>> {
        self.lock()
            .entries
            .iter()
            .filter_map(|e| e.host.as_ref().and_then(Weak::upgrade))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(fd: i32) -> Arc<HostFd> {
        Arc::new(HostFd::new(
            fd,
            false,
            true,
            Arc::new(poll::PollDriver::new()),
        ))
    }

    fn fds(found: &[Arc<HostFd>]) -> Vec<i32> {
        found.iter().map(|h| h.fd()).collect()
    }

    /// The registry's index by file finds a file's live objects in slab order, forgets a
    /// removed entry (and not a reused slot's new one for a stale token), skips an object
    /// that is gone, and leaves out files on the anonymous inode.
    #[test]
    fn registry_finds_objects_by_file() {
        use std::os::fd::AsRawFd;
        // Two numbers of one socket, its peer, and an eventfd (the anonymous inode).
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let p = [
            x.as_raw_fd(),
            crate::sys::fcntl(x.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0).unwrap(),
        ];
        let e = crate::sys::eventfd(0, libc::EFD_CLOEXEC).unwrap();
        let stat = |fd| crate::sys::fstat(fd).unwrap();
        let own = |fd| crate::sys::own_identity(&stat(fd));
        let (shared, other) = (own(p[0]).unwrap(), own(y.as_raw_fd()).unwrap());
        assert_eq!(own(p[1]), Some(shared));
        assert_ne!(shared, other);
        assert_eq!(own(e), None);

        let r = Registry::default();
        let (a, c, b, f) = (host(p[0]), host(y.as_raw_fd()), host(p[1]), host(e));
        let ta = r.insert(&a, own(p[0]));
        r.insert(&c, own(y.as_raw_fd()));
        r.insert(&f, own(e));
        r.insert(&b, own(p[1]));
        let mut out = Vec::new();
        r.by_file(shared, &mut out);
        assert_eq!(fds(&out), [p[0], p[1]]);
        out.clear();
        r.by_file(other, &mut out);
        assert_eq!(fds(&out), [y.as_raw_fd()]);
        out.clear();
        r.by_file(crate::sys::identity(&stat(e)), &mut out);
        assert!(out.is_empty(), "the anonymous inode names no one file");
        assert_eq!(r.all().len(), 4);

        r.remove(ta);
        out.clear();
        r.by_file(shared, &mut out);
        assert_eq!(fds(&out), [p[1]]);

        // A new object takes the freed slot (index 0): slab order puts it first; the
        // stale token of the removed entry does not remove it.
        let d = host(p[0]);
        r.insert(&d, own(p[0]));
        r.remove(ta);
        out.clear();
        r.by_file(shared, &mut out);
        assert_eq!(fds(&out), [p[0], p[1]]);
        assert!(Arc::ptr_eq(&out[0], &d));

        // An object no longer alive is not found.
        drop(out);
        drop(b);
        let mut out = Vec::new();
        r.by_file(shared, &mut out);
        assert_eq!(fds(&out), [p[0]]);

        crate::sys::close(p[1]).unwrap();
        crate::sys::close(e).unwrap();
    }
}
