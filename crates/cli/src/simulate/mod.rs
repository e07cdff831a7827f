//! `ticktock simulate`: a protocol endpoint's timer load on the real timer service and the real
//! clock, on ticktock or on tokio's own timers, side by side.
//!
//! C connections each keep five timers through the sans-IO layers — idle, handshake, path
//! validation, keep-alive ([`ticktock::TimingManager`]) and the RTO
//! ([`ticktock::ReliabilityLayer`]) — and handle the packets and acknowledgments of the
//! traffic model ([`traffic`]): by default a saturated load, where each endpoint reads its next
//! packets as soon as it has handled the last, so the run measures what a backend sustains;
//! with `--packet-rate`, a paced load from a generator thread. The protocol logic, the traffic
//! and the counting are shared; the backends differ in their timers and in the shape those
//! timers allow ([`connection`]):
//!
//! - ticktock: an endpoint task per worker drives its connections from a table, as a
//!   high-performance server does, and learns which are due from a
//!   [`ticktock::EndpointTimers`] (one service registration per endpoint task). tokio's
//!   `Sleep` cannot serve this shape: a sleep reports to the task that polls it, so a
//!   million sleeps need a million polled futures.
//! - ticktock-tasks: a task per connection with its layers in a
//!   [`ticktock::LayeredTimeouts`] (one service registration per connection).
//! - tokio: a task per connection with one `Sleep` per kind, reset when its deadline moves
//!   (quinn's way).

pub mod connection;
pub mod html;
pub mod metrics_http;
pub mod results;
pub mod stats;
pub mod traffic;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use ticktock::{Clock, Precision, TimerService};

use self::connection::{Inbox, Shared};
use self::results::{Backend, Sample, SimResult, WheelWork};
use self::stats::{Class, Counters};
use self::traffic::{Delivery, Slots, Traffic};
use crate::bench::service::CpuReading;
use crate::error::CliError;

/// What a run simulates.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Connections kept open (a closed one is replaced at once).
    pub connections: usize,
    /// How long each backend runs.
    pub duration: Duration,
    /// The traffic model.
    pub traffic: Traffic,
    /// How exactly ticktock meets idle and keep-alive deadlines (tokio's are always exact).
    pub idle_precision: Precision,
}

/// Endpoint tasks of the ticktock backend: one per worker thread.
const ENDPOINTS: usize = 2;

/// Largest connection count accepted (memory: about 1.5 KiB per connection).
pub const MAX_CONNECTIONS: usize = 2_000_000;

impl SimConfig {
    /// Checks that the settings make sense.
    ///
    /// # Errors
    /// [`CliError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), CliError> {
        let invalid = |what: String| Err(CliError::Invalid(what));
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return invalid(format!(
                "--connections must be 1..={MAX_CONNECTIONS}, got {}",
                self.connections
            ));
        }
        if self.duration < Duration::from_millis(100) || self.duration > Duration::from_secs(3600) {
            return invalid(format!(
                "--duration must be 100ms..=1h, got {:?}",
                self.duration
            ));
        }
        let traffic = &self.traffic;
        if let Some(rate) = traffic.packet_rate
            && !(rate > 0.0 && rate <= 10_000.0)
        {
            return invalid(format!(
                "--packet-rate must be in (0, 10000] packets/s, got {rate}"
            ));
        }
        if !(0.0..=0.5).contains(&traffic.loss) {
            return invalid(format!("--loss must be in [0, 0.5], got {}", traffic.loss));
        }
        if !(0.0..=1.0).contains(&traffic.migration) {
            return invalid(format!(
                "--migration must be in [0, 1], got {}",
                traffic.migration
            ));
        }
        if traffic.ack_delay > Duration::from_secs(10) {
            return invalid(format!(
                "--ack-delay must be at most 10s, got {:?}",
                traffic.ack_delay
            ));
        }
        if traffic.lifetime < Duration::from_millis(10) {
            return invalid(format!(
                "--lifetime must be at least 10ms, got {:?}",
                traffic.lifetime
            ));
        }
        Ok(())
    }
}

