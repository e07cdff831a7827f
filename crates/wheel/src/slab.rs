//! The entry table behind the wheel: a slab with a free list and generations.
//!
//! Every timer lives in one [`Entry`] of a `Vec`, found in O(1) by index. Freed entries form a
//! LIFO free list threaded through the vacant entries themselves, so a warm wheel allocates
//! nothing: a new timer reuses the entry the last fired or cancelled one left (which is also the
//! entry most likely to still be in cache). Each free bumps the entry's generation, which is what
//! makes stale [`TimerKey`]s harmless.
//!
//! An occupied entry is 32 bytes for `T = u64`: the deadline, the value, the two `u32` links of
//! its slot's intrusive list, the generation and the [`ListId`] of that list. The vacant variant
//! fits beside the `ListId` niche, so the enum needs no tag of its own.

use alloc::vec::Vec;
use core::num::NonZeroU16;

use crate::key::TimerKey;
use crate::level::SLOTS;

/// The "no entry" link of the intrusive lists.
pub(crate) const NIL: u32 = u32::MAX;

/// Which slot list an entry is on: `level * 64 + slot`, stored plus one so the type has a niche.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ListId(NonZeroU16);

impl ListId {
    #[inline]
    pub(crate) fn new(level: usize, slot: usize) -> Self {
        debug_assert!(slot < SLOTS);
        let raw = (level * SLOTS + slot + 1) as u16;
        match NonZeroU16::new(raw) {
            Some(id) => Self(id),
            None => unreachable!("level * 64 + slot + 1 is never zero"),
        }
    }

    /// Index into the wheel's flat array of slot heads.
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0.get()) - 1
    }

    #[inline]
    pub(crate) fn level(self) -> usize {
        self.index() / SLOTS
    }

    /// This slot's bit in its level's occupancy bitmap.
    #[inline]
    pub(crate) fn bit(self) -> u64 {
        1 << (self.index() % SLOTS)
    }
}

/// A live timer.
pub(crate) struct Timer<T> {
    pub(crate) deadline: u64,
    pub(crate) value: T,
    pub(crate) next: u32,
    pub(crate) prev: u32,
    pub(crate) generation: u32,
    pub(crate) list: ListId,
}

enum Entry<T> {
    Occupied(Timer<T>),
    Vacant { next_free: u32, generation: u32 },
}

/// Storage for timers, indexed by `u32`.
pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Self {
            entries: Vec::new(),
            free_head: NIL,
            len: 0,
        }
    }

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

    /// Makes room for `additional` more timers beyond those that free entries can take.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let free = self.entries.len() - self.len;
        if additional > free {
            self.entries.reserve(additional - free);
        }
    }

    /// Stores a timer as the new head of `list`, ahead of `next` (the list's old head); returns
    /// its key. The caller finishes the link (the old head's `prev`, the list head).
    ///
    /// # Panics
    /// When the table already holds `u32::MAX - 1` entries (128 GiB of timers), as `Vec` panics
    /// on capacity overflow.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: u64, value: T, list: ListId, next: u32) -> TimerKey {
        let index = self.free_head;
        self.len += 1;
        if index != NIL {
            let entry = &mut self.entries[index as usize];
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
                next,
                prev: NIL,
                generation,
                list,
            });
            TimerKey { index, generation }
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("ticktock-wheel: more than u32::MAX - 1 timers");
            self.entries.push(Entry::Occupied(Timer {
                deadline,
                value,
                next,
                prev: NIL,
                generation: 0,
                list,
            }));
            TimerKey {
                index,
                generation: 0,
            }
        }
    }

    /// The index of the live timer `key` names, if it names one.
    #[inline]
    pub(crate) fn resolve(&self, key: TimerKey) -> Option<u32> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied(timer)) if timer.generation == key.generation => Some(key.index),
            _ => None,
        }
    }

    /// The live timer `key` names, with its index.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut Timer<T>> {
        match self.entries.get_mut(key.index as usize) {
            Some(Entry::Occupied(timer)) if timer.generation == key.generation => Some(timer),
            _ => None,
        }
    }

    /// Frees the live timer `key` names and returns it; its neighbours still point at it, so
    /// the caller unlinks it with the returned links.
    #[inline]
    pub(crate) fn remove_key(&mut self, key: TimerKey) -> Option<Timer<T>> {
        let entry = self.entries.get_mut(key.index as usize)?;
        match entry {
            Entry::Occupied(timer) if timer.generation == key.generation => {}
            _ => return None,
        }
        let old = core::mem::replace(
            entry,
            Entry::Vacant {
                next_free: self.free_head,
                generation: key.generation.wrapping_add(1),
            },
        );
        self.free_head = key.index;
        self.len -= 1;
        match old {
            Entry::Occupied(timer) => Some(timer),
            Entry::Vacant { .. } => unreachable!("checked above"),
        }
    }

    /// The live timer at `index`. Internal links always point at live timers.
    #[inline]
    pub(crate) fn timer(&self, index: u32) -> &Timer<T> {
        match &self.entries[index as usize] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("link to a vacant entry"),
        }
    }

    /// The live timer at `index`, mutably.
    #[inline]
    pub(crate) fn timer_mut(&mut self, index: u32) -> &mut Timer<T> {
        match &mut self.entries[index as usize] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("link to a vacant entry"),
        }
    }

    /// Frees the live timer at `index` (already off its list) and returns it.
    #[inline]
    pub(crate) fn remove(&mut self, index: u32) -> Timer<T> {
        let entry = &mut self.entries[index as usize];
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
        for (index, entry) in self.entries.iter_mut().enumerate().rev() {
            let generation = match entry {
                Entry::Occupied(timer) => timer.generation.wrapping_add(1),
                Entry::Vacant { generation, .. } => *generation,
            };
            *entry = Entry::Vacant {
                next_free: self.free_head,
                generation,
            };
            self.free_head = index as u32;
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_32_bytes_for_u64_values() {
        assert_eq!(core::mem::size_of::<Entry<u64>>(), 32);
    }

    #[test]
    fn freed_entries_are_reused_with_a_new_generation() {
        let mut slab = Slab::new();
        let list = ListId::new(0, 0);
        let a = slab.insert(1, 10u64, list, NIL);
        let index = slab.resolve(a).unwrap();
        assert_eq!(slab.remove(index).value, 10);
        assert_eq!(slab.resolve(a), None);
        let b = slab.insert(2, 20u64, list, NIL);
        assert_eq!(b.index, a.index);
        assert_ne!(b.generation, a.generation);
        assert_eq!(slab.len(), 1);
        slab.clear();
        assert_eq!(slab.resolve(b), None);
        assert_eq!(slab.len(), 0);
        let c = slab.insert(3, 30u64, list, NIL);
        assert_ne!(c, b);
    }
}
