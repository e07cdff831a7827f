//! Criterion benchmarks of `TimerWheel` alone, for regression tracking.
//!
//! They mirror the workloads of `ticktock bench` (which compares the wheel with other timer
//! structures side by side) so a regression found here can be looked at there in context:
//!
//! - `churn/B`: insert B timers 1 ms–10 s ahead, then cancel all B (throughput: timers).
//! - `expire/B`: insert B timers 1–1000 ticks ahead and poll one tick at a time until all fired
//!   (throughput: timers). B = 1,048,576 (32 MiB of timers) is the cache-bound size the layout
//!   experiments in the README were judged on, with `examples/cold_poll.rs`.
//! - `reset/100000`: reset random timers among 100,000 live ones to now + 1–30 s (throughput:
//!   resets).
//!
//! - `fixed/{churn,expire}/{fifo,wheel}/B`: timers that all share one delay (1000 ticks), 8 pushed
//!   per tick, on a `FixedDelayQueue` and on a `TimerWheel` given the same deadlines: `churn`
//!   pushes B and cancels all B, `expire` pushes B while time moves one tick per 8 pushes and
//!   polls each tick until all fired (throughput: timers).
//!
//! Inputs come from a fixed-seed `SmallRng`, drawn before anything is timed.
//! `cargo bench -p ticktock-wheel --bench wheel -- --test` runs each once as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ticktock_wheel::{FixedDelayKey, FixedDelayQueue, TimerKey, TimerWheel};

const SEED: u64 = 20_240_601;
const CHURN_SIZES: [usize; 7] = [32, 128, 256, 1024, 2048, 4096, 8192];
const EXPIRE_SIZES: [usize; 3] = [1024, 65_536, 1_048_576];
const RESET_LIVE: usize = 100_000;
/// Resets per criterion iteration, so the loop overhead is spread thin.
const RESETS_PER_ITER: usize = 1024;

fn delays(len: usize, range: std::ops::RangeInclusive<u64>, salt: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(SEED ^ salt);
    (0..len).map(|_| rng.random_range(range.clone())).collect()
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    for batch in CHURN_SIZES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let delays = delays(batch, 1..=10_000, batch as u64);
            let mut wheel = TimerWheel::<u64>::new();
            let mut keys: Vec<TimerKey> = Vec::with_capacity(batch);
            b.iter(|| {
                for &delay in &delays {
                    keys.push(wheel.insert(delay, delay));
                }
                for key in keys.drain(..) {
                    black_box(wheel.cancel(key));
                }
            });
            assert!(wheel.is_empty());
        });
    }
    group.finish();
}

/// One expire round: inserts every delay relative to the wheel's tick, polls tick by tick until
/// all fired. Returns the time it took.
fn expire_round(wheel: &mut TimerWheel<u64>, delays: &[u64], fired: &mut Vec<u64>) -> Duration {
    fired.clear();
    let start = wheel.current_tick();
    let started = Instant::now();
    for &delay in delays {
        wheel.insert(start + delay, start + delay);
    }
    let mut now = start;
    while fired.len() < delays.len() {
        now += 1;
        wheel.poll(now, fired);
    }
    let elapsed = started.elapsed();
    assert!(fired.iter().all(|&deadline| deadline <= now));
    black_box(fired.len());
    elapsed
}

fn expire(c: &mut Criterion) {
    let mut group = c.benchmark_group("expire");
    group.sample_size(20);
    for batch in EXPIRE_SIZES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let delays = delays(batch, 1..=1000, 1 << 32 | batch as u64);
            let mut wheel = TimerWheel::<u64>::new();
            let mut fired = Vec::with_capacity(batch);
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| expire_round(&mut wheel, &delays, &mut fired))
                    .sum()
            });
        });
    }
    group.finish();
}

