//! [`ConnectionTimers`]: every timeout of one connection, on one wheel entry (the seed's
//! `TimerManager`).
//!
//! # Design
//!
//! A connection keeps the deadline of each [`TimeoutEvent`] kind in a small array it owns, and
//! holds **one** wheel entry in the timer service, filed at (or before) its earliest deadline.
//!
//! - Moving a deadline **later** — the idle timer on every packet — only stores the new
//!   earliest deadline in an atomic (`wanted`): no lock, no allocation, no wheel operation.
//!   When the entry comes due the driver compares it with `wanted` and, if the connection
//!   moved on, files the entry again at `wanted` instead of disturbing the connection.
//! - Moving a deadline **earlier** resets the entry under the shard's lock (O(1)).
//! - The idle timer is [`Precision::Coarse`] by default: its deadline is rounded up to the
//!   wheel granularity that is at most an eighth of its delay, so when it does run out it fires
//!   at a slot boundary instead of cascading down to its own tick.
//!   [`set_precision`](ConnectionTimers::set_precision) chooses per kind.
//! - When the earliest deadline really passes, the driver sets the `due` flag and wakes the
//!   connection's waker: a flag and a waker, so delivery never allocates, never blocks the
//!   driver and never loses an event however slow the connection is. Which kinds fired is
//!   worked out by the connection from its own deadlines.
//!
//! # Shared state and its invariants
//!
//! `armed` is the tick of the wheel entry (`u64::MAX`: no entry) and `key` its wheel key; both
//! change only under the shard's lock, so whoever holds the lock sees them agree with the
//! wheel. `wanted` is written by the connection alone. The driver reads `wanted` when the entry
//! fires: if the connection stored a later deadline first, the driver re-files the entry; if
//! not, it reports `due` and the connection, finding nothing due, re-arms. Either way every
//! deadline is seen, and none early: kinds are reported only once their deadline tick is at or
//! before the current tick.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use ticktock_wheel::coarse_deadline;

use crate::Precision;
use crate::error::Shutdown;
use crate::handoff::UNSET;
use crate::registration::Registration;
use crate::service::TimerHandle;

/// Number of user-defined kinds: [`TimeoutEvent::User`] takes `0..USER_KINDS`.
pub const USER_KINDS: u8 = 8;

const BUILT_IN_KINDS: usize = 5;
const KINDS: usize = BUILT_IN_KINDS + USER_KINDS as usize;
/// The idle timer's slot in the deadline array.
const IDLE: usize = 0;

/// The kinds of timeout a connection has, one timer each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeoutEvent {
    /// Fires when no packet arrived for the idle timeout.
    IdleTimeout,
    /// Fires when the handshake did not complete in time.
    ConnectionTimeout,
    /// Fires when path validation did not complete in time.
    PathValidationTimeout,
    /// Fires when the retransmission timeout (RTO) expires.
    RetransmissionTimeout,
    /// Fires when a keep-alive should be sent.
    KeepAlive,
    /// Fires when the user-defined timer with this number (`0..USER_KINDS`) expires.
    User(u8),
}

impl TimeoutEvent {
    /// This kind's slot in the deadline array.
    fn index(self) -> Result<usize, TimerError> {
        Ok(match self {
            TimeoutEvent::IdleTimeout => IDLE,
            TimeoutEvent::ConnectionTimeout => 1,
            TimeoutEvent::PathValidationTimeout => 2,
            TimeoutEvent::RetransmissionTimeout => 3,
            TimeoutEvent::KeepAlive => 4,
            TimeoutEvent::User(n) if n < USER_KINDS => BUILT_IN_KINDS + usize::from(n),
            TimeoutEvent::User(n) => return Err(TimerError::UnknownKind(n)),
        })
    }

    fn from_index(index: usize) -> Self {
        match index {
            0 => TimeoutEvent::IdleTimeout,
            1 => TimeoutEvent::ConnectionTimeout,
            2 => TimeoutEvent::PathValidationTimeout,
            3 => TimeoutEvent::RetransmissionTimeout,
            4 => TimeoutEvent::KeepAlive,
            n => TimeoutEvent::User((n - BUILT_IN_KINDS) as u8),
        }
    }
}

/// Why a [`ConnectionTimers`] call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The timer service has shut down.
    #[error(transparent)]
    Shutdown(#[from] Shutdown),
    /// `TimeoutEvent::User(n)` with `n >= USER_KINDS`.
    #[error("user timer kind {0} is out of range (0..{USER_KINDS})")]
    UnknownKind(u8),
}

/// Timeout settings of a connection, used by the `*_idle_timeout` helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// How long a connection may go without receiving a packet.
    pub idle_timeout: Duration,
}

