//! The state a connection shares with the driver, and the protocol both follow on it.
//!
//! A connection publishes its earliest deadline in `wanted` with a plain store; moving it later
//! needs nothing else. Only when `wanted` drops below the tick its wheel entry is filed at
//! (`armed`) does the connection take the shard's lock and move the entry. The driver, holding
//! the same lock when the entry fires, reads `wanted`: later than now means the connection
//! moved on, so the entry is filed again there; otherwise the connection is due.
//!
//! Invariants (checked by the loom model below under `--cfg loom`):
//! - `armed` and `key` change only under the shard's lock, and there they agree with the wheel:
//!   `armed == UNSET` exactly when the connection has no entry.
//! - A published deadline is never lost: after any interleaving of a `publish` with the
//!   driver's `on_fire`, either an entry is filed at or before `wanted`, or `due` is set (and
//!   the connection, woken, re-arms what is left).
//! - Nothing fires early: `on_fire` reports due only when `wanted` is not after the tick.

use std::task::Waker;

use atomic_waker::AtomicWaker;
use ticktock_wheel::TimerKey;

use crate::sync::{AtomicBool, AtomicU64, Ordering, fence};

/// "No deadline" / "no entry".
pub(crate) const UNSET: u64 = u64::MAX;

/// What a connection and the driver share.
#[derive(Debug)]
pub(crate) struct ConnectionShared {
    /// The connection's earliest deadline tick (`UNSET`: none). Written by the connection.
    wanted: AtomicU64,
    /// The tick the wheel entry is filed at (`UNSET`: no entry). Changed under the lock.
    armed: AtomicU64,
    /// The wheel entry's key, as bits, while `armed != UNSET`. Changed under the lock.
    key: AtomicU64,
    /// Set by the driver when the earliest deadline passed; cleared by the connection.
    due: AtomicBool,
    waker: AtomicWaker,
}

