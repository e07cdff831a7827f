//! What a `bench` run measures and how hard: the workloads and the sizes of each.

use std::time::Duration;

/// Seed of the inputs unless `--seed` says otherwise.
pub const DEFAULT_SEED: u64 = 20_240_601;

/// A kind of measurement; each gets its own table. Also the values of `--workload`, whose
/// absence means all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Workload {
    /// Insert B timers, cancel all B.
    Churn,
    /// Insert B timers, step time until all fired.
    Expire,
    /// Reset timers among many live ones.
    Reset,
    /// Heap bytes per live timer.
    Memory,
    /// Timer service: arm + cancel a sleep from tasks on 1 and 2 worker threads.
    Service,
    /// Timer service: per-packet idle-timeout re-arm of many connections.
    Rearm,
    /// Timer service: how late timers fire on the real clock.
    Lateness,
    /// Timer service: process CPU while many far-away timers wait.
    Idle,
    /// Layers: the unified deadline of four timeout layers.
    Unified,
    /// Layers: timer work per packet (send, ack, receive) of reliable connections.
    PerPacket,
    /// The wheel's batch paths (scalar, SIMD, parallel, adaptive) side by side; not part of
    /// the default run (`ticktock bench batch`).
    Batch,
}

impl Workload {
    /// The timing wheel's workloads (ticktock-wheel against its peers), in report order.
    pub const WHEEL: [Self; 4] = [Self::Churn, Self::Expire, Self::Reset, Self::Memory];

    /// The timer service's workloads (ticktock against tokio's timer), in report order.
    pub const SERVICE: [Self; 4] = [Self::Service, Self::Rearm, Self::Lateness, Self::Idle];

    /// The layered-timeout workloads, in report order.
    pub const LAYERS: [Self; 2] = [Self::Unified, Self::PerPacket];

    /// Every workload, in report order.
    pub const ALL: [Self; 10] = [
        Self::Churn,
        Self::Expire,
        Self::Reset,
        Self::Memory,
        Self::Service,
        Self::Rearm,
        Self::Lateness,
        Self::Idle,
        Self::Unified,
        Self::PerPacket,
    ];

    /// Name in the report and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::Expire => "expire",
            Self::Reset => "reset",
            Self::Memory => "memory",
            Self::Service => "service",
            Self::Rearm => "rearm",
            Self::Lateness => "lateness",
            Self::Idle => "idle",
            Self::Unified => "unified",
            Self::PerPacket => "per-packet",
            Self::Batch => "batch",
        }
    }

    /// Unit of the measured values.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Churn | Self::Expire | Self::Batch => "ns/timer",
            Self::Reset => "ns/reset",
            Self::Memory => "bytes/timer",
            Self::Service => "ns/op",
            Self::Rearm => "ns/re-arm",
            Self::Lateness => "µs late",
            Self::Idle => "% CPU",
            Self::Unified => "ns/query",
            Self::PerPacket => "ns/packet",
        }
    }

    /// Whether this workload reads tokio's clock while it is timed (the timer service's and
    /// the layers' workloads), so it must run before any wheel workload pauses a tokio clock.
    pub fn reads_tokio_clock(self) -> bool {
        Self::SERVICE.contains(&self) || Self::LAYERS.contains(&self)
    }

    /// Decimals the markdown tables print values with.
    pub fn decimals(self) -> usize {
        match self {
            Self::Idle => 3,
            _ => 1,
        }
    }
}

