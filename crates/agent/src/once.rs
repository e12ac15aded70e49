//! What the agent says once per session and rule (a warning, a report-only record), remembered
//! by the rule's stable id (its name), not by its place in the policy: a reload that reorders
//! the rules then neither says it again nor takes another rule's record for this one.

use std::collections::HashSet;

use curfew_policy::{Decision, RuleId, SessionKey};

/// What a record was about: a rule, or a login lock. Kept apart because a policy may name a
/// rule like the lock (`login-lock`): its records and the lock's must not stand for each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A rule, by its stable id.
    Rule(RuleId),
    /// A login lock in force on the session's role.
    LoginLock,
}

/// The (session, subject) pairs already recorded.
#[derive(Debug, Default)]
pub(crate) struct OncePerRule {
    said: HashSet<(SessionKey, Subject)>,
}

impl OncePerRule {
    /// Whether nothing is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        self.said.is_empty()
    }

    /// Whether it was said for this session and rule.
    pub(crate) fn contains(&self, session: SessionKey, rule: &RuleId) -> bool {
        self.said.contains(&(session, Subject::Rule(rule.clone())))
    }

    /// The decisions whose (session, rule) was not said yet, in their order.
    pub(crate) fn unsaid<'d>(&self, decisions: &'d [Decision]) -> Vec<&'d Decision> {
        decisions
            .iter()
            .filter(|d| !self.contains(d.session, &d.rule_id))
            .collect()
    }

    /// Remember it; `false` if it already was.
    pub(crate) fn insert(&mut self, session: SessionKey, subject: Subject) -> bool {
        self.said.insert((session, subject))
    }

    /// Forget it (it could not be recorded after all).
    pub(crate) fn remove(&mut self, session: SessionKey, subject: &Subject) {
        self.said.remove(&(session, subject.clone()));
    }

    /// Forget the sessions that are gone.
    pub(crate) fn retain_live(&mut self, live: &HashSet<SessionKey>) {
        self.said.retain(|(k, _)| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curfew_policy::Cause;
    use jiff::Timestamp;

    fn decision(session: SessionKey, index: usize, name: &str) -> Decision {
        Decision {
            session,
            rule: index,
            rule_id: RuleId::new(name),
            deadline: Timestamp::UNIX_EPOCH,
            cause: Cause::OutsideWindows { since: None },
        }
    }

    /// Rules `a` then `b`; a reload puts `b` first. The decisions of the reloaded policy carry
    /// the other indexes, yet designate the same rules: what was said for `a` is not said
    /// again, and what was not said for `b` is not taken as said.
    #[test]
    fn a_reload_that_reorders_the_rules_neither_repeats_nor_skips() {
        let session = SessionKey {
            pid: 4711,
            backend_start: Timestamp::UNIX_EPOCH,
        };
        let mut once = OncePerRule::default();
        let before = [decision(session, 0, "a")];
        for d in once
            .unsaid(&before)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            assert!(once.insert(d.session, Subject::Rule(d.rule_id)));
        }
        let after = [decision(session, 0, "b"), decision(session, 1, "a")];
        let unsaid: Vec<&str> = once
            .unsaid(&after)
            .iter()
            .map(|d| d.rule_id.as_str())
            .collect();
        assert_eq!(unsaid, ["b"]);
        assert!(!once.insert(session, Subject::Rule(RuleId::new("a"))));
    }

    #[test]
    fn gone_sessions_are_forgotten() {
        let gone = SessionKey {
            pid: 1,
            backend_start: Timestamp::UNIX_EPOCH,
        };
        let live = SessionKey { pid: 2, ..gone };
        let mut once = OncePerRule::default();
        once.insert(gone, Subject::Rule(RuleId::new("a")));
        once.insert(live, Subject::Rule(RuleId::new("a")));
        once.retain_live(&HashSet::from([live]));
        assert!(!once.contains(gone, &RuleId::new("a")));
        assert!(once.contains(live, &RuleId::new("a")));
        once.remove(live, &Subject::Rule(RuleId::new("a")));
        assert!(once.is_empty());
    }

    /// A rule a policy names like the lock does not stand for the lock's record, nor the
    /// lock's for the rule's (regression: both were keyed by the name `login-lock`).
    #[test]
    fn a_rule_named_like_the_login_lock_is_not_the_lock() {
        let session = SessionKey {
            pid: 7,
            backend_start: Timestamp::UNIX_EPOCH,
        };
        let mut once = OncePerRule::default();
        assert!(once.insert(session, Subject::LoginLock));
        let rule = RuleId::new(curfew_policy::LOGIN_LOCK_RULE);
        assert!(!once.contains(session, &rule));
        assert!(once.insert(session, Subject::Rule(rule.clone())));
        assert!(!once.insert(session, Subject::LoginLock));
        assert!(!once.insert(session, Subject::Rule(rule)));
    }
}
