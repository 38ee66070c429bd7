//! Background calls: a blocking call (`epoll_wait`, `poll`, `select`) started on a thread of
//! its own by `bg T CALL`, so that a scenario can act while the call sleeps and then see what
//! it returned (`join T`). Every backend runs the call on a real OS thread; they differ only
//! in how the runner learns that the thread is asleep inside its call and how it interrupts
//! it:
//!
//! - **kernel and C ABI** ([`Worker::spawn_os`]): asleep is what `/proc/self/task/TID` shows
//!   — state `S` *and* a system call in progress. For the kernel the call is known
//!   (`epoll_wait`, `poll`, ...) and one look is exact: a waker makes a sleeping task
//!   runnable at once. The C ABI's call may sleep in several system calls of its own, so
//!   its thread must be seen asleep three times in a row 5 ms apart. An interrupt is a `SIGUSR1` whose handler does nothing and is installed
//!   without `SA_RESTART`, so the blocked call returns `EINTR` as it would for any signal.
//! - **engine** ([`Worker::spawn_engine`]): asleep is the thread's
//!   [`eventpoll::Interrupt::is_sleeping`] (exact: set just before it parks), and an
//!   interrupt is [`eventpoll::Interrupt::raise`].
//!
//! Every wait for a thread is bounded ([`SLEEP_BOUND`], [`JOIN_BOUND`]): a scenario whose
//! call would never return prints `hung` and the thread is interrupted until it returns, so
//! a wrong backend fails its scenario instead of hanging the runner. A worker dropped while
//! its call still runs (a scenario that never joined it, or a panic) is interrupted and
//! joined the same way before its backend releases its descriptors.

use super::{Event, SysResult};
use crate::script::{Buffer, WaitKind};
use eventpoll::sim::TaskState;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `sleeping T` waits for the thread to be asleep in its call (or to return).
pub const SLEEP_BOUND: Duration = Duration::from_secs(3);
/// How long `join T` waits for the call to return before printing `hung`.
pub const JOIN_BOUND: Duration = Duration::from_secs(5);
/// How long cleanup keeps interrupting a thread that does not return.
const STOP_BOUND: Duration = Duration::from_secs(3);

/// A blocking call with scenario descriptor numbers, as a backend receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockingCall {
    /// `epoll_wait`/`epoll_pwait`/`epoll_pwait2`, as the foreground `wait` commands.
    Wait {
        /// The instance.
        epfd: i32,
        /// `maxevents`, passed unchanged.
        maxevents: i32,
        /// Which call and its timeout.
        kind: WaitKind,
        /// Pass a NULL events pointer.
        buffer: Buffer,
    },
    /// `poll()` on one descriptor asking for every bit, with a timeout in ms.
    Poll {
        /// The descriptor.
        fd: i32,
        /// Milliseconds; negative for no limit.
        timeout_ms: i32,
    },
    /// `select()` with the descriptor in all three sets, with a timeout in ms.
    Select {
        /// The descriptor.
        fd: i32,
        /// Milliseconds; negative for no limit (a NULL timeval).
        timeout_ms: i32,
    },
}

/// Which sets `select` left the descriptor in, and its return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectSets {
    /// The return value: how many (descriptor, set) pairs are ready.
    pub count: i32,
    /// In the read set.
    pub read: bool,
    /// In the write set.
    pub write: bool,
    /// In the exception set.
    pub except: bool,
}

impl SelectSets {
    /// The sets as the kernel's `select` derives them from a poll mask: read for
    /// `IN|RDNORM|RDBAND|HUP|ERR`, write for `OUT|WRNORM|WRBAND|ERR`, except for `PRI`.
    ///
    /// ```
    /// use eventpoll_conform::backend::threads::SelectSets;
    /// let s = SelectSets::from_mask(0x001 | 0x004); // in|out
    /// assert_eq!((s.count, s.read, s.write, s.except), (2, true, true, false));
    /// ```
    pub fn from_mask(mask: u32) -> SelectSets {
        let read = mask & (0x001 | 0x040 | 0x080 | 0x010 | 0x008) != 0;
        let write = mask & (0x004 | 0x100 | 0x200 | 0x008) != 0;
        let except = mask & 0x002 != 0;
        SelectSets {
            count: i32::from(read) + i32::from(write) + i32::from(except),
            read,
            write,
            except,
        }
    }

