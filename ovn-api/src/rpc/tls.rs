//! TLS for `ssl:` remotes: rustls with a client certificate, verifying the server against the
//! given CA (as OVN's `--private-key/--certificate/--ca-cert` do), and, when
//! [`TlsConfig::check_server_name`] asks, its name against the remote's host.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::UnixTime;
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::remote::{Remote, TlsConfig};
use crate::error::{Error, Result};

fn tls_err(remote: &Remote, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        remote: remote.to_string(),
        reason: reason.to_string(),
    }
}

/// Builds the rustls client configuration from PEM files.
pub(crate) fn client_config(remote: &Remote, cfg: &TlsConfig) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&cfg.ca_cert)
        .map_err(|e| tls_err(remote, format!("CA {}: {e}", cfg.ca_cert.display())))?;
    for ca in cas {
        let ca = ca.map_err(|e| tls_err(remote, format!("CA {}: {e}", cfg.ca_cert.display())))?;
        roots
            .add(ca)
            .map_err(|e| tls_err(remote, format!("CA {}: {e}", cfg.ca_cert.display())))?;
    }
    if roots.is_empty() {
        return Err(tls_err(
            remote,
            format!("CA {}: no PEM certificate in it", cfg.ca_cert.display()),
        ));
    }
    let chain = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| tls_err(remote, format!("certificate {}: {e}", cfg.cert.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err(remote, format!("certificate {}: {e}", cfg.cert.display())))?;
    if chain.is_empty() {
        return Err(tls_err(
            remote,
            format!(
                "certificate {}: no PEM certificate in it",
                cfg.cert.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| tls_err(remote, format!("key {}: {e}", cfg.key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(remote, e))?;
    let builder = if cfg.check_server_name {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_err(remote, format!("CA {}: {e}", cfg.ca_cert.display())))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
    };
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_err(remote, e))
}

/// The server check of OVN's own clients: rustls' WebPKI verification (chain to the CA,
/// validity period, server usage, signatures) with one difference, a certificate that does not
/// name the host is accepted. WebPKI checks the name last, after the chain, so an answer of
/// "not valid for name" means everything else held.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(tokio_rustls::rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Loads `cfg`'s files as a connection to `remote` would, so that a missing or unreadable
/// file, a key that does not match, or a CA that is not a certificate shows at start-up
/// instead of at every reconnect.
pub(crate) fn check(remote: &Remote, cfg: &TlsConfig) -> Result<()> {
    client_config(remote, cfg).map(drop)
}

/// Runs the TLS handshake on a connected TCP stream.
pub(crate) async fn connect(
    remote: &Remote,
    host: &str,
    tcp: TcpStream,
    cfg: &TlsConfig,
) -> Result<TlsStream<TcpStream>> {
    let config = client_config(remote, cfg)?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| tls_err(remote, e))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| tls_err(remote, format!("handshake: {e}")))
}
