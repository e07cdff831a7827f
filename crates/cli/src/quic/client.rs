//! One client connection: connect (a handshake permit at a time), wait for the load to start,
//! echo messages on a new bidirectional stream each with a think time between, checking every
//! byte; then either close gracefully at the end of the run or, for an idle client, stop early
//! and wait for the idle timeout to close the connection, timing how late it comes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::sync::{Semaphore, watch};

use super::FirstError;
use super::tls::SERVER_NAME;

/// What one client does once the load starts.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The client's index (seeds its payloads and think times).
    pub index: u64,
    /// The run's seed.
    pub seed: u64,
    /// Bytes per echoed message.
    pub message_bytes: usize,
    /// Mean pause between two echoes (each pause is uniform in half to one and a half of it).
    pub think: Duration,
    /// How long the load lasts.
    pub duration: Duration,
    /// For an idle client: when, after the load starts, it stops sending.
    pub idle_after: Option<Duration>,
    /// The connection's idle timeout.
    pub idle_timeout: Duration,
}

/// Counts all clients add to.
#[derive(Debug, Default)]
pub struct Tally {
    /// Handshakes completed.
    pub established: AtomicU64,
    /// Handshakes that failed.
    pub handshake_failures: AtomicU64,
    /// Messages echoed back in full.
    pub echoes: AtomicU64,
    /// Bytes that came back (whether or not they matched).
    pub bytes_echoed: AtomicU64,
    /// Bytes that came back different from what was sent, or were missing or extra.
    pub mismatched_bytes: AtomicU64,
    /// Streams or connections that failed (the first message is kept in `first_error`).
    pub errors: AtomicU64,
    /// Idle clients whose connection ended with `TimedOut`.
    pub idle_timeouts: AtomicU64,
    /// Idle clients whose connection ended otherwise.
    pub idle_other_ends: AtomicU64,
    /// Idle closes before the idle timeout could have passed: before the last request was sent
    /// plus the timeout (must be 0).
    pub idle_early: AtomicU64,
    /// Lateness of each idle close in ms: the close as the client saw it, less the moment it
    /// saw its last reply plus the idle timeout.
    pub idle_lateness_ms: Mutex<Vec<f64>>,
    /// Packets the clients sent (quinn's count, handshakes included).
    pub packets_sent: AtomicU64,
    /// Of those, packets quinn declared lost (loopback drops only when a socket buffer
    /// overflows).
    pub packets_lost: AtomicU64,
    /// How long each handshake took, in ms (from its permit to the connection).
    pub handshake_ms: Mutex<Vec<f64>>,
    /// The same closes counted from when the client sent its last request, in ms: the true
    /// lateness lies between this and `idle_lateness_ms`.
    pub idle_lateness_from_sent_ms: Mutex<Vec<f64>>,
    /// The first error, to print.
    pub first_error: FirstError,
}

impl Tally {
    fn error(&self, what: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.keep(what);
    }
}

