//! # eventpoll-conform — the conformance runner
//!
//! Runs `.ep` scenarios (small scripts of epoll and file operations) against several
//! *backends* — the Linux kernel (the oracle), the eventpoll engine, later the C ABI — and
//! compares their transcripts line by line. A scenario passes when every backend prints the
//! kernel's transcript. The `eventpoll conform` command is [`run`] with [`ConformArgs`].
//!
//! - [`script`]: the `.ep` language (parser, command text, event names);
//! - [`backend`]: the [`backend::Backend`] trait and the `kernel` and `engine` backends;
//! - [`exec`]: running a script on a backend, panics caught;
//! - [`compare`]: running on every backend and diffing against the kernel;
//! - [`random`]: random scenarios, differential runs and shrinking.
//!
//! ```
//! use eventpoll_conform::{script, exec, backend};
//! let s = script::parse("x.ep", "epoll e\neventfd c 1\nctl e add c in 5\nwait e 8 0\n").unwrap();
//! let t = exec::run_script(&s, backend::by_name("kernel").unwrap());
//! assert_eq!(t.lines[3], "wait e 8 0 => 1 [5 in]");
//! ```
//!
//! # The scenario format
//!
//! This is a copy of the public format page (`spec/scenario-format.md`), with the additions
//! this runner makes marked *(addition)*; all additions are backward compatible.
//!
//! ## Syntax
//!
//! - One command per line. `#` starts a comment. Blank lines are ignored.
//! - A line `# name: TEXT` before the first command names the scenario (default: the file
//!   name).
//! - NAMEs are `[a-z][a-z0-9_]*` and refer to descriptors created by the script. A closed
//!   NAME still refers to its old number (so `ctl` on it gives `EBADF`, unless a later command
//!   reused the number). `fd:N` is a raw descriptor number (`fd:-1`, `fd:4000`). A NAME must be
//!   bound (by `epoll`, `pipe`, `eventfd`, `socketpair`, `timerfd`, `file`, `null`, `open`,
//!   `dup`, or the socket additions `listen`, `connect`, `accept`, `tcp-listen`,
//!   `tcp-connect`, `udp`) on an earlier line; binding it again rebinds it. A NAME whose
//!   creating call failed refers to `-1`. FIFO names (bound by `mkfifo`) are a namespace of
//!   their own: they name paths, not descriptors.
//! - Descriptor numbers are allocated lowest-free inside a range private to the scenario, the
//!   same way in every backend (kernel: scenario number `n` is descriptor 1000 + `n`, `fd:N`
//!   likewise for `N >= 0`, negative `N` unchanged; engine: `n`). Numbers never appear in
//!   transcripts; names do.
//! - EVENTS are `|`-joined lower-case names without the `EPOLL` prefix: `in pri out err hup
//!   rdnorm rdband wrnorm wrband msg rdhup exclusive wakeup oneshot et`, or numbers (`0`,
//!   `0x2011`), or both mixed (`in|0x100`).
//! - Numbers are decimal or `0x` hexadecimal, with `-` where the argument is signed.
//!   `write`/`read` counts are at most 16 MiB.
//!
//! ## Commands
//!
//! | command | meaning | result |
//! |---|---|---|
//! | `epoll E [size=N] [flags=N]` | `epoll_create(N)` when `size` is given, else `epoll_create1(flags)` (default 0); not both | `ok` |
//! | `pipe R W` | `pipe2(O_NONBLOCK)` | `ok` |
//! | `setpipesz R N` *(addition)* | `fcntl(R, F_SETPIPE_SZ, N)` | the new capacity |
//! | `eventfd N INIT [semaphore]` | `eventfd(INIT, EFD_NONBLOCK[\|EFD_SEMAPHORE])` | `ok` |
//! | `socketpair A B stream\|dgram\|seqpacket` | `socketpair(AF_UNIX, TYPE\|SOCK_NONBLOCK, 0)` | `ok` |
//! | `timerfd T` | `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)` | `ok` |
//! | `settime T expired\|disarm` | arm with an absolute expiry already in the past (1 ns after the clock's epoch; the kernel backend then waits, at most 1 s, until the timer has fired), or disarm | `ok` |
//! | `settime T every MS` *(addition)* | a periodic timer: first expiry MS after the call (relative), then every MS (1 to 2,147,483,647) | `ok` |
//! | `settime T expired every MS` *(addition)* | a periodic timer that fires at once (relative value 1 ns; every backend waits, at most 1 s, until it has fired), then every MS | `ok` |
//! | `timer-read T` *(addition)* | 8-byte read of a timerfd, the count normalised (see below) | `>=1` |
//! | `file F` | a regular file (kernel: a memfd) | `ok` |
//! | `null N` *(addition)* | `open("/dev/null", O_RDWR\|O_NONBLOCK)` | `ok` |
//! | `mkfifo P` *(addition)* | `mkfifo(2)` at a fresh path of the run's own (kernel and C ABI: a temporary directory per run, removed at its end; engine: a FIFO registry); P is a FIFO name; P again is `EEXIST` | `ok` |
//! | `open X P rdonly\|wronly\|rdwr` *(addition)* | `open(P's path, O_RDONLY\|O_WRONLY\|O_RDWR \| O_NONBLOCK)` (`wronly` without a reader: `ENXIO`) | `ok` |
//! | `ctl E add\|mod\|del\|op=N TARGET [EVENTS DATA \| null]` | `epoll_ctl`; `null` passes a NULL event; `add`/`mod` need one of the two, `del` and `op=N` without either pass NULL | `ok` |
//! | `wait E MAX TIMEOUT [buf=null\|buf=N]` | `epoll_wait(E, buf, MAX, TIMEOUT ms)`; `buf=null` *(addition)* passes a NULL events pointer, `buf=N` *(addition)* a buffer whose first N entries (0 to 1,024) are writable and the next one is in an unmapped page | `N [DATA BITS, ...]` |
//! | `pwait E MAX TIMEOUT [sigsetsize=N] [buf=null\|buf=N]` *(addition)* | `epoll_pwait` with an empty signal mask of size N (default 8) | as `wait` |
//! | `pwait2 E MAX SEC NSEC\|null [buf=null\|buf=N]` | `epoll_pwait2` with that timespec (`null`: NULL, no limit) | as `wait` |
//! | `poll X [MS]` | `poll()` on X asking for every bit, timeout 0, or MS *(addition; negative: none; run like `bg` + `join`, bounded at 5 s)* | revents bits, `0`, `nval` |
//! | `write W N` | write N bytes | the count |
//! | `read R N` | read up to N bytes | the count |
//! | `efd-write N VALUE` | 8-byte write of VALUE (u64) | `ok` |
//! | `efd-read N` | 8-byte read | the value |
//! | `shutdown S rd\|wr\|rdwr` | `shutdown(2)` | `ok` |
//! | `close X` | `close(2)` | `ok` |
//! | `dup X NEW` | `dup(2)`, lowest free number; NEW names it | `ok` |
//! | `dup2 X Y` | `dup2(2)` onto Y's number (Y may be `fd:N`) | `ok` |
//!
//! | `bg T CALL` *(addition)* | start CALL on background thread T: `wait`/`pwait`/`pwait2` (foreground syntax), `poll X MS` (every bit, timeout MS, negative: none) or `select X MS` (X in all three sets) | `started` |
//! | `sleeping T` *(addition)* | wait until T is asleep inside its call, or its call returned (bounded: 3 s) | `asleep`, `returned`, `running` |
//! | `settle` *(addition)* | wait until every running background thread is asleep in its call or has returned, all at the same time (two passes that agree) | `T1 asleep, T2 returned`, … (by name), `none` |
//! | `signal T` *(addition)* | interrupt T's call: a signal whose handler does nothing, without `SA_RESTART` (engine: `Interrupt::raise`) | `ok` |
//! | `join T` *(addition)* | wait for T's call to return (bounded: 5 s) | the call's result (`wait`: as `wait`; `poll`: revents; `select`: `N [read, write, except]`), or `hung (…)` |
//! | `sleep MS` *(addition)* | the main thread sleeps MS milliseconds | `ok` |
//! | `listen L stream\|seqpacket [backlog=N]` *(addition)* | a non-blocking unix socket bound to a fresh abstract address, `listen(N)` (default 8); L also names the address | `ok` |
//! | `connect C L` *(addition)* | a new non-blocking unix socket of L's type connected to L's address (L: a `listen` name) | `ok`, `EAGAIN` (backlog full), `ECONNREFUSED` (closed, shut down for reading) |
//! | `accept A L` *(addition)* | `accept4(L, NULL, NULL, SOCK_NONBLOCK)` (unix or TCP) | `ok`, `EAGAIN` |
//! | `tcp-listen L [backlog=N]` *(addition, inet)* | a non-blocking TCP socket bound to 127.0.0.1 port 0, listening | `ok` |
//! | `tcp-connect C L` *(addition, inet)* | a new non-blocking TCP socket connected to L's address; returns once the connection is established or failed (bounded: 1 s) | `EINPROGRESS` |
//! | `udp U` *(addition, inet)* | a non-blocking UDP socket bound to 127.0.0.1 port 0 | `ok` |
//! | `udp-connect U V` *(addition, inet)* | `connect(U, V's address)` (V: a `udp` name) | `ok` |
//!
//! ## Sockets *(addition)*
//!
//! Beyond `socketpair`, a scenario can make unix listeners and connect to and accept from
//! them (every backend: the engine models them, see `eventpoll::objects::listener`), and
//! TCP and UDP sockets on loopback (*inet* commands, marked above). A `listen`,
//! `tcp-listen` or `udp` name names the socket and its address; `connect`, `tcp-connect` and
//! `udp-connect` take such a name (a parse error otherwise) and connect to the address even
//! after the socket was closed (refused, as on Linux); if the call that made the address
//! failed, connecting to it is `ECONNREFUSED` in every backend. Reads, writes, `poll`,
//! `ctl`, `shutdown` and `close` work on these sockets as on any descriptor.
//!
//! **The engine has no inet sockets** (nor has the `sim` backend, which runs the engine).
//! A scenario with an inet command is detected as such (`Script::needs_inet`) and not run on
//! the engine or sim: it is compared between the kernel and
//! the C ABI (`EVENTPOLL_CONFORM_CAPI=1`); without the C ABI it runs on the kernel alone and
//! the runner prints `not compared NAME (kernel only: engine, sim have no TCP or UDP sockets)` and
//! counts it apart from the passed ones — never a silent skip. Run on the engine with
//! `--backend engine`, an inet command is a `panic:` line that says so.
//!
//! Loopback traffic is delivered by the network stack's receive path, normally before the
//! sending call returns but possibly later under load; so that transcripts stay a function
//! of the script, the real-descriptor backends wait (bounded: 1 s) after `tcp-connect` until
//! the client is connected (or failed) and the listener has queued it, after a TCP or UDP
//! write until it has left (`SIOCOUTQ` 0), and after `close` or `shutdown wr|rdwr` of a TCP
//! socket until the peers they hold see it (`RDHUP`, `HUP` or `ERR`). Keep TCP
//! connections within the listener's backlog (a SYN to a full queue is dropped and
//! retransmitted a second later) and writes small (nothing near a buffer or window limit).
//!
//! | `epolls P N` *(addition)* | N instances (`epoll_create1(0)`), named `P0` to `P(N-1)` | run-length results: `N ok` (`1899 ok, 1 EMFILE`) |
//! | `eventfds P N [INIT]` *(addition)* | N eventfds with counter INIT (default 0), named `P0` .. | as `epolls` |
//! | `pipes R W N` *(addition)* | N pipes, read ends `R0` .., write ends `W0` .. | as `epolls` |
//! | `fork P`, `@P CMD`, `exit P` *(addition)* | fork; run CMD in child P; end child P (see Processes) | `ok`; CMD's result |
//! | `ctl-all E add\|mod\|del T [EVENTS DATA]` *(addition)* | one `epoll_ctl` per name of a bulk reference `P*N` (the names `P0` to `P(N-1)`) given as E, as T, or as both (pairwise, same N); the i-th call's data is `DATA + i`; `del` takes no EVENTS DATA | run-length results in call order: `500 ok, 1 EINVAL` |
//! | `efd-write-all P*N VALUE` *(addition)* | `efd-write` on each name | as `ctl-all` |
//!
//! A failure prints the errno name instead (`EBADF`). The wait buffer has `min(MAX, 1024)`
//! entries (at least one, so `MAX <= 0` reaches the `EINVAL` check), and never fewer than the
//! number of interest items that could be reported. Every backend runs with `SIGPIPE`
//! ignored.
//!
//! ## Threads *(addition)*
//!
//! `bg T CALL` runs one blocking call on a thread of its own while the script goes on; thread
//! names are a namespace of their own (`[a-z][a-z0-9_]*`), bound by `bg` and free again after
//! `join`. On the kernel and C ABI backends a name is also an OS thread: a `bg T` whose last
//! call has returned runs on that call's thread ([`backend::threads::OsThreads`]), so that one
//! thread can wait many times, as an event loop's does (the kernel does not tell threads
//! apart; the C ABI does: its io_uring driver takes over polls another thread armed after a
//! few sleeps of one thread). Transcripts stay deterministic because a background call's result is printed only
//! at `join T`, in script order. The usual shape: start the waiter, `sleeping T` (so the
//! race starts only once the waiter really sleeps: kernel and C ABI threads are watched in
//! `/proc/self/task/TID` — state `S` inside a system call, three times 5 ms apart; engine
//! threads through their `Interrupt`), then act (write, `ctl`, `close`, `signal`, start
//! more waiters), then `join T`. Real timeouts work as they do in the foreground (`wait e 8
//! 100` sleeps 100 ms); a waiter with no timeout that is never woken prints `hung`, is
//! interrupted, and the scenario fails instead of hanging. Threads still running at the end
//! of a script are interrupted and joined, in name order.
//!
//! On the `sim` backend (the engine on the deterministic platform, [`backend::sim`]) a
//! background call is a simulated task: `sleeping T` runs the simulation until T is parked
//! in its call or has returned, `settle` until no other task can run, `join T` until T
//! returns or the simulated clock has moved on by the join bound, and `sleep MS` moves that
//! clock — timeouts are simulated time, and the same seed gives the same run.
//!
//! ## Processes *(addition)*
//!
//! `fork P` forks the scenario's process; `@P CMD` runs the foreground command CMD in child
//! P (not a thread, process or bulk-creation command); `exit P` ends the child (its
//! descriptors close, as at a process's exit) and waits for it; results `ok`. Process names
//! are a namespace of their own; a child still running at the end of the script exits then.
//! The child starts with the parent's names and descriptors (the same open files and
//! instances); names it binds (`@p epoll f`) exist in its own table only, and numbers are
//! allocated lowest-free in each process's table. On the kernel and the C ABI the child is
//! a real process (`fork(2)`; the C ABI's own `pthread_atfork` hand-over runs) with a copy
//! of the runner, which runs the `@P` commands it is sent over a pipe, one at a time,
//! while the parent waits for each answer (at most 5 s: then `child hung or gone`); the
//! engine's child is [`eventpoll::FdTable::fork`] of the scenario's table, run in the same
//! thread. Parent and child never run at once, so the transcript is a function of the
//! script. No C ABI scenario runs while a backend forks (the library's fork hand-over
//! would change it).
//!
//! ```text
//! # name: an item outlives the parent's close while the child keeps the file (a ghost)
//! epoll e
//! eventfd c 0
//! ctl e add c in 7
//! fork p
//! close c
//! @p efd-write c 1
//! wait e 8 0        # => 1 [7 in]
//! exit p            # the last reference goes: the item with it
//! wait e 8 0        # => 0 []
//! ```
//!
//! ```text
//! # name: an LT event wakes every waiter blocked on the instance
//! epoll e
//! eventfd c 0
//! ctl e add c in 1
//! bg a wait e 8 -1
//! bg b wait e 8 -1
//! sleeping a
//! sleeping b
//! efd-write c 1
//! join a            # => 1 [1 in]
//! join b            # => 1 [1 in]
//! ```
//!
//! ## Bulk objects *(addition)*
//!
//! `epolls`, `eventfds` and `pipes` make many objects in one line, so that scenarios reach
//! more than 1,024 ready items, wide fans at the wakeup-path limits and long chains of
//! instances; `ctl-all` and `efd-write-all` act on all of them. Bulk commands of one
//! scenario create at most 1,900 descriptors together (`script::MAX_BULK_DESCRIPTORS`: the
//! kernel backend's range starts at descriptor 1000 and the C ABI's at 3000). Their results
//! are run-length encoded in call order (`ctl-all e add c*40 in 1 => 20 EEXIST, 20 ok`), and
//! a wait that reports more than 32 events prints each run of three or more consecutive
//! events with the same bits and data counting up by one as `FIRST..LAST BITS`:
//!
//! ```text
//! eventfds c 1100 1
//! epoll e
//! ctl-all e add c*1100 in 1          # => 1100 ok (data 1 to 1100)
//! wait e 500 0                       # => 500 [1..500 in]
//! wait e 2000 0                      # => 1100 [501..1100 in, 1..500 in]
//! ```
//!
//! ## FIFOs, `/dev/null` and periodic timers *(addition)*
//!
//! `mkfifo P` makes a FIFO; `open X P MODE` opens it, always non-blocking, so nothing waits
//! for a partner: a reader opens alone (and reports no `HUP` until a writer has come and
//! gone), a writer without a reader gets `ENXIO`, `rdwr` counts as both. `null N` is
//! `/dev/null`: not pollable (`epoll_ctl` `EPERM`, `poll` the default mask), reads return 0,
//! writes the count.
//!
//! A periodic timer's expiries come at times no script controls, so transcripts stay a
//! function of the script only where its state is still. Linux helps: an unread periodic
//! timer fires once and then waits for a read (`timerfd_read` restarts the timer and
//! counts the periods that passed), so between a read (or an arming) and the next expiry
//! is the only window where timing shows. Scenarios therefore close that window at once
//! with a call that sleeps until the expiry — `poll T MS` (a timeout well above the
//! period), `wait E 8 -1` on an instance watching it, or a background waiter and its
//! `join` — and read such a timer with `timer-read T`, which prints `>=1` for any count
//! (`read T 8` prints the byte count, `efd-read T` the exact count: exact only for timers
//! whose period cannot pass during the scenario).
//!
//! ```text
//! # name: each period of a timer wakes a wait once per read
//! epoll e
//! timerfd t
//! ctl e add t in|et 1
//! settime t expired every 5
//! wait e 8 0          # => 1 [1 in]
//! sleep 30
//! wait e 8 0          # => 0 []   (unread: no second expiry)
//! timer-read t        # => >=1
//! wait e 8 -1         # => 1 [1 in]   (the next period)
//! ```
//!
//! ## Transcript
//!
//! One line per command: the command as written (comments stripped, one space between
//! words), ` => `, the result. `wait e 8 0 => 2 [7 in|rdnorm, 9 out|wrnorm]`; bits in
//! ascending order; `0 []` for no events (more than 32 events: runs compacted, see above). A backend that panics prints
//! `COMMAND => panic: MESSAGE` and stops.

