//! A global allocator that counts live heap bytes, for the `memory` workload.
//!
//! Timer structures don't report their heap use in a common way (and some, like DelayQueue,
//! don't report it at all), so the benchmark measures it from outside: every allocation of the
//! process goes through [`CountingAlloc`], which forwards to [`System`] and keeps a running total
//! of the bytes currently allocated. The difference of [`live_bytes`] before and after filling a
//! structure is what that structure holds.
//!
//! This is the only module of the crate that may use `unsafe`: implementing [`GlobalAlloc`] is
//! an `unsafe impl` by definition. Each method only forwards its arguments unchanged to
//! [`System`] and adjusts a relaxed atomic counter, so it upholds exactly the contract
//! `System` upholds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Forwards to [`System`] and counts the bytes currently allocated through it.
#[derive(Debug)]
pub struct CountingAlloc {
    live: AtomicUsize,
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self {
            live: AtomicUsize::new(0),
        }
    }

    /// Bytes allocated through this allocator and not yet freed.
    pub fn live_bytes(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, and returns `System`'s result unchanged; the counter updates touch no
// memory handed to callers and cannot unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // exactly `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.live.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `alloc`, forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.live.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`, as the
        // caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout` and `new_size` is valid, as the caller
        // guarantees; forwarded unchanged.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            // On failure the old block stays allocated and the count stays as it was.
            self.live.fetch_add(new_size, Ordering::Relaxed);
            self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new_ptr
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

/// Heap bytes the whole process holds right now (allocated and not freed).
pub fn live_bytes() -> usize {
    GLOBAL.live_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_counter_follows_alloc_realloc_and_dealloc() {
        let counter = CountingAlloc::new();
        let layout = Layout::from_size_align(1000, 8).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { counter.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(counter.live_bytes(), 1000);
        // SAFETY: `ptr` came from `counter` with `layout`; 4000 is a valid size for align 8.
        let ptr = unsafe { counter.realloc(ptr, layout, 4000) };
        assert!(!ptr.is_null());
        assert_eq!(counter.live_bytes(), 4000);
        let grown = Layout::from_size_align(4000, 8).expect("valid layout");
        // SAFETY: `ptr` is the live block of `grown`'s size that `realloc` returned.
        unsafe { counter.dealloc(ptr, grown) };
        assert_eq!(counter.live_bytes(), 0);
        // SAFETY: the layout has a non-zero size.
        let zeroed = unsafe { counter.alloc_zeroed(layout) };
        assert!(!zeroed.is_null());
        assert_eq!(counter.live_bytes(), 1000);
        // SAFETY: `zeroed` came from `counter` with `layout`.
        unsafe { counter.dealloc(zeroed, layout) };
        assert_eq!(counter.live_bytes(), 0);
    }

    #[test]
    fn the_global_counter_sees_a_large_vec() {
        // Other tests run on other threads and allocate too, so only check that a 64 MiB block
        // shows up (far more than the other tests ever hold) and goes away again.
        const SIZE: usize = 64 << 20;
        let before = live_bytes();
        let block = vec![1u8; SIZE];
        let during = live_bytes();
        assert!(during >= before + SIZE / 2, "{before} -> {during}");
        drop(std::hint::black_box(block));
        let after = live_bytes();
        assert!(after + SIZE / 2 <= during, "{during} -> {after}");
    }
}
