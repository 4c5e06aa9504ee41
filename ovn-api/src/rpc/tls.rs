//! TLS for `ssl:` remotes: rustls with a client certificate, verifying the server against the
//! given CA (as OVN's `--private-key/--certificate/--ca-cert` do).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

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
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(remote, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_err(remote, e))
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
