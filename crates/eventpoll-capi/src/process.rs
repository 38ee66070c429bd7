//! The process's view: which descriptor numbers are eventpoll instances or host files that
//! the engine knows, how an instance is backed by real descriptors, and what `fork` does.
//!
//! # Descriptors
//!
//! The kernel allocates every number; this table only annotates numbers:
//!
//! - an **instance** number refers to a real kernel epoll `E` (created by
//!   [`epoll_create1`](crate::abi)) that watches one private eventfd `D`, the instance's
//!   *bell*, level-triggered. `D` holds 1 exactly when the engine instance has a really
//!   ready item (kept in sync after every call that can change it), so `E` is readable by
//!   `poll`, `select` and the kernel's epoll exactly when the instance is, is never
//!   writable, is closed by `close` and inherited by `fork`. `D` also wakes threads of
//!   this process that sleep in `poll`/`select` on the instance (a thread blocked in
//!   `epoll_wait` sleeps on an eventfd of its own, queued in the engine instance as a
//!   blocked thread: see `eventpoll_host::ThreadWaker`). `D` lives at a hidden high number.
//! - a **host** number refers to a host file the engine watches: an open file description
//!   of the engine ([`HostDesc`]) whose object is an [`eventpoll_host::HostFd`]. All numbers
//!   known to refer to one description (through `dup`, `dup2`, `dup3`, `fcntl(F_DUPFD)`)
//!   share it, so — as on Linux — closing one of them removes nothing (the item keeps
//!   reporting: a ghost) and closing the last releases the description and removes its
//!   items, before the kernel's close.
//!
//! Numbers the table does not know are left alone: every interposed call on them goes
//! straight to the kernel.
//!
//! # Fork
//!
//! The prepare handler delivers the driver's pending wakeups and then hands every instance
//! over to the kernel epoll behind its number ([`crate::handover`]), so that parent and
//! child share it as Linux's instances are shared; the instance's numbers leave the table.
//! With `EVENTPOLL_FORK=copy` it does not, and the child instead gives each instance a new
//! bell and a new kernel epoll under the same numbers: an independent copy.
//!
//! # Locks
//!
//! `Process::table` is held only to look up or change slots, never across an engine call;
//! descriptions and instances are dropped (which may release them) after it is unlocked.
//! The [`Gate`] is held (shared) by every step that touches engine state and (exclusive) by
//! `fork`'s prepare handler, so the child never inherits a lock held by another thread.

#![allow(unsafe_code)] // errno, getrlimit, pthread_atfork: FFI only, each block commented.

