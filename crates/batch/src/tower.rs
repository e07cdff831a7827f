//! tower integration: a [`Batcher`] is a [`Service`] of single requests, and [`BatchLayer`]
//! turns a service of request batches into one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::batcher::Batcher;
use crate::config::BatcherBuilder;
use crate::error::{BatchError, BuildError};

impl<Req, Resp, E> Service<Req> for Batcher<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: Send + Sync + 'static,
{
    type Response = Resp;
    type Error = BatchError<E>;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, BatchError<E>>> + Send>>;

    /// Always ready: back-pressure is the queue's (`call` waits for space).
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let batcher = self.clone();
        Box::pin(async move { batcher.call(request).await })
    }
}

/// A tower [`Layer`] that puts a [`Batcher`] in front of a service taking `Vec<Req>` and
/// returning one response per request, in order.
#[derive(Debug, Clone)]
pub struct BatchLayer<Req> {
    builder: BatcherBuilder<Req>,
}

impl<Req: Send + 'static> BatchLayer<Req> {
    /// A layer building its batchers with `builder`, whose settings are checked (and whose
    /// runtime is found) now.
    ///
    /// # Errors
    /// As [`BatcherBuilder::build`].
    pub fn new(builder: BatcherBuilder<Req>) -> Result<Self, BuildError> {
        let runtime = builder.resolve()?.runtime;
        Ok(Self {
            builder: builder.runtime(runtime),
        })
    }
}

impl<S, Req, Resp> Layer<S> for BatchLayer<Req>
where
    S: Service<Vec<Req>, Response = Vec<Resp>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Send + Sync + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Service = Batcher<Req, Resp, S::Error>;

    fn layer(&self, inner: S) -> Self::Service {
        let handler = move |requests: Vec<Req>| {
            let mut inner = inner.clone();
            async move {
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                inner.call(requests).await
            }
        };
        match self.builder.clone().build(handler) {
            Ok(batcher) => batcher,
            // `new` already checked the settings and pinned the runtime, which is all `build`
            // can refuse.
            Err(error) => unreachable!("settings checked by BatchLayer::new: {error}"),
        }
    }
}
