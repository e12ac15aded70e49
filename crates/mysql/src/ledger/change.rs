//! Changing an account's login. `ALTER USER ... ACCOUNT LOCK` commits by itself, so it cannot
//! share a transaction with its ledger row: each account's change is an intent row (committed),
//! then the `ALTER USER`, then the row marked applied (or removed). A crash between two steps
//! leaves an intent, which [`reconcile`] settles from the server's real state at the next use.
//! An account found locked before curfew touched it is recorded as such and never unlocked.

use curfew_backend::{FaultHook, LoginChange};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::accounts::{Account, AccountChange, ChangeAction, Reconcile};
use super::store::{accounts, active_locks, changes, failed, user_of};
use crate::error::MysqlError;
use crate::leader_lock::{Leadership, fence_condition};

const WHAT: &str = "recording a login change in the ledger";

async fn record(
    conn: &mut Conn,
    target: &str,
    account: &Account,
    action: ChangeAction,
    applied: bool,
    was_locked: bool,
) -> Result<(), MysqlError> {
    conn.exec_drop(
        "REPLACE INTO `curfew`.`account_change` (user, host, action, applied, was_locked) \
         VALUES (?, ?, ?, ?, ?)",
        (
            &account.user,
            &account.host,
            action.word(),
            applied,
            was_locked,
        ),
    )
    .await
    .map_err(failed(target, WHAT))
}

async fn forget(conn: &mut Conn, target: &str, user: &str, host: &str) -> Result<(), MysqlError> {
    conn.exec_drop(
        "DELETE FROM `curfew`.`account_change` WHERE user = ? AND host = ?",
        (user, host),
    )
    .await
    .map_err(failed(target, WHAT))
}

/// Lock or unlock one account through `curfew.set_account_lock` (the administrator's
/// procedure: curfew's account holds no `CREATE USER`), its names bound; with `fence`, only
/// while that leadership still holds the leader lock on the same boot of the server, checked
/// by the server immediately before (an agent that lost it while paused must not lock or
/// unlock anyone: the new leader does).
async fn alter(
    conn: &mut Conn,
    target: &str,
    account: &Account,
    lock: bool,
    fence: Option<&Leadership>,
) -> Result<(), MysqlError> {
    const WHAT: &str = "changing an account's login (curfew.set_account_lock)";
    let Some(fence) = fence else {
        return conn
            .exec_drop(
                "CALL `curfew`.`set_account_lock`(?, ?, ?)",
                (&account.user, &account.host, lock),
            )
            .await
            .map_err(failed(target, WHAT));
    };
    // A compound statement takes no parameters: the names go in session variables first.
    conn.exec_drop(
        "SET @curfew_user = ?, @curfew_host = ?",
        (&account.user, &account.host),
    )
    .await
    .map_err(failed(target, WHAT))?;
    let verdict: Option<String> = conn
        .query_first(fenced_call_sql(lock, fence))
        .await
        .map_err(failed(target, WHAT))?;
    match verdict.as_deref() {
        Some("A") => Ok(()),
        Some("L") => Err(MysqlError::NotLeading {
            target: target.to_owned(),
        }),
        _ => Err(MysqlError::decode(
            target,
            WHAT,
            "no verdict from the fenced change",
        )),
    }
}

/// An account curfew locked was renamed (from host `from` to `to`): the procedure that alone
/// may unlock it is told, so it will (`curfew.move_account_lock` checks the claim).
async fn move_lock(
    conn: &mut Conn,
    target: &str,
    user: &str,
    from: &str,
    to: &str,
) -> Result<(), MysqlError> {
    conn.exec_drop(
        "CALL `curfew`.`move_account_lock`(?, ?, ?)",
        (user, from, to),
    )
    .await
    .map_err(failed(
        target,
        "moving a renamed account's lock (curfew.move_account_lock)",
    ))
}

