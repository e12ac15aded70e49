//! Sessions curfew gateway logged in are the gateway's to end for the rules it enforces itself
//! (it ends them at the deadline with a FATAL naming the rule): the agent leaves them alone
//! until `[agent] gateway_grace` past the deadline instead of racing it, then ends them and
//! says the gateway did not. Only the registry row marks a gateway session (a client cannot
//! write it); a client's own `curfew.client_addr` setting gets no grace. Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashSet};

use curfew_backend::GatewayClient;
use curfew_policy::{Cause, Decision, Plan, Policy, SessionKey};
use jiff::{SignedDuration, Timestamp};

/// Whether the gateway ends a session itself for this decision: the time rules and windows it
/// arms a timer for (rules scoped by `member_of` included: the gateway reads the role's
/// memberships at login; one that changed since is the grace's to catch). Session caps, login
/// locks and verify's canary edges stay the agent's.
pub fn gateway_enforces(policy: &Policy, decision: &Decision) -> bool {
    if policy.rules.get(decision.rule).is_none() {
        return false;
    }
    matches!(
        decision.cause,
        Cause::Idle { .. }
            | Cause::IdleInTransaction { .. }
            | Cause::Lifetime { .. }
            | Cause::OutsideWindows { .. }
            | Cause::InsideDenyWindow { .. }
    )
}

/// A termination left to the gateway for now: the agent ends the session at `at` (the
/// deadline plus the grace) if the gateway has not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deferred {
    /// When the agent acts (server clock).
    pub(crate) at: Timestamp,
    /// The decision, with its own deadline.
    pub(crate) decision: Decision,
}

/// What the agent leaves to the gateway in one plan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Left {
    /// Terminations taken out of the plan, earliest `at` first: the agent looks again then.
    pub(crate) deferred: Vec<Deferred>,
    /// Sessions the plan still ends now because the grace has passed: the gateway missed them.
    pub(crate) missed: HashSet<SessionKey>,
    /// Every session the plan leaves to the gateway for now (a window lock's end of them
    /// waits as their window rule's does).
    pub(crate) sessions: HashSet<SessionKey>,
}

/// Take out of `plan` what the gateway ends itself within `grace` (terminations due now or
/// upcoming, and their warnings: the gateway warns in the session), for the sessions in
/// `gateway` (the registry's rows in the snapshot). A termination whose deadline is `grace`
/// past at `now` stays in the plan, marked missed.
pub(crate) fn leave_to_gateway(
    policy: &Policy,
    gateway: &BTreeMap<SessionKey, GatewayClient>,
    grace: SignedDuration,
    now: Timestamp,
    plan: &mut Plan,
) -> Left {
    let mut left = Left::default();
    if gateway.is_empty() {
        return left;
    }
    let theirs = |d: &Decision| gateway.contains_key(&d.session) && gateway_enforces(policy, d);
    let mut keep = Vec::with_capacity(plan.terminations.len());
    for d in std::mem::take(&mut plan.terminations) {
        if !theirs(&d) {
            keep.push(d);
            continue;
        }
        let at = d.deadline.saturating_add(grace).unwrap_or(Timestamp::MAX);
        if at <= now {
            left.missed.insert(d.session);
            keep.push(d);
        } else {
            left.sessions.insert(d.session);
            left.deferred.push(Deferred { at, decision: d });
        }
    }
    plan.terminations = keep;
    let mut keep = Vec::with_capacity(plan.upcoming.len());
    for d in std::mem::take(&mut plan.upcoming) {
        if theirs(&d) {
            let at = d.deadline.saturating_add(grace).unwrap_or(Timestamp::MAX);
            left.sessions.insert(d.session);
            left.deferred.push(Deferred { at, decision: d });
        } else {
            keep.push(d);
        }
    }
    plan.upcoming = keep;
    plan.warnings.retain(|d| !theirs(d));
    left.deferred.sort_by_key(|d| d.at);
    left
}

#[cfg(test)]
#[path = "gateway_grace_tests.rs"]
mod tests;
