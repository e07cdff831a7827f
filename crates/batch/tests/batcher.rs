//! Behaviour of `Batcher` on virtual time (a paused tokio clock, with a ticktock timer service
//! on it): dispatch as soon as a slot is free, batches growing from the backlog, `max_wait`
//! counted from arrival, hard item and weight limits, `TooHeavy` at admission, the concurrency
//! limit, the queue bound (`try_call` vs `call`), per-request deadlines, cancel safety,
//! handler errors / panics / wrong response counts staying local to their batch, priority
//! lanes, graceful shutdown (explicit and by dropping the last clone), the `stats()` counters
//! and histograms, and the builder's checks.
//!
//! Every test records what the handler saw and when (virtual time), so the timings below are
//! exact. Fixed defects have their regression tests in `tests/regressions.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ticktock_batch::{BatchError, Batcher, BuildError, CallOptions, Priority};
use tokio::time::Instant;

fn high() -> CallOptions {
    CallOptions {
        priority: Priority::High,
        ..CallOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch: a lone request costs the handler's time; batches grow from the backlog.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn lone_request_costs_only_the_handler_time() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(batcher.call(7).await.unwrap(), response(7));
    assert_eq!(
        start.elapsed(),
        ms(10),
        "a lone call costs the handler's 10 ms, nothing more"
    );
    // After an idle spell, again no extra delay.
    tokio::time::sleep(ms(123)).await;
    let again = Instant::now();
    assert_eq!(batcher.call(8).await.unwrap(), response(8));
    assert_eq!(again.elapsed(), ms(10));
    assert_eq!(log.timeline(), vec![(0, vec![7]), (133, vec![8])]);
}

#[tokio::test(start_paused = true)]
async fn backlog_built_while_the_slot_is_busy_becomes_full_batches() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(16)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    // One caller first, then 99 more while its batch runs.
    let mut calls = vec![spawn_call(&batcher, start, ms(0), 0)];
    calls.extend((1..100).map(|i| spawn_call(&batcher, start, ms(1), i)));
    let results = within(ms(1000), join_all(calls)).await;
    for (i, (_, result)) in results.iter().enumerate() {
        assert_eq!(*result.as_ref().unwrap(), response(i as u32));
    }
    // The lone first request went alone; the backlog then fills batches to the limit.
    assert_eq!(log.sizes(), vec![1, 16, 16, 16, 16, 16, 16, 3]);
    let starts: Vec<u64> = log.timeline().iter().map(|(at, _)| *at).collect();
    assert_eq!(starts, vec![0, 10, 20, 30, 40, 50, 60, 70]);
    assert_eq!(results[0].0, ms(10));
    assert_eq!(results.iter().map(|(at, _)| *at).max(), Some(ms(80)));
}

