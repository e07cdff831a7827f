//! Turns [`Results`] into what `ticktock bench` prints: markdown tables for people, or one JSON
//! array for scripts and CI.
//!
//! Each table also says, under it, whether ticktock met its targets there: for the wheel, at
//! least 1.5x the lazy-cancel binary heap (the structure it replaces) and the per-operation
//! budgets the project set for it; for the timer service, its budgets against tokio's timer
//! (scaling, speed, lateness, idle CPU). Those lines inform; only a correctness failure makes
//! the command fail.

use std::io::{self, Write};

use serde::Serialize;

use crate::bench::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, TimerImpl};
use crate::bench::service::{self, ArmSpec, LatenessSpec};
use crate::bench::{Cell, Config, Results, Workload, layers, reference};
use crate::error::CliError;

/// How much faster than the lazy-cancel heap ticktock-wheel has to be (heap median / ticktock
/// median).
const HEAP_RATIO_TARGET: f64 = 1.5;

/// Service: ticktock's throughput on the most worker threads / on the fewest.
const SCALING_TARGET: f64 = 1.6;

/// Service: tokio's timeout median / ticktock's median, in every row.
const TIMEOUT_RATIO_TARGET: f64 = 3.0;

/// Lateness: ticktock's p99, in µs.
const LATENESS_P99_BUDGET: f64 = 2000.0;

/// Idle: ticktock's CPU use, in %, strictly below.
const IDLE_CPU_BUDGET: f64 = 1.0;

/// One line of the JSON array.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    workload: &'static str,
    implementation: &'static str,
    parameter: &'a str,
    median: f64,
    min: f64,
    max: f64,
    unit: &'static str,
    samples: usize,
    ratio_to_ticktock: Option<f64>,
    early: u64,
    lost: u64,
    /// Service workload: operations per µs at the median (Mops/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput_mops: Option<f64>,
    /// What the runner observed besides the values.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    remarks: &'a [String],
}

/// Writes every cell as one JSON array.
pub fn write_json(out: &mut impl Write, results: &Results) -> Result<(), CliError> {
    let rows: Vec<JsonRow<'_>> = results
        .cells
        .iter()
        .filter_map(|cell| {
            let summary = cell.summary()?;
            Some(JsonRow {
                workload: cell.workload.name(),
                implementation: cell.implementation,
                parameter: &cell.parameter,
                median: summary.median,
                min: summary.min,
                max: summary.max,
                unit: cell.workload.unit(),
                samples: cell.samples.len(),
                ratio_to_ticktock: results.ratio_to_ticktock(cell),
                early: cell.early,
                lost: cell.lost,
                throughput_mops: throughput(cell),
                remarks: &cell.remarks,
            })
        })
        .collect();
    // Encode first, then write: a closed pipe (`| head`) then surfaces as an I/O error, which
    // `main` treats as a reader that has seen enough.
    let text = serde_json::to_string_pretty(&rows)?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Millions of operations per second at the cell's median, for the service workload.
fn throughput(cell: &Cell) -> Option<f64> {
    if cell.workload != Workload::Service {
        return None;
    }
    let median = cell.summary()?.median;
    (median > 0.0).then(|| 1000.0 / median)
}

/// Writes the header line and one markdown table (with notes) per workload that ran.
pub fn write_markdown(
    out: &mut impl Write,
    config: &Config,
    results: &Results,
) -> Result<(), CliError> {
    writeln!(
        out,
        "ticktock bench · machine: {} · seed {} · {} samples per cell",
        machine(),
        config.seed,
        config.samples
    )?;
    for &workload in &config.workloads {
        if results.of(workload).next().is_some() {
            writeln!(out)?;
            write_table(out, config, results, workload)?;
        }
    }
    Ok(())
}

/// A column some tables have after the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Early,
    Lost,
    Mops,
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Self::Early => "early",
            Self::Lost => "lost",
            Self::Mops => "Mops/s",
        }
    }

    fn value(self, cell: &Cell) -> String {
        match self {
            Self::Early => cell.early.to_string(),
            Self::Lost => cell.lost.to_string(),
            Self::Mops => throughput(cell).map_or_else(|| "-".to_owned(), |t| format!("{t:.2}")),
        }
    }
}

