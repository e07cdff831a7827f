//! The `ticktock` command.
//!
//! `ticktock simulate` (the default) runs a protocol endpoint's timer load — many connections
//! with idle, handshake, path-validation, keep-alive and retransmission timers — on the ticktock
//! service or on tokio's timers, on the real clock, and prints (or charts) what it cost.
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
//! This file only parses the command line and dispatches; the measuring lives in [`simulate`],
//! [`bench`](mod@bench) and [`batch`], the bench's printing in [`report`], the pieces of every command's
//! `--report` HTML page in [`html`], and the byte counting for the memory workload in
//! [`alloc_counter`].

#[allow(unsafe_code)]
mod alloc_counter;
mod batch;
mod bench;
mod error;
mod html;
mod quic;
mod report;
mod simulate;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::{Config, Workload};
use crate::error::CliError;

/// `ticktock`: tools for the ticktock timer system.
#[derive(Debug, Parser)]
#[command(
    name = "ticktock",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// What to run (default: `simulate`, whose flags may then be given directly).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    simulate: SimulateArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a busy protocol endpoint's timers on the real clock (the default): C connections
    /// with idle, handshake, path-validation, keep-alive and retransmission timers, on ticktock
    /// or tokio's timer, side by side with `--compare`.
    Simulate(SimulateArgs),
    /// Benchmark ticktock-wheel against tokio-util's DelayQueue, a lazy-cancel binary heap and
    /// nexus-timer, and the ticktock timer service against tokio's timer, on the same seeded
    /// inputs.
    Bench(BenchArgs),
    /// Load-test the ticktock-batch batcher: seed 004's scenarios, a lone request, closed loop
    /// at 1 to 500 callers, open loop at fixed rates; its KPIs beside the seed's numbers and the
    /// budgets.
    Batch(BatchArgs),
    /// Run a real QUIC load on quinn: an echo server and many clients on loopback, some going
    /// idle until their idle timeout closes them, with quinn's timers on ticktock
    /// (`ticktock-quinn`) or on quinn's own tokio runtime, side by side with `--compare`.
    Quic(QuicArgs),
}

#[derive(Debug, Clone, Args)]
struct SimulateArgs {
    /// Connections kept open (1 to 2,000,000).
    #[arg(long, default_value_t = 100_000)]
    connections: usize,
    /// How long each backend runs (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Packets per second each active connection receives, from a generator thread (a paced
    /// run: the ops/s are the offered load). Without it the run is saturated: each endpoint
    /// reads its next packets as soon as it has handled the last, and the ops/s are what the
    /// backend sustains.
    #[arg(long)]
    packet_rate: Option<f64>,
    /// Share of frames lost (their ack never comes; the RTO fires).
    #[arg(long, default_value_t = 0.01)]
    loss: f64,
    /// Mean time a connection receives traffic before it goes quiet (then its idle timeout
    /// closes it and a new connection takes its place).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lifetime: Duration,
    /// Share of packets that start a path validation (a migration).
    #[arg(long, default_value_t = 0.001)]
    migration: f64,
    /// Mean time from answering a packet to the peer's acknowledgment arriving (round trip plus
    /// the peer's ack delay); the RTO timer runs in between.
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    ack_delay: Duration,
    /// Meet ticktock's idle and keep-alive deadlines exactly, as tokio does (default: coarse,
    /// up to an eighth of the timeout late and never early, which spares the wheel cascades).
    #[arg(long)]
    exact_timers: bool,
    /// The timers to run on.
    #[arg(long, value_enum, default_value_t = simulate::results::Backend::Ticktock)]
    backend: simulate::results::Backend,
    /// Run ticktock and then tokio on the same traffic and print them side by side.
    #[arg(long)]
    compare: bool,
    /// Short run for CI: 10,000 connections, 2 s per backend.
    #[arg(long)]
    quick: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Seed of the traffic model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve the timer service's and batcher's metrics in Prometheus text format at
    /// http://ADDR/metrics while the run lasts (e.g. 127.0.0.1:9898).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

/// Parses "10s", "250ms", "2m", "1.5s", "750us".
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("unparsable duration {text:?} (try 10s, 500ms or 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration {text:?} is out of range"))
}

impl SimulateArgs {
    fn config(&self) -> simulate::SimConfig {
        let (connections, duration) = if self.quick {
            (10_000, Duration::from_secs(2))
        } else {
            (self.connections, self.duration)
        };
        simulate::SimConfig {
            connections,
            duration,
            traffic: simulate::traffic::Traffic {
                packet_rate: self.packet_rate,
                loss: self.loss,
                lifetime: self.lifetime,
                migration: self.migration,
                ack_delay: self.ack_delay,
                seed: self.seed,
            },
            idle_precision: if self.exact_timers {
                ticktock::Precision::Exact
            } else {
                ticktock::Precision::Coarse
            },
        }
    }

    fn backends(&self) -> Vec<simulate::results::Backend> {
        if self.compare {
            vec![
                simulate::results::Backend::Ticktock,
                simulate::results::Backend::Tokio,
            ]
        } else {
            vec![self.backend]
        }
    }
}

