//! Regression tests for five defects the first version of the batcher had, each stating the
//! documented contract it checks and reproducing the old violation on virtual time:
//! 1. a request that started within its deadline was reported `TimedOut`;
//! 2. fill ratio and batch-size quantiles could read above their limits;
//! 3. a call dropped after its reply was sent was counted twice;
//! 4. a huge deadline or `max_wait` panicked (and killed the dispatcher);
//! 5. timed-out and abandoned requests held their queue space until the next batch formed.

mod common;

use std::time::Duration;

use common::*;
use futures_util::FutureExt;
use ticktock_batch::{Batcher, CallOptions};
use tokio::time::Instant;

/// Defect 1 (src/batcher.rs, `submit`, the `tokio::select!` on `answer` vs
/// `shared.timer.sleep_until(deadline)`): the caller races the deadline against the *response*,
/// not against the start of its batch. A request whose batch started well within its deadline,
/// but whose handler runs past the deadline, gets `TimedOut` although it reached the handler,
/// which did the work; stats count it as `timed_out`, not `served`.
///
/// Contract: `BatchError::TimedOut` is "the request's deadline passed before its batch started;
/// it never reached the handler"; `default_deadline`: "every request must *start* within this
/// long of its arrival".
#[tokio::test(start_paused = true)]
async fn bug1_request_started_within_its_deadline_is_not_timed_out() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .default_deadline(Some(ms(20)))
        .build(handler(&log, ms(50)))
        .unwrap();
    let start = Instant::now();
    let result = batcher.call(1).await;
    // The handler got the request at once (t = 0 < deadline 20 ms) and answers at 50 ms.
    assert_eq!(log.timeline(), vec![(0, vec![1])]);
    assert_eq!(
        result.as_ref().map_err(kind),
        Ok(&response(1)),
        "a request that started in time got {result:?} at {:?}",
        start.elapsed()
    );
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(batcher.stats().served, 1);
}

/// Defect 2 (src/stats.rs, `Quantiles::of` with `Recorder::batch_finished`): fill ratios are
/// recorded in parts per 10,000 in an HDR histogram with 3 significant figures, and read back
/// with `value_at_quantile` / `max` / `mean`, which return the highest (or median) *equivalent*
/// value of the bucket. 10,000 (a full batch) lies in a bucket of width 8, so a full batch
/// reports a fill ratio of 1.0007 (mean 1.0004). The same happens to `batch_size` once the item
/// limit is above 2,048 (see the next test).
///
/// Contract: `BatchStats::fill_ratio`: "Batch size over the item limit, per batch (never above
/// 1)".
#[tokio::test(start_paused = true)]
async fn bug2_fill_ratio_of_full_batches_is_at_most_one() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(4)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let mut calls = vec![spawn_call(&batcher, start, ms(0), 0)];
    calls.extend((1..9).map(|id| spawn_call(&batcher, start, ms(1), id)));
    within(ms(1000), join_all(calls)).await;
    assert_eq!(log.sizes(), vec![1, 4, 4]);
    let fill = batcher.stats().fill_ratio;
    assert!(
        fill.max <= 1.0 && fill.p99 <= 1.0 && fill.mean <= 1.0,
        "fill ratio above 1: {fill:?}"
    );
}

/// Defect 2, second face: `batch_size` quantiles above the item limit for limits over 2,048.
#[tokio::test(start_paused = true)]
async fn bug2_batch_size_quantiles_never_exceed_the_item_limit() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(3000)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let mut calls = vec![spawn_call(&batcher, start, ms(0), 0)];
    calls.extend((1..3001).map(|id| spawn_call(&batcher, start, ms(1), id)));
    within(ms(1000), join_all(calls)).await;
    assert_eq!(log.sizes(), vec![1, 3000]);
    let size = batcher.stats().batch_size;
    assert!(size.max <= 3000.0, "batch size above the limit: {size:?}");
}

