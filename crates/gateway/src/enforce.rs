//! The policy's end of a session, enforced in the gateway (issue 17): one timer per session,
//! armed from the per-session engine's [`next_event`] for the session's state as the wire
//! shows it ([`WireState`]), and re-armed when that state changes or the policy is reloaded.
//! At the deadline the engine is asked again with the state then (the state may have changed
//! in the same instant); if the session is still due, the relay stops it as the drain does,
//! with a FATAL carrying PostgreSQL's own SQLSTATE for the cause. The server's errors go to
//! the gateway's [`ViolationBook`] as they arrive: a warning one before a `violations` rule's
//! count, the same stop at it. A `per = "role"` rule's error is also counted in the database
//! for every gateway (a task spawned per error, never awaited by the relay); its answer
//! decides, and this gateway's own count stands in when it fails or takes longer than the
//! registry's call timeout ([`crate::registry::REGISTRY_CALL_TIMEOUT`] by default).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use curfew_policy::format_age;
use curfew_policy::{BackendType, Cause, Overrides, Policy, Session, SessionState, next_event};
use curfew_wire::{encode_notice_response, field};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::activity::Watched;
use crate::error::{Fatal, sqlstate};
use crate::metrics::Metrics;
use crate::verifiers::VerifierSource;
use crate::violations::{ViolationBook, violation_hint};

mod errors;
mod shared;

pub(crate) use shared::CountedBy;
use shared::PendingCount;

/// The policy sessions are judged by (None: no enforcement), as a reload publishes it.
pub(crate) type PolicyFeed = watch::Receiver<Option<Arc<Policy>>>;

/// Who a session is, for the engine (what the gateway knows of it).
#[derive(Debug, Clone)]
pub(crate) struct SessionIdentity {
    /// The server process behind it.
    pub(crate) pid: i32,
    /// When its login completed, on the gateway's clock.
    pub(crate) started: Timestamp,
    pub(crate) role: Arc<str>,
    /// Every role it is a member of, directly or indirectly, as of its login.
    pub(crate) member_of: Arc<[String]>,
    pub(crate) database: Arc<str>,
    pub(crate) application: Arc<str>,
    pub(crate) client_addr: Option<IpAddr>,
}

/// Why the policy ended a session, for its audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyEnd {
    /// The rule's stable id.
    pub(crate) rule: String,
    /// The human reason as of the end.
    pub(crate) reason: String,
    /// The SQLSTATE sent.
    pub(crate) code: &'static str,
    /// For a `violations` rule: the server's SQLSTATEs counted, oldest first (else empty).
    pub(crate) counted: Vec<String>,
    /// For a `per = "role"` rule counted shared: whose count decided.
    pub(crate) counted_by: Option<CountedBy>,
    /// When the rule said the session must end (a timed rule; None for `violations`, whose
    /// end is due when the error arrives).
    pub(crate) deadline: Option<Timestamp>,
    /// When the gateway found the session due and stopped it (the FATAL follows at once,
    /// or when the server's answer in flight is complete).
    pub(crate) at: Timestamp,
    /// With `[audit] include_statement`: this session's statements whose errors a
    /// `violations` rule counted (SQLSTATE, text), oldest first (else empty).
    pub(crate) statements: Vec<(String, Arc<str>)>,
}

/// A warning given: what its `session_warned` record says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Warned {
    /// The rule's stable id.
    pub(crate) rule: String,
    /// The notice's text.
    pub(crate) reason: String,
    /// What the session was warned of.
    pub(crate) about: WarnedOf,
}

/// What a warning announces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WarnedOf {
    /// The end at a deadline (a timed rule, within its `warn` lead).
    Deadline {
        /// When the session will be ended.
        deadline: Timestamp,
        /// The rule's lead, as written.
        lead: String,
        /// Seconds left when it was given.
        ends_in_seconds: f64,
    },
    /// The end at the next error of a `violations` rule's kinds (no deadline).
    NextViolation {
        /// The errors counted so far.
        counted: u32,
        /// The rule's count.
        limit: u32,
    },
}

/// A warning due at `at` for the end at `deadline`.
struct PlannedWarning {
    deadline: Timestamp,
    rule: String,
    reason: String,
    lead: String,
    /// An idle rule: any statement keeps the session.
    idle: bool,
}

