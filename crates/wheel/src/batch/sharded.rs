//! [`ShardedWheel`]: several independent wheels that batch calls can work on in parallel.

use alloc::vec::Vec;

use super::{BatchOp, BatchPath, BatchStrategy, insert_run};
use crate::key::TimerKey;
use crate::level::{LEVELS, SLOT_BITS};
use crate::lists;
use crate::wheel::TimerWheel;

/// Names one timer of a [`ShardedWheel`]: the shard and the key within it.
///
/// Like a [`TimerKey`], a stale `ShardKey` (fired, cancelled, or a shard that does not exist)
/// is a harmless no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardKey {
    /// The shard the timer is in.
    pub shard: u32,
    /// The timer's key in that shard.
    pub key: TimerKey,
}

#[cfg(feature = "std")]
impl ShardKey {
    /// A key that names no timer, used to size output buffers before the keys are known.
    const NONE: Self = Self {
        shard: u32::MAX,
        key: TimerKey::from_bits(u64::MAX),
    };
}

/// Several [`TimerWheel`]s that move together: one tick for all, batches split across them.
///
/// A single wheel is one `&mut` structure, so it can only ever be worked on by one thread. A
/// `ShardedWheel` is what the parallel batch path runs on: a batch insert gives shard `s` the
/// `s`-th of `shards` equal contiguous runs of the batch; a batch cancel hands each key to its
/// shard; a poll polls every shard to the same tick. With [`BatchPath::Parallel`] the shards
/// are split into at most [`parallelism`](Self::parallelism) groups, each on its own scoped
/// thread (the caller's thread takes the first). The timer service keeps shards for the same
/// reason, one per core; this type is the batch-only, lock-free form of that idea.
///
/// Results never depend on the path: keys come out in input order; cancelled and fired values
/// come out shard by shard (shard 0 first), in key order and in the shard's poll order within a
/// shard.
pub struct ShardedWheel<T> {
    shards: Vec<TimerWheel<T>>,
    parallelism: usize,
    last_path: BatchPath,
}

impl<T> core::fmt::Debug for ShardedWheel<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShardedWheel")
            .field("shards", &self.shards.len())
            .field("parallelism", &self.parallelism)
            .field("len", &self.len())
            .field("current_tick", &self.current_tick())
            .finish_non_exhaustive()
    }
}

impl<T> ShardedWheel<T> {
    /// `shards` empty wheels at tick 0, each with room for `capacity` timers.
    ///
    /// [`parallelism`](Self::parallelism) starts as the threads the OS offers this process
    /// (`std::thread::available_parallelism`, read once here because it is a system call) with
    /// the `std` feature, and 1 without it.
    ///
    /// # Panics
    /// When `shards` is 0 or does not fit a `u32`.
    #[must_use]
    pub fn with_capacity(shards: usize, capacity: usize) -> Self {
        assert!(
            shards > 0 && u32::try_from(shards).is_ok(),
            "ticktock-wheel: a ShardedWheel needs 1 to u32::MAX shards, not {shards}"
        );
        Self {
            shards: (0..shards)
                .map(|_| TimerWheel::with_capacity(capacity))
                .collect(),
            parallelism: available_parallelism(),
            last_path: BatchPath::Scalar,
        }
    }

    /// `shards` empty wheels at tick 0 (see [`with_capacity`](Self::with_capacity)).
    ///
    /// # Panics
    /// When `shards` is 0 or does not fit a `u32`.
    #[must_use]
    pub fn new(shards: usize) -> Self {
        Self::with_capacity(shards, 128)
    }

    /// The shards, to read (statistics, deadlines). They are not handed out mutably: a shard
    /// polled on its own would fall out of step with the others.
    #[must_use]
    pub fn shards(&self) -> &[TimerWheel<T>] {
        &self.shards
    }

    /// The most threads a parallel batch uses (the caller's thread included).
    #[must_use]
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Caps the threads a parallel batch uses (at least 1). Benchmarks and tests use it to
    /// compare thread counts; 1 turns the parallel path off.
    pub fn set_parallelism(&mut self, threads: usize) {
        self.parallelism = threads.max(1);
    }

    /// The path the last batch call ([`insert_many`](Self::insert_many),
    /// [`cancel_many`](Self::cancel_many) or [`poll`](Self::poll)) took; scalar before any.
    #[must_use]
    pub fn last_path(&self) -> BatchPath {
        self.last_path
    }

