//! [`BatchQueue`]: the requests waiting for a batch, in priority lanes, how a batch is taken
//! from them, and the deadlines of those that use the batcher's default deadline. Pure data: no
//! locking, no clock (time comes in as a parameter).
//!
//! # Default deadlines
//!
//! Every request that uses the batcher's default deadline waits the same `Duration`, so their
//! deadlines come in arrival order and one [`FixedDelayQueue`] (a FIFO) holds them all: O(1) to
//! add, to remove when the request leaves the queue, and to find the earliest. The batcher
//! waits for that earliest deadline with a single timer-service sleep and then calls
//! [`BatchQueue::expire_due`], instead of every caller arming and cancelling a sleep of its own.
//! For that, requests can leave a lane from the middle: a lane is a ring of slots numbered by a
//! sequence number, and a removed request leaves an empty slot that is dropped when it reaches
//! the front.
//!
//! # Invariants
//! - FIFO within a lane; a batch takes from the highest lane first.
//! - A batch never exceeds the item limit or the weight limit: an item joins only if it fits.
//!   Items heavier than the weight limit never get here (they are rejected at admission), so
//!   the first item always fits and a batch is never empty while live items wait.
//! - An item whose deadline has passed, or whose caller is gone or has claimed its timeout,
//!   never joins a batch: it is handed back as dead instead. Joining is a claim the caller's
//!   timeout can lose to, so a request either starts or times out, never both.
//! - `len` and `weight` always equal the count and weight sum of the items in the lanes.
//! - A lane's front slot is never empty.
//! - The FIFO holds a timer for exactly the queued items that use the default deadline: every
//!   way out of the queue (a batch, dead, expired) removes it.

use std::collections::VecDeque;
use std::time::Duration;

use ticktock::Instant;
use ticktock_wheel::{FixedDelayKey, FixedDelayQueue};

/// Priority lanes, highest first.
pub(crate) const LANES: usize = 2;

/// Limits of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_items: usize,
    pub(crate) max_weight: u64,
}

/// A request waiting in the queue.
#[derive(Debug)]
pub(crate) struct Waiting<T> {
    pub(crate) item: T,
    pub(crate) weight: u64,
    pub(crate) arrived: Instant,
    pub(crate) deadline: Option<Instant>,
}

/// Why an item left the queue without joining a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    /// Its deadline passed while it waited (seen by the queue at `now`).
    Expired,
    /// Its caller closed it: timed out on its own clock, or stopped waiting.
    Cancelled,
}

/// A queued request and, if it uses the default deadline, its timer in the FIFO.
#[derive(Debug)]
struct Queued<T> {
    waiting: Waiting<T>,
    timer: Option<FixedDelayKey>,
}

/// One priority lane: a ring of slots, `None` where a request left from the middle.
#[derive(Debug)]
struct Lane<T> {
    slots: VecDeque<Option<Queued<T>>>,
    /// Sequence number of `slots[0]`.
    front: u64,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
            front: 0,
        }
    }
}

impl<T> Lane<T> {
    fn front(&self) -> Option<&Queued<T>> {
        self.slots.front().and_then(Option::as_ref)
    }

    fn push(&mut self, queued: Queued<T>) -> u64 {
        self.slots.push_back(Some(queued));
        self.front + self.slots.len() as u64 - 1
    }

    fn pop_front(&mut self) -> Option<Queued<T>> {
        let queued = self.slots.pop_front()??;
        self.front += 1;
        self.trim_front();
        Some(queued)
    }

    /// Takes request `sequence` out, if it is still here.
    fn remove(&mut self, sequence: u64) -> Option<Queued<T>> {
        let index = usize::try_from(sequence.checked_sub(self.front)?).ok()?;
        let queued = self.slots.get_mut(index)?.take()?;
        if index == 0 {
            self.trim_front();
        }
        Some(queued)
    }

    fn trim_front(&mut self) {
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.front += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The default deadlines: one FIFO in nanoseconds since `base`.
#[derive(Debug)]
struct DefaultDeadlines {
    base: Instant,
    /// The lane and sequence number of each request.
    fifo: FixedDelayQueue<(usize, u64)>,
}

impl DefaultDeadlines {
    /// `at` in ticks (nanoseconds since `base`), rounded down: a deadline in ticks is then
    /// never before the deadline as an instant, and equal to it when `at` is after `base`.
    fn tick(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(&self, tick: u64) -> Instant {
        // Cannot overflow: an instant holds far more than the 584 years of u64 nanoseconds.
        self.base + Duration::from_nanos(tick)
    }
}

/// Waiting requests in priority lanes; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct BatchQueue<T> {
    lanes: [Lane<T>; LANES],
    len: usize,
    weight: u64,
    deadlines: Option<DefaultDeadlines>,
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        Self {
            lanes: std::array::from_fn(|_| Lane::default()),
            len: 0,
            weight: 0,
            deadlines: None,
        }
    }
}

impl<T> BatchQueue<T> {
    /// A queue that keeps the deadlines of requests using the default `deadline` itself (see
    /// [`push`](Self::push)); `base` is an instant no later than any arrival. `None` if the
    /// deadline is too long to count in u64 nanoseconds (584 years).
    pub(crate) fn with_default_deadline(base: Instant, deadline: Duration) -> Option<Self> {
        let delay = u64::try_from(deadline.as_nanos()).ok()?;
        Some(Self {
            deadlines: Some(DefaultDeadlines {
                base,
                fifo: FixedDelayQueue::new(delay),
            }),
            ..Self::default()
        })
    }

