//! The login ledger in memory: roles, lock rows and the logins curfew turned off, with the
//! transitions the contract describes (a window lock per rule and role, expiry, a release's
//! record, a login change decided against the state at that moment).

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::ledger::{LedgerStatus, LockRow, LockedRole, LoginChange, RoleInfo};

/// A lock row and whether its creation and release were recorded in the audit log.
#[derive(Debug, Clone)]
struct LockEntry {
    row: LockRow,
    announced_created: bool,
    announced_released: bool,
}

impl LockEntry {
    fn active(&self) -> bool {
        self.row.released_at.is_none()
    }
}

/// The ledger and the roles it is about.
#[derive(Debug)]
pub(crate) struct Ledger {
    pub(crate) status: LedgerStatus,
    roles: Vec<RoleInfo>,
    locks: Vec<LockEntry>,
    /// Roles whose login curfew turned off.
    disabled: BTreeSet<u32>,
    next_oid: u32,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            status: LedgerStatus::Ready,
            roles: Vec::new(),
            locks: Vec::new(),
            disabled: BTreeSet::new(),
            // Above the oids a catalog reserves for itself, as a real server's would be.
            next_oid: 16384,
        }
    }
}

impl Ledger {
    pub(crate) fn add_role(&mut self, name: &str, superuser: bool, member_of: &[&str]) -> u32 {
        let oid = self.next_oid;
        self.next_oid += 1;
        self.roles.push(RoleInfo {
            oid,
            name: name.to_owned(),
            can_login: true,
            superuser,
            member_of: member_of.iter().map(|m| (*m).to_owned()).collect(),
        });
        oid
    }

    pub(crate) fn drop_role(&mut self, oid: u32) {
        self.roles.retain(|r| r.oid != oid);
    }

    pub(crate) fn role(&self, oid: u32) -> Option<&RoleInfo> {
        self.roles.iter().find(|r| r.oid == oid)
    }

    pub(crate) fn role_mut(&mut self, oid: u32) -> Option<&mut RoleInfo> {
        self.roles.iter_mut().find(|r| r.oid == oid)
    }

    pub(crate) fn roles(&self) -> Vec<RoleInfo> {
        self.roles.clone()
    }

    pub(crate) fn locks(&self) -> Vec<LockRow> {
        self.locks.iter().map(|l| l.row.clone()).collect()
    }

    pub(crate) fn has_work(&self) -> bool {
        !self.disabled.is_empty()
            || self
                .locks
                .iter()
                .any(|l| l.active() || !l.announced_created || !l.announced_released)
    }

    fn add_lock(&mut self, row: LockRow) -> i64 {
        let id = self.locks.last().map_or(1, |l| l.row.id + 1);
        self.locks.push(LockEntry {
            row: LockRow { id, ..row },
            announced_created: false,
            announced_released: false,
        });
        id
    }

