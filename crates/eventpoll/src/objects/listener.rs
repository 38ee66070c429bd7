//! Listening unix sockets (`socket(AF_UNIX, SOCK_STREAM | SOCK_SEQPACKET)`, `bind`,
//! `listen`) with `connect` and `accept`, modelled on Linux 6.18 `net/unix/af_unix.c`
//! (`unix_listen`, `unix_stream_connect`, `unix_accept`, `unix_release_sock`) and checked
//! against the kernel on this machine (scenarios in `scenarios/socket/listen-*.ep`).
//!
//! A `connect` creates a connected pair at once: the client's end, returned, and an
//! *embryo*, the server's end, queued on the listener until `accept` hands it out. The
//! client is connected and writable from the start; what it writes waits in the embryo.
//!
//! - **Poll mask** of a listener (`unix_poll`/`unix_dgram_poll` in the listening state):
//!   `IN|RDNORM` while its queue is not empty; `RDHUP|IN|RDNORM` once shut down for reading,
//!   `HUP` too when shut down both ways; never `OUT` (`unix_writable` is false while
//!   listening) and never `ERR`.
//! - **Backlog**: a connect finds the queue full when it already holds *more* than
//!   `backlog` embryos (`unix_recvq_full`): `listen(N)` admits `N + 1` pending connections
//!   (`listen(0)` admits one); the next non-blocking connect is `EAGAIN`. A backlog above
//!   `net.core.somaxconn` (4096) or negative is `somaxconn`.
//! - **Wakeups**: each connect wakes the listener with `IN|PRI|RDNORM|RDBAND`
//!   (`sk_data_ready`); `accept` wakes nothing; `shutdown` wakes the listener's queue, all
//!   entries, key 0 (`sk_state_change`).
//! - **Refusals**: a connect to a listener that was closed, or shut down for reading, is
//!   `ECONNREFUSED` (before the backlog check).
//! - **Close** of a listener releases every embryo still queued: each client is shut down
//!   both ways and gets `ECONNRESET` — whether or not it had written anything — and is woken
//!   (key 0), then the data it had written is freed (write-space wakeups), as when a peer
//!   closes with unread data (see [`super::socket`]).
//! - **I/O on a listener**: `write` is `ENOTCONN`; `read` is `EINVAL` (stream) or
//!   `ENOTCONN` (seqpacket); a 0-byte read returns 0. `accept` on a socket that is not
//!   listening is `EINVAL` (`EOPNOTSUPP` for a datagram socket, `ENOTSOCK` for a file that is
//!   not a socket).
//!
//! Addresses: each listener gets a fresh address of its own (as `bind` to a fresh abstract
//! name would); a [`UnixAddress`] names it and outlives the listener, so that connecting
//! after the close is refused as on Linux.
//!
//! ```
//! use eventpoll::{FdTable, objects::socket::SocketType, linux::O_NONBLOCK};
//! let t = FdTable::new();
//! let (l, addr) = t.unix_listen(SocketType::Stream, 0, O_NONBLOCK).unwrap();
//! let c = t.unix_connect(&addr, O_NONBLOCK).unwrap();
//! // The second connection does not fit a backlog of 0 (one pending connection).
//! assert_eq!(t.unix_connect(&addr, O_NONBLOCK), Err(eventpoll::Errno::EAGAIN));
//! let a = t.accept4(l, O_NONBLOCK).unwrap();
//! assert_eq!(t.write(c, b"hi"), Ok(2));
//! let mut buf = [0u8; 4];
//! assert_eq!(t.read(a, &mut buf), Ok(2));
//! t.close(l).unwrap();
//! assert_eq!(t.unix_connect(&addr, O_NONBLOCK), Err(eventpoll::Errno::ECONNREFUSED));
//! ```

use super::socket::{connected_ends, SocketType, UnixSocket, SHUT_RD, SHUT_RDWR};
use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::sync::{lock, Arc, Mutex};
use crate::table::FdTable;
use crate::wait_queue::{Exclusivity, WaitQueue};
use alloc::collections::VecDeque;
use alloc::sync::Weak;

/// `net.core.somaxconn` on the reference machine: the largest backlog `listen` keeps.
pub const SOMAXCONN: usize = 4096;

const RCV_SHUTDOWN: u8 = 1;
const SHUTDOWN_MASK: u8 = 3;