impl ConnectionShared {
    pub(crate) fn new() -> Self {
        Self {
            wanted: AtomicU64::new(UNSET),
            armed: AtomicU64::new(UNSET),
            key: AtomicU64::new(0),
            due: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Connection side, no lock: publishes the earliest deadline. Returns whether the entry must
    /// move earlier (or be created), which takes the lock and [`file`](Self::file).
    ///
    /// Moving `wanted` later needs only release/acquire (and spares the full fence a
    /// sequentially consistent store costs on every packet): whichever of `wanted` and `armed`
    /// each side reads, old or new, the outcome is covered — the driver re-files at a deadline
    /// no later than the new one, or sets `due` and the connection re-arms.
    ///
    /// Moving it earlier than it was is the store-buffering case: the driver may be re-filing
    /// the entry at the old `wanted` while this reads the old `armed`, and then the new deadline
    /// would wait for the old one. Both sides then store, pass a sequentially consistent fence
    /// and load ([`on_fire`](Self::on_fire) clears `armed` before it reads `wanted`), so at
    /// least one sees the other's store.
    #[inline]
    pub(crate) fn publish(&self, earliest: u64) -> bool {
        // Only the connection writes `wanted`: this reads its own last store.
        let previous = self.wanted.load(Ordering::Relaxed);
        self.wanted.store(earliest, Ordering::Release);
        if earliest < previous {
            fence(Ordering::SeqCst);
        }
        earliest != UNSET && earliest < self.armed.load(Ordering::Acquire)
    }

    /// Under the lock: the key of the entry, if there is one.
    pub(crate) fn entry(&self) -> Option<TimerKey> {
        (self.armed.load(Ordering::SeqCst) != UNSET)
            .then(|| TimerKey::from_bits(self.key.load(Ordering::SeqCst)))
    }

    /// Under the lock: the entry is now filed at `tick` under `key`.
    pub(crate) fn file(&self, key: TimerKey, tick: u64) {
        self.key.store(key.to_bits(), Ordering::SeqCst);
        self.armed.store(tick, Ordering::SeqCst);
    }

    /// Under the lock: the entry was taken out of the wheel.
    pub(crate) fn unfile(&self) {
        self.armed.store(UNSET, Ordering::SeqCst);
    }

    /// Driver side, under the lock, when the entry fires at `tick` (it is out of the wheel
    /// now). Returns the tick to file it again at, or `None` when the connection is due (the
    /// driver then wakes [`take_waker`](Self::take_waker)).
    pub(crate) fn on_fire(&self, tick: u64) -> Option<u64> {
        // Cleared before `wanted` is read, with a fence between: see `publish`. A connection that
        // reads `UNSET` here takes the lock, which the driver holds until it has filed the entry
        // again.
        self.unfile();
        fence(Ordering::SeqCst);
        let wanted = self.wanted.load(Ordering::SeqCst);
        if wanted != UNSET && wanted > tick {
            return Some(wanted);
        }
        self.due.store(true, Ordering::SeqCst);
        None
    }

    /// Driver side, under the lock, when the wheel would cascade the entry filed at `deadline`
    /// under `key` (its slot came up, its tick has not): returns the tick to file it at — the
    /// connection's deadline if it moved later since, so the entry goes straight there instead
    /// of down a level towards a deadline nobody wants any more, else `deadline`.
    ///
    /// The same handshake as [`on_fire`](Self::on_fire): `armed` is cleared before `wanted` is
    /// read, with a fence between, so a connection moving earlier meanwhile either is seen or
    /// sees `UNSET` and takes the lock, which the driver holds until the entry is filed again.
    pub(crate) fn on_cascade(&self, key: TimerKey, deadline: u64) -> u64 {
        self.unfile();
        fence(Ordering::SeqCst);
        let wanted = self.wanted.load(Ordering::SeqCst);
        let tick = if wanted != UNSET && wanted > deadline {
            wanted
        } else {
            deadline
        };
        self.file(key, tick);
        tick
    }

    /// Connection side: clears the due flag before it looks at its deadlines.
    pub(crate) fn clear_due(&self) {
        self.due.store(false, Ordering::SeqCst);
    }

    /// Connection side: whether the driver set `due` (it then also took the waker).
    pub(crate) fn is_due(&self) -> bool {
        self.due.load(Ordering::Acquire)
    }

    pub(crate) fn register_waker(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    pub(crate) fn take_waker(&self) -> Option<Waker> {
        self.waker.take()
    }

    #[cfg(all(test, loom))]
    fn snapshot(&self) -> (u64, u64, bool) {
        (
            self.wanted.load(Ordering::SeqCst),
            self.armed.load(Ordering::SeqCst),
            self.due.load(Ordering::SeqCst),
        )
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! `RUSTFLAGS="--cfg loom" cargo test -p ticktock --lib --release handoff`
    use loom::sync::{Arc, Mutex};

    use super::*;

    /// The wheel, reduced to what the protocol needs: the tick of the connection's entry.
    type Wheel = Mutex<Option<u64>>;

    fn key() -> TimerKey {
        TimerKey::from_bits(7)
    }

    /// The connection's side of `ConnectionTimers::sync`.
    fn connection_moves_to(shared: &ConnectionShared, wheel: &Wheel, earliest: u64) {
        if shared.publish(earliest) {
            // Under the lock the entry is reset if there is one, created if not: either way it
            // ends up at `earliest`.
            let mut entry = wheel.lock().unwrap();
            *entry = Some(earliest);
            shared.file(key(), earliest);
        }
    }

    /// The driver's side: the entry comes up at `tick`.
    fn driver_fires(shared: &ConnectionShared, wheel: &Wheel, tick: u64) {
        let mut entry = wheel.lock().unwrap();
        if entry.is_some_and(|at| at <= tick) {
            *entry = None;
            if let Some(again) = shared.on_fire(tick) {
                *entry = Some(again);
                shared.file(key(), again);
            }
        }
    }

    /// The driver's side: the entry's slot comes up at `tick`, before its deadline, and the
    /// wheel would cascade it.
    fn driver_cascades(shared: &ConnectionShared, wheel: &Wheel, tick: u64) {
        let mut entry = wheel.lock().unwrap();
        if let Some(at) = *entry
            && at > tick
        {
            *entry = Some(shared.on_cascade(key(), at));
        }
    }

    fn armed_at(tick: u64) -> (Arc<ConnectionShared>, Arc<Wheel>) {
        let shared = Arc::new(ConnectionShared::new());
        shared.publish(tick);
        shared.file(key(), tick);
        (shared, Arc::new(Mutex::new(Some(tick))))
    }

    /// After everything settles: the wanted deadline is covered by an entry no later than it,
    /// or the connection was told to look.
    fn assert_covered(shared: &ConnectionShared, wheel: &Wheel) {
        let (wanted, armed, due) = shared.snapshot();
        let entry = *wheel.lock().unwrap();
        assert_eq!(
            entry.unwrap_or(UNSET),
            armed,
            "armed disagrees with the wheel"
        );
        assert!(
            due || armed <= wanted,
            "deadline {wanted} lost: armed {armed}, not due"
        );
    }

    /// The entry armed at `armed` (the connection having moved on to `postponed` first, if
    /// any) comes up at `tick` — `driver` fires or cascades it — while the connection moves its
    /// deadline to `to`.
    fn while_moving(
        driver: fn(&ConnectionShared, &Wheel, u64),
        armed: u64,
        postponed: Option<u64>,
        to: u64,
        tick: u64,
    ) {
        loom::model(move || {
            let (shared, wheel) = armed_at(armed);
            if let Some(postponed) = postponed {
                connection_moves_to(&shared, &wheel, postponed);
            }
            let connection = loom::thread::spawn({
                let (shared, wheel) = (Arc::clone(&shared), Arc::clone(&wheel));
                move || connection_moves_to(&shared, &wheel, to)
            });
            driver(&shared, &wheel, tick);
            connection.join().unwrap();
            assert_covered(&shared, &wheel);
        });
    }

    fn fires_while_moving(armed: u64, postponed: Option<u64>, to: u64, tick: u64) {
        while_moving(driver_fires, armed, postponed, to, tick);
    }

    /// Like [`fires_while_moving`], with the entry's slot coming up before its deadline.
    fn cascades_while_moving(armed: u64, postponed: Option<u64>, to: u64, tick: u64) {
        while_moving(driver_cascades, armed, postponed, to, tick);
    }

    #[test]
    fn postponing_while_the_entry_cascades_loses_nothing() {
        cascades_while_moving(20, None, 40, 15);
    }

    #[test]
    fn advancing_while_the_entry_cascades_loses_nothing() {
        cascades_while_moving(20, None, 17, 15);
    }

    /// The entry is at 20, the connection already postponed to 50; while the slot comes up at
    /// 15 it moves to 30. The cascade must not settle on 50.
    #[test]
    fn advancing_a_postponed_deadline_while_the_entry_cascades_is_not_late() {
        cascades_while_moving(20, Some(50), 30, 15);
    }

    /// `due` may be set at the end: the driver read the old deadline, which had passed. It only
    /// tells the connection to look; the connection reports kinds from its own deadlines, so the
    /// postponed one is not reported early.
    #[test]
    fn postponing_while_the_entry_fires_loses_nothing() {
        fires_while_moving(10, None, 20, 15);
    }

    #[test]
    fn advancing_while_the_entry_fires_loses_nothing() {
        fires_while_moving(30, None, 12, 15);
    }

    /// The entry is at 10, the connection already postponed to 30; while the entry fires at 15
    /// it moves to 20, between the two. Neither side may settle on 30 (the store-buffering
    /// case `publish` fences against).
    #[test]
    fn advancing_a_postponed_deadline_while_the_entry_fires_is_not_late() {
        fires_while_moving(10, Some(30), 20, 15);
    }
}
