//! The client leg's TLS: the certificate and key loaded from files into a rustls server
//! configuration (TLS 1.2 and 1.3, ALPN `postgresql`), held in a handle a reload can swap
//! while sessions keep the configuration they started with.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// The ALPN protocol name PostgreSQL 17 uses, required for direct TLS.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    /// A file that cannot be read or holds nothing usable.
    #[error("cannot use the gateway's {what} {path}: {reason}")]
    File {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: String,
        /// Why (never the key's content).
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("the gateway's certificate and key cannot be used together: {0}")]
    Config(#[source] rustls::Error),
}

/// A loaded certificate: the server configuration and the DER of the leaf certificate (for
/// SCRAM's `tls-server-end-point` channel binding).
#[derive(Debug)]
pub struct LoadedTls {
    /// The rustls configuration (TLS 1.2+, ALPN `postgresql`).
    pub config: Arc<ServerConfig>,
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
    /// The leaf's notAfter, Unix seconds (None when its DER does not parse), for the metrics.
    pub not_after: Option<i64>,
}

impl LoadedTls {
    /// Loads the certificate chain and key from `files`.
    pub fn load(files: &TlsFiles) -> Result<LoadedTls, TlsLoadError> {
        let chain = load_chain(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsLoadError::File {
            what: "private key",
            path: files.key.display().to_string(),
            reason: e.to_string(),
        })?;
        let leaf_der = chain.first().map(|c| c.to_vec()).unwrap_or_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsLoadError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsLoadError::Config)?;
        // A client that offers ALPN must offer postgresql (rustls refuses others); a client
        // after an SSLRequest may offer none, as libpq before 17 does.
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        let not_after = not_after(&leaf_der);
        Ok(LoadedTls {
            config: Arc::new(config),
            leaf_der,
            not_after,
        })
    }
}

/// The certificate's notAfter in Unix seconds; None for DER that does not parse (rustls has
/// accepted it, so only the expiry gauge is lost).
fn not_after(der: &[u8]) -> Option<i64> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    let after = certificate.tbs_certificate.validity.not_after;
    i64::try_from(after.to_unix_duration().as_secs()).ok()
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsLoadError> {
    let file_error = |reason: String| TlsLoadError::File {
        what: "certificate",
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error("no PEM certificate in it".to_owned()));
    }
    Ok(chain)
}

/// The TLS configuration in force, swappable on reload: a new handshake uses the newest,
/// sessions already running keep theirs.
#[derive(Debug, Clone, Default)]
pub struct TlsHandle {
    current: Arc<RwLock<Option<Arc<LoadedTls>>>>,
}

impl TlsHandle {
    /// A handle holding `tls` (None: TLS refused).
    pub fn new(tls: Option<LoadedTls>) -> TlsHandle {
        TlsHandle {
            current: Arc::new(RwLock::new(tls.map(Arc::new))),
        }
    }

    /// Loads `files` and swaps them in; on an error the old configuration stays.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsLoadError> {
        let loaded = Arc::new(LoadedTls::load(files)?);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some(loaded);
        Ok(())
    }

    /// Swaps in `tls` (None: TLS refused from now on) for new handshakes.
    pub(crate) fn set(&self, tls: Option<Arc<LoadedTls>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = tls;
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Option<Arc<LoadedTls>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use curfew_sandbox::TestPki;
    use curfew_testkit::TempDir;

    #[test]
    fn a_certificate_and_its_key_load_with_alpn_postgresql() {
        let dir = TempDir::new("gateway-unit", "tls-load");
        let pki = TestPki::generate(&["localhost"]).unwrap();
        let files = TlsFiles {
            cert: dir.write("c.pem", &pki.server.cert_pem, 0o644),
            key: dir.write("k.pem", &pki.server.key_pem, 0o600),
        };
        let loaded = LoadedTls::load(&files).unwrap();
        assert_eq!(loaded.config.alpn_protocols, [ALPN_POSTGRESQL.to_vec()]);
        assert!(!loaded.leaf_der.is_empty());
        // rcgen's default validity ends in 4096; anything after now and parsed is the point.
        let now = jiff::Timestamp::now().as_second();
        let after = loaded.not_after.expect("notAfter parsed");
        assert!(after > now, "notAfter {after} not after now {now}");
        assert_eq!(not_after(b"not DER"), None);
    }

    #[test]
    fn bad_files_are_named_and_the_key_is_never_shown() {
        let dir = TempDir::new("gateway-unit", "tls-bad");
        let pki = TestPki::generate(&["localhost"]).unwrap();
        let other = TestPki::generate(&["localhost"]).unwrap();
        let cert = dir.write("c.pem", &pki.server.cert_pem, 0o644);
        let missing = TlsFiles {
            cert: dir.join("none.pem"),
            key: dir.write("k.pem", &pki.server.key_pem, 0o600),
        };
        let error = LoadedTls::load(&missing).unwrap_err().to_string();
        assert!(
            error.contains("certificate") && error.contains("none.pem"),
            "{error}"
        );
        let not_a_cert = TlsFiles {
            cert: dir.write("empty.pem", "no PEM here\n", 0o644),
            key: missing.key.clone(),
        };
        let error = LoadedTls::load(&not_a_cert).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
        let mismatched = TlsFiles {
            cert,
            key: dir.write("other.pem", &other.server.key_pem, 0o600),
        };
        let error = LoadedTls::load(&mismatched).unwrap_err().to_string();
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}
