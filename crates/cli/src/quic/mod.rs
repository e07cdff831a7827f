//! `ticktock quic`: a real QUIC load on quinn, with its timers on ticktock (`ticktock-quinn`)
//! or on quinn's own tokio runtime, side by side with `--compare`.
//!
//! One process holds a QUIC echo server and many clients on loopback, with a self-signed
//! certificate made at start. Each client connects (at most [`HANDSHAKES_IN_FLIGHT`] at a time,
//! so the server's socket never drops Initial packets), then, once every handshake is done,
//! echoes a fresh random message on a new bidirectional stream, pauses a think time and does
//! it again, checking every byte that comes back. Active clients keep on until the load ends
//! and close gracefully; idle clients (`--idle-share`) stop at a seeded moment and wait for the
//! idle timeout to close their connection, timing how late it comes. Both runtimes get the
//! same clients, messages and pauses; only quinn's timers differ. Everything runs on one tokio
//! runtime with two workers per run.
//!
//! The files: this one (settings, validation, one run), [`client`], [`server`], [`tls`] (the
//! certificate and quinn configurations), [`observe`] (both runtimes' timers counted and
//! their wake-ups timed by the same code), [`probe`] (the machine's own wake-up lateness, a
//! control) and [`results`] (the table and JSON).

pub mod client;
pub mod observe;
pub mod probe;
pub mod results;
pub mod server;
pub mod tls;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quinn::{Endpoint, EndpointConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};

use crate::bench::service::CpuReading;
use crate::error::CliError;
use observe::Observed;
use results::{IdleSummary, Quantiles, QuicResult};

pub use results::{write_json, write_table};

/// Handshakes in flight at once.
pub const HANDSHAKES_IN_FLIGHT: usize = 64;
/// Client endpoints (UDP sockets) the clients are spread over; the server has one.
pub const CLIENT_ENDPOINTS: usize = 4;
/// The most connections a run takes.
pub const MAX_CONNECTIONS: usize = 20_000;
/// The shortest idle timeout: well above the longest think time (1.5 × the mean), so an active
/// client never times out between two echoes.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(200);
/// Room between the last idle client's idle timeout and the moment the first active client can
/// close (the load's end less the longest think time): an idle client's last echo and the
/// acknowledgments after it take some milliseconds, and quinn counts its idle timeout from the
/// last of them. Timer wake-ups due before that moment that end a connection are then exactly
/// its idle timeouts (see [`observe`]).
pub const IDLE_MARGIN: Duration = Duration::from_millis(200);

/// The description of a side's first failure, kept to print (the failures themselves are
/// counted apart).
#[derive(Debug, Default)]
pub struct FirstError(Mutex<Option<String>>);

impl FirstError {
    /// Keeps `what()` if no failure was kept yet.
    pub fn keep(&self, what: impl FnOnce() -> String) {
        let mut first = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(what());
        }
    }

    /// The first failure's description, if there was one.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whose runtime quinn runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum QuicRuntime {
    /// `ticktock_quinn::TicktockRuntime`: timers on a ticktock timer service (system clock,
    /// 1 ms ticks, a shard per worker).
    Ticktock,
    /// `ticktock_quinn::TicktockRuntime` on a service whose driver is a task on the runtime's
    /// own workers, waiting on tokio's timer (`ticktock::Clock::Tokio`): no driver thread;
    /// 100 µs ticks, since tokio's timer already rounds the driver's wake-ups to 1 ms.
    TicktockTask,
    /// `ticktock_quinn::TicktockRuntime` on a service driven from the runtime's own I/O driver:
    /// a Linux timerfd whose waker runs the pass on the worker that sees it expire
    /// (`ticktock::Clock::SystemTimerfd`): no driver thread or task and no millisecond grid;
    /// 250 µs ticks.
    TicktockTimerfd,
    /// `quinn::TokioRuntime`: timers are tokio `Sleep`s.
    Tokio,
}

impl QuicRuntime {
    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ticktock => "ticktock",
            Self::TicktockTask => "ticktock-task",
            Self::TicktockTimerfd => "ticktock-timerfd",
            Self::Tokio => "tokio",
        }
    }
}

