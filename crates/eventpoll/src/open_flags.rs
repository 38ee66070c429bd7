//! [`OpenFlags`]: the file-status flags a constructor of the Rust layer takes
//! ([`pipe`](crate::objects::pipe::pipe), [`socketpair`](crate::objects::socket::socketpair)),
//! as a typed set instead of a raw `i32`.
//!
//! The Linux-shaped layer ([`FdTable`](crate::FdTable)'s `pipe2`, `socketpair`, ...) keeps
//! raw `i32` flags and checks them as Linux does; a raw value converts with `From<i32>`
//! (unknown bits are kept, and ignored by the constructors, as documented on each).

use bitflags::bitflags;

bitflags! {
    /// File-status flags for a new open file description, Linux values.
    ///
    /// ```
    /// use eventpoll::{OpenFlags, objects::pipe::pipe};
    /// let (reader, _writer) = pipe(OpenFlags::NONBLOCK);
    /// let mut buf = [0u8; 8];
    /// assert_eq!(reader.read(&mut buf), Err(eventpoll::Errno::EAGAIN)); // empty, nonblocking
    /// assert_eq!(OpenFlags::from(eventpoll::linux::O_NONBLOCK), OpenFlags::NONBLOCK);
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct OpenFlags: i32 {
        /// `O_NONBLOCK`: operations that would block fail with `EAGAIN`.
        const NONBLOCK = crate::event::O_NONBLOCK;
        /// `O_CLOEXEC`: closed by `exec` (meaningful to a descriptor table only).
        const CLOEXEC = crate::event::O_CLOEXEC;
        /// `O_DIRECT`: a pipe in packet mode (each write is one packet).
        const DIRECT = crate::event::O_DIRECT;
    }
}

impl From<i32> for OpenFlags {
    /// The raw flags of the Linux-shaped layer, every bit kept.
    fn from(raw: i32) -> OpenFlags {
        OpenFlags::from_bits_retain(raw)
    }
}
