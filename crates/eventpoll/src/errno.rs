//! The error type: one variant per errno value the engine can return, numbered as on Linux.
//!
//! Every fallible operation returns `Result<T, Errno>`; the variant *is* the errno, so the C
//! ABI and the conformance runner pass it through unchanged (`Errno::EBADF as i32 == 9`).

use core::fmt;

/// An errno value, numbered exactly as on Linux (x86-64 and the generic table agree for all
/// of these).
///
/// ```
/// use eventpoll::Errno;
/// assert_eq!(Errno::EBADF as i32, 9);
/// assert_eq!(Errno::from_raw(22), Some(Errno::EINVAL));
/// assert_eq!(Errno::ELOOP.name(), "ELOOP");
/// ```
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(i32)]
#[non_exhaustive]
pub enum Errno {
    /// Operation not permitted (target does not support poll).
    EPERM = 1,
    /// No such item (MOD/DEL of a descriptor not in the interest list).
    ENOENT = 2,
    /// Interrupted by a signal (see [`crate::Interrupt`]).
    EINTR = 4,
    /// No such device or address (a non-blocking FIFO writer without a reader).
    ENXIO = 6,
    /// Bad file descriptor.
    EBADF = 9,
    /// Try again: a non-blocking operation would block.
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Bad address (a missing event record or an events buffer too small).
    EFAULT = 14,
    /// Device or resource busy (`F_SETPIPE_SZ` below the data already in the pipe).
    EBUSY = 16,
    /// Already in the interest list.
    EEXIST = 17,
    /// Invalid argument.
    EINVAL = 22,
    /// Too many open descriptors in this table.
    EMFILE = 24,
    /// Watch budget (`max_user_watches`) exhausted.
    ENOSPC = 28,
    /// Broken pipe: no reader left.
    EPIPE = 32,
    /// Operation not implemented.
    ENOSYS = 38,
    /// Loop or too deep nesting of epoll instances.
    ELOOP = 40,
    /// Not a socket.
    ENOTSOCK = 88,
    /// Message too long for the socket's buffer.
    EMSGSIZE = 90,
    /// Operation not supported.
    EOPNOTSUPP = 95,
    /// Connection reset by peer.
    ECONNRESET = 104,
    /// Not connected.
    ENOTCONN = 107,
    /// Connection refused.
    ECONNREFUSED = 111,
}

impl Errno {
    const ALL: [Errno; 22] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EINTR,
        Errno::ENXIO,
        Errno::EBADF,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::EMFILE,
        Errno::ENOSPC,
        Errno::EPIPE,
        Errno::ENOSYS,
        Errno::ELOOP,
        Errno::ENOTSOCK,
        Errno::EMSGSIZE,
        Errno::EOPNOTSUPP,
        Errno::ECONNRESET,
        Errno::ENOTCONN,
        Errno::ECONNREFUSED,
    ];

    /// The errno for a raw Linux number, if the engine knows it.
    pub fn from_raw(raw: i32) -> Option<Errno> {
        Self::ALL.into_iter().find(|e| *e as i32 == raw)
    }

    /// The raw Linux number.
    pub fn raw(self) -> i32 {
        self as i32
    }

    /// The symbolic name (`"EBADF"`), as transcripts print it.
    pub fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::EINTR => "EINTR",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::EMFILE => "EMFILE",
            Errno::ENOSPC => "ENOSPC",
            Errno::EPIPE => "EPIPE",
            Errno::ENXIO => "ENXIO",
            Errno::ENOSYS => "ENOSYS",
            Errno::ELOOP => "ELOOP",
            Errno::ENOTSOCK => "ENOTSOCK",
            Errno::EMSGSIZE => "EMSGSIZE",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::ECONNRESET => "ECONNRESET",
            Errno::ENOTCONN => "ENOTCONN",
            Errno::ECONNREFUSED => "ECONNREFUSED",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), *self as i32)
    }
}

impl core::error::Error for Errno {}

#[cfg(feature = "std")]
impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e as i32)
    }
}

/// The engine's result type.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_raw(e.raw()), Some(e));
            assert!(e.name().starts_with('E'));
        }
        assert_eq!(Errno::from_raw(0), None);
    }
}
