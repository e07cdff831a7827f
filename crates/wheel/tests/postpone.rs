//! `poll_with_postpone`: timers whose owner moved on are filed at the later deadline when
//! their slot comes up, keep their keys, and are never fired early or lost.

use std::collections::HashMap;

use ticktock_wheel::{TimerKey, TimerWheel};

#[test]
fn postponed_timers_move_instead_of_cascading_and_fire_at_the_new_deadline() {
    let mut wheel = TimerWheel::new();
    // Owners' current deadlines, later than the filed ones for the even timers.
    let mut wanted: HashMap<u64, u64> = HashMap::new();
    let mut keys: Vec<(TimerKey, u64)> = Vec::new();
    for id in 0..200u64 {
        let deadline = 100 + id * 37;
        let key = wheel.insert(deadline, id);
        wanted.insert(
            id,
            if id % 2 == 0 {
                deadline + 5_000
            } else {
                deadline
            },
        );
        keys.push((key, deadline));
    }
    let mut fired = Vec::new();
    let mut now = 0;
    while !wheel.is_empty() {
        now += 1;
        wheel.poll_with_postpone(
            now,
            |expired| fired.push((expired.value, expired.deadline, now)),
            |_, id, deadline| {
                // An earlier answer is ignored by the wheel: check that too.
                if id % 7 == 0 {
                    deadline - 1
                } else {
                    wanted[id]
                }
            },
        );
    }
    assert_eq!(fired.len(), 200);
    for &(id, deadline, at) in &fired {
        assert_eq!(at, deadline, "fired in its own tick");
        let original = 100 + id * 37;
        let expect = if id % 7 == 0 { original } else { wanted[&id] };
        // A timer never cascaded (filed within 64 ticks of the wheel) keeps its deadline.
        assert!(
            deadline == expect || deadline == original,
            "timer {id}: fired at {deadline}, wanted {expect}"
        );
        assert!(deadline >= original, "timer {id} early");
    }
    let stats = wheel.stats();
    assert!(stats.postponed > 50, "{stats:?}");
    assert_eq!(stats.fired, 200);
}

#[test]
fn a_postponed_timer_keeps_its_key() {
    let mut wheel = TimerWheel::new();
    let key = wheel.insert(1_000, "idle");
    wheel.poll_with_postpone(960, |_| panic!("not due"), |_, _, _| 5_000);
    assert_eq!(wheel.deadline(key), Some(5_000));
    assert_eq!(wheel.stats().postponed, 1);
    assert_eq!(wheel.stats().cascades, 0);
    assert!(wheel.reset(key, 2_000));
    assert_eq!(wheel.cancel(key), Some("idle"));
}
