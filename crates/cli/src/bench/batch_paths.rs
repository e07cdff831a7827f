//! `ticktock bench batch`: the wheel's batch paths (scalar, SIMD, parallel, adaptive) side by
//! side on the same inputs.
//!
//! Every path runs on its own [`ShardedWheel`] of the same shape (as many shards as the machine
//! has threads, at least 2), so the columns differ only in how a batch call runs, not in the
//! structure underneath. Three operations per batch size B:
//!
//! - **churn**: `insert_many` of B timers 1 ms–10 s ahead, then `cancel_many` of their B keys;
//! - **expire**: `insert_many` of B timers 1–1000 ms ahead, then a `poll` per 1 ms step until
//!   all fired (the main bench's expire, through the batch API);
//! - **drain**: `insert_many` of B timers 1–1000 ms ahead, then one `poll` at the last deadline,
//!   which fires all B at once (a driver that wakes late, or a coarse tick).
//!
//! As in the rest of `bench`, the four paths' samples are interleaved (the path going first
//! rotates), each cell reports its median, and only the batch calls are timed: the input slice
//! is built before the clock starts. Each round checks that every timer came out exactly once
//! and never early.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use ticktock_wheel::batch::{
    BatchOp, PARALLEL_CANCEL_MIN, PARALLEL_INSERT_MIN, PARALLEL_POLL_MIN, SIMD_INSERT_MIN,
};
use ticktock_wheel::{BatchPath, BatchStrategy, ShardKey, ShardedWheel};

use super::inputs::{self, Pool};
use super::stats;
use super::workloads::EXPIRE_MAX_DELAY;
use crate::error::CliError;

/// Budget lines: a same-path ratio this close to 1 is noise, not a loss (run-to-run cells move
/// by more on this machine).
const NOISE: f64 = 0.05;

/// Expire: most rounds per sample (each is ~1000 polls).
const EXPIRE_MAX_ROUNDS: usize = 8;

/// The strategies, in column order.
pub const STRATEGIES: [BatchStrategy; 4] = [
    BatchStrategy::Scalar,
    BatchStrategy::Simd,
    BatchStrategy::Parallel,
    BatchStrategy::Adaptive,
];

/// The batch operations measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Insert B, cancel B.
    Churn,
    /// Insert B, poll 1 tick at a time until all fired.
    Expire,
    /// Insert B, one poll fires them all.
    Drain,
}

impl Kind {
    const ALL: [Self; 3] = [Self::Churn, Self::Expire, Self::Drain];

    fn name(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::Expire => "expire",
            Self::Drain => "drain",
        }
    }
}

/// What `bench batch` measures and how hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Batch sizes B.
    pub sizes: Vec<usize>,
    /// Timed samples per cell.
    pub samples: usize,
    /// Timers per sample, split into rounds of B (at least one round).
    pub timers_per_sample: usize,
    /// Seed of the delays.
    pub seed: u64,
}

/// One strategy at one (operation, B).
#[derive(Debug, Clone, Serialize)]
pub struct PathCell {
    /// The strategy's name.
    pub strategy: &'static str,
    /// Median ns per timer.
    pub median: f64,
    /// Fastest sample.
    pub min: f64,
    /// Slowest sample.
    pub max: f64,
    /// Scalar median / this median: above 1, faster than scalar.
    pub speedup: f64,
    /// The paths this strategy's calls took (e.g. "insert parallel, poll 17/1064 parallel").
    pub took: String,
}

/// One table row: an operation at one B, every strategy.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// The operation.
    pub kind: Kind,
    /// Batch size.
    pub batch: usize,
    /// Columns in [`STRATEGIES`] order.
    pub cells: Vec<PathCell>,
    /// Timers fired before their deadline, all paths and samples.
    pub early: u64,
    /// Timers that did not come out exactly once, all paths and samples.
    pub lost: u64,
}

impl BatchRow {
    fn cell(&self, strategy: BatchStrategy) -> Option<&PathCell> {
        STRATEGIES
            .iter()
            .position(|&s| s == strategy)
            .and_then(|i| self.cells.get(i))
    }
}

