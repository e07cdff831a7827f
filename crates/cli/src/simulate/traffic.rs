//! The traffic model: when each connection receives packets, which frames are lost, and how
//! connections come and go. The same seeded model drives either backend.
//!
//! A generator thread keeps the next packet time of every connection in a `TimerWheel` (1 ms
//! ticks) and, each millisecond, delivers the packets that are due: to a connection's task by
//! its `Notify` (as a socket's readiness would wake it), or to the endpoint task that drives the
//! connection, in one batch per endpoint per millisecond (as a `recvmmsg` would read them). Inter-packet gaps are exponential around `1 / packet_rate`.
//! Each packet is answered with a frame, and the peer's acknowledgment of that frame arrives
//! `ack_delay` later (uniform between half and one and a half times it: the round trip plus
//! the peer's delayed-ack timer), a second wake-up, so the RTO timer is armed on every answer
//! and, unless the frame was lost, stopped before it fires.
//! A connection stops receiving packets after its lifetime (exponential around `lifetime`):
//! it then goes quiet and is closed by its idle timeout, and its slot opens a new connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ticktock_wheel::TimerWheel;
use tokio::sync::Notify;

/// The traffic settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Packets per second each connection receives while active.
    pub packet_rate: f64,
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

/// A connection slot the generator wakes: the slot's current generation (a new connection in
/// the slot bumps it) and its wake-up.
#[derive(Debug, Default)]
pub struct Slot {
    /// Set by the generator when a packet is due.
    pub packet: Notify,
    /// Set by the generator when the peer's acknowledgment of the last answer is due.
    pub ack: Notify,
    /// Bumped when the slot's connection closes; the generator then schedules the next one.
    pub generation: AtomicU32,
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

/// Runs the generator on the current thread until `stop`; returns the packets it delivered.
pub fn generate(
    slots: &[Arc<Slot>],
    traffic: Traffic,
    stop: &AtomicBool,
    delivery: Delivery,
) -> u64 {
    let mut rng = SmallRng::seed_from_u64(traffic.seed ^ 0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let ms = |at: Instant| at.saturating_duration_since(start).as_millis() as u64;
    let gap = Duration::from_secs_f64(1.0 / traffic.packet_rate.max(1e-9));
    // Per slot: (generation seen, when its connection goes quiet).
    let mut seen: Vec<(u32, u64)> = Vec::with_capacity(slots.len());
    let mut wheel = TimerWheel::with_capacity(slots.len());
    for (index, _) in slots.iter().enumerate() {
        let quiet = ms(start + exponential(&mut rng, traffic.lifetime));
        seen.push((0, quiet));
        wheel.insert(ms(start + exponential(&mut rng, gap)), index as u32);
    }
    let mut due = Vec::new();
    let mut delivered = 0;
    let mut batches: Vec<Vec<u32>> = match &delivery {
        Delivery::Tasks => Vec::new(),
        Delivery::Endpoints(endpoints) => vec![Vec::new(); endpoints.len()],
    };
    let deliver = |event: u32, batches: &mut Vec<Vec<u32>>| match &delivery {
        Delivery::Tasks => {
            let slot = &slots[(event & !ACK) as usize];
            if event & ACK != 0 {
                slot.ack.notify_one();
            } else {
                slot.packet.notify_one();
            }
        }
        Delivery::Endpoints(endpoints) => {
            let endpoint = (event & !ACK) as usize % endpoints.len();
            batches[endpoint].push(event);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
        let now = ms(Instant::now());
        wheel.poll(now, &mut due);
        for entry in due.drain(..) {
            if entry & ACK != 0 {
                deliver(entry, &mut batches);
                continue;
            }
            let index = entry;
            let slot = &slots[index as usize];
            let entry = &mut seen[index as usize];
            let generation = slot.generation.load(Ordering::Acquire);
            if generation != entry.0 {
                // A new connection in this slot: it gets its own lifetime.
                *entry = (
                    generation,
                    now + ms(start + exponential(&mut rng, traffic.lifetime)),
                );
            }
            if now < entry.1 {
                deliver(index, &mut batches);
                delivered += 1;
                let ack = traffic.ack_delay.mul_f64(rng.random_range(0.5..1.5));
                wheel.insert(now + 1 + ms(start + ack), index | ACK);
            }
            // Quiet connections are looked at again later, to notice a new one in the slot.
            let next = now + 1 + ms(start + exponential(&mut rng, gap));
            wheel.insert(next, index);
        }
        if let Delivery::Endpoints(endpoints) = &delivery {
            for (batch, endpoint) in batches.iter_mut().zip(endpoints) {
                if !batch.is_empty() {
                    // An endpoint that ended has nothing left to deliver to.
                    endpoint.send(std::mem::take(batch)).ok();
                }
            }
        }
    }
    delivered
}
