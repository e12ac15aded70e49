//! A configured gateway: its configuration, TLS on both legs, where verifiers come from, the
//! cancel keys in use; shared by every session.

use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use curfew_audit::AuditLog;
use rustls::ClientConfig;

use crate::audit_trail::AuditTrail;
use crate::cancel::CancelRegistry;
use crate::client_tls::{LoadedTls, TlsHandle, TlsLoadError};
use crate::config::GatewayConfig;
use crate::drain::Drain;
use crate::error::Fatal;
use crate::metrics::Metrics;
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
    /// The configuration in force: a reload swaps it (what needs a restart kept as it was);
    /// a session reads it once, when it needs it.
    config: RwLock<Arc<GatewayConfig>>,
    pub(crate) tls: TlsHandle,
    pub(crate) upstream_tls: Option<Arc<ClientConfig>>,
    pub(crate) verifiers: Arc<dyn VerifierSource>,
    pub(crate) cancels: CancelRegistry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) audit: OnceLock<AuditTrail>,
    /// Bytes relayed, live.
    pub(crate) traffic: Traffic,
    /// The stop every session's relay waits on.
    pub(crate) drain: Drain,
    /// Set when the drain begins (for `/healthz`).
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// The policy whose rules end sessions (None: none enforced); a reload publishes anew.
    pub(crate) policy: tokio::sync::watch::Sender<Option<Arc<curfew_policy::Policy>>>,
    /// The warnings given, for the policy's `[notify]` hooks (a bounded queue the relay never
    /// waits on; delivered by a task started with the first enforced policy).
    pub(crate) notifier: curfew_notify::Notifier,
    /// Dropped with the gateway, it stops the delivery task.
    notify_stop: tokio::sync::watch::Sender<bool>,
    notify_started: OnceLock<()>,
    /// The `violations` rules' counts, shared by every session (per role across them).
    pub(crate) violations: Arc<crate::violations::ViolationBook>,
}

impl Shared {
    /// The configuration in force.
    pub(crate) fn config(&self) -> Arc<GatewayConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_config(&self, config: GatewayConfig) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    /// Whether the gateway is stopping.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The audit trail, when the gateway has a log.
    pub(crate) fn audit(&self) -> Option<&AuditTrail> {
        self.audit.get()
    }
}

/// One health check of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// What was checked.
    pub what: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, in words.
    pub detail: String,
}

/// A gateway ready to [`crate::run`].
#[derive(Clone)]
pub struct Gateway {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.shared.config())
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
                config: RwLock::new(Arc::new(config)),
                tls: TlsHandle::new(loaded),
                upstream_tls,
                verifiers,
                cancels: CancelRegistry::default(),
                metrics: Arc::new(Metrics::new()),
                audit: OnceLock::new(),
                traffic: Traffic::default(),
                drain: Drain::default(),
                draining: std::sync::atomic::AtomicBool::new(false),
                policy: tokio::sync::watch::Sender::new(None),
                notifier: curfew_notify::Notifier::new(),
                notify_stop: tokio::sync::watch::Sender::new(false),
                notify_started: OnceLock::new(),
                violations: Arc::new(crate::violations::ViolationBook::new()),
            }),
        })
    }

    /// Enforces `policy`'s rules on every session (issue 17): idle, idle in transaction,
    /// lifetime and windows end sessions at their deadlines, `violations` rules count the
    /// server's errors. Live sessions re-arm at once.
    ///
    /// Warnings also go to the policy's `[notify]` hooks (read at each delivery, so a reload
    /// applies to the next), from a task started here: call it inside the Tokio runtime.
    pub fn enforce(&self, policy: Arc<curfew_policy::Policy>) {
        self.shared.policy.send_replace(Some(policy));
        self.start_notify();
    }

    /// The `[notify]` delivery task, once; outside a runtime warnings stay in the audit log.
    fn start_notify(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.shared.notify_started.set(()).is_err() {
            return;
        }
        let Some(deliveries) = self.shared.notifier.take_receiver() else {
            return;
        };
        let policy = self.shared.policy.subscribe();
        let stop = self.shared.notify_stop.subscribe();
        let metrics = self.shared.metrics.clone();
        runtime.spawn(curfew_notify::run(
            deliveries,
            move || {
                policy
                    .borrow()
                    .as_ref()
                    .map(|p| p.notify.clone())
                    .unwrap_or_default()
            },
            stop,
            move |hook, _why| metrics.notify_failed(hook.as_str()),
        ));
    }

    /// Writes the gateway's audit records (`gateway_started`, `session_started`, ...) to
    /// `log`, naming `target` (the `[[target]]` it forwards to). Once: a second log is ignored
    /// (one writer per chain) and reported as false.
    pub fn audit_to(&self, log: AuditLog, target: &str) -> bool {
        let trail = AuditTrail::start(log, target.to_owned(), self.shared.metrics.clone());
        self.shared.audit.set(trail).is_ok()
    }

    /// The configuration in force (after the last reload).
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.shared.config()
    }

    /// The health checks: serving (not draining), the audit log writable (when there is
    /// one), the client leg's certificate loaded (when configured).
    pub fn health(&self) -> Vec<HealthCheck> {
        let mut checks = vec![HealthCheck {
            what: "gateway".to_owned(),
            ok: !self.shared.draining(),
            detail: if self.shared.draining() {
                "draining: stopping, no new clients".to_owned()
            } else {
                "serving".to_owned()
            },
        }];
        if self.shared.config().tls.is_some() {
            let loaded = self.shared.tls.current().is_some();
            checks.push(HealthCheck {
                what: "certificate".to_owned(),
                ok: loaded,
                detail: if loaded { "loaded" } else { "not loaded" }.to_owned(),
            });
        }
        if let Some(audit) = self.shared.audit() {
            let writable = audit.check_writable();
            checks.push(HealthCheck {
                what: "audit log".to_owned(),
                ok: writable.is_ok(),
                detail: writable.err().unwrap_or_else(|| "writable".to_owned()),
            });
        }
        checks
    }

    /// The Prometheus (OpenMetrics) text of the gateway's metrics.
    pub fn metrics_text(&self) -> String {
        let not_after = self.shared.tls.current().and_then(|tls| tls.not_after);
        self.shared
            .metrics
            .encode(self.shared.traffic.snapshot(), not_after)
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
                    locks: Vec::new(),
                    member_of: Vec::new(),
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
