//! A hierarchical timing wheel for protocol timers: O(1) insert, cancel and reset, generational
//! keys, allocation-free once warm, never early.
//!
//! [`TimerWheel<T>`] stores timers that fire at integer **ticks**. It never reads a clock: the
//! caller decides what a tick is (ticktock's timer service uses 1 ms by default) and tells
//! [`TimerWheel::poll`] which tick it is. That keeps the structure pure, `no_std`, and testable
//! on virtual time.
//!
//! # Design
//!
//! - **Levels.** Six levels; a slot at level `L` spans `64^L` ticks, and the whole hierarchy
//!   spans 2^36 ticks ([`HORIZON`], about 795 days of 1 ms ticks). Each level reaches a little
//!   into the level above: level 0 has [`NEAR_SLOTS`] (256) one-tick slots for the current
//!   64-tick block and the next three, levels 1 to 4 have 128 slots for the current block of
//!   the level above and the next one, the top level has 64. A timer goes on the lowest level
//!   that reaches its deadline. The overlap is what spares cascades: the exact timers of a few
//!   round trips (retransmission, ack delay) file straight into their tick, and a coarse timer
//!   stays on the level of its granularity instead of moving down when its deadline crosses a
//!   boundary of the level above (see `level.rs` for the table and the invariants).
//! - **Occupancy bitmaps.** One bit per non-empty slot, in `u64` words.
//!   [`TimerWheel::next_deadline`] is a trailing-zero count per level it looks at (the first
//!   non-empty one, and those above it whose next slot could start earlier), and
//!   [`TimerWheel::poll`] visits only occupied slots: a jump of time over an empty or sparse
//!   wheel costs O(levels), never O(ticks).
//! - **Slab and intrusive lists.** Timers live in a slab (a `Vec` of 24-byte entries for
//!   `T = u64`, with a free list), so a warm wheel allocates nothing. Each slot is a circular
//!   doubly linked list with a sentinel, threaded by `u32` indices through a parallel array of
//!   8-byte links: 32 bytes per timer in all, O(1) cancel and reset, and no branch on whether a
//!   list is empty.
//! - **Generational keys.** A [`TimerKey`] is an index plus the generation of its entry. Firing
//!   or cancelling a timer moves the generation on, so a stale key is a harmless no-op.
//! - **Cascading.** When a poll passes a slot of a coarse level, the timers in it that are due
//!   fire; the others are re-filed once, after the wheel reaches the polled tick, straight into
//!   the level they now belong to.
//!
//! # Invariants
//!
//! - Every timer comes out exactly once: returned by a poll at or after its deadline, or
//!   cancelled (explicitly or by [`TimerWheel::clear`]).
//! - A timer never fires before its deadline tick. A deadline at or before the current tick fires
//!   at the next poll; a deadline beyond the horizon waits in the top level and is re-filed
//!   until it is within reach. Any `u64` deadline is accepted.
//! - Every timer is due no earlier than the start of its slot, and each level holds only
//!   deadlines within its reach, so the next work is the earliest next slot over the levels.
//!
//! # Example
//!
//! ```
//! use ticktock_wheel::TimerWheel;
//!
//! let mut wheel = TimerWheel::new();
//! let idle = wheel.insert(30_000, "idle");
//! let rto = wheel.insert(200, "retransmit");
//!
//! // A packet arrives: push the idle timer back. O(1), same key.
//! assert!(wheel.reset(idle, 31_000));
//! // The ack arrives: cancel the retransmission timer.
//! assert_eq!(wheel.cancel(rto), Some("retransmit"));
//! // The key is stale now; using it again does nothing.
//! assert_eq!(wheel.cancel(rto), None);
//!
//! let mut fired = Vec::new();
//! assert_eq!(wheel.poll(30_999, &mut fired), 0);
//! assert_eq!(wheel.poll(31_000, &mut fired), 1);
//! assert_eq!(fired, ["idle"]);
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod batch;
mod fifo;
mod key;
mod level;
mod lists;
mod precision;
mod slab;
mod stats;
mod table;
mod wheel;

pub use batch::{BatchPath, BatchStrategy, ShardKey, ShardedWheel};
pub use fifo::{FixedDelayKey, FixedDelayQueue, FixedDelayStats, FixedExpired};
pub use key::TimerKey;
pub use level::{HORIZON, LEVELS, NEAR_SLOTS, SLOTS};
pub use precision::{Precision, coarse_deadline};
pub use stats::WheelStats;
pub use table::TimerTable;
pub use wheel::{Expired, TimerWheel};
