//! [`EndpointTimers`]: the timers of every connection an endpoint task drives itself, on one
//! registration with the timer service.
//!
//! # Design
//!
//! A server that holds its connections in a table and drives them from one task per core
//! (quinn-proto's `Endpoint`, a game server's loop) has no task per connection to wake. It
//! needs to learn which connections are due. The deadlines live in a [`TimerTable`]: the
//! earliest deadline of each connection, one wheel entry each, owned by the endpoint task and
//! touched by nobody else, so setting a deadline takes no lock and no atomic operation. The
//! table's own next deadline is one [`Registration`] with the service, which wakes the task
//! when it comes. Per connection that is the table's 56 bytes; the registration is one per
//! endpoint.
//!
//! - Setting a connection's deadline later is a store in its row. Earlier is an O(1) reset of
//!   its entry in the table's wheel, and, only when it is earlier than everything else the
//!   table holds, a reset of the registration under the shard's lock.
//! - A row can hold the connection itself ([`EndpointTimers::with_values`]): handling a
//!   packet with [`update`](EndpointTimers::update) then visits one row for the connection's
//!   state and its deadline, one cache miss where a table of its own beside the timers' costs
//!   two.
//! - [`poll_expired`](EndpointTimers::poll_expired) reads no clock unless the registration came
//!   due. Then it reads the clock once, polls the table up to the current tick, and points the
//!   registration at the table's next deadline.
//!
//! # Invariants
//!
//! - The registration is filed at or before the table's next deadline (`filed` records the
//!   tick), so the service wakes the task no later than any connection's deadline.
//! - A connection is reported only when its deadline tick is at or before the current tick,
//!   which the service's clock maps to instants by rounding deadlines up: never early.

use std::future::poll_fn;
use std::task::{Context, Poll};

use tokio::time::Instant;

use ticktock_wheel::TimerTable;

use crate::error::Shutdown;
use crate::handoff::UNSET;
use crate::layers::LayerDeadlines;
use crate::registration::Registration;
use crate::service::TimerHandle;

/// The deadlines of every connection an endpoint task drives, on one service registration.
///
/// Connections are numbered by the endpoint (the index in its connection table). Each has one
/// deadline: the earliest of its timers, as its layers report it
/// ([`TimeoutLayer::next_deadlines`](crate::TimeoutLayer::next_deadlines)). When that passes,
/// [`expired`](Self::expired) hands out the connection's number, and the connection checks its
/// own timers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use ticktock::{EndpointTimers, TimerService};
///
/// let service = TimerService::builder().start()?;
/// let mut timers = EndpointTimers::with_capacity(service.handle(), 2);
/// let now = timers.now();
/// timers.set_deadline(0, Some(now + Duration::from_secs(30)))?; // connection 0: idle
/// timers.set_deadline(1, Some(now + Duration::from_millis(200)))?; // connection 1: an RTO
///
/// let mut due = Vec::new();
/// timers.expired(&mut due).await?;
/// assert_eq!(due, [1]);
/// assert!(timers.now() >= now + Duration::from_millis(200));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EndpointTimers<T = ()> {
    table: TimerTable<T>,
    registration: Registration,
    /// The tick the registration was last pointed at (`UNSET`: nothing to wait for).
    filed: u64,
}

impl EndpointTimers {
    /// No connections yet, on the service behind `handle`.
    #[must_use]
    pub fn new(handle: TimerHandle) -> Self {
        Self::with_capacity(handle, 0)
    }

    /// Room for connections `0..connections` without allocating.
    #[must_use]
    pub fn with_capacity(handle: TimerHandle, connections: usize) -> Self {
        Self::with_values(handle, connections)
    }
}

