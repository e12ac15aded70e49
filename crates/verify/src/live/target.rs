//! What a live control test needs of an enforcement point: canary roles it can create, log in
//! as, watch and lock. The agent implements it on PostgreSQL ([`super::postgres`]) and on
//! MariaDB ([`super::mariadb`]); a future enforcement point (the gateway) implements it to be
//! verified the same way.

use std::future::Future;

use curfew_audit::SessionInfo;
use jiff::Timestamp;

use crate::Canary;

/// Where a canary role's login lock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockState {
    /// Whether the enforcement point announced the lock (it has taken it up).
    pub announced: bool,
    /// Whether the role can log in.
    pub can_login: bool,
    /// The role's open sessions.
    pub sessions: i64,
}

/// An enforcement point verify can test live. Errors are sentences for the evidence.
pub trait CanaryTarget {
    /// A canary's open session.
    type Session: CanaryConnection;
    /// A canary role's credentials.
    type Secret;
    /// A role verify holds a login lock on, released at cleanup whatever happens.
    type LockedRole: Copy + PartialEq + std::fmt::Display;

    /// Where sessions are listed, as named in evidence (PostgreSQL: `pg_stat_activity`).
    fn session_list(&self) -> &str;

    /// The role verify acts as, as named in the ledger and in hints.
    fn operator(&self) -> &str;

    /// Why this enforcement point cannot make `canary` (a scope it does not enforce), if so:
    /// the rule is then not tested, with that reason.
    fn cannot_make(&self, _canary: &Canary) -> Option<&str> {
        None
    }

    /// What a canary runs to open a transaction and leave it idle (one the agent sees as
    /// idle in transaction).
    fn open_transaction(&self) -> &str {
        "BEGIN; SELECT 1"
    }

    /// The statement [`CanaryConnection::sleep`] runs for `seconds`, as named in evidence.
    fn sleep_statement(&self, seconds: u64) -> String {
        format!("SELECT pg_sleep({seconds})")
    }

    /// What the server's refusal of a login whose role is locked says (matched in the error).
    fn locked_login_refusal(&self) -> &str {
        "not permitted to log in"
    }

    /// The server's clock.
    fn now(&self) -> impl Future<Output = Result<Timestamp, String>>;

    /// Create canary role `role`, member of `groups`, able to log in until `valid_until`, with
    /// fresh credentials; the error says what the operator must grant.
    fn create_canary(
        &self,
        role: &str,
        groups: &[String],
        valid_until: Timestamp,
    ) -> impl Future<Output = Result<Self::Secret, String>>;

    /// The evidence's step saying that canary `role` was created (as [`Self::create_canary`]
    /// was asked).
    fn created_step(&self, role: &str, groups: &[String], valid_until: Timestamp) -> String {
        format!(
            "Created role \"{}\"{} (LOGIN, expiring {}).",
            role,
            if groups.is_empty() {
                String::new()
            } else {
                format!(", member of {}", groups.join(", "))
            },
            valid_until.round(jiff::Unit::Second).unwrap_or(valid_until)
        )
    }

    /// Drop a canary role (its sessions ended first).
    fn drop_canary(&self, role: &str) -> impl Future<Output = Result<(), String>>;

    /// Log in as `canary`; the session and the step that says how it logged in.
    fn login(
        &self,
        canary: &Canary,
        secret: &Self::Secret,
    ) -> impl Future<Output = Result<(Self::Session, String), String>>;

    /// Let the session try to switch the database's own limits off for itself (so that only
    /// curfew can end it); what it ran.
    fn switch_off_own_limits(
        &self,
        session: &Self::Session,
    ) -> impl Future<Output = Result<String, String>>;

    /// Whether the session is still there.
    fn session_exists(&self, session: &Self::Session)
    -> impl Future<Output = Result<bool, String>>;

    /// Why login locks cannot work on this target (named `target`), if they cannot.
    fn lock_problem(&self, target: &str) -> impl Future<Output = Option<String>>;

    /// Lock role `role`'s logins the way `curfew lock` does, until `until`; the role and the
    /// lock's id.
    fn lock_role(
        &self,
        role: &str,
        reason: &str,
        by: &str,
        until: Timestamp,
    ) -> impl Future<Output = Result<(Self::LockedRole, i64), String>>;

    /// Where lock `lock_id` on `role` stands.
    fn lock_state(
        &self,
        role: Self::LockedRole,
        lock_id: i64,
    ) -> impl Future<Output = Result<LockState, String>>;

    /// Release verify's lock on `role`.
    fn unlock_role(
        &self,
        role: Self::LockedRole,
        by: &str,
    ) -> impl Future<Output = Result<(), String>>;
}

/// A canary's open session.
pub trait CanaryConnection {
    /// The session's number as the server shows it (PostgreSQL: its backend's pid).
    fn number(&self) -> i64;

    /// The session as the engine sees it: its identity and address filled into `seen`.
    fn place(&self, seen: &mut curfew_policy::Session);

    /// Whether an audit record's session is this one.
    fn is(&self, recorded: &SessionInfo) -> bool;

    /// The session named in evidence ("pid 42 (backend started …)").
    fn describe(&self) -> String;

    /// Its number as named in evidence ("pid 42").
    fn numbered(&self) -> String {
        format!("pid {}", self.number())
    }

    /// Run `statement` (`SELECT 1`, `BEGIN; SELECT 1`); the error as the server gave it.
    fn run(&self, statement: &str) -> impl Future<Output = Result<(), String>>;

    /// Start a statement that keeps the session busy for `seconds`, in the background.
    fn sleep(&self, seconds: f64) -> tokio::task::JoinHandle<Result<(), String>>;
}