pub mod backend;
pub mod compare;
pub mod exec;
pub mod random;
pub mod script;
pub mod watchdog;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `eventpoll conform` arguments.
#[derive(clap::Args, Debug)]
pub struct ConformArgs {
    /// Scenario files or directories (searched recursively for `.ep` files, in sorted order).
    pub paths: Vec<PathBuf>,
    /// Print this backend's transcript of each scenario instead of comparing backends
    /// (`kernel`, `engine`, `sim`: the engine on the deterministic platform, seeded by
    /// EVENTPOLL_SIM_SEED, or `capi`: libeventpoll.so, found through EVENTPOLL_LIB or next
    /// to this program). Comparisons run kernel, engine and sim, and capi too when
    /// EVENTPOLL_CONFORM_CAPI=1.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Time limit for one backend's run of one scenario, in seconds: a scenario still
    /// running then (a wait that never returns) is interrupted and reported as a failure.
    #[arg(long, value_name = "SECS", default_value_t = watchdog::DEFAULT_LIMIT.as_secs_f64())]
    pub timeout: f64,
    /// Generate N random scenarios, run them on every backend and compare; a mismatch is
    /// shrunk to a minimal script and printed.
    #[arg(long, value_name = "N")]
    pub random: Option<u64>,
    /// Seed for `--random` (the same seed generates the same scenarios).
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// With `--random`: generate threaded scenarios (background waits that block, wakers on
    /// the main thread, signals; see `random` in the crate docs).
    #[arg(long)]
    pub threaded: bool,
    /// With `--random`: start at scenario number K of the seed (scenarios K to K+N-1;
    /// `--random 1 --index K` reruns the one a failure report names).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub index: u64,
    /// With `--random`: generate TCP and UDP (loopback) commands too. On by default when
    /// EVENTPOLL_CONFORM_CAPI=1; such scenarios are compared between the kernel and the C
    /// ABI only (the engine has no inet sockets), and without the C ABI they are not run
    /// and are counted as not compared.
    #[arg(long)]
    pub inet: bool,
    /// Save each shrunk failing random scenario in DIR as `random-SEED-K.ep`.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}

impl Default for ConformArgs {
    fn default() -> Self {
        ConformArgs {
            paths: Vec::new(),
            backend: None,
            timeout: watchdog::DEFAULT_LIMIT.as_secs_f64(),
            random: None,
            seed: 1,
            threaded: false,
            index: 0,
            save: None,
            inet: false,
        }
    }
}

/// Every `.ep` file under `paths` (files given directly are taken whatever their name),
/// directories searched recursively, each directory's files in sorted order.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "ep") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: no such file or directory", p.display()),
            ));
        }
    }
    Ok(out)
}