impl<T: Default> EndpointTimers<T> {
    /// Timers whose rows also hold each connection's own state, a `T`: `T::default()` (say
    /// `None` of an `Option`) for connections `0..connections` until the endpoint puts its
    /// own there. Handling a connection's event through [`update`](Self::update) then costs
    /// one visit to one row.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use ticktock::{EndpointTimers, LayerDeadlines, TimerService};
    ///
    /// #[derive(Default)]
    /// struct Connection {
    ///     packets: u64,
    /// }
    ///
    /// let service = TimerService::builder().start()?;
    /// let mut timers: EndpointTimers<Connection> = EndpointTimers::with_values(service.handle(), 2);
    /// let now = timers.now();
    /// // A packet on connection 1: its state changes and its idle timeout moves, in one row.
    /// timers.update(1, |connection| {
    ///     connection.packets += 1;
    ///     LayerDeadlines { exact: Some(now + Duration::from_secs(30)), coarse: None }
    /// })?;
    /// assert_eq!(timers.value(1).map(|c| c.packets), Some(1));
    ///
    /// let mut due = Vec::new();
    /// timers.expired(&mut due).await?;
    /// assert_eq!(due, [1]);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_values(handle: TimerHandle, connections: usize) -> Self {
        Self {
            table: TimerTable::with_values(connections),
            registration: Registration::new(handle),
            filed: UNSET,
        }
    }

    /// Hands `connection`'s value to `f` (adding rows up to it if it is beyond the last) and
    /// sets its deadlines to what `f` returns, as [`set`](Self::set) does.
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    #[inline]
    pub fn update<F>(&mut self, connection: u32, f: F) -> Result<(), Shutdown>
    where
        F: FnOnce(&mut T) -> LayerDeadlines,
    {
        let deadlines = f(self.table.value_mut_or_default(connection));
        self.set(connection, deadlines)
    }

    /// Sets `connection`'s deadline to the earlier of its layers' exact and coarse deadlines,
    /// the coarse one rounded up within its slack (so it fires at a wheel slot boundary);
    /// neither means it has none.
    ///
    /// # Errors
    /// [`Shutdown`] when the deadline is the earliest of the table and the service stopped.
    #[inline]
    pub fn set(&mut self, connection: u32, deadlines: LayerDeadlines) -> Result<(), Shutdown> {
        let tick = self.registration.tick_for(deadlines);
        self.set_tick(connection, tick)
    }

    /// Sets `connection`'s deadline, met in its own tick (`None`: it has none).
    ///
    /// # Errors
    /// As for [`set`](Self::set).
    #[inline]
    pub fn set_deadline(
        &mut self,
        connection: u32,
        deadline: Option<Instant>,
    ) -> Result<(), Shutdown> {
        let tick = deadline.map_or(UNSET, |deadline| self.registration.tick_of(deadline));
        self.set_tick(connection, tick)
    }

    #[inline]
    fn set_tick(&mut self, connection: u32, tick: u64) -> Result<(), Shutdown> {
        self.table.set(connection, Some(tick));
        if tick < self.filed {
            self.filed = tick;
            self.registration.follow(tick)?;
        }
        Ok(())
    }
}

impl<T> EndpointTimers<T> {
    /// `connection`'s value (see [`with_values`](EndpointTimers::with_values)), if it has a
    /// row.
    #[must_use]
    pub fn value(&self, connection: u32) -> Option<&T> {
        self.table.value(connection)
    }

    /// `connection`'s value, to change, if it has a row.
    #[must_use]
    pub fn value_mut(&mut self, connection: u32) -> Option<&mut T> {
        self.table.value_mut(connection)
    }

    /// The service's current time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.registration.handle().now()
    }

    /// Connections with a deadline.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no connection has a deadline.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Forgets `connection`'s deadline and frees its wheel entry (for a connection that
    /// closes).
    pub fn remove(&mut self, connection: u32) {
        self.table.remove(connection);
    }

    /// `connection`'s deadline, rounded up to the start of a tick (so never before the deadline
    /// that was set).
    #[must_use]
    pub fn deadline(&self, connection: u32) -> Option<Instant> {
        let ticks = &self.registration.handle().inner.ticks;
        self.table
            .deadline(connection)
            .map(|tick| ticks.instant(tick))
    }

    /// The table's wheel counters; its `postponed` counts entries filed at a later deadline
    /// because their connection had moved on (no wake-up, no report).
    #[must_use]
    pub fn table_stats(&self) -> ticktock_wheel::WheelStats {
        self.table.stats()
    }

    /// Waits until at least one connection is due and appends the due ones to `out`; returns
    /// how many. Each is reported once: set its deadline again after handling it. Cancel-safe.
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub async fn expired(&mut self, out: &mut Vec<u32>) -> Result<usize, Shutdown> {
        poll_fn(|cx| self.poll_expired(cx, out)).await
    }

    /// Polls for due connections (for hand-written futures and `select!` loops); see
    /// [`expired`](Self::expired).
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<u32>,
    ) -> Poll<Result<usize, Shutdown>> {
        self.registration.register_waker(cx.waker());
        // Not due by the tick of the driver's last pass: nothing to poll, and no clock to read.
        // A fire after this check sets `due` and wakes the waker registered above.
        if !self.registration.is_due()
            && (self.filed == UNSET || self.registration.passed_before(self.filed))
        {
            return if self.registration.is_shut_down() {
                Poll::Ready(Err(Shutdown))
            } else {
                Poll::Pending
            };
        }
        self.registration.clear_due();
        let now = self.registration.now_tick();
        let count = self.table.poll(now, out);
        self.filed = self.table.next_deadline().unwrap_or(UNSET);
        let followed = self.registration.follow(self.filed);
        if count > 0 {
            return Poll::Ready(Ok(count));
        }
        match followed {
            Err(shutdown) => Poll::Ready(Err(shutdown)),
            Ok(()) if self.registration.is_shut_down() => Poll::Ready(Err(Shutdown)),
            Ok(()) => Poll::Pending,
        }
    }
}
