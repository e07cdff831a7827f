//! Turns the rows of a `batch` run into what `ticktock batch` prints: a markdown table per
//! scenario and the comparison with seed 004, or one JSON object for scripts and CI.

use std::io::Write;

use serde::Serialize;

use super::compare::{self, Check, thousands};
use super::handler::{Cost, FIXED_COST};
use super::results::{Latency, Row};
use super::{Config, Load, Scenario, problems};
use crate::error::CliError;

/// One row of the JSON report.
#[derive(Debug, Serialize)]
struct JsonRow {
    scenario: &'static str,
    handler: String,
    load: String,
    callers: Option<usize>,
    offered_rate: Option<u64>,
    /// Open loop: the arrival rate the pacer achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    arrival_rate: Option<f64>,
    requests: u64,
    served: u64,
    seconds: f64,
    throughput: f64,
    /// Client side, µs: `Instant` around each call.
    latency_us: Latency,
    /// The batcher's, µs: admission to response.
    batcher_latency_us: Latency,
    /// Lone request: latency less handler time, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead_us: Option<Latency>,
    handler_us: Latency,
    batches: u64,
    batch_mean: f64,
    batch_p50: f64,
    batch_max: u64,
    fill_mean: f64,
    fill_max: f64,
    queue_depth_max: u64,
    queue_capacity: u64,
    rejected: u64,
    timed_out: u64,
    misrouted: u64,
    unfinished: u64,
    problems: Vec<String>,
}

impl JsonRow {
    fn of(row: &Row) -> Self {
        let tally = &row.run.tally;
        Self {
            scenario: row.scenario.name(),
            handler: row.cost.name(),
            load: row.load.describe(),
            callers: row.load.callers(),
            offered_rate: match row.load {
                Load::Open { rate, .. } => Some(rate),
                _ => None,
            },
            arrival_rate: row.arrival_rate(),
            requests: tally.sent,
            served: tally.served,
            seconds: row.run.seconds,
            throughput: row.throughput(),
            latency_us: row.latency(),
            batcher_latency_us: row.batcher_latency(),
            overhead_us: row.overhead(),
            handler_us: Latency::from_stats(&row.stats.handler_us),
            batches: row.stats.batches,
            batch_mean: row.stats.batch_size.mean,
            batch_p50: row.stats.batch_size.p50,
            batch_max: row.largest_batch(),
            fill_mean: row.fill_mean(),
            fill_max: row.fill_max(),
            queue_depth_max: row.stats.queue_depth_max,
            queue_capacity: row.stats.queue_capacity,
            rejected: row.rejected(),
            timed_out: row.timed_out(),
            misrouted: tally.misrouted,
            unfinished: tally.unfinished,
            problems: row.problems(),
        }
    }
}

/// The whole JSON report.
#[derive(Debug, Serialize)]
struct JsonReport {
    machine: String,
    run: &'static str,
    max_batch_size: usize,
    rows: Vec<JsonRow>,
    comparison: Vec<Check>,
    problems: Vec<String>,
}

/// Writes the run as one JSON object: `rows`, `comparison` (with the seed, each budget's
/// verdict) and `problems` (correctness; empty when all is well).
///
/// # Errors
/// Encoding or writing failed.
pub fn write_json(out: &mut impl Write, config: &Config, rows: &[Row]) -> Result<(), CliError> {
    let report = JsonReport {
        machine: crate::report::machine(),
        run: run_name(config),
        max_batch_size: config.max_batch_size,
        rows: rows.iter().map(JsonRow::of).collect(),
        comparison: compare::checks(rows),
        problems: problems(rows),
    };
    // Encode first, then write: a closed pipe then surfaces as an I/O error, which `main`
    // treats as a reader that has seen enough.
    let text = serde_json::to_string_pretty(&report)?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// "quick" or "full".
pub(super) fn run_name(config: &Config) -> &'static str {
    if config.quick { "quick" } else { "full" }
}

