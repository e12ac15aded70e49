//! Acting on a plan: guarded terminations with an intent record before and an outcome record
//! after, report-only records (once per session and rule), warnings, and a retry delay for
//! terminations the server refused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use curfew_audit::Event;
use curfew_policy::{Decision, Plan, Session, SessionKey};
use curfew_postgres::{Guard, Outcome, PgError, Snapshot};
use serde_json::json;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::events::AgentEvent;
use crate::loaded::LoadedPolicy;
use crate::locks::LockedSet;
use crate::records::{about, session_info, write};
use crate::shared::Shared;

/// A termination the server refused, and when to try it again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    not_before: Instant,
}

/// Carries out plans for one target and remembers what it already reported.
pub(crate) struct Actor {
    target: String,
    shared: Arc<Shared>,
    reported: HashSet<(SessionKey, usize)>,
    warned: HashSet<(SessionKey, usize)>,
    refused: HashMap<SessionKey, Retry>,
}

impl Actor {
    pub(crate) fn new(target: String, shared: Arc<Shared>) -> Self {
        Self {
            target,
            shared,
            reported: HashSet::new(),
            warned: HashSet::new(),
            refused: HashMap::new(),
        }
    }

    /// When the earliest refused termination may be retried.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.refused.values().map(|r| r.not_before).min()
    }

    /// Carry out a plan. Only a lost connection is an error.
    pub(crate) async fn act<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        plan: &Plan,
    ) -> Result<(), PgError> {
        let busy =
            !plan.terminations.is_empty() || !plan.reports.is_empty() || !plan.warnings.is_empty();
        if busy {
            let by_key: HashMap<SessionKey, &Session> =
                snapshot.sessions.iter().map(|s| (s.key(), s)).collect();
            for d in &plan.terminations {
                let Some(session) = by_key.get(&d.session) else {
                    continue;
                };
                if self.shared.options.dry_run {
                    let ending = reported(loaded, snapshot, d);
                    self.report(loaded, session, d.rule, ending).await;
                } else if self
                    .refused
                    .get(&d.session)
                    .is_none_or(|r| r.not_before <= Instant::now())
                {
                    self.terminate(backend, loaded, snapshot, d, session)
                        .await?;
                }
            }
            for d in &plan.reports {
                if let Some(session) = by_key.get(&d.session) {
                    let ending = reported(loaded, snapshot, d);
                    self.report(loaded, session, d.rule, ending).await;
                }
            }
            for d in &plan.warnings {
                if let Some(session) = by_key.get(&d.session) {
                    self.warn(loaded, snapshot, d, session);
                }
            }
        }
        if !(self.reported.is_empty() && self.warned.is_empty() && self.refused.is_empty()) {
            // Forget sessions that are gone.
            let live: HashSet<SessionKey> = snapshot.sessions.iter().map(Session::key).collect();
            self.reported.retain(|(k, _)| live.contains(k));
            self.warned.retain(|(k, _)| live.contains(k));
            self.refused.retain(|k, _| live.contains(k));
        }
        Ok(())
    }

    async fn terminate<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        d: &Decision,
        session: &Session,
    ) -> Result<(), PgError> {
        let ending = Ending {
            rule: loaded.policy.rules[d.rule].name.clone(),
            reason: d.reason(&loaded.policy, snapshot.now),
            deadline: d.deadline,
            guard: Guard::for_decision(d),
        };
        self.end(backend, loaded, session, ending).await
    }

    /// End sessions of locked roles that the plan does not already end (an incident lock ends
    /// a role's sessions whatever the rules say; a window lock's rule usually got them first).
    pub(crate) async fn end_locked<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        plan: &Plan,
        locked: &LockedSet,
    ) -> Result<(), PgError> {
        if locked.is_empty() {
            return Ok(());
        }
        let planned: HashSet<SessionKey> = plan.terminations.iter().map(|d| d.session).collect();
        for session in &snapshot.sessions {
            let Some(lock) = locked.get(&*session.role) else {
                continue;
            };
            if planned.contains(&session.key()) {
                continue;
            }
            let ending = Ending {
                rule: LOCK_RULE.to_owned(),
                reason: format!("role \"{}\" is locked: {}", session.role, lock.reason),
                deadline: lock.since.max(session.backend_start),
                guard: Guard {
                    pid: session.pid,
                    backend_start: session.backend_start,
                    idle_since: None,
                },
            };
            if self.shared.options.dry_run {
                self.report(loaded, session, LOCK_RULE_INDEX, ending).await;
            } else if self
                .refused
                .get(&session.key())
                .is_none_or(|r| r.not_before <= Instant::now())
            {
                self.end(backend, loaded, session, ending).await?;
            }
        }
        Ok(())
    }

    /// End one session: an intent record, the guarded termination, an outcome record.
    async fn end<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        session: &Session,
        ending: Ending,
    ) -> Result<(), PgError> {
        let Ending {
            rule,
            reason,
            deadline,
            guard,
        } = ending;
        let mut intent = about(Event::TerminationIntent, &self.target);
        intent.rule = Some(rule.clone());
        intent.reason = Some(reason.clone());
        intent.session = Some(session_info(session));
        intent.detail = Some(json!({
            "deadline": deadline.to_string(),
            "policy_sha256": loaded.sha256,
        }));
        // Nothing is done without a record: no intent on disk, no termination.
        let Ok(intent) = write(&self.shared, intent).await else {
            return Ok(());
        };
        let result = backend
            .terminate(&guard, self.shared.options.terminate_wait)
            .await;
        let (event, word, detail) = match &result {
            Ok(Outcome::Ended { at, confirmed_at }) => {
                let lateness = at.duration_since(deadline);
                (
                    Event::SessionTerminated,
                    "ended",
                    json!({
                        "at": at.to_string(),
                        "exit_confirmed_at": confirmed_at.to_string(),
                        "lateness_ms": lateness.as_secs_f64() * 1e3,
                    }),
                )
            }
            Ok(Outcome::NoLongerMatched { at }) => (
                Event::TerminationSkipped,
                "no_longer_matched",
                json!({"at": at.to_string()}),
            ),
            Ok(Outcome::Failed { reason }) => {
                (Event::TerminationFailed, "failed", json!({"error": reason}))
            }
            Err(e) => (
                Event::TerminationFailed,
                "failed",
                json!({"error": format!("the connection was lost before the result was known: {e}")}),
            ),
        };
        let mut outcome = about(event, &self.target);
        outcome.rule = Some(rule.clone());
        outcome.reason = Some(reason.clone());
        outcome.session = Some(session_info(session));
        outcome.result = Some(word.to_owned());
        outcome.intent = Some(intent.seq);
        outcome.detail = Some(detail);
        // The action is done; a failure to record its outcome is logged (and `audit verify`
        // will show the intent without an outcome).
        let _ = write(&self.shared, outcome).await;
        let who = describe(session);
        match result {
            Ok(Outcome::Ended { at, .. }) => {
                let lateness = at.duration_since(deadline);
                tracing::info!(target: "curfew::agent",
                    "target \"{}\": ended {who} by rule \"{}\": {reason} ({} after the deadline)",
                    self.target, rule, curfew_policy::format_age(lateness));
                self.shared.emit(AgentEvent::Terminated {
                    target: self.target.clone(),
                    session: session.clone(),
                    rule: rule.clone(),
                    reason,
                    deadline,
                    at,
                    lateness,
                });
            }
            Ok(Outcome::NoLongerMatched { .. }) => {
                tracing::info!(target: "curfew::agent",
                    "target \"{}\": {who} changed before rule \"{}\" could end it; left alone",
                    self.target, rule);
                self.shared.emit(AgentEvent::NoLongerMatched {
                    target: self.target.clone(),
                    session: session.clone(),
                    rule: rule.clone(),
                });
            }
            Ok(Outcome::Failed { reason: error }) => {
                let retry = self.refused.entry(session.key()).or_insert(Retry {
                    attempts: 0,
                    not_before: Instant::now(),
                });
                retry.attempts += 1;
                let wait = Duration::from_secs(1u64 << retry.attempts.min(8))
                    .min(Duration::from_secs(300));
                retry.not_before = Instant::now() + wait;
                tracing::error!(target: "curfew::agent",
                    "target \"{}\": could not end {who} (rule \"{}\"): {error}; retrying in {}s",
                    self.target, rule, wait.as_secs());
                self.shared.emit(AgentEvent::TerminationFailed {
                    target: self.target.clone(),
                    session: session.clone(),
                    rule: rule.clone(),
                    error,
                });
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// A report-only rule (or a dry run): one record per session and rule.
    async fn report(
        &mut self,
        loaded: &LoadedPolicy,
        session: &Session,
        rule_index: usize,
        ending: Ending,
    ) {
        if !self.reported.insert((session.key(), rule_index)) {
            return;
        }
        let mut record = about(Event::SessionReported, &self.target);
        record.rule = Some(ending.rule.clone());
        record.reason = Some(ending.reason.clone());
        record.session = Some(session_info(session));
        record.result = Some(
            if self.shared.options.dry_run {
                "dry_run"
            } else {
                "report_only"
            }
            .to_owned(),
        );
        record.detail =
            Some(json!({"deadline": ending.deadline.to_string(), "policy_sha256": loaded.sha256}));
        if write(&self.shared, record).await.is_err() {
            self.reported.remove(&(session.key(), rule_index));
            return;
        }
        tracing::info!(target: "curfew::agent",
            "target \"{}\": rule \"{}\" would end {} ({}); nothing done ({})",
            self.target, ending.rule, describe(session), ending.reason,
            if self.shared.options.dry_run { "dry run" } else { "report only" });
        self.shared.emit(AgentEvent::Reported {
            target: self.target.clone(),
            session: session.clone(),
            rule: ending.rule,
            reason: ending.reason,
        });
    }

    fn warn(
        &mut self,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        d: &Decision,
        session: &Session,
    ) {
        if !self.warned.insert((d.session, d.rule)) {
            return;
        }
        let rule = &loaded.policy.rules[d.rule];
        tracing::info!(target: "curfew::agent",
            "target \"{}\": {} will be ended in {} by rule \"{}\"",
            self.target, describe(session),
            curfew_policy::format_age(d.deadline.duration_since(snapshot.now)), rule.name);
        self.shared.emit(AgentEvent::Warned {
            target: self.target.clone(),
            session: session.clone(),
            rule: rule.name.clone(),
            deadline: d.deadline,
            at: snapshot.now,
        });
    }
}

/// The rule name under which sessions of locked roles are ended.
const LOCK_RULE: &str = "login-lock";
/// Its key in the set of reported sessions (no policy rule has this index).
const LOCK_RULE_INDEX: usize = usize::MAX;

/// How one session is to be ended, and why.
struct Ending {
    rule: String,
    reason: String,
    deadline: jiff::Timestamp,
    guard: Guard,
}

/// The ending a decision describes, for a report.
fn reported(loaded: &LoadedPolicy, snapshot: &Snapshot, d: &Decision) -> Ending {
    Ending {
        rule: loaded.policy.rules[d.rule].name.clone(),
        reason: d.reason(&loaded.policy, snapshot.now),
        deadline: d.deadline,
        guard: Guard::for_decision(d),
    }
}

/// "pid 4242 (analyst_kim on sales, psql)".
fn describe(s: &Session) -> String {
    let app = if s.application.is_empty() {
        String::new()
    } else {
        format!(", {}", s.application)
    };
    format!("pid {} ({} on {}{app})", s.pid, s.role, s.database)
}
