//! [`LayeredTimeouts`]: a [`UnifiedScheduler`] on the timer service, with one registration
//! per connection at the unified deadline.
//!
//! Layer changes only touch the scheduler's cache. The registration is brought in line when
//! the connection next waits ([`poll_timeouts`](LayeredTimeouts::poll_timeouts)) or checks:
//! the waiting future borrows the connection mutably, so no layer can change while it waits,
//! and a packet that changes three layers is judged by its net effect.
//!
//! - The unified deadline moved **later** (the idle timeout on every packet, the RTO stopped
//!   by an ack): the new tick is published with a store and the wheel entry stays where it
//!   is. When the driver reaches the entry — its slot, to cascade it, or its tick, to fire
//!   it — it finds the later tick and files the entry there, without waking the connection.
//! - It moved **earlier**: the registration is reset under the shard's lock.
//!
//! Deadlines come in two [`Precision`](crate::Precision)s (see [`TimeoutLayer::next_deadlines`]): the entry's
//! tick is the earlier of the exact deadline's tick and the coarse deadline's tick rounded up
//! to the wheel granularity that is at most an eighth of the time to it, so coarse idle and
//! keep-alive timeouts fire at a slot boundary instead of cascading down to their own tick.
//!
//! Whether anything is due is judged against the tick of the driver's last pass, so a poll
//! reads no clock unless something is due: when the registration fires, the pass that fired it
//! has already moved past the deadline's tick. Layers are then checked at the real time.

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use super::scheduler::{LayerGuard, LayerId, SchedulerStats, UnifiedScheduler};
use super::{LayerDeadlines, TimeoutCheckResult, TimeoutLayer};
use crate::error::Shutdown;
use crate::registration::Registration;
use crate::service::TimerHandle;

/// How close (in ticks) the registration's entry must be before a poll publishes a postponed
/// deadline: two level-1 rotations. An entry further away sits on level 2 or higher, whose slot
/// cannot come up within the next 4,096 ticks.
const PUBLISH_WITHIN: u64 = 2 * 64 * 64;

/// `filed_tick` before the registration was ever filed (`UNSET` means filed with no deadline).
const NEVER_FILED: u64 = 0;

/// A connection's timeout layers on one timer-service registration.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use ticktock::{LayerEvent, LayeredTimeouts, TimeoutEvent, TimerService, TimingConfig, TimingManager};
///
/// let service = TimerService::builder().start()?;
/// let mut timeouts = LayeredTimeouts::new(service.handle());
/// let config = TimingConfig { idle_timeout: Duration::from_secs(5), ..TimingConfig::default() };
/// let timing = timeouts.add_layer(TimingManager::new(config, timeouts.now()));
/// if let Some(mut layer) = timeouts.layer_mut(timing) {
///     layer.on_established();
/// }
/// let results = timeouts.next_timeouts().await?;
/// assert_eq!(results[0].events, [LayerEvent::Timeout(TimeoutEvent::IdleTimeout)]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LayeredTimeouts {
    scheduler: UnifiedScheduler,
    registration: Registration,
    /// The deadlines the registration was last pointed at. The scheduler's
    /// [`moved_earlier`](UnifiedScheduler::moved_earlier) flag is cleared only when the unified
    /// deadlines are not earlier than these, so while it is clear they still are not.
    filed_for: LayerDeadlines,
    /// The tick the registration was filed at for them (`NEVER_FILED` before the first poll).
    /// Two fields rather than an `Option` of both: with many connections every byte of this
    /// struct is a share of a cache miss per packet.
    filed_tick: u64,
    /// The waker last registered with the registration.
    waker: Option<Waker>,
}

impl LayeredTimeouts {
    /// No layers yet, on the service behind `handle`.
    #[must_use]
    pub fn new(handle: TimerHandle) -> Self {
        Self {
            scheduler: UnifiedScheduler::new(),
            registration: Registration::new(handle),
            filed_for: LayerDeadlines::default(),
            filed_tick: NEVER_FILED,
            waker: None,
        }
    }

    /// The service's current time (what layers should be given as `now`).
    #[must_use]
    pub fn now(&self) -> Instant {
        self.registration.handle().now()
    }

    /// Adds a layer; the returned id reaches it again.
    pub fn add_layer<T: TimeoutLayer>(&mut self, layer: T) -> LayerId<T> {
        self.scheduler.add_layer(layer)
    }

    /// The layer `id` names; `None` as for [`UnifiedScheduler::layer`].
    #[must_use]
    pub fn layer<T: TimeoutLayer>(&self, id: LayerId<T>) -> Option<&T> {
        self.scheduler.layer(id)
    }

