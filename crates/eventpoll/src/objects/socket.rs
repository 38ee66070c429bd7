//! Unix socket pairs (`socketpair(AF_UNIX, ...)`: stream, datagram, seqpacket), modelled on
//! Linux 6.18 `net/unix/af_unix.c`: the poll functions `unix_poll` / `unix_dgram_poll`,
//! shutdown and release, message boundaries, and the send-buffer accounting that decides
//! writability — all measured against the kernel on this machine.
//!
//! # Capacity model (what "writable" means)
//!
//! Linux charges every message (*skb*) a sender has in flight — queued at the peer and not
//! yet consumed — to the sender's `sk_wmem_alloc`, at the skb's *truesize* (the data plus the
//! allocation overhead), against the send buffer `sk_sndbuf` (default 212,992 bytes,
//! `net.core.wmem_default`):
//!
//! - a send may allocate a new skb while `wmem < sndbuf` (so it can overshoot by one skb);
//!   otherwise it blocks or fails with `EAGAIN`;
//! - the socket polls writable (`OUT|WRNORM|WRBAND`) while `(wmem + 1) * 4 <= sndbuf` (the
//!   `+ 1` is the reference `sk_wmem_alloc` starts with);
//! - when the peer consumes a whole skb, the sender's "write space" callback wakes it with
//!   `OUT|WRNORM|WRBAND` if `(wmem + 2) * 4 <= sndbuf` (an extra reference is held during
//!   the callback).
//!
//! The truesize formula (x86-64, 4 KiB pages; `align64` rounds up to 64):
//!
//! - linear part of `n` bytes: `pow2(align64(n) + 320) + 256` (320 = the aligned
//!   `skb_shared_info`, 256 = the aligned `sk_buff`, `pow2` = the kmalloc bucket or page
//!   order the head lands in); so 1..=192 bytes cost 768, 193..=704 cost 1280, up to 3776
//!   bytes 4352;
//! - page fragments: each fragment costs its whole allocation (`4096 << order`), the order
//!   starting at 3 (32 KiB) and dropping while the rest would fit in half as much;
//! - stream: a send is cut into skbs of at most `min(sndbuf / 2 - 64, 3776 + 32768)` bytes;
//!   an skb of `size` bytes has `data_len = min(size, page_align(max(0, size - 3776)))` bytes
//!   in fragments and the rest linear (so 3777..=4096 bytes are a 768-byte head plus one
//!   page: 4864);
//! - datagram/seqpacket: one skb per message; up to 16,064 bytes linear, beyond that
//!   `page_align(min(len - 16064, 17 * 4096))` bytes in fragments. A message longer than
//!   `sndbuf - 32` is `EMSGSIZE`.
//!
//! Measured on the kernel (SIOCOUTQ, non-blocking sends until `EAGAIN`, default sndbuf):
//! 278 one-byte or hundred-byte sends succeed and `OUT` disappears after the 70th (70 × 768
//! = 53,760); 93 thousand-byte sends (2304 each), `OUT` gone after the 24th; 44 stream sends
//! of 4096 bytes (4864 each), `OUT` gone after the 11th; 26 datagrams of 4096 bytes (8448
//! each), `OUT` gone after the 7th; a 300,000-byte non-blocking stream send writes 219,264
//! bytes (six skbs of 36,544). The per-size truesizes are checked in the unit tests.
//!
//! Datagram and seqpacket sockets have a receive-queue limit (`net.unix.max_dgram_qlen`,
//! 10 here), but Linux applies it only when the receiver is not connected back to the
//! sender (`unix_peer(other) != sk`), which is never the case in a socket pair: measured,
//! 278 one-byte datagrams are queued without `EAGAIN`. So the limit is not modelled.
//!
//! # Poll masks
//!
//! `ERR` while an error is pending; `HUP` when both directions are shut down;
//! `RDHUP|IN|RDNORM` when the receive side is shut down; `IN|RDNORM` when data is queued;
//! `OUT|WRNORM|WRBAND` while writable (shutdown does not clear it). Shutdown is propagated to
//! the peer for stream and seqpacket only (`SHUT_WR` here is the peer's receive shutdown,
//! `SHUT_RD` the peer's send shutdown); datagram peers are independent.
//!
//! # Wakeups
//!
//! - a send wakes the peer with `IN|PRI|RDNORM|RDBAND` (`sock_def_readable`), once per skb
//!   (a 0-byte stream send sends nothing and wakes nothing; a 0-byte datagram is a message);
//! - consuming a whole skb wakes its sender with `OUT|WRNORM|WRBAND` when writable (above);
//!   a partial stream read wakes nothing;
//! - a datagram send that fails after its skb was allocated (`ENOTCONN`, `ECONNREFUSED`,
//!   `EPIPE` because the peer shut its receive side) frees it, which wakes the *sender* as a
//!   consumed skb does (measured: an edge-triggered `OUT` item is reported again);
//! - `shutdown` wakes the socket's own queue, all entries, key 0, and for stream/seqpacket
//!   the peer's too;
//! - closing (releasing) a socket: for stream/seqpacket the peer gets both directions shut
//!   down (`HUP|RDHUP|IN|RDNORM`) and `ECONNRESET` if the closing socket had unread data
//!   (6.18 skips a zero-length message at the head of the queue: one unread empty message
//!   does not count, two do — measured), and
//!   is woken with key 0; then the closing socket's receive queue is freed, waking the peer
//!   (its sender) per skb as above.
//!
//! # Errors
//!
//! Stream reads return queued data first and report a pending error only on an empty queue
//! (so: data, then `ECONNRESET`, then 0); datagram/seqpacket reads report the error first.
//! Reading clears the error. A non-blocking datagram read after the receive side was shut
//! down returns `EAGAIN` (seqpacket and stream return 0, as does a blocking datagram read).
//! A datagram peer that was closed is noticed by the next send: `ECONNREFUSED`, which also
//! disconnects the socket (discarding its own received messages); later sends are
//! `ENOTCONN`. A 0-byte read returns 0 at once, for every type.
//!
//! ```
//! use eventpoll::objects::socket::{socketpair, SocketType};
//! use eventpoll::{Events, linux::O_NONBLOCK};
//! let (a, b) = socketpair(SocketType::Stream, O_NONBLOCK);
//! let writable = Events::OUT | Events::WRNORM | Events::WRBAND;
//! assert_eq!(a.poll(), writable);
//! a.write(b"ping").unwrap();
//! assert_eq!(b.poll(), Events::IN | Events::RDNORM | writable);
//! drop(a);
//! assert_eq!(b.poll(), Events::IN | Events::RDNORM | Events::HUP | Events::RDHUP | writable);
//! ```

use crate::errno::{Errno, Result};
use crate::event::{Events, O_CLOEXEC, O_NONBLOCK};
use crate::file::{File, FileOps, IoMode};
use crate::prelude::*;
use crate::sync::{lock, Arc, Mutex, MutexGuard};
use crate::table::FdTable;
use crate::wait_queue::{Exclusivity, WaitQueue};
use alloc::collections::VecDeque;

