//! The `ticktock` command.
//!
//! `ticktock bench` measures the `ticktock-wheel` timer wheel side by side with the structures a
//! protocol stack would otherwise use (tokio-util's `DelayQueue`, a binary heap with lazy
//! cancellation, and the `nexus-timer` wheel) on the same seeded inputs, and the `ticktock`
//! timer service side by side with tokio's own timer, in one process, and prints the results as
//! markdown tables or JSON.
//!
//! `ticktock batch` drives the `ticktock-batch` batcher through seed 004's scenarios and more
//! (lone request, closed and open loop) and prints its KPIs beside the seed's numbers.
//!
//! This file only parses the command line and dispatches; the measuring lives in [`bench`] and
//! [`batch`], the bench's printing in [`report`], and the byte counting for the memory workload
//! in [`alloc_counter`].

#[allow(unsafe_code)]
mod alloc_counter;
mod batch;
mod bench;
mod error;
mod report;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::bench::{Config, Workload};
use crate::error::CliError;

/// `ticktock`: tools for the ticktock timer system.
#[derive(Debug, Parser)]
#[command(name = "ticktock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark ticktock-wheel against tokio-util's DelayQueue, a lazy-cancel binary heap and
    /// nexus-timer, and the ticktock timer service against tokio's timer, on the same seeded
    /// inputs.
    Bench(BenchArgs),
    /// Load-test the ticktock-batch batcher: seed 004's scenarios, a lone request, closed loop
    /// at 1 to 500 callers, open loop at fixed rates; its KPIs beside the seed's numbers and the
    /// budgets.
    Batch(BatchArgs),
}

#[derive(Debug, Args)]
struct BatchArgs {
    /// Scenario to run (default: every scenario).
    #[arg(long, value_enum)]
    scenario: Option<batch::Scenario>,
    /// Short run for CI (a few seconds): fewer rounds and requests, 0.3 s per sustained row.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object (rows, comparison with the seed, problems) instead of markdown.
    #[arg(long)]
    json: bool,
}

impl BatchArgs {
    fn config(&self) -> batch::Config {
        let mut config = if self.quick {
            batch::Config::quick()
        } else {
            batch::Config::full()
        };
        if let Some(scenario) = self.scenario {
            config.scenarios = vec![scenario];
        }
        config
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Workload to run (default: every workload).
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// Samples (timed repetitions) per table cell; each cell reports their median, min and max.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    samples: Option<u32>,
    /// Short run for CI: 3 samples, smaller repetition counts, fewer timers and shorter
    /// real-time spans.
    #[arg(long)]
    quick: bool,
    /// Print one JSON array of result objects instead of markdown tables.
    #[arg(long)]
    json: bool,
    /// Seed of the random inputs (every implementation gets the same inputs).
    #[arg(long, default_value_t = bench::DEFAULT_SEED)]
    seed: u64,
    /// Batch sizes B for the churn and expire workloads, comma separated
    /// (default: 32,128,256,1024,2048,4096,8192 for churn, 1024,65536 for expire).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=65_536))]
    sizes: Vec<u32>,
}

impl BenchArgs {
    fn config(&self) -> Config {
        let mut config = if self.quick {
            Config::quick(self.seed)
        } else {
            Config::full(self.seed)
        };
        if let Some(samples) = self.samples {
            config.samples = samples as usize;
        }
        if !self.sizes.is_empty() {
            let sizes: Vec<usize> = self.sizes.iter().map(|&b| b as usize).collect();
            config.churn_sizes.clone_from(&sizes);
            config.expire_sizes = sizes;
        }
        config.workloads = self
            .workload
            .map_or_else(|| Workload::ALL.to_vec(), |workload| vec![workload]);
        config
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stops early (`| head`) is not an error of ours.
        Err(CliError::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Bench(args) => run_bench(args),
        Command::Batch(args) => run_batch(args),
    }
}

fn run_batch(args: &BatchArgs) -> Result<(), CliError> {
    let config = args.config();
    let show_progress = !args.json && io::stderr().is_terminal();
    let rows = batch::run(&config, show_progress)?;
    let mut out = io::stdout().lock();
    if args.json {
        batch::report::write_json(&mut out, &config, &rows)?;
    } else {
        batch::report::write_markdown(&mut out, &config, &rows)?;
    }
    out.flush()?;
    // The numbers are printed first so a failing run still shows what it measured; missed
    // performance budgets are reported, not failed.
    batch::check_correctness(&rows)
}

fn run_bench(args: &BenchArgs) -> Result<(), CliError> {
    let config = args.config();
    let show_progress = !args.json && io::stderr().is_terminal();
    let results = bench::run(&config, show_progress)?;
    let mut out = io::stdout().lock();
    if args.json {
        report::write_json(&mut out, &results)?;
    } else {
        report::write_markdown(&mut out, &config, &results)?;
    }
    out.flush()?;
    // Timing numbers are printed first so a failing run still shows what it measured.
    results.check_ticktock_correctness()
}