/// The change inside a compound statement that runs it only while `fence` holds: `A` when
/// it ran, `L` when the fence failed.
fn fenced_call_sql(lock: bool, fence: &Leadership) -> String {
    format!(
        "BEGIN NOT ATOMIC \
         DECLARE boot_us BIGINT DEFAULT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) \
         - 1000000 * (SELECT CAST(VARIABLE_VALUE AS SIGNED) \
         FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'); \
         IF {} THEN CALL `curfew`.`set_account_lock`(@curfew_user, @curfew_host, {}); \
         SELECT 'A'; ELSE SELECT 'L'; END IF; END",
        fence_condition(fence),
        if lock { "TRUE" } else { "FALSE" }
    )
}

/// Settle every interrupted step (an intent without its outcome) from the server's state:
/// a lock intent on an account now locked happened; on one still unlocked it did not (the
/// agent locks it again while a lock is active); an unlock intent likewise. Returns how many
/// were settled.
pub(crate) async fn reconcile(conn: &mut Conn, target: &str) -> Result<u64, MysqlError> {
    let pending: Vec<AccountChange> = changes(conn, target)
        .await?
        .into_iter()
        .filter(|c| !c.applied)
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    let now = accounts(conn, target).await?;
    for change in &pending {
        let locked_now = now
            .iter()
            .find(|a| a.user == change.user && a.host == change.host)
            .map(|a| a.locked);
        let account = Account {
            user: change.user.clone(),
            host: change.host.clone(),
            locked: locked_now.unwrap_or(false),
            superuser: false,
        };
        match (
            super::accounts::reconcile(change, locked_now),
            change.action,
        ) {
            (Reconcile::Gone, _)
            | (Reconcile::DidNot, ChangeAction::Lock)
            | (Reconcile::Happened, ChangeAction::Unlock) => {
                forget(conn, target, &change.user, &change.host).await?;
            }
            (Reconcile::Happened, ChangeAction::Lock) => {
                record(conn, target, &account, ChangeAction::Lock, true, false).await?;
            }
            (Reconcile::DidNot, ChangeAction::Unlock) => {
                record(conn, target, &account, ChangeAction::Lock, true, false).await?;
            }
        }
    }
    Ok(pending.len() as u64)
}

/// The user's accounts and whether it has an active lock; `None`: no such id or no account.
async fn state(
    conn: &mut Conn,
    target: &str,
    id: u32,
) -> Result<Option<(String, Vec<Account>, bool)>, MysqlError> {
    let Some(user) = user_of(conn, target, id).await? else {
        return Ok(None);
    };
    let mine: Vec<Account> = accounts(conn, target)
        .await?
        .into_iter()
        .filter(|a| a.user == user)
        .collect();
    if mine.is_empty() {
        conn.exec_drop(
            "DELETE FROM `curfew`.`account_change` WHERE user = ?",
            (&user,),
        )
        .await
        .map_err(failed(target, WHAT))?;
        return Ok(None);
    }
    let locked = active_locks(conn, target)
        .await?
        .iter()
        .any(|l| l.role_oid == id);
    Ok(Some((user, mine, locked)))
}

