//! A global allocator that counts live heap bytes, for the `memory` workload.
//!
//! Timer structures don't report their heap use in a common way (and some, like DelayQueue,
//! don't report it at all), so the benchmark measures it from outside: every allocation of the
//! process goes through [`CountingAlloc`], which forwards to [`System`] and keeps a running total
//! of the bytes currently allocated, for the whole process and for each thread. The difference of
//! [`live_bytes`] before and after filling a structure is what that structure holds.
//!
//! The process-wide total moves with every thread's allocations (a tokio worker's, or another
//! test's when tests run in parallel), so a reading taken around work done on one thread uses
//! [`thread_live_bytes`]: what this thread allocated less what it freed. A block freed by a
//! thread other than the one that allocated it moves both threads' counts, so that reading is
//! only exact for work that allocates and frees on its own thread, as the `memory` workload does.
//!
//! This is the only module of the crate that may use `unsafe`: implementing [`GlobalAlloc`] is
//! an `unsafe impl` by definition. Each method only forwards its arguments unchanged to
//! [`System`] and adjusts a relaxed atomic counter, so it upholds exactly the contract
//! `System` upholds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    // Const-initialised and without a destructor, so reaching it never allocates (which would
    // re-enter the allocator) and it stays usable while the thread is torn down.
    static THREAD_LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `delta` to the calling thread's count.
#[inline]
fn count_on_thread(delta: isize) {
    // `try_with` only fails after the thread's locals are gone; those last frees go uncounted.
    let _ = THREAD_LIVE.try_with(|live| live.set(live.get().wrapping_add(delta)));
}

/// Forwards to [`System`] and counts the bytes currently allocated through it (in total here, and
/// per thread in a thread-local shared by every instance).
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

    fn grew(&self, bytes: usize) {
        self.live.fetch_add(bytes, Ordering::Relaxed);
        count_on_thread(bytes as isize);
    }

    fn shrank(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
        count_on_thread((bytes as isize).wrapping_neg());
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
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `alloc`, forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`, as the
        // caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout` and `new_size` is valid, as the caller
        // guarantees; forwarded unchanged.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            // On failure the old block stays allocated and the count stays as it was.
            self.grew(new_size);
            self.shrank(layout.size());
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

/// Bytes the calling thread has allocated less the bytes it has freed, since it started. Only
/// differences of two readings on the same thread mean anything; see the [module docs](self).
pub fn thread_live_bytes() -> isize {
    THREAD_LIVE.with(Cell::get)
}

/// Bytes the calling thread has come to hold since it read `before` from [`thread_live_bytes`]
/// (0 if it holds less).
pub fn thread_bytes_since(before: isize) -> usize {
    usize::try_from(thread_live_bytes().wrapping_sub(before)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Held by the tests that move the process-wide count by 64 MiB, so they don't see each
    /// other's blocks.
    static BIG_BLOCKS: Mutex<()> = Mutex::new(());

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
        // shows up (far more than the other tests hold, except the one that also takes BIG_BLOCKS)
        // and goes away again.
        const SIZE: usize = 64 << 20;
        let _alone = BIG_BLOCKS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = live_bytes();
        let block = vec![1u8; SIZE];
        let during = live_bytes();
        assert!(during >= before + SIZE / 2, "{before} -> {during}");
        drop(std::hint::black_box(block));
        let after = live_bytes();
        assert!(after + SIZE / 2 <= during, "{during} -> {after}");
    }

    #[test]
    fn a_thread_counts_its_own_blocks_and_not_another_threads() {
        const SIZE: usize = 64 << 20;
        let _alone = BIG_BLOCKS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = thread_live_bytes();
        let (block, on_other) = std::thread::spawn(|| {
            let before = thread_live_bytes();
            let block = vec![1u8; SIZE];
            let held = thread_bytes_since(before);
            (block, held)
        })
        .join()
        .expect("the allocating thread runs");
        assert!(on_other >= SIZE, "{on_other}");
        // Spawning and joining allocate a little here; the 64 MiB block is the other thread's.
        let here = thread_bytes_since(before);
        assert!(here < SIZE / 2, "{here}");
        // Freed here, so this thread's count drops below where it started.
        drop(std::hint::black_box(block));
        assert!(thread_live_bytes() + (SIZE / 2) as isize <= before);
        assert_eq!(thread_bytes_since(before), 0);
    }
}