/// One session's enforcement (see the module), polled by the relay's task.
pub(crate) struct Enforcer<'a> {
    /// The warning timer and what it stands for.
    warn_timer: Pin<Box<Sleep>>,
    warning: Option<PlannedWarning>,
    /// The deadline last warned of (once per deadline).
    warned: Option<Timestamp>,
    /// A NoticeResponse waiting to be written to the client.
    notice: Option<Vec<u8>>,
    /// Told of every warning given (the audit record).
    on_warn: Box<dyn FnMut(&Warned) + Send + 'a>,
    /// The session's state, fed by the relay's pumps.
    pub(crate) watched: Watched,
    identity: SessionIdentity,
    policy: PolicyFeed,
    /// Completes when a new policy is published (re-created after each).
    policy_changed: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// `policy_changed` was polled once and holds the task's waker: from then on a change is
    /// seen with `has_changed` (an atomic load), not by polling it on every wake-up of the
    /// relay (each poll would lock the feed's waiter list, which every session shares).
    policy_registered: bool,
    /// The state generation the timer was armed for (None: not armed yet).
    armed_for: Option<u64>,
    timer: Pin<Box<Sleep>>,
    /// Whether the timer stands for a deadline (else it sleeps far ahead).
    deadline_set: bool,
    ended: Option<PolicyEnd>,
    /// A violation's FATAL waiting for the server's answer to finish ([`Enforcer::release`]).
    held: Option<Fatal>,
    /// The gateway's `violations` counters, shared by its sessions.
    violations: Arc<ViolationBook>,
    /// Whether any of this session's errors was judged (its counts are forgotten at the end).
    judged_errors: bool,
    /// Where `per = "role"` errors are counted across gateways (None: in this process only).
    shared_counts: Option<Arc<dyn VerifierSource>>,
    /// Shared counts asked for and not answered yet, oldest first.
    pending: Vec<PendingCount>,
    /// A fallback from the shared count was logged for this session (once is enough).
    fallback_logged: bool,
    /// With `[audit] include_statement`: the newest errors' SQLSTATEs and statements.
    statements: std::collections::VecDeque<(Timestamp, String, Arc<str>)>,
    /// Warnings and ends by rule.
    metrics: Arc<Metrics>,
}

/// The longest a violation's FATAL waits for the server to finish answering.
const HOLD_AT_MOST: std::time::Duration = std::time::Duration::from_secs(2);

/// How far ahead an unarmed timer sleeps (re-armed on any change well before).
const FAR_AHEAD: std::time::Duration = std::time::Duration::from_secs(60 * 60 * 24 * 365);

