//! Listening, connecting and accepting sockets over real descriptors (the kernel and C ABI
//! backends): unix listeners on fresh abstract addresses, and TCP and UDP on loopback.
//!
//! Every socket is created, bound, connected and accepted with the kernel's own calls (the
//! C ABI does not wrap them), then moved into the backend's range like any new descriptor.
//!
//! Unix sockets are synchronous: a connect, a write or a close has made all its wakeups when
//! the call returns. Loopback TCP and UDP deliver packets through the network stack's
//! receive path, which normally runs before the sending call returns but may be deferred
//! (to `ksoftirqd`, under load). So that a transcript is a function of the script, the
//! backend waits (bounded, [`SETTLE`]) after each call that sends something until its effect
//! is visible:
//!
//! - `tcp-connect`: until the client is writable or failed, and the listener's accept queue
//!   (`TCP_INFO`'s `tcpi_unacked` of a listening socket) has grown — unless the queue was
//!   already full, when the SYN is dropped and nothing will happen until the client
//!   retransmits a second later (scenarios keep connections within the backlog);
//! - a write to a TCP or UDP socket: until everything sent has left (`SIOCOUTQ` is 0: TCP
//!   data acknowledged by the receiver, UDP datagrams delivered);
//! - `close` (of the last descriptor) and `shutdown` (`wr`, `rdwr`) of a TCP socket: until
//!   each peer the backend holds — the socket connected to it, or, for a listener, every
//!   connected client not accepted yet — polls `RDHUP`, `HUP` or `ERR`.

use super::{cvt, last_errno, Real};
use crate::backend::{Address, Errno, InetCall, InetDone, SysResult};
use crate::script::SockType;
use std::ffi::c_int;
use std::mem::{size_of, zeroed};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the backend waits for loopback traffic to show its effect.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

/// An address a backend bound a socket to.
pub(super) struct Bound {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
    /// `SOCK_STREAM` or `SOCK_SEQPACKET` (unix), `SOCK_STREAM` (TCP), `SOCK_DGRAM` (UDP).
    ty: c_int,
    domain: c_int,
    /// The bound socket's inode: finds the listener among the range's descriptors.
    ino: u64,
}

/// Numbers abstract unix names: unique in the process.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn inode(fd: c_int) -> Option<u64> {
    // SAFETY: `st` is a valid stat buffer to fill.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// `getsockopt(fd, level, name)` as an int.
fn sockopt(fd: c_int, level: c_int, name: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for an int option.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut c_int).cast(), &mut len) };
    (r == 0).then_some(v)
}

/// A TCP socket's local and peer addresses (`None` for other sockets and non-sockets;
/// the peer is `None` when not connected).
fn tcp_names(fd: c_int) -> Option<(libc::sockaddr_in, Option<libc::sockaddr_in>)> {
    if sockopt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? != libc::AF_INET
        || sockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM
    {
        return None;
    }
    let get =
        |f: unsafe extern "C" fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int| {
            // SAFETY: a zeroed sockaddr_in is valid; `len` says its size.
            let mut a: libc::sockaddr_in = unsafe { zeroed() };
            let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: `a` has room for `len` bytes.
            (unsafe { f(fd, (&mut a as *mut libc::sockaddr_in).cast(), &mut len) } == 0)
                .then_some(a)
        };
    Some((get(libc::getsockname)?, get(libc::getpeername)))
}

fn same(a: &libc::sockaddr_in, b: &libc::sockaddr_in) -> bool {
    a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr
}

/// Poll `fd` for `events` until one shows (or [`SETTLE`] passes).
fn wait_for(fd: c_int, events: i16) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, SETTLE.as_millis() as c_int) };
}

