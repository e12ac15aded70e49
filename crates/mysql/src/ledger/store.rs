//! Reading the server's accounts and the ledger's rows, and the lock rows' transitions (window
//! locks per rule, expiry, releases, announcement, incident locks). Values are bound; the
//! statements name only the ledger's own tables.

use std::collections::BTreeMap;

use curfew_backend::LockRow;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::accounts::{Account, AccountChange, ChangeAction};
use super::sql::{ACCOUNTS, LOCK_COLUMNS, NEW_IDS, NOW_US};
use crate::error::MysqlError;
use crate::row::{column, micros};

/// A failed statement on the ledger's connection.
pub(crate) fn failed(
    target: &str,
    what: &'static str,
) -> impl Fn(mysql_async::Error) -> MysqlError {
    move |e| MysqlError::query(target, what, e)
}

/// Every account (not roles, not anonymous ones) with its real locked state.
pub(crate) async fn accounts(conn: &mut Conn, target: &str) -> Result<Vec<Account>, MysqlError> {
    const WHAT: &str = "reading the accounts (mysql.global_priv)";
    let rows: Vec<Row> = conn.query(ACCOUNTS).await.map_err(failed(target, WHAT))?;
    let mut accounts = Vec::with_capacity(rows.len());
    for row in &rows {
        let user: String = column(row, 0, target, WHAT)?;
        let host: String = column(row, 1, target, WHAT)?;
        let locked: Option<String> = column(row, 2, target, WHAT)?;
        let access: Option<String> = column(row, 3, target, WHAT)?;
        let is_role: Option<String> = column(row, 4, target, WHAT)?;
        accounts.extend(Account::from_global_priv(
            user,
            host,
            locked.as_deref(),
            access.as_deref(),
            is_role.as_deref(),
        ));
    }
    Ok(accounts)
}

/// The stable id of every user name, giving one to each new user first (when `assign`).
pub(crate) async fn ids(
    conn: &mut Conn,
    target: &str,
    assign: bool,
) -> Result<BTreeMap<String, u32>, MysqlError> {
    const WHAT: &str = "reading the ledger's account ids";
    if assign {
        conn.query_drop(NEW_IDS)
            .await
            .map_err(failed(target, WHAT))?;
    }
    // Rows, not typed tuples: the driver panics on a value of another type, and these
    // tables are data (decoded fallibly like the server's).
    let rows: Vec<Row> = conn
        .query("SELECT id, user FROM `curfew`.`account`")
        .await
        .map_err(failed(target, WHAT))?;
    rows.iter()
        .map(|row| {
            Ok((
                column::<String>(row, 1, target, WHAT)?,
                column::<u32>(row, 0, target, WHAT)?,
            ))
        })
        .collect()
}

/// The user name behind a ledger id.
pub(crate) async fn user_of(
    conn: &mut Conn,
    target: &str,
    id: u32,
) -> Result<Option<String>, MysqlError> {
    const WHAT: &str = "reading the ledger's account ids";
    let row: Option<Row> = conn
        .exec_first("SELECT user FROM `curfew`.`account` WHERE id = ?", (id,))
        .await
        .map_err(failed(target, WHAT))?;
    row.map(|row| column(&row, 0, target, WHAT)).transpose()
}

/// What curfew recorded about each account.
pub(crate) async fn changes(
    conn: &mut Conn,
    target: &str,
) -> Result<Vec<AccountChange>, MysqlError> {
    const WHAT: &str = "reading the ledger's account changes";
    let rows: Vec<Row> = conn
        .query("SELECT user, host, action, applied, was_locked FROM `curfew`.`account_change`")
        .await
        .map_err(failed(target, WHAT))?;
    rows.iter()
        .map(|row| {
            let action: String = column(row, 2, target, WHAT)?;
            let action = ChangeAction::parse(&action)
                .ok_or_else(|| MysqlError::decode(target, WHAT, format!("action {action:?}")))?;
            Ok(AccountChange {
                user: column(row, 0, target, WHAT)?,
                host: column(row, 1, target, WHAT)?,
                action,
                applied: flag(row, 3, target, WHAT)?,
                was_locked: flag(row, 4, target, WHAT)?,
            })
        })
        .collect()
}

/// A `BOOL` column: 0 or 1, anything else (the type accepts any small integer) an error.
pub(crate) fn flag(
    row: &Row,
    index: usize,
    target: &str,
    what: &'static str,
) -> Result<bool, MysqlError> {
    match column::<i64>(row, index, target, what)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(MysqlError::decode(
            target,
            what,
            format!("column {index} holds {other}, not a boolean"),
        )),
    }
}

fn lock_row(row: &Row, target: &str) -> Result<LockRow, MysqlError> {
    const WHAT: &str = "reading the ledger's locks";
    let time = |i: usize| -> Result<Option<jiff::Timestamp>, MysqlError> {
        column::<Option<i64>>(row, i, target, WHAT)?
            .map(|us| micros(us, target, WHAT))
            .transpose()
    };
    Ok(LockRow {
        id: column(row, 0, target, WHAT)?,
        role_oid: column(row, 1, target, WHAT)?,
        role_name: column(row, 2, target, WHAT)?,
        kind: column(row, 3, target, WHAT)?,
        rule: column(row, 4, target, WHAT)?,
        reason: column(row, 5, target, WHAT)?,
        created_by: column(row, 6, target, WHAT)?,
        created_at: micros(column(row, 7, target, WHAT)?, target, WHAT)?,
        expires_at: time(8)?,
        released_at: time(9)?,
        released_by: column(row, 10, target, WHAT)?,
    })
}

