//! A reliable echo protocol over real UDP sockets on loopback, with its timeouts on
//! [`LayeredTimeouts`]: one timer-service registration per connection, carrying a
//! [`TimingManager`] (idle timeout) and a [`ReliabilityLayer`] (RFC 6298 retransmission timer).
//!
//! Each client task sends numbered data frames (type, sequence, payload) through a window of 8;
//! the server acks each one (cumulative plus selective) and echoes every new frame back as its
//! own reliable frame, which the client acks in turn. Every datagram is dropped at its sender
//! with a seeded probability, so both directions lose data and acks and recover through
//! retransmissions when the RTO fires, with backoff. The server socket also overflows now and
//! then in bursts (reported from `/proc/net/udp` where it exists): real loss on top of the
//! simulated one. A connection that has everything goes quiet and is closed by its idle
//! timeout, on both sides. The run fails (exit code 1) if an echo is missing, a connection gave
//! up, or one did not close on idle.
//!
//! `cargo run --release -p ticktock --example reliable_udp -- --quick`
//! (`-- --help` lists the flags: connections, frames, loss, idle timeout, seed).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ticktock::{
    AckFrame, Clock, Instant, LayerEvent, LayerGuard, LayerId, LayeredTimeouts, Received,
    ReliabilityConfig, ReliabilityLayer, RtoConfig, Shutdown, TimeoutCheckResult, TimeoutEvent,
    TimerHandle, TimerService, TimingConfig, TimingManager,
};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

const USAGE: &str = "usage: reliable_udp [--quick] [--connections N] [--frames M] [--loss P] \
                     [--idle-ms T] [--seed S]
  --quick  50 connections, 20 frames, loss 0.1 (other flags still override)
  defaults: 200 connections, 50 frames, loss 0.05, idle 500 ms, seed 1";
/// Client frames in flight at most.
const WINDOW: usize = 8;
const MAX_DATAGRAM: usize = 1500;
const DATA: u8 = 0;
const ACK: u8 = 1;
/// Type byte and sequence number.
const DATA_HEADER: usize = 9;

#[derive(Debug, Clone, Copy)]
struct Config {
    connections: u32,
    frames: u32,
    loss: f64,
    idle: Duration,
    seed: u64,
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let quick = args.iter().any(|arg| arg == "--quick");
    let mut config = Config {
        connections: if quick { 50 } else { 200 },
        frames: if quick { 20 } else { 50 },
        loss: if quick { 0.1 } else { 0.05 },
        idle: Duration::from_millis(500),
        seed: 1,
    };
    let mut args = args.iter().filter(|arg| *arg != "--quick");
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value}");
        match flag.as_str() {
            "--connections" => config.connections = value.parse().map_err(|_| bad())?,
            "--frames" => config.frames = value.parse().map_err(|_| bad())?,
            "--idle-ms" => config.idle = Duration::from_millis(value.parse().map_err(|_| bad())?),
            "--seed" => config.seed = value.parse().map_err(|_| bad())?,
            "--loss" => config.loss = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if config.connections == 0 || config.frames == 0 || config.idle.is_zero() {
        return Err("connections, frames and idle-ms must be positive".into());
    }
    // At 100% loss nothing is ever delivered.
    if !(0.0..1.0).contains(&config.loss) {
        return Err("loss must be in [0, 1)".into());
    }
    Ok(config)
}

/// splitmix64: enough randomness to drop datagrams reproducibly per connection.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        unit < probability
    }
}

enum Frame<'a> {
    Data { sequence: u64, payload: &'a [u8] },
    Ack(AckFrame),
}

fn decode(datagram: &[u8]) -> Option<Frame<'_>> {
    let word = |at: usize| {
        Some(u64::from_be_bytes(
            datagram.get(at..at + 8)?.try_into().ok()?,
        ))
    };
    match *datagram.first()? {
        DATA => Some(Frame::Data {
            sequence: word(1)?,
            payload: &datagram[DATA_HEADER..],
        }),
        ACK if datagram.len() == 17 => Some(Frame::Ack(AckFrame {
            next_expected: word(1)?,
            selective: word(9)?,
        })),
        _ => None,
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Idle,
    GaveUp,
}

/// What one side of one connection did, or what many did, summed.
#[derive(Debug, Default, Clone, Copy)]
struct Report {
    sent: u64,
    retransmitted: u64,
    /// Unique echoes (clients only).
    delivered: u64,
    duplicates: u64,
    dropped: u64,
    idle_closed: u64,
    gave_up: u64,
    unacked_at_close: u64,
    /// Layer deadline moves, most of which never reach the timer wheel.
    deadline_changes: u64,
    /// Until everything was echoed and acked (clients only; the latest, summed).
    done_after: Option<Duration>,
}

