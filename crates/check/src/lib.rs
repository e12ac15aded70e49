//! `curfew check`: judge what a server's configuration says against the session-termination
//! requirement (DISA STIG V-261910, NIST SP 800-171 3.1.11) and the hardening items of the
//! PostgreSQL security guide that are readable from SQL. The verdicts are pure: the facts are
//! read elsewhere (`curfew_postgres::Connection::facts`), so every verdict is testable without
//! a server; [`check_target`] reads them from a live target and judges them.

mod checked;
mod clock;
mod durations;
mod gateway;
mod hba;
mod ledger;
mod live;
mod mariadb;
mod mariadb_leader;
mod mariadb_live;
mod mariadb_names;
mod mariadb_store;
mod record;
mod roles;
mod settings;
mod termination;

pub use checked::Checked;
pub use live::{check_target, is_mysql};
pub use mariadb::{Account, MariaDbFacts, judge_mariadb, stig};
pub use mariadb_leader::{LeaderHolder, leader};
pub use mariadb_store::{DatabaseGrant, pattern_matches, store};
pub use record::configuration_records;

use curfew_policy::Policy;
use curfew_postgres::ServerFacts;

/// A finding's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The requirement is not met.
    Fail,
    /// Could not be read (a privilege is missing): neither passed nor failed.
    Unknown,
    /// The requirement is met.
    Pass,
    /// For the record; nothing is required.
    Info,
}

impl Status {
    /// As printed: `FAIL`, `UNKNOWN`, `pass`, `info`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Fail => "FAIL",
            Status::Unknown => "UNKNOWN",
            Status::Pass => "pass",
            Status::Info => "info",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `V-261910` or `PG-LOG-CONNECTIONS`.
    pub id: &'static str,
    /// What is checked, in a few words.
    pub title: &'static str,
    /// The requirement it comes from.
    pub requirement: &'static str,
    /// The verdict.
    pub status: Status,
    /// What the server shows.
    pub observed: String,
    /// What the requirement asks for.
    pub expected: String,
    /// For a failed finding: why it fails, as a sentence (empty otherwise).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// How to fix it (empty when it passes).
    pub fix: String,
}

/// The policy in force, as far as the termination requirement is concerned.
#[derive(Debug, Clone, Copy)]
pub struct PolicyContext<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Its file name.
    pub source: &'a str,
    /// Its SHA-256.
    pub sha256: &'a str,
    /// The largest clock offset between this host and the server that passes.
    pub max_clock_offset: std::time::Duration,
}

/// Judge one server's facts. Findings come in a fixed order: the termination requirement
/// first, then settings, `pg_hba.conf`, roles, the login-lock ledger, the clocks. Every failed
/// finding says why it fails (`why`).
pub fn judge(facts: &ServerFacts, policy: PolicyContext<'_>) -> Vec<Finding> {
    let mut findings = vec![termination::requirement(facts, policy)];
    findings.extend(settings::findings(facts, policy));
    findings.extend(hba::findings(facts));
    findings.extend(roles::findings(facts));
    findings.push(ledger::finding(facts, policy.policy));
    findings.push(clock::finding(
        &facts.clock,
        "clock_timestamp()",
        policy.max_clock_offset,
    ));
    for f in &mut findings {
        if f.status != Status::Fail {
            f.why.clear();
        } else if f.why.is_empty() {
            f.why = format!(
                "the server shows {}, but {} is required",
                f.observed, f.expected
            );
        }
    }
    findings
}

/// Whether any finding failed (the command then exits 3).
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

#[cfg(test)]
mod mariadb_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_coverage;
