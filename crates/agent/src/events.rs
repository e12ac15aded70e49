//! What the agent tells observers (the demo's live view today; metrics and the status page
//! later). Observers that fall behind miss events; enforcement never waits for them.

use curfew_policy::Session;
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
    /// A snapshot was taken and evaluated.
    Evaluated {
        /// Target name.
        target: String,
        /// Server clock of the snapshot.
        at: Timestamp,
        /// Client sessions seen.
        sessions: usize,
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
    /// A session entered the warning lead of the rule that will end it.
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
    },
    /// An audit record could not be written; the action it was for was not taken.
    AuditFailed {
        /// Why.
        error: String,
    },
}
