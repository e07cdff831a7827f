//! [`TimerTable`]: the earliest deadline of every connection of an endpoint that owns them all,
//! on one wheel it owns too.
//!
//! # Design
//!
//! A protocol endpoint that drives its connections itself — one task per core with a table of
//! connections, as quinn-proto's `Endpoint` or a game server's loop — needs one thing from its
//! timers: which connections have a deadline that passed. The connection works out which of its
//! timers that was from its own state (its layers, its RTO estimator), so the table keeps one
//! deadline per connection, indexed by the connection's number in the endpoint's own table, and
//! one wheel entry at or before it:
//!
//! - A **later** deadline (the idle timeout pushed by every packet, the RTO stopped by an ack)
//!   is stored in the connection's row: no wheel operation. When the entry's slot comes up the
//!   poll files it at the stored deadline instead of cascading it
//!   ([`TimerWheel::poll_with_postpone`]); when its tick comes, the poll files it again instead
//!   of reporting the connection.
//! - An **earlier** deadline resets the entry: O(1).
//! - **No** deadline is stored too; the entry is dropped when it comes up, or at once by
//!   [`TimerTable::remove`].
//!
//! A row is 24 bytes and a wheel entry 32, so a connection costs 56 bytes of timer state however
//! many timers it has, against 112 for each of tokio's `Sleep`s. There are no keys to hand out
//! and no values to move: the connection's number is the key.
//!
//! A row can also hold the connection itself (`TimerTable<T>`, [`TimerTable::with_values`]).
//! An endpoint that handles a packet then sets the connection's deadline touches one row
//! instead of its own table's slot and the timer row: with connections spread over megabytes,
//! one cache miss per packet instead of two.
//!
//! # Invariants
//!
//! - A row has a wheel entry exactly when its `filed` tick is set, and the entry's deadline is
//!   that tick and its value the row's connection.
//! - While a deadline is wanted, the entry is filed at or before it (`filed <= wanted`), so the
//!   wheel reaches every connection no later than its deadline.
//! - [`TimerTable::poll`] reports a connection only when its wanted deadline is at or before
//!   the polled tick, and each wanted deadline once: a reported connection has no deadline
//!   until it is given one again.

use alloc::vec::Vec;
use core::cell::Cell;

use crate::key::TimerKey;
use crate::stats::WheelStats;
use crate::wheel::TimerWheel;

/// A tick that is never reached: "not set" in a row.
const UNSET: u64 = u64::MAX;

/// One connection's row.
#[derive(Clone)]
struct Row<T> {
    /// The wheel entry, valid while `filed` is set.
    key: TimerKey,
    /// The entry's deadline (`UNSET`: no entry). A `Cell` because the poll's postpone hook,
    /// which only sees the rows through a shared reference, moves entries later.
    filed: Cell<u64>,
    /// The connection's earliest deadline (`UNSET`: none).
    wanted: u64,
    /// The caller's value for the connection (`()` for a table of deadlines alone).
    value: T,
}

impl<T: Default> Row<T> {
    fn empty() -> Self {
        Self {
            key: TimerKey::from_bits(0),
            filed: Cell::new(UNSET),
            wanted: UNSET,
            value: T::default(),
        }
    }
}

/// The earliest deadline of every connection of an endpoint, one wheel entry per connection.
///
/// Connections are numbered by the caller (the index in its own connection table); rows grow
/// to the largest number used. Ticks are the caller's, as for [`TimerWheel`]. Each row can
/// hold a value of the caller's, `T` (none by default): the connection's own state, kept
/// beside its deadline (see [`with_values`](Self::with_values)).
///
/// ```
/// use ticktock_wheel::TimerTable;
///
/// let mut table = TimerTable::with_capacity(2);
/// table.set(0, Some(3_000));                // connection 0: idle timeout
/// table.set(1, Some(250));                  // connection 1: an RTO
/// table.set(0, Some(3_040));                // a packet on 0: a store, no wheel operation
/// table.set(1, None);                       // the ack on 1
///
/// let mut due = Vec::new();
/// assert_eq!(table.poll(3_000, &mut due), 0); // 0 moved on; 1 has no deadline
/// assert_eq!(table.poll(3_040, &mut due), 1);
/// assert_eq!(due, [0]);
/// assert_eq!(table.deadline(0), None);      // reported once; set it again to re-arm
/// ```
pub struct TimerTable<T = ()> {
    wheel: TimerWheel<u32>,
    rows: Vec<Row<T>>,
    /// Rows with a wanted deadline.
    armed: usize,
}

impl<T: Default> Default for TimerTable<T> {
    fn default() -> Self {
        Self::with_values(0)
    }
}

impl<T> core::fmt::Debug for TimerTable<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimerTable")
            .field("connections", &self.rows.len())
            .field("armed", &self.armed)
            .field("wheel", &self.wheel)
            .finish()
    }
}