/// Runs one client to its end. `handshakes` limits handshakes in flight (so the server's socket
/// buffer never overflows with Initial packets); `start` carries the instant the load starts.
pub async fn run(
    endpoint: Endpoint,
    server: SocketAddr,
    plan: Plan,
    handshakes: Arc<Semaphore>,
    mut start: watch::Receiver<Option<Instant>>,
    tally: Arc<Tally>,
) {
    let connection = {
        // The semaphore is never closed; without a permit, connect anyway.
        let _permit = handshakes.acquire().await.ok();
        let began = Instant::now();
        let connecting = match endpoint.connect(server, SERVER_NAME) {
            Ok(connecting) => connecting,
            Err(error) => {
                tally.handshake_failures.fetch_add(1, Ordering::Relaxed);
                tally.error(|| format!("connect: {error}"));
                return;
            }
        };
        match connecting.await {
            Ok(connection) => {
                if let Ok(mut samples) = tally.handshake_ms.lock() {
                    samples.push(began.elapsed().as_secs_f64() * 1e3);
                }
                connection
            }
            Err(error) => {
                tally.handshake_failures.fetch_add(1, Ordering::Relaxed);
                tally.error(|| format!("handshake: {error}"));
                return;
            }
        }
    };
    tally.established.fetch_add(1, Ordering::Relaxed);
    let started = loop {
        // Until every client is connected, a connection could sit idle for longer than its idle
        // timeout: a one-byte datagram every quarter timeout keeps it open (the server's ack
        // restarts the client's idle timer, the datagram the server's).
        match tokio::time::timeout(plan.idle_timeout / 4, start.wait_for(Option::is_some)).await {
            Ok(Ok(start)) => match *start {
                Some(started) => break started,
                None => return,
            },
            // The sender is gone: the run is over.
            Ok(Err(_)) => return,
            Err(_) => {
                let _ = connection.send_datagram(Bytes::from_static(b"w"));
            }
        }
    };
    let mut client = Client {
        connection,
        rng: SmallRng::seed_from_u64(plan.seed ^ plan.index.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        sent: vec![0; plan.message_bytes],
        tally: &tally,
    };
    let stop = started + plan.idle_after.unwrap_or(plan.duration);
    // Start at a random point of a think time, so the clients' echoes spread out from the
    // first round instead of all leaving at once.
    let offset = plan.think.mul_f64(client.rng.random_range(0.0..1.0));
    tokio::time::sleep_until((started + offset).into()).await;
    // Every client echoes at least once, so an idle client's last activity is an echo.
    let (sent_at, seen_at) = loop {
        let sent_at = Instant::now();
        if !client.echo().await {
            return;
        }
        let seen_at = Instant::now();
        let pause = client.think(plan.think);
        if seen_at + pause >= stop {
            break (sent_at, seen_at);
        }
        tokio::time::sleep(pause).await;
    };
    if plan.idle_after.is_none() {
        client.connection.close(0u32.into(), b"done");
        return;
    }
    let end = client.connection.closed().await;
    let closed_at = Instant::now();
    if end != ConnectionError::TimedOut {
        tally.idle_other_ends.fetch_add(1, Ordering::Relaxed);
        tally.error(|| format!("an idle connection ended with {end} instead of timing out"));
        return;
    }
    tally.idle_timeouts.fetch_add(1, Ordering::Relaxed);
    // The client's idle timer restarted when the last reply's packet arrived: after `sent_at`,
    // before `seen_at`. Closing before `sent_at + timeout` is early for certain. Lateness is
    // counted from `seen_at`, which is after quinn's stamp on that packet (the start of its
    // endpoint's receive pass), so it can read a fraction of a millisecond low; the close side
    // includes this task's wake-up after the connection closed.
    if closed_at < sent_at + plan.idle_timeout {
        tally.idle_early.fetch_add(1, Ordering::Relaxed);
    }
    let deadline = seen_at + plan.idle_timeout;
    let lateness_ms = if closed_at >= deadline {
        (closed_at - deadline).as_secs_f64() * 1e3
    } else {
        -(deadline - closed_at).as_secs_f64() * 1e3
    };
    if let Ok(mut samples) = tally.idle_lateness_ms.lock() {
        samples.push(lateness_ms);
    }
    let from_sent = sent_at + plan.idle_timeout;
    let from_sent_ms = if closed_at >= from_sent {
        (closed_at - from_sent).as_secs_f64() * 1e3
    } else {
        -(from_sent - closed_at).as_secs_f64() * 1e3
    };
    if let Ok(mut samples) = tally.idle_lateness_from_sent_ms.lock() {
        samples.push(from_sent_ms);
    }
}

struct Client<'a> {
    connection: Connection,
    rng: SmallRng,
    sent: Vec<u8>,
    tally: &'a Tally,
}

impl Drop for Client<'_> {
    /// Adds the connection's packet counts, however the client ended.
    fn drop(&mut self) {
        let path = self.connection.stats().path;
        self.tally
            .packets_sent
            .fetch_add(path.sent_packets, Ordering::Relaxed);
        self.tally
            .packets_lost
            .fetch_add(path.lost_packets, Ordering::Relaxed);
    }
}

impl Client<'_> {
    /// A pause uniform in half to one and a half of `mean`.
    fn think(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// Sends one fresh message on a new stream and checks the echo byte for byte; `false` when
    /// the connection failed.
    async fn echo(&mut self) -> bool {
        self.rng.fill_bytes(&mut self.sent);
        let (mut send, mut recv) = match self.connection.open_bi().await {
            Ok(stream) => stream,
            Err(error) => {
                self.tally.error(|| format!("open a stream: {error}"));
                return false;
            }
        };
        if let Err(error) = send.write_all(&self.sent).await {
            self.tally.error(|| format!("send a message: {error}"));
            return false;
        }
        // Finishing only fails on a stream that is already closed, which the read reports.
        let _ = send.finish();
        let back = match recv.read_to_end(self.sent.len() + 1).await {
            Ok(back) => back,
            Err(error) => {
                self.tally.error(|| format!("read an echo: {error}"));
                return false;
            }
        };
        let differing = back.iter().zip(&self.sent).filter(|(a, b)| a != b).count()
            + back.len().abs_diff(self.sent.len());
        self.tally
            .bytes_echoed
            .fetch_add(back.len() as u64, Ordering::Relaxed);
        if differing > 0 {
            self.tally
                .mismatched_bytes
                .fetch_add(differing as u64, Ordering::Relaxed);
        } else {
            self.tally.echoes.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}
