//! The `.ep` scenario language: parsing a script into [`Command`]s, and the exact text each
//! command prints at the start of its transcript line (the command as written, whitespace
//! normalised).
//!
//! Parsing is strict and total: every problem (unknown command, bad name, bad number, missing
//! or extra argument, a name used before any command created it) is a [`ParseError`] that
//! names the file and the line; nothing here panics on any input.
//!
//! ```
//! use eventpoll_conform::script::{parse, Command};
//! let s = parse("demo.ep", "# name: demo\nepoll e\npipe r w   # comment\nctl e add r in|et 7\n").unwrap();
//! assert_eq!(s.name, "demo");
//! assert_eq!(s.lines[1].text, "pipe r w");
//! assert!(matches!(s.lines[2].command, Command::Ctl { .. }));
//! assert!(parse("bad.ep", "frobnicate x").unwrap_err().to_string().starts_with("bad.ep:1:"));
//! ```

use std::collections::HashSet;
use std::fmt;

/// The backlog of `listen` and `tcp-listen` without `backlog=N`.
pub const DEFAULT_BACKLOG: i32 = 8;

/// Largest byte count a `write`/`read` command may ask for (16 MiB): larger counts are
/// rejected at parse time instead of allocating without bound.
pub const MAX_IO_BYTES: usize = 1 << 24;

/// A reference to a descriptor: a name bound by an earlier command, or a raw number `fd:N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdRef {
    /// A NAME (`[a-z][a-z0-9_]*`).
    Name(String),
    /// A raw scenario descriptor number (`fd:N`).
    Raw(i32),
}

/// How `epoll E` creates its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// `epoll_create(size)`.
    Size(i32),
    /// `epoll_create1(flags)`.
    Flags(i32),
}

/// Unix socket types for `socketpair`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM`.
    Stream,
    /// `SOCK_DGRAM`.
    Dgram,
    /// `SOCK_SEQPACKET`.
    SeqPacket,
}

/// What `settime` does to a timerfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerSetting {
    /// Arm with an absolute expiry already in the past: the timer fires at once.
    Expired,
    /// Disarm.
    Disarm,
    /// `every MS` / `expired every MS` (addition): a periodic timer. With `at_once`, the
    /// first expiry comes at once (a relative value of 1 ns; the backend waits until it
    /// has fired, as for [`TimerSetting::Expired`]), else `interval_ms` after the call;
    /// then one every `interval_ms`.
    Every {
        /// The period in milliseconds (at least 1).
        interval_ms: u32,
        /// Whether the first expiry comes at once.
        at_once: bool,
    },
}

/// How `open X P MODE` opens a FIFO (always with `O_NONBLOCK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FifoMode {
    /// `rdonly`: `O_RDONLY`.
    Read,
    /// `wronly`: `O_WRONLY` (`ENXIO` while the FIFO has no reader).
    Write,
    /// `rdwr`: `O_RDWR` (counts as a reader and a writer).
    ReadWrite,
}

/// The timeout argument of the three wait calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    /// `epoll_wait(..., timeout_ms)`.
    Wait {
        /// Milliseconds; negative for no limit.
        timeout_ms: i32,
    },
    /// `epoll_pwait(..., timeout_ms, &empty_sigset, sigsetsize)` (format addition).
    Pwait {
        /// Milliseconds; negative for no limit.
        timeout_ms: i32,
        /// The signal-set size passed (Linux accepts only 8).
        sigsetsize: usize,
    },
    /// `epoll_pwait2(..., timeout)`; `None` is a NULL timespec.
    Pwait2 {
        /// `(tv_sec, tv_nsec)`, passed unchecked.
        timeout: Option<(i64, i64)>,
    },
}

/// One wait call: `wait`, `pwait` or `pwait2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitCall {
    /// The epoll descriptor.
    pub epfd: FdRef,
    /// `maxevents`, passed unchanged (may be zero or negative).
    pub maxevents: i32,
    /// Which call, with its timeout.
    pub kind: WaitKind,
    /// The events buffer (`buf=null`, `buf=N`: format additions).
    pub buffer: Buffer,
}

/// The events buffer a wait call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// Room for every event that could be reported (see `backend::wait_buffer_len`).
    Full,
    /// `buf=null`: a NULL pointer.
    Null,
    /// `buf=N`: N writable entries, then an unmapped page (partly valid memory).
    Slots(usize),
}

/// A bulk reference `P*N` (addition): the names `P0` to `P(N-1)` that a bulk command
/// (`eventfds`, `pipes`, `epolls`) bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bulk {
    /// The prefix (a NAME).
    pub prefix: String,
    /// How many names.
    pub count: u32,
}

impl Bulk {
    /// The `i`-th name: the prefix, then `i` in decimal.
    pub fn name(&self, i: u32) -> String {
        format!("{}{i}", self.prefix)
    }

    /// Every name, in order.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.count).map(|i| self.name(i))
    }
}

/// One side of `ctl-all`: one descriptor, or a bulk reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Many {
    /// The same descriptor every time.
    One(FdRef),
    /// `P*N`: the i-th call uses `Pi`.
    Bulk(Bulk),
}

/// What a bulk creation command makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkKind {
    /// `epolls P N`: `epoll_create1(0)` N times.
    Epolls,
    /// `eventfds P N [INIT]`: N eventfds with that initial counter.
    Eventfds {
        /// Initial counter of each.
        init: u32,
    },
    /// `pipes R W N`: N pipes, read ends `R0..`, write ends `W0..`.
    Pipes,
}

/// Most descriptors the bulk commands of one scenario may create, together. The kernel
/// backend's range starts at descriptor 1000 and the C ABI backend's at 3000 (tests run
/// scenarios of both at once), and the process's hard limit here is 20,000: 1,900 keeps a
/// bulk scenario inside its own range.
pub const MAX_BULK_DESCRIPTORS: u32 = 1900;

