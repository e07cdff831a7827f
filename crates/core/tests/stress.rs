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
    /// Runs `work` on `THREADS` threads, each given a handle, the clock and its number, and
    /// returns what each returned.
    fn on_workers<T: Send + 'static>(
        &self,
        work: impl Fn(TimerHandle, ManualClock, u64) -> T + Send + Clone + 'static,
    ) -> Vec<T> {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (handle, clock, work) = (self.handle.clone(), self.clock.clone(), work.clone());
                std::thread::spawn(move || work(handle, clock, thread))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    }

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
    let results = setup.on_workers(move |handle, clock, thread| {
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
    });
    let mut kept: Vec<Sleep> = results.into_iter().flatten().collect();
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
    let mut results = setup.on_workers(move |handle, clock, thread| {
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
    });
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

/// A layer whose deadline the test sets directly.
struct Deadline(Option<ticktock::Instant>);

impl ticktock::TimeoutLayer for Deadline {
    fn next_deadline(&self) -> Option<ticktock::Instant> {
        self.0
    }

    fn check_timeouts(&mut self, now: ticktock::Instant) -> ticktock::TimeoutCheckResult {
        let mut result = ticktock::TimeoutCheckResult::empty("deadline");
        if self.0.is_some_and(|at| at <= now) {
            self.0 = None;
            result
                .events
                .push(ticktock::LayerEvent::Timeout(TimeoutEvent::User(0)));
        }
        result
    }

    fn layer_name(&self) -> &'static str {
        "deadline"
    }
}

/// A waker that raises a flag.
struct Flag(AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A layered connection of these tests: one [`Deadline`] layer, polled with a [`Flag`] waker.
type Layered = (
    ticktock::LayeredTimeouts,
    ticktock::LayerId<Deadline>,
    Arc<Flag>,
);

/// 64 layered connections on `handle`; `OPS_PER_THREAD` times a random one's layer is given
/// the deadline `next(now, random, its current deadline)` and the connection polls once, as a
/// select loop would after a packet. Returns the connections and how many polls found a layer
/// due.
fn move_and_poll(
    handle: &TimerHandle,
    clock: &ManualClock,
    seed: u64,
    next: impl Fn(ticktock::Instant, u64, Option<ticktock::Instant>) -> ticktock::Instant,
) -> (Vec<Layered>, u64) {
    let mut rng = seed;
    let mut connections: Vec<Layered> = (0..64)
        .map(|_| {
            let mut timeouts = ticktock::LayeredTimeouts::new(handle.clone());
            let id = timeouts.add_layer(Deadline(None));
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            (timeouts, id, flag)
        })
        .collect();
    let mut fired = 0u64;
    for _ in 0..OPS_PER_THREAD {
        let r = xorshift(&mut rng);
        let (timeouts, id, flag) = &mut connections[(r % 64) as usize];
        let now = clock.now();
        if let Some(mut layer) = timeouts.layer_mut(*id) {
            layer.0 = Some(next(now, r, layer.0));
        }
        let waker = Waker::from(Arc::clone(flag));
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(results) = timeouts.poll_timeouts(&mut Context::from_waker(&waker)) {
            assert!(!results.unwrap().is_empty());
            fired += 1;
        }
    }
    (connections, fired)
}

/// Layered connections move their deadline (mostly later, sometimes earlier) and poll while the
/// driver fires their registrations on a moving clock. Afterwards each connection with a
/// deadline is polled again only when its waker was woken: a lost wakeup (a registration gone
/// with nobody told) leaves the flag down forever.
#[test]
fn layered_connections_are_always_woken_and_never_early() {
    let mut setup = setup();
    let results = setup.on_workers(move |handle, clock, thread| {
        // Mostly later (the idle case), sometimes earlier, within 0.1–1.6 ms.
        move_and_poll(
            &handle,
            &clock,
            0x9e37_79b9_7f4a_7c15 ^ (thread + 1),
            |now, r, _| now + Duration::from_micros(100 + (r >> 40) % 1500),
        )
    });
    for (mut connections, _) in results {
        for (timeouts, id, flag) in &mut connections {
            let Some(deadline) = timeouts.layer(*id).and_then(|layer| layer.0) else {
                continue;
            };
            let waker = Waker::from(Arc::clone(flag));
            let mut spins = 0u64;
            loop {
                flag.0.store(false, Ordering::SeqCst);
                if let Poll::Ready(results) =
                    timeouts.poll_timeouts(&mut Context::from_waker(&waker))
                {
                    assert!(!results.unwrap().is_empty());
                    assert!(setup.clock.now() >= deadline, "a layer was checked early");
                    break;
                }
                // Poll again only once woken, as an executor would.
                while !flag.0.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                    spins += 1;
                    assert!(spins < 50_000_000, "a wakeup was lost");
                }
            }
        }
    }
    setup.stop_ticker();
}