/// The settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct QuicConfig {
    /// Client connections.
    pub connections: usize,
    /// How long the load lasts once every handshake is done.
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    /// Share of clients that go idle and are closed by their idle timeout.
    pub idle_share: f64,
    /// The connections' idle timeout (both sides).
    #[serde(rename = "idle_timeout_s", serialize_with = "seconds")]
    pub idle_timeout: Duration,
    /// Bytes per echoed message.
    pub message_bytes: usize,
    /// Mean pause between two echoes of a client.
    #[serde(rename = "think_s", serialize_with = "seconds")]
    pub think: Duration,
    /// Seed of the messages, pauses and idle moments.
    pub seed: u64,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl QuicConfig {
    /// Refuses settings that cannot give a meaningful run, naming the flag.
    pub fn validate(&self) -> Result<(), CliError> {
        let invalid = |message: String| Err(CliError::Invalid(message));
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return invalid(format!(
                "--connections must be 1 to {MAX_CONNECTIONS}, not {}",
                self.connections
            ));
        }
        if self.duration < Duration::from_secs(1) || self.duration > Duration::from_secs(3600) {
            return invalid(format!(
                "--duration must be 1s to 1h, not {:?}",
                self.duration
            ));
        }
        if !(0.0..=1.0).contains(&self.idle_share) {
            return invalid(format!(
                "--idle-share must be 0 to 1, not {}",
                self.idle_share
            ));
        }
        if self.idle_timeout < MIN_IDLE_TIMEOUT || self.idle_timeout >= self.duration {
            return invalid(format!(
                "--idle-timeout must be at least {MIN_IDLE_TIMEOUT:?} and shorter than --duration \
                 ({:?}), not {:?}",
                self.duration, self.idle_timeout
            ));
        }
        if self.think.mul_f64(1.5) * 2 > self.idle_timeout {
            return invalid(format!(
                "the think time {:?} is too long for --idle-timeout {:?}",
                self.think, self.idle_timeout
            ));
        }
        // An idle client echoes at least once, within the first think time; its idle timeout
        // must come due before the first active client can close (a think time and a half
        // before the end).
        if self.idle_timeout + self.think.mul_f64(2.5) + IDLE_MARGIN >= self.duration {
            return invalid(format!(
                "--duration {:?} must be longer than --idle-timeout {:?} + 2.5 × the think time \
                 {:?} + {IDLE_MARGIN:?}, so idle clients time out before active ones close",
                self.duration, self.idle_timeout, self.think
            ));
        }
        if self.message_bytes == 0 || self.message_bytes > 1 << 20 {
            return invalid(format!(
                "the message size must be 1 B to 1 MiB, not {}",
                self.message_bytes
            ));
        }
        Ok(())
    }

    /// Client `index`'s plan: active, or idle from a seeded moment that leaves its idle timeout
    /// room to expire, with [`IDLE_MARGIN`] to spare, before [`idle_until`](Self::idle_until).
    fn plan(&self, index: usize, idle_count: usize, rng: &mut SmallRng) -> client::Plan {
        // Spread the idle clients evenly over the indices (and so over the client endpoints).
        let idle =
            (index + 1) * idle_count / self.connections > index * idle_count / self.connections;
        let room = self
            .idle_until()
            .saturating_sub(self.idle_timeout + IDLE_MARGIN);
        let idle_after = idle.then(|| room.mul_f64(rng.random_range(0.0..1.0)));
        client::Plan {
            index: index as u64,
            seed: self.seed,
            message_bytes: self.message_bytes,
            think: self.think,
            duration: self.duration,
            idle_after,
            idle_timeout: self.idle_timeout,
        }
    }

    /// From the load's start, the earliest an active client can close: the load's end less
    /// the longest think time.
    fn idle_until(&self) -> Duration {
        self.duration.saturating_sub(self.think.mul_f64(1.5))
    }

    fn idle_count(&self) -> usize {
        (self.connections as f64 * self.idle_share).round() as usize
    }
}

/// Runs the load on each runtime in turn (the same certificate, clients and seeds for each).
pub fn run(
    config: &QuicConfig,
    runtimes: &[QuicRuntime],
    progress: bool,
) -> Result<Vec<QuicResult>, CliError> {
    config.validate()?;
    let identity = tls::Identity::generate()?;
    runtimes
        .iter()
        .map(|&runtime| {
            if progress {
                let _ = writeln!(
                    std::io::stderr(),
                    "quic on {}: {} connections, {:?} of load…",
                    runtime.name(),
                    config.connections,
                    config.duration
                );
            }
            run_one(config, &identity, runtime)
        })
        .collect()
}

