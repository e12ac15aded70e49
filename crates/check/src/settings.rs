//! Findings on server settings: TLS, password hashing, connection logging, timeouts, dead
//! connection detection.

use std::time::Duration;

use curfew_policy::{Action, Condition};
use curfew_postgres::ServerFacts;

use crate::durations::{duration_of, words};
use crate::{Finding, PolicyContext, Status};

const GUIDE: &str = "PostgreSQL security guide: hardening";

/// The fix for a setting curfew's role cannot see (`pg_settings` hides some, such as
/// `ssl_min_protocol_version`, from roles without `pg_read_all_settings`).
const UNREADABLE: &str = "As a superuser: GRANT pg_read_all_settings TO curfew_agent; (it can then read every setting, and change none).";

fn shown(facts: &ServerFacts, name: &str) -> String {
    match facts.settings.get(name) {
        Some(s) => match duration_of(s) {
            Some(d) if s.unit.is_some() => format!("{name} = {}", words(d)),
            _ => format!("{name} = {}", s.value),
        },
        None => format!("{name}: not visible to curfew's role"),
    }
}

fn finding(
    id: &'static str,
    title: &'static str,
    requirement: &'static str,
    ok: Option<bool>,
    observed: String,
    expected: &str,
    fix: &str,
) -> Finding {
    let status = match ok {
        Some(true) => Status::Pass,
        Some(false) => Status::Fail,
        None => Status::Unknown,
    };
    Finding {
        why: String::new(),
        id,
        title,
        requirement,
        status,
        observed,
        expected: expected.to_owned(),
        fix: match status {
            Status::Pass | Status::Info => String::new(),
            Status::Unknown => UNREADABLE.to_owned(),
            Status::Fail => fix.to_owned(),
        },
    }
}

fn value<'f>(facts: &'f ServerFacts, name: &str) -> Option<&'f str> {
    facts.settings.get(name).map(|s| s.value.as_str())
}

fn timeout(facts: &ServerFacts, name: &str) -> Option<Duration> {
    facts.settings.get(name).and_then(duration_of)
}

/// `on` for booleans. PostgreSQL 18's `log_connections` also takes a list of aspects: it
/// logs who connected only with `authorization` (or `all`) in the list.
fn is_on(v: &str) -> bool {
    let v = v.trim().to_ascii_lowercase();
    match v.as_str() {
        "on" | "true" | "yes" | "1" | "all" => true,
        "" | "off" | "false" | "no" | "0" => false,
        list => list
            .split(',')
            .any(|aspect| matches!(aspect.trim(), "authorization" | "all")),
    }
}

/// Where a value comes only from curfew's own role or database (`ALTER ROLE/DATABASE ... SET`),
/// the server-wide value is not what was read: say so, and judge nothing.
fn local_source(facts: &ServerFacts, names: &[&str]) -> Option<String> {
    let local: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let source = &facts.settings.get(*name)?.source;
            matches!(
                source.as_str(),
                "database" | "user" | "database user" | "client" | "session"
            )
            .then(|| format!("{name} comes from the {source} level"))
        })
        .collect();
    (!local.is_empty()).then(|| {
        format!(
            " ({}: set for curfew's own role or database, so the server-wide value is not visible)",
            local.join(", ")
        )
    })
}

/// Turn a verdict on a value that is not the server-wide one into UNKNOWN.
fn server_wide(mut finding: Finding, facts: &ServerFacts, names: &[&str]) -> Finding {
    if let Some(note) = local_source(facts, names)
        && finding.status != Status::Info
    {
        finding.status = Status::Unknown;
        finding.observed.push_str(&note);
        finding.fix = format!(
            "Check with a role and database that have no value of their own (ALTER ROLE ... RESET {}), or read postgresql.conf.",
            names.join(", ")
        );
    }
    finding
}

