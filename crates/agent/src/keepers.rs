//! What the guard of a session over a `max_sessions` limit must still find when it signals:
//! the older sessions that keep their places. Without them the session may be within the limit
//! by then, and is left alone.

use std::collections::HashSet;

use curfew_backend::Snapshot;
use curfew_policy::{Plan, Session, SessionKey};

use curfew_policy::LoadedPolicy;

/// The older sessions that keep their places under a `max_sessions` rule, for the guard of a
/// session beyond the limit: as the engine ranks them, the oldest `limit` sessions of the same
/// role in the rule's scope that are not exempt and not ended now by another rule.
pub(crate) fn keepers(
    loaded: &LoadedPolicy,
    snapshot: &Snapshot,
    plan: &Plan,
    over: &Session,
    rule: usize,
    limit: u32,
) -> Vec<SessionKey> {
    let scope = &loaded.policy.rules[rule].scope;
    let ending: HashSet<SessionKey> = plan.terminations.iter().map(|d| d.session).collect();
    let mut older: Vec<&Session> = snapshot
        .sessions
        .iter()
        .filter(|s| {
            s.role == over.role
                && (s.backend_start, s.pid) < (over.backend_start, over.pid)
                && !ending.contains(&s.key())
                && scope.admits_role(&s.role, &s.member_of)
                && scope.admits_database(&s.database)
                && scope.admits_application(&s.application)
                && scope.rule_admits_address(&s.client_addr)
                && loaded.policy.exempt.session(s).is_none()
        })
        .collect();
    older.sort_unstable_by_key(|s| (s.backend_start, s.pid));
    older.truncate(limit as usize);
    older.iter().map(|s| s.key()).collect()
}