/// Resident memory of the process right now, from /proc (0 where unavailable).
fn resident_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Heap bytes per connection of the backend's timer state alone, measured with the counting
/// allocator over `COUNT` connections (inline sizes added): for ticktock an `EndpointTimers`
/// with every connection's deadline set (its table and wheel, and a one-shard service, are
/// counted), for ticktock-tasks a `LayeredTimeouts` with its registration filed in the wheel
/// of a one-shard service sized for them, for tokio five boxed `Sleep`s, each registered
/// (tokio's wheel is the runtime's and not counted). Every one of those allocations is made on
/// the calling thread (a timer is filed in its shard's wheel by the thread that arms it), so
/// only this thread's are counted: other threads' (a parallel test's) don't blur the figure.
fn timer_bytes_per_connection(backend: Backend) -> Result<f64, CliError> {
    const COUNT: usize = 10_000;
    let noop = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(noop);
    let (heap, inline) = match backend {
        Backend::Ticktock => {
            let reserved = crate::alloc_counter::thread_live_bytes();
            let service = TimerService::builder()
                .clock(Clock::System)
                .shards(1)
                .capacity_per_shard(1)
                .start()?;
            let mut timers = ticktock::EndpointTimers::with_capacity(service.handle(), COUNT);
            let now = timers.now();
            for connection in 0..COUNT as u32 {
                let deadline = now + Duration::from_millis(50 + u64::from(connection) * 7);
                // Shutdown is impossible here: the service is alive.
                timers.set_deadline(connection, Some(deadline)).ok();
            }
            let heap = crate::alloc_counter::thread_bytes_since(reserved);
            drop(timers);
            (
                heap,
                std::mem::size_of::<ticktock::EndpointTimers>() / COUNT,
            )
        }
        Backend::TicktockTasks => {
            let mut all: Vec<ticktock::LayeredTimeouts> = Vec::with_capacity(COUNT);
            let reserved = crate::alloc_counter::thread_live_bytes();
            let service = TimerService::builder()
                .clock(Clock::System)
                .shards(1)
                .capacity_per_shard(COUNT)
                .start()?;
            let handle = service.handle();
            for _ in 0..COUNT {
                let mut timeouts = ticktock::LayeredTimeouts::new(handle.clone());
                let _ = timeouts.poll_timeouts(&mut cx);
                all.push(timeouts);
            }
            let heap = crate::alloc_counter::thread_bytes_since(reserved);
            drop(all);
            (heap, std::mem::size_of::<ticktock::LayeredTimeouts>())
        }
        Backend::Tokio => {
            let mut all: Vec<[std::pin::Pin<Box<tokio::time::Sleep>>; 5]> =
                Vec::with_capacity(COUNT);
            let reserved = crate::alloc_counter::thread_live_bytes();
            for _ in 0..COUNT {
                let mut sleeps: [std::pin::Pin<Box<tokio::time::Sleep>>; 5] =
                    std::array::from_fn(|_| Box::pin(tokio::time::sleep(Duration::from_secs(60))));
                for sleep in &mut sleeps {
                    let _ = std::future::Future::poll(sleep.as_mut(), &mut cx);
                }
                all.push(sleeps);
            }
            let heap = crate::alloc_counter::thread_bytes_since(reserved);
            drop(all);
            (
                heap,
                5 * std::mem::size_of::<std::pin::Pin<Box<tokio::time::Sleep>>>(),
            )
        }
    };
    Ok(heap as f64 / COUNT as f64 + inline as f64)
}

/// The service's clock for `backend`. The endpoint tasks' two registrations come due about
/// every millisecond; on Linux the timerfd driver runs those passes on the worker that wakes
/// from epoll, where the endpoint task then runs, instead of on a driver thread that has to
/// hand each wake-up over to a worker.
fn service_clock(backend: Backend) -> Clock {
    match backend {
        #[cfg(target_os = "linux")]
        Backend::Ticktock => Clock::SystemTimerfd,
        _ => Clock::System,
    }
}

