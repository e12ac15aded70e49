//! A configured gateway: its configuration, TLS on both legs, where verifiers come from, the
//! cancel keys in use; shared by every session.

use std::fmt;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::cancel::CancelRegistry;
use crate::client_tls::{LoadedTls, TlsHandle, TlsLoadError};
use crate::config::GatewayConfig;
use crate::drain::Drain;
use crate::error::Fatal;
use crate::traffic::Traffic;
use crate::verifiers::VerifierSource;

/// Why a gateway could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The client leg's certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsLoadError),
    /// The server leg's TLS settings.
    #[error("TLS towards the server: {0}")]
    UpstreamTls(#[from] curfew_postgres::TlsError),
    /// `require_tls` without a certificate: every client would be refused.
    #[error("require_tls is set but no tls_cert/tls_key is configured")]
    RequireTlsWithoutCertificate,
    /// The operating system gave no random bytes.
    #[error("no random bytes for the gateway's secret: {0}")]
    Random(String),
}

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) config: GatewayConfig,
    pub(crate) tls: TlsHandle,
    pub(crate) upstream_tls: Option<Arc<ClientConfig>>,
    pub(crate) verifiers: Arc<dyn VerifierSource>,
    pub(crate) cancels: CancelRegistry,
    /// Bytes relayed, live.
    pub(crate) traffic: Traffic,
    /// The stop every session's relay waits on.
    pub(crate) drain: Drain,
}

/// A gateway ready to [`crate::run`].
#[derive(Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads the TLS files and builds the server leg's TLS configuration.
    pub fn new(
        config: GatewayConfig,
        verifiers: Arc<dyn VerifierSource>,
    ) -> Result<Gateway, GatewayError> {
        let loaded = config.tls.as_ref().map(LoadedTls::load).transpose()?;
        if config.require_tls && loaded.is_none() {
            return Err(GatewayError::RequireTlsWithoutCertificate);
        }
        let upstream_tls = curfew_postgres::client_config(&config.upstream.url)?.map(Arc::new);
        let exposed = unverified_remote_hosts(&config.upstream.url);
        if !exposed.is_empty() {
            tracing::warn!(
                sslmode = config.upstream.url.sslmode.as_str(),
                hosts = %exposed.join(", "),
                "the gateway reaches the server over the network without sslmode=verify-full: a man in the middle could relay a client's SCRAM proof and log in as that user; set sslmode=verify-full and sslrootcert in the target's url"
            );
        }
        Ok(Gateway {
            shared: Arc::new(Shared {
                config,
                tls: TlsHandle::new(loaded),
                upstream_tls,
                verifiers,
                cancels: CancelRegistry::default(),
                traffic: Traffic::default(),
                drain: Drain::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    /// The client leg's TLS, to reload the certificate.
    pub fn tls(&self) -> &TlsHandle {
        &self.shared.tls
    }

    /// Bytes relayed by every session so far, live.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// Ends every session, and every one that starts from now on, with `fatal` (57P01 with
    /// a reason, say): each gets the server's bytes up to a message boundary, then the FATAL.
    pub fn end_sessions(&self, fatal: Fatal) {
        self.shared.drain.end_sessions(fatal);
    }
}

/// The server's network hosts (not loopback, not a Unix socket) when `url`'s sslmode is below
/// `verify-full`: where a proof relayed through a man in the middle would log in as the user.
fn unverified_remote_hosts(url: &curfew_postgres::ConnectionUrl) -> Vec<String> {
    if url.sslmode == curfew_postgres::SslMode::VerifyFull {
        return Vec::new();
    }
    url.hosts
        .iter()
        .filter_map(|(host, _)| match host {
            curfew_postgres::Host::Tcp(name) => Some(name),
            curfew_postgres::Host::Socket(_) => None,
        })
        .filter(|name| {
            let bare = name.trim_start_matches('[').trim_end_matches(']');
            !(bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::verifiers::{MockSalt, RoleLookup, RoleSecret, VerifierFuture};

    /// A source that serves nobody: the setup under test never asks it.
    struct NobodyServed;

    impl VerifierSource for NobodyServed {
        fn fetch<'a>(&'a self, _role: &'a str) -> VerifierFuture<'a> {
            Box::pin(async {
                Ok(RoleLookup {
                    secret: RoleSecret::NotServed,
                    mock: MockSalt {
                        salt_base64: "AAECAwQFBgcICQoLDA0ODw==".to_owned(),
                        iterations: 4096,
                    },
                })
            })
        }
    }

    fn config() -> GatewayConfig {
        let url = curfew_postgres::ConnectionUrl::parse(
            "postgresql://u@127.0.0.1:5432/postgres?sslmode=disable",
        )
        .unwrap();
        GatewayConfig::new(vec![], crate::config::UpstreamConfig { url })
    }

    #[test]
    fn a_remote_server_without_verify_full_is_named_for_the_warning() {
        let hosts = |url: &str| {
            unverified_remote_hosts(&curfew_postgres::ConnectionUrl::parse(url).unwrap())
        };
        assert_eq!(
            hosts("postgresql://u@db1.example:5432/postgres?sslmode=require"),
            vec!["db1.example"]
        );
        assert_eq!(
            hosts("postgresql://u@10.0.0.7/postgres?sslmode=verify-ca"),
            vec!["10.0.0.7"]
        );
        assert!(hosts("postgresql://u@db1.example/postgres?sslmode=verify-full").is_empty());
        for local in ["127.0.0.1", "localhost", "[::1]"] {
            assert!(
                hosts(&format!("postgresql://u@{local}/postgres?sslmode=disable")).is_empty(),
                "{local}"
            );
        }
    }

    #[test]
    fn require_tls_without_a_certificate_is_refused_at_setup() {
        let mut config = config();
        config.require_tls = true;
        let error = Gateway::new(config, Arc::new(NobodyServed)).unwrap_err();
        assert!(matches!(error, GatewayError::RequireTlsWithoutCertificate));
    }

    #[test]
    fn debug_shows_the_configuration_and_no_secret() {
        let gateway = Gateway::new(config(), Arc::new(NobodyServed)).unwrap();
        let shown = format!("{gateway:?}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
    }
}