/// Writes the header, a table per scenario that ran, the comparison with the seed and the
/// correctness verdict.
///
/// # Errors
/// Writing failed.
pub fn write_markdown(out: &mut impl Write, config: &Config, rows: &[Row]) -> Result<(), CliError> {
    writeln!(
        out,
        "ticktock batch · machine: {} · {}",
        crate::report::machine(),
        settings(config)
    )?;
    writeln!(out, "\n{READING}")?;
    for &scenario in &config.scenarios {
        let of: Vec<&Row> = rows.iter().filter(|row| row.scenario == scenario).collect();
        if of.is_empty() {
            continue;
        }
        writeln!(out, "\n## {}\n", title(config, scenario))?;
        write_table(out, &of)?;
        writeln!(out)?;
        for note in notes(scenario, &of) {
            writeln!(out, "- {note}")?;
        }
    }
    writeln!(out, "\n## against seed 004\n")?;
    writeln!(out, "| {} |", CHECK_HEAD.join(" | "))?;
    writeln!(out, "|---|---|---|---:|---|---|")?;
    for check in compare::checks(rows) {
        writeln!(out, "| {} |", check_cells(&check).join(" | "))?;
    }
    writeln!(out)?;
    for line in verdict_lines(rows) {
        writeln!(out, "- {line}")?;
    }
    Ok(())
}

/// The column titles of the comparison with the seed.
pub(super) const CHECK_HEAD: [&str; 6] = [
    "KPI",
    "seed 004",
    "ticktock-batch",
    "ratio",
    "budget",
    "verdict",
];

/// One line of the comparison with the seed, under [`CHECK_HEAD`].
pub(super) fn check_cells(check: &Check) -> [String; 6] {
    let ratio = check
        .ratio
        .map_or_else(|| "-".to_owned(), |r| format!("{}×", ratio(r)));
    [
        check.kpi.clone(),
        check.seed.clone(),
        check.ours.clone(),
        ratio,
        check.budget.clone(),
        check.verdict.label().to_owned(),
    ]
}

/// The lines under the comparison: how to read the ratio, and the correctness verdict (every
/// problem, or that there was none).
pub(super) fn verdict_lines(rows: &[Row]) -> Vec<String> {
    let mut lines = vec![
        "ratio: how many times better than the seed (its time / ours, or our rate / its)."
            .to_owned(),
    ];
    let problems = problems(rows);
    if problems.is_empty() {
        lines.push(
            "correctness: no batch above its limit, fill never above 100 %, every request \
             answered exactly once with its own answer, and the counts of callers, batcher and \
             handler agree in every row: ok."
                .to_owned(),
        );
    } else {
        lines.extend(
            problems
                .into_iter()
                .map(|problem| format!("CORRECTNESS FAILURE: {problem}")),
        );
    }
    lines
}

/// How the run was set up: quick or full, the runtime, the batchers' settings.
pub(super) fn settings(config: &Config) -> String {
    format!(
        "{} run · 2 tokio workers · batchers: max_batch_size {}, defaults otherwise (queue bound \
         8,192, 1 batch at a time, no max_wait, no deadline, global timer)",
        run_name(config),
        config.max_batch_size
    )
}

/// How to read every scenario's table.
pub(super) const READING: &str = "In every table: p50/p95/p99 are client side, \
    `Instant::now()` around each call, served requests only (hdrhistogram, 2 significant \
    figures); batcher p50 / p99 is `stats().latency_us`, admission to response; the batch columns \
    are `stats().batch_size`; fill = batch size / limit (fill max from the exact largest batch); \
    queue max is `stats().queue_depth_max`.";

