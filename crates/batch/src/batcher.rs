//! [`Batcher`]: admission, the dispatcher task and the batches it runs.
//!
//! # Design
//!
//! - **Admission** (`call`): refuse what can never be served (too heavy, shut down), take a
//!   queue permit (an owned semaphore permit: `try_call` fails at once without one, `call`
//!   waits), push the request into its lane under the state lock, and nudge the dispatcher.
//!   The permit travels with the request and is released when it leaves the queue, so the
//!   bound cannot drift.
//! - **Dispatch**: one task loops: wait for a free execution slot (a second semaphore, of
//!   `max_concurrent_batches` permits), wait for a request, optionally wait for a fuller
//!   batch (`max_wait` from the oldest arrival, or until the batch would be full), then take
//!   the batch under the lock — expired and abandoned requests are dropped there, so they
//!   never reach the handler — and spawn it with the slot's permit. A lone request thus costs
//!   one hand-off; under load the backlog that built while the slots were busy becomes the
//!   next batch.
//! - **A batch** runs the handler with panics caught, answers each caller as soon as it
//!   finishes, records its timings, and frees its slot (the permit is dropped even if the
//!   handler panicked).
//! - **Deadlines** fire on the timer service, so a request times out at its deadline, not when
//!   the next batch forms. A deadline given per call is the caller's: it races its reply
//!   against a sleep of its own. The batcher's default deadline is the same `Duration` for
//!   every request, so those deadlines come in arrival order: the queue keeps them in one FIFO
//!   (see `queue`), and one task, the deadline task, sleeps until the earliest and times out
//!   what is due (under the state lock, as the dispatcher drops expired requests), then sleeps
//!   until the next. A request thus costs the timer service nothing, instead of an insert and a
//!   cancel under a shard lock; a push into the FIFO never moves its earliest deadline sooner,
//!   so only a push into an empty FIFO wakes the task.
//! - **Outcomes** are counted once each: by the batch for replies it delivered, by the caller
//!   for a timeout it observed itself or for giving up (a future dropped while waiting).
//! - **Shutdown**: admission stops, the dispatcher runs what is queued without waiting for
//!   fuller batches, waits for the running batches, and reports done.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use ticktock::{Instant, TimerHandle};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::{BatcherBuilder, Resolved, Settings, Weigher};
use crate::error::{BatchError, BuildError};
use crate::queue::{BatchQueue, Dead, Waiting};
use crate::stats::{BatchRecord, BatchStats, Outcome, Recorder};

/// Which lane a request waits in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Served before any normal request that waits.
    High,
    /// The default lane.
    #[default]
    Normal,
}

impl Priority {
    fn lane(self) -> usize {
        match self {
            Self::High => 0,
            Self::Normal => 1,
        }
    }
}

/// Per-call settings for [`Batcher::call_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The lane to wait in.
    pub priority: Priority,
    /// This call's deadline, counted from its arrival (`None`: the batcher's default).
    pub deadline: Option<Duration>,
}

type Reply<Resp, E> = Result<Resp, BatchError<E>>;

/// Every request is claimed exactly once: by the dispatcher when it joins a batch
/// (`STARTED`), or by whoever closes it first (`CLOSED`): its caller, timing out or giving up,
/// or the dispatcher, finding its deadline passed. So a request either reaches the handler or
/// times out (or is abandoned), never both; and its queue space is released exactly once, by
/// whoever claimed it.
const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CLOSED: u8 = 2;

