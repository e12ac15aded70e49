//! One target's loop: connect (and reconnect, with capped backoff), then snapshot, evaluate,
//! act, and sleep until the next deadline or the discovery interval, whichever comes first.

use std::sync::Arc;
use std::time::Duration;

use curfew_policy::Engine;
use curfew_postgres::PgError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::act::Actor;
use crate::backend::{Backend, Connector};
use crate::events::AgentEvent;
use crate::loaded::LoadedPolicy;
use crate::locks::Keeper;
use crate::shared::Shared;

/// How a connected session of the loop ended.
enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The connection is gone; reconnect.
    Lost(PgError),
}

/// The loop for one target.
pub(crate) struct Worker<C: Connector> {
    pub(crate) target: String,
    pub(crate) connector: C,
    pub(crate) shared: Arc<Shared>,
    pub(crate) policy: watch::Receiver<Arc<LoadedPolicy>>,
    pub(crate) stop: watch::Receiver<bool>,
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
            let error = match connected {
                Ok((backend, warnings)) => {
                    delay = self.shared.options.retry_min;
                    tracing::info!(target: "curfew::agent", "target \"{}\": connected ({})", self.target, backend.describe());
                    for warning in warnings {
                        tracing::warn!(target: "curfew::agent", "{warning}");
                    }
                    self.shared.emit(AgentEvent::Connected {
                        target: self.target.clone(),
                        server: backend.describe(),
                    });
                    match self.enforce(backend, &mut actor, &mut keeper).await {
                        Ended::Shutdown => return,
                        Ended::Lost(e) => e.to_string(),
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(target: "curfew::agent", "{error}; retrying in {}", curfew_policy::format_age(delay.try_into().unwrap_or_default()));
            self.shared.emit(AgentEvent::Disconnected {
                target: self.target.clone(),
                error,
                retry_in: delay,
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.changed() => return,
            }
            delay = (delay * 2).min(self.shared.options.retry_max);
        }
    }

    /// The loop on one connection.
    async fn enforce(
        &mut self,
        mut backend: C::Backend,
        actor: &mut Actor,
        keeper: &mut Keeper,
    ) -> Ended {
        let mut engine = Engine::new();
        loop {
            let loaded = self.policy.borrow_and_update().clone();
            let started = Instant::now();
            let snapshot = match backend.snapshot(loaded.needs_memberships()).await {
                Ok(snapshot) => snapshot,
                Err(e) if e.is_connection_lost() => return Ended::Lost(e),
                Err(e) => {
                    // A query error on a live connection: report, wait an interval, try again.
                    tracing::error!(target: "curfew::agent", "{e}");
                    if self
                        .pause(Instant::now() + loaded.policy.agent.interval.to_std())
                        .await
                    {
                        return Ended::Shutdown;
                    }
                    continue;
                }
            };
            // The server clock's `now` maps to this local instant (the reply just arrived).
            let anchor = Instant::now();
            let snapshot_time = anchor - started;
            let plan = engine.evaluate(&loaded.policy, &snapshot.sessions, snapshot.now);
            self.shared.emit(AgentEvent::Evaluated {
                target: self.target.clone(),
                at: snapshot.now,
                sessions: snapshot.sessions.len(),
                snapshot_time,
                evaluation_time: anchor.elapsed(),
            });
            if let Err(e) = actor.act(&mut backend, &loaded, &snapshot, &plan).await {
                return Ended::Lost(e);
            }
            // Login locks: kept here on a primary; a standby takes its primary's.
            let standby_of = loaded
                .policy
                .targets
                .iter()
                .find(|t| t.name == self.target && t.standby)
                .and_then(|t| t.primary.clone());
            let (locked, lock_change) = match standby_of {
                Some(primary) => (self.shared.locked_of(&primary), None),
                None => match keeper.keep(&mut backend, &loaded, snapshot.now).await {
                    Ok(kept) => {
                        let locked = std::sync::Arc::new(kept.locked);
                        self.shared.publish_locked(&self.target, locked.clone());
                        (locked, kept.next_change)
                    }
                    Err(e) => return Ended::Lost(e),
                },
            };
            if let Err(e) = actor
                .end_locked(&mut backend, &loaded, &snapshot, &plan, &locked)
                .await
            {
                return Ended::Lost(e);
            }
            let mut wake = anchor + loaded.policy.agent.interval.to_std();
            for next in [plan.next_wake, lock_change].into_iter().flatten() {
                let ahead = next.duration_since(snapshot.now);
                let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
                wake = wake.min(anchor + ahead);
            }
            if let Some(retry) = actor.next_retry() {
                wake = wake.min(retry.max(anchor));
            }
            if self.pause(wake).await {
                return Ended::Shutdown;
            }
        }
    }

    /// Sleep until `until`, a policy change, or shutdown. True when shutting down.
    async fn pause(&mut self, until: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => false,
            // A dropped sender means the supervisor is gone: stop.
            changed = self.policy.changed() => changed.is_err(),
            _ = self.stop.changed() => true,
        }
    }
}