    /// The layer `id` names, to change; the registration follows the new unified deadline when
    /// the connection next waits or checks.
    #[inline]
    pub fn layer_mut<T: TimeoutLayer>(&mut self, id: LayerId<T>) -> Option<LayerGuard<'_, T>> {
        self.scheduler.layer_mut(id)
    }

    /// The earliest deadline of any layer.
    pub fn unified_deadline(&mut self) -> Option<Instant> {
        self.scheduler.calculate_unified_deadline()
    }

    /// Runs the layers due at `now` (see
    /// [`UnifiedScheduler::check_unified_timeouts`]) and points the registration at what is
    /// left.
    pub fn check_timeouts(&mut self, now: Instant) -> Vec<TimeoutCheckResult> {
        let results = self.scheduler.check_unified_timeouts(now);
        self.file_unified();
        results
    }

    /// Registers `waker` unless it is the one already registered.
    #[inline]
    fn register_waker(&mut self, waker: &Waker) {
        if !self
            .waker
            .as_ref()
            .is_some_and(|known| known.will_wake(waker))
        {
            self.registration.register_waker(waker);
            self.waker = Some(waker.clone());
        }
    }

    /// Whether neither unified deadline is earlier than the registration was filed for; if so,
    /// the scheduler's flag is cleared, so the next polls can tell from it alone (until a
    /// deadline moves earlier than it is now, which keeps it not earlier than filed).
    fn not_earlier_than_filed(&mut self) -> bool {
        let not_earlier = self
            .scheduler
            .unified_deadlines()
            .not_earlier_than(&self.filed_for);
        if not_earlier {
            self.scheduler.clear_moved_earlier();
        }
        not_earlier
    }

    /// Points the registration at the unified deadlines, whatever it was filed at.
    fn file_unified(&mut self) {
        let deadlines = self.scheduler.unified_deadlines();
        let tick = self.registration.tick_for(deadlines);
        self.filed_for = deadlines;
        self.filed_tick = tick;
        self.scheduler.clear_moved_earlier();
        // Fails only after shutdown, which the poll reports.
        self.registration.follow(tick).ok();
    }

    /// Waits until some layer has something to report and returns what the due layers found.
    /// Cancel-safe: nothing is consumed until it is returned.
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    pub async fn next_timeouts(&mut self) -> Result<Vec<TimeoutCheckResult>, Shutdown> {
        poll_fn(|cx| self.poll_timeouts(cx)).await
    }

    /// Polls for due timeouts (for hand-written futures); see
    /// [`next_timeouts`](Self::next_timeouts).
    ///
    /// # Errors
    /// [`Shutdown`] when the service stopped.
    #[inline]
    pub fn poll_timeouts(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<TimeoutCheckResult>, Shutdown>> {
        // The per-packet case, inline and without a clock or an instant: the registration is
        // filed, no unified deadline moved earlier since, it has not fired (`due`), the driver's
        // last pass is too far from it for a postponed deadline to be worth publishing yet (so
        // it has not come due either), and the waker is the one registered. The full poll below
        // would find nothing to do.
        let tick = self.filed_tick;
        if tick != NEVER_FILED
            && !self.scheduler.moved_earlier()
            && !self.registration.is_shut_down()
            && !self.registration.is_due()
            && tick
                .checked_sub(PUBLISH_WITHIN - 1)
                .is_some_and(|quiet| self.registration.passed_before(quiet))
            && self
                .waker
                .as_ref()
                .is_some_and(|known| known.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        self.poll_fully(cx)
    }

    /// [`poll_timeouts`](Self::poll_timeouts) beyond the per-packet case: out of line, so that
    /// one stays small where it is inlined.
    #[inline(never)]
    fn poll_fully(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<TimeoutCheckResult>, Shutdown>> {
        if self.registration.is_shut_down() {
            return Poll::Ready(Err(Shutdown));
        }
        let coarse = self.registration.coarse_tick();
        let tick = self.filed_tick;
        // The per-packet case: the deadline moved later (or stayed), and the registration at
        // the old one has neither fired (`due`) nor come due. Nothing to do until it fires —
        // not even the waker, if it is the one registered: the driver takes that only when it
        // fires the registration, and sets `due` first; the wake that follows makes the next
        // poll see `due` and take the full path, which re-registers and re-files.
        //
        // "Not earlier" is the scheduler's flag when it is clear (no minimum moved earlier
        // since the registration was filed): a load instead of comparing instants, and the
        // minima are not even brought up to date unless the entry is close.
        if tick != NEVER_FILED
            && tick > coarse
            && !self.registration.is_due()
            && (!self.scheduler.moved_earlier() || self.not_earlier_than_filed())
        {
            if tick - coarse < PUBLISH_WITHIN {
                let deadlines = self.scheduler.unified_deadlines();
                if deadlines != self.filed_for {
                    // Tell the driver where the connection is now (a store: the entry stays
                    // put), so when the entry's slot or tick comes up it is filed there
                    // instead of cascading or waking this task for nothing. An entry further
                    // away than PUBLISH_WITHIN is not touched by the driver for thousands of
                    // ticks, so a later packet's poll tells it instead (or, if none comes,
                    // the entry wakes this task once and is filed again).
                    let wanted = self.registration.tick_for(deadlines);
                    self.registration.follow(wanted).ok();
                    self.filed_for = deadlines;
                    self.scheduler.clear_moved_earlier();
                }
            }
            self.register_waker(cx.waker());
            return Poll::Pending;
        }
        self.registration.clear_due();
        self.registration.register_waker(cx.waker());
        self.waker = Some(cx.waker().clone());
        let deadlines = self.scheduler.unified_deadlines();
        let tick = self.registration.tick_for(deadlines);
        // Due by the coarse clock means due by the real one, which the layers are then given.
        if tick <= coarse {
            let results = self.check_timeouts(self.now());
            if !results.is_empty() {
                return Poll::Ready(Ok(results));
            }
        } else {
            self.file_unified();
        }
        Poll::Pending
    }

    /// The scheduler, for its stats and layer list.
    #[must_use]
    pub fn scheduler(&self) -> &UnifiedScheduler {
        &self.scheduler
    }

    /// The scheduler's counters.
    #[must_use]
    pub fn stats(&self) -> SchedulerStats {
        self.scheduler.stats()
    }
}
