//! One target's loop: connect (and reconnect, with capped backoff), then snapshot, evaluate,
//! act, and sleep until the next deadline or the discovery interval, whichever comes first.

use std::sync::Arc;
use std::time::Duration;

use curfew_audit::Event;
use curfew_backend::{
    Backend, BackendError, Connector, Coordination as _, SessionKey, SessionReader as _,
};
use curfew_policy::Engine;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::act::Actor;
use crate::events::AgentEvent;
use crate::heartbeat::{Heartbeat, State, clock_offset_ms};
use crate::locks::Keeper;
use crate::records::{about, write};
use crate::shared::Shared;
use curfew_policy::LoadedPolicy;

/// How long the leader's heartbeat on its lock connection may take before it steps down.
pub(crate) const HEARTBEAT_LIMIT: Duration = Duration::from_secs(5);

/// How a connected session of the loop ended.
pub(crate) enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The connection is gone; reconnect.
    Lost(BackendError),
}

/// The loop for one target.
pub(crate) struct Worker<C: Connector> {
    pub(crate) target: String,
    pub(crate) connector: C,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: watch::Receiver<Arc<LoadedPolicy>>,
    pub(crate) stop: watch::Receiver<bool>,
    /// This target's heartbeat (continuity evidence).
    pub(crate) beat: Heartbeat,
}

impl<C: Connector> Worker<C> {
    /// Run until told to stop. Never returns an error: a target that cannot be reached is
    /// retried forever (and logged), without affecting the other targets.
    pub(crate) async fn run(mut self) {
        let mut delay = self.shared.options.retry_min;
        let mut actor = Actor::new(self.target.clone(), self.shared.clone());
        let mut keeper = Keeper::new(self.target.clone(), self.shared.clone());
        loop {
            if *self.stop.borrow() {
                return;
            }
            let connected = tokio::select! {
                result = self.connector.connect() => result,
                _ = self.stop.changed() => return,
            };
            let lost = match connected {
                Ok((mut backend, warnings)) => {
                    crate::fault::panic_once("worker-panic");
                    tracing::info!(target: "curfew::agent", "target \"{}\": connected ({})", self.target, backend.describe());
                    for warning in warnings {
                        tracing::warn!(target: "curfew::agent", "{warning}");
                    }
                    self.shared.emit(AgentEvent::Connected {
                        target: self.target.clone(),
                        server: backend.describe(),
                    });
                    match self
                        .lead(&mut backend, &mut actor, &mut keeper, &mut delay)
                        .await
                    {
                        Some(lost) => lost,
                        None => return,
                    }
                }
                Err(e) => Lost::unreachable(&e),
            };
            let Lost { error, state } = lost;
            tracing::warn!(target: "curfew::agent", "{error}; retrying in {}", curfew_policy::format_age(delay.try_into().unwrap_or_default()));
            self.shared.emit(AgentEvent::Disconnected {
                target: self.target.clone(),
                error: error.clone(),
                retry_in: delay,
            });
            // Heartbeats go on while waiting, so the wait reads as unreachable, not as silence.
            let retry_at = Instant::now() + delay;
            loop {
                let every = self.heartbeat_interval();
                self.beat.beat(state.clone(), every).await;
                tokio::select! {
                    _ = tokio::time::sleep_until(retry_at.min(Instant::now() + every)) => {}
                    _ = self.stop.changed() => return,
                }
                if Instant::now() >= retry_at {
                    break;
                }
            }
            delay = (delay * 2).min(self.shared.options.retry_max);
        }
    }

