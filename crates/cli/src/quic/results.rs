//! What a `ticktock quic` run measured, one [`QuicResult`] per runtime, and its printing: a
//! markdown table (side by side with a ratio column for `--compare`) or one JSON object.

use std::io::Write;

use serde::Serialize;

use super::{QuicConfig, QuicRuntime};

/// One runtime's figures.
#[derive(Debug, Clone, Serialize)]
pub struct QuicResult {
    /// The runtime the endpoints ran on.
    pub runtime: QuicRuntime,
    /// Client connections asked for.
    pub connections: u64,
    /// Handshakes that completed.
    pub established: u64,
    /// Wall time from the first connect to the last handshake, in seconds.
    pub handshake_s: f64,
    /// Handshakes completed per second of that time.
    pub handshakes_per_s: f64,
    /// How long one handshake took, in ms.
    pub handshake_ms: Quantiles,
    /// Wall time of the load phase, from its start until every client finished, in seconds.
    pub load_s: f64,
    /// Messages echoed back intact.
    pub echoes: u64,
    /// Bytes that came back, every one compared with what was sent.
    pub bytes_echoed: u64,
    /// `bytes_echoed` per second of the load phase.
    pub bytes_per_s: f64,
    /// Bytes that came back different, missing or extra (must be 0).
    pub mismatched_bytes: u64,
    /// CPU time of the whole process during the handshakes, in seconds.
    pub cpu_handshake_s: f64,
    /// CPU time of the whole process during the load phase, in seconds.
    pub cpu_load_s: f64,
    /// Load-phase CPU per MiB echoed, in milliseconds.
    pub cpu_ms_per_mib: f64,
    /// quinn's timer operations and wake-ups, counted and timed by the same wrapper for either
    /// runtime (the whole run).
    pub timer: super::observe::TimerFigures,
    /// The control: how late a bare thread's sleeps woke during the load phase.
    pub machine: super::probe::ProbeFigures,
    /// Idle clients and how their idle timeouts closed them.
    pub idle: IdleSummary,
    /// The ticktock service's own view (ticktock runs only).
    pub service: Option<ServiceFigures>,
    /// Packets the clients sent.
    pub client_packets_sent: u64,
    /// Of those, packets lost (a socket buffer overflowed).
    pub client_packets_lost: u64,
    /// Client streams or connections that failed, handshakes included (must be 0).
    pub errors: u64,
    /// The first failure: the clients' first if they had one, else the server's.
    pub first_error: Option<String>,
    /// Server streams that failed (must be 0).
    pub server_stream_errors: u64,
    /// Server connections that ended other than by a close or an idle timeout (must be 0).
    pub server_abnormal_ends: u64,
    /// Clients still running when the run gave up waiting (must be 0).
    pub unfinished: u64,
}

/// What the ticktock timer service counted during a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServiceFigures {
    /// Timers armed (a `Sleep`'s first poll, or its first poll after it fired).
    pub armed: u64,
    /// Timers moved.
    pub reset: u64,
    /// Timers fired by the driver.
    pub fired: u64,
    /// Timers cancelled (a connection's timer dropped while armed).
    pub cancelled: u64,
    /// Times the driver thread woke.
    pub driver_wakeups: u64,
    /// Fire lateness (deadline to the driver waking the task), µs: median.
    pub lateness_p50_us: f64,
    /// 99th percentile.
    pub lateness_p99_us: f64,
    /// Largest.
    pub lateness_max_us: f64,
}

impl ServiceFigures {
    pub(super) fn new(stats: &ticktock::TimerStats) -> Self {
        let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
        Self {
            armed: stats.armed,
            reset: stats.reset,
            fired: stats.processed,
            cancelled: stats.cancelled,
            driver_wakeups: stats.driver_wakeups,
            lateness_p50_us: us(stats.lateness.p50),
            lateness_p99_us: us(stats.lateness.p99),
            lateness_max_us: us(stats.lateness.max),
        }
    }
}

