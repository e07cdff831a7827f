//! Retransmission timeout (RTO) estimation as RFC 6298 specifies it, sans-IO.
//!
//! Design and invariants: on [`RtoEstimator`] (re-exported at the crate root, where users read them).

use std::time::Duration;

/// Settings of an [`RtoEstimator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtoConfig {
    /// The RTO before the first RTT sample (RFC 6298: 1 s).
    pub initial: Duration,
    /// The smallest RTO (RFC 6298: 1 s; QUIC-style stacks use less).
    pub min: Duration,
    /// The largest RTO, backoff included (RFC 6298: at least 60 s).
    pub max: Duration,
    /// Clock granularity `G`: the RTO is at least SRTT + G.
    pub granularity: Duration,
}

impl Default for RtoConfig {
    /// RFC 6298's values with a 1 ms clock granularity.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
            granularity: Duration::from_millis(1),
        }
    }
}

/// RFC 6298 RTO estimation.
///
/// [`RtoEstimator`] keeps the smoothed round-trip time (SRTT) and its variation (RTTVAR) from
/// RTT samples and derives the RTO from them:
///
/// - first sample `R`: `SRTT = R`, `RTTVAR = R / 2`;
/// - later samples: `RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|`, then `SRTT = 7/8 SRTT + 1/8 R`
///   (α = 1/8, β = 1/4, RTTVAR updated with the old SRTT, as section 2.3 says);
/// - `RTO = SRTT + max(G, K * RTTVAR)` with `K = 4` and `G` the clock granularity, clamped to
///   `[min, max]` — QUIC-style stacks use a lower minimum than TCP's 1 s, so both are settings;
/// - each expiry doubles the RTO (exponential backoff, capped at `max`); the next valid sample
///   ends the backoff.
///
/// Karn's rule — no sample from a retransmitted segment — is the caller's to apply (the
/// retransmission manager knows which frames were retransmitted); [`RtoEstimator::on_ack`]
/// takes the sample only when it is valid.
///
/// All arithmetic is in whole nanoseconds, so results are exact and repeatable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtoEstimator {
    config: RtoConfig,
    /// SRTT and RTTVAR in nanoseconds, once a sample arrived.
    smoothed: Option<(u64, u64)>,
    /// Expiries since the last valid sample.
    backoff: u32,
    /// [`rto`](Self::rto), recomputed when a sample or an expiry changes it: senders read it on
    /// every frame.
    current: Duration,
}

