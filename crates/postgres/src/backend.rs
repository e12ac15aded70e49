//! PostgreSQL as a `curfew-backend`: the neutral traits the enforcement loop uses, implemented
//! on a [`Connection`], with PostgreSQL's types converted at this edge (a session is a pid and
//! its backend start; the leader is the session holding the advisory lock; errors keep their
//! kind and the `PgError` itself).

use curfew_backend::{
    AnchorStore, AuthorizedEnd, AuthorizedLoginChange, Backend, BackendError, Connector,
    Coordination, ErrorKind, FaultHook, LedgerStatus, LockHolder, LockRow, LockedRole, LoginChange,
    LoginLedger, RoleInfo, SessionEnder, SessionEnding, SessionKey, SessionReader, Signal,
    Snapshot,
};
use jiff::Timestamp;

use crate::connect::Connection;
use crate::error::PgError;
use crate::fence::Leadership;
use crate::ledger::LedgerProblem;
use crate::sql::terminate::pg_pid;
use crate::target::TargetSpec;
use crate::terminate::Guard;

/// What the loop does about a PostgreSQL error; the error itself is kept as the source.
impl From<PgError> for BackendError {
    fn from(e: PgError) -> BackendError {
        let kind = match &e {
            PgError::NotLeading { .. } => ErrorKind::NotLeading,
            PgError::Query { lost: true, .. } => ErrorKind::ConnectionLost,
            // The codes curfew's own ledger functions raise (see ledger/install.rs).
            PgError::LoginRefused { .. } => ErrorKind::Refused {
                code: Some("CF002".to_owned()),
            },
            PgError::AlterRole { .. } => ErrorKind::Refused {
                code: Some("CF003".to_owned()),
            },
            PgError::LedgerPrivilege { code, .. } => ErrorKind::Refused {
                code: Some(code.clone()),
            },
            PgError::MissingPrivileges { .. } => ErrorKind::Refused { code: None },
            _ => ErrorKind::Failed,
        };
        BackendError::new(kind, e)
    }
}

impl SessionReader for Connection {
    async fn snapshot(&mut self, memberships: bool) -> Result<Snapshot, BackendError> {
        Ok(Connection::snapshot(self, &[], memberships).await?)
    }
}

impl SessionEnder for Connection {
    async fn signal_all<A: SessionEnding>(
        &mut self,
        requests: &[AuthorizedEnd<'_, A>],
    ) -> Result<Vec<Signal>, BackendError> {
        let guards: Vec<Guard> = requests.iter().map(|r| Guard::from(r.request())).collect();
        Ok(Connection::signal_all(self, &guards).await?)
    }

    async fn exited(
        &mut self,
        sessions: &[SessionKey],
    ) -> Result<Vec<Option<Timestamp>>, BackendError> {
        let sessions: Vec<(i32, Timestamp)> = sessions
            .iter()
            .map(|k| (pg_pid(k.pid), k.backend_start))
            .collect();
        Ok(Connection::exited(self, &sessions).await?)
    }
}

impl Coordination for Connection {
    async fn try_lead(&mut self) -> Result<Option<SessionKey>, BackendError> {
        Ok(Connection::try_lead(self).await?.map(|l| SessionKey {
            pid: i64::from(l.pid),
            backend_start: l.backend_start,
        }))
    }

    async fn still_leads(&mut self) -> Result<bool, BackendError> {
        Ok(Connection::still_leads(self).await?)
    }

    async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, BackendError> {
        Ok(Connection::lock_holders(self).await?)
    }

    fn fence(&mut self, leader: Option<SessionKey>) {
        Connection::fence(
            self,
            leader.map(|k| Leadership {
                pid: pg_pid(k.pid),
                backend_start: k.backend_start,
            }),
        );
    }

    async fn announce(&mut self, text: &str) -> Result<(), BackendError> {
        Ok(Connection::announce(self, text).await?)
    }

    async fn ping(&mut self) -> Result<(), BackendError> {
        Ok(Connection::ping(self).await?)
    }
}

impl AnchorStore for Connection {
    async fn anchor(&mut self, chain: &str, seq: u64, hash: &str) -> Result<(), BackendError> {
        Connection::anchor(self, chain, seq, hash)
            .await
            .map(drop)
            .map_err(BackendError::from)
    }
}

impl LoginLedger for Connection {
    fn own_role(&self) -> &str {
        &self.info.role
    }

