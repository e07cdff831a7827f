//! The traffic model: when each connection receives packets, which frames are lost, and how
//! connections come and go. The same seeded model drives every backend, in one of two loads:
//!
//! - Saturated (the default): the endpoint's socket always has packets waiting. Each endpoint
//!   draws them itself from a [`Source`], a batch at a time (as one `recvmmsg` would read them),
//!   as soon as it has handled the last batch: each packet goes to a connection chosen at
//!   random among the active ones. The rate is whatever the backend sustains, so the run
//!   measures a server's capacity. On the task-per-connection backends an endpoint task draws
//!   the batch and wakes each packet's connection, as quinn's endpoint driver does.
//! - Paced (`--packet-rate`): a generator thread keeps the next packet time of every
//!   connection in a `TimerWheel` (1 ms ticks) and, each millisecond, delivers the packets
//!   that are due: to a connection's task by its `Notify` (as a socket's readiness would
//!   wake it), or to the endpoint task that drives the connection, in one batch per endpoint
//!   per millisecond. Inter-packet gaps are exponential around `1 / packet_rate`.
//!
//! Each packet is answered with a frame, and the peer's acknowledgment of that frame arrives
//! `ack_delay` later (uniform between half and one and a half times it: the round trip plus
//! the peer's delayed-ack timer), a second wake-up, so the RTO timer is armed on every answer
//! and, unless the frame was lost, stopped before it fires.
//! A connection stops receiving packets after its lifetime (exponential around `lifetime`):
//! it then goes quiet and is closed by its idle timeout, and its slot opens a new connection.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ticktock_wheel::TimerWheel;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The traffic settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Packets per second each connection receives while active; `None` for a saturated load
    /// (as many as the backend handles).
    pub packet_rate: Option<f64>,
    /// Share of sent frames that are lost (their ack never comes: the RTO fires).
    pub loss: f64,
    /// Mean time a connection receives traffic before it goes quiet.
    pub lifetime: Duration,
    /// Share of packets that start a path validation (a migration).
    pub migration: f64,
    /// Mean time from sending a frame to its acknowledgment arriving.
    pub ack_delay: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

/// A connection slot's wake-ups, for the backends with a task per connection.
#[derive(Debug, Default)]
pub struct Slot {
    /// Set by the traffic when a packet is due.
    pub packet: Notify,
    /// Set by the traffic when the peer's acknowledgment of the last answer is due.
    pub ack: Notify,
}

/// Every connection slot of a run: its wake-ups, and apart, in one dense array the traffic
/// reads for every packet, its generation (a new connection in the slot bumps it).
#[derive(Debug)]
pub struct Slots {
    /// Each slot's wake-ups.
    pub wakes: Vec<Slot>,
    generations: Vec<AtomicU32>,
}

