//! What the loop needs from a database: a snapshot of its sessions on its own clock, and a
//! guarded termination. PostgreSQL implements it today; other databases can later.

use std::future::Future;
use std::time::Duration;

use curfew_postgres::{Connection, Guard, Outcome, PgError, Snapshot, TargetSpec};

/// An open connection to one database server.
pub trait Backend: Send {
    /// The live client sessions (never curfew's own) and the server's clock.
    fn snapshot(
        &mut self,
        memberships: bool,
    ) -> impl Future<Output = Result<Snapshot, PgError>> + Send;

    /// End one session if its guard still holds, waiting up to `wait` for it to exit.
    fn terminate(
        &mut self,
        guard: &Guard,
        wait: Duration,
    ) -> impl Future<Output = Result<Outcome, PgError>> + Send;

    /// The server's version, for logs.
    fn describe(&self) -> String;
}

/// Opens connections to one target.
pub trait Connector: Send + Sync + 'static {
    /// The connection type.
    type Backend: Backend;

    /// Connect; the second value holds warnings for the operator.
    fn connect(&self)
    -> impl Future<Output = Result<(Self::Backend, Vec<String>), PgError>> + Send;
}

impl Backend for Connection {
    async fn snapshot(&mut self, memberships: bool) -> Result<Snapshot, PgError> {
        Connection::snapshot(self, &[], memberships).await
    }

    async fn terminate(&mut self, guard: &Guard, wait: Duration) -> Result<Outcome, PgError> {
        Connection::terminate(self, guard, wait).await
    }

    fn describe(&self) -> String {
        format!(
            "PostgreSQL {} as role \"{}\"",
            self.info.version, self.info.role
        )
    }
}

impl Connector for TargetSpec {
    type Backend = Connection;

    async fn connect(&self) -> Result<(Connection, Vec<String>), PgError> {
        let connected = curfew_postgres::connect(self).await?;
        Ok((connected.connection, connected.warnings))
    }
}