#[derive(Debug, Args)]
struct QuicArgs {
    /// Client connections (1 to 20,000).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// How long the load lasts once every handshake is done (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// The runtime quinn runs on.
    #[arg(long, value_enum, default_value_t = quic::QuicRuntime::Ticktock)]
    runtime: quic::QuicRuntime,
    /// Run on ticktock's runtime (driver thread, then the timerfd driver on Linux) and then on
    /// quinn's tokio runtime, and print them side by side.
    #[arg(long)]
    compare: bool,
    /// Short run for CI: 100 connections, 4 s of load.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Share of clients that stop sending part-way and wait for their idle timeout (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    idle_share: f64,
    /// The connections' idle timeout (at least 200ms, shorter than --duration).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Bytes per echoed message.
    #[arg(long, default_value_t = 2048)]
    message_bytes: usize,
    /// Mean pause between a client's echoes (each pause is uniform in half to 1.5 times it).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    think: Duration,
    /// Seed of the messages, pauses and idle moments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl QuicArgs {
    fn config(&self) -> quic::QuicConfig {
        let (connections, duration) = if self.quick {
            (100, Duration::from_secs(4))
        } else {
            (self.connections, self.duration)
        };
        quic::QuicConfig {
            connections,
            duration,
            idle_share: self.idle_share,
            idle_timeout: self.idle_timeout,
            message_bytes: self.message_bytes,
            think: self.think,
            seed: self.seed,
        }
    }

    fn runtimes(&self) -> Vec<quic::QuicRuntime> {
        if self.compare {
            let mut runtimes = vec![quic::QuicRuntime::Ticktock];
            if cfg!(target_os = "linux") {
                runtimes.push(quic::QuicRuntime::TicktockTimerfd);
            }
            runtimes.push(quic::QuicRuntime::Tokio);
            runtimes
        } else {
            vec![self.runtime]
        }
    }
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
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
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
    /// Workload to run (default: every workload except `batch`).
    #[arg(long, value_enum)]
    workload: Option<Workload>,
    /// The workload as a positional argument (`ticktock bench batch`), the same as
    /// `--workload`.
    #[arg(value_enum, value_name = "WORKLOAD", conflicts_with = "workload")]
    only: Option<Workload>,
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
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
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
            config.batch_sizes.clone_from(&sizes);
            config.expire_sizes = sizes;
        }
        config.workloads = self
            .workload
            .or(self.only)
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
        None => run_simulate(&cli.simulate),
        Some(Command::Simulate(args)) => run_simulate(args),
        Some(Command::Bench(args)) => run_bench(args),
        Some(Command::Batch(args)) => run_batch(args),
        Some(Command::Quic(args)) => run_quic(args),
    }
}

fn run_simulate(args: &SimulateArgs) -> Result<(), CliError> {
    let config = args.config();
    check_report_path(args.report.as_deref())?;
    let show_progress = !args.json && io::stderr().is_terminal();
    let endpoint = args
        .metrics
        .map(simulate::metrics_http::serve)
        .transpose()?;
    if let Some(endpoint) = &endpoint {
        let _ = writeln!(
            io::stderr(),
            "metrics at http://{}/metrics",
            endpoint.local_addr()
        );
    }
    let results = simulate::run(&config, &args.backends(), show_progress)?;
    drop(endpoint);
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &results)?;
        writeln!(out)?;
    } else {
        simulate::write_table(&mut out, &config, &results)?;
    }
    if let Some(path) = &args.report {
        let html = simulate::html::render(
            &results,
            "ticktock simulate",
            &command_line(),
            &report::machine(),
        );
        write_report(&mut out, args.json, path, &html)?;
    }
    out.flush()?;
    let early: u64 = results.iter().map(|r| r.lateness.early).sum();
    if early > 0
        && results
            .iter()
            .any(|r| r.backend != Some(simulate::results::Backend::Tokio) && r.lateness.early > 0)
    {
        return Err(CliError::Invalid(format!(
            "ticktock fired {early} timers early"
        )));
    }
    Ok(())
}

fn run_quic(args: &QuicArgs) -> Result<(), CliError> {
    let config = args.config();
    config.validate()?;
    let results = quic::run(
        &config,
        &args.runtimes(),
        !args.json && io::stderr().is_terminal(),
    )?;
    let mut out = io::stdout().lock();
    if args.json {
        quic::write_json(&mut out, &config, &results)?;
    } else {
        quic::write_table(&mut out, &config, &results)?;
    }
    out.flush()?;
    // Printed first, so a failing run still shows what it measured.
    quic::check(&results)
}

fn run_batch(args: &BatchArgs) -> Result<(), CliError> {
    let config = args.config();
    check_report_path(args.report.as_deref())?;
    let show_progress = !args.json && io::stderr().is_terminal();
    let rows = batch::run(&config, show_progress)?;
    let mut out = io::stdout().lock();
    if args.json {
        batch::report::write_json(&mut out, &config, &rows)?;
    } else {
        batch::report::write_markdown(&mut out, &config, &rows)?;
    }
    if let Some(path) = &args.report {
        let html = batch::html::render(&config, &rows, &command_line(), &report::machine());
        write_report(&mut out, args.json, path, &html)?;
    }
    out.flush()?;
    // The numbers are printed first so a failing run still shows what it measured; missed
    // performance budgets are reported, not failed.
    batch::check_correctness(&rows)
}

