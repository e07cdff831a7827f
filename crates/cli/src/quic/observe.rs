//! One wrapper around either runtime's timers, so both are counted and timed by the same code.
//!
//! [`Observed`] wraps a `quinn::Runtime` (ticktock's or quinn's own tokio one) and each timer it
//! makes. It counts creations, resets and polls (plain per-timer counts, flushed every
//! [`ticktock_quinn::FLUSH_EVERY`] operations and on drop, as `ticktock-quinn` counts its own),
//! and times every **wake-up**: the inner timer is polled with a waker of ours that, when the
//! timer fires, reads the clock, compares it with the deadline and passes the wake on. quinn
//! checks the clock itself before it polls its timer, so a fired timer is seldom polled ready;
//! the wake-up is where a timer's lateness (and any early fire) shows. The measure stops at the
//! wake, before the runtime schedules the connection's task, which both runtimes do alike.
//!
//! A timer whose last event before it drops is a wake-up ended its connection: quinn stops
//! moving a connection's timer once the connection is over. That wake-up is the idle timeout
//! for a connection closed by it (on both sides), and the end of the drain period for one
//! closed gracefully. Those **closing wake-ups** are counted apart. The load lets every idle
//! client's idle timeout come due before the first active client can close (see
//! `QuicConfig::validate`), so the closing wake-ups whose deadline precedes that moment are
//! exactly the **idle timeouts**, on both sides of each idle connection; the later ones end
//! drain periods, most of them in the burst of graceful closes as the load ends.
//!
//! Both runtimes pay the same for this: one more box per timer, one clock read per wake-up.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use quinn::{AsyncTimer, AsyncUdpSocket};
use serde::Serialize;
use ticktock_quinn::FLUSH_EVERY;

/// Lateness buckets: four per power of two of microseconds, up to about 70 s.
const BUCKETS: usize = 4 * 26;
/// The lateness budget of the issue: a wake-up later than this counts as over.
pub(super) const BUDGET: Duration = Duration::from_millis(2);

/// A runtime whose timers are counted and timed.
#[derive(Debug)]
pub struct Observed<R> {
    inner: R,
    shared: Arc<Shared>,
}

impl<R> Observed<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared::new()),
        }
    }

    /// The runtime inside.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// What was counted so far (live timers lag by under [`FLUSH_EVERY`] operations each);
    /// closing wake-ups due before `idle_until` count as idle timeouts.
    pub fn figures(&self, idle_until: Instant) -> TimerFigures {
        self.shared.figures(idle_until)
    }
}

/// Timer operations and wake-up lateness of one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TimerFigures {
    /// Timers made (one per connection).
    pub created: u64,
    /// Deadline moves.
    pub resets: u64,
    /// Polls.
    pub polls: u64,
    /// Made + resets + polls.
    pub operations: u64,
    /// Wake-ups from fired timers.
    pub wakes: u64,
    /// Wake-ups before the deadline (must be 0).
    pub early_wakes: u64,
    /// Wake-ups more than 2 ms after the deadline.
    pub wakes_over_2ms: u64,
    /// Wake-up lateness, µs: median (bucketed, within about 10 %).
    pub wake_p50_us: f64,
    /// 99th percentile (bucketed).
    pub wake_p99_us: f64,
    /// 99.9th percentile (bucketed).
    pub wake_p999_us: f64,
    /// Largest (exact).
    pub wake_max_us: f64,
    /// Wake-ups that ended their connection (idle timeouts, ends of drain periods).
    pub closing_wakes: u64,
    /// Closing wake-ups more than 2 ms after the deadline.
    pub closing_wakes_over_2ms: u64,
    /// The latest closing wake-up, µs after its deadline.
    pub closing_wake_max_us: f64,
    /// Closing wake-ups due before the first active client could close: the idle timeouts
    /// (both sides of each idle connection).
    pub idle_timeout_wakes: u64,
    /// Idle timeouts more than 2 ms after the deadline.
    pub idle_timeout_wakes_over_2ms: u64,
    /// The latest idle timeout, µs after its deadline.
    pub idle_timeout_wake_max_us: f64,
}

#[derive(Debug)]
struct Shared {
    /// The origin of deadlines stored as nanoseconds.
    base: Instant,
    created: AtomicU64,
    resets: AtomicU64,
    polls: AtomicU64,
    wakes: AtomicU64,
    early: AtomicU64,
    over_budget: AtomicU64,
    max_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
    /// Each closing wake-up's deadline and lateness, ns (one per connection side).
    closings: Mutex<Vec<(u64, u64)>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            created: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            early: AtomicU64::new(0),
            over_budget: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            closings: Mutex::new(Vec::new()),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn record(&self, lateness: Duration) {
        let nanos = u64::try_from(lateness.as_nanos()).unwrap_or(u64::MAX);
        self.wakes.fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(nanos, Ordering::Relaxed);
        if lateness > BUDGET {
            self.over_budget.fetch_add(1, Ordering::Relaxed);
        }
        self.buckets[bucket(nanos / 1000)].fetch_add(1, Ordering::Relaxed);
    }