/// The kind of socket pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// `SOCK_STREAM`: a byte stream.
    Stream,
    /// `SOCK_DGRAM`: messages, connectionless semantics.
    Dgram,
    /// `SOCK_SEQPACKET`: messages, connection semantics.
    SeqPacket,
}

impl SocketType {
    fn connection_based(self) -> bool {
        !matches!(self, SocketType::Dgram)
    }
}

/// `SHUT_RD`.
pub const SHUT_RD: i32 = 0;
/// `SHUT_WR`.
pub const SHUT_WR: i32 = 1;
/// `SHUT_RDWR`.
pub const SHUT_RDWR: i32 = 2;
/// `SOCK_NONBLOCK` (= `O_NONBLOCK`).
pub const SOCK_NONBLOCK: i32 = O_NONBLOCK;
/// `SOCK_CLOEXEC` (= `O_CLOEXEC`).
pub const SOCK_CLOEXEC: i32 = O_CLOEXEC;

/// The default send buffer (`net.core.wmem_default`).
pub const DEFAULT_SNDBUF: usize = 212_992;
/// The smallest send buffer `SO_SNDBUF` can set (`SOCK_MIN_SNDBUF`).
pub const SOCK_MIN_SNDBUF: usize = 4608;
/// `net.core.wmem_max` on the reference machine: `SO_SNDBUF` values are clamped to it
/// before doubling.
pub const WMEM_MAX: usize = 4_194_304;

const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;
const SHUTDOWN_MASK: u8 = 3;

const PAGE: usize = 4096;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))`.
const SHINFO: usize = 320;
/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
const SKB_STRUCT: usize = 256;
/// `SKB_MAX_HEAD(0)`: the largest linear part that fits one page with its shared info.
const SKB_MAX_HEAD0: usize = PAGE - SHINFO;
/// `UNIX_SKB_FRAGS_SZ`: stream fragment budget per skb (order 3).
const UNIX_SKB_FRAGS_SZ: usize = 32_768;
/// `SKB_MAX_ALLOC`: the largest linear datagram (order 2 minus shared info).
const SKB_MAX_ALLOC: usize = 4 * PAGE - SHINFO;
/// `MAX_SKB_FRAGS`.
const MAX_SKB_FRAGS: usize = 17;

const READABLE_KEY: Events = Events::IN
    .union(Events::PRI)
    .union(Events::RDNORM)
    .union(Events::RDBAND);
const WRITABLE: Events = Events::OUT.union(Events::WRNORM).union(Events::WRBAND);

fn page_align(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// Truesize of a linear part of `len` bytes (`SKB_TRUESIZE` of the kmalloc'd head).
fn head_truesize(len: usize) -> usize {
    (len.div_ceil(64) * 64 + SHINFO).next_power_of_two() + SKB_STRUCT
}

/// Truesize of `data_len` bytes of page fragments (`alloc_skb_with_frags`).
fn frags_truesize(mut data_len: usize, mut order: u32) -> usize {
    let mut total = 0;
    while data_len > 0 {
        while order > 0 && page_align(data_len) < PAGE << order {
            order -= 1;
        }
        let chunk = data_len.min(PAGE << order);
        data_len -= chunk;
        total += PAGE << order;
    }
    total
}

/// Truesize of one stream skb carrying `size` bytes.
fn stream_truesize(size: usize) -> usize {
    let data_len = size.saturating_sub(SKB_MAX_HEAD0);
    let data_len = size.min(page_align(data_len));
    head_truesize(size - data_len) + frags_truesize(data_len, 3)
}

/// Truesize of one datagram of `len` bytes.
fn dgram_truesize(len: usize) -> usize {
    let data_len = if len > SKB_MAX_ALLOC {
        page_align((len - SKB_MAX_ALLOC).min(MAX_SKB_FRAGS * PAGE))
    } else {
        0
    };
    head_truesize(len - data_len) + frags_truesize(data_len, 3)
}

/// A queued message (an skb): its bytes, how much of it a stream reader has consumed, and
/// what it costs its sender.
struct Skb {
    data: Vec<u8>,
    consumed: usize,
    truesize: usize,
}

/// One end's state (Linux's `struct sock` + `unix_sock`, the parts that matter).
struct End {
    /// Messages sent by the peer, not yet read.
    recv: VecDeque<Skb>,
    /// `sk_shutdown`.
    shutdown: u8,
    /// `sk_err`.
    err: Option<Errno>,
    /// `sk_wmem_alloc` minus its base reference: truesize of this end's skbs in flight.
    wmem: usize,
    /// `sk_sndbuf`.
    sndbuf: usize,
    /// Released (the last descriptor closed; `SOCK_DEAD`).
    released: bool,
    /// `unix_peer(sk) != NULL`.
    connected: bool,
}

impl End {
    fn new() -> End {
        End {
            recv: VecDeque::new(),
            shutdown: 0,
            err: None,
            wmem: 0,
            sndbuf: DEFAULT_SNDBUF,
            released: false,
            connected: true,
        }
    }

    /// `unix_writable`: `sk_wmem_alloc * 4 <= sk_sndbuf`, with `extra` references held
    /// beyond the base one.
    fn writable(&self, extra: usize) -> bool {
        (self.wmem + 1 + extra) * 4 <= self.sndbuf
    }

    /// `sock_error`: take the pending error.
    fn take_err(&mut self) -> Option<Errno> {
        self.err.take()
    }
}

/// The wakeups an operation owes, performed after the pair's lock is released: `(end, key,
/// all)`. The first few are stored inline, so a send or a read allocates nothing for them.
#[derive(Default)]
struct Wakes {
    inline: [(usize, Events, bool); 3],
    len: usize,
    spill: Vec<(usize, Events, bool)>,
}

impl Wakes {
    fn push(&mut self, w: (usize, Events, bool)) {
        if self.len < self.inline.len() {
            self.inline[self.len] = w;
            self.len += 1;
        } else {
            self.spill.push(w);
        }
    }
    fn wake(&mut self, end: usize, key: Events) {
        self.push((end, key, false));
    }
    fn wake_all(&mut self, end: usize) {
        self.push((end, Events::empty(), true));
    }
    fn iter(&self) -> impl Iterator<Item = &(usize, Events, bool)> {
        self.inline[..self.len].iter().chain(&self.spill)
    }
}

/// The two ends of a socket pair, under one lock.
struct Pair {
    ty: SocketType,
    ends: Mutex<[End; 2]>,
    wq: [WaitQueue; 2],
}

impl Pair {
    fn lock(&self) -> MutexGuard<'_, [End; 2]> {
        lock(&self.ends)
    }

    fn run(&self, wakes: Wakes) {
        for &(end, key, all) in wakes.iter() {
            if all {
                self.wq[end].wake_all(key);
            } else {
                self.wq[end].wake(key);
            }
        }
    }

    /// Free an skb that `owner` sent (`sock_wfree`): uncharge it and owe the owner a
    /// write-space wakeup if it is writable now.
    fn free_skb(ends: &mut [End; 2], owner: usize, truesize: usize, wakes: &mut Wakes) {
        let o = &mut ends[owner];
        o.wmem -= truesize;
        if !o.released && o.writable(1) {
            wakes.wake(owner, WRITABLE);
        }
    }
}

