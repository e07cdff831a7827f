//! A [quinn] runtime whose connection timers run on the [ticktock] timer service.
//!
//! quinn keeps one timer per connection (the earliest of its idle, loss-detection, ack-delay,
//! keep-alive, pacing and close timers) and moves it on almost every packet. On quinn's own
//! [`quinn::TokioRuntime`] that timer is a `tokio::time::Sleep`; with
//! [`TicktockRuntime`] it is a [`ticktock::Sleep`] on a ticktock [`TimerService`]: a wheel
//! entry that resets in O(1) without allocating, never fires early and is cancelled when the
//! connection drops. Tasks and UDP sockets stay tokio's: [`TicktockRuntime`] hands them to
//! [`quinn::TokioRuntime`], so it runs inside any tokio runtime with I/O enabled.
//!
//! Using it is one argument where the endpoint is built:
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! # let _rt = tokio::runtime::Runtime::new()?; let _guard = _rt.enter();
//! use std::sync::Arc;
//! use ticktock_quinn::TicktockRuntime;
//!
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
//! let endpoint = quinn::Endpoint::new(
//!     quinn::EndpointConfig::default(),
//!     None, // or Some(server_config)
//!     socket,
//!     Arc::new(TicktockRuntime::global()), // or TicktockRuntime::new(service.handle())
//! )?;
//! # drop(endpoint); Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Timer.** [`TicktockTimer`] wraps one [`ticktock::Sleep`]. `reset` is `Sleep::reset`: one
//!   shard lock and an O(1) wheel move, no allocation; after the timer fired it re-arms on the
//!   next poll (the wheel's slab reuses freed entries, so a warm service allocates nothing).
//! - **Clock first.** The service rounds a deadline up to its next tick (1 ms by default), so
//!   the wheel entry can fire up to one resolution after the deadline. `poll` therefore reads
//!   the service's clock first and answers `Ready` as soon as the deadline itself has passed,
//!   without touching the wheel; it only ever answers `Ready` at or after the deadline.
//! - **Which service.** Any: [`TicktockRuntime::global`] (a driver thread, as
//!   [`ticktock::Clock::System`]), or a service of your own. On Linux, a
//!   [`ticktock::Clock::SystemTimerfd`] service started on the endpoint's runtime is driven
//!   from that runtime's own `epoll_wait` (a timerfd), with no thread to switch to: the
//!   lowest lateness of the drivers measured, at about the driver thread's CPU
//!   (`ticktock quic --compare` runs both beside quinn's tokio runtime).
//! - **Clock.** [`TicktockRuntime`]'s `now()` reads the same clock as its service
//!   ([`TimerHandle::now`]), so quinn's idea of "now" and the timers agree, also on tokio's
//!   paused clock in tests.
//! - **Shutdown.** If the service shuts down, a pending [`ticktock::Sleep`] resolves with
//!   `Err(Shutdown)`. Answering `Ready` then would be early: quinn would find nothing due,
//!   poll again at once and spin until the deadline; staying `Pending` would lose the timeout
//!   (an idle connection would never close). The timer instead re-arms itself on the
//!   process-wide [`ticktock::global()`] service, which never shuts down, and fires on time.
//! - **Counting.** Each timer counts its operations in plain fields and adds them to its
//!   runtime's shared counters every [`FLUSH_EVERY`] operations and when it drops, so counting
//!   costs no contended atomic per operation; [`TicktockRuntime::stats`] reads them.
//!
//! [`TimerService`]: ticktock::TimerService

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use quinn::{AsyncTimer, AsyncUdpSocket, TokioRuntime};
use ticktock::{Sleep, TimerHandle};

/// The runtime under its short name: `ticktock_quinn::Runtime` is [`TicktockRuntime`].
pub type Runtime = TicktockRuntime;

/// Timer operations a timer adds to its runtime's counters at least this often (and when it
/// drops), so a [`TicktockRuntime::stats`] snapshot lags live timers by fewer operations.
pub const FLUSH_EVERY: u32 = 64;

/// A [`quinn::Runtime`] whose timers are [`ticktock::Sleep`]s on a ticktock timer service;
/// tasks and UDP sockets are tokio's, through [`quinn::TokioRuntime`].
///
/// Cloning shares the service and the operation counters. Must be used inside a tokio runtime
/// with I/O enabled (as [`quinn::TokioRuntime`]); tokio's time driver is not needed.
#[derive(Clone)]
pub struct TicktockRuntime {
    handle: TimerHandle,
    counters: Arc<Counters>,
}

impl TicktockRuntime {
    /// A runtime whose timers run on `handle`'s service.
    #[must_use]
    pub fn new(handle: TimerHandle) -> Self {
        Self {
            handle,
            counters: Arc::default(),
        }
    }

    /// A runtime whose timers run on the process-wide [`ticktock::global()`] service (started
    /// at first use on a thread of its own, reading the system clock).
    ///
    /// # Panics
    /// Only if the global service cannot start its thread (see [`ticktock::global()`]).
    #[must_use]
    pub fn global() -> Self {
        Self::new(ticktock::global().clone())
    }

    /// The timer service the timers run on.
    #[must_use]
    pub fn handle(&self) -> &TimerHandle {
        &self.handle
    }

    /// How many timer operations this runtime's timers (and its clones') have made so far.
    /// Live timers report in batches of up to [`FLUSH_EVERY`] operations; dropped ones in
    /// full.
    #[must_use]
    pub fn stats(&self) -> TimerOps {
        self.counters.snapshot()
    }
}

impl Default for TicktockRuntime {
    /// [`TicktockRuntime::global`].
    fn default() -> Self {
        Self::global()
    }
}

