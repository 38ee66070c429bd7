//! The descriptor table: numbers → open file descriptions, with Linux's numbering
//! (lowest free number), `dup`, `dup2`, `close` and `fork`, and the Linux-shaped system call
//! layer (`epoll_create1`, `epoll_ctl`, `epoll_wait`, `epoll_pwait2`, `read`, `write`,
//! `poll`, ...) that takes and returns raw numbers and errno values exactly as the kernel's
//! calls do. Object-creating calls (`pipe2`, `eventfd`, `socketpair`, `timerfd_create`, ...)
//! are defined next to their objects in [`crate::objects`].
//!
//! A description is released when its last descriptor is closed — in whichever table, since
//! `fork` copies share descriptions — and not before: closing one of two descriptors of a
//! file leaves its epoll items in place ("ghost events").
//!
//! ```
//! use eventpoll::{FdTable, EpollEvent, Events, linux::EPOLL_CTL_ADD};
//! let t = FdTable::new();
//! let ep = t.epoll_create1(0).unwrap();
//! let efd = t.eventfd(1, 0).unwrap();
//! t.epoll_ctl(ep, EPOLL_CTL_ADD, efd, Some(&EpollEvent::new(Events::IN, 5))).unwrap();
//! let mut buf = [EpollEvent::default(); 4];
//! assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1));
//! assert_eq!(buf[0].data(), 5);
//! ```

use crate::check::{Checker, Descriptors};
use crate::epoll::{self, EpollShared, User, Waker};
use crate::errno::{Errno, Result};
use crate::event::{EpollEvent, Events, EPOLL_CLOEXEC, EPOLL_CTL_DEL};
use crate::file::File;
use crate::open_flags::OpenFlags;
use crate::platform::Deadline;
use crate::prelude::*;
use crate::sync::{lock, Arc, Mutex};
use crate::wait_queue::{Exclusivity, Parker, WaitQueue, WakeReason};
use core::time::Duration;

/// Linux's `struct timespec` (seconds and nanoseconds, both signed), as `epoll_pwait2` and
/// timerfd take it. Validity is checked where Linux checks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds; valid in `0..1_000_000_000`.
    pub tv_nsec: i64,
}

impl Timespec {
    /// Whether Linux's `timespec64_valid` accepts it.
    pub fn is_valid(&self) -> bool {
        self.tv_sec >= 0 && (0..1_000_000_000).contains(&self.tv_nsec)
    }
    /// As a duration (valid timespecs only).
    pub fn to_duration(&self) -> Duration {
        Duration::new(
            self.tv_sec.max(0) as u64,
            self.tv_nsec.clamp(0, 999_999_999) as u32,
        )
    }
}

/// Linux's `struct itimerspec`, for timerfd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ITimerSpec {
    /// Period of an interval timer (zero: one-shot).
    pub interval: Timespec,
    /// First expiration (zero: disarm).
    pub value: Timespec,
}

/// One entry of a `poll(2)` call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor (negative: ignored).
    pub fd: i32,
    /// Requested bits.
    pub events: i16,
    /// Returned bits (`POLLNVAL` for a closed descriptor).
    pub revents: i16,
}

/// Limits and settings of a table ("the process").
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// `RLIMIT_NOFILE`: descriptor numbers are below this (`EMFILE` beyond).
    pub max_fds: usize,
    /// Whether the process holds `CAP_BLOCK_SUSPEND` (otherwise `EPOLLWAKEUP` is dropped).
    pub cap_block_suspend: bool,
    /// Check the table's use of epoll ([`crate::check`]): findings through
    /// [`FdTable::take_findings`]. Off (`None`) by default.
    pub check: Option<crate::check::CheckConfig>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_fds: 1 << 20,
            cap_block_suspend: false,
            check: None,
        }
    }
}

#[derive(Clone)]
struct Slot {
    file: File,
    cloexec: bool,
}

struct Slots {
    slots: Vec<Option<Slot>>,
    /// No free number is below this.
    lowest_free: usize,
}

/// A descriptor table with its Linux-shaped system calls. See the module documentation.
pub struct FdTable {
    slots: Mutex<Slots>,
    config: TableConfig,
    user: Arc<User>,
    pub(crate) clock: Arc<dyn crate::platform::Clock>,
    checker: Option<Checker>,
}

impl core::fmt::Debug for FdTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FdTable")
            .field("open", &lock(&self.slots).slots.iter().flatten().count())
            .finish()
    }
}

