//! The `batch` load generator: drives a `ticktock-batch` [`Batcher`](ticktock_batch::Batcher)
//! through the scenarios seed 004 measured its batcher with, and a few more, and reports what
//! the callers, the batcher and the handler saw.
//!
//! This file holds what to run ([`Config`], [`Scenario`], [`Load`]) and the runner; the
//! handlers are in [`handler`], the callers in [`load`], their counts in [`tally`], a
//! scenario's outcome in [`results`], the verdicts against the seed in [`compare`] and the
//! printing in [`report`].
//!
//! Every scenario gets a fresh batcher with the default settings but `max_batch_size` (32):
//! queue bound 8,192, one batch at a time, no `max_wait`, no deadline, the global timer
//! service. Everything runs on one multi-thread tokio runtime with 2 workers.

pub mod compare;
pub mod handler;
pub mod html;
pub mod load;
pub mod report;
pub mod results;
pub mod tally;

use std::time::Duration;

use self::handler::{Cost, FIXED_COST};
use self::results::{Handled, Row};
use crate::error::CliError;

/// A group of rows, one table each; also the values of `--scenario`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Scenario {
    /// Seed 004's runs: 100 requests from 10 callers, 200 from 20, 500 from 50.
    Seed,
    /// One request at a time on an idle batcher: latency less handler time.
    Lone,
    /// Sustained closed loop at 1, 50 and 500 callers.
    ClosedLoop,
    /// Sustained open loop: requests arrive at a fixed rate.
    OpenLoop,
}

impl Scenario {
    /// Every scenario, in run and report order.
    pub const ALL: [Self; 4] = [Self::Seed, Self::Lone, Self::ClosedLoop, Self::OpenLoop];

    /// Name in the report and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::Lone => "lone",
            Self::ClosedLoop => "closed-loop",
            Self::OpenLoop => "open-loop",
        }
    }
}

/// How the callers drive the batcher in one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `callers` callers each send `per_caller` requests one after another with `call`,
    /// `rounds` times over.
    Seed {
        /// Concurrent callers.
        callers: usize,
        /// Requests per caller per round.
        per_caller: usize,
        /// Repetitions on the same batcher.
        rounds: usize,
    },
    /// One caller, `requests` requests one at a time, idle for `gap` before each.
    Lone {
        /// Requests.
        requests: usize,
        /// Idle time before each request.
        gap: Duration,
    },
    /// `callers` callers, each sending the next request when the previous returns.
    Closed {
        /// Concurrent callers.
        callers: usize,
        /// How long.
        duration: Duration,
    },
    /// `rate` requests per second arrive, whatever the batcher does.
    Open {
        /// Requests per second offered.
        rate: u64,
        /// How long.
        duration: Duration,
    },
}

impl Load {
    /// Short description for the report.
    pub fn describe(self) -> String {
        match self {
            Self::Seed {
                callers,
                per_caller,
                rounds,
            } => format!("{} from {callers} callers ×{rounds}", callers * per_caller),
            Self::Lone { gap, .. } => format!("1 caller, {gap:?} idle between"),
            Self::Closed { callers, .. } => {
                format!("{callers} caller{}", if callers == 1 { "" } else { "s" })
            }
            Self::Open { rate, .. } => {
                format!("{} req/s offered", compare::thousands(rate as f64))
            }
        }
    }

    /// Concurrent callers, where the load has a fixed number.
    pub fn callers(self) -> Option<usize> {
        match self {
            Self::Seed { callers, .. } | Self::Closed { callers, .. } => Some(callers),
            Self::Lone { .. } => Some(1),
            Self::Open { .. } => None,
        }
    }

    /// A generous bound on how long the load should take when every request is answered.
    fn expected(self) -> Duration {
        match self {
            Self::Seed { .. } => Duration::ZERO,
            Self::Lone { requests, gap } => {
                (gap + Duration::from_millis(2)) * u32::try_from(requests).unwrap_or(u32::MAX)
            }
            Self::Closed { duration, .. } | Self::Open { duration, .. } => duration,
        }
    }
}

/// One row to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The table it goes in.
    pub scenario: Scenario,
    /// The handler's cost.
    pub cost: Cost,
    /// How the callers drive it.
    pub load: Load,
    /// The batcher's batch size limit.
    pub max_batch_size: usize,
}

