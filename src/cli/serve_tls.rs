//! HTTPS for `yimen serve --tls-cert FILE --tls-key FILE`: rustls with aws-lc-rs (the provider
//! reqwest already brings: one TLS provider in the process), served by axum-server. The PEM
//! files are read and checked before the server listens, so that a wrong file stops the start
//! with a message naming it and what is wrong with it.

use anyhow::{Context, bail};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The server's TLS configuration: the certificate chain of the PEM file `cert` (the server's
/// own certificate first) and the private key of the PEM file `key` (PKCS#8, PKCS#1 or SEC1),
/// which must belong to it. HTTP/2 and HTTP/1.1 are offered.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain = certificates(cert)?;
    let private_key = private_key(key)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                "the private key {} does not belong to the certificate {}: give the key the \
                 certificate was issued for",
                key.display(),
                cert.display()
            ),
            other => anyhow::anyhow!(
                "the private key {} cannot be used with the certificate {}: {other}",
                key.display(),
                cert.display()
            ),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the TLS {what} {}", path.display()))
}

/// Every certificate of a PEM file, in order; at least one.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(path, "certificate", e))?;
    if chain.is_empty() {
        bail!(
            "{} holds no PEM certificate (a `-----BEGIN CERTIFICATE-----` block): give the \
             server's certificate, followed by the certificates of its chain",
            path.display()
        );
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = read(path, "private key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => bail!(
            "{} holds no PEM private key (a `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY` block; an encrypted key is not read): give the certificate's \
             private key",
            path.display()
        ),
        Err(e) => Err(unreadable(path, "private key", e)),
    }
}

fn unreadable(path: &Path, what: &str, error: pem::Error) -> anyhow::Error {
    let why = match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block has no end line `-----END {}-----`",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "the line `{}` does not read as the start of a block",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(why) => format!("a block is not base64 ({why})"),
        other => other.to_string(),
    };
    anyhow::anyhow!(
        "the TLS {what} {} is not readable PEM: {why}; give a PEM file (text with \
         `-----BEGIN …-----` and `-----END …-----` lines)",
        path.display()
    )
}
