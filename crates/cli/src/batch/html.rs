//! The HTML report of `ticktock batch --report FILE.html`: one self-contained page with, for
//! each scenario that ran, charts of the batcher's KPIs per row (client latency quantiles,
//! throughput, batch fill) above the same table and notes as the markdown report; then charts
//! of this batcher against seed 004's numbers (throughput and mean latency of the seed's runs,
//! the lone request's latency, the largest batch over its limit) above the comparison table and
//! the correctness verdict.
//!
//! The page and the charts come from [`crate::html`]; the tables' cells and notes come from
//! [`super::report`], so the two reports cannot drift apart.

use super::compare::{self, SEED_LARGEST_BATCH, SEED_LONE_MS, SEED_RUNS, SeedRun};
use super::report::{self, CHECK_HEAD, READING, TABLE_HEAD};
use super::results::Row;
use super::{Config, Load, Scenario};
use crate::html::chart::{Chart, Series};
use crate::html::{Esc, PALETTE, figure, list, page, table, w};

/// Width of a chart with one group of bars per row.
fn width(groups: usize) -> f64 {
    (150.0 * groups as f64).clamp(480.0, 1000.0)
}

/// Renders `rows` as one HTML page; `command` is the command line that produced them and
/// `machine` a description of the host.
pub fn render(config: &Config, rows: &[Row], command: &str, machine: &str) -> String {
    let mut body = String::with_capacity(32 * 1024);
    w!(
        body,
        "<p>{}</p>\n<p>{}</p>\n",
        Esc(&report::settings(config)),
        Esc(READING)
    );
    for &scenario in &config.scenarios {
        let of: Vec<&Row> = rows.iter().filter(|row| row.scenario == scenario).collect();
        if !of.is_empty() {
            section(&mut body, config, scenario, &of);
        }
    }
    against_seed(&mut body, rows);
    page("ticktock batch", command, machine, &body)
}

/// A row's name on a chart's x axis: handler, then load on a second line.
fn category(row: &Row) -> String {
    format!("{}\n{}", row.cost.name(), row.load.describe())
}

/// One scenario: heading, its three charts, table, notes.
fn section(out: &mut String, config: &Config, scenario: Scenario, rows: &[&Row]) {
    let name = scenario.name();
    w!(
        out,
        "<section>\n<h2>{}</h2>\n",
        Esc(&report::title(config, scenario))
    );
    let categories: Vec<String> = rows.iter().map(|row| category(row)).collect();
    let per_row = |name: &str, colour, value: &dyn Fn(&Row) -> f64| {
        let points = rows
            .iter()
            .enumerate()
            .map(|(i, row)| (i as f64, value(row)));
        Series::new(name, colour, points.collect())
    };
    let chart = |series, y| Chart {
        width: width(rows.len()),
        series,
        axes: ("", y),
    };

    let latency = vec![
        per_row("p50", PALETTE[0], &|row| row.latency().p50),
        per_row("p95", PALETTE[1], &|row| row.latency().p95),
        per_row("p99", PALETTE[4], &|row| row.latency().p99),
    ];
    let svg = chart(latency, "latency (µs)").bars(&categories);
    let caption = format!(
        "{name}: client-side latency of served requests per row, p50, p95 and p99 (µs; lower \
         is better)."
    );
    figure(out, &format!("{name}-latency"), &svg, &caption);

    let mut throughput = vec![per_row("served", PALETTE[0], &|row| row.throughput())];
    if scenario == Scenario::OpenLoop {
        let offered = |row: &Row| match row.load {
            Load::Open { rate, .. } => rate as f64,
            _ => f64::NAN,
        };
        let arrived = |row: &Row| row.arrival_rate().unwrap_or(f64::NAN);
        throughput.push(per_row("offered", PALETTE[5], &offered));
        throughput.push(per_row("arrived", PALETTE[2], &arrived));
    }
    let svg = chart(throughput, "requests per second").bars(&categories);
    let caption = if scenario == Scenario::OpenLoop {
        format!(
            "{name}: requests served per second per row (higher is better), beside the offered \
             rate and the arrival rate the pacer achieved."
        )
    } else {
        format!("{name}: requests served per second per row (higher is better).")
    };
    figure(out, &format!("{name}-throughput"), &svg, &caption);

    let fill = vec![
        per_row("fill mean", PALETTE[0], &|row| row.fill_mean() * 100.0),
        per_row("fill max", PALETTE[3], &|row| row.fill_max() * 100.0),
    ];
    let svg = chart(fill, "batch size / limit (%)").bars(&categories);
    let caption = format!(
        "{name}: batch fill per row, mean batch size and largest batch over the limit (%; never \
         above 100)."
    );
    figure(out, &format!("{name}-fill"), &svg, &caption);

    let cells: Vec<[String; 17]> = rows.iter().map(|row| report::table_cells(row)).collect();
    table(out, &TABLE_HEAD, &cells);
    list(out, &report::notes(scenario, rows));
    out.push_str("</section>\n");
}

