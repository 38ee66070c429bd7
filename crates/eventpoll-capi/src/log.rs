//! `EVENTPOLL_LOG`: when set (to anything but `0`), every epoll call and every `close` of a
//! number the library knows is traced, one line each:
//! `eventpoll[PID]: epoll_ctl(4, ADD, 5, {in|et, 0x7}) = 0` or `... = -1 EBADF` — to
//! standard error, or appended to a file when the value is an absolute path.

#![allow(unsafe_code)] // errno, getrlimit, pthread_atfork: FFI only, each block commented.

use crate::process;
use eventpoll_host::sys;

/// A return value and, when it is `-1`, the errno of the calling thread.
pub struct Ret(pub i32);

/// Trace one call (the text is built only when tracing is on). Keeps `errno`.
pub fn trace(call: impl FnOnce() -> String, ret: Ret) {
    if !process::tracing() {
        return;
    }
    let Some(p) = process::existing() else {
        return;
    };
    if p.log_fd < 0 {
        return;
    }
    let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let result = if ret.0 < 0 {
        let name = eventpoll::Errno::from_raw_os_error(err)
            .name()
            .map_or_else(|| format!("errno {err}"), str::to_string);
        format!("-1 {name}")
    } else {
        ret.0.to_string()
    };
    let line = format!("eventpoll[{}]: {} = {}\n", sys::getpid(), call(), result);
    let _ = sys::write(p.log_fd, line.as_bytes());
    // SAFETY: restore the caller's errno (the write may have changed it).
    unsafe { *libc::__errno_location() = err };
}
