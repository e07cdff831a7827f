//! `lateness`: how late timers fire on the real clock, with many of them live.
//!
//! `timers` deadlines are drawn uniformly over `span`, which starts `lead` after the sample
//! starts (the lead is the time to create and register every timer). They are dealt out to
//! `tasks` tasks on a 2-worker multi-thread runtime; each task creates all of its timers, polls
//! each once so that all of them are registered (live) at once, then awaits them in deadline
//! order and, when each resolves, records `now - deadline`: its lateness, as the awaiting task
//! sees it (timer resolution plus driver and scheduling delay). A negative value is an early
//! fire. Rows: p50, p99 and max of the lateness over all timers, in µs (exact quantiles of
//! every value, nearest rank).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};

use rand::Rng;
use rand::rngs::SmallRng;
use ticktock::{Instant, TimerHandle, TimerService};
use tokio::runtime::Runtime;

use super::{TICKTOCK, TOKIO_SLEEP, multi_thread, start_service};
use crate::bench::workloads::{Sample, SampleRunner};
use crate::error::CliError;

/// Worker threads of the runtime the timers run on (and ticktock shards).
const WORKERS: usize = 2;

/// Live timers firing over a span of real time.
#[derive(Debug, Clone)]
pub struct LatenessSpec {
    /// Timers.
    pub timers: usize,
    /// Deadlines are uniform over this span.
    pub span: Duration,
    /// Time from the start of a sample to the start of the span.
    pub lead: Duration,
    /// Deadline offsets from the start of the span, in ns: one list per task, each sorted.
    pub tasks: Arc<Vec<Vec<u64>>>,
}

impl LatenessSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 2] = [TICKTOCK, TOKIO_SLEEP];

    /// The rows each sample fills, in order.
    pub const ROWS: [&'static str; 3] = ["p50", "p99", "max"];

    /// `timers` deadlines uniform over `span`, dealt round-robin to at most `tasks` tasks.
    pub fn new(
        rng: &mut SmallRng,
        timers: usize,
        span: Duration,
        lead: Duration,
        tasks: usize,
    ) -> Self {
        let span_nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        let tasks = tasks.clamp(1, timers.max(1));
        let mut lists: Vec<Vec<u64>> = (0..tasks)
            .map(|_| Vec::with_capacity(timers.div_ceil(tasks)))
            .collect();
        for i in 0..timers {
            lists[i % tasks].push(rng.random_range(0..=span_nanos));
        }
        for list in &mut lists {
            list.sort_unstable();
        }
        Self {
            timers,
            span,
            lead,
            tasks: Arc::new(lists),
        }
    }

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        Ok(vec![
            Box::new(Lateness::<ticktock::Sleep>::new(self.clone())?),
            Box::new(Lateness::<Pin<Box<tokio::time::Sleep>>>::new(self.clone())?),
        ])
    }
}

/// A timer as a task of this workload holds it.
trait Timer: Send + 'static {
    const NAME: &'static str;
    /// What creating one needs (ticktock: a handle to the service).
    type Source: Clone + Send + 'static;

    /// The service to run, if any, and the source of timers, on `runtime`.
    fn start(
        runtime: &Runtime,
        timers: usize,
    ) -> Result<(Option<TimerService>, Self::Source), CliError>;

    /// A timer for `deadline` (not registered until polled).
    fn at(source: &Self::Source, deadline: Instant) -> Self;

    /// Polls it: `Ready(true)` once the deadline passed, `Ready(false)` if it failed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<bool>;
}

impl Timer for ticktock::Sleep {
    const NAME: &'static str = TICKTOCK;
    type Source = TimerHandle;

    fn start(
        runtime: &Runtime,
        timers: usize,
    ) -> Result<(Option<TimerService>, TimerHandle), CliError> {
        let service = start_service(runtime, WORKERS, timers.div_ceil(WORKERS))?;
        let handle = service.handle();
        Ok((Some(service), handle))
    }

    fn at(handle: &TimerHandle, deadline: Instant) -> Self {
        handle.sleep_until(deadline)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        Pin::new(self).poll(cx).map(|result| result.is_ok())
    }
}

impl Timer for Pin<Box<tokio::time::Sleep>> {
    const NAME: &'static str = TOKIO_SLEEP;
    type Source = ();

    fn start(_runtime: &Runtime, _timers: usize) -> Result<(Option<TimerService>, ()), CliError> {
        Ok((None, ()))
    }

    fn at((): &(), deadline: Instant) -> Self {
        Box::pin(tokio::time::sleep_until(deadline))
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        self.as_mut().poll(cx).map(|()| true)
    }
}

struct Lateness<T: Timer> {
    service: Option<TimerService>,
    source: T::Source,
    runtime: Runtime,
    spec: LatenessSpec,
    remarks: Vec<String>,
}

impl<T: Timer> Lateness<T> {
    fn new(spec: LatenessSpec) -> Result<Self, CliError> {
        let runtime = multi_thread(WORKERS)?;
        let (service, source) = T::start(&runtime, spec.timers)?;
        Ok(Self {
            service,
            source,
            runtime,
            spec,
            remarks: Vec::new(),
        })
    }
}

/// What one task saw.
struct TaskOutcome {
    /// `fire time - deadline` per timer, in ns (negative: early).
    late: Vec<i64>,
    /// Timers found already due at registration (the lead was too short for them).
    due_at_setup: u64,
    /// Timers that resolved with an error.
    failed: u64,
    /// When the task had registered every timer.
    registered: StdInstant,
}