/// One command of a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `epoll E [size=N] [flags=N]`.
    Epoll {
        /// Name bound to the new instance.
        name: String,
        /// `epoll_create(size)` or `epoll_create1(flags)`.
        create: Create,
    },
    /// `pipe R W`: `pipe2(O_NONBLOCK)`.
    Pipe {
        /// Read end.
        read: String,
        /// Write end.
        write: String,
    },
    /// `setpipesz R N`: `fcntl(R, F_SETPIPE_SZ, N)`; prints the new capacity (addition).
    SetPipeSize {
        /// Either end of a pipe.
        fd: FdRef,
        /// Requested capacity in bytes.
        size: i32,
    },
    /// `eventfd N INIT [semaphore]`.
    Eventfd {
        /// Name bound to the eventfd.
        name: String,
        /// Initial counter.
        init: u32,
        /// `EFD_SEMAPHORE`.
        semaphore: bool,
    },
    /// `socketpair A B stream|dgram|seqpacket`.
    Socketpair {
        /// First socket.
        a: String,
        /// Second socket.
        b: String,
        /// Socket type.
        ty: SockType,
    },
    /// `timerfd T`.
    Timerfd {
        /// Name bound to the timer.
        name: String,
    },
    /// `settime T expired|disarm`.
    Settime {
        /// The timerfd.
        fd: FdRef,
        /// What to do.
        setting: TimerSetting,
    },
    /// `file F`: a regular file.
    File {
        /// Name bound to the file.
        name: String,
    },
    /// `null N` (addition): `open("/dev/null", O_RDWR | O_NONBLOCK)`.
    DevNull {
        /// Name bound to the descriptor.
        name: String,
    },
    /// `mkfifo P` (addition): a FIFO at a fresh path of the scenario's own (P names the
    /// path, not a descriptor: FIFO names are a namespace of their own).
    Mkfifo {
        /// The FIFO's name.
        fifo: String,
    },
    /// `open X P rdonly|wronly|rdwr` (addition): open FIFO P with `O_NONBLOCK`.
    OpenFifo {
        /// Name bound to the new descriptor.
        name: String,
        /// The FIFO (bound by `mkfifo`).
        fifo: String,
        /// The access mode.
        mode: FifoMode,
    },
    /// `timer-read T` (addition): an 8-byte read of a timerfd that prints the expiration
    /// count normalised (`>=1`), so that periodic timers, whose counts depend on timing,
    /// keep transcripts deterministic.
    TimerRead {
        /// The timerfd.
        fd: FdRef,
    },
    /// `ctl E add|mod|del|op=N TARGET [EVENTS DATA | null]`.
    Ctl {
        /// The epoll descriptor.
        epfd: FdRef,
        /// The raw op (1 add, 2 del, 3 mod, or any number).
        op: i32,
        /// The target descriptor.
        target: FdRef,
        /// `(events, data)`, or `None` for a NULL pointer.
        event: Option<(u32, u64)>,
    },
    /// `wait`, `pwait` or `pwait2`.
    Wait(WaitCall),
    /// `poll X [MS]`: timeout 0, or MS (addition; negative: none).
    Poll {
        /// The descriptor.
        fd: FdRef,
        /// Milliseconds.
        timeout_ms: i32,
    },
    /// `write W N`.
    Write {
        /// The descriptor.
        fd: FdRef,
        /// Byte count.
        len: usize,
    },
    /// `read R N`.
    Read {
        /// The descriptor.
        fd: FdRef,
        /// Buffer size.
        len: usize,
    },
    /// `efd-write N VALUE`.
    EfdWrite {
        /// The eventfd.
        fd: FdRef,
        /// The 8-byte value.
        value: u64,
    },
    /// `efd-read N`.
    EfdRead {
        /// The eventfd.
        fd: FdRef,
    },
    /// `shutdown S rd|wr|rdwr`.
    Shutdown {
        /// The socket.
        fd: FdRef,
        /// `SHUT_RD` (0), `SHUT_WR` (1) or `SHUT_RDWR` (2).
        how: i32,
    },
    /// `close X`.
    Close {
        /// The descriptor.
        fd: FdRef,
    },
    /// `dup X NEW`.
    Dup {
        /// The descriptor duplicated.
        fd: FdRef,
        /// Name bound to the new descriptor.
        name: String,
    },
    /// `dup2 X Y`: onto Y's number.
    Dup2 {
        /// The descriptor duplicated.
        fd: FdRef,
        /// The descriptor whose number is the target.
        target: FdRef,
    },
    /// `dup3 X Y [cloexec|flags=N]` (addition): `dup3(2)` onto Y's number.
    Dup3 {
        /// The descriptor duplicated.
        fd: FdRef,
        /// The descriptor whose number is the target.
        target: FdRef,
        /// `O_CLOEXEC` or any raw flags.
        flags: i32,
    },
    /// `dupfd X MIN NEW` (addition): `fcntl(X, F_DUPFD, MIN)`; NEW names the result.
    Dupfd {
        /// The descriptor duplicated.
        fd: FdRef,
        /// The lowest number wanted (a scenario number).
        min: i32,
        /// Name bound to the new descriptor.
        name: String,
    },
    /// `close-range A B [cloexec|flags=N]` (addition): `close_range(2)` over scenario numbers
    /// A to B (at most 999, so that the range stays the scenario's own).
    CloseRange {
        /// First number.
        first: u32,
        /// Last number.
        last: u32,
        /// `CLOSE_RANGE_CLOEXEC` or any raw flags.
        flags: u32,
    },
    /// `bg T CALL` (addition): start a blocking call on background thread T.
    Bg {
        /// The thread's name (its own namespace, apart from descriptor names).
        thread: String,
        /// The call.
        call: BgCall,
    },
    /// `sleeping T` (addition): wait until T is asleep in its call (or has returned).
    Sleeping {
        /// The thread.
        thread: String,
    },
    /// `settle` (addition): wait until every running background thread is asleep in its
    /// call or has returned, all at once; prints each one's state.
    Settle,
    /// `join T` (addition): wait for T's call to return; prints its result.
    Join {
        /// The thread.
        thread: String,
    },
    /// `signal T` (addition): interrupt T's call (a signal; the engine's `Interrupt`).
    Signal {
        /// The thread.
        thread: String,
    },
    /// `sleep MS` (addition): the main thread sleeps.
    Sleep {
        /// Milliseconds.
        ms: u32,
    },
    /// `epolls P N`, `eventfds P N [INIT]`, `pipes R W N` (addition): N objects at once,
    /// named `P0` to `P(N-1)` (pipes: `R0..`, `W0..`).
    Objects {
        /// What to make.
        kind: BulkKind,
        /// Name prefix (pipes: of the read ends).
        prefix: String,
        /// Pipes: the write ends' prefix.
        write_prefix: Option<String>,
        /// How many.
        count: u32,
    },
    /// `ctl-all E OP T [EVENTS DATA]` (addition): one `epoll_ctl` per name of the bulk
    /// reference(s) among E and T (both bulk: pairwise, same count), the i-th with data
    /// `DATA + i`.
    CtlAll {
        /// The epoll descriptor(s).
        epfd: Many,
        /// The raw op.
        op: i32,
        /// The target(s).
        target: Many,
        /// `(events, first data)`, or `None` (DEL).
        event: Option<(u32, u64)>,
    },
    /// `fork P` (addition): fork the scenario's process; the child is named P (process
    /// names are a namespace of their own) and runs only the commands given to it with `@P`.
    Fork {
        /// The child's name.
        process: String,
    },
    /// `@P CMD` (addition): run CMD in child P (a foreground command: not `bg`, `fork`,
    /// `exit` or another thread command).
    InChild {
        /// The child.
        process: String,
        /// The command it runs.
        command: Box<Command>,
    },
    /// `exit P` (addition): child P exits (its descriptors close) and is waited for.
    Exit {
        /// The child.
        process: String,
    },
    /// `efd-write-all P*N VALUE` (addition): `efd-write` on each name.
    EfdWriteAll {
        /// The eventfds.
        fds: Bulk,
        /// The 8-byte value.
        value: u64,
    },
    /// A listening, connecting or accepting socket (additions): see [`SocketCommand`].
    Socket(SocketCommand),
}

/// The socket commands beyond `socketpair` (additions): unix listeners, and TCP and UDP on
/// loopback (which only the kernel and the C ABI backends run: see [`Script::needs_inet`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketCommand {
    /// `listen L stream|seqpacket [backlog=N]`: a non-blocking unix socket bound to a fresh
    /// abstract address, listening.
    Listen {
        /// Name bound to the listener (and to its address, for `connect`).
        name: String,
        /// `Stream` or `SeqPacket`.
        ty: SockType,
        /// `listen`'s backlog.
        backlog: i32,
    },
    /// `connect C L`: a new non-blocking unix socket of L's type connected to L's address.
    Connect {
        /// Name bound to the client.
        name: String,
        /// The `listen` name whose address is connected to.
        listener: String,
    },
    /// `accept A L`: `accept4(L, NULL, NULL, SOCK_NONBLOCK)` (unix or TCP).
    Accept {
        /// Name bound to the accepted socket.
        name: String,
        /// The listening descriptor.
        fd: FdRef,
    },
    /// `tcp-listen L [backlog=N]`: a non-blocking TCP socket bound to 127.0.0.1, port 0,
    /// listening.
    TcpListen {
        /// Name bound to the listener (and to its address).
        name: String,
        /// `listen`'s backlog.
        backlog: i32,
    },
    /// `tcp-connect C L`: a new non-blocking TCP socket connected to L's address.
    TcpConnect {
        /// Name bound to the client.
        name: String,
        /// The `tcp-listen` name whose address is connected to.
        listener: String,
    },
    /// `udp U`: a non-blocking UDP socket bound to 127.0.0.1, port 0.
    Udp {
        /// Name bound to the socket (and to its address).
        name: String,
    },
    /// `udp-connect U V`: `connect(U, V's address)`.
    UdpConnect {
        /// The connecting socket.
        fd: FdRef,
        /// The `udp` name whose address is connected to.
        peer: String,
    },
}

impl SocketCommand {
    /// Whether the command makes or uses an inet (TCP or UDP) socket.
    pub fn is_inet(&self) -> bool {
        matches!(
            self,
            SocketCommand::TcpListen { .. }
                | SocketCommand::TcpConnect { .. }
                | SocketCommand::Udp { .. }
                | SocketCommand::UdpConnect { .. }
        )
    }
}

/// What an address name (a `listen`, `tcp-listen` or `udp` name) was made by: `connect`,
/// `tcp-connect` and `udp-connect` each need their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AddressKind {
    Unix,
    Tcp,
    Udp,
}

/// A call a background thread makes (`bg T CALL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgCall {
    /// `wait`, `pwait` or `pwait2`, with the foreground syntax.
    Wait(WaitCall),
    /// `poll X MS`: `poll()` asking for every bit, with a timeout (negative: none).
    Poll {
        /// The descriptor.
        fd: FdRef,
        /// Milliseconds.
        timeout_ms: i32,
    },
    /// `select X MS`: `select()` with X in the read, write and exception sets.
    Select {
        /// The descriptor.
        fd: FdRef,
        /// Milliseconds; negative for no limit.
        timeout_ms: i32,
    },
}