    /// Transcript text: `2 [read, write]`, `0 []`.
    pub fn text(&self) -> String {
        let sets: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.except, "except"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        format!("{} [{}]", self.count, sets.join(", "))
    }
}

/// What a background call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A wait call's events.
    Events(SysResult<Vec<Event>>),
    /// `poll`'s `revents`.
    Poll(SysResult<i16>),
    /// `select`'s sets.
    Select(SysResult<SelectSets>),
    /// The thread panicked inside the call.
    Panicked,
}

/// Where a background thread is, as `sleeping T` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Asleep inside its call.
    Asleep,
    /// Its call has returned (the result waits for `join`).
    Returned,
    /// Neither, within [`SLEEP_BOUND`].
    Running,
}

impl ThreadState {
    /// Transcript text.
    pub fn text(self) -> &'static str {
        match self {
            ThreadState::Asleep => "asleep",
            ThreadState::Returned => "returned",
            ThreadState::Running => "running",
        }
    }
}

enum Sleeper {
    /// An OS thread observed through `/proc`: its tid once it has started, and the system
    /// calls its call sleeps in when they are known (the kernel's own calls).
    Os(Arc<AtomicI32>, Option<&'static [i64]>),
    /// An engine thread observed through its interrupt state.
    Engine(eventpoll::Interrupt),
    /// A task of a simulation (the `sim` backend), observed through its scheduler.
    Sim(SimTask),
}

/// A background call's task in a simulation. Waiting for it is simulated too: `sleeping`
/// and `join` run the simulation (their bounds are on its clock), nothing waits in real time.
struct SimTask {
    sim: eventpoll::sim::Sim,
    handle: Arc<eventpoll::sim::JoinHandle<()>>,
}

/// One background call on its own thread. See the module documentation.
pub struct Worker {
    handle: Option<JoinHandle<()>>,
    rx: Receiver<Outcome>,
    done: Option<Outcome>,
    sleeper: Sleeper,
    /// The pooled OS thread the call runs on ([`OsThreads`]): interrupted through its
    /// `pthread_t`, never joined by the worker (the pool joins it).
    pooled: Option<libc::pthread_t>,
}

/// A job for a pooled thread: the call, which sends its outcome itself.
type Job = Box<dyn FnOnce() + Send>;

/// One OS thread of [`OsThreads`]: it runs the jobs it is sent, one after the other.
struct PooledThread {
    jobs: mpsc::Sender<Job>,
    tid: Arc<AtomicI32>,
    pthread: libc::pthread_t,
    /// A job is running (or queued) on it.
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// Its last job's call has returned (its outcome is being sent, or was): the thread is
    /// about to be idle.
    returned: Arc<std::sync::atomic::AtomicBool>,
    handle: JoinHandle<()>,
}

/// The OS threads of a backend's named background calls (`bg T`): a call of `T` runs on the
/// thread `T`'s last call ran on when that call has returned, so that a scenario can make
/// one thread wait again and again — as an event loop's thread does, and as the C ABI's
/// per-thread behaviour needs to be seen (the io_uring driver's takeover of polls another
/// thread armed comes after a few sleeps of one thread). The kernel does not tell threads
/// apart here, so transcripts do not change. A thread whose call still runs is not reused
/// (the new call gets a new thread). Dropping the pool ends and joins its threads (their
/// calls have returned by then: every worker is stopped before its backend goes).
#[derive(Default)]
pub struct OsThreads {
    by_name: std::collections::HashMap<String, PooledThread>,
    /// Threads replaced by a newer one of the same name, joined with the pool.
    retired: Vec<PooledThread>,
    /// The process the threads run in (0: none made yet). A `fork` child (`fork P`) has
    /// none of them: it forgets them and makes its own.
    pid: u32,
}

impl OsThreads {
    /// Forget threads that belong to another process (this is a `fork` child's copy).
    fn forget_if_copied(&mut self) {
        let me = std::process::id();
        if self.pid != me {
            for (_, t) in self.by_name.drain() {
                std::mem::forget(t);
            }
            for t in self.retired.drain(..) {
                std::mem::forget(t);
            }
            self.pid = me;
        }
    }

