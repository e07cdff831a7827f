//! [`RetransmissionManager`]: frames in flight, their acknowledgments and the retransmission
//! timer, sans-IO.
//!
//! Design and invariants: on [`RetransmissionManager`] (re-exported at the crate root, where users read them).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::plus;
use crate::rto::{RtoConfig, RtoEstimator};

/// A frame handed back for retransmission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetransmitFrame {
    /// The frame's sequence number.
    pub sequence: u64,
    /// The bytes to send again.
    pub payload: Bytes,
    /// Which transmission this is: 2 for the first retransmission, and so on.
    pub transmission: u32,
}

/// What an acknowledgment changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Frames acknowledged for the first time.
    pub newly_acked: usize,
    /// The RTT sample taken, if the newest newly acked frame was never retransmitted.
    pub rtt_sample: Option<Duration>,
}

/// Counters of a [`RetransmissionManager`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetransmissionStats {
    /// Frames sent for the first time.
    pub sent: u64,
    /// Retransmissions handed back.
    pub retransmitted: u64,
    /// Frames acknowledged.
    pub acked: u64,
    /// RTT samples taken.
    pub rtt_samples: u64,
    /// Acks that gave no sample under Karn's rule.
    pub karn_skipped: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Frames given up on after the retry limit.
    pub given_up: u64,
}

#[derive(Debug, Clone)]
struct InFlight {
    payload: Bytes,
    /// When it was last sent.
    sent_at: Instant,
    /// How many times it has been sent.
    transmissions: u32,
}

/// Frames in flight and the retransmission timer.
///
/// timer, sans-IO.
///
/// # Design
///
/// Sequence numbers are handed out in order, so the frames in flight are a ring (`VecDeque`)
/// indexed by `sequence - base`: sending pushes at the back, an ack marks its slot, and acked
/// slots at the front are popped. No hash map, no allocation once the ring has grown.
///
/// One retransmission timer covers all frames, as RFC 6298 section 5 prescribes:
/// - sending with the timer stopped starts it (`now + RTO`);
/// - an ack of new data restarts it, or stops it when nothing is left in flight;
/// - on expiry the earliest unacknowledged frame, and every other one sent at least one RTO
///   (the one in force, backoff included) ago, is handed back for retransmission; the RTO
///   doubles and the timer restarts with it. A frame already sent `1 + max_retries` times is given up on instead.
///
/// Karn's rule: an ack for a frame that was retransmitted gives no RTT sample (it cannot tell
/// which transmission it acknowledges); the backoff ends with the next valid sample.
#[derive(Debug, Clone)]
pub struct RetransmissionManager {
    rto: RtoEstimator,
    max_retries: u32,
    /// Slot `i` holds frame `base + i`; `None` once acked.
    frames: VecDeque<Option<InFlight>>,
    base: u64,
    unacked: usize,
    timer: Option<Instant>,
    stats: RetransmissionStats,
}

impl RetransmissionManager {
    /// An empty manager: RTOs from `rto`, give-up after `max_retries` retransmissions of a frame.
    #[must_use]
    pub fn new(rto: RtoConfig, max_retries: u32) -> Self {
        Self {
            rto: RtoEstimator::new(rto),
            max_retries,
            frames: VecDeque::new(),
            base: 0,
            unacked: 0,
            timer: None,
            stats: RetransmissionStats::default(),
        }
    }

    /// Records a new frame sent at `now` and returns its sequence number (0, 1, 2, …).
    #[inline]
    pub fn on_frame_sent(&mut self, payload: Bytes, now: Instant) -> u64 {
        let sequence = self.next_sequence();
        self.frames.push_back(Some(InFlight {
            payload,
            sent_at: now,
            transmissions: 1,
        }));
        self.unacked += 1;
        self.stats.sent += 1;
        if self.timer.is_none() {
            self.timer = Some(plus(now, self.rto.rto()));
        }
        sequence
    }