impl Default for ConnectionConfig {
    /// A 30 s idle timeout.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// All timeouts of one connection, on one wheel entry of the timer service.
///
/// Method names are the seed's `TimerManager`'s. Dropping it cancels everything it holds.
#[derive(Debug)]
pub struct ConnectionTimers {
    connection_id: u64,
    registration: Registration,
    /// Deadline tick per kind (`u64::MAX`: not set).
    deadlines: [u64; KINDS],
    /// Kinds whose deadline is set, one bit per kind: `earliest` looks at these only.
    set: u16,
    /// Kinds found due and not yet handed out by `next_event`, one bit per kind.
    pending: u16,
    /// Kinds whose deadlines are coarse, one bit per kind.
    coarse: u16,
}

impl ConnectionTimers {
    /// Timers for connection `connection_id` on the service behind `handle`.
    #[must_use]
    pub fn new(connection_id: u64, handle: TimerHandle) -> Self {
        Self {
            connection_id,
            registration: Registration::new(handle),
            deadlines: [UNSET; KINDS],
            set: 0,
            pending: 0,
            coarse: 1 << IDLE,
        }
    }

    /// Sets how exactly `event`'s deadline is met from the next time it is set: exact (in its
    /// own tick) or coarse (up to an eighth of its delay late, never early, no cascading below
    /// the level it fires from). The idle timer is coarse by default, every other kind exact.
    ///
    /// # Errors
    /// [`TimerError::UnknownKind`] for a user kind out of range.
    pub fn set_precision(
        &mut self,
        event: TimeoutEvent,
        precision: Precision,
    ) -> Result<(), TimerError> {
        let bit = 1 << event.index()?;
        match precision {
            Precision::Exact => self.coarse &= !bit,
            Precision::Coarse => self.coarse |= bit,
        }
        Ok(())
    }

    /// How exactly `event`'s deadline is met.
    ///
    /// # Errors
    /// [`TimerError::UnknownKind`] for a user kind out of range.
    pub fn precision(&self, event: TimeoutEvent) -> Result<Precision, TimerError> {
        Ok(if self.coarse & (1 << event.index()?) != 0 {
            Precision::Coarse
        } else {
            Precision::Exact
        })
    }

    /// The connection this belongs to.
    #[must_use]
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// Sets `event`'s timer to fire `delay` from now, replacing any it had.
    ///
    /// # Errors
    /// [`TimerError::UnknownKind`] for a user kind out of range, [`TimerError::Shutdown`]
    /// after the service stopped.
    pub fn register_timer(
        &mut self,
        event: TimeoutEvent,
        delay: Duration,
    ) -> Result<(), TimerError> {
        let deadline = self.registration.handle().after(delay);
        let tick = self.registration.tick_of(deadline);
        self.set_tick(event.index()?, tick, delay / 8)
    }

    /// Sets `event`'s timer to fire at `deadline`, replacing any it had.
    ///
    /// Moving a deadline later takes no lock and allocates nothing; only a new earliest
    /// deadline touches the wheel.
    ///
    /// # Errors
    /// As [`register_timer`](Self::register_timer).
    #[inline]
    pub fn register_timer_at(
        &mut self,
        event: TimeoutEvent,
        deadline: Instant,
    ) -> Result<(), TimerError> {
        let tick = self.registration.tick_of(deadline);
        let index = event.index()?;
        // Only a coarse kind needs the delay, and only this entry point has to read the clock
        // for it.
        let slack = if self.coarse & (1 << index) != 0 {
            deadline.saturating_duration_since(self.registration.handle().now()) / 8
        } else {
            Duration::ZERO
        };
        self.set_tick(index, tick, slack)
    }

    /// Sets kind `index`'s deadline tick (rounded up within `slack` if the kind is coarse) and
    /// brings the wheel entry in line.
    #[inline]
    fn set_tick(&mut self, index: usize, tick: u64, slack: Duration) -> Result<(), TimerError> {
        if self.registration.is_shut_down() {
            return Err(Shutdown.into());
        }
        self.deadlines[index] = if self.coarse & (1 << index) != 0 {
            coarse_deadline(tick, self.registration.ticks_in(slack))
        } else {
            tick
        };
        self.set |= 1 << index;
        self.pending &= !(1 << index);
        self.sync()
    }

    /// Sets the idle timer to `config.idle_timeout` from now.
    ///
    /// # Errors
    /// As [`register_timer`](Self::register_timer).
    pub fn register_idle_timeout(&mut self, config: &ConnectionConfig) -> Result<(), TimerError> {
        self.register_timer(TimeoutEvent::IdleTimeout, config.idle_timeout)
    }

    /// Pushes the idle timer back to `config.idle_timeout` from now: the per-packet call. It
    /// takes no lock and allocates nothing unless the idle timer was the only timer and had
    /// already fired.
    ///
    /// # Errors
    /// As [`register_timer`](Self::register_timer).
    pub fn reset_idle_timeout(&mut self, config: &ConnectionConfig) -> Result<(), TimerError> {
        self.register_idle_timeout(config)
    }

