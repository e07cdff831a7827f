//! The building blocks of the self-contained HTML reports that `ticktock simulate`, `bench` and
//! `batch` write with `--report FILE.html`: the page with its header and styles, escaping,
//! number formatting, tables, figures, and (in [`chart`]) SVG line and bar charts.
//!
//! A page needs nothing outside itself: the CSS and the SVG are inline, no script, font or CDN.
//! The SVG is written by hand rather than with `plotters`: the charts are only lines and grouped
//! bars on linear axes from zero (a few hundred lines here). That adds no dependency and no build
//! time, keeps every label real, selectable text (escaped by [`Esc`]), and lets the page's CSS
//! style the charts. Every number that reaches the SVG goes through [`Num`], which writes
//! non-finite values as 0, so empty series, zeros and bad inputs never put `NaN` in the markup.

pub mod chart;

use std::fmt::{self, Display, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// `write!` into a `String`, which cannot fail (so the `Result` is dropped here, once).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use ::std::fmt::Write as _;
        let _ = write!($out, $($arg)*);
    }};
}
pub(crate) use w;

/// Series colours, in order of use; a report that gives ticktock a series gives it the first.
pub const PALETTE: [&str; 6] = [
    "#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030", "#718096",
];

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;\
padding:0 1em;color:#1a202c}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}\
dt{font-weight:600}dd{margin:0}code{background:#edf2f7;padding:0 .3em}table{border-collapse:\
collapse}th,td{border:1px solid #cbd5e0;padding:.25em .6em}td{text-align:right;\
font-variant-numeric:tabular-nums}td:first-child{text-align:left}th{background:#edf2f7}\
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em}figure.chart{margin:1.5em 0}\
figcaption{color:#4a5568}.pair{display:flex;flex-wrap:wrap;gap:1em}svg{max-width:100%;\
height:auto}svg text{font:11px system-ui,sans-serif;fill:#2d3748}.grid{stroke:#e2e8f0}\
.axis{stroke:#4a5568}.whisker{stroke:#1a202c;stroke-width:1.5}.scroll{overflow-x:auto}.scroll td{white-space:nowrap}";

/// One HTML page: `title`, a header naming the `command` that produced it, the `machine` it ran
/// on and when it was generated, then `body` (markup, inserted as it is).
pub fn page(title: &str, command: &str, machine: &str, body: &str) -> String {
    let (t, cmd, host) = (Esc(title), Esc(command), Esc(machine));
    let now = utc(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()));
    let mut out = String::with_capacity(body.len() + 4 * 1024);
    w!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{t}</h1>\n\
         <dl><dt>Command</dt><dd><code>{cmd}</code></dd><dt>Machine</dt><dd>{host}</dd>\
         <dt>Generated</dt><dd>{now}</dd></dl>\n</header>\n"
    );
    out.push_str(body);
    out.push_str("</body>\n</html>\n");
    out
}

/// Text escaped for HTML content and attribute values.
pub struct Esc<'a>(pub &'a str);

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
pub struct Num(pub f64);

impl Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", if self.0.is_finite() { self.0 } else { 0.0 })
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC` (Howard Hinnant's
/// `civil_from_days`).
pub fn utc(secs: u64) -> String {
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

/// A number for a table cell: `prec` decimals, or none with thousands separators; "—" when not
/// finite.
pub fn cell(v: f64, prec: Option<usize>) -> String {
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

/// A short axis or bar label: SI suffix, at most two decimals, trailing zeros dropped.
pub fn si(v: f64) -> String {
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

/// Appends a chart figure: `svg` (markup, as it is) with its `caption`, under the anchor `id`.
pub fn figure(out: &mut String, id: &str, svg: &str, caption: &str) {
    let (id, caption) = (Esc(id), Esc(caption));
    w!(out, "<figure class=\"chart\" id=\"{id}\">\n{svg}");
    w!(out, "<figcaption>{caption}</figcaption>\n</figure>\n");
}

/// Appends a table of text: `head` the column titles, `rows` the cells (all escaped). The first
/// column is left-aligned, the others right-aligned for numbers. Wide tables scroll sideways
/// rather than widen the page.
pub fn table<H, R, C>(out: &mut String, head: &[H], rows: &[R])
where
    H: AsRef<str>,
    R: AsRef<[C]>,
    C: AsRef<str>,
{
    out.push_str("<div class=\"scroll\">\n<table>\n<tr>");
    for h in head {
        w!(out, "<th>{}</th>", Esc(h.as_ref()));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for c in row.as_ref() {
            w!(out, "<td>{}</td>", Esc(c.as_ref()));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</div>\n");
}

/// Appends `lines` (text, escaped) as a bulleted list; nothing when there are none.
pub fn list<L: AsRef<str>>(out: &mut String, lines: &[L]) {
    if lines.is_empty() {
        return;
    }
    out.push_str("<ul>\n");
    for line in lines {
        w!(out, "<li>{}</li>\n", Esc(line.as_ref()));
    }
    out.push_str("</ul>\n");
}

/// Checks shared by the report renderers' tests.
#[cfg(test)]
pub mod testing {
    /// The text of the chart figure `id`, up to its `</figure>`.
    pub fn figure<'a>(html: &'a str, id: &str) -> Option<&'a str> {
        let start = html.find(&format!("<figure class=\"chart\" id=\"{id}\">"))?;
        let end = html[start..].find("</figure>")?;
        Some(&html[start..start + end])
    }

    /// A whole page, every element the renderers write closed, no `NaN` or infinity.
    pub fn check_well_formed(html: &str) {
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(!html.contains("NaN") && !html.contains("inf"));
        let count = |s: &str| html.matches(s).count();
        // Opening tags as the renderers write them: with attributes or bare.
        for (open, tag) in [
            ("<svg ", "svg"),
            ("<figure ", "figure"),
            ("<table>", "table"),
            ("<section>", "section"),
            ("<text ", "text"),
            ("<rect ", "rect"),
            ("<ul>", "ul"),
            ("<li>", "li"),
            ("<tr>", "tr"),
        ] {
            assert_eq!(count(open), count(&format!("</{tag}>")), "{tag}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(Num(f64::NAN).to_string(), "0.0");
    }

    #[test]
    fn page_table_and_list_escape_their_text() {
        let mut body = String::new();
        table(&mut body, &["a<b"], &[vec!["x & y"]]);
        list(&mut body, &["\"quoted\""]);
        list::<&str>(&mut body, &[]);
        figure(&mut body, "f'", "<svg role=\"img\"></svg>\n", "c>d");
        let html = page("<script>alert('x')</script>", "a \"b\" <c>", "m&m", &body);
        testing::check_well_formed(&html);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("a &quot;b&quot; &lt;c&gt;") && html.contains("m&amp;m"));
        assert!(html.contains("<th>a&lt;b</th>") && html.contains("<td>x &amp; y</td>"));
        assert!(html.contains("<li>&quot;quoted&quot;</li>"));
        assert_eq!(html.matches("<ul>").count(), 1);
        assert!(html.contains("id=\"f&#39;\"") && html.contains("c&gt;d"));
    }
}
