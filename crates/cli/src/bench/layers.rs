//! The layered-timeout workloads: `unified` (the combined deadline of four layers) and
//! `per-packet` (the timer work of one packet of a reliable connection).
//!
//! `unified` compares ticktock's [`UnifiedScheduler`], whose deadline is cached and kept exact
//! by the layer guards, with what a scheduler without the cache does: ask every layer for its
//! deadline through `&dyn TimeoutLayer` on every query (the seed's
//! `calculate_unified_deadline(layers)`, minus its time cache). Both hold the same four layers.
//!
//! `per-packet` compares ticktock's [`LayeredTimeouts`] (one service registration per
//! connection) with the same two layers on one registered tokio `Sleep` per connection, reset
//! to the earliest layer deadline after each packet (quinn's way). Per packet: a frame is sent,
//! acknowledged and a packet received; then the connection waits again (ticktock: a poll of
//! `next_timeouts`; tokio: `Sleep::reset` when the earliest deadline moved, then a poll of the
//! `Sleep`).

use std::any::Any;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use ticktock::{
    AckFrame, Instant, LayerEvent, LayerId, LayeredTimeouts, ReliabilityConfig, ReliabilityLayer,
    SchedulerStats, TimeoutCheckResult, TimeoutEvent, TimeoutLayer, TimerService, TimerStats,
    TimingConfig, TimingManager, UnifiedScheduler,
};
use tokio::runtime::Runtime;

use super::inputs::Pool;
use super::service::{TICKTOCK, TOKIO_SLEEP, current_thread, service_remark, start_service};
use super::workloads::{Sample, SampleRunner};
use crate::error::CliError;

/// The `unified` peer: no cache, every layer asked on every query.
pub const RECOMPUTE: &str = "recompute";

/// The `per-packet` floor: the same layer calls with no timer behind them.
pub const LAYERS_ONLY: &str = "layers only";

/// How far `now` moves per operation or packet.
const STEP: Duration = Duration::from_micros(1);

/// A layer whose deadline the workload sets directly (a user's own layer).
#[derive(Debug, Default)]
struct UserLayer {
    kind: u8,
    deadline: Option<Instant>,
}

impl TimeoutLayer for UserLayer {
    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn check_timeouts(&mut self, now: Instant) -> TimeoutCheckResult {
        let mut result = TimeoutCheckResult::empty(self.layer_name());
        if self.deadline.is_some_and(|deadline| deadline <= now) {
            self.deadline = None;
            result
                .events
                .push(LayerEvent::Timeout(TimeoutEvent::User(self.kind)));
        }
        result
    }

    fn layer_name(&self) -> &'static str {
        "user"
    }
}

fn timing_config() -> TimingConfig {
    TimingConfig {
        idle_timeout: Duration::from_secs(30),
        handshake_timeout: None,
        keep_alive: None,
    }
}

/// The four layers of `unified`, as built at `now`: timing, reliability with a frame in flight,
/// two user layers.
fn four_layers(now: Instant) -> Vec<Box<dyn TimeoutLayer>> {
    let mut reliability = ReliabilityLayer::new(ReliabilityConfig::default());
    reliability.on_frame_sent(Bytes::new(), now);
    vec![
        Box::new(TimingManager::new(timing_config(), now)),
        Box::new(reliability),
        Box::new(UserLayer {
            kind: 0,
            deadline: Some(now + Duration::from_secs(5)),
        }),
        Box::new(UserLayer {
            kind: 1,
            deadline: Some(now + Duration::from_secs(7)),
        }),
    ]
}

/// `unified`: queries of the combined deadline of four layers.
#[derive(Debug, Clone)]
pub struct UnifiedSpec {
    /// Queries per sample.
    pub queries: usize,
    /// Whether a layer changes before each query (else nothing changes between queries).
    pub change: bool,
    /// New user-layer deadlines, in ms from now.
    pub delays: Rc<Pool>,
}

