//! [`Timeout`]: a future with a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::TimeoutError;
use crate::global;
use crate::sleep::Sleep;

pin_project_lite::pin_project! {
    /// Runs a future until it completes or its deadline passes, whichever is first.
    ///
    /// The future is polled first, so one that is ready at its deadline wins. Dropping the
    /// `Timeout` cancels its timer.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    pub(crate) fn new(future: F, sleep: Sleep) -> Self {
        Self { future, sleep }
    }

    /// The deadline.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// The wrapped future.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(TimeoutError::Elapsed)),
            Poll::Ready(Err(shutdown)) => Poll::Ready(Err(shutdown.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs `future` for at most `duration` on the [global](crate::global) service.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    global().timeout(duration, future)
}

/// Runs `future` until `deadline` at the latest, on the [global](crate::global) service.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    global().timeout_at(deadline, future)
}