    /// The sequence number the next frame will get.
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.base + self.frames.len() as u64
    }

    /// Acknowledges every frame below `next_expected` and those `selective` names (bit `i`:
    /// frame `next_expected + 1 + i`), received at `now`. Numbers never sent are ignored.
    pub fn on_ack(&mut self, next_expected: u64, selective: u64, now: Instant) -> AckOutcome {
        let mut newest: Option<(u64, Instant, u32)> = None;
        let mut newly_acked = 0;
        // Cumulative part: everything it covers is at the front of the ring.
        let end = next_expected.min(self.next_sequence());
        while self.base < end {
            if let Some(Some(frame)) = self.frames.pop_front() {
                newest = Some((self.base, frame.sent_at, frame.transmissions));
                newly_acked += 1;
            }
            self.base += 1;
        }
        let mut bits = selective;
        while bits != 0 {
            let sequence = next_expected
                .saturating_add(1)
                .saturating_add(u64::from(bits.trailing_zeros()));
            bits &= bits - 1;
            newly_acked += self.ack_one(sequence, &mut newest);
        }
        while matches!(self.frames.front(), Some(None)) {
            self.frames.pop_front();
            self.base += 1;
        }
        self.unacked -= newly_acked;
        self.stats.acked += newly_acked as u64;
        let mut outcome = AckOutcome {
            newly_acked,
            rtt_sample: None,
        };
        if newly_acked == 0 {
            return outcome;
        }
        if let Some((_, sent_at, transmissions)) = newest {
            if transmissions == 1 {
                let rtt = now.saturating_duration_since(sent_at);
                self.rto.on_ack(rtt, false);
                self.stats.rtt_samples += 1;
                outcome.rtt_sample = Some(rtt);
            } else {
                self.stats.karn_skipped += 1;
            }
        }
        self.timer = (self.unacked > 0).then(|| plus(now, self.rto.rto()));
        outcome
    }

    fn ack_one(&mut self, sequence: u64, newest: &mut Option<(u64, Instant, u32)>) -> usize {
        let Some(index) = sequence.checked_sub(self.base) else {
            return 0;
        };
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|index| self.frames.get_mut(index))
        else {
            return 0;
        };
        let Some(frame) = slot.take() else {
            return 0;
        };
        if newest.is_none_or(|(seen, _, _)| sequence > seen) {
            *newest = Some((sequence, frame.sent_at, frame.transmissions));
        }
        1
    }

    /// When the retransmission timer expires, if it runs.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.timer
    }

    /// Handles a timer expiry at `now`: frames to send again go to `retransmit`, frames given
    /// up on to `given_up` as `(sequence, transmissions)`. Does nothing before the deadline.
    /// After a give-up nothing is left in flight and the timer stops.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        retransmit: &mut Vec<RetransmitFrame>,
        given_up: &mut Vec<(u64, u32)>,
    ) {
        if self.timer.is_none_or(|deadline| now < deadline) {
            return;
        }
        self.stats.timeouts += 1;
        let rto = self.rto.rto();
        let start = retransmit.len();
        let mut earliest = true;
        for (index, slot) in self.frames.iter_mut().enumerate() {
            let Some(frame) = slot else { continue };
            let due = earliest || plus(frame.sent_at, rto) <= now;
            earliest = false;
            if !due {
                continue;
            }
            let sequence = self.base + index as u64;
            if frame.transmissions > self.max_retries {
                given_up.push((sequence, frame.transmissions));
                continue;
            }
            frame.transmissions += 1;
            frame.sent_at = now;
            retransmit.push(RetransmitFrame {
                sequence,
                payload: frame.payload.clone(),
                transmission: frame.transmissions,
            });
        }
        if !given_up.is_empty() {
            // The connection is lost: nothing more will be sent or acknowledged.
            retransmit.truncate(start);
            self.stats.given_up += given_up.len() as u64;
            self.base = self.next_sequence();
            self.frames.clear();
            self.unacked = 0;
            self.timer = None;
            return;
        }
        self.stats.retransmitted += (retransmit.len() - start) as u64;
        self.rto.on_timeout();
        self.timer = Some(plus(now, self.rto.rto()));
    }

    /// Frames sent and not acknowledged.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.unacked
    }

    /// The RTO estimator.
    #[must_use]
    pub fn rto(&self) -> &RtoEstimator {
        &self.rto
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> RetransmissionStats {
        self.stats
    }
}
