//! The alarm of a [`Clock::SystemTimerfd`](crate::Clock::SystemTimerfd) service: a Linux
//! `timerfd` registered with the tokio runtime's I/O driver.
//!
//! Why: a driver thread of its own fires on time, but every pass that fires a timer wakes a
//! tokio worker from another thread (a context switch for the driver, another for the worker, a
//! lock on the runtime's injection queue); a driver task on tokio's timer costs none of that but
//! waits on tokio's millisecond grid, then for its turn in a worker's queue. A timerfd expires
//! at the exact time the kernel was given, its readiness arrives through the same `epoll_wait`
//! the workers park in, and the waker it wakes runs the pass right there (see
//! [`crate::driver::TimerfdDriver`]), so the fired timers' tasks are woken from that worker,
//! onto its own queue.
//!
//! # Readers of the clock lend a hand
//! When both workers are busy, a worker looks at its I/O driver only between tasks (every 61
//! polls in tokio's scheduler), and the ring waits. So [`TimerHandle::now`](crate::TimerHandle::now)
//! on such a service checks [`Alarm::is_overdue`] (a load and a compare) and, a tick after the
//! alarm's time, runs the pass itself: a QUIC endpoint reads the clock on every packet and
//! every timer poll, so on a busy runtime some task does this within microseconds.
//!
//! # Setting the alarm without losing a ring
//! The pass sets the alarm for its next tick. A timer armed earlier than that (the
//! [`DriverWake`](crate::wake::DriverWake) protocol says when) rings the alarm: it sets the
//! timerfd to the timer's own tick if that is earlier than what it is set for, so the timer's
//! pass is the next one and no pass is spent in between. Both happen under one mutex, with the
//! earliest ring since the pass began kept there: the pass then sets the alarm for that ring
//! if it is earlier than its own next tick, so a ring whose timer the pass's scan missed is
//! never overwritten.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// What the timerfd is set for, kept under [`Alarm::setting`]: instants on the clock
/// `std::time::Instant` reads (`CLOCK_MONOTONIC`), each with the nanoseconds (since the
/// service's epoch) from which the pass for it counts as overdue.
#[derive(Debug, Default)]
struct Setting {
    /// When the timerfd rings (`None`: not set yet).
    set_for: Option<Instant>,
    /// The earliest ring since the current pass began.
    rung: Option<(Instant, u64)>,
}

/// A monotonic-clock timerfd on a runtime's I/O driver.
#[derive(Debug)]
pub(crate) struct Alarm {
    fd: AsyncFd<OwnedFd>,
    /// Serializes setting the timerfd (see the module doc).
    setting: Mutex<Setting>,
    /// From when (nanoseconds since the service's epoch) a reader of the clock finds the pass
    /// overdue and runs it itself; `u64::MAX` during a pass.
    overdue_after: AtomicU64,
}

impl Alarm {
    /// Creates the alarm (not set) and registers it with the current runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, or in one without its I/O driver (as every tokio I/O type).
    pub(crate) fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // tokio 1.54 deprecates `AsyncFd::new` for types whose `as_raw_fd` could change or close
        // under it; an `OwnedFd` owned by the `AsyncFd` can do neither, so this is the safe case
        // the `unsafe fn register` would have us promise by hand.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Self {
            fd,
            setting: Mutex::new(Setting::default()),
            overdue_after: AtomicU64::new(u64::MAX),
        })
    }

    /// The driver: a pass begins; rings from here on are its business.
    pub(crate) fn begin_pass(&self) {
        self.overdue_after.store(u64::MAX, Ordering::Relaxed);
        self.lock().rung = None;
    }

    /// The driver: the pass is over; ring at `at`, or at the earliest ring since the pass
    /// began if that is earlier. From `overdue_after` (nanoseconds since the service's epoch;
    /// the ring's own if that is used) on, [`is_overdue`](Self::is_overdue) says so.
    pub(crate) fn set(&self, at: Instant, overdue_after: u64) -> io::Result<()> {
        let mut setting = self.lock();
        let (at, overdue_after) = match setting.rung.take() {
            Some(rung) if rung.0 < at => rung,
            _ => (at, overdue_after),
        };
        self.overdue_after.store(overdue_after, Ordering::Relaxed);
        setting.set_for = Some(at);
        self.set_at(at)
    }

    /// Whether the alarm should have rung well before `now` (nanoseconds since the service's
    /// epoch) and the pass has not run: its ring is still waiting for a worker to look at its
    /// I/O.
    #[inline]
    pub(crate) fn is_overdue(&self, now: u64) -> bool {
        now >= self.overdue_after.load(Ordering::Relaxed)
    }

    /// A timer due at `at` was armed earlier than the alarm: make the alarm ring then at the
    /// latest, counting its pass overdue from `overdue_after` on.
    pub(crate) fn ring(&self, at: Instant, overdue_after: u64) {
        let mut setting = self.lock();
        if setting.rung.is_none_or(|rung| at < rung.0) {
            setting.rung = Some((at, overdue_after));
        }
        if setting.set_for.is_none_or(|set_for| at < set_for) {
            setting.set_for = Some(at);
            self.overdue_after
                .fetch_min(overdue_after, Ordering::Relaxed);
            // Only a closed timerfd fails here, and then the runtime is gone with its I/O
            // driver.
            self.set_at(at).ok();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Setting> {
        self.setting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the alarm rang; `Pending` registers `cx`'s waker for the ring. A readiness
    /// left over from an earlier setting (a ring that a later setting took back) reads as
    /// nothing, is cleared, and registers.
    pub(crate) fn poll_rang(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut ready = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(ready)) => ready,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => {
                    // The read took every expiration: the timerfd is not readable until it
                    // rings again (a new edge), so the next poll need not read to find out.
                    // tokio keeps a readiness that arrived after this one.
                    ready.clear_ready();
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => {}
            }
        }
    }

    /// Sets the timerfd to expire once, at `at`: relative to a clock reading taken before the
    /// call, so never before `at` (and at least a nanosecond ahead: zero unsets).
    fn set_at(&self, at: Instant) -> io::Result<()> {
        let after = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let value = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: after.subsec_nanos().into(),
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &value)?;
        Ok(())
    }
}
