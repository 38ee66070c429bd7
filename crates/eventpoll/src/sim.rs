//! A deterministic platform: simulated tasks, one running at a time, chosen by a seeded
//! scheduler, on a [`ManualClock`] that moves only when every task sleeps — so the same
//! program with the same seed makes the same calls in the same order, and a one-minute
//! timeout costs no real time. This is the platform a simulator (a deterministic network
//! simulation, a user-space kernel's test harness) adopts; the conformance runner runs its
//! whole corpus through it (`eventpoll conform`, backend `sim`).
//!
//! # Design
//!
//! With `std` the engine keeps its per-task state in thread-locals (see
//! [`platform`]), so each simulated task is an OS thread of its own — but
//! only the task holding the *baton* runs; every other one waits for it. The baton changes
//! hands only at the platform's switch points: a task parks ([`Platform::park`], which is
//! where every blocking call of the engine sleeps), yields ([`yield_now`]), sleeps
//! ([`sleep`]), joins ([`JoinHandle::join`]) or returns. Unparking never switches: it makes
//! the task runnable (or leaves a token, as std's `unpark` does). At each switch the
//! scheduler picks the next task among the runnable ones with its seeded generator
//! (splitmix64), in task-number order; when none is runnable it moves the clock to the
//! next timer ([`ManualClock::next_deadline`]), whose callbacks (timed sleeps' unparks,
//! timerfd expiries) make tasks runnable again. Every pick and every move of the clock is
//! written to the [trace](Sim::trace). Nothing else may block a task: a task that blocks
//! outside the platform (a std channel, a real sleep, a lock held across a park) freezes
//! the simulation, as it should — it is a switch the scheduler cannot see.
//!
//! The simulation runs only while someone drives it: [`Sim::run`] starts a task, schedules
//! until that task returns, and then leaves the other tasks exactly where they are until
//! the next `run`. So a driver outside the simulation (a test, the conformance runner) can
//! act between steps without racing the tasks.
//!
//! Threads that are not tasks of a simulation (the driver, threads of other parts of the
//! program) keep std's parking and the host's monotonic clock: the platform registered by
//! [`Sim::new`] serves both. It must be the program's platform
//! ([`platform::register`]): `Sim::new` registers it, and panics
//! if another platform was registered first. A thread that used the engine *before* the
//! registration stays a plain thread; tasks are always new threads.
//!
//! # Example
//!
//! A waiter blocks for an event with a one-minute timeout; a second task sleeps ten
//! virtual seconds and writes the event. The run takes no real time, and the trace is the
//! same for the same seed:
//!
//! ```
//! use eventpoll::sim::{self, Sim};
//! use eventpoll::platform::Clock;
//! use eventpoll::{FdTable, EpollEvent, Events};
//! use std::{sync::Arc, time::Duration};
//!
//! fn simulate(seed: u64) -> (String, Duration) {
//!     let sim = Sim::new(seed);
//!     let clock = sim.clock();
//!     sim.run("main", move || {
//!         let table = Arc::new(FdTable::new()); // on the simulation's clock
//!         let epfd = table.epoll_create1(0).unwrap();
//!         let efd = table.eventfd(0, 0).unwrap();
//!         let ev = EpollEvent::new(Events::IN, 7);
//!         table.epoll_ctl(epfd, 1 /* ADD */, efd, Some(&ev)).unwrap();
//!         let t = table.clone();
//!         let writer = sim::spawn("writer", move || {
//!             sim::sleep(Duration::from_secs(10));
//!             t.write(efd, &1u64.to_ne_bytes()).unwrap();
//!         });
//!         let mut out = [EpollEvent::default(); 4];
//!         let n = table.epoll_wait(epfd, &mut out, 4, 60_000).unwrap();
//!         writer.join().unwrap();
//!         assert_eq!((n, out[0].data()), (1, 7));
//!     })
//!     .expect("the simulation does not stall");
//!     (sim.trace(), clock.now())
//! }
//!
//! let (trace, now) = simulate(42);
//! assert_eq!(now, Duration::from_secs(11)); // the clock starts at 1 s
//! assert_eq!(simulate(42).0, trace); // byte for byte
//! ```

