//! Shared helpers for the integration tests: a timer service on tokio's (paused) clock, a log of
//! every batch the handler sees (with the virtual time it saw it and how many batches ran at
//! once), a standard handler with injectable failures, and a way to start calls at chosen
//! virtual times.
//!
//! Every test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures_util::future::BoxFuture;
use ticktock::TimerService;
use ticktock_batch::{BatchError, Batcher, CallOptions};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A timer service on tokio's clock (virtual in a paused runtime). Keep it alive for the whole
/// test: once it is dropped its sleeps resolve at once.
pub fn timer() -> TimerService {
    TimerService::builder()
        .start()
        .expect("a timer service starts inside a tokio runtime")
}

/// Silences the panics the tests inject into handlers (their message starts with "injected");
/// every other panic still reaches the default hook.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.starts_with("injected") {
                default(info);
            }
        }));
    });
}

/// One batch as the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen<T> {
    /// Virtual time since the log's start.
    pub at: Duration,
    pub items: Vec<T>,
}

struct LogInner<T> {
    start: Instant,
    batches: Mutex<Vec<Seen<T>>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

/// Everything a handler saw; clones share it.
pub struct Log<T> {
    inner: Arc<LogInner<T>>,
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Counts a running batch until dropped (also when the handler panics).
pub struct Running<T> {
    inner: Arc<LogInner<T>>,
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.inner.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: Clone> Log<T> {
    /// A log whose times count from now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(LogInner {
                start: Instant::now(),
                batches: Mutex::new(Vec::new()),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
            }),
        }
    }

    /// When the log started.
    pub fn start(&self) -> Instant {
        self.inner.start
    }

    /// Virtual time since the log started.
    pub fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// Records a batch the handler got.
    pub fn saw(&self, items: &[T]) {
        let at = self.now();
        self.inner.batches.lock().unwrap().push(Seen {
            at,
            items: items.to_vec(),
        });
    }

    /// Marks a batch as running until the guard drops; tracks the most at once.
    pub fn running(&self) -> Running<T> {
        let now = self.inner.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.max_running.fetch_max(now, Ordering::SeqCst);
        Running {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Every batch so far, in the order the handler got them.
    pub fn batches(&self) -> Vec<Seen<T>> {
        self.inner.batches.lock().unwrap().clone()
    }

    /// The batches as (ms since start, items).
    pub fn timeline(&self) -> Vec<(u64, Vec<T>)> {
        self.batches()
            .into_iter()
            .map(|seen| (seen.at.as_millis() as u64, seen.items))
            .collect()
    }

    /// Every item the handler got, in order.
    pub fn items(&self) -> Vec<T> {
        self.batches()
            .into_iter()
            .flat_map(|seen| seen.items)
            .collect()
    }

    /// Batch sizes, in order.
    pub fn sizes(&self) -> Vec<usize> {
        self.batches().iter().map(|seen| seen.items.len()).collect()
    }

    /// The most batches that ran at once.
    pub fn max_running(&self) -> usize {
        self.inner.max_running.load(Ordering::SeqCst)
    }

    /// Batches running now.
    pub fn running_now(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }
}

impl<T: Clone> Default for Log<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The standard test batcher: `u32` requests, `u32` responses, `String` errors.
pub type TestBatcher = Batcher<u32, u32, String>;
/// The standard test handler's type.
pub type Handler =
    Box<dyn Fn(Vec<u32>) -> BoxFuture<'static, Result<Vec<u32>, String>> + Send + Sync>;

/// The response the standard handler gives to `request`.
pub fn response(request: u32) -> u32 {
    request + 1000
}

/// Requests that make the standard handler misbehave for their whole batch (ordinary requests
/// in the tests stay below 5,000).
pub const FAIL: u32 = 10_013;
/// Panics while creating the handler's future (a formatted, `String` message).
pub const PANIC_SYNC: u32 = 10_066;
/// Panics inside the handler's future (a literal, `&str` message).
pub const PANIC_ASYNC: u32 = 10_067;
/// One response too few.
pub const FEWER: u32 = 10_068;
/// One response too many.
pub const MORE: u32 = 10_069;
/// Requests in 5,000..5,100 make their batch take 100 ms instead of the base time.
pub const SLOW: u32 = 5_000;

/// The standard handler: logs each batch (with its virtual time) and how many run at once,
/// takes `base` of virtual time (100 ms if the batch holds a request in 5,000..5,100), and answers
/// `request + 1000`, unless the batch holds one of the failure triggers above.
pub fn handler(log: &Log<u32>, base: Duration) -> Handler {
    let log = log.clone();
    Box::new(move |items: Vec<u32>| {
        log.saw(&items);
        if items.contains(&PANIC_SYNC) {
            panic!("injected sync panic {PANIC_SYNC}");
        }
        let log = log.clone();
        Box::pin(async move {
            let _running = log.running();
            let slow = items.iter().any(|item| (SLOW..SLOW + 100).contains(item));
            tokio::time::sleep(if slow { ms(100) } else { base }).await;
            if items.contains(&PANIC_ASYNC) {
                panic!("injected async panic");
            }
            if items.contains(&FAIL) {
                return Err(format!("injected failure of {} requests", items.len()));
            }
            let mut responses: Vec<u32> = items.iter().map(|&item| response(item)).collect();
            if items.contains(&FEWER) {
                responses.pop();
            }
            if items.contains(&MORE) {
                responses.push(0);
            }
            Ok(responses)
        })
    })
}

/// A batcher on `service` with the standard handler taking 10 ms a batch and a default
/// deadline of 30 ms: the setup of the default-deadline tests.
pub fn batcher_with_default_deadline(service: &TimerService, log: &Log<u32>) -> TestBatcher {
    Batcher::builder()
        .timer(service.handle())
        .default_deadline(Some(ms(30)))
        .build(handler(log, ms(10)))
        .expect("a valid configuration")
}

/// A call's result and when (virtual time since `start`) it came back.
pub type Timed = (Duration, Result<u32, BatchError<String>>);

/// Starts `batcher.call_with(request, options)` at `start + at` in a task of its own.
pub fn call_at(
    batcher: &TestBatcher,
    start: Instant,
    at: Duration,
    request: u32,
    options: CallOptions,
) -> JoinHandle<Timed> {
    let batcher = batcher.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(start + at).await;
        let result = batcher.call_with(request, options).await;
        (start.elapsed(), result)
    })
}

