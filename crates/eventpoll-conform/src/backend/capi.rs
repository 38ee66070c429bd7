//! The C ABI backend: `libeventpoll.so` over real descriptors. The library is loaded with
//! `dlopen(RTLD_LOCAL)`, so its `close`, `dup`, `fcntl` and epoll symbols serve only the
//! calls this backend makes through them and never interpose the runner's own. Objects are
//! created with the kernel's calls (pipes, eventfds, sockets, timerfds, memfds: real
//! descriptors); every epoll call, `close`, `dup`, `dup2`, the `F_DUPFD` that moves a new
//! descriptor into the range, `F_SETPIPE_SZ`, `shutdown` and `poll` go through the library, as in a program linked
//! with it or run under `LD_PRELOAD`.
//!
//! The backend itself is the real-descriptor backend (`backend/real.rs`) with the library's calls. Descriptors live in a
//! private range, as for the kernel backend: scenario number `n` is descriptor [`BASE`]` + n`
//! (a different base, so the two backends never share numbers).
//!
//! The library is found through `EVENTPOLL_LIB`, else next to the running executable (or
//! its parent directory: test binaries live in `deps/`). Without it the backend is not
//! [`available`]: [`problem`] says why, and where it looked.

use super::real::{
    Calls, CloseFn, CloseRangeFn, CreateFn, CtlFn, Dup2Fn, Dup3Fn, FcntlFn, PollFn, Pwait2Fn,
    PwaitSizedFn, Real, SelectFn, ShutdownFn, WaitFn,
};
use super::Backend;
use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Descriptor of scenario number 0.
pub const BASE: i32 = 3000;

/// Serialises capi scenarios: the range and the library's table are per process.
static RANGE_LOCK: Mutex<()> = Mutex::new(());

/// Hold the capi range: no capi scenario runs until the guard goes (see `Real::fork`).
pub(super) fn range_lock() -> std::sync::MutexGuard<'static, ()> {
    RANGE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("EVENTPOLL_LIB") {
        v.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            v.push(dir.join("libeventpoll.so"));
            if let Some(up) = dir.parent() {
                v.push(up.join("libeventpoll.so"));
            }
        }
    }
    v
}

fn load() -> Result<Calls, String> {
    let mut tried = Vec::new();
    if std::env::var_os("EVENTPOLL_LIB").is_none() {
        tried.push("EVENTPOLL_LIB (not set)".to_string());
    }
    for path in candidates() {
        if !path.is_file() {
            tried.push(format!("{} (no such file)", path.display()));
            continue;
        }
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: dlopen of a path; RTLD_LOCAL keeps its symbols out of the global scope.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            // SAFETY: dlerror returns NULL or a NUL-terminated message owned by libc.
            let why = unsafe {
                let e = libc::dlerror();
                if e.is_null() {
                    "dlopen failed".to_string()
                } else {
                    std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            };
            tried.push(format!("{} ({why})", path.display()));
            continue;
        }
        let sym = |name: &[u8]| -> Option<*mut c_void> {
            // SAFETY: `name` is NUL-terminated; `h` is a live handle.
            let p = unsafe { libc::dlsym(h, name.as_ptr() as *const c_char) };
            (!p.is_null()).then_some(p)
        };
        // SAFETY (each transmute): the library exports these symbols with exactly these C
        // signatures (see crates/eventpoll-capi/include/eventpoll.h).
        let lib = (|| -> Option<Calls> {
            Some(unsafe {
                Calls {
                    name: "capi",
                    base: BASE,
                    range: &RANGE_LOCK,
                    epoll_create: std::mem::transmute::<*mut c_void, CreateFn>(sym(
                        b"epoll_create\0",
                    )?),
                    epoll_create1: std::mem::transmute::<*mut c_void, CreateFn>(sym(
                        b"epoll_create1\0",
                    )?),
                    epoll_ctl: std::mem::transmute::<*mut c_void, CtlFn>(sym(b"epoll_ctl\0")?),
                    epoll_wait: std::mem::transmute::<*mut c_void, WaitFn>(sym(b"epoll_wait\0")?),
                    epoll_pwait_sized: std::mem::transmute::<*mut c_void, PwaitSizedFn>(sym(
                        b"eventpoll_epoll_pwait_sized\0",
                    )?),
                    epoll_pwait2: std::mem::transmute::<*mut c_void, Pwait2Fn>(sym(
                        b"epoll_pwait2\0",
                    )?),
                    close: std::mem::transmute::<*mut c_void, CloseFn>(sym(b"close\0")?),
                    dup2: std::mem::transmute::<*mut c_void, Dup2Fn>(sym(b"dup2\0")?),
                    dup3: std::mem::transmute::<*mut c_void, Dup3Fn>(sym(b"dup3\0")?),
                    close_range: std::mem::transmute::<*mut c_void, CloseRangeFn>(sym(
                        b"close_range\0",
                    )?),
                    fcntl: std::mem::transmute::<*mut c_void, FcntlFn>(sym(b"fcntl\0")?),
                    poll: std::mem::transmute::<*mut c_void, PollFn>(sym(b"poll\0")?),
                    select: std::mem::transmute::<*mut c_void, SelectFn>(sym(b"select\0")?),
                    shutdown: std::mem::transmute::<*mut c_void, ShutdownFn>(sym(b"shutdown\0")?),
                }
            })
        })();
        match lib {
            Some(lib) => return Ok(lib),
            None => tried.push(format!("{} (not eventpoll's library)", path.display())),
        }
    }
    Err(format!(
        "the capi backend needs libeventpoll.so, which was not found; looked at: {}. \
         Build it (`cargo build --release -p eventpoll-capi`, or `scripts/capi-install.sh \
         PREFIX`) and set EVENTPOLL_LIB=/path/to/libeventpoll.so",
        tried.join(", ")
    ))
}

/// The library's entry points, loaded once.
fn lib() -> Result<&'static Calls, &'static str> {
    static LIB: OnceLock<Result<Calls, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(String::as_str)
}

/// Whether `libeventpoll.so` was found (see the module documentation).
pub fn available() -> bool {
    lib().is_ok()
}

/// Why the backend is not [`available`] (where it looked), or `None` when it is.
pub fn problem() -> Option<&'static str> {
    lib().err()
}

/// A fresh capi backend. Without the library this panics with [`problem`]'s message (a
/// scenario run turns that into a `panic:` line; the command line checks first).
pub fn create() -> Box<dyn Backend> {
    match lib() {
        Ok(calls) => Box::new(Real::new(calls)),
        Err(why) => panic!("{why}"),
    }
}
