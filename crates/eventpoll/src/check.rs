//! The epoll checker for programs built on the engine: the checks `EVENTPOLL_CHECK` makes in
//! `libeventpoll`, for an [`FdTable`](crate::FdTable) whose
//! [`TableConfig::check`](crate::table::TableConfig::check) is set. The table then watches
//! its own `close`, `dup2`, `epoll_ctl` and waits, and keeps each pitfall it sees as a
//! [`Finding`] value (kind, instance, number, data, a sentence), which
//! [`FdTable::take_findings`](crate::FdTable::take_findings) hands over — so simulators and tests get the checks without
//! a preload. The kinds have the public names of the library's (`ghost-item`,
//! `ghost-event`, `undrained-edge`, `oneshot-unarmed`, `herd`, `et-blocking-fd`).
//!
//! A wait costs what it reported, not what its instance holds: the table's harvest hands
//! over the item of each event ([`crate::event::RecordingSink`]), and the checker keeps the
//! edge-triggered items reported and not queued again, and the fired one-shot items, in
//! small sets per instance, updated at report and `epoll_ctl` time; a wait looks at those
//! only. A `herd` is two reports of one wakeup of a file (its [`WaitQueue::wakeups`]
//! count) to threads that had blocked.
//!
//! [`WaitQueue::wakeups`]: crate::WaitQueue::wakeups
//!
//! ```
//! use eventpoll::{FdTable, EpollEvent, Events, User, check::{CheckConfig, Kind}};
//! use eventpoll::{linux::EPOLL_CTL_ADD, TableConfig};
//! let config = TableConfig { check: Some(CheckConfig::default()), ..TableConfig::default() };
//! let t = FdTable::with_config(config, User::new(1 << 20));
//! let ep = t.epoll_create1(0).unwrap();
//! let (r, w) = t.pipe2(0).unwrap(); // blocking
//! let keep = t.dup(r).unwrap();
//! t.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(&EpollEvent::new(Events::IN | Events::ET, 7))).unwrap();
//! t.close(r).unwrap(); // the item stays: `keep` holds the pipe open
//! let kinds: Vec<Kind> = t.take_findings().iter().map(|f| f.kind).collect();
//! assert_eq!(kinds, [Kind::EtBlockingFd, Kind::GhostItem]);
//! # let _ = (w, keep);
//! ```
//!
//! A herd, with real threads: two threads block in two instances that watch one pipe
//! without `EPOLLEXCLUSIVE`, and one write wakes both.
//!
//! ```
//! use eventpoll::{Epoll, FdTable, EpollEvent, Events, User, check::{CheckConfig, Kind}};
//! use eventpoll::{linux::{EPOLL_CTL_ADD, O_NONBLOCK}, TableConfig};
//! use std::{sync::Arc, thread, time::Duration};
//! let config = TableConfig { check: Some(CheckConfig::default()), ..TableConfig::default() };
//! let t = Arc::new(FdTable::with_config(config, User::new(1 << 20)));
//! let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
//! let mut instances = Vec::new();
//! let waiters: Vec<_> = (0..2).map(|i| {
//!     let t = t.clone();
//!     let ep = t.epoll_create1(0).unwrap();
//!     t.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(&EpollEvent::new(Events::IN, i))).unwrap();
//!     instances.push(Epoll::from_file(&t.get(ep).unwrap()).unwrap());
//!     thread::spawn(move || {
//!         let mut buf = [EpollEvent::default(); 1];
//!         t.epoll_wait(ep, &mut buf, 1, 5000)
//!     })
//! }).collect();
//! while instances.iter().any(|e| e.blocked_threads() == 0) {
//!     thread::sleep(Duration::from_millis(1)); // until both block
//! }
//! t.write(w, b"x").unwrap();
//! for h in waiters { assert_eq!(h.join().unwrap(), Ok(1)); }
//! assert!(t.take_findings().iter().any(|f| f.kind == Kind::Herd));
//! ```
//!
//! With checking off (the default) every hook is one test of an `Option`; the only cost
//! left is the wakeup count every [`crate::WaitQueue`] keeps (a load and a store under the
//! lock it already holds).

