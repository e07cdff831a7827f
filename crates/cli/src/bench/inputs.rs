//! The seeded random inputs every implementation is fed, identically.
//!
//! Inputs are drawn once per table cell from `SmallRng` seeded with the run's seed and the cell,
//! before anything is timed, and shared by the four implementations. A pool is a power of two
//! long so that reading it round-robin costs one AND per operation, the same for everyone.

use std::ops::RangeInclusive;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Entries in a pool: 64 Ki values, 512 KiB, enough that short cycles in the inputs don't
/// train the branch predictors.
pub const POOL_LEN: usize = 1 << 16;

/// A deterministic RNG for one cell: the run's seed mixed with a per-cell salt.
pub fn rng(seed: u64, salt: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A ring of random `u64`s, read with [`Pool::get`] at any index.
#[derive(Debug, Clone)]
pub struct Pool {
    values: Vec<u64>,
}

impl Pool {
    /// [`POOL_LEN`] values drawn uniformly from `range`.
    pub fn new(rng: &mut SmallRng, range: RangeInclusive<u64>) -> Self {
        Self {
            values: (0..POOL_LEN)
                .map(|_| rng.random_range(range.clone()))
                .collect(),
        }
    }

    /// The value at `index`, wrapping around the ring.
    #[inline]
    pub fn get(&self, index: usize) -> u64 {
        self.values[index & (POOL_LEN - 1)]
    }
}

/// A ring of `(live timer index, delay)` pairs for the reset workload.
#[derive(Debug, Clone)]
pub struct Picks {
    values: Vec<(u32, u32)>,
}

impl Picks {
    /// [`POOL_LEN`] pairs: an index below `live` and a delay drawn from `delays`.
    ///
    /// `live` must be in `1..=u32::MAX` and `delays` within `u32`.
    pub fn new(rng: &mut SmallRng, live: u32, delays: RangeInclusive<u32>) -> Self {
        Self {
            values: (0..POOL_LEN)
                .map(|_| (rng.random_range(0..live), rng.random_range(delays.clone())))
                .collect(),
        }
    }

    /// The pair at `index`, wrapping around the ring.
    #[inline]
    pub fn get(&self, index: usize) -> (u32, u32) {
        self.values[index & (POOL_LEN - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_inputs_and_values_in_range() {
        let a = Pool::new(&mut rng(1, 2), 1..=10);
        let b = Pool::new(&mut rng(1, 2), 1..=10);
        let c = Pool::new(&mut rng(1, 3), 1..=10);
        assert_eq!(a.values, b.values);
        assert_ne!(a.values, c.values);
        assert!(a.values.iter().all(|v| (1..=10).contains(v)));
        assert_eq!(a.get(5), a.get(5 + POOL_LEN));
        let picks = Picks::new(&mut rng(1, 2), 7, 100..=200);
        assert!(
            picks
                .values
                .iter()
                .all(|&(i, d)| i < 7 && (100..=200).contains(&d))
        );
    }
}