impl TimerTable {
    /// An empty table at tick 0.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty table at tick 0 with room for connections `0..connections` (rows and wheel
    /// entries), so it does not allocate until a larger number is used.
    #[must_use]
    pub fn with_capacity(connections: usize) -> Self {
        Self::with_values(connections)
    }

    /// Heap bytes held per connection row, whether in use or not (the wheel's entries are
    /// 32 bytes more per connection with a deadline). A row with a value is `size_of::<T>()`
    /// bytes more, rounded up to its alignment.
    pub const ROW_BYTES: usize = core::mem::size_of::<Row<()>>();
}

impl<T: Default> TimerTable<T> {
    /// An empty table at tick 0 whose rows hold a `T` each, `T::default()` until the caller
    /// puts its own there ([`value_mut`](Self::value_mut)), with rows for connections
    /// `0..connections` and room for as many wheel entries.
    ///
    /// ```
    /// use ticktock_wheel::TimerTable;
    ///
    /// #[derive(Default)]
    /// struct Connection {
    ///     packets: u64,
    /// }
    ///
    /// let mut table: TimerTable<Connection> = TimerTable::with_values(2);
    /// if let Some(connection) = table.value_mut(1) {
    ///     connection.packets += 1; // the row is in cache now…
    /// }
    /// table.set(1, Some(250)); // …for its deadline
    /// assert_eq!(table.value(1).map(|c| c.packets), Some(1));
    /// ```
    #[must_use]
    pub fn with_values(connections: usize) -> Self {
        let mut rows = Vec::with_capacity(connections);
        rows.resize_with(connections, Row::empty);
        Self {
            wheel: TimerWheel::with_capacity(connections.max(1)),
            rows,
            armed: 0,
        }
    }

    /// Sets `connection`'s earliest deadline tick (`None`, or `u64::MAX`: it has none). Later
    /// than before is a store; earlier is an O(1) wheel reset. A deadline at or before the
    /// current tick is reported by the next poll. Rows up to `connection` are added (with
    /// `T::default()`) if it is beyond the last.
    #[inline]
    pub fn set(&mut self, connection: u32, deadline: Option<u64>) {
        if deadline.is_none() && connection as usize >= self.rows.len() {
            return;
        }
        let index = self.cover(connection);
        let row = &mut self.rows[index];
        let wanted = deadline.unwrap_or(UNSET);
        match (row.wanted == UNSET, wanted == UNSET) {
            (true, false) => self.armed += 1,
            (false, true) => self.armed -= 1,
            _ => {}
        }
        row.wanted = wanted;
        let filed = row.filed.get();
        if wanted >= filed {
            // Later, or no deadline: the entry (if any) is met first and follows then.
            return;
        }
        if filed != UNSET && self.wheel.reset(row.key, wanted) {
            row.filed.set(wanted);
            return;
        }
        debug_assert_eq!(filed, UNSET, "a filed row's key names its entry");
        row.key = self.wheel.insert(wanted, connection);
        row.filed.set(wanted);
    }

    /// `connection`'s value, to change, adding rows up to it (with `T::default()`) if it is
    /// beyond the last.
    pub fn value_mut_or_default(&mut self, connection: u32) -> &mut T {
        let index = self.cover(connection);
        &mut self.rows[index].value
    }

    /// Adds rows up to `connection`'s if it is beyond the last; returns its row's index.
    #[inline]
    fn cover(&mut self, connection: u32) -> usize {
        let index = connection as usize;
        if index >= self.rows.len() {
            self.rows.resize_with(index + 1, Row::empty);
        }
        index
    }
}

impl<T> TimerTable<T> {
    /// `connection`'s value, if it has a row.
    #[must_use]
    pub fn value(&self, connection: u32) -> Option<&T> {
        self.rows.get(connection as usize).map(|row| &row.value)
    }

    /// `connection`'s value, to change, if it has a row.
    #[must_use]
    pub fn value_mut(&mut self, connection: u32) -> Option<&mut T> {
        self.rows
            .get_mut(connection as usize)
            .map(|row| &mut row.value)
    }

    /// Connections with a deadline.
    #[must_use]
    pub fn len(&self) -> usize {
        self.armed
    }

    /// Whether no connection has a deadline.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// The tick the last poll stood at.
    #[must_use]
    pub fn current_tick(&self) -> u64 {
        self.wheel.current_tick()
    }

    /// `connection`'s deadline tick, if it has one.
    #[must_use]
    pub fn deadline(&self, connection: u32) -> Option<u64> {
        self.rows
            .get(connection as usize)
            .map(|row| row.wanted)
            .filter(|&wanted| wanted != UNSET)
    }

    /// Forgets `connection`'s deadline and takes its wheel entry out now (for a connection that
    /// closes: [`set`](Self::set) with `None` would leave the entry until its tick).
    pub fn remove(&mut self, connection: u32) {
        let Some(row) = self.rows.get_mut(connection as usize) else {
            return;
        };
        if row.wanted != UNSET {
            self.armed -= 1;
            row.wanted = UNSET;
        }
        if row.filed.get() != UNSET {
            let removed = self.wheel.cancel(row.key);
            debug_assert_eq!(removed, Some(connection));
            row.filed.set(UNSET);
        }
    }

