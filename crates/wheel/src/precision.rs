//! [`Precision`]: how exactly a timer must be met, and the coarse rounding that saves cascades.
//!
//! An exact timer filed on level `L` is moved down a level (a cascade) each time the wheel
//! reaches the start of its slot, until it sits in the one-tick slot of its deadline: up to `L`
//! moves before it fires. Most protocol timers with long delays — idle and keep-alive — are
//! pushed back or cancelled long before they fire, and a few milliseconds either way do not
//! matter to them, only "not before".
//!
//! A coarse timer's deadline is rounded **up** to a multiple of `64^k` ticks, the coarsest
//! level granularity that is at most an eighth of its delay. A deadline that is a multiple of
//! `64^k` is the first tick of its slot on level `k`, so when the wheel reaches that slot the
//! timer is due and fires there: it never cascades below level `k`. Level `k` reaches to the
//! end of the next `64^(k+1)`-tick block, so a coarse timer whose delay is at most `63 * 64^k`
//! ticks is filed on level `k` or lower and does not cascade at all: with 1 ms ticks, every
//! idle or keep-alive timeout from 0.5 s to 4 s and from 33 s to 258 s. Longer ones land one
//! level higher and cascade once. That is how the Linux timer wheel bounds its work
//! (`kernel/time/timer.c`, also at most 12.5 % late).
//!
//! The rounding is a pure function of the deadline and the lateness allowed; the wheel does not
//! need to know which of its timers are coarse.

use crate::level::{LEVELS, SLOT_BITS};

/// How exactly a timer's deadline must be met. Both classes never fire early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Fires in the tick of its deadline (cascading down the levels as needed): for
    /// retransmission, pacing and ack-delay timers.
    #[default]
    Exact,
    /// Fires at most an eighth of its delay after the deadline, without cascading more than
    /// once: for idle and keep-alive timers, which are nearly always re-armed before they fire.
    Coarse,
}

impl Precision {
    /// The tick a timer of this precision due at `deadline` is filed for while the wheel stands
    /// at `now`: `deadline` itself when exact; when coarse, [`coarse_deadline`] with an eighth
    /// of the time to the deadline as the slack.
    ///
    /// ```
    /// use ticktock_wheel::Precision;
    ///
    /// // A 3-second idle timeout in 1 ms ticks, armed at tick 10,000: rounded up to the next
    /// // multiple of 64, at most 375 ticks (an eighth of 3,000) late.
    /// assert_eq!(Precision::Coarse.deadline(10_000, 13_000), 13_056);
    /// assert_eq!(Precision::Exact.deadline(10_000, 13_000), 13_000);
    /// // 100 ticks away: an eighth is 12 ticks, less than the 64-tick granularity of level 1.
    /// assert_eq!(Precision::Coarse.deadline(10_000, 10_100), 10_100);
    /// ```
    #[inline]
    #[must_use]
    pub fn deadline(self, now: u64, deadline: u64) -> u64 {
        match self {
            Self::Exact => deadline,
            Self::Coarse => coarse_deadline(deadline, deadline.saturating_sub(now) / 8),
        }
    }
}

/// `deadline` rounded up to a multiple of the largest `64^k` (a level's slot width) that is at
/// most `slack`: never earlier than `deadline`, at most `slack` later (saturating at
/// `u64::MAX`). A slack under 64 ticks leaves the deadline as it is.
///
/// Callers that know how late a timer may fire pass that (an eighth of an idle timeout, say);
/// [`Precision::deadline`] derives it from the current tick.
///
/// ```
/// use ticktock_wheel::coarse_deadline;
///
/// assert_eq!(coarse_deadline(13_000, 375), 13_056);
/// assert_eq!(coarse_deadline(13_000, 63), 13_000);
/// assert_eq!(coarse_deadline(40_000, 4_096), 40_960);
/// ```
#[inline]
#[must_use]
pub fn coarse_deadline(deadline: u64, slack: u64) -> u64 {
    if slack < 1 << SLOT_BITS {
        return deadline;
    }
    // The largest level whose granularity 64^k fits in the slack: k = floor(log64(slack)).
    let level = ((63 - slack.leading_zeros()) / SLOT_BITS).min(LEVELS as u32 - 1);
    let granularity = 1u64 << (level * SLOT_BITS);
    let mask = granularity - 1;
    let rounded = deadline.checked_add(mask).map_or(u64::MAX, |up| up & !mask);
    debug_assert!(rounded >= deadline);
    debug_assert!(rounded == u64::MAX || rounded - deadline <= slack);
    rounded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_is_the_identity() {
        for (now, deadline) in [(0, 0), (5, 3), (0, u64::MAX), (1000, 1_000_000)] {
            assert_eq!(Precision::Exact.deadline(now, deadline), deadline);
        }
    }

    #[test]
    fn coarse_rounds_up_to_the_granularity_that_fits_an_eighth() {
        // 511 ticks away: slack 63 < 64, exact.
        assert_eq!(Precision::Coarse.deadline(0, 511), 511);
        // 512 ticks away: slack 64, granularity 64.
        assert_eq!(Precision::Coarse.deadline(1, 513), 576);
        // Already aligned: unchanged.
        assert_eq!(Precision::Coarse.deadline(0, 640), 640);
        // 32,768 ticks away: slack 4,096, granularity 4,096.
        assert_eq!(Precision::Coarse.deadline(0, 32_769), 36_864);
        // Past deadlines are left alone (due now anyway).
        assert_eq!(Precision::Coarse.deadline(1000, 10), 10);
        // Saturates instead of wrapping.
        assert_eq!(Precision::Coarse.deadline(0, u64::MAX - 3), u64::MAX);
    }

    #[test]
    fn coarse_is_never_early_and_at_most_an_eighth_late() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let now = state >> 20;
            let delay = (state & 0xF_FFFF) << (state % 16);
            let deadline = now + delay;
            let coarse = Precision::Coarse.deadline(now, deadline);
            assert!(coarse >= deadline);
            assert!(coarse - deadline <= delay / 8, "{now} {deadline} {coarse}");
        }
    }
}
