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
use eventpoll::{EpollEvent, Events, ItemState};
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

/// An edge-triggered item reported to a thread (for `undrained-edge`).
struct EdgeReport {
    fd: i32,
    target: usize,
    bits: u32,
    tid: i32,
}

/// A one-shot item that fired and has not been re-armed or deleted since.
struct Fired {
    inst: usize,
    fd: i32,
    target: usize,
    data: u64,
    interest: u32,
    since: Instant,
    checked: Instant,
}

/// A report of a file to a thread that was blocked (for `herd`).
struct WakeMark {
    wakeups: u64,
    inst: usize,
    tid: i32,
    exclusive: bool,
    level: bool,
}

#[derive(Default)]
struct State {
    /// (kind, epfd, fd, data) → how many times.
    counts: HashMap<(Kind, i32, i32, u64), u64>,
    /// Interest of every item as the program set it, by (instance, number).
    interests: HashMap<(usize, i32), u32>,
    /// Edge-triggered reports not checked yet, by instance.
    edges: HashMap<usize, Vec<EdgeReport>>,
    fired: Vec<Fired>,
    /// By watched description: the reports of its latest wakeup to blocked threads.
    wakes: HashMap<usize, Vec<WakeMark>>,
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
    match p.slot(fd) {
        Some(Slot::Host(d)) => d.file.description_id() == target,
        Some(Slot::Epoll(i)) => i.hep.epoll().file().description_id() == target,
        _ => false,
    }
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

/// The number of instance `key` (the first one the table knows).
fn epfd_of(p: &Process, key: usize) -> i32 {
    p.slots()
        .into_iter()
        .find_map(|(n, s)| match s {
            Slot::Epoll(i) if Arc::as_ptr(&i) as usize == key => Some(n),
            _ => None,
        })
        .unwrap_or(-1)
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
pub fn ctl_done(inst: &Arc<Instance>, epfd: i32, op: i32, fd: i32, ev: &EpollEvent) {
    let Some(c) = checker() else { return };
    let _e = KeepErrno::new();
    c.calls.fetch_add(1, Ordering::Relaxed);
    let key = inst_key(inst);
    let (events, data): (u32, u64) = (ev.events, ev.data);
    let mut st = c.state();
    if let Some(list) = st.edges.get_mut(&key) {
        list.retain(|r| r.fd != fd);
    }
    st.fired.retain(|f| (f.inst, f.fd) != (key, fd));
    if op == libc::EPOLL_CTL_DEL {
        st.interests.remove(&(key, fd));
        return;
    }
    st.interests.insert((key, fd), events);
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
        let epfd = epfd_of(p, key);
        let data = p.slots().into_iter().find_map(|(_, s)| match s {
            Slot::Epoll(i) if Arc::as_ptr(&i) as usize == key => i
                .hep
                .epoll()
                .item_states()
                .into_iter()
                .find(|s| s.fd == fd && s.target == target)
                .map(|s| s.data),
            _ => None,
        });
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

/// A wait on `inst` starts (arguments already checked): check its edge-triggered reports
/// (when it may block) and its fired one-shot items.
pub fn wait_starts(
    p: &Process,
    inst: &Arc<Instance>,
    epfd: i32,
    timeout: Option<Duration>,
) -> WaitMark {
    let tid = sys::gettid();
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
    let edges: Vec<EdgeReport> = if may_block {
        match st.edges.get_mut(&key) {
            Some(list) => {
                let (mine, rest) = std::mem::take(list).into_iter().partition(|r| r.tid == tid);
                *list = rest;
                mine
            }
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let now = Instant::now();
    let due: Vec<usize> = st
        .fired
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.inst == key
                && now.duration_since(f.since) >= c.oneshot
                && now.duration_since(f.checked) >= c.oneshot
        })
        .map(|(i, _)| i)
        .collect();
    if edges.is_empty() && due.is_empty() {
        return mark;
    }
    drop(st);
    // Wakeups the host has now reach the ready lists first: an item queued again is fine.
    p.host.pump();
    let states = inst.hep.epoll().item_states();
    let find = |fd: i32, target: usize| {
        states
            .iter()
            .find(|s| s.fd == fd && s.target == target)
            .copied()
    };
    let mut undrained = Vec::new();
    for r in &edges {
        let Some(s) = find(r.fd, r.target) else {
            continue;
        };
        let ev = s.events.bits();
        if s.queued || ev & Events::ET.bits() == 0 || ev & INTEREST_BITS == 0 {
            continue;
        }
        if !refers_to(p, r.fd, r.target) {
            continue;
        }
        let mask = sys::poll_mask(r.fd);
        let gone = (Events::HUP | Events::RDHUP | Events::ERR).bits();
        if mask & gone != 0 || mask & libc::POLLNVAL as u32 != 0 {
            continue; // end of file or error: reading it once is draining it
        }
        if mask & r.bits != 0 {
            undrained.push((s, mask & r.bits));
        }
    }
    if !undrained.is_empty() {
        // Data that arrived just before the poll above is visible before its wakeup reaches
        // the ring (the sender's CPU enqueues, then wakes): a correct program that drained
        // the descriptor and got new data in that instant would be named. Give a wakeup on
        // its way a moment, then the item must still be unqueued and ready: no wakeup came.
        std::thread::sleep(CONFIRM_PAUSE);
        p.host.pump();
        let again = inst.hep.epoll().item_states();
        undrained.retain(|(s, bits)| {
            again
                .iter()
                .any(|a| a.fd == s.fd && a.target == s.target && !a.queued)
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
    for &i in due.iter().rev() {
        let Some(f) = st.fired.get_mut(i) else {
            continue;
        };
        f.checked = now;
        let (fd, target, interest) = (f.fd, f.target, f.interest);
        let still = find(fd, target).is_some_and(|s| s.events.bits() & INTEREST_BITS == 0);
        if !still || !refers_to(p, fd, target) {
            st.fired.remove(i);
            continue;
        }
        let want = interest & INTEREST_BITS | (Events::ERR | Events::HUP).bits();
        if sys::poll_mask(fd) & want != 0 {
            let f = st.fired.remove(i);
            unarmed.push(f);
        }
    }
    for f in unarmed {
        let ms = now.duration_since(f.since).as_millis();
        report(
            c,
            &mut st,
            Kind::OneshotUnarmed,
            epfd,
            f.fd,
            Some(f.data),
            || {
                format!(
                    "the one-shot item of fd {} fired {ms} ms ago and was neither re-armed \
                 (EPOLL_CTL_MOD) nor deleted, and its file is ready: the connection starves. \
                 Re-arm it with EPOLL_CTL_MOD once the event is handled",
                    f.fd
                )
            },
        );
    }
    mark
}

/// A wait on `inst` returned `r` with its events in the caller's buffer: check them for
/// ghosts and herds, and remember edge-triggered and one-shot reports.
pub fn wait_ends(
    p: &Process,
    inst: &Arc<Instance>,
    epfd: i32,
    events: *const EpollEvent,
    r: &Result<usize, eventpoll::Errno>,
    mark: WaitMark,
) {
    let Some(c) = checker() else { return };
    let n = match r {
        Ok(n) if *n > 0 => *n,
        _ => return,
    };
    let _e = KeepErrno::new();
    let Some(got) = crate::user::read_slice(events, n) else {
        return;
    };
    let _g = p.gate.enter();
    let key = inst_key(inst);
    let states = inst.hep.epoll().item_states();
    let mut by_data: HashMap<u64, Vec<&ItemState>> = HashMap::new();
    for s in &states {
        by_data.entry(s.data).or_default().push(s);
    }
    let now = Instant::now();
    let mut st = c.state();
    for ev in &got {
        let (bits, data): (u32, u64) = (ev.events, ev.data);
        let Some(cands) = by_data.get(&data) else {
            continue;
        };
        let (live, ghosts): (Vec<&ItemState>, Vec<&ItemState>) =
            cands.iter().partition(|s| refers_to(p, s.fd, s.target));
        // Ghosts: only when no live item with this data can explain the event.
        let live_explains = live
            .iter()
            .any(|s| sys::poll_mask(s.fd) & bits & (Events::IN | Events::OUT).bits() != 0);
        if !ghosts.is_empty() && (live.is_empty() || !live_explains) {
            for g in &ghosts {
                let keeper = other_number(p, g.target, g.fd);
                let open = sys::is_open(g.fd);
                let now_is = if open {
                    format!(
                        "now refers to a different file ({}): a program that maps the data \
                         to the number acts on the wrong file",
                        file_kind(g.fd)
                    )
                } else {
                    "is closed".to_string()
                };
                let kept =
                    keeper.map_or_else(|| "another reference".to_string(), |k| format!("fd {k}"));
                report(c, &mut st, Kind::GhostEvent, epfd, g.fd, Some(data), || {
                    format!(
                        "a wait reported events {bits:#x} of the item registered as fd {}, \
                         which {now_is}; the item lives on because {kept} keeps its file \
                         open. Delete the item (EPOLL_CTL_DEL) before closing its number",
                        g.fd
                    )
                });
            }
        }
        for s in &live {
            let ev = s.events.bits();
            if ev & Events::ET.bits() != 0 && ev & Events::ONESHOT.bits() == 0 {
                let interest = st.interests.get(&(key, s.fd)).copied().unwrap_or(ev);
                let mut watch = Events::IN.bits();
                if interest & Events::IN.bits() == 0 {
                    watch |= Events::OUT.bits();
                }
                let list = st.edges.entry(key).or_default();
                list.retain(|r| (r.fd, r.target) != (s.fd, s.target));
                if bits & watch != 0 {
                    list.push(EdgeReport {
                        fd: s.fd,
                        target: s.target,
                        bits: bits & watch,
                        tid: mark.tid,
                    });
                }
            }
            if ev & Events::ONESHOT.bits() != 0 && ev & INTEREST_BITS == 0 {
                let interest = st.interests.get(&(key, s.fd)).copied().unwrap_or(0);
                st.fired.retain(|f| (f.inst, f.fd) != (key, s.fd));
                st.fired.push(Fired {
                    inst: key,
                    fd: s.fd,
                    target: s.target,
                    data,
                    interest,
                    since: now,
                    checked: now,
                });
            }
            if mark.slept {
                herd(c, &mut st, p, key, epfd, s, data, mark.tid);
            }
        }
    }
}

/// A thread that was blocked got `s` reported: another thread woken by the same wakeup of
/// the same file (in another instance through non-exclusive items, or in this instance
/// through a level-triggered item) makes a herd.
#[allow(clippy::too_many_arguments)]
fn herd(
    c: &Checker,
    st: &mut State,
    p: &Process,
    key: usize,
    epfd: i32,
    s: &ItemState,
    data: u64,
    tid: i32,
) {
    let Some(desc) = p.host_desc(s.fd) else {
        return;
    };
    let Some(h) = Host::host_fd(&desc.file) else {
        return;
    };
    let wakeups = h.wakeups();
    let ev = s.events.bits();
    let me = WakeMark {
        wakeups,
        inst: key,
        tid,
        exclusive: ev & Events::EXCLUSIVE.bits() != 0,
        level: ev & (Events::ET | Events::ONESHOT).bits() == 0,
    };
    let marks = st.wakes.entry(s.target).or_default();
    marks.retain(|m| m.wakeups == wakeups);
    let other = marks.iter().find(|m| {
        m.tid != tid
            && ((m.inst != key && !m.exclusive && !me.exclusive)
                || (m.inst == key && m.level && me.level))
    });
    let same_instance = other.map(|m| m.inst == key);
    marks.push(me);
    let Some(same) = same_instance else { return };
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
