//! The batcher's KPIs: counters and histograms, a [`BatchStats`] snapshot, and the same figures
//! through the `metrics` facade.
//!
//! Counters are atomics bumped where things happen. Histograms are recorded once per batch,
//! under one short lock, so the per-request cost stays a few additions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Why a request left without a response from the handler, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Served,
    QueueFull,
    TooHeavy,
    Shutdown,
    TimedOut,
    Cancelled,
    HandlerError,
    HandlerPanicked,
    WrongResponseCount,
}

impl Outcome {
    const ALL: [Self; 9] = [
        Self::Served,
        Self::QueueFull,
        Self::TooHeavy,
        Self::Shutdown,
        Self::TimedOut,
        Self::Cancelled,
        Self::HandlerError,
        Self::HandlerPanicked,
        Self::WrongResponseCount,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::QueueFull => "queue_full",
            Self::TooHeavy => "too_heavy",
            Self::Shutdown => "shutdown",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::HandlerError => "handler_error",
            Self::HandlerPanicked => "handler_panicked",
            Self::WrongResponseCount => "wrong_response_count",
        }
    }
}

/// Quantiles of a distribution.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantiles {
    /// Values recorded.
    pub count: u64,
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

impl Quantiles {
    /// The same quantiles, none above `limit` (a histogram reports the top of a value's
    /// bucket, which can lie just past the largest value recorded).
    fn at_most(self, limit: f64) -> Self {
        Self {
            count: self.count,
            mean: self.mean.min(limit),
            p50: self.p50.min(limit),
            p95: self.p95.min(limit),
            p99: self.p99.min(limit),
            max: self.max.min(limit),
        }
    }

    fn of(histogram: &Histogram<u64>, scale: f64) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let at = |q| histogram.value_at_quantile(q) as f64 / scale;
        Self {
            count: histogram.len(),
            mean: histogram.mean() / scale,
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: histogram.max() as f64 / scale,
        }
    }
}

/// A snapshot of a batcher's KPIs (see [`Batcher::stats`](crate::Batcher::stats)).
///
/// A batch's figures are recorded just after its callers are answered, so a snapshot taken the
/// moment a call returns may miss that last batch; after
/// [`shutdown`](crate::Batcher::shutdown) they are complete. Latency and queue wait count from
/// admission (after a `call` got queue space).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    /// Requests admitted to the queue.
    pub admitted: u64,
    /// Requests answered by the handler.
    pub served: u64,
    /// Requests refused because the queue was full (`try_call`).
    pub rejected_queue_full: u64,
    /// Requests refused because they weigh more than a batch may.
    pub rejected_too_heavy: u64,
    /// Requests refused because the batcher was shutting down.
    pub rejected_shutdown: u64,
    /// Requests whose deadline passed before their batch started.
    pub timed_out: u64,
    /// Requests whose caller stopped waiting before their batch started.
    pub cancelled: u64,
    /// Requests failed by a handler error.
    pub handler_errors: u64,
    /// Requests failed by a handler panic.
    pub handler_panics: u64,
    /// Requests failed because the handler returned the wrong number of responses.
    pub wrong_response_counts: u64,
    /// Batches run.
    pub batches: u64,
    /// Requests waiting now.
    pub queue_depth: u64,
    /// The queue bound.
    pub queue_capacity: u64,
    /// Largest queue depth seen.
    pub queue_depth_max: u64,
    /// Batches running now.
    pub running_batches: u64,
    /// Time from admission to response, in µs, per request served.
    pub latency_us: Quantiles,
    /// Time from admission to the start of the batch, in µs, per request served.
    pub queue_wait_us: Quantiles,
    /// Handler time, in µs, per batch.
    pub handler_us: Quantiles,
    /// Requests per batch.
    pub batch_size: Quantiles,
    /// Batch size over the item limit, per batch (never above 1).
    pub fill_ratio: Quantiles,
    /// Time since the batcher was built.
    pub uptime: Duration,
}

impl BatchStats {
    /// Requests served per second since the batcher was built (for one phase of a run,
    /// difference two snapshots instead).
    #[must_use]
    pub fn throughput(&self) -> f64 {
        let seconds = self.uptime.as_secs_f64();
        if seconds > 0.0 {
            self.served as f64 / seconds
        } else {
            0.0
        }
    }

    /// Requests refused at admission, for any reason, over requests offered.
    #[must_use]
    pub fn rejection_rate(&self) -> f64 {
        let rejected = self.rejected_queue_full + self.rejected_too_heavy + self.rejected_shutdown;
        let offered = self.admitted + rejected;
        if offered == 0 {
            0.0
        } else {
            rejected as f64 / offered as f64
        }
    }
}

struct Histograms {
    latency: Histogram<u64>,
    queue_wait: Histogram<u64>,
    handler: Histogram<u64>,
    batch_size: Histogram<u64>,
    /// Fill ratio in parts per 1,000 (recorded exactly: three significant figures).
    fill: Histogram<u64>,
}

