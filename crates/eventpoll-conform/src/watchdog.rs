//! The per-scenario time limit. A scenario that never ends (`wait e 8 -1` on an empty
//! instance, a backend that deadlocks) must not hang the runner: every backend run of a
//! scenario happens on a worker thread, and the caller waits for its transcript at most
//! the limit. When the limit passes, the worker is told to stop after the command it is in,
//! and that command is interrupted the two ways a blocked call can be: a signal (`SIGURG`,
//! whose handler does nothing and is installed without `SA_RESTART`, so a blocked system
//! call returns `EINTR` — the kernel and `capi` backends) and the engine's own
//! [`eventpoll::Interrupt`] (the engine backend's waits). The transcript then ends with
//! `COMMAND => timeout: ...` and counts as a failure, whatever the other backends printed.
//!
//! Nothing here knows what a command does, so scenarios that block on purpose (threads,
//! blocking reads) are bounded the same way. A worker that cannot be interrupted within
//! [`GRACE`] is left behind (it may hold its backend's descriptor range); the transcript says
//! so ([`Timeout::abandoned`]) and the command-line runner stops there.
//!
//! Each calling thread has its own worker, kept between scenarios (a thread per scenario
//! would slow long random runs).

use crate::backend::BackendKind;
use crate::exec::{self, Transcript};
use crate::script::Script;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

/// The default limit for one backend's run of one scenario: scenarios take milliseconds;
/// the slowest command (`settime T expired` on the kernel) waits at most 1 s.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);

/// How long an interrupted worker has to finish before it is abandoned.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long making a backend may take. It is not part of the limit: a backend waits there
/// while another thread's scenario holds its descriptor range (tests run in parallel).
pub const CREATE_LIMIT: Duration = Duration::from_secs(120);

/// Why a transcript stopped early: the time limit passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// The limit that passed.
    pub limit: Duration,
    /// Index (in the script's lines) of the command that was running.
    pub line: usize,
    /// The worker did not stop even when interrupted, and was left running.
    pub abandoned: bool,
}

/// What a worker and its caller share about the current job.
#[derive(Default)]
pub(crate) struct Watch {
    /// Set by the caller when the limit has passed: stop before the next command.
    pub stop: AtomicBool,
    /// Index of the command being run.
    pub line: AtomicUsize,
}

struct Job {
    script: Script,
    kind: BackendKind,
}

/// What a worker reports: its backend exists; the transcript (and where it was stopped).
enum Report {
    Created,
    Done(Transcript, Option<usize>),
}

struct Worker {
    jobs: mpsc::Sender<Job>,
    results: mpsc::Receiver<Report>,
    watch: Arc<Watch>,
    interrupt: eventpoll::Interrupt,
    thread: libc::pthread_t,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

/// The signal that interrupts a blocked system call on the worker.
const SIGNAL: i32 = libc::SIGURG;

extern "C" fn on_signal(_: libc::c_int) {}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value to fill; the handler does nothing (it
        // is async-signal-safe), and without SA_RESTART a blocked call returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(SIGNAL, &sa, std::ptr::null_mut());
        }
    });
}

fn spawn() -> Option<Worker> {
    install_handler();
    let (jobs, job_rx) = mpsc::channel::<Job>();
    let (result_tx, results) = mpsc::channel();
    let (hello_tx, hello_rx) = mpsc::channel();
    let watch = Arc::new(Watch::default());
    let shared = Arc::clone(&watch);
    std::thread::Builder::new()
        .name("conform-scenario".into())
        .spawn(move || {
            let interrupt = eventpoll::Interrupt::current();
            // SAFETY: pthread_self has no preconditions.
            let me = unsafe { libc::pthread_self() };
            if hello_tx.send((interrupt.clone(), me)).is_err() {
                return;
            }
            for job in job_rx {
                shared.stop.store(false, Ordering::SeqCst);
                shared.line.store(0, Ordering::SeqCst);
                interrupt.clear();
                let mut created = || {
                    let _ = result_tx.send(Report::Created);
                };
                let (t, at) =
                    exec::run_watched(&job.script, &job.kind, Some(&shared), &mut created);
                if result_tx.send(Report::Done(t, at)).is_err() {
                    break;
                }
            }
        })
        .ok()?;
    let (interrupt, thread) = hello_rx.recv().ok()?;
    Some(Worker {
        jobs,
        results,
        watch,
        interrupt,
        thread,
    })
}

/// Run `script` on a fresh backend of `kind`, at most `limit` (see the module documentation).
pub fn run_within(script: &Script, kind: &BackendKind, limit: Duration) -> Transcript {
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = spawn();
        }
        let Some(w) = slot.as_ref() else {
            // No thread could be made: run here, unbounded.
            return exec::run_script(script, kind);
        };
        let job = Job {
            script: script.clone(),
            kind: *kind,
        };
        if w.jobs.send(job).is_err() {
            *slot = None;
            return exec::run_script(script, kind);
        }
        let mut deadline = Instant::now() + CREATE_LIMIT;
        let mut created = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.results.recv_timeout(left) {
                Ok(Report::Created) => {
                    created = true;
                    deadline = Instant::now() + limit;
                }
                Ok(Report::Done(t, _)) => return t,
                Err(_) => break,
            }
        }
        let limit = if created { limit } else { CREATE_LIMIT };
        // The limit passed: stop after this command, and interrupt it until it returns.
        w.watch.stop.store(true, Ordering::SeqCst);
        let give_up = Instant::now() + GRACE;
        let finished = loop {
            w.interrupt.raise();
            // SAFETY: the worker thread is alive (it owns the receiving end of `jobs`,
            // which we still hold open), so its pthread_t is valid; the handler is
            // installed.
            unsafe { libc::pthread_kill(w.thread, SIGNAL) };
            match w.results.recv_timeout(Duration::from_millis(20)) {
                Ok(Report::Done(t, at)) => break Some((t, at)),
                Ok(Report::Created) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= give_up => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        let line = w.watch.line.load(Ordering::SeqCst);
        match finished {
            // It ended by itself just as the limit passed.
            Some((t, None)) => t,
            Some((t, Some(at))) => timed_out(script, t.lines, at, limit, false),
            None => {
                // Leave it running; the next scenario gets a new worker.
                *slot = None;
                timed_out(script, Vec::new(), line, limit, true)
            }
        }
    })
}

fn timed_out(
    script: &Script,
    mut lines: Vec<String>,
    at: usize,
    limit: Duration,
    abandoned: bool,
) -> Transcript {
    let done_lines = script.lines.iter().take(at).map(|l| l.text.clone());
    if lines.len() < at {
        // The worker still holds its lines: the commands before `at` ran, results unknown.
        lines = done_lines
            .map(|t| format!("{t} => (not collected)"))
            .collect();
    }
    lines.truncate(at);
    let text = script.lines.get(at).map_or("", |l| l.text.as_str());
    let how = if abandoned {
        "; it could not be interrupted and was left running"
    } else {
        ""
    };
    lines.push(format!(
        "{text} => timeout: no result within {} s (the time limit, --timeout){how}",
        limit.as_secs_f64()
    ));
    Transcript {
        lines,
        panic: None,
        timeout: Some(Timeout {
            limit,
            line: at,
            abandoned,
        }),
    }
}
