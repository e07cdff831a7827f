//! [`Row`]: one scenario's outcome, the client's view ([`Run`]) beside the batcher's
//! ([`BatchStats`]) and the handler's ([`Probe`]), with the figures the report prints and the
//! correctness checks that make the command fail.

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde::Serialize;
use ticktock_batch::{BatchStats, Quantiles};

use super::handler::{Cost, Probe};
use super::load::Run;
use super::{Case, Load, Scenario};

/// Latency quantiles in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// From a histogram in ns.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Self {
            mean: histogram.mean() / 1e3,
            p50: us(histogram.value_at_quantile(0.50)),
            p95: us(histogram.value_at_quantile(0.95)),
            p99: us(histogram.value_at_quantile(0.99)),
            max: us(histogram.max()),
        }
    }

    /// From the batcher's quantiles (already in µs).
    pub fn from_stats(quantiles: &Quantiles) -> Self {
        Self {
            mean: quantiles.mean,
            p50: quantiles.p50,
            p95: quantiles.p95,
            p99: quantiles.p99,
            max: quantiles.max,
        }
    }
}

/// What the handler counted, read once the batcher has shut down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handled {
    /// Batches handled.
    pub batches: u64,
    /// Requests handled.
    pub items: u64,
    /// Largest batch handled.
    pub largest: u64,
}

impl Handled {
    /// Reads `probe`.
    pub fn of(probe: &Probe) -> Self {
        Self {
            batches: probe.batches.load(Ordering::Acquire),
            items: probe.items.load(Ordering::Acquire),
            largest: probe.largest.load(Ordering::Acquire),
        }
    }
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario it belongs to.
    pub scenario: Scenario,
    /// The handler's cost.
    pub cost: Cost,
    /// The load that ran.
    pub load: Load,
    /// The batch size limit.
    pub max_batch_size: usize,
    /// What the callers saw.
    pub run: Run,
    /// The batcher's KPIs after it shut down (so every batch is recorded).
    pub stats: BatchStats,
    /// What the handler saw.
    pub handled: Handled,
}

impl Row {
    /// Puts the three views of one case together.
    pub fn new(case: &Case, run: Run, stats: BatchStats, handled: Handled) -> Self {
        Self {
            scenario: case.scenario,
            cost: case.cost,
            load: case.load,
            max_batch_size: case.max_batch_size,
            run,
            stats,
            handled,
        }
    }

    /// Served requests per second of the load's wall time.
    pub fn throughput(&self) -> f64 {
        if self.run.seconds > 0.0 {
            self.run.tally.served as f64 / self.run.seconds
        } else {
            0.0
        }
    }

    /// Open loop: the arrival rate the pacer achieved, requests/s.
    pub fn arrival_rate(&self) -> Option<f64> {
        let over = self.run.issued_over?;
        (over > 0.0).then(|| self.run.tally.sent as f64 / over)
    }

    /// End-to-end latency per served request, measured by the callers.
    pub fn latency(&self) -> Latency {
        Latency::of(&self.run.tally.latency)
    }

    /// Admission to response per served request, measured by the batcher.
    pub fn batcher_latency(&self) -> Latency {
        Latency::from_stats(&self.stats.latency_us)
    }

    /// Lone request only: latency less handler time.
    pub fn overhead(&self) -> Option<Latency> {
        self.run.overhead.as_ref().map(Latency::of)
    }

    /// The largest batch any view saw.
    pub fn largest_batch(&self) -> u64 {
        // Batch sizes up to 2,047 are exact in the batcher's 3-figure histogram.
        self.handled.largest.max(self.stats.batch_size.max as u64)
    }

    /// Mean batch size over the limit (the batcher's fill ratio).
    pub fn fill_mean(&self) -> f64 {
        self.stats.batch_size.mean / self.max_batch_size as f64
    }

    /// Largest batch over the limit. Computed from the exact largest batch rather than read
    /// from `stats().fill_ratio.max`, which the batcher records in parts per 10,000 with 3
    /// significant figures: a full batch (10,000) lands in a bucket 8 wide and reads back as
    /// its highest equivalent value, 1.0007.
    pub fn fill_max(&self) -> f64 {
        self.largest_batch() as f64 / self.max_batch_size as f64
    }

    /// Requests refused for a full queue, as the callers and the batcher counted them.
    pub fn rejected(&self) -> u64 {
        self.run.tally.rejected.max(self.stats.rejected_queue_full)
    }

    /// Requests that timed out, as the callers and the batcher counted them.
    pub fn timed_out(&self) -> u64 {
        self.run.tally.timed_out.max(self.stats.timed_out)
    }

    /// Everything that makes this row's numbers void: a batch over its limit, a fill above
    /// 100 %, a request lost, answered twice or with someone else's answer, counts that do not
    /// add up between the callers, the batcher and the handler. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let tally = &self.run.tally;
        let stats = &self.stats;
        let limit = self.max_batch_size as u64;
        if self.largest_batch() > limit {
            problems.push(format!(
                "a batch of {} requests formed; the limit is {limit}",
                self.largest_batch()
            ));
        }
        if self.fill_max() > 1.0 {
            problems.push(format!(
                "fill ratio {:.0} % > 100 %",
                self.fill_max() * 100.0
            ));
        }
        if tally.unfinished > 0 {
            problems.push(format!(
                "{} requests never answered (lost)",
                tally.unfinished
            ));
        }
        if tally.misrouted > 0 {
            problems.push(format!(
                "{} requests got another request's answer",
                tally.misrouted
            ));
        }
        if tally.finished() + tally.unfinished != tally.sent {
            problems.push(format!(
                "callers sent {} requests but {} came back",
                tally.sent,
                tally.finished()
            ));
        }
        // No deadline is set and the handlers cannot fail: any such error is a lost request.
        if tally.timed_out + tally.failed > 0 {
            problems.push(format!(
                "{} requests timed out and {} failed with no deadline set and an infallible \
                 handler",
                tally.timed_out, tally.failed
            ));
        }
        if stats.served != tally.served {
            problems.push(format!(
                "the batcher counted {} served, the callers {}",
                stats.served, tally.served
            ));
        }
        let reached_handler = stats.served
            + stats.handler_errors
            + stats.handler_panics
            + stats.wrong_response_counts;
        if self.handled.items != reached_handler {
            problems.push(format!(
                "the handler got {} requests, the batcher sent it {reached_handler}",
                self.handled.items
            ));
        }
        if self.handled.batches != stats.batches {
            problems.push(format!(
                "the handler got {} batches, the batcher ran {}",
                self.handled.batches, stats.batches
            ));
        }
        let left = reached_handler + stats.timed_out + stats.cancelled + stats.queue_depth;
        if stats.admitted != left {
            problems.push(format!(
                "the batcher admitted {} requests but accounts for {left}",
                stats.admitted
            ));
        }
        if stats.rejected_queue_full != tally.rejected {
            problems.push(format!(
                "the batcher counted {} rejections, the callers {}",
                stats.rejected_queue_full, tally.rejected
            ));
        }
        problems
    }
}
