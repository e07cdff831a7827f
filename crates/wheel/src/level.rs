//! Where a deadline lives in the hierarchy: pure arithmetic on ticks.
//!
//! A slot at level `L` spans `64^L` ticks. Each level is a ring of slots indexed by the
//! deadline's bits from `6L` up, and each level below the top also holds the start of the
//! level above it:
//!
//! | level | slots | holds deadlines up to the end of |
//! |---|---:|---|
//! | 0 | 256 one-tick slots | the current 64-tick block and the next three |
//! | 1 to 4 | 128 | the current `64^(L+1)`-tick block of level `L + 1` and the next one |
//! | 5 (top) | 64 | the horizon, `2^36` ticks ([`HORIZON`]) |
//!
//! A timer goes on the lowest level that holds its deadline. A wheel of plain 64-slot levels
//! (tokio's) files a timer by the highest bit in which its deadline differs from the current
//! tick, so one 80 ticks away always sat on level 1, and one 3,000 ticks away went to level 2
//! whenever it crossed a 4,096-tick boundary, three times in four: each then moved down
//! (cascaded) when its slot came up. With the overlap, an exact retransmission or ack-delay
//! timer of a few round trips files straight into its tick, and a coarse timer (rounded to a
//! multiple of `64^k`, see [`crate::Precision`]) with a delay up to `64^(k+1)` ticks stays on
//! level `k` and fires when its slot comes up: no cascade at all.
//!
//! Invariants the wheel relies on:
//! - **a timer on level `L` is due no earlier than the start of its slot** (on level 0: at its
//!   slot's tick, or earlier only when it was overdue when filed at the current tick);
//! - **a level holds only deadlines within its reach** (the table), so a ring position names one
//!   slot without ambiguity, except on the top level, whose current position can also hold
//!   timers a whole rotation away.
//!
//! The levels' reaches overlap, so the next work is the earliest next slot over all non-empty
//! levels (see `TimerWheel::next_expiration`).

/// Number of levels in the hierarchy.
pub const LEVELS: usize = 6;

/// Slots on the top level (and the number of level-`L` slots in a level-`L + 1` slot).
pub const SLOTS: usize = 64;

/// log2 of [`SLOTS`].
pub(crate) const SLOT_BITS: u32 = 6;

/// One-tick slots of level 0: four 64-tick blocks.
pub const NEAR_SLOTS: usize = 256;

/// Slots of each level below the top and above level 0: two blocks of the level above.
pub(crate) const MIDDLE_SLOTS: usize = 128;

/// Ticks covered by the whole hierarchy: 2^36 ticks, about 795 days of 1 ms ticks.
///
/// A deadline further away than this is filed at the horizon's edge and re-filed when that slot
/// comes round; it is never fired early.
pub const HORIZON: u64 = 1 << (SLOT_BITS as usize * LEVELS);

/// Slots on each level.
const SLOTS_PER_LEVEL: [usize; LEVELS] = {
    let mut slots = [MIDDLE_SLOTS; LEVELS];
    slots[0] = NEAR_SLOTS;
    slots[LEVELS - 1] = SLOTS;
    slots
};

/// The index of each level's first list, counting every level's slots before it.
const FIRST_LIST: [usize; LEVELS] = {
    let mut first = [0; LEVELS];
    let mut level = 1;
    while level < LEVELS {
        first[level] = first[level - 1] + SLOTS_PER_LEVEL[level - 1];
        level += 1;
    }
    first
};

/// Slots on `level`.
#[inline]
pub(crate) const fn slots(level: usize) -> usize {
    SLOTS_PER_LEVEL[level]
}

/// The index of the first list of `level`, counting every level's slots before it.
#[inline]
pub(crate) const fn first_list(level: usize) -> usize {
    FIRST_LIST[level]
}

/// Number of slot lists over all levels.
pub(crate) const LISTS: usize = first_list(LEVELS - 1) + SLOTS;

