//! The entry table behind the wheel: a slab with a free list and generations.
//!
//! Every timer lives in one [`Entry`] of a `Vec`, found in O(1) by index. Freed entries form a
//! LIFO free list threaded through the vacant entries themselves, so a warm wheel allocates
//! nothing: a new timer reuses the entry the last fired or cancelled one left (which is also the
//! entry most likely to still be in cache). Each free bumps the entry's generation, which is what
//! makes stale [`TimerKey`]s harmless.
//!
//! The first [`LISTS`] indices belong to the slot lists' sentinels (see [`crate::lists`]), so
//! the timer with index `i` lives in entry `i - LISTS`: a key naming a sentinel resolves to
//! nothing, and no entry is spent on the sentinels. An occupied entry is 24 bytes for `T = u64`
//! (deadline, value, generation, [`ListId`]); the vacant variant fits beside the `ListId` niche,
//! so the enum needs no tag of its own. With the 8-byte link that makes 32 bytes per timer.

use alloc::vec::Vec;

use crate::key::TimerKey;
use crate::lists::{LISTS, ListId, NIL};

/// A live timer.
pub(crate) struct Timer<T> {
    pub(crate) deadline: u64,
    pub(crate) value: T,
    pub(crate) generation: u32,
    pub(crate) list: ListId,
}

enum Entry<T> {
    Occupied(Timer<T>),
    Vacant { next_free: u32, generation: u32 },
}

/// Storage for timers, indexed by `u32` from [`LISTS`] up (entry `index - LISTS`).
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            free_head: NIL,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Bytes of heap this slab holds, whether or not the entries are in use.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry<T>>()
    }

    /// Makes room for `additional` more timers beyond those that free entries can take; returns
    /// how many new entries that may push.
    pub(crate) fn reserve(&mut self, additional: usize) -> usize {
        let free = self.entries.len() - self.len;
        let new = additional.saturating_sub(free);
        self.entries.reserve(new);
        new
    }

    /// Stores a timer on `list` (the caller links it) and returns its key.
    ///
    /// # Panics
    /// When the table already holds `u32::MAX - 1` entries (96 GiB of timers), as `Vec` panics
    /// on capacity overflow.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: u64, value: T, list: ListId) -> TimerKey {
        let index = self.free_head;
        self.len += 1;
        if index != NIL {
            let entry = &mut self.entries[index as usize - LISTS];
            let Entry::Vacant {
                next_free,
                generation,
            } = *entry
            else {
                unreachable!("the free list only links vacant entries")
            };
            self.free_head = next_free;
            *entry = Entry::Occupied(Timer {
                deadline,
                value,
                generation,
                list,
            });
            TimerKey { index, generation }
        } else {
            let index = u32::try_from(LISTS + self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("ticktock-wheel: more than u32::MAX - 1 timers");
            self.entries.push(Entry::Occupied(Timer {
                deadline,
                value,
                generation: 0,
                list,
            }));
            TimerKey {
                index,
                generation: 0,
            }
        }
    }

    /// The live timer `key` names.
    #[inline]
    pub(crate) fn get(&self, key: TimerKey) -> Option<&Timer<T>> {
        match self.entries.get((key.index as usize).wrapping_sub(LISTS)) {
            Some(Entry::Occupied(timer)) if timer.generation == key.generation => Some(timer),
            _ => None,
        }
    }

    /// The live timer `key` names, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut Timer<T>> {
        match self
            .entries
            .get_mut((key.index as usize).wrapping_sub(LISTS))
        {
            Some(Entry::Occupied(timer)) if timer.generation == key.generation => Some(timer),
            _ => None,
        }
    }

    /// The live timer at `index`. Lists only ever hold live timers.
    #[inline]
    pub(crate) fn timer(&self, index: u32) -> &Timer<T> {
        match &self.entries[index as usize - LISTS] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("a list holds a vacant entry"),
        }
    }

    /// The live timer at `index`, mutably.
    #[inline]
    pub(crate) fn timer_mut(&mut self, index: u32) -> &mut Timer<T> {
        match &mut self.entries[index as usize - LISTS] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("a list holds a vacant entry"),
        }
    }

    /// Frees the live timer `key` names and returns it (the caller unlinks it).
    #[inline]
    pub(crate) fn remove_key(&mut self, key: TimerKey) -> Option<Timer<T>> {
        self.get(key)?;
        Some(self.remove(key.index))
    }

    /// Frees the live timer at `index` and returns it (the caller unlinks it).
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) -> Timer<T> {
        let entry = &mut self.entries[index as usize - LISTS];
        let generation = match entry {
            Entry::Occupied(timer) => timer.generation.wrapping_add(1),
            Entry::Vacant { .. } => unreachable!("removing a vacant entry"),
        };
        let old = core::mem::replace(
            entry,
            Entry::Vacant {
                next_free: self.free_head,
                generation,
            },
        );
        self.free_head = index;
        self.len -= 1;
        match old {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("checked above"),
        }
    }

    /// Drops every timer, keeping the memory and moving every generation on so that no key
    /// handed out before stays valid.
    pub(crate) fn clear(&mut self) {
        self.free_head = NIL;
        for (offset, entry) in self.entries.iter_mut().enumerate().rev() {
            let generation = match entry {
                Entry::Occupied(timer) => timer.generation.wrapping_add(1),
                Entry::Vacant { generation, .. } => *generation,
            };
            *entry = Entry::Vacant {
                next_free: self.free_head,
                generation,
            };
            self.free_head = (LISTS + offset) as u32;
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_24_bytes_for_u64_values() {
        assert_eq!(core::mem::size_of::<Entry<u64>>(), 24);
    }

    #[test]
    fn freed_entries_are_reused_with_a_new_generation() {
        let mut slab = Slab::with_capacity(0);
        let list = ListId::new(0, 0);
        let a = slab.insert(1, 10u64, list);
        assert!(a.index as usize >= LISTS);
        assert_eq!(slab.remove_key(a).map(|t| t.value), Some(10));
        assert!(slab.get(a).is_none());
        let b = slab.insert(2, 20u64, list);
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert_eq!(slab.len(), 1);
        slab.clear();
        assert!(slab.get(b).is_none());
        assert_eq!(slab.len(), 0);
        let c = slab.insert(3, 30u64, list);
        assert_ne!(c, b);
    }

    #[test]
    fn sentinel_indices_never_resolve() {
        let mut slab: Slab<u64> = Slab::with_capacity(0);
        let live = slab.insert(1, 10, ListId::new(0, 0));
        assert_eq!(live.index as usize, LISTS);
        for index in [0, 1, LISTS as u32 - 1] {
            let key = TimerKey {
                index,
                generation: 0,
            };
            assert!(slab.get(key).is_none());
            assert!(slab.remove_key(key).is_none());
        }
    }
}