/// Shards every path's wheel has: the machine's threads, at least 2.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(2)
}

/// Name of a strategy in the table.
pub fn strategy_name(strategy: BatchStrategy) -> &'static str {
    match strategy {
        BatchStrategy::Scalar => "scalar",
        BatchStrategy::Simd => "SIMD",
        BatchStrategy::Parallel => "parallel",
        BatchStrategy::Adaptive => "adaptive",
    }
}

fn path_name(path: BatchPath) -> &'static str {
    match path {
        BatchPath::Scalar => "scalar",
        BatchPath::Simd => "SIMD",
        BatchPath::Parallel => "parallel",
    }
}

/// One strategy's wheel and counters in one row.
struct Runner {
    strategy: BatchStrategy,
    wheel: ShardedWheel<u64>,
    timers: Vec<(u64, u64)>,
    keys: Vec<ShardKey>,
    out: Vec<u64>,
    /// Paths the insert calls took; polls: (parallel, all).
    insert_paths: Vec<BatchPath>,
    cancel_paths: Vec<BatchPath>,
    polls: (u64, u64),
    early: u64,
    lost: u64,
}

impl Runner {
    fn new(strategy: BatchStrategy, batch: usize) -> Self {
        Self {
            strategy,
            wheel: ShardedWheel::with_capacity(shard_count(), batch / shard_count() + 1),
            timers: Vec::with_capacity(batch),
            keys: Vec::with_capacity(batch),
            out: Vec::with_capacity(batch),
            insert_paths: Vec::new(),
            cancel_paths: Vec::new(),
            polls: (0, 0),
            early: 0,
            lost: 0,
        }
    }

    /// Fills `timers` with B timers at `now + delay`, the value being the deadline.
    fn prepare(&mut self, batch: usize, delays: &Pool, cursor: usize) {
        let now = self.wheel.current_tick();
        self.timers.clear();
        self.timers.extend((0..batch).map(|i| {
            let deadline = now + delays.get(cursor.wrapping_add(i));
            (deadline, deadline)
        }));
    }

    /// One round of `kind`; returns the time of the batch calls alone.
    fn round(&mut self, kind: Kind, batch: usize, delays: &Pool, cursor: usize) -> Duration {
        self.prepare(batch, delays, cursor);
        self.keys.clear();
        self.out.clear();
        let strategy = self.strategy;
        let start_tick = self.wheel.current_tick();
        let (elapsed, insert_path, fired) = match kind {
            Kind::Churn => {
                let started = Instant::now();
                let insert = self
                    .wheel
                    .insert_many(&self.timers, &mut self.keys, strategy);
                let cancelled = self.wheel.cancel_many(&self.keys, &mut self.out, strategy);
                let elapsed = started.elapsed();
                self.cancel_paths.push(self.wheel.last_path());
                (elapsed, insert, black_box(cancelled))
            }
            Kind::Expire => {
                let limit = start_tick + EXPIRE_MAX_DELAY;
                let mut parallel_polls = 0;
                let mut polls = 0;
                let started = Instant::now();
                let insert = self
                    .wheel
                    .insert_many(&self.timers, &mut self.keys, strategy);
                let mut now = start_tick;
                while now < limit {
                    now += 1;
                    let before = self.out.len();
                    self.wheel.poll(now, &mut self.out, strategy);
                    parallel_polls += u64::from(self.wheel.last_path() == BatchPath::Parallel);
                    self.early += self.out[before..].iter().filter(|&&d| d > now).count() as u64;
                    polls += 1;
                }
                let elapsed = started.elapsed();
                self.polls.0 += parallel_polls;
                self.polls.1 += polls;
                (elapsed, insert, black_box(self.out.len()))
            }
            Kind::Drain => {
                let now = start_tick + EXPIRE_MAX_DELAY;
                let started = Instant::now();
                let insert = self
                    .wheel
                    .insert_many(&self.timers, &mut self.keys, strategy);
                let fired = self.wheel.poll(now, &mut self.out, strategy);
                let elapsed = started.elapsed();
                let parallel = self.wheel.last_path() == BatchPath::Parallel;
                self.early += self.out.iter().filter(|&&d| d > now).count() as u64;
                self.polls.0 += u64::from(parallel);
                self.polls.1 += 1;
                (elapsed, insert, black_box(fired))
            }
        };
        self.insert_paths.push(insert_path);
        self.lost += (batch.abs_diff(fired) + self.wheel.len()) as u64;
        if kind != Kind::Churn {
            // Every timer came out exactly once: the values are the deadlines, so compare the
            // multisets.
            let mut expected: Vec<u64> = self.timers.iter().map(|&(d, _)| d).collect();
            expected.sort_unstable();
            self.out.sort_unstable();
            if expected != self.out {
                self.lost += 1;
            }
        }
        elapsed
    }