/// One end of a unix socket pair. See the [module documentation](self).
pub struct UnixSocket {
    pair: Arc<Pair>,
    me: usize,
}

impl core::fmt::Debug for UnixSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UnixSocket")
            .field("type", &self.pair.ty)
            .field("end", &self.me)
            .finish()
    }
}

/// A connected pair of unix sockets of type `ty`. `flags` ([`OpenFlags`](crate::OpenFlags),
/// or a raw `i32`) may hold `NONBLOCK` (both descriptions); other bits are ignored here (see [`FdTable::socketpair`]).
///
/// ```
/// use eventpoll::objects::socket::{socketpair, SocketType};
/// let (a, b) = socketpair(SocketType::Dgram, 0);
/// a.write(b"one").unwrap();
/// a.write(b"two").unwrap();
/// let mut buf = [0u8; 16];
/// assert_eq!(b.read(&mut buf), Ok(3)); // one message per read
/// assert_eq!(&buf[..3], b"one");
/// ```
///
/// Linux: [socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html).
pub fn socketpair(ty: SocketType, flags: impl Into<crate::OpenFlags>) -> (File, File) {
    let flags = flags.into().bits();
    let pair = Arc::new(Pair {
        ty,
        ends: Mutex::new([End::new(), End::new()]),
        wq: [WaitQueue::new(), WaitQueue::new()],
    });
    let status = flags & O_NONBLOCK;
    let a = File::with_flags(
        Arc::new(UnixSocket {
            pair: pair.clone(),
            me: 0,
        }),
        status,
    );
    let b = File::with_flags(Arc::new(UnixSocket { pair, me: 1 }), status);
    (a, b)
}

impl UnixSocket {
    fn peer(&self) -> usize {
        1 - self.me
    }

    /// The socket's type.
    pub fn socket_type(&self) -> SocketType {
        self.pair.ty
    }

    /// `ioctl(SIOCOUTQ)`: the truesize of this socket's messages still in flight (the
    /// kernel reports `sk_wmem_alloc`, overhead included).
    pub fn outq(&self) -> usize {
        self.pair.lock()[self.me].wmem
    }

    /// `ioctl(SIOCINQ)`: unread bytes (stream), or the size of the next message.
    pub fn inq(&self) -> usize {
        let ends = self.pair.lock();
        let q = &ends[self.me].recv;
        match self.pair.ty {
            SocketType::Stream => q.iter().map(|s| s.data.len() - s.consumed).sum(),
            _ => q.front().map_or(0, |s| s.data.len()),
        }
    }

    /// `getsockopt(SO_SNDBUF)`.
    pub fn send_buffer_size(&self) -> usize {
        self.pair.lock()[self.me].sndbuf
    }

    /// `setsockopt(SO_SNDBUF, val)`: the buffer becomes `max(2 * min(val, wmem_max),
    /// SOCK_MIN_SNDBUF)` (a negative `val` counts as huge), and the socket is woken if that
    /// made it writable.
    pub fn set_send_buffer_size(&self, val: i32) {
        let mut wakes = Wakes::default();
        {
            let mut ends = self.pair.lock();
            let e = &mut ends[self.me];
            e.sndbuf = ((val as u32 as usize).min(WMEM_MAX) * 2).max(SOCK_MIN_SNDBUF);
            if e.writable(0) {
                wakes.wake(self.me, WRITABLE);
            }
        }
        self.pair.run(wakes);
    }

