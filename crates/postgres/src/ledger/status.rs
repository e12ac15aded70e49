//! Whether the ledger is installed and usable by curfew's role, read from the catalogs only:
//! never an error for a schema curfew's role may not enter (naming `curfew.x` would raise
//! "permission denied for schema curfew").

use super::{AGENT_FUNCTIONS, LEDGER_VERSION, LedgerStatus, OWNER_ROLE, SCHEMA_COMMENT};
use crate::connect::Connection;
use crate::decode::col;
use crate::error::PgError;

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
        let functions: Vec<String> = AGENT_FUNCTIONS.iter().map(|f| (*f).to_owned()).collect();
        let row = self
            .client
            .query_one(
                "WITH n AS (SELECT oid, obj_description(oid, 'pg_namespace') AS comment
                            FROM pg_namespace WHERE nspname = 'curfew'),
                      t AS (SELECT c.oid FROM pg_class c JOIN n ON c.relnamespace = n.oid
                            WHERE c.relname IN ('lock', 'disabled_login') AND c.relkind = 'r'),
                      f AS (SELECT p.oid FROM pg_proc p JOIN n ON p.pronamespace = n.oid
                            WHERE format('curfew.%s(%s)', p.proname,
                                         replace(oidvectortypes(p.proargtypes), ', ', ','))
                                  = ANY($1))
                 SELECT (SELECT count(*) FROM t) = 2,
                        coalesce((SELECT has_schema_privilege(oid, 'USAGE') FROM n), false)
                          AND (SELECT bool_and(has_table_privilege(oid, 'SELECT')) FROM t),
                        coalesce((SELECT comment FROM n), '') = $2,
                        (SELECT count(*) FROM f) = cardinality($1)
                          AND (SELECT bool_and(has_function_privilege(oid, 'EXECUTE')) FROM f)
                          AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $3)",
                &[&functions, &SCHEMA_COMMENT, &OWNER_ROLE],
            )
            .await
            .map_err(|e| PgError::query(&self.target, "looking for the ledger", e))?;
        let what = "looking for the ledger";
        let exists: bool = col(&row, 0, &self.target, what)?;
        let readable: Option<bool> = col(&row, 1, &self.target, what)?;
        let current: bool = col(&row, 2, &self.target, what)?;
        let executable: Option<bool> = col(&row, 3, &self.target, what)?;
        debug_assert!(SCHEMA_COMMENT.contains(&format!("(version {LEDGER_VERSION})")));
        Ok(if !exists {
            LedgerStatus::Missing
        } else if readable != Some(true) {
            LedgerStatus::NoAccess
        } else if !current {
            LedgerStatus::Outdated
        } else if executable != Some(true) {
            LedgerStatus::NotGranted
        } else {
            LedgerStatus::Ready
        })
    }
}
