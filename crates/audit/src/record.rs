//! Records as written (by callers) and as read back.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The session a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Backend process id (MariaDB: the connection id).
    pub pid: i64,
    /// When the backend started; with `pid` it identifies the session unambiguously.
    #[serde(with = "rfc3339")]
    pub backend_start: Timestamp,
    /// The role the session is logged in as.
    pub role: String,
    /// The database the session is connected to.
    pub database: String,
    /// The client address; absent for Unix-socket connections. Where the server showed a host
    /// name instead of a TCP client's address (MariaDB/MySQL with name resolution on), that
    /// name marked `name:<host> (unverified)`: never an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The session's `application_name`.
    pub application: String,
    /// The session's state, e.g. `"idle in transaction"`.
    pub state: String,
}

/// A record as the caller supplies it; the writer adds `seq`, `prev` and `hash`.
///
/// The crate never reads a clock: `ts` is whatever the caller observed, so tests and
/// replays are deterministic.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub event: Event,
    /// The database target's name.
    pub target: Option<String>,
    /// The policy rule involved.
    pub rule: Option<String>,
    /// A human sentence, e.g. "idle for 15m02s; limit 15m".
    pub reason: Option<String>,
    /// The session the record is about.
    pub session: Option<SessionInfo>,
    /// The outcome, e.g. "ended", "no_longer_matched", "failed".
    pub result: Option<String>,
    /// For an outcome: the seq of the intent record it completes.
    pub intent: Option<u64>,
    /// Anything else (policy hash, error text, lateness_ms, ...).
    pub detail: Option<serde_json::Value>,
}

impl Record {
    /// A record with only a time and an event.
    pub fn new(ts: Timestamp, event: Event) -> Self {
        Record {
            ts,
            event,
            target: None,
            rule: None,
            reason: None,
            session: None,
            result: None,
            intent: None,
            detail: None,
        }
    }

    /// Sets the target's name.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets the rule's name.
    #[must_use]
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets the human-readable reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the session.
    #[must_use]
    pub fn with_session(mut self, session: SessionInfo) -> Self {
        self.session = Some(session);
        self
    }

    /// Sets the result.
    #[must_use]
    pub fn with_result(mut self, result: impl Into<String>) -> Self {
        self.result = Some(result.into());
        self
    }

    /// Names the intent record (by seq) that this outcome completes.
    #[must_use]
    pub fn with_intent(mut self, intent_seq: u64) -> Self {
        self.intent = Some(intent_seq);
        self
    }

    /// Sets the free-form detail.
    #[must_use]
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// A record as read back from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it happened.
    #[serde(with = "rfc3339")]
    pub ts: Timestamp,
    /// The event's name; a string so that events unknown to this version stay readable.
    pub event: String,
    /// The database target's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The policy rule involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// A human sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The session the record is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionInfo>,
    /// The outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// For an outcome: the seq of the intent it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<u64>,
    /// Anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// The previous record's hash ([`crate::GENESIS`] for seq 1).
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

impl Entry {
    /// The event, if this version knows it.
    pub fn event_kind(&self) -> Option<Event> {
        Event::from_name(&self.event)
    }
}

/// Timestamps as RFC 3339 in UTC, exactly as `Timestamp`'s `Display` prints them, so the
/// on-disk form does not depend on serde feature details of jiff.
pub(crate) mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(ts)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}
