//! The rest of `curfew-backend` on MariaDB/MySQL, as far as it goes today: a [`Connection`] is
//! a [`Backend`] that leads alone (no leader lock: run one agent per MariaDB target; login
//! locks are `crate::ledger`'s, anchors `crate::anchor`'s). See `docs/mariadb.md`.

use curfew_backend::{
    Backend, BackendError, Connector, Coordination, ErrorKind, LockHolder, SessionKey,
};
use mysql_async::prelude::Queryable;

use crate::connect::{Connection, connect};
use crate::error::MysqlError;
use crate::target::MysqlTarget;

/// What the operator is told at each connection (after the target's name): no replica
/// coordination on this target.
pub const NO_COORDINATION: &str = "has no leader lock yet (MariaDB/MySQL): this agent leads alone, so run exactly one agent for this target (a second one would enforce too; see docs/mariadb.md)";

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

    /// This connection as a session key: its id (when it fits) and the server's boot.
    fn own_key(&self) -> Result<SessionKey, BackendError> {
        let pid = i64::try_from(self.info.connection_id).map_err(|_| {
            self.unsupported("connection ids above 2^63 - 1 (the agent's session key is i64)")
        })?;
        Ok(SessionKey {
            pid,
            backend_start: self.info.booted_at,
        })
    }
}

impl Coordination for Connection {
    /// No leader lock yet: this connection leads at once (see [`NO_COORDINATION`]).
    async fn try_lead(&mut self) -> Result<Option<SessionKey>, BackendError> {
        self.own_key().map(Some)
    }

    async fn still_leads(&mut self) -> Result<bool, BackendError> {
        Ok(true)
    }

    async fn lock_holders(&mut self) -> Result<Vec<LockHolder>, BackendError> {
        Ok(Vec::new())
    }

    /// Nothing to fence on: no lock (the kill is still re-checked on the server).
    fn fence(&mut self, _leader: Option<SessionKey>) {}

    /// Not shown anywhere yet (`program_name` is fixed at connect).
    async fn announce(&mut self, _text: &str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), BackendError> {
        self.conn
            .query_drop("SELECT 1")
            .await
            .map_err(|e| MysqlError::query(&self.target, "ping", e).into())
    }
}

impl Backend for Connection {
    fn describe(&self) -> String {
        format!(
            "{} {} as {} (no leader lock: one agent per target)",
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
        let mut warnings = connected.warnings;
        warnings.push(format!(
            "target \"{}\" {NO_COORDINATION}",
            curfew_policy::visible(&self.name)
        ));
        Ok((connected.connection, warnings))
    }
}
