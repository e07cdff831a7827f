//! [`TimerService`], its builder, and the cloneable [`TimerHandle`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ticktock_wheel::TimerKey;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::{Clock, Ticks};
use crate::error::{BuildError, Shutdown};
use crate::interval::Interval;
use crate::shard::{self, Entry, Shard};
use crate::sleep::Sleep;
use crate::stats::{Counters, Lateness, TimerStats};
use crate::thread_wait::ThreadWait;
use crate::timeout::Timeout;
use crate::wake::DriverWake;

/// Configures a [`TimerService`]. Start from [`TimerService::builder`].
#[derive(Debug, Clone)]
pub struct TimerServiceBuilder {
    resolution: Duration,
    shards: Option<usize>,
    capacity_per_shard: usize,
    clock: Clock,
}

impl TimerServiceBuilder {
    /// Tick length: timers fire at most about one resolution late. Default 1 ms; at least 1 µs.
    #[must_use]
    pub fn resolution(mut self, resolution: Duration) -> Self {
        self.resolution = resolution;
        self
    }

    /// Number of shards (wheels, each behind its own lock). Default: one per available core.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Timers each shard can hold before its wheel allocates more (a capacity hint).
    #[must_use]
    pub fn capacity_per_shard(mut self, capacity: usize) -> Self {
        self.capacity_per_shard = capacity;
        self
    }

    /// The clock to read (default: tokio's, which is virtual in a paused runtime).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Starts the service's driver: a thread of its own with [`Clock::System`], otherwise a task
    /// on the current tokio runtime (which must have its time driver enabled for tokio's clock,
    /// and its I/O driver for [`Clock::SystemTimerfd`]).
    ///
    /// # Errors
    /// [`BuildError`] for a resolution under 1 µs, a shard count outside 1..=1024, a task driver
    /// started outside a tokio runtime, a driver thread the system refuses, or a timerfd it
    /// refuses (or lacks: [`Clock::SystemTimerfd`] is Linux only).
    ///
    /// # Panics
    /// With [`Clock::SystemTimerfd`], in a runtime whose I/O driver is disabled, as every tokio
    /// I/O type does.
    pub fn start(self) -> Result<TimerService, BuildError> {
        let inner = SharedInner::Counted(Arc::new(self.build()?));
        let driver = spawn_driver(&inner)?;
        Ok(TimerService {
            handle: TimerHandle { inner },
            driver: Some(driver),
        })
    }

    /// Starts a service that lives for the rest of the process and returns its handle. Its
    /// handles (and so every `Sleep` and `ConnectionTimers`) refer to it without reference
    /// counting, so tasks on different cores never write a shared counter to arm a timer.
    /// The [`global`](crate::global) service is one of these.
    ///
    /// Its bookkeeping (a few KiB per shard once its timers are gone) is never freed. If the
    /// runtime a task driver runs on shuts down, the service shuts down with it.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_static(self) -> Result<TimerHandle, BuildError> {
        let inner = SharedInner::Static(Box::leak(Box::new(self.build()?)));
        spawn_driver(&inner)?;
        Ok(TimerHandle { inner })
    }

    fn build(self) -> Result<Inner, BuildError> {
        if self.resolution < Duration::from_micros(1) {
            return Err(BuildError::ResolutionTooFine(self.resolution));
        }
        let shards = self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        if !(1..=1024).contains(&shards) {
            return Err(BuildError::Shards(shards));
        }
        let thread_wait = matches!(self.clock, Clock::System).then(ThreadWait::default);
        let epoch = self.clock.now();
        let ticks = Ticks::new(epoch, self.resolution);
        Ok(Inner {
            thread_wait,
            idle_recheck: ticks.ceil_duration(Duration::from_secs(1)).max(1),
            ticks,
            clock: self.clock,
            shards: (0..shards)
                .map(|_| Shard::new(self.capacity_per_shard))
                .collect(),
            wake: DriverWake::new(),
            last_pass_nanos: AtomicU64::new(0),
            notify: Notify::new(),
            #[cfg(target_os = "linux")]
            timerfd: std::sync::OnceLock::new(),
            shutdown: AtomicBool::new(false),
            counters: Counters::default(),
            lateness: Lateness::default(),
        })
    }
}