/// Runs one backend for `config.duration`, with a live progress line when `progress`.
fn run_backend(
    runtime: &tokio::runtime::Runtime,
    config: &SimConfig,
    backend: Backend,
    timer_bytes: f64,
    progress: bool,
) -> Result<SimResult, CliError> {
    let _context = runtime.enter();
    let service = TimerService::builder()
        .clock(service_clock(backend))
        .shards(2)
        .capacity_per_shard(config.connections / 2 + 1)
        .start()?;
    let handle = service.handle();
    let counters = Arc::new(Counters::new());
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        counters: Arc::clone(&counters),
        loss: config.traffic.loss,
        migration: config.traffic.migration,
        idle_precision: config.idle_precision,
        stop: Arc::clone(&stop),
        tables: std::sync::Mutex::new(WheelWork::default()),
        offered: std::sync::atomic::AtomicU64::new(0),
    });
    let slots = Arc::new(Slots::new(config.connections));
    let mut tasks = tokio::task::JoinSet::new();
    let saturated = config.traffic.packet_rate.is_none();
    let source = |first: usize| {
        traffic::Source::new(
            config.traffic,
            first,
            ENDPOINTS,
            config.connections,
            tokio::time::Instant::now(),
        )
    };
    let delivery = if backend == Backend::Ticktock {
        let mut inboxes = Vec::new();
        for endpoint in 0..ENDPOINTS {
            let inbox = if saturated {
                Inbox::Saturated(Box::new(source(endpoint)))
            } else {
                let (sender, events) = tokio::sync::mpsc::unbounded_channel();
                inboxes.push(sender);
                Inbox::Generator(events)
            };
            tasks.spawn(connection::run_endpoint(
                endpoint,
                ENDPOINTS,
                Arc::clone(&slots),
                handle.clone(),
                Arc::clone(&shared),
                inbox,
                config.traffic.seed,
            ));
        }
        Delivery::Endpoints(inboxes)
    } else {
        for index in 0..config.connections {
            let rng = SmallRng::seed_from_u64(config.traffic.seed ^ (index as u64) << 20);
            let (slots, shared) = (Arc::clone(&slots), Arc::clone(&shared));
            if backend == Backend::Tokio {
                tasks.spawn(connection::run_tokio(slots, index, shared, rng));
            } else {
                tasks.spawn(connection::run_ticktock(
                    slots,
                    index,
                    handle.clone(),
                    shared,
                    rng,
                ));
            }
        }
        if saturated {
            for endpoint in 0..ENDPOINTS {
                tasks.spawn(connection::run_dispatcher(
                    source(endpoint),
                    Arc::clone(&slots),
                    Arc::clone(&shared),
                ));
            }
        }
        Delivery::Tasks
    };
    // Let every connection register its first timers before the clock starts.
    runtime.block_on(async {
        while counters.opened_total() < config.connections as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let rss_after_setup = resident_bytes("VmRSS:");
    let generator_tid = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let generator = if saturated {
        None
    } else {
        let thread = std::thread::Builder::new()
            .name("traffic".into())
            .spawn({
                let (slots, stop, traffic) =
                    (Arc::clone(&slots), Arc::clone(&stop), config.traffic);
                let tid = Arc::clone(&generator_tid);
                move || {
                    tid.store(
                        CpuReading::current_thread_id().unwrap_or(0),
                        Ordering::Release,
                    );
                    traffic::generate(&slots, traffic, &stop, delivery)
                }
            })
            .map_err(CliError::Thread)?;
        Some(thread)
    };
    let bar = if progress {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    let service_start = handle.stats();
    let cpu_start = CpuReading::now()?;
    let start = Instant::now();
    let ops_start = counters.ops().total();
    let samples = runtime.block_on(sample(
        &counters,
        &handle,
        start,
        config.duration,
        &bar,
        backend,
    ));
    let wall = start.elapsed();
    let cpu_end = CpuReading::now()?;
    let cpu = cpu_end.since(&cpu_start);
    // The generator is the simulated network, not the endpoint: its share is reported apart.
    let generator_cpu = generator.as_ref().map(|_| {
        cpu_end
            .thread_since(&cpu_start, generator_tid.load(Ordering::Acquire))
            .unwrap_or_default()
    });
    let service_end = handle.stats();
    let measured_ops = counters.ops().total().saturating_sub(ops_start);
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let generated = match generator {
        Some(thread) => thread.join().map_err(|_| CliError::GeneratorPanicked)?,
        None => 0,
    };
    for slot in &slots.wakes {
        slot.packet.notify_one();
    }
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    });
    tasks.abort_all();
    let packets_offered = generated + shared.offered.load(Ordering::Relaxed);
    // Read once every connection stopped, so the counts agree with each other.
    let ops = counters.ops();
    let (lateness, lateness_buckets) = counters.lateness_summary(Class::Exact);
    let (idle_lateness, _) = counters.lateness_summary(Class::IdleKeepAlive);
    let wall_s = wall.as_secs_f64();
    let service_work = WheelWork {
        cascades: service_end.cascades - service_start.cascades,
        connection_rearms: service_end.connection_rearms - service_start.connection_rearms,
        processed: service_end.processed - service_start.processed,
        driver_wakeups: service_end.driver_wakeups - service_start.driver_wakeups,
    };
    let wheel = match backend {
        Backend::Tokio => None,
        Backend::TicktockTasks => Some(service_work),
        Backend::Ticktock => {
            let tables = shared.tables.lock().map(|work| *work).unwrap_or_default();
            Some(WheelWork {
                cascades: service_work.cascades + tables.cascades,
                connection_rearms: service_work.connection_rearms + tables.connection_rearms,
                processed: service_work.processed + tables.processed,
                driver_wakeups: service_work.driver_wakeups,
            })
        }
    };
    Ok(SimResult {
        backend: Some(backend),
        connections: config.connections as u64,
        connections_opened: counters.opened_total(),
        packets_offered,
        packets: counters.packets(),
        wall_s,
        ops,
        ops_per_sec: measured_ops as f64 / wall_s.max(1e-9),
        idle_precision: match (backend, config.idle_precision) {
            (Backend::Ticktock, Precision::Coarse) => "coarse",
            _ => "exact",
        },
        lateness,
        idle_lateness,
        wheel,
        lateness_buckets,
        cpu_s: cpu.as_secs_f64(),
        cpu_ns_per_op: cpu.as_nanos() as f64 / measured_ops.max(1) as f64,
        generator_cpu_s: generator_cpu.map(|generator| generator.as_secs_f64()),
        endpoint_cpu_ns_per_op: generator_cpu.map(|generator| {
            cpu.saturating_sub(generator).as_nanos() as f64 / measured_ops.max(1) as f64
        }),
        peak_rss_bytes: rss_after_setup.max(resident_bytes("VmHWM:")),
        timer_bytes_per_connection: timer_bytes,
        samples,
    })
}