/// What a run measures and how hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seed of every input.
    pub seed: u64,
    /// Timed samples per cell.
    pub samples: usize,
    /// Workloads to run, in order.
    pub workloads: Vec<Workload>,
    /// Churn batch sizes B.
    pub churn_sizes: Vec<usize>,
    /// Churn: timers (insert + cancel) per sample, split into rounds of B.
    pub churn_timers_per_sample: usize,
    /// Expire batch sizes B.
    pub expire_sizes: Vec<usize>,
    /// Expire: timers per sample, split into rounds of B (at least one round).
    pub expire_timers_per_sample: usize,
    /// Reset: live timers.
    pub reset_live: usize,
    /// Reset: resets per sample.
    pub resets_per_sample: usize,
    /// Memory: live timers.
    pub memory_timers: usize,
    /// Service: worker-thread counts, one row each.
    pub service_threads: Vec<usize>,
    /// Service: arm + cancel operations per worker thread per sample.
    pub service_ops_per_thread: usize,
    /// Rearm: connections, each with one idle timeout.
    pub rearm_connections: usize,
    /// Rearm: re-arms (packets) per sample.
    pub rearms_per_sample: usize,
    /// Lateness: live timers.
    pub lateness_timers: usize,
    /// Lateness: deadlines are spread uniformly over this span.
    pub lateness_span: Duration,
    /// Lateness: time between the start of setup and the start of the span, in which every
    /// timer is created and registered.
    pub lateness_lead: Duration,
    /// Lateness: tasks the timers are spread over.
    pub lateness_tasks: usize,
    /// Idle: pending timers (an hour away).
    pub idle_timers: usize,
    /// Idle: wall time over which CPU use is measured.
    pub idle_wall: Duration,
    /// Unified: deadline queries per sample.
    pub unified_queries: usize,
    /// Per-packet: connections.
    pub per_packet_connections: usize,
    /// Per-packet: packets per sample.
    pub per_packet_packets: usize,
    /// Batch paths: batch sizes B.
    pub batch_sizes: Vec<usize>,
    /// Batch paths: timers per sample, split into rounds of B (at least one round).
    pub batch_timers_per_sample: usize,
}

impl Config {
    /// The full run: 7 samples, every size.
    pub fn full(seed: u64) -> Self {
        Self {
            seed,
            samples: 7,
            workloads: Workload::ALL.to_vec(),
            churn_sizes: vec![32, 128, 256, 1024, 2048, 4096, 8192],
            churn_timers_per_sample: 1 << 20,
            expire_sizes: vec![1024, 65_536],
            expire_timers_per_sample: 1 << 18,
            reset_live: 100_000,
            resets_per_sample: 10_000_000,
            memory_timers: 1_000_000,
            service_threads: vec![1, 2],
            service_ops_per_thread: 1_000_000,
            rearm_connections: 100_000,
            rearms_per_sample: 10_000_000,
            lateness_timers: 1_000_000,
            lateness_span: Duration::from_secs(10),
            lateness_lead: Duration::from_secs(1),
            lateness_tasks: 1000,
            idle_timers: 1_000_000,
            idle_wall: Duration::from_secs(5),
            unified_queries: 10_000_000,
            per_packet_connections: 100_000,
            per_packet_packets: 5_000_000,
            batch_sizes: vec![32, 256, 1024, 8192, 65_536, 1_000_000],
            batch_timers_per_sample: 1 << 20,
        }
    }

    /// The CI run: same cells, 3 samples and smaller repetition counts (and, for the timer
    /// service, fewer timers and shorter real-time spans).
    pub fn quick(seed: u64) -> Self {
        Self {
            samples: 3,
            churn_timers_per_sample: 1 << 17,
            expire_timers_per_sample: 1 << 16,
            resets_per_sample: 1_000_000,
            service_ops_per_thread: 100_000,
            rearm_connections: 10_000,
            rearms_per_sample: 1_000_000,
            lateness_timers: 100_000,
            lateness_span: Duration::from_secs(2),
            lateness_lead: Duration::from_millis(500),
            idle_timers: 100_000,
            idle_wall: Duration::from_secs(1),
            unified_queries: 1_000_000,
            per_packet_connections: 10_000,
            per_packet_packets: 500_000,
            batch_sizes: vec![32, 1024, 8192, 65_536],
            batch_timers_per_sample: 1 << 17,
            ..Self::full(seed)
        }
    }

    /// A run of a few milliseconds, for tests: one sample of tiny sizes.
    #[cfg(test)]
    pub fn tiny(seed: u64) -> Self {
        Self {
            seed,
            samples: 1,
            workloads: Workload::ALL.to_vec(),
            churn_sizes: vec![32],
            churn_timers_per_sample: 64,
            expire_sizes: vec![32],
            expire_timers_per_sample: 32,
            reset_live: 100,
            resets_per_sample: 1000,
            memory_timers: 1000,
            service_threads: vec![1, 2],
            service_ops_per_thread: 1000,
            rearm_connections: 100,
            rearms_per_sample: 1000,
            lateness_timers: 500,
            lateness_span: Duration::from_millis(50),
            lateness_lead: Duration::from_millis(30),
            lateness_tasks: 10,
            idle_timers: 1000,
            idle_wall: Duration::from_millis(50),
            unified_queries: 1000,
            per_packet_connections: 100,
            per_packet_packets: 1000,
            batch_sizes: vec![32],
            batch_timers_per_sample: 64,
        }
    }
}