use crate::epoll::EpollShared;
use crate::event::{EpollEvent, Events, ReportedItem, EPOLL_CTL_ADD, EPOLL_CTL_DEL};
use crate::file::File;
use crate::prelude::*;
use crate::sync::{lock, Mutex};
use alloc::collections::BTreeMap;
use core::time::Duration;

/// What the checker reads of the descriptor table that calls it. The table implements it:
/// the checker is a layer below the table and does not name it (see `tests/layering.rs`).
pub(crate) trait Descriptors {
    /// The numbers that refer to `file`'s description.
    fn numbers_of(&self, file: &File) -> Vec<i32>;
    /// The open epoll instances, with their numbers.
    fn epolls(&self) -> Vec<(i32, File)>;
    /// The file at `fd` if it is the description `target`.
    fn file_at(&self, fd: i32, target: usize) -> Option<File>;
    /// Whether `fd` is open.
    fn is_open(&self, fd: i32) -> bool;
    /// The table's clock, now.
    fn now(&self) -> Duration;
}

/// Identifies the task (thread) that made a call: the platform's per-task identity.
type ThreadId = usize;

/// What to check (the table checks when [`TableConfig::check`](crate::table::TableConfig)
/// is `Some`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// How long a fired one-shot item may stay disabled while its file is ready before it
    /// is `oneshot-unarmed` (the library's `EVENTPOLL_CHECK_ONESHOT_MS`; default 1 s).
    pub oneshot_after: Duration,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            oneshot_after: Duration::from_secs(1),
        }
    }
}

/// A finding kind; [`Kind::name`] is the public name the library prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A close (or `dup2` over) of a number left its item registered: another number
    /// keeps the open file description alive.
    GhostItem,
    /// A wait reported an event of an item whose number is closed or now another file.
    GhostEvent,
    /// A wait that may block started while an edge-triggered item reported to this thread
    /// is still ready for what it reported and not queued again.
    UndrainedEdge,
    /// A one-shot item stayed disabled longer than [`CheckConfig::oneshot_after`] while its
    /// file is ready for its interest.
    OneshotUnarmed,
    /// One wakeup of a file was reported to threads blocked in two instances through
    /// non-exclusive items, or to two threads of one instance through a level-triggered
    /// item.
    Herd,
    /// An edge-triggered item for a description without `O_NONBLOCK`.
    EtBlockingFd,
}

impl Kind {
    /// Every kind, in the order summaries list them.
    ///
    /// ```
    /// use eventpoll::check::Kind;
    /// assert_eq!(Kind::ALL.map(Kind::name)[0], "ghost-item");
    /// ```
    pub const ALL: [Kind; 6] = [
        Kind::GhostItem,
        Kind::GhostEvent,
        Kind::UndrainedEdge,
        Kind::OneshotUnarmed,
        Kind::Herd,
        Kind::EtBlockingFd,
    ];

    /// The public name (`ghost-item`, ...), as `EVENTPOLL_CHECK` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::GhostItem => "ghost-item",
            Kind::GhostEvent => "ghost-event",
            Kind::UndrainedEdge => "undrained-edge",
            Kind::OneshotUnarmed => "oneshot-unarmed",
            Kind::Herd => "herd",
            Kind::EtBlockingFd => "et-blocking-fd",
        }
    }
}

/// One finding: the first occurrence of its kind for an (instance, number, data), and how
/// many times it was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The kind.
    pub kind: Kind,
    /// The instance's number (`-1` when the table no longer has one).
    pub epfd: i32,
    /// The item's descriptor number.
    pub fd: i32,
    /// The item's user data.
    pub data: u64,
    /// What happened and what to do.
    pub message: String,
    /// How many times it was seen.
    pub count: u64,
}

/// An edge-triggered item reported to a thread, not queued again since (for
/// `undrained-edge`).
struct EdgeReport {
    bits: u32,
    thread: ThreadId,
}

/// A one-shot item that fired and has been neither re-armed nor deleted since.
struct Fired {
    target: usize,
    interest: u32,
    /// On the table's clock.
    since: Duration,
}

/// The fired one-shot items of one instance, and when the first of them is due.
struct FiredItems {
    items: BTreeMap<i32, Fired>,
    /// No item is due before this (an item's due time is its firing plus
    /// [`CheckConfig::oneshot_after`]): a wait before it looks at none.
    next_due: Duration,
}