use crate::platform::{self, Platform, Task, Unpark};
use crate::platform::{Clock, ManualClock, MonotonicClock};
use crate::prelude::*;
use crate::signal::Interrupt;
use core::fmt::Write as _;
use core::time::Duration;
use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// A task's number in its simulation: 0, 1, 2, ... in the order they were spawned.
pub type TaskId = usize;

/// Where a task is, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Running, or ready to run when the scheduler picks it.
    Runnable,
    /// Parked: asleep until something unparks it (a wakeup, a timer, an interrupt).
    Parked,
    /// Its function has returned (or panicked).
    Finished,
}

/// [`Sim::run`] could not finish: every task is parked and no timer is pending, so nothing
/// can ever wake one (a real system would hang here). The simulation is left as it is;
/// interrupt a task ([`Sim::interrupt`]) and run again to unblock it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled {
    /// The task `run` started, still unfinished.
    pub task: TaskId,
}

impl core::fmt::Display for Stalled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "every simulated task is asleep and no timer is pending (task {} never returns)",
            self.task
        )
    }
}

struct Slot {
    name: String,
    state: TaskState,
    /// An unpark that came while the task was not parked: its next park returns at once.
    token: bool,
    /// Tasks joining this one, unparked when it finishes.
    joiners: Vec<TaskId>,
    /// The task's interrupt, once its thread has started.
    interrupt: Option<Interrupt>,
}

struct WorldState {
    tasks: Vec<Slot>,
    /// The task holding the baton.
    running: Option<TaskId>,
    /// A task that yielded: not picked next if another task is runnable.
    yielded: Option<TaskId>,
    /// The scheduler's generator (splitmix64).
    rng: u64,
    trace: String,
    /// A `run` is driving the simulation.
    driving: bool,
    /// The task that runs what [`Sim::run`] is given, once there is one.
    runner: Option<TaskId>,
    /// The closure given to the latest `run`, until the runner task takes it.
    job: Option<Job>,
    /// The latest `run`'s closure has not returned yet.
    job_running: bool,
    /// Every [`Sim`] handle is gone: the runner task ends.
    closed: bool,
}

type Job = Box<dyn FnOnce() + Send>;

struct World {
    state: Mutex<WorldState>,
    changed: Condvar,
    clock: Arc<ManualClock>,
    seed: u64,
}

/// One simulation: its tasks, its scheduler and its clock. Cheap to clone (a handle).
/// See the [module documentation](self).
///
/// When the last handle goes, the runner task of [`Sim::run`] ends (its thread exits);
/// tasks still parked then stay parked, their threads blocked for good — end them first.
#[derive(Clone)]
pub struct Sim(Arc<Owner>);

/// The outside's hold on a simulation (what [`Sim`] clones share): tasks hold the world,
/// not this, so the world learns when the outside has let go.
struct Owner {
    world: Arc<World>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let mut st = lock(&self.world);
        st.closed = true;
        // An idle runner task (parked between runs, with the baton free) gets the baton
        // back, sees `closed` and returns.
        if let Some(r) = st.runner {
            if st.running.is_none() && !st.job_running && st.tasks[r].state == TaskState::Parked {
                st.tasks[r].state = TaskState::Runnable;
                st.running = Some(r);
                self.world.changed.notify_all();
            }
        }
    }
}

impl core::fmt::Debug for Sim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.0.world.seed)
            .finish()
    }
}