/// The same with deadlines mostly 20 s and more (over 8,192 ticks of 1 ms) away, where a poll whose
/// deadlines did not move earlier returns `Pending` from a flag and a few loads, without
/// looking at the deadlines: moves later and earlier among far deadlines, and now and then a
/// near one, must still leave every connection woken at (never before) its deadline. The clock
/// is then moved on until each has fired.
#[test]
fn layered_connections_far_from_due_are_still_woken_and_never_early() {
    let mut setup = setup();
    let results = setup.on_workers(move |handle, clock, thread| {
        move_and_poll(
            &handle,
            &clock,
            0x2545_f491_4f6c_dd1d ^ (thread + 1),
            |now, r, current| {
                // Far enough that the final polls below still find it more than 8,192 ticks
                // away: a deadline the quiet path dropped would never be woken.
                let far = now + Duration::from_millis(20_000);
                let jitter = (r >> 40) % 3_000;
                match (r >> 8) % 50 {
                    // Now and then a near deadline, which fires during the run.
                    0 => now + Duration::from_micros(100 + jitter % 1500),
                    // Now and then an earlier far one (or later: 20–23 s ahead in any order).
                    1..=4 => far + Duration::from_millis(jitter),
                    // Mostly later, as a packet pushes an idle timeout.
                    _ => match current {
                        Some(at) if at >= far => at + Duration::from_millis(1 + jitter % 100),
                        _ => far + Duration::from_millis(jitter),
                    },
                }
            },
        )
    });
    setup.stop_ticker();
    // Every poll above that went past the quiet path asked the scheduler for its deadlines.
    let queries: u64 = results
        .iter()
        .flat_map(|(connections, _)| connections)
        .map(|(timeouts, _, _)| timeouts.stats().deadline_queries)
        .sum();
    assert!(
        queries < THREADS * OPS_PER_THREAD / 2,
        "{queries} deadline queries for {} polls: the quiet path was not taken",
        THREADS * OPS_PER_THREAD
    );
    // Every connection polls once more while its deadline is still far (the quiet path again),
    // then time moves through the deadlines in order: each connection must be woken by the time
    // the clock is two ticks past its deadline, and its layer must not be due before.
    let mut waiting: Vec<_> = results
        .into_iter()
        .flat_map(|(connections, _)| connections)
        .filter_map(|(mut timeouts, id, flag)| {
            let deadline = timeouts.layer(id).and_then(|layer| layer.0)?;
            flag.0.store(false, Ordering::SeqCst);
            let waker = Waker::from(Arc::clone(&flag));
            match timeouts.poll_timeouts(&mut Context::from_waker(&waker)) {
                Poll::Pending => Some((deadline, timeouts, flag)),
                Poll::Ready(results) => {
                    assert!(!results.unwrap().is_empty());
                    assert!(setup.clock.now() >= deadline, "a layer was checked early");
                    None
                }
            }
        })
        .collect();
    assert!(!waiting.is_empty(), "no far deadline was left to wait for");
    waiting.sort_by_key(|(deadline, _, _)| *deadline);
    for (deadline, timeouts, flag) in &mut waiting {
        while setup.clock.now() < *deadline + Duration::from_millis(2) {
            setup.clock.advance(Duration::from_millis(1));
        }
        let waker = Waker::from(Arc::clone(flag));
        loop {
            let mut spins = 0u64;
            while !flag.0.load(Ordering::SeqCst) {
                std::thread::yield_now();
                spins += 1;
                assert!(
                    spins < 20_000_000,
                    "not woken two ticks after its deadline: a moved deadline was lost"
                );
            }
            flag.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(results) = timeouts.poll_timeouts(&mut Context::from_waker(&waker)) {
                assert!(!results.unwrap().is_empty());
                assert!(setup.clock.now() >= *deadline, "a layer was checked early");
                break;
            }
        }
    }
}