/// A table dropped is a process's table at exit (or an exec's unshared one): its numbers
/// are closed as by `close_range(0, ~0U, 0)` — Linux's `close_files` puts every file in
/// ascending order and the final puts run as task work, newest first, so the files go
/// highest number first and each release wakes its peers before the next one
/// (`scenarios/fork/exit-releases-highest-first.ep`).
impl Drop for FdTable {
    fn drop(&mut self) {
        let _ = self.close_range(0, u32::MAX, 0);
    }
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FdTable {
    /// An empty table with default limits, its own watch budget and the platform's default
    /// clock (with `std`: the host's monotonic clock) for timerfds and timeouts.
    pub fn new() -> FdTable {
        FdTable::with_config(
            TableConfig::default(),
            User::new(epoll::DEFAULT_MAX_USER_WATCHES),
        )
    }

    /// A table with explicit limits and a (possibly shared) watch budget.
    pub fn with_config(config: TableConfig, user: Arc<User>) -> FdTable {
        FdTable::with_clock(config, user, crate::platform::default_clock())
    }

    /// A table whose timerfds run on `clock`, and whose timeouts (`epoll_wait`, `poll`) are
    /// measured on it: one time source.
    pub fn with_clock(
        config: TableConfig,
        user: Arc<User>,
        clock: Arc<dyn crate::platform::Clock>,
    ) -> FdTable {
        FdTable {
            slots: Mutex::new(Slots {
                slots: Vec::new(),
                lowest_free: 0,
            }),
            checker: config.check.map(Checker::new),
            config,
            user,
            clock,
        }
    }

    /// The watch budget this table's epoll instances charge.
    pub fn user(&self) -> &Arc<User> {
        &self.user
    }

    /// The table's settings.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// `fork(2)`: a copy of the table whose descriptors refer to the same descriptions.
    pub fn fork(&self) -> FdTable {
        let s = lock(&self.slots);
        FdTable {
            slots: Mutex::new(Slots {
                slots: s.slots.clone(),
                lowest_free: s.lowest_free,
            }),
            config: self.config.clone(),
            user: self.user.clone(),
            clock: self.clock.clone(),
            checker: self.config.check.map(Checker::new),
        }
    }

    /// The description behind `fd` (Linux's `fdget`).
    pub fn get(&self, fd: i32) -> Result<File> {
        Self::slot(&lock(&self.slots), fd).map(|slot| slot.file.clone())
    }

    /// The open slot of `fd`, or `EBADF`.
    fn slot(s: &Slots, fd: i32) -> Result<&Slot> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| s.slots.get(i))
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    /// The descriptions behind two numbers, looked up under one acquisition of the table's
    /// lock; each side is `EBADF` on its own.
    pub(crate) fn get_pair(&self, a: i32, b: i32) -> (Result<File>, Result<File>) {
        let s = lock(&self.slots);
        let get = |fd: i32| Self::slot(&s, fd).map(|slot| slot.file.clone());
        (get(a), get(b))
    }

    /// Install `file` at the lowest free number. Of `flags` only
    /// [`OpenFlags::CLOEXEC`] counts: it is the descriptor's `FD_CLOEXEC` (the status flags,
    /// `O_NONBLOCK`, belong to the description: [`File::with_flags`]). A raw `i32` converts,
    /// so `flags & O_CLOEXEC` of a system call passes through (every `*_CLOEXEC` of Linux is
    /// `O_CLOEXEC`).
    ///
    /// ```
    /// use eventpoll::{FdTable, File, OpenFlags, objects::eventfd::{EventFd, EventFdMode}};
    /// let t = FdTable::new();
    /// let fd = t.install(File::new(EventFd::new(0, EventFdMode::Counter)), OpenFlags::CLOEXEC).unwrap();
    /// assert_eq!(t.cloexec(fd), Ok(true));
    /// ```
    pub fn install(&self, file: File, flags: impl Into<OpenFlags>) -> Result<i32> {
        let cloexec = flags.into().contains(OpenFlags::CLOEXEC);
        let mut s = lock(&self.slots);
        let fd = Self::lowest_free(&s, 0, self.config.max_fds)?;
        Self::put(&mut s, fd, Slot { file, cloexec });
        Ok(fd as i32)
    }

    /// Install two files at the two lowest free numbers (pipe2, socketpair), or neither;
    /// `flags` as for [`FdTable::install`].
    pub fn install_pair(
        &self,
        a: File,
        b: File,
        flags: impl Into<OpenFlags>,
    ) -> Result<(i32, i32)> {
        let cloexec = flags.into().contains(OpenFlags::CLOEXEC);
        let mut s = lock(&self.slots);
        let fa = Self::lowest_free(&s, 0, self.config.max_fds)?;
        Self::put(&mut s, fa, Slot { file: a, cloexec });
        match Self::lowest_free(&s, fa + 1, self.config.max_fds) {
            Ok(fb) => {
                Self::put(&mut s, fb, Slot { file: b, cloexec });
                Ok((fa as i32, fb as i32))
            }
            Err(e) => {
                let undo = Self::take(&mut s, fa);
                drop(s);
                drop(undo);
                Err(e)
            }
        }
    }