/// One command line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the file.
    pub lineno: usize,
    /// The command as written, comments stripped and spacing normalised (one space between
    /// words): the left part of its transcript line.
    pub text: String,
    /// The parsed command.
    pub command: Command,
}

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The `# name:` header, or the file name.
    pub name: String,
    /// Where it came from (for messages).
    pub path: String,
    /// The commands, in order.
    pub lines: Vec<Line>,
}

impl Script {
    /// Whether the script uses TCP or UDP sockets (`tcp-listen`, `tcp-connect`, `udp`,
    /// `udp-connect`): the in-process engine has no inet objects, so such a script is
    /// compared between the kernel and the C ABI only (see [`crate::compare`]).
    pub fn needs_inet(&self) -> bool {
        self.lines.iter().any(|l| {
            let own = match &l.command {
                Command::InChild { command, .. } => &**command,
                c => c,
            };
            matches!(own, Command::Socket(c) if c.is_inet())
        })
    }
}

/// What went wrong on a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The first word is not a command.
    UnknownCommand(String),
    /// A word where a NAME was expected is not `[a-z][a-z0-9_]*`.
    BadName(String),
    /// A NAME that no earlier line created (bound).
    Unbound(String),
    /// A number that does not parse or is out of range for its argument: the word and the
    /// range allowed (`from 0 to 4,294,967,295`).
    BadNumber(String, String),
    /// A keyword that is not one of the allowed ones (`add`, `stream`, `expired`, an event
    /// name, ...): the word and the words allowed.
    BadWord(String, String),
    /// Fewer arguments than the command needs.
    MissingArgument(&'static str),
    /// More arguments than the command takes.
    ExtraArgument(String),
}

/// A parse error: file, line and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub lineno: usize,
    /// The problem.
    pub kind: ParseErrorKind,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path, self.lineno)?;
        match &self.kind {
            ParseErrorKind::UnknownCommand(w) => write!(
                f,
                "unknown command `{w}`: expected one of {}",
                COMMANDS.join(", ")
            ),
            ParseErrorKind::BadName(w) => write!(
                f,
                "bad name `{w}` (a NAME is a lower-case letter, then letters, digits or `_`)"
            ),
            ParseErrorKind::Unbound(w) => write!(
                f,
                "`{w}` was never created: no earlier line makes it (epoll, pipe, eventfd, \
                 socketpair, timerfd, file, null, open, dup, listen, connect, accept, \
                 tcp-listen, tcp-connect or udp; a FIFO by mkfifo); use fd:N for a raw number"
            ),
            ParseErrorKind::BadNumber(w, range) => write!(f, "bad number `{w}`: {range}"),
            ParseErrorKind::BadWord(w, allowed) => {
                write!(f, "bad word `{w}`: expected {allowed}")
            }
            ParseErrorKind::MissingArgument(what) => write!(f, "missing argument: {what}"),
            ParseErrorKind::ExtraArgument(w) => write!(f, "extra argument `{w}`"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Every command of the format, for messages.
pub const COMMANDS: [&str; 48] = [
    "epoll",
    "pipe",
    "setpipesz",
    "eventfd",
    "socketpair",
    "timerfd",
    "settime",
    "file",
    "ctl",
    "wait",
    "pwait",
    "pwait2",
    "poll",
    "write",
    "read",
    "efd-write",
    "efd-read",
    "shutdown",
    "close",
    "dup",
    "dup2",
    "dup3",
    "dupfd",
    "close-range",
    "bg",
    "sleeping",
    "settle",
    "join",
    "signal",
    "sleep",
    "epolls",
    "eventfds",
    "pipes",
    "ctl-all",
    "efd-write-all",
    "fork",
    "exit",
    "null",
    "mkfifo",
    "open",
    "timer-read",
    "listen",
    "connect",
    "accept",
    "tcp-listen",
    "tcp-connect",
    "udp",
    "udp-connect",
];

/// The commands of [`COMMANDS`] that make or use TCP and UDP sockets (run on the kernel and
/// the C ABI only).
pub const INET_COMMANDS: [&str; 4] = ["tcp-listen", "tcp-connect", "udp", "udp-connect"];

/// A [`ParseErrorKind::BadWord`] for `w` where `allowed` were expected.
fn word(w: &str, allowed: &str) -> ParseErrorKind {
    ParseErrorKind::BadWord(w.to_string(), allowed.to_string())
}

/// The event names of the format, with their bits (`EPOLL` prefix dropped, lower case).
pub const EVENT_NAMES: [(&str, u32); 15] = [
    ("in", 0x001),
    ("pri", 0x002),
    ("out", 0x004),
    ("err", 0x008),
    ("hup", 0x010),
    ("rdnorm", 0x040),
    ("rdband", 0x080),
    ("wrnorm", 0x100),
    ("wrband", 0x200),
    ("msg", 0x400),
    ("rdhup", 0x2000),
    ("exclusive", 1 << 28),
    ("wakeup", 1 << 29),
    ("oneshot", 1 << 30),
    ("et", 1 << 31),
];

/// Parse a whole script. `path` is only used for the default name and for messages.
pub fn parse(path: &str, source: &str) -> Result<Script, ParseError> {
    let mut name = None;
    let mut lines = Vec::new();
    let mut defined = HashSet::new();
    let mut running = HashSet::new();
    let mut bulk_descriptors = 0u32;
    let mut processes = HashSet::new();
    let mut fifos = HashSet::new();
    let mut addresses = std::collections::HashMap::new();
    for (i, raw) in source.lines().enumerate() {
        let lineno = i + 1;
        let (code, comment) = match raw.find('#') {
            Some(at) => (&raw[..at], Some(&raw[at + 1..])),
            None => (raw, None),
        };
        let words: Vec<&str> = code.split_whitespace().collect();
        if words.is_empty() {
            // `# name: TEXT` counts only before the first command.
            if let (Some(c), None, true) = (comment, &name, lines.is_empty()) {
                if let Some(text) = c.trim_start().strip_prefix("name:") {
                    name = Some(text.trim().to_string());
                }
            }
            continue;
        }
        let err = |kind| ParseError {
            path: path.to_string(),
            lineno,
            kind,
        };
        let command = match words[0] {
            "fork" | "exit" => process_command(&words, &processes),
            w if w.starts_with('@') => {
                in_child(&words, &processes, &defined, &running, &fifos, &addresses)
            }
            _ => LineParser {
                words: &words,
                pos: 1,
                defined: &defined,
                running: &running,
                fifos: &fifos,
                addresses: &addresses,
            }
            .command(),
        }
        .map_err(err)?;
        match &command {
            Command::Fork { process } => {
                processes.insert(process.clone());
            }
            Command::Exit { process } => {
                processes.remove(process);
            }
            _ => {}
        }
        if let Command::Mkfifo { fifo } = &command {
            fifos.insert(fifo.clone());
        }
        for n in bound_names(&command) {
            defined.insert(n.to_string());
            addresses.remove(n);
        }
        let own = match &command {
            Command::InChild { command, .. } => &**command,
            c => c,
        };
        if let Command::Socket(c) = own {
            match c {
                SocketCommand::Listen { name, .. } => {
                    addresses.insert(name.clone(), AddressKind::Unix);
                }
                SocketCommand::TcpListen { name, .. } => {
                    addresses.insert(name.clone(), AddressKind::Tcp);
                }
                SocketCommand::Udp { name } => {
                    addresses.insert(name.clone(), AddressKind::Udp);
                }
                _ => {}
            }
        }
        if let Command::Objects { kind, count, .. } = &command {
            let per = if *kind == BulkKind::Pipes { 2 } else { 1 };
            bulk_descriptors = bulk_descriptors.saturating_add(count.saturating_mul(per));
            if bulk_descriptors > MAX_BULK_DESCRIPTORS {
                return Err(err(ParseErrorKind::BadNumber(
                    count.to_string(),
                    format!(
                        "bulk commands create at most {MAX_BULK_DESCRIPTORS} descriptors per \
                         scenario (the backend's descriptor range)"
                    ),
                )));
            }
        }
        defined.extend(bulk_names(&command));
        match &command {
            Command::Bg { thread, .. } => {
                running.insert(thread.clone());
            }
            Command::Join { thread } => {
                running.remove(thread);
            }
            _ => {}
        }
        lines.push(Line {
            lineno,
            text: words.join(" "),
            command,
        });
    }
    let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::path::Path::new(path)
            .file_name()
            .map_or_else(|| path.to_string(), |f| f.to_string_lossy().into_owned())
    });
    Ok(Script {
        name,
        path: path.to_string(),
        lines,
    })
}