    /// An operator's incident lock on a role (`curfew lock`).
    pub(crate) fn lock_role(
        &mut self,
        oid: u32,
        reason: &str,
        created_by: &str,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Option<i64> {
        let name = self.role(oid)?.name.clone();
        Some(self.add_lock(LockRow {
            id: 0,
            role_oid: oid,
            role_name: name,
            kind: "incident".to_owned(),
            rule: None,
            reason: reason.to_owned(),
            created_by: created_by.to_owned(),
            created_at: now,
            expires_at,
            released_at: None,
            released_by: None,
        }))
    }

    /// Release the active locks that `which` picks; returns how many.
    pub(crate) fn release(
        &mut self,
        now: Timestamp,
        by: &str,
        which: impl Fn(&LockRow) -> bool,
    ) -> u64 {
        let mut released = 0;
        for lock in self.locks.iter_mut().filter(|l| l.active()) {
            if which(&lock.row) {
                lock.row.released_at = Some(now);
                lock.row.released_by = Some(by.to_owned());
                released += 1;
            }
        }
        released
    }

    pub(crate) fn sync_window_locks(
        &mut self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
        now: Timestamp,
    ) -> u64 {
        let released = self.release(
            now,
            "curfew agent: the window opened or the role left the rule's scope",
            |l| {
                l.kind == "window"
                    && l.rule.as_deref() == Some(rule)
                    && !roles.iter().any(|(oid, _)| *oid == l.role_oid)
            },
        );
        let mut created = 0;
        for (oid, name) in roles {
            let held = self.locks.iter().any(|l| {
                l.active()
                    && l.row.kind == "window"
                    && l.row.rule.as_deref() == Some(rule)
                    && l.row.role_oid == *oid
            });
            if held {
                continue;
            }
            self.add_lock(LockRow {
                id: 0,
                role_oid: *oid,
                role_name: name.clone(),
                kind: "window".to_owned(),
                rule: Some(rule.to_owned()),
                reason: reason.to_owned(),
                created_by: format!("curfew agent (rule {rule})"),
                created_at: now,
                expires_at: None,
                released_at: None,
                released_by: None,
            });
            created += 1;
        }
        released + created
    }

    pub(crate) fn expire(&mut self, now: Timestamp) -> u64 {
        let mut expired = 0;
        for lock in self.locks.iter_mut().filter(|l| l.active()) {
            if let Some(at) = lock.row.expires_at.filter(|at| *at <= now) {
                lock.row.released_at = Some(at);
                lock.row.released_by = Some("expired".to_owned());
                expired += 1;
            }
        }
        expired
    }

    pub(crate) fn unannounced(&self) -> Vec<(LockRow, bool)> {
        self.locks
            .iter()
            .filter(|l| !l.announced_created || (!l.active() && !l.announced_released))
            .map(|l| (l.row.clone(), l.announced_created))
            .collect()
    }

    pub(crate) fn mark_announced(&mut self, id: i64) {
        if let Some(lock) = self.locks.iter_mut().find(|l| l.row.id == id) {
            lock.announced_created = true;
            lock.announced_released = !lock.active();
        }
    }

    pub(crate) fn forget_dropped_roles(&mut self, now: Timestamp) {
        let live: BTreeSet<u32> = self.roles.iter().map(|r| r.oid).collect();
        self.disabled.retain(|oid| live.contains(oid));
        self.release(now, "curfew agent: the role was dropped", |l| {
            !live.contains(&l.role_oid)
        });
    }

    pub(crate) fn locked_roles(&self) -> Vec<LockedRole> {
        self.roles
            .iter()
            .filter_map(|role| {
                let locks: Vec<LockRow> = self
                    .locks
                    .iter()
                    .filter(|l| l.active() && l.row.role_oid == role.oid)
                    .map(|l| l.row.clone())
                    .collect();
                let disabled_by_curfew = self.disabled.contains(&role.oid);
                (!locks.is_empty() || disabled_by_curfew).then(|| LockedRole {
                    oid: role.oid,
                    name: role.name.clone(),
                    can_login: role.can_login,
                    disabled_by_curfew,
                    locks,
                })
            })
            .collect()
    }

    fn locked(&self, oid: u32) -> bool {
        self.locks
            .iter()
            .any(|l| l.active() && l.row.role_oid == oid)
    }

    pub(crate) fn disable_login(&mut self, oid: u32) -> LoginChange {
        let locked = self.locked(oid);
        let recorded = self.disabled.contains(&oid);
        let Some(role) = self.role_mut(oid) else {
            self.disabled.remove(&oid);
            return LoginChange::RoleGone;
        };
        if !locked || !role.can_login {
            return LoginChange::NotNeeded;
        }
        role.can_login = false;
        if recorded {
            LoginChange::DriftCorrected
        } else {
            self.disabled.insert(oid);
            LoginChange::Disabled
        }
    }

    pub(crate) fn restore_login(&mut self, oid: u32) -> LoginChange {
        let locked = self.locked(oid);
        let recorded = self.disabled.contains(&oid);
        let Some(role) = self.role_mut(oid) else {
            self.disabled.remove(&oid);
            return LoginChange::RoleGone;
        };
        if locked || !recorded {
            return LoginChange::NotNeeded;
        }
        role.can_login = true;
        self.disabled.remove(&oid);
        LoginChange::Restored
    }
}
