//! [`TimerWheel`]: the hierarchy of slot lists over the [`Slab`].

use alloc::vec::Vec;
use core::fmt;

use crate::key::TimerKey;
use crate::level::{self, LEVELS, NEAR_SLOTS, SLOT_BITS};
use crate::lists::{self, ListId, Lists, NIL, WORDS};
use crate::precision::Precision;
use crate::slab::Slab;
use crate::stats::WheelStats;

/// A timer that [`TimerWheel::poll_with`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<T> {
    /// The key the timer had; it is stale from now on.
    pub key: TimerKey,
    /// The deadline tick the timer was set for (at or before the polled tick).
    pub deadline: u64,
    /// The timer's value.
    pub value: T,
}

/// A hierarchical timing wheel over integer ticks.
///
/// See the [crate documentation](crate) for the design. In short: six levels of slots, 64 times
/// coarser each, each level also reaching into the next block of the one above; each slot an
/// intrusive circular list of timers stored in a slab, and a bitmap saying which slots are
/// non-empty. Insert, cancel and reset are O(1); finding the next slot with work
/// is a rotate and a trailing-zero count per level; polling touches only occupied slots, so
/// jumping far ahead costs O(levels + timers that move).
///
/// The wheel never reads a clock: ticks are whatever the caller says they are, and
/// [`poll`](Self::poll) is told which tick it is.
pub struct TimerWheel<T> {
    slab: Slab<T>,
    lists: Lists,
    /// The tick the wheel stands at; every timer is filed relative to it.
    now: u64,
    cascades: u64,
    postponed: u64,
    fired: u64,
    cancelled: u64,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("now", &self.now)
            .field("len", &self.len())
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel standing at tick 0. Allocates its fixed part (the 832 slot lists'
    /// sentinel links, 6.5 KiB) and room for 256 timers, which makes the tables' doubling land
    /// on powers of two.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(256)
    }