/// What a `batch` run does and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
    /// Whether this is the `--quick` run (for the header).
    pub quick: bool,
    /// The batchers' batch size limit (the seed's was 32).
    pub max_batch_size: usize,
    /// Seed scenarios: rounds of each on its batcher.
    pub seed_rounds: usize,
    /// Lone: requests.
    pub lone_requests: usize,
    /// Lone: idle time before each request.
    pub lone_gap: Duration,
    /// Closed and open loop: how long each row runs.
    pub duration: Duration,
    /// Closed loop: caller counts, one row each per handler.
    pub callers: Vec<usize>,
    /// Open loop: offered rates in requests per second, one row each per handler.
    pub open_rates: Vec<u64>,
    /// How long requests may take to come back after the load ends before they count as lost.
    pub grace: Duration,
    /// A closed loop of 50 callers run (and discarded) before the first row.
    pub warm_up: Duration,
}

impl Config {
    /// The full run, about 25 s.
    pub fn full() -> Self {
        Self {
            scenarios: Scenario::ALL.to_vec(),
            quick: false,
            max_batch_size: 32,
            seed_rounds: 20,
            lone_requests: 1000,
            lone_gap: Duration::from_millis(1),
            duration: Duration::from_secs(2),
            callers: vec![1, 50, 500],
            open_rates: vec![100_000, 500_000],
            grace: Duration::from_secs(10),
            warm_up: Duration::from_millis(200),
        }
    }

    /// The CI run, a few seconds: the same rows, shorter.
    pub fn quick() -> Self {
        Self {
            quick: true,
            seed_rounds: 5,
            lone_requests: 100,
            duration: Duration::from_millis(300),
            warm_up: Duration::from_millis(50),
            ..Self::full()
        }
    }

    /// A run well under a second, for tests: every row, tiny.
    #[cfg(test)]
    pub fn tiny() -> Self {
        Self {
            quick: true,
            seed_rounds: 1,
            lone_requests: 5,
            duration: Duration::from_millis(20),
            open_rates: vec![20_000],
            grace: Duration::from_secs(5),
            warm_up: Duration::from_millis(5),
            ..Self::full()
        }
    }

    /// Every row of the run, in order.
    pub fn plan(&self) -> Vec<Case> {
        let case = |scenario, cost, load| Case {
            scenario,
            cost,
            load,
            max_batch_size: self.max_batch_size,
        };
        let sustained = [Cost::NoOp, Cost::Growing];
        let mut cases = Vec::new();
        for &scenario in &self.scenarios {
            match scenario {
                Scenario::Seed => {
                    cases.extend(compare::SEED_RUNS.iter().map(|run| {
                        let load = Load::Seed {
                            callers: run.callers,
                            per_caller: run.requests / run.callers,
                            rounds: self.seed_rounds.max(1),
                        };
                        case(scenario, Cost::NoOp, load)
                    }));
                }
                Scenario::Lone => {
                    let load = Load::Lone {
                        requests: self.lone_requests.max(1),
                        gap: self.lone_gap,
                    };
                    cases.push(case(scenario, Cost::Fixed(FIXED_COST), load));
                }
                Scenario::ClosedLoop => {
                    for cost in sustained {
                        cases.extend(self.callers.iter().map(|&callers| {
                            let load = Load::Closed {
                                callers: callers.max(1),
                                duration: self.duration,
                            };
                            case(scenario, cost, load)
                        }));
                    }
                }
                Scenario::OpenLoop => {
                    for cost in sustained {
                        cases.extend(self.open_rates.iter().map(|&rate| {
                            let load = Load::Open {
                                rate: rate.max(1),
                                duration: self.duration,
                            };
                            case(scenario, cost, load)
                        }));
                    }
                }
            }
        }
        cases
    }
}

/// Runs every row of `config` on a 2-worker runtime, with a progress bar on stderr when
/// `show_progress`.
///
/// # Errors
/// The runtime or a batcher would not start, a task failed, or a row never finished (its
/// requests were lost). Rows that finished with wrong counts come back as rows; see
/// [`Row::problems`].
pub fn run(config: &Config, show_progress: bool) -> Result<Vec<Row>, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .map_err(CliError::Runtime)?;
    // Start the global timer service's thread now, not inside the first timed row.
    let _ = ticktock::global();
    let cases = config.plan();
    let progress = crate::report::progress_bar(cases.len(), show_progress);
    let warm_up = Case {
        scenario: Scenario::ClosedLoop,
        cost: Cost::NoOp,
        load: Load::Closed {
            callers: 50,
            duration: config.warm_up,
        },
        max_batch_size: config.max_batch_size,
    };
    progress.set_message("warm-up");
    runtime.block_on(runtime.spawn(run_case(warm_up, config.grace)))??;
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        progress.set_message(format!(
            "{} {} {}",
            case.scenario.name(),
            case.cost.name(),
            case.load.describe()
        ));
        rows.push(runtime.block_on(runtime.spawn(run_case(case, config.grace)))??);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(rows)
}