impl std::ops::Add for Report {
    type Output = Report;

    fn add(self, other: Report) -> Report {
        Report {
            sent: self.sent + other.sent,
            retransmitted: self.retransmitted + other.retransmitted,
            delivered: self.delivered + other.delivered,
            duplicates: self.duplicates + other.duplicates,
            dropped: self.dropped + other.dropped,
            idle_closed: self.idle_closed + other.idle_closed,
            gave_up: self.gave_up + other.gave_up,
            unacked_at_close: self.unacked_at_close + other.unacked_at_close,
            deadline_changes: self.deadline_changes + other.deadline_changes,
            done_after: self.done_after.max(other.done_after),
        }
    }
}

/// One side of a connection: its layered timeouts, and a socket towards the peer that loses
/// datagrams on purpose.
struct Endpoint {
    timeouts: LayeredTimeouts,
    timing: LayerId<TimingManager>,
    reliable: LayerId<ReliabilityLayer>,
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    loss: f64,
    rng: SplitMix64,
    dropped: u64,
    duplicates: u64,
}

impl Endpoint {
    /// `stream` tells the endpoints apart, so each draws its own losses from the one seed.
    fn new(
        timers: TimerHandle,
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
        config: &Config,
        stream: u64,
    ) -> Self {
        let mut timeouts = LayeredTimeouts::new(timers);
        let timing = TimingConfig {
            idle_timeout: config.idle,
            handshake_timeout: None,
            keep_alive: None,
        };
        let timing = timeouts.add_layer(TimingManager::new(timing, timeouts.now()));
        // QUIC-like: a loopback RTT is far below RFC 6298's 1 s floor. The backoff stops at an
        // eighth of the idle timeout, so a frame is sent several times before the peer's
        // silence counts as idle (QUIC keeps its idle timeout above 3 PTOs for the same reason).
        let min = Duration::from_millis(10);
        let rto = RtoConfig {
            initial: Duration::from_millis(50),
            min,
            max: (config.idle / 8).clamp(min, Duration::from_secs(2)),
            granularity: Duration::from_millis(1),
        };
        let reliability = ReliabilityConfig {
            rto,
            max_retries: 12,
        };
        let reliable = timeouts.add_layer(ReliabilityLayer::new(reliability));
        Self {
            timeouts,
            timing,
            reliable,
            socket,
            peer,
            loss: config.loss,
            rng: SplitMix64(config.seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)),
            dropped: 0,
            duplicates: 0,
        }
    }

    // Both ids come from `self.timeouts`, so the lookups cannot miss.
    fn timing(&mut self) -> LayerGuard<'_, TimingManager> {
        self.timeouts.layer_mut(self.timing).expect("own layer")
    }

    fn reliable(&mut self) -> LayerGuard<'_, ReliabilityLayer> {
        self.timeouts.layer_mut(self.reliable).expect("own layer")
    }

    fn in_flight(&self) -> usize {
        let reliable = self.timeouts.layer(self.reliable);
        reliable.map_or(0, ReliabilityLayer::in_flight)
    }

    async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        if self.rng.chance(self.loss) {
            self.dropped += 1;
        } else {
            self.socket.send_to(datagram, self.peer).await?;
        }
        let now = self.timeouts.now();
        self.timing().on_packet_sent(now);
        Ok(())
    }

    async fn send_data(&mut self, sequence: u64, payload: &[u8]) -> io::Result<()> {
        let datagram = [&[DATA][..], &sequence.to_be_bytes(), payload].concat();
        self.send(&datagram).await
    }

    /// Sends a new reliable frame.
    async fn send_new(&mut self, payload: Bytes) -> io::Result<()> {
        let now = self.timeouts.now();
        let sequence = self.reliable().on_frame_sent(payload.clone(), now);
        self.send_data(sequence, &payload).await
    }

    /// Handles a datagram from the peer; returns the payload of a data frame seen for the
    /// first time.
    async fn on_datagram<'a>(&mut self, datagram: &'a [u8]) -> io::Result<Option<&'a [u8]>> {
        // Garbage is ignored, as a stray datagram would be.
        let Some(frame) = decode(datagram) else {
            return Ok(None);
        };
        let now = self.timeouts.now();
        self.timing().on_packet_received(now);
        let (sequence, payload) = match frame {
            Frame::Data { sequence, payload } => (sequence, payload),
            Frame::Ack(ack) => {
                self.reliable().on_ack(ack, now);
                return Ok(None);
            }
        };
        let received = self.reliable().on_frame_received(sequence);
        // Duplicates are acked again: the peer resent because our ack was lost.
        let ack = self.reliable().ack_frame();
        let (next, selective) = (ack.next_expected.to_be_bytes(), ack.selective.to_be_bytes());
        self.send(&[&[ACK][..], &next, &selective].concat()).await?;
        self.duplicates += u64::from(received == Received::Duplicate);
        Ok((received == Received::New).then_some(payload))
    }

    /// Resends what the RTO handed back; `Some` when the connection is over.
    async fn on_timeouts(
        &mut self,
        fired: Result<Vec<TimeoutCheckResult>, Shutdown>,
    ) -> io::Result<Option<Closed>> {
        for result in fired.map_err(io::Error::other)? {
            for frame in result.frames_to_retransmit {
                self.send_data(frame.sequence, &frame.payload).await?;
            }
            for event in result.events {
                match event {
                    LayerEvent::Timeout(TimeoutEvent::IdleTimeout) => {
                        return Ok(Some(Closed::Idle));
                    }
                    LayerEvent::RetransmissionLimit { .. } => return Ok(Some(Closed::GaveUp)),
                    // An RTO expiry: its frames were resent above.
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    fn report(&self, closed: Closed) -> Report {
        let reliable = self.timeouts.layer(self.reliable);
        let stats = reliable
            .map(|layer| layer.retransmission().stats())
            .unwrap_or_default();
        Report {
            sent: stats.sent,
            retransmitted: stats.retransmitted,
            duplicates: self.duplicates,
            dropped: self.dropped,
            idle_closed: u64::from(closed == Closed::Idle),
            gave_up: u64::from(closed == Closed::GaveUp),
            unacked_at_close: self.in_flight() as u64,
            deadline_changes: self.timeouts.stats().deadline_changes,
            ..Report::default()
        }
    }
}

async fn run_client(
    id: u32,
    server: SocketAddr,
    config: Config,
    timers: TimerHandle,
) -> io::Result<Report> {
    let socket = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
    let stream = u64::from(id) << 1;
    let mut endpoint = Endpoint::new(timers, Arc::clone(&socket), server, &config, stream);
    let started = Instant::now();
    let mut echoed = vec![false; config.frames as usize];
    let (mut delivered, mut next, mut done_after) = (0, 0, None);
    let mut buf = [0; MAX_DATAGRAM];
    let closed = loop {
        while next < config.frames && endpoint.in_flight() < WINDOW {
            // Payload: connection id, frame index, filler.
            let payload = [id.to_be_bytes(), next.to_be_bytes(), [0xEE; 4]].concat();
            endpoint.send_new(Bytes::from(payload)).await?;
            next += 1;
        }
        if done_after.is_none() && delivered == config.frames && endpoint.in_flight() == 0 {
            done_after = Some(started.elapsed());
        }
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received?;
                if from != server {
                    continue;
                }
                let Some(echo) = endpoint.on_datagram(&buf[..len]).await? else { continue };
                let index = echo.get(4..8).and_then(|index| index.try_into().ok());
                let index = index.map(|index| u32::from_be_bytes(index) as usize);
                let seen = index.and_then(|index| echoed.get_mut(index));
                if echo.starts_with(&id.to_be_bytes()) && let Some(seen) = seen && !*seen {
                    *seen = true;
                    delivered += 1;
                }
            }
            fired = endpoint.timeouts.next_timeouts() => {
                if let Some(closed) = endpoint.on_timeouts(fired).await? {
                    break closed;
                }
            }
        }
    };
    let delivered = u64::from(delivered);
    Ok(Report {
        delivered,
        done_after,
        ..endpoint.report(closed)
    })
}

/// One client's connection on the server: echoes each new frame back, reliably.
async fn serve(
    mut datagrams: mpsc::UnboundedReceiver<Bytes>,
    mut endpoint: Endpoint,
) -> io::Result<Report> {
    let closed = loop {
        tokio::select! {
            Some(datagram) = datagrams.recv() => {
                if let Some(payload) = endpoint.on_datagram(&datagram).await? {
                    endpoint.send_new(datagram.slice_ref(payload)).await?;
                }
            }
            fired = endpoint.timeouts.next_timeouts() => {
                if let Some(closed) = endpoint.on_timeouts(fired).await? {
                    break closed;
                }
            }
        }
    };
    Ok(endpoint.report(closed))
}

/// Routes datagrams to one task per client address (on `connections`) until `stop`, then
/// waits for every connection to close. Also returns how many datagrams the kernel dropped
/// because the socket's receive buffer was full, where `/proc/net/udp` tells.
async fn run_server(
    socket: Arc<UdpSocket>,
    config: Config,
    timers: TimerHandle,
    mut stop: oneshot::Receiver<()>,
    connections: Handle,
) -> io::Result<(Vec<Report>, Option<u64>)> {
    // Kept until the end: a closed connection's late datagrams are dropped, not reopened.
    let mut routes = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = [0; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (len, from) = received?;
                let route = routes.entry(from).or_insert_with(|| {
                    let (sender, receiver) = mpsc::unbounded_channel();
                    let stream = u64::from(from.port()) << 1 | 1;
                    let socket = Arc::clone(&socket);
                    let endpoint = Endpoint::new(timers.clone(), socket, from, &config, stream);
                    tasks.spawn_on(serve(receiver, endpoint), &connections);
                    sender
                });
                route.send(Bytes::copy_from_slice(&buf[..len])).ok();
            }
            _ = &mut stop => break,
        }
    }
    let mut reports = Vec::new();
    while let Some(report) = tasks.join_next().await {
        reports.push(report.map_err(io::Error::other)??);
    }
    Ok((reports, kernel_drops(socket.local_addr()?.port())))
}

