//! Acting on a plan: guarded terminations with intent records before and outcome records after,
//! report-only records (once per session and rule), warnings (warn.rs), and a retry delay for
//! terminations the server refused. Everything due at one moment is ended as one batch: one
//! fsync for the intents, one statement, one confirmation poll, one fsync for the outcomes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use curfew_audit::details::TerminationPlan;
use curfew_audit::{Event, Intent, IntentToken, Termination};
use curfew_backend::{Backend, BackendError, EndRequest, GatewayClient, Outcome, Signal, Snapshot};
use curfew_policy::{Cause, Decision, LOGIN_LOCK_RULE, Plan, Session, SessionKey};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::describe::describe;
use crate::ending::{Ending, termination_outcome};
use crate::events::AgentEvent;
use crate::gateway_grace::Left;
use crate::locked::LockedSet;
use crate::once::{OncePerRule, Subject};
use crate::records::{about, complete_all, intend_all, session_info, write};
use crate::shared::Shared;
use crate::warn::Warner;
use curfew_policy::LoadedPolicy;

/// A termination the server refused, and when to try it again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    not_before: Instant,
}

/// A signalled session whose exit is still to be confirmed (confirmation is kept off the path
/// of the next signals: waiting for one batch's exits would make the next batch late). Its
/// intent's token is completed with the outcome.
struct Pending {
    session: Session,
    /// The client behind it when it came through curfew gateway.
    via_gateway: Option<GatewayClient>,
    ending: Ending,
    intent: IntentToken<Termination>,
    at: Timestamp,
    signalled: Instant,
    next_check: Instant,
    pause: Duration,
}

/// Carries out plans for one target and remembers what it already reported.
pub(crate) struct Actor {
    target: String,
    shared: Arc<Shared>,
    reported: OncePerRule,
    warner: Warner,
    refused: HashMap<SessionKey, Retry>,
    pending: Vec<Pending>,
    /// The gateway sessions of the last snapshot, with the client behind each.
    gateway: BTreeMap<SessionKey, GatewayClient>,
}

impl Actor {
    pub(crate) fn new(target: String, shared: Arc<Shared>) -> Self {
        Self {
            warner: Warner::new(target.clone(), shared.clone()),
            target,
            shared,
            reported: OncePerRule::default(),
            refused: HashMap::new(),
            pending: Vec::new(),
            gateway: BTreeMap::new(),
        }
    }

