//! The `AsyncTimer` of `TicktockRuntime` on tokio's paused clock: no real sleeping.
//!
//! The service reads tokio's clock (the builder's default), so `tokio::time::advance` moves
//! the service, the timers and `Runtime::now` together, and an awaited timer completes at the
//! virtual instant the service fired it.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use quinn::{AsyncTimer, Runtime as _};
use ticktock::{Instant, TimerService};
use ticktock_quinn::{TicktockRuntime, TimerOps};

const RESOLUTION: Duration = Duration::from_millis(1);
/// How late an awaited timer may complete: the service's tick, plus the millisecond grid of
/// tokio's timer that its task driver sleeps on in these tests.
const LATE: Duration = Duration::from_millis(2);

fn service() -> TimerService {
    TimerService::builder()
        .resolution(RESOLUTION)
        .shards(1)
        .start()
        .expect("a service starts inside the runtime")
}

fn timer(runtime: &TicktockRuntime, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
    runtime.new_timer(deadline.into_std())
}

fn poll_once(timer: &mut Pin<Box<dyn AsyncTimer>>) -> Poll<()> {
    timer.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// Waits for the timer and returns the (virtual) instant it completed.
async fn fired_at(timer: &mut Pin<Box<dyn AsyncTimer>>) -> Instant {
    poll_fn(|cx| timer.as_mut().poll(cx)).await;
    Instant::now()
}

fn assert_on_time(fired: Instant, deadline: Instant) {
    assert!(
        fired >= deadline,
        "fired {:?} early",
        deadline.duration_since(fired)
    );
    assert!(
        fired <= deadline + LATE,
        "fired {:?} late",
        fired.duration_since(deadline)
    );
}

#[tokio::test(start_paused = true)]
async fn fires_at_its_deadline_and_not_before() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    // Deadlines off the millisecond grid: the wheel rounds them up to the next tick.
    for offset_us in [1, 999, 1_000, 1_001, 10_300, 250_000] {
        let deadline = Instant::now() + Duration::from_micros(offset_us);
        let mut timer = timer(&runtime, deadline);
        assert_on_time(fired_at(&mut timer).await, deadline);
    }
}

#[tokio::test(start_paused = true)]
async fn never_ready_before_the_deadline() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let deadline = Instant::now() + Duration::from_micros(10_300);
    let mut timer = timer(&runtime, deadline);
    assert!(poll_once(&mut timer).is_pending());
    // Step up to one nanosecond before the deadline, letting the service's driver run.
    for step in [Duration::from_millis(5), Duration::from_millis(5)] {
        tokio::time::advance(step).await;
        tokio::task::yield_now().await;
        assert!(poll_once(&mut timer).is_pending(), "ready at {step:?}");
    }
    tokio::time::advance(deadline - Instant::now() - Duration::from_nanos(1)).await;
    tokio::task::yield_now().await;
    assert!(poll_once(&mut timer).is_pending(), "ready 1 ns early");
}

#[tokio::test(start_paused = true)]
async fn polled_at_the_deadline_is_ready_before_the_wheel_fires() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    // 300 µs into a tick: the wheel entry sits at the tick's end, 700 µs later.
    let deadline = Instant::now() + Duration::from_micros(5_300);
    let mut timer = timer(&runtime, deadline);
    assert!(poll_once(&mut timer).is_pending());
    tokio::time::advance(deadline - Instant::now()).await;
    assert_eq!(Instant::now(), deadline);
    assert!(poll_once(&mut timer).is_ready(), "the clock says it is due");
    // And it stays ready when polled again without a reset.
    assert!(poll_once(&mut timer).is_ready());
    // Long after the deadline too.
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(poll_once(&mut timer).is_ready());
}

#[tokio::test(start_paused = true)]
async fn reset_earlier() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let mut timer = timer(&runtime, Instant::now() + Duration::from_secs(30));
    assert!(poll_once(&mut timer).is_pending());
    let earlier = Instant::now() + Duration::from_millis(12);
    timer.as_mut().reset(earlier.into_std());
    assert_on_time(fired_at(&mut timer).await, earlier);
}

#[tokio::test(start_paused = true)]
async fn reset_later() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let first = Instant::now() + Duration::from_millis(10);
    let mut timer = timer(&runtime, first);
    assert!(poll_once(&mut timer).is_pending());
    let later = first + Duration::from_millis(40);
    timer.as_mut().reset(later.into_std());
    // Past the old deadline it is still pending.
    tokio::time::advance(Duration::from_millis(20)).await;
    tokio::task::yield_now().await;
    assert!(
        poll_once(&mut timer).is_pending(),
        "fired at the old deadline"
    );
    assert_on_time(fired_at(&mut timer).await, later);
}

#[tokio::test(start_paused = true)]
async fn reset_before_the_first_poll() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let mut timer = timer(&runtime, Instant::now() + Duration::from_millis(3));
    let later = Instant::now() + Duration::from_millis(70);
    timer.as_mut().reset(later.into_std());
    assert_on_time(fired_at(&mut timer).await, later);
}

#[tokio::test(start_paused = true)]
async fn reset_after_firing_fires_again() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let first = Instant::now() + Duration::from_millis(5);
    let mut timer = timer(&runtime, first);
    assert_on_time(fired_at(&mut timer).await, first);
    for gap in [1, 7, 25, 1_000] {
        let next = Instant::now() + Duration::from_millis(gap);
        timer.as_mut().reset(next.into_std());
        assert!(
            poll_once(&mut timer).is_pending(),
            "ready right after reset"
        );
        assert_on_time(fired_at(&mut timer).await, next);
    }
}