/// How handles reach a service's state: counted for services that can be dropped, a plain
/// reference for those that live as long as the process.
#[derive(Debug, Clone)]
pub(crate) enum SharedInner {
    Counted(Arc<Inner>),
    Static(&'static Inner),
}

impl SharedInner {
    /// A reference that does not keep a counted service alive.
    #[cfg(target_os = "linux")]
    pub(crate) fn downgrade(&self) -> WeakInner {
        match self {
            SharedInner::Counted(inner) => WeakInner::Counted(Arc::downgrade(inner)),
            SharedInner::Static(inner) => WeakInner::Static(inner),
        }
    }
}

/// A [`SharedInner`] that does not keep a counted service alive: what a driver that lives in
/// the service's own alarm holds (a strong one would be a cycle).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) enum WeakInner {
    Counted(std::sync::Weak<Inner>),
    Static(&'static Inner),
}

#[cfg(target_os = "linux")]
impl WeakInner {
    pub(crate) fn upgrade(&self) -> Option<SharedInner> {
        match self {
            WeakInner::Counted(inner) => inner.upgrade().map(SharedInner::Counted),
            WeakInner::Static(inner) => Some(SharedInner::Static(inner)),
        }
    }
}

impl std::ops::Deref for SharedInner {
    type Target = Inner;

    #[inline]
    fn deref(&self) -> &Inner {
        match self {
            SharedInner::Counted(inner) => inner,
            SharedInner::Static(inner) => inner,
        }
    }
}

/// The state a service's handles and driver share.
///
/// Aligned to 128 bytes so that, behind an `Arc`, the reference counts (written each time a
/// `Sleep` is made or dropped) sit on cache lines of their own instead of the lines every arm
/// reads (`ticks`, `shards`, `wake_tick`).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Inner {
    pub(crate) clock: Clock,
    /// How the driver thread of a [`Clock::System`] service sleeps (`None`: a task driver).
    pub(crate) thread_wait: Option<ThreadWait>,
    /// Ticks in a second: how long the driver sleeps when it has no timer at all.
    pub(crate) idle_recheck: u64,
    pub(crate) ticks: Ticks,
    pub(crate) shards: Box<[Shard]>,
    /// When the driver sleeps until, and whether it was already notified.
    pub(crate) wake: DriverWake,
    pub(crate) notify: Notify,
    /// The alarm and driver of a [`Clock::SystemTimerfd`] service (set once, when its driver
    /// starts).
    #[cfg(target_os = "linux")]
    pub(crate) timerfd: std::sync::OnceLock<crate::driver::Timerfd>,
    /// The clock reading of the driver's last pass, in nanoseconds since the epoch.
    pub(crate) last_pass_nanos: AtomicU64,
    pub(crate) shutdown: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) lateness: Lateness,
}

impl Inner {
    /// Under the shard's lock, right after arming a timer for `tick`: whether to wake the
    /// driver (see [`DriverWake::must_wake`]).
    #[inline]
    pub(crate) fn must_wake(&self, tick: u64) -> bool {
        self.wake.must_wake(tick)
    }

