//! A Prometheus scrape endpoint for `ticktock simulate`.
//!
//! [`serve`] installs a Prometheus recorder as the process's `metrics` recorder (once; later
//! calls reuse it) and answers `GET /metrics` and `GET /` with the text exposition format on a
//! listener of its own. The endpoint runs on a thread of its own with blocking std sockets, so it
//! needs no tokio runtime (nor one with IO enabled) and works from inside one or outside; it
//! serves while the returned [`MetricsEndpoint`] lives.
//!
//! What gets exported: the batcher records its `ticktock_batch_*` series as it goes, and the
//! timer service's driver feeds `ticktock_fire_lateness_seconds`; the service's gauges and
//! counters reach the recorder only when its statistics are read, which is what
//! [`publish_service_stats`] does (call it before each scrape is due, e.g. once a second).
//!
//! Requests are answered one at a time, each with a short read and write timeout, which is plenty
//! for a scraper or two.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often histogram samples are folded into their summaries when nobody scrapes (a scrape
/// folds them too), so a long run without a scraper does not pile them up.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read; the rest is ignored.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long [`Drop`] waits for its wake-up connection to the listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Something else listens on the address.
    #[error("cannot serve metrics on {addr}: the address is already in use")]
    AddrInUse {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound for another reason (not a local address, a privileged
    /// port, …).
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Another `metrics` recorder was installed in this process before ours.
    #[error("cannot export metrics to Prometheus: another `metrics` recorder is already installed")]
    RecorderInstalled,
    /// The thread that serves the endpoint could not be started.
    #[error("cannot start the metrics endpoint's thread: {0}")]
    Thread(#[source] io::Error),
}

/// A running scrape endpoint; dropping it stops the server and waits for its thread (at most a
/// request's timeouts). The recorder stays installed, so the series keep counting and a later
/// [`serve`] shows them all.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts serving the process's metrics on `addr` (port 0 picks a free port: see
/// [`MetricsEndpoint::local_addr`]).
///
/// The first successful call installs the Prometheus recorder as the global `metrics` recorder
/// for the rest of the process; later calls reuse it, so `serve` may be called several times and
/// several endpoints may run at once. It spawns its own thread and needs no tokio runtime.
///
/// # Errors
///
/// [`MetricsError::AddrInUse`] or [`MetricsError::Bind`] if `addr` cannot be listened on (nothing
/// is installed then), [`MetricsError::RecorderInstalled`] if a recorder other than ours was
/// installed first, [`MetricsError::Thread`] if the server thread cannot start.
pub fn serve(addr: SocketAddr) -> Result<MetricsEndpoint, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            MetricsError::AddrInUse { addr }
        } else {
            MetricsError::Bind { addr, source }
        }
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let handle = recorder()?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = thread::Builder::new()
        .name(format!("metrics-http-{}", local_addr.port()))
        .spawn({
            let stop = Arc::clone(&stop);
            move || accept_loop(&listener, &handle, &stop)
        })
        .map_err(MetricsError::Thread)?;
    Ok(MetricsEndpoint {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

/// Sends the timer service's gauges and counters (`ticktock_timers_active`,
/// `ticktock_timers_fired_total`, …) to the `metrics` facade. The service does not push them by
/// itself (only its lateness histogram), so call this periodically, or before a scrape is due.
pub fn publish_service_stats(handle: &ticktock::TimerHandle) {
    // `TimerHandle::stats` exports the snapshot as it takes it; the snapshot itself is not needed.
    let _ = handle.stats();
}

impl MetricsEndpoint {
    /// The address the endpoint listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving and waits for the server thread to finish (at most the current request's
    /// timeouts).
    fn shut_down(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // The server blocks in `accept`: a connection of our own wakes it to see the flag. If
        // that fails the thread is left to stop at its next connection rather than waited for.
        if TcpStream::connect_timeout(&wake_addr(self.local_addr), WAKE_TIMEOUT).is_ok() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The process's Prometheus handle, installing the recorder on first use.
fn recorder() -> Result<PrometheusHandle, MetricsError> {
    static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            let upkeep = handle.clone();
            // Without this thread nothing is lost: each scrape folds the samples in too.
            let _ = thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        thread::sleep(UPKEEP_PERIOD);
                        upkeep.run_upkeep();
                    }
                });
            Some(handle)
        })
        .clone()
        .ok_or(MetricsError::RecorderInstalled)
}

/// Where to connect to reach a listener bound to `local`: loopback for a wildcard address.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn accept_loop(listener: &TcpListener, handle: &PrometheusHandle, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            // A client that misbehaves only loses its own response.
            Ok((stream, _)) => {
                let _ = answer(stream, handle);
            }
            // Out of file descriptors and the like: let it pass rather than spin.
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// What a request gets.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// 200 with the metrics.
    Metrics,
    /// An error status line ("404 Not Found"), with itself as the body.
    Error(&'static str),
}

