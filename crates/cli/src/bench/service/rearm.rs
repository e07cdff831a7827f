//! `rearm`: the per-packet idle-timeout re-arm of many connections.
//!
//! `connections` connections each register a 30 s idle timeout once (before anything is timed).
//! Then each simulated packet picks a connection (round-robin, or from a seeded random
//! sequence) and pushes its idle timeout to `now + 30 s`, with `now` advancing by 1 µs per
//! packet from the time the runner was built, so every re-arm moves a deadline later:
//!
//! - ticktock: `ConnectionTimers::reset_idle_timeout_at(now, &config)`, with the idle timer
//!   coarse as by default (its deadline rounded up, at most an eighth of the timeout);
//! - tokio: `Sleep::reset(now + 30 s)` on a registered, boxed `tokio::time::Sleep` per
//!   connection (what quinn does per packet).
//!
//! Both run on a current-thread runtime with the time driver on tokio's real clock. After each
//! sample every connection's deadline is checked against the last packet it got (outside the
//! timing); a mismatch counts as lost.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant as StdInstant};

use rand::Rng;
use rand::rngs::SmallRng;
use ticktock::{
    ConnectionConfig, ConnectionTimers, Instant, TimeoutEvent, TimerService, TimerStats,
};
use tokio::runtime::Runtime;

use super::{RESOLUTION, TICKTOCK, TOKIO_SLEEP, current_thread, service_remark, start_service};
use crate::bench::inputs::POOL_LEN;
use crate::bench::workloads::{Sample, SampleRunner};
use crate::error::CliError;

/// How far `now` moves per packet.
const PACKET_GAP: Duration = Duration::from_micros(1);

/// Which connection each packet goes to.
#[derive(Debug, Clone)]
pub enum RearmOrder {
    /// 0, 1, 2, …, wrapping around.
    RoundRobin,
    /// A seeded random sequence (a power of two long, at least 4 per connection), read
    /// round-robin.
    Random(Rc<Vec<u32>>),
}

impl RearmOrder {
    /// A random order over `connections` connections drawn from `rng`.
    pub fn random(rng: &mut SmallRng, connections: usize) -> Self {
        let connections = connections.clamp(1, u32::MAX as usize) as u32;
        let len = (connections as usize * 4).next_power_of_two().max(POOL_LEN);
        Self::Random(Rc::new(
            (0..len).map(|_| rng.random_range(0..connections)).collect(),
        ))
    }

    fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Random(_) => "random",
        }
    }

    /// The connection packet `index` goes to.
    #[inline(always)]
    fn pick(&self, index: usize, connections: usize) -> usize {
        match self {
            Self::RoundRobin => index % connections,
            Self::Random(picks) => picks[index & (picks.len() - 1)] as usize,
        }
    }
}

/// Idle-timeout re-arms among `connections` connections.
#[derive(Debug, Clone)]
pub struct RearmSpec {
    /// Connections (each one idle timer).
    pub connections: usize,
    /// Re-arms per sample.
    pub rearms: usize,
    /// Which connection each packet goes to.
    pub order: RearmOrder,
}

impl RearmSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 2] = [TICKTOCK, TOKIO_SLEEP];

    /// The row parameter: connection count and order.
    pub fn parameter(&self) -> String {
        format!("{} {}", self.connections, self.order.name())
    }

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        Ok(vec![
            Box::new(Rearm::<ConnectionTimers>::new(self.clone())?),
            Box::new(Rearm::<Pin<Box<tokio::time::Sleep>>>::new(self.clone())?),
        ])
    }
}

/// A connection's idle timer, as the workload drives it.
trait IdleTimer: Sized {
    const NAME: &'static str;

    /// `count` connections, each with its idle timer registered `config.idle_timeout` ahead.
    /// Called inside the runtime.
    fn register(
        service: Option<&TimerService>,
        count: usize,
        config: &ConnectionConfig,
    ) -> Result<Vec<Self>, CliError>;

    /// The packet path: the idle timer to `now + config.idle_timeout`. `false` on failure.
    fn rearm(&mut self, now: Instant, config: &ConnectionConfig) -> bool;

    /// The idle timer's deadline as the timer holds it.
    fn idle_deadline(&self) -> Option<Instant>;

    /// How much later than asked the held deadline may be: ticktock's idle timers are coarse
    /// by default (up to an eighth of the timeout later, to spare the wheel cascades).
    fn slack(config: &ConnectionConfig) -> Duration;
}

impl IdleTimer for ConnectionTimers {
    const NAME: &'static str = TICKTOCK;

    fn register(
        service: Option<&TimerService>,
        count: usize,
        config: &ConnectionConfig,
    ) -> Result<Vec<Self>, CliError> {
        let Some(service) = service else {
            return Ok(Vec::new());
        };
        let mut connections = Vec::with_capacity(count);
        for id in 0..count {
            let mut connection = ConnectionTimers::new(id as u64, service.handle());
            // Only fails after shutdown, which cannot happen here; a connection without its
            // timer fails the deadline check and counts as lost.
            connection.register_idle_timeout(config).ok();
            connections.push(connection);
        }
        Ok(connections)
    }

    #[inline(always)]
    fn rearm(&mut self, now: Instant, config: &ConnectionConfig) -> bool {
        self.reset_idle_timeout_at(now, config).is_ok()
    }

    fn idle_deadline(&self) -> Option<Instant> {
        self.deadline(TimeoutEvent::IdleTimeout)
    }

    fn slack(config: &ConnectionConfig) -> Duration {
        config.idle_timeout / 8
    }
}

impl IdleTimer for Pin<Box<tokio::time::Sleep>> {
    const NAME: &'static str = TOKIO_SLEEP;

