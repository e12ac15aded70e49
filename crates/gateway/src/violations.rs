//! `violations` rules in the gateway (issue 17): the server's ErrorResponses, read by
//! [`crate::activity`], counted by the engine's [`ViolationCounter`]. One book per gateway
//! process, shared by its sessions, so `per = "role"` counts across the role's sessions
//! through this gateway (not across gateway instances: each has its own book). Its lock is
//! taken only when an error arrives, never on the relay's steady path.

use std::sync::{Mutex, PoisonError};

use curfew_policy::{
    Action, Condition, ErrorVerdict, Policy, Session, SessionKey, ViolationCounter,
};
use jiff::{SignedDuration, Timestamp};

use crate::error::{Fatal, sqlstate};
use crate::metrics::Metrics;

/// How often counts older than every rule's window are swept (bounds the book's memory).
const SWEEP_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The gateway's counters of `violations` rules (see the module).
#[derive(Debug, Default)]
pub(crate) struct ViolationBook {
    inner: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    counter: ViolationCounter,
    last_sweep: Option<Timestamp>,
}

/// What the session gets for its errors.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Nothing to do.
    Nothing,
    /// A WARNING notice: one more such error ends the session.
    Warn {
        /// The rule's stable id.
        rule: String,
        /// The notice's message.
        message: String,
    },
    /// The session ends.
    End {
        /// The rule's stable id.
        rule: String,
        /// The human reason.
        reason: String,
        /// The SQLSTATEs counted, oldest first (for the audit record).
        codes: Vec<String>,
        /// The rule's `message`, if it has one.
        message: Option<String>,
    },
}

impl ViolationBook {
    /// An empty book.
    pub(crate) fn new() -> ViolationBook {
        ViolationBook::default()
    }

    /// `session` got an ErrorResponse with `code` at `at`: counted against every ending
    /// `violations` rule in force for it (and in `metrics`, by rule and code). Report-only
    /// rules are documentation (NOT ENFORCED): their verdicts are dropped, nothing counted.
    pub(crate) fn judge(
        &self,
        policy: &Policy,
        session: &Session,
        code: &str,
        at: Timestamp,
        metrics: &Metrics,
    ) -> Judged {
        let mut book = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if book
            .last_sweep
            .is_none_or(|last| at.duration_since(last) >= SWEEP_EVERY)
        {
            book.last_sweep = Some(at);
            let longest = policy
                .rules
                .iter()
                .filter_map(|r| match &r.condition {
                    Condition::Violations(v) => Some(v.within.get()),
                    _ => None,
                })
                .max()
                .unwrap_or(SignedDuration::ZERO);
            book.counter.forget_before(at - longest);
        }
        let verdict = book.counter.on_error(policy, session, code, at);
        for id in book.counter.counted_by() {
            if policy
                .rules
                .iter()
                .any(|r| r.id() == *id && r.action == Action::Terminate)
            {
                metrics.violation_counted(id.as_str(), code);
            }
        }
        drop(book);
        match verdict {
            ErrorVerdict::Warn {
                rule,
                action: Action::Terminate,
                counted,
                limit,
            } => {
                let within =
                    policy
                        .rules
                        .iter()
                        .find(|r| r.id() == rule)
                        .and_then(|r| match &r.condition {
                            Condition::Violations(v) => Some(v),
                            _ => None,
                        });
                let (codes, window) = within
                    .map(|v| (v.sqlstates.join(", "), v.within.to_string()))
                    .unwrap_or_default();
                Judged::Warn {
                    message: format!(
                        "one more error with SQLSTATE {codes} within {window} ends this session: {counted} counted; limit {limit} (rule {rule})"
                    ),
                    rule: rule.to_string(),
                }
            }
            ErrorVerdict::End {
                rule,
                action: Action::Terminate,
                codes,
                reason,
            } => Judged::End {
                message: policy
                    .rules
                    .iter()
                    .find(|r| r.id() == rule)
                    .and_then(|r| r.message.clone()),
                rule: rule.to_string(),
                reason,
                codes,
            },
            _ => Judged::Nothing,
        }
    }

    /// Forgets a session that ended (its own counts; its role's stay).
    pub(crate) fn forget_session(&self, session: &SessionKey) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counter
            .forget_session(session);
    }
}

/// The FATAL that ends a session for its errors. 57P01 (admin_shutdown) as for the other
/// rules that are not idleness: the session is ended by an administrator's policy, and drivers
/// treat it as the connection's end. No SQLSTATE of PostgreSQL's means "too many errors";
/// 42501 or the code counted would read as one more failed statement, which a driver may
/// retry on the same (now closed) connection.
pub(crate) fn violation_fatal(rule: &str, reason: &str, in_transaction: bool) -> Fatal {
    Fatal::new(
        sqlstate::ADMIN_SHUTDOWN,
        format!("terminating connection: {reason} (rule {rule})"),
    )
    .with_hint(violation_hint(in_transaction))
}

