//! A lossless count of the audit records this agent process wrote, for metrics. Events to
//! observers may be missed by a slow observer; this count is kept in the write path itself.

use std::collections::HashMap;
use std::sync::Mutex;

use curfew_audit::Event;

use crate::events::RecordedEvent;

/// What records are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TallyKey {
    /// The event.
    pub event: Event,
    /// The target, if the record is about one.
    pub target: Option<String>,
    /// The rule, if any.
    pub rule: Option<String>,
    /// The result word, if any.
    pub result: Option<String>,
}

/// The count of durable audit records written by this process, by [`TallyKey`]. Shared
/// between the agent (which adds) and the metrics endpoint (which reads).
#[derive(Debug, Default)]
pub struct AuditTally {
    counts: Mutex<HashMap<TallyKey, u64>>,
}

impl AuditTally {
    /// An empty tally.
    pub fn new() -> AuditTally {
        AuditTally::default()
    }

    /// Count records that became durable.
    pub fn add(&self, records: &[RecordedEvent]) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            *counts
                .entry(TallyKey {
                    event: r.event,
                    target: r.target.clone(),
                    rule: r.rule.clone(),
                    result: r.result.clone(),
                })
                .or_insert(0) += 1;
        }
    }

    /// Every count so far.
    pub fn snapshot(&self) -> Vec<(TallyKey, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}
