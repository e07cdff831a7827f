//! [`BatchQueue`]: the requests waiting for a batch, in priority lanes, and how a batch is taken
//! from them. Pure data: no locking, no clock (time comes in as a parameter).
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

use std::collections::VecDeque;

use ticktock::Instant;

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

/// Waiting requests in priority lanes; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct BatchQueue<T> {
    lanes: [VecDeque<Waiting<T>>; LANES],
    len: usize,
    weight: u64,
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        Self {
            lanes: std::array::from_fn(|_| VecDeque::new()),
            len: 0,
            weight: 0,
        }
    }
}

impl<T> BatchQueue<T> {
    /// Adds a request at the back of `lane` (0 is the highest).
    pub(crate) fn push(&mut self, lane: usize, waiting: Waiting<T>) {
        debug_assert!(lane < LANES);
        self.len += 1;
        self.weight = self.weight.saturating_add(waiting.weight);
        self.lanes[lane].push_back(waiting);
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
            .filter_map(|lane| lane.front().map(|waiting| waiting.arrived))
            .min()
    }

    /// Whether what waits would fill a batch to one of its limits.
    pub(crate) fn would_fill(&self, limits: Limits) -> bool {
        self.len >= limits.max_items || self.weight >= limits.max_weight
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
                let mut reason = if front.deadline.is_some_and(|deadline| deadline <= now) {
                    Some(Dead::Expired)
                } else {
                    is_dead(&front.item)
                };
                if reason.is_none() {
                    if batch.len() >= limits.max_items
                        || weight.saturating_add(front.weight) > limits.max_weight
                    {
                        break 'lanes;
                    }
                    if !claim(&front.item) {
                        reason = Some(Dead::Cancelled);
                    }
                }
                let Some(waiting) = lane.pop_front() else {
                    break;
                };
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
        debug_assert_eq!(
            self.len,
            self.lanes.iter().map(VecDeque::len).sum::<usize>()
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
            queue.push(1, waiting(item, 10, now));
        }
        queue.push(0, waiting(100, 25, now));
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
        queue.push(1, expired);
        queue.push(1, waiting(2, 1, now));
        queue.push(1, waiting(3, 1, now));
        let mut later = waiting(4, 1, now);
        later.deadline = Some(now + Duration::from_secs(1));
        queue.push(1, later);
        let limits = Limits {
            max_items: 10,
            max_weight: u64::MAX,
        };
        let (mut batch, mut dead) = (Vec::new(), Vec::new());
        queue.push(1, waiting(5, 1, now));
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
}
