//! The agent's state as one document (`/status`, and the page built from it): each target,
//! its live sessions with the rule that will end each and when, and the recent terminations.
//! The verdicts are computed when asked, from the last snapshot and the policy in force, on
//! the server's clock as estimated from that snapshot.

use std::time::Duration;

use curfew_policy::{Action, Decision, Engine, LoadedPolicy, Session, Verdict};
use jiff::Timestamp;
use tokio::time::Instant;

use crate::board::{Board, Ended, TargetBoard};
use crate::health::Health;

/// The agent's state, as `/status` returns it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// curfew's version.
    pub version: &'static str,
    /// When this document was made (agent host clock).
    pub generated_at: Timestamp,
    /// When the agent started.
    pub started_at: Timestamp,
    /// Whether the agent only records what it would do.
    pub dry_run: bool,
    /// The policy in force.
    pub policy: PolicyInfo,
    /// The health check's verdict and findings.
    pub health: Health,
    /// Every target of the policy.
    pub targets: Vec<TargetStatus>,
    /// The latest sessions ended, newest first.
    pub recent_terminations: Vec<Ended>,
}

/// Which policy is in force.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyInfo {
    /// Its file.
    pub source: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// How many rules it has.
    pub rules: usize,
}

/// What this agent is doing about a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Not connected yet.
    Starting,
    /// Connected, leader lock not (yet) held.
    Connecting,
    /// This agent leads: it reads the sessions and ends them.
    Leading,
    /// Another replica leads (or, for a standby, this agent does not lead its primary).
    StandingBy,
    /// The connection is lost; the agent retries.
    Disconnected,
}

impl Role {
    /// As shown on the page.
    pub fn label(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Connecting => "connecting",
            Role::Leading => "leading",
            Role::StandingBy => "standing by",
            Role::Disconnected => "disconnected",
        }
    }
}

/// One target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetStatus {
    /// Its name in the policy.
    pub name: String,
    /// What this agent is doing about it.
    pub role: Role,
    /// The server, once connected ("PostgreSQL 17.2 ...").
    pub server: Option<String>,
    /// The last connection error, while disconnected.
    pub error: Option<String>,
    /// The last snapshot, while this agent leads.
    pub snapshot: Option<SnapshotInfo>,
    /// The sessions of the last snapshot: those that will be ended first, soonest first.
    pub sessions: Vec<SessionStatus>,
    /// The login locks in force, as this agent last read the target's ledger (only while it
    /// leads a primary target; a standby follows its primary's).
    pub login_locks: Vec<LockStatus>,
}

/// A login lock in force: the role cannot log in, and its sessions are ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockStatus {
    /// The locked role.
    pub role: String,
    /// `window` (a `lock_logins` rule) or `incident` (`curfew lock`).
    pub kind: String,
    /// For a window lock, its rule.
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// Since when (server clock).
    pub since: Timestamp,
    /// Until when, if known: an incident lock's expiry, or when the rule's window next
    /// changes (server clock).
    pub until: Option<Timestamp>,
}

/// A snapshot's vital signs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    /// The server's clock at the snapshot.
    pub at: Timestamp,
    /// Seconds since it was taken.
    pub age_seconds: f64,
    /// How long reading the sessions took, in milliseconds.
    pub snapshot_ms: f64,
    /// How long evaluating took, in milliseconds.
    pub evaluation_ms: f64,
    /// Client sessions seen.
    pub sessions: usize,
    /// Of those, sessions a rule will end.
    pub to_end: usize,
    /// Of those, exempt sessions.
    pub exempt: usize,
}

/// What happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Its deadline has passed: it is being ended.
    EndsNow,
    /// A rule will end it at its deadline if nothing changes.
    Scheduled,
    /// A `report` rule (or the dry run) records it; nothing is done.
    Reported,
    /// No rule applies, or none will fire.
    Untouched,
    /// Exempt from every rule.
    Exempt,
}

/// One live session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionStatus {
    /// Server process id.
    pub pid: i64,
    /// Role.
    pub role: String,
    /// Database.
    pub database: String,
    /// `application_name`.
    pub application: String,
    /// Client address, or `local` for a Unix socket; for a session curfew gateway logged in,
    /// the gateway's address then `(via gateway from ADDR:PORT)`, the client behind it.
    pub client: String,
    /// `pg_stat_activity.state`.
    pub state: &'static str,
    /// Seconds in that state.
    pub state_seconds: Option<f64>,
    /// What happens to it.
    pub fate: Fate,
    /// The rule that ends (or reports) it, or the `[exempt]` key that exempts it.
    pub rule: Option<String>,
    /// When the rule fires (server clock).
    pub deadline: Option<Timestamp>,
    /// Seconds until then (0 once due).
    pub ends_in_seconds: Option<f64>,
    /// Why, in words, as of the deadline.
    pub reason: Option<String>,
    /// Once the session is inside its rule's warning lead: what was done about it. The agent
    /// cannot reach the session's user; it records the warning and queues it for the notify
    /// hooks, and says so here.
    pub warning: Option<String>,
}

/// What the status needs to know about the agent itself.
pub(crate) struct About {
    pub(crate) started_at: Timestamp,
    pub(crate) dry_run: bool,
}