/// Runs one row on a fresh batcher, then shuts the batcher down (so every batch is recorded)
/// and reads its stats.
async fn run_case(case: Case, grace: Duration) -> Result<Row, CliError> {
    let (batcher, probe) = handler::start(case.cost, case.max_batch_size)?;
    let work = async {
        match case.load {
            Load::Seed {
                callers,
                per_caller,
                rounds,
            } => load::seed(&batcher, callers, per_caller, rounds).await,
            Load::Lone { requests, gap } => load::lone(&batcher, &probe, requests, gap).await,
            Load::Closed { callers, duration } => {
                load::closed_loop(&batcher, callers, duration).await
            }
            Load::Open { rate, duration } => load::open_loop(&batcher, rate, duration, grace).await,
        }
    };
    // The open loop counts its own stragglers; a caller that waits forever is caught here.
    let limit = case.load.expected() + grace * 2;
    let run = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| CliError::BatchLost {
            row: format!(
                "{} {} {}",
                case.scenario.name(),
                case.cost.name(),
                case.load.describe()
            ),
            after: limit,
        })??;
    batcher.shutdown().await;
    let stats = batcher.stats();
    Ok(Row::new(&case, run, stats, Handled::of(&probe)))
}

/// Every correctness problem of the run, each prefixed with its row.
pub fn problems(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .flat_map(|row| {
            let name = format!(
                "{} {} {}",
                row.scenario.name(),
                row.cost.name(),
                row.load.describe()
            );
            row.problems()
                .into_iter()
                .map(move |problem| format!("{name}: {problem}"))
        })
        .collect()
}

/// Fails with every correctness problem of the run, if there is any.
///
/// # Errors
/// [`CliError::BatchCorrectness`] listing the problems.
pub fn check_correctness(rows: &[Row]) -> Result<(), CliError> {
    let problems = problems(rows);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::BatchCorrectness(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_runs_tiny_with_counts_adding_up() {
        let config = Config::tiny();
        let rows = run(&config, false).expect("tiny run");
        let plan = config.plan();
        assert_eq!(rows.len(), plan.len());
        // 3 seed rows, 1 lone, 3 callers × 2 handlers closed, 1 rate × 2 handlers open.
        assert_eq!(rows.len(), 3 + 1 + 6 + 2);
        for (row, case) in rows.iter().zip(&plan) {
            assert_eq!((row.scenario, row.load), (case.scenario, case.load));
            assert!(row.problems().is_empty(), "{:?}", row.problems());
            let tally = &row.run.tally;
            assert_eq!(tally.sent, tally.finished() + tally.unfinished);
            assert_eq!(tally.unfinished, 0);
            assert_eq!(tally.served, row.stats.served);
            assert_eq!(row.handled.items, row.stats.served);
            assert!(tally.served > 0, "{row:?}");
            assert!(row.largest_batch() <= 32);
            assert!(row.fill_max() <= 1.0);
            assert!(row.throughput() > 0.0);
            assert_eq!(tally.latency.len(), tally.served);
            match row.load {
                Load::Seed {
                    callers,
                    per_caller,
                    rounds,
                } => {
                    assert_eq!(tally.sent, (callers * per_caller * rounds) as u64);
                    assert_eq!(tally.served, tally.sent);
                }
                Load::Lone { requests, .. } => {
                    assert_eq!(tally.served, requests as u64);
                    // One request at a time: every batch holds exactly one.
                    assert_eq!(row.stats.batches, requests as u64);
                    let overhead = row.overhead().expect("lone rows measure overhead");
                    assert!(overhead.p50 > 0.0);
                    assert!(row.latency().p50 >= FIXED_COST.as_secs_f64() * 1e6);
                }
                Load::Closed { .. } => {
                    // The default queue bound (8,192) is far above 500 callers.
                    assert_eq!(tally.rejected, 0);
                    assert_eq!(tally.served, tally.sent);
                }
                Load::Open { rate, duration } => {
                    let offered = (rate as f64 * duration.as_secs_f64()).ceil() as u64;
                    assert_eq!(tally.sent, offered);
                    assert!(row.arrival_rate().is_some_and(|rate| rate > 0.0));
                    assert_eq!(tally.served + tally.rejected, tally.sent);
                }
            }
        }
        check_correctness(&rows).expect("the batcher is correct");
        // The report renders every row and the comparison.
        let mut out = Vec::new();
        report::write_markdown(&mut out, &config, &rows).expect("markdown");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("against seed 004"), "{text}");
        let mut out = Vec::new();
        report::write_json(&mut out, &config, &rows).expect("json");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(rows.len()));
    }
}