    /// Like [`reset_idle_timeout`](Self::reset_idle_timeout), counting from `now` (a packet's
    /// receive time the caller already has), which spares a clock read.
    ///
    /// # Errors
    /// As [`register_timer`](Self::register_timer).
    #[inline]
    pub fn reset_idle_timeout_at(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
    ) -> Result<(), TimerError> {
        // Straight to a tick: no `Instant` arithmetic beyond one subtraction.
        let tick = self
            .registration
            .handle()
            .inner
            .ticks
            .ceil_after(now, config.idle_timeout);
        self.set_tick(IDLE, tick, config.idle_timeout / 8)
    }

    /// Sets the path-validation timer to `timeout` from now.
    ///
    /// # Errors
    /// As [`register_timer`](Self::register_timer).
    pub fn register_path_validation_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<(), TimerError> {
        self.register_timer(TimeoutEvent::PathValidationTimeout, timeout)
    }

    /// Cancels `event`'s timer; `true` if it was set (and had not been reported).
    pub fn cancel_timer(&mut self, event: &TimeoutEvent) -> bool {
        let Ok(index) = event.index() else {
            return false;
        };
        let was_set = self.deadlines[index] != UNSET || self.pending & (1 << index) != 0;
        self.deadlines[index] = UNSET;
        self.set &= !(1 << index);
        self.pending &= !(1 << index);
        // A later (or no) earliest deadline never needs the wheel; this cannot fail.
        self.sync().ok();
        was_set
    }

    /// Cancels every timer of this connection and gives up its wheel entry.
    pub fn cancel_all_timers(&mut self) {
        self.deadlines = [UNSET; KINDS];
        self.set = 0;
        self.pending = 0;
        self.registration.disarm();
    }

    /// The deadline of `event`'s timer, if set: the start of the tick it fires in (for a
    /// coarse kind, the rounded-up tick).
    #[must_use]
    pub fn deadline(&self, event: TimeoutEvent) -> Option<Instant> {
        let tick = self.deadlines[event.index().ok()?];
        (tick != UNSET).then(|| self.registration.handle().inner.ticks.instant(tick))
    }

    /// The earliest deadline of any set timer.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        let tick = self.earliest();
        (tick != UNSET).then(|| self.registration.handle().inner.ticks.instant(tick))
    }

    /// Every timer whose deadline has passed, earliest kind first; each is reported once and
    /// then unset.
    pub fn check_timer_events(&mut self) -> Vec<TimeoutEvent> {
        self.collect_due();
        let mut events = Vec::with_capacity(self.pending.count_ones() as usize);
        while let Some(event) = self.pop_pending() {
            events.push(event);
        }
        events
    }

    /// Waits for the next timer to fire and returns its kind. Kinds that came due together are
    /// returned by consecutive calls. Cancel-safe.
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped (after every event already due was returned).
    pub async fn next_event(&mut self) -> Result<TimeoutEvent, Shutdown> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Polls for the next timer event (for hand-written futures); see
    /// [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<TimeoutEvent, Shutdown>> {
        if let Some(event) = self.pop_pending() {
            return Poll::Ready(Ok(event));
        }
        self.registration.register_waker(cx.waker());
        self.collect_due();
        if let Some(event) = self.pop_pending() {
            return Poll::Ready(Ok(event));
        }
        if self.registration.is_shut_down() {
            return Poll::Ready(Err(Shutdown));
        }
        Poll::Pending
    }

    /// Moves due kinds into `pending` and re-arms the entry for what remains.
    fn collect_due(&mut self) {
        self.registration.clear_due();
        let now = self.registration.now_tick();
        let mut set = self.set;
        while set != 0 {
            let index = set.trailing_zeros() as usize;
            set &= set - 1;
            if self.deadlines[index] <= now {
                self.deadlines[index] = UNSET;
                self.set &= !(1 << index);
                self.pending |= 1 << index;
            }
        }
        // After shutdown there is nothing to re-arm on; due kinds are still reported.
        self.sync().ok();
    }

    fn pop_pending(&mut self) -> Option<TimeoutEvent> {
        if self.pending == 0 {
            return None;
        }
        let index = self.pending.trailing_zeros() as usize;
        self.pending &= !(1 << index);
        Some(TimeoutEvent::from_index(index))
    }

    /// The earliest deadline tick of the set kinds (usually one to three of them).
    #[inline]
    fn earliest(&self) -> u64 {
        let mut earliest = UNSET;
        let mut set = self.set;
        while set != 0 {
            earliest = earliest.min(self.deadlines[set.trailing_zeros() as usize]);
            set &= set - 1;
        }
        debug_assert_eq!(
            earliest,
            self.deadlines.iter().copied().min().unwrap_or(UNSET)
        );
        earliest
    }

    /// Makes the wheel entry agree with the earliest deadline: a store when it is later than
    /// the entry (or there is none to wait for), a wheel operation when it is earlier.
    #[inline]
    fn sync(&mut self) -> Result<(), TimerError> {
        let earliest = self.earliest();
        Ok(self.registration.follow(earliest)?)
    }
}