/// How the idle clients ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleSummary {
    /// Idle clients: each should be closed by its idle timeout.
    pub expected: u64,
    /// Connections that ended with `TimedOut`.
    pub observed: u64,
    /// Idle connections that ended otherwise (must be 0).
    pub other_ends: u64,
    /// Closes before the last request was sent plus the idle timeout. Not a timer firing early
    /// (that is `TimerFigures::early_wakes`): quinn stamps a received packet with the start of
    /// its endpoint's receive pass, which under load can precede the request by milliseconds.
    pub early: u64,
    /// Close lateness in ms, counted from when the client saw its last reply (a lower bound).
    pub lateness_ms: Quantiles,
    /// Close lateness in ms, counted from when the client sent its last request (an upper
    /// bound).
    pub lateness_from_sent_ms: Quantiles,
}

/// Quantiles of a sample; all 0 when it is empty.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Quantiles {
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    pub(super) fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Self {
            min: at(0.0),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Ratios of one ticktock runtime's figures to tokio's, when both ran.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The ticktock runtime compared with tokio.
    pub runtime: QuicRuntime,
    /// Echoed bytes/s, ticktock ÷ tokio (above 1: ticktock echoed more).
    pub bytes_per_s: f64,
    /// Load-phase CPU, ticktock ÷ tokio (below 1: ticktock used less).
    pub cpu_load: f64,
    /// Load-phase CPU per MiB echoed, ticktock ÷ tokio (below 1: ticktock used less).
    pub cpu_per_mib: f64,
    /// Handshakes/s, ticktock ÷ tokio.
    pub handshakes_per_s: f64,
    /// Timer operations, ticktock ÷ tokio.
    pub timer_operations: f64,
    /// Timer wake-ups more than 2 ms late, ticktock ÷ tokio (below 1: fewer late).
    pub wakes_over_2ms: f64,
    /// p99 idle-close lateness, ticktock ÷ tokio.
    pub idle_lateness_p99: f64,
}

impl Comparison {
    /// Each ticktock runtime of a `--compare` run against tokio's, in run order; empty unless
    /// tokio's ran too.
    pub fn all(results: &[QuicResult]) -> Vec<Self> {
        let Some(tokio) = results.iter().find(|r| r.runtime == QuicRuntime::Tokio) else {
            return Vec::new();
        };
        let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
        results
            .iter()
            .filter(|r| r.runtime != QuicRuntime::Tokio)
            .map(|ticktock| Self {
                runtime: ticktock.runtime,
                bytes_per_s: ratio(ticktock.bytes_per_s, tokio.bytes_per_s),
                cpu_load: ratio(ticktock.cpu_load_s, tokio.cpu_load_s),
                cpu_per_mib: ratio(ticktock.cpu_ms_per_mib, tokio.cpu_ms_per_mib),
                handshakes_per_s: ratio(ticktock.handshakes_per_s, tokio.handshakes_per_s),
                timer_operations: ratio(
                    ticktock.timer.operations as f64,
                    tokio.timer.operations as f64,
                ),
                wakes_over_2ms: ratio(
                    ticktock.timer.wakes_over_2ms as f64,
                    tokio.timer.wakes_over_2ms as f64,
                ),
                idle_lateness_p99: ratio(ticktock.idle.lateness_ms.p99, tokio.idle.lateness_ms.p99),
            })
            .collect()
    }
}

/// The JSON document: the settings, one result per runtime, and the comparison.
#[derive(Serialize)]
struct Report<'a> {
    command: &'static str,
    config: &'a QuicConfig,
    results: &'a [QuicResult],
    comparisons: Vec<Comparison>,
}

/// Writes one JSON object.
pub fn write_json(
    out: &mut impl Write,
    config: &QuicConfig,
    results: &[QuicResult],
) -> Result<(), crate::error::CliError> {
    let report = Report {
        command: "quic",
        config,
        results,
        comparisons: Comparison::all(results),
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)?;
    Ok(())
}

/// How a row's ratio reads.
#[derive(Clone, Copy)]
enum Ratio {
    /// No ratio (counts that must match, or must be 0).
    None,
    /// ticktock ÷ tokio.
    Plain,
}