    /// A tick at which the next poll may have work: never later than the earliest deadline of
    /// any connection, earlier when the entry of a connection that moved on comes up first.
    /// `None` when no connection has an entry.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    /// Advances to tick `now` and appends every connection whose deadline is at or before it to
    /// `out` (in no particular order); returns how many. Each reported connection's deadline is
    /// cleared. Entries of connections that moved on are filed at their new deadline, and
    /// entries of connections with none are dropped, without being reported.
    pub fn poll(&mut self, now: u64, out: &mut Vec<u32>) -> usize {
        let start = out.len();
        let rows = &self.rows;
        self.wheel.poll_with_postpone(
            now,
            |expired| out.push(expired.value),
            |_, &connection, deadline| {
                let row = &rows[connection as usize];
                if row.wanted == UNSET {
                    return deadline;
                }
                debug_assert!(
                    row.wanted >= deadline,
                    "an entry is filed at or before its row"
                );
                row.filed.set(row.wanted);
                row.wanted
            },
        );
        let mut kept = start;
        for at in start..out.len() {
            let connection = out[at];
            let row = &mut self.rows[connection as usize];
            debug_assert!(row.filed.get() <= now, "the entry that fired is the row's");
            if row.wanted == UNSET {
                row.filed.set(UNSET);
            } else if row.wanted > now {
                row.key = self.wheel.insert(row.wanted, connection);
                row.filed.set(row.wanted);
            } else {
                row.filed.set(UNSET);
                row.wanted = UNSET;
                self.armed -= 1;
                out[kept] = connection;
                kept += 1;
            }
        }
        out.truncate(kept);
        kept - start
    }

    /// The wheel's counters: its `postponed` count is the entries filed later because their
    /// connection had moved on.
    #[must_use]
    pub fn stats(&self) -> WheelStats {
        self.wheel.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_and_an_entry_are_56_bytes() {
        assert_eq!(TimerTable::ROW_BYTES, 24);
    }

    #[test]
    fn later_deadlines_are_met_at_the_last_one_without_wheel_operations() {
        let mut table = TimerTable::new();
        table.set(7, Some(100));
        for later in 101..200 {
            table.set(7, Some(later));
        }
        let mut due = Vec::new();
        assert_eq!(table.poll(150, &mut due), 0);
        assert_eq!(table.poll(198, &mut due), 0);
        assert_eq!(table.poll(199, &mut due), 1);
        assert_eq!(due, [7]);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn an_earlier_deadline_moves_the_entry() {
        let mut table = TimerTable::new();
        table.set(0, Some(5_000));
        table.set(0, Some(40));
        assert_eq!(table.next_deadline(), Some(40));
        let mut due = Vec::new();
        assert_eq!(table.poll(39, &mut due), 0);
        assert_eq!(table.poll(40, &mut due), 1);
    }

    #[test]
    fn values_stay_in_their_rows_through_sets_polls_and_removals() {
        let mut table: TimerTable<Option<&str>> = TimerTable::with_values(2);
        assert_eq!(table.value(1), Some(&None));
        assert_eq!(table.value(5), None);
        *table.value_mut(1).unwrap() = Some("one");
        table.set(1, Some(10));
        // Growing by `set` gives the new rows the default value.
        table.set(4, Some(20));
        assert_eq!(table.value(3), Some(&None));
        *table.value_mut(4).unwrap() = Some("four");
        table.set(1, Some(30));
        let mut due = Vec::new();
        assert_eq!(table.poll(20, &mut due), 1);
        assert_eq!(due, [4]);
        table.remove(4);
        assert_eq!(table.poll(30, &mut due), 1);
        assert_eq!(due, [4, 1]);
        assert_eq!(table.value(1), Some(&Some("one")));
        assert_eq!(table.value(4), Some(&Some("four")));
        assert_eq!(table.value_mut(9), None);
        *table.value_mut_or_default(9) = Some("nine");
        assert_eq!(table.value(8), Some(&None));
        assert_eq!(table.value(9), Some(&Some("nine")));
        assert_eq!(table.deadline(9), None);
    }

    #[test]
    fn removed_and_unset_connections_are_not_reported() {
        let mut table = TimerTable::with_capacity(4);
        table.set(1, Some(10));
        table.set(2, Some(10));
        table.set(3, Some(10));
        table.set(1, None);
        table.remove(2);
        table.remove(9);
        table.set(9, None);
        assert_eq!(table.len(), 1);
        let mut due = Vec::new();
        assert_eq!(table.poll(1_000, &mut due), 1);
        assert_eq!(due, [3]);
        assert_eq!(table.next_deadline(), None);
    }
}