    fn register(
        _service: Option<&TimerService>,
        count: usize,
        config: &ConnectionConfig,
    ) -> Result<Vec<Self>, CliError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut sleeps = Vec::with_capacity(count);
        for _ in 0..count {
            let mut sleep = Box::pin(tokio::time::sleep(config.idle_timeout));
            // The first poll registers it with tokio's timer (it is 30 s away: pending).
            let _ = sleep.as_mut().poll(&mut cx);
            sleeps.push(sleep);
        }
        Ok(sleeps)
    }

    #[inline(always)]
    fn rearm(&mut self, now: Instant, config: &ConnectionConfig) -> bool {
        self.as_mut().reset(now + config.idle_timeout);
        true
    }

    fn idle_deadline(&self) -> Option<Instant> {
        Some(self.deadline())
    }

    fn slack(_config: &ConnectionConfig) -> Duration {
        Duration::ZERO
    }
}

struct Rearm<C: IdleTimer> {
    // Declared first: dropped before the service and the runtime they are registered with.
    connections: Vec<C>,
    service: Option<TimerService>,
    runtime: Runtime,
    spec: RearmSpec,
    config: ConnectionConfig,
    /// The time of the last packet.
    now: Instant,
    /// Packets sent so far (indexes the order).
    cursor: usize,
    /// Scratch for the check: per connection, the last packet of the sample that went to it.
    last: Vec<usize>,
    /// The service's counters once every connection was registered.
    before: Option<TimerStats>,
}

impl<C: IdleTimer> Rearm<C> {
    fn new(spec: RearmSpec) -> Result<Self, CliError> {
        let runtime = current_thread()?;
        let service = if C::NAME == TICKTOCK {
            Some(start_service(&runtime, 1, spec.connections)?)
        } else {
            None
        };
        let config = ConnectionConfig::default();
        let connections =
            runtime.block_on(async { C::register(service.as_ref(), spec.connections, &config) })?;
        let before = service.as_ref().map(|service| service.handle().stats());
        let now = {
            let _context = runtime.enter();
            Instant::now()
        };
        Ok(Self {
            last: vec![usize::MAX; spec.connections],
            connections,
            service,
            runtime,
            spec,
            config,
            now,
            cursor: 0,
            before,
        })
    }

    /// Connections whose idle deadline is not the one their last packet of this sample (from
    /// `first` on, sent at `start + (i - first + 1) µs`) set.
    fn mismatches(&mut self, first: usize, start: Instant) -> u64 {
        let count = self.connections.len();
        self.last.fill(usize::MAX);
        for i in first..first.wrapping_add(self.spec.rearms) {
            self.last[self.spec.order.pick(i, count)] = i;
        }
        let mut wrong = 0;
        for (connection, &last) in self.connections.iter().zip(&self.last) {
            if last == usize::MAX {
                continue;
            }
            let packets = last.wrapping_sub(first) as u64 + 1;
            let sent = start + Duration::from_nanos(PACKET_GAP.as_nanos() as u64 * packets);
            let want = sent + self.config.idle_timeout;
            // ticktock keeps deadlines in whole ticks, rounded up (coarse ones further).
            let slack = C::slack(&self.config);
            let ok = connection
                .idle_deadline()
                .is_some_and(|got| got >= want && got < want + RESOLUTION + slack);
            wrong += u64::from(!ok);
        }
        wrong
    }
}

/// The timed loop: `rearms` packets from packet `first` on, each `PACKET_GAP` after the last.
/// Returns the time of the last packet and the re-arms that failed.
#[inline(never)]
fn rearm_loop<C: IdleTimer>(
    connections: &mut [C],
    order: &RearmOrder,
    config: &ConnectionConfig,
    first: usize,
    rearms: usize,
    mut now: Instant,
) -> (Instant, u64) {
    let count = connections.len();
    let mut failed = 0;
    match order {
        RearmOrder::RoundRobin => {
            let mut k = first % count;
            for _ in 0..rearms {
                now += PACKET_GAP;
                failed += u64::from(!connections[k].rearm(now, config));
                k += 1;
                if k == count {
                    k = 0;
                }
            }
        }
        RearmOrder::Random(picks) => {
            let mask = picks.len() - 1;
            for i in first..first.wrapping_add(rearms) {
                now += PACKET_GAP;
                let k = picks[i & mask] as usize;
                failed += u64::from(!connections[k].rearm(now, config));
            }
        }
    }
    (now, black_box(failed))
}

impl<C: IdleTimer> SampleRunner for Rearm<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        if self.connections.is_empty() {
            return Ok(Sample::one(0.0, 0, self.spec.rearms as u64));
        }
        let (first, start) = (self.cursor, self.now);
        let (elapsed, end, failed) = {
            let _context = self.runtime.enter();
            let started = StdInstant::now();
            let (end, failed) = rearm_loop(
                &mut self.connections,
                &self.spec.order,
                &self.config,
                first,
                self.spec.rearms,
                start,
            );
            (started.elapsed(), end, failed)
        };
        self.now = end;
        self.cursor = first.wrapping_add(self.spec.rearms);
        let lost = failed + self.mismatches(first, start);
        Ok(Sample::per_op(elapsed, self.spec.rearms, 0, lost))
    }

    fn remarks(&mut self) -> Vec<String> {
        match (&self.service, &self.before) {
            (Some(service), Some(before)) => vec![service_remark(
                &service.handle(),
                before,
                "over all re-arms, warm-up included (armed and reset count wheel operations: \
                 0 means every re-arm took the lock-free path)",
            )],
            _ => Vec::new(),
        }
    }
}
