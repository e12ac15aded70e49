//! Changing a role's login and the ledger together, in one transaction.

use tokio_postgres::error::SqlState;

use super::{ACTIVE, FaultHook, LoginChange, RELEASE_EXPIRED};
use crate::connect::Connection;
use crate::error::PgError;
use crate::quote_identifier;

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
        let who = Who {
            target: self.target.clone(),
            agent: self.info.role.clone(),
            version_num: self.info.version_num,
        };
        let failed = |what: &'static str| {
            let target = who.target.clone();
            move |e| PgError::query(&target, what, e)
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(failed("starting a transaction"))?;
        // Serialize with other curfew processes changing the same role.
        tx.execute(
            "SELECT pg_advisory_xact_lock(7166912342400000000 + $1::oid::bigint)",
            &[&role_oid],
        )
        .await
        .map_err(failed("locking the role's ledger entry"))?;
        // Fenced (see `crate::leader`): only the leader changes logins.
        if let Some(leader) = self.fence {
            let leading: bool = tx
                .query_one(
                    &format!(
                        "SELECT {}",
                        crate::leader::leading_sql("$1::int4", "$2::timestamptz")
                    ),
                    &[&leader.pid, &leader.backend_start],
                )
                .await
                .map_err(failed("checking the leader lock"))?
                .get(0);
            if !leading {
                tx.rollback().await.map_err(failed("rolling back"))?;
                return Err(self.not_leading());
            }
        }
        let state = tx
            .query_opt(
                &format!(
                    "SELECT r.rolname::text, r.rolcanlogin,
                            EXISTS (SELECT 1 FROM curfew.disabled_login d WHERE d.role_oid = r.oid),
                            EXISTS (SELECT 1 FROM curfew.lock l WHERE l.role_oid = r.oid AND {ACTIVE})
                     FROM pg_roles r WHERE r.oid = $1"
                ),
                &[&role_oid],
            )
            .await
            .map_err(failed("reading the role"))?;
        let Some(state) = state else {
            tx.execute(
                "DELETE FROM curfew.disabled_login WHERE role_oid = $1",
                &[&role_oid],
            )
            .await
            .map_err(failed("clearing a dropped role"))?;
            tx.commit().await.map_err(failed("committing"))?;
            return Ok(LoginChange::RoleGone);
        };
        let (name, can_login, ours, wanted): (String, bool, bool, bool) =
            (state.get(0), state.get(1), state.get(2), state.get(3));
        let role = quote_identifier(&name);
        let change = match (lock, wanted, can_login, ours) {
            (true, true, true, false) => {
                tx.execute(
                    "INSERT INTO curfew.disabled_login (role_oid, role_name) VALUES ($1, $2)",
                    &[&role_oid, &name],
                )
                .await
                .map_err(failed("recording the lock"))?;
                fault("lock.after-ledger");
                alter(&who, &tx, &role, &name, "NOLOGIN").await?;
                LoginChange::Disabled
            }
            (true, true, true, true) => {
                alter(&who, &tx, &role, &name, "NOLOGIN").await?;
                LoginChange::DriftCorrected
            }
            (false, false, can_login, true) => {
                // A lock that expired since the last round is released in this transaction,
                // so the ledger never shows a lock in force on a role that can log in again.
                tx.execute(
                    &format!("{RELEASE_EXPIRED} AND role_oid = $1"),
                    &[&role_oid],
                )
                .await
                .map_err(failed("releasing expired locks"))?;
                if !can_login {
                    alter(&who, &tx, &role, &name, "LOGIN").await?;
                }
                fault("restore.after-alter");
                tx.execute(
                    "DELETE FROM curfew.disabled_login WHERE role_oid = $1",
                    &[&role_oid],
                )
                .await
                .map_err(failed("clearing the ledger"))?;
                LoginChange::Restored
            }
            _ => {
                tx.rollback().await.map_err(failed("rolling back"))?;
                return Ok(LoginChange::NotNeeded);
            }
        };
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

/// Who is changing a login, for messages.
struct Who {
    target: String,
    agent: String,
    version_num: i32,
}

async fn alter(
    who: &Who,
    tx: &tokio_postgres::Transaction<'_>,
    quoted: &str,
    name: &str,
    login: &str,
) -> Result<(), PgError> {
    tx.batch_execute(&format!("ALTER ROLE {quoted} {login}"))
        .await
        .map_err(|e| {
            if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                PgError::AlterRole {
                    target: who.target.clone(),
                    agent: who.agent.clone(),
                    role: name.to_owned(),
                    version_num: who.version_num,
                    detail: e
                        .as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_default(),
                }
            } else {
                PgError::query(&who.target, "changing a role's login", e)
            }
        })
}
