//! The C ABI backend: `libeventpoll.so` over real descriptors. The library is loaded with
//! `dlopen(RTLD_LOCAL)`, so its `close`, `dup`, `fcntl` and epoll symbols serve only the
//! calls this backend makes through them and never interpose the runner's own. Objects are
//! created with the kernel's calls (pipes, eventfds, sockets, timerfds, memfds: real
//! descriptors); every epoll call, `close`, `dup`, `dup2`, the `F_DUPFD` that moves a new
//! descriptor into the range, and `poll` go through the library, as in a program linked
//! with it or run under `LD_PRELOAD`.
//!
//! Descriptors live in a private range, as for the kernel backend: scenario number `n` is
//! descriptor [`BASE`]` + n` (a different base, so the two backends never share numbers).
//!
//! The library is found through `EVENTPOLL_LIB`, else next to the running executable (or
//! its parent directory: test binaries live in `deps/`). Without it the backend is not
//! [`available`] and comparisons leave it out.

use super::{wait_buffer_len, Backend, Errno, Event, SysResult};
use crate::script::{SockType, TimerSetting, WaitKind};
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Descriptor of scenario number 0.
pub const BASE: i32 = 3000;

/// Serialises capi scenarios: the range and the library's table are per process.
static RANGE_LOCK: Mutex<()> = Mutex::new(());

type EpollEventC = libc::epoll_event;

type CreateFn = unsafe extern "C" fn(c_int) -> c_int;
type CtlFn = unsafe extern "C" fn(c_int, c_int, c_int, *mut EpollEventC) -> c_int;
type WaitFn = unsafe extern "C" fn(c_int, *mut EpollEventC, c_int, c_int) -> c_int;
type PwaitSizedFn = unsafe extern "C" fn(
    c_int,
    *mut EpollEventC,
    c_int,
    c_int,
    *const libc::sigset_t,
    usize,
) -> c_int;
type Pwait2Fn = unsafe extern "C" fn(
    c_int,
    *mut EpollEventC,
    c_int,
    *const libc::timespec,
    *const libc::sigset_t,
) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, libc::c_ulong) -> c_int;
type PollFn = unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int;

/// The library's entry points.
struct Lib {
    epoll_create: CreateFn,
    epoll_create1: CreateFn,
    epoll_ctl: CtlFn,
    epoll_wait: WaitFn,
    epoll_pwait_sized: PwaitSizedFn,
    epoll_pwait2: Pwait2Fn,
    close: CloseFn,
    dup2: Dup2Fn,
    fcntl: FcntlFn,
    poll: PollFn,
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

fn load() -> Option<Lib> {
    for path in candidates() {
        if !path.is_file() {
            continue;
        }
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: dlopen of a path; RTLD_LOCAL keeps its symbols out of the global scope.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            continue;
        }
        let sym = |name: &[u8]| -> Option<*mut c_void> {
            // SAFETY: `name` is NUL-terminated; `h` is a live handle.
            let p = unsafe { libc::dlsym(h, name.as_ptr() as *const c_char) };
            (!p.is_null()).then_some(p)
        };
        // SAFETY (each transmute): the library exports these symbols with exactly these C
        // signatures (see crates/eventpoll-capi/include/eventpoll.h).
        let lib = unsafe {
            Lib {
                epoll_create: std::mem::transmute::<*mut c_void, CreateFn>(sym(b"epoll_create\0")?),
                epoll_create1: std::mem::transmute::<*mut c_void, CreateFn>(sym(
                    b"epoll_create1\0",
                )?),
                epoll_ctl: std::mem::transmute::<*mut c_void, CtlFn>(sym(b"epoll_ctl\0")?),
                epoll_wait: std::mem::transmute::<*mut c_void, WaitFn>(sym(b"epoll_wait\0")?),
                epoll_pwait_sized: std::mem::transmute::<*mut c_void, PwaitSizedFn>(sym(
                    b"eventpoll_epoll_pwait_sized\0",
                )?),
                epoll_pwait2: std::mem::transmute::<*mut c_void, Pwait2Fn>(sym(b"epoll_pwait2\0")?),
                close: std::mem::transmute::<*mut c_void, CloseFn>(sym(b"close\0")?),
                dup2: std::mem::transmute::<*mut c_void, Dup2Fn>(sym(b"dup2\0")?),
                fcntl: std::mem::transmute::<*mut c_void, FcntlFn>(sym(b"fcntl\0")?),
                poll: std::mem::transmute::<*mut c_void, PollFn>(sym(b"poll\0")?),
            }
        };
        return Some(lib);
    }
    None
}

fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(load).as_ref()
}

/// Whether `libeventpoll.so` was found (see the module documentation).
pub fn available() -> bool {
    lib().is_some()
}