    /// A timer dropped with a wake-up for `deadline_ns`, `late_ns` late, as its last event: a
    /// closing wake-up.
    fn record_closing(&self, deadline_ns: u64, late_ns: u64) {
        self.closings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((deadline_ns, late_ns));
    }

    fn figures(&self, idle_until: Instant) -> TimerFigures {
        let closings = self
            .closings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let idle_until = self.nanos(idle_until);
        let all = Closings::of(closings.iter());
        let idle = Closings::of(
            closings
                .iter()
                .filter(|&&(deadline, _)| deadline < idle_until),
        );
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counts: Vec<u64> = self.buckets.iter().map(load).collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            let rank = (total as f64 * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, &count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return bucket_middle_us(index);
                }
            }
            0.0
        };
        // A bucket's middle can lie above the largest sample in it: never report past the max.
        let max_us = load(&self.max_ns) as f64 / 1e3;
        let quantile = |q: f64| quantile(q).min(max_us);
        let (created, resets, polls) = (load(&self.created), load(&self.resets), load(&self.polls));
        TimerFigures {
            created,
            resets,
            polls,
            operations: created + resets + polls,
            wakes: load(&self.wakes),
            early_wakes: load(&self.early),
            wakes_over_2ms: load(&self.over_budget),
            wake_p50_us: if total > 0 { quantile(0.5) } else { 0.0 },
            wake_p99_us: if total > 0 { quantile(0.99) } else { 0.0 },
            wake_p999_us: if total > 0 { quantile(0.999) } else { 0.0 },
            wake_max_us: max_us,
            closing_wakes: all.count,
            closing_wakes_over_2ms: all.over_budget,
            closing_wake_max_us: all.latest_us,
            idle_timeout_wakes: idle.count,
            idle_timeout_wakes_over_2ms: idle.over_budget,
            idle_timeout_wake_max_us: idle.latest_us,
        }
    }
}

/// How many closing wake-ups, how many over the budget, and the latest (µs).
struct Closings {
    count: u64,
    over_budget: u64,
    latest_us: f64,
}

impl Closings {
    /// Of `(deadline, lateness)` pairs in ns.
    fn of<'a>(closings: impl Iterator<Item = &'a (u64, u64)>) -> Self {
        let mut summary = Self {
            count: 0,
            over_budget: 0,
            latest_us: 0.0,
        };
        for &(_, late) in closings {
            summary.count += 1;
            summary.over_budget += u64::from(Duration::from_nanos(late) > BUDGET);
            summary.latest_us = summary.latest_us.max(late as f64 / 1e3);
        }
        summary
    }
}

/// The bucket of a lateness of `us` microseconds: 0 for under 1 µs, then four per octave.
fn bucket(us: u64) -> usize {
    if us == 0 {
        return 0;
    }
    let octave = 63 - us.leading_zeros() as usize;
    // The two bits below the leading one pick the quarter of the octave.
    let quarter = if octave >= 2 {
        ((us >> (octave - 2)) & 3) as usize
    } else {
        ((us << (2 - octave)) & 3) as usize
    };
    (1 + octave * 4 + quarter).min(BUCKETS - 1)
}

/// The middle of bucket `index`, in µs.
fn bucket_middle_us(index: usize) -> f64 {
    if index == 0 {
        return 0.5;
    }
    let octave = (index - 1) / 4;
    let quarter = (index - 1) % 4;
    let low = (1u64 << octave) as f64 * (1.0 + quarter as f64 / 4.0);
    let high = (1u64 << octave) as f64 * (1.0 + (quarter + 1) as f64 / 4.0);
    (low + high) / 2.0
}

impl<R: quinn::Runtime> quinn::Runtime for Observed<R> {
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        self.shared.created.fetch_add(1, Ordering::Relaxed);
        let probe = Arc::new(Probe {
            shared: Arc::clone(&self.shared),
            deadline_ns: AtomicU64::new(self.shared.nanos(deadline)),
            earliest_ns: AtomicU64::new(self.shared.nanos(deadline)),
            last_wake_late_ns: AtomicU64::new(NO_WAKE),
            task: AtomicWaker::new(),
        });
        Box::pin(ObservedTimer {
            inner: self.inner.new_timer(deadline),
            waker: Waker::from(Arc::clone(&probe)),
            probe,
            resets: 0,
            polls: 0,
        })
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.inner.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        self.inner.wrap_udp_socket(socket)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }
}

/// The waker the inner timer is polled with: it times the wake, then wakes the task.
#[derive(Debug)]
struct Probe {
    shared: Arc<Shared>,
    /// The current deadline, in ns since `shared.base`.
    deadline_ns: AtomicU64,
    /// The earliest deadline set since the last wake: a wake that raced a reset belongs to an
    /// earlier deadline than the current one, and is early only if it precedes this.
    earliest_ns: AtomicU64,
    /// How late the last wake-up was, in ns, if nothing moved the timer since (`NO_WAKE`).
    last_wake_late_ns: AtomicU64,
    task: AtomicWaker,
}