    fn lowest_free(s: &Slots, from: usize, max: usize) -> Result<usize> {
        let start = from.max(s.lowest_free);
        let found = s.slots[start.min(s.slots.len())..]
            .iter()
            .position(Option::is_none)
            .map(|i| i + start)
            .unwrap_or(s.slots.len().max(start));
        if found >= max {
            Err(Errno::EMFILE)
        } else {
            Ok(found)
        }
    }

    fn put(s: &mut Slots, fd: usize, slot: Slot) {
        if s.slots.len() <= fd {
            s.slots.resize(fd + 1, None);
        }
        s.slots[fd] = Some(slot);
        if s.lowest_free == fd {
            s.lowest_free = s.slots[fd..]
                .iter()
                .position(Option::is_none)
                .map_or(s.slots.len(), |i| i + fd);
        }
    }

    fn take(s: &mut Slots, fd: usize) -> Option<Slot> {
        let old = s.slots.get_mut(fd).and_then(Option::take);
        if old.is_some() && fd < s.lowest_free {
            s.lowest_free = fd;
        }
        old
    }

    /// `close(2)`. The description is released (outside the table's lock) when this was its
    /// last descriptor.
    ///
    /// Linux: [close(2)](https://man7.org/linux/man-pages/man2/close.2.html).
    pub fn close(&self, fd: i32) -> Result<()> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        if let (Some(c), Ok(file)) = (&self.checker, self.get(fd)) {
            c.closing(self, fd, &file, "close");
        }
        let old = {
            let mut s = lock(&self.slots);
            usize::try_from(fd).ok().and_then(|i| Self::take(&mut s, i))
        };
        // Dropping `old` here, with no lock held, may release the description.
        old.map(drop).ok_or(Errno::EBADF)
    }

    /// `dup(2)`: the lowest free number, same description.
    ///
    /// Linux: [dup(2)](https://man7.org/linux/man-pages/man2/dup.2.html).
    pub fn dup(&self, fd: i32) -> Result<i32> {
        let file = self.get(fd)?;
        self.install(file, OpenFlags::empty())
    }

    /// `fcntl(fd, F_DUPFD, min)`: the lowest free number at or above `min`.
    ///
    /// Linux: [fcntl(2) (`F_DUPFD`)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "F_DUPFD", alias = "fcntl")]
    pub fn dup_min(&self, fd: i32, min: i32) -> Result<i32> {
        // fcntl looks the descriptor up first: a bad one is EBADF whatever `min` is.
        let file = self.get(fd)?;
        if min < 0 || min as usize >= self.config.max_fds {
            return Err(Errno::EINVAL);
        }
        let mut s = lock(&self.slots);
        let n = Self::lowest_free(&s, min as usize, self.config.max_fds)?;
        Self::put(
            &mut s,
            n,
            Slot {
                file,
                cloexec: false,
            },
        );
        Ok(n as i32)
    }

    /// `dup2(2)`: make `newfd` refer to `oldfd`'s description, closing what `newfd` had.
    ///
    /// Linux: [dup2(2)](https://man7.org/linux/man-pages/man2/dup.2.html).
    pub fn dup2(&self, oldfd: i32, newfd: i32) -> Result<i32> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        let file = self.get(oldfd)?;
        if newfd < 0 || newfd as usize >= self.config.max_fds {
            return Err(Errno::EBADF);
        }
        if oldfd == newfd {
            return Ok(newfd);
        }
        if let (Some(c), Ok(old)) = (&self.checker, self.get(newfd)) {
            if !old.same_description(&file) {
                c.closing(self, newfd, &old, "dup2");
            }
        }
        let old = {
            let mut s = lock(&self.slots);
            let old = Self::take(&mut s, newfd as usize);
            Self::put(
                &mut s,
                newfd as usize,
                Slot {
                    file,
                    cloexec: false,
                },
            );
            old
        };
        drop(old); // may release, outside the lock
        Ok(newfd)
    }

    /// `dup3(2)`: as [`FdTable::dup2`], with close-on-exec from `flags` (only `O_CLOEXEC`
    /// is allowed: `EINVAL` otherwise), and `oldfd == newfd` is `EINVAL`. Linux's order:
    /// flags, equal numbers, `newfd` out of range (`EBADF`), then `oldfd` (`EBADF`).
    ///
    /// ```
    /// use eventpoll::{Errno, FdTable, linux::O_CLOEXEC};
    /// let t = FdTable::new();
    /// let (r, _w) = t.pipe2(0).unwrap();
    /// assert_eq!(t.dup3(r, 9, O_CLOEXEC), Ok(9));
    /// assert!(t.cloexec(9).unwrap());
    /// assert_eq!(t.dup3(r, r, 0), Err(Errno::EINVAL));
    /// assert_eq!(t.dup3(r, 9, 1), Err(Errno::EINVAL));
    /// ```
    ///
    /// Linux: [dup3(2)](https://man7.org/linux/man-pages/man2/dup.2.html).
    pub fn dup3(&self, oldfd: i32, newfd: i32, flags: i32) -> Result<i32> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        if flags & !crate::event::O_CLOEXEC != 0 || oldfd == newfd {
            return Err(Errno::EINVAL);
        }
        if newfd < 0 || newfd as usize >= self.config.max_fds {
            return Err(Errno::EBADF);
        }
        let file = self.get(oldfd)?;
        let old = {
            let mut s = lock(&self.slots);
            let old = Self::take(&mut s, newfd as usize);
            Self::put(
                &mut s,
                newfd as usize,
                Slot {
                    file,
                    cloexec: flags & crate::event::O_CLOEXEC != 0,
                },
            );
            old
        };
        drop(old); // may release, outside the lock
        Ok(newfd)
    }

    /// `close_range(2)`: close every open number from `first` to `last` (inclusive; `last`
    /// may be past the table), or with `CLOSE_RANGE_CLOEXEC` (4) set close-on-exec on them
    /// instead. `first > last` or a flag other than `CLOSE_RANGE_UNSHARE` (2, a no-op for a
    /// table that is not shared) and `CLOSE_RANGE_CLOEXEC` is `EINVAL`. Descriptions are
    /// released outside the table's lock, as [`FdTable::close`] does.
    ///
    /// ```
    /// use eventpoll::FdTable;
    /// let t = FdTable::new();
    /// let (r, w) = t.pipe2(0).unwrap();
    /// assert_eq!(t.close_range(0, u32::MAX, 0), Ok(()));
    /// assert!(t.close(r).is_err() && t.close(w).is_err());
    /// ```
    ///
    /// Linux: [close_range(2)](https://man7.org/linux/man-pages/man2/close_range.2.html).
    pub fn close_range(&self, first: u32, last: u32, flags: u32) -> Result<()> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        const UNSHARE: u32 = 1 << 1;
        const CLOEXEC: u32 = 1 << 2;
        if flags & !(UNSHARE | CLOEXEC) != 0 || first > last {
            return Err(Errno::EINVAL);
        }
        let taken: Vec<Slot> = {
            let mut s = lock(&self.slots);
            let end = (last as usize).min(s.slots.len().saturating_sub(1));
            let mut taken = Vec::new();
            for fd in first as usize..=end {
                if flags & CLOEXEC != 0 {
                    if let Some(Some(slot)) = s.slots.get_mut(fd) {
                        slot.cloexec = true;
                    }
                } else if let Some(slot) = Self::take(&mut s, fd) {
                    taken.push(slot);
                }
            }
            taken
        };
        // Released outside the lock in Linux's order. The range is closed lowest number
        // first, and each *final* `fput` is deferred to task work, which runs newest first
        // when the call returns: a description is released where its last number in the
        // range was, and those releases go last first (so a range of closes wakes the
        // peers in reverse order).
        let mut last_at: alloc::collections::BTreeMap<usize, usize> =
            alloc::collections::BTreeMap::new();
        for (i, slot) in taken.iter().enumerate() {
            last_at.insert(slot.file.description_id(), i);
        }
        let mut finals = Vec::with_capacity(last_at.len());
        for (i, slot) in taken.into_iter().enumerate() {
            if last_at.get(&slot.file.description_id()) == Some(&i) {
                finals.push(slot);
            } else {
                drop(slot); // a later number of the same description still holds it
            }
        }
        for slot in finals.into_iter().rev() {
            drop(slot);
        }
        Ok(())
    }

    /// Whether `fd` has close-on-exec set.
    ///
    /// Linux: [fcntl(2) (`F_GETFD`)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    #[doc(alias = "F_GETFD", alias = "FD_CLOEXEC")]
    pub fn cloexec(&self, fd: i32) -> Result<bool> {
        Self::slot(&lock(&self.slots), fd).map(|slot| slot.cloexec)
    }

    /// The numbers currently open, ascending.
    pub fn open_fds(&self) -> Vec<i32> {
        let s = lock(&self.slots);
        s.slots
            .iter()
            .enumerate()
            .filter(|(_, x)| x.is_some())
            .map(|(i, _)| i as i32)
            .collect()
    }

    /// `read(2)`.
    ///
    /// Linux: [read(2)](https://man7.org/linux/man-pages/man2/read.2.html).
    pub fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        self.get(fd)?.read(buf)
    }

    /// `write(2)`.
    ///
    /// Linux: [write(2)](https://man7.org/linux/man-pages/man2/write.2.html).
    pub fn write(&self, fd: i32, buf: &[u8]) -> Result<usize> {
        // The threads this call wakes run once it returns (its wakeups are made first, as
        // a woken task usually runs after its waker's system call): see
        // `wait_queue::deferred`. A call that blocks sends them before it sleeps.
        let _wakes = crate::wait_queue::deferred::Unparks::begin();
        self.get(fd)?.write(buf)
    }

    /// `poll(2)` over engine descriptors: fills `revents` (the object's mask filtered by
    /// `events`, plus `ERR`/`HUP` always and `NVAL` for a closed number) and returns how many
    /// entries have non-zero `revents`, waiting up to `timeout_ms` (negative: no limit) for
    /// one.
    ///
    /// As in Linux's `do_poll`, the queues are those of the files found at the first scan
    /// (kept alive while the call sleeps), but every scan looks each number up again: a
    /// descriptor closed by another thread during the wait gives `NVAL` at the next wakeup.
    ///
    /// Linux: [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html).
    pub fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
        let deadline = ms_deadline(&*self.clock, timeout_ms);
        let files: Vec<Option<File>> = fds
            .iter()
            .map(|p| (p.fd >= 0).then(|| self.get(p.fd).ok()).flatten())
            .collect();
        let scan = |fds: &mut [PollFd]| {
            let mut n = 0;
            for p in fds.iter_mut() {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    match &self.get(p.fd).ok() {
                        None => Events::NVAL.bits() as i16,
                        Some(f) => {
                            let want = Events::from_bits_retain(p.events as u16 as u32)
                                | Events::ERR
                                | Events::HUP;
                            (f.poll() & want).bits() as i16
                        }
                    }
                };
                if p.revents != 0 {
                    n += 1;
                }
            }
            n
        };
        let n = scan(fds);
        if n > 0 || timeout_ms == 0 {
            return Ok(n);
        }
        // Sleep on every queue at once: hang the thread's parker on each.
        let parker = Parker::for_current_task();
        let cb: Arc<dyn crate::WakeCallback> = parker.clone();
        let queues: Vec<&WaitQueue> = files
            .iter()
            .flatten()
            .flat_map(|f| [f.ops().wait_queue(), f.ops().extra_wait_queue()])
            .flatten()
            .collect();
        for q in &queues {
            q.add(cb.clone(), Exclusivity::NonExclusive);
        }
        let signal = crate::signal::current();
        let result = loop {
            parker.reset();
            let n = scan(fds);
            if n > 0 {
                break Ok(n);
            }
            match signal.sleep_interruptibly(&parker, deadline) {
                WakeReason::Woken => continue,
                WakeReason::TimedOut => break Ok(scan(fds)),
                WakeReason::Interrupted => {
                    // Linux polls every descriptor once more before it looks at the
                    // signal: what is ready by then is returned (the handler runs on
                    // the way out all the same).
                    signal.clear(); // delivered
                    let n = scan(fds);
                    break if n > 0 { Ok(n) } else { Err(Errno::EINTR) };
                }
            }
        };
        for q in &queues {
            q.remove(&cb);
        }
        result
    }

    // ----- epoll -----

    /// The items of the epoll instance `epfd`, as `/proc/self/fdinfo/EPFD` lists them
    /// (`EBADF`, or `EINVAL` when `epfd` is not an instance), sorted by descriptor number.
    ///
    /// ```
    /// use eventpoll::{FdTable, EpollEvent, Events, TableConfig};
    /// let t = FdTable::new(); // no CAP_BLOCK_SUSPEND: EPOLLWAKEUP is dropped
    /// let ep = t.epoll_create1(0).unwrap();
    /// let efd = t.eventfd(0, 0).unwrap();
    /// t.epoll_ctl(ep, 1, efd, Some(&EpollEvent::new(Events::IN | Events::WAKEUP, 9))).unwrap();
    /// let info = t.epoll_items(ep).unwrap();
    /// assert_eq!(info[0].events, Events::IN | Events::ERR | Events::HUP);
    /// ```
    ///
    /// Linux: [proc_pid_fdinfo(5)](https://man7.org/linux/man-pages/man5/proc_pid_fdinfo.5.html).
    #[doc(alias = "fdinfo")]
    pub fn epoll_items(&self, epfd: i32) -> Result<Vec<crate::epoll::ItemInfo>> {
        let file = self.get(epfd)?;
        let ep = file.as_epoll().ok_or(Errno::EINVAL)?;
        let mut items = ep.items_info();
        items.sort_by_key(|i| i.fd);
        Ok(items)
    }

    /// `epoll_create(size)`: `EINVAL` unless `size > 0`.
    ///
    /// Linux: [epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html).
    pub fn epoll_create(&self, size: i32) -> Result<i32> {
        if size <= 0 {
            return Err(Errno::EINVAL);
        }
        self.epoll_create1(0)
    }

    /// `epoll_create1(flags)`: only `EPOLL_CLOEXEC` is allowed.
    ///
    /// Linux: [epoll_create(2)](https://man7.org/linux/man-pages/man2/epoll_create.2.html).
    pub fn epoll_create1(&self, flags: i32) -> Result<i32> {
        if flags & !EPOLL_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        let file = EpollShared::new_file(self.user.clone(), self.clock.clone());
        self.install(file, flags & EPOLL_CLOEXEC)
    }

    /// `epoll_ctl`'s descriptor side, in Linux's order: the copy-in (`EFAULT`), the two
    /// `fdget`s (`EBADF`), a target that cannot be polled (`EPERM`) before an `epfd` that is
    /// no instance (`EINVAL`); then the instance's own checks
    /// ([`EpollShared::ctl_files`]).
    ///
    /// The whole call runs while the table lends the two descriptions, under one
    /// acquisition of the table's lock: no reference is taken or dropped (Linux's `fdget`
    /// takes none in a process whose table is not shared). Holding the table's lock across
    /// the instance's work adds no lock-order edge that can close a cycle or block:
    /// - the table's lock is outermost: nothing takes it under `NEST_CHECK`, an instance's
    ///   `mtx`, a queue lock or `ready` — a harvest polls objects, and no object reaches a
    ///   table; the checker's hooks, which read the table, run after it is released
    ///   ([`FdTable::epoll_ctl`]); a forked table sharing the instance takes its own lock,
    ///   never this one;
    /// - ctl never sleeps but for those locks (no wait, no blocking read or write), and the
    ///   threads an ADD or MOD of a ready item wakes are unparked after the table's lock is
    ///   released (the `Unparks` guard of [`FdTable::epoll_ctl`]; a DEL wakes nobody);
    /// - nothing is released under it: the table holds both descriptions throughout, so a
    ///   DEL's dropped references (the item's queue entry and object handle) are never the
    ///   last ones.
    fn ctl_descriptors(
        &self,
        epfd: i32,
        op: i32,
        fd: i32,
        event: Option<EpollEvent>,
    ) -> Result<()> {
        let event = if op != EPOLL_CTL_DEL {
            event.ok_or(Errno::EFAULT)?
        } else {
            EpollEvent::default()
        };
        let s = lock(&self.slots);
        let ep_file = &Self::slot(&s, epfd)?.file;
        let target = &Self::slot(&s, fd)?.file;
        let Some(ep) = ep_file.as_epoll() else {
            // Step 4 (a target that cannot be polled) comes before step 6 (`epfd` is not an
            // instance); for an instance, `ctl_files` checks step 4 itself.
            return Err(if target.ops().wait_queue().is_none() {
                Errno::EPERM
            } else {
                Errno::EINVAL
            });
        };
        ep.ctl_files(
            ep_file,
            op,
            target,
            fd,
            event,
            self.config().cap_block_suspend,
        )
    }

    /// A [`Waker`] for the epoll instance `epfd` of this table: wakes a thread blocked in
    /// [`FdTable::epoll_wait`] (or `epoll_pwait`, `epoll_pwait2`) on it, which then returns
    /// 0 if it has no event. `EBADF` if `epfd` is not open, `EINVAL` if it is not an epoll
    /// instance (as `epoll_wait` would say).
    ///
    /// ```
    /// use eventpoll::{EpollEvent, FdTable};
    /// let table = FdTable::new();
    /// let epfd = table.epoll_create1(0).unwrap();
    /// let waker = table.epoll_waker(epfd).unwrap();
    /// let t = std::thread::spawn(move || {
    ///     let mut events = [EpollEvent::default(); 4];
    ///     table.epoll_wait(epfd, &mut events, 4, -1) // no limit: only the waker ends it
    /// });
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// waker.wake();
    /// assert_eq!(t.join().unwrap(), Ok(0));
    /// ```
    pub fn epoll_waker(&self, epfd: i32) -> Result<Waker> {
        let file = self.get(epfd)?;
        let ep = file.epoll_arc().ok_or(Errno::EINVAL)?;
        Ok(Waker::of(ep))
    }

    /// `epoll_ctl(epfd, op, fd, event)`, with Linux's checks in Linux's order; `event: None`
    /// is a NULL pointer.
    ///
    /// Linux: [epoll_ctl(2)](https://man7.org/linux/man-pages/man2/epoll_ctl.2.html).
    pub fn epoll_ctl(&self, epfd: i32, op: i32, fd: i32, event: Option<&EpollEvent>) -> Result<()> {
        // An ADD or MOD of a ready item wakes waiters (a `poll(2)` caller among them looks its
        // descriptors up again): they run once the table's lock, held across the call, is
        // released. A DEL wakes nobody and skips the guard.
        let _wakes = (op != EPOLL_CTL_DEL).then(crate::wait_queue::deferred::Unparks::begin);
        self.ctl_descriptors(epfd, op, fd, event.copied())?;
        let Some(c) = &self.checker else {
            return Ok(());
        };
        if let (Ok(ep), Ok(target)) = self.get_pair(epfd, fd) {
            c.ctl_done(
                epfd,
                &ep,
                op,
                fd,
                &target,
                &event.copied().unwrap_or_default(),
            );
        }
        Ok(())
    }

    /// `epoll_wait(epfd, events, maxevents, timeout)`: `timeout` in milliseconds, negative
    /// for no limit. `events` is the buffer; an event that does not fit in it is `EFAULT`
    /// (as a too-short user buffer is on Linux).
    ///
    /// Linux: [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html).
    pub fn epoll_wait(
        &self,
        epfd: i32,
        events: &mut [EpollEvent],
        maxevents: i32,
        timeout_ms: i32,
    ) -> Result<usize> {
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        self.epoll_wait_timeout(epfd, events, maxevents, timeout)
    }

    /// `epoll_pwait(epfd, events, maxevents, timeout, sigmask, sigsetsize)`: a signal mask
    /// of the wrong size is `EINVAL` (the engine has no signal mask to apply; blocked waits
    /// are interrupted through [`crate::Interrupt`]).
    ///
    /// Linux: [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html).
    pub fn epoll_pwait(
        &self,
        epfd: i32,
        events: &mut [EpollEvent],
        maxevents: i32,
        timeout_ms: i32,
        sigmask: Option<&[u8]>,
        sigsetsize: usize,
    ) -> Result<usize> {
        if sigmask.is_some() && sigsetsize != 8 {
            return Err(Errno::EINVAL);
        }
        self.epoll_wait(epfd, events, maxevents, timeout_ms)
    }

    /// `epoll_pwait2(epfd, events, maxevents, timeout)`: `None` is a NULL timespec (no
    /// limit); an invalid timespec is `EINVAL`, checked before anything else.
    ///
    /// Linux: [epoll_wait(2)](https://man7.org/linux/man-pages/man2/epoll_wait.2.html).
    pub fn epoll_pwait2(
        &self,
        epfd: i32,
        events: &mut [EpollEvent],
        maxevents: i32,
        timeout: Option<&Timespec>,
    ) -> Result<usize> {
        if let Some(ts) = timeout {
            if !ts.is_valid() {
                return Err(Errno::EINVAL);
            }
        }
        self.epoll_wait_timeout(epfd, events, maxevents, timeout.map(Timespec::to_duration))
    }

    fn epoll_wait_timeout(
        &self,
        epfd: i32,
        events: &mut [EpollEvent],
        maxevents: i32,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let file = self.get(epfd)?;
        if maxevents <= 0 || maxevents > crate::event::EP_MAX_EVENTS {
            return Err(Errno::EINVAL);
        }
        let ep = file.as_epoll().ok_or(Errno::EINVAL)?;
        let Some(c) = &self.checker else {
            return ep.wait(events, maxevents as usize, timeout);
        };
        let mark = c.wait_starts(self, epfd, &file, ep, timeout != Some(Duration::ZERO));
        let mut sink = crate::event::RecordingSink::new(events);
        let r = ep.wait(&mut sink, maxevents as usize, timeout);
        if r.is_ok() {
            c.wait_ends(self, epfd, &file, &sink.items, mark);
        }
        r
    }

    /// The findings of the checker ([`TableConfig::check`]) since the last call, each with
    /// its count; empty when checking is off.
    ///
    /// ```
    /// use eventpoll::{FdTable, EpollEvent, Events, User, check::{CheckConfig, Kind}};
    /// use eventpoll::{linux::{EPOLL_CTL_ADD, O_NONBLOCK}, TableConfig};
    /// let config = TableConfig { check: Some(CheckConfig::default()), ..TableConfig::default() };
    /// let t = FdTable::with_config(config, User::new(1 << 20));
    /// let ep = t.epoll_create1(0).unwrap();
    /// let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
    /// t.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(&EpollEvent::new(Events::IN | Events::ET, 1))).unwrap();
    /// t.write(w, b"ab").unwrap();
    /// let mut buf = [EpollEvent::default(); 4];
    /// assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(1));
    /// t.read(r, &mut [0u8; 1]).unwrap(); // one byte of two: not drained
    /// assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(0)); // no new edge
    /// let found = t.take_findings();
    /// assert_eq!(found[0].kind, Kind::UndrainedEdge);
    /// assert_eq!(found[0].kind.name(), "undrained-edge");
    /// ```
    pub fn take_findings(&self) -> Vec<crate::check::Finding> {
        self.checker.as_ref().map_or_else(Vec::new, Checker::take)
    }

    /// The numbers of this table that refer to `file`'s description.
    pub(crate) fn numbers_of(&self, file: &File) -> Vec<i32> {
        let s = lock(&self.slots);
        s.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.as_ref().is_some_and(|x| x.file.same_description(file)))
            .map(|(n, _)| n as i32)
            .collect()
    }

    /// The epoll instances of this table, with a number of each.
    pub(crate) fn epolls(&self) -> Vec<(i32, File)> {
        let s = lock(&self.slots);
        s.slots
            .iter()
            .enumerate()
            .filter_map(|(n, slot)| slot.as_ref().map(|x| (n as i32, x.file.clone())))
            .filter(|(_, f)| f.as_epoll().is_some())
            .collect()
    }

    /// The description at `fd` when it is still `target` (a [`File::description_id`]).
    pub(crate) fn file_at(&self, fd: i32, target: usize) -> Option<File> {
        self.get(fd).ok().filter(|f| f.description_id() == target)
    }
}

