//! Coarse timers against exact ones on the same inputs: never early, at most an eighth of the
//! delay late, and far fewer cascades.

use ticktock_wheel::{Precision, TimerWheel};

/// Deterministic delays spread over four decades of ticks (1 ms ticks: 0.5 s to 500 s).
fn delays(count: usize) -> Vec<u64> {
    delays_between(count, 512, 500_512)
}

/// Deterministic delays in `low..high`.
fn delays_between(count: usize, low: u64, high: u64) -> Vec<u64> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            low + state % (high - low)
        })
        .collect()
}

/// Inserts one timer per delay, staggered over time, and polls tick by tick (in steps of 16) to
/// the end. Returns the wheel's cascades and the (deadline, delay, fired-at) of every timer.
fn run(precision: Precision, delays: &[u64]) -> (u64, Vec<(u64, u64, u64)>) {
    let mut wheel = TimerWheel::new();
    let mut fired = Vec::with_capacity(delays.len());
    let mut now = 0;
    let mut pending = delays.iter().enumerate();
    loop {
        // One new timer every 7 ticks, so timers are filed from every position of the wheel.
        if now % 7 == 0
            && let Some((_, &delay)) = pending.next()
        {
            wheel.insert_with(now + delay, precision, (now + delay, delay));
        }
        wheel.poll_with(now, |expired| {
            let (deadline, delay) = expired.value;
            fired.push((deadline, delay, now));
        });
        if wheel.is_empty() && pending.len() == 0 {
            break;
        }
        now += 1;
    }
    (wheel.stats().cascades, fired)
}

#[test]
fn coarse_timers_are_never_early_at_most_an_eighth_late_and_cascade_at_most_once() {
    let delays = delays(5_000);
    let (exact_cascades, exact) = run(Precision::Exact, &delays);
    let (coarse_cascades, coarse) = run(Precision::Coarse, &delays);
    assert_eq!(exact.len(), delays.len());
    assert_eq!(coarse.len(), delays.len());
    for &(deadline, _, at) in &exact {
        assert_eq!(at, deadline, "an exact timer fires in its own tick");
    }
    for &(deadline, delay, at) in &coarse {
        assert!(at >= deadline, "early: due {deadline}, fired {at}");
        assert!(
            at - deadline <= delay / 8,
            "due {deadline} after {delay}, fired {at}"
        );
    }
    eprintln!("cascades: exact {exact_cascades}, coarse {coarse_cascades}");
    assert!(
        coarse_cascades <= delays.len() as u64,
        "at most one cascade per coarse timer: {coarse_cascades}"
    );
    assert!(
        exact_cascades >= 3 * coarse_cascades,
        "exact {exact_cascades}, coarse {coarse_cascades}"
    );
}

/// A coarse timer rounded to a multiple of `64^k` ticks stays on level `k` when its delay is at
/// most `63 * 64^k` (level `k` reaches into the next `64^(k+1)`-tick block), and fires when its
/// slot comes up: no cascade at all, wherever the wheel stands when it is set. Exact timers of
/// the same delays cascade.
#[test]
fn coarse_timers_within_their_levels_reach_never_cascade() {
    // k = 1: 0.5 s to 4 s of 1 ms ticks (idle and keep-alive timers); k = 2: 33 s to 258 s.
    for (low, high) in [(8 * 64, 63 * 64 + 1), (8 * 4096, 63 * 4096 + 1)] {
        let delays = delays_between(2_000, low, high);
        let (coarse_cascades, coarse) = run(Precision::Coarse, &delays);
        let (exact_cascades, _) = run(Precision::Exact, &delays);
        assert_eq!(coarse.len(), delays.len());
        assert_eq!(coarse_cascades, 0, "delays {low}..{high}");
        // Nearly every exact one moves down at least once (all but those due at a slot start).
        assert!(
            exact_cascades >= delays.len() as u64 * 9 / 10,
            "{exact_cascades}"
        );
    }
}
