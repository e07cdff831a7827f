//! One simulated connection: its protocol logic (the sans-IO layers, the same for either
//! backend), the bookkeeping of its timer operations, and its life on each backend.
//!
//! The connection's timeouts come from a `TimingManager` (idle, handshake, path validation,
//! keep-alive) and a `ReliabilityLayer` (the RTO). After every event the five deadlines are
//! compared with the previous ones, which is where timer operations are counted — by what the
//! protocol asked for, so both backends count the same operations for the same traffic.
//! - ticktock: endpoint tasks (one per worker) own their connections in a table and get
//!   each batch of packets from their inbox (see [`Inbox`]); every connection's earliest deadline is a row
//!   of an `EndpointTimers` (one service registration per endpoint task), which hands back the
//!   connections that are due.
//! - ticktock-tasks: a task per connection, its layers in a `LayeredTimeouts` (one service
//!   registration per connection).
//! - tokio: a task per connection, one `Sleep` per kind, reset when its deadline moves, as
//!   quinn re-arms its timers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rand::rngs::SmallRng;
use ticktock::{
    AckFrame, EndpointTimers, Instant, LayerDeadlines, LayerEvent, LayeredTimeouts, Precision,
    ReliabilityConfig, ReliabilityLayer, RtoConfig, TimeoutCheckResult, TimeoutEvent, TimeoutLayer,
    TimerHandle, TimingConfig, TimingManager,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::results::WheelWork;
use super::stats::{Class, Counters, Op};
use super::traffic::{ACK, BATCH, Slot, Slots, Source};

/// The timer kinds, in deadline-array order.
pub const KINDS: [TimeoutEvent; 5] = [
    TimeoutEvent::IdleTimeout,
    TimeoutEvent::ConnectionTimeout,
    TimeoutEvent::PathValidationTimeout,
    TimeoutEvent::KeepAlive,
    TimeoutEvent::RetransmissionTimeout,
];

/// Timeout settings of every connection (a busy QUIC server's, shortened so a run of seconds
/// sees every kind fire).
pub fn timing_config() -> TimingConfig {
    TimingConfig {
        idle_timeout: Duration::from_secs(3),
        handshake_timeout: Some(Duration::from_secs(1)),
        keep_alive: Some(Duration::from_secs(1)),
    }
}

/// RTOs as QUIC-style stacks use them (lower minimum than TCP's).
pub fn reliability_config() -> ReliabilityConfig {
    ReliabilityConfig {
        rto: RtoConfig {
            initial: Duration::from_millis(300),
            min: Duration::from_millis(50),
            max: Duration::from_secs(2),
            granularity: Duration::from_millis(1),
        },
        max_retries: 6,
    }
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    Idle,
    Handshake,
    GaveUp,
}

/// The protocol state besides the layers: loss bookkeeping and deadline tracking.
struct Protocol {
    /// Frames sent and lost, not yet retransmitted successfully (ascending).
    lost: Vec<u64>,
    /// Packets received on this connection.
    received: u64,
    validating: bool,
    /// The five deadlines as last seen (for counting operations and lateness).
    deadlines: [Option<Instant>; 5],
}

impl Protocol {
    fn new() -> Self {
        Self {
            lost: Vec::new(),
            received: 0,
            validating: false,
            deadlines: [None; 5],
        }
    }

    /// The acknowledgment the peer sends for what it got of frames below `next_sequence`.
    fn ack(&self, next_sequence: u64) -> AckFrame {
        let next_expected = self.lost.first().copied().unwrap_or(next_sequence);
        let mut selective = 0u64;
        for bit in 0..64 {
            let sequence = next_expected + 1 + bit;
            if sequence >= next_sequence {
                break;
            }
            if self.lost.binary_search(&sequence).is_err() {
                selective |= 1 << bit;
            }
        }
        AckFrame {
            next_expected,
            selective,
        }
    }

    /// Counts the operations that turned `self.deadlines` into `now`'s.
    fn account(&mut self, deadlines: [Option<Instant>; 5], counters: &Counters) {
        for (old, new) in self.deadlines.iter().zip(deadlines) {
            match (*old, new) {
                (None, Some(_)) => counters.op(Op::Armed),
                (Some(_), None) => counters.op(Op::Cancelled),
                (Some(a), Some(b)) if b > a => counters.op(Op::Postponed),
                (Some(a), Some(b)) if b < a => counters.op(Op::Advanced),
                _ => {}
            }
        }
        let live = deadlines.iter().flatten().count() as i64
            - self.deadlines.iter().flatten().count() as i64;
        counters.live(live);
        self.deadlines = deadlines;
    }

    /// Timer `kind` fired at `now`: its lateness is recorded (or an early fire counted) and it
    /// is no longer set, so a re-arm counts as one.
    fn fired(&mut self, kind: usize, now: Instant, counters: &Counters) {
        counters.op(Op::Fired);
        let class = match KINDS[kind] {
            TimeoutEvent::IdleTimeout | TimeoutEvent::KeepAlive => Class::IdleKeepAlive,
            _ => Class::Exact,
        };
        match self.deadlines[kind] {
            Some(deadline) if deadline <= now => {
                counters.lateness(class, now.duration_since(deadline));
            }
            _ => counters.early(),
        }
        if self.deadlines[kind].take().is_some() {
            counters.live(-1);
        }
    }
}

/// The timing layer's four deadlines, in `KINDS` order.
fn timing_deadlines(timing: &TimingManager) -> [Option<Instant>; 4] {
    [0, 1, 2, 3].map(|kind| timing.deadline(KINDS[kind]))
}

fn deadlines(timing: &TimingManager, reliability: &ReliabilityLayer) -> [Option<Instant>; 5] {
    let [idle, handshake, path, keep_alive] = timing_deadlines(timing);
    [
        idle,
        handshake,
        path,
        keep_alive,
        reliability.next_deadline(),
    ]
}

/// A packet arrived at `now`: the timing side of it.
fn receive(
    timing: &mut TimingManager,
    protocol: &mut Protocol,
    rng: &mut SmallRng,
    now: Instant,
    migration: f64,
) {
    protocol.received += 1;
    timing.on_packet_received(now);
    if protocol.received == 1 {
        // The peer's first packet completes the handshake.
        timing.on_established();
    }
    if protocol.validating && rng.random_bool(0.5) {
        timing.on_path_validated();
        protocol.validating = false;
    } else if !protocol.validating && rng.random_bool(migration) {
        timing.start_path_validation(now, Duration::from_millis(500));
        protocol.validating = true;
    }
    // The answer this connection sends.
    timing.on_packet_sent(now);
}

/// The packet's reliability side: the peer's ack of earlier frames, and the answer frame.
fn exchange(
    reliability: &mut ReliabilityLayer,
    protocol: &mut Protocol,
    rng: &mut SmallRng,
    now: Instant,
    loss: f64,
) {
    let ack = protocol.ack(reliability.next_sequence());
    reliability.on_ack(ack, now);
    let sequence = reliability.on_frame_sent(Bytes::new(), now);
    if rng.random_bool(loss) {
        protocol.lost.push(sequence);
    }
}

/// The peer's acknowledgment of what it got so far arrives on its own.
fn acknowledge(reliability: &mut ReliabilityLayer, protocol: &Protocol, now: Instant) {
    let ack = protocol.ack(reliability.next_sequence());
    reliability.on_ack(ack, now);
}

/// Handles what the layers reported at `now`; returns how the connection closes, if it does.
fn settle(
    results: &[TimeoutCheckResult],
    protocol: &mut Protocol,
    rng: &mut SmallRng,
    now: Instant,
    loss: f64,
    counters: &Counters,
) -> Option<Close> {
    let mut close = None;
    for result in results {
        for event in &result.events {
            match event {
                LayerEvent::Timeout(kind) => {
                    if let Some(index) = KINDS.iter().position(|k| k == kind) {
                        protocol.fired(index, now, counters);
                    }
                    match kind {
                        TimeoutEvent::IdleTimeout => close = Some(Close::Idle),
                        TimeoutEvent::ConnectionTimeout => close = close.or(Some(Close::Handshake)),
                        _ => {}
                    }
                }
                _ => close = close.or(Some(Close::GaveUp)),
            }
        }
        for frame in &result.frames_to_retransmit {
            if !rng.random_bool(loss) {
                protocol.lost.retain(|&sequence| sequence != frame.sequence);
            }
        }
    }
    close
}

/// What every connection of a run shares.
pub struct Shared {
    pub counters: Arc<Counters>,
    pub loss: f64,
    pub migration: f64,
    /// How exactly ticktock meets idle and keep-alive deadlines.
    pub idle_precision: Precision,
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// The endpoint tables' wheel work, added by each endpoint task as it ends.
    pub tables: std::sync::Mutex<WheelWork>,
    /// Packets the saturated sources drew, added by each endpoint or dispatcher as it ends.
    pub offered: std::sync::atomic::AtomicU64,
}

/// Waits for the next packet; `false` when it was the run's end that woke the connection.
async fn packet(slot: &Slot, shared: &Shared) -> bool {
    slot.packet.notified().await;
    !shared.stop.load(Ordering::Relaxed)
}

/// Waits for the peer's next acknowledgment; `false` when it was the run's end.
async fn acknowledgment(slot: &Slot, shared: &Shared) -> bool {
    slot.ack.notified().await;
    !shared.stop.load(Ordering::Relaxed)
}

/// Runs connections in `slot` on the ticktock service until the run stops.
pub async fn run_ticktock(
    slots: Arc<Slots>,
    index: usize,
    handle: TimerHandle,
    shared: Arc<Shared>,
    mut rng: SmallRng,
) {
    let slot = &slots.wakes[index];
    while !shared.stop.load(Ordering::Relaxed) {
        shared.counters.opened();
        let mut timeouts = LayeredTimeouts::new(handle.clone());
        let now = timeouts.now();
        let timing = timeouts.add_layer(
            TimingManager::new(timing_config(), now)
                .with_precision(TimeoutEvent::IdleTimeout, shared.idle_precision)
                .with_precision(TimeoutEvent::KeepAlive, shared.idle_precision),
        );
        let reliability = timeouts.add_layer(ReliabilityLayer::new(reliability_config()));
        let mut protocol = Protocol::new();
        // The deadlines as of the last event, read through the guards that changed them (or,
        // after a check, from the layers), so no event pays for extra layer look-ups.
        let mut current = [None; 5];
        if let (Some(t), Some(r)) = (timeouts.layer(timing), timeouts.layer(reliability)) {
            current = deadlines(t, r);
        }
        protocol.account(current, &shared.counters);
        let close = loop {
            if shared.stop.load(Ordering::Relaxed) {
                break None;
            }
            tokio::select! {
                running = packet(slot, &shared) => {
                    if !running {
                        break None;
                    }
                    let now = timeouts.now();
                    shared.counters.packet();
                    if let Some(mut layer) = timeouts.layer_mut(timing) {
                        receive(&mut layer, &mut protocol, &mut rng, now, shared.migration);
                        current[..4].copy_from_slice(&timing_deadlines(&layer));
                    }
                    if let Some(mut layer) = timeouts.layer_mut(reliability) {
                        exchange(&mut layer, &mut protocol, &mut rng, now, shared.loss);
                        current[4] = layer.next_deadline();
                    }
                }
                running = acknowledgment(slot, &shared) => {
                    if !running {
                        break None;
                    }
                    let now = timeouts.now();
                    if let Some(mut layer) = timeouts.layer_mut(reliability) {
                        acknowledge(&mut layer, &protocol, now);
                        current[4] = layer.next_deadline();
                    }
                }
                results = timeouts.next_timeouts() => {
                    let Ok(results) = results else { break None };
                    let now = timeouts.now();
                    if let Some(close) = settle(&results, &mut protocol, &mut rng, now, shared.loss, &shared.counters) {
                        break Some(close);
                    }
                    if let (Some(t), Some(r)) = (timeouts.layer(timing), timeouts.layer(reliability)) {
                        current = deadlines(t, r);
                    }
                }
            }
            protocol.account(current, &shared.counters);
        };
        protocol.account([None; 5], &shared.counters);
        if close.is_none() {
            break;
        }
        slots.reopened(index);
    }
}

/// One `Sleep` per timer kind.
struct Sleeps {
    sleeps: [Pin<Box<tokio::time::Sleep>>; 5],
    armed: [bool; 5],
}

impl Sleeps {
    fn new() -> Self {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        Self {
            sleeps: std::array::from_fn(|_| Box::pin(tokio::time::sleep_until(far))),
            armed: [false; 5],
        }
    }

    /// Resets each sleep whose deadline moved; forgets the unset ones.
    fn follow(&mut self, deadlines: &[Option<Instant>; 5]) {
        for (index, deadline) in deadlines.iter().enumerate() {
            match deadline {
                Some(deadline) => {
                    if !self.armed[index] || self.sleeps[index].deadline() != *deadline {
                        self.sleeps[index].as_mut().reset(*deadline);
                    }
                    self.armed[index] = true;
                }
                None => self.armed[index] = false,
            }
        }
    }

    /// Waits for the first armed sleep.
    async fn next(&mut self) {
        let armed = self.armed;
        std::future::poll_fn(|cx| {
            for (index, sleep) in self.sleeps.iter_mut().enumerate() {
                if armed[index] && sleep.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(());
                }
            }
            std::task::Poll::Pending
        })
        .await;
    }
}