/// Lock rows matching `filter` (SQL over the ledger's columns, values bound from `params`).
pub(crate) async fn locks(
    conn: &mut Conn,
    target: &str,
    filter: &str,
    params: Vec<Value>,
) -> Result<Vec<LockRow>, MysqlError> {
    let sql = format!(
        "SELECT {LOCK_COLUMNS}, announced_created FROM `curfew`.`login_lock` WHERE {filter} ORDER BY id"
    );
    let rows: Vec<Row> = conn
        .exec(sql, params)
        .await
        .map_err(failed(target, "reading the ledger's locks"))?;
    rows.iter().map(|r| lock_row(r, target)).collect()
}

/// The active locks.
pub(crate) async fn active_locks(
    conn: &mut Conn,
    target: &str,
) -> Result<Vec<LockRow>, MysqlError> {
    locks(conn, target, "released_at IS NULL", Vec::new()).await
}

/// Locks not yet recorded in the audit log, and whether their creation was.
pub(crate) async fn unannounced(
    conn: &mut Conn,
    target: &str,
) -> Result<Vec<(LockRow, bool)>, MysqlError> {
    const WHAT: &str = "reading the ledger's locks";
    let sql = format!(
        "SELECT {LOCK_COLUMNS}, announced_created FROM `curfew`.`login_lock` \
         WHERE NOT announced_created OR (released_at IS NOT NULL AND NOT announced_released) \
         ORDER BY id"
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(failed(target, WHAT))?;
    rows.iter()
        .map(|r| Ok((lock_row(r, target)?, column::<bool>(r, 11, target, WHAT)?)))
        .collect()
}

/// Release the active locks `filter` picks (values bound from `params`), by `by`.
pub(crate) async fn release(
    conn: &mut Conn,
    target: &str,
    by: &str,
    filter: &str,
    mut params: Vec<Value>,
) -> Result<u64, MysqlError> {
    let sql = format!(
        "UPDATE `curfew`.`login_lock` SET released_at = {NOW_US}, released_by = ? \
         WHERE released_at IS NULL AND ({filter})"
    );
    params.insert(0, Value::from(by));
    conn.exec_drop(sql, params)
        .await
        .map_err(failed(target, "releasing locks in the ledger"))?;
    Ok(conn.affected_rows())
}

/// `?, ?, ...` for `n` values (at least one: an empty list is the caller's case).
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// Make `rule`'s active window locks exactly these users (id, name).
pub(crate) async fn sync_window_locks(
    conn: &mut Conn,
    target: &str,
    rule: &str,
    roles: &[(u32, String)],
    reason: &str,
) -> Result<u64, MysqlError> {
    let mut params: Vec<Value> = vec![Value::from(rule)];
    let keep = if roles.is_empty() {
        String::new()
    } else {
        params.extend(roles.iter().map(|(id, _)| Value::from(*id)));
        format!(" AND account_id NOT IN ({})", placeholders(roles.len()))
    };
    let mut changed = release(
        conn,
        target,
        "curfew agent: the window opened or the role left the rule's scope",
        &format!("kind = 'window' AND rule = ?{keep}"),
        params,
    )
    .await?;
    for (id, name) in roles {
        let sql = format!(
            "INSERT INTO `curfew`.`login_lock` (account_id, user, kind, rule, reason, created_by, created_at) \
             SELECT ?, ?, 'window', ?, ?, ?, {NOW_US} FROM DUAL WHERE NOT EXISTS (\
               SELECT 1 FROM `curfew`.`login_lock` WHERE released_at IS NULL \
               AND kind = 'window' AND rule = ? AND account_id = ?)"
        );
        let created_by = format!("curfew agent (rule {rule})");
        conn.exec_drop(sql, (id, name, rule, reason, created_by, rule, id))
            .await
            .map_err(failed(target, "recording window locks in the ledger"))?;
        changed += conn.affected_rows();
    }
    Ok(changed)
}

/// Record an incident lock on a user (`curfew lock`); its row.
pub(crate) async fn create_incident_lock(
    conn: &mut Conn,
    target: &str,
    id: u32,
    user: &str,
    reason: &str,
    created_by: &str,
    until: Option<jiff::Timestamp>,
) -> Result<LockRow, MysqlError> {
    let sql = format!(
        "INSERT INTO `curfew`.`login_lock` (account_id, user, kind, reason, created_by, created_at, expires_at) \
         VALUES (?, ?, 'incident', ?, ?, {NOW_US}, ?)"
    );
    let until = until.map(|t| t.as_microsecond());
    conn.exec_drop(sql, (id, user, reason, created_by, until))
        .await
        .map_err(failed(target, "recording an incident lock"))?;
    let row_id = conn.last_insert_id().unwrap_or(0);
    locks(conn, target, "id = ?", vec![Value::from(row_id)])
        .await?
        .pop()
        .ok_or_else(|| MysqlError::decode(target, "recording an incident lock", "row not found"))
}
