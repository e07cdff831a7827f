//! Turns [`Results`] into what `ticktock bench` prints: markdown tables for people, or one JSON
//! array for scripts and CI.
//!
//! Each table also says, under it, whether ticktock-wheel met its targets there: at least 1.5x
//! the lazy-cancel binary heap (the structure it replaces), and the per-operation budgets the
//! project set for it. Those lines inform; only a correctness failure makes the command fail.

use std::io::{self, Write};

use serde::Serialize;

use crate::bench::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, Ticktock, TimerImpl};
use crate::bench::{Config, Results, Workload};
use crate::error::CliError;

/// How much faster than the lazy-cancel heap ticktock-wheel has to be (heap median / ticktock
/// median).
const HEAP_RATIO_TARGET: f64 = 1.5;

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
            })
        })
        .collect();
    // Encode first, then write: a closed pipe (`| head`) then surfaces as an I/O error, which
    // `main` treats as a reader that has seen enough.
    let text = serde_json::to_string_pretty(&rows)?;
    writeln!(out, "{text}")?;
    Ok(())
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

fn write_table(
    out: &mut impl Write,
    config: &Config,
    results: &Results,
    workload: Workload,
) -> io::Result<()> {
    writeln!(out, "## {}\n", title(config, workload))?;
    let expire = workload == Workload::Expire;
    let param = parameter_header(workload);
    if expire {
        writeln!(
            out,
            "| implementation | {param} | median | min | max | ratio | early | lost |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    } else {
        writeln!(
            out,
            "| implementation | {param} | median | min | max | ratio |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    }
    for cell in results.of(workload) {
        let Some(s) = cell.summary() else { continue };
        let ratio = results
            .ratio_to_ticktock(cell)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        write!(
            out,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {ratio} |",
            cell.implementation, cell.parameter, s.median, s.min, s.max
        )?;
        if expire {
            write!(out, " {} | {} |", cell.early, cell.lost)?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Values in {}; ratio = implementation median / {} median \
         (above 1: {} is faster or smaller).",
        workload.unit(),
        Ticktock::NAME,
        Ticktock::NAME
    )?;
    for note in notes(workload) {
        writeln!(out, "- {note}")?;
    }
    if workload != Workload::Memory {
        writeln!(out, "- {}", heap_target_line(results, workload))?;
    }
    writeln!(out, "- {}", budget_line(results, workload))?;
    for cell in results.of(workload).filter(|c| c.early > 0 || c.lost > 0) {
        writeln!(
            out,
            "- WARNING: {} at {} fired {} timers early and lost {} (did not come out exactly once)",
            cell.implementation, cell.parameter, cell.early, cell.lost
        )?;
    }
    Ok(())
}

fn title(config: &Config, workload: Workload) -> String {
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
    }
}

fn parameter_header(workload: Workload) -> &'static str {
    match workload {
        Workload::Churn | Workload::Expire => "B",
        Workload::Reset => "live timers",
        Workload::Memory => "timers",
    }
}

fn notes(workload: Workload) -> Vec<String> {
    let dq = DelayQueuePeer::NAME;
    let nexus = NexusPeer::NAME;
    let heap = LazyHeapPeer::NAME;
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
            "bytes = heap bytes the structure holds with the timers in it, less what the same structure holds empty (its fixed part, e.g. ticktock-wheel's 12 KiB of slot lists), divided by the timer count (counted by a global allocator); inline sizes and the caller's keys (8 bytes each for every implementation) are not included.".to_owned(),
            format!("with_capacity: `TimerWheel::with_capacity`, `DelayQueue::with_capacity`, `BinaryHeap`/`Vec::with_capacity` for {heap}, and for {nexus} a slab chunk of that many entries; from empty: no hint ({nexus}: chunks of 4096)."),
            format!("{dq}: the tokio runtime's own allocations are not counted."),
        ],
    }
}

/// Whether ticktock-wheel beat the lazy-cancel heap by the target factor in every row.
fn heap_target_line(results: &Results, workload: Workload) -> String {
    let misses: Vec<String> = results
        .of(workload)
        .filter(|c| c.implementation == LazyHeapPeer::NAME)
        .filter_map(|c| {
            let ratio = results.ratio_to_ticktock(c)?;
            (ratio < HEAP_RATIO_TARGET).then(|| format!("{} ({ratio:.2})", c.parameter))
        })
        .collect();
    if misses.is_empty() {
        format!(
            "target {} / {} ≥ {HEAP_RATIO_TARGET}: met in every row.",
            LazyHeapPeer::NAME,
            Ticktock::NAME
        )
    } else {
        format!(
            "target {} / {} ≥ {HEAP_RATIO_TARGET}: MISSED at {}.",
            LazyHeapPeer::NAME,
            Ticktock::NAME,
            misses.join(", ")
        )
    }
}

/// ticktock-wheel's budget for a workload, in its unit.
fn budget(workload: Workload) -> f64 {
    match workload {
        Workload::Churn => 15.0,
        Workload::Expire => 30.0,
        Workload::Reset => 20.0,
        Workload::Memory => 32.0,
    }
}

/// Whether ticktock-wheel's median stayed within its budget in every row.
fn budget_line(results: &Results, workload: Workload) -> String {
    let limit = budget(workload);
    let over: Vec<String> = results
        .of(workload)
        .filter(|c| c.implementation == Ticktock::NAME)
        .filter_map(|c| {
            let median = c.summary()?.median;
            (median > limit).then(|| format!("{} ({median:.1})", c.parameter))
        })
        .collect();
    let unit = workload.unit();
    if over.is_empty() {
        format!(
            "budget {} ≤ {limit} {unit}: met in every row.",
            Ticktock::NAME
        )
    } else {
        format!(
            "budget {} ≤ {limit} {unit}: OVER at {}.",
            Ticktock::NAME,
            over.join(", ")
        )
    }
}

/// "CPU model (N cores)", from /proc/cpuinfo where it is readable.
fn machine() -> String {
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

    fn results() -> Results {
        let cell = |implementation, median: f64| Cell {
            workload: Workload::Churn,
            implementation,
            parameter: "32".into(),
            samples: vec![median, median + 1.0, median - 1.0],
            early: 0,
            lost: 0,
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
}
