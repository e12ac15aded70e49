//! What a long operator command has done so far, as typed events the caller prints as they
//! happen (the binary turns each into its line of text).

use std::path::PathBuf;

use curfew_policy::Limit;
use jiff::Timestamp;

/// One event of `init`, `lock`, `unlock`, `locks` or `plan`, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Something the operator should know that does not stop the command.
    Warning(Warning),
    /// `init`: the ledger is installed on a target.
    Installed {
        /// Target name.
        target: String,
        /// The role granted the ledger's use.
        agent_role: String,
        /// Whether the schema was already there (then it was brought up to date).
        schema_existed: bool,
        /// The owner role's attributes, in words.
        owner_attributes: String,
    },
    /// `init`: the gateway's auth function is installed on the target it forwards to.
    GatewayAuthInstalled {
        /// Target name.
        target: String,
        /// The only role that may call it.
        gateway_role: String,
        /// Only members of this role are served (`None`: every login role).
        serve_members_of: Option<String>,
        /// Whether superusers are served.
        serve_superusers: bool,
    },
    /// `init`: the gateway session registry is installed on the target the gateway forwards
    /// to.
    GatewayRegistryInstalled {
        /// Target name.
        target: String,
        /// The only role that may register sessions.
        gateway_role: String,
        /// The role that may read the registry besides `pg_read_all_stats`.
        agent_role: String,
    },
    /// `init`: a note from installing the ledger on a target.
    Note {
        /// Target name.
        target: String,
        /// The note.
        note: String,
    },
    /// `lock`: the incident lock is in the target's ledger.
    Recorded {
        /// Target name.
        target: String,
        /// The locked role.
        role: String,
        /// The lock row's id.
        lock_id: i64,
        /// Who made it, as a label.
        by: String,
        /// When it lapses by itself.
        until: Option<Timestamp>,
        /// The role's client sessions open when it was recorded.
        sessions: i64,
    },
    /// `lock`/`unlock`: no enforcing agent leads these targets, so the command runs one itself.
    StandInStarted {
        /// The targets it enforces.
        targets: Vec<String>,
        /// Where it records.
        audit_log: PathBuf,
    },
    /// `lock`: the agent applied the lock.
    Applied {
        /// Target name.
        target: String,
        /// The locked role.
        role: String,
        /// Whether curfew disabled the login (else it was already disabled).
        disabled_by_curfew: bool,
        /// The sessions ended (those open when it was recorded).
        sessions_ended: i64,
    },
    /// `lock`: no agent applied the lock within the wait.
    NotApplied {
        /// Target name.
        target: String,
        /// How long the command waited.
        wait: Limit,
    },
    /// `unlock`: the role has no incident lock on this target.
    NoIncidentLock {
        /// Target name.
        target: String,
        /// The role.
        role: String,
    },
    /// `unlock`: the agent lifted the incident lock.
    Lifted {
        /// Target name.
        target: String,
        /// The role.
        role: String,
        /// Where the role's login stands now.
        login: AfterLift,
    },
    /// `unlock`: no agent restored the login within the wait.
    NotRestored {
        /// Target name.
        target: String,
        /// How long the command waited.
        wait: Limit,
    },
}

/// A warning step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// From connecting to a target (e.g. TLS not verified).
    Connection(String),
    /// The role to lock is exempt in the policy; the incident lock overrides the exemption.
    ExemptRoleLocked {
        /// The role.
        role: String,
    },
}

/// Where a role's login stands once its incident lock is lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterLift {
    /// Other locks keep it locked: their reasons.
    StillLockedBy(Vec<String>),
    /// It can log in again.
    CanLogIn,
    /// It was NOLOGIN before curfew locked it and stays so.
    StaysNologin,
}
