//! The harness behind `.ci/instructions`: the key timer operations, each run a fixed number of
//! times on seeded inputs, so callgrind can count the instructions they execute.
//!
//! Wall-clock benchmarks (`ticktock bench`, the criterion benches) move by ±30 % between runs
//! on a shared, noisy machine, which hides any regression smaller than that. The number of
//! instructions an operation executes does not depend on what else the machine is doing: for
//! the same binary and inputs, callgrind counts the same total run after run. So CI runs each
//! operation here under `valgrind --tool=callgrind` and compares instructions per operation with
//! a committed baseline (`.ci/instructions-baseline.json`). Instructions are not time — cache
//! misses and branch mispredictions are invisible to them — but a change that makes an
//! operation do more work shows up exactly, whatever the noise.
//!
//! Each operation builds its input from a fixed seed, runs a warm-up (so allocations, slab
//! growth and first-touch costs are paid before), then runs once inside [`measure`], the only
//! function the script tells callgrind to count (`--toggle-collect`), so the count is the
//! measured loop's inclusive cost and nothing else. Everything runs on one thread; the timer
//! service for the service operations runs on a manual clock with a current-thread tokio
//! runtime that never runs its driver task, so nothing happens in the background.
//!
//! Time origins are moved to a whole second ([`whole_second`]): adding milliseconds to an
//! instant carries into the seconds, and comparing or subtracting instants borrows, in a share
//! of operations that depends on where in its second the real clock happened to stand — a
//! 1-2 % wobble in the counts of the operations that do instant arithmetic. From a whole
//! second, every run takes the same branches.
//!
//! ```sh
//! cargo run --release -p ticktock --example instruction_counts            # every operation, wall time
//! cargo run --release -p ticktock --example instruction_counts -- --list  # name and operation count
//! cargo run --release -p ticktock --example instruction_counts -- wheel_reset   # one operation
//! bash .ci/instructions                                                    # under callgrind, against the baseline
//! ```
//!
//! Operations (the count divides the measured instructions):
//!
//! - `wheel_insert_cancel`: insert a batch of 1024 timers 1 ms–10 s ahead, cancel them all;
//!   per insert + cancel pair.
//! - `wheel_reset`: reset timers among 100,000 live ones to now + 1–30 s; per reset.
//! - `wheel_expire`: insert 1024 timers 1–1000 ms ahead and poll tick by tick until all fired;
//!   per timer (its insert and its share of the polls).
//! - `wheel_next_deadline`: `next_deadline()` on wheels of assorted occupancy; per query.
//! - `scheduler_layer_change`: a packet received and sent on a [`TimingManager`] through
//!   [`UnifiedScheduler::layer_mut`] (the keep-alive, which holds the minimum, moves later, so the
//!   cached minimum is recomputed), then the unified deadline query; per packet.
//! - `rto_sample`: [`RtoEstimator::on_rtt_sample`] and the RTO read; per sample.
//! - `connection_idle_rearm`: [`ConnectionTimers::reset_idle_timeout_at`] pushing the idle
//!   timer later (the per-packet call, no lock); per packet.
//! - `layered_packet`: a packet on [`LayeredTimeouts`] — the timing layer's receive through
//!   `layer_mut`, then `poll_timeouts` (the later deadline leaves the registration alone); per
//!   packet.

use std::hint::black_box;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ticktock::{
    Clock, ConnectionConfig, ConnectionTimers, Instant, LayeredTimeouts, ManualClock,
    ReliabilityConfig, ReliabilityLayer, RtoConfig, RtoEstimator, TimerService, TimingConfig,
    TimingManager, UnifiedScheduler,
};
use ticktock_wheel::{TimerKey, TimerWheel};

/// Runs `work` — the one function callgrind counts (`--toggle-collect=*instruction_counts::measure*`).
#[inline(never)]
fn measure<R>(work: impl FnOnce() -> R) -> R {
    black_box(work())
}

