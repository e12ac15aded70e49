//! Whether the ledger is installed and usable by curfew's role, read from the catalogs only:
//! never an error for a schema curfew's role may not enter (naming `curfew.x` would raise
//! "permission denied for schema curfew").

use super::{LedgerStatus, OWNER_ROLE};
use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::ledger::SCHEMA_COMMENT;
use crate::sql::ledger_catalog::{STATUS, WHAT_STATUS, decode_status, functions_param};

/// Why curfew's role cannot keep login locks with the ledger in a given state, in PostgreSQL's
/// terms (what an administrator must run).
pub trait LedgerProblem {
    /// Why curfew's role `role` cannot keep login locks on `target`, and what to run; `None`
    /// when it can, or when there is no ledger and the policy `needs` none (then no lock exists).
    fn problem(self, target: &str, role: &str, needs: bool) -> Option<String>;
}

impl LedgerProblem for LedgerStatus {
    /// Why curfew's role `role` cannot keep login locks on `target`, and what to run; `None`
    /// when it can, or when there is no ledger and the policy `needs` none (then no lock exists).
    fn problem(self, target: &str, role: &str, needs: bool) -> Option<String> {
        let init = format!(
            "as an administrator (a superuser, or the provider's admin role), run once: curfew init --target {target} --admin-user <admin> --agent-role {}",
            crate::names::quote_identifier(role)
        );
        match self {
            LedgerStatus::Missing if needs => Some(format!(
                "target \"{target}\": there is no curfew ledger (schema curfew), so the policy's login locks are not enforced; {init}"
            )),
            LedgerStatus::Missing | LedgerStatus::Ready => None,
            LedgerStatus::NoAccess => Some(format!(
                "target \"{target}\": role \"{role}\" may not read the curfew ledger (schema curfew); login locks are not enforced; {init}"
            )),
            LedgerStatus::Outdated => Some(format!(
                "target \"{target}\": the curfew ledger was made by an older curfew (it needed CREATEROLE); logins are not changed until its functions are installed; {init}, then ALTER ROLE {} NOCREATEROLE;",
                crate::names::quote_identifier(role)
            )),
            LedgerStatus::NotGranted => Some(format!(
                "target \"{target}\": role \"{role}\" may not execute curfew's login-lock functions; logins are not changed; {init}"
            )),
        }
    }
}

impl Connection {
    /// Where the ledger stands for curfew's role (catalog reads only).
    pub async fn ledger_status(&self) -> Result<LedgerStatus, PgError> {
        let functions = functions_param();
        let row = self
            .client
            .query_one(STATUS, &[&functions, &SCHEMA_COMMENT, &OWNER_ROLE])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT_STATUS, e))?;
        decode_status(&row, &self.target)
    }
}
