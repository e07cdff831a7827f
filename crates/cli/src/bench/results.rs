//! What a run measured: every sample of every cell, and the two judgements drawn from them
//! (ratio to ticktock-wheel, and whether ticktock-wheel stayed correct).

use super::Workload;
use super::peers::{Ticktock, TimerImpl};
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
}

impl Cell {
    /// Median, min and max of the samples.
    pub fn summary(&self) -> Option<Summary> {
        stats::summarize(&self.samples)
    }
}

/// Everything a run measured, cells in report order (ticktock-wheel first within a group).
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

    /// Peer median / ticktock-wheel median for the same workload and parameter: above 1 means
    /// ticktock-wheel is faster (or smaller).
    pub fn ratio_to_ticktock(&self, cell: &Cell) -> Option<f64> {
        let ticktock = self.cells.iter().find(|c| {
            c.implementation == Ticktock::NAME
                && c.workload == cell.workload
                && c.parameter == cell.parameter
        })?;
        Some(cell.summary()?.median / ticktock.summary()?.median)
    }

    /// An error if ticktock-wheel fired a timer early or lost one anywhere.
    pub fn check_ticktock_correctness(&self) -> Result<(), CliError> {
        let failure = |cell: &Cell, detail: String| CliError::Correctness {
            workload: cell.workload.name(),
            parameter: cell.parameter.clone(),
            detail,
        };
        for cell in self
            .cells
            .iter()
            .filter(|c| c.implementation == Ticktock::NAME)
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
        };
        let mut results = Results { cells: vec![cell] };
        let err = results
            .check_ticktock_correctness()
            .expect_err("lost timers");
        assert!(err.to_string().contains("lost 2 timers"), "{err}");
        results.cells[0].lost = 0;
        results.cells[0].early = 1;
        let err = results.check_ticktock_correctness().expect_err("early");
        assert!(err.to_string().contains("fired 1 timers early"), "{err}");
        // A peer's failure is reported in the tables, not turned into ticktock's error.
        results.cells[0].implementation = NexusPeer::NAME;
        assert!(results.check_ticktock_correctness().is_ok());
    }
}
