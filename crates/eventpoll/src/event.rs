//! Event bits, the `epoll_event` record and the `epoll_ctl` operations, with Linux's values.
//!
//! The bit values are those of `<sys/epoll.h>` (and of `poll(2)` for the low bits), so a mask
//! computed here can be handed to or compared with the kernel unchanged.

use crate::prelude::*;
use bitflags::bitflags;

bitflags! {
    /// A set of epoll/poll event bits (`EPOLLIN`, `EPOLLET`, ...), Linux values.
    ///
    /// Unknown bits are kept (`from_bits_retain`): `epoll_ctl` accepts and stores them, as
    /// Linux does.
    ///
    /// ```
    /// use eventpoll::Events;
    /// let interest = Events::IN | Events::ET;
    /// assert_eq!(interest.bits(), 0x8000_0001);
    /// assert!(Events::from_bits_retain(0x2011).contains(Events::RDHUP));
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct Events: u32 {
        /// Readable (`EPOLLIN`).
        #[doc(alias = "EPOLLIN", alias = "POLLIN")]
        const IN = 0x001;
        /// Urgent / priority data (`EPOLLPRI`).
        #[doc(alias = "EPOLLPRI", alias = "POLLPRI")]
        const PRI = 0x002;
        /// Writable (`EPOLLOUT`).
        #[doc(alias = "EPOLLOUT", alias = "POLLOUT")]
        const OUT = 0x004;
        /// Error condition (`EPOLLERR`); always reported, whatever the interest.
        #[doc(alias = "EPOLLERR", alias = "POLLERR")]
        const ERR = 0x008;
        /// Hang-up (`EPOLLHUP`); always reported, whatever the interest.
        #[doc(alias = "EPOLLHUP", alias = "POLLHUP")]
        const HUP = 0x010;
        /// Invalid descriptor (`POLLNVAL`); only `poll(2)` reports it.
        #[doc(alias = "POLLNVAL")]
        const NVAL = 0x020;
        /// Normal data readable (`EPOLLRDNORM`).
        #[doc(alias = "EPOLLRDNORM")]
        const RDNORM = 0x040;
        /// Priority band data readable (`EPOLLRDBAND`).
        #[doc(alias = "EPOLLRDBAND")]
        const RDBAND = 0x080;
        /// Normal data writable (`EPOLLWRNORM`).
        #[doc(alias = "EPOLLWRNORM")]
        const WRNORM = 0x100;
        /// Priority band data writable (`EPOLLWRBAND`).
        #[doc(alias = "EPOLLWRBAND")]
        const WRBAND = 0x200;
        /// `EPOLLMSG` (unused by Linux itself).
        #[doc(alias = "EPOLLMSG")]
        const MSG = 0x400;
        /// Peer closed its writing half / own read side shut down (`EPOLLRDHUP`).
        #[doc(alias = "EPOLLRDHUP")]
        const RDHUP = 0x2000;
        /// Exclusive wakeup (`EPOLLEXCLUSIVE`, ADD only).
        #[doc(alias = "EPOLLEXCLUSIVE")]
        const EXCLUSIVE = 1 << 28;
        /// Keep the system awake (`EPOLLWAKEUP`); needs `CAP_BLOCK_SUSPEND`.
        #[doc(alias = "EPOLLWAKEUP")]
        const WAKEUP = 1 << 29;
        /// Report once, then disable until `EPOLL_CTL_MOD` (`EPOLLONESHOT`).
        #[doc(alias = "EPOLLONESHOT")]
        const ONESHOT = 1 << 30;
        /// Edge-triggered: report once per wakeup (`EPOLLET`).
        #[doc(alias = "EPOLLET")]
        const ET = 1 << 31;
    }
}

impl Events {
    /// The bits that are flags of an interest rather than conditions (`EP_PRIVATE_BITS`):
    /// an item whose interest has nothing else is disabled.
    pub const PRIVATE: Events = Events::WAKEUP
        .union(Events::ONESHOT)
        .union(Events::ET)
        .union(Events::EXCLUSIVE);

    /// The only bits allowed together with `EXCLUSIVE` (`EPOLLEXCLUSIVE_OK_BITS`).
    pub const EXCLUSIVE_OK: Events = Events::IN
        .union(Events::OUT)
        .union(Events::ERR)
        .union(Events::HUP)
        .union(Events::WAKEUP)
        .union(Events::ET)
        .union(Events::EXCLUSIVE);