impl Slots {
    /// `count` slots, each at generation 0.
    pub fn new(count: usize) -> Self {
        Self {
            wakes: (0..count).map(|_| Slot::default()).collect(),
            generations: (0..count).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.wakes.len()
    }

    /// Slot `index`'s connection closed and a new one takes its place.
    pub fn reopened(&self, index: usize) {
        self.generations[index].fetch_add(1, Ordering::Release);
    }

    /// Wakes the task of `event`'s slot: for its packet, or with [`ACK`] set, its
    /// acknowledgment.
    pub fn wake(&self, event: u32) {
        let slot = &self.wakes[(event & !ACK) as usize];
        if event & ACK != 0 {
            slot.ack.notify_one();
        } else {
            slot.packet.notify_one();
        }
    }

    /// Slot `index`'s generation.
    pub fn generation(&self, index: usize) -> u32 {
        self.generations[index].load(Ordering::Acquire)
    }
}

/// Where the generator delivers packets and acknowledgments.
pub enum Delivery {
    /// Wakes each connection's own task through its slot.
    Tasks,
    /// Sends each endpoint task its connections' events (connection `i` belongs to endpoint
    /// `i % endpoints.len()`), a batch per millisecond: the connection's number, with
    /// [`ACK`] set for an acknowledgment.
    Endpoints(Vec<tokio::sync::mpsc::UnboundedSender<Vec<u32>>>),
}

/// Draws an exponential gap with the given mean.
pub fn exponential(rng: &mut SmallRng, mean: Duration) -> Duration {
    let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
    mean.mul_f64(-uniform.ln())
}

/// Marks an event as an acknowledgment rather than a packet.
pub const ACK: u32 = 1 << 31;

/// Runs the paced generator on the current thread until `stop`; returns the packets it
/// delivered. Each slot's next packet time is an entry of a `TimerWheel`; whether a packet
/// finds its connection active, and when its acknowledgment follows, is a [`Source`]'s.
pub fn generate(slots: &Slots, traffic: Traffic, stop: &AtomicBool, delivery: Delivery) -> u64 {
    let mut rng = SmallRng::seed_from_u64(traffic.seed ^ 0x51_7cc1_b727_220a);
    let start = Instant::now();
    let mut source = Source::new(traffic, 0, 1, slots.len(), start);
    let rate = traffic.packet_rate.unwrap_or(1.0);
    let gap = Duration::from_secs_f64(1.0 / rate.max(1e-9));
    let mut gap_ms = || exponential(&mut rng, gap).as_millis() as u64;
    let mut next_packet = TimerWheel::with_capacity(slots.len());
    for index in 0..slots.len() as u32 {
        next_packet.insert(gap_ms(), index);
    }
    let mut due = Vec::new();
    let mut events = Vec::new();
    let mut batches: Vec<Vec<u32>> = match &delivery {
        Delivery::Tasks => Vec::new(),
        Delivery::Endpoints(endpoints) => vec![Vec::new(); endpoints.len()],
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
        let now = Instant::now();
        let tick = source.tick(now);
        source.draw(slots, now, 0, &mut events);
        next_packet.poll(tick, &mut due);
        for index in due.drain(..) {
            source.packet(slots, index as usize, tick, &mut events);
            // Quiet connections are looked at again later, to notice a new one in the slot.
            next_packet.insert(tick + 1 + gap_ms(), index);
        }
        match &delivery {
            Delivery::Tasks => events.drain(..).for_each(|event| slots.wake(event)),
            Delivery::Endpoints(endpoints) => {
                for event in events.drain(..) {
                    batches[(event & !ACK) as usize % endpoints.len()].push(event);
                }
                for (batch, endpoint) in batches.iter_mut().zip(endpoints) {
                    if !batch.is_empty() {
                        // An endpoint that ended has nothing left to deliver to.
                        endpoint.send(std::mem::take(batch)).ok();
                    }
                }
            }
        }
    }
    source.offered()
}

/// Packets an endpoint reads at a time in a saturated run (a `recvmmsg`'s worth).
pub const BATCH: usize = 64;

/// The traffic of the slots `first`, `first + stride`, … of the run: which connections are
/// active, and the acknowledgments on their way. In a saturated run each endpoint draws its
/// packets from one ([`draw`](Self::draw)): those its socket always has waiting. Pure: time
/// comes in as a parameter.
pub struct Source {
    rng: SmallRng,
    first: usize,
    stride: usize,
    /// Per owned slot: the generation seen and when its connection goes quiet (ms since
    /// `start`).
    seen: Vec<(u32, u64)>,
    /// Acknowledgments on their way (ms since `start`), as slot numbers with [`ACK`] set.
    acks: TimerWheel<u32>,
    start: Instant,
    lifetime: Duration,
    ack_delay: Duration,
    offered: u64,
}

impl Source {
    /// The source of slots `first`, `first + stride`, … below `slots`, its clock starting at
    /// `start`.
    pub fn new(
        traffic: Traffic,
        first: usize,
        stride: usize,
        slots: usize,
        start: Instant,
    ) -> Self {
        let stride = stride.max(1);
        let mut rng = SmallRng::seed_from_u64(traffic.seed ^ 0x9e37_79b9_7f4a_7c15 ^ first as u64);
        let owned = slots.saturating_sub(first).div_ceil(stride);
        let seen = (0..owned)
            .map(|_| {
                (
                    0,
                    exponential(&mut rng, traffic.lifetime).as_millis() as u64,
                )
            })
            .collect();
        Self {
            rng,
            first,
            stride,
            seen,
            acks: TimerWheel::with_capacity(owned),
            start,
            lifetime: traffic.lifetime,
            ack_delay: traffic.ack_delay,
            offered: 0,
        }
    }

