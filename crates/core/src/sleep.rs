//! [`Sleep`]: a future that resolves at a deadline, on the timer service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ticktock_wheel::TimerKey;
use tokio::time::Instant;

use crate::error::Shutdown;
use crate::global;
use crate::service::TimerHandle;
use crate::shard::Entry;

/// A future that resolves once its deadline has passed.
///
/// It registers with the service on its first poll (a `Sleep` that is never polled costs no
/// wheel entry), [`reset`](Self::reset) moves it in O(1), and dropping it cancels it. It is
/// `Unpin`. It resolves with `Err(Shutdown)` if the service stops first.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    handle: TimerHandle,
    deadline: Instant,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Not in a wheel: not polled yet, or reset after firing.
    Idle,
    /// In shard `shard`'s wheel under `key`.
    Armed { shard: u16, key: TimerKey },
    /// Resolved.
    Done,
}

impl Sleep {
    #[inline]
    pub(crate) fn new(handle: TimerHandle, deadline: Instant) -> Self {
        Self {
            handle,
            deadline,
            state: State::Idle,
        }
    }

    /// The instant this sleep resolves at.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The service this sleep runs on.
    #[must_use]
    pub fn handle(&self) -> &TimerHandle {
        &self.handle
    }

    /// Whether the deadline has passed (and a poll has seen it).
    #[must_use]
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Moves the deadline, earlier or later, even after the sleep resolved. O(1), no allocation.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let State::Armed { shard, key } = self.state
            && self.handle.inner.reset(shard, key, deadline)
        {
            return;
        }
        self.state = State::Idle;
    }

    #[inline]
    fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Shutdown>> {
        let inner = &self.handle.inner;
        match self.state {
            State::Done => Poll::Ready(Ok(())),
            State::Idle => {
                // Whether it is already due is decided against the driver's last pass, under the
                // shard's lock: no clock read on the way in.
                let waker = cx.waker();
                match inner.arm(self.deadline, || Entry::Waker(Some(waker.clone())))? {
                    Some((shard, key)) => {
                        self.state = State::Armed { shard, key };
                        Poll::Pending
                    }
                    None => {
                        self.state = State::Done;
                        Poll::Ready(Ok(()))
                    }
                }
            }
            State::Armed { shard, key } => {
                let mut state = inner.shards[usize::from(shard)].lock();
                match state.wheel.get_mut(key) {
                    Some(Entry::Waker(waker)) => {
                        match waker {
                            Some(waker) if waker.will_wake(cx.waker()) => {}
                            _ => *waker = Some(cx.waker().clone()),
                        }
                        Poll::Pending
                    }
                    Some(Entry::Connection(_)) => {
                        unreachable!("a Sleep's key names a waker entry while it is live")
                    }
                    None => {
                        let shut = state.shut;
                        drop(state);
                        // Fired, or drained at shutdown: only the clock tells them apart.
                        if shut && inner.clock.now() < self.deadline {
                            self.state = State::Idle;
                            return Poll::Ready(Err(Shutdown));
                        }
                        self.state = State::Done;
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Shutdown>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_sleep(cx)
    }
}

impl Drop for Sleep {
    #[inline]
    fn drop(&mut self) {
        if let State::Armed { shard, key } = self.state {
            self.handle.inner.cancel(shard, key);
        }
    }
}

/// Sleeps for `duration` on the [global](crate::global) service.
pub fn sleep(duration: std::time::Duration) -> Sleep {
    global().sleep(duration)
}

/// Sleeps until `deadline` on the [global](crate::global) service.
pub fn sleep_until(deadline: Instant) -> Sleep {
    global().sleep_until(deadline)
}
