//! A counting global allocator, so `eventpoll bench micro` can measure the engine's bytes per
//! watch as the heap growth from adding N watches.
//!
//! [`CountingAlloc`] forwards every call to the system allocator and, only on a thread that
//! is inside [`measure`], adds the requested sizes of allocations and subtracts those of
//! deallocations (a `realloc` counts its size change). Counting is per thread, so other
//! threads' allocations never disturb a measurement; elsewhere it costs one thread-local
//! load per call. With the default feature `count-alloc` this crate installs it as the
//! global allocator of every binary that links it (the `eventpoll` command); without the
//! feature [`installed`] is false and the engine's figure is reported as unavailable.
//!
//! The figures are *requested* bytes: the system allocator's own per-block overhead is not
//! included, and spare capacity of growing vectors is (it is memory the engine holds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialised and without destructors: usable from inside the allocator, at any
    // point of a thread's life, without allocating.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static NET: Cell<i64> = const { Cell::new(0) };
}

/// The counting allocator (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

#[inline]
fn count(delta: i64) {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = NET.try_with(|n| n.set(n.get() + delta));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and returns
// its result unchanged, so `System`'s guarantees are ours; the counting touches only
// thread-local cells and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (that is, by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[cfg(feature = "count-alloc")]
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Run `f` with counting on and return its result and the net heap growth in bytes caused
/// by this thread meanwhile. Zero growth if the allocator is not installed.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, i64) {
    let before = NET.with(Cell::get);
    let was = COUNTING.with(|c| c.replace(true));
    let r = f();
    COUNTING.with(|c| c.set(was));
    (r, NET.with(Cell::get) - before)
}

/// Whether [`CountingAlloc`] is this program's global allocator (a test allocation counts).
pub fn installed() -> bool {
    let (_, grew) = measure(|| std::hint::black_box(Box::new([0u8; 64])));
    grew >= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_heap_growth_when_installed() {
        if !installed() {
            return; // built without the count-alloc feature
        }
        let (v, grew) = measure(|| vec![0u64; 1000]);
        assert!((8000..8000 + 4096).contains(&grew), "{grew}");
        let (_, shrank) = measure(|| drop(v));
        assert!(shrank <= -8000, "{shrank}");
    }
}
