//! [`FixedDelayQueue`]: timers that all share one delay, in a FIFO.
//!
//! # Why a FIFO suffices
//!
//! When every timer of a queue is armed for the same delay `d` at the time it is pushed, its
//! deadline is `now + d`. Time does not go backwards, so a timer pushed later has a deadline no
//! earlier than every timer pushed before it: **push order is deadline order**. A plain queue
//! then does everything a timer structure has to:
//!
//! - the next deadline is the front's: O(1), exact;
//! - a poll pops from the front while the front is due: O(1) per timer fired, and a poll that
//!   finds nothing due costs one comparison, however far time jumped;
//! - a push appends at the back: O(1).
//!
//! Cancellation is O(1) too: timers live in a ring buffer ([`VecDeque`]) and are numbered by a
//! sequence number that grows by one per push, so the ring position of a timer is its number
//! less the number of the front. A cancelled timer leaves a tombstone in its place; tombstones
//! are popped when they reach the front (at once when the cancelled timer *is* the front, so
//! [`FixedDelayQueue::next_deadline`] is always exact).
//!
//! # Memory
//!
//! The ring holds the timers from the oldest live one to the newest, tombstones between them
//! included. Everything older than `now - d` has fired by the time a poll at `now` returns, so a
//! queue polled regularly holds at most what was pushed within one delay (plus what was pushed
//! since the last poll), cancelled or not. The ring keeps its capacity, so once it has grown to
//! that size a queue allocates nothing more.
//!
//! # A push with an earlier `now`
//!
//! If a push's `now` is earlier than an earlier push's (two threads read a clock, then take a
//! lock in the other order), its deadline `now + d` would come before deadlines already queued.
//! Such a deadline is raised to the last deadline queued, which keeps the order and never fires
//! a timer before `now + d`: at worst it fires late by the difference between the two `now`s.
//! [`FixedDelayStats::clamped`] counts them.
//!
//! # Example
//!
//! ```
//! use ticktock_wheel::FixedDelayQueue;
//!
//! // Every request times out 50 ticks after it arrives.
//! let mut timeouts = FixedDelayQueue::new(50);
//! let a = timeouts.push(0, "a");
//! let b = timeouts.push(10, "b");
//! timeouts.push(20, "c");
//! assert_eq!(timeouts.next_deadline(), Some(50));
//!
//! // "a" was answered in time: its timer goes.
//! assert_eq!(timeouts.cancel(a), Some("a"));
//! assert_eq!(timeouts.next_deadline(), Some(60));
//!
//! let mut expired = Vec::new();
//! assert_eq!(timeouts.poll(65, &mut expired), 1);
//! assert_eq!(expired, ["b"]);
//! // A key whose timer fired (or was cancelled) is stale: using it does nothing.
//! assert_eq!(timeouts.cancel(b), None);
//! assert_eq!(timeouts.next_deadline(), Some(70));
//! ```

use alloc::collections::VecDeque;
use core::fmt;

/// Names one timer in a [`FixedDelayQueue`].
///
/// A key is the timer's sequence number (the count of pushes before it) and the id of the queue
/// that made it. Sequence numbers are never reused, so a key whose timer fired or was cancelled
/// never names another timer, and a key used on another queue is a no-op: every operation with
/// a stale or foreign key does nothing and returns `None` or `false`.
///
/// ```
/// use ticktock_wheel::FixedDelayQueue;
///
/// let mut one = FixedDelayQueue::new(10);
/// let mut other = FixedDelayQueue::new(10);
/// let key = one.push(0, 1);
/// other.push(0, 2);
/// assert_eq!(other.cancel(key), None); // not `other`'s timer
/// assert_eq!(one.cancel(key), Some(1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FixedDelayKey {
    sequence: u64,
    queue: u32,
}

