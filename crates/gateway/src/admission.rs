//! Logins refused by the policy and the ledger (issue 17), after the client proved its
//! password and never before (an unauthenticated probe learns nothing): the per-session
//! engine's [`admit`] with the role's incident locks, window rules and session caps, and the
//! window locks the agent recorded; the refusal worded as the login trigger words it
//! ([`login_refusal_message`]), FATAL 28000. The locks, memberships and the role's other
//! sessions come from the database (`curfew.gateway_secret`, the admission claim), read
//! before this; each cap counts those in its own scope, as the agent does.

use std::net::IpAddr;

use curfew_policy::login_refusal::{
    RefusalCause, WindowRule, client_text, login_refusal_message, opening_time, utc_time,
};
use curfew_policy::{
    Admission, Condition, IncidentLock, LOGIN_LOCK_RULE, Login, Policy, Refusal, RoleSession, admit,
};
use jiff::Timestamp;

use crate::error::{Fatal, sqlstate};
use crate::verifiers::{LedgerLock, LockKind};

/// A login the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedLogin {
    /// The FATAL the client gets.
    pub(crate) fatal: Fatal,
    /// The refusing rule's stable id (`login-lock` for an incident lock).
    pub(crate) rule: String,
    /// The engine's (or the ledger's) reason.
    pub(crate) reason: String,
}

/// Who logs in, as far as the gateway knows.
pub(crate) struct Applicant<'a> {
    pub(crate) role: &'a str,
    /// Every role it is a member of, directly or indirectly, from the auth function.
    pub(crate) member_of: &'a [String],
    pub(crate) database: &'a str,
    pub(crate) application: &'a str,
    pub(crate) client_addr: Option<IpAddr>,
}

/// What the database says about the role at this login.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoleState<'a> {
    /// The login locks in force on it in the ledger.
    pub(crate) locks: &'a [LedgerLock],
    /// Its live client sessions on the server, and admissions in flight, before this one.
    pub(crate) others: &'a [RoleSession],
}

/// Whether this login is refused at `now`, and how the client is told. In this order, as the
/// agent would end the session: an incident lock, a window rule of `policy`, a window lock
/// in the ledger (the agent's, even when this policy's window is open: the agent has not
/// released it yet), a session cap.
pub(crate) fn refused(
    policy: Option<&Policy>,
    who: &Applicant<'_>,
    state: RoleState<'_>,
    now: Timestamp,
) -> Option<RefusedLogin> {
    let incidents: Vec<IncidentLock> = state
        .locks
        .iter()
        .filter(|l| l.kind == LockKind::Incident)
        .map(|l| IncidentLock {
            reason: l.reason.clone(),
            until: l.until,
        })
        .collect();
    let Some(policy) = policy else {
        return incident_refusal(who.role, &incidents)
            .or_else(|| window_lock_refusal(who.role, state.locks));
    };
    let login = Login {
        role: who.role,
        member_of: who.member_of,
        database: who.database,
        application: who.application,
        client_addr: who.client_addr,
    };
    match admit(policy, &login, now, state.others, &incidents) {
        Admission::Refused(refusal) if refusal.rule_index.is_none() => {
            Some(incident_refused(who.role, &incidents, refusal))
        }
        Admission::Refused(refusal) if !is_cap(policy, &refusal) => {
            Some(rule_refused(policy, who.role, refusal, now))
        }
        Admission::Refused(cap) => window_lock_refusal(who.role, state.locks)
            .or_else(|| Some(rule_refused(policy, who.role, cap, now))),
        Admission::Allowed { .. } => window_lock_refusal(who.role, state.locks),
    }
}

/// Whether the policy has a session cap that could refuse a login (so the gateway counts the
/// role's sessions only then).
pub(crate) fn counts_sessions(policy: &Policy) -> bool {
    policy
        .rules
        .iter()
        .any(|r| matches!(r.condition, Condition::MaxSessions(_)))
}

fn is_cap(policy: &Policy, refusal: &Refusal) -> bool {
    refusal
        .rule_index
        .and_then(|i| policy.rules.get(i))
        .is_some_and(|r| matches!(r.condition, Condition::MaxSessions(_)))
}