#[tokio::test(start_paused = true)]
async fn simultaneous_callers_are_batched_up_to_the_limit() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(16)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = (0..100)
        .map(|i| spawn_call(&batcher, start, ms(0), i))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert!(results.iter().all(|(_, result)| result.is_ok()));
    let sizes = log.sizes();
    assert!(
        sizes.iter().all(|&size| (1..=16).contains(&size)),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<usize>(), 100);
    // At most one partial batch at the start and one at the end.
    assert!(sizes.len() <= 8, "{sizes:?}");
    let mut items = log.items();
    items.sort_unstable();
    assert_eq!(items, (0..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn requests_arriving_while_the_slot_is_busy_join_the_next_batch_up_to_the_limit() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(3)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (2, 2), (5, 3), (7, 4), (8, 5)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        log.timeline(),
        vec![(0, vec![1]), (10, vec![2, 3, 4]), (20, vec![5])]
    );
    assert_eq!(
        simple(&results),
        vec![
            (10, ok(1)),
            (20, ok(2)),
            (20, ok(3)),
            (20, ok(4)),
            (30, ok(5))
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// max_wait
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn max_wait_delays_a_lone_request_by_exactly_max_wait() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_wait(Some(ms(5)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(batcher.call(1).await.unwrap(), response(1));
    assert_eq!(start.elapsed(), ms(15));
    assert_eq!(log.timeline(), vec![(5, vec![1])]);
}

#[tokio::test(start_paused = true)]
async fn max_wait_batch_starts_at_once_when_it_fills_by_items() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(4)
        .max_wait(Some(ms(50)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (0, 2), (0, 3), (7, 4)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    let mut timeline = log.timeline();
    timeline[0].1.sort_unstable();
    assert_eq!(timeline, vec![(7, vec![1, 2, 3, 4])]);
    assert!(results.iter().all(|(at, r)| *at == ms(17) && r.is_ok()));
}

#[tokio::test(start_paused = true)]
async fn max_wait_batch_starts_at_once_when_it_fills_by_weight() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(100)
        .max_batch_weight(10, |request: &u32| u64::from(*request))
        .max_wait(Some(ms(50)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 3), (1, 3), (6, 4)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(log.timeline(), vec![(6, vec![3, 3, 4])]);
    assert!(results.iter().all(|(at, r)| *at == ms(16) && r.is_ok()));
}

#[tokio::test(start_paused = true)]
async fn max_wait_is_counted_from_arrival_not_from_when_the_slot_frees() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_wait(Some(ms(5)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    // 1 waits 5 ms and runs 5..15; 2 arrives at 6, its max_wait is over (11) when the slot
    // frees at 15, so it starts right then.
    let calls = vec![
        spawn_call(&batcher, start, ms(0), 1),
        spawn_call(&batcher, start, ms(6), 2),
    ];
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(log.timeline(), vec![(5, vec![1]), (15, vec![2])]);
    assert_eq!(simple(&results), vec![(15, ok(1)), (25, ok(2))]);
}

#[tokio::test(start_paused = true)]
async fn a_forming_batch_keeps_taking_requests_up_to_the_limit() {
    let service = timer();
    // No limit reached: everything that arrives within max_wait of the oldest joins.
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_wait(Some(ms(5)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (2, 2), (4, 3)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    within(ms(1000), join_all(calls)).await;
    assert_eq!(log.timeline(), vec![(5, vec![1, 2, 3])]);

    // The limit reached: the batch starts when it fills, the next request waits its turn.
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .max_wait(Some(ms(5)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (2, 2), (3, 3)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(log.timeline(), vec![(2, vec![1, 2]), (12, vec![3])]);
    assert_eq!(
        simple(&results),
        vec![(12, ok(1)), (12, ok(2)), (22, ok(3))]
    );
}

// ---------------------------------------------------------------------------------------------
// Hard limits: items, weight, TooHeavy, concurrency.
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn weight_limit_is_hard_and_batches_stay_fifo() {
    let service = timer();
    let log = Log::new();
    let weight = |request: &u32| u64::from(request % 100);
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(3)
        .max_batch_weight(10, weight)
        .build(handler(&log, ms(50)))
        .unwrap();
    let start = log.start();
    let ids = [103, 104, 105, 102, 106, 101, 109, 110, 201, 202, 203, 204];
    let mut calls = vec![spawn_call(&batcher, start, ms(0), 1)];
    calls.extend(
        ids.iter()
            .enumerate()
            .map(|(i, &id)| spawn_call(&batcher, start, ms(1 + i as u64), id)),
    );
    let results = within(ms(10_000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        log.timeline(),
        vec![
            (0, vec![1]),
            (50, vec![103, 104]),
            (100, vec![105, 102]),
            (150, vec![106, 101]),
            (200, vec![109]),
            (250, vec![110]),
            (300, vec![201, 202, 203]),
            (350, vec![204]),
        ]
    );
    for seen in log.batches() {
        assert!(seen.items.len() <= 3);
        assert!(seen.items.iter().map(weight).sum::<u64>() <= 10);
    }
}

#[tokio::test(start_paused = true)]
async fn too_heavy_request_is_rejected_at_admission() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_weight(10, |request: &u32| u64::from(request % 100))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = Instant::now();
    match batcher.call(111).await {
        Err(BatchError::TooHeavy { weight, limit }) => assert_eq!((weight, limit), (11, 10)),
        other => panic!("expected TooHeavy, got {other:?}"),
    }
    match batcher.try_call(115).await {
        Err(BatchError::TooHeavy { weight, limit }) => assert_eq!((weight, limit), (15, 10)),
        other => panic!("expected TooHeavy, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "refused at once");
    // Exactly at the limit is fine.
    assert_eq!(batcher.call(110).await.unwrap(), response(110));
    assert_eq!(log.items(), vec![110]);
    let stats = batcher.stats();
    assert_eq!(stats.rejected_too_heavy, 2);
    assert_eq!(stats.admitted, 1);
    assert_eq!(stats.served, 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_batches_never_exceed_the_limit() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .max_concurrent_batches(3)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = (0..40)
        .map(|i| spawn_call(&batcher, start, ms(0), i))
        .collect();
    let probe = {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(5)).await;
            batcher.stats().running_batches
        })
    };
    let results = within(ms(1000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        log.max_running(),
        3,
        "the limit is reached but never exceeded"
    );
    assert_eq!(probe.await.unwrap(), 3);
    assert!(log.sizes().iter().all(|&size| size <= 2));
    let last = results.iter().map(|(at, _)| *at).max().unwrap();
    assert!(
        last <= ms(80),
        "3 slots serve 20 batches of 10 ms in about 70 ms: {last:?}"
    );
    assert_eq!(batcher.stats().running_batches, 0);
}

// ---------------------------------------------------------------------------------------------
// Queue bound
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn try_call_fails_at_once_when_full_and_call_waits_for_space() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(1)
        .queue_capacity(2)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let mut calls = vec![
        spawn_call(&batcher, start, ms(0), 1), // runs 0..10
        spawn_call(&batcher, start, ms(1), 2), // waits
        spawn_call(&batcher, start, ms(2), 3), // waits: the queue is full
    ];
    tokio::time::sleep_until(start + ms(3)).await;
    assert_eq!(batcher.stats().queue_depth, 2);
    match batcher.try_call(4).await {
        Err(BatchError::QueueFull) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert_eq!(start.elapsed(), ms(3), "try_call fails at once");
    // `call` waits for space instead: admitted at 10 when 2 leaves the queue.
    calls.push(spawn_call(&batcher, start, ms(3), 5));
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![(10, ok(1)), (20, ok(2)), (30, ok(3)), (40, ok(5))]
    );
    assert_eq!(
        log.timeline(),
        vec![(0, vec![1]), (10, vec![2]), (20, vec![3]), (30, vec![5])]
    );
    // With room again, try_call is admitted.
    assert_eq!(batcher.try_call(6).await.unwrap(), response(6));
    let stats = batcher.stats();
    assert_eq!(stats.rejected_queue_full, 1);
    assert_eq!(stats.queue_capacity, 2);
    assert_eq!(stats.queue_depth_max, 2);
    assert_eq!(stats.admitted, 5);
    assert_eq!(stats.served, 5);
}

#[tokio::test(start_paused = true)]
async fn no_rejections_with_call_at_500_concurrent_callers_and_the_default_queue() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(1)))
        .unwrap();
    let start = log.start();
    let calls = (0..500)
        .map(|i| spawn_call(&batcher, start, ms(0), i))
        .collect();
    let results = within(ms(10_000), join_all(calls)).await;
    for (i, (_, result)) in results.iter().enumerate() {
        assert_eq!(*result.as_ref().unwrap(), response(i as u32));
    }
    let stats = batcher.stats();
    assert_eq!(stats.rejected_queue_full, 0);
    assert_eq!(stats.rejected_shutdown, 0);
    assert_eq!(stats.rejected_too_heavy, 0);
    assert_eq!((stats.admitted, stats.served), (500, 500));
    assert!(log.sizes().iter().all(|&size| size <= 32), "default limit");
    assert!(stats.batch_size.max <= 32.0);
}

#[tokio::test(start_paused = true)]
async fn call_waits_for_space_in_a_small_queue_and_never_fails() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(4)
        .queue_capacity(4)
        .build(handler(&log, ms(5)))
        .unwrap();
    let start = log.start();
    let calls = (0..100)
        .map(|i| spawn_call(&batcher, start, ms(0), i))
        .collect();
    let results = within(ms(10_000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    let stats = batcher.stats();
    assert_eq!(stats.rejected_queue_full, 0);
    assert!(stats.queue_depth_max <= 4, "{}", stats.queue_depth_max);
    assert_eq!(stats.served, 100);
}

// ---------------------------------------------------------------------------------------------
// Deadlines
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn default_deadline_fires_at_arrival_plus_deadline_while_the_slot_is_busy() {
    let service = timer();
    let log = Log::new();
    let batcher = batcher_with_default_deadline(&service, &log);
    let start = log.start();
    let calls = vec![
        // Busies the slot 0..100 (its own deadline is long).
        call_at(&batcher, start, ms(0), SLOW, deadline(ms(1000))),
        // Default deadline: 5 + 30.
        spawn_call(&batcher, start, ms(5), 2),
        // A long deadline of its own: served after the slow batch.
        call_at(&batcher, start, ms(7), 3, deadline(ms(200))),
        // Deadline exactly when the slot frees (8 + 92 = 100): expired, not served.
        call_at(&batcher, start, ms(8), 4, deadline(ms(92))),
    ];
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![
            (100, ok(SLOW)),
            (35, Err("TimedOut")),
            (110, ok(3)),
            (100, Err("TimedOut")),
        ]
    );
    // Nothing expired reached the handler.
    assert_eq!(log.timeline(), vec![(0, vec![SLOW]), (100, vec![3])]);
    let stats = batcher.stats();
    assert_eq!((stats.timed_out, stats.served, stats.admitted), (2, 2, 4));
}

#[tokio::test(start_paused = true)]
async fn call_options_deadline_works_without_a_default() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = vec![
        spawn_call(&batcher, start, ms(0), SLOW),
        call_at(&batcher, start, ms(3), 2, deadline(ms(20))),
        // No deadline at all: waits as long as it takes.
        spawn_call(&batcher, start, ms(4), 3),
        call_at(&batcher, start, ms(5), 4, deadline(ms(1))),
    ];
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![
            (100, ok(SLOW)),
            (23, Err("TimedOut")),
            (110, ok(3)),
            (6, Err("TimedOut")),
        ]
    );
    assert_eq!(log.timeline(), vec![(0, vec![SLOW]), (100, vec![3])]);
}

// ---------------------------------------------------------------------------------------------
// Cancel safety
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn caller_dropped_by_a_timeout_leaves_no_trace() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let slow = spawn_call(&batcher, start, ms(0), SLOW);
    let gives_up = {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + ms(1)).await;
            let outcome = tokio::time::timeout(ms(10), batcher.call(2)).await;
            (start.elapsed(), outcome.is_err())
        })
    };
    let waits = spawn_call(&batcher, start, ms(2), 3);
    assert_eq!(gives_up.await.unwrap(), (ms(11), true));
    let results = within(ms(1000), join_all(vec![slow, waits])).await;
    assert_eq!(simple(&results), vec![(100, ok(SLOW)), (110, ok(3))]);
    // 2 never reached a later batch.
    assert_eq!(log.timeline(), vec![(0, vec![SLOW]), (100, vec![3])]);
    let stats = batcher.stats();
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.served, 2);
    assert_eq!(stats.admitted, 3);
    assert_eq!(stats.timed_out, 0);
}

