//! What a deadline costs a call: `call()` throughput of a batcher with a no-op handler, with no
//! deadline, with the batcher's default deadline (every request the same `Duration`: one
//! batcher-wide FIFO of deadlines and one timer-service sleep for all of them), and with the
//! same deadline given per call (`CallOptions::deadline`: each waiting caller arms and cancels
//! its own `Sleep` on the timer service).
//!
//! Each sample runs closed-loop rounds: `CALLERS` tasks on a 2-worker runtime each send
//! `PER_CALLER` requests one after another; the deadline (1 s) never fires. Throughput is in
//! requests. `cargo bench -p ticktock-batch --bench deadlines -- --test` runs each once.
//!
//! On a noisy machine, compare with `DEADLINES_INTERLEAVED=41 cargo bench -p ticktock-batch
//! --bench deadlines` instead: it runs that many rounds of each kind, interleaved (none,
//! default, per-call, none, …) so drifts in the machine's speed hit all three alike, and prints
//! the median ns per request of each and their ratios. With `DEADLINES_KIND=default` (or
//! `none`, `per_call`) only that kind runs, on a current-thread runtime, for counting
//! instructions under callgrind (the difference between two round counts, over the requests,
//! is the cost per request).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use ticktock_batch::{Batcher, CallOptions};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const CALLERS: usize = 64;
const PER_CALLER: usize = 256;
const DEADLINE: Duration = Duration::from_secs(1);

type Echo = Batcher<u64, u64, std::convert::Infallible>;

#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// No deadline at all.
    None,
    /// `default_deadline(Some(DEADLINE))`, plain `call`.
    Default,
    /// No default; `call_with` and `CallOptions { deadline: Some(DEADLINE) }`.
    PerCall,
}

impl Deadline {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Default => "default",
            Self::PerCall => "per_call",
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn batcher(kind: Deadline) -> Echo {
    let default = matches!(kind, Deadline::Default).then_some(DEADLINE);
    Batcher::builder()
        .max_batch_size(32)
        .default_deadline(default)
        .build(|requests: Vec<u64>| async move { Ok(requests) })
        .expect("batcher")
}

/// One closed-loop round: every caller sends its requests one after another.
async fn round(batcher: &Echo, kind: Deadline) -> Duration {
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..CALLERS {
        let batcher = batcher.clone();
        callers.spawn(async move {
            let options = CallOptions {
                deadline: matches!(kind, Deadline::PerCall).then_some(DEADLINE),
                ..CallOptions::default()
            };
            for i in 0..PER_CALLER {
                let request = (caller * PER_CALLER + i) as u64;
                let answer = match kind {
                    Deadline::PerCall => batcher.call_with(request, options).await,
                    _ => batcher.call(request).await,
                };
                assert_eq!(answer.ok(), Some(request));
            }
        });
    }
    while let Some(caller) = callers.join_next().await {
        caller.expect("caller");
    }
    started.elapsed()
}

fn calls(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("call");
    group.throughput(Throughput::Elements((CALLERS * PER_CALLER) as u64));
    group.sample_size(30);
    for kind in [Deadline::None, Deadline::Default, Deadline::PerCall] {
        let batcher = runtime.block_on(async { batcher(kind) });
        group.bench_function(BenchmarkId::new("deadline", kind.name()), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += round(&batcher, kind).await;
                    }
                    total
                })
            });
        });
        let stats = batcher.stats();
        assert_eq!(
            stats.timed_out, 0,
            "{kind:?}: the deadline is never reached"
        );
        runtime.block_on(batcher.shutdown());
    }
    group.finish();
}

/// The interleaved comparison: `rounds` rounds of each kind, one of each in turn.
fn interleaved(rounds: usize) {
    // `DEADLINES_KIND=default` (or `none`, `per_call`): that kind alone, on a current-thread
    // runtime so that the same run does the same work, for counting instructions under
    // callgrind.
    let only = std::env::var("DEADLINES_KIND").ok();
    let runtime = if only.is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        runtime()
    };
    let kinds: Vec<Deadline> = [Deadline::None, Deadline::Default, Deadline::PerCall]
        .into_iter()
        .filter(|kind| only.as_deref().is_none_or(|only| only == kind.name()))
        .collect();
    let batchers: Vec<Echo> = kinds
        .iter()
        .map(|&kind| runtime.block_on(async { batcher(kind) }))
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); kinds.len()];
    let requests = (CALLERS * PER_CALLER) as f64;
    // Two rounds of each to warm up, then the measured ones.
    for round_number in 0..rounds + 2 {
        for ((kind, batcher), samples) in kinds.iter().zip(&batchers).zip(&mut samples) {
            let elapsed = runtime.block_on(round(batcher, *kind));
            if round_number >= 2 {
                samples.push(elapsed.as_nanos() as f64 / requests);
            }
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect();
    println!("{rounds} interleaved rounds of {CALLERS} callers x {PER_CALLER} calls");
    for (kind, median) in kinds.iter().zip(&medians) {
        println!(
            "{:>9}: median {median:7.1} ns/request ({:.2} M req/s)",
            kind.name(),
            1_000.0 / median,
        );
    }
    if let [none, default, per_call] = medians[..] {
        println!(
            "default / none: {:.2}x, per_call / none: {:.2}x, per_call / default: {:.2}x",
            default / none,
            per_call / none,
            per_call / default
        );
    }
    for (kind, batcher) in kinds.iter().zip(&batchers) {
        assert_eq!(batcher.stats().timed_out, 0, "{kind:?}");
        runtime.block_on(batcher.shutdown());
    }
}

criterion_group!(benches, calls);

fn main() {
    if let Some(rounds) = std::env::var("DEADLINES_INTERLEAVED")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