    /// `shutdown(how)`: `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`; anything else is `EINVAL`.
    ///
    /// Linux: [shutdown(2)](https://man7.org/linux/man-pages/man2/shutdown.2.html).
    pub fn shutdown(&self, how: i32) -> Result<()> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(Errno::EINVAL);
        }
        let mode = (how + 1) as u8;
        let mut wakes = Wakes::default();
        {
            let mut ends = self.pair.lock();
            ends[self.me].shutdown |= mode;
            wakes.wake_all(self.me);
            let peer = self.peer();
            if ends[self.me].connected && self.pair.ty.connection_based() {
                let mut peer_mode = 0;
                if mode & RCV_SHUTDOWN != 0 {
                    peer_mode |= SEND_SHUTDOWN;
                }
                if mode & SEND_SHUTDOWN != 0 {
                    peer_mode |= RCV_SHUTDOWN;
                }
                ends[peer].shutdown |= peer_mode;
                if !ends[peer].released {
                    wakes.wake_all(peer);
                }
            }
        }
        self.pair.run(wakes);
        Ok(())
    }

    /// Wait (blocking mode) until `ready` holds for this end's state, or fail with `EAGAIN`
    /// (non-blocking) / `EINTR`.
    fn wait(
        &self,
        nonblock: bool,
        exclusivity: Exclusivity,
        ready: impl Fn(&[End; 2]) -> bool,
    ) -> Result<()> {
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        self.pair.wq[self.me]
            .block_until(exclusivity, None, || ready(&self.pair.lock()).then_some(()))
    }

    /// `sock_alloc_send_pskb`: charge an skb of `truesize` to this end, waiting for room.
    /// On success the lock is returned still held, with the charge applied.
    fn alloc_skb(&self, truesize: usize, nonblock: bool) -> Result<MutexGuard<'_, [End; 2]>> {
        let me = self.me;
        loop {
            let mut ends = self.pair.lock();
            if let Some(e) = ends[me].take_err() {
                return Err(e);
            }
            if ends[me].shutdown & SEND_SHUTDOWN != 0 {
                return Err(Errno::EPIPE);
            }
            if ends[me].wmem < ends[me].sndbuf {
                ends[me].wmem += truesize;
                return Ok(ends);
            }
            drop(ends);
            self.wait(nonblock, Exclusivity::NonExclusive, |e| {
                let e = &e[me];
                e.wmem < e.sndbuf || e.err.is_some() || e.shutdown & SEND_SHUTDOWN != 0
            })?;
        }
    }

    /// `unix_stream_sendmsg`.
    fn stream_send(&self, buf: &[u8], nonblock: bool) -> Result<usize> {
        let (me, peer) = (self.me, self.peer());
        {
            let ends = self.pair.lock();
            if !ends[me].connected {
                return Err(Errno::ENOTCONN);
            }
            if ends[me].shutdown & SEND_SHUTDOWN != 0 {
                return Err(Errno::EPIPE);
            }
        }
        let mut sent = 0;
        while sent < buf.len() {
            let sndbuf = self.pair.lock()[me].sndbuf;
            let size = (buf.len() - sent)
                .min(sndbuf / 2 - 64)
                .min(SKB_MAX_HEAD0 + UNIX_SKB_FRAGS_SZ);
            let truesize = stream_truesize(size);
            let mut ends = match self.alloc_skb(truesize, nonblock) {
                Ok(ends) => ends,
                Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
            };
            let mut wakes = Wakes::default();
            if ends[peer].released || ends[peer].shutdown & RCV_SHUTDOWN != 0 {
                Pair::free_skb(&mut ends, me, truesize, &mut wakes);
                drop(ends);
                self.pair.run(wakes);
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            ends[peer].recv.push_back(Skb {
                data: buf[sent..sent + size].to_vec(),
                consumed: 0,
                truesize,
            });
            drop(ends);
            wakes.wake(peer, READABLE_KEY);
            self.pair.run(wakes);
            sent += size;
        }
        Ok(sent)
    }

    /// `unix_dgram_sendmsg` (and `unix_seqpacket_sendmsg`).
    fn dgram_send(&self, buf: &[u8], nonblock: bool) -> Result<usize> {
        let (me, peer) = (self.me, self.peer());
        if self.pair.ty == SocketType::SeqPacket {
            let mut ends = self.pair.lock();
            if let Some(e) = ends[me].take_err() {
                return Err(e);
            }
            if !ends[me].connected {
                return Err(Errno::ENOTCONN);
            }
        }
        if buf.len() + 32 > self.pair.lock()[me].sndbuf {
            return Err(Errno::EMSGSIZE);
        }
        let truesize = dgram_truesize(buf.len());
        let mut ends = self.alloc_skb(truesize, nonblock)?;
        let mut wakes = Wakes::default();
        let failed = if !ends[me].connected {
            Some(Errno::ENOTCONN)
        } else if ends[peer].released {
            if self.pair.ty == SocketType::SeqPacket {
                Some(Errno::EPIPE)
            } else {
                // unix_dgram_disconnected: forget the peer and drop what it had sent us.
                ends[me].connected = false;
                while let Some(skb) = ends[me].recv.pop_front() {
                    Pair::free_skb(&mut ends, peer, skb.truesize, &mut wakes);
                }
                Some(Errno::ECONNREFUSED)
            }
        } else if ends[peer].shutdown & RCV_SHUTDOWN != 0 {
            Some(Errno::EPIPE)
        } else {
            None
        };
        if let Some(e) = failed {
            Pair::free_skb(&mut ends, me, truesize, &mut wakes);
            drop(ends);
            self.pair.run(wakes);
            return Err(e);
        }
        ends[peer].recv.push_back(Skb {
            data: buf.to_vec(),
            consumed: 0,
            truesize,
        });
        drop(ends);
        wakes.wake(peer, READABLE_KEY);
        self.pair.run(wakes);
        Ok(buf.len())
    }

    /// `unix_stream_read_generic` (no flags).
    fn stream_recv(&self, buf: &mut [u8], nonblock: bool) -> Result<usize> {
        let (me, peer) = (self.me, self.peer());
        loop {
            let mut ends = self.pair.lock();
            if ends[me].recv.is_empty() {
                if let Some(e) = ends[me].take_err() {
                    return Err(e);
                }
                if ends[me].shutdown & RCV_SHUTDOWN != 0 {
                    return Ok(0);
                }
                drop(ends);
                self.wait(nonblock, Exclusivity::NonExclusive, |e| {
                    let e = &e[me];
                    !e.recv.is_empty() || e.err.is_some() || e.shutdown & RCV_SHUTDOWN != 0
                })?;
                continue;
            }
            let mut copied = 0;
            let mut wakes = Wakes::default();
            while copied < buf.len() {
                let Some(skb) = ends[me].recv.front_mut() else {
                    break;
                };
                let chunk = (skb.data.len() - skb.consumed).min(buf.len() - copied);
                buf[copied..copied + chunk]
                    .copy_from_slice(&skb.data[skb.consumed..skb.consumed + chunk]);
                skb.consumed += chunk;
                copied += chunk;
                if skb.consumed == skb.data.len() {
                    let truesize = skb.truesize;
                    ends[me].recv.pop_front();
                    Pair::free_skb(&mut ends, peer, truesize, &mut wakes);
                }
            }
            drop(ends);
            self.pair.run(wakes);
            return Ok(copied);
        }
    }

    /// `unix_dgram_recvmsg` (no flags): one message per read, truncated to the buffer.
    fn dgram_recv(&self, buf: &mut [u8], nonblock: bool) -> Result<usize> {
        let (me, peer) = (self.me, self.peer());
        let seqpacket = self.pair.ty == SocketType::SeqPacket;
        loop {
            let mut ends = self.pair.lock();
            if let Some(e) = ends[me].take_err() {
                return Err(e);
            }
            if let Some(skb) = ends[me].recv.pop_front() {
                let n = skb.data.len().min(buf.len());
                buf[..n].copy_from_slice(&skb.data[..n]);
                let mut wakes = Wakes::default();
                Pair::free_skb(&mut ends, peer, skb.truesize, &mut wakes);
                drop(ends);
                self.pair.run(wakes);
                return Ok(n);
            }
            let shut = ends[me].shutdown & RCV_SHUTDOWN != 0;
            drop(ends);
            if nonblock {
                // "Signal EOF on disconnected non-blocking SEQPACKET socket."
                return if seqpacket && shut {
                    Ok(0)
                } else {
                    Err(Errno::EAGAIN)
                };
            }
            if shut {
                return Ok(0);
            }
            self.wait(false, Exclusivity::Exclusive, |e| {
                let e = &e[me];
                !e.recv.is_empty() || e.err.is_some() || e.shutdown & RCV_SHUTDOWN != 0
            })?;
        }
    }

    /// `unix_release_sock`. An `embryo` (a connection a listener never accepted, released
    /// with its listener) always gives its peer `ECONNRESET`, unread data or not.
    fn release_sock(&self, embryo: bool) {
        let (me, peer) = (self.me, self.peer());
        let mut wakes = Wakes::default();
        {
            let mut ends = self.pair.lock();
            // Linux 6.18 skips a zero-length skb at the head of the queue (meant for a
            // consumed OOB skb) before deciding: one unread empty message does not give the
            // peer ECONNRESET, two do (measured).
            let q = &ends[me].recv;
            let head_empty = q.front().is_some_and(|s| s.data.len() == s.consumed);
            let had_data = embryo || q.len() > usize::from(head_empty);
            ends[me].shutdown = SHUTDOWN_MASK;
            ends[me].released = true;
            let connected = core::mem::replace(&mut ends[me].connected, false);
            if connected && self.pair.ty.connection_based() && !ends[peer].released {
                ends[peer].shutdown = SHUTDOWN_MASK;
                if had_data {
                    ends[peer].err = Some(Errno::ECONNRESET);
                }
                wakes.wake_all(peer);
            }
            while let Some(skb) = ends[me].recv.pop_front() {
                Pair::free_skb(&mut ends, peer, skb.truesize, &mut wakes);
            }
        }
        self.pair.run(wakes);
    }
}

impl FileOps for UnixSocket {
    fn poll(&self) -> Events {
        let ends = self.pair.lock();
        let e = &ends[self.me];
        let mut mask = Events::empty();
        if e.err.is_some() {
            mask |= Events::ERR;
        }
        if e.shutdown == SHUTDOWN_MASK {
            mask |= Events::HUP;
        }
        if e.shutdown & RCV_SHUTDOWN != 0 {
            mask |= Events::RDHUP | Events::IN | Events::RDNORM;
        }
        if !e.recv.is_empty() {
            mask |= Events::IN | Events::RDNORM;
        }
        if e.writable(0) {
            mask |= WRITABLE;
        }
        mask
    }
    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.pair.wq[self.me])
    }
    fn read(&self, buf: &mut [u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        if buf.is_empty() {
            return Ok(0); // sock_read_iter: "Match SYS5 behaviour"
        }
        match self.pair.ty {
            SocketType::Stream => self.stream_recv(buf, nonblock),
            _ => self.dgram_recv(buf, nonblock),
        }
    }
    fn write(&self, buf: &[u8], mode: IoMode) -> Result<usize> {
        let nonblock = mode.is_nonblocking();
        match self.pair.ty {
            SocketType::Stream => self.stream_send(buf, nonblock),
            _ => self.dgram_send(buf, nonblock),
        }
    }
    fn release(&self) {
        self.release_sock(false)
    }
}

