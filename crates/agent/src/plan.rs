//! What the agent would do at an instant, without doing it (`curfew plan`): the verdict on each
//! session, judged as the agent's engine judges it, and when each `lock_logins` rule locks and
//! restores which roles.

use curfew_backend::RoleInfo;
use curfew_policy::{Overrides, Policy, Session, Verdict, assess_with};
use jiff::Timestamp;

use crate::locks::covered_roles;

/// The verdict on each of `sessions` (in their order) at `at`, with the overrides the agent's
/// engine takes (verify's canary edges), so that the plan shows what the agent would do.
pub fn judge_sessions(policy: &Policy, sessions: &[Session], at: Timestamp) -> Vec<Verdict> {
    let overrides = Overrides::canary_edges(policy, sessions);
    assess_with(policy, sessions, at, &overrides)
}

/// One `lock_logins` rule's window as of an instant, and the roles it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginWindowPlan {
    /// The rule's name.
    pub rule: String,
    /// The roles whose logins it locks (superusers, curfew's own role and exempt roles left
    /// out), in the server's order.
    pub roles: Vec<String>,
    /// Whether logins are locked at the instant.
    pub locked: bool,
    /// When that changes (`None`: it stays so).
    pub until: Option<Timestamp>,
}

/// Every `lock_logins` rule of `policy` at `at`, in the policy's order, with the roles of
/// `roles` it covers; `own_role` is the role curfew connects as (never locked).
pub fn login_windows(
    policy: &Policy,
    roles: &[RoleInfo],
    own_role: &str,
    at: Timestamp,
) -> Vec<LoginWindowPlan> {
    policy
        .rules
        .iter()
        .filter(|r| r.lock_logins)
        .filter_map(|rule| {
            let window = rule.login_window(at)?;
            Some(LoginWindowPlan {
                rule: rule.name.clone(),
                roles: covered_roles(policy, rule, roles, own_role)
                    .map(|r| r.name.clone())
                    .collect(),
                locked: window.locked,
                until: window.until,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[rule]]
name = "hours"
allow = ["Mon-Fri 07:00-09:00"]
timezone = "America/New_York"
roles = ["analyst_*"]
lock_logins = true

[[rule]]
name = "idle"
idle = "1m"
"#;

    fn policy() -> Policy {
        curfew_policy::parse_policy("t.toml", POLICY, jiff::tz::db())
            .unwrap_or_else(|e| panic!("{e}"))
            .policy
    }

    fn role(name: &str, superuser: bool) -> RoleInfo {
        RoleInfo {
            oid: 1,
            name: name.to_owned(),
            can_login: true,
            superuser,
            member_of: Vec::new(),
        }
    }

    #[test]
    fn a_lock_logins_rule_names_the_roles_it_covers_and_when_it_changes() {
        let roles = [
            role("analyst_kim", false),
            role("analyst_root", true),
            role("analyst_curfew", false),
            role("ops", false),
        ];
        // Monday 10:00 in New York: outside 07:00-09:00, locked until Tuesday 07:00 (12:00Z).
        let at: Timestamp = "2026-11-23T15:00:00Z".parse().unwrap();
        let plans = login_windows(&policy(), &roles, "analyst_curfew", at);
        assert_eq!(
            plans,
            [LoginWindowPlan {
                rule: "hours".to_owned(),
                roles: vec!["analyst_kim".to_owned()],
                locked: true,
                until: Some("2026-11-24T12:00:00Z".parse().unwrap()),
            }]
        );
        // Inside the window: allowed until 09:00 New York (14:00Z).
        let at: Timestamp = "2026-11-24T13:00:00Z".parse().unwrap();
        let plans = login_windows(&policy(), &roles, "analyst_curfew", at);
        assert!(!plans[0].locked);
        assert_eq!(
            plans[0].until,
            Some("2026-11-24T14:00:00Z".parse().unwrap())
        );
    }
}