fn claim(state: &AtomicU8, to: u8) -> bool {
    state
        .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// A request in the queue: what the handler gets, where its answer goes, its claim, and its
/// place in the queue's bound.
struct Pending<Req, Resp, E> {
    request: Req,
    reply: oneshot::Sender<Reply<Resp, E>>,
    arrived: Instant,
    claim: Arc<AtomicU8>,
    space: OwnedSemaphorePermit,
}

impl<Req, Resp, E> Pending<Req, Resp, E> {
    /// Whether its caller closed it.
    fn dead(&self) -> Option<Dead> {
        (self.claim.load(Ordering::Acquire) == CLOSED).then_some(Dead::Cancelled)
    }

    /// Claims the request for a batch; `false` if its caller closed it first.
    fn claim_start(&self) -> bool {
        claim(&self.claim, STARTED)
    }
}

struct State<Req, Resp, E> {
    queue: BatchQueue<Pending<Req, Resp, E>>,
    admitted: u64,
    shutting_down: bool,
    /// The deadline task waits with no deadline armed: the next default-deadline request must
    /// wake it.
    deadline_task_parked: bool,
}

type Handler<Req, Resp, E> = Box<
    dyn Fn(Vec<Req>) -> futures_util::future::BoxFuture<'static, Result<Vec<Resp>, E>>
        + Send
        + Sync,
>;

struct Shared<Req, Resp, E> {
    settings: Settings,
    weigher: Option<Weigher<Req>>,
    handler: Handler<Req, Resp, E>,
    state: Mutex<State<Req, Resp, E>>,
    /// Queue bound: one permit per waiting request.
    space: Arc<Semaphore>,
    /// Execution slots: one permit per running batch.
    slots: Arc<Semaphore>,
    /// Wakes the dispatcher: a request arrived, or shutdown began.
    arrivals: Notify,
    /// Wakes the deadline task: a default deadline entered an empty FIFO, or shutdown began or
    /// ended.
    deadline_wake: Notify,
    /// Set once the dispatcher has drained everything after shutdown.
    finished: AtomicBool,
    finished_notify: Notify,
    /// Live `Batcher` handles; the last one dropped shuts the batcher down.
    handles: AtomicUsize,
    timer: TimerHandle,
    recorder: Recorder,
    started: std::time::Instant,
}

impl<Req, Resp, E> Shared<Req, Resp, E> {
    fn state(&self) -> MutexGuard<'_, State<Req, Resp, E>> {
        // The lock guards plain data updated in place; a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests waiting in the queue and not closed by their callers: the space in use.
    fn waiting(&self) -> usize {
        self.settings
            .queue_capacity
            .saturating_sub(self.space.available_permits())
    }

    fn begin_shutdown(&self) {
        self.state().shutting_down = true;
        // Callers waiting for queue space get `Shutdown`; the queued ones still run.
        self.space.close();
        self.arrivals.notify_one();
        self.deadline_wake.notify_one();
    }
}

/// A dynamic request batcher; see the [crate documentation](crate). Cheap to clone: clones
/// share one queue and dispatcher. When the last clone is dropped the batcher shuts down
/// gracefully (what is queued still runs).
pub struct Batcher<Req, Resp, E> {
    shared: Arc<Shared<Req, Resp, E>>,
}

impl<Req, Resp, E> fmt::Debug for Batcher<Req, Resp, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, E> Clone for Batcher<Req, Resp, E> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Req, Resp, E> Drop for Batcher<Req, Resp, E> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.begin_shutdown();
        }
    }
}

impl Batcher<(), (), ()> {
    /// A builder with the default settings; see [`BatcherBuilder`].
    #[must_use]
    pub fn builder<Req: Send + 'static>() -> BatcherBuilder<Req> {
        BatcherBuilder::default()
    }
}

/// A call waiting for its answer. Dropped before one arrived, it closes its request (giving
/// its queue space back at once if still queued) and counts the call as cancelled — unless an
/// answer was already sent, and so counted by its sender.
struct CallWait<'a, T> {
    recorder: &'a Recorder,
    space: &'a Semaphore,
    answer: oneshot::Receiver<T>,
    claim: Arc<AtomicU8>,
    settled: bool,
}

impl<T> CallWait<'_, T> {
    /// Closes the request if it is still queued, and gives its queue space back.
    fn close(&self) -> bool {
        let closed = claim(&self.claim, CLOSED);
        if closed {
            self.space.add_permits(1);
        }
        closed
    }
}

