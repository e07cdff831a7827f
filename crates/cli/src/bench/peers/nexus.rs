//! Adapter for `nexus_timer::Wheel<u64>`, which takes `std::time::Instant`s: tick `t` is
//! `base + t ms`, with `base` the instant the wheel was built with.
//!
//! Its API is used as its documentation recommends: `schedule` / `cancel` with handles,
//! `schedule_forget` when no handle is needed, the native `reschedule` for resets, and
//! `poll_and_rebalance` (collect and move timers to finer levels in one pass) to advance.

use std::time::{Duration, Instant};

use nexus_timer::{TimerHandle, Wheel};

use super::TimerImpl;
use crate::error::CliError;

/// Slab chunk size when no capacity hint is given (the size nexus-timer's own docs use).
pub const DEFAULT_CHUNK: usize = 4096;

/// nexus-timer 1.5's unbounded wheel (default configuration: 1 ms ticks, 7 levels of 64).
pub struct NexusPeer {
    wheel: Wheel<u64>,
    base: Instant,
    now: u64,
}

impl NexusPeer {
    #[inline(always)]
    fn instant(&self, tick: u64) -> Instant {
        self.base + Duration::from_millis(tick)
    }
}

impl TimerImpl for NexusPeer {
    const NAME: &'static str = "nexus-timer";
    type Key = TimerHandle<u64>;

    /// The capacity hint becomes the slab's chunk size, so one chunk holds every timer.
    fn build(capacity: usize) -> Result<Self, CliError> {
        let base = Instant::now();
        let chunk = if capacity == 0 {
            DEFAULT_CHUNK
        } else {
            capacity
        };
        Ok(Self {
            wheel: Wheel::unbounded(chunk, base),
            base,
            now: 0,
        })
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        self.now
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.wheel.len()
    }

    #[inline(always)]
    fn insert(&mut self, tick: u64, value: u64) -> TimerHandle<u64> {
        let at = self.instant(tick);
        self.wheel.schedule(at, value)
    }

    #[inline(always)]
    fn insert_forget(&mut self, tick: u64, value: u64) {
        let at = self.instant(tick);
        self.wheel.schedule_forget(at, value);
    }

    #[inline(always)]
    fn cancel(&mut self, key: TimerHandle<u64>) -> bool {
        self.wheel.cancel(key).is_some()
    }

    #[inline(always)]
    fn reset(&mut self, key: TimerHandle<u64>, tick: u64) -> Option<TimerHandle<u64>> {
        let at = self.instant(tick);
        Some(self.wheel.reschedule(key, at))
    }

    #[inline(always)]
    fn advance(&mut self, now: u64, fired: &mut Vec<u64>) {
        self.now = self.now.max(now);
        let at = self.instant(now);
        self.wheel.poll_and_rebalance(at, fired);
    }
}
