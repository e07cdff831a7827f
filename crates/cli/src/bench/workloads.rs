//! The wheel's four workloads, written once and generic over [`TimerImpl`], and the [`Spec`]
//! of every workload (the timer service's four live in [`super::service`]).
//!
//! A [`Spec`] describes one table row group (a workload at one parameter) with its inputs; it
//! makes one [`SampleRunner`] per implementation, which owns that implementation's structure and
//! produces one [`Sample`] per call. Only the operations under test sit between the two clock
//! reads of a sample; setup, verification and cleanup happen outside them. Results of the
//! timed calls feed counters that are checked afterwards (and pass through `black_box`), so the
//! optimizer cannot drop the work.

use std::hint::black_box;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::inputs::{Picks, Pool};
use super::layers::{PerPacketSpec, UnifiedSpec};
use super::peers::{DelayQueuePeer, LazyHeapPeer, NexusPeer, Ticktock, TimerImpl};
use super::service::{ArmSpec, IdleSpec, LatenessSpec, RearmSpec};
use crate::alloc_counter;
use crate::error::CliError;

/// Expire workload: the longest delay, in ticks.
pub const EXPIRE_MAX_DELAY: u64 = 1000;
/// Expire workload: ticks past the longest delay after which an unfired timer counts as lost.
const EXPIRE_SLACK: u64 = 64;
/// Expire workload: a fired value is `deadline << ID_BITS | timer id`.
const ID_BITS: u32 = 17;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
/// Largest batch the expire workload can tell apart by id.
pub const MAX_EXPIRE_BATCH: usize = 1 << ID_BITS;

/// One timed repetition of one implementation in one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The measured values, one per row of the case (see [`Spec::rows`]): ns per operation,
    /// bytes per timer, µs of lateness, % CPU.
    pub values: Vec<f64>,
    /// Timers that fired before their deadline.
    pub early: u64,
    /// Timers that did not come out exactly once (never fired, fired twice, or a cancel or
    /// reset of a live timer that failed).
    pub lost: u64,
}

impl Sample {
    /// A one-row sample: `ops` operations took `elapsed`.
    pub fn per_op(elapsed: Duration, ops: usize, early: u64, lost: u64) -> Self {
        Self::one(elapsed.as_nanos() as f64 / ops.max(1) as f64, early, lost)
    }

    /// A one-row sample of `value`.
    pub fn one(value: f64, early: u64, lost: u64) -> Self {
        Self {
            values: vec![value],
            early,
            lost,
        }
    }
}