    fn took(&self, kind: Kind) -> String {
        let summary = |paths: &[BatchPath]| {
            let mut names: Vec<&str> = paths.iter().map(|&p| path_name(p)).collect();
            names.sort_unstable();
            names.dedup();
            names.join("+")
        };
        let insert = format!("insert {}", summary(&self.insert_paths));
        match kind {
            Kind::Churn => format!("{insert}, cancel {}", summary(&self.cancel_paths)),
            Kind::Expire | Kind::Drain if self.strategy == BatchStrategy::Adaptive => {
                format!("{insert}, {}/{} polls parallel", self.polls.0, self.polls.1)
            }
            Kind::Expire | Kind::Drain => {
                let poll = self.wheel.path(BatchOp::Poll, usize::MAX, self.strategy);
                format!("{insert}, poll {}", path_name(poll))
            }
        }
    }
}

/// Runs every row, with a progress bar on stderr when `show_progress`.
pub fn run(config: &BatchConfig, show_progress: bool) -> Result<Vec<BatchRow>, CliError> {
    let cases: Vec<(Kind, usize)> = Kind::ALL
        .iter()
        .flat_map(|&kind| config.sizes.iter().map(move |&b| (kind, b.max(1))))
        .collect();
    let progress = crate::report::progress_bar(cases.len(), show_progress);
    let mut rows = Vec::with_capacity(cases.len());
    for (kind, batch) in cases {
        progress.set_message(format!("batch {} {batch}", kind.name()));
        rows.push(run_row(config, kind, batch)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(rows)
}

fn run_row(config: &BatchConfig, kind: Kind, batch: usize) -> Result<BatchRow, CliError> {
    let range = match kind {
        Kind::Churn => 1..=10_000,
        Kind::Expire | Kind::Drain => 1..=EXPIRE_MAX_DELAY,
    };
    let salt = (kind as u64) << 40 | batch as u64;
    let delays = Pool::new(&mut inputs::rng(config.seed, salt ^ 0xBA7C), range);
    let rounds = match kind {
        Kind::Churn | Kind::Drain => (config.timers_per_sample / batch).max(1),
        // A round steps through ~1000 ticks whatever B is, and the forced parallel path
        // starts a thread per poll: a few rounds are plenty for small B.
        Kind::Expire => (config.timers_per_sample / batch).clamp(1, EXPIRE_MAX_ROUNDS),
    };
    let mut runners: Vec<Runner> = STRATEGIES
        .iter()
        .map(|&strategy| Runner::new(strategy, batch))
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(config.samples); runners.len()];
    // One untimed warm-up sample (capacity, caches, the first thread spawns), then the samples.
    for sample in 0..=config.samples {
        for offset in 0..runners.len() {
            let i = (sample + offset) % runners.len();
            let runner = &mut runners[i];
            let mut elapsed = Duration::ZERO;
            for round in 0..rounds {
                elapsed += runner.round(kind, batch, &delays, (sample * rounds + round) * batch);
            }
            if sample > 0 {
                samples[i].push(elapsed.as_nanos() as f64 / (batch * rounds) as f64);
            }
        }
    }
    let medians: Vec<stats::Summary> = samples
        .iter()
        .map(|s| stats::summarize(s).ok_or_else(|| CliError::Invalid("no samples".into())))
        .collect::<Result<_, _>>()?;
    let scalar = medians[0].median;
    let cells = runners
        .iter()
        .zip(&medians)
        .map(|(runner, summary)| PathCell {
            strategy: strategy_name(runner.strategy),
            median: summary.median,
            min: summary.min,
            max: summary.max,
            speedup: scalar / summary.median,
            took: runner.took(kind),
        })
        .collect();
    Ok(BatchRow {
        kind,
        batch,
        cells,
        early: runners.iter().map(|r| r.early).sum(),
        lost: runners.iter().map(|r| r.lost).sum(),
    })
}

/// An error if any path fired early or lost a timer.
pub fn check_correctness(rows: &[BatchRow]) -> Result<(), CliError> {
    for row in rows {
        if row.early > 0 || row.lost > 0 {
            return Err(CliError::Correctness {
                implementation: "ticktock-wheel batch paths",
                workload: row.kind.name(),
                parameter: row.batch.to_string(),
                detail: format!(
                    "fired {} timers early and lost {} (not exactly once)",
                    row.early, row.lost
                ),
            });
        }
    }
    Ok(())
}

/// The JSON document: the rows and the adaptive thresholds in force.
#[derive(Serialize)]
struct JsonReport<'a> {
    shards: usize,
    threads: usize,
    simd_insert_min: Option<usize>,
    parallel_insert_min: Option<usize>,
    parallel_cancel_min: Option<usize>,
    parallel_poll_min: Option<usize>,
    rows: &'a [BatchRow],
}

