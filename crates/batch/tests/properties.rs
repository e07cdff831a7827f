//! Property test of the batcher's invariants under random load, on virtual time (one paused
//! current-thread runtime per case).
//!
//! Random: the number of callers, their arrival times, weights and lanes; per-request deadlines
//! (and a default one); cancellations (the caller drops its call after some virtual time);
//! handler failures (error, panic while creating the future, panic inside it, too few or too
//! many responses), decided deterministically from the batch's contents; the limits (items,
//! weight or none, concurrency, `max_wait` or none); a shutdown part-way or none.
//!
//! Checked, for every case:
//! - no batch exceeds its item or weight limit, and no request reaches the handler twice;
//! - never more batches at once than the concurrency limit;
//! - every caller gets exactly one outcome, and the right one: a response from a batch that
//!   succeeded, the error of the batch it was in, `TooHeavy` for a request over the weight
//!   limit, `Shutdown` only for calls that arrived once shutdown had begun, `TimedOut` exactly
//!   at arrival + deadline, or its own cancellation; and every outcome arrives at the exact
//!   virtual time it should (when its batch finished, at the deadline, at once for refusals);
//! - nothing expired reaches the handler (the handler's time vs the request's deadline), and a
//!   cancelled request reaches no batch taken after it was dropped;
//! - priority and FIFO: a batch never takes a request while a live request ahead of it (an
//!   earlier one in its lane, or one waiting in the higher lane) is left behind;
//! - dispatch as soon as a slot is free: while a request waits (past its `max_wait`), every
//!   execution slot is busy;
//! - the stats add up: admitted == served + timed out + cancelled + handler failures, every
//!   count matches what the callers saw, batch sizes within the limit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Log, ms, quiet_injected_panics};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use ticktock_batch::{BatchError, BatchStats, Batcher, CallOptions, Priority};
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Caller {
    /// Arrival, ms after the start.
    at: u64,
    weight: u64,
    high: bool,
    /// This call's own deadline, ms.
    deadline: Option<u64>,
    /// The caller drops the call this many ms after arrival.
    cancel_after: Option<u64>,
}

#[derive(Debug, Clone)]
struct Case {
    max_items: usize,
    max_weight: Option<u64>,
    concurrency: usize,
    max_wait: Option<u64>,
    default_deadline: Option<u64>,
    /// Base handler time, ms.
    handler_ms: u64,
    /// Percentage of batches that fail.
    failure_pct: u64,
    seed: u64,
    shutdown_at: Option<u64>,
    callers: Vec<Caller>,
}

impl Case {
    fn deadline(&self, caller: &Caller) -> Option<u64> {
        caller.deadline.or(self.default_deadline)
    }

    fn too_heavy(&self, caller: &Caller) -> bool {
        self.max_weight.is_some_and(|limit| caller.weight > limit)
    }
}

fn caller() -> impl Strategy<Value = Caller> {
    (
        0u64..=40,
        1u64..=12,
        any::<bool>(),
        prop::option::weighted(0.4, 0u64..=40),
        prop::option::weighted(0.25, 0u64..=40),
    )
        .prop_map(|(at, weight, high, deadline, cancel_after)| Caller {
            at,
            weight,
            high,
            deadline,
            cancel_after,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=6,
        prop::option::of(6u64..=20),
        1usize..=3,
        prop::option::weighted(0.4, 0u64..=8),
        prop::option::weighted(0.3, 1u64..=50),
        1u64..=10,
        0u64..=40,
        any::<u64>(),
        prop::option::weighted(0.25, 0u64..=60),
        prop::collection::vec(caller(), 0..=40),
    )
        .prop_map(
            |(
                max_items,
                max_weight,
                concurrency,
                max_wait,
                default_deadline,
                handler_ms,
                failure_pct,
                seed,
                shutdown_at,
                callers,
            )| Case {
                max_items,
                max_weight,
                concurrency,
                max_wait,
                default_deadline,
                handler_ms,
                failure_pct,
                seed,
                shutdown_at,
                callers,
            },
        )
}

/// What the handler does with a batch, decided from its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Err,
    PanicSync,
    PanicAsync,
    Fewer,
    More,
}

