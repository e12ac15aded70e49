//! `/healthz`: healthy only when every target was watched recently (a snapshot, or a check
//! of the leader lock while another replica leads) and the audit log can be written.

use std::time::Duration;

use curfew_policy::LoadedPolicy;
use tokio::time::Instant;

use crate::board::Board;

/// The health check's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// True when every check passed.
    pub healthy: bool,
    /// Each check, in order: the targets, then the audit log.
    pub checks: Vec<Check>,
}

/// One check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked: `target "primary"` or `audit log`.
    pub what: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, in words.
    pub detail: String,
}

/// How long a target may go unwatched before it counts as unhealthy: three intervals, and
/// never less than five seconds (a slow snapshot on a busy server is not an outage).
pub fn stale_after(interval: Duration) -> Duration {
    (interval * 3).max(Duration::from_secs(5))
}

/// Check every target of the policy at `now`, and the audit log (`audit` is the result of
/// [`curfew_audit::AuditLog::check_writable`]).
pub(crate) fn check(
    board: &Board,
    loaded: &LoadedPolicy,
    audit: Result<(), String>,
    now: Instant,
) -> Health {
    let stale = stale_after(loaded.policy.agent.interval.to_std());
    let mut checks = Vec::new();
    for target in &loaded.policy.targets {
        let known = board.targets.get(&target.name);
        let contact = known.and_then(|t| t.last_contact);
        let age = contact.map(|at| now.saturating_duration_since(at));
        let error = known.and_then(|t| t.error.as_deref());
        let connected = known.is_some_and(|t| t.connected);
        let what_was_seen = match known.and_then(|t| t.leading) {
            Some(false) => "leader lock checked (another replica leads)",
            _ => "snapshot",
        };
        let problem = known.and_then(|t| t.problem.as_deref());
        let (ok, detail) = match (connected, age) {
            (true, _) if problem.is_some() => (
                false,
                format!("NOT ENFORCED: {}", problem.unwrap_or_default()),
            ),
            (true, Some(age)) if age <= stale => {
                (true, format!("{what_was_seen} {} ago", words(age)))
            }
            (true, Some(age)) => (
                false,
                format!(
                    "last {what_was_seen} {} ago (more than {})",
                    words(age),
                    words(stale)
                ),
            ),
            (true, None) => (false, "connected, no snapshot yet".to_owned()),
            (false, _) => (
                false,
                match (error, age) {
                    (Some(e), Some(age)) => {
                        format!("disconnected: {e} (last contact {} ago)", words(age))
                    }
                    (Some(e), None) => format!("not connected: {e}"),
                    (None, _) => "not connected yet".to_owned(),
                },
            ),
        };
        checks.push(Check {
            what: format!("target \"{}\"", target.name),
            ok,
            detail,
        });
    }
    let audit = match (audit, &board.audit_failure) {
        (Err(e), _) => Check {
            what: "audit log".to_owned(),
            ok: false,
            detail: e,
        },
        (Ok(()), Some((at, e))) => Check {
            what: "audit log".to_owned(),
            ok: false,
            detail: format!("the last write failed at {at}: {e}"),
        },
        (Ok(()), None) => Check {
            what: "audit log".to_owned(),
            ok: true,
            detail: "writable".to_owned(),
        },
    };
    checks.push(audit);
    Health {
        healthy: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn words(d: Duration) -> String {
    curfew_policy::format_age(d.try_into().unwrap_or_default())
}

impl Health {
    /// The response body: one line per check.
    pub fn text(&self) -> String {
        let mut text = String::from(if self.healthy { "ok\n" } else { "unhealthy\n" });
        for c in &self.checks {
            text.push_str(&format!(
                "{} {}: {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail
            ));
        }
        text
    }
}
