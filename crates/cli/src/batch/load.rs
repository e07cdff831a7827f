//! The load generators: how callers drive a batcher in each scenario. Each returns a [`Run`],
//! what the callers saw; the batcher's own view is its `stats()`, read by the runner.
//!
//! Every generator runs inside a task on the runtime's workers (the runner spawns it), so the
//! callers are ordinary tasks, as in a server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ticktock_batch::BatchError;
use tokio::task::JoinSet;

use super::handler::{EchoBatcher, Probe};
use super::tally::{Tally, latency_histogram, nanos};
use crate::error::CliError;

/// What one scenario's callers saw.
#[derive(Debug, Clone)]
pub struct Run {
    /// Counts and latencies, client side.
    pub tally: Tally,
    /// Wall time of the load, from the first request sent to the last answer received.
    pub seconds: f64,
    /// Lone request only: latency less the handler's own time, in ns.
    pub overhead: Option<Histogram<u64>>,
    /// Open loop only: how long the pacer took to issue every request, in s (longer than the
    /// load's duration when the machine could not keep up with the offered rate).
    pub issued_over: Option<f64>,
}

/// Awaits every caller task and merges their tallies.
async fn merge_callers(mut callers: JoinSet<Tally>) -> Result<Tally, CliError> {
    let mut tally = Tally::default();
    while let Some(caller) = callers.join_next().await {
        tally.merge(&caller?);
    }
    Ok(tally)
}

/// The seed's scenario: `callers` callers each send `per_caller` requests one after another
/// with `call` (which waits for queue space); `rounds` times over, on the same batcher.
/// `seconds` is the sum of the rounds' wall times.
pub async fn seed(
    batcher: &EchoBatcher,
    callers: usize,
    per_caller: usize,
    rounds: usize,
) -> Result<Run, CliError> {
    let mut tally = Tally::default();
    let mut elapsed = Duration::ZERO;
    for round in 0..rounds {
        let start = Instant::now();
        let mut set = JoinSet::new();
        for caller in 0..callers {
            let batcher = batcher.clone();
            let first = ((round * callers + caller) * per_caller) as u64;
            set.spawn(async move {
                let mut tally = Tally::default();
                for request in first..first + per_caller as u64 {
                    let sent = Instant::now();
                    let result = batcher.call(request).await;
                    tally.settle(request, &result, sent.elapsed());
                }
                tally
            });
        }
        tally.merge(&merge_callers(set).await?);
        elapsed += start.elapsed();
    }
    Ok(Run {
        tally,
        seconds: elapsed.as_secs_f64(),
        overhead: None,
        issued_over: None,
    })
}

/// One caller, one request at a time, `requests` times, idle for `gap` before each, so every
/// request meets an idle batcher (parked dispatcher, possibly parked worker threads) as the
/// seed's lone request did. The handler reports its own time through `probe`; with one
/// request in flight that is exactly this request's batch.
pub async fn lone(
    batcher: &EchoBatcher,
    probe: &Probe,
    requests: usize,
    gap: Duration,
) -> Result<Run, CliError> {
    let mut tally = Tally::default();
    let mut overhead = latency_histogram();
    let start = Instant::now();
    for request in 0..requests as u64 {
        tokio::time::sleep(gap).await;
        let sent = Instant::now();
        let result = batcher.call(request).await;
        let latency = sent.elapsed();
        tally.settle(request, &result, latency);
        if result.is_ok() {
            let handler = Duration::from_nanos(probe.last_handler_ns.load(Ordering::Acquire));
            overhead.saturating_record(nanos(latency.saturating_sub(handler)).max(1));
        }
    }
    Ok(Run {
        tally,
        seconds: start.elapsed().as_secs_f64(),
        overhead: Some(overhead),
        issued_over: None,
    })
}

