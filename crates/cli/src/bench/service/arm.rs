//! `service`: arm + cancel of a timer from tasks, on 1 and 2 worker threads.
//!
//! One operation: create a sleep 1–10 s ahead (from the seeded pool), poll it once with a no-op
//! waker so it registers with its timer, drop it (which cancels it). Each sample spawns one task
//! per worker thread; the tasks meet at a spinning rendezvous, then each runs the same number of
//! operations in a tight loop. ns per op = wall time from the first task's start to the last
//! task's end / operations of all tasks.

use std::collections::HashSet;
use std::future::{Future, pending};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use ticktock::{TimerHandle, TimerStats};
use tokio::runtime::Runtime;

use super::{
    TICKTOCK, TOKIO_SLEEP, TOKIO_TIMEOUT, multi_thread, service_remark, start_static_service,
};
use crate::bench::inputs::Pool;
use crate::bench::workloads::{Sample, SampleRunner};
use crate::error::CliError;

/// How long a task waits at the rendezvous for the others before starting anyway.
const RENDEZVOUS_PATIENCE: Duration = Duration::from_secs(2);

/// Arm + cancel on `threads` worker threads.
#[derive(Debug, Clone)]
pub struct ArmSpec {
    /// Worker threads (and tasks, and ticktock shards).
    pub threads: usize,
    /// Operations per task per sample.
    pub ops_per_thread: usize,
    /// Delays in ms (1,000–10,000).
    pub delays: Arc<Pool>,
}

/// Which timer a runner drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ticktock,
    TokioSleep,
    TokioTimeout,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Ticktock => TICKTOCK,
            Self::TokioSleep => TOKIO_SLEEP,
            Self::TokioTimeout => TOKIO_TIMEOUT,
        }
    }
}

impl ArmSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 3] = [TICKTOCK, TOKIO_SLEEP, TOKIO_TIMEOUT];

    /// The row parameter for `threads` worker threads.
    pub fn parameter(threads: usize) -> String {
        if threads == 1 {
            "1 worker".to_owned()
        } else {
            format!("{threads} workers")
        }
    }

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        [Kind::Ticktock, Kind::TokioSleep, Kind::TokioTimeout]
            .into_iter()
            .map(|kind| Ok(Box::new(ArmCancel::new(self.clone(), kind)?) as Box<dyn SampleRunner>))
            .collect()
    }
}

struct ArmCancel {
    kind: Kind,
    /// A process-long service, as `ticktock::global()` is: its handles need no reference
    /// counting. It outlives the runner (its driver thread parks until the process exits).
    service: Option<TimerHandle>,
    runtime: Runtime,
    spec: ArmSpec,
    cursor: usize,
    before: Option<TimerStats>,
    /// Samples in which two tasks ran on the same thread (the rendezvous timed out).
    shared_thread: usize,
}

impl ArmCancel {
    fn new(spec: ArmSpec, kind: Kind) -> Result<Self, CliError> {
        let runtime = multi_thread(spec.threads)?;
        let service = match kind {
            Kind::Ticktock => Some(start_static_service(spec.threads, 1024)?),
            Kind::TokioSleep | Kind::TokioTimeout => None,
        };
        let before = service.as_ref().map(TimerHandle::stats);
        Ok(Self {
            kind,
            service,
            runtime,
            spec,
            cursor: 0,
            before,
            shared_thread: 0,
        })
    }
}

/// What one task reports.
struct TaskRun {
    started: Instant,
    ended: Instant,
    thread: ThreadId,
    /// Polls that did not return `Pending` (the timer fired at once, or the service is gone).
    not_pending: u64,
}