#[tokio::test(start_paused = true)]
async fn aborted_caller_task_leaves_no_trace() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(8)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let slow = spawn_call(&batcher, start, ms(0), SLOW);
    let aborted = spawn_call(&batcher, start, ms(1), 2);
    let waits = spawn_call(&batcher, start, ms(2), 3);
    tokio::time::sleep_until(start + ms(20)).await;
    aborted.abort();
    assert!(aborted.await.unwrap_err().is_cancelled());
    let results = within(ms(1000), join_all(vec![slow, waits])).await;
    assert_eq!(simple(&results), vec![(100, ok(SLOW)), (110, ok(3))]);
    assert_eq!(log.timeline(), vec![(0, vec![SLOW]), (100, vec![3])]);
    let stats = batcher.stats();
    assert_eq!((stats.cancelled, stats.served, stats.admitted), (1, 2, 3));
}

#[tokio::test(start_paused = true)]
async fn caller_dropped_while_its_batch_runs_does_not_disturb_the_batch() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(8)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let first = spawn_call(&batcher, start, ms(0), 1);
    let stays = spawn_call(&batcher, start, ms(1), SLOW); // batch [SLOW, 2] runs 10..110
    let leaves = spawn_call(&batcher, start, ms(2), 2);
    tokio::time::sleep_until(start + ms(50)).await;
    leaves.abort();
    assert!(leaves.await.unwrap_err().is_cancelled());
    let results = within(ms(1000), join_all(vec![first, stays])).await;
    assert_eq!(simple(&results), vec![(10, ok(1)), (110, ok(SLOW))]);
    assert_eq!(log.timeline(), vec![(0, vec![1]), (10, vec![SLOW, 2])]);
    let stats = batcher.stats();
    assert_eq!((stats.cancelled, stats.served, stats.admitted), (1, 2, 3));
    // The next batch is unaffected.
    assert_eq!(batcher.call(3).await.unwrap(), response(3));
}

