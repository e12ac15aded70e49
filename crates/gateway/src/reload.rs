//! SIGHUP's reload: a new `[gateway]` and the certificate files read again. What a running
//! gateway can change (TLS, `require_tls`, `login_timeout`, `keepalive`, `max_clients`,
//! `shutdown_timeout`) applies to the clients that connect next; what it cannot (`listen`, the
//! target, `auth_url`) is named as needing a restart and kept. All or nothing: a certificate
//! that does not load keeps the old configuration whole.

use std::sync::Arc;

use curfew_postgres::TargetSpec;
use serde_json::json;

use crate::client_tls::{LoadedTls, TlsLoadError};
use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use crate::policy_map::PolicyGateway;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reloaded {
    /// The settings that changed and apply to new clients.
    pub applied: Vec<&'static str>,
    /// The settings that changed but need a restart; their old values stay.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload kept the old configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The certificate or key did not load.
    #[error(transparent)]
    Tls(#[from] TlsLoadError),
    /// `require_tls` without a certificate.
    #[error("require_tls is set but no tls_cert/tls_key is configured")]
    RequireTlsWithoutCertificate,
}

/// The configuration a running gateway moves to: `new`'s live settings, `current`'s listen
/// addresses and upstream; and which of each changed.
pub(crate) fn merge(current: &GatewayConfig, new: &GatewayConfig) -> (GatewayConfig, Reloaded) {
    let mut reloaded = Reloaded::default();
    let mut changed = |name: &'static str, differs: bool, live: bool| {
        if differs {
            if live {
                reloaded.applied.push(name);
            } else {
                reloaded.needs_restart.push(name);
            }
        }
    };
    changed("listen", current.listen != new.listen, false);
    changed("target", current.upstream != new.upstream, false);
    changed("tls_cert/tls_key", current.tls != new.tls, true);
    changed("require_tls", current.require_tls != new.require_tls, true);
    changed(
        "login_timeout",
        current.login_timeout != new.login_timeout,
        true,
    );
    changed("keepalive", current.keepalive != new.keepalive, true);
    changed("max_clients", current.max_clients != new.max_clients, true);
    changed(
        "shutdown_timeout",
        current.shutdown_timeout != new.shutdown_timeout,
        true,
    );
    let merged = GatewayConfig {
        listen: current.listen.clone(),
        upstream: current.upstream.clone(),
        ..new.clone()
    };
    (merged, reloaded)
}

impl Gateway {
    /// Reloads from `new` (the policy read again) and the certificate files (read again even
    /// when their paths did not change: a renewed certificate is the usual reason).
    /// `running_auth` is the verifier connection in use: a different `auth_url` needs a
    /// restart. Logged, counted and recorded in the audit log either way.
    pub async fn reload(
        &self,
        new: &PolicyGateway,
        running_auth: &TargetSpec,
    ) -> Result<Reloaded, ReloadError> {
        let current = self.shared.config();
        let (merged, mut reloaded) = merge(&current, &new.config);
        if new.auth.url != running_auth.url || new.auth.password_file != running_auth.password_file
        {
            reloaded.needs_restart.push("auth_url");
        }
        let loaded = match (&merged.tls, merged.require_tls) {
            (Some(files), _) => LoadedTls::load(files).map(Some).map_err(ReloadError::from),
            (None, true) => Err(ReloadError::RequireTlsWithoutCertificate),
            (None, false) => Ok(None),
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                self.reload_rejected(&e.to_string()).await;
                return Err(e);
            }
        };
        self.shared.tls.set(loaded.map(Arc::new));
        self.shared.set_config(merged);
        if let Some(policy) = &new.policy {
            self.enforce(policy.clone());
        }
        self.shared.metrics.reloaded(true);
        for setting in &reloaded.needs_restart {
            tracing::warn!(
                setting,
                "reload: {setting} changed in the policy but needs a restart of the gateway; the running value stays"
            );
        }
        tracing::info!(
            applied = ?reloaded.applied,
            needs_restart = ?reloaded.needs_restart,
            "reloaded: the policy and the certificate apply to new clients; sessions keep theirs"
        );
        if let Some(audit) = self.shared.audit() {
            audit
                .gateway_reloaded(
                    true,
                    "SIGHUP",
                    json!({
                        "applied": reloaded.applied,
                        "needs_restart": reloaded.needs_restart,
                    }),
                )
                .await;
        }
        Ok(reloaded)
    }

    /// Records a reload that failed before it reached the gateway (a policy that does not
    /// parse, say): logged loudly, counted, audited; the configuration in force stays.
    pub async fn reload_rejected(&self, why: &str) {
        tracing::error!(
            error = why,
            "RELOAD FAILED: the gateway keeps its running configuration and certificate"
        );
        self.shared.metrics.reloaded(false);
        if let Some(audit) = self.shared.audit() {
            audit
                .gateway_reloaded(false, why, json!({ "error": why }))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::config::{TlsFiles, UpstreamConfig};

    fn config(port: u16) -> GatewayConfig {
        let url = curfew_postgres::ConnectionUrl::parse(&format!(
            "postgresql://u@127.0.0.1:{port}/postgres?sslmode=disable"
        ))
        .unwrap();
        GatewayConfig::new(
            vec!["127.0.0.1:6432".parse().unwrap()],
            UpstreamConfig { url },
        )
    }

    #[test]
    fn live_settings_apply_and_the_rest_waits_for_a_restart() {
        let current = config(5432);
        let mut new = config(5433);
        new.listen = vec!["127.0.0.1:7000".parse().unwrap()];
        new.max_clients = 5;
        new.login_timeout = Duration::from_secs(3);
        new.require_tls = true;
        new.tls = Some(TlsFiles {
            cert: "/c".into(),
            key: "/k".into(),
        });
        let (merged, reloaded) = merge(&current, &new);
        assert_eq!(
            reloaded.applied,
            [
                "tls_cert/tls_key",
                "require_tls",
                "login_timeout",
                "max_clients"
            ]
        );
        assert_eq!(reloaded.needs_restart, ["listen", "target"]);
        assert_eq!(merged.listen, current.listen);
        assert_eq!(merged.upstream, current.upstream);
        assert_eq!(merged.max_clients, 5);
        assert_eq!(merged.login_timeout, Duration::from_secs(3));
        assert!(merged.require_tls);
    }

    #[test]
    fn the_same_policy_changes_nothing() {
        let (merged, reloaded) = merge(&config(5432), &config(5432));
        assert_eq!(reloaded, Reloaded::default());
        assert_eq!(merged.max_clients, config(5432).max_clients);
    }
}
