//! The intent → action → outcome contract every enforcement point keeps (the agent today, a
//! wire-protocol gateway tomorrow): nothing is done without a durable intent record, and
//! every intent gets an outcome record.
//!
//! [`AuditLog::intend`] writes an intent and returns an [`IntentToken`], which only this
//! crate can make: holding one proves the intent is on disk, so code that performs an
//! action takes the token (or a reference to it) and cannot act without an intent. The
//! token is neither `Clone` nor `Copy` and must be used: [`IntentToken::complete`] consumes
//! it and writes the outcome, typed per action ([`Action::Outcome`]), next to the intent's
//! target, rule, reason and session. Outcomes that cannot be written now are kept in memory
//! and written when the log recovers, as [`AuditLog::append_outcomes`] does.
//!
//! A token dropped without an outcome leaves its intent open, exactly as a crash does: the
//! next start's verification finds an intent without outcome and records it as
//! `action_interrupted` (a rotation meanwhile waits for it as for any action under way).
//! The writer also notes it ([`AuditLog::take_abandoned_intents`]) so a running agent can
//! say so at once.
//!
//! A token cannot be made by hand, nor copied:
//!
//! ```compile_fail,E0451
//! use curfew_audit::{IntentToken, Termination};
//! let token: IntentToken<Termination> = IntentToken { seq: 1 };
//! ```
//!
//! An action API that takes [`Authorized`] requests cannot be called without a token:
//!
//! ```compile_fail,E0451
//! use curfew_audit::{Authorized, Termination};
//! fn end(request: &Authorized<'_, Termination, u32>) {}
//! end(&Authorized { token: todo!(), request: 4711 });
//! ```
//!
//! ```compile_fail,E0599
//! fn twice(token: curfew_audit::IntentToken<curfew_audit::Termination>) {
//!     let copy = token.clone();
//! }
//! ```

use std::marker::PhantomData;
use std::sync::{Arc, PoisonError};

use jiff::Timestamp;

use crate::details::{
    Detail, LoginChangePlan, LoginChangeResult, SessionEnded, SquatEnding, TerminationFailure,
    TerminationPlan, TerminationSkip,
};
use crate::error::AuditError;
use crate::event::Event;
use crate::record::{Record, SessionInfo};
use crate::writer::{Appended, AuditLog, Inner};

/// A kind of action that is announced by an intent record and completed by an outcome.
pub trait Action {
    /// The intent record's event.
    const INTENT: Event;
    /// The intent's detail.
    type Plan: Detail;
    /// What the action came to.
    type Outcome: Outcome;
}

/// The outcome of an action, as its record states it.
pub trait Outcome {
    /// The outcome record's event.
    fn event(&self) -> Event;
    /// The outcome record's `result` word.
    fn result(&self) -> &str;
    /// The outcome record's detail.
    fn detail(&self) -> serde_json::Value;
    /// The outcome record's reason; by default the intent's.
    fn reason(&self, intended: Option<&str>) -> Option<String> {
        intended.map(str::to_owned)
    }
}

/// Ending a session a rule says must end (`termination_intent` → `session_terminated`,
/// `termination_skipped` or `termination_failed`).
#[derive(Debug)]
pub enum Termination {}

impl Action for Termination {
    const INTENT: Event = Event::TerminationIntent;
    type Plan = TerminationPlan;
    type Outcome = TerminationOutcome;
}

/// What ending a session came to.
#[derive(Debug, Clone, PartialEq)]
pub enum TerminationOutcome {
    /// Ended (`ended`).
    Ended(SessionEnded),
    /// The session no longer matched the rule when the server re-checked it.
    NoLongerMatched(TerminationSkip),
    /// The server's clock said the deadline had not come yet.
    NotYetDue(TerminationSkip),
    /// It could not be ended, or what happened is not known.
    Failed(TerminationFailure),
}

impl Outcome for TerminationOutcome {
    fn event(&self) -> Event {
        match self {
            TerminationOutcome::Ended(_) => Event::SessionTerminated,
            TerminationOutcome::NoLongerMatched(_) | TerminationOutcome::NotYetDue(_) => {
                Event::TerminationSkipped
            }
            TerminationOutcome::Failed(_) => Event::TerminationFailed,
        }
    }

    fn result(&self) -> &str {
        match self {
            TerminationOutcome::Ended(_) => "ended",
            TerminationOutcome::NoLongerMatched(_) => "no_longer_matched",
            TerminationOutcome::NotYetDue(_) => "not_yet_due",
            TerminationOutcome::Failed(_) => "failed",
        }
    }

    fn detail(&self) -> serde_json::Value {
        match self {
            TerminationOutcome::Ended(d) => d.to_value(),
            TerminationOutcome::NoLongerMatched(d) | TerminationOutcome::NotYetDue(d) => {
                d.to_value()
            }
            TerminationOutcome::Failed(d) => d.to_value(),
        }
    }
}

