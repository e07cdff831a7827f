//! Adapter for `ticktock_wheel::TimerWheel<u64>`: ticks map one to one.

use ticktock_wheel::{TimerKey, TimerWheel};

use super::TimerImpl;
use crate::error::CliError;

/// ticktock-wheel, the structure this benchmark is about.
#[derive(Debug)]
pub struct Ticktock {
    wheel: TimerWheel<u64>,
}

impl TimerImpl for Ticktock {
    const NAME: &'static str = "ticktock-wheel";
    type Key = TimerKey;

    fn build(capacity: usize) -> Result<Self, CliError> {
        let wheel = if capacity == 0 {
            TimerWheel::new()
        } else {
            TimerWheel::with_capacity(capacity)
        };
        Ok(Self { wheel })
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        self.wheel.current_tick()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.wheel.len()
    }

    #[inline(always)]
    fn insert(&mut self, tick: u64, value: u64) -> TimerKey {
        self.wheel.insert(tick, value)
    }

    #[inline(always)]
    fn insert_forget(&mut self, tick: u64, value: u64) {
        self.wheel.insert(tick, value);
    }

    #[inline(always)]
    fn cancel(&mut self, key: TimerKey) -> bool {
        self.wheel.cancel(key).is_some()
    }

    #[inline(always)]
    fn reset(&mut self, key: TimerKey, tick: u64) -> Option<TimerKey> {
        self.wheel.reset(key, tick).then_some(key)
    }

    #[inline(always)]
    fn advance(&mut self, now: u64, fired: &mut Vec<u64>) {
        self.wheel.poll(now, fired);
    }
}