impl SampleRunner for ArmCancel {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let threads = self.spec.threads;
        let ops = self.spec.ops_per_thread;
        let ready = Arc::new(AtomicUsize::new(0));
        let handle = self.service.clone();
        let tasks: Vec<_> = (0..threads)
            .map(|t| {
                let ready = Arc::clone(&ready);
                let delays = Arc::clone(&self.spec.delays);
                let handle = handle.clone();
                let kind = self.kind;
                // Each task reads its own stretch of the pool.
                let from = self.cursor.wrapping_add(t.wrapping_mul(ops));
                self.runtime.spawn(async move {
                    rendezvous(&ready, threads);
                    let started = Instant::now();
                    let not_pending = match (kind, handle) {
                        (Kind::Ticktock, Some(handle)) => ticktock_ops(&handle, &delays, from, ops),
                        (Kind::Ticktock, None) => ops as u64,
                        (Kind::TokioSleep, _) => tokio_sleep_ops(&delays, from, ops),
                        (Kind::TokioTimeout, _) => tokio_timeout_ops(&delays, from, ops),
                    };
                    TaskRun {
                        started,
                        ended: Instant::now(),
                        thread: std::thread::current().id(),
                        not_pending,
                    }
                })
            })
            .collect();
        self.cursor = self.cursor.wrapping_add(threads.wrapping_mul(ops));
        let runs = self.runtime.block_on(async {
            let mut runs = Vec::with_capacity(tasks.len());
            for task in tasks {
                runs.push(task.await?);
            }
            Ok::<_, CliError>(runs)
        })?;
        let started = runs.iter().map(|run| run.started).min();
        let ended = runs.iter().map(|run| run.ended).max();
        let wall = match (started, ended) {
            (Some(started), Some(ended)) => ended.saturating_duration_since(started),
            _ => Duration::ZERO,
        };
        let thread_ids: HashSet<ThreadId> = runs.iter().map(|run| run.thread).collect();
        if thread_ids.len() < runs.len() {
            self.shared_thread += 1;
        }
        let mut lost: u64 = runs.iter().map(|run| run.not_pending).sum();
        if let Some(handle) = &handle {
            // Every sleep was dropped, so none may be left in the wheels.
            lost += handle.stats().total_timers;
        }
        Ok(Sample::per_op(wall, threads * ops, 0, lost))
    }

    fn remarks(&mut self) -> Vec<String> {
        let mut remarks = Vec::new();
        if self.shared_thread > 0 {
            remarks.push(format!(
                "in {} samples two tasks ran on the same worker thread (the rendezvous timed \
                 out), so they did not run in parallel",
                self.shared_thread
            ));
        }
        if let (Some(service), Some(before)) = (&self.service, &self.before) {
            remarks.push(service_remark(
                service,
                before,
                "over all samples, warm-up included",
            ));
        }
        remarks
    }
}

/// Waits (spinning, so that each task holds its worker) until `parties` tasks arrived, or
/// [`RENDEZVOUS_PATIENCE`] passed.
fn rendezvous(ready: &AtomicUsize, parties: usize) {
    ready.fetch_add(1, Ordering::AcqRel);
    let give_up = Instant::now() + RENDEZVOUS_PATIENCE;
    while ready.load(Ordering::Acquire) < parties && Instant::now() < give_up {
        std::hint::spin_loop();
    }
}

#[inline(always)]
fn delay(delays: &Pool, index: usize) -> Duration {
    Duration::from_millis(delays.get(index))
}

/// `ops` times: `handle.sleep(d)`, one poll, drop. Returns the polls that were not pending.
#[inline(never)]
fn ticktock_ops(handle: &TimerHandle, delays: &Pool, from: usize, ops: usize) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut not_pending = 0;
    for i in 0..ops {
        let mut sleep = handle.sleep(delay(delays, from.wrapping_add(i)));
        not_pending += u64::from(Pin::new(&mut sleep).poll(&mut cx).is_ready());
        drop(black_box(sleep));
    }
    not_pending
}

/// `ops` times: `tokio::time::sleep(d)` pinned on the stack, one poll, drop.
#[inline(never)]
fn tokio_sleep_ops(delays: &Pool, from: usize, ops: usize) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut not_pending = 0;
    for i in 0..ops {
        let sleep = pin!(tokio::time::sleep(delay(delays, from.wrapping_add(i))));
        not_pending += u64::from(sleep.poll(&mut cx).is_ready());
    }
    not_pending
}

/// `ops` times: `tokio::time::timeout(d, pending())` pinned on the stack, one poll, drop.
#[inline(never)]
fn tokio_timeout_ops(delays: &Pool, from: usize, ops: usize) -> u64 {
    let mut cx = Context::from_waker(Waker::noop());
    let mut not_pending = 0;
    for i in 0..ops {
        let timeout = pin!(tokio::time::timeout(
            delay(delays, from.wrapping_add(i)),
            pending::<()>()
        ));
        not_pending += u64::from(timeout.poll(&mut cx).is_ready());
    }
    not_pending
}
