//! The error type: an errno value, numbered as on Linux, shared by the engine, the host
//! descriptors and the C ABI.
//!
//! [`Errno`] is a transparent newtype over the raw number (as rustix's is): every Linux
//! errno has a value, so a host error passes through unchanged instead of being mapped to a
//! guess, and the C ABI hands [`Errno::raw_os_error`] to `errno` as it is. The engine's own
//! operations return only the values their Linux counterparts document.

use core::fmt;

/// An errno value, numbered exactly as on Linux (x86-64 and the generic table agree for all
/// the named ones). Any number converts ([`Errno::from_raw_os_error`]); the associated
/// constants name the common ones.
///
/// Linux: [errno(3)](https://man7.org/linux/man-pages/man3/errno.3.html).
///
/// ```
/// use eventpoll::Errno;
/// assert_eq!(Errno::EBADF.raw_os_error(), 9);
/// assert_eq!(Errno::from_raw_os_error(22), Errno::EINVAL);
/// assert_eq!(Errno::ELOOP.name(), Some("ELOOP"));
/// assert_eq!(Errno::from_raw_os_error(4000).name(), None); // kept, not mapped to a guess
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
#[doc(alias = "errno")]
pub struct Errno(i32);

/// Defines the named constants and the name table together.
macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl Errno {
            $($(#[$doc])* pub const $name: Errno = Errno($value);)*
            const NAMES: &'static [(Errno, &'static str)] = &[$((Errno::$name, stringify!($name)),)*];
        }
    };
}

errnos! {
    /// Operation not permitted (target does not support poll).
    EPERM = 1;
    /// No such item (MOD/DEL of a descriptor not in the interest list).
    ENOENT = 2;
    /// No such process.
    ESRCH = 3;
    /// Interrupted by a signal (see [`crate::Interrupt`]).
    EINTR = 4;
    /// Input/output error.
    EIO = 5;
    /// No such device or address (a non-blocking FIFO writer without a reader).
    ENXIO = 6;
    /// Argument list too long.
    E2BIG = 7;
    /// Exec format error.
    ENOEXEC = 8;
    /// Bad file descriptor.
    EBADF = 9;
    /// No child processes.
    ECHILD = 10;
    /// Try again: a non-blocking operation would block.
    EAGAIN = 11;
    /// Out of memory.
    ENOMEM = 12;
    /// Permission denied.
    EACCES = 13;
    /// Bad address (a missing event record or an events buffer too small).
    EFAULT = 14;
    /// Device or resource busy (`F_SETPIPE_SZ` below the data already in the pipe).
    EBUSY = 16;
    /// Already in the interest list.
    EEXIST = 17;
    /// Invalid cross-device link.
    EXDEV = 18;
    /// No such device.
    ENODEV = 19;
    /// Not a directory.
    ENOTDIR = 20;
    /// Is a directory.
    EISDIR = 21;
    /// Invalid argument.
    EINVAL = 22;
    /// Too many open files in system.
    ENFILE = 23;
    /// Too many open descriptors in this table.
    EMFILE = 24;
    /// Inappropriate ioctl for device.
    ENOTTY = 25;
    /// File too large.
    EFBIG = 27;
    /// Watch budget (`max_user_watches`) exhausted.
    ENOSPC = 28;
    /// Illegal seek.
    ESPIPE = 29;
    /// Read-only file system.
    EROFS = 30;
    /// Too many links.
    EMLINK = 31;
    /// Broken pipe: no reader left.
    EPIPE = 32;
    /// Numerical argument out of domain.
    EDOM = 33;
    /// Numerical result out of range.
    ERANGE = 34;
    /// Resource deadlock avoided.
    EDEADLK = 35;
    /// File name too long.
    ENAMETOOLONG = 36;
    /// No locks available.
    ENOLCK = 37;
    /// Operation not implemented.
    ENOSYS = 38;
    /// Directory not empty.
    ENOTEMPTY = 39;
    /// Loop or too deep nesting of epoll instances.
    ELOOP = 40;
    /// Value too large for defined data type.
    EOVERFLOW = 75;
    /// File descriptor in bad state.
    EBADFD = 77;
    /// Not a socket.
    ENOTSOCK = 88;
    /// Destination address required.
    EDESTADDRREQ = 89;
    /// Message too long for the socket's buffer.
    EMSGSIZE = 90;
    /// Protocol wrong type for socket.
    EPROTOTYPE = 91;
    /// Protocol not available.
    ENOPROTOOPT = 92;
    /// Protocol not supported.
    EPROTONOSUPPORT = 93;
    /// Operation not supported.
    EOPNOTSUPP = 95;
    /// Address family not supported by protocol.
    EAFNOSUPPORT = 97;
    /// Address already in use.
    EADDRINUSE = 98;
    /// Cannot assign requested address.
    EADDRNOTAVAIL = 99;
    /// Network is down.
    ENETDOWN = 100;
    /// Network is unreachable.
    ENETUNREACH = 101;
    /// Software caused connection abort.
    ECONNABORTED = 103;
    /// Connection reset by peer.
    ECONNRESET = 104;
    /// No buffer space available.
    ENOBUFS = 105;
    /// Transport endpoint is already connected.
    EISCONN = 106;
    /// Not connected.
    ENOTCONN = 107;
    /// Cannot send after transport endpoint shutdown.
    ESHUTDOWN = 108;
    /// Connection timed out.
    ETIMEDOUT = 110;
    /// Connection refused.
    ECONNREFUSED = 111;
    /// No route to host.
    EHOSTUNREACH = 113;
    /// Operation already in progress.
    EALREADY = 114;
    /// Operation now in progress.
    EINPROGRESS = 115;
    /// Operation canceled.
    ECANCELED = 125;
}