impl UnifiedSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 2] = [TICKTOCK, RECOMPUTE];

    /// The row parameter.
    pub fn parameter(&self) -> String {
        if self.change {
            "4 layers, change + query".to_owned()
        } else {
            "4 layers, query".to_owned()
        }
    }

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Vec<Box<dyn SampleRunner>> {
        vec![
            Box::new(Unified::<Cached>::new(self.clone())),
            Box::new(Unified::<Recompute>::new(self.clone())),
        ]
    }
}

/// The two ways of answering "when is the next timeout of any layer".
trait Scheduler {
    const NAME: &'static str;
    fn build(now: Instant) -> Self;
    /// Layer 0 (timing) saw a packet at `now`.
    fn received(&mut self, now: Instant);
    /// User layer `which` (0 or 1) moves to `deadline`.
    fn set_user(&mut self, which: usize, deadline: Instant);
    fn unified(&mut self) -> Option<Instant>;
    /// The minimum asked of every layer, for the check after a sample.
    fn truth(&self) -> Option<Instant>;
}

struct Cached {
    scheduler: UnifiedScheduler,
    timing: LayerId<TimingManager>,
    reliability: LayerId<ReliabilityLayer>,
    users: [LayerId<UserLayer>; 2],
}

impl Scheduler for Cached {
    const NAME: &'static str = TICKTOCK;

    fn build(now: Instant) -> Self {
        let mut scheduler = UnifiedScheduler::new();
        let timing = scheduler.add_layer(TimingManager::new(timing_config(), now));
        let mut reliability = ReliabilityLayer::new(ReliabilityConfig::default());
        reliability.on_frame_sent(Bytes::new(), now);
        let reliability = scheduler.add_layer(reliability);
        let users = [0, 1].map(|kind| {
            scheduler.add_layer(UserLayer {
                kind,
                deadline: Some(now + Duration::from_secs(5 + 2 * u64::from(kind))),
            })
        });
        Self {
            scheduler,
            timing,
            reliability,
            users,
        }
    }

    #[inline(always)]
    fn received(&mut self, now: Instant) {
        if let Some(mut timing) = self.scheduler.layer_mut(self.timing) {
            timing.on_packet_received(now);
        }
    }

    #[inline(always)]
    fn set_user(&mut self, which: usize, deadline: Instant) {
        if let Some(mut user) = self.scheduler.layer_mut(self.users[which]) {
            user.deadline = Some(deadline);
        }
    }

    #[inline(always)]
    fn unified(&mut self) -> Option<Instant> {
        self.scheduler.calculate_unified_deadline()
    }