use eventpoll::Errno;
use eventpoll::{Epoll, File, User};
use eventpoll_host::{sys, Bell, DriverKind, Host, HostEpoll, HostFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// An eventpoll instance behind one or more numbers.
pub struct Instance {
    /// The engine instance, its driver and its bell.
    pub hep: HostEpoll,
}

/// Live instances (interposed `poll`/`select` do nothing extra while there are none).
pub static INSTANCES: AtomicUsize = AtomicUsize::new(0);

impl Drop for Instance {
    fn drop(&mut self) {
        INSTANCES.fetch_sub(1, Ordering::SeqCst);
        // The bell closes with the instance: its number is no longer the library's.
        if let Some(p) = PROCESS.get().and_then(Option::as_ref) {
            let d = self.hep.bell().fd();
            if matches!(p.slot(d), Some(Slot::Hidden)) {
                drop(p.set(d, None));
            }
        }
    }
}

/// The lowest number the library's own descriptors can have (`i32::MAX` until the process
/// state exists): below it no number is hidden, so the interposed `read`, `write` and
/// `fcntl` decide with one comparison.
pub static HIDDEN_FLOOR: AtomicI32 = AtomicI32::new(i32::MAX);

/// Whether `fd` is one of the library's own descriptors, which the program must see as
/// closed (`EBADF`, `POLLNVAL`). Lock-free for numbers in the hidden range (a bitmap), so
/// that it is safe in a signal handler; a table lookup beyond it.
pub fn is_hidden(fd: i32) -> bool {
    if fd < HIDDEN_FLOOR.load(Ordering::Relaxed) {
        return false;
    }
    let Some(p) = PROCESS.get().and_then(Option::as_ref) else {
        return false;
    };
    p.hidden_bit(fd)
        .unwrap_or_else(|| matches!(p.slot(fd), Some(Slot::Hidden)))
}

impl Instance {
    /// After a call that may have changed the ready list: the bell says whether the ready
    /// list holds an item (without polling, which would drop items found not ready and so
    /// change what later waits report).
    pub fn sync(&self) {
        let ep = self.hep.epoll();
        self.hep.bell().settle(|| ep.has_ready());
    }

    /// For a poll of `E` itself (interposed `poll`/`select`): poll the instance as Linux's
    /// poll of an epoll file does (items found not ready before the first ready one leave
    /// the ready list), and make the bell say exactly whether it is readable.
    pub fn settle_exact(&self) {
        let ep = self.hep.epoll();
        self.hep.bell().settle(|| !ep.file().poll().is_empty());
    }
}

/// A host open file description and the numbers known to refer to it.
pub struct HostDesc {
    /// The engine description (its object is a [`HostFd`]).
    pub file: File,
    numbers: Mutex<Vec<i32>>,
    /// The interest of every item watching this description, by (instance, number), so
    /// that the host is asked for exactly their union (see [`HostFd::set_interest`]).
    interests: Mutex<Vec<(usize, i32, u32)>>,
}

impl HostDesc {
    fn host_fd(&self) -> Option<&HostFd> {
        Host::host_fd(&self.file)
    }

    /// If the host object polls through `fd`, move it to another of `nums` (the
    /// description's numbers, under their lock), while `fd` still names the file: for a
    /// number about to be closed or replaced ([`Process::forget`],
    /// [`Process::replacing`]).
    fn poll_off(&self, nums: &[i32], fd: i32) {
        if let (Some(h), Some(&other)) = (self.host_fd(), nums.iter().find(|&&n| n != fd)) {
            if h.fd() == fd {
                h.set_fd(other);
            }
        }
    }

    /// Ask the host for the union of the items' interests, with `extra` (an item about to
    /// be added or modified: its key and new interest) counted in and replacing its entry.
    pub fn ask_host(&self, extra: Option<(usize, i32, u32)>) -> Result<(), Errno> {
        let Some(h) = self.host_fd() else {
            return Ok(());
        };
        let list = self.interests.lock().unwrap_or_else(|e| e.into_inner());
        let mut union = 0u32;
        for &(inst, fd, ev) in list.iter() {
            if extra.is_none_or(|(i, f, _)| (i, f) != (inst, fd)) {
                union |= ev;
            }
        }
        if let Some((_, _, ev)) = extra {
            union |= ev;
        }
        if extra.is_none() && list.is_empty() {
            // No item left (the last was deleted): the bits asked for stay as they are,
            // for the next item. Narrowing them serves the key filtering of items, and
            // there is none: a wakeup of a description nobody watches wakes nobody. The
            // kernel-epoll driver saved an `EPOLL_CTL_MOD` and its pumps at the DEL and
            // again at the next ADD (a connection's DEL, ADD, DEL... under libuv).
            return Ok(());
        }
        drop(list);
        h.set_interest(eventpoll::Events::from_bits_retain(union))
    }

    /// The numbers known to refer to this description.
    pub fn numbers(&self) -> Vec<i32> {
        self.numbers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every item watching this description: (instance, number, interest).
    pub fn interests(&self) -> Vec<(usize, i32, u32)> {
        self.interests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Record that the item (instance, number) now has `events` (`None`: removed).
    pub fn record(&self, inst: usize, fd: i32, events: Option<u32>) {
        let mut list = self.interests.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|&(i, f, _)| (i, f) != (inst, fd));
        if let Some(ev) = events {
            list.push((inst, fd, ev));
        }
    }
}

/// What a number is.
#[derive(Clone)]
pub enum Slot {
    /// An eventpoll instance.
    Epoll(Arc<Instance>),
    /// A host file the engine knows.
    Host(Arc<HostDesc>),
    /// One of the library's own descriptors (a bell, the driver's epoll): invisible to the
    /// program (`close` says `EBADF`, `epoll_ctl` too).
    Hidden,
}

/// A readers/writer gate without owner tracking, so that `fork`'s handlers can take it in
/// one callback and release it in another (and in the child).
#[derive(Default)]
pub struct Gate {
    readers: AtomicUsize,
    writer: AtomicBool,
}

impl Gate {
    /// Enter as a reader (waits while a fork is being prepared).
    pub fn enter(&self) -> GateGuard<'_> {
        loop {
            while self.writer.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            self.readers.fetch_add(1, Ordering::SeqCst);
            if !self.writer.load(Ordering::SeqCst) {
                return GateGuard(self);
            }
            self.readers.fetch_sub(1, Ordering::SeqCst);
        }
    }
    fn lock_exclusive(&self) {
        while self
            .writer
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            std::thread::yield_now();
        }
        while self.readers.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
    fn unlock_exclusive(&self) {
        self.writer.store(false, Ordering::SeqCst);
    }
}

/// A reader's hold on the [`Gate`].
pub struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The process state. See the module documentation.
pub struct Process {
    /// The process this state belongs to (a `vfork` child shares our memory but must not
    /// touch it: interposed calls from another pid go straight to the kernel).
    pid: AtomicI32,
    /// The host driver.
    pub host: Host,
    /// Numbers at or above this are used for the library's own descriptors.
    pub hidden_base: i32,
    table: Mutex<Vec<Option<Slot>>>,
    /// The watch budget shared by every instance (`max_user_watches`).
    user: Arc<User>,
    /// Held by engine steps; taken exclusively around `fork`.
    pub gate: Gate,
    /// One bit per number from `hidden_base`: set while the number is [`Slot::Hidden`].
    hidden_bits: Box<[AtomicU64]>,
    /// Where `EVENTPOLL_LOG` traces go (-1: not tracing).
    pub log_fd: i32,
    /// `fork` hands every instance over to the kernel, so that parent and child share it
    /// (the default; `EVENTPOLL_FORK=copy`: each keeps its own engine copy).
    share_on_fork: bool,
}

static PROCESS: OnceLock<Option<Process>> = OnceLock::new();

/// The process state, created on first use; `None` when the library cannot work here (no
/// host driver) or when called from a `vfork` child.
pub fn get() -> Option<&'static Process> {
    let p = PROCESS.get_or_init(Process::init).as_ref()?;
    is_own(p).then_some(p)
}