/// Runs connections in `slot` on tokio's timer until the run stops.
pub async fn run_tokio(slots: Arc<Slots>, index: usize, shared: Arc<Shared>, mut rng: SmallRng) {
    let slot = &slots.wakes[index];
    while !shared.stop.load(Ordering::Relaxed) {
        shared.counters.opened();
        let now = Instant::now();
        let mut timing = TimingManager::new(timing_config(), now);
        let mut reliability = ReliabilityLayer::new(reliability_config());
        let mut protocol = Protocol::new();
        let mut sleeps = Sleeps::new();
        let current = deadlines(&timing, &reliability);
        sleeps.follow(&current);
        protocol.account(current, &shared.counters);
        let close = loop {
            if shared.stop.load(Ordering::Relaxed) {
                break None;
            }
            tokio::select! {
                running = packet(slot, &shared) => {
                    if !running {
                        break None;
                    }
                    let now = Instant::now();
                    shared.counters.packet();
                    receive(&mut timing, &mut protocol, &mut rng, now, shared.migration);
                    exchange(&mut reliability, &mut protocol, &mut rng, now, shared.loss);
                }
                running = acknowledgment(slot, &shared) => {
                    if !running {
                        break None;
                    }
                    acknowledge(&mut reliability, &protocol, Instant::now());
                }
                () = sleeps.next() => {
                    let now = Instant::now();
                    let results = [timing.check_timeouts(now), reliability.check_timeouts(now)];
                    if let Some(close) = settle(&results, &mut protocol, &mut rng, now, shared.loss, &shared.counters) {
                        break Some(close);
                    }
                }
            }
            let current = deadlines(&timing, &reliability);
            sleeps.follow(&current);
            protocol.account(current, &shared.counters);
        };
        protocol.account([None; 5], &shared.counters);
        if close.is_none() {
            break;
        }
        slots.reopened(index);
    }
}

