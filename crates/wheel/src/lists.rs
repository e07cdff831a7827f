//! The slot lists: one circular doubly linked list per slot, threaded through a compact array of
//! links, plus the occupancy bitmap: one bit per list, in words of 64 lists (level 0's four
//! words, two for each middle level, one for the top).
//!
//! Links live apart from the timers' entries (struct of arrays): a link is 8 bytes, so the
//! neighbours an unlink must patch sit eight to a cache line instead of two, and walking a list
//! reads only links and the deadlines it needs.
//!
//! The first [`LISTS`] links are the lists' sentinels; a timer whose entry has index `i` (always
//! `>= LISTS`) uses link `i`. With a sentinel in every list, an empty list is a sentinel that
//! points at itself and every insert and unlink is the same four stores: no branch on whether a
//! list is empty, which is where a wheel with few timers per slot loses its time to
//! mispredictions.

use alloc::vec::Vec;
use core::num::NonZeroU16;

use crate::level::{self, LEVELS};

/// Number of slot lists, and so of sentinel links and of reserved entry indices.
pub(crate) use crate::level::LISTS;

/// Words of occupancy bitmap: one bit per list.
pub(crate) const WORDS: usize = LISTS / 64;

/// The level of each occupancy word's lists.
const LEVEL_OF_WORD: [u8; WORDS] = {
    let mut levels = [0; WORDS];
    let mut level = 0;
    while level < LEVELS {
        let mut word = level::first_list(level) / 64;
        while word < (level::first_list(level) + level::slots(level)) / 64 {
            levels[word] = level as u8;
            word += 1;
        }
        level += 1;
    }
    levels
};

/// The level whose lists occupancy word `word` is for.
#[inline]
pub(crate) fn level_of_word(word: usize) -> usize {
    usize::from(LEVEL_OF_WORD[word])
}

/// The occupancy words of `level` within the whole bitmap.
#[inline]
pub(crate) fn level_words(occupied: &[u64; WORDS], level: usize) -> &[u64] {
    let first = level::first_list(level) / 64;
    &occupied[first..first + level::slots(level) / 64]
}

/// The end of a chain that is not a slot list (timers set aside during a poll).
pub(crate) const NIL: u32 = u32::MAX;

/// Which slot list a timer is on: its index over every level's slots in level order, stored
/// plus one so the type has a niche (which lets the entry enum in the slab do without a tag).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ListId(NonZeroU16);

impl ListId {
    #[inline]
    pub(crate) fn new(level: usize, slot: usize) -> Self {
        debug_assert!(level < LEVELS && slot < level::slots(level));
        match NonZeroU16::new((level::first_list(level) + slot + 1) as u16) {
            Some(id) => Self(id),
            None => unreachable!("a list index plus one is never zero"),
        }
    }

    /// The index of this list's sentinel link.
    #[inline]
    pub(crate) fn sentinel(self) -> u32 {
        u32::from(self.0.get()) - 1
    }

    #[inline]
    pub(crate) fn level(self) -> usize {
        level_of_word(self.word())
    }

    /// The occupancy word this list's bit is in.
    #[inline]
    pub(crate) fn word(self) -> usize {
        self.sentinel() as usize / 64
    }

    /// This list's bit in its occupancy word.
    #[inline]
    pub(crate) fn bit(self) -> u64 {
        1 << (self.sentinel() % 64)
    }
}

#[derive(Clone, Copy, Debug)]
struct Link {
    next: u32,
    prev: u32,
}

/// Every slot's list and the occupancy bitmap.
pub(crate) struct Lists {
    links: Vec<Link>,
    /// Bit `b` of `occupied[w]` is set exactly when list `64 * w + b` is non-empty.
    occupied: [u64; WORDS],
}