    /// Wakes the driver for a timer just armed for `tick` (0: for shutdown).
    pub(crate) fn wake_driver(&self, tick: u64) {
        #[cfg(target_os = "linux")]
        if let Some(timerfd) = self.timerfd.get() {
            timerfd.ring(self, tick);
            return;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = tick;
        match &self.thread_wait {
            Some(thread) => thread.notify(),
            None => self.notify.notify_one(),
        }
    }

    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Arms a timer for `deadline` on the calling thread's shard; `None` when it is already due
    /// by the driver's last pass (no clock is read to find that out).
    #[inline]
    pub(crate) fn arm(
        &self,
        deadline: Instant,
        entry: impl FnOnce() -> Entry,
    ) -> Result<Option<(u16, TimerKey)>, Shutdown> {
        let tick = self.ticks.ceil(deadline);
        let shard = shard::current(self.shards.len());
        let (key, wake) = {
            let mut state = self.shards[shard].lock();
            if state.shut {
                return Err(Shutdown);
            }
            if tick <= state.wheel.current_tick() {
                return Ok(None);
            }
            state.counts.armed += 1;
            let key = state.wheel.insert(tick, entry());
            (key, self.must_wake(tick))
        };
        if wake {
            self.wake_driver(tick);
        }
        Ok(Some((shard as u16, key)))
    }

    /// Moves a timer; `false` when it already fired (or the service shut down).
    #[inline]
    pub(crate) fn reset(&self, shard: u16, key: TimerKey, deadline: Instant) -> bool {
        let tick = self.ticks.ceil(deadline);
        let (moved, wake) = {
            let mut state = self.shards[usize::from(shard)].lock();
            let moved = state.wheel.reset(key, tick);
            state.counts.reset += u64::from(moved);
            (moved, moved && self.must_wake(tick))
        };
        if wake {
            self.wake_driver(tick);
        }
        moved
    }

    /// Cancels a timer; `false` when it already fired.
    #[inline]
    pub(crate) fn cancel(&self, shard: u16, key: TimerKey) -> bool {
        let mut state = self.shards[usize::from(shard)].lock();
        let cancelled = state.wheel.cancel(key).is_some();
        state.counts.cancelled += u64::from(cancelled);
        cancelled
    }

    pub(crate) fn stats(&self) -> TimerStats {
        let mut stats = TimerStats {
            active_connections: self.counters.connections.load(Ordering::Relaxed),
            processed: self.counters.fired.load(Ordering::Relaxed),
            driver_wakeups: self.counters.driver_wakeups.load(Ordering::Relaxed),
            connection_rearms: self.counters.connection_rearms.load(Ordering::Relaxed),
            lateness: self.lateness.snapshot(),
            ..TimerStats::default()
        };
        for shard in &*self.shards {
            let state = shard.lock();
            stats.add_wheel(&state.wheel.stats());
            stats.armed += state.counts.armed;
            stats.cancelled += state.counts.cancelled;
            stats.reset += state.counts.reset;
        }
        stats
    }

    /// Stops the service: no new timers; the driver drains the wheels and wakes every waiter.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.wake_driver(0);
    }
}

/// The global timer service: sharded timing wheels and the driver task that fires them.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) stops the service: pending futures
/// resolve with [`Shutdown`] and arming new timers fails. Use [`handle`](Self::handle) to get
/// cheap cloneable handles for tasks and threads.
#[derive(Debug)]
pub struct TimerService {
    handle: TimerHandle,
    driver: Option<Driver>,
}

/// A running driver, to wait for at shutdown.
#[derive(Debug)]
enum Driver {
    Task(JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
    /// Runs from its alarm's waker ([`Clock::SystemTimerfd`]): nothing to wait for.
    #[cfg(target_os = "linux")]
    Alarm,
}

/// Starts `inner`'s driver: a thread for the system clock, a task on the current runtime
/// otherwise.
fn spawn_driver(inner: &SharedInner) -> Result<Driver, BuildError> {
    if matches!(inner.clock, Clock::System) {
        let inner = inner.clone();
        return std::thread::Builder::new()
            .name("ticktock-driver".into())
            .spawn(move || crate::driver::run_thread(inner))
            .map(Driver::Thread)
            .map_err(|error| BuildError::Thread(error.kind()));
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
    if matches!(inner.clock, Clock::SystemTimerfd) {
        return spawn_timerfd_driver(inner, &runtime);
    }
    Ok(Driver::Task(
        runtime.spawn(crate::driver::run_task(inner.clone())),
    ))
}

/// Starts the driver of a [`Clock::SystemTimerfd`] service: its alarm on `runtime`'s I/O
/// driver, and the first pass.
#[cfg(target_os = "linux")]
fn spawn_timerfd_driver(
    inner: &SharedInner,
    runtime: &tokio::runtime::Handle,
) -> Result<Driver, BuildError> {
    let alarm = {
        let _context = runtime.enter();
        crate::timerfd::Alarm::new().map_err(|error| BuildError::Timerfd(error.kind()))?
    };
    crate::driver::TimerfdDriver::start(inner, alarm);
    Ok(Driver::Alarm)
}

/// [`Clock::SystemTimerfd`] needs Linux.
#[cfg(not(target_os = "linux"))]
fn spawn_timerfd_driver(
    _inner: &SharedInner,
    _runtime: &tokio::runtime::Handle,
) -> Result<Driver, BuildError> {
    Err(BuildError::Timerfd(std::io::ErrorKind::Unsupported))
}

impl TimerService {
    /// A builder with the defaults: 1 ms resolution, one shard per core, tokio's clock.
    #[must_use]
    pub fn builder() -> TimerServiceBuilder {
        TimerServiceBuilder {
            resolution: Duration::from_millis(1),
            shards: None,
            capacity_per_shard: 0,
            clock: Clock::Tokio,
        }
    }

    /// A handle to this service.
    #[must_use]
    pub fn handle(&self) -> TimerHandle {
        self.handle.clone()
    }

    /// Stops the service and waits for its driver to finish waking every pending timer.
    pub async fn shutdown(mut self) {
        self.handle.inner.shut_down();
        // The driver never panics on its own; a join error means its runtime is going away,
        // which is a shutdown too.
        match self.driver.take() {
            Some(Driver::Task(task)) => {
                task.await.ok();
            }
            // Drained here rather than by the alarm's next pass: the runtime whose I/O driver
            // would ring it may be on its way out.
            #[cfg(target_os = "linux")]
            Some(Driver::Alarm) => crate::driver::drain(&self.handle.inner, &mut Vec::new()),
            Some(Driver::Thread(thread)) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn_blocking(move || thread.join()).await.ok();
                }
                // Not on tokio: the thread only drains the wheels and exits, so wait for it.
                Err(_) => {
                    thread.join().ok();
                }
            },
            None => {}
        }
    }
}

