//! The epoll checker for programs built on the engine: the checks `EVENTPOLL_CHECK` makes in
//! `libeventpoll`, for an [`FdTable`] whose
//! [`TableConfig::check`](crate::table::TableConfig::check) is set. The table then watches
//! its own `close`, `dup2`, `epoll_ctl` and waits, and keeps each pitfall it sees as a
//! [`Finding`] value (kind, instance, number, data, a sentence), which
//! [`FdTable::take_findings`] hands over — so simulators and tests get the checks without
//! a preload. The kinds have the public names of the library's (`ghost-item`,
//! `ghost-event`, `undrained-edge`, `oneshot-unarmed`, `et-blocking-fd`); `herd` is
//! recognised by the library only (it needs the host's wakeup counts).
//!
//! ```
//! use eventpoll::{FdTable, EpollEvent, Events, User, check::{CheckConfig, Kind}};
//! use eventpoll::{event::EPOLL_CTL_ADD, table::TableConfig};
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
//! With checking off (the default) every hook is one test of an `Option`.

use crate::epoll::{EpollShared, ItemState};
use crate::event::{EpollEvent, Events, EPOLL_CTL_ADD, EPOLL_CTL_DEL};
use crate::file::File;
use crate::prelude::*;
use crate::sync::{lock, Mutex};
use crate::table::FdTable;
use core::time::Duration;

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
    /// One wakeup woke several waiters (recognised by `libeventpoll` only).
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

struct EdgeReport {
    ep: usize,
    fd: i32,
    target: usize,
    bits: u32,
    thread: ThreadId,
}

struct Fired {
    ep: usize,
    fd: i32,
    target: usize,
    interest: u32,
    /// On the table's clock.
    since: Duration,
}

#[derive(Default)]
struct State {
    findings: Vec<Finding>,
    /// Interest of every item as the program set it, by (instance, number).
    interests: Vec<(usize, i32, u32)>,
    edges: Vec<EdgeReport>,
    fired: Vec<Fired>,
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

    /// After a successful `epoll_ctl`.
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
        st.edges.retain(|r| (r.ep, r.fd) != (key, fd));
        st.fired.retain(|f| (f.ep, f.fd) != (key, fd));
        st.interests.retain(|&(e, n, _)| (e, n) != (key, fd));
        if op == EPOLL_CTL_DEL {
            return;
        }
        st.interests.push((key, fd, ev.events));
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
    pub(crate) fn closing(&self, table: &FdTable, fd: i32, file: &File, how: &str) {
        let target = file.description_id();
        let keeper = table.numbers_of(file).into_iter().find(|&n| n != fd);
        let Some(keeper) = keeper else { return };
        let mut st = lock(&self.state);
        for (epfd, ep) in table.epolls() {
            let Some(ep) = ep.as_epoll() else { continue };
            for s in ep.item_states() {
                if s.fd == fd && s.target == target {
                    self.report(&mut st, Kind::GhostItem, epfd, fd, s.data, || {
                        format!(
                            "{how}({fd}) leaves its item in epoll {epfd} registered, because fd \
                             {keeper} still refers to the same open file description; the \
                             item keeps reporting under the closed number. Delete it \
                             (EPOLL_CTL_DEL) before closing fd {fd}"
                        )
                    });
                }
            }
        }
    }