/// Reads one request and answers it, then closes the connection.
fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let reply = route(&head);
    let (status, content_type, body) = match reply {
        Reply::Metrics => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        Reply::Error(status) => (status, "text/plain; charset=utf-8", format!("{status}\n")),
    };
    let allow = if reply == Reply::Error(METHOD_NOT_ALLOWED) {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let response_head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response_head.as_bytes())?;
    if !head.starts_with("HEAD ") {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Write)
}

/// The request head (request line and headers), as text, up to [`MAX_REQUEST_HEAD`] bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while head.len() < MAX_REQUEST_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

const METHOD_NOT_ALLOWED: &str = "405 Method Not Allowed";

/// What the request line asks for: `GET` or `HEAD` of `/metrics` or `/` (query ignored).
fn route(head: &str) -> Reply {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Reply::Error("400 Bad Request");
    };
    if !version.starts_with("HTTP/1.") {
        return Reply::Error("400 Bad Request");
    }
    if method != "GET" && method != "HEAD" {
        return Reply::Error(METHOD_NOT_ALLOWED);
    }
    match target.split(['?', '#']).next().unwrap_or("") {
        "/" | "/metrics" => Reply::Metrics,
        _ => Reply::Error("404 Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request` to `addr` over a real TCP connection and returns the whole response.
    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        response
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        exchange(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    }

    fn localhost() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    /// A timer service and a batcher at work, scraped over HTTP.
    #[test]
    fn scrape_shows_service_and_batcher_series() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("build a runtime");
        let endpoint = runtime.block_on(async {
            let endpoint = serve(localhost()).expect("serve metrics");
            let service = ticktock::TimerService::builder()
                .resolution(Duration::from_millis(1))
                .start()
                .expect("start the timer service");
            let timers = service.handle();
            for millis in 1..=3 {
                timers
                    .sleep(Duration::from_millis(millis))
                    .await
                    .expect("the service is running");
            }
            let batcher = ticktock_batch::Batcher::builder()
                .name("metrics_http_test")
                .max_batch_size(4)
                .timer(timers.clone())
                .build(|numbers: Vec<u64>| async move {
                    Ok::<_, io::Error>(numbers.into_iter().map(|n| n * 2).collect())
                })
                .expect("build a batcher");
            for n in 0..5 {
                assert_eq!(batcher.call(n).await.expect("call the batcher"), n * 2);
            }
            // After shutdown every batch's figures are recorded.
            batcher.shutdown().await;
            publish_service_stats(&timers);
            service.shutdown().await;
            endpoint
        });

        let response = get(endpoint.local_addr(), "/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("Content-Type: text/plain; version=0.0.4"),
            "{response}"
        );
        for series in [
            "ticktock_timers_active ",
            "ticktock_connections_active ",
            "ticktock_timers_armed_total ",
            "ticktock_timers_fired_total ",
            "ticktock_timers_cancelled_total ",
            "ticktock_timers_reset_total ",
            "ticktock_driver_wakeups_total ",
            "ticktock_connection_rearms_total ",
            "ticktock_wheel_cascades_total ",
            "ticktock_wheel_bytes ",
            "ticktock_batch_requests_total{batcher=\"metrics_http_test\",outcome=\"served\"} 5",
            "ticktock_batch_handler_seconds_count{batcher=\"metrics_http_test\"}",
            "ticktock_batch_size_count{batcher=\"metrics_http_test\"}",
            "ticktock_batch_fill_ratio_count{batcher=\"metrics_http_test\"}",
            "ticktock_batch_latency_seconds_count{batcher=\"metrics_http_test\"} 5",
            "ticktock_batch_queue_wait_seconds_count{batcher=\"metrics_http_test\"} 5",
            "ticktock_batch_queue_depth{batcher=\"metrics_http_test\"}",
        ] {
            assert!(response.contains(series), "no `{series}` in:\n{response}");
        }
        // The recorder is process-wide and other tests publish other services' figures into
        // it, so only this test's own batcher has counts it can know exactly.
        let exact =
            "ticktock_batch_requests_total{batcher=\"metrics_http_test\",outcome=\"served\"} 5\n";
        assert!(response.contains(exact), "no `{exact}` in:\n{response}");

        // `/` serves the same; other paths and methods do not.
        assert!(get(endpoint.local_addr(), "/").contains("ticktock_timers_armed_total"));
        assert!(get(endpoint.local_addr(), "/nope").starts_with("HTTP/1.1 404 "));
        let post = exchange(
            endpoint.local_addr(),
            "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let head = exchange(endpoint.local_addr(), "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));

        // A second endpoint shares the recorder; a stopped one no longer listens.
        let second = serve(localhost()).expect("serve again");
        assert!(get(second.local_addr(), "/metrics").contains("ticktock_batch_requests_total"));
        let addr = endpoint.local_addr();
        drop(endpoint);
        assert!(TcpStream::connect(addr).is_err());
        drop(second);
    }

    #[test]
    fn taken_address_is_a_typed_error() {
        let taken = TcpListener::bind(localhost()).expect("bind a port");
        let addr = taken.local_addr().expect("its address");
        let error = serve(addr).expect_err("the port is taken");
        assert!(
            matches!(error, MetricsError::AddrInUse { addr: a } if a == addr),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&addr.to_string()) && !message.contains('\n'));
    }
}