    /// Lower-case names in ascending bit order, as the conformance transcripts print them
    /// (`in|rdnorm`); `0` for the empty set; unknown bits as hex.
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert_eq!((Events::RDNORM | Events::IN).names(), "in|rdnorm");
    /// assert_eq!(Events::empty().names(), "0");
    /// ```
    pub fn names(self) -> String {
        const NAMES: [(u32, &str); 16] = [
            (0x001, "in"),
            (0x002, "pri"),
            (0x004, "out"),
            (0x008, "err"),
            (0x010, "hup"),
            (0x020, "nval"),
            (0x040, "rdnorm"),
            (0x080, "rdband"),
            (0x100, "wrnorm"),
            (0x200, "wrband"),
            (0x400, "msg"),
            (0x2000, "rdhup"),
            (1 << 28, "exclusive"),
            (1 << 29, "wakeup"),
            (1 << 30, "oneshot"),
            (1 << 31, "et"),
        ];
        let bits = self.bits();
        if bits == 0 {
            return "0".to_string();
        }
        let mut out = String::new();
        let mut known = 0;
        for (bit, name) in NAMES {
            known |= bit;
            if bits & bit != 0 {
                if !out.is_empty() {
                    out.push('|');
                }
                out.push_str(name);
            }
        }
        let unknown = bits & !known;
        if unknown != 0 {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(&format!("{unknown:#x}"));
        }
        out
    }
}

/// One event as `epoll_wait` returns it and `epoll_ctl` takes it: Linux's `struct
/// epoll_event`, with the same layout (packed on x86-64), so a buffer of these can be handed
/// to C unchanged.
///
/// ```
/// use eventpoll::{EpollEvent, Events};
/// let ev = EpollEvent::new(Events::IN, 7);
/// assert_eq!((ev.events(), ev.data()), (Events::IN, 7));
/// ```
#[repr(C)]
#[cfg_attr(target_arch = "x86_64", repr(packed))]
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// The event bits (`u32`, Linux's `__poll_t`).
    pub events: u32,
    /// The user's data, returned unchanged.
    pub data: u64,
}

impl EpollEvent {
    /// An event record with these bits and data.
    pub const fn new(events: Events, data: u64) -> Self {
        EpollEvent {
            events: events.bits(),
            data,
        }
    }
    /// The event bits.
    pub fn events(&self) -> Events {
        Events::from_bits_retain(self.events)
    }
    /// The user's data.
    pub fn data(&self) -> u64 {
        self.data
    }
}

impl core::fmt::Debug for EpollEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (events, data) = (self.events, self.data);
        f.debug_struct("EpollEvent")
            .field("events", &Events::from_bits_retain(events))
            .field("data", &data)
            .finish()
    }
}

/// Where a harvest puts its events: Linux's `epoll_put_uevent` into the caller's buffer.
/// A slice is the plain case (an event beyond its end does not fit); the C ABI implements
/// it over the program's memory, where a slot can be unwritable.
pub trait EventSink {
    /// Store the `i`-th event of this harvest (`i` counts from 0 and grows by one).
    /// `false` when slot `i` cannot be written: the harvest stops there and the event stays
    /// on the ready list, unreported (`EFAULT` when `i` is 0), as on Linux.
    fn put(&mut self, i: usize, event: EpollEvent) -> bool;

    /// How many of the `want` slots from slot `from` on can take an event, counting up to
    /// the first that cannot: the harvest polls no further ahead than that (an item beyond
    /// a failing copy must not be polled, as on Linux).
    fn room(&mut self, from: usize, want: usize) -> usize;

    /// The item behind the event just stored by [`EventSink::put`] (called right after a
    /// successful `put` when [`EventSink::records`], with the interest list locked: store,
    /// do not call back into the engine). A run-time checker records which item each
    /// event came from, so that it looks at the reported items only; the default ignores
    /// it.
    #[inline]
    fn reported(&mut self, _item: ReportedItem) {}

    /// Whether this sink wants [`EventSink::reported`] calls: a harvest into a sink that
    /// does not (the default) skips even looking the item up.
    #[inline]
    fn records(&self) -> bool {
        false
    }
}

