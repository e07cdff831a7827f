//! [`UnifiedScheduler`]: the layers of one connection and their combined deadline.
//!
//! Design and invariants: on [`UnifiedScheduler`] (re-exported at the crate root, where users read them).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;

use super::{CoarseDeadline, LayerDeadlines, TimeoutCheckResult, TimeoutLayer};

/// Names a layer added to a [`UnifiedScheduler`], and its type.
pub struct LayerId<T> {
    index: usize,
    layer: PhantomData<fn() -> T>,
}

impl<T> Clone for LayerId<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for LayerId<T> {}

impl<T> fmt::Debug for LayerId<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LayerId").field(&self.index).finish()
    }
}

impl<T> PartialEq for LayerId<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}

impl<T> Eq for LayerId<T> {}

/// Counters of a [`UnifiedScheduler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Calls to `check_unified_timeouts`.
    pub total_checks: u64,
    /// Calls to `calculate_unified_deadline`.
    pub deadline_queries: u64,
    /// Queries answered from the cached minimum without recomputing it.
    pub cache_hits: u64,
    /// Layer changes that moved their layer's deadline.
    pub deadline_changes: u64,
    /// Layers run by checks (only due layers are run).
    pub layers_run: u64,
    /// Time spent in checks that ran a layer, in all, in nanoseconds (a `u64` rather than a
    /// `Duration`: these counters are part of every connection).
    pub check_nanos: u64,
}

/// Layers a scheduler holds without a separate allocation.
const INLINE_LAYERS: usize = 2;

/// The slots of a scheduler. Passed to the cache as they are, not as a slice, so that a query
/// answered from the cache does not even look up where they are stored (inline or not).
type Slots = SmallVec<[Slot; INLINE_LAYERS]>;

/// A layer and its cached deadlines, side by side so a change touches one place.
struct Slot {
    deadlines: LayerDeadlines,
    layer: Box<dyn TimeoutLayer>,
}

