//! TLS with rustls (ring): the certificate chain and key from PEM files, HTTP/2 and
//! HTTP/1.1 offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::ServeError;

pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    let bad = |what, path: &Path, reason: String| ServeError::Tls { what, path: path.to_path_buf(), reason };
    let read = |path: &Path, action| {
        std::fs::read(path).map_err(|source| ServeError::File { action, path: path.to_path_buf(), source })
    };
    let cert_pem = read(cert, "reading the TLS certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("certificate", cert, "it holds no PEM CERTIFICATE".into()));
    }
    let key_pem = read(key, "reading the TLS key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad("key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("configuration for", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad("certificate and key", cert, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