/// A timer that [`FixedDelayQueue::poll_with`] hands out.
///
/// ```
/// use ticktock_wheel::FixedDelayQueue;
///
/// let mut queue = FixedDelayQueue::new(5);
/// let key = queue.push(1, 'x');
/// queue.poll_with(6, |expired| {
///     assert_eq!((expired.key, expired.deadline, expired.value), (key, 6, 'x'));
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedExpired<T> {
    /// The key the timer had; it is stale from now on.
    pub key: FixedDelayKey,
    /// The deadline tick the timer was set for (at or before the polled tick).
    pub deadline: u64,
    /// The timer's value.
    pub value: T,
}

/// A snapshot of a [`FixedDelayQueue`]'s state and lifetime counters, from
/// [`FixedDelayQueue::stats`].
///
/// ```
/// use ticktock_wheel::FixedDelayQueue;
///
/// let mut queue = FixedDelayQueue::new(10);
/// let key = queue.push(0, ());
/// queue.push(1, ());
/// queue.push(2, ());
/// queue.cancel(key);
/// let stats = queue.stats();
/// assert_eq!((stats.live, stats.cancelled, stats.fired), (2, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixedDelayStats {
    /// Live timers.
    pub live: usize,
    /// Slots in the ring: live timers plus the tombstones of cancelled ones that have not
    /// reached the front yet.
    pub slots: usize,
    /// Timers fired since the queue was made.
    pub fired: u64,
    /// Timers cancelled (including by `clear`) since the queue was made.
    pub cancelled: u64,
    /// Pushes whose deadline was raised to keep deadlines in push order (their `now` was
    /// earlier than an earlier push's).
    pub clamped: u64,
    /// Heap bytes held by the ring (used and spare capacity).
    pub heap_bytes: usize,
}

/// One slot of the ring: a live timer, or the tombstone (`None`) of a cancelled one.
#[derive(Clone)]
struct Slot<T> {
    deadline: u64,
    value: Option<T>,
}

/// Timers that all fire a fixed delay after they are pushed: O(1) push, cancel, poll per timer
/// and next deadline, no allocation once warm, never early.
///
/// A FIFO is enough because every timer has the same delay, so deadlines come in push order;
/// a cancelled timer leaves a tombstone that is dropped when it reaches the front, so the
/// queue holds at most what was pushed within one delay. Like
/// [`TimerWheel`](crate::TimerWheel) it never reads a clock: the caller says which tick it is.
///
/// Every timer comes out exactly once: returned by a poll at or after its deadline, or
/// cancelled (by [`cancel`](Self::cancel) or [`clear`](Self::clear)). A deadline is never before
/// `now + delay` of its push, and deadlines never decrease in push order (see
/// [`push`](Self::push)). Deadlines saturate at `u64::MAX`.
///
/// ```
/// use ticktock_wheel::FixedDelayQueue;
///
/// let mut idle = FixedDelayQueue::with_capacity(30_000, 1024);
/// let key = idle.push(100, "connection 7");
/// assert_eq!(idle.deadline(key), Some(30_100));
/// let mut fired = Vec::new();
/// idle.poll(30_099, &mut fired);
/// assert!(fired.is_empty());
/// idle.poll(30_100, &mut fired);
/// assert_eq!(fired, ["connection 7"]);
/// ```
pub struct FixedDelayQueue<T> {
    delay: u64,
    slots: VecDeque<Slot<T>>,
    /// Sequence number of `slots[0]`; the next push gets `front + slots.len()`.
    front: u64,
    /// The deadline of the last push (0 before the first): the floor of the next one.
    last_deadline: u64,
    live: usize,
    queue: u32,
    fired: u64,
    cancelled: u64,
    clamped: u64,
}

impl<T> fmt::Debug for FixedDelayQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedDelayQueue")
            .field("delay", &self.delay)
            .field("len", &self.live)
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

/// A new id per queue, so a key of one queue is a no-op on every other.
#[cfg(target_has_atomic = "32")]
fn next_queue_id() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Without atomics every queue has id 0: a key used on another queue is then a no-op or, at
/// worst, names a timer of that queue (as with [`TimerKey`](crate::TimerKey)); never a panic.
#[cfg(not(target_has_atomic = "32"))]
fn next_queue_id() -> u32 {
    0
}