impl Errno {
    /// The errno for a raw Linux number (any number: unnamed ones are kept as they are).
    pub const fn from_raw_os_error(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The raw Linux number, what `errno` is set to.
    pub const fn raw_os_error(self) -> i32 {
        self.0
    }

    /// The symbolic name (`"EBADF"`), as transcripts print it; `None` for a number without
    /// a constant here.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(e, _)| *e == self)
            .map(|(_, name)| *name)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

/// `EBADF (9)`, or `errno 4000` for a number without a name.
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl core::error::Error for Errno {}

#[cfg(feature = "std")]
impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

/// The OS error of `e`, if it has one (an I/O error made by the host, not a custom one).
#[cfg(feature = "std")]
impl TryFrom<std::io::Error> for Errno {
    type Error = std::io::Error;
    fn try_from(e: std::io::Error) -> core::result::Result<Errno, std::io::Error> {
        match e.raw_os_error() {
            Some(raw) => Ok(Errno(raw)),
            None => Err(e),
        }
    }
}

/// The engine's result type.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_prelude::*;

    #[test]
    fn raw_round_trip() {
        for &(e, name) in Errno::NAMES {
            assert_eq!(Errno::from_raw_os_error(e.raw_os_error()), e);
            assert_eq!(e.name(), Some(name));
            assert_eq!(format!("{e:?}"), name);
        }
        assert_eq!(Errno::from_raw_os_error(0).name(), None);
        assert_eq!(format!("{}", Errno::from_raw_os_error(4000)), "errno 4000");
        assert_eq!(format!("{}", Errno::EBADF), "EBADF (9)");
        assert_eq!(core::mem::size_of::<Errno>(), 4);
    }

    #[test]
    fn values_are_linux() {
        // Spot checks against the kernel's numbers (include/uapi/asm-generic/errno*.h).
        let expect = [
            (Errno::EPERM, 1),
            (Errno::EINTR, 4),
            (Errno::EBADF, 9),
            (Errno::EAGAIN, 11),
            (Errno::EINVAL, 22),
            (Errno::ELOOP, 40),
            (Errno::ENOTSOCK, 88),
            (Errno::EOPNOTSUPP, 95),
            (Errno::ECONNREFUSED, 111),
            (Errno::ECANCELED, 125),
        ];
        for (e, n) in expect {
            assert_eq!(e.raw_os_error(), n, "{e:?}");
        }
    }
}
