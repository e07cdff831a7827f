//! [`TimingManager`]: a connection's own timeouts — idle, establishment, path validation and
//! keep-alive — from the last receive and send times.
//!
//! Design and invariants: on [`TimingManager`] (re-exported at the crate root, where users read them).

use std::time::Duration;

use tokio::time::Instant;

use super::{
    CoarseDeadline, LayerDeadlines, LayerEvent, TimeoutCheckResult, TimeoutLayer, earlier, plus,
};
use crate::Precision;
use crate::connection::TimeoutEvent;

/// Settings of a [`TimingManager`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingConfig {
    /// How long the connection may go without receiving a packet before it is idle.
    pub idle_timeout: Duration,
    /// How long establishment (the handshake) may take; `None`: no limit.
    pub handshake_timeout: Option<Duration>,
    /// Send a keep-alive after this long without sending anything; `None`: never.
    pub keep_alive: Option<Duration>,
}

impl Default for TimingConfig {
    /// 30 s idle timeout, 10 s to establish, no keep-alive.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Some(Duration::from_secs(10)),
            keep_alive: None,
        }
    }
}

/// Connection-level timeouts as a [`TimeoutLayer`].
///
/// keep-alive — from the last receive and send times.
///
/// Each timeout is a deadline derived from a few stored instants, so the per-packet calls
/// ([`on_packet_received`](TimingManager::on_packet_received),
/// [`on_packet_sent`](TimingManager::on_packet_sent)) are a store each, and
/// [`next_deadline`](TimeoutLayer::next_deadline) is the minimum of at most four values.
///
/// Idle and keep-alive deadlines are [`Precision::Coarse`] by default (they are pushed back on
/// nearly every packet, and firing up to an eighth of the timeout late spares the wheel's
/// cascades); establishment and path validation are exact. [`set_precision`] changes that per
/// kind.
///
/// [`set_precision`]: TimingManager::set_precision
///
/// Each timeout is reported once: idle until the next receive, establishment and path
/// validation until started again, keep-alive once per quiet period (counted from the last
/// send or the last keep-alive reported, whichever is later).
#[derive(Debug, Clone)]
pub struct TimingManager {
    config: TimingConfig,
    last_received: Instant,
    last_sent: Instant,
    /// When the idle timer expires; `None` after it was reported, until the next receive.
    idle_deadline: Option<Instant>,
    handshake_deadline: Option<Instant>,
    path_validation_deadline: Option<Instant>,
    keep_alive_deadline: Option<Instant>,
    /// The timeout of the path validation running (for a coarse deadline's slack).
    path_validation_timeout: Duration,
    /// Bit `i` set: the kind with deadline index `i` (see [`kind_bit`]) is coarse.
    coarse: u8,
    fired: u64,
}

/// The bit of a kind this layer keeps in `TimingManager::coarse`.
fn kind_bit(event: TimeoutEvent) -> Option<u8> {
    match event {
        TimeoutEvent::IdleTimeout => Some(1),
        TimeoutEvent::ConnectionTimeout => Some(2),
        TimeoutEvent::PathValidationTimeout => Some(4),
        TimeoutEvent::KeepAlive => Some(8),
        TimeoutEvent::RetransmissionTimeout | TimeoutEvent::User(_) => None,
    }
}

impl TimingManager {
    /// A connection opened at `now`: the idle timer and, if configured, the establishment and
    /// keep-alive timers count from here.
    #[must_use]
    pub fn new(config: TimingConfig, now: Instant) -> Self {
        Self {
            config,
            last_received: now,
            last_sent: now,
            idle_deadline: Some(plus(now, config.idle_timeout)),
            handshake_deadline: config.handshake_timeout.map(|limit| plus(now, limit)),
            path_validation_deadline: None,
            keep_alive_deadline: config.keep_alive.map(|period| plus(now, period)),
            path_validation_timeout: Duration::ZERO,
            coarse: 1 | 8,
            fired: 0,
        }
    }