/// The deadline of a millisecond timeout on `clock` (negative: none).
pub(crate) fn ms_deadline(
    clock: &dyn crate::platform::Clock,
    timeout_ms: i32,
) -> Option<Deadline<'_>> {
    u64::try_from(timeout_ms)
        .ok()
        .and_then(|ms| Deadline::after(clock, Duration::from_millis(ms)))
}

/// What the checker reads of the table (the checker is below the table and does not name
/// it).
impl Descriptors for FdTable {
    fn numbers_of(&self, file: &File) -> Vec<i32> {
        FdTable::numbers_of(self, file)
    }
    fn epolls(&self) -> Vec<(i32, File)> {
        FdTable::epolls(self)
    }
    fn file_at(&self, fd: i32, target: usize) -> Option<File> {
        FdTable::file_at(self, fd, target)
    }
    fn is_open(&self, fd: i32) -> bool {
        self.get(fd).is_ok()
    }
    fn now(&self) -> Duration {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EPOLL_CTL_ADD;
    use crate::{Events, Interrupt};

    // Kernel (scenarios/threads/close-del/close-epoll-fd-poll-and-select.ep): a descriptor
    // closed while poll() sleeps on it keeps its file alive, and the wakeup that follows
    // makes poll() look the number up again and report POLLNVAL.
    #[test]
    fn poll_reports_nval_for_a_descriptor_closed_during_the_wait() {
        let t = Arc::new(FdTable::new());
        let ep = t.epoll_create1(0).unwrap();
        let (r, w) = t.pipe2(0).unwrap();
        let ev = EpollEvent::new(Events::IN, 1);
        t.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(&ev)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t2 = t.clone();
        let poller = std::thread::spawn(move || {
            tx.send(Interrupt::current()).unwrap();
            let mut fds = [PollFd {
                fd: ep,
                events: 0xff,
                revents: 0,
            }];
            let n = t2.poll(&mut fds, 5000);
            (n, fds[0].revents)
        });
        let its = rx.recv().unwrap();
        while !its.is_sleeping() {
            std::thread::sleep(Duration::from_millis(1));
        }
        t.close(ep).unwrap();
        assert_eq!(t.write(w, &[1]), Ok(1));
        assert_eq!(poller.join().unwrap(), (Ok(1), Events::NVAL.bits() as i16));
    }

    /// One time source: on a table built on a `ManualClock`, a timed `epoll_wait` and a
    /// timed `poll` sleep until that clock — not the host's — passes their deadline. Each
    /// waiter is checked still asleep (after real time has passed) with the clock 1 ms short
    /// of its one-minute deadline, and returns at once when the clock reaches it (a wait on
    /// the host's time would outlast `join_within`), reading the deadline.
    #[test]
    fn timeouts_end_exactly_when_the_manual_clock_passes_the_deadline() {
        use crate::objects::testutil::join_within;
        use crate::platform::{Clock, ManualClock};
        let clock = Arc::new(ManualClock::new());
        let t = Arc::new(FdTable::with_clock(
            TableConfig::default(),
            User::new(16),
            clock.clone(),
        ));
        let ep = t.epoll_create1(0).unwrap();
        let (r, _w) = t.pipe2(0).unwrap();
        t.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(&EpollEvent::new(Events::IN, 1)))
            .unwrap();
        for call in ["epoll_wait", "poll"] {
            let start = clock.now();
            let (tx, rx) = std::sync::mpsc::channel();
            let (t2, c2) = (t.clone(), clock.clone());
            let waiter = std::thread::spawn(move || {
                tx.send(Interrupt::current()).unwrap();
                let n = if call == "epoll_wait" {
                    let mut out = [EpollEvent::default(); 1];
                    t2.epoll_wait(ep, &mut out, 1, 60_000)
                } else {
                    let mut fds = [PollFd {
                        fd: r,
                        events: Events::IN.bits() as i16,
                        revents: 0,
                    }];
                    t2.poll(&mut fds, 60_000)
                };
                (n, c2.now())
            });
            let its = rx.recv().unwrap();
            let since = std::time::Instant::now();
            while !(its.is_sleeping() && clock.pending() == 1) {
                assert!(
                    since.elapsed() < Duration::from_secs(10),
                    "{call} never slept"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            clock.advance(Duration::from_millis(59_999));
            std::thread::sleep(Duration::from_millis(50)); // real time does not end it
            assert!(!waiter.is_finished(), "{call} returned before its deadline");
            assert!(its.is_sleeping());
            clock.advance(Duration::from_millis(1));
            let (n, woke_at) = join_within(waiter);
            assert_eq!(n, Ok(0), "{call}");
            assert_eq!(woke_at, start + Duration::from_secs(60), "{call}");
            assert_eq!(clock.pending(), 0, "{call}: its timer is gone");
        }
    }
}
