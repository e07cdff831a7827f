//! The one error type of the command, so `main` can print any failure as one line and exit 1.
//!
//! Bad flags never get here: clap rejects them with its own message and usage.

use std::io;

/// Everything that can make `ticktock` fail after its arguments were accepted.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The tokio runtime that DelayQueue needs could not be built.
    #[error("could not start the tokio runtime for the DelayQueue peer: {0}")]
    Runtime(#[source] io::Error),
    /// ticktock-wheel fired a timer early, lost one, or miscounted: the numbers are void.
    #[error(
        "correctness failure: ticktock-wheel {detail} in the {workload} workload \
         (parameter {parameter}); its timing numbers are not valid"
    )]
    Correctness {
        /// Workload name.
        workload: &'static str,
        /// The parameter (batch size or timer count) of the failing cell.
        parameter: String,
        /// What went wrong, e.g. "fired 3 timers early".
        detail: String,
    },
    /// Writing the report to standard output failed.
    #[error("could not write the report: {0}")]
    Output(#[from] io::Error),
    /// Encoding the JSON report failed.
    #[error("could not encode the JSON report: {0}")]
    Json(#[from] serde_json::Error),
}