/// The names a command binds (creates).
pub fn bound_names(c: &Command) -> Vec<&str> {
    match c {
        Command::Epoll { name, .. }
        | Command::Eventfd { name, .. }
        | Command::Timerfd { name }
        | Command::File { name }
        | Command::DevNull { name }
        | Command::OpenFifo { name, .. }
        | Command::Dup { name, .. }
        | Command::Dupfd { name, .. } => vec![name],
        Command::Pipe { read, write } => vec![read, write],
        Command::Socketpair { a, b, .. } => vec![a, b],
        Command::Socket(
            SocketCommand::Listen { name, .. }
            | SocketCommand::Connect { name, .. }
            | SocketCommand::Accept { name, .. }
            | SocketCommand::TcpListen { name, .. }
            | SocketCommand::TcpConnect { name, .. }
            | SocketCommand::Udp { name },
        ) => vec![name],
        Command::InChild { command, .. } => bound_names(command),
        _ => vec![],
    }
}

/// `fork P` (P not a running child) or `exit P` (P a running child).
fn process_command(words: &[&str], processes: &HashSet<String>) -> Result<Command, ParseErrorKind> {
    let fork = words[0] == "fork";
    let p = words
        .get(1)
        .ok_or(ParseErrorKind::MissingArgument("process name"))?;
    if let Some(extra) = words.get(2) {
        return Err(ParseErrorKind::ExtraArgument(extra.to_string()));
    }
    if !is_name(p) || processes.contains(*p) == fork {
        return Err(ParseErrorKind::BadName(p.to_string()));
    }
    let process = p.to_string();
    Ok(if fork {
        Command::Fork { process }
    } else {
        Command::Exit { process }
    })
}

/// `@P CMD`: CMD with the ordinary syntax, run by the running child P.
fn in_child(
    words: &[&str],
    processes: &HashSet<String>,
    defined: &HashSet<String>,
    running: &HashSet<String>,
    fifos: &HashSet<String>,
    addresses: &std::collections::HashMap<String, AddressKind>,
) -> Result<Command, ParseErrorKind> {
    let p = &words[0][1..];
    if !processes.contains(p) {
        return Err(ParseErrorKind::BadName(words[0].to_string()));
    }
    let rest = &words[1..];
    let first = *rest
        .first()
        .ok_or(ParseErrorKind::MissingArgument("a command for the child"))?;
    if [
        "bg", "sleeping", "settle", "join", "signal", "fork", "exit", "epolls", "eventfds", "pipes",
    ]
    .contains(&first)
        || first.starts_with('@')
    {
        return Err(word(
            first,
            "a foreground command (not a thread or process command)",
        ));
    }
    if first == "mkfifo" {
        // FIFO names are the main process's (the real backends' directory is made there).
        return Err(word(
            first,
            "a command other than mkfifo (FIFOs are made by the main process)",
        ));
    }
    let command = LineParser {
        words: rest,
        pos: 1,
        defined,
        running,
        fifos,
        addresses,
    }
    .command()?;
    if matches!(command, Command::Poll { timeout_ms, .. } if timeout_ms != 0) {
        // A poll that may sleep runs on a thread of its own, which a child does not start.
        return Err(word(
            first,
            "a poll with timeout 0 (a child starts no thread)",
        ));
    }
    Ok(Command::InChild {
        process: p.to_string(),
        command: Box::new(command),
    })
}

/// The names a bulk command binds (`P0` to `P(N-1)`).
pub fn bulk_names(c: &Command) -> Vec<String> {
    match c {
        Command::Objects {
            prefix,
            write_prefix,
            count,
            ..
        } => std::iter::once(prefix)
            .chain(write_prefix)
            .flat_map(|p| (0..*count).map(move |i| format!("{p}{i}")))
            .collect(),
        Command::InChild { command, .. } => bulk_names(command),
        _ => vec![],
    }
}

/// Whether `w` is a NAME: `[a-z][a-z0-9_]*`.
pub fn is_name(w: &str) -> bool {
    let mut chars = w.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Parse an integer: optional `-`, then decimal or `0x` hexadecimal.
fn parse_int(w: &str) -> Option<i128> {
    let (neg, digits) = match w.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, w),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i128>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// The integer types arguments have, with their ranges (for messages).
trait Bounded: TryFrom<i128> {
    const LOW: i128;
    const HIGH: i128;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const LOW: i128 = <$t>::MIN as i128;
            const HIGH: i128 = <$t>::MAX as i128;
        }
    )*};
}
bounded!(i32, u32, i64, u64, usize);

/// `from LOW to HIGH` (decimal, with `,` separators).
fn range_text(low: i128, high: i128) -> String {
    let sep = |v: i128| {
        let digits = v.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        if v < 0 {
            format!("-{out}")
        } else {
            out
        }
    };
    format!(
        "must be from {} to {} (decimal or 0x hexadecimal)",
        sep(low),
        sep(high)
    )
}

fn number<T: Bounded>(w: &str) -> Result<T, ParseErrorKind> {
    parse_int(w)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| ParseErrorKind::BadNumber(w.to_string(), range_text(T::LOW, T::HIGH)))
}

/// What EVENTS may be, for messages.
fn events_expected() -> String {
    let names: Vec<&str> = EVENT_NAMES.iter().map(|(n, _)| *n).collect();
    format!("event names ({}) or numbers, joined by |", names.join(" "))
}

/// Parse EVENTS: `|`-joined names and/or numbers.
pub fn parse_events(w: &str) -> Result<u32, ParseErrorKind> {
    let mut bits = 0u32;
    for part in w.split('|') {
        if let Some((_, bit)) = EVENT_NAMES.iter().find(|(n, _)| *n == part) {
            bits |= bit;
        } else if part.starts_with(|c: char| c.is_ascii_digit()) {
            bits |= number::<u32>(part)?;
        } else {
            return Err(ParseErrorKind::BadWord(part.to_string(), events_expected()));
        }
    }
    Ok(bits)
}

struct LineParser<'a> {
    words: &'a [&'a str],
    pos: usize,
    defined: &'a HashSet<String>,
    /// Background threads started and not joined yet.
    running: &'a HashSet<String>,
    /// FIFO names bound by `mkfifo`.
    fifos: &'a HashSet<String>,
    /// Names whose latest binding made an address (`listen`, `tcp-listen`, `udp`).
    addresses: &'a std::collections::HashMap<String, AddressKind>,
}

impl<'a> LineParser<'a> {
    fn next(&mut self, what: &'static str) -> Result<&'a str, ParseErrorKind> {
        let w = self
            .words
            .get(self.pos)
            .ok_or(ParseErrorKind::MissingArgument(what))?;
        self.pos += 1;
        Ok(w)
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.pos).copied()
    }

    fn end(&self) -> Result<(), ParseErrorKind> {
        match self.peek() {
            Some(w) => Err(ParseErrorKind::ExtraArgument(w.to_string())),
            None => Ok(()),
        }
    }

    /// A NAME that a command binds.
    fn new_name(&mut self, what: &'static str) -> Result<String, ParseErrorKind> {
        let w = self.next(what)?;
        if is_name(w) {
            Ok(w.to_string())
        } else {
            Err(ParseErrorKind::BadName(w.to_string()))
        }
    }

    /// A NAME bound earlier, or `fd:N`.
    fn fd(&mut self, what: &'static str) -> Result<FdRef, ParseErrorKind> {
        let w = self.next(what)?;
        if let Some(n) = w.strip_prefix("fd:") {
            return Ok(FdRef::Raw(number(n)?));
        }
        if !is_name(w) {
            Err(ParseErrorKind::BadName(w.to_string()))
        } else if self.defined.contains(w) {
            Ok(FdRef::Name(w.to_string()))
        } else {
            Err(ParseErrorKind::Unbound(w.to_string()))
        }
    }

    /// A bulk reference `P*N` whose names are all bound.
    fn bulk(&mut self, what: &'static str) -> Result<Bulk, ParseErrorKind> {
        let w = self.next(what)?;
        let Some((prefix, n)) = w.split_once('*') else {
            return Err(word(w, "P*N (the names P0 to P(N-1))"));
        };
        if !is_name(prefix) {
            return Err(ParseErrorKind::BadName(prefix.to_string()));
        }
        let bulk = Bulk {
            prefix: prefix.to_string(),
            count: number(n)?,
        };
        if bulk.count == 0 {
            return Err(ParseErrorKind::BadNumber(
                n.to_string(),
                "a bulk reference names at least one descriptor".into(),
            ));
        }
        let missing = bulk.names().find(|n| !self.defined.contains(n));
        match missing {
            Some(missing) => Err(ParseErrorKind::Unbound(missing)),
            None => Ok(bulk),
        }
    }

