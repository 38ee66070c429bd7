//! The engine's lock with `std` on Linux: the [`SleepLock`] whose waiters sleep on a futex
//! (both lock kinds, as std's mutex is), keeping no poison flag. std's `Mutex` checks the
//! thread's panic count when it is taken and again when it is released, for a poisoning the
//! engine ignores ([`super::sync::lock`]); on the token path — six locks a token — that was
//! a tenth of the instructions.
//!
//! The futex calls are the crate's own system calls, made with the machine instruction on
//! x86-64 and aarch64: never through glibc's `syscall()`, which `libeventpoll`
//! (eventpoll-capi) interposes — the library must not call a symbol it interposes.

use super::sleep_lock::{SleepGuard, SleepLock, WaitWake};
use core::sync::atomic::AtomicU32;

/// A futex lock without poisoning.
pub(crate) type FutexLock<T> = SleepLock<T, Futex>;
/// Holding a [`FutexLock`].
pub(crate) type FutexGuard<'a, T> = SleepGuard<'a, T, Futex>;

impl<T> FutexLock<T> {
    /// A free lock holding `value`.
    pub(crate) const fn new(value: T) -> Self {
        SleepLock::with_primitive(value, Futex)
    }
}

/// The futex as a [`WaitWake`] primitive: the word is the lock's own state, so it needs no
/// state of its own.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Futex;

impl WaitWake for Futex {
    #[inline]
    fn wait(&self, word: &AtomicU32, expected: u32) {
        let _ = futex(word, FUTEX_WAIT_PRIVATE, expected);
    }

    #[inline]
    fn wake_one(&self, word: &AtomicU32) {
        let _ = futex(word, FUTEX_WAKE_PRIVATE, 1);
    }
}

const FUTEX_WAIT_PRIVATE: u32 = (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as u32;
const FUTEX_WAKE_PRIVATE: u32 = (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as u32;

/// `futex(2)` on `word`: `FUTEX_WAIT` sleeps while it holds `val` (or returns at once,
/// also on a signal or spuriously: the caller re-checks), `FUTEX_WAKE` wakes up to `val`
/// sleepers. Returns the kernel's value: for WAIT 0 or `-errno` (`-EAGAIN`: the word did
/// not hold `val`), for WAKE how many it woke. The lock needs neither (every outcome leads
/// its caller to re-check); the tests read them.
///
/// The instruction with the kernel's register convention. x86-64: number in `rax`,
/// arguments in `rdi rsi rdx r10`, result in `rax`, `rcx` and `r11` overwritten by
/// `syscall`. aarch64: number in `x8`, arguments in `x0`-`x3`, result in `x0`, `svc #0`.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
#[inline]
fn futex(word: &AtomicU32, op: u32, val: u32) -> isize {
    let ret: isize;
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; the process-private
    // futex operations read it (WAIT) or only use its address (WAKE), with no timeout (null:
    // wait without limit) and no second word. Every register the kernel or the instruction
    // changes is declared an output or clobber, and the block is not `nomem`, so the
    // compiler keeps memory accesses on their side of it.
    #[allow(unsafe_code)]
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_futex as isize => ret,
            in("rdi") word.as_ptr(),
            in("rsi") op as usize,
            in("rdx") val as usize,
            in("r10") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!(
            "svc 0",
            in("x8") libc::SYS_futex as usize,
            inlateout("x0") word.as_ptr() => ret,
            in("x1") op as usize,
            in("x2") val as usize,
            in("x3") 0usize,
            options(nostack),
        );
    }
    ret
}

/// Other architectures, and Miri (which runs no inline assembly but knows the futex through
/// `syscall()`): glibc's `syscall()`. eventpoll-capi interposes `syscall` on x86-64 and
/// aarch64 only, so on the architectures this serves in the library it is glibc's own.
#[cfg(any(not(any(target_arch = "x86_64", target_arch = "aarch64")), miri))]
fn futex(word: &AtomicU32, op: u32, val: u32) -> isize {
    // SAFETY: as the instruction's version: a live, aligned word, no timeout, no second word.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op as libc::c_int,
            val,
            core::ptr::null::<libc::timespec>(),
        )
    };
    if r == -1 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as isize)
    } else {
        r as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The futex instance: contended takers sleep on the futex and are always woken.
    #[test]
    fn excludes_and_a_sleeping_waiter_is_always_woken() {
        let _ = super::super::sleep_lock::check_excludes_and_wakes(FutexLock::new(0));
    }

    /// The raw futex calls reach the kernel and do what they say: a wait on a word that does
    /// not hold the expected value returns `-EAGAIN` at once, a wake with no sleeper wakes
    /// none, and a thread asleep on the word is woken by exactly one wake that counts it.
    #[test]
    fn raw_futex_calls_wait_and_wake() {
        use core::sync::atomic::Ordering;
        use std::sync::Arc;
        let word = Arc::new(AtomicU32::new(7));
        assert_eq!(
            futex(&word, FUTEX_WAIT_PRIVATE, 8),
            -(libc::EAGAIN as isize)
        );
        assert_eq!(futex(&word, FUTEX_WAKE_PRIVATE, 1), 0);

        let sleeper = {
            let word = word.clone();
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 7 {
                    Futex.wait(&word, 7);
                }
            })
        };
        // Wake until the kernel reports the sleeper woken (it may not be asleep yet); woken,
        // it finds the word still 7 and sleeps again.
        let start = std::time::Instant::now();
        loop {
            let woken = futex(&word, FUTEX_WAKE_PRIVATE, 1);
            assert!((0..=1).contains(&woken), "woke {woken}");
            if woken == 1 {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the sleeper never slept on the futex"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Let it go: a wait that reads the word before this store is woken by the wake after
        // it, one that reads it after returns at once.
        word.store(8, Ordering::Release);
        Futex.wake_one(&word);
        crate::objects::testutil::join_within(sleeper);
    }
}
