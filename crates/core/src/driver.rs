//! The driver: sleeps until the earliest deadline of any shard, fires what is due, wakes the
//! waiters outside every lock, and goes back to sleep.
//!
//! One [`pass`] does the work; what runs it depends on the clock:
//! - [`Clock::Tokio`] and [`Clock::Manual`]: a tokio task ([`run_task`]) that sleeps on tokio's
//!   timer (virtual when paused) or on the manual clock's moves.
//! - [`Clock::System`]: a thread of its own ([`run_thread`]) that sleeps on a condition variable
//!   with the exact timeout. tokio's timer rounds every sleep up to its millisecond grid, on top
//!   of the service's own round-up to a tick, and a task driver also waits its turn on a busy
//!   runtime; the thread fires within the kernel's timer slack of the tick.
//! - [`Clock::SystemTimerfd`] (Linux): the waker of a timerfd on the runtime's I/O driver
//!   ([`TimerfdDriver`], [`crate::timerfd`]): the exact timeout without a thread or a task of
//!   its own; the worker that sees the timerfd expire runs the pass and wakes the fired timers'
//!   tasks onto its own queue.
//!
//! # Waking the driver
//! See [`crate::wake`] for the protocol by which arming a timer wakes the driver without ever
//! missing a wake-up; a notification is kept until the driver waits.
//!
//! # Batching
//! Each shard is locked once per pass; fired wakers are collected into a buffer the driver
//! reuses, and woken after the lock is released.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Waker;
use std::time::Duration;

use crate::clock::Clock;
use crate::handoff::ConnectionShared;
use crate::service::{Inner, SharedInner};
use crate::shard::Entry;
use crate::stats::Counters;

/// Buffers a driver reuses from pass to pass, so that passes do not allocate once warm.
#[derive(Default)]
struct Buffers {
    wakers: Vec<Waker>,
    lateness: Vec<Duration>,
    rearm: Vec<(Arc<ConnectionShared>, u64)>,
}

/// The driver as a tokio task (tokio's or a manual clock).
pub(crate) async fn run_task(inner: SharedInner) {
    // If the runtime drops this task (it is shutting down), the service shuts down with it:
    // waiters get `Shutdown` rather than hang.
    let _guard = ShutDownOnDrop(inner.clone());
    let mut buffers = Buffers::default();
    while !inner.is_shut_down() {
        let next = pass(&inner, &mut buffers);
        sleep(&inner, next).await;
    }
    drain(&inner, &mut buffers.wakers);
}

/// The driver as a thread of its own (the system clock). Returns once the service shut down
/// and every waiter was woken.
pub(crate) fn run_thread(inner: SharedInner) {
    let _guard = ShutDownOnDrop(inner.clone());
    let mut buffers = Buffers::default();
    while !inner.is_shut_down() {
        let next = pass(&inner, &mut buffers);
        inner
            .thread_wait
            .as_ref()
            .expect("a system-clock service has a thread wait")
            .wait_until(&inner, next);
    }
    drain(&inner, &mut buffers.wakers);
}

/// The driver of a [`Clock::SystemTimerfd`] service: no task and no thread, but the waker its
/// [`Alarm`](crate::timerfd::Alarm) rings. tokio's I/O driver calls it on the worker that saw
/// the timerfd expire, and it runs the pass right there, sets the alarm for the next tick and
/// registers itself for the next ring.
///
/// A ring can come while another thread is still in a pass (it registered before it finished):
/// that call only raises `again`, and the thread in the pass runs one more.
#[cfg(target_os = "linux")]
pub(crate) struct TimerfdDriver {
    inner: crate::service::WeakInner,
    buffers: std::sync::Mutex<Buffers>,
    again: std::sync::atomic::AtomicBool,
}

#[cfg(target_os = "linux")]
impl TimerfdDriver {
    /// Starts driving `inner` with `alarm`: runs the first pass, which registers for the rings.
    pub(crate) fn start(inner: &SharedInner, alarm: crate::timerfd::Alarm) {
        let driver = Arc::new(Self {
            inner: inner.downgrade(),
            buffers: std::sync::Mutex::new(Buffers::default()),
            again: std::sync::atomic::AtomicBool::new(false),
        });
        let timerfd = Timerfd {
            alarm,
            driver: Arc::clone(&driver),
        };
        if inner.timerfd.set(timerfd).is_ok() {
            driver.drive();
        }
    }