/// Read and parse every scenario under `paths`; all errors as messages.
pub fn load(paths: &[PathBuf]) -> Result<Vec<script::Script>, Vec<String>> {
    let files = collect_files(paths).map_err(|e| vec![e.to_string()])?;
    let mut scripts = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(src) => match script::parse(&shown, &src) {
                Ok(s) => scripts.push(s),
                Err(e) => errors.push(e.to_string()),
            },
            Err(e) => errors.push(format!("{shown}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(scripts)
    } else {
        Err(errors)
    }
}

/// Whether files can be written in `dir` (or, if it does not exist yet, in the nearest
/// directory above it that does, where it would be created): checked before a long run
/// rather than after it. Nothing is left behind.
pub fn check_writable_dir(dir: &Path) -> Result<(), String> {
    let mut existing = dir;
    while !existing.as_os_str().is_empty() && !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    if !existing.is_dir() {
        return Err(format!("{}: not a directory", existing.display()));
    }
    let probe = existing.join(format!(".eventpoll-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("{}: cannot write there: {e}", existing.display())),
    }
}

/// Run `eventpoll conform`: exit status 0 when everything passed, 1 when a scenario failed,
/// 2 on usage or parse errors (and when no scenario was found).
pub fn run(args: ConformArgs) -> ExitCode {
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 86_400.0) {
        eprintln!("eventpoll conform: --timeout: seconds must be positive (at most 86400)");
        return ExitCode::from(2);
    }
    let limit = std::time::Duration::from_secs_f64(args.timeout);
    if let Some(n) = args.random {
        if args.backend.is_some() || !args.paths.is_empty() {
            eprintln!("eventpoll conform: --random takes no FILEs and no --backend");
            return ExitCode::from(2);
        }
        if let Some(p) = backend::comparison_problem() {
            eprintln!("eventpoll conform: {p}");
            return ExitCode::from(2);
        }
        if let Some(dir) = &args.save {
            if let Err(e) = check_writable_dir(dir) {
                eprintln!("eventpoll conform: --save: {e}");
                return ExitCode::from(2);
            }
        }
        if args.inet {
            random::set_inet_mode(Some(true));
        }
        let report = random::run_random_range(
            args.index..args.index.saturating_add(n),
            args.seed,
            args.threaded,
            args.save.as_deref(),
            true,
        );
        return match report {
            Ok(r) if r.failed == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("eventpoll conform: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.paths.is_empty() {
        eprintln!("eventpoll conform: give scenario files or directories (or --random N)");
        return ExitCode::from(2);
    }
    let scripts = match load(&args.paths) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    if scripts.is_empty() {
        let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "eventpoll conform: no scenarios found in {} (scenarios are .ep files; directories \
             are searched recursively)",
            shown.join(", ")
        );
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(name) = &args.backend {
        let Some(kind) = backend::by_name(name) else {
            let names: Vec<&str> = backend::ALL.iter().map(|b| b.name).collect();
            eprintln!(
                "eventpoll conform: unknown backend `{name}` (known: {})",
                names.join(", ")
            );
            return ExitCode::from(2);
        };
        if kind.name == "capi" {
            if let Some(p) = backend::capi::problem() {
                eprintln!("eventpoll conform: {p}");
                return ExitCode::from(2);
            }
        }
        let mut panicked = false;
        for (i, s) in scripts.iter().enumerate() {
            if scripts.len() > 1 {
                let sep = if i > 0 { "\n" } else { "" };
                let _ = writeln!(out, "{sep}# {}", s.path);
            }
            let t = watchdog::run_within(s, kind, limit);
            panicked |= t.panic.is_some() || t.timeout.is_some();
            let _ = out.write_all(t.text().as_bytes());
            if t.timeout.is_some_and(|x| x.abandoned) {
                eprintln!("eventpoll conform: the {name} backend could not be stopped; giving up");
                return ExitCode::from(1);
            }
        }
        return if panicked {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    if let Some(p) = backend::comparison_problem() {
        eprintln!("eventpoll conform: {p}");
        return ExitCode::from(2);
    }
    let names = backend::compared_names();
    if !names.contains(&"capi") {
        eprintln!(
            "eventpoll conform: comparing {} with the kernel; the C ABI backend (capi) is \
             compared too with EVENTPOLL_CONFORM_CAPI=1 (it needs libeventpoll.so)",
            names[1..].join(", ")
        );
    }
    let (mut passed, mut failed, mut uncompared, mut partial) = (0, 0, 0, 0);
    for s in &scripts {
        let outcome = compare::compare_within(s, backend::ALL, limit);
        let note = outcome.skip_note();
        if outcome.uncompared()
            && outcome.oracle.1.panic.is_none()
            && outcome.oracle.1.timeout.is_none()
        {
            // Honest: nothing was compared (TCP/UDP without the C ABI backend).
            uncompared += 1;
            let _ = writeln!(
                out,
                "not compared {} ({})",
                s.name,
                note.as_deref().unwrap_or("no other backend")
            );
        } else if outcome.passed() {
            passed += 1;
            match note {
                Some(n) => {
                    partial += 1;
                    let _ = writeln!(out, "pass {} ({n})", s.name);
                }
                None => {
                    let _ = writeln!(out, "pass {}", s.name);
                }
            }
        } else {
            failed += 1;
            let _ = writeln!(out, "FAIL {}", s.name);
            let _ = out.write_all(outcome.diffs().as_bytes());
            if let Some(name) = outcome.abandoned() {
                let _ = writeln!(out, "{passed} passed, {failed} failed (stopped early)");
                eprintln!(
                    "eventpoll conform: the {name} backend could not be stopped after the time \
                     limit; giving up"
                );
                return ExitCode::from(1);
            }
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if partial > 0 {
        let _ = writeln!(
            out,
            "{partial} of the passed scenarios use TCP or UDP: compared without the engine and \
             sim backends, which have no inet sockets"
        );
    }
    if uncompared > 0 {
        let _ = writeln!(
            out,
            "{uncompared} scenario(s) use TCP or UDP and were run on the kernel only, not \
             compared: the engine and sim backends have no inet sockets; set \
             EVENTPOLL_CONFORM_CAPI=1 to compare them with the C ABI"
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