/// A report of a file to a thread that had blocked, as the `herd` rule remembers it (see
/// [`herd`]); `T` names the thread. Shared with the C ABI's checker, which keeps its own
/// marks by host file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeMark<T> {
    /// The file's wakeup count when the item was reported (one wakeup, one value).
    pub wakeups: u64,
    /// The instance that reported it.
    pub instance: usize,
    /// The thread it was reported to.
    pub thread: T,
    /// The item is `EPOLLEXCLUSIVE`.
    pub exclusive: bool,
    /// The item is level-triggered (neither `EPOLLET` nor `EPOLLONESHOT`).
    pub level: bool,
}

impl<T> WakeMark<T> {
    /// The mark of an item with interest `events` reported by `instance` to `thread` at
    /// the file's wakeup count `wakeups`.
    pub fn new(wakeups: u64, instance: usize, thread: T, events: Events) -> WakeMark<T> {
        WakeMark {
            wakeups,
            instance,
            thread,
            exclusive: events.contains(Events::EXCLUSIVE),
            level: !events.intersects(Events::ET | Events::ONESHOT),
        }
    }
}

/// The `herd` rule over the marks of one file: `mine` is a report to a thread that had
/// blocked. Marks of older wakeups are dropped, `mine` is kept, and the answer is
/// `Some(same_instance)` when another thread got the same wakeup — through non-exclusive
/// items of another instance (`Some(false)`) or a level-triggered item of this one
/// (`Some(true)`) — else `None`.
///
/// ```
/// use eventpoll::check::{herd, WakeMark};
/// use eventpoll::Events;
/// let mut marks = Vec::new();
/// assert_eq!(herd(&mut marks, WakeMark::new(1, 10, "a", Events::IN)), None);
/// assert_eq!(herd(&mut marks, WakeMark::new(1, 20, "b", Events::IN)), Some(false));
/// let ex = Events::IN | Events::EXCLUSIVE;
/// assert_eq!(herd(&mut Vec::new(), WakeMark::new(2, 10, "a", ex)), None);
/// ```
pub fn herd<T: PartialEq>(marks: &mut Vec<WakeMark<T>>, mine: WakeMark<T>) -> Option<bool> {
    marks.retain(|m| m.wakeups == mine.wakeups);
    let same_instance = marks
        .iter()
        .find(|m| {
            m.thread != mine.thread
                && ((m.instance != mine.instance && !m.exclusive && !mine.exclusive)
                    || (m.instance == mine.instance && m.level && mine.level))
        })
        .map(|m| m.instance == mine.instance);
    marks.push(mine);
    same_instance
}

/// The checker's memory. Everything a wait looks at is kept small and up to date when it
/// changes (a report, an `epoll_ctl`), so that a wait costs what it reported, not what
/// the instance holds.
#[derive(Default)]
struct State {
    findings: Vec<Finding>,
    /// By instance, then (number, description): edge-triggered items reported and not
    /// looked at since by the thread they were reported to.
    edges: BTreeMap<usize, BTreeMap<(i32, usize), EdgeReport>>,
    /// By instance: its fired one-shot items.
    fired: BTreeMap<usize, FiredItems>,
    /// By watched description: the reports of its latest wakeup to threads that slept.
    wakes: BTreeMap<usize, Vec<WakeMark<ThreadId>>>,
}

/// What a wait's start found, for its end.
pub(crate) struct WaitMark {
    slept: bool,
}

/// A table's checker (present when checking is on).
pub(crate) struct Checker {
    config: CheckConfig,
    state: Mutex<State>,
}

/// The interest bits of a stored mask (what a one-shot item loses when it fires).
const INTEREST: u32 = !(Events::ET.bits()
    | Events::ONESHOT.bits()
    | Events::EXCLUSIVE.bits()
    | Events::WAKEUP.bits());