/// Samples the counters every 250 ms for `duration`, updating the progress line.
async fn sample(
    counters: &Counters,
    handle: &ticktock::TimerHandle,
    start: Instant,
    duration: Duration,
    bar: &ProgressBar,
    backend: Backend,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut last = (0.0, counters.ops().total());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t_s = start.elapsed().as_secs_f64();
        let ops = counters.ops();
        let total = ops.total();
        let interval = (t_s - last.0).max(1e-9);
        let sample = Sample {
            t_s,
            ops_per_sec: total.saturating_sub(last.1) as f64 / interval,
            live_timers: counters.live_timers(),
            fired: ops.fired,
            connections: 0,
        };
        last = (t_s, total);
        let (lateness, _) = counters.lateness_summary(Class::Exact);
        // Keeps the service's gauges fresh for a `--metrics` scraper.
        metrics_http::publish_service_stats(handle);
        bar.set_message(format!(
            "{}: {:.0} timer ops/s, {} live timers, {} fired, p99 lateness {:.0} µs, {} early",
            backend.name(),
            sample.ops_per_sec,
            sample.live_timers,
            sample.fired,
            lateness.p99_us,
            lateness.early,
        ));
        bar.tick();
        if t_s > 0.0 {
            samples.push(sample);
        }
        if start.elapsed() >= duration {
            return samples;
        }
    }
}

