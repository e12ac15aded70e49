//! Reading the live sessions of a server: sends the snapshot statement (its text and decoding
//! are in `crate::sql::snapshot`).

use curfew_backend::Snapshot;

use crate::connect::Connection;
use crate::error::PgError;
use crate::sql::snapshot::{ActivityRow, WHAT, decode_snapshot, snapshot_params};

impl Connection {
    /// Read every client session (except curfew's own connection and `also_exclude`), with the
    /// server's clock. `memberships`: also read role memberships (needed only when the policy
    /// uses `member_of`).
    pub async fn snapshot(
        &mut self,
        also_exclude: &[i32],
        memberships: bool,
    ) -> Result<Snapshot, PgError> {
        let exclude = snapshot_params(self.info.backend_pid, also_exclude);
        let rows = self
            .client
            .query(&self.statements.snapshot, &[&exclude, &memberships])
            .await
            .map_err(|e| PgError::query(&self.target, WHAT, e))?;
        let rows = rows
            .iter()
            .map(|row| ActivityRow::extract(row, &self.target))
            .collect::<Result<Vec<_>, PgError>>()?;
        let snapshot = decode_snapshot(rows, &mut self.names, &mut self.groups, &self.target)?;
        if self.names.len() > 4 * snapshot.sessions.len() + 1024 {
            self.names.prune();
        }
        Ok(snapshot)
    }
}
