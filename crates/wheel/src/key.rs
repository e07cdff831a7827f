//! Generational keys that name one timer in a [`TimerWheel`](crate::TimerWheel).

/// Names one timer in a [`TimerWheel`](crate::TimerWheel).
///
/// A key is an index into the wheel's entry table plus the generation that entry had when the
/// timer was inserted. Every time an entry is freed (the timer fired or was cancelled) its
/// generation moves on, so a key that outlived its timer no longer matches and every operation
/// with it is a harmless no-op: it can never reach a timer inserted later into the same entry.
///
/// Keys are 8 bytes and `Copy`. [`TimerKey::to_bits`] and [`TimerKey::from_bits`] turn a key
/// into a `u64` and back, for callers that keep keys in atomics or compact tables. A key from one
/// wheel used on another wheel is also a no-op or, at worst, names a timer of that other wheel;
/// it never panics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimerKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl TimerKey {
    /// Packs the key into a `u64` (index in the low half, generation in the high half).
    #[inline]
    #[must_use]
    pub const fn to_bits(self) -> u64 {
        (self.generation as u64) << 32 | self.index as u64
    }

    /// Rebuilds a key packed by [`TimerKey::to_bits`]. Any `u64` is accepted: a value that was
    /// never a key of a given wheel is simply a stale key there.
    #[inline]
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        Self {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TimerKey;

    #[test]
    fn bits_round_trip() {
        let key = TimerKey {
            index: 7,
            generation: 0xdead_beef,
        };
        assert_eq!(TimerKey::from_bits(key.to_bits()), key);
        assert_eq!(key.to_bits(), 0xdead_beef_0000_0007);
    }
}
