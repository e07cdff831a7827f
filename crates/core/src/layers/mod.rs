//! Layered timeout management: a connection's timeouts come from layers, and one scheduler
//! combines them into a single deadline (the seed's `UnifiedTimeoutScheduler`).
//!
//! - [`TimeoutLayer`] is what a layer implements: its next deadline, a check that reports what
//!   came due, a name and optional stats. Layers are sans-IO: time comes in as a parameter, so
//!   they are tested without clocks.
//! - [`TimingManager`] holds the connection-level timeouts (idle, establishment, path
//!   validation, keep-alive). [`ReliabilityLayer`] holds the retransmission timeout over a
//!   [`RetransmissionManager`] (RFC 6298 RTO, Karn's rule, backoff, cumulative and selective
//!   acks, give-up after a retry limit) and tracks what the peer sent.
//! - [`UnifiedScheduler`] owns the layers. Every change to a layer goes through a
//!   [`LayerGuard`], which reads that layer's deadline once when it is dropped, so the scheduler's
//!   cached deadlines are exact and the unified deadline is a field read (recomputed over the
//!   cached values only after the layer holding the minimum moved later).
//! - [`LayeredTimeouts`] is a scheduler on the timer service: one registration per connection,
//!   which follows the unified deadline whenever the connection waits. A later deadline never
//!   touches the wheel (the registration re-files itself when it comes due early); only an
//!   earlier one resets it.
//!
//! # Invariants
//! - A layer's [`next_deadline`](TimeoutLayer::next_deadline) changes only through `&mut self`
//!   methods (never by time passing on its own); the scheduler relies on this for its cache.
//! - `calculate_unified_deadline() == min(layer.next_deadline())` over all layers, at every point
//!   between calls (`None` sorting last); the property tests check it through random sequences.
//! - A layer is checked only once its deadline has passed, and never early.

use std::any::Any;
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::TimeoutEvent;

mod layered;
mod reliability;
mod retransmission;
mod scheduler;
mod timing;

pub use layered::LayeredTimeouts;
pub use reliability::{AckFrame, Received, ReliabilityConfig, ReliabilityLayer};
pub use retransmission::{AckOutcome, RetransmissionManager, RetransmissionStats, RetransmitFrame};
pub use scheduler::{LayerGuard, LayerId, SchedulerStats, UnifiedScheduler};
pub use timing::{TimingConfig, TimingManager};

/// Something a layer reports from [`TimeoutLayer::check_timeouts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayerEvent {
    /// A timer of this kind expired (idle, establishment, path validation, RTO, keep-alive or a
    /// user kind).
    Timeout(TimeoutEvent),
    /// Frame `sequence` went unacknowledged through the configured number of retransmissions:
    /// the peer is unreachable and the connection should close.
    RetransmissionLimit {
        /// The frame that was given up on.
        sequence: u64,
        /// How many times it was sent in all.
        transmissions: u32,
    },
}

/// What one layer's check found due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeoutCheckResult {
    /// The layer that reported this.
    pub layer: &'static str,
    /// Timeouts that expired, earliest kind first.
    pub events: Vec<LayerEvent>,
    /// Frames whose retransmission timeout fired: send them again.
    pub frames_to_retransmit: Vec<RetransmitFrame>,
}

impl TimeoutCheckResult {
    /// A result with nothing in it, from `layer`.
    #[must_use]
    pub fn empty(layer: &'static str) -> Self {
        Self {
            layer,
            events: Vec::new(),
            frames_to_retransmit: Vec::new(),
        }
    }

    /// Whether nothing was found due.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.frames_to_retransmit.is_empty()
    }
}

/// A source of timeouts for a connection (the seed's trait).
///
/// Implementations must keep [`next_deadline`](Self::next_deadline) cheap (it is read after
/// every change) and change it only from `&mut self` methods.
pub trait TimeoutLayer: Any + Send {
    /// The earliest instant at which [`check_timeouts`](Self::check_timeouts) has something to
    /// report, or `None` when nothing is pending.
    fn next_deadline(&self) -> Option<Instant>;

    /// [`next_deadline`](Self::next_deadline) split by [`Precision`](crate::Precision): the earliest deadline that
    /// must be met exactly and the earliest that may be met coarsely (never early, up to an
    /// eighth of the time to it late, in exchange for less work in the wheel). The earlier of
    /// the two must equal `next_deadline()`.
    ///
    /// The default reports every deadline as exact.
    #[inline]
    fn next_deadlines(&self) -> LayerDeadlines {
        LayerDeadlines {
            exact: self.next_deadline(),
            coarse: None,
        }
    }

    /// Reports (and consumes) everything due at `now`, and moves the deadline on.
    fn check_timeouts(&mut self, now: Instant) -> TimeoutCheckResult;

    /// A short, stable name for logs and stats.
    fn layer_name(&self) -> &'static str;

    /// A one-line summary of the layer's counters, if it keeps any.
    fn stats(&self) -> Option<String> {
        None
    }
}

/// A layer's (or a scheduler's) earliest deadlines by [`Precision`](crate::Precision); `None` means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerDeadlines {
    /// The earliest deadline to be met in its own tick.
    pub exact: Option<Instant>,
    /// The earliest deadline that may be met coarsely, and how late it may be met.
    pub coarse: Option<CoarseDeadline>,
}

/// A deadline that may be met up to `slack` late (never early): the timer service then files
/// it at a wheel slot boundary, which spares it cascading down to its own tick.
///
/// Ordered by deadline, then by slack, so the minimum of several is the earliest deadline with
/// the least slack among equals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoarseDeadline {
    /// When the timeout is due.
    pub deadline: Instant,
    /// How much later than `deadline` it may be reported: an eighth of the timeout is the
    /// convention (the Linux timer wheel's bound).
    pub slack: Duration,
}

impl CoarseDeadline {
    /// A timeout of `timeout` running out at `deadline`, with an eighth of `timeout` as slack.
    #[inline]
    #[must_use]
    pub fn eighth_of(deadline: Instant, timeout: Duration) -> Self {
        Self {
            deadline,
            slack: timeout / 8,
        }
    }
}

impl LayerDeadlines {
    /// The earlier of the two.
    #[inline]
    #[must_use]
    pub fn earliest(&self) -> Option<Instant> {
        earlier(self.exact, self.coarse.map(|coarse| coarse.deadline))
    }

    /// Whether neither deadline is earlier than in `before` (a missing deadline counts as
    /// later than any; a coarse one with less slack counts as earlier).
    #[inline]
    pub(crate) fn not_earlier_than(&self, before: &Self) -> bool {
        fn later<T: Ord>(now: Option<T>, then: Option<T>) -> bool {
            match (now, then) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(now), Some(then)) => now >= then,
            }
        }
        later(self.exact, before.exact) && later(self.coarse, before.coarse)
    }
}

/// The earlier of two optional deadlines, `None` meaning "never".
#[inline]
pub(crate) fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(a), None) => Some(a),
        (None, b) => b,
    }
}

/// `at + by`, at least a nanosecond later (a deadline is always after the instant it counts
/// from, so a zero period cannot leave a layer due right after its check), saturating far in
/// the future instead of overflowing.
#[inline]
pub(crate) fn plus(at: Instant, by: Duration) -> Instant {
    // `is_zero` rather than `max`: two tests instead of an ordering, on every packet.
    let by = if by.is_zero() {
        Duration::from_nanos(1)
    } else {
        by
    };
    at.checked_add(by)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30))
}
