//! The `sim` backend: the engine backend run on [`eventpoll::sim`], the deterministic
//! platform. Every call of a scenario is a task of one simulation per scenario, and so is
//! every background call (`bg T`); one task runs at a time, picked by a scheduler seeded
//! with [`seed`], and the simulation's [`ManualClock`](eventpoll::platform::ManualClock)
//! moves only when every task sleeps — so `wait e 8 60000` with nothing to report returns
//! at once, one simulated minute later, and the same seed gives the same run.
//!
//! The runner's waits for background calls are simulated too: `sleeping T` runs the
//! simulation until T is parked (the engine parks only inside a blocking call) or has
//! returned, without moving the clock; `settle` runs it until no other task is runnable;
//! `join T` runs it until T returns or the clock has moved on by the join bound; `sleep MS`
//! moves the clock by MS; `signal T` is T's engine interrupt. A scenario in which every
//! task sleeps with no timer pending (a real system would hang) ends in a panic line that
//! says so.
//!
//! The transcripts must be the kernel's, like the engine backend's. [`last_trace`] is the
//! scheduler's log of the last run on this thread (its seed, then one line per task picked
//! and per move of the clock): with the transcript, what the determinism test compares;
//! `EVENTPOLL_SIM_TRACE=1` prints it on stderr after each scenario. `EVENTPOLL_SIM_SEED=N`
//! chooses the seed (default [`DEFAULT_SEED`]).

use super::engine::{self, Engine};
use super::threads::{BlockingCall, Worker};
use super::{Address, Backend, Event, Forked, SysResult};
use crate::script::{Buffer, FifoMode, SockType, TimerSetting, WaitKind};
use eventpoll::sim::Sim;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The seed when neither [`with_seed`] nor `EVENTPOLL_SIM_SEED` gives one.
pub const DEFAULT_SEED: u64 = 1;

thread_local! {
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
    static LAST_TRACE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The seed of a new simulation made on this thread: [`with_seed`]'s, else
/// `EVENTPOLL_SIM_SEED` (a decimal number), else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    SEED.with(Cell::get).unwrap_or_else(|| {
        std::env::var("EVENTPOLL_SIM_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(DEFAULT_SEED)
    })
}

/// Run `f` with sim backends made on this thread seeded with `seed`.
pub fn with_seed<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    let before = SEED.with(|s| s.replace(Some(seed)));
    let r = f();
    SEED.with(|s| s.set(before));
    r
}

/// The scheduler's trace of the last sim backend dropped on this thread (its seed first).
pub fn last_trace() -> Option<String> {
    LAST_TRACE.with(|t| t.borrow().clone())
}

/// The sim backend. See the module documentation.
pub struct SimBackend {
    sim: Sim,
    /// The engine backend whose calls run as tasks (locked by the running task only).
    engine: Arc<Mutex<Engine>>,
    /// A child process's backend (`fork P`) shares its parent's simulation and leaves the
    /// trace to it.
    child: bool,
}

/// A fresh sim backend: a new simulation seeded with [`seed`], an empty table on its clock.
pub fn create() -> Box<dyn Backend> {
    let sim = Sim::new(seed());
    let engine = Engine::on_clock(sim.clock());
    Box::new(SimBackend {
        sim,
        engine: Arc::new(Mutex::new(engine)),
        child: false,
    })
}

impl SimBackend {
    /// Run `f` on the engine backend as a task, driving the simulation until it returns.
    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Engine) -> R + Send + 'static) -> R {
        let engine = self.engine.clone();
        let run = self.sim.run("main", move || {
            f(&mut engine.lock().unwrap_or_else(|e| e.into_inner()))
        });
        match run {
            Ok(r) => r,
            Err(stalled) => {
                // Unblock the task (its call returns EINTR) so that nothing is left asleep
                // holding the engine, then fail the scenario.
                self.sim.interrupt(stalled.task);
                let _ = self.sim.run("reap", || ());
                panic!("sim: {stalled} (a real system would hang)");
            }
        }
    }
}

