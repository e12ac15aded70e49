//! A configured gateway: its configuration, TLS on both legs, where verifiers come from, the
//! cancel keys in use; shared by every session.

use std::fmt;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::cancel::CancelRegistry;
use crate::client_tls::{LoadedTls, TlsHandle, TlsLoadError};
use crate::config::GatewayConfig;
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
        Ok(Gateway {
            shared: Arc::new(Shared {
                config,
                tls: TlsHandle::new(loaded),
                upstream_tls,
                verifiers,
                cancels: CancelRegistry::default(),
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
