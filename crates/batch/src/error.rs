//! What can go wrong with a call, and with building a batcher.

use std::sync::Arc;

/// Why a call got no response from the handler.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// The queue was full (`try_call` only; `call` waits for space).
    #[error("the batcher's queue is full")]
    QueueFull,
    /// The request weighs more than a whole batch may; it can never be served.
    #[error("request weight {weight} exceeds the batch weight limit {limit}")]
    TooHeavy {
        /// The request's weight.
        weight: u64,
        /// The batch weight limit.
        limit: u64,
    },
    /// The request's deadline passed before its batch started; it never reached the handler.
    #[error("the request's deadline passed before it was served")]
    TimedOut,
    /// The batcher is shutting down or gone and admits nothing more.
    #[error("the batcher has shut down")]
    Shutdown,
    /// The handler returned an error for the request's batch.
    #[error("the batch handler failed: {0}")]
    Handler(Arc<E>),
    /// The handler panicked while serving the request's batch.
    #[error("the batch handler panicked: {0}")]
    HandlerPanicked(Arc<str>),
    /// The handler returned a different number of responses than it got requests.
    #[error("the batch handler returned {got} responses for {expected} requests")]
    WrongResponseCount {
        /// Requests in the batch.
        expected: usize,
        /// Responses the handler returned.
        got: usize,
    },
}

impl<E> Clone for BatchError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::QueueFull => Self::QueueFull,
            Self::TooHeavy { weight, limit } => Self::TooHeavy {
                weight: *weight,
                limit: *limit,
            },
            Self::TimedOut => Self::TimedOut,
            Self::Shutdown => Self::Shutdown,
            Self::Handler(error) => Self::Handler(Arc::clone(error)),
            Self::HandlerPanicked(message) => Self::HandlerPanicked(Arc::clone(message)),
            Self::WrongResponseCount { expected, got } => Self::WrongResponseCount {
                expected: *expected,
                got: *got,
            },
        }
    }
}

/// Why a batcher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A setting that must be at least 1 was 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// `build` was called outside a tokio runtime (the dispatcher is a task).
    #[error("a batcher must be built inside a tokio runtime")]
    NoRuntime,
}
