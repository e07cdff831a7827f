//! What a `bench` run measures and how hard: the workloads and the sizes of each.

/// Seed of the inputs unless `--seed` says otherwise.
pub const DEFAULT_SEED: u64 = 20_240_601;

/// A kind of measurement; each gets its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// Insert B timers, cancel all B.
    Churn,
    /// Insert B timers, step time until all fired.
    Expire,
    /// Reset timers among many live ones.
    Reset,
    /// Heap bytes per live timer.
    Memory,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Self; 4] = [Self::Churn, Self::Expire, Self::Reset, Self::Memory];

    /// Name in the report and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::Expire => "expire",
            Self::Reset => "reset",
            Self::Memory => "memory",
        }
    }

    /// Unit of the measured values.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Churn | Self::Expire => "ns/timer",
            Self::Reset => "ns/reset",
            Self::Memory => "bytes/timer",
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
        }
    }

    /// The CI run: same cells, 3 samples and smaller repetition counts.
    pub fn quick(seed: u64) -> Self {
        Self {
            samples: 3,
            churn_timers_per_sample: 1 << 17,
            expire_timers_per_sample: 1 << 16,
            resets_per_sample: 1_000_000,
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
        }
    }
}