/// `instant` moved forward to the next whole second of its clock (unchanged if its offset within
/// the second cannot be read), so that arithmetic on it takes the same branches in every run.
///
/// The offset is read from the `Debug` output (`Instant { tv_sec: …, tv_nsec: … }` on Unix): the
/// only way to see it, and good enough for a harness; a format change costs only determinism,
/// which the stderr warning reports.
fn whole_second(instant: Instant) -> Instant {
    let text = format!("{instant:?}");
    let nanos = text
        .split("tv_nsec: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u32>().ok());
    match nanos {
        Some(0) => instant,
        Some(nanos) if nanos < 1_000_000_000 => {
            instant + Duration::from_nanos(u64::from(1_000_000_000 - nanos))
        }
        _ => {
            eprintln!(
                "warning: cannot read the offset within its second of {text}; counts may vary"
            );
            instant
        }
    }
}

/// A small seeded generator (splitmix64): the same inputs on every run and every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `low..=high` for inputs (a modulo bias does not matter here).
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

/// One operation: its name, how many operations the measured run performs, and the run itself
/// (set-up and warm-up outside [`measure`]); it returns a checksum so nothing is optimised away.
struct Operation {
    name: &'static str,
    ops: u64,
    run: fn() -> u64,
}

const OPERATIONS: &[Operation] = &[
    Operation {
        name: "wheel_insert_cancel",
        ops: INSERT_CANCEL_BATCH as u64 * INSERT_CANCEL_ROUNDS,
        run: run_wheel_insert_cancel,
    },
    Operation {
        name: "wheel_reset",
        ops: RESETS as u64,
        run: run_wheel_reset,
    },
    Operation {
        name: "wheel_expire",
        ops: EXPIRE_BATCH as u64 * EXPIRE_ROUNDS,
        run: run_wheel_expire,
    },
    Operation {
        name: "wheel_next_deadline",
        ops: NEXT_DEADLINE_QUERIES,
        run: run_wheel_next_deadline,
    },
    Operation {
        name: "scheduler_layer_change",
        ops: PACKETS,
        run: run_scheduler_layer_change,
    },
    Operation {
        name: "rto_sample",
        ops: RTT_SAMPLES as u64,
        run: run_rto_sample,
    },
    Operation {
        name: "connection_idle_rearm",
        ops: PACKETS,
        run: run_connection_idle_rearm,
    },
    Operation {
        name: "layered_packet",
        ops: PACKETS,
        run: run_layered_packet,
    },
];

// ---- wheel: insert + cancel ----

const INSERT_CANCEL_BATCH: usize = 1024;
const INSERT_CANCEL_ROUNDS: u64 = 16;

#[inline(never)]
fn insert_cancel(
    wheel: &mut TimerWheel<u64>,
    deadlines: &[u64],
    keys: &mut Vec<TimerKey>,
    rounds: u64,
) -> u64 {
    let mut sum = 0;
    for _ in 0..rounds {
        let now = wheel.current_tick();
        for (i, &ahead) in deadlines.iter().enumerate() {
            keys.push(wheel.insert(now + ahead, i as u64));
        }
        for key in keys.drain(..) {
            sum += wheel.cancel(key).unwrap_or(0);
        }
    }
    sum
}

fn run_wheel_insert_cancel() -> u64 {
    let mut rng = Rng::new(1);
    // 1 tick = 1 ms: 1 ms to 10 s ahead.
    let deadlines: Vec<u64> = (0..INSERT_CANCEL_BATCH)
        .map(|_| rng.range(1, 10_000))
        .collect();
    let mut wheel = TimerWheel::with_capacity(INSERT_CANCEL_BATCH);
    let mut keys = Vec::with_capacity(INSERT_CANCEL_BATCH);
    insert_cancel(&mut wheel, &deadlines, &mut keys, 2);
    measure(|| insert_cancel(&mut wheel, &deadlines, &mut keys, INSERT_CANCEL_ROUNDS))
}

// ---- wheel: reset among 100,000 live timers ----

const LIVE_TIMERS: usize = 100_000;
const RESETS: usize = 20_000;

#[inline(never)]
fn resets(wheel: &mut TimerWheel<u64>, keys: &[TimerKey], plan: &[(u32, u64)]) -> u64 {
    let now = wheel.current_tick();
    let mut moved = 0;
    for &(index, ahead) in plan {
        moved += u64::from(wheel.reset(keys[index as usize], now + ahead));
    }
    moved
}

fn run_wheel_reset() -> u64 {
    let mut rng = Rng::new(2);
    let mut wheel = TimerWheel::with_capacity(LIVE_TIMERS);
    let keys: Vec<TimerKey> = (0..LIVE_TIMERS as u64)
        .map(|i| wheel.insert(rng.range(1_000, 30_000), i))
        .collect();
    let mut plan = || -> Vec<(u32, u64)> {
        (0..RESETS)
            .map(|_| {
                let index = rng.range(0, LIVE_TIMERS as u64 - 1) as u32;
                (index, rng.range(1_000, 30_000))
            })
            .collect()
    };
    let warm_up = plan();
    let measured = plan();
    resets(&mut wheel, &keys, &warm_up);
    measure(|| resets(&mut wheel, &keys, &measured))
}

// ---- wheel: expire tick by tick ----

const EXPIRE_BATCH: usize = 1024;
const EXPIRE_ROUNDS: u64 = 4;

#[inline(never)]
fn expire(wheel: &mut TimerWheel<u64>, deadlines: &[u64], out: &mut Vec<u64>, rounds: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..rounds {
        let start = wheel.current_tick();
        for (i, &ahead) in deadlines.iter().enumerate() {
            wheel.insert(start + ahead, i as u64);
        }
        let mut now = start;
        while !wheel.is_empty() {
            now += 1;
            wheel.poll(now, out);
            sum += out.drain(..).sum::<u64>();
        }
    }
    sum
}

fn run_wheel_expire() -> u64 {
    let mut rng = Rng::new(3);
    let deadlines: Vec<u64> = (0..EXPIRE_BATCH).map(|_| rng.range(1, 1_000)).collect();
    let mut wheel = TimerWheel::with_capacity(EXPIRE_BATCH);
    let mut out = Vec::with_capacity(EXPIRE_BATCH);
    expire(&mut wheel, &deadlines, &mut out, 1);
    measure(|| expire(&mut wheel, &deadlines, &mut out, EXPIRE_ROUNDS))
}

// ---- wheel: next_deadline ----

const NEXT_DEADLINE_QUERIES: u64 = 100_000;

#[inline(never)]
fn next_deadlines(wheels: &[TimerWheel<u64>], queries: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..queries {
        let wheel = black_box(&wheels[i as usize % wheels.len()]);
        sum = sum.wrapping_add(wheel.next_deadline().unwrap_or(u64::MAX));
    }
    sum
}

fn run_wheel_next_deadline() -> u64 {
    let mut rng = Rng::new(4);
    // Sixteen wheels, from empty to 4096 timers, deadlines from this window to days ahead,
    // some after a poll moved the current tick off zero.
    let wheels: Vec<TimerWheel<u64>> = (0..16u32)
        .map(|w| {
            let mut wheel = TimerWheel::new();
            let timers = if w == 0 { 0 } else { 1u64 << (w % 13) };
            let horizon = 1u64 << (6 + 2 * (w % 14));
            for i in 0..timers {
                wheel.insert(rng.range(1, horizon), i);
            }
            if w % 3 == 1 {
                let mut out = Vec::new();
                wheel.poll(horizon / 4, &mut out);
            }
            wheel
        })
        .collect();
    next_deadlines(&wheels, NEXT_DEADLINE_QUERIES / 10);
    measure(|| next_deadlines(&wheels, NEXT_DEADLINE_QUERIES))
}

// ---- layers: UnifiedScheduler layer change + unified deadline ----

const PACKETS: u64 = 20_000;

const MS: Duration = Duration::from_millis(1);

fn timing_config() -> TimingConfig {
    TimingConfig {
        idle_timeout: Duration::from_secs(30),
        handshake_timeout: None,
        keep_alive: Some(Duration::from_secs(10)),
    }
}

#[inline(never)]
fn scheduler_packets(
    scheduler: &mut UnifiedScheduler,
    timing: ticktock::LayerId<TimingManager>,
    start: Instant,
    first: u64,
    packets: u64,
) -> u64 {
    let mut sum = 0u64;
    for i in first..first + packets {
        let now = start + MS * i as u32;
        if let Some(mut layer) = scheduler.layer_mut(timing) {
            layer.on_packet_received(now);
            layer.on_packet_sent(now);
        }
        if let Some(deadline) = scheduler.calculate_unified_deadline() {
            sum = sum.wrapping_add(deadline.duration_since(start).as_nanos() as u64);
        }
    }
    sum
}

fn run_scheduler_layer_change() -> u64 {
    let start = whole_second(Instant::now());
    let mut scheduler = UnifiedScheduler::new();
    let timing = scheduler.add_layer(TimingManager::new(timing_config(), start));
    scheduler.add_layer(ReliabilityLayer::new(ReliabilityConfig::default()));
    scheduler_packets(&mut scheduler, timing, start, 0, PACKETS / 10);
    measure(|| scheduler_packets(&mut scheduler, timing, start, PACKETS / 10, PACKETS))
}

// ---- RTO estimation ----

const RTT_SAMPLES: usize = 100_000;

#[inline(never)]
fn rtt_samples(estimator: &mut RtoEstimator, samples: &[Duration]) -> u64 {
    let mut sum = 0u64;
    for &sample in samples {
        estimator.on_rtt_sample(sample);
        sum = sum.wrapping_add(estimator.rto().as_nanos() as u64);
    }
    sum
}

fn run_rto_sample() -> u64 {
    let mut rng = Rng::new(6);
    let samples: Vec<Duration> = (0..RTT_SAMPLES)
        .map(|_| Duration::from_micros(rng.range(10_000, 200_000)))
        .collect();
    let mut estimator = RtoEstimator::new(RtoConfig {
        min: Duration::from_millis(200),
        ..RtoConfig::default()
    });
    rtt_samples(&mut estimator, &samples[..RTT_SAMPLES / 10]);
    measure(|| rtt_samples(&mut estimator, &samples))
}

// ---- the service: ConnectionTimers and LayeredTimeouts on a manual clock ----

/// A service on a manual clock, on a current-thread runtime that is entered but never run: its
/// driver task is spawned and never polled, so nothing moves behind the measured code.
///
/// The manual clock starts where tokio's clock stands; the runtime's clock is paused and moved
/// to a whole second first, so the service's epoch is one (see [`whole_second`]).
fn manual_service() -> (tokio::runtime::Runtime, ManualClock, TimerService) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let now = Instant::now();
        tokio::time::advance(whole_second(now) - now).await;
    });
    let entered = runtime.enter();
    let clock = ManualClock::new();
    let service = TimerService::builder()
        .shards(1)
        .resolution(MS)
        .clock(Clock::Manual(clock.clone()))
        .start()
        .expect("a manual-clock service");
    drop(entered);
    (runtime, clock, service)
}

