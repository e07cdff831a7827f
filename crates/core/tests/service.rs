//! The timer service on virtual time: tokio's paused clock (the driver sleeps on tokio's timer,
//! which auto-advances when every task is idle) or a `ManualClock`. Only the system-clock tests
//! at the end (the driver thread, the timerfd driver task) wait on real time, a few
//! milliseconds each.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ticktock::{
    BuildError, Clock, Instant, ManualClock, MissedTickBehavior, Shutdown, TimeoutError,
    TimerService,
};

fn service() -> TimerService {
    TimerService::builder()
        .resolution(Duration::from_millis(1))
        .shards(2)
        .start()
        .expect("valid settings inside a runtime")
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

use std::pin::Pin;

#[tokio::test(start_paused = true)]
async fn sleep_resolves_at_its_deadline_never_before() {
    let service = service();
    let timers = service.handle();
    for millis in [1u64, 2, 7, 63, 64, 65, 1000, 4097, 300_000] {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(millis);
        timers
            .sleep_until(deadline)
            .await
            .expect("service is running");
        let woke = Instant::now();
        assert!(woke >= deadline, "woke {:?} early", deadline - woke);
        // On paused time the driver wakes exactly at the deadline's tick.
        assert!(
            woke - deadline <= Duration::from_millis(1),
            "{millis} ms: late by {:?}",
            woke - deadline
        );
    }
}

#[tokio::test(start_paused = true)]
async fn sub_tick_deadlines_round_up() {
    let service = service();
    let timers = service.handle();
    let start = Instant::now();
    let deadline = start + Duration::from_micros(1500);
    timers.sleep_until(deadline).await.unwrap();
    assert!(Instant::now() >= deadline);
}

#[tokio::test(start_paused = true)]
async fn many_sleeps_each_fire_once_in_deadline_order() {
    let service = service();
    let timers = service.handle();
    let start = Instant::now();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500u64 {
        let timers = timers.clone();
        let order = Arc::clone(&order);
        // Deadlines spread over several wheel levels, inserted out of order.
        let delay = Duration::from_millis((i * 7919) % 5000 + 1);
        tasks.spawn(async move {
            timers.sleep(delay).await.unwrap();
            assert!(Instant::now() >= start + delay);
            order.lock().unwrap().push(delay);
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 500);
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "fired out of order");
    let stats = timers.stats();
    assert_eq!(stats.processed, 500);
    assert_eq!(stats.total_timers, 0);
    assert_eq!(stats.lateness.samples, 500);
    assert!(stats.lateness.max <= Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn past_and_huge_deadlines_do_not_panic() {
    let service = service();
    let timers = service.handle();
    // In the past: ready on the first poll, without a wheel entry.
    let mut past = timers.sleep_until(Instant::now() - Duration::from_secs(1));
    assert_eq!(poll_once(&mut past), Poll::Ready(Ok(())));
    assert!(past.is_elapsed());
    timers.sleep(Duration::ZERO).await.unwrap();
    // Far beyond any horizon: accepted, pending, cancelled on drop.
    let mut far = timers.sleep(Duration::MAX);
    assert_eq!(poll_once(&mut far), Poll::Pending);
    assert_eq!(timers.stats().total_timers, 1);
    drop(far);
    assert_eq!(timers.stats().total_timers, 0);
    assert_eq!(timers.stats().cancelled, 1);
}

#[tokio::test(start_paused = true)]
async fn reset_moves_a_sleep_earlier_later_and_after_firing() {
    let service = service();
    let timers = service.handle();
    let start = Instant::now();
    let mut sleep = timers.sleep(Duration::from_secs(10));
    assert!(poll_once(&mut sleep).is_pending());
    sleep.reset(start + Duration::from_millis(20));
    (&mut sleep).await.unwrap();
    assert_eq!(Instant::now(), start + Duration::from_millis(20));
    // After firing, a reset arms it again.
    sleep.reset(Instant::now() + Duration::from_millis(30));
    assert!(!sleep.is_elapsed());
    (&mut sleep).await.unwrap();
    assert_eq!(Instant::now(), start + Duration::from_millis(50));
    // Later: pushes it back.
    sleep.reset(Instant::now() + Duration::from_millis(5));
    assert!(poll_once(&mut sleep).is_pending());
    sleep.reset(Instant::now() + Duration::from_millis(40));
    (&mut sleep).await.unwrap();
    assert_eq!(Instant::now(), start + Duration::from_millis(90));
    assert_eq!(timers.stats().total_timers, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pending_sleep_cancels_it() {
    let service = service();
    let timers = service.handle();
    for _ in 0..100 {
        let mut sleep = timers.sleep(Duration::from_secs(3));
        assert!(poll_once(&mut sleep).is_pending());
    }
    let stats = timers.stats();
    assert_eq!(
        (stats.armed, stats.cancelled, stats.total_timers),
        (100, 100, 0)
    );
    // A sleep that is never polled never touches the service.
    drop(timers.sleep(Duration::from_secs(1)));
    assert_eq!(timers.stats().armed, 100);
}

#[tokio::test(start_paused = true)]
async fn timeout_returns_output_or_elapsed() {
    let service = service();
    let timers = service.handle();
    assert_eq!(
        timers.timeout(Duration::from_millis(10), async { 7 }).await,
        Ok(7)
    );
    let start = Instant::now();
    let slow = timers.sleep(Duration::from_secs(5));
    let result = timers.timeout(Duration::from_millis(100), slow).await;
    assert_eq!(result, Err(TimeoutError::Elapsed));
    assert_eq!(Instant::now(), start + Duration::from_millis(100));
    // The inner sleep and the timeout's own timer are both gone.
    assert_eq!(timers.stats().total_timers, 0);
}

#[tokio::test(start_paused = true)]
async fn interval_ticks_and_handles_missed_ticks() {
    let service = service();
    let timers = service.handle();
    let start = Instant::now();
    let period = Duration::from_millis(10);

    let mut interval = timers.interval(period);
    for n in 0..4u32 {
        assert_eq!(interval.tick().await, Ok(start + period * n));
    }

    // Fall 35 ms behind: Burst catches up at once, Delay restarts from now, Skip keeps phase.
    for (behavior, expected_after_miss) in [
        (MissedTickBehavior::Burst, [40u64, 50, 60]),
        (MissedTickBehavior::Delay, [40, 85, 95]),
        (MissedTickBehavior::Skip, [40, 80, 90]),
    ] {
        let base = Instant::now();
        let mut interval = timers.interval_at(base, period);
        interval.set_missed_tick_behavior(behavior);
        assert_eq!(interval.tick().await, Ok(base));
        for _ in 0..3 {
            interval.tick().await.unwrap();
        }
        timers.sleep(Duration::from_millis(45)).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(interval.tick().await.unwrap() - base);
        }
        let expected: Vec<Duration> = expected_after_miss
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        assert_eq!(got, expected, "{behavior:?}");
    }

    // A zero period is taken as one resolution instead of panicking.
    let mut fast = timers.interval(Duration::ZERO);
    assert_eq!(fast.period(), timers.resolution());
    fast.tick().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_resolves_pending_futures_with_an_error() {
    let service = service();
    let timers = service.handle();
    let pending = tokio::spawn({
        let timers = timers.clone();
        async move { timers.sleep(Duration::from_secs(60)).await }
    });
    let timed = tokio::spawn({
        let timers = timers.clone();
        async move {
            timers
                .timeout(Duration::from_secs(60), std::future::pending::<()>())
                .await
        }
    });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    service.shutdown().await;
    assert_eq!(pending.await.unwrap(), Err(Shutdown));
    assert_eq!(timed.await.unwrap(), Err(TimeoutError::Shutdown(Shutdown)));
    assert!(timers.is_shut_down());
    // New timers fail at once rather than hang.
    assert_eq!(timers.sleep(Duration::from_millis(1)).await, Err(Shutdown));
    let mut interval = timers.interval(Duration::from_millis(5));
    assert_eq!(interval.tick().await, Err(Shutdown));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_service_shuts_it_down() {
    let timers = service().handle();
    tokio::task::yield_now().await;
    assert_eq!(timers.sleep(Duration::from_secs(1)).await, Err(Shutdown));
}

#[tokio::test(start_paused = true)]
async fn bad_settings_are_typed_errors() {
    let builder = TimerService::builder();
    assert!(matches!(
        builder.clone().resolution(Duration::from_nanos(10)).start(),
        Err(BuildError::ResolutionTooFine(_))
    ));
    assert!(matches!(
        builder.clone().shards(0).start(),
        Err(BuildError::Shards(0))
    ));
    assert!(matches!(
        builder.shards(5000).start(),
        Err(BuildError::Shards(5000))
    ));
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    assert!(matches!(
        TimerService::builder().start(),
        Err(BuildError::NoRuntime)
    ));
}

/// tokio cannot pause time on its multi-thread runtime, so this one moves a manual clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_the_multi_thread_runtime() {
    let clock = ManualClock::new();
    let service = TimerService::builder()
        .clock(Clock::Manual(clock.clone()))
        .start()
        .unwrap();
    let timers = service.handle();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let timers = timers.clone();
        let clock = clock.clone();
        tasks.spawn(async move {
            let deadline = clock.now() + Duration::from_millis(i % 50 + 1);
            timers.sleep_until(deadline).await.unwrap();
            assert!(clock.now() >= deadline);
        });
    }
    let mut done = 0;
    while done < 200 {
        clock.advance(Duration::from_millis(1));
        tokio::task::yield_now().await;
        while let Some(result) = tasks.try_join_next() {
            result.unwrap();
            done += 1;
        }
    }
    // A task first polled after the clock passed its deadline resolves without the driver.
    let stats = timers.stats();
    assert_eq!(stats.armed, stats.processed);
    assert_eq!(stats.total_timers, 0);
}

#[test]
fn manual_clock_drives_the_service_from_plain_threads() {
    let clock = ManualClock::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let service = runtime.block_on(async {
        TimerService::builder()
            .clock(Clock::Manual(clock.clone()))
            .start()
            .unwrap()
    });
    // The driver runs on a runtime of its own thread; this thread only moves the clock.
    let driver_thread = std::thread::spawn({
        let runtime = runtime;
        move || runtime.block_on(std::future::pending::<()>())
    });
    let timers = service.handle();
    let fired = Arc::new(AtomicUsize::new(0));
    let waiter = std::thread::spawn({
        let timers = timers.clone();
        let clock = clock.clone();
        let fired = Arc::clone(&fired);
        move || {
            // A plain thread with no tokio timer of its own awaits a ticktock sleep.
            let local = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let deadline = clock.now() + Duration::from_millis(50);
            local.block_on(timers.sleep_until(deadline)).unwrap();
            assert!(clock.now() >= deadline);
            fired.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Move the clock in small steps until the sleep fired; no real sleeping for time to pass.
    let mut steps = 0;
    while fired.load(Ordering::SeqCst) == 0 {
        clock.advance(Duration::from_millis(1));
        std::thread::yield_now();
        steps += 1;
        assert!(steps < 10_000_000, "the sleep never fired");
    }
    waiter.join().unwrap();
    drop(service);
    drop(driver_thread);
}

#[test]
fn global_service_runs_on_its_own_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let global = ticktock::start_global_timer_task();
        assert!(!global.is_shut_down());
        ticktock::sleep(Duration::ZERO).await.unwrap();
        assert_eq!(
            ticktock::timeout(Duration::from_secs(5), async { 1 }).await,
            Ok(1)
        );
        // Registered on the global service's wheel by one poll, cancelled by the drop; nothing
        // here waits for real time to pass.
        let before = global.stats();
        let mut hour = ticktock::sleep(Duration::from_secs(3600));
        assert!(poll_once(&mut hour).is_pending());
        assert_eq!(global.stats().armed, before.armed + 1);
        drop(hour);
        assert_eq!(global.stats().cancelled, before.cancelled + 1);
    });
}

#[tokio::test(start_paused = true)]
async fn coarse_now_follows_the_driver_and_is_never_ahead() {
    let service = service();
    let timers = service.handle();
    timers.sleep(Duration::from_millis(25)).await.unwrap();
    let coarse = timers.coarse_now();
    assert!(coarse <= Instant::now());
    // The driver's last pass fired the sleep, at its deadline.
    assert!(Instant::now() - coarse <= Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn stats_reach_the_metrics_facade() {
    use metrics_util::debugging::DebuggingRecorder;
    let service = service();
    let timers = service.handle();
    timers.sleep(Duration::from_millis(3)).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let stats = metrics::with_local_recorder(&recorder, || timers.stats());
    assert_eq!(stats.processed, 1);
    let names: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, _)| key.key().name().to_owned())
        .collect();
    for expected in [
        "ticktock_timers_active",
        "ticktock_connections_active",
        "ticktock_timers_fired_total",
        "ticktock_timers_cancelled_total",
        "ticktock_wheel_cascades_total",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
}

/// The system clock's precise alarm (real time, so only a millisecond of it).
#[tokio::test]
async fn system_clock_service_fires_on_real_time_never_early() {
    let service = TimerService::builder()
        .clock(Clock::System)
        .start()
        .unwrap();
    let timers = service.handle();
    for _ in 0..3 {
        let deadline = std::time::Instant::now() + Duration::from_micros(700);
        timers
            .sleep_until(Instant::from_std(deadline))
            .await
            .unwrap();
        assert!(std::time::Instant::now() >= deadline);
    }
    assert_eq!(timers.stats().processed, 3);
}

/// A system-clock service has a driver thread of its own: no runtime needed to start it, and
/// a plain thread can wait on it with any executor.
#[test]
fn system_clock_service_starts_without_a_runtime() {
    let service = TimerService::builder()
        .clock(Clock::System)
        .start()
        .expect("no runtime needed");
    let timers = service.handle();
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_micros(500);
    local
        .block_on(timers.sleep_until(Instant::from_std(deadline)))
        .unwrap();
    assert!(std::time::Instant::now() >= deadline);
    local.block_on(service.shutdown());
    assert_eq!(
        local.block_on(timers.sleep(Duration::from_secs(1))),
        Err(Shutdown)
    );
}

/// The timerfd driver task (Linux): real time again, so only milliseconds of it.
#[cfg(target_os = "linux")]
mod timerfd_driver {
    use super::*;

    fn timerfd_service() -> TimerService {
        TimerService::builder()
            .clock(Clock::SystemTimerfd)
            .resolution(Duration::from_micros(250))
            .shards(2)
            .start()
            .expect("inside a runtime with I/O")
    }

    /// Concurrent sleeps on staggered deadlines: the driver re-arms its timerfd for each next
    /// tick, is notified when an earlier timer arrives, and meets leftover readiness of an
    /// earlier arming; every sleep ends, at or after its deadline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fires_every_timer_on_real_time_never_early() {
        let service = timerfd_service();
        let timers = service.handle();
        let start = std::time::Instant::now();
        // Later deadlines first, so most arms are earlier than the driver's alarm.
        let sleeps: Vec<_> = (0..40u64)
            .rev()
            .map(|i| {
                let deadline = start + Duration::from_micros(300 + 97 * i);
                let sleep = timers.sleep_until(Instant::from_std(deadline));
                tokio::spawn(async move {
                    sleep.await.unwrap();
                    std::time::Instant::now() >= deadline
                })
            })
            .collect();
        for sleep in sleeps {
            assert!(sleep.await.unwrap(), "a timer fired before its deadline");
        }
        assert!(timers.stats().driver_wakeups > 1);
    }

    /// A timer far away puts the driver's alarm far away; a near one armed afterwards must
    /// wake it (a missed notification would leave the near one waiting the far one's time).
    #[tokio::test]
    async fn an_earlier_timer_wakes_the_sleeping_driver() {
        let service = timerfd_service();
        let timers = service.handle();
        let far = timers.sleep(Duration::from_secs(60));
        tokio::pin!(far);
        assert!(poll_once(&mut far).is_pending());
        tokio::task::yield_now().await;
        // Without its ring the near timer would wait for the driver's next look: the far
        // timer, or the once-a-second recheck.
        let near = timers.sleep(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_millis(500), near)
            .await
            .expect("the near timer rang the alarm")
            .unwrap();
    }

    /// The service stops like any other, by `shutdown` or by being dropped: its waiters get
    /// `Shutdown`, and so does any later arm.
    #[tokio::test]
    async fn stopping_the_service_wakes_its_waiters() {
        for by_drop in [false, true] {
            let service = timerfd_service();
            let timers = service.handle();
            let pending = tokio::spawn(timers.sleep(Duration::from_secs(60)));
            tokio::task::yield_now().await;
            if by_drop {
                drop(service);
            } else {
                service.shutdown().await;
            }
            assert_eq!(pending.await.unwrap(), Err(Shutdown), "by drop: {by_drop}");
            assert_eq!(timers.sleep(Duration::from_secs(1)).await, Err(Shutdown));
        }
    }

    /// Many tasks on two workers arm short timers one after another: rings come from both
    /// workers while the other is in a pass, and none is lost (a lost one would leave a sleep
    /// waiting for the idle recheck a second later, or for ever).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rings_from_both_workers_are_never_lost() {
        let service = timerfd_service();
        let timers = service.handle();
        let tasks: Vec<_> = (0..8u64)
            .map(|task| {
                let timers = timers.clone();
                tokio::spawn(async move {
                    for round in 0..60u64 {
                        let delay = Duration::from_micros(50 + (task * 131 + round * 71) % 450);
                        let deadline = std::time::Instant::now() + delay;
                        timers.sleep(delay).await.unwrap();
                        assert!(std::time::Instant::now() >= deadline, "early");
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("no ring lost")
                .unwrap();
        }
    }

    /// A task that never yields keeps this one-thread runtime from looking at its I/O, so the
    /// alarm's ring goes unheard; reading the service's clock runs the overdue pass instead.
    #[tokio::test]
    async fn a_reader_of_the_clock_runs_an_overdue_pass() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let service = timerfd_service();
        let timers = service.handle();
        let fired = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&fired));
        let deadline = std::time::Instant::now() + Duration::from_millis(1);
        let mut sleep = timers.sleep_until(Instant::from_std(deadline));
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let give_up = deadline + Duration::from_secs(5);
        while !fired.0.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < give_up, "nobody ran the pass");
            let _ = timers.now();
        }
        assert!(std::time::Instant::now() >= deadline, "fired early");
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    }

    /// Its alarm lives on a runtime's I/O driver: outside a runtime it does not start.
    #[test]
    fn needs_a_runtime() {
        let error = TimerService::builder()
            .clock(Clock::SystemTimerfd)
            .start()
            .expect_err("no runtime");
        assert_eq!(error, BuildError::NoRuntime);
    }
}