impl Drop for TimerService {
    fn drop(&mut self) {
        self.handle.inner.shut_down();
        #[cfg(target_os = "linux")]
        if let Some(Driver::Alarm) = self.driver {
            crate::driver::drain(&self.handle.inner, &mut Vec::new());
        }
    }
}

/// A cheap, cloneable handle to a [`TimerService`], usable from any task or thread.
#[derive(Debug, Clone)]
pub struct TimerHandle {
    pub(crate) inner: SharedInner,
}

impl TimerHandle {
    /// The service's current time (a clock read).
    ///
    /// On a [`Clock::SystemTimerfd`] service whose alarm is a tick overdue (its ring is waiting
    /// for a busy worker to look at its I/O), the caller also runs the driver's pass, firing
    /// what is due.
    #[must_use]
    #[inline]
    pub fn now(&self) -> Instant {
        let now = self.inner.clock.now();
        #[cfg(target_os = "linux")]
        if let Some(timerfd) = self.inner.timerfd.get() {
            timerfd.run_if_overdue(&self.inner, now);
        }
        now
    }

    /// A coarse "now" that reads no clock: the time of the driver's last pass (the seed's
    /// `TimeCache`). Never ahead of the real time; behind it by the time since the driver last
    /// woke, which is small while timers are firing but unbounded while the service is idle.
    /// Good for stamps and statistics on hot paths; to arm timers from a packet's arrival, pass
    /// the receive time you already have (e.g. `ConnectionTimers::reset_idle_timeout_at`).
    #[must_use]
    pub fn coarse_now(&self) -> Instant {
        let nanos = self.inner.last_pass_nanos.load(Ordering::Relaxed);
        self.inner.ticks.epoch() + Duration::from_nanos(nanos)
    }

    /// The service's tick length.
    #[must_use]
    pub fn resolution(&self) -> Duration {
        self.inner.ticks.resolution()
    }

    /// Whether the service has shut down.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.inner.is_shut_down()
    }

    /// A future that resolves `duration` from now. Any duration is accepted: one past what an
    /// `Instant` can hold means "about 30 years from now".
    #[inline]
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(self.clone(), self.after(duration))
    }

    /// `duration` from now, saturating at about 30 years from now.
    #[inline]
    pub(crate) fn after(&self, duration: Duration) -> Instant {
        let now = self.now();
        now.checked_add(duration)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
    }

    /// A future that resolves at `deadline`.
    #[inline]
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self.clone(), deadline)
    }

    /// Runs `future` until it completes or `duration` passes.
    pub fn timeout<F: std::future::Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout::new(future, self.sleep(duration))
    }

    /// Runs `future` until it completes or `deadline` passes.
    pub fn timeout_at<F: std::future::Future>(&self, deadline: Instant, future: F) -> Timeout<F> {
        Timeout::new(future, self.sleep_until(deadline))
    }

    /// Ticks every `period`, the first tick at once. A zero period is taken as one resolution.
    #[must_use]
    pub fn interval(&self, period: Duration) -> Interval {
        Interval::new(self.clone(), self.now(), period)
    }

    /// Ticks every `period`, the first tick at `start`. A zero period is taken as one
    /// resolution.
    #[must_use]
    pub fn interval_at(&self, start: Instant, period: Duration) -> Interval {
        Interval::new(self.clone(), start, period)
    }

    /// A snapshot of the service's statistics (also sent to the `metrics` facade).
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        let stats = self.inner.stats();
        stats.export();
        stats
    }
}
