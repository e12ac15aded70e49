//! What every worker shares: the audit log, the options, the observers.

use std::time::Duration;

use curfew_audit::AuditLog;
use tokio::sync::broadcast;

use crate::events::AgentEvent;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Record what would be done; end nothing.
    pub dry_run: bool,
    /// How long a termination waits for the session's process to exit.
    pub terminate_wait: Duration,
    /// First delay before reconnecting to a target; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest delay between reconnection attempts.
    pub retry_max: Duration,
    /// Where events go, if anyone listens.
    pub events: Option<broadcast::Sender<AgentEvent>>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            terminate_wait: Duration::from_secs(5),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            events: None,
        }
    }
}

/// State shared by the supervisor and its workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) audit: AuditLog,
    pub(crate) options: AgentOptions,
}

impl Shared {
    /// Tell observers, if any (never blocks; a lagging observer misses events).
    pub(crate) fn emit(&self, event: AgentEvent) {
        if let Some(events) = &self.options.events {
            let _ = events.send(event);
        }
    }
}
