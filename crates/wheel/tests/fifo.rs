//! Model-based tests of `FixedDelayQueue`: random sequences of push (with time moving forward,
//! standing still or going backwards), cancel (live, fired, cancelled and foreign keys), poll
//! and clear, run against a plain reference: every timer ever pushed, with the deadline the
//! contract gives it, and whether it is still live.
//!
//! The contract, each point an assertion: every timer comes out exactly once (fired or
//! cancelled); a poll at `now` fires exactly the live timers due at or before `now`, in push
//! order; a deadline is never before the push's `now + delay` and never before an earlier
//! push's deadline (the clamp), and is exactly `now + delay` when time did not go backwards;
//! `next_deadline`, `len`, `deadline`, `contains` agree with the model; stale and foreign keys
//! are no-ops.

use proptest::prelude::*;
use ticktock_wheel::{FixedDelayKey, FixedDelayQueue};

#[derive(Clone, Debug)]
enum Op {
    /// Move time by `step` (negative: a push whose clock read came earlier) and push.
    Push(i8),
    /// Cancel the timer pushed `pick`-th (modulo the number pushed): live, fired or cancelled.
    Cancel(usize),
    /// Cancel with a key of another queue.
    CancelForeign(usize),
    /// Move time forward by `step` and poll.
    Poll(u16),
    /// Poll far ahead.
    Jump,
    /// Cancel everything.
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (-3i8..=10).prop_map(Op::Push),
        3 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::CancelForeign),
        3 => (0u16..=40).prop_map(Op::Poll),
        1 => Just(Op::Jump),
        1 => Just(Op::Clear),
    ]
}

/// One timer of the reference.
struct Timer {
    key: FixedDelayKey,
    pushed_at: u64,
    deadline: u64,
    /// Still live (neither fired nor cancelled).
    live: bool,
    /// How many times it came out (fired or cancelled): must end at most 1, and 1 unless live.
    outcomes: u32,
}

