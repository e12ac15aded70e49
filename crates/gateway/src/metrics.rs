//! The gateway's Prometheus metrics: clients and sessions now, sessions started and ended,
//! bytes each way, failed logins by cause, refusals by reason, reloads, the drain, and the
//! policy's work per rule (warnings, sessions ended, violations counted by SQLSTATE, logins
//! refused: labels bounded by the policy's rules and their `sqlstates`). Encoded as
//! text for the HTTP endpoint the binary serves (`curfew_observe::serve_scrape`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::sync::{Mutex, PoisonError};

use crate::error::{SessionError, sqlstate};
use crate::traffic::RelayTotals;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HowLabels {
    how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// A policy rule, by name (bounded: the operator's policy names them, never a client).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

/// A `[notify]` hook.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: &'static str,
}

/// A `violations` rule and one SQLSTATE of its own list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    rule: String,
    sqlstate: String,
}

/// Why the gateway turned a client away before authenticating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over `max_clients` (FATAL 53300).
    MaxClients,
    /// A plaintext client while `require_tls` is set (FATAL 28000).
    RequireTls,
    /// Authentication did not finish within `login_timeout` (FATAL 57014, or closed).
    LoginTimeout,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::MaxClients => "max_clients",
            Refusal::RequireTls => "require_tls",
            Refusal::LoginTimeout => "login_timeout",
        }
    }
}

/// The cause of a failed login, for operators (the client was told only what PostgreSQL would
/// tell it): `password` (the SCRAM proof failed: a wrong password, or a role the gateway does
/// not serve), `server_refused` (the server refused the login after SCRAM), `unavailable`
/// (the verifier lookup or the server could not be reached), `protocol` (the client broke the
/// protocol), `client_gone` (the client closed or its connection failed), `server_error`.
pub(crate) fn failure_cause(error: &SessionError) -> &'static str {
    match error {
        SessionError::Refused(fatal) if fatal.code == sqlstate::INVALID_PASSWORD => "password",
        SessionError::Refused(fatal) if fatal.code == sqlstate::CONNECTION_FAILURE => "unavailable",
        SessionError::Refused(fatal) if fatal.code == sqlstate::INVALID_AUTHORIZATION => {
            "refused_by_policy"
        }
        SessionError::Refused(_)
        | SessionError::ClientProtocol(_)
        | SessionError::ClientNegotiation(_) => "protocol",
        SessionError::ServerRefused { .. } => "server_refused",
        SessionError::ClientIo(_) | SessionError::ClientClosed | SessionError::ClientTls(_) => {
            "client_gone"
        }
        SessionError::LoginTimeout => "login_timeout",
        SessionError::ServerIo(_)
        | SessionError::ServerProtocol(_)
        | SessionError::ServerClosed
        | SessionError::ServerSequence(_)
        | SessionError::ServerTls(_) => "server_error",
    }
}

