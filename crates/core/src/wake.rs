//! How arming a timer wakes the driver.
//!
//! The driver publishes the tick it sleeps until (`wake_tick`); a timer armed for an earlier
//! tick notifies it. Since the driver sleeps until the earliest pending deadline (or at most a
//! second when it has none), few new timers are earlier than that.
//!
//! Protocol (checked by the loom model below under `--cfg loom`):
//! - Driver: `begin_pass` (`wake_tick = MAX`), scan every shard under its lock,
//!   `sleeping_until(next)`, then wait for a notification (a permit survives until then).
//! - Arm: insert under the shard lock and, **still under it**, `must_wake(tick)`; notify after
//!   unlocking when it says so.
//! - Invariant: after any interleaving, every armed timer is either seen by the driver's scan
//!   (so `next` is no later than it) or has left a notification for the driver.

use crate::sync::{AtomicU64, Ordering};

/// The driver's published wake-up.
#[derive(Debug)]
pub(crate) struct DriverWake {
    /// The tick the driver sleeps until; `u64::MAX` while it scans.
    wake_tick: AtomicU64,
}

impl DriverWake {
    pub(crate) fn new() -> Self {
        Self {
            wake_tick: AtomicU64::new(u64::MAX),
        }
    }

    /// Driver: a pass begins; until `sleeping_until`, every arm counts as earlier.
    pub(crate) fn begin_pass(&self) {
        self.wake_tick.store(u64::MAX, Ordering::SeqCst);
    }

    /// Driver: the pass is over; it sleeps until `tick`.
    pub(crate) fn sleeping_until(&self, tick: u64) {
        self.wake_tick.store(tick, Ordering::SeqCst);
    }

    /// Arm, **under the shard's lock** right after inserting a timer for `tick`: whether the
    /// driver must be notified (after unlocking).
    ///
    /// Checking under the lock is what makes this airtight: either the driver's scan takes this
    /// shard's lock after us and sees the timer, or it published its `MAX` before we read it.
    /// (An earlier version also kept a "notified already" flag to send one notification per
    /// pass; the loom model found an interleaving in which it suppressed a needed one.)
    #[inline]
    pub(crate) fn must_wake(&self, tick: u64) -> bool {
        tick < self.wake_tick.load(Ordering::SeqCst)
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! `RUSTFLAGS="--cfg loom" cargo test -p ticktock --lib --release wake`
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Mutex};

    use super::*;

    /// A shard reduced to the ticks of its timers; the notification reduced to tokio
    /// `Notify`'s single stored permit.
    struct World {
        wake: DriverWake,
        shard: Mutex<Vec<u64>>,
        permit: AtomicBool,
    }

    fn arm(world: &World, tick: u64) {
        let wake = {
            let mut shard = world.shard.lock().unwrap();
            shard.push(tick);
            world.wake.must_wake(tick)
        };
        if wake {
            world.permit.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_armed_timer_is_seen_by_the_scan_or_wakes_the_driver() {
        loom::model(|| {
            let world = Arc::new(World {
                wake: DriverWake::new(),
                shard: Mutex::new(Vec::new()),
                permit: AtomicBool::new(false),
            });
            // The driver sleeps until tick 100 when two timers are armed for earlier ticks.
            world.wake.sleeping_until(100);
            let arms: Vec<_> = [10, 20]
                .into_iter()
                .map(|tick| {
                    let world = Arc::clone(&world);
                    loom::thread::spawn(move || arm(&world, tick))
                })
                .collect();
            // Meanwhile the driver wakes (consuming any permit so far) and makes a pass.
            world.permit.store(false, Ordering::SeqCst);
            world.wake.begin_pass();
            let next = world
                .shard
                .lock()
                .unwrap()
                .iter()
                .copied()
                .min()
                .unwrap_or(100);
            world.wake.sleeping_until(next);
            for arm in arms {
                arm.join().unwrap();
            }
            let woken = world.permit.load(Ordering::SeqCst);
            let shard = world.shard.lock().unwrap().clone();
            for tick in [10, 20] {
                assert!(
                    next <= tick || woken,
                    "timer at {tick} missed: next {next}, no permit, shard {shard:?}"
                );
            }
        });
    }
}
