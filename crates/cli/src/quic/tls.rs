//! The run's TLS: one self-signed certificate for "localhost", made at start with rcgen, and
//! the quinn server and client configurations around it.

use std::sync::Arc;
use std::time::Duration;

use quinn::rustls::RootCertStore;
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, IdleTimeout, ServerConfig, TransportConfig, VarInt};

use crate::error::CliError;

/// The name the certificate is for and the clients ask for.
pub const SERVER_NAME: &str = "localhost";

/// A certificate and its key, made once per run and used by every endpoint.
pub struct Identity {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    /// A fresh self-signed certificate for [`SERVER_NAME`].
    pub fn generate() -> Result<Self, CliError> {
        let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .map_err(|error| CliError::Quic(format!("could not make a certificate: {error}")))?;
        Ok(Self {
            cert: certified.cert.der().clone(),
            key_der: certified.key_pair.serialize_der(),
        })
    }

    /// The server's configuration: this certificate, the run's transport settings.
    pub fn server_config(&self, transport: Arc<TransportConfig>) -> Result<ServerConfig, CliError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::with_single_cert(vec![self.cert.clone()], key)
            .map_err(|error| CliError::Quic(format!("bad server certificate: {error}")))?;
        config.transport_config(transport);
        Ok(config)
    }

    /// The clients' configuration: trust this certificate only.
    pub fn client_config(&self, transport: Arc<TransportConfig>) -> Result<ClientConfig, CliError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .map_err(|error| CliError::Quic(format!("bad root certificate: {error}")))?;
        let mut config = ClientConfig::with_root_certificates(Arc::new(roots))
            .map_err(|error| CliError::Quic(format!("bad client configuration: {error}")))?;
        config.transport_config(transport);
        Ok(config)
    }
}

/// Transport settings for both sides: the idle timeout, and room for every client's streams.
pub fn transport(idle_timeout: Duration) -> Result<Arc<TransportConfig>, CliError> {
    let idle = IdleTimeout::try_from(idle_timeout)
        .map_err(|_| CliError::Invalid(format!("--idle-timeout {idle_timeout:?} is too long")))?;
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(VarInt::from_u32(64))
        .max_concurrent_uni_streams(VarInt::from_u32(0));
    Ok(Arc::new(transport))
}
