//! Tasks, parking and the engine's per-task state: the blocked task's token ([`Parker`]),
//! the per-task interrupt state, and the unparks a task defers until it leaves the engine.
//!
//! Per-task state lives in thread-locals with `std` (loom's thread-locals under loom) and
//! in the [`Task`](super::Task) the registered platform returns without `std`. Each task
//! caches one `Parker`, re-armed for every blocking wait, so a wait allocates nothing.

#[allow(unused_imports)]
use super::sync::{lock, Arc, AtomicBool, AtomicU32, Ordering, SpinLock};
use super::time::Deadline;
use crate::prelude::*;

// ----- unparking a task -----

/// A handle that unparks one task.
#[cfg(all(feature = "std", not(loom)))]
#[derive(Clone)]
pub(crate) enum Unparker {
    /// A thread of the std platform.
    Thread(std::thread::Thread),
    /// A task of a registered platform.
    Task(Arc<dyn super::Unpark>),
}

#[cfg(all(feature = "std", not(loom)))]
impl Unparker {
    #[inline]
    pub(crate) fn unpark(&self) {
        match self {
            Unparker::Thread(t) => t.unpark(),
            Unparker::Task(t) => t.unpark(),
        }
    }
}

/// The calling task's unpark handle.
#[cfg(all(feature = "std", not(loom)))]
pub(crate) fn current_unparker() -> Unparker {
    match super::registered() {
        Some(p) => Unparker::Task(p.current_task().unpark_handle()),
        None => Unparker::Thread(std::thread::current()),
    }
}

/// Block the calling task until it is unparked (or spuriously).
#[cfg(all(feature = "std", not(loom)))]
#[inline]
pub(crate) fn park() {
    match super::registered() {
        Some(p) => p.park(),
        None => std::thread::park(),
    }
}

/// Park for at most `d` (a clock with a native timed park: [`MonotonicClock`]).
///
/// [`MonotonicClock`]: crate::platform::MonotonicClock
#[cfg(all(feature = "std", not(loom)))]
pub(crate) fn park_timeout(d: core::time::Duration) {
    std::thread::park_timeout(d)
}

#[cfg(loom)]
pub(crate) use loom_park::{current as current_unparker, park, Thread as Unparker};

/// loom has no clock: a timed park parks until unparked (see `loom_models`, "Time").
#[cfg(loom)]
pub(crate) fn park_timeout(_d: core::time::Duration) {
    park()
}

/// std's park/unpark token, built from a loom mutex and condition variable. loom's own
/// `Thread::unpark` wakes its target whatever the target is blocked on — a mutex, a join —
/// not only `park` (loom issue #249), so an unpark that std would leave as a token for the
/// next `park` aborts a model with "expected to be able to acquire lock" when it reaches a
/// thread blocked on a mutex. The engine unparks after publishing the wakeup, and the woken
/// thread may see it and go on into a mutex before the unpark lands, which is legal with
/// std; this token keeps it legal in models.
#[cfg(loom)]
mod loom_park {
    use loom::sync::{Arc, Condvar, Mutex};

    struct Token {
        set: Mutex<bool>,
        cv: Condvar,
    }

    /// A thread's handle, for unparking it.
    #[derive(Clone)]
    pub(crate) struct Thread(Arc<Token>);

    loom::thread_local! {
        static CURRENT: Thread = Thread(Arc::new(Token {
            set: Mutex::new(false),
            cv: Condvar::new(),
        }));
    }

    /// The calling thread's handle.
    pub(crate) fn current() -> Thread {
        CURRENT.with(|t| t.clone())
    }

    impl Thread {
        /// Make the token available and wake the thread if it is parked.
        pub(crate) fn unpark(&self) {
            *self.0.set.lock().unwrap() = true;
            self.0.cv.notify_one();
        }
    }

    /// Block until the token is available, then consume it.
    pub(crate) fn park() {
        let me = current();
        let mut set = me.0.set.lock().unwrap();
        while !*set {
            set = me.0.cv.wait(set).unwrap();
        }
        *set = false;
    }
}