/// What `sk_data_ready` wakes a listener with.
const READABLE_KEY: Events = Events::IN
    .union(Events::PRI)
    .union(Events::RDNORM)
    .union(Events::RDBAND);

struct ListenState {
    /// `sk_max_ack_backlog`.
    backlog: usize,
    /// Embryos not accepted yet, oldest first.
    queue: VecDeque<Arc<UnixSocket>>,
    /// `sk_shutdown`.
    shutdown: u8,
    /// Closed: its address refuses connections.
    released: bool,
}

/// A listening unix socket. See the [module documentation](self).
pub struct UnixListener {
    ty: SocketType,
    state: Mutex<ListenState>,
    wq: WaitQueue,
}

impl core::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnixListener")
            .field("type", &self.ty)
            .finish()
    }
}

/// The address a listener was bound to; connecting to it after the listener was closed is
/// refused.
#[derive(Clone, Debug)]
pub struct UnixAddress {
    listener: Weak<UnixListener>,
    ty: SocketType,
}

/// A listener of type `ty` (stream or seqpacket; datagram sockets cannot listen:
/// `EOPNOTSUPP`) with this `backlog`, bound to a fresh address; `flags` may hold
/// `O_NONBLOCK`.
pub fn listen(ty: SocketType, backlog: i32, flags: i32) -> Result<(File, UnixAddress)> {
    if ty == SocketType::Dgram {
        return Err(Errno::EOPNOTSUPP);
    }
    // `listen` compares the backlog as unsigned: negative values are huge.
    let backlog = (backlog as u32 as usize).min(SOMAXCONN);
    let l = Arc::new(UnixListener {
        ty,
        state: Mutex::new(ListenState {
            backlog,
            queue: VecDeque::new(),
            shutdown: 0,
            released: false,
        }),
        wq: WaitQueue::new(),
    });
    let addr = UnixAddress {
        listener: Arc::downgrade(&l),
        ty,
    };
    Ok((File::with_flags(l, flags & O_NONBLOCK), addr))
}

impl UnixAddress {
    /// The type of socket that listens (and connects) here.
    pub fn socket_type(&self) -> SocketType {
        self.ty
    }

    /// `connect` a new socket (description flags `flags`: `O_NONBLOCK`) to this address:
    /// the client's end, its embryo queued on the listener.
    pub fn connect(&self, flags: i32) -> Result<File> {
        let l = self.listener.upgrade().ok_or(Errno::ECONNREFUSED)?;
        let client = {
            let mut st = lock(&l.state);
            if st.released || st.shutdown & RCV_SHUTDOWN != 0 {
                return Err(Errno::ECONNREFUSED);
            }
            if st.queue.len() > st.backlog {
                // Every connection here is non-blocking: a blocking one would wait.
                return Err(Errno::EAGAIN);
            }
            let (client, embryo) = connected_ends(l.ty);
            st.queue.push_back(embryo);
            client
        };
        l.wq.wake(READABLE_KEY);
        Ok(File::with_flags(client, flags & O_NONBLOCK))
    }
}

impl UnixListener {
    /// The listener's socket type.
    pub fn socket_type(&self) -> SocketType {
        self.ty
    }

    /// Connections waiting to be accepted.
    pub fn pending(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// `accept`: the oldest embryo, or `EAGAIN` (non-blocking) / a wait until one comes.
    fn accept(&self, nonblock: bool) -> Result<Arc<UnixSocket>> {
        let take = || lock(&self.state).queue.pop_front();
        if nonblock {
            return take().ok_or(Errno::EAGAIN);
        }
        self.wq.block_until(Exclusivity::Exclusive, None, take)
    }

    /// Put an embryo back at the head of the queue (its descriptor could not be made).
    fn requeue(&self, embryo: Arc<UnixSocket>) {
        lock(&self.state).queue.push_front(embryo);
    }

    /// `shutdown(how)` of a listener: only its own state (it has no peer).
    pub fn shutdown(&self, how: i32) -> Result<()> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(Errno::EINVAL);
        }
        lock(&self.state).shutdown |= (how + 1) as u8;
        self.wq.wake_all(Events::empty());
        Ok(())
    }
}

