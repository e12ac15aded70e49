//! The login ledger as the loop sees it: roles, locks and the outcome of a login change, not
//! the rows of any database's tables.

use curfew_audit::Authorized;
use jiff::Timestamp;

/// A login change (the role's oid) bound to the durable intent that announced it: what
/// [`crate::LoginLedger::disable_login`] and [`crate::LoginLedger::restore_login`] take, so
/// that no login is changed without an intent record on disk.
pub type AuthorizedLoginChange<'t> = Authorized<'t, curfew_audit::LoginChange, u32>;

/// A role as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role's oid (stable across renames).
    pub oid: u32,
    /// Its name.
    pub name: String,
    /// `rolcanlogin`.
    pub can_login: bool,
    /// `rolsuper`.
    pub superuser: bool,
    /// Every role it is a member of, directly or not.
    pub member_of: Vec<String>,
}

/// One row of `curfew.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    /// Row id.
    pub id: i64,
    /// The locked role's oid.
    pub role_oid: u32,
    /// Its name when the lock was made.
    pub role_name: String,
    /// `window` or `incident`.
    pub kind: String,
    /// For a window lock, the rule.
    pub rule: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it lapses by itself.
    pub expires_at: Option<Timestamp>,
    /// When it was released, if it was.
    pub released_at: Option<Timestamp>,
    /// By whom or what.
    pub released_by: Option<String>,
}

/// Where a role stands after an incident lock was recorded or released, for `curfew lock` and
/// `curfew unlock` waiting on an agent (the same on every database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProgress {
    /// Whether the role can log in (on MariaDB: any account of the user is unlocked).
    pub can_login: bool,
    /// Whether curfew disabled its login.
    pub disabled_by_curfew: bool,
    /// Its client sessions on this server.
    pub sessions: i64,
    /// Whether the agent has recorded the lock row's creation (and release, if released).
    pub announced: bool,
    /// The other locks still in force on it, in words (`rule "night"`, `incident lock 4`).
    pub remaining: Vec<String>,
}

/// A role that has, or should have, curfew's hand on its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedRole {
    /// The role.
    pub oid: u32,
    /// Its current name.
    pub name: String,
    /// Whether it can log in now.
    pub can_login: bool,
    /// Whether curfew turned its login off (a ledger row exists).
    pub disabled_by_curfew: bool,
    /// The active locks on it (empty: its login should come back, if curfew took it).
    pub locks: Vec<LockRow>,
}

/// Where the ledger stands for the role curfew is connected as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerStatus {
    /// No ledger on the server: no lock exists.
    Missing,
    /// The ledger exists, but curfew's role may not read it.
    NoAccess,
    /// Made by an older curfew: readable, but login changes wait until it is installed again.
    Outdated,
    /// Installed, but curfew's role may not change logins through it (installed for another
    /// role, or incomplete).
    NotGranted,
    /// Installed and usable.
    Ready,
}

impl LedgerStatus {
    /// Whether curfew's role can read the locks.
    pub fn readable(self) -> bool {
        matches!(
            self,
            LedgerStatus::Outdated | LedgerStatus::NotGranted | LedgerStatus::Ready
        )
    }
}

/// What a login change did, as decided inside its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginChange {
    /// `ALTER ROLE ... NOLOGIN` and the ledger row, committed together.
    Disabled,
    /// The role was re-enabled by someone while locked; disabled again.
    DriftCorrected,
    /// `ALTER ROLE ... LOGIN` and the ledger row's removal, committed together.
    Restored,
    /// Nothing to do any more (the state changed since it was read).
    NotNeeded,
    /// The role no longer exists; its ledger rows were removed.
    RoleGone,
}

/// Points between the steps of a login change, for crash tests.
pub type FaultHook<'a> = &'a (dyn Fn(&'static str) + Send + Sync);