    /// One side of `ctl-all`: `P*N` or a descriptor.
    fn many(&mut self, what: &'static str) -> Result<Many, ParseErrorKind> {
        match self.peek() {
            Some(w) if w.contains('*') => Ok(Many::Bulk(self.bulk(what)?)),
            _ => Ok(Many::One(self.fd(what)?)),
        }
    }

    /// The count of a bulk creation command (1 to [`MAX_BULK_DESCRIPTORS`]).
    fn bulk_count(&mut self) -> Result<u32, ParseErrorKind> {
        let w = self.next("count")?;
        match number::<u32>(w)? {
            n @ 1..=MAX_BULK_DESCRIPTORS => Ok(n),
            _ => Err(ParseErrorKind::BadNumber(
                w.to_string(),
                format!("a bulk count is from 1 to {MAX_BULK_DESCRIPTORS}"),
            )),
        }
    }

    /// The bulk commands (additions): `epolls`, `eventfds`, `pipes`, `ctl-all`,
    /// `efd-write-all`.
    fn bulk_command(&mut self, cmd: &str) -> Result<Command, ParseErrorKind> {
        Ok(match cmd {
            "epolls" | "eventfds" => {
                let prefix = self.new_name("name prefix")?;
                let count = self.bulk_count()?;
                let kind = if cmd == "epolls" {
                    BulkKind::Epolls
                } else {
                    let init = match self.peek() {
                        Some(_) => self.num("initial value")?,
                        None => 0,
                    };
                    BulkKind::Eventfds { init }
                };
                Command::Objects {
                    kind,
                    prefix,
                    write_prefix: None,
                    count,
                }
            }
            "pipes" => Command::Objects {
                kind: BulkKind::Pipes,
                prefix: self.new_name("read end prefix")?,
                write_prefix: Some(self.new_name("write end prefix")?),
                count: self.bulk_count()?,
            },
            "ctl-all" => {
                let epfd = self.many("epoll descriptor(s)")?;
                let op = match self.next("add|mod|del")? {
                    "add" => 1,
                    "del" => 2,
                    "mod" => 3,
                    w => return Err(word(w, "add, mod or del")),
                };
                let target = self.many("target descriptor(s)")?;
                match (&epfd, &target) {
                    (Many::One(_), Many::One(_)) => {
                        return Err(ParseErrorKind::MissingArgument(
                            "a bulk reference P*N as E or T",
                        ))
                    }
                    (Many::Bulk(a), Many::Bulk(b)) if a.count != b.count => {
                        return Err(ParseErrorKind::BadNumber(
                            b.count.to_string(),
                            "two bulk references need the same count".into(),
                        ))
                    }
                    _ => {}
                }
                let event = if op == 2 {
                    None
                } else {
                    let events = parse_events(self.next("events")?)?;
                    Some((events, self.num("data")?))
                };
                Command::CtlAll {
                    epfd,
                    op,
                    target,
                    event,
                }
            }
            _ => Command::EfdWriteAll {
                fds: self.bulk("eventfds P*N")?,
                value: self.num("value")?,
            },
        })
    }

    /// Optional trailing flags: `cloexec` (the value given) or `flags=N` (raw).
    fn flags(&mut self, cloexec: i32) -> Result<i32, ParseErrorKind> {
        match self.peek() {
            Some("cloexec") => {
                self.pos += 1;
                Ok(cloexec)
            }
            Some(w) if w.starts_with("flags=") => {
                self.pos += 1;
                number(&w["flags=".len()..])
            }
            _ => Ok(0),
        }
    }

    /// A background thread's name: one that is running (`running`) or not.
    fn thread(&mut self, running: bool) -> Result<String, ParseErrorKind> {
        let w = self.next("thread name")?;
        if is_name(w) && self.running.contains(w) == running {
            Ok(w.to_string())
        } else {
            Err(ParseErrorKind::BadName(w.to_string()))
        }
    }

    /// `bg T CALL`: the call is parsed with the foreground syntax (poll and select take a
    /// timeout).
    fn bg(&mut self) -> Result<Command, ParseErrorKind> {
        let thread = self.thread(false)?;
        let rest = &self.words[self.pos..];
        let call_word = *rest.first().ok_or(ParseErrorKind::MissingArgument(
            "wait|pwait|pwait2|poll|select",
        ))?;
        let mut sub = LineParser {
            words: rest,
            pos: 1,
            defined: self.defined,
            running: self.running,
            fifos: self.fifos,
            addresses: self.addresses,
        };
        let call = match call_word {
            "wait" | "pwait" | "pwait2" => match sub.command()? {
                Command::Wait(w) => BgCall::Wait(w),
                _ => unreachable!("wait commands parse to Command::Wait"),
            },
            "poll" | "select" => {
                let fd = sub.fd("descriptor")?;
                let timeout_ms = sub.num("timeout")?;
                sub.end()?;
                if call_word == "poll" {
                    BgCall::Poll { fd, timeout_ms }
                } else {
                    BgCall::Select { fd, timeout_ms }
                }
            }
            w => return Err(word(w, "wait, pwait, pwait2, poll or select")),
        };
        self.pos = self.words.len();
        Ok(Command::Bg { thread, call })
    }

    /// The `MS` of `settime T [expired] every MS`: 1 to 2,147,483,647 milliseconds.
    fn period(&mut self, at_once: bool) -> Result<TimerSetting, ParseErrorKind> {
        let w = self.next("period in milliseconds")?;
        match number::<u32>(w) {
            Ok(ms) if (1..=i32::MAX as u32).contains(&ms) => Ok(TimerSetting::Every {
                interval_ms: ms,
                at_once,
            }),
            _ => Err(ParseErrorKind::BadNumber(
                w.to_string(),
                "a period is from 1 to 2,147,483,647 milliseconds".into(),
            )),
        }
    }

    /// A name whose latest binding made an address of `kind` (`made_by` names the command,
    /// for messages).
    fn address(
        &mut self,
        kind: AddressKind,
        made_by: &'static str,
    ) -> Result<String, ParseErrorKind> {
        let w = self.next("address name")?;
        if !is_name(w) {
            return Err(ParseErrorKind::BadName(w.to_string()));
        }
        match self.addresses.get(w) {
            Some(k) if *k == kind => Ok(w.to_string()),
            _ if !self.defined.contains(w) => Err(ParseErrorKind::Unbound(w.to_string())),
            _ => Err(word(w, made_by)),
        }
    }

    /// Optional `backlog=N` (default [`DEFAULT_BACKLOG`]).
    fn backlog(&mut self) -> Result<i32, ParseErrorKind> {
        match self.options(&["backlog"])?.first() {
            Some((_, v)) => number(v),
            None => Ok(DEFAULT_BACKLOG),
        }
    }

    /// The socket commands beyond `socketpair` (see [`SocketCommand`]).
    fn socket_command(&mut self, cmd: &str) -> Result<SocketCommand, ParseErrorKind> {
        Ok(match cmd {
            "listen" => {
                let name = self.new_name("listener name")?;
                let ty = match self.next("stream|seqpacket")? {
                    "stream" => SockType::Stream,
                    "seqpacket" => SockType::SeqPacket,
                    w => return Err(word(w, "stream or seqpacket")),
                };
                let backlog = self.backlog()?;
                SocketCommand::Listen { name, ty, backlog }
            }
            "connect" => SocketCommand::Connect {
                name: self.new_name("client name")?,
                listener: self.address(AddressKind::Unix, "a name bound by `listen`")?,
            },
            "accept" => SocketCommand::Accept {
                name: self.new_name("accepted socket name")?,
                fd: self.fd("listening descriptor")?,
            },
            "tcp-listen" => SocketCommand::TcpListen {
                name: self.new_name("listener name")?,
                backlog: self.backlog()?,
            },
            "tcp-connect" => SocketCommand::TcpConnect {
                name: self.new_name("client name")?,
                listener: self.address(AddressKind::Tcp, "a name bound by `tcp-listen`")?,
            },
            "udp" => SocketCommand::Udp {
                name: self.new_name("socket name")?,
            },
            _ => SocketCommand::UdpConnect {
                fd: self.fd("socket")?,
                peer: self.address(AddressKind::Udp, "a name bound by `udp`")?,
            },
        })
    }