/// One implementation's side of a cell: owns its structure and state between samples.
pub trait SampleRunner {
    /// The implementation's name.
    fn name(&self) -> &'static str;
    /// Runs one timed repetition.
    fn sample(&mut self) -> Result<Sample, CliError>;
    /// What the runner observed over all its samples besides the values (shown under the
    /// table). Called once, after the last sample.
    fn remarks(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A workload at one parameter, with the inputs every implementation shares.
#[derive(Debug, Clone)]
pub enum Spec {
    /// Insert `batch` timers, cancel them all; `rounds` times per sample.
    Churn {
        /// Timers per round (B).
        batch: usize,
        /// Rounds per sample.
        rounds: usize,
        /// Delays in ticks.
        delays: Rc<Pool>,
    },
    /// Insert `batch` timers and step time 1 tick at a time until all fired; `rounds` times
    /// per sample.
    Expire {
        /// Timers per round (B).
        batch: usize,
        /// Rounds per sample.
        rounds: usize,
        /// Delays in ticks, at most [`EXPIRE_MAX_DELAY`].
        delays: Rc<Pool>,
    },
    /// `resets` resets per sample among `live` timers.
    Reset {
        /// Live timers.
        live: usize,
        /// Resets per sample.
        resets: usize,
        /// Initial delays in ticks.
        delays: Rc<Pool>,
        /// Which timer each reset moves, and its new delay.
        picks: Rc<Picks>,
    },
    /// Heap bytes per timer with `timers` live timers.
    Memory {
        /// Live timers.
        timers: usize,
        /// Build with a capacity hint of `timers` (else grow from empty).
        presized: bool,
        /// Delays in ticks.
        delays: Rc<Pool>,
    },
    /// Timer service: arm + cancel from tasks on worker threads.
    Service(ArmSpec),
    /// Timer service: idle-timeout re-arms of many connections.
    Rearm(RearmSpec),
    /// Timer service: fire lateness on the real clock.
    Lateness(LatenessSpec),
    /// Timer service: process CPU while timers wait.
    Idle(IdleSpec),
    /// Layers: unified deadline queries.
    Unified(UnifiedSpec),
    /// Layers: timer work per packet.
    PerPacket(PerPacketSpec),
}

impl Spec {
    /// One runner per implementation, ticktock first.
    pub fn runners(&self) -> Result<Vec<Box<dyn SampleRunner>>, CliError> {
        match self {
            Self::Service(spec) => spec.runners(),
            Self::Rearm(spec) => spec.runners(),
            Self::Lateness(spec) => spec.runners(),
            Self::Idle(spec) => spec.runners(),
            Self::Unified(spec) => Ok(spec.runners()),
            Self::PerPacket(spec) => spec.runners(),
            Self::Churn { .. } | Self::Expire { .. } | Self::Reset { .. } | Self::Memory { .. } => {
                Ok(vec![
                    self.runner::<Ticktock>()?,
                    self.runner::<LazyHeapPeer>()?,
                    self.runner::<NexusPeer>()?,
                    self.runner::<DelayQueuePeer>()?,
                ])
            }
        }
    }

    /// How many runners [`runners`](Self::runners) makes (without making them).
    pub fn runner_count(&self) -> usize {
        match self {
            Self::Service(_) => ArmSpec::IMPLEMENTATIONS.len(),
            Self::Rearm(_) => RearmSpec::IMPLEMENTATIONS.len(),
            Self::Lateness(_) => LatenessSpec::IMPLEMENTATIONS.len(),
            Self::Idle(_) => IdleSpec::IMPLEMENTATIONS.len(),
            Self::Unified(_) => UnifiedSpec::IMPLEMENTATIONS.len(),
            Self::PerPacket(_) => PerPacketSpec::IMPLEMENTATIONS.len(),
            Self::Churn { .. } | Self::Expire { .. } | Self::Reset { .. } | Self::Memory { .. } => {
                4
            }
        }
    }

    /// Whether a first, untimed sample should warm the structure (caches, capacity) up.
    pub fn wants_warm_up(&self) -> bool {
        matches!(
            self,
            Self::Churn { .. }
                | Self::Expire { .. }
                | Self::Reset { .. }
                | Self::Service(_)
                | Self::Rearm(_)
                | Self::Unified(_)
                | Self::PerPacket(_)
        )
    }

    /// Timed samples per implementation: `configured`, except for the real-time workloads
    /// (lateness, idle), which take one long sample each.
    pub fn samples(&self, configured: usize) -> usize {
        match self {
            Self::Lateness(_) | Self::Idle(_) => 1,
            _ => configured,
        }
    }

    /// Values per sample, one table row each (lateness: p50, p99, max; the others: 1).
    pub fn rows(&self) -> usize {
        match self {
            Self::Lateness(_) => LatenessSpec::ROWS.len(),
            _ => 1,
        }
    }

    fn runner<I: TimerImpl + 'static>(&self) -> Result<Box<dyn SampleRunner>, CliError> {
        Ok(match self {
            Self::Churn {
                batch,
                rounds,
                delays,
            } => Box::new(Churn::<I> {
                imp: I::build(0)?,
                batch: *batch,
                rounds: *rounds,
                delays: Rc::clone(delays),
                keys: Vec::with_capacity(*batch),
                cursor: 0,
            }),
            Self::Expire {
                batch,
                rounds,
                delays,
            } => Box::new(Expire::<I> {
                imp: I::build(0)?,
                batch: (*batch).min(MAX_EXPIRE_BATCH),
                rounds: *rounds,
                delays: Rc::clone(delays),
                cursor: 0,
                fired: Vec::with_capacity(*batch),
                seen: Vec::with_capacity(*batch),
            }),
            Self::Reset {
                live,
                resets,
                delays,
                picks,
            } => Box::new(Reset::<I>::new(*live, *resets, delays, picks)?),
            Self::Memory {
                timers,
                presized,
                delays,
            } => Box::new(Memory::<I> {
                timers: *timers,
                hint: if *presized { *timers } else { 0 },
                delays: Rc::clone(delays),
                imp: PhantomData,
            }),
            Self::Service(_)
            | Self::Rearm(_)
            | Self::Lateness(_)
            | Self::Idle(_)
            | Self::Unified(_)
            | Self::PerPacket(_) => {
                unreachable!("the timer service's workloads make their own runners")
            }
        })
    }
}

struct Churn<I: TimerImpl> {
    imp: I,
    batch: usize,
    rounds: usize,
    delays: Rc<Pool>,
    keys: Vec<I::Key>,
    cursor: usize,
}

impl<I: TimerImpl> SampleRunner for Churn<I> {
    fn name(&self) -> &'static str {
        I::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let Self {
            imp,
            batch,
            rounds,
            delays,
            keys,
            cursor,
        } = self;
        let (batch, rounds, start_cursor) = (*batch, *rounds, *cursor);
        let (elapsed, cancelled) = imp.within(|imp| {
            let now = imp.now();
            let mut cursor = start_cursor;
            let mut cancelled = 0usize;
            let started = Instant::now();
            for _ in 0..rounds {
                for _ in 0..batch {
                    let tick = now + delays.get(cursor);
                    keys.push(imp.insert(tick, tick));
                    cursor += 1;
                }
                for key in keys.drain(..) {
                    cancelled += usize::from(imp.cancel(key));
                }
            }
            (started.elapsed(), black_box(cancelled))
        });
        let timers = batch * rounds;
        *cursor = start_cursor.wrapping_add(timers);
        let lost = timers.abs_diff(cancelled) + imp.len();
        Ok(Sample::per_op(elapsed, timers, 0, lost as u64))
    }
}

