//! A QUIC echo server and client in one process, their timers on ticktock's global service.
//!
//! ```sh
//! cargo run -p ticktock-quinn --example echo -- "hello, ticktock"
//! ```

use std::net::Ipv4Addr;
use std::sync::Arc;

use quinn::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Endpoint, EndpointConfig, ServerConfig};
use ticktock_quinn::TicktockRuntime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "hello, ticktock".to_owned());
    // The one line that puts quinn's timers on ticktock: every endpoint gets this runtime.
    let runtime = Arc::new(TicktockRuntime::global());

    // A self-signed certificate for "localhost", trusted by the client.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let server_config = ServerConfig::with_single_cert(vec![cert.clone()], key)?;
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client_config = ClientConfig::with_root_certificates(Arc::new(roots))?;

    let server = Endpoint::new(
        EndpointConfig::default(),
        Some(server_config),
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?,
        runtime.clone(),
    )?;
    let server_addr = server.local_addr()?;
    let accepting = server.clone();
    tokio::spawn(async move {
        // Echo every stream of every connection.
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                    if let Ok(data) = recv.read_to_end(64 * 1024).await {
                        let _ = send.write_all(&data).await;
                        let _ = send.finish();
                    }
                }
            });
        }
    });

    let mut client = Endpoint::new(
        EndpointConfig::default(),
        None,
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?,
        runtime.clone(),
    )?;
    client.set_default_client_config(client_config);
    let connection = client.connect(server_addr, "localhost")?.await?;
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(message.as_bytes()).await?;
    send.finish()?;
    let echoed = recv.read_to_end(64 * 1024).await?;
    println!("echoed: {}", String::from_utf8_lossy(&echoed));
    println!("rtt: {:?}", connection.rtt());

    connection.close(0u32.into(), b"bye");
    client.wait_idle().await;
    server.close(0u32.into(), b"");
    server.wait_idle().await;
    println!("timer operations: {:?}", runtime.stats());
    Ok(())
}
