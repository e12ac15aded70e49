//! `violations` rules in the gateway (issue 17): the server's ErrorResponses, read by
//! [`crate::activity`], counted by the engine's [`ViolationCounter`]. One book per gateway
//! process, shared by its sessions; its lock is taken only when an error arrives, never on
//! the relay's steady path.
//!
//! A `per = "role"` rule counts across gateway instances when the gateway has the session
//! registry (`curfew.count_gateway_violation`): its verdict then comes from the database's
//! count ([`shared_verdict`]), and the book's own count is kept as the fallback for when that
//! call fails or is slow (it can only undercount across instances, so it never ends a session
//! the shared count would not).

use std::sync::{Arc, Mutex, PoisonError};

use curfew_policy::{
    Action, Condition, ErrorVerdict, Policy, Session, SessionKey, ViolationCounter, Violations,
    ViolationsPer,
};
use jiff::{SignedDuration, Timestamp};

use crate::error::{Fatal, sqlstate};
use crate::metrics::Metrics;

/// How often counts older than every rule's window are swept (bounds the book's memory).
const SWEEP_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The gateway's counters of `violations` rules (see the module).
#[derive(Debug)]
pub(crate) struct ViolationBook {
    inner: Mutex<Book>,
    /// Shared counts this gateway may have in flight at once: beyond, its own count decides,
    /// so that one role's flood of errors cannot queue calls on the auth connection that
    /// every login needs.
    counting: Arc<tokio::sync::Semaphore>,
}

impl Default for ViolationBook {
    fn default() -> ViolationBook {
        ViolationBook {
            inner: Mutex::default(),
            counting: Arc::new(tokio::sync::Semaphore::new(COUNTS_IN_FLIGHT)),
        }
    }
}

/// How many shared counts one gateway has in flight at most.
pub(crate) const COUNTS_IN_FLIGHT: usize = 16;

#[derive(Debug, Default)]
struct Book {
    counter: ViolationCounter,
    last_sweep: Option<Timestamp>,
}

/// What the session gets for its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judged {
    /// Nothing to do.
    Nothing,
    /// A WARNING notice: one more such error ends the session.
    Warn {
        /// The rule's stable id.
        rule: String,
        /// The notice's message.
        message: String,
        /// The errors counted so far (one fewer than the limit).
        counted: u32,
        /// The rule's count.
        limit: u32,
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

/// An error a `per = "role"` rule counted, to count again in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedCount {
    /// The rule's stable id.
    pub(crate) rule: String,
    /// The SQLSTATE.
    pub(crate) code: String,
    /// The rule's window in whole seconds (at least 1).
    pub(crate) within_seconds: i32,
    /// What this gateway's own count says for the rule, if the database cannot answer.
    pub(crate) fallback: Judged,
}

/// What one error gets: a verdict now, and the counts to ask the database for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// Acted on at once (a per-role rule's warning waits for the shared count; its end does
    /// not: this gateway's count can only be lower than every gateway's).
    pub(crate) now: Judged,
    /// `now` ends the session for a `per = "role"` rule on this gateway's own count.
    pub(crate) ended_here: bool,
    /// The `per = "role"` rules that counted the error, when counted shared.
    pub(crate) shared: Vec<SharedCount>,
}

impl ViolationBook {
    /// An empty book.
    pub(crate) fn new() -> ViolationBook {
        ViolationBook::default()
    }

    /// [`ViolationBook::judge_shared`] without a shared count (every verdict now).
    #[cfg(test)]
    pub(crate) fn judge(
        &self,
        policy: &Policy,
        session: &Session,
        code: &str,
        at: Timestamp,
        metrics: &Metrics,
    ) -> Judged {
        self.judge_shared(policy, session, code, at, metrics, false)
            .now
    }