fn mode(case: &Case, ids: &[usize]) -> Mode {
    let mut hash = case.seed;
    for &id in ids {
        hash = (hash ^ id as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    if hash % 100 >= case.failure_pct {
        return Mode::Ok;
    }
    match (hash / 100) % 5 {
        0 => Mode::Err,
        1 => Mode::PanicSync,
        2 => Mode::PanicAsync,
        3 => Mode::Fewer,
        _ => Mode::More,
    }
}

/// How long the handler takes for a batch, ms.
fn duration(case: &Case, ids: &[usize]) -> u64 {
    match mode(case, ids) {
        Mode::PanicSync => 0,
        _ => case.handler_ms + ids.len() as u64 % 3,
    }
}

fn answer(id: usize) -> usize {
    id * 3 + 7
}

#[derive(Debug, Clone)]
struct Request {
    id: usize,
    weight: u64,
}

type Outcome = Option<Result<usize, BatchError<String>>>;

#[derive(Debug)]
struct Record {
    arrived: Duration,
    done: Duration,
    /// `None`: the caller dropped its call.
    outcome: Outcome,
}

fn build(
    case: &Case,
    log: &Log<usize>,
    timer: ticktock::TimerHandle,
) -> Batcher<Request, usize, String> {
    let handler = {
        let log = log.clone();
        let case = Arc::new(case.clone());
        move |requests: Vec<Request>| {
            let ids: Vec<usize> = requests.iter().map(|request| request.id).collect();
            log.saw(&ids);
            let mode = mode(&case, &ids);
            if mode == Mode::PanicSync {
                panic!("injected sync panic in {ids:?}");
            }
            let took = duration(&case, &ids);
            let log = log.clone();
            async move {
                let _running = log.running();
                tokio::time::sleep(ms(took)).await;
                let mut responses: Vec<usize> = ids.iter().map(|&id| answer(id)).collect();
                match mode {
                    Mode::PanicAsync => panic!("injected async panic"),
                    Mode::Err => return Err(format!("injected failure of {ids:?}")),
                    Mode::Fewer => {
                        responses.pop();
                    }
                    Mode::More => responses.push(0),
                    Mode::Ok | Mode::PanicSync => {}
                }
                Ok(responses)
            }
        }
    };
    let mut builder = Batcher::builder()
        .timer(timer)
        .max_batch_size(case.max_items)
        .max_concurrent_batches(case.concurrency)
        .max_wait(case.max_wait.map(ms))
        .default_deadline(case.default_deadline.map(ms));
    if let Some(limit) = case.max_weight {
        builder = builder.max_batch_weight(limit, |request: &Request| request.weight);
    }
    builder.build(handler).expect("valid settings")
}

/// Runs one case on a fresh paused runtime: the callers, the shutdown, and the final stats.
fn run(case: &Case) -> (Vec<Record>, Log<usize>, BatchStats, Option<Duration>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let service = ticktock::TimerService::builder()
            .start()
            .expect("a timer service");
        let log = Log::new();
        let start: Instant = log.start();
        let batcher = build(case, &log, service.handle());
        let callers: Vec<_> = case
            .callers
            .iter()
            .enumerate()
            .map(|(id, caller)| {
                let batcher = batcher.clone();
                let caller = caller.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + ms(caller.at)).await;
                    let arrived = start.elapsed();
                    let options = CallOptions {
                        priority: if caller.high {
                            Priority::High
                        } else {
                            Priority::Normal
                        },
                        deadline: caller.deadline.map(ms),
                    };
                    let request = Request {
                        id,
                        weight: caller.weight,
                    };
                    let call = batcher.call_with(request, options);
                    let outcome = match caller.cancel_after {
                        Some(after) => tokio::time::timeout(ms(after), call).await.ok(),
                        None => Some(call.await),
                    };
                    Record {
                        arrived,
                        done: start.elapsed(),
                        outcome,
                    }
                })
            })
            .collect();
        let everything = async {
            let mut shut = None;
            if let Some(at) = case.shutdown_at {
                tokio::time::sleep_until(start + ms(at)).await;
                shut = Some(start.elapsed());
                batcher.shutdown().await;
            }
            let mut records = Vec::with_capacity(callers.len());
            for caller in callers {
                records.push(caller.await.expect("a caller task panicked"));
            }
            batcher.shutdown().await;
            (records, shut)
        };
        let (records, shut) = tokio::time::timeout(Duration::from_secs(600), everything)
            .await
            .expect("the batcher hung: not every call resolved");
        let stats = batcher.stats();
        (records, log, stats, shut)
    })
}

