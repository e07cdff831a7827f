//! Where the service's time comes from, and how instants map onto wheel ticks.
//!
//! The default clock is tokio's: the real monotonic clock, or tokio's virtual clock in a runtime
//! whose time is paused (`#[tokio::test(start_paused = true)]`), so service tests run on
//! virtual time for free. [`ManualClock`] is a clock the caller moves by hand, for tests that
//! drive the service without tokio's test utilities.
//!
//! Ticks count whole resolutions since the service's epoch. A deadline maps to the first tick
//! **at or after** it (rounding up) and the current time to the last tick at or before it
//! (rounding down), so a timer polled out at tick `t <= now` has a deadline `<= now`: never
//! early, by construction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A clock the service reads, and so how its driver waits.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// tokio's clock: real time, or virtual time when the runtime's time is paused (the choice
    /// for tests). The driver waits on tokio's timer, whose millisecond grid adds up to about a
    /// millisecond of lateness to the service's own tick.
    #[default]
    Tokio,
    /// The operating system's monotonic clock, read directly (tokio's paused time does not
    /// apply). The driver is a thread of its own that sleeps with the exact timeout, so timers
    /// fire within about one tick of their deadline, and the service needs no runtime to start.
    /// The choice for production; the [global](crate::global) service uses it.
    System,
    /// The operating system's monotonic clock, as [`Clock::System`], with no driver thread or
    /// task: the service's alarm is a Linux `timerfd` on the I/O driver of the tokio runtime
    /// that starts the service, and the worker that sees it expire runs the driver's pass from
    /// its waker. Timers fire at their tick as with `System`, with no thread to switch to, and
    /// the tasks they wake go onto that worker's own queue. For a runtime that does I/O anyway
    /// (a QUIC endpoint's). On a busy runtime, where a worker looks at its I/O only between
    /// tasks, whoever reads the service's clock ([`TimerHandle::now`](crate::TimerHandle::now))
    /// a tick after the alarm's time runs the pass itself. Linux only (elsewhere the service
    /// does not start); the runtime needs I/O enabled.
    SystemTimerfd,
    /// A clock that only moves when told to.
    Manual(ManualClock),
}

impl Clock {
    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::Tokio => Instant::now(),
            Clock::System | Clock::SystemTimerfd => Instant::from_std(std::time::Instant::now()),
            Clock::Manual(manual) => manual.now(),
        }
    }
}

/// A clock moved by hand: [`advance`](Self::advance) and [`set`](Self::set).
///
/// Cloning shares the clock. A service built on it sleeps until the clock moves, never on real
/// time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    shared: Arc<ManualShared>,
}

#[derive(Debug)]
struct ManualShared {
    origin: Instant,
    elapsed_nanos: AtomicU64,
    moved: Notify,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at an arbitrary origin.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(ManualShared {
                origin: Instant::now(),
                elapsed_nanos: AtomicU64::new(0),
                moved: Notify::new(),
            }),
        }
    }

    /// The clock's current time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.shared.origin + Duration::from_nanos(self.shared.elapsed_nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` and wakes the service.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.shared
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(old.saturating_add(nanos))
            })
            .ok();
        self.shared.moved.notify_waiters();
    }

    /// Moves the clock to `to`, if that is later than its current time, and wakes the service.
    pub fn set(&self, to: Instant) {
        let nanos = to.saturating_duration_since(self.shared.origin).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.shared.elapsed_nanos.fetch_max(nanos, Ordering::AcqRel);
        self.shared.moved.notify_waiters();
    }

    /// Resolves at the clock's next move after this call (even if first polled later).
    pub(crate) fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.shared.moved.notified()
    }
}

/// The mapping between instants and ticks of one service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    epoch: Instant,
    resolution_nanos: u64,
    /// `u64::MAX / resolution_nanos`: dividing by the resolution is a multiply and a fix-up
    /// instead of a 64-bit division, on every arm and re-arm.
    reciprocal: u64,
}