    /// `session` got an ErrorResponse with `code` at `at`: counted against every ending
    /// `violations` rule in force for it (and in `metrics`, by rule and code). Report-only
    /// rules are documentation (NOT ENFORCED): their verdicts are dropped, nothing counted.
    /// With `shared`, the `per = "role"` rules that counted it come back to be counted in the
    /// database, with this book's verdict for them as the fallback.
    pub(crate) fn judge_shared(
        &self,
        policy: &Policy,
        session: &Session,
        code: &str,
        at: Timestamp,
        metrics: &Metrics,
        shared: bool,
    ) -> Judgement {
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
        let mut per_role: Vec<(String, i32)> = Vec::new();
        for id in book.counter.counted_by() {
            let Some(rule) = policy
                .rules
                .iter()
                .find(|r| r.id() == *id && r.action == Action::Terminate)
            else {
                continue;
            };
            metrics.violation_counted(id.as_str(), code);
            if let Condition::Violations(v) = &rule.condition
                && shared
                && v.per == ViolationsPer::Role
            {
                let seconds = v.within.get().as_secs().clamp(1, i64::from(i32::MAX));
                per_role.push((id.to_string(), i32::try_from(seconds).unwrap_or(i32::MAX)));
            }
        }
        drop(book);
        let judged = local_verdict(policy, verdict);
        let deferred = match &judged {
            Judged::Warn { rule, .. } if per_role.iter().any(|(id, _)| id == rule) => {
                Some(rule.clone())
            }
            _ => None,
        };
        let ended_here = matches!(&judged, Judged::End { rule, .. } if per_role.iter().any(|(id, _)| id == rule));
        let shared = per_role
            .into_iter()
            .map(|(rule, within_seconds)| SharedCount {
                fallback: if deferred.as_deref() == Some(rule.as_str()) {
                    judged.clone()
                } else {
                    Judged::Nothing
                },
                rule,
                code: code.to_owned(),
                within_seconds,
            })
            .collect();
        Judgement {
            now: if deferred.is_some() {
                Judged::Nothing
            } else {
                judged
            },
            ended_here,
            shared,
        }
    }

    /// A place for one shared count in flight, if one is free.
    pub(crate) fn count_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.counting.clone().try_acquire_owned().ok()
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

/// A `violations` rule of `policy` by its stable id, with its condition.
fn violations_rule<'p>(policy: &'p Policy, rule: &str) -> Option<(&'p Violations, Option<String>)> {
    policy
        .rules
        .iter()
        .find(|r| r.id().as_str() == rule)
        .and_then(|r| match &r.condition {
            Condition::Violations(v) => Some((v, r.message.clone())),
            _ => None,
        })
}

/// The warning's text: what one more error does.
fn warning_text(v: &Violations, rule: &str, counted: u32, limit: u32, whose: &str) -> String {
    format!(
        "one more error with SQLSTATE {} within {} ends this {whose}: {counted} counted; limit {limit} (rule {rule})",
        v.sqlstates.join(", "),
        v.within
    )
}

/// The book's verdict as the session gets it (report-only rules: nothing).
fn local_verdict(policy: &Policy, verdict: ErrorVerdict) -> Judged {
    match verdict {
        ErrorVerdict::Warn {
            rule,
            action: Action::Terminate,
            counted,
            limit,
        } => {
            let message = match violations_rule(policy, rule.as_str()) {
                Some((v, _)) => warning_text(v, rule.as_str(), counted, limit, "session"),
                None => format!(
                    "one more error ends this session: {counted} counted; limit {limit} (rule {rule})"
                ),
            };
            Judged::Warn {
                message,
                rule: rule.to_string(),
                counted,
                limit,
            }
        }
        ErrorVerdict::End {
            rule,
            action: Action::Terminate,
            codes,
            reason,
        } => Judged::End {
            message: violations_rule(policy, rule.as_str()).and_then(|(_, m)| m),
            rule: rule.to_string(),
            reason,
            codes,
        },
        _ => Judged::Nothing,
    }
}