impl Checker {
    pub(crate) fn new(config: CheckConfig) -> Checker {
        Checker {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn report(
        &self,
        st: &mut State,
        kind: Kind,
        epfd: i32,
        fd: i32,
        data: u64,
        message: impl FnOnce() -> String,
    ) {
        match st
            .findings
            .iter_mut()
            .find(|f| (f.kind, f.epfd, f.fd, f.data) == (kind, epfd, fd, data))
        {
            Some(f) => f.count += 1,
            None => st.findings.push(Finding {
                kind,
                epfd,
                fd,
                data,
                message: message(),
                count: 1,
            }),
        }
    }

    pub(crate) fn take(&self) -> Vec<Finding> {
        core::mem::take(&mut lock(&self.state).findings)
    }

    /// After a successful `epoll_ctl`: the item's reports are forgotten (a MOD queues it
    /// again, re-arms it), and an edge-triggered item's descriptor is checked.
    pub(crate) fn ctl_done(
        &self,
        epfd: i32,
        ep: &File,
        op: i32,
        fd: i32,
        target: &File,
        ev: &EpollEvent,
    ) {
        let key = ep.description_id();
        let mut st = lock(&self.state);
        if let Some(edges) = st.edges.get_mut(&key) {
            edges.remove(&(fd, target.description_id()));
        }
        if let Some(fired) = st.fired.get_mut(&key) {
            fired.items.remove(&fd);
        }
        if op == EPOLL_CTL_DEL {
            return;
        }
        if ev.events & Events::ET.bits() != 0 && !target.is_nonblocking() {
            let how = if op == EPOLL_CTL_ADD { "ADD" } else { "MOD" };
            self.report(&mut st, Kind::EtBlockingFd, epfd, fd, ev.data, || {
                format!(
                    "EPOLL_CTL_{how} of an edge-triggered item for fd {fd}, which is not \
                     O_NONBLOCK: the read that drains it until EAGAIN blocks instead; set \
                     O_NONBLOCK"
                )
            });
        }
    }

    /// Before `fd` (referring to `file`) is closed or replaced: its items stay when another
    /// number of `table` keeps the description open.
    pub(crate) fn closing(&self, table: &dyn Descriptors, fd: i32, file: &File, how: &str) {
        let target = file.description_id();
        let keeper = table.numbers_of(file).into_iter().find(|&n| n != fd);
        let Some(keeper) = keeper else { return };
        let mut st = lock(&self.state);
        for (epfd, ep) in table.epolls() {
            let Some(ep) = ep.as_epoll() else { continue };
            let Some(s) = ep.item_state(fd, target) else {
                continue;
            };
            self.report(&mut st, Kind::GhostItem, epfd, fd, s.data, || {
                format!(
                    "{how}({fd}) leaves its item in epoll {epfd} registered, because fd \
                     {keeper} still refers to the same open file description; the item \
                     keeps reporting under the closed number. Delete it (EPOLL_CTL_DEL) \
                     before closing fd {fd}"
                )
            });
        }
    }

    /// A wait on `ep` starts: undrained edges (when it may block) and unarmed one-shots.
    /// Looks at this thread's unchecked edge-triggered reports and, once one is due, the
    /// instance's fired one-shot items — never at the whole interest list.
    pub(crate) fn wait_starts(
        &self,
        table: &dyn Descriptors,
        epfd: i32,
        ep: &File,
        shared: &EpollShared,
        may_block: bool,
    ) -> WaitMark {
        let mark = WaitMark {
            slept: may_block && !shared.events_available(),
        };
        let key = ep.description_id();
        let me = crate::platform::park::task_id();
        let mut st = lock(&self.state);
        let now = table.now();
        let mut mine = Vec::new();
        if may_block {
            if let Some(edges) = st.edges.get_mut(&key) {
                edges.retain(|&(fd, target), r| {
                    if r.thread == me {
                        mine.push((fd, target, r.bits));
                    }
                    r.thread != me
                });
            }
        }
        let gone = (Events::HUP | Events::RDHUP | Events::ERR).bits();
        for (fd, target, bits) in mine {
            let Some(s) = shared.item_state(fd, target) else {
                continue;
            };
            let Some(file) = table.file_at(fd, target) else {
                continue;
            };
            let mask = file.poll().bits();
            if s.queued || mask & gone != 0 || mask & bits == 0 {
                continue;
            }
            self.report(&mut st, Kind::UndrainedEdge, epfd, fd, s.data, || {
                format!(
                    "a wait that may block starts while the edge-triggered item of fd {fd} was \
                     reported and is still ready ({:#x}): no new edge comes for what is already \
                     there. Read (or write) until EAGAIN before waiting",
                    mask & bits
                )
            });
        }
        let due = self.config.oneshot_after;
        let mut unarmed = Vec::new();
        if let Some(fired) = st.fired.get_mut(&key).filter(|f| now >= f.next_due) {
            let mut next = None::<Duration>;
            fired.items.retain(|&fd, f| {
                if now.saturating_sub(f.since) < due {
                    next = Some(next.map_or(f.since + due, |n| n.min(f.since + due)));
                    return true;
                }
                let disabled = shared
                    .item_state(fd, f.target)
                    .filter(|s| s.events.bits() & INTEREST == 0);
                let (Some(s), Some(file)) = (disabled, table.file_at(fd, f.target)) else {
                    return false; // re-armed or gone
                };
                let want = f.interest & INTEREST | (Events::ERR | Events::HUP).bits();
                if file.poll().bits() & want == 0 {
                    return true; // not ready: looked at again at the next due wait
                }
                unarmed.push((fd, s.data, (now.saturating_sub(f.since)).as_millis()));
                false
            });
            fired.next_due = next.unwrap_or(now).min(now + due);
        }
        for (fd, data, ms) in unarmed {
            self.report(&mut st, Kind::OneshotUnarmed, epfd, fd, data, || {
                format!(
                    "the one-shot item of fd {fd} fired {ms} ms ago and was neither re-armed \
                     (EPOLL_CTL_MOD) nor deleted, and its file is ready: it starves. Re-arm \
                     it once the event is handled"
                )
            });
        }
        mark
    }

    /// A wait on `ep` reported the events of `items`: ghosts, herds, and the
    /// edge-triggered and one-shot reports to remember. Costs what was reported.
    pub(crate) fn wait_ends(
        &self,
        table: &dyn Descriptors,
        epfd: i32,
        ep: &File,
        items: &[ReportedItem],
        mark: WaitMark,
    ) {
        let key = ep.description_id();
        let me = crate::platform::park::task_id();
        let now = table.now();
        let mut st = lock(&self.state);
        for it in items {
            let (fd, bits, ev) = (it.fd, it.revents.bits(), it.events.bits());
            let Some(file) = table.file_at(fd, it.target) else {
                let now_is = if table.is_open(fd) {
                    "now refers to a different file: a program that maps the data to the \
                     number acts on the wrong file"
                } else {
                    "is closed"
                };
                self.report(&mut st, Kind::GhostEvent, epfd, fd, it.data, || {
                    format!(
                        "a wait reported events {bits:#x} of the item registered as fd {fd}, \
                         which {now_is}; another reference keeps its file open. Delete the \
                         item (EPOLL_CTL_DEL) before closing its number"
                    )
                });
                continue;
            };
            if ev & Events::ET.bits() != 0 && ev & Events::ONESHOT.bits() == 0 {
                let mut watch = Events::IN.bits();
                if ev & Events::IN.bits() == 0 {
                    watch |= Events::OUT.bits();
                }
                let edges = st.edges.entry(key).or_default();
                if bits & watch != 0 {
                    let r = EdgeReport {
                        bits: bits & watch,
                        thread: me,
                    };
                    edges.insert((fd, it.target), r);
                } else {
                    edges.remove(&(fd, it.target));
                }
            }
            if ev & Events::ONESHOT.bits() != 0 {
                let due = now + self.config.oneshot_after;
                let fired = st.fired.entry(key).or_insert_with(|| FiredItems {
                    items: BTreeMap::new(),
                    next_due: due,
                });
                fired.next_due = fired.next_due.min(due);
                let f = Fired {
                    target: it.target,
                    interest: ev,
                    since: now,
                };
                fired.items.insert(fd, f);
            }
            if mark.slept {
                self.herd(&mut st, &file, key, epfd, it, me);
            }
        }
    }

    /// A thread that had blocked got `it` reported: another thread woken by the same wakeup
    /// of the same file (in another instance through non-exclusive items, or in this
    /// instance through a level-triggered item) makes a herd.
    fn herd(
        &self,
        st: &mut State,
        file: &File,
        key: usize,
        epfd: i32,
        it: &ReportedItem,
        me: ThreadId,
    ) {
        let Some(q) = file.ops().wait_queue() else {
            return;
        };
        let mine = WakeMark::new(q.wakeups(), key, me, it.events);
        let marks = st.wakes.entry(it.target).or_default();
        let Some(same) = herd(marks, mine) else {
            return;
        };
        let fd = it.fd;
        self.report(st, Kind::Herd, epfd, fd, it.data, || {
            if same {
                format!(
                    "one wakeup of fd {fd} was reported to two threads waiting on epoll {epfd} \
                     through its level-triggered item: both run for one event and one finds \
                     nothing. Use EPOLLET|EPOLLONESHOT (re-armed by the thread that handled \
                     it) or EPOLLEXCLUSIVE"
                )
            } else {
                format!(
                    "one wakeup of fd {fd} woke threads blocked in two epoll instances through \
                     non-exclusive items: all of them run for one event and all but one find \
                     nothing. Add the items with EPOLLEXCLUSIVE"
                )
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EPOLL_CTL_MOD, O_NONBLOCK};
    use crate::table::{FdTable, TableConfig};
    use crate::User;

    fn checked(oneshot_ms: u64) -> FdTable {
        let check = CheckConfig {
            oneshot_after: Duration::from_millis(oneshot_ms),
        };
        FdTable::with_config(
            TableConfig {
                check: Some(check),
                ..TableConfig::default()
            },
            User::new(1 << 20),
        )
    }

    fn kinds(t: &FdTable) -> Vec<&'static str> {
        t.take_findings().iter().map(|f| f.kind.name()).collect()
    }

    fn ctl(t: &FdTable, ep: i32, op: i32, fd: i32, events: Events, data: u64) {
        t.epoll_ctl(ep, op, fd, Some(&EpollEvent::new(events, data)))
            .unwrap();
    }

    #[test]
    fn a_close_with_a_dup_alive_is_a_ghost_item_and_its_event_a_ghost_event() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let keep = t.dup(r).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN, 0x33);
        t.close(r).unwrap();
        assert_eq!(t.write(w, b"x"), Ok(1));
        let mut buf = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1));
        let f = t.take_findings();
        assert_eq!(
            f.iter()
                .map(|f| (f.kind, f.epfd, f.fd, f.data))
                .collect::<Vec<_>>(),
            [
                (Kind::GhostItem, ep, r, 0x33),
                (Kind::GhostEvent, ep, r, 0x33)
            ]
        );
        assert!(
            f[0].message.contains(&format!("fd {keep}")),
            "{}",
            f[0].message
        );
        assert!(f[1].message.contains("is closed"), "{}", f[1].message);
    }