    fn truth(&self) -> Option<Instant> {
        let deadline = |layer: Option<&dyn TimeoutLayer>| layer.and_then(|l| l.next_deadline());
        let scheduler = &self.scheduler;
        [
            deadline(scheduler.layer(self.timing).map(|l| l as &dyn TimeoutLayer)),
            deadline(
                scheduler
                    .layer(self.reliability)
                    .map(|l| l as &dyn TimeoutLayer),
            ),
            deadline(
                scheduler
                    .layer(self.users[0])
                    .map(|l| l as &dyn TimeoutLayer),
            ),
            deadline(
                scheduler
                    .layer(self.users[1])
                    .map(|l| l as &dyn TimeoutLayer),
            ),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

struct Recompute {
    layers: Vec<Box<dyn TimeoutLayer>>,
}

impl Recompute {
    #[inline(always)]
    fn layer_mut<T: TimeoutLayer>(&mut self, index: usize) -> Option<&mut T> {
        let layer: &mut dyn Any = &mut **self.layers.get_mut(index)?;
        layer.downcast_mut()
    }
}

impl Scheduler for Recompute {
    const NAME: &'static str = RECOMPUTE;

    fn build(now: Instant) -> Self {
        Self {
            layers: four_layers(now),
        }
    }

    #[inline(always)]
    fn received(&mut self, now: Instant) {
        if let Some(timing) = self.layer_mut::<TimingManager>(0) {
            timing.on_packet_received(now);
        }
    }

    #[inline(always)]
    fn set_user(&mut self, which: usize, deadline: Instant) {
        if let Some(user) = self.layer_mut::<UserLayer>(2 + which) {
            user.deadline = Some(deadline);
        }
    }

    #[inline(always)]
    fn unified(&mut self) -> Option<Instant> {
        self.layers
            .iter()
            .filter_map(|layer| layer.next_deadline())
            .min()
    }

    fn truth(&self) -> Option<Instant> {
        self.layers
            .iter()
            .filter_map(|layer| layer.next_deadline())
            .min()
    }
}

struct Unified<S: Scheduler> {
    scheduler: S,
    spec: UnifiedSpec,
    now: Instant,
    cursor: usize,
}

impl<S: Scheduler> Unified<S> {
    fn new(spec: UnifiedSpec) -> Self {
        let now = Instant::now();
        Self {
            scheduler: S::build(now),
            spec,
            now,
            cursor: 0,
        }
    }
}

/// The timed loop; returns the time of the last operation and a checksum of the answers.
#[inline(never)]
fn unified_loop<S: Scheduler>(
    scheduler: &mut S,
    spec: &UnifiedSpec,
    mut now: Instant,
    first: usize,
) -> (Instant, u64) {
    let mut checksum = 0u64;
    for i in first..first + spec.queries {
        if spec.change {
            now += STEP;
            match i % 3 {
                0 => scheduler.received(now),
                which => {
                    scheduler.set_user(which - 1, now + Duration::from_millis(spec.delays.get(i)))
                }
            }
        }
        let deadline = black_box(scheduler.unified());
        checksum = checksum.wrapping_add(u64::from(deadline.is_some()));
    }
    (now, checksum)
}

impl<S: Scheduler> SampleRunner for Unified<S> {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let started = StdInstant::now();
        let (now, checksum) = unified_loop(&mut self.scheduler, &self.spec, self.now, self.cursor);
        let elapsed = started.elapsed();
        self.now = now;
        self.cursor += self.spec.queries;
        // Every layer has a deadline, so every answer must have been `Some`.
        let mut lost = (self.spec.queries as u64).abs_diff(checksum);
        lost += u64::from(self.scheduler.unified() != self.scheduler.truth());
        Ok(Sample::per_op(elapsed, self.spec.queries, 0, lost))
    }
}

/// `per-packet`: per-packet timer work across many reliable connections.
#[derive(Debug, Clone)]
pub struct PerPacketSpec {
    /// Connections.
    pub connections: usize,
    /// Packets per sample.
    pub packets: usize,
}

impl PerPacketSpec {
    /// The implementations, in row order.
    pub const IMPLEMENTATIONS: [&'static str; 3] = [TICKTOCK, TOKIO_SLEEP, LAYERS_ONLY];

    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        Ok(vec![
            Box::new(PerPacket::<LayeredConnection>::new(self.clone())?),
            Box::new(PerPacket::<SleepConnection>::new(self.clone())?),
            Box::new(PerPacket::<BareConnection>::new(self.clone())?),
        ])
    }
}

/// A reliable connection's timers, as `per-packet` drives them.
trait PacketTimers: Sized {
    const NAME: &'static str;
    /// A connection opened at `now`, waiting for its first timeout. Called inside the runtime.
    fn open(service: Option<&TimerService>, now: Instant) -> Self;
    /// One packet at `now`: a frame sent and acked, a packet received, then wait again.
    /// `false` if anything came out wrong.
    fn packet(&mut self, now: Instant, cx: &mut Context<'_>) -> bool;
    /// The earliest deadline the connection waits for, as its timer holds it.
    fn waiting_for(&mut self) -> Option<Instant>;
    /// The unified scheduler's counters, for implementations that have one.
    fn scheduler_stats(&self) -> Option<SchedulerStats> {
        None
    }
}

struct LayeredConnection {
    timeouts: LayeredTimeouts,
    timing: LayerId<TimingManager>,
    reliability: LayerId<ReliabilityLayer>,
}

impl PacketTimers for LayeredConnection {
    const NAME: &'static str = TICKTOCK;

    fn open(service: Option<&TimerService>, now: Instant) -> Self {
        let handle = match service {
            Some(service) => service.handle(),
            None => ticktock::global().clone(),
        };
        let mut timeouts = LayeredTimeouts::new(handle);
        let timing = timeouts.add_layer(TimingManager::new(timing_config(), now));
        let reliability = timeouts.add_layer(ReliabilityLayer::new(ReliabilityConfig::default()));
        // The first wait files the registration.
        let _ = timeouts.poll_timeouts(&mut Context::from_waker(Waker::noop()));
        Self {
            timeouts,
            timing,
            reliability,
        }
    }

    #[inline(always)]
    fn packet(&mut self, now: Instant, cx: &mut Context<'_>) -> bool {
        let mut ok = false;
        if let Some(mut reliability) = self.timeouts.layer_mut(self.reliability) {
            let sequence = reliability.on_frame_sent(Bytes::new(), now);
            let ack = AckFrame {
                next_expected: sequence + 1,
                selective: 0,
            };
            ok = reliability.on_ack(ack, now).newly_acked == 1;
        }
        if let Some(mut timing) = self.timeouts.layer_mut(self.timing) {
            timing.on_packet_received(now);
        }
        ok & self.timeouts.poll_timeouts(cx).is_pending()
    }

    fn waiting_for(&mut self) -> Option<Instant> {
        self.timeouts.unified_deadline()
    }

    fn scheduler_stats(&self) -> Option<SchedulerStats> {
        Some(self.timeouts.stats())
    }
}

struct SleepConnection {
    layers: BareConnection,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl PacketTimers for SleepConnection {
    const NAME: &'static str = TOKIO_SLEEP;

    fn open(service: Option<&TimerService>, now: Instant) -> Self {
        let layers = BareConnection::open(service, now);
        let mut sleep = Box::pin(tokio::time::sleep_until(now + Duration::from_secs(30)));
        // The first poll registers it with tokio's timer (30 s away: pending).
        let _ = sleep.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        Self { layers, sleep }
    }

    #[inline(always)]
    fn packet(&mut self, now: Instant, cx: &mut Context<'_>) -> bool {
        let ok = self.layers.packet(now, cx);
        if let Some(deadline) = self.layers.waiting_for()
            && deadline != self.sleep.deadline()
        {
            self.sleep.as_mut().reset(deadline);
        }
        // Wait again, as a select loop does.
        ok & self.sleep.as_mut().poll(cx).is_pending()
    }

    fn waiting_for(&mut self) -> Option<Instant> {
        Some(self.sleep.deadline())
    }
}

/// The layers with no timer: what `per-packet` costs before any timer work.
struct BareConnection {
    timing: TimingManager,
    reliability: ReliabilityLayer,
}

impl PacketTimers for BareConnection {
    const NAME: &'static str = LAYERS_ONLY;

    fn open(_service: Option<&TimerService>, now: Instant) -> Self {
        Self {
            timing: TimingManager::new(timing_config(), now),
            reliability: ReliabilityLayer::new(ReliabilityConfig::default()),
        }
    }

    #[inline(always)]
    fn packet(&mut self, now: Instant, _cx: &mut Context<'_>) -> bool {
        let sequence = self.reliability.on_frame_sent(Bytes::new(), now);
        let ack = AckFrame {
            next_expected: sequence + 1,
            selective: 0,
        };
        let ok = self.reliability.on_ack(ack, now).newly_acked == 1;
        self.timing.on_packet_received(now);
        ok
    }

    fn waiting_for(&mut self) -> Option<Instant> {
        match (
            self.timing.next_deadline(),
            self.reliability.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct PerPacket<C: PacketTimers> {
    // Declared first: dropped before the service and the runtime they are registered with.
    connections: Vec<C>,
    service: Option<TimerService>,
    runtime: Runtime,
    spec: PerPacketSpec,
    now: Instant,
    cursor: usize,
    before: Option<TimerStats>,
}

impl<C: PacketTimers> PerPacket<C> {
    fn new(spec: PerPacketSpec) -> Result<Self, CliError> {
        let runtime = current_thread()?;
        let service = if C::NAME == TICKTOCK {
            Some(start_service(&runtime, 1, spec.connections)?)
        } else {
            None
        };
        let now = {
            let _context = runtime.enter();
            Instant::now()
        };
        let connections = {
            let _context = runtime.enter();
            (0..spec.connections)
                .map(|_| C::open(service.as_ref(), now))
                .collect()
        };
        let before = service.as_ref().map(|service| service.handle().stats());
        Ok(Self {
            connections,
            service,
            runtime,
            spec,
            now,
            cursor: 0,
            before,
        })
    }
}

/// The timed loop: `packets` packets round-robin from connection `first % N` on. Returns the
/// time of the last packet and the packets that came out wrong.
#[inline(never)]
fn packet_loop<C: PacketTimers>(
    connections: &mut [C],
    first: usize,
    packets: usize,
    mut now: Instant,
) -> (Instant, u64) {
    let mut cx = Context::from_waker(Waker::noop());
    let count = connections.len();
    let mut k = first % count;
    let mut failed = 0;
    for _ in 0..packets {
        now += STEP;
        failed += u64::from(!connections[k].packet(now, &mut cx));
        k += 1;
        if k == count {
            k = 0;
        }
    }
    (now, black_box(failed))
}

impl<C: PacketTimers> SampleRunner for PerPacket<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        if self.connections.is_empty() {
            return Ok(Sample::one(0.0, 0, self.spec.packets as u64));
        }
        let (first, start) = (self.cursor, self.now);
        let (elapsed, end, failed) = {
            let _context = self.runtime.enter();
            let started = StdInstant::now();
            let (end, failed) = packet_loop(&mut self.connections, first, self.spec.packets, start);
            (started.elapsed(), end, failed)
        };
        self.now = end;
        self.cursor = first.wrapping_add(self.spec.packets);
        // Every connection that got a packet waits for its idle timeout, 30 s after it.
        let count = self.connections.len();
        let mut wrong = 0;
        for offset in 0..self.spec.packets.min(count) {
            let packet = self.spec.packets - offset;
            let k = (first + packet - 1) % count;
            let sent = start + STEP * u32::try_from(packet).unwrap_or(u32::MAX);
            let want = sent + Duration::from_secs(30);
            wrong += u64::from(self.connections[k].waiting_for() != Some(want));
        }
        Ok(Sample::per_op(
            elapsed,
            self.spec.packets,
            0,
            failed + wrong,
        ))
    }

    fn remarks(&mut self) -> Vec<String> {
        let mut remarks = Vec::new();
        if let (Some(service), Some(before)) = (&self.service, &self.before) {
            remarks.push(service_remark(
                &service.handle(),
                before,
                "over all packets, warm-up included (armed and reset count wheel operations: \
                 0 means no packet took the shard's lock)",
            ));
        }
        let (mut queries, mut hits, mut checks, mut run) = (0, 0, 0, 0);
        for stats in self.connections.iter().filter_map(C::scheduler_stats) {
            queries += stats.deadline_queries;
            hits += stats.cache_hits;
            checks += stats.total_checks;
            run += stats.layers_run;
        }
        if queries > 0 {
            remarks.push(format!(
                "unified schedulers: {queries} deadline queries, {:.1}% from the cache; \
                 {checks} checks ran {run} layers",
                100.0 * hits as f64 / queries as f64
            ));
        }
        remarks
    }
}