    fn login_change_problem(
        &self,
        target: &str,
        status: LedgerStatus,
        needs: bool,
    ) -> Option<String> {
        status.problem(target, &self.info.role, needs)
    }

    async fn ledger_status(&self) -> Result<LedgerStatus, BackendError> {
        Ok(Connection::ledger_status(self).await?)
    }

    async fn ledger_has_work(&self) -> Result<bool, BackendError> {
        Ok(Connection::ledger_has_work(self).await?)
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>, BackendError> {
        Ok(Connection::roles(self).await?)
    }

    async fn sync_window_locks(
        &self,
        rule: &str,
        roles: &[(u32, String)],
        reason: &str,
    ) -> Result<u64, BackendError> {
        Ok(Connection::sync_window_locks(self, rule, roles, reason).await?)
    }

    async fn release_window_locks_except(&self, rules: &[&str]) -> Result<u64, BackendError> {
        Ok(Connection::release_window_locks_except(self, rules).await?)
    }

    async fn expire_locks(&self) -> Result<u64, BackendError> {
        Ok(Connection::expire_locks(self).await?)
    }

    async fn unannounced(&self) -> Result<Vec<(LockRow, bool)>, BackendError> {
        Ok(Connection::unannounced(self).await?)
    }

    async fn mark_announced(&self, id: i64) -> Result<(), BackendError> {
        Ok(Connection::mark_announced(self, id).await?)
    }

    async fn forget_dropped_roles(&self) -> Result<(), BackendError> {
        Ok(Connection::forget_dropped_roles(self).await?)
    }

    async fn locked_roles(&self) -> Result<Vec<LockedRole>, BackendError> {
        Ok(Connection::locked_roles(self).await?)
    }

    async fn disable_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        Ok(Connection::disable_login(self, *role.request(), fault).await?)
    }

    async fn restore_login(
        &mut self,
        role: &AuthorizedLoginChange<'_>,
        fault: FaultHook<'_>,
    ) -> Result<LoginChange, BackendError> {
        Ok(Connection::restore_login(self, *role.request(), fault).await?)
    }
}

impl Backend for Connection {
    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} as role \"{}\"",
            self.info.version, self.info.role
        )
    }
}

impl Connector for TargetSpec {
    type Backend = Connection;

    async fn connect(&self) -> Result<(Connection, Vec<String>), BackendError> {
        let connected = crate::connect::connect(self).await?;
        Ok((connected.connection, connected.warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(lost: bool) -> PgError {
        PgError::Query {
            target: "db1".to_owned(),
            what: "reading pg_stat_activity",
            reason: "FATAL: terminating connection".to_owned(),
            lost,
        }
    }

    #[test]
    fn errors_keep_their_kind_their_code_and_their_message() {
        let cases = [
            (
                PgError::NotLeading {
                    target: "db1".to_owned(),
                },
                ErrorKind::NotLeading,
            ),
            (query(true), ErrorKind::ConnectionLost),
            (query(false), ErrorKind::Failed),
            (
                PgError::LedgerPrivilege {
                    target: "db1".to_owned(),
                    role: "curfew_agent".to_owned(),
                    detail: "permission denied for schema curfew".to_owned(),
                    code: "42501".to_owned(),
                },
                ErrorKind::Refused {
                    code: Some("42501".to_owned()),
                },
            ),
            (
                PgError::LoginRefused {
                    target: "db1".to_owned(),
                    detail: "role \"postgres\" is a superuser".to_owned(),
                },
                ErrorKind::Refused {
                    code: Some("CF002".to_owned()),
                },
            ),
        ];
        for (pg, kind) in cases {
            let message = pg.to_string();
            let neutral = BackendError::from(pg);
            assert_eq!(neutral.kind(), &kind, "{message}");
            assert_eq!(neutral.to_string(), message);
            assert!(neutral.database_error().downcast_ref::<PgError>().is_some());
        }
    }
}