/// [`Probe::last_wake_late_ns`] when the timer moved after its last wake-up, or never woke.
const NO_WAKE: u64 = u64::MAX;

impl Wake for Probe {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let now = self.shared.nanos(Instant::now());
        let deadline = self.deadline_ns.load(Ordering::Relaxed);
        let earliest = self.earliest_ns.swap(deadline, Ordering::Relaxed);
        if now >= deadline {
            self.shared.record(Duration::from_nanos(now - deadline));
            self.last_wake_late_ns
                .store((now - deadline).min(NO_WAKE - 1), Ordering::Relaxed);
        } else if now < earliest.min(deadline) {
            self.shared.early.fetch_add(1, Ordering::Relaxed);
        }
        // Otherwise a wake for a deadline that a reset has since moved: neither early nor late.
        self.task.wake();
    }
}

/// A timer of the inner runtime, counted and timed.
struct ObservedTimer {
    inner: Pin<Box<dyn AsyncTimer>>,
    probe: Arc<Probe>,
    /// `probe` as a waker, made once so the inner timer sees the same waker at every poll.
    waker: Waker,
    resets: u32,
    polls: u32,
}

impl std::fmt::Debug for ObservedTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedTimer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ObservedTimer {
    fn count(&mut self, reset: bool) {
        if reset {
            self.resets += 1;
        } else {
            self.polls += 1;
        }
        if self.resets + self.polls >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let shared = &self.probe.shared;
        shared.resets.fetch_add(
            u64::from(std::mem::take(&mut self.resets)),
            Ordering::Relaxed,
        );
        shared.polls.fetch_add(
            u64::from(std::mem::take(&mut self.polls)),
            Ordering::Relaxed,
        );
    }
}

impl AsyncTimer for ObservedTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.count(true);
        let nanos = self.probe.shared.nanos(deadline);
        self.probe
            .last_wake_late_ns
            .store(NO_WAKE, Ordering::Relaxed);
        self.probe.deadline_ns.store(nanos, Ordering::Relaxed);
        self.probe.earliest_ns.fetch_min(nanos, Ordering::Relaxed);
        self.inner.as_mut().reset(deadline);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.count(false);
        self.probe.task.register(cx.waker());
        let this = &mut *self;
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

impl Drop for ObservedTimer {
    fn drop(&mut self) {
        self.flush();
        let late = self.probe.last_wake_late_ns.load(Ordering::Relaxed);
        if late != NO_WAKE {
            // Nothing moved the timer since that wake-up, so its deadline is still the one set.
            let deadline = self.probe.deadline_ns.load(Ordering::Relaxed);
            self.probe.shared.record_closing(deadline, late);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_with_lateness_and_their_middles_fall_inside() {
        let mut last = 0;
        for us in [
            0,
            1,
            2,
            3,
            5,
            8,
            100,
            999,
            1000,
            2000,
            5000,
            1_000_000,
            u64::MAX,
        ] {
            let index = bucket(us);
            assert!(index >= last, "{us}");
            last = index;
        }
        for us in [1u64, 7, 100, 1500, 20_000] {
            let middle = bucket_middle_us(bucket(us));
            assert!(
                (middle - us as f64).abs() <= us as f64 * 0.25 + 1.0,
                "{us}: {middle}"
            );
        }
    }

    #[test]
    fn lateness_quantiles_and_budget() {
        let shared = Shared::new();
        for us in 1..=100u64 {
            shared.record(Duration::from_micros(us * 30));
        }
        let figures = shared.figures(shared.base);
        assert_eq!(figures.wakes, 100);
        assert_eq!(figures.wakes_over_2ms, 34);
        assert!((figures.wake_p50_us - 1500.0).abs() < 300.0, "{figures:?}");
        assert_eq!(figures.wake_max_us, 3000.0);
    }

    #[test]
    fn closing_wake_ups_due_before_the_first_graceful_close_are_the_idle_timeouts() {
        let shared = Shared::new();
        let ms = |ms: u64| ms * 1_000_000;
        // Two idle timeouts (one 3 ms late), then three drain ends after the split.
        shared.record_closing(ms(100), ms(1));
        shared.record_closing(ms(200), ms(3));
        shared.record_closing(ms(900), ms(5));
        shared.record_closing(ms(950), 0);
        shared.record_closing(ms(990), ms(1));
        let figures = shared.figures(shared.base + Duration::from_millis(500));
        assert_eq!(
            (figures.closing_wakes, figures.closing_wakes_over_2ms),
            (5, 2)
        );
        assert_eq!(figures.closing_wake_max_us, 5000.0);
        assert_eq!(
            (
                figures.idle_timeout_wakes,
                figures.idle_timeout_wakes_over_2ms
            ),
            (2, 1)
        );
        assert_eq!(figures.idle_timeout_wake_max_us, 3000.0);
    }
}
