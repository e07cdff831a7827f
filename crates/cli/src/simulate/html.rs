//! One self-contained HTML report of a simulation run: a header, a summary table with one column
//! per backend (and a ratio column when two backends ran), and SVG charts of the lateness
//! distribution, operations per second and live timers over time, and a backend comparison.
//!
//! The page needs nothing outside itself: the CSS and the SVG are inline, no script, font or
//! CDN. The SVG is written by hand rather than with `plotters`: the charts are only lines and
//! grouped bars on linear axes from zero (a couple of hundred lines here). That adds no
//! dependency and no build time, keeps every label real, selectable text (escaped by [`Esc`]),
//! and lets the page's CSS style the charts. Every number that reaches the SVG goes through
//! [`Num`], which writes non-finite values as 0, so empty series, zeros and bad inputs never put
//! `NaN` in the markup.

use std::fmt::{self, Display, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use super::results::{Backend, Sample, SimResult};

/// `write!` into a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Chart height and plot margins, in SVG user units.
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;
/// Series colours: ticktock, tokio, then results without a backend.
const PALETTE: [&str; 4] = ["#2b6cb0", "#dd6b20", "#2f855a", "#805ad5"];

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;\
padding:0 1em;color:#1a202c}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}\
dt{font-weight:600}dd{margin:0}code{background:#edf2f7;padding:0 .3em}table{border-collapse:\
collapse}th,td{border:1px solid #cbd5e0;padding:.25em .6em}td{text-align:right;\
font-variant-numeric:tabular-nums}td:first-child{text-align:left}th{background:#edf2f7}\
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em}figure.chart{margin:1.5em 0}\
figcaption{color:#4a5568}.pair{display:flex;flex-wrap:wrap;gap:1em}svg{max-width:100%;\
height:auto}svg text{font:11px system-ui,sans-serif;fill:#2d3748}.grid{stroke:#e2e8f0}\
.axis{stroke:#4a5568}";

/// Renders `results` (one per backend) as one HTML page; `command` is the command line that
/// produced them and `machine` a description of the host.
pub fn render(results: &[SimResult], title: &str, command: &str, machine: &str) -> String {
    let (t, cmd, host) = (Esc(title), Esc(command), Esc(machine));
    let now = utc(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()));
    let mut out = String::with_capacity(32 * 1024);
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{t}</h1>\n\
         <dl><dt>Command</dt><dd><code>{cmd}</code></dd><dt>Machine</dt><dd>{host}</dd>\
         <dt>Generated</dt><dd>{now}</dd></dl>\n</header>\n"
    );
    summary(&mut out, results);
    charts(&mut out, results);
    out.push_str("</body>\n</html>\n");
    out
}

/// Text escaped for HTML content and attribute values.
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A number for the SVG: one decimal, 0 when not finite.
struct Num(f64);

impl Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", if self.0.is_finite() { self.0 } else { 0.0 })
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC` (Howard Hinnant's
/// `civil_from_days`).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
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
        None => PALETTE[2 + i % 2],
    }
}

/// A number for a table cell: `prec` decimals, or none with thousands separators.
fn cell(v: f64, prec: Option<usize>) -> String {
    match prec {
        _ if !v.is_finite() => "—".to_owned(),
        Some(prec) => format!("{v:.prec$}"),
        None => {
            let digits = format!("{:.0}", v.abs());
            let mut out = String::from(if v <= -0.5 { "-" } else { "" });
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
    }
}

/// A short axis label: SI suffix, at most two decimals, trailing zeros dropped.
fn si(v: f64) -> String {
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = cell(scaled, Some(2));
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    format!(
        "{}{suffix}",
        if text.contains('.') { trimmed } else { &text }
    )
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
        let a = usize::from(results[1].backend == Some(Backend::Ticktock));
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

/// A "nice" axis from 0 to at least `max`: its top and its ticks.
fn ticks(max: f64) -> (f64, Vec<f64>) {
    let usable = max.is_finite() && max > 0.0;
    let max = if usable { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let nice = [1.0, 2.0, 5.0].into_iter().find(|&n| raw / mag <= n);
    let step = mag * nice.unwrap_or(10.0);
    let n = ((max / step).ceil() as usize).clamp(1, 10);
    (step * n as f64, (0..=n).map(|i| step * i as f64).collect())
}

/// SVG markup being written; every number goes through [`Num`], every text through [`Esc`].
struct Svg(String);

impl Svg {
    fn text(&mut self, (x, y): (f64, f64), anchor: &str, body: &str) {
        let (x, y, body) = (Num(x), Num(y), Esc(body));
        w!(
            self.0,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\">{body}</text>\n"
        );
    }

    fn line(&mut self, class: &str, (x1, y1): (f64, f64), (x2, y2): (f64, f64)) {
        let (x1, y1, x2, y2) = (Num(x1), Num(y1), Num(x2), Num(y2));
        w!(
            self.0,
            r#"<line class="{class}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"/>"#
        );
    }

    /// A filled rectangle with a tooltip.
    fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str, tip: &str) {
        let (x, y, w, h, tip) = (Num(x), Num(y), Num(w), Num(h), Esc(tip));
        w!(
            self.0,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}">"#
        );
        w!(self.0, "<title>{tip}</title></rect>\n");
    }
}

/// One chart series: legend name, colour, points (bar charts use the y values only).
struct Series {
    name: String,
    colour: &'static str,
    points: Vec<(f64, f64)>,
}

impl Series {
    /// The points with both coordinates finite.
    fn finite(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        self.points.iter().copied().filter(finite)
    }
}

/// A chart on linear axes from 0: `width` wide, `axes` the (x, y) titles.
struct Chart<'a> {
    width: f64,
    series: Vec<Series>,
    axes: (&'a str, &'a str),
}

/// The plot area's bottom edge.
const BASE: f64 = HEIGHT - BOTTOM;

impl Chart<'_> {
    fn right(&self) -> f64 {
        self.width - RIGHT
    }

    fn y(v: f64, top: f64) -> f64 {
        BASE - (BASE - TOP) * (v / top).clamp(0.0, 1.0)
    }

    /// Opens the SVG: legend, horizontal grid with y labels, axes, axis titles. Returns it and
    /// the y axis's top.
    fn open(&self, y_max: f64) -> (Svg, f64) {
        let (top, y_ticks) = ticks(y_max);
        let (w, h, right) = (Num(self.width), Num(HEIGHT), self.right());
        let mut svg = Svg(format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" \
             height=\"{h}\" role=\"img\">\n"
        ));
        let mut x = LEFT;
        for s in &self.series {
            svg.rect((x, 8.0), (10.0, 10.0), s.colour, &s.name);
            svg.text((x + 14.0, 17.0), "start", &s.name);
            x += 24.0 + 7.0 * s.name.chars().count() as f64;
        }
        for v in y_ticks {
            let y = Self::y(v, top);
            svg.line("grid", (LEFT, y), (right, y));
            svg.text((LEFT - 6.0, y + 4.0), "end", &si(v));
        }
        svg.line("axis", (LEFT, TOP), (LEFT, BASE));
        svg.line("axis", (LEFT, BASE), (right, BASE));
        svg.text(((LEFT + right) / 2.0, HEIGHT - 6.0), "middle", self.axes.0);
        let (mid, title) = (Num((TOP + BASE) / 2.0), Esc(self.axes.1));
        w!(
            svg.0,
            "<text transform=\"translate(14 {mid}) rotate(-90)\" text-anchor=\"middle\">"
        );
        w!(svg.0, "{title}</text>\n");
        (svg, top)
    }

    /// One line per series.
    fn lines(&self) -> String {
        let all: Vec<(f64, f64)> = self.series.iter().flat_map(Series::finite).collect();
        let (x_top, x_ticks) = ticks(all.iter().fold(0.0, |m, p| p.0.max(m)));
        let x_px = |x: f64| LEFT + (self.right() - LEFT) * (x / x_top).clamp(0.0, 1.0);
        let (mut svg, top) = self.open(all.iter().fold(0.0, |m, p| p.1.max(m)));
        for v in x_ticks {
            svg.line("axis", (x_px(v), BASE), (x_px(v), BASE + 4.0));
            svg.text((x_px(v), BASE + 16.0), "middle", &si(v));
        }
        for s in &self.series {
            let c = s.colour;
            let xy = |(x, y)| format!("{},{}", Num(x_px(x)), Num(Self::y(y, top)));
            let mut points: Vec<String> = s.finite().map(xy).collect();
            // A lone point twice: a zero-length line, drawn as a dot by its round caps.
            points.extend(points.first().filter(|_| points.len() == 1).cloned());
            if !points.is_empty() {
                let points = points.join(" ");
                w!(
                    svg.0,
                    r#"<polyline fill="none" stroke-width="2" stroke-linecap="round" "#
                );
                w!(svg.0, "stroke=\"{c}\" points=\"{points}\"/>\n");
            }
        }
        if all.is_empty() {
            svg.text((self.width / 2.0, HEIGHT / 2.0), "middle", "no samples");
        }
        svg.0 + "</svg>\n"
    }

    /// Grouped bars: one group per category, one bar per series (its y at the category's
    /// index).
    fn bars(&self, categories: &[String]) -> String {
        let value = |s: &Series, i: usize| s.points.get(i).map_or(0.0, |p| p.1).max(0.0);
        let finite = |v: &f64| v.is_finite();
        let each = |s| (0..categories.len()).map(move |i| value(s, i));
        let max = self
            .series
            .iter()
            .flat_map(each)
            .filter(finite)
            .fold(0.0, f64::max);
        let (mut svg, top) = self.open(max);
        let group = (self.right() - LEFT) / categories.len().max(1) as f64;
        let bar = group * 0.8 / self.series.len().max(1) as f64;
        let every = categories.len().div_ceil(12).max(1);
        for (i, category) in categories.iter().enumerate() {
            let x0 = LEFT + group * i as f64;
            if i % every == 0 {
                svg.text((x0 + group / 2.0, BASE + 16.0), "middle", category);
            }
            for (j, s) in self.series.iter().enumerate() {
                let (v, x) = (value(s, i), x0 + group * 0.1 + bar * j as f64);
                let (y, v) = (Self::y(v, top), si(v));
                svg.rect(
                    (x, y),
                    (bar, BASE - y),
                    s.colour,
                    &format!("{}, {category}: {v}", s.name),
                );
                if categories.len() == 1 {
                    svg.text((x + bar / 2.0, y - 4.0), "middle", &v);
                }
            }
        }
        if categories.is_empty() {
            svg.text((self.width / 2.0, HEIGHT / 2.0), "middle", "no data");
        }
        svg.0 + "</svg>\n"
    }
}

fn figure(out: &mut String, id: &str, svg: &str, caption: &str) {
    let caption = Esc(caption);
    w!(out, "<figure class=\"chart\" id=\"{id}\">\n{svg}");
    w!(out, "<figcaption>{caption}</figcaption>\n</figure>\n");
}

fn charts(out: &mut String, results: &[SimResult]) {
    let series = |points: &dyn Fn(&SimResult) -> Vec<(f64, f64)>| -> Vec<Series> {
        let one = |(i, r)| Series {
            name: label(r, i),
            colour: colour(r, i),
            points: points(r),
        };
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

    /// The text of the chart figure `id`, up to its `</figure>`.
    fn figure<'a>(html: &'a str, id: &str) -> Option<&'a str> {
        let start = html.find(&format!("<figure class=\"chart\" id=\"{id}\">"))?;
        let end = html[start..].find("</figure>")?;
        Some(&html[start..start + end])
    }

    fn check_well_formed(html: &str) {
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(!html.contains("NaN") && !html.contains("inf"));
        let count = |s: String| html.matches(&s).count();
        for tag in ["svg", "figure", "table", "section", "text", "rect"] {
            assert_eq!(
                count(format!("<{tag}")),
                count(format!("</{tag}>")),
                "{tag}"
            );
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
    fn helpers_format() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(
            [cell(1_234_567.0, None), cell(12.0, None)],
            ["1,234,567", "12"]
        );
        assert_eq!([cell(f64::NAN, None), cell(1.26, Some(1))], ["—", "1.3"]);
        assert_eq!(
            [si(2500.0), si(0.5), si(3e6), si(40.0)],
            ["2.5k", "0.5", "3M", "40"]
        );
        assert_eq!(
            [micros(512.0), micros(2048.0), micros(f64::INFINITY)],
            ["512µs", "2.05ms", "more"]
        );
        assert_eq!(
            (ticks(0.0).0, ticks(0.0).1.len(), ticks(f64::NAN).0),
            (1.0, 6, 1.0)
        );
        assert_eq!((ticks(9.0).0, ticks(1234.0).0), (10.0, 1500.0));
    }
}