/// The process state for the calls that act on epoll instances and the files they watch —
/// the waits (`epoll_wait`, `epoll_pwait`, `epoll_pwait2`: one per request in a server),
/// `epoll_ctl`, `poll`/`select` of an instance, the key-less wakeups of `shutdown` and
/// the like — without [`get`]'s `getpid` while the [fork mark](fork_mark) says this
/// memory was not copied into a child since the state was set up (Node's HTTP server made
/// four `getpid` per request before, two of them in `epoll_ctl`).
///
/// What it cannot see is a child that shares this memory: a `vfork` child (or one of a raw
/// `clone(CLONE_VM)`) runs on its parent thread's memory, stack and thread-local storage,
/// and nothing it can read without a system call tells it apart from that thread. Such a
/// child that makes one of these calls — which POSIX leaves undefined, `posix_spawn`'s
/// child never does — is served from the parent's state, as on Linux, where it shares the
/// parent's epoll instances and files (a number the child itself changed before the call
/// still names the parent's file here; before, the call reached the kernel, which did not
/// know the instance at all). The calls that change the descriptor table — `close`,
/// `dup2` and the others that a `vfork` child does make before `exec` — keep [`get`]'s
/// check: the child's table is its own.
pub fn get_unless_copied() -> Option<&'static Process> {
    unless_copied(PROCESS.get_or_init(Process::init).as_ref()?)
}

/// [`existing`] with [`get_unless_copied`]'s check: the state if it exists already.
pub fn existing_unless_copied() -> Option<&'static Process> {
    unless_copied(PROCESS.get()?.as_ref()?)
}

/// `p` unless this memory is a copy in a child: the [fork mark](fork_mark) intact, or
/// (where there is no mark) the pid checked.
fn unless_copied(p: &'static Process) -> Option<&'static Process> {
    (fork_mark::intact() || is_own(p)).then_some(p)
}

/// Whether the calling process is the one `p` was set up in (`getpid`): `false` in a child,
/// a `vfork` child included.
pub fn is_own(p: &Process) -> bool {
    p.pid.load(Ordering::Relaxed) == sys::getpid()
}

/// A word the kernel zeroes in every child that gets a *copy* of this memory (`fork`,
/// `clone` without `CLONE_VM`, whether or not `pthread_atfork` handlers run): it lives on a
/// page advised `MADV_WIPEONFORK` (Linux 4.14), which such a child finds filled with
/// zeroes. Set to 1 where the process state was set up and again by `fork`'s child
/// handler (which also records the child's pid), so "1" means this memory belongs to the
/// process the state was made for — one load instead of a `getpid`. Where the page cannot
/// be made (an older kernel, a seccomp filter) the word is absent and the check is `getpid`.
mod fork_mark {
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

    const MADV_WIPEONFORK: libc::c_int = 18;
    static MARK: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());

    /// Make the page (once) and set the word.
    pub(super) fn set() {
        let mut m = MARK.load(Ordering::Acquire);
        if m.is_null() {
            // SAFETY: a fresh anonymous private mapping of one page, owned by this module
            // for the life of the process (never unmapped).
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            // SAFETY: as above; the arguments describe a new mapping, nothing existing.
            let a = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if a == libc::MAP_FAILED {
                return;
            }
            // SAFETY: `a` is the page just mapped.
            if unsafe { libc::madvise(a, page, MADV_WIPEONFORK) } != 0 {
                // SAFETY: the page just mapped, used by nothing.
                unsafe { libc::munmap(a, page) };
                return;
            }
            m = a.cast();
            if let Err(other) =
                MARK.compare_exchange(std::ptr::null_mut(), m, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: our page lost the race and was never published.
                unsafe { libc::munmap(a, page) };
                m = other;
            }
        }
        // SAFETY: a published mark points to a live, aligned, zero-filled-or-set page.
        unsafe { &*m }.store(1, Ordering::Release);
    }

    /// Whether the word is there and set: this memory was not copied into a child since.
    pub(super) fn intact() -> bool {
        let m = MARK.load(Ordering::Acquire);
        // SAFETY: a published mark points to a page mapped for the life of the process
        // (a copied child has the mapping too, zeroed).
        !m.is_null() && unsafe { &*m }.load(Ordering::Acquire) == 1
    }
}

