//! curfew's PostgreSQL adapter: connect from a libpq-style URL (TLS, password file), check that
//! the server and role are fit, read the live sessions on the server's clock, and end a session
//! with a guard that re-checks it in the same statement; elect one leader among replicas.

mod anchor;
mod backend;
mod canary;
mod connect;
mod decode;
mod error;
mod facts;
mod leader;
mod ledger;
mod queries;
mod secret;
mod snapshot;
mod terminate;
mod tls;

pub use anchor::{ANCHOR_FUNCTION, AnchorOrigin, AnchorRow};
pub use canary::{CanarySession, random_hex};
pub use connect::{
    Connected, Connection, MINIMUM_VERSION_NUM, ServerInfo, TargetSpec, connect, connect_to_inspect,
};
pub use curfew_backend::Announcement;
pub use curfew_backend::{IdleState, Outcome, Signal, Snapshot};
pub use error::PgError;
pub use facts::{CHECKED_SETTINGS, ClockReading, HbaRule, RoleFacts, ServerFacts, Setting};
pub use leader::{LEADER_KEY, LeaderInfo, Leadership};
pub use ledger::{
    AGENT_FUNCTIONS, FaultHook, FunctionFacts, Installed, LEDGER_VERSION, LedgerFacts,
    LedgerProblem, LedgerStatus, LockProgress, LockRow, LockedRole, LoginChange, OWNER_ROLE,
    RoleInfo,
};
pub use secret::{Password, PasswordFileError, read_password_file};
pub use terminate::Guard;
pub use tls::TlsError;

/// Quote a name as an SQL identifier: `we"ird role` becomes `"we""ird role"`. Role names may hold
/// quotes, spaces and any Unicode, so they are always quoted, never pasted.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote_identifier("analyst"), "\"analyst\"");
        assert_eq!(
            super::quote_identifier("we\"ird role"),
            "\"we\"\"ird role\""
        );
        assert_eq!(super::quote_identifier("Ünïcode"), "\"Ünïcode\"");
    }
}
