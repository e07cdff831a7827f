//! Adapter for tokio-util's `DelayQueue<u64>`.
//!
//! DelayQueue only works inside a tokio runtime (it arms a tokio `Sleep` for its next deadline),
//! so the adapter owns a current-thread runtime with the time driver and a **paused** clock:
//! tick `t` is `base + t ms` on tokio's clock, and time only moves when [`advance`] steps it
//! with `tokio::time::advance`, which also turns the time driver so the queue's `Sleep` fires.
//! That stepping is part of what DelayQueue costs in the `expire` workload, and the report says
//! so. Samples run inside [`TimerImpl::within`], which enters the runtime once per sample.
//!
//! [`advance`]: TimerImpl::advance

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};
use tokio::time::Instant;
use tokio_util::time::DelayQueue;
use tokio_util::time::delay_queue::Key;

use super::TimerImpl;
use crate::alloc_counter;
use crate::error::CliError;

/// tokio-util's DelayQueue on a paused current-thread runtime.
pub struct DelayQueuePeer {
    // Declared before `runtime` so it is dropped while the runtime still runs.
    queue: DelayQueue<u64>,
    runtime: Runtime,
    base: Instant,
    now: u64,
    runtime_bytes: usize,
}

impl DelayQueuePeer {
    #[inline(always)]
    fn instant(&self, tick: u64) -> Instant {
        self.base + Duration::from_millis(tick)
    }
}

impl TimerImpl for DelayQueuePeer {
    const NAME: &'static str = "tokio-delay-queue";
    type Key = Key;

    fn build(capacity: usize) -> Result<Self, CliError> {
        let before = alloc_counter::thread_live_bytes();
        let runtime = Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(CliError::Runtime)?;
        let runtime_bytes = alloc_counter::thread_bytes_since(before);
        // The queue reads its start instant from the runtime's (paused) clock.
        let (queue, base) = {
            let _context = runtime.enter();
            (DelayQueue::with_capacity(capacity), Instant::now())
        };
        Ok(Self {
            queue,
            runtime,
            base,
            now: 0,
            runtime_bytes,
        })
    }

    fn within<R>(&mut self, work: impl FnOnce(&mut Self) -> R) -> R {
        let handle = self.runtime.handle().clone();
        let _context = handle.enter();
        work(self)
    }

    fn environment_bytes(&self) -> usize {
        self.runtime_bytes
    }

    #[inline(always)]
    fn now(&self) -> u64 {
        self.now
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    #[inline(always)]
    fn insert(&mut self, tick: u64, value: u64) -> Key {
        let at = self.instant(tick);
        self.queue.insert_at(value, at)
    }

    #[inline(always)]
    fn insert_forget(&mut self, tick: u64, value: u64) {
        let at = self.instant(tick);
        self.queue.insert_at(value, at);
    }

    #[inline(always)]
    fn cancel(&mut self, key: Key) -> bool {
        self.queue.try_remove(&key).is_some()
    }

    /// `DelayQueue::reset(&key, timeout)`: relative to tokio's clock, which stands at `now`.
    #[inline(always)]
    fn reset(&mut self, key: Key, tick: u64) -> Option<Key> {
        self.queue
            .reset(&key, Duration::from_millis(tick.saturating_sub(self.now)));
        Some(key)
    }

    fn advance(&mut self, now: u64, fired: &mut Vec<u64>) {
        let step = Duration::from_millis(now.saturating_sub(self.now));
        self.now = self.now.max(now);
        let queue = &mut self.queue;
        self.runtime.block_on(async {
            // Moves the paused clock and yields, so the runtime turns its time driver.
            tokio::time::advance(step).await;
            // Drain what is due without waiting for anything that is not.
            while let Poll::Ready(Some(expired)) =
                poll_fn(|cx| Poll::Ready(queue.poll_expired(cx))).await
            {
                fired.push(expired.into_inner());
            }
        });
    }
}