/// Whether calls are traced (`EVENTPOLL_LOG`), without the process check's `getpid`: a
/// wait asks this after every call, and tracing is off but when asked for.
pub fn tracing() -> bool {
    PROCESS
        .get()
        .and_then(Option::as_ref)
        .is_some_and(|p| p.log_fd >= 0)
}

/// The process state if it exists already (interposed `close`/`dup` do not create it: a
/// program that never used epoll pays nothing).
pub fn existing() -> Option<&'static Process> {
    let p = PROCESS.get()?.as_ref()?;
    is_own(p).then_some(p)
}

/// The first hidden number and the soft descriptor limit.
fn hidden_base() -> (i32, i64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit; getrlimit is not interposed.
    let cur = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as i64
    } else {
        1024
    };
    ((cur - 1024).max(cur * 3 / 4).max(3) as i32, cur)
}

fn max_user_watches() -> usize {
    std::fs::read_to_string("/proc/sys/fs/epoll/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(eventpoll::linux::DEFAULT_MAX_USER_WATCHES)
}

/// `EVENTPOLL_LOG`: unset, empty or `0` → no tracing; an absolute path → that file
/// (appended, at a hidden number); `1` (or any other value) → standard error. A value that
/// looks like a path but cannot be used also traces to standard error, and says so there
/// (once, at the first call).
fn log_fd(hidden_base: i32) -> i32 {
    let Some(v) = std::env::var_os("EVENTPOLL_LOG") else {
        return -1;
    };
    if v.is_empty() || v == "0" {
        return -1;
    }
    let bytes = v.as_encoded_bytes();
    let shown = v.to_string_lossy();
    if bytes.first() != Some(&b'/') {
        if bytes.contains(&b'/') || bytes.contains(&b'.') {
            notice(&format!(
                "EVENTPOLL_LOG={shown} is not an absolute path: tracing to standard error"
            ));
        }
        return 2;
    }
    match open_log_file(bytes, hidden_base) {
        Ok(fd) => fd,
        Err(e) => {
            notice(&format!(
                "EVENTPOLL_LOG={shown}: cannot open it ({e}): tracing to standard error"
            ));
            2
        }
    }
}

/// Open (create, append) a file the library writes to — the trace, the checker's findings
/// — at a number of the hidden range.
pub(crate) fn open_log_file(path: &[u8], hidden_base: i32) -> std::io::Result<i32> {
    let path = std::ffi::CString::new(path)
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid NUL-terminated path; open is not interposed.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(sys::move_high(fd, hidden_base))
    }
}

/// One line on standard error about a setting the library cannot follow.
pub(crate) fn notice(text: &str) {
    let line = format!("eventpoll[{}]: {text}\n", sys::getpid());
    let _ = sys::write(2, line.as_bytes());
}

/// A descriptor the host made for itself after start-up (a blocked thread's eventfd):
/// one of the library's own.
fn hide_own_fd(fd: i32) {
    if let Some(p) = PROCESS.get().and_then(Option::as_ref) {
        drop(p.set(fd, Some(Slot::Hidden)));
    }
}

