//! Explicit overrides of the engine's decisions for particular sessions: today only the window
//! edge a `curfew verify` canary is tested at. The engine never reads them from session
//! attributes itself; its caller builds them (for canaries: [`Overrides::canary_edges`], from
//! the role names verify gives its canaries) and passes them in.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::model::{Condition, Policy, RuleId, canary_edge, canary_rule};
use crate::session::{Session, SessionKey};

/// An edge a window rule must end one session at, at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeOverride {
    /// The window rule (`allow` or `deny`) the edge is for.
    pub rule: RuleId,
    /// The instant the rule ends the session at the latest.
    pub at: Timestamp,
}

/// Overrides of the engine's decisions, by session.
///
/// **Only ever earlier.** An edge applies to one session and one window rule that already
/// applies to it (in scope, not exempt): that rule's deadline becomes the earlier of its own
/// and the edge. It never exempts a session, never delays an end, never touches another rule
/// or another session; an edge for a rule that is not a window rule, or that the policy does
/// not have, is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    edges: HashMap<SessionKey, EdgeOverride>,
}

impl Overrides {
    /// No override: the engine decides from the policy alone.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether there is no override at all.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Have `rule` end `session` at `at` at the latest (replacing any edge set before for it).
    pub fn set_edge(&mut self, session: SessionKey, rule: RuleId, at: Timestamp) {
        self.edges.insert(session, EdgeOverride { rule, at });
    }

    /// The edge set for a session, if any.
    pub fn edge(&self, session: &SessionKey) -> Option<&EdgeOverride> {
        self.edges.get(session)
    }

    /// Every edge, in no particular order.
    pub fn edges(&self) -> impl Iterator<Item = (&SessionKey, &EdgeOverride)> {
        self.edges.iter()
    }

    /// The edges of the `curfew verify` window-edge canaries among `sessions`: for a session
    /// whose role carries [`crate::CANARY_MARK`], the rule index that follows it and an edge
    /// (see [`canary_edge`]), when that rule is a window rule of `policy`. This is what the
    /// agent passes, so that verify can watch a window close a few seconds ahead; since an
    /// override only ever shortens, a role naming itself this way can only shorten its own
    /// sessions.
    pub fn canary_edges(policy: &Policy, sessions: &[Session]) -> Self {
        let mut overrides = Self::none();
        let windows = policy
            .rules
            .iter()
            .any(|r| matches!(r.condition, Condition::Allow(_) | Condition::Deny(_)));
        if !windows {
            return overrides;
        }
        for s in sessions {
            let Some(index) = canary_rule(&s.role) else {
                continue;
            };
            let Some(rule) = policy.rules.get(index) else {
                continue;
            };
            if !matches!(rule.condition, Condition::Allow(_) | Condition::Deny(_)) {
                continue;
            }
            if let Some(at) = canary_edge(&s.role) {
                overrides.set_edge(s.key(), rule.id(), at);
            }
        }
        overrides
    }
}
