//! What a run measured: every sample of every cell, and the two judgements drawn from them
//! (ratio to ticktock, and whether ticktock stayed correct).
//!
//! "ticktock" is the reference implementation of each workload: `ticktock-wheel` in the wheel's
//! workloads, the `ticktock` timer service in the service's.

use super::Workload;
use super::peers::{Ticktock, TimerImpl};
use super::service;
use super::stats::{self, Summary};
use crate::error::CliError;

/// One implementation in one cell: all its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Workload of the cell.
    pub workload: Workload,
    /// Implementation name.
    pub implementation: &'static str,
    /// Batch size or timer count (with a variant for memory).
    pub parameter: String,
    /// Timed samples, in the workload's unit.
    pub samples: Vec<f64>,
    /// Early fires over every sample, warm-up included.
    pub early: u64,
    /// Timers that did not come out exactly once, over every sample, warm-up included.
    pub lost: u64,
    /// What the implementation's runner observed besides the measured values (e.g. the timer
    /// service's own counters), one sentence each.
    pub remarks: Vec<String>,
}

impl Cell {
    /// Median, min and max of the samples.
    pub fn summary(&self) -> Option<Summary> {
        stats::summarize(&self.samples)
    }
}

/// The implementation a workload's ratios are relative to and whose correctness is checked.
pub fn reference(workload: Workload) -> &'static str {
    if Workload::WHEEL.contains(&workload) {
        Ticktock::NAME
    } else {
        service::TICKTOCK
    }
}

/// Everything a run measured, cells in report order (ticktock first within a group).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    /// The cells.
    pub cells: Vec<Cell>,
}

impl Results {
    /// The cells of one workload.
    pub fn of(&self, workload: Workload) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(move |c| c.workload == workload)
    }

    /// The reference (ticktock) cell of `cell`'s row.
    pub fn reference_of(&self, cell: &Cell) -> Option<&Cell> {
        self.cells.iter().find(|c| {
            c.implementation == reference(cell.workload)
                && c.workload == cell.workload
                && c.parameter == cell.parameter
        })
    }

    /// Implementation median / ticktock median for the same workload and parameter: above 1
    /// means ticktock is faster (or smaller, or less late). `None` without a ticktock cell or
    /// when ticktock's median is not positive (an idle process measured at 0 % CPU).
    pub fn ratio_to_ticktock(&self, cell: &Cell) -> Option<f64> {
        let ticktock = self.reference_of(cell)?.summary()?.median;
        if ticktock <= 0.0 {
            return None;
        }
        Some(cell.summary()?.median / ticktock)
    }

    /// An error if ticktock fired a timer early or lost one anywhere.
    pub fn check_ticktock_correctness(&self) -> Result<(), CliError> {
        let failure = |cell: &Cell, detail: String| CliError::Correctness {
            implementation: cell.implementation,
            workload: cell.workload.name(),
            parameter: cell.parameter.clone(),
            detail,
        };
        for cell in self
            .cells
            .iter()
            .filter(|c| c.implementation == reference(c.workload))
        {
            if cell.early > 0 {
                return Err(failure(cell, format!("fired {} timers early", cell.early)));
            }
            if cell.lost > 0 {
                return Err(failure(
                    cell,
                    format!(
                        "lost {} timers (not fired or cancelled exactly once)",
                        cell.lost
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::peers::NexusPeer;

    #[test]
    fn a_lost_ticktock_timer_is_a_correctness_error() {
        let cell = Cell {
            workload: Workload::Expire,
            implementation: Ticktock::NAME,
            parameter: "32".into(),
            samples: vec![1.0],
            early: 0,
            lost: 2,
            remarks: Vec::new(),
        };
        let mut results = Results { cells: vec![cell] };
        let err = results
            .check_ticktock_correctness()
            .expect_err("lost timers");
        assert!(
            err.to_string().contains("ticktock-wheel lost 2 timers"),
            "{err}"
        );
        results.cells[0].lost = 0;
        results.cells[0].early = 1;
        let err = results.check_ticktock_correctness().expect_err("early");
        assert!(err.to_string().contains("fired 1 timers early"), "{err}");
        // A peer's failure is reported in the tables, not turned into ticktock's error.
        results.cells[0].implementation = NexusPeer::NAME;
        assert!(results.check_ticktock_correctness().is_ok());
        // In the service's workloads the reference is the ticktock service.
        results.cells[0].workload = Workload::Lateness;
        assert!(results.check_ticktock_correctness().is_ok());
        results.cells[0].implementation = service::TICKTOCK;
        let err = results.check_ticktock_correctness().expect_err("early");
        assert!(
            err.to_string().contains("ticktock fired 1 timers early"),
            "{err}"
        );
    }

    #[test]
    fn ratios_are_relative_to_the_workloads_reference() {
        let cell = |workload, implementation, median| Cell {
            workload,
            implementation,
            parameter: "p".into(),
            samples: vec![median],
            early: 0,
            lost: 0,
            remarks: Vec::new(),
        };
        let results = Results {
            cells: vec![
                cell(Workload::Rearm, service::TICKTOCK, 10.0),
                cell(Workload::Rearm, service::TOKIO_SLEEP, 25.0),
                cell(Workload::Idle, service::TICKTOCK, 0.0),
                cell(Workload::Idle, service::TOKIO_SLEEP, 1.0),
            ],
        };
        assert_eq!(results.ratio_to_ticktock(&results.cells[1]), Some(2.5));
        assert_eq!(results.ratio_to_ticktock(&results.cells[0]), Some(1.0));
        // A ticktock median of 0 gives no ratio rather than an infinite one.
        assert_eq!(results.ratio_to_ticktock(&results.cells[3]), None);
    }
}