/// A task's life: create and register every timer, then await each in deadline order.
async fn run_task<T: Timer>(
    source: T::Source,
    base: Instant,
    lists: Arc<Vec<Vec<u64>>>,
    task: usize,
) -> TaskOutcome {
    let offsets = lists.get(task).map_or(&[][..], Vec::as_slice);
    let deadlines: Vec<Instant> = offsets
        .iter()
        .map(|&nanos| base + Duration::from_nanos(nanos))
        .collect();
    let mut timers: Vec<T> = deadlines.iter().map(|&at| T::at(&source, at)).collect();
    let due_at_setup = poll_fn(|cx| {
        let mut due = 0;
        for timer in &mut timers {
            due += usize::from(timer.poll_timer(cx).is_ready());
        }
        Poll::Ready(due as u64)
    })
    .await;
    let registered = StdInstant::now();
    let mut late = Vec::with_capacity(timers.len());
    let mut failed = 0;
    for (timer, deadline) in timers.iter_mut().zip(&deadlines) {
        let ok = poll_fn(|cx| timer.poll_timer(cx)).await;
        let fired = StdInstant::now();
        late.push(signed_nanos(fired, deadline.into_std()));
        failed += u64::from(!ok);
    }
    TaskOutcome {
        late,
        due_at_setup,
        failed,
        registered,
    }
}

/// `a - b` in ns, negative when `a` is earlier.
fn signed_nanos(a: StdInstant, b: StdInstant) -> i64 {
    match a.checked_duration_since(b) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => -i64::try_from(b.duration_since(a).as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The nearest-rank `q` quantile of sorted `values` (`q` in 0..=1).
fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl<T: Timer> SampleRunner for Lateness<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let started = StdInstant::now();
        let base = {
            let _context = self.runtime.enter();
            Instant::now() + self.spec.lead
        };
        let handles: Vec<_> = (0..self.spec.tasks.len())
            .map(|task| {
                self.runtime.spawn(run_task::<T>(
                    self.source.clone(),
                    base,
                    Arc::clone(&self.spec.tasks),
                    task,
                ))
            })
            .collect();
        let outcomes = self.runtime.block_on(async {
            let mut outcomes = Vec::with_capacity(handles.len());
            for handle in handles {
                outcomes.push(handle.await?);
            }
            Ok::<_, CliError>(outcomes)
        })?;
        let mut late: Vec<i64> = Vec::with_capacity(self.spec.timers);
        let (mut due_at_setup, mut failed) = (0, 0);
        let mut registered = started;
        for outcome in outcomes {
            late.extend_from_slice(&outcome.late);
            due_at_setup += outcome.due_at_setup;
            failed += outcome.failed;
            registered = registered.max(outcome.registered);
        }
        late.sort_unstable();
        let early = late.iter().take_while(|&&ns| ns < 0).count() as u64;
        let lost = failed + self.spec.timers.abs_diff(late.len()) as u64;
        let micros = |ns: i64| ns as f64 / 1000.0;
        let values = vec![
            micros(quantile(&late, 0.50)),
            micros(quantile(&late, 0.99)),
            micros(late.last().copied().unwrap_or(0)),
        ];
        self.remarks.push(format!(
            "{} timers over {:?}: every timer registered {:.0} ms into the {:.0} ms lead; \
             {due_at_setup} were already due when registered; earliest fire {:.1} µs from its \
             deadline",
            late.len(),
            self.spec.span,
            (registered - started).as_secs_f64() * 1e3,
            self.spec.lead.as_secs_f64() * 1e3,
            micros(late.first().copied().unwrap_or(0)),
        ));
        if let Some(service) = &self.service {
            let stats = service.handle().stats();
            self.remarks.push(format!(
                "{TICKTOCK}'s own lateness histogram (driver's fire time - tick deadline, \
                 before the task runs): p50 {:?}, p99 {:?}, max {:?} over {} fires; \
                 driver wake-ups {}",
                stats.lateness.p50,
                stats.lateness.p99,
                stats.lateness.max,
                stats.lateness.samples,
                stats.driver_wakeups,
            ));
        }
        Ok(Sample {
            values,
            early,
            lost,
        })
    }

    fn remarks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.remarks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        assert_eq!(quantile(&values, 0.0), 1);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.99), 7);
    }

    #[test]
    fn signed_nanos_is_negative_for_early() {
        let now = StdInstant::now();
        let later = now + Duration::from_micros(3);
        assert_eq!(signed_nanos(later, now), 3000);
        assert_eq!(signed_nanos(now, later), -3000);
    }

    #[test]
    fn deadlines_are_dealt_sorted_and_within_the_span() {
        let mut rng = crate::bench::inputs::rng(1, 2);
        let spec = LatenessSpec::new(
            &mut rng,
            1001,
            Duration::from_millis(10),
            Duration::ZERO,
            10,
        );
        assert_eq!(spec.tasks.len(), 10);
        assert_eq!(spec.tasks.iter().map(Vec::len).sum::<usize>(), 1001);
        for list in spec.tasks.iter() {
            assert!(list.is_sorted());
            assert!(list.iter().all(|&ns| ns <= 10_000_000));
        }
    }
}
