//! The agent's connector for any target this binary drives: PostgreSQL or MariaDB/MySQL, by the
//! URL's scheme. The agent is generic over one connector type, so a policy mixing databases
//! gets this one, which hands each call to the target's own adapter.

use curfew_backend::{
    AnchorStore, AuthorizedEnd, AuthorizedLoginChange, Backend, BackendError, Connector,
    Coordination, ErrorKind, FaultHook, LedgerStatus, LockHolder, LockRow, LockedRole, LoginChange,
    LoginLedger, RoleInfo, SessionEnder, SessionEnding, SessionKey, SessionReader, Signal,
    Snapshot,
};
use jiff::Timestamp;

/// One policy target's connector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnyTarget {
    /// A `postgresql://` target.
    Postgres(curfew_postgres::PolicyTarget),
    /// A `mariadb://` or `mysql://` target (or why its URL could not be read).
    Mysql(Result<curfew_mysql::MysqlTarget, curfew_mysql::TargetUrlError>),
}

impl AnyTarget {
    /// The connector for `target`, chosen by its URL's scheme (the agent takes this function).
    pub(crate) fn from_policy(target: &curfew_policy::Target) -> AnyTarget {
        match is_mysql(target) {
            true => AnyTarget::Mysql(curfew_mysql::MysqlTarget::from_policy(target)),
            false => AnyTarget::Postgres(curfew_postgres::PolicyTarget::from_policy(target)),
        }
    }
}

/// Whether `target`'s URL is one the MariaDB/MySQL adapter reads.
pub(crate) fn is_mysql(target: &curfew_policy::Target) -> bool {
    curfew_mysql::is_mysql_url(&target.url.text)
}

/// An open connection to a PostgreSQL or a MariaDB/MySQL target.
// One per target, kept for the connection's life: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyConnection {
    /// PostgreSQL.
    Postgres(curfew_postgres::Connection),
    /// MariaDB/MySQL.
    Mysql(curfew_mysql::Connection),
}

impl Connector for AnyTarget {
    type Backend = AnyConnection;

    async fn connect(&self) -> Result<(AnyConnection, Vec<String>), BackendError> {
        match self {
            AnyTarget::Postgres(t) => {
                let (c, w) = t.connect().await?;
                Ok((AnyConnection::Postgres(c), w))
            }
            AnyTarget::Mysql(Ok(t)) => {
                let (c, w) = t.connect().await?;
                Ok((AnyConnection::Mysql(c), w))
            }
            AnyTarget::Mysql(Err(e)) => Err(BackendError::new(
                ErrorKind::Refused { code: None },
                e.clone(),
            )),
        }
    }
}

/// Each call goes to the connection's own adapter.
macro_rules! each {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            AnyConnection::Postgres($c) => $call,
            AnyConnection::Mysql($c) => $call,
        }
    };
}

impl SessionReader for AnyConnection {
    async fn snapshot(&mut self, memberships: bool) -> Result<Snapshot, BackendError> {
        each!(self, c => SessionReader::snapshot(c, memberships).await)
    }
}

impl SessionEnder for AnyConnection {
    async fn signal_all<A: SessionEnding>(
        &mut self,
        requests: &[AuthorizedEnd<'_, A>],
    ) -> Result<Vec<Signal>, BackendError> {
        each!(self, c => SessionEnder::signal_all(c, requests).await)
    }

    async fn exited(
        &mut self,
        sessions: &[SessionKey],
    ) -> Result<Vec<Option<Timestamp>>, BackendError> {
        each!(self, c => SessionEnder::exited(c, sessions).await)
    }
}

impl Coordination for AnyConnection {
    async fn try_lead(&mut self) -> Result<Option<SessionKey>, BackendError> {
        each!(self, c => Coordination::try_lead(c).await)
    }

    async fn still_leads(&mut self) -> Result<bool, BackendError> {
        each!(self, c => Coordination::still_leads(c).await)
    }

    async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, BackendError> {
        each!(self, c => Coordination::lock_holders(c).await)
    }

    fn fence(&mut self, leader: Option<SessionKey>) {
        each!(self, c => Coordination::fence(c, leader))
    }

    async fn announce(&mut self, text: &str) -> Result<(), BackendError> {
        each!(self, c => Coordination::announce(c, text).await)
    }

    async fn ping(&mut self) -> Result<(), BackendError> {
        each!(self, c => Coordination::ping(c).await)
    }
}

impl AnchorStore for AnyConnection {
    async fn anchor(&mut self, chain: &str, seq: u64, hash: &str) -> Result<(), BackendError> {
        each!(self, c => AnchorStore::anchor(c, chain, seq, hash).await)
    }
}

impl LoginLedger for AnyConnection {
    fn own_role(&self) -> &str {
        each!(self, c => LoginLedger::own_role(c))
    }

    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        each!(self, c => LoginLedger::login_change_problem(c, target, status, needs))
    }

    async fn ledger_status(&self) -> Result<LedgerStatus, BackendError> {
        each!(self, c => LoginLedger::ledger_status(c).await)
    }

    async fn ledger_has_work(&self) -> Result<bool, BackendError> {
        each!(self, c => LoginLedger::ledger_has_work(c).await)
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, BackendError> {
        each!(self, c => LoginLedger::roles(c).await)
    }

    async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, BackendError> {
        each!(self, c => LoginLedger::sync_window_locks(c, rule, roles, reason).await)
    }

    async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, BackendError> {
        each!(self, c => LoginLedger::release_window_locks_except(c, rules).await)
    }

    async fn expire_locks(&self) -> Result<u64, BackendError> {
        each!(self, c => LoginLedger::expire_locks(c).await)
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, BackendError> {
        each!(self, c => LoginLedger::unannounced(c).await)
    }

    async fn mark_announced(&self, id: i64) -> Result<(), BackendError> {
        each!(self, c => LoginLedger::mark_announced(c, id).await)
    }

    async fn forget_dropped_roles(&self) -> Result<(), BackendError> {
        each!(self, c => LoginLedger::forget_dropped_roles(c).await)
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, BackendError> {
        each!(self, c => LoginLedger::locked_roles(c).await)
    }

    async fn disable_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        each!(self, c => LoginLedger::disable_login(c, role, fault).await)
    }

    async fn restore_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        each!(self, c => LoginLedger::restore_login(c, role, fault).await)
    }
}

impl Backend for AnyConnection {
    fn describe(&self) -> String {
        each!(self, c => Backend::describe(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> curfew_policy::Target {
        curfew_policy::Target {
            name: "t".to_owned(),
            url: curfew_policy::TargetUrl {
                text: url.to_owned(),
                span: 0..0,
                login_role: None,
                limits: curfew_policy::AdapterLimits::default(),
            },
            password_file: None,
            standby: false,
            primary: None,
        }
    }

    #[test]
    fn the_scheme_chooses_the_adapter() {
        for url in ["mariadb://a@h/", "MySQL://a@h:3306/", " mysql://a@h/"] {
            assert!(is_mysql(&target(url)), "{url}");
        }
        for url in [
            "postgresql://a@h/db",
            "postgres://a@h/db",
            "mariadb:/a",
            "mysql",
            "host=mariadb",
        ] {
            assert!(!is_mysql(&target(url)), "{url}");
        }
    }
}
