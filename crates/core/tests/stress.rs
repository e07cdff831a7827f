//! Several threads arm, reset, cancel and drop timers while the driver fires them on a clock
//! that another thread moves: every timer is accounted for exactly once and none fires early.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ticktock::{
    Clock, ConnectionConfig, ConnectionTimers, ManualClock, Sleep, TimeoutEvent, TimerHandle,
    TimerService,
};

const THREADS: u64 = 4;
const OPS_PER_THREAD: u64 = 20_000;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn poll(sleep: &mut Sleep) -> Poll<Result<(), ticktock::Shutdown>> {
    Pin::new(sleep).poll(&mut Context::from_waker(Waker::noop()))
}

struct Setup {
    clock: ManualClock,
    handle: TimerHandle,
    _service: TimerService,
    _runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// A service on a manual clock driven by a two-worker runtime, and a thread that moves the
/// clock 100 µs at a time until stopped.
fn setup() -> Setup {
    let clock = ManualClock::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let service = runtime.block_on(async {
        TimerService::builder()
            .clock(Clock::Manual(clock.clone()))
            .shards(2)
            .start()
            .unwrap()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = std::thread::spawn({
        let clock = clock.clone();
        let stop = Arc::clone(&stop);
        move || {
            while !stop.load(Ordering::Relaxed) {
                clock.advance(Duration::from_micros(100));
                std::thread::yield_now();
            }
        }
    });
    Setup {
        clock,
        handle: service.handle(),
        _service: service,
        _runtime: runtime,
        stop,
        ticker: Some(ticker),
    }
}

impl Setup {
    fn stop_ticker(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            ticker.join().unwrap();
        }
    }
}

#[test]
fn concurrent_sleeps_fire_once_never_early() {
    let mut setup = setup();
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let handle = setup.handle.clone();
            let clock = setup.clock.clone();
            std::thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (thread + 1);
                let mut kept = Vec::new();
                for _ in 0..OPS_PER_THREAD {
                    let r = xorshift(&mut rng);
                    let deadline = clock.now() + Duration::from_micros(r % 20_000);
                    let mut sleep = handle.sleep_until(deadline);
                    if poll(&mut sleep).is_ready() {
                        assert!(clock.now() >= sleep.deadline());
                        continue;
                    }
                    match (r >> 32) % 4 {
                        // Dropped at once: cancelled, or already fired.
                        0 => drop(sleep),
                        // Moved, earlier or later, then kept.
                        1 => {
                            sleep.reset(clock.now() + Duration::from_micros((r >> 40) % 20_000));
                            kept.push(sleep);
                        }
                        _ => kept.push(sleep),
                    }
                    // Poll a few kept sleeps as they come due.
                    if kept.len() > 64 {
                        kept.retain_mut(|sleep| match poll(sleep) {
                            Poll::Ready(result) => {
                                result.unwrap();
                                assert!(clock.now() >= sleep.deadline(), "fired early");
                                false
                            }
                            Poll::Pending => true,
                        });
                    }
                }
                kept
            })
        })
        .collect();
    let mut kept: Vec<Sleep> = workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect();
    // Everything left is due within 20 ms of clock time; wait for the driver to fire it all.
    let mut spins = 0u64;
    while !kept.is_empty() {
        kept.retain_mut(|sleep| match poll(sleep) {
            Poll::Ready(result) => {
                result.unwrap();
                assert!(setup.clock.now() >= sleep.deadline(), "fired early");
                false
            }
            Poll::Pending => true,
        });
        std::thread::yield_now();
        spins += 1;
        assert!(spins < 50_000_000, "{} sleeps never fired", kept.len());
    }
    setup.stop_ticker();
    let stats = setup.handle.stats();
    assert_eq!(stats.total_timers, 0);
    assert_eq!(
        stats.armed,
        stats.processed + stats.cancelled,
        "every armed timer fired or was cancelled exactly once: {stats:?}"
    );
}

#[test]
fn concurrent_connections_never_time_out_early_and_never_lose_a_timeout() {
    let mut setup = setup();
    let config = ConnectionConfig {
        idle_timeout: Duration::from_micros(500),
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let handle = setup.handle.clone();
            let clock = setup.clock.clone();
            std::thread::spawn(move || {
                let mut rng = 0x2545_f491_4f6c_dd1d ^ (thread + 1);
                let mut connections: Vec<ConnectionTimers> = (0..64)
                    .map(|id| ConnectionTimers::new(thread * 1000 + id, handle.clone()))
                    .collect();
                // The clock time of each connection's last packet.
                let mut last_packet = vec![clock.now(); connections.len()];
                for (connection, at) in connections.iter_mut().zip(&mut last_packet) {
                    *at = clock.now();
                    connection.reset_idle_timeout_at(*at, &config).unwrap();
                }
                let mut timeouts = 0u64;
                for op in 0..OPS_PER_THREAD {
                    // Now and then a pause longer than the idle timeout, whatever the ticker does.
                    if op.is_multiple_of(512) {
                        clock.advance(Duration::from_millis(1));
                    }
                    let r = xorshift(&mut rng);
                    let i = (r % connections.len() as u64) as usize;
                    let connection = &mut connections[i];
                    for event in connection.check_timer_events() {
                        assert_eq!(event, TimeoutEvent::IdleTimeout);
                        let now = clock.now();
                        assert!(
                            now >= last_packet[i] + config.idle_timeout,
                            "idle timeout early"
                        );
                        timeouts += 1;
                    }
                    // Mostly packets (the idle timer moves later); sometimes silence.
                    if !(r >> 32).is_multiple_of(4) {
                        last_packet[i] = clock.now();
                        connection
                            .reset_idle_timeout_at(last_packet[i], &config)
                            .unwrap();
                    }
                }
                (connections, last_packet, timeouts)
            })
        })
        .collect();
    let mut results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // Every connection that still has an idle timer set must report it, on time.
    for (connections, last_packet, _) in &mut results {
        for (connection, last) in connections.iter_mut().zip(last_packet.iter()) {
            if connection.deadline(TimeoutEvent::IdleTimeout).is_none() {
                continue;
            }
            let mut spins = 0u64;
            loop {
                let events = connection.check_timer_events();
                if !events.is_empty() {
                    assert_eq!(events, [TimeoutEvent::IdleTimeout]);
                    assert!(setup.clock.now() >= *last + config.idle_timeout);
                    break;
                }
                std::thread::yield_now();
                spins += 1;
                assert!(spins < 50_000_000, "an idle timeout was lost");
            }
        }
    }
    setup.stop_ticker();
    let total: u64 = results.iter().map(|(_, _, timeouts)| timeouts).sum();
    assert!(
        total > 0,
        "silence never led to a timeout; the test did not exercise firing"
    );
    let stats = setup.handle.stats();
    assert!(stats.connection_rearms > 0, "{stats:?}");
}
