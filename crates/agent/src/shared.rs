//! What every worker shares: the audit log, the options, the observers.

use std::time::Duration;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use curfew_audit::AuditLog;
use tokio::sync::broadcast;

use crate::events::AgentEvent;
use crate::locked::LockedSet;

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
    /// Where the records written are counted, if anyone reads the count.
    pub tally: Option<Arc<crate::tally::AuditTally>>,
    /// At start, record the intents a previous run of the agent on this log left without an
    /// outcome (`action_interrupted`). Only for the agent that owns the log: a command that runs
    /// the agent beside another one (`curfew lock`) must not close that agent's open intents.
    pub close_interrupted: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            terminate_wait: Duration::from_secs(5),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            events: None,
            tally: None,
            close_interrupted: true,
        }
    }
}

/// State shared by the supervisor and its workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) audit: AuditLog,
    pub(crate) options: AgentOptions,
    /// Each primary target's locked roles, for its standbys.
    pub(crate) locked: std::sync::Mutex<HashMap<String, Arc<LockedSet>>>,
    /// The targets this agent leads now.
    leading: std::sync::Mutex<HashSet<String>>,
    /// The queue to the notify hooks (see notify.rs).
    pub(crate) notify: curfew_notify::Notifier,
    /// What each target's anchor store holds of the audit chain (see `crate::anchor`).
    pub(crate) anchors: crate::anchored::Anchors,
    /// The head as of the last signed checkpoint (the checkpoint record itself).
    pub(crate) checkpointed: std::sync::Mutex<Option<curfew_audit::Head>>,
}

impl Shared {
    pub(crate) fn new(audit: AuditLog, options: AgentOptions) -> Self {
        Self {
            audit,
            options,
            locked: std::sync::Mutex::new(HashMap::new()),
            leading: std::sync::Mutex::new(HashSet::new()),
            notify: curfew_notify::Notifier::new(),
            anchors: crate::anchored::Anchors::default(),
            checkpointed: std::sync::Mutex::new(None),
        }
    }

    /// Publish a primary's locked roles.
    pub(crate) fn publish_locked(&self, primary: &str, locked: Arc<LockedSet>) {
        let mut board = self
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        board.insert(primary.to_owned(), locked);
    }

    /// The locked roles a primary published last (empty if none yet).
    pub(crate) fn locked_of(&self, primary: &str) -> Arc<LockedSet> {
        let board = self
            .locked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        board.get(primary).cloned().unwrap_or_default()
    }

    /// Record whether this agent leads a target. A primary that stops leading withdraws its
    /// locked roles: another replica keeps them now.
    pub(crate) fn set_leading(&self, target: &str, leading: bool) {
        let mut set = self
            .leading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if leading {
            set.insert(target.to_owned());
        } else {
            set.remove(target);
            self.locked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(target);
        }
    }

    /// Whether this agent leads a target now.
    pub(crate) fn leads(&self, target: &str) -> bool {
        self.leading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(target)
    }

    /// Whether anyone listens (so that an event costly to build is built only then).
    pub(crate) fn observed(&self) -> bool {
        self.options
            .events
            .as_ref()
            .is_some_and(|events| events.receiver_count() > 0)
    }

    /// Tell observers, if any (never blocks; a lagging observer misses events).
    pub(crate) fn emit(&self, event: AgentEvent) {
        if let Some(events) = &self.options.events {
            let _ = events.send(event);
        }
    }
}
