//! Runs the built `ticktock` binary the way CI and users do, and checks what it prints.

use std::process::Command;

fn ticktock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ticktock"))
        .args(args)
        .output()
        .expect("the ticktock binary runs")
}

#[test]
fn bench_json_lists_all_four_implementations() {
    let output = ticktock(&[
        "bench",
        "--quick",
        "--workload",
        "churn",
        "--json",
        "--samples",
        "1",
        "--sizes",
        "32",
    ]);
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
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
fn bad_flags_are_rejected_by_clap_without_a_panic() {
    for args in [
        &["bench", "--workload", "nope"][..],
        &["bench", "--samples", "0"],
        &["bench", "--sizes", "0"],
        &["bench", "--seed", "-1"],
    ] {
        let output = ticktock(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
