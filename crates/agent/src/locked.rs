//! The roles locked on a primary, as login-lock keeping last found them: published in the
//! agent's shared state, where the actor ends their sessions.

use std::collections::HashMap;

use jiff::Timestamp;

/// Why a role is locked, for the sessions that must end because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// Every reason, in words.
    pub reason: String,
    /// Since when the role has been locked (the earliest lock in force).
    pub since: Timestamp,
    /// Whether an incident lock is among them: it ends every session of the role, exempt or
    /// not (a window lock spares the sessions `[exempt]` covers, such as a backup job).
    pub incident: bool,
}

/// Locked roles by name.
pub type LockedSet = HashMap<String, Locked>;
