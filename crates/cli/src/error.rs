//! The one error type of the command, so `main` can print any failure as one line and exit 1.
//!
//! Bad flags never get here: clap rejects them with its own message and usage.

use std::io;

/// Everything that can make `ticktock` fail after its arguments were accepted.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A tokio runtime (DelayQueue's, or one the timer-service workloads run on) could not be
    /// built.
    #[error("could not start a tokio runtime: {0}")]
    Runtime(#[source] io::Error),
    /// The ticktock timer service would not start.
    #[error("could not start the ticktock timer service: {0}")]
    Service(#[from] ticktock::BuildError),
    /// A benchmark task panicked or was cancelled.
    #[error("a benchmark task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The process's CPU time could not be read (the idle workload needs /proc).
    #[error("could not read the process's CPU time from /proc/self: {0}")]
    CpuTime(#[source] io::Error),
    /// ticktock fired a timer early, lost one, or miscounted: the numbers are void.
    #[error(
        "correctness failure: {implementation} {detail} in the {workload} workload \
         (parameter {parameter}); its timing numbers are not valid"
    )]
    Correctness {
        /// The implementation that failed (ticktock-wheel or the ticktock service).
        implementation: &'static str,
        /// Workload name.
        workload: &'static str,
        /// The parameter (batch size or timer count) of the failing cell.
        parameter: String,
        /// What went wrong, e.g. "fired 3 timers early".
        detail: String,
    },
    /// A batcher for `ticktock batch` would not start.
    #[error("could not start a batcher: {0}")]
    Batcher(#[from] ticktock_batch::BuildError),
    /// A `ticktock batch` row never finished: some caller still waited for its answer.
    #[error(
        "correctness failure: batch row {row} still had requests unanswered after {after:?}; \
         requests were lost"
    )]
    BatchLost {
        /// The row (scenario, handler, load).
        row: String,
        /// How long the row was given.
        after: std::time::Duration,
    },
    /// The batcher broke an invariant under load (a batch above its limit, a fill above 100 %,
    /// a lost or misrouted request, counts that do not add up): its numbers are void.
    #[error("batcher correctness failure: {0}")]
    BatchCorrectness(String),
    /// A setting out of range (the message names the flag).
    #[error("{0}")]
    Invalid(String),

    /// A thread (the simulation's traffic generator) could not be started.
    #[error("could not start a thread: {0}")]
    Thread(#[source] io::Error),

    /// The metrics endpoint could not start (address in use, say).
    #[error(transparent)]
    Metrics(#[from] crate::simulate::metrics_http::MetricsError),

    /// The simulation's traffic generator panicked.
    #[error("the traffic generator thread panicked")]
    GeneratorPanicked,

    /// `ticktock quic` could not set up its endpoints (a socket, a certificate, a
    /// configuration).
    #[error("the QUIC load could not start: {0}")]
    Quic(String),
    /// `ticktock quic` saw a byte echoed wrong, an idle close before its timeout, a missing idle
    /// timeout or a failed stream: its figures are void.
    #[error("QUIC correctness failure: {0}")]
    QuicCorrectness(String),

    /// Writing the report to standard output failed.
    #[error("could not write the report: {0}")]
    Output(#[from] io::Error),
    /// The `--report` HTML file could not be written (its directory does not exist, say).
    #[error("could not write the report to {}: {source}", path.display())]
    ReportFile {
        /// The file asked for.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// Encoding the JSON report failed.
    #[error("could not encode the JSON report: {0}")]
    Json(#[from] serde_json::Error),
}