/// Fails the command when a run's figures show a correctness problem: a byte echoed wrong, a
/// timer waking before its deadline, a missing idle timeout, or any failed stream or
/// connection.
/// Called after the figures are printed, so a failing run still shows what it measured.
pub fn check(results: &[QuicResult]) -> Result<(), CliError> {
    for r in results {
        let name = r.runtime.name();
        let fail = |what: String| Err(CliError::QuicCorrectness(format!("{name}: {what}")));
        if r.mismatched_bytes > 0 {
            return fail(format!(
                "{} echoed bytes differed from what was sent",
                r.mismatched_bytes
            ));
        }
        // The timer-level check: a wake-up before its deadline. (An idle close before the last
        // request plus the timeout is not one: quinn stamps a packet with the start of its
        // endpoint's receive pass, which can precede the request; both runtimes show it.)
        if r.timer.early_wakes > 0 {
            return fail(format!(
                "{} timers woke their connection before the deadline",
                r.timer.early_wakes
            ));
        }
        if r.idle.observed != r.idle.expected {
            return fail(format!(
                "{} idle timeouts observed, {} expected",
                r.idle.observed, r.idle.expected
            ));
        }
        let errors = r.errors + r.server_stream_errors + r.server_abnormal_ends + r.unfinished;
        if errors > 0 {
            return fail(format!(
                "{errors} streams or connections failed (first: {})",
                r.first_error.as_deref().unwrap_or("clients still running")
            ));
        }
    }
    Ok(())
}

/// The runtime quinn runs on, kept to read its timer counts at the end.
enum Timers {
    Ticktock {
        runtime: Arc<Observed<ticktock_quinn::TicktockRuntime>>,
        /// Kept alive for the run; dropping it stops the service.
        _service: ticktock::TimerService,
    },
    Tokio(Arc<Observed<quinn::TokioRuntime>>),
}

impl Timers {
    /// Builds the timers of `kind`; a task driver starts on the current runtime.
    fn new(kind: QuicRuntime) -> Result<Self, CliError> {
        // A shard per worker thread. The system clock has a driver thread that sleeps with the
        // exact timeout: 1 ms ticks. Tokio's clock has a driver task that waits on tokio's
        // timer, which wakes it on its own 1 ms grid; finer ticks keep a second millisecond of
        // rounding off the top (measured in the README). The timerfd driver also sleeps
        // exactly, and its passes cost no thread switch, so 250 µs ticks take most of the
        // tick's round-up off its wake-ups.
        let (clock, resolution) = match kind {
            QuicRuntime::Tokio => {
                return Ok(Self::Tokio(Arc::new(Observed::new(quinn::TokioRuntime))));
            }
            QuicRuntime::Ticktock => (ticktock::Clock::System, Duration::from_millis(1)),
            QuicRuntime::TicktockTask => (ticktock::Clock::Tokio, Duration::from_micros(100)),
            QuicRuntime::TicktockTimerfd => {
                (ticktock::Clock::SystemTimerfd, Duration::from_micros(250))
            }
        };
        let service = ticktock::TimerService::builder()
            .clock(clock)
            .resolution(resolution)
            .shards(2)
            .start()?;
        Ok(Self::Ticktock {
            runtime: Arc::new(Observed::new(ticktock_quinn::TicktockRuntime::new(
                service.handle(),
            ))),
            _service: service,
        })
    }

    fn runtime(&self) -> Arc<dyn quinn::Runtime> {
        match self {
            Self::Ticktock { runtime, .. } => runtime.clone(),
            Self::Tokio(runtime) => runtime.clone(),
        }
    }

    fn service(&self) -> Option<results::ServiceFigures> {
        match self {
            Self::Ticktock { runtime, .. } => Some(results::ServiceFigures::new(
                &runtime.inner().handle().stats(),
            )),
            Self::Tokio(_) => None,
        }
    }

    fn figures(&self, idle_until: Instant) -> observe::TimerFigures {
        match self {
            Self::Ticktock { runtime, .. } => runtime.figures(idle_until),
            Self::Tokio(runtime) => runtime.figures(idle_until),
        }
    }
}