/// A connected pair of ends not yet wrapped in descriptions: a client and its embryo (the
/// end a listener queues until `accept`; see [`super::listener`]).
pub(crate) fn connected_ends(ty: SocketType) -> (Arc<UnixSocket>, Arc<UnixSocket>) {
    let pair = Arc::new(Pair {
        ty,
        ends: Mutex::new([End::new(), End::new()]),
        wq: [WaitQueue::new(), WaitQueue::new()],
    });
    let client = Arc::new(UnixSocket {
        pair: pair.clone(),
        me: 0,
    });
    (client, Arc::new(UnixSocket { pair, me: 1 }))
}

impl UnixSocket {
    /// Release an embryo whose listener was closed before accepting it (see
    /// [`UnixSocket::release_sock`]).
    pub(crate) fn release_embryo(&self) {
        self.release_sock(true)
    }
}

fn socket_of(file: &File) -> Result<&UnixSocket> {
    file.downcast::<UnixSocket>().ok_or(Errno::ENOTSOCK)
}

impl FdTable {
    /// `socketpair(AF_UNIX, ty | flags, 0)`: flags `SOCK_NONBLOCK`, `SOCK_CLOEXEC`; anything
    /// else is `EINVAL`.
    ///
    /// ```
    /// use eventpoll::{FdTable, objects::socket::SocketType};
    /// let t = FdTable::new();
    /// let (a, b) = t.socketpair(SocketType::SeqPacket, 0).unwrap();
    /// assert_eq!(t.write(a, b"msg"), Ok(3));
    /// let mut buf = [0u8; 2];
    /// assert_eq!(t.read(b, &mut buf), Ok(2)); // the rest of the message is discarded
    /// ```
    pub fn socketpair(&self, ty: SocketType, flags: i32) -> Result<(i32, i32)> {
        if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let (a, b) = socketpair(ty, flags);
        self.install_pair(a, b, flags & SOCK_CLOEXEC)
    }

    /// `shutdown(fd, how)`: `ENOTSOCK` for a descriptor that is not a socket, `EINVAL` for
    /// a bad `how`.
    pub fn shutdown(&self, fd: i32, how: i32) -> Result<()> {
        let _wakes = crate::wait_queue::deferred::Unparks::begin(); // as FdTable::write
        let file = self.get(fd)?;
        if let Some(l) = file.downcast::<super::listener::UnixListener>() {
            return l.shutdown(how);
        }
        socket_of(&file)?.shutdown(how)
    }

