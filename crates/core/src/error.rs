//! Errors of the timer service and its futures.

/// The timer service that a timer belongs to has shut down.
///
/// Futures that were waiting resolve with this error instead of hanging; arming a timer after
/// shutdown fails with it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ticktock timer service has shut down")]
pub struct Shutdown;

/// Why a [`timeout`](crate::timeout) did not return its future's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    /// The deadline passed before the future completed.
    #[error("deadline has elapsed")]
    Elapsed,
    /// The timer service shut down before either happened.
    #[error(transparent)]
    Shutdown(#[from] Shutdown),
}

/// Bad settings given to [`TimerService::builder`](crate::TimerService::builder).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The resolution must be at least one microsecond.
    #[error("timer resolution {0:?} is below the 1 µs minimum")]
    ResolutionTooFine(std::time::Duration),
    /// The shard count must be between 1 and 1024.
    #[error("shard count {0} is outside 1..=1024")]
    Shards(usize),
    /// A service with a task driver (tokio's or a manual clock) or a timerfd driver
    /// ([`Clock::SystemTimerfd`](crate::Clock::SystemTimerfd)) was started outside a tokio
    /// runtime.
    #[error(
        "a TimerService on tokio's, a manual or the timerfd clock must be started within a tokio runtime"
    )]
    NoRuntime,
    /// The driver thread of a [`Clock::System`](crate::Clock::System) service could not start.
    #[error("cannot start the timer driver thread: {0:?}")]
    Thread(std::io::ErrorKind),
    /// The timerfd of a [`Clock::SystemTimerfd`](crate::Clock::SystemTimerfd) service could not
    /// be created (`Unsupported` on systems other than Linux).
    #[error("cannot create the timer driver's timerfd: {0:?}")]
    Timerfd(std::io::ErrorKind),
}
