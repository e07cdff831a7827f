//! Counters a [`TimerWheel`](crate::TimerWheel) keeps about itself.

use crate::level::LEVELS;

/// A snapshot of a wheel's state and lifetime counters, from
/// [`TimerWheel::stats`](crate::TimerWheel::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WheelStats {
    /// Live timers.
    pub live: usize,
    /// Occupancy of each level: its non-empty slots, out of 256 for level 0 (the near window,
    /// one tick per slot) and out of 64 for the others.
    pub occupied_slots_per_level: [u32; LEVELS],
    /// Timers moved to a finer slot by a poll, without firing, since the wheel was made.
    pub cascades: u64,
    /// Timers a poll filed at a later deadline their owner gave instead of cascading them (see
    /// [`TimerWheel::poll_with_postpone`](crate::TimerWheel::poll_with_postpone)).
    pub postponed: u64,
    /// Timers fired since the wheel was made.
    pub fired: u64,
    /// Timers cancelled (including by `clear`) since the wheel was made.
    pub cancelled: u64,
    /// Heap bytes held by the entry table (live and free entries).
    pub heap_bytes: usize,
}