    /// Take the leader lock on a second connection (waiting while another replica leads),
    /// then enforce until shutdown (`None`) or until the connection or the leadership is lost
    /// (the error, to retry). A dry run never leads: it observes, so that an enforcing agent
    /// is never kept out by one that ends nothing.
    async fn lead(
        &mut self,
        backend: &mut C::Backend,
        actor: &mut Actor,
        keeper: &mut Keeper,
        delay: &mut Duration,
    ) -> Option<Lost> {
        if self.shared.options.dry_run {
            *delay = self.shared.options.retry_min;
            return match self.enforce(backend, None, actor, keeper).await {
                Ended::Shutdown => None,
                Ended::Lost(e) => Some(Lost::unreachable(&e)),
            };
        }
        let mut lock = match self.connector.connect().await {
            Ok((lock, _)) => lock,
            Err(e) => return Some(Lost::unreachable(&e)),
        };
        let leadership = match self.campaign(&mut lock).await {
            Ok(Some(leadership)) => leadership,
            Ok(None) => return None,
            Err(e) => return Some(Lost::unreachable(&e)),
        };
        backend.fence(Some(leadership));
        // Retries start short again only once this agent got as far as leading.
        *delay = self.shared.options.retry_min;
        let leading = LeadingFlag::raise(self.shared.clone(), &self.target);
        tracing::info!(target: "curfew::agent", "target \"{}\": this agent leads (leader lock held by its session {})", self.target, leadership.pid);
        self.leadership_record(
            Event::LeaderAcquired,
            format!("this agent leads target \"{}\"", self.target),
            leadership,
        )
        .await;
        self.shared.emit(AgentEvent::Leading {
            target: self.target.clone(),
            leading: true,
        });
        self.shared.emit(AgentEvent::Enforcement {
            target: self.target.clone(),
            problem: None,
        });
        let ended = self.enforce(backend, Some(&mut lock), actor, keeper).await;
        let (why, error) = match ended {
            Ended::Shutdown => {
                self.drain(actor, backend).await;
                (
                    "the agent is stopping; the leader lock is released".to_owned(),
                    None,
                )
            }
            Ended::Lost(e) => {
                if e.is_not_leading() {
                    // The main connection still works: confirm what was signalled.
                    self.drain(actor, backend).await;
                } else {
                    actor.abandon(&e).await;
                }
                (e.to_string(), Some(Lost::of(&e)))
            }
        };
        tracing::warn!(target: "curfew::agent", "target \"{}\": this agent no longer leads: {why}", self.target);
        drop(leading);
        self.leadership_record(Event::LeaderLost, why, leadership)
            .await;
        self.shared.emit(AgentEvent::Leading {
            target: self.target.clone(),
            leading: false,
        });
        drop(lock);
        error
    }

    /// Confirm what was signalled before stepping down, for at most the termination wait.
    async fn drain(&self, actor: &mut Actor, backend: &mut C::Backend) {
        let wait = self.shared.options.terminate_wait;
        if tokio::time::timeout(wait, actor.drain(backend))
            .await
            .is_err()
        {
            actor
                .abandon(&self.no_reply("confirming terminations"))
                .await;
        }
    }

    /// The error for a statement that got no reply in time (a half-dead connection).
    pub(crate) fn no_reply(&self, what: &'static str) -> BackendError {
        BackendError::no_reply(&self.target, what, HEARTBEAT_LIMIT.as_secs())
    }

    /// Record a change of leadership.
    async fn leadership_record(&self, event: Event, reason: String, leadership: SessionKey) {
        let mut record = about(event, &self.target);
        record.reason = Some(reason);
        let record = record.with_details(&curfew_audit::details::Leadership {
            lock_session_pid: leadership.pid,
            lock_session_start: leadership.backend_start,
        });
        let _ = write(&self.shared, record).await;
    }

