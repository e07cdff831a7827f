//! The deterministic workload: a seeded random mix of inserts, cancels and resets over a
//! [`TimerWheel`], driven tick by tick and then in big jumps until it is empty, checked against
//! a simple model at every step.
//!
//! Plain `no_std` + `alloc` code with no `unsafe`: the same source runs natively (the host tests
//! and the `expected` binary) and inside the `.wasm` that node loads, and the two [`Report`]s
//! must agree bit for bit.
//!
//! The model keeps, for every timer ever inserted, its key, its current deadline and whether it
//! is live, fired or cancelled, plus an ordered set of the live `(deadline, id)` pairs. A timer's
//! value is its id with a tag derived from the seed, so a fired value names exactly one model
//! entry (and a corrupted value is caught). After every poll the model checks that:
//!
//! - every fired timer was live and its deadline is at or before the polled tick ([`EARLY`],
//!   [`DOUBLE`], [`UNKNOWN`]), and the poll's count matches what it pushed ([`COUNT`]);
//! - no live timer is due at or before the polled tick any more ([`LATE`]);
//! - the wheel holds exactly the live timers ([`LOST`]), and `next_deadline` is after the
//!   polled tick and never after the earliest live deadline ([`NEXT_DEADLINE`]).
//!
//! Cancel and reset results are checked against the model for live and stale keys alike
//! ([`CANCEL`], [`RESET`]); at the end the wheel must be empty ([`STUCK`]), every timer must
//! have come out ([`LOST`]) and the wheel's own counters must agree ([`STATS`]).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use ticktock_wheel::{HORIZON, TimerKey, TimerWheel};

/// A timer fired before its deadline.
pub const EARLY: u32 = 1 << 0;
/// A poll left a timer that was due at or before the polled tick.
pub const LATE: u32 = 1 << 1;
/// A timer came out twice (fired after it fired or was cancelled).
pub const DOUBLE: u32 = 1 << 2;
/// The wheel's length disagrees with the model, or a timer never came out.
pub const LOST: u32 = 1 << 3;
/// `cancel` disagreed with the model (a live key gave `None`, a stale one gave `Some`, or the
/// value was wrong).
pub const CANCEL: u32 = 1 << 4;
/// `reset` (or `deadline` after it) disagreed with the model.
pub const RESET: u32 = 1 << 5;
/// `next_deadline` was `None` with live timers (or `Some` with none), not after the polled
/// tick, or after the earliest live deadline.
pub const NEXT_DEADLINE: u32 = 1 << 6;
/// The wheel was not empty after the jump phase.
pub const STUCK: u32 = 1 << 7;
/// A poll pushed a value that no timer had.
pub const UNKNOWN: u32 = 1 << 8;
/// A poll's return value differs from the number of values it pushed.
pub const COUNT: u32 = 1 << 9;
/// The wheel's `stats()` counters disagree with the model.
pub const STATS: u32 = 1 << 10;

/// The cases the smoke test runs: `(seed, timers)`. The `expected` binary prints one line per
/// case and node runs the same ones in the `.wasm`.
pub const CASES: [(u64, u32); 4] = [
    (1, 1_000),
    (0x5eed, 10_000),
    (0xdead_beef_cafe_f00d, 30_000),
    (0, 257),
];

/// Ticks advanced one at a time in the second phase.
const TICK_PHASE: u64 = 4_096;
/// Op batches in the tick phase happen every this many ticks.
const BATCH_EVERY: u64 = 64;
/// Jump-phase polls with extra inserts, cancels and resets mixed in.
const JUMP_OPS: u64 = 256;
/// Upper bound on jump-phase polls; hitting it sets [`STUCK`].
const MAX_JUMPS: u64 = 100_000;

/// What a run did, and the error flags it raised (0 when everything held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// Timers inserted.
    pub inserted: u64,
    /// Timers that fired.
    pub fired: u64,
    /// Timers cancelled (live keys).
    pub cancelled: u64,
    /// Successful resets (live keys).
    pub resets: u64,
    /// Cancels and resets with stale keys (correctly ignored).
    pub stale_ops: u64,
    /// Polls made, forward and backward.
    pub polls: u64,
    /// Order-independent hash of `(value, polled tick)` over every fire.
    pub fired_hash: u64,
    /// Bitwise or of the error flags above.
    pub errors: u32,
}

impl Report {
    /// One `u64` over every field; equal reports give equal checksums.
    #[must_use]
    pub fn checksum(&self) -> u64 {
        [
            self.inserted,
            self.fired,
            self.cancelled,
            self.resets,
            self.stale_ops,
            self.polls,
            self.fired_hash,
            u64::from(self.errors),
        ]
        .iter()
        .fold(0x7469_636b_746f_636b, |h, &field| mix(h ^ field))
    }
}

