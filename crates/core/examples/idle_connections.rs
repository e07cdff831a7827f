//! A thousand connections on the global timer service: each receives packets for a while
//! (every packet pushes its idle timer back, without a lock), then goes quiet and is closed by
//! its idle timeout. Prints how long after its last packet each connection timed out.
//!
//! `cargo run --release -p ticktock --example idle_connections`

use std::time::Duration;

use ticktock::{ConnectionConfig, ConnectionTimers, Instant, TimeoutEvent};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), ticktock::TimerError> {
    let timers = ticktock::global();
    let config = ConnectionConfig {
        idle_timeout: Duration::from_millis(50),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..1000u64 {
        let timers = timers.clone();
        tasks.spawn(async move {
            let mut connection = ConnectionTimers::new(id, timers.clone());
            connection.register_idle_timeout(&config)?;
            // Packets every 10 ms for a while (longer for higher ids), then silence.
            let packets = 5 + id % 20;
            let mut last_packet = Instant::now();
            for _ in 0..packets {
                timers.sleep(Duration::from_millis(10)).await?;
                last_packet = Instant::now();
                connection.reset_idle_timeout_at(last_packet, &config)?;
            }
            let event = connection.next_event().await?;
            assert_eq!(event, TimeoutEvent::IdleTimeout);
            Ok::<_, ticktock::TimerError>(last_packet.elapsed())
        });
    }
    let mut after = Vec::new();
    while let Some(result) = tasks.join_next().await {
        after.push(result.expect("connection task")?);
    }
    after.sort();
    let stats = timers.stats();
    println!("1000 connections closed by their 50 ms idle timeout");
    println!(
        "time from last packet to timeout: min {:?}, median {:?}, max {:?} (never below 50 ms)",
        after[0],
        after[after.len() / 2],
        after[after.len() - 1]
    );
    println!(
        "service: {} timers armed, {} fired, {} connection entries re-filed by the driver, \
         {} driver wake-ups; fire lateness p50 {:?}, p99 {:?}",
        stats.armed,
        stats.processed,
        stats.connection_rearms,
        stats.driver_wakeups,
        stats.lateness.p50,
        stats.lateness.p99
    );
    assert!(
        after[0] >= config.idle_timeout,
        "an idle timeout fired early"
    );
    Ok(())
}