#[inline(never)]
fn idle_rearms(
    timers: &mut ConnectionTimers,
    config: &ConnectionConfig,
    start: Instant,
    first: u64,
    packets: u64,
) -> u64 {
    let mut failed = 0;
    for i in first..first + packets {
        let now = start + MS * i as u32;
        failed += u64::from(timers.reset_idle_timeout_at(now, config).is_err());
    }
    failed
}

fn run_connection_idle_rearm() -> u64 {
    let (_runtime, clock, service) = manual_service();
    let config = ConnectionConfig {
        idle_timeout: Duration::from_secs(30),
    };
    let mut timers = ConnectionTimers::new(1, service.handle());
    timers.register_idle_timeout(&config).expect("armed");
    let start = clock.now();
    idle_rearms(&mut timers, &config, start, 0, PACKETS / 10);
    let failed = measure(|| idle_rearms(&mut timers, &config, start, PACKETS / 10, PACKETS));
    assert_eq!(failed, 0, "the service stopped");
    black_box(timers.next_deadline()).map_or(0, |d| d.duration_since(start).as_nanos() as u64)
}

#[inline(never)]
fn layered_packets(
    timeouts: &mut LayeredTimeouts,
    timing: ticktock::LayerId<TimingManager>,
    cx: &mut Context<'_>,
    start: Instant,
    first: u64,
    packets: u64,
) -> u64 {
    let mut ready = 0;
    for i in first..first + packets {
        let now = start + MS * i as u32;
        if let Some(mut layer) = timeouts.layer_mut(timing) {
            layer.on_packet_received(now);
            layer.on_packet_sent(now);
        }
        ready += u64::from(matches!(timeouts.poll_timeouts(cx), Poll::Ready(_)));
    }
    ready
}

