//! What the service counts, and how it reports it.
//!
//! Counters are relaxed atomics bumped where the event happens; the lateness histogram is fed
//! by the driver alone, in batches. [`TimerStats`] is a snapshot (the seed's `TimerTaskStats`
//! plus lateness). Taking a snapshot ([`TimerHandle::stats`](crate::TimerHandle::stats)) also
//! publishes its figures to the `metrics` facade, and the driver records every fire's lateness
//! there as it goes, so an installed recorder (a Prometheus exporter, say) sees them; call
//! `stats()` periodically to keep the gauges fresh.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use ticktock_wheel::{LEVELS, WheelStats};

/// Lifetime counters of one service that are not per shard (those are in
/// [`ShardCounts`](crate::shard::ShardCounts)): the driver's, written by it alone, and the
/// connection count.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fired: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) connection_rearms: AtomicU64,
    pub(crate) driver_wakeups: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Fire lateness (fire time minus deadline), in microseconds, up to one hour.
#[derive(Debug)]
pub(crate) struct Lateness {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for Lateness {
    fn default() -> Self {
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        Self {
            histogram: Mutex::new(histogram),
        }
    }
}

impl Lateness {
    pub(crate) fn record_all(&self, samples: &[Duration]) {
        if samples.is_empty() {
            return;
        }
        let mut histogram = self
            .histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for sample in samples {
            let micros = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
            metrics::histogram!("ticktock_fire_lateness_seconds").record(sample.as_secs_f64());
        }
    }

    pub(crate) fn snapshot(&self) -> LatenessStats {
        let histogram = self
            .histogram
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
        LatenessStats {
            samples: histogram.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: Duration::from_micros(histogram.max()),
        }
    }
}

/// Fire lateness: how long after its deadline each timer was handed to its waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatenessStats {
    /// Timers measured.
    pub samples: u64,
    /// Median lateness (1 µs buckets; 0 to 1 µs shows as 1 µs).
    pub p50: Duration,
    /// 99th percentile lateness.
    pub p99: Duration,
    /// Largest lateness seen.
    pub max: Duration,
}

/// A snapshot of a service's statistics: the seed's `TimerTaskStats` plus fire lateness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerStats {
    /// Timers live now, over all shards.
    pub total_timers: u64,
    /// `ConnectionTimers` alive now.
    pub active_connections: u64,
    /// Timers armed since the service started.
    pub armed: u64,
    /// Timers fired (processed) since the service started.
    pub processed: u64,
    /// Timers cancelled since the service started.
    pub cancelled: u64,
    /// Timers moved to a new deadline since the service started.
    pub reset: u64,
    /// Times a connection's entry came up before the connection's (since postponed) earliest
    /// deadline and was filed again without waking it.
    pub connection_rearms: u64,
    /// Times the driver woke up.
    pub driver_wakeups: u64,
    /// Non-empty slots per wheel level, summed over shards.
    pub occupied_slots_per_level: [u32; LEVELS],
    /// Timers moved down a level without firing, summed over shards.
    pub cascades: u64,
    /// Heap bytes held by the wheels.
    pub wheel_bytes: u64,
    /// Fire lateness.
    pub lateness: LatenessStats,
}

impl TimerStats {
    pub(crate) fn add_wheel(&mut self, wheel: &WheelStats) {
        self.total_timers += wheel.live as u64;
        for (sum, level) in self
            .occupied_slots_per_level
            .iter_mut()
            .zip(wheel.occupied_slots_per_level)
        {
            *sum += level;
        }
        self.cascades += wheel.cascades;
        self.wheel_bytes += wheel.heap_bytes as u64;
    }

    /// Sends the snapshot to the `metrics` facade.
    pub(crate) fn export(&self) {
        metrics::gauge!("ticktock_timers_active").set(self.total_timers as f64);
        metrics::gauge!("ticktock_connections_active").set(self.active_connections as f64);
        metrics::counter!("ticktock_timers_armed_total").absolute(self.armed);
        metrics::counter!("ticktock_timers_fired_total").absolute(self.processed);
        metrics::counter!("ticktock_timers_cancelled_total").absolute(self.cancelled);
        metrics::counter!("ticktock_timers_reset_total").absolute(self.reset);
        metrics::counter!("ticktock_driver_wakeups_total").absolute(self.driver_wakeups);
        metrics::counter!("ticktock_connection_rearms_total").absolute(self.connection_rearms);
        metrics::counter!("ticktock_wheel_cascades_total").absolute(self.cascades);
        metrics::gauge!("ticktock_wheel_bytes").set(self.wheel_bytes as f64);
    }
}