/// Starts a plain `call(request)` at `start + at`.
pub fn spawn_call(
    batcher: &TestBatcher,
    start: Instant,
    at: Duration,
    request: u32,
) -> JoinHandle<Timed> {
    call_at(batcher, start, at, request, CallOptions::default())
}

/// Waits for every task (in order).
pub async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("a caller task panicked"));
    }
    out
}

/// Fails the test instead of hanging if `future` takes more than `limit` of virtual time.
pub async fn within<F: std::future::Future>(limit: Duration, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .expect("the test did not finish in time (a hang?)")
}

/// A short name for a call's error, for assertions.
pub fn kind<E>(error: &BatchError<E>) -> &'static str {
    match error {
        BatchError::QueueFull => "QueueFull",
        BatchError::TooHeavy { .. } => "TooHeavy",
        BatchError::TimedOut => "TimedOut",
        BatchError::Shutdown => "Shutdown",
        BatchError::Handler(_) => "Handler",
        BatchError::HandlerPanicked(_) => "HandlerPanicked",
        BatchError::WrongResponseCount { .. } => "WrongResponseCount",
    }
}

/// Options with a per-call deadline of `d`.
pub fn deadline(d: Duration) -> CallOptions {
    CallOptions {
        deadline: Some(d),
        ..CallOptions::default()
    }
}

/// The answer the standard handler gives `request`.
pub fn ok(request: u32) -> Result<u32, &'static str> {
    Ok(response(request))
}

/// Results with errors shortened to their kind, for compact comparisons.
pub fn simple(results: &[Timed]) -> Vec<(u64, Result<u32, &'static str>)> {
    results
        .iter()
        .map(|(at, result)| {
            (
                at.as_millis() as u64,
                result.as_ref().map(|v| *v).map_err(kind),
            )
        })
        .collect()
}