fn columns(workload: Workload) -> &'static [Column] {
    match workload {
        Workload::Expire | Workload::Lateness => &[Column::Early, Column::Lost],
        Workload::Service => &[Column::Mops],
        _ => &[],
    }
}

fn write_table(
    out: &mut impl Write,
    config: &Config,
    results: &Results,
    workload: Workload,
) -> io::Result<()> {
    writeln!(out, "## {}\n", title(config, workload))?;
    let head = table_head(workload);
    writeln!(out, "| {} |", head.join(" | "))?;
    writeln!(out, "|---|{}", "---:|".repeat(head.len() - 1))?;
    for cell in results.of(workload) {
        if let Some(cells) = table_cells(results, cell) {
            writeln!(out, "| {} |", cells.join(" | "))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", unit_line(workload))?;
    for line in footnotes(config, results, workload) {
        writeln!(out, "- {line}")?;
    }
    Ok(())
}

/// The column titles of a workload's table (markdown and HTML).
pub(crate) fn table_head(workload: Workload) -> Vec<String> {
    let fixed = ["implementation", parameter_header(workload)]
        .into_iter()
        .chain(["median", "min", "max", "ratio"]);
    let extra = columns(workload).iter().map(|column| column.header());
    fixed.chain(extra).map(str::to_owned).collect()
}

/// One row of a workload's table, under [`table_head`]; `None` for a cell without samples.
pub(crate) fn table_cells(results: &Results, cell: &Cell) -> Option<Vec<String>> {
    let s = cell.summary()?;
    let decimals = cell.workload.decimals();
    let ratio = results
        .ratio_to_ticktock(cell)
        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
    let mut cells = vec![
        cell.implementation.to_owned(),
        cell.parameter.clone(),
        format!("{:.decimals$}", s.median),
        format!("{:.decimals$}", s.min),
        format!("{:.decimals$}", s.max),
        ratio,
    ];
    cells.extend(
        columns(cell.workload)
            .iter()
            .map(|column| column.value(cell)),
    );
    Some(cells)
}

/// What a workload's values are and how its ratio reads.
pub(crate) fn unit_line(workload: Workload) -> String {
    let ticktock = reference(workload);
    format!(
        "Values in {}; ratio = implementation median / {ticktock} median \
         (above 1: {ticktock} is {}).",
        workload.unit(),
        match workload {
            Workload::Lateness => "less late",
            Workload::Idle => "more frugal",
            _ => "faster or smaller",
        }
    )
}

/// The lines under a workload's table: how it was measured, whether ticktock met its targets,
/// what the runners remarked, and a warning for each implementation that fired early or lost
/// timers.
pub(crate) fn footnotes(config: &Config, results: &Results, workload: Workload) -> Vec<String> {
    let mut lines = notes(config, workload);
    lines.extend(target_lines(config, results, workload));
    for cell in results.of(workload) {
        for remark in &cell.remarks {
            if workload == Workload::Lateness {
                lines.push(format!("{}: {remark}", cell.implementation));
            } else {
                lines.push(format!(
                    "{} ({}): {remark}",
                    cell.implementation, cell.parameter
                ));
            }
        }
    }
    // Lateness's rows all come from the same timers: warn once per implementation.
    let warned = |c: &&Cell| {
        (c.early > 0 || c.lost > 0)
            && (workload != Workload::Lateness || c.parameter == LatenessSpec::ROWS[0])
    };
    for cell in results.of(workload).filter(warned) {
        lines.push(format!(
            "WARNING: {} at {} fired {} timers early and lost {} (did not come out exactly once)",
            cell.implementation, cell.parameter, cell.early, cell.lost
        ));
    }
    lines
}

/// The heading of a workload's table: what it measures, how much, in which unit.
pub(crate) fn title(config: &Config, workload: Workload) -> String {
    match workload {
        Workload::Churn => format!(
            "churn: insert B timers (1 ms–10 s ahead), then cancel all B; \
             {} timers per sample; ns per timer (one insert + one cancel)",
            config.churn_timers_per_sample
        ),
        Workload::Expire => format!(
            "expire: insert B timers (1–1000 ms ahead), step time 1 ms at a time until all fired; \
             ≥ {} timers per sample; ns per timer",
            config.expire_timers_per_sample
        ),
        Workload::Reset => format!(
            "reset: {} live timers, {} resets per sample, each to now + 1–30 s; ns per reset",
            config.reset_live, config.resets_per_sample
        ),
        Workload::Memory => format!(
            "memory: heap bytes per live timer at {} timers (counting global allocator)",
            config.memory_timers
        ),
        Workload::Service => format!(
            "service: arm + cancel from tasks (create a sleep 1–10 s ahead, poll it once, drop \
             it); {} ops per worker thread per sample; ns per op (wall time / ops of all threads)",
            config.service_ops_per_thread
        ),
        Workload::Rearm => format!(
            "rearm: {} connections with a 30 s idle timeout; {} re-arms per sample, each pushing \
             one connection's idle timeout to now + 30 s; ns per re-arm",
            config.rearm_connections, config.rearms_per_sample
        ),
        Workload::Lateness => format!(
            "lateness: {} live timers, deadlines uniform over {:?} of real time; µs from \
             deadline to the awaiting task running (1 sample)",
            config.lateness_timers, config.lateness_span
        ),
        Workload::Idle => format!(
            "idle: process CPU over {:?} of wall time with {} timers pending an hour away \
             (1 sample)",
            config.idle_wall, config.idle_timers
        ),
        Workload::Unified => format!(
            "unified: the combined deadline of 4 timeout layers (timing, reliability, 2 user \
             layers); {} queries per sample; ns per query (with the change, if any)",
            config.unified_queries
        ),
        Workload::PerPacket => format!(
            "per-packet: {} reliable connections (timing + reliability layers); {} packets per \
             sample, each a frame sent, its ack and a packet received, then the connection \
             waits again; ns per packet",
            config.per_packet_connections, config.per_packet_packets
        ),
        Workload::Batch => "batch paths (see `bench::batch_paths`)".to_owned(),
    }
}

fn parameter_header(workload: Workload) -> &'static str {
    match workload {
        Workload::Churn | Workload::Expire => "B",
        Workload::Reset => "live timers",
        Workload::Memory | Workload::Idle => "timers",
        Workload::Service => "threads",
        Workload::Rearm => "connections",
        Workload::Lateness => "quantile",
        Workload::Unified => "case",
        Workload::PerPacket => "connections",
        Workload::Batch => "B",
    }
}

fn notes(config: &Config, workload: Workload) -> Vec<String> {
    let dq = DelayQueuePeer::NAME;
    let nexus = NexusPeer::NAME;
    let heap = LazyHeapPeer::NAME;
    let ticktock = service::TICKTOCK;
    let sleep = service::TOKIO_SLEEP;
    let timeout = service::TOKIO_TIMEOUT;
    match workload {
        Workload::Churn => vec![
            format!(
                "{dq} runs on a paused current-thread tokio runtime (`insert_at`, `try_remove`)."
            ),
            format!("{heap}: cancel marks the entry dead; the heap is compacted with `retain` once dead entries outnumber live ones."),
        ],
        Workload::Expire => vec![
            format!(
                "{dq}'s time includes tokio's clock stepping: each 1 ms step is \
                 `tokio::time::advance` on a paused clock inside `Runtime::block_on`, which turns \
                 the time driver, then `poll_expired` until it is pending."
            ),
            format!("{nexus} inserts with `schedule_forget` and advances with `poll_and_rebalance`; the others insert normally and drop the key."),
            "early = timers returned at a tick before their deadline (must be 0); lost = timers that did not fire exactly once (must be 0).".to_owned(),
        ],
        Workload::Reset => vec![
            format!("{nexus} has a native reset, `reschedule(handle, deadline)`, which is what runs here."),
            format!("{dq} uses `reset(&key, Duration)`, relative to tokio's (paused) clock, which reads that clock each call."),
            format!("{heap}: a reset marks the old entry dead and pushes a new one (compacted with `retain` once dead entries outnumber live ones)."),
        ],
        Workload::Memory => vec![
            "bytes = heap bytes the structure holds with the timers in it, less what the same structure holds empty (its fixed part, e.g. ticktock-wheel's 6.5 KiB of slot-list sentinels), divided by the timer count (counted by a global allocator, on the measuring thread only); inline sizes and the caller's keys (8 bytes each for every implementation) are not included.".to_owned(),
            format!("with_capacity: `TimerWheel::with_capacity`, `DelayQueue::with_capacity`, `BinaryHeap`/`Vec::with_capacity` for {heap}, and for {nexus} a slab chunk of that many entries; from empty: no hint ({nexus}: chunks of 4096)."),
            format!("{dq}: the tokio runtime's own allocations are not counted."),
        ],
        Workload::Service => vec![
            format!("{ticktock}: `TimerHandle::sleep(d)` on a process-long service like `ticktock::global()` (`start_static`, system clock, one shard per worker, 1 ms ticks); {sleep}: `tokio::time::sleep(d)` pinned on the stack (`pin!`); {timeout}: `tokio::time::timeout(d, pending())`, likewise. Each is polled once with `Waker::noop()` (which registers it) and dropped (which cancels it)."),
            "A multi-thread tokio runtime with that many workers, one task per worker; the tasks meet at a spinning rendezvous, then loop without yielding (so neither timer's driver runs during a sample). Mops/s = 1000 / median ns per op.".to_owned(),
            "Run before any tokio clock in the process is paused: tokio's `test-util` feature (on in this binary for the DelayQueue peer) makes every later clock read lock the runtime's clock.".to_owned(),
        ],
        Workload::Rearm => vec![
            format!("{ticktock}: `ConnectionTimers::reset_idle_timeout_at(now, &config)` on a 1-shard service; a later deadline is an atomic store, and the driver re-files the wheel entry when its old deadline comes up."),
            format!("{sleep}: `Sleep::reset(now + 30 s)` on one registered `Pin<Box<tokio::time::Sleep>>` per connection (quinn's per-packet path); tokio too moves a registered timer later with an atomic compare-and-swap, without its driver's lock."),
            "now starts at the runner's creation and advances 1 µs per packet, so every re-arm moves a deadline later. round-robin: packet i goes to connection i mod N; random: to a seeded uniform pick. Current-thread runtime, real clock. After each sample every connection's deadline is checked against its last packet (a mismatch counts as lost).".to_owned(),
        ],
        Workload::Lateness => vec![
            format!("{ticktock}: `TimerHandle::sleep_until` on a 2-shard service with 1 ms ticks; {sleep}: `Box::pin(tokio::time::sleep_until(deadline))` (tokio's timer also has 1 ms ticks). A multi-thread runtime with 2 workers."),
            format!("{} tasks each create their share of the timers, poll each once (all registered at once, {:?} before the span starts), then await them in deadline order, taking `Instant::now() - deadline` as each resolves: tick rounding + driver delay + task scheduling. early = negative values (must be 0 for {ticktock}).", config.lateness_tasks.min(config.lateness_timers.max(1)), config.lateness_lead),
            "Rows are exact nearest-rank quantiles over every timer.".to_owned(),
        ],
        Workload::Idle => vec![
            "CPU time of the whole process (every thread, user + system: /proc/self/task/*/schedstat in ns, or /proc/self/stat's utime + stime in 10 ms ticks where schedstat is missing) over the measured wall time, while the only task sleeps on tokio's timer. A multi-thread runtime with 2 workers.".to_owned(),
            format!("{ticktock}: `TimerHandle::sleep(1 h)` on a 2-shard service; {sleep}: `Box::pin(tokio::time::sleep(1 h))`; each polled once with `Waker::noop()` and kept. {}: the same runtime with no timers, the floor.", service::NO_TIMERS),
        ],
        Workload::Unified => vec![
            format!("{ticktock}: `UnifiedScheduler::calculate_unified_deadline()`, a cached minimum kept exact by the layer guards (changes go through `layer_mut`); {}: the same four layers in a `Vec<Box<dyn TimeoutLayer>>`, every layer's `next_deadline()` asked on each query (a scheduler without the cache; the seed's took 1.6 µs with its time cache, 34 µs without).", layers::RECOMPUTE),
            "change + query: before each query one layer changes (a packet received by the timing layer, or a user layer's deadline moved to now + 1–10 s), with now advancing 1 µs per query. After each sample the answer is checked against every layer's deadline (a mismatch counts as lost).".to_owned(),
        ],
        Workload::PerPacket => vec![
            format!("{ticktock}: `LayeredTimeouts` per connection (one registration on a 1-shard service), each layer change through `layer_mut`, then `poll_timeouts` with `Waker::noop()` as a select loop would; {sleep}: the same layers with one registered `Pin<Box<tokio::time::Sleep>>` per connection, reset to the earliest layer deadline when it moved and polled (quinn's way); {}: the same layer calls with no timer at all, so implementation − {} is the timer work proper.", layers::LAYERS_ONLY, layers::LAYERS_ONLY),
            "Per packet: `on_frame_sent`, `on_ack` for it (the RTO timer starts and stops), `on_packet_received` (the idle timeout moves 30 s past the packet); packets round-robin, now advancing 1 µs per packet. Current-thread runtime, real clock. After each sample every connection's wait is checked against its last packet (a mismatch counts as lost).".to_owned(),
        ],
        Workload::Batch => Vec::new(),
    }
}

/// The target and budget lines of a workload.
fn target_lines(config: &Config, results: &Results, workload: Workload) -> Vec<String> {
    match workload {
        Workload::Churn | Workload::Expire | Workload::Reset => vec![
            heap_target_line(results, workload),
            ceiling_line(results, workload, budget(workload), |_| true),
        ],
        Workload::Memory => vec![ceiling_line(results, workload, budget(workload), |_| true)],
        Workload::Service => vec![
            scaling_line(config, results),
            floor_ratio_line(
                results,
                workload,
                service::TOKIO_TIMEOUT,
                TIMEOUT_RATIO_TARGET,
            ),
        ],
        Workload::Rearm => vec![ceiling_line(results, workload, budget(workload), |_| true)],
        Workload::Lateness => vec![
            ceiling_line(results, workload, LATENESS_P99_BUDGET, |c| {
                c.parameter == LatenessSpec::ROWS[1]
            }),
            early_line(results, workload),
        ],
        Workload::Idle => vec![idle_line(results)],
        Workload::Unified => vec![ceiling_line(results, workload, budget(workload), |_| true)],
        Workload::PerPacket => vec![
            ceiling_line(results, workload, budget(workload), |_| true),
            timer_work_line(results),
        ],
        Workload::Batch => Vec::new(),
    }
}

/// Per-packet: each implementation's median less the layers-only median, the timer work
/// proper.
fn timer_work_line(results: &Results) -> String {
    let median = |name: &str| {
        results
            .of(Workload::PerPacket)
            .find(|c| c.implementation == name)
            .and_then(|c| c.summary())
            .map(|s| s.median)
    };
    let Some(floor) = median(layers::LAYERS_ONLY) else {
        return "timer work: no layers-only row.".to_owned();
    };
    let parts: Vec<String> = [service::TICKTOCK, service::TOKIO_SLEEP]
        .into_iter()
        .filter_map(|name| Some(format!("{name} {:.1}", median(name)? - floor)))
        .collect();
    format!(
        "timer work per packet (median − {} median {floor:.1}): {} ns.",
        layers::LAYERS_ONLY,
        parts.join(", ")
    )
}

/// Whether ticktock-wheel beat the lazy-cancel heap by the target factor in every row.
fn heap_target_line(results: &Results, workload: Workload) -> String {
    floor_ratio_line(results, workload, LazyHeapPeer::NAME, HEAP_RATIO_TARGET)
}

/// Whether `peer`'s median / ticktock's was at least `target` in every row.
fn floor_ratio_line(results: &Results, workload: Workload, peer: &str, target: f64) -> String {
    let ticktock = reference(workload);
    let misses: Vec<String> = results
        .of(workload)
        .filter(|c| c.implementation == peer)
        .filter_map(|c| {
            let ratio = results.ratio_to_ticktock(c)?;
            (ratio < target).then(|| format!("{} ({ratio:.2})", c.parameter))
        })
        .collect();
    if misses.is_empty() {
        format!("target {peer} / {ticktock} ≥ {target}: met in every row.")
    } else {
        format!(
            "target {peer} / {ticktock} ≥ {target}: MISSED at {}.",
            misses.join(", ")
        )
    }
}

/// ticktock's per-operation budget for a workload, in its unit.
fn budget(workload: Workload) -> f64 {
    match workload {
        Workload::Churn => 15.0,
        Workload::Expire => 30.0,
        Workload::Reset | Workload::Rearm | Workload::Unified => 20.0,
        Workload::PerPacket => 50.0,
        Workload::Batch => f64::INFINITY,
        Workload::Memory => 32.0,
        Workload::Service => f64::INFINITY,
        Workload::Lateness => LATENESS_P99_BUDGET,
        Workload::Idle => IDLE_CPU_BUDGET,
    }
}

/// Whether ticktock's median stayed within `limit` in every row `rows` picks.
fn ceiling_line(
    results: &Results,
    workload: Workload,
    limit: f64,
    rows: impl Fn(&Cell) -> bool,
) -> String {
    let ticktock = reference(workload);
    let picked: Vec<&Cell> = results
        .of(workload)
        .filter(|c| c.implementation == ticktock && rows(c))
        .collect();
    let over: Vec<String> = picked
        .iter()
        .filter_map(|c| {
            let median = c.summary()?.median;
            (median > limit).then(|| format!("{} ({median:.1})", c.parameter))
        })
        .collect();
    let unit = workload.unit();
    let what = if workload == Workload::Lateness {
        format!("{ticktock} {}", LatenessSpec::ROWS[1])
    } else {
        ticktock.to_owned()
    };
    if over.is_empty() {
        format!("budget {what} ≤ {limit} {unit}: met in every row.")
    } else {
        format!(
            "budget {what} ≤ {limit} {unit}: OVER at {}.",
            over.join(", ")
        )
    }
}

/// Service: each implementation's throughput on the most workers / on the fewest, with
/// ticktock's judged against [`SCALING_TARGET`].
fn scaling_line(config: &Config, results: &Results) -> String {
    let (Some(&fewest), Some(&most)) = (
        config.service_threads.iter().min(),
        config.service_threads.iter().max(),
    ) else {
        return "scaling: no rows.".to_owned();
    };
    let label = format!(
        "scaling (throughput on {} / on {})",
        ArmSpec::parameter(most),
        ArmSpec::parameter(fewest)
    );
    if fewest == most {
        return format!("{label}: needs two thread counts.");
    }
    let median = |implementation: &str, threads: usize| {
        results
            .of(Workload::Service)
            .find(|c| {
                c.implementation == implementation && c.parameter == ArmSpec::parameter(threads)
            })
            .and_then(Cell::summary)
            .map(|s| s.median)
    };
    let mut parts = Vec::new();
    let mut verdict = "no ticktock rows".to_owned();
    for implementation in ArmSpec::IMPLEMENTATIONS {
        let (Some(few), Some(many)) =
            (median(implementation, fewest), median(implementation, most))
        else {
            continue;
        };
        // ns per op is wall time / all ops, so throughput ratio = ns(fewest) / ns(most).
        let scaling = few / many;
        parts.push(format!("{implementation} {scaling:.2}×"));
        if implementation == service::TICKTOCK {
            verdict = if scaling >= SCALING_TARGET {
                format!("target {} ≥ {SCALING_TARGET}×: met", service::TICKTOCK)
            } else {
                format!("target {} ≥ {SCALING_TARGET}×: MISSED", service::TICKTOCK)
            };
        }
    }
    format!("{label}: {}; {verdict}.", parts.join(", "))
}

/// Lateness: ticktock fired nothing early.
fn early_line(results: &Results, workload: Workload) -> String {
    let ticktock = reference(workload);
    let early: u64 = results
        .of(workload)
        .filter(|c| c.implementation == ticktock && c.parameter == LatenessSpec::ROWS[0])
        .map(|c| c.early)
        .sum();
    if early == 0 {
        format!("budget {ticktock} early fires = 0: met.")
    } else {
        format!("budget {ticktock} early fires = 0: MISSED ({early} early).")
    }
}

/// Idle: ticktock's CPU use stayed below [`IDLE_CPU_BUDGET`].
fn idle_line(results: &Results) -> String {
    let ticktock = reference(Workload::Idle);
    let over: Vec<String> = results
        .of(Workload::Idle)
        .filter(|c| c.implementation == ticktock)
        .filter_map(|c| {
            let median = c.summary()?.median;
            (median >= IDLE_CPU_BUDGET).then(|| format!("{} ({median:.3} %)", c.parameter))
        })
        .collect();
    if over.is_empty() {
        format!("budget {ticktock} < {IDLE_CPU_BUDGET} % CPU: met in every row.")
    } else {
        format!(
            "budget {ticktock} < {IDLE_CPU_BUDGET} % CPU: OVER at {}.",
            over.join(", ")
        )
    }
}

/// "CPU model (N cores)", from /proc/cpuinfo where it is readable.
/// A progress bar of `len` steps on stderr, or a hidden one when `show` is false (JSON output,
/// or stderr not a terminal): the bench, batch-path and batch commands all show the same one.
pub(crate) fn progress_bar(len: usize, show: bool) -> indicatif::ProgressBar {
    let target = if show {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let progress = indicatif::ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
    {
        progress.set_style(style.progress_chars("=> "));
    }
    progress
}

pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{model} ({cores} cores)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Cell;
    use crate::bench::peers::Ticktock;

    fn results() -> Results {
        let cell = |implementation, median: f64| Cell {
            workload: Workload::Churn,
            implementation,
            parameter: "32".into(),
            samples: vec![median, median + 1.0, median - 1.0],
            early: 0,
            lost: 0,
            remarks: Vec::new(),
        };
        Results {
            cells: vec![
                cell(Ticktock::NAME, 10.0),
                cell(LazyHeapPeer::NAME, 20.0),
                cell(NexusPeer::NAME, 12.0),
                cell(DelayQueuePeer::NAME, 50.0),
            ],
        }
    }

    #[test]
    fn json_has_every_cell_with_ratios() {
        let mut out = Vec::new();
        write_json(&mut out, &results()).expect("json");
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1]["implementation"], LazyHeapPeer::NAME);
        assert_eq!(rows[1]["ratio_to_ticktock"], 2.0);
        assert_eq!(rows[0]["median"], 10.0);
        assert_eq!(rows[0]["samples"], 3);
        assert_eq!(rows[0]["unit"], "ns/timer");
    }

    #[test]
    fn markdown_has_a_header_a_table_and_target_lines() {
        let mut config = Config::quick(5);
        config.workloads = vec![Workload::Churn];
        let mut out = Vec::new();
        write_markdown(&mut out, &config, &results()).expect("markdown");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("ticktock bench · machine: "));
        assert!(text.contains("seed 5"));
        assert!(text.contains("| lazy-heap | 32 | 20.0 | 19.0 | 21.0 | 2.00 |"));
        assert!(text.contains("≥ 1.5: met in every row"));
        assert!(text.contains("≤ 15 ns/timer: met in every row"));
    }

    fn service_cell(
        workload: Workload,
        implementation: &'static str,
        parameter: &str,
        value: f64,
    ) -> Cell {
        Cell {
            workload,
            implementation,
            parameter: parameter.into(),
            samples: vec![value],
            early: 0,
            lost: 0,
            remarks: Vec::new(),
        }
    }

    fn markdown(workloads: &[Workload], results: &Results) -> String {
        let mut config = Config::quick(5);
        config.workloads = workloads.to_vec();
        let mut out = Vec::new();
        write_markdown(&mut out, &config, results).expect("markdown");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn service_table_has_throughput_scaling_and_the_timeout_target() {
        use service::{TICKTOCK, TOKIO_SLEEP, TOKIO_TIMEOUT};
        let s = Workload::Service;
        let mut results = Results {
            cells: vec![
                service_cell(s, TICKTOCK, "1 worker", 40.0),
                service_cell(s, TOKIO_SLEEP, "1 worker", 100.0),
                service_cell(s, TOKIO_TIMEOUT, "1 worker", 130.0),
                service_cell(s, TICKTOCK, "2 workers", 20.0),
                service_cell(s, TOKIO_SLEEP, "2 workers", 80.0),
                service_cell(s, TOKIO_TIMEOUT, "2 workers", 50.0),
            ],
        };
        results.cells[0].remarks.push("driver woke 3 times".into());
        let text = markdown(&[s], &results);
        assert!(
            text.contains("| implementation | threads | median | min | max | ratio | Mops/s |")
        );
        assert!(text.contains("| ticktock | 1 worker | 40.0 | 40.0 | 40.0 | 1.00 | 25.00 |"));
        assert!(
            text.contains("| tokio-timeout | 1 worker | 130.0 | 130.0 | 130.0 | 3.25 | 7.69 |")
        );
        assert!(text.contains("ticktock 2.00×, tokio-sleep 1.25×, tokio-timeout 2.60×; target ticktock ≥ 1.6×: met."), "{text}");
        assert!(
            text.contains("target tokio-timeout / ticktock ≥ 3: MISSED at 2 workers (2.50)."),
            "{text}"
        );
        assert!(text.contains("- ticktock (1 worker): driver woke 3 times"));
        let mut out = Vec::new();
        write_json(&mut out, &results).expect("json");
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(rows[0]["throughput_mops"], 25.0);
        assert_eq!(rows[0]["unit"], "ns/op");
        assert_eq!(rows[0]["remarks"][0], "driver woke 3 times");
        assert!(rows[1].get("remarks").is_none());
    }

    #[test]
    fn lateness_and_idle_tables_judge_their_budgets() {
        use service::{NO_TIMERS, TICKTOCK, TOKIO_SLEEP};
        let l = Workload::Lateness;
        let i = Workload::Idle;
        let mut results = Results {
            cells: vec![
                service_cell(l, TICKTOCK, "p50", 900.0),
                service_cell(l, TOKIO_SLEEP, "p50", 1000.0),
                service_cell(l, TICKTOCK, "p99", 2500.0),
                service_cell(l, TOKIO_SLEEP, "p99", 2000.0),
                service_cell(l, TICKTOCK, "max", 4000.0),
                service_cell(l, TOKIO_SLEEP, "max", 5000.0),
                service_cell(i, TICKTOCK, "1000", 0.02),
                service_cell(i, TOKIO_SLEEP, "1000", 0.04),
                service_cell(i, NO_TIMERS, "1000", 0.01),
            ],
        };
        let text = markdown(&[l, i], &results);
        assert!(text.contains("| ticktock | p99 | 2500.0 | 2500.0 | 2500.0 | 1.00 | 0 | 0 |"));
        assert!(
            text.contains("budget ticktock p99 ≤ 2000 µs late: OVER at p99 (2500.0)."),
            "{text}"
        );
        assert!(text.contains("budget ticktock early fires = 0: met."));
        assert!(
            text.contains("| tokio-sleep | 1000 | 0.040 | 0.040 | 0.040 | 2.00 |"),
            "{text}"
        );
        assert!(text.contains("budget ticktock < 1 % CPU: met in every row."));
        assert!(!text.contains("WARNING"));
        for cell in &mut results.cells {
            if cell.workload == l && cell.implementation == TICKTOCK {
                cell.early = 2;
            }
        }
        results.cells[6].samples = vec![1.5];
        let text = markdown(&[l, i], &results);
        assert!(
            text.contains("budget ticktock early fires = 0: MISSED (2 early)."),
            "{text}"
        );
        // One warning for the three rows of the same timers.
        assert_eq!(text.matches("WARNING: ticktock").count(), 1, "{text}");
        assert!(
            text.contains("budget ticktock < 1 % CPU: OVER at 1000 (1.500 %)."),
            "{text}"
        );
    }
}