    /// An idle thread named `name`, made if there is none.
    fn idle(&mut self, name: &str) -> &PooledThread {
        self.forget_if_copied();
        if let Some(t) = self.by_name.get(name) {
            // A call whose outcome a `join` may already hold frees its thread a few
            // instructions later: wait for it, so that `bg T` right after `join T` reuses it.
            while t.busy.load(SeqCst) && t.returned.load(SeqCst) {
                std::thread::yield_now();
            }
        }
        let reusable = self.by_name.get(name).is_some_and(|t| !t.busy.load(SeqCst));
        if !reusable {
            if let Some(old) = self.by_name.remove(name) {
                self.retired.push(old);
            }
            let (tx, rx) = mpsc::channel::<Job>();
            let tid = Arc::new(AtomicI32::new(0));
            let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let returned = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (t, b) = (tid.clone(), busy.clone());
            let handle = std::thread::spawn(move || {
                t.store(gettid(), SeqCst);
                while let Ok(job) = rx.recv() {
                    // A call that panics sends nothing: its worker sees `Panicked`.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    b.store(false, SeqCst);
                }
            });
            use std::os::unix::thread::JoinHandleExt;
            let pthread = handle.as_pthread_t();
            self.by_name.insert(
                name.to_string(),
                PooledThread {
                    jobs: tx,
                    tid,
                    pthread,
                    busy,
                    returned,
                    handle,
                },
            );
        }
        &self.by_name[name]
    }
}

impl Drop for OsThreads {
    fn drop(&mut self) {
        self.forget_if_copied();
        let threads: Vec<PooledThread> = self
            .by_name
            .drain()
            .map(|(_, t)| t)
            .chain(self.retired.drain(..))
            .collect();
        for t in threads {
            drop(t.jobs);
            if t.busy.load(SeqCst) {
                // A call left running (its worker gave up on it): not joined, as a
                // worker's own thread would not be.
                continue;
            }
            let _ = t.handle.join();
        }
    }
}

/// The signal that interrupts an OS worker: a handler that does nothing, without
/// `SA_RESTART`.
fn install_interrupt_handler() {
    static ONCE: Once = Once::new();
    extern "C" fn nothing(_: libc::c_int) {}
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (it does
        // nothing); SIGUSR1 is not used otherwise by the runner.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
    });
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Whether OS thread `tid` is asleep in a system call right now (one of `calls`, when
/// given).
fn os_asleep(tid: i32, calls: Option<&[i64]>) -> bool {
    let state = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('S'))
        })
        .unwrap_or(false);
    let in_call = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .map(|s| {
            let nr = s
                .split(' ')
                .next()
                .and_then(|n| n.trim().parse::<i64>().ok());
            match (nr, calls) {
                (None, _) => false, // `running`
                (Some(n), Some(calls)) => calls.contains(&n),
                (Some(_), None) => true,
            }
        })
        .unwrap_or(false);
    state && in_call
}

