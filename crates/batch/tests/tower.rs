//! tower integration: a `Batcher` used as a tower `Service` of single requests (`ready`,
//! `oneshot`, errors surfacing as `BatchError`), and `BatchLayer` turning a service of
//! `Vec<Req>` into a batcher (alone and through `ServiceBuilder`), including inner-service
//! errors (from `call` and from `poll_ready`) and the layer's setting checks.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::*;
use ticktock_batch::{BatchError, BatchLayer, Batcher, BuildError};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

#[tokio::test(start_paused = true)]
async fn a_batcher_is_a_tower_service() {
    let service = timer();
    let log = Log::new();
    let batcher: TestBatcher = Batcher::builder()
        .timer(service.handle())
        .build(handler(&log, ms(10)))
        .unwrap();
    // ready + call
    let mut svc = batcher.clone();
    let ready = svc.ready().await.unwrap();
    let answer = Service::call(ready, 5).await.unwrap();
    assert_eq!(answer, response(5));
    // oneshot
    assert_eq!(batcher.clone().oneshot(6).await.unwrap(), response(6));
    // Errors are the batcher's.
    match batcher.clone().oneshot(FAIL).await {
        Err(BatchError::Handler(error)) => assert!(error.starts_with("injected failure")),
        other => panic!("expected Handler, got {other:?}"),
    }
    // Futures from `call` batch together: they are admitted when first polled.
    let mut svc = batcher.clone();
    let start = tokio::time::Instant::now();
    // (`Service::call` spelled out: the inherent `Batcher::call` would shadow it.)
    let futures: Vec<_> = (0..8).map(|i| Service::call(&mut svc, 100 + i)).collect();
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().unwrap(), response(100 + i as u32));
    }
    assert!(start.elapsed() <= ms(20));
    let timeline = log.timeline();
    assert!(
        timeline.len() - 3 < 8,
        "8 calls, fewer batches: {timeline:?}"
    );
    // After a shutdown the service answers Shutdown.
    batcher.shutdown().await;
    assert!(matches!(
        batcher.clone().oneshot(7).await,
        Err(BatchError::Shutdown)
    ));
}

#[tokio::test(start_paused = true)]
async fn batch_layer_wraps_a_service_of_batches() {
    let service = timer();
    let layer =
        BatchLayer::new(Batcher::builder().timer(service.handle()).max_batch_size(8)).unwrap();
    let batcher = layer.layer(tower::service_fn(|v: Vec<u32>| async move {
        Ok::<_, Infallible>(v.iter().map(|x| x + 1).collect::<Vec<_>>())
    }));
    assert_eq!(batcher.clone().oneshot(41).await.unwrap(), 42);
    let calls: Vec<_> = (0..50)
        .map(|i| tokio::spawn(batcher.clone().oneshot(i)))
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as u32 + 1);
    }
    let stats = batcher.stats();
    assert_eq!(stats.served, 51);
    assert!(stats.batch_size.max <= 8.0);
    batcher.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn batch_layer_batches_what_arrives_while_the_inner_service_is_busy() {
    let service = timer();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = Arc::clone(&seen);
        tower::service_fn(move |v: Vec<u32>| {
            seen.lock().unwrap().push(v.clone());
            async move {
                tokio::time::sleep(ms(10)).await;
                Ok::<_, Infallible>(v.iter().map(|x| x + 1).collect::<Vec<_>>())
            }
        })
    };
    let batcher = ServiceBuilder::new()
        .layer(
            BatchLayer::new(Batcher::builder().timer(service.handle()).max_batch_size(4)).unwrap(),
        )
        .service(inner);
    let start = tokio::time::Instant::now();
    let first = tokio::spawn(batcher.clone().oneshot(0));
    tokio::time::sleep(ms(1)).await;
    let rest: Vec<_> = (1..10)
        .map(|i| tokio::spawn(batcher.clone().oneshot(i)))
        .collect();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    for (i, call) in rest.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as u32 + 2);
    }
    assert_eq!(start.elapsed(), ms(40));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![vec![0], vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]
    );
}

#[tokio::test(start_paused = true)]
async fn inner_service_errors_fail_the_batch() {
    let service = timer();
    let layer = BatchLayer::new(Batcher::builder().timer(service.handle())).unwrap();
    let failing = layer.layer(tower::service_fn(|v: Vec<u32>| async move {
        if v.contains(&0) { Err("zero") } else { Ok(v) }
    }));
    match failing.clone().oneshot(0).await {
        Err(BatchError::Handler(error)) => assert_eq!(*error, "zero"),
        other => panic!("expected Handler, got {other:?}"),
    }
    assert_eq!(failing.clone().oneshot(3).await.unwrap(), 3);

    let never_ready = layer.layer(NeverReady);
    match never_ready.clone().oneshot(1).await {
        Err(BatchError::Handler(error)) => assert_eq!(*error, "not ready"),
        other => panic!("expected Handler, got {other:?}"),
    }
    assert_eq!(never_ready.stats().handler_errors, 1);
}

/// A service whose `poll_ready` fails.
#[derive(Clone)]
struct NeverReady;

impl Service<Vec<u32>> for NeverReady {
    type Response = Vec<u32>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Vec<u32>, &'static str>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Err("not ready"))
    }

    fn call(&mut self, request: Vec<u32>) -> Self::Future {
        std::future::ready(Ok(request))
    }
}

#[tokio::test(start_paused = true)]
async fn batch_layer_checks_its_settings() {
    assert_eq!(
        BatchLayer::<u32>::new(Batcher::builder().max_batch_size(0)).unwrap_err(),
        BuildError::Zero("max_batch_size")
    );
    assert_eq!(
        BatchLayer::<u32>::new(Batcher::builder().queue_capacity(0)).unwrap_err(),
        BuildError::Zero("queue_capacity")
    );
}

#[test]
fn batch_layer_outside_a_runtime_needs_an_explicit_one() {
    assert_eq!(
        BatchLayer::<u32>::new(Batcher::builder()).unwrap_err(),
        BuildError::NoRuntime
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let service = runtime.block_on(async { timer() });
    let layer = BatchLayer::new(
        Batcher::builder()
            .timer(service.handle())
            .runtime(runtime.handle().clone()),
    )
    .unwrap();
    // Layered outside the runtime: the batcher runs on the one given.
    let batcher = layer.layer(tower::service_fn(|v: Vec<u32>| async move {
        Ok::<_, Infallible>(v.iter().map(|x| x * 2).collect::<Vec<_>>())
    }));
    assert_eq!(runtime.block_on(batcher.clone().oneshot(21)).unwrap(), 42);
}
