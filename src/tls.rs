//! TLS for both listeners from PEM files (`SUMMIT_TLS_CERT_FILE`, `SUMMIT_TLS_KEY_FILE`).
//! Handshakes are completed by `crate::connections`, off the accept loops, within the header
//! read timeout.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::settings::Settings;

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn read(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let cert = std::fs::read(&self.cert)
            .with_context(|| format!("reading the TLS certificate {}", self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .with_context(|| format!("reading the TLS key {}", self.key.display()))?;
        Ok((cert, key))
    }
}

/// The configured files, checked by building a server configuration from them now (a bad
/// file stops the start, rather than failing every handshake).
pub fn tls_config(settings: &Settings) -> anyhow::Result<Option<TlsFiles>> {
    let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) else {
        return Ok(None);
    };
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    server_config(&files, &[b"h2".to_vec(), b"http/1.1".to_vec()])?;
    Ok(Some(files))
}

pub fn server_config(
    files: &TlsFiles,
    alpn: &[Vec<u8>],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_pem, key_pem) = files.read()?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the TLS certificate chain")?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {}",
        files.cert.display()
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .context("parsing the TLS key")?
        .with_context(|| format!("no private key in {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}
