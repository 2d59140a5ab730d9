//! TLS for servers (rustls, ring): a certificate and key, optionally a client CA
//! that makes it mutual TLS, reloaded when the files change.

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::Args;
use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio_util::sync::CancellationToken;

use crate::reload::{LoadError, Reloading};

/// The TLS flags of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TlsOptions {
    /// PEM certificate chain; with --tls-key, the server speaks TLS only.
    #[arg(long, env = "QUARTET_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the certificate.
    #[arg(long, env = "QUARTET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[arg(long, env = "QUARTET_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsOptions {
    /// A server configuration that re-reads its files every `interval`, or `None`
    /// for plaintext.
    pub fn server_config(
        &self,
        interval: Duration,
        stop: CancellationToken,
    ) -> Result<Option<Reloading<ServerConfig>>, LoadError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut paths = vec![cert.clone(), key.clone()];
        paths.extend(self.tls_client_ca.clone());
        let names: Vec<String> = paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        Reloading::start(
            "tls certificate",
            paths,
            interval,
            move |files| build_server_config(files, &names),
            stop,
        )
        .map(Some)
    }
}

fn invalid(path: &str, reason: impl std::fmt::Display) -> LoadError {
    LoadError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Parses every certificate in a PEM file.
pub fn parse_certificates(
    pem: &[u8],
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|error| invalid(path, error))?;
    if certificates.is_empty() {
        return Err(invalid(path, "no certificate in the file"));
    }
    Ok(certificates)
}

/// Builds a server configuration from (cert, key, [client CA]) file contents.
fn build_server_config(files: &[Vec<u8>], names: &[String]) -> Result<ServerConfig, LoadError> {
    let chain = parse_certificates(&files[0], &names[0])?;
    let key =
        PrivateKeyDer::from_pem_slice(&files[1]).map_err(|error| invalid(&names[1], error))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(&names[0], error))?;
    let builder = match files.get(2) {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in parse_certificates(ca, &names[2])? {
                roots
                    .add(certificate)
                    .map_err(|error| invalid(&names[2], error))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| invalid(&names[2], error))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| invalid(&names[0], error))?;
    // gRPC is HTTP/2 only; clients (grpc-go in particular) insist on ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
