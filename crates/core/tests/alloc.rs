//! Arming, re-arming, cancelling and firing timers allocate nothing once the service is warm.
//!
//! `allocation-counter` counts per thread; on a current-thread runtime the driver, the test's
//! tasks and the wakeups all run on this thread, so every allocation of the round is seen.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use ticktock::{ConnectionConfig, ConnectionTimers, Instant, TimerService};

#[test]
fn steady_state_operations_do_not_allocate() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let service = runtime.block_on(async {
        TimerService::builder()
            .shards(1)
            .capacity_per_shard(4096)
            .start()
            .unwrap()
    });
    let timers = service.handle();
    let config = ConnectionConfig {
        idle_timeout: Duration::from_secs(30),
    };
    let mut connections: Vec<ConnectionTimers> = (0..100)
        .map(|id| ConnectionTimers::new(id, timers.clone()))
        .collect();
    for connection in &mut connections {
        connection.register_idle_timeout(&config).unwrap();
    }

    let mut round = || {
        runtime.block_on(async {
            // Arm (first poll) and cancel (drop) a thousand sleeps.
            for i in 0..1000u64 {
                let mut sleep = timers.sleep(Duration::from_millis(1 + i % 500));
                let polled = Pin::new(&mut sleep).poll(&mut Context::from_waker(Waker::noop()));
                assert!(polled.is_pending());
            }
            // A packet on every connection: the idle timer moves later.
            for connection in &mut connections {
                connection
                    .reset_idle_timeout_at(Instant::now(), &config)
                    .unwrap();
            }
            // Timers that fire, a sleep that is reset, and a timeout that elapses.
            for _ in 0..10 {
                timers.sleep(Duration::from_millis(3)).await.unwrap();
            }
            let mut sleep = timers.sleep(Duration::from_secs(1));
            assert!(
                Pin::new(&mut sleep)
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_pending()
            );
            sleep.reset(Instant::now() + Duration::from_millis(2));
            sleep.await.unwrap();
            let timed_out = timers
                .timeout(Duration::from_millis(2), std::future::pending::<()>())
                .await;
            assert!(timed_out.is_err());
        });
    };
    // Warm up: buffers and tables reach their working size.
    round();
    round();
    let info = allocation_counter::measure(round);
    assert_eq!(info.count_total, 0, "a warm service allocated: {info:?}");
}
