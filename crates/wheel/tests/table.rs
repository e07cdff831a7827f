//! `TimerTable` against a plain model (a map of each connection's deadline) over random
//! operation sequences and virtual time: every deadline is reported exactly once, never early
//! and never late by a poll, `next_deadline` is never after the earliest deadline, and a warm
//! table does not allocate.

use std::collections::BTreeMap;

use proptest::prelude::*;
use ticktock_wheel::TimerTable;

#[derive(Debug, Clone)]
enum Op {
    /// Set connection `.0`'s deadline to now + `.1` (or none).
    Set(u32, Option<u64>),
    Remove(u32),
    /// Move connection `.0`'s deadline (if it has one) later by `.1` ticks: the boundary
    /// where an entry comes due a tick or two before its connection's new deadline.
    Postpone(u32, u64),
    /// Advance the clock by this many ticks and poll.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let delay = prop_oneof![
        4 => 0u64..300,
        3 => 0u64..20_000,
        1 => 0u64..5_000_000,
    ];
    prop_oneof![
        6 => (0u32..40, proptest::option::weighted(0.85, delay)).prop_map(|(c, d)| Op::Set(c, d)),
        1 => (0u32..40).prop_map(Op::Remove),
        3 => (0u32..40, 0u64..3).prop_map(|(c, by)| Op::Postpone(c, by)),
        3 => prop_oneof![0u64..70, 0u64..5_000, 0u64..2_000_000].prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reports_each_deadline_once_in_the_poll_that_reaches_it(ops in proptest::collection::vec(op(), 1..300)) {
        let mut table = TimerTable::new();
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        let mut now = 0u64;
        let mut due = Vec::new();
        for op in ops {
            match op {
                Op::Set(connection, delay) => {
                    let deadline = delay.map(|d| now + d);
                    table.set(connection, deadline);
                    match deadline {
                        Some(at) => model.insert(connection, at),
                        None => model.remove(&connection),
                    };
                }
                Op::Postpone(connection, by) => {
                    if let Some(at) = model.get_mut(&connection) {
                        *at += by;
                        table.set(connection, Some(*at));
                    }
                }
                Op::Remove(connection) => {
                    table.remove(connection);
                    model.remove(&connection);
                }
                Op::Advance(by) => {
                    now += by;
                    due.clear();
                    let count = table.poll(now, &mut due);
                    prop_assert_eq!(count, due.len());
                    due.sort_unstable();
                    let expected: Vec<u32> = model
                        .iter()
                        .filter(|&(_, &at)| at <= now)
                        .map(|(&connection, _)| connection)
                        .collect();
                    prop_assert_eq!(&due, &expected, "at tick {}", now);
                    model.retain(|_, at| *at > now);
                }
            }
            prop_assert_eq!(table.len(), model.len());
            for (&connection, &at) in &model {
                prop_assert_eq!(table.deadline(connection), Some(at));
            }
            if let Some(&earliest) = model.values().min() {
                let next = table.next_deadline();
                prop_assert!(next.is_some_and(|next| next <= earliest), "next {:?}, earliest {}", next, earliest);
            }
        }
    }
}

#[test]
fn postponed_connections_move_without_cascading() {
    let mut table = TimerTable::with_capacity(1_000);
    for connection in 0..1_000u32 {
        table.set(connection, Some(3_000 + u64::from(connection)));
    }
    let mut due = Vec::new();
    // Every connection gets a packet every 100 ticks and pushes its idle deadline on.
    for now in (100..30_000).step_by(100) {
        for connection in 0..1_000u32 {
            table.set(connection, Some(now + 3_000 + u64::from(connection)));
        }
        assert_eq!(table.poll(now, &mut due), 0);
    }
    let stats = table.stats();
    assert!(stats.postponed > 0, "{stats:?}");
    assert!(stats.cascades < stats.postponed / 10, "{stats:?}");
    assert_eq!(table.poll(40_000, &mut due), 1_000);
}

#[test]
fn a_warm_table_does_not_allocate() {
    let mut table = TimerTable::with_capacity(256);
    let mut due = Vec::with_capacity(256);
    let run = |table: &mut TimerTable, due: &mut Vec<u32>, base: u64| {
        for connection in 0..256u32 {
            table.set(
                connection,
                Some(base + 50 + u64::from(connection % 7) * 300),
            );
            table.set(
                connection,
                Some(base + 60 + u64::from(connection % 5) * 400),
            );
            if connection % 3 == 0 {
                table.set(connection, Some(base + 10));
            }
        }
        due.clear();
        table.poll(base + 5_000, due);
    };
    run(&mut table, &mut due, 0);
    let info = allocation_counter::measure(|| {
        for round in 1..20 {
            run(&mut table, &mut due, round * 10_000);
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}

#[test]
fn an_entry_due_a_tick_before_its_connection_is_filed_again_not_reported() {
    let mut table = TimerTable::new();
    table.set(3, Some(5));
    table.set(3, Some(6));
    let mut due = Vec::new();
    assert_eq!(table.poll(5, &mut due), 0, "{due:?}");
    assert_eq!(table.poll(6, &mut due), 1);
}
