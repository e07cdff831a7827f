//! A warm wheel allocates nothing: insert, cancel, reset and poll reuse freed entries.
//!
//! `allocation-counter` installs a counting global allocator for this test binary and counts
//! per thread, so the figures are exact.

use ticktock_wheel::TimerWheel;

/// Deterministic pseudo-random deadlines without pulling a generator into the measured code.
fn delay(i: u64) -> u64 {
    1 + (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % 10_000
}

#[test]
fn steady_state_operations_do_not_allocate() {
    const LIVE: u64 = 10_000;
    let mut wheel = TimerWheel::with_capacity(LIVE as usize);
    let mut fired = Vec::with_capacity(LIVE as usize);
    let mut keys = Vec::with_capacity(LIVE as usize);
    let mut values = Vec::with_capacity(1000);
    let mut new_keys = Vec::with_capacity(1000);

    // Warm up: fill to the working-set size once.
    for i in 0..LIVE {
        keys.push(wheel.insert(delay(i), i));
    }

    let info = allocation_counter::measure(|| {
        let mut now = 0;
        for round in 0..20u64 {
            // Re-arm every timer (the idle-timer pattern), cancel half, re-insert them, then
            // let time pass so some fire, and re-insert those too.
            for (i, key) in keys.iter().enumerate() {
                assert!(wheel.reset(*key, now + delay(i as u64 + round)));
            }
            for key in keys.iter_mut().step_by(2) {
                let value = wheel.cancel(*key).expect("live");
                *key = wheel.insert(now + delay(value + round), value);
            }
            now += 2_000;
            fired.clear();
            wheel.poll(now, &mut fired);
            for key in keys.iter_mut() {
                if !wheel.contains(*key) {
                    *key = wheel.insert(now + delay(key.to_bits()), round);
                }
            }
            assert_eq!(wheel.len() as u64, LIVE);
        }
        // Batches too: cancel a thousand at once and put them back.
        let cancelled = wheel.cancel_many(keys.iter().copied().take(1000), &mut values);
        assert_eq!(cancelled, 1000);
        wheel.insert_many(values.drain(..).map(|v| (now + delay(v), v)), &mut new_keys);
        assert_eq!(wheel.len() as u64, LIVE);
    });
    assert_eq!(info.count_total, 0, "a warm wheel allocated: {info:?}");
}

#[test]
fn a_warm_fixed_delay_queue_does_not_allocate() {
    use ticktock_wheel::FixedDelayQueue;

    const DELAY: u64 = 1_000;
    let mut queue = FixedDelayQueue::new(DELAY);
    let mut fired = Vec::with_capacity(4096);
    let mut keys = std::collections::VecDeque::with_capacity(4096);
    // One round to grow the ring to its working size: 2 pushes per tick, one delay's worth.
    let mut round = |queue: &mut FixedDelayQueue<u64>, start: u64| {
        for now in start..start + 3 * DELAY {
            for i in 0..2 {
                keys.push_back(queue.push(now, now * 2 + i));
            }
            // Half are cancelled a little later (answered in time), half expire.
            while keys.len() > 20 {
                let key = keys.pop_front().expect("non-empty");
                if key_is_even(queue, key) {
                    queue.cancel(key);
                }
            }
            fired.clear();
            queue.poll(now, &mut fired);
        }
    };
    round(&mut queue, 0);
    let info = allocation_counter::measure(|| {
        for r in 1..10 {
            round(&mut queue, r * 3 * DELAY);
        }
    });
    assert_eq!(info.count_total, 0, "a warm queue allocated: {info:?}");
}

fn key_is_even(
    queue: &ticktock_wheel::FixedDelayQueue<u64>,
    key: ticktock_wheel::FixedDelayKey,
) -> bool {
    queue.get(key).is_some_and(|value| value % 2 == 0)
}
