//! A global allocator that counts each thread's live heap bytes, for the `memory` workload and
//! `simulate`'s bytes per connection.
//!
//! Timer structures don't report their heap use in a common way (and some, like DelayQueue,
//! don't report it at all), so the benchmark measures it from outside: every allocation of the
//! process goes through [`CountingAlloc`], which forwards to [`System`] and keeps, per thread, the
//! bytes that thread allocated less the bytes it freed. The difference of two
//! [`thread_live_bytes`] readings around filling a structure is what that structure holds.
//!
//! The count is per thread because a process-wide one moves with every thread's allocations (a
//! tokio worker winding down, another test when tests run in parallel) and misreads by as much.
//! A block freed by a thread other than the one that allocated it moves both threads' counts,
//! so a reading is only exact for work that allocates on the measuring thread and frees nothing
//! of another's, as the workloads it measures do.
//!
//! This is the only module of the crate that may use `unsafe`: implementing [`GlobalAlloc`] is
//! an `unsafe impl` by definition. Each method only forwards its arguments unchanged to
//! [`System`] and adjusts a thread-local counter, so it upholds exactly the contract `System`
//! upholds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

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

/// Forwards to [`System`] and counts, per thread, the bytes allocated through it and not freed.
#[derive(Debug)]
pub struct CountingAlloc;

impl CountingAlloc {
    fn grew(bytes: usize) {
        count_on_thread(bytes as isize);
    }

    fn shrank(bytes: usize) {
        count_on_thread((bytes as isize).wrapping_neg());
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, and returns `System`'s result unchanged; the counter updates touch no
// memory handed to callers, never allocate and cannot unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // exactly `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `alloc`, forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`, as the
        // caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        Self::shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout` and `new_size` is valid, as the caller
        // guarantees; forwarded unchanged.
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            // On failure the old block stays allocated and the count stays as it was.
            Self::grew(new_size);
            Self::shrank(layout.size());
        }
        new_ptr
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

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
    use super::*;

    #[test]
    fn a_private_instance_counts_alloc_realloc_and_dealloc_on_this_thread() {
        let counter = CountingAlloc;
        let before = thread_live_bytes();
        let layout = Layout::from_size_align(1000, 8).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { counter.alloc(layout) };
        assert!(!ptr.is_null());
        assert_eq!(thread_live_bytes() - before, 1000);
        // SAFETY: `ptr` came from `counter` with `layout`; 4000 is a valid size for align 8.
        let ptr = unsafe { counter.realloc(ptr, layout, 4000) };
        assert!(!ptr.is_null());
        assert_eq!(thread_live_bytes() - before, 4000);
        let grown = Layout::from_size_align(4000, 8).expect("valid layout");
        // SAFETY: `ptr` is the live block of `grown`'s size that `realloc` returned.
        unsafe { counter.dealloc(ptr, grown) };
        assert_eq!(thread_live_bytes(), before);
        // SAFETY: the layout has a non-zero size.
        let zeroed = unsafe { counter.alloc_zeroed(layout) };
        assert!(!zeroed.is_null());
        assert_eq!(thread_bytes_since(before), 1000);
        // SAFETY: `zeroed` came from `counter` with `layout`.
        unsafe { counter.dealloc(zeroed, layout) };
        assert_eq!(thread_bytes_since(before), 0);
    }

    #[test]
    fn a_thread_counts_its_own_blocks_and_not_another_threads() {
        const SIZE: usize = 64 << 20;
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