    /// The loop on one connection: a snapshot at least every interval; in between, scheduled
    /// decisions are ended as their deadlines fall, without reading the sessions again (each
    /// termination's guard re-checks its session on the server).
    async fn enforce(
        &mut self,
        backend: &mut C::Backend,
        mut lock: Option<&mut C::Backend>,
        actor: &mut Actor,
        keeper: &mut Keeper,
    ) -> Ended {
        let mut engine = Engine::new();
        let mut announced = String::new();
        loop {
            let loaded = self.policy.borrow_and_update().clone();
            let interval = loaded.policy.agent.interval.to_std();
            // The leader shows its mode and policy on its lock session, where `curfew check`
            // reads them (a dry run, or another policy, does not meet the requirement).
            if let Some(lock) = lock.as_deref_mut()
                && let Err(lost) = self.keep_leading(lock, &loaded, &mut announced).await
            {
                return lost;
            }
            let started = Instant::now();
            let sent = jiff::Timestamp::now();
            let snapshot = match backend.snapshot(loaded.needs_memberships()).await {
                Ok(snapshot) => snapshot,
                Err(e) if e.is_connection_lost() => return Ended::Lost(e),
                Err(e) => {
                    // A query error on a live connection: report, wait an interval, try again.
                    tracing::error!(target: "curfew::agent", "{e}");
                    if self.pause(Instant::now() + interval).await == Pause::Stop {
                        return Ended::Shutdown;
                    }
                    continue;
                }
            };
            let anchor = Instant::now();
            self.beat
                .offset(clock_offset_ms(sent, jiff::Timestamp::now(), snapshot.now));
            // The snapshot's clock is when the server received the request: it maps to when the
            // request was sent (early by the network's one-way delay at most, which the guard's
            // not-before check absorbs), not to when the reply arrived, which is later by the
            // time the server took to build it.
            let local = |t: jiff::Timestamp| {
                started
                    + Duration::try_from(t.duration_since(snapshot.now)).unwrap_or(Duration::ZERO)
            };
            let snapshot_time = anchor - started;
            // Schedule past the next snapshot: its reply takes a while, and what falls due
            // meanwhile is ended from this schedule (see below).
            let horizon =
                jiff::SignedDuration::try_from(interval + interval / 2).unwrap_or_default();
            // verify's window-edge canaries name their edge; the engine takes it explicitly.
            let overrides =
                curfew_policy::Overrides::canary_edges(&loaded.policy, &snapshot.sessions);
            let mut plan = engine.evaluate_with(
                &loaded.policy,
                &snapshot.sessions,
                snapshot.now,
                horizon,
                &overrides,
            );
            // Gateway sessions are the gateway's to end for the rules it enforces, until the
            // grace after their deadline runs out.
            let left = crate::gateway_grace::leave_to_gateway(
                &loaded.policy,
                &snapshot.gateway,
                loaded.policy.agent.gateway_grace.get(),
                snapshot.now,
                &mut plan,
            );
            tracing::debug!(target: "curfew::agent",
                "target \"{}\": snapshot of {} sessions in {:.1} ms, evaluated in {:.2} ms",
                self.target, snapshot.sessions.len(), snapshot_time.as_secs_f64() * 1e3,
                anchor.elapsed().as_secs_f64() * 1e3);
            if self.shared.observed() {
                self.shared.emit(AgentEvent::Evaluated {
                    target: self.target.clone(),
                    at: snapshot.now,
                    sessions: snapshot.sessions.as_slice().into(),
                    gateway: Arc::new(snapshot.gateway.clone()),
                    snapshot_time,
                    evaluation_time: anchor.elapsed(),
                });
            }
            if let Err(e) = actor.act(backend, &loaded, &snapshot, &plan, &left).await {
                return Ended::Lost(e);
            }
            // Login locks: kept here on a primary; a standby takes its primary's.
            let standby_of = standby_of(&loaded, &self.target);
            let (locked, lock_change) = match standby_of {
                Some(primary) => (self.shared.locked_of(&primary), None),
                None => match keeper.keep(backend, &loaded, snapshot.now).await {
                    Ok(kept) => {
                        let locked = Arc::new(kept.locked);
                        self.shared.publish_locked(&self.target, locked.clone());
                        (locked, kept.next_change)
                    }
                    Err(e) => return Ended::Lost(e),
                },
            };
            if let Err(e) = actor
                .end_locked(backend, &loaded, &snapshot, &plan, &left, &locked)
                .await
            {
                return Ended::Lost(e);
            }
            // After the round's actions, so that it never delays them.
            let state = if lock.is_some() {
                State::Enforcing
            } else {
                State::DryRun
            };
            self.beat
                .beat(state, loaded.policy.agent.heartbeat.to_std())
                .await;
            // What this tick recorded is durable: anchor it outside the log (bounded, never fatal).
            self.anchor_head(backend).await;

            // The next snapshot: after the interval, or sooner for anything the schedule below
            // does not cover (a warning, a report, a window or lock change, a retry).
            let mut next_snapshot = anchor + interval;
            let covered = plan.next_wake.is_some_and(|w| {
                plan.upcoming.first().is_some_and(|d| d.deadline == w)
                    || left.deferred.iter().any(|d| d.decision.deadline == w)
            });
            for change in [plan.next_wake.filter(|_| !covered), lock_change]
                .into_iter()
                .flatten()
            {
                next_snapshot = next_snapshot.min(local(change));
            }
            if let Some(retry) = actor.next_retry() {
                next_snapshot = next_snapshot.min(retry.max(anchor));
            }
            // A session left to the gateway is looked at again when its grace runs out: by a
            // snapshot, not a scheduled end, since the gateway most likely ended it meanwhile
            // (a blind end request would write an intent for a session long gone).
            if let Some(first) = left.deferred.first() {
                let margin = Duration::from_millis(1);
                next_snapshot = next_snapshot.min(local(first.at).max(anchor) + margin);
            }
            let by_key: std::collections::HashMap<_, _> =
                snapshot.sessions.iter().map(|s| (s.key(), s)).collect();
            let mut schedule: std::collections::VecDeque<_> = plan
                .upcoming
                .iter()
                .filter_map(|d| by_key.get(&d.session).map(|s| (d.clone(), (*s).clone())))
                .collect();
            // A millisecond past each deadline, so the server's clock has reached it too.
            let margin = Duration::from_millis(1);
            loop {
                let next_due = schedule.front().map(|(d, _)| local(d.deadline) + margin);
                let wake = [next_due, actor.next_confirmation()]
                    .into_iter()
                    .flatten()
                    .fold(next_snapshot, Instant::min);
                match self.pause(wake).await {
                    Pause::Stop => return Ended::Shutdown,
                    Pause::PolicyChanged => break,
                    Pause::Elapsed => {}
                }
                let now = Instant::now();
                if now >= next_snapshot {
                    // A snapshot holds the connection about as long as the last one took: what
                    // falls due within that time is ended first, then the snapshot is taken.
                    let hold = next_snapshot + snapshot_time + margin;
                    match schedule.front().map(|(d, _)| local(d.deadline) + margin) {
                        Some(due) if due <= hold && due > now => match self.pause(due).await {
                            Pause::Stop => return Ended::Shutdown,
                            Pause::PolicyChanged => break,
                            Pause::Elapsed => {}
                        },
                        Some(due) if due <= now => {}
                        _ => break,
                    }
                }
                let now = Instant::now();
                let mut due = Vec::new();
                while schedule
                    .front()
                    .is_some_and(|(d, _)| local(d.deadline) + margin <= now)
                {
                    due.extend(schedule.pop_front());
                }
                if due.is_empty() {
                    // Woken to confirm exits.
                    if let Err(e) = actor.confirm(backend).await {
                        return Ended::Lost(e);
                    }
                    continue;
                }
                match actor.end_scheduled(backend, &loaded, due).await {
                    Ok(early) if early.is_empty() => {}
                    Ok(early) => {
                        // The server's clock is behind the local estimate: try again shortly.
                        for item in early.into_iter().rev() {
                            schedule.push_front(item);
                        }
                        if self.pause(Instant::now() + Duration::from_millis(2)).await
                            == Pause::Stop
                        {
                            return Ended::Shutdown;
                        }
                    }
                    Err(e) => return Ended::Lost(e),
                }
            }
        }
    }

