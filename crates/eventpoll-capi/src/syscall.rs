//! The interposed `syscall()`: programs that make system calls through glibc's generic
//! entry (libuv closes descriptors with `syscall(SYS_close, fd)` and submits its io_uring
//! work with `syscall(__NR_io_uring_enter, …)`; test suites call
//! `syscall(SYS_epoll_pwait2, …)`) reach the same code as the interposed libc functions.
//!
//! The numbers the library handles are routed to the exported function of the same call,
//! with the system call's own argument forms (the signal-set sizes of `epoll_pwait` and
//! `epoll_pwait2`), and return what that function returns: `-1` with `errno` on failure,
//! as glibc's `syscall()` does. `io_uring_setup` and `io_uring_enter` go to
//! [`crate::uring_ctl`], which keeps `IORING_OP_EPOLL_CTL` on an eventpoll instance exact.
//! Every other number goes to the kernel unchanged, through the library's own raw path
//! ([`eventpoll_host::raw_syscall`]) — which is also how the library's own system calls,
//! and those the Rust standard library makes inside it (futex), avoid re-entering here.
//! That path takes no lock and allocates nothing.
//!
//! glibc declares `long syscall(long number, ...)`. Stable Rust cannot define a C-variadic
//! function, so this one takes the number and six `long`s. On x86-64 (System V) and aarch64
//! (AAPCS64 on Linux) a variadic caller passes integer arguments exactly where a
//! non-variadic callee reads them (x86-64: `rdi rsi rdx rcx r8 r9`, the sixth system-call
//! argument in the first stack slot; aarch64: `x0`–`x6`); a caller that passed fewer
//! arguments leaves garbage in the unused registers or stack slot, which is read but never
//! used by a call that does not take it (as in glibc, which also passes all six to the
//! kernel). The function exists only on those two architectures.
//!
//! Programs that issue the instruction themselves (Go's runtime, static binaries,
//! liburing's inline system calls) are not seen here; the crate's README says what happens
//! to them.

#![allow(unsafe_code)]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use crate::abi;
use eventpoll::EpollEvent;
use libc::{c_int, c_long, c_uint, c_ulong};

/// `syscall(2)` (glibc's generic entry): see the module documentation.
///
/// # Safety
/// The arguments must be valid for system call `n`, as for glibc's `syscall()`.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    // The kernel reads `int` arguments from the low 32 bits: so do the casts below.
    let int = |a: c_long| a as c_int;
    let ptr = |a: c_long| a as usize as *mut EpollEvent;
    // SAFETY (every arm): the caller's contract for system call `n`, which has the
    // signature of the function it is routed to.
    unsafe {
        match n {
            libc::SYS_close => c_long::from(abi::close(int(a1))),
            libc::SYS_close_range => {
                c_long::from(abi::close_range(a1 as c_uint, a2 as c_uint, int(a3)))
            }
            libc::SYS_dup => c_long::from(abi::dup(int(a1))),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_dup2 => c_long::from(abi::dup2(int(a1), int(a2))),
            libc::SYS_dup3 => c_long::from(abi::dup3(int(a1), int(a2), int(a3))),
            libc::SYS_fcntl => c_long::from(abi::fcntl(int(a1), int(a2), a3 as c_ulong)),
            libc::SYS_shutdown => c_long::from(abi::shutdown(int(a1), int(a2))),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_epoll_create => c_long::from(abi::epoll_create(int(a1))),
            libc::SYS_epoll_create1 => c_long::from(abi::epoll_create1(int(a1))),
            libc::SYS_epoll_ctl => c_long::from(abi::epoll_ctl(int(a1), int(a2), int(a3), ptr(a4))),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_epoll_wait => {
                c_long::from(abi::epoll_wait(int(a1), ptr(a2), int(a3), int(a4)))
            }
            libc::SYS_epoll_pwait => c_long::from(abi::eventpoll_epoll_pwait_sized(
                int(a1),
                ptr(a2),
                int(a3),
                int(a4),
                a5 as usize as *const libc::sigset_t,
                a6 as usize,
            )),
            libc::SYS_epoll_pwait2 => c_long::from(abi::epoll_pwait2_sized(
                int(a1),
                ptr(a2),
                int(a3),
                a4 as usize as *const libc::timespec,
                a5 as usize as *const libc::sigset_t,
                a6 as usize,
            )),
            libc::SYS_io_uring_setup => crate::uring_ctl::setup(a1 as u32, a2 as usize),
            libc::SYS_io_uring_enter => crate::uring_ctl::enter(
                int(a1),
                a2 as u32,
                [a1, a2, a3, a4, a5, a6].map(|a| a as usize),
            ),
            _ => eventpoll_host::raw_syscall::libc_style(
                n,
                [a1, a2, a3, a4, a5, a6].map(|a| a as usize),
            ),
        }
    }
}
