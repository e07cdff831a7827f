//! What a simulation run measured: one [`SimResult`] per backend.

use serde::Serialize;

/// Which timers carry the connections' timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Endpoint tasks (one per worker) that drive their connections from a table, with every
    /// connection's earliest deadline in an `EndpointTimers` (one service registration per
    /// endpoint task): the design ticktock is for.
    Ticktock,
    /// A task per connection with its layers in a `LayeredTimeouts` (one service registration
    /// per connection): ticktock in tokio's shape, for comparison.
    TicktockTasks,
    /// tokio's own timer: one `Sleep` per timer kind per connection, reset when its deadline
    /// moves (as quinn re-arms its timers).
    Tokio,
}

impl Backend {
    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ticktock => "ticktock",
            Self::TicktockTasks => "ticktock-tasks",
            Self::Tokio => "tokio",
        }
    }
}

/// Timer operations the protocol logic asked for, by kind (the same traffic asks for the same
/// operations on either backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// A timer set where none was.
    pub armed: u64,
    /// A timer moved later (the idle and keep-alive timers on every packet).
    pub postponed: u64,
    /// A timer moved earlier.
    pub advanced: u64,
    /// A timer stopped before it fired (the RTO when everything is acked).
    pub cancelled: u64,
    /// A timer that fired.
    pub fired: u64,
}

impl OpCounts {
    /// All operations.
    pub fn total(&self) -> u64 {
        self.armed + self.postponed + self.advanced + self.cancelled + self.fired
    }
}

/// The ticktock wheels' own work: the service's over the measured part of a run, and for the
/// endpoint backend the endpoint tables' over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WheelWork {
    /// Timers the wheels moved down a level without firing them.
    pub cascades: u64,
    /// Registrations the driver found postponed when they came up and filed again without
    /// waking their connection.
    pub connection_rearms: u64,
    /// Entries the wheels fired (processed).
    pub processed: u64,
    /// Times the driver woke up.
    pub driver_wakeups: u64,
}

/// Quantiles of fire lateness, in µs (deadline to the connection handling the timeout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Lateness {
    /// Fires measured.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Fires observed before their deadline (must be 0).
    pub early: u64,
}

/// One point of the time series taken while the run lasts (about every 250 ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the run.
    pub t_s: f64,
    /// Timer operations per second over the last interval.
    pub ops_per_sec: f64,
    /// Timers set at that moment, over all connections and kinds.
    pub live_timers: u64,
    /// Fires so far.
    pub fired: u64,
    /// Connections open at that moment.
    pub connections: u64,
}

/// Everything one backend's run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimResult {
    /// The backend.
    pub backend: Option<Backend>,
    /// Connections open at the start (the traffic model keeps about this many).
    pub connections: u64,
    /// Connections opened over the run (arrivals included).
    pub connections_opened: u64,
    /// Packets the traffic generator delivered.
    pub packets_offered: u64,
    /// Packets the connections processed (fewer than offered when a connection fell behind:
    /// wake-ups for one connection coalesce).
    pub packets: u64,
    /// Wall time of the measured part, in seconds.
    pub wall_s: f64,
    /// Timer operations by kind.
    pub ops: OpCounts,
    /// Timer operations per second of wall time.
    pub ops_per_sec: f64,
    /// Whether ticktock met idle and keep-alive deadlines coarsely (`"coarse"`) or exactly.
    pub idle_precision: &'static str,
    /// Fire lateness of the exact timers (handshake, path validation, RTO); `early` counts
    /// early fires of every kind.
    pub lateness: Lateness,
    /// Fire lateness of the idle and keep-alive timers (coarse on ticktock by default: up to an
    /// eighth of the timeout late by design); `early` counts early fires of every kind.
    pub idle_lateness: Lateness,
    /// The timer service's own work (ticktock only; tokio's timer does not say).
    pub wheel: Option<WheelWork>,
    /// Lateness histogram of the exact timers: (upper bound in µs, fires in that bucket), buckets doubling.
    pub lateness_buckets: Vec<(f64, u64)>,
    /// Process CPU time (user + system) over the measured part, in seconds.
    pub cpu_s: f64,
    /// CPU nanoseconds per timer operation.
    pub cpu_ns_per_op: f64,
    /// CPU time of the paced run's traffic generator thread over the measured part, in
    /// seconds (0 where per-thread times are unavailable; `None` in a saturated run, where the
    /// endpoints draw their own packets).
    pub generator_cpu_s: Option<f64>,
    /// CPU nanoseconds per timer operation without the paced run's traffic generator thread:
    /// the endpoint's own cost (`None` in a saturated run).
    pub endpoint_cpu_ns_per_op: Option<f64>,
    /// Peak resident memory of the process, in bytes (VmHWM; 0 where unavailable).
    pub peak_rss_bytes: u64,
    /// Memory of the timer state per connection, in bytes: heap (counted by the allocator) and
    /// inline size of the backend's per-connection timer objects.
    pub timer_bytes_per_connection: f64,
    /// Time series.
    pub samples: Vec<Sample>,
}