    /// `setsockopt(fd, SOL_SOCKET, SO_SNDBUF, val)`.
    ///
    /// Linux: [socket(7) (`SO_SNDBUF`)](https://man7.org/linux/man-pages/man7/socket.7.html).
    #[doc(alias = "SO_SNDBUF", alias = "setsockopt")]
    pub fn set_sndbuf(&self, fd: i32, val: i32) -> Result<()> {
        let file = self.get(fd)?;
        socket_of(&file)?.set_send_buffer_size(val);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testutil::{join_within, Recorder};
    use crate::Interrupt;
    use std::time::Duration;

    const NB: i32 = O_NONBLOCK;
    const ALL: [SocketType; 3] = [SocketType::Stream, SocketType::Dgram, SocketType::SeqPacket];
    const IN_RD: Events = Events::IN.union(Events::RDNORM);
    const SHUT_BITS: Events = Events::HUP.union(Events::RDHUP).union(IN_RD);

    fn sock(f: &File) -> &UnixSocket {
        f.downcast::<UnixSocket>().unwrap()
    }
    fn queue(f: &File) -> &WaitQueue {
        f.ops().wait_queue().unwrap()
    }
    fn read_vec(f: &File, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        f.read(&mut b).map(|k| b[..k].to_vec())
    }
    /// Non-blocking `n`-byte sends until EAGAIN: (successful sends, sends after which OUT
    /// was still reported).
    fn fill(f: &File, n: usize) -> (usize, usize) {
        let data = vec![1u8; n];
        let (mut ok, mut out) = (0, 0);
        loop {
            match f.write(&data) {
                Ok(k) => {
                    assert_eq!(k, n);
                    ok += 1;
                    if f.poll().contains(Events::OUT) {
                        out = ok;
                    }
                }
                Err(Errno::EAGAIN) => return (ok, out),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }

    // Kernel: SIOCOUTQ after one non-blocking send of n bytes on a fresh pair.
    #[test]
    fn truesize_matches_kernel_outq() {
        let stream = [
            (0, 0),
            (1, 768),
            (192, 768),
            (200, 1280),
            (512, 1280),
            (1000, 2304),
            (2048, 4352),
            (3776, 4352),
            (3777, 4864),
            (4096, 4864),
            (5000, 6400),
            (8000, 8960),
            (16_384, 17_152),
            (32_768, 33_536),
            (50_000, 51_712),
            (65_536, 67_072),
            (100_000, 103_168),
            (106_432, 108_288),
            (110_000, 112_640),
            (200_000, 204_288),
            (212_992, 216_576),
        ];
        for (n, outq) in stream {
            let (a, _b) = socketpair(SocketType::Stream, NB);
            assert_eq!(a.write(&vec![0; n]), Ok(n));
            assert_eq!(sock(&a).outq(), outq, "stream {n}");
        }
        let dgram = [
            (0, 768),
            (1, 768),
            (192, 768),
            (200, 1280),
            (1000, 2304),
            (3776, 4352),
            (3777, 8448),
            (5000, 8448),
            (8000, 16_640),
            (16_384, 20_736),
            (32_768, 37_120),
            (50_000, 53_504),
            (65_536, 69_888),
            (100_000, 102_656),
            (106_432, 135_424),
            (110_000, 135_424),
            (200_000, 200_960),
            (212_960, 332_032),
        ];
        for ty in [SocketType::Dgram, SocketType::SeqPacket] {
            for (n, outq) in dgram {
                let (a, _b) = socketpair(ty, NB);
                assert_eq!(a.write(&vec![0; n]), Ok(n));
                assert_eq!(sock(&a).outq(), outq, "{ty:?} {n}");
            }
            // Kernel: 212,961 bytes (> sndbuf - 32) is EMSGSIZE.
            let (a, _b) = socketpair(ty, NB);
            assert_eq!(a.write(&vec![0; 212_961]), Err(Errno::EMSGSIZE));
        }
        // Kernel: a 300,000-byte non-blocking stream send writes 219,264 (outq 222,720).
        let (a, _b) = socketpair(SocketType::Stream, NB);
        assert_eq!(a.write(&vec![0; 300_000]), Ok(219_264));
        assert_eq!(sock(&a).outq(), 222_720);
    }

    // Kernel: sends until EAGAIN and the last send after which OUT was still reported.
    #[test]
    fn capacity_matches_kernel() {
        let cases = [
            (SocketType::Stream, 1, 278, 69),
            (SocketType::Stream, 100, 278, 69),
            (SocketType::Stream, 1000, 93, 23),
            (SocketType::Stream, 4096, 44, 10),
            (SocketType::Stream, 10_000, 17, 4),
            (SocketType::Dgram, 1, 278, 69),
            (SocketType::Dgram, 1000, 93, 23),
            (SocketType::Dgram, 4096, 26, 6),
            (SocketType::Dgram, 10_000, 13, 3),
            (SocketType::SeqPacket, 100, 278, 69),
            (SocketType::SeqPacket, 4096, 26, 6),
        ];
        for (ty, n, sends, out) in cases {
            let (a, b) = socketpair(ty, NB);
            assert_eq!(fill(&a, n), (sends, out), "{ty:?} {n}");
            assert_eq!(a.poll(), Events::empty());
            // Kernel: the full sender's peer polls 0x345.
            assert_eq!(b.poll(), IN_RD | WRITABLE);
        }
    }

    #[test]
    fn small_sndbuf_like_kernel() {
        // Kernel: SO_SNDBUF 1 -> 4608, 4000 -> 8000, 100000 -> 200000, 1e7 -> 8388608.
        let (a, _b) = socketpair(SocketType::Stream, NB);
        for (val, got) in [
            (1, 4608),
            (4000, 8000),
            (100_000, 200_000),
            (10_000_000, 8_388_608),
        ] {
            sock(&a).set_send_buffer_size(val);
            assert_eq!(sock(&a).send_buffer_size(), got);
        }
        // Kernel, sndbuf 4608: six 1-byte stream sends; a 10,000-byte send writes 4480 (two
        // skbs of 4608/2 - 64 = 2240); a 4577-byte datagram is EMSGSIZE, 4576 fits.
        let (a, _b) = socketpair(SocketType::Stream, NB);
        sock(&a).set_send_buffer_size(1);
        assert_eq!(fill(&a, 1).0, 6);
        let (a, _b) = socketpair(SocketType::Stream, NB);
        sock(&a).set_send_buffer_size(1);
        assert_eq!(a.write(&[0; 10_000]), Ok(4480));
        let (a, _b) = socketpair(SocketType::Dgram, NB);
        sock(&a).set_send_buffer_size(1);
        assert_eq!(a.write(&[0; 4577]), Err(Errno::EMSGSIZE));
        assert_eq!(a.write(&[0; 4576]), Ok(4576));
    }

    #[test]
    fn stream_data_and_partial_reads() {
        let (a, b) = socketpair(SocketType::Stream, NB);
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(a.write(&data), Ok(150_000));
        // Reads merge skbs and may return less than asked only at the end of the data.
        let mut got = Vec::new();
        let mut n = 1;
        while got.len() < data.len() {
            got.extend(read_vec(&b, n).unwrap());
            n = n * 3 + 7;
        }
        assert_eq!(got, data);
        assert_eq!(read_vec(&b, 10), Err(Errno::EAGAIN));
        // Kernel: "ab" + "cd" read as "abcd".
        a.write(b"ab").unwrap();
        a.write(b"cd").unwrap();
        assert_eq!(read_vec(&b, 10).unwrap(), b"abcd");
    }

    #[test]
    fn message_boundaries() {
        for ty in [SocketType::Dgram, SocketType::SeqPacket] {
            let (a, b) = socketpair(ty, NB);
            a.write(b"hello").unwrap();
            a.write(b"").unwrap();
            a.write(b"world").unwrap();
            // Kernel: recv(2) of "hello" gives "he", the rest is gone (next read EAGAIN
            // when nothing else is queued).
            assert_eq!(read_vec(&b, 2).unwrap(), b"he");
            assert_eq!(read_vec(&b, 100).unwrap(), b"", "empty datagram");
            assert_eq!(read_vec(&b, 100).unwrap(), b"world");
            assert_eq!(read_vec(&b, 100), Err(Errno::EAGAIN));
        }
    }

    #[test]
    fn zero_length_io() {
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            // Kernel: read(fd, buf, 0) returns 0 at once, data or not, consuming nothing.
            assert_eq!(b.read(&mut []), Ok(0));
            a.write(b"abc").unwrap();
            assert_eq!(b.read(&mut []), Ok(0));
            assert_eq!(read_vec(&b, 10).unwrap(), b"abc");
            // Kernel: a 0-byte stream send sends nothing; a 0-byte datagram is a message.
            let rec = Recorder::attach(queue(&b));
            assert_eq!(a.write(b""), Ok(0));
            let expect_msg = ty != SocketType::Stream;
            assert_eq!(rec.count(), usize::from(expect_msg));
            assert_eq!(b.poll().contains(Events::IN), expect_msg);
        }
    }

    // Kernel, poll with all bits (see the module docs for each).
    #[test]
    fn shutdown_masks() {
        for ty in ALL {
            let conn = ty.connection_based();
            let (a, b) = socketpair(ty, NB);
            assert_eq!(a.poll(), WRITABLE); // 0x304
            sock(&b).shutdown(SHUT_WR).unwrap();
            // stream/seqpacket: a 0x2345 (RDHUP|IN|RDNORM|OUT...); dgram: unchanged 0x304.
            let rd_shut = Events::RDHUP | IN_RD;
            assert_eq!(
                a.poll(),
                if conn { rd_shut | WRITABLE } else { WRITABLE },
                "{ty:?}"
            );
            assert_eq!(b.poll(), WRITABLE);
            assert_eq!(b.write(b"z"), Err(Errno::EPIPE));
            assert_eq!(a.write(b"z"), Ok(1));
            let r = read_vec(&a, 10);
            assert_eq!(r, if conn { Ok(vec![]) } else { Err(Errno::EAGAIN) });

            let (a, b) = socketpair(ty, NB);
            sock(&a).shutdown(SHUT_RD).unwrap();
            assert_eq!(a.poll(), rd_shut | WRITABLE); // 0x2345 for all types
                                                      // dgram non-blocking read after own SHUT_RD: EAGAIN; others 0.
            let r = read_vec(&a, 10);
            assert_eq!(r, if conn { Ok(vec![]) } else { Err(Errno::EAGAIN) });
            assert_eq!(b.write(b"z"), Err(Errno::EPIPE));
            assert_eq!(a.write(b"z"), Ok(1));

            let (a, b) = socketpair(ty, NB);
            sock(&a).shutdown(SHUT_RDWR).unwrap();
            assert_eq!(a.poll(), SHUT_BITS | WRITABLE); // 0x2355
            assert_eq!(b.poll(), if conn { SHUT_BITS | WRITABLE } else { WRITABLE });

            let (a, b) = socketpair(ty, NB);
            sock(&a).shutdown(SHUT_WR).unwrap();
            sock(&b).shutdown(SHUT_WR).unwrap();
            let both = if conn { SHUT_BITS | WRITABLE } else { WRITABLE };
            assert_eq!((a.poll(), b.poll()), (both, both));
            // Own SHUT_WR: even a 0-byte write is EPIPE.
            assert_eq!(a.write(b""), Err(Errno::EPIPE));
            assert_eq!(sock(&a).shutdown(3), Err(Errno::EINVAL));
            assert_eq!(sock(&a).shutdown(-1), Err(Errno::EINVAL));
        }
    }

    #[test]
    fn shutdown_with_queued_data_still_reads_it() {
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            b.write(b"d").unwrap();
            sock(&a).shutdown(SHUT_RD).unwrap();
            assert_eq!(read_vec(&a, 10).unwrap(), b"d");
        }
    }

    #[test]
    fn close_with_unread_data() {
        // Kernel: a sends "x" (unread by b), b sends "y" (unread by a), b closes.
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            a.write(b"x").unwrap();
            b.write(b"y").unwrap();
            drop(b);
            match ty {
                SocketType::Stream => {
                    assert_eq!(a.poll(), Events::ERR | SHUT_BITS | WRITABLE); // 0x235d
                    assert_eq!(read_vec(&a, 100).unwrap(), b"y");
                    assert_eq!(read_vec(&a, 100), Err(Errno::ECONNRESET));
                    assert_eq!(read_vec(&a, 100).unwrap(), b"");
                    assert_eq!(a.poll(), SHUT_BITS | WRITABLE); // 0x2355
                    assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
                }
                SocketType::SeqPacket => {
                    assert_eq!(a.poll(), Events::ERR | SHUT_BITS | WRITABLE);
                    assert_eq!(read_vec(&a, 100), Err(Errno::ECONNRESET));
                    assert_eq!(read_vec(&a, 100).unwrap(), b"y");
                    assert_eq!(read_vec(&a, 100).unwrap(), b"");
                    assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
                }
                SocketType::Dgram => {
                    assert_eq!(a.poll(), IN_RD | WRITABLE); // 0x345
                    assert_eq!(read_vec(&a, 100).unwrap(), b"y");
                    assert_eq!(read_vec(&a, 100), Err(Errno::EAGAIN));
                    assert_eq!(a.write(b"z"), Err(Errno::ECONNREFUSED));
                    assert_eq!(a.write(b"z"), Err(Errno::ENOTCONN));
                    assert_eq!(a.poll(), WRITABLE);
                }
            }
        }
    }

