//! curfew's window for operators: what the agent is doing, over HTTP.
//!
//! - `/metrics`: Prometheus text (sessions per state, terminations by rule and result, snapshot,
//!   evaluation and lateness histograms, leadership, snapshot age, audit write failures, the
//!   policy's hash and reloads, login locks in force, warnings recorded, notify hook failures);
//! - `/healthz`: 200 only when every target was watched recently and the audit log is writable;
//! - `/status`: the state as JSON; `/`: the same as a page that refreshes itself.
//!
//! [`serve_scrape`] serves `/metrics` and `/healthz` of another curfew process (the gateway)
//! through the same server, given as a [`Scrape`].
//!
//! An [`Observer`] is fed the agent's events (it never slows the agent: a lagging observer misses
//! events and counts them) and answers from what it has seen; the verdicts on live sessions are
//! computed when asked, from the last snapshot and the policy in force.

mod board;
mod health;
mod http;
mod metrics;
mod page;
mod status;

use std::sync::{Arc, Mutex, PoisonError};

use curfew_agent::{AgentEvent, AuditTally};
use curfew_audit::AuditLog;
use curfew_policy::LoadedPolicy;
use jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

pub use board::Ended;
pub use health::{Check, Health, stale_after};
pub use http::{Scrape, serve, serve_scrape};
pub use status::{
    Fate, LockStatus, PolicyInfo, Role, SessionStatus, SnapshotInfo, Status, TargetStatus,
};

/// Watches the agent through its events and answers the HTTP endpoints. Cheap to clone.
#[derive(Clone)]
pub struct Observer {
    inner: Arc<Inner>,
}

struct Inner {
    board: Mutex<board::Board>,
    metrics: metrics::Metrics,
    policy: watch::Receiver<Arc<LoadedPolicy>>,
    audit: AuditLog,
    tally: Arc<AuditTally>,
    about: status::About,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("audit", &self.inner.audit.path())
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// An observer of an agent running `policy` (the same channel the agent follows, so
    /// reloads show), writing `audit` and counting what it writes in `tally` (the same one
    /// given to the agent in its options).
    pub fn new(
        policy: watch::Receiver<Arc<LoadedPolicy>>,
        audit: AuditLog,
        tally: Arc<AuditTally>,
        dry_run: bool,
    ) -> Observer {
        Observer {
            inner: Arc::new(Inner {
                board: Mutex::new(board::Board::default()),
                metrics: metrics::Metrics::new(dry_run),
                policy,
                audit,
                tally,
                about: status::About {
                    started_at: Timestamp::now(),
                    dry_run,
                },
            }),
        }
    }

    /// Follow the agent's events until the channel closes. Subscribe before the agent starts,
    /// so that nothing it does goes unseen.
    pub async fn follow(self, mut events: broadcast::Receiver<AgentEvent>) {
        loop {
            match events.recv().await {
                Ok(event) => self.apply(&event, Instant::now()),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(target: "curfew::observe", "the metrics endpoint fell behind and missed {missed} agent events; counters are low by as many");
                    self.inner.metrics.missed(missed);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Take in one event, received at `now`.
    pub fn apply(&self, event: &AgentEvent, now: Instant) {
        self.inner.metrics.apply(event);
        self.board().apply(event, now);
    }

    /// The health check at `now`.
    pub fn health(&self, now: Instant) -> Health {
        let audit = self.inner.audit.check_writable();
        let loaded = self.inner.policy.borrow().clone();
        health::check(&self.board(), &loaded, audit, now)
    }

    /// The whole status at `now` (agent clock `wall`).
    pub fn status(&self, now: Instant, wall: Timestamp) -> Status {
        let health = self.health(now);
        let loaded = self.inner.policy.borrow().clone();
        // A copy (the sessions are shared, not copied): evaluating them must not hold up the
        // events that update the board.
        let board = self.board().clone();
        status::status(&board, &loaded, health, &self.inner.about, now, wall)
    }

    /// The status page at `now`, reloading itself every `refresh` seconds (0: never).
    pub fn page(&self, now: Instant, wall: Timestamp, refresh: u32) -> Result<String, String> {
        page::render(&self.status(now, wall), refresh).map_err(|e| e.to_string())
    }

    /// The Prometheus text exposition at `now`.
    pub fn metrics(&self, now: Instant) -> String {
        let health = self.health(now);
        let loaded = self.inner.policy.borrow().clone();
        let ages: Vec<(String, Option<f64>)> = {
            let board = self.board();
            loaded
                .policy
                .targets
                .iter()
                .map(|t| {
                    let age = board
                        .targets
                        .get(&t.name)
                        .and_then(|b| b.snapshot.as_ref())
                        .map(|s| now.saturating_duration_since(s.received).as_secs_f64());
                    (t.name.clone(), age)
                })
                .collect()
        };
        self.inner.metrics.encode(
            &ages,
            health.healthy,
            &self.inner.tally.snapshot(),
            &loaded.sha256,
        )
    }

    fn board(&self) -> std::sync::MutexGuard<'_, board::Board> {
        // Bookkeeping only: a panic elsewhere leaves nothing half-changed that matters.
        self.inner
            .board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
