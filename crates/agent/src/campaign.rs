//! Becoming and staying the leader of a target: the campaign for the leader lock (ending
//! squatters, judging a replica that leads), and the check once a round that this agent still
//! leads and can record what it does.

use curfew_backend::{BackendError, Connector, Coordination as _, SessionKey};
use tokio::time::Instant;

use crate::events::AgentEvent;
use crate::heartbeat::State;
use crate::worker::{Ended, HEARTBEAT_LIMIT, Pause, Worker, standby_of};
use curfew_policy::LoadedPolicy;

impl<C: Connector> Worker<C> {
    /// Wait for the leader lock. `Ok(None)` on shutdown. A session of another role that holds
    /// the lock is ended (see [`crate::leadership`]) and the lock taken at once; a replica of
    /// curfew's role that leads without enforcing this policy is reported, loudly, while this
    /// agent stands by.
    pub(crate) async fn campaign(
        &mut self,
        lock: &mut C::Backend,
    ) -> Result<Option<SessionKey>, BackendError> {
        let mut said: Option<Result<(), String>> = None;
        let mut waited_for_primary = false;
        let mut evictions = 0u32;
        // Squatters that could not be ended, and when to try each again: a session curfew may
        // not end (a superuser's) is tried with capped backoff, not recorded every interval.
        let mut refused: std::collections::HashMap<(i64, Option<jiff::Timestamp>), (u32, Instant)> =
            std::collections::HashMap::new();
        loop {
            let loaded = self.policy.borrow().clone();
            let interval = loaded.policy.agent.interval.to_std();
            let every = loaded.policy.agent.heartbeat.to_std();
            // A standing-by agent's log is evidence too: anchored once per round.
            self.anchor_head(lock).await;
            if let Some(primary) = standby_of(&loaded, &self.target)
                && !self.shared.leads(&primary)
            {
                if !waited_for_primary {
                    waited_for_primary = true;
                    tracing::info!(target: "curfew::agent", "target \"{}\": a standby; standing by until this agent leads its primary \"{primary}\"", self.target);
                }
                // Standing by counts as watching only while the server answers.
                tokio::time::timeout(HEARTBEAT_LIMIT, lock.ping())
                    .await
                    .map_err(|_| self.no_reply("checking the connection"))??;
                self.shared.emit(AgentEvent::StandingBy {
                    target: self.target.clone(),
                });
                let why = format!(
                    "a standby: this agent does not lead its primary \"{primary}\"; the agent that does acts on it"
                );
                self.beat.beat(State::StandingBy(why), every).await;
                if self.pause(Instant::now() + interval).await == Pause::Stop {
                    return Ok(None);
                }
                continue;
            }
            // An agent that cannot record what it does must not lead: another replica may.
            if let Some(problem) = self.audit_problem().await {
                if said.as_ref() != Some(&Err(problem.clone())) {
                    tracing::warn!(target: "curfew::agent", "target \"{}\": not leading while the audit log is unusable ({problem})", self.target);
                    said = Some(Err(problem.clone()));
                }
                self.beat.beat(State::AuditUnwritable(problem), every).await;
                tokio::time::timeout(HEARTBEAT_LIMIT, lock.ping())
                    .await
                    .map_err(|_| self.no_reply("checking the connection"))??;
                if self.pause(Instant::now() + interval).await == Pause::Stop {
                    return Ok(None);
                }
                continue;
            }
            let taken = tokio::time::timeout(HEARTBEAT_LIMIT, lock.try_lead()).await;
            if let Some(leadership) =
                taken.map_err(|_| self.no_reply("taking the leader lock"))??
            {
                return Ok(Some(leadership));
            }
            let holders = tokio::time::timeout(HEARTBEAT_LIMIT, lock.lock_holders())
                .await
                .map_err(|_| self.no_reply("finding the leader"))??;
            let (squatters, replicas): (Vec<_>, Vec<_>) =
                holders.into_iter().partition(|h| !h.own_role);
            if !squatters.is_empty() {
                let problem = format!(
                    "curfew's leader lock is held by {}, not a curfew agent; no agent can enforce the policy until it is gone",
                    squatters
                        .iter()
                        .map(curfew_backend::LockHolder::describe)
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
                self.shared.emit(AgentEvent::Enforcement {
                    target: self.target.clone(),
                    problem: Some(problem.clone()),
                });
                self.beat.beat(State::NotEnforced(problem), every).await;
                let now = Instant::now();
                let due: Vec<_> = squatters
                    .iter()
                    .filter(|h| {
                        refused
                            .get(&(h.pid, h.backend_start))
                            .is_none_or(|(_, next)| *next <= now)
                    })
                    .cloned()
                    .collect();
                let ended =
                    crate::leadership::evict(&self.shared, &self.target, lock, &due).await?;
                if ended < due.len() {
                    for h in &due {
                        let entry = refused.entry((h.pid, h.backend_start)).or_insert((0, now));
                        entry.0 += 1;
                        entry.1 = now + interval * (1u32 << entry.0.min(8)).min(300);
                    }
                }
                refused.retain(|key, _| squatters.iter().any(|h| (h.pid, h.backend_start) == *key));
                evictions += 1;
                // Take the lock at once after an eviction (the squatters and the sessions that
                // queued for the lock behind them are gone); a squatter that keeps coming back
                // (or cannot be ended) is retried once an interval, so the log is not flooded.
                if ended == 0 || evictions >= 5 {
                    if self.pause(Instant::now() + interval).await == Pause::Stop {
                        return Ok(None);
                    }
                    evictions = 0;
                }
                continue;
            }
            evictions = 0;
            let verdict = match replicas.iter().find(|h| h.granted) {
                Some(holder) => crate::leadership::judge_leader(holder, &loaded.sha256),
                // Released between the two statements: try again shortly.
                None => Ok(()),
            };
            if said.as_ref() != Some(&verdict) {
                match &verdict {
                    Ok(()) => {
                        let who = replicas.first().map_or_else(
                            || "nobody (it was just released)".to_owned(),
                            |h| h.describe(),
                        );
                        tracing::info!(target: "curfew::agent", "target \"{}\": another curfew agent leads ({who}; if that is this agent, two targets of the policy name the same server and only one can lead); standing by", self.target);
                    }
                    Err(why) => {
                        tracing::warn!(target: "curfew::agent", "target \"{}\": NOT ENFORCED: {why}; this agent stands by until that agent stops or is fixed", self.target);
                    }
                }
                self.shared.emit(AgentEvent::Leading {
                    target: self.target.clone(),
                    leading: false,
                });
                self.shared.emit(AgentEvent::Enforcement {
                    target: self.target.clone(),
                    problem: verdict.clone().err(),
                });
                said = Some(verdict.clone());
            }
            self.shared.emit(AgentEvent::StandingBy {
                target: self.target.clone(),
            });
            let state = match &verdict {
                Ok(()) => State::StandingBy(format!(
                    "another curfew agent leads and enforces this policy ({})",
                    replicas.first().map_or_else(
                        || "the lock was just released".to_owned(),
                        curfew_backend::LockHolder::describe
                    )
                )),
                Err(why) => State::NotEnforced(why.clone()),
            };
            self.beat.beat(state, every).await;
            if self.pause(Instant::now() + interval).await == Pause::Stop {
                return Ok(None);
            }
        }
    }

    /// Once a round, on the lock connection: announce the mode and policy (where `curfew check`
    /// reads them), and check the lock is still held. A standby acts on its primary's lock
    /// state, only while this agent leads it. The actions themselves are fenced on the server,
    /// so a lost lock never lets a stale leader act meanwhile.
    pub(crate) async fn keep_leading(
        &self,
        lock: &mut C::Backend,
        loaded: &LoadedPolicy,
        announced: &mut String,
    ) -> Result<(), Ended> {
        let not_leading = || Ended::Lost(BackendError::not_leading(&self.target));
        if let Some(problem) = self.audit_problem().await {
            tracing::error!(target: "curfew::agent", "target \"{}\": the audit log is unusable ({problem}); releasing the leadership so that an agent that can record leads", self.target);
            return Err(not_leading());
        }
        if *announced != loaded.sha256 {
            let text = curfew_backend::Announcement::text(false, &loaded.sha256);
            let done = tokio::time::timeout(HEARTBEAT_LIMIT, lock.announce(&text)).await;
            if !matches!(done, Ok(Ok(()))) {
                return Err(not_leading());
            }
            announced.clone_from(&loaded.sha256);
        }
        if let Some(primary) = standby_of(loaded, &self.target)
            && !self.shared.leads(&primary)
        {
            return Err(not_leading());
        }
        // Bounded: a half-dead connection would otherwise hold the loop for minutes.
        let heartbeat = tokio::time::timeout(HEARTBEAT_LIMIT, lock.still_leads()).await;
        match heartbeat.unwrap_or(Ok(false)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_leading()),
            Err(e) => {
                // The lock connection is gone, so is the lock; the main one may still work.
                tracing::warn!(target: "curfew::agent", "{e}");
                Err(not_leading())
            }
        }
    }

    /// Why the audit log cannot be written now, if it cannot (checked off the async threads).
    async fn audit_problem(&self) -> Option<String> {
        let audit = self.shared.audit.clone();
        tokio::task::spawn_blocking(move || audit.check_writable().err())
            .await
            .unwrap_or_else(|e| Some(format!("the check failed: {e}")))
    }
}
