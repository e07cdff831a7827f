//! The echo server: accepts every connection and echoes each bidirectional stream back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quinn::{ConnectionError, Endpoint};

/// What the server saw go wrong (a healthy run has zeros).
#[derive(Debug, Default)]
pub struct ServerCounts {
    /// Handshakes that failed on the server's side.
    pub handshake_failures: AtomicU64,
    /// Streams whose request could not be read or whose echo could not be written.
    pub stream_errors: AtomicU64,
    /// Connections that ended other than by the client's close or an idle timeout.
    pub abnormal_ends: AtomicU64,
}

/// Serves until the endpoint is closed. `max_message` bounds one request.
pub async fn serve(endpoint: Endpoint, max_message: usize, counts: Arc<ServerCounts>) {
    while let Some(incoming) = endpoint.accept().await {
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                counts.handshake_failures.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let end = loop {
                match connection.accept_bi().await {
                    Ok((mut send, mut recv)) => {
                        let counts = Arc::clone(&counts);
                        // A task per stream, as a server would: one slow stream holds up no other.
                        tokio::spawn(async move {
                            let echoed = match recv.read_to_end(max_message).await {
                                Ok(data) => {
                                    send.write_all(&data).await.is_ok() && send.finish().is_ok()
                                }
                                Err(_) => false,
                            };
                            if !echoed {
                                counts.stream_errors.fetch_add(1, Ordering::Relaxed);
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
                counts.abnormal_ends.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}
