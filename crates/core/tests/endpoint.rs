//! `EndpointTimers` on virtual time (tokio's paused clock): connections come back at their
//! deadlines and never before, later deadlines cost no wheel operation of the service, an
//! earlier one than the table held wakes the task earlier, coarse deadlines round up within
//! their slack, and shutdown ends the wait.

use std::time::Duration;

use ticktock::{CoarseDeadline, EndpointTimers, Instant, LayerDeadlines, Shutdown, TimerService};

const MS: Duration = Duration::from_millis(1);

fn service() -> TimerService {
    TimerService::builder()
        .shards(1)
        .start()
        .expect("inside a runtime")
}

#[tokio::test(start_paused = true)]
async fn connections_come_back_at_their_deadlines_in_order() {
    let service = service();
    let mut timers = EndpointTimers::with_capacity(service.handle(), 100);
    let start = timers.now();
    // Connection i is due at 10 + 7 i ms (shuffled insertion order).
    for step in 0..100u32 {
        let connection = (step * 37) % 100;
        let at = start + MS * (10 + 7 * connection);
        timers.set_deadline(connection, Some(at)).unwrap();
        assert_eq!(timers.deadline(connection), Some(at));
    }
    assert_eq!(timers.len(), 100);
    let mut seen = Vec::new();
    let mut due = Vec::new();
    while seen.len() < 100 {
        due.clear();
        let count = timers.expired(&mut due).await.unwrap();
        assert_eq!(count, due.len());
        let now = Instant::now();
        for &connection in &due {
            let deadline = start + MS * (10 + 7 * connection);
            assert!(now >= deadline, "connection {connection} early");
            assert!(
                now <= deadline + 2 * MS,
                "connection {connection} late: {:?}",
                now - deadline
            );
            seen.push(connection);
        }
    }
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert!(timers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn later_deadlines_take_no_service_operation() {
    let service = service();
    let handle = service.handle();
    let mut timers = EndpointTimers::with_capacity(handle.clone(), 1_000);
    let start = timers.now();
    for connection in 0..1_000u32 {
        timers
            .set_deadline(connection, Some(start + Duration::from_secs(3)))
            .unwrap();
    }
    let before = handle.stats();
    // A packet on every connection every 100 ms for 5 s pushes every idle deadline on.
    let mut due = Vec::new();
    for round in 1..=50u32 {
        tokio::time::advance(100 * MS).await;
        let now = timers.now();
        for connection in 0..1_000u32 {
            timers
                .set_deadline(connection, Some(now + Duration::from_secs(3)))
                .unwrap();
        }
        let polled = futures_poll(&mut timers, &mut due);
        assert_eq!(polled, None, "round {round}: nothing is due");
    }
    let after = handle.stats();
    // 50,000 pushes: the registration moved at most a few times (when the driver met it),
    // never once per push.
    assert!(
        after.armed + after.reset - before.armed - before.reset <= 5,
        "{before:?} -> {after:?}"
    );
    // Then the connections go quiet and all come due 3 s after their last push.
    let last = timers.now();
    let count = timers.expired(&mut due).await.unwrap();
    assert!(Instant::now() >= last + Duration::from_secs(3));
    assert_eq!(count, 1_000);
}

/// One poll of `expired` with a no-op waker: `Some(count)` if it was ready.
fn futures_poll(timers: &mut EndpointTimers, due: &mut Vec<u32>) -> Option<usize> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match timers.poll_expired(&mut cx, due) {
        std::task::Poll::Ready(result) => Some(result.unwrap()),
        std::task::Poll::Pending => None,
    }
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_wakes_the_waiting_task_earlier() {
    let service = service();
    let mut timers = EndpointTimers::new(service.handle());
    let start = timers.now();
    timers
        .set_deadline(0, Some(start + Duration::from_secs(60)))
        .unwrap();
    let mut due = Vec::new();
    assert_eq!(futures_poll(&mut timers, &mut due), None);
    // An RTO on another connection, far earlier than anything the table held.
    timers.set_deadline(5, Some(start + 40 * MS)).unwrap();
    timers.expired(&mut due).await.unwrap();
    assert_eq!(due, [5]);
    let now = Instant::now();
    assert!(
        now >= start + 40 * MS && now <= start + 42 * MS,
        "{:?}",
        now - start
    );
    // Connection 0 is still waiting, and a removed connection never comes back.
    timers.set_deadline(9, Some(start + 50 * MS)).unwrap();
    timers.remove(9);
    due.clear();
    timers.expired(&mut due).await.unwrap();
    assert_eq!(due, [0]);
    assert!(Instant::now() >= start + Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn coarse_deadlines_round_up_within_their_slack() {
    let service = service();
    let mut timers = EndpointTimers::new(service.handle());
    let start = timers.now();
    let deadline = start + Duration::from_millis(3_001);
    timers
        .set(
            0,
            LayerDeadlines {
                exact: None,
                coarse: Some(CoarseDeadline::eighth_of(deadline, Duration::from_secs(3))),
            },
        )
        .unwrap();
    let filed = timers.deadline(0).expect("set");
    assert!(filed >= deadline && filed <= deadline + Duration::from_millis(375));
    assert!(
        filed > deadline,
        "rounded to a slot boundary, not its own tick"
    );
    let mut due = Vec::new();
    timers.expired(&mut due).await.unwrap();
    assert!(Instant::now() >= deadline);
    // An exact deadline earlier than the coarse one wins.
    let now = timers.now();
    timers
        .set(
            1,
            LayerDeadlines {
                exact: Some(now + 10 * MS),
                coarse: Some(CoarseDeadline::eighth_of(
                    now + Duration::from_secs(3),
                    Duration::from_secs(3),
                )),
            },
        )
        .unwrap();
    assert_eq!(timers.deadline(1), Some(now + 10 * MS));
    timers.set(1, LayerDeadlines::default()).unwrap();
    assert_eq!(timers.deadline(1), None);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_wait() {
    let service = service();
    let mut timers = EndpointTimers::new(service.handle());
    let start = timers.now();
    timers
        .set_deadline(0, Some(start + Duration::from_secs(3_600)))
        .unwrap();
    let waiter = tokio::spawn(async move {
        let mut due = Vec::new();
        timers.expired(&mut due).await
    });
    tokio::task::yield_now().await;
    service.shutdown().await;
    assert_eq!(waiter.await.unwrap(), Err(Shutdown));
}