    /// A wait on `ep` starts: undrained edges (when it may block) and unarmed one-shots.
    pub(crate) fn wait_starts(
        &self,
        table: &FdTable,
        epfd: i32,
        ep: &File,
        shared: &EpollShared,
        may_block: bool,
    ) {
        let key = ep.description_id();
        let me = crate::platform::park::task_id();
        let mut st = lock(&self.state);
        let now = table.clock.now();
        let due = self.config.oneshot_after;
        let edges: Vec<EdgeReport> = if may_block {
            let (mine, rest) = core::mem::take(&mut st.edges)
                .into_iter()
                .partition(|r| r.ep == key && r.thread == me);
            st.edges = rest;
            mine
        } else {
            Vec::new()
        };
        if edges.is_empty()
            && !st
                .fired
                .iter()
                .any(|f| f.ep == key && now.saturating_sub(f.since) >= due)
        {
            return;
        }
        let states = shared.item_states();
        let find =
            |fd: i32, target: usize| states.iter().find(|s| s.fd == fd && s.target == target);
        let gone = (Events::HUP | Events::RDHUP | Events::ERR).bits();
        for r in edges {
            let Some(s) = find(r.fd, r.target) else {
                continue;
            };
            let Some(file) = table.file_at(r.fd, r.target) else {
                continue;
            };
            let mask = file.poll().bits();
            if s.queued || mask & gone != 0 || mask & r.bits == 0 {
                continue;
            }
            self.report(&mut st, Kind::UndrainedEdge, epfd, r.fd, s.data, || {
                format!(
                    "a wait that may block starts while the edge-triggered item of fd {} was \
                     reported and is still ready ({:#x}): no new edge comes for what is already \
                     there. Read (or write) until EAGAIN before waiting",
                    r.fd,
                    mask & r.bits
                )
            });
        }
        let fired = core::mem::take(&mut st.fired);
        for f in fired {
            if f.ep != key || now.saturating_sub(f.since) < due {
                st.fired.push(f);
                continue;
            }
            let disabled = find(f.fd, f.target).filter(|s| s.events.bits() & INTEREST == 0);
            let (Some(s), Some(file)) = (disabled, table.file_at(f.fd, f.target)) else {
                continue; // re-armed or gone
            };
            let want = f.interest & INTEREST | (Events::ERR | Events::HUP).bits();
            if file.poll().bits() & want == 0 {
                st.fired.push(f);
                continue;
            }
            let ms = (now.saturating_sub(f.since)).as_millis();
            self.report(&mut st, Kind::OneshotUnarmed, epfd, f.fd, s.data, || {
                format!(
                    "the one-shot item of fd {} fired {ms} ms ago and was neither re-armed \
                     (EPOLL_CTL_MOD) nor deleted, and its file is ready: it starves. Re-arm \
                     it once the event is handled",
                    f.fd
                )
            });
        }
    }

    /// A wait on `ep` reported `got`: ghosts, and the edge-triggered and one-shot reports.
    pub(crate) fn wait_ends(
        &self,
        table: &FdTable,
        epfd: i32,
        ep: &File,
        shared: &EpollShared,
        got: &[EpollEvent],
    ) {
        let key = ep.description_id();
        let states = shared.item_states();
        let me = crate::platform::park::task_id();
        let now = table.clock.now();
        let mut st = lock(&self.state);
        for ev in got {
            let (bits, data) = (ev.events, ev.data);
            let cands: Vec<&ItemState> = states.iter().filter(|s| s.data == data).collect();
            let (live, ghosts): (Vec<&ItemState>, Vec<&ItemState>) = cands
                .into_iter()
                .partition(|s| table.file_at(s.fd, s.target).is_some());
            if live.is_empty() {
                for g in ghosts {
                    let now_is = match table.get(g.fd) {
                        Ok(_) => {
                            "now refers to a different file: a program that maps the data \
                                  to the number acts on the wrong file"
                        }
                        Err(_) => "is closed",
                    };
                    self.report(&mut st, Kind::GhostEvent, epfd, g.fd, data, || {
                        format!(
                            "a wait reported events {bits:#x} of the item registered as fd {}, \
                             which {now_is}; another reference keeps its file open. Delete \
                             the item (EPOLL_CTL_DEL) before closing its number",
                            g.fd
                        )
                    });
                }
            }
            for s in live {
                let ev_bits = s.events.bits();
                let interest = st
                    .interests
                    .iter()
                    .find(|&&(e, n, _)| (e, n) == (key, s.fd))
                    .map_or(ev_bits, |&(_, _, i)| i);
                if ev_bits & Events::ET.bits() != 0 && ev_bits & Events::ONESHOT.bits() == 0 {
                    let mut watch = Events::IN.bits();
                    if interest & Events::IN.bits() == 0 {
                        watch |= Events::OUT.bits();
                    }
                    st.edges
                        .retain(|r| (r.ep, r.fd, r.target) != (key, s.fd, s.target));
                    if bits & watch != 0 {
                        st.edges.push(EdgeReport {
                            ep: key,
                            fd: s.fd,
                            target: s.target,
                            bits: bits & watch,
                            thread: me,
                        });
                    }
                }
                if ev_bits & Events::ONESHOT.bits() != 0 && ev_bits & INTEREST == 0 {
                    st.fired.retain(|f| (f.ep, f.fd) != (key, s.fd));
                    st.fired.push(Fired {
                        ep: key,
                        fd: s.fd,
                        target: s.target,
                        interest,
                        since: now,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EPOLL_CTL_MOD, O_NONBLOCK};
    use crate::table::TableConfig;
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
}