/// The capi backend. See the module documentation.
pub struct Capi {
    _range: MutexGuard<'static, ()>,
    lib: &'static Lib,
    open: BTreeSet<i32>,
    items: usize,
}

/// A fresh capi backend (panics if the library is not [`available`]: comparisons check
/// first).
pub fn create() -> Box<dyn Backend> {
    let lib = lib().expect("libeventpoll.so not found: build eventpoll-capi or set EVENTPOLL_LIB");
    // Same process-wide set-up as the kernel backend (SIGPIPE ignored, descriptor limit).
    drop(super::kernel::Kernel::new());
    let guard = RANGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    Box::new(Capi {
        _range: guard,
        lib,
        open: BTreeSet::new(),
        items: 0,
    })
}

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn cvt(r: c_int) -> SysResult<c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> SysResult<usize> {
    usize::try_from(r).map_err(|_| last_errno())
}

fn kfd(n: i32) -> i32 {
    if n < 0 {
        n
    } else {
        n.saturating_add(BASE)
    }
}

impl Capi {
    /// Move a new descriptor into the range through the library (so its table follows).
    fn adopt(&mut self, low: c_int) -> SysResult<i32> {
        // SAFETY: the library's fcntl and close on a descriptor we just created.
        let moved = unsafe { (self.lib.fcntl)(low, libc::F_DUPFD, BASE as libc::c_ulong) };
        let err = last_errno();
        // SAFETY: as above; `low` is not used again.
        unsafe { (self.lib.close)(low) };
        if moved < 0 {
            return Err(err);
        }
        self.open.insert(moved);
        Ok(moved - BASE)
    }

    fn adopt_pair(&mut self, fds: [c_int; 2]) -> SysResult<(i32, i32)> {
        let a = match self.adopt(fds[0]) {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: ours, not used again.
                unsafe { (self.lib.close)(fds[1]) };
                return Err(e);
            }
        };
        match self.adopt(fds[1]) {
            Ok(b) => Ok((a, b)),
            Err(e) => {
                let _ = self.close(a);
                Err(e)
            }
        }
    }
}

impl Drop for Capi {
    fn drop(&mut self) {
        for &fd in &self.open {
            // SAFETY: descriptors of our private range that this backend opened.
            unsafe { (self.lib.close)(fd) };
        }
    }
}

