//! [`BatcherBuilder`]: the settings of a batcher, checked when it is built.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ticktock::TimerHandle;
use tokio::runtime::Handle;

use crate::batcher::Batcher;
use crate::error::BuildError;
use crate::queue::Limits;

/// Measures a request for the weight limit (tokens, bytes, …).
pub(crate) type Weigher<Req> = Arc<dyn Fn(&Req) -> u64 + Send + Sync>;

/// The checked settings a batcher runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) name: &'static str,
    pub(crate) limits: Limits,
    pub(crate) max_concurrent_batches: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) default_deadline: Option<Duration>,
}

/// What a builder resolves to when a batcher starts.
pub(crate) struct Resolved<Req> {
    pub(crate) settings: Settings,
    pub(crate) weigher: Option<Weigher<Req>>,
    pub(crate) timer: TimerHandle,
    pub(crate) runtime: Handle,
}

/// Builds a [`Batcher`]; start with [`Batcher::builder`].
///
/// Defaults: batches of up to 32 requests with no weight limit, one batch at a time, a queue
/// of 8,192 requests, no `max_wait` (a batch starts as soon as a slot is free), no default
/// deadline, the process-wide timer service ([`ticktock::global`]) and the current tokio
/// runtime.
pub struct BatcherBuilder<Req> {
    name: &'static str,
    max_batch_size: usize,
    max_batch_weight: Option<u64>,
    weigher: Option<Weigher<Req>>,
    max_concurrent_batches: usize,
    queue_capacity: usize,
    max_wait: Option<Duration>,
    default_deadline: Option<Duration>,
    timer: Option<TimerHandle>,
    runtime: Option<Handle>,
}

impl<Req> fmt::Debug for BatcherBuilder<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatcherBuilder")
            .field("name", &self.name)
            .field("max_batch_size", &self.max_batch_size)
            .field("max_batch_weight", &self.max_batch_weight)
            .field("max_concurrent_batches", &self.max_concurrent_batches)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_wait", &self.max_wait)
            .field("default_deadline", &self.default_deadline)
            .finish_non_exhaustive()
    }
}

impl<Req> Clone for BatcherBuilder<Req> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            max_batch_size: self.max_batch_size,
            max_batch_weight: self.max_batch_weight,
            weigher: self.weigher.clone(),
            max_concurrent_batches: self.max_concurrent_batches,
            queue_capacity: self.queue_capacity,
            max_wait: self.max_wait,
            default_deadline: self.default_deadline,
            timer: self.timer.clone(),
            runtime: self.runtime.clone(),
        }
    }
}

impl<Req> Default for BatcherBuilder<Req> {
    fn default() -> Self {
        Self {
            name: "batcher",
            max_batch_size: 32,
            max_batch_weight: None,
            weigher: None,
            max_concurrent_batches: 1,
            queue_capacity: 8192,
            max_wait: None,
            default_deadline: None,
            timer: None,
            runtime: None,
        }
    }
}

impl<Req: Send + 'static> BatcherBuilder<Req> {
    /// The `batcher` label on this batcher's metrics.
    #[must_use]
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// At most this many requests per batch (at least 1).
    #[must_use]
    pub fn max_batch_size(mut self, items: usize) -> Self {
        self.max_batch_size = items;
        self
    }

    /// At most this total weight per batch, each request weighed by `weigher`. A request that
    /// alone weighs more is refused with [`BatchError::TooHeavy`](crate::BatchError::TooHeavy).
    #[must_use]
    pub fn max_batch_weight(
        mut self,
        limit: u64,
        weigher: impl Fn(&Req) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.max_batch_weight = Some(limit);
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// At most this many batches run at once (at least 1).
    #[must_use]
    pub fn max_concurrent_batches(mut self, batches: usize) -> Self {
        self.max_concurrent_batches = batches;
        self
    }

    /// At most this many requests wait for a batch (at least 1). `try_call` fails with
    /// [`BatchError::QueueFull`](crate::BatchError::QueueFull) beyond it; `call` waits.
    #[must_use]
    pub fn queue_capacity(mut self, requests: usize) -> Self {
        self.queue_capacity = requests;
        self
    }

    /// Once a slot is free, wait up to this long (counted from the oldest waiting request's
    /// arrival) for a fuller batch. `None` (the default): start at once.
    ///
    /// Starting at once means a lone request costs only the handler's time. Its price: with one
    /// slot and callers that resubmit as soon as they are answered, the slot frees before the
    /// answered callers are back, so batches alternate between two groups of callers. A
    /// `max_wait` well below the handler's time (say a tenth) merges them into full batches.
    #[must_use]
    pub fn max_wait(mut self, max_wait: Option<Duration>) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Every request must start within this long of its arrival, unless its call says
    /// otherwise; else it gets [`BatchError::TimedOut`](crate::BatchError::TimedOut).
    #[must_use]
    pub fn default_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.default_deadline = deadline;
        self
    }

    /// The timer service for deadlines and `max_wait` (default: [`ticktock::global`]).
    #[must_use]
    pub fn timer(mut self, timer: TimerHandle) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The runtime the dispatcher and the batches run on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, runtime: Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Checks the settings and finds the runtime.
    pub(crate) fn resolve(&self) -> Result<Resolved<Req>, BuildError> {
        for (value, name) in [
            (self.max_batch_size, "max_batch_size"),
            (self.max_concurrent_batches, "max_concurrent_batches"),
            (self.queue_capacity, "queue_capacity"),
        ] {
            if value == 0 {
                return Err(BuildError::Zero(name));
            }
        }
        if self.max_batch_weight == Some(0) {
            return Err(BuildError::Zero("max_batch_weight"));
        }
        let runtime = match &self.runtime {
            Some(runtime) => runtime.clone(),
            None => Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        let timer = match &self.timer {
            Some(timer) => timer.clone(),
            None => ticktock::global().clone(),
        };
        let settings = Settings {
            name: self.name,
            limits: Limits {
                max_items: self.max_batch_size,
                max_weight: self.max_batch_weight.unwrap_or(u64::MAX),
            },
            max_concurrent_batches: self.max_concurrent_batches,
            // The semaphore that bounds the queue cannot hold more permits than this.
            queue_capacity: self.queue_capacity.min(tokio::sync::Semaphore::MAX_PERMITS),
            max_wait: self.max_wait,
            default_deadline: self.default_deadline,
        };
        Ok(Resolved {
            settings,
            weigher: self.weigher.clone(),
            timer,
            runtime,
        })
    }

    /// Starts the batcher with `handler`, which turns a batch of requests into one response
    /// per request, in order.
    ///
    /// Each batch runs as a task on the runtime: a handler that blocks (a synchronous database
    /// driver, heavy computation) should hand its work to a thread of its own or to
    /// `spawn_blocking`, as a runtime worker stalls while it runs.
    ///
    /// # Errors
    /// [`BuildError::Zero`] for a limit of 0; [`BuildError::NoRuntime`] outside a tokio runtime
    /// when none was given.
    pub fn build<Resp, E, H, Fut>(self, handler: H) -> Result<Batcher<Req, Resp, E>, BuildError>
    where
        Resp: Send + 'static,
        E: Send + Sync + 'static,
        H: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send + 'static,
    {
        Batcher::start(self, handler)
    }
}