// ---------------------------------------------------------------------------------------------
// Failures stay local to their batch
// ---------------------------------------------------------------------------------------------

/// Batch [1] at 0, batch [poison, 2] at 10 (taking `poisoned` ms), batch [3] when it is done
/// (3 arrives at 11); then one more call.
async fn isolate(
    poison: u32,
    poisoned: u64,
) -> (Vec<Timed>, Log<u32>, TestBatcher, ticktock::TimerService) {
    quiet_injected_panics();
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(4)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (1, poison), (2, 2), (11, 3)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    let done = 10 + poisoned;
    let third = done.max(11);
    assert_eq!(
        log.timeline(),
        vec![(0, vec![1]), (10, vec![poison, 2]), (third, vec![3])]
    );
    assert_eq!(results[0].1.as_ref().unwrap(), &response(1));
    assert_eq!(results[3].1.as_ref().unwrap(), &response(3));
    assert_eq!((results[1].0, results[2].0), (ms(done), ms(done)));
    assert_eq!(results[3].0, ms(third + 10));
    // It keeps serving.
    assert_eq!(batcher.call(4).await.unwrap(), response(4));
    (results, log, batcher, service)
}

#[tokio::test(start_paused = true)]
async fn handler_error_fails_only_its_batch() {
    let (results, _log, batcher, _service) = isolate(FAIL, 10).await;
    for (_, result) in &results[1..3] {
        match result {
            Err(BatchError::Handler(error)) => {
                assert_eq!(error.as_str(), "injected failure of 2 requests");
            }
            other => panic!("expected Handler, got {other:?}"),
        }
    }
    let stats = batcher.stats();
    assert_eq!((stats.handler_errors, stats.served), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn handler_panic_while_creating_the_future_fails_only_its_batch() {
    let (results, _log, batcher, _service) = isolate(PANIC_SYNC, 0).await;
    for (_, result) in &results[1..3] {
        match result {
            Err(BatchError::HandlerPanicked(message)) => {
                assert_eq!(&**message, "injected sync panic 10066");
            }
            other => panic!("expected HandlerPanicked, got {other:?}"),
        }
    }
    let stats = batcher.stats();
    assert_eq!((stats.handler_panics, stats.served), (2, 3));
}

#[tokio::test(start_paused = true)]
async fn handler_panic_inside_the_future_fails_only_its_batch() {
    let (results, _log, batcher, _service) = isolate(PANIC_ASYNC, 10).await;
    for (_, result) in &results[1..3] {
        match result {
            Err(BatchError::HandlerPanicked(message)) => {
                assert_eq!(&**message, "injected async panic");
            }
            other => panic!("expected HandlerPanicked, got {other:?}"),
        }
    }
    let stats = batcher.stats();
    assert_eq!((stats.handler_panics, stats.served), (2, 3));
    assert_eq!(
        stats.running_batches, 0,
        "the panicked batch freed its slot"
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_response_count_fails_only_its_batch() {
    for (poison, got) in [(FEWER, 1), (MORE, 3)] {
        let (results, _log, batcher, _service) = isolate(poison, 10).await;
        for (_, result) in &results[1..3] {
            match result {
                Err(BatchError::WrongResponseCount { expected, got: g }) => {
                    assert_eq!((*expected, *g), (2, got));
                }
                other => panic!("expected WrongResponseCount, got {other:?}"),
            }
        }
        let stats = batcher.stats();
        assert_eq!((stats.wrong_response_counts, stats.served), (2, 3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_under_concurrency_frees_its_slot() {
    quiet_injected_panics();
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(1)
        .max_concurrent_batches(2)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let ids = [PANIC_ASYNC, PANIC_SYNC, 1, 2, PANIC_ASYNC, 3, 4, 5];
    let calls = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| spawn_call(&batcher, start, ms(i as u64), id))
        .collect();
    let results = within(ms(1000), join_all(calls)).await;
    for (&id, (_, result)) in ids.iter().zip(&results) {
        if id == PANIC_ASYNC || id == PANIC_SYNC {
            assert_eq!(result.as_ref().map_err(kind), Err("HandlerPanicked"));
        } else {
            assert_eq!(result.as_ref().unwrap(), &response(id));
        }
    }
    assert!(log.max_running() <= 2);
    assert_eq!(batcher.stats().running_batches, 0);
}

// ---------------------------------------------------------------------------------------------
// Priority lanes
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn high_priority_is_served_first_and_each_lane_is_fifo() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let normal = CallOptions::default();
    let calls = [
        (0, 1, normal),
        (1, 101, normal),
        (2, 102, normal),
        (3, 103, normal),
        (4, 201, high()),
        (5, 202, high()),
        (6, 104, normal),
        (7, 203, high()),
    ]
    .into_iter()
    .map(|(at, id, options)| call_at(&batcher, start, ms(at), id, options))
    .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(
        log.timeline(),
        vec![
            (0, vec![1]),
            (10, vec![201, 202]),
            (20, vec![203, 101]),
            (30, vec![102, 103]),
            (40, vec![104]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_high_request_that_does_not_fit_is_not_overtaken_by_a_normal_one() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_weight(10, |request: &u32| u64::from(request % 100))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let normal = CallOptions::default();
    let calls = [
        (0, 1, normal),
        (1, 108, high()),
        (2, 205, high()),
        (3, 301, normal),
    ]
    .into_iter()
    .map(|(at, id, options)| call_at(&batcher, start, ms(at), id, options))
    .collect();
    let results = within(ms(1000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    // 108 + 205 would weigh 13 > 10: 108 goes alone, and 301 (weight 1, it would fit) does not
    // jump the high lane.
    assert_eq!(
        log.timeline(),
        vec![(0, vec![1]), (10, vec![108]), (20, vec![205, 301])]
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_runs_everything_queued_then_refuses_new_calls() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let mut calls: Vec<_> = [(0, 1), (1, 2), (1, 3), (1, 4), (1, 5)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    // Arrives while shutting down.
    calls.push(spawn_call(&batcher, start, ms(15), 9));
    tokio::time::sleep_until(start + ms(2)).await;
    within(ms(1000), batcher.shutdown()).await;
    assert_eq!(
        start.elapsed(),
        ms(30),
        "returns once everything queued ran"
    );
    let results = join_all(calls).await;
    let results = simple(&results);
    assert_eq!(
        &results[..5],
        &[
            (10, ok(1)),
            (20, ok(2)),
            (20, ok(3)),
            (30, ok(4)),
            (30, ok(5))
        ]
    );
    assert_eq!(results[5], (15, Err("Shutdown")));
    assert_eq!(batcher.call(6).await.map_err(|e| kind(&e)), Err("Shutdown"));
    assert_eq!(
        batcher.try_call(7).await.map_err(|e| kind(&e)),
        Err("Shutdown")
    );
    assert_eq!(
        batcher.call_with(8, high()).await.map_err(|e| kind(&e)),
        Err("Shutdown")
    );
    // Shutting down again returns at once.
    batcher.shutdown().await;
    let stats = batcher.stats();
    assert_eq!(stats.served, 5);
    assert_eq!(stats.rejected_shutdown, 4);
    assert_eq!((stats.queue_depth, stats.running_batches), (0, 0));
    assert_eq!(log.sizes(), vec![1, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_does_not_wait_out_max_wait() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_wait(Some(ms(1000)))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let call = spawn_call(&batcher, start, ms(0), 1);
    tokio::time::sleep_until(start + ms(2)).await;
    within(ms(100), batcher.shutdown()).await;
    assert_eq!(start.elapsed(), ms(12));
    assert_eq!(simple(&[call.await.unwrap()]), vec![(12, ok(1))]);
    assert_eq!(log.timeline(), vec![(2, vec![1])]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_callers_waiting_for_queue_space() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(1)
        .queue_capacity(1)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let calls = [(0, 1), (1, 2), (2, 3)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    tokio::time::sleep_until(start + ms(3)).await;
    within(ms(1000), batcher.shutdown()).await;
    assert_eq!(start.elapsed(), ms(20));
    let results = join_all(calls).await;
    assert_eq!(
        simple(&results),
        vec![(10, ok(1)), (20, ok(2)), (3, Err("Shutdown"))]
    );
    let stats = batcher.stats();
    assert_eq!(
        (stats.served, stats.rejected_shutdown, stats.admitted),
        (2, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_from_several_clones_returns_for_each() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let call = spawn_call(&batcher, start, ms(0), 1);
    tokio::time::sleep_until(start + ms(1)).await;
    let other = batcher.clone();
    let other = tokio::spawn(async move { other.shutdown().await });
    within(ms(100), batcher.shutdown()).await;
    within(ms(100), other).await.unwrap();
    assert_eq!(start.elapsed(), ms(10));
    assert!(call.await.unwrap().1.is_ok());
}

/// Sets its flag when dropped: tells when the batcher let go of its handler.
struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_drains_and_stops_the_batcher() {
    let service = timer();
    let log = Log::new();
    let released = Arc::new(AtomicBool::new(false));
    let guard = OnDrop(Arc::clone(&released));
    let inner = handler(&log, ms(10));
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .build(move |items| {
            let _keep = &guard;
            inner(items)
        })
        .unwrap();
    let start = log.start();
    // Every task owns a clone; the original goes away at once.
    let calls: Vec<_> = [(0, 1), (1, 2), (1, 3), (1, 4), (1, 5)]
        .into_iter()
        .map(|(at, id)| spawn_call(&batcher, start, ms(at), id))
        .collect();
    drop(batcher);
    tokio::time::sleep_until(start + ms(25)).await;
    assert!(!released.load(Ordering::SeqCst), "clones still live");
    let results = within(ms(1000), join_all(calls)).await;
    assert_eq!(
        simple(&results),
        vec![
            (10, ok(1)),
            (20, ok(2)),
            (20, ok(3)),
            (30, ok(4)),
            (30, ok(5))
        ]
    );
    // The last clone went with the last caller: the dispatcher drains, stops and lets go.
    tokio::time::sleep(ms(1)).await;
    assert!(
        released.load(Ordering::SeqCst),
        "the batcher stopped after its last clone"
    );
    assert_eq!(log.sizes(), vec![1, 2, 2]);
}

#[tokio::test(start_paused = true)]
async fn an_unused_batcher_stops_when_dropped() {
    let service = timer();
    let released = Arc::new(AtomicBool::new(false));
    let guard = OnDrop(Arc::clone(&released));
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(move |items: Vec<u32>| {
            let _keep = &guard;
            async move { Ok::<_, String>(items) }
        })
        .unwrap();
    drop(batcher);
    tokio::time::sleep(ms(1)).await;
    assert!(released.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_batcher_keeps_serving_if_its_timer_service_stops() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_wait(Some(ms(5)))
        .default_deadline(Some(ms(50)))
        .build(handler(&log, ms(10)))
        .unwrap();
    assert_eq!(batcher.call(1).await.unwrap(), response(1));
    within(ms(100), service.shutdown()).await;
    // No timer: neither max_wait nor the deadline can be waited for, but calls still work.
    let start = Instant::now();
    assert_eq!(within(ms(100), batcher.call(2)).await.unwrap(), response(2));
    assert_eq!(start.elapsed(), ms(10));
    within(ms(100), batcher.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// stats()
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stats_add_up_after_every_kind_of_outcome() {
    quiet_injected_panics();
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .name("stats-test")
        .max_batch_size(8)
        .queue_capacity(4)
        .max_batch_weight(100, |request: &u32| if *request == 999 { 1000 } else { 1 })
        .build(handler(&log, ms(10)))
        .unwrap();

    // Phase A: a slow batch, a full queue, one try_call refused.
    let start = Instant::now();
    let mut calls = vec![spawn_call(&batcher, start, ms(0), SLOW)];
    calls.extend((20..24).map(|id| spawn_call(&batcher, start, ms(1), id)));
    tokio::time::sleep_until(start + ms(2)).await;
    assert_eq!(batcher.stats().queue_depth, 4);
    assert_eq!(
        batcher.try_call(24).await.map_err(|e| kind(&e)),
        Err("QueueFull")
    );
    let results = within(ms(1000), join_all(calls)).await;
    assert!(results.iter().all(|(_, r)| r.is_ok()));

    // Phase B: one batch each: served, error, two panics, wrong count; one too heavy.
    assert!(batcher.call(1).await.is_ok());
    for (id, expected) in [
        (FAIL, "Handler"),
        (PANIC_SYNC, "HandlerPanicked"),
        (PANIC_ASYNC, "HandlerPanicked"),
        (FEWER, "WrongResponseCount"),
        (999, "TooHeavy"),
    ] {
        assert_eq!(batcher.call(id).await.map_err(|e| kind(&e)), Err(expected));
    }

    // Phase C: behind a slow batch, one request times out and one caller gives up.
    let start = Instant::now();
    let slow = spawn_call(&batcher, start, ms(0), SLOW + 1);
    let expires = call_at(&batcher, start, ms(1), 2, deadline(ms(10)));
    let gives_up = {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + ms(1)).await;
            tokio::time::timeout(ms(5), batcher.call(3)).await.is_err()
        })
    };
    let served = spawn_call(&batcher, start, ms(2), 4);
    let results = within(ms(1000), join_all(vec![slow, expires, served])).await;
    assert_eq!(
        simple(&results),
        vec![(100, ok(SLOW + 1)), (11, Err("TimedOut")), (110, ok(4))]
    );
    assert!(gives_up.await.unwrap());

    // Phase D: shut down, then one refused call.
    batcher.shutdown().await;
    assert_eq!(batcher.call(5).await.map_err(|e| kind(&e)), Err("Shutdown"));

    let stats = batcher.stats();
    assert_eq!(stats.admitted, 14);
    assert_eq!(stats.served, 8);
    assert_eq!(stats.timed_out, 1);
    assert_eq!(stats.cancelled, 1);
    assert_eq!(stats.handler_errors, 1);
    assert_eq!(stats.handler_panics, 2);
    assert_eq!(stats.wrong_response_counts, 1);
    assert_eq!(
        stats.admitted,
        stats.served
            + stats.timed_out
            + stats.cancelled
            + stats.handler_errors
            + stats.handler_panics
            + stats.wrong_response_counts,
        "every admitted request has exactly one outcome: {stats:#?}"
    );
    // Rejections are counted apart from admissions.
    assert_eq!(stats.rejected_queue_full, 1);
    assert_eq!(stats.rejected_too_heavy, 1);
    assert_eq!(stats.rejected_shutdown, 1);
    assert!((stats.rejection_rate() - 3.0 / 17.0).abs() < 1e-9);
    // Batches: what the handler saw.
    assert_eq!(stats.batches, 9);
    assert_eq!(stats.batches as usize, log.batches().len());
    assert_eq!((stats.queue_depth, stats.running_batches), (0, 0));
    assert_eq!(stats.queue_capacity, 4);
    assert_eq!(stats.queue_depth_max, 4);
    // Histograms: one batch-size / fill / handler value per batch, latency per request served.
    assert_eq!(stats.batch_size.count, 9);
    assert_eq!(stats.fill_ratio.count, 9);
    assert_eq!(stats.handler_us.count, 9);
    assert_eq!(stats.latency_us.count, 8);
    assert_eq!(stats.queue_wait_us.count, 8);
    assert!(stats.batch_size.max <= 8.0, "{:?}", stats.batch_size);
    assert_eq!(stats.batch_size.max, 4.0);
    assert!(stats.fill_ratio.max <= 1.0, "{:?}", stats.fill_ratio);
    for q in [stats.latency_us, stats.queue_wait_us, stats.handler_us] {
        assert!(q.p50 <= q.p95 && q.p95 <= q.p99 && q.p99 <= q.max, "{q:?}");
    }
    // Latencies (µs, 0.1 % precision), in ms: 100, 109 × 4 (phase A), 10 (phase B), 100, 108
    // (phase C).
    let near = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
    assert!(
        near(stats.latency_us.max, 109_000.0),
        "{:?}",
        stats.latency_us
    );
    assert!(
        near(stats.latency_us.p50, 108_000.0),
        "{:?}",
        stats.latency_us
    );
    assert!(
        near(stats.latency_us.mean, 94_250.0),
        "{:?}",
        stats.latency_us
    );
    assert!(
        near(stats.handler_us.max, 100_000.0),
        "{:?}",
        stats.handler_us
    );
    assert!(
        near(stats.queue_wait_us.max, 99_000.0),
        "{:?}",
        stats.queue_wait_us
    );
    assert!(stats.throughput().is_finite() && stats.throughput() > 0.0);
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

fn echo(items: Vec<u32>) -> std::future::Ready<Result<Vec<u32>, String>> {
    std::future::ready(Ok(items))
}

#[test]
fn zero_limits_are_refused() {
    let zero = |builder: ticktock_batch::BatcherBuilder<u32>| builder.build(echo).unwrap_err();
    assert_eq!(
        zero(Batcher::builder().max_batch_size(0)),
        BuildError::Zero("max_batch_size")
    );
    assert_eq!(
        zero(Batcher::builder().max_concurrent_batches(0)),
        BuildError::Zero("max_concurrent_batches")
    );
    assert_eq!(
        zero(Batcher::builder().queue_capacity(0)),
        BuildError::Zero("queue_capacity")
    );
    assert_eq!(
        zero(Batcher::builder().max_batch_weight(0, |_| 1)),
        BuildError::Zero("max_batch_weight")
    );
}

#[test]
fn building_outside_a_runtime_needs_an_explicit_one() {
    assert_eq!(
        Batcher::builder().build(echo).unwrap_err(),
        BuildError::NoRuntime
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let service = runtime.block_on(async { timer() });
    let batcher = Batcher::builder()
        .timer(service.handle())
        .runtime(runtime.handle().clone())
        .build(echo)
        .unwrap();
    assert!(format!("{batcher:?}").contains("Batcher"));
    assert_eq!(runtime.block_on(batcher.call(5)).unwrap(), 5);
    runtime.block_on(batcher.shutdown());
}
