//! `ConnectionTimers` on virtual time (tokio's paused clock).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ticktock::{
    ConnectionConfig, ConnectionTimers, Instant, Precision, Shutdown, TimeoutEvent, TimerError,
    TimerHandle, TimerService, USER_KINDS,
};

fn service() -> TimerService {
    TimerService::builder()
        .shards(1)
        .start()
        .expect("inside a runtime")
}

const MS: Duration = Duration::from_millis(1);

/// A service and connection 1's timers on it (the service must outlive the timers' use).
fn connection() -> (TimerService, TimerHandle, ConnectionTimers) {
    let service = service();
    let handle = service.handle();
    let timers = ConnectionTimers::new(1, handle.clone());
    (service, handle, timers)
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_fires_at_its_deadline() {
    let service = service();
    let mut timers = ConnectionTimers::new(7, service.handle());
    assert_eq!(timers.connection_id(), 7);
    let start = Instant::now();
    let config = ConnectionConfig {
        idle_timeout: 30 * MS,
    };
    timers.register_idle_timeout(&config).unwrap();
    assert_eq!(
        timers.deadline(TimeoutEvent::IdleTimeout),
        Some(start + 30 * MS)
    );
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::IdleTimeout));
    assert_eq!(Instant::now(), start + 30 * MS);
    // Reported once, then unset.
    assert_eq!(timers.deadline(TimeoutEvent::IdleTimeout), None);
    assert!(timers.check_timer_events().is_empty());
}

#[tokio::test(start_paused = true)]
async fn pushing_the_idle_timer_later_never_touches_the_wheel() {
    let (_service, handle, mut timers) = connection();
    let config = ConnectionConfig {
        idle_timeout: 100 * MS,
    };
    let start = Instant::now();
    timers.register_idle_timeout(&config).unwrap();
    let armed = handle.stats().armed;
    // A packet every 10 ms for 1 s: the idle timer is pushed back 100 times.
    for _ in 0..100 {
        handle.sleep(10 * MS).await.unwrap();
        timers.reset_idle_timeout(&config).unwrap();
    }
    let stats = handle.stats();
    // Only the sleeps above armed timers; the connection's entry was never reset or re-armed
    // by the connection itself.
    assert_eq!(stats.armed - armed, 100);
    assert_eq!(stats.reset, 0);
    // The entry came up early (every 100 ms) and the driver re-filed it without waking anyone.
    assert!(stats.connection_rearms >= 9, "{stats:?}");
    // Then the connection goes quiet and times out 100 ms after the last packet.
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::IdleTimeout));
    assert_eq!(Instant::now(), start + 1100 * MS);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_resets_the_entry() {
    let (_service, handle, mut timers) = connection();
    let start = Instant::now();
    timers
        .register_timer(TimeoutEvent::IdleTimeout, Duration::from_secs(30))
        .unwrap();
    timers
        .register_timer(TimeoutEvent::RetransmissionTimeout, 200 * MS)
        .unwrap();
    assert_eq!(handle.stats().reset, 1);
    assert_eq!(
        handle.stats().total_timers,
        1,
        "one wheel entry per connection"
    );
    assert_eq!(
        timers.next_event().await,
        Ok(TimeoutEvent::RetransmissionTimeout)
    );
    assert_eq!(Instant::now(), start + 200 * MS);
    // The idle timer is coarse: rounded up, by at most an eighth of its 30 s.
    let idle = timers.next_deadline().unwrap();
    let exact = start + Duration::from_secs(30);
    assert!(idle >= exact && idle <= exact + Duration::from_secs(30) / 8);
}

/// The idle timer is coarse by default: never early, at most an eighth of the timeout late.
/// Made exact, it fires in its own tick; other kinds are exact unless asked.
#[tokio::test(start_paused = true)]
async fn idle_is_coarse_by_default_and_precision_is_chosen_per_kind() {
    let (_service, _handle, mut timers) = connection();
    assert_eq!(
        timers.precision(TimeoutEvent::IdleTimeout),
        Ok(Precision::Coarse)
    );
    assert_eq!(
        timers.precision(TimeoutEvent::KeepAlive),
        Ok(Precision::Exact)
    );
    assert_eq!(
        timers.set_precision(TimeoutEvent::User(USER_KINDS), Precision::Coarse),
        Err(TimerError::UnknownKind(USER_KINDS))
    );
    let config = ConnectionConfig {
        idle_timeout: Duration::from_secs(3),
    };
    for precision in [Precision::Coarse, Precision::Exact] {
        timers
            .set_precision(TimeoutEvent::IdleTimeout, precision)
            .unwrap();
        let start = Instant::now();
        timers.reset_idle_timeout(&config).unwrap();
        assert_eq!(timers.next_event().await, Ok(TimeoutEvent::IdleTimeout));
        let late = Instant::now() - (start + config.idle_timeout);
        match precision {
            Precision::Exact => assert_eq!(late, Duration::ZERO),
            Precision::Coarse => assert!(late <= config.idle_timeout / 8, "{late:?}"),
        }
    }
    timers
        .set_precision(TimeoutEvent::KeepAlive, Precision::Coarse)
        .unwrap();
    let start = Instant::now();
    timers
        .register_timer(TimeoutEvent::KeepAlive, Duration::from_secs(10))
        .unwrap();
    let deadline = timers.deadline(TimeoutEvent::KeepAlive).unwrap();
    assert!(deadline >= start + Duration::from_secs(10));
    assert!(deadline <= start + Duration::from_secs(10) + Duration::from_secs(10) / 8);
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::KeepAlive));
    assert_eq!(Instant::now(), deadline);
}