impl<T> Drop for CallWait<'_, T> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let closed = self.close();
        self.answer.close();
        if closed || self.answer.try_recv().is_err() {
            self.recorder.outcome(Outcome::Cancelled, 1);
        }
    }
}

impl<Req, Resp, E> Batcher<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn start<H, Fut>(
        builder: BatcherBuilder<Req>,
        handler: H,
    ) -> Result<Self, BuildError>
    where
        H: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send + 'static,
    {
        let Resolved {
            settings,
            weigher,
            timer,
            runtime,
        } = builder.resolve()?;
        // Requests that use the default deadline leave it to the queue and the deadline task.
        let queue = settings
            .default_deadline
            .and_then(|deadline| BatchQueue::with_default_deadline(timer.now(), deadline));
        let deadline_task = queue.is_some();
        let shared = Arc::new(Shared {
            settings,
            weigher,
            handler: Box::new(move |requests| handler(requests).boxed()),
            state: Mutex::new(State {
                queue: queue.unwrap_or_default(),
                admitted: 0,
                shutting_down: false,
                deadline_task_parked: false,
            }),
            space: Arc::new(Semaphore::new(settings.queue_capacity)),
            slots: Arc::new(Semaphore::new(settings.max_concurrent_batches)),
            arrivals: Notify::new(),
            deadline_wake: Notify::new(),
            finished: AtomicBool::new(false),
            finished_notify: Notify::new(),
            handles: AtomicUsize::new(1),
            timer,
            recorder: Recorder::new(settings.name),
            started: std::time::Instant::now(),
        });
        let deadlines = deadline_task.then(|| runtime.spawn(expire_deadlines(Arc::clone(&shared))));
        runtime.spawn(dispatch(Arc::clone(&shared), runtime.clone(), deadlines));
        Ok(Self { shared })
    }

    /// Sends `request` in the next batch with room and waits for its response; waits for queue
    /// space if the queue is full.
    ///
    /// # Errors
    /// See [`BatchError`]: everything but `QueueFull`.
    pub async fn call(&self, request: Req) -> Result<Resp, BatchError<E>> {
        self.call_with(request, CallOptions::default()).await
    }

    /// Like [`call`](Self::call), but fails at once with [`BatchError::QueueFull`] when the
    /// queue is full.
    ///
    /// # Errors
    /// See [`BatchError`].
    pub async fn try_call(&self, request: Req) -> Result<Resp, BatchError<E>> {
        self.submit(request, CallOptions::default(), false).await
    }

    /// Like [`call`](Self::call), in a chosen lane and with a chosen deadline.
    ///
    /// # Errors
    /// See [`BatchError`]: everything but `QueueFull`.
    pub async fn call_with(
        &self,
        request: Req,
        options: CallOptions,
    ) -> Result<Resp, BatchError<E>> {
        self.submit(request, options, true).await
    }

    /// Like [`try_call`](Self::try_call), in a chosen lane and with a chosen deadline.
    ///
    /// # Errors
    /// See [`BatchError`].
    pub async fn try_call_with(
        &self,
        request: Req,
        options: CallOptions,
    ) -> Result<Resp, BatchError<E>> {
        self.submit(request, options, false).await
    }

    async fn submit(
        &self,
        request: Req,
        options: CallOptions,
        wait_for_space: bool,
    ) -> Result<Resp, BatchError<E>> {
        let shared = &*self.shared;
        let recorder = &shared.recorder;
        let reject = |error: BatchError<E>, outcome| {
            recorder.outcome(outcome, 1);
            Err(error)
        };
        let weight = shared.weigher.as_ref().map_or(1, |weigh| weigh(&request));
        let limit = shared.settings.limits.max_weight;
        if weight > limit {
            return reject(BatchError::TooHeavy { weight, limit }, Outcome::TooHeavy);
        }
        let space = if wait_for_space {
            Arc::clone(&shared.space)
                .acquire_owned()
                .await
                .map_err(|_| (BatchError::Shutdown, Outcome::Shutdown))
        } else {
            Arc::clone(&shared.space)
                .try_acquire_owned()
                .map_err(|error| match error {
                    tokio::sync::TryAcquireError::Closed => {
                        (BatchError::Shutdown, Outcome::Shutdown)
                    }
                    tokio::sync::TryAcquireError::NoPermits => {
                        (BatchError::QueueFull, Outcome::QueueFull)
                    }
                })
        };
        let space = match space {
            Ok(space) => space,
            Err((error, outcome)) => return reject(error, outcome),
        };
        let arrived = shared.timer.now();
        // A deadline too far to represent is no deadline.
        let deadline = options
            .deadline
            .or(shared.settings.default_deadline)
            .and_then(|deadline| arrived.checked_add(deadline));
        let claim_state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, answer) = oneshot::channel();
        let (queue_keeps_deadline, wake_deadline_task) = {
            let mut state = shared.state();
            if state.shutting_down {
                drop(state);
                return reject(BatchError::Shutdown, Outcome::Shutdown);
            }
            let queue_keeps_deadline = state.queue.push(
                options.priority.lane(),
                Waiting {
                    item: Pending {
                        request,
                        reply,
                        arrived,
                        claim: Arc::clone(&claim_state),
                        space,
                    },
                    weight,
                    arrived,
                    deadline,
                },
                options.deadline.is_none(),
            );
            state.admitted += 1;
            recorder.depth(shared.waiting());
            let wake = queue_keeps_deadline && std::mem::take(&mut state.deadline_task_parked);
            (queue_keeps_deadline, wake)
        };
        shared.arrivals.notify_one();
        if wake_deadline_task {
            shared.deadline_wake.notify_one();
        }
        let mut waiting = CallWait {
            recorder,
            space: &shared.space,
            answer,
            claim: claim_state,
            settled: false,
        };
        // A default deadline the queue keeps is timed out by the deadline task, through `answer`.
        if let Some(deadline) = deadline.filter(|_| !queue_keeps_deadline) {
            tokio::select! {
                biased;
                reply = &mut waiting.answer => {
                    waiting.settled = true;
                    return reply.unwrap_or(Err(BatchError::Shutdown));
                }
                // Past the deadline: time out unless the request already started. (If the
                // timer service stopped, keep waiting: the dispatcher still drops a request
                // that expires in the queue.)
                timer = shared.timer.sleep_until(deadline) => {
                    if timer.is_ok() && waiting.close() {
                        waiting.settled = true;
                        recorder.outcome(Outcome::TimedOut, 1);
                        return Err(BatchError::TimedOut);
                    }
                }
            }
        }
        let reply = (&mut waiting.answer).await;
        waiting.settled = true;
        // The sender counted the outcome; a dropped sender means the batcher went away.
        reply.unwrap_or(Err(BatchError::Shutdown))
    }

    /// Stops admitting requests, runs every queued one, and waits for the running batches.
    pub async fn shutdown(&self) {
        let shared = &*self.shared;
        shared.begin_shutdown();
        loop {
            let finished = shared.finished_notify.notified();
            if shared.finished.load(Ordering::Acquire) {
                return;
            }
            finished.await;
        }
    }

    /// A snapshot of the batcher's KPIs.
    #[must_use]
    pub fn stats(&self) -> BatchStats {
        let shared = &*self.shared;
        let depth = shared.waiting();
        let admitted = shared.state().admitted;
        let mut stats = shared.recorder.snapshot(
            shared.settings.queue_capacity,
            shared.settings.limits.max_items,
            shared.started.elapsed(),
        );
        stats.queue_depth = depth as u64;
        stats.admitted = admitted;
        stats
    }
}

