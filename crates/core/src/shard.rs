//! One shard: a timing wheel behind its own lock.
//!
//! Every operation on a timer touches exactly one shard: the one its thread was given when it
//! first armed a timer (see [`current`]). With one shard per worker thread, arming and cancelling
//! contend only with the driver's short visits, never with other workers.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use ticktock_wheel::TimerWheel;

use crate::handoff::ConnectionShared;

/// What a wheel entry does when it fires.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A future waits for it: wake this waker (none before the first poll).
    Waker(Option<Waker>),
    /// A connection's single registration, at its earliest deadline as last armed.
    Connection(Arc<ConnectionShared>),
}

/// A shard's state, only touched under its lock.
#[derive(Debug)]
pub(crate) struct ShardState {
    pub(crate) wheel: TimerWheel<Entry>,
    /// Set at shutdown: the wheel has been drained and takes no more timers.
    pub(crate) shut: bool,
    /// Per-shard counters: kept under the lock the operation holds anyway, so that threads on
    /// different shards never write the same cache line.
    pub(crate) counts: ShardCounts,
}

/// Operations counted per shard (see [`TimerStats`](crate::TimerStats)).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ShardCounts {
    pub(crate) armed: u64,
    pub(crate) cancelled: u64,
    pub(crate) reset: u64,
}

/// A wheel and its lock, aligned to its own cache lines (128 bytes covers adjacent-line
/// prefetch) so that threads on neighbouring shards do not share one.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard {
    state: Mutex<ShardState>,
}

impl Shard {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(ShardState {
                wheel: TimerWheel::with_capacity(capacity),
                shut: false,
                counts: ShardCounts::default(),
            }),
        }
    }

    /// Locks the shard. A panic while holding the lock (a waker's `clone` panicking, say) cannot
    /// leave the wheel half-updated — every wheel operation completes before anything foreign
    /// runs — so a poisoned lock is still safe to use.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, ShardState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard number before reduction modulo the shard count.
    static THREAD_SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The shard of the calling thread, out of `shards`: threads are numbered round-robin on first
/// use, so worker threads spread over the shards and keep theirs for good.
#[inline]
pub(crate) fn current(shards: usize) -> usize {
    THREAD_SHARD.with(|cell| {
        let number = cell.get().unwrap_or_else(|| {
            let number = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            cell.set(Some(number));
            number
        });
        number % shards
    })
}