/// A ratio with as many decimals as it deserves.
fn ratio(value: f64) -> String {
    if value >= 100.0 {
        thousands(value)
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The heading of a scenario's table: what it runs and how long.
pub(super) fn title(config: &Config, scenario: Scenario) -> String {
    match scenario {
        Scenario::Seed => format!(
            "seed: seed 004's runs, each caller sending its share one after another with `call`; \
             no-op handler; {} rounds on one batcher, times summed",
            config.seed_rounds.max(1)
        ),
        Scenario::Lone => format!(
            "lone: one caller, one request at a time (`call`), idle {:?} before each, {} times; \
             handler: a {} µs busy-spin",
            config.lone_gap,
            config.lone_requests.max(1),
            FIXED_COST.as_micros()
        ),
        Scenario::ClosedLoop => format!(
            "closed-loop: each caller sends its next request (`try_call`) as soon as the previous \
             returns, for {:?}",
            config.duration
        ),
        Scenario::OpenLoop => format!(
            "open-loop: requests arrive at a fixed rate for {:?} whatever the batcher does, one \
             task each (`try_call`), started in 1 ms bursts",
            config.duration
        ),
    }
}

fn write_table(out: &mut impl Write, rows: &[&Row]) -> Result<(), CliError> {
    writeln!(out, "| {} |", TABLE_HEAD.join(" | "))?;
    writeln!(out, "|---|---|{}", "---:|".repeat(TABLE_HEAD.len() - 2))?;
    for row in rows {
        writeln!(out, "| {} |", table_cells(row).join(" | "))?;
    }
    Ok(())
}

/// The column titles of a scenario's table (markdown and HTML).
pub(super) const TABLE_HEAD: [&str; 17] = [
    "handler",
    "load",
    "requests",
    "s",
    "req/s",
    "p50 µs",
    "p95 µs",
    "p99 µs",
    "batcher p50 / p99 µs",
    "batch mean",
    "batch p50",
    "batch max",
    "fill mean",
    "fill max",
    "queue max / bound",
    "rejected",
    "timed out",
];

/// One row of a scenario's table, under [`TABLE_HEAD`].
pub(super) fn table_cells(row: &Row) -> [String; 17] {
    let latency = row.latency();
    let batcher = row.batcher_latency();
    let batch = &row.stats.batch_size;
    [
        row.cost.name(),
        row.load.describe(),
        thousands(row.run.tally.sent as f64),
        format!("{:.3}", row.run.seconds),
        thousands(row.throughput()),
        format!("{:.1}", latency.p50),
        format!("{:.1}", latency.p95),
        format!("{:.1}", latency.p99),
        format!("{:.1} / {:.1}", batcher.p50, batcher.p99),
        format!("{:.1}", batch.mean),
        format!("{:.0}", batch.p50),
        row.largest_batch().to_string(),
        format!("{:.1} %", row.fill_mean() * 100.0),
        format!("{:.1} %", row.fill_max() * 100.0),
        format!(
            "{} / {}",
            thousands(row.stats.queue_depth_max as f64),
            thousands(row.stats.queue_capacity as f64)
        ),
        thousands(row.rejected() as f64),
        thousands(row.timed_out() as f64),
    ]
}

/// The lines under a scenario's table.
pub(super) fn notes(scenario: Scenario, rows: &[&Row]) -> Vec<String> {
    let mut notes = Vec::new();
    match scenario {
        Scenario::Seed => notes.push(
            "req/s = requests / the rounds' summed wall time (each round spawns its callers \
             and waits for them all)."
                .to_owned(),
        ),
        Scenario::Lone => {
            notes.push(
                "The idle gap lets the dispatcher (and possibly the worker threads) park, as for \
                 the seed's lone request; s includes the gaps, so req/s is not a capacity."
                    .to_owned(),
            );
            for row in rows {
                if let Some(overhead) = row.overhead() {
                    let handler = Latency::from_stats(&row.stats.handler_us);
                    notes.push(format!(
                        "latency − handler time (the batcher's overhead, the handler timing \
                         itself with `Instant`): mean {:.1} µs, p50 {:.1}, p95 {:.1}, p99 {:.1}, \
                         max {:.1} µs; handler time mean {:.1} µs.",
                        overhead.mean,
                        overhead.p50,
                        overhead.p95,
                        overhead.p99,
                        overhead.max,
                        handler.mean
                    ));
                }
            }
        }
        Scenario::ClosedLoop | Scenario::OpenLoop => {
            notes.push(format!(
                "handlers: {} echoes the batch (`Ok(batch)`); {} busy-spins that long per batch \
                 on the worker running it (a spin, as tokio's timer has 1 ms ticks).",
                Cost::NoOp.name(),
                Cost::Growing.name()
            ));
            if scenario == Scenario::OpenLoop {
                notes.push(
                    "Latency is from each request task's start; rejected = `QueueFull` from \
                     `try_call` when the queue (8,192) is full, the typed back-pressure an \
                     offered rate above the handler's capacity meets."
                        .to_owned(),
                );
                let achieved: Vec<String> = rows
                    .iter()
                    .filter_map(|row| {
                        let rate = row.arrival_rate()?;
                        Some(format!(
                            "{}, {}: {} req/s",
                            row.cost.name(),
                            row.load.describe(),
                            thousands(rate)
                        ))
                    })
                    .collect();
                notes.push(format!(
                    "arrival rate achieved by the pacer (below the offered rate when the machine \
                     could not start the requests fast enough): {}.",
                    achieved.join("; ")
                ));
            } else {
                notes.push(
                    "A caller refused with `QueueFull` yields and sends again (never happened \
                     if rejected is 0)."
                        .to_owned(),
                );
            }
        }
    }
    notes
}