impl<T> FixedDelayQueue<T> {
    /// An empty queue whose timers fire `delay` ticks after they are pushed. Allocates nothing
    /// until the first push.
    ///
    /// ```
    /// let queue = ticktock_wheel::FixedDelayQueue::<u32>::new(50);
    /// assert_eq!(queue.delay(), 50);
    /// assert!(queue.is_empty());
    /// ```
    #[must_use]
    pub fn new(delay: u64) -> Self {
        Self::with_capacity(delay, 0)
    }

    /// An empty queue with room for `capacity` timers (tombstones included) before it
    /// allocates.
    ///
    /// ```
    /// let queue = ticktock_wheel::FixedDelayQueue::<u32>::with_capacity(50, 4096);
    /// assert!(queue.capacity() >= 4096);
    /// ```
    #[must_use]
    pub fn with_capacity(delay: u64, capacity: usize) -> Self {
        Self {
            delay,
            slots: VecDeque::with_capacity(capacity),
            front: 0,
            last_deadline: 0,
            live: 0,
            queue: next_queue_id(),
            fired: 0,
            cancelled: 0,
            clamped: 0,
        }
    }

    /// The delay every timer gets, in ticks.
    ///
    /// ```
    /// assert_eq!(ticktock_wheel::FixedDelayQueue::<()>::new(7).delay(), 7);
    /// ```
    #[inline]
    #[must_use]
    pub fn delay(&self) -> u64 {
        self.delay
    }