/// Lock every unlocked account of the user `id`, if it has an active lock. Fault points:
/// `lock.after-intent`, `lock.after-alter`, `lock.after-ledger` (per account).
pub(crate) async fn disable(
    conn: &mut Conn,
    target: &str,
    id: u32,
    fence: Option<&Leadership>,
    fault: FaultHook<'_>,
) -> Result<LoginChange, MysqlError> {
    reconcile(conn, target).await?;
    let Some((user, mine, locked)) = state(conn, target, id).await? else {
        return Ok(LoginChange::RoleGone);
    };
    if !locked {
        return Ok(LoginChange::NotNeeded);
    }
    let recorded: Vec<AccountChange> = changes(conn, target)
        .await?
        .into_iter()
        .filter(|c| c.user == user)
        .collect();
    let ours_before = recorded.iter().any(|c| !c.was_locked);
    let mut renamed = renamed(&recorded, &mine).into_iter();
    let mut changed = false;
    for account in &mine {
        let row = recorded.iter().find(|c| c.host == account.host);
        if account.locked {
            if row.is_none() {
                match renamed.next() {
                    // The account curfew locked, renamed (`RENAME USER` keeps the lock):
                    // still curfew's to unlock.
                    Some((gone, _)) => {
                        move_lock(conn, target, &user, &gone, &account.host).await?;
                        record(conn, target, account, ChangeAction::Lock, true, false).await?;
                        forget(conn, target, &user, &gone).await?;
                    }
                    // Locked by someone else before curfew: say so, so it is never unlocked.
                    None => record(conn, target, account, ChangeAction::Lock, true, true).await?,
                }
            }
            continue;
        }
        record(conn, target, account, ChangeAction::Lock, false, false).await?;
        fault("lock.after-intent");
        alter(conn, target, account, true, fence).await?;
        fault("lock.after-alter");
        record(conn, target, account, ChangeAction::Lock, true, false).await?;
        fault("lock.after-ledger");
        changed = true;
    }
    Ok(match (changed, ours_before) {
        (false, _) => LoginChange::NotNeeded,
        (true, false) => LoginChange::Disabled,
        (true, true) => LoginChange::DriftCorrected,
    })
}

/// Unlock the accounts curfew locked of the user `id`, once no lock remains; accounts that
/// were locked before are left locked and forgotten. Fault points: `restore.after-intent`,
/// `restore.after-alter`, `restore.after-ledger` (per account).
pub(crate) async fn restore(
    conn: &mut Conn,
    target: &str,
    id: u32,
    fence: Option<&Leadership>,
    fault: FaultHook<'_>,
) -> Result<LoginChange, MysqlError> {
    reconcile(conn, target).await?;
    let Some((user, mine, locked)) = state(conn, target, id).await? else {
        return Ok(LoginChange::RoleGone);
    };
    if locked {
        return Ok(LoginChange::NotNeeded);
    }
    let recorded: Vec<AccountChange> = changes(conn, target)
        .await?
        .into_iter()
        .filter(|c| c.user == user)
        .collect();
    let renamed = renamed(&recorded, &mine);
    let mut restored = false;
    for change in &recorded {
        let now = mine.iter().find(|a| a.host == change.host).or_else(|| {
            renamed
                .iter()
                .find(|(gone, _)| *gone == change.host)
                .map(|(_, account)| *account)
        });
        let Some(account) = now else {
            forget(conn, target, &change.user, &change.host).await?;
            continue;
        };
        if change.was_locked {
            forget(conn, target, &change.user, &change.host).await?;
            continue;
        }
        if account.host != change.host {
            move_lock(conn, target, &change.user, &change.host, &account.host).await?;
        }
        record(conn, target, account, ChangeAction::Unlock, false, false).await?;
        fault("restore.after-intent");
        alter(conn, target, account, false, fence).await?;
        fault("restore.after-alter");
        forget(conn, target, &change.user, &account.host).await?;
        if account.host != change.host {
            forget(conn, target, &change.user, &change.host).await?;
        }
        fault("restore.after-ledger");
        restored = true;
    }
    Ok(if restored {
        LoginChange::Restored
    } else {
        LoginChange::NotNeeded
    })
}

/// Accounts curfew locked that were renamed since (`RENAME USER` moves the lock with the
/// account): each of curfew's applied lock rows whose host no longer exists, paired in order
/// with a locked account of the same user that has no row (the host it had, the account now).
/// An account locked by someone else while one of curfew's was dropped would be paired too:
/// the server cannot tell the two apart (docs/mariadb.md).
fn renamed<'a>(recorded: &[AccountChange], mine: &'a [Account]) -> Vec<(String, &'a Account)> {
    let gone = recorded.iter().filter(|c| {
        c.applied
            && !c.was_locked
            && c.action == ChangeAction::Lock
            && !mine.iter().any(|a| a.host == c.host)
    });
    let unclaimed = mine
        .iter()
        .filter(|a| a.locked && !recorded.iter().any(|c| c.host == a.host));
    gone.zip(unclaimed)
        .map(|(change, account)| (change.host.clone(), account))
        .collect()
}