extern "C" fn fork_prepare() {
    if let Some(p) = PROCESS.get().and_then(Option::as_ref) {
        p.gate.lock_exclusive();
        // Host wakeups still queued in the driver reach the ready lists now: the hand-over
        // carries them to the kernel (or, with EVENTPOLL_FORK=copy, the child's copy of
        // every instance has them; the child re-registers and drops those reports).
        p.host.pump();
        if p.share_on_fork {
            p.hand_over_instances();
        }
    }
}

extern "C" fn fork_parent() {
    if let Some(p) = PROCESS.get().and_then(Option::as_ref) {
        p.gate.unlock_exclusive();
    }
}

extern "C" fn fork_child() {
    if let Some(p) = PROCESS.get().and_then(Option::as_ref) {
        p.pid.store(sys::getpid(), Ordering::Relaxed);
        fork_mark::set();
        p.after_fork_child();
        crate::check::after_fork();
        p.gate.unlock_exclusive();
    }
}

impl Process {
    fn init() -> Option<Process> {
        let asked = std::env::var("EVENTPOLL_DRIVER")
            .ok()
            .filter(|s| !s.is_empty());
        let kind = asked.as_deref().and_then(DriverKind::from_name);
        if let (Some(name), None) = (&asked, kind) {
            notice(&format!(
                "EVENTPOLL_DRIVER={name} is not a driver (uring, epoll or poll): using the default"
            ));
        }
        let (base, limit) = hidden_base();
        let span = (limit - base as i64).max(1024) as usize;
        let host = match kind {
            Some(kind) => Host::with_hidden_base(kind, base).ok()?,
            None => Host::best(base).ok()?,
        };
        let p = Process {
            pid: AtomicI32::new(sys::getpid()),
            host,
            hidden_base: base,
            hidden_bits: (0..span.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            table: Mutex::new(Vec::new()),
            user: User::new(max_user_watches()),
            gate: Gate::default(),
            log_fd: log_fd(base),
            share_on_fork: std::env::var_os("EVENTPOLL_FORK").is_none_or(|v| v != "copy"),
        };
        let mut own = Vec::new();
        p.host.own_fds(&mut own);
        for fd in own {
            p.set(fd, Some(Slot::Hidden));
        }
        // The eventfds of threads blocked in a wait, made later, are hidden as they come.
        p.host.on_own_fd(hide_own_fd);
        if p.log_fd > 2 {
            p.set(p.log_fd, Some(Slot::Hidden));
        }
        if let Some(fd) = crate::check::init(base) {
            p.set(fd, Some(Slot::Hidden));
        }
        if p.log_fd >= 0 {
            let how = if kind.is_some() {
                "EVENTPOLL_DRIVER"
            } else {
                "the default"
            };
            let line = format!(
                "eventpoll[{}]: libeventpoll {}, driver {} ({how})\n",
                sys::getpid(),
                env!("CARGO_PKG_VERSION"),
                p.host.kind().name()
            );
            let _ = sys::write(p.log_fd, line.as_bytes());
        }
        HIDDEN_FLOOR.store(base, Ordering::Relaxed);
        fork_mark::set();
        // SAFETY: registering plain extern "C" handlers; they only touch the process state.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
        Some(p)
    }

    fn table(&self) -> MutexGuard<'_, Vec<Option<Slot>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `fd` refers to the description `target` (a `File::description_id`), read in
    /// place (the checker asks it for every event it looks at).
    pub fn refers_to(&self, fd: i32, target: usize) -> bool {
        let t = self.table();
        match usize::try_from(fd).ok().and_then(|i| t.get(i)) {
            Some(Some(Slot::Host(d))) => d.file.description_id() == target,
            Some(Some(Slot::Epoll(i))) => i.hep.epoll().file().description_id() == target,
            _ => false,
        }
    }

    /// What `fd` is, if the table knows.
    pub fn slot(&self, fd: i32) -> Option<Slot> {
        let t = self.table();
        usize::try_from(fd)
            .ok()
            .and_then(|i| t.get(i))
            .and_then(Clone::clone)
    }

    /// Every known number with its slot, in order.
    pub fn slots(&self) -> Vec<(i32, Slot)> {
        self.table()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.clone().map(|s| (i as i32, s)))
            .collect()
    }

