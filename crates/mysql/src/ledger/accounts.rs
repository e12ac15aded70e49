//! Accounts as login locks see them, without I/O: a policy's role name is a MariaDB user name,
//! and locking it means every account (`'user'@'host'`) with that name. Each account's real
//! locked state is the server's (`mysql.global_priv`); what curfew did to it is the ledger's
//! `account_change` rows.

use std::collections::BTreeMap;

use curfew_backend::{LockRow, LockedRole, RoleInfo};

use super::sql::ADMIN_ACL;

/// One account on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name (the policy's role).
    pub user: String,
    /// The host part.
    pub host: String,
    /// `ACCOUNT LOCK` is in force.
    pub locked: bool,
    /// An account administrator: holds `SUPER`, `GRANT OPTION` or `CREATE USER` on `*.*`
    /// (curfew does not lock such accounts, as it does not lock PostgreSQL's superusers; its
    /// procedure `curfew.set_account_lock` refuses them too).
    pub superuser: bool,
}

impl Account {
    /// From `mysql.global_priv`'s `account_locked`, `access` and `is_role` (as `JSON_VALUE`
    /// gives them: text or NULL); `None` for a role, `PUBLIC` or an anonymous account, which
    /// no policy names and no login uses.
    pub fn from_global_priv(
        user: String,
        host: String,
        account_locked: Option<&str>,
        access: Option<&str>,
        is_role: Option<&str>,
    ) -> Option<Account> {
        let truthy = |v: Option<&str>| matches!(v, Some("1" | "true"));
        if user.is_empty() || truthy(is_role) {
            return None;
        }
        let access: u64 = access.and_then(|a| a.parse().ok()).unwrap_or(0);
        Some(Account {
            user,
            host,
            locked: truthy(account_locked),
            superuser: access & ADMIN_ACL != 0,
        })
    }
}

/// What curfew recorded about one account (a row of `curfew.account_change`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    /// The user name.
    pub user: String,
    /// The host part.
    pub host: String,
    /// `lock` or `unlock`.
    pub action: ChangeAction,
    /// Whether the `ALTER USER` is known to have been made (`false`: an intent, which may or
    /// may not have been applied; reconciled from the server's state).
    pub applied: bool,
    /// The account was locked before curfew touched it: curfew never unlocks it.
    pub was_locked: bool,
}

/// Which way an account's login is being changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// `ACCOUNT LOCK`.
    Lock,
    /// `ACCOUNT UNLOCK`.
    Unlock,
}

impl ChangeAction {
    /// As stored.
    pub fn word(self) -> &'static str {
        match self {
            ChangeAction::Lock => "lock",
            ChangeAction::Unlock => "unlock",
        }
    }

    /// As stored; `None` for anything else.
    pub fn parse(word: &str) -> Option<ChangeAction> {
        match word {
            "lock" => Some(ChangeAction::Lock),
            "unlock" => Some(ChangeAction::Unlock),
            _ => None,
        }
    }
}

/// What to do about an interrupted step, given the account's state now (`None`: it is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// The step happened: record it as done (a lock: applied; an unlock: row removed).
    Happened,
    /// The step did not happen: undo the intent (a lock: row removed; an unlock: back to an
    /// applied lock, tried again when no lock remains).
    DidNot,
    /// The account is gone: forget it.
    Gone,
}

/// Whether an interrupted step (an intent without its outcome) happened, from the account's
/// real state: a lock intent is recorded only for an unlocked account, so a locked one now
/// means the `ALTER USER` ran; an unlock intent likewise.
pub fn reconcile(change: &AccountChange, locked_now: Option<bool>) -> Reconcile {
    match (change.action, locked_now) {
        (_, None) => Reconcile::Gone,
        (ChangeAction::Lock, Some(true)) | (ChangeAction::Unlock, Some(false)) => {
            Reconcile::Happened
        }
        (ChangeAction::Lock, Some(false)) | (ChangeAction::Unlock, Some(true)) => Reconcile::DidNot,
    }
}