/// Ending a session of another role that holds or blocks curfew's leader lock
/// (`termination_intent` without a detail → `leader_squatted`).
#[derive(Debug)]
pub enum SquatterEnding {}

impl Action for SquatterEnding {
    const INTENT: Event = Event::TerminationIntent;
    type Plan = TerminationPlan;
    type Outcome = SquatOutcome;
}

/// What ending a squatter came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquatOutcome {
    /// `ended`, `no_longer_matched`, `not_yet_due` or `failed`.
    pub result: String,
    /// The whole sentence: the intent's reason and what became of it.
    pub reason: String,
    /// The squatter's process id.
    pub detail: SquatEnding,
}

impl Outcome for SquatOutcome {
    fn event(&self) -> Event {
        Event::LeaderSquatted
    }
    fn result(&self) -> &str {
        &self.result
    }
    fn detail(&self) -> serde_json::Value {
        self.detail.to_value()
    }
    fn reason(&self, _intended: Option<&str>) -> Option<String> {
        Some(self.reason.clone())
    }
}

/// Changing a role's login to what its locks say (`login_change_intent` → `login_locked`,
/// `lock_drift_corrected`, `login_restored`, `login_change_skipped` or `login_change_failed`).
#[derive(Debug)]
pub enum LoginChange {}

impl Action for LoginChange {
    const INTENT: Event = Event::LoginChangeIntent;
    type Plan = LoginChangePlan;
    type Outcome = LoginChangeOutcome;
}

/// What a login change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChangeOutcome {
    /// Which end it came to.
    pub end: LoginChangeEnd,
    /// The role and, for a failure, why.
    pub detail: LoginChangeResult,
}

/// The ends a login change can come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginChangeEnd {
    /// The login was disabled.
    Disabled,
    /// The login someone else had enabled was disabled again.
    DriftCorrected,
    /// The login was restored.
    Restored,
    /// Nothing was needed: the state had changed since it was read.
    NotNeeded,
    /// The role no longer exists.
    RoleDropped,
    /// The change failed.
    Failed,
}

impl Outcome for LoginChangeOutcome {
    fn event(&self) -> Event {
        match self.end {
            LoginChangeEnd::Disabled => Event::LoginLocked,
            LoginChangeEnd::DriftCorrected => Event::LockDriftCorrected,
            LoginChangeEnd::Restored => Event::LoginRestored,
            LoginChangeEnd::NotNeeded | LoginChangeEnd::RoleDropped => Event::LoginChangeSkipped,
            LoginChangeEnd::Failed => Event::LoginChangeFailed,
        }
    }
    fn result(&self) -> &str {
        match self.end {
            LoginChangeEnd::Disabled => "disabled",
            LoginChangeEnd::DriftCorrected => "disabled_again",
            LoginChangeEnd::Restored => "restored",
            LoginChangeEnd::NotNeeded => "not_needed",
            LoginChangeEnd::RoleDropped => "role_dropped",
            LoginChangeEnd::Failed => "failed",
        }
    }
    fn detail(&self) -> serde_json::Value {
        self.detail.to_value()
    }
}

/// An intent record to write, for an action of kind `A`.
#[derive(Debug, Clone)]
pub struct Intent<A: Action> {
    record: Record,
    action: PhantomData<fn() -> A>,
}

impl<A: Action> Intent<A> {
    /// An intent at `ts` about `target`, with its plan (`None`: a bare intent, as a
    /// squatter's).
    pub fn new(ts: Timestamp, target: impl Into<String>, plan: Option<&A::Plan>) -> Self {
        let mut record = Record::new(ts, A::INTENT).with_target(target);
        record.detail = plan.map(Detail::to_value);
        Intent {
            record,
            action: PhantomData,
        }
    }

    /// Sets the rule; the outcome repeats it.
    #[must_use]
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.record.rule = Some(rule.into());
        self
    }

    /// Sets the reason; the outcome repeats it (unless the outcome says otherwise).
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.record.reason = Some(reason.into());
        self
    }

    /// Sets the session; the outcome repeats it.
    #[must_use]
    pub fn with_session(mut self, session: SessionInfo) -> Self {
        self.record.session = Some(session);
        self
    }

    /// The record as it will be written.
    pub fn record(&self) -> &Record {
        &self.record
    }
}

/// Proof that an intent of kind `A` is on disk: what an action needs, and what its outcome
/// completes. Only [`AuditLog::intend`] makes one.
#[must_use = "an intent must be completed with its outcome (IntentToken::complete)"]
#[derive(Debug)]
pub struct IntentToken<A: Action> {
    seq: u64,
    intent: Record,
    log: Arc<Inner>,
    open: bool,
    action: PhantomData<fn() -> A>,
}

