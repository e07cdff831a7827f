//! ticktock: a timer service for protocol stacks.
//!
//! One [`TimerService`] holds every timer of a process (or of a runtime) in sharded
//! hierarchical timing wheels ([`ticktock_wheel`]) and runs one driver task that sleeps until
//! the earliest deadline, fires what is due and wakes the waiters — the seed's global timer
//! task, without a message per timer operation, a hash map per cancel or a fixed tick.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ticktock::TimerService;
//!
//! let service = TimerService::builder().resolution(Duration::from_millis(1)).start()?;
//! let timers = service.handle();
//! timers.sleep(Duration::from_millis(5)).await?;
//! let answer = timers.timeout(Duration::from_secs(1), async { 42 }).await?;
//! assert_eq!(answer, 42);
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **Shards.** Each shard is a [`TimerWheel`](ticktock_wheel::TimerWheel) behind its own
//!   mutex; a thread always uses the same shard (assigned round-robin at first use), so with one
//!   shard per worker an operation contends only with the driver's brief passes.
//! - **Ticks.** The service maps instants to ticks of its resolution: deadlines round up, the
//!   current time rounds down, so nothing fires early.
//! - **Driver.** Scans the shards, fires due timers, wakes their wakers after releasing the
//!   shard's lock, then sleeps until the earliest next deadline or until a timer is armed
//!   earlier than that. With only far-away timers it stays asleep (with no timer at all it
//!   looks once a second, so arming far timers needs no notification).
//! - **Futures.** [`Sleep`], [`Timeout`] and [`Interval`] register on first poll, reset in
//!   O(1), cancel on drop, and resolve with [`Shutdown`] if the service stops first.
//! - **Clock.** tokio's clock by default (virtual in a paused runtime, so tests need no real
//!   sleeping; the driver is then a task on tokio's millisecond timer), [`Clock::System`] for
//!   production (the driver is a thread that sleeps with the exact timeout; the [`global`]
//!   service uses it), [`Clock::SystemTimerfd`] on Linux (the driver runs from the waker of a
//!   timerfd on the runtime's I/O driver, on the worker that sees it expire: the exact timeout
//!   without a thread to switch to), or a [`ManualClock`].
//!
//! The free functions ([`sleep`], [`timeout`], [`interval`], …) use the process-wide
//! [`global`] service.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod connection;
mod driver;
mod endpoint;
mod error;
mod global;
mod handoff;
mod interval;
mod layers;
mod registration;
mod rto;
mod service;
mod shard;
mod sleep;
mod stats;
mod sync;
mod thread_wait;
mod timeout;
#[cfg(target_os = "linux")]
mod timerfd;
mod wake;

pub use clock::{Clock, ManualClock};
pub use connection::{ConnectionConfig, ConnectionTimers, TimeoutEvent, TimerError, USER_KINDS};
pub use endpoint::EndpointTimers;
pub use error::{BuildError, Shutdown, TimeoutError};
pub use global::{global, start_global_timer_task};
pub use interval::{Interval, MissedTickBehavior, interval};
pub use layers::{
    AckFrame, AckOutcome, CoarseDeadline, LayerDeadlines, LayerEvent, LayerGuard, LayerId,
    LayeredTimeouts, Received, ReliabilityConfig, ReliabilityLayer, RetransmissionManager,
    RetransmissionStats, RetransmitFrame, SchedulerStats, TimeoutCheckResult, TimeoutLayer,
    TimingConfig, TimingManager, UnifiedScheduler,
};
pub use rto::{RtoConfig, RtoEstimator};
pub use service::{TimerHandle, TimerService, TimerServiceBuilder};
pub use sleep::{Sleep, sleep, sleep_until};
pub use stats::{LatenessStats, TimerStats};
pub use ticktock_wheel::Precision;
pub use timeout::{Timeout, timeout, timeout_at};
pub use tokio::time::Instant;
