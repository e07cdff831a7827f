//! The echo server: accepts every connection and echoes each bidirectional stream back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quinn::{ConnectionError, Endpoint};

use super::FirstError;

/// What the server saw go wrong (a healthy run has zeros).
#[derive(Debug, Default)]
pub struct ServerCounts {
    /// Handshakes that failed on the server's side.
    pub handshake_failures: AtomicU64,
    /// Streams whose request could not be read or whose echo could not be written.
    pub stream_errors: AtomicU64,
    /// Connections that ended other than by the client's close or an idle timeout.
    pub abnormal_ends: AtomicU64,
    /// What the first of those failures was, to print.
    pub first_error: FirstError,
}

impl ServerCounts {
    /// Counts one failure in `counter` and keeps its description if it is the server's first.
    fn failed(&self, counter: &AtomicU64, what: impl FnOnce() -> String) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.first_error.keep(what);
    }
}

/// Serves until the endpoint is closed. `max_message` bounds one request.
pub async fn serve(endpoint: Endpoint, max_message: usize, counts: Arc<ServerCounts>) {
    while let Some(incoming) = endpoint.accept().await {
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(connection) => connection,
                Err(error) => {
                    counts.failed(&counts.handshake_failures, || {
                        format!("server handshake: {error}")
                    });
                    return;
                }
            };
            let end = loop {
                match connection.accept_bi().await {
                    Ok((mut send, mut recv)) => {
                        let counts = Arc::clone(&counts);
                        // A task per stream, as a server would: one slow stream holds up no other.
                        tokio::spawn(async move {
                            let echoed = match recv.read_to_end(max_message).await {
                                Ok(data) => match send.write_all(&data).await {
                                    Ok(()) => send.finish().map_err(|e| format!("finish: {e}")),
                                    Err(e) => Err(format!("write: {e}")),
                                },
                                Err(e) => Err(format!("read: {e}")),
                            };
                            if let Err(error) = echoed {
                                counts.failed(&counts.stream_errors, || {
                                    format!("server stream {error}")
                                });
                            }
                        });
                    }
                    Err(end) => break end,
                }
            };
            if !matches!(
                end,
                ConnectionError::ApplicationClosed(_)
                    | ConnectionError::TimedOut
                    | ConnectionError::LocallyClosed
            ) {
                counts.failed(&counts.abnormal_ends, || {
                    format!("server connection ended: {end}")
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_counts_and_the_first_description_is_kept() {
        let counts = ServerCounts::default();
        counts.failed(&counts.abnormal_ends, || {
            "server connection ended: reset".into()
        });
        counts.failed(&counts.stream_errors, || "server stream read: reset".into());
        counts.failed(&counts.stream_errors, || {
            unreachable!("only the first is described")
        });
        assert_eq!(counts.abnormal_ends.load(Ordering::Relaxed), 1);
        assert_eq!(counts.stream_errors.load(Ordering::Relaxed), 2);
        assert_eq!(
            counts.first_error.get().as_deref(),
            Some("server connection ended: reset")
        );
    }
}