/// Values from 1 to an hour in nanoseconds (batch sizes and fill ratios fit too), 3
/// significant figures; larger values are recorded as the largest.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .expect("1 ns to 1 h at 3 significant figures is a valid histogram")
}

/// The live counters and histograms of one batcher.
pub(crate) struct Recorder {
    name: &'static str,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    batches: AtomicU64,
    depth: AtomicU64,
    depth_max: AtomicU64,
    running: AtomicU64,
    histograms: Mutex<Histograms>,
}

/// One batch's timings, recorded together.
pub(crate) struct BatchRecord<'a> {
    pub(crate) size: usize,
    pub(crate) max_items: usize,
    pub(crate) handler: Duration,
    /// Per request served: (queue wait, latency).
    pub(crate) requests: &'a [(Duration, Duration)],
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Recorder {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            batches: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            depth_max: AtomicU64::new(0),
            running: AtomicU64::new(0),
            histograms: Mutex::new(Histograms {
                latency: histogram(),
                queue_wait: histogram(),
                handler: histogram(),
                batch_size: histogram(),
                fill: histogram(),
            }),
        }
    }

    pub(crate) fn outcome(&self, outcome: Outcome, count: u64) {
        if count == 0 {
            return;
        }
        self.outcomes[outcome as usize].fetch_add(count, Ordering::Relaxed);
        metrics::counter!("ticktock_batch_requests_total", "batcher" => self.name, "outcome" => outcome.label())
            .increment(count);
    }

    /// The queue now holds `depth` requests.
    pub(crate) fn depth(&self, depth: usize) {
        let depth = depth as u64;
        self.depth.store(depth, Ordering::Relaxed);
        self.depth_max.fetch_max(depth, Ordering::Relaxed);
    }

    pub(crate) fn batch_started(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch_finished(&self, record: &BatchRecord<'_>) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        let fill = record.size as f64 / record.max_items.max(1) as f64;
        {
            let mut histograms = self
                .histograms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            histograms.handler.saturating_record(nanos(record.handler));
            histograms.batch_size.saturating_record(record.size as u64);
            histograms
                .fill
                .saturating_record((fill * 1_000.0).round() as u64);
            for &(wait, latency) in record.requests {
                histograms.queue_wait.saturating_record(nanos(wait));
                histograms.latency.saturating_record(nanos(latency));
            }
        }
        let labels = [("batcher", self.name)];
        metrics::histogram!("ticktock_batch_handler_seconds", &labels)
            .record(record.handler.as_secs_f64());
        metrics::histogram!("ticktock_batch_size", &labels).record(record.size as f64);
        metrics::histogram!("ticktock_batch_fill_ratio", &labels).record(fill);
        let latency = metrics::histogram!("ticktock_batch_latency_seconds", &labels);
        let wait = metrics::histogram!("ticktock_batch_queue_wait_seconds", &labels);
        for &(queue_wait, total) in record.requests {
            wait.record(queue_wait.as_secs_f64());
            latency.record(total.as_secs_f64());
        }
        metrics::gauge!("ticktock_batch_queue_depth", &labels)
            .set(self.depth.load(Ordering::Relaxed) as f64);
    }

    pub(crate) fn snapshot(
        &self,
        capacity: usize,
        max_items: usize,
        uptime: Duration,
    ) -> BatchStats {
        let count = |outcome: Outcome| self.outcomes[outcome as usize].load(Ordering::Relaxed);
        let histograms = self
            .histograms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        BatchStats {
            // Counted under the batcher's state lock; filled in by `Batcher::stats`.
            admitted: 0,
            served: count(Outcome::Served),
            rejected_queue_full: count(Outcome::QueueFull),
            rejected_too_heavy: count(Outcome::TooHeavy),
            rejected_shutdown: count(Outcome::Shutdown),
            timed_out: count(Outcome::TimedOut),
            cancelled: count(Outcome::Cancelled),
            handler_errors: count(Outcome::HandlerError),
            handler_panics: count(Outcome::HandlerPanicked),
            wrong_response_counts: count(Outcome::WrongResponseCount),
            batches: self.batches.load(Ordering::Relaxed),
            queue_depth: self.depth.load(Ordering::Relaxed),
            queue_capacity: capacity as u64,
            queue_depth_max: self.depth_max.load(Ordering::Relaxed),
            running_batches: self.running.load(Ordering::Relaxed),
            latency_us: Quantiles::of(&histograms.latency, 1e3),
            queue_wait_us: Quantiles::of(&histograms.queue_wait, 1e3),
            handler_us: Quantiles::of(&histograms.handler, 1e3),
            batch_size: Quantiles::of(&histograms.batch_size, 1.0).at_most(max_items as f64),
            fill_ratio: Quantiles::of(&histograms.fill, 1e3).at_most(1.0),
            uptime,
        }
    }
}