fn lock(world: &World) -> MutexGuard<'_, WorldState> {
    // A panic inside a task is caught before it could poison the lock (see `spawn_in`);
    // take the state even so rather than panicking in the scheduler.
    world.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl World {
    fn wait<'a>(&self, guard: MutexGuard<'a, WorldState>) -> MutexGuard<'a, WorldState> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Give up the baton (the caller is task `me`, holding it) and wait until the
    /// scheduler hands it back.
    fn switch_away<'a>(
        &'a self,
        mut st: MutexGuard<'a, WorldState>,
        me: TaskId,
    ) -> MutexGuard<'a, WorldState> {
        st.running = None;
        self.changed.notify_all();
        while st.running != Some(me) {
            st = self.wait(st);
        }
        st
    }

    fn park(&self, me: TaskId) {
        let mut st = lock(self);
        if core::mem::take(&mut st.tasks[me].token) {
            return;
        }
        st.tasks[me].state = TaskState::Parked;
        drop(self.switch_away(st, me));
    }

    fn unpark(&self, id: TaskId) {
        let mut st = lock(self);
        unpark_locked(&mut st, id);
        self.changed.notify_all();
    }

    fn yield_now(&self, me: TaskId) {
        let mut st = lock(self);
        st.yielded = Some(me);
        drop(self.switch_away(st, me));
    }

    fn now_text(&self) -> String {
        let now = self.clock.now();
        std::format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
    }
}

fn unpark_locked(st: &mut WorldState, id: TaskId) {
    let slot = &mut st.tasks[id];
    match slot.state {
        TaskState::Parked => slot.state = TaskState::Runnable,
        TaskState::Runnable => slot.token = true,
        TaskState::Finished => {}
    }
}

impl WorldState {
    /// The scheduler: the next task to run, among the runnable ones, by the seeded
    /// generator; `None` when every task sleeps.
    fn pick(&mut self) -> Option<TaskId> {
        let yielded = self.yielded.take();
        let mut runnable: Vec<TaskId> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].state == TaskState::Runnable)
            .collect();
        if runnable.len() > 1 {
            if let Some(y) = yielded {
                runnable.retain(|&i| i != y);
            }
        }
        if runnable.is_empty() {
            return None;
        }
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Some(runnable[(z % runnable.len() as u64) as usize])
    }
}

/// What a task's thread knows about itself.
#[derive(Clone)]
struct Current {
    world: Arc<World>,
    id: TaskId,
    task: Task,
}

std::thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    /// A thread that is not a simulated task: std's parking.
    static OUTSIDE: Task = Task::new(Arc::new(ThreadUnpark(std::thread::current())));
}

fn current() -> Option<Current> {
    CURRENT.with(|c| c.borrow().clone())
}

struct ThreadUnpark(std::thread::Thread);

impl Unpark for ThreadUnpark {
    fn unpark(&self) {
        self.0.unpark()
    }
}

/// Unparks one simulated task: makes it runnable, never switches.
struct TaskUnpark {
    world: Weak<World>,
    id: TaskId,
}

impl Unpark for TaskUnpark {
    fn unpark(&self) {
        if let Some(w) = self.world.upgrade() {
            w.unpark(self.id);
        }
    }
}

/// The platform: simulated tasks go through their simulation, other threads are std's.
struct SimPlatform;

impl Platform for SimPlatform {
    fn current_task(&self) -> Task {
        match current() {
            Some(c) => c.task,
            None => OUTSIDE.with(|t| t.clone()),
        }
    }
    fn park(&self) {
        match current() {
            Some(c) => c.world.park(c.id),
            None => std::thread::park(),
        }
    }
    fn clock(&self) -> Arc<dyn Clock> {
        match current() {
            Some(c) => c.world.clock.clone(),
            None => Arc::new(MonotonicClock),
        }
    }
}

static SIM_PLATFORM: SimPlatform = SimPlatform;

/// Register the simulation platform as the program's platform (what [`Sim::new`] does
/// first). `Ok` when it is registered (now or before); `Err` when another platform was.
pub fn install() -> Result<(), &'static dyn Platform> {
    let ours = |p: &'static dyn Platform| {
        core::ptr::eq(
            p as *const dyn Platform as *const (),
            &SIM_PLATFORM as *const SimPlatform as *const (),
        )
    };
    match platform::register(&SIM_PLATFORM) {
        Ok(()) => Ok(()),
        Err(_) => match platform::registered() {
            Some(p) if ours(p) => Ok(()),
            Some(p) => Err(p),
            None => Ok(()),
        },
    }
}