/// Whether `a` is earlier than `b`, `None` meaning "never".
#[inline]
fn before<T: Ord>(a: &Option<T>, b: &Option<T>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The least of one kind of deadline over `slots` (`None`: no slot has one).
#[inline]
fn least<T: Ord + Copy>(slots: &Slots, of: fn(&LayerDeadlines) -> Option<T>) -> Option<T> {
    let mut least = None;
    for slot in slots.iter() {
        let deadline = of(&slot.deadlines);
        if before(&deadline, &least) {
            least = deadline;
        }
    }
    least
}

/// The minimum of one kind of deadline over the slots, recomputed lazily once it went stale
/// (the stale flags live beside the minima in [`DeadlineCache`], where they take no padding of
/// their own: this struct is part of every connection).
///
/// Stale or not, the value is never after any slot's deadline; when not stale, some slot (the
/// holder) has exactly it. A bound on the second least would spare the recompute after the
/// holder moves later, but it costs every connection 48 bytes, and measured with 100,000
/// connections (`ticktock bench per-packet`) it was no faster per packet: with many
/// connections bytes are cache misses, and the recompute is a few comparisons over two cached
/// slots.
#[derive(Debug)]
struct Minimum<T>(Option<T>);

impl<T> Default for Minimum<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Ord + Copy + fmt::Debug> Minimum<T> {
    /// One slot's deadline moves from `old` to `new`; `false` when nothing changed. Sets
    /// `earlier` when the minimum moved earlier.
    #[inline]
    fn update(
        &mut self,
        stale: &mut bool,
        earlier: &mut bool,
        old: &Option<T>,
        new: &Option<T>,
    ) -> bool {
        if old == new {
            return false;
        }
        if before(new, &self.0) {
            // Earlier than the minimum, so earlier than every slot's deadline (even a stale
            // minimum is never after any): the new minimum, an exact one again.
            self.0 = *new;
            *stale = false;
            *earlier = true;
        } else if !*stale && old.is_some() && *old == self.0 {
            // The holder (or a slot level with it) moved later: only a look at all of them
            // tells what the minimum is now.
            *stale = true;
        }
        true
    }

    /// Brings the minimum up to date; `true` when it already was.
    #[inline]
    fn get(
        &mut self,
        stale: &mut bool,
        slots: &Slots,
        of: fn(&LayerDeadlines) -> Option<T>,
    ) -> bool {
        let hit = !*stale;
        if *stale {
            self.0 = least(slots, of);
            *stale = false;
        }
        debug_assert_eq!(self.0, least(slots, of), "the cached minimum is stale");
        hit
    }
}

/// The cached minima, kept apart from the slots so a guard can hold a layer and them at once.
#[derive(Debug, Default)]
struct DeadlineCache {
    exact: Minimum<Instant>,
    coarse: Minimum<CoarseDeadline>,
    exact_stale: bool,
    coarse_stale: bool,
    /// Set when either minimum moved earlier; cleared by [`LayeredTimeouts`] when the minima are
    /// not earlier than its registration was filed for, so while it is clear they still are not.
    ///
    /// [`LayeredTimeouts`]: super::LayeredTimeouts
    moved_earlier: bool,
    stats: SchedulerStats,
}

impl DeadlineCache {
    /// A layer's cached deadlines move from `*cached` to `deadlines`.
    #[inline]
    fn update(&mut self, cached: &mut LayerDeadlines, deadlines: LayerDeadlines) {
        let exact = self.exact.update(
            &mut self.exact_stale,
            &mut self.moved_earlier,
            &cached.exact,
            &deadlines.exact,
        );
        let coarse = self.coarse.update(
            &mut self.coarse_stale,
            &mut self.moved_earlier,
            &cached.coarse,
            &deadlines.coarse,
        );
        *cached = deadlines;
        if exact || coarse {
            self.stats.deadline_changes += 1;
        }
    }

    #[inline]
    fn deadlines(&mut self, slots: &Slots) -> LayerDeadlines {
        self.stats.deadline_queries += 1;
        let exact_hit = self
            .exact
            .get(&mut self.exact_stale, slots, |deadlines| deadlines.exact);
        let coarse_hit = self
            .coarse
            .get(&mut self.coarse_stale, slots, |deadlines| deadlines.coarse);
        if exact_hit && coarse_hit {
            self.stats.cache_hits += 1;
        }
        LayerDeadlines {
            exact: self.exact.0,
            coarse: self.coarse.0,
        }
    }
}

/// Layers of one connection with an O(1) cached unified deadline.
///
/// The scheduler owns its layers and caches each one's deadline. Layers are changed only
/// through a [`LayerGuard`], which re-reads that one layer's deadline when dropped, so the cache
/// is exact without ever asking every layer:
///
/// - a layer moving **earlier** than the cached minimum becomes the minimum (O(1));
/// - the layer **holding** the minimum moving later marks the minimum stale; the next query
///   recomputes it from the cached deadlines (a few comparisons, no layer is called);
/// - any other change leaves the minimum as it is.
///
/// [`calculate_unified_deadline`](UnifiedScheduler::calculate_unified_deadline) is therefore a
/// field read except right after the minimum moved later, and
/// [`check_unified_timeouts`](UnifiedScheduler::check_unified_timeouts) runs only the layers
/// whose cached deadline has passed.
#[derive(Default)]
pub struct UnifiedScheduler {
    /// Inline up to two layers (a connection's own timeouts and its reliability, the usual
    /// pair): a connection's scheduler then reaches a layer through one pointer, not two (with
    /// many connections each is a cache miss, and they are dependent). More layers move the
    /// slots to one heap allocation; four inline slots would cost every connection 128 bytes.
    slots: Slots,
    cache: DeadlineCache,
}

impl fmt::Debug for UnifiedScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnifiedScheduler")
            .field(
                "layers",
                &self
                    .slots
                    .iter()
                    .map(|slot| slot.layer.layer_name())
                    .collect::<Vec<_>>(),
            )
            .field("cache", &self.cache)
            .finish()
    }
}

impl UnifiedScheduler {
    /// A scheduler with no layers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a layer; the returned id reaches it again.
    pub fn add_layer<T: TimeoutLayer>(&mut self, layer: T) -> LayerId<T> {
        let index = self.slots.len();
        let mut slot = Slot {
            deadlines: LayerDeadlines::default(),
            layer: Box::new(layer),
        };
        let deadlines = slot.layer.next_deadlines();
        self.cache.update(&mut slot.deadlines, deadlines);
        self.slots.push(slot);
        LayerId {
            index,
            layer: PhantomData,
        }
    }

    /// The layer `id` names; `None` if this scheduler has no layer of that type there (an id
    /// means something only to the scheduler that returned it).
    #[must_use]
    pub fn layer<T: TimeoutLayer>(&self, id: LayerId<T>) -> Option<&T> {
        let layer: &dyn Any = &*self.slots.get(id.index)?.layer;
        layer.downcast_ref()
    }