impl Lists {
    /// Empty lists with room for links up to index `LISTS + capacity`.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut links = Vec::with_capacity(LISTS + capacity);
        links.extend((0..LISTS as u32).map(|sentinel| Link {
            next: sentinel,
            prev: sentinel,
        }));
        Self {
            links,
            occupied: [0; WORDS],
        }
    }

    /// Makes sure link `index` exists (the slab hands out indices one past the end as it grows).
    #[inline]
    pub(crate) fn cover(&mut self, index: u32) {
        if index as usize >= self.links.len() {
            debug_assert_eq!(index as usize, self.links.len());
            if self.links.len() == self.links.capacity() {
                // Double the timers' part, not the whole (the sentinels are a fixed 832), so
                // that it keeps step with the slab's doubling.
                self.links.reserve_exact((self.links.len() - LISTS).max(64));
            }
            self.links.push(Link {
                next: NIL,
                prev: NIL,
            });
        }
    }

    pub(crate) fn reserve(&mut self, additional: usize) {
        self.links.reserve(additional);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.links.capacity() * core::mem::size_of::<Link>()
    }

    #[inline]
    pub(crate) fn occupied(&self) -> &[u64; WORDS] {
        &self.occupied
    }

    /// Puts timer `index` (on no list) at the front of `list`.
    #[inline]
    pub(crate) fn push_front(&mut self, index: u32, list: ListId) {
        let sentinel = list.sentinel();
        let first = self.links[sentinel as usize].next;
        self.links[index as usize] = Link {
            next: first,
            prev: sentinel,
        };
        self.links[first as usize].prev = index;
        self.links[sentinel as usize].next = index;
        self.occupied[list.word()] |= list.bit();
    }

    /// Takes timer `index` off `list`, the list it is on.
    #[inline]
    pub(crate) fn remove(&mut self, index: u32, list: ListId) {
        let Link { next, prev } = self.links[index as usize];
        self.links[prev as usize].next = next;
        self.links[next as usize].prev = prev;
        // Clear the bit when the list emptied (its sentinel points at itself). Whether a list
        // emptied is exactly what a branch predictor cannot guess, so ask for a conditional move.
        let sentinel = list.sentinel();
        let emptied = self.links[sentinel as usize].next == sentinel;
        let clear = core::hint::select_unpredictable(emptied, list.bit(), 0);
        self.occupied[list.word()] &= !clear;
    }

    /// Detaches the whole of `list` and returns its first timer. Following [`next`](Self::next)
    /// from there visits every timer it held and then reaches `list.sentinel()`; the caller must
    /// read a timer's `next` before putting it on any list.
    #[inline]
    pub(crate) fn take(&mut self, list: ListId) -> u32 {
        let sentinel = list.sentinel();
        let first = self.links[sentinel as usize].next;
        self.links[sentinel as usize] = Link {
            next: sentinel,
            prev: sentinel,
        };
        self.occupied[list.word()] &= !list.bit();
        first
    }

    /// The timer after `index` on its list or chain.
    #[inline]
    pub(crate) fn next(&self, index: u32) -> u32 {
        self.links[index as usize].next
    }

    /// Threads timer `index`, which is on no list, onto a private chain ending in [`NIL`].
    #[inline]
    pub(crate) fn set_next(&mut self, index: u32, next: u32) {
        self.links[index as usize].next = next;
    }

    /// Empties every list; the links of timers are left as they are (the timers are gone).
    pub(crate) fn clear(&mut self) {
        for (sentinel, link) in self.links[..LISTS].iter_mut().enumerate() {
            *link = Link {
                next: sentinel as u32,
                prev: sentinel as u32,
            };
        }
        self.occupied = [0; WORDS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_remove_and_take_keep_bitmaps_exact() {
        let mut lists = Lists::with_capacity(4);
        let list = ListId::new(1, 5);
        let other = ListId::new(1, 6);
        let base = LISTS as u32;
        for index in base..base + 3 {
            lists.cover(index);
            lists.push_front(index, list);
        }
        lists.cover(base + 3);
        lists.push_front(base + 3, other);
        let word = level::first_list(1) / 64;
        assert_eq!(lists.occupied()[word], (1 << 5) | (1 << 6));
        lists.remove(base + 1, list);
        assert_eq!(lists.occupied()[word], (1 << 5) | (1 << 6));
        lists.remove(base + 3, other);
        assert_eq!(lists.occupied()[word], 1 << 5);
        let mut walked = Vec::new();
        let mut index = lists.take(list);
        while index != list.sentinel() {
            walked.push(index);
            index = lists.next(index);
        }
        assert_eq!(walked, [base + 2, base]);
        assert_eq!(lists.occupied()[word], 0);
    }

    #[test]
    fn list_ids_map_to_distinct_sentinels() {
        let mut seen = [false; LISTS];
        for level in 0..LEVELS {
            for slot in 0..level::slots(level) {
                let id = ListId::new(level, slot);
                assert_eq!(id.level(), level);
                assert_eq!(id.bit(), 1 << (slot % 64));
                assert!(!core::mem::replace(&mut seen[id.sentinel() as usize], true));
            }
        }
        assert!(seen.iter().all(|&seen| seen));
    }
}