impl Sim {
    /// A simulation with no task yet, its scheduler seeded with `seed`, its clock a fresh
    /// [`ManualClock`] (at 1 s). Registers the platform ([`install`]).
    ///
    /// # Panics
    ///
    /// If another platform is registered: the engine has one platform per program.
    pub fn new(seed: u64) -> Sim {
        if install().is_err() {
            panic!("eventpoll::sim: another platform is registered (one per program)");
        }
        Sim(Arc::new(Owner {
            world: Arc::new(World {
                state: Mutex::new(WorldState {
                    tasks: Vec::new(),
                    running: None,
                    yielded: None,
                    rng: seed,
                    trace: String::new(),
                    driving: false,
                    runner: None,
                    job: None,
                    job_running: false,
                    closed: false,
                }),
                changed: Condvar::new(),
                clock: Arc::new(ManualClock::new()),
                seed,
            }),
        }))
    }

    /// The simulation's clock: what its tasks' timeouts, sleeps and timerfds run on (the
    /// default clock of tables and instances made by its tasks).
    pub fn clock(&self) -> Arc<ManualClock> {
        self.0.world.clock.clone()
    }

    /// The seed the scheduler was made with.
    pub fn seed(&self) -> u64 {
        self.0.world.seed
    }

    /// Start `f` as a new task, runnable; it runs when the scheduler picks it (during a
    /// [`Sim::run`]). Callable from anywhere: a task of this simulation or a thread outside.
    pub fn spawn<T, F>(&self, name: &str, f: F) -> JoinHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        spawn_in(&self.0.world, name, f)
    }

    /// Run `f` on the simulation's *runner task* (made by the first `run`, the same task
    /// every time — one OS thread, one engine task state — named `name` in the trace
    /// while it runs `f`) and drive the simulation — every runnable task, in the seeded
    /// scheduler's order, and the clock when all sleep — until `f` returns; then leave the
    /// other tasks where they are until the next `run`. Call it from outside the
    /// simulation (not from one of its tasks), one `run` at a time. A panic in `f` is
    /// resumed here. After a [`Stalled`] run, the next `run` first drives the stalled `f`
    /// to its end (interrupt it first: [`Sim::interrupt`]).
    pub fn run<T, F>(&self, name: &str, f: F) -> Result<T, Stalled>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        assert!(
            current().is_none(),
            "eventpoll::sim: Sim::run is for the driver, not for a simulated task"
        );
        let runner = self.runner_task();
        if lock(&self.0.world).job_running {
            self.drive(runner)?; // a stalled run's closure, first
        }
        let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        {
            let mut st = lock(&self.0.world);
            st.tasks[runner].name = name.into();
            st.job = Some(Box::new(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            }));
            st.job_running = true;
            unpark_locked(&mut st, runner);
        }
        self.drive(runner)?;
        let result = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("a finished run left its result"),
        }
    }

    /// The runner task: takes each `run`'s closure, runs it, and parks until the next one.
    fn runner_task(&self) -> TaskId {
        if let Some(id) = lock(&self.0.world).runner {
            return id;
        }
        let handle = self.spawn("run", || {
            let c = current().expect("the runner is a task");
            let w = &*c.world;
            loop {
                let mut st = lock(w);
                let job = loop {
                    if let Some(job) = st.job.take() {
                        break Some(job);
                    }
                    if st.closed {
                        break None;
                    }
                    st.tasks[c.id].state = TaskState::Parked;
                    st = w.switch_away(st, c.id);
                };
                let Some(job) = job else {
                    return; // the task finishes, its thread exits
                };
                drop(st);
                job();
                // Done and parked in one step: `drive` sees the run end with the baton free.
                let mut st = lock(w);
                st.job_running = false;
                st.tasks[c.id].state = TaskState::Parked;
                drop(w.switch_away(st, c.id));
            }
        });
        let id = handle.id();
        lock(&self.0.world).runner = Some(id);
        id
    }

    /// Schedule until the runner task's closure has returned, or every task sleeps with no
    /// timer pending.
    fn drive(&self, id: TaskId) -> Result<(), Stalled> {
        let w = &*self.0.world;
        let mut st = lock(w);
        assert!(!st.driving, "eventpoll::sim: one Sim::run at a time");
        st.driving = true;
        let result = loop {
            if !st.job_running {
                break Ok(());
            }
            if st.running.is_none() {
                if let Some(next) = st.pick() {
                    let line =
                        std::format!("{} run {}#{next}\n", w.now_text(), st.tasks[next].name);
                    st.trace.push_str(&line);
                    st.running = Some(next);
                    w.changed.notify_all();
                } else if let Some(deadline) = w.clock.next_deadline() {
                    let now = w.clock.now();
                    let _ = writeln!(
                        st.trace,
                        "{} clock +{}ns",
                        w.now_text(),
                        deadline.saturating_sub(now).as_nanos()
                    );
                    // Timer callbacks unpark tasks: run them with the state unlocked, on
                    // this thread (outside every task, so their wakeups are not deferred).
                    drop(st);
                    w.clock.advance(deadline.saturating_sub(now));
                    st = lock(w);
                    continue;
                } else {
                    let _ = writeln!(st.trace, "{} stalled", w.now_text());
                    break Err(Stalled { task: id });
                }
            }
            st = w.wait(st);
        };
        st.driving = false;
        result
    }

    /// The trace so far: one line per scheduling decision (`TIME run NAME#ID`) and per move
    /// of the clock (`TIME clock +Nns`), and `stalled` lines. The same program with the same
    /// seed gives the same trace, byte for byte.
    pub fn trace(&self) -> String {
        lock(&self.0.world).trace.clone()
    }

    /// Where task `id` is; `None` for a number never given.
    pub fn task_state(&self, id: TaskId) -> Option<TaskState> {
        lock(&self.0.world).tasks.get(id).map(|t| t.state)
    }

    /// Whether any task other than `except` is runnable.
    pub fn others_runnable(&self, except: TaskId) -> bool {
        lock(&self.0.world)
            .tasks
            .iter()
            .enumerate()
            .any(|(i, t)| i != except && t.state == TaskState::Runnable)
    }

    /// Interrupt task `id` (the engine's analogue of a signal: its blocked call returns
    /// `EINTR`, see [`Interrupt`]); false for a number never given.
    pub fn interrupt(&self, id: TaskId) -> bool {
        let i = lock(&self.0.world)
            .tasks
            .get(id)
            .and_then(|t| t.interrupt.clone());
        match i {
            Some(i) => {
                i.raise();
                true
            }
            None => false,
        }
    }

    /// Task `id`'s [`Interrupt`] (whether it sleeps inside a blocking call).
    pub fn interrupt_of(&self, id: TaskId) -> Option<Interrupt> {
        lock(&self.0.world)
            .tasks
            .get(id)
            .and_then(|t| t.interrupt.clone())
    }
}