const K: u64 = 4;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl RtoEstimator {
    /// An estimator with no sample yet: its RTO is `config.initial` (clamped to the limits).
    #[must_use]
    pub fn new(config: RtoConfig) -> Self {
        let mut estimator = Self {
            config,
            smoothed: None,
            backoff: 0,
            current: Duration::ZERO,
        };
        estimator.current = estimator.compute_rto();
        estimator
    }

    /// The smoothed RTT, once there was a sample.
    #[must_use]
    pub fn srtt(&self) -> Option<Duration> {
        self.smoothed.map(|(srtt, _)| Duration::from_nanos(srtt))
    }

    /// The RTT variation, once there was a sample.
    #[must_use]
    pub fn rttvar(&self) -> Option<Duration> {
        self.smoothed
            .map(|(_, rttvar)| Duration::from_nanos(rttvar))
    }

    /// Expiries since the last valid sample (each doubled the RTO).
    #[must_use]
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// The RTO without backoff: from the samples, or the initial value before any.
    #[must_use]
    pub fn base_rto(&self) -> Duration {
        let raw = match self.smoothed {
            None => nanos(self.config.initial),
            Some((srtt, rttvar)) => {
                srtt.saturating_add(nanos(self.config.granularity).max(K.saturating_mul(rttvar)))
            }
        };
        Duration::from_nanos(self.clamp(raw))
    }

    /// The RTO to arm the retransmission timer with: the base RTO doubled once per expiry since
    /// the last valid sample, never above `max`.
    #[must_use]
    #[inline]
    pub fn rto(&self) -> Duration {
        debug_assert_eq!(self.current, self.compute_rto());
        self.current
    }

    fn compute_rto(&self) -> Duration {
        let base = nanos(self.base_rto());
        let backed_off = base
            .checked_shl(self.backoff)
            .filter(|shifted| shifted >> self.backoff == base)
            .unwrap_or(u64::MAX);
        Duration::from_nanos(self.clamp(backed_off))
    }

    /// Takes an RTT sample (RFC 6298, sections 2.2 and 2.3) and ends any backoff.
    pub fn on_rtt_sample(&mut self, rtt: Duration) {
        let sample = nanos(rtt);
        self.smoothed = Some(match self.smoothed {
            None => (sample, sample / 2),
            Some((srtt, rttvar)) => {
                let rttvar = rttvar - rttvar / 4 + srtt.abs_diff(sample) / 4;
                let srtt = srtt - srtt / 8 + sample / 8;
                (srtt, rttvar)
            }
        });
        self.backoff = 0;
        self.current = self.compute_rto();
    }

    /// An acknowledgment arrived for a frame sent `rtt` ago: takes the sample unless the frame
    /// was retransmitted (Karn's rule: its RTT is ambiguous), in which case nothing changes.
    pub fn on_ack(&mut self, rtt: Duration, retransmitted: bool) {
        if !retransmitted {
            self.on_rtt_sample(rtt);
        }
    }

    /// The retransmission timer expired: back off (the next [`rto`](Self::rto) doubles).
    pub fn on_timeout(&mut self) {
        if nanos(self.rto()) < nanos(self.config.max) {
            self.backoff += 1;
            self.current = self.compute_rto();
        }
    }

    fn clamp(&self, raw: u64) -> u64 {
        raw.max(nanos(self.config.min)).min(nanos(self.config.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn quic_like() -> RtoConfig {
        RtoConfig {
            initial: 333 * MS,
            min: 10 * MS,
            max: Duration::from_secs(60),
            granularity: MS,
        }
    }

    #[test]
    fn initial_rto_before_any_sample() {
        let rto = RtoEstimator::new(RtoConfig::default());
        assert_eq!(rto.rto(), Duration::from_secs(1));
        assert_eq!(rto.srtt(), None);
        assert_eq!(RtoEstimator::new(quic_like()).rto(), 333 * MS);
    }

    /// Worked by hand from RFC 6298 section 2.2: R = 100 ms gives SRTT 100, RTTVAR 50,
    /// RTO = 100 + 4 * 50 = 300 ms.
    #[test]
    fn first_sample() {
        let mut rto = RtoEstimator::new(quic_like());
        rto.on_rtt_sample(100 * MS);
        assert_eq!(rto.srtt(), Some(100 * MS));
        assert_eq!(rto.rttvar(), Some(50 * MS));
        assert_eq!(rto.rto(), 300 * MS);
    }

    /// Section 2.3, by hand: after R = 100 ms, a sample R' = 200 ms gives
    /// RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms, SRTT = 7/8 * 100 + 1/8 * 200 = 112.5 ms,
    /// RTO = 112.5 + 4 * 62.5 = 362.5 ms. A third sample R'' = 112.5 ms (equal to SRTT) gives
    /// RTTVAR = 3/4 * 62.5 = 46.875 ms, SRTT unchanged, RTO = 112.5 + 187.5 = 300 ms.
    #[test]
    fn following_samples() {
        let mut rto = RtoEstimator::new(quic_like());
        rto.on_rtt_sample(100 * MS);
        rto.on_rtt_sample(200 * MS);
        assert_eq!(rto.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(rto.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(rto.rto(), Duration::from_micros(362_500));
        rto.on_rtt_sample(Duration::from_micros(112_500));
        assert_eq!(rto.rttvar(), Some(Duration::from_micros(46_875)));
        assert_eq!(rto.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(rto.rto(), 300 * MS);
    }

    /// Section 5.5: each expiry doubles the RTO, capped at the maximum; a new sample ends it.
    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut rto = RtoEstimator::new(quic_like());
        rto.on_rtt_sample(100 * MS);
        let mut expected = 300 * MS;
        for _ in 0..5 {
            rto.on_timeout();
            expected *= 2;
            assert_eq!(rto.rto(), expected);
        }
        for _ in 0..40 {
            rto.on_timeout();
        }
        assert_eq!(rto.rto(), Duration::from_secs(60));
        assert!(rto.backoff() < 20, "backoff stops growing at the cap");
        // RTTVAR = 3/4 * 50 + 0 = 37.5 ms, SRTT stays 100 ms: RTO = 100 + 150 = 250 ms.
        rto.on_rtt_sample(100 * MS);
        assert_eq!(rto.backoff(), 0);
        assert_eq!(rto.rto(), 250 * MS);
    }

    /// Karn's rule: the sample from a retransmitted frame is ignored, backoff stays.
    #[test]
    fn karns_rule() {
        let mut rto = RtoEstimator::new(quic_like());
        rto.on_rtt_sample(100 * MS);
        rto.on_timeout();
        rto.on_ack(5 * MS, true);
        assert_eq!(rto.srtt(), Some(100 * MS));
        assert_eq!(rto.rto(), 600 * MS);
        rto.on_ack(100 * MS, false);
        assert_eq!(rto.rto(), Duration::from_micros(100_000 + 4 * 37_500));
    }

    /// Section 2.4 and the limits: the granularity floor, and min/max clamps.
    #[test]
    fn granularity_and_clamps() {
        // A steady RTT drives RTTVAR towards zero; the RTO floors at SRTT + G.
        let mut rto = RtoEstimator::new(RtoConfig {
            min: Duration::ZERO,
            ..quic_like()
        });
        for _ in 0..200 {
            rto.on_rtt_sample(20 * MS);
        }
        // (Whole nanoseconds: RTTVAR settles at a few ns rather than exactly zero.)
        assert!(
            rto.rttvar()
                .is_some_and(|rttvar| rttvar < Duration::from_micros(1))
        );
        assert_eq!(rto.rto(), 21 * MS);
        // With RFC 6298's 1 s minimum the same path gets 1 s.
        let mut tcp = RtoEstimator::new(RtoConfig::default());
        tcp.on_rtt_sample(20 * MS);
        assert_eq!(tcp.rto(), Duration::from_secs(1));
        // A huge sample is capped, not overflowed.
        let mut huge = RtoEstimator::new(quic_like());
        huge.on_rtt_sample(Duration::MAX);
        assert_eq!(huge.rto(), Duration::from_secs(60));
        huge.on_timeout();
        assert_eq!(huge.rto(), Duration::from_secs(60));
    }
}