    /// The layer `id` names, to change; the scheduler learns its new deadline when the guard is
    /// dropped. `None` as for [`layer`](Self::layer).
    #[inline]
    pub fn layer_mut<T: TimeoutLayer>(&mut self, id: LayerId<T>) -> Option<LayerGuard<'_, T>> {
        LayerGuard::new(&mut self.slots, &mut self.cache, id)
    }

    /// The earliest deadline of any layer (`None`: no layer has one). O(1) from the cache.
    #[inline]
    pub fn calculate_unified_deadline(&mut self) -> Option<Instant> {
        self.cache.deadlines(&self.slots).earliest()
    }

    /// The earliest exact and the earliest coarse deadline over all layers (see
    /// [`TimeoutLayer::next_deadlines`]). O(1) from the cache.
    #[inline]
    pub fn unified_deadlines(&mut self) -> LayerDeadlines {
        self.cache.deadlines(&self.slots)
    }

    /// Whether either unified deadline moved earlier since the last
    /// [`clear_moved_earlier`](Self::clear_moved_earlier) (or ever, before the first): while
    /// not, neither is earlier than it was then.
    #[inline]
    pub(crate) fn moved_earlier(&self) -> bool {
        self.cache.moved_earlier
    }

    /// Makes [`moved_earlier`](Self::moved_earlier) watch from the current unified deadlines.
    #[inline]
    pub(crate) fn clear_moved_earlier(&mut self) {
        self.cache.moved_earlier = false;
    }

    /// Runs every layer whose deadline is at or before `now` and returns what they found, in
    /// the order the layers were added. Layers not yet due are not called.
    pub fn check_unified_timeouts(&mut self, now: Instant) -> Vec<TimeoutCheckResult> {
        self.cache.stats.total_checks += 1;
        let mut results = Vec::new();
        if self
            .cache
            .deadlines(&self.slots)
            .earliest()
            .is_some_and(|earliest| earliest <= now)
        {
            // Timed only when some layer runs: a clock read costs more than a check that finds
            // nothing due.
            let started = std::time::Instant::now();
            for Slot { deadlines, layer } in &mut self.slots {
                if deadlines.earliest().is_some_and(|deadline| deadline <= now) {
                    self.cache.stats.layers_run += 1;
                    let result = layer.check_timeouts(now);
                    let next = layer.next_deadlines();
                    debug_assert!(
                        next.earliest().is_none_or(|next| next > now),
                        "layer {} is still due after its check",
                        layer.layer_name()
                    );
                    debug_assert_eq!(next.earliest(), layer.next_deadline());
                    self.cache.update(deadlines, next);
                    if !result.is_empty() {
                        results.push(result);
                    }
                }
            }
            let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.cache.stats.check_nanos = self.cache.stats.check_nanos.saturating_add(spent);
        }
        results
    }

    /// Number of layers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no layers.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Each layer's name and stats line, in the order they were added.
    #[must_use]
    pub fn layer_stats(&self) -> Vec<(&'static str, Option<String>)> {
        self.slots
            .iter()
            .map(|slot| (slot.layer.layer_name(), slot.layer.stats()))
            .collect()
    }

    /// The scheduler's counters.
    #[must_use]
    pub fn stats(&self) -> SchedulerStats {
        self.cache.stats
    }

    /// Share of deadline queries answered from the cache (0 when there were none).
    #[must_use]
    pub fn cache_hit_rate(&self) -> f64 {
        let stats = &self.cache.stats;
        if stats.deadline_queries == 0 {
            0.0
        } else {
            stats.cache_hits as f64 / stats.deadline_queries as f64
        }
    }

    /// Average time of a `check_unified_timeouts` call (zero when there were none).
    #[must_use]
    pub fn avg_check_duration(&self) -> Duration {
        let stats = &self.cache.stats;
        Duration::from_nanos(
            stats
                .check_nanos
                .checked_div(stats.total_checks)
                .unwrap_or_default(),
        )
    }
}

/// Mutable access to one layer of a [`UnifiedScheduler`]; dropping it tells the scheduler the
/// layer's new deadline.
pub struct LayerGuard<'a, T: TimeoutLayer> {
    layer: &'a mut T,
    deadlines: &'a mut LayerDeadlines,
    cache: &'a mut DeadlineCache,
}

impl<'a, T: TimeoutLayer> LayerGuard<'a, T> {
    #[inline]
    fn new(slots: &'a mut [Slot], cache: &'a mut DeadlineCache, id: LayerId<T>) -> Option<Self> {
        let Slot { deadlines, layer } = slots.get_mut(id.index)?;
        let layer: &mut dyn Any = &mut **layer;
        Some(Self {
            layer: layer.downcast_mut()?,
            deadlines,
            cache,
        })
    }
}

impl<T: TimeoutLayer + fmt::Debug> fmt::Debug for LayerGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerGuard")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<T: TimeoutLayer> Deref for LayerGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.layer
    }
}

impl<T: TimeoutLayer> DerefMut for LayerGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.layer
    }
}

impl<T: TimeoutLayer> Drop for LayerGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let deadlines = self.layer.next_deadlines();
        debug_assert_eq!(deadlines.earliest(), self.layer.next_deadline());
        self.cache.update(self.deadlines, deadlines);
    }
}