/// Retry `done` (first at once, then yielding, then sleeping briefly) until it holds or
/// [`SETTLE`] passes.
fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    let mut tries = 0u32;
    while !done() && Instant::now() < deadline {
        tries += 1;
        if tries < 50 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A listener's accept queue length and backlog (`TCP_INFO` of a listening socket).
fn accept_queue(fd: c_int) -> Option<(u32, u32)> {
    // SAFETY: a zeroed tcp_info is valid; `len` says its size.
    let mut info: libc::tcp_info = unsafe { zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` has room for `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (r == 0).then_some((info.tcpi_unacked, info.tcpi_sacked))
}

impl Real {
    /// A new socket (`domain`, `ty`, non-blocking), outside the range.
    fn new_socket(&self, domain: c_int, ty: c_int) -> SysResult<c_int> {
        // SAFETY: no pointers.
        cvt(unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK, 0) })
    }

    /// Close a socket that never entered the range, keeping `e` as the error.
    fn discard(&self, fd: c_int, e: Errno) -> Errno {
        // SAFETY: a descriptor this backend just created and does not use again.
        unsafe { (self.calls.close)(fd) };
        e
    }

    /// Bind `fd` to `storage` (len 0: 127.0.0.1 port 0), `listen` if `backlog` is given,
    /// record the address and move `fd` into the range.
    fn bind_socket(
        &mut self,
        fd: c_int,
        domain: c_int,
        ty: c_int,
        mut storage: libc::sockaddr_storage,
        mut len: libc::socklen_t,
        backlog: Option<i32>,
    ) -> SysResult<(i32, Address)> {
        let fail = |me: &Real| Err(me.discard(fd, last_errno()));
        let sa = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        // SAFETY: `storage` holds a valid address of `len` bytes.
        if unsafe { libc::bind(fd, sa, len) } < 0 {
            return fail(self);
        }
        if domain == libc::AF_INET {
            len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: `storage` has room for `len` bytes: the port the kernel chose.
            if unsafe { libc::getsockname(fd, sa, &mut len) } < 0 {
                return fail(self);
            }
        }
        if let Some(b) = backlog {
            // SAFETY: no pointers.
            if unsafe { libc::listen(fd, b) } < 0 {
                return fail(self);
            }
        }
        let ino = inode(fd).unwrap_or(0);
        let n = self.adopt(fd)?;
        self.addresses.push(Bound {
            storage,
            len,
            ty,
            domain,
            ino,
        });
        Ok((n, Address(self.addresses.len() - 1)))
    }

    /// `listen L TYPE [backlog=N]`.
    pub(super) fn unix_listen_socket(
        &mut self,
        ty: SockType,
        backlog: i32,
    ) -> SysResult<(i32, Address)> {
        let ty = match ty {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Dgram => libc::SOCK_DGRAM,
            SockType::SeqPacket => libc::SOCK_SEQPACKET,
        };
        let fd = self.new_socket(libc::AF_UNIX, ty)?;
        // SAFETY: a zeroed sockaddr_storage is valid.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        // SAFETY: sockaddr_storage is large enough for a sockaddr_un.
        let un = unsafe {
            &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_un>()
        };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let name = format!(
            "eventpoll-conform-{}-{}-{}",
            std::process::id(),
            self.calls.name,
            NEXT_NAME.fetch_add(1, Ordering::Relaxed)
        );
        // Abstract: a NUL, then the name (not NUL-terminated).
        for (i, b) in name.bytes().enumerate() {
            un.sun_path[i + 1] = b as libc::c_char;
        }
        let len = (size_of::<libc::sa_family_t>() + 1 + name.len()) as libc::socklen_t;
        self.bind_socket(fd, libc::AF_UNIX, ty, storage, len, Some(backlog))
    }

    /// Connect a new socket of the address's kind to it: `connect`'s result (0 or an
    /// error) and the socket, outside the range.
    fn connect_to(&self, addr: Address) -> SysResult<(c_int, c_int)> {
        let b = self
            .addresses
            .get(addr.0)
            .ok_or(Errno(libc::ECONNREFUSED))?;
        let fd = self.new_socket(b.domain, b.ty)?;
        let sa = (&b.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
        // SAFETY: `b.storage` holds a valid address of `b.len` bytes.
        let r = unsafe { libc::connect(fd, sa, b.len) };
        Ok((fd, if r < 0 { last_errno().0 } else { 0 }))
    }

    /// `connect C L`.
    pub(super) fn unix_connect_socket(&mut self, addr: Address) -> SysResult<i32> {
        let (fd, r) = self.connect_to(addr)?;
        if r != 0 {
            return Err(self.discard(fd, Errno(r)));
        }
        self.adopt(fd)
    }

    /// `accept A L`.
    pub(super) fn accept_socket(&mut self, fd: i32) -> SysResult<i32> {
        let k = self.kfd(fd);
        // SAFETY: NULL address pointers are allowed.
        let a = cvt(unsafe {
            libc::accept4(
                k,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK,
            )
        })?;
        self.adopt(a)
    }

    /// The range's descriptor of the socket bound to `addr`, if one is open.
    fn bound_fd(&self, addr: Address) -> Option<c_int> {
        let ino = self.addresses.get(addr.0)?.ino;
        self.open.iter().copied().find(|&fd| inode(fd) == Some(ino))
    }

    /// TCP and UDP on loopback.
    pub(super) fn inet_call(&mut self, call: InetCall) -> SysResult<InetDone> {
        // SAFETY: a zeroed sockaddr_storage is valid; a zero length means 127.0.0.1:0.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        {
            // SAFETY: sockaddr_storage is large enough for a sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        }
        let sin_len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        match call {
            InetCall::TcpListen { backlog } => {
                let fd = self.new_socket(libc::AF_INET, libc::SOCK_STREAM)?;
                let (n, a) = self.bind_socket(
                    fd,
                    libc::AF_INET,
                    libc::SOCK_STREAM,
                    storage,
                    sin_len,
                    Some(backlog),
                )?;
                Ok(InetDone::Bound(n, a))
            }
            InetCall::Udp => {
                let fd = self.new_socket(libc::AF_INET, libc::SOCK_DGRAM)?;
                let (n, a) =
                    self.bind_socket(fd, libc::AF_INET, libc::SOCK_DGRAM, storage, sin_len, None)?;
                Ok(InetDone::Bound(n, a))
            }
            InetCall::TcpConnect { addr } => {
                let listener = self.bound_fd(addr);
                let before = listener.and_then(accept_queue);
                let (fd, r) = self.connect_to(addr)?;
                if r != 0 && r != libc::EINPROGRESS {
                    return Err(self.discard(fd, Errno(r)));
                }
                let full = before.is_some_and(|(queued, max)| queued > max);
                if !full {
                    wait_for(fd, libc::POLLOUT);
                    if let (Some(l), Some((queued, _))) = (listener, before) {
                        until(|| accept_queue(l).is_none_or(|(now, _)| now > queued));
                    }
                }
                let n = self.adopt(fd)?;
                Ok(InetDone::Connecting(n, (r != 0).then_some(Errno(r))))
            }
            InetCall::UdpConnect { fd, addr } => {
                let b = self
                    .addresses
                    .get(addr.0)
                    .ok_or(Errno(libc::ECONNREFUSED))?;
                let sa = (&b.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
                // SAFETY: `b.storage` holds a valid address of `b.len` bytes.
                cvt(unsafe { libc::connect(self.kfd(fd), sa, b.len) })?;
                Ok(InetDone::Done)
            }
        }
    }

    /// After a successful write to `fd` (a range descriptor): if it is a TCP or UDP socket,
    /// wait until what was sent has left (see the module documentation).
    pub(super) fn settle_write(&self, fd: c_int) {
        if sockopt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) != Some(libc::AF_INET) {
            return;
        }
        until(|| {
            let mut q: c_int = 0;
            // SAFETY: SIOCOUTQ writes one int.
            let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut q) };
            r != 0 || q == 0
        });
    }

    /// Before a `close` or `shutdown` of `fd` (a range descriptor): the peers that will see
    /// it (see the module documentation), to give to [`Real::settle_peers`] afterwards.
    pub(super) fn tcp_peers(&self, fd: c_int, closing: bool) -> Vec<c_int> {
        let Some((me, my_peer)) = tcp_names(fd) else {
            return Vec::new();
        };
        let ino = inode(fd);
        let others: Vec<(c_int, libc::sockaddr_in, Option<libc::sockaddr_in>)> = self
            .open
            .iter()
            .copied()
            .filter(|&o| o != fd)
            .filter_map(|o| tcp_names(o).map(|(a, p)| (o, a, p)))
            .collect();
        if closing && self.open.iter().any(|&o| o != fd && inode(o) == ino) {
            return Vec::new(); // another descriptor keeps the socket open
        }
        others
            .iter()
            .filter(|(_, _, p)| p.as_ref().is_some_and(|p| same(p, &me)))
            .filter(|(_, a, _)| match &my_peer {
                // Connected: its one peer.
                Some(mp) => same(a, mp),
                // A listener: clients whose server side was not accepted here.
                None => !others
                    .iter()
                    .any(|(_, sa, sp)| same(sa, &me) && sp.as_ref().is_some_and(|sp| same(sp, a))),
            })
            .map(|(o, _, _)| *o)
            .collect()
    }

    /// Wait until each of `peers` polls `RDHUP`, `HUP` or `ERR` (bounded).
    pub(super) fn settle_peers(&self, peers: &[c_int]) {
        for &p in peers {
            wait_for(p, libc::POLLRDHUP);
        }
    }
}