#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) type Unparker = Arc<dyn super::Unpark>;

#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) fn current_unparker() -> Unparker {
    super::platform().current_task().0.unpark.clone()
}

#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) fn park() {
    super::platform().park()
}

// ----- per-task state -----

/// The engine's state of one task.
pub(crate) struct TaskState {
    /// The task's token for blocking waits, reused by each.
    parker: Arc<Parker>,
    /// The task's interrupt (see `crate::signal`).
    pub(crate) interrupt: Arc<InterruptState>,
    /// Unparks deferred while the task is inside the engine (no `std` only: with `std` they
    /// are a thread-local of their own, see `deferred`).
    #[cfg(all(not(feature = "std"), not(loom)))]
    deferred: SpinLock<Deferred>,
}

impl TaskState {
    pub(crate) fn new(unparker: Unparker) -> TaskState {
        TaskState {
            parker: Arc::new(Parker {
                state: AtomicU32::new(PARKED),
                unparker,
            }),
            interrupt: Arc::new(InterruptState::default()),
            #[cfg(all(not(feature = "std"), not(loom)))]
            deferred: SpinLock::new(Deferred::new()),
        }
    }
}

// A thread's state is made at its first use of the engine: a thread that starts after a
// platform was registered is unparked through that platform's `Task` (a simulated task's
// wakeups go through its scheduler), one that started before stays a plain thread.
#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    static TASK: TaskState = TaskState::new(current_unparker());
}
// loom runs a model's threads as coroutines on one OS thread, and reruns the model many
// times: a std thread-local would be shared by all of them and outlive the execution that
// created its loom objects. loom's thread-local is per model thread and per execution.
#[cfg(loom)]
loom::thread_local! {
    static TASK: TaskState = TaskState::new(current_unparker());
}

/// Run `f` on the calling task's state.
#[cfg(any(feature = "std", loom))]
pub(crate) fn with_task<R>(f: impl FnOnce(&TaskState) -> R) -> R {
    TASK.with(f)
}

#[cfg(all(not(feature = "std"), not(loom)))]
pub(crate) fn with_task<R>(f: impl FnOnce(&TaskState) -> R) -> R {
    f(super::platform().current_task().state())
}

/// A number that identifies the calling task while it exists.
pub(crate) fn task_id() -> usize {
    with_task(|t| Arc::as_ptr(&t.parker) as usize)
}

/// The interrupt state of one task: whether an interrupt is pending, and the parker of the
/// interruptible sleep it is in, if any.
#[derive(Default)]
pub(crate) struct InterruptState {
    pub(crate) pending: AtomicBool,
    pub(crate) sleeper: SpinLock<Option<Arc<Parker>>>,
}

// ----- deferred unparks -----

/// How many [`deferred::Unparks`] guards a task has open, and whether it deferred an unpark
/// since its outermost guard last closed. No destructor: with `std` it is a thread-local
/// of its own that needs no registration check, so opening and closing a guard — three or
/// four times per token on the engine's hottest path (the `read`/`write` call, each queue
/// wake under it, the harvest's end) — is a counter's increment and decrement, and the
/// outermost close reads one flag; the list of tasks is touched only when there are some.
pub(crate) struct Guards {
    depth: core::cell::Cell<usize>,
    pending: core::cell::Cell<bool>,
}

impl Guards {
    const fn new() -> Guards {
        Guards {
            depth: core::cell::Cell::new(0),
            pending: core::cell::Cell::new(false),
        }
    }
}

/// Unparks deferred by one task: its [`Guards`] and the tasks to unpark (with `std` they
/// are two thread-locals instead).
#[cfg(any(not(feature = "std"), loom))]
pub(crate) struct Deferred {
    guards: Guards,
    tasks: core::cell::RefCell<Vec<Unparker>>,
}

