//! What each target's anchor store holds of the audit chain, as this agent last left it; kept in
//! the agent's shared state, written by the anchoring (`crate::anchor`).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;

/// Per target: what was anchored last, and the last failure.
#[derive(Debug, Default)]
pub(crate) struct Anchors {
    targets: Mutex<HashMap<String, TargetAnchor>>,
    /// Syslog was found unreachable (warned once).
    pub(crate) syslog_warned: Mutex<bool>,
    /// The log's chain identity was found unknown, so nothing can be anchored (warned once).
    pub(crate) unknown_chain_warned: Mutex<bool>,
}

/// What one target's anchor store holds, as far as this agent knows.
#[derive(Debug, Default, Clone)]
pub(crate) struct TargetAnchor {
    /// The head last anchored on this target.
    pub(crate) anchored: Option<(String, u64)>,
    /// Not before this instant after a failure.
    pub(crate) retry_at: Option<Instant>,
    /// The last failure logged, so a lasting one is logged once.
    pub(crate) failure: Option<String>,
}

impl Anchors {
    /// What was last anchored on `target` (nothing yet: the default).
    pub(crate) fn get(&self, target: &str) -> TargetAnchor {
        self.targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(target)
            .cloned()
            .unwrap_or_default()
    }

    /// Remember what was anchored on `target`.
    pub(crate) fn set(&self, target: &str, state: TargetAnchor) {
        self.targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.to_owned(), state);
    }
}