impl Worker {
    /// Run `call` on a new OS thread observed through `/proc` (kernel and C ABI backends).
    /// `syscalls`: the system calls the call sleeps in, when known (the kernel's own calls:
    /// one look at `/proc` is then exact, since a waker makes a sleeping task runnable at
    /// once); `None` (a library whose internals may sleep elsewhere) asks for the thread to
    /// be seen asleep three times in a row.
    pub fn spawn_os(
        syscalls: Option<&'static [i64]>,
        call: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Worker {
        install_interrupt_handler();
        let tid = Arc::new(AtomicI32::new(0));
        let (tx, rx) = mpsc::channel();
        let t = tid.clone();
        let handle = std::thread::spawn(move || {
            t.store(gettid(), SeqCst);
            let _ = tx.send(call());
        });
        Worker {
            handle: Some(handle),
            rx,
            done: None,
            sleeper: Sleeper::Os(tid, syscalls),
            pooled: None,
        }
    }

    /// Run `call` as [`Worker::spawn_os`] does, on the thread of `pool` named `name` (made
    /// if there is none, or if its last call still runs): see [`OsThreads`].
    pub fn spawn_os_named(
        pool: &mut OsThreads,
        name: &str,
        syscalls: Option<&'static [i64]>,
        call: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Worker {
        install_interrupt_handler();
        let t = pool.idle(name);
        let (tx, rx) = mpsc::channel();
        t.busy.store(true, SeqCst);
        t.returned.store(false, SeqCst);
        let returned = t.returned.clone();
        let job: Job = Box::new(move || {
            let outcome = call();
            returned.store(true, SeqCst);
            let _ = tx.send(outcome);
        });
        if t.jobs.send(job).is_err() {
            // The thread is gone (it cannot be: it ends only with the pool).
            t.busy.store(false, SeqCst);
        }
        Worker {
            handle: None,
            rx,
            done: None,
            sleeper: Sleeper::Os(t.tid.clone(), syscalls),
            pooled: Some(t.pthread),
        }
    }

    /// Run `call` on a new thread observed through its engine interrupt state.
    pub fn spawn_engine(call: impl FnOnce() -> Outcome + Send + 'static) -> Worker {
        let (itx, irx) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            let _ = itx.send(eventpoll::Interrupt::current());
            let _ = tx.send(call());
        });
        let interrupt = irx
            .recv()
            .expect("a new thread sends its interrupt handle before anything else");
        Worker {
            handle: Some(handle),
            rx,
            done: None,
            sleeper: Sleeper::Engine(interrupt),
            pooled: None,
        }
    }