fn check(
    case: &Case,
    records: &[Record],
    log: &Log<usize>,
    stats: &BatchStats,
    shut: Option<Duration>,
) -> Result<(), TestCaseError> {
    let batches = log.batches();
    let weight_of = |id: usize| case.callers[id].weight;
    // Where each request went: (batch index, position in it).
    let mut placed: Vec<Option<(usize, usize)>> = vec![None; case.callers.len()];
    // When each batch ended (virtual time).
    let mut ends = Vec::with_capacity(batches.len());
    for (index, batch) in batches.iter().enumerate() {
        prop_assert!(
            !batch.items.is_empty() && batch.items.len() <= case.max_items,
            "batch {index} has {} items (limit {})",
            batch.items.len(),
            case.max_items
        );
        if let Some(limit) = case.max_weight {
            let weight: u64 = batch.items.iter().map(|&id| weight_of(id)).sum();
            prop_assert!(weight <= limit, "batch {index} weighs {weight} > {limit}");
        }
        for (position, &id) in batch.items.iter().enumerate() {
            prop_assert!(
                placed[id].is_none(),
                "request {id} reached the handler twice"
            );
            placed[id] = Some((index, position));
        }
        ends.push(batch.at + ms(duration(case, &batch.items)));
    }
    prop_assert!(
        log.max_running() <= case.concurrency,
        "{} batches at once (limit {})",
        log.max_running(),
        case.concurrency
    );
    prop_assert_eq!(log.running_now(), 0);

    // Every caller: exactly one outcome (one record each), the right one, at the right time.
    let mut counts = Counts::default();
    for (id, (caller, record)) in case.callers.iter().zip(records).enumerate() {
        let arrived = record.arrived;
        prop_assert_eq!(arrived, ms(caller.at));
        let deadline = case.deadline(caller).map(ms);
        let seen = placed[id].map(|(index, position)| (index, position, &batches[index]));
        if let Some((_, _, batch)) = seen {
            prop_assert!(batch.at >= arrived);
            if let Some(deadline) = deadline {
                prop_assert!(
                    batch.at < arrived + deadline,
                    "request {id} (arrived {arrived:?}, deadline {deadline:?}) reached the \
                     handler at {:?}",
                    batch.at
                );
            }
            if let Some(after) = caller.cancel_after {
                prop_assert!(
                    batch.at <= arrived + ms(after),
                    "request {id} was dropped at {:?} but reached a batch at {:?}",
                    arrived + ms(after),
                    batch.at
                );
            }
            if let Some(shut) = shut {
                prop_assert!(arrived <= shut, "request {id} admitted after shutdown");
            }
        }
        let batch_mode = seen.map(|(_, _, batch)| mode(case, &batch.items));
        let batch_end = seen.map(|(index, _, _)| ends[index]);
        match &record.outcome {
            None => {
                counts.cancelled += 1;
                let after = ms(caller.cancel_after.expect("only cancelling callers drop"));
                prop_assert_eq!(record.done, arrived + after);
            }
            Some(Ok(value)) => {
                counts.served += 1;
                prop_assert_eq!(*value, answer(id));
                prop_assert_eq!(batch_mode, Some(Mode::Ok), "request {} served", id);
                prop_assert_eq!(Some(record.done), batch_end);
            }
            Some(Err(error)) => match error {
                BatchError::QueueFull => {
                    prop_assert!(false, "QueueFull from `call` (request {id})");
                }
                BatchError::TooHeavy { weight, limit } => {
                    counts.too_heavy += 1;
                    prop_assert!(case.too_heavy(caller));
                    prop_assert_eq!((*weight, Some(*limit)), (caller.weight, case.max_weight));
                    prop_assert!(seen.is_none());
                    prop_assert_eq!(record.done, arrived);
                }
                BatchError::Shutdown => {
                    counts.shutdown += 1;
                    prop_assert!(
                        shut.is_some_and(|shut| arrived >= shut),
                        "request {id} (arrived {arrived:?}) refused, shutdown at {shut:?}"
                    );
                    prop_assert!(seen.is_none());
                    prop_assert_eq!(record.done, arrived);
                }
                BatchError::TimedOut => {
                    counts.timed_out += 1;
                    let deadline = deadline.expect("TimedOut without a deadline");
                    prop_assert_eq!(
                        record.done,
                        arrived + deadline,
                        "request {} timed out late or early",
                        id
                    );
                    // Timed out means never reached the handler.
                    prop_assert!(seen.is_none(), "request {} timed out after it started", id);
                }
                BatchError::Handler(message) => {
                    counts.handler_errors += 1;
                    prop_assert_eq!(batch_mode, Some(Mode::Err));
                    prop_assert!(message.starts_with("injected failure"));
                    prop_assert_eq!(Some(record.done), batch_end);
                }
                BatchError::HandlerPanicked(message) => {
                    counts.handler_panics += 1;
                    let panicked = matches!(batch_mode, Some(Mode::PanicSync | Mode::PanicAsync));
                    prop_assert!(panicked, "HandlerPanicked from a {:?} batch", batch_mode);
                    prop_assert!(message.starts_with("injected"), "{}", message);
                    prop_assert_eq!(Some(record.done), batch_end);
                }
                BatchError::WrongResponseCount { expected, got } => {
                    counts.wrong += 1;
                    let (_, _, batch) = seen.expect("a wrong count comes from a batch");
                    let size = batch.items.len();
                    prop_assert_eq!(*expected, size);
                    match batch_mode {
                        Some(Mode::Fewer) => prop_assert_eq!(*got, size - 1),
                        Some(Mode::More) => prop_assert_eq!(*got, size + 1),
                        other => prop_assert!(false, "wrong count from a {other:?} batch"),
                    }
                    prop_assert_eq!(Some(record.done), batch_end);
                }
            },
        }
        // Refusals: over the weight limit always; after shutdown always (unless too heavy).
        if case.too_heavy(caller) {
            let too_heavy = matches!(record.outcome, Some(Err(BatchError::TooHeavy { .. })));
            prop_assert!(
                too_heavy,
                "request {} over the limit: {:?}",
                id,
                record.outcome
            );
        } else if shut.is_some_and(|shut| arrived > shut) {
            let refused = matches!(record.outcome, Some(Err(BatchError::Shutdown)));
            prop_assert!(
                refused,
                "request {} after shutdown: {:?}",
                id,
                record.outcome
            );
        }
    }

    // Admitted requests: arrival, lane, and until when they were live in the queue.
    let live_until = |caller: &Caller| {
        let mut until = Duration::MAX;
        if let Some(deadline) = case.deadline(caller) {
            until = until.min(ms(caller.at + deadline));
        }
        if let Some(after) = caller.cancel_after {
            until = until.min(ms(caller.at + after));
        }
        until
    };
    let admitted: Vec<bool> = case
        .callers
        .iter()
        .zip(records)
        .map(|(caller, record)| {
            !matches!(
                record.outcome,
                Some(Err(BatchError::TooHeavy { .. } | BatchError::Shutdown))
            ) && !case.too_heavy(caller)
        })
        .collect();

    // Priority and FIFO: when a batch took request x, no live request ahead of x was left.
    for (index, batch) in batches.iter().enumerate() {
        for (position, &x) in batch.items.iter().enumerate() {
            let cx = &case.callers[x];
            for (y, cy) in case.callers.iter().enumerate() {
                if y == x || !admitted[y] {
                    continue;
                }
                let a_y = ms(cy.at);
                let ahead = if cy.high == cx.high {
                    cy.at < cx.at
                } else {
                    cy.high && a_y < batch.at
                };
                if !ahead || live_until(cy) <= batch.at {
                    continue;
                }
                let before =
                    placed[y].is_some_and(|(i, p)| i < index || (i == index && p < position));
                prop_assert!(
                    before,
                    "batch {index} at {:?} took {x} (high: {}, at {}) but left {y} (high: {}, \
                     at {}) behind: {:?}",
                    batch.at,
                    cx.high,
                    cx.at,
                    cy.high,
                    cy.at,
                    placed[y]
                );
            }
        }
    }

    // Dispatch as soon as a slot is free: while a live admitted request waits (past its
    // max_wait), every slot is busy. Checked at every half millisecond (all events fall on whole
    // milliseconds).
    let running_at = |t: Duration| {
        batches
            .iter()
            .zip(&ends)
            .filter(|(batch, end)| batch.at <= t && t < **end)
            .count()
    };
    for (id, caller) in case.callers.iter().enumerate() {
        if !admitted[id] {
            continue;
        }
        let wait_from = caller.at + case.max_wait.unwrap_or(0);
        let taken = placed[id].map_or(Duration::MAX, |(index, _)| batches[index].at);
        let until = taken.min(live_until(caller));
        let mut t = ms(wait_from) + Duration::from_micros(500);
        while t < until {
            prop_assert_eq!(
                running_at(t),
                case.concurrency,
                "request {} waited at {:?} with a slot free",
                id,
                t
            );
            t += ms(1);
        }
    }

    // The stats add up and match what the callers saw.
    let outcomes = stats.served
        + stats.timed_out
        + stats.cancelled
        + stats.handler_errors
        + stats.handler_panics
        + stats.wrong_response_counts;
    prop_assert_eq!(stats.admitted, outcomes, "{:#?}", stats);
    prop_assert_eq!(
        stats.admitted,
        admitted.iter().filter(|&&admitted| admitted).count() as u64
    );
    prop_assert_eq!(stats.served, counts.served);
    prop_assert_eq!(stats.timed_out, counts.timed_out);
    prop_assert_eq!(stats.cancelled, counts.cancelled);
    prop_assert_eq!(stats.handler_errors, counts.handler_errors);
    prop_assert_eq!(stats.handler_panics, counts.handler_panics);
    prop_assert_eq!(stats.wrong_response_counts, counts.wrong);
    prop_assert_eq!(stats.rejected_too_heavy, counts.too_heavy);
    prop_assert_eq!(stats.rejected_shutdown, counts.shutdown);
    prop_assert_eq!(stats.rejected_queue_full, 0);
    prop_assert_eq!(stats.batches, batches.len() as u64);
    prop_assert_eq!((stats.queue_depth, stats.running_batches), (0, 0));
    prop_assert_eq!(stats.latency_us.count, counts.served);
    prop_assert!(stats.batch_size.max <= case.max_items as f64);
    prop_assert!(stats.fill_ratio.max <= 1.0, "{:?}", stats.fill_ratio);
    Ok(())
}

#[derive(Debug, Default)]
struct Counts {
    served: u64,
    timed_out: u64,
    cancelled: u64,
    handler_errors: u64,
    handler_panics: u64,
    wrong: u64,
    too_heavy: u64,
    shutdown: u64,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn batcher_invariants_hold_under_random_load(case in case()) {
        quiet_injected_panics();
        let (records, log, stats, shut) = run(&case);
        prop_assert_eq!(records.len(), case.callers.len());
        check(&case, &records, &log, &stats, shut)?;
    }
}
