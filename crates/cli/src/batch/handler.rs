//! The batch handlers the load runs against, and the [`Probe`] that watches every batch they
//! get.
//!
//! Every handler echoes its requests (`Ok(batch)`), so a caller can tell its own answer from
//! someone else's. What differs is the work a batch costs:
//!
//! - [`Cost::NoOp`]: nothing; the batcher's own overhead is all there is to measure.
//! - [`Cost::Fixed`]: a busy-spin of a fixed time per batch (the lone-request scenario).
//! - [`Cost::Growing`]: a busy-spin of a base time plus a time per item, the shape of real
//!   batched work (a model forward pass, a database round trip with a large IN list).
//!
//! The costs are busy-spins, not `sleep`s: tokio's timer has 1 ms ticks, so a 50 µs sleep
//! would take a millisecond or more, and a spin also keeps the worker thread busy the way
//! CPU-bound batch work does (one of the two workers, here).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ticktock_batch::{Batcher, BuildError};

/// The batcher every scenario drives: `u64` requests echoed back.
pub type EchoBatcher = Batcher<u64, u64, Infallible>;

/// The lone-request handler's fixed cost per batch.
pub const FIXED_COST: Duration = Duration::from_micros(50);

/// The growing handler's cost per batch.
pub const GROWING_BASE: Duration = Duration::from_micros(20);

/// The growing handler's extra cost per item in the batch.
pub const GROWING_PER_ITEM: Duration = Duration::from_micros(2);

/// What one batch costs the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Echo at once.
    NoOp,
    /// Busy-spin this long per batch.
    Fixed(Duration),
    /// Busy-spin [`GROWING_BASE`] + [`GROWING_PER_ITEM`] × batch size.
    Growing,
}

impl Cost {
    /// Name in the report.
    pub fn name(self) -> String {
        match self {
            Self::NoOp => "no-op".to_owned(),
            Self::Fixed(cost) => format!("{} µs spin", cost.as_micros()),
            Self::Growing => format!(
                "{} µs + {} µs/item spin",
                GROWING_BASE.as_micros(),
                GROWING_PER_ITEM.as_micros()
            ),
        }
    }

    /// How long a batch of `items` takes.
    fn of(self, items: usize) -> Duration {
        match self {
            Self::NoOp => Duration::ZERO,
            Self::Fixed(cost) => cost,
            Self::Growing => {
                GROWING_BASE + GROWING_PER_ITEM * u32::try_from(items).unwrap_or(u32::MAX)
            }
        }
    }
}

/// Busy-waits for `time` (returns at once for zero).
fn spin(time: Duration) {
    if time.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// What the handler saw, counted by the handler itself (independent of the batcher's stats).
#[derive(Debug, Default)]
pub struct Probe {
    /// Batches handled.
    pub batches: AtomicU64,
    /// Requests handled, over all batches.
    pub items: AtomicU64,
    /// The largest batch handled.
    pub largest: AtomicU64,
    /// Handler time of the latest batch, in ns (exact for one request at a time).
    pub last_handler_ns: AtomicU64,
}

impl Probe {
    fn record(&self, items: usize, handler: Duration) {
        let items = items as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        self.largest.fetch_max(items, Ordering::Relaxed);
        let nanos = u64::try_from(handler.as_nanos()).unwrap_or(u64::MAX);
        self.last_handler_ns.store(nanos, Ordering::Release);
    }
}

/// Starts a batcher of at most `max_batch_size` requests per batch, with every other setting
/// at its default (queue bound 8,192, one batch at a time, no `max_wait`, no deadline, the
/// global timer service), whose handler costs `cost`; and the probe that watches the handler.
///
/// # Errors
/// [`BuildError`] outside a tokio runtime or for a limit of 0.
pub fn start(cost: Cost, max_batch_size: usize) -> Result<(EchoBatcher, Arc<Probe>), BuildError> {
    let probe = Arc::new(Probe::default());
    let watch = Arc::clone(&probe);
    let batcher = Batcher::builder()
        .name("ticktock-cli-batch")
        .max_batch_size(max_batch_size)
        .build(move |batch: Vec<u64>| {
            let probe = Arc::clone(&watch);
            async move {
                let start = Instant::now();
                spin(cost.of(batch.len()));
                probe.record(batch.len(), start.elapsed());
                Ok::<_, Infallible>(batch)
            }
        })?;
    Ok((batcher, probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_grow_as_documented() {
        assert_eq!(Cost::NoOp.of(32), Duration::ZERO);
        assert_eq!(Cost::Fixed(FIXED_COST).of(7), FIXED_COST);
        assert_eq!(Cost::Growing.of(1), Duration::from_micros(22));
        assert_eq!(Cost::Growing.of(32), Duration::from_micros(84));
        assert_eq!(Cost::Growing.name(), "20 µs + 2 µs/item spin");
    }
}
