//! Runs the built `ticktock` binary the way CI and users do, and checks what it prints.

mod common;

use common::{TempReport, assert_refused, chart, chart_figures, printed, ticktock};

/// The smallest bench run: churn at one batch size, one sample per cell.
const TINY: [&str; 8] = [
    "bench",
    "--quick",
    "--workload",
    "churn",
    "--samples",
    "1",
    "--sizes",
    "32",
];

#[test]
fn bench_json_lists_all_four_implementations() {
    let output = ticktock(&[&TINY[..], &["--json"]].concat());
    assert!(output.status.success(), "{}", printed(&output));
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON array");
    assert_eq!(rows.len(), 4, "one row per implementation");
    for name in [
        "ticktock-wheel",
        "lazy-heap",
        "nexus-timer",
        "tokio-delay-queue",
    ] {
        let row = rows
            .iter()
            .find(|row| row["implementation"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(row["workload"], "churn");
        assert_eq!(row["parameter"], "32");
        assert_eq!(row["unit"], "ns/timer");
        assert_eq!(row["samples"], 1);
        assert_eq!(row["lost"], 0);
        for field in ["median", "min", "max", "ratio_to_ticktock"] {
            assert!(
                row[field].as_f64().is_some_and(|v| v > 0.0),
                "{name} {field}"
            );
        }
    }
}

#[test]
fn report_has_the_workloads_chart_and_table() {
    let report = TempReport::new("bench");
    let output = ticktock(&[&TINY[..], &["--report", report.arg()]].concat());
    assert!(output.status.success(), "{}", printed(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("## churn"),
        "the markdown still comes first: {stdout}"
    );
    assert!(stdout.contains(&format!("report written to {}", report.arg())));

    let html = report.read();
    let figures = chart_figures(&html);
    assert_eq!(figures.len(), 1, "one chart per workload that ran");
    let churn = chart(&figures, "churn");
    for name in [
        "ticktock-wheel",
        "lazy-heap",
        "nexus-timer",
        "tokio-delay-queue",
    ] {
        assert!(
            churn.contains(&format!(">{name}</text>")),
            "{name} not in the legend"
        );
        assert!(
            html.contains(&format!("<td>{name}</td><td>32</td>")),
            "{name} row"
        );
    }
    // 4 legend swatches and 4 bars, each bar with its min–max whisker (one sample: a point).
    assert_eq!(churn.matches("<rect").count(), 8);
    assert_eq!(churn.matches("class=\"whisker\"").count(), 12);
    assert!(html.contains("<th>ratio</th>") && html.contains("<td>1.00</td>"));
    assert!(html.contains("<dt>Command</dt>") && html.contains("--report"));
}

#[test]
fn bad_flags_are_rejected_without_a_panic() {
    for args in [
        &["bench", "--workload", "nope"][..],
        &["bench", "--samples", "0"],
        &["bench", "--sizes", "0"],
        &["bench", "--seed", "-1"],
        &["bench", "--report"],
    ] {
        assert_refused(args, 2);
    }
    // A report that could not be written is refused before minutes of measuring.
    for args in [
        &["bench", "--report", "/nonexistent-ticktock-dir/bench.html"][..],
        &["bench", "--report", "/"],
    ] {
        let stderr = assert_refused(args, 1);
        assert!(stderr.contains("could not write the report"), "{stderr}");
    }
}