impl FileOps for UnixListener {
    fn poll(&self) -> Events {
        let st = lock(&self.state);
        let mut mask = Events::empty();
        if st.shutdown == SHUTDOWN_MASK {
            mask |= Events::HUP;
        }
        if st.shutdown & RCV_SHUTDOWN != 0 {
            mask |= Events::RDHUP | Events::IN | Events::RDNORM;
        }
        if !st.queue.is_empty() {
            mask |= Events::IN | Events::RDNORM;
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.wq)
    }
    fn read(&self, buf: &mut [u8], _mode: IoMode) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0); // sock_read_iter
        }
        match self.ty {
            SocketType::Stream => Err(Errno::EINVAL),
            _ => Err(Errno::ENOTCONN),
        }
    }
    fn write(&self, _buf: &[u8], _mode: IoMode) -> Result<usize> {
        Err(Errno::ENOTCONN)
    }
    fn release(&self) {
        let embryos = {
            let mut st = lock(&self.state);
            st.released = true;
            st.shutdown = SHUTDOWN_MASK;
            core::mem::take(&mut st.queue)
        };
        for e in embryos {
            e.release_embryo();
        }
    }
}

impl FdTable {
    /// `socket(AF_UNIX, ty | flags)`, `bind` to a fresh address, `listen(backlog)`: the
    /// descriptor and the address. `flags`: `SOCK_NONBLOCK`, `SOCK_CLOEXEC`; others `EINVAL`.
    pub fn unix_listen(
        &self,
        ty: SocketType,
        backlog: i32,
        flags: i32,
    ) -> Result<(i32, UnixAddress)> {
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let (file, addr) = listen(ty, backlog, flags)?;
        let fd = self.install(file, flags & O_CLOEXEC)?;
        Ok((fd, addr))
    }

    /// `socket(AF_UNIX, type | flags)` and `connect` to `addr` (the listener's type): the
    /// connected descriptor. Refused, full or failed connections leave no descriptor.
    pub fn unix_connect(&self, addr: &UnixAddress, flags: i32) -> Result<i32> {
        let _wakes = crate::wait_queue::deferred::Unparks::begin(); // as FdTable::write
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let file = addr.connect(flags)?;
        self.install(file, flags & O_CLOEXEC)
    }

