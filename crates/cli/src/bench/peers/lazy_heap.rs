//! A binary min-heap of deadlines with lazy cancellation: the baseline ticktock-wheel has to beat.
//!
//! This is the structure a protocol stack writes when it has no wheel: a `BinaryHeap` of
//! `(Reverse(deadline), index, generation)` and a small slab that holds each timer's value and
//! current generation. Cancelling (or resetting) a timer cannot take its entry out of the middle
//! of a heap, so it only moves the slot's generation on: the old heap entry is now *dead* and is
//! skipped when it reaches the top. A reset pushes a fresh entry with the new generation.
//!
//! It is kept as lean as a careful hand-written one would be, so the comparison is fair: 16-byte
//! heap entries and 16-byte slots for `u64` values. A slot's generation is odd while it holds a
//! live timer and even while it is free (insert, cancel and fire add 1, reset adds 2), so no
//! separate "occupied" flag or `Option` is needed.
//!
//! Dead entries would pile up under churn, so when they outnumber the live ones the heap is
//! compacted with `retain` (O(n), amortized O(1) per cancel because at least n/2 cancels
//! happened since the last compaction).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

/// Names one timer of a [`LazyHeap`]: its slot and the generation the slot had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeapKey {
    index: u32,
    generation: u32,
}

/// One heap entry: earliest deadline on top; ties broken by slot and generation so the order is
/// total and deterministic.
type Entry = (Reverse<u64>, u32, u32);

#[derive(Debug)]
struct Slot<T> {
    /// Odd: the generation of the live timer in this slot. Even: the slot is free.
    generation: u32,
    /// The live timer's value; the default value while the slot is free.
    value: T,
}

/// A min-heap timer queue with lazy cancellation. See the [module docs](self).
#[derive(Debug)]
pub struct LazyHeap<T> {
    heap: BinaryHeap<Entry>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    /// Entries in `heap` whose generation no longer matches their slot.
    dead: usize,
    now: u64,
}