fn reset(c: &mut Criterion) {
    let mut group = c.benchmark_group("reset");
    group.throughput(Throughput::Elements(RESETS_PER_ITER as u64));
    group.bench_function(BenchmarkId::from_parameter(RESET_LIVE), |b| {
        let initial = delays(RESET_LIVE, 1_000..=30_000, 2 << 32);
        let mut wheel = TimerWheel::<u64>::with_capacity(RESET_LIVE);
        let keys: Vec<TimerKey> = initial.iter().map(|&d| wheel.insert(d, d)).collect();
        let picks = delays(1 << 16, 0..=(RESET_LIVE as u64 - 1), 3 << 32);
        let new_delays = delays(1 << 16, 1_000..=30_000, 4 << 32);
        let mut cursor = 0usize;
        b.iter(|| {
            let now = wheel.current_tick();
            for _ in 0..RESETS_PER_ITER {
                let i = cursor & 0xFFFF;
                cursor = cursor.wrapping_add(1);
                black_box(wheel.reset(keys[picks[i] as usize], now + new_delays[i]));
            }
        });
        assert_eq!(wheel.len(), RESET_LIVE);
    });
    group.finish();
}

const FIXED_DELAY: u64 = 1000;
const FIXED_SIZES: [usize; 2] = [1024, 65_536];
/// Pushes per tick in the `fixed` workloads.
const PER_TICK: u64 = 8;

/// Same-delay timers: `FixedDelayQueue` against `TimerWheel` on the same deadlines.
fn fixed(c: &mut Criterion) {
    let mut group = c.benchmark_group("fixed");
    for batch in FIXED_SIZES {
        group.throughput(Throughput::Elements(batch as u64));
        let ticks = batch as u64 / PER_TICK;
        group.bench_function(BenchmarkId::new("churn/fifo", batch), |b| {
            let mut queue = FixedDelayQueue::<u64>::with_capacity(FIXED_DELAY, batch);
            let mut keys: Vec<FixedDelayKey> = Vec::with_capacity(batch);
            let mut start = 0;
            b.iter(|| {
                for i in 0..batch as u64 {
                    keys.push(queue.push(start + i / PER_TICK, i));
                }
                for key in keys.drain(..) {
                    black_box(queue.cancel(key));
                }
                start += ticks;
                black_box(queue.poll(start, &mut Vec::new()));
            });
            assert!(queue.is_empty());
        });
        group.bench_function(BenchmarkId::new("churn/wheel", batch), |b| {
            let mut wheel = TimerWheel::<u64>::with_capacity(batch);
            let mut keys: Vec<TimerKey> = Vec::with_capacity(batch);
            let mut fired = Vec::new();
            let mut start = 0;
            b.iter(|| {
                for i in 0..batch as u64 {
                    keys.push(wheel.insert(start + i / PER_TICK + FIXED_DELAY, i));
                }
                for key in keys.drain(..) {
                    black_box(wheel.cancel(key));
                }
                start += ticks;
                black_box(wheel.poll(start, &mut fired));
            });
            assert!(wheel.is_empty());
        });
        group.bench_function(BenchmarkId::new("expire/fifo", batch), |b| {
            let mut queue = FixedDelayQueue::<u64>::with_capacity(FIXED_DELAY, batch);
            let mut fired = Vec::with_capacity(batch);
            let mut now = 0;
            b.iter(|| {
                fired.clear();
                let mut pushed = 0;
                while fired.len() < batch {
                    for _ in 0..PER_TICK.min((batch - pushed) as u64) {
                        queue.push(now, now);
                        pushed += 1;
                    }
                    queue.poll(now, &mut fired);
                    now += 1;
                }
                black_box(fired.len());
            });
        });
        group.bench_function(BenchmarkId::new("expire/wheel", batch), |b| {
            let mut wheel = TimerWheel::<u64>::with_capacity(batch);
            let mut fired = Vec::with_capacity(batch);
            let mut now = 0;
            b.iter(|| {
                fired.clear();
                let mut pushed = 0;
                while fired.len() < batch {
                    for _ in 0..PER_TICK.min((batch - pushed) as u64) {
                        wheel.insert(now + FIXED_DELAY, now);
                        pushed += 1;
                    }
                    wheel.poll(now, &mut fired);
                    now += 1;
                }
                black_box(fired.len());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, churn, expire, reset, fixed);
criterion_main!(benches);