/// Closed loop: `callers` callers each send their next request as soon as the previous one
/// returns, until `duration` has passed. They use `try_call`, so a queue bound too small for
/// the callers would show as rejections (a rejected caller yields, then sends again).
pub async fn closed_loop(
    batcher: &EchoBatcher,
    callers: usize,
    duration: Duration,
) -> Result<Run, CliError> {
    let start = Instant::now();
    let end = start + duration;
    let mut set = JoinSet::new();
    for caller in 0..callers {
        let batcher = batcher.clone();
        set.spawn(async move {
            let mut tally = Tally::default();
            let mut request = (caller as u64) << 40;
            loop {
                let sent = Instant::now();
                let result = batcher.try_call(request).await;
                let answered = Instant::now();
                tally.settle(request, &result, answered - sent);
                if matches!(result, Err(BatchError::QueueFull)) {
                    tokio::task::yield_now().await;
                }
                request += 1;
                if answered >= end {
                    break tally;
                }
            }
        });
    }
    let tally = merge_callers(set).await?;
    Ok(Run {
        tally,
        seconds: start.elapsed().as_secs_f64(),
        overhead: None,
        issued_over: None,
    })
}

/// What the open loop's request tasks report, shared (one task per request).
struct Arrivals {
    /// Latency of request `i` in ns, 0 until it is served.
    latency_ns: Vec<AtomicU64>,
    misrouted: AtomicU64,
    rejected: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    /// Requests finished, whatever the outcome.
    done: AtomicU64,
    /// When the last request finished, in ns since the start.
    last_done_ns: AtomicU64,
}

/// Open loop: requests arrive at `rate` per second for `duration` whatever the batcher does.
/// A pacer task wakes every millisecond (tokio's timer resolution) and starts one task per
/// request due by then, each sending with `try_call`; so arrivals come in 1 ms bursts of
/// rate / 1000, and a full queue shows as rejections. Requests still unanswered `grace`
/// after the last arrival count as unfinished (lost).
pub async fn open_loop(
    batcher: &EchoBatcher,
    rate: u64,
    duration: Duration,
    grace: Duration,
) -> Result<Run, CliError> {
    let total = (rate as f64 * duration.as_secs_f64()).ceil() as u64;
    let arrivals = Arc::new(Arrivals {
        latency_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        misrouted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        timed_out: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        done: AtomicU64::new(0),
        last_done_ns: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut issued = 0u64;
    while issued < total {
        ticker.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        for request in issued..due {
            let batcher = batcher.clone();
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                let sent = Instant::now();
                let result = batcher.try_call(request).await;
                let latency = nanos(sent.elapsed()).max(1);
                let counter = match result {
                    Ok(response) if response == request => {
                        arrivals.latency_ns[request as usize].store(latency, Ordering::Relaxed);
                        None
                    }
                    Ok(_) => Some(&arrivals.misrouted),
                    Err(BatchError::QueueFull) => Some(&arrivals.rejected),
                    Err(BatchError::TimedOut) => Some(&arrivals.timed_out),
                    Err(_) => Some(&arrivals.failed),
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                arrivals
                    .last_done_ns
                    .fetch_max(nanos(start.elapsed()), Ordering::Relaxed);
                arrivals.done.fetch_add(1, Ordering::Release);
            });
        }
        issued = due;
    }
    let issued_over = start.elapsed().as_secs_f64();
    let drain_until = Instant::now() + grace;
    while arrivals.done.load(Ordering::Acquire) < total && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let count = |counter: &AtomicU64| counter.load(Ordering::Acquire);
    let mut tally = Tally {
        sent: total,
        misrouted: count(&arrivals.misrouted),
        rejected: count(&arrivals.rejected),
        timed_out: count(&arrivals.timed_out),
        failed: count(&arrivals.failed),
        unfinished: total - count(&arrivals.done).min(total),
        ..Tally::default()
    };
    for latency in &arrivals.latency_ns {
        let latency = latency.load(Ordering::Relaxed);
        if latency > 0 {
            tally.served += 1;
            tally.latency.saturating_record(latency);
        }
    }
    Ok(Run {
        tally,
        seconds: Duration::from_nanos(count(&arrivals.last_done_ns)).as_secs_f64(),
        overhead: None,
        issued_over: Some(issued_over),
    })
}