impl Backend for Capi {
    fn name(&self) -> &'static str {
        "capi"
    }

    fn epoll_create(&mut self, size: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { (self.lib.epoll_create)(size) })?;
        self.adopt(fd)
    }

    fn epoll_create1(&mut self, flags: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { (self.lib.epoll_create1)(flags) })?;
        self.adopt(fd)
    }

    fn pipe(&mut self) -> SysResult<(i32, i32)> {
        let mut fds = [0; 2];
        // SAFETY: valid array of two ints.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) })?;
        self.adopt_pair(fds)
    }

    fn set_pipe_size(&mut self, fd: i32, size: i32) -> SysResult<i32> {
        // SAFETY: integer argument, through the library's fcntl.
        cvt(unsafe { (self.lib.fcntl)(kfd(fd), libc::F_SETPIPE_SZ, size as libc::c_ulong) })
    }

    fn eventfd(&mut self, init: u32, semaphore: bool) -> SysResult<i32> {
        let flags = libc::EFD_NONBLOCK | if semaphore { libc::EFD_SEMAPHORE } else { 0 };
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::eventfd(init, flags) })?;
        self.adopt(fd)
    }

    fn socketpair(&mut self, ty: SockType) -> SysResult<(i32, i32)> {
        let ty = match ty {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Dgram => libc::SOCK_DGRAM,
            SockType::SeqPacket => libc::SOCK_SEQPACKET,
        };
        let mut fds = [0; 2];
        // SAFETY: valid array of two ints.
        cvt(unsafe {
            libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_NONBLOCK, 0, fds.as_mut_ptr())
        })?;
        self.adopt_pair(fds)
    }

    fn timerfd(&mut self) -> SysResult<i32> {
        // SAFETY: no pointers.
        let fd = cvt(unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK) })?;
        self.adopt(fd)
    }

    fn settime(&mut self, fd: i32, setting: TimerSetting) -> SysResult<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (flags, value) = match setting {
            TimerSetting::Expired => (
                libc::TFD_TIMER_ABSTIME,
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1,
                },
            ),
            TimerSetting::Disarm => (0, zero),
        };
        let spec = libc::itimerspec {
            it_interval: zero,
            it_value: value,
        };
        // SAFETY: valid itimerspec; NULL old value.
        cvt(unsafe { libc::timerfd_settime(kfd(fd), flags, &spec, std::ptr::null_mut()) })?;
        if setting == TimerSetting::Expired {
            let mut p = libc::pollfd {
                fd: kfd(fd),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd (the timer expires from the timer interrupt).
            unsafe { libc::poll(&mut p, 1, 1000) };
        }
        Ok(())
    }

    fn regular_file(&mut self) -> SysResult<i32> {
        // SAFETY: NUL-terminated name.
        let fd = cvt(unsafe { libc::memfd_create(c"eventpoll-conform".as_ptr(), 0) })?;
        self.adopt(fd)
    }

    fn epoll_ctl(&mut self, epfd: i32, op: i32, fd: i32, event: Option<Event>) -> SysResult<()> {
        let mut ev = event.map(|(events, data)| libc::epoll_event { events, u64: data });
        let ptr = ev
            .as_mut()
            .map_or(std::ptr::null_mut(), |e| e as *mut libc::epoll_event);
        // SAFETY: NULL (deliberately) or a valid epoll_event living across the call.
        cvt(unsafe { (self.lib.epoll_ctl)(kfd(epfd), op, kfd(fd), ptr) })?;
        if op == libc::EPOLL_CTL_ADD {
            self.items += 1;
        }
        Ok(())
    }

    fn epoll_wait(
        &mut self,
        epfd: i32,
        maxevents: i32,
        kind: WaitKind,
        null_buffer: bool,
    ) -> SysResult<Vec<Event>> {
        let mut buf =
            vec![libc::epoll_event { events: 0, u64: 0 }; wait_buffer_len(maxevents, self.items)];
        let ptr = if null_buffer {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        let epfd = kfd(epfd);
        // An empty mask, larger than any size read.
        let mask = [0u64; 16];
        // SAFETY (all calls): `ptr` is NULL (deliberately) or `buf`, large enough for every
        // event that can be reported (see wait_buffer_len).
        let n = match kind {
            WaitKind::Wait { timeout_ms } => {
                cvt(unsafe { (self.lib.epoll_wait)(epfd, ptr, maxevents, timeout_ms) })?
            }
            WaitKind::Pwait {
                timeout_ms,
                sigsetsize,
            } => {
                // The system call's form (glibc's epoll_pwait cannot pass another size).
                cvt(unsafe {
                    (self.lib.epoll_pwait_sized)(
                        epfd,
                        ptr,
                        maxevents,
                        timeout_ms,
                        mask.as_ptr().cast(),
                        sigsetsize,
                    )
                })?
            }
            WaitKind::Pwait2 { timeout } => {
                let ts = timeout.map(|(s, ns)| libc::timespec {
                    tv_sec: s,
                    tv_nsec: ns,
                });
                let tsp = ts
                    .as_ref()
                    .map_or(std::ptr::null(), |t| t as *const libc::timespec);
                cvt(unsafe {
                    (self.lib.epoll_pwait2)(epfd, ptr, maxevents, tsp, std::ptr::null())
                })?
            }
        } as usize;
        Ok(buf
            .iter()
            .take(if null_buffer { 0 } else { n })
            .map(|e| (e.events, e.u64))
            .collect())
    }

    fn poll(&mut self, fd: i32, events: i16) -> SysResult<i16> {
        let mut p = libc::pollfd {
            fd: kfd(fd),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, through the library's poll.
        cvt(unsafe { (self.lib.poll)(&mut p, 1, 0) })?;
        Ok(p.revents)
    }

    fn write(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        // SAFETY: valid buffer.
        cvt_size(unsafe { libc::write(kfd(fd), data.as_ptr().cast(), data.len()) })
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> SysResult<usize> {
        // SAFETY: valid writable buffer.
        cvt_size(unsafe { libc::read(kfd(fd), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        // SAFETY: no pointers.
        cvt(unsafe { libc::shutdown(kfd(fd), how) }).map(drop)
    }

    fn close(&mut self, fd: i32) -> SysResult<()> {
        let k = kfd(fd);
        // SAFETY: a number of our range (or an invalid one), through the library.
        cvt(unsafe { (self.lib.close)(k) })?;
        self.open.remove(&k);
        Ok(())
    }

    fn dup(&mut self, fd: i32) -> SysResult<i32> {
        // SAFETY: integer argument, through the library.
        let k = cvt(unsafe { (self.lib.fcntl)(kfd(fd), libc::F_DUPFD, BASE as libc::c_ulong) })?;
        self.open.insert(k);
        Ok(k - BASE)
    }

    fn dup2(&mut self, fd: i32, target: i32) -> SysResult<i32> {
        // SAFETY: no pointers.
        let k = cvt(unsafe { (self.lib.dup2)(kfd(fd), kfd(target)) })?;
        self.open.insert(k);
        Ok(k - BASE)
    }

    fn abandon(self: Box<Self>) {
        drop(self);
    }
}