fn spawn_in<T, F>(world: &Arc<World>, name: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let result: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::new(Mutex::new(None));
    // The number is taken with the slot, parked (not picked) until its thread is ready.
    let id = {
        let mut st = lock(world);
        st.tasks.push(Slot {
            name: name.into(),
            state: TaskState::Parked,
            token: false,
            joiners: Vec::new(),
            interrupt: None,
        });
        st.tasks.len() - 1
    };
    let task = Task::new(Arc::new(TaskUnpark {
        world: Arc::downgrade(world),
        id,
    }));
    let me = Current {
        world: world.clone(),
        id,
        task,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let out = result.clone();
    let spawned = std::thread::Builder::new()
        .name(std::format!("sim-{name}"))
        .spawn(move || {
            let world = me.world.clone();
            CURRENT.with(|c| *c.borrow_mut() = Some(me));
            // The engine's per-task state is made now, unparked through this task.
            let _ = ready_tx.send(Interrupt::current());
            {
                let mut st = lock(&world);
                while st.running != Some(id) {
                    st = world.wait(st);
                }
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            let mut st = lock(&world);
            st.tasks[id].state = TaskState::Finished;
            for j in core::mem::take(&mut st.tasks[id].joiners) {
                unpark_locked(&mut st, j);
            }
            st.running = None;
            world.changed.notify_all();
            drop(st);
            CURRENT.with(|c| *c.borrow_mut() = None);
        });
    let interrupt = match spawned.ok().and_then(|_| ready_rx.recv().ok()) {
        Some(i) => i,
        None => panic!("eventpoll::sim: cannot start a thread for task {name}"),
    };
    let mut st = lock(world);
    let slot = &mut st.tasks[id];
    slot.interrupt = Some(interrupt);
    // An unpark before now (there is none: nothing knew the task) would be its token.
    slot.state = TaskState::Runnable;
    drop(st);
    JoinHandle {
        world: world.clone(),
        id,
        result,
    }
}

/// Start `f` as a new task of the calling task's simulation (see [`Sim::spawn`]).
///
/// # Panics
///
/// When called outside a simulated task.
pub fn spawn<T, F>(name: &str, f: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let c = current().expect("eventpoll::sim::spawn outside a simulated task");
    spawn_in(&c.world, name, f)
}

/// The calling task's number, `None` outside a simulation.
pub fn current_task() -> Option<TaskId> {
    current().map(|c| c.id)
}

/// Let another runnable task run (the scheduler picks one, not this task if any other is
/// runnable). Outside a simulated task: std's `yield_now`.
pub fn yield_now() {
    match current() {
        Some(c) => c.world.yield_now(c.id),
        None => std::thread::yield_now(),
    }
}

/// Sleep for `d` of the simulation's time: the task parks until its clock has moved on by
/// `d` (which happens at once when every other task sleeps too). Outside a simulated
/// task: a real sleep.
pub fn sleep(d: Duration) {
    let Some(c) = current() else {
        std::thread::sleep(d);
        return;
    };
    let until = c.world.clock.now().saturating_add(d);
    let task = c.task.clone();
    let timer = c
        .world
        .clock
        .schedule(until, Box::new(move || task.unpark()));
    while c.world.clock.now() < until {
        c.world.park(c.id);
    }
    c.world.clock.cancel(timer);
}

/// A task's result, for joining it.
pub struct JoinHandle<T> {
    world: Arc<World>,
    id: TaskId,
    result: Arc<Mutex<Option<std::thread::Result<T>>>>,
}

impl<T> core::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

impl<T> JoinHandle<T> {
    /// The task's number.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task has returned.
    pub fn is_finished(&self) -> bool {
        lock(&self.world).tasks[self.id].state == TaskState::Finished
    }

    fn take(&self) -> Option<std::thread::Result<T>> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Wait (a switch point) until the task returns; its result, or its panic.
    ///
    /// # Panics
    ///
    /// When called outside a task of the same simulation.
    pub fn join(self) -> std::thread::Result<T> {
        match self.join_until(None) {
            Some(r) => r,
            None => unreachable!("a join without a deadline returns the result"),
        }
    }

    /// Like [`JoinHandle::join`], giving up after `timeout` of the simulation's time:
    /// `None` then (the task goes on; join it again later).
    pub fn join_within(&self, timeout: Duration) -> Option<std::thread::Result<T>> {
        let until = self.world.clock.now().saturating_add(timeout);
        self.join_until(Some(until))
    }

    fn join_until(&self, until: Option<Duration>) -> Option<std::thread::Result<T>> {
        let c = current()
            .filter(|c| Arc::ptr_eq(&c.world, &self.world))
            .expect("eventpoll::sim: join from a task of the same simulation");
        let timer = until.map(|at| {
            let task = c.task.clone();
            self.world
                .clock
                .schedule(at, Box::new(move || task.unpark()))
        });
        let finished = loop {
            {
                let mut st = lock(&self.world);
                if st.tasks[self.id].state == TaskState::Finished {
                    break true;
                }
                if until.is_some_and(|at| self.world.clock.now() >= at) {
                    break false;
                }
                if !st.tasks[self.id].joiners.contains(&c.id) {
                    st.tasks[self.id].joiners.push(c.id);
                }
            }
            self.world.park(c.id);
        };
        if let Some(t) = timer {
            self.world.clock.cancel(t);
        }
        if finished {
            self.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_prelude::*;
    use crate::{EpollEvent, Errno, Events, FdTable};

    /// Four tasks each appending to a shared log at three yields: the interleaving is the
    /// seed's, and it is the same for the same seed.
    fn interleaving(seed: u64) -> (String, String) {
        let sim = Sim::new(seed);
        let log = Arc::new(Mutex::new(String::new()));
        let l = log.clone();
        sim.run("main", move || {
            let tasks: Vec<_> = (0..4)
                .map(|i| {
                    let l = l.clone();
                    spawn("worker", move || {
                        for step in 0..3 {
                            l.lock().unwrap().push_str(&format!("{i}.{step} "));
                            yield_now();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.join().unwrap();
            }
        })
        .unwrap();
        let text = log.lock().unwrap().clone();
        (text, sim.trace())
    }

    #[test]
    fn the_same_seed_interleaves_the_same_way_and_seeds_differ() {
        let a = interleaving(7);
        assert_eq!(interleaving(7), a);
        assert_eq!(a.0.split(' ').filter(|s| !s.is_empty()).count(), 12);
        let others: Vec<String> = (0..8).map(|s| interleaving(s).0).collect();
        assert!(
            others.iter().any(|o| *o != a.0),
            "eight seeds all interleave like seed 7: {a:?}"
        );
    }

    #[test]
    fn a_long_timeout_costs_no_real_time_and_ends_on_the_simulated_clock() {
        let sim = Sim::new(1);
        let clock = sim.clock();
        let started = Instant::now();
        let n = sim
            .run("main", || {
                let table = FdTable::new();
                let epfd = table.epoll_create1(0).unwrap();
                let mut out = [EpollEvent::default(); 1];
                table.epoll_wait(epfd, &mut out, 1, 600_000)
            })
            .unwrap();
        assert_eq!(n, Ok(0));
        assert_eq!(clock.now(), Duration::from_secs(601));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(
            sim.trace().contains("clock +600000000000ns"),
            "{}",
            sim.trace()
        );
    }

    #[test]
    fn a_stall_is_reported_and_an_interrupt_ends_it() {
        let sim = Sim::new(3);
        let table = Arc::new(FdTable::with_clock(
            Default::default(),
            crate::User::new(crate::epoll::DEFAULT_MAX_USER_WATCHES),
            sim.clock(),
        ));
        let epfd = table.epoll_create1(0).unwrap();
        let efd = table.eventfd(0, 0).unwrap();
        let ev = EpollEvent::new(Events::IN, 1);
        table.epoll_ctl(epfd, 1, efd, Some(&ev)).unwrap();
        // Nothing will ever write the eventfd: the run's own task sleeps forever.
        let t = table.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let stalled = sim
            .run("waiter", move || {
                let mut out = [EpollEvent::default(); 1];
                let _ = tx.send(t.epoll_wait(epfd, &mut out, 1, -1));
            })
            .unwrap_err();
        assert!(rx.try_recv().is_err(), "the wait has not returned");
        assert_eq!(sim.task_state(stalled.task), Some(TaskState::Parked));
        assert!(sim.trace().ends_with("stalled\n"), "{}", sim.trace());
        assert!(sim.interrupt(stalled.task));
        // The next run first takes the stalled closure to its end (EINTR), then its own.
        assert_eq!(sim.run("after", || 5), Ok(5));
        assert_eq!(rx.try_recv(), Ok(Err(Errno::EINTR)));
        assert_eq!(sim.task_state(stalled.task), Some(TaskState::Parked));
        assert!(!sim.trace().ends_with("stalled\n"));
    }

    #[test]
    fn the_runner_task_ends_with_the_last_handle() {
        let sim = Sim::new(9);
        assert_eq!(sim.run("main", || 1), Ok(1));
        let world = sim.0.world.clone();
        let runner = lock(&world).runner.unwrap();
        let other = sim.clone();
        drop(sim);
        assert_eq!(lock(&world).tasks[runner].state, TaskState::Parked);
        drop(other);
        let start = Instant::now();
        while lock(&world).tasks[runner].state != TaskState::Finished {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the runner task is still there"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
