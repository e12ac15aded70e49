//! Details of what keeps enforcement on and its evidence whole: the agent's start, policies,
//! heartbeats, leadership, the log's own continuity and its checkpoints.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::contract::Detail;
use super::lenient;
use crate::event::Event;

/// The agent started (`agent_started`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStart {
    /// curfew's version.
    pub version: String,
    /// Whether it only says what it would do.
    pub dry_run: bool,
    /// Its process id.
    pub pid: u32,
}

impl Detail for AgentStart {
    const EVENTS: &'static [Event] = &[Event::AgentStarted];
}

/// A policy in force (`policy_loaded`, at start and at every reload that changed it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLoad {
    /// Where it was read from.
    #[serde(default, deserialize_with = "lenient::text")]
    pub source: Option<String>,
    /// The SHA-256 of the file.
    #[serde(default, deserialize_with = "lenient::text")]
    pub sha256: Option<String>,
    /// The policy's hash under the name early versions used (they wrote no `sha256`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::string"
    )]
    pub policy_sha256: Option<String>,
    /// How many rules it has.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub rules: Option<u64>,
    /// Its targets' names.
    #[serde(default, deserialize_with = "lenient::texts")]
    pub targets: Vec<String>,
}

impl PolicyLoad {
    /// The policy's hash as a string, under either name (`sha256`, or early versions'
    /// `policy_sha256`).
    pub fn hash(&self) -> Option<&str> {
        self.sha256.as_deref().or(self.policy_sha256.as_deref())
    }
}

impl Detail for PolicyLoad {
    const EVENTS: &'static [Event] = &[Event::PolicyLoaded];
}

/// A reloaded policy file was rejected (`policy_rejected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRejection {
    /// The file.
    pub source: String,
    /// Its problems, one sentence each.
    pub errors: Vec<String>,
}

impl Detail for PolicyRejection {
    const EVENTS: &'static [Event] = &[Event::PolicyRejected];
}

/// What a worker is doing for its target (`heartbeat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `enforcing`, `standing_by`, `not_enforced`, `unreachable`, `dry_run`,
    /// `audit_unwritable` or `stopped`.
    #[serde(default, deserialize_with = "lenient::string_or_empty")]
    pub state: String,
    /// The heartbeat interval in force, in milliseconds.
    #[serde(default, deserialize_with = "lenient::unsigned")]
    pub interval_ms: Option<u64>,
    /// Why, for a state that is not enforcing.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::string"
    )]
    pub why: Option<String>,
    /// The server's clock minus the agent's at the last snapshot, in milliseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::signed"
    )]
    pub clock_offset_ms: Option<i64>,
    /// For `audit_unwritable`: since when records could not be written.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "lenient::display_time_opt",
        deserialize_with = "lenient::time"
    )]
    pub since: Option<Timestamp>,
}

impl Detail for Heartbeat {
    const EVENTS: &'static [Event] = &[Event::Heartbeat];
}

/// The session that holds curfew's leader lock (`leader_acquired`, `leader_lost`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    /// Its process id.
    pub lock_session_pid: i64,
    /// When it started.
    #[serde(
        serialize_with = "lenient::display_time",
        deserialize_with = "lenient::parse_time"
    )]
    pub lock_session_start: Timestamp,
}

impl Detail for Leadership {
    const EVENTS: &'static [Event] = &[Event::LeaderAcquired, Event::LeaderLost];
}

/// The log takes records again (`audit_resumed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResumption {
    /// Why records could not be written (`null` when not known).
    #[serde(default, deserialize_with = "lenient::string")]
    pub error: Option<String>,
    /// Since when (`null` when no record was refused).
    #[serde(
        default,
        serialize_with = "lenient::display_time_opt",
        deserialize_with = "lenient::time"
    )]
    pub since: Option<Timestamp>,
    /// How many outcome records kept in memory follow.
    #[serde(default, deserialize_with = "lenient::count")]
    pub owed_outcomes: usize,
}

impl Detail for AuditResumption {
    const EVENTS: &'static [Event] = &[Event::AuditResumed];
}

/// The first record of a file that continues the chain of the file before (`log_continued`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogContinuation {
    /// The seq of the last record of the file before.
    pub previous_seq: u64,
    /// Its hash.
    pub previous_hash: String,
    /// The chain's identity (`null` when the file before did not name it).
    pub chain: Option<String>,
    /// Why the chain went on in a new file.
    pub why: String,
}

impl Detail for LogContinuation {
    const EVENTS: &'static [Event] = &[Event::LogContinued];
}

/// A signed head of the chain (`checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHead {
    /// The chain's identity.
    pub chain: String,
    /// The seq of the last record it covers.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    /// The public key, hex.
    pub key: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

impl Detail for CheckpointHead {
    const EVENTS: &'static [Event] = &[Event::Checkpoint];
}