#[cfg(any(not(feature = "std"), loom))]
impl Deferred {
    pub(crate) const fn new() -> Deferred {
        Deferred {
            guards: Guards::new(),
            tasks: core::cell::RefCell::new(Vec::new()),
        }
    }
}

/// Deferred unparking. A waker marks a parked task woken at once (under whatever locks it
/// holds), but calls `unpark` only when the outermost [`deferred::Unparks`] guard of the
/// waking task drops — after those locks are released — so the woken task does not wake
/// straight into a lock its waker still holds (a lock convoy: observed as extra futex calls
/// per wakeup). The woken state is set first, so a task that has not parked yet never
/// sleeps; one that has is unparked when the guard drops, also on unwinding.
pub(crate) mod deferred {
    #[cfg(loom)]
    use super::Deferred;
    use super::{Guards, Unparker};
    #[allow(unused_imports)]
    use crate::prelude::*;
    use core::cell::RefCell;

    #[cfg(all(feature = "std", not(loom)))]
    std::thread_local! {
        static GUARDS: Guards = const { Guards::new() };
        static TASKS: RefCell<Vec<Unparker>> = const { RefCell::new(Vec::new()) };
    }
    #[cfg(loom)]
    loom::thread_local! {
        static PENDING: Deferred = Deferred::new();
    }

    #[cfg(all(feature = "std", not(loom)))]
    #[inline]
    fn with_guards<R>(f: impl FnOnce(&Guards) -> R) -> R {
        GUARDS.with(f)
    }
    #[cfg(all(feature = "std", not(loom)))]
    fn with_tasks<R>(f: impl FnOnce(&RefCell<Vec<Unparker>>) -> R) -> R {
        TASKS.with(f)
    }

    #[cfg(loom)]
    fn with_guards<R>(f: impl FnOnce(&Guards) -> R) -> R {
        PENDING.with(|p| f(&p.guards))
    }
    #[cfg(loom)]
    fn with_tasks<R>(f: impl FnOnce(&RefCell<Vec<Unparker>>) -> R) -> R {
        PENDING.with(|p| f(&p.tasks))
    }

    #[cfg(all(not(feature = "std"), not(loom)))]
    fn with_guards<R>(f: impl FnOnce(&Guards) -> R) -> R {
        super::with_task(|t| f(&super::lock(&t.deferred).guards))
    }
    #[cfg(all(not(feature = "std"), not(loom)))]
    fn with_tasks<R>(f: impl FnOnce(&RefCell<Vec<Unparker>>) -> R) -> R {
        super::with_task(|t| f(&super::lock(&t.deferred).tasks))
    }

    /// While one of these is alive on a task, its unparks are deferred.
    pub(crate) struct Unparks(());

    impl Unparks {
        #[inline]
        pub(crate) fn begin() -> Unparks {
            with_guards(|g| g.depth.set(g.depth.get() + 1));
            Unparks(())
        }
    }

    impl Drop for Unparks {
        #[inline]
        fn drop(&mut self) {
            let send = with_guards(|g| {
                let depth = g.depth.get() - 1;
                g.depth.set(depth);
                depth == 0 && g.pending.replace(false)
            });
            if send {
                send_all();
            }
        }
    }

    /// Take the deferred tasks (the caller cleared `pending`).
    fn take() -> Vec<Unparker> {
        with_tasks(|t| core::mem::take(&mut *t.borrow_mut()))
    }

    /// The outermost guard closed with unparks deferred: send them, and give the (then
    /// empty) allocation back for the next wakeup.
    #[cold]
    #[inline(never)]
    fn send_all() {
        let mut tasks = take();
        for t in tasks.drain(..) {
            t.unpark();
        }
        with_tasks(|t| {
            let mut kept = t.borrow_mut();
            if kept.capacity() == 0 {
                *kept = tasks;
            }
        });
    }

    /// Unpark now every task this task's guards deferred (the guards stay): a task about
    /// to sleep must not keep the wakeups it made waiting behind its own sleep.
    pub(crate) fn flush() {
        if with_guards(|g| g.pending.replace(false)) {
            for t in take() {
                t.unpark();
            }
        }
    }