    /// Sets how exactly `event`'s deadline must be met. Returns `false` (and changes nothing)
    /// for kinds this layer does not keep (retransmission and user timers).
    ///
    /// Through a [`LayerGuard`](crate::LayerGuard) the scheduler learns the change when the
    /// guard is dropped.
    pub fn set_precision(&mut self, event: TimeoutEvent, precision: Precision) -> bool {
        let Some(bit) = kind_bit(event) else {
            return false;
        };
        match precision {
            Precision::Exact => self.coarse &= !bit,
            Precision::Coarse => self.coarse |= bit,
        }
        true
    }

    /// [`set_precision`](Self::set_precision) for building: `TimingManager::new(config,
    /// now).with_precision(TimeoutEvent::KeepAlive, Precision::Exact)`.
    #[must_use]
    pub fn with_precision(mut self, event: TimeoutEvent, precision: Precision) -> Self {
        self.set_precision(event, precision);
        self
    }

    /// How exactly `event`'s deadline is met (exact for kinds this layer does not keep).
    #[must_use]
    pub fn precision(&self, event: TimeoutEvent) -> Precision {
        match kind_bit(event) {
            Some(bit) if self.coarse & bit != 0 => Precision::Coarse,
            _ => Precision::Exact,
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &TimingConfig {
        &self.config
    }

    /// A packet arrived at `now`: the idle timer starts again.
    #[inline]
    pub fn on_packet_received(&mut self, now: Instant) {
        self.last_received = now;
        self.idle_deadline = Some(plus(now, self.config.idle_timeout));
    }

    /// A packet was sent at `now`: the keep-alive timer starts again.
    #[inline]
    pub fn on_packet_sent(&mut self, now: Instant) {
        self.last_sent = now;
        if let Some(period) = self.config.keep_alive {
            self.keep_alive_deadline = Some(plus(now, period));
        }
    }

    /// The handshake completed: the establishment timer stops.
    pub fn on_established(&mut self) {
        self.handshake_deadline = None;
    }

    /// Path validation started at `now`; it must complete within `timeout`.
    pub fn start_path_validation(&mut self, now: Instant, timeout: Duration) {
        self.path_validation_deadline = Some(plus(now, timeout));
        self.path_validation_timeout = timeout;
    }

    /// Path validation completed: its timer stops.
    pub fn on_path_validated(&mut self) {
        self.path_validation_deadline = None;
    }

    /// When the last packet arrived.
    #[must_use]
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// When the last packet was sent.
    #[must_use]
    pub fn last_sent(&self) -> Instant {
        self.last_sent
    }

    /// The deadline of one connection-level timer, if it is running (`None` for the kinds this
    /// layer does not keep).
    #[must_use]
    pub fn deadline(&self, event: TimeoutEvent) -> Option<Instant> {
        match event {
            TimeoutEvent::IdleTimeout => self.idle_deadline,
            TimeoutEvent::ConnectionTimeout => self.handshake_deadline,
            TimeoutEvent::PathValidationTimeout => self.path_validation_deadline,
            TimeoutEvent::KeepAlive => self.keep_alive_deadline,
            TimeoutEvent::RetransmissionTimeout | TimeoutEvent::User(_) => None,
        }
    }
}

impl TimeoutLayer for TimingManager {
    #[inline]
    fn next_deadline(&self) -> Option<Instant> {
        earlier(
            earlier(self.idle_deadline, self.handshake_deadline),
            earlier(self.path_validation_deadline, self.keep_alive_deadline),
        )
    }

    #[inline]
    fn next_deadlines(&self) -> LayerDeadlines {
        // The earliest coarse deadline is picked with its timeout, and only the winner's timeout
        // is divided into its eighth: an eighth is monotone in the timeout, so the least timeout
        // among equal deadlines has the least slack, and one division (not four) is enough.
        // Keeping the eighths in the layer instead would make it span one more cache line, a
        // miss per packet with many connections.
        let mut exact: Option<Instant> = None;
        let mut coarse: Option<(Instant, Duration)> = None;
        let mut take = |deadline: Option<Instant>, bit: u8, timeout: Duration| {
            let Some(deadline) = deadline else { return };
            if self.coarse & bit != 0 {
                if coarse.is_none_or(|earliest| (deadline, timeout) < earliest) {
                    coarse = Some((deadline, timeout));
                }
            } else if exact.is_none_or(|earliest| deadline < earliest) {
                exact = Some(deadline);
            }
        };
        let config = &self.config;
        take(self.idle_deadline, 1, config.idle_timeout);
        take(
            self.handshake_deadline,
            2,
            config.handshake_timeout.unwrap_or_default(),
        );
        take(
            self.path_validation_deadline,
            4,
            self.path_validation_timeout,
        );
        take(
            self.keep_alive_deadline,
            8,
            config.keep_alive.unwrap_or_default(),
        );
        LayerDeadlines {
            exact,
            coarse: coarse.map(|(deadline, timeout)| CoarseDeadline::eighth_of(deadline, timeout)),
        }
    }

    fn check_timeouts(&mut self, now: Instant) -> TimeoutCheckResult {
        let mut result = TimeoutCheckResult::empty(self.layer_name());
        let due = |deadline: &mut Option<Instant>| deadline.is_some_and(|at| at <= now);
        if due(&mut self.idle_deadline) {
            self.idle_deadline = None;
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::IdleTimeout));
        }
        if due(&mut self.handshake_deadline) {
            self.handshake_deadline = None;
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::ConnectionTimeout));
        }
        if due(&mut self.path_validation_deadline) {
            self.path_validation_deadline = None;
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::PathValidationTimeout));
        }
        if due(&mut self.keep_alive_deadline) {
            // Reported once per quiet period: the next one counts from now unless a send
            // comes first.
            self.keep_alive_deadline = self.config.keep_alive.map(|period| plus(now, period));
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::KeepAlive));
        }
        self.fired += result.events.len() as u64;
        debug_assert!(self.next_deadline().is_none_or(|next| next > now));
        result
    }

    fn layer_name(&self) -> &'static str {
        "timing"
    }

    fn stats(&self) -> Option<String> {
        Some(format!("timing {{ fired: {} }}", self.fired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TimingConfig {
        TimingConfig {
            idle_timeout: Duration::from_secs(30),
            handshake_timeout: Some(Duration::from_secs(10)),
            keep_alive: Some(Duration::from_secs(5)),
        }
    }

    fn events(result: &TimeoutCheckResult) -> Vec<TimeoutEvent> {
        result
            .events
            .iter()
            .map(|event| match event {
                LayerEvent::Timeout(kind) => *kind,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_timeout_fires_once_at_its_deadline_and_not_before() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut timing = TimingManager::new(config(), start);
        assert_eq!(timing.next_deadline(), Some(at(5)));
        assert!(
            timing
                .check_timeouts(at(5) - Duration::from_nanos(1))
                .is_empty()
        );
        assert_eq!(
            events(&timing.check_timeouts(at(5))),
            [TimeoutEvent::KeepAlive]
        );
        timing.on_packet_sent(at(7));
        assert_eq!(timing.next_deadline(), Some(at(10)));
        assert_eq!(
            events(&timing.check_timeouts(at(10))),
            [TimeoutEvent::ConnectionTimeout]
        );
        assert_eq!(timing.next_deadline(), Some(at(12)));
        timing.on_established();
        timing.on_packet_received(at(12));
        timing.on_packet_sent(at(12));
        timing.start_path_validation(at(12), Duration::from_secs(3));
        assert_eq!(
            events(&timing.check_timeouts(at(15))),
            [TimeoutEvent::PathValidationTimeout]
        );
        assert_eq!(timing.deadline(TimeoutEvent::IdleTimeout), Some(at(42)));
        assert_eq!(
            events(&timing.check_timeouts(at(42))),
            [TimeoutEvent::IdleTimeout, TimeoutEvent::KeepAlive]
        );
        assert_eq!(timing.deadline(TimeoutEvent::IdleTimeout), None);
        assert_eq!(timing.next_deadline(), Some(at(47)));
    }

    #[test]
    fn receiving_pushes_the_idle_timeout_back() {
        let start = Instant::now();
        let mut timing = TimingManager::new(
            TimingConfig {
                handshake_timeout: None,
                keep_alive: None,
                ..config()
            },
            start,
        );
        for second in 1..100 {
            timing.on_packet_received(start + Duration::from_secs(second));
            assert!(
                timing
                    .check_timeouts(start + Duration::from_secs(second))
                    .is_empty()
            );
        }
        assert_eq!(
            timing.next_deadline(),
            Some(start + Duration::from_secs(129))
        );
    }
}