/// One connection an endpoint task drives: its layers, protocol state and random source, kept
/// in the connection's row of the endpoint's timers.
struct Driven {
    timing: TimingManager,
    reliability: ReliabilityLayer,
    protocol: Protocol,
    /// The slot's random source: it carries on into the slot's next connection.
    rng: SmallRng,
}

impl Driven {
    /// A new connection; its first deadlines are counted by the [`deadlines`](Self::deadlines)
    /// that hands them to the timers.
    fn open(now: Instant, shared: &Shared, rng: SmallRng) -> Self {
        shared.counters.opened();
        Self {
            timing: TimingManager::new(timing_config(), now)
                .with_precision(TimeoutEvent::IdleTimeout, shared.idle_precision)
                .with_precision(TimeoutEvent::KeepAlive, shared.idle_precision),
            reliability: ReliabilityLayer::new(reliability_config()),
            protocol: Protocol::new(),
            rng,
        }
    }

    /// Counts the operations of the last event and returns the connection's earliest
    /// deadlines (exact and coarse, as the layers report them) for the endpoint's timers.
    fn deadlines(&mut self, counters: &Counters) -> LayerDeadlines {
        let current = deadlines(&self.timing, &self.reliability);
        self.protocol.account(current, counters);
        let timing = self.timing.next_deadlines();
        // The RTO, read once above, is the reliability layer's only deadline.
        let exact = match (timing.exact, current[4]) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        LayerDeadlines {
            exact,
            coarse: timing.coarse,
        }
    }
}

