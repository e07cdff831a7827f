//! [`Registration`]: one wheel entry that follows an owner's earliest deadline.
//!
//! Both [`ConnectionTimers`](crate::ConnectionTimers) (many kinds of timer) and
//! [`LayeredTimeouts`](crate::LayeredTimeouts) (many timeout layers) keep exactly one entry in
//! the timer service, however many deadlines they track. This is that entry: the owner tells it
//! its earliest deadline tick after every change, and it keeps the wheel in line with the
//! handoff protocol of [`ConnectionShared`]:
//!
//! - a **later** deadline is a store in an atomic (no lock, no wheel operation); when the entry
//!   comes due the driver re-files it at the new deadline instead of waking the owner;
//! - an **earlier** deadline resets (or creates) the entry under the shard's lock;
//! - **no** deadline parks the entry at a tick that never comes, so that shutdown, which
//!   drains every entry, still wakes an owner waiting with nothing scheduled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;

use tokio::time::Instant;

use crate::error::Shutdown;
use ticktock_wheel::coarse_deadline;

use crate::handoff::{ConnectionShared, UNSET};
use crate::layers::LayerDeadlines;
use crate::service::{Inner, TimerHandle};
use crate::shard::{self, Entry};
use crate::stats::Counters;

/// Where an entry with no deadline waits: never reached, but drained (and so woken) at
/// shutdown.
const PARKED: u64 = UNSET - 1;

/// One wheel entry at its owner's earliest deadline; counted as one connection in the stats.
/// Dropping it takes the entry out.
#[derive(Debug)]
pub(crate) struct Registration {
    handle: TimerHandle,
    shard: u16,
    shared: Arc<ConnectionShared>,
}

impl Registration {
    pub(crate) fn new(handle: TimerHandle) -> Self {
        let shard = shard::current(handle.inner.shards.len()) as u16;
        Counters::add(&handle.inner.counters.connections, 1);
        Self {
            handle,
            shard,
            shared: Arc::new(ConnectionShared::new()),
        }
    }

    pub(crate) fn handle(&self) -> &TimerHandle {
        &self.handle
    }

    /// The tick `deadline` falls in, rounded up (so never early).
    #[inline]
    pub(crate) fn tick_of(&self, deadline: Instant) -> u64 {
        self.handle.inner.ticks.ceil(deadline)
    }

    /// The tick to file at for `deadlines`: the earlier of the exact deadline's tick and the
    /// coarse deadline's tick rounded up to the wheel granularity its slack allows.
    #[inline]
    pub(crate) fn tick_for(&self, deadlines: LayerDeadlines) -> u64 {
        let exact = deadlines
            .exact
            .map_or(UNSET, |deadline| self.tick_of(deadline));
        let coarse = deadlines.coarse.map_or(UNSET, |coarse| {
            coarse_deadline(self.tick_of(coarse.deadline), self.ticks_in(coarse.slack))
        });
        exact.min(coarse)
    }

    /// Whole ticks in `duration`.
    #[inline]
    pub(crate) fn ticks_in(&self, duration: std::time::Duration) -> u64 {
        self.handle.inner.ticks.floor_duration(duration)
    }

    /// The current tick, rounded down.
    pub(crate) fn now_tick(&self) -> u64 {
        self.handle.inner.ticks.floor(self.handle.now())
    }

    /// The tick of the driver's last pass, rounded down: never after the current tick, and at
    /// or after the tick of any entry that pass fired.
    #[inline]
    pub(crate) fn coarse_tick(&self) -> u64 {
        let inner = &self.handle.inner;
        inner
            .ticks
            .floor_nanos(inner.last_pass_nanos.load(Ordering::Relaxed))
    }

    /// Whether the tick of the driver's last pass ([`coarse_tick`](Self::coarse_tick)) is
    /// before `tick`: a multiplication where `coarse_tick` divides.
    #[inline]
    pub(crate) fn passed_before(&self, tick: u64) -> bool {
        let inner = &self.handle.inner;
        inner
            .ticks
            .floor_nanos_before(inner.last_pass_nanos.load(Ordering::Relaxed), tick)
    }

    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.handle.inner.is_shut_down()
    }

    /// Makes the entry follow `earliest` (`UNSET`: nothing to wait for, which parks it): a
    /// store when it is later than the entry, a wheel operation when it is earlier.
    ///
    /// # Errors
    /// [`Shutdown`] when an earlier deadline needs the wheel after the service stopped.
    #[inline]
    pub(crate) fn follow(&mut self, earliest: u64) -> Result<(), Shutdown> {
        let earliest = earliest.min(PARKED);
        if self.shared.publish(earliest) {
            self.file_earlier(earliest)
        } else {
            Ok(())
        }
    }

    /// The slow half of [`follow`](Self::follow), kept out of line so the per-packet path stays
    /// small: moves (or creates) the wheel entry for an earlier deadline, under the lock.
    #[cold]
    #[inline(never)]
    fn file_earlier(&mut self, earliest: u64) -> Result<(), Shutdown> {
        let inner: &Inner = &self.handle.inner;
        let wake = {
            let mut state = inner.shards[usize::from(self.shard)].lock();
            if state.shut {
                return Err(Shutdown);
            }
            let key = match self.shared.entry() {
                Some(key) if state.wheel.reset(key, earliest) => {
                    state.counts.reset += 1;
                    key
                }
                _ => {
                    state.counts.armed += 1;
                    state
                        .wheel
                        .insert(earliest, Entry::Connection(Arc::clone(&self.shared)))
                }
            };
            self.shared.file(key, earliest);
            inner.must_wake(earliest)
        };
        if wake {
            inner.wake_driver(earliest);
        }
        Ok(())
    }

    /// Clears the due flag; call before looking at the deadlines, so a fire that races with
    /// the look wakes the owner again.
    pub(crate) fn clear_due(&self) {
        self.shared.clear_due();
    }

    /// Whether the driver found the entry due (and took the waker) since the last
    /// [`clear_due`](Self::clear_due).
    #[inline]
    pub(crate) fn is_due(&self) -> bool {
        self.shared.is_due()
    }

    pub(crate) fn register_waker(&self, waker: &Waker) {
        self.shared.register_waker(waker);
    }

    /// Forgets the deadline and takes the entry out, if there is one.
    pub(crate) fn disarm(&mut self) {
        self.shared.publish(UNSET);
        let inner: &Inner = &self.handle.inner;
        let mut state = inner.shards[usize::from(self.shard)].lock();
        if let Some(key) = self.shared.entry() {
            if state.wheel.cancel(key).is_some() {
                state.counts.cancelled += 1;
            }
            self.shared.unfile();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.disarm();
        self.handle
            .inner
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}
