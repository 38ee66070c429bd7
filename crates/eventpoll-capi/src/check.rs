//! `EVENTPOLL_CHECK`: a run-time checker of the program's use of epoll (the library side of
//! `eventpoll check`). When set to `1` (findings on standard error) or to an absolute path
//! (findings appended to that file), the library watches every `epoll_ctl`, every wait and
//! every `close`/`dup2`/`dup3`/`close_range` of a number it knows, and reports the classic
//! epoll pitfalls as they happen, one line each:
//!
//! ```text
//! eventpoll-check: ghost-item pid=P epfd=E fd=F data=0xD call=N file=pipe: what happened and what to do
//! ```
//!
//! The kinds (`ghost-item`, `ghost-event`, `undrained-edge`, `oneshot-unarmed`, `herd`,
//! `et-blocking-fd`) are described in the crate's README. A finding seen again (same kind,
//! instance, number and data) is printed once and counted; at exit one line
//! `eventpoll-check: summary: N findings (KIND COUNT, ...)` sums them up.
//!
//! With checking off, every hook costs one load of [`ON`] and a branch. With it on, the
//! hooks read the engine's item states ([`eventpoll::Epoll::item_states`]), the user's
//! event buffer through [`crate::user`] (never faulting), and poll files with `ppoll`
//! (timeout 0), all by system call, keeping `errno`; nothing the program can see changes.
//! Every access to the checker's state happens with the process's [`crate::process::Gate`]
//! held, so that a `fork` never inherits its lock held.

#![allow(unsafe_code)] // errno, atexit: FFI only, each block commented.

use crate::process::notice;
use crate::process::{Instance, Process, Slot};
use eventpoll::check::WakeMark;
use eventpoll::ReportedItem;
use eventpoll::{EpollEvent, Events};
use eventpoll_host::{sys, Host};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Whether checking is on: the one branch every hook costs when it is off.
pub static ON: AtomicBool = AtomicBool::new(false);

/// Whether checking is on.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The finding kinds and their public names are the engine's (`eventpoll::check::Kind`):
/// one list for the library and for Rust users of the engine.
pub use eventpoll::check::Kind;

/// An edge-triggered item reported to a thread and not queued again since (for
/// `undrained-edge`).
struct EdgeReport {
    bits: u32,
    tid: i32,
}

/// A one-shot item that fired and has not been re-armed or deleted since.
struct Fired {
    target: usize,
    data: u64,
    interest: u32,
    since: Instant,
    /// When it was last found not ready (it is looked at again one period later).
    checked: Instant,
}

/// The fired one-shot items of one instance, by number, and when the first is due.
struct FiredItems {
    items: HashMap<i32, Fired>,
    /// No item is due before this (an item is due one period after it was last checked):
    /// a wait before it looks at none.
    next_due: Instant,
}

/// The checker's memory. What a wait looks at is kept small and up to date where it
/// changes (a report, an `epoll_ctl`): a wait costs what it reported and what is pending
/// for it, not what its instance holds.
#[derive(Default)]
struct State {
    /// (kind, epfd, fd, data) → how many times.
    counts: HashMap<(Kind, i32, i32, u64), u64>,
    /// By instance, then (number, description): edge-triggered reports not checked yet.
    edges: HashMap<usize, HashMap<(i32, usize), EdgeReport>>,
    /// By instance: its fired one-shot items.
    fired: HashMap<usize, FiredItems>,
    /// By watched description: the reports of its latest wakeup to blocked threads.
    wakes: HashMap<usize, Vec<WakeMark<i32>>>,
}

struct Checker {
    out_fd: i32,
    oneshot: Duration,
    calls: AtomicU64,
    state: Mutex<State>,
}

static CHECKER: OnceLock<Checker> = OnceLock::new();

fn checker() -> Option<&'static Checker> {
    CHECKER.get()
}