/// The engine's incident refusal, for a login without a policy to judge it.
fn incident_refusal(role: &str, incidents: &[IncidentLock]) -> Option<RefusedLogin> {
    if incidents.is_empty() {
        return None;
    }
    let retry_at = if incidents.iter().all(|i| i.until.is_some()) {
        incidents.iter().filter_map(|i| i.until).max()
    } else {
        None
    };
    let reasons: Vec<&str> = incidents.iter().map(|i| i.reason.as_str()).collect();
    let refusal = Refusal {
        rule: curfew_policy::RuleId::new(LOGIN_LOCK_RULE),
        rule_index: None,
        cause: None,
        reason: format!(
            "role \"{role}\" is locked: incident lock: {}",
            reasons.join("; ")
        ),
        retry_at,
    };
    Some(incident_refused(role, incidents, refusal))
}

fn incident_refused(role: &str, incidents: &[IncidentLock], refusal: Refusal) -> RefusedLogin {
    let reasons: Vec<&str> = incidents.iter().map(|i| i.reason.as_str()).collect();
    let until = refusal.retry_at.map(utc_time);
    let message = login_refusal_message(
        role,
        &RefusalCause::Incident {
            reason: &reasons.join("; "),
            until: until.as_deref(),
        },
    );
    RefusedLogin {
        fatal: Fatal::new(sqlstate::INVALID_AUTHORIZATION, message),
        rule: refusal.rule.to_string(),
        reason: refusal.reason,
    }
}

/// A window lock the agent recorded, first in the ledger's order.
fn window_lock_refusal(role: &str, locks: &[LedgerLock]) -> Option<RefusedLogin> {
    let lock = locks.iter().find(|l| l.kind == LockKind::Window)?;
    let rule = lock.rule.as_deref().unwrap_or("window");
    let message = login_refusal_message(
        role,
        &RefusalCause::WindowLock {
            rule,
            reason: &lock.reason,
        },
    );
    Some(RefusedLogin {
        fatal: Fatal::new(sqlstate::INVALID_AUTHORIZATION, message),
        rule: rule.to_owned(),
        reason: format!("role \"{role}\" is locked: window lock: {}", lock.reason),
    })
}

