//! Login locks on MariaDB: `curfew-backend`'s [`LoginLedger`] over a ledger in the `curfew`
//! database and `ALTER USER ... ACCOUNT LOCK`. A policy's role is a user name and covers every
//! account (`'user'@'host'`) with it; its id is the ledger's stable id for that name. An
//! administrator creates the database and grants curfew's account its privileges (curfew
//! creates the tables at first use); changing logins needs `CREATE USER` and reading the
//! accounts' state `SELECT` on `mysql.global_priv`. Each account's change is an intent, the
//! `ALTER USER`, then its outcome ([`change`]); an interrupted one is settled from the server's
//! state when the ledger's connection opens and before every change. Each `ALTER USER` is
//! fenced on the `GET_LOCK` leader lock (run by the server only while the leader this
//! connection acts for still holds it, as the `KILL`s are); the ledger rows themselves are
//! not, since an intent left by a fenced-off change is settled like a crashed one.

pub mod accounts;
mod change;
mod progress;
pub(crate) mod sql;
mod status;
mod store;

pub use progress::LockProgress;
pub use sql::DATABASE;
pub use status::ledger_grants;

use curfew_backend::{
    AuthorizedLoginChange, BackendError, FaultHook, LedgerStatus, LockRow, LockedRole, LoginChange,
    LoginLedger, RoleInfo,
};
use mysql_async::Value;
use mysql_async::prelude::Queryable;

use crate::connect::Connection;
use crate::error::MysqlError;
use crate::grants::Flavor;
use crate::ledger_conn::LedgerSession;

/// Why this server keeps no login locks, if it does not: the accounts' locked state is read
/// from `mysql.global_priv`, which MariaDB has from 10.4 on; MySQL's `mysql.user` is not read
/// yet.
fn unsupported_server(flavor: Flavor) -> Option<&'static str> {
    match flavor {
        Flavor::MariaDb { major, minor } if (major, minor) >= (10, 4) => None,
        Flavor::MariaDb { .. } => {
            Some("login locks need MariaDB 10.4 or later (mysql.global_priv)")
        }
        Flavor::MySql => {
            Some("login locks are not supported on MySQL targets yet (MariaDB 10.4+ only)")
        }
    }
}

impl Connection {
    /// The ledger's connection; when it was opened just now, interrupted steps are settled
    /// first (when the ledger's tables exist).
    async fn ledger_session(&self) -> Result<LedgerSession<'_>, MysqlError> {
        let mut session = self.ledger.session().await?;
        if session.fresh
            && status::tables_exist(session.conn(), &self.target).await?
            && let Err(e) = change::reconcile(session.conn(), &self.target).await
        {
            session.discard();
            return Err(e);
        }
        Ok(session)
    }

    /// Run `work` on the ledger's connection; a lost connection is dropped (the next use opens
    /// a new one and reconciles).
    pub(crate) async fn on_ledger<T>(
        &self,
        work: impl AsyncFnOnce(&mut mysql_async::Conn, &str) -> Result<T, MysqlError>,
    ) -> Result<T, BackendError> {
        let mut session = self.ledger_session().await?;
        let result = work(session.conn(), &self.target).await;
        if let Err(e) = &result
            && e.is_connection_lost()
        {
            session.discard();
        }
        Ok(result?)
    }

    /// `curfew lock`: record an incident lock on the user `name` (an error if it has no
    /// account); the row, and the user's ledger id.
    pub async fn create_incident_lock(
        &self,
        name: &str,
        reason: &str,
        created_by: &str,
        until: Option<jiff::Timestamp>,
    ) -> Result<Option<LockRow>, BackendError> {
        self.on_ledger(async |conn, target| {
            let ids = store::ids(conn, target, true).await?;
            let Some(id) = ids.get(name) else {
                return Ok(None);
            };
            let row =
                store::create_incident_lock(conn, target, *id, name, reason, created_by, until)
                    .await?;
            Ok(Some(row))
        })
        .await
    }

    /// `curfew unlock`: release the active incident locks on the user `name`; their ids.
    pub async fn release_incident_locks(
        &self,
        name: &str,
        by: &str,
    ) -> Result<Vec<i64>, BackendError> {
        self.on_ledger(async |conn, target| {
            let active: Vec<i64> = store::locks(
                conn,
                target,
                "released_at IS NULL AND kind = 'incident' AND user = ?",
                vec![Value::from(name)],
            )
            .await?
            .into_iter()
            .map(|l| l.id)
            .collect();
            if active.is_empty() {
                return Ok(active);
            }
            let params = active.iter().map(|id| Value::from(*id)).collect();
            let filter = format!("id IN ({})", store::placeholders(active.len()));
            store::release(conn, target, by, &filter, params).await?;
            Ok(active)
        })
        .await
    }

    /// The locks in force (every lock row with `history`), for `curfew locks`.
    pub async fn lock_rows(&self, history: bool) -> Result<Vec<LockRow>, BackendError> {
        let filter = if history {
            "1 = 1"
        } else {
            "released_at IS NULL"
        };
        self.on_ledger(async |conn, target| store::locks(conn, target, filter, Vec::new()).await)
            .await
    }
}

