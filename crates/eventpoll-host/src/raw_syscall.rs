//! The library's own path into the kernel: system calls made with the machine instruction,
//! never through glibc's `syscall()`.
//!
//! `libeventpoll` interposes `syscall` itself (programs such as libuv close descriptors and
//! submit io_uring work through it), so a `libc::syscall` call made by this crate, by the C
//! ABI crate, or by Rust's standard library inside the shared object would land in that
//! interposer. The library never calls a symbol it interposes: every system call of
//! `eventpoll-host` and `eventpoll-capi` goes through [`raw_syscall!`](crate::raw_syscall!),
//! which issues the instruction here.
//!
//! Why inline assembly rather than a crate (`syscalls`, rustix's `linux_raw` backend): the
//! whole mechanism is one instruction per architecture with the kernel's documented
//! register convention (x86-64: number in `rax`, arguments in `rdi rsi rdx r10 r8 r9`,
//! `rcx`/`r11` clobbered; aarch64: number in `x8`, arguments in `x0`–`x5`, `svc #0`); this
//! module is the whole of it, small enough to audit in one reading, and it adds no
//! dependency to a library that is preloaded into arbitrary programs. Other architectures
//! fall back to glibc's `syscall()` (where the library does not interpose it).
//!
//! The result follows glibc's `syscall()`: `-1` with `errno` set for a kernel error
//! (`-4095..=-1`), so callers that read `errno` afterwards keep working.

#![allow(unsafe_code)]

use libc::c_long;

/// Issue system call `n` with up to six arguments, returning the kernel's raw value
/// (`-errno` on failure).
///
/// # Safety
/// The arguments must be valid for system call `n` (pointers it dereferences must point to
/// memory of the kind and size the call expects, or be invalid in a way the kernel reports).
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn kernel(n: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` instruction with the x86-64 Linux convention; it clobbers rcx
    // (return address) and r11 (flags), both declared; memory the call reads or writes is
    // the caller's contract (the asm block is not `nomem`, so the compiler assumes it).
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Issue system call `n` (aarch64: `svc #0`). See the x86-64 version.
///
/// # Safety
/// As the x86-64 version.
#[cfg(target_arch = "aarch64")]
#[inline]
pub unsafe fn kernel(n: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: `svc #0` with the aarch64 Linux convention (number in x8, result in x0);
    // no other register is changed by the kernel.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") n as isize,
            inlateout("x0") a[0] => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

/// Other architectures: glibc's `syscall()` (`libeventpoll` does not interpose it there).
///
/// # Safety
/// As the x86-64 version.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn kernel(n: c_long, a: [usize; 6]) -> isize {
    // SAFETY: the caller's contract.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r == -1 {
        -(sys::last_errno().raw_os_error() as isize)
    } else {
        r as isize
    }
}

/// [`kernel`] with glibc's `syscall()` convention: `-1` and `errno` on failure.
///
/// # Safety
/// As [`kernel`].
#[inline]
pub unsafe fn libc_style(n: c_long, a: [usize; 6]) -> c_long {
    // SAFETY: the caller's contract.
    let r = unsafe { kernel(n, a) };
    if (-4095..0).contains(&r) {
        // SAFETY: __errno_location returns the calling thread's errno slot.
        unsafe { *libc::__errno_location() = -r as i32 };
        -1
    } else {
        r as c_long
    }
}

/// A system call by number with glibc's `syscall()` convention, never through the
/// `syscall` symbol: `raw_syscall!(libc::SYS_close, fd)`. Each argument is converted with
/// `as usize` (integers sign- or zero-extended as the C ABI would, pointers as addresses);
/// missing arguments are zero (a negative literal needs its type: `-1i32`). Unsafe: see
/// [`kernel`].
#[macro_export]
macro_rules! raw_syscall {
    ($n:expr $(, $a:expr)* $(,)?) => {{
        #[allow(clippy::unnecessary_cast, trivial_numeric_casts)]
        let args: [usize; 6] = {
            let given: &[usize] = &[$(($a) as usize),*];
            let mut all = [0usize; 6];
            let mut i = 0;
            while i < given.len() {
                all[i] = given[i];
                i += 1;
            }
            all
        };
        $crate::raw_syscall::libc_style(($n) as ::libc::c_long, args)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_calls_return_values_and_set_errno() {
        // SAFETY: no pointers.
        let pid = unsafe { crate::raw_syscall!(libc::SYS_getpid) };
        assert_eq!(pid, std::process::id() as c_long);
        // SAFETY: closing an invalid number is memory-safe.
        let r = unsafe { crate::raw_syscall!(libc::SYS_close, -1i32) };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EBADF)
        );
        let mut fds = [0i32; 2];
        // SAFETY: `fds` holds two writable ints.
        let r = unsafe { crate::raw_syscall!(libc::SYS_pipe2, fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(r, 0);
        let msg = *b"six";
        // SAFETY: `msg` is readable for its length.
        let w = unsafe { crate::raw_syscall!(libc::SYS_write, fds[1], msg.as_ptr(), msg.len()) };
        assert_eq!(w, 3);
        let mut buf = [0u8; 8];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { crate::raw_syscall!(libc::SYS_read, fds[0], buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, 3);
        assert_eq!(&buf[..3], b"six");
        // Six arguments: pselect6 with nothing to wait for and a zero timeout.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let null = std::ptr::null_mut::<u8>();
        // SAFETY: NULL sets; `ts` is a valid writable timespec; NULL signal data.
        let r = unsafe {
            crate::raw_syscall!(
                libc::SYS_pselect6,
                0,
                null,
                null,
                null,
                &mut ts as *mut _,
                null
            )
        };
        assert_eq!(r, 0);
        for fd in fds {
            // SAFETY: closing our own pipe.
            assert_eq!(unsafe { crate::raw_syscall!(libc::SYS_close, fd) }, 0);
        }
    }
}