/// splitmix64's finaliser: a good 64-bit mixer.
#[must_use]
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*: small, fast, deterministic everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // xorshift must not start at 0; mixing also spreads small seeds.
        Self(mix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`); the modulo bias does not matter here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    Fired,
    Cancelled,
}

struct Timer {
    key: TimerKey,
    deadline: u64,
    state: State,
}

struct Run {
    rng: Rng,
    tag: u64,
    wheel: TimerWheel<u64>,
    timers: Vec<Timer>,
    /// `(deadline, id)` of every live timer.
    live: BTreeSet<(u64, u32)>,
    fired: Vec<u64>,
    report: Report,
}

/// Runs the workload for `seed` with `timers` initial timers (more are inserted as it goes).
#[must_use]
pub fn run(seed: u64, timers: u32) -> Report {
    let mut run = Run {
        rng: Rng::new(seed),
        tag: mix(!seed) & 0xffff_ffff,
        wheel: TimerWheel::new(),
        timers: Vec::new(),
        live: BTreeSet::new(),
        fired: Vec::new(),
        report: Report::default(),
    };
    run.all_phases(u64::from(timers));
    run.report
}

impl Run {
    fn all_phases(&mut self, n: u64) {
        // Phase 1: a tenth of the timers at tick 0, then one big jump that fires some of them.
        let start = 1_000_000 + self.rng.below(1_000_000);
        for _ in 0..n / 10 {
            let deadline = self.rng.below(2 * start);
            self.insert(deadline);
        }
        self.poll(start);

        // The rest, from all over the u64 range, then a third of all cancelled and reset.
        for _ in n / 10..n {
            let deadline = self.random_deadline(start);
            self.insert(deadline);
        }
        for _ in 0..n / 6 {
            self.cancel_random();
        }
        for _ in 0..n / 6 {
            self.reset_random(start);
        }

        // Phase 2: one tick at a time, with batches of ops (many on keys that have fired by
        // then) and now and then a poll that goes backwards.
        let batches = TICK_PHASE / BATCH_EVERY;
        let per_batch = n / 6 / batches;
        let mut now = start;
        for step in 1..=TICK_PHASE {
            now += 1;
            if step % BATCH_EVERY == 0 {
                for _ in 0..per_batch {
                    self.cancel_random();
                    self.reset_random(now);
                }
                for _ in 0..per_batch / 4 + 1 {
                    let deadline = self.random_deadline(now);
                    self.insert(deadline);
                }
                if step % (4 * BATCH_EVERY) == 0 {
                    // Only overdue timers at or before this tick may fire.
                    let behind = now - 1 - self.rng.below(100);
                    self.poll(behind);
                }
            }
            self.poll(now);
        }

        // Phase 3: jumps of random magnitude (and sometimes straight to `next_deadline`) until
        // the wheel is empty; u64::MAX is reached within a few hundred polls.
        for jump in 0..MAX_JUMPS {
            if self.wheel.is_empty() {
                break;
            }
            if jump < JUMP_OPS {
                if self.rng.one_in(4) {
                    self.cancel_random();
                }
                if self.rng.one_in(4) {
                    self.reset_random(now);
                }
                if self.rng.one_in(8) {
                    let deadline = self.random_deadline(now);
                    self.insert(deadline);
                }
            }
            now = match self.wheel.next_deadline() {
                Some(next) if self.rng.one_in(3) => next.max(now),
                _ => {
                    let step = self.rng.next() >> self.rng.below(64);
                    now.saturating_add(step)
                }
            };
            self.poll(now);
        }

        if !self.wheel.is_empty() {
            self.report.errors |= STUCK;
        }
        if self.timers.iter().any(|timer| timer.state == State::Live) {
            self.report.errors |= LOST;
        }
        let stats = self.wheel.stats();
        if stats.fired != self.report.fired
            || stats.cancelled != self.report.cancelled
            || stats.live != 0
        {
            self.report.errors |= STATS;
        }
    }

    /// A deadline relative to `now`: past, now, near, mid, far, beyond the horizon, near or at
    /// `u64::MAX`, or anywhere.
    fn random_deadline(&mut self, now: u64) -> u64 {
        let rng = &mut self.rng;
        match rng.below(100) {
            0..10 => now - rng.below(now.saturating_add(1)),
            10..15 => now.saturating_add(rng.below(2)),
            15..45 => now.saturating_add(1 + rng.below(4_096)),
            45..65 => now.saturating_add(rng.below(1 << 24)),
            65..78 => now.saturating_add(rng.below(HORIZON)),
            78..88 => now.saturating_add(HORIZON + rng.below(1 << 50)),
            88..93 => u64::MAX - rng.below(1 << 20),
            93..97 => u64::MAX,
            _ => rng.next(),
        }
    }

    fn value(&self, id: u32) -> u64 {
        (u64::from(id) << 32) | self.tag
    }

    fn insert(&mut self, deadline: u64) {
        let id = u32::try_from(self.timers.len()).expect("fewer than 2^32 timers");
        let key = self.wheel.insert(deadline, self.value(id));
        self.timers.push(Timer {
            key,
            deadline,
            state: State::Live,
        });
        self.live.insert((deadline, id));
        self.report.inserted += 1;
    }

    /// A random id of any timer inserted so far, live or not (`None` before the first).
    fn random_id(&mut self) -> Option<u32> {
        let len = self.timers.len() as u64;
        (len > 0).then(|| self.rng.below(len) as u32)
    }

    fn cancel_random(&mut self) {
        let Some(id) = self.random_id() else { return };
        let value = self.value(id);
        let timer = &mut self.timers[id as usize];
        match (timer.state, self.wheel.cancel(timer.key)) {
            (State::Live, Some(got)) => {
                if got != value {
                    self.report.errors |= CANCEL;
                }
                timer.state = State::Cancelled;
                self.live.remove(&(timer.deadline, id));
                self.report.cancelled += 1;
            }
            (State::Live, None) => self.report.errors |= CANCEL,
            (_, None) => self.report.stale_ops += 1,
            (_, Some(_)) => self.report.errors |= CANCEL | DOUBLE,
        }
    }

    fn reset_random(&mut self, now: u64) {
        let Some(id) = self.random_id() else { return };
        let deadline = self.random_deadline(now);
        let timer = &mut self.timers[id as usize];
        let moved = self.wheel.reset(timer.key, deadline);
        match (timer.state, moved) {
            (State::Live, true) => {
                self.live.remove(&(timer.deadline, id));
                self.live.insert((deadline, id));
                timer.deadline = deadline;
                self.report.resets += 1;
            }
            (State::Live, false) | (State::Fired | State::Cancelled, true) => {
                self.report.errors |= RESET;
            }
            (_, false) => self.report.stale_ops += 1,
        }
        let expected = (timer.state == State::Live).then_some(timer.deadline);
        if self.wheel.deadline(timer.key) != expected {
            self.report.errors |= RESET;
        }
    }

    fn poll(&mut self, now: u64) {
        self.fired.clear();
        let count = self.wheel.poll(now, &mut self.fired);
        self.report.polls += 1;
        if count != self.fired.len() {
            self.report.errors |= COUNT;
        }
        for &value in &self.fired {
            let id = value >> 32;
            let Some(timer) = self.timers.get_mut(id as usize) else {
                self.report.errors |= UNKNOWN;
                continue;
            };
            if value & 0xffff_ffff != self.tag {
                self.report.errors |= UNKNOWN;
            }
            if timer.state != State::Live {
                self.report.errors |= DOUBLE;
                continue;
            }
            if timer.deadline > now {
                self.report.errors |= EARLY;
            }
            timer.state = State::Fired;
            self.live.remove(&(timer.deadline, id as u32));
            self.report.fired += 1;
            self.report.fired_hash = self.report.fired_hash.wrapping_add(mix(value ^ mix(now)));
        }

        let earliest = self.live.first().map(|&(deadline, _)| deadline);
        if earliest.is_some_and(|deadline| deadline <= now) {
            self.report.errors |= LATE;
        }
        if self.wheel.len() != self.live.len() {
            self.report.errors |= LOST;
        }
        let next_ok = match (self.wheel.next_deadline(), earliest) {
            (None, None) => true,
            // After a backward poll, timers between `now` and the current tick are overdue and
            // `next_deadline` is the current tick.
            (Some(next), Some(earliest)) => {
                next > now && next <= earliest.max(self.wheel.current_tick())
            }
            _ => false,
        };
        if !next_ok {
            self.report.errors |= NEXT_DEADLINE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_clean() {
        for (seed, timers) in CASES {
            let report = run(seed, timers);
            assert_eq!(
                report.errors, 0,
                "seed {seed:#x}, {timers} timers: {report:?}"
            );
            assert_eq!(
                report.inserted,
                report.fired + report.cancelled,
                "every timer comes out once"
            );
            assert!(report.cancelled > 0 && report.resets > 0 && report.stale_ops > 0);
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(run(7, 3_000), run(7, 3_000));
        assert_ne!(run(7, 3_000).checksum(), run(8, 3_000).checksum());
    }

    #[test]
    fn tiny_and_empty_runs() {
        for timers in [0, 1, 2, 5] {
            let report = run(3, timers);
            assert_eq!(report.errors, 0, "{timers} timers: {report:?}");
        }
    }

    #[test]
    fn checksum_sees_every_field() {
        let base = run(1, 100);
        let mut changed = base;
        changed.errors |= EARLY;
        assert_ne!(base.checksum(), changed.checksum());
        let mut changed = base;
        changed.fired_hash ^= 1;
        assert_ne!(base.checksum(), changed.checksum());
    }
}
