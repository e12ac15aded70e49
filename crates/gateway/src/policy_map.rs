//! A policy's `[gateway]` as the gateway's own configuration, and the connection its verifier
//! lookups use (`auth_url`).

use std::path::PathBuf;
use std::sync::Arc;

use curfew_policy::Policy;
use curfew_postgres::{ConnectionUrl, TargetSpec, TargetUrlError, UrlError};

use crate::config::{GatewayConfig, Keepalive, TlsFiles, UpstreamConfig};

/// Why a policy gives no gateway configuration.
#[derive(Debug, thiserror::Error)]
pub enum PolicyGatewayError {
    /// No `[gateway]` section.
    #[error("the policy has no [gateway] section")]
    NoGateway,
    /// `target` names no `[[target]]`.
    #[error("[gateway] target = \"{0}\" names no [[target]]")]
    UnknownTarget(String),
    /// The target's URL is not a PostgreSQL URL.
    #[error(transparent)]
    TargetUrl(#[from] TargetUrlError),
    /// `auth_url` is not a PostgreSQL URL.
    #[error("[gateway] auth_url: {0}")]
    AuthUrl(#[source] UrlError),
}

/// What a policy's `[gateway]` describes.
#[derive(Debug, Clone)]
pub struct PolicyGateway {
    /// The gateway's configuration.
    pub config: GatewayConfig,
    /// Where verifiers are fetched, as the gateway's own role (for
    /// [`crate::AuthFunctionSource`]).
    pub auth: TargetSpec,
    /// The whole policy, whose rules the gateway enforces ([`crate::Gateway::enforce`]); None:
    /// a reload that keeps the rules in force.
    pub policy: Option<Arc<Policy>>,
}

impl PolicyGateway {
    /// Maps `policy`'s `[gateway]`: listen addresses, the target's URL as the upstream, TLS
    /// files, limits and timeouts, and `auth_url` with its password file: `auth_password_file`
    /// when given, else the target's `password_file` when `auth_url` is the target's own URL.
    pub fn from_policy(policy: &Policy) -> Result<PolicyGateway, PolicyGatewayError> {
        let gateway = policy
            .gateway
            .as_ref()
            .ok_or(PolicyGatewayError::NoGateway)?;
        let target = policy
            .targets
            .iter()
            .find(|t| t.name == gateway.target)
            .ok_or_else(|| PolicyGatewayError::UnknownTarget(gateway.target.clone()))?;
        let upstream = TargetSpec::from_policy(target)?;
        let auth_is_target = gateway.auth_url.text == target.url.text;
        let auth = TargetSpec {
            name: format!("{} (gateway auth)", target.name),
            url: ConnectionUrl::parse(&gateway.auth_url.text)
                .map_err(PolicyGatewayError::AuthUrl)?,
            password_file: match &gateway.auth_password_file {
                Some(own) => Some(PathBuf::from(own)),
                None if auth_is_target => target.password_file.as_ref().map(PathBuf::from),
                None => None,
            },
        };
        let mut config =
            GatewayConfig::new(gateway.listen.clone(), UpstreamConfig { url: upstream.url });
        config.tls = gateway.tls.as_ref().map(|tls| TlsFiles {
            cert: PathBuf::from(&tls.cert),
            key: PathBuf::from(&tls.key),
        });
        config.require_tls = gateway.require_tls;
        config.max_clients = usize::try_from(gateway.max_clients).unwrap_or(usize::MAX);
        config.login_timeout = gateway.login_timeout.to_std();
        config.shutdown_timeout = gateway.shutdown_timeout.to_std();
        config.keepalive = gateway.keepalive.map(|idle| Keepalive {
            idle: idle.to_std(),
            ..Keepalive::default()
        });
        Ok(PolicyGateway {
            config,
            auth,
            policy: Some(Arc::new(policy.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn policy(gateway: &str) -> Policy {
        let text = format!(
            "[[target]]\nname = \"primary\"\nurl = \"postgresql://curfew_agent@db1:5433/postgres?sslmode=verify-full&sslrootcert=/etc/ca.pem\"\npassword_file = \"/etc/curfew/pw\"\n{gateway}"
        );
        curfew_policy::parse_policy_with(
            "t.toml",
            &text,
            jiff::tz::db(),
            &[&curfew_postgres::POSTGRES_URLS],
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
    }

    #[test]
    fn a_gateway_section_maps_onto_the_config() {
        let mapped = PolicyGateway::from_policy(&policy(
            "[gateway]\nlisten = [\"127.0.0.1:6432\", \"[::1]:6432\"]\ntarget = \"primary\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\nrequire_tls = true\nmax_clients = 7\nlogin_timeout = \"3s\"\nkeepalive = \"45s\"\n",
        ))
        .unwrap();
        let config = &mapped.config;
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.upstream.url.hosts.len(), 1);
        assert_eq!(config.upstream.url.hosts[0].1, 5433);
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        assert!(config.require_tls);
        assert_eq!(config.max_clients, 7);
        assert_eq!(config.login_timeout, Duration::from_secs(3));
        assert_eq!(config.keepalive.unwrap().idle, Duration::from_secs(45));
        // auth_url defaults to the target's URL, with its password file.
        assert_eq!(mapped.auth.url.user, "curfew_agent");
        assert_eq!(mapped.auth.password_file, Some("/etc/curfew/pw".into()));
    }

    #[test]
    fn an_auth_url_of_its_own_has_no_password_file_of_the_target() {
        let mapped = PolicyGateway::from_policy(&policy(
            "[gateway]\ntarget = \"primary\"\nauth_url = \"postgresql://curfew_gateway@db1:5433/postgres\"\nkeepalive = \"0s\"\n",
        ))
        .unwrap();
        assert_eq!(mapped.auth.url.user, "curfew_gateway");
        assert_eq!(mapped.auth.password_file, None);
        assert_eq!(mapped.config.keepalive, None);
    }

    #[test]
    fn an_auth_url_of_its_own_takes_its_own_password_file() {
        let mapped = PolicyGateway::from_policy(&policy(
            "[gateway]\ntarget = \"primary\"\nauth_url = \"postgresql://curfew_gateway@db1:5433/postgres\"\nauth_password_file = \"gateway.pw\"\n",
        ))
        .unwrap();
        assert_eq!(mapped.auth.url.user, "curfew_gateway");
        // As written, like a target's password_file (relative to the working directory).
        assert_eq!(mapped.auth.password_file, Some("gateway.pw".into()));
    }

    #[test]
    fn no_gateway_section_is_a_clear_error() {
        let err = PolicyGateway::from_policy(&policy("")).unwrap_err();
        assert_eq!(err.to_string(), "the policy has no [gateway] section");
    }
}