impl<A: Action> IntentToken<A> {
    /// The intent record's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The intent record as written (without seq and hash).
    pub fn intent(&self) -> &Record {
        &self.intent
    }

    /// The outcome record that completes this intent.
    fn outcome_record(&self, ts: Timestamp, outcome: &A::Outcome) -> Record {
        let mut record = Record::new(ts, outcome.event());
        record.target.clone_from(&self.intent.target);
        record.rule.clone_from(&self.intent.rule);
        record.reason = outcome.reason(self.intent.reason.as_deref());
        record.session.clone_from(&self.intent.session);
        record.result = Some(outcome.result().to_owned());
        record.intent = Some(self.seq);
        record.detail = Some(outcome.detail());
        record
    }

    /// Writes the outcome (stamped `ts`) and closes the intent. An outcome the log cannot
    /// take now is kept in memory and written when it recovers (the error says so).
    pub fn complete(self, ts: Timestamp, outcome: A::Outcome) -> Result<Appended, AuditError> {
        let log = AuditLog {
            inner: self.log.clone(),
        };
        let mut appended = log.complete_all(ts, vec![(self, outcome)])?;
        appended.pop().ok_or_else(|| AuditError::Unusable {
            path: log.inner.path.clone(),
            reason: "an outcome was written but not reported".to_owned(),
        })
    }
}

/// A request to act (an end request, a login change) bound to the durable intent that
/// announced it. An enforcement point's action API takes `Authorized` requests, so acting
/// without an intent on disk does not compile: only [`IntentToken::authorize`] makes one,
/// and it borrows the token, which therefore outlives the action and is completed after it.
#[derive(Debug)]
pub struct Authorized<'t, A: Action, R> {
    token: &'t IntentToken<A>,
    request: R,
}

impl<A: Action, R> Authorized<'_, A, R> {
    /// What is to be done.
    pub fn request(&self) -> &R {
        &self.request
    }

    /// The seq of the intent record that announced it.
    pub fn intent_seq(&self) -> u64 {
        self.token.seq
    }
}

impl<A: Action> IntentToken<A> {
    /// Binds `request` to this intent: what an action API requires.
    pub fn authorize<R>(&self, request: R) -> Authorized<'_, A, R> {
        Authorized {
            token: self,
            request,
        }
    }
}

impl<A: Action> Drop for IntentToken<A> {
    fn drop(&mut self) {
        if self.open {
            let mut state = self
                .log
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.abandoned.insert(self.seq);
        }
    }
}

impl AuditLog {
    /// Writes an intent; the token it returns is what the action needs and what its outcome
    /// completes. On error nothing was recorded, so nothing may be done.
    pub fn intend<A: Action>(&self, intent: Intent<A>) -> Result<IntentToken<A>, AuditError> {
        let mut tokens = self.intend_all(vec![intent])?;
        tokens.pop().ok_or_else(|| AuditError::Unusable {
            path: self.inner.path.clone(),
            reason: "an intent was written but not reported".to_owned(),
        })
    }

    /// Writes several intents with one fsync ([`AuditLog::append_all`]); all or none.
    pub fn intend_all<A: Action>(
        &self,
        intents: Vec<Intent<A>>,
    ) -> Result<Vec<IntentToken<A>>, AuditError> {
        let records: Vec<Record> = intents.into_iter().map(|i| i.record).collect();
        let appended = self.append_all(records.clone())?;
        Ok(records
            .into_iter()
            .zip(appended)
            .map(|(intent, appended)| IntentToken {
                seq: appended.seq,
                intent,
                log: self.inner.clone(),
                open: true,
                action: PhantomData,
            })
            .collect())
    }

    /// Writes the outcomes of several intents with one fsync, as
    /// [`AuditLog::append_outcomes`] (kept in memory when the log cannot take them now).
    /// Tokens of another log are refused (their intents stay open there).
    pub fn complete_all<A: Action>(
        &self,
        ts: Timestamp,
        completions: Vec<(IntentToken<A>, A::Outcome)>,
    ) -> Result<Vec<Appended>, AuditError> {
        if completions
            .iter()
            .any(|(token, _)| !Arc::ptr_eq(&token.log, &self.inner))
        {
            return Err(AuditError::Unusable {
                path: self.inner.path.clone(),
                reason: "an intent written to another audit log cannot be completed here"
                    .to_owned(),
            });
        }
        let records = completions
            .into_iter()
            .map(|(mut token, outcome)| {
                token.open = false;
                token.outcome_record(ts, &outcome)
            })
            .collect();
        self.append_outcomes(records)
    }

    /// The seqs of intents whose token was dropped without an outcome since the last call,
    /// oldest first. Their intents stay open (the next start records them as
    /// `action_interrupted`); an agent may say so earlier.
    pub fn take_abandoned_intents(&self) -> Vec<u64> {
        std::mem::take(&mut self.state().abandoned)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