struct Expire<I: TimerImpl> {
    imp: I,
    batch: usize,
    rounds: usize,
    delays: Rc<Pool>,
    cursor: usize,
    fired: Vec<u64>,
    seen: Vec<bool>,
}

impl<I: TimerImpl> SampleRunner for Expire<I> {
    fn name(&self) -> &'static str {
        I::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let (mut elapsed, mut early, mut lost) = (Duration::ZERO, 0, 0);
        for _ in 0..self.rounds {
            let Self {
                imp,
                batch,
                delays,
                cursor,
                fired,
                ..
            } = self;
            fired.clear();
            let (round_time, round_early) =
                imp.within(|imp| expire_round(imp, *batch, delays, *cursor, fired));
            *cursor = cursor.wrapping_add(*batch);
            elapsed += round_time;
            early += round_early;
            lost += not_exactly_once(&self.fired, self.batch, &mut self.seen);
        }
        Ok(Sample::per_op(
            elapsed,
            self.batch * self.rounds,
            early,
            lost,
        ))
    }
}

/// Inserts `batch` timers due 1..=1000 ticks from now, then advances one tick at a time until
/// they all fired (or the slack ran out). Returns the time taken and the early fires.
#[inline(never)]
fn expire_round<I: TimerImpl>(
    imp: &mut I,
    batch: usize,
    delays: &Pool,
    cursor: usize,
    fired: &mut Vec<u64>,
) -> (Duration, u64) {
    let start = imp.now();
    let mut early = 0;
    let started = Instant::now();
    for id in 0..batch {
        let deadline = start + delays.get(cursor.wrapping_add(id));
        imp.insert_forget(deadline, deadline << ID_BITS | id as u64);
    }
    let limit = start + EXPIRE_MAX_DELAY + EXPIRE_SLACK;
    let mut now = start;
    while fired.len() < batch && now < limit {
        now += 1;
        let before = fired.len();
        imp.advance(now, fired);
        for &value in &fired[before..] {
            early += u64::from(value >> ID_BITS > now);
        }
    }
    (started.elapsed(), black_box(early))
}

/// Timers of a round of `batch` that did not fire exactly once, judged by the ids in `fired`.
fn not_exactly_once(fired: &[u64], batch: usize, seen: &mut Vec<bool>) -> u64 {
    seen.clear();
    seen.resize(batch, false);
    let mut extra = 0;
    for &value in fired {
        match seen.get_mut((value & ID_MASK) as usize) {
            Some(seen) if !*seen => *seen = true,
            _ => extra += 1,
        }
    }
    let missing = seen.iter().filter(|&&seen| !seen).count() as u64;
    missing + extra
}

struct Reset<I: TimerImpl> {
    imp: I,
    keys: Vec<I::Key>,
    live: usize,
    resets: usize,
    picks: Rc<Picks>,
    cursor: usize,
}

impl<I: TimerImpl> Reset<I> {
    fn new(live: usize, resets: usize, delays: &Pool, picks: &Rc<Picks>) -> Result<Self, CliError> {
        let mut imp = I::build(0)?;
        let mut keys = Vec::with_capacity(live);
        imp.within(|imp| {
            let now = imp.now();
            for i in 0..live {
                let tick = now + delays.get(i);
                keys.push(imp.insert(tick, tick));
            }
        });
        Ok(Self {
            imp,
            keys,
            live,
            resets,
            picks: Rc::clone(picks),
            cursor: 0,
        })
    }
}

