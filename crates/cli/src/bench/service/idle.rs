//! `idle`: what many pending timers cost while nothing happens.
//!
//! Each sample builds a 2-worker multi-thread runtime, creates `timers` sleeps an hour away and
//! polls each once (with a no-op waker) so they are registered and stay pending, lets the
//! runtime settle, then measures the process's CPU time (all threads, user + system; see
//! [`CpuReading`]) over `wall` of wall time while the only task sleeps on tokio's timer.
//! Value: CPU seconds / wall seconds × 100. The row "no timers" is the same runtime with no
//! timers at all: the floor both others stand on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant as StdInstant};

use ticktock::TimerService;
use tokio::runtime::Runtime;

use super::{CpuReading, NO_TIMERS, TICKTOCK, TOKIO_SLEEP, multi_thread, start_service};
use crate::bench::workloads::{Sample, SampleRunner};
use crate::error::CliError;

/// Worker threads of the runtime (and ticktock shards).
const WORKERS: usize = 2;
/// How far away the pending timers are.
const FAR: Duration = Duration::from_secs(3600);
/// Time given to the runtime (and the service's driver) to go quiet after the timers were
/// registered, before the measurement starts.
const SETTLE: Duration = Duration::from_millis(20);

/// Process CPU while `timers` far-away timers wait.
#[derive(Debug, Clone)]
pub struct IdleSpec {
    /// Pending timers.
    pub timers: usize,
    /// Wall time measured.
    pub wall: Duration,
}

/// Which timers a runner holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ticktock,
    TokioSleep,
    NoTimers,
}

impl IdleSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 3] = [TICKTOCK, TOKIO_SLEEP, NO_TIMERS];

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        Ok([Kind::Ticktock, Kind::TokioSleep, Kind::NoTimers]
            .into_iter()
            .map(|kind| {
                Box::new(Idle {
                    kind,
                    spec: self.clone(),
                    remarks: Vec::new(),
                }) as Box<dyn SampleRunner>
            })
            .collect())
    }
}

struct Idle {
    kind: Kind,
    spec: IdleSpec,
    remarks: Vec<String>,
}

/// The timers a sample holds while it measures.
enum Held {
    Ticktock(Vec<ticktock::Sleep>),
    Tokio(Vec<Pin<Box<tokio::time::Sleep>>>),
    Nothing,
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Self::Ticktock(sleeps) => sleeps.len(),
            Self::Tokio(sleeps) => sleeps.len(),
            Self::Nothing => 0,
        }
    }
}

impl Idle {
    /// Creates and registers the timers (inside the runtime, on the calling thread).
    fn hold(&self, runtime: &Runtime, service: Option<&TimerService>) -> (Held, u64) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut not_pending = 0;
        let held = runtime.block_on(async {
            match (self.kind, service) {
                (Kind::Ticktock, Some(service)) => {
                    let handle = service.handle();
                    let mut sleeps = Vec::with_capacity(self.spec.timers);
                    for _ in 0..self.spec.timers {
                        let mut sleep = handle.sleep(FAR);
                        not_pending += u64::from(Pin::new(&mut sleep).poll(&mut cx).is_ready());
                        sleeps.push(sleep);
                    }
                    Held::Ticktock(sleeps)
                }
                (Kind::TokioSleep, _) => {
                    let mut sleeps = Vec::with_capacity(self.spec.timers);
                    for _ in 0..self.spec.timers {
                        let mut sleep = Box::pin(tokio::time::sleep(FAR));
                        not_pending += u64::from(sleep.as_mut().poll(&mut cx).is_ready());
                        sleeps.push(sleep);
                    }
                    Held::Tokio(sleeps)
                }
                (Kind::Ticktock, None) | (Kind::NoTimers, _) => Held::Nothing,
            }
        });
        (held, not_pending)
    }
}

impl SampleRunner for Idle {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Ticktock => TICKTOCK,
            Kind::TokioSleep => TOKIO_SLEEP,
            Kind::NoTimers => NO_TIMERS,
        }
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let runtime = multi_thread(WORKERS)?;
        let service = match self.kind {
            Kind::Ticktock => Some(start_service(
                &runtime,
                WORKERS,
                self.spec.timers.div_ceil(WORKERS),
            )?),
            Kind::TokioSleep | Kind::NoTimers => None,
        };
        let (held, not_pending) = self.hold(&runtime, service.as_ref());
        runtime.block_on(async { tokio::time::sleep(SETTLE).await });
        let stats_before = service.as_ref().map(|service| service.handle().stats());

        let cpu_before = CpuReading::now()?;
        let wall_started = StdInstant::now();
        runtime.block_on(async { tokio::time::sleep(self.spec.wall).await });
        let wall = wall_started.elapsed();
        let cpu = CpuReading::now()?.since(&cpu_before);

        let expected = if self.kind == Kind::NoTimers {
            0
        } else {
            self.spec.timers
        };
        let mut lost = not_pending + expected.abs_diff(held.len()) as u64;
        if let (Some(service), Some(before)) = (&service, stats_before) {
            let after = service.handle().stats();
            // Every timer must still be pending, and none may have fired.
            lost += (self.spec.timers as u64).abs_diff(after.total_timers);
            lost += after.processed;
            self.remarks.push(format!(
                "{TICKTOCK} driver wake-ups during the {:?} measured: {} ({} timers live)",
                self.spec.wall,
                after.driver_wakeups - before.driver_wakeups,
                after.total_timers,
            ));
        }
        self.remarks.push(format!(
            "{:.3} ms of CPU in {:.3} s of wall time",
            cpu.as_secs_f64() * 1e3,
            wall.as_secs_f64()
        ));
        // Timers go first (cancelling them needs the service and the runtime), untimed.
        drop(held);
        drop(service);
        drop(runtime);
        let percent = 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(f64::MIN_POSITIVE);
        Ok(Sample::one(percent, 0, lost))
    }

    fn remarks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.remarks)
    }
}