impl<'a> Enforcer<'a> {
    /// Enforcement of `policy` (as published, and republished on reloads) on one session.
    pub(crate) fn new(
        watched: Watched,
        identity: SessionIdentity,
        policy: PolicyFeed,
        violations: Arc<ViolationBook>,
        metrics: Arc<Metrics>,
        on_warn: Box<dyn FnMut(&Warned) + Send + 'a>,
    ) -> Enforcer<'a> {
        let mut enforcer = Enforcer {
            warn_timer: Box::pin(tokio::time::sleep(FAR_AHEAD)),
            warning: None,
            warned: None,
            notice: None,
            on_warn,
            watched,
            identity,
            policy_changed: Box::pin(std::future::pending()),
            policy_registered: false,
            policy,
            armed_for: None,
            timer: Box::pin(tokio::time::sleep(FAR_AHEAD)),
            deadline_set: false,
            ended: None,
            held: None,
            violations,
            judged_errors: false,
            shared_counts: None,
            pending: Vec::new(),
            fallback_logged: false,
            statements: std::collections::VecDeque::new(),
            metrics,
        };
        // `[audit] include_statement` as of the login (a reload applies to later logins).
        let quote = enforcer
            .policy
            .borrow()
            .as_ref()
            .is_some_and(|p| p.audit.include_statement);
        if quote {
            enforcer.watched.wire.keep_statements();
        }
        enforcer.watch_policy();
        enforcer
    }

    /// Counts `per = "role"` errors in the database through `source`'s registry, when it has
    /// one (else they stay counted in this process only).
    pub(crate) fn with_shared_counts(mut self, source: Arc<dyn VerifierSource>) -> Self {
        if source.registry().is_some() {
            self.shared_counts = Some(source);
        }
        self
    }

    /// Why the policy ended the session, if it did.
    pub(crate) fn ended(&self) -> Option<&PolicyEnd> {
        self.ended.as_ref()
    }

    fn watch_policy(&mut self) {
        self.policy.borrow_and_update();
        self.policy_registered = false;
        let mut feed = self.policy.clone();
        self.policy_changed = Box::pin(async move {
            if feed.changed().await.is_err() {
                // No publisher any more: the policy in force stays.
                std::future::pending::<()>().await;
            }
        });
    }

    /// The session as the engine sees one, in `watched`'s state.
    fn session(&self) -> Session {
        let wire = &self.watched.wire;
        Session {
            pid: i64::from(self.identity.pid),
            backend_start: self.identity.started,
            xact_start: wire.xact_start(),
            state: wire.state(),
            state_change: Some(wire.state_change()),
            role: self.identity.role.clone(),
            member_of: self.identity.member_of.clone(),
            database: self.identity.database.clone(),
            client_addr: self.identity.client_addr.into(),
            application: self.identity.application.clone(),
            backend_type: BackendType::ClientBackend,
        }
    }

    fn arm(&mut self) {
        let watched = &self.watched;
        self.armed_for = Some(watched.wire.generation());
        let policy = self.policy.borrow().clone();
        let next = policy.and_then(|policy| {
            next_event(
                &policy,
                &self.session(),
                watched.clock.now(),
                &Overrides::none(),
            )
        });
        self.warning = None;
        let mut warn_at = tokio::time::Instant::now() + FAR_AHEAD;
        if let (Some(next), Some(policy)) = (&next, self.policy.borrow().clone())
            && let Some(at) = next.warn_at
            && self.warned != Some(next.decision.deadline)
        {
            let rule = &policy.rules[next.decision.rule];
            warn_at = watched.clock.instant_of(at);
            self.warning = Some(PlannedWarning {
                deadline: next.decision.deadline,
                rule: next.decision.rule_id.to_string(),
                reason: next.reason.clone(),
                lead: rule.warn.map(|lead| lead.to_string()).unwrap_or_default(),
                idle: matches!(
                    next.decision.cause,
                    Cause::Idle { .. } | Cause::IdleInTransaction { .. }
                ),
            });
        }
        self.warn_timer.as_mut().reset(warn_at);
        let at = match next {
            Some(next) => {
                self.deadline_set = true;
                watched.clock.instant_of(next.decision.deadline)
            }
            None => {
                self.deadline_set = false;
                tokio::time::Instant::now() + FAR_AHEAD
            }
        };
        self.timer.as_mut().reset(at);
    }

    /// Ready with the FATAL to stop the session with when its policy ends it.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Fatal> {
        if let Some(fatal) = self.held.take() {
            return self.release(fatal, cx);
        }
        if self.ended.is_some() {
            return Poll::Pending;
        }
        let fatal = if self.watched.wire.has_errors() {
            self.judge_errors(cx)
        } else if !self.pending.is_empty() {
            self.answered_counts(cx)
        } else {
            None
        };
        if let Some(fatal) = fatal {
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + HOLD_AT_MOST);
            return self.release(fatal, cx);
        }
        loop {
            let changed = if self.policy_registered {
                self.policy.has_changed().unwrap_or(false)
            } else {
                let ready = self.policy_changed.as_mut().poll(cx).is_ready();
                self.policy_registered = !ready;
                ready
            };
            if changed {
                self.watch_policy();
                self.armed_for = None;
                continue;
            }
            if self.armed_for != Some(self.watched.wire.generation()) {
                self.arm();
            }
            if self.warning.is_some() && self.warn_timer.as_mut().poll(cx).is_ready() {
                self.warn();
                continue;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.deadline_set
                && let Some(fatal) = self.due()
            {
                return Poll::Ready(fatal);
            }
            // Not due after all (or nothing pending): armed again from now.
            self.arm();
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // A deadline that is due yet judged not due cannot re-arm in the past twice:
            // wait for the next change.
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + FAR_AHEAD);
            self.deadline_set = false;
        }
    }

    /// A violation's FATAL once the server has answered the statement that failed (its
    /// ReadyForQuery forwarded): sent in the middle of the answer, a client library would take
    /// the FATAL for the statement's own error and see the connection just close. Held at most
    /// [`HOLD_AT_MOST`].
    fn release(&mut self, fatal: Fatal, cx: &mut Context<'_>) -> Poll<Fatal> {
        if self.watched.wire.state() != SessionState::Active
            || self.timer.as_mut().poll(cx).is_ready()
        {
            // Whether a transaction is still open is known once the server has answered
            // (ReadyForQuery 'I' closed the statement's own).
            let in_transaction = self.watched.wire.xact_start().is_some();
            return Poll::Ready(fatal.with_hint(violation_hint(in_transaction)));
        }
        self.held = Some(fatal);
        Poll::Pending
    }

    /// A NoticeResponse to write to the client, if one is waiting.
    pub(crate) fn take_notice(&mut self) -> Option<Vec<u8>> {
        self.notice.take()
    }

    /// Gives back a notice that could not be written yet.
    pub(crate) fn keep_notice(&mut self, notice: Vec<u8>) {
        self.notice = Some(notice);
    }

    /// The warning's time came: the notice queued, the warning recorded, once per deadline.
    fn warn(&mut self) {
        self.warn_timer
            .as_mut()
            .reset(tokio::time::Instant::now() + FAR_AHEAD);
        let Some(planned) = self.warning.take() else {
            return;
        };
        self.warned = Some(planned.deadline);
        let now = self.watched.clock.now();
        let left = planned
            .deadline
            .duration_since(now)
            .max(SignedDuration::ZERO);
        let message = format!(
            "this session will be ended in {} (rule {}: {})",
            format_age(left),
            planned.rule,
            planned.reason
        );
        let hint = if planned.idle {
            "run any statement to keep the session"
        } else {
            "save your work and reconnect later"
        };
        self.notice = Some(warning_notice(&message, hint));
        self.metrics.policy_warned(&planned.rule);
        (self.on_warn)(&Warned {
            rule: planned.rule,
            reason: message,
            about: WarnedOf::Deadline {
                deadline: planned.deadline,
                lead: planned.lead,
                ends_in_seconds: left.as_secs_f64(),
            },
        });
    }

    /// The FATAL if the session is due now.
    fn due(&mut self) -> Option<Fatal> {
        let watched = &self.watched;
        let policy = self.policy.borrow().clone()?;
        let now = watched.clock.now();
        let next = next_event(&policy, &self.session(), now, &Overrides::none())?;
        if next.decision.deadline > now {
            return None;
        }
        let rule = next.decision.rule_id.to_string();
        let reason = next.decision.reason(&policy, now);
        let in_transaction =
            watched.wire.xact_start().is_some() && watched.wire.state() != SessionState::Idle;
        let message = policy
            .rules
            .get(next.decision.rule)
            .and_then(|r| r.message.as_deref());
        let fatal = with_rule_message(
            ending_fatal(&next.decision.cause, &rule, &reason, in_transaction),
            message,
        );
        self.metrics.policy_ended(&rule);
        self.ended = Some(PolicyEnd {
            rule,
            reason,
            code: fatal.code,
            counted: Vec::new(),
            counted_by: None,
            deadline: Some(next.decision.deadline),
            at: now,
            statements: Vec::new(),
        });
        Some(fatal)
    }
}

