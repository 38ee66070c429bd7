//! Running a parsed script on one backend: each command becomes backend calls, each result a
//! transcript line (`TEXT => RESULT`), and a panic inside the backend becomes a final
//! `TEXT => panic: MESSAGE` line instead of ending the run.

use crate::backend::threads::{BlockingCall, Outcome, ThreadState, Worker, JOIN_BOUND};
use crate::backend::{
    Address, Backend, BackendKind, Errno, Event, Forked, InetCall, InetDone, SysResult,
};
use crate::script::{
    bit_names, BgCall, BulkKind, Command, Create, FdRef, Line, Many, Script, SocketCommand,
};
use crate::watchdog::{Timeout, Watch};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Once;

/// What `poll X` asks for: every bit a file can report besides `ERR`/`HUP`/`NVAL` (which
/// poll always reports).
pub const POLL_ALL: i16 = libc::POLLIN
    | libc::POLLPRI
    | libc::POLLOUT
    | libc::POLLRDNORM
    | libc::POLLRDBAND
    | libc::POLLWRNORM
    | libc::POLLWRBAND
    | 0x400 // POLLMSG
    | libc::POLLRDHUP;

/// The transcript of one scenario on one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// One line per command (the last one is the panic line if the backend panicked).
    pub lines: Vec<String>,
    /// The panic message, if the backend panicked (the scenario then stopped there).
    pub panic: Option<String>,
    /// Set when the time limit stopped the scenario (the last line says where).
    pub timeout: Option<Timeout>,
}

impl Transcript {
    /// The lines joined, each ending in a newline.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install (once) a panic hook that, on threads running a scenario, records the message and
/// location instead of printing them; other panics go to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let payload = info.payload();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".to_string());
                let text = match info.location() {
                    Some(l) => format!("{msg} (at {}:{})", l.file(), l.line()),
                    None => msg,
                };
                CAPTURED.with(|c| *c.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `script` on a fresh backend of `kind`, catching panics, on this thread and without a
/// time limit ([`crate::watchdog::run_within`] adds one).
pub fn run_script(script: &Script, kind: &BackendKind) -> Transcript {
    run_watched(script, kind, None, &mut || {}).0
}

/// [`run_script`], stopping before the next command once `watch` says so; then also the
/// index of the command that did not run (or was running when the stop came). `created` is
/// called once the backend exists (creating one may wait for another's descriptor range).
pub(crate) fn run_watched(
    script: &Script,
    kind: &BackendKind,
    watch: Option<&Watch>,
    created: &mut dyn FnMut(),
) -> (Transcript, Option<usize>) {
    install_panic_hook();
    let mut stopped = None;
    let mut backend = (kind.create)();
    created();
    let mut lines = Vec::new();
    CAPTURING.with(|c| c.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut runner = Runner {
            backend: &mut *backend,
            names: HashMap::new(),
            threads: HashMap::new(),
            lines: &script.lines,
            current: 0,
            children: HashMap::new(),
            addresses: HashMap::new(),
        };
        for (i, line) in script.lines.iter().enumerate() {
            if let Some(w) = watch {
                if w.stop.load(Ordering::SeqCst) {
                    // The previous command was interrupted (or the time ran out after it):
                    // that one is where the time limit struck.
                    stopped = Some(w.line.load(Ordering::SeqCst));
                    break;
                }
                w.line.store(i, Ordering::SeqCst);
            }
            runner.current = i;
            let result = runner.command(&line.command);
            lines.push(format!("{} => {}", line.text, result));
        }
    }));
    CAPTURING.with(|c| c.set(false));
    match outcome {
        Ok(()) => {
            drop(backend);
            let stopped = stopped.or_else(|| {
                // Stopped while the last command ran.
                watch
                    .filter(|w| w.stop.load(Ordering::SeqCst))
                    .map(|w| w.line.load(Ordering::SeqCst))
            });
            let t = Transcript {
                lines,
                panic: None,
                timeout: None,
            };
            (t, stopped)
        }
        Err(payload) => {
            backend.abandon();
            let msg = CAPTURED
                .with(|c| c.borrow_mut().take())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            let text = script
                .lines
                .get(lines.len())
                .map_or("", |l| l.text.as_str());
            lines.push(format!("{text} => panic: {msg}"));
            let t = Transcript {
                lines,
                panic: Some(msg),
                timeout: None,
            };
            (t, None)
        }
    }
}

