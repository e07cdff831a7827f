//! One self-contained HTML report of a simulation run: a header, a summary table with one column
//! per backend (and a ratio column when two backends ran), and SVG charts of the lateness
//! distribution, operations per second and live timers over time, and a backend comparison.
//!
//! The page, its escaping and the charts come from [`crate::html`].

use crate::html::chart::{Chart, Series};
use crate::html::{Esc, PALETTE, cell, figure, page, si, w};

use super::results::{Backend, Sample, SimResult};

/// Renders `results` (one per backend) as one HTML page; `command` is the command line that
/// produced them and `machine` a description of the host.
pub fn render(results: &[SimResult], title: &str, command: &str, machine: &str) -> String {
    let mut body = String::with_capacity(32 * 1024);
    summary(&mut body, results);
    charts(&mut body, results);
    page(title, command, machine, &body)
}

/// Name of result `i` in tables and legends.
fn label(result: &SimResult, i: usize) -> String {
    let unnamed = || format!("run {}", i + 1);
    result.backend.map_or_else(unnamed, |b| b.name().to_owned())
}

/// Colour of result `i`: fixed per backend, so pages compare at a glance.
fn colour(result: &SimResult, i: usize) -> &'static str {
    match result.backend {
        Some(Backend::Ticktock) => PALETTE[0],
        Some(Backend::Tokio) => PALETTE[1],
        Some(Backend::TicktockTasks) => PALETTE[2],
        None => PALETTE[2 + i % 2],
    }
}

/// A lateness bucket bound in µs as a short label.
fn micros(us: f64) -> String {
    match us {
        us if !us.is_finite() => "more".to_owned(),
        us if us >= 1e6 => format!("{}s", si(us / 1e6)),
        us if us >= 1e3 => format!("{}ms", si(us / 1e3)),
        us => format!("{}µs", si(us)),
    }
}

/// Which way a summary row's ratio goes: a cost (lower is better), a throughput, or none. The
/// discriminant is the power the ratio of the two columns is raised to.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower = -1,
    Neither = 0,
    Higher = 1,
}

/// The summary rows: name, decimals (`None`: an integer with separators), ratio direction.
/// [`row_values`] gives the values in the same order.
const ROWS: [(&str, Option<usize>, Better); 21] = {
    use Better::{Higher, Lower, Neither};
    [
        ("Connections (start)", None, Neither),
        ("Connections opened", None, Neither),
        ("Packets offered", None, Neither),
        ("Packets processed", None, Neither),
        ("Wall time (s)", Some(2), Neither),
        ("Timer ops: armed", None, Neither),
        ("Timer ops: postponed", None, Neither),
        ("Timer ops: advanced", None, Neither),
        ("Timer ops: cancelled", None, Neither),
        ("Timer ops: fired", None, Neither),
        ("Timer ops: total", None, Neither),
        ("Timer ops/s", None, Higher),
        ("Lateness p50 (µs)", Some(1), Lower),
        ("Lateness p99 (µs)", Some(1), Lower),
        ("Lateness max (µs)", Some(1), Lower),
        ("Fires measured", None, Neither),
        ("Early fires (must be 0)", None, Neither),
        ("CPU (s)", Some(2), Lower),
        ("CPU ns/op", Some(1), Lower),
        ("Peak RSS (MiB; 0: n/a)", Some(1), Lower),
        ("Timer bytes/connection", Some(1), Lower),
    ]
};

/// The values of [`ROWS`] for one result.
fn row_values(r: &SimResult) -> [f64; ROWS.len()] {
    let (ops, late) = (&r.ops, &r.lateness);
    [
        r.connections as f64,
        r.connections_opened as f64,
        r.packets_offered as f64,
        r.packets as f64,
        r.wall_s,
        ops.armed as f64,
        ops.postponed as f64,
        ops.advanced as f64,
        ops.cancelled as f64,
        ops.fired as f64,
        ops.total() as f64,
        r.ops_per_sec,
        late.p50_us,
        late.p99_us,
        late.max_us,
        late.count as f64,
        late.early as f64,
        r.cpu_s,
        r.cpu_ns_per_op,
        r.peak_rss_bytes as f64 / 1_048_576.0,
        r.timer_bytes_per_connection,
    ]
}

