//! Logins refused by the policy (issue 17), after the client proved its password and never
//! before (an unauthenticated probe learns nothing): the per-session engine's [`admit`] with
//! the policy's window rules, the refusal worded as the login trigger words it
//! ([`login_refusal_message`]), FATAL 28000. Incident locks are not read here (the gateway
//! has no cheap read of the ledger yet): the agent still ends incident-locked sessions.

use std::net::IpAddr;

use curfew_policy::login_refusal::{RefusalCause, WindowRule, login_refusal_message, opening_time};
use curfew_policy::{Admission, Condition, Login, Policy, admit};
use jiff::Timestamp;

use crate::error::{Fatal, sqlstate};

/// A login the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedLogin {
    /// The FATAL the client gets.
    pub(crate) fatal: Fatal,
    /// The refusing rule's stable id.
    pub(crate) rule: String,
    /// The engine's reason.
    pub(crate) reason: String,
}

/// Who logs in, as far as the gateway knows (memberships are not: rules scoped by
/// `member_of` do not refuse at the gateway).
pub(crate) struct Applicant<'a> {
    pub(crate) role: &'a str,
    pub(crate) database: &'a str,
    pub(crate) application: &'a str,
    pub(crate) client_addr: Option<IpAddr>,
}

/// Whether `policy` refuses this login at `now`, and how the client is told.
pub(crate) fn refused(
    policy: &Policy,
    who: &Applicant<'_>,
    now: Timestamp,
) -> Option<RefusedLogin> {
    let login = Login {
        role: who.role,
        member_of: &[],
        database: who.database,
        application: who.application,
        client_addr: who.client_addr,
    };
    let Admission::Refused(refusal) = admit(policy, &login, now, 0, &[]) else {
        return None;
    };
    let rule_id = refusal.rule.to_string();
    let message = refusal
        .rule_index
        .and_then(|index| policy.rules.get(index))
        .and_then(|rule| {
            let schedule = rule.condition.schedule()?;
            let kind = match rule.condition {
                Condition::Deny(_) => WindowRule::Deny,
                _ => WindowRule::Allow,
            };
            let zone = schedule.zone();
            let zone_name = zone.iana_name().unwrap_or("UTC").to_owned();
            let windows: Vec<&str> = schedule.windows().iter().map(|w| w.text.as_str()).collect();
            let opens = refusal.retry_at.map(|at| {
                opening_time(
                    now.to_zoned(zone.clone()).datetime(),
                    at.to_zoned(zone.clone()).datetime(),
                )
            });
            Some(login_refusal_message(
                who.role,
                &RefusalCause::Window {
                    rule: &rule.name,
                    kind,
                    windows: &windows.join(", "),
                    opens: opens.as_deref(),
                    zone: &zone_name,
                },
            ))
        })
        .unwrap_or_else(|| {
            format!(
                "logins for role {} are closed by rule {rule_id}: {}",
                who.role, refusal.reason
            )
        });
    Some(RefusedLogin {
        fatal: Fatal::new(sqlstate::INVALID_AUTHORIZATION, message),
        rule: rule_id,
        reason: refusal.reason,
    })
}