    /// Adds a request at the back of `lane` (0 is the highest). With `default_deadline` (its
    /// deadline is the batcher's default) and a queue made by
    /// [`with_default_deadline`](Self::with_default_deadline), the queue keeps its deadline:
    /// [`expire_due`](Self::expire_due) hands it back once due. Returns whether it does, and so
    /// whether the caller can skip a timer of its own.
    pub(crate) fn push(
        &mut self,
        lane: usize,
        waiting: Waiting<T>,
        default_deadline: bool,
    ) -> bool {
        debug_assert!(lane < LANES);
        self.len += 1;
        self.weight = self.weight.saturating_add(waiting.weight);
        let lane_ref = &mut self.lanes[lane];
        let sequence = lane_ref.front + lane_ref.slots.len() as u64;
        let timer = match (&mut self.deadlines, waiting.deadline) {
            (Some(deadlines), Some(_)) if default_deadline => {
                let arrived = deadlines.tick(waiting.arrived);
                Some(deadlines.fifo.push(arrived, (lane, sequence)))
            }
            _ => None,
        };
        let pushed = lane_ref.push(Queued { waiting, timer });
        debug_assert_eq!(pushed, sequence);
        timer.is_some()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the longest-waiting request arrived.
    pub(crate) fn oldest_arrival(&self) -> Option<Instant> {
        self.lanes
            .iter()
            .filter_map(|lane| lane.front().map(|queued| queued.waiting.arrived))
            .min()
    }

    /// Whether what waits would fill a batch to one of its limits.
    pub(crate) fn would_fill(&self, limits: Limits) -> bool {
        self.len >= limits.max_items || self.weight >= limits.max_weight
    }

    /// The earliest deadline the queue keeps itself (see [`push`](Self::push)), exactly; `None`
    /// if it keeps none.
    pub(crate) fn next_default_deadline(&self) -> Option<Instant> {
        let deadlines = self.deadlines.as_ref()?;
        Some(deadlines.instant(deadlines.fifo.next_deadline()?))
    }

    /// Hands every request whose default deadline is at or before `now` to `dead` as
    /// [`Dead::Expired`], in deadline order. O(1) per request.
    pub(crate) fn expire_due(&mut self, now: Instant, dead: &mut Vec<(T, Dead)>) {
        let Some(deadlines) = &mut self.deadlines else {
            return;
        };
        let now = deadlines.tick(now);
        let (lanes, len, weight) = (&mut self.lanes, &mut self.len, &mut self.weight);
        deadlines.fifo.poll_with(now, |expired| {
            let (lane, sequence) = expired.value;
            let removed = lanes[lane].remove(sequence);
            // Every way out of the lane cancels the timer, so the request is still there.
            debug_assert!(
                removed.is_some(),
                "a default-deadline timer outlived its request"
            );
            if let Some(queued) = removed {
                *len -= 1;
                *weight -= queued.waiting.weight;
                dead.push((queued.waiting.item, Dead::Expired));
            }
        });
    }

    /// Takes the next batch at `now` into `batch`, highest lane first, FIFO, as long as the
    /// next item fits. Items met on the way that `is_dead` names, or whose deadline passed,
    /// go to `dead`; an item that fits joins only if `claim` succeeds (else its caller just
    /// closed it).
    pub(crate) fn take_batch(
        &mut self,
        now: Instant,
        limits: Limits,
        is_dead: impl Fn(&T) -> Option<Dead>,
        claim: impl Fn(&T) -> bool,
        batch: &mut Vec<T>,
        dead: &mut Vec<(T, Dead)>,
    ) {
        let mut weight = 0u64;
        'lanes: for lane in &mut self.lanes {
            while let Some(front) = lane.front() {
                let waiting = &front.waiting;
                let mut reason = if waiting.deadline.is_some_and(|deadline| deadline <= now) {
                    Some(Dead::Expired)
                } else {
                    is_dead(&waiting.item)
                };
                if reason.is_none() {
                    if batch.len() >= limits.max_items
                        || weight.saturating_add(waiting.weight) > limits.max_weight
                    {
                        break 'lanes;
                    }
                    if !claim(&waiting.item) {
                        reason = Some(Dead::Cancelled);
                    }
                }
                let Some(Queued { waiting, timer }) = lane.pop_front() else {
                    break;
                };
                if let (Some(timer), Some(deadlines)) = (timer, &mut self.deadlines) {
                    let cancelled = deadlines.fifo.cancel(timer);
                    debug_assert!(cancelled.is_some());
                }
                self.len -= 1;
                self.weight -= waiting.weight;
                match reason {
                    Some(reason) => dead.push((waiting.item, reason)),
                    None => {
                        weight += waiting.weight;
                        batch.push(waiting.item);
                    }
                }
            }
        }
        debug_assert!(batch.len() <= limits.max_items && weight <= limits.max_weight);
        debug_assert!(
            self.lanes
                .iter()
                .all(|lane| lane.is_empty() || lane.front().is_some())
        );
        debug_assert!(
            self.deadlines
                .as_ref()
                .is_none_or(|deadlines| deadlines.fifo.len() <= self.len)
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn waiting(item: u32, weight: u64, at: Instant) -> Waiting<u32> {
        Waiting {
            item,
            weight,
            arrived: at,
            deadline: None,
        }
    }

    #[test]
    fn batches_respect_lanes_fifo_and_both_limits() {
        let now = Instant::now();
        let mut queue = BatchQueue::default();
        for item in 0..5 {
            queue.push(1, waiting(item, 10, now), false);
        }
        queue.push(0, waiting(100, 25, now), false);
        let limits = Limits {
            max_items: 4,
            max_weight: 50,
        };
        let (mut batch, mut dead) = (Vec::new(), Vec::new());
        queue.take_batch(now, limits, |_| None, |_| true, &mut batch, &mut dead);
        // 25 + 10 + 10 = 45; the next 10 would make 55 > 50.
        assert_eq!(batch, [100, 0, 1]);
        assert!(dead.is_empty());
        assert_eq!((queue.len(), queue.weight), (3, 30));
        batch.clear();
        queue.take_batch(now, limits, |_| None, |_| true, &mut batch, &mut dead);
        assert_eq!(batch, [2, 3, 4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn expired_and_cancelled_items_never_join() {
        let now = Instant::now();
        let mut queue = BatchQueue::default();
        let mut expired = waiting(1, 1, now);
        expired.deadline = Some(now);
        queue.push(1, expired, false);
        queue.push(1, waiting(2, 1, now), false);
        queue.push(1, waiting(3, 1, now), false);
        let mut later = waiting(4, 1, now);
        later.deadline = Some(now + Duration::from_secs(1));
        queue.push(1, later, false);
        let limits = Limits {
            max_items: 10,
            max_weight: u64::MAX,
        };
        let (mut batch, mut dead) = (Vec::new(), Vec::new());
        queue.push(1, waiting(5, 1, now), false);
        let cancelled = |&item: &u32| (item == 3).then_some(Dead::Cancelled);
        // 5's caller claims its timeout just as the batch forms.
        let claim = |&item: &u32| item != 5;
        queue.take_batch(now, limits, cancelled, claim, &mut batch, &mut dead);
        assert_eq!(batch, [2, 4]);
        assert_eq!(
            dead,
            [
                (1, Dead::Expired),
                (3, Dead::Cancelled),
                (5, Dead::Cancelled)
            ]
        );
    }

    #[test]
    fn default_deadlines_expire_from_the_middle_of_either_lane_in_order() {
        let base = Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let deadline = Duration::from_millis(30);
        let mut queue = BatchQueue::with_default_deadline(base, deadline).unwrap();
        let push = |queue: &mut BatchQueue<u32>, item, lane, ms, default: bool| {
            let mut waiting = waiting(item, 1, at(ms));
            waiting.deadline = Some(at(ms + if default { 30 } else { 5 }));
            queue.push(lane, waiting, default)
        };
        assert!(push(&mut queue, 1, 1, 0, true));
        assert!(!push(&mut queue, 2, 1, 1, false)); // a per-call deadline: not the queue's
        assert!(push(&mut queue, 3, 0, 2, true));
        assert!(push(&mut queue, 4, 1, 3, true));
        assert!(push(&mut queue, 5, 1, 4, true));
        assert_eq!(queue.next_default_deadline(), Some(at(30)));
        let (mut batch, mut dead) = (Vec::new(), Vec::new());
        queue.expire_due(at(29), &mut dead);
        assert!(dead.is_empty());
        queue.expire_due(at(32), &mut dead);
        assert_eq!(dead, [(1, Dead::Expired), (3, Dead::Expired)]);
        assert_eq!(queue.next_default_deadline(), Some(at(33)));
        assert_eq!((queue.len(), queue.weight), (3, 3));
        // 2 is at the front of lane 1 now; a batch takes it and 4, and cancels 4's timer.
        let limits = Limits {
            max_items: 2,
            max_weight: u64::MAX,
        };
        queue.take_batch(at(5), limits, |_| None, |_| true, &mut batch, &mut dead);
        assert_eq!(batch, [2, 4]);
        assert_eq!(queue.next_default_deadline(), Some(at(34)));
        dead.clear();
        queue.expire_due(at(1000), &mut dead);
        assert_eq!(dead, [(5, Dead::Expired)]);
        assert!(queue.is_empty());
        assert_eq!(queue.next_default_deadline(), None);
        assert!(BatchQueue::<u32>::with_default_deadline(base, Duration::MAX).is_none());
    }
}
