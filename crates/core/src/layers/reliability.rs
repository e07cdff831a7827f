//! [`ReliabilityLayer`]: reliable delivery for one connection — the sending side's
//! [`RetransmissionManager`] and the receiving side's record of what arrived — as a
//! [`TimeoutLayer`] whose deadline is the retransmission timer.
//!
//! Design and invariants: on [`ReliabilityLayer`] (re-exported at the crate root, where users read them).

use bytes::Bytes;
use tokio::time::Instant;

use super::retransmission::{AckOutcome, RetransmissionManager};
use super::{LayerEvent, TimeoutCheckResult, TimeoutLayer};
use crate::connection::TimeoutEvent;
use crate::rto::RtoConfig;

/// Settings of a [`ReliabilityLayer`].
///
/// Keep `rto.max` well below the connection's idle timeout (QUIC keeps the idle timeout above
/// three probe timeouts): a backed-off retransmission that lands after the peer's idle timeout
/// finds the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReliabilityConfig {
    /// RTO estimation settings.
    pub rto: RtoConfig,
    /// Retransmissions of one frame before the connection is given up
    /// ([`LayerEvent::RetransmissionLimit`]).
    pub max_retries: u32,
}

impl Default for ReliabilityConfig {
    /// RFC 6298's RTO settings and 8 retries.
    fn default() -> Self {
        Self {
            rto: RtoConfig::default(),
            max_retries: 8,
        }
    }
}

/// An acknowledgment as it travels: everything below `next_expected` arrived, and so did frame
/// `next_expected + 1 + i` for every bit `i` set in `selective`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AckFrame {
    /// The lowest sequence number not received yet.
    pub next_expected: u64,
    /// Frames received beyond `next_expected`, bit `i` for `next_expected + 1 + i`.
    pub selective: u64,
}

/// What [`ReliabilityLayer::on_frame_received`] made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Received {
    /// First time this frame arrived: deliver it.
    New,
    /// Already received: acknowledge again, do not deliver.
    Duplicate,
    /// Too far ahead of the window: dropped unacknowledged, it will be sent again.
    BeyondWindow,
}

/// Reliable delivery as a [`TimeoutLayer`].
///
/// [`RetransmissionManager`] and the receiving side's record of what arrived — as a
/// [`TimeoutLayer`] whose deadline is the retransmission timer.
///
/// The receiving side keeps the next expected sequence number and a 64-bit window of frames
/// received beyond it, which is also what an [`AckFrame`] carries: a cumulative ack plus up to
/// 64 selective acks, 16 bytes on the wire. Frames further ahead than the window are dropped
/// unacknowledged (the sender retransmits them later), so receiving never allocates.
#[derive(Debug, Clone)]
pub struct ReliabilityLayer {
    retransmission: RetransmissionManager,
    received: AckFrame,
    given_up: bool,
}

impl ReliabilityLayer {
    /// A layer with nothing sent or received.
    #[must_use]
    pub fn new(config: ReliabilityConfig) -> Self {
        Self {
            retransmission: RetransmissionManager::new(config.rto, config.max_retries),
            received: AckFrame::default(),
            given_up: false,
        }
    }

    /// Records a frame sent at `now` and returns its sequence number.
    #[inline]
    pub fn on_frame_sent(&mut self, payload: Bytes, now: Instant) -> u64 {
        self.retransmission.on_frame_sent(payload, now)
    }

    /// The sequence number the next frame sent will get (to write it into the frame's header
    /// before [`on_frame_sent`](Self::on_frame_sent)).
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.retransmission.next_sequence()
    }

    /// Applies an acknowledgment from the peer, received at `now`.
    #[inline]
    pub fn on_ack(&mut self, ack: AckFrame, now: Instant) -> AckOutcome {
        self.retransmission
            .on_ack(ack.next_expected, ack.selective, now)
    }

    /// Records a frame from the peer; the answer says whether to deliver it.
    pub fn on_frame_received(&mut self, sequence: u64) -> Received {
        let next = self.received.next_expected;
        if sequence < next {
            return Received::Duplicate;
        }
        if sequence == next {
            // Slide the window past this frame and every one already received after it.
            let run = (!self.received.selective).trailing_zeros();
            self.received.next_expected = next + 1 + u64::from(run);
            self.received.selective = self.received.selective.checked_shr(run + 1).unwrap_or(0);
            return Received::New;
        }
        let bit = sequence - next - 1;
        if bit >= 64 {
            return Received::BeyondWindow;
        }
        if self.received.selective & (1 << bit) != 0 {
            return Received::Duplicate;
        }
        self.received.selective |= 1 << bit;
        Received::New
    }

    /// The acknowledgment to send for what has been received.
    #[must_use]
    pub fn ack_frame(&self) -> AckFrame {
        self.received
    }

    /// Frames sent and not acknowledged.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.retransmission.in_flight()
    }

    /// Whether a frame hit the retry limit (nothing is retransmitted after that).
    #[must_use]
    pub fn has_given_up(&self) -> bool {
        self.given_up
    }

    /// The sending side.
    #[must_use]
    pub fn retransmission(&self) -> &RetransmissionManager {
        &self.retransmission
    }
}

impl TimeoutLayer for ReliabilityLayer {
    #[inline]
    fn next_deadline(&self) -> Option<Instant> {
        self.retransmission.deadline()
    }

    fn check_timeouts(&mut self, now: Instant) -> TimeoutCheckResult {
        let mut result = TimeoutCheckResult::empty(self.layer_name());
        if self.retransmission.deadline().is_none_or(|at| now < at) {
            return result;
        }
        let mut given_up = Vec::new();
        self.retransmission
            .on_timeout(now, &mut result.frames_to_retransmit, &mut given_up);
        if given_up.is_empty() {
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::RetransmissionTimeout));
        } else {
            self.given_up = true;
            result
                .events
                .extend(given_up.into_iter().map(|(sequence, transmissions)| {
                    LayerEvent::RetransmissionLimit {
                        sequence,
                        transmissions,
                    }
                }));
        }
        result
    }

    fn layer_name(&self) -> &'static str {
        "reliability"
    }

    fn stats(&self) -> Option<String> {
        let stats = self.retransmission.stats();
        Some(format!(
            "reliability {{ sent: {}, retransmitted: {}, acked: {}, rtt_samples: {}, timeouts: {}, given_up: {}, rto: {:?} }}",
            stats.sent,
            stats.retransmitted,
            stats.acked,
            stats.rtt_samples,
            stats.timeouts,
            stats.given_up,
            self.retransmission.rto().rto()
        ))
    }
}
