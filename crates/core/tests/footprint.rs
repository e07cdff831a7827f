//! Start-up and footprint of an empty service (seed 002: under 10 ms and under 1 MB).
//!
//! The memory is counted by the allocator (`allocation-counter`, per thread: the builder
//! allocates the wheels on the calling thread, and on a current-thread runtime the driver task
//! runs there too). The start-up time is the median of several starts, so one descheduling of
//! this thread on a shared machine does not decide it; typical starts take well under 1 ms.

use std::time::{Duration, Instant};

use ticktock::{Clock, TimerService};

const MIB: i64 = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// With the default shard count (one per core: 2 on the CI machine) and with 16 shards (a
/// 16-core machine's default): each shard's empty wheel holds about 18 KiB, the service's
/// lateness histogram about 190 KiB (226 KiB in all with 2 shards, 488 KiB with 16).
#[test]
fn an_empty_service_holds_under_one_megabyte() {
    for (clock, shards) in [
        (Clock::Tokio, None),
        (Clock::System, None),
        (Clock::System, Some(16)),
    ] {
        let runtime = runtime();
        let _context = runtime.enter();
        let mut service = None;
        let info = allocation_counter::measure(|| {
            let builder = TimerService::builder().clock(clock.clone());
            let builder = match shards {
                Some(shards) => builder.shards(shards),
                None => builder,
            };
            service = Some(builder.start().expect("starts"));
            // Let the driver run its first pass, so what it allocates then is counted too.
            runtime.block_on(tokio::task::yield_now());
        });
        assert!(
            info.bytes_current < MIB,
            "{clock:?}, {shards:?} shards: {} bytes held after start",
            info.bytes_current
        );
        assert!(
            info.bytes_max < MIB as u64,
            "{clock:?}, {shards:?} shards: peak {} bytes",
            info.bytes_max
        );
        eprintln!(
            "{clock:?}, {shards:?} shards: {} bytes held, {} allocations",
            info.bytes_current, info.count_current
        );
        if let Some(service) = service {
            runtime.block_on(service.shutdown());
        }
    }
}

#[test]
fn an_empty_service_starts_in_under_ten_milliseconds() {
    let runtime = runtime();
    let _context = runtime.enter();
    for clock in [Clock::Tokio, Clock::System] {
        let mut starts: Vec<Duration> = (0..7)
            .map(|_| {
                let started = Instant::now();
                let service = TimerService::builder()
                    .clock(clock.clone())
                    .start()
                    .expect("starts");
                let elapsed = started.elapsed();
                drop(service);
                elapsed
            })
            .collect();
        starts.sort_unstable();
        let median = starts[starts.len() / 2];
        eprintln!("{clock:?}: median start {median:?}");
        assert!(
            median < Duration::from_millis(10),
            "{clock:?}: starts took {starts:?}"
        );
    }
}

/// The endpoint shape's timer state (issue 6's budget: at most 100 bytes per connection): an
/// `EndpointTimers` with 100,000 connections, each with a deadline, holds a 24-byte row and a
/// 32-byte wheel entry per connection, plus one registration. Counted per thread by the
/// allocator, with the service started outside the count.
#[test]
fn endpoint_timers_hold_under_100_bytes_per_connection() {
    const CONNECTIONS: u32 = 100_000;
    let runtime = runtime();
    let _context = runtime.enter();
    let service = TimerService::builder()
        .clock(Clock::Tokio)
        .shards(1)
        .start()
        .expect("starts");
    let mut timers = None;
    let info = allocation_counter::measure(|| {
        let mut table =
            ticktock::EndpointTimers::with_capacity(service.handle(), CONNECTIONS as usize);
        let now = table.now();
        for connection in 0..CONNECTIONS {
            let deadline = now + Duration::from_millis(10 + u64::from(connection % 40_000));
            table
                .set_deadline(connection, Some(deadline))
                .expect("service running");
        }
        timers = Some(table);
    });
    let per_connection = info.bytes_current as f64 / f64::from(CONNECTIONS);
    eprintln!("EndpointTimers: {per_connection:.1} bytes per connection");
    assert!(
        per_connection <= 100.0,
        "{per_connection:.1} bytes per connection"
    );
    assert!(
        per_connection >= 56.0,
        "rows and entries are counted: {per_connection:.1}"
    );
    drop(timers);
    runtime.block_on(service.shutdown());
}
