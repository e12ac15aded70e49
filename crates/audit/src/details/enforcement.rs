//! Details of what enforcement does: ending sessions, warning of it, and changing logins.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::contract::Detail;
use super::lenient;
use crate::event::Event;

/// What a session is ended (or, report-only, would be ended) for: when it was due, under
/// which policy. The detail of `termination_intent` and `session_reported`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminationPlan {
    /// When the rule said the session must end.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub deadline: Timestamp,
    /// The SHA-256 of the policy in force.
    pub policy_sha256: String,
}

impl Detail for TerminationPlan {
    const EVENTS: &'static [Event] = &[Event::TerminationIntent, Event::SessionReported];
}

/// A session was ended (`session_terminated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// When the server signalled it.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub at: Timestamp,
    /// When the session was seen gone.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub exit_confirmed_at: Timestamp,
    /// How long after the deadline it was signalled, in milliseconds.
    pub lateness_ms: f64,
    /// For a session that came through curfew gateway: the client behind it
    /// (`ADDR:PORT`), as the gateway registered it. Absent for a direct session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_client: Option<String>,
    /// For a session that came through curfew gateway: which gateway (host/process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
}

impl Detail for SessionEnded {
    const EVENTS: &'static [Event] = &[Event::SessionTerminated];
}

/// A termination was not carried out (`termination_skipped`: no longer matched, not yet due).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminationSkip {
    /// When the server judged it.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub at: Timestamp,
}

impl Detail for TerminationSkip {
    const EVENTS: &'static [Event] = &[Event::TerminationSkipped];
}

/// A termination failed (`termination_failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminationFailure {
    /// Why, as the server or the connection said.
    pub error: String,
}

impl Detail for TerminationFailure {
    const EVENTS: &'static [Event] = &[Event::TerminationFailed];
}

/// The outcome of ending a session that held curfew's leader lock (`leader_squatted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquatEnding {
    /// The squatting session's process id.
    pub lock_holder_pid: i64,
}

impl Detail for SquatEnding {
    const EVENTS: &'static [Event] = &[Event::LeaderSquatted];
}

/// A session entered the warning lead of the rule that will end it (`session_warned`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionWarning {
    /// When it will be ended.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub deadline: Timestamp,
    /// The rule's warning lead as written in the policy (empty when it has none).
    pub lead: String,
    /// Seconds from the snapshot to the deadline (never negative).
    pub ends_in_seconds: f64,
    /// The notify hooks the warning was queued for.
    pub hooks: Vec<String>,
    /// The SHA-256 of the policy in force.
    pub policy_sha256: String,
}

impl Detail for SessionWarning {
    const EVENTS: &'static [Event] = &[Event::SessionWarned];
}

/// A login change the agent is about to make (`login_change_intent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChangePlan {
    /// `lock`, `correct drift on` or `restore`.
    pub action: String,
    /// The role's name.
    pub role: String,
    /// The role's oid.
    pub role_oid: u32,
    /// The ids of the locks in force on it.
    pub locks: Vec<i64>,
    /// The SHA-256 of the policy in force.
    pub policy_sha256: String,
}

impl Detail for LoginChangePlan {
    const EVENTS: &'static [Event] = &[Event::LoginChangeIntent];
}

/// The outcome of a login change: `login_locked`, `login_restored`, `lock_drift_corrected`,
/// `login_change_skipped` or `login_change_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChangeResult {
    /// The role's name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub role: Option<String>,
    /// The role's oid.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub role_oid: Option<u64>,
    /// Why it failed (`null` unless it did).
    #[serde(default, deserialize_with = "lenient::text")]
    pub error: Option<String>,
}

impl Detail for LoginChangeResult {
    const EVENTS: &'static [Event] = &[
        Event::LoginLocked,
        Event::LoginRestored,
        Event::LockDriftCorrected,
        Event::LoginChangeSkipped,
        Event::LoginChangeFailed,
    ];
}

/// A row of the login ledger as announced: `lock_created` and `lock_released`. Text fields
/// read as text whatever their JSON type, as the report always showed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    /// The lock's id in the ledger.
    #[serde(default, deserialize_with = "lenient::signed")]
    pub lock_id: Option<i64>,
    /// The locked role's name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub role: Option<String>,
    /// What made it (`manual`, `rule`, ...).
    #[serde(default, deserialize_with = "lenient::text")]
    pub kind: Option<String>,
    /// The rule that made it, if one did.
    #[serde(default, deserialize_with = "lenient::text")]
    pub rule: Option<String>,
    /// Who made it, for people.
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_by: Option<String>,
    /// When it was made.
    #[serde(default, deserialize_with = "lenient::text")]
    pub created_at: Option<String>,
    /// When it expires (`null`: when released).
    #[serde(default, deserialize_with = "lenient::text")]
    pub expires_at: Option<String>,
    /// Who released it, for people.
    #[serde(default, deserialize_with = "lenient::text")]
    pub released_by: Option<String>,
    /// When it was released.
    #[serde(default, deserialize_with = "lenient::text")]
    pub released_at: Option<String>,
    /// The person whose action it records, as [`crate::LedgerActor::to_json`] gives it
    /// (only for a person's action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<serde_json::Value>,
    /// The reason a person gave for releasing it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::text"
    )]
    pub release_reason: Option<String>,
}

impl LockRecord {
    /// The person whose action it records, where the record names one.
    pub fn actor(&self) -> Option<RecordedActor> {
        self.actor
            .as_ref()
            .and_then(|a| RecordedActor::deserialize(a).ok())
    }
}

impl Detail for LockRecord {
    const EVENTS: &'static [Event] = &[Event::LockCreated, Event::LockReleased];
}

/// A person as a record's `actor` names them: the OS user and uid the command ran as, and
/// the database role (the server's stamp where there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedActor {
    /// The OS user's name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub os_user: Option<String>,
    /// The OS user's uid, as text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub uid: Option<String>,
    /// The database role.
    #[serde(default, deserialize_with = "lenient::text")]
    pub db_role: Option<String>,
}

impl RecordedActor {
    /// In words: "alice (uid 1000) as role dba"; `None` when nothing is named.
    pub fn words(&self) -> Option<String> {
        if self.os_user.is_none() && self.uid.is_none() && self.db_role.is_none() {
            return None;
        }
        let mut words = self
            .os_user
            .clone()
            .unwrap_or_else(|| "(unknown user)".to_owned());
        if let Some(uid) = &self.uid {
            words.push_str(&format!(" (uid {uid})"));
        }
        if let Some(role) = &self.db_role {
            words.push_str(&format!(" as role {role}"));
        }
        Some(words)
    }
}
