//! Where a deadline lives in the hierarchy: pure arithmetic on ticks.
//!
//! Level `L` has 64 slots of `64^L` ticks each, so it spans `64^(L+1)` ticks. A timer is filed
//! at the lowest level whose slot boundaries separate its deadline from the wheel's current tick:
//! the highest bit in which the two differ picks the level, exactly as in tokio's wheel. That
//! keeps one invariant that everything else relies on: **all timers at level `L` are due before
//! any timer at level `L + 1`**, so the earliest work is always in the lowest non-empty level.

/// Number of levels in the hierarchy.
pub const LEVELS: usize = 6;

/// Slots per level; one bit each in a level's `u64` occupancy bitmap.
pub const SLOTS: usize = 64;

/// log2 of [`SLOTS`].
pub(crate) const SLOT_BITS: u32 = 6;

/// Ticks covered by the whole hierarchy: 2^36 ticks, about 795 days of 1 ms ticks.
///
/// A deadline further away than this is filed at the horizon's edge and re-filed when that slot
/// comes round; it is never fired early.
pub const HORIZON: u64 = 1 << (SLOT_BITS as usize * LEVELS);

/// The level a timer due at tick `when` belongs to while the wheel stands at tick `now`.
///
/// `when` must not be earlier than `now` (callers clamp past deadlines to `now` first).
#[inline]
pub(crate) fn level_for(now: u64, when: u64) -> usize {
    debug_assert!(when >= now);
    // `| 63` makes deadlines within the current 64-tick window land on level 0; the cap keeps
    // deadlines in the next top-level rotation on the top level.
    let masked = ((now ^ when) | (SLOTS as u64 - 1)).min(HORIZON - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

/// The slot index of tick `when` at `level`.
#[inline]
pub(crate) fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1)
}

/// The next occupied slot of `level` and the tick it starts at, given the level's occupancy
/// bitmap (`occupied != 0`) and the wheel's current tick.
///
/// At level 0 the slot of the current tick itself is due now (it holds timers filed at or
/// before the current tick). Above level 0 the current position can only be occupied by a timer
/// a whole top-level rotation away (see [`file_tick`]), so it counts as 64 slots ahead, after
/// every other slot of the level.
#[inline]
pub(crate) fn next_occupied(occupied: u64, level: usize, now: u64) -> (usize, u64) {
    debug_assert!(occupied != 0);
    let shift = SLOT_BITS as usize * level;
    let position = (now >> shift) as u32 & (SLOTS as u32 - 1);
    let rotated = occupied.rotate_right(position);
    let distance = if level == 0 {
        rotated.trailing_zeros()
    } else if rotated & !1 != 0 {
        (rotated & !1).trailing_zeros()
    } else {
        debug_assert_eq!(
            level,
            LEVELS - 1,
            "only the top level wraps onto its current slot"
        );
        SLOTS as u32
    };
    let slot = (position + distance) as usize & (SLOTS - 1);
    // Only the top level's last rotation before u64::MAX can wrap; saturate there.
    let start = ((now >> shift) + u64::from(distance)).wrapping_shl(shift as u32);
    (slot, if start < now { u64::MAX } else { start })
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
    fn levels_follow_distance() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, HORIZON - 1), LEVELS - 1);
        // Crossing a 64-tick boundary moves up a level even when only one tick away.
        assert_eq!(level_for(63, 64), 1);
        // Same-window deadlines stay on level 0 wherever the wheel stands.
        assert_eq!(level_for(1000, 1000), 0);
        assert_eq!(level_for(u64::MAX - 1, u64::MAX), 0);
    }

    #[test]
    fn next_occupied_rotates_from_current_position() {
        // Level 0, current tick 10: slot 12 comes two ticks later, slot 10 is due now.
        assert_eq!(next_occupied(1 << 12, 0, 10), (12, 12));
        assert_eq!(next_occupied(1 << 10, 0, 10), (10, 10));
        // Level 1, current tick 100 (level-1 slot 1): slot 5 starts at 5 * 64.
        assert_eq!(next_occupied(1 << 5, 1, 100), (5, 320));
        // Top level wraps: slot 0 seen from the last slot is the next rotation.
        let top = LEVELS - 1;
        assert_eq!(next_occupied(1, top, HORIZON - 1), (0, HORIZON));
        // The top level's current slot means a full rotation ahead, after every other slot.
        assert_eq!(next_occupied(1, top, 5), (0, HORIZON));
        assert_eq!(next_occupied(0b11, top, 5), (1, 1 << 30));
        // The last rotation before u64::MAX saturates instead of wrapping.
        assert_eq!(next_occupied(1, top, u64::MAX - 5), (0, u64::MAX));
    }

    #[test]
    fn file_tick_clamps_past_and_far() {
        assert_eq!(file_tick(50, 10), 50);
        assert_eq!(file_tick(50, 60), 60);
        assert_eq!(file_tick(0, u64::MAX), HORIZON - 1);
        assert_eq!(file_tick(u64::MAX - 1, u64::MAX), u64::MAX);
    }
}
