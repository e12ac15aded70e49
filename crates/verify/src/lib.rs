//! `curfew verify` without I/O: the control test the Oracle STIG describes (open a session,
//! leave it idle past the limit, try to use it), planned rule by rule.
//!
//! A rule whose limit can be waited out is tested live with a *canary*: a temporary role,
//! created for the test, whose session sits in the rule's scope. Everything else — limits over
//! `--max-wait`, time windows, session caps, canaries that cannot be made — is checked by
//! evaluation: the engine's verdict on a synthetic session just before and just after each
//! limit or window boundary. Nothing is passed silently: every rule gets a method and a status.

mod canary;
mod evaluate;
mod outcome;

pub use canary::{Activity, Canary, canary_for, expect_ended_by, sample_session};
pub use evaluate::{Probe, evaluate_rule};
pub use outcome::{Method, RuleResult, Status, summary};

/// Rule `index` checked by evaluation around `now`, with `why` it was not tested live.
pub fn by_evaluation(
    policy: &Policy,
    index: usize,
    why: &str,
    now: jiff::Timestamp,
    token: &str,
) -> RuleResult {
    RuleResult::evaluated(
        &policy.rules[index],
        why,
        evaluate_rule(policy, index, now, token),
    )
}

use curfew_policy::{Condition, Limit, Policy, Rule};

/// What verify does with one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Open a canary session and wait for the agent to end it.
    Live {
        /// The canary to create.
        canary: Canary,
        /// The rule's limit.
        limit: Limit,
    },
    /// Check the engine's verdicts at the rule's boundaries; `why` says why not live.
    Evaluate {
        /// Why the rule is not tested live.
        why: String,
    },
    /// Nothing to test: `why` says so.
    NotTested {
        /// Why (a report-only rule, a gateway-only rule).
        why: String,
    },
}

/// Decide, for each rule in policy order, how it is tested. `max_wait` bounds the limits
/// waited out; `token` makes canary names unique to this run (lowercase letters and digits).
pub fn plan(policy: &Policy, max_wait: Limit, now: jiff::Timestamp, token: &str) -> Vec<Planned> {
    policy
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| plan_rule(policy, index, rule, max_wait, now, token))
        .collect()
}

fn plan_rule(
    policy: &Policy,
    index: usize,
    rule: &Rule,
    max_wait: Limit,
    now: jiff::Timestamp,
    token: &str,
) -> Planned {
    if let Condition::Violations(_) = rule.condition {
        return Planned::NotTested {
            why: "NOT ENFORCED: no running curfew component enforces a violations rule (the agent cannot see statement errors; the gateway does not exist yet)".to_owned(),
        };
    }
    if rule.action == curfew_policy::Action::Report {
        return Planned::NotTested {
            why: "a report-only rule ends no session, so there is nothing to see end; its records are session_reported".to_owned(),
        };
    }
    let Some(limit) = rule.condition.limit() else {
        return Planned::Evaluate {
            why: match rule.condition {
                Condition::MaxSessions(_) => "a session cap is checked by evaluation".to_owned(),
                _ => {
                    "a time-window rule is not waited out; its boundaries are evaluated".to_owned()
                }
            },
        };
    };
    // A canary is held to `[verify] test_limit` when that is shorter.
    let limit = policy.verify.canary_limit(limit);
    if limit > max_wait {
        return Planned::Evaluate {
            why: format!(
                "its limit ({limit}) is longer than --max-wait ({max_wait}){}",
                if policy.verify.test_limit.is_none() {
                    "; [verify] test_limit would let a canary test it sooner"
                } else {
                    ""
                }
            ),
        };
    }
    // One role per rule: two rules with the same role pattern must not share a canary.
    // The rule's index follows the mark, so that a test limit applies to this rule only.
    match canary_for(policy, index, limit, now, &format!("{index}_{token}")) {
        Ok(canary) => Planned::Live { canary, limit },
        Err(why) => Planned::Evaluate { why },
    }
}

#[cfg(test)]
mod tests;