    /// Unpark `task` now, or when the outermost guard drops.
    pub(crate) fn unpark(task: &Unparker) {
        let deferred = with_guards(|g| {
            if g.depth.get() > 0 {
                g.pending.set(true);
                true
            } else {
                false
            }
        });
        if deferred {
            with_tasks(|t| t.borrow_mut().push(task.clone()));
        } else {
            task.unpark();
        }
    }
}

// ----- the parker -----

/// Why a blocked task stopped sleeping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WakeReason {
    Woken,
    TimedOut,
    Interrupted,
}

const PARKED: u32 = 0;
const WOKEN: u32 = 1;
const INTERRUPTED: u32 = 2;

/// A blocked task's token: the waker flips `state` and unparks the task.
pub(crate) struct Parker {
    state: AtomicU32,
    unparker: Unparker,
}

impl Parker {
    /// The calling task's parker, armed for a new wait. A task waits on one thing at a
    /// time, and each wait takes its parker off every queue (and out of its interrupt's
    /// sleeper slot) before it returns, so no waker still holds it when it is re-armed.
    pub(crate) fn for_current_task() -> Arc<Parker> {
        with_task(|t| {
            t.parker.state.store(PARKED, Ordering::Release);
            t.parker.clone()
        })
    }

    /// Whether the task is still waiting for a wakeup (not woken, not interrupted, not
    /// timed out): a waker's transition is immediate, like a kernel task's `TASK_RUNNING`.
    pub(crate) fn is_parked(&self) -> bool {
        self.state.load(Ordering::Acquire) == PARKED
    }

    /// Wake the task; false if it was already woken or interrupted.
    pub(crate) fn notify(&self) -> bool {
        self.transition(WOKEN)
    }

    /// Re-arm after a wakeup, before re-checking the condition the task sleeps on.
    pub(crate) fn reset(&self) {
        let _ = self
            .state
            .compare_exchange(WOKEN, PARKED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Interrupt the task (the analogue of a signal).
    pub(crate) fn interrupt(&self) -> bool {
        self.transition(INTERRUPTED)
    }

    fn transition(&self, to: u32) -> bool {
        let ok = self
            .state
            .compare_exchange(PARKED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ok {
            deferred::unpark(&self.unparker);
        }
        ok
    }

    /// Sleep until woken, interrupted, or `deadline` passes on its clock. (No spinning
    /// first: measured here, spinning before parking costs ~20 µs per wakeup when waker
    /// and sleeper share a CPU, and gains nothing measurable otherwise.)
    pub(crate) fn sleep(&self, deadline: Option<Deadline<'_>>) -> WakeReason {
        // Wakeups this task made inside a call that now blocks go out before it sleeps.
        deferred::flush();
        loop {
            match self.state.load(Ordering::Acquire) {
                WOKEN => return WakeReason::Woken,
                INTERRUPTED => return WakeReason::Interrupted,
                _ => {}
            }
            match deadline {
                None => park(),
                Some(d) => {
                    if d.reached() {
                        // Claim the timeout; lose to a concurrent waker if it came first.
                        if self
                            .state
                            .compare_exchange(PARKED, WOKEN, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            return WakeReason::TimedOut;
                        }
                        continue;
                    }
                    d.clock().park_until(d.instant());
                }
            }
        }
    }
}

/// Used by [`Clock::park_until`](super::Clock::park_until)'s default: schedule an unpark
/// of the calling task at `deadline` on `clock`, park, and cancel the unpark if it has not
/// run. One timer entry per timed sleep; the task may return before the deadline (woken,
/// or spuriously), and its caller re-checks.
pub(crate) fn park_until_by_timer<C: super::Clock + ?Sized>(
    clock: &C,
    deadline: core::time::Duration,
) {
    let me = current_unparker();
    let id = clock.schedule(deadline, Box::new(move || me.unpark()));
    park();
    clock.cancel(id);
}