fn summary(out: &mut String, results: &[SimResult]) {
    // With two results: `a` is ticktock's column (or the first), `b` the other.
    let pair = (results.len() == 2).then(|| {
        let a = usize::from(results[1].backend.is_some_and(|b| b != Backend::Tokio));
        (a, 1 - a)
    });
    let values: Vec<_> = results.iter().map(row_values).collect();
    out.push_str("<section>\n<h2>Summary</h2>\n<table>\n<tr><th>Metric</th>");
    for (i, r) in results.iter().enumerate() {
        let (name, c) = (label(r, i), colour(r, i));
        let name = Esc(&name);
        w!(
            out,
            r#"<th><span class="sw" style="background:{c}"></span>{name}</th>"#
        );
    }
    if let Some((a, b)) = pair {
        let (a, b) = (label(&results[a], a), label(&results[b], b));
        let (a, b) = (Esc(&a), Esc(&b));
        w!(
            out,
            "<th>Ratio: {b} ÷ {a} for costs, {a} ÷ {b} for ops/s (&gt;1: {a} better)</th>"
        );
    }
    out.push_str("</tr>\n");
    for (row, &(name, prec, better)) in ROWS.iter().enumerate() {
        w!(out, "<tr><td>{}</td>", Esc(name));
        for v in &values {
            w!(out, "<td>{}</td>", cell(v[row], prec));
        }
        if let Some((a, b)) = pair {
            let (va, vb) = (values[a][row], values[b][row]);
            let ratio = (va / vb).powi(better as i32);
            let shown = better != Better::Neither && va > 0.0 && vb > 0.0 && ratio.is_finite();
            let ratio = if shown {
                format!("{ratio:.2}×")
            } else {
                "—".to_owned()
            };
            w!(out, "<td>{ratio}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</section>\n");
}

fn charts(out: &mut String, results: &[SimResult]) {
    let series = |points: &dyn Fn(&SimResult) -> Vec<(f64, f64)>| -> Vec<Series> {
        let one = |(i, r)| Series::new(label(r, i), colour(r, i), points(r));
        results.iter().enumerate().map(one).collect()
    };
    let chart = |width, series, axes| Chart {
        width,
        series,
        axes,
    };
    out.push_str("<section>\n<h2>Charts</h2>\n");

    // Lateness: the union of the bucket bounds without the empty ones at either end; each series
    // as a share of its own fires, so runs of different lengths compare.
    let buckets = |r: &SimResult| r.lateness_buckets.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut bounds: Vec<f64> = results.iter().flat_map(buckets).collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let share = |r: &SimResult, bound: f64| {
        let (mut total, mut count) = (0, 0);
        for &(b, n) in &r.lateness_buckets {
            total += n;
            count += if b == bound { n } else { 0 };
        }
        100.0 * count as f64 / total.max(1) as f64
    };
    let used = |b: &f64| results.iter().any(|r| share(r, *b) > 0.0);
    let first = bounds.iter().position(used).unwrap_or(0);
    let last = bounds.iter().rposition(used).map_or(0, |i| i + 1);
    let bounds = bounds.get(first..last).unwrap_or_default();
    let labels: Vec<String> = bounds.iter().map(|&b| format!("≤{}", micros(b))).collect();
    let lateness = series(&|r| bounds.iter().map(|&b| (b, share(r, b))).collect());
    let axes = (
        "lateness bucket, upper bound (log scale: buckets double)",
        "share of fires (%)",
    );
    let svg = chart(720.0, lateness, axes).bars(&labels);
    let caption = "Fire lateness distribution: each backend's share of fires per lateness bucket \
                   (deadline to the connection handling the timeout).";
    figure(out, "lateness", &svg, caption);

    let over_time =
        |y: fn(&Sample) -> f64| series(&|r| r.samples.iter().map(|s| (s.t_s, y(s))).collect());
    let svg = chart(
        720.0,
        over_time(|s| s.ops_per_sec),
        ("time since start (s)", "timer ops/s"),
    )
    .lines();
    let caption = "Timer operations per second over the run, per sample.";
    figure(out, "ops-over-time", &svg, caption);

    let live = over_time(|s| s.live_timers as f64);
    let svg = chart(720.0, live, ("time since start (s)", "live timers")).lines();
    let caption = "Timers set at each sample, over all connections and timer kinds.";
    figure(out, "live-timers", &svg, caption);

    if results.len() == 2 {
        let ops = series(&|r| vec![(0.0, r.ops_per_sec)]);
        let ops = chart(360.0, ops, ("", "timer ops per second")).bars(&["ops/s".into()]);
        let cpu = series(&|r| vec![(0.0, r.cpu_ns_per_op)]);
        let cpu = chart(360.0, cpu, ("", "CPU ns per timer op")).bars(&["CPU ns/op".into()]);
        let svg = format!("<div class=\"pair\">\n{ops}{cpu}</div>\n");
        let caption = "Backend comparison: timer operations per second (higher is better) and \
                       CPU nanoseconds per timer operation (lower is better).";
        figure(out, "comparison", &svg, caption);
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::testing::{check_well_formed, figure};
    use crate::simulate::results::{Lateness, OpCounts};

    fn result(backend: Backend, scale: f64) -> SimResult {
        let ops = OpCounts {
            armed: 1000,
            postponed: 90_000,
            advanced: 10,
            cancelled: 500,
            fired: 400,
        };
        let sample = |i: u64| Sample {
            t_s: 0.25 * i as f64,
            ops_per_sec: 2e4 / scale,
            live_timers: 30_000 + i,
            fired: 25 * i,
            connections: 10_000,
        };
        SimResult {
            backend: Some(backend),
            connections: 10_000,
            connections_opened: 12_000,
            packets: 1_000_000,
            wall_s: 4.0,
            ops,
            ops_per_sec: ops.total() as f64 / 4.0 / scale,
            lateness: Lateness {
                count: 400,
                p50_us: 80.0 * scale,
                p99_us: 900.0 * scale,
                max_us: 3e3,
                early: 0,
            },
            lateness_buckets: (0..12)
                .map(|i| (2f64.powi(i), (i as u64 * 7) % 5))
                .collect(),
            cpu_s: 3.1 * scale,
            cpu_ns_per_op: 150.0 * scale,
            peak_rss_bytes: 64 << 20,
            timer_bytes_per_connection: 96.0 * scale,
            samples: (0..16).map(sample).collect(),
            ..SimResult::default()
        }
    }

    #[test]
    fn two_results_have_every_chart() {
        let results = [result(Backend::Ticktock, 1.0), result(Backend::Tokio, 3.0)];
        let html = render(&results, "Sim & co", "ticktock simulate", "box");
        check_well_formed(&html);
        for id in ["lateness", "ops-over-time", "live-timers", "comparison"] {
            let fig = figure(&html, id).unwrap_or_else(|| panic!("no figure {id}"));
            assert!(fig.contains("<svg") && fig.contains("<figcaption>"), "{id}");
        }
        let comparison = figure(&html, "comparison").unwrap_or_default();
        assert_eq!(comparison.matches("<svg").count(), 2);
        assert_eq!(html.matches("<svg").count(), 5);
        assert_eq!(html.matches("<polyline").count(), 4);
        // tokio costs 3x ticktock: the ratio column says so.
        assert!(html.contains("tokio ÷ ticktock") && html.contains("<td>3.00×</td>"));
        assert!(html.contains("<title>Sim &amp; co</title>") && html.contains("≤2.05ms"));
        // Swapped order: the ratios still compare tokio with ticktock.
        let swapped = render(&[results[1].clone(), results[0].clone()], "t", "c", "m");
        assert!(swapped.contains("tokio ÷ ticktock") && swapped.contains("<td>3.00×</td>"));
    }

    #[test]
    fn one_result_with_empty_series_renders() {
        let mut r = [SimResult::default()];
        r[0].backend = Some(Backend::Tokio);
        r[0].lateness_buckets = vec![(f64::INFINITY, 0)];
        r[0].ops_per_sec = f64::NAN;
        let html = render(&r, "empty", "", "");
        check_well_formed(&html);
        assert!(figure(&html, "comparison").is_none());
        for id in ["lateness", "ops-over-time", "live-timers"] {
            assert!(
                figure(&html, id).unwrap_or_default().contains("<svg"),
                "{id}"
            );
        }
        assert!(html.contains("no samples") && html.contains("no data") && !html.contains("Ratio"));
        check_well_formed(&render(&[], "none", "", ""));
        let mut one = [SimResult::default(), SimResult::default()];
        one[0].samples.push(Sample::default());
        let html = render(&one, "unnamed", "", "");
        check_well_formed(&html);
        assert!(html.contains("points=\"70.0,236.0 70.0,236.0\"") && html.contains("run 2"));
        assert!(html.contains("<td>—</td>"));
    }

    #[test]
    fn text_is_escaped() {
        let html = render(&[], "<script>alert('x')</script>", "a \"b\" <c>", "m&m");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("a &quot;b&quot; &lt;c&gt;") && html.contains("m&amp;m"));
    }

    #[test]
    fn lateness_bounds_format() {
        assert_eq!(
            [micros(512.0), micros(2048.0), micros(f64::INFINITY)],
            ["512µs", "2.05ms", "more"]
        );
    }
}