impl Drop for SimBackend {
    fn drop(&mut self) {
        if !self.child {
            let text = format!("seed {}\n{}", self.sim.seed(), self.sim.trace());
            if std::env::var_os("EVENTPOLL_SIM_TRACE").is_some_and(|v| !v.is_empty() && v != "0") {
                eprint!("{text}");
            }
            LAST_TRACE.with(|t| *t.borrow_mut() = Some(text));
        }
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn epoll_create(&mut self, size: i32) -> SysResult<i32> {
        self.call(move |e| e.epoll_create(size))
    }
    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32> {
        self.call(move |e| e.epoll_create1(flags))
    }
    fn pipe(&mut self) -> SysResult<(i32, i32)> {
        self.call(|e| e.pipe())
    }
    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32> {
        self.call(move |e| e.set_pipe_size(fd, size))
    }
    fn eventfd(&mut self, init: u32, semaphore: bool) -> SysResult<i32> {
        self.call(move |e| e.eventfd(init, semaphore))
    }
    fn socketpair(&mut self, ty: SockType) -> SysResult<(i32, i32)> {
        self.call(move |e| e.socketpair(ty))
    }
    fn timerfd(&mut self) -> SysResult<i32> {
        self.call(|e| e.timerfd())
    }
    fn settime(&mut self, fd: i32, setting: TimerSetting) -> SysResult<()> {
        self.call(move |e| e.settime(fd, setting))
    }
    fn regular_file(&mut self) -> SysResult<i32> {
        self.call(|e| e.regular_file())
    }
    fn dev_null(&mut self) -> SysResult<i32> {
        self.call(|e| e.dev_null())
    }
    fn mkfifo(&mut self, name: &str) -> SysResult<()> {
        let name = name.to_string();
        self.call(move |e| e.mkfifo(&name))
    }
    fn open_fifo(&mut self, name: &str, mode: FifoMode) -> SysResult<i32> {
        let name = name.to_string();
        self.call(move |e| e.open_fifo(&name, mode))
    }
    fn unix_listen(&mut self, ty: SockType, backlog: i32) -> SysResult<(i32, Address)> {
        self.call(move |e| e.unix_listen(ty, backlog))
    }
    fn unix_connect(&mut self, addr: Address) -> SysResult<i32> {
        self.call(move |e| e.unix_connect(addr))
    }
    fn accept(&mut self, fd: i32) -> SysResult<i32> {
        self.call(move |e| e.accept(fd))
    }
    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()> {
        self.call(move |e| e.epoll_ctl(epfd, op, fd, event))
    }
    fn epoll_wait(
        &mut self,
        epfd: i32,
        maxevents: i32,
        kind: WaitKind,
        buffer: Buffer,
    ) -> SysResult<Vec<Event>> {
        self.call(move |e| e.epoll_wait(epfd, maxevents, kind, buffer))
    }
    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16> {
        self.call(move |e| e.poll(fd, events))
    }
    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        let data = data.to_vec();
        self.call(move |e| e.write(fd, &data))
    }
    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        let len = buf.len();
        let (r, bytes) = self.call(move |e| {
            let mut b = vec![0u8; len];
            let r = e.read(fd, &mut b);
            (r, b)
        });
        buf.copy_from_slice(&bytes);
        r
    }
    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        self.call(move |e| e.shutdown(fd, how))
    }
    fn close(&mut self, fd: i32) -> SysResult<()> {
        self.call(move |e| e.close(fd))
    }
    fn dup(&mut self, fd: i32) -> SysResult<i32> {
        self.call(move |e| e.dup(fd))
    }
    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32> {
        self.call(move |e| e.dup2(fd, target))
    }
    fn dup3(&mut self, fd: i32, target: i32, flags: i32) -> SysResult<i32> {
        self.call(move |e| e.dup3(fd, target, flags))
    }
    fn dupfd(&mut self, fd: i32, min: i32) -> SysResult<i32> {
        self.call(move |e| e.dupfd(fd, min))
    }
    fn close_range(&mut self, first: u32, last: u32, flags: u32) -> SysResult<()> {
        self.call(move |e| e.close_range(first, last, flags))
    }
    fn spawn(&mut self, call: BlockingCall) -> Worker {
        let (table, items) = {
            let e = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            (e.table.clone(), e.items)
        };
        Worker::spawn_sim(&self.sim, move || {
            engine::blocking_call(&table, items, call)
        })
    }
    fn fork(&mut self) -> Forked {
        let child = self.call(|e| e.forked());
        Forked::Local(Box::new(SimBackend {
            sim: self.sim.clone(),
            engine: Arc::new(Mutex::new(child)),
            child: true,
        }))
    }
    fn sleep(&mut self, d: Duration) {
        self.call(move |_| eventpoll::sim::sleep(d));
    }
    fn settle(&mut self) {
        let sim = self.sim.clone();
        let _ = self.sim.run("settle", move || {
            let me = eventpoll::sim::current_task().unwrap_or(usize::MAX);
            while sim.others_runnable(me) {
                eventpoll::sim::yield_now();
            }
        });
    }
}