/// One runtime's run, on a fresh two-worker tokio runtime.
fn run_one(
    config: &QuicConfig,
    identity: &tls::Identity,
    kind: QuicRuntime,
) -> Result<QuicResult, CliError> {
    let tokio_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let timers = {
        let _runtime = tokio_runtime.enter();
        Timers::new(kind)?
    };
    let measured = tokio_runtime.block_on(load(config, identity, timers.runtime()))?;
    // Every connection has drained and dropped its timer: the counts are complete.
    let timer = timers.figures(measured.idle_until);
    let service = timers.service();
    tokio_runtime.shutdown_timeout(Duration::from_secs(1));
    drop(timers);

    let tally = &measured.tally;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let established = load(&tally.established);
    let bytes_echoed = load(&tally.bytes_echoed);
    let handshake_s = measured.handshake.as_secs_f64();
    let load_s = measured.load.as_secs_f64();
    let cpu_load_s = measured.cpu_load.as_secs_f64();
    let mib = bytes_echoed as f64 / f64::from(1u32 << 20);
    let samples = tally
        .idle_lateness_ms
        .lock()
        .map(|samples| samples.clone())
        .unwrap_or_default();
    Ok(QuicResult {
        runtime: kind,
        connections: config.connections as u64,
        established,
        handshake_s,
        handshakes_per_s: established as f64 / handshake_s.max(1e-9),
        handshake_ms: Quantiles::of(
            tally
                .handshake_ms
                .lock()
                .map(|samples| samples.clone())
                .unwrap_or_default(),
        ),
        load_s,
        echoes: load(&tally.echoes),
        bytes_echoed,
        bytes_per_s: bytes_echoed as f64 / load_s.max(1e-9),
        mismatched_bytes: load(&tally.mismatched_bytes),
        cpu_handshake_s: measured.cpu_handshake.as_secs_f64(),
        cpu_load_s,
        cpu_ms_per_mib: if mib > 0.0 {
            cpu_load_s * 1e3 / mib
        } else {
            0.0
        },
        timer,
        machine: measured.machine,
        idle: IdleSummary {
            expected: config.idle_count() as u64,
            observed: load(&tally.idle_timeouts),
            other_ends: load(&tally.idle_other_ends),
            early: load(&tally.idle_early),
            lateness_ms: Quantiles::of(samples),
            lateness_from_sent_ms: Quantiles::of(
                tally
                    .idle_lateness_from_sent_ms
                    .lock()
                    .map(|samples| samples.clone())
                    .unwrap_or_default(),
            ),
        },
        service,
        client_packets_sent: load(&tally.packets_sent),
        client_packets_lost: load(&tally.packets_lost),
        errors: load(&tally.errors),
        first_error: tally
            .first_error
            .get()
            .or_else(|| measured.server.first_error.get()),
        server_stream_errors: load(&measured.server.stream_errors),
        server_abnormal_ends: load(&measured.server.abnormal_ends)
            + load(&measured.server.handshake_failures),
        unfinished: measured.unfinished,
    })
}

