//! The rest of `curfew-backend` on MariaDB/MySQL, as far as it goes today: a [`Connection`] is
//! a [`Backend`] that coordinates replicas with a `GET_LOCK` leader lock (`crate::leader`),
//! keeps no login locks (a policy that needs them says so loudly) and stores no anchors (each
//! attempt fails as not supported, which the agent reports and retries). See `docs/mariadb.md`.

use curfew_backend::{
    AnchorStore, AuthorizedLoginChange, Backend, BackendError, Connector, Coordination, ErrorKind,
    FaultHook, LedgerStatus, LockHolder, LockRow, LockedRole, LoginChange, LoginLedger, RoleInfo,
    SessionKey,
};
use mysql_async::prelude::Queryable;

use crate::connect::{Connection, connect};
use crate::error::MysqlError;
use crate::leader_lock::Leadership;
use crate::target::MysqlTarget;

/// Why login locks cannot be kept on a MariaDB/MySQL target.
pub const NO_LOGIN_LOCKS: &str =
    "login locks (`lock_logins`) are not supported on MariaDB/MySQL targets yet";

impl Connection {
    fn unsupported(&self, what: &'static str) -> BackendError {
        BackendError::new(
            ErrorKind::Refused { code: None },
            MysqlError::Unsupported {
                target: self.target.clone(),
                what,
            },
        )
    }
}

impl Coordination for Connection {
    /// `GET_LOCK` on this connection; the key is its id and when it took the lock.
    async fn try_lead(&mut self) -> Result<Option<SessionKey>, BackendError> {
        let Some(leadership) = Connection::try_lead(self).await? else {
            return Ok(None);
        };
        let pid = i64::try_from(leadership.id).map_err(|_| {
            self.unsupported("connection ids above 2^63 - 1 (the agent's session key is i64)")
        })?;
        Ok(Some(SessionKey {
            pid,
            backend_start: leadership.taken_at,
        }))
    }

    async fn still_leads(&mut self) -> Result<bool, BackendError> {
        Ok(Connection::still_leads(self).await?)
    }

    async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, BackendError> {
        Ok(Connection::lock_holders(self).await?)
    }

    /// Every `KILL` on this connection is re-checked against `leader` on the server.
    fn fence(&mut self, leader: Option<SessionKey>) {
        let leadership = leader.and_then(|k| {
            Some(Leadership {
                id: u64::try_from(k.pid).ok()?,
                taken_at: k.backend_start,
            })
        });
        // A key that is no connection id fences everything off rather than nothing.
        let leadership = match (leader, leadership) {
            (Some(_), None) => Some(Leadership {
                id: 0,
                taken_at: jiff::Timestamp::UNIX_EPOCH,
            }),
            (_, l) => l,
        };
        self.set_fence(leadership);
    }

    /// With the announcement locks (`crate::leader`).
    async fn announce(&mut self, text: &str) -> Result<(), BackendError> {
        Ok(Connection::announce(self, text).await?)
    }

    async fn ping(&mut self) -> Result<(), BackendError> {
        self.conn
            .query_drop("SELECT 1")
            .await
            .map_err(|e| MysqlError::query(&self.target, "ping", e).into())
    }
}

impl AnchorStore for Connection {
    async fn anchor(&mut self, _chain: &str, _seq: u64, _hash: &str) -> Result<(), BackendError> {
        Err(self.unsupported("anchoring the audit chain on the target"))
    }
}

impl LoginLedger for Connection {
    fn own_role(&self) -> &str {
        &self.info.user
    }

    fn login_change_problem(
        &self,
        target: &str,
        _status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        needs.then(|| {
            format!(
                "target \"{}\": {NO_LOGIN_LOCKS}; its lock rules are not enforced there",
                curfew_policy::visible(target)
            )
        })
    }

    /// No ledger exists on MariaDB/MySQL: nothing is locked, nothing is read.
    async fn ledger_status(&self) -> Result<LedgerStatus, BackendError> {
        Ok(LedgerStatus::Missing)
    }

    async fn ledger_has_work(&self) -> Result<bool, BackendError> {
        Ok(false)
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, BackendError> {
        Err(self.unsupported("reading accounts for login locks"))
    }

    async fn sync_window_locks(
        &self,
        _rule: &str,
        _roles: &[(u32, String)],
        _reason: &str,
    ) -> Result<u64, BackendError> {
        Err(self.unsupported("login locks (`lock_logins`)"))
    }

    async fn release_window_locks_except(&self, _rules: &[&str]) -> Result<u64, BackendError> {
        Ok(0)
    }

    async fn expire_locks(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, BackendError> {
        Ok(Vec::new())
    }

    async fn mark_announced(&self, _id: i64) -> Result<(), BackendError> {
        Ok(())
    }

    async fn forget_dropped_roles(&self) -> Result<(), BackendError> {
        Ok(())
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, BackendError> {
        Ok(Vec::new())
    }

    async fn disable_login(
        &mut self,
        _role: &AuthorizedLoginChange<'_>,
        _fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        Err(self.unsupported("login locks (`lock_logins`)"))
    }

    async fn restore_login(
        &mut self,
        _role: &AuthorizedLoginChange<'_>,
        _fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        Err(self.unsupported("login locks (`lock_logins`)"))
    }
}

impl Backend for Connection {
    fn describe(&self) -> String {
        format!(
            "{} {} as {}",
            match self.info.flavor {
                crate::grants::Flavor::MariaDb { .. } => "MariaDB",
                crate::grants::Flavor::MySql => "MySQL",
            },
            self.info.version,
            crate::grants::account_name(&self.info.user, &self.info.host)
        )
    }
}

impl Connector for MysqlTarget {
    type Backend = Connection;

    async fn connect(&self) -> Result<(Connection, Vec<String>), BackendError> {
        let connected = connect(self).await?;
        Ok((connected.connection, connected.warnings))
    }
}