    #[test]
    fn dup2_over_a_registered_number_is_a_ghost_item_and_the_new_file_is_named() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let _keep = t.dup(r).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN, 5);
        let other = t.eventfd(0, 0).unwrap();
        t.dup2(other, r).unwrap();
        assert_eq!(t.write(w, b"x"), Ok(1));
        let mut buf = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1));
        let f = t.take_findings();
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].kind, Kind::GhostItem);
        assert!(f[0].message.starts_with(&format!("dup2({r})")));
        assert_eq!(f[1].kind, Kind::GhostEvent);
        assert!(f[1].message.contains("different file"), "{}", f[1].message);
    }

    #[test]
    fn delete_before_close_and_the_last_number_are_clean() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, _w) = t.pipe2(O_NONBLOCK).unwrap();
        let keep = t.dup(r).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN, 1);
        t.epoll_ctl(ep, EPOLL_CTL_DEL, r, None).unwrap();
        t.close(r).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, keep, Events::IN, 2);
        t.close(keep).unwrap(); // the last number: the item goes with the file
        assert_eq!(kinds(&t), Vec::<&str>::new());
    }

    #[test]
    fn edge_triggered_on_a_blocking_descriptor_is_named_at_add_and_at_mod() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, w) = t.pipe2(0).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN | Events::ET, 1);
        ctl(&t, ep, EPOLL_CTL_ADD, w, Events::OUT, 2);
        ctl(&t, ep, EPOLL_CTL_MOD, w, Events::OUT | Events::ET, 2);
        let f = t.take_findings();
        assert_eq!(
            f.iter().map(|f| (f.kind, f.fd)).collect::<Vec<_>>(),
            [(Kind::EtBlockingFd, r), (Kind::EtBlockingFd, w)]
        );
        assert!(f[1].message.starts_with("EPOLL_CTL_MOD"));
    }

    #[test]
    fn an_edge_not_drained_before_a_blocking_wait_is_named_and_a_drained_one_is_not() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN | Events::ET, 9);
        let mut buf = [EpollEvent::default(); 4];
        // Drained: clean.
        assert_eq!(t.write(w, b"ab"), Ok(2));
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(1));
        let mut b = [0u8; 8];
        assert_eq!(t.read(r, &mut b), Ok(2));
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(0));
        assert_eq!(kinds(&t), Vec::<&str>::new());
        // One byte of two read: the next blocking wait sleeps on the other.
        assert_eq!(t.write(w, b"ab"), Ok(2));
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(1));
        assert_eq!(t.read(r, &mut b[..1]), Ok(1));
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 10), Ok(0));
        let f = t.take_findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].kind, f[0].fd, f[0].data), (Kind::UndrainedEdge, r, 9));
    }

    #[test]
    fn a_fired_oneshot_left_disabled_while_ready_is_named_and_a_rearmed_one_is_not() {
        let t = checked(20);
        let ep = t.epoll_create1(0).unwrap();
        let a = t.eventfd(1, O_NONBLOCK).unwrap();
        let b = t.eventfd(1, O_NONBLOCK).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, a, Events::IN | Events::ONESHOT, 1);
        ctl(&t, ep, EPOLL_CTL_ADD, b, Events::IN | Events::ONESHOT, 2);
        let mut buf = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(2));
        ctl(&t, ep, EPOLL_CTL_MOD, b, Events::IN | Events::ONESHOT, 2); // re-armed
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.epoll_wait(ep, &mut buf, 4, 0), Ok(1)); // b again
        let f = t.take_findings();
        assert_eq!(
            f.iter().map(|f| (f.kind, f.fd, f.data)).collect::<Vec<_>>(),
            [(Kind::OneshotUnarmed, a, 1)]
        );
    }

    #[test]
    fn a_repeated_finding_is_one_value_with_a_count_and_checking_off_finds_nothing() {
        let t = checked(1000);
        let ep = t.epoll_create1(0).unwrap();
        let (r, _w) = t.pipe2(0).unwrap();
        for _ in 0..3 {
            ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN | Events::ET, 4);
            t.epoll_ctl(ep, EPOLL_CTL_DEL, r, None).unwrap();
        }
        let f = t.take_findings();
        assert_eq!((f.len(), f[0].count), (1, 3));
        assert!(t.take_findings().is_empty());
        let off = FdTable::new();
        let ep = off.epoll_create1(0).unwrap();
        let (r, _w) = off.pipe2(0).unwrap();
        ctl(&off, ep, EPOLL_CTL_ADD, r, Events::IN | Events::ET, 4);
        assert!(off.take_findings().is_empty());
    }

    /// Threads that block in `epoll_wait` on their instance (`waiters[i]` waits on
    /// `eps[i]` for `timeout_ms`), a write to `w` once all of them sleep, and what each
    /// wait returned (in bounded time: each wait has its timeout).
    fn one_wakeup(
        t: &std::sync::Arc<FdTable>,
        eps: &[i32],
        w: i32,
        timeout_ms: i32,
    ) -> Vec<crate::errno::Result<usize>> {
        let waiters: Vec<_> = eps
            .iter()
            .map(|&ep| {
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut buf = [EpollEvent::default(); 4];
                    t.epoll_wait(ep, &mut buf, 4, timeout_ms)
                })
            })
            .collect();
        let blocked = |ep: i32| t.get(ep).unwrap().as_epoll().unwrap().blocked_threads();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut want: Vec<(i32, usize)> = Vec::new();
        for &ep in eps {
            match want.iter_mut().find(|(e, _)| *e == ep) {
                Some((_, n)) => *n += 1,
                None => want.push((ep, 1)),
            }
        }
        while want.iter().any(|&(ep, n)| blocked(ep) < n) {
            assert!(
                std::time::Instant::now() < deadline,
                "the waiters never blocked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.write(w, b"x"), Ok(1));
        waiters.into_iter().map(|h| h.join().unwrap()).collect()
    }

    fn shared_checked() -> std::sync::Arc<FdTable> {
        std::sync::Arc::new(checked(1000))
    }

    #[test]
    fn one_wakeup_reported_in_two_instances_through_plain_items_is_a_herd() {
        let t = shared_checked();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let a = t.epoll_create1(0).unwrap();
        let b = t.epoll_create1(0).unwrap();
        ctl(&t, a, EPOLL_CTL_ADD, r, Events::IN, 1);
        ctl(&t, b, EPOLL_CTL_ADD, r, Events::IN, 2);
        assert_eq!(one_wakeup(&t, &[a, b], w, 5000), [Ok(1), Ok(1)]);
        let f = t.take_findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].kind, f[0].fd), (Kind::Herd, r));
        assert!(f[0].epfd == a || f[0].epfd == b);
        assert!(
            f[0].message.contains("two epoll instances"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("EPOLLEXCLUSIVE"), "{}", f[0].message);
    }

    #[test]
    fn exclusive_items_in_two_instances_wake_one_thread_and_are_clean() {
        let t = shared_checked();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let a = t.epoll_create1(0).unwrap();
        let b = t.epoll_create1(0).unwrap();
        ctl(&t, a, EPOLL_CTL_ADD, r, Events::IN | Events::EXCLUSIVE, 1);
        ctl(&t, b, EPOLL_CTL_ADD, r, Events::IN | Events::EXCLUSIVE, 2);
        let mut got: Vec<usize> = one_wakeup(&t, &[a, b], w, 1000)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, [0, 1]);
        assert_eq!(t.take_findings(), []);
    }

    #[test]
    fn a_level_triggered_item_reported_to_two_threads_of_one_instance_is_a_herd() {
        let t = shared_checked();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let ep = t.epoll_create1(0).unwrap();
        ctl(&t, ep, EPOLL_CTL_ADD, r, Events::IN, 7);
        // Nobody reads: the item stays ready, and the first thread's harvest wakes the next.
        assert_eq!(one_wakeup(&t, &[ep, ep], w, 5000), [Ok(1), Ok(1)]);
        let f = t.take_findings();
        assert_eq!(
            f.iter()
                .map(|f| (f.kind, f.epfd, f.fd, f.data))
                .collect::<Vec<_>>(),
            [(Kind::Herd, ep, r, 7)]
        );
        assert!(f[0].message.contains("two threads"), "{}", f[0].message);
        assert!(
            f[0].message.contains("EPOLLET|EPOLLONESHOT"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn an_edge_triggered_one_shot_item_goes_to_one_thread_of_one_instance_and_is_clean() {
        let t = shared_checked();
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let ep = t.epoll_create1(0).unwrap();
        ctl(
            &t,
            ep,
            EPOLL_CTL_ADD,
            r,
            Events::IN | Events::ET | Events::ONESHOT,
            7,
        );
        let mut got: Vec<usize> = one_wakeup(&t, &[ep, ep], w, 1000)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        got.sort();
        assert_eq!(got, [0, 1]);
        assert_eq!(t.take_findings(), []);
    }

    #[test]
    fn a_wait_that_did_not_block_is_no_herd() {
        // Two instances, plain items, but the events were there before the waits: nobody
        // was woken, so nothing is a herd.
        let t = checked(1000);
        let (r, w) = t.pipe2(O_NONBLOCK).unwrap();
        let a = t.epoll_create1(0).unwrap();
        let b = t.epoll_create1(0).unwrap();
        ctl(&t, a, EPOLL_CTL_ADD, r, Events::IN, 1);
        ctl(&t, b, EPOLL_CTL_ADD, r, Events::IN, 2);
        assert_eq!(t.write(w, b"x"), Ok(1));
        let mut buf = [EpollEvent::default(); 4];
        assert_eq!(t.epoll_wait(a, &mut buf, 4, 1000), Ok(1));
        assert_eq!(t.epoll_wait(b, &mut buf, 4, 1000), Ok(1));
        assert_eq!(t.take_findings(), []);
    }
}
