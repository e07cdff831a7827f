//! Batch paths: inserting, cancelling and polling many timers in one call, by one of three
//! means, and the adaptive choice between them.
//!
//! - **Scalar**: one timer after another, exactly what [`TimerWheel::insert`],
//!   [`TimerWheel::cancel`] and [`TimerWheel::poll`] do. Always available.
//! - **SIMD** (feature `simd`): an insert's level and slot are pure arithmetic on the deadline
//!   and the wheel's tick, so a batch computes them for lanes of four deadlines with the `wide`
//!   crate's `u64x4` and then links the timers one by one. Cancel and poll have no such
//!   arithmetic to share (they follow keys and list links, one dependent load after another),
//!   so for them SIMD is the scalar path.
//! - **Parallel** (feature `std`): a [`ShardedWheel`] holds several independent wheels; a batch
//!   gives each shard its part and runs the shards on `std::thread::scope` threads, at most
//!   [`ShardedWheel::parallelism`] of them. A single [`TimerWheel`] is one `&mut` structure and
//!   stays on one thread (no `unsafe`, no locks), so on it the parallel path is the scalar one.
//!
//! Every path gives the same observable result: the same keys in the same order, the same
//! values cancelled or fired in the same order, never early (`tests/batch_paths.rs` checks this
//! against the scalar path on random operation sequences).
//!
//! # The adaptive choice
//!
//! [`BatchStrategy::Adaptive`] picks a path per call from the operation, its size and the
//! threads available, with the thresholds below. They were measured with
//! `ticktock bench batch` on the project's 2-core machine (README, "Batch paths"); a path whose
//! threshold is `None` never won there and is off by default (it stays available by name).

mod lanes;
mod sharded;

use alloc::vec::Vec;

pub use sharded::{ShardKey, ShardedWheel};

use crate::key::TimerKey;
use crate::wheel::TimerWheel;

/// Adaptive: the smallest insert batch that takes the SIMD path, or `None` when it never does.
///
/// `None`: the lane arithmetic replaces about ten scalar instructions per timer (a `max`, a
/// `min`, an XOR, a leading-zero count, a multiply for the division by 6, a shift) with about
/// fifty vector instructions per four lanes, and on baseline x86-64 (SSE2, what this workspace
/// compiles for) a `u64x4` is two 128-bit halves. Insert time is the slab and list stores.
/// Measured with `ticktock bench batch` on the 2-core EPYC VM: SIMD against scalar from ×0.48
/// to ×1.19 across rows and runs, never a consistent gain beyond the run-to-run noise.
pub const SIMD_INSERT_MIN: Option<usize> = None;

/// Adaptive: the smallest insert batch (timers, all shards together) that takes the parallel
/// path when a [`ShardedWheel`] has two or more shards and two or more threads.
///
/// A parallel call starts a scoped thread per extra shard group, and starting and joining a
/// thread costs 50–380 µs on the 2-core VM (a persistent worker's round trip: 11–13 µs), while
/// an insert plus a cancel costs 12–20 ns per timer: only large batches pay for the start.
/// Measured (churn, insert + cancel; parallel against scalar, four runs of
/// `ticktock bench batch`): ×0.27–0.54 at 8,192; ×0.28, 0.72, 1.37, 1.68 at 65,536 (the
/// crossover, at the mercy of the machine's other load); ×1.33–1.66 at 1,000,000. The
/// threshold sits above the crossover so that adaptive is not slower than scalar in a noisy run.
pub const PARALLEL_INSERT_MIN: Option<usize> = Some(524_288);

/// Adaptive: the smallest cancel batch (keys) that takes the parallel path; measured together
/// with inserts in the churn rows (see [`PARALLEL_INSERT_MIN`]).
pub const PARALLEL_CANCEL_MIN: Option<usize> = Some(524_288);

/// Adaptive: the smallest poll, in timers it is estimated to visit
/// ([`ShardedWheel::due_estimate`]), that takes the parallel path.
///
/// Measured (drain, one poll fires all B; parallel against scalar): ×0.97–1.52 at 65,536,
/// ×0.89–1.76 (median 1.34) at 1,000,000. A poll per tick (expire) never has enough due
/// timers: forced parallel there is ×0.03–0.05 at 65,536 timers.
pub const PARALLEL_POLL_MIN: Option<usize> = Some(524_288);

/// Which of the batch operations a choice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchOp {
    /// Insert many timers.
    Insert,
    /// Cancel many keys.
    Cancel,
    /// Poll (fire and cascade) many timers.
    Poll,
}

/// How a batch call should run; [`Adaptive`](Self::Adaptive) decides per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BatchStrategy {
    /// One timer after another on the caller's thread.
    Scalar,
    /// Lane-parallel level and slot computation for inserts (feature `simd`; otherwise, and
    /// for cancel and poll, the scalar path).
    Simd,
    /// The shards of a [`ShardedWheel`] on several threads (feature `std`, two or more shards
    /// and threads; otherwise the scalar path), whatever the batch size.
    Parallel,
    /// The path that measured fastest for this operation and size (the constants of
    /// [this module](self)).
    #[default]
    Adaptive,
}