/// The `drops` column of the socket bound to `port` in Linux's `/proc/net/udp`.
fn kernel_drops(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    let row = table.lines().find(|row| {
        let mut columns = row.split_whitespace();
        columns
            .nth(1)
            .is_some_and(|address| address.ends_with(&local))
    })?;
    row.split_whitespace().last()?.parse().ok()
}

#[tokio::main]
async fn main() -> io::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let config = match parse_args(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    // A service of our own, so its counters are this run's alone.
    let service = TimerService::builder().clock(Clock::System).start();
    let service = service.map_err(io::Error::other)?;
    let timers = service.handle();
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_nonblocking(true)?;
    let server_addr = socket.local_addr()?;
    let (stop, stopped) = oneshot::channel();
    let started = std::time::Instant::now();
    // The receive loop gets a thread of its own: as one task among hundreds of connections it
    // would wait its turn while the socket's receive buffer overflows (about three times as
    // many kernel drops when measured). The server's connections run on this runtime.
    let (server_timers, connections) = (timers.clone(), Handle::current());
    let listener = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        runtime.block_on(async move {
            let socket = Arc::new(UdpSocket::from_std(socket)?);
            run_server(socket, config, server_timers, stopped, connections).await
        })
    });
    let mut tasks = JoinSet::new();
    for id in 0..config.connections {
        tasks.spawn(run_client(id, server_addr, config, timers.clone()));
    }
    let mut clients = Report::default();
    while let Some(report) = tasks.join_next().await {
        clients = clients + report.map_err(io::Error::other)??;
    }
    stop.send(()).ok();
    let (server_reports, kernel_dropped) = listener.await.map_err(io::Error::other)??;
    let server_connections = server_reports.len() as u64;
    let server = server_reports
        .into_iter()
        .fold(Report::default(), |sum, one| sum + one);
    let elapsed = started.elapsed();
    let stats = timers.stats();
    service.shutdown().await;

    let all = clients + server;
    let expected = u64::from(config.connections) * u64::from(config.frames);
    let done = clients
        .done_after
        .map_or_else(|| "never".into(), |at| format!("{at:?}"));
    // Operations on the timer wheels: entries armed, moved, cancelled and fired. Most layer
    // deadline changes (the idle timeout moving later on every packet) cost none of them.
    let operations = stats.armed + stats.reset + stats.cancelled + stats.processed;
    let rate = operations as f64 / elapsed.as_secs_f64();
    println!("{config:?}, window {WINDOW}");
    println!(
        "frames sent (first transmissions): {} (clients {}, server echoes {})",
        all.sent, clients.sent, server.sent
    );
    println!("retransmitted: {}", all.retransmitted);
    println!(
        "delivered (unique echoes at clients): {} of {expected}",
        clients.delivered
    );
    println!("duplicates received: {}", all.duplicates);
    let kernel_dropped = kernel_dropped.map_or_else(|| "unknown".into(), |n| n.to_string());
    println!(
        "datagrams dropped by simulated loss: {}; by the kernel, server socket full: {kernel_dropped}",
        all.dropped
    );
    println!(
        "gave up: {}, frames unacked when their side closed: {}",
        all.gave_up, all.unacked_at_close
    );
    println!("elapsed: {elapsed:?} (all echoed and acked after {done}, then quiet until idle)");
    println!(
        "timer operations: {operations} ({rate:.0}/s): armed {}, reset {}, cancelled {}, fired {}",
        stats.armed, stats.reset, stats.cancelled, stats.processed
    );
    println!(
        "  for {} layer deadline changes; {} entries re-filed by the driver",
        all.deadline_changes, stats.connection_rearms
    );
    println!(
        "closed by idle timeout: clients {}/{}, server {}/{server_connections} connections",
        clients.idle_closed, config.connections, server.idle_closed
    );
    let n = u64::from(config.connections);
    if clients.delivered != expected
        || all.gave_up > 0
        || all.idle_closed != 2 * n
        || server_connections != n
    {
        eprintln!("FAILED: missing echoes, a connection gave up, or one did not close on idle");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
