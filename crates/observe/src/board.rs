//! What the observer knows, built from the agent's events: each target's connection,
//! leadership and last snapshot, the recent terminations, and whether audit writes succeed.
//! Pure bookkeeping: the caller passes the instant each event was received.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use curfew_agent::{AgentEvent, LoginLock};
use curfew_policy::{Session, SessionKey};
use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// How many terminations the status page lists.
pub(crate) const RECENT: usize = 50;

/// One target as last heard of.
#[derive(Debug, Default, Clone)]
pub(crate) struct TargetBoard {
    /// What the server said it is, once connected.
    pub(crate) server: Option<String>,
    /// Whether the agent's connection is up.
    pub(crate) connected: bool,
    /// The last connection error, until the next connection.
    pub(crate) error: Option<String>,
    /// Whether this agent leads the target (None until it knows).
    pub(crate) leading: Option<bool>,
    /// The last time the agent showed the target was watched: a snapshot, or (standing by)
    /// a check of the leader lock.
    pub(crate) last_contact: Option<Instant>,
    /// The last snapshot, while this agent leads.
    pub(crate) snapshot: Option<Seen>,
    /// Sessions of that snapshot ended since it was taken (not shown as live any more).
    pub(crate) ended_since: HashSet<SessionKey>,
    /// What keeps the target from being enforced, as the agent last said.
    pub(crate) problem: Option<String>,
    /// The login locks in force, as this agent last read the ledger (a primary it leads).
    pub(crate) login_locks: Vec<LoginLock>,
    /// Live sessions whose warning was recorded, with the hooks it was queued for.
    pub(crate) warned: HashMap<SessionKey, Vec<&'static str>>,
}

/// A snapshot as the observer received it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The server's clock at the snapshot.
    pub(crate) at: Timestamp,
    /// When the observer received it (to estimate the server's clock later).
    pub(crate) received: Instant,
    /// The sessions.
    pub(crate) sessions: Arc<[Session]>,
    /// Those curfew gateway logged in, with the client behind each.
    pub(crate) gateway: Arc<BTreeMap<SessionKey, curfew_agent::GatewayClient>>,
    /// How long the snapshot query took.
    pub(crate) snapshot_time: Duration,
    /// How long evaluating it took.
    pub(crate) evaluation_time: Duration,
}

impl Seen {
    /// The server's clock now, estimated from the snapshot's.
    pub(crate) fn server_now(&self, now: Instant) -> Timestamp {
        let elapsed = SignedDuration::try_from(now.saturating_duration_since(self.received))
            .unwrap_or_default();
        self.at.checked_add(elapsed).unwrap_or(self.at)
    }
}

/// A session the agent ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ended {
    /// When its exit was confirmed (server clock).
    pub at: Timestamp,
    /// Target name.
    pub target: String,
    /// Server process id.
    pub pid: i64,
    /// Its role.
    pub role: String,
    /// Its database.
    pub database: String,
    /// Its `application_name`.
    pub application: String,
    /// The rule that ended it.
    pub rule: String,
    /// Why, in words.
    pub reason: String,
    /// How long after its deadline it ended, in milliseconds.
    pub lateness_ms: f64,
    /// For a session that came through curfew gateway: `via gateway from ADDR:PORT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_gateway: Option<String>,
}

/// Everything the observer knows.
#[derive(Debug, Default, Clone)]
pub(crate) struct Board {
    pub(crate) targets: BTreeMap<String, TargetBoard>,
    /// Newest first.
    pub(crate) recent: VecDeque<Ended>,
    /// The last audit write failure, until a later write succeeds.
    pub(crate) audit_failure: Option<(Timestamp, String)>,
}

