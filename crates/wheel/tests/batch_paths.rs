//! Every batch path gives the same observable results as the scalar one.
//!
//! Random sequences of batch inserts, batch cancels (live and stale keys) and polls (single
//! ticks and long jumps, from tick bases near 0 and near `u64::MAX`) run on
//!
//! - two single wheels, one filled by the scalar path and one by the SIMD path: identical keys,
//!   fired values in identical order;
//! - a `ShardedWheel` per strategy (scalar, SIMD, parallel, adaptive), 1 to 3 shards, 2 threads:
//!   identical keys, cancelled and fired values in identical order, identical `len`;
//!
//! and all of them against a plain model: each timer fires exactly once, never before its
//! deadline, and every due timer fires at the poll that reaches its deadline.

use std::collections::HashMap;

use proptest::prelude::*;
use ticktock_wheel::batch::{BatchOp, PARALLEL_INSERT_MIN};
use ticktock_wheel::{
    BatchPath, BatchStrategy, HORIZON, ShardKey, ShardedWheel, TimerKey, TimerWheel,
};

const STRATEGIES: [BatchStrategy; 4] = [
    BatchStrategy::Scalar,
    BatchStrategy::Simd,
    BatchStrategy::Parallel,
    BatchStrategy::Adaptive,
];

#[derive(Clone, Debug)]
enum Op {
    /// Insert timers at these offsets from the current tick (wrapping: some are in the past).
    Insert(Vec<u64>),
    /// Cancel the keys at these positions of the list of every key handed out so far (some
    /// fired or cancelled already: stale).
    Cancel(Vec<prop::sample::Index>),
    /// Poll at the current tick plus this much.
    Poll(u64),
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..200u64,
        2 => 0..5_000u64,
        2 => 0..HORIZON * 2,
        1 => (1..1_000u64).prop_map(u64::wrapping_neg),
        1 => Just(u64::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(offset(), 0..70).prop_map(Op::Insert),
        2 => prop::collection::vec(any::<prop::sample::Index>(), 0..40).prop_map(Op::Cancel),
        3 => prop_oneof![
            3 => 0..3u64,
            2 => 0..300u64,
            1 => 0..HORIZON * 3,
        ]
        .prop_map(Op::Poll),
    ]
}

/// What the model knows: each id's deadline, and which ids are still live.
struct Model {
    deadlines: Vec<u64>,
    live: Vec<bool>,
}

impl Model {
    /// Checks one poll's fired ids at `now`: each was live and due; every live due id fired.
    fn check_poll(&mut self, now: u64, fired: &[u64]) {
        for &id in fired {
            let id = id as usize;
            assert!(self.live[id], "id {id} fired twice or after a cancel");
            assert!(self.deadlines[id] <= now, "id {id} fired early");
            self.live[id] = false;
        }
        for (id, live) in self.live.iter().enumerate() {
            assert!(
                !(*live && self.deadlines[id] <= now),
                "id {id} due at {} not fired by the poll at {now}",
                self.deadlines[id]
            );
        }
    }
}

