//! What the agent tells observers (the demo's live view, metrics and the status page).
//! Observers that fall behind miss events; enforcement never waits for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use curfew_audit::Event;
use curfew_policy::{Session, SessionKey};
use jiff::{SignedDuration, Timestamp};

/// Something that happened in the agent.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A target was connected.
    Connected {
        /// Target name.
        target: String,
        /// What the server is.
        server: String,
    },
    /// Connecting failed or the connection was lost; the agent retries.
    Disconnected {
        /// Target name.
        target: String,
        /// Why.
        error: String,
        /// When it tries again.
        retry_in: std::time::Duration,
    },
    /// This agent became the target's leader (`true`), or another replica leads or the
    /// leadership was lost (`false`).
    Leading {
        /// Target name.
        target: String,
        /// Whether this agent leads now.
        leading: bool,
    },
    /// Another replica leads the target (or, for a standby, this agent does not lead its
    /// primary): this agent checked and stands by. Said once per interval while it lasts, so
    /// an observer knows the target is being watched.
    StandingBy {
        /// Target name.
        target: String,
    },
    /// A snapshot was taken and evaluated.
    Evaluated {
        /// Target name.
        target: String,
        /// Server clock of the snapshot.
        at: Timestamp,
        /// The sessions seen (client backends, except curfew's own), shared with every
        /// observer.
        sessions: Arc<[Session]>,
        /// Those among them curfew gateway logged in, with the client behind each.
        gateway: Arc<BTreeMap<SessionKey, curfew_backend::GatewayClient>>,
        /// How long the snapshot query took.
        snapshot_time: std::time::Duration,
        /// How long evaluating took.
        evaluation_time: std::time::Duration,
    },
    /// A session was ended.
    Terminated {
        /// Target name.
        target: String,
        /// The session as last seen.
        session: Session,
        /// The client behind it when it came through curfew gateway (as the gateway
        /// registered it).
        via_gateway: Option<curfew_backend::GatewayClient>,
        /// The rule that ended it.
        rule: String,
        /// Why, in words.
        reason: String,
        /// When the condition was met (server clock).
        deadline: Timestamp,
        /// When the session's exit was confirmed (server clock).
        at: Timestamp,
        /// `at - deadline`.
        lateness: SignedDuration,
    },
    /// A session curfew gateway logged in was still there `[agent] gateway_grace` after a
    /// deadline the gateway enforces itself: the agent ends it (a `Terminated` follows).
    GatewayMissed {
        /// Target name.
        target: String,
        /// The session.
        session: Session,
        /// The gateway that registered it, and the client behind it.
        gateway: curfew_backend::GatewayClient,
        /// The rule.
        rule: String,
        /// The deadline the gateway missed (server clock).
        deadline: Timestamp,
    },
    /// The session changed before it could be ended; nothing was done.
    NoLongerMatched {
        /// Target name.
        target: String,
        /// The session as last seen.
        session: Session,
        /// The rule.
        rule: String,
    },
    /// Ending a session failed.
    TerminationFailed {
        /// Target name.
        target: String,
        /// The session.
        session: Session,
        /// The rule.
        rule: String,
        /// Why.
        error: String,
    },
    /// A `report` rule (or a dry run) would have ended a session.
    Reported {
        /// Target name.
        target: String,
        /// The session.
        session: Session,
        /// The rule.
        rule: String,
        /// Why, in words.
        reason: String,
    },
    /// A session entered the warning lead of the rule that will end it: a `session_warned`
    /// record was written and the notify hooks (if any) were asked. The user is not told by
    /// the agent (it has no way to reach a session's user).
    Warned {
        /// Target name.
        target: String,
        /// The session.
        session: Session,
        /// The rule.
        rule: String,
        /// When it will be ended (server clock).
        deadline: Timestamp,
        /// The server clock when the warning fell due.
        at: Timestamp,
        /// The record's reason, in words.
        reason: String,
        /// The hooks the event was queued for (`command`, `webhook`; none in a dry run).
        hooks: Vec<&'static str>,
    },
    /// A policy came into force: at start (`reload: false`) or by a reload.
    PolicyApplied {
        /// Its file.
        source: String,
        /// SHA-256 of the file.
        sha256: String,
        /// Whether it replaced a running policy.
        reload: bool,
    },
    /// A reloaded policy file was rejected; the running policy stays in force.
    PolicyRejected {
        /// The file.
        source: String,
        /// How many problems were found.
        problems: usize,
    },
    /// The login locks in force on a primary target, as its ledger was last read (said after
    /// every round of lock keeping).
    LoginLocks {
        /// Target name.
        target: String,
        /// Every lock in force, by role.
        locks: Vec<LoginLock>,
    },
    /// A notify hook failed to take an event after every attempt.
    NotifyFailed {
        /// `command` or `webhook`.
        hook: &'static str,
        /// The last attempt's error (a webhook's URL shown without its path).
        error: String,
    },
    /// An event was dropped before reaching the notify hooks: their queue was full.
    NotifyDropped,
    /// Audit records were appended (and are durable).
    Recorded {
        /// What each record says, in order.
        records: Vec<RecordedEvent>,
    },
    /// Whether the target is enforced as far as this agent can tell: `Some` names what stops it
    /// (a squatter on the leader lock, a leader in dry run or on another policy, a worker that
    /// failed); `None` when that has cleared. Health fails while a problem stands.
    Enforcement {
        /// Target name.
        target: String,
        /// What stops enforcement, in words.
        problem: Option<String>,
    },
    /// An audit record could not be written (a failed write, or the log moved away, deleted
    /// or truncated), or recovering the log failed: the action it was for was not taken, and
    /// none is until records can be written again, which a `Recorded` event then shows
    /// (outcomes of actions under way are kept in memory meanwhile).
    AuditFailed {
        /// Why.
        error: String,
    },
    /// The audit chain's head could not be anchored on a target (enforcement goes on; the
    /// log is then checked against older anchors only). Retried after a while.
    AnchorFailed {
        /// Target name.
        target: String,
        /// Why.
        error: String,
    },
}

/// A login lock in force on a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLock {
    /// The locked role.
    pub role: String,
    /// `window` (a `lock_logins` rule) or `incident` (`curfew lock`).
    pub kind: String,
    /// For a window lock, its rule.
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Who made it (for a window lock, curfew).
    pub created_by: String,
    /// Since when (server clock).
    pub since: Timestamp,
    /// Until when, if known: an incident lock's expiry, or when a window lock's rule next
    /// opens its window (server clock).
    pub until: Option<Timestamp>,
}

/// The gist of one audit record that was written, for observers that count them.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Its sequence number in the log.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// The target, if the record is about one.
    pub target: Option<String>,
    /// The rule, if any.
    pub rule: Option<String>,
    /// The result word (`ended`, `failed`, ...), if any.
    pub result: Option<String>,
}