/// The registry and its metrics; updated by sessions, encoded on a scrape.
pub(crate) struct Metrics {
    registry: Registry,
    clients: Gauge,
    sessions: Gauge,
    sessions_started: Counter,
    sessions_ended: Family<HowLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    /// The relay's totals the byte counters have counted.
    bytes_counted: Mutex<RelayTotals>,
    auth_failures: Family<CauseLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    draining: Gauge,
    audit_failures: Counter,
    certificate_expiry: Family<CertificateLabels, Gauge>,
    policy_warnings: Family<RuleLabels, Counter>,
    policy_ends: Family<RuleLabels, Counter>,
    violations: Family<ViolationLabels, Counter>,
    logins_refused: Family<RuleLabels, Counter>,
    notify_failures: Family<HookLabels, Counter>,
    notify_dropped: Counter,
    violation_count_fallbacks: Family<RuleLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("curfew_gateway");
        let metrics = Metrics {
            registry: Registry::default(),
            clients: Gauge::default(),
            sessions: Gauge::default(),
            sessions_started: Counter::default(),
            sessions_ended: Family::default(),
            bytes: Family::default(),
            bytes_counted: Mutex::new(RelayTotals::default()),
            auth_failures: Family::default(),
            refusals: Family::default(),
            reloads: Family::default(),
            draining: Gauge::default(),
            audit_failures: Counter::default(),
            certificate_expiry: Family::default(),
            policy_warnings: Family::default(),
            policy_ends: Family::default(),
            violations: Family::default(),
            logins_refused: Family::default(),
            notify_failures: Family::default(),
            notify_dropped: Counter::default(),
            violation_count_fallbacks: Family::default(),
        };
        registry.register(
            "clients",
            "Client connections open now (logging in or in a session)",
            metrics.clients.clone(),
        );
        registry.register(
            "sessions",
            "Sessions relayed now (authenticated and logged in upstream)",
            metrics.sessions.clone(),
        );
        registry.register(
            "sessions_started",
            "Sessions started (authenticated and logged in upstream)",
            metrics.sessions_started.clone(),
        );
        registry.register(
            "sessions_ended",
            "Sessions ended, by how: client_left, server_left, ended_by_gateway(_undelivered), error",
            metrics.sessions_ended.clone(),
        );
        registry.register(
            "bytes",
            "Bytes relayed, by direction: client_to_server, server_to_client",
            metrics.bytes.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed logins, by cause (password, server_refused, unavailable, protocol, client_gone, login_timeout, server_error)",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "refusals",
            "Clients turned away, by reason: max_clients, require_tls, login_timeout",
            metrics.refusals.clone(),
        );
        registry.register(
            "reloads",
            "Reloads on SIGHUP, by result: ok, failed",
            metrics.reloads.clone(),
        );
        registry.register(
            "draining",
            "1 while the gateway drains its sessions before stopping",
            metrics.draining.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            metrics.audit_failures.clone(),
        );
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "The client leg's certificate's notAfter, Unix seconds (absent without TLS)",
            metrics.certificate_expiry.clone(),
        );
        registry.register(
            "policy_warnings",
            "Warnings given to clients, by rule (a time rule's lead, or one error before a violations rule's count)",
            metrics.policy_warnings.clone(),
        );
        registry.register(
            "policy_sessions_ended",
            "Sessions the policy ended, by rule",
            metrics.policy_ends.clone(),
        );
        registry.register(
            "violations",
            "Server errors counted by violations rules, by rule and SQLSTATE (only the rule's own sqlstates)",
            metrics.violations.clone(),
        );
        registry.register(
            "logins_refused",
            "Logins the policy refused after authentication, by rule",
            metrics.logins_refused.clone(),
        );
        registry.register(
            "notify_failures",
            "Warnings a [notify] hook did not take after every attempt, by hook",
            metrics.notify_failures.clone(),
        );
        registry.register(
            "notify_dropped",
            "Warnings not queued for the [notify] hooks because the queue was full (their audit records keep them)",
            metrics.notify_dropped.clone(),
        );
        registry.register(
            "violation_count_fallbacks",
            "Errors of per = \"role\" violations rules judged by this gateway's own count because the shared count in the database failed or was slow, by rule",
            metrics.violation_count_fallbacks.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A warning was given for `rule`.
    pub(crate) fn policy_warned(&self, rule: &str) {
        self.policy_warnings
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// `rule` ended a session.
    pub(crate) fn policy_ended(&self, rule: &str) {
        self.policy_ends
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// `rule` counted an error with `sqlstate` (one of the rule's own list: the caller only
    /// reports codes the rule counted, so the label set stays bounded).
    pub(crate) fn violation_counted(&self, rule: &str, sqlstate: &str) {
        self.violations
            .get_or_create(&ViolationLabels {
                rule: rule.to_owned(),
                sqlstate: sqlstate.to_owned(),
            })
            .inc();
    }

    /// `rule` refused a login after authentication (for the admission's refusal; `rule` is
    /// the refusing rule's name, or the ledger's lock kind for a lock).
    pub(crate) fn login_refused(&self, rule: &str) {
        self.logins_refused
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// A `[notify]` hook (`command` or `webhook`) did not take a warning.
    pub(crate) fn notify_failed(&self, hook: &'static str) {
        self.notify_failures
            .get_or_create(&HookLabels { hook })
            .inc();
    }

    /// A `per = "role"` rule's error was judged by this gateway's own count: the database's
    /// shared count failed or did not answer in time.
    pub(crate) fn violation_count_fell_back(&self, rule: &str) {
        self.violation_count_fallbacks
            .get_or_create(&RuleLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// A warning was not queued for the hooks (the queue was full).
    pub(crate) fn notify_dropped(&self) {
        self.notify_dropped.inc();
    }

    pub(crate) fn client_connected(&self) -> ClientGuard<'_> {
        self.clients.inc();
        ClientGuard { metrics: self }
    }

    pub(crate) fn session_started(&self) {
        self.sessions_started.inc();
        self.sessions.inc();
    }

    pub(crate) fn session_ended(&self, how: &'static str) {
        self.sessions.dec();
        self.sessions_ended.get_or_create(&HowLabels { how }).inc();
    }

    /// Brings the byte counters up to `traffic` (the relay's live totals).
    fn bytes(&self, traffic: RelayTotals) {
        let mut counted = self
            .bytes_counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let client_to_server = traffic
            .client_to_server
            .saturating_sub(counted.client_to_server);
        let server_to_client = traffic
            .server_to_client
            .saturating_sub(counted.server_to_client);
        *counted = traffic;
        if client_to_server > 0 {
            self.bytes
                .get_or_create(&DirectionLabels {
                    direction: "client_to_server",
                })
                .inc_by(client_to_server);
        }
        if server_to_client > 0 {
            self.bytes
                .get_or_create(&DirectionLabels {
                    direction: "server_to_client",
                })
                .inc_by(server_to_client);
        }
    }

    pub(crate) fn auth_failed(&self, cause: &'static str) {
        self.auth_failures
            .get_or_create(&CauseLabels { cause })
            .inc();
    }

    pub(crate) fn refused(&self, refusal: Refusal) {
        self.refusals
            .get_or_create(&ReasonLabels {
                reason: refusal.label(),
            })
            .inc();
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    pub(crate) fn draining(&self, on: bool) {
        self.draining.set(i64::from(on));
    }

    pub(crate) fn audit_failed(&self, records: u64) {
        self.audit_failures.inc_by(records);
    }

    /// The OpenMetrics text, with the bytes relayed so far (`traffic`) and the notAfter of
    /// the certificate in force (`not_after`, read at each scrape so a reload shows at once).
    pub(crate) fn encode(&self, traffic: RelayTotals, not_after: Option<i64>) -> String {
        self.bytes(traffic);
        self.certificate_expiry.clear();
        if let Some(not_after) = not_after {
            self.certificate_expiry
                .get_or_create(&CertificateLabels {
                    certificate: "client_leg",
                })
                .set(not_after);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A connected client, counted until dropped.
pub(crate) struct ClientGuard<'a> {
    metrics: &'a Metrics,
}

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.metrics.clients.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Fatal;

    #[test]
    fn failures_are_counted_by_cause() {
        let password = SessionError::Refused(Fatal::new(sqlstate::INVALID_PASSWORD, "x"));
        assert_eq!(failure_cause(&password), "password");
        let lookup = SessionError::Refused(Fatal::new(sqlstate::CONNECTION_FAILURE, "x"));
        assert_eq!(failure_cause(&lookup), "unavailable");
        assert_eq!(failure_cause(&SessionError::ClientClosed), "client_gone");
        let refused = SessionError::ServerRefused {
            code: "3D000".to_owned(),
            message: "no database".to_owned(),
        };
        assert_eq!(failure_cause(&refused), "server_refused");
    }

    #[test]
    fn the_text_has_every_count() {
        let metrics = Metrics::new();
        {
            let _client = metrics.client_connected();
            metrics.session_started();
            metrics.session_ended("client_left");
            metrics.auth_failed("password");
            metrics.refused(Refusal::MaxClients);
            metrics.reloaded(false);
            metrics.policy_warned("misbehaviour");
            metrics.policy_ended("misbehaviour");
            metrics.violation_counted("misbehaviour", "42501");
            metrics.violation_counted("misbehaviour", "42501");
            metrics.login_refused("after-hours");
            let text = metrics.encode(
                RelayTotals {
                    client_to_server: 4,
                    server_to_client: 20,
                },
                Some(1_900_000_000),
            );
            assert!(
                text.contains("curfew_gateway_tls_certificate_expiry_timestamp_seconds{certificate=\"client_leg\"} 1900000000\n"),
                "{text}"
            );
            assert!(text.contains("curfew_gateway_clients 1\n"), "{text}");
        }
        let text = metrics.encode(
            RelayTotals {
                client_to_server: 10,
                server_to_client: 20,
            },
            None,
        );
        assert!(
            !text.contains("curfew_gateway_tls_certificate_expiry_timestamp_seconds{"),
            "no TLS, no certificate sample: {text}"
        );
        for line in [
            "curfew_gateway_clients 0\n",
            "curfew_gateway_sessions 0\n",
            "curfew_gateway_sessions_started_total 1\n",
            "curfew_gateway_sessions_ended_total{how=\"client_left\"} 1\n",
            "curfew_gateway_bytes_total{direction=\"client_to_server\"} 10\n",
            "curfew_gateway_bytes_total{direction=\"server_to_client\"} 20\n",
            "curfew_gateway_auth_failures_total{cause=\"password\"} 1\n",
            "curfew_gateway_refusals_total{reason=\"max_clients\"} 1\n",
            "curfew_gateway_reloads_total{result=\"failed\"} 1\n",
            "curfew_gateway_policy_warnings_total{rule=\"misbehaviour\"} 1\n",
            "curfew_gateway_policy_sessions_ended_total{rule=\"misbehaviour\"} 1\n",
            "curfew_gateway_violations_total{rule=\"misbehaviour\",sqlstate=\"42501\"} 2\n",
            "curfew_gateway_logins_refused_total{rule=\"after-hours\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
