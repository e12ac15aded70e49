//! Changing a role's login and the ledger together, in one transaction, through the function
//! `curfew.change_login` (see `install`): it serializes with other login changes, checks the
//! fence, re-reads the role and its locks, writes the ledger row and runs `ALTER ROLE`, all
//! in the caller's transaction, which commits here.

use super::{FaultHook, LoginChange};
use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::ledger::{CHANGE_LOGIN, WHAT_CHANGE, login_change};
use crate::sql::scalar;

impl Connection {
    /// Disable a locked role's login: in one transaction, re-check that it is still to be
    /// locked and can log in, record that curfew disabled it (unless it already did, which is
    /// drift), and `ALTER ROLE ... NOLOGIN`.
    pub async fn disable_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, PgError> {
        self.change_login(role_oid, true, fault).await
    }

    /// Restore a role's login: in one transaction, re-check that no lock remains and that curfew
    /// disabled it, `ALTER ROLE ... LOGIN` (if it is still off) and remove the ledger row.
    pub async fn restore_login(
        &mut self,
        role_oid: u32,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, PgError> {
        self.change_login(role_oid, false, fault).await
    }

    async fn change_login(
        &mut self,
        role_oid: u32,
        lock: bool,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, PgError> {
        let (pid, start) = self.fence_params();
        let target = self.target.clone();
        let failed = |what: &'static str| {
            let target = target.clone();
            move |e| PgError::query(&target, what, e)
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        let done = tx
            .query_one(CHANGE_LOGIN, &[&role_oid, &lock, &pid, &start])
            .await;
        let word: String = match done {
            Ok(row) => scalar(&row, &self.target, WHAT_CHANGE)?,
            Err(e) => {
                drop(tx);
                return Err(self.ledger_error(WHAT_CHANGE, e));
            }
        };
        let change = login_change(&word);
        // The ledger row and the ALTER ROLE are written, not committed.
        match change {
            LoginChange::Disabled => fault("lock.after-ledger"),
            LoginChange::Restored => fault("restore.after-alter"),
            _ => {}
        }
        fault(if lock {
            "lock.before-commit"
        } else {
            "restore.before-commit"
        });
        tx.commit()
            .await
            .map_err(failed("committing the login change"))?;
        fault(if lock {
            "lock.after-commit"
        } else {
            "restore.after-commit"
        });
        Ok(change)
    }
}