    /// Live timers in all shards.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(TimerWheel::len).sum()
    }

    /// Whether no shard has a live timer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(TimerWheel::is_empty)
    }

    /// The tick every shard stands at.
    #[must_use]
    pub fn current_tick(&self) -> u64 {
        self.shards[0].current_tick()
    }

    /// The earliest [`TimerWheel::next_deadline`] of any shard.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.shards
            .iter()
            .filter_map(TimerWheel::next_deadline)
            .min()
    }

    /// Whether `key` names a live timer.
    #[must_use]
    pub fn contains(&self, key: ShardKey) -> bool {
        self.shards
            .get(key.shard as usize)
            .is_some_and(|shard| shard.contains(key.key))
    }

    /// Cancels one timer; `None` when the key is stale.
    pub fn cancel(&mut self, key: ShardKey) -> Option<T> {
        self.shards.get_mut(key.shard as usize)?.cancel(key.key)
    }

    /// The path `strategy` takes for `op` on `len` timers here (for a poll, `len` is
    /// [`due_estimate`](Self::due_estimate)).
    #[must_use]
    pub fn path(&self, op: BatchOp, len: usize, strategy: BatchStrategy) -> BatchPath {
        strategy.path(op, len, self.shards.len(), self.parallelism)
    }

    /// About how many timers a [`poll`](Self::poll) at `now` would fire or move: the occupied
    /// slots it passes, times the average number of timers per occupied slot. O(shards ×
    /// levels); the adaptive poll uses it so that a wheel holding a million timers but polled a
    /// tick at a time stays on the scalar path.
    #[must_use]
    pub fn due_estimate(&self, now: u64) -> usize {
        self.shards
            .iter()
            .map(|shard| shard_due_estimate(shard, now))
            .sum()
    }

    /// Shards per thread for the parallel path.
    #[cfg(feature = "std")]
    fn shards_per_thread(&self) -> usize {
        let threads = self.parallelism.min(self.shards.len()).max(1);
        self.shards.len().div_ceil(threads)
    }
}

impl<T: Send> ShardedWheel<T> {
    /// Inserts a batch, pushing a key per timer into `keys` in input order; returns the path
    /// taken. Shard `s` of `S` gets the `s`-th of `S` equal contiguous runs of `timers`.
    pub fn insert_many(
        &mut self,
        timers: &[(u64, T)],
        keys: &mut Vec<ShardKey>,
        strategy: BatchStrategy,
    ) -> BatchPath
    where
        T: Clone + Sync,
    {
        let path = self.path(BatchOp::Insert, timers.len(), strategy);
        self.last_path = path;
        // Inside a run, SIMD only when it would be picked for a run that long on its own.
        let simd = match path {
            BatchPath::Simd => true,
            BatchPath::Scalar => false,
            BatchPath::Parallel => {
                let run = timers.len() / self.shards.len();
                BatchStrategy::Adaptive.path(BatchOp::Insert, run, 1, 1) == BatchPath::Simd
            }
        };
        #[cfg(feature = "std")]
        if path == BatchPath::Parallel {
            self.insert_parallel(timers, keys, simd);
            return path;
        }
        keys.reserve(timers.len());
        let (len, count) = (timers.len(), self.shards.len());
        for index in 0..count {
            let run = &timers[run_start(len, count, index)..run_start(len, count, index + 1)];
            let shard = index as u32;
            insert_run(&mut self.shards[index], run, simd, |key| {
                keys.push(ShardKey { shard, key });
            });
        }
        path
    }

    /// Cancels every live timer in `keys`, pushing the values into `values` shard by shard (in
    /// key order within a shard); returns how many were cancelled. Stale keys are skipped.
    pub fn cancel_many(
        &mut self,
        keys: &[ShardKey],
        values: &mut Vec<T>,
        strategy: BatchStrategy,
    ) -> usize {
        let path = self.path(BatchOp::Cancel, keys.len(), strategy);
        self.last_path = path;
        #[cfg(feature = "std")]
        if path == BatchPath::Parallel {
            return self.cancel_parallel(keys, values);
        }
        let _ = path;
        let mut cancelled = 0;
        for (index, shard) in self.shards.iter_mut().enumerate() {
            cancelled += cancel_run(shard, index as u32, keys, values);
        }
        cancelled
    }