impl<I: TimerImpl> SampleRunner for Reset<I> {
    fn name(&self) -> &'static str {
        I::NAME
    }

    fn sample(&mut self) -> Result<Sample, CliError> {
        let Self {
            imp,
            keys,
            resets,
            picks,
            cursor,
            ..
        } = self;
        let (resets, start_cursor) = (*resets, *cursor);
        let (elapsed, failed) = imp.within(|imp| {
            let now = imp.now();
            let mut failed = 0usize;
            let started = Instant::now();
            for j in 0..resets {
                let (slot, delay) = picks.get(start_cursor.wrapping_add(j));
                let tick = now + u64::from(delay);
                let key = keys.swap_remove(slot as usize);
                match imp.reset(key, tick) {
                    Some(key) => keys.push(key),
                    None => {
                        // Keep `live` timers so the picks stay in range.
                        failed += 1;
                        keys.push(imp.insert(tick, tick));
                    }
                }
            }
            (started.elapsed(), black_box(failed))
        });
        *cursor = start_cursor.wrapping_add(resets);
        let lost = failed + self.live.abs_diff(self.imp.len());
        Ok(Sample::per_op(elapsed, resets, 0, lost as u64))
    }
}

impl<I: TimerImpl> Drop for Reset<I> {
    /// Hands every key back (nexus-timer's handles must not be dropped unconsumed).
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        self.imp.within(|imp| {
            for key in keys {
                imp.cancel(key);
            }
        });
    }
}

struct Memory<I> {
    timers: usize,
    hint: usize,
    delays: Rc<Pool>,
    imp: PhantomData<fn() -> I>,
}

impl<I: TimerImpl> SampleRunner for Memory<I> {
    fn name(&self) -> &'static str {
        I::NAME
    }

    /// Heap bytes the structure holds with `timers` live timers, less what an empty one holds,
    /// per timer. The keys are the caller's and are allocated before the first reading. Counted
    /// on this thread only, so other threads' allocations (parallel tests) don't blur it.
    fn sample(&mut self) -> Result<Sample, CliError> {
        let empty = {
            let before = alloc_counter::thread_live_bytes();
            let imp = I::build(0)?;
            alloc_counter::thread_bytes_since(before).saturating_sub(imp.environment_bytes())
        };
        let mut keys = Vec::with_capacity(self.timers);
        let before = alloc_counter::thread_live_bytes();
        let mut imp = I::build(self.hint)?;
        imp.within(|imp| {
            for i in 0..self.timers {
                let tick = self.delays.get(i);
                keys.push(imp.insert(tick, tick));
            }
        });
        let bytes = alloc_counter::thread_bytes_since(before)
            .saturating_sub(imp.environment_bytes())
            .saturating_sub(empty);
        let lost = self.timers.abs_diff(imp.len());
        imp.within(|imp| {
            for key in keys {
                imp.cancel(key);
            }
        });
        Ok(Sample::one(
            bytes as f64 / self.timers.max(1) as f64,
            0,
            lost as u64,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn memory<I: TimerImpl>(presized: bool) -> Memory<I> {
        let mut rng = SmallRng::seed_from_u64(7);
        Memory {
            timers: 1000,
            hint: if presized { 1000 } else { 0 },
            delays: Rc::new(Pool::new(&mut rng, 1..=EXPIRE_MAX_DELAY)),
            imp: PhantomData,
        }
    }

    fn bytes_per_timer<I: TimerImpl>(presized: bool) -> f64 {
        let sample = memory::<I>(presized).sample().expect("memory sample");
        assert_eq!(sample.lost, 0);
        sample.values[0]
    }

    /// ticktock's and DelayQueue's bytes per timer, presized then grown.
    fn readings() -> Vec<f64> {
        [true, false]
            .into_iter()
            .flat_map(|presized| {
                [
                    bytes_per_timer::<Ticktock>(presized),
                    bytes_per_timer::<DelayQueuePeer>(presized),
                ]
            })
            .collect()
    }

    #[test]
    fn memory_readings_ignore_other_threads_allocating_and_freeing_meanwhile() {
        let quiet = readings();
        assert!(quiet.iter().all(|&bytes| bytes > 0.0), "{quiet:?}");
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                // Big blocks held briefly: a process-wide count would swing by a MiB at a time.
                while !stop.load(Ordering::Relaxed) {
                    let block = vec![1u8; 1 << 20];
                    drop(std::hint::black_box(block));
                }
            })
        };
        for _ in 0..5 {
            assert_eq!(readings(), quiet);
        }
        stop.store(true, Ordering::Relaxed);
        churn.join().expect("the churning thread stops");
    }
}