impl Drop for Enforcer<'_> {
    fn drop(&mut self) {
        // Only a session that erred has counts to forget: no lock for the others.
        if self.judged_errors {
            self.violations.forget_session(&self.session().key());
        }
    }
}

/// A NoticeResponse, severity WARNING, with `message` and `hint`.
fn warning_notice(message: &str, hint: &str) -> Vec<u8> {
    let message = message.replace('\0', "");
    let fields: [(u8, &[u8]); 5] = [
        (field::SEVERITY, b"WARNING"),
        (field::SEVERITY_NONLOCALIZED, b"WARNING"),
        // warning (01000): PostgreSQL's class for a plain warning.
        (field::CODE, b"01000"),
        (field::MESSAGE, message.as_bytes()),
        (field::HINT, hint.as_bytes()),
    ];
    let mut out = Vec::with_capacity(64 + message.len() + hint.len());
    // No NUL inside and far below the limit: the encoder cannot refuse them.
    let _ = encode_notice_response(&fields, &mut out);
    out
}

/// `fatal` with the rule's `message` as its text, when it has one: curfew's own words (the
/// rule and the reason) go to the DETAIL, so the client's error still names the rule.
pub(crate) fn with_rule_message(fatal: Fatal, message: Option<&str>) -> Fatal {
    let text = curfew_policy::login_refusal::client_text(message, fatal.message);
    Fatal {
        message: text.message,
        detail: text.detail.or(fatal.detail),
        ..fatal
    }
}

/// The FATAL that ends a session for `cause`: PostgreSQL's own SQLSTATE for idle and idle in
/// a transaction (57P05, 25P03), 57P01 otherwise; the reason and the rule; what to do.
pub(crate) fn ending_fatal(cause: &Cause, rule: &str, reason: &str, in_transaction: bool) -> Fatal {
    let code = match cause {
        Cause::Idle { .. } => sqlstate::IDLE_SESSION_TIMEOUT,
        Cause::IdleInTransaction { .. } => sqlstate::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        _ => sqlstate::ADMIN_SHUTDOWN,
    };
    let hint = if in_transaction || matches!(cause, Cause::IdleInTransaction { .. }) {
        "reconnect to continue; unsaved work in the open transaction was rolled back"
    } else {
        "reconnect to continue"
    };
    Fatal::new(
        code,
        format!("terminating connection: {reason} (rule {rule})"),
    )
    .with_hint(hint)
}

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