/// The level a timer due at tick `when` belongs to while the wheel stands at tick `now`.
///
/// `when` must not be earlier than `now` (callers clamp past deadlines to `now` first).
#[inline]
pub(crate) fn level_for(now: u64, when: u64) -> usize {
    debug_assert!(when >= now);
    // Level L holds `when` if its block of the level above is at most `reach - 1` blocks after
    // the current one. Protocol timers are nearly all on levels 0 and 1, so look there first.
    let blocks = (when >> SLOT_BITS) - (now >> SLOT_BITS);
    if blocks < (NEAR_SLOTS / SLOTS) as u64 {
        return 0;
    }
    let mut shift = SLOT_BITS;
    for level in 1..LEVELS - 1 {
        shift += SLOT_BITS;
        if (when >> shift) - (now >> shift) < (MIDDLE_SLOTS / SLOTS) as u64 {
            return level;
        }
    }
    LEVELS - 1
}

/// The slot index of tick `when` at `level`.
#[inline]
pub(crate) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS as usize * level)) as usize) & (slots(level) - 1)
}

/// The next occupied slot of `level` and the tick it starts at, given the level's occupancy
/// words (at least one bit set) and the wheel's current tick.
///
/// Below the top, the search runs forward from the current position: positions behind it
/// belong to slots already passed, and the current one is occupied only when the wheel stands
/// exactly at its start (the slot is then due now). On the top level the current position can
/// only hold timers a whole rotation away (see [`file_tick`]), so it counts as 64 slots ahead.
#[inline]
pub(crate) fn next_occupied(words: &[u64], level: usize, now: u64) -> (usize, u64) {
    debug_assert_eq!(words.len() * 64, slots(level));
    debug_assert!(words.iter().any(|&bits| bits != 0));
    debug_assert!(words.len() != 1 || level == LEVELS - 1);
    let shift = SLOT_BITS as usize * level;
    let position = (now >> shift) as usize & (slots(level) - 1);
    let distance = match *words {
        [top] => {
            let rotated = top.rotate_right(position as u32);
            if rotated & !1 != 0 {
                (rotated & !1).trailing_zeros() as usize
            } else {
                SLOTS
            }
        }
        _ => ring_distance(words, position),
    };
    let slot = (position + distance) & (slots(level) - 1);
    // Only the last rotations before u64::MAX can wrap; saturate there.
    let start = ((now >> shift) + distance as u64).wrapping_shl(shift as u32);
    let start = if start < (now >> shift) << shift {
        u64::MAX
    } else {
        start
    };
    debug_assert!(start >= now || distance == 0, "a slot behind the wheel");
    (slot, start.max(now))
}

/// Positions from `position` to the first set bit at or after it, going round a ring of
/// `64 * words.len()` bits (a power of two; at least one bit set).
#[inline]
fn ring_distance(words: &[u64], position: usize) -> usize {
    debug_assert!(words.len().is_power_of_two());
    let first = position / 64;
    let offset = position % 64;
    let ahead = words[first] >> offset;
    if ahead != 0 {
        return ahead.trailing_zeros() as usize;
    }
    let mut distance = 64 - offset;
    let mut word = first;
    loop {
        word = (word + 1) & (words.len() - 1);
        if words[word] != 0 {
            return distance + words[word].trailing_zeros() as usize;
        }
        distance += 64;
    }
}