fn run(base: u64, shards: usize, ops: &[Op]) {
    let mut scalar_wheel: TimerWheel<u64> = TimerWheel::new();
    let mut simd_wheel: TimerWheel<u64> = TimerWheel::new();
    let mut sharded: Vec<ShardedWheel<u64>> = STRATEGIES
        .iter()
        .map(|_| {
            let mut wheel = ShardedWheel::new(shards);
            wheel.set_parallelism(2);
            wheel
        })
        .collect();
    // Start every structure at `base` (an empty poll fires nothing).
    let mut out = Vec::new();
    scalar_wheel.poll(base, &mut out);
    simd_wheel.poll(base, &mut out);
    for wheel in &mut sharded {
        wheel.poll(base, &mut out, BatchStrategy::Scalar);
    }
    assert!(out.is_empty());
    let mut model = Model {
        deadlines: Vec::new(),
        live: Vec::new(),
    };
    let mut single_keys: Vec<TimerKey> = Vec::new();
    let mut sharded_keys: Vec<ShardKey> = Vec::new();
    let mut now = base;
    for op in ops {
        match op {
            Op::Insert(offsets) => {
                let first = model.deadlines.len() as u64;
                let timers: Vec<(u64, u64)> = offsets
                    .iter()
                    .enumerate()
                    .map(|(i, &offset)| (now.wrapping_add(offset), first + i as u64))
                    .collect();
                for &(deadline, _) in &timers {
                    model.deadlines.push(deadline);
                    model.live.push(true);
                }
                let (mut a, mut b) = (Vec::new(), Vec::new());
                scalar_wheel.insert_batch(&timers, &mut a, BatchStrategy::Scalar);
                simd_wheel.insert_batch(&timers, &mut b, BatchStrategy::Simd);
                assert_eq!(a, b, "single wheel: SIMD keys differ from scalar");
                single_keys.extend(a);
                let mut reference: Option<Vec<ShardKey>> = None;
                for (wheel, strategy) in sharded.iter_mut().zip(STRATEGIES) {
                    let mut keys = Vec::new();
                    wheel.insert_many(&timers, &mut keys, strategy);
                    assert_eq!(keys.len(), timers.len());
                    match &reference {
                        None => reference = Some(keys),
                        Some(reference) => assert_eq!(&keys, reference, "{strategy:?} keys"),
                    }
                }
                sharded_keys.extend(reference.unwrap_or_default());
            }
            Op::Cancel(picks) => {
                if single_keys.is_empty() {
                    continue;
                }
                let ids: Vec<usize> = picks.iter().map(|p| p.index(single_keys.len())).collect();
                let single: Vec<TimerKey> = ids.iter().map(|&i| single_keys[i]).collect();
                let keys: Vec<ShardKey> = ids.iter().map(|&i| sharded_keys[i]).collect();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let count = scalar_wheel.cancel_many(single.iter().copied(), &mut a);
                simd_wheel.cancel_many(single.iter().copied(), &mut b);
                assert_eq!(a, b);
                // The model: a key cancels only if its id is live, and only once.
                let mut expected = Vec::new();
                for &i in &ids {
                    if std::mem::replace(&mut model.live[i], false) {
                        expected.push(i as u64);
                    }
                }
                assert_eq!(a, expected, "single wheel cancels in key order");
                assert_eq!(count, expected.len());
                let mut reference: Option<Vec<u64>> = None;
                for (wheel, strategy) in sharded.iter_mut().zip(STRATEGIES) {
                    let mut values = Vec::new();
                    let cancelled = wheel.cancel_many(&keys, &mut values, strategy);
                    assert_eq!(cancelled, values.len());
                    match &reference {
                        None => reference = Some(values),
                        Some(reference) => assert_eq!(&values, reference, "{strategy:?} cancel"),
                    }
                }
                let mut sorted = reference.unwrap_or_default();
                sorted.sort_unstable();
                expected.sort_unstable();
                assert_eq!(sorted, expected, "sharded cancels the same timers");
            }
            Op::Poll(step) => {
                now = now.saturating_add(*step);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                scalar_wheel.poll(now, &mut a);
                simd_wheel.poll(now, &mut b);
                assert_eq!(a, b, "single wheel: poll order after SIMD inserts");
                model.check_poll(now, &a);
                let mut expected = a;
                expected.sort_unstable();
                let mut reference: Option<Vec<u64>> = None;
                for (wheel, strategy) in sharded.iter_mut().zip(STRATEGIES) {
                    let mut fired = Vec::new();
                    let count = wheel.poll(now, &mut fired, strategy);
                    assert_eq!(count, fired.len());
                    assert_eq!(wheel.current_tick(), now);
                    match &reference {
                        None => reference = Some(fired),
                        Some(reference) => assert_eq!(&fired, reference, "{strategy:?} poll"),
                    }
                }
                let mut sorted = reference.unwrap_or_default();
                sorted.sort_unstable();
                assert_eq!(sorted, expected, "sharded fires the same timers");
            }
        }
        let live = model.live.iter().filter(|&&l| l).count();
        assert_eq!(scalar_wheel.len(), live);
        assert_eq!(simd_wheel.len(), live);
        for wheel in &sharded {
            assert_eq!(wheel.len(), live);
        }
        for (i, &is_live) in model.live.iter().enumerate() {
            assert_eq!(scalar_wheel.contains(single_keys[i]), is_live);
            assert_eq!(simd_wheel.contains(single_keys[i]), is_live);
            for wheel in &sharded {
                assert_eq!(wheel.contains(sharded_keys[i]), is_live);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_path_matches_scalar(
        base in prop_oneof![Just(0u64), 0..1u64 << 40, Just(u64::MAX - (1 << 40))],
        shards in 1..=3usize,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(base, shards, &ops);
    }
}

/// Batches above the adaptive thresholds: the adaptive path really goes parallel (with `std`)
/// and still matches the scalar one.
#[test]
fn large_batches_take_the_parallel_path_and_agree() {
    let len = PARALLEL_INSERT_MIN.unwrap_or(1 << 15).max(1 << 15);
    let timers: Vec<(u64, u64)> = (0..len as u64)
        .map(|i| (1 + (i * 7919) % 1000, i))
        .collect();
    let mut scalar = ShardedWheel::new(2);
    let mut adaptive = ShardedWheel::new(2);
    scalar.set_parallelism(2);
    adaptive.set_parallelism(2);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert_eq!(
        scalar.insert_many(&timers, &mut a, BatchStrategy::Scalar),
        BatchPath::Scalar
    );
    let path = adaptive.insert_many(&timers, &mut b, BatchStrategy::Adaptive);
    if cfg!(feature = "std") && PARALLEL_INSERT_MIN.is_some() {
        assert_eq!(path, BatchPath::Parallel);
    }
    assert_eq!(a, b);
    // One poll to the last deadline fires everything: a big poll.
    assert!(adaptive.due_estimate(1000) >= len / 2);
    assert_eq!(
        adaptive.path(
            BatchOp::Poll,
            adaptive.due_estimate(1),
            BatchStrategy::Adaptive
        ),
        BatchPath::Scalar,
        "a one-tick poll of a full wheel stays scalar"
    );
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    assert_eq!(scalar.poll(1000, &mut fa, BatchStrategy::Scalar), len);
    assert_eq!(adaptive.poll(1000, &mut fb, BatchStrategy::Adaptive), len);
    assert_eq!(fa, fb);
    let deadlines: HashMap<u64, u64> = timers.iter().map(|&(d, v)| (v, d)).collect();
    assert!(fa.iter().all(|v| deadlines[v] <= 1000));
    assert!(scalar.is_empty() && adaptive.is_empty());
}
