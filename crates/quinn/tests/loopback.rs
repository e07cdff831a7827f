//! A real quinn client and server over loopback UDP, both on `TicktockRuntime`: handshake,
//! bidirectional streams echoed byte for byte, a graceful close, and an idle timeout that closes
//! an idle connection on time. Real sockets, so real time; every wait is short.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Connection, ConnectionError, Endpoint, ServerConfig, TransportConfig};
use ticktock::{Clock, TimerService};
use ticktock_quinn::TicktockRuntime;

/// The service a production endpoint would use: the system clock, a 1 ms tick.
fn service() -> TimerService {
    TimerService::builder()
        .clock(Clock::System)
        .resolution(Duration::from_millis(1))
        .start()
        .expect("the timer service starts")
}

fn transport(idle: Duration) -> Arc<TransportConfig> {
    let mut transport = TransportConfig::default();
    transport.max_idle_timeout(Some(idle.try_into().expect("idle timeout fits")));
    Arc::new(transport)
}

/// A server endpoint with a fresh self-signed certificate, and a client endpoint trusting it.
fn endpoints(runtime: &TicktockRuntime, idle: Duration) -> (Endpoint, Endpoint) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("rcgen makes a certificate");
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut server_config =
        ServerConfig::with_single_cert(vec![cert.clone()], key).expect("valid certificate");
    server_config.transport_config(transport(idle));
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert).expect("the certificate is a valid root");
    let mut client_config =
        ClientConfig::with_root_certificates(Arc::new(roots)).expect("client config");
    client_config.transport_config(transport(idle));

    let bind = || std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
    let server = Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config),
        bind(),
        Arc::new(runtime.clone()),
    )
    .expect("server endpoint");
    let mut client = Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        bind(),
        Arc::new(runtime.clone()),
    )
    .expect("client endpoint");
    client.set_default_client_config(client_config);
    (server, client)
}

/// Accepts connections and echoes every bidirectional stream until the endpoint closes;
/// returns how each connection ended.
fn serve_echo(server: Endpoint) -> tokio::task::JoinHandle<Vec<ConnectionError>> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Some(incoming) = server.accept().await {
            connections.spawn(async move {
                let connection = incoming.await.expect("server side of the handshake");
                loop {
                    match connection.accept_bi().await {
                        Ok((mut send, mut recv)) => {
                            tokio::spawn(async move {
                                let data = recv.read_to_end(1 << 24).await.expect("read request");
                                send.write_all(&data).await.expect("write echo");
                                send.finish().expect("finish echo");
                            });
                        }
                        Err(error) => return error,
                    }
                }
            });
            if connections.len() == 1 {
                break;
            }
        }
        let mut ends = Vec::new();
        while let Some(end) = connections.join_next().await {
            ends.push(end.expect("server connection task"));
        }
        ends
    })
}

fn server_addr(server: &Endpoint) -> SocketAddr {
    let port = server.local_addr().expect("server address").port();
    (Ipv4Addr::LOCALHOST, port).into()
}

/// A deterministic payload, different per stream, so a mixed-up echo shows.
fn payload(stream: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ stream.wrapping_mul(131) ^ (i >> 8)) as u8)
        .collect()
}

async fn echo(connection: &Connection, stream: usize, len: usize) {
    let (mut send, mut recv) = connection.open_bi().await.expect("open stream");
    let sent = payload(stream, len);
    send.write_all(&sent).await.expect("write request");
    send.finish().expect("finish request");
    let back = recv.read_to_end(len + 1).await.expect("read echo");
    assert_eq!(back.len(), sent.len(), "stream {stream}: echo length");
    if let Some(at) = back.iter().zip(&sent).position(|(a, b)| a != b) {
        panic!("stream {stream}: echoed byte {at} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_echo_streams_and_graceful_close() {
    let service = service();
    let runtime = TicktockRuntime::new(service.handle());
    let (server, client) = endpoints(&runtime, Duration::from_secs(10));
    let server_task = serve_echo(server.clone());

    let connection = client
        .connect(server_addr(&server), "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    // Streams of several sizes, some concurrently: flow control, multiple packets, empty.
    let sizes = [0, 1, 1_200, 64 * 1024, 1024 * 1024];
    let mut streams = tokio::task::JoinSet::new();
    for (stream, &len) in sizes.iter().enumerate() {
        let connection = connection.clone();
        streams.spawn(async move { echo(&connection, stream, len).await });
    }
    while let Some(done) = streams.join_next().await {
        done.expect("echo stream");
    }
    for stream in 0..8 {
        echo(&connection, 100 + stream, 10_000).await;
    }

    connection.close(7u32.into(), b"done");
    client.wait_idle().await;
    let ends = server_task.await.expect("server task");
    match ends.as_slice() {
        [ConnectionError::ApplicationClosed(close)] => {
            assert_eq!(close.error_code, 7u32.into());
            assert_eq!(&close.reason[..], b"done");
        }
        other => panic!("server saw {other:?}"),
    }
    server.close(0u32.into(), b"");
    server.wait_idle().await;

    let ops = runtime.stats();
    assert!(ops.created >= 2, "both sides made a timer: {ops:?}");
    assert!(ops.resets > 0 && ops.polls > 0, "{ops:?}");
    assert_eq!(ops.fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_times_out_on_time() {
    idle_connection_times_out_on_time(service()).await;
}

/// The same on a service whose driver is a task on this runtime, sleeping on a timerfd.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_times_out_on_time_with_the_timerfd_driver() {
    let service = TimerService::builder()
        .clock(Clock::SystemTimerfd)
        .resolution(Duration::from_micros(250))
        .start()
        .expect("the timer service starts on this runtime");
    idle_connection_times_out_on_time(service).await;
}

async fn idle_connection_times_out_on_time(service: TimerService) {
    let idle = Duration::from_millis(250);
    let runtime = TicktockRuntime::new(service.handle());
    let (server, client) = endpoints(&runtime, idle);
    let server_task = serve_echo(server.clone());

    let connection = client
        .connect(server_addr(&server), "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    // Some traffic (it pushes the idle deadline later at each packet), then nothing.
    for stream in 0..3 {
        echo(&connection, stream, 4_000).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The client restarts its idle timer at the last packet it receives: the final echo,
    // which arrives after `sent` and before `seen`. quinn stamps a packet with the time its
    // endpoint driver's pass began, so `seen + idle` can be a little later than the real
    // deadline; `sent + idle` cannot be.
    let sent = Instant::now();
    echo(&connection, 9, 4_000).await;
    let seen = Instant::now();
    let error = connection.closed().await;
    let closed = Instant::now();
    assert_eq!(error, ConnectionError::TimedOut);
    assert!(
        closed >= sent + idle,
        "closed {:?} before the idle timeout",
        (sent + idle) - closed
    );
    assert!(
        closed <= seen + idle + Duration::from_millis(50),
        "closed {:?} after the idle timeout",
        closed - (seen + idle)
    );
    match server_task.await.expect("server task").as_slice() {
        [ConnectionError::TimedOut] => {}
        other => panic!("server saw {other:?}"),
    }
    assert_eq!(runtime.stats().fallbacks, 0);
}
