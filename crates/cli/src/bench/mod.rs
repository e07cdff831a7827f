//! The `bench` runner: what to measure ([`Config`]), in which order, and what came out
//! ([`Results`]).
//!
//! All implementations of a workload run in this one process on the same inputs. Within a cell
//! their samples are interleaved (sample 1 of each, then sample 2 of each, starting with a
//! different implementation each time), so a burst of noise on this small shared machine lands
//! on all of them rather than on whichever happened to be running; each reports the median of
//! its samples.
//!
//! The timer service's workloads run before the wheel's, whatever the report order: the
//! DelayQueue peer pauses a tokio clock, and once any tokio clock in a process has been paused,
//! tokio's `test-util` feature (which this crate needs for that) makes every later
//! `tokio::time::Instant::now()` look up the current runtime and lock its clock's mutex. The
//! service workloads read that clock on every operation, ticktock and tokio alike.

pub mod batch_paths;
mod config;
pub mod html;
mod inputs;
pub mod layers;
pub mod peers;
mod results;
pub mod service;
pub mod stats;
pub mod workloads;

use std::rc::Rc;
use std::sync::Arc;

use indicatif::ProgressBar;

pub use self::config::{Config, DEFAULT_SEED, Workload};
use self::inputs::{Picks, Pool};
use self::layers::{PerPacketSpec, UnifiedSpec};
pub use self::results::{Cell, Results, reference};
use self::service::{ArmSpec, IdleSpec, LatenessSpec, RearmOrder, RearmSpec};
use self::workloads::{EXPIRE_MAX_DELAY, Spec};
use crate::error::CliError;

/// A workload at one parameter, ready to run.
struct Case {
    workload: Workload,
    /// The parameter of each row the case fills (one, except for lateness's quantiles).
    rows: Vec<String>,
    spec: Spec,
}

impl Case {
    fn new(workload: Workload, parameter: String, spec: Spec) -> Self {
        Self {
            workload,
            rows: vec![parameter],
            spec,
        }
    }
}

/// Lays out every cell of the run, drawing the inputs from the seed.
fn plan(config: &Config) -> Vec<Case> {
    let mut cases = Vec::new();
    for &workload in &config.workloads {
        let salt = |param: usize| (workload as u64) << 40 | param as u64;
        let rng = |param| inputs::rng(config.seed, salt(param));
        match workload {
            Workload::Churn => cases.extend(config.churn_sizes.iter().map(|&batch| {
                let spec = Spec::Churn {
                    batch,
                    rounds: (config.churn_timers_per_sample / batch.max(1)).max(1),
                    delays: Rc::new(Pool::new(&mut rng(batch), 1..=10_000)),
                };
                Case::new(workload, batch.to_string(), spec)
            })),
            Workload::Expire => cases.extend(config.expire_sizes.iter().map(|&batch| {
                let spec = Spec::Expire {
                    batch,
                    rounds: (config.expire_timers_per_sample / batch.max(1)).max(1),
                    delays: Rc::new(Pool::new(&mut rng(batch), 1..=EXPIRE_MAX_DELAY)),
                };
                Case::new(workload, batch.to_string(), spec)
            })),
            Workload::Reset => {
                let live = config.reset_live.clamp(1, u32::MAX as usize);
                let mut rng = rng(live);
                let spec = Spec::Reset {
                    live,
                    resets: config.resets_per_sample,
                    delays: Rc::new(Pool::new(&mut rng, 1_000..=30_000)),
                    picks: Rc::new(Picks::new(&mut rng, live as u32, 1_000..=30_000)),
                };
                cases.push(Case::new(workload, live.to_string(), spec));
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
                    let spec = Spec::Memory {
                        timers,
                        presized,
                        delays: Rc::clone(&delays),
                    };
                    cases.push(Case::new(workload, format!("{timers} {variant}"), spec));
                }
            }
            Workload::Service => {
                // Delays of 1–10 s, in ms; every thread count reads the same pool.
                let delays = Arc::new(Pool::new(&mut rng(0), 1_000..=10_000));
                cases.extend(config.service_threads.iter().map(|&threads| {
                    let spec = Spec::Service(ArmSpec {
                        threads: threads.max(1),
                        ops_per_thread: config.service_ops_per_thread.max(1),
                        delays: Arc::clone(&delays),
                    });
                    Case::new(workload, ArmSpec::parameter(threads.max(1)), spec)
                }));
            }
            Workload::Rearm => {
                let connections = config.rearm_connections.clamp(1, u32::MAX as usize);
                let mut rng = rng(connections);
                for order in [
                    RearmOrder::RoundRobin,
                    RearmOrder::random(&mut rng, connections),
                ] {
                    let spec = RearmSpec {
                        connections,
                        rearms: config.rearms_per_sample,
                        order,
                    };
                    cases.push(Case::new(workload, spec.parameter(), Spec::Rearm(spec)));
                }
            }
            Workload::Lateness => {
                let timers = config.lateness_timers.max(1);
                let spec = LatenessSpec::new(
                    &mut rng(timers),
                    timers,
                    config.lateness_span,
                    config.lateness_lead,
                    config.lateness_tasks,
                );
                cases.push(Case {
                    workload,
                    rows: LatenessSpec::ROWS
                        .iter()
                        .map(|&row| row.to_owned())
                        .collect(),
                    spec: Spec::Lateness(spec),
                });
            }
            Workload::Idle => {
                let spec = IdleSpec {
                    timers: config.idle_timers,
                    wall: config.idle_wall,
                };
                cases.push(Case::new(
                    workload,
                    config.idle_timers.to_string(),
                    Spec::Idle(spec),
                ));
            }
            Workload::Unified => {
                let delays = Rc::new(Pool::new(&mut rng(0), 1_000..=10_000));
                for change in [false, true] {
                    let spec = UnifiedSpec {
                        queries: config.unified_queries.max(1),
                        change,
                        delays: Rc::clone(&delays),
                    };
                    cases.push(Case::new(workload, spec.parameter(), Spec::Unified(spec)));
                }
            }
            // Its own runner and table: `batch_paths`.
            Workload::Batch => {}
            Workload::PerPacket => {
                let spec = PerPacketSpec {
                    connections: config.per_packet_connections.max(1),
                    packets: config.per_packet_packets.max(1),
                };
                cases.push(Case::new(
                    workload,
                    spec.connections.to_string(),
                    Spec::PerPacket(spec),
                ));
            }
        }
    }
    // The wheel's workloads (which pause tokio clocks) last, see the module docs; the sort is
    // stable.
    cases.sort_by_key(|case| !case.workload.reads_tokio_clock());
    cases
}