#[tokio::test(start_paused = true)]
async fn reset_into_the_past_is_ready_at_once() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let mut timer = timer(&runtime, Instant::now() + Duration::from_secs(1));
    assert!(poll_once(&mut timer).is_pending());
    tokio::time::advance(Duration::from_millis(10)).await;
    let past = Instant::now() - Duration::from_millis(5);
    timer.as_mut().reset(past.into_std());
    assert!(poll_once(&mut timer).is_ready());
}

#[tokio::test(start_paused = true)]
async fn many_resets_either_way_then_the_last_deadline_wins() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let start = Instant::now();
    let mut timer = timer(&runtime, start + Duration::from_millis(50));
    assert!(poll_once(&mut timer).is_pending());
    // The way quinn moves a connection's timer: ack delay, loss detection, idle, back and forth.
    for (i, millis) in [25u64, 300, 3, 30_000, 17, 9, 400, 60]
        .into_iter()
        .enumerate()
    {
        timer
            .as_mut()
            .reset((start + Duration::from_millis(millis)).into_std());
        if i % 2 == 0 {
            assert!(poll_once(&mut timer).is_pending());
        }
    }
    assert_on_time(
        fired_at(&mut timer).await,
        start + Duration::from_millis(60),
    );
}

#[tokio::test(start_paused = true)]
async fn drop_cancels_the_wheel_entry() {
    let service = service();
    let handle = service.handle();
    let runtime = TicktockRuntime::new(handle.clone());
    let mut timers: Vec<_> = (0..100)
        .map(|i| timer(&runtime, Instant::now() + Duration::from_millis(10 + i)))
        .collect();
    for timer in &mut timers {
        assert!(poll_once(timer).is_pending());
    }
    assert_eq!(handle.stats().total_timers, 100);
    drop(timers);
    let stats = handle.stats();
    assert_eq!(stats.total_timers, 0);
    assert_eq!(stats.cancelled, 100);
}

#[tokio::test(start_paused = true)]
async fn runtime_now_reads_the_service_clock() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let before = runtime.now();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(runtime.now() - before, Duration::from_secs(5));
    assert_eq!(runtime.now(), Instant::now().into_std());
}

#[tokio::test(start_paused = true)]
async fn stats_count_every_operation() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let clone = runtime.clone();
    let mut timer = timer(&clone, Instant::now() + Duration::from_millis(5));
    for _ in 0..3 {
        assert!(poll_once(&mut timer).is_pending());
    }
    timer
        .as_mut()
        .reset((Instant::now() + Duration::from_millis(8)).into_std());
    fired_at(&mut timer).await;
    drop(timer);
    let ops = runtime.stats();
    assert_eq!(ops.created, 1);
    assert_eq!(ops.resets, 1);
    assert_eq!(ops.fired, 1);
    assert!(ops.polls >= 4, "{ops:?}");
    assert_eq!(ops.fallbacks, 0);
    assert_eq!(ops.operations(), ops.created + ops.resets + ops.polls);
    assert_eq!(
        TicktockRuntime::new(service.handle()).stats(),
        TimerOps::default()
    );
}

#[tokio::test(start_paused = true)]
async fn resets_and_polls_do_not_allocate() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let mut timers: Vec<_> = (0..64)
        .map(|i| timer(&runtime, Instant::now() + Duration::from_millis(100 + i)))
        .collect();
    let round = |timers: &mut Vec<Pin<Box<dyn AsyncTimer>>>| {
        let now = Instant::now();
        for (i, timer) in timers.iter_mut().enumerate() {
            let i = i as u64;
            timer
                .as_mut()
                .reset((now + Duration::from_millis(5 + i)).into_std());
            assert!(poll_once(timer).is_pending());
            timer
                .as_mut()
                .reset((now + Duration::from_millis(2_000 + i * 7)).into_std());
            assert!(poll_once(timer).is_pending());
            timer
                .as_mut()
                .reset((now + Duration::from_micros(300 + i)).into_std());
            assert!(poll_once(timer).is_pending());
        }
    };
    round(&mut timers);
    round(&mut timers);
    let info = allocation_counter::measure(|| round(&mut timers));
    assert_eq!(info.count_total, 0, "resets and polls allocated: {info:?}");
}

/// A service that shuts down under a pending timer: the timer neither spins (ready before its
/// deadline) nor hangs; it moves to the global service and fires on time. The global service
/// reads the real clock, so this one test waits 30 ms of real time.
#[tokio::test]
async fn after_shutdown_the_timer_fires_on_time_on_the_global_service() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let deadline = Instant::now() + Duration::from_millis(30);
    let mut timer = timer(&runtime, deadline);
    assert!(poll_once(&mut timer).is_pending());
    service.shutdown().await;
    assert!(
        poll_once(&mut timer).is_pending(),
        "ready before its deadline"
    );
    let fired = fired_at(&mut timer).await;
    assert!(fired >= deadline);
    // A reset still works on the global service.
    let next = Instant::now() + Duration::from_millis(5);
    timer.as_mut().reset(next.into_std());
    assert!(fired_at(&mut timer).await >= next);
    drop(timer);
    assert_eq!(runtime.stats().fallbacks, 1);
}

#[test]
fn the_default_runtime_is_the_global_service() {
    let runtime = TicktockRuntime::default();
    assert_eq!(runtime.handle().resolution(), RESOLUTION);
    assert!(!runtime.handle().is_shut_down());
    let short: ticktock_quinn::Runtime = TicktockRuntime::global();
    assert!(format!("{short:?}").contains("TicktockRuntime"));
}
