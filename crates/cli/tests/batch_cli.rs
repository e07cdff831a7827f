//! Runs the built `ticktock batch` the way CI does, one quick scenario at a time, and checks
//! that its figures add up, that its report has its charts, and how it refuses bad input.

mod common;

use common::{TempReport, assert_refused, chart, chart_figures, f64_of, printed, ticktock, u64_of};
use serde_json::Value;

/// Checks what every row must satisfy, whatever its scenario: every request accounted for,
/// batches within the limit, quantiles in order, no problem reported. Returns (requests,
/// served, rejected).
fn check_row(row: &Value, limit: u64) -> (u64, u64, u64) {
    let load = &row["load"];
    let (requests, served, rejected) = (
        u64_of(row, "requests"),
        u64_of(row, "served"),
        u64_of(row, "rejected"),
    );
    let unaccounted = ["timed_out", "misrouted", "unfinished"];
    let lost: u64 = unaccounted.iter().map(|field| u64_of(row, field)).sum();
    assert_eq!(lost, 0, "{load}: {row}");
    assert_eq!(served + rejected, requests, "{load}: {row}");
    assert!(served > 0, "{load}");
    assert_eq!(row["problems"].as_array().map(Vec::len), Some(0), "{load}");

    let (seconds, throughput) = (f64_of(row, "seconds"), f64_of(row, "throughput"));
    assert!(seconds > 0.0, "{load}");
    let expected = served as f64 / seconds;
    assert!((throughput - expected).abs() <= expected * 1e-6, "{load}");

    let batches = u64_of(row, "batches");
    let (mean, max) = (f64_of(row, "batch_mean"), u64_of(row, "batch_max"));
    assert!(
        batches > 0 && batches <= served,
        "{load}: {batches} batches"
    );
    assert!(
        1.0 <= mean && mean <= max as f64 && max <= limit,
        "{load}: {row}"
    );
    let (fill_mean, fill_max) = (f64_of(row, "fill_mean"), f64_of(row, "fill_max"));
    assert!(
        0.0 < fill_mean && fill_mean <= fill_max && fill_max <= 1.0,
        "{load}"
    );
    assert!(u64_of(row, "queue_depth_max") <= u64_of(row, "queue_capacity"));
    for latency in ["latency_us", "batcher_latency_us"] {
        let q = &row[latency];
        let [p50, p95, p99, max] = ["p50", "p95", "p99", "max"].map(|k| f64_of(q, k));
        assert!(
            0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
            "{load}: {q}"
        );
    }
    (requests, served, rejected)
}

#[test]
fn seed_scenario_json_counts_add_up() {
    let output = ticktock(&["batch", "--quick", "--json", "--scenario", "seed"]);
    assert!(output.status.success(), "{}", printed(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(report["run"], "quick");
    let limit = u64_of(&report, "max_batch_size");
    assert_eq!(limit, 32);
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));
    let rows = report["rows"].as_array().expect("rows");
    // The seed's three runs: 100 requests from 10 callers, 200 from 20, 500 from 50.
    assert_eq!(rows.len(), 3);
    let mut per_round = Vec::new();
    for row in rows {
        assert_eq!(row["scenario"], "seed");
        let (requests, served, rejected) = check_row(row, limit);
        // `call` waits for queue space: nothing is refused, everything served.
        assert_eq!((served, rejected), (requests, 0));
        let callers = u64_of(row, "callers");
        assert_eq!(requests % callers, 0, "every caller sends its share");
        per_round.push(requests / callers);
    }
    // Each caller sends 10 per round, the same number of rounds in every row.
    assert!(per_round.windows(2).all(|w| w[0] == w[1]), "{per_round:?}");

    // The comparison with the seed: every KPI listed, the seed runs compared, the rest not run.
    let comparison = report["comparison"].as_array().expect("comparison");
    assert_eq!(comparison.len(), 8);
    let verdict = |kpi: &str| {
        let check = comparison.iter().find(|c| c["kpi"].as_str() == Some(kpi));
        check.map(|c| c["verdict"].clone())
    };
    assert_eq!(
        verdict("seed run: 500 requests from 50 callers"),
        Some("info".into())
    );
    assert_eq!(verdict("largest batch / limit"), Some("met".into()));
    assert_eq!(verdict("lone request latency"), Some("not_run".into()));
}

#[test]
fn closed_loop_json_and_report_account_for_every_request() {
    let report = TempReport::new("batch");
    let args = [
        "batch",
        "--quick",
        "--json",
        "--scenario",
        "closed-loop",
        "--report",
        report.arg(),
    ];
    let output = ticktock(&args);
    assert!(output.status.success(), "{}", printed(&output));
    // Under `--json` the note about the report goes to stderr: stdout stays one JSON object.
    let json: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("report written to {}", report.arg())));
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "1, 50 and 500 callers × 2 handlers");
    for row in rows {
        assert_eq!(row["scenario"], "closed-loop");
        let (requests, served, _) = check_row(row, 32);
        // The queue bound (8,192) is far above 500 callers: nothing refused.
        assert_eq!(served, requests, "{row}");
        // One caller never has more than one request in flight.
        if u64_of(row, "callers") == 1 {
            assert_eq!(u64_of(row, "batch_max"), 1, "{row}");
        }
    }

    let html = report.read();
    let figures = chart_figures(&html);
    let ids: Vec<&str> = figures.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "closed-loop-latency",
            "closed-loop-throughput",
            "closed-loop-fill",
            "vs-seed-throughput",
            "vs-seed-latency",
            "vs-seed-lone-fill"
        ]
    );
    let latency = chart(&figures, "closed-loop-latency");
    for series in [
        ">p50</text>",
        ">p95</text>",
        ">p99</text>",
        ">500 callers</text>",
    ] {
        assert!(latency.contains(series), "{series}");
    }
    // 1 legend swatch + a bar per row.
    assert_eq!(
        chart(&figures, "closed-loop-throughput")
            .matches("<rect")
            .count(),
        7
    );
    assert!(chart(&figures, "vs-seed-lone-fill").contains(">625</text>"));
    // The seed scenario did not run: 2 legend swatches + the seed's 3 bars, none of ours.
    assert_eq!(
        chart(&figures, "vs-seed-throughput")
            .matches("<rect")
            .count(),
        5
    );
    // The scenario's table and the comparison with the seed.
    assert_eq!(html.matches("<table>").count(), 2);
    assert!(html.contains("<td>no-op</td><td>50 callers</td>"));
    assert!(html.contains("<th>verdict</th>") && html.contains("<td>not run</td>"));
}

#[test]
fn bad_flags_are_rejected() {
    for args in [
        &["batch", "--scenario", "nope"][..],
        &["batch", "--scenario"],
        &["batch", "--quick=yes"],
        &["batch", "--report"],
        &["batch", "--bogus"],
        &["batch", "extra"],
    ] {
        assert_refused(args, 2);
    }
    // Refused before the run, not after it.
    for args in [
        &["batch", "--report", "/nonexistent-ticktock-dir/batch.html"][..],
        &["batch", "--quick", "--report", "/"],
    ] {
        let stderr = assert_refused(args, 1);
        assert!(stderr.contains("could not write the report"), "{stderr}");
    }
}