/// Every user name with its accounts as one role: it can log in while any of its accounts is
/// unlocked; it is a superuser when any of them is an account administrator ([`ADMIN_ACL`]). `ids`: the ledger's stable id
/// of each user name (users without one are left out).
pub fn roles(accounts: &[Account], ids: &BTreeMap<String, u32>) -> Vec<RoleInfo> {
    let mut by_user: BTreeMap<&str, RoleInfo> = BTreeMap::new();
    for account in accounts {
        let Some(oid) = ids.get(&account.user) else {
            continue;
        };
        let role = by_user.entry(&account.user).or_insert_with(|| RoleInfo {
            oid: *oid,
            name: account.user.clone(),
            can_login: false,
            superuser: false,
            // MariaDB roles are not read (see docs/mariadb.md).
            member_of: Vec::new(),
        });
        role.can_login |= !account.locked;
        role.superuser |= account.superuser;
    }
    by_user.into_values().collect()
}

/// The users that have active locks or accounts curfew locked (as `LockedRole`s): the
/// ledger's view the agent reconciles logins from. A user with no account left is not listed
/// (its rows are forgotten by `forget_dropped_roles`).
pub fn locked_roles(
    accounts: &[Account],
    ids: &BTreeMap<String, u32>,
    active: &[LockRow],
    changes: &[AccountChange],
) -> Vec<LockedRole> {
    roles(accounts, ids)
        .into_iter()
        .filter_map(|role| {
            let locks: Vec<LockRow> = active
                .iter()
                .filter(|l| l.role_oid == role.oid)
                .cloned()
                .collect();
            let disabled_by_curfew = changes.iter().any(|c| c.user == role.name && !c.was_locked);
            (!locks.is_empty() || disabled_by_curfew).then_some(LockedRole {
                oid: role.oid,
                name: role.name,
                can_login: role.can_login,
                disabled_by_curfew,
                locks,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(user: &str, host: &str, locked: bool) -> Account {
        Account {
            user: user.to_owned(),
            host: host.to_owned(),
            locked,
            superuser: false,
        }
    }

    #[test]
    fn roles_and_anonymous_accounts_are_not_users() {
        let a =
            |u: &str, l, acc, r| Account::from_global_priv(u.to_owned(), "%".to_owned(), l, acc, r);
        assert_eq!(a("", None, None, None), None);
        assert_eq!(a("r1", None, Some("0"), Some("1")), None);
        let root = a("root", None, Some("18446744073709551615"), None).unwrap();
        assert!(root.superuser && !root.locked);
        let kim = a("kim", Some("1"), Some("0"), None).unwrap();
        assert!(kim.locked && !kim.superuser);
        assert!(a("kim", Some("true"), None, None).unwrap().locked);
    }

    #[test]
    fn a_user_logs_in_while_any_of_its_accounts_is_unlocked() {
        let ids = BTreeMap::from([("kim".to_owned(), 1), ("o'b\\".to_owned(), 2)]);
        let accounts = vec![
            account("kim", "h1", true),
            account("kim", "h2", false),
            account("o'b\\", "%", true),
            account("nobody-knows", "%", false),
        ];
        let roles = roles(&accounts, &ids);
        assert_eq!(roles.len(), 2);
        assert!(roles[0].can_login && roles[0].name == "kim");
        assert!(!roles[1].can_login && roles[1].oid == 2);
    }

    #[test]
    fn interrupted_steps_follow_the_server() {
        let change = |action, applied| AccountChange {
            user: "kim".to_owned(),
            host: "%".to_owned(),
            action,
            applied,
            was_locked: false,
        };
        let lock = change(ChangeAction::Lock, false);
        assert_eq!(reconcile(&lock, Some(true)), Reconcile::Happened);
        assert_eq!(reconcile(&lock, Some(false)), Reconcile::DidNot);
        assert_eq!(reconcile(&lock, None), Reconcile::Gone);
        let unlock = change(ChangeAction::Unlock, false);
        assert_eq!(reconcile(&unlock, Some(false)), Reconcile::Happened);
        assert_eq!(reconcile(&unlock, Some(true)), Reconcile::DidNot);
    }

    #[test]
    fn a_pre_locked_account_is_not_curfews() {
        let ids = BTreeMap::from([("kim".to_owned(), 1)]);
        let accounts = vec![account("kim", "%", true)];
        let pre = AccountChange {
            user: "kim".to_owned(),
            host: "%".to_owned(),
            action: ChangeAction::Lock,
            applied: true,
            was_locked: true,
        };
        assert!(locked_roles(&accounts, &ids, &[], std::slice::from_ref(&pre)).is_empty());
        let ours = AccountChange {
            was_locked: false,
            ..pre
        };
        let locked = locked_roles(&accounts, &ids, &[], &[ours]);
        assert!(locked[0].disabled_by_curfew && !locked[0].can_login);
    }
}