#[tokio::test(start_paused = true)]
async fn kinds_due_together_are_all_reported_in_order() {
    let (_service, handle, mut timers) = connection();
    timers
        .register_timer(TimeoutEvent::KeepAlive, 10 * MS)
        .unwrap();
    timers
        .register_timer(TimeoutEvent::User(3), 10 * MS)
        .unwrap();
    timers.register_path_validation_timeout(5 * MS).unwrap();
    timers
        .register_timer(TimeoutEvent::ConnectionTimeout, 50 * MS)
        .unwrap();
    // The connection is slow: it looks only after everything but the handshake timer is due.
    handle.sleep(20 * MS).await.unwrap();
    assert_eq!(
        timers.check_timer_events(),
        [
            TimeoutEvent::PathValidationTimeout,
            TimeoutEvent::KeepAlive,
            TimeoutEvent::User(3)
        ]
    );
    assert!(timers.check_timer_events().is_empty());
    // next_event hands out kinds that fell due together one call at a time.
    timers
        .register_timer(TimeoutEvent::IdleTimeout, 40 * MS)
        .unwrap();
    handle.sleep(40 * MS).await.unwrap();
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::IdleTimeout));
    assert_eq!(
        timers.next_event().await,
        Ok(TimeoutEvent::ConnectionTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn cancelled_kinds_never_fire() {
    let (_service, handle, mut timers) = connection();
    timers
        .register_timer(TimeoutEvent::RetransmissionTimeout, 10 * MS)
        .unwrap();
    timers
        .register_timer(TimeoutEvent::KeepAlive, 20 * MS)
        .unwrap();
    assert!(timers.cancel_timer(&TimeoutEvent::RetransmissionTimeout));
    assert!(!timers.cancel_timer(&TimeoutEvent::RetransmissionTimeout));
    let start = Instant::now();
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::KeepAlive));
    assert_eq!(Instant::now(), start + 20 * MS);

    timers
        .register_timer(TimeoutEvent::IdleTimeout, 10 * MS)
        .unwrap();
    timers
        .register_timer(TimeoutEvent::KeepAlive, 10 * MS)
        .unwrap();
    timers.cancel_all_timers();
    assert_eq!(handle.stats().total_timers, 0);
    handle.sleep(50 * MS).await.unwrap();
    assert!(timers.check_timer_events().is_empty());
    assert_eq!(timers.next_deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_connection_cancels_its_entry() {
    let service = service();
    let handle = service.handle();
    {
        let mut timers = ConnectionTimers::new(1, handle.clone());
        timers
            .register_timer(TimeoutEvent::IdleTimeout, Duration::from_secs(30))
            .unwrap();
        assert_eq!(handle.stats().active_connections, 1);
        assert_eq!(handle.stats().total_timers, 1);
    }
    let stats = handle.stats();
    assert_eq!(
        (
            stats.active_connections,
            stats.total_timers,
            stats.cancelled
        ),
        (0, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn out_of_range_user_kinds_are_errors() {
    let service = service();
    let mut timers = ConnectionTimers::new(1, service.handle());
    assert_eq!(
        timers.register_timer(TimeoutEvent::User(USER_KINDS), MS),
        Err(TimerError::UnknownKind(USER_KINDS))
    );
    assert!(!timers.cancel_timer(&TimeoutEvent::User(200)));
    assert_eq!(timers.deadline(TimeoutEvent::User(200)), None);
    timers
        .register_timer(TimeoutEvent::User(USER_KINDS - 1), MS)
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn next_event_is_cancel_safe() {
    let (_service, handle, mut timers) = connection();
    timers
        .register_timer(TimeoutEvent::KeepAlive, 10 * MS)
        .unwrap();
    // Give up waiting after 5 ms; the event is not lost.
    assert!(handle.timeout(5 * MS, timers.next_event()).await.is_err());
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::KeepAlive));
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_next_event_after_due_events() {
    let (service, handle, mut timers) = connection();
    timers
        .register_timer(TimeoutEvent::KeepAlive, 10 * MS)
        .unwrap();
    timers
        .register_timer(TimeoutEvent::IdleTimeout, Duration::from_secs(60))
        .unwrap();
    handle.sleep(20 * MS).await.unwrap();
    service.shutdown().await;
    assert_eq!(timers.next_event().await, Ok(TimeoutEvent::KeepAlive));
    assert_eq!(timers.next_event().await, Err(Shutdown));
    assert_eq!(
        timers.register_timer(TimeoutEvent::KeepAlive, MS),
        Err(TimerError::Shutdown(Shutdown))
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_connection_is_woken_not_polled_in_a_loop() {
    let service = service();
    let mut timers = ConnectionTimers::new(1, service.handle());
    timers
        .register_timer(TimeoutEvent::KeepAlive, 10 * MS)
        .unwrap();
    let mut event = Box::pin(timers.next_event());
    let counting = std::sync::Arc::new(WakeCount::default());
    let waker = Waker::from(std::sync::Arc::clone(&counting));
    assert!(
        event
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    tokio::time::sleep(20 * MS).await;
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        Pin::new(&mut event).poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Ok(TimeoutEvent::KeepAlive))
    );
}

#[derive(Default)]
struct WakeCount(std::sync::atomic::AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// With no timer set, a connection waiting in `next_event` is still woken by the shutdown.
#[tokio::test(start_paused = true)]
async fn shutdown_wakes_a_connection_with_no_timer() {
    let service = ticktock::TimerService::builder().start().expect("service");
    let mut connection = ticktock::ConnectionTimers::new(7, service.handle());
    let waiting = tokio::spawn(async move { connection.next_event().await });
    tokio::task::yield_now().await;
    service.shutdown().await;
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("woken by the shutdown")
        .expect("task");
    assert_eq!(result, Err(ticktock::Shutdown));
}
