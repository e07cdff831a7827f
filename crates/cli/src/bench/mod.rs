//! The `bench` runner: what to measure ([`Config`]), in which order, and what came out
//! ([`Results`]).
//!
//! All four implementations run in this one process on the same inputs. Within a cell their
//! samples are interleaved (sample 1 of each, then sample 2 of each, starting with a different
//! implementation each time), so a burst of noise on this small shared machine lands on all of
//! them rather than on whichever happened to be running; each reports the median of its samples.

mod config;
mod inputs;
pub mod peers;
mod results;
pub mod stats;
pub mod workloads;

use std::rc::Rc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use self::config::{Config, DEFAULT_SEED, Workload};
use self::inputs::{Picks, Pool};
pub use self::results::{Cell, Results};
use self::workloads::{EXPIRE_MAX_DELAY, Spec};
use crate::error::CliError;

/// A workload at one parameter, ready to run.
struct Case {
    workload: Workload,
    parameter: String,
    spec: Spec,
}

/// Lays out every cell of the run, drawing the inputs from the seed.
fn plan(config: &Config) -> Vec<Case> {
    let mut cases = Vec::new();
    for &workload in &config.workloads {
        let salt = |param: usize| (workload as u64) << 40 | param as u64;
        let rng = |param| inputs::rng(config.seed, salt(param));
        match workload {
            Workload::Churn => cases.extend(config.churn_sizes.iter().map(|&batch| Case {
                workload,
                parameter: batch.to_string(),
                spec: Spec::Churn {
                    batch,
                    rounds: (config.churn_timers_per_sample / batch.max(1)).max(1),
                    delays: Rc::new(Pool::new(&mut rng(batch), 1..=10_000)),
                },
            })),
            Workload::Expire => cases.extend(config.expire_sizes.iter().map(|&batch| Case {
                workload,
                parameter: batch.to_string(),
                spec: Spec::Expire {
                    batch,
                    rounds: (config.expire_timers_per_sample / batch.max(1)).max(1),
                    delays: Rc::new(Pool::new(&mut rng(batch), 1..=EXPIRE_MAX_DELAY)),
                },
            })),
            Workload::Reset => {
                let live = config.reset_live.clamp(1, u32::MAX as usize);
                let mut rng = rng(live);
                cases.push(Case {
                    workload,
                    parameter: live.to_string(),
                    spec: Spec::Reset {
                        live,
                        resets: config.resets_per_sample,
                        delays: Rc::new(Pool::new(&mut rng, 1_000..=30_000)),
                        picks: Rc::new(Picks::new(&mut rng, live as u32, 1_000..=30_000)),
                    },
                });
            }
            Workload::Memory => {
                let timers = config.memory_timers;
                let delays = Rc::new(Pool::new(&mut rng(timers), 1_000..=30_000));
                for presized in [true, false] {
                    let variant = if presized {
                        "with_capacity"
                    } else {
                        "from empty"
                    };
                    cases.push(Case {
                        workload,
                        parameter: format!("{timers} {variant}"),
                        spec: Spec::Memory {
                            timers,
                            presized,
                            delays: Rc::clone(&delays),
                        },
                    });
                }
            }
        }
    }
    cases
}

/// Runs every cell of `config`, with a progress bar on stderr when `show_progress`.
pub fn run(config: &Config, show_progress: bool) -> Result<Results, CliError> {
    let cases = plan(config);
    let runs_per_case = |case: &Case| 4 * (config.samples + usize::from(case.spec.wants_warm_up()));
    let total: usize = cases.iter().map(runs_per_case).sum();
    let target = if show_progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let progress = ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}") {
        progress.set_style(style.progress_chars("=> "));
    }
    let mut results = Results::default();
    for case in &cases {
        results
            .cells
            .extend(run_case(case, config.samples, &progress)?);
    }
    progress.finish_and_clear();
    Ok(results)
}

/// Runs one case: builds a runner per implementation, warms each up, then takes `samples`
/// rounds of one sample each, rotating which implementation goes first.
fn run_case(case: &Case, samples: usize, progress: &ProgressBar) -> Result<Vec<Cell>, CliError> {
    let mut runners = case.spec.runners()?;
    let mut cells: Vec<Cell> = runners
        .iter()
        .map(|runner| Cell {
            workload: case.workload,
            implementation: runner.name(),
            parameter: case.parameter.clone(),
            samples: Vec::with_capacity(samples),
            early: 0,
            lost: 0,
        })
        .collect();
    let count = runners.len();
    let warm_up = usize::from(case.spec.wants_warm_up());
    for round in 0..samples + warm_up {
        for offset in 0..count {
            let i = (round + offset) % count;
            progress.set_message(format!(
                "{} {} {}",
                case.workload.name(),
                case.parameter,
                cells[i].implementation
            ));
            let sample = runners[i].sample()?;
            progress.inc(1);
            let cell = &mut cells[i];
            cell.early += sample.early;
            cell.lost += sample.lost;
            if round >= warm_up {
                cell.samples.push(sample.value);
            }
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, Ticktock, TimerImpl};

    #[test]
    fn every_workload_runs_for_all_four_with_counts_adding_up() {
        let config = Config::tiny(1);
        let results = run(&config, false).expect("tiny run");
        let names = [
            Ticktock::NAME,
            LazyHeapPeer::NAME,
            NexusPeer::NAME,
            DelayQueuePeer::NAME,
        ];
        for workload in Workload::ALL {
            let cells: Vec<&Cell> = results.of(workload).collect();
            // Memory has two rows (presized and grown) per implementation.
            let rows = if workload == Workload::Memory { 2 } else { 1 };
            assert_eq!(cells.len(), 4 * rows, "{workload:?}");
            for name in names {
                assert!(cells.iter().any(|c| c.implementation == name), "{name}");
            }
            for cell in cells {
                assert_eq!(cell.early, 0, "{cell:?}");
                assert_eq!(cell.lost, 0, "{cell:?}");
                assert_eq!(cell.samples.len(), 1, "{cell:?}");
                assert!(cell.samples[0].is_finite() && cell.samples[0] >= 0.0);
                assert!(results.ratio_to_ticktock(cell).is_some(), "{cell:?}");
            }
        }
        results
            .check_ticktock_correctness()
            .expect("ticktock is correct");
    }
}
