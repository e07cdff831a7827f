//! Adapter for [`LazyHeap`], the binary-heap baseline.

use super::TimerImpl;
use super::lazy_heap::{HeapKey, LazyHeap};
use crate::error::CliError;

/// `BinaryHeap` with lazy cancellation: what a protocol stack writes when it has no wheel.
#[derive(Debug)]
pub struct LazyHeapPeer {
    heap: LazyHeap<u64>,
}

impl TimerImpl for LazyHeapPeer {
    const NAME: &'static str = "lazy-heap";
    type Key = HeapKey;

    fn build(capacity: usize) -> Result<Self, CliError> {
        Ok(Self {
            heap: LazyHeap::with_capacity(capacity),
        })
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        self.heap.now()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    #[inline(always)]
    fn insert(&mut self, tick: u64, value: u64) -> HeapKey {
        self.heap.insert(tick, value)
    }

    #[inline(always)]
    fn insert_forget(&mut self, tick: u64, value: u64) {
        self.heap.insert(tick, value);
    }

    #[inline(always)]
    fn cancel(&mut self, key: HeapKey) -> bool {
        self.heap.cancel(key).is_some()
    }

    #[inline(always)]
    fn reset(&mut self, key: HeapKey, tick: u64) -> Option<HeapKey> {
        self.heap.reset(key, tick)
    }

    #[inline(always)]
    fn advance(&mut self, now: u64, fired: &mut Vec<u64>) {
        self.heap.poll(now, fired);
    }
}
