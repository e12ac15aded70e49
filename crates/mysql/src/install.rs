//! What `curfew init` installs on a MariaDB/MySQL target, as an administrator: the `curfew`
//! database, the login-lock ledger's tables, the anchor store (`crate::anchor`), and the least
//! grants curfew's account needs, each account and identifier quoted. Every statement is
//! idempotent, so init can run again after an upgrade.
//!
//! curfew's account gets table grants on `curfew`, never the database's: a database-wide
//! `ALL` would include `DROP` and `TRIGGER`, with which it could empty the anchor store.

use mysql_async::prelude::Queryable;

use crate::anchor::anchor_install_sql;
use crate::connect::Connection;
use crate::error::MysqlError;
use crate::grants::{Flavor, account_name};
use crate::ledger::sql::{
    ADOPT_LOCKED_ACCOUNTS, CREATE_ACCOUNT_STATE, CREATE_CANARY_TABLE, CREATE_CREATE_CANARY,
    CREATE_DROP_CANARY, CREATE_LOCKED_ACCOUNT_TABLE, CREATE_MOVE_ACCOUNT_LOCK,
    CREATE_SET_ACCOUNT_LOCK, CREATE_TABLES,
};

/// Every statement that installs curfew for `account` (quoted as [`account_name`] quotes it)
/// on a server of `flavor`, in order. Login locks (the ledger and its grants) only where they
/// are kept: MariaDB 10.4+.
pub fn install_sql(account: &str, flavor: Flavor) -> Vec<String> {
    let mut sql = anchor_install_sql(account);
    sql.push(format!(
        "GRANT PROCESS, {} ON *.* TO {account}",
        flavor.kill_privilege()
    ));
    sql.push(format!(
        "GRANT SELECT ON `performance_schema`.`session_connect_attrs` TO {account}"
    ));
    if keeps_login_locks(flavor) {
        sql.extend(CREATE_TABLES.iter().map(|s| (*s).to_owned()));
        // The accounts' state and the one account change curfew makes, with the
        // administrator's rights: curfew's account gets neither `CREATE USER` nor `SELECT` on
        // `mysql.global_priv` (see `ledger::sql`).
        sql.push(CREATE_ACCOUNT_STATE.to_owned());
        sql.push(CREATE_LOCKED_ACCOUNT_TABLE.to_owned());
        sql.push(ADOPT_LOCKED_ACCOUNTS.to_owned());
        sql.push(CREATE_SET_ACCOUNT_LOCK.to_owned());
        sql.push(CREATE_MOVE_ACCOUNT_LOCK.to_owned());
        // `curfew verify`'s canary accounts, likewise.
        sql.push(CREATE_CANARY_TABLE.to_owned());
        sql.push(CREATE_CREATE_CANARY.to_owned());
        sql.push(CREATE_DROP_CANARY.to_owned());
        sql.extend([
            format!("GRANT SELECT, INSERT ON `curfew`.`account` TO {account}"),
            format!("GRANT SELECT, INSERT, UPDATE ON `curfew`.`login_lock` TO {account}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON `curfew`.`account_change` TO {account}"
            ),
            format!("GRANT SELECT ON `curfew`.`account_state` TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE `curfew`.`set_account_lock` TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE `curfew`.`move_account_lock` TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE `curfew`.`create_canary` TO {account}"),
            format!("GRANT EXECUTE ON PROCEDURE `curfew`.`drop_canary` TO {account}"),
        ]);
    }
    sql
}

/// Whether curfew keeps login locks on this server (accounts in `mysql.global_priv`: MariaDB
/// 10.4+).
pub fn keeps_login_locks(flavor: Flavor) -> bool {
    matches!(flavor, Flavor::MariaDb { major, minor } if (major, minor) >= (10, 4))
}

/// What `curfew init` did on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The accounts granted (every account with the agent's user name), quoted.
    pub accounts: Vec<String>,
    /// The statements run, in order (the same for each account, quoted for the first).
    pub statements: Vec<String>,
    /// Whether login locks' ledger was installed (MariaDB 10.4+).
    pub login_locks: bool,
}

impl Connection {
    /// Installs curfew for every account named `agent_user` (as [`install_sql`] says). An
    /// administrator's connection. No account of that name is an error: the account is the
    /// administrator's to create, with its password.
    pub async fn install_curfew(&mut self, agent_user: &str) -> Result<Installed, MysqlError> {
        let what = "installing curfew (curfew init)";
        let hosts: Vec<String> = self
            .conn
            .exec(
                "SELECT CONVERT(Host USING utf8mb4) FROM mysql.user WHERE User = ? ORDER BY Host",
                (agent_user,),
            )
            .await
            .map_err(|e| MysqlError::query(&self.target, what, e))?;
        if hosts.is_empty() {
            return Err(MysqlError::NoSuchAccount {
                target: self.target.clone(),
                user: crate::quote_identifier(agent_user),
            });
        }
        let accounts: Vec<String> = hosts.iter().map(|h| account_name(agent_user, h)).collect();
        let mut statements = Vec::new();
        for (i, account) in accounts.iter().enumerate() {
            let sql = install_sql(account, self.info.flavor);
            for statement in &sql {
                self.conn
                    .query_drop(statement)
                    .await
                    .map_err(|e| MysqlError::query(&self.target, what, e))?;
            }
            if i == 0 {
                statements = sql;
            }
        }
        Ok(Installed {
            accounts,
            statements,
            login_locks: keeps_login_locks(self.info.flavor),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_quoted_in_every_grant_and_no_grant_is_database_wide() {
        let account = account_name("o'b`q", "10.0.%");
        let sql = install_sql(
            &account,
            Flavor::MariaDb {
                major: 10,
                minor: 11,
            },
        );
        let grants: Vec<&String> = sql.iter().filter(|s| s.starts_with("GRANT ")).collect();
        assert_eq!(grants.len(), 11, "{sql:#?}");
        assert!(
            !sql.iter()
                .any(|s| s.contains("CREATE USER ON") || s.contains("GRANT SELECT ON `mysql`")),
            "curfew's account is granted what would let it change any account: {sql:#?}"
        );
        for grant in grants {
            assert!(grant.ends_with(" TO `o'b``q`@`10.0.%`"), "{grant}");
            assert!(
                !grant.contains("`curfew`.*") && !grant.contains("ALL"),
                "{grant}"
            );
        }
        assert!(
            sql.iter()
                .any(|s| s == "GRANT SELECT, INSERT ON `curfew`.`anchor` TO `o'b``q`@`10.0.%`")
        );
        assert!(
            sql.iter()
                .any(|s| s.starts_with("GRANT PROCESS, CONNECTION ADMIN ON *.*"))
        );
    }

    #[test]
    fn login_locks_are_installed_where_they_are_kept() {
        for (flavor, locks) in [
            (
                Flavor::MariaDb {
                    major: 10,
                    minor: 4,
                },
                true,
            ),
            (
                Flavor::MariaDb {
                    major: 11,
                    minor: 0,
                },
                true,
            ),
            (
                Flavor::MariaDb {
                    major: 10,
                    minor: 3,
                },
                false,
            ),
            (Flavor::MySql, false),
        ] {
            let sql = install_sql("`a`@`%`", flavor);
            assert_eq!(
                sql.iter().any(|s| s.contains("`set_account_lock`")),
                locks,
                "{flavor:?}"
            );
            assert!(sql.iter().any(|s| s.contains("`curfew`.`anchor`")));
        }
        assert!(
            install_sql("`a`@`%`", Flavor::MySql)[..]
                .iter()
                .any(|s| s.contains("CONNECTION_ADMIN"))
        );
    }
}