struct Runner<'a> {
    backend: &'a mut dyn Backend,
    /// NAME → scenario number (-1 when the creating call failed).
    names: HashMap<String, i32>,
    /// Background threads started and not joined yet. A worker still here when the runner
    /// is dropped (end of script, or a panic) is interrupted and joined by its `Drop`,
    /// before the backend releases its descriptors.
    threads: HashMap<String, Worker>,
    /// The script's lines (a real child gets the index of its `@P` line).
    lines: &'a [Line],
    /// Index of the command running.
    current: usize,
    /// Child processes (`fork P`) that have not exited; a real one still here when the
    /// runner is dropped is told to exit (then killed) and waited for.
    children: HashMap<String, Child>,
    /// NAME → the address its `listen`, `tcp-listen` or `udp` bound (none when that call
    /// failed: connecting to it is then `ECONNREFUSED`, in every backend alike).
    addresses: HashMap<String, Address>,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        // Children still running at the end of the script (or at a panic) exit now, before
        // the backend releases its descriptors.
        // In name order, not the map's (random) order, so that a simulated backend's run
        // is the same every time.
        let mut children: Vec<_> = self.children.drain().collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, child) in children {
            child.end();
        }
        // Then background calls never joined are interrupted and joined, in name order too.
        let mut threads: Vec<_> = self.threads.drain().collect();
        threads.sort_by(|a, b| a.0.cmp(&b.0));
        drop(threads);
    }
}

/// A child process of a scenario (`fork P`). See [`Runner::fork`].
enum Child {
    /// The engine's: a backend of its own (a forked table) and its own names.
    Local {
        backend: Box<dyn Backend>,
        names: HashMap<String, i32>,
        /// Its copy of the parent's listener and UDP addresses (see [`Runner::addresses`]).
        addresses: HashMap<String, Address>,
    },
    /// A real child process running [`Runner::child_loop`], driven over two pipes.
    Process {
        pid: libc::pid_t,
        /// Commands go down this pipe (line indexes; `u32::MAX`: exit).
        to: i32,
        /// Results come up this one (a length, then the text).
        from: i32,
    },
}

/// How long the parent waits for a real child's answer or exit.
const CHILD_BOUND_MS: i32 = 5000;

/// Read exactly `buf.len()` bytes from `fd`, waiting at most [`CHILD_BOUND_MS`] for each
/// part; false on end of file, error or time-out.
fn read_exact_bounded(fd: i32, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, CHILD_BOUND_MS) } != 1 {
            return false;
        }
        // SAFETY: the pointer and length stay inside `buf`.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

/// Read exactly `buf.len()` bytes from `fd`, however long it takes (the child waits for
/// its parent's next command); false on end of file or error.
fn read_exact_blocking(fd: i32, buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length stay inside `buf`.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

/// Write all of `data` to `fd` (a pipe); false on error.
fn write_all(fd: i32, data: &[u8]) -> bool {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: the pointer and length stay inside `data`.
        let n = unsafe { libc::write(fd, data[done..].as_ptr().cast(), data.len() - done) };
        if n <= 0 {
            return false;
        }
        done += n as usize;
    }
    true
}