/// Where an endpoint task's packets come from.
pub enum Inbox {
    /// The generator thread's batches, one per millisecond (a paced run).
    Generator(UnboundedReceiver<Vec<u32>>),
    /// Drawn by the endpoint itself, a batch as soon as the last one is handled (a saturated
    /// run).
    Saturated(Box<Source>),
}

impl Inbox {
    /// Waits for the next batch of events and puts it in `batch`; `false` when the run ended.
    /// A saturated inbox first yields until the worker next polls its drivers, so the timerfd
    /// (and the runtime's other work) get their turn between batches: the endpoint handles
    /// its batches inline and has no woken tasks to let run first.
    async fn next(&mut self, slots: &Slots, shared: &Shared, batch: &mut Vec<u32>) -> bool {
        match self {
            Self::Generator(inbox) => match inbox.recv().await {
                Some(events) => {
                    *batch = events;
                    true
                }
                None => false,
            },
            Self::Saturated(source) => {
                tokio::task::yield_now().await;
                if shared.stop.load(Ordering::Relaxed) {
                    return false;
                }
                batch.clear();
                source.draw(slots, Instant::now(), BATCH, batch);
                true
            }
        }
    }
}

/// Runs endpoint task `endpoint` of `endpoints`: it drives connections `endpoint`,
/// `endpoint + endpoints`, … (its connection `n` is slot `n * endpoints + endpoint`), each
/// kept in its row of one `EndpointTimers` beside its deadline, until its inbox ends.
pub async fn run_endpoint(
    endpoint: usize,
    endpoints: usize,
    slots: Arc<Slots>,
    handle: TimerHandle,
    shared: Arc<Shared>,
    mut inbox: Inbox,
    seed: u64,
) {
    let count = slots.len().saturating_sub(endpoint).div_ceil(endpoints);
    let slot_of = |number: usize| number * endpoints + endpoint;
    // A connection's state and its deadline share its row: one cache miss per event.
    let mut timers: EndpointTimers<Option<Driven>> = EndpointTimers::with_values(handle, count);
    let now = timers.now();
    // After shutdown nothing is waited for (`update` fails): the run is ending.
    for number in 0..count {
        let rng = rand::SeedableRng::seed_from_u64(seed ^ (slot_of(number) as u64) << 20);
        let driven = Driven::open(now, &shared, rng);
        let _ = timers.update(number as u32, |row| {
            row.insert(driven).deadlines(&shared.counters)
        });
    }
    let mut due = Vec::new();
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            expired = timers.expired(&mut due) => {
                if expired.is_err() {
                    break;
                }
                let now = timers.now();
                for number in due.drain(..) {
                    let _ = timers.update(number, |row| {
                        let Some(driven) = row else { return LayerDeadlines::default() };
                        let results = [
                            driven.timing.check_timeouts(now),
                            driven.reliability.check_timeouts(now),
                        ];
                        let close = settle(&results, &mut driven.protocol, &mut driven.rng, now, shared.loss, &shared.counters);
                        if close.is_some() {
                            driven.protocol.account([None; 5], &shared.counters);
                            slots.reopened(slot_of(number as usize));
                            let rng = driven.rng.clone();
                            *driven = Driven::open(now, &shared, rng);
                        }
                        driven.deadlines(&shared.counters)
                    });
                }
            }
            running = inbox.next(&slots, &shared, &mut batch) => {
                if !running {
                    break;
                }
                // A batch is what one read returns: one clock read for all of it.
                let now = timers.now();
                for event in batch.drain(..) {
                    let number = ((event & !ACK) as usize / endpoints) as u32;
                    let _ = timers.update(number, |row| {
                        let Some(driven) = row else { return LayerDeadlines::default() };
                        if event & ACK != 0 {
                            acknowledge(&mut driven.reliability, &driven.protocol, now);
                        } else {
                            shared.counters.packet();
                            receive(&mut driven.timing, &mut driven.protocol, &mut driven.rng, now, shared.migration);
                            exchange(&mut driven.reliability, &mut driven.protocol, &mut driven.rng, now, shared.loss);
                        }
                        driven.deadlines(&shared.counters)
                    });
                }
            }
        }
    }
    for number in 0..count as u32 {
        if let Some(Some(driven)) = timers.value_mut(number) {
            driven.protocol.account([None; 5], &shared.counters);
        }
    }
    if let Inbox::Saturated(source) = &inbox {
        shared
            .offered
            .fetch_add(source.offered(), Ordering::Relaxed);
    }
    if let Ok(mut work) = shared.tables.lock() {
        let table_stats = timers.table_stats();
        work.cascades += table_stats.cascades;
        work.connection_rearms += table_stats.postponed;
        work.processed += table_stats.fired;
    }
}

/// Lets the worker's queued tasks run once: wakes the current task and returns pending once,
/// which puts it at the back of its worker's run queue, behind the connections it just woke,
/// as quinn's endpoint driver yields when its read budget is spent. (`tokio::task::yield_now`
/// would defer the task until the worker next polls its driver, after up to 61 other tasks,
/// so a driver reading faster than its connections run would grow the queue without end.)
async fn yield_to_queue() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// In a saturated run of a task-per-connection backend, draws `source`'s batches and wakes
/// each event's connection, as quinn's endpoint driver hands each datagram to its
/// connection's task; yields after each batch so the woken connections run. Ends with the run.
pub async fn run_dispatcher(mut source: Source, slots: Arc<Slots>, shared: Arc<Shared>) {
    let mut batch = Vec::with_capacity(2 * BATCH);
    while !shared.stop.load(Ordering::Relaxed) {
        batch.clear();
        source.draw(&slots, Instant::now(), BATCH, &mut batch);
        for &event in &batch {
            slots.wake(event);
        }
        yield_to_queue().await;
    }
    shared
        .offered
        .fetch_add(source.offered(), Ordering::Relaxed);
}