impl Ticks {
    pub(crate) fn new(epoch: Instant, resolution: Duration) -> Self {
        let resolution_nanos = u64::try_from(resolution.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            epoch,
            resolution_nanos,
            reciprocal: u64::MAX / resolution_nanos,
        }
    }

    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanoseconds from the epoch to `at` (0 before it).
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        self.nanos_since_epoch(at)
    }

    /// Nanoseconds from the epoch to the end of tick `tick` (the start of the next one).
    #[cfg(target_os = "linux")]
    pub(crate) fn end_nanos(&self, tick: u64) -> u64 {
        tick.saturating_add(1).saturating_mul(self.resolution_nanos)
    }

    pub(crate) fn resolution(&self) -> Duration {
        Duration::from_nanos(self.resolution_nanos)
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `nanos / resolution` and whether it had a remainder.
    #[inline]
    fn divide(&self, nanos: u64) -> (u64, bool) {
        // The reciprocal's estimate is low by at most two.
        let mut quotient = ((u128::from(nanos) * u128::from(self.reciprocal)) >> 64) as u64;
        let mut remainder = nanos - quotient * self.resolution_nanos;
        while remainder >= self.resolution_nanos {
            quotient += 1;
            remainder -= self.resolution_nanos;
        }
        debug_assert_eq!(quotient, nanos / self.resolution_nanos);
        (quotient, remainder != 0)
    }

    /// The last tick at or before `now`.
    #[inline]
    pub(crate) fn floor(&self, now: Instant) -> u64 {
        self.divide(self.nanos_since_epoch(now)).0
    }

    /// The last tick at or before `nanos` from the epoch.
    #[inline]
    pub(crate) fn floor_nanos(&self, nanos: u64) -> u64 {
        self.divide(nanos).0
    }

    /// Whether [`floor_nanos`](Self::floor_nanos)`(nanos) < tick`, without dividing.
    #[inline]
    pub(crate) fn floor_nanos_before(&self, nanos: u64, tick: u64) -> bool {
        // floor(n / r) < t exactly when n < t * r; a `t * r` past `u64::MAX` is past any `n`.
        let before = tick
            .checked_mul(self.resolution_nanos)
            .is_none_or(|start| nanos < start);
        debug_assert_eq!(before, self.floor_nanos(nanos) < tick);
        before
    }

    /// How many whole ticks fit in `duration`.
    #[inline]
    pub(crate) fn floor_duration(&self, duration: Duration) -> u64 {
        self.divide(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX))
            .0
    }

    /// How many ticks `duration` spans, rounded up.
    pub(crate) fn ceil_duration(&self, duration: Duration) -> u64 {
        let (quotient, rest) = self.divide(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        quotient + u64::from(rest)
    }

    /// The first tick at or after `now + duration` (saturating far in the future).
    #[inline]
    pub(crate) fn ceil_after(&self, now: Instant, duration: Duration) -> u64 {
        let duration = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let (quotient, rest) = self.divide(self.nanos_since_epoch(now).saturating_add(duration));
        quotient + u64::from(rest)
    }

    /// The first tick at or after `deadline`.
    #[inline]
    pub(crate) fn ceil(&self, deadline: Instant) -> u64 {
        let (quotient, rest) = self.divide(self.nanos_since_epoch(deadline));
        quotient + u64::from(rest)
    }

    /// The instant tick `tick` starts at (saturating far in the future).
    pub(crate) fn instant(&self, tick: u64) -> Instant {
        let nanos = tick.saturating_mul(self.resolution_nanos);
        self.epoch
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(|| self.epoch + Duration::from_secs(86_400 * 365 * 30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_now_rounds_down() {
        let epoch = Instant::now();
        let ticks = Ticks::new(epoch, Duration::from_millis(1));
        let at = epoch + Duration::from_micros(2_500);
        assert_eq!(ticks.floor(at), 2);
        assert_eq!(ticks.ceil(at), 3);
        assert_eq!(ticks.ceil(epoch + Duration::from_millis(2)), 2);
        assert_eq!(ticks.ceil(epoch), 0);
        // Before the epoch: tick 0, which is due at once.
        assert_eq!(ticks.ceil(epoch - Duration::from_millis(5)), 0);
        assert_eq!(ticks.instant(3), epoch + Duration::from_millis(3));
        assert_eq!(ticks.ceil_after(at, Duration::from_micros(500)), 3);
        assert_eq!(ticks.ceil_after(at, Duration::from_micros(501)), 4);
        assert_eq!(
            ticks.ceil_after(at, Duration::MAX),
            u64::MAX / 1_000_000 + 1
        );
        // A zero resolution is treated as one nanosecond rather than dividing by zero.
        assert_eq!(
            Ticks::new(epoch, Duration::ZERO).resolution(),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn reciprocal_division_is_exact() {
        let epoch = Instant::now();
        for resolution in [1u64, 3, 1000, 999_983, 1_000_000, 1 << 40, u64::MAX] {
            let ticks = Ticks::new(epoch, Duration::from_nanos(resolution));
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            for _ in 0..10_000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                for nanos in [state, state >> 20, state >> 40, u64::MAX - (state & 0xffff)] {
                    let (quotient, rest) = ticks.divide(nanos);
                    assert_eq!(quotient, nanos / resolution);
                    assert_eq!(rest, nanos % resolution != 0);
                }
            }
        }
    }

    #[test]
    fn manual_clock_moves_only_forward() {
        let clock = ManualClock::new();
        let start = clock.now();
        clock.advance(Duration::from_millis(10));
        assert_eq!(clock.now(), start + Duration::from_millis(10));
        clock.set(start);
        assert_eq!(clock.now(), start + Duration::from_millis(10));
        clock.set(start + Duration::from_secs(1));
        assert_eq!(clock.now(), start + Duration::from_secs(1));
    }
}