/// The path a batch call actually took (what a [`BatchStrategy`] resolved to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchPath {
    /// One timer after another.
    Scalar,
    /// Levels and slots computed in `u64x4` lanes, then linked one by one.
    Simd,
    /// Shards on several threads.
    Parallel,
}

impl BatchStrategy {
    /// The path this strategy takes for `op` on `len` timers, with `shards` shards and
    /// `threads` threads available.
    #[must_use]
    pub fn path(self, op: BatchOp, len: usize, shards: usize, threads: usize) -> BatchPath {
        let parallel_possible = cfg!(feature = "std") && shards >= 2 && threads >= 2;
        let simd_possible = cfg!(feature = "simd") && op == BatchOp::Insert;
        match self {
            Self::Scalar => BatchPath::Scalar,
            Self::Simd if simd_possible => BatchPath::Simd,
            Self::Simd => BatchPath::Scalar,
            Self::Parallel if parallel_possible => BatchPath::Parallel,
            Self::Parallel => BatchPath::Scalar,
            Self::Adaptive => {
                let parallel_min = match op {
                    BatchOp::Insert => PARALLEL_INSERT_MIN,
                    BatchOp::Cancel => PARALLEL_CANCEL_MIN,
                    BatchOp::Poll => PARALLEL_POLL_MIN,
                };
                if parallel_possible && parallel_min.is_some_and(|min| len >= min) {
                    BatchPath::Parallel
                } else if simd_possible && SIMD_INSERT_MIN.is_some_and(|min| len >= min) {
                    BatchPath::Simd
                } else {
                    BatchPath::Scalar
                }
            }
        }
    }
}

impl<T> TimerWheel<T> {
    /// Inserts a batch of `(deadline, value)` timers, pushing their keys into `keys` in the same
    /// order, by the path `strategy` resolves to; returns that path.
    ///
    /// The result is the same whatever the path: see [`insert`](Self::insert) for what a
    /// deadline means. Room for the whole batch is reserved up front (at most one allocation).
    /// On a single wheel [`BatchStrategy::Parallel`] is the scalar path: use a
    /// [`ShardedWheel`] to spread a batch over threads.
    pub fn insert_batch(
        &mut self,
        timers: &[(u64, T)],
        keys: &mut Vec<TimerKey>,
        strategy: BatchStrategy,
    ) -> BatchPath
    where
        T: Clone,
    {
        let path = strategy.path(BatchOp::Insert, timers.len(), 1, 1);
        keys.reserve(timers.len());
        insert_run(self, timers, path == BatchPath::Simd, |key| keys.push(key));
        path
    }
}

/// Inserts `timers` into `wheel` one after another (`simd`: lists computed four at a time),
/// handing each key to `emit` in order.
fn insert_run<T: Clone>(
    wheel: &mut TimerWheel<T>,
    timers: &[(u64, T)],
    simd: bool,
    mut emit: impl FnMut(TimerKey),
) {
    wheel.reserve(timers.len());
    if !simd {
        for (deadline, value) in timers {
            emit(wheel.insert(*deadline, value.clone()));
        }
        return;
    }
    // The wheel's tick does not move during inserts, so every list is relative to this one.
    let now = wheel.current_tick();
    let mut groups = timers.chunks_exact(lanes::LANES);
    for group in &mut groups {
        let lists = lanes::lists(now, core::array::from_fn(|i| group[i].0));
        for ((deadline, value), list) in group.iter().zip(lists) {
            emit(wheel.insert_filed(*deadline, value.clone(), list));
        }
    }
    for (deadline, value) in groups.remainder() {
        emit(wheel.insert(*deadline, value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_strategies_resolve_to_what_is_compiled_in() {
        let simd = if cfg!(feature = "simd") {
            BatchPath::Simd
        } else {
            BatchPath::Scalar
        };
        assert_eq!(BatchStrategy::Simd.path(BatchOp::Insert, 1, 1, 1), simd);
        assert_eq!(
            BatchStrategy::Simd.path(BatchOp::Cancel, 1 << 20, 4, 4),
            BatchPath::Scalar
        );
        let parallel = if cfg!(feature = "std") {
            BatchPath::Parallel
        } else {
            BatchPath::Scalar
        };
        assert_eq!(
            BatchStrategy::Parallel.path(BatchOp::Poll, 1, 2, 2),
            parallel
        );
        // One shard or one thread: nothing to run in parallel.
        assert_eq!(
            BatchStrategy::Parallel.path(BatchOp::Poll, 1 << 20, 1, 8),
            BatchPath::Scalar
        );
        assert_eq!(
            BatchStrategy::Parallel.path(BatchOp::Poll, 1 << 20, 8, 1),
            BatchPath::Scalar
        );
    }

    #[test]
    fn adaptive_stays_scalar_for_small_batches_and_on_one_thread() {
        for op in [BatchOp::Insert, BatchOp::Cancel, BatchOp::Poll] {
            assert_eq!(
                BatchStrategy::Adaptive.path(op, 32, 2, 2),
                BatchPath::Scalar
            );
            assert_eq!(
                BatchStrategy::Adaptive.path(op, 1 << 24, 2, 1),
                if op == BatchOp::Insert && cfg!(feature = "simd") && SIMD_INSERT_MIN.is_some() {
                    BatchPath::Simd
                } else {
                    BatchPath::Scalar
                }
            );
        }
    }
}