pub(crate) fn findings(facts: &ServerFacts, ctx: PolicyContext<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(finding(
        "PG-SSL",
        "TLS is enabled",
        "PostgreSQL security guide: TLS/SSL encryption",
        value(facts, "ssl").map(is_on),
        shown(facts, "ssl"),
        "ssl = on",
        "Set ssl = on with ssl_cert_file and ssl_key_file in postgresql.conf, then reload; require it in pg_hba.conf with hostssl.",
    ));
    out.push(finding(
        "PG-TLS-VERSION",
        "Old TLS versions are refused",
        "PostgreSQL security guide: TLS/SSL encryption",
        value(facts, "ssl_min_protocol_version").map(|v| matches!(v, "TLSv1.2" | "TLSv1.3")),
        shown(facts, "ssl_min_protocol_version"),
        "ssl_min_protocol_version = TLSv1.2 or TLSv1.3",
        "Set ssl_min_protocol_version = 'TLSv1.2' in postgresql.conf and reload.",
    ));
    out.push(finding(
        "PG-PASSWORD-ENCRYPTION",
        "Passwords are stored as SCRAM-SHA-256",
        "PostgreSQL security guide: authentication (SCRAM, not MD5)",
        value(facts, "password_encryption").map(|v| v == "scram-sha-256"),
        shown(facts, "password_encryption"),
        "password_encryption = scram-sha-256",
        "Set password_encryption = 'scram-sha-256', reload, and reset the passwords of roles still hashed with MD5.",
    ));
    for (id, title, name) in [
        (
            "PG-LOG-CONNECTIONS",
            "Connections are logged",
            "log_connections",
        ),
        (
            "PG-LOG-DISCONNECTIONS",
            "Disconnections are logged (with the session's duration)",
            "log_disconnections",
        ),
    ] {
        out.push(finding(
            id,
            title,
            "PostgreSQL security guide: security logging; NIST SP 800-171 3.3.1",
            value(facts, name).map(is_on),
            shown(facts, name),
            &format!("{name} = on"),
            &format!("Set {name} = on in postgresql.conf and reload."),
        ));
    }
    out.push(idle_in_transaction(facts, ctx));
    out.push(finding(
        "PG-STATEMENT-TIMEOUT",
        "Runaway statements are cancelled",
        GUIDE,
        timeout(facts, "statement_timeout").map(|d| !d.is_zero()),
        shown(facts, "statement_timeout"),
        "statement_timeout > 0 (the guide: 5min)",
        "Set statement_timeout (e.g. '5min') in postgresql.conf, or per role with ALTER ROLE ... SET statement_timeout for roles that need longer.",
    ));
    out.push(finding(
        "PG-AUTHENTICATION-TIMEOUT",
        "Unfinished logins are dropped within a minute",
        "PostgreSQL security guide: hardening; the analogue of Oracle's SQLNET.INBOUND_CONNECT_TIMEOUT (STIG V-220295)",
        timeout(facts, "authentication_timeout").map(|d| d <= Duration::from_secs(60)),
        shown(facts, "authentication_timeout"),
        "authentication_timeout <= 1min",
        "Set authentication_timeout = '30s' (or at most '1min') in postgresql.conf and reload.",
    ));
    let check_interval = timeout(facts, "client_connection_check_interval");
    // Over a Unix socket the server reports tcp_keepalives_idle as 0: not a reading.
    let keepalive = if facts.unix_socket {
        None
    } else {
        timeout(facts, "tcp_keepalives_idle")
    };
    let detected = check_interval.is_some_and(|d| !d.is_zero())
        || keepalive.is_some_and(|d| !d.is_zero() && d <= Duration::from_secs(900));
    let dead_detected = match (check_interval, keepalive) {
        (None, None) => None,
        _ if detected => Some(true),
        // Nothing detects them as far as can be seen; over a socket the keepalives are unseen.
        _ if facts.unix_socket => None,
        _ => Some(false),
    };
    let keepalive_shown = if facts.unix_socket {
        "tcp_keepalives_idle: not visible (curfew connected over a Unix socket; check over TCP)"
            .to_owned()
    } else {
        shown(facts, "tcp_keepalives_idle")
    };
    out.push(finding(
        "PG-DEAD-CONNECTIONS",
        "Dead client connections are detected",
        "The analogue of Oracle's SQLNET.EXPIRE_TIME (STIG V-220295): connections left open by a vanished client end",
        dead_detected,
        format!(
            "{}; {} (as seen on curfew's connection; 0 means the operating system's default, usually 2h)",
            shown(facts, "client_connection_check_interval"),
            keepalive_shown
        ),
        "client_connection_check_interval > 0, or tcp_keepalives_idle <= 15min",
        "Set tcp_keepalives_idle = 300 (with tcp_keepalives_interval and tcp_keepalives_count) and client_connection_check_interval = '10s' in postgresql.conf, then reload.",
    ));
    out.into_iter()
        .map(|f| {
            let names = SETTINGS_OF
                .iter()
                .find(|(id, _)| *id == f.id)
                .map_or(&[][..], |(_, names)| *names);
            server_wide(f, facts, names)
        })
        .collect()
}