fn run(delay: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut queue = FixedDelayQueue::new(delay);
    let mut foreign = FixedDelayQueue::new(delay);
    let mut foreign_keys = Vec::new();
    let mut timers: Vec<Timer> = Vec::new();
    // The clock of pushes (can step back) and of polls (never steps back).
    let mut clock: u64 = 1_000;
    let mut polled: u64 = 0;
    let mut floor = 0u64;
    let mut fired = Vec::new();
    for op in ops {
        match *op {
            Op::Push(step) => {
                clock = clock.saturating_add_signed(i64::from(step));
                let id = timers.len();
                let key = queue.push(clock, id);
                let asked = clock + delay;
                let deadline = asked.max(floor);
                floor = deadline;
                prop_assert_eq!(queue.deadline(key), Some(deadline));
                timers.push(Timer {
                    key,
                    pushed_at: clock,
                    deadline,
                    live: true,
                    outcomes: 0,
                });
                foreign_keys.push(foreign.push(clock, usize::MAX));
            }
            Op::Cancel(pick) if !timers.is_empty() => {
                let id = pick % timers.len();
                let timer = &mut timers[id];
                let got = queue.cancel(timer.key);
                if timer.live {
                    prop_assert_eq!(got, Some(id));
                    timer.live = false;
                    timer.outcomes += 1;
                } else {
                    prop_assert_eq!(got, None);
                }
                prop_assert!(!queue.contains(timer.key));
            }
            Op::Cancel(_) => {}
            Op::CancelForeign(pick) if !foreign_keys.is_empty() => {
                let before = queue.len();
                prop_assert_eq!(queue.cancel(foreign_keys[pick % foreign_keys.len()]), None);
                prop_assert_eq!(queue.len(), before);
            }
            Op::CancelForeign(_) => {}
            Op::Poll(_) | Op::Jump => {
                let now = match *op {
                    Op::Poll(step) => clock.max(polled) + u64::from(step),
                    _ => clock.max(polled) + 10 * delay + 1_000,
                };
                polled = now;
                fired.clear();
                let mut seen = Vec::new();
                let count = queue.poll_with(now, |expired| {
                    seen.push((expired.key, expired.deadline));
                    fired.push(expired.value);
                });
                prop_assert_eq!(count, fired.len());
                let expected: Vec<usize> = timers
                    .iter()
                    .enumerate()
                    .filter(|(_, timer)| timer.live && timer.deadline <= now)
                    .map(|(id, _)| id)
                    .collect();
                // Exactly the due ones, in push order (= deadline order).
                prop_assert_eq!(&fired, &expected);
                for (&id, &(key, deadline)) in fired.iter().zip(&seen) {
                    let timer = &mut timers[id];
                    prop_assert_eq!(key, timer.key);
                    prop_assert_eq!(deadline, timer.deadline);
                    // Never early.
                    prop_assert!(timer.pushed_at + delay <= now);
                    timer.live = false;
                    timer.outcomes += 1;
                }
                clock = clock.max(now);
            }
            Op::Clear => {
                queue.clear();
                for timer in &mut timers {
                    if timer.live {
                        timer.live = false;
                        timer.outcomes += 1;
                    }
                }
            }
        }
        // Agreement after every step.
        let live: Vec<&Timer> = timers.iter().filter(|timer| timer.live).collect();
        prop_assert_eq!(queue.len(), live.len());
        prop_assert_eq!(queue.is_empty(), live.is_empty());
        prop_assert_eq!(
            queue.next_deadline(),
            live.iter().map(|timer| timer.deadline).min()
        );
        let stats = queue.stats();
        prop_assert_eq!(stats.live, live.len());
        prop_assert!(stats.slots >= live.len());
    }
    // Everything out exactly once: drain what is left.
    fired.clear();
    queue.poll(u64::MAX, &mut fired);
    for id in fired.drain(..) {
        prop_assert!(timers[id].live);
        timers[id].live = false;
        timers[id].outcomes += 1;
    }
    prop_assert!(queue.is_empty());
    prop_assert_eq!(queue.stats().slots, 0);
    for timer in &timers {
        prop_assert_eq!(timer.outcomes, 1);
        prop_assert!(timer.deadline >= timer.pushed_at + delay);
        prop_assert_eq!(queue.deadline(timer.key), None);
    }
    let stats = queue.stats();
    prop_assert_eq!(stats.fired + stats.cancelled, timers.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fixed_delay_queue_matches_the_model(
        delay in prop_oneof![Just(0u64), 1u64..=5, 6u64..=200],
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        run(delay, &ops)?;
    }
}

#[test]
fn clamped_pushes_are_counted_and_never_early() {
    let mut queue = FixedDelayQueue::new(10);
    queue.push(100, 0);
    let key = queue.push(90, 1);
    assert_eq!(queue.deadline(key), Some(110));
    assert_eq!(queue.stats().clamped, 1);
    let mut fired = Vec::new();
    queue.poll(109, &mut fired);
    assert!(fired.is_empty());
    queue.poll(110, &mut fired);
    assert_eq!(fired, [0, 1]);
}

#[test]
fn a_long_run_with_steady_churn_stays_within_one_delay_of_slots() {
    // 1 push per tick, 9 of 10 cancelled a few ticks later (answered in time), the rest
    // expire: the ring holds about one delay's worth of pushes, tombstones included.
    const DELAY: u64 = 500;
    let mut queue = FixedDelayQueue::new(DELAY);
    let mut keys = std::collections::VecDeque::new();
    let mut fired = Vec::new();
    let mut most = 0;
    for now in 0..20_000u64 {
        keys.push_back((now, queue.push(now, now)));
        while keys.front().is_some_and(|&(at, _)| at + 5 <= now) {
            let (at, key) = keys.pop_front().unwrap();
            if at % 10 != 0 {
                assert_eq!(queue.cancel(key), Some(at));
            }
        }
        queue.poll(now, &mut fired);
        most = most.max(queue.stats().slots);
    }
    assert!(most <= DELAY as usize + 1, "{most} slots");
    assert!(fired.iter().all(|&at| at % 10 == 0));
    assert_eq!(fired.len(), (20_000 - DELAY as usize) / 10);
}
