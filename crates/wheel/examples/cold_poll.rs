//! Insert and poll cost per timer on a large wheel whose memory is out of cache: the
//! measurement behind the wheel's layout decisions (README, "Cache layout").
//!
//! The slab's free list is scrambled first (fill, cancel in random order), so timers inserted
//! next land at random entries and every slot list links entries far apart in memory, as in a
//! wheel that has been running for a while. Each round inserts `N` timers 1..=`SPAN` ticks
//! ahead, then polls tick by tick until all fired (cascading most of them through the levels on
//! the way). Prints the minimum and the median over the rounds: on a shared machine the
//! minimum is the least disturbed round.
//!
//! ```sh
//! cargo run --release -p ticktock-wheel --example cold_poll              # N = 1,048,576, SPAN = 65,536
//! cargo run --release -p ticktock-wheel --example cold_poll -- 262144 4096
//! ```

use std::time::Instant;

use ticktock_wheel::TimerWheel;

const ROUNDS: usize = 15;

/// xorshift64: a fixed sequence, so every run files the same timers in the same order.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn argument(position: usize, default: u64) -> u64 {
    match std::env::args().nth(position) {
        Some(text) => match text.parse() {
            Ok(value) if value > 0 => value,
            _ => {
                eprintln!(
                    "cold_poll: argument {position} must be a positive integer, got {text:?}"
                );
                std::process::exit(2);
            }
        },
        None => default,
    }
}

fn main() {
    let timers = usize::try_from(argument(1, 1 << 20)).unwrap_or(usize::MAX);
    let span = argument(2, 1 << 16);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut wheel = TimerWheel::<u64>::with_capacity(timers);

    let mut keys: Vec<_> = (1..=timers as u64).map(|at| wheel.insert(at, 0)).collect();
    for i in (1..keys.len()).rev() {
        let j = (xorshift(&mut state) % (i as u64 + 1)) as usize;
        keys.swap(i, j);
    }
    for key in keys {
        wheel.cancel(key);
    }

    let (mut inserts, mut polls) = (Vec::new(), Vec::new());
    let mut fired = Vec::with_capacity(timers);
    for _ in 0..ROUNDS {
        let start = wheel.current_tick();
        let started = Instant::now();
        for _ in 0..timers {
            let deadline = start + 1 + xorshift(&mut state) % span;
            wheel.insert(deadline, deadline);
        }
        inserts.push(started.elapsed().as_nanos() as f64 / timers as f64);
        fired.clear();
        let started = Instant::now();
        let mut now = start;
        while fired.len() < timers {
            now += 1;
            wheel.poll(now, &mut fired);
        }
        polls.push(started.elapsed().as_nanos() as f64 / timers as f64);
        assert!(fired.iter().all(|&deadline| deadline <= now));
    }
    inserts.sort_by(f64::total_cmp);
    polls.sort_by(f64::total_cmp);
    let stats = wheel.stats();
    println!(
        "{timers} timers 1..={span} ticks ahead, {ROUNDS} rounds: insert min {:.1} / median {:.1} ns, \
         poll min {:.1} / median {:.1} ns per timer; {:.2} cascades per timer; {} heap bytes",
        inserts[0],
        inserts[ROUNDS / 2],
        polls[0],
        polls[ROUNDS / 2],
        stats.cascades as f64 / (ROUNDS * timers) as f64,
        stats.heap_bytes,
    );
}