/// The dispatcher task; see the [module documentation](self). `deadlines` is the deadline
/// task, if there is one: the dispatcher reports done only after it has stopped, so nothing is
/// answered after `shutdown` returns.
async fn dispatch<Req, Resp, E>(
    shared: Arc<Shared<Req, Resp, E>>,
    runtime: tokio::runtime::Handle,
    deadlines: Option<tokio::task::JoinHandle<()>>,
) where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + Sync + 'static,
{
    let limits = shared.settings.limits;
    let mut dead = Vec::new();
    loop {
        // A free slot first: while every slot is busy, the backlog grows into the next batch.
        let Ok(slot) = Arc::clone(&shared.slots).acquire_owned().await else {
            break;
        };
        // Then work.
        let shutting_down = loop {
            let arrival = shared.arrivals.notified();
            let (empty, shutting_down) = {
                let state = shared.state();
                (state.queue.is_empty(), state.shutting_down)
            };
            if !empty || shutting_down {
                break shutting_down;
            }
            arrival.await;
        };
        // Optionally a fuller batch, never past the oldest request's `max_wait`.
        if let (Some(max_wait), false) = (shared.settings.max_wait, shutting_down) {
            loop {
                let arrival = shared.arrivals.notified();
                let (full, oldest, stop) = {
                    let state = shared.state();
                    (
                        state.queue.would_fill(limits),
                        state.queue.oldest_arrival(),
                        state.shutting_down,
                    )
                };
                let Some(oldest) = oldest else { break };
                // A wait too long to represent only ends when the batch fills.
                let until = oldest.checked_add(max_wait);
                if full || stop || until.is_some_and(|until| shared.timer.now() >= until) {
                    break;
                }
                let far = shared.timer.now() + Duration::from_secs(86_400 * 365);
                tokio::select! {
                    _ = arrival => {}
                    timer = shared.timer.sleep_until(until.unwrap_or(far)) => {
                        // Without a timer service there is nothing to wait with: go now.
                        if timer.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let mut batch = Vec::with_capacity(limits.max_items.min(1024));
        let finished = {
            let mut state = shared.state();
            let now = shared.timer.now();
            state.queue.take_batch(
                now,
                limits,
                Pending::dead,
                Pending::claim_start,
                &mut batch,
                &mut dead,
            );
            shared.recorder.depth(shared.waiting());
            state.shutting_down && state.queue.is_empty() && batch.is_empty()
        };
        expire(&shared.recorder, &mut dead);
        if !batch.is_empty() {
            shared.recorder.batch_started();
            runtime.spawn(run_batch(Arc::clone(&shared), batch, slot));
        } else if finished {
            break;
        }
    }
    // Every queued request was handed to a batch; wait for the running ones.
    let all = u32::try_from(shared.settings.max_concurrent_batches).unwrap_or(u32::MAX);
    let _ = shared.slots.acquire_many(all).await;
    // The queue is empty and admission closed: the deadline task has nothing left to wait for.
    if let Some(deadlines) = deadlines {
        shared.deadline_wake.notify_one();
        let _ = deadlines.await;
    }
    shared.finished.store(true, Ordering::Release);
    shared.finished_notify.notify_waiters();
}

/// The deadline task: times out the requests that wait under the batcher's default deadline,
/// at their deadline, with one timer-service sleep at a time (see the [module
/// documentation](self)). Stops once the batcher shuts down and the queue keeps no deadline,
/// or if the timer service stops (the dispatcher still drops requests that expire in the
/// queue, as it does for every deadline).
async fn expire_deadlines<Req, Resp, E>(shared: Arc<Shared<Req, Resp, E>>) {
    let mut dead = Vec::new();
    // The deadline the last sleep reached: the service says it has passed, whatever a clock
    // read a moment later says.
    let mut reached: Option<Instant> = None;
    loop {
        let wake = shared.deadline_wake.notified();
        let (next, stop) = {
            let mut state = shared.state();
            let now = shared.timer.now();
            let now = reached.map_or(now, |reached| reached.max(now));
            state.queue.expire_due(now, &mut dead);
            let next = state.queue.next_default_deadline();
            // With no deadline to wait for, only a push into the empty FIFO gives it work.
            state.deadline_task_parked = next.is_none();
            (next, next.is_none() && state.shutting_down)
        };
        if !dead.is_empty() {
            expire(&shared.recorder, &mut dead);
            shared.recorder.depth(shared.waiting());
        }
        reached = None;
        match next {
            _ if stop => return,
            None => wake.await,
            Some(deadline) => {
                // Pushes never bring the earliest deadline sooner (it is not parked, so they
                // do not wake it): a wake here means shutdown.
                tokio::select! {
                    () = wake => {}
                    timer = shared.timer.sleep_until(deadline) => {
                        if timer.is_err() {
                            return;
                        }
                        reached = Some(deadline);
                    }
                }
            }
        }
    }
}

/// Settles the requests that left the queue dead: a request its caller closed gave its space
/// back already (its permit is forgotten); one the dispatcher found expired is closed here,
/// answered with `TimedOut`, and its space released.
fn expire<Req, Resp, E>(recorder: &Recorder, dead: &mut Vec<(Pending<Req, Resp, E>, Dead)>) {
    let mut timed_out = 0;
    for (pending, reason) in dead.drain(..) {
        if reason == Dead::Expired && claim(&pending.claim, CLOSED) {
            drop(pending.space);
            if pending.reply.send(Err(BatchError::TimedOut)).is_ok() {
                timed_out += 1;
            }
        } else {
            pending.space.forget();
        }
    }
    recorder.outcome(Outcome::TimedOut, timed_out);
}

/// Runs one batch and answers its callers; dropping `slot` frees the execution slot.
async fn run_batch<Req, Resp, E>(
    shared: Arc<Shared<Req, Resp, E>>,
    batch: Vec<Pending<Req, Resp, E>>,
    slot: OwnedSemaphorePermit,
) where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + Sync + 'static,
{
    let started = shared.timer.now();
    let size = batch.len();
    let mut replies = Vec::with_capacity(size);
    let mut requests = Vec::with_capacity(size);
    for pending in batch {
        // The queue space is released here: the request has left the queue.
        drop(pending.space);
        requests.push(pending.request);
        replies.push((pending.reply, pending.arrived));
    }
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| (shared.handler)(requests))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    let finished = shared.timer.now();
    let handler = finished.saturating_duration_since(started);
    let mut served = Vec::with_capacity(size);
    let mut failed = 0;
    let failure = match outcome {
        Ok(Ok(responses)) if responses.len() == size => {
            for ((reply, arrived), response) in replies.drain(..).zip(responses) {
                if reply.send(Ok(response)).is_ok() {
                    served.push((
                        started.saturating_duration_since(arrived),
                        finished.saturating_duration_since(arrived),
                    ));
                }
            }
            None
        }
        Ok(Ok(responses)) => Some((
            BatchError::WrongResponseCount {
                expected: size,
                got: responses.len(),
            },
            Outcome::WrongResponseCount,
        )),
        Ok(Err(error)) => Some((BatchError::Handler(Arc::new(error)), Outcome::HandlerError)),
        Err(panic) => Some((
            BatchError::HandlerPanicked(panic_message(panic.as_ref())),
            Outcome::HandlerPanicked,
        )),
    };
    if let Some((error, outcome)) = failure {
        for (reply, _) in replies {
            failed += u64::from(reply.send(Err(error.clone())).is_ok());
        }
        shared.recorder.outcome(outcome, failed);
    }
    shared
        .recorder
        .outcome(Outcome::Served, served.len() as u64);
    shared.recorder.batch_finished(&BatchRecord {
        size,
        max_items: shared.settings.limits.max_items,
        handler,
        requests: &served,
    });
    drop(slot);
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(message) = panic.downcast_ref::<&str>() {
        Arc::from(*message)
    } else if let Some(message) = panic.downcast_ref::<String>() {
        Arc::from(message.as_str())
    } else {
        Arc::from("a non-string panic payload")
    }
}