    fn num<T: Bounded>(&mut self, what: &'static str) -> Result<T, ParseErrorKind> {
        number(self.next(what)?)
    }

    fn io_len(&mut self) -> Result<usize, ParseErrorKind> {
        let w = self.next("byte count")?;
        let n: usize = number(w)?;
        if n > MAX_IO_BYTES {
            return Err(ParseErrorKind::BadNumber(
                w.to_string(),
                format!("read and write counts are at most {MAX_IO_BYTES} (16 MiB)"),
            ));
        }
        Ok(n)
    }

    /// Optional trailing `key=value` words; `allowed` lists the keys.
    fn options(&mut self, allowed: &[&str]) -> Result<Vec<(String, String)>, ParseErrorKind> {
        let mut out: Vec<(String, String)> = Vec::new();
        while let Some(w) = self.peek() {
            match w.split_once('=') {
                Some((k, v)) if allowed.contains(&k) && !out.iter().any(|(seen, _)| seen == k) => {
                    out.push((k.to_string(), v.to_string()));
                    self.pos += 1;
                }
                _ => return Err(ParseErrorKind::ExtraArgument(w.to_string())),
            }
        }
        Ok(out)
    }

    fn wait_options(&mut self, sigsetsize: bool) -> Result<(Buffer, usize), ParseErrorKind> {
        let allowed: &[&str] = if sigsetsize {
            &["buf", "sigsetsize"]
        } else {
            &["buf"]
        };
        let mut buffer = Buffer::Full;
        let mut size = 8;
        for (k, v) in self.options(allowed)? {
            match k.as_str() {
                "buf" if v == "null" => buffer = Buffer::Null,
                "buf" => match parse_int(&v).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n <= 1024 => buffer = Buffer::Slots(n),
                    _ => {
                        return Err(ParseErrorKind::BadWord(
                            format!("buf={v}"),
                            "buf=null or buf=N (0 to 1024 entries)".into(),
                        ))
                    }
                },
                _ => size = number(&v)?,
            }
        }
        Ok((buffer, size))
    }

    fn command(mut self) -> Result<Command, ParseErrorKind> {
        let cmd = self.words[0];
        let c = match cmd {
            "epoll" => {
                let name = self.new_name("epoll name")?;
                let opts = self.options(&["size", "flags"])?;
                let create = match opts.as_slice() {
                    [] => Create::Flags(0),
                    [(k, v)] if k == "size" => Create::Size(number(v)?),
                    [(_, v)] => Create::Flags(number(v)?),
                    [_, (k, v)] => return Err(ParseErrorKind::ExtraArgument(format!("{k}={v}"))),
                    _ => return Err(ParseErrorKind::ExtraArgument(String::new())),
                };
                Command::Epoll { name, create }
            }
            "pipe" => Command::Pipe {
                read: self.new_name("read end name")?,
                write: self.new_name("write end name")?,
            },
            "setpipesz" => Command::SetPipeSize {
                fd: self.fd("pipe")?,
                size: self.num("size")?,
            },
            "eventfd" => {
                let name = self.new_name("eventfd name")?;
                let init = self.num("initial value")?;
                let semaphore = match self.peek() {
                    Some("semaphore") => {
                        self.pos += 1;
                        true
                    }
                    _ => false,
                };
                Command::Eventfd {
                    name,
                    init,
                    semaphore,
                }
            }
            "socketpair" => {
                let a = self.new_name("first socket name")?;
                let b = self.new_name("second socket name")?;
                let ty = match self.next("stream|dgram|seqpacket")? {
                    "stream" => SockType::Stream,
                    "dgram" => SockType::Dgram,
                    "seqpacket" => SockType::SeqPacket,
                    w => return Err(word(w, "stream, dgram or seqpacket")),
                };
                Command::Socketpair { a, b, ty }
            }
            "timerfd" => Command::Timerfd {
                name: self.new_name("timerfd name")?,
            },
            "settime" => {
                let fd = self.fd("timerfd")?;
                let setting = match self.next("expired|disarm|every")? {
                    "expired" if self.peek() == Some("every") => {
                        self.pos += 1;
                        self.period(true)?
                    }
                    "expired" => TimerSetting::Expired,
                    "disarm" => TimerSetting::Disarm,
                    "every" => self.period(false)?,
                    w => return Err(word(w, "expired, disarm or every")),
                };
                Command::Settime { fd, setting }
            }
            "file" => Command::File {
                name: self.new_name("file name")?,
            },
            "null" => Command::DevNull {
                name: self.new_name("descriptor name")?,
            },
            "mkfifo" => Command::Mkfifo {
                fifo: self.new_name("FIFO name")?,
            },
            "open" => {
                let name = self.new_name("descriptor name")?;
                let fifo = self.next("FIFO name")?;
                if !is_name(fifo) {
                    return Err(ParseErrorKind::BadName(fifo.to_string()));
                }
                if !self.fifos.contains(fifo) {
                    return Err(ParseErrorKind::Unbound(fifo.to_string()));
                }
                let mode = match self.next("rdonly|wronly|rdwr")? {
                    "rdonly" => FifoMode::Read,
                    "wronly" => FifoMode::Write,
                    "rdwr" => FifoMode::ReadWrite,
                    w => return Err(word(w, "rdonly, wronly or rdwr")),
                };
                Command::OpenFifo {
                    name,
                    fifo: fifo.to_string(),
                    mode,
                }
            }
            "timer-read" => Command::TimerRead {
                fd: self.fd("timerfd")?,
            },
            "ctl" => {
                let epfd = self.fd("epoll descriptor")?;
                let opw = self.next("add|mod|del|op=N")?;
                let op = match opw {
                    "add" => 1,
                    "del" => 2,
                    "mod" => 3,
                    w => match w.strip_prefix("op=") {
                        Some(n) => number(n)?,
                        None => return Err(word(w, "add, mod, del or op=N")),
                    },
                };
                let target = self.fd("target descriptor")?;
                let event = match self.peek() {
                    Some("null") => {
                        self.pos += 1;
                        None
                    }
                    None if opw == "add" || opw == "mod" => {
                        return Err(ParseErrorKind::MissingArgument("EVENTS DATA or null"))
                    }
                    None => None,
                    Some(_) => {
                        let events = parse_events(self.next("events")?)?;
                        let data = self.num("data")?;
                        Some((events, data))
                    }
                };
                Command::Ctl {
                    epfd,
                    op,
                    target,
                    event,
                }
            }
            "wait" | "pwait" => {
                let epfd = self.fd("epoll descriptor")?;
                let maxevents = self.num("maxevents")?;
                let timeout_ms = self.num("timeout")?;
                let (buffer, sigsetsize) = self.wait_options(cmd == "pwait")?;
                let kind = if cmd == "wait" {
                    WaitKind::Wait { timeout_ms }
                } else {
                    WaitKind::Pwait {
                        timeout_ms,
                        sigsetsize,
                    }
                };
                Command::Wait(WaitCall {
                    epfd,
                    maxevents,
                    kind,
                    buffer,
                })
            }
            "pwait2" => {
                let epfd = self.fd("epoll descriptor")?;
                let maxevents = self.num("maxevents")?;
                let timeout = match self.next("SEC NSEC or null")? {
                    "null" => None,
                    w => {
                        let sec = number(w)?;
                        Some((sec, self.num("nanoseconds")?))
                    }
                };
                let (buffer, _) = self.wait_options(false)?;
                Command::Wait(WaitCall {
                    epfd,
                    maxevents,
                    kind: WaitKind::Pwait2 { timeout },
                    buffer,
                })
            }
            "poll" => Command::Poll {
                fd: self.fd("descriptor")?,
                timeout_ms: match self.peek() {
                    Some(_) => self.num("timeout")?,
                    None => 0,
                },
            },
            "write" => Command::Write {
                fd: self.fd("descriptor")?,
                len: self.io_len()?,
            },
            "read" => Command::Read {
                fd: self.fd("descriptor")?,
                len: self.io_len()?,
            },
            "efd-write" => Command::EfdWrite {
                fd: self.fd("eventfd")?,
                value: self.num("value")?,
            },
            "efd-read" => Command::EfdRead {
                fd: self.fd("eventfd")?,
            },
            "shutdown" => {
                let fd = self.fd("socket")?;
                let how = match self.next("rd|wr|rdwr")? {
                    "rd" => 0,
                    "wr" => 1,
                    "rdwr" => 2,
                    w => return Err(word(w, "rd, wr or rdwr")),
                };
                Command::Shutdown { fd, how }
            }
            "close" => Command::Close {
                fd: self.fd("descriptor")?,
            },
            "dup" => Command::Dup {
                fd: self.fd("descriptor")?,
                name: self.new_name("new name")?,
            },
            "dup2" => Command::Dup2 {
                fd: self.fd("descriptor")?,
                target: self.fd("target descriptor")?,
            },
            "dup3" => {
                let fd = self.fd("descriptor")?;
                let target = self.fd("target descriptor")?;
                let flags = self.flags(0o2000000)?;
                Command::Dup3 { fd, target, flags }
            }
            "dupfd" => Command::Dupfd {
                fd: self.fd("descriptor")?,
                min: self.num("lowest number")?,
                name: self.new_name("new name")?,
            },
            "close-range" => {
                let first = self.num("first number")?;
                let w = self.next("last number")?;
                let last: u32 = number(w)?;
                if last > 999 {
                    return Err(ParseErrorKind::BadNumber(
                        w.to_string(),
                        "0 to 999 (the scenario's own numbers)".into(),
                    ));
                }
                let flags = self.flags(4)? as u32;
                Command::CloseRange { first, last, flags }
            }
            "bg" => self.bg()?,
            "sleeping" => Command::Sleeping {
                thread: self.thread(true)?,
            },
            "settle" => Command::Settle,
            "join" => Command::Join {
                thread: self.thread(true)?,
            },
            "signal" => Command::Signal {
                thread: self.thread(true)?,
            },
            "sleep" => Command::Sleep {
                ms: self.num("milliseconds")?,
            },
            "epolls" | "eventfds" | "pipes" | "ctl-all" | "efd-write-all" => {
                self.bulk_command(cmd)?
            }
            "listen" | "connect" | "accept" | "tcp-listen" | "tcp-connect" | "udp"
            | "udp-connect" => Command::Socket(self.socket_command(cmd)?),
            w => return Err(ParseErrorKind::UnknownCommand(w.to_string())),
        };
        self.end()?;
        Ok(c)
    }
}