    /// The known numbers in `first..fd` that refer to the same instance or host
    /// description as `fd` (its duplicates below it), in order.
    pub fn duplicates_below(&self, fd: i32, first: u32) -> Vec<i32> {
        let t = self.table();
        let Some(Some(this)) = usize::try_from(fd).ok().and_then(|i| t.get(i)) else {
            return Vec::new();
        };
        let same = |s: &Slot| match (s, this) {
            (Slot::Epoll(a), Slot::Epoll(b)) => Arc::ptr_eq(a, b),
            (Slot::Host(a), Slot::Host(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let end = (fd as usize).min(t.len());
        (first as usize..end)
            .filter(|&i| t[i].as_ref().is_some_and(same))
            .map(|i| i as i32)
            .collect()
    }

    /// The numbers in `first..=last` the library knows, in order, each with whether it is
    /// one of the library's own (hidden) descriptors.
    pub fn known_in(&self, first: u32, last: u32) -> Vec<(i32, bool)> {
        let t = self.table();
        let end = (last as usize).saturating_add(1).min(t.len());
        (first as usize..end)
            .filter_map(|i| t[i].as_ref().map(|s| (i as i32, matches!(s, Slot::Hidden))))
            .collect()
    }

    /// Set `fd`'s slot; returns the previous one (to be dropped by the caller, unlocked).
    pub fn set(&self, fd: i32, slot: Option<Slot>) -> Option<Slot> {
        let Ok(i) = usize::try_from(fd) else {
            return None;
        };
        let hidden = matches!(slot, Some(Slot::Hidden));
        let mut t = self.table();
        if t.len() <= i {
            slot.as_ref()?;
            t.resize(i + 1, None);
        }
        let old = std::mem::replace(&mut t[i], slot);
        if hidden || matches!(old, Some(Slot::Hidden)) {
            self.set_hidden_bit(fd, hidden);
        }
        old
    }

    fn hidden_word(&self, fd: i32) -> Option<(&AtomicU64, u64)> {
        let off = usize::try_from(fd.checked_sub(self.hidden_base)?).ok()?;
        Some((self.hidden_bits.get(off / 64)?, 1 << (off % 64)))
    }

    fn set_hidden_bit(&self, fd: i32, on: bool) {
        if let Some((w, bit)) = self.hidden_word(fd) {
            if on {
                w.fetch_or(bit, Ordering::SeqCst);
            } else {
                w.fetch_and(!bit, Ordering::SeqCst);
            }
        }
    }

    /// Whether `fd` is hidden, from the bitmap (`None`: outside it).
    fn hidden_bit(&self, fd: i32) -> Option<bool> {
        self.hidden_word(fd)
            .map(|(w, bit)| w.load(Ordering::SeqCst) & bit != 0)
    }

    /// Forget `fd` before the kernel closes it (or replaces it, for `dup2`): the number no
    /// longer refers to its description. The returned slot must be dropped before the
    /// kernel's close, unlocked: dropping the last number of a host description releases it
    /// (its items are removed, its driver registration dropped).
    pub fn forget(&self, fd: i32) -> Option<Slot> {
        let old = self.set(fd, None)?;
        if matches!(old, Slot::Host(_) | Slot::Epoll(_)) {
            // Wakeups the host had before this close are Linux's before it: a wakeup of a
            // file whose description goes now must still reach the instances watching it
            // (delivered before the caller drops the slot, which may release it).
            self.host.pump();
        }
        if let Slot::Host(desc) = &old {
            let mut nums = desc.numbers.lock().unwrap_or_else(|e| e.into_inner());
            nums.retain(|&n| n != fd);
            desc.poll_off(&nums, fd);
        }
        Some(old)
    }

    /// `fd` is about to be replaced by `dup2`/`dup3`: a host description polled through
    /// it is polled through another of its numbers from now on, moved while `fd` still
    /// names its file — the kernel-epoll driver deletes its items by number, and a
    /// deletion after the replacement finds the new file, leaving the old item behind
    /// (`scenarios/regressions/ghost-after-dup2-over-registered-number.ep`). The table
    /// keeps `fd` until the call has succeeded ([`Process::forget`] then); if it fails,
    /// the description is polled through a number as good as `fd`.
    pub fn replacing(&self, fd: i32) {
        let Some(Slot::Host(desc)) = self.slot(fd) else {
            return;
        };
        let nums = desc.numbers.lock().unwrap_or_else(|e| e.into_inner());
        desc.poll_off(&nums, fd);
    }

    /// `newfd` now refers to the same description as `oldfd` (after a successful dup). A
    /// host number the table did not know gets its description now, so that a later
    /// `EPOLL_CTL_ADD` of either number finds the one shared description (closing one of
    /// them then leaves a ghost item, as on Linux).
    pub fn duplicated(&self, oldfd: i32, newfd: i32) {
        let slot = match self.slot(oldfd) {
            Some(Slot::Hidden) => None,
            // A kernel epoll the table does not know (an instance handed over at a `fork`):
            // not registered, as that would poll it, and a poll of an epoll file drops
            // items from its ready list (Linux's `dup` touches nothing).
            None if sys::is_epoll(oldfd) == Some(true) => None,
            // Registered unwatched: in a forked child, a poll armed for it would hold the
            // file past the child's exit (see `Host::open_unwatched`).
            None => self
                .describe(oldfd, true, 0)
                .ok()
                .and_then(|_| self.slot(oldfd)),
            other => other,
        };
        if let Some(Slot::Host(desc)) = &slot {
            desc.numbers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(newfd);
        }
        drop(self.set(newfd, slot));
    }

    /// `fd` has just arrived over a unix socket (`SCM_RIGHTS`): when it refers to an
    /// instance or to a watched description the table knows, it becomes one more of its
    /// numbers, as a `dup` would — so that closing the other number leaves the items
    /// registered, as on Linux, and the checker can name `fd` as the one keeping them.
    /// Costs one `kcmp` per known instance and watched description (only when a number
    /// is received).
    pub fn received(&self, fd: i32) {
        if matches!(self.slot(fd), Some(Slot::Host(_) | Slot::Epoll(_))) {
            // The kernel gave out this number: what the table had there was closed unseen.
            drop(self.forget(fd));
        }
        let same = self.slots().into_iter().find_map(|(n, s)| {
            let candidate = match &s {
                Slot::Epoll(_) => true,
                Slot::Host(d) => !d.interests().is_empty(),
                Slot::Hidden => false,
            };
            (candidate && n != fd && sys::same_file(n, fd) == Some(true)).then_some(n)
        });
        if let Some(n) = same {
            self.duplicated(n, fd);
        }
    }

    /// A new instance: a kernel epoll (the number the program gets) watching a hidden
    /// eventfd bell.
    pub fn create_instance(&self, flags: i32) -> Result<i32, Errno> {
        let e = sys::epoll_create1(flags)?;
        let d = match sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
            Ok(d) => sys::move_high(d, self.hidden_base),
            Err(err) => {
                let _ = sys::close(e);
                return Err(err);
            }
        };
        if let Err(err) = sys::epoll_ctl(e, libc::EPOLL_CTL_ADD, d, Some((libc::EPOLLIN as u32, 0)))
        {
            let _ = sys::close(d);
            let _ = sys::close(e);
            return Err(err);
        }
        let epoll = Epoll::with_user(self.user.clone());
        let hep = HostEpoll::with_bell(epoll, self.host.clone(), Arc::new(Bell::on_fd(d, true)));
        INSTANCES.fetch_add(1, Ordering::SeqCst);
        let inst = Arc::new(Instance { hep });
        drop(self.set(d, Some(Slot::Hidden)));
        drop(self.set(e, Some(Slot::Epoll(inst))));
        Ok(e)
    }

    /// The engine description for `fd` as an `epoll_ctl` target: known instance or host
    /// description, or a new host description for a host number seen for the first time
    /// (or whose number was closed and reused behind our back). `Err(EBADF)` when `fd` is
    /// not open.
    ///
    /// A new host description is registered watching the host for `interest` (the event
    /// of an `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD`; 0 for a `DEL`) from the start
    /// ([`eventpoll_host::Host::open_for`]), so that its registration arms what the item
    /// needs at once: with the io_uring driver one `io_uring_enter` for both directions,
    /// where `HostFd::watch` made a second one for the output poll; with the kernel-epoll
    /// driver no `EPOLL_CTL_MOD` of the private epoll (with its pumps) to widen the input
    /// bits. What the host is asked for afterwards is unchanged ([`HostDesc::ask_host`]).
    ///
    /// Also says whether the call registered the description with the driver just now, a
    /// registration that delivered the host's pending wakeups as a pump does
    /// ([`eventpoll_host::Driver::pumps_on_register`]).
    pub fn target(&self, fd: i32, interest: u32) -> Result<(File, bool), Errno> {
        let known = self.slot(fd).is_some();
        let file = self.describe(fd, false, interest)?;
        let pumped = self.host.driver().pumps_on_register()
            && Host::host_fd(&file).is_some_and(|h| h.is_pollable())
            && !known;
        Ok((file, pumped))
    }

    /// [`Process::target`]; a new host description is registered unwatched when
    /// `unwatched` ([`eventpoll_host::Host::open_unwatched`]: a number learnt from a `dup`,
    /// which no item watches yet), else for `interest`.
    fn describe(&self, fd: i32, unwatched: bool, interest: u32) -> Result<File, Errno> {
        match self.slot(fd) {
            Some(Slot::Epoll(inst)) => {
                // Still the kernel epoll watching this instance's bell? A number closed by
                // a system call the library does not see (issued without glibc) and
                // reused is not nested as the dead instance: it is forgotten (its items
                // go) and taken as what it is now.
                let bell = inst.hep.bell().fd();
                if sys::epoll_holds(fd, bell) != Some(false) {
                    return Ok(inst.hep.epoll().file().clone());
                }
                crate::log::trace(
                    || format!("(instance {fd} was closed unseen, forgotten)"),
                    crate::log::Ret(0),
                );
                drop(self.forget(fd));
            }
            Some(Slot::Hidden) => return Err(Errno::EBADF),
            Some(Slot::Host(desc)) => {
                // A description that cannot be polled holds no items, so there is nothing
                // to keep — and its number may have been closed where the library does not
                // see it (glibc's `closedir` after `fdopendir`) and reused: look again.
                let stale = match desc.host_fd() {
                    Some(h) if !h.is_pollable() => true,
                    Some(h) => self.host.driver().still_registered(h, fd) == Some(false),
                    None => false,
                };
                if !stale {
                    return Ok(desc.file.clone());
                }
                // Closed (by a path we do not see) and reused: the old description is gone.
                drop(self.forget(fd));
            }
            None => {}
        }
        // A number that is not open: `EBADF` from the host, which checks it first.
        // Output readiness is watched once an item asks for it: from the registration on
        // when the call that opens it does (`target`), else later (abi::ctl calls
        // `ask_host`).
        let file = if unwatched {
            self.host.open_unwatched(fd)?
        } else {
            self.host
                .open_for(fd, eventpoll::Events::from_bits_retain(interest))?
        };
        let desc = Arc::new(HostDesc {
            file: file.clone(),
            numbers: Mutex::new(vec![fd]),
            interests: Mutex::new(Vec::new()),
        });
        drop(self.set(fd, Some(Slot::Host(desc))));
        Ok(file)
    }

    /// The distinct instances among `fds` (one table lock for all).
    pub fn instances_among(&self, fds: impl Iterator<Item = i32>) -> Vec<Arc<Instance>> {
        let t = self.table();
        let mut out: Vec<Arc<Instance>> = Vec::new();
        for fd in fds {
            if let Some(Some(Slot::Epoll(i))) = usize::try_from(fd).ok().and_then(|n| t.get(n)) {
                if !out.iter().any(|o| Arc::ptr_eq(o, i)) {
                    out.push(i.clone());
                }
            }
        }
        out
    }

    /// The host description behind `fd`, if the table knows one.
    pub fn host_desc(&self, fd: i32) -> Option<Arc<HostDesc>> {
        match self.slot(fd)? {
            Slot::Host(d) => Some(d),
            _ => None,
        }
    }

    /// In the child after `fork`: own copies of the kernel objects shared with the parent
    /// (the driver's; and the instances' bells and kernel epolls, which exist here only with
    /// `EVENTPOLL_FORK=copy`: otherwise the instances were handed over before the fork).
    fn after_fork_child(&self) {
        self.host.after_fork_child();
        let mut own = Vec::new();
        self.host.own_fds(&mut own);
        for fd in own {
            drop(self.set(fd, Some(Slot::Hidden)));
        }
        if self.share_on_fork {
            return; // every instance was handed over to the kernel before the fork
        }
        // Each instance gets its own bell and its own kernel epoll under every number.
        let slots = self.slots();
        let mut done: Vec<*const Instance> = Vec::new();
        for (num, slot) in &slots {
            let Slot::Epoll(inst) = slot else { continue };
            let d = inst.hep.bell().fd();
            if !done.contains(&Arc::as_ptr(inst)) {
                done.push(Arc::as_ptr(inst));
                if let Ok(nd) = sys::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) {
                    let _ = sys::dup3(nd, d, libc::O_CLOEXEC);
                    let _ = sys::close(nd);
                }
                inst.hep.bell().forget_ring();
            }
            let cloexec = sys::fcntl(*num, libc::F_GETFD, 0).unwrap_or(0) & libc::FD_CLOEXEC;
            if let Ok(ne) = sys::epoll_create1(0) {
                let _ = sys::epoll_ctl(ne, libc::EPOLL_CTL_ADD, d, Some((libc::EPOLLIN as u32, 0)));
                let flags = if cloexec != 0 { libc::O_CLOEXEC } else { 0 };
                let _ = sys::dup3(ne, *num, flags);
                let _ = sys::close(ne);
            }
        }
        for (_, slot) in &slots {
            if let Slot::Epoll(inst) = slot {
                inst.sync();
            }
        }
    }
}