impl LoginLedger for Connection {
    fn own_role(&self) -> &str {
        &self.info.user
    }

    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        let target = curfew_policy::visible(target);
        if let Some(why) = unsupported_server(self.info.flavor) {
            return needs.then(|| {
                format!("target \"{target}\": {why}; its lock rules are not enforced there")
            });
        }
        let account = crate::grants::account_name(&self.info.user, &self.info.host);
        let problem = match status {
            LedgerStatus::Ready => return None,
            LedgerStatus::Missing if !needs => return None,
            LedgerStatus::Missing | LedgerStatus::NoAccess => format!(
                "target \"{target}\": no login-lock ledger curfew's account {account} can use; an administrator must run: {}",
                ledger_grants(&account).join("; ")
            ),
            LedgerStatus::NotGranted | LedgerStatus::Outdated => {
                let missing = self
                    .ledger
                    .problem
                    .lock()
                    .ok()
                    .and_then(|p| p.clone())
                    .unwrap_or_else(|| ledger_grants(&account).join("; "));
                format!(
                    "target \"{target}\": curfew's account {account} cannot change logins; an administrator must run: {missing}"
                )
            }
        };
        Some(format!("{problem}; its lock rules are not enforced there"))
    }

    /// `Missing` on a server whose accounts' state curfew cannot read yet (see
    /// `unsupported_server`).
    async fn ledger_status(&self) -> Result<LedgerStatus, BackendError> {
        if unsupported_server(self.info.flavor).is_some() {
            return Ok(LedgerStatus::Missing);
        }
        let account = crate::grants::account_name(&self.info.user, &self.info.host);
        let (status, missing) = self
            .on_ledger(async |conn, target| status::status(conn, target, &account).await)
            .await?;
        if let Ok(mut problem) = self.ledger.problem.lock() {
            *problem = (!missing.is_empty()).then(|| missing.join("; "));
        }
        Ok(status)
    }

    async fn ledger_has_work(&self) -> Result<bool, BackendError> {
        self.on_ledger(async |conn, target| {
            let count: Option<i64> = conn
                .query_first(
                    "SELECT (SELECT COUNT(*) FROM `curfew`.`login_lock` WHERE released_at IS NULL \
                       OR NOT announced_created OR NOT announced_released) \
                     + (SELECT COUNT(*) FROM `curfew`.`account_change`)",
                )
                .await
                .map_err(store::failed(target, "reading the ledger"))?;
            Ok(count.unwrap_or(0) > 0)
        })
        .await
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, BackendError> {
        self.on_ledger(async |conn, target| {
            let ids = store::ids(conn, target, true).await?;
            let accounts = store::accounts(conn, target).await?;
            Ok(accounts::roles(&accounts, &ids))
        })
        .await
    }

    async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, BackendError> {
        self.on_ledger(async |conn, target| {
            store::sync_window_locks(conn, target, rule, roles, reason).await
        })
        .await
    }

    async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, BackendError> {
        self.on_ledger(async |conn, target| {
            let (filter, params) = if rules.is_empty() {
                ("kind = 'window'".to_owned(), Vec::new())
            } else {
                (
                    format!(
                        "kind = 'window' AND (rule IS NULL OR rule NOT IN ({}))",
                        store::placeholders(rules.len())
                    ),
                    rules.iter().map(|r| Value::from(*r)).collect(),
                )
            };
            store::release(
                conn,
                target,
                "curfew agent: the rule is no longer in the policy",
                &filter,
                params,
            )
            .await
        })
        .await
    }

    async fn expire_locks(&self) -> Result<u64, BackendError> {
        self.on_ledger(async |conn, target| {
            let sql = format!(
                "UPDATE `curfew`.`login_lock` SET released_at = expires_at, released_by = 'expired' \
                 WHERE released_at IS NULL AND expires_at <= {}",
                sql::NOW_US
            );
            conn.query_drop(sql)
                .await
                .map_err(store::failed(target, "expiring locks in the ledger"))?;
            Ok(conn.affected_rows())
        })
        .await
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, BackendError> {
        self.on_ledger(async |conn, target| store::unannounced(conn, target).await)
            .await
    }

    async fn mark_announced(&self, id: i64) -> Result<(), BackendError> {
        self.on_ledger(async |conn, target| {
            conn.exec_drop(
                "UPDATE `curfew`.`login_lock` SET announced_created = 1, \
                 announced_released = (released_at IS NOT NULL) WHERE id = ?",
                (id,),
            )
            .await
            .map_err(store::failed(target, "marking a lock recorded"))
        })
        .await
    }

    async fn forget_dropped_roles(&self) -> Result<(), BackendError> {
        self.on_ledger(async |conn, target| {
            let users: std::collections::BTreeSet<String> = store::accounts(conn, target)
                .await?
                .into_iter()
                .map(|a| a.user)
                .collect();
            let gone: Vec<String> = store::active_locks(conn, target)
                .await?
                .into_iter()
                .map(|l| l.role_name)
                .chain(
                    store::changes(conn, target)
                        .await?
                        .into_iter()
                        .map(|c| c.user),
                )
                .filter(|u| !users.contains(u))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if gone.is_empty() {
                return Ok(());
            }
            let params: Vec<Value> = gone.iter().map(|u| Value::from(u.as_str())).collect();
            let list = store::placeholders(gone.len());
            store::release(
                conn,
                target,
                "curfew agent: the role was dropped",
                &format!("user IN ({list})"),
                params.clone(),
            )
            .await?;
            conn.exec_drop(
                format!("DELETE FROM `curfew`.`account_change` WHERE user IN ({list})"),
                params,
            )
            .await
            .map_err(store::failed(target, "forgetting dropped accounts"))
        })
        .await
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, BackendError> {
        self.on_ledger(async |conn, target| {
            let ids = store::ids(conn, target, false).await?;
            let accounts = store::accounts(conn, target).await?;
            let active = store::active_locks(conn, target).await?;
            let changes = store::changes(conn, target).await?;
            Ok(accounts::locked_roles(&accounts, &ids, &active, &changes))
        })
        .await
    }

    async fn disable_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        let id = *role.request();
        let fence = self.leader_fence();
        self.on_ledger(async |conn, target| {
            change::disable(conn, target, id, fence.as_ref(), fault).await
        })
        .await
    }

    async fn restore_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        let id = *role.request();
        let fence = self.leader_fence();
        self.on_ledger(async |conn, target| {
            change::restore(conn, target, id, fence.as_ref(), fault).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_locks_need_mariadb_10_4() {
        let maria = |major, minor| Flavor::MariaDb { major, minor };
        assert_eq!(unsupported_server(maria(10, 4)), None);
        assert_eq!(unsupported_server(maria(11, 4)), None);
        assert!(unsupported_server(maria(10, 3)).is_some());
        assert!(unsupported_server(Flavor::MySql).unwrap().contains("MySQL"));
    }
}
