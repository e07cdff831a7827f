//! [`Interval`]: a periodic timer with tokio's choice of what to do about missed ticks.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;
pub use tokio::time::MissedTickBehavior;

use crate::error::Shutdown;
use crate::global;
use crate::service::TimerHandle;
use crate::sleep::Sleep;

/// Ticks at a fixed period on the timer service. One wheel entry, re-armed in O(1) each tick.
///
/// Missed ticks (the caller was busy past a tick and the next one) are handled as
/// [`MissedTickBehavior`] says: `Burst` (the default) catches up at once, `Delay` restarts the
/// period from now, `Skip` drops the missed ticks and keeps the phase.
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// A zero `period` is taken as one resolution of the service (tokio panics instead).
    pub(crate) fn new(handle: TimerHandle, start: Instant, period: Duration) -> Self {
        let period = period.max(handle.resolution());
        Self {
            sleep: handle.sleep_until(start),
            period,
            missed_tick_behavior: MissedTickBehavior::default(),
        }
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current missed-tick behaviour.
    #[must_use]
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets what happens when ticks are missed.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }

    /// Waits for the next tick and returns the instant it was scheduled for.
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub async fn tick(&mut self) -> Result<Instant, Shutdown> {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (for hand-written futures).
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Result<Instant, Shutdown>> {
        ready!(Pin::new(&mut self.sleep).poll(cx))?;
        let scheduled = self.sleep.deadline();
        let now = self.sleep_handle_now();
        let next = if now > scheduled + self.period {
            match self.missed_tick_behavior {
                MissedTickBehavior::Burst => scheduled + self.period,
                MissedTickBehavior::Delay => now + self.period,
                MissedTickBehavior::Skip => {
                    let behind = (now - scheduled).as_nanos() % self.period.as_nanos();
                    now + self.period - Duration::from_nanos(u64::try_from(behind).unwrap_or(0))
                }
            }
        } else {
            scheduled + self.period
        };
        self.sleep.reset(next);
        Poll::Ready(Ok(scheduled))
    }

    /// Restarts the period from now: the next tick is one period away.
    pub fn reset(&mut self) {
        let next = self.sleep_handle_now() + self.period;
        self.sleep.reset(next);
    }

    fn sleep_handle_now(&self) -> Instant {
        self.sleep.handle().now()
    }
}

/// Ticks every `period` on the [global](crate::global) service, the first tick at once.
#[must_use]
pub fn interval(period: Duration) -> Interval {
    global().interval(period)
}