/// A rule's refusal: a window rule's in the login trigger's words (with when it opens, in the
/// rule's zone), a session cap's with the engine's reason.
fn rule_refused(policy: &Policy, role: &str, refusal: Refusal, now: Timestamp) -> RefusedLogin {
    let rule_id = refusal.rule.to_string();
    let rule = refusal.rule_index.and_then(|index| policy.rules.get(index));
    let words = rule
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
                role,
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
                "logins for role {role} are closed by rule {rule_id}: {}",
                refusal.reason
            )
        });
    // A rule's own `message` (a site's banner) is what the user reads; curfew's words, which
    // name the rule and when logins open, go to the DETAIL.
    let text = client_text(rule.and_then(|r| r.message.as_deref()), words);
    let mut fatal = Fatal::new(sqlstate::INVALID_AUTHORIZATION, text.message);
    if let Some(detail) = text.detail {
        fatal = fatal.with_detail(detail);
    }
    RefusedLogin {
        fatal,
        rule: rule_id,
        reason: refusal.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-28T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("an instant")
    }

    fn policy(text: &str) -> Policy {
        curfew_policy::parse_policy("t.toml", text, jiff::tz::db())
            .expect("the policy")
            .policy
    }

    fn alice(member_of: &[String]) -> Applicant<'_> {
        Applicant {
            role: "alice",
            member_of,
            database: "postgres",
            application: "psql",
            client_addr: None,
        }
    }

    fn incident(reason: &str) -> LedgerLock {
        LedgerLock {
            kind: LockKind::Incident,
            rule: None,
            reason: reason.to_owned(),
            until: Some("2026-11-28T18:00:00Z".parse().expect("an instant")),
        }
    }

    fn window_lock() -> LedgerLock {
        LedgerLock {
            kind: LockKind::Window,
            rule: Some("after-hours".to_owned()),
            reason: "outside mon-fri 07:00-19:00".to_owned(),
            until: None,
        }
    }

    /// `n` other sessions of the role where [`alice`] logs in.
    fn sessions(n: usize) -> Vec<RoleSession> {
        let session = RoleSession {
            database: "postgres".to_owned(),
            application: "psql".to_owned(),
            client_addr: curfew_policy::ClientAddr::Socket,
        };
        vec![session; n]
    }

    const DENY_NOW: &str =
        "[[rule]]\nname = \"maintenance\"\ntimezone = \"UTC\"\ndeny = [\"11:00-13:00\"]\n";
    const CAP: &str = "[[rule]]\nname = \"two\"\nmax_sessions = 2\n";

    #[test]
    fn without_a_policy_locks_still_refuse_incident_first() {
        let locks = [window_lock(), incident("laptop stolen")];
        let state = RoleState {
            locks: &locks,
            others: &[],
        };
        let refused = refused(None, &alice(&[]), state, now()).expect("refused");
        assert_eq!(refused.rule, LOGIN_LOCK_RULE);
        assert_eq!(refused.fatal.code, sqlstate::INVALID_AUTHORIZATION);
        assert_eq!(
            refused.fatal.message,
            "logins for role alice are closed by an incident lock until 2026-11-28 18:00 UTC \
             (reason: laptop stolen)"
        );
        let only_window = [window_lock()];
        let state = RoleState {
            locks: &only_window,
            others: &[],
        };
        let refused = super::refused(None, &alice(&[]), state, now()).expect("refused");
        assert_eq!(refused.rule, "after-hours");
        assert!(
            refused
                .fatal
                .message
                .contains("a window lock curfew's agent recorded")
        );
        assert_eq!(
            super::refused(None, &alice(&[]), RoleState::default(), now()),
            None
        );
    }

    #[test]
    fn a_policy_window_comes_before_a_window_lock_and_an_incident_before_both() {
        let deny = policy(DENY_NOW);
        let locks = [window_lock()];
        let state = RoleState {
            locks: &locks,
            others: &[],
        };
        let refused = refused(Some(&deny), &alice(&[]), state, now()).expect("refused");
        assert_eq!(
            refused.fatal.message,
            "logins for role alice are closed by rule maintenance until 13:00 UTC (deny window \
             11:00-13:00)"
        );
        let locks = [window_lock(), incident("breach")];
        let state = RoleState {
            locks: &locks,
            others: &[],
        };
        let refused = super::refused(Some(&deny), &alice(&[]), state, now()).expect("refused");
        assert_eq!(refused.rule, LOGIN_LOCK_RULE);
    }

    #[test]
    fn a_cap_refuses_beyond_the_count_after_a_window_lock() {
        let cap = policy(CAP);
        assert!(counts_sessions(&cap));
        assert!(!counts_sessions(&policy(DENY_NOW)));
        let under = RoleState {
            locks: &[],
            others: &sessions(1),
        };
        assert_eq!(refused(Some(&cap), &alice(&[]), under, now()), None);
        let two = sessions(2);
        let full = RoleState {
            locks: &[],
            others: &two,
        };
        let refused = super::refused(Some(&cap), &alice(&[]), full, now()).expect("refused");
        assert_eq!(refused.rule, "two");
        assert!(
            refused.fatal.message.contains("session 3 of 3")
                && refused.fatal.message.contains("limit 2"),
            "{}",
            refused.fatal.message
        );
        let locks = [window_lock()];
        let locked = RoleState {
            locks: &locks,
            others: &two,
        };
        let refused = super::refused(Some(&cap), &alice(&[]), locked, now()).expect("refused");
        assert_eq!(refused.rule, "after-hours");
    }

    #[test]
    fn member_of_rules_see_the_memberships_given() {
        let rule = policy(
            "[[rule]]\nname = \"night\"\ntimezone = \"UTC\"\nmember_of = [\"night_shift\"]\ndeny = [\"11:00-13:00\"]\n",
        );
        let groups = ["night_shift".to_owned()];
        assert!(refused(Some(&rule), &alice(&groups), RoleState::default(), now()).is_some());
        assert_eq!(
            refused(Some(&rule), &alice(&[]), RoleState::default(), now()),
            None
        );
    }
}