    /// Packets drawn so far.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// Appends to `out` the acknowledgments due at `now`, then up to `packets` packets, each
    /// for a connection drawn at random (quiet ones get none, see [`packet`](Self::packet)):
    /// slot numbers, [`ACK`] set on acknowledgments.
    pub fn draw(&mut self, slots: &Slots, now: Instant, packets: usize, out: &mut Vec<u32>) {
        let now = self.tick(now);
        self.acks.poll(now, out);
        if self.seen.is_empty() {
            return;
        }
        for _ in 0..packets {
            let number = self.rng.random_range(0..self.seen.len());
            self.packet(slots, number, now, out);
        }
    }

    /// Milliseconds from the source's start to `now`: the tick of its acknowledgments.
    pub fn tick(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64
    }

    /// A packet for the source's connection `number` at tick `now`: if the connection is
    /// active, appends its slot to `out` and sends its acknowledgment on its way. A slot whose
    /// generation moved on holds a new connection, with a new lifetime.
    pub fn packet(&mut self, slots: &Slots, number: usize, now: u64, out: &mut Vec<u32>) {
        let slot = self.first + number * self.stride;
        let seen = &mut self.seen[number];
        let generation = slots.generation(slot);
        if generation != seen.0 {
            let lifetime = exponential(&mut self.rng, self.lifetime).as_millis() as u64;
            *seen = (generation, now + lifetime);
        }
        if now < seen.1 {
            out.push(slot as u32);
            self.offered += 1;
            let ack = self.ack_delay.mul_f64(self.rng.random_range(0.5..1.5));
            self.acks
                .insert(now + 1 + ack.as_millis() as u64, slot as u32 | ACK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic() -> Traffic {
        Traffic {
            packet_rate: None,
            loss: 0.0,
            lifetime: Duration::from_millis(100),
            migration: 0.0,
            ack_delay: Duration::from_millis(20),
            seed: 3,
        }
    }

    #[test]
    fn a_source_draws_its_own_slots_and_acknowledges_each_packet_after_the_delay() {
        let slots = Slots::new(10);
        let start = Instant::now();
        let mut source = Source::new(traffic(), 1, 2, slots.len(), start);
        let mut out = Vec::new();
        source.draw(&slots, start, 1000, &mut out);
        // Some connections may have drawn a lifetime under a millisecond: quiet at once.
        assert!(out.len() > 500 && out.len() as u64 == source.offered());
        assert!(
            out.iter()
                .all(|&slot| slot & ACK == 0 && slot % 2 == 1 && slot < 10)
        );
        // Acknowledgments come between 10 and 31 ms later, one per packet.
        let mut acks = Vec::new();
        source.draw(&slots, start + Duration::from_millis(10), 0, &mut acks);
        assert!(acks.is_empty(), "{acks:?}");
        source.draw(&slots, start + Duration::from_millis(31), 0, &mut acks);
        assert_eq!(acks.len(), out.len());
        assert!(acks.iter().all(|&event| event & ACK != 0));
    }

    #[test]
    fn quiet_connections_get_no_packets_until_a_new_one_takes_the_slot() {
        let slots = Slots::new(4);
        let start = Instant::now();
        let mut source = Source::new(traffic(), 0, 1, slots.len(), start);
        let mut out = Vec::new();
        // Lifetimes average 100 ms: after 10 s every connection is quiet.
        let late = start + Duration::from_secs(10);
        source.draw(&slots, late, 1000, &mut out);
        out.retain(|event| event & ACK == 0);
        assert!(out.is_empty(), "{out:?}");
        slots.reopened(2);
        source.draw(&slots, late, 1000, &mut out);
        out.retain(|event| event & ACK == 0);
        assert!(
            !out.is_empty() && out.iter().all(|&slot| slot == 2),
            "{out:?}"
        );
    }
}