fn run_bench(args: &BenchArgs) -> Result<(), CliError> {
    let config = args.config();
    check_report_path(args.report.as_deref())?;
    let show_progress = !args.json && io::stderr().is_terminal();
    if config.workloads == [Workload::Batch] {
        return run_bench_batch(&config, args.json, show_progress);
    }
    let results = bench::run(&config, show_progress)?;
    let mut out = io::stdout().lock();
    if args.json {
        report::write_json(&mut out, &results)?;
    } else {
        report::write_markdown(&mut out, &config, &results)?;
    }
    if let Some(path) = &args.report {
        let html = bench::html::render(&config, &results, &command_line(), &report::machine());
        write_report(&mut out, args.json, path, &html)?;
    }
    out.flush()?;
    // Timing numbers are printed first so a failing run still shows what it measured.
    results.check_ticktock_correctness()
}

/// `ticktock bench batch`: the batch paths' own table (see `bench::batch_paths`).
fn run_bench_batch(config: &Config, json: bool, show_progress: bool) -> Result<(), CliError> {
    let batch_config = bench::batch_paths::BatchConfig {
        sizes: config.batch_sizes.clone(),
        samples: config.samples,
        timers_per_sample: config.batch_timers_per_sample,
        seed: config.seed,
    };
    let rows = bench::batch_paths::run(&batch_config, show_progress)?;
    let mut out = io::stdout().lock();
    if json {
        bench::batch_paths::write_json(&mut out, &rows)?;
    } else {
        writeln!(
            out,
            "ticktock bench batch · machine: {} · seed {}\n",
            report::machine(),
            config.seed
        )?;
        bench::batch_paths::write_markdown(&mut out, &batch_config, &rows)?;
    }
    out.flush()?;
    bench::batch_paths::check_correctness(&rows)
}

/// The command line as typed, for a report's header.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// Refuses a `--report` file whose directory does not exist, before the run rather than after
/// it, so a typo does not throw away minutes of measuring.
fn check_report_path(path: Option<&std::path::Path>) -> Result<(), CliError> {
    let Some(path) = path else { return Ok(()) };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let problem = if path.is_dir() {
        "it is a directory".to_owned()
    } else if !dir.is_dir() {
        format!("directory {} does not exist", dir.display())
    } else {
        return Ok(());
    };
    Err(CliError::ReportFile {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, problem),
    })
}

/// Writes a `--report` page to `path` and says so: on `out` under a table, on stderr under JSON
/// (so standard output stays one JSON document).
fn write_report(
    out: &mut impl Write,
    json: bool,
    path: &std::path::Path,
    html: &str,
) -> Result<(), CliError> {
    std::fs::write(path, html).map_err(|source| CliError::ReportFile {
        path: path.to_owned(),
        source,
    })?;
    if json {
        let _ = writeln!(io::stderr(), "report written to {}", path.display());
    } else {
        writeln!(out, "\nreport written to {}", path.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_one_line_errors() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("750us"), Ok(Duration::from_micros(750)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "ten seconds", "10 parsecs", "-1s", "1e400s", "s"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn every_simulate_flag_rejects_bad_input() {
        for args in [
            &["ticktock", "--connections", "many"][..],
            &["ticktock", "--connections", "-5"],
            &["ticktock", "--duration", "soon"],
            &["ticktock", "--lifetime", "5 parsecs"],
            &["ticktock", "--packet-rate", "fast"],
            &["ticktock", "--loss", "some"],
            &["ticktock", "--migration", "x"],
            &["ticktock", "--ack-delay", "later"],
            &["ticktock", "--exact-timers", "yes"],
            &["ticktock", "--backend", "heap"],
            &["ticktock", "--metrics", "not-an-address"],
            &["ticktock", "--seed", "-1"],
            &["ticktock", "simulate", "--bogus"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?} accepted");
        }
        // Values that parse but make no sense are refused before anything runs.
        for args in [
            &["ticktock", "--connections", "0"][..],
            &["ticktock", "--connections", "999999999"],
            &["ticktock", "--duration", "1ms"],
            &["ticktock", "--packet-rate", "0"],
            &["ticktock", "--loss", "0.9"],
            &["ticktock", "--migration", "1.5"],
            &["ticktock", "--lifetime", "0s"],
            &["ticktock", "--ack-delay", "1h"],
        ] {
            let cli = Cli::try_parse_from(args).expect("parses");
            let error = cli.simulate.config().validate().expect_err("refused");
            assert!(!error.to_string().contains('\n'), "{error}");
        }
        let cli = Cli::try_parse_from(["ticktock"]).expect("defaults");
        assert!(cli.command.is_none());
        assert_eq!(cli.simulate.config().connections, 100_000);
        assert!(cli.simulate.config().validate().is_ok());
    }
}