    /// `accept4(fd, NULL, NULL, flags)`: `SOCK_NONBLOCK`, `SOCK_CLOEXEC`.
    pub fn accept4(&self, fd: i32, flags: i32) -> Result<i32> {
        if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let file = self.get(fd)?;
        let Some(l) = file.downcast::<UnixListener>() else {
            return Err(match file.downcast::<UnixSocket>() {
                Some(s) if s.socket_type() == SocketType::Dgram => Errno::EOPNOTSUPP,
                Some(_) => Errno::EINVAL,
                None => Errno::ENOTSOCK,
            });
        };
        let embryo = l.accept(file.is_nonblocking())?;
        let accepted = File::with_flags(embryo.clone(), flags & O_NONBLOCK);
        match self.install(accepted, flags & O_CLOEXEC) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                l.requeue(embryo);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::Recorder;
    use crate::test_prelude::*;

    const NB: i32 = O_NONBLOCK;
    const IN_RD: Events = Events::IN.union(Events::RDNORM);
    const WRITABLE: Events = Events::OUT.union(Events::WRNORM).union(Events::WRBAND);

    #[test]
    fn listener_is_readable_while_connections_wait() {
        for ty in [SocketType::Stream, SocketType::SeqPacket] {
            let (l, addr) = listen(ty, 4, NB).unwrap();
            assert_eq!(l.poll(), Events::empty());
            let c = addr.connect(NB).unwrap();
            assert_eq!(l.poll(), IN_RD);
            // The client is connected and writable before it is accepted.
            assert_eq!(c.poll(), WRITABLE);
            let lst = l.downcast::<UnixListener>().unwrap();
            assert_eq!(lst.pending(), 1);
            let a = lst.accept(true).unwrap();
            assert_eq!(l.poll(), Events::empty());
            assert_eq!(lst.accept(true).err(), Some(Errno::EAGAIN));
            assert_eq!(a.socket_type(), ty);
        }
    }

    #[test]
    fn backlog_admits_one_more_than_its_value() {
        for (backlog, admitted) in [(0, 1), (2, 3), (-1, SOMAXCONN + 1)] {
            let (_l, addr) = listen(SocketType::Stream, backlog, NB).unwrap();
            let mut clients = Vec::new();
            for _ in 0..admitted {
                clients.push(addr.connect(NB).unwrap());
            }
            assert_eq!(addr.connect(NB).err(), Some(Errno::EAGAIN), "{backlog}");
        }
        assert_eq!(
            listen(SocketType::Dgram, 1, NB).err(),
            Some(Errno::EOPNOTSUPP)
        );
    }

    #[test]
    fn connect_wakes_with_the_data_key_and_accept_wakes_nothing() {
        let (l, addr) = listen(SocketType::Stream, 8, NB).unwrap();
        let r = Recorder::attach(l.ops().wait_queue().unwrap());
        let _c = addr.connect(NB).unwrap();
        assert_eq!(r.keys(), [READABLE_KEY]);
        l.downcast::<UnixListener>().unwrap().accept(true).unwrap();
        assert_eq!(r.count(), 1);
        l.downcast::<UnixListener>()
            .unwrap()
            .shutdown(SHUT_RD)
            .unwrap();
        assert_eq!(r.last(), Some(Events::empty()));
        assert_eq!(l.poll(), Events::RDHUP | IN_RD);
        assert_eq!(addr.connect(NB).err(), Some(Errno::ECONNREFUSED));
    }

    #[test]
    fn closing_the_listener_resets_every_pending_client() {
        let t = FdTable::new();
        let (l, addr) = t.unix_listen(SocketType::Stream, 8, NB).unwrap();
        let quiet = t.unix_connect(&addr, NB).unwrap();
        let talker = t.unix_connect(&addr, NB).unwrap();
        assert_eq!(t.write(talker, b"hello"), Ok(5));
        let r = Recorder::attach(t.get(quiet).unwrap().ops().wait_queue().unwrap());
        t.close(l).unwrap();
        assert_eq!(r.keys(), [Events::empty()]);
        let reset = Events::ERR | Events::HUP | Events::RDHUP | IN_RD | WRITABLE;
        for c in [quiet, talker] {
            assert_eq!(t.get(c).unwrap().poll(), reset);
            let mut buf = [0u8; 8];
            assert_eq!(t.read(c, &mut buf), Err(Errno::ECONNRESET));
            assert_eq!(t.read(c, &mut buf), Ok(0));
            assert_eq!(t.write(c, b"x"), Err(Errno::EPIPE));
        }
        assert_eq!(t.unix_connect(&addr, NB), Err(Errno::ECONNREFUSED));
    }

    #[test]
    fn io_and_accept_on_the_wrong_sockets() {
        let t = FdTable::new();
        let (ls, _) = t.unix_listen(SocketType::Stream, 1, NB).unwrap();
        let (lq, _) = t.unix_listen(SocketType::SeqPacket, 1, NB).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(t.read(ls, &mut buf), Err(Errno::EINVAL));
        assert_eq!(t.read(lq, &mut buf), Err(Errno::ENOTCONN));
        assert_eq!(t.read(ls, &mut []), Ok(0));
        assert_eq!(t.write(ls, b"x"), Err(Errno::ENOTCONN));
        assert_eq!(t.accept4(ls, NB), Err(Errno::EAGAIN));
        let (a, _) = t.socketpair(SocketType::Stream, NB).unwrap();
        let (d, _) = t.socketpair(SocketType::Dgram, NB).unwrap();
        let (r, _) = t.pipe2(NB).unwrap();
        assert_eq!(t.accept4(a, NB), Err(Errno::EINVAL));
        assert_eq!(t.accept4(d, NB), Err(Errno::EOPNOTSUPP));
        assert_eq!(t.accept4(r, NB), Err(Errno::ENOTSOCK));
        assert_eq!(t.accept4(999, NB), Err(Errno::EBADF));
        t.shutdown(ls, SHUT_RDWR).unwrap();
        assert_eq!(
            t.get(ls).unwrap().poll(),
            Events::HUP | Events::RDHUP | IN_RD
        );
    }

    #[test]
    fn blocking_accept_waits_for_a_connection() {
        let (l, addr) = listen(SocketType::Stream, 4, 0).unwrap();
        let lst = l.clone();
        let t = std::thread::spawn(move || {
            lst.downcast::<UnixListener>()
                .unwrap()
                .accept(false)
                .map(|s| s.socket_type())
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let _c = addr.connect(NB).unwrap();
        let got = crate::objects::testutil::join_within(t);
        assert_eq!(got, Ok(SocketType::Stream));
    }
}