/// The item an event came from, as a harvest hands it to [`EventSink::reported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportedItem {
    /// The descriptor number the item was added with.
    pub fd: i32,
    /// The watched description's [`File::description_id`](crate::File::description_id).
    pub target: usize,
    /// The item's stored mask when it was reported (flags included; a one-shot item is
    /// disabled just after).
    pub events: Events,
    /// The reported bits.
    pub revents: Events,
    /// The user data.
    pub data: u64,
}

/// An [`EventSink`] that passes everything on to `inner` and keeps the
/// [`ReportedItem`]s of the harvest in `items`.
///
/// ```
/// use eventpoll::{Epoll, EpollEvent, Interest, RecordingSink, objects::pipe::pipe};
/// let epoll = Epoll::new();
/// let (r, w) = pipe(0);
/// epoll.add(&r, Interest::READABLE, 3).unwrap();
/// w.write(b"x").unwrap();
/// let mut buf = [EpollEvent::default(); 4];
/// let mut sink = RecordingSink::new(&mut buf[..]);
/// assert_eq!(epoll.wait_into_sink(&mut sink, 4, None), Ok(1));
/// assert_eq!(sink.items[0].target, r.description_id());
/// ```
pub struct RecordingSink<'a, S: EventSink + ?Sized> {
    /// Where the events go.
    pub inner: &'a mut S,
    /// The items of the events stored, in order.
    pub items: Vec<ReportedItem>,
}

impl<'a, S: EventSink + ?Sized> RecordingSink<'a, S> {
    /// Record the items of the events put into `inner`.
    pub fn new(inner: &'a mut S) -> Self {
        RecordingSink {
            inner,
            items: Vec::with_capacity(16),
        }
    }
}

impl<S: EventSink + ?Sized> EventSink for RecordingSink<'_, S> {
    fn put(&mut self, i: usize, event: EpollEvent) -> bool {
        self.inner.put(i, event)
    }

    fn room(&mut self, from: usize, want: usize) -> usize {
        self.inner.room(from, want)
    }

    fn reported(&mut self, item: ReportedItem) {
        self.items.push(item);
    }

    fn records(&self) -> bool {
        true
    }
}

impl EventSink for [EpollEvent] {
    fn room(&mut self, from: usize, want: usize) -> usize {
        self.len().saturating_sub(from).min(want)
    }

    fn put(&mut self, i: usize, event: EpollEvent) -> bool {
        match self.get_mut(i) {
            Some(slot) => {
                *slot = event;
                true
            }
            None => false,
        }
    }
}

/// `EPOLL_CTL_ADD`.
pub const EPOLL_CTL_ADD: i32 = 1;
/// `EPOLL_CTL_DEL`.
pub const EPOLL_CTL_DEL: i32 = 2;
/// `EPOLL_CTL_MOD`.
pub const EPOLL_CTL_MOD: i32 = 3;
/// `EPOLL_CLOEXEC` (= `O_CLOEXEC`), the only flag `epoll_create1` accepts.
pub const EPOLL_CLOEXEC: i32 = 0o2000000;
/// `O_NONBLOCK`, for the `*_NONBLOCK` flags of pipe2, eventfd, socketpair and timerfd.
pub const O_NONBLOCK: i32 = 0o4000;
/// `O_CLOEXEC`.
pub const O_CLOEXEC: i32 = 0o2000000;
/// `O_DIRECT` (x86-64, generic): packet mode for `pipe2`.
pub const O_DIRECT: i32 = 0o40000;

/// The largest `maxevents` Linux accepts: `INT_MAX / sizeof(struct epoll_event)`.
pub const EP_MAX_EVENTS: i32 = i32::MAX / core::mem::size_of::<EpollEvent>() as i32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_linux() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(core::mem::size_of::<EpollEvent>(), 12);
        assert_eq!(Events::ET.bits(), 0x8000_0000);
        assert_eq!(Events::PRIVATE.bits(), 0xf000_0000);
        assert_eq!(EP_MAX_EVENTS, i32::MAX / 12);
    }

    #[test]
    fn names_are_ascending_and_total() {
        assert_eq!(Events::from_bits_retain(0x2019).names(), "in|err|hup|rdhup");
        assert_eq!(Events::from_bits_retain(0x800).names(), "0x800");
    }
}
