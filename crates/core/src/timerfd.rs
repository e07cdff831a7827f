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
//! # Setting the alarm without losing a ring
//! The pass sets the alarm for its next tick; a timer armed earlier than that (the
//! [`DriverWake`](crate::wake::DriverWake) protocol says when) rings it at once. Both happen
//! under one mutex, with a `pending` flag the ring raises and the pass clears before it scans:
//! a ring that came after the scan began leaves the flag up, and the pass then sets the alarm
//! to ring at once instead of for its next tick, so no ring is overwritten.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

/// A monotonic-clock timerfd on a runtime's I/O driver.
#[derive(Debug)]
pub(crate) struct Alarm {
    fd: AsyncFd<OwnedFd>,
    /// Serializes setting the timerfd (see the module doc).
    setting: Mutex<()>,
    /// A ring since the current pass began.
    pending: AtomicBool,
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
            setting: Mutex::new(()),
            pending: AtomicBool::new(false),
        })
    }

    /// The driver: a pass begins; rings from here on are its business.
    pub(crate) fn begin_pass(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// The driver: the pass is over; ring at `at` (on the clock `std::time::Instant` reads,
    /// `CLOCK_MONOTONIC`), or at once if rung since the pass began.
    pub(crate) fn set(&self, at: Instant) -> io::Result<()> {
        let _setting = self.setting.lock().unwrap_or_else(PoisonError::into_inner);
        let after = if self.pending.load(Ordering::SeqCst) {
            Duration::ZERO
        } else {
            // Relative to a reading taken before the call, so it never rings before `at`.
            at.saturating_duration_since(Instant::now())
        };
        self.set_after(after)
    }

    /// A timer was armed earlier than the alarm: ring at once.
    pub(crate) fn ring(&self) {
        let _setting = self.setting.lock().unwrap_or_else(PoisonError::into_inner);
        self.pending.store(true, Ordering::SeqCst);
        // Only a closed timerfd fails here, and then the runtime is gone with its I/O driver.
        self.set_after(Duration::ZERO).ok();
    }

    /// Whether the alarm rang; `Pending` registers `cx`'s waker for the ring. A readiness
    /// left over from an earlier setting reads as nothing, is cleared, and registers.
    pub(crate) fn poll_rang(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut ready = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(ready)) => ready,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(Ok(_)) => return Poll::Ready(Ok(())),
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => {}
            }
        }
    }

    /// Sets the timerfd to expire once, `after` from now (at least a nanosecond: zero unsets).
    fn set_after(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
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
