//! Readiness helpers on [`Events`] and [`EpollEvent`]: `is_readable`, `is_writable`,
//! `is_read_closed`, ... — the questions an event loop asks of a returned event, answered
//! from Linux's bits.
//!
//! Each helper is a fixed test of the bits, written out in its docs. They mean what mio's
//! `Event` helpers mean on Linux (mio's epoll selector tests the same bits), so code ported
//! from mio reads the same events the same way; `is_hangup` is the plain `EPOLLHUP` test.
//! Which bits an object reports, and when, is the object's (see each object's `poll`): a
//! pipe whose writers are gone reports `HUP`, its write end whose readers are gone `ERR`; a
//! stream socket whose peer shut down writing reports `IN | RDHUP`.

use crate::event::{EpollEvent, Events};

impl Events {
    /// Data can be read: `IN` or `PRI` (urgent data is readable too, as in mio).
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!((Events::IN | Events::RDNORM).is_readable());
    /// assert!(Events::PRI.is_readable());
    /// assert!(!Events::OUT.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.intersects(Events::IN.union(Events::PRI))
    }

    /// Data can be written: `OUT`.
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!((Events::OUT | Events::WRNORM).is_writable());
    /// assert!(!Events::WRNORM.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.contains(Events::OUT)
    }

    /// An error is pending on the file: `ERR` (always reported, whatever the interest).
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!((Events::OUT | Events::ERR).is_error());
    /// assert!(!Events::HUP.is_error());
    /// ```
    pub const fn is_error(self) -> bool {
        self.contains(Events::ERR)
    }

    /// The reading side is closed — no more data will come after what is buffered: `HUP`,
    /// or `IN` together with `RDHUP` (the peer shut down writing; `RDHUP` is only reported
    /// when it is in the interest).
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!(Events::HUP.is_read_closed());
    /// assert!((Events::IN | Events::RDHUP).is_read_closed());
    /// assert!(!Events::RDHUP.is_read_closed());
    /// ```
    pub const fn is_read_closed(self) -> bool {
        self.contains(Events::HUP) || self.contains(Events::IN.union(Events::RDHUP))
    }

    /// The writing side is closed — a write would fail: `HUP`, or `OUT` together with `ERR`,
    /// or `ERR` alone (a pipe's write end whose readers are all gone reports `ERR`).
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!(Events::HUP.is_write_closed());
    /// assert!((Events::OUT | Events::ERR).is_write_closed());
    /// assert!(Events::ERR.is_write_closed());
    /// assert!(!(Events::IN | Events::ERR).is_write_closed());
    /// ```
    pub const fn is_write_closed(self) -> bool {
        self.contains(Events::HUP)
            || self.contains(Events::OUT.union(Events::ERR))
            || self.bits() == Events::ERR.bits()
    }

    /// Urgent data can be read: `PRI`.
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!((Events::IN | Events::PRI).is_priority());
    /// assert!(!Events::IN.is_priority());
    /// ```
    pub const fn is_priority(self) -> bool {
        self.contains(Events::PRI)
    }

    /// Hang-up: `HUP` (always reported, whatever the interest). A pipe's read end whose
    /// writers are all gone; a socket shut down both ways.
    ///
    /// ```
    /// use eventpoll::Events;
    /// assert!((Events::IN | Events::HUP).is_hangup());
    /// assert!(!Events::RDHUP.is_hangup());
    /// ```
    pub const fn is_hangup(self) -> bool {
        self.contains(Events::HUP)
    }
}

/// The same helpers on a returned event, reading its bits.
///
/// ```
/// use eventpoll::{Epoll, EventBuffer, Interest, objects::pipe::pipe};
/// use std::time::Duration;
/// let (reader, writer) = pipe(0);
/// let epoll = Epoll::new();
/// epoll.add(&reader, Interest::READABLE, 1).unwrap();
/// epoll.add(&writer, Interest::WRITABLE, 2).unwrap();
/// drop(reader); // the last reader: the write end now reports ERR
/// let mut events = EventBuffer::with_capacity(4);
/// epoll.wait(&mut events, Some(Duration::ZERO)).unwrap();
/// let ev = events.iter().find(|e| e.data() == 2).unwrap();
/// assert!(ev.is_writable() && ev.is_error() && ev.is_write_closed());
/// assert!(!ev.is_read_closed());
/// ```
impl EpollEvent {
    /// [`Events::is_readable`] of this event's bits.
    pub fn is_readable(&self) -> bool {
        self.events().is_readable()
    }
    /// [`Events::is_writable`] of this event's bits.
    pub fn is_writable(&self) -> bool {
        self.events().is_writable()
    }
    /// [`Events::is_error`] of this event's bits.
    pub fn is_error(&self) -> bool {
        self.events().is_error()
    }
    /// [`Events::is_read_closed`] of this event's bits.
    pub fn is_read_closed(&self) -> bool {
        self.events().is_read_closed()
    }
    /// [`Events::is_write_closed`] of this event's bits.
    pub fn is_write_closed(&self) -> bool {
        self.events().is_write_closed()
    }
    /// [`Events::is_priority`] of this event's bits.
    pub fn is_priority(&self) -> bool {
        self.events().is_priority()
    }
    /// [`Events::is_hangup`] of this event's bits.
    pub fn is_hangup(&self) -> bool {
        self.events().is_hangup()
    }
}

#[cfg(test)]
mod tests {
    use crate::objects::pipe::pipe;
    use crate::objects::socket::{socketpair, SocketType, UnixSocket};
    use crate::{Epoll, EventBuffer, Events, Interest};
    use std::time::Duration;

    /// The one event of `epoll` (a zero-timeout wait), as the engine reports it.
    fn only_event(epoll: &Epoll) -> crate::EpollEvent {
        let mut events = EventBuffer::with_capacity(4);
        assert_eq!(epoll.wait(&mut events, Some(Duration::ZERO)), Ok(1));
        events.as_slice()[0]
    }

    #[test]
    fn pipe_ends_closed() {
        let (r, w) = pipe(0);
        let epoll = Epoll::new();
        epoll.add(&r, Interest::READABLE, 1).unwrap();
        drop(w);
        let ev = only_event(&epoll);
        assert_eq!(ev.events(), Events::HUP);
        assert!(ev.is_hangup() && ev.is_read_closed() && ev.is_write_closed());
        assert!(!ev.is_readable() && !ev.is_error());

        let (r, w) = pipe(0);
        let epoll = Epoll::new();
        epoll.add(&w, Interest::WRITABLE, 2).unwrap();
        drop(r);
        let ev = only_event(&epoll);
        assert!(ev.is_writable() && ev.is_error() && ev.is_write_closed());
        assert!(!ev.is_read_closed() && !ev.is_hangup());
    }

    #[test]
    fn socket_peer_shut_down_writing() {
        let (a, b) = socketpair(SocketType::Stream, 0);
        let epoll = Epoll::new();
        epoll
            .add(&a, Interest::READABLE | Interest::READ_CLOSED, 1)
            .unwrap();
        let peer = b.downcast::<UnixSocket>().unwrap();
        peer.shutdown(crate::objects::socket::SHUT_WR).unwrap();
        let ev = only_event(&epoll);
        assert!(ev.events().contains(Events::IN | Events::RDHUP));
        assert!(ev.is_readable() && ev.is_read_closed());
        assert!(!ev.is_write_closed() && !ev.is_hangup() && !ev.is_priority());
    }
}
