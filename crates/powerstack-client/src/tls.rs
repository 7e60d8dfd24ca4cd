//! TLS for the site's clients (rustls on the ring provider): whom to trust — the site's CA
//! bundle when one is given, else the system's trust store (read once per process) — the
//! handshake over a connected TCP stream, and its failures in words that say what to do.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The largest PEM file read, bytes.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// The ALPN protocol offered and served: HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The ring crypto provider, the one both sides use. rustls 0.23.48 marks it deprecated for
/// lacking post-quantum key exchange; it is the provider chosen here for its build time
/// (aws-lc-rs, which has it, is slow to build), with classical key exchange (X25519, P-256).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The text of a PEM file (at most [`MAX_PEM_BYTES`]); the error is one line without the path.
pub fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    // The caller's message names the path.
    powerstack_file::read(path, "PEM file", MAX_PEM_BYTES).map_err(|e| e.problem().to_string())
}

/// The certificates of a PEM file, in order (at least one); the error is one line without the
/// path.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A client configuration trusting `roots`, offering HTTP/1.1.
fn config_trusting(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Whom a TLS client trusts.
#[derive(Clone)]
pub struct Trust {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trust")
    }
}

impl Trust {
    /// The CA certificates of the PEM bundle at `path`; the error is one line naming the file.
    pub fn ca_file(path: &Path) -> Result<Trust, String> {
        let fail = |why: String| format!("CA file {}: {why}", path.display());
        let mut roots = RootCertStore::empty();
        for (i, cert) in read_certificates(path).map_err(fail)?.into_iter().enumerate() {
            roots
                .add(cert)
                .map_err(|e| fail(format!("certificate {} is not a usable CA: {e}", i + 1)))?;
        }
        Ok(Trust { config: config_trusting(roots).map_err(fail)? })
    }

    /// The system's trust store, read once per process.
    pub fn system() -> Result<Trust, String> {
        static SYSTEM: OnceLock<Result<Trust, String>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
                    return Err(format!(
                        "no CA certificate found in the system's trust store{why}: give the site CA with --site-ca FILE"
                    ));
                }
                Ok(Trust { config: config_trusting(roots)? })
            })
            .clone()
    }

    /// The handshake with `host` (a DNS name or an IP address, checked against the server's
    /// certificate) over `tcp`, whose timeouts bound it.
    pub fn handshake(
        &self,
        host: &str,
        mut tcp: TcpStream,
    ) -> Result<StreamOwned<ClientConnection, TcpStream>, Failure> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            Failure::Tls(format!("{host:?} is neither a DNS name nor an IP address"))
        })?;
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| Failure::Tls(e.to_string()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).map_err(|e| handshake_failure(host, e))?;
        }
        Ok(StreamOwned::new(conn, tcp))
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum Failure {
    /// A TLS failure, in words that say what to do: trying again will not help.
    Tls(String),
    /// The transport failed (timeout, reset): perhaps transient.
    Io(io::Error),
}

fn handshake_failure(host: &str, e: io::Error) -> Failure {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => Failure::Tls(
                "the server closed the connection during the TLS handshake: is it serving https, or plain http (then use http://)?".into(),
            ),
            _ => Failure::Io(e),
        };
    };
    Failure::Tls(match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a CA this client trusts: give the site CA with --site-ca FILE".into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for the name {host} (name mismatch): use a name the certificate lists, or issue it for {host}"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "the server's certificate has expired or is not valid yet: renew it (or check the clocks)"
            .into(),
        rustls::Error::InvalidCertificate(c) => format!("the server's certificate is refused: {c:?}"),
        rustls::Error::InvalidMessage(_) => {
            "the server did not answer in TLS: is it serving plain http (then use http://)?".into()
        }
        rustls::Error::AlertReceived(a) => format!("the server refused the TLS handshake ({a:?})"),
        other => format!("TLS handshake: {other}"),
    })
}

/// Whether `bytes` begin like a TLS record (an alert or a handshake, TLS 1.x): what a TLS
/// server sends back to a plain HTTP request.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}
