//! Runs the built `ticktock quic` the way CI does and checks its figures: a real QUIC load on
//! loopback, on ticktock's quinn runtime and on quinn's own tokio runtime.

use std::process::Command;

fn ticktock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ticktock"))
        .args(args)
        .output()
        .expect("the ticktock binary runs")
}

fn int_of(object: &serde_json::Value, field: &str) -> u64 {
    object[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {object}"))
}

#[test]
fn quick_compare_echoes_every_byte_and_closes_every_idle_connection() {
    let output = ticktock(&["quic", "--quick", "--compare", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(report["command"], "quic");
    assert_eq!(report["config"]["connections"], 100);
    let results = report["results"].as_array().expect("results");
    // The driver thread, the timerfd driver task (Linux only) and quinn's tokio runtime.
    let runtimes: &[&str] = if cfg!(target_os = "linux") {
        &["ticktock", "ticktock-timerfd", "tokio"]
    } else {
        &["ticktock", "tokio"]
    };
    assert_eq!(results.len(), runtimes.len(), "one result per runtime");
    for &runtime in runtimes {
        let r = results
            .iter()
            .find(|r| r["runtime"] == runtime)
            .unwrap_or_else(|| panic!("{runtime} missing"));
        let int = |field: &str| {
            r[field]
                .as_u64()
                .unwrap_or_else(|| panic!("{runtime} {field}"))
        };
        assert_eq!(int("established"), 100, "{runtime}");
        assert!(int("bytes_echoed") > 0, "{runtime}: nothing echoed");
        assert_eq!(int("mismatched_bytes"), 0, "{runtime}");
        assert_eq!(int("bytes_echoed") % 2048, 0, "{runtime}: whole messages");
        assert_eq!(
            int("echoes") * 2048,
            int("bytes_echoed"),
            "{runtime}: every message came back intact"
        );
        assert_eq!(int("errors"), 0, "{runtime}: {}", r["first_error"]);
        assert_eq!(int("server_stream_errors"), 0, "{runtime}");
        assert_eq!(int("unfinished"), 0, "{runtime}");
        let idle = &r["idle"];
        assert_eq!(idle["expected"], 20, "{runtime}");
        assert_eq!(
            idle["observed"], idle["expected"],
            "{runtime}: every idle connection timed out"
        );
        assert_eq!(idle["other_ends"], 0, "{runtime}");
        let timer = &r["timer"];
        assert_eq!(timer["early_wakes"], 0, "{runtime}: a timer woke early");
        // Each idle connection ends on an idle timeout's wake-up (on both sides, in fact).
        let closing = timer["closing_wakes"].as_u64().expect("closing wake-ups");
        assert!(
            closing >= 20 && closing <= int_of(timer, "wakes"),
            "{runtime}: {timer}"
        );
        assert!(
            timer["closing_wakes_over_2ms"]
                .as_u64()
                .is_some_and(|late| late <= closing)
        );
        // The idle timeouts, due before any active client closes: one on each side of each
        // idle connection. (On a machine so loaded that an idle client's last echo outlasts
        // the load's margin, its timeouts fall after the split and count with the drain ends.)
        let idle_timeouts = int_of(timer, "idle_timeout_wakes");
        assert!((1..=40).contains(&idle_timeouts), "{runtime}: {timer}");
        assert!(
            int_of(timer, "idle_timeout_wakes_over_2ms") <= idle_timeouts
                && timer["idle_timeout_wake_max_us"]
                    .as_f64()
                    .is_some_and(|max| max <= timer["closing_wake_max_us"].as_f64().unwrap_or(0.0)),
            "{runtime}: {timer}"
        );
        assert!(timer["wakes"].as_u64().is_some_and(|w| w > 0), "{runtime}");
        assert!(
            timer["resets"].as_u64().is_some_and(|n| n > 0)
                && timer["polls"].as_u64().is_some_and(|n| n > 0),
            "{runtime}: {timer}"
        );
        for field in ["bytes_per_s", "handshakes_per_s", "cpu_load_s"] {
            assert!(
                r[field].as_f64().is_some_and(|v| v > 0.0),
                "{runtime} {field}"
            );
        }
        // A timer never wakes before its deadline, so no wake-up lateness is negative.
        assert!(timer["wake_max_us"].as_f64().is_some_and(|v| v >= 0.0));
        // The client sees a close at least the idle timeout after its last reply, give or
        // take quinn's packet stamp (a receive pass); never a whole timeout early.
        let min = idle["lateness_ms"]["min"].as_f64().expect("lateness");
        assert!(
            min > -1000.0,
            "{runtime}: an idle close came {min} ms early"
        );
    }
    for (result, runtime) in results.iter().zip(runtimes) {
        assert_eq!(result["runtime"], *runtime, "run order");
    }
    for ticktock in &results[..runtimes.len() - 1] {
        assert!(
            ticktock["service"]["fired"].as_u64().is_some_and(|n| n > 0),
            "the service fired the timers: {}",
            ticktock["service"]
        );
    }
    // One comparison with tokio per ticktock runtime, in run order.
    let comparisons = report["comparisons"].as_array().expect("comparisons");
    assert_eq!(comparisons.len(), runtimes.len() - 1);
    for (comparison, runtime) in comparisons.iter().zip(runtimes) {
        assert_eq!(comparison["runtime"], *runtime);
        for field in [
            "bytes_per_s",
            "cpu_load",
            "cpu_per_mib",
            "handshakes_per_s",
            "timer_operations",
        ] {
            assert!(
                comparison[field].as_f64().is_some_and(|v| v > 0.0),
                "comparison {field}: {comparison}"
            );
        }
        assert!(
            comparison["wakes_over_2ms"]
                .as_f64()
                .is_some_and(|v| v >= 0.0)
        );
    }
}

/// The service's driver as a task on the runtime's workers instead of a thread of its own.
#[test]
fn quick_run_with_the_driver_task_echoes_every_byte_and_closes_every_idle_connection() {
    let output = ticktock(&["quic", "--quick", "--runtime", "ticktock-task", "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["runtime"], "ticktock-task");
    assert_eq!(r["established"], 100);
    assert_eq!(r["mismatched_bytes"], 0);
    assert!(r["bytes_echoed"].as_u64().is_some_and(|b| b > 0));
    assert_eq!(r["errors"], 0, "{}", r["first_error"]);
    assert_eq!(r["idle"]["observed"], r["idle"]["expected"]);
    assert_eq!(r["timer"]["early_wakes"], 0, "a timer woke early");
    assert!(
        r["service"]["fired"].as_u64().is_some_and(|n| n > 0),
        "the task driver fired the timers: {}",
        r["service"]
    );
}

#[test]
fn bad_flags_are_rejected_by_clap_without_a_panic() {
    for args in [
        &["quic", "--connections", "many"][..],
        &["quic", "--connections", "-1"],
        &["quic", "--duration", "soon"],
        &["quic", "--runtime", "smol"],
        &["quic", "--idle-share", "most"],
        &["quic", "--idle-timeout", "5 parsecs"],
        &["quic", "--bogus"],
    ] {
        let output = ticktock(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn settings_that_make_no_sense_are_one_line_errors() {
    for args in [
        &["quic", "--connections", "0"][..],
        &["quic", "--connections", "1000000"],
        &["quic", "--duration", "10ms"],
        &["quic", "--idle-share", "1.5"],
        &["quic", "--idle-share", "NaN"],
        &["quic", "--idle-timeout", "10ms"],
        &["quic", "--idle-timeout", "30s"],
        &["quic", "--message-bytes", "0"],
        &["quic", "--think", "5s"],
        // Too short for the idle clients to time out before the active ones close.
        &["quic", "--duration", "3s"],
    ] {
        let output = ticktock(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: ran anyway");
    }
}