/// Writes the markdown table: one column per runtime, and each ticktock runtime ÷ tokio when
/// tokio's ran too.
pub fn write_table(
    out: &mut impl Write,
    config: &QuicConfig,
    results: &[QuicResult],
) -> std::io::Result<()> {
    writeln!(
        out,
        "ticktock quic · {} · {} connections ({:.0} % go idle, idle timeout {:?}) · {:?} of load · \
         {} B messages, {:?} mean think time · client and server on loopback, 2 tokio workers\n",
        crate::report::machine(),
        config.connections,
        config.idle_share * 100.0,
        config.idle_timeout,
        config.duration,
        config.message_bytes,
        config.think,
    )?;
    let compared: Vec<QuicRuntime> = Comparison::all(results).iter().map(|c| c.runtime).collect();
    write!(out, "| measure |")?;
    for result in results {
        write!(out, " {} |", result.runtime.name())?;
    }
    for runtime in &compared {
        write!(out, " {} ÷ tokio |", runtime.name())?;
    }
    writeln!(out)?;
    write!(out, "|---|")?;
    for _ in 0..results.len() + compared.len() {
        write!(out, "---:|")?;
    }
    writeln!(out)?;

    type Cell = fn(&QuicResult) -> (String, f64);
    let rows: [(&str, Cell, Ratio); 26] = [
        (
            "connections established",
            |r| count(r.established),
            Ratio::None,
        ),
        (
            "handshakes/s",
            |r| {
                (
                    thousands(r.handshakes_per_s.round() as u64),
                    r.handshakes_per_s,
                )
            },
            Ratio::Plain,
        ),
        (
            "handshake p50 / p99 / max (ms)",
            |r| {
                let q = r.handshake_ms;
                (format!("{:.1} / {:.1} / {:.0}", q.p50, q.p99, q.max), q.p99)
            },
            Ratio::None,
        ),
        (
            "bytes echoed (each one checked)",
            |r| count(r.bytes_echoed),
            Ratio::Plain,
        ),
        (
            "echoed bytes/s (higher is better)",
            |r| (format!("{:.1} MB/s", r.bytes_per_s / 1e6), r.bytes_per_s),
            Ratio::Plain,
        ),
        (
            "mismatched bytes",
            |r| count(r.mismatched_bytes),
            Ratio::None,
        ),
        (
            "CPU, handshakes",
            |r| (format!("{:.2} s", r.cpu_handshake_s), r.cpu_handshake_s),
            Ratio::Plain,
        ),
        (
            "CPU, load phase (lower is better)",
            |r| (format!("{:.2} s", r.cpu_load_s), r.cpu_load_s),
            Ratio::Plain,
        ),
        (
            "CPU per MiB echoed (lower is better)",
            |r| (format!("{:.1} ms", r.cpu_ms_per_mib), r.cpu_ms_per_mib),
            Ratio::Plain,
        ),
        (
            "timer operations (made + resets + polls)",
            |r| count(r.timer.operations),
            Ratio::Plain,
        ),
        ("  resets", |r| count(r.timer.resets), Ratio::Plain),
        ("  polls", |r| count(r.timer.polls), Ratio::Plain),
        ("timer wake-ups", |r| count(r.timer.wakes), Ratio::Plain),
        (
            "wake-up lateness p50 / p99 / p99.9 / max (µs; ratio of the p99s)",
            |r| {
                let t = r.timer;
                (
                    format!(
                        "{:.0} / {:.0} / {:.0} / {:.0}",
                        t.wake_p50_us, t.wake_p99_us, t.wake_p999_us, t.wake_max_us
                    ),
                    t.wake_p99_us,
                )
            },
            Ratio::Plain,
        ),
        (
            "wake-ups > 2 ms late / early",
            |r| counts(r.timer.wakes_over_2ms, r.timer.early_wakes),
            Ratio::None,
        ),
        (
            "closing wake-ups (idle timeouts, drain ends): > 2 ms late / of",
            |r| counts(r.timer.closing_wakes_over_2ms, r.timer.closing_wakes),
            Ratio::None,
        ),
        (
            "closing wake-up lateness max (µs)",
            |r| micros(r.timer.closing_wake_max_us),
            Ratio::Plain,
        ),
        (
            "  of which idle timeouts (due before any active client closes): > 2 ms late / of",
            |r| {
                counts(
                    r.timer.idle_timeout_wakes_over_2ms,
                    r.timer.idle_timeout_wakes,
                )
            },
            Ratio::None,
        ),
        (
            "  idle timeout lateness max (µs)",
            |r| micros(r.timer.idle_timeout_wake_max_us),
            Ratio::Plain,
        ),
        (
            "control: a bare thread's 1–4 ms sleeps during the load, > 2 ms late / of (max µs)",
            |r| {
                let m = r.machine;
                (
                    format!(
                        "{} / {} ({:.0})",
                        thousands(m.over_2ms),
                        thousands(m.sleeps),
                        m.lateness_us.max
                    ),
                    m.over_2ms as f64,
                )
            },
            Ratio::None,
        ),
        (
            "idle timeouts observed / expected",
            |r| counts(r.idle.observed, r.idle.expected),
            Ratio::None,
        ),
        (
            "idle closes before last request + timeout (see below)",
            |r| count(r.idle.early),
            Ratio::None,
        ),
        (
            "idle close lateness from last reply p50 / p99 / max (ms; ratio of the p50s)",
            |r| {
                let q = r.idle.lateness_ms;
                (format!("{:.2} / {:.2} / {:.2}", q.p50, q.p99, q.max), q.p50)
            },
            Ratio::Plain,
        ),
        (
            "idle close lateness from last request p50 / p99 / max (ms; ratio of the p50s)",
            |r| {
                let q = r.idle.lateness_from_sent_ms;
                (format!("{:.2} / {:.2} / {:.2}", q.p50, q.p99, q.max), q.p50)
            },
            Ratio::Plain,
        ),
        (
            "client packets sent / lost",
            |r| counts(r.client_packets_sent, r.client_packets_lost),
            Ratio::Plain,
        ),
        (
            "errors (streams, connections, server)",
            |r| count(r.errors + r.server_stream_errors + r.server_abnormal_ends + r.unfinished),
            Ratio::None,
        ),
    ];
    for (label, cell, ratio) in rows {
        write!(out, "| {label} |")?;
        let values: Vec<(String, f64)> = results.iter().map(cell).collect();
        for (text, _) in &values {
            write!(out, " {text} |")?;
        }
        let value = |runtime| {
            results
                .iter()
                .zip(&values)
                .find(|(r, _)| r.runtime == runtime)
                .map_or(0.0, |(_, (_, v))| *v)
        };
        let tokio = value(QuicRuntime::Tokio);
        for &runtime in &compared {
            let ticktock = value(runtime);
            match ratio {
                Ratio::Plain if tokio > 0.0 && ticktock >= 0.0 => {
                    write!(out, " {:.2}× |", ticktock / tokio)?;
                }
                _ => write!(out, " |")?,
            }
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "\nWake-ups are timed by one wrapper around either runtime's timers, from the deadline to \
         the timer waking the connection's task; a closing wake-up is a timer's last event \
         before its connection ends (the idle timeout of an idle connection, on either side, or \
         the end of a graceful close's drain period); the idle timeouts are those due before \
         the first active client can close, which the load leaves them room to be. The control \
         row is the machine's own lateness: a plain thread sleeping beside the load. Idle-close lateness is seen by the client: from \
         its last reply seen (lower bound) and last request sent (upper bound) to the close, so \
         it also holds task scheduling and quinn's idle floor of 3 PTO; quinn stamps packets at \
         the start of a receive pass, so a close can even precede the last request + timeout."
    )?;
    for result in results {
        if let Some(error) = &result.first_error {
            writeln!(out, "\n{} first error: {error}", result.runtime.name())?;
        }
    }
    Ok(())
}

fn count(n: u64) -> (String, f64) {
    (thousands(n), n as f64)
}

/// Microseconds, shown whole.
fn micros(us: f64) -> (String, f64) {
    (format!("{us:.0}"), us)
}

/// Two counts shown as "a / b"; the first is the one compared.
fn counts(a: u64, b: u64) -> (String, f64) {
    (format!("{} / {}", thousands(a), thousands(b)), a as f64)
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let q = Quantiles::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((q.min, q.p50, q.max), (1.0, 2.0, 3.0));
        let empty = Quantiles::of(Vec::new());
        assert_eq!(empty.max, 0.0);
    }
}
