//! Where the ledger stands for curfew's account: the `curfew` database, its tables (created
//! here at first use), and the privileges login changes need, each missing one named with the
//! exact statement an administrator runs.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::sql::{COUNT_TABLES, CREATE_TABLES, HAS_DATABASE};
use super::store::failed;
use crate::error::MysqlError;
use curfew_backend::LedgerStatus;

/// MariaDB's "access denied" errors (to a database, a table, a column).
const ACCESS_DENIED: [u16; 4] = [1044, 1142, 1143, 1227];

/// MariaDB's "table (or view) doesn't exist".
const NO_SUCH_TABLE: u16 = 1146;

/// Every statement an administrator runs so that `account` (as `account_name` quotes it) keeps
/// login locks: the ledger's database, tables, view and procedure (`curfew init` creates them
/// and grants each: a database-wide `ALL` would also let the account drop the audit chain's
/// anchors), reading the accounts' state through `curfew.account_state` and locking them
/// through `curfew.set_account_lock` (never `CREATE USER`, with which it could change any
/// account's password).
pub fn ledger_grants(account: &str) -> Vec<String> {
    vec![
        "CREATE DATABASE IF NOT EXISTS curfew".to_owned(),
        format!(
            "curfew init --admin-user ADMIN (the ledger's tables, the view curfew.account_state and the procedure curfew.set_account_lock, each granted to {account}; not ALL ON curfew.*, which would let it drop the audit chain's anchors)"
        ),
        format!("GRANT SELECT ON `curfew`.`account_state` TO {account}"),
        format!("GRANT EXECUTE ON PROCEDURE `curfew`.`set_account_lock` TO {account}"),
    ]
}

/// Whether the ledger's three tables exist.
pub(crate) async fn tables_exist(conn: &mut Conn, target: &str) -> Result<bool, MysqlError> {
    let count: Option<i64> = conn
        .query_first(COUNT_TABLES)
        .await
        .map_err(failed(target, "reading the ledger's tables"))?;
    Ok(count == Some(3))
}

fn denied(e: &MysqlError) -> bool {
    e.server_code().is_some_and(|c| ACCESS_DENIED.contains(&c))
}

/// The ledger's status and the statements missing for login changes.
pub(crate) async fn status(
    conn: &mut Conn,
    target: &str,
    account: &str,
) -> Result<(LedgerStatus, Vec<String>), MysqlError> {
    let grants = ledger_grants(account);
    let has_db: Option<i64> = conn
        .query_first(HAS_DATABASE)
        .await
        .map_err(failed(target, "looking for the ledger's database"))?;
    if has_db != Some(1) {
        return Ok((LedgerStatus::Missing, grants));
    }
    if !tables_exist(conn, target).await? {
        for statement in CREATE_TABLES {
            if let Err(e) = conn.query_drop(statement).await {
                let e = failed(target, "creating the ledger's tables")(e);
                if denied(&e) {
                    return Ok((LedgerStatus::NoAccess, grants[1..2].to_vec()));
                }
                return Err(e);
            }
        }
    }
    let mut missing = Vec::new();
    if let Err(e) = conn
        .query_drop("SELECT 1 FROM `curfew`.`account_state` LIMIT 0")
        .await
    {
        let e = failed(target, "reading curfew.account_state")(e);
        match e.server_code() {
            // No such view: installed by an older `curfew init`.
            Some(NO_SUCH_TABLE) => missing.push(grants[1].clone()),
            _ if denied(&e) => missing.push(grants[2].clone()),
            _ => return Err(e),
        }
    }
    // A procedure shows in information_schema.ROUTINES only to an account that may run it.
    let executable: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = 'curfew' AND ROUTINE_NAME = 'set_account_lock' \
             AND ROUTINE_TYPE = 'PROCEDURE'",
        )
        .await
        .map_err(failed(target, "looking for curfew.set_account_lock"))?;
    if executable != Some(1) {
        missing.push(grants[3].clone());
    }
    let status = match missing.is_empty() {
        true => LedgerStatus::Ready,
        false => LedgerStatus::NotGranted,
    };
    Ok((status, missing))
}