    #[test]
    fn unread_empty_messages_do_not_reset() {
        // Kernel: seqpacket a sends b"" (b polls IN), b closes: a gets no ERR (0x2355);
        // with b"x" (alone, before or after an empty one) or two empty ones it does (0x235d).
        let e: &[u8] = b"";
        let x: &[u8] = b"x";
        for (msgs, err) in [
            (vec![e], false),
            (vec![x], true),
            (vec![e, x], true),
            (vec![x, e], true),
            (vec![e, e], true),
        ] {
            let (a, b) = socketpair(SocketType::SeqPacket, NB);
            for m in &msgs {
                a.write(m).unwrap();
            }
            drop(b);
            assert_eq!(a.poll().contains(Events::ERR), err, "{msgs:?}");
        }
        // A partly read stream skb still has unread bytes.
        let (a, b) = socketpair(SocketType::Stream, NB);
        a.write(b"xy").unwrap();
        read_vec(&b, 1).unwrap();
        drop(b);
        assert!(a.poll().contains(Events::ERR));
    }

    #[test]
    fn write_first_after_close() {
        // Kernel: same set-up, but the survivor writes before reading.
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            a.write(b"x").unwrap();
            b.write(b"y").unwrap();
            drop(b);
            match ty {
                SocketType::Stream => {
                    assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
                    assert_eq!(a.poll(), Events::ERR | SHUT_BITS | WRITABLE);
                    assert_eq!(read_vec(&a, 100).unwrap(), b"y");
                    assert_eq!(read_vec(&a, 100), Err(Errno::ECONNRESET));
                }
                SocketType::SeqPacket => {
                    assert_eq!(a.write(b"z"), Err(Errno::ECONNRESET));
                    assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
                    assert_eq!(a.poll(), SHUT_BITS | WRITABLE);
                    assert_eq!(read_vec(&a, 100).unwrap(), b"y");
                    assert_eq!(read_vec(&a, 100).unwrap(), b"");
                }
                SocketType::Dgram => {
                    // ECONNREFUSED disconnects and drops what a had received.
                    assert_eq!(a.write(b"z"), Err(Errno::ECONNREFUSED));
                    assert_eq!(read_vec(&a, 100), Err(Errno::EAGAIN));
                }
            }
        }
    }

    #[test]
    fn clean_close() {
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            drop(b);
            if ty.connection_based() {
                assert_eq!(a.poll(), SHUT_BITS | WRITABLE); // 0x2355
                assert_eq!(read_vec(&a, 10).unwrap(), b"");
                assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
            } else {
                assert_eq!(a.poll(), WRITABLE); // 0x304
                assert_eq!(read_vec(&a, 10), Err(Errno::EAGAIN));
            }
        }
    }

    // Kernel, edge-triggered items: every send reports the peer's IN item again; a partial
    // stream read does not report the sender's OUT item, consuming the skb does; a partial
    // datagram read consumes the message.
    #[test]
    fn data_wakeups() {
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            let rb = Recorder::attach(queue(&b));
            let ra = Recorder::attach(queue(&a));
            a.write(b"1").unwrap();
            a.write(b"2").unwrap();
            assert_eq!(rb.keys(), vec![READABLE_KEY, READABLE_KEY]);
            assert_eq!(ra.count(), 0, "sending does not wake the sender");
            let (a, b) = socketpair(ty, NB);
            let ra = Recorder::attach(queue(&a));
            a.write(b"12345").unwrap();
            read_vec(&b, 2).unwrap();
            if ty == SocketType::Stream {
                assert_eq!(ra.count(), 0);
                read_vec(&b, 10).unwrap();
            }
            assert_eq!(ra.keys(), vec![WRITABLE]);
        }
    }

    #[test]
    fn write_space_only_when_writable() {
        // Kernel: 93 thousand-byte sends fill; reading one does not report OUT, nor down to
        // 30 left; at 20 left it has been reported.
        let (a, b) = socketpair(SocketType::Stream, NB);
        let ra = Recorder::attach(queue(&a));
        assert_eq!(fill(&a, 1000).0, 93);
        read_vec(&b, 1000).unwrap();
        assert_eq!(ra.count(), 0);
        for _ in 0..(93 - 30 - 1) {
            read_vec(&b, 1000).unwrap();
        }
        assert_eq!(ra.count(), 0);
        // 23 left is the first writable state: (23 * 2304 + 2) * 4 <= 212992.
        for left in (20..30).rev() {
            read_vec(&b, 1000).unwrap();
            assert_eq!(ra.count() > 0, left <= 23, "{left} left");
        }
        assert!(a.poll().contains(Events::OUT));
    }

    #[test]
    fn shutdown_and_close_wakeups() {
        for ty in ALL {
            let conn = ty.connection_based();
            let (a, b) = socketpair(ty, NB);
            let (ra, rb) = (Recorder::attach(queue(&a)), Recorder::attach(queue(&b)));
            sock(&a).shutdown(SHUT_WR).unwrap();
            assert_eq!(ra.keys(), vec![Events::empty()]);
            assert_eq!(rb.count(), usize::from(conn), "{ty:?}");
            sock(&a).shutdown(SHUT_RD).unwrap();
            assert_eq!(ra.count(), 2);

            // Close with the peer's data unread: peer woken with key 0 (stream/seqpacket), and
            // with OUT for its freed skb (kernel: dgram peer's ET OUT item reported).
            let (a, b) = socketpair(ty, NB);
            let rb = Recorder::attach(queue(&b));
            b.write(b"x").unwrap();
            drop(a);
            let mut expect = Vec::new();
            if conn {
                expect.push(Events::empty());
            }
            expect.push(WRITABLE);
            assert_eq!(rb.keys(), expect, "{ty:?}");
            // Clean close: dgram peer not woken at all.
            let (a, b) = socketpair(ty, NB);
            let rb = Recorder::attach(queue(&b));
            drop(a);
            assert_eq!(rb.count(), usize::from(conn));
        }
    }

    #[test]
    fn failed_dgram_sends_wake_sender() {
        // Kernel 6.18: EPIPE (peer SHUT_RD), ECONNREFUSED and ENOTCONN report the sender's ET
        // OUT item again; EMSGSIZE, EAGAIN and EPIPE from its own SHUT_WR do not.
        let (a, b) = socketpair(SocketType::Dgram, NB);
        let ra = Recorder::attach(queue(&a));
        sock(&b).shutdown(SHUT_RD).unwrap();
        assert_eq!(ra.count(), 0, "dgram shutdown does not wake the peer");
        assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
        assert_eq!(ra.keys(), vec![WRITABLE]);
        assert_eq!(a.write(&vec![0; 300_000]), Err(Errno::EMSGSIZE));
        assert_eq!(ra.count(), 1);
        drop(b);
        assert_eq!(a.write(b"z"), Err(Errno::ECONNREFUSED));
        assert_eq!(a.write(b"z"), Err(Errno::ENOTCONN));
        assert_eq!(ra.count(), 3);
        let (a, _b) = socketpair(SocketType::Dgram, NB);
        let ra = Recorder::attach(queue(&a));
        sock(&a).shutdown(SHUT_WR).unwrap();
        assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
        assert_eq!(ra.count(), 1, "only the shutdown's own wake");
        // Stream/seqpacket EPIPE sends do not wake.
        for ty in [SocketType::Stream, SocketType::SeqPacket] {
            let (a, b) = socketpair(ty, NB);
            let ra = Recorder::attach(queue(&a));
            sock(&b).shutdown(SHUT_RD).unwrap();
            let before = ra.count();
            assert_eq!(a.write(b"z"), Err(Errno::EPIPE));
            assert_eq!(ra.count(), before);
        }
    }

    #[test]
    fn table_calls() {
        let t = FdTable::new();
        assert_eq!(t.socketpair(SocketType::Stream, 1), Err(Errno::EINVAL));
        let (a, b) = t
            .socketpair(SocketType::Stream, SOCK_NONBLOCK | SOCK_CLOEXEC)
            .unwrap();
        assert_eq!(t.cloexec(a), Ok(true));
        assert!(t.get(b).unwrap().is_nonblocking());
        assert_eq!(t.shutdown(a, 5), Err(Errno::EINVAL));
        assert_eq!(t.shutdown(a, SHUT_WR), Ok(()));
        assert_eq!(t.read(b, &mut [0; 4]), Ok(0));
        let (r, _w) = t.pipe2(0).unwrap();
        assert_eq!(t.shutdown(r, SHUT_WR), Err(Errno::ENOTSOCK));
        assert_eq!(t.shutdown(100, SHUT_WR), Err(Errno::EBADF));
        assert_eq!(t.set_sndbuf(a, 1), Ok(()));
        assert_eq!(t.set_sndbuf(r, 1), Err(Errno::ENOTSOCK));
        // A dup'd descriptor keeps the socket open: the peer sees HUP only after the last
        // one is closed.
        let (c, d) = t.socketpair(SocketType::Stream, 0).unwrap();
        let c2 = t.dup(c).unwrap();
        t.close(c).unwrap();
        assert!(!t.get(d).unwrap().poll().contains(Events::HUP));
        t.close(c2).unwrap();
        assert!(t.get(d).unwrap().poll().contains(Events::HUP));
    }

    #[test]
    fn blocking_stream_read_and_write() {
        let (a, b) = socketpair(SocketType::Stream, 0);
        let data: Vec<u8> = (0..500_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let expected = data.clone();
        let t = std::thread::spawn(move || a.write(&data));
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.extend(read_vec(&b, 7000).unwrap());
        }
        assert_eq!(join_within(t), Ok(500_000));
        assert_eq!(got, expected);
    }

    #[test]
    fn blocking_reads_wake_on_data_and_shutdown() {
        for ty in ALL {
            let (a, b) = socketpair(ty, 0);
            let b2 = b.clone();
            let t = std::thread::spawn(move || read_vec(&b2, 10));
            std::thread::sleep(Duration::from_millis(20));
            a.write(b"hi").unwrap();
            assert_eq!(join_within(t).unwrap(), b"hi");
            // Kernel: a blocked read returns 0 when its own side is shut down (all types).
            let b2 = b.clone();
            let t = std::thread::spawn(move || read_vec(&b2, 10));
            std::thread::sleep(Duration::from_millis(20));
            sock(&b).shutdown(SHUT_RD).unwrap();
            assert_eq!(join_within(t).unwrap(), b"", "{ty:?}");
        }
        // Kernel: a blocked seqpacket/stream read returns 0 when the peer closes.
        for ty in [SocketType::Stream, SocketType::SeqPacket] {
            let (a, b) = socketpair(ty, 0);
            let t = std::thread::spawn(move || read_vec(&b, 10));
            std::thread::sleep(Duration::from_millis(20));
            drop(a);
            assert_eq!(join_within(t).unwrap(), b"");
        }
    }

    #[test]
    fn blocking_write_waits_for_space() {
        for ty in ALL {
            let (a, b) = socketpair(ty, NB);
            sock(&a).set_send_buffer_size(1); // 4608
            fill(&a, 1000);
            a.set_flags(0); // blocking from now on
            let a2 = a.clone();
            let t = std::thread::spawn(move || a2.write(&[9; 100]));
            std::thread::sleep(Duration::from_millis(30));
            assert!(!t.is_finished(), "{ty:?} should block");
            while read_vec(&b, 1000).is_ok_and(|v| v != [9; 100]) {}
            assert_eq!(join_within(t), Ok(100));
        }
    }

    #[test]
    fn blocked_read_is_interrupted() {
        for ty in ALL {
            let (_a, b) = socketpair(ty, 0);
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                tx.send(Interrupt::current()).unwrap();
                read_vec(&b, 10)
            });
            let intr = rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            intr.raise();
            assert_eq!(join_within(t), Err(Errno::EINTR));
        }
    }
}
