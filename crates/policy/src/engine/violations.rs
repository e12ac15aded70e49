//! `violations` rules, judged per error: an enforcement point that sees a session's errors (a
//! gateway) reports each one, and a counter per session (or per role, for `per = "role"`) and
//! rule says whether nothing happens, a warning is due (one more ends the session), or the
//! session ends. The batch engine never judges these rules: it sees no errors.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{Action, Condition, Policy, RuleId, Violations, ViolationsPer};
use crate::session::{Session, SessionKey};

/// Whose errors one counter holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counted {
    Session(SessionKey),
    Role(Arc<str>),
}

/// What one error means for the session that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorVerdict {
    /// Not a violation of any rule in force for the session, or not enough of them yet.
    Nothing,
    /// One more violation within the rule's window ends the session: `count - 1` are counted.
    Warn {
        /// The rule's stable id.
        rule: RuleId,
        /// Terminate, or only report.
        action: Action,
        /// Violations counted within the window.
        counted: u32,
        /// The rule's `count`.
        limit: u32,
    },
    /// The rule's `count` was reached within its window: the session ends (or, for a
    /// report-only rule, would). The counter starts afresh.
    End {
        /// The rule's stable id.
        rule: RuleId,
        /// Terminate, or only report.
        action: Action,
        /// The SQLSTATEs counted, oldest first.
        codes: Vec<String>,
        /// The human reason.
        reason: String,
    },
}

/// The counters of `violations` rules, kept by an enforcement point across errors (and across
/// reloads: they are keyed by the rule's stable id, so a reload that reorders rules keeps
/// them; a rule whose window or count changed applies its new ones to what was counted).
#[derive(Debug, Default)]
pub struct ViolationCounter {
    /// Per rule and session (or role): when each counted error happened, and its code.
    counts: HashMap<(RuleId, Counted), VecDeque<(Timestamp, String)>>,
    /// The rules that counted the last error (for an enforcement point's metrics).
    counted_by: Vec<RuleId>,
}

impl ViolationCounter {
    /// No error counted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `session` failed with SQLSTATE `code` at `at`. Every `violations` rule in force for the
    /// session (in scope, not exempt) whose `sqlstates` list the code counts it, in a sliding
    /// window: errors older than `within` before `at` are forgotten. The answer is the most
    /// severe over those rules (an end before a warning; on a tie, the first rule in the file).
    /// Calls must come in time order per session (or role).
    pub fn on_error(
        &mut self,
        policy: &Policy,
        session: &Session,
        code: &str,
        at: Timestamp,
    ) -> ErrorVerdict {
        self.counted_by.clear();
        if policy.exempt.session(session).is_some() {
            return ErrorVerdict::Nothing;
        }
        let mut verdict = ErrorVerdict::Nothing;
        for rule in &policy.rules {
            let Condition::Violations(v) = &rule.condition else {
                continue;
            };
            if !v.sqlstates.iter().any(|s| s == code) || !in_scope(rule, session) {
                continue;
            }
            let counted = match v.per {
                ViolationsPer::Session => Counted::Session(session.key()),
                ViolationsPer::Role => Counted::Role(session.role.clone()),
            };
            self.counted_by.push(rule.id());
            let key = (rule.id(), counted);
            let errors = self.counts.entry(key.clone()).or_default();
            let since = at - v.within.get();
            while errors.front().is_some_and(|(t, _)| *t <= since) {
                errors.pop_front();
            }
            errors.push_back((at, code.to_owned()));
            let n = u32::try_from(errors.len()).unwrap_or(u32::MAX);
            let this = if n >= v.count {
                let codes: Vec<String> = errors.drain(..).map(|(_, c)| c).collect();
                self.counts.remove(&key);
                ErrorVerdict::End {
                    rule: rule.id(),
                    action: rule.action,
                    reason: reason(v, &codes),
                    codes,
                }
            } else if n + 1 == v.count {
                ErrorVerdict::Warn {
                    rule: rule.id(),
                    action: rule.action,
                    counted: n,
                    limit: v.count,
                }
            } else {
                ErrorVerdict::Nothing
            };
            verdict = more_severe(verdict, this);
        }
        verdict
    }

    /// The rules (in scope, not exempt, listing its SQLSTATE) that counted the last error
    /// given to [`ViolationCounter::on_error`], in file order.
    pub fn counted_by(&self) -> &[RuleId] {
        &self.counted_by
    }

    /// Forget a session that ended (its own counters; a role's stay).
    pub fn forget_session(&mut self, session: &SessionKey) {
        self.counts
            .retain(|(_, counted), _| *counted != Counted::Session(*session));
    }

    /// Forget every error counted before `before` (to bound memory: call now and then with
    /// the longest `within` of the policy behind `now`).
    pub fn forget_before(&mut self, before: Timestamp) {
        self.counts.retain(|_, errors| {
            errors.retain(|(t, _)| *t > before);
            !errors.is_empty()
        });
    }
}

/// Whether the rule's scope admits the session (every key, as the batch engine's scope index
/// reads them).
fn in_scope(rule: &crate::model::Rule, s: &Session) -> bool {
    let scope = &rule.scope;
    scope.admits_role(&s.role, &s.member_of)
        && scope.admits_database(&s.database)
        && scope.admits_application(&s.application)
        && scope.rule_admits_address(&s.client_addr)
}

/// The first of the two unless the second is more severe (End > Warn > Nothing).
fn more_severe(a: ErrorVerdict, b: ErrorVerdict) -> ErrorVerdict {
    let rank = |v: &ErrorVerdict| match v {
        ErrorVerdict::Nothing => 0,
        ErrorVerdict::Warn { .. } => 1,
        ErrorVerdict::End { .. } => 2,
    };
    if rank(&b) > rank(&a) { b } else { a }
}

/// "3 errors 42501 by this session within 10m; limit 3": each code once (in the order first
/// counted), so the text stays short whatever the count; the audit record lists them all.
fn reason(v: &Violations, codes: &[String]) -> String {
    let whose = match v.per {
        ViolationsPer::Session => "this session",
        ViolationsPer::Role => "its role's sessions",
    };
    let mut distinct: Vec<&str> = Vec::new();
    for code in codes {
        if !distinct.contains(&code.as_str()) {
            distinct.push(code);
        }
    }
    format!(
        "{} errors {} by {whose} within {}; limit {}",
        codes.len(),
        distinct.join(", "),
        v.within,
        v.count
    )
}