impl Child {
    /// End the child: a real one is told to exit, then (if it does not within the bound)
    /// killed, and waited for. `ok`, or `killed` when it had to be.
    fn end(self) -> String {
        match self {
            Child::Local { backend, .. } => {
                drop(backend);
                "ok".to_string()
            }
            Child::Process { pid, to, from } => {
                let asked = write_all(to, &u32::MAX.to_ne_bytes());
                // The child closes its end by exiting: end of file here.
                let mut byte = [0u8; 1];
                let exited = asked && !read_exact_bounded(from, &mut byte);
                if !exited {
                    // SAFETY: our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let mut status = 0;
                // SAFETY: waiting for our own child; `status` is a valid int.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                // SAFETY: our pipe ends, not used again.
                unsafe {
                    libc::close(to);
                    libc::close(from);
                }
                if exited { "ok" } else { "killed" }.to_string()
            }
        }
    }
}

/// Lists of more events than this are printed compactly (see [`events_text`]).
pub const COMPACT_AFTER: usize = 32;

/// `N [DATA BITS, ...]`, a wait's result. A list of more than [`COMPACT_AFTER`] events
/// (bulk scenarios) prints each run of three or more consecutive events with the same bits
/// and data counting up by one as `FIRST..LAST BITS`: `1100 [1..1100 in]`.
pub fn events_text(events: &[Event]) -> String {
    let one = |(bits, data): &Event| format!("{data} {}", bit_names(*bits));
    let mut list: Vec<String> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let (bits, first) = events[i];
        let mut end = i + 1;
        if events.len() > COMPACT_AFTER {
            while end < events.len()
                && events[end].0 == bits
                && first.checked_add((end - i) as u64) == Some(events[end].1)
            {
                end += 1;
            }
        }
        if end - i >= 3 {
            let last = events[end - 1].1;
            list.push(format!("{first}..{last} {}", bit_names(bits)));
        } else {
            end = i + 1;
            list.push(one(&events[i]));
        }
        i = end;
    }
    format!("{} [{}]", events.len(), list.join(", "))
}