/// The tick a timer due at `deadline` is filed under while the wheel stands at `now`.
///
/// Deadlines in the past are filed at `now` (they are due at the next poll); deadlines beyond
/// the horizon are filed at its last tick, which is earlier than the deadline, so the timer is
/// looked at again then and re-filed rather than fired.
#[inline]
pub(crate) fn file_tick(now: u64, deadline: u64) -> u64 {
    // Branch-free: one max and one min.
    deadline.max(now).min(now.saturating_add(HORIZON - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_reach() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        // Level 0: the current 64-tick block and the next three.
        assert_eq!(level_for(0, 255), 0);
        assert_eq!(level_for(63, 255), 0);
        assert_eq!(level_for(64, 319), 0);
        assert_eq!(level_for(0, 256), 1);
        assert_eq!(level_for(63, 256), 1);
        // Level 1: the current 4,096-tick block and the next.
        assert_eq!(level_for(0, 8191), 1);
        assert_eq!(level_for(4095, 8191), 1);
        assert_eq!(level_for(0, 8192), 2);
        assert_eq!(level_for(1 << 12, (1 << 12) + 8191), 1);
        assert_eq!(level_for(1 << 12, (1 << 12) + 8192), 2);
        assert_eq!(level_for(0, (1 << 19) - 1), 2);
        assert_eq!(level_for(0, 1 << 19), 3);
        assert_eq!(level_for(0, 1 << 31), 5);
        assert_eq!(level_for(0, HORIZON - 1), LEVELS - 1);
        // The reach crosses higher levels' boundaries.
        assert_eq!(level_for(4095, 4096), 0);
        assert_eq!(level_for(4095, 4096 + 191), 0);
        assert_eq!(level_for(4095, 4096 + 192), 1);
        assert_eq!(level_for((1 << 18) - 1, (1 << 18) + 4095), 1);
        assert_eq!(level_for((1 << 18) - 1, (1 << 18) + 4096), 2);
        // Same-block deadlines stay on level 0 wherever the wheel stands.
        assert_eq!(level_for(1000, 1000), 0);
        assert_eq!(level_for(u64::MAX - 1, u64::MAX), 0);
        assert_eq!(level_for(u64::MAX - 200, u64::MAX), 0);
    }

    #[test]
    fn lists_number_every_slot_once() {
        assert_eq!(LISTS, 256 + 4 * 128 + 64);
        assert_eq!(LISTS % 64, 0);
        for level in 1..LEVELS {
            assert_eq!(first_list(level), first_list(level - 1) + slots(level - 1));
            assert_eq!(first_list(level) % 64, 0);
        }
    }

    #[test]
    fn slots_index_the_rings() {
        assert_eq!(slot_for(5, 0), 5);
        assert_eq!(slot_for(256 + 5, 0), 5);
        assert_eq!(slot_for(200, 0), 200);
        assert_eq!(slot_for(200, 1), 3);
        assert_eq!(slot_for(130 << 6, 1), 2);
        assert_eq!(slot_for(70 << 30, 5), 6);
    }

    #[test]
    fn next_occupied_searches_forward_round_the_ring() {
        let mut words = [0u64; 4];
        // Level 0, current tick 10: tick 12 is two ticks later, tick 10 is due now.
        words[0] = 1 << 12;
        assert_eq!(next_occupied(&words, 0, 10), (12, 12));
        words[0] = 1 << 10;
        assert_eq!(next_occupied(&words, 0, 10), (10, 10));
        // From tick 300 (position 44), position 3 is tick 515, 215 ticks on.
        words = [1 << 3, 0, 0, 0];
        assert_eq!(next_occupied(&words, 0, 300), (3, 515));
        // From position 200 (word 3), position 100 (word 1) is 156 ticks on.
        words = [0, 1 << 36, 0, 0];
        assert_eq!(next_occupied(&words, 0, 200), (100, 356));
        // Saturates at the end of time.
        words = [0, 0, 0, 1 << 63];
        assert_eq!(next_occupied(&words, 0, u64::MAX - 1), (255, u64::MAX));
        // Level 1, current tick 100 (slot 1): slot 5 starts at 5 * 64, slot 0 comes round at
        // 128 * 64.
        assert_eq!(next_occupied(&[1 << 5, 0], 1, 100), (5, 320));
        assert_eq!(next_occupied(&[1, 0], 1, 100), (0, 128 * 64));
        assert_eq!(next_occupied(&[0, 1], 1, 100), (64, 64 * 64));
    }

    #[test]
    fn the_top_level_wraps_onto_its_current_slot() {
        let top = LEVELS - 1;
        assert_eq!(next_occupied(&[1], top, HORIZON - 1), (0, HORIZON));
        // The top level's current slot means a full rotation ahead, after every other slot.
        assert_eq!(next_occupied(&[1], top, 5), (0, HORIZON));
        assert_eq!(next_occupied(&[0b11], top, 5), (1, 1 << 30));
        // The last rotation before u64::MAX saturates instead of wrapping.
        assert_eq!(next_occupied(&[1], top, u64::MAX - 5), (0, u64::MAX));
    }

    #[test]
    fn file_tick_clamps_past_and_far() {
        assert_eq!(file_tick(50, 10), 50);
        assert_eq!(file_tick(50, 60), 60);
        assert_eq!(file_tick(0, u64::MAX), HORIZON - 1);
        assert_eq!(file_tick(u64::MAX - 1, u64::MAX), u64::MAX);
    }
}