    /// Run `call` as a task of `sim` (the `sim` backend): it runs when the simulation's
    /// scheduler picks it, while the runner drives the simulation.
    pub fn spawn_sim(
        sim: &eventpoll::sim::Sim,
        call: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Worker {
        let (tx, rx) = mpsc::channel();
        let handle = sim.spawn("bg", move || {
            let _ = tx.send(call());
        });
        Worker {
            handle: None,
            rx,
            done: None,
            sleeper: Sleeper::Sim(SimTask {
                sim: sim.clone(),
                handle: Arc::new(handle),
            }),
            pooled: None,
        }
    }

    /// Take the result if the call has returned, waiting at most `bound`.
    fn poll_done(&mut self, bound: Duration) -> bool {
        if self.done.is_some() {
            return true;
        }
        if let Sleeper::Sim(t) = &self.sleeper {
            // Simulated time: the simulation runs until the task returns or its clock has
            // moved on by `bound`.
            if !bound.is_zero() && !t.handle.is_finished() {
                let h = t.handle.clone();
                let _ = t.sim.run("join", move || h.join_within(bound).is_some());
            }
            if !t.handle.is_finished() {
                return false;
            }
            self.done = Some(self.rx.try_recv().unwrap_or(Outcome::Panicked));
            return true;
        }
        match self.rx.recv_timeout(bound) {
            Ok(o) => {
                self.done = Some(o);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // The thread ended without a result: it panicked.
            Err(RecvTimeoutError::Disconnected) => {
                self.done = Some(Outcome::Panicked);
                true
            }
        }
    }

    fn asleep_now(&self) -> bool {
        match &self.sleeper {
            Sleeper::Os(tid, calls) => {
                let tid = tid.load(SeqCst);
                tid != 0 && os_asleep(tid, *calls)
            }
            Sleeper::Engine(i) => i.is_sleeping(),
            Sleeper::Sim(t) => t.sim.task_state(t.handle.id()) == Some(TaskState::Parked),
        }
    }

    /// Wait (at most [`SLEEP_BOUND`]) until the thread is asleep in its call or the call
    /// has returned.
    pub fn state(&mut self) -> ThreadState {
        if let Sleeper::Sim(t) = &self.sleeper {
            // Run the simulation until the task is parked (asleep in its call: the engine
            // parks nowhere else) or has returned; the clock does not move meanwhile (the
            // runner's own task stays runnable).
            let (sim, id) = (t.sim.clone(), t.handle.id());
            let _ = t.sim.run("sleeping", move || {
                while sim.task_state(id) == Some(TaskState::Runnable) {
                    eventpoll::sim::yield_now();
                }
            });
            return if self.poll_done(Duration::ZERO) {
                ThreadState::Returned
            } else if self.asleep_now() {
                ThreadState::Asleep
            } else {
                ThreadState::Running
            };
        }
        let deadline = Instant::now() + SLEEP_BOUND;
        let (needed, gap) = match self.sleeper {
            Sleeper::Os(_, None) => (3, Duration::from_millis(5)),
            Sleeper::Os(_, Some(_)) | Sleeper::Engine(_) | Sleeper::Sim(_) => {
                (1, Duration::from_millis(1))
            }
        };
        let mut seen = 0;
        while Instant::now() < deadline {
            if self.poll_done(Duration::ZERO) {
                return ThreadState::Returned;
            }
            seen = if self.asleep_now() { seen + 1 } else { 0 };
            if seen >= needed {
                return ThreadState::Asleep;
            }
            if self.poll_done(gap) {
                return ThreadState::Returned;
            }
        }
        ThreadState::Running
    }

    /// Interrupt the call (a signal, or the engine's interrupt).
    pub fn interrupt(&self) {
        match &self.sleeper {
            Sleeper::Os(..) => {
                if let Some(h) = &self.handle {
                    use std::os::unix::thread::JoinHandleExt;
                    // SAFETY: the thread is not joined yet (we hold its handle), so its
                    // pthread_t is valid; SIGUSR1's handler does nothing.
                    unsafe { libc::pthread_kill(h.as_pthread_t(), libc::SIGUSR1) };
                } else if let (Some(p), None) = (self.pooled, &self.done) {
                    // SAFETY: a pooled thread is joined only when its pool is dropped, after
                    // every worker of its backend: its pthread_t is valid. Only while this
                    // call has not returned (a signal after it would reach the thread's next
                    // call); SIGUSR1's handler does nothing.
                    unsafe { libc::pthread_kill(p, libc::SIGUSR1) };
                }
            }
            Sleeper::Engine(i) => i.raise(),
            Sleeper::Sim(t) => {
                t.sim.interrupt(t.handle.id());
            }
        }
    }

    /// The call's result, waiting at most `bound`; `None` if it is still running.
    pub fn join(&mut self, bound: Duration) -> Option<Outcome> {
        if !self.poll_done(bound) {
            return None;
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        // A pooled thread's call has returned: the thread is its pool's again.
        self.pooled = None;
        self.done.take()
    }

    /// Interrupt until the call returns (bounded), then join the thread. Returns the
    /// result if it came.
    pub fn stop(&mut self) -> Option<Outcome> {
        if let Sleeper::Sim(_) = self.sleeper {
            // As below, on the simulation's clock: 150 interrupts 20 ms apart.
            for _ in 0..150 {
                if self.poll_done(Duration::ZERO) {
                    return self.join(Duration::ZERO);
                }
                self.interrupt();
                if self.poll_done(Duration::from_millis(20)) {
                    return self.join(Duration::ZERO);
                }
            }
            eprintln!(
                "eventpoll conform: a simulated background call did not return after interrupts"
            );
            return None;
        }
        let deadline = Instant::now() + STOP_BOUND;
        while Instant::now() < deadline {
            if self.poll_done(Duration::ZERO) {
                return self.join(Duration::ZERO);
            }
            self.interrupt();
            if self.poll_done(Duration::from_millis(20)) {
                return self.join(Duration::ZERO);
            }
        }
        eprintln!(
            "eventpoll conform: a background call did not return after interrupts; left running"
        );
        // Detach: joining would hang the runner.
        self.handle.take();
        None
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let unfinished_task = match &self.sleeper {
            Sleeper::Sim(t) => self.done.is_none() && !t.handle.is_finished(),
            _ => false,
        };
        let pooled_running = self.pooled.is_some() && self.done.is_none();
        if self.handle.is_some() || unfinished_task || pooled_running {
            self.stop();
        }
    }
}

/// Milliseconds as a `timeval` pointer target for `select` (`None`: NULL, no limit).
pub fn select_timeval(timeout_ms: i32) -> Option<libc::timeval> {
    (timeout_ms >= 0).then(|| libc::timeval {
        tv_sec: libc::time_t::from(timeout_ms / 1000),
        tv_usec: libc::suseconds_t::from((timeout_ms % 1000) * 1000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that records the thread it ran on and, when given, waits for `go` first.
    fn on_thread(
        pool: &mut OsThreads,
        name: &str,
        go: Option<Receiver<()>>,
    ) -> (Worker, Arc<AtomicI32>) {
        let ran_on = Arc::new(AtomicI32::new(0));
        let r = ran_on.clone();
        let w = Worker::spawn_os_named(pool, name, None, move || {
            r.store(gettid(), SeqCst);
            if let Some(go) = go {
                let _ = go.recv();
            }
            Outcome::Poll(Ok(0))
        });
        (w, ran_on)
    }

    #[test]
    fn a_name_runs_again_on_its_thread_once_its_call_has_returned() {
        let mut pool = OsThreads::default();
        let (mut a, a_tid) = on_thread(&mut pool, "t", None);
        assert_eq!(a.join(JOIN_BOUND), Some(Outcome::Poll(Ok(0))));
        let (mut b, b_tid) = on_thread(&mut pool, "t", None);
        assert_eq!(b.join(JOIN_BOUND), Some(Outcome::Poll(Ok(0))));
        assert_ne!(a_tid.load(SeqCst), 0);
        assert_eq!(
            a_tid.load(SeqCst),
            b_tid.load(SeqCst),
            "`t` again: its thread"
        );
        // Another name: another thread.
        let (mut c, c_tid) = on_thread(&mut pool, "u", None);
        assert_eq!(c.join(JOIN_BOUND), Some(Outcome::Poll(Ok(0))));
        assert_ne!(c_tid.load(SeqCst), a_tid.load(SeqCst));
        // `t` while its call still runs: a new thread (the busy one is not reused).
        let (tx, rx) = mpsc::channel();
        let (mut d, d_tid) = on_thread(&mut pool, "t", Some(rx));
        while d_tid.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        let (mut e, e_tid) = on_thread(&mut pool, "t", None);
        assert_eq!(e.join(JOIN_BOUND), Some(Outcome::Poll(Ok(0))));
        assert_eq!(d_tid.load(SeqCst), a_tid.load(SeqCst));
        assert_ne!(e_tid.load(SeqCst), d_tid.load(SeqCst));
        tx.send(()).unwrap();
        assert_eq!(d.join(JOIN_BOUND), Some(Outcome::Poll(Ok(0))));
        // Dropping the pool joins its idle threads (the test would hang otherwise).
        drop(pool);
    }
}