/// Writes the rows as one JSON object.
pub fn write_json(out: &mut impl Write, rows: &[BatchRow]) -> Result<(), CliError> {
    let report = JsonReport {
        shards: shard_count(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd_insert_min: SIMD_INSERT_MIN,
        parallel_insert_min: PARALLEL_INSERT_MIN,
        parallel_cancel_min: PARALLEL_CANCEL_MIN,
        parallel_poll_min: PARALLEL_POLL_MIN,
        rows,
    };
    let text = serde_json::to_string_pretty(&report)?;
    writeln!(out, "{text}")?;
    Ok(())
}

fn threshold(min: Option<usize>) -> String {
    min.map_or_else(|| "off".to_owned(), |b| format!("B ≥ {b}"))
}

/// Writes the side-by-side table, the thresholds and the budget lines.
pub fn write_markdown(
    out: &mut impl Write,
    config: &BatchConfig,
    rows: &[BatchRow],
) -> Result<(), CliError> {
    writeln!(
        out,
        "## batch paths: ns per timer (median of {} samples; ×N = speed-up over scalar)\n",
        config.samples
    )?;
    writeln!(
        out,
        "churn = insert_many B (1 ms–10 s ahead) + cancel_many B; expire = insert_many B \
         (1–1000 ms ahead) + poll each 1 ms until empty; drain = insert_many B + one poll that \
         fires all B. Each path on its own ShardedWheel of {} shards; ≥ {} timers per sample \
         (expire: at most {EXPIRE_MAX_ROUNDS} rounds).\n",
        shard_count(),
        config.timers_per_sample
    )?;
    writeln!(
        out,
        "| op | B | scalar | SIMD | parallel | adaptive | adaptive took |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---|")?;
    for row in rows {
        write!(out, "| {} | {} |", row.kind.name(), row.batch)?;
        for (i, cell) in row.cells.iter().enumerate() {
            if i == 0 {
                write!(out, " {:.1} |", cell.median)?;
            } else {
                write!(out, " {:.1} (×{:.2}) |", cell.median, cell.speedup)?;
            }
        }
        let took = row
            .cell(BatchStrategy::Adaptive)
            .map_or("", |c| c.took.as_str());
        writeln!(out, " {took} |")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "- adaptive thresholds (ticktock_wheel::batch; need ≥ 2 shards and ≥ 2 threads for \
         parallel): insert parallel {}, cancel parallel {}, poll parallel (B = estimated due \
         timers) {}; SIMD insert {}.",
        threshold(PARALLEL_INSERT_MIN),
        threshold(PARALLEL_CANCEL_MIN),
        threshold(PARALLEL_POLL_MIN),
        threshold(SIMD_INSERT_MIN),
    )?;
    for (strategy, enabled) in [
        (BatchStrategy::Simd, SIMD_INSERT_MIN.is_some()),
        (
            BatchStrategy::Parallel,
            PARALLEL_INSERT_MIN.is_some()
                || PARALLEL_CANCEL_MIN.is_some()
                || PARALLEL_POLL_MIN.is_some(),
        ),
    ] {
        writeln!(out, "- {}", path_line(rows, strategy, enabled))?;
    }
    for line in budget_lines(rows) {
        writeln!(out, "- {line}")?;
    }
    for row in rows.iter().filter(|r| r.early > 0 || r.lost > 0) {
        writeln!(
            out,
            "- WARNING: {} at {}: {} early, {} lost",
            row.kind.name(),
            row.batch,
            row.early,
            row.lost
        )?;
    }
    Ok(())
}

/// Whether a path is on by default, and its best and worst speed-up in this run.
fn path_line(rows: &[BatchRow], strategy: BatchStrategy, enabled: bool) -> String {
    let speedups: Vec<(f64, &BatchRow)> = rows
        .iter()
        .filter_map(|row| Some((row.cell(strategy)?.speedup, row)))
        .collect();
    let best = speedups.iter().max_by(|a, b| a.0.total_cmp(&b.0));
    let worst = speedups.iter().min_by(|a, b| a.0.total_cmp(&b.0));
    let at = |found: Option<&(f64, &BatchRow)>| {
        found.map_or_else(
            || "-".to_owned(),
            |(s, row)| format!("×{s:.2} ({} {})", row.kind.name(), row.batch),
        )
    };
    let state = if enabled {
        "on by default above its thresholds"
    } else {
        "OFF by default (adaptive never picks it: it did not beat scalar on this machine)"
    };
    format!(
        "{}: {state}; in this run best {}, worst {}.",
        strategy_name(strategy),
        at(best),
        at(worst)
    )
}

/// The budget: at churn 8192 and expire 65,536 adaptive is never slower than scalar,
/// and ≥ 1.3× faster where it took a SIMD or parallel path.
fn budget_lines(rows: &[BatchRow]) -> Vec<String> {
    [
        (Kind::Churn, 8192),
        (Kind::Expire, 65_536),
        (Kind::Drain, 65_536),
    ]
    .into_iter()
    .filter_map(|(kind, batch)| {
        let row = rows.iter().find(|r| r.kind == kind && r.batch == batch)?;
        let adaptive = row.cell(BatchStrategy::Adaptive)?;
        let accelerated = adaptive.took.contains("parallel") && !adaptive.took.contains(" 0/")
            || adaptive.took.contains("SIMD");
        let (target, verdict) = if accelerated {
            (1.3, adaptive.speedup >= 1.3)
        } else {
            // Same path as scalar: equal within the machine's noise (5 %).
            (1.0, adaptive.speedup >= 1.0 - NOISE)
        };
        Some(format!(
            "budget {} at B = {batch}: adaptive ×{:.2} of scalar ({}; needs ≥ {target:.1}, less \
             {NOISE} for noise on the same path): {}.",
            kind.name(),
            adaptive.speedup,
            adaptive.took,
            if verdict { "met" } else { "MISSED" }
        ))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_fills_every_column_and_stays_correct() {
        let config = BatchConfig {
            sizes: vec![32, 600],
            samples: 1,
            timers_per_sample: 64,
            seed: 1,
        };
        let rows = run(&config, false).expect("tiny run");
        assert_eq!(rows.len(), Kind::ALL.len() * 2);
        for row in &rows {
            assert_eq!(row.cells.len(), STRATEGIES.len());
            assert!(row.cells.iter().all(|c| c.median > 0.0 && c.speedup > 0.0));
        }
        check_correctness(&rows).expect("every path exact");
        let mut text = Vec::new();
        write_markdown(&mut text, &config, &rows).expect("markdown");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("| churn | 600 |"), "{text}");
        assert!(text.contains("SIMD: "), "{text}");
        let mut json = Vec::new();
        write_json(&mut json, &rows).expect("json");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("valid json");
        assert_eq!(value["rows"].as_array().map(Vec::len), Some(rows.len()));
    }
}