    /// The heartbeat interval of the policy in force.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        self.policy.borrow().policy.agent.heartbeat.to_std()
    }

    /// Sleep until `until`, a policy change, or shutdown.
    pub(crate) async fn pause(&mut self, until: Instant) -> Pause {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => Pause::Elapsed,
            // A dropped sender means the supervisor is gone: stop.
            changed = self.policy.changed() => if changed.is_err() { Pause::Stop } else { Pause::PolicyChanged },
            _ = self.stop.changed() => Pause::Stop,
        }
    }
}

/// Why a connected session of the loop ended with an error: its text, and the state it leaves
/// the target in until the next attempt.
pub(crate) struct Lost {
    error: String,
    state: State,
}

impl Lost {
    /// The server could not be reached (or stopped answering).
    fn unreachable(e: &impl std::fmt::Display) -> Lost {
        let error = e.to_string();
        Lost {
            state: State::Unreachable(error.clone()),
            error,
        }
    }

    /// As [`Lost::unreachable`], unless the server answers but this agent lost the leadership.
    fn of(e: &BackendError) -> Lost {
        if e.is_not_leading() {
            let error = e.to_string();
            Lost {
                state: State::NotEnforced(format!("this agent stopped leading: {error}")),
                error,
            }
        } else {
            Lost::unreachable(e)
        }
    }
}

/// Why a pause ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    Elapsed,
    PolicyChanged,
    Stop,
}

/// The primary a standby target follows, if this target is a standby.
pub(crate) fn standby_of(loaded: &LoadedPolicy, target: &str) -> Option<String> {
    loaded
        .policy
        .targets
        .iter()
        .find(|t| t.name == target && t.standby)
        .and_then(|t| t.primary.clone())
}

/// This agent leads a target while the flag is up; lowered when dropped, even when the worker
/// is aborted, so a standby never acts on a primary this agent no longer leads.
struct LeadingFlag {
    shared: Arc<Shared>,
    target: String,
}

impl LeadingFlag {
    fn raise(shared: Arc<Shared>, target: &str) -> LeadingFlag {
        shared.set_leading(target, true);
        LeadingFlag {
            shared,
            target: target.to_owned(),
        }
    }
}

impl Drop for LeadingFlag {
    fn drop(&mut self) {
        self.shared.set_leading(&self.target, false);
    }
}
