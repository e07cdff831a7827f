//! The implementations under test, each behind the same small trait.
//!
//! Every workload is written once, generic over [`TimerImpl`], and monomorphized per
//! implementation: the loop, the input reads and the bookkeeping around each call are the same
//! machine code for all of them, so the only thing that differs between two rows of a table is
//! the timer structure itself. Each adapter is a thin layer that maps integer ticks (1 tick =
//! 1 ms) to what its structure takes.

mod delay_queue;
mod heap;
pub mod lazy_heap;
mod nexus;
mod ticktock;

pub use delay_queue::DelayQueuePeer;
pub use heap::LazyHeapPeer;
pub use nexus::NexusPeer;
pub use ticktock::Ticktock;

use crate::error::CliError;

/// A timer structure as the workloads drive it. Ticks are milliseconds since the structure was
/// built; values are `u64`.
pub trait TimerImpl: Sized {
    /// Name in the tables and the JSON.
    const NAME: &'static str;

    /// Names one timer. Move-only keys (nexus-timer's handles) are fine: every key the
    /// workloads get is handed back exactly once, to `cancel` or `reset`.
    type Key;

    /// An empty structure at tick 0. `capacity` is a hint (0 for none) that implementations
    /// with a pre-sizing constructor pass on.
    fn build(capacity: usize) -> Result<Self, CliError>;

    /// Runs `work` in whatever context the structure needs (a tokio runtime for DelayQueue).
    /// Workloads wrap each timed sample in it, so entering the context is not timed per call.
    #[inline]
    fn within<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> R {
        work(self)
    }

    /// Heap bytes the structure's environment took when it was built (tokio's runtime), which
    /// the memory workload does not charge to the timers.
    fn environment_bytes(&self) -> usize {
        0
    }

    /// The current tick: the last one passed to [`advance`](Self::advance), or 0.
    fn now(&self) -> u64;

    /// Live timers.
    fn len(&self) -> usize;

    /// Schedules `value` at `tick` and returns its key.
    fn insert(&mut self, tick: u64, value: u64) -> Self::Key;

    /// Schedules `value` at `tick` without keeping a key: the cheapest fire-and-forget path.
    fn insert_forget(&mut self, tick: u64, value: u64);

    /// Cancels the timer; `true` when it was live.
    fn cancel(&mut self, key: Self::Key) -> bool;

    /// Moves the timer to `tick`, returning the key to use from now on (`None`: it was not
    /// live).
    fn reset(&mut self, key: Self::Key, tick: u64) -> Option<Self::Key>;

    /// Moves time to `now` and pushes the value of every timer due at or before it onto
    /// `fired`.
    fn advance(&mut self, now: u64, fired: &mut Vec<u64>);
}
