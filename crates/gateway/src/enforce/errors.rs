//! A `violations` rule on the server's errors as they arrive: each judged in order, a warning
//! queued one before the rule's count, the FATAL at it; with `[audit] include_statement` the
//! end quotes this session's statements whose errors were counted.

use std::sync::Arc;
use std::task::Context;

use curfew_policy::Condition;

use super::{CountedBy, Enforcer, PolicyEnd, Warned, WarnedOf, warning_notice, with_rule_message};
use crate::error::Fatal;
use crate::violations::{Judged, violation_fatal};

/// How many of a session's errors keep their statement for the end to quote (the newest).
pub(super) const STATEMENTS_KEPT: usize = 64;

impl Enforcer<'_> {
    /// The server's errors since the last poll, judged in order: a warning queued, or the
    /// FATAL that ends the session (the errors after it are not counted).
    pub(super) fn judge_errors(&mut self, cx: &mut Context<'_>) -> Option<Fatal> {
        let policy = self.policy.borrow().clone();
        let Some(policy) = policy else {
            self.watched.wire.take_errors();
            return None;
        };
        self.judged_errors = true;
        let session = self.session();
        let now = self.watched.clock.now();
        let codes: Vec<_> = self.watched.wire.take_errors().collect();
        for (code, statement) in codes {
            if let Some(statement) = statement {
                if self.statements.len() == STATEMENTS_KEPT {
                    self.statements.pop_front();
                }
                self.statements
                    .push_back((now, code.as_str().to_owned(), statement));
            }
            let judgement = self.violations.judge_shared(
                &policy,
                &session,
                code.as_str(),
                now,
                &self.metrics,
                self.shared_counts.is_some(),
            );
            // Counted in the database even when this session ends now: the role's other
            // sessions, on every gateway, count it.
            for count in judgement.shared {
                if let Some(fatal) = self.ask_shared_count(count) {
                    return Some(fatal);
                }
            }
            let counted_by = judgement.ended_here.then_some(CountedBy::ThisGatewayFirst);
            if let Some(fatal) = self.act(judgement.now, counted_by) {
                return Some(fatal);
            }
        }
        // The answers already in (and the wakers of those that are not).
        self.answered_counts(cx)
    }

    /// Gives the session what `judged` says: a warning queued, or the FATAL that ends it.
    pub(super) fn act(&mut self, judged: Judged, counted_by: Option<CountedBy>) -> Option<Fatal> {
        match judged {
            Judged::Nothing => None,
            Judged::Warn {
                message,
                rule,
                counted,
                limit,
            } => {
                self.metrics.policy_warned(&rule);
                let notice = warning_notice(
                    &message,
                    "the server's errors of these kinds are counted; stop what fails, or reconnect later",
                );
                match self.notice.as_mut() {
                    // After the timer's warning: both go out, one after the other.
                    Some(waiting) => waiting.extend_from_slice(&notice),
                    None => self.notice = Some(notice),
                }
                (self.on_warn)(&Warned {
                    rule,
                    reason: message,
                    about: WarnedOf::NextViolation { counted, limit },
                });
                None
            }
            Judged::End {
                rule,
                reason,
                codes,
                message,
            } => {
                let in_transaction = self.watched.wire.xact_start().is_some();
                let fatal = with_rule_message(
                    violation_fatal(&rule, &reason, in_transaction),
                    message.as_deref(),
                );
                self.metrics.policy_ended(&rule);
                let statements = self.quoted(&rule, &codes);
                self.ended = Some(PolicyEnd {
                    rule,
                    reason,
                    code: fatal.code,
                    counted: codes,
                    counted_by,
                    deadline: None,
                    at: self.watched.clock.now(),
                    statements,
                });
                Some(fatal)
            }
        }
    }

    /// The statements of this session's errors among `codes` within `rule`'s window (its
    /// count, oldest first; a `per = "role"` count may hold other sessions' errors, whose
    /// statements this gateway did not see): the newest that match, as many as were counted.
    /// None when the policy in force no longer asks for them (a reload that turned
    /// `include_statement` off applies to every session's next record).
    fn quoted(&self, rule: &str, codes: &[String]) -> Vec<(String, Arc<str>)> {
        let policy = self.policy.borrow().clone();
        let Some(policy) = policy.filter(|p| p.audit.include_statement) else {
            return Vec::new();
        };
        let within = policy.rules.iter().find_map(|r| match &r.condition {
            Condition::Violations(v) if r.id().as_str() == rule => Some(v.within.get()),
            _ => None,
        });
        let since = within.map(|w| self.watched.clock.now() - w);
        let mut quoted: Vec<(String, Arc<str>)> = self
            .statements
            .iter()
            .rev()
            .filter(|(at, code, _)| codes.contains(code) && since.is_none_or(|s| *at > s))
            .take(codes.len())
            .map(|(_, code, text)| (code.clone(), text.clone()))
            .collect();
        quoted.reverse();
        quoted
    }
}