    /// Number of live timers (pushed, neither fired nor cancelled).
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(7);
    /// let key = queue.push(0, ());
    /// assert_eq!(queue.len(), 1);
    /// queue.cancel(key);
    /// assert_eq!(queue.len(), 0);
    /// ```
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is live.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(7);
    /// assert!(queue.is_empty());
    /// queue.push(0, ());
    /// assert!(!queue.is_empty());
    /// ```
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How many timers (tombstones included) fit before the ring has to grow.
    ///
    /// ```
    /// let queue = ticktock_wheel::FixedDelayQueue::<u8>::with_capacity(7, 100);
    /// assert!(queue.capacity() >= 100);
    /// ```
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Makes room for at least `additional` more timers without further allocation.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::<u8>::new(7);
    /// queue.reserve(100);
    /// assert!(queue.capacity() >= 100);
    /// ```
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
    }

    /// Schedules `value` to fire at `now + delay` and returns its key.
    ///
    /// If `now` is earlier than an earlier push's `now`, the deadline is raised to the last
    /// deadline queued, so deadlines stay in push order: the timer may fire late by that
    /// difference, never early. A deadline past
    /// `u64::MAX` saturates there.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let late = queue.push(100, "late");
    /// let early = queue.push(95, "read the clock before `late` did"); // raised to 110
    /// assert_eq!(queue.deadline(late), Some(110));
    /// assert_eq!(queue.deadline(early), Some(110));
    /// ```
    #[inline]
    pub fn push(&mut self, now: u64, value: T) -> FixedDelayKey {
        let asked = now.saturating_add(self.delay);
        let deadline = if asked < self.last_deadline {
            self.clamped += 1;
            self.last_deadline
        } else {
            asked
        };
        self.last_deadline = deadline;
        let key = FixedDelayKey {
            sequence: self.front + self.slots.len() as u64,
            queue: self.queue,
        };
        self.slots.push_back(Slot {
            deadline,
            value: Some(value),
        });
        self.live += 1;
        key
    }

    /// Cancels the timer `key` names and returns its value; `None` (and nothing happens) if
    /// the key is stale (the timer fired or was cancelled) or from another queue.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(0, "x");
    /// assert_eq!(queue.cancel(key), Some("x"));
    /// assert_eq!(queue.cancel(key), None);
    /// ```
    #[inline]
    pub fn cancel(&mut self, key: FixedDelayKey) -> Option<T> {
        let index = self.index(key)?;
        let value = self.slots[index].value.take()?;
        self.live -= 1;
        self.cancelled += 1;
        if index == 0 {
            // The front is never a tombstone: that keeps `next_deadline` exact and O(1).
            self.trim_front();
        }
        Some(value)
    }

    /// The deadline of the timer `key` names, or `None` if the key is stale or foreign.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(3, ());
    /// assert_eq!(queue.deadline(key), Some(13));
    /// ```
    #[must_use]
    pub fn deadline(&self, key: FixedDelayKey) -> Option<u64> {
        let slot = &self.slots[self.index(key)?];
        slot.value.as_ref().map(|_| slot.deadline)
    }

    /// The value of the timer `key` names, or `None` if the key is stale or foreign.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(3, "x");
    /// assert_eq!(queue.get(key), Some(&"x"));
    /// ```
    #[must_use]
    pub fn get(&self, key: FixedDelayKey) -> Option<&T> {
        self.slots[self.index(key)?].value.as_ref()
    }

    /// The value of the timer `key` names, mutably, or `None` if the key is stale or foreign.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(3, 1);
    /// *queue.get_mut(key).unwrap() += 1;
    /// assert_eq!(queue.get(key), Some(&2));
    /// ```
    #[must_use]
    pub fn get_mut(&mut self, key: FixedDelayKey) -> Option<&mut T> {
        let index = self.index(key)?;
        self.slots[index].value.as_mut()
    }

    /// Whether `key` names a live timer of this queue.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(3, ());
    /// assert!(queue.contains(key));
    /// queue.cancel(key);
    /// assert!(!queue.contains(key));
    /// ```
    #[must_use]
    pub fn contains(&self, key: FixedDelayKey) -> bool {
        self.get(key).is_some()
    }

    /// The deadline of the earliest live timer, or `None` when the queue is empty. Exact, O(1).
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// assert_eq!(queue.next_deadline(), None);
    /// queue.push(5, ());
    /// assert_eq!(queue.next_deadline(), Some(15));
    /// ```
    #[inline]
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        debug_assert!(self.slots.front().is_none_or(|slot| slot.value.is_some()));
        self.slots.front().map(|slot| slot.deadline)
    }

    /// Fires every timer due at or before `now`, in deadline (= push) order, pushing the values
    /// into `out`. Returns how many fired.
    ///
    /// Costs O(1) per timer fired or tombstone passed; a poll that finds nothing due is one
    /// comparison, however far `now` jumped.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// for now in 0..5 {
    ///     queue.push(now, now);
    /// }
    /// let mut fired = Vec::new();
    /// assert_eq!(queue.poll(12, &mut fired), 3);
    /// assert_eq!(fired, [0, 1, 2]);
    /// ```
    #[inline]
    pub fn poll(&mut self, now: u64, out: &mut impl Extend<T>) -> usize {
        self.poll_with(now, |expired| out.extend(Some(expired.value)))
    }

    /// Like [`poll`](Self::poll), handing each fired timer to `fire` with its key and deadline.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// queue.push(0, "a");
    /// queue.push(1, "b");
    /// let mut deadlines = Vec::new();
    /// queue.poll_with(20, |expired| deadlines.push(expired.deadline));
    /// assert_eq!(deadlines, [10, 11]);
    /// ```
    pub fn poll_with(&mut self, now: u64, mut fire: impl FnMut(FixedExpired<T>)) -> usize {
        let mut fired = 0;
        while let Some(slot) = self.slots.front() {
            if slot.deadline > now {
                break;
            }
            let sequence = self.front;
            let Some(Slot { deadline, value }) = self.slots.pop_front() else {
                break;
            };
            self.front += 1;
            // The front is never a tombstone (see `trim_front`).
            if let Some(value) = value {
                self.live -= 1;
                fired += 1;
                fire(FixedExpired {
                    key: FixedDelayKey {
                        sequence,
                        queue: self.queue,
                    },
                    deadline,
                    value,
                });
            }
            self.trim_front();
        }
        self.fired += fired as u64;
        fired
    }

    /// Cancels every timer (dropping the values) and keeps the memory. Keys handed out before
    /// are stale afterwards; the counters in [`stats`](Self::stats) stay, and so does the floor
    /// of the next deadline (the last one queued).
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// let key = queue.push(0, ());
    /// queue.clear();
    /// assert!(queue.is_empty());
    /// assert_eq!(queue.cancel(key), None);
    /// ```
    pub fn clear(&mut self) {
        self.cancelled += self.live as u64;
        self.live = 0;
        self.front += self.slots.len() as u64;
        self.slots.clear();
    }

    /// A snapshot of the queue's statistics.
    ///
    /// ```
    /// let mut queue = ticktock_wheel::FixedDelayQueue::new(10);
    /// queue.push(0, 1u64);
    /// assert_eq!(queue.stats().live, 1);
    /// assert!(queue.stats().heap_bytes >= 16);
    /// ```
    #[must_use]
    pub fn stats(&self) -> FixedDelayStats {
        FixedDelayStats {
            live: self.live,
            slots: self.slots.len(),
            fired: self.fired,
            cancelled: self.cancelled,
            clamped: self.clamped,
            heap_bytes: self.slots.capacity() * core::mem::size_of::<Slot<T>>(),
        }
    }

    /// Where `key`'s slot is in the ring, if the key is this queue's and its slot is still
    /// there (it may hold a tombstone).
    #[inline]
    fn index(&self, key: FixedDelayKey) -> Option<usize> {
        if key.queue != self.queue {
            return None;
        }
        let index = usize::try_from(key.sequence.checked_sub(self.front)?).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    /// Pops the tombstones at the front, so the front is live or the ring empty.
    #[inline]
    fn trim_front(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.value.is_none()) {
            self.slots.pop_front();
            self.front += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::FixedDelayQueue;

    #[test]
    fn tombstones_in_the_middle_are_passed_by_a_poll() {
        let mut queue = FixedDelayQueue::new(10);
        let keys: Vec<_> = (0..5).map(|now| queue.push(now, now)).collect();
        assert_eq!(queue.cancel(keys[2]), Some(2));
        assert_eq!(queue.cancel(keys[3]), Some(3));
        assert_eq!(queue.stats().slots, 5);
        let mut fired = Vec::new();
        assert_eq!(queue.poll(11, &mut fired), 2);
        // The two tombstones behind the fired timers went with them.
        assert_eq!(queue.stats().slots, 1);
        assert_eq!(queue.next_deadline(), Some(14));
        assert_eq!(queue.poll(14, &mut fired), 1);
        assert_eq!(fired, [0, 1, 4]);
        assert!(queue.is_empty());
        assert_eq!(queue.stats().slots, 0);
    }

    #[test]
    fn cancelling_the_front_skips_the_tombstones_behind_it() {
        let mut queue = FixedDelayQueue::new(10);
        let keys: Vec<_> = (0..4).map(|now| queue.push(now, now)).collect();
        queue.cancel(keys[1]);
        queue.cancel(keys[2]);
        assert_eq!(queue.next_deadline(), Some(10));
        queue.cancel(keys[0]);
        assert_eq!(queue.next_deadline(), Some(13));
        assert_eq!(queue.stats().slots, 1);
    }

    #[test]
    fn saturating_deadlines() {
        let mut queue = FixedDelayQueue::new(u64::MAX - 1);
        let key = queue.push(5, ());
        assert_eq!(queue.deadline(key), Some(u64::MAX));
        let mut fired = Vec::new();
        assert_eq!(queue.poll(u64::MAX - 1, &mut fired), 0);
        assert_eq!(queue.poll(u64::MAX, &mut fired), 1);
    }
}