/// Defect 3 (src/batcher.rs, `CallGuard::drop` and `run_batch`): the batch counts a request as
/// served (or failed) as soon as `reply.send` succeeds, and the caller's guard counts it as
/// cancelled if the call future is dropped before it read that reply. A caller dropped between
/// the two (aborted task, a losing `select!` branch, a timeout on a multi-threaded runtime) is
/// counted twice, and `admitted == served + … + cancelled` no longer holds.
#[tokio::test(start_paused = true)]
async fn bug3_caller_dropped_after_its_reply_was_sent_is_counted_once() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let mut call = Box::pin(batcher.call(1));
    // Admitted (first poll), then left alone while its batch runs and answers.
    assert!((&mut call).now_or_never().is_none());
    tokio::time::sleep(ms(20)).await;
    assert_eq!(batcher.stats().served, 1, "the batch delivered the reply");
    drop(call);
    let stats = batcher.stats();
    let outcomes = stats.served
        + stats.timed_out
        + stats.cancelled
        + stats.handler_errors
        + stats.handler_panics
        + stats.wrong_response_counts;
    assert_eq!(
        stats.admitted, outcomes,
        "one request, two outcomes: served {} and cancelled {}",
        stats.served, stats.cancelled
    );
}

/// Defect 4a (src/batcher.rs, `submit`: `.map(|deadline| arrived + deadline)`): `Instant + Duration`
/// panics on overflow, so a call with a very long deadline (e.g. `Duration::MAX` for "no
/// deadline in practice") panics in the caller. ticktock itself accepts any duration
/// (`TimerHandle::sleep` saturates). The same applies to `default_deadline(Some(Duration::MAX))`.
#[tokio::test(start_paused = true)]
async fn bug4_a_huge_deadline_is_accepted() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    let call = {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            let options = CallOptions {
                deadline: Some(Duration::MAX),
                ..CallOptions::default()
            };
            batcher.call_with(1, options).await
        })
    };
    let result = within(ms(1000), call).await;
    assert!(
        matches!(result, Ok(Ok(1001))),
        "the call panicked or failed: {result:?}"
    );
}

/// Defect 4b (src/batcher.rs, `dispatch`: `oldest + max_wait` in the max_wait loop): with
/// `max_wait(Some(Duration::MAX))` ("wait for a full batch") the addition overflows and panics
/// in the dispatcher task; the batcher then never dispatches again and every caller hangs.
#[tokio::test(start_paused = true)]
async fn bug4_a_huge_max_wait_does_not_kill_the_dispatcher() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .max_batch_size(2)
        .max_wait(Some(Duration::MAX))
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    // Two requests fill a batch: it should start at once.
    let calls = vec![
        spawn_call(&batcher, start, ms(0), 1),
        spawn_call(&batcher, start, ms(1), 2),
    ];
    let results = tokio::time::timeout(ms(1000), join_all(calls)).await;
    assert!(
        results.is_ok(),
        "no batch ran in a second: the dispatcher died (batches seen: {:?})",
        log.timeline()
    );
}

/// Defect 5 (src/batcher.rs: a request's queue permit `_space` lives in `Pending`, which stays in
/// the queue until the dispatcher next takes a batch): a request whose caller timed out or gave
/// up keeps its queue slot (and counts in `queue_depth`) for as long as the execution slots stay
/// busy. Behind a long batch, a queue of abandoned requests makes `try_call` fail with
/// `QueueFull` although nobody waits, and makes `call` wait.
///
/// Contract: "`try_call` fails at once with `QueueFull` when `queue_capacity` requests *wait*";
/// "a caller that gives up leaves no trace".
#[tokio::test(start_paused = true)]
async fn bug5_timed_out_and_cancelled_requests_free_their_queue_space() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .queue_capacity(2)
        .build(handler(&log, ms(10)))
        .unwrap();
    let start = log.start();
    let slow = spawn_call(&batcher, start, ms(0), SLOW); // the slot is busy 0..100
    let expires = call_at(
        &batcher,
        start,
        ms(1),
        1,
        CallOptions {
            deadline: Some(ms(5)),
            ..CallOptions::default()
        },
    );
    let gives_up = {
        let batcher = batcher.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + ms(1)).await;
            tokio::time::timeout(ms(5), batcher.call(2)).await.is_err()
        })
    };
    assert_eq!(
        expires.await.unwrap().1.map_err(|e| kind(&e)),
        Err("TimedOut")
    );
    assert!(gives_up.await.unwrap());
    tokio::time::sleep_until(start + ms(10)).await;
    // Nobody waits any more.
    let depth = batcher.stats().queue_depth;
    let attempt = batcher.try_call(3);
    let waiter = {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.try_call(4).await })
    };
    let (attempt, waiter) = tokio::join!(attempt, waiter);
    assert!(
        attempt.is_ok() && waiter.unwrap().is_ok() && depth == 0,
        "abandoned requests still hold the queue: depth {depth}, try_call: {:?}",
        attempt.map_err(|e| kind(&e))
    );
    slow.await.unwrap().1.unwrap();
}
