//! The `ticktock` command.
//!
//! For now it has one subcommand, `ticktock bench`, which measures the `ticktock-wheel` timer
//! wheel side by side with the structures a protocol stack would otherwise use (tokio-util's
//! `DelayQueue`, a binary heap with lazy cancellation, and the `nexus-timer` wheel) on the same
//! seeded inputs, and the `ticktock` timer service side by side with tokio's own timer, in one
//! process, and prints the results as markdown tables or JSON.
//!
//! This file only parses the command line and dispatches; the measuring lives in [`bench`], the
//! printing in [`report`], and the byte counting for the memory workload in [`alloc_counter`].

#[allow(unsafe_code)]
mod alloc_counter;
mod bench;
mod error;
mod report;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
}

/// Which workloads `bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// Insert B timers (1 ms–10 s), then cancel them all.
    Churn,
    /// Insert B timers (1–1000 ms) and step time 1 ms at a time until all have fired.
    Expire,
    /// Reset random timers among 100,000 live ones to now + 1–30 s.
    Reset,
    /// Heap bytes per live timer at 1,000,000 timers.
    Memory,
    /// Timer service: arm + cancel a sleep from tasks on 1 and 2 worker threads, against
    /// tokio's sleep and timeout.
    Service,
    /// Timer service: per-packet idle-timeout re-arm of 100,000 connections, against tokio's
    /// `Sleep::reset`.
    Rearm,
    /// Timer service: fire lateness of 1,000,000 timers over 10 s of real time, against
    /// tokio's timer.
    Lateness,
    /// Timer service: process CPU over 5 s with 1,000,000 timers pending an hour away, against
    /// tokio's timer.
    Idle,
    /// All of the above.
    All,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value_t = WorkloadArg::All)]
    workload: WorkloadArg,
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
        config.workloads = match self.workload {
            WorkloadArg::Churn => vec![Workload::Churn],
            WorkloadArg::Expire => vec![Workload::Expire],
            WorkloadArg::Reset => vec![Workload::Reset],
            WorkloadArg::Memory => vec![Workload::Memory],
            WorkloadArg::Service => vec![Workload::Service],
            WorkloadArg::Rearm => vec![Workload::Rearm],
            WorkloadArg::Lateness => vec![Workload::Lateness],
            WorkloadArg::Idle => vec![Workload::Idle],
            WorkloadArg::All => Workload::ALL.to_vec(),
        };
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
    }
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
