//! ticktock-batch: a dynamic request batcher on the ticktock timer service.
//!
//! Callers send single requests; a handler serves them in batches. What users of other
//! batchers hit, and what this one does instead:
//!
//! - **A lone request never waits out a timer.** A batch starts as soon as an execution slot
//!   is free; batches grow from the backlog that builds while the slots are busy. `max_wait`
//!   is there for those who want fuller batches, counted from each request's arrival.
//! - **Limits are hard.** `max_batch_size` (items) and an optional weight limit (tokens,
//!   bytes) are checked before a request joins a batch; a request that can never fit is
//!   refused at admission.
//! - **Back-pressure is typed and separate.** The queue bound is its own setting; `try_call`
//!   fails at once with [`BatchError::QueueFull`], `call` waits for space. Nothing panics on a
//!   full channel.
//! - **Deadlines fire on time.** A request past its deadline gets [`BatchError::TimedOut`] at
//!   the deadline (on the timer service) and never reaches the handler.
//! - **Failures stay local.** A handler error or panic, or a wrong number of responses, fails
//!   only that batch. A caller that gives up leaves no trace in later batches.
//! - Priority lanes, graceful shutdown, every KPI in [`BatchStats`] and the `metrics` facade,
//!   and a tower [`Service`](tower_service::Service) / [`BatchLayer`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ticktock_batch::Batcher;
//!
//! let batcher = Batcher::builder()
//!     .max_batch_size(64)
//!     .build(|numbers: Vec<u64>| async move {
//!         Ok::<_, std::io::Error>(numbers.into_iter().map(|n| n * 2).collect())
//!     })?;
//! assert_eq!(batcher.call(21).await?, 42);
//! batcher.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batcher;
mod config;
mod error;
mod queue;
mod stats;
mod tower;

pub use batcher::{Batcher, CallOptions, Priority};
pub use config::BatcherBuilder;
pub use error::{BatchError, BuildError};
pub use stats::{BatchStats, Quantiles};
pub use tower::BatchLayer;
