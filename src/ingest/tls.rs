//! Optional TLS for the ingest server (rustls with the aws-lc-rs provider, TLS 1.2 and 1.3).
//!
//! The certificate chain and key are PEM files named by `server.tls_cert_file` and
//! `server.tls_key_file`; they are read once at start-up (restart to rotate them). Errors name the key
//! and the file but never print key material.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ConfigError;

fn invalid(key: &str, path: &Path, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: format!("{}: {message}", path.display()),
    }
}

/// A TLS acceptor for the given PEM files.
pub fn acceptor(
    cert_file: &Path,
    key_file: &Path,
) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| invalid("server.tls_cert_file", cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("server.tls_cert_file", cert_file, e))?;
    if certs.is_empty() {
        return Err(invalid(
            "server.tls_cert_file",
            cert_file,
            "no PEM certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
        invalid(
            "server.tls_key_file",
            key_file,
            "cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from the file",
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("server.tls_cert_file", cert_file, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("server.tls_key_file", key_file, e))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