    fn drive(self: Arc<Self>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Some(Timerfd { alarm, .. }) = inner.timerfd.get() else {
            return;
        };
        self.again.store(true, Ordering::SeqCst);
        loop {
            let Ok(mut buffers) = self.buffers.try_lock() else {
                // Another thread is in a pass: it sees `again` before it lets go.
                return;
            };
            while self.again.swap(false, Ordering::SeqCst) {
                if !self.pass_and_register(&inner, alarm, &mut buffers) {
                    return;
                }
            }
            drop(buffers);
            // A ring that found the lock taken after the last look at `again` left it raised.
            if !self.again.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Passes until the alarm is set and registered for a ring still to come; `false` once the
    /// service is shut down (and drained).
    fn pass_and_register(
        self: &Arc<Self>,
        inner: &Inner,
        alarm: &crate::timerfd::Alarm,
        buffers: &mut Buffers,
    ) -> bool {
        let waker = Waker::from(Arc::clone(self));
        let mut cx = std::task::Context::from_waker(&waker);
        loop {
            if inner.is_shut_down() {
                drain(inner, &mut buffers.wakers);
                return false;
            }
            alarm.begin_pass();
            let next = pass(inner, buffers);
            let (at, overdue_after) = alarm_for(inner, next);
            let rang = alarm
                .set(at, overdue_after)
                .and_then(|()| match alarm.poll_rang(&mut cx) {
                    std::task::Poll::Ready(rang) => rang.map(|()| true),
                    std::task::Poll::Pending => Ok(false),
                });
            match rang {
                // Rang already: pass again.
                Ok(true) => {}
                // Registered for the next ring.
                Ok(false) => return true,
                // The runtime's I/O driver is gone, and the service with it.
                Err(_) => {
                    inner.shut_down();
                    drain(inner, &mut buffers.wakers);
                    return false;
                }
            }
        }
    }
}

/// What a [`Clock::SystemTimerfd`] service keeps of its driver: the alarm, and the driver to run
/// a pass with when a reader of the clock finds it overdue.
#[cfg(target_os = "linux")]
pub(crate) struct Timerfd {
    alarm: crate::timerfd::Alarm,
    driver: Arc<TimerfdDriver>,
}

/// When the alarm for tick `tick` rings, and from when (nanoseconds since the epoch) its pass
/// is overdue: a tick later.
#[cfg(target_os = "linux")]
fn alarm_for(inner: &Inner, tick: u64) -> (std::time::Instant, u64) {
    (
        inner.ticks.instant(tick).into_std(),
        inner.ticks.end_nanos(tick),
    )
}

#[cfg(target_os = "linux")]
impl Timerfd {
    /// A timer was just armed for `tick`, earlier than the alarm: rings it for that tick.
    pub(crate) fn ring(&self, inner: &Inner, tick: u64) {
        let (at, overdue_after) = alarm_for(inner, tick);
        self.alarm.ring(at, overdue_after);
    }

    /// `now` was just read from the service's clock: runs the pass if its alarm is overdue.
    #[inline]
    pub(crate) fn run_if_overdue(&self, inner: &Inner, now: tokio::time::Instant) {
        if self.alarm.is_overdue(inner.ticks.nanos(now)) {
            Arc::clone(&self.driver).drive();
        }
    }
}

#[cfg(target_os = "linux")]
impl std::fmt::Debug for Timerfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timerfd")
            .field("alarm", &self.alarm)
            .finish_non_exhaustive()
    }
}

#[cfg(target_os = "linux")]
impl std::task::Wake for TimerfdDriver {
    fn wake(self: Arc<Self>) {
        self.drive();
    }
}

