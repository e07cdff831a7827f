//! Where many deadlines are filed at once: the level-and-slot arithmetic of
//! [`crate::level`], for four deadlines at a time.
//!
//! The scalar wheel computes a timer's list with a `max`, a `min`, a shift, subtract and compare
//! per level, and a variable shift. None of that depends on the slab or the lists, so a
//! batch can compute it for lanes of deadlines before linking them one by one.
//!
//! The lane version avoids what baseline x86-64 (SSE2, which is what this workspace compiles
//! for) has no vector instruction for: 64-bit compares and per-lane variable shifts. Instead:
//!
//! - the level is the number of levels whose reach the tick is beyond, and unsigned `a < b`
//!   (for that and for the clamps of [`level::file_tick`](crate::level::file_tick)) is the
//!   borrow bit of `a - b` (Hacker's Delight 2-12);
//! - the slot is picked by telescoping: `slot = s0 + Σ (s_k - s_(k-1))` over the `k` up to the
//!   level, each term masked by that `k`'s beyond flag (the flags only go from 1 to 0 as `k`
//!   grows).
//!
//! Every operation there is a shift by a constant, an AND, an OR, an add or a subtract: one
//! SSE2 instruction per pair of lanes (one AVX2 instruction per four, when the crate is built
//! with `-C target-cpu` that has AVX2).

use crate::level;
use crate::lists::ListId;

/// Deadlines per lane group.
pub(crate) const LANES: usize = 4;

/// The list each of four deadlines files into while the wheel stands at `now`, computed one
/// deadline at a time exactly as the wheel's own insert does. The reference for the lane
/// version, and the fallback without the `simd` feature.
#[cfg_attr(feature = "simd", allow(dead_code))]
#[inline]
pub(crate) fn lists_scalar(now: u64, deadlines: [u64; LANES]) -> [ListId; LANES] {
    deadlines.map(|deadline| list_one(now, deadline))
}

/// The list one deadline files into (the wheel's `list_for`).
#[inline]
pub(crate) fn list_one(now: u64, deadline: u64) -> ListId {
    let tick = level::file_tick(now, deadline);
    let level = level::level_for(now, tick);
    ListId::new(level, level::slot_for(tick, level))
}

/// The list each of four deadlines files into, computed in `u64x4` lanes.
#[cfg(feature = "simd")]
#[inline]
pub(crate) fn lists_simd(now: u64, deadlines: [u64; LANES]) -> [ListId; LANES] {
    use crate::level::{HORIZON, LEVELS, SLOT_BITS, SLOTS};
    use wide::u64x4;

    // All-ones in each lane where `a < b` (unsigned), zero elsewhere: the borrow of `a - b`.
    #[inline(always)]
    fn below(a: u64x4, b: u64x4) -> u64x4 {
        let borrow = ((!a & b) | (!(a ^ b) & (a - b))) >> 63;
        u64x4::ZERO - borrow
    }
    #[inline(always)]
    fn pick(mask: u64x4, if_set: u64x4, if_clear: u64x4) -> u64x4 {
        (if_set & mask) | (if_clear & !mask)
    }

    let now_v = u64x4::splat(now);
    let limit = u64x4::splat(now.saturating_add(HORIZON - 1));
    let deadline = u64x4::from(deadlines);
    // file_tick: past deadlines file at `now`, far ones at the horizon's last tick.
    let tick = pick(below(deadline, now_v), now_v, deadline);
    let tick = pick(below(limit, tick), limit, tick);
    // The level is the number of levels that cannot reach the tick; the slot is picked by
    // telescoping over the levels up to it.
    let mut slot = tick & u64x4::splat(level::slots(0) as u64 - 1);
    let mut previous_slot = slot;
    let mut level = u64x4::ZERO;
    // Unrolled by the compiler: LEVELS - 1 constant shifts.
    for above in 1..LEVELS {
        let shift = SLOT_BITS * above as u32;
        let reach = (level::slots(above - 1) / SLOTS) as u64;
        let blocks = (tick >> shift) - (now_v >> shift);
        let beyond = !below(blocks, u64x4::splat(reach));
        let slot_above = (tick >> shift) & u64x4::splat(level::slots(above) as u64 - 1);
        slot += (slot_above - previous_slot) & beyond;
        previous_slot = slot_above;
        level += beyond & u64x4::ONE;
    }
    let level = level.to_array();
    let slot = slot.to_array();
    core::array::from_fn(|i| ListId::new(level[i] as usize, slot[i] as usize))
}

/// The lists of four deadlines by the fastest means compiled in.
#[inline(always)]
pub(crate) fn lists(now: u64, deadlines: [u64; LANES]) -> [ListId; LANES] {
    #[cfg(feature = "simd")]
    {
        lists_simd(now, deadlines)
    }
    #[cfg(not(feature = "simd"))]
    {
        lists_scalar(now, deadlines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::HORIZON;

    /// Deadlines around every level boundary, the horizon and the ends of `u64`, seen from
    /// wheel positions that sit on and just off boundaries.
    #[test]
    fn lanes_file_exactly_like_the_wheel() {
        let mut nows = std::vec![0, 1, 63, 64, 100, 255, 256, 4031, 4095, 4096, 1 << 30];
        nows.extend([HORIZON - 1, HORIZON]);
        nows.extend([u64::MAX - HORIZON, u64::MAX - 64, u64::MAX - 1, u64::MAX]);
        for now in nows {
            let mut deadlines = std::vec![0, now.saturating_sub(1), now, u64::MAX];
            for bits in 0..64 {
                let step = 1u64 << bits;
                for d in [step - 1, step, step + 1, step + 191, step + 192] {
                    deadlines.push(now.wrapping_add(d));
                    deadlines.push(now.wrapping_sub(d));
                }
            }
            for chunk in deadlines.chunks_exact(LANES) {
                let lanes: [u64; LANES] = chunk.try_into().expect("four");
                let expected = lanes.map(|d| list_one(now, d));
                assert_eq!(lists_scalar(now, lanes), expected, "now {now} {lanes:?}");
                assert_eq!(lists(now, lanes), expected, "now {now} {lanes:?}");
            }
        }
    }
}