impl Board {
    /// Take in one event, received at `now`.
    pub(crate) fn apply(&mut self, event: &AgentEvent, now: Instant) {
        match event {
            AgentEvent::Connected { target, server } => {
                let t = self.target(target);
                t.connected = true;
                t.server = Some(server.clone());
                t.error = None;
                // Said again by the worker if it still stands (it says it at once).
                t.problem = None;
            }
            AgentEvent::Enforcement { target, problem } => {
                self.target(target).problem.clone_from(problem);
            }
            AgentEvent::Disconnected { target, error, .. } => {
                let t = self.target(target);
                t.connected = false;
                t.error = Some(error.clone());
                t.leading = None;
                t.snapshot = None;
                t.login_locks.clear();
            }
            AgentEvent::Leading { target, leading } => {
                let t = self.target(target);
                t.leading = Some(*leading);
                if !leading {
                    // What it saw as leader is no longer being acted on, nor read.
                    t.snapshot = None;
                    t.login_locks.clear();
                }
            }
            AgentEvent::StandingBy { target } => {
                let t = self.target(target);
                t.leading = Some(false);
                t.last_contact = Some(now);
            }
            AgentEvent::Evaluated {
                target,
                at,
                sessions,
                gateway,
                snapshot_time,
                evaluation_time,
            } => {
                let t = self.target(target);
                t.connected = true;
                t.leading = Some(true);
                t.last_contact = Some(now);
                t.ended_since.clear();
                if !t.warned.is_empty() {
                    let live: HashSet<SessionKey> = sessions.iter().map(Session::key).collect();
                    t.warned.retain(|k, _| live.contains(k));
                }
                t.snapshot = Some(Seen {
                    at: *at,
                    received: now,
                    sessions: sessions.clone(),
                    gateway: gateway.clone(),
                    snapshot_time: *snapshot_time,
                    evaluation_time: *evaluation_time,
                });
            }
            AgentEvent::Terminated {
                target,
                session,
                via_gateway,
                rule,
                reason,
                at,
                lateness,
                ..
            } => {
                self.target(target).ended_since.insert(session.key());
                self.recent.push_front(Ended {
                    at: *at,
                    target: target.clone(),
                    pid: session.pid,
                    role: session.role.to_string(),
                    database: session.database.to_string(),
                    application: session.application.to_string(),
                    rule: rule.clone(),
                    reason: reason.clone(),
                    lateness_ms: lateness.as_secs_f64() * 1e3,
                    via_gateway: via_gateway.as_ref().map(ToString::to_string),
                });
                self.recent.truncate(RECENT);
            }
            AgentEvent::Recorded { .. } => self.audit_failure = None,
            AgentEvent::AuditFailed { error } => {
                self.audit_failure = Some((Timestamp::now(), error.clone()));
            }
            AgentEvent::LoginLocks { target, locks } => {
                self.target(target).login_locks.clone_from(locks);
            }
            AgentEvent::Warned {
                target,
                session,
                hooks,
                ..
            } => {
                self.target(target)
                    .warned
                    .insert(session.key(), hooks.clone());
            }
            AgentEvent::NoLongerMatched { .. }
            | AgentEvent::TerminationFailed { .. }
            | AgentEvent::Reported { .. }
            | AgentEvent::PolicyApplied { .. }
            | AgentEvent::PolicyRejected { .. }
            | AgentEvent::NotifyFailed { .. }
            | AgentEvent::NotifyDropped
            | AgentEvent::AnchorFailed { .. }
            | AgentEvent::GatewayMissed { .. } => {}
        }
    }

    fn target(&mut self, name: &str) -> &mut TargetBoard {
        self.targets.entry(name.to_owned()).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_the_connection_forgets_the_snapshot_but_not_the_last_contact() {
        let mut board = Board::default();
        let t0 = Instant::now();
        board.apply(
            &AgentEvent::Evaluated {
                target: "db".into(),
                at: Timestamp::UNIX_EPOCH,
                sessions: Arc::from(Vec::new()),
                gateway: Arc::default(),
                snapshot_time: Duration::from_millis(2),
                evaluation_time: Duration::from_micros(20),
            },
            t0,
        );
        assert!(board.targets["db"].snapshot.is_some());
        board.apply(
            &AgentEvent::Disconnected {
                target: "db".into(),
                error: "connection refused".into(),
                retry_in: Duration::from_secs(1),
            },
            t0,
        );
        let t = &board.targets["db"];
        assert!(!t.connected && t.snapshot.is_none() && t.leading.is_none());
        assert_eq!(t.last_contact, Some(t0));
        assert_eq!(t.error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn the_server_clock_is_estimated_from_the_snapshot() {
        let received = Instant::now();
        let seen = Seen {
            at: Timestamp::UNIX_EPOCH,
            received,
            sessions: Arc::from(Vec::new()),
            gateway: Arc::default(),
            snapshot_time: Duration::ZERO,
            evaluation_time: Duration::ZERO,
        };
        let later = seen.server_now(received + Duration::from_millis(1500));
        assert_eq!(
            later.duration_since(Timestamp::UNIX_EPOCH).as_millis(),
            1500
        );
    }
}
