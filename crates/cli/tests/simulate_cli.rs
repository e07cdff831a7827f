//! Runs the built `ticktock simulate` the way users do, on tiny loads (2,000 connections, 1 s
//! per backend), and checks what it prints, the report it writes, the metrics it serves and how
//! it refuses bad input.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempReport, assert_refused, chart, chart_figures, f64_of, printed, ticktock, u64_of};
use serde_json::Value;

/// Both backends on the same tiny traffic.
const TINY_COMPARE: [&str; 5] = ["--compare", "--connections", "2000", "--duration", "1s"];

#[test]
fn compare_json_has_both_backends_with_figures_that_add_up() {
    let output = ticktock(&[&TINY_COMPARE[..], &["--json"]].concat());
    assert!(output.status.success(), "{}", printed(&output));
    let results: Vec<Value> =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON array");
    let backends: Vec<&str> = results
        .iter()
        .map(|r| r["backend"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(backends, ["ticktock", "tokio"]);
    for r in &results {
        let name = &r["backend"];
        let ops = &r["ops"];
        let kinds = ["armed", "postponed", "advanced", "cancelled", "fired"];
        let total: u64 = kinds.iter().map(|kind| u64_of(ops, kind)).sum();
        let fired = u64_of(ops, "fired");
        assert!(fired > 0 && fired < total, "{name}: {ops}");
        assert!(
            u64_of(ops, "armed") > 0 && u64_of(ops, "postponed") > 0,
            "{name}"
        );
        // The rate counts the measured part only: at most every operation over the wall time.
        let (wall, rate) = (f64_of(r, "wall_s"), f64_of(r, "ops_per_sec"));
        assert!((1.0..5.0).contains(&wall), "{name}: wall {wall}");
        assert!(
            rate > 0.0 && rate <= total as f64 / wall * 1.01,
            "{name}: {rate}"
        );

        // Lateness: every measured fire is a fire, none early, quantiles in order, the
        // histogram's buckets hold every measured fire.
        let late = &r["lateness"];
        let count = u64_of(late, "count");
        assert!(count > 0 && count <= fired, "{name}: {late}");
        assert_eq!(u64_of(late, "early"), 0, "{name} fired early");
        let (p50, p99, max) = (
            f64_of(late, "p50_us"),
            f64_of(late, "p99_us"),
            f64_of(late, "max_us"),
        );
        assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{name}: {late}");
        let buckets = r["lateness_buckets"].as_array().expect("buckets");
        let in_buckets: u64 = buckets.iter().filter_map(|b| b[1].as_u64()).sum();
        assert_eq!(in_buckets, count, "{name}");
        // Where the idle and keep-alive fires are measured apart, they are fires too.
        if let Some(idle) = r.get("idle_lateness") {
            assert!(count + u64_of(idle, "count") <= fired, "{name}: {idle}");
            assert_eq!(u64_of(idle, "early"), 0, "{name} fired early");
        }

        // Traffic: the connections asked for, packets processed at most those offered.
        assert_eq!(u64_of(r, "connections"), 2000);
        assert!(u64_of(r, "connections_opened") >= 2000, "{name}");
        let (offered, processed) = (u64_of(r, "packets_offered"), u64_of(r, "packets"));
        assert!(
            0 < processed && processed <= offered,
            "{name}: {processed}/{offered}"
        );

        assert!(
            f64_of(r, "cpu_s") > 0.0 && f64_of(r, "cpu_ns_per_op") > 0.0,
            "{name}"
        );
        assert!(f64_of(r, "timer_bytes_per_connection") > 0.0, "{name}");
        // Samples every ~250 ms, in time order, within the run.
        let samples = r["samples"].as_array().expect("samples");
        assert!(samples.len() >= 3, "{name}: {} samples", samples.len());
        let times: Vec<f64> = samples.iter().map(|s| f64_of(s, "t_s")).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{name}: {times:?}");
        assert!(times.iter().all(|&t| t <= wall + 0.5), "{name}: {times:?}");
        assert!(
            samples.iter().all(|s| u64_of(s, "fired") <= fired),
            "{name}"
        );
        // Saturated by default: no generator thread, the endpoints draw their own packets.
        assert!(r["generator_cpu_s"].is_null(), "{name}");
        assert!(r["endpoint_cpu_ns_per_op"].is_null(), "{name}");
    }
    // ticktock's endpoints handle every packet they draw.
    assert_eq!(
        u64_of(&results[0], "packets"),
        u64_of(&results[0], "packets_offered")
    );
}

/// ticktock alone on a tiny paced load.
const TINY_PACED: [&str; 6] = [
    "--connections",
    "2000",
    "--duration",
    "1s",
    "--packet-rate",
    "20",
];

#[test]
fn a_paced_run_reports_its_generator_apart() {
    let output = ticktock(&[&TINY_PACED[..], &["--json"]].concat());
    assert!(output.status.success(), "{}", printed(&output));
    let results: Vec<Value> =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON array");
    let [r] = &results[..] else {
        panic!("one backend expected: {results:?}")
    };
    assert_eq!(r["backend"], "ticktock");
    let (cpu, generator) = (f64_of(r, "cpu_s"), f64_of(r, "generator_cpu_s"));
    assert!((0.0..cpu).contains(&generator), "{generator} of {cpu}");
    let endpoint = f64_of(r, "endpoint_cpu_ns_per_op");
    assert!(
        0.0 < endpoint && endpoint <= f64_of(r, "cpu_ns_per_op"),
        "{r}"
    );
    // 2,000 connections at 20 packets/s for about a second: the offered load, not more.
    let offered = u64_of(r, "packets_offered");
    assert!((5_000..60_000).contains(&offered), "{offered}");
    assert!(u64_of(r, "packets") <= offered);

    let table = ticktock(&TINY_PACED);
    assert!(table.status.success(), "{}", printed(&table));
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(stdout.contains("· 20 packets/s each,"), "{stdout}");
    assert!(stdout.contains("| CPU ns per timer op, without the generator |"));
}

#[test]
fn compare_table_and_report_have_both_backends_and_the_comparison() {
    let report = TempReport::new("simulate");
    let output = ticktock(&[&TINY_COMPARE[..], &["--report", report.arg()]].concat());
    assert!(output.status.success(), "{}", printed(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("| measure | ticktock | tokio | ratio |"),
        "{stdout}"
    );
    // Rows by the start of their label (the lateness rows name their timer kinds after it).
    for row in ["timer ops/s |", "lateness p99", "CPU ns per timer op |"] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(&format!("| {row}")))
            .unwrap_or_else(|| panic!("no {row} row: {stdout}"));
        // measure, ticktock, tokio, ratio: 5 bars around 4 cells.
        assert_eq!(line.matches('|').count(), 5, "{line}");
        assert!(line.contains('×'), "{row} has no ratio: {line}");
    }
    assert!(stdout.contains(&format!("report written to {}", report.arg())));

    let html = report.read();
    let figures = chart_figures(&html);
    let captions = [
        ("lateness", "lateness distribution"),
        ("ops-over-time", "operations per second over the run"),
        ("live-timers", "Timers set at each sample"),
        ("comparison", "Backend comparison"),
    ];
    for (id, caption) in captions {
        let figure = chart(&figures, id);
        assert!(figure.contains(caption), "{id}: {figure}");
        assert!(figure.contains(">ticktock</text>") && figure.contains(">tokio</text>"));
    }
    // Two lines each over time, two bar charts in the comparison.
    assert_eq!(
        chart(&figures, "ops-over-time")
            .matches("<polyline")
            .count(),
        2
    );
    assert_eq!(chart(&figures, "comparison").matches("<svg").count(), 2);
    assert!(html.contains("Ratio: tokio ÷ ticktock"));
}

/// A free port on loopback: bound, read and released (another process could take it in
/// between, which is unlikely enough for a test).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").port()
}