/// One pass: fire what is due in every shard, wake the waiters, publish and return the tick to
/// sleep until.
fn pass(inner: &Inner, buffers: &mut Buffers) -> u64 {
    let Buffers {
        wakers,
        lateness,
        rearm,
    } = buffers;
    inner.wake.begin_pass();
    let now = inner.clock.now();
    inner
        .last_pass_nanos
        .fetch_max(inner.ticks.nanos(now), Ordering::Relaxed);
    let tick = inner.ticks.floor(now);
    let mut next = u64::MAX;
    let mut fired = 0;
    for shard in &*inner.shards {
        let mut state = shard.lock();
        let mut postponed = 0;
        state.wheel.poll_with_postpone(
            tick,
            |expired| {
                let late = || now.saturating_duration_since(inner.ticks.instant(expired.deadline));
                match expired.value {
                    Entry::Waker(waker) => {
                        fired += 1;
                        lateness.push(late());
                        wakers.extend(waker);
                    }
                    // A connection that moved its earliest deadline later is filed again there,
                    // without waking it.
                    Entry::Connection(shared) => match shared.on_fire(tick) {
                        Some(wanted) => rearm.push((shared, wanted)),
                        None => {
                            fired += 1;
                            lateness.push(late());
                            wakers.extend(shared.take_waker());
                        }
                    },
                }
            },
            // Likewise a connection's entry whose slot comes up after its connection moved on:
            // filed at the new deadline instead of cascading towards the old one.
            |key, entry, deadline| match entry {
                Entry::Waker(_) => deadline,
                Entry::Connection(shared) => {
                    let tick = shared.on_cascade(key, deadline);
                    postponed += u64::from(tick > deadline);
                    tick
                }
            },
        );
        Counters::add(&inner.counters.connection_rearms, postponed);
        for (shared, wanted) in rearm.drain(..) {
            let key = state.wheel.insert(wanted, Entry::Connection(shared));
            if let Some(Entry::Connection(shared)) = state.wheel.get(key) {
                shared.file(key, wanted);
            }
            Counters::add(&inner.counters.connection_rearms, 1);
        }
        if let Some(deadline) = state.wheel.next_deadline() {
            next = next.min(deadline);
        }
    }
    Counters::add(&inner.counters.fired, fired as u64);
    Counters::add(&inner.counters.driver_wakeups, 1);
    for waker in wakers.drain(..) {
        waker.wake();
    }
    inner.lateness.record_all(lateness);
    lateness.clear();
    // With no timer at all, wake up once a second anyway: then only timers due within that
    // second need to notify the driver, so a burst of short-lived far timers (armed and
    // cancelled at once, the common case) does not turn into a driver pass per timer.
    let next = if next == u64::MAX {
        tick.saturating_add(inner.idle_recheck)
    } else {
        next
    };
    inner.wake.sleeping_until(next);
    next
}

/// The task driver's wait: until tick `next` or a notification, whichever comes first.
async fn sleep(inner: &Inner, next: u64) {
    let notified = inner.notify.notified();
    match &inner.clock {
        Clock::Tokio | Clock::System | Clock::SystemTimerfd => {
            tokio::select! {
                () = tokio::time::sleep_until(inner.ticks.instant(next)) => {}
                () = notified => {}
            }
        }
        Clock::Manual(manual) => {
            // Listen before looking, so a move between the two is not missed.
            let moved = manual.moved();
            if manual.now() < inner.ticks.instant(next) {
                tokio::select! {
                    () = moved => {}
                    () = notified => {}
                }
            }
        }
    }
}

struct ShutDownOnDrop(SharedInner);

impl Drop for ShutDownOnDrop {
    fn drop(&mut self) {
        self.0.shut_down();
        drain(&self.0, &mut Vec::new());
    }
}

/// Shutdown: marks every shard shut and wakes every pending waiter (their futures then report
/// [`Shutdown`](crate::Shutdown)).
pub(crate) fn drain(inner: &Inner, wakers: &mut Vec<Waker>) {
    for shard in &*inner.shards {
        let mut state = shard.lock();
        state.shut = true;
        state
            .wheel
            .poll_with(u64::MAX, |expired| match expired.value {
                Entry::Waker(waker) => wakers.extend(waker),
                Entry::Connection(shared) => {
                    shared.on_fire(u64::MAX);
                    wakers.extend(shared.take_waker());
                }
            });
    }
    for waker in wakers.drain(..) {
        waker.wake();
    }
}
