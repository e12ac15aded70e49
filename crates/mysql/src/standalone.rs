//! The rest of `curfew-backend` on MariaDB/MySQL, as far as it goes today: a [`Connection`] is
//! a [`Backend`] that coordinates replicas with a `GET_LOCK` leader lock (`crate::leader`),
//! keeps login locks through `crate::ledger` and stores no anchors (each attempt fails as not
//! supported, which the agent reports and retries). See `docs/mariadb.md`.

use curfew_backend::{
    AnchorStore, Backend, BackendError, Connector, Coordination, ErrorKind, LockHolder, SessionKey,
};
use mysql_async::prelude::Queryable;

use crate::connect::{Connection, connect};
use crate::error::MysqlError;
use crate::leader_lock::Leadership;
use crate::target::MysqlTarget;

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
