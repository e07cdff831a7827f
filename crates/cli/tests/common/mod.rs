//! Helpers shared by the binary-level tests: run the built `ticktock`, give a report a temporary
//! file, check a report page's structure, read JSON figures, and check how a bad command line is
//! refused.
//!
//! Every test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Runs the built binary with `args` to the end and returns what it printed.
pub fn ticktock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticktock"))
        .args(args)
        .output()
        .expect("the ticktock binary runs")
}

/// Standard output and error, for assertion messages.
pub fn printed(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A report file in the temporary directory, unique to this process and call, removed on drop.
pub struct TempReport(PathBuf);

impl TempReport {
    /// A fresh path ending in `{name}.html` (nothing is created).
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = format!(
            "ticktock-test-{}-{nanos}-{}-{name}.html",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self(std::env::temp_dir().join(unique))
    }

    /// The path, as a command-line argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("the temporary directory is UTF-8")
    }

    /// The report the binary wrote.
    pub fn read(&self) -> String {
        std::fs::read_to_string(&self.0)
            .unwrap_or_else(|err| panic!("no report at {}: {err}", self.0.display()))
    }
}

impl Drop for TempReport {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Checks that `html` is a whole page whose every `<svg>` is closed before the next opens (and
/// holds no `NaN`), and returns its chart figures: (id, the figure's markup).
pub fn chart_figures(html: &str) -> Vec<(String, String)> {
    assert!(html.starts_with("<!DOCTYPE html>"), "not a page");
    assert!(html.trim_end().ends_with("</html>"), "page not closed");
    assert!(!html.contains("NaN"), "NaN in the page");
    let mut rest = html;
    while let Some(open) = rest.find("<svg") {
        let after = &rest[open + 4..];
        let close = after.find("</svg>").expect("an <svg> is never closed");
        assert!(
            !after[..close].contains("<svg"),
            "an <svg> opens inside another"
        );
        rest = &after[close..];
    }
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    html.split("<figure class=\"chart\" id=\"")
        .skip(1)
        .map(|part| {
            let (id, body) = part.split_once('"').expect("the id is quoted");
            let end = body.find("</figure>").expect("a figure is never closed");
            (id.to_owned(), body[..end].to_owned())
        })
        .collect()
}

/// The figure `id` of `figures`, which must be there with a chart and a caption.
pub fn chart<'a>(figures: &'a [(String, String)], id: &str) -> &'a str {
    let (_, body) = figures
        .iter()
        .find(|(name, _)| name == id)
        .unwrap_or_else(|| panic!("no chart {id}"));
    assert!(
        body.contains("<svg") && body.contains("<figcaption>"),
        "{id}: {body}"
    );
    body
}

/// Runs `args`, which must be refused: exit code `code`, nothing on standard output, an error
/// on standard error and no panic. Our own refusals (code 1) are one line; clap's (code 2) add
/// a usage line and a hint, a handful of lines. Returns standard error.
pub fn assert_refused(args: &[&str], code: i32) -> String {
    let output = ticktock(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "{args:?} printed: {}",
        printed(&output)
    );
    assert!(stderr.contains("error"), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let lines = stderr.lines().count();
    let most = if code == 1 { 1 } else { 8 };
    assert!(lines <= most, "{args:?}: {lines} lines: {stderr}");
    stderr.into_owned()
}

/// `value[field]` as a count, or a panic naming it.
pub fn u64_of(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count: {value}"))
}

/// `value[field]` as a number, or a panic naming it.
pub fn f64_of(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number: {value}"))
}
