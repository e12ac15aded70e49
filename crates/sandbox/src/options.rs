//! What kind of cluster to start.

use std::fmt;
use std::path::PathBuf;

/// How TCP connections to the cluster authenticate.
///
/// The Unix socket always uses `trust`, so [`crate::Cluster::psql`] can set
/// things up as the superuser without a password.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    /// Every TCP connection from loopback is accepted without a password.
    #[default]
    Trust,
    /// TCP connections authenticate with `scram-sha-256`.
    Scram,
}

/// A server certificate chain and its private key, both PEM encoded.
#[derive(Clone)]
pub struct TlsFiles {
    /// The server certificate, optionally followed by intermediates (PEM).
    pub cert_pem: String,
    /// The server's private key (PEM).
    pub key_pem: String,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Options for [`crate::Cluster::start`]; `Options::default()` gives a
/// trust-authenticated cluster without TLS.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Authentication for TCP connections.
    pub auth: Auth,
    /// When set, the server enables TLS with these files. Combined with
    /// [`Auth::Scram`], non-TLS TCP connections are rejected.
    pub tls: Option<TlsFiles>,
    /// `max_connections` for the server (PostgreSQL's default when `None`).
    pub max_connections: Option<u32>,
    /// Extra `postgresql.conf` settings as (name, value); values are quoted
    /// for you. They are written last, so they override the sandbox defaults.
    pub settings: Vec<(String, String)>,
    /// Directory of the server binaries; [`crate::find_binaries`] when `None`.
    pub bin_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_private_key() {
        let tls = TlsFiles {
            cert_pem: "CERT".into(),
            key_pem: "SECRET".into(),
        };
        let shown = format!("{tls:?}");
        assert!(shown.contains("CERT"));
        assert!(!shown.contains("SECRET"));
    }

    #[test]
    fn default_is_trust_without_tls() {
        let options = Options::default();
        assert_eq!(options.auth, Auth::Trust);
        assert!(options.tls.is_none());
    }
}