impl<T: Default> Default for LazyHeap<T> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<T: Default> LazyHeap<T> {
    /// An empty queue at tick 0 with room for `capacity` timers before it allocates.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            live: 0,
            dead: 0,
            now: 0,
        }
    }

    /// Live timers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// The tick of the last [`poll`](Self::poll).
    #[must_use]
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Entries in the heap, live and dead (for tests of the compaction bound).
    #[cfg(test)]
    #[must_use]
    pub fn heap_entries(&self) -> usize {
        self.heap.len()
    }

    /// Schedules `value` at `deadline`.
    ///
    /// # Panics
    /// When more than `u32::MAX` timers are live at once.
    pub fn insert(&mut self, deadline: u64, value: T) -> HeapKey {
        let (index, generation) = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.value = value;
                (index, slot.generation)
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("at most u32::MAX timers");
                self.slots.push(Slot {
                    generation: 1,
                    value,
                });
                (index, 1)
            }
        };
        self.heap.push((Reverse(deadline), index, generation));
        self.live += 1;
        HeapKey { index, generation }
    }

    /// Cancels the timer and returns its value, or `None` when the key is stale.
    pub fn cancel(&mut self, key: HeapKey) -> Option<T> {
        let slot = self.live_slot(key)?;
        slot.generation = slot.generation.wrapping_add(1);
        let value = std::mem::take(&mut slot.value);
        self.free.push(key.index);
        self.live -= 1;
        self.bury_one();
        Some(value)
    }

    /// Moves the timer to `deadline`: the old entry dies, a new one is pushed. Returns the new
    /// key, or `None` (doing nothing) when the key is stale.
    pub fn reset(&mut self, key: HeapKey, deadline: u64) -> Option<HeapKey> {
        let slot = self.live_slot(key)?;
        // Plus two: a new generation that is still odd, i.e. still live.
        slot.generation = slot.generation.wrapping_add(2);
        let generation = slot.generation;
        self.heap.push((Reverse(deadline), key.index, generation));
        self.bury_one();
        Some(HeapKey {
            index: key.index,
            generation,
        })
    }

    /// Moves time to `now` and pushes the value of every timer due at or before it onto
    /// `fired`, earliest first. Returns how many fired.
    pub fn poll(&mut self, now: u64, fired: &mut Vec<T>) -> usize {
        self.now = self.now.max(now);
        let mut count = 0;
        while let Some(top) = self.heap.peek_mut() {
            let (Reverse(deadline), index, generation) = *top;
            let slot = &mut self.slots[index as usize];
            if slot.generation != generation {
                PeekMut::pop(top);
                self.dead -= 1;
                continue;
            }
            if deadline > now {
                break;
            }
            PeekMut::pop(top);
            slot.generation = slot.generation.wrapping_add(1);
            fired.push(std::mem::take(&mut slot.value));
            self.free.push(index);
            self.live -= 1;
            count += 1;
        }
        // Firing shrinks the live count too; keep the bound after it as well.
        self.compact_if_mostly_dead();
        count
    }

    /// The slot `key` names when it holds a live timer of that generation.
    fn live_slot(&mut self, key: HeapKey) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|slot| slot.generation == key.generation && key.generation % 2 == 1)
    }

    /// Counts one more dead heap entry and compacts when the dead outnumber the live.
    fn bury_one(&mut self) {
        self.dead += 1;
        self.compact_if_mostly_dead();
    }

    /// Drops every dead entry from the heap once they outnumber the live ones.
    fn compact_if_mostly_dead(&mut self) {
        if self.dead > self.live {
            let slots = &self.slots;
            self.heap
                .retain(|&(_, index, generation)| slots[index as usize].generation == generation);
            self.dead = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// Random inserts, cancels, resets and polls against a plain list of live timers: every
    /// poll must return exactly the model's due timers, in deadline order, none early.
    #[test]
    fn matches_a_sorted_model_and_never_fires_early() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut heap = LazyHeap::with_capacity(0);
        // (key, deadline, value) of every live timer.
        let mut model: Vec<(HeapKey, u64, u64)> = Vec::new();
        let mut now = 0u64;
        let mut next_value = 0u64;
        let mut fired = Vec::new();
        for _ in 0..20_000 {
            match rng.random_range(0..10) {
                0..=3 => {
                    let deadline = now + rng.random_range(0..200);
                    let key = heap.insert(deadline, next_value);
                    model.push((key, deadline, next_value));
                    next_value += 1;
                }
                4..=5 if !model.is_empty() => {
                    let (key, _, value) = model.swap_remove(rng.random_range(0..model.len()));
                    assert_eq!(heap.cancel(key), Some(value));
                    assert_eq!(heap.cancel(key), None, "a cancelled key is stale");
                }
                6..=7 if !model.is_empty() => {
                    let i = rng.random_range(0..model.len());
                    let deadline = now + rng.random_range(0..200);
                    let old = model[i].0;
                    let new = heap.reset(old, deadline).expect("live key");
                    assert_eq!(heap.reset(old, deadline), None, "the old key is stale");
                    model[i].0 = new;
                    model[i].1 = deadline;
                }
                _ => {
                    now += rng.random_range(0..20);
                    fired.clear();
                    let count = heap.poll(now, &mut fired);
                    let mut due: Vec<(u64, u64)> = model
                        .iter()
                        .filter(|&&(_, deadline, _)| deadline <= now)
                        .map(|&(_, deadline, value)| (deadline, value))
                        .collect();
                    model.retain(|&(_, deadline, _)| deadline > now);
                    due.sort_unstable();
                    assert_eq!(count, due.len());
                    // Same timers, and popped in deadline order.
                    let mut got: Vec<(u64, u64)> = fired
                        .iter()
                        .map(|&v| {
                            (
                                due.iter().find(|d| d.1 == v).expect("fired a due timer").0,
                                v,
                            )
                        })
                        .collect();
                    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "deadline order");
                    got.sort_unstable();
                    assert_eq!(got, due);
                }
            }
            assert_eq!(heap.len(), model.len());
            assert!(
                heap.heap_entries() <= 2 * heap.len(),
                "compaction keeps dead entries at most the live ones"
            );
        }
        // Drain: everything left fires, none before its deadline.
        fired.clear();
        let last = model.iter().map(|m| m.1).max().unwrap_or(now);
        for tick in now..=last {
            let before = fired.len();
            heap.poll(tick, &mut fired);
            for value in &fired[before..] {
                let deadline = model.iter().find(|m| m.2 == *value).expect("live timer").1;
                assert!(
                    deadline <= tick,
                    "fired early: deadline {deadline} at {tick}"
                );
            }
        }
        assert_eq!(fired.len(), model.len());
        assert_eq!(heap.len(), 0);
    }

    #[test]
    fn churn_does_not_grow_the_heap() {
        let mut heap = LazyHeap::with_capacity(0);
        for round in 0..100u64 {
            let keys: Vec<HeapKey> = (0..1000).map(|i| heap.insert(round * 10 + i, i)).collect();
            for key in keys {
                assert!(heap.cancel(key).is_some());
            }
            assert_eq!(heap.heap_entries(), 0, "round {round}");
        }
        assert_eq!(heap.len(), 0);
    }
}