/// The row that repeats one of the seed's runs, if the seed scenario ran.
fn seed_row<'a>(rows: &'a [Row], run: &SeedRun) -> Option<&'a Row> {
    rows.iter().find(|row| {
        matches!(row.load, Load::Seed { callers, per_caller, .. }
            if callers == run.callers && callers * per_caller == run.requests)
    })
}

/// The comparison with seed 004: charts (the seed's bars always, ours where the scenario ran),
/// the table and the verdicts.
fn against_seed(out: &mut String, rows: &[Row]) {
    out.push_str("<section>\n<h2>Against seed 004</h2>\n");
    let pair = |seed: Vec<(f64, f64)>, ours: Vec<(f64, f64)>| {
        vec![
            Series::new("seed 004", PALETTE[5], seed),
            Series::new("ticktock-batch", PALETTE[0], ours),
        ]
    };
    let runs: Vec<String> = SEED_RUNS
        .iter()
        .map(|run| format!("{} requests\nfrom {} callers", run.requests, run.callers))
        .collect();
    let per_run = |seed: fn(&SeedRun) -> f64, ours: fn(&Row) -> f64| {
        let at = |i: usize, v: f64| (i as f64, v);
        pair(
            SEED_RUNS
                .iter()
                .enumerate()
                .map(|(i, run)| at(i, seed(run)))
                .collect(),
            (SEED_RUNS.iter().enumerate())
                .map(|(i, run)| at(i, seed_row(rows, run).map_or(f64::NAN, ours)))
                .collect(),
        )
    };

    let series = per_run(|run| run.throughput, Row::throughput);
    let svg = Chart {
        width: width(runs.len()),
        series,
        axes: ("", "requests per second"),
    }
    .bars(&runs);
    let caption = "The seed's three load runs repeated: requests per second, seed 004 and this \
                   batcher (higher is better; no ticktock-batch bar when the seed scenario did \
                   not run).";
    figure(out, "vs-seed-throughput", &svg, caption);

    let series = per_run(|run| run.mean_ms, |row| row.latency().mean / 1e3);
    let svg = Chart {
        width: width(runs.len()),
        series,
        axes: ("", "mean latency (ms)"),
    }
    .bars(&runs);
    let caption = "The seed's three load runs repeated: mean latency, seed 004 and this batcher \
                   (ms; lower is better).";
    figure(out, "vs-seed-latency", &svg, caption);

    // One bar each: the values are printed over the bars, as ours is too small to see beside
    // the seed's.
    let lone = rows.iter().find(|row| row.scenario == Scenario::Lone);
    let lone_ms = lone.map_or(f64::NAN, |row| row.latency().mean / 1e3);
    let series = pair(vec![(0.0, SEED_LONE_MS)], vec![(0.0, lone_ms)]);
    let lone_svg = Chart {
        width: 360.0,
        series,
        axes: ("", "mean latency (ms)"),
    }
    .bars(&["lone request".into()]);
    let (largest, limit) = SEED_LARGEST_BATCH;
    let seed_fill = largest as f64 / limit as f64 * 100.0;
    let fill = rows
        .iter()
        .map(|row| row.fill_max() * 100.0)
        .reduce(f64::max);
    let series = pair(
        vec![(0.0, seed_fill)],
        vec![(0.0, fill.unwrap_or(f64::NAN))],
    );
    let fill_svg = Chart {
        width: 360.0,
        series,
        axes: ("", "largest batch / limit (%)"),
    }
    .bars(&["largest batch, any row".into()]);
    let svg = format!("<div class=\"pair\">\n{lone_svg}{fill_svg}</div>\n");
    let caption = "A lone request's mean latency (ms; the seed waited out a 0.5 s timeout) and \
                   the largest batch over its limit in any row (%; the seed formed 200 under a \
                   limit of 32).";
    figure(out, "vs-seed-lone-fill", &svg, caption);

    let checks: Vec<[String; 6]> = compare::checks(rows)
        .iter()
        .map(report::check_cells)
        .collect();
    table(out, &CHECK_HEAD, &checks);
    list(out, &report::verdict_lines(rows));
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::batch::handler::Cost;
    use crate::batch::load::Run;
    use crate::batch::results::Handled;
    use crate::batch::tally::Tally;
    use crate::html::testing::{check_well_formed, figure};

    /// A row of `scenario` whose `sent` requests were all served by batches of 8.
    fn row(scenario: Scenario, load: Load, sent: u64) -> Row {
        let mut tally = Tally {
            sent,
            served: sent,
            ..Tally::default()
        };
        for i in 0..sent {
            tally.latency.saturating_record(50_000 + 1000 * i);
        }
        let stats = ticktock_batch::BatchStats {
            served: sent,
            admitted: sent,
            batches: sent.div_ceil(8),
            batch_size: ticktock_batch::Quantiles {
                mean: 8.0,
                max: 8.0,
                ..Default::default()
            },
            ..Default::default()
        };
        Row {
            scenario,
            cost: Cost::NoOp,
            load,
            max_batch_size: 32,
            run: Run {
                tally,
                seconds: 0.5,
                overhead: None,
                issued_over: matches!(load, Load::Open { .. }).then_some(0.5),
            },
            stats,
            handled: Handled {
                batches: sent.div_ceil(8),
                items: sent,
                largest: 8,
            },
        }
    }

    fn rows() -> Vec<Row> {
        let duration = Duration::from_millis(300);
        let seed = |callers, per_caller| Load::Seed {
            callers,
            per_caller,
            rounds: 1,
        };
        vec![
            row(Scenario::Seed, seed(10, 10), 100),
            row(Scenario::Seed, seed(50, 10), 500),
            row(
                Scenario::ClosedLoop,
                Load::Closed {
                    callers: 50,
                    duration,
                },
                1000,
            ),
            row(
                Scenario::OpenLoop,
                Load::Open {
                    rate: 5000,
                    duration,
                },
                1500,
            ),
        ]
    }

    #[test]
    fn every_scenario_that_ran_has_its_charts_and_table() {
        let config = Config::quick();
        let html = render(&config, &rows(), "ticktock batch --report r.html", "box");
        check_well_formed(&html);
        for scenario in ["seed", "closed-loop", "open-loop"] {
            for chart in ["latency", "throughput", "fill"] {
                let id = format!("{scenario}-{chart}");
                let fig = figure(&html, &id).unwrap_or_else(|| panic!("no figure {id}"));
                assert!(
                    fig.contains("<svg ") && fig.contains("<figcaption>"),
                    "{id}"
                );
            }
        }
        // The lone scenario did not run: no section, but the seed's bar for it is drawn.
        assert!(figure(&html, "lone-latency").is_none());
        for id in ["vs-seed-throughput", "vs-seed-latency", "vs-seed-lone-fill"] {
            assert!(figure(&html, id).is_some(), "{id}");
        }
        // 3 scenarios × 3 charts + 2 + the pair of 2.
        assert_eq!(html.matches("<svg ").count(), 13);
        // Scenario tables and the comparison.
        assert_eq!(html.matches("<table>").count(), 4);
        assert!(html.contains("<th>queue max / bound</th>") && html.contains("<th>KPI</th>"));
        assert!(html.contains("<td>no-op</td><td>100 from 10 callers ×1</td><td>100</td>"));
        // The open loop charts the offered and the arrived rate too.
        let open = figure(&html, "open-loop-throughput").unwrap_or_default();
        assert!(open.contains(">offered</text>") && open.contains(">arrived</text>"));
        // Seed runs: seed 004's three bars, ours for the two that ran.
        let seed = figure(&html, "vs-seed-throughput").unwrap_or_default();
        assert_eq!(seed.matches("<title>seed 004,").count(), 3);
        assert_eq!(seed.matches("<title>ticktock-batch,").count(), 2);
        let lone = figure(&html, "vs-seed-lone-fill").unwrap_or_default();
        assert!(lone.contains(">573.78</text>") && lone.contains(">625</text>"));
        assert!(lone.contains(">25</text>"), "worst fill 8 / 32");
        assert!(html.contains("every request answered exactly once"));
        assert!(html.contains("<code>ticktock batch --report r.html</code>"));
    }

    #[test]
    fn no_rows_render_and_text_is_escaped() {
        let html = render(&Config::quick(), &[], "a <b> & 'c'", "<m>");
        check_well_formed(&html);
        assert!(!html.contains("<b>") && html.contains("a &lt;b&gt; &amp; &#39;c&#39;"));
        assert!(html.contains("<dd>&lt;m&gt;</dd>"));
        assert!(figure(&html, "vs-seed-latency").is_some() && figure(&html, "seed-fill").is_none());
        // The comparison table is there, every KPI not run.
        assert!(html.contains("<td>not run</td>") && html.matches("<table>").count() == 1);
    }
}
