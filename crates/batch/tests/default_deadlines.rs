//! The batcher's default deadline on virtual time. Requests that use it (every one with the same
//! `Duration`) wait in one batcher-wide FIFO of deadlines with one timer-service sleep for all
//! of them, instead of a sleep per caller; these tests pin down that the contract is the same
//! as for per-call deadlines: a request times out at exactly arrival + deadline (not when the
//! next batch forms), in order, and never reaches the handler; a request that started in time
//! is not timed out; callers that give up leave no trace and give their queue space back;
//! per-call deadlines mixed in keep their own; shutdown runs or times out what is queued and
//! does not wait for far deadlines; and a served request costs the timer service nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ticktock_batch::{BatchError, Batcher, CallOptions, Priority};

#[tokio::test(start_paused = true)]
async fn default_deadlines_fire_in_order_each_at_arrival_plus_deadline() {
    let service = timer();
    let log = Log::new();
    let batcher = batcher_with_default_deadline(&service, &log);
    let start = log.start();
    let mut calls = vec![call_at(&batcher, start, ms(0), SLOW, deadline(ms(1000)))];
    // 50 callers, one per ms, some two in the same ms, all waiting behind the slow batch.
    for i in 1..=50u32 {
        calls.push(spawn_call(&batcher, start, ms(1 + u64::from(i / 2 * 2)), i));
    }
    let results = within(ms(1000), join_all(calls)).await;
    let mut expected = vec![(100, ok(SLOW))];
    expected.extend((1..=50u64).map(|i| (1 + i / 2 * 2 + 30, Err("TimedOut"))));
    assert_eq!(simple(&results), expected);
    assert_eq!(log.timeline(), vec![(0, vec![SLOW])]);
    let stats = batcher.stats();
    assert_eq!((stats.timed_out, stats.served, stats.admitted), (50, 1, 51));
    assert_eq!(stats.queue_depth, 0);
}

#[tokio::test(start_paused = true)]
async fn per_call_deadlines_mixed_with_the_default_keep_their_own() {
    let service = timer();
    let log = Log::new();
    let batcher = batcher_with_default_deadline(&service, &log);
    let start = log.start();
    let high = CallOptions {
        priority: Priority::High,
        ..CallOptions::default()
    };
    let calls = vec![
        call_at(&batcher, start, ms(0), SLOW, deadline(ms(1000))),
        spawn_call(&batcher, start, ms(1), 1),
        call_at(&batcher, start, ms(2), 2, deadline(ms(10))),
        call_at(&batcher, start, ms(3), 3, deadline(ms(200))),
        spawn_call(&batcher, start, ms(4), 4),
        call_at(&batcher, start, ms(5), 5, deadline(ms(29))),
        call_at(&batcher, start, ms(6), 6, deadline(ms(40))),
        // The high lane uses the same FIFO.
        call_at(&batcher, start, ms(7), 7, high),
        // The same duration as the default, given per call: a sleep of its own.
        call_at(&batcher, start, ms(8), 8, deadline(ms(30))),
    ];
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![
            (100, ok(SLOW)),
            (31, Err("TimedOut")),
            (12, Err("TimedOut")),
            (110, ok(3)),
            (34, Err("TimedOut")),
            (34, Err("TimedOut")),
            (46, Err("TimedOut")),
            (37, Err("TimedOut")),
            (38, Err("TimedOut")),
        ]
    );
    assert_eq!(log.timeline(), vec![(0, vec![SLOW]), (100, vec![3])]);
    let stats = batcher.stats();
    assert_eq!((stats.timed_out, stats.served), (7, 2));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_started_before_its_default_deadline_is_not_timed_out() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(1)
        .default_deadline(Some(ms(25)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls: Vec<_> = (0..5u32)
        .map(|i| spawn_call(&batcher, start, ms(u64::from(i)), i))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![
            (10, ok(0)),
            (20, ok(1)),
            // Started at 20, before its deadline (27); answered at 30, after it.
            (30, ok(2)),
            // Would have started at 30: timed out at 3 + 25 and 4 + 25.
            (28, Err("TimedOut")),
            (29, Err("TimedOut")),
        ]
    );
    assert_eq!(
        log.timeline(),
        vec![(0, vec![0]), (10, vec![1]), (20, vec![2])]
    );
}

#[tokio::test(start_paused = true)]
async fn callers_that_give_up_while_queued_leave_no_trace_and_free_their_space() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .queue_capacity(10)
        .max_batch_size(16)
        .default_deadline(Some(ms(30)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let slow = call_at(&batcher, start, ms(0), SLOW, deadline(ms(1000)));
    let mut waits = Vec::new();
    let mut gives_up = Vec::new();
    for i in 1..=10u32 {
        if i % 3 == 2 {
            // 2, 5, 8: give up at 15.
            let batcher = batcher.clone();
            gives_up.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + ms(1)).await;
                let outcome = tokio::time::timeout(ms(14), batcher.call(i)).await;
                (start.elapsed(), outcome.is_err())
            }));
        } else {
            waits.push(spawn_call(&batcher, start, ms(1), i));
        }
    }
    tokio::time::sleep_until(start + ms(2)).await;
    assert!(matches!(
        batcher.try_call(99).await,
        Err(BatchError::QueueFull)
    ));
    for caller in gives_up {
        assert_eq!(caller.await.unwrap(), (ms(15), true));
    }
    // Their space came back at once: three more fit, a fourth does not.
    let late: Vec<_> = (100..103)
        .map(|i| spawn_call(&batcher, start, ms(16), i))
        .collect();
    tokio::time::sleep_until(start + ms(17)).await;
    assert!(matches!(
        batcher.try_call(99).await,
        Err(BatchError::QueueFull)
    ));
    let results = within(ms(1000), join_all(waits)).await;
    assert!(simple(&results) == vec![(31, Err("TimedOut")); 7]);
    let results = within(ms(1000), join_all(late)).await;
    assert!(simple(&results) == vec![(46, Err("TimedOut")); 3]);
    assert_eq!(simple(&[slow.await.unwrap()]), vec![(100, ok(SLOW))]);
    // Nothing but the slow request reached the handler.
    assert_eq!(log.timeline(), vec![(0, vec![SLOW])]);
    let stats = batcher.stats();
    assert_eq!((stats.cancelled, stats.timed_out, stats.served), (3, 10, 1));
    assert_eq!(stats.queue_depth, 0);
    // And the batcher still serves.
    assert_eq!(batcher.call(7).await.unwrap(), response(7));
}