/// Results of a bulk command, in order, run-length encoded: `1100 ok`,
/// `500 ok, 1 EINVAL`.
fn runs_text(results: impl IntoIterator<Item = String>) -> String {
    let mut runs: Vec<(usize, String)> = Vec::new();
    for r in results {
        match runs.last_mut() {
            Some((n, last)) if *last == r => *n += 1,
            _ => runs.push((1, r)),
        }
    }
    runs.iter()
        .map(|(n, r)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_text(o: Outcome) -> String {
    match o {
        Outcome::Events(r) => show(r, |e| events_text(&e)),
        Outcome::Poll(r) => show(r, |rev| bit_names(u32::from(rev as u16))),
        Outcome::Select(r) => show(r, |s| s.text()),
        Outcome::Panicked => "panic".to_string(),
    }
}

fn show<T>(r: SysResult<T>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => e.name(),
    }
}

fn done(_: ()) -> String {
    "ok".to_string()
}

impl Runner<'_> {
    fn fd(&self, r: &FdRef) -> i32 {
        match r {
            FdRef::Raw(n) => *n,
            FdRef::Name(n) => self.names.get(n).copied().unwrap_or(-1),
        }
    }

    fn bind(&mut self, names: &[&String], r: SysResult<Vec<i32>>) -> String {
        match r {
            Ok(fds) => {
                for (n, fd) in names.iter().zip(fds) {
                    self.names.insert((*n).clone(), fd);
                }
                "ok".to_string()
            }
            Err(e) => {
                for n in names {
                    self.names.insert((*n).clone(), -1);
                }
                e.name()
            }
        }
    }

    fn command(&mut self, c: &Command) -> String {
        let b = &mut *self.backend;
        match c {
            Command::Epoll { name, create } => {
                let r = match create {
                    Create::Size(n) => b.epoll_create(*n),
                    Create::Flags(f) => b.epoll_create1(*f),
                };
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::Pipe { read, write } => {
                let r = b.pipe();
                self.bind(&[read, write], r.map(|(r, w)| vec![r, w]))
            }
            Command::SetPipeSize { fd, size } => {
                let fd = self.fd(fd);
                show(self.backend.set_pipe_size(fd, *size), |n| n.to_string())
            }
            Command::Eventfd {
                name,
                init,
                semaphore,
            } => {
                let r = b.eventfd(*init, *semaphore);
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::Socketpair { a, b: second, ty } => {
                let r = b.socketpair(*ty);
                self.bind(&[a, second], r.map(|(x, y)| vec![x, y]))
            }
            Command::Timerfd { name } => {
                let r = b.timerfd();
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::File { name } => {
                let r = b.regular_file();
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::DevNull { name } => {
                let r = b.dev_null();
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::Mkfifo { fifo } => show(b.mkfifo(fifo), done),
            Command::OpenFifo { name, fifo, mode } => {
                let r = b.open_fifo(fifo, *mode);
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::TimerRead { fd } => {
                let fd = self.fd(fd);
                let mut buf = [0u8; 8];
                show(self.backend.read(fd, &mut buf), |n| match n {
                    // The count depends on timing for a periodic timer: only "some".
                    8 if u64::from_ne_bytes(buf) >= 1 => ">=1".to_string(),
                    8 => "0".to_string(),
                    n => format!("short read {n}"),
                })
            }
            Command::Settime { fd, setting } => {
                let fd = self.fd(fd);
                show(self.backend.settime(fd, *setting), done)
            }
            Command::Ctl {
                epfd,
                op,
                target,
                event,
            } => {
                let (ep, t) = (self.fd(epfd), self.fd(target));
                show(self.backend.epoll_ctl(ep, *op, t, *event), done)
            }
            Command::Wait(w) => {
                let ep = self.fd(&w.epfd);
                show(
                    self.backend.epoll_wait(ep, w.maxevents, w.kind, w.buffer),
                    |events| events_text(&events),
                )
            }
            Command::Poll { fd, timeout_ms: 0 } => {
                let fd = self.fd(fd);
                show(self.backend.poll(fd, POLL_ALL), |rev| {
                    bit_names(u32::from(rev as u16))
                })
            }
            Command::Poll { fd, timeout_ms } => {
                // A poll that may sleep: on a thread of its own (as `bg`), joined at once,
                // so that a call that never returns is bounded like a `join`.
                let call = BlockingCall::Poll {
                    fd: self.fd(fd),
                    timeout_ms: *timeout_ms,
                };
                let mut w = self.backend.spawn(call);
                match w.join(JOIN_BOUND) {
                    Some(o) => outcome_text(o),
                    None => {
                        let late = w.stop().map_or_else(|| "none".to_string(), outcome_text);
                        format!("hung (after interrupts: {late})")
                    }
                }
            }
            Command::Write { fd, len } => {
                let fd = self.fd(fd);
                let data = vec![b'x'; *len];
                show(self.backend.write(fd, &data), |n| n.to_string())
            }
            Command::Read { fd, len } => {
                let fd = self.fd(fd);
                let mut buf = vec![0u8; *len];
                show(self.backend.read(fd, &mut buf), |n| n.to_string())
            }
            Command::EfdWrite { fd, value } => {
                let fd = self.fd(fd);
                show(self.backend.write(fd, &value.to_ne_bytes()), |n| {
                    if n == 8 {
                        "ok".to_string()
                    } else {
                        n.to_string()
                    }
                })
            }
            Command::EfdRead { fd } => {
                let fd = self.fd(fd);
                let mut buf = [0u8; 8];
                show(self.backend.read(fd, &mut buf), |n| {
                    if n == 8 {
                        u64::from_ne_bytes(buf).to_string()
                    } else {
                        format!("short read {n}")
                    }
                })
            }
            Command::Shutdown { fd, how } => {
                let fd = self.fd(fd);
                show(self.backend.shutdown(fd, *how), done)
            }
            Command::Close { fd } => {
                let fd = self.fd(fd);
                show(self.backend.close(fd), done)
            }
            Command::Dup { fd, name } => {
                let fd = self.fd(fd);
                let r = self.backend.dup(fd);
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::Dup2 { fd, target } => {
                let (fd, target) = (self.fd(fd), self.fd(target));
                show(self.backend.dup2(fd, target), |_| "ok".to_string())
            }
            Command::Dup3 { fd, target, flags } => {
                let (fd, target) = (self.fd(fd), self.fd(target));
                show(self.backend.dup3(fd, target, *flags), |_| "ok".to_string())
            }
            Command::Dupfd { fd, min, name } => {
                let fd = self.fd(fd);
                let r = self.backend.dupfd(fd, *min);
                self.bind(&[name], r.map(|fd| vec![fd]))
            }
            Command::CloseRange { first, last, flags } => {
                show(self.backend.close_range(*first, *last, *flags), done)
            }
            Command::Bg { thread, call } => {
                let call = match call {
                    BgCall::Wait(w) => BlockingCall::Wait {
                        epfd: self.fd(&w.epfd),
                        maxevents: w.maxevents,
                        kind: w.kind,
                        buffer: w.buffer,
                    },
                    BgCall::Poll { fd, timeout_ms } => BlockingCall::Poll {
                        fd: self.fd(fd),
                        timeout_ms: *timeout_ms,
                    },
                    BgCall::Select { fd, timeout_ms } => BlockingCall::Select {
                        fd: self.fd(fd),
                        timeout_ms: *timeout_ms,
                    },
                };
                let worker = self.backend.spawn_named(thread, call);
                self.threads.insert(thread.clone(), worker);
                "started".to_string()
            }
            Command::Sleeping { thread } => match self.threads.get_mut(thread) {
                Some(w) => w.state().text().to_string(),
                None => "no such thread".to_string(),
            },
            Command::Settle => {
                // Quiescence: two passes in a row that agree. A thread seen asleep while
                // another still runs may be woken by it; that other thread returns only
                // after its wakeups are made, so the next pass sees the change.
                self.backend.settle();
                let mut names: Vec<String> = self.threads.keys().cloned().collect();
                names.sort();
                let mut last: Option<Vec<ThreadState>> = None;
                for _ in 0..100 {
                    let now: Vec<ThreadState> = names
                        .iter()
                        .filter_map(|n| self.threads.get_mut(n).map(|w| w.state()))
                        .collect();
                    if last.as_ref() == Some(&now) {
                        break;
                    }
                    last = Some(now);
                }
                let states = last.unwrap_or_default();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names
                        .iter()
                        .zip(states)
                        .map(|(n, st)| format!("{n} {}", st.text()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }
            Command::Signal { thread } => match self.threads.get(thread) {
                Some(w) => {
                    w.interrupt();
                    "ok".to_string()
                }
                None => "no such thread".to_string(),
            },
            Command::Join { thread } => match self.threads.remove(thread) {
                Some(mut w) => match w.join(JOIN_BOUND) {
                    Some(o) => outcome_text(o),
                    None => {
                        // Unblock it so that the scenario can go on; the line says it hung.
                        let late = w.stop().map_or_else(|| "none".to_string(), outcome_text);
                        format!("hung (after interrupts: {late})")
                    }
                },
                None => "no such thread".to_string(),
            },
            Command::Sleep { ms } => {
                self.backend
                    .sleep(std::time::Duration::from_millis(u64::from(*ms)));
                "ok".to_string()
            }
            Command::Objects { .. } | Command::CtlAll { .. } | Command::EfdWriteAll { .. } => {
                self.bulk(c)
            }
            Command::Fork { process } => self.fork(process),
            Command::InChild { process, command } => self.in_child(process, command),
            Command::Exit { process } => match self.children.remove(process) {
                Some(child) => child.end(),
                None => "no such process".to_string(),
            },
            Command::Socket(c) => self.socket_command(c),
        }
    }

    /// `fork P`. The engine's child is a forked table in this process; the kernel's and
    /// the C ABI's is a real child process with a copy of this runner, which runs the
    /// `@P` commands it is sent, one at a time, while the parent waits for each answer:
    /// parent and child never run at once, so the transcript is a function of the script.
    fn fork(&mut self, process: &str) -> String {
        let (mut down, mut up) = ([0i32; 2], [0i32; 2]);
        // SAFETY: two valid arrays of two ints.
        let piped = unsafe {
            libc::pipe2(down.as_mut_ptr(), libc::O_CLOEXEC) == 0
                && libc::pipe2(up.as_mut_ptr(), libc::O_CLOEXEC) == 0
        };
        if !piped {
            return "runner: no pipe for the child".to_string();
        }
        let close = |fds: &[i32]| {
            for &fd in fds {
                // SAFETY: pipe ends this function made, not used after.
                unsafe { libc::close(fd) };
            }
        };
        match self.backend.fork() {
            Forked::Local(backend) => {
                close(&[down[0], down[1], up[0], up[1]]);
                let names = self.names.clone();
                self.children.insert(
                    process.to_string(),
                    Child::Local {
                        backend,
                        names,
                        addresses: self.addresses.clone(),
                    },
                );
                "ok".to_string()
            }
            Forked::Failed(e) => {
                close(&[down[0], down[1], up[0], up[1]]);
                e.name()
            }
            Forked::Parent(pid) => {
                close(&[down[0], up[1]]);
                let child = Child::Process {
                    pid,
                    to: down[1],
                    from: up[0],
                };
                self.children.insert(process.to_string(), child);
                "ok".to_string()
            }
            Forked::Child => {
                close(&[down[1], up[0]]);
                // Earlier children's pipes are the parent's business.
                for c in self.children.values() {
                    if let Child::Process { to, from, .. } = c {
                        close(&[*to, *from]);
                    }
                }
                self.child_loop(down[0], up[1])
            }
        }
    }

    /// The real child's life: run each `@P` line whose index arrives on `rx`, answer on
    /// `tx`; exit (without running any destructor: the parent owns everything copied) when
    /// told to or when the parent is gone.
    fn child_loop(&mut self, rx: i32, tx: i32) -> ! {
        loop {
            let mut index = [0u8; 4];
            let command = if read_exact_blocking(rx, &mut index) {
                self.lines
                    .get(u32::from_ne_bytes(index) as usize)
                    .map(|l| &l.command)
            } else {
                None
            };
            let Some(Command::InChild { command, .. }) = command else {
                // SAFETY: ends this (child) process at once.
                unsafe { libc::_exit(0) }
            };
            let text =
                catch_unwind(AssertUnwindSafe(|| self.command(command))).unwrap_or_else(|_| {
                    let msg = CAPTURED.with(|c| c.borrow_mut().take());
                    format!("panic: {}", msg.unwrap_or_default())
                });
            let len = (text.len() as u32).to_ne_bytes();
            if !write_all(tx, &len) || !write_all(tx, text.as_bytes()) {
                // SAFETY: as above.
                unsafe { libc::_exit(1) }
            }
        }
    }

    /// `@P CMD`: run CMD in child P.
    fn in_child(&mut self, process: &str, command: &Command) -> String {
        let (lines, current) = (self.lines, self.current);
        match self.children.get_mut(process) {
            None => "no such process".to_string(),
            Some(Child::Local {
                backend,
                names,
                addresses,
            }) => {
                let mut sub = Runner {
                    backend: &mut **backend,
                    names: std::mem::take(names),
                    threads: HashMap::new(),
                    lines,
                    current,
                    children: HashMap::new(),
                    addresses: std::mem::take(addresses),
                };
                let text = sub.command(command);
                *names = std::mem::take(&mut sub.names);
                *addresses = std::mem::take(&mut sub.addresses);
                text
            }
            Some(Child::Process { to, from, .. }) => {
                let (to, from) = (*to, *from);
                let mut len = [0u8; 4];
                if !write_all(to, &(current as u32).to_ne_bytes())
                    || !read_exact_bounded(from, &mut len)
                {
                    return "child hung or gone".to_string();
                }
                let mut text = vec![0u8; u32::from_ne_bytes(len) as usize];
                if !read_exact_bounded(from, &mut text) {
                    return "child hung or gone".to_string();
                }
                String::from_utf8_lossy(&text).into_owned()
            }
        }
    }

    /// The bulk commands: one backend call per name, results run-length encoded.
    fn bulk(&mut self, c: &Command) -> String {
        let side = |runner: &Self, m: &Many, i: u32| match m {
            Many::One(r) => runner.fd(r),
            Many::Bulk(b) => runner.fd(&FdRef::Name(b.name(i))),
        };
        let mut results = Vec::new();
        match c {
            Command::Objects {
                kind,
                prefix,
                write_prefix,
                count,
            } => {
                for i in 0..*count {
                    let name = format!("{prefix}{i}");
                    let r = match kind {
                        BulkKind::Epolls => self.backend.epoll_create1(0).map(|fd| vec![fd]),
                        BulkKind::Eventfds { init } => {
                            self.backend.eventfd(*init, false).map(|fd| vec![fd])
                        }
                        BulkKind::Pipes => self.backend.pipe().map(|(r, w)| vec![r, w]),
                    };
                    let write = write_prefix.as_ref().map(|w| format!("{w}{i}"));
                    let names: Vec<&String> = std::iter::once(&name).chain(&write).collect();
                    results.push(self.bind(&names, r));
                }
            }
            Command::CtlAll {
                epfd,
                op,
                target,
                event,
            } => {
                let count = [epfd, target]
                    .iter()
                    .find_map(|m| match m {
                        Many::Bulk(b) => Some(b.count),
                        Many::One(_) => None,
                    })
                    .unwrap_or(0);
                for i in 0..count {
                    let (ep, t) = (side(self, epfd, i), side(self, target, i));
                    let ev = event.map(|(bits, data)| (bits, data.wrapping_add(u64::from(i))));
                    results.push(show(self.backend.epoll_ctl(ep, *op, t, ev), done));
                }
            }
            Command::EfdWriteAll { fds, value } => {
                for name in fds.names() {
                    let fd = self.fd(&FdRef::Name(name));
                    results.push(show(self.backend.write(fd, &value.to_ne_bytes()), |n| {
                        if n == 8 {
                            "ok".to_string()
                        } else {
                            n.to_string()
                        }
                    }));
                }
            }
            _ => {}
        }
        runs_text(results)
    }
}

/// The socket commands beyond `socketpair` (see [`SocketCommand`]).
impl Runner<'_> {
    /// The address bound to `name` (see [`Runner::addresses`]).
    fn address(&self, name: &str) -> SysResult<Address> {
        self.addresses
            .get(name)
            .copied()
            .ok_or(Errno(libc::ECONNREFUSED))
    }

    /// Bind `name` to a new socket and, for a listener or UDP socket, to its address.
    fn bind_socket(&mut self, name: &String, r: SysResult<(i32, Option<Address>)>) -> String {
        self.addresses.remove(name);
        if let Ok((_, Some(a))) = r {
            self.addresses.insert(name.clone(), a);
        }
        self.bind(&[name], r.map(|(fd, _)| vec![fd]))
    }

    fn socket_command(&mut self, c: &SocketCommand) -> String {
        match c {
            SocketCommand::Listen { name, ty, backlog } => {
                let r = self.backend.unix_listen(*ty, *backlog);
                self.bind_socket(name, r.map(|(fd, a)| (fd, Some(a))))
            }
            SocketCommand::Connect { name, listener } => {
                let r = self
                    .address(listener)
                    .and_then(|a| self.backend.unix_connect(a));
                self.bind_socket(name, r.map(|fd| (fd, None)))
            }
            SocketCommand::Accept { name, fd } => {
                let fd = self.fd(fd);
                let r = self.backend.accept(fd);
                self.bind_socket(name, r.map(|fd| (fd, None)))
            }
            SocketCommand::TcpListen { name, backlog } => {
                let r = self.backend.inet(InetCall::TcpListen { backlog: *backlog });
                self.bind_inet(name, r)
            }
            SocketCommand::Udp { name } => {
                let r = self.backend.inet(InetCall::Udp);
                self.bind_inet(name, r)
            }
            SocketCommand::TcpConnect { name, listener } => {
                let r = self
                    .address(listener)
                    .and_then(|addr| self.backend.inet(InetCall::TcpConnect { addr }));
                self.bind_inet(name, r)
            }
            SocketCommand::UdpConnect { fd, peer } => {
                let fd = self.fd(fd);
                let r = self
                    .address(peer)
                    .and_then(|addr| self.backend.inet(InetCall::UdpConnect { fd, addr }));
                show(r, |_| "ok".to_string())
            }
        }
    }

    /// Bind `name` to what an inet call made; a connecting socket's line says what
    /// `connect` returned (`EINPROGRESS`).
    fn bind_inet(&mut self, name: &String, r: SysResult<InetDone>) -> String {
        match r {
            Ok(InetDone::Bound(fd, a)) => self.bind_socket(name, Ok((fd, Some(a)))),
            Ok(InetDone::Connecting(fd, said)) => {
                let text = self.bind_socket(name, Ok((fd, None)));
                said.map_or(text, |e| e.name())
            }
            Ok(InetDone::Done) => self.bind_socket(name, Err(Errno(libc::EINVAL))),
            Err(e) => self.bind_socket(name, Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::{pair, Fake, Quirk};
    use crate::script::parse;

    #[test]
    fn a_panicking_backend_becomes_a_panic_line() {
        let kinds = pair(|| Fake::boxed(Quirk::PanicOnEpoll));
        let s = parse("p.ep", "pipe r w\nepoll e\nwait e 1 0\n").unwrap();
        let t = run_script(&s, &kinds[1]);
        assert_eq!(t.lines.len(), 2);
        assert_eq!(t.lines[0], "pipe r w => ok");
        assert!(
            t.lines[1].starts_with("epoll e => panic: fake backend: epoll_create1 is broken (at "),
            "{}",
            t.lines[1]
        );
        assert!(t.panic.is_some());
        // The same thread can run scenarios afterwards, panics and all.
        let again = run_script(&s, &kinds[0]);
        assert_eq!(again.lines[2], "wait e 1 0 => 1 [7 in]");
        assert_eq!(again.panic, None);
    }

    #[test]
    fn long_event_lists_and_bulk_results_are_compact() {
        let short: Vec<Event> = (1..=5).map(|d| (1, d)).collect();
        assert_eq!(events_text(&short), "5 [1 in, 2 in, 3 in, 4 in, 5 in]");
        let mut long: Vec<Event> = (10..=40).map(|d| (1, d)).collect();
        long.extend([(4, 41), (4, 42), (1, 1), (1, 2), (1, 3), (1, 9)]);
        assert_eq!(
            events_text(&long),
            "37 [10..40 in, 41 out, 42 out, 1..3 in, 9 in]"
        );
        assert_eq!(
            runs_text(["ok", "ok", "EINVAL", "ok"].map(String::from)),
            "2 ok, 1 EINVAL, 1 ok"
        );
    }

    #[test]
    fn results_are_formatted_per_command() {
        let kinds = pair(|| Fake::boxed(Quirk::WriteThreeAfterPipe));
        let s = parse(
            "f.ep",
            "write fd:3 3\npipe r w\nwrite w 3\nefd-write r 1\npoll r\nsetpipesz r 8192\n",
        )
        .unwrap();
        let t = run_script(&s, &kinds[1]);
        assert_eq!(
            t.lines,
            [
                "write fd:3 3 => 3",
                "pipe r w => ok",
                "write w 3 => EPIPE",
                "efd-write r 1 => ok",
                "poll r => out",
                "setpipesz r 8192 => 8192",
            ]
        );
    }
}
