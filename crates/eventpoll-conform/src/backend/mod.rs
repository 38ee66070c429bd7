//! Backends: the things a scenario runs against. Each implements [`Backend`], a small set of
//! Linux-shaped calls on *scenario descriptor numbers* (0, 1, 2, ... allocated lowest-free,
//! the same way in every backend); each backend maps them to its own descriptors. The runner
//! (see [`crate::run`]) turns commands into these calls and their results into transcript
//! lines, so a new backend (the C ABI over real descriptors, say) only implements this trait
//! and registers itself in [`ALL`]: no scenario changes.
//!
//! Errors are raw Linux errno values ([`Errno`]), whatever the backend's own error type, so
//! transcripts name them the same way.

pub mod capi;
pub mod engine;
pub mod kernel;
mod real;
pub mod sim;
pub mod threads;

use crate::script::{Buffer, FifoMode, SockType, TimerSetting, WaitKind};
use std::fmt;
use threads::{BlockingCall, Worker};

/// A raw Linux errno value (`EBADF` = 9, ...), printed by name in transcripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The symbolic name (`"EBADF"`), or `errno N` for a number without one here.
    ///
    /// ```
    /// use eventpoll_conform::backend::Errno;
    /// assert_eq!(Errno(libc::ELOOP).name(), "ELOOP");
    /// ```
    pub fn name(self) -> String {
        const NAMES: &[(i32, &str)] = &[
            (libc::EPERM, "EPERM"),
            (libc::ENOENT, "ENOENT"),
            (libc::ESRCH, "ESRCH"),
            (libc::EINTR, "EINTR"),
            (libc::EIO, "EIO"),
            (libc::ENXIO, "ENXIO"),
            (libc::E2BIG, "E2BIG"),
            (libc::EBADF, "EBADF"),
            (libc::EAGAIN, "EAGAIN"),
            (libc::ENOMEM, "ENOMEM"),
            (libc::EACCES, "EACCES"),
            (libc::EFAULT, "EFAULT"),
            (libc::EBUSY, "EBUSY"),
            (libc::EEXIST, "EEXIST"),
            (libc::ENODEV, "ENODEV"),
            (libc::ENOTDIR, "ENOTDIR"),
            (libc::EISDIR, "EISDIR"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENFILE, "ENFILE"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENOTTY, "ENOTTY"),
            (libc::EFBIG, "EFBIG"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::ESPIPE, "ESPIPE"),
            (libc::EPIPE, "EPIPE"),
            (libc::ERANGE, "ERANGE"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::ELOOP, "ELOOP"),
            (libc::ENOTSOCK, "ENOTSOCK"),
            (libc::EDESTADDRREQ, "EDESTADDRREQ"),
            (libc::EMSGSIZE, "EMSGSIZE"),
            (libc::EPROTOTYPE, "EPROTOTYPE"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::ECONNRESET, "ECONNRESET"),
            (libc::ENOBUFS, "ENOBUFS"),
            (libc::EISCONN, "EISCONN"),
            (libc::ENOTCONN, "ENOTCONN"),
            (libc::ESHUTDOWN, "ESHUTDOWN"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
            (libc::ECONNREFUSED, "ECONNREFUSED"),
            (libc::EADDRINUSE, "EADDRINUSE"),
            (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
            (libc::EALREADY, "EALREADY"),
            (libc::EINPROGRESS, "EINPROGRESS"),
            (libc::ENETUNREACH, "ENETUNREACH"),
        ];
        NAMES
            .iter()
            .find(|(n, _)| *n == self.0)
            .map_or_else(|| format!("errno {}", self.0), |(_, s)| (*s).to_string())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The address of a listener or UDP socket a backend made (`listen`, `tcp-listen`, `udp`):
/// an index into the backend's own list of addresses, which outlive their sockets (so that
/// connecting after a close is refused, as on Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address(pub usize);

/// A TCP or UDP call on loopback (see [`Backend::inet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InetCall {
    /// `tcp-listen`: socket, bind to 127.0.0.1 port 0, listen.
    TcpListen {
        /// `listen`'s backlog.
        backlog: i32,
    },
    /// `tcp-connect`: a new non-blocking socket connected to a `tcp-listen` address.
    TcpConnect {
        /// The listener's address.
        addr: Address,
    },
    /// `udp`: socket, bind to 127.0.0.1 port 0.
    Udp,
    /// `udp-connect`: `connect(fd, addr)`.
    UdpConnect {
        /// The socket (a scenario number).
        fd: i32,
        /// The `udp` address.
        addr: Address,
    },
}

/// What an [`InetCall`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InetDone {
    /// A bound socket (`tcp-listen`, `udp`) and its address.
    Bound(i32, Address),
    /// A connecting socket (`tcp-connect`) and what `connect` said (`EINPROGRESS`, or `None`
    /// for 0); the backend returns once the connection is established or has failed.
    Connecting(i32, Option<Errno>),
    /// Done (`udp-connect`).
    Done,
}

/// The result of a backend call.
pub type SysResult<T> = Result<T, Errno>;

/// One event as `epoll_wait` returns it: `(events, data)`.
pub type Event = (u32, u64);

/// What [`Backend::fork`] did.
pub enum Forked {
    /// The backend forked the process (`fork(2)`): this is the parent, and the child with
    /// this pid goes on with a copy of everything (kernel, capi).
    Parent(libc::pid_t),
    /// The backend forked the process, and this is the child.
    Child,
    /// A child in this process: its own backend (engine: [`eventpoll::FdTable::fork`]).
    Local(Box<dyn Backend>),
    /// The call failed (nothing forked).
    Failed(Errno),
}

/// The operations every backend offers, on scenario descriptor numbers. Negative numbers are
/// passed through unchanged (they are invalid everywhere); non-negative numbers that are not
/// open behave as closed descriptors.
///
/// Creating calls allocate the lowest free scenario number(s), like Linux: pairs take the
/// lowest, then the next lowest.
pub trait Backend {
    /// The backend's name (`kernel`, `engine`, ...).
    fn name(&self) -> &'static str;
    /// `epoll_create(size)`.
    fn epoll_create(&mut self, size: i32) -> SysResult<i32>;
    /// `epoll_create1(flags)`.
    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32>;
    /// `pipe2(O_NONBLOCK)`: (read end, write end).
    fn pipe(&mut self) -> SysResult<(i32, i32)>;
    /// `fcntl(fd, F_SETPIPE_SZ, size)`: the new capacity.
    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32>;
    /// `eventfd(init, EFD_NONBLOCK [| EFD_SEMAPHORE])`.
    fn eventfd(&mut self, init: u32, semaphore: bool) -> SysResult<i32>;
    /// `socketpair(AF_UNIX, ty | SOCK_NONBLOCK, 0)`.
    fn socketpair(&mut self, ty: SockType) -> SysResult<(i32, i32)>;
    /// `timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)`.
    fn timerfd(&mut self) -> SysResult<i32>;
    /// `timerfd_settime`: fire at once (absolute expiry in the past), disarm, or arm a
    /// periodic timer. When this returns `Ok` for [`TimerSetting::Expired`] or an `at_once`
    /// [`TimerSetting::Every`], the first expiry has happened (its wakeup has been
    /// delivered).
    fn settime(&mut self, fd: i32, setting: TimerSetting) -> SysResult<()>;
    /// A regular file (not pollable).
    fn regular_file(&mut self) -> SysResult<i32>;
    /// `open("/dev/null", O_RDWR | O_NONBLOCK)` (not pollable).
    fn dev_null(&mut self) -> SysResult<i32>;
    /// `mkfifo(2)` at a path private to this backend run, one per FIFO `name` (a name made
    /// twice is `EEXIST`, as the same path would be).
    fn mkfifo(&mut self, name: &str) -> SysResult<()>;
    /// `open(2)` of FIFO `name` with `mode | O_NONBLOCK`.
    fn open_fifo(&mut self, name: &str, mode: FifoMode) -> SysResult<i32>;
    /// `epoll_ctl(epfd, op, fd, event)`; `None` is a NULL pointer.
    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()>;
    /// `epoll_wait`, `epoll_pwait` or `epoll_pwait2` with `maxevents` passed unchanged. The
    /// buffer has [`wait_buffer_len`] entries, or is NULL (`buf=null`) or has N writable entries before an unmapped page (`buf=N`).
    fn epoll_wait(
        &mut self,
        epfd: i32,
        maxevents: i32,
        kind: WaitKind,
        buffer: Buffer,
    ) -> SysResult<Vec<Event>>;
    /// `poll()` on one descriptor with these requested bits and timeout 0: its `revents`.
    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16>;
    /// `write(2)`.
    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize>;
    /// `read(2)`.
    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize>;
    /// `shutdown(2)`.
    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()>;
    /// `close(2)`.
    fn close(&mut self, fd: i32) -> SysResult<()>;
    /// `dup(2)` (lowest free scenario number).
    fn dup(&mut self, fd: i32) -> SysResult<i32>;
    /// `dup2(2)`.
    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32>;
    /// `dup3(2)`.
    fn dup3(&mut self, fd: i32, target: i32, flags: i32) -> SysResult<i32>;
    /// `fcntl(fd, F_DUPFD, min)`, `min` a scenario number (negative passed unchanged).
    fn dupfd(&mut self, fd: i32, min: i32) -> SysResult<i32>;
    /// `close_range(2)` over scenario numbers `first` to `last` (at most 999).
    fn close_range(&mut self, first: u32, last: u32, flags: u32) -> SysResult<()>;
    /// `listen L TYPE [backlog=N]`: a non-blocking unix socket of type `ty` (stream or
    /// seqpacket) bound to a fresh abstract address and listening.
    fn unix_listen(&mut self, ty: SockType, backlog: i32) -> SysResult<(i32, Address)>;
    /// `connect C L`: a new non-blocking unix socket (of the listener's type) connected to
    /// `addr`; nothing is left open when the connection fails.
    fn unix_connect(&mut self, addr: Address) -> SysResult<i32>;
    /// `accept4(fd, NULL, NULL, SOCK_NONBLOCK)`.
    fn accept(&mut self, fd: i32) -> SysResult<i32>;
    /// TCP and UDP on loopback. Backends without inet sockets (the engine) keep this
    /// default, which panics saying so; comparisons never run a scenario that needs them
    /// on such a backend ([`BackendKind::inet`], [`crate::script::Script::needs_inet`]).
    fn inet(&mut self, call: InetCall) -> SysResult<InetDone> {
        panic!(
            "the {} backend has no TCP or UDP sockets ({call:?}): scenarios using them are \
             compared between the kernel and the C ABI only",
            self.name()
        )
    }
    /// Start `call` on a background thread of its own (`bg T CALL`): the call sees the
    /// backend's descriptors as the foreground commands do, while they go on.
    fn spawn(&mut self, call: BlockingCall) -> Worker;
    /// `bg T CALL`: as [`Backend::spawn`], for the background thread the scenario names
    /// `thread`. A backend of OS threads runs it on the thread `thread`'s last call ran on
    /// ([`threads::OsThreads`]); the default is a new thread each time.
    fn spawn_named(&mut self, thread: &str, call: BlockingCall) -> Worker {
        let _ = thread;
        self.spawn(call)
    }
    /// `fork(2)` (`fork P`): see [`Forked`]. The default cannot fork (`ENOSYS`).
    fn fork(&mut self) -> Forked {
        Forked::Failed(Errno(libc::ENOSYS))
    }
    /// `sleep MS`: let `d` pass. The default sleeps in real time; a simulated backend moves
    /// its clock.
    fn sleep(&mut self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
    /// Before `settle` looks at the background calls: let them run until none can make
    /// progress without the script. The default does nothing (real threads run by
    /// themselves; `settle` watches them until two passes agree).
    fn settle(&mut self) {}
    /// Called instead of dropping the backend when a scenario panicked inside it. The
    /// default leaks the backend: its state may be inconsistent, and dropping it could
    /// panic again while unwinding. Backends that hold process-wide resources release them.
    fn abandon(self: Box<Self>) {
        std::mem::forget(self);
    }
}

/// The events buffer a wait call gets: `min(maxevents, 1024)` entries and at least one (so
/// that `maxevents <= 0` still reaches the callee's `EINVAL` check), but never fewer than
/// `items + 1` when `maxevents` asks for more, where `items` bounds how many interest items
/// could be reported (the successful `EPOLL_CTL_ADD`s so far): the callee can therefore never
/// write past the buffer.
pub fn wait_buffer_len(maxevents: i32, items: usize) -> usize {
    let max = usize::try_from(maxevents).unwrap_or(0);
    max.clamp(1, 1024).max(max.min(items + 1))
}

/// A registered backend: its name and how to make a fresh one (one per scenario run).
#[derive(Clone, Copy)]
pub struct BackendKind {
    /// The name used on the command line and in diffs.
    pub name: &'static str,
    /// A fresh backend with an empty descriptor range.
    pub create: fn() -> Box<dyn Backend>,
    /// Whether it runs TCP and UDP scenarios ([`Backend::inet`]).
    pub inet: bool,
}

impl BackendKind {
    /// Whether this backend runs `script` (a backend without inet sockets does not run a
    /// script that needs them).
    pub fn runs(&self, script: &crate::script::Script) -> bool {
        self.inet || !script.needs_inet()
    }
}

/// Every backend, the oracle (`kernel`) first.
pub const ALL: &[BackendKind] = &[
    BackendKind {
        name: "kernel",
        create: kernel::create,
        inet: true,
    },
    BackendKind {
        name: "engine",
        create: engine::create,
        inet: false,
    },
    BackendKind {
        name: "capi",
        create: capi::create,
        inet: true,
    },
    BackendKind {
        name: "sim",
        create: sim::create,
        inet: false,
    },
];

/// Whether the C ABI backend was asked for: `EVENTPOLL_CONFORM_CAPI` set to anything but
/// empty or `0`.
pub fn capi_requested() -> bool {
    std::env::var_os("EVENTPOLL_CONFORM_CAPI").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether a backend takes part in comparisons here. `kernel` and `engine` always; `capi`
/// (which needs `libeventpoll.so`, see [`capi`]) when [`capi_requested`] — and then even
/// without the library, so that its absence fails loudly (its runs end in a `panic:` line
/// saying where the library was looked for) instead of passing unchecked. The command line
/// checks with [`comparison_problem`] before running.
pub fn available(kind: &BackendKind) -> bool {
    kind.name != "capi" || capi_requested()
}

/// Why the backends asked for cannot all be compared (the capi backend requested but its
/// library missing), or `None`.
pub fn comparison_problem() -> Option<String> {
    if capi_requested() {
        capi::problem().map(|p| format!("EVENTPOLL_CONFORM_CAPI is set, but {p}"))
    } else {
        None
    }
}

/// The names of the backends a comparison runs, oracle first.
pub fn compared_names() -> Vec<&'static str> {
    ALL.iter()
        .filter(|k| available(k))
        .map(|k| k.name)
        .collect()
}

/// The backend named `name`.
pub fn by_name(name: &str) -> Option<&'static BackendKind> {
    ALL.iter().find(|b| b.name == name)
}

/// A scriptable in-memory backend for the runner's own tests: every call succeeds with a
/// fixed result, except that it panics or fails where its `quirk` says.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// What the fake does differently from a perfectly boring backend.
    #[derive(Clone, Copy)]
    pub enum Quirk {
        /// Nothing.
        None,
        /// `write` of exactly 3 bytes fails with EPIPE once a pipe exists.
        WriteThreeAfterPipe,
        /// `epoll_create1` panics.
        PanicOnEpoll,
    }

    pub struct Fake {
        quirk: Quirk,
        next: i32,
        piped: bool,
    }

    impl Fake {
        pub fn boxed(quirk: Quirk) -> Box<dyn Backend> {
            Box::new(Fake {
                quirk,
                next: 0,
                piped: false,
            })
        }
        fn new_fd(&mut self) -> i32 {
            self.next += 1;
            self.next - 1
        }
    }

    impl Backend for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn epoll_create(&mut self, _: i32) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn epoll_create1(&mut self, _: i32) -> SysResult<i32> {
            if let Quirk::PanicOnEpoll = self.quirk {
                panic!("fake backend: epoll_create1 is broken");
            }
            Ok(self.new_fd())
        }
        fn pipe(&mut self) -> SysResult<(i32, i32)> {
            self.piped = true;
            Ok((self.new_fd(), self.new_fd()))
        }
        fn set_pipe_size(&mut self, _: i32, size: i32) -> SysResult<i32> {
            Ok(size)
        }
        fn eventfd(&mut self, _: u32, _: bool) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn socketpair(&mut self, _: SockType) -> SysResult<(i32, i32)> {
            Ok((self.new_fd(), self.new_fd()))
        }
        fn timerfd(&mut self) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn settime(&mut self, _: i32, _: TimerSetting) -> SysResult<()> {
            Ok(())
        }
        fn regular_file(&mut self) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn dev_null(&mut self) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn mkfifo(&mut self, _: &str) -> SysResult<()> {
            Ok(())
        }
        fn open_fifo(&mut self, _: &str, _: FifoMode) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn epoll_ctl(&mut self, _: i32, _: i32, _: i32, _: Option<Event>) -> SysResult<()> {
            Ok(())
        }
        fn epoll_wait(&mut self, _: i32, _: i32, _: WaitKind, _: Buffer) -> SysResult<Vec<Event>> {
            Ok(vec![(1, 7)])
        }
        fn poll(&mut self, _: i32, _: i16) -> SysResult<i16> {
            Ok(4)
        }
        fn write(&mut self, _: i32, data: &[u8]) -> SysResult<usize> {
            match self.quirk {
                Quirk::WriteThreeAfterPipe if self.piped && data.len() == 3 => {
                    Err(Errno(libc::EPIPE))
                }
                _ => Ok(data.len()),
            }
        }
        fn read(&mut self, _: i32, buf: &mut [u8]) -> SysResult<usize> {
            Ok(buf.len())
        }
        fn shutdown(&mut self, _: i32, _: i32) -> SysResult<()> {
            Ok(())
        }
        fn close(&mut self, _: i32) -> SysResult<()> {
            Ok(())
        }
        fn dup(&mut self, _: i32) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn dup2(&mut self, _: i32, t: i32) -> SysResult<i32> {
            Ok(t)
        }
        fn dup3(&mut self, _: i32, t: i32, _: i32) -> SysResult<i32> {
            Ok(t)
        }
        fn dupfd(&mut self, _: i32, _: i32) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn close_range(&mut self, _: u32, _: u32, _: u32) -> SysResult<()> {
            Ok(())
        }
        fn unix_listen(&mut self, _: SockType, _: i32) -> SysResult<(i32, Address)> {
            Ok((self.new_fd(), Address(0)))
        }
        fn unix_connect(&mut self, _: Address) -> SysResult<i32> {
            Ok(self.new_fd())
        }
        fn accept(&mut self, _: i32) -> SysResult<i32> {
            Err(Errno(libc::EAGAIN))
        }
        fn spawn(&mut self, _: BlockingCall) -> Worker {
            Worker::spawn_os(None, || threads::Outcome::Events(Ok(vec![(1, 7)])))
        }
    }

    /// A boring oracle and a quirky second backend.
    pub fn pair(quirk: fn() -> Box<dyn Backend>) -> [BackendKind; 2] {
        [
            BackendKind {
                name: "good",
                create: || Fake::boxed(Quirk::None),
                inet: false,
            },
            BackendKind {
                name: "quirky",
                create: quirk,
                inet: false,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_len() {
        assert_eq!(wait_buffer_len(8, 0), 8);
        assert_eq!(wait_buffer_len(0, 0), 1);
        assert_eq!(wait_buffer_len(-5, 100), 1);
        assert_eq!(wait_buffer_len(i32::MAX, 0), 1024);
        assert_eq!(wait_buffer_len(i32::MAX, 5000), 5001);
        assert_eq!(wait_buffer_len(2000, 5000), 2000);
    }

    #[test]
    fn errno_names() {
        assert_eq!(Errno(9).name(), "EBADF");
        assert_eq!(Errno(4095).name(), "errno 4095");
    }
}
