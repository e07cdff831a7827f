//! Model-based tests: random operation sequences run against the wheel and against a plain
//! reference (a `BinaryHeap` of live deadlines plus a map of live timers), on virtual ticks.
//!
//! Every contract of `TimerWheel` is an assertion here: each timer comes out exactly once, never
//! before its deadline; a due timer is returned by the poll that reaches its deadline; stale keys
//! are harmless; `len`, `deadline` and `next_deadline` agree with the model.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use proptest::prelude::*;
use ticktock_wheel::{HORIZON, LEVELS, TimerKey, TimerWheel};

/// The reference: live timers by id, and a heap of (deadline, id) with lazy deletion.
#[derive(Default)]
struct Model {
    live: HashMap<u64, (TimerKey, u64)>,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

impl Model {
    fn insert(&mut self, id: u64, key: TimerKey, deadline: u64) {
        self.live.insert(id, (key, deadline));
        self.heap.push(Reverse((deadline, id)));
    }

    fn earliest(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            match self.live.get(&id) {
                Some(&(_, live_deadline)) if live_deadline == deadline => return Some(deadline),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// Removes and returns every live id due at or before `now`, sorted.
    fn due(&mut self, now: u64) -> Vec<u64> {
        let mut due: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.live.remove(id);
        }
        due.sort_unstable();
        due
    }
}

/// How a deadline is chosen relative to the wheel's current tick.
#[derive(Clone, Debug)]
enum When {
    /// Within the next few slots of level 0 or 1.
    Near(u64),
    /// Anywhere within the horizon.
    Within(u64),
    /// Beyond the horizon.
    Far(u64),
    /// Already in the past.
    Past(u64),
    /// The largest tick there is.
    Max,
    /// Any tick at all.
    Absolute(u64),
}

impl When {
    fn resolve(&self, now: u64) -> u64 {
        match *self {
            When::Near(d) => now.saturating_add(d),
            When::Within(d) => now.saturating_add(d % HORIZON),
            When::Far(d) => now.saturating_add(HORIZON).saturating_add(d),
            When::Past(d) => now.saturating_sub(d),
            When::Max => u64::MAX,
            When::Absolute(t) => t,
        }
    }
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (0u64..200).prop_map(When::Near),
        3 => (0u64..100_000).prop_map(When::Within),
        1 => any::<u64>().prop_map(When::Within),
        1 => (0u64..1 << 40).prop_map(When::Far),
        1 => (1u64..1000).prop_map(When::Past),
        1 => Just(When::Max),
        1 => any::<u64>().prop_map(When::Absolute),
    ]
}

/// How far a poll moves time.
#[derive(Clone, Debug)]
enum Step {
    /// A few ticks, often zero.
    Small(u64),
    /// Up to a few level-1 slots.
    Medium(u64),
    /// Across levels.
    Large(u64),
    /// Far past the horizon.
    Huge(u64),
    /// Backwards (a caller's mistake): only overdue timers may fire.
    Behind(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u64..70).prop_map(Step::Small),
        3 => (0u64..5_000).prop_map(Step::Medium),
        2 => (0u64..1 << 24).prop_map(Step::Large),
        1 => (0u64..1 << 42).prop_map(Step::Huge),
        1 => (1u64..100).prop_map(Step::Behind),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Insert(When),
    /// Cancel the key handed out `n`-th (modulo), live or stale.
    Cancel(usize),
    /// Reset the key handed out `n`-th (modulo), live or stale.
    Reset(usize, When),
    Poll(Step),
    /// Poll at exactly `next_deadline()`.
    PollNextDeadline,
    /// Cancel several keys at once.
    CancelMany(Vec<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => when().prop_map(Op::Insert),
        4 => any::<usize>().prop_map(Op::Cancel),
        4 => (any::<usize>(), when()).prop_map(|(i, w)| Op::Reset(i, w)),
        5 => step().prop_map(Op::Poll),
        2 => Just(Op::PollNextDeadline),
        1 => proptest::collection::vec(any::<usize>(), 0..8).prop_map(Op::CancelMany),
    ]
}

/// Runs `ops` against the wheel and the model, asserting agreement after every step.
fn check(ops: &[Op]) {
    let mut wheel = TimerWheel::new();
    let mut model = Model::default();
    // Every key ever handed out, with the id of its timer.
    let mut keys: Vec<(TimerKey, u64)> = Vec::new();
    let mut next_id = 0u64;
    let mut now = 0u64;

    for op in ops {
        match op {
            Op::Insert(when) => {
                let deadline = when.resolve(now);
                let key = wheel.insert(deadline, next_id);
                model.insert(next_id, key, deadline);
                keys.push((key, next_id));
                next_id += 1;
            }
            Op::Cancel(n) if !keys.is_empty() => {
                let (key, id) = keys[n % keys.len()];
                let expected = model.live.remove(&id).map(|_| id);
                assert_eq!(wheel.cancel(key), expected, "cancel of timer {id}");
            }
            Op::CancelMany(ns) if !keys.is_empty() => {
                let batch: Vec<(TimerKey, u64)> = ns.iter().map(|n| keys[n % keys.len()]).collect();
                let mut expected = Vec::new();
                for &(_, id) in &batch {
                    if model.live.remove(&id).is_some() {
                        expected.push(id);
                    }
                }
                let mut got = Vec::new();
                let count = wheel.cancel_many(batch.iter().map(|&(key, _)| key), &mut got);
                assert_eq!(count, expected.len());
                assert_eq!(got, expected);
            }
            Op::Reset(n, when) if !keys.is_empty() => {
                let (key, id) = keys[n % keys.len()];
                let deadline = when.resolve(now);
                let live = model.live.contains_key(&id);
                assert_eq!(wheel.reset(key, deadline), live, "reset of timer {id}");
                if live {
                    model.insert(id, key, deadline);
                }
            }
            Op::Cancel(_) | Op::CancelMany(_) | Op::Reset(..) => {}
            Op::Poll(step) => {
                let target = match *step {
                    Step::Small(d) | Step::Medium(d) | Step::Large(d) | Step::Huge(d) => {
                        now.saturating_add(d)
                    }
                    Step::Behind(d) => now.saturating_sub(d),
                };
                poll_and_compare(&mut wheel, &mut model, target);
                now = now.max(target);
            }
            Op::PollNextDeadline => {
                if let Some(tick) = wheel.next_deadline() {
                    poll_and_compare(&mut wheel, &mut model, tick);
                    now = now.max(tick);
                }
            }
        }
        assert_eq!(wheel.current_tick(), now);
        assert_agrees(&wheel, &mut model, &keys);
    }

    // Drain everything: every live timer comes out, exactly once, at or after its deadline.
    poll_and_compare(&mut wheel, &mut model, u64::MAX);
    assert!(wheel.is_empty());
    assert!(model.live.is_empty());
    assert_eq!(wheel.next_deadline(), None);
}

fn poll_and_compare(wheel: &mut TimerWheel<u64>, model: &mut Model, target: u64) {
    let mut fired = Vec::new();
    let count = wheel.poll_with(target, |expired| {
        assert!(
            expired.deadline <= target,
            "timer {} fired at {target}, before its deadline {}",
            expired.value,
            expired.deadline
        );
        fired.push(expired.value);
    });
    assert_eq!(count, fired.len());
    fired.sort_unstable();
    assert_eq!(
        fired,
        model.due(target),
        "poll({target}) returned the wrong timers"
    );
}

fn assert_agrees(wheel: &TimerWheel<u64>, model: &mut Model, keys: &[(TimerKey, u64)]) {
    assert_eq!(wheel.len(), model.live.len());
    let now = wheel.current_tick();
    match (wheel.next_deadline(), model.earliest()) {
        (None, None) => {}
        (Some(next), Some(earliest)) => {
            // Never later than the earliest deadline (or than now, for an overdue timer) ...
            assert!(
                next <= earliest.max(now),
                "next_deadline {next} > earliest {earliest}"
            );
            assert!(
                next >= now,
                "next_deadline {next} is before the current tick {now}"
            );
            // ... and exact when that deadline is within the current 64-tick window.
            if earliest >= now && earliest >> 6 == now >> 6 {
                assert_eq!(next, earliest);
            }
        }
        (got, want) => panic!("next_deadline {got:?}, model's earliest {want:?}"),
    }
    // Spot-check a few keys, live and stale.
    for &(key, id) in keys.iter().rev().take(4) {
        let expected = model.live.get(&id).map(|&(_, deadline)| deadline);
        assert_eq!(wheel.deadline(key), expected);
        assert_eq!(wheel.contains(key), expected.is_some());
        assert_eq!(wheel.get(key).copied(), expected.map(|_| id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// About 400 cases of up to 500 operations: well over 100,000 operations per run.
    #[test]
    fn wheel_matches_model(ops in proptest::collection::vec(op(), 1..500)) {
        check(&ops);
    }

    /// Following `next_deadline` never oversleeps and reaches the earliest timer within one
    /// poll per level: the lower bound is a real bound, not a busy loop.
    #[test]
    fn next_deadline_chase_reaches_earliest_timer(
        start in 0u64..1 << 40,
        delays in proptest::collection::vec(0u64..HORIZON, 1..64),
    ) {
        let mut wheel = TimerWheel::new();
        let mut fired = Vec::new();
        wheel.poll(start, &mut fired);
        for (i, delay) in delays.iter().enumerate() {
            wheel.insert(start + delay, i);
        }
        let earliest = start + delays.iter().min().copied().unwrap_or_default();
        let mut polls = 0;
        while fired.is_empty() {
            let next = wheel.next_deadline().expect("timers are pending");
            prop_assert!(next <= earliest);
            wheel.poll(next, &mut fired);
            polls += 1;
            prop_assert!(polls <= LEVELS + 1, "{polls} polls to reach the earliest timer");
        }
        prop_assert_eq!(wheel.current_tick(), earliest);
    }
}

/// A long seeded run with a plain xorshift generator, independent of proptest's shrinking
/// machinery, mixing all operations over a long virtual time.
#[test]
fn long_seeded_run_matches_model() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let ops: Vec<Op> = (0..60_000)
        .map(|_| {
            let r = rand();
            let w = match r % 7 {
                0..=3 => When::Near(rand() % 3000),
                4 => When::Within(rand() % 1_000_000),
                5 => When::Past(rand() % 100),
                _ => When::Far(rand() % 1000),
            };
            match (r >> 8) % 10 {
                0..=3 => Op::Insert(w),
                4 | 5 => Op::Cancel(rand() as usize),
                6 => Op::Reset(rand() as usize, w),
                7 => Op::PollNextDeadline,
                _ => Op::Poll(Step::Small(rand() % 200)),
            }
        })
        .collect();
    check(&ops);
}

#[test]
fn stale_keys_never_touch_a_reused_entry() {
    let mut wheel = TimerWheel::new();
    let old = wheel.insert(10, 1u64);
    assert_eq!(wheel.cancel(old), Some(1));
    let new = wheel.insert(20, 2u64);
    // The entry was reused, but the old key does not reach the new timer.
    assert_eq!(wheel.cancel(old), None);
    assert!(!wheel.reset(old, 5));
    assert_eq!(wheel.deadline(old), None);
    assert_eq!(wheel.deadline(new), Some(20));
    // Keys that were never handed out, or come from another wheel, are stale too.
    assert_eq!(wheel.cancel(TimerKey::from_bits(u64::MAX)), None);
    assert_eq!(wheel.cancel(TimerKey::from_bits(0x1234_0000_0000)), None);
    let fired_key = {
        let key = wheel.insert(0, 3u64);
        let mut out = Vec::new();
        wheel.poll(0, &mut out);
        assert_eq!(out, [3]);
        key
    };
    assert_eq!(wheel.cancel(fired_key), None);
    wheel.clear();
    assert_eq!(wheel.cancel(new), None);
    assert!(wheel.is_empty());
}

#[test]
fn jumps_over_an_empty_or_sparse_wheel_do_not_walk_ticks() {
    let mut wheel = TimerWheel::new();
    let mut out = Vec::new();
    // Empty: trillions of ticks in one call.
    assert_eq!(wheel.poll(1_000_000_000_000, &mut out), 0);
    // Sparse: a handful of timers far apart, then one huge jump.
    for i in 0..10u64 {
        wheel.insert(1_000_000_000_000 + i * 1_000_000_007, i);
    }
    wheel.insert(u64::MAX, 99);
    assert_eq!(wheel.poll(2_000_000_000_000, &mut out), 10);
    assert_eq!(wheel.len(), 1);
    // Each timer moved at most a few times on the way (a cascade per level at most).
    assert!(wheel.stats().cascades <= 11 * LEVELS as u64);
    assert_eq!(wheel.poll(u64::MAX, &mut out), 1);
    assert_eq!(out.last(), Some(&99));
}

#[test]
fn far_deadlines_are_refiled_not_fired() {
    let mut wheel = TimerWheel::new();
    let far = HORIZON * 3 + 17;
    let key = wheel.insert(far, 7u64);
    let mut out = Vec::new();
    let mut tick = 0;
    // Walk by next_deadline: each stop is before the deadline until the last.
    while out.is_empty() {
        tick = wheel.next_deadline().unwrap();
        assert!(tick <= far);
        wheel.poll(tick, &mut out);
    }
    assert_eq!(tick, far);
    assert_eq!(wheel.deadline(key), None);
}

#[test]
fn stats_track_levels_and_counters() {
    let mut wheel = TimerWheel::with_capacity(16);
    wheel.insert(5, 0u64);
    wheel.insert(1_000, 1);
    wheel.insert(10_000, 2);
    let key = wheel.insert(10_001, 3);
    // Two near-window slots, counted on level 0.
    wheel.insert(100, 4);
    wheel.insert(200, 5);
    let stats = wheel.stats();
    assert_eq!(stats.live, 6);
    assert_eq!(stats.occupied_slots_per_level[..3], [3, 1, 1]);
    wheel.cancel(key);
    let mut out = Vec::new();
    wheel.poll(10_000, &mut out);
    let stats = wheel.stats();
    assert_eq!((stats.live, stats.fired, stats.cancelled), (0, 5, 1));
    assert!(stats.heap_bytes >= 16 * 32);
    assert_eq!(stats.occupied_slots_per_level, [0; LEVELS]);
}

/// Exact timers up to three 64-tick blocks ahead file straight into their tick: polled tick by
/// tick, none of them cascades, wherever in its block the wheel stands when they are set.
#[test]
fn near_window_timers_never_cascade() {
    let mut wheel = TimerWheel::new();
    let mut out = Vec::new();
    for now in 1_000..1_064u64 {
        wheel.poll(now, &mut out);
        let window_end = ((now >> 6) + 4) << 6;
        for deadline in now + 1..window_end {
            wheel.insert(deadline, deadline);
        }
    }
    let mut tick = 1_063;
    while !wheel.is_empty() {
        tick += 1;
        let before = out.len();
        wheel.poll(tick, &mut out);
        assert!(out[before..].iter().all(|&deadline| deadline == tick));
    }
    assert_eq!(wheel.stats().cascades, 0);
    // Four blocks on is beyond the window: on level 1, it cascades once (not being due at the
    // start of its slot).
    wheel.insert(tick + 257 - tick % 64, 0);
    while !wheel.is_empty() {
        tick += 1;
        wheel.poll(tick, &mut out);
    }
    assert_eq!(wheel.stats().cascades, 1);
}

#[test]
fn insert_many_returns_keys_in_order() {
    let mut wheel = TimerWheel::new();
    let mut keys = Vec::new();
    wheel.insert_many((0..100u64).map(|i| (i * 3, i)), &mut keys);
    assert_eq!(keys.len(), 100);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(wheel.deadline(*key), Some(i as u64 * 3));
    }
    let mut values = Vec::new();
    assert_eq!(wheel.cancel_many(keys.iter().copied(), &mut values), 100);
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    assert_eq!(wheel.cancel_many(keys, &mut values), 0);
}