    /// Polls every shard to `now`, pushing fired values into `out` shard by shard; returns how
    /// many fired. Same contract as [`TimerWheel::poll`]: never early, each timer once.
    pub fn poll(&mut self, now: u64, out: &mut Vec<T>, strategy: BatchStrategy) -> usize {
        // Only estimate when the choice can depend on it: the estimate costs O(shards ×
        // levels), as much as an empty poll, and a wheel with fewer live timers than the
        // threshold cannot have that many due.
        let estimate = if strategy == BatchStrategy::Adaptive
            && self.shards.len() >= 2
            && self.parallelism >= 2
            && super::PARALLEL_POLL_MIN.is_some_and(|min| self.len() >= min)
        {
            self.due_estimate(now)
        } else {
            0
        };
        let path = self.path(BatchOp::Poll, estimate, strategy);
        self.last_path = path;
        #[cfg(feature = "std")]
        if path == BatchPath::Parallel {
            return self.poll_parallel(now, out);
        }
        let _ = path;
        self.shards
            .iter_mut()
            .map(|shard| shard.poll(now, out))
            .sum()
    }
}

#[cfg(feature = "std")]
impl<T: Send> ShardedWheel<T> {
    /// Runs `work` on groups of shards, the first group on this thread and each other group on
    /// a scoped thread; returns the groups' results in shard order.
    ///
    /// `work` gets the group's shards, the index of its first shard and its share of `input`
    /// (split by `split`, which says where the group ending before shard `end` stops).
    fn run_groups<I: Send, R: Send>(
        &mut self,
        mut input: I,
        split: impl Fn(I, usize, usize) -> (I, I),
        work: impl Fn(&mut [TimerWheel<T>], usize, I) -> R + Sync,
    ) -> Vec<R> {
        let per_thread = self.shards_per_thread();
        let mut groups = Vec::new();
        let mut first = 0;
        let mut rest = self.shards.as_mut_slice();
        while !rest.is_empty() {
            let count = per_thread.min(rest.len());
            let (group, tail) = rest.split_at_mut(count);
            rest = tail;
            let (mine, others) = split(input, first, first + count);
            input = others;
            groups.push((group, first, mine));
            first += count;
        }
        let work = &work;
        std::thread::scope(|scope| {
            let mut groups = groups.into_iter();
            let local = groups.next();
            let handles: Vec<_> = groups
                .map(|(group, first, mine)| scope.spawn(move || work(group, first, mine)))
                .collect();
            let mut results = Vec::with_capacity(handles.len() + 1);
            if let Some((group, first, mine)) = local {
                results.push(work(group, first, mine));
            }
            for handle in handles {
                match handle.join() {
                    Ok(result) => results.push(result),
                    // A panic in a shard's work (a panicking `Clone`, say) is the caller's.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            results
        })
    }

    fn insert_parallel(&mut self, timers: &[(u64, T)], keys: &mut Vec<ShardKey>, simd: bool)
    where
        T: Clone + Sync,
    {
        let len = timers.len();
        let shards = self.shards.len();
        let start = keys.len();
        // Each group writes its keys straight into its own part of `keys`: no merge afterwards.
        keys.resize(start + len, ShardKey::NONE);
        self.run_groups(
            (timers, &mut keys[start..]),
            |(timers, out), first, end| {
                let at = run_start(len, shards, end) - run_start(len, shards, first);
                let (mine, others) = timers.split_at(at);
                let (my_out, other_out) = out.split_at_mut(at);
                ((mine, my_out), (others, other_out))
            },
            |group, first, (mut timers, out)| {
                let mut out = out.iter_mut();
                for (offset, shard) in group.iter_mut().enumerate() {
                    let index = first + offset;
                    let run_len = run_start(len, shards, index + 1) - run_start(len, shards, index);
                    let (run, rest) = timers.split_at(run_len);
                    timers = rest;
                    let shard_id = index as u32;
                    insert_run(shard, run, simd, |key| {
                        if let Some(slot) = out.next() {
                            *slot = ShardKey {
                                shard: shard_id,
                                key,
                            };
                        }
                    });
                }
            },
        );
    }

    fn cancel_parallel(&mut self, keys: &[ShardKey], values: &mut Vec<T>) -> usize {
        let results = self.run_groups(
            (),
            |(), _, _| ((), ()),
            |group, first, ()| {
                let mut values = Vec::new();
                let mut cancelled = 0;
                for (offset, shard) in group.iter_mut().enumerate() {
                    cancelled += cancel_run(shard, (first + offset) as u32, keys, &mut values);
                }
                (cancelled, values)
            },
        );
        let mut cancelled = 0;
        for (count, group_values) in results {
            cancelled += count;
            values.extend(group_values);
        }
        cancelled
    }

    fn poll_parallel(&mut self, now: u64, out: &mut Vec<T>) -> usize {
        let results = self.run_groups(
            (),
            |(), _, _| ((), ()),
            |group, _, ()| {
                let mut fired = Vec::new();
                let count: usize = group
                    .iter_mut()
                    .map(|shard| shard.poll(now, &mut fired))
                    .sum();
                (count, fired)
            },
        );
        let mut fired = 0;
        for (count, group_fired) in results {
            fired += count;
            out.extend(group_fired);
        }
        fired
    }
}

/// Where run `shard` of a batch of `len` split into `shards` runs starts.
fn run_start(len: usize, shards: usize, shard: usize) -> usize {
    // u128: `len * shard` can overflow usize on 32-bit targets for huge batches.
    (len as u128 * shard as u128 / shards as u128) as usize
}

/// Cancels the keys of shard `id` in `keys`, in order; returns how many were live.
fn cancel_run<T>(
    shard: &mut TimerWheel<T>,
    id: u32,
    keys: &[ShardKey],
    values: &mut Vec<T>,
) -> usize {
    let mut cancelled = 0;
    for key in keys.iter().filter(|key| key.shard == id) {
        if let Some(value) = shard.cancel(key.key) {
            values.push(value);
            cancelled += 1;
        }
    }
    cancelled
}

/// See [`ShardedWheel::due_estimate`].
fn shard_due_estimate<T>(wheel: &TimerWheel<T>, now: u64) -> usize {
    let current = wheel.current_tick();
    if wheel.is_empty() || now < current {
        return 0;
    }
    let occupancy = wheel.occupancy();
    let occupied: u32 = occupancy.iter().map(|bits| bits.count_ones()).sum();
    let mut passed = 0;
    for level in 0..LEVELS {
        let words = lists::level_words(occupancy, level);
        let slots = words.len() * 64;
        let shift = SLOT_BITS as usize * level;
        // Slots of this level whose start lies in (current, now], plus the current one: ring
        // positions from the current one on, wrapping.
        let steps = ((now >> shift) - (current >> shift)).min(slots as u64 - 1) as usize;
        let position = (current >> shift) as usize & (slots - 1);
        let end = position + steps + 1;
        passed += ring_count(words, position, end.min(slots))
            + ring_count(words, 0, end.saturating_sub(slots));
    }
    (wheel.len() as u64 * u64::from(passed) / u64::from(occupied.max(1))) as usize
}

/// Set bits at positions `lo..hi` (at most `64 * words.len()`) of a bitmap in words.
fn ring_count(words: &[u64], lo: usize, hi: usize) -> u32 {
    words
        .iter()
        .enumerate()
        .map(|(word, &bits)| {
            let first = word * 64;
            let from = lo.clamp(first, first + 64) - first;
            let to = hi.clamp(first, first + 64) - first;
            if from >= to {
                return 0;
            }
            let mask = (u64::MAX >> (64 - (to - from))) << from;
            (bits & mask).count_ones()
        })
        .sum()
}

/// The threads this process may run on, or 1 without `std`.
fn available_parallelism() -> usize {
    #[cfg(feature = "std")]
    {
        std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get)
    }
    #[cfg(not(feature = "std"))]
    {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_count_counts_only_the_range() {
        let words = [u64::MAX, 0b1010, 0, 1 << 63];
        assert_eq!(ring_count(&words, 0, 256), 64 + 2 + 1);
        assert_eq!(ring_count(&words, 60, 68), 4 + 2);
        assert_eq!(ring_count(&words, 65, 66), 1);
        assert_eq!(ring_count(&words, 66, 66), 0);
        assert_eq!(ring_count(&words, 255, 256), 1);
    }

    #[test]
    fn due_estimate_counts_near_slots_across_the_ring_end() {
        let mut wheel = TimerWheel::new();
        let mut out = Vec::new();
        wheel.poll(250, &mut out);
        // Ring positions 252..=255 and then 0..=3 (ticks 256..=259), one timer each.
        for deadline in 252..260u64 {
            wheel.insert(deadline, deadline);
        }
        assert_eq!(shard_due_estimate(&wheel, 251), 0);
        assert_eq!(shard_due_estimate(&wheel, 253), 2);
        assert_eq!(shard_due_estimate(&wheel, 257), 6);
        assert_eq!(shard_due_estimate(&wheel, 10_000), 8);
    }
}
