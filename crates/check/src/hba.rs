//! Findings on `pg_hba.conf` as the server loaded it: weak authentication methods, and
//! unencrypted TCP from beyond this host.

use curfew_postgres::{HbaRule, ServerFacts};

use crate::{Finding, Status};

const REQUIREMENT: &str = "PostgreSQL security guide: authentication and pg_hba.conf";

/// `line 3: host all all 0.0.0.0/0 md5`.
fn describe(rule: &HbaRule) -> String {
    let mut parts = vec![
        rule.kind.clone().unwrap_or_else(|| "?".to_owned()),
        rule.databases.join(","),
        rule.users.join(","),
    ];
    if let Some(address) = &rule.address {
        parts.push(match &rule.netmask {
            Some(mask) => format!("{address}/{mask}"),
            None => address.clone(),
        });
    }
    parts.push(rule.method.clone().unwrap_or_else(|| "?".to_owned()));
    match &rule.file {
        Some(file) => format!("{file}:{}: {}", rule.line, parts.join(" ")),
        None => format!("line {}: {}", rule.line, parts.join(" ")),
    }
}

/// Whether a rule only admits connections from this host.
fn loopback_only(rule: &HbaRule) -> bool {
    match rule.address.as_deref() {
        // Anything inside 127.0.0.0/8 is this host.
        Some(a) if a.starts_with("127.") => rule
            .netmask
            .as_deref()
            .is_some_and(|m| m.starts_with("255.")),
        Some("::1") => rule.netmask.as_deref() == Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        Some("localhost" | "samehost") => true,
        _ => false,
    }
}

fn unknown(id: &'static str, title: &'static str, why: &str) -> Finding {
    Finding {
        why: String::new(),
        id,
        title,
        requirement: REQUIREMENT,
        status: Status::Unknown,
        observed: format!("pg_hba_file_rules could not be read: {why}"),
        expected: "readable by curfew's role".to_owned(),
        fix: "As a superuser: GRANT SELECT ON pg_hba_file_rules TO curfew_agent; GRANT EXECUTE ON FUNCTION pg_hba_file_rules() TO curfew_agent;".to_owned(),
    }
}

fn verdict(
    id: &'static str,
    title: &'static str,
    bad: &[String],
    good: &str,
    expected: &str,
    fix: &str,
) -> Finding {
    Finding {
        why: String::new(),
        id,
        title,
        requirement: REQUIREMENT,
        status: if bad.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        observed: if bad.is_empty() {
            good.to_owned()
        } else {
            bad.join("; ")
        },
        expected: expected.to_owned(),
        fix: if bad.is_empty() {
            String::new()
        } else {
            fix.to_owned()
        },
    }
}

pub(crate) fn findings(facts: &ServerFacts) -> Vec<Finding> {
    const METHODS: (&str, &str) = ("PG-HBA-METHOD", "No trust, md5 or password authentication");
    const TLS: (&str, &str) = ("PG-HBA-TLS", "TCP from other hosts requires TLS");
    let rules = match &facts.hba {
        Ok(rules) => rules,
        Err(why) => {
            return vec![
                unknown(METHODS.0, METHODS.1, why),
                unknown(TLS.0, TLS.1, why),
            ];
        }
    };
    let weak: Vec<String> = rules
        .iter()
        .filter(|r| matches!(r.method.as_deref(), Some("trust" | "md5" | "password")))
        .map(describe)
        .collect();
    let plain: Vec<String> = rules
        .iter()
        .filter(|r| {
            // `cert` authentication needs TLS whatever the line's type says.
            matches!(
                r.kind.as_deref(),
                Some("host" | "hostnossl" | "hostnogssenc")
            ) && !matches!(r.method.as_deref(), Some("reject" | "cert"))
                && !loopback_only(r)
        })
        .map(describe)
        .collect();
    let broken: Vec<String> = rules
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("line {}: {e}", r.line)))
        .collect();
    let mut methods = verdict(
        METHODS.0,
        METHODS.1,
        &weak,
        &format!("{} rules, none with trust, md5 or password", rules.len()),
        "scram-sha-256 (or peer, cert, ...) everywhere",
        "Replace trust, md5 and password with scram-sha-256 (peer for the local superuser), then SELECT pg_reload_conf().",
    );
    if !broken.is_empty() {
        methods.observed.push_str(&format!(
            "; lines the server could not load: {}",
            broken.join("; ")
        ));
    }
    vec![
        methods,
        verdict(
            TLS.0,
            TLS.1,
            &plain,
            "no host or hostnossl rule admits other hosts without TLS",
            "hostssl for every address beyond loopback; hostnossl only with reject",
            "Change those lines to hostssl (and add `hostnossl all all 0.0.0.0/0 reject`), then SELECT pg_reload_conf().",
        ),
    ]
}