    /// An empty wheel at tick 0 with room for `capacity` timers before it allocates again.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slab: Slab::with_capacity(capacity),
            lists: Lists::with_capacity(capacity),
            now: 0,
            cascades: 0,
            postponed: 0,
            fired: 0,
            cancelled: 0,
        }
    }

    /// Number of live timers (inserted, neither fired nor cancelled).
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no timer is live.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// How many timers fit before the wheel has to allocate.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Makes room for at least `additional` more live timers without further allocation.
    pub fn reserve(&mut self, additional: usize) {
        let new = self.slab.reserve(additional);
        self.lists.reserve(new);
    }

    /// The tick the wheel stands at: that of the last [`poll`](Self::poll) (0 before the first).
    ///
    /// A timer inserted with a deadline at or before this tick is due at the next poll.
    #[inline]
    #[must_use]
    pub fn current_tick(&self) -> u64 {
        self.now
    }

    /// Schedules `value` to fire at tick `deadline` and returns its key.
    ///
    /// Any `u64` is a valid deadline: one at or before [`current_tick`](Self::current_tick)
    /// fires at the next poll, one beyond the [`HORIZON`](crate::HORIZON) waits in the top
    /// level and is re-filed until it is due.
    ///
    /// # Panics
    /// Only when more than about `u32::MAX` timers would be live at once.
    #[inline(always)]
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let list = self.list_for(deadline);
        let key = self.slab.insert(deadline, value, list);
        self.lists.cover(key.index);
        self.lists.push_front(key.index, list);
        key
    }

    /// Like [`insert`](Self::insert), with the deadline met as `precision` says: a
    /// [`Precision::Coarse`] timer fires up to an eighth of its delay late and cascades at most
    /// once (see [`Precision::deadline`]). [`deadline`](Self::deadline) then reports the
    /// rounded tick.
    ///
    /// ```
    /// use ticktock_wheel::{Precision, TimerWheel};
    ///
    /// let mut wheel = TimerWheel::new();
    /// let idle = wheel.insert_with(30_000, Precision::Coarse, "idle");
    /// assert_eq!(wheel.deadline(idle), Some(30_016)); // up to the next multiple of 64 ticks
    /// ```
    #[inline]
    pub fn insert_with(&mut self, deadline: u64, precision: Precision, value: T) -> TimerKey {
        self.insert(precision.deadline(self.now, deadline), value)
    }

    /// Like [`reset`](Self::reset), with the new deadline met as `precision` says.
    #[inline]
    pub fn reset_with(&mut self, key: TimerKey, deadline: u64, precision: Precision) -> bool {
        self.reset(key, precision.deadline(self.now, deadline))
    }

    /// Schedules many timers at once, pushing their keys into `keys` in the same order.
    ///
    /// Reserves room for the whole batch up front, so a batch causes at most one allocation.
    pub fn insert_many<I>(&mut self, timers: I, keys: &mut impl Extend<TimerKey>)
    where
        I: IntoIterator<Item = (u64, T)>,
    {
        let timers = timers.into_iter();
        self.reserve(timers.size_hint().0);
        keys.extend(timers.map(|(deadline, value)| self.insert(deadline, value)));
    }

    /// Cancels the timer `key` names and returns its value, or `None` when the key is stale
    /// (the timer fired, was cancelled, or the key is not from this wheel).
    #[inline(always)]
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let timer = self.slab.remove_key(key)?;
        self.lists.remove(key.index, timer.list);
        self.cancelled += 1;
        Some(timer.value)
    }

    /// Cancels every timer in `keys`, pushing the values of those still live into `values`.
    /// Returns how many were cancelled; stale keys are skipped.
    pub fn cancel_many<I>(&mut self, keys: I, values: &mut impl Extend<T>) -> usize
    where
        I: IntoIterator<Item = TimerKey>,
    {
        let mut cancelled = 0;
        values.extend(keys.into_iter().filter_map(|key| {
            let value = self.cancel(key);
            cancelled += usize::from(value.is_some());
            value
        }));
        cancelled
    }

    /// Moves the timer `key` names to a new deadline, keeping its key. Returns `false` (and does
    /// nothing) when the key is stale.
    ///
    /// When the new deadline files into the same slot as the old one (the common case for a
    /// timer pushed back by a little) only the stored deadline changes.
    #[inline(always)]
    pub fn reset(&mut self, key: TimerKey, deadline: u64) -> bool {
        let list = self.list_for(deadline);
        let Some(timer) = self.slab.get_mut(key) else {
            return false;
        };
        timer.deadline = deadline;
        let old = core::mem::replace(&mut timer.list, list);
        if old != list {
            self.lists.remove(key.index, old);
            self.lists.push_front(key.index, list);
        }
        true
    }

    /// The deadline of the live timer `key` names.
    #[inline]
    #[must_use]
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.slab.get(key).map(|timer| timer.deadline)
    }

    /// The value of the live timer `key` names.
    #[inline]
    #[must_use]
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.slab.get(key).map(|timer| &timer.value)
    }

    /// The value of the live timer `key` names, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.slab.get_mut(key).map(|timer| &mut timer.value)
    }

    /// Whether `key` names a live timer.
    #[inline]
    #[must_use]
    pub fn contains(&self, key: TimerKey) -> bool {
        self.slab.get(key).is_some()
    }

    /// The earliest tick at which [`poll`](Self::poll) can have work, or `None` when the wheel is
    /// empty.
    ///
    /// It is never later than the earliest deadline (or than [`current_tick`](Self::current_tick)
    /// when a timer is already overdue), so sleeping until it never oversleeps a timer. It is
    /// exact when the earliest timer is due within level 0's reach (the current 64-tick block
    /// and the next three); for timers further away it is the start of their slot, and polling
    /// at that tick moves them down to finer slots (a caller then asks again). Cost: a
    /// trailing-zero count or two per non-empty level.
    #[inline]
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_expiration(false).map(|(_, start)| start)
    }

    /// Advances the wheel to tick `now` and pushes the value of every timer due at or before
    /// `now` into `out`. Returns how many fired.
    ///
    /// Each timer fires exactly once and never before its deadline. Timers that are not yet due
    /// but whose slots were passed move down to finer slots (a cascade). Only occupied slots are
    /// visited, so a jump of any length over an empty or sparse wheel costs O(levels).
    ///
    /// A `now` earlier than [`current_tick`](Self::current_tick) (time does not go backwards, but
    /// callers make mistakes) fires only the overdue timers whose deadline is at or before `now`.
    #[inline]
    pub fn poll(&mut self, now: u64, out: &mut Vec<T>) -> usize {
        self.poll_with(now, |expired| out.push(expired.value))
    }

    /// Like [`poll`](Self::poll), handing each fired timer to `fire` with its key and deadline.
    pub fn poll_with(&mut self, now: u64, fire: impl FnMut(Expired<T>)) -> usize {
        self.poll_with_postpone(now, fire, |_, _, deadline| deadline)
    }

    /// Like [`poll_with`](Self::poll_with), and each timer the poll would cascade (move to a
    /// finer slot because its slot came up but its deadline has not) is first shown to
    /// `postpone` with its key, value and deadline. `postpone` returns the deadline to file it
    /// at: its own to cascade as usual, or a later one, for a timer whose owner has since moved
    /// on (the timer service's per-connection entries). Returning an earlier deadline counts as
    /// returning the timer's own, so nothing is fired early or skipped.
    ///
    /// A postponed timer keeps its key; [`stats`](Self::stats) counts it in `postponed`, not
    /// in `cascades`.
    pub fn poll_with_postpone(
        &mut self,
        now: u64,
        mut fire: impl FnMut(Expired<T>),
        mut postpone: impl FnMut(TimerKey, &T, u64) -> u64,
    ) -> usize {
        if now < self.now {
            return self.poll_behind(now, &mut fire);
        }
        let fired_before = self.fired;
        // Top-level timers that are not yet due may be whole rotations away; they wait here,
        // off the wheel, until it stands at `now`, so a jump of any length moves each of them
        // once instead of once per rotation.
        let mut deferred = NIL;
        let mut mid_tick = false;
        while let Some((list, start)) = self.next_expiration(mid_tick) {
            if start > now {
                break;
            }
            mid_tick = list.level() > 0;
            // No slot starts before `start`, so the wheel may stand there: the timers of this
            // slot that are not due then file into finer levels relative to it (a cascade).
            self.now = start;
            let top = list.level() == LEVELS - 1;
            let end = list.sentinel();
            let mut index = self.lists.take(list);
            while index != end {
                let next = self.lists.next(index);
                let deadline = self.slab.timer(index).deadline;
                if deadline <= now {
                    self.fire(index, &mut fire);
                } else if top {
                    self.lists.set_next(index, deferred);
                    deferred = index;
                } else {
                    let timer = self.slab.timer(index);
                    let key = TimerKey {
                        index,
                        generation: timer.generation,
                    };
                    let later = postpone(key, &timer.value, deadline);
                    if later > deadline {
                        self.slab.timer_mut(index).deadline = later;
                        self.postponed += 1;
                        self.file(index, later);
                    } else {
                        self.refile(index, deadline);
                        debug_assert!(self.slab.timer(index).list.level() < list.level());
                    }
                }
                index = next;
            }
        }
        self.now = now;
        while deferred != NIL {
            let next = self.lists.next(deferred);
            self.refile(deferred, self.slab.timer(deferred).deadline);
            deferred = next;
        }
        (self.fired - fired_before) as usize
    }

    /// Cancels every timer (dropping the values) and keeps the memory. Keys handed out before
    /// are stale afterwards. The current tick and the counters in [`stats`](Self::stats) stay.
    pub fn clear(&mut self) {
        self.cancelled += self.slab.len() as u64;
        self.slab.clear();
        self.lists.clear();
    }

    /// A snapshot of the wheel's statistics.
    #[must_use]
    pub fn stats(&self) -> WheelStats {
        WheelStats {
            live: self.slab.len(),
            occupied_slots_per_level: self.occupied_slots_per_level(),
            cascades: self.cascades,
            postponed: self.postponed,
            fired: self.fired,
            cancelled: self.cancelled,
            heap_bytes: self.slab.heap_bytes() + self.lists.heap_bytes(),
        }
    }

    fn occupied_slots_per_level(&self) -> [u32; LEVELS] {
        core::array::from_fn(|level| {
            lists::level_words(self.lists.occupied(), level)
                .iter()
                .map(|bits| bits.count_ones())
                .sum()
        })
    }

    /// The list a timer due at `deadline` belongs on now.
    #[inline]
    fn list_for(&self, deadline: u64) -> ListId {
        let tick = level::file_tick(self.now, deadline);
        let level = level::level_for(self.now, tick);
        ListId::new(level, level::slot_for(tick, level))
    }

    /// The first occupied slot and the tick it starts at: the earliest next slot over the
    /// non-empty levels (their reaches overlap, so a lower level can hold later work than a
    /// higher one). On a tie the higher level goes first: once the wheel stands at a slot's
    /// start, that slot is the current one, and the top level counts its current slot as a
    /// whole rotation ahead.
    ///
    /// `mid_tick` says a poll has just taken a slot of level 1 or above that starts at the
    /// current tick, so other slots starting there may not have been taken yet. Otherwise (at
    /// rest, or after a level-0 slot, which goes last at its tick) every slot of a level above
    /// 0 starts after the current tick: no list is filed into the slot that holds the current
    /// tick on a level above 0, because a lower level reaches it.
    #[inline]
    fn next_expiration(&self, mid_tick: bool) -> Option<(ListId, u64)> {
        let next = self.find_next_expiration(mid_tick);
        #[cfg(debug_assertions)]
        assert_eq!(next, self.next_expiration_by_scan());
        debug_assert!(
            next.is_none_or(|(list, _)| self.lists.occupied()[list.word()] & list.bit() != 0)
        );
        next
    }

    /// [`next_expiration`](Self::next_expiration) from the fewest levels that can have it.
    #[inline]
    fn find_next_expiration(&self, mid_tick: bool) -> Option<(ListId, u64)> {
        let occupied = self.lists.occupied();
        let now = self.now;
        // Most often level 0 has work in the current 64-tick block, and no slot of a higher
        // level starts before it. Level 0's four words are its four blocks, so that is one
        // word.
        let position = now as usize & (NEAR_SLOTS - 1);
        let ahead = occupied[position / 64] >> (position % 64);
        if ahead != 0 && !(mid_tick && position.is_multiple_of(64)) {
            let distance = ahead.trailing_zeros() as usize;
            return Some((ListId::new(0, position + distance), now + distance as u64));
        }
        let mut next: Option<(ListId, u64)> = None;
        let mut word = 0;
        // Level by level upwards from the first non-empty one, while a higher level could still
        // have a slot starting before the earliest found.
        while let Some(found) = occupied[word..].iter().position(|&bits| bits != 0) {
            let level = lists::level_of_word(word + found);
            let (slot, start) =
                level::next_occupied(lists::level_words(occupied, level), level, now);
            if next.is_none_or(|(_, earliest)| start <= earliest) {
                next = Some((ListId::new(level, slot), start));
            }
            let above = level + 1;
            if above == LEVELS {
                break;
            }
            // No slot of the next level or above starts before its first slot boundary after
            // the current tick (or at it, when a slot starting there may be left).
            let shift = SLOT_BITS * above as u32;
            let aligned = now & ((1 << shift) - 1) == 0;
            let blocks = (now >> shift) + u64::from(!(mid_tick && aligned));
            let boundary = if blocks > u64::MAX >> shift {
                u64::MAX
            } else {
                blocks << shift
            };
            if next.is_some_and(|(_, earliest)| earliest < boundary) {
                break;
            }
            word = level::first_list(above) / 64;
        }
        next
    }

    /// What [`next_expiration`](Self::next_expiration) finds, by looking at every level.
    #[cfg(debug_assertions)]
    fn next_expiration_by_scan(&self) -> Option<(ListId, u64)> {
        let occupied = self.lists.occupied();
        let mut next: Option<(ListId, u64)> = None;
        for level in (0..LEVELS).rev() {
            let words = lists::level_words(occupied, level);
            if words.iter().all(|&bits| bits == 0) {
                continue;
            }
            let (slot, start) = level::next_occupied(words, level, self.now);
            if next.is_none_or(|(_, earliest)| start < earliest) {
                next = Some((ListId::new(level, slot), start));
            }
        }
        next
    }

    /// Cascades timer `index`, on no list, to where `deadline` belongs now.
    #[inline]
    fn refile(&mut self, index: u32, deadline: u64) {
        self.file(index, deadline);
        self.cascades += 1;
    }

    /// Files timer `index`, on no list, where `deadline` belongs now.
    #[inline]
    fn file(&mut self, index: u32, deadline: u64) {
        let list = self.list_for(deadline);
        self.slab.timer_mut(index).list = list;
        self.lists.push_front(index, list);
    }

    #[inline]
    fn fire(&mut self, index: u32, fire: &mut impl FnMut(Expired<T>)) {
        let timer = self.slab.remove(index);
        self.fired += 1;
        fire(Expired {
            key: TimerKey {
                index,
                generation: timer.generation,
            },
            deadline: timer.deadline,
            value: timer.value,
        });
    }

    /// `poll` with a tick before the current one: only overdue timers (all filed in the current
    /// level-0 slot) can be due.
    fn poll_behind(&mut self, now: u64, fire: &mut impl FnMut(Expired<T>)) -> usize {
        let list = ListId::new(0, level::slot_for(self.now, 0));
        if self.lists.occupied()[list.word()] & list.bit() == 0 {
            return 0;
        }
        let fired_before = self.fired;
        let end = list.sentinel();
        let mut index = self.lists.take(list);
        while index != end {
            let next = self.lists.next(index);
            if self.slab.timer(index).deadline <= now {
                self.fire(index, fire);
            } else {
                self.lists.push_front(index, list);
            }
            index = next;
        }
        (self.fired - fired_before) as usize
    }
}

/// Hooks for the batch paths (`crate::batch`), which compute lists in lanes and estimate polls.
impl<T> TimerWheel<T> {
    /// Inserts a timer onto `list`, which must be the list `deadline` files into now (the SIMD
    /// batch path computes it for four deadlines at a time).
    #[inline(always)]
    pub(crate) fn insert_filed(&mut self, deadline: u64, value: T, list: ListId) -> TimerKey {
        debug_assert_eq!(list, self.list_for(deadline));
        let key = self.slab.insert(deadline, value, list);
        self.lists.cover(key.index);
        self.lists.push_front(key.index, list);
        key
    }

    /// The occupancy bitmap: level 0's four words, two for each middle level, one for the top.
    #[inline]
    pub(crate) fn occupancy(&self) -> &[u64; WORDS] {
        self.lists.occupied()
    }
}
