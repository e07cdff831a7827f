//! SVG charts on linear axes from zero: lines over a numeric x axis ([`Chart::lines`]) and
//! grouped bars over categories, optionally with min–max whiskers ([`Chart::bars`]).

use super::{Esc, Num, si, w};

/// Chart height and plot margins, in SVG user units.
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;
/// The plot area's bottom edge.
const BASE: f64 = HEIGHT - BOTTOM;
/// Line spacing of a category label's lines under the x axis.
const LABEL_LINE: f64 = 12.0;

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

/// One chart series: legend name, colour, points (bar charts use the y values only, the i-th
/// point in the i-th category), and for bars optionally a (min, max) range per point, drawn as
/// a whisker.
pub struct Series {
    /// Name in the legend and the tooltips.
    pub name: String,
    /// Fill or stroke colour (a CSS colour).
    pub colour: &'static str,
    /// The points: (x, y) for lines, (anything, value) per category for bars.
    pub points: Vec<(f64, f64)>,
    /// Bars only: (min, max) per point; empty for no whiskers.
    pub spread: Vec<(f64, f64)>,
}

impl Series {
    /// A series without whiskers.
    pub fn new(name: impl Into<String>, colour: &'static str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            colour,
            points,
            spread: Vec::new(),
        }
    }

    /// The points with both coordinates finite.
    fn finite(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
        self.points.iter().copied().filter(finite)
    }

    /// Bars: the value in category `i`, `None` when there is none or it is not finite (no bar
    /// is drawn then, rather than a bar of 0 that would read as a measurement).
    fn value(&self, i: usize) -> Option<f64> {
        let y = self.points.get(i)?.1;
        y.is_finite().then_some(y.max(0.0))
    }

    /// Bars: the whisker of category `i`, when both ends are finite.
    fn whisker(&self, i: usize) -> Option<(f64, f64)> {
        let (lo, hi) = *self.spread.get(i)?;
        (lo.is_finite() && hi.is_finite()).then_some((lo.max(0.0), hi.max(0.0)))
    }
}

/// A chart on linear axes from 0: `width` wide, `axes` the (x, y) titles.
pub struct Chart<'a> {
    /// Width in SVG units (the page scales it down to fit).
    pub width: f64,
    /// The series, in legend order.
    pub series: Vec<Series>,
    /// The x and y axis titles.
    pub axes: (&'a str, &'a str),
}

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
    pub fn lines(&self) -> String {
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
    /// index), with the series' whisker on top where it has one. A category label may have a
    /// second line after a `\n`.
    pub fn bars(&self, categories: &[String]) -> String {
        // The axis reaches the highest bar or whisker.
        let max = (self.series.iter())
            .flat_map(|s| (0..categories.len()).map(move |i| (s, i)))
            .flat_map(|(s, i)| s.value(i).into_iter().chain(s.whisker(i).map(|w| w.1)))
            .fold(0.0, f64::max);
        let (mut svg, top) = self.open(max);
        let group = (self.right() - LEFT) / categories.len().max(1) as f64;
        let bar = group * 0.8 / self.series.len().max(1) as f64;
        let every = categories.len().div_ceil(12).max(1);
        for (i, category) in categories.iter().enumerate() {
            let x0 = LEFT + group * i as f64;
            if i % every == 0 {
                for (k, line) in category.lines().enumerate() {
                    let y = BASE + 16.0 + LABEL_LINE * k as f64;
                    svg.text((x0 + group / 2.0, y), "middle", line);
                }
            }
            let category = category.replace('\n', ", ");
            for (j, s) in self.series.iter().enumerate() {
                let Some(v) = s.value(i) else { continue };
                let x = x0 + group * 0.1 + bar * j as f64;
                let (y, v) = (Self::y(v, top), si(v));
                svg.rect(
                    (x, y),
                    (bar, BASE - y),
                    s.colour,
                    &format!("{}, {category}: {v}", s.name),
                );
                if let Some((lo, hi)) = s.whisker(i) {
                    let (mid, cap) = (x + bar / 2.0, (bar / 4.0).min(6.0));
                    let (lo, hi) = (Self::y(lo, top), Self::y(hi, top));
                    svg.line("whisker", (mid, lo), (mid, hi));
                    svg.line("whisker", (mid - cap, lo), (mid + cap, lo));
                    svg.line("whisker", (mid - cap, hi), (mid + cap, hi));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(
            (ticks(0.0).0, ticks(0.0).1.len(), ticks(f64::NAN).0),
            (1.0, 6, 1.0)
        );
        assert_eq!((ticks(9.0).0, ticks(1234.0).0), (10.0, 1500.0));
    }

    #[test]
    fn bars_draw_whiskers_skip_missing_values_and_split_labels() {
        let mut a = Series::new("a", "#000", vec![(0.0, 10.0), (1.0, f64::NAN)]);
        a.spread = vec![(8.0, 40.0), (1.0, 2.0)];
        let b = Series::new("b<", "#111", vec![(0.0, 20.0)]);
        let chart = Chart {
            width: 400.0,
            series: vec![a, b],
            axes: ("x", "y"),
        };
        let svg = chart.bars(&["one\nline two".into(), "two".into()]);
        // Two legend swatches and two bars: a's NaN and b's missing second value draw none.
        assert_eq!(svg.matches("<rect").count(), 4);
        // One whisker (a stem and two caps), on the bar that has a value; its top sets the axis.
        assert_eq!(svg.matches("class=\"whisker\"").count(), 3);
        assert!(svg.contains(">40</text>") && !svg.contains(">50</text>"));
        assert!(svg.contains(">one</text>") && svg.contains(">line two</text>"));
        assert!(svg.contains("<title>a, one, line two: 10</title>"));
        assert!(svg.contains("b&lt;") && !svg.contains("b<"));
        let empty = Chart {
            width: 400.0,
            series: Vec::new(),
            axes: ("", ""),
        };
        assert!(empty.bars(&[]).contains("no data") && empty.lines().contains("no samples"));
    }
}