/// What [`load`] measured.
struct Measured {
    tally: Arc<client::Tally>,
    server: Arc<server::ServerCounts>,
    handshake: Duration,
    cpu_handshake: Duration,
    load: Duration,
    cpu_load: Duration,
    unfinished: u64,
    /// The earliest an active client could close: idle timeouts are due before it.
    idle_until: Instant,
    /// How late a bare thread woke during the load.
    machine: probe::ProbeFigures,
}

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max` / `wmem_max`): one
/// socket carries a thousand connections' packets, and a burst the endpoint has not read yet
/// must not be dropped, as a busy server would set it.
const SOCKET_BUFFER: usize = 4 << 20;

fn bind() -> Result<std::net::UdpSocket, CliError> {
    let error = |what: &str, error: std::io::Error| CliError::Quic(format!("{what}: {error}"));
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| error("could not bind a UDP socket on loopback", e))?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())
        .map_err(|e| error("could not set up a UDP socket", e))?;
    // A smaller buffer than asked for only means drops under bursts, which the run reports
    // as lost packets; it is not worth failing for.
    let _ = state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER);
    let _ = state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER);
    Ok(socket)
}

fn endpoint_error(error: std::io::Error) -> CliError {
    CliError::Quic(format!("could not start a QUIC endpoint: {error}"))
}

/// The run itself, inside the tokio runtime: server, handshakes, load, drain.
async fn load(
    config: &QuicConfig,
    identity: &tls::Identity,
    runtime: Arc<dyn quinn::Runtime>,
) -> Result<Measured, CliError> {
    let transport = tls::transport(config.idle_timeout)?;
    let server = Endpoint::new(
        EndpointConfig::default(),
        Some(identity.server_config(Arc::clone(&transport))?),
        bind()?,
        Arc::clone(&runtime),
    )
    .map_err(endpoint_error)?;
    let server_addr = SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        server.local_addr().map_err(endpoint_error)?.port(),
    ));
    let server_counts = Arc::new(server::ServerCounts::default());
    let serving = tokio::spawn(server::serve(
        server.clone(),
        config.message_bytes + 1,
        Arc::clone(&server_counts),
    ));
    let client_config = identity.client_config(transport)?;
    let clients = (0..CLIENT_ENDPOINTS)
        .map(|_| {
            let mut endpoint = Endpoint::new(
                EndpointConfig::default(),
                None,
                bind()?,
                Arc::clone(&runtime),
            )
            .map_err(endpoint_error)?;
            endpoint.set_default_client_config(client_config.clone());
            Ok(endpoint)
        })
        .collect::<Result<Vec<_>, CliError>>()?;

    let tally = Arc::new(client::Tally::default());
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    let (start_tx, start_rx) = watch::channel(None);
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let idle_count = config.idle_count();

    let cpu_start = CpuReading::now()?;
    let handshake_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.connections {
        tasks.spawn(client::run(
            clients[index % CLIENT_ENDPOINTS].clone(),
            server_addr,
            config.plan(index, idle_count, &mut rng),
            Arc::clone(&handshakes),
            start_rx.clone(),
            Arc::clone(&tally),
        ));
    }
    // Every handshake done or failed (a failed one ends its client, which counts it).
    let handshake_limit = handshake_start + Duration::from_secs(60);
    while tally.established.load(Ordering::Relaxed)
        + tally.handshake_failures.load(Ordering::Relaxed)
        < config.connections as u64
        && Instant::now() < handshake_limit
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let handshake = handshake_start.elapsed();
    let cpu_mid = CpuReading::now()?;

    let machine = probe::MachineProbe::start(config.seed)?;
    let load_start = Instant::now();
    // No receiver can have gone: `start_rx` is still held here.
    let _ = start_tx.send(Some(load_start));
    let give_up = tokio::time::Instant::from_std(
        load_start + config.duration + config.idle_timeout + Duration::from_secs(10),
    );
    while let Ok(Some(_)) = tokio::time::timeout_at(give_up, tasks.join_next()).await {}
    let unfinished = tasks.len() as u64;
    tasks.abort_all();
    let load = load_start.elapsed();
    let cpu_end = CpuReading::now()?;
    let machine = machine.finish();

    // Drain: idle clients' connections are gone; active ones closed and wait out their
    // draining period, which dropping the endpoints ends.
    for client in &clients {
        client.close(0u32.into(), b"");
    }
    server.close(0u32.into(), b"");
    for client in &clients {
        client.wait_idle().await;
    }
    server.wait_idle().await;
    // The accept loop ends once the endpoint is closed.
    let _ = serving.await;
    drop(start_rx);
    Ok(Measured {
        tally,
        server: server_counts,
        handshake,
        cpu_handshake: cpu_mid.since(&cpu_start),
        load,
        cpu_load: cpu_end.since(&cpu_mid),
        unfinished,
        idle_until: load_start + config.idle_until(),
        machine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QuicConfig {
        QuicConfig {
            connections: 1000,
            duration: Duration::from_secs(10),
            idle_share: 0.2,
            idle_timeout: Duration::from_secs(2),
            message_bytes: 2048,
            think: Duration::from_millis(500),
            seed: 1,
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_are_one_line_errors() {
        assert!(config().validate().is_ok());
        let bad: [fn(&mut QuicConfig); 9] = [
            |c| c.connections = 0,
            |c| c.connections = MAX_CONNECTIONS + 1,
            |c| c.duration = Duration::from_millis(10),
            |c| c.idle_share = 1.5,
            |c| c.idle_share = f64::NAN,
            |c| c.idle_timeout = Duration::from_millis(10),
            |c| c.idle_timeout = Duration::from_secs(10),
            |c| c.message_bytes = 0,
            |c| c.duration = Duration::from_millis(2_900),
        ];
        for change in bad {
            let mut config = config();
            change(&mut config);
            let error = config.validate().expect_err("refused");
            assert!(!error.to_string().contains('\n'), "{error}");
        }
    }

    #[test]
    fn idle_clients_are_as_many_as_asked_and_go_idle_in_time() {
        let config = config();
        let mut rng = SmallRng::seed_from_u64(1);
        let plans: Vec<_> = (0..config.connections)
            .map(|i| config.plan(i, config.idle_count(), &mut rng))
            .collect();
        let idle: Vec<_> = plans.iter().filter_map(|p| p.idle_after).collect();
        assert_eq!(idle.len(), 200);
        // Every idle timeout is due before the first active client can close, also for a
        // client whose one echo comes at the end of the first think time.
        assert!(idle.iter().all(|&after| {
            after.max(config.think) + config.idle_timeout + IDLE_MARGIN
                <= config.duration - config.think.mul_f64(1.5)
        }));
    }
}