/// The HINT of a violation's FATAL: whether a transaction was open when it was sent.
pub(crate) fn violation_hint(in_transaction: bool) -> &'static str {
    if in_transaction {
        "reconnect to continue; unsaved work in the open transaction was rolled back"
    } else {
        "reconnect to continue"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use curfew_policy::{BackendType, SessionState, parse_policy};

    use super::*;

    fn policy(action: &str, per: &str) -> Policy {
        let text = format!(
            "[[rule]]\nname = \"misbehaviour\"\naction = \"{action}\"\nviolations = {{ sqlstates = [\"42501\"], count = 3, within = \"10m\", per = \"{per}\" }}\n[[target]]\nname = \"db\"\nurl = \"postgresql://curfew@db/postgres\"\n[gateway]\n"
        );
        match parse_policy("t.toml", &text, jiff::tz::db()) {
            Ok(parsed) => parsed.policy,
            Err(e) => panic!("{e}"),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn session(pid: i64) -> Session {
        Session {
            pid,
            backend_start: at(0),
            xact_start: None,
            state: SessionState::Idle,
            state_change: Some(at(0)),
            role: Arc::from("kim"),
            member_of: Arc::from(Vec::<String>::new()),
            database: Arc::from("postgres"),
            client_addr: None.into(),
            application: Arc::from("psql"),
            backend_type: BackendType::ClientBackend,
        }
    }

    #[test]
    fn two_errors_warn_the_third_ends_other_codes_do_not_count() {
        let p = policy("terminate", "session");
        let book = ViolationBook::new();
        let m = Metrics::new();
        let s = session(1);
        assert_eq!(book.judge(&p, &s, "42501", at(1), &m), Judged::Nothing);
        assert_eq!(book.judge(&p, &s, "42P01", at(2), &m), Judged::Nothing);
        let Judged::Warn { message, .. } = book.judge(&p, &s, "42501", at(3), &m) else {
            panic!("no warning after the second");
        };
        assert_eq!(
            message,
            "one more error with SQLSTATE 42501 within 10m ends this session: 2 counted; limit 3 (rule misbehaviour)"
        );
        let Judged::End { reason, codes, .. } = book.judge(&p, &s, "42501", at(4), &m) else {
            panic!("not ended at the third");
        };
        assert_eq!(reason, "3 errors 42501 by this session within 10m; limit 3");
        assert_eq!(codes, ["42501", "42501", "42501"]);
        // Counted by rule and code: only the rule's own codes have a sample.
        let text = m.encode(crate::traffic::RelayTotals::default(), None);
        assert!(
            text.contains(
                "curfew_gateway_violations_total{rule=\"misbehaviour\",sqlstate=\"42501\"} 3\n"
            ),
            "{text}"
        );
        assert!(!text.contains("42P01"), "{text}");
    }

    #[test]
    fn per_role_counts_across_sessions_and_report_rules_do_nothing() {
        let p = policy("terminate", "role");
        let book = ViolationBook::new();
        let m = Metrics::new();
        book.judge(&p, &session(1), "42501", at(1), &m);
        book.judge(&p, &session(1), "42501", at(2), &m);
        book.forget_session(&session(1).key());
        assert!(matches!(
            book.judge(&p, &session(2), "42501", at(3), &m),
            Judged::End { .. }
        ));
        let report = policy("report", "session");
        let m = Metrics::new();
        for second in 1..=5 {
            assert_eq!(
                book.judge(&report, &session(3), "42501", at(second), &m),
                Judged::Nothing
            );
        }
        // A report-only rule is documentation: nothing counted.
        let text = m.encode(crate::traffic::RelayTotals::default(), None);
        assert!(!text.contains("curfew_gateway_violations_total{"), "{text}");
    }

    #[test]
    fn a_rules_message_replaces_the_text_and_the_rule_stays_in_the_detail() {
        let own = violation_fatal("misbehaviour", "3 errors 42501", false);
        let fatal = crate::enforce::with_rule_message(own.clone(), Some("Closed: ACME 4.2"));
        assert_eq!(fatal.message, "Closed: ACME 4.2");
        assert_eq!(fatal.detail.as_deref(), Some(own.message.as_str()));
        assert_eq!((fatal.code, fatal.hint), (own.code, own.hint.clone()));
        assert_eq!(crate::enforce::with_rule_message(own.clone(), None), own);
    }

    #[test]
    fn the_fatal_names_the_rule_and_says_what_to_do() {
        let fatal = violation_fatal("misbehaviour", "3 errors 42501", true);
        assert_eq!(fatal.code, "57P01");
        assert_eq!(
            fatal.message,
            "terminating connection: 3 errors 42501 (rule misbehaviour)"
        );
        assert!(fatal.hint.unwrap_or_default().contains("rolled back"));
    }
}
