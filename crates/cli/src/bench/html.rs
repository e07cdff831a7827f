//! The HTML report of `ticktock bench --report FILE.html`: one self-contained page with, for each
//! workload that ran, a chart of every implementation's median per parameter (grouped bars, the
//! samples' min–max as whiskers) and the same table, notes and verdicts as the markdown report.
//!
//! The page and the charts come from [`crate::html`]; the tables' cells and notes come from
//! [`crate::report`], so the two reports cannot drift apart.

use super::{Config, Results, Workload};
use crate::html::chart::{Chart, Series};
use crate::html::{Esc, PALETTE, figure, list, page, table, w};
use crate::report;

/// Renders `results` as one HTML page; `command` is the command line that produced them and
/// `machine` a description of the host.
pub fn render(config: &Config, results: &Results, command: &str, machine: &str) -> String {
    let mut body = String::with_capacity(16 * 1024);
    w!(
        body,
        "<p>Seed {} · {} samples per cell. Each bar is an implementation's median, its whisker \
         the samples' min–max; ratio = implementation median / ticktock median (above 1: \
         ticktock is better). Samples of the implementations are interleaved within a cell.</p>\n",
        config.seed,
        config.samples
    );
    for &workload in &config.workloads {
        if results.of(workload).next().is_some() {
            section(&mut body, config, results, workload);
        }
    }
    if results.cells.is_empty() {
        body.push_str("<p>No workload produced results.</p>\n");
    }
    page("ticktock bench", command, machine, &body)
}

/// One workload: heading, chart, table, notes.
fn section(out: &mut String, config: &Config, results: &Results, workload: Workload) {
    w!(
        out,
        "<section>\n<h2>{}</h2>\n",
        Esc(&report::title(config, workload))
    );
    let svg = chart(results, workload);
    let caption = format!(
        "{}: median per implementation and {} ({}; lower is better), whiskers min–max.",
        workload.name(),
        report::table_head(workload)[1],
        workload.unit()
    );
    figure(out, workload.name(), &svg, &caption);
    let rows: Vec<Vec<String>> = results
        .of(workload)
        .filter_map(|cell| report::table_cells(results, cell))
        .collect();
    table(out, &report::table_head(workload), &rows);
    w!(out, "<p>{}</p>\n", Esc(&report::unit_line(workload)));
    list(out, &report::footnotes(config, results, workload));
    out.push_str("</section>\n");
}

/// Grouped bars: one group per parameter, one bar per implementation, in the order they ran
/// (the reference implementation first, so it gets the first colour).
fn chart(results: &Results, workload: Workload) -> String {
    let mut parameters: Vec<&str> = Vec::new();
    let mut implementations: Vec<&str> = Vec::new();
    for cell in results.of(workload) {
        if !parameters.contains(&cell.parameter.as_str()) {
            parameters.push(&cell.parameter);
        }
        if !implementations.contains(&cell.implementation) {
            implementations.push(cell.implementation);
        }
    }
    let series = implementations.iter().enumerate().map(|(i, &name)| {
        // A parameter this implementation has no samples for gets no bar.
        let summaries = parameters.iter().map(|&parameter| {
            results
                .of(workload)
                .find(|c| c.implementation == name && c.parameter == parameter)
                .and_then(|c| c.summary())
        });
        let (points, spread) = summaries
            .enumerate()
            .map(|(x, s)| {
                let (median, lo, hi) =
                    s.map_or((f64::NAN, f64::NAN, f64::NAN), |s| (s.median, s.min, s.max));
                ((x as f64, median), (lo, hi))
            })
            .unzip();
        let mut series = Series::new(name, PALETTE[i % PALETTE.len()], points);
        series.spread = spread;
        series
    });
    let categories: Vec<String> = parameters.iter().map(|&p| p.to_owned()).collect();
    let head = report::table_head(workload);
    Chart {
        width: (160.0 * categories.len() as f64).clamp(640.0, 1000.0),
        series: series.collect(),
        axes: (&head[1], workload.unit()),
    }
    .bars(&categories)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Cell;
    use crate::bench::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, Ticktock, TimerImpl};
    use crate::bench::service::{self, NO_TIMERS};
    use crate::html::testing::{check_well_formed, figure};

    fn cell(workload: Workload, implementation: &'static str, parameter: &str, v: f64) -> Cell {
        Cell {
            workload,
            implementation,
            parameter: parameter.into(),
            samples: vec![v - 1.0, v, v + 2.0],
            early: 0,
            lost: 0,
            remarks: Vec::new(),
        }
    }

    fn config(workloads: &[Workload]) -> Config {
        let mut config = Config::quick(7);
        config.workloads = workloads.to_vec();
        config
    }

    #[test]
    fn every_workload_that_ran_has_a_chart_and_a_table() {
        let (c, i) = (Workload::Churn, Workload::Idle);
        let mut results = Results { cells: Vec::new() };
        for size in ["32", "1024"] {
            for (name, v) in [
                (Ticktock::NAME, 10.0),
                (LazyHeapPeer::NAME, 20.0),
                (NexusPeer::NAME, 30.0),
                (DelayQueuePeer::NAME, 80.0),
            ] {
                results.cells.push(cell(c, name, size, v));
            }
        }
        results.cells.push(cell(i, service::TICKTOCK, "1000", 1.5));
        results.cells.push(cell(i, NO_TIMERS, "1000", 1.2));
        results.cells[1].remarks.push("a <remark>".into());
        // Memory is asked for but did not run: no section.
        let config = config(&[c, Workload::Memory, i]);
        let html = render(&config, &results, "ticktock bench --report x", "box");
        check_well_formed(&html);
        let churn = figure(&html, "churn").expect("churn chart");
        // 4 legend swatches + 8 bars, a whisker (3 lines) on each bar.
        assert_eq!(churn.matches("<rect").count(), 12);
        assert_eq!(churn.matches("class=\"whisker\"").count(), 24);
        assert!(churn.contains(">1024</text>") && churn.contains("tokio-delay-queue"));
        assert!(figure(&html, "idle").is_some() && figure(&html, "memory").is_none());
        assert_eq!(html.matches("<svg ").count(), 2);
        assert_eq!(html.matches("<table>").count(), 2);
        assert!(html.contains(
            "<td>lazy-heap</td><td>32</td><td>20.0</td><td>19.0</td><td>22.0</td><td>2.00</td>"
        ));
        assert!(html.contains("<li>lazy-heap (32): a &lt;remark&gt;</li>"));
        assert!(html.contains("met in every row") && html.contains("Seed 7 · 3 samples"));
        assert!(html.contains("<code>ticktock bench --report x</code>"));
    }

    #[test]
    fn empty_results_and_missing_cells_render() {
        let html = render(&config(&Workload::ALL), &Results::default(), "", "");
        check_well_formed(&html);
        assert!(html.contains("No workload produced results") && !html.contains("<svg "));
        // A peer without samples and a peer missing at one size: no bar, no NaN.
        let r = Workload::Reset;
        let mut results = Results {
            cells: vec![
                cell(r, Ticktock::NAME, "100", 5.0),
                cell(r, NexusPeer::NAME, "100", 9.0),
                cell(r, Ticktock::NAME, "200", 6.0),
            ],
        };
        results.cells[1].samples.clear();
        let html = render(&config(&[r]), &results, "<b>", "m&m");
        check_well_formed(&html);
        let reset = figure(&html, "reset").expect("reset chart");
        // 2 legend swatches + ticktock's 2 bars.
        assert_eq!(reset.matches("<rect").count(), 4);
        assert!(html.contains("<code>&lt;b&gt;</code>") && html.contains("m&amp;m"));
    }
}
