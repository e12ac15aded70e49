//! What the engine decided about one session, and the sentence that explains it.

use jiff::Timestamp;

use crate::duration::{Limit, format_age};
use crate::model::{Condition, Policy, Rule, RuleId};
use crate::session::SessionKey;

/// Why a rule fires for a session, with the facts the reason sentence and the guarded
/// termination need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Cause {
    /// Idle since `since` (its `state_change`); the guard re-checks both.
    Idle {
        /// The observed `state_change`.
        since: Timestamp,
        /// The rule's limit.
        limit: Limit,
    },
    /// Idle in a transaction since `since` (its `state_change`); the guard re-checks both.
    IdleInTransaction {
        /// The observed `state_change`.
        since: Timestamp,
        /// The rule's limit.
        limit: Limit,
    },
    /// Connected since `started`.
    Lifetime {
        /// `backend_start`.
        started: Timestamp,
        /// The rule's limit.
        limit: Limit,
    },
    /// Outside every `allow` window since `since` (None: the windows never opened).
    OutsideWindows {
        /// When the last window closed.
        since: Option<Timestamp>,
    },
    /// Inside a `deny` window since `since`.
    InsideDenyWindow {
        /// When the window opened.
        since: Option<Timestamp>,
    },
    /// The session reached the edge an explicit override set for this window rule (a `curfew
    /// verify` canary's, see [`crate::Overrides`]): it only ever ends a session earlier.
    CanaryEdge {
        /// The edge.
        edge: Timestamp,
    },
    /// One of `count` sessions of the role in the rule's scope, ranked `rank` by age (1 = oldest).
    OverSessionLimit {
        /// Position by connection time, oldest first.
        rank: u32,
        /// Sessions of the role counted.
        count: u32,
        /// The rule's limit.
        limit: u32,
    },
}

impl Cause {
    /// Whether the session's idleness is what fires the rule, so the termination must re-check
    /// `state` and `state_change` (a statement in between resets the clock).
    pub fn depends_on_idleness(&self) -> bool {
        matches!(self, Cause::Idle { .. } | Cause::IdleInTransaction { .. })
    }
}

/// One rule's verdict on one session: which rule, by when, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The session's identity.
    pub session: SessionKey,
    /// Index of the rule in [`Policy::rules`] of the policy the decision was made with.
    pub rule: usize,
    /// The rule's stable id (its name): it designates the same rule in a reloaded policy whose
    /// rules are in another order. Not serialized (`curfew plan --format json` names the rule
    /// on its own).
    #[serde(skip)]
    pub rule_id: RuleId,
    /// When the condition is (or was) met. For a session already due, this is in the past and
    /// `now - deadline` is how late the action is.
    pub deadline: Timestamp,
    /// The facts behind it.
    pub cause: Cause,
}

impl Decision {
    /// The rule that fired.
    pub fn rule<'p>(&self, policy: &'p Policy) -> &'p Rule {
        &policy.rules[self.rule]
    }

    /// The human reason, as of `now`: "idle for 15m02s; limit 15m".
    pub fn reason(&self, policy: &Policy, now: Timestamp) -> String {
        let rule = self.rule(policy);
        match self.cause {
            Cause::Idle { since, limit } => {
                format!(
                    "idle for {}; limit {limit}",
                    format_age(now.duration_since(since))
                )
            }
            Cause::IdleInTransaction { since, limit } => format!(
                "idle in transaction for {}; limit {limit}",
                format_age(now.duration_since(since))
            ),
            Cause::Lifetime { started, limit } => format!(
                "connected for {}; limit {limit}",
                format_age(now.duration_since(started))
            ),
            Cause::OutsideWindows { since } => {
                let windows = describe_windows(rule);
                match since {
                    Some(t) if t <= now => format!(
                        "outside the allowed windows ({windows}) since {}",
                        local_time(rule, t)
                    ),
                    Some(t) => format!(
                        "the allowed windows ({windows}) close at {}",
                        local_time(rule, t)
                    ),
                    None => format!("outside the allowed windows ({windows})"),
                }
            }
            Cause::InsideDenyWindow { since } => {
                let windows = describe_windows(rule);
                match since {
                    Some(t) if t <= now => format!(
                        "inside the deny window ({windows}) since {}",
                        local_time(rule, t)
                    ),
                    Some(t) => format!(
                        "the deny window ({windows}) opens at {}",
                        local_time(rule, t)
                    ),
                    None => format!("inside the deny window ({windows})"),
                }
            }
            Cause::CanaryEdge { edge } => format!(
                "a curfew verify canary: the test edge of this window rule ({edge}, given in its role name) was reached"
            ),
            Cause::OverSessionLimit { rank, count, limit } => format!(
                "session {rank} of {count} of its role, oldest first; limit {limit} per role"
            ),
        }
    }
}

fn describe_windows(rule: &Rule) -> String {
    match &rule.condition {
        Condition::Allow(s) | Condition::Deny(s) => {
            let list: Vec<&str> = s.windows().iter().map(|w| w.text.as_str()).collect();
            format!(
                "{} {}",
                list.join(", "),
                s.zone().iana_name().unwrap_or("UTC")
            )
        }
        _ => String::new(),
    }
}

fn local_time(rule: &Rule, at: Timestamp) -> String {
    let zone = rule
        .condition
        .schedule()
        .map(|s| s.zone().clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    at.to_zoned(zone).strftime("%Y-%m-%d %H:%M %Z").to_string()
}