/// Abandoned transactions: the native timeout ends them everywhere; a curfew
/// `idle_in_transaction` rule ends them only in its scope, and only while an agent enforces this
/// policy. Scoped rules are credited for what they cover, and what they leave out is said.
fn idle_in_transaction(facts: &ServerFacts, ctx: PolicyContext<'_>) -> Finding {
    const NAME: &str = "idle_in_transaction_session_timeout";
    let native = timeout(facts, NAME).filter(|d| !d.is_zero());
    let rules: Vec<&curfew_policy::Rule> = ctx
        .policy
        .rules
        .iter()
        .filter(|r| matches!(r.condition, Condition::IdleInTransaction(_)))
        .collect();
    let enforced: Vec<&curfew_policy::Rule> = rules
        .iter()
        .copied()
        .filter(|r| r.action == Action::Terminate)
        .collect();
    let agent = crate::termination::enforcing_agent(facts, ctx);
    let describe = |r: &curfew_policy::Rule| {
        format!("\"{}\" ({})", r.name, curfew_policy::explain::summary(r))
    };
    let mut observed = shown(facts, NAME);
    for r in &rules {
        observed.push_str(&format!("; curfew rule {}", describe(r)));
    }
    if rules.is_empty() {
        observed.push_str("; no curfew idle_in_transaction rule");
    }
    let everyone = enforced.iter().find(|r| r.scope.is_everything());
    let mut why = String::new();
    let ok = match (native, everyone, &agent) {
        (Some(_), _, _) => Some(true),
        (None, Some(rule), Ok(_)) => {
            observed.push_str(&format!(
                "; rule \"{}\" covers every session that is not exempt, and {}",
                rule.name,
                agent.as_deref().unwrap_or_default()
            ));
            Some(true)
        }
        (None, _, Err(no_agent)) if !enforced.is_empty() => {
            why = format!(
                "the curfew rule{} would end abandoned transactions, but {no_agent}, and the native timeout is off",
                if enforced.len() == 1 { "" } else { "s" }
            );
            Some(false)
        }
        (None, None, _) if !enforced.is_empty() => {
            why = format!(
                "the native timeout is off, and the curfew rules cover only their scopes: {}; sessions outside {} (other roles, service accounts) can leave a transaction open for ever",
                enforced
                    .iter()
                    .map(|r| format!("\"{}\" covers sessions {}", r.name, scope_words(r)))
                    .collect::<Vec<_>>()
                    .join("; "),
                if enforced.len() == 1 { "it" } else { "them" }
            );
            Some(false)
        }
        (None, _, _) => {
            if !facts.settings.contains_key(NAME) {
                None
            } else {
                why = if rules.is_empty() {
                    "the native timeout is off and no curfew rule ends abandoned transactions"
                        .to_owned()
                } else {
                    "the native timeout is off and the curfew idle_in_transaction rules are report-only: they end nothing".to_owned()
                };
                Some(false)
            }
        }
    };
    let mut f = finding(
        "PG-IDLE-IN-TRANSACTION",
        "Abandoned transactions are ended",
        "PostgreSQL security guide: hardening (idle_in_transaction_session_timeout = 10min)",
        ok,
        observed,
        "idle_in_transaction_session_timeout > 0, or an enforced curfew idle_in_transaction rule for every session (no scope keys) with an agent enforcing this policy",
        "Add a curfew rule with idle_in_transaction = \"10m\" and no scope keys (users cannot switch it off; exemptions still apply), or set idle_in_transaction_session_timeout = '10min'.",
    );
    f.why = why;
    f
}

/// A rule's scope in words, for saying what it covers.
fn scope_words(rule: &curfew_policy::Rule) -> String {
    curfew_policy::explain::explain_scope(&rule.scope)
}

/// The settings each finding judges.
const SETTINGS_OF: &[(&str, &[&str])] = &[
    ("PG-SSL", &["ssl"]),
    ("PG-TLS-VERSION", &["ssl_min_protocol_version"]),
    ("PG-PASSWORD-ENCRYPTION", &["password_encryption"]),
    ("PG-LOG-CONNECTIONS", &["log_connections"]),
    ("PG-LOG-DISCONNECTIONS", &["log_disconnections"]),
    (
        "PG-IDLE-IN-TRANSACTION",
        &["idle_in_transaction_session_timeout"],
    ),
    ("PG-STATEMENT-TIMEOUT", &["statement_timeout"]),
    ("PG-AUTHENTICATION-TIMEOUT", &["authentication_timeout"]),
    (
        "PG-DEAD-CONNECTIONS",
        &["client_connection_check_interval", "tcp_keepalives_idle"],
    ),
];
