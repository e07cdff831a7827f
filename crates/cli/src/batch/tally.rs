//! [`Tally`]: what the callers saw, counted on the client side: every request sent and how it
//! ended, and a latency histogram of the served ones.
//!
//! Each caller task keeps its own tally (no sharing while the load runs); the scenario merges
//! them at the end.

use std::convert::Infallible;
use std::time::Duration;

use hdrhistogram::Histogram;
use ticktock_batch::BatchError;

/// Latencies above this saturate the histograms.
const HIGHEST_NS: u64 = 60_000_000_000;

/// A latency histogram in ns, 1 ns to 60 s, 2 significant figures (1 % resolution), small
/// enough (~30 KiB) to give each of 500 callers its own.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 2).expect("1 ns..60 s at 2 figures is valid")
}

/// Nanoseconds in `time`, saturating.
pub fn nanos(time: Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// What the callers of one scenario saw.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests sent (`call` or `try_call` started).
    pub sent: u64,
    /// Answered with the caller's own request echoed back.
    pub served: u64,
    /// Answered with something else: another caller's answer.
    pub misrouted: u64,
    /// Refused with `QueueFull` (`try_call` only).
    pub rejected: u64,
    /// Failed with `TimedOut`.
    pub timed_out: u64,
    /// Failed any other way (shutdown, a handler failure).
    pub failed: u64,
    /// Sent but never finished by the end of the scenario's grace period: lost.
    pub unfinished: u64,
    /// End-to-end latency of each served request, in ns: `Instant::now()` before the call to
    /// `Instant::now()` after it.
    pub latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            sent: 0,
            served: 0,
            misrouted: 0,
            rejected: 0,
            timed_out: 0,
            failed: 0,
            unfinished: 0,
            latency: latency_histogram(),
        }
    }
}

impl Tally {
    /// Counts one finished request: `request` got `result` after `latency`.
    pub fn settle(
        &mut self,
        request: u64,
        result: &Result<u64, BatchError<Infallible>>,
        latency: Duration,
    ) {
        self.sent += 1;
        match result {
            Ok(response) if *response == request => {
                self.served += 1;
                self.latency.saturating_record(nanos(latency).max(1));
            }
            Ok(_) => self.misrouted += 1,
            Err(BatchError::QueueFull) => self.rejected += 1,
            Err(BatchError::TimedOut) => self.timed_out += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// Adds `other`'s counts and histograms to this one.
    pub fn merge(&mut self, other: &Self) {
        self.sent += other.sent;
        self.served += other.served;
        self.misrouted += other.misrouted;
        self.rejected += other.rejected;
        self.timed_out += other.timed_out;
        self.failed += other.failed;
        self.unfinished += other.unfinished;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Requests that came back one way or another.
    pub fn finished(&self) -> u64 {
        self.served + self.misrouted + self.rejected + self.timed_out + self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_and_merge_count_every_outcome() {
        let mut one = Tally::default();
        one.settle(1, &Ok(1), Duration::from_micros(10));
        one.settle(2, &Ok(3), Duration::from_micros(10));
        one.settle(4, &Err(BatchError::QueueFull), Duration::ZERO);
        let mut two = Tally::default();
        two.settle(5, &Err(BatchError::TimedOut), Duration::ZERO);
        two.settle(6, &Err(BatchError::Shutdown), Duration::ZERO);
        two.settle(7, &Ok(7), Duration::from_micros(30));
        one.merge(&two);
        assert_eq!(one.sent, 6);
        assert_eq!(
            (
                one.served,
                one.misrouted,
                one.rejected,
                one.timed_out,
                one.failed
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(one.finished(), one.sent);
        assert_eq!(one.latency.len(), 2);
        assert!(one.latency.max() >= 30_000);
    }
}