/// Runs every cell of `config`, with a progress bar on stderr when `show_progress`.
pub fn run(config: &Config, show_progress: bool) -> Result<Results, CliError> {
    let cases = plan(config);
    let runs_per_case = |case: &Case| {
        case.spec.runner_count()
            * (case.spec.samples(config.samples) + usize::from(case.spec.wants_warm_up()))
    };
    let total: usize = cases.iter().map(runs_per_case).sum();
    let progress = crate::report::progress_bar(total, show_progress);
    let mut results = Results::default();
    for case in &cases {
        results
            .cells
            .extend(run_case(case, config.samples, &progress)?);
    }
    progress.finish_and_clear();
    // Back to report order: workloads as configured, cells of a workload as they ran.
    let position = |workload| config.workloads.iter().position(|&w| w == workload);
    results.cells.sort_by_key(|cell| position(cell.workload));
    Ok(results)
}

/// Runs one case: builds a runner per implementation, warms each up, then takes `samples`
/// rounds of one sample each, rotating which implementation goes first.
///
/// Cells come out grouped by row, implementations in runner order within each row.
fn run_case(case: &Case, samples: usize, progress: &ProgressBar) -> Result<Vec<Cell>, CliError> {
    let samples = case.spec.samples(samples);
    let mut runners = case.spec.runners()?;
    let count = runners.len();
    let rows = case.rows.len();
    debug_assert_eq!(rows, case.spec.rows());
    // cells[row * count + runner]
    let mut cells: Vec<Cell> = case
        .rows
        .iter()
        .flat_map(|parameter| {
            runners.iter().map(|runner| Cell {
                workload: case.workload,
                implementation: runner.name(),
                parameter: parameter.clone(),
                samples: Vec::with_capacity(samples),
                early: 0,
                lost: 0,
                remarks: Vec::new(),
            })
        })
        .collect();
    let warm_up = usize::from(case.spec.wants_warm_up());
    for round in 0..samples + warm_up {
        for offset in 0..count {
            let i = (round + offset) % count;
            progress.set_message(format!(
                "{} {} {}",
                case.workload.name(),
                case.rows.join("/"),
                runners[i].name()
            ));
            let sample = runners[i].sample()?;
            progress.inc(1);
            for (row, &value) in sample.values.iter().enumerate().take(rows) {
                let cell = &mut cells[row * count + i];
                cell.early += sample.early;
                cell.lost += sample.lost;
                if round >= warm_up {
                    cell.samples.push(value);
                }
            }
        }
    }
    for (i, runner) in runners.iter_mut().enumerate() {
        cells[i].remarks = runner.remarks();
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, Ticktock, TimerImpl};
    use crate::bench::service;

    #[test]
    fn every_workload_runs_for_all_four_with_counts_adding_up() {
        let mut config = Config::tiny(1);
        config.workloads = Workload::WHEEL.to_vec();
        let results = run(&config, false).expect("tiny run");
        let names = [
            Ticktock::NAME,
            LazyHeapPeer::NAME,
            NexusPeer::NAME,
            DelayQueuePeer::NAME,
        ];
        for workload in Workload::WHEEL {
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

    #[test]
    fn the_layer_workloads_run_and_check_their_answers() {
        let mut config = Config::tiny(3);
        config.workloads = Workload::LAYERS.to_vec();
        let results = run(&config, false).expect("tiny run");
        for workload in Workload::LAYERS {
            let cells: Vec<&Cell> = results.of(workload).collect();
            let (rows, names) = if workload == Workload::Unified {
                (2, UnifiedSpec::IMPLEMENTATIONS.len())
            } else {
                (1, PerPacketSpec::IMPLEMENTATIONS.len())
            };
            assert_eq!(cells.len(), names * rows, "{workload:?}");
            assert_eq!(cells[0].implementation, service::TICKTOCK);
            for cell in &cells {
                assert_eq!(cell.lost, 0, "{cell:?}");
                assert_eq!(cell.samples.len(), 1, "{cell:?}");
                assert!(cell.samples[0] > 0.0, "{cell:?}");
                assert!(results.ratio_to_ticktock(cell).is_some(), "{cell:?}");
            }
        }
        // Per packet, the registration only ever moved later: no wheel operation after setup.
        let per_packet = results
            .of(Workload::PerPacket)
            .find(|c| c.implementation == service::TICKTOCK)
            .expect("ticktock's per-packet cell");
        assert!(
            per_packet
                .remarks
                .iter()
                .any(|r| r.contains("armed 0, cancelled 0, reset 0")),
            "{:?}",
            per_packet.remarks
        );
        results
            .check_ticktock_correctness()
            .expect("ticktock is correct");
    }

    #[test]
    fn every_service_workload_runs_against_tokio_with_counts_adding_up() {
        // Tiny sizes on the real clock: lateness spans 50 ms, idle measures 50 ms per row.
        let mut config = Config::tiny(2);
        config.workloads = Workload::SERVICE.to_vec();
        assert!(config.lateness_span <= std::time::Duration::from_millis(100));
        assert!(config.idle_wall <= std::time::Duration::from_millis(100));
        let results = run(&config, false).expect("tiny run");
        // Cells come out in report order.
        let order: Vec<Workload> = results.cells.iter().map(|c| c.workload).collect();
        assert!(order.is_sorted_by_key(|w| config.workloads.iter().position(|x| x == w)));
        for workload in Workload::SERVICE {
            let cells: Vec<&Cell> = results.of(workload).collect();
            let (names, rows): (&[&str], usize) = match workload {
                Workload::Service => (&ArmSpec::IMPLEMENTATIONS, config.service_threads.len()),
                Workload::Rearm => (&RearmSpec::IMPLEMENTATIONS, 2),
                Workload::Lateness => (&LatenessSpec::IMPLEMENTATIONS, LatenessSpec::ROWS.len()),
                _ => (&IdleSpec::IMPLEMENTATIONS, 1),
            };
            assert_eq!(cells.len(), names.len() * rows, "{workload:?}");
            assert_eq!(cells[0].implementation, service::TICKTOCK);
            for &name in names {
                assert_eq!(
                    cells.iter().filter(|c| c.implementation == name).count(),
                    rows,
                    "{workload:?} {name}"
                );
            }
            for cell in &cells {
                // Every row of every implementation: each timer came out as it should.
                assert_eq!(cell.lost, 0, "{cell:?}");
                assert_eq!(cell.samples.len(), 1, "{cell:?}");
                assert!(cell.samples[0].is_finite(), "{cell:?}");
                if workload != Workload::Lateness {
                    assert!(cell.samples[0] >= 0.0, "{cell:?}");
                }
                if matches!(workload, Workload::Service | Workload::Rearm) {
                    assert!(cell.samples[0] > 0.0, "{cell:?}");
                    assert!(results.ratio_to_ticktock(cell).is_some(), "{cell:?}");
                }
            }
            // ticktock's runner reports what its service counted.
            assert!(
                cells
                    .iter()
                    .any(|c| c.implementation == service::TICKTOCK && !c.remarks.is_empty()),
                "{workload:?}"
            );
        }
        // Lateness: never early, and p50 ≤ p99 ≤ max.
        let ticktock: Vec<f64> = results
            .of(Workload::Lateness)
            .filter(|c| c.implementation == service::TICKTOCK)
            .map(|c| c.samples[0])
            .collect();
        assert!(ticktock.is_sorted(), "{ticktock:?}");
        assert!(ticktock[0] >= 0.0, "{ticktock:?}");
        // Rearm: every re-arm took the lock-free path (no wheel operation at all).
        for cell in results
            .of(Workload::Rearm)
            .filter(|c| c.implementation == service::TICKTOCK)
        {
            assert!(
                cell.remarks
                    .iter()
                    .any(|r| r.contains("armed 0, cancelled 0, reset 0")),
                "{:?}",
                cell.remarks
            );
        }
        results
            .check_ticktock_correctness()
            .expect("ticktock is correct");
    }
}