/// Build the status at `now` (agent clock `wall`).
pub(crate) fn status(
    board: &Board,
    loaded: &LoadedPolicy,
    health: Health,
    about: &About,
    now: Instant,
    wall: Timestamp,
) -> Status {
    let mut engine = Engine::new();
    let targets = loaded
        .policy
        .targets
        .iter()
        .map(|t| {
            let known = board.targets.get(&t.name).cloned().unwrap_or_default();
            target_status(&t.name, &known, loaded, &mut engine, about.dry_run, now)
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        generated_at: wall,
        started_at: about.started_at,
        dry_run: about.dry_run,
        policy: PolicyInfo {
            source: loaded.source.clone(),
            sha256: loaded.sha256.clone(),
            rules: loaded.policy.rules.len(),
        },
        health,
        targets,
        recent_terminations: board.recent.iter().cloned().collect(),
    }
}

fn target_status(
    name: &str,
    known: &TargetBoard,
    loaded: &LoadedPolicy,
    engine: &mut Engine,
    dry_run: bool,
    now: Instant,
) -> TargetStatus {
    let role = match (known.connected, known.leading) {
        (true, Some(true)) => Role::Leading,
        (true, Some(false)) => Role::StandingBy,
        (true, None) => Role::Connecting,
        (false, _) if known.error.is_some() => Role::Disconnected,
        (false, _) => Role::Starting,
    };
    let mut sessions = Vec::new();
    let snapshot = known.snapshot.as_ref().map(|seen| {
        let server_now = seen.server_now(now);
        // The same overrides the agent's engine takes (verify's canary edges).
        let overrides = curfew_policy::Overrides::canary_edges(&loaded.policy, &seen.sessions);
        let verdicts = engine.assess_with(&loaded.policy, &seen.sessions, server_now, &overrides);
        for (s, verdict) in seen.sessions.iter().zip(verdicts) {
            if known.ended_since.contains(&s.key()) {
                continue;
            }
            let (fate, decision, exempt_by) = match verdict {
                Verdict::NotClient => continue,
                Verdict::Exempt { by } => (Fate::Exempt, None, Some(by)),
                Verdict::Ends(d) => (fate_of(loaded, &d, dry_run, Fate::EndsNow), Some(d), None),
                Verdict::Reported(d) => (Fate::Reported, Some(d), None),
                Verdict::Scheduled(d) => {
                    (fate_of(loaded, &d, dry_run, Fate::Scheduled), Some(d), None)
                }
                Verdict::Untouched => (Fate::Untouched, None, None),
            };
            let rule = decision
                .as_ref()
                .map(|d| loaded.policy.rules[d.rule].name.clone())
                .or_else(|| exempt_by.map(|by| by.to_string()));
            sessions.push(SessionStatus {
                pid: s.pid,
                role: s.role.to_string(),
                database: s.database.to_string(),
                application: s.application.to_string(),
                client: client_text(s, seen.gateway.get(&s.key())),
                state: s.state.as_pg(),
                state_seconds: s
                    .state_change
                    .map(|t| server_now.duration_since(t).as_secs_f64().max(0.0)),
                fate,
                rule,
                deadline: decision.as_ref().map(|d| d.deadline),
                ends_in_seconds: decision
                    .as_ref()
                    .map(|d| d.deadline.duration_since(server_now).as_secs_f64().max(0.0)),
                reason: decision
                    .as_ref()
                    .map(|d| d.reason(&loaded.policy, server_now.max(d.deadline))),
                warning: known.warned.get(&s.key()).map(|hooks| warning(hooks)),
            });
        }
        sessions.sort_by(|a, b| {
            let order = |s: &SessionStatus| match s.fate {
                Fate::EndsNow | Fate::Scheduled => 0,
                Fate::Reported => 1,
                Fate::Untouched => 2,
                Fate::Exempt => 3,
            };
            (order(a), a.deadline, a.pid).cmp(&(order(b), b.deadline, b.pid))
        });
        SnapshotInfo {
            at: seen.at,
            age_seconds: now.saturating_duration_since(seen.received).as_secs_f64(),
            snapshot_ms: millis(seen.snapshot_time),
            evaluation_ms: millis(seen.evaluation_time),
            sessions: sessions.len(),
            to_end: sessions
                .iter()
                .filter(|s| matches!(s.fate, Fate::EndsNow | Fate::Scheduled))
                .count(),
            exempt: sessions.iter().filter(|s| s.fate == Fate::Exempt).count(),
        }
    });
    TargetStatus {
        name: name.to_owned(),
        role,
        server: known.server.clone(),
        error: if known.connected {
            None
        } else {
            known.error.clone()
        },
        snapshot,
        sessions,
        login_locks: known
            .login_locks
            .iter()
            .map(|l| LockStatus {
                role: l.role.clone(),
                kind: l.kind.clone(),
                rule: l.rule.clone(),
                reason: l.reason.clone(),
                created_by: l.created_by.clone(),
                since: l.since,
                until: l.until,
            })
            .collect(),
    }
}

/// What was done about a warning, in words.
fn warning(hooks: &[&str]) -> String {
    match hooks {
        [] => {
            "warning recorded for operators in the audit log; no notify hook, so the user is not told"
                .to_owned()
        }
        hooks => format!(
            "warning recorded in the audit log and queued for the notify {}: {}",
            if hooks.len() == 1 { "hook" } else { "hooks" },
            hooks.join(", ")
        ),
    }
}

/// A terminating rule under a dry run only reports.
fn fate_of(loaded: &LoadedPolicy, d: &Decision, dry_run: bool, fate: Fate) -> Fate {
    if dry_run || loaded.policy.rules[d.rule].action == Action::Report {
        Fate::Reported
    } else {
        fate
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A session's client as the page shows it: its peer address (`local` for a Unix socket, the
/// server's host name marked unverified where it showed no address) and, for a gateway
/// session, the client behind the gateway.
fn client_text(s: &Session, via: Option<&curfew_agent::GatewayClient>) -> String {
    let peer = s.client_addr.to_string();
    match via {
        Some(client) => format!("{peer} ({client})"),
        None => peer,
    }
}