    /// When the exits of signalled sessions should be checked next.
    pub(crate) fn next_confirmation(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.next_check).min()
    }

    /// Check the exits of signalled sessions: record those gone (or given up on) and keep
    /// waiting for the others.
    pub(crate) async fn confirm<B: Backend>(
        &mut self,
        backend: &mut B,
    ) -> Result<(), BackendError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let sessions: Vec<SessionKey> = self.pending.iter().map(|p| p.session.key()).collect();
        let asked = Instant::now();
        let gone = match backend.exited(&sessions).await {
            Ok(gone) => gone,
            Err(e) => {
                self.abandon(&e).await;
                return Err(e);
            }
        };
        let now = Instant::now();
        tracing::debug!(target: "curfew::agent",
            "target \"{}\": exit check for {} sessions in {:.1} ms",
            self.target, sessions.len(), (now - asked).as_secs_f64() * 1e3);
        let wait = self.shared.options.terminate_wait;
        let mut settled = Vec::new();
        let mut still = Vec::new();
        for (mut p, confirmed) in std::mem::take(&mut self.pending).into_iter().zip(gone) {
            match confirmed {
                Some(confirmed_at) => {
                    let at = p.at;
                    settled.push((p, Ok(Outcome::Ended { at, confirmed_at })));
                }
                None if p.signalled.elapsed() >= wait => {
                    let reason = format!(
                        "the process was signalled at {} but had not exited {} later",
                        p.at,
                        curfew_policy::format_age(
                            jiff::SignedDuration::try_from(wait).unwrap_or_default()
                        )
                    );
                    settled.push((p, Ok(Outcome::Failed { reason, code: None })));
                }
                None => {
                    p.pause = (p.pause * 2).min(Duration::from_millis(50));
                    p.next_check = now + p.pause;
                    still.push(p);
                }
            }
        }
        self.pending = still;
        self.settle(settled).await;
        Ok(())
    }

    /// Before stopping: wait for the exits still to be confirmed (bounded by the wait).
    pub(crate) async fn drain<B: Backend>(&mut self, backend: &mut B) {
        while let Some(next) = self.next_confirmation() {
            tokio::time::sleep_until(next).await;
            if self.confirm(backend).await.is_err() {
                return;
            }
        }
    }

    /// The connection is gone: the signalled sessions' exits can no longer be confirmed.
    pub(crate) async fn abandon(&mut self, error: &BackendError) {
        let settled = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| {
                let why = format!(
                    "signalled at {}, but the connection was lost before its exit was confirmed: {error}",
                    p.at
                );
                (p, Err(why))
            })
            .collect();
        self.settle(settled).await;
    }

    /// Record the outcomes of signalled sessions (completing their intents) and tell observers.
    async fn settle(&mut self, settled: Vec<(Pending, Result<Outcome, String>)>) {
        if settled.is_empty() {
            return;
        }
        let mut completions = Vec::with_capacity(settled.len());
        let mut told = Vec::with_capacity(settled.len());
        for (p, outcome) in settled {
            completions.push((
                p.intent,
                termination_outcome(&p.ending, p.via_gateway.as_ref(), &outcome),
            ));
            told.push((p.session, p.via_gateway, p.ending, outcome));
        }
        // Kept in memory by the writer if the log cannot take them now.
        let _ = complete_all(&self.shared, completions).await;
        for (session, via_gateway, ending, outcome) in told {
            if let Ok(outcome) = outcome {
                self.tell(session, via_gateway, ending, outcome);
            }
        }
    }

    /// When the earliest refused termination may be retried.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.refused.values().map(|r| r.not_before).min()
    }

    /// Whether a session may be signalled now: not refused recently, and not already
    /// signalled and waiting for its exit to be confirmed.
    fn may_try(&self, key: &SessionKey) -> bool {
        self.refused
            .get(key)
            .is_none_or(|r| r.not_before <= Instant::now())
            && !self.pending.iter().any(|p| p.session.key() == *key)
    }

    /// Carry out a plan. Only a lost connection is an error.
    pub(crate) async fn act<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        plan: &Plan,
        left: &Left,
    ) -> Result<(), BackendError> {
        self.gateway.clone_from(&snapshot.gateway);
        let busy =
            !plan.terminations.is_empty() || !plan.reports.is_empty() || !plan.warnings.is_empty();
        if busy {
            let by_key: HashMap<SessionKey, &Session> =
                snapshot.sessions.iter().map(|s| (s.key(), s)).collect();
            let mut batch = Vec::new();
            for d in &plan.terminations {
                let Some(session) = by_key.get(&d.session) else {
                    continue;
                };
                let mut ending = Ending::of(loaded, d, snapshot.now);
                if left.missed.contains(&d.session)
                    && let Some(client) = snapshot.gateway.get(&d.session)
                {
                    ending = ending.missed_by_gateway(client, loaded.policy.agent.gateway_grace);
                }
                if let Cause::OverSessionLimit { limit, .. } = d.cause {
                    ending.guard.keepers =
                        crate::keepers::keepers(loaded, snapshot, plan, session, d.rule, limit);
                }
                if self.shared.options.dry_run {
                    self.report(loaded, session, Subject::Rule(d.rule_id.clone()), ending)
                        .await;
                } else if self.may_try(&d.session) {
                    batch.push(((*session).clone(), ending));
                }
            }
            self.end_batch(backend, loaded, batch).await?;
            for d in &plan.reports {
                if let Some(session) = by_key.get(&d.session) {
                    let ending = Ending::of(loaded, d, snapshot.now);
                    self.report(loaded, session, Subject::Rule(d.rule_id.clone()), ending)
                        .await;
                }
            }
        }
        if !(self.reported.is_empty() && self.warner.is_empty() && self.refused.is_empty()) {
            // Forget sessions that are gone.
            let live: HashSet<SessionKey> = snapshot.sessions.iter().map(Session::key).collect();
            self.reported.retain_live(&live);
            self.warner.forget(&live);
            self.refused.retain(|k, _| live.contains(k));
        }
        Ok(())
    }

    /// End scheduled decisions whose deadline has come, without reading the sessions again
    /// (each guard re-checks its session). Returns those the server says are not due yet.
    pub(crate) async fn end_scheduled<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        due: Vec<(Decision, Session)>,
    ) -> Result<Vec<(Decision, Session)>, BackendError> {
        let mut batch = Vec::new();
        let mut kept = Vec::new();
        for (d, session) in due {
            if self.shared.options.dry_run || !self.may_try(&d.session) {
                continue;
            }
            let ending = Ending::of(loaded, &d, d.deadline);
            batch.push((session.clone(), ending));
            kept.push((d, session));
        }
        let early = self.end_batch(backend, loaded, batch).await?;
        Ok(kept
            .into_iter()
            .enumerate()
            .filter(|(i, _)| early.contains(i))
            .map(|(_, pair)| pair)
            .collect())
    }

    /// End sessions of locked roles that the plan does not already end (an incident lock ends
    /// a role's sessions whatever the rules say; a window lock's rule usually got them first,
    /// or left them to the gateway for now), then record the tick's warnings: last, so that
    /// none delays an ending or a login change.
    pub(crate) async fn end_locked<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        plan: &Plan,
        left: &Left,
        locked: &LockedSet,
    ) -> Result<(), BackendError> {
        self.end_locked_sessions(backend, loaded, snapshot, plan, left, locked)
            .await?;
        self.warner.warn(loaded, snapshot, &plan.warnings).await;
        Ok(())
    }

    async fn end_locked_sessions<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        snapshot: &Snapshot,
        plan: &Plan,
        left: &Left,
        locked: &LockedSet,
    ) -> Result<(), BackendError> {
        if locked.is_empty() {
            return Ok(());
        }
        let planned: HashSet<SessionKey> = plan.terminations.iter().map(|d| d.session).collect();
        let mut batch = Vec::new();
        for session in &snapshot.sessions {
            let Some(lock) = locked.get(&*session.role) else {
                continue;
            };
            if planned.contains(&session.key())
                || (!lock.incident && left.sessions.contains(&session.key()))
            {
                continue;
            }
            // A window lock keeps the exemptions the policy grants (a backup running as a
            // locked role); an incident lock ends every session of the role.
            if !lock.incident && loaded.policy.exempt.session(session).is_some() {
                continue;
            }
            let ending = Ending {
                rule: LOGIN_LOCK_RULE.to_owned(),
                reason: format!("role \"{}\" is locked: {}", session.role, lock.reason),
                deadline: lock.since.max(session.backend_start),
                guard: EndRequest::identity_only(session.key()),
                gateway_missed: false,
            };
            if self.shared.options.dry_run {
                self.report(loaded, session, Subject::LoginLock, ending)
                    .await;
            } else if self.may_try(&session.key()) {
                batch.push((session.clone(), ending));
            }
        }
        self.end_batch(backend, loaded, batch).await.map(|_| ())
    }

    /// End a batch of sessions: intent records (one fsync), one guarded statement, outcome
    /// records (one fsync). Returns the indexes of the sessions that were not due yet.
    async fn end_batch<B: Backend>(
        &mut self,
        backend: &mut B,
        loaded: &LoadedPolicy,
        batch: Vec<(Session, Ending)>,
    ) -> Result<Vec<usize>, BackendError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        for (session, ending) in batch.iter().filter(|(_, e)| e.gateway_missed) {
            self.gateway_missed(session, ending);
        }
        let intents: Vec<Intent<Termination>> = batch
            .iter()
            .map(|(session, ending)| {
                let plan = TerminationPlan {
                    deadline: ending.deadline,
                    policy_sha256: loaded.sha256.clone(),
                };
                Intent::new(Timestamp::now(), &self.target, Some(&plan))
                    .with_rule(ending.rule.clone())
                    .with_reason(ending.reason.clone())
                    .with_session(session_info(session))
            })
            .collect();
        // Nothing is done without a record: no intents on disk, no termination (the end
        // requests need the intents' tokens).
        let Ok(intents) = intend_all(&self.shared, intents).await else {
            return Ok(Vec::new());
        };
        let requests: Vec<_> = intents
            .iter()
            .zip(&batch)
            .map(|(intent, (_, ending))| intent.authorize(ending.guard.clone()))
            .collect();
        let asked = Instant::now();
        let signalled = backend.signal_all(&requests).await;
        drop(requests);
        let signals = match signalled {
            Ok(signals) => signals,
            Err(e) => {
                let why = if e.is_not_leading() {
                    format!("not ended (nothing was signalled): {e}")
                } else {
                    format!("the connection was lost before the result was known: {e}")
                };
                let completions = intents
                    .into_iter()
                    .zip(&batch)
                    .map(|(intent, (session, ending))| {
                        let via = self.gateway.get(&session.key());
                        (intent, termination_outcome(ending, via, &Err(why.clone())))
                    })
                    .collect();
                let _ = complete_all(&self.shared, completions).await;
                return Err(e);
            }
        };
        let now = Instant::now();
        tracing::debug!(target: "curfew::agent",
            "target \"{}\": signal statement for {} sessions in {:.1} ms",
            self.target, batch.len(), (now - asked).as_secs_f64() * 1e3);
        let mut settled = Vec::new();
        let mut early = Vec::new();
        for (i, (((session, ending), signal), intent)) in
            batch.into_iter().zip(signals).zip(intents).enumerate()
        {
            let via_gateway = self.gateway.get(&session.key()).cloned();
            let pending = Pending {
                session,
                via_gateway,
                ending,
                intent,
                at: Timestamp::UNIX_EPOCH,
                signalled: now,
                next_check: now + Duration::from_millis(1),
                pause: Duration::from_millis(1),
            };
            match signal {
                Signal::Signalled { at } => self.pending.push(Pending { at, ..pending }),
                Signal::Settled(outcome) => {
                    if matches!(outcome, Outcome::NotYetDue { .. }) {
                        early.push(i);
                    }
                    settled.push((pending, Ok(outcome)));
                }
            }
        }
        self.settle(settled).await;
        Ok(early)
    }

    /// A session the gateway should have ended and did not: said loudly before it is ended
    /// here (a gateway that stopped answering is no exemption).
    fn gateway_missed(&self, session: &Session, ending: &Ending) {
        let Some(client) = self.gateway.get(&session.key()) else {
            return;
        };
        tracing::warn!(target: "curfew::agent",
            event = "gateway_missed",
            target = %self.target,
            pid = session.pid,
            role = %curfew_policy::visible(&session.role),
            rule = %curfew_policy::visible(&ending.rule),
            gateway = %curfew_policy::visible(&client.gateway),
            "target \"{}\": curfew gateway {} did not end {} {client} (rule \"{}\", deadline {}); the agent ends it",
            self.target, curfew_policy::visible(&client.gateway), describe(session),
            curfew_policy::visible(&ending.rule), ending.deadline);
        self.shared.emit(AgentEvent::GatewayMissed {
            target: self.target.clone(),
            session: session.clone(),
            gateway: client.clone(),
            rule: ending.rule.clone(),
            deadline: ending.deadline,
        });
    }

    /// Log an outcome and tell observers.
    fn tell(
        &mut self,
        session: Session,
        via_gateway: Option<GatewayClient>,
        ending: Ending,
        outcome: Outcome,
    ) {
        let who = match &via_gateway {
            Some(client) => format!("{} {client}", describe(&session)),
            None => describe(&session),
        };
        let Ending {
            rule,
            reason,
            deadline,
            ..
        } = ending;
        match outcome {
            Outcome::Ended { at, .. } => {
                let lateness = at.duration_since(deadline);
                tracing::info!(target: "curfew::agent",
                    event = "session_terminated",
                    target = %self.target,
                    pid = session.pid,
                    role = %curfew_policy::visible(&session.role),
                    database = %curfew_policy::visible(&session.database),
                    rule = %curfew_policy::visible(&rule),
                    lateness_ms = lateness.as_secs_f64() * 1e3,
                    "target \"{}\": ended {who} by rule \"{rule}\": {} ({} after the deadline)",
                    self.target, curfew_policy::visible(&reason), curfew_policy::format_age(lateness));
                self.shared.emit(AgentEvent::Terminated {
                    target: self.target.clone(),
                    session,
                    via_gateway,
                    rule,
                    reason,
                    deadline,
                    at,
                    lateness,
                });
            }
            Outcome::NoLongerMatched { .. } => {
                tracing::info!(target: "curfew::agent",
                    event = "termination_skipped",
                    target = %self.target,
                    pid = session.pid,
                    role = %curfew_policy::visible(&session.role),
                    rule = %curfew_policy::visible(&rule),
                    "target \"{}\": {who} changed before rule \"{rule}\" could end it; left alone",
                    self.target);
                self.shared.emit(AgentEvent::NoLongerMatched {
                    target: self.target.clone(),
                    session,
                    rule,
                });
            }
            Outcome::NotYetDue { .. } => {}
            Outcome::Failed { reason: error, .. } => {
                let retry = self.refused.entry(session.key()).or_insert(Retry {
                    attempts: 0,
                    not_before: Instant::now(),
                });
                retry.attempts += 1;
                let wait = Duration::from_secs(1u64 << retry.attempts.min(8))
                    .min(Duration::from_secs(300));
                retry.not_before = Instant::now() + wait;
                tracing::error!(target: "curfew::agent",
                    event = "termination_failed",
                    target = %self.target,
                    pid = session.pid,
                    role = %curfew_policy::visible(&session.role),
                    rule = %curfew_policy::visible(&rule),
                    "target \"{}\": could not end {who} (rule \"{rule}\"): {}; retrying in {}s",
                    self.target, curfew_policy::visible(&error), wait.as_secs());
                self.shared.emit(AgentEvent::TerminationFailed {
                    target: self.target.clone(),
                    session,
                    rule,
                    error,
                });
            }
        }
    }

    /// A report-only rule (or a dry run): one record per session and rule.
    async fn report(
        &mut self,
        loaded: &LoadedPolicy,
        session: &Session,
        subject: Subject,
        ending: Ending,
    ) {
        if !self.reported.insert(session.key(), subject.clone()) {
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
        let record = record.with_details(&TerminationPlan {
            deadline: ending.deadline,
            policy_sha256: loaded.sha256.clone(),
        });
        if write(&self.shared, record).await.is_err() {
            self.reported.remove(session.key(), &subject);
            return;
        }
        tracing::info!(target: "curfew::agent",
            event = "session_reported",
            target = %self.target,
            pid = session.pid,
            role = %curfew_policy::visible(&session.role),
            rule = %curfew_policy::visible(&ending.rule),
            "target \"{}\": rule \"{}\" would end {} ({}); nothing done ({})",
            self.target, ending.rule, describe(session), curfew_policy::visible(&ending.reason),
            if self.shared.options.dry_run { "dry run" } else { "report only" });
        self.shared.emit(AgentEvent::Reported {
            target: self.target.clone(),
            session: session.clone(),
            rule: ending.rule,
            reason: ending.reason,
        });
    }
}