/// The transcript names of a set of bits, ascending, `|`-joined; `0` for none; bits without
/// a name (and `nval`, 0x20, which only `poll` reports) as in [`bit_names`].
///
/// ```
/// assert_eq!(eventpoll_conform::script::bit_names(0x2011), "in|hup|rdhup");
/// assert_eq!(eventpoll_conform::script::bit_names(0), "0");
/// assert_eq!(eventpoll_conform::script::bit_names(0x20 | 0x800), "nval|0x800");
/// ```
pub fn bit_names(bits: u32) -> String {
    if bits == 0 {
        return "0".to_string();
    }
    let mut parts = Vec::new();
    for i in 0..32 {
        let bit = 1u32 << i;
        if bits & bit == 0 {
            continue;
        }
        match EVENT_NAMES.iter().find(|(_, b)| *b == bit) {
            Some((name, _)) => parts.push((*name).to_string()),
            None if bit == 0x20 => parts.push("nval".to_string()),
            None => parts.push(format!("{bit:#x}")),
        }
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_threads() {
        let s = parse(
            "t.ep",
            "epoll e\nbg t wait e 8 -1\nsleeping t\nsignal t\njoin t\nbg t poll e 10\njoin t\nsleep 5\n",
        )
        .unwrap();
        assert!(matches!(
            &s.lines[1].command,
            Command::Bg { thread, call: BgCall::Wait(_) } if thread == "t"
        ));
        assert!(matches!(
            s.lines[5].command,
            Command::Bg {
                call: BgCall::Poll { timeout_ms: 10, .. },
                ..
            }
        ));
        assert_eq!(s.lines[7].command, Command::Sleep { ms: 5 });
        // A thread is named once while it runs, and only a running thread can be joined.
        for bad in [
            "epoll e\nbg t wait e 8 -1\nbg t wait e 8 -1\n",
            "epoll e\njoin t\n",
            "epoll e\nbg t wait e 8 -1\njoin t\nsleeping t\n",
            "epoll e\nbg t read e 1\n",
            "epoll e\nbg t poll e\n",
            "epoll e\nbg t select e 1 2\n",
            "bg t wait e 8 -1\n",
        ] {
            assert!(parse("b.ep", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bulk_commands() {
        let s = parse(
            "b.ep",
            "epoll e\neventfds c 3 1\npipes r w 2\nepolls x 2\nctl-all e add c*3 in 5\n\
             ctl-all x*2 add c*2 in 1\nctl-all e del w*2\nefd-write-all c*3 1\nclose c2\n",
        )
        .unwrap();
        assert_eq!(
            s.lines[1].command,
            Command::Objects {
                kind: BulkKind::Eventfds { init: 1 },
                prefix: "c".into(),
                write_prefix: None,
                count: 3
            }
        );
        assert_eq!(
            s.lines[4].command,
            Command::CtlAll {
                epfd: Many::One(FdRef::Name("e".into())),
                op: 1,
                target: Many::Bulk(Bulk {
                    prefix: "c".into(),
                    count: 3
                }),
                event: Some((1, 5))
            }
        );
        assert!(matches!(
            s.lines[6].command,
            Command::CtlAll { event: None, .. }
        ));
        for bad in [
            "eventfds c 0\n",
            "eventfds c 1901\n",
            "pipes r w 951\n",
            "eventfds c 1000\neventfds d 901\n",
            "epoll e\neventfds c 3\nctl-all e add c*4 in 1\n",
            "epoll e\neventfds c 3\nctl-all e add e in 1\n",
            "epolls x 2\neventfds c 3\nctl-all x*2 add c*3 in 1\n",
            "epoll e\neventfds c 3\nctl-all e add c*3\n",
            "epoll e\neventfds c 3\nctl-all e op=4 c*3 in 1\n",
            "eventfds c 3\nefd-write-all c 1\n",
            "eventfds C 3\n",
        ] {
            assert!(parse("b.ep", bad).is_err(), "{bad}");
        }
        assert!(parse("b.ep", "eventfds c 1000\npipes r w 450\n").is_ok());
    }

    #[test]
    fn fork_commands() {
        let s = parse(
            "f.ep",
            "epoll e\nfork p\n@p epoll f\n@p ctl f add e in 1\nexit p\nfork p\nclose f\n",
        )
        .unwrap();
        assert_eq!(
            s.lines[1].command,
            Command::Fork {
                process: "p".into()
            }
        );
        assert!(matches!(
            &s.lines[3].command,
            Command::InChild { process, command } if process == "p"
                && matches!(**command, Command::Ctl { op: 1, .. })
        ));
        assert_eq!(s.lines[3].text, "@p ctl f add e in 1");
        assert!(matches!(s.lines[4].command, Command::Exit { .. }));
        for bad in [
            "@p epoll e\n",
            "fork p\nfork p\n",
            "exit p\n",
            "fork p\nexit p\n@p epoll e\n",
            "fork p\n@p fork q\n",
            "fork p\n@p exit p\n",
            "fork p\n@p bg t wait e 1 -1\n",
            "fork p\n@p eventfds c 3\n",
            "fork p\n@p\n",
            "fork P\n",
            "fork p q\n",
        ] {
            assert!(parse("f.ep", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fifo_null_and_periodic_commands() {
        let s = parse(
            "f.ep",
            "mkfifo p\nopen r p rdonly\nopen x p rdwr\nnull n\ntimerfd t\n\
             settime t every 5\nsettime t expired every 3600000\ntimer-read t\npoll t 3000\n\
             poll t\nclose r\n",
        )
        .unwrap();
        assert_eq!(
            s.lines[2].command,
            Command::OpenFifo {
                name: "x".into(),
                fifo: "p".into(),
                mode: FifoMode::ReadWrite
            }
        );
        assert_eq!(
            s.lines[5].command,
            Command::Settime {
                fd: FdRef::Name("t".into()),
                setting: TimerSetting::Every {
                    interval_ms: 5,
                    at_once: false
                }
            }
        );
        assert!(matches!(
            s.lines[6].command,
            Command::Settime {
                setting: TimerSetting::Every {
                    interval_ms: 3_600_000,
                    at_once: true
                },
                ..
            }
        ));
        assert!(matches!(
            s.lines[8].command,
            Command::Poll {
                timeout_ms: 3000,
                ..
            }
        ));
        assert!(matches!(
            s.lines[9].command,
            Command::Poll { timeout_ms: 0, .. }
        ));
        // FIFO names are not descriptors, descriptors not FIFOs; periods are positive.
        for bad in [
            "open r p rdonly\n",
            "pipe r w\nopen x r rdonly\n",
            "mkfifo p\nclose p\n",
            "mkfifo p\nopen x p append\n",
            "timerfd t\nsettime t every 0\n",
            "timerfd t\nsettime t every\n",
            "timerfd t\nsettime t disarm every 5\n",
            "fork c\n@c mkfifo q\n",
            "timerfd t\nfork c\n@c poll t 5\n",
        ] {
            assert!(parse("b.ep", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn socket_commands_need_the_right_address() {
        let s = parse(
            "s.ep",
            "listen l seqpacket backlog=3\nconnect c l\naccept a l\ntcp-listen t\n\
             tcp-connect d t\nudp u\nudp v\nudp-connect u v\nlisten m stream\n",
        )
        .unwrap();
        assert_eq!(
            s.lines[0].command,
            Command::Socket(SocketCommand::Listen {
                name: "l".into(),
                ty: SockType::SeqPacket,
                backlog: 3
            })
        );
        assert_eq!(
            s.lines[8].command,
            Command::Socket(SocketCommand::Listen {
                name: "m".into(),
                ty: SockType::Stream,
                backlog: DEFAULT_BACKLOG
            })
        );
        assert!(!s.lines[..3]
            .iter()
            .any(|l| matches!(&l.command, Command::Socket(c) if c.is_inet())));
        assert!(s.needs_inet());
        assert!(parse("c.ep", "fork p\n@p udp u\nexit p\n")
            .unwrap()
            .needs_inet());
        assert!(!parse("u.ep", "listen l stream\nconnect c l\n")
            .unwrap()
            .needs_inet());
        for (bad, needle) in [
            (
                "tcp-listen t\nconnect c t\n",
                "expected a name bound by `listen`",
            ),
            ("listen l stream\ntcp-connect c l\n", "by `tcp-listen`"),
            ("listen l stream\nudp u\nudp-connect u l\n", "by `udp`"),
            ("listen l stream\npipe l w\nconnect c l\n", "by `listen`"),
            ("connect c nowhere\n", "was never created"),
            ("listen l dgram\n", "expected stream or seqpacket"),
            ("listen l stream backlog=x\n", "bad number"),
            ("listen l stream depth=2\n", "extra argument"),
        ] {
            let m = parse("b.ep", bad).unwrap_err().to_string();
            assert!(m.contains(needle), "{bad}: {m}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int("0x2011"), Some(0x2011));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("12a"), None);
        assert_eq!(parse_int("0x"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("-"), None);
        assert_eq!(number::<u64>("18446744073709551615"), Ok(u64::MAX));
        assert!(number::<u64>("18446744073709551616").is_err());
        assert!(number::<i32>("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn events() {
        assert_eq!(parse_events("in|et"), Ok(0x8000_0001));
        assert_eq!(parse_events("0x2011"), Ok(0x2011));
        assert_eq!(parse_events("in|0x100"), Ok(0x101));
        assert_eq!(parse_events("0"), Ok(0));
        assert!(matches!(
            parse_events("in|bogus"),
            Err(ParseErrorKind::BadWord(..))
        ));
        assert!(matches!(
            parse_events("in||out"),
            Err(ParseErrorKind::BadWord(..))
        ));
    }

    #[test]
    fn names() {
        assert!(is_name("r2"));
        assert!(is_name("a_b"));
        assert!(!is_name("2r"));
        assert!(!is_name("R"));
        assert!(!is_name(""));
        assert!(!is_name("a-b"));
    }

    #[test]
    fn text_is_normalised() {
        let s = parse(
            "x.ep",
            "  epoll   e\t # c\npipe r w\nctl e add r in|rdhup   0x10\n",
        )
        .unwrap();
        assert_eq!(s.lines[0].text, "epoll e");
        assert_eq!(s.lines[2].text, "ctl e add r in|rdhup 0x10");
        assert_eq!(s.name, "x.ep");
        assert_eq!(s.lines[2].lineno, 3);
    }

    #[test]
    fn all_commands_parse() {
        let src = "epoll e\nepoll f size=1\nepoll g flags=0x80000\npipe r w\nsetpipesz r 4096\n\
            eventfd c 0 semaphore\nsocketpair a b seqpacket\ntimerfd t\nsettime t expired\n\
            settime t disarm\nfile x\nctl e add r in|et 1\nctl e mod r null\nctl e del r\n\
            ctl e op=7 r 1 2\nwait e 8 0\nwait e 8 0 buf=null\npwait e 1 0 sigsetsize=7\n\
            pwait2 e 8 null\npwait2 e 8 0 -1 buf=null\npoll fd:-1\nwrite w 10\nread r 10\n\
            efd-write c 0xffffffffffffffff\nefd-read c\nshutdown a rdwr\nclose fd:4000\n\
            dup r r2\ndup2 r w\n";
        let s = parse("all.ep", src).unwrap();
        assert_eq!(s.lines.len(), src.lines().count());
        assert_eq!(
            s.lines[14].command,
            Command::Ctl {
                epfd: FdRef::Name("e".into()),
                op: 7,
                target: FdRef::Name("r".into()),
                event: Some((1, 2))
            }
        );
        assert_eq!(
            s.lines[19].command,
            Command::Wait(WaitCall {
                epfd: FdRef::Name("e".into()),
                maxevents: 8,
                kind: WaitKind::Pwait2 {
                    timeout: Some((0, -1))
                },
                buffer: Buffer::Null
            })
        );
    }

    #[test]
    fn error_kinds() {
        let kind = |src: &str| parse("t.ep", src).unwrap_err().kind;
        assert!(matches!(kind("bogus"), ParseErrorKind::UnknownCommand(_)));
        assert!(matches!(kind("pipe R w"), ParseErrorKind::BadName(_)));
        assert!(matches!(kind("close nothere"), ParseErrorKind::Unbound(_)));
        assert!(matches!(kind("eventfd c x"), ParseErrorKind::BadNumber(..)));
        assert!(matches!(
            kind("eventfd c -1"),
            ParseErrorKind::BadNumber(..)
        ));
        assert!(matches!(kind("pipe r"), ParseErrorKind::MissingArgument(_)));
        assert!(matches!(
            kind("epoll e\nctl e add e"),
            ParseErrorKind::MissingArgument(_)
        ));
        assert!(matches!(
            kind("pipe r w x"),
            ParseErrorKind::ExtraArgument(_)
        ));
        assert!(matches!(
            kind("epoll e size=1 flags=0"),
            ParseErrorKind::ExtraArgument(_)
        ));
        assert!(matches!(
            kind("epoll e\nwait e 1 0 buf=x"),
            ParseErrorKind::BadWord(..)
        ));
        assert!(matches!(
            kind("pipe r w\nwrite w 99999999999"),
            ParseErrorKind::BadNumber(..)
        ));
    }

    #[test]
    fn error_messages_say_what_was_expected() {
        let msg = |src: &str| parse("t.ep", src).unwrap_err().to_string();
        let m = msg("epoll e\npipe r w\nctl e add r in|bogus 1");
        assert!(
            m.starts_with("t.ep:3: bad word `bogus`: expected event names (in pri out"),
            "{m}"
        );
        assert!(m.contains("et) or numbers, joined by |"), "{m}");
        let m = msg("epoll e\nclose zz");
        assert!(m.starts_with("t.ep:2: `zz` was never created"), "{m}");
        let m = msg("pipe r w\nwrite w 16777217");
        assert_eq!(
            m,
            "t.ep:2: bad number `16777217`: read and write counts are at most 16777216 (16 MiB)"
        );
        let m = msg("epoll e\nwait e 8 99999999999");
        assert!(
            m.ends_with("must be from -2,147,483,648 to 2,147,483,647 (decimal or 0x hexadecimal)"),
            "{m}"
        );
        let m = msg("socketpair a b raw");
        assert!(
            m.ends_with("bad word `raw`: expected stream, dgram or seqpacket"),
            "{m}"
        );
        let m = msg("frobnicate x");
        assert!(
            m.contains("unknown command `frobnicate`: expected one of epoll, pipe,"),
            "{m}"
        );
        let m = msg("pipe R w");
        assert!(
            m.contains("bad name `R` (a NAME is a lower-case letter"),
            "{m}"
        );
    }

    #[test]
    fn name_header_only_before_commands() {
        let s = parse(
            "d/y.ep",
            "# a comment\n# name: hello world \nepoll e\n# name: late\n",
        )
        .unwrap();
        assert_eq!(s.name, "hello world");
        let s = parse("d/y.ep", "epoll e\n# name: late\n").unwrap();
        assert_eq!(s.name, "y.ep");
    }
}