/// One `GET /metrics` over plain HTTP/1.1; `None` while nothing answers.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The value of the unlabelled series `name` in a Prometheus text body.
fn series(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn metrics_endpoint_serves_the_service_series_while_the_run_lasts() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "--metrics",
        &addr,
        "--connections",
        "2000",
        "--duration",
        "3s",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_ticktock"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ticktock");
    // Killed if the test fails before it is waited for.
    struct Reap(Option<std::process::Child>);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Some(child) = &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut child = Reap(Some(child));

    // The service's gauges reach the endpoint when the run publishes them (with each sample):
    // scrape until they are there and the run has fired timers.
    let wanted = [
        "ticktock_timers_active",
        "ticktock_connections_active",
        "ticktock_timers_armed_total",
        "ticktock_timers_fired_total",
        "ticktock_timers_cancelled_total",
        "ticktock_timers_reset_total",
        "ticktock_driver_wakeups_total",
        "ticktock_wheel_bytes",
        "ticktock_fire_lateness_seconds_count",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    let body = loop {
        if let Some(response) = scrape(port) {
            let complete = wanted.iter().all(|name| series(&response, name).is_some());
            let fired = series(&response, "ticktock_timers_fired_total").unwrap_or(0.0);
            if complete && fired > 0.0 {
                break response;
            }
            last = response;
        }
        let exited = child.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(
            exited.is_none(),
            "the run ended before the series showed: {last}"
        );
        assert!(
            Instant::now() < deadline,
            "no complete scrape in 20 s: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // The endpoints' two registrations come due about every millisecond, so the gauge of
    // timers filed may read 0 at any one scrape; what was armed and the wheel's size may not.
    assert!(series(&body, "ticktock_timers_armed_total").is_some_and(|v| v > 0.0));
    assert!(series(&body, "ticktock_wheel_bytes").is_some_and(|v| v > 0.0));

    // The run ends by itself, successfully, and says where its endpoint was.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut process = child.0.take().expect("the child");
    while process.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            let _ = process.kill();
            panic!("the run did not end in 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = process.wait_with_output().expect("the child's output");
    assert!(output.status.success(), "{}", printed(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("metrics at http://{addr}/metrics")),
        "{stderr}"
    );
}

#[test]
fn a_taken_metrics_address_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let addr = taken.local_addr().expect("its address").to_string();
    let args = [
        "--metrics",
        &addr,
        "--connections",
        "100",
        "--duration",
        "1s",
    ];
    let stderr = assert_refused(&args, 1);
    assert!(stderr.contains("already in use"), "{stderr}");
    drop(taken);
}

#[test]
fn every_simulate_flag_rejects_bad_input() {
    // Values clap cannot parse: its error, usage and hint, exit 2.
    for args in [
        &["--connections", "many"][..],
        &["--connections", "-5"],
        &["--duration", "soon"],
        &["--duration", "10 parsecs"],
        &["--lifetime", "5 parsecs"],
        &["--packet-rate", "fast"],
        &["--loss", "some"],
        &["--migration", "x"],
        &["--backend", "heap"],
        &["--metrics", "not-an-address"],
        &["--metrics", "127.0.0.1:99999"],
        &["--seed", "-1"],
        &["--report"],
        &["--bogus"],
        &["simulate", "--bogus"],
        &["simulate", "--compare=yes"],
    ] {
        assert_refused(args, 2);
    }
    // Values that parse but make no sense: one line of ours, exit 1, before anything runs.
    for args in [
        &["--connections", "0"][..],
        &["--connections", "999999999"],
        &["--duration", "1ms"],
        &["--duration", "2h"],
        &["--packet-rate", "0"],
        &["--packet-rate", "NaN"],
        &["--loss", "0.9"],
        &["--loss=-0.1"],
        &["--migration", "1.5"],
        &["--lifetime", "0s"],
        &["simulate", "--connections", "0"],
        &["--report", "/nonexistent-ticktock-dir/report.html"],
        &["--report", "/"],
    ] {
        assert_refused(args, 1);
    }
}