impl fmt::Debug for TicktockRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicktockRuntime")
            .field("resolution", &self.handle.resolution())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl quinn::Runtime for TicktockRuntime {
    fn new_timer(&self, deadline: std::time::Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(TicktockTimer::new(
            &self.handle,
            deadline,
            Arc::clone(&self.counters),
        ))
    }

    #[track_caller]
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        quinn::Runtime::spawn(&TokioRuntime, future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        quinn::Runtime::wrap_udp_socket(&TokioRuntime, socket)
    }

    fn now(&self) -> std::time::Instant {
        self.handle.now().into_std()
    }
}

/// Counts of timer operations, as [`TicktockRuntime::stats`] reports them.
///
/// The same shape serves any counted `AsyncTimer` (the `ticktock quic` command counts tokio's
/// timers into it too), so two runtimes can be compared operation for operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerOps {
    /// Timers created (`Runtime::new_timer`): about one per connection.
    pub created: u64,
    /// `AsyncTimer::reset` calls: the deadline moved.
    pub resets: u64,
    /// `AsyncTimer::poll` calls.
    pub polls: u64,
    /// Polls that answered `Ready`: the deadline had passed.
    pub fired: u64,
    /// Timers that moved to the global service because theirs shut down.
    pub fallbacks: u64,
}

impl TimerOps {
    /// Resets and polls: the operations a connection's timer costs after it exists.
    #[must_use]
    pub fn operations(&self) -> u64 {
        self.created + self.resets + self.polls
    }
}

/// A runtime's shared counters, written in batches by its timers.
#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    resets: AtomicU64,
    polls: AtomicU64,
    fired: AtomicU64,
    fallbacks: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TimerOps {
        TimerOps {
            created: self.created.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            polls: self.polls.load(Ordering::Relaxed),
            fired: self.fired.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// One timer's counts since its last flush.
#[derive(Debug, Default)]
struct Pending {
    resets: u32,
    polls: u32,
    fired: u32,
}

impl Pending {
    #[inline]
    fn due(&self) -> bool {
        self.resets + self.polls >= FLUSH_EVERY
    }

    fn flush(&mut self, counters: &Counters) {
        let this = std::mem::take(self);
        // Relaxed: the counts are statistics; nothing is ordered by them.
        counters
            .resets
            .fetch_add(u64::from(this.resets), Ordering::Relaxed);
        counters
            .polls
            .fetch_add(u64::from(this.polls), Ordering::Relaxed);
        counters
            .fired
            .fetch_add(u64::from(this.fired), Ordering::Relaxed);
    }
}

/// A quinn connection timer on a ticktock service: a [`ticktock::Sleep`] that is checked
/// against the clock before it is trusted. Made by [`TicktockRuntime`]'s `new_timer`.
///
/// `reset` is O(1) and never allocates; `poll` answers `Ready` once the clock has reached the
/// deadline (never before), whether or not the wheel entry has fired yet; dropping it cancels
/// the wheel entry.
pub struct TicktockTimer {
    sleep: Sleep,
    counters: Arc<Counters>,
    pending: Pending,
    /// Set once the timer moved to the global service; it never moves again.
    on_global: bool,
}

impl TicktockTimer {
    fn new(handle: &TimerHandle, deadline: std::time::Instant, counters: Arc<Counters>) -> Self {
        counters.created.fetch_add(1, Ordering::Relaxed);
        Self {
            sleep: handle.sleep_until(deadline.into()),
            counters,
            pending: Pending::default(),
            on_global: false,
        }
    }

    /// The instant the timer fires at.
    #[must_use]
    pub fn deadline(&self) -> std::time::Instant {
        self.sleep.deadline().into_std()
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.pending.polls += 1;
        if self.pending.due() {
            self.pending.flush(&self.counters);
        }
        let deadline = self.sleep.deadline();
        // The wheel fires at the first tick at or after the deadline; the deadline itself may
        // already have passed. A clock read is cheaper than the shard lock a poll takes.
        if self.sleep.handle().now() >= deadline {
            self.pending.fired += 1;
            return Poll::Ready(());
        }
        loop {
            match Pin::new(&mut self.sleep).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {
                    self.pending.fired += 1;
                    return Poll::Ready(());
                }
                Poll::Ready(Err(ticktock::Shutdown)) if !self.on_global => {
                    // The service stopped before the deadline: carry on, on the global service.
                    self.on_global = true;
                    self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                    self.sleep = ticktock::global().sleep_until(deadline);
                }
                // The global service never shuts down; if it somehow did, the deadline can no
                // longer be waited for: pending forever would lose the timeout and ready now
                // would be early, so the least bad is the caller seeing a timeout.
                Poll::Ready(Err(ticktock::Shutdown)) => {
                    self.pending.fired += 1;
                    return Poll::Ready(());
                }
            }
        }
    }
}

impl AsyncTimer for TicktockTimer {
    fn reset(self: Pin<&mut Self>, deadline: std::time::Instant) {
        let this = self.get_mut();
        this.pending.resets += 1;
        if this.pending.due() {
            this.pending.flush(&this.counters);
        }
        this.sleep.reset(deadline.into());
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_timer(cx)
    }
}

impl Drop for TicktockTimer {
    fn drop(&mut self) {
        self.pending.flush(&self.counters);
    }
}

impl fmt::Debug for TicktockTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicktockTimer")
            .field("deadline", &self.sleep.deadline())
            .field("elapsed", &self.sleep.is_elapsed())
            .field("on_global", &self.on_global)
            .finish_non_exhaustive()
    }
}