impl Checker {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps the calling thread's `errno` across a hook.
struct KeepErrno(i32);

impl KeepErrno {
    fn new() -> Self {
        // SAFETY: the calling thread's errno slot.
        KeepErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for KeepErrno {
    fn drop(&mut self) {
        // SAFETY: the calling thread's errno slot.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// Read `EVENTPOLL_CHECK` (and `EVENTPOLL_CHECK_ONESHOT_MS`) when the process state is
/// created; returns the log file's number when one was opened (the caller hides it).
pub fn init(hidden_base: i32) -> Option<i32> {
    let v = std::env::var_os("EVENTPOLL_CHECK")?;
    if v.is_empty() || v == "0" {
        return None;
    }
    let shown = v.to_string_lossy().into_owned();
    let bytes = v.as_encoded_bytes();
    let mut opened = None;
    let out_fd = if v == "1" {
        2
    } else if bytes.first() == Some(&b'/') {
        match crate::process::open_log_file(bytes, hidden_base) {
            Ok(fd) => {
                opened = Some(fd);
                fd
            }
            Err(e) => {
                notice(&format!(
                    "EVENTPOLL_CHECK={shown}: cannot open it ({e}): findings go to standard error"
                ));
                2
            }
        }
    } else {
        notice(&format!(
            "EVENTPOLL_CHECK={shown} is neither 1 nor an absolute path: checking is off"
        ));
        return None;
    };
    let ms = std::env::var("EVENTPOLL_CHECK_ONESHOT_MS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1000);
    let c = Checker {
        out_fd,
        oneshot: Duration::from_millis(ms),
        calls: AtomicU64::new(0),
        state: Mutex::new(State::default()),
    };
    if CHECKER.set(c).is_ok() {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(summary_at_exit) };
        ON.store(true, Ordering::Relaxed);
    }
    opened
}

/// In the child after `fork`: its own findings only (the parent reports its own).
pub fn after_fork() {
    TID.with(|t| t.set(0));
    if let Some(c) = checker() {
        *c.state() = State::default();
        c.calls.store(0, Ordering::Relaxed);
    }
}

extern "C" fn summary_at_exit() {
    let Some(c) = checker() else { return };
    let counts: Vec<(Kind, u64)> = {
        let st = c.state();
        Kind::ALL
            .iter()
            .map(|&k| {
                let n = st
                    .counts
                    .iter()
                    .filter(|(key, _)| key.0 == k)
                    .map(|(_, n)| *n)
                    .sum();
                (k, n)
            })
            .collect()
    };
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let mut line = format!("eventpoll-check: summary: {total} findings");
    if total > 0 {
        let parts: Vec<String> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.name()))
            .collect();
        line.push_str(&format!(" ({})", parts.join(", ")));
    }
    line.push('\n');
    let _ = sys::write(c.out_fd, line.as_bytes());
}

/// What kind of file `fd` is: pipe, socket, eventfd, timerfd, epoll, file, ... (`closed`).
pub fn file_kind(fd: i32) -> String {
    let Ok(st) = sys::fstat(fd) else {
        return "closed".into();
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO => return "pipe".into(),
        libc::S_IFSOCK => return "socket".into(),
        libc::S_IFREG => return "file".into(),
        libc::S_IFDIR => return "directory".into(),
        libc::S_IFCHR => return "chardev".into(),
        libc::S_IFBLK => return "blockdev".into(),
        _ => {}
    }
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(l) => {
            let l = l.to_string_lossy();
            let l = l.strip_prefix("anon_inode:").unwrap_or(&l);
            let l = l.trim_start_matches('[').trim_end_matches(']');
            if l == "eventpoll" {
                "epoll".into()
            } else {
                l.to_string()
            }
        }
        Err(_) => "unknown".into(),
    }
}

/// One finding: printed the first time its key is seen, counted always.
#[allow(clippy::too_many_arguments)]
fn report(
    c: &Checker,
    st: &mut State,
    kind: Kind,
    epfd: i32,
    fd: i32,
    data: Option<u64>,
    sentence: impl FnOnce() -> String,
) {
    let n = st
        .counts
        .entry((kind, epfd, fd, data.unwrap_or(u64::MAX)))
        .or_insert(0);
    *n += 1;
    if *n > 1 {
        return;
    }
    let mut line = format!("eventpoll-check: {} pid={}", kind.name(), sys::getpid());
    if epfd >= 0 {
        line.push_str(&format!(" epfd={epfd}"));
    }
    if fd >= 0 {
        line.push_str(&format!(" fd={fd}"));
    }
    if let Some(d) = data {
        line.push_str(&format!(" data={d:#x}"));
    }
    line.push_str(&format!(
        " call={} file={}: {}\n",
        c.calls.load(Ordering::Relaxed),
        file_kind(fd),
        sentence()
    ));
    let _ = sys::write(c.out_fd, line.as_bytes());
}

fn inst_key(inst: &Arc<Instance>) -> usize {
    Arc::as_ptr(inst) as usize
}

/// Whether `fd` still refers to the description `target`.
fn refers_to(p: &Process, fd: i32, target: usize) -> bool {
    p.refers_to(fd, target)
}

thread_local! {
    /// The calling thread's id, asked of the kernel once (0: not yet; reset in a `fork`'s
    /// child, whose one thread has a new id).
    static TID: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The calling thread's id, without a system call per wait.
fn thread_id() -> i32 {
    TID.with(|t| {
        if t.get() == 0 {
            t.set(sys::gettid());
        }
        t.get()
    })
}

/// A number that refers to `target` now, other than `not`.
fn other_number(p: &Process, target: usize, not: i32) -> Option<i32> {
    p.slots().into_iter().find_map(|(n, s)| {
        let id = match s {
            Slot::Host(d) => d.file.description_id(),
            Slot::Epoll(i) => i.hep.epoll().file().description_id(),
            Slot::Hidden => return None,
        };
        (id == target && n != not).then_some(n)
    })
}

/// The number of instance `key` (the first one the table knows) and the instance.
fn epoll_of(p: &Process, key: usize) -> (i32, Option<Arc<Instance>>) {
    p.slots()
        .into_iter()
        .find_map(|(n, s)| match s {
            Slot::Epoll(i) if Arc::as_ptr(&i) as usize == key => Some((n, Some(i))),
            _ => None,
        })
        .unwrap_or((-1, None))
}

/// How long an undrained edge must stay ready and unqueued before it is named: far longer
/// than a wakeup takes to follow the data it announces (microseconds), paid only by a wait
/// that found one.
const CONFIRM_PAUSE: Duration = Duration::from_millis(2);

/// The interest bits of a stored mask (what a one-shot item loses when it fires).
const INTEREST_BITS: u32 = !(Events::ET.bits()
    | Events::ONESHOT.bits()
    | Events::EXCLUSIVE.bits()
    | Events::WAKEUP.bits());

/// After a successful `epoll_ctl` (gate held): remember the interest, forget the item's
/// reports, and check an edge-triggered item's descriptor for `O_NONBLOCK`.
pub fn ctl_done(inst: &Arc<Instance>, epfd: i32, op: i32, fd: i32, target: usize, ev: &EpollEvent) {
    let Some(c) = checker() else { return };
    let _e = KeepErrno::new();
    c.calls.fetch_add(1, Ordering::Relaxed);
    let key = inst_key(inst);
    let (events, data): (u32, u64) = (ev.events, ev.data);
    let mut st = c.state();
    if let Some(edges) = st.edges.get_mut(&key) {
        edges.remove(&(fd, target));
    }
    if let Some(fired) = st.fired.get_mut(&key) {
        fired.items.remove(&fd);
    }
    if op == libc::EPOLL_CTL_DEL {
        return;
    }
    if events & Events::ET.bits() != 0 {
        let flags = sys::fcntl(fd, libc::F_GETFL, 0).unwrap_or(libc::O_NONBLOCK);
        if flags & libc::O_NONBLOCK == 0 {
            let opname = if op == libc::EPOLL_CTL_ADD {
                "ADD"
            } else {
                "MOD"
            };
            report(c, &mut st, Kind::EtBlockingFd, epfd, fd, Some(data), || {
                format!(
                    "EPOLL_CTL_{opname} of an edge-triggered item for fd {fd}, which is not \
                     O_NONBLOCK: an edge-triggered reader must read until EAGAIN, and on a \
                     blocking descriptor the last read blocks instead; set O_NONBLOCK \
                     (fcntl F_SETFL or SOCK_NONBLOCK/O_NONBLOCK at creation)"
                )
            });
        }
    }
}

/// Before the number `fd` is closed or replaced by `how` (gate held): an item registered
/// under it stays when another number keeps its description open — a ghost.
pub fn closing(p: &Process, fd: i32, how: &str) {
    let Some(c) = checker() else { return };
    let Some(desc) = p.host_desc(fd) else { return };
    let _e = KeepErrno::new();
    let others: Vec<i32> = desc.numbers().into_iter().filter(|&n| n != fd).collect();
    let Some(&keeper) = others.first() else {
        return; // the last number: the items go with the description, as on Linux
    };
    let items: Vec<(usize, i32, u32)> = desc
        .interests()
        .into_iter()
        .filter(|&(_, n, _)| n == fd)
        .collect();
    if items.is_empty() {
        return;
    }
    let target = desc.file.description_id();
    for (key, _, _) in items {
        let (epfd, inst) = epoll_of(p, key);
        let data = inst
            .and_then(|i| i.hep.epoll().item_state(fd, target))
            .map(|s| s.data);
        let mut st = c.state();
        report(c, &mut st, Kind::GhostItem, epfd, fd, data, || {
            format!(
                "{how}({fd}) leaves its item in epoll {epfd} registered, because fd {keeper} \
                 still refers to the same open file description (a dup, or a number inherited \
                 or received); the item keeps reporting events under the closed number. Call \
                 epoll_ctl(EPOLL_CTL_DEL) for fd {fd} before closing it"
            )
        });
    }
}

/// What a wait's start found, for its end.
pub struct WaitMark {
    tid: i32,
    slept: bool,
}

/// A wait on `inst` starts (arguments already checked): check this thread's unchecked
/// edge-triggered reports (when it may block) and, once one is due, the instance's fired
/// one-shot items. Never walks the interest list: each candidate is found by its number
/// and description.
pub fn wait_starts(
    p: &Process,
    inst: &Arc<Instance>,
    epfd: i32,
    timeout: Option<Duration>,
) -> WaitMark {
    let tid = thread_id();
    let may_block = timeout != Some(Duration::ZERO);
    let mark = WaitMark {
        tid,
        slept: may_block && !inst.hep.epoll().has_ready(),
    };
    let Some(c) = checker() else { return mark };
    let _e = KeepErrno::new();
    let _g = p.gate.enter();
    c.calls.fetch_add(1, Ordering::Relaxed);
    let key = inst_key(inst);
    let mut st = c.state();
    let mut edges: Vec<(i32, usize, u32)> = Vec::new();
    if may_block {
        if let Some(list) = st.edges.get_mut(&key) {
            list.retain(|&(fd, target), r| {
                if r.tid == tid {
                    edges.push((fd, target, r.bits));
                }
                r.tid != tid
            });
        }
    }
    let now = Instant::now();
    let due = st
        .fired
        .get(&key)
        .is_some_and(|f| now >= f.next_due && !f.items.is_empty());
    if edges.is_empty() && !due {
        return mark;
    }
    drop(st);
    // Wakeups the host has now reach the ready lists first: an item queued again is fine.
    p.host.pump();
    let epoll = inst.hep.epoll();
    let mut undrained = Vec::new();
    for &(fd, target, bits) in &edges {
        let Some(s) = epoll.item_state(fd, target) else {
            continue;
        };
        let ev = s.events.bits();
        if s.queued || ev & Events::ET.bits() == 0 || ev & INTEREST_BITS == 0 {
            continue;
        }
        if !refers_to(p, fd, target) {
            continue;
        }
        let mask = sys::poll_mask(fd);
        let gone = (Events::HUP | Events::RDHUP | Events::ERR).bits();
        if mask & gone != 0 || mask & libc::POLLNVAL as u32 != 0 {
            continue; // end of file or error: reading it once is draining it
        }
        if mask & bits != 0 {
            undrained.push((s, mask & bits));
        }
    }
    if !undrained.is_empty() {
        // Data that arrived just before the poll above is visible before its wakeup reaches
        // the ring (the sender's CPU enqueues, then wakes): a correct program that drained
        // the descriptor and got new data in that instant would be named. Give a wakeup on
        // its way a moment, then the item must still be unqueued and ready: no wakeup came.
        std::thread::sleep(CONFIRM_PAUSE);
        p.host.pump();
        undrained.retain(|(s, bits)| {
            epoll.item_state(s.fd, s.target).is_some_and(|a| !a.queued)
                && sys::poll_mask(s.fd) & bits != 0
        });
    }
    let mut st = c.state();
    for (s, bits) in undrained {
        let what = if bits & Events::IN.bits() != 0 {
            "readable (read or accept until EAGAIN)"
        } else {
            "writable (write until EAGAIN, or drop EPOLLOUT while there is nothing to write)"
        };
        report(
            c,
            &mut st,
            Kind::UndrainedEdge,
            epfd,
            s.fd,
            Some(s.data),
            || {
                format!(
                    "a wait that may block starts while the edge-triggered item of fd {} was \
                 reported and is still {what}: no new edge will come for what is already \
                 there, so the program may sleep on it. Drain the descriptor before waiting",
                    s.fd
                )
            },
        );
    }
    let mut unarmed = Vec::new();
    let period = c.oneshot;
    if let Some(fired) = st.fired.get_mut(&key).filter(|f| now >= f.next_due) {
        let mut next = now + period;
        fired.items.retain(|&fd, f| {
            let at = f.checked.max(f.since) + period;
            if now < at {
                next = next.min(at);
                return true;
            }
            f.checked = now;
            let still = epoll
                .item_state(fd, f.target)
                .is_some_and(|s| s.events.bits() & INTEREST_BITS == 0);
            if !still || !refers_to(p, fd, f.target) {
                return false; // re-armed, deleted, or its number is another file now
            }
            let want = f.interest & INTEREST_BITS | (Events::ERR | Events::HUP).bits();
            if sys::poll_mask(fd) & want != 0 {
                unarmed.push((fd, f.data, now.duration_since(f.since).as_millis()));
                return false;
            }
            true
        });
        fired.next_due = next;
    }
    for (fd, data, ms) in unarmed {
        report(
            c,
            &mut st,
            Kind::OneshotUnarmed,
            epfd,
            fd,
            Some(data),
            || {
                format!(
                    "the one-shot item of fd {fd} fired {ms} ms ago and was neither re-armed \
                 (EPOLL_CTL_MOD) nor deleted, and its file is ready: the connection starves. \
                 Re-arm it with EPOLL_CTL_MOD once the event is handled"
                )
            },
        );
    }
    mark
}

/// A wait on `inst` returned `r`, the events of `items` (the harvest's
/// [`eventpoll::RecordingSink`]): check them for ghosts and herds, and remember
/// edge-triggered and one-shot reports. Costs what was reported.
pub fn wait_ends(
    p: &Process,
    inst: &Arc<Instance>,
    epfd: i32,
    items: &[ReportedItem],
    r: &Result<usize, eventpoll::Errno>,
    mark: WaitMark,
) {
    let Some(c) = checker() else { return };
    if !matches!(r, Ok(n) if *n > 0) || items.is_empty() {
        return;
    }
    let _e = KeepErrno::new();
    let _g = p.gate.enter();
    let key = inst_key(inst);
    let now = Instant::now();
    let mut st = c.state();
    for it in items {
        let (fd, bits, ev, data) = (it.fd, it.revents.bits(), it.events.bits(), it.data);
        if !refers_to(p, fd, it.target) {
            let keeper = other_number(p, it.target, fd);
            let now_is = if sys::is_open(fd) {
                format!(
                    "now refers to a different file ({}): a program that maps the data to \
                     the number acts on the wrong file",
                    file_kind(fd)
                )
            } else {
                "is closed".to_string()
            };
            let kept =
                keeper.map_or_else(|| "another reference".to_string(), |k| format!("fd {k}"));
            report(c, &mut st, Kind::GhostEvent, epfd, fd, Some(data), || {
                format!(
                    "a wait reported events {bits:#x} of the item registered as fd {fd}, \
                     which {now_is}; the item lives on because {kept} keeps its file open. \
                     Delete the item (EPOLL_CTL_DEL) before closing its number"
                )
            });
            continue;
        }
        if ev & Events::ET.bits() != 0 && ev & Events::ONESHOT.bits() == 0 {
            let mut watch = Events::IN.bits();
            if ev & Events::IN.bits() == 0 {
                watch |= Events::OUT.bits();
            }
            let edges = st.edges.entry(key).or_default();
            if bits & watch != 0 {
                let r = EdgeReport {
                    bits: bits & watch,
                    tid: mark.tid,
                };
                edges.insert((fd, it.target), r);
            } else {
                edges.remove(&(fd, it.target));
            }
        }
        if ev & Events::ONESHOT.bits() != 0 {
            let due = now + c.oneshot;
            let fired = st.fired.entry(key).or_insert_with(|| FiredItems {
                items: HashMap::new(),
                next_due: due,
            });
            fired.next_due = fired.next_due.min(due);
            let f = Fired {
                target: it.target,
                data,
                interest: ev,
                since: now,
                checked: now,
            };
            fired.items.insert(fd, f);
        }
        if mark.slept {
            herd(c, &mut st, p, key, epfd, it, mark.tid);
        }
    }
}

/// A thread that was blocked got `s` reported: another thread woken by the same wakeup of
/// the same file (in another instance through non-exclusive items, or in this instance
/// through a level-triggered item) makes a herd.
fn herd(
    c: &Checker,
    st: &mut State,
    p: &Process,
    key: usize,
    epfd: i32,
    s: &ReportedItem,
    tid: i32,
) {
    let data = s.data;
    let Some(desc) = p.host_desc(s.fd) else {
        return;
    };
    let Some(h) = Host::host_fd(&desc.file) else {
        return;
    };
    let me = WakeMark::new(h.wakeups(), key, tid, s.events);
    let marks = st.wakes.entry(s.target).or_default();
    let Some(same) = eventpoll::check::herd(marks, me) else {
        return;
    };
    let fd = s.fd;
    report(c, st, Kind::Herd, epfd, fd, Some(data), || {
        if same {
            format!(
                "one wakeup of fd {fd} was reported to two threads waiting on epoll {epfd} \
                 through its level-triggered item: both run for one event and one finds \
                 nothing. Use EPOLLET|EPOLLONESHOT (re-armed by the thread that handled it) \
                 or EPOLLEXCLUSIVE"
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