/// Sets its flag when dropped: tells when the batcher let go of its handler.
struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_times_out_queued_requests_at_their_deadlines() {
    let service = timer();
    let log = Log::new();
    let batcher = batcher_with_default_deadline(&service, &log);
    let start = log.start();
    let mut calls = vec![call_at(&batcher, start, ms(0), SLOW, deadline(ms(1000)))];
    calls.extend((1..=3).map(|i| spawn_call(&batcher, start, ms(u64::from(i)), i)));
    tokio::time::sleep_until(start + ms(10)).await;
    within(ms(1000), batcher.shutdown()).await;
    assert_eq!(log.now(), ms(100));
    // Everything was answered before `shutdown` returned.
    assert!(calls.iter().all(tokio::task::JoinHandle::is_finished));
    let results = join_all(calls).await;
    assert_eq!(
        simple(&results),
        vec![
            (100, ok(SLOW)),
            (31, Err("TimedOut")),
            (32, Err("TimedOut")),
            (33, Err("TimedOut")),
        ]
    );
    assert!(matches!(batcher.call(9).await, Err(BatchError::Shutdown)));
    assert_eq!(batcher.stats().timed_out, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_for_far_default_deadlines_and_lets_go() {
    let service = timer();
    let log = Log::new();
    let released = Arc::new(AtomicBool::new(false));
    let guard = OnDrop(Arc::clone(&released));
    let inner = handler(&log, ms(10));
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .default_deadline(Some(Duration::from_secs(3600)))
        .build(move |items| {
            let _keep = &guard;
            inner(items)
        })
        .unwrap();
    let start = log.start();
    let calls = vec![
        spawn_call(&batcher, start, ms(0), SLOW),
        spawn_call(&batcher, start, ms(1), 1),
        spawn_call(&batcher, start, ms(2), 2),
    ];
    tokio::time::sleep_until(start + ms(10)).await;
    within(ms(1000), batcher.shutdown()).await;
    // The queued requests ran after the slow batch; the hour-long deadlines were not waited.
    assert_eq!(log.now(), ms(110));
    let results = join_all(calls).await;
    assert_eq!(
        simple(&results),
        vec![(100, ok(SLOW)), (110, ok(1)), (110, ok(2))]
    );
    drop(batcher);
    tokio::time::sleep(ms(1)).await;
    assert!(
        released.load(Ordering::SeqCst),
        "the dispatcher and the deadline task let go of the batcher"
    );
    assert_eq!(service.handle().stats().total_timers, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_batcher_with_a_default_deadline_stops_when_dropped() {
    let service = timer();
    let released = Arc::new(AtomicBool::new(false));
    let guard = OnDrop(Arc::clone(&released));
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .default_deadline(Some(ms(30)))
        .build(move |items: Vec<u32>| {
            let _keep = &guard;
            std::future::ready(Ok(items))
        })
        .unwrap();
    assert_eq!(batcher.call(5).await.unwrap(), 5);
    drop(batcher);
    tokio::time::sleep(ms(1)).await;
    assert!(released.load(Ordering::SeqCst));
}

/// What the FIFO buys: requests served before their deadline never touch the timer service
/// with the default deadline, where each per-call deadline arms (and cancels) a sleep.
#[tokio::test(start_paused = true)]
async fn served_requests_arm_no_timer_each_with_the_default_deadline() {
    async fn armed(per_call: bool) -> u64 {
        let service = timer();
        let log = Log::new();
        let batcher: TestBatcher = Batcher::builder()
            .timer(service.handle())
            .max_batch_size(8)
            .default_deadline((!per_call).then_some(ms(1000)))
            .build(handler(&log, ms(1)))
            .unwrap();
        let start = log.start();
        let options = CallOptions {
            deadline: per_call.then_some(ms(1000)),
            ..CallOptions::default()
        };
        let calls: Vec<_> = (0..64u32)
            .map(|i| call_at(&batcher, start, ms(u64::from(i % 8)), i, options))
            .collect();
        let results = within(ms(1000), join_all(calls)).await;
        assert!(results.iter().all(|(_, result)| result.is_ok()));
        let armed = service.handle().stats().armed;
        batcher.shutdown().await;
        armed
    }
    let fifo = armed(false).await;
    let per_call = armed(true).await;
    assert!(fifo <= 2, "{fifo} timers armed for 64 default deadlines");
    assert!(
        per_call >= 64,
        "{per_call} timers armed for 64 per-call deadlines"
    );
}