/// The verdict of the role's count in the database, `codes` the SQLSTATEs it holds within the
/// rule's window (this error's included), oldest first: the FATAL at the rule's count, the
/// warning one before. `None` when the rule is no longer in `policy` or nothing was counted
/// (the role no longer exists by its name): the caller falls back to its own count.
pub(crate) fn shared_verdict(policy: &Policy, rule: &str, codes: Vec<String>) -> Option<Judged> {
    let (v, message) = violations_rule(policy, rule)?;
    let counted = u32::try_from(codes.len()).unwrap_or(u32::MAX);
    if counted == 0 {
        return None;
    }
    Some(if counted >= v.count {
        let mut distinct: Vec<&str> = Vec::new();
        for code in &codes {
            if !distinct.contains(&code.as_str()) {
                distinct.push(code);
            }
        }
        Judged::End {
            rule: rule.to_owned(),
            reason: format!(
                "{counted} errors {} by its role's sessions on every gateway within {}; limit {}",
                distinct.join(", "),
                v.within,
                v.count
            ),
            codes,
            message,
        }
    } else if counted + 1 == v.count {
        Judged::Warn {
            rule: rule.to_owned(),
            counted,
            limit: v.count,
            message: warning_text(
                v,
                rule,
                counted,
                v.count,
                "session (its role's errors on every gateway count)",
            ),
        }
    } else {
        Judged::Nothing
    })
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
    fn a_shared_per_role_verdict_waits_for_the_database_with_the_books_as_fallback() {
        let p = policy("terminate", "role");
        let book = ViolationBook::new();
        let m = Metrics::new();
        let first = book.judge_shared(&p, &session(1), "42501", at(1), &m, true);
        assert_eq!(first.now, Judged::Nothing);
        assert_eq!(first.shared.len(), 1);
        assert_eq!(
            (
                first.shared[0].within_seconds,
                first.shared[0].fallback.clone()
            ),
            (600, Judged::Nothing)
        );
        // The book's own warning is not given now: it is the fallback.
        let second = book.judge_shared(&p, &session(1), "42501", at(2), &m, true);
        assert_eq!(second.now, Judged::Nothing);
        assert!(matches!(second.shared[0].fallback, Judged::Warn { .. }));
        // This gateway's own count at the rule's count ends the session at once (every
        // gateway's count can only be higher), and the error is still counted shared.
        let third = book.judge_shared(&p, &session(1), "42501", at(3), &m, true);
        assert!(matches!(third.now, Judged::End { .. }), "{:?}", third.now);
        assert!(third.ended_here);
        assert_eq!(third.shared.len(), 1);
        // A per-session rule is judged at once, nothing asked of the database.
        let per_session = policy("terminate", "session");
        let other = book.judge_shared(&per_session, &session(2), "42501", at(3), &m, true);
        assert!(other.shared.is_empty());
        // Other codes are not counted at all.
        assert!(
            book.judge_shared(&p, &session(1), "42P01", at(4), &m, true)
                .shared
                .is_empty()
        );
    }

    #[test]
    fn the_shared_count_warns_one_before_and_ends_at_the_rules_count() {
        let p = policy("terminate", "role");
        let codes = |n: usize| vec!["42501".to_owned(); n];
        assert_eq!(
            shared_verdict(&p, "misbehaviour", codes(1)),
            Some(Judged::Nothing)
        );
        let Some(Judged::Warn { message, .. }) = shared_verdict(&p, "misbehaviour", codes(2))
        else {
            panic!("no warning at count - 1");
        };
        assert!(message.contains("2 counted; limit 3"), "{message}");
        let Some(Judged::End {
            reason,
            codes: counted,
            ..
        }) = shared_verdict(&p, "misbehaviour", codes(4))
        else {
            panic!("not ended past the count");
        };
        assert_eq!(
            reason,
            "4 errors 42501 by its role's sessions on every gateway within 10m; limit 3"
        );
        assert_eq!(counted.len(), 4);
        // Nothing counted (a renamed role) or a rule gone: the caller falls back.
        assert_eq!(shared_verdict(&p, "misbehaviour", Vec::new()), None);
        assert_eq!(shared_verdict(&p, "gone", codes(3)), None);
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
