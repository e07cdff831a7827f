//! The run's counters: sharded per thread so the two workers never contend on a counter
//! (which would tax both backends alike and blur the comparison), summed when read.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::results::{Lateness, OpCounts};

const SHARDS: usize = 8;

/// One thread's counters, on their own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    ops: [AtomicU64; 5],
    packets: AtomicU64,
    opened: AtomicU64,
    early: AtomicU64,
    live_timers: AtomicI64,
}

/// Which counter an event bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A timer set where none was.
    Armed,
    /// A timer moved later.
    Postponed,
    /// A timer moved earlier.
    Advanced,
    /// A timer stopped before it fired.
    Cancelled,
    /// A timer fired.
    Fired,
}

/// Which lateness histogram a fire goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Handshake, path validation and RTO: exact on both backends.
    Exact,
    /// Idle and keep-alive: coarse on ticktock unless `--exact-timers`.
    IdleKeepAlive,
}

/// Every counter of a run.
#[derive(Debug)]
pub struct Counters {
    shards: [Shard; SHARDS],
    lateness: [Mutex<Histogram<u64>>; 2],
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl Counters {
    /// All at zero.
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard::default()),
            lateness: std::array::from_fn(|_| {
                Mutex::new(
                    Histogram::new_with_bounds(1, 3_600_000_000, 3)
                        .expect("1 µs to 1 h at 3 significant figures is a valid histogram"),
                )
            }),
        }
    }

    fn shard(&self) -> &Shard {
        let index = SHARD.with(|shard| {
            if shard.get() == usize::MAX {
                shard.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        });
        &self.shards[index]
    }

    /// Counts one timer operation.
    pub fn op(&self, op: Op) {
        self.shard().ops[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a packet.
    pub fn packet(&self) {
        self.shard().packets.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection opened.
    pub fn opened(&self) {
        self.shard().opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a timeout reported before its deadline.
    pub fn early(&self) {
        self.shard().early.fetch_add(1, Ordering::Relaxed);
    }

    /// Timers set went up (or down) by `delta`.
    pub fn live(&self, delta: i64) {
        self.shard().live_timers.fetch_add(delta, Ordering::Relaxed);
    }

    /// Records a fire of a `class` timer `late` after its deadline.
    pub fn lateness(&self, class: Class, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX).max(1);
        self.lateness[class as usize]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .saturating_record(micros);
    }

    fn sum(&self, field: impl Fn(&Shard) -> u64) -> u64 {
        self.shards.iter().map(field).sum()
    }

    /// Operations by kind so far.
    pub fn ops(&self) -> OpCounts {
        let op = |op: Op| self.sum(|shard| shard.ops[op as usize].load(Ordering::Relaxed));
        OpCounts {
            armed: op(Op::Armed),
            postponed: op(Op::Postponed),
            advanced: op(Op::Advanced),
            cancelled: op(Op::Cancelled),
            fired: op(Op::Fired),
        }
    }

    /// Packets so far.
    pub fn packets(&self) -> u64 {
        self.sum(|shard| shard.packets.load(Ordering::Relaxed))
    }

    /// Connections opened so far.
    pub fn opened_total(&self) -> u64 {
        self.sum(|shard| shard.opened.load(Ordering::Relaxed))
    }

    /// Timers set right now.
    pub fn live_timers(&self) -> u64 {
        let live: i64 = self
            .shards
            .iter()
            .map(|shard| shard.live_timers.load(Ordering::Relaxed))
            .sum();
        live.max(0) as u64
    }

    /// Lateness of `class` timers so far, and the histogram's doubling buckets (early fires
    /// of every class are in each summary's `early`).
    pub fn lateness_summary(&self, class: Class) -> (Lateness, Vec<(f64, u64)>) {
        let histogram = self.lateness[class as usize]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let early = self.sum(|shard| shard.early.load(Ordering::Relaxed));
        if histogram.is_empty() {
            return (
                Lateness {
                    early,
                    ..Lateness::default()
                },
                Vec::new(),
            );
        }
        let lateness = Lateness {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5) as f64,
            p99_us: histogram.value_at_quantile(0.99) as f64,
            max_us: histogram.max() as f64,
            early,
        };
        let buckets = histogram
            .iter_log(1, 2.0)
            .map(|step| {
                (
                    step.value_iterated_to() as f64,
                    step.count_since_last_iteration(),
                )
            })
            .collect();
        (lateness, buckets)
    }
}