/// Runs the simulation for each backend in `backends`, in turn.
///
/// # Errors
/// A runtime or service that cannot start, or a generator that panicked.
pub fn run(
    config: &SimConfig,
    backends: &[Backend],
    progress: bool,
) -> Result<Vec<SimResult>, CliError> {
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    // Measured up front, while nothing else in the process allocates or frees (a previous
    // run's connections winding down would skew the allocator's count).
    let timer_bytes = {
        let _context = runtime.enter();
        backends
            .iter()
            .map(|&backend| timer_bytes_per_connection(backend))
            .collect::<Result<Vec<f64>, CliError>>()?
    };
    let mut results = Vec::new();
    for (&backend, timer_bytes) in backends.iter().zip(timer_bytes) {
        results.push(run_backend(
            &runtime,
            config,
            backend,
            timer_bytes,
            progress,
        )?);
    }
    Ok(results)
}

/// The load in words: the paced rate, or a saturated endpoint's batch.
pub fn load(traffic: &Traffic) -> String {
    match traffic.packet_rate {
        Some(rate) => format!("{rate} packets/s each"),
        None => format!(
            "saturated ({} packets per read, as soon as the last read is handled)",
            traffic::BATCH
        ),
    }
}

/// Writes the results as a markdown table, with ratios when there are two.
///
/// # Errors
/// Output errors.
pub fn write_table(
    out: &mut impl Write,
    config: &SimConfig,
    results: &[SimResult],
) -> std::io::Result<()> {
    writeln!(
        out,
        "ticktock simulate · {} · {} connections · {:?} per backend · {}, loss {}, lifetime {:?}\n",
        crate::report::machine(),
        config.connections,
        config.duration,
        load(&config.traffic),
        config.traffic.loss,
        config.traffic.lifetime,
    )?;
    let name = |r: &SimResult| r.backend.map_or("?", Backend::name);
    write!(out, "| measure |")?;
    for result in results {
        write!(out, " {} |", name(result))?;
    }
    if results.len() == 2 {
        write!(out, " ratio |")?;
    }
    writeln!(out)?;
    write!(out, "|---|")?;
    for _ in 0..results.len() + usize::from(results.len() == 2) {
        write!(out, "---:|")?;
    }
    writeln!(out)?;
    type Row = (&'static str, fn(&SimResult) -> f64, bool);
    // Figures a backend does not have are NaN and print as "–".
    fn wheel(r: &SimResult, field: fn(&WheelWork) -> u64) -> f64 {
        r.wheel
            .as_ref()
            .map_or(f64::NAN, |wheel| field(wheel) as f64)
    }
    let rows: [Row; 26] = [
        ("timer ops/s", |r| r.ops_per_sec, true),
        ("  armed", |r| r.ops.armed as f64, false),
        ("  postponed", |r| r.ops.postponed as f64, false),
        ("  advanced", |r| r.ops.advanced as f64, false),
        ("  cancelled", |r| r.ops.cancelled as f64, false),
        ("  fired", |r| r.ops.fired as f64, false),
        ("packets offered", |r| r.packets_offered as f64, false),
        ("packets processed", |r| r.packets as f64, false),
        ("connections opened", |r| r.connections_opened as f64, false),
        (
            "lateness p50, exact timers (µs)",
            |r| r.lateness.p50_us,
            false,
        ),
        (
            "lateness p99, exact timers (µs)",
            |r| r.lateness.p99_us,
            false,
        ),
        (
            "lateness max, exact timers (µs)",
            |r| r.lateness.max_us,
            false,
        ),
        (
            "lateness p50, idle + keep-alive (µs)",
            |r| r.idle_lateness.p50_us,
            false,
        ),
        (
            "lateness p99, idle + keep-alive (µs)",
            |r| r.idle_lateness.p99_us,
            false,
        ),
        (
            "lateness max, idle + keep-alive (µs)",
            |r| r.idle_lateness.max_us,
            false,
        ),
        ("early fires", |r| r.lateness.early as f64, false),
        ("wheel cascades", |r| wheel(r, |w| w.cascades), false),
        ("wheel entries fired", |r| wheel(r, |w| w.processed), false),
        (
            "  re-filed, not woken",
            |r| wheel(r, |w| w.connection_rearms),
            false,
        ),
        ("CPU (s)", |r| r.cpu_s, false),
        ("CPU ns per timer op", |r| r.cpu_ns_per_op, false),
        (
            "  of which the traffic generator (s)",
            |r| r.generator_cpu_s.unwrap_or(f64::NAN),
            false,
        ),
        (
            "CPU ns per timer op, without the generator",
            |r| r.endpoint_cpu_ns_per_op.unwrap_or(f64::NAN),
            false,
        ),
        (
            "timer state bytes per connection",
            |r| r.timer_bytes_per_connection,
            false,
        ),
        (
            "peak RSS (MiB)",
            |r| r.peak_rss_bytes as f64 / 1_048_576.0,
            false,
        ),
        ("driver wake-ups", |r| wheel(r, |w| w.driver_wakeups), false),
    ];
    for (label, value, higher_is_better) in rows {
        write!(out, "| {label} |")?;
        for result in results {
            let value = value(result);
            if value.is_nan() {
                write!(out, " – |")?;
            } else {
                write!(out, " {value:.1} |")?;
            }
        }
        if let [ticktock, tokio] = results {
            let (a, b) = (value(ticktock), value(tokio));
            let ratio = if higher_is_better { a / b } else { b / a };
            if ratio.is_finite()
                && !label.starts_with("  ")
                && !label.starts_with("packets")
                && label != "connections opened"
                && label != "early fires"
            {
                write!(out, " {ratio:.2}× |")?;
            } else {
                write!(out, " |")?;
            }
        }
        writeln!(out)?;
    }
    writeln!(
        out,
        "\nratio: in ticktock's favour above 1 (ticktock / tokio for ops/s, tokio / ticktock for costs). \
         Timer operations are what the protocol asked for (the same traffic asks for the same ones on \
         either backend)."
    )?;
    if config.traffic.packet_rate.is_none() {
        writeln!(
            out,
            "Saturated: each endpoint reads its next packets as soon as it has handled the last, so \
             the ops/s are what each backend sustains. On tokio an endpoint task reads them and wakes \
             each packet's connection task, as quinn's endpoint driver does. CPU is the whole \
             process's, the traffic model's draws included (the same on either backend)."
        )?;
    } else {
        writeln!(
            out,
            "Paced: the ops/s are the offered load. CPU is the whole process's; the row without the \
             generator leaves out the traffic generator's thread (the simulated network), which on \
             tokio also does the tasks' wake-ups."
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SimConfig {
        SimConfig {
            connections: 500,
            duration: Duration::from_millis(600),
            traffic: Traffic {
                packet_rate: Some(50.0),
                loss: 0.05,
                lifetime: Duration::from_millis(300),
                migration: 0.05,
                ack_delay: Duration::from_millis(20),
                seed: 7,
            },
            idle_precision: Precision::Coarse,
        }
    }

    /// Runs every backend on `config`.
    fn run_every_backend(config: &SimConfig) -> Vec<SimResult> {
        let backends = [Backend::Ticktock, Backend::TicktockTasks, Backend::Tokio];
        run(config, &backends, false).expect("run")
    }

    /// Checks what must hold of every backend's figures, paced or saturated.
    fn check(config: &SimConfig, results: &[SimResult]) {
        assert_eq!(results.len(), 3);
        for result in results {
            let name = result.backend.map_or("?", Backend::name);
            assert_eq!(result.lateness.early, 0, "{name} fired early");
            assert!(result.packets > 0, "{name}: no traffic");
            assert!(
                result.ops.postponed > 0 && result.ops.armed > 0,
                "{name}: {:?}",
                result.ops
            );
            // Quiet connections close on their idle timeout and are replaced.
            assert!(result.ops.fired > 0, "{name}: nothing fired");
            assert!(result.connections_opened >= config.connections as u64);
            assert_eq!(result.idle_lateness.early, result.lateness.early);
            assert_eq!(
                result.lateness.count + result.idle_lateness.count,
                result.ops.fired - result.lateness.early
            );
            assert_eq!(
                result.wheel.is_some(),
                result.backend != Some(Backend::Tokio)
            );
            assert!(result.packets <= result.packets_offered, "{name}");
            match config.traffic.packet_rate {
                Some(_) => {
                    let endpoint_cpu = result.endpoint_cpu_ns_per_op.expect("a paced run");
                    assert!(
                        endpoint_cpu > 0.0 && endpoint_cpu <= result.cpu_ns_per_op,
                        "{name}"
                    );
                }
                None => assert_eq!(
                    (result.generator_cpu_s, result.endpoint_cpu_ns_per_op),
                    (None, None),
                    "{name}"
                ),
            }
            assert!(result.lateness.p50_us <= result.lateness.p99_us);
            assert!(result.lateness.p99_us <= result.lateness.max_us);
            assert!(!result.samples.is_empty());
            assert!(result.ops_per_sec > 0.0 && result.cpu_ns_per_op > 0.0);
            assert!(result.timer_bytes_per_connection > 0.0);
        }
    }

    #[test]
    fn every_backend_runs_the_same_paced_traffic_with_figures_that_add_up() {
        let config = tiny();
        let results = run_every_backend(&config);
        check(&config, &results);
        let results = [results[0].clone(), results[2].clone()];
        let mut table = Vec::new();
        write_table(&mut table, &config, &results).expect("table");
        let table = String::from_utf8(table).expect("utf-8");
        assert!(
            table.contains("| measure | ticktock | tokio | ratio |"),
            "{table}"
        );
        let html = html::render(&results, "test", "ticktock simulate", "machine");
        for id in ["lateness", "ops-over-time", "live-timers", "comparison"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "chart {id} missing");
        }
    }

    #[test]
    fn every_backend_runs_a_saturated_load_with_figures_that_add_up() {
        let mut config = tiny();
        config.traffic.packet_rate = None;
        let results = run_every_backend(&config);
        check(&config, &results);
        // The endpoints handle every packet they draw; the tasks' wake-ups may coalesce.
        assert_eq!(results[0].packets, results[0].packets_offered);
        let mut table = Vec::new();
        write_table(&mut table, &config, &results[..2]).expect("table");
        let table = String::from_utf8(table).expect("utf-8");
        assert!(table.contains("saturated (64 packets per read"), "{table}");
        assert!(
            table.contains("|   of which the traffic generator (s) | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn bad_settings_are_one_line_errors() {
        let mut bad = Vec::new();
        let mut config = tiny();
        config.connections = 0;
        bad.push(config.clone());
        config.connections = MAX_CONNECTIONS + 1;
        bad.push(config.clone());
        let mut config = tiny();
        config.duration = Duration::from_millis(1);
        bad.push(config.clone());
        for (packet_rate, loss, migration) in [
            (0.0, 0.0, 0.0),
            (f64::NAN, 0.0, 0.0),
            (1.0, 0.9, 0.0),
            (1.0, -0.1, 0.0),
            (1.0, 0.0, 2.0),
        ] {
            let mut config = tiny();
            config.traffic.packet_rate = Some(packet_rate);
            config.traffic.loss = loss;
            config.traffic.migration = migration;
            bad.push(config);
        }
        let mut config = tiny();
        config.traffic.lifetime = Duration::ZERO;
        bad.push(config);
        for config in bad {
            match config.validate() {
                Err(CliError::Invalid(message)) => {
                    assert!(
                        message.starts_with("--") && !message.contains('\n'),
                        "{message}"
                    );
                }
                other => panic!("{config:?} accepted: {other:?}"),
            }
        }
        assert!(tiny().validate().is_ok());
    }
}