fn run_layered_packet() -> u64 {
    let (_runtime, clock, service) = manual_service();
    let start = clock.now();
    let mut timeouts = LayeredTimeouts::new(service.handle());
    let timing = timeouts.add_layer(TimingManager::new(timing_config(), start));
    timeouts.add_layer(ReliabilityLayer::new(ReliabilityConfig::default()));
    let mut cx = Context::from_waker(Waker::noop());
    // The first poll files the registration; the packets after it only move deadlines later.
    assert!(timeouts.poll_timeouts(&mut cx).is_pending());
    layered_packets(&mut timeouts, timing, &mut cx, start, 0, PACKETS / 10);
    let ready =
        measure(|| layered_packets(&mut timeouts, timing, &mut cx, start, PACKETS / 10, PACKETS));
    assert_eq!(ready, 0, "nothing can be due: the clock never moved");
    timeouts.stats().deadline_queries
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for operation in OPERATIONS {
                println!("{} {}", operation.name, operation.ops);
            }
        }
        Some("--help" | "-h") => {
            println!(
                "usage: instruction_counts [--list | OPERATION...]\n\
                 Runs the named operations (all without arguments) and prints name, operation \
                 count, wall ns per operation and a checksum. Under callgrind, count only \
                 `measure`: --collect-atstart=no --toggle-collect='*instruction_counts::measure*'."
            );
        }
        _ => {
            let chosen: Vec<&Operation> = if args.is_empty() {
                OPERATIONS.iter().collect()
            } else {
                args.iter()
                    .map(|name| {
                        OPERATIONS
                            .iter()
                            .find(|operation| operation.name == name)
                            .unwrap_or_else(|| {
                                eprintln!("unknown operation {name:?} (see --list)");
                                std::process::exit(2)
                            })
                    })
                    .collect()
            };
            for operation in chosen {
                let started = std::time::Instant::now();
                let checksum = (operation.run)();
                // Set-up and warm-up included: a rough figure, not a benchmark.
                let nanos = started.elapsed().as_nanos() as f64 / operation.ops as f64;
                println!(
                    "{} ops={} wall_ns_per_op_incl_setup={nanos:.1} checksum={checksum}",
                    operation.name, operation.ops
                );
            }
        }
    }
}
