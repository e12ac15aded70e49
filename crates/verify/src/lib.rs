//! `curfew verify`: the control test the Oracle STIG describes (open a session, leave it idle
//! past the limit, try to use it), planned rule by rule without I/O, and run live by [`live`]
//! against an enforcement point behind [`live::target::CanaryTarget`].
//!
//! Every rule that can be tested live is, with a *canary*: a temporary role, created for the
//! test, whose session sits in the rule's scope. An idle-type rule's canary waits out the limit
//! (or `[verify] test_limit`, said plainly); a window rule's canary is given an edge a few
//! seconds ahead in its role name, which the agent's engine honours as a stricter deadline; a
//! session cap gets `cap + 1` canary sessions; login locks are tested on a canary role locked
//! and unlocked through the ledger. What cannot be tested live is EVALUATED (the engine's
//! verdict on a synthetic session at each boundary — not a live proof) or NOT TESTED, with why.
//! No rule passes by evaluation alone.

mod canary;
mod evaluate;
mod gateway;
pub mod live;
mod outcome;
mod record;
mod special;

pub use canary::{Activity, Canary, canary_for, expect_ended_by, sample_session};
pub use evaluate::{Probe, evaluate_rule};
pub use gateway::{
    GATEWAY_ENDED, GatewayPlanned, Through, gateway_address, judge_fatal, plan_gateway,
    received_text,
};
pub use outcome::{Method, RuleResult, Status, counts, summary};
pub use record::control_records;
pub use special::{
    CAP_HORIZON, EDGE_LEAD, MAX_CAP_SESSIONS, cap_canary, cap_sessions, edge_canary, expect_cap,
    expect_edge, lock_canary_role, lock_rules,
};

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
    /// Open a canary session and wait for the agent to end it (an idle-type rule).
    Live {
        /// The canary to create.
        canary: Canary,
        /// The limit waited: the rule's, or `[verify] test_limit` when shorter (and not
        /// `--full`).
        limit: Limit,
        /// The rule's configured limit.
        configured: Limit,
    },
    /// A window rule: a canary whose window closes [`EDGE_LEAD`] after it is made (see
    /// [`edge_canary`]), watched to its end at that edge.
    Edge,
    /// A session cap: `cap + 1` sessions of this canary, the newest to be ended.
    Cap {
        /// The canary role.
        canary: Canary,
        /// The rule's cap.
        cap: u32,
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

/// How verify was asked to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Idle-type rules with a longer limit (as waited) are evaluated instead.
    pub max_wait: Limit,
    /// Wait each idle-type rule's configured limit, not `[verify] test_limit`.
    pub full: bool,
}

/// Decide, for each rule in policy order, how it is tested. `token` makes canary names unique
/// to this run (lowercase letters and digits).
pub fn plan(policy: &Policy, options: Options, now: jiff::Timestamp, token: &str) -> Vec<Planned> {
    policy
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| plan_rule(policy, index, rule, options, now, token))
        .collect()
}

fn plan_rule(
    policy: &Policy,
    index: usize,
    rule: &Rule,
    options: Options,
    now: jiff::Timestamp,
    token: &str,
) -> Planned {
    let max_wait = options.max_wait;
    if let Condition::Violations(_) = rule.condition {
        return Planned::NotTested {
            why: if rule.action == curfew_policy::Action::Report {
                "NOT ENFORCED: a report-only violations rule is documentation (the agent cannot see statement errors; the curfew gateway counts them only for rules that end sessions)".to_owned()
            } else {
                "a violations rule is enforced by the curfew gateway for sessions through it only, so it is tested through the gateway (see that section), not here".to_owned()
            },
        };
    }
    if rule.action == curfew_policy::Action::Report {
        return Planned::NotTested {
            why: "a report-only rule ends no session, so there is nothing to see end; its records are session_reported".to_owned(),
        };
    }
    match rule.condition {
        Condition::Allow(_) | Condition::Deny(_) => {
            return match edge_canary(policy, index, now + EDGE_LEAD, token) {
                Ok(_) => Planned::Edge,
                Err(why) => Planned::Evaluate {
                    why: format!("no canary can watch a window edge: {why}"),
                },
            };
        }
        Condition::MaxSessions(cap) => {
            return match cap_canary(policy, index, cap, now, token) {
                Ok(canary) => Planned::Cap { canary, cap },
                Err(why) => Planned::Evaluate {
                    why: format!("no canary sessions can test the cap: {why}"),
                },
            };
        }
        _ => {}
    }
    let Some(configured) = rule.condition.limit() else {
        return Planned::NotTested {
            why: "the agent does not enforce this condition".to_owned(),
        };
    };
    // A canary is held to `[verify] test_limit` when that is shorter, unless --full asks for
    // the configured limit; then its name carries no rule index, so no override reaches it.
    let (limit, name) = if options.full {
        (configured, format!("f{index}_{token}"))
    } else {
        (
            policy.verify.canary_limit(configured),
            format!("{index}_{token}"),
        )
    };
    // A scope no canary can enter says so first: no --max-wait would help.
    if let Err(why) = canary::in_scope(policy, index, &name) {
        return Planned::Evaluate { why };
    }
    if limit > max_wait {
        return Planned::Evaluate {
            why: format!(
                "its limit ({limit}) is longer than --max-wait ({max_wait}){}",
                if policy.verify.test_limit.is_none() {
                    "; [verify] test_limit or a longer --max-wait would let a canary test it"
                } else {
                    "; a longer --max-wait would let a canary test it"
                }
            ),
        };
    }
    // One role per rule: two rules with the same role pattern must not share a canary.
    // The rule's index follows the mark, so that a test limit applies to this rule only.
    match canary_for(policy, index, limit, now, &name) {
        Ok(canary) => Planned::Live {
            canary,
            limit,
            configured,
        },
        Err(why) => Planned::Evaluate { why },
    }
}

#[cfg(test)]
mod tests;
